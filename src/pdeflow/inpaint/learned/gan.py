"""Trained inpainting GANs: ``load_mask_gan``, ``load_wgan``, ``gan_mask`` and ``inpaint_wgan``.

No GAN ships with pdeflow (:data:`pdeflow.models.SHIPPED`): the loaders take the path of a model exported
by ``pdeflow train inpainting`` (either file of its ``.safetensors``/``.json`` pair, their common stem, or
the run directory holding ``model.*``), or the name of a GAN a later release ships, resolved and checked
by the one model registry, :mod:`pdeflow.models`. The registry's groups ``inpainting-wgan`` (the
inpainting WGAN trained on random masks, stage ``wgan`` of :mod:`pdeflow.inpaint.training.wgan`) and ``maskgan``
(joint mask WGANs by density, stage ``mask``) name what a loader takes when given no model.
"""
from __future__ import annotations

import math

import torch

from ... import models as registry
from ... import ops
from ...errors import UserInputError
from ...io import LUMA_WEIGHTS
from ...rng import as_generator
from .maskgan import MaskGAN, check_density
from .wgan import InpaintingGenerator, pad_to_multiple

__all__ = ["load_mask_gan", "load_wgan", "gan_mask", "inpaint_wgan"]

_KINDS = ("inpainting", "maskgan")
_HINT = "train one with `pdeflow train inpainting` and pass the path of its model.json"


def _read(spec, who: str):
    return registry.read(spec, "inpaint", kinds=_KINDS, what="an inpainting-GAN model", who=who, hint=_HINT)


def load_mask_gan(density_or_path, *, device=None) -> MaskGAN:
    """A trained mask GAN (mask generator + its inpainting generator), in eval mode.

    Parameters
    ----------
    density_or_path : float or str or path
        A density with a shipped mask GAN (none ships yet: :data:`pdeflow.models.SHIPPED`),
        a shipped name or the path of an exported model.
    device : torch device, optional

    Returns
    -------
    MaskGAN
        With ``.density``, ``.meta`` (the JSON) and ``.mask_net``, ``.inpainter``.

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.inpaint import load_mask_gan
    >>> from pdeflow.inpaint.learned.maskgan import MaskGAN
    >>> from pdeflow.io import save_model
    >>> pair = MaskGAN(1, width=0.1, density=0.1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_model(pair, f"{d}/mg", {"kind": "maskgan", "model": pair.config})
    ...     back = load_mask_gan(f"{d}/mg.json")
    >>> back.density, back.training
    (0.1, False)
    """
    if isinstance(density_or_path, (int, float)) and not isinstance(density_or_path, bool):
        d = check_density(density_or_path, "load_mask_gan")
        spec = registry.shipped_name("maskgan", d)
        if spec is None:
            raise UserInputError(f"load_mask_gan: no shipped mask GAN for density {d:g} (see "
                                 f"pdeflow.models.SHIPPED); {_HINT}")
    else:
        spec = density_or_path
    state, meta, stem = _read(spec, "load_mask_gan")
    if meta["config"]["kind"] != "maskgan":
        raise UserInputError(f"load_mask_gan: {stem}.json holds an inpainting model, not a mask GAN "
                             "(use load_wgan)")
    return registry.build_model(MaskGAN, state, meta, stem, who="load_mask_gan", device=device)


def load_wgan(spec=None, *, device=None) -> InpaintingGenerator:
    """A trained inpainting generator, in eval mode.

    Parameters
    ----------
    spec : None, float, str or path
        ``None``: the shipped random-mask WGAN (none ships yet); a
        density: the inpainting generator trained jointly with that shipped
        mask GAN; a name or path of an exported inpainting model or mask GAN
        (of which the inpainting generator is taken).
    device : torch device, optional

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.inpaint import load_wgan
    >>> from pdeflow.inpaint.learned.wgan import InpaintingGenerator
    >>> from pdeflow.io import save_model
    >>> gen = InpaintingGenerator(1, width=0.1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_model(gen, f"{d}/model", {"kind": "inpainting", "model": gen.config})
    ...     back = load_wgan(d)                  # a run directory holding model.*
    >>> back.channels, back.training
    (1, False)
    """
    if spec is None:
        spec = registry.shipped_name("inpainting-wgan")
        if spec is None:
            raise UserInputError(f"load_wgan: spec: no inpainting WGAN is shipped (see "
                                 f"pdeflow.models.SHIPPED); {_HINT}")
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        pair = load_mask_gan(spec, device=device)
        gen = pair.inpainter
        gen.meta = pair.meta
        return gen
    state, meta, stem = _read(spec, "load_wgan")
    if meta["config"]["kind"] == "maskgan":
        gen = registry.build_model(MaskGAN, state, meta, stem, who="load_wgan").inpainter
    else:
        gen = registry.build_model(InpaintingGenerator, state, meta, stem, who="load_wgan")
    return registry.ready(gen, meta, device)


