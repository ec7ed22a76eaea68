"""Reading and writing volumes: DICOM series and multi-frame files (pydicom's test data), NIfTI (nibabel's test
data), TIFF stacks and .npy; spacing, ordering, rescaling, refusals, atomic writes. Nothing is downloaded."""
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
import torch
from pydicom.data import get_testdata_files

from pdeflow.errors import UserInputError
from pdeflow.io import read_volume, write_volume

DICOM_DIR = Path(get_testdata_files("CT_small.dcm")[0]).parent
CT5N = DICOM_DIR / "dicomdirtests" / "98892001" / "CT5N"     # 5 CT slices of 16 x 16, 2.5 mm apart
CT2 = DICOM_DIR / "dicomdirtests" / "77654033" / "CT2"       # 4 CT slices with a gap of 202.5 mm


def _nibabel_data(name):
    nibabel = pytest.importorskip("nibabel")
    return Path(nibabel.__file__).parent / "tests" / "data" / name


def _copy_series(src, dst, skip=()):
    dst.mkdir()
    for i, f in enumerate(sorted(src.iterdir())):
        if f.name not in skip:
            shutil.copy(f, dst / f"slice_{(7 * i) % 5}_{f.name}")   # names in another order than positions
    return dst


def _normal(ds):
    iop = np.array(ds.ImageOrientationPatient, float)
    return np.cross(iop[:3], iop[3:])


def _expected_ct5n():
    """The CT5N slices by pydicom alone: ascending position along the normal, rescaled."""
    slices = []
    for f in sorted(CT5N.iterdir()):
        ds = pydicom.dcmread(f)
        s = float(np.dot(np.array(ds.ImagePositionPatient, float), _normal(ds)))
        slices.append((s, ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)))
    slices.sort(key=lambda t: t[0])
    return np.stack([a for _, a in slices])


# --------------------------------------------------------------------------- DICOM

def test_dicom_series_is_sorted_by_position_with_spacing_and_rescale(tmp_path):
    folder = _copy_series(CT5N, tmp_path / "ct")
    (folder / "notes.txt").write_text("not DICOM")                      # skipped
    vol, spacing, info = read_volume(folder, return_info=True)
    assert vol.shape == (5, 16, 16) and vol.dtype == torch.float32
    assert spacing == pytest.approx((2.5, 0.488281, 0.488281))
    np.testing.assert_array_equal(vol.numpy(), _expected_ct5n().astype(np.float32))
    assert info["format"] == "DICOM" and info["unit"] == "mm" and info["files"] == 5
    assert info["spacing_from"] == ("header",) * 3 and info["range"] == (vol.min().item(), vol.max().item())
    # CT values are Hounsfield units after the rescale: air below -800 exists in this slab
    assert vol.min().item() < -800


def test_dicom_rescale_slope_and_intercept_apply_per_slice(tmp_path):
    folder = _copy_series(CT5N, tmp_path / "ct")
    f = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(f)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1000
    ds.save_as(f)
    normal = _normal(ds)
    positions = sorted(float(np.dot(np.array(pydicom.dcmread(g).ImagePositionPatient, float), normal))
                       for g in folder.iterdir())
    k = positions.index(float(np.dot(np.array(ds.ImagePositionPatient, float), normal)))
    vol, _ = read_volume(folder, dtype=torch.float64)
    np.testing.assert_array_equal(vol[k].numpy(), ds.pixel_array * 2.0 - 1000.0)


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    middle = sorted(CT5N.iterdir())[2].name
    folder = _copy_series(CT5N, tmp_path / "gap", skip=(middle,))
    with pytest.raises(UserInputError, match=r"^read_volume: path .* non-uniform positions .* a missing slice"):
        read_volume(folder)
    with pytest.raises(UserInputError, match=r"gaps from 1.25 to 202.5 mm; a missing slice"):
        read_volume(CT2)                      # as shipped by pydicom


