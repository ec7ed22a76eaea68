"""The mask generator of the joint mask WGAN (Peter, 2022, §3).

:class:`MaskGenerator` ``m(r, f)`` maps an image ``f`` and a uniform random
seed ``r`` (``C`` channels each) to a binary mask ``b`` ``(B, 1, H, W)``. It
is the inpainting generator's hourglass (:class:`~pdeflow.inpaint.learned.wgan.Hourglass`)
whose last block is the *binarisation block* of Peter (2022) §3.1: a transposed
convolution to one channel ``z``, the hard sigmoid giving a confidence
``c = clip(0.2 z + 0.5, 0, 1)``, and hard rounding ``b = floor(c + 0.5)``.
The block's gradient is that of the linear function ``0.2 z + 0.5`` (seed
004: "we approximate the gradient of the binarisation layer by the
derivative of a simple linear function"; Theis et al.), so the mask network
is trained through the binary mask itself. Taking the straight-through
gradient over the rounding alone, behind the hard sigmoid's true gradient,
fails in practice: the density loss first pushes most confidences below 0,
where the hard sigmoid's gradient is 0, and those pixels can never be chosen
again (a 64x64, 5 % run ended after 1,000 steps with the same strip of
border pixels for every image, worse than random masks).

Losses (Peter, 2022, eq. 4 plus the Wasserstein coupling): the mask network
minimises ``|mean(b) - D| + beta * mean |f - u| - alpha * mean d(u, b)``
(density loss per image, then the batch mean), where ``u`` is the inpainting
generator's composited result for the mask ``b``; ``beta = 1``,
``alpha = 0.005``. The inpainting generator and the critic keep their losses
of :mod:`pdeflow.inpaint.learned.wgan` with ``c`` replaced by ``b``.

``exact_density`` (beyond the paper) replaces the rounding by choosing the
``round(D H W)`` pixels of largest ``z`` in each image (same gradient). The
density loss is then 0 and the mask network is trained by the inpainting
loss alone. Why it exists: with Peter's (2022) soft density term the per-pixel
gradient of ``|mean(b) - D|`` (``1 / (B H W)``, its sign flipping from batch
to batch) is about 20 times that of the MAE (``|f - u| / (B H W)``), so on a
CPU budget the mask network hardly moves from its start (the results page
"Sparse inpainting" has the numbers).
It does not make the CPU runs succeed either: the straight-through gradient
("reveal where the inpainting is worst") then moved the masks to the image
border and to edges, where a generator trained on random masks does worse
(see the README's inpainting section for the numbers).

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
from .wgan import HEAD, Hourglass, InpaintingGenerator, hard_sigmoid, init_weights, scaled

__all__ = ["binarise", "PRIOR_SCALE", "MaskGenerator", "MaskGAN", "density_loss", "mask_loss", "check_density"]


#: Scale of the random-mask prior ``PRIOR_SCALE * (D - r)`` in the pre-activation (hard-sigmoid units).
PRIOR_SCALE = 10.0


def check_density(density, who: str) -> float:
    """``density`` as a float in (0, 1), or a ValueError naming ``who``.

    Examples
    --------
    >>> from pdeflow.inpaint.learned.maskgan import check_density
    >>> check_density(0.1, "demo")
    0.1
    >>> try:
    ...     check_density(1.5, "demo")
    ... except ValueError as e:
    ...     print(e)
    demo: density must be a number in (0, 1) (the fraction of known pixels), got 1.5
    """
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not math.isfinite(density) \
            or not 0.0 < density < 1.0:
        raise UserInputError(f"{who}: density must be a number in (0, 1) (the fraction of known pixels), got "
                             f"{density!r}")
    return float(density)


def binarise(z: torch.Tensor, density: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The binarisation block on pre-activations ``z`` ``(B, 1, H, W)``: ``(b, c)``.

    ``c = hard_sigmoid(z)`` (the confidence, no gradient needed) and
    ``b = floor(c + 0.5)`` (1 where ``z >= 0``) in the forward pass; in the
    backward pass ``d b / d z = 0.2`` everywhere, the slope of ``0.2 z + 0.5``,
    so that no pixel's gradient dies where the hard sigmoid saturates.
    With ``density``, ``b`` is 1 on the ``round(density H W)`` largest ``z``
    of each image instead (ties broken by position), same gradient.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.maskgan import binarise
    >>> z = torch.tensor([[[[-3.0, -0.5, 0.5, 3.0]]]], requires_grad=True)
    >>> b, c = binarise(z)
    >>> b.tolist(), binarise(z, density=0.25)[0].tolist()
    ([[[[0.0, 0.0, 1.0, 1.0]]]], [[[[0.0, 0.0, 0.0, 1.0]]]])
    >>> b.sum().backward(); z.grad.tolist()          # the straight-through slope 0.2
    [[[[0.20000000298023224, 0.20000000298023224, 0.20000000298023224, 0.20000000298023224]]]]
    """
    c = hard_sigmoid(z)
    linear = 0.2 * z + 0.5
    if density is None:
        hard = torch.floor(c + 0.5)
    else:
        flat = z.detach().flatten(1)
        k = max(1, round(check_density(density, "binarise") * flat.shape[1]))
        hard = torch.zeros_like(flat).scatter_(1, flat.topk(k, dim=1).indices, 1.0).view_as(z)
    return linear + (hard - linear).detach(), c.detach()


