"""The one linear system of homogeneous diffusion inpainting (:func:`pdeflow.inpaint.inpaint_diffusion`, whose module
doc states it), its solvers and what mask methods read from it.

* :class:`DiffusionSystem`: the masked Laplacian for a mask (binary or continuous), its right-hand side, CG or
  multigrid-preconditioned CG on it, and its NumPy operator (:class:`MaskedLaplacian`) for single images;
* :func:`diffuse_unchecked` (a solve) and :func:`diffuse_recorded` (a solve as one autograd node whose backward
  is the adjoint solve, :func:`pdeflow.inpaint.inpaint_diffusion`'s Notes);
* :func:`binary_hierarchy` and :func:`diffuse_with_hierarchy`: a binary mask's solve preconditioned by a given
  multigrid hierarchy, possibly that of a smaller mask (mask densification);
* :class:`SingleImageSystem`: the forward and adjoint solves of one grey image on NumPy vectors (mask
  refinement's many nearby solves);
* :func:`error_map`: the squared error summed over channels, the map that densification and refinement read.

Unchecked: :func:`~pdeflow.inpaint.inpaint_diffusion` checks its inputs; the mask methods call these directly.
No other module builds the masked Laplacian."""
from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from ...linalg import cg, cg_matrix, csr_matvec, eager, laplacian_csr
from ...multigrid import Multigrid, Multigrid3d
from ...ops import laplacian
from ...threads import auto_threads

#: Largest image (pixels) whose single-image plain-CG solves run cg_matrix on the Laplacian's CSR matrix. On one
#: thread that loop was 1.7-2.8x faster than the tensor loop from 32 x 32 to 128 x 128 (and 1.6-2.8x at 256
#: and 512; benchmarks/results/inpaint/cg_single/); above this size torch's multi-threaded tensor loop may
#: win on machines with many cores.
MATRIX_PATH_MAX_PIXELS = 128 * 128


class MaskedLaplacian:
    """``A v = -w (L v) + d v`` for vectors ``v`` (N,) that are zero on the mask: the system of
    :class:`DiffusionSystem` on one image, for :func:`pdeflow.linalg.cg_matrix`.

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


class DiffusionSystem:
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
        """``A x = b`` for ``b`` (B, C, H, W) zero on the mask, from ``start`` (None: zeros; its values on the
        mask are not read); returns x (zero on the mask), iterations (B,) and the relative residual (B,)."""
        if self.mg is None and self.spacing3 is None and b.shape[0] * b.shape[1] == 1 and self.c.shape[:2] == (1, 1) \
                and b.device.type == "cpu" and b.dtype in (torch.float32, torch.float64) \
                and b.shape[-2] * b.shape[-1] <= MATRIX_PATH_MAX_PIXELS:
            bn = b.detach().reshape(-1).numpy()
            if self._matrix is None:   # forward and adjoint solves share it
                self._matrix = self.matrix(bn.dtype)
            x0 = None if start is None else (self.w * start).detach().reshape(-1).numpy()
            # x is exactly zero on the mask (so are b, the start and A's rows there); the residual is CG's
            # recurrence one (a warm-started solve of few iterations would spend a tenth of its time on b - A x)
            xn, it, res = cg_matrix(self._matrix, bn, x0, tol=tol, max_iter=max_iter, return_residual=True)
            return (torch.from_numpy(xn).view(b.shape), torch.full((1,), it, dtype=torch.long),
                    torch.full((1,), res, dtype=b.dtype))
        if self.mg is not None:
            x, iters, res = self.mg.solve(b, start, tol=tol, max_iter=max_iter)
            return x, iters, res.to(b.dtype)
        x, iters = cg(self.apply_a, b, None if start is None else self.w * start, tol=tol, max_iter=max_iter)
        x = self.w * x  # exactly zero on the mask
        bn = b.flatten(1).norm(dim=1)
        res = (b - self.apply_a(x)).flatten(1).norm(dim=1) / bn.clamp_min(torch.finfo(b.dtype).tiny)
        res = torch.where(bn > 0, res, torch.zeros_like(res))
        return x, iters, res


def warn_max_iter(iters, res, tol, max_iter, what="inpaint_diffusion"):
    """Warn when a solve stopped at ``max_iter`` with a residual above ``tol``."""
    if bool((iters >= max_iter).any()) and bool((res > tol).any()):
        warnings.warn(f"{what}: max_iter={max_iter} reached before tol={tol:g} "
                      f"(largest relative residual {float(res.max()):.3g})", RuntimeWarning, stacklevel=4)


# The solvers write in place into views of preallocated buffers (out= into slices), which torch.compile's
# functionalisation cannot trace; under torch.compile they run eagerly (dynamo graph-breaks around them).
@eager
def diffuse_unchecked(f4, c, binary, tol, max_iter, x0, method, spacing3=None):
    """(u, iterations, residual, system) for f4 (B, C, H, W) and a mask c (Bm, Cm, H, W) (volumes:
    (B, C, D, H, W) and ``spacing3`` = (dz, dy, dx))."""
    shape = f4.shape
    sysm = DiffusionSystem(c, method, binary, spacing3)
    b, z = sysm.rhs(f4)
    b = b.expand(shape).contiguous()
    start = None
    if x0 is not None:       # the solvers do not read the start on the mask, where z is zero too: no masked copy
        start = (x0 if z is None else x0 - z).expand(shape).contiguous()
    x, iters, res = sysm.solve(b, start, tol, max_iter)
    if z is not None:
        x = x + z
    # x (a fresh tensor) is exactly zero on the known pixels: u = f there, x elsewhere
    u = x.addcmul_(sysm.k, f4) if x.shape == f4.shape else torch.addcmul(x, sysm.k, f4)
    warn_max_iter(iters, res, tol, max_iter)
    return u, iters, res, sysm


def sum_to(t: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``t`` over the axes along which ``shape`` was broadcast (the adjoint of expand)."""
    dims = [i for i, (a, b) in enumerate(zip(shape, t.shape)) if a == 1 and b != 1]
    return t.sum(dim=dims, keepdim=True) if dims else t


