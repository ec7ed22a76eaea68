"""The steps of :func:`~pdeflow.inpaint.masks.refine.refine_mask`'s search: the diffusion solves and their
errors, the probes of the cost of hiding known pixels, the tile-shifted candidates and the swap proposals, on
batched tensors, and the same search for one grey CPU image on NumPy vectors (:func:`refine_single`)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ...filters import max3x3
from ..operators.diffusion_system import (
    MATRIX_PATH_MAX_PIXELS,
    SingleImageSystem,
    default_max_iter,
    diffuse_recorded,
    diffuse_unchecked,
    error_map,
)
from ._refine_loss import EPS, SSIM_WEIGHT, Loss, ssim_map
from .dither import threshold_map, top_k_mask
from .snapping import snap_to_extrema

PROBE_TOL = 1e-2   # the probe solve only ranks pixels: 1e-2 ranks as well as 1e-4 (results page "Sparse inpainting")
ADJOINT_TOL = 1e-2  # so does the adjoint solve: the same quality as at 3e-3, in less time (the same page)


# ---------------------------------------------------------------------------
# The pieces
# ---------------------------------------------------------------------------

def solve(f, keep, tol, solver, x0=None):
    """Diffusion inpainting ``u`` (B, C, H, W) of ``f`` from the masks ``keep`` (B, N) bool, not recorded.

    The solver of :func:`~pdeflow.inpaint.inpaint_diffusion` without its input checks (the
    masks are made here); ``x0`` warm-starts it.
    """
    B, C, H, W = f.shape
    c = keep.view(B, 1, H, W).to(f.dtype)
    with torch.no_grad():
        u, _, _, _ = diffuse_unchecked(f, c, True, tol, default_max_iter(solver, H, W), x0, solver)
    return u


def evaluate(f, keep, loss, tol, solver, x0=None):
    """``(u, error (B,))`` of the masks ``keep`` (B, N) bool; ``loss`` a :class:`Loss` of ``f``;
    ``x0`` warm-starts the solve."""
    u = solve(f, keep, tol, solver, x0)
    return u, loss(u)[0]


def evaluate_graph(f, keep, loss, tol, solver, x0=None, adjoint_x0=None, adjoint_tol=None):
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


def probe_costs(f, u, keep, tol, solver, tile, r, probe_tol=None):
    """The cost of hiding known pixels (B, N) in round ``r``, by inpainting without them: ``inf`` where not
    probed.

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
    probe = keep & (score == max3x3(score.view(B, H, W)).view(B, H * W))
    up = solve(f, keep & ~probe, max(tol, PROBE_TOL if probe_tol is None else probe_tol), solver, x0=u)
    err = error_map(up, f).view(B, H * W)
    return torch.where(probe, err, torch.full_like(err, math.inf))


def shift_candidates(log_p, score, keep, n, generator, tile):
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


def propose(keep, g, s, tabu, H, W, hide_cost=None):
    """Swap proposal (B, N) bool and the number of pairs swapped per image (B,).

    Known pixels are hidden in order of ``hide_cost`` (B, N) (``inf``: not a
    candidate), or of the linearised cost ``-g`` without it.
    """
    B, N = keep.shape
    inf = torch.tensor(math.inf, dtype=g.dtype, device=g.device)
    cost = -g if hide_cost is None else hide_cost
    # reveal: largest benefit -g among unknown pixels, 3x3 local maxima only (no two revealed pixels touch)
    ben = torch.where(~keep & ~tabu, -g, -inf)
    pooled = max3x3(ben.view(B, H, W)).view(B, N)
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

def single_path(x: torch.Tensor, solver: str) -> bool:
    """Whether :func:`refine_mask` runs the NumPy path of :class:`_Single`: one grey CPU image that
    :func:`~pdeflow.inpaint.inpaint_diffusion`'s plain CG solves as a CSR matrix anyway (the evaluation's call)."""
    B, C, H, W = x.shape
    return B == 1 and C == 1 and x.device.type == "cpu" and solver == "cg" and H * W <= MATRIX_PATH_MAX_PIXELS


