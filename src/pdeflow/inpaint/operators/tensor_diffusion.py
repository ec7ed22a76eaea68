"""Nonlinear diffusion inpainting by lagged diffusivity: the machinery shared by EED and TV inpainting.

Both :func:`~pdeflow.inpaint.operators.eed.inpaint_eed` and :func:`~pdeflow.inpaint.operators.tv.inpaint_tv` seek
the steady state of ``div(D grad u) = 0`` on the unknown pixels, ``u = f`` on the known ones, with a 2 x 2 diffusion
tensor ``D`` per pixel that depends on ``u``.

The discretisation. For symmetric positive definite tensors ``D_i`` the linear operator is that of the energy

    E(u) = 1/4 sum_i sum_(a, b) grad_ab u_i^T D_i grad_ab u_i,

the mean over the four one-sided gradients ``grad_ab`` (forward or backward differences per axis, zero across the
boundary: Neumann). Each term is a sum of squares ``|D^(1/2) grad_ab u|^2``, so ``A = sum G_ab^T D G_ab / 4`` is
symmetric positive semi-definite, null space the constants (where alone forward differences vanish): positive
definite on the unknowns of an image with one known pixel, with no checkerboard mode (as a cell-centred gradient
would have). Expanded, the classic 3 x 3 stencil in flux form, with the differences ``e_y``, ``e_x`` across edges,

    F_y = a_y e_y + mean_y(d_01 c_x),   F_x = a_x e_x + mean_x(d_01 c_y),   A u = G^T F,

where ``a_y`` (``a_x``) is the mean of ``d_00`` (``d_11``) of the edge's two pixels, ``c`` the central difference
(half the sum of forward and backward) and ``mean_y`` the mean of two neighbouring pixels. Averaging the four
one-sided gradients makes the operator commute with 90-degree rotations and flips, as the continuous one does.

The steady state by lagged diffusivity (Vogel and Oman 1996): freeze ``D`` at the current ``u``, solve the linear
SPD system on the unknowns, repeat. Each step solves for the correction ``delta`` from the nonlinear residual
``r = -w A(u) u`` (``w`` = 1 on the unknowns) by conjugate gradients preconditioned with one V-cycle of the mask's
homogeneous multigrid (:class:`pdeflow.multigrid.Multigrid`, built once per call), to a relative residual
``inner_rtol``: loose steps that tighten with the outer residual, the tolerance being relative to ``||r||``.
``scale=True`` scales the preconditioner by the inverse square root of each pixel's mean diffusivity, following
coefficients that vary by orders of magnitude (TV's ``1 / |grad u|``). The iteration starts from homogeneous
diffusion inpainting (cheap, same hierarchy) or a warm start and stops per image when

    ||S^-1 w A(u) u|| / ||S^-1 w A(u) (m f)||  <=  tol

holds, ``S`` the diagonal of the operator's 5-point part (each pixel's sum of edge weights): the rule of
:func:`pdeflow.inpaint.inpaint_diffusion` (``A(u)`` frozen at ``u``, unknowns ``x = w u``, ``||b - A x|| / ||b||``,
``b = -w A(u) (m f)``) for the diagonally scaled system. The scaling makes the residual a change of intensity (a
Jacobi step's), so large diffusivities (TV's ``1 / eps`` on flat parts) do not inflate ``||b||`` and loosen the rule.

Why not an explicit scheme (fast explicit diffusion): sparse inpainting's steady state needs diffusion times of
the order of the squared distance between known pixels, explicit time steps the order of the smallest
diffusivity's inverse; the implicit steps reuse the multigrid of homogeneous diffusion inpainting, and for TV the
lagged scheme decreases the convex energy monotonically, which gives a stopping rule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ...linalg import cg
from ...multigrid import Multigrid
from .diffusion_system import diffuse_with_hierarchy, warn_max_iter

__all__ = ["TensorOperator", "FrozenInpainting", "LaggedResult", "lagged_diffusivity", "homogeneous_start",
           "central_differences", "pixel_sum", "edge_sum", "grad_transpose", "known_range"]


@dataclass
class LaggedResult:
    """Output of the lagged-diffusivity solvers with ``full_output=True``.

    Attributes
    ----------
    u : Tensor
        The inpainted image, shape of ``f``.
    outer_iterations : Tensor of int64, shape (B,)
        Lagged-diffusivity steps (linear solves) per image.
    inner_iterations : Tensor of int64, shape (B,)
        Conjugate-gradient iterations per image, summed over the steps (each one V-cycle and one operator
        product).
    residual : Tensor, shape (B,)
        The nonlinear relative residual ``||S^-1 w A(u) u|| / ||S^-1 w A(u) (m f)||`` (see the module doc) of the
        returned ``u``.
    energy : Tensor or None, shape (B, outer_iterations + 1)
        The energy after each step (the start first) where the operator minimises one (TV; NaN after an
        image's last step), else None.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import LaggedResult
    >>> r = LaggedResult(torch.zeros(2, 2), torch.ones(1, dtype=torch.long), torch.ones(1, dtype=torch.long),
    ...                  torch.zeros(1), None)
    >>> r.u.shape
    torch.Size([2, 2])
    """

    u: torch.Tensor
    outer_iterations: torch.Tensor
    inner_iterations: torch.Tensor
    residual: torch.Tensor
    energy: torch.Tensor | None = None


# ---------------------------------------------------------------------------
# Differences on the pixel grid
# ---------------------------------------------------------------------------

def pixel_sum(e: torch.Tensor, dim: int) -> torch.Tensor:
    """The sum of the (at most two) edge values ``e`` (one shorter along ``dim``, -1 or -2) next to each pixel.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import pixel_sum
    >>> pixel_sum(torch.tensor([1.0, 2.0]), 0)
    tensor([1., 3., 2.])
    """
    n = e.shape[dim]
    shape = list(e.shape)
    shape[dim] = n + 1
    out = e.new_zeros(shape)      # one new array and no padded copies (a subdomain's peak memory)
    out.narrow(dim, 0, n).add_(e)
    out.narrow(dim, 1, n).add_(e)
    return out


def edge_sum(p: torch.Tensor, dim: int) -> torch.Tensor:
    """The sum of the two pixel values ``p`` on each edge along ``dim`` (one shorter).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import edge_sum
    >>> edge_sum(torch.tensor([1.0, 2.0, 4.0]), 0)
    tensor([3., 6.])
    """
    n = p.shape[dim]
    return p.narrow(dim, 0, n - 1) + p.narrow(dim, 1, n - 1)


def grad_transpose(fy: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
    """``G^T F`` for edge fluxes ``fy`` (..., H - 1, W) and ``fx`` (..., H, W - 1): ``-div F``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import grad_transpose
    >>> grad_transpose(torch.ones(1, 2), torch.zeros(2, 1))
    tensor([[-1., -1.],
            [ 1.,  1.]])
    """
    return _add_transpose_x(fx, _transpose_y(fy))


def _transpose_y(fy: torch.Tensor) -> torch.Tensor:
    """``G_y^T F_y`` (a new array): ``(G^T F)_i = F_(i-1) - F_i``, with no flux across the image boundary."""
    H = fy.shape[-2] + 1
    out = fy.new_empty(*fy.shape[:-2], H, fy.shape[-1])
    torch.neg(fy[..., 0, :], out=out[..., 0, :])
    out[..., H - 1, :] = fy[..., H - 2, :]
    if H > 2:
        torch.sub(fy[..., :-1, :], fy[..., 1:, :], out=out[..., 1:H - 1, :])
    return out


def _add_transpose_x(fx: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out + G_x^T F_x``, in place."""
    W = fx.shape[-1] + 1
    out[..., :, 0].sub_(fx[..., :, 0])
    out[..., :, W - 1].add_(fx[..., :, W - 2])
    if W > 2:
        out[..., :, 1:W - 1].add_(fx[..., :, :-1]).sub_(fx[..., :, 1:])
    return out


def central_differences(u: torch.Tensor):
    """``(c_y, c_x)``: half the sum of the forward and the backward difference at each pixel along H and W
    (the central difference inside, half the one-sided one on the boundary: the mirror of the pixel edge).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import central_differences
    >>> cy, cx = central_differences(torch.tensor([[0.0, 1.0, 4.0]]))
    >>> cx
    tensor([[0.5000, 2.0000, 1.5000]])
    """
    return 0.5 * pixel_sum(torch.diff(u, dim=-2), -2), 0.5 * pixel_sum(torch.diff(u, dim=-1), -1)


# ---------------------------------------------------------------------------
# The frozen linear operator
# ---------------------------------------------------------------------------

#: Elements of an image (its batch and channels together) per strip of :meth:`TensorOperator.apply` on large
#: images.
STRIP_ELEMENTS = 1 << 17


def _flux_y(u: torch.Tensor, a_y: torch.Tensor, q: torch.Tensor | None):
    """``F_y`` of ``u`` for edge weights ``a_y`` and quarter off-diagonal entries ``q``, and the per-pixel
    off-diagonal term ``F_x`` takes (None if isotropic). :func:`_flux_x` retakes the W difference (memory)."""
    ey = torch.diff(u, dim=-2)
    if q is None:
        return ey.mul_(a_y), None
    qx = pixel_sum(torch.diff(u, dim=-1), -1).mul_(q)
    qy = pixel_sum(ey, -2).mul_(q)
    return ey.mul_(a_y).add_(qx[..., :-1, :]).add_(qx[..., 1:, :]), qy


def _flux_x(u: torch.Tensor, a_x: torch.Tensor, qy: torch.Tensor | None) -> torch.Tensor:
    ex = torch.diff(u, dim=-1).mul_(a_x)
    return ex if qy is None else ex.add_(qy[..., :, :-1]).add_(qy[..., :, 1:])


def strip_rows(u: torch.Tensor) -> int:
    """Rows of a strip of ``u`` (B, C, H, W) for the work done strip by strip on large images: about
    :data:`STRIP_ELEMENTS` elements with its batch and channels.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import strip_rows
    >>> strip_rows(torch.empty(1, 1, 4096, 4096))
    32
    """
    return max(1, STRIP_ELEMENTS // max(1, u[0].numel() // u.shape[-2]))


def _apply_rows(u: torch.Tensor, a_y: torch.Tensor, a_x: torch.Tensor, q: torch.Tensor | None) -> torch.Tensor:
    """``G^T D G u`` with no flux across the first and the last row of ``u``: the operator on an image, or on a
    strip of its rows (right on all but the strip's first and last row)."""
    # each flux goes into G^T once formed: at most three arrays of u's size besides u
    fy, qy = _flux_y(u, a_y, q)
    out = _transpose_y(fy)
    del fy
    return _add_transpose_x(_flux_x(u, a_x, qy), out)


class TensorOperator:
    """The operator ``A = G^T D G`` of a frozen tensor field (see the module doc), restricted to the unknowns.

    Parameters
    ----------
    a_y : Tensor, shape (B, 1, H - 1, W)
        Edge weights along H: the mean of ``d_00`` of the two pixels of each edge.
    a_x : Tensor, shape (B, 1, H, W - 1)
        Edge weights along W: the mean of ``d_11``.
    d01 : Tensor or None, shape (B, 1, H, W)
        The off-diagonal entry per pixel (None: an isotropic field).
    w : Tensor, shape (Bm, Cm, H, W)
        1 on the unknown pixels, 0 on the known ones.
    known : Tensor, shape (Bm, Cm, H, W)
        Instead of ``w``: the binary mask ``1 - w`` (the operator then keeps no array of its own for ``w``).
    overwrite_d01 : bool
        Whether ``d01`` may be overwritten (the operator keeps a multiple of it).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import TensorOperator
    >>> from pdeflow.ops import laplacian
    >>> u = torch.randn(1, 1, 5, 6, dtype=torch.float64)
    >>> op = TensorOperator(torch.ones(1, 1, 4, 6, dtype=torch.float64),
    ...                     torch.ones(1, 1, 5, 5, dtype=torch.float64), None, torch.ones_like(u))
    >>> bool(torch.allclose(op.apply(u), -laplacian(u)))     # D = I: the negative Laplacian
    True
    """

    def __init__(self, a_y: torch.Tensor, a_x: torch.Tensor, d01: torch.Tensor | None, w: torch.Tensor | None = None,
                 *, known: torch.Tensor | None = None, overwrite_d01: bool = False):
        if (w is None) == (known is None):
            raise TypeError("TensorOperator: pass w or known, one of them")
        self.a_y, self.a_x, self._w, self.known = a_y, a_x, w, known
        # d01 enters as d01 c with c half the sum of two differences, then averaged over two pixels: a quarter
        self.q = None if d01 is None else (d01.mul_(0.25) if overwrite_d01 else 0.25 * d01)

    @classmethod
    def from_tensor(cls, d00: torch.Tensor, d01: torch.Tensor | None, d11: torch.Tensor, w: torch.Tensor):
        """The operator of the pixel tensors ``[[d00, d01], [d01, d11]]`` (each (B, 1, H, W))."""
        return cls(edge_sum(d00, -2).mul_(0.5), edge_sum(d11, -1).mul_(0.5), d01, w)

    def flux(self, u: torch.Tensor):
        """The edge fluxes ``(F_y, F_x)`` of ``u`` (B, C, H, W)."""
        fy, qy = _flux_y(u, self.a_y, self.q)
        return fy, _flux_x(u, self.a_x, qy)

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """``A u = G^T F(u)`` on every pixel (the rows of the known ones included)."""
        H = u.shape[-2]
        rows = strip_rows(u)
        if H <= 2 * rows:
            return _apply_rows(u, self.a_y, self.a_x, self.q)
        # in strips: one strip's fluxes at a time, not three image-sized arrays (a subdomain's peak memory)
        out = u.new_empty(u.shape)
        for r0, r1, part in self._strips(lambda a, b: u[..., a:b, :], H, rows):
            out[..., r0:r1, :] = part
        return out

    def _strips(self, rows_of: Callable, H: int, rows: int):
        """``(r0, r1, rows r0:r1 of A u)`` strip by strip, each with the row on either side its fluxes read;
        ``rows_of(h0, h1)`` gives rows ``h0:h1`` of ``u``."""
        for r0 in range(0, H, rows):
            r1 = min(H, r0 + rows)
            h0, h1 = max(0, r0 - 1), min(H, r1 + 1)
            q = None if self.q is None else self.q[..., h0:h1, :]
            part = _apply_rows(rows_of(h0, h1), self.a_y[..., h0:h1 - 1, :], self.a_x[..., h0:h1, :], q)
            yield r0, r1, part[..., r0 - h0:r1 - h0, :]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``w A x``: the operator on the unknowns, for conjugate gradients."""
        return self.unknowns_(self.apply(x))

    @property
    def w(self) -> torch.Tensor:
        """1 on the unknown pixels, 0 on the known ones (a new array where the operator was given ``known``)."""
        return self._w if self._w is not None else 1.0 - self.known

    def unknowns_(self, y: torch.Tensor, r0: int = 0, r1: int | None = None) -> torch.Tensor:
        """``w y``, in place, for ``y`` the rows ``r0:r1`` of an image (default: all of them)."""
        rows = (Ellipsis, slice(r0, r1), slice(None))
        if self._w is not None:
            return y.mul_(self._w[rows])
        return y.addcmul_(self.known[rows], y, value=-1)     # y - m y: exactly w y for a binary m

    def diagonal(self) -> torch.Tensor:
        """The sum of each pixel's edge weights (B, 1, H, W): the diagonal of the 5-point part of ``A``."""
        return self._diagonal_rows(0, self.a_x.shape[-2])

    def _diagonal_rows(self, r0: int, r1: int) -> torch.Tensor:
        """Rows ``r0:r1`` of :meth:`diagonal`."""
        H = self.a_x.shape[-2]
        d = pixel_sum(self.a_x[..., r0:r1, :], -1)
        below = min(r1, H - 1)              # the edge below each row but the image's last
        if below > r0:
            d[..., :below - r0, :] += self.a_y[..., r0:below, :]
        above = max(r0, 1)                  # the edge above each row but the first
        if r1 > above:
            d[..., above - r0:, :] += self.a_y[..., above - 1:r1 - 1, :]
        return d

    def norms_over_diagonal(self, x: torch.Tensor) -> torch.Tensor:
        """Per image (float64, (B,)): ``||x / diag||``, formed in strips of rows (no array of the image's size)."""
        H, rows = x.shape[-2], strip_rows(x)
        return self._norms((r0, min(H, r0 + rows), x[..., r0:r0 + rows, :]) for r0 in range(0, H, rows))

    def applied_norms_over_diagonal(self, rows_of: Callable, like: torch.Tensor) -> torch.Tensor:
        """Per image (float64, (B,)): ``||w A u / diag||``, ``u`` given by ``rows_of`` (rows of ``u``, as in
        :meth:`_strips`) and ``like`` an array of its shape; formed in strips of rows, with no array of the
        image's size (lagged diffusivity's residual norms)."""
        H, rows = like.shape[-2], strip_rows(like)
        return self._norms((r0, r1, self.unknowns_(p, r0, r1)) for r0, r1, p in self._strips(rows_of, H, rows))

    def _norms(self, parts) -> torch.Tensor:
        """``sqrt(sum (part / diag)^2)`` per image over ``(r0, r1, part)`` strips of rows, in float64."""
        acc = None
        for r0, r1, part in parts:
            term = (part / self._diagonal_rows(r0, r1)).double().square_().flatten(1).sum(1)
            acc = term if acc is None else acc.add_(term)
        return acc.sqrt_()

    def pixel_weight(self) -> torch.Tensor:
        """The mean weight of each pixel's edges (B, 1, H, W): the preconditioner's scaling."""
        deg = pixel_sum(torch.ones_like(self.a_y), -2) + pixel_sum(torch.ones_like(self.a_x), -1)
        return self.diagonal() / deg


class FrozenInpainting:
    """The inpainting with a frozen tensor field as a linear map of the stored values, and its adjoint.

    With ``A`` frozen, the inpainting of values ``g`` (read on the mask ``m`` only) is ``M g = m g + x``,
    ``w A x = -w A (m g)`` on the unknowns: ``M = m - w S^-1 w A m``, ``S = w A w``; ``A`` is symmetric, so
    ``M^T r = m (r - A nu)`` with ``S nu = w r``. Both solves: CG preconditioned by the mask's homogeneous
    multigrid, to relative residual ``tol``. Frozen at the steady state ``u`` of a nonlinear inpainting of
    ``g``, ``M g = u``: the inpainting linearised with its tensor fixed (used by EED's tonal optimisation,
    :func:`pdeflow.inpaint.optimise_tonal`).

    Parameters
    ----------
    op : TensorOperator
        The frozen operator (its ``w`` the mask's complement).
    m : Tensor (Bm, 1, H, W)
        The binary mask in the dtype of the values.
    mg : Multigrid
        The hierarchy of ``m`` (built once per mask and shared between linearisations).
    tol : float
        Relative residual of each solve.
    max_iter : int
        CG iterations per solve at most.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.multigrid import Multigrid
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> from pdeflow.inpaint.operators.tensor_diffusion import FrozenInpainting, TensorOperator
    >>> m = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> m[..., ::3, ::3] = 1
    >>> ones_y, ones_x = torch.ones(1, 1, 7, 8, dtype=m.dtype), torch.ones(1, 1, 8, 7, dtype=m.dtype)
    >>> M = FrozenInpainting(TensorOperator(ones_y, ones_x, None, 1 - m), m, Multigrid(m), 1e-12, 100)
    >>> g = torch.rand(1, 1, 8, 8, dtype=m.dtype, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(M.forward(g), inpaint_diffusion(g, m, tol=1e-12)))      # D = I: homogeneous diffusion
    True
    >>> r = torch.rand_like(g)
    >>> bool(torch.isclose((M.forward(g) * r).sum(), (g * M.adjoint(r)).sum()))
    True
    """

    def __init__(self, op: TensorOperator, m: torch.Tensor, mg: Multigrid, tol: float, max_iter: int):
        self.op, self.m, self.w, self.mg = op, m, 1.0 - m, mg
        self.tol, self.max_iter = tol, max_iter

    def _solve(self, b: torch.Tensor) -> torch.Tensor:
        x, _ = cg(self.op, b, None, tol=self.tol, max_iter=self.max_iter, precond=self.mg.precondition)
        return x.mul_(self.w)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        """``M g``: the inpainting of the values ``g`` on the mask."""
        known = self.m * g
        return self._solve(self.op(known).neg_()).add_(known)

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        """``M^T r`` (zero off the mask)."""
        nu = self._solve(self.w * r)
        return (r - self.op.apply(nu)).mul_(self.m)


# ---------------------------------------------------------------------------
# The lagged-diffusivity loop
# ---------------------------------------------------------------------------

def homogeneous_start(f4: torch.Tensor, m: torch.Tensor, mg: Multigrid, u0: torch.Tensor | None, *,
                      in_place: bool = False) -> torch.Tensor:
    """The iteration's start: ``u0`` with ``f`` on the known pixels, or homogeneous diffusion inpainting (to a
    relative residual of 1e-3, with the hierarchy ``mg`` of ``m``); ``in_place``: formed in ``f4``'s memory.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.multigrid import Multigrid
    >>> from pdeflow.inpaint.operators.tensor_diffusion import homogeneous_start
    >>> f = torch.arange(16.0, dtype=torch.float64).reshape(1, 1, 4, 4)
    >>> m = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    >>> m[..., 0, 0] = 1
    >>> homogeneous_start(f, m, Multigrid(m), None).unique().tolist()
    [0.0]
    """
    if u0 is not None:
        return torch.where(m > 0, f4, u0, out=f4) if in_place else torch.addcmul(u0 * (1.0 - m), m, f4)
    return diffuse_with_hierarchy(f4, m, mg, True, None, 1e-3, in_place=in_place)


def lagged_diffusivity(f4: torch.Tensor, m: torch.Tensor, build: Callable, *, u0: torch.Tensor | None, tol: float,
                       max_iter: int, inner_rtol: float, inner_max_iter: int, scale: bool, what: str,
                       energy: Callable | None = None, in_place: bool = False) -> LaggedResult:
    """The steady state of ``div(D(u) grad u) = 0`` off the mask by lagged diffusivity (see the module doc).

    Parameters
    ----------
    f4 : Tensor (B, C, H, W)
        Float32 or float64, finite on the known pixels (and zero elsewhere or anything finite).
    m : Tensor (Bm, Cm, H, W)
        The binary mask (1 = known) in the dtype of ``f4``, one known pixel per image at least.
    build : callable
        ``u -> TensorOperator``: the operator with ``D`` frozen at ``u`` (its ``w`` the mask's complement).
    u0 : Tensor or None
        Warm start (shape of ``f4``); None: homogeneous diffusion inpainting.
    tol : float
        Nonlinear relative residual to stop at, per image.
    max_iter : int
        Lagged-diffusivity steps at most; a RuntimeWarning when reached before ``tol``.
    inner_rtol, inner_max_iter : float, int
        Each step's CG: relative residual of the correction system and iteration cap.
    scale : bool
        Scale the V-cycle by each pixel's mean diffusivity (``s V s``, ``s = pixel_weight ** -1/2``).
    what : str
        The function's name, for the warning.
    energy : callable, optional
        ``u -> (B,)``: an energy recorded after each step.
    in_place : bool
        Iterate in ``f4``'s memory (``u`` equals ``f`` on the mask, where alone ``f4`` is read after the start).

    Returns
    -------
    LaggedResult
        With ``u`` (B, C, H, W).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import TensorOperator, lagged_diffusivity
    >>> f = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> f[..., :, 4:] = 1.0
    >>> m = torch.zeros_like(f)
    >>> m[..., :, 0] = m[..., :, 7] = 1
    >>> ones_y, ones_x = torch.ones(1, 1, 7, 8, dtype=f.dtype), torch.ones(1, 1, 8, 7, dtype=f.dtype)
    >>> build = lambda u: TensorOperator(ones_y, ones_x, None, 1 - m)     # D = I: homogeneous diffusion
    >>> r = lagged_diffusivity(f, m, build, u0=None, tol=1e-8, max_iter=20, inner_rtol=1e-10,
    ...                        inner_max_iter=100, scale=False, what="example")
    >>> [round(v, 3) for v in r.u[0, 0, 0].tolist()]           # linear between the two known columns
    [0.0, 0.143, 0.286, 0.429, 0.571, 0.714, 0.857, 1.0]
    """
    B = f4.shape[0]
    view = (B,) + (1,) * (f4.dim() - 1)
    mg = Multigrid(m)
    with torch.no_grad():
        u = homogeneous_start(f4, m, mg, u0, in_place=in_place)
        outer = torch.zeros(B, dtype=torch.long, device=f4.device)
        inner = torch.zeros(B, dtype=torch.long, device=f4.device)
        energies = [energy(u)] if energy is not None else None
        tiny = torch.finfo(torch.float64).tiny
        it = 0
        while True:
            op = build(u)
            r = op(u).neg_()
            # ||w A (m f) / diag||, m f and the diagonal formed strip by strip (a subdomain's peak memory)
            bn = op.applied_norms_over_diagonal(lambda a, b: m[..., a:b, :] * f4[..., a:b, :], f4)
            rn = op.norms_over_diagonal(r)
            rel = torch.where(bn > 0, rn / bn.clamp_min(tiny), rn)
            active = rel > tol
            if it >= max_iter or not bool(active.any()):
                break
            if not bool(active.all()):
                r.mul_(active.to(r.dtype).view(view))    # converged images: a zero right-hand side, untouched
            if scale:
                s = op.pixel_weight().rsqrt_() * op.w     # (B, C, H, W) where channels have their own masks

                def precond(v, s=s):
                    return mg.precondition(v * s).mul_(s)
            else:
                precond = mg.precondition
            # CG adds the correction to u as it forms it (a block's peak memory); it is zero on the known pixels
            _, iters = cg(op, r, None, tol=inner_rtol, max_iter=inner_max_iter, precond=precond, overwrite_b=True,
                          add_to=u)
            # the step's operator and vectors go before the next operator is built (a block's peak memory)
            del op, r
            precond = s = None
            outer += active.long()
            inner += iters
            it += 1
            if energies is not None:
                e = energy(u)
                energies.append(torch.where(active, e, torch.full_like(e, math.nan)))
    warn_max_iter(outer, rel, tol, max_iter, what=what)
    return LaggedResult(u=u, outer_iterations=outer, inner_iterations=inner, residual=rel.to(f4.dtype),
                        energy=None if energies is None else torch.stack(energies, 1))


# ---------------------------------------------------------------------------
# The checks both public functions share
# ---------------------------------------------------------------------------

def known_range(f4: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The range ``max - min`` of each image's known values over all channels, shape (B,); 1 where it is 0 (a
    constant image), so that parameters relative to it stay positive.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.tensor_diffusion import known_range
    >>> f = torch.tensor([[[[0.2, 0.9], [0.5, 5.0]]]])
    >>> m = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    >>> known_range(f, m)
    tensor([0.7000])
    """
    k = (m > 0).expand_as(f4)
    hi = torch.where(k, f4, torch.full_like(f4, -math.inf)).flatten(1).amax(1)
    lo = torch.where(k, f4, torch.full_like(f4, math.inf)).flatten(1).amin(1)
    r = hi - lo
    return torch.where(r > 0, r, torch.ones_like(r))
