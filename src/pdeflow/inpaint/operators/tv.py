"""Total variation (TV) inpainting: the image of least (smoothed) total variation that keeps the known pixels.

The minimiser of the smoothed TV energy

    J(u) = sum_i sqrt(s_i(u) + eps^2),   s_i = 1/2 sum_c (e_y,i^2 + e_y,i-1^2 + e_x,i^2 + e_x,i-1^2),

subject to ``u = f`` on the known pixels (Chan and Shen 2002): ROF with a fidelity term of infinite weight on the
mask and none elsewhere. ``s_i`` is the squared gradient at pixel ``i`` averaged over its forward and backward
differences (``e`` the differences across the pixel's edges, zero across the image boundary), summed over the
channels: colour images are coupled (vectorial TV, as :func:`pdeflow.ops.tv`), one diffusivity for all channels.
The mean over forward and backward differences makes ``J`` invariant under rotations by 90 degrees and flips. ``J``
is convex (each term is a Euclidean norm of an affine function of ``u``) and strictly convex on the unknowns, so the
minimiser is unique; its gradient is ``A(u) u`` with ``A(u)`` the operator of
:mod:`~pdeflow.inpaint.operators.tensor_diffusion` for the isotropic field ``D = g I``, ``g = 1 / sqrt(s + eps^2)``.

``eps`` is relative: ``eps * (max - min)`` of the image's known values, so the result follows an affine change
of the intensities (``inpaint_tv(a f + c) = a inpaint_tv(f) + c``).

TV inpainting suits holes (scratches, text, removed objects), whose boundary it continues with straight level
lines. From isolated known points it does not interpolate: a point has no perimeter to pay for, so the minimiser
is nearly flat with the known values as small plateaus or spikes (in the continuum a point has zero capacity for
TV); sparse data call for diffusion or EED.

The solver: lagged diffusivity (Vogel and Oman 1996), each step the linear solve with ``g`` frozen, started from
homogeneous diffusion inpainting. Each step minimises the quadratic majorant of ``J`` at the current ``u`` (the
tangent of the concave ``s -> sqrt(s + eps^2)``), and CG from the current ``u`` decreases that quadratic at every
iteration, so ``J`` decreases monotonically even with the loose linear solves; the energy after each step is in the
full output. ``g`` varies by orders of magnitude (``1 / eps`` on flat parts), so the multigrid V-cycle is scaled by
each pixel's mean diffusivity.

Gradients. :func:`inpaint_tv` is differentiable with respect to ``f`` (not the mask) by implicit differentiation:
at the minimiser ``w grad J(u) = 0`` (``w`` = 1 on the unknowns), so for ``g = dl/du`` the backward solves
``(w H w) nu = w g`` with the Hessian ``H`` of ``J`` at ``u`` (symmetric positive definite on the unknowns; one
CG solve preconditioned as the forward's steps) and returns ``dl/df = m (g - H nu)``, plus the term of ``eps``'s
dependence on the range of ``f`` (at the pixels of the largest and the smallest known value). The gradient is
exact up to the tolerances of the forward iteration and the backward solve.
"""
from __future__ import annotations

import warnings

import torch

from ... import ops
from ...linalg import cg
from ...multigrid import Multigrid
from ..checks import check_call, check_positive
from .tensor_diffusion import (
    TensorOperator,
    edge_sum,
    grad_transpose,
    known_range,
    lagged_diffusivity,
    pixel_sum,
)

__all__ = ["inpaint_tv", "solve_unchecked", "tv_energy", "EPS"]

#: Default smoothing of the TV, relative to the range of the known values.
EPS = 1e-2
#: Relative residual of each lagged-diffusivity step's CG solve, and its iteration cap.
INNER_RTOL = 0.3
INNER_MAX_ITER = 50


def _squared_gradient(u: torch.Tensor):
    """``(e_y, e_x, s)``: the differences and ``s`` (B, 1, H, W) of the module doc."""
    ey, ex = torch.diff(u, dim=-2), torch.diff(u, dim=-1)
    s = (pixel_sum(ey * ey, -2) + pixel_sum(ex * ex, -1)).sum(1, keepdim=True).mul_(0.5)
    return ey, ex, s


