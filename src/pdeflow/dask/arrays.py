"""The plumbing of :mod:`pdeflow.dask`: checks of dask arrays, the batched layout, one Schwarz sweep as a layer
of a dask graph (a task per block that gathers its halo) and the global reductions that decide whether to stop.

An array of the tensor API's shapes ((H, W), (C, H, W), (B, C, H, W); volumes with ``ndim=3``) is handled in the
batched layout ``(B, C, *spatial)``: the channel axis is one chunk (channels are coupled), the batch and the
spatial axes keep the user's chunks. A sweep is :func:`sweep`: one task per block reads the chunks its block grown
by a halo of ``depth`` pixels covers (none at the image's border), runs the subdomain solve and keeps the block's
own pixels; the blocks may be chunked otherwise than the arrays read (the staggered decompositions of ROF). Its
tasks also read one scalar, ``done``: once a global reduction has said that the iteration has converged, the
remaining sweeps of the graph pass their blocks through without solving, so a graph built for ``max_sweeps``
sweeps costs the sweeps it needs. A solve gathers its layers in a :class:`Graph` as it builds them, so that
building a graph of many sweeps costs time linear in them (dask merges every layer of the inputs into each new
graph). Nothing is computed here: every function returns dask objects.
"""
from __future__ import annotations

import bisect
import functools
import itertools
import numbers
import operator

import numpy as np

from ..errors import InputDtypeError, UserInputError

__all__ = ["import_dask", "as_batched", "from_batched", "sweep", "halo_faces", "check_positive", "check_ndim",
           "check_max_sweeps", "spatial_depth", "Graph", "block_sums", "checked_finite", "warn_short",
           "warned_if_short"]


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


