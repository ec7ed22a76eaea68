"""Volumes on disk: read and write 3-D images (CT, MR, microscopy stacks) with their voxel spacing.

* :func:`read_volume`: a NumPy ``.npy`` array, a multi-page TIFF stack (ImageJ hyperstacks
  included), a folder of DICOM slices (one series) or one multi-frame DICOM file, or a NIfTI
  ``.nii`` / ``.nii.gz`` file (with the optional extra ``nibabel``: ``pip install pdeflow[volumes]``)
  as a float tensor ``(D, H, W)`` and its voxel spacing ``(dz, dy, dx)``.
* :func:`write_volume`: a volume and its spacing to ``.npy``, ``.tif``/``.tiff`` or ``.nii``/``.nii.gz``,
  atomically (temporary file beside the target, then a rename; never a partial file).
* :func:`is_volume`: whether a path is for :func:`read_volume` rather than
  :func:`pdeflow.io.read_image` (what the command line uses to tell volumes from images).

Conventions
-----------
* **Axes.** Axis 0 is the slice (z), 1 the row (y), 2 the column (x), the layout of
  :mod:`pdeflow.ops` with ``ndim=3``. DICOM slices are ordered by ascending position along the
  slice normal (row direction x column direction of ``ImageOrientationPatient``); TIFF pages in
  file order; NIfTI voxel axes ``(i, j, k)`` become ``(k, j, i)``, as stored, without reorienting
  to any anatomical frame (the affine is not applied).
* **Spacing** is the distance between voxel centres, in millimetres where the file says its unit
  (DICOM always; NIfTI through ``xyzt_units``; TIFF through its resolution unit or ImageJ's
  ``unit``), otherwise in the file's own unknown unit (``info["unit"]`` says which). An axis the
  file gives no spacing for gets 1.0 (``info["spacing_from"]`` says which); the ``spacing``
  argument overrides the header.
* **Values** are taken as stored, as floats: no scaling, except DICOM's, which is part of the
  format: each slice's stored values times its ``RescaleSlope`` plus its ``RescaleIntercept``
  (Hounsfield units for CT), and times ``DoseGridScaling`` for RT dose (grey for
  ``MONOCHROME1`` is not inverted: the values keep their physical meaning). NIfTI's
  ``scl_slope``/``scl_inter`` are applied likewise. ``rescale='minmax'`` maps the volume's
  range onto [0, 1]; ``info["range"]`` is the range before it. (Unlike
  :func:`pdeflow.io.read_image`, values are not forced into [0, 1]: CT and MR intensities
  carry units that thresholds and parameters depend on.)
* **Safety.** The size is read from the header and checked against ``max_voxels`` before any
  voxel is loaded; what cannot be read as one volume on a uniform grid is refused with one line
  naming the argument: a 2-D image, mixed slice sizes, a missing slice (non-uniform positions),
  slices with different pixel spacings or orientations, several series in one folder, colour or
  complex data, NaN or infinite values.

The DICOM reader is :mod:`pdeflow.io._dicom`. Nothing here downloads anything.
"""
from __future__ import annotations

import gzip
import math
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from ..errors import UserInputError
from ._dicom import dicom_frames, read_dicom
from ._volume_checks import EXPECTED, check_size, refuse
from .files import atomic_path, input_path

__all__ = ["read_volume", "write_volume", "is_volume", "VOLUME_SUFFIXES", "VOLUME_FORMATS", "DEFAULT_MAX_VOXELS"]

#: File names :func:`write_volume` writes (and :func:`read_volume` reads, besides DICOM folders and files).
VOLUME_SUFFIXES = (".npy", ".tif", ".tiff", ".nii", ".nii.gz")

#: Default ``max_voxels`` of :func:`read_volume`: 10^9 voxels (4 GB as float32, e.g. 1000 slices of
#: 1000 x 1000), checked from the header before the data are loaded.
DEFAULT_MAX_VOXELS = 1_000_000_000

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# unit name -> millimetres (TIFF resolution units, ImageJ's unit strings, NIfTI's xyzt_units)
_MM = {"mm": 1.0, "millimeter": 1.0, "millimetre": 1.0, "cm": 10.0, "centimeter": 10.0, "inch": 25.4,
       "m": 1000.0, "meter": 1000.0, "micron": 1e-3, "um": 1e-3, "\u00b5m": 1e-3, "\\u00b5m": 1e-3,
       "nm": 1e-6, "nanometer": 1e-6}