class _DiffuseFunction(torch.autograd.Function):
    """``u = inpaint_diffusion(f, c)`` with the adjoint backward (see :func:`inpaint_diffusion`, Notes)."""

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
        start = ctx.info.get("adjoint_x0")   # a warm start (see diffuse_recorded), not read on the mask
        if start is not None:
            start = start.expand(shape).contiguous()
        tol = ctx.info.get("adjoint_tol") or tol
        nu, iters, res = sysm.solve(rhs, start, tol, max_iter)
        ctx.info["adjoint"] = nu
        warn_max_iter(iters, res, tol, max_iter, what="inpaint_diffusion (adjoint solve)")
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
            grad_c = sum_to(lam * (f4 - u - sysm.lap(u)), c.shape)
        return grad_f, grad_c, None, None, None, None, None, None


def default_max_iter(solver: str, *sizes: int) -> int:
    """:func:`inpaint_diffusion`'s iteration limit when none is given: 500 for 'mg', 20 times the sum of the spatial
    sizes (``20 (H + W)``, volumes ``20 (D + H + W)``) for 'cg'."""
    return 500 if solver == "mg" else 20 * sum(sizes)


@eager   # as diffuse_unchecked
def diffuse_recorded(f4, c, binary, tol, max_iter, x0, solver, adjoint_x0=None, adjoint_tol=None,
                      spacing3=None):
    """``inpaint_diffusion`` as one autograd node, unchecked, for callers that solve many nearby problems.

    Returns ``(u, info)``. ``info`` holds the forward's ``iterations`` and ``residual``
    now and, once the backward has run, ``adjoint``: the adjoint solve's unknowns ``nu``
    (B, C, H, W). Passing a previous ``nu`` as ``adjoint_x0`` warm-starts the next
    adjoint solve, as ``x0`` does the forward one (mask refinement solves a sequence
    of masks that differ in a few pixels). ``adjoint_tol`` (default ``tol``) is the
    adjoint solve's tolerance. ``spacing3``: volumes (B, C, D, H, W) with spacing (dz, dy, dx).
    """
    info = {"adjoint_x0": adjoint_x0, "adjoint_tol": adjoint_tol, "spacing3": spacing3}
    return _DiffuseFunction.apply(f4, c, binary, tol, max_iter, x0, solver, info), info


def binary_hierarchy(m: torch.Tensor) -> Multigrid:
    """The multigrid hierarchy of the binary mask ``m`` (B, 1, H, W), for :func:`diffuse_with_hierarchy`."""
    return Multigrid(m)


def diffuse_with_hierarchy(f4: torch.Tensor, m: torch.Tensor, mg: Multigrid, fresh: bool, u0: torch.Tensor | None,
                           tol: float, max_iter: int = 1000, *, in_place: bool = False) -> torch.Tensor:
    """Homogeneous diffusion inpainting of ``f4`` (B, C, H, W) from the binary mask ``m`` (B, 1, H, W), CG
    preconditioned by one V-cycle of a given hierarchy ``mg``.

    The unknowns ``x`` (zero on the mask) solve ``-w L x = w L (m f)``, ``w = 1 - m`` (the binary system of
    :class:`DiffusionSystem`, the channels of an image together), from ``u0`` to the relative residual ``tol``.
    ``mg`` is the hierarchy of ``m`` (``fresh``) or of a mask that ``m`` contains: its V-cycle is then that of
    ``-L`` on more unknowns, and restricted to this mask's unknowns (``w V w``) it is still symmetric positive
    definite, so a mask that grows in steps can keep one hierarchy for several of them. ``in_place`` (without
    ``u0``): the inpainting is formed in ``f4``'s memory, the same values to the bit.
    """
    # in place where it can be: on a 4K image every temporary is 33 MB of fresh pages; -w alone is kept (w x is
    # -(-w x), exactly), and CG takes b over as its residual (a large block's peak memory)
    negw = m - 1.0
    b = laplacian(m * f4).mul_(negw).neg_()
    x0 = None if u0 is None else (u0 * negw).neg_()
    # CG's residuals are zero on the mask (b's and A's rows are), so the V-cycle's input needs no masking
    # in place: CG adds x, zero on the mask as its residuals are, to m f
    x, _ = cg(lambda v: laplacian(v).mul_(negw), b, x0, tol=tol, max_iter=max_iter, overwrite_b=True,
              precond=mg.precondition if fresh else (lambda r: mg.precondition(r).mul_(negw).neg_()),
              add_to=f4.mul_(m) if in_place else None)
    return x if in_place else x.mul_(negw).neg_().addcmul_(m, f4)


