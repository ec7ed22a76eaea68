"""Generated images: piecewise-constant scenes (TV-flow eigenfunctions, the generalisation test images of
TVflowNET, rectangles and polygons) and piecewise-smooth scenes, seeded and batched.

Every random scene generator takes ``(size, n, *, seed, batch=None)``: ``n`` shapes per image, numpy's
``default_rng(seed)`` for all draws (the same seed gives the same images), and returns ``(1, H, W)``, or
``(batch, 1, H, W)`` when ``batch`` is given. :data:`SCENES` names them and :func:`scenes` mixes kinds
(TVflowNET's trainer draws its generated images from it).

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch

from ..errors import UserInputError

__all__ = ["disk", "disks", "ellipses", "rectangles", "polygons", "smooth_field", "piecewise_smooth", "plateau_1d",
           "SCENES", "scenes"]


# ---------------------------------------------------------------------------
# Synthetic images
# ---------------------------------------------------------------------------

def _hw(size, who: str) -> tuple[int, int]:
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in size)):
        raise UserInputError(f"{who}: size must be a positive int or a pair (H, W) of them, got {size!r}")
    return int(size[0]), int(size[1])


def _range(value, who: str, name: str, *, positive: bool = False) -> tuple[float, float]:
    if isinstance(value, Real):
        value = (value, value)
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UserInputError(f"{who}: {name} must be a number or a pair (low, high), got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi) or (positive and lo <= 0):
        raise UserInputError(f"{who}: {name} must be a{' positive' if positive else ''} range (low, high) "
                         f"with low <= high, got {value!r}")
    return lo, hi


def _batch_arg(batch, who: str) -> int | None:
    if batch is None:
        return None
    if isinstance(batch, bool) or not isinstance(batch, Integral) or batch < 1:
        raise UserInputError(f"{who}: batch must be None or a positive int, got {batch!r}")
    return int(batch)


def _scene_args(size, n, batch, who: str) -> tuple[int, int, int | None]:
    """``(H, W, batch)`` of a random scene of ``n`` shapes, its arguments checked."""
    H, W = _hw(size, who)
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise UserInputError(f"{who}: n must be a non-negative int, got {n!r}")
    return H, W, _batch_arg(batch, who)


def _grid(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")


def _ellipse_mask(rr, cc, cy: float, cx: float, a: float, b: float, theta: float) -> np.ndarray:
    """Pixels whose centres lie in the ellipse of centre ``(cy, cx)``, semi-axes ``a`` (along the
    direction ``theta`` from the column axis towards the row axis) and ``b``."""
    y, x = rr - cy, cc - cx
    u = x * math.cos(theta) + y * math.sin(theta)
    w = -x * math.sin(theta) + y * math.cos(theta)
    return (u / a) ** 2 + (w / b) ** 2 <= 1.0


def _scenes(H: int, W: int, batch: int | None, seed: int, draw, dtype, device) -> torch.Tensor:
    """``batch`` images (one without a batch) from ``draw(rng, rr, cc)``, which returns one ``(H, W)`` array given
    the seeded generator and the pixel coordinates; ``(batch, 1, H, W)``, or ``(1, H, W)`` without a batch."""
    rng = np.random.default_rng(seed)
    rr, cc = _grid(H, W)
    arr = np.stack([draw(rng, rr, cc) for _ in range(batch or 1)])[:, None]
    return torch.as_tensor(arr if batch is not None else arr[0], dtype=dtype, device=device)


def disk(size, radius: float, center=None, height: float = 1.0, background: float = 0.0,
         *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Image of one disk: ``height`` inside, ``background`` outside.

    A disk's indicator is an eigenfunction of the TV subdifferential: under the TV flow its height moves
    linearly towards the background at the rate perimeter/area (``2 / radius`` in the continuum).

    Parameters
    ----------
    size : int or (int, int)
        Height and width in pixels.
    radius : float
        Radius in pixels; a pixel whose centre is within ``radius`` of ``center`` is inside.
    center : (float, float), optional
        ``(row, col)`` in pixels; default the image centre ``((H - 1) / 2, (W - 1) / 2)``.
    height, background : float, optional
        Values inside and outside.

    Returns
    -------
    Tensor, shape (1, H, W)

    Examples
    --------
    >>> from pdeflow.datasets import disk
    >>> u = disk(7, 2.0, height=1.0)
    >>> u.shape, int(u.sum())
    (torch.Size([1, 7, 7]), 13)
    """
    H, W = _hw(size, "disk")
    if not (isinstance(radius, Real) and math.isfinite(radius) and radius > 0):
        raise UserInputError(f"disk: radius must be a positive number, got {radius!r}")
    if center is None:
        center = ((H - 1) / 2, (W - 1) / 2)
    try:
        cy, cx = (float(c) for c in center)
    except (TypeError, ValueError):
        raise UserInputError(f"disk: center must be a pair (row, col), got {center!r}") from None
    rr, cc = _grid(H, W)
    inside = (rr - cy) ** 2 + (cc - cx) ** 2 <= float(radius) ** 2
    img = np.where(inside, float(height), float(background))
    return torch.as_tensor(img[None], dtype=dtype, device=device)


