"""Tests for pdeflow.io and pdeflow.datasets: image IO, atomic writes, built-in pool, crops, synthetic images."""
import hashlib
import os
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from scipy import ndimage

from pdeflow import datasets
from pdeflow import io as pio
from pdeflow.datasets import (
    builtin_image,
    builtin_info,
    builtin_names,
    builtin_pool,
    disk,
    disks,
    ellipses,
    plateau_1d,
    random_crops,
)
from pdeflow.io import atomic_path, atomic_write, read_image, write_image


def rand(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------- read/write

@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_write_read_roundtrip(tmp_path, ext, bits, channels):
    x = rand(channels, 23, 31, seed=bits + channels)
    p = write_image(tmp_path / f"img.{ext}", x, bits=bits)
    assert p == tmp_path / f"img.{ext}"
    y = read_image(p)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert (x - y).abs().max() <= 0.5 / (2 ** bits - 1) + 1e-7
    # the stored integers are exactly round(x * max)
    q = np.rint(x.double().numpy() * (2 ** bits - 1))
    assert np.array_equal(np.rint(y.double().numpy() * (2 ** bits - 1)), q)
    assert sorted(os.listdir(tmp_path)) == [f"img.{ext}"]  # no temp file left


def test_write_2d_clips_and_reads_grey(tmp_path):
    x = torch.linspace(-0.5, 1.5, 40).reshape(4, 10)
    y = read_image(write_image(tmp_path / "a.png", x))
    assert y.shape == (1, 4, 10)
    assert y.min() == 0 and y.max() == 1
    assert torch.allclose(y[0], x.clamp(0, 1), atol=0.5 / 255 + 1e-7)


def test_read_known_integer_values(tmp_path):
    a8 = np.array([[0, 1, 128, 255]], np.uint8)
    Image.fromarray(a8).save(tmp_path / "g8.png")
    assert torch.equal(read_image(tmp_path / "g8.png")[0], torch.from_numpy(a8 / 255.0).float())
    a16 = np.array([[0, 1, 40000, 65535]], np.uint16)
    Image.fromarray(a16).save(tmp_path / "g16.png")  # Pillow writes grey 16-bit PNG
    assert torch.equal(read_image(tmp_path / "g16.png")[0], torch.from_numpy(a16 / 65535.0).float())
    tifffile.imwrite(tmp_path / "c16.tif", np.stack([a16, a16[:, ::-1], a16], -1), photometric="rgb")
    c = read_image(tmp_path / "c16.tif")
    assert c.shape == (3, 1, 4) and torch.equal(c[1, 0], torch.from_numpy(a16[0, ::-1] / 65535.0).float())


def _png16_with_filters(arr):
    """Encode uint16 (H, W, C) as a PNG using filter type (row % 5) on each row."""
    h, w, c = arr.shape
    rows = arr.astype(">u2").reshape(h, w * c).view(np.uint8).astype(int)
    bpp = 2 * c
    out = bytearray()
    prev = [0] * rows.shape[1]
    for i in range(h):
        f = i % 5
        cur = rows[i].tolist()
        filt = []
        for j, v in enumerate(cur):
            a = cur[j - bpp] if j >= bpp else 0
            b = prev[j]
            cc = prev[j - bpp] if j >= bpp else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            filt.append((v - pred) % 256)
        out += bytes([f]) + bytes(filt)
        prev = cur

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_read_16bit_colour_png_all_filters(tmp_path, channels):
    rng = np.random.default_rng(channels)
    arr = rng.integers(0, 65536, (10, 7, channels), dtype=np.uint16)
    (tmp_path / "c.png").write_bytes(_png16_with_filters(arr))
    y = read_image(tmp_path / "c.png")
    assert y.shape == (3, 10, 7)  # alpha dropped
    ref = torch.from_numpy(np.moveaxis(arr[..., :3] / 65535.0, -1, 0)).float()
    assert torch.equal(y, ref)


def test_grey_conversion_and_alpha(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 255, 100, 20, 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    c = read_image(tmp_path / "c.png")
    assert c.shape == (3, 2, 3)  # alpha dropped
    g = read_image(tmp_path / "c.png", grey=True)
    assert g.shape == (1, 2, 3)
    expected = (0.299 * 255 + 0.587 * 100 + 0.114 * 20) / 255
    assert torch.allclose(g, torch.full_like(g, expected))
    Image.fromarray(np.full((2, 3), 200, np.uint8)).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png", grey=False).shape == (3, 2, 3)
    Image.fromarray(rgba[..., [0, 3]].copy(), "LA").save(tmp_path / "la.png")
    assert torch.allclose(read_image(tmp_path / "la.png"), torch.ones(1, 2, 3))


def test_read_jpeg(tmp_path):
    rgb = (rand(3, 32, 40, seed=3).numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    y = read_image(tmp_path / "a.jpg")
    assert y.shape == (3, 32, 40) and 0 <= y.min() and y.max() <= 1
    assert read_image(tmp_path / "a.jpg", grey=True).shape == (1, 32, 40)


def test_read_float_tiff(tmp_path):
    a = rand(12, 9, seed=4).numpy()
    tifffile.imwrite(tmp_path / "f.tif", a)
    assert torch.equal(read_image(tmp_path / "f.tif")[0], torch.from_numpy(a))
    tifffile.imwrite(tmp_path / "big.tif", a * 10 - 3)
    with pytest.raises(ValueError, match="outside \\[0, 1\\].*rescale='minmax'"):
        read_image(tmp_path / "big.tif")
    y = read_image(tmp_path / "big.tif", rescale="minmax")
    assert y.min() == 0 and y.max() == 1
    assert torch.allclose(y[0], torch.from_numpy((a - a.min()) / (a.max() - a.min())), atol=1e-6)


def test_read_dicom(pydicom_file):
    import pydicom

    p = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(p)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    ref = (hu - hu.min()) / (hu.max() - hu.min())
    y = read_image(p)
    assert y.shape == (1, 128, 128) and y.dtype == torch.float32
    assert y.min() == 0 and y.max() == 1
    assert torch.allclose(y[0], torch.from_numpy(ref).float())


def test_read_errors(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(missing)
    (tmp_path / "notes.txt").write_text("hello, not an image\n")
    with pytest.raises(ValueError, match=r"could not read .*notes.txt.* as an image \(expected PNG/JPEG/TIFF/DICOM\)"):
        read_image(tmp_path / "notes.txt")
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="as an image"):
        read_image(tmp_path / "fake.png")
    with pytest.raises(ValueError, match="grey"):
        read_image(tmp_path / "notes.txt", grey="yes")


# --------------------------------------------------------------------- atomic writes

def test_write_refuses_overwrite(tmp_path):
    p = write_image(tmp_path / "a.png", torch.zeros(4, 4))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_image(p, torch.ones(4, 4))
    assert read_image(p).max() == 0
    write_image(p, torch.ones(4, 4), overwrite=True)
    assert read_image(p).min() == 1
    assert os.listdir(tmp_path) == ["a.png"]


def test_no_temp_file_after_failed_write(tmp_path):
    def bad_writer(tmp):
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "out.bin", bad_writer)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "n.png", torch.full((3, 3), float("nan")))
    with pytest.raises(ValueError, match=r"C = 1 or 3"):
        write_image(tmp_path / "c.png", torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=".png"):
        write_image(tmp_path / "c.jpg", torch.zeros(3, 3))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_image(tmp_path / "sub" / "c.png", torch.zeros(3, 3))
    assert os.listdir(tmp_path) == []


def test_atomic_helpers(tmp_path):
    target = tmp_path / "x.txt"
    seen = []

    def writer(tmp):
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp.suffix == ".txt" and tmp != target
        tmp.write_text("one")

    assert atomic_write(target, writer) == target
    assert target.read_text() == "one" and not seen[0].exists()
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    with pytest.raises(FileExistsError):
        atomic_write(target, writer)
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("two")
        assert target.read_text() == "one"  # untouched until the block ends
    assert target.read_text() == "two"
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "y.txt") as tmp:
            tmp.write_text("half")
            raise KeyError("boom")
    assert sorted(os.listdir(tmp_path)) == ["x.txt"]


