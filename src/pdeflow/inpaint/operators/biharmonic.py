"""Biharmonic inpainting: ``u = f`` on the known pixels, the discrete biharmonic equation on the others.

The system. With ``L`` the Neumann Laplacian of :func:`pdeflow.ops.laplacian` (5-point on images, 7-point on
volumes, with a grid ``spacing`` if given), a mask ``m`` (1 = known) and ``w = 1 - m``, the inpainting
minimises ``||L u||^2`` over all ``u`` with ``u = f`` on the mask. ``L`` is symmetric, so the unknown values
``x`` (zero on the mask, ``u = m f + x``) solve the normal equations

    A x = w L (L (w x)),     b = -w L (L (m f)),

i.e. ``(L^2)_UU x_U = -(L^2)_UK f_K`` on the unknown pixels ``U``, the known ones ``K``: the discrete
biharmonic equation ``L^2 u = 0`` on ``U``. ``A`` is symmetric positive definite as soon as each image has
one known pixel (the null space of ``L`` is the constants). This is exactly the system of scikit-image's
``skimage.restoration.inpaint_biharmonic``, whose row for an unknown pixel is ``laplace(laplace(e_p))`` of
``scipy.ndimage`` with mode ``'reflect'`` (the Neumann boundary) on the pixel's neighbourhood; scikit-image
then clips its result to the range of the known values, which ``clip=True`` (the default) does as well.

Solvers (``solver``):

* ``'mg'``: conjugate gradients on ``A``, preconditioned by two V-cycles of the multigrid of the masked
  Laplacian ``-w L w`` (:class:`pdeflow.multigrid.Multigrid`, :class:`~pdeflow.multigrid.Multigrid3d` for
  volumes): ``A`` differs from ``(w L w)^2`` only by the couplings through the known pixels, so the square
  of an approximate inverse of ``-w L w`` is one of ``A``; a V-cycle is symmetric, so its square is a
  symmetric positive definite preconditioner. Whole-image work per iteration, the iteration count nearly
  flat in the image size, batched on the device and dtype of ``f``; the stopping rule is the relative
  residual ``||b - A x|| / ||b|| <= tol`` per image (its channels together), as for
  :func:`pdeflow.inpaint.inpaint_diffusion`.
* ``'direct'``: a sparse LU factorisation (SuperLU with a symmetric minimum-degree ordering) of ``A`` on the
  unknown pixels only, assembled from their coordinates, on the CPU in float64 (the result is returned on
  the device and in the dtype of ``f``). Its cost grows with the number of unknowns and their fill-in, not
  with the image: small holes in a large image.
* ``'auto'`` (default): ``'direct'`` when at most :data:`DIRECT_MAX_FRACTION` of the pixels (voxels) and at
  most :data:`DIRECT_MAX_UNKNOWNS` of them are unknown in every mask, ``'mg'`` otherwise (sparse data leaves
  most pixels unknown and factorises with a large fill-in).

Gradients. The solve is one autograd node when ``f`` or the mask requires grad: with ``g = dl/du``, the
adjoint ``nu`` solves ``A nu = w g`` (the same operator, multigrid hierarchy or factorisation), and

    dl/df = m (g - L^2 nu),     dl/dm = lam (f - u + L^2 u),     lam = nu + m (g - L^2 nu),

the mask derivative being that of the continuous-mask problem ``c (u - f) + (1 - c) L^2 u = 0`` at the
binary mask (as for :func:`pdeflow.inpaint.inpaint_diffusion`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

from ... import ops
from ...errors import UserInputError
from ...linalg import eager
from ...multigrid import Multigrid, Multigrid3d
from ...threads import auto_threads
from ..checks import check_mask, check_start, known_finite
from .diffusion_system import sum_to, warn_max_iter

__all__ = ["inpaint_biharmonic", "BiharmonicResult", "solve_unchecked", "SOLVERS"]

#: The solvers of :func:`inpaint_biharmonic`.
SOLVERS = ("auto", "mg", "direct")

#: ``solver='auto'`` factorises when at most this fraction of the pixels is unknown (and at most
#: :data:`DIRECT_MAX_UNKNOWNS` pixels are) in every mask.
DIRECT_MAX_FRACTION = 0.25
#: ``solver='auto'`` factorises at most this many unknown pixels per mask.
DIRECT_MAX_UNKNOWNS = 1 << 20

#: The iteration limit of the multigrid solver when none is given.
DEFAULT_MAX_ITER = 500


@dataclass
class BiharmonicResult:
    """Output of :func:`inpaint_biharmonic` with ``full_output=True``.

    Attributes
    ----------
    u : Tensor
        The inpainting, shape and dtype of ``f``.
    iterations : Tensor of int64, shape (B,)
        CG iterations per image (0 for the direct solver).
    residual : Tensor, shape (B,)
        Relative residual ``||b - A x|| / ||b||`` per image of the returned solution (before ``clip``).
    solver : str
        The solver that ran, ``'mg'`` or ``'direct'``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.biharmonic import inpaint_biharmonic
    >>> f = torch.linspace(0, 1, 64, dtype=torch.float64).reshape(8, 8)
    >>> mask = torch.zeros(8, 8)
    >>> mask[::3, ::3] = 1
    >>> r = inpaint_biharmonic(f, mask, solver="mg", tol=1e-10, full_output=True)
    >>> r.solver, r.u.shape, r.iterations.shape, bool(r.residual.max() <= 1e-10)
    ('mg', torch.Size([8, 8]), torch.Size([1]), True)
    """

    u: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor
    solver: str


# ---------------------------------------------------------------------------
# The system and its solvers
# ---------------------------------------------------------------------------

def _lap_fn(spacing3):
    """The Neumann Laplacian of images (``spacing3`` None) or of volumes with spacing ``(dz, dy, dx)``."""
    if spacing3 is None:
        return ops.laplacian
    h = None if all(v == 1.0 for v in spacing3) else spacing3
    return functools.partial(ops.laplacian, ndim=3, spacing=h)


def _dilate(unknown: np.ndarray) -> np.ndarray:
    """``unknown`` (bool, any number of axes) and its neighbours along each axis: the pixels whose row of
    ``L`` touches an unknown pixel."""
    out = unknown.copy()
    for a in range(unknown.ndim):
        n = unknown.shape[a]
        if n > 1:
            lo = [slice(None)] * unknown.ndim
            hi = [slice(None)] * unknown.ndim
            lo[a], hi[a] = slice(0, n - 1), slice(1, n)
            out[tuple(lo)] |= unknown[tuple(hi)]
            out[tuple(hi)] |= unknown[tuple(lo)]
    return out


class _Factor:
    """``A`` of one mask on its unknown pixels, factorised: ``L_RU`` (the rows ``R`` of ``L`` that touch an
    unknown pixel, the columns ``U`` of the unknowns) as a sparse matrix, ``A = L_RU^T L_RU``, its LU."""

    def __init__(self, known: np.ndarray, coef):
        shape = known.shape
        unknown = ~known
        self.U = np.flatnonzero(unknown)
        n = self.U.size
        if n == 0:
            self.lu = None
            return
        R = np.flatnonzero(_dilate(unknown))
        itype = np.int32 if known.size < 2 ** 31 else np.int64
        col = np.full(known.size, -1, dtype=itype)
        col[self.U] = np.arange(n, dtype=itype)
        coords = np.unravel_index(R, shape)
        strides = np.cumprod((1,) + shape[:0:-1])[::-1]
        rows, cols, vals = [], [], []
        diag = np.zeros(R.size)
        for a, (size, ca) in enumerate(zip(shape, coef)):
            for s in (-1, 1):
                ri = np.flatnonzero((coords[a] + s >= 0) & (coords[a] + s < size))
                diag[ri] -= ca
                j = col[R[ri] + s * int(strides[a])]
                keep = j >= 0
                rows.append(ri[keep])
                cols.append(j[keep])
                vals.append(np.full(int(keep.sum()), ca))
        j = col[R]
        keep = j >= 0
        rows.append(np.flatnonzero(keep))
        cols.append(j[keep])
        vals.append(diag[keep])
        self.R = R
        self.L = scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                         shape=(R.size, n))
        self.A = (self.L.T @ self.L).tocsc()
        # A is SPD: no pivoting, a symmetric ordering (the default column ordering of A^T A fills in far more)
        self.lu = scipy.sparse.linalg.splu(self.A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                           options=dict(SymmetricMode=True))

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``A^{-1} rhs`` for ``rhs`` (n, k) float64."""
        return self.lu.solve(rhs)


