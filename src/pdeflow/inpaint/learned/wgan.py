"""The inpainting WGAN of Vasata et al. as used by Peter (2022, §2): generator, critic, losses.

Architecture (from the authors' Keras code, see docs/REFERENCES.md), with every
channel count multiplied by ``width`` (``width=1`` is the published size;
smaller widths make CPU training feasible and are recorded in a model's JSON):

* **Generator** :class:`InpaintingGenerator` -- input ``f * c``, the mask
  ``c`` and noise ``N(0, noise_std)`` in the missing pixels (``2 C + 1``
  channels). An hourglass of three encoder :class:`CBlock` s (three parallel
  5x5 convolutions with dilations 2, 5, 1 and 32/32/64, 32/32/64, 64/64/128
  channels, ELU, concatenated, then 2x2 max-pooling), a bottleneck block
  (128/128/256), three decoder :class:`TCBlock` s (2x2 nearest upsampling,
  concatenation with the encoder output of that scale, three parallel 5x5
  transposed convolutions, 64/64/128, 32/32/64, 32/32/64; the last one
  without upsampling, concatenated with the input) and two 3x3 transposed
  convolutions (8 channels with ELU, then ``C`` with the hard sigmoid
  ``clip(0.2 x + 0.5, 0, 1)`` of Keras). Height and width must be multiples
  of 8; :func:`pad_to_multiple` pads other sizes.
* **Critic** :class:`Critic` -- image and mask in, five 5x5 stride-2
  convolutions (64, 128, 256, 256, 512 channels) each followed by a LeakyReLU
  (slope 0.3, Keras' default), flattened, one linear unit. After every
  optimiser step :meth:`Critic.clip_kernel_norms` rescales every kernel
  (convolutions and the linear layer, not the biases) to L2 (Frobenius) norm
  at most 1, as the Keras ``kernel_constraint`` did: the crude Lipschitz
  bound the Wasserstein loss needs. Deviation: the convolutions are padded by
  2 (Keras: no padding), so that 64x64 crops still leave a 2x2 map after five
  stride-2 steps; the critic is built for one input size (``size``).

Conventions: images ``(B, C, H, W)`` in [0, 1]; masks ``(B, 1, H, W)`` with
1 = known, 0 = missing, shared by all channels. The inpainting result is
composited (Peter, 2022, eq. 1): ``u = (1 - c) g + c f``, so known pixels are
kept exactly. Losses (Peter, 2022, eqs. 2, 3): the critic minimises
``mean d(u, c) - mean d(f, c)``; the generator minimises
``mean |f - u| - alpha * mean d(u, c)`` with ``alpha = 0.005``.
(The Keras code uses the opposite sign convention for ``d`` throughout;
that is the same game.)

References
----------
.. [1] P. Peter, "A Wasserstein GAN for joint learning of inpainting and spatial optimisation",
       PSIVT 2022, LNCS, Springer, 2022 (arXiv:2202.05623).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserInputError

__all__ = ["hard_sigmoid", "scaled", "CBlock", "TCBlock", "Hourglass", "InpaintingGenerator", "Critic",
           "composite", "generator_input", "critic_loss", "generator_loss", "pad_to_multiple", "check_image_and_mask",
           "init_weights"]

#: Channels of the parallel convolutions (dilation 2, dilation 5, dilation 1) per block, at width 1.
ENCODER = ((32, 32, 64), (32, 32, 64), (64, 64, 128))
BOTTLENECK = (128, 128, 256)
DECODER = ((64, 64, 128), (32, 32, 64), (32, 32, 64))
DILATIONS = (2, 5, 1)
CRITIC = (64, 128, 256, 256, 512)
#: The 3x3 layer before the output, at width 1.
HEAD = 8


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras' ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)`` (gradient 0.2 inside, 0 outside).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import hard_sigmoid
    >>> hard_sigmoid(torch.tensor([-5.0, 0.0, 1.0, 5.0])).tolist()
    [0.0, 0.5, 0.699999988079071, 1.0]
    """
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def scaled(n: int, width: float) -> int:
    """``n`` channels scaled by ``width``, at least 1.

    Examples
    --------
    >>> from pdeflow.inpaint.learned.wgan import scaled
    >>> scaled(64, 0.25), scaled(8, 0.01)
    (16, 1)
    """
    return max(1, int(round(n * width)))


