"""The small U-Net shared by the mask network (:mod:`~pdeflow.inpaint.learned.masknet`) and the residual
inpainter (:mod:`~pdeflow.inpaint.learned.residual`)."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """U-Net of the mask network and the residual inpainter: ``widths`` channels per level, max-pool down,
    bilinear up, skip concatenation; the output layer starts at zero (an untrained network adds nothing).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.unet import UNet
    >>> net = UNet(3, 1, (4, 8))
    >>> out = net(torch.rand(1, 3, 10, 10))
    >>> tuple(out.shape), float(out.detach().abs().max())
    ((1, 1, 10, 10), 0.0)
    """

    def __init__(self, cin: int, cout: int, widths: tuple[int, ...]):
        super().__init__()
        self.down = nn.ModuleList()
        c = cin
        for w in widths:
            self.down.append(_block(c, w))
            c = w
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.out = nn.Conv2d(widths[0], cout, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.factor = 2 ** (len(widths) - 1)
        # channels-last weights and activations: the CPU convolutions of one 64 x 64 image ran 1.4-1.6x
        # faster (loading a state dict keeps the layout; save_model stores contiguous copies)
        self.to(memory_format=torch.channels_last)

    @property
    def receptive_radius(self) -> int:
        """How far (pixels, along an axis) an output pixel looks into the input, at the worst offset from the
        pooling grid (it depends on the number of levels only).

        Examples
        --------
        >>> from pdeflow.inpaint.learned.unet import UNet
        >>> UNet(3, 1, (4, 8, 16)).receptive_radius          # the shipped mask networks' three levels
        26
        """
        return _receptive_radius(len(self.down))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        ph, pw = (-H) % self.factor, (-W) % self.factor
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = x.contiguous(memory_format=torch.channels_last)
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for blk in self.up:
            s = skips.pop()
            x = blk[1:](_conv_concat(blk[0], F.interpolate(x, size=s.shape[-2:], mode="bilinear",
                                                             align_corners=False), s))
        return self.out(x)[..., :H, :W].contiguous()


def _conv_concat(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``conv(torch.cat([a, b], 1))`` as the sum of ``conv``'s two halves applied to ``a`` and ``b``: the same
    weights and value, without the concatenated copy (a channels-last concatenation costs a third of the
    convolution it feeds on a CPU)."""
    ca = a.shape[1]
    w = conv.weight
    return (F.conv2d(a, w[:, :ca], conv.bias, padding=conv.padding)
            .add_(F.conv2d(b, w[:, ca:], None, padding=conv.padding)))


@functools.lru_cache
def _receptive_radius(levels: int) -> int:
    """:attr:`UNet.receptive_radius` of ``levels`` levels: a unit impulse pushed through a one-channel U-Net of
    that depth with positive weights and no biases, where nothing cancels, so an output is nonzero exactly
    where the impulse can reach it; one impulse per offset from the pooling grid."""
    probe = UNet(1, 1, (1,) * levels).double()
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(m.weight.abs() + 1.0)
                m.bias.zero_()
        fac = probe.factor
        n = 20 * fac                                # the reach is under 8 factors at any depth: no clipping
        c = n // 2
        x = torch.zeros(fac * fac, 1, n, n, dtype=torch.float64)
        for k in range(fac * fac):
            x[k, 0, c + k // fac, c + k % fac] = 1.0
        reached = probe(x)[:, 0] > 0
    radius = 0
    for k in range(fac * fac):
        ii, jj = reached[k].nonzero(as_tuple=True)
        radius = max(radius, int((ii - c - k // fac).abs().max()), int((jj - c - k % fac).abs().max()))
    return radius