# --------------------------------------------------------------------- built-in pool

def _no_network(*args, **kwargs):
    raise OSError("network access attempted")


@pytest.fixture(scope="module")
def pool_all():
    """The whole pool, loaded with network connections made to fail."""
    saved = socket.socket.connect
    socket.socket.connect = _no_network
    try:
        return builtin_pool("all")
    finally:
        socket.socket.connect = saved


def test_builtin_pool_loads_offline(monkeypatch, pool_all):
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    names = builtin_names()
    assert len(names) >= 20
    assert list(pool_all) == names
    for name in names:
        img = pool_all[name]
        assert img.dtype == torch.float32 and img.dim() == 3 and img.shape[0] == 1, name
        assert img.min() >= 0 and img.max() <= 1 and img.max() > img.min(), name
        assert min(img.shape[1:]) >= 64, name
        assert builtin_info(name)["kind"] in ("photo", "microscopy", "medical")
    assert builtin_pool("test", kind="medical").keys() == set(builtin_names("test", kind="medical"))


def test_builtin_values_match_sources():
    import pywt.data
    from skimage import data as skdata

    cam = builtin_image("skimage/camera")
    assert torch.equal(cam[0], torch.from_numpy(skdata.camera() / 255.0).float())
    assert torch.equal(builtin_image("pywt/ascent")[0], torch.from_numpy(pywt.data.ascent() / 255.0).float())
    ast = builtin_image("skimage/astronaut", grey=None)
    assert ast.shape == (3, 512, 512)
    assert torch.equal(ast, torch.from_numpy(np.moveaxis(skdata.astronaut(), -1, 0) / 255.0).float())
    assert builtin_image("skimage/astronaut", grey=False).shape == (3, 512, 512)
    assert builtin_image("pywt/ascent", grey=False).shape == (3, 512, 512)