def test_dicom_series_with_mixed_slice_sizes_or_spacings_is_refused(tmp_path):
    folder = _copy_series(CT5N, tmp_path / "sizes")
    f = sorted(folder.iterdir())[1]
    ds = pydicom.dcmread(f)
    small = np.ascontiguousarray(ds.pixel_array[:8, :8])
    ds.Rows, ds.Columns, ds.PixelData = 8, 8, small.tobytes()
    ds.save_as(f)
    with pytest.raises(UserInputError, match=r"different sizes \(mixed slice sizes: 8x8, 16x16\)"):
        read_volume(folder)
    folder = _copy_series(CT5N, tmp_path / "spacing")
    f = sorted(folder.iterdir())[3]
    ds = pydicom.dcmread(f)
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(f)
    with pytest.raises(UserInputError, match=r"different PixelSpacing \(non-uniform spacing\)"):
        read_volume(folder)


def test_dicom_refusals_several_series_one_slice_tilted_stack(tmp_path):
    with pytest.raises(UserInputError, match=r"holds slices of 3 DICOM series; put one series per folder"):
        read_volume(DICOM_DIR / "dicomdirtests" / "98892003" / "MR2")
    with pytest.raises(UserInputError, match=r"is a single DICOM slice \(a 2-D image\), not a volume"):
        read_volume(DICOM_DIR / "CT_small.dcm")
    folder = _copy_series(CT5N, tmp_path / "tilted")
    for i, f in enumerate(sorted(folder.iterdir())):
        ds = pydicom.dcmread(f)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.7 * z, z]        # each slice shifted along y: a gantry tilt
        ds.save_as(f)
    with pytest.raises(UserInputError, match=r"shifted within their planes .* tilted or sheared stack"):
        read_volume(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    with pytest.raises(UserInputError, match=r"is a folder without DICOM images"):
        read_volume(empty)


def test_dicom_size_limit_is_checked_before_any_pixel_is_decoded(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels decoded before the size check")
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_decoding))
    with pytest.raises(UserInputError, match=r"shape \(5, 16, 16\) \(1.28e\+03 voxels\), more than max_voxels=1e\+03"):
        read_volume(CT5N, max_voxels=1000)
    with pytest.raises(UserInputError, match=r"more than max_voxels"):
        read_volume(DICOM_DIR / "rtdose.dcm", max_voxels=1000)


def test_multi_frame_dicom_rt_dose_with_frame_offsets():
    path = DICOM_DIR / "rtdose.dcm"
    ds = pydicom.dcmread(path)
    vol, spacing, info = read_volume(path, dtype=torch.float64, return_info=True)
    assert vol.shape == (15, 10, 10) and info["files"] == 1
    offsets = np.array(ds.GridFrameOffsetVector, float)
    assert spacing == pytest.approx((abs(offsets[1] - offsets[0]), *map(float, ds.PixelSpacing)))
    order = np.argsort(offsets * np.cross(ds.ImageOrientationPatient[:3], ds.ImageOrientationPatient[3:])[2])
    np.testing.assert_allclose(vol.numpy(), ds.pixel_array[order] * float(ds.DoseGridScaling), rtol=1e-12)


def test_multi_frame_dicom_without_positions_takes_frames_in_order(tmp_path):
    ds = pydicom.dcmread(DICOM_DIR / "rtdose.dcm")
    del ds.GridFrameOffsetVector
    ds.SliceThickness = 3.0
    ds.save_as(tmp_path / "dose.dcm")
    vol, spacing = read_volume(tmp_path / "dose.dcm", dtype=torch.float64)
    assert spacing == pytest.approx((3.0, 10.0, 10.0))
    np.testing.assert_allclose(vol.numpy(), ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-12)


# --------------------------------------------------------------------------- NIfTI

