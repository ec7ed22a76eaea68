"""Inpainting masks: random masks and spatial optimisation for diffusion inpainting.

* :func:`random_mask`: exactly ``round(density * H * W)`` known pixels per image, uniformly at random.
* :func:`ps_mask` (PS, Mainberger et al. 2011): from the full mask, each step draws a random fraction ``p`` of
  the mask pixels as candidates, inpaints without them, and removes for good the fraction ``q`` of them with the
  smallest local error ``|u - f|`` (summed over channels; squared for ``metric='mse'``); the others go back.
  Until the density is reached.
* :func:`nlpe_mask` (NLPE, Mainberger et al. 2011): each exchange draws ``candidates`` random non-mask pixels,
  moves the ``exchanges`` of largest local error into the mask and as many random mask pixels out, inpaints,
  and keeps the swap only if the global error drops; ``cycles`` cycles of ``|mask|`` exchanges. With
  ``parallel = S > 1`` each step tries ``S`` independent exchanges as one batched solve warm-started from the
  current inpainting and keeps the best if it lowers the error (``S = 1``: the classical algorithm).

Both optimise a batch at once (one mask per image, one density) and return masks ``(B, 1, H, W)`` for
``(B, C, H, W)`` input (``(1, H, W)`` for ``(C, H, W)``, ``(H, W)`` for ``(H, W)``) in ``f``'s dtype, 1 = known.
The global error is the per-image MSE (default) or MAE of the inpainting, as
:func:`pdeflow.inpaint.inpainting_error`.

References
----------
.. [1] M. Mainberger, S. Hoffmann, J. Weickert, C. H. Tang, D. Johannsen, F. Neumann, B. Doerr, "Optimising
   spatial and tonal data for homogeneous diffusion inpainting", Scale Space and Variational Methods in Computer
   Vision (SSVM), 2011.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from numbers import Integral, Real

import torch

from ... import ops
from ...errors import UserInputError
from ...progress import progress_bar
from ...rng import as_generator
from ...threads import auto_threads
from ..checks import check_mask
from ..operators.diffusion import SOLVERS, inpaint_diffusion
from .dither import n_known

__all__ = ["random_mask", "ps_mask", "nlpe_mask", "MaskResult", "ps_step",
           "ps_schedule", "ps_step_costs", "ps_steps", "ps_cost"]

METRICS = ("mse", "mae")


@dataclass
class MaskResult:
    """Output of the mask optimisers with ``full_output=True``.

    Attributes
    ----------
    mask : Tensor
        The mask (see the module doc for its shape).
    u : Tensor, shape of ``f``
        Diffusion inpainting of ``f`` from ``mask``.
    error : Tensor, shape (B,)
        Global error (MSE or MAE) of ``u`` per image.
    trace : Tensor, shape (B, T)
        NLPE: the error after each step (column 0: the input mask), never increasing. PS: the error of each
        step's trial inpainting (candidates removed), for information.
    accepted : Tensor of int64, shape (B,)
        NLPE: exchanges kept; PS: steps.
    seconds : float
        Wall-clock time (PS: until this density was reached, what a run for it alone costs).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import ps_mask
    >>> f = torch.rand(1, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> r = ps_mask(f, 0.25, p=0.2, q=0.5, generator=0, full_output=True)
    >>> type(r).__name__, int(r.mask.sum()), r.u.shape
    ('MaskResult', 36, torch.Size([1, 1, 12, 12]))
    """

    mask: torch.Tensor
    u: torch.Tensor
    error: torch.Tensor
    trace: torch.Tensor
    accepted: torch.Tensor
    seconds: float = float("nan")


# ---------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------

# One density check for every mask method (a UserInputError naming ``density``).
_check_density = n_known


def _check_fraction(x, name: str, who: str) -> float:
    if isinstance(x, bool) or not isinstance(x, Real) or not (0 < x <= 1):
        raise UserInputError(f"{who}: {name} must be a number in (0, 1], got {x!r}")
    return float(x)


def _check_int(x, name: str, who: str, minimum: int = 1) -> int:
    if isinstance(x, bool) or not isinstance(x, Integral) or x < minimum:
        raise UserInputError(f"{who}: {name} must be an int >= {minimum}, got {x!r}")
    return int(x)


def _check_solver(solver, tol, who: str) -> None:
    if solver not in SOLVERS:
        raise UserInputError(f"{who}: solver must be one of {SOLVERS}, got {solver!r}")
    if isinstance(tol, bool) or not isinstance(tol, Real) or not (0 < tol < 1):
        raise UserInputError(f"{who}: tol must be a number in (0, 1), got {tol!r}")


def _check_metric(metric, who: str) -> str:
    if metric not in METRICS:
        raise UserInputError(f"{who}: metric must be one of {METRICS}, got {metric!r}")
    return metric


def _mask_shape_out(mask4: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    mask4 = mask4.to(f.dtype)
    if f.dim() == 4:
        return mask4
    if f.dim() == 3:
        return mask4[0]
    return mask4[0, 0]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _local_error(u: torch.Tensor, f: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-pixel error ``(B, H*W)``, summed over channels."""
    d = u - f
    e = d * d if metric == "mse" else d.abs()
    return e.sum(1).flatten(1)


def _global_error(u: torch.Tensor, f: torch.Tensor, metric: str) -> torch.Tensor:
    d = u - f
    e = d * d if metric == "mse" else d.abs()
    return e.flatten(1).mean(1)


def _known(mask, f4: torch.Tensor, who: str) -> torch.Tensor:
    """A one-channel binary ``mask`` of the images ``f4`` as ``(B, H*W)`` bool (a copy)."""
    B, _, H, W = f4.shape
    m4 = check_mask(mask, f4, who)
    if m4.shape[1] != 1:
        raise UserInputError(f"{who}: mask must have one channel (one mask for all channels), got {tuple(mask.shape)}")
    return m4.expand(B, 1, H, W).reshape(B, H * W).bool().clone()


def _random_scores(shape, where: torch.Tensor, gen, device) -> torch.Tensor:
    """Uniform random scores on ``where`` (bool), -1 elsewhere: topk picks a random subset of ``where``."""
    r = torch.rand(shape, generator=gen).to(device)
    return torch.where(where, r, torch.full_like(r, -1.0))


# ---------------------------------------------------------------------------
# Random masks
# ---------------------------------------------------------------------------

def random_mask(shape, density: float, *, generator=None, dtype: torch.dtype = torch.float32,
                device=None, ndim: int | None = None, spacing=None) -> torch.Tensor:
    """A uniformly random mask with exactly ``round(density * H * W)`` known pixels per image.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)``, ``(1, H, W)``, ``(B, 1, H, W)`` or any ``(..., H, W)``; each ``(H, W)`` slice gets its own
        mask. With ``ndim=3``: any ``(..., D, H, W)``, each volume with exactly ``round(density * D * H * W)``
        known voxels.
    density : float
        Fraction of known pixels, in (0, 1).
    generator : None, int or torch.Generator, optional
        Seed or CPU generator (default: torch's global generator).
    dtype, device : optional
        Of the returned mask (default float32 on the CPU); ``torch.bool`` is allowed.
    ndim : {2, 3}, optional
        Number of spatial axes, as in :mod:`pdeflow.ops`: 2 (default) or 3 (volumes).
    spacing : float or tuple, optional
        Voxel spacing, as :func:`pdeflow.inpaint.inpaint_diffusion` takes it (length 3 implies ``ndim=3``);
        a uniform mask does not depend on it.

    Returns
    -------
    Tensor of ``shape``
        1 on known pixels, 0 elsewhere.

    Examples
    --------
    >>> from pdeflow.inpaint import random_mask
    >>> m = random_mask((1, 8, 8), 0.25, generator=0)
    >>> m.shape, int(m.sum())
    (torch.Size([1, 8, 8]), 16)
    >>> v = random_mask((1, 1, 5, 6, 7), 0.05, generator=0, ndim=3)   # a volume (B, 1, D, H, W)
    >>> v.shape, int(v.sum())
    (torch.Size([1, 1, 5, 6, 7]), 10)
    """
    who = "random_mask"
    nd, _ = ops.spatial_axes(ndim, spacing, who)
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if (not isinstance(shape, (tuple, list)) or len(shape) < nd
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in shape)):
        axes = "(..., H, W)" if nd == 2 else "(..., D, H, W) for ndim=3"
        raise UserInputError(f"{who}: shape must be a tuple of at least {nd} positive ints {axes}, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape[-nd:])
    k = _check_density(density, n, who)
    gen = as_generator(generator, who)
    lead = shape[:-nd]
    if nd == 2:   # the 2-D draw exactly as before (same numbers from the same generator)
        H, W = shape[-2:]
        n = H * W
    r = torch.rand(*lead, n, generator=gen)
    idx = r.topk(k, dim=-1).indices
    m = torch.zeros(*lead, n, dtype=torch.bool).scatter_(-1, idx, True)
    return m.reshape(shape).to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------
# Probabilistic sparsification
# ---------------------------------------------------------------------------

def ps_step(count: int, target: int, p: float, q: float) -> tuple[int, int]:
    """One step of the PS schedule: from ``count`` known pixels towards ``target``, the number of candidates
    tried (a fraction ``p`` of them) and of pixels removed (a fraction ``q`` of the candidates, at least 1,
    never past ``target``).

    Examples
    --------
    >>> from pdeflow.inpaint.masks.sparsification import ps_step
    >>> ps_step(1000, 100, 0.1, 0.5)
    (100, 50)
    """
    nc = max(1, math.ceil(p * count))
    nr = min(max(1, round(q * nc)), count - target)
    return max(nc, nr), nr


#: A PS step (one warm-started CG solve) costs more as the mask thins and gaps widen: with a fraction d known,
#: d ** -PS_COST_EXPONENT times a full-mask step. Inverse proportion fits PS on photographs at the CLI's default
#: size well enough for a time estimate (smaller images' costs grow a little slower: their estimates err long).
PS_COST_EXPONENT = 1.0


def ps_schedule(count: int, targets, p: float, q: float) -> list[int]:
    """The known pixels before each PS step, from ``count`` down through each of ``targets`` (one run passes
    every larger target on its way to the smallest): :func:`ps_mask`'s schedule.

    Examples
    --------
    >>> from pdeflow.inpaint.masks.sparsification import ps_schedule
    >>> ps_schedule(1000, [700], 0.5, 0.5)
    [1000, 750]
    """
    counts = []
    for target in sorted(set(targets), reverse=True):
        while count > target:
            counts.append(count)
            count -= ps_step(count, target, p, q)[1]
    return counts


def ps_step_costs(schedule, n: int) -> list[float]:
    """The modelled cost of each step of a PS ``schedule`` (:func:`ps_schedule`) on ``n`` pixels, in full-mask
    steps (:data:`PS_COST_EXPONENT`): the weights of PS's time-left estimate.

    Examples
    --------
    >>> from pdeflow.inpaint.masks.sparsification import ps_step_costs
    >>> ps_step_costs([1000, 500, 250], 1000)
    [1.0, 2.0, 4.0]
    """
    return [(c / n) ** -PS_COST_EXPONENT for c in schedule]


def ps_steps(n: int, density: float, p: float, q: float, start: int | None = None) -> int:
    """The number of PS steps (one diffusion solve each) from all ``n`` pixels (or ``start`` of them: PS from
    a start mask) down to ``round(density n)``.

    Examples
    --------
    >>> from pdeflow.inpaint.masks.sparsification import ps_steps
    >>> ps_steps(64 * 64, 0.1, 0.1, 0.5), ps_steps(64 * 64, 0.1, 0.1, 0.5, start=round(0.2 * 64 * 64))
    (45, 14)
    """
    return len(ps_schedule(n if start is None else start, [round(density * n)], p, q))


@ops.follows_layout_rule("f", also=("mask",))
@auto_threads
def ps_mask(f: torch.Tensor, density: float, *, p: float = 0.02, q: float = 0.02,
                                 metric: str = "mse", tol: float = 1e-6, solver: str = "cg",
                                 mask: torch.Tensor | None = None, generator=None, progress: bool = False,
                                 full_output: bool = False):
    """Probabilistic sparsification (PS): a mask of the given density for diffusion inpainting.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), float32 or float64; colour images get one mask for all channels.
    density : float or list of float
        Fraction of known pixels, in (0, 1): exactly ``round(density * H * W)``. A list gives one mask per
        density, in its order, from a single run (which passes each larger density on its way).
    p : float, optional
        Fraction of the current mask pixels drawn as candidates per step (default 0.02).
    q : float, optional
        Fraction of the candidates removed per step (default 0.02); at least one pixel.
    metric : {'mse', 'mae'}, optional
        Local error ``(u - f)^2`` or ``|u - f|`` (summed over channels).
    tol : float, optional
        Relative residual of each inpainting (default 1e-6).
    solver : {'cg', 'mg'}, optional
        Linear solver of :func:`inpaint_diffusion`; steps are warm-started from the last inpainting, so
        plain CG (default) is usually fastest.
    mask : Tensor, optional
        Start from this binary mask instead of every pixel: (H, W), (1, H, W) or (B, 1, H, W), the same
        number of known pixels per image, at least each density's; the result is a subset. A denser mask from
        a cheap method (a learned mask of a few times the density) skips PS's steps above its density (the
        cheapest: solves get harder as the mask thins).
    generator : None, int or torch.Generator, optional
        Seed or CPU generator for the random candidates.
    progress : bool, optional
        Show a progress bar (steps, its time left weighed by :func:`ps_step_costs`); default False.
    full_output : bool, optional
        Return a :class:`MaskResult` (mask, inpainting, error, ...).

    Returns
    -------
    mask : Tensor, shape (B, 1, H, W) (see the module doc), dtype of ``f``
        A list of masks (or of :class:`MaskResult`) for a list of densities.
        With ``full_output``, trace, step count and seconds cover the run up to that density.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import ps_mask
    >>> f = torch.rand(1, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> m = ps_mask(f, 0.25, p=0.2, q=0.5, generator=0)
    >>> m.shape, int(m.sum())
    (torch.Size([1, 1, 12, 12]), 36)
    >>> m2 = ps_mask(f, 0.1, p=0.2, q=0.5, mask=m, generator=0)   # from that mask
    >>> int(m2.sum()), bool((m2 <= m).all())
    (14, True)
    """
    who = "ps_mask"
    f = ops.check_tensor(f, f"{who}: f")      # a NumPy array or a list: the tensor, whose shape is handed back
    f4 = ops.image_batch(f, f"{who}: f", min_size=2)
    f4 = ops.promote_half(f4)   # half precisions cannot rank the local errors; the mask returned in f's dtype
    B, C, H, W = f4.shape
    N = H * W
    several = isinstance(density, (list, tuple))
    densities = list(density) if several else [density]
    if several and not densities:
        raise UserInputError(f"{who}: density must be a number in (0, 1) or a non-empty list of them")
    targets = [_check_density(d, N, who) for d in densities]
    p = _check_fraction(p, "p", who)
    q = _check_fraction(q, "q", who)
    metric = _check_metric(metric, who)
    _check_solver(solver, tol, who)
    gen = as_generator(generator, who)
    dev = f4.device

    t0 = time.perf_counter()
    keep = torch.ones(B, N, dtype=torch.bool, device=dev) if mask is None else _known(mask, f4, who)
    counts = keep.sum(1)
    if bool((counts != counts[0]).any()):       # each step removes as many pixels from every image
        raise UserInputError(f"{who}: mask must have the same number of known pixels in every image, got "
                             f"{counts.tolist()}")
    count = int(counts[0])
    if count < max(targets):
        raise UserInputError(f"{who}: density: the mask has {count} known pixels per image, fewer than "
                             f"{max(targets)} (density {max(densities)!r}); PS only removes pixels")
    u = f4.clone()
    trace = []
    snapshots = {}
    schedule = ps_schedule(count, targets, p, q)
    with progress_bar(total=len(schedule), costs=ps_step_costs(schedule, N), enabled=progress, desc="PS",
                      unit="step") as bar:
        # Sparsification passes through every larger density on its way: one run serves all.
        for target in sorted(set(targets), reverse=True):
            while count > target:
                nc, nr = ps_step(count, target, p, q)
                cand = _random_scores((B, N), keep, gen, dev).topk(nc, dim=1).indices  # (B, nc)
                trial = keep.clone().scatter_(1, cand, False)
                u = inpaint_diffusion(f4, trial.view(B, 1, H, W).to(f4.dtype), tol=tol, x0=u, solver=solver)
                trace.append(_global_error(u, f4, metric))
                err = _local_error(u, f4, metric).gather(1, cand)
                gone = cand.gather(1, (-err).topk(nr, dim=1).indices)  # the nr smallest errors
                keep.scatter_(1, gone, False)
                count -= nr
                bar.update(1)
            snapshots[target] = (keep.view(B, 1, H, W).to(f4.dtype), u, len(trace), time.perf_counter() - t0)
    results = []
    for target in targets:
        mask4, u_last, n_steps, secs = snapshots[target]
        mask = _mask_shape_out(mask4, f)
        if not full_output:
            results.append(mask)
            continue
        u = inpaint_diffusion(f4, mask4, tol=tol, x0=u_last, solver=solver)
        results.append(MaskResult(mask=mask, u=u.reshape(f.shape).to(f.dtype), error=_global_error(u, f4, metric),
                                  trace=torch.stack(trace[:n_steps], 1) if n_steps else f4.new_zeros(B, 0),
                                  accepted=torch.full((B,), n_steps, dtype=torch.long), seconds=secs))
    return results if several else results[0]


# ---------------------------------------------------------------------------
# Non-local pixel exchange
# ---------------------------------------------------------------------------

@ops.follows_layout_rule("f", also=("mask",))
@auto_threads
def nlpe_mask(f: torch.Tensor, mask: torch.Tensor, *, candidates: int = 30, exchanges: int = 1,
                            cycles: int = 5, parallel: int = 1, metric: str = "mse", tol: float = 1e-6,
                            solver: str = "cg", generator=None, progress: bool = False,
                            full_output: bool = False):
    """Non-local pixel exchange (NLPE): improve a mask at fixed density.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), float32 or float64.
    mask : Tensor
        Binary initial mask(s), one channel: (H, W), (1, H, W) or (B, 1, H, W).
        Each image needs at least one known and one unknown pixel.
    candidates : int, optional
        Random non-mask pixels drawn per exchange (default 30).
    exchanges : int, optional
        Of these, the ones with the largest local error moved into the mask,
        and as many random mask pixels moved out (default 1).
    cycles : int, optional
        Number of cycles of ``|mask|`` exchange attempts (default 5).
    parallel : int, optional
        Exchanges tried at once per step, solved as one batch; the best is
        kept if it lowers the error (default 1: the classical algorithm).
        The number of attempts, ``cycles * |mask|``, does not depend on it,
        so larger values are faster per attempt but keep at most one exchange
        per ``parallel`` attempts; the error reached in a given time depends
        little on it (the results page "Sparse inpainting").
    metric : {'mse', 'mae'}, optional
        Local and global error.
    tol : float, optional
        Relative residual of each inpainting (default 1e-6).
    solver : {'cg', 'mg'}, optional
        Linear solver of :func:`inpaint_diffusion`, warm-started from the current inpainting:
        the swap disturbs it only locally, so plain CG (default) needs few
        iterations and no multigrid set-up.
    generator : None, int or torch.Generator, optional
        Seed or CPU generator.
    progress : bool, optional
        Show a progress bar (steps); default False.
    full_output : bool, optional
        Return a :class:`MaskResult` with the error trace.

    Returns
    -------
    mask : Tensor, shape (B, 1, H, W) (see the module doc), dtype of ``f``
        Same number of known pixels; its error is never larger than that of the input.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpainting_error, nlpe_mask, random_mask
    >>> f = torch.rand(1, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> m0 = random_mask((1, 1, 12, 12), 0.25, generator=1, dtype=torch.float64)
    >>> m = nlpe_mask(f, m0, cycles=1, generator=0)
    >>> int(m.sum()) == int(m0.sum()), bool(inpainting_error(f, m) <= inpainting_error(f, m0))
    (True, True)
    """
    who = "nlpe_mask"
    f = ops.check_tensor(f, f"{who}: f")      # a NumPy array or a list: the tensor, whose shape is handed back
    f4 = ops.image_batch(f, f"{who}: f", min_size=2)
    f4 = ops.promote_half(f4)   # half precisions cannot rank the local errors; the mask returned in f's dtype
    B, C, H, W = f4.shape
    N = H * W
    keep = _known(mask, f4, who)
    counts = keep.sum(1)
    if bool((counts == N).any()):
        raise UserInputError(f"{who}: mask has no unknown pixel; nothing to exchange")
    candidates = _check_int(candidates, "candidates", who)
    exchanges = _check_int(exchanges, "exchanges", who)
    cycles = _check_int(cycles, "cycles", who, minimum=0)
    parallel = _check_int(parallel, "parallel", who)
    metric = _check_metric(metric, who)
    _check_solver(solver, tol, who)
    if exchanges > candidates:
        raise UserInputError(f"{who}: exchanges ({exchanges}) must not exceed candidates ({candidates})")
    gen = as_generator(generator, who)
    dev = f4.device
    S = parallel
    ncand = min(candidates, int((N - counts).min()))
    nex = min(exchanges, ncand, int(counts.min()))

    t0 = time.perf_counter()
    u = inpaint_diffusion(f4, keep.view(B, 1, H, W).to(f4.dtype), tol=tol, solver=solver)
    err = _global_error(u, f4, metric)
    trace = [err.clone()]
    accepted = torch.zeros(B, dtype=torch.long, device=dev)
    attempts = cycles * int(counts.max())
    n_steps = math.ceil(attempts / S)
    fS = f4.repeat_interleave(S, 0)  # (B*S, C, H, W)
    rows = torch.arange(B * S, device=dev)
    with progress_bar(total=n_steps, enabled=progress, desc="NLPE", unit="step") as bar:
        for _ in range(n_steps):
            loc = _local_error(u, f4, metric)  # (B, N)
            keepS = keep.repeat_interleave(S, 0)  # (B*S, N)
            # Candidates: random non-mask pixels; the largest local errors go in.
            cand = _random_scores((B * S, N), ~keepS, gen, dev).topk(ncand, dim=1).indices
            cerr = loc.repeat_interleave(S, 0).gather(1, cand)
            add = cand.gather(1, cerr.topk(nex, dim=1).indices)
            out = _random_scores((B * S, N), keepS, gen, dev).topk(nex, dim=1).indices
            trial = keepS.clone()
            trial.scatter_(1, out, False)
            trial.scatter_(1, add, True)
            uS = inpaint_diffusion(fS, trial.view(B * S, 1, H, W).to(f4.dtype), tol=tol,
                         x0=u.repeat_interleave(S, 0), solver=solver)
            eS = _global_error(uS, fS, metric).view(B, S)
            best_e, best_s = eS.min(1)
            better = best_e < err
            if bool(better.any()):
                pick = rows.view(B, S)[torch.arange(B, device=dev), best_s]
                keep = torch.where(better[:, None], trial[pick], keep)
                u = torch.where(better[:, None, None, None], uS[pick], u)
                err = torch.where(better, best_e, err)
                accepted += better.long()
            trace.append(err.clone())
            bar.update(1)
    mask4 = keep.view(B, 1, H, W).to(f4.dtype)
    out_mask = _mask_shape_out(mask4, f)
    if not full_output:
        return out_mask
    return MaskResult(mask=out_mask, u=u.reshape(f.shape).to(f.dtype), error=err, trace=torch.stack(trace, 1),
                      accepted=accepted, seconds=time.perf_counter() - t0)


def ps_cost(f: torch.Tensor, density: float, p: float, q: float, *, cycles: int = 0, tol: float = 1e-6,
            generator=0, start: int | None = None) -> dict:
    """The cost of PS (and ``cycles`` of NLPE) on ``f``: its steps and exchanges, one diffusion solve each, and
    the estimated seconds: one warm-started solve timed at ``density``, for each PS step scaled by its
    modelled cost (:func:`ps_step_costs`) and for each exchange as it is. ``start``: the known pixels of PS's
    start mask (default: every pixel).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.sparsification import ps_cost
    >>> cost = ps_cost(torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)), 0.1, 0.1, 0.5)
    >>> cost["steps"], cost["exchanges"], cost["seconds"] > 0
    (43, 0, True)
    """
    H, W = f.shape[-2:]
    target = round(density * H * W)
    schedule = ps_schedule(H * W if start is None else start, [target], p, q)
    steps = len(schedule)
    exchanges = cycles * target
    x = ops.as_batch(f, "f")[0][:1]
    m = random_mask((1, H, W), density, generator=generator, dtype=x.dtype, device=x.device)
    u = inpaint_diffusion(x, m, tol=tol)
    flat = m.flatten().clone()
    known = flat.nonzero().flatten()
    flat[known[: max(1, known.numel() // 200)]] = 0       # a few pixels removed, as one PS step does
    t0 = time.perf_counter()
    inpaint_diffusion(x, flat.view_as(m), tol=tol, x0=u)
    solve = time.perf_counter() - t0
    relative = sum(ps_step_costs(schedule, H * W)) / ps_step_costs([target], H * W)[0]    # steps in final solves
    seconds = (relative + exchanges) * solve
    return {"steps": steps, "exchanges": exchanges, "solves": steps + exchanges, "seconds": seconds}