def test_builtin_split_is_by_source(pool_all):
    train, test = builtin_names("train"), builtin_names("test")
    assert train and test
    assert not set(train) & set(test)
    assert sorted(train + test) == builtin_names("all")
    assert all(builtin_info(n)["split"] == "train" for n in train)
    # no photograph appears twice in the pool (e.g. skimage camera == pywt camera)
    digests = {}
    for name, img in pool_all.items():
        small = torch.nn.functional.interpolate(img[None], size=(32, 32), mode="area")[0]
        key = hashlib.sha1(np.round(small.numpy() * 50).astype(np.int8).tobytes()).hexdigest()
        assert key not in digests, (name, digests.get(key))
        digests[key] = name
    assert "pywt/camera" not in builtin_names() and "skimage/cat" not in builtin_names()
    assert set(builtin_names(kind="medical")) <= set(builtin_names())
    with pytest.raises(ValueError, match="split"):
        builtin_names("val")
    with pytest.raises(ValueError, match="available"):
        builtin_image("skimage/no_such_image")


# --------------------------------------------------------------------- crops

def test_random_crops_seeded():
    imgs = [rand(1, 50, 60, seed=1), rand(1, 40, 33, seed=2)]
    a = random_crops(imgs, 6, 32, generator=11)
    assert a.shape == (6, 1, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, random_crops(imgs, 6, 32, generator=11))
    assert not torch.equal(a, random_crops(imgs, 6, 32, generator=12))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(random_crops(imgs, 3, (16, 20), generator=g1), random_crops(imgs, 3, (16, 20), generator=g2))
    assert random_crops({"a": imgs[0]}, 2, (16, 20), generator=0).shape == (2, 1, 16, 20)
    # every crop is a window of one of the source images
    for crop in a:
        assert any(_contains(im, crop) for im in imgs)
    # return_picks names that image, and the crops are the same draws
    b, picks = random_crops(imgs, 6, 32, generator=11, return_picks=True)
    assert torch.equal(a, b) and len(picks) == 6 and set(picks) <= {0, 1}
    for crop, j in zip(b, picks):
        assert _contains(imgs[j], crop)


def _contains(im, crop):
    H, W = im.shape[-2:]
    h, w = crop.shape[-2:]
    return any(torch.equal(im[:, i:i + h, j:j + w], crop) for i in range(H - h + 1) for j in range(W - w + 1))