def test_nifti_from_nibabel_test_data_axes_spacing_and_values():
    nibabel = pytest.importorskip("nibabel")
    path = _nibabel_data("anatomical.nii")
    vol, spacing, info = read_volume(path, dtype=torch.float64, return_info=True)
    ref = nibabel.load(str(path)).get_fdata()                       # (x, y, z)
    assert vol.shape == ref.shape[::-1] == (25, 41, 33)
    np.testing.assert_array_equal(vol.numpy(), ref.transpose(2, 1, 0))
    assert spacing == (2.0, 2.0, 2.0) and info["unit"] == "mm" and info["format"] == "NIfTI"
    # anisotropic zooms (x, y, z) = (1, 3, 2) come back as (dz, dy, dx) = (2, 3, 1); units unknown there
    vol, spacing, info = read_volume(_nibabel_data("standard.nii.gz"), return_info=True)
    assert vol.shape == (7, 5, 4) and spacing == (2.0, 3.0, 1.0) and info["unit"] == "unknown"


def test_nifti_refusals_4d_and_nan():
    with pytest.raises(UserInputError, match=r"NIfTI file of shape \(128, 96, 24, 2\), several volumes"):
        read_volume(_nibabel_data("example4d.nii.gz"))
    with pytest.raises(UserInputError, match=r"contains NaN or infinite values"):
        read_volume(_nibabel_data("resampled_anat_moved.nii"))


def test_nifti_without_nibabel_is_a_clear_error(tmp_path, monkeypatch):
    path = _nibabel_data("anatomical.nii")
    monkeypatch.setitem(sys.modules, "nibabel", None)              # import nibabel now raises ImportError
    with pytest.raises(UserInputError, match=r"needs nibabel, an optional extra: pip install 'pdeflow\[volumes\]'"):
        read_volume(path)
    with pytest.raises(UserInputError, match=r"write_volume: writing NIfTI .* needs nibabel"):
        write_volume(tmp_path / "v.nii.gz", np.zeros((2, 3, 4)))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- TIFF and npy

def test_tiff_stack_pages_with_resolution_tags(tmp_path):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tw:
        for i in range(3):
            tw.write(np.full((4, 5), 10 * i, np.uint16), resolution=(2.0, 4.0), resolutionunit="CENTIMETER")
    vol, spacing, info = read_volume(path, return_info=True)
    assert vol[:, 0, 0].tolist() == [0.0, 10.0, 20.0] and vol.shape == (3, 4, 5)
    # 4 pixels per cm along y, 2 along x: 2.5 and 5 mm; no slice distance in a plain TIFF
    assert spacing == (1.0, 2.5, 5.0) and info["spacing_from"] == ("default", "header", "header")
    # an ImageJ hyperstack with its unit and z spacing
    tifffile.imwrite(tmp_path / "ij.tif", np.zeros((3, 4, 5), np.float32), imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 3.0, "unit": "micron", "axes": "ZYX"})
    assert read_volume(tmp_path / "ij.tif")[1] == pytest.approx((0.003, 0.0005, 0.0005))