# --------------------------------------------------------------------------- applying them


def _image_batch(f, who: str) -> tuple[torch.Tensor, int]:
    return ops.as_batch(ops.check_image(f, f"{who}: f"), f"{who}: f")


def _to_channels(f: torch.Tensor, channels: int) -> torch.Tensor:
    if f.shape[1] == channels:
        return f
    if channels == 1 and f.shape[1] == 3:
        w = torch.tensor(LUMA_WEIGHTS, dtype=f.dtype, device=f.device).view(1, 3, 1, 1)
        return (f * w).sum(1, keepdim=True)
    if channels == 3 and f.shape[1] == 1:
        return f.expand(-1, 3, -1, -1)
    raise UserInputError(f"f has {f.shape[1]} channels; the model takes {channels} (1 and 3 are converted)")


@ops.follows_layout_rule("f")
@torch.no_grad()
def gan_mask(f: torch.Tensor, density: float, model: MaskGAN | None = None, *,
             generator=None, seed: int | None = None) -> torch.Tensor:
    """A mask of about ``density`` known pixels for ``f``, from a trained mask GAN.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Images in [0, 1]. Colour images go to a greyscale model as luminance.
        Sizes that are not multiples of 8 are reflect-padded and cropped back.
    density : float in (0, 1)
        Target fraction of known pixels; must be the model's density. The
        network is trained to meet it on average: the density of one mask
        deviates by a few percent of it (measure it with ``mask.mean()``).
    model : MaskGAN, optional
        Default: the shipped model for ``density`` (:func:`load_mask_gan`).
    generator : None, int or torch.Generator, optional
        Source of the network's random input ``r ~ U[0, 1)`` (the same int seed
        gives the same mask); None: torch's global generator. (``seed=`` is its
        deprecated former name.)

    Returns
    -------
    Tensor
        Binary mask (1 = known) in ``f``'s dtype and device, with one channel:
        ``(H, W)``, ``(1, H, W)`` or ``(B, 1, H, W)`` for the three input shapes.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import gan_mask
    >>> from pdeflow.inpaint.learned.maskgan import MaskGAN
    >>> m = gan_mask(torch.rand(1, 16, 16), 0.1, MaskGAN(1, width=0.1, density=0.1), generator=0)
    >>> m.shape, set(m.unique().tolist()) <= {0.0, 1.0}
    (torch.Size([1, 16, 16]), True)
    """
    density = check_density(density, "gan_mask")
    x, dim = _image_batch(f, "gan_mask")
    if model is None:
        model = load_mask_gan(density)
    elif not isinstance(model, MaskGAN):
        raise TypeError(f"gan_mask: model must be a MaskGAN (see load_mask_gan), got {type(model).__name__}")
    elif not math.isclose(model.density, density, abs_tol=1e-9):
        raise UserInputError(f"gan_mask: density {density:g} differs from the model's training density "
                         f"{model.density:g}; use a model trained for {density:g}")
    generator = as_generator(generator, "gan_mask", seed=seed)
    net = model.mask_net
    p = next(net.parameters())
    try:
        xm = _to_channels(x, net.channels)
    except ValueError as e:
        raise UserInputError(f"gan_mask: {e}") from None
    xp, (H, W) = pad_to_multiple(xm.to(device=p.device, dtype=p.dtype), 8)
    r = torch.rand(xp.shape, generator=generator, dtype=p.dtype).to(p.device)
    with registry.evaluating(net):
        b = net(xp, r)[..., :H, :W]
    b = b.to(device=x.device, dtype=x.dtype)
    return ops.unbatch(b, dim)


