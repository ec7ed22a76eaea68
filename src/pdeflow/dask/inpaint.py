"""Inpainting on dask arrays: restricted additive Schwarz with Dirichlet data on the overlaps.

Every operator of :data:`pdeflow.inpaint.OPERATORS` (homogeneous diffusion, biharmonic, EED, TV, Shepard; sparse
data and holes alike) is solved on the whole image from chunks. The unknown is ``u`` itself.

**Sweeps.** A sweep grows every chunk by ``overlap + r`` pixels from its neighbours, ``r`` the width of the
Dirichlet ring (the operator's :meth:`~pdeflow.inpaint.Operator.reach` for the options: how far an unknown pixel's
equation reads, 1 for diffusion, 2 for biharmonic and TV, whose diffusivity on a neighbour reads that neighbour's
neighbours, and for EED 3 plus the radius of the Gaussian that smooths the image steering its tensor), marks the
outer ``r`` slabs of the grown block as known pixels holding the current iterate (a Dirichlet condition where a
neighbour is; the image's own border keeps the operator's boundary condition), inpaints the grown block with the
operator's own solver (:attr:`~pdeflow.inpaint.Operator.solve`, warm-started from the current iterate; with options,
or for an operator with a relative option or clipping, the checked public function) and keeps the chunk's own pixels
(an operator that clips, biharmonic: unclipped; the result is clipped to the whole image's known range once, after
the sweeps, as :func:`pdeflow.inpaint.inpaint_biharmonic` clips): restricted additive Schwarz (Cai and Sarkis, "A
restricted additive Schwarz preconditioner for general sparse linear systems", 1999), which converges for the
diffusion system (an M-matrix: Frommer and Szyld, "An algebraic convergence theory for restricted additive Schwarz
methods using weighted max norms", 2001). With the ring as wide as the equations read, every unknown pixel of a
grown block has the whole image's equation given the ring, so the single-array answer is a fixed point of the
sweeps, for the nonlinear operators too. EED's contrast and TV's eps are relative to the range of the known values
(:attr:`~pdeflow.inpaint.Operator.relative`): a grown block's range is not the image's, so each block is given the
option scaled to the image's absolute value. The subdomain solves run to ``local_tol``
(:attr:`~pdeflow.inpaint.Operator.subdomain_tol`), those of an operator with the option ``max_iter`` (the lagged
diffusivity of EED and TV) at most :data:`LOCAL_MAX_ITER` steps. The first sweep inpaints every grown block with the
operator's own boundary condition on its faces (no neighbour data yet).

**Convergence.** After every sweep a dask reduction computes the stopping measure
(:attr:`~pdeflow.inpaint.Operator.measure`): for homogeneous diffusion the relative residual of the global system,
``||(1 - m) laplacian(u)|| / ||(1 - m) laplacian(m f)||`` (the measure of
:func:`pdeflow.inpaint.inpaint_diffusion`'s ``tol``); for the others the largest change of the sweep, relative to
the range of the known values. Shepard interpolation (:attr:`~pdeflow.inpaint.Operator.local`) solves no equation:
it is one pass over chunks grown by ``overlap``, exact wherever the Gaussian's reach (its scale doubles in large
holes) stays inside the overlap. The graph stops sweeping (later sweeps pass their chunks through) once it is at
most ``tol``. **Coarse correction** (homogeneous diffusion without options,
:attr:`~pdeflow.inpaint.Operator.coarse`): between two sweeps the iterate takes the Galerkin correction of the
diffusion system on a grid of one node per chunk (:mod:`pdeflow.dask.coarse`), so that a hole spanning several
chunks no longer needs a sweep per chunk across it. The other operators have none: with sparse data every unknown
pixel is near a known one and the sweeps needed stay few; a hole that spans several chunks needs about as many
sweeps as chunks across it.
"""
from __future__ import annotations

import math
import operator

import numpy as np
import torch

from .. import ops
from ..errors import UserInputError
from ..inpaint import OPERATORS
from .arrays import (
    Graph,
    as_batched,
    block_sums,
    check_max_sweeps,
    check_ndim,
    check_positive,
    from_batched,
    import_dask,
    spatial_depth,
    sweep,
)
from .coarse import CoarseGrid, coarse_solve
from .tv import SchwarzResult

# solve_block, residual_sums, coarse_grid and mask_like are the tasks pdeflow.dask.stream runs too (not in the API)
__all__ = ["inpaint", "LOCAL_MAX_ITER"]

