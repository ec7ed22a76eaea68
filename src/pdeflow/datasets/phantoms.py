"""Generated volumes: a ball (the TV-flow eigenfunction in 3-D), ellipsoids and the 3-D Shepp-Logan phantom.

Every function returns one volume as a tensor of shape ``(D, H, W)`` (the shape
:func:`pdeflow.io.read_volume` returns; add ``[None]`` for a channel axis),
axis 0 the slice (z), 1 the row (y), 2 the column (x). A voxel takes a shape's
value when its *centre* lies inside the shape (no partial-volume averaging), so
the volumes are piecewise constant with sharp edges. Nothing is random and
nothing is downloaded.

Coordinates
-----------
:func:`ball` works in voxel units, or in physical units (millimetres, say) when a
``spacing`` ``(dz, dy, dx)`` is given: voxel ``(i, j, k)`` has its centre at
``(i dz, j dy, k dx)``. :func:`ellipsoids` and :func:`shepp_logan_3d` use the
normalised cube ``[-1, 1]^3`` of the phantom literature, sampled at voxel centres
``-1 + (2 i + 1) / n`` along each axis, with ``x`` to the right (increasing column),
``y`` upwards (row 0 is the top, ``y`` near +1) and ``z`` increasing with the slice
index, so that a slice looks like the familiar head section.

References
----------
.. [1] A. C. Kak, M. Slaney, "Principles of Computerized Tomographic Imaging", IEEE Press, 1988
       (the ellipsoid table of the 3-D Shepp-Logan head phantom, Chapter 3, p. 102).
.. [2] L. A. Shepp, B. F. Logan, "The Fourier reconstruction of a head section", IEEE Transactions on
       Nuclear Science 21(3), 1974.
.. [3] H. Yu, Y. Ye, G. Wang, "Katsevich-type algorithms for variable radius spiral cone-beam CT",
       Proc. SPIE 5535, 2004 (the higher-contrast grey levels of ``modified=True``).
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch

from ..errors import UserInputError

__all__ = ["ball", "ellipsoids", "shepp_logan_3d"]

# Kak & Slaney's 3-D Shepp-Logan head phantom [1]: centre (x0, y0, z0), semi-axes (a, b, c) along x', y', z,
# rotation phi (degrees) of (a, b) about the z axis, from x towards y; and the grey levels, Kak & Slaney's
# (relative to water, ``modified=False``) and Yu, Ye & Wang's higher-contrast ones [3] (``modified=True``).
_SL3D_GEOMETRY = (
    # x0      y0      z0      a       b      c      phi
    (0.00, 0.000, 0.000, 0.6900, 0.920, 0.900, 0.0),
    (0.00, 0.000, 0.000, 0.6624, 0.874, 0.880, 0.0),
    (-0.22, 0.000, -0.250, 0.4100, 0.160, 0.210, 108.0),
    (0.22, 0.000, -0.250, 0.3100, 0.110, 0.220, 72.0),
    (0.00, 0.350, -0.250, 0.2100, 0.250, 0.500, 0.0),
    (0.00, 0.100, -0.250, 0.0460, 0.046, 0.046, 0.0),
    (-0.08, -0.650, -0.250, 0.0460, 0.023, 0.020, 0.0),
    (0.06, -0.650, -0.250, 0.0460, 0.023, 0.020, 90.0),
    (0.06, -0.105, 0.625, 0.0560, 0.040, 0.100, 90.0),
    (0.00, 0.100, 0.625, 0.0560, 0.056, 0.100, 0.0),
)
_SL3D_ORIGINAL = (2.0, -0.98, -0.02, -0.02, 0.02, 0.02, 0.01, 0.01, 0.02, -0.02)
_SL3D_MODIFIED = (1.0, -0.8, -0.2, -0.2, 0.2, 0.2, 0.1, 0.1, 0.2, -0.2)


def _shape3(shape, who: str) -> tuple[int, int, int]:
    if isinstance(shape, Integral) and not isinstance(shape, bool):
        shape = (int(shape),) * 3
    if (not isinstance(shape, (tuple, list)) or len(shape) != 3
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise UserInputError(f"{who}: shape must be a positive int or a triple (D, H, W) of them, got {shape!r}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def _triple(value, who: str, name: str, *, positive: bool = False) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) and (v > 0 or not positive) for v in out):
        raise UserInputError(f"{who}: {name} must be three finite{' positive' if positive else ''} numbers "
                             f"(z, y, x), got {value!r}")
    return out


def _number(value, who: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise UserInputError(f"{who}: {name} must be a finite number, got {value!r}")
    return float(value)


def ball(shape, radius: float, *, center=None, spacing=None, height: float = 1.0, background: float = 0.0,
         dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Volume of one ball: ``height`` inside, ``background`` outside.

    The indicator of a ball is an eigenfunction of the TV subdifferential in
    3-D: under the TV flow its height moves towards the background linearly, at
    the rate surface/volume (``3 / radius`` in the continuum), until it meets
    the background.

    Parameters
    ----------
    shape : int or (int, int, int)
        ``(D, H, W)`` in voxels (an int: a cube).
    radius : float
        Radius, in voxels, or in the units of ``spacing`` when it is given; a
        voxel belongs to the ball when its centre is at distance ``<= radius``
        from ``center``.
    center : (float, float, float), optional
        ``(z, y, x)`` in the same units as ``radius`` (voxel ``(i, j, k)`` is at
        ``(i dz, j dy, k dx)``); default the centre of the volume.
    spacing : (float, float, float), optional
        Voxel spacing ``(dz, dy, dx)``; default unit (voxel units).
    height, background : float, optional
        Values inside and outside.
    dtype, device : optional
        Of the returned tensor.

    Returns
    -------
    Tensor, shape (D, H, W)

    Examples
    --------
    >>> from pdeflow.datasets.phantoms import ball
    >>> b = ball(9, 3.0)
    >>> b.shape, int(b.sum()), float(b[4, 4, 4]), float(b[0, 0, 0])
    (torch.Size([9, 9, 9]), 123, 1.0, 0.0)
    >>> int(ball((5, 20, 20), 4.0, spacing=(2.5, 0.5, 0.5)).sum())   # 4 mm on 2.5 x 0.5 x 0.5 mm voxels
    448
    """
    who = "ball"
    D, H, W = _shape3(shape, who)
    if isinstance(radius, bool) or not isinstance(radius, Real) or not math.isfinite(radius) or radius <= 0:
        raise UserInputError(f"{who}: radius must be a positive number, got {radius!r}")
    h = (1.0, 1.0, 1.0) if spacing is None else _triple(spacing, who, "spacing", positive=True)
    c = (tuple((n - 1) / 2 * hk for n, hk in zip((D, H, W), h)) if center is None
         else _triple(center, who, "center"))
    z, y, x = (np.arange(n, dtype=np.float64) * hk - ck for n, hk, ck in zip((D, H, W), h, c))
    r2 = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2
    vol = np.where(r2 <= float(radius) ** 2, _number(height, who, "height"), _number(background, who, "background"))
    return torch.as_tensor(vol, dtype=dtype, device=device)


