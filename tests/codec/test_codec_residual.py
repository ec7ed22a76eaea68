"""pdeflow.codec.residual and the two-layer files: the wavelet, the coefficient coder, the format's version 2,
the encoder's split of the budget, and the decoder against damaged version-2 files."""
from __future__ import annotations

import math
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pdeflow.codec import CodecError, decode, encode
from pdeflow.codec.entropy import RangeReader, RangeWriter
from pdeflow.codec.format import FORMAT_VERSION, MAGIC, Header, read_layers, write_header
from pdeflow.codec.residual import (
    MIN_BYTES_PER_PIXEL,
    ResidualSection,
    band_shapes,
    code_residual,
    decode_bands,
    decode_residual,
    dequantise,
    encode_bands,
    forward,
    inverse,
    max_levels,
    quantise,
    read_section,
    write_section,
)

DATA = Path(__file__).resolve().parents[1] / "data"
# CDF 9/7 analysis filters as the JPEG 2000 standard tabulates them (low-pass: DC gain 1; high-pass: 2 at
# Nyquist), centre tap first: an independent check of the lifting steps.
LOW_TAPS = (0.602949018236, 0.266864118443, -0.078223266529, -0.016864118443, 0.026748757411)
HIGH_TAPS = (1.115087052457, -0.591271763114, -0.057543526229, 0.091271763114)


