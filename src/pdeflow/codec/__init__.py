"""Image compression by sparse inpainting: store a few pixels, inpaint the rest.

The encoder (:func:`encode`) chooses the pixels (error-driven densification), optimises their values for
the inpainting and for the quantisation levels that will be stored (:func:`pdeflow.inpaint.tonal.optimise_tonal`),
and entropy-codes positions and values with context-adaptive models and a range coder (constriction);
the number of pixels is chosen to meet a byte budget. The decoder (:func:`decode`) reads the header,
decodes mask and values, and inpaints with the operator the header names, through the table of
:data:`pdeflow.inpaint.OPERATORS`: homogeneous diffusion (the default), edge-enhancing diffusion
(``encode(..., operator="eed")``) or Gaussian-weighted Shepard interpolation (``operator="shepard"``, no
equation solved); the encoder chooses the mask and the values for it. The codec's own table of them,
:data:`CODEC_OPERATORS` (:mod:`pdeflow.codec.operators`), built from the inpainting table, gives each its id in the
file and how its parameters are packed;
:func:`budget_bytes` is the one formula from bits per pixel to bytes.
Colour images are coded in an orthonormal luma-chroma basis with one shared mask; 16-bit grey images record
their depth.

* :func:`encode`, :func:`decode`: bytes in memory; :func:`save`, :func:`load`: files.
* :class:`CodecError`: any malformed data (a :class:`~pdeflow.errors.UserInputError`, one line).
* The file format: :mod:`pdeflow.codec.format` (versioned header, checksum, pixel limit
  :data:`MAX_PIXELS`); the entropy coding: :mod:`pdeflow.codec.entropy`; the second layer, a wavelet code
  of the residual that the encoder may add or use alone (``encode(..., split=...)``):
  :mod:`pdeflow.codec.residual`.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputFileNotFoundError, InputIsADirectoryError
from .decoder import decode
from .encoder import EncodeResult, encode
from .format import FORMAT_VERSION, MAX_PIXELS, CodecError, budget_bytes
from .operators import CODEC_OPERATORS

__all__ = ["encode", "decode", "save", "load", "CodecError", "EncodeResult", "MAX_PIXELS", "FORMAT_VERSION",
           "SUFFIX", "CODEC_OPERATORS", "budget_bytes"]

#: The file suffix that :func:`save` suggests (any name is accepted).
SUFFIX = ".pdc"


def save(path, image, *, overwrite: bool = False, **encode_options) -> Path:
    """Encode ``image`` (:func:`encode`, with its options: ``bpp`` or ``size``, ...) and write the file
    atomically (its folder is created); returns its path.

    An existing file is refused before any work (FileExistsError, as :func:`pdeflow.io.write_image`) unless
    ``overwrite=True``.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.codec import load, save
    >>> f = torch.linspace(0, 1, 32 * 32).reshape(32, 32)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     load(save(f"{d}/a.pdc", f, bpp=0.5)).shape
    torch.Size([1, 32, 32])
    """
    from ..io import atomic_write
    from ..io.files import check_target

    path = Path(path)
    if path.parent.is_dir():
        check_target(path, overwrite, "save")
    data = encode(image, **encode_options)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), overwrite=overwrite)


def load(path, *, max_pixels: int | None = MAX_PIXELS, channel_axis: int | None = None):
    """Read and decode a file written by :func:`save` (:func:`decode`): float32 in [0, 1], (C, H, W) or, for an
    image saved channels last, (H, W, C) (``channel_axis`` 0 or -1 chooses).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.codec import load, save
    >>> f = torch.linspace(0, 1, 32 * 32).reshape(32, 32)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     u = load(save(f"{d}/a.pdc", f, bpp=0.5))
    >>> u.shape, u.dtype
    (torch.Size([1, 32, 32]), torch.float32)
    >>> bool(u.min() >= 0 and u.max() <= 1)
    True
    """
    p = Path(path)
    if p.is_dir():
        raise InputIsADirectoryError(f"load: {str(p)!r} is a directory")
    if not p.exists():
        raise InputFileNotFoundError(f"load: no such file: {str(p)!r}")
    return decode(p.read_bytes(), max_pixels=max_pixels, channel_axis=channel_axis)
