"""pdeflow.codec: round trips, budgets, the file format's checks, and the decoder against damaged data."""
from __future__ import annotations

import math
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import torch

from pdeflow.codec import CODEC_OPERATORS, CodecError, decode, encode, load, save
from pdeflow.codec.format import MAGIC, MAX_PIXELS, read_header
from pdeflow.errors import UserInputError


@pytest.fixture(scope="module", autouse=True)
def _inpainting_layer_alone():
    """These tests are about the inpainting layer: here the encoder's default split is the inpainting alone
    (the residual layer and the split: tests/codec/test_codec_residual.py)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("pdeflow.codec.encoder.SPLITS", (1.0,))
        yield


def _image(size=48, colour=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                          torch.linspace(0, 1, size, dtype=torch.float64), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(5 * x + 3 * y) * torch.cos(4 * y)
    base = base + (x > 0.6).double() * 0.15 + 0.02 * torch.rand(size, size, dtype=torch.float64, generator=g)
    base = base.clamp(0, 1)
    if not colour:
        return base
    return torch.stack([base, (1 - base) * 0.8 + 0.1, (0.3 + 0.5 * x).clamp(0, 1)])


def _psnr(u, f):
    return 10 * math.log10(1 / float((u.double() - f).square().mean()))


@pytest.fixture(scope="module")
def grey_file():
    f = _image()
    return f, encode(f, bpp=0.5)


def test_round_trip_grey_meets_budget_and_beats_mean(grey_file):
    f, data = grey_file
    assert len(data) <= 0.5 * 48 * 48 / 8
    u = decode(data)
    assert u.shape == (1, 48, 48) and u.dtype == torch.float32
    assert 0 <= float(u.min()) and float(u.max()) <= 1
    # far better than the flat image at the mean
    assert _psnr(u[0], f) > _psnr(torch.full_like(f, float(f.mean())), f) + 8


def test_size_budget_and_full_output():
    f = _image(40)
    r = encode(f, size=150, full_output=True)
    assert len(r.data) <= 150 and r.known >= 1
    assert torch.equal(decode(r.data), r.reconstruction)     # the encoder knows what the decoder gives


@pytest.mark.slow   # two more encodings
def test_colour_and_16_bit():
    f = _image(40, colour=True)
    data = encode(f, bpp=1.0)
    u = decode(data)
    assert u.shape == (3, 40, 40)
    assert _psnr(u, f) > 22
    a16 = (_image(40).numpy() * 65535).round().astype(np.uint16)
    d16 = encode(a16, bpp=0.5)
    assert read_header(d16)[0].bit_depth == 16
    assert _psnr(decode(d16)[0], torch.from_numpy(a16 / 65535.0)) > 22
    a8 = (_image(40).numpy() * 255).round().astype(np.uint8)
    assert read_header(encode(a8, bpp=0.5))[0].bit_depth == 8


def test_save_load(tmp_path):
    f = _image(32)
    p = save(tmp_path / "x.pdc", f, bpp=0.5)
    assert torch.equal(load(p), decode(p.read_bytes()))
    with pytest.raises(UserInputError):
        load(tmp_path / "missing.pdc")
    with pytest.raises(UserInputError):
        load(tmp_path)


def test_lattice_positions_and_header():
    f = _image(40)
    data = encode(f, bpp=0.4, lattice=3)
    h = read_header(data)[0]
    assert h.lattice == 3 and h.grid == (14, 14)
    with pytest.raises(UserInputError, match="lattice"):
        encode(f, bpp=0.4, lattice=0)


def test_deterministic_across_thread_counts(grey_file):
    _, data = grey_file
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = decode(data)
        torch.set_num_threads(2)
        b = decode(data)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(a, b) and torch.equal(a, decode(data))


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one of bpp and size"),
    ({"bpp": 0.1, "size": 10}, "exactly one"),
    ({"bpp": -1}, "bpp must be"),
    ({"size": 0}, "size must be"),
    ({"size": 5}, "too small"),
    ({"bpp": 0.5, "levels": 1}, "levels"),
    ({"bpp": 0.5, "tonal": 1}, "tonal"),
    ({"bpp": 0.5, "operator": "tv"}, f"operator must be one of {', '.join(map(repr, CODEC_OPERATORS))}, got 'tv'"),
])
def test_encode_refuses_bad_options(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        encode(_image(16), **kwargs)


def test_encode_refuses_bad_images():
    with pytest.raises(UserInputError, match=r"\[0, 1\]"):
        encode(_image(16) * 2, bpp=1)
    with pytest.raises(UserInputError, match="shape"):
        encode(torch.zeros(2, 16, 16), bpp=1)
    with pytest.raises(UserInputError):
        encode(torch.zeros(16, 16, dtype=torch.int64), bpp=1)


def _rewrite(data: bytes, offset: int, fmt: str, value) -> bytes:
    """``data`` with a header field replaced and the CRC recomputed (a crafted file, not a damaged one)."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    struct.pack_into("<I", b, 5, zlib.crc32(bytes(b[9:])))
    return bytes(b)


