"""Images: PNG, JPEG, TIFF and DICOM to and from float32 tensors ``(C, H, W)`` in [0, 1].

* :func:`read_image`: the codecs (16-bit PNG by hand, Pillow, tifffile, pydicom), the checks (pixel
  count before decoding, white level, channels) and the conversion to a tensor.
* :func:`write_image`: 8- or 16-bit PNG/TIFF, written atomically (:func:`pdeflow.io.files.atomic_write`).
* :func:`image_files`: the image files of a folder (:data:`IMAGE_SUFFIXES`, declared once here).
* :data:`LUMA_WEIGHTS`: the colour-to-grey weights (declared once here).
"""
from __future__ import annotations

import contextlib
import struct
import threading
import warnings
import zlib
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from ..errors import UserInputError
from .files import atomic_write, check_target, input_path

__all__ = ["read_image", "write_image", "image_files", "IMAGE_SUFFIXES", "WRITE_SUFFIXES", "LUMA_WEIGHTS",
           "DEFAULT_MAX_PIXELS", "minmax", "to_chw"]

#: ITU-R BT.601 luma weights used for colour to grey conversion.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_EXPECTED = "(expected PNG/JPEG/TIFF/DICOM)"


class _NotAnImage(ValueError):
    """Raised by a format reader that does not recognise the file."""


class _Refused(UserInputError):
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
        raise UserInputError("truncated PNG data")
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
            raise UserInputError(f"bad PNG filter type {f}")
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
                raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}: "
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
        raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}: {exc}") from None
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
        raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}: {exc}") from None
    if arr.ndim != len(axes):
        raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}: its pixel data "
                         f"has shape {arr.shape}, which does not match its axes '{axes}'")
    if "S" in axes and axes.index("S") != arr.ndim - 1:
        arr = np.moveaxis(arr, axes.index("S"), -1)
    arr = np.squeeze(arr) if arr.ndim > 3 else arr
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        raise UserInputError(f"read_image: TIFF '{path}' has axes '{axes}' and shape {arr.shape}; "
                         "expected a 2-D grey or colour image")
    if colormap is not None and arr.ndim == 2:  # palette image
        cmap = np.asarray(colormap)
        if (arr.dtype.kind not in "ui" or cmap.ndim != 2 or cmap.shape[0] != 3
                or (arr.size and (arr.min() < 0 or arr.max() >= cmap.shape[1]))):
            raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}: "
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
    raise UserInputError(f"read_image: '{path}' has unsupported pixel type {arr.dtype}")


