"""Masks by error-driven densification: start sparse, then add points where the inpainting errs most.

The inpainting is homogeneous diffusion unless told otherwise: ``operator`` names another one of
:data:`~pdeflow.inpaint.operators.OPERATORS`, whose errors then place the points (each step its solve, warm-started
from the previous step's inpainting, instead of the diffusion solve of step 1 below).

Probabilistic sparsification (PS, :mod:`~pdeflow.inpaint.masks.sparsification`) starts from every pixel and
removes a few at a time, one inpainting per step: thousands of steps, minutes at 512 pixels. Densification
runs the other way in a handful of steps. It starts from the analytic mask
(:func:`~pdeflow.inpaint.masks.analytic.analytic_mask`) at a fraction ``start`` of the density. Then, in
``stages`` steps whose point counts grow geometrically to ``k = round(density H W)``, it:

1. inpaints with homogeneous diffusion (multigrid-preconditioned CG, warm-started from the previous step, to
   a loose tolerance: only the error's shape is needed; the multigrid hierarchy is built every
   :data:`~pdeflow.inpaint.operators.diffusion.REBUILD` stages only, and in between the last one preconditions
   the grown mask's system);
2. takes the squared error ``(u - f)^2``, summed over channels and smoothed by a Gaussian of ``sigma``
   pixels;
3. adds the free pixels at the local maxima (3 x 3) of that map, largest first: one point per bump of the
   error, so the new points spread instead of piling up where the error is large.

A stage costs one inpainting and a few passes over the image, so a 4K mask takes seconds on one core. The idea
of densifying by the inpainting's error map is that of Kämper, Chizhov and Weickert (2024), who dither the
error map and triangulate on a GPU; here the points go to the error's local maxima instead. The quality
against PS and the run times are on the results page docs/results/inpaint.md.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import torch

from ... import ops
from ...errors import UserInputError
from ...filters import gaussian_blur, max3x3
from ..operators import OPERATORS
from ..operators.diffusion_system import error_map
from .analytic import analytic_mask_checked, analytic_sigma
from .dither import binary_mask, n_known

__all__ = ["densify_mask", "default_stages"]



def default_stages(operator: str = "diffusion") -> int:
    """:func:`densify_mask`'s number of stages when none is given, for masks made for ``operator``.

    Examples
    --------
    >>> from pdeflow.inpaint import default_stages
    >>> default_stages(), default_stages("eed")
    (8, 16)
    """
    return OPERATORS[operator].stages


@ops.follows_layout_rule("f", also=("mask",))
def densify_mask(f: torch.Tensor, density: float, *, start: float = 0.3, stages: int | None = None, sigma: float = 0.7,
                 tol: float = 1e-3, mask: torch.Tensor | None = None, operator: str = "diffusion") -> torch.Tensor:
    """A mask for inpainting by ``operator`` (homogeneous diffusion by default) by error-driven densification (see
    the module docstring).

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point (half precision is computed in float32), values in [0, 1]; colour images
        get one mask for all channels.
    density : float in (0, 1)
        Fraction of known pixels: exactly ``round(density H W)`` per image.
    start : float in (0, 1]
        The starting mask: the analytic mask at ``start * density`` (smoothed by
        :func:`~pdeflow.inpaint.masks.analytic.analytic_sigma` of ``density``). 1: the analytic mask itself.
    stages : int >= 1, optional
        Densification steps, each one inpainting; more are slower and not better past about 8 (16 for EED).
        Default: the operator's :attr:`~pdeflow.inpaint.Operator.stages` (:func:`default_stages`).
    sigma : float >= 0
        Smoothing of the squared error before its local maxima are taken, pixels (0: none).
    tol : float in (0, 1)
        Tolerance of each step's inpainting: the relative residual of :func:`~pdeflow.inpaint.inpaint_diffusion`, or of
        the operator's solve.
    mask : Tensor, optional
        Start from this binary mask instead (the shape this function returns for ``f``, the same number of
        known pixels in each image, at most ``round(density H W)``); all its points are kept.
    operator : str, optional
        The inpainting operator whose errors place the points, a key of
        :data:`~pdeflow.inpaint.operators.OPERATORS` (``'diffusion'``, ``'biharmonic'``, ``'eed'``, ``'tv'``,
        ``'shepard'``): a mask is best for the operator that will inpaint from it.

    Returns
    -------
    Tensor
        Mask of the dtype of ``f``, 1 = known pixel: ``(B, 1, H, W)`` for 4-D input, ``(1, H, W)`` for 3-D,
        ``(H, W)`` for 2-D.

    References
    ----------
    .. [1] N. Kämper, V. Chizhov, J. Weickert, "Efficient parallel data optimization for homogeneous diffusion
       inpainting of 4K images", arXiv:2401.06747, 2024 (densification by the inpainting's error map).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import densify_mask
    >>> f = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> m = densify_mask(f, 0.1)
    >>> m.shape, int(m.sum())                            # round(0.1 * 32 * 32) known pixels
    (torch.Size([1, 1, 32, 32]), 102)
    """
    who = "densify_mask"
    f = ops.check_tensor(f, f"{who}: f")
    f4 = ops.image_batch(f, f"{who}: f", min_size=2)
    B, C, H, W = f4.shape
    k = n_known(density, H * W, who)
    if isinstance(start, bool) or not isinstance(start, Real) or not 0 < start <= 1:
        raise UserInputError(f"{who}: start must be a number in (0, 1] (a fraction of density), got {start!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, Real) or not (math.isfinite(sigma) and sigma >= 0):
        raise UserInputError(f"{who}: sigma must be a number >= 0 (pixels), got {sigma!r}")
    if isinstance(tol, bool) or not isinstance(tol, Real) or not 0 < tol < 1:
        raise UserInputError(f"{who}: tol must be a number in (0, 1), got {tol!r}")
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise UserInputError(f"{who}: operator must be one of {', '.join(map(repr, OPERATORS))}, got {operator!r}")
    if stages is None:
        stages = default_stages(operator)
    if isinstance(stages, bool) or not isinstance(stages, Integral) or stages < 1:
        raise UserInputError(f"{who}: stages must be an int >= 1, got {stages!r}")
    f4 = ops.promote_half(f4)               # half precision: the inpaintings' errors in float32
    with torch.no_grad():
        m = _start_mask(f, f4, density, float(start), mask, k, who)
        k0 = int(m[0].sum())
        u = None
        step = OPERATORS[operator].sequence()       # warm-started from the previous stage's inpainting
        for s in range(1, int(stages) + 1):
            add = round(k0 * (k / k0) ** (s / stages)) - int(m[0].sum())   # geometric counts, k at the end
            if add <= 0:
                continue
            u = step(f4, m, u, float(tol), s - 1)
            e = error_map(u, f4)
            if sigma > 0:
                e = gaussian_blur(e, float(sigma))
            m = _add_at_maxima(m, e, add)
    return ops.unbatch(m.to(f.dtype), f.dim())


def _start_mask(f, f4: torch.Tensor, density: float, start: float, mask, k: int, who: str) -> torch.Tensor:
    """The starting mask ``(B, 1, H, W)`` in the dtype of ``f4``: ``mask`` checked, or the analytic mask."""
    B, _, H, W = f4.shape
    if mask is None:
        d0 = max(start * density, 1.0 / (H * W))          # at least one point: diffusion needs one
        # smoothed at the scale of the final mask's spacing, not the sparser start's: better masks on the
        # selection crops at 5, 10 and 20 %, and a shorter filter
        return analytic_mask_checked(f4, d0, sigma=analytic_sigma(density))   # f4 checked by densify_mask
    m = binary_mask(mask, f, f4, who).to(f4.dtype)
    counts = m.flatten(1).sum(1)
    if bool((counts != counts[0]).any()) or not 1 <= int(counts[0]) <= k:
        raise UserInputError(f"{who}: mask must have the same number of known pixels in each image, between 1 "
                             f"and round(density H W) = {k}; got {[int(c) for c in counts]}")
    return m


def _add_at_maxima(m: torch.Tensor, e: torch.Tensor, add: int) -> torch.Tensor:
    """``m`` with ``add`` more points per image: the free pixels at the positive local maxima (3 x 3) of ``e``,
    largest first, then (if there are too few of them) the other free pixels, largest first."""
    free = m < 0.5
    peak = (e >= max3x3(e)) & (e > 0) & free
    flat_e, flat_m = e.flatten(1), m.flatten(1).clone()
    for b in range(m.shape[0]):
        # the maxima are a few percent of the pixels: the top-k among them only (the full top-k is far slower at 4K)
        cand = peak[b].flatten().nonzero().squeeze(1)
        if cand.numel() >= add:
            pick = cand[flat_e[b, cand].topk(add).indices]
        else:
            rest = flat_e[b].masked_fill(~free[b].flatten() | peak[b].flatten(), -math.inf)
            pick = torch.cat([cand, rest.topk(add - cand.numel()).indices])
        flat_m[b, pick] = 1.0
    return flat_m.view_as(m)