def test_random_crops_reflect_padding():
    im = torch.arange(36.0).reshape(1, 6, 6)
    crops = random_crops([im], 10, 9, generator=3)
    padded = torch.nn.functional.pad(im[None], (3, 3, 3, 3), mode="reflect")[0]
    for crop in crops:
        assert _contains(padded, crop)
    # tiny image, pads larger than the image still work
    tiny = random_crops([torch.arange(4.0).reshape(1, 2, 2)], 2, 7, generator=0)
    assert tiny.shape == (2, 1, 7, 7) and set(tiny.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    zero = random_crops([torch.ones(1, 2, 2)], 4, 5, generator=0, pad_mode="constant")
    assert zero.sum(dim=(1, 2, 3)).tolist() == [4.0] * 4


def test_random_crops_errors():
    with pytest.raises(ValueError, match="same number of channels"):
        random_crops([torch.zeros(1, 8, 8), torch.zeros(3, 8, 8)], 1, 4)
    with pytest.raises(ValueError, match="not seed and generator"):
        random_crops([torch.zeros(1, 8, 8)], 1, 4, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="pad_mode"):
        random_crops([torch.zeros(1, 8, 8)], 1, 4, pad_mode="wrap")
    with pytest.raises(ValueError, match="size"):
        random_crops([torch.zeros(1, 8, 8)], 1, 0)


# --------------------------------------------------------------------- synthetic images

def test_disk():
    d = disk(64, 10.0, height=0.7, background=0.1)
    assert d.shape == (1, 64, 64) and d.dtype == torch.float32
    assert torch.allclose(d.unique(), torch.tensor([0.1, 0.7]))
    area = int((d > 0.5).sum())
    assert abs(area - np.pi * 100) < 2 * np.pi * 10  # within one perimeter
    assert torch.equal(d, d.flip(-1)) and torch.equal(d, d.flip(-2))  # centred
    off = disk((20, 30), 3, center=(5, 6))
    assert off[0, 5, 6] == 1 and off[0, 5, 10] == 0 and off[0, 5, 9] == 1
    with pytest.raises(ValueError, match="radius"):
        disk(10, -1)


def test_disks():
    x = disks(96, 5, seed=0, height_range=(0.2, 1.0))
    assert x.shape == (1, 96, 96) and x.dtype == torch.float32
    assert torch.equal(x, disks(96, 5, seed=0))
    assert not torch.equal(x, disks(96, 5, seed=1))
    lab, k = ndimage.label(x[0].numpy() > 0, structure=np.ones((3, 3)))
    assert k == 5  # isolated (not even touching diagonally)
    heights = [float(x[0][torch.from_numpy(lab == i)].unique()[0]) for i in range(1, 6)]
    assert all(0.2 <= h <= 1.0 for h in heights) and len(set(heights)) == 5
    assert x[0, 0].abs().sum() == 0 and x[0, :, 0].abs().sum() == 0  # margin to the border
    areas = sorted(int((lab == i).sum()) for i in range(1, 6))
    assert len(set(areas)) > 1  # different radii
    b = disks(64, 3, seed=2, batch=4, background=0.5)
    assert b.shape == (4, 1, 64, 64) and (b >= 0.5).all()
    assert not torch.equal(b[0], b[1])
    with pytest.raises(ValueError, match="could not place"):
        disks(32, 50, seed=0, radius_range=(6, 8), max_tries=20)


def test_ellipses():
    x = ellipses(64, 6, seed=0, intensity_range=(0.2, 0.9))
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32
    assert torch.equal(x, ellipses(64, 6, seed=0, intensity_range=(0.2, 0.9)))
    vals = x.unique()
    assert ((vals == 0) | ((vals >= 0.2) & (vals <= 0.9))).all()
    assert 3 <= len(vals) <= 7  # background plus up to six intensities
    b = ellipses((48, 40), 4, seed=1, batch=3)
    assert b.shape == (3, 1, 48, 40)
    added = ellipses(64, 6, seed=0, combine="add")
    assert added.max() >= x.max()
    with pytest.raises(ValueError, match="combine"):
        ellipses(64, 2, seed=0, combine="max")


def _distinct(x: torch.Tensor) -> list[int]:
    return [int(img.unique().numel()) for img in x]


def test_rectangles_and_polygons_are_piecewise_constant_seeded_and_batched():
    for make in (datasets.rectangles, datasets.polygons):
        x = make(48, 4, seed=3, batch=5, intensity_range=(0.3, 0.8))
        assert x.shape == (5, 1, 48, 48) and x.dtype == torch.float32
        assert torch.equal(x, make(48, 4, seed=3, batch=5, intensity_range=(0.3, 0.8)))      # seeded
        assert not torch.equal(x, make(48, 4, seed=4, batch=5, intensity_range=(0.3, 0.8)))
        assert all(2 <= k <= 5 for k in _distinct(x))                     # background + up to 4 heights
        vals = x.unique()
        assert ((vals == 0) | ((vals >= 0.3) & (vals <= 0.8))).all()
        assert make((40, 24), 2, seed=0).shape == (1, 40, 24)
        assert make(32, 2, seed=0, dtype=torch.float64).dtype == torch.float64
    r = datasets.rectangles(64, 1, seed=1, side_range=(10, 20))[0]             # one axis-aligned box
    rows, cols = (r > 0).any(1).nonzero(), (r > 0).any(0).nonzero()
    assert int((r > 0).sum()) == len(rows) * len(cols) and 10 <= len(rows) <= 21
    p = datasets.polygons(64, 1, seed=2, sides=(5, 5), radius_range=(20, 20), intensity_range=(1, 1))[0]
    lab, k = ndimage.label(p.numpy() > 0)
    assert k == 1 and ndimage.binary_fill_holes(p.numpy() > 0).sum() == (p > 0).sum()      # one solid shape
    with pytest.raises(ValueError, match="sides"):
        datasets.polygons(32, 1, seed=0, sides=(2, 4))
    with pytest.raises(ValueError, match="side_range"):
        datasets.rectangles(32, 1, seed=0, side_range=(5, 1))


def test_smooth_and_piecewise_smooth_images():
    f = datasets.smooth_field(64, seed=0, batch=8, value_range=(0.2, 0.6))
    assert f.shape == (8, 1, 64, 64)
    assert torch.allclose(f.amin((1, 2, 3)), torch.tensor(0.2)) and torch.allclose(f.amax((1, 2, 3)), torch.tensor(0.6))
    assert float((f[..., 1:] - f[..., :-1]).abs().max()) < 0.1                 # smooth: small pixel steps
    x = datasets.piecewise_smooth(64, 4, seed=1, batch=16)
    assert x.shape == (16, 1, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x, datasets.piecewise_smooth(64, 4, seed=1, batch=16))
    assert min(_distinct(x)) > 1000                                           # not piecewise constant
    steps = (x[..., 1:] - x[..., :-1]).abs()
    assert 0.005 < float((steps > 0.05).float().mean()) < 0.1                   # jumps at the edges only
    plain = datasets.piecewise_smooth(64, 0, seed=1, batch=16)                 # no shapes: smooth everywhere
    assert float((plain[..., 1:] - plain[..., :-1]).abs().max()) < 0.05
    with pytest.raises(ValueError, match="amplitude"):
        datasets.piecewise_smooth(32, 1, seed=0, amplitude=0.7)


def test_scenes_mix_kinds_in_equal_shares_from_one_seed():
    kinds = ("disks", "ellipses", "smooth")
    x = datasets.scenes(kinds, 32, seed=5, batch=7)                           # shares 3, 2, 2
    assert x.shape == (7, 1, 32, 32) and torch.equal(x, datasets.scenes(kinds, 32, seed=5, batch=7))
    assert torch.equal(x[:3], datasets.disks(32, 2, seed=5, batch=3))          # 32 // 16 = 2 shapes each
    assert torch.equal(x[3:5], datasets.ellipses(32, 2, seed=5, batch=2))
    assert torch.equal(x[5:], datasets.piecewise_smooth(32, 2, seed=5, batch=2))
    assert max(_distinct(x[:5])) <= 3 and min(_distinct(x[5:])) > 100
    assert datasets.scenes(("polygons",), 16, seed=0, batch=1, n_shapes=3).shape == (1, 1, 16, 16)
    assert set(datasets.SCENES) == {"disks", "ellipses", "rectangles", "polygons", "smooth"}
    with pytest.raises(ValueError, match="kinds"):
        datasets.scenes(("stars",), 16, seed=0, batch=2)
    with pytest.raises(ValueError, match="kinds"):
        datasets.scenes("disks", 16, seed=0, batch=2)


def test_plateau_1d():
    p = plateau_1d((5, 12), [3, 6, 3], [0.0, 1.0, 0.25])
    assert p.shape == (1, 5, 12) and p.dtype == torch.float32
    assert torch.equal(p[0, 0], torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1, 0.25, 0.25, 0.25]))
    assert (p == p[:, :1]).all()  # constant along H
    assert plateau_1d(8, [4, 4], [1, 0]).shape == (1, 8, 8)
    with pytest.raises(ValueError, match="sum to the image width"):
        plateau_1d(8, [4, 3], [1, 0])
    with pytest.raises(ValueError, match="equal length"):
        plateau_1d(8, [4, 4], [1])