def warn_short(who: str, criterion, tol: float, max_sweeps: int, measure: str = "relative duality gap",
               name: str = "tol") -> None:
    """The :class:`pdeflow.tv.ConvergenceWarning` of a decomposed solve that stopped at ``max_sweeps`` with its
    stopping measure ``criterion`` above ``tol`` (the argument ``name``).

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
                  f"{name}={tol:g}; raise max_sweeps or {name}", ConvergenceWarning, stacklevel=3)


def warned_if_short(x, criterion, converged, who: str, tol: float, max_sweeps: int,
                    measure: str = "relative duality gap", name: str = "tol"):
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
            warn_short(who, crit, tol, max_sweeps, measure, name)
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


class Graph:
    """The layers of one lazy solve, gathered as they are made, so that building it is linear in its sweeps.

    Every dask operation merges the layers of its inputs into a new graph, so a chain of ``L`` operations costs
    ``O(L^2)`` to build (each sweep adds several). Here every array a solve carries from one sweep to the next is
    :meth:`keep`-ed: its layers go into this object once and it continues as an array whose graph is its own name
    only (a layer without tasks: the operations that follow read its keys, which :meth:`finish` supplies).
    :func:`sweep` and :func:`block_sums` add their layer here directly.

    Examples
    --------
    >>> import dask.array as da
    >>> from pdeflow.dask.arrays import Graph
    >>> g = Graph()
    >>> x = g.keep(da.ones(4, chunks=2))
    >>> for _ in range(3):
    ...     x = g.keep(x + 1)
    >>> len(x.dask.layers)
    1
    >>> (y,) = g.finish(x)
    >>> y.compute().tolist()
    [4.0, 4.0, 4.0, 4.0]
    """

    def __init__(self):
        self.layers: dict = {}
        self.deps: dict = {}

    def keep(self, x):
        """``x`` (a dask array; anything else is returned as it is) with its layers gathered here, as an array
        whose graph holds its name only."""
        da = import_dask()
        if not isinstance(x, da.Array):
            return x
        hlg = x.__dask_graph__()
        for name, layer in hlg.layers.items():
            if name not in self.layers:        # the names of arrays kept before are theirs already
                self.layers[name] = layer
                self.deps[name] = set(hlg.dependencies.get(name, ()))
        return self._named(x.name, x.chunks, x._meta)

    def add(self, name: str, tasks: dict, inputs, chunks, meta):
        """A new layer of ``tasks`` (reading the keys of the dask arrays ``inputs``, kept here) as an array."""
        from dask.highlevelgraph import MaterializedLayer

        self.layers[name] = MaterializedLayer(tasks)
        self.deps[name] = {a.name for a in inputs}
        return self._named(name, chunks, meta)

    def apply(self, fn, args, dtypes, prefix: str):
        """0-d dask arrays of the values ``fn(*args)`` returns (a tuple of ``len(dtypes)`` values, each of its
        dtype), one task: dask arrays among ``args`` are given to ``fn`` as their blocks, a 0-d one as its value,
        others as the nested lists of their blocks; the rest as they are. The per-sweep bookkeeping of a solve
        in one task rather than a dask operation (and a layer) per number."""
        from dask.base import tokenize

        da = import_dask()
        args = [self.keep(a) for a in args]
        arrays = [a for a in args if isinstance(a, da.Array)]
        name = f"{prefix}-{tokenize(fn.__qualname__, [a.name if isinstance(a, da.Array) else a for a in args])}"
        keys = [((a.name,) if a.ndim == 0 else a.__dask_keys__()) if isinstance(a, da.Array) else a for a in args]
        from dask.highlevelgraph import MaterializedLayer

        self.layers[name] = MaterializedLayer({(name,): (fn, *keys)})
        self.deps[name] = {a.name for a in arrays}
        out = []
        for i, dtype in enumerate(dtypes):
            item = f"{prefix}-{i}-{name.rsplit('-', 1)[1]}"
            out.append(self.add(item, {(item,): (operator.getitem, (name,), i)}, [], (), np.empty((), dtype=dtype)))
            self.deps[item] = {name}
        return tuple(out)

    def finish(self, *arrays):
        """``arrays`` on the graph gathered here, each with the layers it depends on only (dask takes the layers
        that nothing in a collection's graph reads for its outputs)."""
        from dask.highlevelgraph import HighLevelGraph

        da = import_dask()
        out = []
        for x in arrays:
            x = self.keep(x)
            if not isinstance(x, da.Array):
                out.append(x)
                continue
            seen, todo = {x.name}, [x.name]
            while todo:
                for d in self.deps[todo.pop()]:
                    if d not in seen:
                        seen.add(d)
                        todo.append(d)
            hlg = HighLevelGraph({k: self.layers[k] for k in seen}, {k: set(self.deps[k]) for k in seen})
            out.append(da.Array(hlg, x.name, x.chunks, meta=x._meta))
        return tuple(out)

    @staticmethod
    def _named(name, chunks, meta):
        from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

        da = import_dask()
        return da.Array(HighLevelGraph({name: MaterializedLayer({})}, {name: set()}), name, chunks, meta=meta)


def _axis_pieces(ends, lo: int, hi: int):
    """The blocks of an axis (block ``i`` spans ``ends[i]:ends[i + 1]``) that ``lo:hi`` covers: (index, slice in
    the block, slice in ``lo:hi``) each."""
    out = []
    for i in range(max(bisect.bisect_right(ends, lo) - 1, 0), len(ends) - 1):
        a, b = ends[i], ends[i + 1]
        if a >= hi:
            break
        s, e = max(a, lo), min(b, hi)
        if e > s:
            out.append((i, slice(s - a, e - a), slice(s - lo, e - lo)))
    return out


def _ends(chunks):
    """The block boundaries of each axis of ``chunks``: ``[0, c0, c0 + c1, ...]``."""
    return [list(itertools.accumulate(c, initial=0)) for c in chunks]


@functools.lru_cache(maxsize=256)
def _layout(grid, depth):
    """Every block of ``grid`` (the chunks of the batch and spatial axes) grown by ``depth`` (a halo per spatial
    axis, none at the image's border): its index, its region (a (lo, hi) per axis) and its faces. Cached: the
    sweeps of a solve repeat a few grids."""
    ends = _ends(grid)
    out = []
    for idx in itertools.product(*(range(len(c)) for c in grid)):
        region, faces = [(ends[0][idx[0]], ends[0][idx[0] + 1])], []
        for k in range(1, len(grid)):
            lo, hi, d = ends[k][idx[k]], ends[k][idx[k] + 1], depth[k - 1]
            face = (d if idx[k] > 0 else 0, d if idx[k] < len(grid[k]) - 1 else 0)
            faces.append(face)
            region.append((lo - face[0], hi + face[1]))
        out.append((idx, tuple(region), tuple(faces)))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _gather_plans(chunks, grid, depth):
    """For every block of :func:`_layout`, the blocks of an array of ``chunks`` (those of its batch and spatial
    axes) that its grown block covers, and where each piece goes (None: one block, whole)."""
    ends = _ends(chunks)
    out = []
    for _, region, _ in _layout(grid, depth):
        per = [_axis_pieces(e, lo, hi) for e, (lo, hi) in zip(ends, region)]
        blocks, pieces = [], []
        for combo in itertools.product(*per):
            blocks.append(tuple(c[0] for c in combo))
            src = (combo[0][1], slice(None)) + tuple(c[1] for c in combo[1:])
            dst = (combo[0][2], slice(None)) + tuple(c[2] for c in combo[1:])
            pieces.append((src, dst))
        whole = len(blocks) == 1 and all(e[c[0][0]] == lo and e[c[0][0] + 1] == hi for e, (lo, hi), c in
                                         zip(ends, region, per))
        out.append((tuple(blocks), None if whole else tuple(pieces)))
    return tuple(out)


def _assemble(pieces, shape, blocks):
    """One grown block (``shape``: the sizes of its batch and spatial axes) from the pieces of the blocks it
    covers (``pieces`` None: the one block, whole)."""
    if pieces is None:
        return blocks[0]
    out = np.empty((shape[0], blocks[0].shape[1]) + shape[1:], dtype=blocks[0].dtype)
    for (src, dst), b in zip(pieces, blocks):
        out[dst] = b[src]
    return out


class _GrownTask:
    """A task of :func:`sweep` (``empty`` None) or :func:`block_sums`: the grown blocks assembled from their
    pieces, ``fn`` on them unless the flag says the iteration is done, the halo trimmed (a sweep's block)."""

    def __init__(self, fn, plans, shape, faces, like, names, kwargs, empty):
        self.fn, self.plans, self.shape, self.faces, self.like = fn, plans, shape, faces, like
        self.names, self.kwargs, self.empty = names, kwargs, empty
        self.own = (slice(None), slice(None)) + tuple(slice(lo, s - hi) for (lo, hi), s in zip(faces, shape[1:]))

    def __call__(self, flag, *args):
        n = len(self.plans)
        if bool(flag):
            if self.empty is not None:
                return np.zeros(self.empty)
            return _assemble(self.plans[self.like], self.shape, args[self.like])[self.own]
        grown = [_assemble(pieces, self.shape, blocks) for pieces, blocks in zip(self.plans, args[:n])]
        out = self.fn(*grown, faces=self.faces, **dict(zip(self.names, args[n:])), **self.kwargs)
        return out if self.empty is not None else out[self.own]


def _grown_layer(graph, fn, arrays, depth, done, grid, extra, like, kwargs, *, out_chunks, meta, sums,
                 per_block=None, width=2):
    """The layer of :func:`sweep` or :func:`block_sums` in ``graph``: a task per block of ``grid`` (the chunks of
    the batch and spatial axes), each reading the pieces of ``arrays`` its grown block covers; ``per_block(region,
    faces)``: keywords of each block's own (its grown region, a (lo, hi) per batch and spatial axis)."""
    from dask.base import tokenize
    from dask.utils import funcname

    arrays = [graph.keep(a) for a in arrays]
    names = list(extra or {})
    extras = [graph.keep(extra[k]) for k in names]
    flag = graph.keep(done)
    lazy_flag = hasattr(flag, "dask")
    nsp = arrays[0].ndim - 2
    for e in extras:
        if tuple(e.chunks[0]) != tuple(grid[0]):
            raise ValueError("the extra arrays must have the batch chunks of the grid")
    dep = tuple(depth[k] for k in range(2, arrays[0].ndim))
    layout = _layout(grid, dep)
    own = [kwargs if per_block is None else {**kwargs, **per_block(region, faces)} for _, region, faces in layout]
    prefix = funcname(fn).strip("_").replace("_", "-") + ("-sums" if sums else "")
    token = tokenize([a.name for a in arrays], [e.name for e in extras], flag.name if lazy_flag else bool(flag),
                     grid, sorted(depth.items()), like, sums, own)
    name = f"{prefix}-{token}"
    flag_key = (flag.name,) if lazy_flag else bool(flag)
    plans = [_gather_plans(_grid(a.chunks), grid, dep) for a in arrays]
    tasks = {}
    for b, (idx, region, faces) in enumerate(layout):
        keys = [[(a.name, i[0], 0, *i[1:]) for i in plan[b][0]] for a, plan in zip(arrays, plans)]
        empty = ((grid[0][idx[0]], width) + (1,) * nsp) if sums else None
        task = _GrownTask(fn, tuple(plan[b][1] for plan in plans), tuple(hi - lo for lo, hi in region), faces, like,
                          names, own[b], empty)
        ekeys = [(e.name, idx[0]) + (0,) * (e.ndim - 1) for e in extras]
        tasks[(name, idx[0], 0, *idx[1:])] = (task, flag_key, *keys, *ekeys)
    return graph.add(name, tasks, arrays + extras + ([flag] if lazy_flag else []), out_chunks, meta)


def _grid(chunks):
    """The chunks of the batch and spatial axes of a batched array's ``chunks``."""
    return (tuple(chunks[0]),) + tuple(tuple(c) for c in chunks[2:])


def sweep(fn, arrays, depth: dict, done, *, dtype, like: int = 0, extra: dict | None = None, grid=None, graph=None,
          per_block=None, **kwargs):
    """One sweep: ``fn(*grown_blocks, faces=..., **kwargs)`` on every block grown by ``depth``, trimmed back.

    The blocks are the chunks ``grid`` (a batched array's chunks, default those of ``arrays[like]``). Each of
    ``arrays`` (any chunks along the batch and spatial axes, the channel axis one chunk) is read over every block
    grown by its halo (none at the image's border), gathered inside the block's task from the chunks it covers: a
    layer of one task per block, whatever the chunks of ``arrays``. ``fn`` returns the grown block's new values (the
    halo is cut off). ``done`` is a 0-d dask array (or a bool): where it is True, the block of ``arrays[like]`` is
    passed through unchanged and ``fn`` is not called. ``extra``: dask arrays that broadcast against the blocks
    without a halo (per-image values of shape ``(B, 1, 1, ...)``, chunked as ``grid`` along the batch axis), given
    to ``fn`` as keywords of those names, a block each. ``graph``: the :class:`Graph` of the solve the sweep is
    part of (the result is then an array of it); without one the result is a dask array of its own.
    ``per_block(region, faces)``: keywords of a block's own for ``fn`` (``region``: its grown extent, a (lo, hi) per
    batch and spatial axis), made when the graph is built.

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
    g = Graph() if graph is None else graph
    target = arrays[like]
    grid = _grid(target.chunks if grid is None else grid)
    out = _grown_layer(g, fn, arrays, depth, done, grid, extra, like, kwargs,
                       out_chunks=(grid[0], target.chunks[1]) + grid[1:],
                       meta=np.empty((0,) * target.ndim, dtype=dtype), sums=False, per_block=per_block)
    return g.finish(out)[0] if graph is None else out


def block_sums(fn, arrays, depth: dict, done, *, grid=None, graph=None, width: int = 2, per_block=None,
               **kwargs):
    """Per-block values of ``fn(*grown_blocks, faces=..., **kwargs)``, which returns a (b, width, 1, ...) block
    (zeros where ``done``): a dask array of such chunks, one per block of ``grid`` (default the chunks of
    ``arrays[0]``), for a reduction over the spatial axes. The blocks are grown and read as :func:`sweep` reads them;
    ``per_block`` as there.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from pdeflow.dask.arrays import block_sums
    >>> x = da.from_array(np.ones((1, 1, 4, 4)), chunks=(1, 1, 2, 2))
    >>> def total(b, faces):
    ...     return np.full((b.shape[0], 2, 1, 1), b.sum())
    >>> parts = block_sums(total, [x], {0: 0, 1: 0, 2: 1, 3: 1}, False)
    >>> parts.shape, float(parts.sum(axis=(2, 3)).compute()[0, 0])
    ((1, 2, 2, 2), 36.0)
    """
    g = Graph() if graph is None else graph
    grid = _grid(arrays[0].chunks if grid is None else grid)
    out = _grown_layer(g, fn, arrays, depth, done, grid, None, 0, kwargs,
                       out_chunks=(grid[0], (width,)) + tuple((1,) * len(c) for c in grid[1:]),
                       meta=np.empty((0,) * arrays[0].ndim), sums=True, per_block=per_block, width=width)
    return g.finish(out)[0] if graph is None else out
