"""Store to store: the decomposed solves of :mod:`pdeflow.dask` with the iterate in zarr between steps, so that a
worker holds only the task it runs.

:func:`rof_to_zarr` and :func:`inpaint_to_zarr` run the sweeps of :func:`pdeflow.dask.rof` and
:func:`pdeflow.dask.inpaint` (the same subdomain solves and stopping measures) one dask graph per step: a task
reads its chunk grown by the halo from zarr stores in a work folder, solves it, writes its own pixels to the next
iterate's store and returns a few numbers. Nothing of the image's size passes through dask, so a worker's memory
is its baseline plus the tasks it runs at once, a multiple of a chunk whatever the image size; a task is
idempotent (it reads one store and writes its own region of another), so a killed worker's tasks just rerun.
ROF's dual field is stored in chunks of half a block (the block edge: the input's largest chunk, rounded down to
an even number), so that the blocks and the blocks staggered by half a block are unions of store chunks and no
two tasks write one. The result is written beside the target and renamed into place; the work folder (beside the
target, or in ``store=``, a folder every worker sees under the same path) is removed at the end.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..allocator import map_large_allocations, release_free_memory
from ..errors import InputFileNotFoundError, UserInputError
from ..tv import ACCURACY
from .arrays import as_batched, check_max_sweeps, check_ndim, check_positive, checked_finite, import_dask, warn_short
from .coarse import coarse_solve
from .inpaint import checked_arguments, coarse_grid, residual_sums, solve_block
from .rof_blocks import band_reach, gap_sums, primal_block, seam_band, solve_dual_block
from .tv import coarse_data, coarse_dual, coarse_factor, image_ranges, prolonged, stopping

__all__ = ["rof_to_zarr", "inpaint_to_zarr", "StoreResult", "block_cuts"]


@dataclass
class StoreResult:
    """The outcome of a store-to-store solve: ``path`` (the result's store), ``u`` (it as a lazy dask array),
    ``sweeps``, ``criterion`` and ``converged`` (computed values, as :class:`pdeflow.dask.SchwarzResult`'s).

    Examples
    --------
    >>> import tempfile, dask.array as da, numpy as np
    >>> import pdeflow.dask
    >>> f = da.from_array(np.tile(np.repeat([0.0, 1.0], 8), (16, 1)), chunks=8)
    >>> r = pdeflow.dask.rof_to_zarr(f, 0.5, tempfile.mkdtemp() + "/u.zarr", tol=1e-4, scheduler="sync")
    >>> r.u.shape, r.converged
    ((16, 16), True)
    """

    path: Path
    u: object
    sweeps: int
    criterion: float
    converged: bool


def block_cuts(n: int, edge: int, shifted: bool) -> list[int]:
    """The block boundaries along an axis of ``n`` pixels: every ``edge`` pixels, or staggered by half of it.

    Examples
    --------
    >>> from pdeflow.dask.stream import block_cuts
    >>> block_cuts(10, 4, False), block_cuts(10, 4, True)
    ([0, 4, 8, 10], [0, 2, 6, 10])
    """
    start = edge // 2 if shifted else edge
    return [0] + list(range(start, n, edge)) + [n]


def _blocks(shape, cuts):
    """Every block of a grid: a tuple of (lo, hi) per spatial axis."""
    spans = [list(zip(c[:-1], c[1:])) for c in cuts]
    return list(itertools.product(*spans))


def _grow(block, shape, depth):
    """The block grown by ``depth`` where a neighbour is (none at the image's border): slices and faces."""
    grown, faces = [], []
    for (lo, hi), n in zip(block, shape):
        a, b = (lo - depth if lo > 0 else lo), (hi + depth if hi < n else hi)
        a, b = max(a, 0), min(b, n)
        grown.append(slice(a, b))
        faces.append((lo - a, b - hi))
    return tuple(grown), tuple(faces)


def _own(faces, grown_shape):
    return tuple(slice(lo, s - hi) for (lo, hi), s in zip(faces, grown_shape))


def _open(path):
    # opening reads and parses the store's metadata, and a run's tasks open the same few stores again and
    # again: kept per process, keyed by the metadata file's identity (a store made anew is reopened)
    meta = os.stat(Path(path) / "zarr.json")
    return _opened(str(path), meta.st_ino, meta.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _opened(path, ino, mtime):
    import zarr
    return zarr.open_array(path, mode="r+")


def _slabs(rows: slice, chunk: int):
    """``rows`` cut at the store's chunk boundaries along its first spatial axis (chunks of ``chunk``)."""
    ends = [rows.start, *range((rows.start // chunk + 1) * chunk, rows.stop, chunk), rows.stop]
    return [slice(a, b) for a, b in zip(ends[:-1], ends[1:])]


#: The bytes of a grown block up to which :func:`_read` reads it in one call: the copies of its store chunks that
#: zarr holds at once are then small whatever their number.
WHOLE_READ = 1 << 20


def _read(path, bslice, grown, dtype=None):
    """The grown block ``grown`` of the images ``bslice``, read one slab of store chunks (along the first spatial
    axis) at a time: zarr decodes the chunks of a region concurrently, and a block grown into its neighbours spans
    up to 3^n of them, each decoded and compressed copy held at once (the largest part of a task's memory after its
    solve); a call per chunk instead cost about as much CPU in zarr's calls as the rest of the read. ``dtype``:
    converted slab by slab as it is read (default the store's), not as a second copy of the block."""
    z = _open(path)
    lead = (bslice, slice(None))
    out = np.empty((len(range(*bslice.indices(z.shape[0]))), z.shape[1]) + tuple(s.stop - s.start for s in grown),
                   dtype=z.dtype if dtype is None else dtype)
    if out.nbytes <= WHOLE_READ:        # small: one read (each read is a round trip through zarr's event loop)
        out[...] = z[lead + tuple(grown)]
        return out
    first = grown[0]
    for rows in _slabs(first, z.chunks[2]):
        out[:, :, rows.start - first.start:rows.stop - first.start] = z[lead + (rows, *grown[1:])]
    return out


def _write(path, bslice, block, values):
    """``values`` into ``block`` of the images ``bslice``, a slab of store chunks at a time (as :func:`_read`)."""
    z = _open(path)
    lead = (bslice, slice(None))
    (top, bottom), rest = block[0], tuple(slice(lo, hi) for lo, hi in block[1:])
    for rows in _slabs(slice(top, bottom), z.chunks[2]):
        z[lead + (rows, *rest)] = values[:, :, rows.start - top:rows.stop - top]


def _create(path, shape, chunks, dtype, *, work=True):
    import zarr
    # every chunk written, zeros too: a missing chunk file then means an incomplete store (pdeflow.io.read_zarr).
    # The work stores (the iterates, rewritten at every step) are not compressed: zstd took 6x the CPU of a raw
    # write of a float64 dual field and saved 8 % of its size.
    zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype, fill_value=0, overwrite=True,
                      config={"write_empty_chunks": True}, **({"compressors": None} if work else {}))
    return path


def _batch_slices(x4):
    ends = np.cumsum((0,) + tuple(x4.chunks[0]))
    return [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]


def _run(tasks, scheduler):
    """Run the delayed ``tasks`` (one graph) on dask's active scheduler, or ``scheduler``."""
    import dask
    if scheduler is not None:
        return dask.compute(*tasks, scheduler=scheduler)
    return dask.compute(*tasks)


@contextlib.contextmanager
def _workspace(target, overwrite, store, who):
    """A work folder and a temporary result store beside ``target``; renamed into place if the body succeeds, the
    work folder removed either way."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise UserInputError(f"{who}: {str(target)!r} exists; pass overwrite=True to replace it")
    if not target.parent.is_dir():
        raise InputFileNotFoundError(f"{who}: the folder {str(target.parent)!r} does not exist")
    if store is not None and not Path(store).is_dir():
        raise InputFileNotFoundError(f"{who}: store must be an existing folder, got {str(store)!r}")
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".work", dir=str(store or target.parent)))
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield work, tmp
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        _remove_settled(work, tmp)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_settled(*paths, quiet: float = 0.5, limit: float = 10.0) -> None:
    """Remove ``paths`` and keep removing them until none has come back for ``quiet`` seconds (``limit`` at most).
    After a failed task, dask has raised while the graph's other running tasks go on (dask's threads, a cluster's
    workers) and may write chunks into the stores again, making their folders anew."""
    end, calm = time.monotonic() + limit, None
    while time.monotonic() < end:
        if any(p.exists() for p in paths):
            for p in paths:
                shutil.rmtree(p, ignore_errors=True)
            calm = None
        elif calm is None:
            calm = time.monotonic()
        elif time.monotonic() - calm >= quiet:
            return
        time.sleep(0.05)


def _output_store(tmp, x, lead, x4):
    """The result's store in the caller's shape, chunked as the blocks."""
    chunks = tuple(int(max(c)) for c in x4.chunks)
    return _create(tmp, x.shape, chunks[2 - lead:], x4.dtype, work=False)


def _user_region(lead, bslice, block):
    region = (bslice, slice(None)) + tuple(slice(lo, hi) for lo, hi in block)
    return region[2 - lead:]


def _check_edges(shape, edges, depth, who):
    """The halo must fit in the smallest block (the blocks are the largest chunk along each axis, the last one the
    remainder), as dask's overlap asks of the chunks."""
    for k, (n, e) in enumerate(zip(shape, edges)):
        sizes = np.diff(block_cuts(n, e, False)) if n > e else [n]
        if len(sizes) > 1 and depth > min(sizes):
            raise UserInputError(f"{who}: the halo of {depth} pixels is wider than the smallest block "
                                 f"({min(sizes)} pixels along axis {k} of the image): use larger chunks, chunks "
                                 f"that divide the image, or a smaller overlap")


#: In a dask worker a ROF store task (a few arrays, none per iteration) maps its allocations of at least this many
#: bytes (:func:`~pdeflow.allocator.map_large_allocations`), so the worker holds what its task holds; after it, up
#: to :data:`HEAP_BYTES` come from the heap again (inpainting solvers allocate every iteration: mappings would
#: double EED's CPU time). Tasks in the caller's process leave its allocator alone.
MAPPED_BYTES = 1 << 18
HEAP_BYTES = 32 << 20      # glibc's largest mmap threshold


def _in_worker() -> bool:
    try:
        from distributed import get_worker
        get_worker()
    except (ImportError, ValueError):
        return False
    return True


def _task(mapped: bool):
    """A store task: a worker's memory is what its task holds, not what the tasks before it left fragmented: in a
    dask worker its large arrays are their own memory mappings where ``mapped`` (:data:`MAPPED_BYTES`), and the
    heap hands its free pages back after it (:func:`~pdeflow.allocator.release_free_memory`; the guide "Large
    images and many images" has the numbers)."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            mapping = mapped and _in_worker()
            if mapping:
                map_large_allocations(MAPPED_BYTES)
            try:
                return fn(*args, **kwargs)
            finally:
                if mapping:
                    map_large_allocations(HEAP_BYTES)
                release_free_memory()
        return run
    return wrap


# --- ROF ---------------------------------------------------------------------------------------------------------


@_task(mapped=True)
def _rof_step(fpath, pin, pout, bslice, block, shape, *, lam, C, tol, max_iter, budget, staggered=None, reach=None):
    """A block's step (:func:`pdeflow.dask.rof_blocks.solve_dual_block`); ``staggered``: (the staggered axes, the
    unshifted cuts) of a staggered step's block, which solves its band around the seams
    (:func:`pdeflow.dask.rof_blocks.seam_band`)."""
    grown, faces = _grow(block, shape, 1)
    # the duals in the store's dtype: the solve runs its float32 phase in place and makes its float64 iterate after
    fb, pb = _read(fpath, bslice, grown), _read(pin, bslice, grown)
    band = {} if staggered is None else dict(seam_band(*staggered, [(g.start, g.stop) for g in grown], faces),
                                             reach=reach[bslice])
    pn = solve_dual_block(fb, pb, faces=faces, lam=lam, C=C, tol=tol, max_iter=max_iter, overwrite=True,
                          budget=None if budget is None else budget[bslice], **band)
    _write(pout, bslice, block, pn[(slice(None), slice(None)) + _own(faces, pn.shape[2:])])
    return 0


@_task(mapped=True)
def _rof_coarse_start(cpath, ppath, bslice, blocks, shape, *, lam, factor, C):
    """The coarse start of the images ``bslice`` (their coarse data in the store ``cpath``) written into the dual
    store, block by block."""
    nd = len(shape)
    pc = coarse_dual(_read(cpath, bslice, [slice(0, n) for n in _open(cpath).shape[2:]]), lam=lam, nd=nd, C=C)
    for block in blocks:
        _write(ppath, bslice, block, prolonged(pc, block, factor, shape, nd, C))


@_task(mapped=True)
def _rof_gap(fpath, ppath, bslice, block, shape, *, lam, C, tied):
    grown, faces = _grow(block, shape, 1)
    fb, pb = _read(fpath, bslice, grown), _read(ppath, bslice, grown)
    s = gap_sums(fb, pb, faces=faces, lam=lam, C=C, tied=tied)
    return bslice.start, s.reshape(s.shape[0], 2)


@_task(mapped=True)
def _rof_primal(fpath, ppath, out, lead, bslice, block, shape, *, lam, C):
    grown, faces = _grow(block, shape, 1)
    fb, pb = _read(fpath, bslice, grown), _read(ppath, bslice, grown)
    u = primal_block(fb, pb, faces=faces, lam=lam, C=C)
    own = u[(slice(None), slice(None)) + _own(faces, u.shape[2:])]
    _open(out)[_user_region(lead, bslice, block)] = own[(0,) * (2 - lead)]
    return 0


def rof_to_zarr(f, lam, target, *, accuracy: float | None = None, tol: float | None = None, max_sweeps: int = 30,
                max_iter: int = 20000, ndim: int | None = None, store=None, overwrite: bool = False,
                scheduler=None) -> StoreResult:
    """:func:`pdeflow.dask.rof` of ``f`` into the zarr store ``target``, the iterate in zarr between steps (eager).

    Parameters
    ----------
    f, lam, accuracy, tol, max_sweeps, max_iter, ndim
        As :func:`pdeflow.dask.rof` (the images' ranges for ``accuracy`` are found as ``f`` is copied to the work
        store).
    target : str or Path
        The result's store (the shape and dtype of ``f``).
    store : str or Path, optional
        An existing folder for the work stores (default: beside ``target``).
    overwrite : bool
        Replace an existing ``target``.
    scheduler : optional
        A dask scheduler (default: the active one).

    Returns
    -------
    StoreResult

    Raises
    ------
    pdeflow.errors.UserInputError
        Bad arguments; a chunk of ``f`` holding NaN or an infinity (found as ``f`` is copied to the work store,
        before any solve; the message names the element and its chunk); a chunk of a store read by
        :func:`pdeflow.io.read_zarr` that is missing or cannot be decoded. ``target`` is then not written.

    Warns
    -----
    pdeflow.tv.ConvergenceWarning
        The sweeps ran out (``max_sweeps``) before meeting ``accuracy`` or ``tol`` (``target`` is written all the
        same).

    Examples
    --------
    >>> import tempfile, dask.array as da, numpy as np, torch
    >>> import pdeflow.dask
    >>> from pdeflow.tv import rof
    >>> x = np.random.default_rng(0).random((24, 24))
    >>> r = pdeflow.dask.rof_to_zarr(da.from_array(x, chunks=12), 0.1, tempfile.mkdtemp() + "/u.zarr",
    ...                              scheduler="sync")
    >>> ref = rof(torch.from_numpy(x), 0.1, tol=1e-12).numpy()
    >>> bool(np.sqrt(((r.u.compute() - ref) ** 2).mean()) <= 2.5e-4 * np.ptp(x))
    True
    """
    who = "pdeflow.dask.rof_to_zarr"
    da = import_dask()
    import dask

    nd = check_ndim(ndim)
    f4, lead = as_batched(f, "f", nd, who)
    f4 = checked_finite(f4, "f", who, lead)       # checked as the input is copied to the work store: read once
    lam = check_positive(lam, "lam", who, zero=True)
    rule = stopping(accuracy, tol, who, ACCURACY)
    max_sweeps = check_max_sweeps(max_sweeps, who)
    C, shape = f4.shape[1], tuple(f4.shape[2:])
    edges = [max(2, int(max(c)) // 2 * 2) if len(c) > 1 else int(sum(c)) for c in f4.chunks[2:]]
    split = [len(c) > 1 for c in f4.chunks[2:]]
    half = tuple(e // 2 if s else e for e, s in zip(edges, split))
    bchunk = int(max(f4.chunks[0]))
    with _workspace(target, overwrite, store, who) as (work, tmp):
        # each dask chunk a block, written whole into its half-block store chunks: a rechunk to the store's
        # chunks would be a graph of several tasks per block, whose bookkeeping stays in a worker's heap
        fpath = _create(work / "f.zarr", f4.shape, (bchunk, C) + half, f4.dtype)
        copy = da.store(f4.rechunk((bchunk, C) + tuple(edges)), _open(fpath), lock=False, compute=False)
        # the images' ranges and the coarse start's data (a store: each task reads its images') in one pass
        factor = coarse_factor(f4) if lam > 0.0 else 1
        coarse = None
        if factor > 1:
            fc = coarse_data(da, f4, factor, nd).rechunk({0: bchunk})
            coarse = _create(work / "coarse.zarr", fc.shape, (bchunk, C) + fc.shape[2:], f4.dtype)
            copy = [copy, da.store(fc, _open(coarse), lock=False, compute=False)]
        _, ranges = dask.compute(copy, image_ranges(f4), **({"scheduler": scheduler} if scheduler is not None else {}))
        budget, reach = rule.budget(ranges), band_reach(ranges, lam)
        pchunks = (bchunk, C * nd) + half
        stores = [_create(work / f"p{k}.zarr", (f4.shape[0], C * nd) + shape, pchunks, f4.dtype) for k in (0, 1)]
        bslices = _batch_slices(f4.rechunk({0: bchunk}))
        grids, staggered = [], []
        for shifted in itertools.product((False, True), repeat=sum(split)):
            it = iter(shifted)
            flags = tuple(bool(next(it)) if s else False for s in split)
            grids.append([block_cuts(n, e, f) if s else [0, n] for n, e, s, f in zip(shape, edges, split, flags)])
            staggered.append((flags, grids[0]) if any(flags) else None)
        regular = _blocks(shape, grids[0])
        cur, sweeps, crit, done = 0, 0, float("inf"), lam == 0.0
        if done:
            crit = 0.0
        delayed = dask.delayed(pure=False)
        if coarse is not None:
            _run([delayed(_rof_coarse_start)(coarse, stores[0], b, regular, shape, lam=lam / factor,
                                             factor=factor, C=C) for b in bslices], scheduler)
        while not done and sweeps < max_sweeps:
            sweeps += 1
            for k, cuts in enumerate(grids):
                nxt = 1 - cur
                tasks = [delayed(_rof_step)(fpath, stores[cur], stores[nxt], b, blk, shape, lam=lam, C=C,
                                            tol=rule.block_tol(sweeps - 1, k, len(grids)), max_iter=max_iter,
                                            budget=budget, staggered=staggered[k], reach=reach)
                         for b in bslices for blk in _blocks(shape, cuts)]
                _run(tasks, scheduler)
                cur = nxt
            parts = _run([delayed(_rof_gap)(fpath, stores[cur], b, blk, shape, lam=lam, C=C, tied=rule.tied)
                          for b in bslices for blk in regular], scheduler)
            sums = np.zeros((f4.shape[0], 2))
            for start, s in parts:
                sums[start:start + s.shape[0]] += s
            crit = rule.criterion(sums, C * int(np.prod(shape)), ranges)
            done = rule.met(crit)
            if np.isnan(crit):          # never meets its target: the sweeps left would run for nothing
                break
        if not done:
            warn_short(who, crit, rule.target, max_sweeps, rule.measure, rule.name)
        _output_store(tmp, f, lead, f4.rechunk({0: bchunk}))
        _run([delayed(_rof_primal)(fpath, stores[cur], tmp, lead, b, blk, shape, lam=lam, C=C)
              for b in bslices for blk in regular], scheduler)
    from ..io import read_zarr
    return StoreResult(Path(target), read_zarr(target), sweeps, crit, bool(done))


# --- inpainting --------------------------------------------------------------------------------------------------


@_task(mapped=False)
def _ip_sweep(fpath, mpath, uin, uout, bslice, block, shape, depth, *, first, span, measure, correction=None,
              coarse=None, **kw):
    grown, faces = _grow(block, shape, depth)
    if correction is not None:
        kw.update(correction=correction[bslice], coarse=coarse, region=_batch_region(bslice, grown))
    fb, mb = _read(fpath, bslice, grown), _read(mpath, bslice, grown)
    ub = fb
    if not first:
        # one array for the data and the iterate: the data on the mask, the iterate elsewhere (a solve reads
        # its data on the mask only and its start off it), so the task holds two arrays of the block, not three
        ub = _read(uin, bslice, grown)
        np.copyto(ub, fb, where=mb > 0)
        fb = ub
    sb = None if span is None else span[bslice]
    new = solve_block(fb, mb, ub, faces=faces, first=first, span=sb, owned=True, **kw)
    del fb, mb, ub          # the solve may have overwritten them
    own = (slice(None), slice(None)) + _own(faces, new.shape[2:])
    new = new[own]
    _write(uout, bslice, block, new)
    if measure == "change" and not first:
        # the iterate before the sweep, read again: the solve may have run in its memory
        old = _read(uin, bslice, tuple(slice(lo, hi) for lo, hi in block))
        d = np.abs(new.astype(np.float64) - old).reshape(new.shape[0], -1).max(axis=1)
        return bslice.start, d
    return bslice.start, None


@_task(mapped=False)
def _ip_residual(upath, mpath, fpath, bslice, block, shape, coarse=None):
    grown, faces = _grow(block, shape, 1)
    s = residual_sums(_read(upath, bslice, grown), _read(mpath, bslice, grown), _read(fpath, bslice, grown),
                      faces=faces, coarse=coarse, region=_batch_region(bslice, grown))
    return bslice.start, s.reshape(s.shape[0], -1)


@_task(mapped=False)
def _ip_probes(mpath, bslice, block, shape, coarse):
    grown, faces = _grow(block, shape, 1)
    return bslice.start, coarse.operator_part(_read(mpath, bslice, grown), faces, _batch_region(bslice, grown))


def _batch_region(bslice, grown):
    """A grown block's extent as a (lo, hi) per batch and spatial axis."""
    return ((bslice.start, bslice.stop),) + tuple((g.start, g.stop) for g in grown)


@_task(mapped=False)
def _ip_output(upath, out, lead, bslice, block, lo, hi):
    u = _read(upath, bslice, tuple(slice(a, b) for a, b in block))
    if lo is not None:
        u = np.minimum(np.maximum(u, lo[bslice]), hi[bslice]).astype(u.dtype, copy=False)
    _open(out)[_user_region(lead, bslice, block)] = u[(0,) * (2 - lead)]
    return 0


def inpaint_to_zarr(x, mask, target, method: str = "diffusion", *, tol: float = 1e-6, overlap: int = 16,
                    max_sweeps: int = 30, local_tol: float | None = None, ndim: int | None = None, store=None,
                    overwrite: bool = False, scheduler=None, **options) -> StoreResult:
    """:func:`pdeflow.dask.inpaint` of ``x`` into the zarr store ``target``, the iterate in zarr between sweeps
    (eager).

    Parameters
    ----------
    x, mask, method, tol, overlap, max_sweeps, local_tol, ndim, **options
        As :func:`pdeflow.dask.inpaint`.
    target, store, overwrite, scheduler
        As :func:`rof_to_zarr`.

    Returns
    -------
    StoreResult

    Raises
    ------
    pdeflow.errors.UserInputError
        As :func:`rof_to_zarr`: here ``x`` must be finite where ``mask`` is known.

    Warns
    -----
    pdeflow.tv.ConvergenceWarning
        The sweeps ran out before the stopping measure met ``tol``.

    Examples
    --------
    >>> import tempfile, dask.array as da, numpy as np, torch
    >>> import pdeflow.dask
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> rng = np.random.default_rng(0)
    >>> x, m = rng.random((32, 32)), (rng.random((32, 32)) < 0.1).astype(float)
    >>> r = pdeflow.dask.inpaint_to_zarr(da.from_array(x, chunks=16), m, tempfile.mkdtemp() + "/u.zarr",
    ...                                  overlap=4, tol=1e-9, scheduler="sync")
    >>> ref = inpaint_diffusion(torch.from_numpy(x), torch.from_numpy(m), tol=1e-12).numpy()
    >>> bool(abs(r.u.compute() - ref).max() < 1e-6)
    True
    """
    who = "pdeflow.dask.inpaint_to_zarr"
    da = import_dask()
    import dask

    op, x4, lead, m4, tol, max_sweeps, ltol = checked_arguments(da, x, mask, method, tol, overlap, max_sweeps,
                                                                local_tol, ndim, who)
    reach = op.reach(options)
    local = op.local
    depth = int(overlap) + (0 if local else reach)
    shape = tuple(x4.shape[2:])
    edges = [int(max(c)) for c in x4.chunks[2:]]
    _check_edges(shape, edges, depth, who)
    bchunk = int(max(x4.chunks[0]))
    x4 = x4.rechunk({0: bchunk})
    zchunks = (bchunk, 1) + tuple(edges)
    zchunks_x = (bchunk, x4.shape[1]) + tuple(edges)
    kw_sched = {"scheduler": scheduler} if scheduler is not None else {}
    with _workspace(target, overwrite, store, who) as (work, tmp):
        fpath, mpath = work / "f.zarr", work / "m.zarr"
        f4 = checked_finite(da.where(m4 > 0, x4, 0).astype(x4.dtype), "x (where mask is known)", who, lead)
        known = da.where(m4 > 0, f4, np.nan)
        axes = tuple(range(1, x4.ndim))
        lo_all, hi_all = da.nanmin(known, axis=axes, keepdims=True), da.nanmax(known, axis=axes, keepdims=True)
        writes = [da.to_zarr(f4.rechunk(zchunks_x), str(fpath), overwrite=True, compute=False),
                  da.to_zarr(m4.rechunk(zchunks), str(mpath), overwrite=True, compute=False)]
        _, _, lo_img, hi_img = dask.compute(*writes, lo_all, hi_all, **kw_sched)
        lo_img, hi_img = np.asarray(lo_img, dtype=np.float64), np.asarray(hi_img, dtype=np.float64)
        scale = max(float(np.nanmax(hi_img) - np.nanmin(lo_img)), np.finfo(np.float64).tiny)
        span = (hi_img - lo_img) if op.relative is not None else None
        stores = [_create(work / f"u{k}.zarr", x4.shape, zchunks_x, x4.dtype) for k in (0, 1)]
        cuts = [block_cuts(n, e, False) if n > e else [0, n] for n, e in zip(shape, edges)]
        blocks = _blocks(shape, cuts)
        bslices = _batch_slices(x4)
        delayed = dask.delayed(pure=False)
        kw = dict(op=op, reach=reach, tol=ltol, options=options)
        measure = op.measure

        def run_sweep(uin, uout, first, correction=None):
            return _run([delayed(_ip_sweep)(fpath, mpath, uin, uout, b, blk, shape, depth if not local else overlap,
                                            first=first, span=span, measure=measure, correction=correction,
                                            coarse=coarse, **kw)
                         for b in bslices for blk in blocks], scheduler)

        coarse = coarse_grid(op, options, [[b - a for a, b in zip(c[:-1], c[1:])] for c in cuts])
        if coarse is not None:      # the coarse operator's probes, once: its mask does not change
            probes = np.zeros((x4.shape[0], coarse.probes) + coarse.nodes)
            for start, p in _run([delayed(_ip_probes)(mpath, b, blk, shape, coarse) for b in bslices
                                  for blk in blocks], scheduler):
                probes[start:start + p.shape[0]] += p
        run_sweep(None, stores[0], True)
        cur, sweeps, crit, done, correction = 0, 1, float("inf"), local, None
        if local:
            crit = 0.0
        while not done and sweeps < max_sweeps:
            sweeps += 1
            parts = run_sweep(stores[cur], stores[1 - cur], False, correction)
            cur = 1 - cur
            if measure == "residual":
                parts = _run([delayed(_ip_residual)(stores[cur], mpath, fpath, b, blk, shape, coarse)
                              for b in bslices for blk in blocks], scheduler)
                sums = np.zeros((x4.shape[0], parts[0][1].shape[1]))
                for start, s in parts:
                    sums[start:start + s.shape[0]] += s
                crit = float(np.sqrt(sums[:, 0] / np.maximum(sums[:, 1], np.finfo(np.float64).tiny)).max())
                if coarse is not None:
                    rhs = sums[:, 2:].reshape((x4.shape[0], x4.shape[1]) + coarse.nodes)
                    correction = coarse_solve(probes, rhs, coarse.nodes)
            else:
                crit = max(float(d.max()) for _, d in parts) / scale
            done = crit <= tol
            if np.isnan(crit):
                break
        if not done:
            warn_short(who, crit, tol, max_sweeps, "relative residual" if measure == "residual"
                       else "largest change of a sweep (relative to the data's range)")
        clip = op.clips(options)
        _output_store(tmp, x, lead, x4)
        _run([delayed(_ip_output)(stores[cur], tmp, lead, b, blk, lo_img if clip else None,
                                  hi_img if clip else None) for b in bslices for blk in blocks], scheduler)
    from ..io import read_zarr
    return StoreResult(Path(target), read_zarr(target), sweeps, crit, bool(done))