def test_module_exports():
    for mod in (pio, datasets):
        for name in mod.__all__:
            assert hasattr(mod, name)


# --------------------------------------------------------------------------- training images

def _folder_of_images(root: Path, n: int) -> Path:
    root.mkdir()
    (root / "sub").mkdir()
    for i in range(n):
        img = torch.full((1, 12, 10), i / n)                    # image i has value i / n everywhere
        pio.write_image(root / ("sub" if i % 2 else ".") / f"im{i}.png", img)
    (root / "notes.txt").write_text("not an image")
    return root


def test_training_images_folder_split_is_disjoint_and_order_free(tmp_path):
    folder = _folder_of_images(tmp_path / "imgs", 10)
    train, val = datasets.training_images(folder, val_fraction=0.2)
    assert len(train) == 8 and len(val) == 2
    assert not {p.resolve() for p in train.files} & {p.resolve() for p in val.files}
    assert val.description["role"] == "validation" and train.description["n_images"] == 8
    # images are read on demand, grey, in [0, 1]
    img = train[0]
    assert img.shape == (1, 12, 10) and 0 <= float(img.min()) <= float(img.max()) <= 1
    # held-out files are chosen by a hash of their path, not by the order: renaming a training file keeps them
    held = {p.name for p in val.files}
    train.files[0].rename(train.files[0].with_name("zz" + train.files[0].name))
    _, val2 = datasets.training_images(folder, val_fraction=0.2)
    assert {p.name for p in val2.files} == held


