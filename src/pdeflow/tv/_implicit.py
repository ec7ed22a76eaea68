"""Implicit differentiation of the ROF solution map ``(f, lam) -> u`` (used by :func:`~pdeflow.tv.rof`).

At the solution ``u = f + lam div p`` with ``p`` in the subdifferential of the TV at ``grad u``: on
the pixels where ``grad u != 0`` (set ``I``) ``p = n := grad u / |grad u|``, and on the flat pixels
(``grad u = 0``, set ``J``) ``p`` is any vector of norm at most one.  Differentiating these
conditions, with ``r = df + dlam div p`` and ``q = lam dp``,

    du = r + div q,   q = argmin_{q in T} 1/2 ||r + div q||^2 + 1/2 sum_I (|grad u| / lam) |q|^2,

where ``T`` is the set of fields tangent to the unit sphere at ``n`` on ``I`` and free on ``J``.  The
free ``q`` on ``J`` is the multiplier that keeps ``grad du = 0`` there: ``du`` is constant on every
connected component of flat pixels (each flat pixel tied to its right and lower neighbours).  This is
the element of the generalised Jacobian that keeps the flat regions of the solution flat (the
derivative of the prox where its structure does not change: everywhere but a null set of inputs).

The map ``r -> du = r + div q(r)`` is symmetric (``du = (I - D^T (D D^T + C)_T^+ D) r`` with
``D = grad``), so the backward pass applies the same map to the incoming gradient.  ``q`` solves
``P_T (D D^T + C) q = P_T D r``, a symmetric positive semi-definite system (consistent: its null space,
divergence-free fields on flat regions, does not change ``du``), by conjugate gradients with the
pointwise projection ``P_T`` and the diagonal preconditioner ``1 / (2 + c)``: one ``grad`` and one
``div`` per iteration, each image stopping on its own.
"""
from __future__ import annotations

import torch

from ..ops import div as _div
from ..ops import grad as _grad


def _pixel_norm(z: torch.Tensor, channelwise: bool) -> torch.Tensor:
    """Pointwise norm of a field ``(B, C, 2, H, W)`` as ``(B, C|1, 1, H, W)``."""
    sq = (z * z).sum(2, keepdim=True)
    return (sq if channelwise else sq.sum(1, keepdim=True)).sqrt()


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1))


def flat_threshold(u: torch.Tensor, tol: float) -> torch.Tensor:
    """Per image ``(B,)``: gradient norms at most this count as zero (flat) in :func:`apply_jacobian`.

    The computed ``u`` is within the solver's accuracy of the exact solution, whose flat pixels have an
    exactly zero gradient: ``sqrt(tol)`` times the image's range (the scale of the error of a solve to
    a relative duality gap ``tol``), and no less than round-off.  Pass the data ``f``: its range holds
    the solution's, and is not zero where the whole solution is one flat region (whose computed
    gradients are round-off, not zero).
    """
    B = u.shape[0]
    flat = u.reshape(B, -1)
    rng = (flat.amax(1) - flat.amin(1)).clamp_min(torch.finfo(u.dtype).tiny)
    eps = torch.finfo(u.dtype).eps
    return rng * max(tol ** 0.5 * 0.1, 100 * eps)


def apply_jacobian(u: torch.Tensor, lam: torch.Tensor, r: torch.Tensor, *, channelwise: bool,
                   threshold: torch.Tensor, rtol: float, max_iter: int, grid=None):
    """``du = r + div q(r)`` (the module docstring) for a batch ``(B, C, H, W)``.

    ``lam`` is ``(B,)`` (positive), ``threshold`` ``(B,)`` (:func:`flat_threshold`).  Each image stops
    once its residual is at most ``rtol`` times its right-hand side.  Returns ``(du, iterations,
    converged)``, the last two ``(B,)``.  ``grid``: a :class:`~pdeflow.tv._grid.Grid` for volumes and
    spacings (``u`` then ``(B, C, *spatial)``); None: the 2-D unit grid of :mod:`pdeflow.ops`.
    """
    B = u.shape[0]
    grad, div = (_grad, _div) if grid is None else (grid.grad, grid.div)
    g = grad(u)
    gn = _pixel_norm(g, channelwise)
    per = (B,) + (1,) * (g.dim() - 1)          # a per-image value shaped for a field
    active = gn > threshold.reshape(per)
    n = torch.where(active, g / torch.where(active, gn, torch.ones_like(gn)), torch.zeros_like(g))
    c = torch.where(active, gn / lam.reshape(per), torch.zeros_like(gn))
    minv = 1.0 / (2.0 + c)

    def project(z, n=n, channelwise=channelwise):
        s = (z * n).sum(2, keepdim=True)
        if not channelwise:
            s = s.sum(1, keepdim=True)
        return z - n * s

    def op(z, c=c, grad=grad, div=div):
        return -grad(div(z)) + c * z

    b = project(grad(r))
    q = torch.zeros_like(b)
    res = b.clone()
    bnorm = _dot(b, b).sqrt()
    iterations = torch.zeros(B, dtype=torch.long, device=u.device)
    converged = bnorm == 0
    out_q = torch.zeros_like(b)
    idx = torch.nonzero(~converged).reshape(-1)
    if idx.numel():
        b, q, res, bnorm = b[idx], q[idx], res[idx], bnorm[idx]
        n, c, minv = n[idx], c[idx], minv[idx]
        z = project(minv * res, n)
        d = z.clone()
        rz = _dot(res, z)
        it = 0
        while idx.numel() and it < max_iter:
            ad = project(op(d, c), n)
            dad = _dot(d, ad)
            alpha = rz / torch.where(dad > 0, dad, torch.ones_like(dad))
            alpha = torch.where(dad > 0, alpha, torch.zeros_like(alpha)).reshape((-1,) + per[1:])
            q = q + alpha * d
            res = res - alpha * ad
            it += 1
            rn = _dot(res, res).sqrt()
            done = (rn <= rtol * bnorm) | (dad <= 0)
            if it >= max_iter:
                done = torch.ones_like(done)
            if bool(done.any()):
                fin = idx[done]
                out_q[fin] = q[done]
                iterations[fin] = it
                converged[fin] = rn[done] <= rtol * bnorm[done]
                keep = ~done
                idx = idx[keep]
                if not idx.numel():
                    break
                q, res, d, rz, bnorm = q[keep], res[keep], d[keep], rz[keep], bnorm[keep]
                n, c, minv = n[keep], c[keep], minv[keep]
            z = project(minv * res, n)
            rz_new = _dot(res, z)
            beta = (rz_new / torch.where(rz > 0, rz, torch.ones_like(rz))).reshape((-1,) + per[1:])
            d = z + beta * d
            rz = rz_new
    return r + div(out_q), iterations, converged