@pytest.mark.parametrize("offset, fmt, value, match", [
    (4, "<B", 9, "version"),
    (9, "<H", 1, "size"),
    (13, "<B", 2, "channels"),
    (14, "<B", 12, "bit depth"),
    (15, "<B", 1, "colour transform"),
    (16, "<B", 7, "operator"),
    (17, "<B", 200, "operator parameter|truncated"),
    (18, "<B", 0, "tolerance"),
    (19, "<B", 0, "lattice"),
    (20, "<I", 0, "known pixels"),
    (20, "<I", 10 ** 9, "known pixels"),
    (24, "<H", 1, "quantisation levels"),
    (26, "<h", 30000, "value range"),
])
def test_crafted_headers_are_refused(grey_file, offset, fmt, value, match):
    _, data = grey_file
    bad = _rewrite(data, offset, fmt, value)
    if offset == 4:        # the version byte is read before the CRC
        bad = data[:4] + bytes([value]) + data[5:]
    with pytest.raises(CodecError, match=match):
        decode(bad)


def test_pixel_limit_is_checked_before_allocating(grey_file):
    _, data = grey_file
    big = _rewrite(_rewrite(data, 9, "<H", 65535), 11, "<H", 65535)
    with pytest.raises(CodecError, match="max_pixels"):
        decode(big)
    assert 65535 * 65535 > MAX_PIXELS
    with pytest.raises(CodecError, match="max_pixels"):
        decode(data, max_pixels=100)


def test_not_a_file():
    for bad in (b"", b"PD", b"\x89PNG\r\n\x1a\n", MAGIC, MAGIC + b"\x01", MAGIC + b"\x01" + b"\0" * 30):
        with pytest.raises(CodecError):
            decode(bad)
    with pytest.raises(CodecError, match="bytes"):
        decode("a string")


def _one_line(err):
    return "\n" not in str(err) and str(err).startswith("decode:")


@pytest.fixture(scope="module")
def colour_file():
    return encode(_image(32, colour=True), bpp=1.5)