class _System:
    """The biharmonic system of one call for a mask ``m`` (Bm, Cm, *spatial) of 0/1 values, with its
    solver: the multigrid hierarchy of ``-w L w`` or the factorisations of ``A`` (one per mask), built once
    for the forward and the adjoint solve."""

    def __init__(self, m: torch.Tensor, solver: str, spacing3=None):
        # the mask as bools (a byte per pixel): A's rows are masked with it
        self.known = m.detach() if m.dtype == torch.bool else m.detach() > 0
        self.missing = ~self.known
        self.lap = _lap_fn(spacing3)
        self.mg = None
        self.factors = None
        if solver == "mg":
            # the hierarchy in float32 whatever the system's dtype: a preconditioner needs no more precision,
            # and the hierarchy and the V-cycle's work arrays are the largest part of the memory
            m32 = self.known.float()
            self.mg = Multigrid(m32) if spacing3 is None else Multigrid3d(m32, spacing=spacing3)
        else:
            coef = (1.0, 1.0) if spacing3 is None else tuple(1.0 / (v * v) for v in spacing3)
            known = self.known.cpu().numpy()
            self.factors = {(i, j): _Factor(known[i, j], coef)
                            for i in range(known.shape[0]) for j in range(known.shape[1])}

    def l2(self, x: torch.Tensor) -> torch.Tensor:
        """``L (L x)``."""
        return self.lap(self.lap(x))

    def apply_a(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x`` zero on the known pixels."""
        return self.l2(x).masked_fill_(self.known, 0.0)

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        """Two V-cycles of ``-w L w``: the preconditioner of ``A``."""
        if r.dtype == torch.float32:
            return self.mg.precondition(self.mg.precondition(r))
        return self.mg.precondition(self.mg.precondition(r.float())).to(r.dtype)

    def rhs(self, f4: torch.Tensor, shape) -> torch.Tensor:
        """``b = -w L (L (m f))`` of the shape ``shape`` of the batch (a new tensor)."""
        b = self.l2(f4.masked_fill(self.missing, 0.0)).neg_().masked_fill_(self.known, 0.0)
        return b if b.shape == shape else b.expand(shape).contiguous()

    def solve(self, make_b, start, tol: float, max_iter: int):
        """``A x = b`` for ``b = make_b()`` (B, C, *spatial), zero on the known pixels; returns ``x`` (zero
        there), the iterations (B,) and the relative residual ``||b - A x|| / ||b||`` (B,). The multigrid
        solver overwrites ``b`` with CG's residual and calls ``make_b`` again for the true residual (one
        image of memory less than keeping ``b``)."""
        if self.mg is None:
            return self._direct(make_b())
        x, iters, bnorm = _pcg(self.apply_a, self.precondition, make_b(), start, tol, max_iter, self.known)
        t = self.apply_a(x).sub_(make_b())
        rn = t.flatten(1).norm(dim=1).double()
        del t
        res = torch.where(bnorm > 0, rn / bnorm.clamp_min(torch.finfo(x.dtype).tiny), torch.zeros_like(rn))
        return x, iters, res.to(x.dtype)

    def _direct(self, b: torch.Tensor):
        """The factorisations' solves for every image and channel of ``b``, on the CPU in float64."""
        B, C = b.shape[:2]
        Bm, Cm = self.known.shape[:2]
        bn = b.detach().to("cpu", torch.float64).reshape(B, C, -1).numpy()
        x = torch.zeros(b.shape, dtype=b.dtype, device=b.device).reshape(B, C, -1)
        rn2 = np.zeros(B)
        bn2 = np.zeros(B)
        for (i, j), fac in self.factors.items():
            if fac.lu is None:
                continue
            items = [(bi, ci) for bi in (range(B) if Bm == 1 else [i]) for ci in (range(C) if Cm == 1 else [j])]
            rhs = np.stack([bn[bi, ci, fac.U] for bi, ci in items], axis=1)
            sol = fac.solve(rhs)
            res = np.square(rhs - fac.A @ sol).sum(0)
            idx = torch.from_numpy(fac.U).to(b.device)
            for k, (bi, ci) in enumerate(items):
                x[bi, ci].index_copy_(0, idx, torch.from_numpy(sol[:, k]).to(device=b.device, dtype=b.dtype))
                rn2[bi] += res[k]
                bn2[bi] += np.square(rhs[:, k]).sum()
        res = np.where(bn2 > 0, np.sqrt(rn2) / np.sqrt(np.maximum(bn2, np.finfo(float).tiny)), 0.0)
        return (x.reshape(b.shape), torch.zeros(B, dtype=torch.long, device=b.device),
                torch.from_numpy(res).to(device=b.device, dtype=b.dtype))