#: Lagged-diffusivity steps of a subdomain solve at most (the nonlinear operators), unless ``max_iter`` is given.
LOCAL_MAX_ITER = 2000
#: Elements of a block the stopping measure of homogeneous diffusion (:func:`residual_sums`) takes at a time.
RESIDUAL_SLAB = 2**16


def checked_arguments(da, x, mask, method, tol, overlap, max_sweeps, local_tol, ndim, who: str):
    """The arguments of :func:`inpaint` (and of the store-to-store :func:`pdeflow.dask.inpaint_to_zarr`) checked:
    ``(op, x4, lead, m4, tol, max_sweeps, local_tol)``, the operator's entry of the name ``method``, ``x`` and the
    mask batched, the subdomain tolerance filled in."""
    if not isinstance(method, str) or method not in OPERATORS:
        raise UserInputError(f"{who}: method must be one of {tuple(OPERATORS)}, got {method!r}")
    op = OPERATORS[method]
    nd = check_ndim(ndim)
    if nd == 3 and not op.volumes:
        raise UserInputError(f"{who}: method={method!r} inpaints images only; volumes: "
                             f"{tuple(n for n, o in OPERATORS.items() if o.volumes)}")
    x4, lead = as_batched(x, "x", nd, who)
    tol = check_positive(tol, "tol", who)
    if not isinstance(overlap, (int, np.integer)) or isinstance(overlap, bool) or overlap < 1:
        raise UserInputError(f"{who}: overlap must be an integer >= 1, got {overlap!r}")
    max_sweeps = check_max_sweeps(max_sweeps, who)
    # by default no tighter than the data's precision resolves (float32 residuals stall near 1e-7, and each
    # subdomain solve would run to its iteration limit and warn)
    if op.local:       # one pass, no subdomain solves to stop
        ltol = op.value("tol", {}) if local_tol is None else check_positive(local_tol, "local_tol", who)
    else:
        floor = op.subdomain_eps * float(np.finfo(x4.dtype).eps)
        ltol = (max(op.subdomain_tol, floor) if local_tol is None
                else check_positive(local_tol, "local_tol", who))
    m4 = mask_like(da, mask, x4, lead, nd, who.replace("_to_zarr", ""))
    return op, x4, lead, m4, tol, max_sweeps, ltol


def _ring(shape, faces, reach: int, device=None) -> torch.Tensor:
    """Bool (*S): the outer ``reach`` slabs of a grown block on the sides that have a neighbour."""
    ring = torch.zeros(shape, dtype=torch.bool, device=device)
    for k, (lo, hi) in enumerate(faces):
        idx = [slice(None)] * len(shape)
        if lo:
            idx[k] = slice(0, reach)
            ring[tuple(idx)] = True
        if hi:
            idx[k] = slice(shape[k] - reach, shape[k])
            ring[tuple(idx)] = True
    return ring


