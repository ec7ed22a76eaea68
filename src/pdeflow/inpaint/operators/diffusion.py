"""Homogeneous diffusion inpainting: the Laplace equation on the unknown pixels.

Given an image ``f`` and a binary mask ``m`` (1 = known pixel, 0 = missing), :func:`inpaint_diffusion` returns
``u`` with ``u = f`` where ``m = 1`` and ``laplacian(u) = 0`` where ``m = 0`` (the 5-point Neumann Laplacian of
:func:`pdeflow.ops.laplacian`, reflecting boundary).

The linear system. With ``w = 1 - m`` and ``u = m f + w x``, the unknowns ``x`` (zero on the mask) solve ``A x = b``,

    A x = w * (-laplacian(w * x)) + m * x,     b = w * laplacian(m * f),

symmetric positive definite once each image has one known pixel (its rows on the mask are the identity). It stops
at the relative residual ``||b - A x|| / ||b|| <= tol`` per image, the reference C codes' rule (CG, relative
residual 1e-6), independent of the initial guess.

Solvers (``solver``):

* ``'mg'`` (default): conjugate gradients preconditioned by one symmetric geometric multigrid V-cycle,
  :class:`pdeflow.multigrid.Multigrid`: Galerkin coarse grids (bilinear interpolation restricted to the unknowns,
  so masks of any sparsity coarsen faithfully), red-black and four-colour Gauss-Seidel in place on the even/odd
  sub-grids, a dense pseudo-inverse on the coarsest grid, the stopping rule confirmed in float64. Iteration counts
  stay nearly flat in image size and mask density; memory is a small multiple of the image's.
* ``'cg'``: plain conjugate gradients, the reference C codes' solver.

Both run batched on ``f``'s device and dtype (float16 and bfloat16 computed in float32, returned in their dtype).
Plain CG (:func:`pdeflow.linalg.cg`) on a single CPU image of up to
:data:`~pdeflow.inpaint.operators.diffusion_system.MATRIX_PATH_MAX_PIXELS` runs :func:`pdeflow.linalg.cg_matrix` on
the Laplacian's sparse matrix instead (same iterates, faster on one thread, where a small tensor operation's
dispatch costs more than its arithmetic; timing: results page "Speed").

Volumes ``(B, C, D, H, W)`` (``ndim=3`` or a 3-element ``spacing``, as in :mod:`pdeflow.ops`) use the 7-point
Laplacian (anisotropic with ``spacing``) and :class:`pdeflow.multigrid.Multigrid3d`: the same system and rules.

Continuous masks ``c`` in [0, 1] (``continuous=True``) solve ``c (u - f) = (1 - c) laplacian(u)``: where ``c < 1``
the operator above plus the diagonal ``c / (1 - c)`` (still SPD, same solvers). :func:`inpaint_diffusion` is
differentiable in ``f`` and the mask by the adjoint method (one extra solve, same operator and hierarchy; see its
Notes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import ops
from ...errors import UserInputError
from ...threads import auto_threads
from ..checks import check_mask, check_start, known_finite
from .diffusion_system import (
    DiffusionSystem,
    binary_hierarchy,
    default_max_iter,
    diffuse_unchecked,
    diffuse_with_hierarchy,
    solve_checked,
)

__all__ = ["inpaint_diffusion", "DiffuseResult", "inpainting_error", "SOLVERS", "solve_unchecked", "warm_start",
           "DiffusionMap"]

#: The linear solvers of :func:`inpaint_diffusion`.
SOLVERS = ("mg", "cg")
METHODS = SOLVERS  # deprecated name


@dataclass
class DiffuseResult:
    """Output of :func:`inpaint_diffusion` with ``full_output=True``.

    Attributes
    ----------
    u : Tensor
        The inpainted image, shape of ``f``.
    iterations : Tensor of int64, shape (B,)
        CG iterations per image (``B = 1`` for unbatched input).
    residual : Tensor, shape (B,)
        Final relative residual ``||b - A x|| / ||b||`` per image, recomputed from the returned solution, in
        float64 for multigrid (continuous masks: of the correction system, :func:`inpaint_diffusion` Notes).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> f = torch.linspace(0, 1, 64, dtype=torch.float64).reshape(8, 8)
    >>> mask = torch.zeros(8, 8)
    >>> mask[::3, ::3] = 1
    >>> r = inpaint_diffusion(f, mask, tol=1e-10, full_output=True)
    >>> type(r).__name__, r.u.shape, r.iterations.shape, bool(r.residual.max() <= 1e-10)
    ('DiffuseResult', torch.Size([8, 8]), torch.Size([1]), True)
    """

    u: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor


def _masked_array(f, mask, who: str):
    """``(f, mask)`` with a NumPy masked array ``f`` unwrapped: its masked entries are the missing pixels
    when no ``mask`` is given. Refuses a missing ``mask`` for anything else, and a masked array with masked
    entries together with a ``mask`` (two masks that could disagree)."""
    if isinstance(f, np.ma.MaskedArray):
        missing = np.ma.getmaskarray(f)
        data = np.ma.getdata(f)
        if mask is None:
            return data, torch.from_numpy(~missing)
        if missing.any():
            raise UserInputError(
                f"{who}: f is a NumPy masked array with masked entries and a mask is given as well; pass one: "
                "the masked array alone (its masked entries are the missing pixels) or its data "
                "(np.ma.getdata(f)) with mask (1 = known, 0 = missing)")
        return data, mask
    if mask is None:
        hint = ""
        if ((isinstance(f, torch.Tensor) and f.is_floating_point() and bool(torch.isnan(f).any()))
                or (isinstance(f, np.ndarray) and f.dtype.kind == "f" and bool(np.isnan(f).any()))):
            hint = ("; f has NaN values: NaN does not mark pixels as missing by itself, pass e.g. "
                    "mask=~torch.isnan(f)")
        raise UserInputError(f"{who}: mask is required (1 = known pixel, 0 = missing), unless f is a NumPy "
                             f"masked array, whose masked entries are then the missing pixels{hint}")
    return f, mask


def _diffuse(f: torch.Tensor, mask, nd: int, h, tol, max_iter, x0, solver, full_output, continuous):
    """:func:`inpaint_diffusion` on a checked ``f`` (shape, dtype, size): the checks of the other arguments and the
    solve, shared by images (``nd = 2``, ``h`` None), volumes (``nd = 3``) and images with a non-unit
    spacing ``h`` (solved as volumes of depth 1)."""
    who = "inpaint_diffusion"
    if not isinstance(continuous, bool):
        raise UserInputError(f"{who}: continuous must be True or False, got {continuous!r}")
    fb = ops.promote_half(ops.as_batch(f, f"{who}: f", nd)[0])   # returned in the dtype of f
    if nd == 2 and h is not None:
        c = check_mask(mask, fb, who, continuous=continuous)[:, :, None]
        fb, spacing3 = fb[:, :, None], (1.0,) + h
    else:
        c = check_mask(mask, fb, who, continuous=continuous, ndim=nd)
        spacing3 = None if nd == 2 else ((1.0, 1.0, 1.0) if h is None else h)
    fb = known_finite(fb, c, who)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < 1):
        raise UserInputError(f"{who}: tol must be a number in (0, 1), got {tol!r}")
    if solver not in SOLVERS:
        raise UserInputError(f"{who}: solver must be one of {SOLVERS}, got {solver!r}")
    if max_iter is None:
        max_iter = default_max_iter(solver, *fb.shape[2:])
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise UserInputError(f"{who}: max_iter must be a positive int, got {max_iter!r}")
    x0 = check_start(x0, f, fb, who)
    binary = (not continuous) or mask.dtype == torch.bool or bool(((c == 0) | (c == 1)).all())
    u, iters, res = solve_checked(fb, c, binary, tol, max_iter, x0, solver, spacing3)
    u = u.reshape(f.shape).to(f.dtype)
    if full_output:
        return DiffuseResult(u=u, iterations=iters, residual=res)
    return u


@ops.follows_layout_rule("f", also=("mask",))
@auto_threads
def inpaint_diffusion(f: torch.Tensor, mask: torch.Tensor | None = None, *, tol: float = 1e-6,
                      max_iter: int | None = None, x0: torch.Tensor | None = None, solver: str = "mg",
                      full_output: bool = False, continuous: bool = False, ndim: int | None = None, spacing=None):
    """Homogeneous diffusion inpainting of ``f`` from the pixels where ``mask`` is 1.

    Solves ``u = f`` on the mask and ``laplacian(u) = 0`` elsewhere (5-point Laplacian, Neumann boundary), per
    image and channel; for a continuous mask ``c`` (confidence in [0, 1], ``continuous=True``)
    ``c (u - f) - (1 - c) laplacian(u) = 0`` at every pixel. Differentiable in ``f`` and the mask (see Notes).

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point (float16 and bfloat16 computed in float32, returned in their dtype). Only
        the values on the mask (``c > 0``) are read and must be finite; missing pixels may hold anything, NaN
        included. A NumPy array is taken as a tensor; a NumPy masked array without ``mask`` is inpainted at
        its masked entries.
    mask : Tensor, optional
        Binary (bool or 0/1), 1 = known, 0 = missing; with ``continuous=True`` any values in [0, 1]. Shape
        (H, W), (1, H, W), (B, 1, H, W) or anything broadcasting to ``f`` along batch and channels. Each image
        needs one known pixel (positive value). Required, except for a NumPy masked array ``f``, whose mask is
        then ``~numpy.ma.getmaskarray(f)``; a masked array with masked entries and a ``mask`` is refused (they
        could disagree). NaN alone does not mark a pixel missing: ``mask=~torch.isnan(f)`` does.
    tol : float, optional
        Relative residual ``||b - A x|| / ||b||`` per image (module doc) at which the solver stops, also for
        the backward pass's adjoint solve. Default 1e-6.
    max_iter : int, optional
        Iteration limit (default: 500 for 'mg', ``20 (H + W)`` for 'cg'); a warning if reached first.
    x0 : Tensor, optional
        Initial guess for ``u`` (shape of ``f``, e.g. the solution for a nearby mask); only its values off the
        mask are read. Not differentiated through (the solution does not depend on it).
    solver : {'mg', 'cg'}, optional
        The linear solver: multigrid-preconditioned CG (default) or plain CG.
    full_output : bool, optional
        Return a :class:`DiffuseResult` with iteration counts and residuals.
    continuous : bool, optional
        Accept a mask with values in [0, 1] (default False: a non-binary mask is an error).
    ndim : {2, 3}, optional
        Number of spatial axes, as in :mod:`pdeflow.ops`: 2 (default) for images, 3 for volumes ``(D, H, W)``,
        ``(C, D, H, W)`` or ``(B, C, D, H, W)`` (the mask ``(D, H, W)``, ``(1, D, H, W)``, ``(B, 1, D, H, W)``
        or broadcasting along batch and channels). Only ``ndim=3`` or a 3-element ``spacing`` makes a volume.
    spacing : float or sequence of float, optional
        Grid spacing ``(dy, dx)`` or ``(dz, dy, dx)`` (a number: every axis; default unit; length 3 implies
        ``ndim=3``): the Laplacian of :func:`pdeflow.ops.laplacian` with it, each axis's second difference over
        ``h**2`` (the anisotropic 7-point stencil of a CT or MR volume). Unit spacing on images is the 2-D
        solver, bit for bit; a non-unit 2-D spacing goes to the volume solver as a volume of depth 1.

    Returns
    -------
    u : Tensor, shape and dtype of ``f``
        Equal to ``f`` where the mask is 1 (exactly); a tensor also for a NumPy (masked) array ``f``. A
        :class:`DiffuseResult` with ``full_output=True``.

    Notes
    -----
    **Continuous masks.** With ``C = diag(c)`` and ``L`` the Neumann Laplacian, ``u`` solves ``M(c) u = C f``,
    ``M(c) = C - (I - C) L``, not symmetric unless ``c`` is binary. Pixels with ``c = 1`` are fixed (``u = f``);
    dividing the other rows by ``1 - c`` gives the SPD ``(D - L) u = D f``, ``D = diag(c / (1 - c))``: the binary
    operator plus a diagonal, solved by the same multigrid-preconditioned CG (its Galerkin hierarchy includes the
    diagonal). The unknowns are a correction of ``f`` on the pixels with ``c > 0``, so the large diagonal entries
    (``c`` near 1) drop out of the right-hand side and ``tol`` measures the Laplace rows as for a binary mask.
    An iteration costs a binary one's plus a few elementwise operations; the count is about the binary one and
    grows as ``c`` approaches 1 (counts: results page "Sparse inpainting"). A mask that happens to be binary
    takes the binary path whatever ``continuous`` says (bit for bit the binary solver's results).

    **Backward (adjoint method).** When ``f`` or ``mask`` requires grad (grad mode on), the solve is one autograd
    node; otherwise nothing extra is recorded or computed. Given ``g = dl/du``, the backward solves
    ``M(c)^T lam = g`` and returns

        dl/df = c * lam,     dl/dc = lam * (f - u - laplacian(u)),

    the sensitivity of Hoeltgen, Setzer and Weickert (2013). ``M^T lam = g`` costs one extra solve, reusing the
    forward's SPD operator ``A`` and hierarchy: ``nu = (1 - c) lam`` on the unknowns solves
    ``A nu = (1 - c > 0) g``, and ``lam = g + laplacian(nu)`` where ``c = 1``. For a binary mask ``m``: where
    ``m = 0``, ``dl/df = 0`` and ``dl/dc = nu (f - u)``; where ``m = 1``, ``dl/df = g + laplacian(nu)`` and
    ``dl/dc = -(g + laplacian(nu)) laplacian(u)``. At a binary mask the mask gradient is the derivative of the
    continuous problem ``M(c) u = C f`` (one-sided inside [0, 1]). A broadcast mask's gradients are summed over
    the broadcast axes. First derivatives only (no double backward), exact up to the two solves' ``tol``. For a
    straight-through estimator keep the mask exactly binary, e.g. ``hard + (soft - soft.detach())``.

    **Volumes.** With ``ndim=3`` the Laplacian is the 7-point stencil (with ``spacing``:
    ``sum_k (u[i + e_k] - 2 u[i] + u[i - e_k]) / h_k**2``, Neumann), and ``solver='mg'`` is
    :class:`pdeflow.multigrid.Multigrid3d`: CG preconditioned by a 3-D V-cycle (every axis halved, Galerkin
    27-point coarse operators, red-black Gauss-Seidel on the finest grid, eight-colour on the coarse ones). The
    rest (stopping rule per volume, continuous masks, adjoint backward, ``x0``) is as for images.

    References
    ----------
    .. [1] L. Hoeltgen, S. Setzer, J. Weickert, "An optimal control approach to find sparse data for Laplace
       interpolation", Energy Minimization Methods in Computer Vision and Pattern Recognition (EMMCVPR), 2013.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> f = torch.tensor([[0.0, 0.0, 0.0, 4.0]] * 3, dtype=torch.float64)
    >>> mask = torch.zeros(3, 4)
    >>> mask[:, 0] = mask[:, 3] = 1                 # known: the first and the last column
    >>> inpaint_diffusion(f, mask, tol=1e-12)                  # linear in between (Neumann above and below)
    tensor([[0.0000, 1.3333, 2.6667, 4.0000],
            [0.0000, 1.3333, 2.6667, 4.0000],
            [0.0000, 1.3333, 2.6667, 4.0000]], dtype=torch.float64)

    A volume with known first and last slices (2 mm apart along D, 1 mm rows and columns) is filled linearly:

    >>> v = torch.zeros(4, 3, 3, dtype=torch.float64)
    >>> v[-1] = 3.0
    >>> m = torch.zeros(4, 3, 3)
    >>> m[0] = m[-1] = 1
    >>> inpaint_diffusion(v, m, spacing=(2.0, 1.0, 1.0), tol=1e-12)[:, 1, 1].round(decimals=8)
    tensor([0., 1., 2., 3.], dtype=torch.float64)

    A NumPy masked array is inpainted at its masked entries (the result is a tensor):

    >>> import numpy as np
    >>> a = np.ma.masked_invalid([[0.0, np.nan, np.nan, 3.0]] * 2)
    >>> inpaint_diffusion(a, tol=1e-12).round(decimals=8)
    tensor([[0., 1., 2., 3.],
            [0., 1., 2., 3.]], dtype=torch.float64)
    """
    who = "inpaint_diffusion"
    f, mask = _masked_array(f, mask, who)
    f = ops.check_tensor(f, f"{who}: f")      # a NumPy array or a list: the tensor, whose shape is handed back
    nd, h = ops.spatial_axes(ndim, spacing, who)
    # finite=False: the values at missing pixels are never read (known_finite checks the known ones)
    ops.check_image(f, f"{who}: f", ndim=nd, finite=False, min_size=2)
    return _diffuse(f, mask, nd, h, tol, max_iter, x0, solver, full_output, continuous)


@ops.follows_layout_rule("f", also=("u",))
def inpainting_error(f: torch.Tensor, u: torch.Tensor, *, metric: str = "mse") -> torch.Tensor:
    """Inpainting error per image: ``'mse'`` (mean squared) or ``'mae'`` (mean absolute).

    Shapes as in :mod:`pdeflow.metrics`: ``(B,)`` for 4-D input, a 0-d tensor otherwise.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpainting_error
    >>> f = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    >>> inpainting_error(f, torch.full((2, 2), 0.5)), inpainting_error(f, torch.zeros(2, 2), metric="mae")
    (tensor(0.2500), tensor(0.5000))
    """
    from ... import metrics

    f = ops.check_image(f, "inpainting_error: f")
    u = ops.check_image(u, "inpainting_error: u")
    if metric == "mse":
        return metrics.mse(f, u)
    if metric == "mae":
        return metrics.mae(f, u)
    raise UserInputError(f"inpainting_error: metric must be 'mse' or 'mae', got {metric!r}")


# ---------------------------------------------------------------------------
# What the table of operators asks of homogeneous diffusion (operators/__init__.py)
# ---------------------------------------------------------------------------

#: Densification stages between rebuilds of :func:`warm_start`'s hierarchy: a set-up costs a warm-started solve,
#: more than the one or two extra CG iterations an older, smaller mask's hierarchy costs.
REBUILD = 4


def solve_unchecked(f4: torch.Tensor, m: torch.Tensor, *, u0: torch.Tensor | None = None,
                    tol: float = 1e-3) -> torch.Tensor:
    """Homogeneous diffusion inpainting, unchecked (multigrid-preconditioned CG): ``f4`` (B, C, H, W), ``m``
    (B, 1, H, W) binary in its dtype with a known pixel per image, ``u0`` a warm start or None.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.diffusion import solve_unchecked
    >>> f = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    >>> m = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> m[..., 3, 3] = 1
    >>> bool(torch.allclose(solve_unchecked(f, m, tol=1e-10), f))
    True
    """
    H, W = f4.shape[-2:]
    return diffuse_unchecked(f4, m, True, tol, default_max_iter("mg", H, W), u0, "mg")[0]


def warm_start():
    """A solve for a sequence of growing masks (densification's stages): ``step(f4, m, u, tol, stage) -> u``,
    warm-started from the previous result ``u`` and preconditioned by a multigrid hierarchy rebuilt every
    :data:`REBUILD` stages (``stage`` counts from 0).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.diffusion import warm_start
    >>> f = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    >>> m = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> m[..., 3, 3] = 1
    >>> step = warm_start()
    >>> u = step(f, m, None, 1e-8, 0)
    >>> m[..., 6, 6] = 1
    >>> bool(torch.allclose(step(f, m, u, 1e-8, 1), f))
    True
    """
    state = {"mg": None}

    def step(f4, m, u, tol, stage):
        fresh = state["mg"] is None or stage % REBUILD == 0
        if fresh:
            state["mg"] = None                  # the old hierarchy freed before the new one is built
            state["mg"] = binary_hierarchy(m)
        return diffuse_with_hierarchy(f4, m, state["mg"], fresh, u, float(tol))

    return step


class DiffusionMap:
    """The linear map ``g -> M g`` of stored values ``g`` to their homogeneous diffusion inpainting on one binary
    mask ``m`` (Bm, 1, H, W), and its adjoint, on one multigrid hierarchy (tonal optimisation's map):

        M g = m g + x,   A x = w L (m g);      M^T r = m (r + L nu),   A nu = w r,

    with ``A`` the masked Laplacian of :class:`~pdeflow.inpaint.operators.diffusion_system.DiffusionSystem` and
    ``w = 1 - m``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.diffusion import DiffusionMap
    >>> m = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> m[..., ::3, ::3] = 1
    >>> M = DiffusionMap(m, (1, 1, 8, 8), 1e-12)
    >>> g, r = torch.rand(2, 1, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.isclose((M.forward(g) * r).sum(), (g * M.adjoint(r)).sum()))   # <M g, r> = <g, M^T r>
    True
    """

    def __init__(self, m: torch.Tensor, shape, solve_tol: float):
        self.sys = DiffusionSystem(m, "mg", True)
        self.m, self.shape, self.tol = m, shape, solve_tol
        self.max_iter = default_max_iter("mg", *shape[-2:])

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        b, _ = self.sys.rhs(g)
        x, _, _ = self.sys.solve(b.expand(self.shape).contiguous(), None, self.tol, self.max_iter)
        return x.addcmul_(self.m, g)

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        nu, _, _ = self.sys.solve((self.sys.w * r).expand(self.shape).contiguous(), None, self.tol, self.max_iter)
        return (r + self.sys.lap(nu)).mul_(self.m)
