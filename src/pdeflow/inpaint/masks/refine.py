"""Test-time refinement of a sparse inpainting mask at fixed density, in a fraction of a second.

Two cheap steps on a mask dithered from a density map (the analytic mask of :mod:`pdeflow.inpaint.masks.analytic`,
the mask network of :mod:`pdeflow.inpaint.learned.masknet`), both keeping each image's number of known pixels:

1. **Best of several tiles** (``shifts``). The density map is dithered again with ``shifts - 1`` randomly
   shifted/flipped blue-noise threshold tiles (:func:`pdeflow.inpaint.masks.dither.threshold_map`), snapped like
   the input (given a snap score); the input is candidate 0. One batched
   :func:`~pdeflow.inpaint.inpaint_diffusion` call inpaints all; the smallest error is kept per image.
2. **Exchanges guided by the adjoint and by probes.** A forward and an adjoint solve give the derivative
   ``g = dl/dc`` of the inpainting error ``l`` in the mask at every pixel (Hoeltgen, Setzer, Weickert, "An optimal
   control approach to find sparse data for Laplace interpolation", EMMCVPR 2013). To first order, revealing an
   unknown pixel changes the error by ``+g`` (``-g``: its *benefit of revealing*). Hiding a known pixel is no
   small change and its linearised cost ``-g`` ranks poorly, so each round *measures* it (``hide='probe'``): a
   well-spread subset of known pixels, no two touching, is hidden at once and inpainted (one loose solve); a
   probed pixel's cost is its squared error there, the local error of probabilistic sparsification (Mainberger et
   al., "Optimising spatial and tonal data for homogeneous diffusion inpainting", SSVM 2011). A round swaps the
   ``s`` probed pixels of least cost with the ``s`` unknown pixels of largest benefit (only those whose benefit
   tops their 3 x 3 neighbourhood, so no two revealed pixels touch), inpaints once (warm-started) and keeps the
   swap only if the error drops. A rejected swap halves ``s`` for that image (like Mainberger et al.'s non-local
   pixel exchange, whose candidates are random); a rejected single swap (``s = 1``) bars its two pixels until the
   next accepted one. The trial's adjoint solve (warm-started) gives the next derivative, run only for a kept
   trial: a round costs a probe and a forward solve, plus an adjoint solve when kept.

   Probing costs more per round than linearised hiding (``hide='adjoint'``) and finds better masks (results
   page "Sparse inpainting").

The error ``l`` per image (``metric``): ``'masknet'`` (default), the mask network's training loss,
``charbonnier + 0.3 (1 - SSIM)`` (:mod:`pdeflow.inpaint.training.masknet`), ``'mse'`` or ``'mae'``. The search
compares masks by errors of loose warm-started solves (``tol``): it needs only their ranking, which a loose ``tol``
keeps unless the errors are small against the grey values; on nearly flat photos ``tol`` (and ``probe_tol``) must
be tighter (results page "Sparse inpainting"). The input and result are then solved to ``final_tol`` and the input
returned unless the result is better there: the result's error at that accuracy never exceeds the input's, and the
search's errors never increase between rounds.

One grey CPU image with ``solver='cg'`` (the evaluation's call) runs the same search on flat NumPy vectors
(:func:`refine_single`, :data:`SINGLE_IMAGE_PATH`): each solve is :func:`pdeflow.linalg.cg_matrix` on the
Laplacian's cached CSR matrix, the right-hand side a sparse product, the adjoint solve and mask derivative written
out (no autograd), loss (SSIM included), probes and proposals NumPy arrays: on small images the tensor set-up
around a solve costs more than its few warm-started CG iterations (timing: results page "Sparse inpainting"). Its
decisions equal the tensor path's up to rounding and the order of ties (``tests/inpaint/test_inpaint_refine.py``).

Randomness: ``generator: None | int | torch.Generator`` (tile shifts only; exchanges and probes are deterministic).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import torch

from ... import ops
from ..operators.diffusion import SOLVERS
from ._refine_loss import REFINE_METRICS, Loss, image_loss
from ._refine_search import (
    evaluate,
    evaluate_graph,
    probe_costs,
    propose,
    refine_single,
    shift_candidates,
    single_path,
)
from .dither import as_generator, binary_mask, blue_noise_tile

__all__ = ["refine_mask", "RefineResult", "image_loss", "refine_options", "REFINE_METRICS", "REFINE", "REFINE_MSE",
           "refine_setting"]

REFINE_HIDE = ("probe", "adjoint")

#: Test-time refinement per density (:func:`refine_mask` options; :func:`refine_setting` picks the nearest
#: density): the setting of the evaluation's ``*-refine`` rows and of the masks ``pdeflow train residual
#: --refine`` learns from. Chosen on selection crops, never the evaluation's: the most exchange rounds that beat
#: PS in MAE and SSIM on both selection sets at more than 100x PS's speed, with a margin at 20 %, where the
#: refinement minimises the MAE (PS's SSIM is beaten by a wide margin there, its MAE is not). The numbers:
#: results page "Sparse inpainting", "Refinement settings of the evaluation".
REFINE = {0.05: {"shifts": 2, "rounds": 10}, 0.1: {"shifts": 2, "rounds": 12},
          0.2: {"shifts": 2, "rounds": 14, "metric": "mae"}}
#: The refinement that minimises the MSE (the evaluation's ``*-refine-mse`` rows), chosen on the same selection
#: crops: search solves to 1e-5, since on nearly flat photos a loose solve cannot tell masks apart; at 20 % the
#: probe solves too; as many rounds as keep a mask near a second of CPU time (the same results page).
REFINE_MSE = {0.05: {"shifts": 2, "rounds": 600, "metric": "mse", "tol": 1e-5},
              0.1: {"shifts": 2, "rounds": 800, "metric": "mse", "tol": 1e-5},
              0.2: {"shifts": 2, "rounds": 800, "metric": "mse", "tol": 1e-5, "probe_tol": 1e-4}}


def refine_setting(density: float, refine: dict | None = None, default: dict | None = None) -> dict:
    """The :func:`refine_mask` options for masks of ``density``.

    ``refine``: options for every density, or a dict ``density -> options`` (default ``default``, else
    :data:`REFINE`; MSE rows: :data:`REFINE_MSE`); an unlisted density takes the nearest listed one's.

    Examples
    --------
    >>> from pdeflow.inpaint.masks.refine import REFINE_MSE, refine_setting
    >>> refine_setting(0.1)
    {'shifts': 2, 'rounds': 12}
    >>> refine_setting(0.25, default=REFINE_MSE)["rounds"]
    800
    >>> refine_setting(0.1, {"shifts": 1, "rounds": 3})
    {'shifts': 1, 'rounds': 3}
    """
    table = refine if refine is not None else (REFINE if default is None else default)
    if not all(isinstance(k, Real) and not isinstance(k, bool) for k in table):
        return dict(table)                      # one setting for every density
    nearest = min(table, key=lambda k: abs(math.log(float(k)) - math.log(float(density))))
    return dict(table[nearest])
#: One grey CPU image with solver 'cg' (the evaluation's call) runs the search on NumPy vectors
#: (:func:`~pdeflow.inpaint.masks._refine_search.refine_single`): the same decisions without the tensor
#: set-up around each small solve.
SINGLE_IMAGE_PATH = True

# The error (_refine_loss) and the search's steps (_refine_search) live apart; here: checks, driver, result.


@dataclass
class RefineResult:
    """Output of :func:`refine_mask` with ``full_output=True``.

    Attributes
    ----------
    mask : Tensor
        The refined mask (shape and dtype as :func:`refine_mask` returns it).
    u : Tensor, shape (B, C, H, W), float64
        Diffusion inpainting from ``mask``.
    error : Tensor, shape (B,)
        Its error (``metric``), solved to ``final_tol``.
    trace : Tensor, shape (B, 2 + rounds)
        Column 0: the input mask's error (``final_tol``); 1: after the best of the tile shifts; then after each
        exchange round (the search's errors, solved to ``tol``). Never increasing.
    shift : Tensor of int64, shape (B,)
        The candidate kept by the best-of-shifts step (0: the input mask).
    accepted : Tensor of int64, shape (B,)
        Exchange rounds kept.
    swapped : Tensor of int64, shape (B,)
        Pixel pairs swapped in the kept rounds.
    seconds : float
        Wall-clock time of the refinement.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import analytic_mask, refine_mask
    >>> f = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> r = refine_mask(f, analytic_mask(f, 0.1), rounds=2, full_output=True)
    >>> type(r).__name__, int(r.mask.sum())
    ('RefineResult', 26)
    """

    mask: torch.Tensor
    u: torch.Tensor
    error: torch.Tensor
    trace: torch.Tensor
    shift: torch.Tensor
    accepted: torch.Tensor
    swapped: torch.Tensor
    seconds: float = float("nan")


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def _check_count(x, name: str, who: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, Integral) or x < minimum:
        raise ValueError(f"{who}: {name} must be an int >= {minimum}, got {x!r}")
    return int(x)


def _check_map(x, name: str, who: str, B: int, H: int, W: int, *, nonneg: bool) -> torch.Tensor | None:
    if x is None:
        return None
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4 \
            or x.shape[1] != 1 or x.shape[-2:] != (H, W) or x.shape[0] not in (1, B):
        raise ValueError(f"{who}: {name} must be a floating-point tensor (B, 1, H, W) = ({B}, 1, {H}, {W}), "
                         f"got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    x = x.detach().to(torch.float64).expand(B, 1, H, W)
    if not bool(torch.isfinite(x).all()) or (nonneg and bool((x < 0).any())):
        raise ValueError(f"{who}: {name} must be finite" + (" and non-negative" if nonneg else ""))
    return x


def _check_mask(mask, f, f4: torch.Tensor, who: str) -> torch.Tensor:
    """The mask as (B, N) bool (:func:`~pdeflow.inpaint.masks.dither.binary_mask`), with a known and an
    unknown pixel in each image."""
    B, _, H, W = f4.shape
    keep = binary_mask(mask, f, f4, who).reshape(B, H * W)
    n = keep.sum(1)
    if bool((n == 0).any()) or bool((n == H * W).any()):
        raise ValueError(f"{who}: mask needs at least one known and one unknown pixel per image")
    return keep


def _pick(kept: str, better: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` for the images where ``better`` (B,) holds, else ``old``; ``kept`` says whether that is
    ``'all'``, ``'some'`` or ``'none'`` of them (so a round on one image selects without a tensor op)."""
    if kept == "all":
        return new
    if kept == "none":
        return old
    return torch.where(better.view(-1, *([1] * (new.dim() - 1))), new, old)


# ---------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------

@ops.follows_layout_rule("f", also=("mask",))
def refine_mask(f: torch.Tensor, mask: torch.Tensor, *, rounds: int = 8, shifts: int = 1,
                density_map: torch.Tensor | None = None, snap_score: torch.Tensor | None = None,
                swaps: float = 0.125, hide: str = "probe", metric: str = "masknet", tol: float = 3e-3,
                final_tol: float = 1e-6, solver: str = "cg",
                tile: torch.Tensor | None = None, probe_tol: float = 1e-2,
                generator=None, callback=None, full_output: bool = False, tile_size: int | None = None):
    """Refine a mask for homogeneous diffusion inpainting at its density (see the module doc).

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point (worked on in float64).
    mask : Tensor
        Binary mask, 1 = known pixel, shaped as the mask functions return it for ``f``: ``(B, 1, H, W)``,
        ``(1, H, W)`` or ``(H, W)``. Each image needs a known and an unknown pixel.
    rounds : int >= 0
        Adjoint-guided exchange rounds (each a probe and a forward solve, plus an adjoint solve if kept).
    shifts : int >= 1
        Candidates of the best-of-shifts step: the input mask and ``shifts - 1`` dithers of ``density_map``
        with randomly shifted/flipped tiles.
    density_map : Tensor (B, 1, H, W), optional
        Non-negative density the mask was dithered from (any scale), e.g.
        :func:`pdeflow.inpaint.masks.analytic.laplacian_density`; needed for ``shifts > 1``.
    snap_score : Tensor (B, 1, H, W), optional
        The score, if the mask was snapped to extrema (:func:`pdeflow.inpaint.masks.analytic.snap_to_extrema`),
        so the candidates are snapped alike.
    swaps : float in (0, 1]
        Pixel pairs swapped in the first round, a fraction of the known pixels (at least 1); halved per image
        after a rejected round.
    hide : {'probe', 'adjoint'}
        How a round ranks known pixels to hide. ``'probe'`` (default): by probed cost, a pixel's squared error
        when a random subset of non-touching known pixels is hidden at once (one more forward solve per round;
        only probed pixels are hidden that round). ``'adjoint'``: by the linearised cost ``-g``, free but blind
        to the large change of hiding a pixel (numbers: module doc).
    metric : {'masknet', 'mse', 'mae'}
        The error minimised (:func:`image_loss`). The default, the mask network's training loss, lowered both
        the MAE and (1 - SSIM) more than the MSE did on training crops.
    tol : float
        Relative residual of the search's diffusion solves (all warm-started but the first adjoint one); the
        probe and adjoint solves, which only rank pixels, stop at ``max(tol, probe_tol)`` and
        ``max(tol, 1e-2)``.
    probe_tol : float
        Relative residual of the probe solves (``hide='probe'``). The default 1e-2 ranks well where the
        inpainting error is not small against the grey values; on nearly flat images a probe solve,
        warm-started from the current inpainting, stops before moving and measures nothing: a tighter one (e.g.
        1e-4) ranks there (docs/results/inpaint.md).
    final_tol : float
        Relative residual of the input's and result's solves, whose errors decide what is returned
        (:func:`~pdeflow.inpaint.inpaint_diffusion`'s default 1e-6).
    solver : {'cg', 'mg'}
        Solver of :func:`~pdeflow.inpaint.inpaint_diffusion`. Every forward solve and every adjoint solve but
        the first is warm-started, where plain CG (default) needs few iterations and no multigrid set-up (the
        first adjoint: about 100 CG iterations at 64 x 64, where multigrid's set-up costs about what it saves).
        One grey CPU image runs the whole search on NumPy vectors (module doc), CG on the explicit CSR matrix
        (:func:`pdeflow.linalg.cg_matrix`).
    tile : Tensor (h, w), optional
        Threshold tile of the shifted dithers (default: the mask functions' 64 x 64 blue-noise tile).
    generator : None, int or torch.Generator
        Random tile shifts.
    callback : callable, optional
        ``callback(r, mask, u, error)`` after the best-of-shifts step (``r = 0``) and exchange round
        ``r = 1 .. rounds``, with the current masks ``(B, 1, H, W)`` (bool), inpaintings ``(B, C, H, W)``
        (float64) and errors ``(B,)``; for inspection (the benchmark reads its quality/time curve this way).
    full_output : bool
        Return a :class:`RefineResult`.
    tile_size : int >= 32, optional
        Refine a large image tile by tile (near-equal tiles of at most this many pixels a side, each with its
        own diffusion problem): time linear in the image, memory of one tile; each tile keeps its number of
        known pixels and its own error never exceeds its input's (the whole image's is not checked). Not with
        ``callback`` or ``full_output``. None (default): the whole image at once.

    Returns
    -------
    Tensor
        The refined mask, shape of ``mask``, dtype of ``f``, with the same number of known pixels per image and
        an error (solved to ``final_tol``) never larger than the input's.

    Warns
    -----
    UserWarning
        When the search's masks are no better than the input once solved to ``final_tol`` (the input is then
        returned): its solves to ``tol`` were too loose for the image's tiny inpainting errors (nearly flat
        images); a smaller ``tol`` refines them.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import analytic_mask, refine_mask
    >>> f = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> m0 = analytic_mask(f, 0.1)
    >>> m = refine_mask(f, m0, rounds=2)                 # the same number of known pixels, placed better
    >>> m.shape, int(m.sum()) == int(m0.sum())
    (torch.Size([1, 1, 16, 16]), True)
    """
    who = "refine_mask"
    t0 = time.perf_counter()
    f = ops.check_tensor(f, f"{who}: f")      # a NumPy array or a list: the tensor, whose shape is handed back
    f4 = ops.image_batch(f, f"{who}: f", min_size=2)
    keep0 = _check_mask(mask, f, f4, who)
    B, C, H, W = f4.shape
    rounds = _check_count(rounds, "rounds", who, 0)
    shifts = _check_count(shifts, "shifts", who, 1)
    if isinstance(swaps, bool) or not isinstance(swaps, Real) or not (0 < swaps <= 1):
        raise ValueError(f"{who}: swaps must be a number in (0, 1] (a fraction of the known pixels), got {swaps!r}")
    if hide not in REFINE_HIDE:
        raise ValueError(f"{who}: hide must be one of {REFINE_HIDE}, got {hide!r}")
    if metric not in REFINE_METRICS:
        raise ValueError(f"{who}: metric must be one of {REFINE_METRICS}, got {metric!r}")
    if metric == "masknet" and min(H, W) < 11:
        raise ValueError(f"{who}: metric 'masknet' needs images of at least 11 x 11 pixels (SSIM), got {H} x {W}")
    for name, value in (("tol", tol), ("final_tol", final_tol), ("probe_tol", probe_tol)):
        if isinstance(value, bool) or not isinstance(value, Real) or not (0 < value < 1):
            raise ValueError(f"{who}: {name} must be a number in (0, 1), got {value!r}")
    if solver not in SOLVERS:
        raise ValueError(f"{who}: solver must be one of {SOLVERS}, got {solver!r}")
    p = _check_map(density_map, "density_map", who, B, H, W, nonneg=True)
    score = _check_map(snap_score, "snap_score", who, B, H, W, nonneg=False)
    if shifts > 1 and p is None:
        raise ValueError(f"{who}: shifts > 1 needs density_map (the density the mask was dithered from)")
    gen = as_generator(generator, who)
    if tile is None:
        tile = blue_noise_tile(64)
    if tile_size is not None:
        if isinstance(tile_size, bool) or not isinstance(tile_size, Integral) or tile_size < 32:
            raise ValueError(f"{who}: tile_size must be None or an int >= 32 (pixels), got {tile_size!r}")
        if callback is not None or full_output:
            raise ValueError(f"{who}: tile_size cannot be combined with callback or full_output")
        if H > tile_size or W > tile_size:
            m4 = _refine_tiles(f4, keep0.view(B, 1, H, W), p, score, int(tile_size), gen, tile,
                               dict(rounds=rounds, shifts=shifts, swaps=swaps, hide=hide, metric=metric, tol=tol,
                                    final_tol=final_tol, solver=solver, probe_tol=probe_tol))
            return ops.unbatch(m4.to(dtype=f4.dtype), f.dim())
    x = f4.detach().to(torch.float64)
    N = H * W
    keep = keep0

    loss = Loss(x, metric)
    if SINGLE_IMAGE_PATH and single_path(x, solver):
        keep, u, err, trace, shift, accepted, swapped, reverted = refine_single(
            x, keep0, loss, rounds, shifts, p, score, swaps, hide, tol, final_tol, tile, gen, callback, probe_tol)
        _warn_reverted(reverted, tol)
        m4 = keep.view(1, 1, H, W).to(device=f4.device, dtype=f4.dtype)
        out = ops.unbatch(m4, f.dim())
        if not full_output:
            return out
        return RefineResult(mask=out, u=u, error=err, trace=trace, shift=shift, accepted=accepted, swapped=swapped,
                            seconds=time.perf_counter() - t0)

    # 1. best of the shifted tiles (candidate 0: the input mask), one batched solve
    u0, err0 = evaluate(x, keep, loss, final_tol, solver)
    shift = torch.zeros(B, dtype=torch.long, device=x.device)
    u, err = u0, err0
    if shifts > 1:
        log_p = torch.log(p.clamp_min(1e-300))
        cand = shift_candidates(log_p, score, keep, shifts, gen, tile).to(x.device)   # (B, n, N)
        xn = x.repeat_interleave(shifts - 1, 0)
        un, en = evaluate(xn, cand[:, 1:].reshape(-1, N), Loss(xn, metric), tol, solver,
                           x0=u0.repeat_interleave(shifts - 1, 0))
        en = torch.cat([err0[:, None], en.view(B, shifts - 1)], 1)
        best_e, shift = en.min(1)                     # ties: the lowest index, i.e. the input mask first
        keep = cand[torch.arange(B, device=x.device), shift]
        un = torch.cat([u0[:, None], un.view(B, shifts - 1, C, H, W)], 1)
        u, err = un[torch.arange(B, device=x.device), shift], best_e
    trace = [err0, err.clone()]
    if callback is not None:
        callback(0, keep.view(B, 1, H, W), u, err)

    # 2. exchanges: adjoint-guided reveals, probed (or linearised) hides
    accepted = torch.zeros(B, dtype=torch.long, device=x.device)
    swapped = torch.zeros(B, dtype=torch.long, device=x.device)
    if rounds > 0:
        _, _, gradient = evaluate_graph(x, keep, loss, tol, solver, x0=u)
        g, nu = gradient()
        s = (swaps * keep.sum(1).to(torch.float64)).round().clamp_min(1).long()
        tabu = torch.zeros_like(keep)
        for r in range(rounds):
            cost = probe_costs(x, u, keep, tol, solver, tile, r, probe_tol) if hide == "probe" else None
            trial, n, add1, rem1 = propose(keep, g, s, tabu, H, W, cost)
            if r == rounds - 1:     # the last round's derivative is never used
                ut, et = evaluate(x, trial, loss, tol, solver, x0=u)
            else:
                ut, et, gradient = evaluate_graph(x, trial, loss, tol, solver, x0=u, adjoint_x0=nu)
            better = (et < err) & (n > 0)
            # one image at a time (the common call) a round's swap is kept or not: no per-image selection
            kept = "all" if bool(better.all()) else ("some" if bool(better.any()) else "none")
            keep, u, err = (_pick(kept, better, new, old) for new, old in ((trial, keep), (ut, u), (et, err)))
            if r < rounds - 1 and kept != "none":   # the adjoint solve only for an accepted trial
                gt, nut = gradient()
                g, nu = _pick(kept, better, gt, g), _pick(kept, better, nut, nu)
                tabu = tabu & ~better[:, None]
            accepted += better
            swapped += n * better
            # rejected: halve s; a rejected single swap bars its two pixels until the next accepted swap
            single = ~better & (s == 1) & (n > 0)
            if bool(single.any()):
                rows = single.nonzero().flatten()
                tabu[rows, add1[rows, 0]] = True
                tabu[rows, rem1[rows, 0]] = True
            s = torch.where(better, s, (s // 2).clamp_min(1))
            trace.append(err)
            if callback is not None:
                callback(r + 1, keep.view(B, 1, H, W), u, err)

    if shifts > 1 or rounds > 0:
        # the search's errors are from loose solves: decide between the result and the input at final_tol
        uf, ef = evaluate(x, keep, loss, final_tol, solver, x0=u)
        better = ef <= err0
        _warn_reverted(~better & ((shift > 0) | (accepted > 0)), tol)
        keep = torch.where(better[:, None], keep, keep0)
        u = torch.where(better[:, None, None, None], uf, u0)
        err = torch.where(better, ef, err0)
        shift = torch.where(better, shift, torch.zeros_like(shift))
        accepted = torch.where(better, accepted, torch.zeros_like(accepted))
        swapped = torch.where(better, swapped, torch.zeros_like(swapped))
    m4 = keep.view(B, 1, H, W).to(device=f4.device, dtype=f4.dtype)
    out = ops.unbatch(m4, f.dim())
    if not full_output:
        return out
    return RefineResult(mask=out, u=u, error=err, trace=torch.stack(trace, 1), shift=shift, accepted=accepted,
                        swapped=swapped, seconds=time.perf_counter() - t0)


def _warn_reverted(reverted: torch.Tensor, tol: float) -> None:
    """Say so when the search's gains did not hold at ``final_tol``: its solves were too loose to rank
    the masks of these images (their inpainting errors are small against ``tol``), which keep their input."""
    n = int(reverted.sum())
    if n:
        warnings.warn(f"refine_mask: for {n} of {reverted.numel()} image(s) the masks the search found were no "
                      f"better than the input once solved to final_tol, so the input is returned: its solves to "
                      f"tol={tol:g} are too loose to rank masks whose inpainting error is this small; a smaller "
                      f"tol (e.g. {tol / 100:g}) may refine them", UserWarning, stacklevel=3)


def _refine_tiles(f4, keep4, p, score, size, gen, tile, opts):
    """:func:`refine_mask` of ``(B, C, H, W)`` tile by tile: near-equal tiles of at most ``size`` a side;
    tiles without a known or an unknown pixel are left as they are."""
    B, C, H, W = f4.shape
    out = keep4.to(torch.float64).clone()
    ny, nx = -(-H // size), -(-W // size)
    ys = [round(i * H / ny) for i in range(ny + 1)]
    xs = [round(j * W / nx) for j in range(nx + 1)]
    for b in range(B):
        for y0, y1 in zip(ys[:-1], ys[1:]):
            for x0, x1 in zip(xs[:-1], xs[1:]):
                m = out[b:b + 1, :, y0:y1, x0:x1]
                k = int(m.sum())
                if k == 0 or k == m.numel():
                    continue
                out[b:b + 1, :, y0:y1, x0:x1] = refine_mask(
                    f4[b:b + 1, :, y0:y1, x0:x1], m.clone(), generator=gen, tile=tile,
                    density_map=None if p is None else p[b:b + 1, :, y0:y1, x0:x1],
                    snap_score=None if score is None else score[b:b + 1, :, y0:y1, x0:x1], **opts).to(out.dtype)
    return out


_OPTIONS = ("rounds", "shifts", "swaps", "hide", "metric", "tol", "probe_tol", "solver", "generator", "tile_size")


def refine_options(refine, who: str) -> dict | None:
    """The ``refine=`` option of the mask functions as keywords of :func:`refine_mask` (None: no refinement).

    ``refine`` is 0 or None (none), an int ``r >= 0`` (``r`` exchange rounds, one tile) or a dict of
    :func:`refine_mask` keywords among ``rounds``, ``shifts``, ``swaps``, ``metric``, ``tol``, ``probe_tol``,
    ``solver``, ``generator``, ``tile_size`` (e.g. ``{"shifts": 4, "rounds": 8}``).

    Examples
    --------
    >>> from pdeflow.inpaint.masks.refine import refine_options
    >>> refine_options(0, "demo"), refine_options(3, "demo"), refine_options({"shifts": 4}, "demo")
    (None, {'rounds': 3}, {'shifts': 4, 'rounds': 0})
    """
    if refine is None:
        return None
    if isinstance(refine, Integral) and not isinstance(refine, bool):
        if refine < 0:
            raise ValueError(f"{who}: refine must be an int >= 0 (exchange rounds) or a dict of refine_mask "
                             f"options, got {refine!r}")
        return {"rounds": int(refine)} if refine > 0 else None
    if isinstance(refine, dict):
        bad = [k for k in refine if k not in _OPTIONS]
        if bad:
            raise ValueError(f"{who}: refine: unknown option(s) {bad}; choose among {', '.join(_OPTIONS)}")
        opts = dict(refine)
        opts.setdefault("rounds", 0)
        return opts
    raise ValueError(f"{who}: refine must be an int >= 0 (exchange rounds) or a dict of refine_mask options, "
                     f"got {refine!r}")
