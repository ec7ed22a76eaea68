"""The error that :func:`~pdeflow.inpaint.masks.refine.refine_mask` minimises: :func:`image_loss`, and
:class:`Loss`, the same against a fixed image with its gradient by hand (the refinement's many evaluations)."""
from __future__ import annotations

import torch

from ...filters import gaussian_window
from ...metrics import ssim as _ssim

REFINE_METRICS = ("mse", "mae", "masknet")
SSIM_WEIGHT = 0.3   # the mask network's training loss: charbonnier + 0.3 (1 - SSIM)
EPS = 1e-3          # charbonnier's epsilon


def image_loss(u: torch.Tensor, f: torch.Tensor, metric: str = "mse") -> torch.Tensor:
    """Inpainting error per image ``(B,)`` of ``(B, C, H, W)`` tensors, differentiable.

    ``'mse'``: mean squared error; ``'mae'``: mean absolute error; ``'masknet'``:
    ``mean(sqrt(d^2 + 1e-6) - 1e-3) + 0.3 (1 - SSIM(u, f))``, the mask network's
    training loss (images at least 11 x 11).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.refine import image_loss
    >>> f = torch.zeros(2, 1, 4, 4)
    >>> image_loss(f + 0.5, f).tolist(), image_loss(f + 0.5, f, "mae").tolist()
    ([0.25, 0.25], [0.5, 0.5])
    """
    d = u - f
    if metric == "mse":
        return (d * d).flatten(1).mean(1)
    if metric == "mae":
        return d.abs().flatten(1).mean(1)
    if metric == "masknet":
        char = (torch.sqrt(d * d + EPS * EPS) - EPS).flatten(1).mean(1)
        return char + SSIM_WEIGHT * (1 - _ssim(u, f, data_range=1.0))
    raise ValueError(f"image_loss: metric must be one of {REFINE_METRICS}, got {metric!r}")


def ssim_map(ux, uxx, uxy, uy, vy, C1: float, C2: float):
    """``(smap, dsmap)``: the SSIM map from the windowed moments of ``u`` (mean ``ux``, ``E[u^2]`` ``uxx``,
    ``E[u f]`` ``uxy``) and of ``f`` (mean ``uy``, variance ``vy``), and a function giving its derivatives
    with respect to ``(ux, uxx, uxy)``.  Plain arithmetic: the tensor search and the NumPy search of one
    image (:class:`_Single`) share it."""
    a1 = 2 * ux * uy + C1
    a2 = 2 * (uxy - ux * uy) + C2
    b1 = ux * ux + uy * uy + C1
    b2 = (uxx - ux * ux) + vy + C2
    den = b1 * b2
    smap = a1 * a2 / den

    def dsmap():
        # d smap / d(ux, uxx, uxy) with N = a1 a2, D = b1 b2
        return 2 * (uy * (a2 - a1) - smap * ux * (b2 - b1)) / den, -smap * b1 / den, 2 * a1 / den

    return smap, dsmap


class Loss:
    """:func:`image_loss` against a fixed ``f`` (B, C, H, W), with its gradient ``dl/du`` by hand.

    The refinement evaluates the error of many inpaintings of one ``f`` and needs
    the gradient of few (accepted exchanges). Here the statistics of ``f`` in the
    SSIM windows are filtered once, an evaluation filters three maps instead of
    five (the separable window as two band-matrix products), and the gradient
    is the closed form of Wang et al.'s SSIM (the transposed filter on three
    maps) instead of an autograd graph of about forty nodes (the timing is on the
    results page "Sparse inpainting"). Equal to :func:`image_loss` and its autograd gradient to rounding
    (``tests/inpaint/test_inpaint_refine.py``).
    """

    def __init__(self, f: torch.Tensor, metric: str):
        if metric not in REFINE_METRICS:
            raise ValueError(f"image_loss: metric must be one of {REFINE_METRICS}, got {metric!r}")
        self.f, self.metric = f, metric
        if metric == "masknet":
            B, C, H, W = f.shape
            self.win = gaussian_window(1.5, 3.5, dtype=f.dtype, device=f.device)
            k = self.win.numel()
            self.gv, self.gh = self._band(H), self._band(W)
            self.uy, self.uyy = self._filter(torch.stack([f, f * f], 2)).unbind(2)
            self.vy = self.uyy - self.uy * self.uy
            self.C1, self.C2 = 0.01 ** 2, 0.03 ** 2        # K1, K2 of metrics.ssim, data range 1
            self.n_valid = C * (H - k + 1) * (W - k + 1)

    def _band(self, n: int) -> torch.Tensor:
        """The window's valid filter along an axis of ``n`` pixels as a (n - k + 1, n) band matrix."""
        k = self.win.numel()
        band = self.win.new_zeros(n - k + 1, n + 1)
        band[:, :k] = self.win                          # row i holds the window at columns i .. i + k - 1
        return band.view(-1)[:(n - k + 1) * n].view(n - k + 1, n)

    def _filter(self, stack: torch.Tensor) -> torch.Tensor:
        """The SSIM window's valid filter on (..., H, W) -> (..., H', W'): two small matrix products."""
        return self.gv @ stack @ self.gh.T

    def _filter_t(self, stack: torch.Tensor) -> torch.Tensor:
        """The transpose of :meth:`_filter`: (..., H', W') -> (..., H, W), as band-matrix products (cheaper than
        conv_transpose2d at these sizes)."""
        return self.gv.T @ stack @ self.gh

    def __call__(self, u: torch.Tensor):
        """``(l (B,), gradient)``: the error and a function returning ``dl/du`` (B, C, H, W)."""
        f, d = self.f, u - self.f
        n = d[0].numel()
        if self.metric == "mse":
            return (d * d).flatten(1).mean(1), lambda: d * (2.0 / n)
        if self.metric == "mae":
            return d.abs().flatten(1).mean(1), lambda: torch.sign(d) / n
        root = torch.sqrt(d * d + EPS * EPS)
        char = (root - EPS).flatten(1).mean(1)
        ux, uxx, uxy = self._filter(torch.stack([u, u * u, u * f], 2)).unbind(2)
        smap, dsmap = ssim_map(ux, uxx, uxy, self.uy, self.vy, self.C1, self.C2)
        err = char + SSIM_WEIGHT * (1 - smap.flatten(1).mean(1))

        def gradient():
            back = self._filter_t(torch.stack(dsmap(), 2) * (-SSIM_WEIGHT / self.n_valid))
            gu = back[:, :, 0] + 2 * u * back[:, :, 1] + f * back[:, :, 2]
            return gu.add_(d / root, alpha=1.0 / n)

        return err, gradient
