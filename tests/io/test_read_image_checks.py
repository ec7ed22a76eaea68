"""read_image: size limit (decompression bombs), single-image TIFF/DICOM, the reported scaling."""
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from pdeflow.io import DEFAULT_MAX_PIXELS, read_image, write_image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_claiming(path: Path, w: int, h: int, depth: int = 8, ctype: int = 0) -> Path:
    """A tiny PNG whose header claims a w x h image (its data is one empty row)."""
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\x00")) + _chunk(b"IEND", b""))
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("depth,ctype", [(8, 0), (8, 2), (16, 2), (16, 0)])
def test_decompression_bomb_png_is_refused_by_name(tmp_path, depth, ctype):
    p = _png_claiming(tmp_path / "bomb.png", 100_000, 100_000, depth, ctype)
    assert p.stat().st_size < 100
    with pytest.raises(ValueError,
                       match=r"'.*bomb\.png' is 100000x100000 pixels \(1e\+10\), more than max_pixels=1e\+08"):
        read_image(p)


def test_pillow_bomb_error_becomes_value_error(tmp_path, monkeypatch):
    # Pillow's own guard (twice Image.MAX_IMAGE_PIXELS) is hit when max_pixels is larger.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    p = write_image(tmp_path / "a.png", torch.rand(1, 50, 50))  # 2500 pixels > 2 * 1000
    assert read_image(p, max_pixels=5000).shape == (1, 50, 50)  # pdeflow's limit governs, Pillow's lifted
    assert Image.MAX_IMAGE_PIXELS == 1000  # and restored
    with pytest.raises(ValueError, match=r"a\.png.*more than max_pixels=2e\+03"):
        read_image(p, max_pixels=2000)


def test_max_pixels_applies_to_every_format(tmp_path):
    img = torch.rand(1, 30, 40)
    write_image(tmp_path / "a.png", img)
    tifffile.imwrite(tmp_path / "a.tif", img[0].numpy())
    for name in ("a.png", "a.tif"):
        assert read_image(tmp_path / name, max_pixels=1200).shape == (1, 30, 40)
        with pytest.raises(ValueError, match=rf"{name}' is 40x30 pixels .*max_pixels=1\.2e\+03"):
            read_image(tmp_path / name, max_pixels=1199)
    assert DEFAULT_MAX_PIXELS == 10**8
    for bad in (0, -5, 1.5, True, "10"):
        with pytest.raises(ValueError, match="max_pixels must be a positive int or None"):
            read_image(tmp_path / "a.png", max_pixels=bad)


def test_multipage_and_volume_tiffs_are_refused(tmp_path):
    stack = np.random.default_rng(0).random((3, 8, 9)).astype(np.float32)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")  # three pages
    with pytest.raises(ValueError, match=r"stack\.tif' holds 3 images .*stack or multi-page"):
        read_image(tmp_path / "stack.tif")
    tifffile.imwrite(tmp_path / "4d.tif", np.zeros((2, 3, 8, 9), np.uint8), photometric="minisblack")
    with pytest.raises(ValueError, match=r"4d\.tif' holds 6 images .*series shape \(2, 3, 8, 9\)"):
        read_image(tmp_path / "4d.tif")
    tifffile.imwrite(tmp_path / "vol.tif", np.zeros((4, 16, 16), np.uint8), tile=(16, 16), volumetric=True,
                     photometric="minisblack")
    with pytest.raises(ValueError, match=r"vol\.tif' has axes 'ZYX'.*volume or stack"):
        read_image(tmp_path / "vol.tif")
    # A single page with a singleton leading axis is one image.
    tifffile.imwrite(tmp_path / "one.tif", stack[:1], photometric="minisblack")
    assert read_image(tmp_path / "one.tif").shape == (1, 8, 9)


def test_reduced_resolution_pages_do_not_count(tmp_path):
    img = (np.random.default_rng(1).random((32, 32)) * 255).astype(np.uint8)
    with tifffile.TiffWriter(tmp_path / "preview.tif") as tw:
        tw.write(img)
        tw.write(img[::4, ::4], subfiletype=1)  # a reduced-resolution preview page
    y = read_image(tmp_path / "preview.tif")
    assert torch.equal(y[0], torch.from_numpy(img / 255.0).float())


def test_info_reports_the_scaling(tmp_path):
    a8 = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(a8).save(tmp_path / "g.png")
    _, info = read_image(tmp_path / "g.png", return_info=True)
    assert info == {"format": "PNG", "scaling": "white", "white": 255.0, "range": None, "alpha": False}
    f = np.linspace(0.1, 0.9, 12).reshape(3, 4)
    tifffile.imwrite(tmp_path / "f.tif", f)
    _, info = read_image(tmp_path / "f.tif", return_info=True)
    assert info == {"format": "TIFF", "scaling": "float", "white": None, "range": None, "alpha": False}
    tifffile.imwrite(tmp_path / "big.tif", 10 * f - 3)
    y, info = read_image(tmp_path / "big.tif", rescale="minmax", return_info=True)
    assert info["scaling"] == "minmax" and info["range"] == pytest.approx((-2.0, 6.0))
    assert float(y.min()) == 0 and float(y.max()) == 1


def test_range_errors_name_no_option_only_python_has(tmp_path):
    tifffile.imwrite(tmp_path / "big.tif", np.full((4, 4), 3.0))
    with pytest.raises(ValueError) as e:
        read_image(tmp_path / "big.tif")
    msg = str(e.value)
    assert "big.tif" in msg and "[3, 3]" in msg and "in Python: read_image(path, rescale='minmax')" in msg
    tifffile.imwrite(tmp_path / "signed.tif", np.array([[-5, 7]], np.int16))
    with pytest.raises(ValueError,
                       match=r"signed\.tif.*no fixed white level.*in Python: read_image\(path, rescale='minmax'\)"):
        read_image(tmp_path / "signed.tif")


def test_dicom_scaling_is_reported(pydicom_file):
    import pydicom

    p = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(p)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    y, info = read_image(p, return_info=True)
    assert info == {"format": "DICOM", "scaling": "minmax", "white": None, "range": (hu.min(), hu.max()),
                    "alpha": False}
    assert torch.allclose(y[0], torch.from_numpy((hu - hu.min()) / (hu.max() - hu.min())).float())
    with pytest.raises(ValueError, match=r"CT_small\.dcm' is 128x128 pixels"):
        read_image(p, max_pixels=128 * 128 - 1)


def test_multiframe_dicom_is_refused(pydicom_file, tmp_path):
    import pydicom

    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3
    ds.save_as(tmp_path / "frames.dcm")
    assert pydicom.dcmread(tmp_path / "frames.dcm").pixel_array.shape == (3, 128, 128)
    with pytest.raises(ValueError, match=r"frames\.dcm' holds 3 frames"):
        read_image(tmp_path / "frames.dcm")
