"""Edge-enhancing diffusion (EED) inpainting: anisotropic diffusion along the edges of the presmoothed image.

The steady state of ``div(D grad u) = 0`` on the unknown pixels, ``u = f`` on the known ones, with Weickert's
diffusion tensor

    D = g(|grad u_sigma|^2) v1 v1^T + v2 v2^T = I - (1 - g) v1 v1^T,

``v1`` parallel to the gradient of the Gaussian-presmoothed ``u_sigma = G_sigma * u`` (central differences),
``v2`` orthogonal to it, and the Charbonnier diffusivity ``g(s^2) = 1 / sqrt(1 + s^2 / lambda^2)`` of R-EED
(Schmaltz et al. 2014): full diffusion along the edges, diffusion across them damped where the smoothed gradient
exceeds the contrast ``lambda``. It is written ``D = I - h(s^2) J`` with ``J = grad u_sigma grad u_sigma^T``,
``s^2 = trace J`` and ``h = (1 - g) / s^2``, which is smooth at ``s = 0`` (``h -> 1 / (2 lambda^2)``).

Colour images share one tensor: ``J`` is the mean of the channels' outer products (the joint structure, without
an integration scale) and ``s^2`` its trace, so a grey image repeated in every channel is inpainted as the grey
one, with the same contrast. Where the channels' gradients are parallel (as at an edge) this is EED
with the joint gradient magnitude; elsewhere the damping spreads over both eigenvectors of ``J`` (eigenvalues
``1 - (1 - g) mu_k / s^2``, all at least ``g``), so ``D`` stays positive definite and smooth in ``u``.

The contrast is relative: ``lambda = contrast * (max - min)`` of the image's known values, so the result follows
an affine change of the intensities (``inpaint_eed(a f + c) = a inpaint_eed(f) + c``) and the default fits images
in any range. The defaults of ``contrast`` and ``sigma`` are those of the best mean PSNR on selection photos
(never the held-out ones) at 5 % masks densified for EED.

The discretisation and the solver are those of :mod:`~pdeflow.inpaint.operators.tensor_diffusion` (positive
definite on the unknowns, commutes with rotations by 90 degrees and flips; lagged diffusivity, each step a
multigrid-preconditioned CG solve from the previous ``u``, started from homogeneous diffusion inpainting).

Not differentiable: EED minimises no energy (``D`` depends on ``u_sigma``), so a derivative would need the
adjoint of the whole fixed-point map, a non-symmetric solve with the derivative of ``D``; :func:`inpaint_eed`
refuses an ``f`` that requires grad (pass ``f.detach()``).
"""
from __future__ import annotations

import torch

from ... import ops
from ...errors import UserInputError
from ...filters import gaussian_blur
from ...multigrid import Multigrid
from ..checks import check_call, check_positive, check_start
from .tensor_diffusion import (
    FrozenInpainting,
    TensorOperator,
    central_differences,
    edge_sum,
    known_range,
    lagged_diffusivity,
    strip_rows,
)

__all__ = ["inpaint_eed", "solve_unchecked", "eed_tensor", "linearised", "CONTRAST", "SIGMA"]

# chosen on 256 px selection crops (never the held-out photos), confirmed on other selection crops (results page
# "Inpainting operators")
#: Default contrast, relative to the range of the known values.
CONTRAST = 0.01
#: Default presmoothing (pixels).
SIGMA = 1.0
#: Relative residual of each lagged-diffusivity step's CG solve, and its iteration cap.
INNER_RTOL = 0.3
INNER_MAX_ITER = 50


