"""Synthetic piecewise-constant images: TV-flow eigenfunctions and the generalisation test images of TVflowNET.

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

__all__ = ["disk", "disks", "ellipses", "plateau_1d"]


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

    The indicator of a disk is an eigenfunction of the TV subdifferential: under
    the TV flow its height moves towards the background linearly, at the rate
    perimeter/area (``2 / radius`` in the continuum).

    Parameters
    ----------
    size : int or (int, int)
        Image height and width in pixels.
    radius : float
        Radius in pixels; a pixel belongs to the disk when its centre is at
        distance ``<= radius`` from ``center``.
    center : (float, float), optional
        ``(row, col)`` in pixel coordinates; default the image centre
        ``((H - 1) / 2, (W - 1) / 2)``.
    height, background : float, optional
        Values inside and outside.

    Returns
    -------
    Tensor, shape (1, H, W)
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

    Each disk evolves independently under the TV flow (as long as the disks
    stay apart), its height falling linearly: the disk test images of
    TVflowNET (Grossmann et al., 2022, §4.2.1). Disks are placed largest first by rejection
    sampling, at least ``gap`` pixels apart (edge to edge) and ``margin``
    pixels from the border.

    Parameters
    ----------
    size : int or (int, int)
        Image height and width in pixels.
    n : int
        Number of disks per image.
    seed : int
        Seed of the random placement (numpy's ``default_rng``).
    batch : int, optional
        Number of images; if given the result is ``(batch, 1, H, W)``.
    radius_range : (float, float), optional
        Radii are uniform in this range, in pixels; default
        ``(0.04, 0.15) * min(H, W)`` (at least 2 pixels).
    height_range : (float, float), optional
        Disk heights (above ``background``) are uniform in this range.
    background : float, optional
        Value outside the disks.
    gap, margin : float, optional
        Minimal distances, in pixels, between disks and to the border.
    max_tries : int, optional
        Attempts per disk before giving up with ValueError.

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) when ``batch`` is given
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

    The ellipse test images of TVflowNET (Grossmann et al., 2022, §4.2.1). Each ellipse has a
    uniformly random centre inside the image, semi-axes in ``axis_range``, a
    uniformly random orientation and an intensity in ``intensity_range``.

    Parameters
    ----------
    size : int or (int, int)
        Image height and width in pixels.
    n : int
        Number of ellipses per image.
    seed : int
        Seed (numpy's ``default_rng``).
    batch : int, optional
        Number of images; if given the result is ``(batch, 1, H, W)``.
    axis_range : (float, float), optional
        Semi-axes in pixels, uniform in this range; default
        ``(0.08, 0.35) * min(H, W)``.
    intensity_range : (float, float), optional
        Intensities, uniform in this range.
    background : float, optional
        Value outside all ellipses.
    combine : {'paint', 'add'}, optional
        ``'paint'``: each ellipse overwrites the ones drawn before it, so the
        image takes values in ``intensity_range`` and ``background``;
        ``'add'``: intensities add up where ellipses overlap (values may then
        exceed the range; nothing is clipped).

    Returns
    -------
    Tensor, shape (1, H, W), or (batch, 1, H, W) when ``batch`` is given
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
            y, x = rr - cy, cc - cx
            u = x * math.cos(theta) + y * math.sin(theta)
            w = -x * math.sin(theta) + y * math.cos(theta)
            inside = (u / a) ** 2 + (w / b) ** 2 <= 1.0
            if combine == "paint":
                img[inside] = v
            else:
                img[inside] += v
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
