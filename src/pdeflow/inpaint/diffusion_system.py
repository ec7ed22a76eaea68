"""The linear system of homogeneous diffusion inpainting and its solvers (:func:`pdeflow.inpaint.diffuse`,
whose module doc states the system): the operator for a mask, CG or multigrid-preconditioned CG on it, and
the solve as an autograd node with the adjoint backward.  Unchecked: :func:`~pdeflow.inpaint.diffuse` checks
its inputs; mask refinement calls these directly for its many nearby solves."""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from ..linalg import cg, cg_matrix, csr_matvec, laplacian_csr
from ..multigrid import Multigrid, Multigrid3d
from ..ops import laplacian

#: Largest image (pixels) whose single-image plain-CG solves run cg_matrix on the Laplacian's CSR matrix. On one
#: thread that loop was 1.7-2.8x faster than the tensor loop from 32 x 32 to 128 x 128 (and 1.6-2.8x at 256
#: and 512; benchmarks/results/inpaint/cg_single/); above this size torch's multi-threaded tensor loop may
#: win on machines with many cores.
MATRIX_PATH_MAX_PIXELS = 128 * 128


class MaskedLaplacian:
    """``A v = -w (L v) + d v`` for vectors ``v`` (N,) that are zero on the mask: the system of
    :class:`_System` on one image, for :func:`pdeflow.linalg.cg_matrix`.

    The Laplacian's CSR matrix is built once per image size (:func:`laplacian_csr`), and
    the mask enters as two vectors: building a CSR matrix per mask cost more than the
    few warm-started iterations of a mask refinement's solves.
    """

    def __init__(self, lap, negw: np.ndarray, d: np.ndarray | None):
        self.lap, self.negw, self.d = lap, negw, d
        self.shape = lap.shape

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        y = csr_matvec(self.lap, v)
        y *= self.negw
        if self.d is not None:
            y += self.d * v
        return y