def error_map(u: torch.Tensor, f4: torch.Tensor) -> torch.Tensor:
    """The squared error ``(u - f)^2`` of an inpainting ``u`` of ``f4`` (B, C, H, W), summed over channels:
    (B, 1, H, W)."""
    return (u - f4).square().sum(1, keepdim=True)


class SingleImageSystem:
    """The systems of :class:`DiffusionSystem` for binary masks of one grey image ``f`` (1, 1, H, W), on flat
    float64 NumPy vectors: plain CG on the Laplacian's cached CSR matrix (:func:`pdeflow.linalg.cg_matrix`),
    without the tensor set-up around each solve (the mask as tensors, the right-hand side by a convolution,
    autograd's node), which costs more than the few warm-started iterations of a mask search's solves.

    :meth:`solve` is :func:`diffuse_unchecked` with ``solver='cg'``; :meth:`mask_gradient` is the adjoint of
    :func:`diffuse_recorded`'s backward for a binary mask.
    """

    def __init__(self, f: torch.Tensor):
        _, _, H, W = f.shape
        self.H, self.W, self.N = H, W, H * W
        self.f = f.reshape(-1).numpy()
        self.lap = laplacian_csr(H, W, "float64")
        self.max_iter = default_max_iter("cg", H, W)

    def laplacian(self, v: np.ndarray) -> np.ndarray:
        """The Neumann Laplacian of a flat image ``v`` (N,)."""
        return csr_matvec(self.lap, v)

    def solve(self, keep: np.ndarray, tol: float, x0: np.ndarray | None = None):
        """``(u, system)``: the inpainting from the mask ``keep`` (N,) bool, warm-started from ``x0`` (N,);
        ``system`` is what :meth:`mask_gradient` reuses."""
        k = keep.astype(np.float64)
        w = 1.0 - k
        a = MaskedLaplacian(self.lap, -w, None)
        b = w * self.laplacian(k * self.f)
        x, it, res = cg_matrix(a, b, None if x0 is None else w * x0, tol=tol, max_iter=self.max_iter,
                               return_residual=True)
        if it >= self.max_iter and res > tol:
            warn_max_iter(torch.tensor([it]), torch.tensor([res]), tol, self.max_iter)
        return x + k * self.f, (k, w, a)

    def mask_gradient(self, u: np.ndarray, system, grad_u: np.ndarray, tol: float, nu0: np.ndarray | None):
        """``(dl/dc (N,), nu)`` for ``grad_u = dl/du`` at the inpainting ``u`` of ``system``: the adjoint solve
        (warm-started from a previous ``nu0``) and the mask derivative ``lam (f - u - L u)``."""
        k, w, a = system
        nu, it, res = cg_matrix(a, w * grad_u, None if nu0 is None else w * nu0, tol=tol, max_iter=self.max_iter,
                                return_residual=True)
        if it >= self.max_iter and res > tol:
            warn_max_iter(torch.tensor([it]), torch.tensor([res]), tol, self.max_iter,
                          what="inpaint_diffusion (adjoint solve)")
        lam = nu + k * (grad_u + self.laplacian(nu))
        return lam * (self.f - u - self.laplacian(u)), nu


@auto_threads   # as inpaint_diffusion: its callers need not set the thread count
def solve_checked(f4, c, binary, tol, max_iter, x0, solver, spacing3=None):
    """:func:`~pdeflow.inpaint.inpaint_diffusion`'s solve on arguments it has checked, for the library's functions that
    checked their image once on entry: ``(u, iterations, residual)``. ``f4`` (B, C, H, W) float32 or
    float64 with finite values where ``c > 0``, ``c`` a mask from :func:`~pdeflow.inpaint.checks.check_mask`;
    volumes (B, C, D, H, W) with ``spacing3`` = (dz, dy, dx). Recorded as one autograd node (the adjoint
    method) when grad mode is on and ``f4`` or ``c`` requires grad; nothing is recorded otherwise."""
    if torch.is_grad_enabled() and (f4.requires_grad or c.requires_grad):
        u, info = diffuse_recorded(f4, c, binary, tol, max_iter, x0, solver, spacing3=spacing3)
        return u, info["iterations"], info["residual"]
    u, iters, res, _ = diffuse_unchecked(f4, c, binary, tol, max_iter, x0, solver, spacing3)
    return u, iters, res
