"""A grey TVflowNET run on each channel of a colour image: the channelwise flow, the baseline of a colour model."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UserInputError
from .wrapper import ModelWrapper

__all__ = ["PerChannel"]


class PerChannel(ModelWrapper):
    """Run a grey model on every channel of ``(B, C, H, W)`` images as ``B * C`` grey images.

    The channelwise TV flow's network; a colour model (``in_channels=3``) learns the coupled colour flow, and
    ``pdeflow evaluate tvflownet --per-channel`` scores both against it.

    Parameters
    ----------
    model : nn.Module
        A grey TVflowNET model (``in_channels`` 1), e.g. ``load("unet")``.
    channels : int
        The channels of the images it takes (default 3).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import PerChannel, SemiResNet
    >>> net = SemiResNet(width=4, depth=3)
    >>> x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> u, phi = PerChannel(net)(x, torch.tensor([0.1, 0.4]))
    >>> u.shape, phi.shape, bool(torch.allclose(u[1, 2], net(x[1:2, 2:3], 0.4)[0][0, 0], atol=1e-6))
    (torch.Size([2, 3, 8, 8]), torch.Size([2, 3, 2, 8, 8]), True)
    """

    def __init__(self, model: nn.Module, channels: int = 3):
        super().__init__()
        if getattr(model, "in_channels", 1) != 1:
            raise UserInputError(f"model: PerChannel runs a grey model (in_channels 1), got in_channels "
                                 f"{model.in_channels}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise UserInputError(f"channels must be an int >= 1, got {channels!r}")
        self.model, self.channels = model, channels

    @property
    def in_channels(self) -> int:
        return self.channels

    def extra_repr(self) -> str:
        return f"channels={self.channels}"

    def forward(self, u0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        if u0.dim() != 4 or u0.shape[1] != self.channels:
            raise UserInputError(f"u0 must have shape (B, {self.channels}, H, W), got {tuple(u0.shape)}")
        B, C, H, W = u0.shape
        if torch.is_tensor(t) and t.dim() > 0:
            t = t.reshape(-1).repeat_interleave(C)       # each image's time for each of its channels
        u, phi = self.model(u0.reshape(B * C, 1, H, W), t)
        return u.reshape(B, C, H, W), phi.reshape(B, C, 2, H, W)