def eed_tensor(u: torch.Tensor, lam2: torch.Tensor, sigma: float, w: torch.Tensor | None = None, *,
               known: torch.Tensor | None = None) -> TensorOperator:
    """The EED operator frozen at ``u`` (B, C, H, W): ``D = I - h J`` (see the module doc) for ``lambda**2``
    ``lam2`` (B,) and presmoothing ``sigma``, restricted to the unknowns ``w`` (or given the binary mask
    ``known``, ``1 - w``, as :class:`TensorOperator` takes them).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.eed import eed_tensor
    >>> u = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    >>> op = eed_tensor(u, torch.ones(1, dtype=torch.float64), 1.0, torch.ones_like(u))
    >>> bool((op.a_y == 1).all())     # no gradient: D = I
    True
    """
    cy, cx = central_differences(gaussian_blur(u, sigma))
    if u.shape[1] == 1:     # one channel: the products are the structure tensor, formed over the differences
        j12 = cy * cx
        j11, j22 = cy.square_(), cx.square_()
    else:
        j11 = (cy * cy).mean(1, keepdim=True)
        j12 = (cy * cx).mean(1, keepdim=True)
        j22 = (cx * cx).mean(1, keepdim=True)
    del cy, cx
    lam2 = lam2.view(-1, 1, 1, 1)
    # D = I - h J formed over J in place, strip by strip (h is a strip's), then each entry's edge weights formed
    # and the entry freed before the next (TensorOperator.from_tensor, with four arrays of the image's size at
    # most: a large block's peak memory)
    rows = strip_rows(j11)
    for r0 in range(0, j11.shape[-2], rows):
        d00, d01, d11 = (j[..., r0:r0 + rows, :] for j in (j11, j12, j22))
        r = (d00 + d11).div_(lam2).add_(1).sqrt_()
        h = (r + 1).mul_(r).mul_(lam2).reciprocal_()       # (1 - g) / s^2 = 1 / (lambda^2 r (r + 1)), r = 1 / g
        d00.mul_(h).neg_().add_(1)
        d01.mul_(h).neg_()
        d11.mul_(h).neg_().add_(1)
    a_y = edge_sum(j11, -2).mul_(0.5)
    del j11
    a_x = edge_sum(j22, -1).mul_(0.5)
    del j22
    return TensorOperator(a_y, a_x, j12, w, known=known, overwrite_d01=True)


def linearised(g4: torch.Tensor, m: torch.Tensor, u: torch.Tensor, *, solve_tol: float,
               hierarchy: Multigrid | None = None) -> FrozenInpainting:
    """EED inpainting of stored values near ``g4`` (B, C, H, W) on the mask ``m`` (Bm, 1, H, W) as a linear map,
    its tensor frozen at ``u`` (their inpainting): the default parameters, the contrast relative to the range of
    ``g4`` on the mask as in :func:`solve_unchecked`. ``hierarchy``: the multigrid of ``m`` from an earlier call.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.eed import linearised, solve_unchecked
    >>> g = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> m = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    >>> m[..., 1::4, 1::4] = 1
    >>> u = solve_unchecked(g, m, tol=1e-10)
    >>> bool(torch.allclose(linearised(g, m, u, solve_tol=1e-12).forward(g), u, atol=1e-8))   # exact at u
    True
    """
    lam2 = (CONTRAST * known_range(g4, m)).square()
    op = eed_tensor(u, lam2, SIGMA, 1.0 - m)
    return FrozenInpainting(op, m, Multigrid(m) if hierarchy is None else hierarchy, solve_tol, 10 * INNER_MAX_ITER)


def _solve(f4, m, contrast, sigma, tol, max_iter, u0=None, in_place=False):
    lam2 = (contrast * known_range(f4, m)).square()
    # the operator masks with m itself: no array for w = 1 - m (a large block's peak memory)
    return lagged_diffusivity(f4, m, lambda u: eed_tensor(u, lam2, sigma, known=m), u0=u0, tol=tol, max_iter=max_iter,
                              inner_rtol=INNER_RTOL, inner_max_iter=INNER_MAX_ITER, scale=False, what="inpaint_eed",
                              in_place=in_place)


def solve_unchecked(f4: torch.Tensor, m: torch.Tensor, *, u0: torch.Tensor | None = None,
                    tol: float = 1e-3, max_iter: int = 100) -> torch.Tensor:
    """EED inpainting with the default parameters, unchecked (the mask methods' solve).

    ``f4`` (B, C, H, W) float32 or float64, ``m`` (B, 1, H, W) binary in its dtype with a known pixel per image,
    ``u0`` a warm start of ``f4``'s shape or None (homogeneous diffusion), ``max_iter`` the lagged-diffusivity steps
    at most; returns ``u`` (B, C, H, W).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.eed import solve_unchecked
    >>> f = torch.ones(1, 1, 8, 8)
    >>> m = torch.zeros(1, 1, 8, 8)
    >>> m[..., 2, 3] = 1
    >>> bool(torch.allclose(solve_unchecked(f, m), f))
    True
    """
    return _solve(f4, m, CONTRAST, SIGMA, tol, max_iter, u0=u0).u