def _check_spacing(spacing, who: str) -> tuple[float, float, float]:
    try:
        h = tuple(float(v) for v in spacing if not isinstance(v, bool))
        ok = len(h) == 3 and len(tuple(spacing)) == 3 and all(math.isfinite(v) and v > 0 for v in h)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserInputError(f"{who}: spacing must be three finite numbers > 0 (dz, dy, dx), got {spacing!r}")
    return h


# Where a 2-D image held in a volume format is read instead: read_image takes TIFF, not .npy (an array has
# no white level to map onto [0, 1], so it is loaded as it is and converted by the caller).
_IMAGE_READER = {"npy": "load it with numpy.load and pass torch.from_numpy(array) as a floating-point image "
                        "(pdeflow.io.read_image reads image files, not .npy arrays)",
                 "tiff": "read it with pdeflow.io.read_image"}


def _volume_shape(shape, axes, path, what: str, fmt: str) -> tuple[int, int, int]:
    """The three non-singleton axes of ``shape``, or a refusal: 2-D (one image) or more than 3-D; ``fmt``
    (a key of :data:`_IMAGE_READER`) says how to read a 2-D image instead."""
    kept = [(a, int(n)) for a, n in zip(axes, shape) if int(n) > 1]
    if len(kept) < 3:
        raise refuse(f"path '{path}' holds a 2-D image ({what} of shape {tuple(int(s) for s in shape)}), not a "
                     f"volume ({_IMAGE_READER[fmt]})")
    if len(kept) > 3:
        raise refuse(f"path '{path}' holds a {len(kept)}-D array ({what} of shape {tuple(int(s) for s in shape)}"
                     f"{', axes ' + repr(''.join(axes)) if axes and not axes[0].isdigit() else ''}); expected one "
                     "3-D volume (D, H, W): save one volume (channel, time point) per file")
    return tuple(n for _, n in kept)


# ---------------------------------------------------------------------------
# Readers: each returns (array (D, H, W), spacing with None for unknown axes, unit, info)
# ---------------------------------------------------------------------------

def _read_npy(path: Path, max_voxels):
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)   # the header only, until sliced
    except Exception as exc:
        raise refuse(f"could not read path '{path}' as a NumPy .npy array: {exc}") from None
    shape = _volume_shape(arr.shape, [str(i) for i in range(arr.ndim)], path, "an array", "npy")
    check_size(shape, max_voxels, path)
    return np.asarray(arr).reshape(shape), (None, None, None), "unknown", {"format": "NPY"}


def _tiff_unit_mm(tif, page) -> tuple[float | None, str]:
    """Millimetres per unit of the page's resolution (ImageJ's ``unit`` or the ResolutionUnit tag)."""
    ij = (tif.imagej_metadata or {}) if tif.is_imagej else {}
    unit = ij.get("unit")
    if unit:
        factor = _MM.get(str(unit).strip().lower())
        return factor, ("mm" if factor else "unknown")
    tag = page.tags.get("ResolutionUnit")
    code = int(tag.value) if tag is not None else 2       # the TIFF default unit is the inch
    return {2: 25.4, 3: 10.0}.get(code), ("mm" if code in (2, 3) else "unknown")


def _no_unit(tif, page) -> bool:
    """True where the page's resolution has no unit (ResolutionUnit NONE, no ImageJ unit): a resolution of 1
    pixel per unit there is a writer's default (tifffile's), not a spacing."""
    return _tiff_unit_mm(tif, page)[0] is None