def solve_block(xb, mb, ub, *, faces, op, reach, tol, options, first, span=None, owned=False, correction=None,
                coarse=None, region=None):
    """One chunk's subproblem: inpaint the grown block by the operator ``op`` (an entry of
    :data:`pdeflow.inpaint.OPERATORS`), the ring known and holding the iterate ``ub``. ``xb`` is the image zeroed off
    the mask; ``span``: the range of each image's known values (b, 1, 1, ...), for the operator's relative option;
    ``owned``: ``xb`` and ``mb`` are the task's own arrays (read from a store) and may be overwritten. ``ub`` may
    be ``xb`` itself holding the data on the mask and the iterate elsewhere (the iterate equals the data on the
    mask). ``correction``: node values of the grid ``coarse``
    (:class:`~pdeflow.dask.coarse.CoarseGrid`), added to the iterate's unknown pixels first (``region``: the grown
    block, a (lo, hi) per batch and spatial axis)."""
    if correction is not None:
        e = coarse.field(correction, region) * (mb <= 0)
        ub = np.add(ub, e, out=ub, casting="unsafe") if owned else (ub + e).astype(ub.dtype, copy=False)
    dtype = torch.float64 if xb.dtype == np.float64 else torch.float32
    x = torch.from_numpy(np.ascontiguousarray(xb)).to(dtype)
    m = torch.from_numpy(np.ascontiguousarray(mb)).to(dtype)
    u = torch.from_numpy(np.ascontiguousarray(ub)).to(dtype)
    known = m > 0
    # The data is xb on the mask (zero elsewhere already, or the iterate: a solve does not read it there) and
    # the iterate on the ring; arrays a task owns are overwritten in place (two arrays of the block's size less
    # at the solve's peak), and the task may pass one array as both xb and ub (the data on the mask, the
    # iterate elsewhere).
    f = x
    if not first:
        ring = _ring(x.shape[2:], faces, reach)
        if ub is not xb:
            f = torch.where(ring, u, x, out=x) if owned else torch.where(ring, u, x)
        known |= ring
        del ring
    mk = m.copy_(known) if owned else known.to(dtype)
    del known
    if not bool((mk.flatten(1).sum(1) > 0).all()):     # a grown block without a known pixel: keep the iterate
        return ub
    vol = {"ndim": 3} if x.dim() == 5 else {}
    if op.relative is not None:
        # later sweeps start from the iterate where the operator takes a start; an owned block is solved in its
        # own memory where the operator can (ub is then xb: the caller reads neither again)
        warm = {"x0": u} if "x0" in op.option_names and not first else {}
        if owned and "overwrite_f" in op.option_names and (first or ub is xb):
            warm["overwrite_f"] = True
        parts = [_relative_solve(op, f[i:i + 1], mk[i:i + 1], float(np.ravel(span[i])[0]), tol,
                                 {**options, **{k: v[i:i + 1] if k == "x0" else v for k, v in warm.items()}})
                 for i in range(f.shape[0])]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
    elif op.clip is not None:       # clipped once, to the whole image's known range, after the sweeps
        warm = {"x0": None if first else u} if "x0" in op.option_names else {}
        out = op.function(f, mk, tol=tol, **vol, **{**options, op.clip: False, **warm})
    elif options or vol:
        out = op.function(f, mk, tol=tol, **vol, **options)
    else:
        out = op.solve(f, mk, u0=None if first else u, tol=tol)
    return out.numpy().astype(xb.dtype, copy=False)


def _relative_solve(op, f, mk, span, tol, options):
    """One image of a grown block by the checked public function of ``op``, its relative option scaled so that its
    absolute value is the whole image's: the option times ``span`` (the image's range of known values) over the
    block's."""
    option = op.relative
    # not gathered: the index of a mostly known block is 8 times its size
    known = (mk > 0).expand_as(f)
    local = float(torch.where(known, f, -math.inf).amax() - torch.where(known, f, math.inf).amin())
    del known          # not held through the solve
    value = float(op.value(option, options))
    if local > 0 and span > 0:
        value = value * span / local
    opts = {**options, option: value}
    if "max_iter" in op.option_names:
        opts["max_iter"] = options.get("max_iter", LOCAL_MAX_ITER)
    return op.function(f, mk, tol=tol, **opts)


