"""ROF and the TV flow on dask arrays: overlapping domain decomposition of the dual problem.

The problem is that of :func:`pdeflow.tv.rof`, ``argmin_u 1/2 ||u - f||^2 + lam TV(u)`` with the discrete TV of
:mod:`pdeflow.ops`, solved through its dual ``min ||f + lam div p||^2`` over ``|p| <= 1`` pixelwise (Chambolle
2004), with ``u = f + lam div p``.

**Decomposition.** The unknown is the dual field ``p``, one vector per pixel. Its pixels are split into blocks
in ``2^k`` ways (``k`` the spatial axes with several chunks): the chunks, and the chunks staggered by half a chunk
along every combination of those axes, so that the decompositions overlap by half a chunk and every pixel is
inside a block of one of them. A sweep visits the decompositions in turn; in each, every block minimises the
dual objective over its own pixel duals with all others held (the exact subproblem: the held duals enter
through ``div p`` on the block's faces, and a block's duals on its last slab, the edges into the next block,
are held too, so the blocks of one decomposition are independent and are solved at once, one task per block).
This is multiplicative Schwarz, i.e. block coordinate descent on the dual (Chang, Tai, Wang and Yang,
"Convergence rate of overlapping domain decomposition methods for the Rudin-Osher-Fatemi model based on a dual
formulation", 2015, analyse this splitting): the dual objective never increases, and it converges to the
minimum (Tseng, "Convergence of a block coordinate descent method for nondifferentiable minimization", 2001:
the objective is smooth and the constraint separates over the blocks). A step is one layer of tasks, one per block,
each gathering its block of the dual field, grown by the halo, from the previous step's blocks (the half chunks
move between tasks); no scheduler of our own. After the first, a staggered step solves only a band around the
seams its blocks straddle (:mod:`pdeflow.dask.rof_blocks`: its half-width grows with ``lam`` over the image's
range, from a few pixels to the whole block), where the step before left its error; every pixel is
still inside a block of the chunks' step, which each sweep starts with.

**Subdomain solver.** A block's subproblem holds the duals around it. The public :func:`pdeflow.tv.rof`
cannot pose that: its dual field has Neumann conditions at the far faces (the normal component zero, the
tangential one free), and restricted additive Schwarz with it as the subdomain solver settles at a wrong fixed
point near every seam. Each subproblem is therefore solved by :func:`pdeflow.tv.subdomain.solve_subdomain` (fast
gradient projection on the block's dual, warm-started from the current duals; float64 blocks iterate in float32
and are certified, and where needed finished, in float64) to a relative duality gap of the
subproblem of ``tol / 3`` (:func:`step_tol`: ``tol`` in the first step, whose solves from zero duals are the
longest, where later steps revisit every pixel), or with ``accuracy`` to its share of the image's gap budget
(:class:`Stopping`); a block whose warm start already meets it is not iterated.

**Convergence.** After every sweep a dask reduction computes the global duality gap of ``(u, p)`` (the certificate
:func:`pdeflow.tv.duality_gap` computes on one array, here summed over chunks); the iteration stops when it
certifies every image's ``accuracy`` (an RMS error ``sqrt(2 (P - D) / n)`` of at most that fraction of the image's
range, as :func:`pdeflow.tv.rof`), or with ``tol`` its relative gap ``(P - D) / P``, which bounds ``||u - u*||_2 <=
sqrt(2 tol P(u))``. :func:`tv_flow` solves each step so, to its share of the flow's accuracy. Later sweeps of the
graph then pass their chunks through. The data term makes ROF local (a change of ``f`` moves ``u`` over a distance
that grows with ``lam``), so the sweeps needed grow with ``lam`` relative to the chunk size, not with the number of
chunks. **Coarse start:** the sweeps start from the dual field of the problem on a grid ``2^K`` times coarser
(the smallest ``K`` at which the coarse image is at most a chunk: one task per chunk of the batch axis), solved by
the block solver with every dual free and repeated onto the fine grid, as :func:`pdeflow.tv.rof` starts large
problems (:func:`coarse_start`): it carries ``u`` across flat regions wider than a chunk, which the sweeps would
carry chunk by chunk. The user guide's page "Large images and many images" gives the counts.

**Memory.** A task holds its chunk grown by the halo (``f``, the dual field, the subdomain solver's float32 last
move, of the dual field's size, and ``u``, of the image's; its other scratch is a few rows). The lazy graph also
keeps the iteration's state (arrays of the image's size) in the workers' memory between sweeps;
:func:`pdeflow.dask.rof_to_zarr` keeps it in zarr stores instead, so that a worker's memory is bounded by the chunk
whatever the image size.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserInputError
from ..tv import ACCURACY
from ..tv.rof import COARSE_TOL, check_accuracy, gap_per_value
from ..tv.steps import default_accuracy, flow_steps
from ..tv.subdomain import solve_subdomain
from .arrays import (
    Graph,
    as_batched,
    block_sums,
    check_max_sweeps,
    check_ndim,
    check_positive,
    checked_finite,
    from_batched,
    import_dask,
    spatial_depth,
    sweep,
    warned_if_short,
)
from .rof_blocks import band_reach, gap_sums, primal_block, seam_band, solve_dual_block

# the coarse start's tasks are what pdeflow.dask.stream runs too (not in the API)
__all__ = ["rof", "tv_flow", "SchwarzResult", "Stopping", "shifted_chunks", "step_tol", "ROF_TOL"]


@dataclass
class SchwarzResult:
    """The lazy outcome of a decomposed solve; ``dask.compute(r.u, r.sweeps, r.criterion)`` computes them together.

    Attributes
    ----------
    u : dask array
        The solution, in the shape of the input.
    sweeps : 0-d dask array of int
        Schwarz sweeps the iteration took (for :func:`tv_flow`: summed over the time steps).
    criterion : 0-d dask array of float
        The stopping measure after the last sweep: the largest relative duality gap of the images
        (:func:`rof`), the relative residual or the largest change of the last sweep
        (:func:`pdeflow.dask.inpaint`).
    converged : 0-d dask array of bool
        Whether ``criterion`` met the tolerance within ``max_sweeps``.

    Examples
    --------
    >>> import dask, dask.array as da, numpy as np
    >>> import pdeflow.dask
    >>> f = da.from_array(np.tile(np.repeat([0.0, 1.0], 8), (16, 1)), chunks=8)
    >>> r = pdeflow.dask.rof(f, 0.5, full_output=True)
    >>> u, sweeps, ok = dask.compute(r.u, r.sweeps, r.converged, scheduler="sync")
    >>> u.shape, bool(ok)
    ((16, 16), True)
    """

    u: object
    sweeps: object
    criterion: object
    converged: object


#: The relative duality gap of the exact answer of :func:`rof` and :func:`pdeflow.dask.rof_to_zarr` (a tenth of
#: :func:`pdeflow.tv.rof`'s ``tol=1e-6``: the largest errors of a decomposed solve are at the seams between
#: blocks; the user guide's page "Large images and many images" has the accuracy it gives).
ROF_TOL = 1e-7


@dataclass(frozen=True)
class Stopping:
    """When a decomposed ROF solve stops, after a sweep: the certified root-mean-square error of every image at most
    ``accuracy`` times its range (as :func:`pdeflow.tv.rof`'s ``accuracy``), or, with ``tol``, its relative duality
    gap ``(P - D) / P`` at most ``tol``. Both come from the global duality gap (1-strong convexity:
    ``||u - u*||^2 <= 2 (P - D)``), a dask reduction over the chunks.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.dask.tv import Stopping
    >>> rule = Stopping(accuracy=1e-3)
    >>> sums = np.array([[2e-4, 5.0]])               # gap and primal energy of one image of 400 values
    >>> float(rule.criterion(sums, values=400, ranges=np.array([1.0])))   # RMS error bound: sqrt(2 gap / n)
    0.001
    >>> rule.met(0.001), rule.measure
    (True, 'certified RMS error (a fraction of the range)')
    """

    accuracy: float | None = None
    tol: float | None = None

    @property
    def target(self) -> float:
        return self.tol if self.tol is not None else self.accuracy

    @property
    def name(self) -> str:
        """The argument that sets it, as a warning names it."""
        return "tol" if self.tol is not None else "accuracy"

    @property
    def measure(self) -> str:
        return "relative duality gap" if self.tol is not None else "certified RMS error (a fraction of the range)"

    @property
    def tied(self) -> bool:
        """Whether the global gap may be that of the candidate tied on the dual's flat regions (with ``accuracy``,
        as :func:`pdeflow.tv.rof`; ``tol`` is the relative gap of ``u`` itself)."""
        return self.tol is None

    def budget(self, ranges: np.ndarray) -> np.ndarray | None:
        """Per image, the duality gap per value that ``accuracy`` allows, ``(accuracy range)^2 / 2`` (None with
        ``tol``): a block's subproblem is solved to a share of it in proportion to its values."""
        return None if self.tol is not None else gap_per_value(self.accuracy, np.asarray(ranges, np.float64))

    def criterion(self, sums: np.ndarray, values: int, ranges: np.ndarray | None) -> float:
        """The largest stopping measure over the images of ``sums`` (per image: gap, primal energy), ``values`` per
        image (channels times pixels), ``ranges`` per image (needed with ``accuracy``)."""
        gap, primal = sums[:, 0], sums[:, 1]
        if self.tol is not None:
            return float((gap / np.maximum(primal, np.finfo(np.float64).tiny)).max())
        rms = np.sqrt(2.0 * np.maximum(gap, 0.0) / values)
        # a constant image (range 0) has met any accuracy once its gap is 0 (it is at once: u = f)
        rel = np.where(rms > 0, rms / np.maximum(np.asarray(ranges, np.float64), np.finfo(np.float64).tiny), 0.0)
        return float(np.where(np.isnan(gap), np.nan, rel).max())

    def met(self, criterion) -> bool:
        return bool(criterion <= self.target)

    def block_tol(self, sweep: int, step: int, steps: int) -> float:
        """What a block of step ``step`` of sweep ``sweep`` solves to: with ``tol`` the relative gap of
        :func:`step_tol`; with ``accuracy`` the fraction of its share of the budget (:meth:`budget`), :func:`step_tol`
        of 1: all of it in the first step, a third in the later ones. Blocks that each meet their whole share can
        leave the image's gap above the budget (the seams add to it) and then stop iterating (the user guide's page
        "Large images and many images" compares the two)."""
        return step_tol(1.0 if self.tol is None else self.tol, sweep, step, steps)