class _System:
    """The SPD system of one call: operator, preconditioner and right-hand side, for a mask
    ``c`` (Bm, Cm, H, W) with values in [0, 1] (binary: the operator of the module doc).

    Pixels with ``c = 1`` are the known ones (``k``); on the others (``w = 1 - k``) the
    rows of ``M(c) u = C f``, ``M(c) = C - (I - C) L``, are divided by ``1 - c``:
    ``d u - L u = d f`` with ``d = c / (1 - c)`` (zero where ``c = 0``), so the
    unknowns ``x`` solve the symmetric positive definite

        A x = w (-L (w x)) + d x + k x,     b = w L (k f) + d f.
    """

    def __init__(self, c: torch.Tensor, method: str, binary: bool, spacing3=None):
        self.c = c
        # spacing3: None for images (B, C, H, W); (dz, dy, dx) for volumes (B, C, D, H, W)
        self.spacing3 = spacing3
        if spacing3 is None:
            self.lap = laplacian
        else:
            h = None if all(v == 1.0 for v in spacing3) else spacing3
            self.lap = functools.partial(laplacian, ndim=3, spacing=h)
        if binary:
            self.k, self.d = c, None
        else:
            self.k = (c == 1).to(c.dtype)
            one_minus = torch.where(c < 1, 1.0 - c, torch.ones_like(c))
            self.d = torch.where(c < 1, c / one_minus, torch.zeros_like(c))
        self._matrix = None     # the CSR matrix of the single-image CG path, built on first use
        self._negw = None       # -w, for plain CG (built on first use)
        if method != "mg":
            self.mg = None
        elif spacing3 is None:
            self.mg = Multigrid(self.k, self.d)
        else:
            self.mg = Multigrid3d(self.k, self.d, spacing=spacing3)

    @property
    def w(self) -> torch.Tensor:
        """``1 - k``: 1 on the unknown pixels (computed when asked: one image of memory less)."""
        return 1.0 - self.k

    @property
    def levels(self):
        """The multigrid hierarchy's grids (``None`` for plain CG)."""
        return None if self.mg is None else self.mg.levels

    def apply_a(self, x: torch.Tensor) -> torch.Tensor:
        # Everything CG touches (start, rhs, residuals, preconditioned residuals) is zero on
        # the mask, where A is the identity; there A x = w (-laplacian(w x)) + m x = -w laplacian(x):
        # the inner loop of CG, four small tensor operations.
        if self._negw is None:
            self._negw = -self.w
        y = self.lap(x).mul_(self._negw)
        if self.d is None:
            return y
        return y.addcmul_(self.d, x)

    def rhs(self, f4: torch.Tensor):
        """``(b, z)``: the unknowns are ``x = z + e`` with ``A e = b`` (``z = None``: ``x = e``).

        Binary mask: ``z = 0``, ``b = w L (k f)``. Continuous mask: ``z = w p f`` with
        ``p = (c > 0)``, so that ``b = w L (k f) + d f - A z = w L (p f)``: the large
        terms ``d f`` (``d = c / (1 - c)`` grows without bound as ``c -> 1``) cancel and
        the relative-residual rule measures the Laplace rows, as for a binary mask
        (with ``p f`` in the role of ``k f``).
        """
        if self.d is None:
            y = self.lap(self.k * f4)
            return y.addcmul_(self.k, y, value=-1), None        # w L (k f), in place
        pf = (self.c > 0).to(f4.dtype) * f4
        w = self.w
        return w * self.lap(pf), w * pf

    def matrix(self, dtype) -> MaskedLaplacian:
        """``A`` for a single-image mask (1, 1, H, W) as a NumPy operator ``A @ v`` of ``dtype``, for
        vectors ``v`` that are zero on the mask (:class:`MaskedLaplacian`)."""
        H, W = self.c.shape[-2:]
        negw = (-self.w).detach().reshape(-1).cpu().numpy().astype(dtype, copy=False)
        d = None if self.d is None else self.d.detach().reshape(-1).cpu().numpy().astype(dtype, copy=False)
        return MaskedLaplacian(laplacian_csr(H, W, np.dtype(dtype).name), negw, d)

    def solve(self, b: torch.Tensor, start, tol: float, max_iter: int):
        """``A x = b`` for ``b`` (B, C, H, W) zero on the mask; returns x (zero on the mask),
        iterations (B,) and the relative residual (B,)."""
        if self.mg is None and self.spacing3 is None and b.shape[0] * b.shape[1] == 1 and self.c.shape[:2] == (1, 1) \
                and b.device.type == "cpu" and b.dtype in (torch.float32, torch.float64) \
                and b.shape[-2] * b.shape[-1] <= MATRIX_PATH_MAX_PIXELS:
            bn = b.detach().reshape(-1).numpy()
            if self._matrix is None:   # forward and adjoint solves share it
                self._matrix = self.matrix(bn.dtype)
            x0 = None if start is None else start.detach().reshape(-1).numpy()
            # x is exactly zero on the mask (so are b, the start and A's rows there); the residual is CG's
            # recurrence one (a warm-started solve of few iterations would spend a tenth of its time on b - A x)
            xn, it, res = cg_matrix(self._matrix, bn, x0, tol=tol, max_iter=max_iter, return_residual=True)
            return (torch.from_numpy(xn).view(b.shape), torch.full((1,), it, dtype=torch.long),
                    torch.full((1,), res, dtype=b.dtype))
        if self.mg is not None:
            x, iters, res = self.mg.solve(b, start, tol=tol, max_iter=max_iter)
            return x, iters, res.to(b.dtype)
        x, iters = cg(self.apply_a, b, start, tol=tol, max_iter=max_iter)
        x = self.w * x  # exactly zero on the mask
        bn = b.flatten(1).norm(dim=1)
        res = (b - self.apply_a(x)).flatten(1).norm(dim=1) / bn.clamp_min(torch.finfo(b.dtype).tiny)
        res = torch.where(bn > 0, res, torch.zeros_like(res))
        return x, iters, res


def warn_max_iter(iters, res, tol, max_iter, what="diffuse"):
    if bool((iters >= max_iter).any()) and bool((res > tol).any()):
        warnings.warn(f"{what}: max_iter={max_iter} reached before tol={tol:g} "
                      f"(largest relative residual {float(res.max()):.3g})", RuntimeWarning, stacklevel=4)


# The solvers write in place into views of preallocated buffers (out= into slices), which torch.compile's
# functionalisation cannot trace; under torch.compile they run eagerly (dynamo graph-breaks around them).
@torch.compiler.disable
def diffuse_unchecked(f4, c, binary, tol, max_iter, x0, method, spacing3=None):
    """(u, iterations, residual, system) for f4 (B, C, H, W) and a mask c (Bm, Cm, H, W) (volumes:
    (B, C, D, H, W) and ``spacing3`` = (dz, dy, dx))."""
    shape = f4.shape
    sysm = _System(c, method, binary, spacing3)
    b, z = sysm.rhs(f4)
    b = b.expand(shape).contiguous()
    start = None
    if x0 is not None:
        start = (sysm.w * x0 if z is None else sysm.w * x0 - z).expand(shape).contiguous()
    x, iters, res = sysm.solve(b, start, tol, max_iter)
    if z is not None:
        x = x + z
    # x (a fresh tensor) is exactly zero on the known pixels: u = f there, x elsewhere
    u = x.addcmul_(sysm.k, f4) if x.shape == f4.shape else torch.addcmul(x, sysm.k, f4)
    warn_max_iter(iters, res, tol, max_iter)
    return u, iters, res, sysm