def _image(size=48, colour=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                          torch.linspace(0, 1, size, dtype=torch.float64), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(9 * x + 3 * y) * torch.cos(7 * y)
    base = (base + (x > 0.6).double() * 0.15 + 0.05 * torch.rand(size, size, dtype=torch.float64, generator=g))
    base = base.clamp(0, 1)
    if not colour:
        return base
    return torch.stack([base, (1 - base) * 0.8 + 0.1, (0.3 + 0.5 * x).clamp(0, 1)])


def _flat(bands):
    return [bands[0]] + [b for level in bands[1:] for b in level]


# ------------------------------------------------------------------------------------------------ wavelet

@pytest.mark.parametrize("shape", [(2, 2), (2, 9), (7, 10), (33, 17), (64, 48)])
def test_the_wavelet_reconstructs_perfectly_at_every_level(shape):
    x = np.random.default_rng(1).random(shape)
    for levels in range(max_levels(*shape) + 1):
        bands = forward(x, levels)
        assert [b.shape for b in _flat(bands)] == [s for s in _flat(band_shapes(*shape, levels))]
        assert np.abs(inverse(bands, *shape) - x).max() < 1e-12


def test_the_lifting_steps_are_the_cdf_9_7_filters():
    """Away from the borders, one level is the standard's analysis filters, scaled by sqrt(2) (low) and
    1/sqrt(2) (high): the transform is close to orthonormal; constants have no detail and cubics none inside."""
    x = np.random.default_rng(2).normal(size=64)
    ll, (hl, _, _) = forward(np.stack([x, x]), 1)     # two equal rows: the rows' low-pass is sqrt(2) x
    h = np.array(LOW_TAPS[:0:-1] + LOW_TAPS)
    g = np.array(HIGH_TAPS[:0:-1] + HIGH_TAPS)
    for i in range(4, 28):
        assert ll[0, i] == pytest.approx(2 * float(h @ x[2 * i - 4:2 * i + 5]), abs=1e-9)
        assert hl[0, i] == pytest.approx(float(g @ x[2 * i - 2:2 * i + 5]), abs=1e-9)
    const = forward(np.ones((16, 16)), 1)
    assert np.abs(np.concatenate([b.ravel() for b in const[1]])).max() < 1e-12
    assert np.allclose(const[0], 2.0)                     # sqrt(2) per axis
    t = np.arange(32.0)
    cubic = forward(np.tile(t ** 3 / 1e4, (4, 1)), 1)[1][0]
    assert np.abs(cubic[:, 2:-2]).max() < 1e-9


def test_the_transform_nearly_keeps_the_energy():
    x = np.random.default_rng(3).normal(size=(128, 128))
    ratio = sum(float((b ** 2).sum()) for b in _flat(forward(x, 4))) / float((x ** 2).sum())
    assert 0.95 < ratio < 1.1


# ----------------------------------------------------------------------------------------- coefficient coder

def _random_bands(shape, levels, rng, scale):
    q = quantise(forward(rng.normal(0, scale, shape), levels), 1.0)
    q[1] = (np.zeros_like(q[1][0]), q[1][1], q[1][2])      # a band of zeros
    q[-1][2][0, 0] = 5_000_000                              # a long escape
    q[-1][2][-1, -1] = -15
    return q


@pytest.mark.parametrize("shape,channels", [((9, 12), 1), ((33, 20), 3), ((2, 2), 1)])
def test_coded_coefficients_round_trip_exactly(shape, channels):
    rng = np.random.default_rng(4)
    levels = max_levels(*shape)
    q = [_random_bands(shape, levels, rng, 3.0 * (c + 1)) for c in range(channels)]
    w = RangeWriter()
    encode_bands(w, q)
    back = decode_bands(RangeReader(w.words()), *shape, channels, levels)
    for a, b in zip(q, back):
        for x, y in zip(_flat(a), _flat(b)):
            assert x.dtype == y.dtype == np.int64 and np.array_equal(x, y)


def test_quantiser_and_its_offset():
    c = [np.array([[-2.5, -0.9, 0.9, 1.0, 3.2]])]
    q = quantise(c, 1.0)
    assert q[0].tolist() == [[-2, 0, 0, 1, 3]]
    assert dequantise(q, 1.0, 0.5)[0].tolist() == [[-2.5, 0.0, 0.0, 1.5, 3.5]]


def test_residual_coding_meets_its_budget_is_deterministic_and_the_decoder_agrees():
    r = (_image(64) - 0.5).numpy()[None]
    last = None
    for budget in (60, 200, 800):
        data, rec = code_residual(r, budget)
        assert len(data) <= budget
        assert np.array_equal(decode_residual(data, 64, 64, 1), rec)      # bit for bit
        data2, rec2 = code_residual(r, budget)
        assert data2 == data and np.array_equal(rec2, rec)
        err = float(((rec - r) ** 2).mean())
        assert last is None or err < last
        last = err
    assert code_residual(r, 7) == (None, None)


def test_section_fields_are_checked():
    words = bytes(8)
    good = write_section(ResidualSection(3, 100, 64), words)
    assert read_section(good, 16, 16, 1)[0] == ResidualSection(3, 100, 64)
    for bad, match in [(good[:6], "truncated"), (good + b"\0", "multiple of 4"),
                       (write_section(ResidualSection(6, 100, 64), words), "wavelet levels"),
                       (write_section(ResidualSection(1, 0, 64), words), "step 0")]:
        with pytest.raises(CodecError, match=match):
            read_section(bad, 16, 16, 1)
    n = math.ceil(MIN_BYTES_PER_PIXEL * 3 * 4096 * 4096)
    with pytest.raises(CodecError, match="too short"):
        read_section(write_section(ResidualSection(1, 100, 64), bytes(4 * (n // 4 - 2))), 4096, 4096, 3)


@pytest.mark.slow   # a wavelet encoding, cut
def test_a_payload_that_ran_out_is_noticed():
    r = (_image(64) - 0.5).numpy()[None]
    data, _ = code_residual(r, 600)
    refused = 0
    for cut in range(8, len(data) - 4, 4):
        try:
            decode_residual(data[:cut], 64, 64, 1)
        except CodecError:
            refused += 1
    assert refused >= (len(data) - 12) // 4 - 1


# -------------------------------------------------------------------------------------------------- format

def test_version_2_header_round_trip_and_layers_checks():
    h = Header(5, 7, 1, 8, 0, 0, b"", 3, 2, 4, [16], [0], [8192], layers=3)
    data = write_header(h, bytes(4), bytes(8))
    assert data[4] == FORMAT_VERSION == 2
    assert read_layers(data) == (h, bytes(4), bytes(8))
    h2 = Header(5, 7, 1, 8, 0, 0, b"", 3, 1, 0, [2], [0], [1], layers=2)
    assert read_layers(write_header(h2, b"", bytes(8))) == (h2, b"", bytes(8))
    one = write_header(Header(5, 7, 1, 8, 0, 0, b"", 3, 2, 4, [16], [0], [8192]), bytes(4))
    assert one[4] == 1                                    # the inpainting layer alone stays version 1

    def recrc(b):
        b = bytearray(b)
        struct.pack_into("<I", b, 5, zlib.crc32(bytes(b[9:])))
        return bytes(b)
    pos = 9 + 9 + 6 + 6                                    # the layers field of a grey file without parameters
    for value, match in [(0, "layers"), (1, "layers field 1"), (4, "layers"), (255, "layers")]:
        b = bytearray(data)
        b[pos] = value
        with pytest.raises(CodecError, match=match):
            read_layers(recrc(b))
    b = bytearray(data)
    struct.pack_into("<I", b, pos + 1, 7)                  # more inpainting words than there are
    with pytest.raises(CodecError, match="declared"):
        read_layers(recrc(b))
    with pytest.raises(CodecError, match="known pixels"):
        b = bytearray(write_header(h2, b"", bytes(8)))
        struct.pack_into("<I", b, 9 + 9 + 2, 1)            # K = 1 in a file without the inpainting layer
        read_layers(recrc(b))


def test_version_1_files_still_decode():
    """A file written by the encoder before the residual layer (committed) decodes as it did."""
    data = (DATA / "codec_v1_24x20.pdc").read_bytes()
    assert data[4] == 1 and len(data) == 78
    u = decode(data)
    assert u.shape == (1, 24, 20)
    assert float(u.mean()) == pytest.approx(0.4244769215583801, abs=1e-6)
    y, x = torch.meshgrid(torch.linspace(0, 1, 24, dtype=torch.float64),
                          torch.linspace(0, 1, 20, dtype=torch.float64), indexing="ij")
    f = (0.2 + 0.5 * x * y + 0.2 * (x > 0.5).double()).clamp(0, 1)
    assert 10 * math.log10(1 / float((u[0].double() - f).square().mean())) > 25


# ------------------------------------------------------------------------------------------------- encoder

@pytest.fixture(scope="module")
def layered():
    f = _image(64)
    return f, {s: encode(f, bpp=0.4, split=s, full_output=True) for s in (1.0, 0.5, 0.0)}


@pytest.mark.slow   # an encoding per split
def test_each_split_meets_the_budget_and_decodes_to_its_reconstruction(layered):
    f, results = layered
    budget = math.floor(0.4 * 64 * 64 / 8)
    for share, r in results.items():
        assert len(r.data) <= budget
        assert r.data[4] == (1 if share == 1 else 2)
        assert torch.equal(decode(r.data), r.reconstruction)
        assert r.split == share
    assert results[0.0].known == 0 and results[0.0].residual_bytes > 0
    assert results[1.0].residual_bytes == 0 and results[1.0].known > 0
    assert results[0.5].known > 0 and results[0.5].residual_bytes > 0
    # the residual layer improves on the inpainting it was added to
    half_alone = decode(encode(f, size=int(0.5 * budget) - 5, split=1.0))
    err = {s: float((r.reconstruction.double() - f).square().mean()) for s, r in results.items()}
    assert err[0.5] < float((half_alone.double() - f).square().mean())


@pytest.mark.slow   # encodings at every split
def test_the_default_split_keeps_the_smallest_error(layered):
    f, results = layered
    r = encode(f, bpp=0.4, split=(1.0, 0.5, 0.0), full_output=True)
    errs = {s: float((x.reconstruction.double() - f).square().mean()) for s, x in results.items()}
    assert r.split == min(errs, key=errs.get)
    assert r.data == results[r.split].data


def test_colour_and_tiny_images_with_the_residual_layer():
    f = _image(32, colour=True)
    r = encode(f, bpp=1.0, split=0.0, full_output=True)
    assert r.data[4] == 2 and r.reconstruction.shape == (3, 32, 32)
    assert torch.equal(decode(r.data), r.reconstruction)
    assert 10 * math.log10(1 / float((r.reconstruction.double() - f).square().mean())) > 25
    two = torch.tensor([[0.0, 1.0], [0.5, 0.25]], dtype=torch.float64)
    d = encode(two, size=60, split=0.0)
    assert decode(d).shape == (1, 2, 2)


def test_bad_split_is_refused():
    for bad in (-0.1, 1.5, "half", True, ()):
        with pytest.raises(Exception, match="split"):
            encode(_image(16), bpp=1.0, split=bad)


# --------------------------------------------------------------------------------------- damaged files

@pytest.mark.slow   # hundreds of decodes of fuzzed files
def test_fuzz_version_2_fields_small_files_decode_fast_or_are_refused(layered):
    """Version-2 files under 1 kB truncated or bit-flipped (refused), and with the new fields damaged (layers,
    word count, wavelet levels, step, offset, the residual words, the image size), each with a valid CRC: every
    one decodes to an image of the declared
    shape or is refused in one line, none takes 2 CPU seconds, and the decoder's NumPy allocations stay within
    a small multiple of the output image."""
    _, results = layered
    rng = np.random.default_rng(5)
    seeds = [results[0.0].data, results[0.5].data]
    assert all(len(s) < 1024 for s in seeds)

    def recrc(b):
        struct.pack_into("<I", b, 5, zlib.crc32(bytes(b[9:])))
        return bytes(b)
    slowest, outcomes = 0.0, {"refused": 0, "decoded": 0}
    tracemalloc.start()
    try:
        for data in seeds:
            header, payload, residual = read_layers(data)
            pos = 9 + 9 + 6 + 6                          # the layers field
            sec = len(data) - len(residual)              # the residual section
            cases = []
            for v in range(256):
                b = bytearray(data)
                b[pos] = v
                cases.append(b)
            if payload:
                for n in (0, 1, len(payload) // 4 - 1, len(payload) // 4 + 1, 2 ** 32 - 1):
                    b = bytearray(data)
                    struct.pack_into("<I", b, pos + 1, n)
                    cases.append(b)
            for field, fmt, values in ((0, "<B", range(12)), (1, "<H", (0, 1, 7, 255, 65535)),
                                       (3, "<B", (0, 255))):
                for v in values:
                    b = bytearray(data)
                    struct.pack_into(fmt, b, sec + field, v)
                    cases.append(b)
            for _ in range(60):                          # random residual words
                b = bytearray(data)
                b[sec + 4:] = rng.bytes(len(b) - sec - 4)
                cases.append(b)
            for h, w in ((4096, 4096), (1000, 1000), (64, 4096)):   # large claims in a small file
                b = bytearray(data)
                struct.pack_into("<HH", b, 9, h, w)
                cases.append(b)
            damaged = [data[:n] for n in range(0, len(data), 7)]                 # truncations
            for _ in range(40):                                                    # bit flips
                b = bytearray(data)
                i = int(rng.integers(len(b)))
                b[i] ^= 1 << int(rng.integers(8))
                damaged.append(bytes(b))
            for b in damaged:                  # the CRC (or the magic, the version) refuses every one
                with pytest.raises(CodecError):
                    decode(b)
                outcomes["refused"] += 1
            for b in cases:
                t = time.process_time()
                try:
                    u = decode(recrc(b))
                    assert u.dtype == torch.float32 and bool(torch.isfinite(u).all())
                    outcomes["decoded"] += 1
                except CodecError as err:
                    assert "\n" not in str(err) and str(err).startswith("decode:")
                    outcomes["refused"] += 1
                slowest = max(slowest, time.process_time() - t)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert outcomes["refused"] >= 300 and outcomes["decoded"] >= 10, outcomes
    assert slowest < 2.0, slowest
    assert peak < 32 * 2 ** 20, peak


def test_the_residual_decoder_memory_is_a_small_multiple_of_the_image():
    f = _image(256)
    data = encode(f, bpp=0.3, split=0.0)
    tracemalloc.start()
    try:
        u = decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * u.numel() * 4, peak / (u.numel() * 4)


def test_magic_and_version_bytes():
    assert MAGIC == b"PDFc"
    with pytest.raises(CodecError, match="version 3"):
        decode(MAGIC + b"\x03" + bytes(40))


@pytest.mark.slow   # three wavelet encodings
def test_float32_float16_and_float64_images_of_the_same_values_give_the_same_file_with_the_wavelet():
    """The wavelet layer works in float64 whatever the input's dtype, as the inpainting layer does: the same values
    in float16, float32 and float64 give the same bytes, at every split."""
    g = torch.Generator().manual_seed(3)
    f32 = torch.rand(1, 40, 48, generator=g)
    f32 = torch.nn.functional.avg_pool2d(f32[None], 3, 1, 1)[0]        # some structure for both layers
    for split in (None, 0.0, 0.5):
        assert encode(f32, bpp=0.8, split=split) == encode(f32.double(), bpp=0.8, split=split)
        f16 = f32.half()
        assert encode(f16, bpp=0.8, split=split) == encode(f16.double(), bpp=0.8, split=split)