def _read_tiff(path: Path, max_voxels):
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = [s for s in tif.series if not getattr(s, "is_reduced", False)] or tif.series[:1]
            for s in series:
                if any(a in "SC" and n > 1 for a, n in zip(s.axes, s.shape)):
                    raise refuse(f"path '{path}' is a TIFF with axes '{s.axes}' and shape {tuple(s.shape)}: colour "
                                 "samples or channels; expected one grey-value volume")
            if len(series) == 1:
                s = series[0]
                shape = _volume_shape(s.shape, s.axes, path, f"TIFF, axes '{s.axes}'", "tiff")
                check_size(shape, max_voxels, path)
                arr = s.asarray().reshape(shape)
            else:   # pages written one by one: a stack if they are 2-D images of one size
                planes = [tuple(int(n) for n in s.shape if n > 1) for s in series]
                if any(len(p) != 2 for p in planes):
                    raise refuse(f"path '{path}' is a TIFF holding {len(series)} images or volumes of shapes "
                                 f"{sorted({tuple(s.shape) for s in series})[:4]}; expected one stack of 2-D slices")
                if len(set(planes)) > 1:
                    raise refuse(f"path '{path}' is a TIFF whose pages have different sizes (mixed slice sizes: "
                                 f"{', '.join(str(p) for p in sorted(set(planes))[:4])}); expected one stack of "
                                 "equal slices")
                shape = (len(series), *planes[0])
                check_size(shape, max_voxels, path)
                arr = np.stack([s.asarray().reshape(planes[0]) for s in series])
            page = series[0].keyframe
            factor, unit = _tiff_unit_mm(tif, page)
            spacing = [None, None, None]
            for i, name in ((1, "YResolution"), (2, "XResolution")):
                tag = page.tags.get(name)
                if tag is not None:
                    num, den = tag.value if isinstance(tag.value, tuple) else (tag.value, 1)
                    if num and den and num / den > 0 and not (num == den and _no_unit(tif, page)):
                        spacing[i] = den / num
            ij = tif.imagej_metadata if tif.is_imagej else None
            if ij and ij.get("spacing"):
                spacing[0] = float(ij["spacing"])
    except UserInputError:
        raise
    except Exception as exc:  # tifffile raises a variety of errors on bad files
        raise refuse(f"could not read path '{path}' as a TIFF stack: {exc}") from None
    if all(v is None for v in spacing):
        unit = "unknown"
    if factor is not None:
        spacing = [None if v is None else v * factor for v in spacing]
    return arr, tuple(spacing), unit, {"format": "TIFF"}


def _read_nifti(path: Path, max_voxels):
    try:
        import nibabel
    except ImportError:
        raise refuse(f"reading the NIfTI file path '{path}' needs nibabel, an optional extra: "
                     "pip install 'pdeflow[volumes]' (or pip install nibabel)") from None
    try:
        img = nibabel.load(str(path))        # the header; the data stay on disk until asked for
        full = tuple(int(n) for n in img.shape)
        zooms = [float(z) for z in img.header.get_zooms()[:3]]
        unit = img.header.get_xyzt_units()[0]
    except Exception as exc:
        raise refuse(f"could not read path '{path}' as a NIfTI file: {exc}") from None
    if any(n > 1 for n in full[3:]):
        raise refuse(f"path '{path}' is a NIfTI file of shape {full}, several volumes (time points or "
                     "components); expected one 3-D volume")
    if len(full) < 3 or any(n <= 1 for n in full[:3]):
        raise refuse(f"path '{path}' holds a 2-D image (a NIfTI image of shape {full}), not a volume")
    shape_xyz = full[:3]
    check_size(shape_xyz, max_voxels, path)
    try:
        arr = np.asarray(img.dataobj)        # scl_slope and scl_inter applied
    except Exception as exc:
        raise refuse(f"could not read the data of the NIfTI file path '{path}': {exc}") from None
    arr = arr.reshape(shape_xyz).transpose(2, 1, 0)
    factor = _MM.get(unit)
    # pixdim is float32: 7 significant digits give back the decimal that was written (0.7, not 0.699999988)
    spacing = [float(f"{abs(z):.7g}") if z and math.isfinite(z) else None for z in zooms[::-1]]
    if factor is not None:
        spacing = [None if v is None else v * factor for v in spacing]
    return arr, tuple(spacing), ("mm" if factor else "unknown"), {"format": "NIfTI"}


# ---------------------------------------------------------------------------
# read_volume / write_volume
# ---------------------------------------------------------------------------

def _npy_dims(path: Path) -> int | None:
    """The number of axes longer than 1 of a ``.npy`` file, from its header; None if it is not one."""
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape   # the header only
    except Exception:
        return None
    return sum(1 for n in shape if n > 1)


