"""Trained inpainting GANs, offline: loading shipped weights, ``gan_mask`` and ``gan_inpaint``.

Shipped models live in ``pdeflow/inpaint/weights/NAME.safetensors`` + ``NAME.json``
(written by :func:`pdeflow.io.save_model`, so the JSON holds the
configuration, the training provenance and the weights' checksum):

* ``inpainting-wgan`` -- the inpainting WGAN trained on random masks
  (stage ``wgan`` of :mod:`pdeflow.inpaint.train`);
* ``maskgan-05``, ``maskgan-10``, ``maskgan-20`` -- joint mask WGANs for 5, 10
  and 20 % density (stage ``mask``), each a mask generator with its jointly
  trained inpainting generator.

Every loader also takes a path to any exported ``.safetensors``/``.json`` pair
(either file, their common stem, or a run directory holding ``model.*``).
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch

from .. import ops
from ..errors import UserInputError
from ..io import load_model, model_from_export
from ..rng import as_generator
from .masknet import MaskGAN, check_density
from .wgan import InpaintingGenerator, pad_to_multiple

__all__ = ["load_mask_model", "load_inpainting_model", "gan_mask", "gan_inpaint", "shipped_models", "WEIGHTS_DIR",
           "INPAINTING_MODEL", "MASK_MODELS"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
INPAINTING_MODEL = "inpainting-wgan"
#: Shipped mask GANs by density.
MASK_MODELS = {0.05: "maskgan-05", 0.1: "maskgan-10", 0.2: "maskgan-20"}
# luminance weights of pdeflow.io.read_image (ITU-R BT.601)
_LUMA = (0.299, 0.587, 0.114)


def shipped_models() -> list[str]:
    """Names of the models present in :data:`WEIGHTS_DIR`."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors") if p.with_suffix(".json").is_file())


def _train_hint(name: str) -> str:
    have = ", ".join(shipped_models()) or "none"
    return (f"the model {name!r} is not shipped in {WEIGHTS_DIR} (shipped: {have}); train one with "
            "`pdeflow train inpainting` and pass the path of its model.json")


def _stem(spec) -> Path:
    """A model name or path as the stem of a ``.safetensors``/``.json`` pair."""
    p = Path(spec)
    if p.is_dir():
        p = p / "model"
    elif p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    if p.with_name(p.name + ".json").is_file():
        return p
    if isinstance(spec, str) and "/" not in spec and "\\" not in spec and not spec.endswith((".json", ".safetensors")):
        shipped = WEIGHTS_DIR / spec
        if shipped.with_name(spec + ".json").is_file():
            return shipped
        raise FileNotFoundError(_train_hint(spec))
    raise FileNotFoundError(f"no model at {spec!s} (expected NAME.safetensors + NAME.json, or a run directory "
                            "holding model.safetensors + model.json)")


def _read(spec, kinds=("inpainting", "maskgan"), what: str = "an inpainting-GAN model", who: str | None = None, *,
          channels: int | None = None) -> tuple[dict, dict, Path]:
    """The weights, JSON and stem of the exported model ``spec`` (see :func:`_stem`; a damaged file raises
    :class:`~pdeflow.errors.UserInputError` naming it). Refused unless its ``config.kind`` is one of
    ``kinds`` with a model configuration and, with ``channels``, its model takes that many channels."""
    stem = _stem(spec)
    state, meta = load_model(stem)
    cfg = meta.get("config") if isinstance(meta, dict) else None
    head = f"{who}: " if who else ""
    if not isinstance(cfg, dict) or cfg.get("kind") not in kinds or not isinstance(cfg.get("model"), dict):
        raise UserInputError(f"{head}{stem}.json is not {what} (config.kind {' or '.join(map(repr, kinds))})")
    have = cfg["model"].get("channels")
    if channels is not None and have != channels:
        raise UserInputError(f"{head}channels: {stem}.json was trained for {have} channel(s), the image has {channels}")
    return state, meta, stem


def _ready(model: torch.nn.Module, meta: dict, device=None) -> torch.nn.Module:
    """A loaded model with its JSON as ``.meta``, on ``device`` (if given), in eval mode."""
    model.meta = meta
    return (model.to(device) if device is not None else model).eval()