def tv_energy(u: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``J(u)`` of the module doc per image of ``u`` (B, C, H, W), for ``eps`` (B,) (absolute), in float64.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tv import tv_energy
    >>> u = torch.zeros(1, 1, 3, 4, dtype=torch.float64)
    >>> tv_energy(u, torch.full((1,), 0.5, dtype=torch.float64))    # H W eps for a constant image
    tensor([6.], dtype=torch.float64)
    """
    s = _squared_gradient(u)[2]
    return (s + eps.view(-1, 1, 1, 1).square()).sqrt().flatten(1).double().sum(1)


def _operator(u: torch.Tensor, eps2: torch.Tensor, w: torch.Tensor) -> TensorOperator:
    """The lagged operator at ``u``: ``D = g I`` with ``g = (s + eps^2)^(-1/2)``."""
    g = _squared_gradient(u)[2].add_(eps2.view(-1, 1, 1, 1)).rsqrt_()
    return TensorOperator(0.5 * edge_sum(g, -2), 0.5 * edge_sum(g, -1), None, w)


class Hessian:
    """The Hessian ``H`` of ``J`` at ``u`` (B, C, H, W) for ``eps`` (B,), and ``dJ'/deps`` (see the module doc).

    ``H v = G^T (a e_v + e_u edge_sum(q))`` with ``a`` the lagged edge weights, ``q = -g^3 t / 4`` and
    ``t = sum_c pixel_sum(e_u e_v)`` (``t_i`` the derivative of ``s_i`` along ``v``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tv import Hessian, tv_energy
    >>> u, v = torch.randn(2, 1, 1, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> eps = torch.full((1,), 0.3, dtype=torch.float64)
    >>> h = Hessian(u, eps, torch.ones_like(u))
    >>> d2 = torch.autograd.functional.hvp(lambda x: tv_energy(x, eps).sum(), u, v)[1]
    >>> bool(torch.allclose(h.apply(v), d2))
    True
    """

    def __init__(self, u: torch.Tensor, eps: torch.Tensor, w: torch.Tensor):
        self.ey, self.ex, s = _squared_gradient(u)
        self.eps = eps.view(-1, 1, 1, 1)
        self.g = (s + self.eps.square()).rsqrt()
        self.g3 = self.g ** 3
        self.a_y, self.a_x = 0.5 * edge_sum(self.g, -2), 0.5 * edge_sum(self.g, -1)
        self.w = w

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` on every pixel."""
        vy, vx = torch.diff(v, dim=-2), torch.diff(v, dim=-1)
        t = (pixel_sum(self.ey * vy, -2) + pixel_sum(self.ex * vx, -1)).sum(1, keepdim=True)
        q = t.mul_(self.g3).mul_(-0.25)
        return grad_transpose(vy.mul_(self.a_y).addcmul_(self.ey, edge_sum(q, -2)),
                              vx.mul_(self.a_x).addcmul_(self.ex, edge_sum(q, -1)))

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.apply(v).mul_(self.w)

    def eps_derivative(self) -> torch.Tensor:
        """``d (grad J) / d eps`` (B, C, H, W): ``G^T (edge mean of -eps g^3) e_u``."""
        c = self.g3 * (-self.eps)
        return grad_transpose(self.ey * (0.5 * edge_sum(c, -2)), self.ex * (0.5 * edge_sum(c, -1)))

    def pixel_weight(self) -> torch.Tensor:
        """The lagged operator's mean edge weight per pixel: the preconditioner's scaling."""
        return TensorOperator(self.a_y, self.a_x, None, self.w).pixel_weight()


def _solve(f4, m, eps_rel, tol, max_iter, u0=None, energy=False):
    eps = eps_rel * known_range(f4, m)
    eps2 = eps.square()
    w = 1.0 - m
    return lagged_diffusivity(f4, m, lambda u: _operator(u, eps2, w), u0=u0, tol=tol, max_iter=max_iter,
                              inner_rtol=INNER_RTOL, inner_max_iter=INNER_MAX_ITER, scale=True, what="inpaint_tv",
                              energy=(lambda u: tv_energy(u, eps)) if energy else None)


class _TVFunction(torch.autograd.Function):
    """``u = inpaint_tv(f)`` with the implicit backward of the module doc."""

    @staticmethod
    def forward(ctx, f4, m, eps_rel, tol, max_iter, info):
        res = _solve(f4.detach(), m, eps_rel, tol, max_iter, energy=info["energy"])
        info["result"] = res
        ctx.opts = (eps_rel, tol, max_iter)
        ctx.save_for_backward(f4, m, res.u)
        return res.u

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        f4, m, u = ctx.saved_tensors
        eps_rel, tol, max_iter = ctx.opts
        f4 = f4.detach()
        rng = known_range(f4, m)
        w = 1.0 - m
        h = Hessian(u, eps_rel * rng, w)
        s = h.pixel_weight().rsqrt_() * w     # (B, C, H, W) where channels have their own masks
        mg = Multigrid(m)
        btol = max(1e-2 * tol, 10 * torch.finfo(u.dtype).eps)
        nu, iters = cg(h, (w * g).expand_as(u).contiguous(), None, tol=btol, max_iter=10 * max_iter,
                       precond=lambda r: mg.precondition(r * s).mul_(s))
        nu.mul_(w)
        if bool((iters >= 10 * max_iter).any()):
            warnings.warn(f"inpaint_tv (backward solve): max_iter={10 * max_iter} reached before tol={btol:g}",
                          RuntimeWarning, stacklevel=2)
        grad = m * (g - h.apply(nu))
        # eps = eps_rel (max - min) of the known values: its derivative reaches the two extreme pixels
        dl_deps = (nu * h.eps_derivative()).flatten(1).sum(1).neg_()
        k = (m > 0).expand_as(f4)
        hi = torch.where(k, f4, -torch.inf).flatten(1)
        lo = torch.where(k, f4, torch.inf).flatten(1)
        d = torch.where(hi.amax(1) > lo.amin(1), eps_rel * dl_deps, torch.zeros_like(dl_deps)).to(grad.dtype)
        delta = torch.zeros_like(hi)
        rows = torch.arange(delta.shape[0], device=delta.device)
        delta[rows, hi.argmax(1)] += d
        delta[rows, lo.argmin(1)] -= d
        grad = grad.expand_as(f4) + delta.view(f4.shape)
        return grad, None, None, None, None, None


def solve_unchecked(f4: torch.Tensor, m: torch.Tensor, *, u0: torch.Tensor | None = None,
                    tol: float = 1e-3) -> torch.Tensor:
    """TV inpainting with the default ``eps``, unchecked (the mask methods' solve).

    ``f4`` (B, C, H, W) float32 or float64, ``m`` (B, 1, H, W) binary in its dtype with a known pixel per image,
    ``u0`` a warm start of ``f4``'s shape or None (homogeneous diffusion); returns ``u`` (B, C, H, W).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tv import solve_unchecked
    >>> f = torch.full((1, 1, 8, 8), 0.5)
    >>> m = torch.zeros(1, 1, 8, 8)
    >>> m[..., 4, 4] = 1
    >>> bool(torch.allclose(solve_unchecked(f, m), f))
    True
    """
    return _solve(f4, m, EPS, tol, 300, u0=u0).u


@ops.follows_layout_rule("f", also=("mask",))
def inpaint_tv(f: torch.Tensor, mask: torch.Tensor, *, eps: float = EPS, tol: float = 1e-3, max_iter: int = 300,
               full_output: bool = False):
    """Total variation inpainting of ``f`` from the pixels where ``mask`` is 1.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), float32 or float64 (float16 and bfloat16 are computed in float32 and returned in their
        dtype), at least 2 x 2 pixels; a NumPy array is taken as a tensor. Only the values on the mask are
        used (the others may be NaN). Differentiable (see the module doc).
    mask : Tensor
        Binary (bool or 0/1), 1 = known pixel: shape (H, W), (1, H, W), (B, 1, H, W) or anything that
        broadcasts to ``f`` along the batch and channel axes (channels may have their own masks, as in
        :func:`~pdeflow.inpaint.inpaint_eed`: the channels stay coupled); at least one known pixel per image
        and channel. Not differentiated.
    eps : float, optional
        Smoothing of the TV, relative to the range (max - min) of the image's known values; smaller is closer
        to exact TV and takes more iterations; supported 1e-3 to 0.1.
    tol : float, optional
        Nonlinear relative residual (diagonally scaled ``||w A(u) u|| / ||w A(u) (m f)||``, ``A(u) u`` the
        energy's gradient; see :mod:`~pdeflow.inpaint.operators.tensor_diffusion`) at which the iteration stops,
        per image.
    max_iter : int, optional
        Lagged-diffusivity steps at most; a RuntimeWarning when reached first.
    full_output : bool, optional
        Return a :class:`~pdeflow.inpaint.operators.tensor_diffusion.LaggedResult` with the outer and inner
        iteration counts, the residual and the energy after each step.

    Returns
    -------
    u : Tensor, shape and dtype of ``f``
        Equal to ``f`` on the mask. A ``LaggedResult`` with ``full_output=True``.

    References
    ----------
    .. [1] T. F. Chan, J. Shen, "Mathematical models for local nontexture inpaintings", SIAM Journal on
       Applied Mathematics, 2002.
    .. [2] C. R. Vogel, M. E. Oman, "Iterative methods for total variation denoising", SIAM Journal on
       Scientific Computing, 1996.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tv import inpaint_tv
    >>> f = torch.zeros(12, 12, dtype=torch.float64)
    >>> f[:, 6:] = 1.0                                   # a vertical edge
    >>> mask = torch.ones(12, 12)
    >>> mask[4:8, 3:9] = 0                               # a hole across it
    >>> u = inpaint_tv(f, mask, eps=1e-3, tol=1e-8)
    >>> bool((u[:, :6] < 0.5).all()), bool((u[:, 6:] > 0.5).all())    # the edge continues through the hole
    (True, True)
    """
    who = "inpaint_tv"
    f = ops.check_tensor(f, f"{who}: f")
    f4, m, nd = check_call(f, mask, who, tol, max_iter)
    eps = check_positive(eps, "eps", who)
    info = {"energy": full_output}
    m = m.detach()
    if torch.is_grad_enabled() and f4.requires_grad:
        u = _TVFunction.apply(f4, m, eps, float(tol), int(max_iter), info)
    else:
        info["result"] = _solve(f4, m, eps, float(tol), int(max_iter), energy=full_output)
        u = info["result"].u
    u = ops.unbatch(u, nd).to(f.dtype)
    if full_output:
        res = info["result"]
        res.u = u
        return res
    return u

