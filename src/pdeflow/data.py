"""Image input/output, offline image pools, random crops and synthetic images.

* :func:`read_image` / :func:`write_image`: PNG, JPEG, TIFF and DICOM to and
  from float32 tensors ``(C, H, W)`` in [0, 1]; writes are atomic.
* :func:`atomic_write` / :func:`atomic_path`: the one atomic-write helper
  (temporary file beside the target, then :func:`os.replace`) for every module
  that writes files.
* :func:`builtin_names`, :func:`builtin_image`, :func:`builtin_pool`: a named
  pool of photographs and medical images shipped inside installed Python
  packages (scikit-image, PyWavelets, matplotlib, pydicom and, when installed,
  scikit-learn), with a fixed train/test split by source image.
* :func:`random_crops`: seeded random square crops, reflect-padded as needed.
* :class:`ImageSet`, :func:`training_images`: the training and validation
  images of a trainer (the built-in pool or a user folder, never one source
  image in both), read lazily, with seeded random crops.
* :func:`disk`, :func:`disks`, :func:`ellipses`, :func:`plateau_1d`: synthetic
  piecewise-constant images (TV-flow eigenfunctions and the generalisation
  test images of TVflowNET, seed 000 §4.2.1).

Nothing here downloads anything.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import math
import os
import struct
import tempfile
import threading
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "read_image",
    "write_image",
    "atomic_write",
    "atomic_path",
    "builtin_names",
    "builtin_image",
    "builtin_pool",
    "builtin_info",
    "random_crops",
    "ImageSet",
    "training_images",
    "IMAGE_SUFFIXES",
    "disk",
    "disks",
    "ellipses",
    "plateau_1d",
    "LUMA_WEIGHTS",
    "DEFAULT_MAX_PIXELS",
]

#: ITU-R BT.601 luma weights used for colour to grey conversion.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_EXPECTED = "(expected PNG/JPEG/TIFF/DICOM)"


class _NotAnImage(ValueError):
    """Raised by a format reader that does not recognise the file."""


class _Refused(ValueError):
    """A file that read_image refuses, with the message for the user (raised as is)."""


#: White level returned by a reader for integer data with no fixed scale.
_NO_WHITE = "none"

#: Default ``max_pixels`` of :func:`read_image`: images with more pixels
#: (height x width, per page) are refused before their pixels are decoded. 10^8
#: pixels is a 10000x10000 image, 1.2 GB as float32 RGB; Pillow's own guard
#: against decompression bombs warns at 0.9e8 and refuses 1.8e8.
DEFAULT_MAX_PIXELS = 100_000_000


def _check_pixels(path: Path, h: int, w: int, max_pixels: int | None) -> None:
    """Refuse an image whose header claims more than ``max_pixels`` pixels."""
    if max_pixels is not None and h * w > max_pixels:
        raise _Refused(f"read_image: '{path}' is {w}x{h} pixels ({h * w:.3g}), more than "
                       f"max_pixels={max_pixels:.3g} (in Python: read_image(path, max_pixels=...) reads larger images)")


_PILLOW_LOCK = threading.Lock()


def _pillow_open(path: Path):
    """``PIL.Image.open`` without Pillow's decompression-bomb check (module
    state, lifted under a lock for the header parse only), so that
    :func:`_check_pixels` sees the size and words the refusal."""
    from PIL import Image

    with _PILLOW_LOCK:
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit


@contextlib.contextmanager
def _pillow_limit(max_pixels: int | None):
    """Let Pillow decode images up to ``max_pixels`` (some of its readers check
    twice ``Image.MAX_IMAGE_PIXELS`` again while decoding): its limit is
    raised under a lock and restored, only when ``max_pixels`` exceeds it."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or (max_pixels is not None and max_pixels <= 2 * limit):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
        return
    with _PILLOW_LOCK:
        Image.MAX_IMAGE_PIXELS = None if max_pixels is None else max_pixels
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = limit



# ---------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------

def _umask() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, only used off Linux
    os.umask(mask)
    return mask


def _check_target(path: Path, overwrite: bool, who: str) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"{who}: path '{path}' is a directory")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{who}: '{path}' already exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{who}: directory '{path.parent}' does not exist")


def _commit(tmp: Path, path: Path, overwrite: bool, fsync: bool) -> None:
    if fsync:
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    mode = None
    if overwrite and path.exists():
        with contextlib.suppress(OSError):
            mode = path.stat().st_mode & 0o7777
    os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
    if overwrite:
        os.replace(tmp, path)
        return
    # Without overwrite, a hard link fails atomically if the target appeared
    # meanwhile; fall back to check-and-rename where links are unsupported.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"'{path}' already exists (pass overwrite=True to replace it)") from None
    except OSError:
        if path.exists():
            raise FileExistsError(f"'{path}' already exists (pass overwrite=True to replace it)") from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = False, fsync: bool = True) -> Iterator[Path]:
    """Context manager that yields a temporary path and moves it onto ``path``.

    The temporary file is created beside ``path`` (same directory, so the
    final :func:`os.replace` is atomic) and ends with the same suffix, so
    writers that infer the format from the name (matplotlib, PIL) work. When
    the block exits normally the file is flushed to disk and renamed onto
    ``path``; if the block raises, the temporary file is removed and ``path``
    is untouched.

    Parameters
    ----------
    path : str or path-like
        Final destination. Its directory must exist.
    overwrite : bool, optional
        Replace an existing file. Without it an existing ``path`` raises
        FileExistsError, before the block runs and again (atomically) at the end.
    fsync : bool, optional
        Flush the temporary file to disk before the rename.

    Yields
    ------
    pathlib.Path
        The temporary path to write to (it exists, empty).

    Examples
    --------
    >>> with atomic_path("fig.png", overwrite=True) as tmp:   # doctest: +SKIP
    ...     fig.savefig(tmp)
    """
    path = Path(path)
    _check_target(path, overwrite, "atomic_path")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_path: the writer removed the temporary file '{tmp}'")
        _commit(tmp, path, overwrite, fsync)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path, writer_fn: Callable[[Path], object], *, overwrite: bool = False,
                 fsync: bool = True) -> Path:
    """Write a file atomically: ``writer_fn(tmp_path)`` then rename onto ``path``.

    Readers never see a partial file, and a failed write leaves no file
    behind (the temporary file is removed and the exception re-raised). See
    :func:`atomic_path` for the details.

    Parameters
    ----------
    path : str or path-like
        Final destination; its directory must exist.
    writer_fn : callable
        Called once with the temporary path (a :class:`pathlib.Path` with the
        same suffix as ``path``); it must write the whole file there.
    overwrite : bool, optional
        Replace an existing file (default: raise FileExistsError).
    fsync : bool, optional
        Flush to disk before the rename.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> atomic_write("model.safetensors", lambda p: save_file(tensors, p))  # doctest: +SKIP
    """
    if not callable(writer_fn):
        raise TypeError(f"atomic_write: writer_fn must be callable, got {type(writer_fn).__name__}")
    with atomic_path(path, overwrite=overwrite, fsync=fsync) as tmp:
        writer_fn(tmp)
    return Path(path)