@contextlib.contextmanager
def evaluating(*nets: torch.nn.Module | None):
    """Run ``nets`` (None entries skipped) in eval mode without gradients, then restore their modes;
    yields the device of the first one's weights."""
    # only nets in training mode are switched (train()/eval() walk every submodule: ~1 ms a call)
    switched = [n for n in nets if n is not None and n.training]
    for n in switched:
        n.eval()
    try:
        with torch.no_grad():
            yield next(next(n for n in nets if n is not None).parameters()).device
    finally:
        for n in switched:
            n.train()


def load_mask_model(density_or_path, *, device=None) -> MaskGAN:
    """A trained mask GAN (mask generator + its inpainting generator), in eval mode.

    Parameters
    ----------
    density_or_path : float or str or path
        A density with a shipped model (0.05, 0.1, 0.2: :data:`MASK_MODELS`),
        a shipped name (``"maskgan-05"``) or the path of an exported model.
    device : torch device, optional

    Returns
    -------
    MaskGAN
        With ``.density``, ``.meta`` (the JSON) and ``.mask_net``, ``.inpainter``.
    """
    if isinstance(density_or_path, (int, float)) and not isinstance(density_or_path, bool):
        d = check_density(density_or_path, "load_mask_model")
        name = next((n for k, n in MASK_MODELS.items() if math.isclose(k, d, abs_tol=1e-9)), None)
        if name is None:
            raise UserInputError(f"load_mask_model: no shipped mask GAN for density {d:g}; shipped densities are "
                             f"{', '.join(f'{k:g}' for k in MASK_MODELS)} (or pass the path of a trained model)")
        spec = name
    else:
        spec = density_or_path
    state, meta, stem = _read(spec)
    if meta["config"]["kind"] != "maskgan":
        raise UserInputError(f"load_mask_model: {stem}.json holds an inpainting model, not a mask GAN "
                         "(use load_inpainting_model)")
    return _ready(model_from_export(MaskGAN, state, meta, stem, "load_mask_model"), meta, device)


def load_inpainting_model(spec=None, *, device=None) -> InpaintingGenerator:
    """A trained inpainting generator, in eval mode.

    Parameters
    ----------
    spec : None, float, str or path
        ``None``: the shipped random-mask WGAN (:data:`INPAINTING_MODEL`); a
        density: the inpainting generator trained jointly with that shipped
        mask GAN; a name or path of an exported inpainting model or mask GAN
        (of which the inpainting generator is taken).
    device : torch device, optional
    """
    if spec is None:
        spec = INPAINTING_MODEL
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        pair = load_mask_model(spec, device=device)
        gen = pair.inpainter
        gen.meta = pair.meta
        return gen
    state, meta, stem = _read(spec)
    if meta["config"]["kind"] == "maskgan":
        gen = model_from_export(MaskGAN, state, meta, stem, "load_inpainting_model").inpainter
    else:
        gen = model_from_export(InpaintingGenerator, state, meta, stem, "load_inpainting_model")
    return _ready(gen, meta, device)


# --------------------------------------------------------------------------- applying them


def _image_batch(f, who: str) -> tuple[torch.Tensor, int]:
    ops.check_image(f, f"{who}: f")
    return ops.as_batch(f, f"{who}: f")