def _pcg(apply_a, precond, r: torch.Tensor, x0, tol: float, max_iter: int, known: torch.Tensor):
    """Preconditioned CG for ``A x = b`` per image (its channels together), ``b`` given as ``r`` and
    overwritten by the residual; the vectors in place (``x``, ``r``, ``d``), the products and the
    preconditioned residual new (freed before the next). Returns ``x`` (zero on the known pixels), the
    iterations (B,) and ``||b||`` (B,, float64)."""
    B = r.shape[0]
    view = (B,) + (1,) * (r.dim() - 1)

    def dots(u, v):
        if B == 1:
            return torch.dot(u.reshape(-1), v.reshape(-1)).reshape(1).double()
        return torch.bmm(u.reshape(B, 1, -1), v.reshape(B, -1, 1)).reshape(B).double()

    bnorm = dots(r, r).sqrt()
    thr = (tol * bnorm.clamp_min(torch.finfo(r.dtype).tiny)) ** 2
    if x0 is None:
        x = torch.zeros_like(r)
    else:
        x = x0.masked_fill(known, 0.0)
        r.sub_(apply_a(x))
    iters = torch.zeros(B, dtype=torch.long, device=r.device)
    rr = dots(r, r)
    active = (rr > thr) & (bnorm > 0)
    d = precond(r)
    rz = dots(r, d)
    it = 0
    while it < max_iter and bool(active.any()):
        q = apply_a(d)
        dq = dots(d, q)
        ok = active & (dq > 0)
        alpha = torch.where(ok, rz / torch.where(ok, dq, torch.ones_like(dq)), torch.zeros_like(dq))
        if B == 1:
            x.add_(d, alpha=float(alpha))
            r.sub_(q, alpha=float(alpha))
        else:
            a = alpha.to(r.dtype).view(view)
            x.addcmul_(a, d)
            r.addcmul_(a, q, value=-1)
        del q
        iters += active.long()
        it += 1
        rr = dots(r, r)
        active = ok & (rr > thr)
        if not bool(active.any()):
            break
        z = precond(r)
        rz_new = dots(r, z)
        beta = torch.where(active, rz_new / torch.where(rz != 0, rz, torch.ones_like(rz)), torch.zeros_like(rz))
        if B == 1:
            d.mul_(float(beta)).add_(z)
        else:
            d.mul_(beta.to(r.dtype).view(view)).add_(z)
        del z
        rz = rz_new
    x.masked_fill_(known, 0.0)   # exactly zero on the known pixels
    return x, iters, bnorm