def residual_sums(ub, mb, fb, *, faces, coarse=None, region=None):
    """Per image: ``||(1 - m) L u||^2`` and ``||(1 - m) L (m f)||^2`` over the chunk's own pixels, in float64, a slab of
    :data:`RESIDUAL_SLAB` elements at a time (the whole block's float64 temporaries would be a task's largest
    memory; the guide "Large images" has the numbers): (b, 2, 1, ...). With the
    :class:`~pdeflow.dask.coarse.CoarseGrid` ``coarse`` (``region``: the grown block, a (lo, hi) per batch and
    spatial axis) the block's share of the coarse right-hand side ``P^T (1 - m) L u`` follows, flattened:
    (b, 2 + C nodes, 1, ...)."""
    spatial = ub.ndim - 2
    shape = ub.shape[2:]
    own = [slice(lo, s - hi) for (lo, hi), s in zip(faces, shape)]
    step = max(1, RESIDUAL_SLAB // (ub.size // shape[0]))
    axes = tuple(range(1, ub.ndim))
    sums = np.zeros((ub.shape[0], 2))
    rhs = None
    if coarse is not None:
        origin = [lo for lo, _ in region[1:]]
        cols = [(o + s.start, o + s.stop) for o, s in zip(origin[1:], own[1:])]
        rhs = np.zeros(ub.shape[:2] + coarse.nodes)
    for a in range(own[0].start, own[0].stop, step):
        b = min(a + step, own[0].stop)
        # the slab with a row of each neighbour: the Laplacian of a grown block is the global one inside it
        # (Neumann only where the image ends), and so is a slab's on its own rows
        lo, hi = max(a - 1, 0), min(b + 1, shape[0])
        rows = (slice(None), slice(None), slice(lo, hi))
        u, m, f = (torch.from_numpy(np.array(v[rows], dtype=np.float64)) for v in (ub, mb, fb))
        keep = (slice(None), slice(None), slice(a - lo, b - lo)) + tuple(own[1:])
        r = ((1 - m) * ops.laplacian(u, ndim=spatial))[keep]
        q = ((1 - m) * ops.laplacian(f.mul_(m), ndim=spatial))[keep]
        sums[:, 0] += r.pow(2).sum(axes).numpy()
        sums[:, 1] += q.pow(2).sum(axes).numpy()
        if rhs is not None:
            rhs += coarse.rhs_part(r.numpy(), [(origin[0] + a, origin[0] + b)] + cols)
    if rhs is not None:
        sums = np.concatenate([sums, rhs.reshape(ub.shape[0], -1)], axis=1)
    return sums.reshape(sums.shape + (1,) * spatial)


def _change_task(ub, vb, *, faces):
    """Per image: the largest change between two iterates, in slot 0 of a (b, 2, 1, ...) block."""
    d = np.abs(ub.astype(np.float64) - vb).reshape(ub.shape[0], -1).max(axis=1)
    out = np.zeros((ub.shape[0], 2) + (1,) * (ub.ndim - 2))
    out[:, 0] = d.reshape((-1,) + (1,) * (ub.ndim - 2))
    return out


def _per_image(da, g, task, arrays, depth, done, reduce, **kwargs):
    """Per-image reductions over chunks of a task that returns (b, 2, 1, ...) blocks (``width`` in ``kwargs``: other
    than 2): a (B, 2) array."""
    parts = block_sums(task, arrays, depth, done, graph=g, **kwargs)
    axes = tuple(range(2, parts.ndim))
    return parts.max(axis=axes) if reduce == "max" else parts.sum(axis=axes)


def _region(region, faces):
    """A block's own keywords: its grown region."""
    return {"region": region}


def probe_sums(mb, *, faces, coarse, region):
    """A block's share of the coarse operator's probes (:meth:`~pdeflow.dask.coarse.CoarseGrid.operator_part`),
    flattened for a reduction: (b, probes * nodes, 1, ...)."""
    out = coarse.operator_part(mb, faces, region)
    return out.reshape((out.shape[0], -1) + (1,) * (mb.ndim - 2))


def coarse_grid(op, options, chunks):
    """The :class:`~pdeflow.dask.coarse.CoarseGrid` of the blocks ``chunks`` (their sizes along each spatial axis)
    where the operator ``op`` takes the coarse correction (:attr:`~pdeflow.inpaint.Operator.coarse`, without
    options: binary masks on a unit grid) and there is more than one block; else None."""
    if not op.coarse or options or all(len(c) == 1 for c in chunks):
        return None
    return CoarseGrid.of(chunks)


def _coarse_values(probes, parts, coarse, C):
    """The coarse correction's node values (B, C, *nodes), in a 1-tuple, from the blocks of the summed probes and of
    the residual tasks' sums."""
    nodes = coarse.nodes
    probes = np.concatenate([row[0] for row in probes], axis=0)
    rhs = np.concatenate([row[0] for row in parts], axis=0)[:, 2:]
    return (coarse_solve(probes.reshape((-1, coarse.probes) + nodes), rhs.reshape((-1, C) + nodes), nodes),)


def _correction(g, coarse, probes, parts, x4):
    """The coarse correction's node values (B, C, *nodes), chunked as ``x4`` along the batch axis: one task."""
    (values,) = g.apply(_coarse_values, [probes, parts, coarse, x4.shape[1]], (object,), "inpaint-coarse")
    nodes = coarse.nodes
    name = "inpaint-coarse-values-" + values.name.rsplit("-", 1)[1]
    starts = np.cumsum((0,) + x4.chunks[0])
    tasks = {(name, i) + (0,) * (1 + len(nodes)): (operator.getitem, (values.name,), slice(a, b))
             for i, (a, b) in enumerate(zip(starts[:-1], starts[1:]))}
    return g.add(name, tasks, [values], (x4.chunks[0], (x4.shape[1],)) + tuple((n,) for n in nodes),
                 np.empty((0,) * x4.ndim))


def _next_state(tol, residual, parts, scale, crit, done, sweeps):
    """The sweep count, the stopping measure and converged after a sweep (the blocks of the (B, 2) per-image
    reductions), from the state before it (``done``: it passed through)."""
    sweeps = sweeps + (~done).astype(int)
    s = np.concatenate([row[0] for row in parts], axis=0)
    if residual:
        measure = np.sqrt(s[:, 0] / np.maximum(s[:, 1], np.finfo(np.float64).tiny)).max()
    else:
        measure = s[:, 0].max() / scale
    crit = np.where(done, crit, measure)
    return sweeps, crit, crit <= tol


def mask_like(da, mask, x4, lead, nd, who):
    """The mask as a (B or 1, 1, *S) float array with the spatial chunks of ``x4``."""
    m = mask if isinstance(mask, da.Array) else da.asarray(np.asarray(mask))
    if m.dtype == bool:
        m = m.astype(x4.dtype)
    if not (np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer)):
        raise UserInputError(f"{who}: mask must be bool or 0/1 numbers, got dtype {m.dtype}")
    spatial = x4.shape[2:]
    if m.ndim < nd or tuple(m.shape[-nd:]) != spatial or m.ndim > nd + 2:
        raise UserInputError(f"{who}: mask must have the spatial shape of x {spatial} (and broadcast along its "
                             f"batch and channel axes), got {m.shape}")
    m4 = m[(None,) * (nd + 2 - m.ndim)]
    if m4.shape[1] != 1 or m4.shape[0] not in (1, x4.shape[0]):
        raise UserInputError(f"{who}: mask must have one channel and a batch of 1 or {x4.shape[0]}, got {m.shape}")
    if m4.shape[0] != x4.shape[0]:
        m4 = da.broadcast_to(m4, (x4.shape[0], 1) + spatial)
    return m4.astype(x4.dtype).rechunk((x4.chunks[0], (1,)) + x4.chunks[2:])