def test_tiff_refusals(tmp_path):
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tw:
        for shape in ((4, 5), (4, 5), (6, 5)):
            tw.write(np.zeros(shape, np.uint8))
    with pytest.raises(UserInputError, match=r"different sizes \(mixed slice sizes: \(4, 5\), \(6, 5\)\)"):
        read_volume(tmp_path / "mixed.tif")
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((4, 5), np.uint8))
    with pytest.raises(UserInputError, match=r"holds a 2-D image .* not a volume"):
        read_volume(tmp_path / "one.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((3, 4, 5, 3), np.uint8), photometric="rgb")
    with pytest.raises(UserInputError, match=r"colour samples or channels"):
        read_volume(tmp_path / "rgb.tif")


def test_npy_values_dtype_spacing_override_rescale_and_refusals(tmp_path):
    a = np.arange(60, dtype=np.float64).reshape(3, 4, 5) * 0.1
    np.save(tmp_path / "v.npy", a)
    vol, spacing, info = read_volume(tmp_path / "v.npy", dtype=torch.float64, return_info=True)
    np.testing.assert_array_equal(vol.numpy(), a)
    assert spacing == (1.0, 1.0, 1.0) and info["spacing_from"] == ("default",) * 3 and info["unit"] == "unknown"
    vol, spacing, info = read_volume(tmp_path / "v.npy", spacing=(2.5, 0.7, 0.7), rescale="minmax", return_info=True)
    assert spacing == (2.5, 0.7, 0.7) and info["spacing_from"] == ("argument",) * 3
    assert vol.min().item() == 0.0 and vol.max().item() == 1.0 and info["range"] == pytest.approx((0.0, 5.9))
    np.save(tmp_path / "img.npy", np.zeros((4, 5)))
    np.save(tmp_path / "v4.npy", np.zeros((2, 3, 4, 5)))
    np.save(tmp_path / "c.npy", np.zeros((3, 4, 5), complex))
    (tmp_path / "x.txt").write_text("hello")
    for name, match in (("img.npy", r"holds a 2-D image"), ("v4.npy", r"holds a 4-D array"),
                        ("c.npy", r"complex128 values; expected real numbers"),
                        ("x.txt", r"could not read path .* as a volume; expected a .npy file")):
        with pytest.raises(UserInputError, match=r"^read_volume: .*" + match):
            read_volume(tmp_path / name)
    for kw, match in (({"spacing": (1.0, 0.0, 1.0)}, r"spacing must be three finite numbers > 0"),
                      ({"spacing": (1.0, 1.0)}, r"spacing must be three"),
                      ({"rescale": "unit"}, r"rescale must be None or 'minmax'"),
                      ({"max_voxels": 0}, r"max_voxels must be a positive int"),
                      ({"dtype": torch.int32}, r"dtype must be torch.float32 or torch.float64")):
        with pytest.raises(UserInputError, match=r"^read_volume: " + match):
            read_volume(tmp_path / "v.npy", **kw)
    with pytest.raises(UserInputError, match=r"more than max_voxels=50"):
        read_volume(tmp_path / "v.npy", max_voxels=50)
    with pytest.raises(FileNotFoundError, match=r"no such file or folder"):
        read_volume(tmp_path / "missing.npy")


# --------------------------------------------------------------------------- write_volume

@pytest.mark.parametrize("name", ["v.tif", "v.tiff", "v.nii", "v.nii.gz", "v.npy"])
def test_write_then_read_round_trips_values_and_spacing(tmp_path, name):
    if name.startswith("v.nii"):
        pytest.importorskip("nibabel")
    from pdeflow.datasets import shepp_logan_3d
    v = shepp_logan_3d((6, 12, 10))
    spacing = None if name.endswith(".npy") else (2.5, 0.7, 0.6)
    assert write_volume(tmp_path / name, v, spacing=spacing) == tmp_path / name
    w, got = read_volume(tmp_path / name)
    assert torch.equal(w, v)
    assert got == pytest.approx(spacing or (1.0, 1.0, 1.0), rel=1e-7)
    assert sorted(os.listdir(tmp_path)) == [name]                  # no temporary file left


def test_write_volume_is_atomic_refuses_overwrite_and_bad_input(tmp_path):
    target = tmp_path / "v.npy"
    write_volume(target, np.ones((2, 3, 4)))
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match=r"write_volume: .* already exists \(pass overwrite=True"):
        write_volume(target, np.zeros((2, 3, 4)))
    assert target.read_bytes() == before
    write_volume(target, np.zeros((2, 3, 4)), overwrite=True)
    assert np.load(target).sum() == 0
    bad = [({"volume": np.zeros((3, 4))}, "v2.npy", UserInputError, r"volume must have shape \(D, H, W\)"),
           ({"volume": np.full((2, 2, 2), np.nan)}, "nan.tif", UserInputError, r"volume contains NaN or infinite"),
           ({"volume": np.zeros((2, 2, 2)), "spacing": (2.5, 1, 1)}, "s.npy", UserInputError,
            r"spacing \(2.5, 1, 1\) cannot be stored in a .npy file"),
           ({"volume": np.zeros((2, 2, 2))}, "v.png", UserInputError, r"path must end in one of .npy"),
           ({"volume": np.zeros((2, 2, 2)), "spacing": (1, -1, 1)}, "neg.tif", UserInputError,
            r"spacing must be three finite numbers > 0"),
           ({"volume": [[[0.0]]]}, "list.npy", TypeError, r"volume must be a torch.Tensor or numpy.ndarray")]
    for kw, name, exc, match in bad:
        with pytest.raises(exc, match=r"^write_volume: " + match):
            write_volume(tmp_path / name, **kw)
    assert sorted(os.listdir(tmp_path)) == ["v.npy"]                # nothing partial written