def _choose(m: torch.Tensor, solver: str) -> str:
    """The solver that ``solver='auto'`` runs for the mask ``m`` (see :data:`DIRECT_MAX_FRACTION`)."""
    if solver != "auto":
        return solver
    spatial = m[0, 0].numel()
    unknown = (m.detach() == 0).flatten(2).sum(-1)
    worst = int(unknown.max())
    return "direct" if worst <= min(DIRECT_MAX_FRACTION * spatial, DIRECT_MAX_UNKNOWNS) else "mg"


def _forward(f4, m, tol, max_iter, x0, solver, spacing3):
    """``(u, iterations, residual, system)``, unchecked."""
    sysm = _System(m, solver, spacing3)
    shape = f4.shape
    start = None if x0 is None else x0.expand(shape)
    x, iters, res = sysm.solve(lambda: sysm.rhs(f4, shape), start, tol, max_iter)
    u = torch.where(sysm.known, f4, x, out=x)   # x is a fresh tensor of the batch's shape
    warn_max_iter(iters, res, tol, max_iter, "inpaint_biharmonic")
    return u, iters, res, sysm


class _BiharmonicFunction(torch.autograd.Function):
    """``u`` of :func:`inpaint_biharmonic` with the adjoint backward (the module doc)."""

    @staticmethod
    def forward(ctx, f4, m, tol, max_iter, x0, solver, spacing3, info):
        u, iters, res, sysm = _forward(f4, m, tol, max_iter, x0, solver, spacing3)
        info["iterations"], info["residual"] = iters, res
        ctx.sysm, ctx.opts = sysm, (tol, max_iter)
        ctx.save_for_backward(f4, m, u)
        return u

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        f4, m, u = ctx.saved_tensors
        sysm, (tol, max_iter) = ctx.sysm, ctx.opts
        need_f, need_m = ctx.needs_input_grad[:2]
        if not (need_f or need_m):
            return (None,) * 8
        nu, iters, res = sysm.solve(lambda: g.masked_fill(sysm.known, 0.0).expand(u.shape).contiguous(), None,
                                    tol, max_iter)
        warn_max_iter(iters, res, tol, max_iter, "inpaint_biharmonic (adjoint solve)")
        lam_k = g - sysm.l2(nu)            # lam on the known pixels
        grad_f = grad_m = None
        if need_f:
            grad_f = m * lam_k
        if need_m:
            lam = torch.addcmul(nu, m, lam_k)
            grad_m = sum_to(lam * (f4 - u + sysm.l2(u)), m.shape)
        return grad_f, grad_m, None, None, None, None, None, None


