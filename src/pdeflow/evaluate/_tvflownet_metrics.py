"""The metrics of the TVflowNET evaluation (:mod:`pdeflow.evaluate.tvflownet`): the paper's PSNR of a
stack of frames and SSIM of each frame, the two reported beside them, and their statistics per table."""
from __future__ import annotations

import torch

from .. import metrics
from ..errors import UserInputError
from ..reporting import mean_std
from .tvflownet_paper import PSNR_CAP

#: How each metric is computed: the one place that decides it.  Every column compared with the
#: paper's numbers uses :data:`PAPER_METRICS`, the official test code's (``eval_all.py``): the PSNR of
#: each image's whole stack of frames (one MSE over all its times, scikit-image's
#: ``peak_signal_noise_ratio`` on the stack) and the SSIM of each frame by scikit-image's default
#: ``structural_similarity`` (7x7 uniform window, sample covariance), both with ``data_range = 1``.
#: The other two are reported beside them, labelled: the per-frame PSNR and the Gaussian-window SSIM
#: of :func:`pdeflow.metrics.ssim`'s default (pdeflow's earlier reports used these two).
METRICS = {
    "psnr": "PSNR of each image's stack of frames (one MSE over all its times), mean ± std over images",
    "psnr_frames": "PSNR of each frame, mean ± std over images and times",
    "ssim": "SSIM of each frame, scikit-image's default structural_similarity (7×7 uniform window, "
            "sample covariance), mean ± std over images and times",
    "ssim_gaussian": "SSIM of each frame, Gaussian window σ = 1.5 (11×11), population covariance "
                     "(pdeflow.metrics.ssim's default), mean ± std over images and times",
}
#: The metrics of the paper's tables (Grossmann et al., 2022; the official test code).
PAPER_METRICS = ("psnr", "ssim")
#: Keyword arguments of :func:`pdeflow.metrics.ssim` for each SSIM metric of :data:`METRICS`.
SSIM_VARIANTS = {
    "ssim": {"window": "uniform", "win_size": 7},
    "ssim_gaussian": {"window": "gaussian", "win_sigma": 1.5},
}


def _psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return metrics.psnr(x.double(), y.double(), data_range=1.0).clamp(max=PSNR_CAP)


def _ssim(x: torch.Tensor, y: torch.Tensor, variant: str = "ssim") -> torch.Tensor:
    # in the inputs' precision (float32 for network outputs and cached references:
    # within 1e-7 of float64, and twice as fast)
    dtype = torch.promote_types(x.dtype, y.dtype)
    return metrics.ssim(x.to(dtype), y.to(dtype), data_range=1.0, **SSIM_VARIANTS[variant])


def frame_metrics(x: torch.Tensor, y: torch.Tensor, *, ssim: str = "ssim",
                  chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """PSNR (capped at :data:`PSNR_CAP`) and SSIM, ``data_range = 1``, of every frame.

    ``x, y``: ``(..., C, H, W)`` stacks (e.g. (T, B, C, H, W)) already on the [0, 1]
    scale; returns two tensors of shape ``(...)``.  ``ssim``: a key of
    :data:`SSIM_VARIANTS` (default the paper's, scikit-image's default SSIM).  PSNR in
    float64, SSIM in the inputs' precision; ``chunk`` frames at a time (bounded memory).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.evaluate.tvflownet import frame_metrics
    >>> x = torch.zeros(3, 2, 1, 16, 16)                     # (T, B, C, H, W)
    >>> psnr, ssim = frame_metrics(x + 0.1, x)
    >>> psnr.shape, round(float(psnr[0, 0]), 4)
    (torch.Size([3, 2]), 20.0)
    """
    if x.shape != y.shape:
        raise UserInputError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if ssim not in SSIM_VARIANTS:
        raise UserInputError(f"ssim must be one of {tuple(SSIM_VARIANTS)}, got {ssim!r}")
    lead = x.shape[:-3]
    xf = x.reshape(-1, *x.shape[-3:])
    yf = y.reshape(-1, *y.shape[-3:])
    ps, ss = [], []
    for i in range(0, xf.shape[0], max(1, int(chunk))):
        a, b = xf[i:i + chunk], yf[i:i + chunk]
        ps.append(_psnr(a, b))
        ss.append(_ssim(a, b, ssim).double())
    return torch.cat(ps).reshape(lead), torch.cat(ss).reshape(lead)


def stack_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR (``data_range = 1``, capped at :data:`PSNR_CAP`) of each image's whole stack of frames.

    ``x, y``: ``(T, B, C, H, W)`` on the [0, 1] scale; returns ``(B,)``: one MSE over
    all times, channels and pixels of each image, as the official test code's
    ``peak_signal_noise_ratio`` on an image's stack.  ``(B, C, H, W)`` is one frame per image.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.evaluate.tvflownet import stack_psnr
    >>> x = torch.zeros(3, 2, 1, 16, 16)
    >>> y = x.clone()
    >>> y[0, 1] = 0.1                                        # image 1 differs at the first time
    >>> [round(v, 2) for v in stack_psnr(y, x).tolist()]
    [100.0, 24.77]
    """
    if x.shape != y.shape:
        raise UserInputError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() == 4:
        x, y = x[None], y[None]
    if x.dim() != 5:
        raise UserInputError(f"x must have shape (T, B, C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    T, B, C, H, W = x.shape
    out = [_psnr(x[:, b].reshape(1, T * C, H, W), y[:, b].reshape(1, T * C, H, W)) for b in range(B)]
    return torch.cat(out)


def metric_values(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of :data:`METRICS` of ``x`` against ``y`` ((T, B, C, H, W) or (B, C, H, W), [0, 1]
    scale), as a flat tensor of the values their mean and std are taken over."""
    p_frames, s_paper = frame_metrics(x, y, ssim="ssim")
    _, s_gauss = frame_metrics(x, y, ssim="ssim_gaussian")
    return {"psnr": stack_psnr(x, y), "psnr_frames": p_frames.reshape(-1), "ssim": s_paper.reshape(-1),
            "ssim_gaussian": s_gauss.reshape(-1)}


def metric_stats(x: torch.Tensor, y: torch.Tensor, prefix: str = "") -> dict[str, list[float]]:
    """``{prefix + metric: [mean, std]}`` for every metric of :data:`METRICS`."""
    return {prefix + k: mean_std(v) for k, v in metric_values(x, y).items()}


def compare(u, d, ref_u, ref_ut, scale) -> dict:
    """mean/std of every metric of :data:`METRICS` for u and div phi (both divided by ``scale``):
    keys ``u_psnr, u_psnr_frames, u_ssim, u_ssim_gaussian`` and the same with ``div_``."""
    return {**metric_stats(u / scale, ref_u / scale, "u_"), **metric_stats(d / scale, ref_ut / scale, "div_"),
            "n_images": int(u.shape[1]), "n_times": int(u.shape[0])}