def init_weights(module: nn.Module) -> None:
    """Keras' default initialisation of every convolution and linear layer of ``module``, in place.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import init_weights
    >>> net = torch.nn.Conv2d(1, 2, 3)
    >>> init_weights(net)
    >>> float(net.bias.detach().abs().max())
    0.0
    """
    # Keras defaults (Glorot-uniform kernels, zero biases): the GAN's balance was tuned with them.
    # fan_in + fan_out is the same for a convolution and its transpose.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            receptive = m.weight[0, 0].numel()
            bound = math.sqrt(6.0 / ((m.weight.shape[0] + m.weight.shape[1]) * receptive))
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class CBlock(nn.Module):
    """Three parallel 5x5 convolutions (dilations 2, 5, 1), ELU, concatenated.

    The max-pooling that follows an encoder block is applied by the hourglass
    (the block's full-resolution output is also its skip connection).
    ``transposed=True`` gives the decoder's TCBlock (stride-1 transposed
    convolutions).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import CBlock
    >>> block = CBlock(3, (2, 2, 4))
    >>> block.out_channels, block(torch.rand(1, 3, 8, 8)).shape
    (8, torch.Size([1, 8, 8, 8]))
    """

    def __init__(self, in_channels: int, out_channels: tuple[int, int, int], transposed: bool = False):
        super().__init__()
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.branches = nn.ModuleList(
            conv(in_channels, n, 5, padding=2 * d, dilation=d) for n, d in zip(out_channels, DILATIONS))
        self.out_channels = sum(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.elu(b(x)) for b in self.branches], dim=1)


class TCBlock(CBlock):
    """The decoder block: :class:`CBlock` with transposed convolutions.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import TCBlock
    >>> block = TCBlock(3, (2, 2, 4))
    >>> block.out_channels, block(torch.rand(1, 3, 8, 8)).shape
    (8, torch.Size([1, 8, 8, 8]))
    """

    def __init__(self, in_channels: int, out_channels: tuple[int, int, int]):
        super().__init__(in_channels, out_channels, transposed=True)


class Hourglass(nn.Module):
    """The encoder-bottleneck-decoder body shared by the inpainting and the mask generator.

    Maps ``(B, in_channels, H, W)`` (``H``, ``W`` multiples of 8) to the
    decoder's last features concatenated with the input,
    ``(B, self.out_channels, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import Hourglass
    >>> body = Hourglass(3, width=0.1)
    >>> body(torch.rand(1, 3, 16, 16)).shape == (1, body.out_channels, 16, 16)
    True
    """

    def __init__(self, in_channels: int, width: float = 1.0):
        super().__init__()
        w = lambda spec: tuple(scaled(n, width) for n in spec)  # noqa: E731
        self.encoder = nn.ModuleList()
        c = in_channels
        skips = []
        for spec in ENCODER:
            block = CBlock(c, w(spec))
            self.encoder.append(block)
            c = block.out_channels
            skips.append(c)
        self.bottleneck = CBlock(c, w(BOTTLENECK))
        c = self.bottleneck.out_channels
        self.decoder = nn.ModuleList()
        for spec, skip in zip(DECODER, reversed(skips)):
            block = TCBlock(c + skip, w(spec))
            self.decoder.append(block)
            c = block.out_channels
        self.out_channels = c + in_channels

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        H, W = x0.shape[-2:]
        if H % 8 or W % 8:
            raise UserInputError(f"Hourglass: height and width must be multiples of 8, got {H}x{W} "
                             "(pad with pdeflow.inpaint.learned.wgan.pad_to_multiple)")
        skips, x = [], x0
        for block in self.encoder:
            s = block(x)
            skips.append(s)
            x = F.max_pool2d(s, 2)
        x = self.bottleneck(x)
        for block, s in zip(self.decoder, reversed(skips)):
            x = block(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), s], dim=1))
        return torch.cat([x, x0], dim=1)