@eager   # the solvers run eagerly (SciPy, in-place buffers)
def _solve(f4, m, tol, max_iter, x0, solver, spacing3):
    """``(u, iterations, residual, solver)`` on checked arguments; one autograd node when ``f4`` or ``m``
    requires grad and grad mode is on."""
    solver = _choose(m, solver)
    if torch.is_grad_enabled() and (f4.requires_grad or m.requires_grad):
        info: dict = {}
        u = _BiharmonicFunction.apply(f4, m, tol, max_iter, x0, solver, spacing3, info)
        return u, info["iterations"], info["residual"], solver
    with torch.no_grad():
        u, iters, res, _ = _forward(f4, m > 0, tol, max_iter, x0, solver, spacing3)
    return u, iters, res, solver


@auto_threads
def solve_unchecked(f4: torch.Tensor, m: torch.Tensor, *, u0: torch.Tensor | None = None,
                    tol: float = 1e-3) -> torch.Tensor:
    """The biharmonic inpainting of ``f4`` (B, C, H, W) from the binary mask ``m`` (B, 1, H, W), unchecked.

    For the library's mask methods, which call it many times on checked inputs: ``f4`` float32 or float64
    with finite values, ``m`` of its dtype and device with values 0 and 1 and a known pixel per image,
    ``u0`` a warm start of ``f4``'s shape (the multigrid solver) or None. The solver is chosen as by
    ``solver='auto'`` of :func:`inpaint_biharmonic`, with ``tol`` its relative residual, and the result
    clipped to the range of the known values as by its default ``clip=True``; differentiable like it.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.biharmonic import solve_unchecked
    >>> f4 = torch.arange(6, dtype=torch.float64).reshape(1, 1, 6, 1).repeat(1, 1, 1, 4)
    >>> m = torch.ones(1, 1, 6, 4, dtype=torch.float64)
    >>> m[..., 2:4, :] = 0                                   # two rows missing
    >>> solve_unchecked(f4, m, tol=1e-12)[0, 0, :, 0].round(decimals=8)   # the straight line
    tensor([0., 1., 2., 3., 4., 5.], dtype=torch.float64)
    """
    return _clip(_solve(f4, m, tol, DEFAULT_MAX_ITER, u0, "auto", None)[0], f4, m)   # as the default clip=True


