"""The small U-Net shared by the mask network (:mod:`~pdeflow.inpaint.learned.masknet`) and the residual
inpainter (:mod:`~pdeflow.inpaint.learned.residual`)."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserInputError

__all__ = ["UNet", "TILE_SIZE", "check_tile_size"]

#: Default tile side of :meth:`UNet.tiled` in the learned masks and inpainting (memory for one tile instead of
#: the image).
TILE_SIZE = 512


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
        # channels-last weights and activations: faster CPU convolutions (results page "Sparse inpainting",
        # "Implementation choices"); loading a state dict keeps the layout; save_model stores contiguous copies
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

    @property
    def margin(self) -> int:
        """:attr:`receptive_radius` rounded up to the pooling factor: how far :meth:`tiled` reads around a tile
        (28 pixels for three levels).

        Examples
        --------
        >>> from pdeflow.inpaint.learned.unet import UNet
        >>> UNet(3, 1, (4, 8, 16)).margin
        28
        """
        fac = self.factor
        return -(-self.receptive_radius // fac) * fac

    def tiled(self, x: torch.Tensor, tile_size: int | None) -> torch.Tensor:
        """``self(x)`` computed on tiles of about ``tile_size`` pixels a side: each axis cut into equal tiles,
        as many as fit it best, rounded up to a multiple of the pooling factor (a 3840 x 2160 image at 512
        takes 8 x 4 tiles of 480 x 540), each read with a margin of :attr:`margin` and kept in its interior.
        The result equals the untiled one to round-off; the activations (16-64 channels per pixel) take
        memory for one tile instead of the image. None, or an image no larger than a tile: in one piece.

        Examples
        --------
        >>> import torch
        >>> from pdeflow.inpaint.learned.unet import UNet
        >>> net = UNet(2, 1, (4, 8, 16)).double()
        >>> _ = torch.nn.init.normal_(net.out.weight)
        >>> x = torch.rand(1, 2, 70, 90, dtype=torch.float64)
        >>> bool((net.tiled(x, 32) - net(x)).abs().max() < 1e-12)
        True
        """
        fac = self.factor
        H, W = x.shape[-2:]
        if tile_size is None or (H <= tile_size and W <= tile_size):
            return self(x)
        ph, pw = (-H) % fac, (-W) % fac
        # padded once as forward pads the whole image, so every tile is a multiple of the factor
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        Hp, Wp = xp.shape[-2:]
        th, tw = _tile_side(Hp, tile_size, fac), _tile_side(Wp, tile_size, fac)
        mg = self.margin
        out = x.new_empty(x.shape[0], self.out.out_channels, Hp, Wp)
        for y0 in range(0, Hp, th):
            for x0 in range(0, Wp, tw):
                y1, x1 = min(y0 + th, Hp), min(x0 + tw, Wp)
                a, b = max(y0 - mg, 0), max(x0 - mg, 0)
                piece = self(xp[..., a:min(y1 + mg, Hp), b:min(x1 + mg, Wp)])
                out[..., y0:y1, x0:x1] = piece[..., y0 - a:y1 - a, x0 - b:x1 - b]
        return out[..., :H, :W]

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
            # the sides are multiples of the factor, so each level is exactly twice the one below: the same values
            # as size=s.shape[-2:], and torch's CPU kernel for a scale factor is the faster one (results page
            # "Sparse inpainting", "Implementation choices")
            x = blk[1:](_conv_concat(blk[0], F.interpolate(x, scale_factor=2, mode="bilinear",
                                                             align_corners=False), s))
        return self.out(x)[..., :H, :W].contiguous()


def check_tile_size(tile_size, who: str) -> None:
    """Refuse a ``tile_size`` (of :meth:`UNet.tiled`) other than None or an int >= 16, naming ``who``.

    Examples
    --------
    >>> from pdeflow.inpaint.learned.unet import check_tile_size
    >>> check_tile_size(512, "learned_mask")             # None or an int >= 16: nothing to say
    >>> check_tile_size(8, "learned_mask")
    Traceback (most recent call last):
    ...
    pdeflow.errors.UserInputError: learned_mask: tile_size must be None or an int >= 16 (pixels), got 8
    """
    if tile_size is not None and (isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 16):
        raise UserInputError(f"{who}: tile_size must be None or an int >= 16 (pixels), got {tile_size!r}")


def _tile_side(n: int, tile_size: int, fac: int) -> int:
    """The side of the tiles along an axis of ``n`` pixels (a multiple of ``fac``): the axis cut into the number
    of tiles of ``tile_size`` nearest to fitting it, in equal parts. Each cut costs two margins of network work,
    so a 2160-pixel axis takes 4 tiles of 540 rather than 5 of 512 and a sliver."""
    count = max(1, round(n / tile_size))
    side = -(-n // count)                   # ceil(n / count)
    return -(-side // fac) * fac            # rounded up to the pooling grid


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
