"""The decoder: header, mask and values from the file, then the inpainting that the header names.

Decoding is deterministic: the same bytes give the same image bit for bit. The entropy models are built
from integers (:mod:`pdeflow.codec.entropy`), the stored values by one float64 formula
(:func:`level_values`), and the inpainting runs in float64 with torch's thread count set to one for the
call (a parallel reduction could sum in another order), then is rounded to float32. A version-2 file may add
the residual layer (:mod:`pdeflow.codec.residual`, bit-exact by construction), or have it alone: the
decoded residual is added to the inpainting (:func:`add_residual`).
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import torch

from ..inpaint import inpaint
from .colour import from_luma_chroma
from .entropy import RangeReader, decode_mask, decode_values, min_value_bits
from .format import LAYER_INPAINTING, LAYER_RESIDUAL, MAX_PIXELS, VALUE_UNIT, CodecError, Header, read_layers
from .operators import BY_ID, CodecOperator, codec_operator, least_bytes
from .residual import decode_residual

__all__ = ["decode", "level_values", "inpaint_stored", "operator_params", "reconstruct", "add_residual"]


def level_values(idx, q: int, lo: int, hi: int) -> np.ndarray:
    """The stored values of level indices ``idx`` for ``q`` levels on ``[lo, hi] / VALUE_UNIT``.

    Examples
    --------
    >>> from pdeflow.codec.decoder import level_values
    >>> from pdeflow.codec.format import VALUE_UNIT
    >>> level_values([0, 1, 2], 3, 0, VALUE_UNIT)
    array([0. , 0.5, 1. ])
    """
    lo_f, hi_f = lo / VALUE_UNIT, hi / VALUE_UNIT
    return lo_f + np.asarray(idx, dtype=np.float64) * ((hi_f - lo_f) / (q - 1))


def operator_params(name: str, **options) -> bytes:
    """The header's parameter bytes of the operator ``name`` of :data:`~pdeflow.codec.CODEC_OPERATORS` (its
    defaults for the options not given): none for homogeneous diffusion; for EED the contrast (unsigned 16 bit,
    units of 1/65535) and the presmoothing sigma (unsigned 16 bit, units of 1/256 pixel).

    Examples
    --------
    >>> from pdeflow.codec.decoder import operator_params
    >>> operator_params("diffusion")
    b''
    >>> operator_params("eed", contrast=0.5, sigma=1.0).hex()
    '00800001'
    """
    return codec_operator(name, "operator_params").pack(**options)


@contextlib.contextmanager
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _stored_operator(header: Header) -> CodecOperator:
    """The codec operator a header names (:data:`~pdeflow.codec.operators.BY_ID`), or :class:`CodecError`."""
    entry = BY_ID.get(header.operator)
    if entry is None:
        raise CodecError(f"decode: unknown inpainting operator {header.operator} (known: {sorted(BY_ID)})")
    return entry


def inpaint_stored(g: torch.Tensor, m: torch.Tensor, header: Header) -> torch.Tensor:
    """The inpainting named by the header of stored values ``g`` (C, H, W) float64 on the mask ``m`` (H, W).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.codec.decoder import inpaint_stored
    >>> from pdeflow.codec.format import Header
    >>> h = Header(4, 4, 1, 8, 0, 0, b"", 6, 1, 2)   # 4x4 grey, homogeneous diffusion, 2 known
    >>> g = torch.zeros(1, 4, 4, dtype=torch.float64)
    >>> m = torch.zeros(4, 4, dtype=torch.float64)
    >>> m[0, 0] = m[3, 3] = 1.0
    >>> g[0, 0, 0] = g[0, 3, 3] = 0.25
    >>> u = inpaint_stored(g, m, h)
    >>> u.shape, bool(torch.allclose(u, torch.full_like(u, 0.25)))
    (torch.Size([1, 4, 4]), True)
    """
    entry = _stored_operator(header)
    options = entry.unpack(header.operator_params)
    with warnings.catch_warnings():
        # a nonlinear operator's iteration limit reached is part of the decoding (the same on every platform), not
        # something the reader of a file can act on
        warnings.simplefilter("ignore", RuntimeWarning)
        return inpaint(g, m, method=entry.name, tol=10.0 ** -header.tol_exponent, **options)


def reconstruct(header: Header, y: np.ndarray, x: np.ndarray, idx: list) -> torch.Tensor:
    """The decoded image (C, H, W) float32 in [0, 1] from the known pixels ``(y, x)`` and each channel's
    level indices.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.decoder import reconstruct
    >>> from pdeflow.codec.format import VALUE_UNIT, Header
    >>> h = Header(4, 4, 1, 8, 0, 0, b"", 6, 1, 2, q=[3], lo=[0], hi=[VALUE_UNIT])
    >>> u = reconstruct(h, np.array([0, 3]), np.array([0, 3]), [np.array([1, 1])])   # level 1 of 3: 0.5
    >>> u.shape, u.dtype, u.unique().tolist()
    (torch.Size([1, 4, 4]), torch.float32, [0.5])
    """
    C, H, W = header.channels, header.height, header.width
    if all(len(i) and bool((np.asarray(i) == i[0]).all()) for i in idx):
        # every stored value of each channel equal: the inpainting is that constant (it solves every operator's
        # equation exactly, and the solution is unique), so no equation is solved
        v = torch.tensor([float(level_values(i[0], header.q[c], header.lo[c], header.hi[c]))
                          for c, i in enumerate(idx)], dtype=torch.float64)
        u = v.view(C, 1, 1).expand(C, H, W)
        if header.transform == 1:
            u = from_luma_chroma(u)
        return u.clamp(0, 1).to(torch.float32).contiguous()
    g = torch.zeros(C, H, W, dtype=torch.float64)
    m = torch.zeros(H, W, dtype=torch.float64)
    yt, xt = torch.from_numpy(y), torch.from_numpy(x)
    m[yt, xt] = 1.0
    for c in range(C):
        g[c, yt, xt] = torch.from_numpy(level_values(idx[c], header.q[c], header.lo[c], header.hi[c]))
    with _one_thread():
        u = inpaint_stored(g, m, header)
        if header.transform == 1:
            u = from_luma_chroma(u)
    return u.clamp_(0, 1).to(torch.float32)


def add_residual(u: torch.Tensor | None, r: np.ndarray, header: Header) -> torch.Tensor:
    """The image of the two layers: the inpainting ``u`` (C, H, W) float32 (None: no inpainting layer, 0) plus
    the decoded residual ``r`` (C, H, W) float64 (luma and chroma for colour), clipped to [0, 1], as float32.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from pdeflow.codec.decoder import add_residual
    >>> from pdeflow.codec.format import Header
    >>> h = Header(2, 2, 1, 8, 0, 0, b"", 4, 1, 0, layers=2)
    >>> add_residual(torch.full((1, 2, 2), 0.5), np.full((1, 2, 2), 0.75), h).flatten().tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    rt = torch.from_numpy(np.ascontiguousarray(r, dtype=np.float64))
    if header.transform == 1:
        with _one_thread():
            rt = from_luma_chroma(rt)
    out = rt if u is None else u.to(torch.float64) + rt
    return out.clamp_(0, 1).to(torch.float32)