# ---------------------------------------------------------------------------
# Reading images
# ---------------------------------------------------------------------------

def _png_header(head: bytes):
    """(bit depth, colour type, interlace) of a PNG, or None."""
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25], head[28]


def _decode_png16(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """Decode a non-interlaced 16-bit PNG to ``(H, W[, C])`` uint16 (Pillow
    reduces 16-bit colour PNGs to 8 bits)."""
    data = path.read_bytes()
    if len(data) >= 24:
        _check_pixels(path, *struct.unpack(">II", data[16:24])[::-1], max_pixels)
    pos, idat, hdr = 8, [], None
    while pos + 8 <= len(data):
        (length,), ctype = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    w, h, depth, ctype, _, _, interlace = hdr
    chans = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    bpp = 2 * chans
    stride = w * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    if raw.size < h * (stride + 1):
        raise ValueError("truncated PNG data")
    raw = raw[:h * (stride + 1)].reshape(h, stride + 1)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for i in range(h):
        f, line = raw[i, 0], raw[i, 1:]
        if f == 0:
            cur = line.copy()
        elif f == 1:  # Sub: running sum per byte position mod 256
            cur = (np.cumsum(line.reshape(w, bpp).astype(np.int64), axis=0) & 0xFF).astype(np.uint8).ravel()
        elif f == 2:  # Up
            cur = line + prev
        elif f in (3, 4):  # Average / Paeth are sequential along the row
            cur = bytearray(line.tobytes())
            up = prev.tobytes()
            for j in range(stride):
                a = cur[j - bpp] if j >= bpp else 0
                b = up[j]
                if f == 3:
                    cur[j] = (cur[j] + ((a + b) >> 1)) & 0xFF
                else:
                    c = up[j - bpp] if j >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                    cur[j] = (cur[j] + pred) & 0xFF
            cur = np.frombuffer(bytes(cur), np.uint8)
        else:
            raise ValueError(f"bad PNG filter type {f}")
        out[i] = cur
        prev = out[i]
    arr = out.view(">u2").reshape(h, w, chans).astype(np.uint16)
    return arr[..., 0] if chans == 1 else arr


def _write_png16(path: Path, arr: np.ndarray) -> None:
    """Write ``(H, W)`` or ``(H, W, C)`` uint16, C in {1, 2, 3, 4}, as a 16-bit PNG."""
    if arr.ndim == 2:
        arr = arr[..., None]
    h, w, c = arr.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(h, w * c * 2)
    up = rows.copy()
    up[1:] -= rows[:-1]  # "Up" filter (uint8 arithmetic wraps mod 256)
    scan = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(_PNG_SIGNATURE)
        fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)))
        fh.write(chunk(b"IDAT", zlib.compress(scan, 6)))
        fh.write(chunk(b"IEND", b""))


def _read_pillow(path: Path, head: bytes, max_pixels: int | None = None) -> tuple[np.ndarray, float | None, str]:
    """Array ``(H, W[, C])``, its white level (None: floating data) and format name."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    png = _png_header(head)
    if png is not None and png[0] == 16 and png[1] != 0:
        if png[2] == 0:
            try:
                return _decode_png16(path, max_pixels), 65535.0, "PNG"
            except _Refused:
                raise
            except Exception as exc:  # zlib.error, struct.error, truncated data, ...
                raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}: "
                                 f"bad 16-bit PNG data ({exc})") from None
        warnings.warn(f"read_image: '{path}' is an interlaced 16-bit colour PNG; "
                      "it is read with 8-bit precision", stacklevel=3)
    try:
        with _pillow_open(path) as im, _pillow_limit(max_pixels):
            _check_pixels(path, im.size[1], im.size[0], max_pixels)
            fmt = im.format or "image"
            im = ImageOps.exif_transpose(im)
            mode = im.mode
            if mode == "1":
                im, mode = im.convert("L"), "L"
            elif mode in ("P", "PA"):
                im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
                mode = im.mode
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
                im, mode = im.convert("RGB"), "RGB"
            elif mode in ("RGBa", "La"):
                im = im.convert("RGBA" if mode == "RGBa" else "LA")
                mode = im.mode
            arr = np.array(im)
    except UnidentifiedImageError:
        raise _NotAnImage(str(path)) from None
    except _Refused:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}: {exc}") from None
    if mode.startswith("I;16") or (png is not None and png[0] == 16):
        return arr.astype(np.uint16), 65535.0, fmt
    if mode == "I":
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            return arr, _NO_WHITE, fmt
        return arr.astype(np.uint16), 65535.0, fmt
    if mode == "F":
        return arr.astype(np.float32), None, fmt
    return arr, 255.0, fmt


def _read_tiff(path: Path, max_pixels: int | None = None) -> tuple[np.ndarray, float | None]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            # Reduced-resolution pages (previews, pyramid levels) do not count as images.
            pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)] or [tif.pages[0]]
            if len(pages) > 1:
                shape = tif.series[0].shape if tif.series else (len(pages),)
                raise _Refused(f"read_image: TIFF '{path}' holds {len(pages)} images (pages; series shape "
                               f"{tuple(shape)}), a stack or multi-page document; read_image reads single "
                               "2-D images: save the page you want on its own (e.g. with "
                               "tifffile.imread(path, key=i))")
            page = pages[0]
            shape = dict(zip(page.axes, page.shape))
            extra = {a: n for a, n in shape.items() if a not in "YXS" and n > 1}
            if extra:
                raise _Refused(f"read_image: TIFF '{path}' has axes '{page.axes}' and shape {page.shape}, "
                               "more than a 2-D grey or colour image (a volume or stack); "
                               "save the plane you want on its own")
            _check_pixels(path, shape.get("Y", 1), shape.get("X", 1), max_pixels)
            arr = page.asarray()
            axes = page.axes
            photometric = int(page.photometric)
            colormap = page.colormap if photometric == 3 else None
    except _Refused:
        raise
    except Exception as exc:  # tifffile raises a variety of errors on bad files
        raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}: {exc}") from None
    if arr.ndim != len(axes):
        raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}: its pixel data "
                         f"has shape {arr.shape}, which does not match its axes '{axes}'")
    if "S" in axes and axes.index("S") != arr.ndim - 1:
        arr = np.moveaxis(arr, axes.index("S"), -1)
    arr = np.squeeze(arr) if arr.ndim > 3 else arr
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise ValueError(f"read_image: TIFF '{path}' has axes '{axes}' and shape {arr.shape}; "
                         "expected a 2-D grey or colour image")
    if colormap is not None and arr.ndim == 2:  # palette image
        cmap = np.asarray(colormap)
        if (arr.dtype.kind not in "ui" or cmap.ndim != 2 or cmap.shape[0] != 3
                or (arr.size and (arr.min() < 0 or arr.max() >= cmap.shape[1]))):
            raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}: "
                             "its palette indices do not fit its colormap")
        return cmap[:, arr].transpose(1, 2, 0).astype(np.uint16), 65535.0 if cmap.max() > 255 else 255.0
    if photometric == 0 and arr.dtype.kind in "ui":  # MINISWHITE: 0 is white
        arr = np.iinfo(arr.dtype).max - arr
    return arr, _white_level(arr, path)


def _white_level(arr: np.ndarray, path):
    """Value that maps to 1: the type's maximum for integers, None for floats."""
    if arr.dtype == np.bool_:
        return 1.0
    if arr.dtype.kind == "u":
        return float(np.iinfo(arr.dtype).max)
    if arr.dtype.kind == "i":
        if arr.size and arr.min() < 0:
            return _NO_WHITE
        return float(np.iinfo(arr.dtype).max)
    if arr.dtype.kind == "f":
        return None
    raise ValueError(f"read_image: '{path}' has unsupported pixel type {arr.dtype}")