def _sum_to(t: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``t`` over the axes along which ``shape`` was broadcast (the adjoint of expand)."""
    dims = [i for i, (a, b) in enumerate(zip(shape, t.shape)) if a == 1 and b != 1]
    return t.sum(dim=dims, keepdim=True) if dims else t


class _DiffuseFunction(torch.autograd.Function):
    """``u = diffuse(f, c)`` with the adjoint backward (see :func:`diffuse`, Notes)."""

    @staticmethod
    def forward(ctx, f4, c, binary, tol, max_iter, x0, method, info):
        u, iters, res, sysm = diffuse_unchecked(f4, c, binary, tol, max_iter, x0, method, info.get("spacing3"))
        info["iterations"], info["residual"] = iters, res
        ctx.sysm, ctx.opts, ctx.info = sysm, (tol, max_iter), info
        ctx.save_for_backward(f4, c, u)
        return u

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        f4, c, u = ctx.saved_tensors
        sysm, (tol, max_iter) = ctx.sysm, ctx.opts
        need_f, need_c = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_f or need_c):
            return (None,) * 8
        shape = u.shape
        # Adjoint: M(c)^T lam = g. With nu = (1 - c) lam on the unknowns, A nu = w g (A the
        # forward operator, same preconditioner); on the known pixels lam = g + L nu.
        rhs = (sysm.w * g).expand(shape).contiguous()
        start = ctx.info.get("adjoint_x0")   # a warm start (see diffuse_recorded); nu is zero on the mask
        if start is not None:
            start = (sysm.w * start).expand(shape).contiguous()
        tol = ctx.info.get("adjoint_tol") or tol
        nu, iters, res = sysm.solve(rhs, start, tol, max_iter)
        ctx.info["adjoint"] = nu
        warn_max_iter(iters, res, tol, max_iter, what="diffuse (adjoint solve)")
        g_lnu = g + sysm.lap(nu)
        if sysm.d is None:   # binary mask: lam = nu on the unknowns, g + L nu on the mask (nu = 0 there)
            lam = torch.addcmul(nu, c, g_lnu)
        else:
            # lam = nu / (1 - c) = (g + L nu) / c on the unknowns (c < 1); the first form is the
            # well-conditioned one for small c, the second for c near 1 (and the only one at c = 1).
            lo = c <= 0.5
            lam = torch.where(lo, nu / torch.where(lo, 1.0 - c, torch.ones_like(c)),
                              g_lnu / torch.where(lo, torch.ones_like(c), c))
        grad_f = grad_c = None
        if need_f:
            grad_f = c * lam
        if need_c:
            grad_c = _sum_to(lam * (f4 - u - sysm.lap(u)), c.shape)
        return grad_f, grad_c, None, None, None, None, None, None


def default_max_iter(solver: str, H: int, W: int) -> int:
    """:func:`diffuse`'s iteration limit when none is given: 500 for 'mg', ``20 (H + W)`` for 'cg'."""
    return 500 if solver == "mg" else 20 * (H + W)


@torch.compiler.disable   # eager, as diffuse_unchecked
def diffuse_recorded(f4, c, binary, tol, max_iter, x0, solver, adjoint_x0=None, adjoint_tol=None,
                      spacing3=None):
    """``diffuse`` as one autograd node, unchecked, for callers that solve many nearby problems.

    Returns ``(u, info)``. ``info`` holds the forward's ``iterations`` and ``residual``
    now and, once the backward has run, ``adjoint``: the adjoint solve's unknowns ``nu``
    (B, C, H, W). Passing a previous ``nu`` as ``adjoint_x0`` warm-starts the next
    adjoint solve, as ``x0`` does the forward one (mask refinement solves a sequence
    of masks that differ in a few pixels). ``adjoint_tol`` (default ``tol``) is the
    adjoint solve's tolerance. ``spacing3``: volumes (B, C, D, H, W) with spacing (dz, dy, dx).
    """
    info = {"adjoint_x0": adjoint_x0, "adjoint_tol": adjoint_tol, "spacing3": spacing3}
    return _DiffuseFunction.apply(f4, c, binary, tol, max_iter, x0, solver, info), info
