"""Analytic inpainting masks: the Laplacian-magnitude density of Belhachmi et al., dithered.

Belhachmi, Bucur, Burgeth, Weickert, "How to choose interpolation data in
images", SIAM J. Appl. Math. 69(1), 2009: for homogeneous diffusion
inpainting the optimal density of known pixels is proportional to the
magnitude of the Laplacian of the (slightly smoothed) image,
``p ∝ |laplacian(G_sigma * f)|``. Binarised by ordered dithering with a
blue-noise tile (:mod:`pdeflow.inpaint.masks.dither`) it gives exactly
``round(density H W)`` well-spaced points per image. Volumes (``ndim=3`` or a
3-element ``spacing``, as in :mod:`pdeflow.ops`) use the 7-point Laplacian, the
voxel spacing and a 3-D blue-noise tile: ``round(density D H W)`` voxels.

:func:`snap_to_extrema` then moves each point to the pixel of its 3 x 3
neighbourhood with the largest score (default ``|f - G_1 * f|``, the most
extreme pixel against its local mean), never onto another point: homogeneous
diffusion satisfies a maximum principle and cannot recreate extrema that are
not in the mask.
"""
from __future__ import annotations

import math

import torch

from ... import ops
from ...errors import UserInputError
from ...filters import gaussian_blur
from ...ops import laplacian
from .dither import blue_noise_tile, dither, n_known
from .snapping import extremality, snap_to_extrema

__all__ = ["analytic_mask", "analytic_sigma", "laplacian_density"]


def laplacian_density(f: torch.Tensor, sigma: float = 2.0, floor: float = 0.05, *, ndim: int | None = None,
                      spacing=None) -> torch.Tensor:
    """Belhachmi et al.'s density ``|laplacian(G_sigma * f)|`` (summed over channels) ``(B, 1, H, W)``,
    plus ``floor`` times its image mean (so flat regions keep a few points).

    With ``ndim=3`` (or a 3-element ``spacing``, as in :mod:`pdeflow.ops`) ``f`` is ``(B, C, D, H, W)``
    and the density ``(B, 1, D, H, W)`` uses the 7-point Laplacian with that spacing; ``sigma`` is then
    a length in the units of ``spacing`` (voxels at unit spacing).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.analytic import laplacian_density
    >>> f = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    >>> f[..., 8:] = 1.0                                 # a vertical edge
    >>> p = laplacian_density(f, sigma=1.0)
    >>> p.shape, bool(p[0, 0, 8, 7] > p[0, 0, 8, 0] > 0)
    (torch.Size([1, 1, 16, 16]), True)
    >>> v = torch.zeros(1, 1, 6, 8, 8, dtype=torch.float64)
    >>> v[..., 4:] = 1.0                                 # the same edge in a volume
    >>> laplacian_density(v, sigma=1.0, ndim=3).shape
    torch.Size([1, 1, 6, 8, 8])
    """
    nd, h = ops.spatial_axes(ndim, spacing, "laplacian_density")
    if nd == 3:
        sig = sigma if h is None else tuple(sigma / v for v in h)
        lap = laplacian(gaussian_blur(f, sig), ndim=3, spacing=h).abs().sum(1, keepdim=True)
        mean = lap.flatten(1).mean(1).view(-1, 1, 1, 1, 1)
        return lap + floor * mean + torch.finfo(f.dtype).tiny ** 0.5
    if h is not None:
        raise UserInputError("laplacian_density: spacing other than unit is supported for volumes "
                             f"(ndim=3) only, got {spacing!r}")
    lap = laplacian(gaussian_blur(f, sigma)).abs().sum(1, keepdim=True)
    mean = lap.flatten(1).mean(1).view(-1, 1, 1, 1)
    return lap + floor * mean + torch.finfo(f.dtype).tiny ** 0.5


def _check_number(x, name: str, who: str, *, minimum: float = 0.0, open_low: bool = True) -> float:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) \
        and (x > minimum if open_low else x >= minimum)
    if not ok:
        raise UserInputError(f"{who}: {name} must be a number {'>' if open_low else '>='} {minimum:g}, got {x!r}")
    return float(x)


