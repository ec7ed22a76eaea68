"""Homogeneous diffusion inpainting: the Laplace equation on the unknown pixels.

Given an image ``f`` and a binary mask ``m`` (1 = known pixel, 0 = missing),
:func:`diffuse` returns ``u`` with ``u = f`` where ``m = 1`` and
``laplacian(u) = 0`` where ``m = 0``, with the 5-point Neumann Laplacian of
:func:`pdeflow.ops.laplacian` (reflecting image boundary).

The linear system. Write ``w = 1 - m`` and ``u = m f + w x``. The unknown
values ``x`` (zero on the mask) solve ``A x = b`` with

    A x = w * (-laplacian(w * x)) + m * x,     b = w * laplacian(m * f),

which is symmetric positive definite as soon as each image has one known
pixel (its rows on the mask are the identity). The stopping rule is the
relative residual ``||b - A x|| / ||b|| <= tol`` per image, the rule of the
reference C codes (CG with relative residual 1e-6); it does not depend on the
initial guess.

Solvers (``method``):

* ``'mg'`` (default): conjugate gradients preconditioned by one symmetric
  geometric multigrid V-cycle. Coarse grids halve each side; the prolongation
  is bilinear interpolation restricted to the unknown pixels, the restriction
  its transpose and the coarse operators are Galerkin products ``R A P``
  (9-point stencils, computed by probing with 9 colourings), so masks of any
  sparsity are coarsened faithfully. Damped Jacobi smoothing, a dense
  (pseudo-)inverse on the coarsest grid (at most ``_COARSEST`` pixels).
  Iteration counts stay nearly flat in the image size and the mask density.
* ``'cg'``: plain conjugate gradients, the solver of the reference C codes.

Both use :func:`pdeflow.linalg.cg` and run batched on the device and dtype of
``f``; plain CG on a single CPU image of up to :data:`MATRIX_PATH_MAX_PIXELS`
runs :func:`pdeflow.linalg.cg_matrix` on the Laplacian's sparse matrix instead
(same iterates, 1.6-2.8x faster on one thread: a small tensor operation's
dispatch costs more than its arithmetic).

Continuous masks ``c`` in [0, 1] (``continuous=True``) solve
``c (u - f) = (1 - c) laplacian(u)``; on the pixels with ``c < 1`` this is the
operator above plus the diagonal ``c / (1 - c)`` (still SPD, same solvers).
:func:`diffuse` is differentiable in ``f`` and the mask by the adjoint method
(one extra solve with the same operator and multigrid hierarchy); see its Notes.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F

from .. import ops
from ..errors import UserInputError
from ..linalg import cg, cg_matrix
from ..ops import laplacian
from ..threads import auto_threads

__all__ = ["diffuse", "DiffuseResult", "inpainting_error", "check_mask"]

#: The linear solvers of :func:`diffuse`.
SOLVERS = ("mg", "cg")
METHODS = SOLVERS  # deprecated name
_COARSEST = 256  # pixels of the coarsest grid, solved by a dense pseudo-inverse
_NU = 2  # Jacobi sweeps before and after the coarse correction
_OMEGA0 = 0.8  # Jacobi damping on the finest grid (5-point masked operator)
_OMEGA = 0.7  # Jacobi damping on the Galerkin (9-point) grids


@dataclass
class DiffuseResult:
    """Output of :func:`diffuse` with ``full_output=True``.

    Attributes
    ----------
    u : Tensor
        The inpainted image, shape of ``f``.
    iterations : Tensor of int64, shape (B,)
        CG iterations per image (``B = 1`` for unbatched input).
    residual : Tensor, shape (B,)
        Final relative residual ``||b - A x|| / ||b||`` per image, recomputed
        from the returned solution (continuous masks: of the correction
        system, see :func:`diffuse`, Notes).
    """

    u: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------

def _solver_alias(solver: str, method: str | None, who: str) -> str:
    """``solver``, or the deprecated ``method=`` (the linear solver's former keyword), with a warning."""
    if method is None:
        return solver
    warnings.warn(f"{who}: method= is deprecated, pass solver=", DeprecationWarning, stacklevel=4)
    return method


def check_mask(mask, f4: torch.Tensor, who: str, *, need_known: bool = True,
               continuous: bool = False) -> torch.Tensor:
    """``mask`` as a binary float tensor broadcastable to ``f4`` (B, C, H, W).

    The mask may be bool or numeric with values in {0, 1} (with ``continuous``:
    any values in [0, 1]); it may have fewer dimensions than ``f`` and size 1
    along the batch and channel axes. Each image (and channel, if the mask has
    several) must have at least one known pixel (a positive value) when
    ``need_known``. The conversion to the dtype of ``f4`` keeps autograd.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{who}: mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dim() > 4 or mask.dim() < 2:
        raise UserInputError(f"{who}: mask must have shape (H, W), (1, H, W) or (B, 1, H, W) matching f "
                         f"{tuple(f4.shape)}, got {tuple(mask.shape)}")
    m = mask
    while m.dim() < 4:
        m = m[None]
    B, C, H, W = f4.shape
    if m.shape[-2:] != (H, W) or m.shape[0] not in (1, B) or m.shape[1] not in (1, C):
        raise UserInputError(f"{who}: mask of shape {tuple(mask.shape)} does not fit f of shape "
                         f"{tuple(f4.shape)} (expected (H, W) = ({H}, {W}), with batch 1 or {B} "
                         f"and channels 1 or {C})")
    if m.is_complex():
        raise TypeError(f"{who}: mask must be bool or real, got {m.dtype}")
    if m.dtype != torch.bool:
        if continuous:
            if not bool(((m >= 0) & (m <= 1)).all()):
                raise UserInputError(f"{who}: mask must have values in [0, 1] (1 = known pixel), "
                                 f"got values in [{float(m.min())}, {float(m.max())}]")
        elif not bool(((m == 0) | (m == 1)).all()):
            raise UserInputError(f"{who}: mask must be binary (values 0 and 1, 1 = known pixel)"
                             + ("; pass continuous=True for a mask with values in [0, 1]"
                                if who == "diffuse" else ""))
    m = m.to(device=f4.device, dtype=f4.dtype)
    if need_known:
        known = (m > 0).flatten(2).sum(-1)  # (Bm, Cm)
        if bool((known == 0).any()):
            bad = (known == 0).nonzero()[0].tolist()
            raise UserInputError(f"{who}: mask has no known pixel in image {bad[0]}"
                             + (f", channel {bad[1]}" if m.shape[1] > 1 else "")
                             + "; at least one pixel per image must be known")
    return m


def _check_f(f, who: str) -> torch.Tensor:
    if not isinstance(f, torch.Tensor):
        raise TypeError(f"{who}: f must be a torch.Tensor, got {type(f).__name__}")
    if not f.is_floating_point():
        raise TypeError(f"{who}: f must be a floating-point tensor (float32 or float64), got {f.dtype}")
    f4 = ops.as_batch(f, f"{who}: f")[0]
    if f4.shape[-1] < 2 or f4.shape[-2] < 2:
        raise UserInputError(f"{who}: f must be at least 2x2 pixels, got {tuple(f.shape)}")
    if not bool(torch.isfinite(f4).all()):
        raise UserInputError(f"{who}: f contains NaN or infinite values")
    return f4


# ---------------------------------------------------------------------------
# Grid transfer: bilinear (vertex-centred) interpolation and its transpose
# ---------------------------------------------------------------------------

def _coarse(n: int) -> int:
    return (n + 1) // 2


def _prolong_last(c: torch.Tensor, n: int) -> torch.Tensor:
    """Along the last axis: fine[2I] = c[I], fine[2I+1] = (c[I] + c[I+1]) / 2
    (c[I] alone past the end, so constants are kept)."""
    out = c.new_empty(*c.shape[:-1], n)
    out[..., 0::2] = c
    no = n // 2
    if no:
        cpad = torch.cat([c, c[..., -1:]], dim=-1)
        out[..., 1::2] = 0.5 * (cpad[..., :no] + cpad[..., 1:no + 1])
    return out


def _restrict_last(g: torch.Tensor) -> torch.Tensor:
    """The exact transpose of :func:`_prolong_last`."""
    n = g.shape[-1]
    gc = g[..., 0::2].clone()
    no = n // 2
    if no:
        go = 0.5 * g[..., 1::2]
        gc[..., :no] += go
        if no == gc.shape[-1]:  # n even: the last odd point leans on c[-1] twice
            gc[..., 1:] += go[..., :-1]
            gc[..., -1:] += go[..., -1:]
        else:
            gc[..., 1:] += go
    return gc


def _prolong(c: torch.Tensor, H: int, W: int) -> torch.Tensor:
    x = _prolong_last(c, W)
    return _prolong_last(x.transpose(-1, -2), H).transpose(-1, -2)


def _restrict(g: torch.Tensor) -> torch.Tensor:
    x = _restrict_last(g)
    return _restrict_last(x.transpose(-1, -2)).transpose(-1, -2)


# ---------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------

_OFFSETS = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]  # stencil entry k = 3 (a + 1) + (b + 1)


def _apply_stencil(S: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``y[I, J] = sum_k S[..., k, I, J] x[I + a_k, J + b_k]`` (zero outside); S (Bm, Cm, 9, h, w)."""
    h, w = x.shape[-2:]
    xp = F.pad(x, (1, 1, 1, 1))
    y = None
    for k, (a, b) in enumerate(_OFFSETS):
        t = S[..., k, :, :] * xp[..., 1 + a:1 + a + h, 1 + b:1 + b + w]
        y = t if y is None else y + t
    return y


def _neumann_degree(H: int, W: int, like: torch.Tensor) -> torch.Tensor:
    """Number of grid neighbours of each pixel (4 inside, 3 on edges, 2 in corners)."""
    d = like.new_full((H, W), 4.0)
    d[0, :] -= 1
    d[-1, :] -= 1
    d[:, 0] -= 1
    d[:, -1] -= 1
    return d


#: Largest image (pixels) whose single-image plain-CG solves run cg_matrix on the Laplacian's CSR matrix. On one
#: thread that loop was 1.7-2.8x faster than the tensor loop from 32 x 32 to 128 x 128 (and 1.6-2.8x at 256
#: and 512; benchmarks/results/inpaint/cg_single/); above this size torch's multi-threaded tensor loop may
#: win on machines with many cores.
MATRIX_PATH_MAX_PIXELS = 128 * 128


@functools.lru_cache(maxsize=16)
def _laplacian_csr(H: int, W: int, dtype: str = "float64"):
    """:func:`pdeflow.ops.laplacian` on (H, W) images as a SciPy CSR matrix (row-major pixels)."""
    def second_difference(n):
        main = np.full(n, -2.0)
        main[0] = main[-1] = -1.0 if n > 1 else 0.0
        return scipy.sparse.diags([np.ones(n - 1), main, np.ones(n - 1)], [-1, 0, 1])
    lap = (scipy.sparse.kron(scipy.sparse.eye(H), second_difference(W))
           + scipy.sparse.kron(second_difference(H), scipy.sparse.eye(W))).tocsr().astype(dtype)
    lap.sort_indices()
    return lap


class _Level:
    """One grid: its operator, the diagonal for Jacobi, and the transfer to the next coarser grid."""

    def __init__(self, apply, diag, shape, omega, prolong, restrict):
        self.apply, self.diag, self.shape, self.omega = apply, diag, shape, omega
        self.prolong, self.restrict = prolong, restrict  # to/from the next coarser level (None: coarsest)
        self.inv_dense = None


def _galerkin_stencil(level: _Level, hc: int, wc: int, like: torch.Tensor) -> torch.Tensor:
    """9-point stencil of ``R A P`` by probing with the 9 colourings (I mod 3, J mod 3)."""
    I = torch.arange(hc, device=like.device)[:, None]
    J = torch.arange(wc, device=like.device)[None, :]
    colour = (I % 3) * 3 + (J % 3)  # (hc, wc)
    probes = torch.stack([(colour == c) for c in range(9)]).to(like.dtype)  # (9, hc, wc)
    probes = probes[:, None, None]  # (9, 1, 1, hc, wc): broadcasts against (Bm, Cm)
    z = level.restrict(level.apply(level.prolong(probes)))  # (9, Bm, Cm, hc, wc)
    S = []
    for a, b in _OFFSETS:
        idx = (((I + a) % 3) * 3 + ((J + b) % 3)).expand(hc, wc)
        S.append(torch.gather(z, 0, idx.expand(1, *z.shape[1:3], hc, wc))[0])
    S = torch.stack(S, dim=2)  # (Bm, Cm, 9, hc, wc)
    centre = S[:, :, 4]
    # Coarse points whose interpolants vanish on all unknowns have empty rows and
    # columns; the identity there keeps the operator invertible (their rhs is 0).
    S[:, :, 4] = torch.where(centre == 0, torch.ones_like(centre), centre)
    return S


def _dense_from_stencil(S: torch.Tensor) -> torch.Tensor:
    """The (Bm, Cm, n, n) matrix of a 9-point stencil on an h x w grid, n = h w."""
    Bm, Cm, _, h, w = S.shape
    n = h * w
    A = S.new_zeros(Bm, Cm, n, n)
    I = torch.arange(h, device=S.device)[:, None].expand(h, w)
    J = torch.arange(w, device=S.device)[None, :].expand(h, w)
    for k, (a, b) in enumerate(_OFFSETS):
        ok = (I + a >= 0) & (I + a < h) & (J + b >= 0) & (J + b < w)
        rows = (I * w + J)[ok]
        cols = ((I + a) * w + (J + b))[ok]
        A[:, :, rows, cols] = S[:, :, k][:, :, ok]
    return A


def _pinv_spd(A: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of a symmetric positive semi-definite batch of matrices."""
    A = 0.5 * (A + A.transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(A)
    cut = evals.amax(-1, keepdim=True) * (A.shape[-1] * torch.finfo(A.dtype).eps * 10)
    inv = torch.where(evals > cut, 1.0 / torch.where(evals > cut, evals, torch.ones_like(evals)),
                      torch.zeros_like(evals))
    return (evecs * inv[..., None, :]) @ evecs.transpose(-1, -2)


def _hierarchy(m: torch.Tensor, d: torch.Tensor | None = None) -> list[_Level]:
    """Multigrid levels for the masked operator of a binary mask ``m`` (Bm, Cm, H, W), plus
    ``diag(d)`` if given (``d`` zero on the mask; the continuous-mask operator)."""
    H, W = m.shape[-2:]
    w = 1.0 - m
    deg = _neumann_degree(H, W, m)
    if d is None:
        apply, diag = (lambda x, w=w, m=m: w * (-laplacian(w * x)) + m * x), w * deg + m
    else:
        apply, diag = (lambda x, w=w, m=m, d=d: w * (-laplacian(w * x)) + (m + d) * x), w * deg + m + d
    levels = [_Level(
        apply=apply,
        diag=diag,
        shape=(H, W), omega=_OMEGA0,
        prolong=None, restrict=None)]
    h, wd = H, W
    while h * wd > _COARSEST and min(h, wd) >= 3:
        hc, wc = _coarse(h), _coarse(wd)
        fine = levels[-1]
        if len(levels) == 1:  # the finest prolongation lives on the unknowns only
            fine.prolong = lambda c, h=h, wd=wd, w=w: w * _prolong(c, h, wd)
            fine.restrict = lambda g, w=w: _restrict(w * g)
        else:
            fine.prolong = lambda c, h=h, wd=wd: _prolong(c, h, wd)
            fine.restrict = _restrict
        S = _galerkin_stencil(fine, hc, wc, m)
        levels.append(_Level(apply=lambda x, S=S: _apply_stencil(S, x), diag=S[:, :, 4].clone(),
                             shape=(hc, wc), omega=_OMEGA, prolong=None, restrict=None))
        levels[-1].stencil = S
        h, wd = hc, wc
    last = levels[-1]
    if len(levels) == 1:
        # Small image: the whole problem is the coarsest grid.
        S = _galerkin_free_stencil(m, d)
    else:
        S = last.stencil
    last.inv_dense = _pinv_spd(_dense_from_stencil(S))
    return levels


def _galerkin_free_stencil(m: torch.Tensor, d: torch.Tensor | None = None) -> torch.Tensor:
    """9-point form of the finest masked operator (for images small enough to solve densely)."""
    H, W = m.shape[-2:]
    md = m if d is None else m + d
    lvl = _Level(apply=lambda x: (1.0 - m) * (-laplacian((1.0 - m) * x)) + md * x, diag=None,
                 shape=(H, W), omega=None, prolong=lambda c: c, restrict=lambda g: g)
    return _galerkin_stencil(lvl, H, W, m)


def _vcycle(levels: list[_Level], r: torch.Tensor, l: int = 0) -> torch.Tensor:
    lv = levels[l]
    if lv.inv_dense is not None:
        h, w = lv.shape
        x = (lv.inv_dense @ r.reshape(*r.shape[:-2], h * w, 1)).reshape(r.shape)
        return x
    dinv = lv.omega / lv.diag
    x = dinv * r
    for _ in range(_NU - 1):
        x = x + dinv * (r - lv.apply(x))
    xc = _vcycle(levels, lv.restrict(r - lv.apply(x)), l + 1)
    x = x + lv.prolong(xc)
    for _ in range(_NU):
        x = x + dinv * (r - lv.apply(x))
    return x


# ---------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------

try:   # SciPy's CSR product kernel (private; ``@`` is the fallback)
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:   # pragma: no cover
    _csr_matvec = None


def _csr_product(lap, v: np.ndarray) -> np.ndarray:
    """``lap @ v`` for a square CSR matrix and a vector: SciPy's kernel without the checks of ``@`` (a third
    of a 64 x 64 product's time) where the dtypes match and ``v`` is contiguous."""
    if _csr_matvec is None or v.dtype != lap.dtype or not v.flags.c_contiguous:
        return lap @ v
    n = lap.shape[0]
    y = np.zeros(n, dtype=v.dtype)
    _csr_matvec(n, n, lap.indptr, lap.indices, lap.data, v, y)
    return y


class _MaskedLaplacian:
    """``A v = -w (L v) + d v`` for vectors ``v`` (N,) that are zero on the mask: the system of
    :class:`_System` on one image, for :func:`pdeflow.linalg.cg_matrix`.

    The Laplacian's CSR matrix is built once per image size (:func:`_laplacian_csr`), and
    the mask enters as two vectors: building a CSR matrix per mask cost more than the
    few warm-started iterations of a mask refinement's solves.
    """

    def __init__(self, lap, negw: np.ndarray, d: np.ndarray | None):
        self.lap, self.negw, self.d = lap, negw, d
        self.shape = lap.shape

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        y = _csr_product(self.lap, v)
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

    def __init__(self, c: torch.Tensor, method: str, binary: bool):
        self.c = c
        if binary:
            self.k, self.d = c, None
        else:
            self.k = (c == 1).to(c.dtype)
            one_minus = torch.where(c < 1, 1.0 - c, torch.ones_like(c))
            self.d = torch.where(c < 1, c / one_minus, torch.zeros_like(c))
        self.w = 1.0 - self.k
        self.levels = None
        self._matrix = None     # the CSR matrix of the single-image CG path, built on first use
        if method == "mg":
            self.levels = _hierarchy(self.k, self.d)
        self._negw = -self.w

    def apply_a(self, x: torch.Tensor) -> torch.Tensor:
        # Everything CG touches (start, rhs, residuals, preconditioned residuals) is zero on
        # the mask, where A is the identity; there A x = w (-laplacian(w x)) + m x = -w laplacian(x):
        # the inner loop of CG, four small tensor operations.
        y = laplacian(x).mul_(self._negw)
        if self.d is None:
            return y
        return y.addcmul_(self.d, x)

    def precond(self, r: torch.Tensor) -> torch.Tensor:
        return self.w * _vcycle(self.levels, r)  # exactly zero on the mask, as apply_a needs

    def rhs(self, f4: torch.Tensor):
        """``(b, z)``: the unknowns are ``x = z + e`` with ``A e = b`` (``z = None``: ``x = e``).

        Binary mask: ``z = 0``, ``b = w L (k f)``. Continuous mask: ``z = w p f`` with
        ``p = (c > 0)``, so that ``b = w L (k f) + d f - A z = w L (p f)``: the large
        terms ``d f`` (``d = c / (1 - c)`` grows without bound as ``c -> 1``) cancel and
        the relative-residual rule measures the Laplace rows, as for a binary mask
        (with ``p f`` in the role of ``k f``).
        """
        if self.d is None:
            return self.w * laplacian(self.k * f4), None
        pf = (self.c > 0).to(f4.dtype) * f4
        return self.w * laplacian(pf), self.w * pf

    def matrix(self, dtype) -> _MaskedLaplacian:
        """``A`` for a single-image mask (1, 1, H, W) as a NumPy operator ``A @ v`` of ``dtype``, for
        vectors ``v`` that are zero on the mask (:class:`_MaskedLaplacian`)."""
        H, W = self.c.shape[-2:]
        negw = self._negw.detach().reshape(-1).cpu().numpy().astype(dtype, copy=False)
        d = None if self.d is None else self.d.detach().reshape(-1).cpu().numpy().astype(dtype, copy=False)
        return _MaskedLaplacian(_laplacian_csr(H, W, np.dtype(dtype).name), negw, d)

    def solve(self, b: torch.Tensor, start, tol: float, max_iter: int):
        """``A x = b`` for ``b`` (B, C, H, W) zero on the mask; returns x (zero on the mask),
        iterations (B,) and the relative residual (B,)."""
        if self.levels is None and b.shape[0] * b.shape[1] == 1 and self.c.shape[:2] == (1, 1) \
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
        x, iters = cg(self.apply_a, b, start, tol=tol, max_iter=max_iter,
                      precond=None if self.levels is None else self.precond)
        x = self.w * x  # exactly zero on the mask
        bn = b.flatten(1).norm(dim=1)
        res = (b - self.apply_a(x)).flatten(1).norm(dim=1) / bn.clamp_min(torch.finfo(b.dtype).tiny)
        res = torch.where(bn > 0, res, torch.zeros_like(res))
        return x, iters, res


def _warn_max_iter(iters, res, tol, max_iter, what="diffuse"):
    if bool((iters >= max_iter).any()) and bool((res > tol).any()):
        warnings.warn(f"{what}: max_iter={max_iter} reached before tol={tol:g} "
                      f"(largest relative residual {float(res.max()):.3g})", RuntimeWarning, stacklevel=4)


def _forward(f4, c, binary, tol, max_iter, x0, method):
    """(u, iterations, residual, system) for f4 (B, C, H, W) and a mask c (Bm, Cm, H, W)."""
    B, C, H, W = f4.shape
    sysm = _System(c, method, binary)
    b, z = sysm.rhs(f4)
    b = b.expand(B, C, H, W).contiguous()
    start = None
    if x0 is not None:
        start = (sysm.w * x0 if z is None else sysm.w * x0 - z).expand(B, C, H, W).contiguous()
    x, iters, res = sysm.solve(b, start, tol, max_iter)
    if z is not None:
        x = x + z
    u = torch.addcmul(x, sysm.k, f4)  # x is exactly zero on the known pixels: u = f there, x elsewhere
    _warn_max_iter(iters, res, tol, max_iter)
    return u, iters, res, sysm


def _sum_to(t: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``t`` over the axes along which ``shape`` was broadcast (the adjoint of expand)."""
    dims = [i for i, (a, b) in enumerate(zip(shape, t.shape)) if a == 1 and b != 1]
    return t.sum(dim=dims, keepdim=True) if dims else t


class _DiffuseFunction(torch.autograd.Function):
    """``u = diffuse(f, c)`` with the adjoint backward (see :func:`diffuse`, Notes)."""

    @staticmethod
    def forward(ctx, f4, c, binary, tol, max_iter, x0, method, info):
        u, iters, res, sysm = _forward(f4, c, binary, tol, max_iter, x0, method)
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
        B, C, H, W = u.shape
        # Adjoint: M(c)^T lam = g. With nu = (1 - c) lam on the unknowns, A nu = w g (A the
        # forward operator, same preconditioner); on the known pixels lam = g + L nu.
        rhs = (sysm.w * g).expand(B, C, H, W).contiguous()
        start = ctx.info.get("adjoint_x0")   # a warm start (see _diffuse_recorded); nu is zero on the mask
        if start is not None:
            start = (sysm.w * start).expand(B, C, H, W).contiguous()
        tol = ctx.info.get("adjoint_tol") or tol
        nu, iters, res = sysm.solve(rhs, start, tol, max_iter)
        ctx.info["adjoint"] = nu
        _warn_max_iter(iters, res, tol, max_iter, what="diffuse (adjoint solve)")
        g_lnu = g + laplacian(nu)
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
            grad_c = _sum_to(lam * (f4 - u - laplacian(u)), c.shape)
        return grad_f, grad_c, None, None, None, None, None, None


def default_max_iter(solver: str, H: int, W: int) -> int:
    """:func:`diffuse`'s iteration limit when none is given: 500 for 'mg', ``20 (H + W)`` for 'cg'."""
    return 500 if solver == "mg" else 20 * (H + W)


def _diffuse_recorded(f4, c, binary, tol, max_iter, x0, solver, adjoint_x0=None, adjoint_tol=None):
    """``diffuse`` as one autograd node, unchecked, for callers that solve many nearby problems.

    Returns ``(u, info)``. ``info`` holds the forward's ``iterations`` and ``residual``
    now and, once the backward has run, ``adjoint``: the adjoint solve's unknowns ``nu``
    (B, C, H, W). Passing a previous ``nu`` as ``adjoint_x0`` warm-starts the next
    adjoint solve, as ``x0`` does the forward one (mask refinement solves a sequence
    of masks that differ in a few pixels). ``adjoint_tol`` (default ``tol``) is the
    adjoint solve's tolerance.
    """
    info = {"adjoint_x0": adjoint_x0, "adjoint_tol": adjoint_tol}
    return _DiffuseFunction.apply(f4, c, binary, tol, max_iter, x0, solver, info), info


@auto_threads
def diffuse(f: torch.Tensor, mask: torch.Tensor, *, tol: float = 1e-6, max_iter: int | None = None,
            x0: torch.Tensor | None = None, solver: str = "mg", full_output: bool = False,
            continuous: bool = False, method: str | None = None):
    """Homogeneous diffusion inpainting of ``f`` from the pixels where ``mask`` is 1.

    Solves ``u = f`` on the mask and ``laplacian(u) = 0`` elsewhere (5-point
    Laplacian, Neumann boundary), per image and channel. For a continuous mask
    ``c`` (confidence in [0, 1], ``continuous=True``) it solves
    ``c (u - f) - (1 - c) laplacian(u) = 0`` at every pixel. Differentiable with
    respect to ``f`` and the mask (see Notes).

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), float32 or float64, finite. Only the values on the mask
        (where ``c > 0``) are used.
    mask : Tensor
        Binary (bool or 0/1) mask, 1 = known pixel; with ``continuous=True``
        any values in [0, 1]. Shape (H, W), (1, H, W), (B, 1, H, W) or
        anything else that broadcasts to ``f`` along the batch and channel
        axes. Each image needs at least one known pixel (one positive value).
    tol : float, optional
        Relative residual ``||b - A x|| / ||b||`` per image (see the module
        doc) at which the solver stops. Default 1e-6. The adjoint solve of
        the backward pass uses the same tolerance.
    max_iter : int, optional
        Iteration limit (default: 500 for 'mg', ``20 (H + W)`` for 'cg'); a
        warning is issued if it is reached first.
    x0 : Tensor, optional
        Initial guess for ``u`` (shape of ``f``, e.g. the solution for a
        nearby mask); only its values off the mask are used. Not
        differentiated through (the solution does not depend on it).
    solver : {'mg', 'cg'}, optional
        The linear solver: multigrid-preconditioned CG (default) or plain CG.
        (``method=`` is its deprecated former name.)
    full_output : bool, optional
        Return a :class:`DiffuseResult` with iteration counts and residuals.
    continuous : bool, optional
        Accept a mask with values in [0, 1] (default False: the mask must be
        binary, and a non-binary one is an error).

    Returns
    -------
    u : Tensor, shape and dtype of ``f``
        Equal to ``f`` where the mask is 1 (exactly). A :class:`DiffuseResult`
        with ``full_output=True``.

    Notes
    -----
    **Continuous masks.** With ``C = diag(c)`` and ``L`` the Neumann
    Laplacian, ``u`` solves ``M(c) u = C f``, ``M(c) = C - (I - C) L``, which
    is not symmetric unless ``c`` is binary. Pixels with ``c = 1`` are fixed
    (``u = f``); the rows of the others are divided by ``1 - c``, which gives
    the symmetric positive definite ``(D - L) u = D f`` on them,
    ``D = diag(c / (1 - c))``: the binary operator plus a diagonal, solved by the
    same multigrid-preconditioned CG (its Galerkin hierarchy includes the
    diagonal). The unknowns are solved for as a correction of ``f`` on the
    pixels with ``c > 0``, so that the large diagonal entries (``c`` near 1)
    drop out of the right-hand side and the relative-residual rule ``tol``
    measures the Laplace rows as for a binary mask. A solve costs what a
    binary one costs per iteration, plus a few elementwise operations;
    measured at 96x80 with 5 % of the pixels near 1: 5-9 iterations for ``c``
    in [0, 0.5] (binary: 6-8), up to about twice the binary count when ``c``
    is within 1e-6 of 1. A mask that happens to be binary takes the binary
    path whatever ``continuous`` says, so binary results are bit for bit
    those of the binary solver.

    **Backward (adjoint method).** When ``f`` or ``mask`` requires grad (and
    grad mode is on), the solve is recorded as one autograd node; otherwise
    nothing is recorded and nothing extra is computed. Given ``g = dl/du``,
    the backward solves the adjoint system ``M(c)^T lam = g`` and returns

        dl/df = c * lam,     dl/dc = lam * (f - u - laplacian(u)),

    the sensitivity of Hoeltgen, Setzer and Weickert (2013). ``M^T lam = g``
    costs one extra solve with the forward's SPD operator ``A`` and its
    multigrid hierarchy, reused: ``nu = (1 - c) lam`` on the unknowns solves
    ``A nu = (1 - c > 0) g``, and ``lam = g + laplacian(nu)`` where ``c = 1``.
    For a binary mask ``m`` this reads: where ``m = 0``, ``dl/df = 0`` and
    ``dl/dc = nu (f - u)``; where ``m = 1``, ``dl/df = g + laplacian(nu)`` and
    ``dl/dc = -(g + laplacian(nu)) laplacian(u)``. The mask gradient at a
    binary mask is the derivative of the continuous problem ``M(c) u = C f``
    there (one-sided inside [0, 1]). Gradients of a broadcast mask are summed
    over the broadcast axes. Only first derivatives are supported (no double
    backward); the gradient is exact up to the solver tolerance ``tol`` of the
    two solves. For a straight-through estimator keep the mask exactly binary,
    e.g. ``hard + (soft - soft.detach())``.

    References
    ----------
    .. [1] L. Hoeltgen, S. Setzer, J. Weickert, "An optimal control approach
       to find sparse data for Laplace interpolation", Energy Minimization
       Methods in Computer Vision and Pattern Recognition (EMMCVPR), 2013.
    """
    who = "diffuse"
    f4 = _check_f(f, who)
    if not isinstance(continuous, bool):
        raise UserInputError(f"{who}: continuous must be True or False, got {continuous!r}")
    c = check_mask(mask, f4, who, continuous=continuous)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise UserInputError(f"{who}: tol must be a number in (0, 1), got {tol!r}")
    solver = _solver_alias(solver, method, who)
    if solver not in SOLVERS:
        raise UserInputError(f"{who}: solver must be one of {SOLVERS}, got {solver!r}")
    B, C, H, W = f4.shape
    if max_iter is None:
        max_iter = default_max_iter(solver, H, W)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise UserInputError(f"{who}: max_iter must be a positive int, got {max_iter!r}")
    if x0 is not None:
        if not isinstance(x0, torch.Tensor) or x0.shape != f.shape:
            raise UserInputError(f"{who}: x0 must be a tensor of the shape of f {tuple(f.shape)}, "
                             f"got {tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}")
        x0 = ops.as_batch(x0.detach().to(device=f4.device, dtype=f4.dtype), f"{who}: x0")[0]
        if not bool(torch.isfinite(x0).all()):
            raise UserInputError(f"{who}: x0 contains NaN or infinite values")
    binary = (not continuous) or mask.dtype == torch.bool or bool(((c == 0) | (c == 1)).all())

    if torch.is_grad_enabled() and (f4.requires_grad or c.requires_grad):
        u, info = _diffuse_recorded(f4, c, binary, tol, max_iter, x0, solver)
        iters, res = info["iterations"], info["residual"]
    else:
        u, iters, res, _ = _forward(f4, c, binary, tol, max_iter, x0, solver)
    u = u.reshape(f.shape)
    if full_output:
        return DiffuseResult(u=u, iterations=iters, residual=res)
    return u


def inpainting_error(f: torch.Tensor, u: torch.Tensor, *, metric: str = "mse") -> torch.Tensor:
    """Inpainting error per image: ``'mse'`` (mean squared) or ``'mae'`` (mean absolute).

    Shapes as in :mod:`pdeflow.metrics`: ``(B,)`` for 4-D input, a 0-d tensor otherwise.
    """
    from .. import metrics

    if metric == "mse":
        return metrics.mse(f, u)
    if metric == "mae":
        return metrics.mae(f, u)
    raise UserInputError(f"inpainting_error: metric must be 'mse' or 'mae', got {metric!r}")