def _tiff_is_stack(path: Path) -> bool:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
            if len(pages) > 1:
                return True
            s = tif.series[0] if tif.series else None
            return s is not None and sum(1 for a, n in zip(s.axes, s.shape) if n > 1 and a not in "SC") >= 3
    except Exception:
        return False


def is_volume(path) -> bool:
    """Whether ``path`` is a volume for :func:`read_volume` rather than an image for :func:`~pdeflow.io.read_image`.

    Decided from the path and, for files, from their header (no voxel is
    loaded): a folder (of DICOM slices), a NIfTI name (``.nii``,
    ``.nii.gz``), a ``.npy`` file with three or more axes longer than 1, a
    TIFF with more than one page (reduced-resolution previews aside) or a
    3-D series, and a DICOM file with more than one frame are volumes;
    anything else (including a path that does not exist, or a file that
    cannot be read) is not. A file called a volume here may still be
    refused by :func:`read_volume` (e.g. a 4-D ``.npy`` array or a colour
    stack), with its one-line message.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    bool

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from pdeflow.io import is_volume
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "v.npy"), np.zeros((4, 5, 6)))
    >>> np.save(os.path.join(d, "i.npy"), np.zeros((1, 5, 6)))
    >>> is_volume(os.path.join(d, "v.npy")), is_volume(os.path.join(d, "i.npy")), is_volume(d)
    (True, False, True)
    """
    path = Path(path)
    if path.is_dir():
        return True
    if not path.is_file():
        return False
    if _is_nifti_name(path):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if head.startswith(b"\x93NUMPY"):
        dims = _npy_dims(path)
        return dims is not None and dims >= 3
    if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
        return dicom_frames(path) > 1
    if head[:4] in _TIFF_MAGICS:
        return _tiff_is_stack(path)
    return False