def stopping(accuracy, tol, who: str, default: float) -> Stopping:
    """The :class:`Stopping` of a call's ``accuracy`` and ``tol`` (``tol`` wins; neither: ``default`` accuracy),
    checked."""
    if tol is not None:
        return Stopping(tol=check_positive(tol, "tol", who))
    try:
        return Stopping(accuracy=check_accuracy(default if accuracy is None else accuracy))
    except UserInputError as err:
        raise UserInputError(f"{who}: {err}") from None


def image_ranges(f4):
    """The range (max - min) of every image of a batched dask array, float64, lazy, shape (B,)."""
    axes = tuple(range(1, f4.ndim))
    return (f4.max(axis=axes).astype(np.float64) - f4.min(axis=axes).astype(np.float64))
def shifted_chunks(chunks: tuple) -> tuple:
    """The chunks of the staggered decomposition along one axis: boundaries at the middles of ``chunks``.

    Examples
    --------
    >>> from pdeflow.dask.tv import shifted_chunks
    >>> shifted_chunks((8, 8, 8))
    (4, 8, 8, 4)
    >>> shifted_chunks((10,))
    (10,)
    """
    if len(chunks) == 1:
        return tuple(chunks)
    ends = np.cumsum((0,) + tuple(chunks))
    cuts = [0] + [int(a + c // 2) for a, c in zip(ends[:-1], chunks) if c // 2 > 0] + [int(ends[-1])]
    return tuple(int(b - a) for a, b in zip(cuts[:-1], cuts[1:]) if b > a)


def _check_common(f, lam, max_sweeps, ndim, who, *, names=("f", "lam")):
    da = import_dask()
    nd = check_ndim(ndim)
    f4, lead = as_batched(f, names[0], nd, who)
    f4 = checked_finite(f4, names[0], who, lead)
    lam = check_positive(lam, names[1], who, zero=True)
    max_sweeps = check_max_sweeps(max_sweeps, who)
    return da, nd, f4, lead, lam, max_sweeps


def _dual_zeros(da, f4, C, nd):
    return da.zeros((f4.shape[0], C * nd) + f4.shape[2:], dtype=f4.dtype,
                    chunks=(f4.chunks[0], (C * nd,)) + f4.chunks[2:])


#: A decomposed solve starts from the dual field of the problem on a grid ``2^K`` times coarser, solved in one task
#: per chunk of the batch axis, with ``K`` the smallest level at which the coarse image has at most this many
#: times the pixels of the largest chunk (its solve holds what a block's does).
COARSE_CHUNKS = 1


def coarse_factor(f4) -> int:
    """``2^K`` for :func:`coarse_start` (1: the image is one chunk, nothing to start from)."""
    if all(len(c) == 1 for c in f4.chunks[2:]):
        return 1
    spatial = f4.shape[2:]
    largest = int(np.prod([max(c) for c in f4.chunks[2:]]))
    factor = 1
    while np.prod([-(-n // factor) for n in spatial]) > COARSE_CHUNKS * largest:
        factor *= 2
    return factor


def coarse_dual(fcb, *, lam, nd, C):
    """The task of :func:`coarse_start`: the dual field of the coarse block ``fcb`` (b, C, *Sc) as a (b, C nd, *Sc)
    block in its dtype, the whole coarse problem solved to :data:`pdeflow.tv.rof.COARSE_TOL` (as rof's own coarse
    start) by the block solver with every dual free, which holds what a block's solve holds."""
    f = torch.from_numpy(np.ascontiguousarray(fcb))
    p = torch.zeros((f.shape[0], C, nd) + tuple(f.shape[2:]), dtype=f.dtype)
    everything = (slice(None),) * nd
    # a constant image keeps its zero duals (its gap is 0 at the start), which its certificate asks for
    p = solve_subdomain(f, p, lam, torch.ones(f.shape[2:], dtype=torch.bool), everything, tol=COARSE_TOL,
                        overwrite=True)
    return p.reshape(f.shape[0], C * nd, *f.shape[2:]).numpy()


def prolonged(pcb, region, factor, shape, nd, C):
    """The block ``region`` (a (start, stop) per spatial axis of an image of ``shape``) of the coarse dual field
    ``pcb`` repeated ``factor`` times along every spatial axis, with the duals of the edges out of the image zero
    (the dual field's Neumann faces, as :func:`pdeflow.tv.rof` holds them)."""
    lo = [a // factor for a, _ in region]
    hi = [-(-b // factor) for _, b in region]
    q = pcb[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in zip(lo, hi))]
    for axis in range(nd):
        q = np.repeat(q, factor, axis=2 + axis)
    q = q[(slice(None), slice(None)) + tuple(slice(a - factor * l0, b - factor * l0)
                                               for (a, b), l0 in zip(region, lo))]
    q = np.array(q, copy=True)
    for k, ((_, b), n) in enumerate(zip(region, shape)):
        if b == n:                     # the block holds the image's last slab along axis k
            index = [slice(None)] * q.ndim
            index[1] = slice(k, C * nd, nd)
            index[2 + k] = slice(-1, None)
            q[tuple(index)] = 0
    return q


def coarse_data(da, f4, factor, nd):
    """The ``factor``-cell means of ``f4`` (its far faces padded by their edge values), lazy, one chunk per chunk of
    its batch axis."""
    padded = da.pad(f4, [(0, 0), (0, 0)] + [(0, (-n) % factor) for n in f4.shape[2:]], mode="edge")
    fc = da.coarsen(np.mean, padded, {2 + k: factor for k in range(nd)}).astype(f4.dtype)
    return fc.rechunk({1: -1, **{2 + k: -1 for k in range(nd)}})


def coarse_start(da, g, f4, lam, C, nd):
    """The dual field a decomposed ROF solve starts from: that of the same problem on the grid
    :func:`coarse_factor` times coarser (``factor``-cell means of ``f4``, its far faces padded by their edge
    values; ``lam`` over ``factor``, the same length on the coarse grid, as :func:`pdeflow.tv.rof.coarse_start`),
    repeated onto the fine grid; zeros where the image is one chunk. The coarse grid carries information across
    flat regions that the sweeps would carry chunk by chunk."""
    factor = coarse_factor(f4)
    if factor == 1 or lam == 0.0:
        return _dual_zeros(da, f4, C, nd)
    from dask.base import tokenize

    spatial = f4.shape[2:]
    fc = coarse_data(da, f4, factor, nd)
    pc = g.keep(fc.map_blocks(coarse_dual, lam=lam / factor, nd=nd, C=C, meta=np.empty((0,) * f4.ndim, f4.dtype),
                              chunks=(fc.chunks[0], (C * nd,)) + fc.chunks[2:]))
    name = f"rof-coarse-start-{tokenize(pc.name, f4.chunks, factor)}"
    starts = [np.concatenate([[0], np.cumsum(c)]) for c in f4.chunks[2:]]
    tasks = {}
    for ib in range(len(f4.chunks[0])):
        for idx in itertools.product(*(range(len(c)) for c in f4.chunks[2:])):
            region = tuple((int(s[i]), int(s[i + 1])) for s, i in zip(starts, idx))
            tasks[(name, ib, 0) + idx] = (prolonged, (pc.name, ib, 0) + (0,) * nd, region, factor,
                                          tuple(spatial), nd, C)
    return g.add(name, tasks, [pc], (f4.chunks[0], (C * nd,)) + f4.chunks[2:],
                 np.empty((0,) * f4.ndim, dtype=f4.dtype))


def _decompositions(f4):
    """The 2^k decompositions (k the spatial axes with several chunks): every combination of the chunks and the
    staggered chunks along those axes, each as (staggered: a flag per spatial axis, its chunks); the chunks first."""
    axes = [k for k in range(2, f4.ndim) if len(f4.chunks[k]) > 1]
    out = []
    for shifted in itertools.product((False, True), repeat=len(axes)):
        chunks, flags = list(f4.chunks), [False] * (f4.ndim - 2)
        for k, s in zip(axes, shifted):
            if s:
                chunks[k] = shifted_chunks(f4.chunks[k])
                flags[k - 2] = True
        out.append((tuple(flags), tuple(chunks)))
    return out


def step_tol(tol: float, sweep: int, step: int, steps: int) -> float:
    """The relative duality gap the subproblems of step ``step`` (of ``steps``) of sweep ``sweep`` (both from 0)
    are solved to: ``tol / 3``, and ``tol`` in the first step of the first sweep when there are later steps. Each
    later step of that sweep has every pixel in one of its blocks, starts from the gap the first leaves and solves
    on to ``tol / 3``, so the first step's last digits of accuracy, the most expensive iterations of the sweep
    (its blocks start from zero duals), would be redone. A third, not the whole: blocks that each meet their whole
    share can leave the image's gap above it (the seams add to it) with no block iterating any more; a tenth costs
    more at the same sweeps (the user guide's "Large images and many images" has both).

    Examples
    --------
    >>> from pdeflow.dask.tv import step_tol
    >>> step_tol(1e-6, 0, 0, 4), step_tol(1e-6, 0, 1, 4), step_tol(1e-6, 0, 0, 1)
    (1e-06, 3.333333333333333e-07, 3.333333333333333e-07)
    """
    return tol if sweep == 0 and step == 0 and steps > 1 else tol / 3.0


def _rof_dual(da, g, f4, p4, lam, *, C, nd, rule: Stopping, max_sweeps, max_iter, ranges=None):
    """The decomposed ROF solve on batched arrays: (p, sweeps, criterion, converged), all lazy, their layers in
    the :class:`~pdeflow.dask.arrays.Graph` ``g``; ``ranges``: the images' ranges the accuracy is a fraction of
    (default those of ``f4``). A step is one layer: its tasks gather their grown block of the
    dual field from the previous step's blocks (the staggered chunks), so no rechunk, overlap or trim layers."""
    done = stop = da.asarray(False)
    sweeps = da.asarray(0)
    crit = da.asarray(np.inf)
    if lam == 0.0:
        return p4, sweeps, da.asarray(0.0), da.asarray(True)
    grids = _decompositions(f4)
    depth = spatial_depth(f4, 1)
    pchunks = [(gr[0], p4.chunks[1]) + gr[2:] for _, gr in grids]
    ends = [list(itertools.accumulate(c, initial=0)) for c in f4.chunks[2:]]
    f4 = g.keep(f4)
    ranges = g.keep(image_ranges(f4)) if ranges is None else ranges
    per_image = (slice(None),) + (None,) * (f4.ndim - 1)
    reach = g.keep(ranges.map_blocks(band_reach, lam=lam, dtype=np.float64)[per_image].rechunk({0: pchunks[0][0]}))
    extra = {}
    if rule.tol is None:
        budget = ranges.map_blocks(rule.budget, dtype=np.float64)[per_image]
        extra = {"budget": g.keep(budget.rechunk({0: pchunks[0][0]}))}
    values = C * int(np.prod(f4.shape[2:]))
    for n in range(max_sweeps):
        for k, ((shifted, _), pc) in enumerate(zip(grids, pchunks)):
            # the staggered steps solve a band around the seams of the chunks (seam_band), the first every pixel
            bands = dict(extra=extra or None)
            if any(shifted):
                bands = dict(per_block=functools.partial(seam_band, shifted, ends), extra={**extra, "reach": reach})
            p4 = sweep(solve_dual_block, [f4, p4], depth, stop, dtype=p4.dtype, like=1, grid=pc, graph=g, lam=lam,
                       C=C, tol=rule.block_tol(n, k, len(pchunks)), max_iter=max_iter, **bands)
        sums = block_sums(gap_sums, [f4, p4], depth, stop, grid=pchunks[0], graph=g, lam=lam, C=C, tied=rule.tied)
        sums = sums.sum(axis=tuple(range(2, f4.ndim)))
        # the state carried to the next sweep, one task (not a dask operation per number)
        sweeps, crit, done, stop = g.apply(_next_state, [rule, values, ranges if rule.tol is None else None, sums,
                                                          crit, stop, sweeps],
                                           (sweeps.dtype, np.float64, bool, bool), "rof-state")
    return p4, sweeps, crit, done


def _next_state(rule, values, ranges, sums, crit, stop, sweeps):
    """The sweep count, the largest stopping measure (:meth:`Stopping.criterion`), converged and stop after a sweep
    (the blocks of the (B, 2) sums, a (gap, primal energy) per image), from the state before it (``stop``: it passed
    through)."""
    sweeps = sweeps + (~stop).astype(int)
    s = np.concatenate([row[0] for row in sums], axis=0)
    r = None if ranges is None else np.concatenate(ranges)
    crit = np.where(stop, crit, rule.criterion(s, values, r))
    done = np.asarray(rule.met(crit))
    stop = done | np.isnan(crit)     # a NaN gap never meets tol: the later sweeps would all run for nothing
    return sweeps, crit, done, stop


def rof(f, lam, *, accuracy: float | None = None, tol: float | None = None, max_sweeps: int = 30,
        max_iter: int = 20000, ndim: int | None = None, full_output: bool = False):
    """:func:`pdeflow.tv.rof` on a dask array: ``argmin_u 1/2 ||u - f||^2 + lam TV(u)``, chunk by chunk.

    Lazy: returns a dask array (nothing runs until it is computed). The answer is the single-array one to the
    accuracy certified by a global duality gap (as :func:`pdeflow.tv.rof` certifies it), reached by overlapping
    domain decomposition of the dual problem with sweeps between neighbouring chunks (the module docstring,
    :mod:`pdeflow.dask.tv`).

    Parameters
    ----------
    f : dask array, shape (H, W), (C, H, W) or (B, C, H, W); with ``ndim=3`` (D, H, W), (C, D, H, W) or
        (B, C, D, H, W)
        Any chunks along the spatial and batch axes (the channel axis becomes one chunk: the TV couples the
        channels); float32 or float64 (other floats are computed in float32). The chunks are the blocks of
        the decomposition (and, staggered by half a chunk, of the second one): their size sets the work and
        memory of a task.
    lam : float
        Regularisation weight, ``>= 0``, in pixels (as :func:`pdeflow.tv.rof`).
    accuracy : float, optional
        Stop when every image's root-mean-square error, certified by the duality gap of the whole image (a dask
        reduction after each sweep), is at most this fraction of the image's range: :func:`pdeflow.tv.rof`'s
        ``accuracy`` and its default, :data:`pdeflow.tv.ACCURACY`.
    tol : float, optional
        Stop at this relative duality gap ``(P - D) / P`` instead (it bounds ``||u - u*||_2 <= sqrt(2 tol
        P(u))``): :data:`ROF_TOL` (1e-7) is the exact minimiser, tighter than :func:`pdeflow.tv.rof`'s
        ``tol=1e-6`` because the largest errors are at the seams between blocks.
    max_sweeps : int
        The graph's sweeps at most (the sweeps after convergence pass their chunks through).
    max_iter : int
        Iterations of each subdomain solve at most.
    ndim : {2, 3}, optional
        3 for volumes.
    full_output : bool
        Return a :class:`SchwarzResult` (``u``, ``sweeps``, ``criterion``: the largest certified RMS error as a
        fraction of the range, or with ``tol`` the largest relative gap, ``converged``) instead of ``u``.

    Returns
    -------
    dask array of the shape and dtype of ``f``, or :class:`SchwarzResult`

    Raises
    ------
    pdeflow.errors.UserInputError
        Bad arguments, at once; when computed, a chunk of ``f`` holding NaN or an infinity (the message names the
        element and its chunk; no solve starts on it).

    Warns
    -----
    pdeflow.tv.ConvergenceWarning
        When computed, if the sweeps ran out (``max_sweeps``) before meeting ``accuracy`` (or ``tol``).

    Examples
    --------
    >>> import dask.array as da, numpy as np, torch
    >>> import pdeflow.dask
    >>> from pdeflow.tv import rof
    >>> x = np.random.default_rng(0).random((24, 24))
    >>> u = pdeflow.dask.rof(da.from_array(x, chunks=12), 0.1)
    >>> u
    dask.array<rof, shape=(24, 24), dtype=float64, chunksize=(12, 12), chunktype=numpy.ndarray>
    >>> ref = rof(torch.from_numpy(x), 0.1, tol=1e-12).numpy()
    >>> bool(np.sqrt(((u.compute(scheduler="sync") - ref) ** 2).mean()) <= 2.5e-4 * np.ptp(x))
    True
    """
    who = "pdeflow.dask.rof"
    da, nd, f4, lead, lam, max_sweeps = _check_common(f, lam, max_sweeps, ndim, who)
    rule = stopping(accuracy, tol, who, ACCURACY)
    C = f4.shape[1]
    g = Graph()
    p4, sweeps, crit, done = _rof_dual(da, g, f4, coarse_start(da, g, f4, lam, C, nd), lam, C=C, nd=nd,
                                       rule=rule, max_sweeps=max_sweeps, max_iter=max_iter)
    u4 = sweep(primal_block, [f4, p4], spatial_depth(f4, 1), False, dtype=f4.dtype, graph=g, lam=lam, C=C)
    u = warned_if_short(from_batched(u4, lead), crit, done, who, rule.target, max_sweeps, rule.measure, rule.name)
    u, sweeps, crit, done = g.finish(u, sweeps, crit, done)
    return SchwarzResult(u, sweeps, crit, done) if full_output else u


def tv_flow(u0, times, *, dt: float | None = None, accuracy: float | None = None, tol: float | None = None,
            max_sweeps: int = 30, max_iter: int = 20000, ndim: int | None = None, full_output: bool = False):
    """:func:`pdeflow.tv.tv_flow` (implicit Euler) on a dask array: one decomposed :func:`rof` per time step.

    Each step ``u_{k+1} = rof(u_k, h)`` is solved as :func:`rof` solves it, warm-started from the previous
    step's dual field (the model-driven approach of :func:`pdeflow.tv.tv_flow`, ``method="implicit"``,
    ``scheme="euler"``), so a step takes few sweeps: its problem is local. The steps and the accuracy are
    :func:`pdeflow.tv.tv_flow`'s (:func:`pdeflow.tv.steps.flow_steps`), so the two answers agree to it.

    Parameters
    ----------
    u0 : dask array
        As ``f`` of :func:`rof`.
    times : sequence of float
        Flow times ``>= 0`` at which to return ``u``.
    dt : float, optional
        Default None: :func:`pdeflow.tv.tv_flow`'s steps, chosen from ``accuracy``, that land on the requested
        times (the smallest positive range of the images sets them; it is computed at once, one pass over
        ``u0``). A float ``> 0``: steps of ``dt``, each time rounded to a whole number of them.
    accuracy : float, optional
        As :func:`pdeflow.tv.tv_flow`'s: without ``dt`` the root-mean-square error at the requested times against
        the exact flow, as a fraction of each image's range (default :data:`pdeflow.tv.STEP_ACCURACY`), half of
        it estimated for the time steps and half certified for the solver; with ``dt`` the solver's alone
        (default :data:`pdeflow.tv.FLOW_ACCURACY`). Each of the ``n`` steps is certified (the duality gap of the
        whole image, as :func:`rof` certifies it) to the solver's share over ``n`` of ``u0``'s range.
    tol : float, optional
        Stop each step at this relative duality gap instead (as :func:`rof`'s ``tol``); no accuracy is then
        certified.
    max_sweeps, max_iter, ndim
        As :func:`rof`, per step.
    full_output : bool
        Return a :class:`SchwarzResult` whose ``sweeps`` are summed over the steps and whose ``criterion`` is the
        largest of any step (certified RMS error over the range, or with ``tol`` the relative gap).

    Returns
    -------
    dask array, shape ``(T,) + u0.shape``, or :class:`SchwarzResult`

    Raises
    ------
    pdeflow.errors.UserInputError
        As :func:`rof` (``u0`` for ``f``), and for bad ``times``, ``dt`` or ``accuracy``.

    Warns
    -----
    pdeflow.tv.ConvergenceWarning
        When computed, if a step's sweeps ran out before it met its accuracy (or ``tol``).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> import pdeflow.dask
    >>> x = da.from_array(np.tile(np.repeat([0.0, 1.0], 8), (16, 1)), chunks=8)
    >>> u = pdeflow.dask.tv_flow(x, [0.0, 0.01])
    >>> u.shape
    (2, 16, 16)
    >>> bool(abs(u[1].compute(scheduler="sync").mean() - 0.5) < 1e-9)   # the mean is conserved
    True
    """
    who = "pdeflow.dask.tv_flow"
    da, nd, f4, lead, _, max_sweeps = _check_common(u0, 1.0 if dt is None else dt, max_sweeps, ndim, who,
                                                    names=("u0", "dt"))
    if dt is not None and float(dt) == 0.0:
        raise UserInputError(f"{who}: dt must be > 0, got 0")
    try:
        ts = [float(t) for t in np.asarray(times, dtype=np.float64).reshape(-1)]
    except (TypeError, ValueError) as err:
        raise UserInputError(f"{who}: times must be a sequence of numbers, got {times!r}") from err
    if not ts or any(not np.isfinite(t) or t < 0 for t in ts):
        raise UserInputError(f"{who}: times must be a non-empty sequence of finite numbers >= 0, got {times!r}")
    sizes, at, rule, read = _flow_plan(f4, ts, dt, accuracy, tol, who)
    C = f4.shape[1]
    g = Graph()
    p4 = coarse_start(da, g, f4, sizes[0], C, nd) if sizes else _dual_zeros(da, f4, C, nd)
    # u0's ranges, of which each step's share is; those the plan read if it did (one pass over u0, not two)
    if rule.tol is not None:
        ranges = None
    elif read is not None:
        ranges = da.from_array(read, chunks=(f4.chunks[0],))
    else:
        ranges = g.keep(image_ranges(f4))
    u4, total, worst, ok = g.keep(f4), da.asarray(0), da.asarray(0.0), da.asarray(True)
    by_step = {0: u4}
    for k, h in enumerate(sizes, start=1):
        p4, sweeps, crit, done = _rof_dual(da, g, u4, p4, h, C=C, nd=nd, rule=rule, max_sweeps=max_sweeps,
                                           max_iter=max_iter, ranges=ranges)
        u4 = sweep(primal_block, [u4, p4], spatial_depth(u4, 1), False, dtype=u4.dtype, graph=g, lam=h, C=C)
        total, worst, ok = (g.keep(x) for x in (total + sweeps, da.maximum(worst, crit), ok & done))
        by_step[k] = u4
    out = warned_if_short(da.stack([from_batched(by_step[s], lead) for s in at]), worst, ok, who, rule.target,
                          max_sweeps, rule.measure, rule.name)
    out, total, worst, ok = g.finish(out, total, worst, ok)
    return SchwarzResult(out, total, worst, ok) if full_output else out


def _flow_plan(f4, ts, dt, accuracy, tol, who):
    """The flow's step sizes, the step reached at each of ``ts``, each step's :class:`Stopping`, as
    :func:`pdeflow.tv.tv_flow` plans them (:func:`pdeflow.tv.steps.flow_steps`), and the images' ranges where the
    plan read them (None: not read)."""
    ranges = None
    try:
        if dt is not None:                # the grid k dt, each time rounded onto it
            at = [int(round(t / dt)) for t in ts]
            sizes = [float(dt)] * max(at)
            share = default_accuracy(accuracy, dt)
        else:                             # steps that land on the times, from the smallest range (one pass)
            order = sorted(set(ts))
            ranges = np.asarray(image_ranges(f4).compute(), dtype=np.float64)
            r = ranges[np.isfinite(ranges) & (ranges > 0)]
            plan = flow_steps(order, accuracy=accuracy, data_range=float(r.min()) if r.size else 1.0, tol=tol)
            sizes = [h for hs in plan.steps for h in hs]
            reached = dict(zip(order, np.cumsum([len(hs) for hs in plan.steps]).tolist()))
            at = [int(reached[t]) for t in ts]
            share = plan.solver_accuracy
    except UserInputError as err:
        raise UserInputError(f"{who}: {err}") from None
    each = None if share is None else share / max(len(sizes), 1)
    return sizes, at, stopping(each, tol, who, ACCURACY), ranges
