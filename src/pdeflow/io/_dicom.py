"""DICOM volumes: a folder of single-frame slices (one series) or one multi-frame file, as read by
:func:`pdeflow.io.read_volume` (whose module docstring gives the conventions).

* :func:`read_dicom`: the voxels after each slice's rescale slope and intercept (and ``DoseGridScaling``),
  ordered by position along the slice normal, with the spacing: the distance between slices and
  ``PixelSpacing``, in millimetres. What is not one uniform, straight stack of parallel grey-value slices
  is refused in one line.
* :func:`dicom_frames`: the number of frames of a file, from its header (what :func:`pdeflow.io.is_volume`
  asks).

pydicom is imported when a file is read.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from ..errors import UserInputError
from ._volume_checks import EXPECTED, check_size, refuse

__all__ = ["read_dicom", "dicom_frames"]


def _floats(value, n: int):
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _item(ds, name: str):
    """The first item of the sequence ``ds.name``, or None."""
    seq = ds.get(name) if ds is not None else None
    return seq[0] if seq else None


def _first(ds, *path):
    """``ds.A[0].B[0]...C`` along the sequence path, or None."""
    for name in path[:-1]:
        seq = ds.get(name) if ds is not None else None
        if not seq:
            return None
        ds = seq[0]
    return ds.get(path[-1]) if ds is not None else None


def _stack(positions, iop, spacing_rc, where: str, path) -> tuple[np.ndarray, float]:
    """The order of slices by position along the normal of ``iop``, and the slice distance; refuses what is
    not a uniform, straight stack."""
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    normal = np.cross(row, col)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        raise refuse(f"path '{path}': {where} has an ImageOrientationPatient {list(iop)} whose directions are not "
                     "orthonormal")
    pos = np.asarray(positions, dtype=np.float64)
    s = pos @ normal
    order = np.argsort(s, kind="stable")
    s = s[order]
    gaps = np.diff(s)
    if len(s) < 2:
        raise refuse(f"path '{path}' holds a single slice (a 2-D image), not a volume")
    if gaps.min() <= 1e-6 * max(1.0, abs(s).max()):
        raise refuse(f"path '{path}': {where} has two slices at the same position ({s[np.argmin(gaps)]:g} mm "
                     "along the slice normal): duplicate slices or several series")
    dz = float(np.median(gaps))
    if np.abs(gaps - dz).max() > 1e-2 * dz + 1e-4:
        raise refuse(f"path '{path}': {where} has slices at non-uniform positions along the slice normal (gaps "
                     f"from {gaps.min():g} to {gaps.max():g} mm; a missing slice?); expected equally spaced slices")
    # a straight stack: every slice's origin on the line through the first along the normal (no gantry tilt)
    inplane = pos[order] - np.outer(s - s[0], normal) - pos[order[0]]
    if np.abs(inplane).max() > 0.05 * min(spacing_rc):
        raise refuse(f"path '{path}': {where} has slices shifted within their planes (up to "
                     f"{np.abs(inplane).max():.3g} mm: a tilted or sheared stack); expected slices stacked along "
                     "their normal")
    return order, dz


def _dicom_slope(ds, frame=None) -> tuple[float, float]:
    """Rescale slope and intercept of a data set (or of one frame of an enhanced multi-frame one)."""
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    for groups in ([frame] if frame is not None else []) + [_item(ds, "SharedFunctionalGroupsSequence")]:
        if slope is None and groups is not None:
            slope = _first(groups, "PixelValueTransformationSequence", "RescaleSlope")
            intercept = _first(groups, "PixelValueTransformationSequence", "RescaleIntercept")
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    scale = ds.get("DoseGridScaling")
    if scale not in (None, ""):
        slope *= float(scale)
    return slope, intercept


def _dicom_pixels(ds, f, path):
    try:
        return ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise refuse(f"cannot decode the pixels of the DICOM file '{f}' in path '{path}' (transfer syntax {ts}; "
                     f"compressed data may need an extra decoder such as pylibjpeg): {exc}") from None


def _dcmread(f: Path, **kw):
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(f, **kw)
        except pydicom.errors.InvalidDicomError:
            if f.suffix.lower() not in (".dcm", ".dicom"):
                return None
            return pydicom.dcmread(f, force=True, **kw)


def _check_grey(ds, f, path) -> None:
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise refuse(f"path '{path}': the DICOM file '{f}' holds colour images "
                     f"({ds.get('PhotometricInterpretation')}); expected grey-value slices")


def _read_folder(path: Path, max_voxels):
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name.upper() != "DICOMDIR")
    headers = []
    for f in files:
        try:
            ds = _dcmread(f, stop_before_pixels=True)
        except Exception as exc:
            raise refuse(f"could not read the DICOM file '{f}' in path '{path}': {exc}") from None
        if ds is not None and "Rows" in ds:
            headers.append((f, ds))
    if not headers:
        raise refuse(f"path '{path}' is a folder without DICOM images; {EXPECTED}")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in headers}
    if len(series) > 1:
        raise refuse(f"path '{path}' holds slices of {len(series)} DICOM series; put one series per folder")
    for f, ds in headers:
        _check_grey(ds, f, path)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise refuse(f"path '{path}': the DICOM file '{f}' holds {frames} frames; read a multi-frame file "
                         "on its own, or a folder of single-frame slices")
    sizes = sorted({(int(ds.Rows), int(ds.Columns)) for _, ds in headers})
    if len(sizes) > 1:
        raise refuse(f"path '{path}' holds DICOM slices of different sizes (mixed slice sizes: "
                     f"{', '.join(f'{r}x{c}' for r, c in sizes[:4])}); expected slices of one size")
    geo = []
    for f, ds in headers:
        iop, ipp = _floats(ds.get("ImageOrientationPatient", ()), 6), _floats(ds.get("ImagePositionPatient", ()), 3)
        ps = _floats(ds.get("PixelSpacing", ()), 2)
        if iop is None or ipp is None:
            raise refuse(f"path '{path}': the DICOM file '{f}' has no ImagePositionPatient/ImageOrientationPatient "
                         "to place its slice (pass a multi-frame file or a series with positions)")
        geo.append((iop, ipp, ps))
    iop0 = geo[0][0]
    if any(not np.allclose(g[0], iop0, atol=1e-4) for g in geo):
        raise refuse(f"path '{path}' holds DICOM slices with different orientations (ImageOrientationPatient); "
                     "expected one stack of parallel slices")
    ps0 = geo[0][2]
    if any((g[2] is None) != (ps0 is None) or (ps0 is not None and not np.allclose(g[2], ps0, rtol=1e-4))
           for g in geo):
        raise refuse(f"path '{path}' holds DICOM slices with different PixelSpacing (non-uniform spacing); "
                     "expected one in-plane spacing")
    H, W = sizes[0]
    check_size((len(headers), H, W), max_voxels, path)
    order, dz = _stack([g[1] for g in geo], iop0, ps0 or (1.0, 1.0), "the series", path)
    vol = np.empty((len(headers), H, W), dtype=np.float64)
    for k, i in enumerate(order):
        f = headers[i][0]
        ds = _dcmread(f)
        px = _dicom_pixels(ds, f, path)
        if px.shape != (H, W):
            raise refuse(f"path '{path}': the DICOM file '{f}' has pixel data of shape {px.shape}, not its "
                         f"header's {H}x{W}")
        slope, intercept = _dicom_slope(ds)
        vol[k] = px * slope + intercept
    spacing = (dz, *(ps0 if ps0 is not None else (None, None)))
    return vol, spacing, "mm", {"format": "DICOM", "files": len(headers)}


def _read_file(path: Path, max_voxels):
    ds = _dcmread(path, stop_before_pixels=False, defer_size=1024)
    if ds is None or "Rows" not in ds:
        raise refuse(f"could not read path '{path}' as a DICOM image; {EXPECTED}")
    _check_grey(ds, path, path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    H, W = int(ds.Rows), int(ds.Columns)
    if frames < 2:
        raise refuse(f"path '{path}' is a single DICOM slice (a 2-D image), not a volume: pass the folder that "
                     "holds the whole series")
    check_size((frames, H, W), max_voxels, path)
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or [None] * frames
    iop = (_floats(ds.get("ImageOrientationPatient", ()), 6)
           or _floats(_first(shared, "PlaneOrientationSequence", "ImageOrientationPatient") or (), 6)
           or _floats(_first(per_frame[0], "PlaneOrientationSequence", "ImageOrientationPatient") or (), 6))
    ps = (_floats(ds.get("PixelSpacing", ()), 2)
          or _floats(_first(shared, "PixelMeasuresSequence", "PixelSpacing") or (), 2)
          or _floats(_first(per_frame[0], "PixelMeasuresSequence", "PixelSpacing") or (), 2))
    positions = [_floats(_first(g, "PlanePositionSequence", "ImagePositionPatient") or (), 3) for g in per_frame]
    offsets = ds.get("GridFrameOffsetVector")            # RT dose: positions along the normal from the origin
    ipp = _floats(ds.get("ImagePositionPatient", ()), 3)
    order, dz, where = np.arange(frames), None, "the multi-frame file"
    if iop is not None and all(p is not None for p in positions):
        order, dz = _stack(positions, iop, ps or (1.0, 1.0), where, path)
    elif iop is not None and ipp is not None and offsets is not None and len(offsets) == frames:
        normal = np.cross(iop[:3], iop[3:])
        order, dz = _stack([np.asarray(ipp) + float(o) * normal for o in offsets], iop, ps or (1.0, 1.0), where,
                           path)
    else:                                                # frames in file order, spacing from the header if any
        for name in ("SpacingBetweenSlices", "SliceThickness"):
            v = ds.get(name) or _first(shared, "PixelMeasuresSequence", name)
            if v not in (None, "") and float(v) > 0:
                dz = float(v)
                break
    px = _dicom_pixels(ds, path, path)
    if px.shape != (frames, H, W):
        raise refuse(f"path '{path}' has pixel data of shape {px.shape}, not its header's {frames}x{H}x{W}")
    vol = np.empty((frames, H, W), dtype=np.float64)
    for k, i in enumerate(order):
        slope, intercept = _dicom_slope(ds, per_frame[i])
        vol[k] = px[i] * slope + intercept
    spacing = (dz, *(ps if ps is not None else (None, None)))
    return vol, spacing, "mm", {"format": "DICOM", "files": 1}


def read_dicom(path: Path, max_voxels):
    """A folder of DICOM slices (one series) or a multi-frame DICOM file as ``(array (D, H, W), spacing with None
    for unknown axes, unit, info)``, the readers' common result; a malformed header or data element (a bad number,
    a missing attribute, a truncated file) is refused in one line rather than raised from inside pydicom."""
    reader = _read_folder if path.is_dir() else _read_file
    try:
        with warnings.catch_warnings():     # pydicom warns about every odd value it converts lazily
            warnings.simplefilter("ignore")
            return reader(path, max_voxels)
    except UserInputError:
        raise
    except Exception as exc:
        raise refuse(f"could not read path '{path}' as DICOM: bad header or data ({type(exc).__name__}: {exc})"
                     ) from None


def dicom_frames(path: Path) -> int:
    """The number of frames of a DICOM file, from its header (0 if it is not one, or cannot be read)."""
    try:
        ds = _dcmread(path, stop_before_pixels=True)
        return int(ds.get("NumberOfFrames", 1) or 1) if ds is not None else 0
    except Exception:
        return 0