class MaskGenerator(nn.Module):
    """``m(r, f)``: a binary mask ``(B, 1, H, W)`` for images ``f`` ``(B, C, H, W)`` in [0, 1].

    ``forward(f, r=None, generator=None, return_confidence=False)``: ``r``
    defaults to ``U[0, 1)`` noise drawn from ``generator``. Returns ``b`` (and
    the confidence ``c`` with ``return_confidence``); ``b`` is exactly 0 or 1
    and carries the straight-through gradient.

    Parameters
    ----------
    channels : int
        Image channels ``C``.
    width : float
        Channel multiplier of the hourglass (1 = the inpainting generator's published sizes).
    prior_density : float in (0, 1), optional
        Start from random masks of this density (beyond the paper): the
        pre-activation is ``z = net(f, r) + 10 (prior_density - r)`` with the
        network's last convolution zero at initialisation, so the first masks
        are ``[r < prior_density]``, the random masks the inpainting generator
        was trained on, and training moves pixels from there. Without it (the
        paper's design) the mask starts from whatever the untrained hourglass
        outputs; on this CPU's budget (64x64, 5 %, a few thousand steps) that
        fell into input-independent masks (rows of pixels) worse than random.
    exact_density : float in (0, 1), optional
        Choose exactly this fraction of pixels per image (the largest ``z``)
        instead of rounding; see the module docstring.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.maskgan import MaskGenerator
    >>> net = MaskGenerator(1, width=0.1, prior_density=0.1)
    >>> b = net(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    >>> b.shape, set(b.unique().tolist()) <= {0.0, 1.0}
    (torch.Size([1, 1, 16, 16]), True)
    """

    def __init__(self, channels: int = 1, width: float = 1.0, prior_density: float | None = None,
                 exact_density: float | None = None):
        super().__init__()
        if channels not in (1, 3):
            raise UserInputError(f"MaskGenerator: channels must be 1 or 3, got {channels!r}")
        self.prior_density = None if prior_density is None else check_density(prior_density, "MaskGenerator")
        self.exact_density = None if exact_density is None else check_density(exact_density, "MaskGenerator")
        if not (isinstance(width, (int, float)) and width > 0 and math.isfinite(width)):
            raise UserInputError(f"MaskGenerator: width must be a positive number, got {width!r}")
        self.config = {"channels": int(channels), "width": float(width)}
        self.channels = int(channels)
        self.body = Hourglass(2 * channels, width)
        head = scaled(HEAD, width)
        self.head = nn.ConvTranspose2d(self.body.out_channels, head, 3, padding=1)
        self.out = nn.ConvTranspose2d(head, 1, 3, padding=1)       # the binarisation block's convolution
        init_weights(self)
        if self.prior_density is not None:                          # start exactly at the random mask
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def logits(self, f: torch.Tensor, r: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """The binarisation block's pre-activation ``z`` ``(B, 1, H, W)``; ``c = hard_sigmoid(z)``."""
        if not isinstance(f, torch.Tensor) or f.dim() != 4 or f.shape[1] != self.channels:
            raise UserInputError(f"MaskGenerator: f must be (B, {self.channels}, H, W), "
                             f"got {getattr(f, 'shape', type(f).__name__)}")
        if r is None:
            device = generator.device if generator is not None else f.device
            r = torch.rand(f.shape, generator=generator, dtype=f.dtype, device=device).to(f.device)
        elif r.shape != f.shape:
            raise UserInputError(f"MaskGenerator: r must have the shape of f {tuple(f.shape)}, got {tuple(r.shape)}")
        x = self.body(torch.cat([f, r], dim=1))
        z = self.out(F.elu(self.head(x)))
        if self.prior_density is not None:
            z = z + PRIOR_SCALE * (self.prior_density - r[:, :1])
        return z

    def forward(self, f: torch.Tensor, r: torch.Tensor | None = None, *, generator: torch.Generator | None = None,
                return_confidence: bool = False):
        b, c = binarise(self.logits(f, r, generator=generator), self.exact_density)
        return (b, c) if return_confidence else b


class MaskGAN(nn.Module):
    """A jointly trained pair: ``mask_net`` (:class:`MaskGenerator`) and ``inpainter``
    (:class:`~pdeflow.inpaint.learned.wgan.InpaintingGenerator`) for one target ``density``.

    ``random_start``: the mask generator's random-mask prior at ``density``
    (see :class:`MaskGenerator`); ``exact_density``: exactly ``density`` of the
    pixels of every mask (see the module docstring). ``forward(f, generator=None)``
    returns ``(b, u)``: the mask and the composited inpainting of ``f`` from it
    (noises drawn from ``generator``).

    Examples
    --------
    >>> from pdeflow.inpaint.learned.maskgan import MaskGAN
    >>> pair = MaskGAN(1, width=0.1, density=0.1)
    >>> pair.density, type(pair.mask_net).__name__, type(pair.inpainter).__name__
    (0.1, 'MaskGenerator', 'InpaintingGenerator')
    """

    def __init__(self, channels: int = 1, width: float = 1.0, noise_std: float = 0.1, density: float = 0.1,
                 random_start: bool = False, exact_density: bool = False):
        super().__init__()
        self.density = check_density(density, "MaskGAN")
        self.config = {"channels": int(channels), "width": float(width), "noise_std": float(noise_std),
                       "density": self.density, "random_start": bool(random_start),
                       "exact_density": bool(exact_density)}
        self.mask_net = MaskGenerator(channels, width, prior_density=self.density if random_start else None,
                                      exact_density=self.density if exact_density else None)
        self.inpainter = InpaintingGenerator(channels, width, noise_std)

    def forward(self, f: torch.Tensor, *, generator: torch.Generator | None = None):
        b = self.mask_net(f, generator=generator)
        return b, self.inpainter.inpaint(f, b, generator=generator)


def density_loss(b: torch.Tensor, density: float) -> torch.Tensor:
    """``mean over images of |mean(b_i) - density|`` (the first term of Peter (2022) eq. 4).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.maskgan import density_loss
    >>> b = torch.zeros(2, 1, 4, 4)
    >>> b[0, 0, 0, :2] = 1                               # densities 2/16 and 0
    >>> round(float(density_loss(b, 0.125)), 4)
    0.0625
    """
    density = check_density(density, "density_loss")
    if b.dim() != 4:
        raise UserInputError(f"density_loss: b must be (B, 1, H, W), got {tuple(b.shape)}")
    return (b.flatten(1).mean(1) - density).abs().mean()


def mask_loss(b: torch.Tensor, f: torch.Tensor, u: torch.Tensor, d_fake: torch.Tensor, density: float,
              beta: float = 1.0, alpha: float = 0.005) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``|mean(b) - D| + beta * mean |f - u| - alpha * d_fake``; returns ``(total, terms)``.

    ``d_fake`` is the batch mean of the critic on ``(u, b)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.maskgan import mask_loss
    >>> b, f = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    >>> b[..., 0, :2] = 1
    >>> total, terms = mask_loss(b, f, f + 0.1, torch.tensor(2.0), density=0.125)
    >>> round(float(total), 4), sorted(terms)
    (0.09, ['density', 'mae'])
    """
    dens = density_loss(b, density)
    mae = (f - u).abs().mean()
    return dens + beta * mae - alpha * d_fake, {"density": dens, "mae": mae}