class InpaintingGenerator(nn.Module):
    """The inpainting generator ``g(r, c, c f)``; see the module docstring.

    ``forward(f, mask, noise=None, generator=None)`` returns the raw generator
    output ``(B, C, H, W)`` in [0, 1]; :meth:`inpaint` returns the composited
    result ``u`` that keeps the known pixels.

    Parameters
    ----------
    channels : int
        Image channels ``C`` (1 grey, 3 colour).
    width : float
        Channel multiplier (1 = Vasata et al.'s sizes).
    noise_std : float
        Standard deviation of the noise put into the missing pixels.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import InpaintingGenerator
    >>> gen = InpaintingGenerator(1, width=0.1)
    >>> f, c = torch.rand(2, 1, 16, 16), torch.ones(2, 1, 16, 16)
    >>> gen(f, c, torch.zeros_like(f)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, channels: int = 1, width: float = 1.0, noise_std: float = 0.1):
        super().__init__()
        if channels not in (1, 3):
            raise UserInputError(f"InpaintingGenerator: channels must be 1 or 3, got {channels!r}")
        if not (isinstance(width, (int, float)) and width > 0 and math.isfinite(width)):
            raise UserInputError(f"InpaintingGenerator: width must be a positive number, got {width!r}")
        self.config = {"channels": int(channels), "width": float(width), "noise_std": float(noise_std)}
        self.channels, self.noise_std = int(channels), float(noise_std)
        self.body = Hourglass(2 * channels + 1, width)
        head = scaled(HEAD, width)
        self.head = nn.ConvTranspose2d(self.body.out_channels, head, 3, padding=1)
        self.out = nn.ConvTranspose2d(head, channels, 3, padding=1)
        init_weights(self)

    def forward(self, f: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        x0 = generator_input(f, mask, self.noise_std, noise=noise, generator=generator)
        return hard_sigmoid(self.out(F.elu(self.head(self.body(x0)))))

    def inpaint(self, f: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None = None, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``u = (1 - c) g + c f``: the generator's output in the missing pixels, ``f`` in the known ones."""
        return composite(self(f, mask, noise, generator=generator), f, mask)