def _read_dicom(path: Path, force: bool, max_pixels: int | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """DICOM pixels after rescale slope/intercept, min-max scaled into [0, 1],
    and the range ``(lo, hi)`` that was mapped onto [0, 1]."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=force)
    except Exception as exc:
        raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}: {exc}") from None
    if "PixelData" not in ds:
        raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}: "
                         "it has no DICOM pixel data")
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise _Refused(f"read_image: DICOM file '{path}' holds {frames} frames (a multi-frame series); "
                           "read_image reads single 2-D images: save the frame you want on its own "
                           "(e.g. pydicom.dcmread(path).pixel_array[i])")
        _check_pixels(path, int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0), max_pixels)
        pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
        spp = int(ds.get("SamplesPerPixel", 1))
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    except _Refused:
        raise
    except Exception as exc:  # malformed data elements
        raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}: "
                         f"bad DICOM header ({exc})") from None
    try:
        arr = ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise ValueError(f"read_image: cannot decode the pixels of DICOM file '{path}' "
                         f"(transfer syntax {ts}; compressed data may need an extra decoder "
                         f"such as pylibjpeg): {exc}") from None
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != spp):
        raise ValueError(f"read_image: DICOM file '{path}' has pixel data of shape {arr.shape}; "
                         "expected a 2-D grey or colour image")
    if pi.startswith("YBR") and int(pydicom.__version__.split(".")[0]) < 3:
        from pydicom.pixel_data_handlers.util import convert_color_space
        arr = convert_color_space(arr, pi, "RGB")
    arr = arr.astype(np.float64)
    if spp == 1:
        arr = arr * slope + intercept
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"read_image: DICOM file '{path}' has NaN or infinite values after its rescale "
                         f"slope {slope:g} and intercept {intercept:g}")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    arr = _minmax(arr)
    if pi == "MONOCHROME1":  # smallest value is white
        arr = 1.0 - arr
    return arr, (lo, hi)


def _minmax(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _to_chw(arr: np.ndarray, grey: bool | None, who: str) -> torch.Tensor:
    """``(H, W[, C])`` float in [0, 1] to a float32 tensor ``(C, H, W)``."""
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[-1]
    if c in (2, 4):  # drop alpha
        arr = arr[..., :c - 1]
    elif c not in (1, 3):
        raise ValueError(f"{who}: unsupported number of channels {c}")
    if grey and arr.shape[-1] == 3:
        arr = arr @ np.asarray(LUMA_WEIGHTS, dtype=np.float64)
        arr = arr[..., None]
    elif grey is False and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))


def read_image(path, *, grey: bool | None = None, rescale: str | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS, return_info: bool = False):
    """Read a PNG, JPEG, TIFF or DICOM file as a float32 tensor in [0, 1].

    Integer images are divided by the maximum of their stored type (255 for
    8-bit, 65535 for 16-bit), so intensities keep their meaning; floating-point
    TIFFs are taken as stored and must already lie in [0, 1]. **DICOM is the
    one format that is rescaled by default**: it has no fixed white level (CT
    values are Hounsfield units after the rescale slope and intercept, MR
    values are arbitrary), so its pixel array, after the rescale slope and
    intercept when present, is min-max scaled to [0, 1] (the smallest value
    maps to 0, the largest to 1; MONOCHROME1 is inverted so that 1 is white;
    a constant image gives zeros). ``return_info=True`` reports the scaling
    and the original range. Alpha channels are dropped. JPEG EXIF orientation
    is applied.

    Only single 2-D images are read: a TIFF with several pages (a stack or a
    multi-page document; reduced-resolution preview pages do not count) or
    with a depth axis, and a multi-frame DICOM, raise ValueError.

    Parameters
    ----------
    path : str or path-like
        Image file. The format is recognised from the content, not the name
        (a ``.dcm``/``.dicom`` name only helps with DICOM files that lack
        their 128-byte preamble).
    grey : bool or None, optional
        ``None`` keeps the stored channels (``C = 1`` or ``3``); ``True``
        converts colour to luminance ``0.299 R + 0.587 G + 0.114 B``
        (ITU-R BT.601) giving ``C = 1``; ``False`` gives ``C = 3``, repeating
        a grey image.
    rescale : {None, 'minmax'}, optional
        ``'minmax'`` maps the image's own minimum and maximum to 0 and 1 for
        any format (use it for float images outside [0, 1] or signed data).
        DICOM is min-max scaled either way.
    max_pixels : int or None, optional
        Largest number of pixels (height x width) accepted, checked from the
        file's header before any pixel is decoded, so that a small file
        claiming a huge image (a "decompression bomb") fails fast. Default
        :data:`DEFAULT_MAX_PIXELS` (10^8, e.g. 10000x10000); ``None`` lifts
        the limit (and Pillow's own, for this call).
    return_info : bool, optional
        Also return a dict describing the file and how its values were
        mapped onto [0, 1].

    Returns
    -------
    Tensor, shape (C, H, W), float32
        Intensities in [0, 1].
    dict, only if ``return_info``
        ``format`` (``'PNG'``, ``'JPEG'``, ``'TIFF'``, ``'DICOM'``, ...),
        ``scaling`` (``'white'``: divided by the type's maximum ``white``;
        ``'float'``: taken as stored; ``'minmax'``: the values ``range = (lo,
        hi)`` mapped onto [0, 1], for DICOM after the rescale slope and
        intercept), ``white`` (float or None) and ``range`` (tuple or None).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable single image, has more than
        ``max_pixels`` pixels, or its values have no known white level
        (pass ``rescale='minmax'``). The message names the file.
    """
    path = Path(path)
    if rescale not in (None, "minmax"):
        raise ValueError(f"read_image: rescale must be None or 'minmax', got {rescale!r}")
    if grey not in (None, True, False):
        raise ValueError(f"read_image: grey must be None, True or False, got {grey!r}")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, Integral)
                                   or max_pixels < 1):
        raise ValueError(f"read_image: max_pixels must be a positive int or None, got {max_pixels!r}")
    if not path.exists():
        raise FileNotFoundError(f"read_image: no such file: '{path}'")
    if path.is_dir():
        raise IsADirectoryError(f"read_image: '{path}' is a directory, not an image file")
    with open(path, "rb") as fh:
        head = fh.read(132)

    info = {"format": "DICOM", "scaling": "minmax", "white": None, "range": None}
    if head[128:132] == b"DICM":
        arr, info["range"] = _read_dicom(path, force=True, max_pixels=max_pixels)
    else:
        if head[:4] in _TIFF_MAGICS:
            arr, white = _read_tiff(path, max_pixels)
            info["format"] = "TIFF"
        else:
            try:
                arr, white, info["format"] = _read_pillow(path, head, max_pixels)
            except _NotAnImage:
                # DICOM without the 128-byte preamble: a .dcm name, or a data
                # set starting with a group 0x0002/0x0008 tag (either byte order).
                if (path.suffix.lower() not in (".dcm", ".dicom")
                        and head[:2] not in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")):
                    raise ValueError(f"read_image: could not read '{path}' as an image {_EXPECTED}") from None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    arr, info["range"] = _read_dicom(path, force=True, max_pixels=max_pixels)
                white = 1.0
        if rescale == "minmax" or info["range"] is not None:
            if info["range"] is None:
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise ValueError(f"read_image: '{path}' contains NaN or infinite values")
                info["range"] = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
                arr = _minmax(arr)
            info["scaling"] = "minmax"
        elif white is _NO_WHITE:
            raise ValueError(f"read_image: '{path}' holds {arr.dtype} integers with negative or very large "
                             "values and no fixed white level; map its range onto [0, 1] first (in Python: "
                             "read_image(path, rescale='minmax'))")
        elif white is not None:
            arr = arr.astype(np.float64) / white
            info.update(scaling="white", white=float(white))
        else:
            arr = arr.astype(np.float64)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"read_image: '{path}' contains NaN or infinite values")
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            if lo < -1e-6 or hi > 1 + 1e-6:
                raise ValueError(f"read_image: floating-point image '{path}' has values in [{lo:g}, {hi:g}], "
                                 "outside [0, 1] (floating-point images are taken as stored); map its range "
                                 "onto [0, 1] first (in Python: read_image(path, rescale='minmax'))")
            arr = np.clip(arr, 0.0, 1.0)
            info["scaling"] = "float"
    out = _to_chw(arr, grey, "read_image")
    return (out, info) if return_info else out


# ---------------------------------------------------------------------------
# Writing images
# ---------------------------------------------------------------------------

def write_image(path, img, *, bits: int = 8, overwrite: bool = False) -> Path:
    """Write an image in [0, 1] as an 8- or 16-bit PNG (or TIFF), atomically.

    Values are clipped to [0, 1] and rounded to the nearest of ``2**bits``
    levels. The file is written to a temporary file beside ``path`` and
    renamed onto it, so no partial file is ever visible (see
    :func:`atomic_write`).

    Parameters
    ----------
    path : str or path-like
        Destination ending in ``.png`` (or ``.tif``/``.tiff``). Its directory
        must exist.
    img : Tensor or ndarray, shape (H, W) or (C, H, W)
        Grey (``C = 1``) or RGB (``C = 3``) intensities, 1 being white.
    bits : {8, 16}, optional
        Bits per sample.
    overwrite : bool, optional
        Replace an existing file (default: raise FileExistsError).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        raise ValueError(f"write_image: path must end in .png, .tif or .tiff, got '{path}'")
    if bits not in (8, 16):
        raise ValueError(f"write_image: bits must be 8 or 16, got {bits!r}")
    if isinstance(img, torch.Tensor):
        arr = img.detach().to("cpu", torch.float64).numpy()
    elif isinstance(img, np.ndarray):
        arr = img.astype(np.float64)
    else:
        raise TypeError(f"write_image: img must be a torch.Tensor or numpy array, got {type(img).__name__}")
    if arr.ndim == 3:
        if arr.shape[0] not in (1, 3):
            raise ValueError(f"write_image: img must have shape (H, W) or (C, H, W) with C = 1 or 3, "
                             f"got shape {arr.shape}")
        arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    elif arr.ndim != 2:
        raise ValueError(f"write_image: img must have shape (H, W) or (C, H, W), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("write_image: img is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError("write_image: img contains NaN or infinite values")
    top = 2 ** bits - 1
    q = np.rint(np.clip(arr, 0.0, 1.0) * top).astype(np.uint8 if bits == 8 else np.uint16)
    _check_target(path, overwrite, "write_image")

    def writer(tmp: Path) -> None:
        if suffix == ".png":
            if bits == 16:
                _write_png16(tmp, q)
            else:
                from PIL import Image
                Image.fromarray(q).save(tmp, format="PNG")
        else:
            import tifffile
            tifffile.imwrite(tmp, q, photometric="rgb" if q.ndim == 3 else "minisblack")

    return atomic_write(path, writer, overwrite=overwrite)


# ---------------------------------------------------------------------------
# Built-in image pool
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Builtin:
    name: str
    package: str  # importable module that ships the file
    relpath: str  # path inside the package directory
    kind: str  # "photo", "microscopy" or "medical"
    split: str  # "train" or "test"
    loader: str = "image"  # "image", "npz" or "raw_mr"
    note: str = ""


# The split is fixed by hand, by source image (about a quarter of each kind
# in "test"). Duplicates in the installed data are left out: skimage
# "cat" is "chelsea", pywt "camera" is skimage "camera", skimage's
# motorcycle_right is the other view of motorcycle_left, and pydicom's other
# MR_small* files are encodings of MR_small. Synthetic or graphic images
# (checkerboard, colorwheel, logo, horse, phantom) are not photographs and are
# not in the pool; nor are skimage images that need a download (brain, cells3d,
# eagle, human_mitosis, kidney, lily, skin, ...).
_REGISTRY: tuple[_Builtin, ...] = (
    _Builtin("skimage/astronaut", "skimage", "data/astronaut.png", "photo", "train"),
    _Builtin("skimage/brick", "skimage", "data/brick.png", "photo", "train"),
    _Builtin("skimage/camera", "skimage", "data/camera.png", "photo", "test",
             note="same photo as pywt.data.camera"),
    _Builtin("skimage/chelsea", "skimage", "data/chelsea.png", "photo", "train",
             note="same photo as skimage.data.cat"),
    _Builtin("skimage/clock", "skimage", "data/clock_motion.png", "photo", "train"),
    _Builtin("skimage/coffee", "skimage", "data/coffee.png", "photo", "test"),
    _Builtin("skimage/coins", "skimage", "data/coins.png", "photo", "test"),
    _Builtin("skimage/grass", "skimage", "data/grass.png", "photo", "train"),
    _Builtin("skimage/gravel", "skimage", "data/gravel.png", "photo", "test"),
    _Builtin("skimage/hubble_deep_field", "skimage", "data/hubble_deep_field.jpg", "photo", "train"),
    _Builtin("skimage/moon", "skimage", "data/moon.png", "photo", "train"),
    _Builtin("skimage/motorcycle", "skimage", "data/motorcycle_left.png", "photo", "train",
             note="left view of skimage.data.stereo_motorcycle"),
    _Builtin("skimage/page", "skimage", "data/page.png", "photo", "train"),
    _Builtin("skimage/rocket", "skimage", "data/rocket.jpg", "photo", "train"),
    _Builtin("skimage/text", "skimage", "data/text.png", "photo", "train"),
    _Builtin("pywt/aero", "pywt", "data/aero.npz", "photo", "test", loader="npz"),
    _Builtin("pywt/ascent", "pywt", "data/ascent.npz", "photo", "train", loader="npz"),
    _Builtin("matplotlib/grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "photo", "test"),
    _Builtin("sklearn/china", "sklearn", "datasets/images/china.jpg", "photo", "train"),
    _Builtin("sklearn/flower", "sklearn", "datasets/images/flower.jpg", "photo", "test"),
    _Builtin("skimage/cell", "skimage", "data/cell.png", "microscopy", "train"),
    _Builtin("skimage/immunohistochemistry", "skimage", "data/ihc.png", "microscopy", "test"),
    _Builtin("skimage/retina", "skimage", "data/retina.jpg", "medical", "train"),
    _Builtin("skimage/microaneurysms", "skimage", "data/microaneurysms.png", "medical", "train"),
    _Builtin("matplotlib/s1045", "matplotlib", "mpl-data/sample_data/s1045.ima.gz", "medical", "train",
             loader="raw_mr", note="256x256 head MR, min-max scaled"),
    _Builtin("pydicom/MR_small", "pydicom", "data/test_files/MR_small.dcm", "medical", "train",
             note="64x64 MR, min-max scaled"),
    _Builtin("pydicom/CT_small", "pydicom", "data/test_files/CT_small.dcm", "medical", "test",
             note="128x128 CT, min-max scaled"),
)
_BY_NAME = {b.name: b for b in _REGISTRY}
_SPLITS = ("train", "test", "all")
_KINDS = ("photo", "microscopy", "medical")


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _builtin_file(entry: _Builtin) -> Path | None:
    base = _package_dir(entry.package)
    if base is None:
        return None
    p = base / entry.relpath
    return p if p.is_file() else None


def _check_split_kind(who: str, split: str, kind) -> None:
    if split not in _SPLITS:
        raise ValueError(f"{who}: split must be one of {_SPLITS}, got {split!r}")
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"{who}: kind must be None or one of {_KINDS}, got {kind!r}")


def builtin_names(split: str = "all", *, kind: str | None = None) -> list[str]:
    """Names of the built-in images available offline in this environment.

    Images are files shipped inside installed packages: scikit-image
    (``skimage/...``), PyWavelets (``pywt/...``), matplotlib
    (``matplotlib/...``), pydicom (``pydicom/...``) and, only if it is
    installed, scikit-learn (``sklearn/china``, ``sklearn/flower``).

    Parameters
    ----------
    split : {'all', 'train', 'test'}, optional
        Restrict to one part of the fixed split (see :func:`builtin_pool`).
    kind : {None, 'photo', 'microscopy', 'medical'}, optional
        Restrict to one kind of image.

    Returns
    -------
    list of str
        Sorted names, e.g. ``'skimage/camera'``, ``'pywt/ascent'``.
    """
    _check_split_kind("builtin_names", split, kind)
    return sorted(
        b.name for b in _REGISTRY
        if (split == "all" or b.split == split) and (kind is None or b.kind == kind)
        and _builtin_file(b) is not None
    )


def builtin_info(name: str) -> dict:
    """Metadata of a built-in image: source file, kind, split and a note."""
    entry = _lookup(name)
    return {"name": entry.name, "file": str(_builtin_file(entry)), "kind": entry.kind,
            "split": entry.split, "note": entry.note}


def _lookup(name: str) -> _Builtin:
    entry = _BY_NAME.get(name)
    if entry is None or _builtin_file(entry) is None:
        raise ValueError(f"builtin_image: unknown or unavailable image {name!r}; "
                         f"available: {', '.join(builtin_names())}")
    return entry


def builtin_image(name: str, grey: bool | None = True) -> torch.Tensor:
    """Load a built-in image by name (see :func:`builtin_names`).

    Photos are scaled by their type's maximum (8-bit: /255); medical images
    (MR, CT) have no fixed white level and are min-max scaled to [0, 1].

    Parameters
    ----------
    name : str
        E.g. ``'skimage/camera'``.
    grey : bool or None, optional
        ``True`` (default): luminance, ``C = 1``; ``False``: ``C = 3``;
        ``None``: as stored.

    Returns
    -------
    Tensor, shape (C, H, W), float32
        Intensities in [0, 1].
    """
    entry = _lookup(name)
    path = _builtin_file(entry)
    if entry.loader == "image":
        return read_image(path, grey=grey)
    if entry.loader == "npz":
        with np.load(path) as z:
            arr = z["data"]
        return _to_chw(arr.astype(np.float64) / 255.0, grey, "builtin_image")
    if entry.loader == "raw_mr":  # 256x256 big-endian uint16 samples
        with gzip.open(path, "rb") as fh:
            arr = np.frombuffer(fh.read(), ">u2").reshape(256, 256)
        return _to_chw(_minmax(arr), grey, "builtin_image")
    raise AssertionError(entry.loader)


def builtin_pool(split: str = "train", *, grey: bool | None = True, kind: str | None = None) -> dict[str, torch.Tensor]:
    """The built-in images of one split, loaded.

    The split is fixed and made by source image: "train" and "test" never
    contain the same photograph (duplicates shipped by different packages
    are in the pool once), so crops of a test image are never seen in
    training. About a quarter of the images of each kind are in "test"; see
    :func:`builtin_info` for each image's split.

    Parameters
    ----------
    split : {'train', 'test', 'all'}, optional
    grey : bool or None, optional
        As in :func:`builtin_image`; the default gives every image ``C = 1``.
    kind : {None, 'photo', 'microscopy', 'medical'}, optional
        Restrict to one kind of image.

    Returns
    -------
    dict of str to Tensor
        Name to ``(C, H, W)`` float32 image in [0, 1], in the order of
        :func:`builtin_names`. Image sizes differ.
    """
    _check_split_kind("builtin_pool", split, kind)
    return {name: builtin_image(name, grey=grey) for name in builtin_names(split, kind=kind)}


# ---------------------------------------------------------------------------
# Random crops
# ---------------------------------------------------------------------------

def _pad_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map (possibly out-of-range) indices ``i`` onto ``0..n-1`` by padding rule."""
    if mode == "reflect":  # edge not repeated, period 2(n - 1)
        if n == 1:
            return torch.zeros_like(i)
        p = 2 * (n - 1)
        i = i % p
        return torch.where(i >= n, p - i, i)
    if mode == "symmetric":  # edge repeated, period 2n
        p = 2 * n
        i = i % p
        return torch.where(i >= n, p - 1 - i, i)
    if mode == "circular":
        return i % n
    return i.clamp(0, n - 1)  # replicate (and the in-range part of constant)


_PAD_MODES = ("reflect", "symmetric", "replicate", "circular", "constant")


def random_crops(
    images,
    n: int,
    size,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    pad_mode: str = "reflect",
) -> torch.Tensor:
    """Random crops from a list of images, reproducible with a seed.

    Each crop picks an image uniformly at random, then a uniformly random
    position. An image smaller than the crop along an axis is first padded by
    ``size - extent`` on both sides of that axis (as torchvision's
    ``RandomCrop(pad_if_needed=True)``), so the crop may still move.

    Parameters
    ----------
    images : sequence or mapping of Tensor, each (C, H, W)
        Source images with a common ``C`` (a mapping's values are used, in
        order, e.g. the output of :func:`builtin_pool`). Sizes may differ.
    n : int
        Number of crops.
    size : int or (int, int)
        Crop height and width in pixels.
    seed : int, optional
        Seed for a fresh generator: the same seed gives the same crops.
    generator : torch.Generator, optional
        A CPU generator to draw from instead (mutually exclusive with
        ``seed``). With neither, torch's global generator is used.
    pad_mode : {'reflect', 'symmetric', 'replicate', 'circular', 'constant'}, optional
        Padding of small images; ``'reflect'`` mirrors without repeating the
        edge pixel, ``'constant'`` pads with zeros.

    Returns
    -------
    Tensor, shape (n, C, size, size)
        Dtype and device of the first image.
    """
    if isinstance(images, Mapping):
        images = list(images.values())
    if isinstance(images, torch.Tensor):
        images = [images] if images.dim() == 3 else list(images)
    if not isinstance(images, Sequence) or len(images) == 0:
        raise ValueError("random_crops: images must be a non-empty sequence of (C, H, W) tensors")
    for k, im in enumerate(images):
        if not isinstance(im, torch.Tensor) or im.dim() != 3:
            raise ValueError(f"random_crops: images[{k}] must be a (C, H, W) tensor, "
                             f"got {getattr(im, 'shape', type(im).__name__)}")
        if im.shape[0] != images[0].shape[0]:
            raise ValueError(f"random_crops: all images must have the same number of channels, "
                             f"images[0] has {images[0].shape[0]}, images[{k}] has {im.shape[0]}")
        if im.shape[1] < 1 or im.shape[2] < 1:
            raise ValueError(f"random_crops: images[{k}] is empty")
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise ValueError(f"random_crops: n must be a non-negative int, got {n!r}")
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"random_crops: size must be a positive int or a pair of them, got {size!r}")
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"random_crops: pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    if seed is not None and generator is not None:
        raise ValueError("random_crops: pass seed or generator, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    sh, sw = size

    out = images[0].new_empty((n, images[0].shape[0], sh, sw))
    picks = torch.randint(len(images), (n,), generator=generator).tolist()
    for k, j in enumerate(picks):
        im = images[j]
        H, W = im.shape[-2:]
        ph, pw = max(sh - H, 0), max(sw - W, 0)
        top = int(torch.randint(H + 2 * ph - sh + 1, (1,), generator=generator))
        left = int(torch.randint(W + 2 * pw - sw + 1, (1,), generator=generator))
        if ph == 0 and pw == 0:
            out[k] = im[:, top:top + sh, left:left + sw]
            continue
        rows = torch.arange(top - ph, top - ph + sh)
        cols = torch.arange(left - pw, left - pw + sw)
        ri = _pad_index(rows, H, pad_mode).to(im.device)
        ci = _pad_index(cols, W, pad_mode).to(im.device)
        crop = im[:, ri][:, :, ci]
        if pad_mode == "constant":
            keep = (((rows >= 0) & (rows < H))[:, None] & ((cols >= 0) & (cols < W))[None, :]).to(im.device)
            crop = torch.where(keep, crop, torch.zeros((), dtype=crop.dtype, device=crop.device))
        out[k] = crop
    return out



# ---------------------------------------------------------------------------
# Training images (the data of every trainer)
# ---------------------------------------------------------------------------

#: Suffixes of the image files that training folders are searched for.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


class ImageSet:
    """Images ``(C, H, W)`` in [0, 1] by index, held in memory or read from files on demand.

    A folder's images are read when first used and the last ``cache`` of them
    kept, so a large folder costs no memory. ``description`` says where the
    images come from (it goes into a trained model's provenance).

    Parameters
    ----------
    images : list of Tensor, optional
        In-memory images ``(C, H, W)``.
    files : list of Path, optional
        Image files (exactly one of ``images`` and ``files``).
    grey : bool
        Read files as grey ``C = 1`` (True) or colour ``C = 3``.
    description : dict
    cache : int
        Number of decoded files kept.
    """

    def __init__(self, *, images: list[torch.Tensor] | None = None, files: list[Path] | None = None,
                 grey: bool = True, description: dict, cache: int = 512):
        if (images is None) == (files is None):
            raise ValueError("ImageSet: give images or files")
        self.images, self.files, self.grey = images, files, grey
        self.description = description
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.images is not None:
            return self.images[i]
        if i not in self._cache:
            self._cache[i] = read_image(self.files[i], grey=self.grey)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(i)
        return self._cache[i]

    def crops(self, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` crops ``(n, C, size, size)``, each of an image picked uniformly at random.

        Everything is drawn from ``generator``, in a fixed order (picks, then
        one :func:`random_crops` draw per pick), so a seeded trainer sees the
        same crops whenever it is resumed.
        """
        picks = torch.randint(len(self), (n,), generator=generator).tolist()
        return torch.cat([random_crops([self[i]], 1, size, generator=generator) for i in picks])


def image_files(folder, who: str = "data") -> list[Path]:
    """The image files (:data:`IMAGE_SUFFIXES`) under ``folder``, recursively, sorted.

    Raises ValueError naming ``who`` (the argument) if ``folder`` is not a
    directory or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{who}: {str(folder)!r} is neither 'builtin' nor a directory")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"{who}: no PNG/JPEG/TIFF files ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files


def _builtin_set(split: str, grey: bool, kind: str | None) -> ImageSet:
    pool = builtin_pool(split, grey=grey, kind=kind)
    desc = {"source": "builtin", "split": split, **({"kind": kind} if kind else {}), "images": list(pool)}
    return ImageSet(images=list(pool.values()), grey=grey, description=desc)


def _folder_set(folder: Path, files: list[Path], role: str, grey: bool) -> ImageSet:
    desc = {"source": "folder", "path": str(folder.resolve()), "role": role, "n_images": len(files)}
    if len(files) <= 50:
        desc["files"] = [str(p.relative_to(folder)) for p in files]
    return ImageSet(files=files, grey=grey, description=desc)


def training_images(data="builtin", val_data=None, *, val_fraction: float = 0.1, grey: bool = True,
                    kind: str | None = None) -> tuple[ImageSet, ImageSet]:
    """The training and validation images of a trainer; never one source image in both.

    Parameters
    ----------
    data : 'builtin' or path
        'builtin': the train split of the built-in pool (:func:`builtin_pool`);
        a folder: its images (:data:`IMAGE_SUFFIXES`, recursively).
    val_data : None, 'builtin' or path
        None: the built-in test split for built-in data, else a held-out
        ``val_fraction`` of the folder's files (chosen by a hash of their
        relative paths, so the split does not depend on the file order);
        'builtin': the built-in test split; a folder: its images, which must
        not be training files.
    val_fraction : float
        Fraction of a folder held out when ``val_data`` is None (at least one
        file, never all).
    grey : bool
        Grey ``C = 1`` (True) or colour ``C = 3`` images.
    kind : {None, 'photo', 'microscopy', 'medical'}
        Restrict the built-in pool to one kind of image.

    Returns
    -------
    (ImageSet, ImageSet)
        Training and validation images.
    """
    if data == "builtin":
        train_set, folder, held_out = _builtin_set("train", grey, kind), None, []
    else:
        folder = Path(data)
        files = image_files(folder, "data")
        held_out = []
        if val_data is None:
            if len(files) < 2:
                raise ValueError(f"data: {folder} holds {len(files)} image; need at least 2 to hold one out "
                                 "for validation, or give val_data (--val-data)")
            key = lambda p: hashlib.sha1(str(p.relative_to(folder)).encode()).hexdigest()  # noqa: E731
            n_val = min(len(files) - 1, max(1, round(val_fraction * len(files))))
            held_out = sorted(sorted(files, key=key)[:n_val])
            files = [p for p in files if p not in set(held_out)]
        train_set = _folder_set(folder, files, "train", grey)
    if val_data is None:
        val_set = (_builtin_set("test", grey, kind) if folder is None
                   else _folder_set(folder, held_out, "validation", grey))
    elif val_data == "builtin":
        val_set = _builtin_set("test", grey, kind)
    else:
        vfolder = Path(val_data)
        vfiles = image_files(vfolder, "val_data")
        if train_set.files is not None:
            overlap = {p.resolve() for p in vfiles} & {p.resolve() for p in train_set.files}
            if overlap:
                raise ValueError(f"val_data: {len(overlap)} file(s) of {vfolder} are also training images, "
                                 f"e.g. {sorted(overlap)[0]}")
        val_set = _folder_set(vfolder, vfiles, "validation", grey)
    return train_set, val_set

# ---------------------------------------------------------------------------
# Synthetic images
# ---------------------------------------------------------------------------

def _hw(size, who: str) -> tuple[int, int]:
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in size)):
        raise ValueError(f"{who}: size must be a positive int or a pair (H, W) of them, got {size!r}")
    return int(size[0]), int(size[1])


def _range(value, who: str, name: str, *, positive: bool = False) -> tuple[float, float]:
    if isinstance(value, Real):
        value = (value, value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: {name} must be a number or a pair (low, high), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi) or (positive and lo <= 0):
        raise ValueError(f"{who}: {name} must be a{' positive' if positive else ''} range (low, high) "
                         f"with low <= high, got {value!r}")
    return lo, hi


def _batch_arg(batch, who: str) -> int | None:
    if batch is None:
        return None
    if isinstance(batch, bool) or not isinstance(batch, Integral) or batch < 1:
        raise ValueError(f"{who}: batch must be None or a positive int, got {batch!r}")
    return int(batch)


def _grid(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")


def disk(size, radius: float, center=None, height: float = 1.0, background: float = 0.0,
         *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Image of one disk: ``height`` inside, ``background`` outside.

    The indicator of a disk is an eigenfunction of the TV subdifferential: under
    the TV flow its height moves towards the background linearly, at the rate
    perimeter/area (``2 / radius`` in the continuum).

    Parameters
    ----------
    size : int or (int, int)
        Image height and width in pixels.
    radius : float
        Radius in pixels; a pixel belongs to the disk when its centre is at
        distance ``<= radius`` from ``center``.
    center : (float, float), optional
        ``(row, col)`` in pixel coordinates; default the image centre
        ``((H - 1) / 2, (W - 1) / 2)``.
    height, background : float, optional
        Values inside and outside.

    Returns
    -------
    Tensor, shape (1, H, W)
    """
    H, W = _hw(size, "disk")
    if not (isinstance(radius, Real) and math.isfinite(radius) and radius > 0):
        raise ValueError(f"disk: radius must be a positive number, got {radius!r}")
    if center is None:
        center = ((H - 1) / 2, (W - 1) / 2)
    try:
        cy, cx = (float(c) for c in center)
    except (TypeError, ValueError):
        raise ValueError(f"disk: center must be a pair (row, col), got {center!r}") from None
    rr, cc = _grid(H, W)
    inside = (rr - cy) ** 2 + (cc - cx) ** 2 <= float(radius) ** 2
    img = np.where(inside, float(height), float(background))
    return torch.as_tensor(img[None], dtype=dtype, device=device)


def disks(
    size,
    n: int,
    *,
    seed: int,
    batch: int | None = None,
    radius_range=None,
    height_range=(0.2, 1.0),
    background: float = 0.0,
    gap: float = 2.0,
    margin: float = 2.0,
    max_tries: int = 1000,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Images of ``n`` isolated, non-overlapping disks of random radii and heights.

    Each disk evolves independently under the TV flow (as long as the disks
    stay apart), its height falling linearly: the disk test images of
    TVflowNET (seed 000 §4.2.1). Disks are placed largest first by rejection
    sampling, at least ``gap`` pixels apart (edge to edge) and ``margin``
    pixels from the border.

    Parameters
    ----------
    size : int or (int, int)
        Image height and width in pixels.
    n : int
        Number of disks per image.
    seed : int
        Seed of the random placement (numpy's ``default_rng``).
    batch : int, optional
        Number of images; if given the result is ``(batch, 1, H, W)``.
    radius_range : (float, float), optional
        Radii are uniform in this range, in pixels; default
        ``(0.04, 0.15) * min(H, W)`` (at least 2 pixels).
    height_range : (float, float), optional
        Disk heights (above ``background``) are uniform in this range.
    background : float, optional
        Value outside the disks.
    gap, margin : float, optional
        Minimal distances, in pixels, between disks and to the border.
    max_tries : int, optional
        Attempts per disk before giving up with ValueError.

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) when ``batch`` is given
    """
    H, W = _hw(size, "disks")
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise ValueError(f"disks: n must be a non-negative int, got {n!r}")
    B = _batch_arg(batch, "disks")
    if radius_range is None:
        radius_range = (max(2.0, 0.04 * min(H, W)), max(2.0, 0.15 * min(H, W)))
    rlo, rhi = _range(radius_range, "disks", "radius_range", positive=True)
    hlo, hhi = _range(height_range, "disks", "height_range")
    if gap < 0 or margin < 0:
        raise ValueError(f"disks: gap and margin must be non-negative, got {gap}, {margin}")
    rng = np.random.default_rng(seed)
    rr, cc = _grid(H, W)
    out = []
    for _ in range(B or 1):
        radii = np.sort(rng.uniform(rlo, rhi, n))[::-1]
        heights = rng.uniform(hlo, hhi, n)
        placed: list[tuple[float, float, float]] = []
        img = np.full((H, W), float(background))
        for r, h in zip(radii, heights):
            lo_y, hi_y = margin + r, H - 1 - margin - r
            lo_x, hi_x = margin + r, W - 1 - margin - r
            if lo_y > hi_y or lo_x > hi_x:
                raise ValueError(f"disks: a disk of radius {r:.1f} does not fit a {H}x{W} image "
                                 f"with margin {margin}; reduce radius_range")
            for _try in range(max_tries):
                cy, cx = rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x)
                if all(math.hypot(cy - y, cx - x) > r + s + gap for y, x, s in placed):
                    break
            else:
                raise ValueError(f"disks: could not place {n} disks in a {H}x{W} image after {max_tries} "
                                 "tries each; reduce n or radius_range")
            placed.append((cy, cx, r))
            img[(rr - cy) ** 2 + (cc - cx) ** 2 <= r * r] = background + h
        out.append(img)
    arr = np.stack(out)[:, None]
    return torch.as_tensor(arr if B is not None else arr[0], dtype=dtype, device=device)


def ellipses(
    size,
    n: int,
    *,
    seed: int,
    batch: int | None = None,
    axis_range=None,
    intensity_range=(0.1, 1.0),
    background: float = 0.0,
    combine: str = "paint",
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Images of ``n`` overlapping ellipses with different intensities.

    The ellipse test images of TVflowNET (seed 000 §4.2.1). Each ellipse has a
    uniformly random centre inside the image, semi-axes in ``axis_range``, a
    uniformly random orientation and an intensity in ``intensity_range``.

    Parameters
    ----------
    size : int or (int, int)
        Image height and width in pixels.
    n : int
        Number of ellipses per image.
    seed : int
        Seed (numpy's ``default_rng``).
    batch : int, optional
        Number of images; if given the result is ``(batch, 1, H, W)``.
    axis_range : (float, float), optional
        Semi-axes in pixels, uniform in this range; default
        ``(0.08, 0.35) * min(H, W)``.
    intensity_range : (float, float), optional
        Intensities, uniform in this range.
    background : float, optional
        Value outside all ellipses.
    combine : {'paint', 'add'}, optional
        ``'paint'``: each ellipse overwrites the ones drawn before it, so the
        image takes values in ``intensity_range`` and ``background``;
        ``'add'``: intensities add up where ellipses overlap (values may then
        exceed the range; nothing is clipped).

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) when ``batch`` is given
    """
    H, W = _hw(size, "ellipses")
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise ValueError(f"ellipses: n must be a non-negative int, got {n!r}")
    B = _batch_arg(batch, "ellipses")
    if axis_range is None:
        axis_range = (max(1.5, 0.08 * min(H, W)), max(1.5, 0.35 * min(H, W)))
    alo, ahi = _range(axis_range, "ellipses", "axis_range", positive=True)
    ilo, ihi = _range(intensity_range, "ellipses", "intensity_range")
    if combine not in ("paint", "add"):
        raise ValueError(f"ellipses: combine must be 'paint' or 'add', got {combine!r}")
    rng = np.random.default_rng(seed)
    rr, cc = _grid(H, W)
    out = []
    for _ in range(B or 1):
        img = np.full((H, W), float(background))
        for _k in range(n):
            cy, cx = rng.uniform(0, H - 1), rng.uniform(0, W - 1)
            a, b = rng.uniform(alo, ahi, 2)
            theta = rng.uniform(0, math.pi)
            v = rng.uniform(ilo, ihi)
            y, x = rr - cy, cc - cx
            u = x * math.cos(theta) + y * math.sin(theta)
            w = -x * math.sin(theta) + y * math.cos(theta)
            inside = (u / a) ** 2 + (w / b) ** 2 <= 1.0
            if combine == "paint":
                img[inside] = v
            else:
                img[inside] += v
        out.append(img)
    arr = np.stack(out)[:, None]
    return torch.as_tensor(arr if B is not None else arr[0], dtype=dtype, device=device)


def plateau_1d(size, widths, heights, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Image constant along rows whose column profile is piecewise constant.

    A 1-D TV test image: every row is the same step function
    ``heights[0]`` for the first ``widths[0]`` columns, ``heights[1]`` for the
    next ``widths[1]`` columns, and so on. Under the 1-D TV flow each plateau
    moves at a rate set by its width and its neighbours (an eigenfunction for
    suitable heights), and the image stays constant along the rows.

    Parameters
    ----------
    size : int or (int, int)
        Image height and width ``(H, W)`` in pixels (an int gives a square).
    widths : sequence of int
        Plateau widths in pixels, positive, summing to ``W``.
    heights : sequence of float
        One value per plateau.

    Returns
    -------
    Tensor, shape (1, H, W)
    """
    H, W = _hw(size, "plateau_1d")
    widths = list(widths)
    heights = list(heights)
    if len(widths) == 0 or len(widths) != len(heights):
        raise ValueError(f"plateau_1d: widths and heights must be non-empty and of equal length, "
                         f"got {len(widths)} and {len(heights)}")
    if not all(isinstance(w, Integral) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ValueError(f"plateau_1d: widths must be positive ints, got {widths!r}")
    if sum(widths) != W:
        raise ValueError(f"plateau_1d: widths must sum to the image width {W}, got sum {sum(widths)}")
    profile = np.repeat(np.asarray(heights, dtype=np.float64), widths)
    img = np.broadcast_to(profile, (H, W))
    return torch.as_tensor(np.ascontiguousarray(img)[None], dtype=dtype, device=device)
