"""Gaussian-weighted Shepard interpolation (normalised convolution): each missing pixel the Gaussian-weighted mean
of the known pixels around it,

    u = (G_sigma * (m f)) / (G_sigma * m)   where m = 0,     u = f   where m = 1,

(Shepard 1968, with Gaussian weights; Knutsson and Westin 1993's normalised convolution). A pixel farther than the
Gaussian's reach from every known pixel takes the same formula at twice the scale, and so on until a known pixel is
in reach, so every mask with a known pixel gives a finite result. No equation is solved: the result is exact, one
pass of separable filters, and linear in the stored values for a fixed mask (the codec's tonal optimisation uses
that, :func:`linear_map`). It is the fastest operator and the smoothest away from the data, and keeps no edges.

References
----------
.. [1] D. Shepard, "A two-dimensional interpolation function for irregularly-spaced data", ACM National
   Conference, 1968.
.. [2] H. Knutsson, C.-F. Westin, "Normalized and differential convolution", IEEE Conference on Computer Vision
   and Pattern Recognition (CVPR), 1993.
"""
from __future__ import annotations

import math
from numbers import Real

import torch

from ... import ops
from ...errors import UserInputError
from ...filters import gaussian_blur
from ...threads import auto_threads
from ..checks import check_mask, known_finite

__all__ = ["inpaint_shepard", "solve_unchecked", "linear_map", "SIGMA"]

#: Default Gaussian scale in pixels: the smallest, so that the scale follows the known pixels' spacing (it doubles
#: where none is in reach); chosen over 2 on training crops of the built-in images with masks densified for it
#: (results page "Inpainting operators", "Shepard interpolation").
SIGMA = 1.0
#: Weight sum below which a pixel counts as out of the Gaussian's reach (the next, doubled scale is used there).
REACH = 1e-6


def _weights(m: torch.Tensor, sigma: float) -> list[tuple[torch.Tensor, float]]:
    """The scales that cover the image: ``[(choose, s), ...]``, ``choose`` (Bm, 1, H, W) 1 where scale ``s`` is
    the first whose weight sum ``G_s * m`` reaches :data:`REACH` (the known pixels' own scale is the first)."""
    H, W = m.shape[-2:]
    out, left, s = [], torch.ones_like(m), float(sigma)
    while True:
        den = gaussian_blur(m, s)
        ok = (den > REACH).to(m.dtype) * left
        out.append((ok, s))
        left = left - ok
        if not bool(left.any()) or s > 4 * max(H, W):
            return out
        s *= 2


def _apply(g: torch.Tensor, m: torch.Tensor, scales) -> torch.Tensor:
    """``m g`` plus, on the missing pixels, the normalised convolution of ``m g`` at each pixel's scale."""
    mg = m * g
    fill = torch.zeros_like(g)
    for choose, s in scales:
        den = gaussian_blur(m, s).clamp_min(REACH * REACH)
        fill = fill + choose * gaussian_blur(mg, s) / den
    return mg + (1 - m) * fill


def solve_unchecked(f4: torch.Tensor, m: torch.Tensor, *, u0: torch.Tensor | None = None, tol: float = 1e-3,
                    sigma: float = SIGMA) -> torch.Tensor:
    """Shepard inpainting, unchecked (the mask methods' solve): ``f4`` (B, C, H, W) float32 or float64, ``m``
    (B, 1, H, W) binary in its dtype with a known pixel per image. ``u0`` and ``tol`` are accepted as every
    operator's solve takes them and not used: the result is exact.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.shepard import solve_unchecked
    >>> f = torch.full((1, 1, 8, 8), 0.25)
    >>> m = torch.zeros(1, 1, 8, 8)
    >>> m[..., 2, 3] = 1
    >>> bool(torch.allclose(solve_unchecked(f, m), f))
    True
    """
    return _apply(f4, m, _weights(m, float(sigma)))


class _ShepardMap:
    """``g -> u`` of one mask (linear) and its adjoint, the latter by autograd of the former."""

    def __init__(self, m: torch.Tensor, sigma: float):
        self.m, self.scales = m, _weights(m, sigma)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        return _apply(g, self.m, self.scales)

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            g = torch.zeros_like(r, requires_grad=True)
            (grad,) = torch.autograd.grad(_apply(g, self.m, self.scales), g, r)
        return grad


def linear_map(m: torch.Tensor, shape, solve_tol: float, sigma: float = SIGMA) -> _ShepardMap:
    """The linear map ``g -> u`` of stored values ``g`` (shape ``shape``) to their Shepard inpainting on the mask
    ``m`` (Bm, 1, H, W), with ``forward`` and ``adjoint`` (for tonal optimisation; ``solve_tol`` unused: exact).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.operators.shepard import linear_map
    >>> m = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    >>> m[..., ::3, ::3] = 1
    >>> M = linear_map(m, (1, 1, 6, 6), 1e-6)
    >>> g, r = torch.rand(2, 1, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.isclose((M.forward(g) * r).sum(), (g * M.adjoint(r)).sum()))   # <M g, r> = <g, M^T r>
    True
    """
    return _ShepardMap(m, float(sigma))


@ops.follows_layout_rule("f", also=("mask",))
@auto_threads
def inpaint_shepard(f: torch.Tensor, mask: torch.Tensor, *, sigma: float = SIGMA, tol: float = 1e-3) -> torch.Tensor:
    """Gaussian-weighted Shepard inpainting (normalised convolution) of ``f`` from the pixels where ``mask`` is 1.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point; values at missing pixels are not used (NaN allowed there).
    mask : Tensor
        Binary mask (1 = known pixel), broadcastable to ``f`` as for :func:`~pdeflow.inpaint.inpaint_diffusion`, at
        least one known pixel per image.
    sigma : float > 0, optional
        The Gaussian's scale in pixels (doubled where no known pixel is in reach; module doc).
    tol : float in (0, 1), optional
        Accepted as every operator takes it, and not used: the result is exact, no equation is solved.

    Returns
    -------
    Tensor
        The inpainting, shape and dtype of ``f``: ``f`` on the known pixels. Differentiable in ``f`` and in the
        mask's values.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_shepard
    >>> f = torch.zeros(1, 9)
    >>> mask = torch.zeros(1, 9)
    >>> f[0, 0], f[0, 8] = 1.0, 3.0
    >>> mask[0, 0] = mask[0, 8] = 1
    >>> u = inpaint_shepard(f, mask)
    >>> float(u[0, 0]), float(u[0, 8]), round(float(u[0, 4]), 6)     # known kept; the middle is the mean
    (1.0, 3.0, 2.0)
    """
    who = "inpaint_shepard"
    f = ops.check_tensor(f, f"{who}: f")
    ops.check_image(f, f"{who}: f", min_size=1)
    if isinstance(sigma, bool) or not isinstance(sigma, Real) or not (math.isfinite(sigma) and sigma > 0):
        raise UserInputError(f"{who}: sigma must be a number > 0 (pixels), got {sigma!r}")
    if isinstance(tol, bool) or not isinstance(tol, Real) or not 0 < tol < 1:
        raise UserInputError(f"{who}: tol must be a number in (0, 1), got {tol!r}")
    f4 = ops.promote_half(ops.as_batch(f, f"{who}: f")[0])
    m = check_mask(mask, f4, who)
    f4 = known_finite(f4, m, who)
    u = _apply(f4, m, _weights(m.detach(), float(sigma)))
    return ops.unbatch(u.to(f.dtype), f.dim())