def test_training_images_errors(tmp_path):
    folder = _folder_of_images(tmp_path / "imgs", 3)
    with pytest.raises(ValueError, match="data: .* neither 'builtin' nor a directory"):
        datasets.training_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="val_data: no PNG/JPEG/TIFF"):
        datasets.training_images(folder, tmp_path / "empty")
    with pytest.raises(ValueError, match="val_data: 3 file"):
        datasets.training_images(folder, folder)
    one = _folder_of_images(tmp_path / "one", 1)
    with pytest.raises(ValueError, match="need at least 2"):
        datasets.training_images(one)


def test_image_set_crops_are_seeded_and_pick_every_image(tmp_path):
    images = [torch.full((1, 20, 20), float(i)) for i in range(4)]
    s = datasets.ImageSet(images=images, description={})
    a = s.crops(32, 8, torch.Generator().manual_seed(3))
    b = s.crops(32, 8, torch.Generator().manual_seed(3))
    assert a.shape == (32, 1, 8, 8) and torch.equal(a, b)
    # each crop comes from one image (constant), and all four images are drawn
    assert torch.equal(a.amin((1, 2, 3)), a.amax((1, 2, 3)))
    assert set(a[:, 0, 0, 0].tolist()) == {0.0, 1.0, 2.0, 3.0}
    with pytest.raises(ValueError, match="give images or files"):
        datasets.ImageSet(description={})


def test_source_images_of_several_sources(tmp_path):
    folder = _folder_of_images(tmp_path / "imgs", 6)
    train, val = datasets.source_images(["builtin", str(folder)], val_fraction=0.2)
    names = train.description["images"] + val.description["images"]
    assert len(train) + len(val) == len(builtin_names("train", kind="photo")) + 6
    assert {f"builtin:{n}" for n in builtin_names("train", kind="photo")} | {
        f"imgs/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*.png")} == set(names)
    never = builtin_names("test") + builtin_names(kind="medical") + builtin_names(kind="microscopy")
    assert not {f"builtin:{n}" for n in never} & set(names)                 # by name: no TEST, medical image
    assert not set(train.description["images"]) & set(val.description["images"])
    assert train.files and train.images                                     # files read on demand, builtin in memory
    i = train.description["images"].index(next(n for n in train.description["images"] if n.startswith("imgs/")))
    assert isinstance(train._items[i], Path) and train[i].shape == (1, 12, 10)
    # the split does not depend on the order of the sources
    _, val2 = datasets.source_images([str(folder), "builtin"], val_fraction=0.2)
    assert set(val2.description["images"]) == set(val.description["images"])
    # a validation folder instead of a held-out fraction; it may not hold training files
    vfolder = _folder_of_images(tmp_path / "val", 2)
    train3, val3 = datasets.source_images([str(folder)], val_data=str(vfolder))
    assert len(train3) == 6 and val3.description["images"] == ["val/im0.png", "val/sub/im1.png"]
    with pytest.raises(ValueError, match="val_data: 6 file"):
        datasets.source_images([str(folder)], val_data=str(folder))


