"""Arrays larger than memory: zarr stores read as dask arrays and dask arrays written to zarr stores, atomically.

:func:`read_zarr` opens a store lazily (nothing is read until a chunk is needed); :func:`write_zarr` computes a
dask array chunk by chunk into a store beside the target and renames it into place, so a failed or interrupted
write leaves no partial store and an existing store is replaced only with ``overwrite=True``. Both need the
``dask`` extra.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ..errors import InputFileNotFoundError, UserInputError

__all__ = ["read_zarr", "write_zarr"]


def _dask():
    try:
        import dask.array as da
        import zarr  # noqa: F401  (dask's zarr functions import it)
    except ImportError as err:
        raise UserInputError("zarr arrays need dask and zarr: pip install 'pdeflow[dask]'") from err
    return da


def read_zarr(path, component: str | None = None, *, chunks=None):
    """A zarr store (or one array of a zarr group) as a lazy dask array.

    Parameters
    ----------
    path : str or Path
        The store's directory.
    component : str, optional
        The array's name inside a group.
    chunks : optional
        Chunks of the dask array (default: the store's own).

    Returns
    -------
    dask array

    Examples
    --------
    >>> import tempfile, dask.array as da, numpy as np
    >>> from pdeflow.io import read_zarr, write_zarr
    >>> d = tempfile.mkdtemp()
    >>> p = write_zarr(da.ones((64, 64), chunks=32), f"{d}/x.zarr")
    >>> x = read_zarr(p)
    >>> x.shape, x.chunks
    ((64, 64), ((32, 32), (32, 32)))
    """
    da = _dask()
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"read_zarr: no zarr store at {str(path)!r}")
    try:
        return da.from_zarr(str(path), component=component, chunks=chunks)
    except (KeyError, ValueError, TypeError, OSError) as err:
        raise UserInputError(f"read_zarr: {str(path)!r} is not a readable zarr array"
                             f"{f' (component {component!r})' if component else ''}: {err}") from err


def write_zarr(x, path, *, overwrite: bool = False, compute: bool = True, also=None):
    """Compute a dask array into a zarr store at ``path``, atomically (a store beside it, then a rename).

    Parameters
    ----------
    x : dask array
        Any chunks (regular chunks are kept; irregular ones are made regular, as zarr needs).
    path : str or Path
        The store's directory.
    overwrite : bool
        Replace an existing store (default: refuse).
    compute : bool
        Must be True: the write computes ``x`` chunk by chunk, each chunk written by the task that made it.
    also : sequence of dask objects, optional
        Computed in the same pass as the write (one graph, so what they share with ``x`` is computed once): the
        sweeps and the convergence of a decomposed solve whose solution is ``x``.

    Returns
    -------
    Path of the store, or, with ``also``, ``(path, values)``: the computed values of ``also``, a tuple.

    Examples
    --------
    >>> import tempfile, dask.array as da
    >>> from pdeflow.io import write_zarr
    >>> p = write_zarr(da.zeros((8, 8), chunks=4), tempfile.mkdtemp() + "/z.zarr")
    >>> p.name
    'z.zarr'
    >>> x = da.ones((8, 8), chunks=4)
    >>> p, (total,) = write_zarr(x, p, overwrite=True, also=[x.sum()])
    >>> float(total)
    64.0
    """
    da = _dask()
    if not isinstance(x, da.Array):
        raise UserInputError(f"write_zarr: x must be a dask array, got {type(x).__name__}")
    if not compute:
        raise UserInputError("write_zarr: compute must be True (the store is renamed into place once written)")
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserInputError(f"write_zarr: {str(path)!r} exists; pass overwrite=True to replace it")
    if not path.parent.is_dir():
        raise InputFileNotFoundError(f"write_zarr: the folder {str(path.parent)!r} does not exist")
    if any(len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0]) for c in x.chunks):
        x = x.rechunk(tuple(max(c) for c in x.chunks))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if also is None:
            da.to_zarr(x, str(tmp), overwrite=False)
        else:
            import dask
            values = dask.compute(da.to_zarr(x, str(tmp), overwrite=False, compute=False), *also)[1:]
        if path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path if also is None else (path, tuple(values))