def _centres(n: int) -> np.ndarray:
    """Voxel centres of ``n`` cells covering [-1, 1]."""
    return -1.0 + (2.0 * np.arange(n, dtype=np.float64) + 1.0) / n


def ellipsoids(shape, table, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Volume that is the sum of ellipsoid indicators times their values, in the normalised cube ``[-1, 1]^3``.

    Parameters
    ----------
    shape : int or (int, int, int)
        ``(D, H, W)`` in voxels.
    table : sequence of rows ``(value, x0, y0, z0, a, b, c, phi)``
        One ellipsoid per row: its value (added where it covers a voxel
        centre), centre ``(x0, y0, z0)`` and semi-axes ``(a, b, c)`` in the
        normalised coordinates of the module docstring, and the rotation
        ``phi`` in degrees of the ``(a, b)`` axes about the z axis, from x
        towards y: a point is inside when ``x'^2/a^2 + y'^2/b^2 + z'^2/c^2 <= 1``
        with ``x' = dx cos(phi) + dy sin(phi)``, ``y' = -dx sin(phi) + dy cos(phi)``,
        ``z' = z - z0``, ``(dx, dy) = (x - x0, y - y0)``. Where ellipsoids
        overlap their values add (the phantom convention); the sums are
        rounded to 12 decimals.
    dtype, device : optional
        Of the returned tensor.

    Returns
    -------
    Tensor, shape (D, H, W)

    Examples
    --------
    >>> from pdeflow.datasets.phantoms import ellipsoids
    >>> v = ellipsoids(8, [(1.0, 0, 0, 0, 0.9, 0.5, 0.5, 0), (0.5, 0, 0, 0, 0.3, 0.3, 0.3, 0)])
    >>> v.shape, sorted(set(v.flatten().tolist()))
    (torch.Size([8, 8, 8]), [0.0, 1.0, 1.5])
    """
    who = "ellipsoids"
    D, H, W = _shape3(shape, who)
    try:
        rows = [tuple(float(v) for v in row) for row in table]
    except (TypeError, ValueError):
        rows = None
    if rows is None or not all(len(r) == 8 and all(math.isfinite(v) for v in r) for r in rows):
        raise UserInputError(f"{who}: table must be a sequence of rows (value, x0, y0, z0, a, b, c, phi) "
                             f"of finite numbers, got {table!r}")
    if any(min(r[4:7]) <= 0 for r in rows):
        raise UserInputError(f"{who}: the semi-axes (a, b, c) of every row of table must be > 0")
    z = _centres(D)[:, None, None]
    y = -_centres(H)[None, :, None]     # row 0 is the top: y near +1
    x = _centres(W)[None, None, :]
    vol = np.zeros((D, H, W))
    for value, x0, y0, z0, a, b, c, phi in rows:
        cos, sin = math.cos(math.radians(phi)), math.sin(math.radians(phi))
        dx, dy = x - x0, y - y0
        q = ((dx * cos + dy * sin) / a) ** 2 + ((-dx * sin + dy * cos) / b) ** 2 + ((z - z0) / c) ** 2
        vol += value * (q <= 1.0)
    # sums such as 1 - 0.8 - 0.2 are exactly the table's levels, not -5e-17
    return torch.as_tensor(np.round(vol, 12) + 0.0, dtype=dtype, device=device)


def shepp_logan_3d(shape, *, modified: bool = True, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The 3-D Shepp-Logan head phantom: Kak & Slaney's ten ellipsoids (1988) in ``[-1, 1]^3``.

    Parameters
    ----------
    shape : int or (int, int, int)
        ``(D, H, W)`` in voxels (an int: a cube).
    modified : bool, optional
        True (default): the higher-contrast grey levels of Yu, Ye & Wang (2004)
        (skull 1, brain 0.2, ventricles 0, values in [0, 1]), the usual test
        volume for denoising; False: Kak & Slaney's original levels (relative to
        water: skull 2, brain 1.02, lesions 1-2 % contrast).
    dtype, device : optional
        Of the returned tensor.

    Returns
    -------
    Tensor, shape (D, H, W)

    References
    ----------
    See the module docstring (Kak & Slaney 1988; Shepp & Logan 1974; Yu, Ye & Wang 2004).

    Examples
    --------
    >>> from pdeflow.datasets.phantoms import shepp_logan_3d
    >>> v = shepp_logan_3d(32)
    >>> v.shape, round(float(v.min()), 6), round(float(v.max()), 6), round(float(v[16, 16, 16]), 6)
    (torch.Size([32, 32, 32]), 0.0, 1.0, 0.2)
    """
    if modified not in (True, False):
        raise UserInputError(f"shepp_logan_3d: modified must be True or False, got {modified!r}")
    levels = _SL3D_MODIFIED if modified else _SL3D_ORIGINAL
    table = [(v, *g) for v, g in zip(levels, _SL3D_GEOMETRY)]
    return ellipsoids(_shape3(shape, "shepp_logan_3d"), table, dtype=dtype, device=device)