def analytic_sigma(density: float, spacing=None) -> float:
    """Smoothing of the analytic density for a mask density: ``0.45 / sqrt(density)`` pixels (~0.45 x the point
    spacing), rounded to 0.01; what the mask networks, the residual inpainter's training and ``pdeflow mask`` use.

    For a volume with voxel ``spacing`` ``(dz, dy, dx)``: 0.45 times the mean distance between known voxels,
    ``0.45 (dz dy dx / density)^(1/3)`` in the unit of the spacing, rounded to 1e-4.

    Examples
    --------
    >>> from pdeflow.inpaint.masks.analytic import analytic_sigma
    >>> analytic_sigma(0.1), analytic_sigma(0.05), analytic_sigma(0.1, spacing=(2.0, 1.0, 1.0))
    (1.42, 2.01, 1.2215)
    """
    if spacing is not None:
        return round(0.45 * (math.prod(spacing) / density) ** (1.0 / 3.0), 4)
    return round(0.45 / math.sqrt(density), 2)


@ops.follows_layout_rule("f")
def analytic_mask(f: torch.Tensor, density: float, *, sigma: float = 2.0, floor: float = 0.05,
                  snap: bool | None = None, snap_sigma: float = 1.0, tile=None, random: bool = False,
                  generator=None, refine=0, ndim: int | None = None, spacing=None) -> torch.Tensor:
    """A mask for homogeneous diffusion inpainting from Belhachmi et al.'s density, dithered.

    The density ``|laplacian(G_sigma * f)| + floor * mean`` (Belhachmi, Bucur,
    Burgeth, Weickert, 2009) is dithered with a blue-noise threshold tile to
    exactly ``k = round(density H W)`` known pixels per image; with ``snap``
    each point then moves to the most extreme pixel (largest
    ``|f - G_snap_sigma * f|``) of its 3x3 neighbourhood not taken by another
    point.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point, values in [0, 1] (any range works).
    density : float in (0, 1)
        Fraction of known pixels; must give at least one and not every pixel.
    sigma : float >= 0
        Pre-smoothing of the Laplacian, pixels (Belhachmi et al. smooth
        slightly; 2 is good for photos at 64-256 pixels).
    floor : float >= 0
        Added density, in units of the image's mean density.
    snap : bool, optional
        Move points to the local extrema (see above). Default: True for
        images; volumes have no snapping (``snap=True`` with ``ndim=3`` is refused).
    snap_sigma : float > 0
        Scale of the local mean of the snap score, pixels.
    tile, random, generator
        Threshold tile (default 64 x 64 blue noise) and a random shift/flip of
        it per image (:func:`pdeflow.inpaint.masks.dither.threshold_map`);
        for volumes the default is the 16^3 blue-noise tile of
        :func:`pdeflow.inpaint.masks.dither.volume_thresholds`.
    refine : int, dict or None
        Test-time refinement (:func:`pdeflow.inpaint.masks.refine.refine_mask` with
        this density map and snap score): 0 (default) none, an int of exchange
        rounds, or a dict of its options (``{"shifts": 4, "rounds": 8}``;
        its ``generator`` defaults to this one). Images only.
    ndim : {2, 3}, optional
        Number of spatial axes, as in :mod:`pdeflow.ops` and
        :func:`pdeflow.inpaint.inpaint_diffusion`: 2 (default) or 3, for volumes
        ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``: the density is
        ``|laplacian(G_sigma * f)|`` with the 7-point Laplacian (the 3-D case of
        Belhachmi et al.'s result: the optimal density is proportional to the
        Laplacian's magnitude in any dimension), dithered to exactly
        ``round(density D H W)`` voxels per volume by
        :func:`pdeflow.inpaint.masks.dither.volume_thresholds`.
    spacing : float or (dz, dy, dx), optional
        Voxel spacing (volumes only; a length-3 spacing implies ``ndim=3``):
        the Laplacian's, and ``sigma`` is then in the units of ``spacing``.

    Returns
    -------
    Tensor
        Mask of the dtype of ``f``, 1 = known pixel: ``(B, 1, H, W)`` for
        4-D input, ``(1, H, W)`` for 3-D, ``(H, W)`` for 2-D; with ``ndim=3``
        ``(B, 1, D, H, W)``, ``(1, D, H, W)`` or ``(D, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import analytic_mask
    >>> f = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> m = analytic_mask(f, 0.1)
    >>> m.shape, int(m.sum())
    (torch.Size([1, 1, 16, 16]), 26)
    >>> v = torch.rand(1, 1, 6, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> m3 = analytic_mask(v, 0.05, ndim=3)             # a volume: round(0.05 * 6 * 8 * 8) voxels
    >>> m3.shape, int(m3.sum())
    (torch.Size([1, 1, 6, 8, 8]), 19)
    """
    who = "analytic_mask"
    nd, h = ops.spatial_axes(ndim, spacing, who)
    if nd == 3:
        return _analytic_volume(f, density, sigma, floor, snap, tile, random, generator, refine, h, who)
    if h is not None:
        raise UserInputError(f"{who}: spacing other than unit is supported for volumes (ndim=3) only, "
                             f"got {spacing!r}")
    if snap is None:
        snap = True
    f = ops.check_tensor(f, f"{who}: f")      # a NumPy array or a list: the tensor, whose shape is handed back
    f4 = ops.image_batch(f, f"{who}: f", min_size=2)
    B, C, H, W = f4.shape
    n_known(density, H * W, who)
    sigma = _check_number(sigma, "sigma", who, open_low=False)
    floor = _check_number(floor, "floor", who, open_low=False)
    snap_sigma = _check_number(snap_sigma, "snap_sigma", who)
    if not isinstance(snap, bool):
        raise UserInputError(f"{who}: snap must be True or False, got {snap!r}")
    m = analytic_mask_checked(f4, density, sigma=sigma, floor=floor, snap=snap, snap_sigma=snap_sigma, tile=tile,
                              random=random, generator=generator, refine=refine)
    return ops.unbatch(m, f.dim())