def test_write_failure_leaves_no_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        write_volume(tmp_path / "v.tif", np.zeros((2, 3, 4)))
    assert list(tmp_path.iterdir()) == []


def test_enhanced_multi_frame_dicom_sorted_by_per_frame_positions(tmp_path):
    """An enhanced multi-frame file built from the CT5N slices, frames stored out of order, geometry and rescale
    in the functional groups only: read as the series is."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    files = sorted(CT5N.iterdir())
    slices = [pydicom.dcmread(f) for f in files]
    stored = [slices[i] for i in (3, 0, 4, 1, 2)]
    ds = pydicom.dcmread(files[0])
    ds.NumberOfFrames = len(stored)
    ds.PixelData = b"".join(s.pixel_array.astype(s.pixel_array.dtype).tobytes() for s in stored)

    def item(**kw):
        d = Dataset()
        for k, v in kw.items():
            setattr(d, k, v)
        return d

    shared = item(PlaneOrientationSequence=Sequence([item(ImageOrientationPatient=ds.ImageOrientationPatient)]),
                  PixelMeasuresSequence=Sequence([item(PixelSpacing=ds.PixelSpacing)]))
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence([
        item(PlanePositionSequence=Sequence([item(ImagePositionPatient=s.ImagePositionPatient)]),
             PixelValueTransformationSequence=Sequence([item(RescaleSlope=s.RescaleSlope,
                                                             RescaleIntercept=s.RescaleIntercept)]))
        for s in stored])
    for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "RescaleSlope",
                 "RescaleIntercept"):
        delattr(ds, name)
    ds.save_as(tmp_path / "enhanced.dcm")
    vol, spacing = read_volume(tmp_path / "enhanced.dcm")
    assert spacing == pytest.approx((2.5, 0.488281, 0.488281))
    np.testing.assert_array_equal(vol.numpy(), _expected_ct5n().astype(np.float32))


def test_malformed_dicom_headers_are_refused_in_one_line(tmp_path):
    folder = _copy_series(CT5N, tmp_path / "bad")
    f = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(f)
    del ds.ImagePositionPatient
    ds.save_as(f)
    with pytest.raises(UserInputError, match=r"^read_volume: path .* has no ImagePositionPatient"):
        read_volume(folder)
    ds = pydicom.dcmread(DICOM_DIR / "rtdose.dcm")
    ds["NumberOfFrames"]._value = "15A"                         # an invalid IS, as found in the wild
    ds.save_as(tmp_path / "dose.dcm")
    with pytest.raises(UserInputError, match=r"^read_volume: could not read path .* as DICOM: bad header or data"):
        read_volume(tmp_path / "dose.dcm")
    (tmp_path / "trunc.dcm").write_bytes((DICOM_DIR / "rtdose.dcm").read_bytes()[:1000])
    with pytest.raises(UserInputError, match=r"^read_volume: "):
        read_volume(tmp_path / "trunc.dcm")
