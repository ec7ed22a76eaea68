"""Arrays larger than memory: zarr stores read as dask arrays and dask arrays written to zarr stores, atomically.

:func:`read_zarr` opens a store lazily (nothing is read until a chunk is needed) and checks every chunk as it
is read: a chunk whose file is missing is refused (zarr would read it as the fill value: a store copied in part
would be solved as zeros) unless ``fill_missing`` says what it holds, and a chunk that cannot be decoded (a
truncated or corrupt file) is refused naming the chunk. :func:`write_zarr` computes a dask array chunk by chunk
into a store beside the target and renames it into place, so a failed or interrupted write leaves no partial
store and an existing store is replaced only with ``overwrite=True``; it writes every chunk, those equal to the
fill value too, so that its stores read back without ``fill_missing``. Both need the ``dask`` extra.
"""
from __future__ import annotations

import itertools
import numbers
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..errors import InputFileNotFoundError, UserInputError

__all__ = ["read_zarr", "write_zarr"]

#: zarr's array settings of the stores pdeflow writes: every chunk written, those equal to the fill value too
#: (zarr leaves them out by default), so that a missing chunk file always means an incomplete store.
_EVERY_CHUNK = {"write_empty_chunks": True}


def _dask():
    try:
        import dask.array as da
        import zarr  # noqa: F401  (dask's zarr functions import it)
    except ImportError as err:
        raise UserInputError("zarr arrays need dask and zarr: pip install 'pdeflow[dask]'") from err
    return da


class _CheckedChunks:
    """A zarr array as :func:`dask.array.from_array` reads it, one region a task, every chunk checked: its file
    exists (or ``fill`` is given: then a missing chunk holds ``fill``) and it decodes. Picklable (a path, the array
    opened again in each process)."""

    def __init__(self, path: Path, component: str | None, fill):
        import zarr

        self.path, self.component, self.fill = Path(path), component, fill
        z = zarr.open_array(str(self.path), path=component or "", mode="r")
        self.shape, self.dtype, self.ndim = tuple(z.shape), z.dtype, z.ndim
        self.grid = tuple(z.shards or z.chunks)        # the unit a file holds
        self.fill_value = z.fill_value
        self._z = z

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_z"}

    def __setstate__(self, state):
        self.__dict__.update(state, _z=None)

    def _array(self):
        if self._z is None:
            import zarr
            self._z = zarr.open_array(str(self.path), path=self.component or "", mode="r")
        return self._z

    def _where(self, index) -> str:
        key = self._array().metadata.encode_chunk_key(index)
        pixels = ", ".join(f"{i * g}:{min((i + 1) * g, n)}" for i, g, n in zip(index, self.grid, self.shape))
        return f"chunk {key!r} (index {tuple(int(i) for i in index)}, elements [{pixels}]) of {str(self.path)!r}"

    def _exists(self, index) -> bool:
        key = self._array().metadata.encode_chunk_key(index)
        return (self.path / (self.component or "") / key).is_file()

    def __getitem__(self, region):
        region = tuple(region) + (slice(None),) * (self.ndim - len(tuple(region)))
        bounds = [sl.indices(n)[:2] for sl, n in zip(region, self.shape)]
        spans = [range(a // g, -(-b // g)) if b > a else range(0) for (a, b), g in zip(bounds, self.grid)]
        missing = [ix for ix in itertools.product(*spans) if not self._exists(ix)]
        if missing and self.fill is None:
            raise UserInputError(
                f"read_zarr: {self._where(missing[0])} is missing: an incomplete store (a copy cut short), or one "
                f"written without the chunks equal to its fill value ({_plain(self.fill_value)}); pass "
                f"fill_missing=VALUE to read missing chunks as VALUE")
        try:
            out = np.asarray(self._array()[region])
        except UserInputError:
            raise
        except Exception as err:     # a truncated or corrupt chunk: name it (each decoded alone to find it)
            bad = next((ix for ix in itertools.product(*spans) if not self._decodes(ix)), None)
            where = self._where(bad) if bad is not None else f"a chunk of {str(self.path)!r}"
            text = " ".join(str(err).split())
            raise UserInputError(f"read_zarr: {where} cannot be read (truncated or corrupt): "
                                 f"{type(err).__name__}: {text}") from None
        if missing:
            out = np.array(out, copy=True)
            for ix in missing:
                local = tuple(slice(max(i * g, a) - a, min((i + 1) * g, b) - a)
                              for i, g, (a, b) in zip(ix, self.grid, bounds))
                out[local] = self.fill
        return out

    def _decodes(self, index) -> bool:
        sl = tuple(slice(i * g, min((i + 1) * g, n)) for i, g, n in zip(index, self.grid, self.shape))
        try:
            self._array()[sl]
        except Exception:
            return False
        return True


def _plain(value):
    """A numpy scalar as Python writes it (``0.0``, not ``np.float32(0.0)``)."""
    try:
        return repr(np.asarray(value).item())
    except (TypeError, ValueError):
        return repr(value)


def read_zarr(path, component: str | None = None, *, chunks=None, fill_missing=None):
    """A zarr store (or one array of a zarr group) as a lazy dask array, every chunk checked as it is read.

    Parameters
    ----------
    path : str or Path
        The store's directory.
    component : str, optional
        The array's name inside a group.
    chunks : optional
        Chunks of the dask array (default: the store's own).
    fill_missing : number, optional
        What a chunk whose file is missing holds. Default: such a chunk is an error when it is read (zarr itself
        reads it as the store's fill value; a store copied in part would pass as zeros). Stores that leave out
        the chunks equal to their fill value (zarr's default ``write_empty_chunks=False``) need
        ``fill_missing=`` that value; :func:`write_zarr` writes every chunk.

    Returns
    -------
    dask array
        Computing a chunk raises :class:`~pdeflow.errors.UserInputError` naming the chunk (its key, index and
        elements) when its file is missing (and ``fill_missing`` is not given) or cannot be decoded.

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
    if fill_missing is not None and (not isinstance(fill_missing, numbers.Real) or isinstance(fill_missing, bool)):
        raise UserInputError(f"read_zarr: fill_missing must be a number, got {fill_missing!r}")
    try:
        source = _CheckedChunks(path, component, fill_missing)
    except (KeyError, ValueError, TypeError, OSError) as err:
        raise UserInputError(f"read_zarr: {str(path)!r} is not a readable zarr array"
                             f"{f' (component {component!r})' if component else ''}: {err}") from err
    from dask.base import tokenize

    name = "read_zarr-" + tokenize(str(path.absolute()), component, fill_missing, source.shape, str(source.dtype),
                                   source.grid, _mtime(path, component))
    x = da.from_array(source, chunks=source.grid if chunks is None else chunks, name=name, asarray=False,
                      fancy=False, lock=False, meta=np.empty((0,) * source.ndim, dtype=source.dtype))
    return x


def _mtime(path: Path, component) -> int:
    """When the store's metadata last changed: a rewritten store is not taken for the one read before."""
    for m in ("zarr.json", ".zarray"):
        f = path / (component or "") / m
        if f.exists():
            return f.stat().st_mtime_ns
    return 0


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
            da.to_zarr(x, str(tmp), overwrite=False, config=_EVERY_CHUNK)
        else:
            import dask
            values = dask.compute(da.to_zarr(x, str(tmp), overwrite=False, compute=False, config=_EVERY_CHUNK),
                                  *also)[1:]
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