def _is_nifti_name(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def read_volume(path, *, spacing=None, rescale: str | None = None, max_voxels: int | None = DEFAULT_MAX_VOXELS,
                dtype: torch.dtype = torch.float32, return_info: bool = False):
    """Read a volume and its voxel spacing from a file or a folder of DICOM slices.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (a 3-D array), a TIFF stack (multi-page, or an ImageJ
        hyperstack with one channel and time point), a NIfTI ``.nii``/``.nii.gz``
        file (needs nibabel, the ``volumes`` extra), a multi-frame DICOM file,
        or a folder holding the DICOM slices of one series (other files in it,
        such as a DICOMDIR, are skipped; subfolders are not searched). The
        format is recognised from the content (NIfTI from the name). Axes of
        length 1 are dropped (a ``(1, D, H, W)`` array is a volume).
    spacing : (float, float, float), optional
        ``(dz, dy, dx)`` to use instead of the header's (e.g. when the file has
        none); default: the header's, 1.0 on axes it gives none for.
    rescale : {None, 'minmax'}, optional
        None (default) keeps the values as stored (DICOM after its rescale
        slope and intercept); ``'minmax'`` maps the minimum and maximum onto 0
        and 1 (a constant volume gives zeros).
    max_voxels : int or None, optional
        Largest number of voxels accepted, read from the header before the
        data are loaded (default :data:`DEFAULT_MAX_VOXELS`); None: no limit.
    dtype : torch.dtype, optional
        ``torch.float32`` (default) or ``torch.float64``.
    return_info : bool, optional
        Also return a dict: ``format`` (``'NPY'``, ``'TIFF'``, ``'DICOM'``,
        ``'NIfTI'``), ``unit`` (``'mm'`` or ``'unknown'``), ``spacing_from``
        (per axis ``'header'``, ``'default'`` or ``'argument'``), ``range``
        (minimum and maximum before ``rescale``), ``scaling`` (``'as stored'``
        or ``'minmax'``) and, for DICOM, ``files``.

    Returns
    -------
    volume : Tensor, shape (D, H, W)
        Floating-point values, on the CPU.
    spacing : tuple of float
        ``(dz, dy, dx)``, in millimetres when ``info['unit']`` is ``'mm'``.
    info : dict, only if ``return_info``

    Raises
    ------
    pdeflow.errors.InputFileNotFoundError
        ``path`` does not exist (a :class:`~pdeflow.errors.UserInputError` and a
        FileNotFoundError).
    pdeflow.errors.UserInputError
        What cannot be read as one volume on a uniform grid (see the module
        docstring), a bad argument, or nibabel missing for a NIfTI file; one
        line naming the argument.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from pdeflow.io import read_volume
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "v.npy"), np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    >>> vol, spacing = read_volume(os.path.join(d, "v.npy"), spacing=(2.5, 0.7, 0.7))
    >>> vol.shape, vol.dtype, float(vol[1, 2, 3]), spacing
    (torch.Size([2, 3, 4]), torch.float32, 23.0, (2.5, 0.7, 0.7))
    """
    who = "read_volume"
    path = input_path(path, who, folder_ok=True)
    override = None if spacing is None else _check_spacing(spacing, who)
    if rescale not in (None, "minmax"):
        raise UserInputError(f"{who}: rescale must be None or 'minmax', got {rescale!r}")
    if max_voxels is not None and (isinstance(max_voxels, bool) or not isinstance(max_voxels, Integral)
                                   or max_voxels < 1):
        raise UserInputError(f"{who}: max_voxels must be a positive int or None, got {max_voxels!r}")
    if dtype not in (torch.float32, torch.float64):
        raise UserInputError(f"{who}: dtype must be torch.float32 or torch.float64, got {dtype!r}")
    if path.is_dir():
        arr, header, unit, info = read_dicom(path, max_voxels)
    else:
        with open(path, "rb") as fh:
            head = fh.read(132)
        if head.startswith(b"\x93NUMPY"):
            arr, header, unit, info = _read_npy(path, max_voxels)
        elif head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
            # (before TIFF: a DICOM preamble may itself be a TIFF header, as in dual-personality files)
            arr, header, unit, info = read_dicom(path, max_voxels)
        elif head[:4] in _TIFF_MAGICS:
            arr, header, unit, info = _read_tiff(path, max_voxels)
        elif _is_nifti_name(path):
            arr, header, unit, info = _read_nifti(path, max_voxels)
        else:
            raise refuse(f"could not read path '{path}' as a volume; {EXPECTED}")
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise refuse(f"path '{path}' holds {arr.dtype} values; expected real numbers")
    arr = arr.astype(np.float64 if dtype == torch.float64 else np.float32)
    if not np.isfinite(arr).all():
        raise refuse(f"path '{path}' contains NaN or infinite values")
    lo, hi = (float(arr.min()), float(arr.max()))
    if rescale == "minmax":
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    out = [1.0 if v is None else float(v) for v in header]
    spacing_from = ["default" if v is None else "header" for v in header]
    if override is not None:
        out, spacing_from = list(override), ["argument"] * 3
    info.update(unit=unit, spacing_from=tuple(spacing_from), range=(lo, hi),
                scaling="minmax" if rescale == "minmax" else "as stored")
    vol = torch.from_numpy(np.ascontiguousarray(arr))
    return (vol, tuple(out), info) if return_info else (vol, tuple(out))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in (".nii.gz", ".nii", ".npy", ".tiff", ".tif"):
        if name.endswith(s):
            return s
    return path.suffix.lower()


#: ``format`` names of :func:`write_volume`, each with the suffix it implies.
VOLUME_FORMATS = {"npy": ".npy", "tif": ".tif", "nii": ".nii", "nii.gz": ".nii.gz"}


def write_volume(path, volume, *, spacing=None, overwrite: bool = False, format: str | None = None) -> Path:
    """Write a volume ``(D, H, W)`` and its spacing, atomically, as ``.npy``, ``.tif``/``.tiff`` or ``.nii(.gz)``.

    The file is written to a temporary file beside ``path`` and renamed onto
    it, so a reader never sees a partial file and a failed write leaves none.

    Parameters
    ----------
    path : str or path-like
        Target; the format follows its name: ``.npy`` (the array only, its
        dtype kept for float32/float64), ``.tif``/``.tiff`` (an ImageJ float32
        hyperstack, axes ZYX, with the spacing in millimetres: resolution tags
        and ImageJ's ``spacing``), ``.nii``/``.nii.gz`` (NIfTI-1, voxel axes
        ``(x, y, z) = (W, H, D)``, affine ``diag(dx, dy, dz)``, units mm; needs
        nibabel). Its folder must exist.
    volume : Tensor or numpy.ndarray, shape (D, H, W)
        Real, finite values (integers are written as float32).
    spacing : (float, float, float), optional
        ``(dz, dy, dx)`` in millimetres (default unit). A ``.npy`` file has no
        place for it: a spacing other than unit is refused there.
    overwrite : bool, optional
        Replace an existing file; otherwise an existing ``path`` raises
        FileExistsError (as :func:`pdeflow.io.write_image`).
    format : {None, 'npy', 'tif', 'nii', 'nii.gz'}, optional
        The format, whatever ``path``'s name (for a temporary file); default
        (None): from the name.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> import torch
    >>> from pdeflow.io import read_volume, write_volume
    >>> p = os.path.join(tempfile.mkdtemp(), "ball.tif")
    >>> v = torch.zeros(4, 5, 6)
    >>> v[1:3, 2, 3] = 1.0
    >>> _ = write_volume(p, v, spacing=(2.5, 0.7, 0.7))
    >>> w, spacing = read_volume(p)
    >>> torch.equal(w, v), [round(s, 6) for s in spacing]
    (True, [2.5, 0.7, 0.7])
    """
    who = "write_volume"
    path = Path(path)
    if format is not None and format not in VOLUME_FORMATS:
        raise UserInputError(f"{who}: format must be None or one of {', '.join(map(repr, VOLUME_FORMATS))}, "
                             f"got {format!r}")
    kind = _suffix(path) if format is None else VOLUME_FORMATS[format]
    if kind not in VOLUME_SUFFIXES:
        raise UserInputError(f"{who}: path must end in one of {', '.join(VOLUME_SUFFIXES)}, got '{path.name}'")
    h = (1.0, 1.0, 1.0) if spacing is None else _check_spacing(spacing, who)
    if isinstance(volume, torch.Tensor):
        arr = volume.detach().cpu().numpy()
    elif isinstance(volume, np.ndarray):
        arr = volume
    else:
        raise TypeError(f"{who}: volume must be a torch.Tensor or numpy.ndarray, got {type(volume).__name__}")
    if arr.ndim != 3 or arr.size == 0:
        raise UserInputError(f"{who}: volume must have shape (D, H, W) and not be empty, got {tuple(arr.shape)}")
    if arr.dtype.kind not in "biuf":
        raise UserInputError(f"{who}: volume must hold real numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise UserInputError(f"{who}: volume contains NaN or infinite values")
    keep64 = arr.dtype == np.float64 and kind in (".npy", ".nii", ".nii.gz")
    arr = np.ascontiguousarray(arr, dtype=np.float64 if keep64 else np.float32)
    if kind == ".npy" and h != (1.0, 1.0, 1.0):
        raise UserInputError(f"{who}: spacing {tuple(spacing)} cannot be stored in a .npy file (it holds the array "
                             "only); write .tif or .nii(.gz), or pass spacing=None")
    if kind in (".nii", ".nii.gz"):
        try:
            import nibabel
        except ImportError:
            raise UserInputError(f"{who}: writing NIfTI (path '{path.name}') needs nibabel, an optional extra: "
                                 "pip install 'pdeflow[volumes]' (or pip install nibabel)") from None
        dz, dy, dx = h
        img = nibabel.Nifti1Image(arr.transpose(2, 1, 0), np.diag([dx, dy, dz, 1.0]))
        img.header.set_xyzt_units("mm")
        data = img.to_bytes()
        if kind == ".nii.gz":
            data = gzip.compress(data, mtime=0)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{who}: '{path}' already exists (pass overwrite=True to replace it)")
    with atomic_path(path, overwrite=overwrite) as tmp:
        if kind == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        elif kind in (".tif", ".tiff"):
            import tifffile

            dz, dy, dx = h
            tifffile.imwrite(tmp, arr, imagej=True, resolution=(1.0 / dx, 1.0 / dy),
                             metadata={"spacing": dz, "unit": "mm", "axes": "ZYX"})
        else:
            with open(tmp, "wb") as fh:
                fh.write(data)
    return path

