"""Small local filters shared by the inpainting operators, the mask methods and the codec: the Gaussian
``G_sigma * f`` (EED's presmoothing, the analytic density, the snapping score's local mean, the error maps of
densification), the box mean that standardises the mask network's inputs (mirrored boundary, as the density of
Belhachmi et al. 2009 is defined on the image domain), and the 3 x 3 maximum by which densification and
refinement find local maxima."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import UserInputError
from .ops import correlate1d

__all__ = ["gaussian_window", "gaussian_blur", "box_mean", "max3x3"]


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5, *, dtype=None, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian window as used by ``scipy.ndimage.gaussian_filter``.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels, positive.
    truncate : float
        The window has radius ``r = int(truncate * sigma + 0.5)`` pixels.

    Returns
    -------
    Tensor, shape (2 r + 1,)
        Weights ``exp(-k**2 / (2 sigma**2))`` for ``k = -r..r``, summing to one.

    Examples
    --------
    >>> from pdeflow.filters import gaussian_window
    >>> gaussian_window(1.0, 2.0)
    tensor([0.0545, 0.2442, 0.4026, 0.2442, 0.0545])
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise UserInputError(f"gaussian_window: sigma must be positive, got {sigma}")
    if not (truncate > 0 and math.isfinite(truncate)):
        raise UserInputError(f"gaussian_window: truncate must be positive, got {truncate}")
    r = int(truncate * sigma + 0.5)
    k = torch.arange(-r, r + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    w = w / w.sum()
    return w.to(dtype=dtype or torch.get_default_dtype(), device=device)


def gaussian_blur(f: torch.Tensor, sigma) -> torch.Tensor:
    """``G_sigma * f`` per channel of ``(B, C, H, W)``: separable Gaussian (radius ``int(3.5 sigma + 0.5)``),
    mirrored boundary (edge pixel not repeated; the window is cut to the image for tiny images).

    A volume batch ``(B, C, D, H, W)`` is smoothed along all three axes the same way; ``sigma`` is then a
    number or ``(sz, sy, sx)`` in voxels per axis (anisotropic voxels: the physical sigma over the spacing).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.filters import gaussian_blur
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
    spatial = f.dim() - 2
    sigmas = tuple(sigma) if isinstance(sigma, (tuple, list)) else (sigma,) * spatial
    x = f
    for axis, s in enumerate(sigmas):
        x = _blur_axis(x, s, 2 + axis)
    return x


def _blur_axis(x: torch.Tensor, sigma: float, dim: int) -> torch.Tensor:
    """The 1-D Gaussian of ``sigma`` along ``dim`` of ``x``, mirrored boundary (:func:`pdeflow.ops.correlate1d`
    of the mirrored array: shifted sums, not a slow one-channel convolution)."""
    n = x.shape[dim]
    if sigma == 0 or n < 2:
        return x
    win = gaussian_window(sigma, dtype=x.dtype, device=x.device)
    r = win.numel() // 2
    ra = min(r, n - 1)
    w = win[r - ra:r + ra + 1] / win[r - ra:r + ra + 1].sum()
    return correlate1d(_mirror(x, dim, ra, ra), w, dim)


def box_mean(f: torch.Tensor, width: int) -> torch.Tensor:
    """Mean of ``(B, C, H, W)`` over the ``width x width`` window around each pixel (mirrored boundary, edge
    pixel not repeated); along an axis no longer than ``width``, the mean over the whole axis.

    So an image of at most ``width`` pixels a side gets its own mean everywhere, and a larger one the mean
    of the neighbourhood of that size: computed by cumulative sums in float64, in time linear in the image
    whatever ``width``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.filters import box_mean
    >>> f = torch.arange(12.0).reshape(1, 1, 3, 4)
    >>> bool(torch.equal(box_mean(f, 4), f.mean().expand_as(f)))     # no side above the window: the mean
    True
    >>> box_mean(torch.tensor([[[[0.0, 0.0, 3.0, 0.0, 0.0]]]]), 3)[0, 0, 0].tolist()
    [0.0, 1.0, 1.0, 1.0, 0.0]
    """
    x = f.double()
    for dim in (2, 3):
        n = x.shape[dim]
        if n <= width:
            x = x.mean(dim, keepdim=True).expand_as(x)
            continue
        lo = width // 2
        hi = width - 1 - lo
        c = _cumsum_(_mirror(x, dim, lo, hi), dim)
        # the window sum at i is c[i + width - 1] - c[i - 1] (c[-1] = 0), formed in place
        out = c.narrow(dim, width - 1, n).clone()
        out.narrow(dim, 1, n - 1).sub_(c.narrow(dim, 0, n - 1))
        x = out.div_(width)
    return x.to(f.dtype).contiguous()


def _cumsum_(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x.cumsum(dim)``. Along an axis other than the last, a running sum of whole slices, in place: torch's
    CPU cumsum along a strided axis is slower than along the contiguous one (the results page "Sparse
    inpainting" has the timing at 4K)."""
    if dim == x.dim() - 1 or x.shape[dim] < 2:
        return x.cumsum(dim)
    for i in range(1, x.shape[dim]):
        x.select(dim, i).add_(x.select(dim, i - 1))
    return x


def _mirror(x: torch.Tensor, dim: int, lo: int, hi: int) -> torch.Tensor:
    """``x`` extended by ``lo`` and ``hi`` mirrored samples before and after along ``dim`` (edge not repeated)."""
    n = x.shape[dim]
    return torch.cat([x.narrow(dim, 1, lo).flip(dim), x, x.narrow(dim, n - 1 - hi, hi).flip(dim)], dim)


def max3x3(x: torch.Tensor) -> torch.Tensor:
    """The maximum over each pixel's 3 x 3 neighbourhood of ``x`` (..., H, W), the outside of the image ignored:
    the values of ``F.max_pool2d(x, 3, stride=1, padding=1)``, as two separable passes of shifted maxima
    (torch's CPU max pooling is slow with stride 1).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.filters import max3x3
    >>> x = torch.zeros(1, 1, 3, 4)
    >>> x[0, 0, 0, 0] = 1.0
    >>> max3x3(x)
    tensor([[[[1., 1., 0., 0.],
              [1., 1., 0., 0.],
              [0., 0., 0., 0.]]]])
    """
    p = F.pad(x, (1, 1, 1, 1), value=-math.inf)
    rows = torch.maximum(torch.maximum(p[..., :, :-2], p[..., :, 1:-1]), p[..., :, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])