def decode(data, *, max_pixels: int | None = MAX_PIXELS, channel_axis: int | None = None) -> torch.Tensor:
    """Decode a pdeflow codec file's bytes to an image.

    Parameters
    ----------
    data : bytes
        The file's content (:func:`pdeflow.codec.encode`).
    max_pixels : int or None, optional
        Largest image (``H W``) accepted, checked in the header before anything is allocated. Default
        :data:`~pdeflow.codec.format.MAX_PIXELS`; None lifts the limit.
    channel_axis : {None, 0, -1}, optional
        Where the channels go. Default None: the layout :func:`~pdeflow.codec.encode` was given, which the file
        records (:data:`~pdeflow.codec.format.CHANNELS_LAST`): ``(H, W, C)`` for an image given channels last,
        else ``(C, H, W)`` (a grey ``(H, W)`` as ``(1, H, W)``; files written before the record, ``(C, H, W)``).
        ``0``: ``(C, H, W)``; ``-1``: ``(H, W, C)``, channels last, the layout of scikit-image, imageio and
        Pillow, whatever the file records.

    Returns
    -------
    Tensor, shape (C, H, W) or (H, W, C), float32
        The image, values in [0, 1].

    Raises
    ------
    CodecError
        The data is not a valid file (a :class:`~pdeflow.errors.UserInputError`, one line).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.codec import decode, encode
    >>> f = torch.linspace(0, 1, 32 * 32).reshape(32, 32)
    >>> decode(encode(f, bpp=0.5)).shape
    torch.Size([1, 32, 32])
    >>> decode(encode(f, bpp=0.5), channel_axis=-1).shape
    torch.Size([32, 32, 1])
    """
    if channel_axis is not None and (isinstance(channel_axis, bool) or not isinstance(channel_axis, int)
                                     or channel_axis not in (0, -1, 2)):
        raise CodecError(f"decode: channel_axis must be None (the file's layout), 0 (C, H, W) or -1 (H, W, C), "
                         f"got {channel_axis!r}")
    u, last = _decode(data, max_pixels)
    last = last if channel_axis is None else channel_axis != 0
    return u.movedim(0, -1).contiguous() if last else u


def _decode(data, max_pixels) -> tuple[torch.Tensor, bool]:
    """The image (C, H, W) of a file's bytes, and whether the file records it as given channels last."""
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int)
                                   or max_pixels < 4):
        raise CodecError(f"decode: max_pixels must be an int >= 4 or None, got {max_pixels!r}")
    header, payload, residual = read_layers(data, max_pixels)
    if header.layers & LAYER_INPAINTING:
        entry = _stored_operator(header)
        if header.tol_exponent > entry.max_tol_exponent:
            raise CodecError(f"decode: solver tolerance exponent {header.tol_exponent} out of range for {entry.name} "
                             f"(1 to {entry.max_tol_exponent})")
        least = least_bytes(entry, header.channels, header.height, header.width)
        if header.known > 1 and len(data) < least:
            raise CodecError(f"decode: a file of {len(data)} bytes cannot hold the {entry.name} inpainting of "
                             f"{header.channels} x {header.height} x {header.width} values its header claims (at "
                             f"least {least} bytes: one per {entry.values_per_byte} values)")
        need = sum(min_value_bits(q, header.known) for q in header.q)
        if 8 * len(payload) < need:
            raise CodecError(f"decode: the header declares {header.known} known pixels of "
                             f"{'/'.join(map(str, header.q))} levels, whose values need at least "
                             f"{math.ceil(need / 8)} bytes of payload; the file has {len(payload)}")
    # the residual first: it is cheap, and a damaged one is refused before the inpainting's work
    r = (decode_residual(residual, header.height, header.width, header.channels)
         if header.layers & LAYER_RESIDUAL else None)
    u = None
    if header.layers & LAYER_INPAINTING:
        reader = RangeReader(payload)
        gh, gw = header.grid
        cy, cx = decode_mask(reader, gh, gw, header.known)
        idx = [decode_values(reader, header.q[c], header.known) for c in range(header.channels)]
        reader.finish()
        s = header.lattice
        u = reconstruct(header, cy * s, cx * s, idx)
    return (u if r is None else add_residual(u, r, header)), header.channels_last