def test_source_images_errors_name_the_source(tmp_path):
    with pytest.raises(ValueError, match=f"data: '{tmp_path / 'missing'}' is neither 'builtin' nor a directory"):
        datasets.source_images(["builtin", str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="data: no PNG/JPEG/TIFF"):
        datasets.source_images([str(tmp_path / "empty")])
    folder = _folder_of_images(tmp_path / "imgs", 2)
    with pytest.raises(ValueError, match="share photo names"):
        datasets.source_images([str(folder), str(folder)])
    with pytest.raises(ValueError, match="non-empty list"):
        datasets.source_images("builtin")
    with pytest.raises(ValueError, match="non-empty list"):
        datasets.source_images([])
    with pytest.raises(ValueError, match="not both"):
        datasets.source_images([str(folder)], val_fraction=0.5, val_data=str(folder))


def test_source_images_describe_a_large_folder_by_a_hash(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(205):
        pio.write_image(folder / f"{i:03d}.png", torch.zeros(1, 2, 2))
    train, _ = datasets.source_images([str(folder)])
    d = train.description
    assert "images" not in d and d["n_images"] == 205 and len(d["images_sha1"]) == 40
    assert d["first_images"][0] == "many/000.png"


def test_image_set_mixes_tensors_and_files(tmp_path):
    pio.write_image(tmp_path / "a.png", torch.full((1, 4, 4), 1.0))
    s = datasets.ImageSet(items=[torch.zeros(1, 4, 4), tmp_path / "a.png"], description={})
    assert len(s) == 2 and float(s[0].max()) == 0 and float(s[1].min()) == 1
    assert s.files == [tmp_path / "a.png"] and len(s.images) == 1
    with pytest.raises(ValueError, match="item 0"):
        datasets.ImageSet(items=["a.png"], description={})


def test_image_set_max_side_downscales_by_area_averaging(tmp_path):
    # a 2 x 2 checker of 4 x 4 blocks, 16 x 8 pixels: at max_side 4 each block becomes one pixel, its mean
    blocks = torch.tensor([[0.0, 1.0], [0.25, 0.5], [0.75, 0.0], [1.0, 0.5]])
    big = blocks.repeat_interleave(4, 0).repeat_interleave(4, 1)[None]
    pio.write_image(tmp_path / "big.tif", big)
    s = datasets.ImageSet(items=[big, tmp_path / "big.tif", torch.ones(1, 3, 2)], description={}, max_side=4)
    assert torch.allclose(s[0][0], blocks, atol=1e-6)
    assert torch.allclose(s[1][0], blocks, atol=0.5 / 255 + 1e-6)                # the file: 8 bits
    assert s[2].shape == (1, 3, 2)                                        # smaller images stay as they are
    assert s.sizes() == [("image 0", 4, 2), ("big.tif", 4, 2), ("image 2", 3, 2)]
    assert datasets.ImageSet(images=[big], description={})[0].shape == (1, 16, 8)   # 0: as read
    with pytest.raises(ValueError, match="max_side must be an int >= 0"):
        datasets.ImageSet(images=[big], description={}, max_side=-1)
    train, val = datasets.source_images([str(_folder_of_images(tmp_path / "imgs", 4))], val_fraction=0.25,
                                        max_side=5)
    assert train.description["max_side"] == 5 and max(train[0].shape[1:]) == max(val[0].shape[1:]) == 5


def test_builtin_training_images_keep_test_photos_out():
    train, val = datasets.training_images("builtin", kind="photo")
    assert set(train.description["images"]).isdisjoint(val.description["images"])
    assert val.description == {"source": "builtin", "split": "test", "kind": "photo",
                               "images": datasets.builtin_names("test", kind="photo")}