@ops.follows_layout_rule("f", also=("mask",))
@torch.no_grad()
def inpaint_wgan(f: torch.Tensor, mask: torch.Tensor, model: InpaintingGenerator | MaskGAN | None = None, *,
                generator=None, seed: int | None = None) -> torch.Tensor:
    """Inpaint the missing pixels of ``f`` with a trained inpainting generator.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Images in [0, 1]; only the known pixels are used.
    mask : Tensor
        1 = known, 0 = missing: the shape of ``f`` with one channel (or all
        channels equal), bool or {0, 1} values, at least one known pixel per image.
    model : InpaintingGenerator or MaskGAN, optional
        Default: the shipped random-mask WGAN (:func:`load_wgan`);
        a MaskGAN uses its jointly trained generator. A greyscale model
        inpaints each channel of a colour image separately.
    generator : None, int or torch.Generator, optional
        Source of the generator's noise in the missing pixels (``seed=`` is its
        deprecated former name).

    Returns
    -------
    Tensor, the shape, dtype and device of ``f``
        ``u = (1 - c) g + c f``: the known pixels are exactly those of ``f``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_wgan, random_mask
    >>> from pdeflow.inpaint.learned.wgan import InpaintingGenerator
    >>> f = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> m = random_mask((1, 16, 16), 0.2, generator=1)
    >>> u = inpaint_wgan(f, m, InpaintingGenerator(1, width=0.1), generator=0)   # an untrained generator
    >>> u.shape, bool((u[m > 0] == f[m > 0]).all())
    (torch.Size([1, 16, 16]), True)
    """
    f = ops.check_tensor(f, "inpaint_wgan: f")
    x, dim = _image_batch(f, "inpaint_wgan")
    m = ops.check_tensor(mask, "inpaint_wgan: mask")
    if m.dim() != dim or m.shape[-2:] != f.shape[-2:] or (dim >= 3 and m.shape[-3] not in (1, f.shape[-3])) \
            or (dim == 4 and m.shape[0] != f.shape[0]):
        want = {2: "(H, W)", 3: "(1, H, W) or (C, H, W)", 4: "(B, 1, H, W) or (B, C, H, W)"}[dim]
        raise UserInputError(f"inpaint_wgan: mask must have shape {want} matching f of shape {tuple(f.shape)}, "
                         f"got {tuple(m.shape)}")
    m = m.to(x.device)
    while m.dim() < 4:
        m = m.unsqueeze(0)
    m = m.float() if m.dtype == torch.bool else m
    if not bool(((m == 0) | (m == 1)).all()):
        raise UserInputError("inpaint_wgan: mask values must be 0 (missing) or 1 (known)")
    if m.shape[1] > 1 and not bool((m == m[:, :1]).all()):
        raise UserInputError("inpaint_wgan: a mask with several channels must have all channels equal")
    m = m[:, :1]
    if bool((m.flatten(1).sum(1) == 0).any()):
        raise UserInputError("inpaint_wgan: mask has no known pixel (in at least one image); nothing to inpaint from")
    if model is None:
        model = load_wgan()
    if isinstance(model, MaskGAN):
        model = model.inpainter
    if not isinstance(model, InpaintingGenerator):
        raise TypeError(f"inpaint_wgan: model must be an InpaintingGenerator or MaskGAN, got {type(model).__name__}")
    generator = as_generator(generator, "inpaint_wgan", seed=seed)
    p = next(model.parameters())
    B, C = x.shape[:2]
    xx, mm = x.to(device=p.device, dtype=p.dtype), m.to(device=p.device, dtype=p.dtype)
    if model.channels == 1 and C > 1:          # each channel on its own, with the same mask
        xx, mm = xx.reshape(B * C, 1, *x.shape[-2:]), mm.repeat_interleave(C, 0)
    elif model.channels == 3 and C == 1:
        xx = xx.expand(-1, 3, -1, -1)
    elif model.channels != C:
        raise UserInputError(f"inpaint_wgan: f has {C} channels; the model takes {model.channels}")
    xp, (H, W) = pad_to_multiple(xx, 8)
    mp, _ = pad_to_multiple(mm, 8)
    noise = torch.randn(xp.shape, generator=generator, dtype=p.dtype).to(p.device) * model.noise_std
    with registry.evaluating(model):
        g = model(xp, mp, noise)[..., :H, :W]
    if model.channels == 1 and C > 1:
        g = g.reshape(B, C, H, W)
    elif model.channels == 3 and C == 1:
        g = g.mean(1, keepdim=True)
    g = g.to(device=x.device, dtype=x.dtype)
    u = torch.where(m.bool(), x, g)            # exactly f on the known pixels
    return u.reshape(f.shape)
