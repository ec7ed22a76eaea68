"""The reconstruction loss that trains the mask network and the residual inpainter (Charbonnier plus SSIM)."""
from __future__ import annotations

import torch

from ...metrics import ssim

__all__ = ["charbonnier", "reconstruction_loss", "loss_scores"]


def charbonnier(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean Charbonnier loss ``sqrt((x - y)^2 + eps^2) - eps`` (a smooth MAE).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.losses import charbonnier
    >>> round(float(charbonnier(torch.ones(4), torch.zeros(4), eps=0.0)), 6)
    1.0
    """
    return (torch.sqrt((x - y) ** 2 + eps * eps) - eps).mean()


def reconstruction_loss(u: torch.Tensor, f: torch.Tensor, ssim_weight: float
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``charbonnier(u, f) + ssim_weight (1 - SSIM(u, f))``, the loss that trains the mask network and the
    residual inpainter, and its detached terms ``charbonnier``, ``ssim`` (mean SSIM) and ``mae``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.losses import reconstruction_loss
    >>> f = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> loss, terms = reconstruction_loss(f, f, 0.1)
    >>> float(loss), sorted(terms)
    (0.0, ['charbonnier', 'mae', 'ssim'])
    """
    char = charbonnier(u, f)
    s = ssim(u, f, data_range=1.0).mean()      # images in [0, 1]; u may overshoot by round-off
    return char + ssim_weight * (1 - s), {"charbonnier": char.detach(), "ssim": s.detach(),
                                          "mae": (u - f).abs().mean().detach()}


def loss_scores(loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """A :func:`reconstruction_loss` as the numbers its trainers log: ``loss``, ``mae255`` (MAE on 0-255), ``ssim``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.losses import loss_scores, reconstruction_loss
    >>> f = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> loss_scores(*reconstruction_loss(f, f, 0.1))
    {'loss': 0.0, 'mae255': 0.0, 'ssim': 1.0}
    """
    return {"loss": float(loss.detach()), "mae255": 255 * float(terms["mae"]), "ssim": float(terms["ssim"])}