def _to_channels(f: torch.Tensor, channels: int) -> torch.Tensor:
    if f.shape[1] == channels:
        return f
    if channels == 1 and f.shape[1] == 3:
        w = torch.tensor(_LUMA, dtype=f.dtype, device=f.device).view(1, 3, 1, 1)
        return (f * w).sum(1, keepdim=True)
    if channels == 3 and f.shape[1] == 1:
        return f.expand(-1, 3, -1, -1)
    raise UserInputError(f"f has {f.shape[1]} channels; the model takes {channels} (1 and 3 are converted)")


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
        Default: the shipped model for ``density`` (:func:`load_mask_model`).
    generator : None, int or torch.Generator, optional
        Source of the network's random input ``r ~ U[0, 1)`` (the same int seed
        gives the same mask); None: torch's global generator. (``seed=`` is its
        deprecated former name.)

    Returns
    -------
    Tensor
        Binary mask (1 = known) in ``f``'s dtype and device, with one channel:
        ``(H, W)``, ``(1, H, W)`` or ``(B, 1, H, W)`` for the three input shapes.
    """
    density = check_density(density, "gan_mask")
    x, dim = _image_batch(f, "gan_mask")
    if model is None:
        model = load_mask_model(density)
    elif not isinstance(model, MaskGAN):
        raise TypeError(f"gan_mask: model must be a MaskGAN (see load_mask_model), got {type(model).__name__}")
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
    with evaluating(net):
        b = net(xp, r)[..., :H, :W]
    b = b.to(device=x.device, dtype=x.dtype)
    return b.reshape(b.shape[-2:]) if dim == 2 else (b[0] if dim == 3 else b)


@torch.no_grad()
def gan_inpaint(f: torch.Tensor, mask: torch.Tensor, model: InpaintingGenerator | MaskGAN | None = None, *,
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
        Default: the shipped random-mask WGAN (:func:`load_inpainting_model`);
        a MaskGAN uses its jointly trained generator. A greyscale model
        inpaints each channel of a colour image separately.
    generator : None, int or torch.Generator, optional
        Source of the generator's noise in the missing pixels (``seed=`` is its
        deprecated former name).

    Returns
    -------
    Tensor, the shape, dtype and device of ``f``
        ``u = (1 - c) g + c f``: the known pixels are exactly those of ``f``.
    """
    x, dim = _image_batch(f, "gan_inpaint")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"gan_inpaint: mask must be a torch.Tensor, got {type(mask).__name__}")
    m = mask
    if m.dim() != dim or m.shape[-2:] != f.shape[-2:] or (dim >= 3 and m.shape[-3] not in (1, f.shape[-3])) \
            or (dim == 4 and m.shape[0] != f.shape[0]):
        want = {2: "(H, W)", 3: "(1, H, W) or (C, H, W)", 4: "(B, 1, H, W) or (B, C, H, W)"}[dim]
        raise UserInputError(f"gan_inpaint: mask must have shape {want} matching f of shape {tuple(f.shape)}, "
                         f"got {tuple(m.shape)}")
    m = m.to(x.device)
    while m.dim() < 4:
        m = m.unsqueeze(0)
    m = m.float() if m.dtype == torch.bool else m
    if not bool(((m == 0) | (m == 1)).all()):
        raise UserInputError("gan_inpaint: mask values must be 0 (missing) or 1 (known)")
    if m.shape[1] > 1 and not bool((m == m[:, :1]).all()):
        raise UserInputError("gan_inpaint: a mask with several channels must have all channels equal")
    m = m[:, :1]
    if bool((m.flatten(1).sum(1) == 0).any()):
        raise UserInputError("gan_inpaint: mask has no known pixel (in at least one image); nothing to inpaint from")
    if model is None:
        model = load_inpainting_model()
    if isinstance(model, MaskGAN):
        model = model.inpainter
    if not isinstance(model, InpaintingGenerator):
        raise TypeError(f"gan_inpaint: model must be an InpaintingGenerator or MaskGAN, got {type(model).__name__}")
    generator = as_generator(generator, "gan_inpaint", seed=seed)
    p = next(model.parameters())
    B, C = x.shape[:2]
    xx, mm = x.to(device=p.device, dtype=p.dtype), m.to(device=p.device, dtype=p.dtype)
    if model.channels == 1 and C > 1:          # each channel on its own, with the same mask
        xx, mm = xx.reshape(B * C, 1, *x.shape[-2:]), mm.repeat_interleave(C, 0)
    elif model.channels == 3 and C == 1:
        xx = xx.expand(-1, 3, -1, -1)
    elif model.channels != C:
        raise UserInputError(f"gan_inpaint: f has {C} channels; the model takes {model.channels}")
    xp, (H, W) = pad_to_multiple(xx, 8)
    mp, _ = pad_to_multiple(mm, 8)
    noise = torch.randn(xp.shape, generator=generator, dtype=p.dtype).to(p.device) * model.noise_std
    with evaluating(model):
        g = model(xp, mp, noise)[..., :H, :W]
    if model.channels == 1 and C > 1:
        g = g.reshape(B, C, H, W)
    elif model.channels == 3 and C == 1:
        g = g.mean(1, keepdim=True)
    g = g.to(device=x.device, dtype=x.dtype)
    u = torch.where(m.bool(), x, g)            # exactly f on the known pixels
    return u.reshape(f.shape)
