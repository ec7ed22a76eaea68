"""The codec over a stack of images on dask: one task per chunk of images, each image encoded or decoded whole.

An image is the codec's unit (its mask, values and rate control are global to the image), so a chunk of the stack
holds whole images; the stack axis may be chunked in any way.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import codec
from ..errors import UserInputError
from .arrays import import_dask

__all__ = ["encode", "decode"]


def _encode_block(block, options):
    out = np.empty(block.shape[0], dtype=object)
    for i, image in enumerate(block):
        out[i] = codec.encode(torch.from_numpy(np.ascontiguousarray(image)), **options)
    return out


def encode(stack, **options):
    """:func:`pdeflow.codec.encode` on every image of a dask stack: a dask array of ``bytes`` (dtype object).

    Parameters
    ----------
    stack : dask array, shape (N, H, W) or (N, C, H, W)
        Images in [0, 1] (C = 1 or 3), any chunks along N (the image axes become one chunk).
    **options
        :func:`pdeflow.codec.encode`'s options (``bpp`` or ``size``, ``operator``, ...), the same for every image.

    Returns
    -------
    dask array, shape (N,), dtype object: each entry the bytes of one file.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> import pdeflow.dask
    >>> x = np.linspace(0, 1, 2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32)
    >>> files = pdeflow.dask.encode(da.from_array(x, chunks=(1, 32, 32)), bpp=1.0).compute(scheduler="sync")
    >>> len(files), all(len(b) <= 1.0 * 32 * 32 / 8 for b in files)
    (2, True)
    """
    da = import_dask()
    if not isinstance(stack, da.Array) or stack.ndim not in (3, 4):
        raise UserInputError("pdeflow.dask.encode: stack must be a dask array of shape (N, H, W) or (N, C, H, W), "
                             f"got {getattr(stack, 'shape', type(stack).__name__)}")
    stack = stack.rechunk({k: -1 for k in range(1, stack.ndim)})
    return da.map_blocks(_encode_block, stack, options, drop_axis=list(range(1, stack.ndim)), dtype=object,
                         meta=np.empty((0,), dtype=object))


def _decode_block(block, ndim):
    # grey (H, W): (1, H, W) whatever layout a file records; else the layout the file records, as decode gives it
    images = [codec.decode(bytes(b), channel_axis=0 if ndim == 3 else None).numpy() for b in block]
    out = np.stack(images)
    return out if ndim == 4 else out[:, 0]


def decode(files, shape):
    """:func:`pdeflow.codec.decode` of every file of a stack: a dask array of images, lazy.

    Parameters
    ----------
    files : dask array of bytes (dtype object, shape (N,)), or a sequence of bytes
        As :func:`encode` gives them.
    shape : tuple
        The shape of one image, ``(H, W)`` (grey) or ``(C, H, W)`` (the files record it; a lazy array needs it
        before it reads them).

    Returns
    -------
    dask array, shape ``(N,) + shape``, float32

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> import pdeflow.dask
    >>> x = np.linspace(0, 1, 2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32)
    >>> files = pdeflow.dask.encode(da.from_array(x, chunks=(1, 32, 32)), bpp=2.0)
    >>> y = pdeflow.dask.decode(files, (32, 32)).compute(scheduler="sync")
    >>> y.shape, float(abs(y - x).mean()) < 0.02
    ((2, 32, 32), True)
    """
    da = import_dask()
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise UserInputError(f"pdeflow.dask.decode: shape must be (H, W) or (C, H, W), got {shape}")
    if not isinstance(files, da.Array):
        arr = np.empty(len(files), dtype=object)
        arr[:] = list(files)
        files = da.from_array(arr, chunks=1)
    ndim = len(shape) + 1
    return da.map_blocks(_decode_block, files, ndim, new_axis=list(range(1, ndim)),
                         chunks=(files.chunks[0],) + tuple((s,) for s in shape), dtype=np.float32,
                         meta=np.empty((0,) * ndim, dtype=np.float32))
