"""The U-Net of the IEL paper's experiments (Liu et al., 2023, section 3.2.1).

Depth 5 (four 2x2 max-pool downsamplings, four 2x2 transposed-convolution
upsamplings with skip connections), each level two 3x3 convolutions
(no bias) each followed by InstanceNorm (no affine parameters, as
``nn.InstanceNorm2d``'s default) and LeakyReLU(0.01); a 1x1 convolution to the
class logits. ``width=64`` gives the paper's 64-128-256-512-1024 channels
(about 31 M parameters); a smaller ``width`` (8, 16) keeps the same design for
CPU runs. Input sides must be divisible by ``2**(depth - 1)``.

References
----------
.. [1] C. Liu, Z. Qiao, C. Li, C.-B. Schönlieb, "Inverse evolution layers: physics-informed regularizers
       for deep neural networks", arXiv:2307.07344, 2023.
"""
from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

from ..errors import UserInputError

__all__ = ["SegmentationUNet"]


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.01),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.InstanceNorm2d(cout), nn.LeakyReLU(0.01),
        )


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = _DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class SegmentationUNet(nn.Module):
    """U-Net with InstanceNorm and LeakyReLU, returning logits.

    Input ``(B, in_channels, H, W)`` with ``H, W`` divisible by
    ``2**(depth-1)``; output ``(B, num_classes, H, W)`` logits.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for greyscale).
    num_classes : int
        Output logit channels (2 for foreground/background).
    width : int
        Channels of the first level; level ``k`` has ``width * 2**k`` (paper: 64).
    depth : int
        Number of levels, >= 2 (paper: 5).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import SegmentationUNet
    >>> net = SegmentationUNet(in_channels=1, num_classes=2, width=4, depth=2)
    >>> net(torch.zeros(1, 1, 16, 16)).shape
    torch.Size([1, 2, 16, 16])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 64, depth: int = 5):
        super().__init__()
        for name, v, lo in (("in_channels", in_channels, 1), ("num_classes", num_classes, 1),
                            ("width", width, 1), ("depth", depth, 2)):
            if isinstance(v, bool) or not isinstance(v, Integral) or v < lo:
                raise UserInputError(f"SegmentationUNet: {name} must be an int >= {lo}, got {v!r}")
        self.in_channels, self.num_classes, self.width, self.depth = in_channels, num_classes, width, depth
        chans = [width * 2 ** k for k in range(depth)]
        self.inc = _DoubleConv(in_channels, chans[0])
        self.downs = nn.ModuleList(_DoubleConv(chans[k], chans[k + 1]) for k in range(depth - 1))
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList(_Up(chans[k + 1], chans[k]) for k in reversed(range(depth - 1)))
        self.outc = nn.Conv2d(chans[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise UserInputError(f"SegmentationUNet: input must have shape (B, {self.in_channels}, H, W), "
                                 f"got {tuple(x.shape)}")
        m = 2 ** (self.depth - 1)
        if x.shape[-2] % m or x.shape[-1] % m:
            raise UserInputError(f"SegmentationUNet: input height and width must be divisible by {m} "
                                 f"(depth {self.depth}), got {x.shape[-2]}x{x.shape[-1]}")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        h = skips.pop()
        for up in self.ups:
            h = up(h, skips.pop())
        return self.outc(h)