def _np_max3x3(v: np.ndarray, H: int, W: int) -> np.ndarray:
    """:func:`max3x3` of a flat (N,) array viewed as (H, W)."""
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
    """:func:`refine_mask`'s solves and errors for one grey image on flat NumPy vectors: the diffusion system's
    :class:`~pdeflow.inpaint.operators.diffusion_system.SingleImageSystem` and the error of :class:`Loss` in NumPy."""

    def __init__(self, x: torch.Tensor, loss: "Loss"):
        _, _, H, W = x.shape
        self.system = SingleImageSystem(x)
        self.H, self.W, self.N = H, W, H * W
        self.f = self.system.f
        self.loss = loss
        if loss.metric == "masknet":   # the SSIM statistics of f and the window's band matrices, as NumPy arrays
            self.gv, self.gh = loss.gv.numpy(), loss.gh.numpy()
            self.uy, self.vy = loss.uy[0, 0].numpy(), loss.vy[0, 0].numpy()
            self.f2 = self.f.reshape(H, W)

    def forward(self, keep: np.ndarray, tol: float, x0: np.ndarray | None = None):
        """``(u, system)``: inpainting of the mask ``keep`` (N,) bool, warm-started from ``x0`` (N,)."""
        return self.system.solve(keep, tol, x0)

    def error(self, u: np.ndarray):
        """``(error, dl/du function)`` of the inpainting ``u`` (N,)."""
        d = u - self.f
        if self.loss.metric == "mae":
            return float(np.abs(d).mean()), lambda: np.sign(d) / self.N
        if self.loss.metric == "mse":
            return float((d * d).mean()), lambda: d * (2.0 / self.N)
        return self._masknet(u, d)

    def _masknet(self, u: np.ndarray, d: np.ndarray):
        """:class:`Loss`'s ``'masknet'`` error and gradient for one grey image, in NumPy."""
        L, gv, gh, uy, f = self.loss, self.gv, self.gh, self.uy, self.f2
        u2 = u.reshape(self.H, self.W)
        root = np.sqrt(d * d + EPS * EPS)
        char = float((root - EPS).mean())
        ux, uxx, uxy = gv @ np.stack([u2, u2 * u2, u2 * f]) @ gh.T
        smap, dsmap = ssim_map(ux, uxx, uxy, uy, self.vy, L.C1, L.C2)
        err = char + SSIM_WEIGHT * (1 - float(smap.mean()))

        def gradient():
            back = gv.T @ (np.stack(dsmap()) * (-SSIM_WEIGHT / L.n_valid)) @ gh
            gu = back[0] + 2 * u2 * back[1] + f * back[2]
            return gu.reshape(-1) + d / root / self.N

        return err, gradient

    def gradient(self, u: np.ndarray, system, grad_u: np.ndarray, tol: float, nu0: np.ndarray | None):
        """``(dl/dc (N,), nu)``: the adjoint solve (warm-started from ``nu0``) and the mask derivative."""
        return self.system.mask_gradient(u, system, grad_u, tol, nu0)

    def probe_costs(self, u: np.ndarray, keep: np.ndarray, tol: float, score: np.ndarray,
                    probe_tol: float | None = None) -> np.ndarray:
        """:func:`probe_costs` with the round's tile score ``score`` (N,) given."""
        sc = np.where(keep, score, -1.0)
        probe = keep & (sc == _np_max3x3(sc, self.H, self.W))
        up, _ = self.forward(keep & ~probe, max(tol, PROBE_TOL if probe_tol is None else probe_tol), u)
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


def refine_single(x, keep0, loss, rounds, shifts, p, score, swaps, hide, tol, final_tol, tile, gen, callback,
                  probe_tol=None):
    """:func:`refine_mask`'s search for one grey image (:func:`single_path`), on NumPy vectors.

    The same steps and decisions as the batched search (up to rounding and the order of ties);
    returns ``(keep (1, N) bool, u (1, 1, H, W), error (1,), trace (1, 2 + rounds), shift, accepted, swapped,
    reverted)``, ``reverted`` (1,) bool: the search's result did not improve on the input at ``final_tol``.
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
        cand = shift_candidates(log_p, score, keep0, shifts, gen, tile).reshape(shifts, -1).numpy()
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
                cost = one.probe_costs(u, keep, tol, threshold_map((1, 1, H, W), tile=rolled).reshape(-1).numpy(),
                                       probe_tol)
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
    reverted = False
    if shifts > 1 or rounds > 0:
        uf, _ = one.forward(keep, final_tol, u)
        ef, _ = one.error(uf)
        if ef <= err0:
            u, err = uf, ef
        else:
            reverted = bool(shift or accepted)
            keep, u, err, shift, accepted, swapped = keep_in, u0, err0, 0, 0, 0
    t = lambda v: torch.tensor([v])                                  # noqa: E731
    return (torch.from_numpy(keep).view(1, -1), to4(u), torch.tensor([err], dtype=torch.float64),
            torch.tensor([trace], dtype=torch.float64),
            t(shift), t(accepted), t(swapped), t(reverted))
