"""The Gaussian smoothing of the mask methods: the analytic density's ``G_sigma * f`` and the snapping score's
local mean (mirrored boundary, as the density of Belhachmi et al. 2009 is defined on the image domain)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...metrics import gaussian_window

__all__ = ["gaussian_blur"]


def gaussian_blur(f: torch.Tensor, sigma) -> torch.Tensor:
    """``G_sigma * f`` per channel of ``(B, C, H, W)``: separable Gaussian (radius ``int(3.5 sigma + 0.5)``),
    mirrored boundary (edge pixel not repeated; the window is cut to the image for tiny images).

    A volume batch ``(B, C, D, H, W)`` is smoothed along all three axes the same way; ``sigma`` is then a
    number or ``(sz, sy, sx)`` in voxels per axis (anisotropic voxels: the physical sigma over the spacing).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.blur import gaussian_blur
    >>> f = torch.zeros(1, 1, 15, 15, dtype=torch.float64)
    >>> f[0, 0, 7, 7] = 1.0                              # far enough from the boundary
    >>> g = gaussian_blur(f, 1.0)
    >>> g.shape, round(float(g.sum()), 6), bool(g[0, 0, 7, 7] == g.max())
    (torch.Size([1, 1, 15, 15]), 1.0, True)
    >>> v = torch.zeros(1, 1, 15, 15, 15, dtype=torch.float64)
    >>> v[0, 0, 7, 7, 7] = 1.0                           # a volume (B, C, D, H, W)
    >>> round(float(gaussian_blur(v, 1.0).sum()), 6)
    1.0
    """
    if f.dim() == 5:
        return _blur_volume(f, (sigma,) * 3 if isinstance(sigma, (int, float)) else tuple(sigma))
    if sigma == 0:
        return f
    win = gaussian_window(sigma, dtype=f.dtype, device=f.device)
    r = win.numel() // 2
    B, C, H, W = f.shape
    x = f.reshape(B * C, 1, H, W)
    ry, rx = min(r, H - 1), min(r, W - 1)
    wy = win[r - ry:r + ry + 1] / win[r - ry:r + ry + 1].sum()
    wx = win[r - rx:r + rx + 1] / win[r - rx:r + rx + 1].sum()
    x = F.conv2d(F.pad(x, (0, 0, ry, ry), mode="reflect") if ry else x, wy.view(1, 1, -1, 1))
    x = F.conv2d(F.pad(x, (rx, rx, 0, 0), mode="reflect") if rx else x, wx.view(1, 1, 1, -1))
    return x.reshape(B, C, H, W)


def _blur_volume(f: torch.Tensor, sigmas) -> torch.Tensor:
    """Separable Gaussian along D, H and W of ``(B, C, D, H, W)`` (``sigmas`` per axis, voxels), mirrored."""
    B, C, D, H, W = f.shape
    x = f.reshape(B * C, 1, D, H, W)
    for axis, s in enumerate(sigmas):
        n = x.shape[2 + axis]
        if s == 0 or n < 2:
            continue
        win = gaussian_window(s, dtype=f.dtype, device=f.device)
        r = win.numel() // 2
        ra = min(r, n - 1)
        w = win[r - ra:r + ra + 1] / win[r - ra:r + ra + 1].sum()
        pad = [0] * 6
        pad[4 - 2 * axis] = pad[5 - 2 * axis] = ra     # F.pad lists the last axis first
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = -1
        x = F.conv3d(F.pad(x, pad, mode="reflect"), w.view(shape))
    return x.reshape(B, C, D, H, W)
