"""Property-based fuzzing of the file loaders (Hypothesis).

Random bytes, truncated files and bit-flipped files of every format the loaders
read: PNG (8-bit grey, 16-bit colour), JPEG, TIFF (16-bit, float, zlib-compressed
colour), DICOM, and exported models (``.safetensors`` + ``.json``) of TVflowNET
and of the inpainting GANs. The only outcomes allowed are a result (a finite
image in [0, 1], a model) or a ValueError whose message names the file.

Reproducible (``derandomize=True``, no example database) and bounded in time:
``max_examples`` per test, images read with ``max_pixels=2**20`` so that a
flipped size field cannot make one example decode a huge image (the default
limit itself is tested in test_read_image_checks.py).
"""
import functools
import importlib.util
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pdeflow.io import read_image, save_model, write_image  # noqa: E402

# For a longer, random search (not in CI):
# PDEFLOW_FUZZ_SCALE=20 PDEFLOW_FUZZ_RANDOM=1 pytest tests/io/test_fuzz_loaders.py
_SCALE = float(os.environ.get("PDEFLOW_FUZZ_SCALE", "1"))
_RANDOM = os.environ.get("PDEFLOW_FUZZ_RANDOM") == "1"


def fuzz_settings(n: int):
    return settings(max_examples=max(1, int(n * _SCALE)), deadline=None, derandomize=not _RANDOM, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def budgets(n: int) -> list:
    """A quarter of ``n`` examples in make test, all ``n`` in the slow tier."""
    return [pytest.param(max(1, n // 4), id="quarter"), pytest.param(n, id="full", marks=pytest.mark.slow)]


def fuzz(n: int, body) -> None:
    fuzz_settings(n)(given(data=st.data())(body))()


# --------------------------------------------------------------------------- mutations

def mutate(data: st.DataObject, seed: bytes) -> bytes:
    """A truncation, a few bit flips (half of them in the first 300 bytes, where
    the headers are), or random bytes overwriting a stretch."""
    kind = data.draw(st.sampled_from(["truncate", "flip", "flip-header", "overwrite"]))
    n = len(seed)
    if kind == "truncate":
        return seed[:data.draw(st.integers(0, n - 1))]
    if kind in ("flip", "flip-header"):
        top = min(n, 300) if kind == "flip-header" else n
        buf = bytearray(seed)
        for pos, bit in data.draw(st.lists(st.tuples(st.integers(0, top - 1), st.integers(0, 7)),
                                           min_size=1, max_size=8)):
            buf[pos] ^= 1 << bit
        return bytes(buf)
    pos = data.draw(st.integers(0, n - 1))
    junk = data.draw(st.binary(min_size=1, max_size=64))
    return seed[:pos] + junk + seed[pos + len(junk):]


# --------------------------------------------------------------------------- images

def _dicom_seed() -> bytes | None:
    if importlib.util.find_spec("pydicom") is None:
        return None
    import pydicom

    spec = importlib.util.find_spec("pydicom")
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "test_files" / "CT_small.dcm"
    if not p.is_file():
        return None
    ds = pydicom.dcmread(p)
    # A 16x16 crop, so that the header is a large part of the file.
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[:16, :16]).tobytes()
    ds.Rows, ds.Columns = 16, 16
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def image_seeds() -> dict:
    """{format: bytes} of small valid files (a cache, not a fixture, so that
    Hypothesis does not print them with a failing example)."""
    import tifffile
    from PIL import Image

    d = Path(tempfile.mkdtemp(prefix="pdeflow-fuzz-seeds-"))
    g = torch.Generator().manual_seed(0)
    seeds = {}
    write_image(d / "g8.png", torch.rand(1, 12, 10, generator=g))
    seeds["png"] = (d / "g8.png").read_bytes()
    write_image(d / "c16.png", torch.rand(3, 9, 7, generator=g), bits=16)
    seeds["png16"] = (d / "c16.png").read_bytes()
    rgb = (torch.rand(10, 12, 3, generator=g).numpy() * 255).astype(np.uint8)
    Image.fromarray(rgb).save(d / "a.jpg", quality=90)
    seeds["jpg"] = (d / "a.jpg").read_bytes()
    tifffile.imwrite(d / "u16.tif", (torch.rand(9, 11, generator=g).numpy() * 65535).astype(np.uint16))
    seeds["tif"] = (d / "u16.tif").read_bytes()
    tifffile.imwrite(d / "f.tif", torch.rand(8, 8, generator=g).numpy().astype(np.float32))
    seeds["ftif"] = (d / "f.tif").read_bytes()
    tifffile.imwrite(d / "z.tif", rgb, compression="zlib")
    seeds["ztif"] = (d / "z.tif").read_bytes()
    dcm = _dicom_seed()
    if dcm is not None:
        seeds["dcm"] = dcm
    for name, data in seeds.items():  # the seeds themselves read
        p = d / f"seed.{'dcm' if name == 'dcm' else 'img'}"
        p.write_bytes(data)
        assert read_image(p).dim() == 3, name
        p.unlink()
    for p in d.iterdir():
        p.unlink()
    d.rmdir()
    return seeds


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def check_read(path: Path) -> None:
    """A finite image in [0, 1], or a ValueError naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = read_image(path, max_pixels=1 << 20)
    except ValueError as exc:
        assert path.name in str(exc), f"message does not name the file: {exc}"
        return
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.dim() == 3 and out.shape[0] in (1, 3) and out.numel() > 0
    assert bool(torch.isfinite(out).all()) and float(out.min()) >= 0 and float(out.max()) <= 1


MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"II*\x00", b"MM\x00*",
          b"\xff\xd8\xff", b"\x00" * 128 + b"DICM", b"\x08\x00"]


@pytest.mark.parametrize("n", budgets(200))
def test_read_image_random_bytes(workdir, n):
    def random_bytes(data):
        body = data.draw(st.sampled_from(MAGICS)) + data.draw(st.binary(max_size=600))
        suffix = data.draw(st.sampled_from([".png", ".tif", ".dcm", ".jpg", ""]))
        path = workdir / f"fuzz-random{suffix}"
        path.write_bytes(body)
        check_read(path)

    fuzz(n, random_bytes)


@pytest.mark.parametrize("n", budgets(700))
def test_read_image_damaged_files(workdir, n):
    def damaged_file(data):
        seeds = image_seeds()
        name = data.draw(st.sampled_from(sorted(seeds)))
        path = workdir / f"fuzz-damaged-{name}.{'dcm' if name == 'dcm' else name}"
        path.write_bytes(mutate(data, seeds[name]))
        check_read(path)

    fuzz(n, damaged_file)


# --------------------------------------------------------------------------- models

@functools.lru_cache(maxsize=None)
def model_seeds() -> dict:
    """Tiny exported models: {kind: (safetensors bytes, json bytes, json bytes without the checksum)}."""
    from pdeflow.tvflownet.architectures import build_model

    d = Path(tempfile.mkdtemp(prefix="pdeflow-fuzz-models-"))
    torch.manual_seed(0)
    seeds = {}
    m = build_model("semiresnet", width=4, depth=2)
    save_model(m, d / "tv", {"model": m.config, "scale": 5.0, "t_max": 1.0})
    seeds["tvflownet"] = d / "tv"
    if importlib.util.find_spec("pdeflow.inpaint.learned.gan") is not None:
        from pdeflow.inpaint.learned.maskgan import MaskGAN
        from pdeflow.inpaint.learned.wgan import InpaintingGenerator

        gen = InpaintingGenerator(1, width=0.1)
        save_model(gen, d / "inp", config={"kind": "inpainting", "model": gen.config})
        seeds["inpainting"] = d / "inp"
        pair = MaskGAN(1, width=0.1, density=0.1)
        save_model(pair, d / "mg", config={"kind": "maskgan", "model": pair.config})
        seeds["maskgan"] = d / "mg"
    out = {}
    for kind, stem in seeds.items():
        weights, meta = stem.with_suffix(".safetensors").read_bytes(), stem.with_suffix(".json").read_bytes()
        unchecked = json.loads(meta)
        del unchecked["weights"]["sha256"]  # so that damaged weights reach the safetensors parser
        out[kind] = (weights, meta, json.dumps(unchecked, indent=2).encode())
    for p in d.iterdir():
        p.unlink()
    d.rmdir()
    return out


def _loader(kind: str):
    if kind == "tvflownet":
        from pdeflow.tvflownet import api
        return api.load
    from pdeflow.inpaint.learned import gan
    return gan.load_mask_gan if kind == "maskgan" else gan.load_wgan


def check_load(kind: str, stem: Path) -> None:
    """A model, or a ValueError naming one of its files."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _loader(kind)(stem.with_suffix(".json"))
    except ValueError as exc:
        assert stem.name in str(exc), f"message does not name the file: {exc}"
        return
    assert isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("n", budgets(250))
def test_model_loaders_damaged_files(workdir, n):
    def damaged_model(data):
        seeds = model_seeds()
        kind = data.draw(st.sampled_from(sorted(seeds)))
        weights, meta, unchecked = seeds[kind]
        target = data.draw(st.sampled_from(["json", "weights", "weights-unchecked", "random"]))
        stem = workdir / f"fuzz-model-{kind}"
        if target == "json":
            weights, meta = weights, mutate(data, meta)
        elif target == "weights":
            weights = mutate(data, weights)
        elif target == "weights-unchecked":
            weights, meta = mutate(data, weights), unchecked
        else:
            which = data.draw(st.sampled_from(["weights", "meta"]))
            junk = data.draw(st.binary(max_size=400))
            weights, meta = (junk, unchecked) if which == "weights" else (weights, junk)
        stem.with_suffix(".safetensors").write_bytes(weights)
        stem.with_suffix(".json").write_bytes(meta)
        check_load(kind, stem)

    fuzz(n, damaged_model)


def test_model_loaders_mismatched_pair(workdir):
    """A JSON whose configuration does not match its weights (no checksum): ValueError naming the files."""
    weights, _, unchecked = model_seeds()["tvflownet"]
    meta = json.loads(unchecked)
    meta["config"]["model"]["width"] = 5
    stem = workdir / "mismatch"
    stem.with_suffix(".safetensors").write_bytes(weights)
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"weights in .*mismatch\.safetensors do not fit the model described by "
                                         r".*mismatch\.json \(.*size mismatch"):
        _loader("tvflownet")(stem)
    meta["config"]["model"]["width"] = "wide"
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"model configuration in .*mismatch\.json cannot be built"):
        _loader("tvflownet")(stem)
    stem.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"mismatch\.json is not a model's metadata"):
        _loader("tvflownet")(stem)
    stem.with_suffix(".json").write_text('{"config": ')
    with pytest.raises(ValueError, match=r"mismatch\.json is not valid JSON"):
        _loader("tvflownet")(stem)