def analytic_mask_checked(f4: torch.Tensor, density: float, *, sigma: float = 2.0, floor: float = 0.05,
                          snap: bool = True, snap_sigma: float = 1.0, tile=None, random: bool = False,
                          generator=None, refine=0) -> torch.Tensor:
    """:func:`analytic_mask` of a checked image ``f4`` (B, C, H, W) with checked options, for the library's
    functions that checked their image once on entry (densification's start mask): the mask
    (B, 1, H, W) in the dtype of ``f4``."""
    with torch.no_grad():
        x = f4.to(torch.float64)
        p = laplacian_density(x, sigma, floor)
        m = dither(p, density, tile=tile if tile is not None else blue_noise_tile(64), random=random,
                   generator=generator)
        if snap:
            m = snap_to_extrema(m, extremality(x, snap_sigma))
    # test-time refinement (pdeflow.inpaint.masks.refine)
    from .refine import refine_mask, refine_options
    opts = refine_options(refine, "analytic_mask")
    if opts is not None:
        opts.setdefault("generator", generator)
        m = refine_mask(x, m, density_map=p, snap_score=extremality(x, snap_sigma) if snap else None,
                        tile=tile if tile is not None else blue_noise_tile(64), **opts)
    return m.to(f4.dtype)


def _analytic_volume(f, density, sigma, floor, snap, tile, random, generator, refine, h, who):
    """:func:`analytic_mask` for volumes ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)``."""
    if isinstance(f, torch.Tensor):
        ops.check_float(f, f"{who}: f")
    if not isinstance(f, torch.Tensor) or f.dim() not in (3, 4, 5):
        raise UserInputError(f"{who}: f must be a floating-point tensor (D, H, W), (C, D, H, W) or "
                             f"(B, C, D, H, W) with ndim=3, got {getattr(f, 'shape', type(f).__name__)}")
    f5 = ops.as_batch(f, f"{who}: f", ndim=3)[0]
    B, C, D, H, W = f5.shape
    if B < 1 or C < 1 or min(D, H, W) < 2:
        raise UserInputError(f"{who}: f must hold at least one volume of at least 2 voxels per axis, "
                             f"got shape {tuple(f.shape)}")
    if not bool(torch.isfinite(f5).all()):
        raise UserInputError(f"{who}: f must be finite")
    n_known(density, D * H * W, who)
    sigma = _check_number(sigma, "sigma", who, open_low=False)
    floor = _check_number(floor, "floor", who, open_low=False)
    if snap not in (None, False):
        raise UserInputError(f"{who}: snap must be None or False for volumes (ndim=3; snapping is 2-D), got {snap!r}")
    if refine not in (0, None):
        raise UserInputError(f"{who}: refine must be 0 or None for volumes (ndim=3; refinement is 2-D), "
                             f"got {refine!r}")
    with torch.no_grad():
        p = laplacian_density(f5.to(torch.float64), sigma, floor, ndim=3, spacing=h)
        m = dither(p, density, tile=tile, random=random, generator=generator)   # None: the 3-D tile
    m = m.to(f5.dtype)
    return ops.unbatch(m, f.dim())
