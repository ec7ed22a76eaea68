"""The base of the modules that wrap a TVflowNET model (``Equivariant``, ``Tiled``, ``PerChannel``, ...)."""
from __future__ import annotations

from torch import nn

__all__ = ["ModelWrapper"]


class ModelWrapper(nn.Module):
    """A module around ``self.model`` that shows the inner model's description (``meta``, ``in_channels``), so
    that it can stand in for it; a wrapper that changes what it takes overrides ``in_channels``.

    Examples
    --------
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.wrapper import ModelWrapper
    >>> w = ModelWrapper()
    >>> w.model = SemiResNet(in_channels=3)
    >>> w.in_channels, w.meta
    (3, None)
    """

    @property
    def meta(self):
        return getattr(self.model, "meta", None)

    @property
    def in_channels(self):
        return getattr(self.model, "in_channels", None)