def disks(
    size,
    n: int,
    *,
    seed: int,
    batch: int | None = None,
    radius_range=None,
    height_range=(0.2, 1.0),
    background: float = 0.0,
    gap: float = 2.0,
    margin: float = 2.0,
    max_tries: int = 1000,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Images of ``n`` isolated, non-overlapping disks of random radii and heights.

    Each disk evolves on its own under the TV flow (while they stay apart), its height falling linearly: the
    disk test images of TVflowNET (Grossmann et al., 2022, §4.2.1). Placed largest first by rejection
    sampling, at least ``gap`` pixels apart (edge to edge) and ``margin`` from the border.

    Parameters
    ----------
    size : int or (int, int)
        Height and width in pixels.
    n : int
        Number of disks per image.
    seed : int
        Seed of the random placement (numpy's ``default_rng``).
    batch : int, optional
        Number of images: a ``(batch, 1, H, W)`` result.
    radius_range : (float, float), optional
        Radii in pixels, uniform in this range; default ``(0.04, 0.15) * min(H, W)`` (at least 2 pixels).
    height_range : (float, float), optional
        Disk heights above ``background``, uniform in this range.
    background : float, optional
        Value outside the disks.
    gap, margin : float, optional
        Minimal distances, in pixels, between disks and to the border.
    max_tries : int, optional
        Attempts per disk before giving up with ValueError.

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) with ``batch``

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import disks
    >>> u = disks(32, 3, seed=0, batch=2)
    >>> u.shape, torch.equal(u, disks(32, 3, seed=0, batch=2))
    (torch.Size([2, 1, 32, 32]), True)
    """
    H, W, B = _scene_args(size, n, batch, "disks")
    if radius_range is None:
        radius_range = (max(2.0, 0.04 * min(H, W)), max(2.0, 0.15 * min(H, W)))
    rlo, rhi = _range(radius_range, "disks", "radius_range", positive=True)
    hlo, hhi = _range(height_range, "disks", "height_range")
    if gap < 0 or margin < 0:
        raise UserInputError(f"disks: gap and margin must be non-negative, got {gap}, {margin}")

    def draw(rng, rr, cc):
        radii = np.sort(rng.uniform(rlo, rhi, n))[::-1]
        heights = rng.uniform(hlo, hhi, n)
        placed: list[tuple[float, float, float]] = []
        img = np.full((H, W), float(background))
        for r, h in zip(radii, heights):
            lo_y, hi_y = margin + r, H - 1 - margin - r
            lo_x, hi_x = margin + r, W - 1 - margin - r
            if lo_y > hi_y or lo_x > hi_x:
                raise UserInputError(f"disks: a disk of radius {r:.1f} does not fit a {H}x{W} image "
                                 f"with margin {margin}; reduce radius_range")
            for _try in range(max_tries):
                cy, cx = rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x)
                if all(math.hypot(cy - y, cx - x) > r + s + gap for y, x, s in placed):
                    break
            else:
                raise UserInputError(f"disks: could not place {n} disks in a {H}x{W} image after {max_tries} "
                                 "tries each; reduce n or radius_range")
            placed.append((cy, cx, r))
            img[(rr - cy) ** 2 + (cc - cx) ** 2 <= r * r] = background + h
        return img

    return _scenes(H, W, B, seed, draw, dtype, device)


def ellipses(
    size,
    n: int,
    *,
    seed: int,
    batch: int | None = None,
    axis_range=None,
    intensity_range=(0.1, 1.0),
    background: float = 0.0,
    combine: str = "paint",
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Images of ``n`` overlapping ellipses with different intensities.

    The ellipse test images of TVflowNET (Grossmann et al., 2022, §4.2.1): uniformly random centres inside
    the image and orientations, semi-axes in ``axis_range``, intensities in ``intensity_range``.

    Parameters
    ----------
    size : int or (int, int)
        Height and width in pixels.
    n : int
        Number of ellipses per image.
    seed : int
        Seed (numpy's ``default_rng``).
    batch : int, optional
        Number of images: a ``(batch, 1, H, W)`` result.
    axis_range : (float, float), optional
        Semi-axes in pixels, uniform in this range; default ``(0.08, 0.35) * min(H, W)``.
    intensity_range : (float, float), optional
        Intensities, uniform in this range.
    background : float, optional
        Value outside all ellipses.
    combine : {'paint', 'add'}, optional
        ``'paint'``: each ellipse overwrites earlier ones (values in ``intensity_range`` and ``background``);
        ``'add'``: intensities add where ellipses overlap (unclipped, may exceed the range).

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) with ``batch``

    Examples
    --------
    >>> from pdeflow.datasets import ellipses
    >>> u = ellipses(32, 4, seed=0)
    >>> u.shape, 0.0 <= u.min().item() <= u.max().item() <= 1.0
    (torch.Size([1, 32, 32]), True)
    """
    H, W, B = _scene_args(size, n, batch, "ellipses")
    if axis_range is None:
        axis_range = (max(1.5, 0.08 * min(H, W)), max(1.5, 0.35 * min(H, W)))
    alo, ahi = _range(axis_range, "ellipses", "axis_range", positive=True)
    ilo, ihi = _range(intensity_range, "ellipses", "intensity_range")
    if combine not in ("paint", "add"):
        raise UserInputError(f"ellipses: combine must be 'paint' or 'add', got {combine!r}")

    def draw(rng, rr, cc):
        img = np.full((H, W), float(background))
        for _k in range(n):
            cy, cx = rng.uniform(0, H - 1), rng.uniform(0, W - 1)
            a, b = rng.uniform(alo, ahi, 2)
            theta = rng.uniform(0, math.pi)
            v = rng.uniform(ilo, ihi)
            inside = _ellipse_mask(rr, cc, cy, cx, a, b, theta)
            if combine == "paint":
                img[inside] = v
            else:
                img[inside] += v
        return img

    return _scenes(H, W, B, seed, draw, dtype, device)


def rectangles(
    size,
    n: int,
    *,
    seed: int,
    batch: int | None = None,
    side_range=None,
    intensity_range=(0.1, 1.0),
    background: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Images of ``n`` overlapping axis-aligned rectangles with different intensities (piecewise constant).

    Sides uniform in ``side_range``, uniformly random positions inside the image, intensities uniform in
    ``intensity_range``; later rectangles paint over earlier ones (values in ``intensity_range`` and ``background``).
    A pixel belongs to a rectangle when its centre does.

    Parameters
    ----------
    size : int or (int, int)
        Height and width in pixels.
    n : int
        Number of rectangles per image.
    seed : int
        Seed (numpy's ``default_rng``).
    batch : int, optional
        Number of images: a ``(batch, 1, H, W)`` result.
    side_range : (float, float), optional
        Side lengths in pixels, uniform in this range (height and width drawn apart); default
        ``(0.1, 0.6) * min(H, W)`` (at least 2 pixels).
    intensity_range : (float, float), optional
        Intensities, uniform in this range.
    background : float, optional
        Value outside all rectangles.

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) with ``batch``

    Examples
    --------
    >>> from pdeflow.datasets import rectangles
    >>> u = rectangles((24, 32), 3, seed=0, batch=2)
    >>> u.shape, len(u[0].unique()) <= 4
    (torch.Size([2, 1, 24, 32]), True)
    """
    H, W, B = _scene_args(size, n, batch, "rectangles")
    if side_range is None:
        side_range = (max(2.0, 0.1 * min(H, W)), max(2.0, 0.6 * min(H, W)))
    slo, shi = _range(side_range, "rectangles", "side_range", positive=True)
    ilo, ihi = _range(intensity_range, "rectangles", "intensity_range")

    def draw(rng, rr, cc):
        img = np.full((H, W), float(background))
        for _k in range(n):
            h, w = rng.uniform(slo, shi, 2)
            top, left = rng.uniform(-0.5, max(H - 0.5 - h, -0.5)), rng.uniform(-0.5, max(W - 0.5 - w, -0.5))
            v = rng.uniform(ilo, ihi)
            img[(rr >= top) & (rr < top + h) & (cc >= left) & (cc < left + w)] = v
        return img

    return _scenes(H, W, B, seed, draw, dtype, device)


def _polygon_mask(rr, cc, cy: float, cx: float, radius: float, angles: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie in the convex polygon with vertices ``(cy + r sin a, cx + r cos a)`` for
    the sorted ``angles`` (a polygon inscribed in a circle is convex)."""
    vy, vx = cy + radius * np.sin(angles), cx + radius * np.cos(angles)
    ey, ex = np.roll(vy, -1) - vy, np.roll(vx, -1) - vx
    inside = np.ones(rr.shape, dtype=bool)
    for k in range(len(angles)):
        side = ex[k] * (rr - vy[k]) - ey[k] * (cc - vx[k])        # cross(edge, p - vertex)
        centre = ex[k] * (cy - vy[k]) - ey[k] * (cx - vx[k])      # the centre's side of the edge
        inside &= side * np.sign(centre) >= 0
    return inside


def _polygon_angles(rng, k: int) -> np.ndarray:
    """``k`` sorted vertex angles: a random rotation plus gaps uniform in [1, 2] (relative), scaled to
    2 pi, so that no gap exceeds pi and the circle's centre is inside the polygon."""
    gaps = rng.uniform(1.0, 2.0, k)
    return rng.uniform(0, 2 * math.pi) + np.cumsum(gaps / gaps.sum() * 2 * math.pi)


def polygons(
    size,
    n: int,
    *,
    seed: int,
    batch: int | None = None,
    sides=(3, 8),
    radius_range=None,
    intensity_range=(0.1, 1.0),
    background: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Images of ``n`` overlapping convex polygons with different intensities (piecewise constant).

    Each polygon is inscribed in a circle of uniformly random centre (inside the image) and radius in
    ``radius_range``: a number of vertices uniform in ``sides`` (inclusive), at a random rotation with
    angular gaps uniform in [1, 2] (relative), so no polygon is a sliver. Intensities are uniform in
    ``intensity_range``; later polygons are painted over earlier ones.

    Parameters
    ----------
    size : int or (int, int)
        Height and width in pixels.
    n : int
        Number of polygons per image.
    seed : int
        Seed (numpy's ``default_rng``).
    batch : int, optional
        Number of images: a ``(batch, 1, H, W)`` result.
    sides : (int, int), optional
        Fewest and most vertices, at least 3.
    radius_range : (float, float), optional
        Circumradii in pixels, uniform in this range; default ``(0.1, 0.4) * min(H, W)`` (at least 2).
    intensity_range : (float, float), optional
        Intensities, uniform in this range.
    background : float, optional
        Value outside all polygons.

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) with ``batch``

    Examples
    --------
    >>> from pdeflow.datasets import polygons
    >>> u = polygons(32, 3, seed=1)
    >>> u.shape, len(u.unique()) <= 4
    (torch.Size([1, 32, 32]), True)
    """
    H, W, B = _scene_args(size, n, batch, "polygons")
    if (not isinstance(sides, (tuple, list)) or len(sides) != 2
            or not all(isinstance(k, Integral) and not isinstance(k, bool) for k in sides)
            or not 3 <= sides[0] <= sides[1]):
        raise UserInputError(f"polygons: sides must be a pair of ints (fewest, most) with 3 <= fewest <= most, "
                             f"got {sides!r}")
    if radius_range is None:
        radius_range = (max(2.0, 0.1 * min(H, W)), max(2.0, 0.4 * min(H, W)))
    rlo, rhi = _range(radius_range, "polygons", "radius_range", positive=True)
    ilo, ihi = _range(intensity_range, "polygons", "intensity_range")

    def draw(rng, rr, cc):
        img = np.full((H, W), float(background))
        for _k in range(n):
            cy, cx = rng.uniform(0, H - 1), rng.uniform(0, W - 1)
            radius = rng.uniform(rlo, rhi)
            angles = _polygon_angles(rng, int(rng.integers(sides[0], sides[1] + 1)))
            img[_polygon_mask(rr, cc, cy, cx, radius, angles)] = rng.uniform(ilo, ihi)
        return img

    return _scenes(H, W, B, seed, draw, dtype, device)


def _smooth(rng, rr, cc, frequency: float, n_modes: int) -> np.ndarray:
    """A smooth random field scaled to [-1, 1]: a linear ramp in a random direction plus ``n_modes``
    cosines with wave vectors uniform in the disc of radius ``frequency`` cycles per ``min(H, W)``
    pixels, random phases, amplitudes uniform in [0, 1]."""
    L = float(min(rr.shape))
    theta = rng.uniform(0, 2 * math.pi)
    f = rng.uniform(0, 1) * (rr * math.sin(theta) + cc * math.cos(theta)) / L
    for _m in range(n_modes):
        k, phi = frequency * math.sqrt(rng.uniform(0, 1)), rng.uniform(0, 2 * math.pi)
        f = f + rng.uniform(0, 1) * np.cos(2 * math.pi * k * (rr * math.sin(phi) + cc * math.cos(phi)) / L
                                           + rng.uniform(0, 2 * math.pi))
    lo, hi = float(f.min()), float(f.max())
    return (2 * (f - lo) / (hi - lo) - 1) if hi - lo > 1e-12 else np.zeros_like(f)


def smooth_field(
    size,
    *,
    seed: int,
    batch: int | None = None,
    frequency: float = 2.0,
    n_modes: int = 4,
    value_range=(0.0, 1.0),
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Smooth random images: a ramp plus a few low-frequency cosines, min-max scaled to ``value_range``.

    Parameters
    ----------
    size : int or (int, int)
        Height and width in pixels.
    seed : int
        Seed (numpy's ``default_rng``).
    batch : int, optional
        Number of images: a ``(batch, 1, H, W)`` result.
    frequency : float, optional
        Largest spatial frequency, in cycles per ``min(H, W)`` pixels (wave vectors uniform in the disc).
    n_modes : int, optional
        Number of cosines added to the ramp.
    value_range : (float, float), optional
        Each image spans exactly this range (a constant image, which has probability zero, is its middle).

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) with ``batch``

    Examples
    --------
    >>> from pdeflow.datasets import smooth_field
    >>> u = smooth_field(16, seed=0, value_range=(0.0, 5.0))
    >>> u.shape, round(u.min().item(), 4), round(u.max().item(), 4)
    (torch.Size([1, 16, 16]), 0.0, 5.0)
    """
    H, W = _hw(size, "smooth_field")
    B = _batch_arg(batch, "smooth_field")
    if not (isinstance(frequency, Real) and math.isfinite(frequency) and frequency >= 0):
        raise UserInputError(f"smooth_field: frequency must be a number >= 0, got {frequency!r}")
    if isinstance(n_modes, bool) or not isinstance(n_modes, Integral) or n_modes < 0:
        raise UserInputError(f"smooth_field: n_modes must be a non-negative int, got {n_modes!r}")
    lo, hi = _range(value_range, "smooth_field", "value_range")
    def draw(rng, rr, cc):
        return lo + (hi - lo) * (_smooth(rng, rr, cc, frequency, n_modes) + 1) / 2

    return _scenes(H, W, B, seed, draw, dtype, device)


def piecewise_smooth(
    size,
    n: int,
    *,
    seed: int,
    batch: int | None = None,
    frequency: float = 2.0,
    amplitude: float = 0.25,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """Piecewise-smooth images: a smooth background and ``n`` shapes, each with its own smooth interior.

    Every region (the background, then each shape painted over what is there) takes
    ``level + a * f`` with ``f`` a smooth random field in [-1, 1] (:func:`smooth_field`'s ramp plus four
    cosines up to ``frequency`` cycles per image), ``a`` uniform in ``[0, amplitude]`` and ``level``
    uniform in ``[a, 1 - a]``: values stay in [0, 1] without clipping, smooth inside each region and
    jumping across the shapes' edges. Shapes are disks, ellipses and convex polygons (one of the three
    at random, centres uniform in the image, sizes as :func:`ellipses` and :func:`polygons`).

    Parameters
    ----------
    size : int or (int, int)
        Height and width in pixels.
    n : int
        Number of shapes per image.
    seed : int
        Seed (numpy's ``default_rng``).
    batch : int, optional
        Number of images: a ``(batch, 1, H, W)`` result.
    frequency : float, optional
        Largest spatial frequency of the fields, in cycles per ``min(H, W)`` pixels.
    amplitude : float, optional
        Largest half-range of a region's smooth variation, in [0, 0.5].

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) with ``batch``, values in [0, 1]

    Examples
    --------
    >>> from pdeflow.datasets import piecewise_smooth
    >>> u = piecewise_smooth(32, 3, seed=0, batch=2)
    >>> u.shape, 0.0 <= u.min().item() <= u.max().item() <= 1.0
    (torch.Size([2, 1, 32, 32]), True)
    """
    H, W, B = _scene_args(size, n, batch, "piecewise_smooth")
    if not (isinstance(frequency, Real) and math.isfinite(frequency) and frequency >= 0):
        raise UserInputError(f"piecewise_smooth: frequency must be a number >= 0, got {frequency!r}")
    if not (isinstance(amplitude, Real) and 0 <= amplitude <= 0.5):
        raise UserInputError(f"piecewise_smooth: amplitude must be a number in [0, 0.5], got {amplitude!r}")
    m = min(H, W)
    alo, ahi = max(1.5, 0.08 * m), max(1.5, 0.35 * m)      # ellipses' semi-axes
    rlo, rhi = max(2.0, 0.1 * m), max(2.0, 0.4 * m)        # polygons' circumradii

    def region(rng, rr, cc):
        a = rng.uniform(0, amplitude)
        return rng.uniform(a, 1 - a) + a * _smooth(rng, rr, cc, frequency, 4)

    def draw(rng, rr, cc):
        img = region(rng, rr, cc)
        for _k in range(n):
            cy, cx = rng.uniform(0, H - 1), rng.uniform(0, W - 1)
            shape = int(rng.integers(3))
            if shape == 0:
                r = rng.uniform(alo, ahi)
                inside = (rr - cy) ** 2 + (cc - cx) ** 2 <= r * r
            elif shape == 1:
                a, b = rng.uniform(alo, ahi, 2)
                inside = _ellipse_mask(rr, cc, cy, cx, a, b, rng.uniform(0, math.pi))
            else:
                inside = _polygon_mask(rr, cc, cy, cx, rng.uniform(rlo, rhi),
                                       _polygon_angles(rng, int(rng.integers(3, 9))))
            img[inside] = region(rng, rr, cc)[inside]
        return img

    return _scenes(H, W, B, seed, draw, dtype, device)


def plateau_1d(size, widths, heights, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Image constant along rows whose column profile is piecewise constant.

    A 1-D TV test image: every row is the same step function
    ``heights[0]`` for the first ``widths[0]`` columns, ``heights[1]`` for the
    next ``widths[1]`` columns, and so on. Under the 1-D TV flow each plateau
    moves at a rate set by its width and its neighbours (an eigenfunction for
    suitable heights), and the image stays constant along the rows.

    Parameters
    ----------
    size : int or (int, int)
        Image height and width ``(H, W)`` in pixels (an int gives a square).
    widths : sequence of int
        Plateau widths in pixels, positive, summing to ``W``.
    heights : sequence of float
        One value per plateau.

    Returns
    -------
    Tensor, shape (1, H, W)

    Examples
    --------
    >>> from pdeflow.datasets import plateau_1d
    >>> plateau_1d((2, 5), [2, 3], [0.0, 1.0])
    tensor([[[0., 0., 1., 1., 1.],
             [0., 0., 1., 1., 1.]]])
    """
    H, W = _hw(size, "plateau_1d")
    widths = list(widths)
    heights = list(heights)
    if len(widths) == 0 or len(widths) != len(heights):
        raise UserInputError(f"plateau_1d: widths and heights must be non-empty and of equal length, "
                         f"got {len(widths)} and {len(heights)}")
    if not all(isinstance(w, Integral) and not isinstance(w, bool) and w > 0 for w in widths):
        raise UserInputError(f"plateau_1d: widths must be positive ints, got {widths!r}")
    if sum(widths) != W:
        raise UserInputError(f"plateau_1d: widths must sum to the image width {W}, got sum {sum(widths)}")
    profile = np.repeat(np.asarray(heights, dtype=np.float64), widths)
    img = np.broadcast_to(profile, (H, W))
    return torch.as_tensor(np.ascontiguousarray(img)[None], dtype=dtype, device=device)


# ---------------------------------------------------------------------------
# Mixed scenes
# ---------------------------------------------------------------------------

#: The random scene generators by kind, each ``f(size, n_shapes, *, seed, batch)``: piecewise constant
#: ("disks": isolated flat disks, eigenfunctions of the TV flow, and "ellipses": overlapping ellipses,
#: Table 5's shapes of Grossmann et al., 2022; "rectangles", "polygons") and piecewise smooth ("smooth").
SCENES = {"disks": disks, "ellipses": ellipses, "rectangles": rectangles, "polygons": polygons,
          "smooth": piecewise_smooth}


def scenes(kinds, size, *, seed: int, batch: int, n_shapes: int | None = None,
           dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``batch`` generated images of several kinds (:data:`SCENES`), split between them as evenly as
    possible (the earlier kinds get one more), kind after kind in the order given, each kind drawn from
    ``seed``.

    Parameters
    ----------
    kinds : sequence of str
        Keys of :data:`SCENES`, e.g. ``("disks", "ellipses", "smooth")``.
    size : int
        Height and width in pixels.
    seed : int
        Seed of every kind's generator.
    batch : int
        Number of images.
    n_shapes : int, optional
        Shapes per image; default ``clip(size // 16, 1, 5)`` (5 from 80 px), as the evaluation's
        Table 5 images.

    Returns
    -------
    Tensor, shape (batch, 1, size, size)

    Examples
    --------
    >>> from pdeflow.datasets import SCENES, scenes
    >>> sorted(SCENES)
    ['disks', 'ellipses', 'polygons', 'rectangles', 'smooth']
    >>> scenes(("disks", "ellipses", "smooth"), 16, seed=0, batch=5).shape
    torch.Size([5, 1, 16, 16])
    """
    kinds = tuple(kinds) if isinstance(kinds, (tuple, list)) else kinds
    if not isinstance(kinds, tuple) or not kinds or any(k not in SCENES for k in kinds):
        raise UserInputError(f"scenes: kinds must be a non-empty list among {tuple(SCENES)}, got {kinds!r}")
    H, W = _hw(size, "scenes")
    B = _batch_arg(batch, "scenes")
    shapes = max(1, min(5, min(H, W) // 16)) if n_shapes is None else n_shapes
    base, extra = divmod(B, len(kinds))
    counts = [base + (i < extra) for i in range(len(kinds))]
    parts = [SCENES[k]((H, W), shapes, seed=seed, batch=c, dtype=dtype, device=device)
             for k, c in zip(kinds, counts) if c]
    return torch.cat(parts)