# ---------------------------------------------------------------------------
# The public function
# ---------------------------------------------------------------------------

def _clip(u: torch.Tensor, f: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``u`` clipped to the range of the known values of ``f``, per image and channel (in place unless
    autograd records ``u``). The bounds are differentiated too: a pixel clipped to the largest known value
    moves with it (``du/df = 1`` there)."""
    missing = m.detach() == 0
    lo = f.masked_fill(missing, float("inf")).flatten(2).amin(-1)
    hi = f.masked_fill(missing, float("-inf")).flatten(2).amax(-1)
    view = lo.shape + (1,) * (f.dim() - 2)
    lo, hi = lo.view(view), hi.view(view)
    return torch.clamp(u, lo, hi) if u.requires_grad else u.clamp_(lo, hi)


@ops.follows_layout_rule("f", also=("mask",))
@auto_threads
def inpaint_biharmonic(f: torch.Tensor, mask: torch.Tensor, *, tol: float = 1e-8, max_iter: int | None = None,
                       solver: str = "auto", x0: torch.Tensor | None = None, clip: bool = True,
                       ndim: int | None = None, spacing=None, full_output: bool = False):
    """Biharmonic inpainting of ``f`` from the pixels where ``mask`` is 1.

    Returns ``u`` with ``u = f`` on the mask that minimises ``||L u||^2`` (``L`` the Neumann Laplacian of
    :func:`pdeflow.ops.laplacian`), i.e. solves the discrete biharmonic equation ``L^2 u = 0`` on the
    missing pixels, per image and channel: the system of scikit-image's ``inpaint_biharmonic`` (see the
    module doc), for images and volumes, batched and differentiable in ``f`` and the mask.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point (float16 and bfloat16 are computed in float32 and returned in their dtype);
        a NumPy array is taken as a tensor. Only the values on the mask are used: they must be finite, the
        missing pixels may hold anything, NaN included. Volumes: see ``ndim``.
    mask : Tensor
        Binary (bool or 0/1) mask, 1 = known pixel, 0 = missing (the inverse of scikit-image's convention),
        of shape (H, W), (1, H, W), (B, 1, H, W) or anything else that broadcasts to ``f`` along the batch
        and channel axes. Each image needs a known pixel.
    tol : float, optional
        Relative residual ``||b - A x|| / ||b||`` per image (the module doc) at which the multigrid solver
        stops; also that of the adjoint solve of the backward pass. Default 1e-8, tighter than
        :func:`pdeflow.inpaint.inpaint_diffusion`'s: the biharmonic system is ill-conditioned (its condition number
        grows as the fourth power of the holes' size), so the error of ``u`` is a multiple of ``tol`` that
        grows with the image; each decade costs a few iterations. In float32 the residual of the rounded
        solution stays near float32's round-off whatever ``tol``. The direct solver ignores ``tol`` (it is
        exact up to rounding).
    max_iter : int, optional
        Iteration limit of the multigrid solver (default :data:`DEFAULT_MAX_ITER`); a RuntimeWarning is
        issued when it is reached first.
    solver : {'auto', 'mg', 'direct'}, optional
        Multigrid-preconditioned CG on the whole image, a sparse factorisation of the unknowns' system
        (CPU, float64), or the choice by the number of unknown pixels (default; the module doc).
    x0 : Tensor, optional
        Initial guess for ``u`` (shape of ``f``; only its values off the mask are used) for the multigrid
        solver. Not differentiated through.
    clip : bool, optional
        Clip the result to the range of the known values of each image and channel, as scikit-image does
        (default True: the minimiser overshoots near steep edges and in texture, out of the range of the data,
        where no pixel of the image lies; the results page "Inpainting operators" measures what clipping
        changes). False returns the minimiser itself.
    ndim : {2, 3}, optional
        Number of spatial axes: 2 (default) for images, 3 for volumes ``(D, H, W)``, ``(C, D, H, W)`` or
        ``(B, C, D, H, W)`` (the mask ``(D, H, W)``, ``(1, D, H, W)`` or ``(B, 1, D, H, W)``), solved with
        the 7-point Laplacian and :class:`pdeflow.multigrid.Multigrid3d`.
    spacing : float or sequence of float, optional
        Grid spacing ``(dy, dx)`` or ``(dz, dy, dx)`` of the Laplacian (a number: the same on every axis;
        length 3 implies ``ndim=3``), as in :func:`pdeflow.ops.laplacian`.
    full_output : bool, optional
        Return a :class:`BiharmonicResult` with the iterations, residuals and the solver that ran.

    Returns
    -------
    u : Tensor, shape and dtype of ``f``
        Equal to ``f`` on the mask (unless ``clip`` moves it). A :class:`BiharmonicResult` with
        ``full_output=True``.

    Notes
    -----
    The gradient with respect to the mask is that of the continuous-mask problem at the binary mask
    (the module doc); gradients of a broadcast mask are summed over the broadcast axes. Only first
    derivatives are supported. With ``clip`` the gradient flows through the clipping as through
    :func:`torch.clamp` with the known range as its bounds: a clipped pixel follows the known value that
    bounds it.

    References
    ----------
    .. [1] S. B. Damelin, N. S. Hoang, "On surface completion and image inpainting by biharmonic
       functions: numerical aspects", International Journal of Mathematics and Mathematical Sciences, 2018.
    .. [2] U. Trottenberg, C. W. Oosterlee, A. Schueller, "Multigrid", Academic Press, 2001.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.biharmonic import inpaint_biharmonic
    >>> f = torch.tensor([[0.0, 1.0, 0.0, 0.0, 4.0, 5.0]] * 3, dtype=torch.float64)
    >>> mask = torch.zeros(3, 6)
    >>> mask[:, :2] = mask[:, 4:] = 1                   # two known columns on each side
    >>> inpaint_biharmonic(f, mask, tol=1e-12)[0].round(decimals=8)   # the straight line
    tensor([0., 1., 2., 3., 4., 5.], dtype=torch.float64)
    """
    who = "inpaint_biharmonic"
    f = ops.check_tensor(f, f"{who}: f")
    nd, h = ops.spatial_axes(ndim, spacing, who)
    ops.check_image(f, f"{who}: f", ndim=nd, finite=False, min_size=2)
    fb = ops.promote_half(ops.as_batch(f, f"{who}: f", nd)[0])
    if mask is None:
        raise UserInputError(f"{who}: mask is required (1 = known pixel, 0 = missing)")
    if nd == 2 and h is not None:   # a non-unit image spacing: a volume of depth 1
        m = check_mask(mask, fb, who)[:, :, None]
        fb, spacing3 = fb[:, :, None], (1.0,) + h
    else:
        m = check_mask(mask, fb, who, ndim=nd)
        spacing3 = None if nd == 2 else ((1.0, 1.0, 1.0) if h is None else h)
    fb = known_finite(fb, m, who)
    if not (torch.is_grad_enabled() and (fb.requires_grad or m.requires_grad)):
        m = m > 0   # bools: a float mask of the image's size less to hold during the solve
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise UserInputError(f"{who}: tol must be a number in (0, 1), got {tol!r}")
    if solver not in SOLVERS:
        raise UserInputError(f"{who}: solver must be one of {SOLVERS}, got {solver!r}")
    if max_iter is None:
        max_iter = DEFAULT_MAX_ITER
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise UserInputError(f"{who}: max_iter must be a positive int, got {max_iter!r}")
    if not isinstance(clip, bool):
        raise UserInputError(f"{who}: clip must be True or False, got {clip!r}")
    x0 = check_start(x0, f, fb, who)
    u, iters, res, ran = _solve(fb, m, tol, max_iter, x0, solver, spacing3)
    if clip:
        u = _clip(u, fb, m)
    u = u.reshape(f.shape).to(f.dtype)
    if full_output:
        return BiharmonicResult(u=u, iterations=iters, residual=res, solver=ran)
    return u