@ops.follows_layout_rule("f", also=("mask",))
def inpaint_eed(f: torch.Tensor, mask: torch.Tensor, *, contrast: float = CONTRAST, sigma: float = SIGMA,
                tol: float = 1e-3, max_iter: int = 100, x0: torch.Tensor | None = None, overwrite_f: bool = False,
                full_output: bool = False):
    """Edge-enhancing diffusion inpainting of ``f`` from the pixels where ``mask`` is 1.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), float32 or float64 (float16 and bfloat16 are computed in float32 and returned in their
        dtype), at least 2 x 2 pixels; a NumPy array is taken as a tensor. Only the values on the mask are
        used (the others may be NaN). Must not require grad (see the module doc).
    mask : Tensor
        Binary (bool or 0/1), 1 = known pixel: shape (H, W), (1, H, W), (B, 1, H, W) or anything that
        broadcasts to ``f`` along the batch and channel axes (channels may have their own masks); at least one
        known pixel per image.
    contrast : float, optional
        The Charbonnier contrast ``lambda`` relative to the range (max - min) of the image's known values; the
        supported range is 0.005 to 0.2 (smaller contrasts may stall before ``tol``).
    sigma : float, optional
        Presmoothing of ``u`` before its gradient, pixels (0: none); supported 0 to 3.
    tol : float, optional
        Nonlinear relative residual (diagonally scaled ``||w A(u) u|| / ||w A(u) (m f)||``, see
        :mod:`~pdeflow.inpaint.operators.tensor_diffusion`) at which the iteration stops, per image.
    max_iter : int, optional
        Lagged-diffusivity steps at most (each one a linear solve); a RuntimeWarning when reached first.
    x0 : Tensor, optional
        The start (shape of ``f``; its values off the mask), e.g. an earlier inpainting; default: diffusion's.
    overwrite_f : bool, optional
        Whether ``f`` may be overwritten: the iteration then runs in its memory (one array of its size less) and
        the result may share it. ``x0`` may be ``f`` itself then.
    full_output : bool, optional
        Return a :class:`~pdeflow.inpaint.operators.tensor_diffusion.LaggedResult` with the outer and inner
        iteration counts and the residual.

    Returns
    -------
    u : Tensor, shape and dtype of ``f``
        Equal to ``f`` on the mask. A ``LaggedResult`` with ``full_output=True``.

    References
    ----------
    .. [1] I. Galic, J. Weickert, M. Welk, A. Bruhn, A. Belyaev, H.-P. Seidel, "Image compression with
       anisotropic diffusion", Journal of Mathematical Imaging and Vision, 2008.
    .. [2] C. Schmaltz, P. Peter, M. Mainberger, F. Ebel, J. Weickert, A. Bruhn, "Understanding, optimising,
       and extending data compression with anisotropic diffusion", International Journal of Computer Vision,
       2014.
    .. [3] C. R. Vogel, M. E. Oman, "Iterative methods for total variation denoising", SIAM Journal on
       Scientific Computing, 1996 (lagged diffusivity).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> from pdeflow.inpaint.operators.eed import inpaint_eed
    >>> f = torch.zeros(16, 16, dtype=torch.float64)
    >>> f[:, 8:] = 1.0                                   # a vertical edge
    >>> mask = torch.zeros(16, 16)
    >>> mask[::5, 0] = mask[::5, 7] = mask[::5, 8] = mask[::5, 15] = 1     # on every fifth row
    >>> err = lambda u: float((u - f).abs().max())
    >>> err(inpaint_eed(f, mask, tol=1e-6)) < 0.15, err(inpaint_diffusion(f, mask)) > 0.35    # EED keeps the edge
    (True, True)
    """
    who = "inpaint_eed"
    f = ops.check_tensor(f, f"{who}: f")
    f4, m, nd = check_call(f, mask, who, tol, max_iter)
    contrast = check_positive(contrast, "contrast", who)
    sigma = check_positive(sigma, "sigma", who, zero=True)
    x0 = check_start(x0, f, f4, who)
    if torch.is_grad_enabled() and (f4.requires_grad or m.requires_grad):
        raise UserInputError(f"{who}: f (or mask) requires grad, but EED inpainting is not differentiable (it "
                             "minimises no energy); pass f.detach(), or use inpaint_tv or inpaint_diffusion for "
                             "gradients")
    if not isinstance(overwrite_f, bool):
        raise UserInputError(f"{who}: overwrite_f must be True or False, got {overwrite_f!r}")
    res = _solve(f4, m, contrast, sigma, float(tol), int(max_iter), u0=x0, in_place=overwrite_f)
    u = ops.unbatch(res.u, nd).to(f.dtype)
    if full_output:
        res.u = u
        return res
    return u