def _read_dicom(path: Path, force: bool, max_pixels: int | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """DICOM pixels after rescale slope/intercept, min-max scaled into [0, 1],
    and the range ``(lo, hi)`` that was mapped onto [0, 1]."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=force)
    except Exception as exc:
        raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}: {exc}") from None
    if "PixelData" not in ds:
        raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}: "
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
        raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}: "
                         f"bad DICOM header ({exc})") from None
    try:
        arr = ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise UserInputError(f"read_image: cannot decode the pixels of DICOM file '{path}' "
                         f"(transfer syntax {ts}; compressed data may need an extra decoder "
                         f"such as pylibjpeg): {exc}") from None
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != spp):
        raise UserInputError(f"read_image: DICOM file '{path}' has pixel data of shape {arr.shape}; "
                         "expected a 2-D grey or colour image")
    if pi.startswith("YBR") and int(pydicom.__version__.split(".")[0]) < 3:
        from pydicom.pixel_data_handlers.util import convert_color_space
        arr = convert_color_space(arr, pi, "RGB")
    arr = arr.astype(np.float64)
    if spp == 1:
        arr = arr * slope + intercept
    if not np.all(np.isfinite(arr)):
        raise UserInputError(f"read_image: DICOM file '{path}' has NaN or infinite values after its rescale "
                         f"slope {slope:g} and intercept {intercept:g}")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    arr = minmax(arr)
    if pi == "MONOCHROME1":  # smallest value is white
        arr = 1.0 - arr
    return arr, (lo, hi)


def minmax(arr: np.ndarray) -> np.ndarray:
    """``arr`` as float64 mapped linearly onto [0, 1] (its minimum to 0, maximum to 1; a constant array to 0).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.io.images import minmax
    >>> minmax(np.array([2, 4, 6])).tolist()
    [0.0, 0.5, 1.0]
    """
    arr = arr.astype(np.float64)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def to_chw(arr: np.ndarray, grey: bool | None, who: str) -> torch.Tensor:
    """``(H, W[, C])`` float in [0, 1] to a float32 tensor ``(C, H, W)``: alpha dropped, colour to grey
    (:data:`LUMA_WEIGHTS`) if ``grey``, grey to colour if ``grey is False``; ``who`` names the caller in
    the error for an unsupported channel count.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.io.images import to_chw
    >>> to_chw(np.ones((2, 3, 3)), True, "example").shape
    torch.Size([1, 2, 3])
    """
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[-1]
    if c in (2, 4):  # drop alpha
        arr = arr[..., :c - 1]
    elif c not in (1, 3):
        raise UserInputError(f"{who}: unsupported number of channels {c}")
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
        intercept), ``white`` (float or None), ``range`` (tuple or None) and ``alpha`` (whether the file had
        an alpha channel, which was dropped).

    Raises
    ------
    pdeflow.errors.UserInputError
        Every refusal (a ValueError), the message naming the file: ``path`` is
        not a str or path-like; it does not exist
        (:class:`~pdeflow.errors.InputFileNotFoundError`, also a
        FileNotFoundError) or is a directory
        (:class:`~pdeflow.errors.InputIsADirectoryError`, also an
        IsADirectoryError); the file is not a readable single image, has more
        than ``max_pixels`` pixels, or its values have no known white level
        (pass ``rescale='minmax'``).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.io import read_image, write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = write_image(f"{d}/x.png", torch.full((1, 2, 3), 0.5))
    ...     img = read_image(f"{d}/x.png")
    >>> img.shape, round(float(img.mean()), 3)
    (torch.Size([1, 2, 3]), 0.502)
    """
    path = input_path(path, "read_image")
    if rescale not in (None, "minmax"):
        raise UserInputError(f"read_image: rescale must be None or 'minmax', got {rescale!r}")
    if grey not in (None, True, False):
        raise UserInputError(f"read_image: grey must be None, True or False, got {grey!r}")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, Integral)
                                   or max_pixels < 1):
        raise UserInputError(f"read_image: max_pixels must be a positive int or None, got {max_pixels!r}")
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
                    raise UserInputError(f"read_image: could not read '{path}' as an image {_EXPECTED}") from None
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    arr, info["range"] = _read_dicom(path, force=True, max_pixels=max_pixels)
                white = 1.0
        if rescale == "minmax" or info["range"] is not None:
            if info["range"] is None:
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise UserInputError(f"read_image: '{path}' contains NaN or infinite values")
                info["range"] = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
                arr = minmax(arr)
            info["scaling"] = "minmax"
        elif white is _NO_WHITE:
            raise UserInputError(f"read_image: '{path}' holds {arr.dtype} integers with negative or very large "
                             "values and no fixed white level; map its range onto [0, 1] first (in Python: "
                             "read_image(path, rescale='minmax'))")
        elif white is not None:
            arr = arr.astype(np.float64) / white
            info.update(scaling="white", white=float(white))
        else:
            arr = arr.astype(np.float64)
            if not np.all(np.isfinite(arr)):
                raise UserInputError(f"read_image: '{path}' contains NaN or infinite values")
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            if lo < -1e-6 or hi > 1 + 1e-6:
                raise UserInputError(f"read_image: floating-point image '{path}' has values in [{lo:g}, {hi:g}], "
                                 "outside [0, 1] (floating-point images are taken as stored); map its range "
                                 "onto [0, 1] first (in Python: read_image(path, rescale='minmax'))")
            arr = np.clip(arr, 0.0, 1.0)
            info["scaling"] = "float"
    info["alpha"] = arr.ndim == 3 and arr.shape[-1] in (2, 4)
    out = to_chw(arr, grey, "read_image")
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

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.io import write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print(write_image(f"{d}/x.png", torch.zeros(8, 8), bits=16).name)
    x.png
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise UserInputError(f"write_image: path must end in .png, .tif or .tiff, got '{path}'")
    if bits not in (8, 16):
        raise UserInputError(f"write_image: bits must be 8 or 16, got {bits!r}")
    if isinstance(img, torch.Tensor):
        arr = img.detach().to("cpu", torch.float64).numpy()
    elif isinstance(img, np.ndarray):
        arr = img.astype(np.float64)
    else:
        raise TypeError(f"write_image: img must be a torch.Tensor or numpy array, got {type(img).__name__}")
    if arr.ndim == 3:
        if arr.shape[0] not in (1, 3):
            raise UserInputError(f"write_image: img must have shape (H, W) or (C, H, W) with C = 1 or 3, "
                             f"got shape {arr.shape}")
        arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    elif arr.ndim != 2:
        raise UserInputError(f"write_image: img must have shape (H, W) or (C, H, W), got shape {arr.shape}")
    if arr.size == 0:
        raise UserInputError("write_image: img is empty")
    if not np.all(np.isfinite(arr)):
        raise UserInputError("write_image: img contains NaN or infinite values")
    top = 2 ** bits - 1
    q = np.rint(np.clip(arr, 0.0, 1.0) * top).astype(np.uint8 if bits == 8 else np.uint16)
    check_target(path, overwrite, "write_image")

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



#: Suffixes of the image files that :func:`image_files` finds.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")
#: The file suffixes :func:`write_image` writes (lossless formats only).
WRITE_SUFFIXES = (".png", ".tif", ".tiff")


def image_files(folder, who: str = "data") -> list[Path]:
    """The image files (:data:`IMAGE_SUFFIXES`) under ``folder``, recursively, sorted.

    Raises ValueError naming ``who`` (the argument) if ``folder`` is not a
    directory or holds no image.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.io import image_files, write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "b").mkdir()
    ...     _ = write_image(Path(d) / "b" / "two.png", torch.zeros(4, 4))
    ...     _ = write_image(Path(d) / "one.tif", torch.zeros(4, 4))
    ...     print([p.name for p in image_files(d)])
    ['two.png', 'one.tif']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"{who}: {str(folder)!r} is neither 'builtin' nor a directory")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserInputError(f"{who}: no PNG/JPEG/TIFF/DICOM files ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files


