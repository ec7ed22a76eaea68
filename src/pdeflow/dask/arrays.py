"""The plumbing of :mod:`pdeflow.dask`: checks of dask arrays, the batched layout, one Schwarz sweep as a dask
graph (halo exchange, a task per chunk, trimming) and the global reductions that decide whether to stop.

An array of the tensor API's shapes ((H, W), (C, H, W), (B, C, H, W); volumes with ``ndim=3``) is handled in the
batched layout ``(B, C, *spatial)``: the channel axis is one chunk (channels are coupled), the batch and the
spatial axes keep the user's chunks. A sweep is :func:`sweep`: every chunk grows by a halo of ``depth`` pixels
from its neighbours (none at the image's border), one task per chunk runs the subdomain solve, the halo is
trimmed again. Its tasks also read one scalar, ``done``: once a global reduction has said that the iteration
has converged, the remaining sweeps of the graph pass their chunks through without solving, so a graph built
for ``max_sweeps`` sweeps costs the sweeps it needs. Nothing is computed here: every function returns dask
objects.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import InputDtypeError, UserInputError

__all__ = ["import_dask", "as_batched", "from_batched", "sweep", "halo_faces", "check_positive", "check_ndim",
           "check_max_sweeps", "spatial_depth", "checked_finite", "warn_short", "warned_if_short"]


def import_dask():
    """``dask.array``, or a :class:`~pdeflow.errors.UserInputError` that says how to install it.

    Examples
    --------
    >>> from pdeflow.dask.arrays import import_dask
    >>> import_dask().__name__
    'dask.array'
    """
    try:
        import dask.array as da
    except ImportError as err:  # the optional extra
        raise UserInputError("pdeflow.dask needs dask: pip install 'pdeflow[dask]'") from err
    return da


def check_ndim(ndim) -> int:
    """``ndim`` (None: 2) as 2 or 3, or a :class:`~pdeflow.errors.UserInputError`.

    Examples
    --------
    >>> from pdeflow.dask.arrays import check_ndim
    >>> check_ndim(None), check_ndim(3)
    (2, 3)
    """
    if ndim is None:
        return 2
    if ndim not in (2, 3) or isinstance(ndim, bool):
        raise UserInputError(f"ndim must be 2 or 3, got {ndim!r}")
    return int(ndim)


def check_positive(value, name: str, who: str, *, zero: bool = False) -> float:
    """``value`` as a float, refused unless it is a finite number ``> 0`` (``>= 0`` with ``zero``).

    Examples
    --------
    >>> from pdeflow.dask.arrays import check_positive
    >>> check_positive(0.5, "lam", "rof")
    0.5
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        raise UserInputError(f"{who}: {name} must be a number {'>=' if zero else '>'} 0, got {value!r}")
    return float(value)