def inpaint(x, mask, method: str = "diffusion", *, tol: float = 1e-6, overlap: int = 16, max_sweeps: int = 30,
            local_tol: float | None = None, ndim: int | None = None, full_output: bool = False, **options):
    """:func:`pdeflow.inpaint.inpaint` with an operator of :data:`pdeflow.inpaint.OPERATORS`, on dask arrays.

    Lazy: returns a dask array. The answer is the single-array one, to the tolerances of the sweeps and of the
    subdomain solves, by restricted additive Schwarz over the chunks with Dirichlet data on the overlaps (the module
    docstring, :mod:`pdeflow.dask.inpaint`); sparse data and holes alike.

    Parameters
    ----------
    x : dask array, shape (H, W), (C, H, W) or (B, C, H, W); volumes with ``ndim=3`` (diffusion and biharmonic)
        The image; only its values on the mask are read (the others may be NaN). float32 or float64.
    mask : dask or NumPy array, shape (H, W), (1, H, W) or (B, 1, H, W) (volumes: with D)
        1 (or True) = known pixel, 0 = missing (any value > 0 counts as known: a lazy mask is not checked for
        being binary); rechunked to the chunks of ``x``.
    method : str
        A name of :data:`pdeflow.inpaint.OPERATORS`: ``"diffusion"``, ``"biharmonic"``, ``"eed"``, ``"tv"``,
        ``"shepard"``.
    tol : float
        Stop when the sweep's measure is at most ``tol``: diffusion, the relative residual of the global system;
        the others, the largest change of a sweep relative to the range of the known values.
    overlap : int
        Pixels by which every chunk's subproblem reaches into its neighbours, ``>= 1`` (besides the Dirichlet ring
        of the operator's :meth:`~pdeflow.inpaint.Operator.reach`; the two together at most the smallest chunk).
    max_sweeps : int
        Sweeps of the graph at most.
    local_tol : float, optional
        The ``tol`` of each subdomain solve (default the operator's
        :attr:`~pdeflow.inpaint.Operator.subdomain_tol`, at least :attr:`~pdeflow.inpaint.Operator.subdomain_eps`
        units of roundoff of ``x``'s dtype).
    ndim : {2, 3}, optional
        3 for volumes.
    full_output : bool
        Return a :class:`~pdeflow.dask.SchwarzResult` (``sweeps``, ``criterion``, ``converged``).
    **options
        The operator's own options (``contrast``, ``sigma`` for EED, ``eps`` for TV, ``max_iter``, ...): each
        subdomain then runs the checked public function without a warm start.

    Returns
    -------
    dask array of the shape and dtype of ``x``, or :class:`~pdeflow.dask.SchwarzResult`

    Examples
    --------
    >>> import dask.array as da, numpy as np, torch
    >>> import pdeflow.dask
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> rng = np.random.default_rng(0)
    >>> x, m = rng.random((32, 32)), (rng.random((32, 32)) < 0.1).astype(float)
    >>> u = pdeflow.dask.inpaint(da.from_array(x, chunks=16), m, "diffusion", overlap=4, tol=1e-9)
    >>> ref = inpaint_diffusion(torch.from_numpy(x), torch.from_numpy(m), tol=1e-12).numpy()
    >>> bool(abs(u.compute(scheduler="sync") - ref).max() < 1e-6)
    True
    """
    who = "pdeflow.dask.inpaint"
    da = import_dask()
    op, x4, lead, m4, tol, max_sweeps, ltol = checked_arguments(da, x, mask, method, tol, overlap, max_sweeps,
                                                                local_tol, ndim, who)
    reach = op.reach(options)
    depth = spatial_depth(x4, int(overlap) + reach)
    one = spatial_depth(x4, 1)
    f4 = da.where(m4 > 0, x4, 0).astype(x4.dtype)       # missing pixels may hold NaN
    known = da.where(m4 > 0, f4, np.nan)
    scale = da.maximum(da.nanmax(known) - da.nanmin(known), np.finfo(np.float64).tiny)
    kw = dict(op=op, reach=reach, tol=ltol, options=options)
    axes = tuple(range(1, x4.ndim))
    if op.relative is not None:      # each image's range of known values, (B, 1, 1, ...): the unit of the option
        span = (da.nanmax(known, axis=axes, keepdims=True) - da.nanmin(known, axis=axes, keepdims=True))
        kw["extra"] = {"span": span.rechunk((x4.chunks[0],) + (1,) * (x4.ndim - 1))}
    if op.local:       # a filter, not an equation: the halo makes it exact where it reaches far enough
        u4 = sweep(solve_block, [f4, m4, f4], spatial_depth(x4, int(overlap)), False, dtype=x4.dtype, like=2,
                   first=True, **kw)
        u = from_batched(u4, lead)
        return SchwarzResult(u, da.asarray(1), da.asarray(0.0), da.asarray(True)) if full_output else u
    g = Graph()
    f4, m4, scale = g.keep(f4), g.keep(m4), g.keep(scale)
    u4 = sweep(solve_block, [f4, m4, f4], depth, False, dtype=x4.dtype, like=2, first=True, graph=g, **kw)
    done, sweeps, crit = da.asarray(False), da.asarray(1), da.asarray(np.inf)
    coarse = coarse_grid(op, options, x4.chunks[2:])
    residual = {}
    if coarse is not None:      # the coarse operator's probes, once: its mask does not change
        probes = _per_image(da, g, probe_sums, [m4], one, False, "sum", width=coarse.probes * coarse.size,
                            per_block=_region, coarse=coarse)
        residual = dict(width=2 + x4.shape[1] * coarse.size, per_block=_region, coarse=coarse)
    correction = None
    for _ in range(max_sweeps - 1):
        new = sweep(solve_block, [f4, m4, u4], depth, done, dtype=x4.dtype, like=2, first=False, graph=g,
                    **({} if correction is None else dict(extra={"correction": correction}, per_block=_region,
                                                          coarse=coarse)), **kw)
        if op.measure == "residual":
            parts = _per_image(da, g, residual_sums, [new, m4, f4], one, done, "sum", **residual)
        else:
            parts = _per_image(da, g, _change_task, [new, u4], {k: 0 for k in depth}, done, "max")
        # the state carried to the next sweep, one task (not a dask operation per number)
        sweeps, crit, done = g.apply(_next_state, [tol, op.measure == "residual", parts, scale, crit, done, sweeps],
                                     (sweeps.dtype, np.float64, bool), "inpaint-state")
        if coarse is not None:
            correction = _correction(g, coarse, probes, parts, x4)
        u4 = new
    if op.clips(options):
        axes = tuple(range(2, x4.ndim))
        lo, hi = da.nanmin(known, axis=axes, keepdims=True), da.nanmax(known, axis=axes, keepdims=True)
        u4 = da.minimum(da.maximum(u4, lo), hi)
    u, sweeps, crit, done = g.finish(from_batched(u4, lead), sweeps, crit, done)
    return SchwarzResult(u, sweeps, crit, done) if full_output else u