@pytest.mark.slow   # hundreds of decodes; tests/codec/test_codec_edge_cases.py keeps the refusals
def test_fuzz_truncated_flipped_random_and_crafted(grey_file, colour_file):
    """Hundreds of damaged files: every one is refused with one line (or, for a crafted file with a valid
    CRC, decodes to an image of the declared shape); nothing else is raised, no decode takes long, and the
    decoder's NumPy allocations stay small."""
    rng = np.random.default_rng(0)
    outcomes = {"refused": 0, "decoded": 0}
    slowest = 0.0

    def attempt(bad, crafted=False):
        nonlocal slowest
        t = time.perf_counter()
        try:
            u = decode(bad)
        except CodecError as err:
            assert _one_line(err), str(err)
            outcomes["refused"] += 1
            return
        finally:
            slowest = max(slowest, time.perf_counter() - t)
        assert crafted, "a damaged file decoded without an error"
        assert u.dtype == torch.float32 and bool(torch.isfinite(u).all())
        outcomes["decoded"] += 1

    tracemalloc.start()
    try:
        for data, header in ((grey_file[1], 30), (colour_file, 42)):
            for n in range(0, len(data), max(1, len(data) // 40)):          # truncations
                attempt(data[:n])
            for _ in range(80):                                             # bit flips (the CRC catches them)
                b = bytearray(data)
                i = int(rng.integers(len(b)))
                b[i] ^= 1 << int(rng.integers(8))
                attempt(bytes(b))
            for _ in range(50):                                             # random bytes, with and without magic
                attempt(rng.bytes(int(rng.integers(1, 200))))
                attempt(MAGIC + b"\x01" + rng.bytes(int(rng.integers(1, 200))))
            for _ in range(60):                                             # crafted: random payload, valid CRC
                b = bytearray(data)
                b[header:] = rng.bytes(len(b) - header)
                struct.pack_into("<I", b, 5, zlib.crc32(bytes(b[9:])))
                attempt(bytes(b), crafted=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(outcomes.values()) >= 500
    assert outcomes["refused"] >= 350
    assert slowest < 10, slowest
    assert peak < 32 * 2 ** 20, peak


def test_the_operator_field_selects_the_inpainting(grey_file):
    """Operator 1 (edge-enhancing diffusion, its contrast and presmoothing in the parameter bytes) decodes the
    same stored pixels with that operator; homogeneous diffusion refuses parameter bytes."""
    from pdeflow.codec.decoder import operator_params
    from pdeflow.codec.entropy import RangeReader, decode_mask
    from pdeflow.codec.format import write_header
    from pdeflow.inpaint.operators.eed import inpaint_eed

    _, data = grey_file
    h, payload = read_header(data)
    cy, cx = decode_mask(RangeReader(payload), *h.grid, h.known)
    m = torch.zeros(48, 48, dtype=torch.float64)
    m[torch.from_numpy(cy * h.lattice), torch.from_numpy(cx * h.lattice)] = 1
    plain = decode(data)
    g = torch.where(m > 0, plain[0].double(), torch.zeros_like(m))   # homogeneous diffusion keeps the stored values
    h.operator, h.operator_params = 1, operator_params("eed", contrast=0.02, sigma=1.0)
    u = decode(write_header(h, payload))
    ref = inpaint_eed(g, m, contrast=round(0.02 * 65535) / 65535, sigma=1.0, tol=10.0 ** -h.tol_exponent).clamp(0, 1)
    assert torch.allclose(u[0].double(), ref, atol=1e-5)
    assert not torch.equal(u, plain)
    h.operator, h.operator_params = 0, b"\x01\x02\x03\x04"
    with pytest.raises(CodecError, match="no operator parameters"):
        decode(write_header(h, payload))


@pytest.mark.slow   # an EED encoding; the twin operator test keeps a non-default operator in make test
def test_an_eed_file_records_its_operator_meets_the_budget_and_beats_the_same_mask_with_its_own_values():
    """encode(operator="eed"): the header names EED with the library's defaults, the decoder is EED on the stored
    values, and the encoder's values (optimised for EED) beat the image's own on the same mask."""
    from pdeflow.codec.entropy import RangeReader, decode_mask
    from pdeflow.inpaint.operators.eed import CONTRAST, SIGMA, inpaint_eed

    y, x = torch.meshgrid(torch.linspace(0, 1, 48, dtype=torch.float64),
                          torch.linspace(0, 1, 48, dtype=torch.float64), indexing="ij")
    f = (0.2 + 0.3 * x + 0.4 * (x + 0.3 * y > 0.6).double())[None]
    r = encode(f, bpp=0.6, operator="eed", full_output=True)
    assert len(r.data) <= 0.6 * 48 * 48 / 8
    h, payload = read_header(r.data)
    assert (h.operator, h.tol_exponent) == (1, 4)
    contrast, sigma = struct.unpack("<HH", h.operator_params)
    assert abs(contrast / 65535 - CONTRAST) < 1e-4 and sigma / 256 == SIGMA
    assert torch.equal(decode(r.data), r.reconstruction)
    cy, cx = decode_mask(RangeReader(payload), *h.grid, h.known)
    m = torch.zeros(48, 48, dtype=torch.float64)
    m[torch.from_numpy(cy * h.lattice), torch.from_numpy(cx * h.lattice)] = 1
    own = inpaint_eed(f[0], m, tol=1e-4).clamp(0, 1)

    def mse(u):
        return float((u.double() - f[0]).square().mean())

    assert mse(r.reconstruction[0]) < 0.8 * mse(own)


@pytest.mark.slow   # encodings at two lattices
def test_the_full_pixel_grid_replaces_a_lattice_of_step_2_where_it_inpaints_better():
    """A piecewise-smooth scene at 0.2 bpp (automatic lattice step 2): the encoder codes on the full grid, whose
    points can sit on both sides of the edges, and beats the file forced onto the lattice."""
    from pdeflow.evaluate.codec import smooth_set

    f = smooth_set(1, size=256, seed=0)["smooth-0"].double()
    budget = int(0.2 * 256 * 256 / 8)
    free, forced = encode(f, size=budget, full_output=True), encode(f, size=budget, lattice=2, full_output=True)
    assert read_header(free.data)[0].lattice == 1 and read_header(forced.data)[0].lattice == 2

    def mse(r):
        return float((r.reconstruction.double() - f).square().mean())

    assert mse(free) < mse(forced)


def test_rate_control_falls_back_to_the_images_own_values(monkeypatch):
    """Optimised values that never fit the budget: the file stores the image's own values at the count that
    fits (not a single point)."""
    import dataclasses

    import pdeflow.codec.encoder as enc
    code = enc.code_image

    def too_big(*args, **kwargs):
        r = code(*args, **kwargs)
        return dataclasses.replace(r, data=r.data + bytes(10_000)) if kwargs.get("tonal") else r

    monkeypatch.setattr(enc, "code_image", too_big)
    f = _image(48)
    r = encode(f, bpp=0.5, full_output=True)
    assert len(r.data) <= 0.5 * 48 * 48 / 8 and r.known > 20
    assert _psnr(decode(r.data)[0], f) > 20


@pytest.mark.slow   # two full encodings
def test_float32_and_float64_images_of_the_same_values_give_the_same_file():
    """The encoder works in float64 whatever the input's dtype (documented), so a float32 image and the same
    values in float64 give the same bytes, and the decoder's float32 output is its float64 result rounded."""
    f32 = _image(32).float()
    assert encode(f32, bpp=0.5) == encode(f32.double(), bpp=0.5)
    f16 = f32.half()
    assert encode(f16, bpp=0.5) == encode(f16.double(), bpp=0.5)