def check_image_and_mask(f: torch.Tensor, mask: torch.Tensor, who: str) -> None:
    """Raise ValueError unless ``mask`` is ``(B, 1, H, W)`` (or ``(B, C, H, W)``) matching ``f``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import check_image_and_mask
    >>> check_image_and_mask(torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8), "demo")  # fine: no output
    >>> try:
    ...     check_image_and_mask(torch.rand(2, 3, 8, 8), torch.ones(2, 1, 4, 4), "demo")
    ... except ValueError as e:
    ...     print(e)
    demo: mask must have shape (2, 1, 8, 8) to match f of shape (2, 3, 8, 8), got (2, 1, 4, 4)
    """
    if not isinstance(f, torch.Tensor) or f.dim() != 4:
        raise UserInputError(f"{who}: f must be a (B, C, H, W) tensor, got {getattr(f, 'shape', type(f).__name__)}")
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4:
        raise UserInputError(f"{who}: mask must be a (B, 1, H, W) tensor, got "
                         f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
    if mask.shape[0] != f.shape[0] or mask.shape[-2:] != f.shape[-2:] or mask.shape[1] not in (1, f.shape[1]):
        raise UserInputError(f"{who}: mask must have shape {(f.shape[0], 1, *f.shape[-2:])} to match f of shape "
                         f"{tuple(f.shape)}, got {tuple(mask.shape)}")


def generator_input(f: torch.Tensor, mask: torch.Tensor, noise_std: float, *, noise: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``cat(f * c, c, r * (1 - c))`` with ``r ~ N(0, noise_std)`` (or the given ``noise``), ``(B, 2C + 1, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import generator_input
    >>> f, c = torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8)
    >>> x = generator_input(f, c, 0.1, generator=torch.Generator().manual_seed(0))
    >>> x.shape, bool(torch.equal(x[:, :3], f)), float(x[:, 4:].abs().max())
    (torch.Size([2, 7, 8, 8]), True, 0.0)
    """
    check_image_and_mask(f, mask, "generator_input")
    mask = mask[:, :1].to(f.dtype)
    if noise is None:
        device = generator.device if generator is not None else f.device
        noise = torch.randn(f.shape, generator=generator, dtype=f.dtype, device=device).to(f.device) * noise_std
    elif noise.shape != f.shape:
        raise UserInputError(f"generator_input: noise must have the shape of f {tuple(f.shape)}, got "
                             f"{tuple(noise.shape)}")
    return torch.cat([f * mask, mask, noise * (1 - mask)], dim=1)


def composite(g: torch.Tensor, f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Peter (2022) eq. (1): ``(1 - c) g + c f`` (differentiable in ``g``, ``f`` and ``c``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import composite
    >>> g, f = torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2)
    >>> composite(g, f, torch.tensor([[[[1.0, 0.0]]]])).tolist()
    [[[[1.0, 0.0]]]]
    """
    return g + mask * (f - g)


class Critic(nn.Module):
    """The WGAN critic ``d(u, c)`` for ``size x size`` inputs; see the module docstring.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import Critic
    >>> critic = Critic(1, size=32, width=0.1)
    >>> critic(torch.rand(2, 1, 32, 32), torch.ones(2, 1, 32, 32)).shape
    torch.Size([2])
    """

    def __init__(self, channels: int = 1, size: int = 64, width: float = 1.0, slope: float = 0.3):
        super().__init__()
        if not (isinstance(size, int) and size >= 32 and size % 32 == 0):
            raise UserInputError(f"Critic: size must be a multiple of 32, at least 32, got {size!r}")
        self.config = {"channels": int(channels), "size": int(size), "width": float(width), "slope": float(slope)}
        self.slope = slope
        convs, c = [], channels + 1
        for n in CRITIC:
            n = scaled(n, width)
            convs.append(nn.Conv2d(c, n, 5, stride=2, padding=2))
            c = n
        self.convs = nn.ModuleList(convs)
        self.linear = nn.Linear(c * (size // 32) ** 2, 1)
        self.size = size
        init_weights(self)
        self.clip_kernel_norms()

    def forward(self, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Critic values ``(B,)``."""
        if u.shape[-2:] != (self.size, self.size):
            raise UserInputError(f"Critic: built for {self.size}x{self.size} inputs, got {tuple(u.shape[-2:])}")
        x = torch.cat([u, mask[:, :1].to(u.dtype)], dim=1)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.slope)
        return self.linear(x.flatten(1)).squeeze(1)

    @torch.no_grad()
    def clip_kernel_norms(self, max_norm: float = 1.0) -> None:
        """Rescale each kernel whose L2 norm exceeds ``max_norm`` to that norm (biases untouched)."""
        for m in (*self.convs, self.linear):
            norm = torch.linalg.vector_norm(m.weight)
            if norm > max_norm:
                m.weight.mul_(max_norm / norm)


def critic_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Peter (2022) eq. (2): ``mean d(fake, c) - mean d(real, c)`` (``fake`` is detached).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import Critic
    >>> from pdeflow.inpaint.learned.wgan import critic_loss
    >>> _ = torch.manual_seed(0)
    >>> critic = Critic(1, size=32, width=0.1)
    >>> real, fake, c = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), torch.ones(2, 1, 32, 32)
    >>> critic_loss(critic, real, fake, c).shape
    torch.Size([])
    """
    return critic(fake.detach(), mask.detach()).mean() - critic(real, mask.detach()).mean()


def generator_loss(critic: Critic, f: torch.Tensor, u: torch.Tensor, mask: torch.Tensor, alpha: float
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Peter (2022) eq. (3): ``(mean |f - u| - alpha * mean d(u, c), mae, mean d(u, c))``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import Critic
    >>> from pdeflow.inpaint.learned.wgan import generator_loss
    >>> critic = Critic(1, size=32, width=0.1)
    >>> f, c = torch.rand(2, 1, 32, 32), torch.ones(2, 1, 32, 32)
    >>> total, mae, d_fake = generator_loss(critic, f, f, c, alpha=0.005)
    >>> float(mae), bool(torch.isclose(total, -0.005 * d_fake))
    (0.0, True)
    """
    mae = (f - u).abs().mean()
    d_fake = critic(u, mask).mean()
    return mae - alpha * d_fake, mae, d_fake


def pad_to_multiple(x: torch.Tensor, multiple: int = 8, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(B, C, H, W)`` at the bottom and right to multiples of ``multiple``; returns ``(padded, (H, W))``.

    Reflect padding needs ``H, W >= pad + 1``; smaller images fall back to replicate.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.wgan import pad_to_multiple
    >>> padded, size = pad_to_multiple(torch.rand(1, 1, 10, 13))
    >>> padded.shape, size
    (torch.Size([1, 1, 16, 16]), (10, 13))
    """
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph == 0 and pw == 0:
        return x, (H, W)
    if mode == "reflect" and (ph >= H or pw >= W):
        mode = "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (H, W)
