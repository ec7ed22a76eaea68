"""Test-time refinement of a sparse inpainting mask at fixed density, in a fraction of a second.

Two cheap steps on top of a mask dithered from a density map (the analytic mask
of :mod:`pdeflow.inpaint.masks.analytic`, the mask network of
:mod:`pdeflow.inpaint.learned.masknet`), both keeping exactly the number of known
pixels of each image:

1. **Best of ``shifts`` tiles.** The density map is dithered again with
   ``shifts - 1`` randomly shifted/flipped blue-noise threshold tiles
   (:func:`pdeflow.inpaint.masks.dither.threshold_map`) and snapped like the input
   (if a snap score is given); the input mask is candidate 0. All candidates
   are inpainted in one batched :func:`~pdeflow.inpaint.diffuse` call and the
   one of smallest error is kept per image.
2. **Exchanges guided by the adjoint and by probes.** One forward and one
   adjoint solve give the derivative ``g = dl/dc`` of the inpainting error
   ``l`` with respect to the mask at every pixel
   (:func:`~pdeflow.inpaint.diffuse` is differentiable in the mask; Hoeltgen,
   Setzer, Weickert, "An optimal control approach to find sparse data for
   Laplace interpolation", EMMCVPR 2013). To first order, revealing an unknown
   pixel changes the error by ``+g`` (``-g`` is its *benefit of revealing*).
   Hiding a known pixel is not a small change, and its linearised cost ``-g``
   ranks pixels poorly; so each round *measures* it (``hide='probe'``): a
   well-spread subset of the known pixels, no two touching, is hidden at once
   and inpainted (one loose solve), and a probed pixel's cost is its squared
   error there -- the local error of probabilistic sparsification (Mainberger
   et al., "Optimising spatial and tonal data for homogeneous diffusion
   inpainting", SSVM 2011). A round swaps the ``s`` probed pixels of smallest
   cost with the ``s`` unknown pixels of largest benefit -- only pixels whose
   benefit is the largest of their 3 x 3 neighbourhood are revealed, so no
   two revealed pixels touch -- inpaints once (warm-started), and keeps the
   swap only if the error drops. A rejected swap halves ``s`` for that image
   (in the spirit of the non-local pixel exchange of Mainberger et al., whose
   candidates are random instead); a rejected single swap (``s = 1``) bars its
   two pixels until the next accepted swap. The trial's own adjoint solve
   (warm-started from the last one) gives the next round's derivative; it
   runs only when the trial is kept (a rejected trial leaves the derivative
   as it was), so a round costs a probe and a forward solve, and an adjoint
   solve when its swap is kept.

   Measured on 16 crops of 64 x 64 (built-in TEST photos, crop seed 1), 12
   rounds from the analytic mask at 20 % density: probing takes MAE (0-255) /
   SSIM from 3.38 / 0.922 (linearised hiding, 65 CPU-ms per mask) to 3.05 /
   0.945 (103 CPU-ms); ``benchmarks/inpaint_refine.py --hide probe|adjoint``
   gives whole quality/time curves.

The error ``l`` per image (``metric``): ``'masknet'`` (default), the loss the
mask network trains on, ``charbonnier + 0.3 (1 - SSIM)``
(:mod:`pdeflow.inpaint.training.masknet`), ``'mse'`` or ``'mae'``. The search
compares masks by errors from loose solves (``tol``, warm-started): its
decisions only need the ranking, and tol 3e-3 found masks as good as 1e-5 in
about 15 % less time. The input and the result are then solved to
``final_tol``, and the input is returned if the result is not better there; so
the error of the result, at that accuracy, is never larger than that of the
input mask, and the search's errors never increase from one round to the next.

One grey image on the CPU with ``solver='cg'`` (the evaluation's call, one crop at a
time) runs the same search on flat NumPy vectors (:func:`_refine_single`,
:data:`SINGLE_IMAGE_PATH`): each solve is the plain CG of
:func:`pdeflow.linalg.cg_matrix` on the Laplacian's cached CSR matrix, the
right-hand side a sparse product, the adjoint solve and the mask derivative
written out instead of an autograd node, and the loss (SSIM included), the
probes and the proposals NumPy arrays. At 64 x 64 the tensor set-up around each
solve cost more than its few warm-started CG iterations: a round of the search
now takes about a third of the time (2 x 6 rounds at 20 %: 26 instead of 59
CPU-ms per mask, network included, on a loaded machine), with the same
decisions (``tests/test_inpaint_refine.py``; up to rounding and the order of ties).

Randomness: ``generator: None | int | torch.Generator`` (tile shifts only; the
exchanges and probes are deterministic).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F

from ... import ops
from ...linalg import cg_matrix, csr_matvec, laplacian_csr
from ...metrics import gaussian_window
from ...metrics import ssim as _ssim
from ..diffusion import (
    MATRIX_PATH_MAX_PIXELS,
    SOLVERS,
    MaskedLaplacian,
    default_max_iter,
    diffuse_recorded,
    diffuse_unchecked,
    warn_max_iter,
)
from .dither import as_generator, blue_noise_tile, threshold_map, top_k_mask
from .snapping import snap_to_extrema

__all__ = ["refine_mask", "RefineResult", "image_loss", "refine_options", "REFINE_METRICS"]

REFINE_METRICS = ("mse", "mae", "masknet")
REFINE_HIDE = ("probe", "adjoint")
PROBE_TOL = 1e-2   # the probe solve only ranks pixels: 1e-2 ranked as well as 1e-4 at 64 x 64
ADJOINT_TOL = 1e-2  # so does the adjoint solve: at 1e-2 instead of 3e-3, the same quality in ~10 % less time
#: One grey CPU image with solver 'cg' (the evaluation's call) runs the search on NumPy vectors
#: (:func:`_refine_single`): the same decisions without the tensor set-up around each small solve.
SINGLE_IMAGE_PATH = True
_SSIM_WEIGHT = 0.3   # the mask network's training loss: charbonnier + 0.3 (1 - SSIM)
_EPS = 1e-3          # charbonnier's epsilon


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
        Column 0: the error of the input mask (``final_tol``); 1: after the
        best of the tile shifts; then after each exchange round (the search's
        errors, solved to ``tol``). Never increasing.
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


def image_loss(u: torch.Tensor, f: torch.Tensor, metric: str = "mse") -> torch.Tensor:
    """Inpainting error per image ``(B,)`` of ``(B, C, H, W)`` tensors, differentiable.

    ``'mse'``: mean squared error; ``'mae'``: mean absolute error; ``'masknet'``:
    ``mean(sqrt(d^2 + 1e-6) - 1e-3) + 0.3 (1 - SSIM(u, f))``, the mask network's
    training loss (images at least 11 x 11).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.refine import image_loss
    >>> f = torch.zeros(2, 1, 4, 4)
    >>> image_loss(f + 0.5, f).tolist(), image_loss(f + 0.5, f, "mae").tolist()
    ([0.25, 0.25], [0.5, 0.5])
    """
    d = u - f
    if metric == "mse":
        return (d * d).flatten(1).mean(1)
    if metric == "mae":
        return d.abs().flatten(1).mean(1)
    if metric == "masknet":
        char = (torch.sqrt(d * d + _EPS * _EPS) - _EPS).flatten(1).mean(1)
        return char + _SSIM_WEIGHT * (1 - _ssim(u, f, data_range=1.0))
    raise ValueError(f"image_loss: metric must be one of {REFINE_METRICS}, got {metric!r}")


def _ssim_map(ux, uxx, uxy, uy, vy, C1: float, C2: float):
    """``(smap, dsmap)``: the SSIM map from the windowed moments of ``u`` (mean ``ux``, ``E[u^2]`` ``uxx``,
    ``E[u f]`` ``uxy``) and of ``f`` (mean ``uy``, variance ``vy``), and a function giving its derivatives
    with respect to ``(ux, uxx, uxy)``.  Plain arithmetic: the tensor search and the NumPy search of one
    image (:class:`_Single`) share it."""
    a1 = 2 * ux * uy + C1
    a2 = 2 * (uxy - ux * uy) + C2
    b1 = ux * ux + uy * uy + C1
    b2 = (uxx - ux * ux) + vy + C2
    den = b1 * b2
    smap = a1 * a2 / den

    def dsmap():
        # d smap / d(ux, uxx, uxy) with N = a1 a2, D = b1 b2
        return 2 * (uy * (a2 - a1) - smap * ux * (b2 - b1)) / den, -smap * b1 / den, 2 * a1 / den

    return smap, dsmap


class _Loss:
    """:func:`image_loss` against a fixed ``f`` (B, C, H, W), with its gradient ``dl/du`` by hand.

    The refinement evaluates the error of many inpaintings of one ``f`` and needs
    the gradient of few (accepted exchanges). Here the statistics of ``f`` in the
    SSIM windows are filtered once, an evaluation filters three maps instead of
    five (the separable window as two band-matrix products), and the gradient
    is the closed form of Wang et al.'s SSIM (the transposed filter on three
    maps) instead of an autograd graph of about forty nodes: 0.4 instead of
    1.3 ms per evaluation and gradient at 64 x 64. Equal to :func:`image_loss` and its autograd gradient to rounding
    (``tests/test_inpaint_refine.py``).
    """

    def __init__(self, f: torch.Tensor, metric: str):
        if metric not in REFINE_METRICS:
            raise ValueError(f"image_loss: metric must be one of {REFINE_METRICS}, got {metric!r}")
        self.f, self.metric = f, metric
        if metric == "masknet":
            B, C, H, W = f.shape
            self.win = gaussian_window(1.5, 3.5, dtype=f.dtype, device=f.device)
            k = self.win.numel()
            self.gv, self.gh = self._band(H), self._band(W)
            self.uy, self.uyy = self._filter(torch.stack([f, f * f], 2)).unbind(2)
            self.vy = self.uyy - self.uy * self.uy
            self.C1, self.C2 = 0.01 ** 2, 0.03 ** 2        # K1, K2 of metrics.ssim, data range 1
            self.n_valid = C * (H - k + 1) * (W - k + 1)

    def _band(self, n: int) -> torch.Tensor:
        """The window's valid filter along an axis of ``n`` pixels as a (n - k + 1, n) band matrix."""
        k = self.win.numel()
        band = self.win.new_zeros(n - k + 1, n + 1)
        band[:, :k] = self.win                          # row i holds the window at columns i .. i + k - 1
        return band.view(-1)[:(n - k + 1) * n].view(n - k + 1, n)

    def _filter(self, stack: torch.Tensor) -> torch.Tensor:
        """The SSIM window's valid filter on (..., H, W) -> (..., H', W'): two small matrix products."""
        return self.gv @ stack @ self.gh.T

    def _filter_t(self, stack: torch.Tensor) -> torch.Tensor:
        """The transpose of :meth:`_filter`: (..., H', W') -> (..., H, W) (4x faster than conv_transpose2d)."""
        return self.gv.T @ stack @ self.gh

    def __call__(self, u: torch.Tensor):
        """``(l (B,), gradient)``: the error and a function returning ``dl/du`` (B, C, H, W)."""
        f, d = self.f, u - self.f
        n = d[0].numel()
        if self.metric == "mse":
            return (d * d).flatten(1).mean(1), lambda: d * (2.0 / n)
        if self.metric == "mae":
            return d.abs().flatten(1).mean(1), lambda: torch.sign(d) / n
        root = torch.sqrt(d * d + _EPS * _EPS)
        char = (root - _EPS).flatten(1).mean(1)
        ux, uxx, uxy = self._filter(torch.stack([u, u * u, u * f], 2)).unbind(2)
        smap, dsmap = _ssim_map(ux, uxx, uxy, self.uy, self.vy, self.C1, self.C2)
        err = char + _SSIM_WEIGHT * (1 - smap.flatten(1).mean(1))

        def gradient():
            back = self._filter_t(torch.stack(dsmap(), 2) * (-_SSIM_WEIGHT / self.n_valid))
            gu = back[:, :, 0] + 2 * u * back[:, :, 1] + f * back[:, :, 2]
            return gu.add_(d / root, alpha=1.0 / n)

        return err, gradient


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
    """The mask as (B, N) bool; its shape must be the one the mask functions return for ``f``."""
    B, C, H, W = f4.shape
    want = (B, 1, H, W) if f.dim() == 4 else ((1, H, W) if f.dim() == 3 else (H, W))
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != want:
        raise ValueError(f"{who}: mask must have shape {want} for f of shape {tuple(f.shape)}, got "
                         f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{who}: mask must be binary (values 0 and 1, 1 = known pixel)")
    keep = mask.reshape(B, H * W).to(f4.device).bool()
    n = keep.sum(1)
    if bool((n == 0).any()) or bool((n == H * W).any()):
        raise ValueError(f"{who}: mask needs at least one known and one unknown pixel per image")
    return keep


# ---------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------

def _solve(f, keep, tol, solver, x0=None):
    """Diffusion inpainting ``u`` (B, C, H, W) of ``f`` from the masks ``keep`` (B, N) bool, not recorded.

    The solver of :func:`~pdeflow.inpaint.diffuse` without its input checks (the
    masks are made here); ``x0`` warm-starts it.
    """
    B, C, H, W = f.shape
    c = keep.view(B, 1, H, W).to(f.dtype)
    with torch.no_grad():
        u, _, _, _ = diffuse_unchecked(f, c, True, tol, default_max_iter(solver, H, W), x0, solver)
    return u


def _evaluate(f, keep, loss, tol, solver, x0=None):
    """``(u, error (B,))`` of the masks ``keep`` (B, N) bool; ``loss`` a :class:`_Loss` of ``f``;
    ``x0`` warm-starts the solve."""
    u = _solve(f, keep, tol, solver, x0)
    return u, loss(u)[0]


def _evaluate_graph(f, keep, loss, tol, solver, x0=None, adjoint_x0=None, adjoint_tol=None):
    """``(u, error (B,), gradient)``: :func:`_evaluate` with the solve recorded for autograd.

    ``gradient()`` runs the adjoint solve (warm-started from ``adjoint_x0``, a
    previous call's adjoint unknowns) and returns ``(dl/dc (B, N), adjoint
    unknowns)``; it is called only for masks whose derivative is needed (an
    accepted exchange), so a rejected trial costs no adjoint solve.
    """
    B, C, H, W = f.shape
    c = keep.view(B, 1, H, W).to(f.dtype).requires_grad_(True)
    with torch.enable_grad():
        u, info = diffuse_recorded(f, c, True, tol, default_max_iter(solver, H, W), x0, solver, adjoint_x0,
                                    adjoint_tol=max(tol, ADJOINT_TOL) if adjoint_tol is None else adjoint_tol)
    err, grad_u = loss(u.detach())

    def gradient():
        with torch.enable_grad():
            (g,) = torch.autograd.grad(u, c, grad_outputs=grad_u())
        return g.reshape(B, H * W), info["adjoint"]

    return u.detach(), err, gradient


def _max3x3(x: torch.Tensor) -> torch.Tensor:
    """The maximum over each pixel's 3 x 3 neighbourhood of ``x`` (B, N) viewed as (B, H, W); as
    ``max_pool2d(x, 3, 1, 1)``, but as shifted maxima: 2.7x faster in float64 at 64 x 64."""
    p = F.pad(x, (1, 1, 1, 1), value=-math.inf)
    rows = torch.maximum(torch.maximum(p[..., :-2], p[..., 1:-1]), p[..., 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def _probe_costs(f, u, keep, tol, solver, tile, r):
    """Measured cost of hiding known pixels (B, N) in round ``r``: ``inf`` where not probed.

    Hides a subset of the known pixels at once, inpaints once, and takes each
    probed pixel's squared error there: the local error of probabilistic
    sparsification (Mainberger et al. 2011). The subset: known pixels whose score
    is the largest among the known pixels of their 3 x 3 neighbourhood (so no two
    probed pixels touch), the score being the blue-noise ``tile`` shifted by an
    offset that depends on ``r`` only -- a different, well-spread subset each
    round, the same for every image of a batch.
    """
    B, C, H, W = f.shape
    th, tw = tile.shape
    rolled = torch.roll(tile, ((37 * r) % th, (23 * r) % tw), (0, 1))
    score = threshold_map((B, 1, H, W), tile=rolled, dtype=f.dtype, device=f.device).view(B, H * W)
    score = torch.where(keep, score, -1.0)
    probe = keep & (score == _max3x3(score.view(B, H, W)).view(B, H * W))
    up = _solve(f, keep & ~probe, max(tol, PROBE_TOL), solver, x0=u)
    err = ((up - f) ** 2).sum(1).view(B, H * W)
    return torch.where(probe, err, torch.full_like(err, math.inf))


def _shift_candidates(log_p, score, keep, n, generator, tile):
    """(B, n, N) bool: the input mask, then ``n - 1`` dithers of ``log_p`` with random tile shifts."""
    B, _, H, W = log_p.shape
    k = keep.sum(1)
    if n == 1:
        return keep[:, None]
    thr = threshold_map((B * (n - 1), 1, H, W), tile=tile, random=True, generator=generator)
    lp = log_p.repeat_interleave(n - 1, 0)
    scr = lp - torch.log(thr)
    kk = k.repeat_interleave(n - 1, 0)
    if bool((kk == kk[0]).all()):
        m = top_k_mask(scr, int(kk[0]))
    else:   # images with different counts: one top-k each
        m = torch.cat([top_k_mask(scr[i:i + 1], int(kk[i])) for i in range(scr.shape[0])])
    if score is not None:
        m = snap_to_extrema(m, score.repeat_interleave(n - 1, 0))
    cand = m.view(B, n - 1, H * W) > 0.5
    return torch.cat([keep[:, None], cand], 1)


def _propose(keep, g, s, tabu, H, W, hide_cost=None):
    """Swap proposal (B, N) bool and the number of pairs swapped per image (B,).

    Known pixels are hidden in order of ``hide_cost`` (B, N) (``inf``: not a
    candidate), or of the linearised cost ``-g`` without it.
    """
    B, N = keep.shape
    inf = torch.tensor(math.inf, dtype=g.dtype, device=g.device)
    cost = -g if hide_cost is None else hide_cost
    # reveal: largest benefit -g among unknown pixels, 3x3 local maxima only (no two revealed pixels touch)
    ben = torch.where(~keep & ~tabu, -g, -inf)
    pooled = _max3x3(ben.view(B, H, W)).view(B, N)
    ben = torch.where((ben == pooled) & torch.isfinite(ben), ben, -inf)
    # hide: smallest cost -g among known pixels
    neg_cost = torch.where(keep & ~tabu, -cost, -inf)
    smax = int(s.max())
    add_v, add_i = ben.topk(min(smax, N), dim=1)
    rem_v, rem_i = neg_cost.topk(min(smax, N), dim=1)
    n_add = torch.isfinite(add_v).sum(1)
    n_rem = torch.isfinite(rem_v).sum(1)
    n = torch.minimum(torch.minimum(s, n_add), n_rem)
    valid = torch.arange(add_i.shape[1], device=g.device)[None] < n[:, None]
    trial = torch.cat([keep, keep.new_zeros(B, 1)], 1)            # column N: where invalid entries go
    trial.scatter_(1, torch.where(valid, rem_i, N), False)
    trial.scatter_(1, torch.where(valid, add_i, N), True)
    return trial[:, :N], n, add_i[:, :1], rem_i[:, :1]


# ---------------------------------------------------------------------------
# One image: the same search on NumPy vectors
# ---------------------------------------------------------------------------

def _single_path(x: torch.Tensor, solver: str) -> bool:
    """Whether :func:`refine_mask` runs the NumPy path of :class:`_Single`: one grey CPU image that
    :func:`~pdeflow.inpaint.diffuse`'s plain CG solves as a CSR matrix anyway (the evaluation's call)."""
    B, C, H, W = x.shape
    return B == 1 and C == 1 and x.device.type == "cpu" and solver == "cg" and H * W <= MATRIX_PATH_MAX_PIXELS


def _np_max3x3(v: np.ndarray, H: int, W: int) -> np.ndarray:
    """:func:`_max3x3` of a flat (N,) array viewed as (H, W)."""
    p = np.full((H + 2, W + 2), -np.inf)
    p[1:-1, 1:-1] = v.reshape(H, W)
    rows = np.maximum(np.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])
    return np.maximum(np.maximum(rows[:-2], rows[1:-1]), rows[2:]).reshape(-1)


def _np_top(v: np.ndarray, s: int):
    """Indices of the ``s`` largest entries of ``v`` (largest first) and how many of them are finite."""
    s = min(s, v.size)
    idx = np.argpartition(-v, s - 1)[:s] if s < v.size else np.arange(v.size)
    idx = idx[np.argsort(-v[idx], kind="stable")]
    return idx, int(np.isfinite(v[idx]).sum())


class _Single:
    """The diffusion solves of :func:`refine_mask` for one grey image on flat NumPy vectors.

    The same systems as :func:`~pdeflow.inpaint.diffusion.diffuse_unchecked` and the adjoint of its
    backward (binary mask, plain CG on the Laplacian's cached CSR matrix,
    :func:`pdeflow.linalg.cg_matrix`), without the tensor set-up around each solve (the mask
    as tensors, the right-hand side by a convolution, autograd's node): at 64 x 64 that
    set-up cost more than the few warm-started CG iterations of a round's solves.
    """

    def __init__(self, x: torch.Tensor, loss: "_Loss"):
        _, _, H, W = x.shape
        self.H, self.W, self.N = H, W, H * W
        self.x4 = x
        self.f = x.reshape(-1).numpy()
        self.lap = laplacian_csr(H, W, "float64")
        self.max_iter = default_max_iter("cg", H, W)
        self.loss = loss
        if loss.metric == "masknet":   # the SSIM statistics of f and the window's band matrices, as NumPy arrays
            self.gv, self.gh = loss.gv.numpy(), loss.gh.numpy()
            self.uy, self.vy = loss.uy[0, 0].numpy(), loss.vy[0, 0].numpy()
            self.f2 = self.f.reshape(H, W)

    def lmul(self, v: np.ndarray) -> np.ndarray:
        return csr_matvec(self.lap, v)

    def forward(self, keep: np.ndarray, tol: float, x0: np.ndarray | None = None):
        """``(u, system)``: inpainting of the mask ``keep`` (N,) bool, warm-started from ``x0`` (N,)."""
        k = keep.astype(np.float64)
        w = 1.0 - k
        a = MaskedLaplacian(self.lap, -w, None)
        b = w * self.lmul(k * self.f)
        x, it, res = cg_matrix(a, b, None if x0 is None else w * x0, tol=tol, max_iter=self.max_iter,
                               return_residual=True)
        if it >= self.max_iter and res > tol:
            warn_max_iter(torch.tensor([it]), torch.tensor([res]), tol, self.max_iter)
        return x + k * self.f, (k, w, a)

    def error(self, u: np.ndarray):
        """``(error, dl/du function)`` of the inpainting ``u`` (N,)."""
        d = u - self.f
        if self.loss.metric == "mae":
            return float(np.abs(d).mean()), lambda: np.sign(d) / self.N
        if self.loss.metric == "mse":
            return float((d * d).mean()), lambda: d * (2.0 / self.N)
        return self._masknet(u, d)

    def _masknet(self, u: np.ndarray, d: np.ndarray):
        """:class:`_Loss`'s ``'masknet'`` error and gradient for one grey image, in NumPy."""
        L, gv, gh, uy, f = self.loss, self.gv, self.gh, self.uy, self.f2
        u2 = u.reshape(self.H, self.W)
        root = np.sqrt(d * d + _EPS * _EPS)
        char = float((root - _EPS).mean())
        ux, uxx, uxy = gv @ np.stack([u2, u2 * u2, u2 * f]) @ gh.T
        smap, dsmap = _ssim_map(ux, uxx, uxy, uy, self.vy, L.C1, L.C2)
        err = char + _SSIM_WEIGHT * (1 - float(smap.mean()))

        def gradient():
            back = gv.T @ (np.stack(dsmap()) * (-_SSIM_WEIGHT / L.n_valid)) @ gh
            gu = back[0] + 2 * u2 * back[1] + f * back[2]
            return gu.reshape(-1) + d / root / self.N

        return err, gradient

    def gradient(self, u: np.ndarray, system, grad_u: np.ndarray, tol: float, nu0: np.ndarray | None):
        """``(dl/dc (N,), nu)``: the adjoint solve (warm-started from ``nu0``) and the mask derivative,
        as :class:`~pdeflow.inpaint.diffusion._DiffuseFunction`'s backward for a binary mask."""
        k, w, a = system
        nu, it, res = cg_matrix(a, w * grad_u, None if nu0 is None else w * nu0, tol=tol, max_iter=self.max_iter,
                                return_residual=True)
        if it >= self.max_iter and res > tol:
            warn_max_iter(torch.tensor([it]), torch.tensor([res]), tol, self.max_iter, what="diffuse (adjoint solve)")
        lam = nu + k * (grad_u + self.lmul(nu))
        return lam * (self.f - u - self.lmul(u)), nu

    def probe_costs(self, u: np.ndarray, keep: np.ndarray, tol: float, score: np.ndarray) -> np.ndarray:
        """:func:`_probe_costs` with the round's tile score ``score`` (N,) given."""
        sc = np.where(keep, score, -1.0)
        probe = keep & (sc == _np_max3x3(sc, self.H, self.W))
        up, _ = self.forward(keep & ~probe, max(tol, PROBE_TOL), u)
        return np.where(probe, (up - self.f) ** 2, np.inf)

    def propose(self, keep, g, s, tabu, cost):
        """:func:`_propose` for one image: (trial (N,) bool, pairs n, best revealed, best hidden)."""
        ben = np.where(~keep & ~tabu, -g, -np.inf)
        ben = np.where((ben == _np_max3x3(ben, self.H, self.W)) & np.isfinite(ben), ben, -np.inf)
        neg_cost = np.where(keep & ~tabu, -cost, -np.inf)
        add_i, n_add = _np_top(ben, s)
        rem_i, n_rem = _np_top(neg_cost, s)
        n = min(s, n_add, n_rem)
        trial = keep.copy()
        trial[rem_i[:n]] = False
        trial[add_i[:n]] = True
        return trial, n, int(add_i[0]), int(rem_i[0])


def _refine_single(x, keep0, loss, rounds, shifts, p, score, swaps, hide, tol, final_tol, tile, gen, callback):
    """:func:`refine_mask`'s search for one grey image (:func:`_single_path`), on NumPy vectors.

    The same steps and decisions as the batched search (up to rounding and the order of ties);
    returns ``(keep (1, N) bool, u (1, 1, H, W), error (1,), trace (1, 2 + rounds), shift, accepted, swapped)``.
    """
    _, C, H, W = x.shape
    one = _Single(x, loss)
    to4 = lambda v: torch.from_numpy(v).view(1, 1, H, W)          # noqa: E731
    keep_in = keep0.reshape(-1).numpy().copy()
    u0, _ = one.forward(keep_in, final_tol)
    err0, _ = one.error(u0)
    keep, u, err, shift = keep_in, u0, err0, 0
    if shifts > 1:
        log_p = torch.log(p.clamp_min(1e-300))
        cand = _shift_candidates(log_p, score, keep0, shifts, gen, tile).reshape(shifts, -1).numpy()
        for j in range(1, shifts):
            uj, _ = one.forward(cand[j], tol, u0)
            ej, _ = one.error(uj)
            if ej < err:              # ties: the lowest index, i.e. the input mask first
                keep, u, err, shift = cand[j].copy(), uj, ej, j
    trace = [err0, err]
    if callback is not None:
        callback(0, to4(keep), to4(u), torch.tensor([err], dtype=torch.float64))
    accepted = swapped = 0
    if rounds > 0:
        system = one.forward(keep, tol, u)[1]      # u solves this system to tol already: only its operator
        g, nu = one.gradient(u, system, one.error(u)[1](), max(tol, ADJOINT_TOL), None)
        s = max(1, round(swaps * int(keep.sum())))
        tabu = np.zeros(one.N, dtype=bool)
        for r in range(rounds):
            if hide == "probe":
                th, tw = tile.shape
                rolled = torch.roll(tile, ((37 * r) % th, (23 * r) % tw), (0, 1))
                cost = one.probe_costs(u, keep, tol, threshold_map((1, 1, H, W), tile=rolled).reshape(-1).numpy())
            else:
                cost = -g
            trial, n, add1, rem1 = one.propose(keep, g, s, tabu, cost)
            ut, system = one.forward(trial, tol, u)
            et, grad_u = one.error(ut)
            better = et < err and n > 0
            if better:
                keep, u, err = trial, ut, et
                if r < rounds - 1:    # the adjoint solve only for an accepted trial, and not after the last round
                    g, nu = one.gradient(u, system, grad_u(), max(tol, ADJOINT_TOL), nu)
                    tabu[:] = False
                accepted += 1
                swapped += n
            else:
                if s == 1 and n > 0:  # a rejected single swap bars its two pixels until the next accepted swap
                    tabu[add1] = tabu[rem1] = True
                s = max(1, s // 2)
            trace.append(err)
            if callback is not None:
                callback(r + 1, to4(keep), to4(u), torch.tensor([err], dtype=torch.float64))
    if shifts > 1 or rounds > 0:
        uf, _ = one.forward(keep, final_tol, u)
        ef, _ = one.error(uf)
        if ef <= err0:
            u, err = uf, ef
        else:
            keep, u, err, shift, accepted, swapped = keep_in, u0, err0, 0, 0, 0
    t = lambda v: torch.tensor([v])                                  # noqa: E731
    return (torch.from_numpy(keep).view(1, -1), to4(u), torch.tensor([err], dtype=torch.float64),
            torch.tensor([trace], dtype=torch.float64),
            t(shift), t(accepted), t(swapped))


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

def refine_mask(f: torch.Tensor, mask: torch.Tensor, *, rounds: int = 8, shifts: int = 1,
                density_map: torch.Tensor | None = None, snap_score: torch.Tensor | None = None,
                swaps: float = 0.125, hide: str = "probe", metric: str = "masknet", tol: float = 3e-3,
                final_tol: float = 1e-6, solver: str = "cg",
                tile: torch.Tensor | None = None,
                generator=None, callback=None, full_output: bool = False):
    """Refine a mask for homogeneous diffusion inpainting at its density (see the module doc).

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point (worked on in float64).
    mask : Tensor
        Binary mask, 1 = known pixel, of the shape the mask functions return
        for ``f``: ``(B, 1, H, W)``, ``(1, H, W)`` or ``(H, W)``. Each image
        needs a known and an unknown pixel.
    rounds : int >= 0
        Adjoint-guided exchange rounds (each a probe and a forward solve, and
        an adjoint solve if its swap is kept).
    shifts : int >= 1
        Candidates of the best-of-shifts step: the input mask and ``shifts - 1``
        dithers of ``density_map`` with randomly shifted/flipped tiles.
    density_map : Tensor (B, 1, H, W), optional
        Non-negative density the mask was dithered from (any scale), e.g.
        :func:`pdeflow.inpaint.masks.analytic.laplacian_density`; needed for
        ``shifts > 1``.
    snap_score : Tensor (B, 1, H, W), optional
        If the mask was snapped to extrema
        (:func:`pdeflow.inpaint.masks.analytic.snap_to_extrema`), its score, so the
        candidates are snapped alike.
    swaps : float in (0, 1]
        Pixel pairs swapped in the first round, as a fraction of the known
        pixels (at least 1); halved per image after a rejected round.
    hide : {'probe', 'adjoint'}
        How a round ranks the known pixels to hide. ``'probe'`` (default):
        by their measured cost, the squared error at a pixel when a random
        subset of non-touching known pixels is hidden at once (one more
        forward solve per round; only probed pixels are hidden that round).
        ``'adjoint'``: by the linearised cost ``-g``, which is free but
        blind to the large change of hiding a pixel (see the module doc for
        the numbers).
    metric : {'masknet', 'mse', 'mae'}
        The error minimised (:func:`image_loss`). The default, the mask
        network's training loss, lowered both the MAE and (1 - SSIM) more
        than the MSE did on training crops.
    tol : float
        Relative residual of the search's diffusion solves (all warm-started
        but the first adjoint one); the probe and adjoint solves, which only
        rank pixels, stop at ``max(tol, 1e-2)``.
    final_tol : float
        Relative residual of the solves of the input and the result, whose
        errors decide what is returned (:func:`~pdeflow.inpaint.diffuse`'s
        default 1e-6).
    solver : {'cg', 'mg'}
        Solver of :func:`~pdeflow.inpaint.diffuse`. Every forward solve is
        warm-started (from the input's inpainting or the current one), where
        plain CG (default) needs few iterations and no multigrid set-up; so
        is every adjoint solve but the first (about 100 CG iterations at
        64 x 64, where multigrid's set-up costs about as much as it saves).
        One grey CPU image at a time, the whole search runs on NumPy vectors
        (see the module doc), CG on the explicit CSR matrix
        (:func:`pdeflow.linalg.cg_matrix`).
    tile : Tensor (h, w), optional
        Threshold tile of the shifted dithers (default: the 64 x 64 blue-noise
        tile the mask functions use).
    generator : None, int or torch.Generator
        Random tile shifts.
    callback : callable, optional
        Called as ``callback(r, mask, u, error)`` after the best-of-shifts step
        (``r = 0``) and after exchange round ``r = 1 .. rounds``, with the
        current masks ``(B, 1, H, W)`` (bool), their inpaintings ``(B, C, H,
        W)`` (float64) and errors ``(B,)``; for inspection (the benchmark
        reads the quality/time curve from one run this way).
    full_output : bool
        Return a :class:`RefineResult`.

    Returns
    -------
    Tensor
        The refined mask, shape of ``mask``, dtype of ``f``, with the same
        number of known pixels per image and an error (solved to
        ``final_tol``) never larger than the input's.

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
    for name, value in (("tol", tol), ("final_tol", final_tol)):
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
    x = f4.detach().to(torch.float64)
    N = H * W
    keep = keep0

    loss = _Loss(x, metric)
    if SINGLE_IMAGE_PATH and _single_path(x, solver):
        keep, u, err, trace, shift, accepted, swapped = _refine_single(
            x, keep0, loss, rounds, shifts, p, score, swaps, hide, tol, final_tol, tile, gen, callback)
        m4 = keep.view(1, 1, H, W).to(device=f4.device, dtype=f4.dtype)
        out = ops.unbatch(m4, f.dim())
        if not full_output:
            return out
        return RefineResult(mask=out, u=u, error=err, trace=trace, shift=shift, accepted=accepted, swapped=swapped,
                            seconds=time.perf_counter() - t0)

    # 1. best of the shifted tiles (candidate 0: the input mask), one batched solve
    u0, err0 = _evaluate(x, keep, loss, final_tol, solver)
    shift = torch.zeros(B, dtype=torch.long, device=x.device)
    u, err = u0, err0
    if shifts > 1:
        log_p = torch.log(p.clamp_min(1e-300))
        cand = _shift_candidates(log_p, score, keep, shifts, gen, tile).to(x.device)   # (B, n, N)
        xn = x.repeat_interleave(shifts - 1, 0)
        un, en = _evaluate(xn, cand[:, 1:].reshape(-1, N), _Loss(xn, metric), tol, solver,
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
        _, _, gradient = _evaluate_graph(x, keep, loss, tol, solver, x0=u)
        g, nu = gradient()
        s = (swaps * keep.sum(1).to(torch.float64)).round().clamp_min(1).long()
        tabu = torch.zeros_like(keep)
        for r in range(rounds):
            cost = _probe_costs(x, u, keep, tol, solver, tile, r) if hide == "probe" else None
            trial, n, add1, rem1 = _propose(keep, g, s, tabu, H, W, cost)
            if r == rounds - 1:     # the last round's derivative is never used
                ut, et = _evaluate(x, trial, loss, tol, solver, x0=u)
            else:
                ut, et, gradient = _evaluate_graph(x, trial, loss, tol, solver, x0=u, adjoint_x0=nu)
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
        uf, ef = _evaluate(x, keep, loss, final_tol, solver, x0=u)
        better = ef <= err0
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


_OPTIONS = ("rounds", "shifts", "swaps", "hide", "metric", "tol", "solver", "generator")


def refine_options(refine, who: str) -> dict | None:
    """The ``refine=`` option of the mask functions as keywords of :func:`refine_mask` (None: no refinement).

    ``refine`` is 0 or None (none), an int ``r >= 0`` (``r`` exchange rounds,
    one tile) or a dict of :func:`refine_mask` keywords among ``rounds``,
    ``shifts``, ``swaps``, ``metric``, ``tol``, ``solver``, ``generator``
    (e.g. ``{"shifts": 4, "rounds": 8}``).

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