def check_max_sweeps(value, who: str) -> int:
    """``max_sweeps`` as an int ``>= 1``.

    Examples
    --------
    >>> from pdeflow.dask.arrays import check_max_sweeps
    >>> check_max_sweeps(30, "rof")
    30
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise UserInputError(f"{who}: max_sweeps must be an integer >= 1, got {value!r}")
    return int(value)


def as_batched(x, name: str, ndim: int, who: str, *, channels_one_chunk: bool = True):
    """``x`` (a dask array of the tensor API's shapes) in the layout ``(B, C, *spatial)``.

    Returns the array (float32 or float64, the channel axis one chunk if ``channels_one_chunk``) and the
    number of leading axes the caller gave (0, 1 or 2), for :func:`from_batched`.

    Examples
    --------
    >>> import dask.array as da
    >>> from pdeflow.dask.arrays import as_batched
    >>> x4, lead = as_batched(da.zeros((6, 8), chunks=3), "x", 2, "rof")
    >>> x4.shape, lead, x4.chunks[2:]
    ((1, 1, 6, 8), 0, ((3, 3), (3, 3, 2)))
    """
    da = import_dask()
    if not isinstance(x, da.Array):
        raise UserInputError(f"{who}: {name} must be a dask array (dask.array.from_array or from_zarr), "
                             f"got {type(x).__name__}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputDtypeError(f"{who}: {name} must have a floating dtype (float32 or float64), got {x.dtype}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    lead = x.ndim - ndim
    if lead not in (0, 1, 2):
        shapes = "(H, W), (C, H, W) or (B, C, H, W)" if ndim == 2 else "(D, H, W), (C, D, H, W) or (B, C, D, H, W)"
        raise UserInputError(f"{who}: {name} must have shape {shapes}, got {x.shape}")
    if any(s == 0 for s in x.shape):
        raise UserInputError(f"{who}: {name} must not be empty, got shape {x.shape}")
    x4 = x[(None,) * (2 - lead)]
    if channels_one_chunk and len(x4.chunks[1]) > 1:
        x4 = x4.rechunk({1: -1})
    return x4, lead


def checked_finite(x4, name: str, who: str, lead: int):
    """``x4`` (batched, from :func:`as_batched`) with a check in each chunk's task: a chunk that holds NaN or an
    infinity raises a :class:`~pdeflow.errors.UserInputError` naming ``name``, the first such element and its
    chunk (in the caller's axes, ``lead`` as :func:`as_batched` returns it) when it is computed.

    Lazy, a task per chunk in the graph that reads the chunk: a store is read once, and the solve that follows
    starts on no chunk that failed (an iteration on NaN never meets its tolerance and would run to its caps).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from pdeflow.dask.arrays import as_batched, checked_finite
    >>> from pdeflow.errors import UserInputError
    >>> x = np.zeros((4, 4)); x[1, 3] = np.nan
    >>> x4, lead = as_batched(da.from_array(x, chunks=2), "f", 2, "rof")
    >>> try:
    ...     checked_finite(x4, "f", "rof", lead).compute(scheduler="sync")
    ... except UserInputError as err:
    ...     print(err)
    rof: f must be finite; it holds nan at (1, 3) (its chunk [0:2, 2:4])
    """
    def check(block, block_info=None):
        if not np.isfinite(block).all():
            loc = block_info[0]["array-location"]
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(block))[0])
            where = tuple(int(a + i) for (a, _), i in zip(loc, bad))[2 - lead:]
            chunk = ", ".join(f"{a}:{b}" for a, b in loc[2 - lead:])
            raise UserInputError(f"{who}: {name} must be finite; it holds {block[bad]} at {where} "
                                 f"(its chunk [{chunk}])")
        return block

    return x4.map_blocks(check, dtype=x4.dtype, meta=np.empty((0,) * x4.ndim, dtype=x4.dtype))


def warn_short(who: str, criterion, tol: float, max_sweeps: int, measure: str = "relative duality gap") -> None:
    """The :class:`pdeflow.tv.ConvergenceWarning` of a decomposed solve that stopped at ``max_sweeps`` with its
    stopping measure ``criterion`` above ``tol``.

    Examples
    --------
    >>> import warnings
    >>> from pdeflow.dask.arrays import warn_short
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_short("pdeflow.dask.rof", 3e-6, 1e-7, 30)
    >>> for part in str(caught[0].message).split(", "):
    ...     print(part)
    pdeflow.dask.rof: stopped at max_sweeps=30 with a relative duality gap of 3e-06
    short of tol=1e-07; raise max_sweeps or tol
    """
    import warnings

    from ..tv import ConvergenceWarning

    warnings.warn(f"{who}: stopped at max_sweeps={max_sweeps} with a {measure} of {float(criterion):.2g}, short of "
                  f"tol={tol:g}; raise max_sweeps or tol", ConvergenceWarning, stacklevel=3)


def warned_if_short(x, criterion, converged, who: str, tol: float, max_sweeps: int,
                    measure: str = "relative duality gap"):
    """``x`` (a dask array) whose chunks, when computed, first call :func:`warn_short` if ``converged`` (a 0-d dask
    array) is False: a lazy solve that ran out of sweeps says so where it is computed (one warning: Python shows
    a repeated one once).

    Examples
    --------
    >>> import dask.array as da, warnings
    >>> from pdeflow.dask.arrays import warned_if_short
    >>> x = warned_if_short(da.ones(4, chunks=2), da.asarray(0.5), da.asarray(False), "demo", 0.1, 3)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = x.compute(scheduler="sync")
    >>> str(caught[0].message)
    'demo: stopped at max_sweeps=3 with a relative duality gap of 0.5, short of tol=0.1; raise max_sweeps or tol'
    """
    da = import_dask()

    def task(block, crit, ok):
        if not bool(ok):
            warn_short(who, crit, tol, max_sweeps, measure)
        return block

    return da.map_blocks(task, x, criterion, converged, dtype=x.dtype, meta=np.empty((0,) * x.ndim, dtype=x.dtype),
                         token=who.rsplit(".", 1)[-1])


def from_batched(x4, lead: int):
    """The inverse of :func:`as_batched`: the leading axes the caller gave.

    Examples
    --------
    >>> import dask.array as da
    >>> from pdeflow.dask.arrays import from_batched
    >>> from_batched(da.zeros((1, 1, 6, 8)), 0).shape
    (6, 8)
    """
    return x4[(0,) * (2 - lead)]


def spatial_depth(x4, depth: int) -> dict:
    """The halo of :func:`sweep` per axis of a batched array: ``depth`` on the spatial axes, at most the smallest
    chunk along each (dask's rule), 0 on the batch and channel axes.

    Examples
    --------
    >>> import dask.array as da
    >>> from pdeflow.dask.arrays import spatial_depth
    >>> spatial_depth(da.zeros((1, 1, 8, 8), chunks=(1, 1, 4, 4)), 2)
    {0: 0, 1: 0, 2: 2, 3: 2}
    """
    out = {0: 0, 1: 0}
    for k in range(2, x4.ndim):
        if len(x4.chunks[k]) > 1 and depth > min(x4.chunks[k]):
            raise UserInputError(f"the halo of {depth} pixels is wider than the smallest chunk "
                                 f"({min(x4.chunks[k])} pixels along axis {k - 2} of the image): use larger chunks "
                                 f"or a smaller overlap")
        out[k] = depth if len(x4.chunks[k]) > 1 else 0
    return out


def halo_faces(block_info, depth: dict, spatial: int) -> tuple[tuple[int, int], ...]:
    """The widths of the halo a chunk got on its low and high side along each spatial axis (0 at the image's
    border), from dask's ``block_info`` of the grown array.

    Examples
    --------
    >>> from pdeflow.dask.arrays import halo_faces
    >>> info = {0: {"chunk-location": (0, 0, 0, 1), "num-chunks": (1, 1, 2, 2)}}
    >>> halo_faces(info, {0: 0, 1: 0, 2: 3, 3: 3}, 2)
    ((0, 3), (3, 0))
    """
    loc, num = block_info[0]["chunk-location"], block_info[0]["num-chunks"]
    first = len(loc) - spatial
    return tuple((depth[k] if loc[k] > 0 else 0, depth[k] if loc[k] < num[k] - 1 else 0)
                 for k in range(first, len(loc)))


def sweep(fn, arrays, depth: dict, done, *, dtype, like: int = 0, extra: dict | None = None, **kwargs):
    """One sweep: ``fn(*grown_blocks, faces=..., **kwargs)`` on every chunk grown by ``depth``, trimmed back.

    ``arrays`` share their spatial chunks; the result has the chunks of ``arrays[like]``, and ``fn`` returns that
    grown block's new values (the halo is cut off afterwards). ``done`` is a 0-d dask array (or a bool): where it
    is True, the chunk of ``arrays[like]`` is passed through unchanged and ``fn`` is not called. ``extra``: dask
    arrays that broadcast against the chunks without a halo (per-image values of shape ``(B, 1, 1, ...)``), given
    to ``fn`` as keywords of those names, a block each.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from pdeflow.dask.arrays import sweep
    >>> x = da.from_array(np.arange(16.0).reshape(1, 1, 4, 4), chunks=(1, 1, 2, 2))
    >>> depth = {0: 0, 1: 0, 2: 1, 3: 1}
    >>> y = sweep(lambda b, faces: b + 1, [x], depth, False, dtype=x.dtype)
    >>> bool((y.compute() == x.compute() + 1).all())
    True
    """
    da = import_dask()
    grown = [da.overlap.overlap(a, depth=depth, boundary="none") if any(depth.values()) else a for a in arrays]
    nsp = arrays[0].ndim - 2

    names = list(extra or {})
    n = len(grown)

    def task(*blocks, block_info=None):
        flag = bool(blocks[-1])
        if flag:
            return blocks[like]
        faces = halo_faces(block_info, depth, nsp)
        return fn(*blocks[:n], faces=faces, **dict(zip(names, blocks[n:-1])), **kwargs)

    out = da.map_blocks(task, *grown, *(extra[k] for k in names), da.asarray(done), dtype=dtype,
                        chunks=grown[like].chunks, meta=np.empty((0,) * grown[like].ndim, dtype=dtype))
    return da.overlap.trim_internal(out, depth, boundary="none") if any(depth.values()) else out
