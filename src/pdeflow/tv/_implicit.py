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
``div`` per iteration (in place, on buffers allocated once), each image stopping on its own at the
residual its forward solve's accuracy calls for (:func:`backward_rtol`).
"""
from __future__ import annotations

import warnings

import torch

from ..ops import div
from ._accuracy import data_range
from ._checks import ConvergenceWarning
from ._grid import PLAIN, Grid
from ._rof_methods import bdot


def _pixel_norm(z: torch.Tensor, channelwise: bool) -> torch.Tensor:
    """Pointwise norm of a field ``(B, C, 2, H, W)`` as ``(B, C|1, 1, H, W)``."""
    sq = (z * z).sum(2, keepdim=True)
    return (sq if channelwise else sq.sum(1, keepdim=True)).sqrt()


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vecdot(a.flatten(1), b.flatten(1))


#: A pixel whose gradient is not round-off counts as on an edge (not flat) where the dual field points along its
#: gradient to within this: ``<grad u, p> >= (1 - ALIGNMENT) |grad u|`` (at the solution, ``p = grad u / |grad u|``
#: there exactly, while on a flat region ``p`` is any vector in the unit ball and a computed gradient is noise).
ALIGNMENT = 0.03


def flat_threshold(u: torch.Tensor, tol: float) -> torch.Tensor:
    """Per image ``(B,)``: gradient norms at most this count as zero (flat) in :func:`apply_jacobian`.

    The computed ``u`` is within the solver's accuracy of the exact solution, whose flat pixels have an
    exactly zero gradient.  Above this threshold the dual field decides (:data:`ALIGNMENT`), which tells
    a small edge from a flat pixel's noise, so the threshold is low: ``0.1 sqrt(tol)`` times the image's
    range (the scale of the error of a solve to a relative duality gap ``tol``), at most a millionth of
    it, and no less than round-off.  Pass the data ``f``: its range holds the solution's, and is not
    zero where the whole solution is one flat region (whose computed gradients are round-off, not zero).
    """
    rng = data_range(u).clamp_min(torch.finfo(u.dtype).tiny)
    eps = torch.finfo(u.dtype).eps
    return rng * max(min(tol ** 0.5 * 0.1, 1e-6), 100 * eps)


#: The backward's relative residual as a fraction of ``sqrt(gap)`` (:func:`backward_rtol`).
BACKWARD_FRACTION = 1e-3


def backward_rtol(tol: float, dtype: torch.dtype, gap: torch.Tensor | None = None):
    """The relative residual at which :func:`apply_jacobian` stops, for a forward solved to ``tol``.

    A solve to a relative duality gap ``g`` leaves an error of relative size about ``sqrt(g)`` in ``u``
    (:func:`flat_threshold`).  The system is ill-conditioned (its error can be far above its residual),
    so the residual is taken to a thousandth of that (:data:`BACKWARD_FRACTION`), and no less than
    round-off: then the gradient no longer depends on where the conjugate gradients stop (a float32
    and a float64 cotangent give the same gradient).  ``gap``: the gaps ``(B,)`` the forward reached
    (at most ``tol`` counts: a solve that stopped short is not a reason to solve its linearisation
    more loosely); returns a float (from ``tol``) or a ``(B,)`` tensor (from ``gap``).
    """
    floor = 50 * torch.finfo(dtype).eps
    if gap is None:
        return max(tol ** 0.5 * BACKWARD_FRACTION, floor)
    g = torch.nan_to_num(gap.detach().to(dtype), nan=tol).clamp(0.0, tol)
    return (g.sqrt() * BACKWARD_FRACTION).clamp_min(floor)


def apply_jacobian(u: torch.Tensor, lam: torch.Tensor, r: torch.Tensor, *, channelwise: bool,
                   threshold: torch.Tensor, rtol: float, max_iter: int, dual: torch.Tensor, grid=None):
    """``du = r + div q(r)`` (the module docstring) for a batch ``(B, C, H, W)``.

    ``lam`` is ``(B,)`` (positive), ``threshold`` ``(B,)`` (:func:`flat_threshold`).  Each image stops
    once its residual is at most ``rtol`` (a float or ``(B,)``) times its right-hand side.  Returns ``(du, iterations,
    converged)``, the last two ``(B,)``.  ``grid``: a :class:`~pdeflow.tv._grid.Grid` for volumes and
    spacings (``u`` then ``(B, C, *spatial)``); None: the 2-D unit grid of :mod:`pdeflow.ops`.
    ``dual``: the solve's dual field ``p`` (the shape of ``grad u``); a pixel is flat unless its
    gradient is above ``threshold`` and ``p`` points along it (:data:`ALIGNMENT`).
    """
    grid = PLAIN if grid is None else grid
    u = u.contiguous()
    r = r.contiguous()
    B = u.shape[0]
    g = grid.grad(u)
    gn = _pixel_norm(g, channelwise)
    per = (B,) + (1,) * (g.dim() - 1)          # a per-image value shaped for a field
    active = gn > threshold.reshape(per)
    # an edge pixel's dual field is its unit normal: a gradient the dual does not follow is a flat pixel's noise
    along = (g * dual).sum(2, keepdim=True)
    if not channelwise:
        along = along.sum(1, keepdim=True)
    active &= along >= (1.0 - ALIGNMENT) * gn
    del along
    n = torch.where(active, g / torch.where(active, gn, torch.ones_like(gn)), torch.zeros_like(g))
    c = torch.where(active, gn / lam.reshape(per), torch.zeros_like(gn))
    minv = 1.0 / (2.0 + c)
    del g, gn, active

    # The fields keep zero entries where ``div`` reads nothing (grad_into's, preserved by the pointwise
    # products below), so the in-place kernels of the grid apply; one buffer per vector of the
    # iteration, none allocated inside it.
    b = grid.grad_into(r, torch.empty_like(n))
    s = torch.empty_like(minv)                 # the pointwise <z, n> of the projection

    def project_(z, n, s):
        """``z`` projected onto ``T`` in place: ``z - n <z, n>``."""
        if channelwise or z.shape[1] == 1:
            torch.mul(z.narrow(2, 0, 1), n.narrow(2, 0, 1), out=s)
            for k in range(1, z.shape[2]):
                s.addcmul_(z.narrow(2, k, 1), n.narrow(2, k, 1))
            return z.addcmul_(n, s, value=-1.0)
        return z.sub_(n * (z * n).sum((1, 2), keepdim=True))

    project_(b, n, s)
    bnorm = _dot(b, b).sqrt()
    rtol = torch.as_tensor(rtol, dtype=bnorm.dtype, device=bnorm.device).expand(B)
    iterations = torch.zeros(B, dtype=torch.long, device=u.device)
    converged = bnorm == 0
    out_q = torch.zeros_like(b)
    idx = torch.nonzero(~converged).reshape(-1)
    if idx.numel():
        if idx.numel() < B:
            b, n, c, minv, s, bnorm, rtol = b[idx], n[idx], c[idx], minv[idx], s[idx], bnorm[idx], rtol[idx]
        res = b                                # b is not needed past here
        q = torch.zeros_like(res)
        z = project_(torch.mul(minv, res), n, s)
        d = z.clone()
        ad = torch.empty_like(res)
        img = torch.empty_like(r if idx.numel() == B else r[idx])
        rz = _dot(res, z)
        fper = (-1,) + per[1:]
        it = 0
        while idx.numel() and it < max_iter:
            grid.div_into(d, img, scale=-1.0)          # A d = -grad div d + c d, projected onto T
            grid.grad_into(img, ad)
            ad.addcmul_(c, d)
            project_(ad, n, s)
            dad = _dot(d, ad)
            pos = dad > 0
            alpha = torch.where(pos, rz / torch.where(pos, dad, torch.ones_like(dad)), torch.zeros_like(dad))
            alpha = alpha.reshape(fper)
            q.addcmul_(alpha, d)
            res.addcmul_(alpha, ad, value=-1.0)
            it += 1
            rn = _dot(res, res).sqrt()
            done = (rn <= rtol * bnorm) | ~pos
            if it >= max_iter:
                done = torch.ones_like(done)
            if bool(done.any()):
                fin = idx[done]
                out_q[fin] = q[done]
                iterations[fin] = it
                converged[fin] = rn[done] <= rtol[done] * bnorm[done]
                keep = ~done
                idx = idx[keep]
                if not idx.numel():
                    break
                q, res, d, rz, bnorm, rtol = q[keep], res[keep], d[keep], rz[keep], bnorm[keep], rtol[keep]
                n, c, minv, s, z, ad, img = n[keep], c[keep], minv[keep], s[keep], z[keep], ad[keep], img[keep]
            project_(torch.mul(minv, res, out=z), n, s)
            rz_new = _dot(res, z)
            beta = (rz_new / torch.where(rz > 0, rz, torch.ones_like(rz))).reshape(fper)
            d.mul_(beta).add_(z)
            rz = rz_new
    return r + grid.div(out_q), iterations, converged


def differentiable(f: torch.Tensor, lam, u: torch.Tensor, p: torch.Tensor, *, tol: float, max_iter: int,
                   channelwise: bool, grid: Grid = PLAIN, gap: torch.Tensor | None = None) -> torch.Tensor:
    """``u`` (the ROF solution of ``(f, lam)``, dual field ``p``) with the implicit derivative in ``f`` and
    ``lam`` attached: see :mod:`pdeflow.tv._implicit`.  ``f`` of any shape rof takes; ``lam`` a float,
    a 0-d or a ``(B,)`` tensor; ``gap`` the ``(B,)`` relative gaps the solve reached, if known (the
    backward's stopping tolerance follows them, :func:`~pdeflow.tv._implicit.backward_rtol`)."""
    x = f.reshape((1,) * (grid.ndim + 2 - f.dim()) + tuple(f.shape))
    B = x.shape[0]
    if isinstance(lam, torch.Tensor):
        lam_b = lam.to(x.dtype).reshape(-1).expand(B)
    else:
        lam_b = torch.full((B,), float(lam), dtype=x.dtype, device=x.device)
    rtol = backward_rtol(tol, x.dtype, gap)
    if isinstance(rtol, torch.Tensor):
        rtol = rtol.reshape(-1).expand(B)
    out = _RofGrad.apply(x, lam_b, u.reshape(x.shape).detach(), p.detach(), (tol, max_iter, channelwise, grid, rtol))
    return out.reshape(f.shape)


class _RofGrad(torch.autograd.Function):
    """The ROF solution ``u`` (computed beforehand) as a function of ``(f, lam)``, differentiated
    implicitly at the solution (memory: a few images, whatever the iteration count)."""

    @staticmethod
    def forward(ctx, f, lam, u, p, cfg):
        # the flat threshold from the range of f, which holds that of u (and is not 0 where u is one
        # flat region whose computed gradients are round-off); the dual field tells edges from noise
        ctx.save_for_backward(u, p, lam, flat_threshold(f.detach(), cfg[0]))
        ctx.cfg = cfg
        return u.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        u, p, lam, threshold = ctx.saved_tensors
        tol, max_iter, channelwise, grid, rtol = ctx.cfg
        g = g.contiguous()
        w = g.clone()
        pos = torch.nonzero(lam > 0).reshape(-1)       # lam = 0 is the identity
        if pos.numel():
            rtol_pos = rtol[pos] if isinstance(rtol, torch.Tensor) else rtol
            up = u[pos]
            w_pos, _, conv = apply_jacobian(up, lam[pos], g[pos], channelwise=channelwise,
                                            threshold=threshold[pos], rtol=rtol_pos, dual=p[pos],
                                            max_iter=max_iter, grid=None if grid.plain else grid)
            w[pos] = w_pos
            if not bool(conv.all()):
                warnings.warn(f"rof backward: {int((~conv).sum())} of {conv.numel()} image(s) stopped at "
                              f"max_iter={max_iter} before the implicit-gradient solve reached rtol "
                              f"{float(torch.as_tensor(rtol_pos).min()):g}", ConvergenceWarning, stacklevel=2)
        grad_f = w if ctx.needs_input_grad[0] else None
        # d u / d lam is the Jacobian applied to div p, and the Jacobian is symmetric
        grad_lam = bdot(w, div(p) if grid.plain else grid.div(p)) if ctx.needs_input_grad[1] else None
        return grad_f, grad_lam, None, None, None
