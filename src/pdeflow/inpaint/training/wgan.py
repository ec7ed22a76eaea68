"""Training the inpainting WGAN and the joint mask WGAN (Peter, 2022): one loop, top to bottom.

Two stages, each a resumable run (:class:`pdeflow.training.Run`)::

    from pdeflow.inpaint.training.wgan import TrainConfig, train
    train(TrainConfig(stage="wgan", width=0.25, steps=3000), "runs/wgan")
    train(TrainConfig(stage="mask", density=0.05, init="runs/wgan", width=0.25, steps=3000), "runs/mask05")

or ``pdeflow train inpainting --stage wgan ...`` / ``--stage mask --density 0.05 --init runs/wgan ...``.
The same call (or command) again resumes a killed run where it stopped.

What a step does
----------------
1. Draw everything random from ``step_generator(seed, step)`` and nothing
   else: ``batch_size`` crops of ``crop x crop`` pixels from images picked
   uniformly at random (reflect-padded where an image is smaller), and
   the noises of the networks.
2. The mask: stage ``wgan`` -- a random mask per crop, each pixel known with
   probability ``d ~ U[density_min, density_max]`` (one ``d`` per crop), so
   one inpainting network serves all densities (Vasata et al. trained on
   5-50 % known pixels); stage ``mask`` -- ``b = m(r, f)`` from the mask
   generator (binary, straight-through gradient).
3. ``u = (1 - c) g(r, c, c f) + c f``; critic loss ``mean d(u, c) - mean
   d(f, c)`` (``u`` detached); generator loss ``mean |f - u| - alpha mean
   d(u, c)``; stage ``mask``: mask loss ``|mean b - D| + beta mean |f - u| -
   alpha mean d(u, b)``. All gradients come from the same forward pass (the
   critic's before its update, as Vasata et al.'s code); Adam (``lr`` 5e-5)
   steps every network once; then every critic kernel is clipped to L2 norm 1.
   During the first ``warmup`` steps (default 0, the paper) the generator (and
   mask generator) learn from their losses with ``alpha = 0`` and the critic
   is not trained; it starts learning with the adversarial term. The warm-up
   lets the generator leave the plateau of a near-constant fill that the full
   loss from step 0 can hold it on; the critic starts fresh, since one trained
   during the warm-up is far ahead when ``alpha`` switches on (the runs are on
   the results page "Sparse inpainting").
4. Every ``val_every`` steps and after the last: validation (below); a new
   best writes ``best.pt`` and exports the model.

Stage ``mask`` starts the inpainting generator and the critic from the best
checkpoint of a stage-``wgan`` run (``init``, a run directory; its channels,
width, crop and noise must match) or, with ``init=None``, from scratch.

Validation
----------
``val_crops`` crops of ``crop`` pixels (seed ``val_seed``) from images training
never sees: the built-in pool's TEST split of photos when training on the
built-in TRAIN split or on several sources, or for one folder alone a held-out
``val_fraction`` of its files (chosen by a hash of their relative paths). Noises are fixed too, so the
metric is a deterministic function of the weights.

* stage ``wgan``: the MAE of ``u`` against ``f`` (all pixels, intensities in
  [0, 1]) for random masks of each density in ``val_densities``, averaged
  over densities; lower is better. PSNR and SSIM are logged beside it.
* stage ``mask``: Peter's (2022) "mask validation loss", eq. (4):
  ``|mean b - D| + beta * mean |f - u|`` (the paper picks its weights by it).

Run directory
-------------
``config.json``, ``last.pt``, ``best.pt``, ``log.csv`` and the exported best
model ``model.safetensors`` + ``model.json`` (:func:`pdeflow.io.save_model`):
``config`` = ``{"kind": "inpainting", "model": {channels, width, noise_std}}``
(stage ``wgan``, an :class:`~pdeflow.inpaint.learned.wgan.InpaintingGenerator`) or
``{"kind": "maskgan", "model": {channels, width, noise_std, density, random_start, exact_density}}``
(stage ``mask``, a :class:`~pdeflow.inpaint.learned.maskgan.MaskGAN` holding the mask
generator and its jointly trained inpainting generator), ``provenance`` = the
training config, data, steps, wall time, command and validation metrics.
Load it with :func:`pdeflow.inpaint.learned.gan.load_mask_gan` /
:func:`~pdeflow.inpaint.learned.gan.load_wgan` (a path) or copy it to
``src/pdeflow/inpaint/weights/`` under its shipped name.

References
----------
.. [1] P. Peter, "A Wasserstein GAN for joint learning of inpainting and spatial optimisation",
       PSIVT 2022, LNCS, Springer, 2022 (arXiv:2202.05623).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ... import datasets
from ...errors import UserInputError
from ...io import save_model
from ...metrics import psnr, ssim
from ...models import evaluating
from ...training import (
    ConfigCheck,
    Run,
    check_finite,
    ckpt_every_option,
    is_number,
    load_checkpoint,
    option,
    provenance,
    seed_everything,
    step_generator,
    val_every_option,
)
from ..learned.maskgan import MaskGAN, MaskGenerator, mask_loss
from ..learned.wgan import Critic, InpaintingGenerator, composite, critic_loss, generator_loss

__all__ = ["TrainConfig", "train", "check_config", "open_data", "sample_batch", "random_masks", "validation_set",
           "validate", "build_networks", "STAGES"]

STAGES = ("wgan", "mask")


@dataclass
class TrainConfig:
    """Everything that determines an inpainting-GAN training run (saved as ``config.json``).

    Defaults are Peter's (2022) where it gives a value (Adam 5e-5, alpha 0.005,
    beta 1, noise N(0, 0.1), 64x64 crops); ``width`` < 1 shrinks every
    network for CPU training.

    Examples
    --------
    >>> from pdeflow.inpaint.training.wgan import TrainConfig, check_config
    >>> cfg = TrainConfig(width=0.05, crop=32, steps=1, batch_size=2)
    >>> check_config(cfg)
    >>> cfg.stage, cfg.alpha, cfg.lr
    ('wgan', 0.005, 5e-05)
    """

    # Each field that is a command-line option carries its help text, type and choices (option(...)):
    # `pdeflow train inpainting` is generated from them, so a hyperparameter is declared here only.
    stage: str = option("wgan", choices=("wgan", "mask"),
                        help="'wgan': inpainting on random masks; 'mask': the joint mask WGAN for --density "
                             "(default {default})")
    density: float = option(0.1, "stage mask: target fraction of known pixels (default {default:g})", type="density",
                            metavar="D")
    random_start: bool = option(True, negate="--no-random-start",
                                help="stage mask: the paper's mask generator, without the prior that starts it at "
                                     "random masks of --density (see pdeflow.inpaint.learned.maskgan.MaskGenerator)")
    exact_density: bool = option(False, flag=True,
                                 help="stage mask (beyond the paper): every mask has exactly --density of its "
                                      "pixels, the largest pre-activations, instead of rounding plus the density loss")
    density_min: float = option(0.02, "stage wgan: smallest random-mask density (default {default:g})",
                                type="density", metavar="D")
    density_max: float = option(0.3, "stage wgan: largest random-mask density (default {default:g})",
                                type="density", metavar="D")
    init: str | None = option(None, metavar="DIR",
                              help="stage mask: a stage-wgan run directory whose best generator and critic start "
                                   "this run (default: from scratch)")
    # model
    channels: int = option(1, "1: greyscale (luminance), 3: colour (default 1)", type="int", choices=(1, 3))
    width: float = option(1.0, type="positive_float",
                          help="channel multiplier of all networks (1 = the published sizes; 0.25 for CPU) "
                               "(default 1)")
    noise_std: float = option(0.1, "generator noise in the missing pixels (default {default:g})",
                              type="nonneg_float")
    # data
    data: tuple = option(("builtin",), nargs="+", metavar="DIR|builtin",
                         help="training photos: 'builtin' (the built-in photos' TRAIN split) and/or folders "
                              "(searched recursively; one folder alone: a hashed 10%% of its files is held out "
                              "for validation) (default builtin)")
    crop: int = option(64, "crop size, a multiple of 32 (default {default})", type="crop32", metavar="PX")
    # optimisation
    steps: int = option(3000, "optimiser steps (default {default}; may be raised on resume to extend a run)",
                        type="positive_int", metavar="N")
    batch_size: int = option(32, "crops per step (default {default}; the paper: 128 at 64 px, 32 at 128 px)",
                             type="positive_int", metavar="B")
    lr: float = option(5e-5, "Adam learning rate (default {default:g})", type="positive_float")
    mask_lr: float | None = option(None, "stage mask: the mask network's Adam learning rate (default: --lr)",
                                   type="positive_float")
    alpha: float = option(0.005, "weight of the critic in the generator and mask losses (default {default:g})",
                          type="nonneg_float")
    warmup: int = option(0, type="nonneg_int", metavar="N",
                         help="first N steps with alpha = 0: the generator learns from the MAE alone and the critic "
                              "waits (default {default}, the paper)")
    beta: float = option(1.0, "weight of the MAE in the mask loss (default {default:g})", type="nonneg_float")
    seed: int = option(0, "seed of weights and batches (default {default})", type="nonneg_int")
    deterministic: bool = option(False, "deterministic torch algorithms (bit-identical resume on CPU)", flag=True)
    # validation and checkpoints
    val_data: str | None = option(None, "validation images instead (never the training images)",
                                  metavar="DIR|builtin")   # None: see the module doc
    val_fraction: float = 0.1            #: folder data: fraction of its files held out for validation
    val_crops: int = option(32, "validation crops (default {default})", type="positive_int")
    val_densities: tuple = option((0.05, 0.1, 0.2), type="density", nargs="+", metavar="D",
                                  help="stage wgan: random-mask densities of the validation (default 0.05 0.1 0.2)")
    val_seed: int = option(0, "seed of the validation crops, masks and noises (default 0)", type="nonneg_int")
    val_every: int = val_every_option(250)
    ckpt_every: int = ckpt_every_option(50)


def check_config(cfg: TrainConfig) -> None:
    """Raise ValueError naming the first field that is out of range.

    Examples
    --------
    >>> from pdeflow.inpaint.training.wgan import TrainConfig, check_config
    >>> check_config(TrainConfig())                      # the defaults are valid
    >>> try:
    ...     check_config(TrainConfig(crop=48))
    ... except ValueError as e:
    ...     print(e)
    TrainConfig.crop: expected a multiple of 32 (32, 64, 128, ...), got 48
    """
    need = ConfigCheck(cfg)
    need(cfg.stage in STAGES, "stage", f"one of {STAGES}")
    need.fractions("density")
    need.flags("random_start", "exact_density")
    need.fractions("density_min")
    need(is_number(cfg.density_max) and cfg.density_min <= cfg.density_max < 1, "density_max",
         "a number in [density_min, 1)")
    need(cfg.init is None or isinstance(cfg.init, str), "init", "None or a run directory")
    need(cfg.stage == "mask" or cfg.init is None, "init", "None for stage 'wgan'")
    need(cfg.channels in (1, 3), "channels", "1 or 3")
    need.numbers("width", "lr")
    need.numbers("mask_lr", optional=True)
    need.numbers("noise_std", "alpha", "beta", positive=False)
    need.ints("crop", minimum=32)
    need(cfg.crop % 32 == 0, "crop", "a multiple of 32 (32, 64, 128, ...)")
    need.ints("warmup", minimum=0)
    need.tuple_of("val_densities", "numbers in (0, 1)", lambda d: is_number(d) and 0 < d < 1)
    need.fractions("val_fraction")
    need.trainer()
    need.tuple_of("data", "'builtin' and folders", lambda d: isinstance(d, str))


# --------------------------------------------------------------------------- data


def open_data(cfg: TrainConfig) -> tuple[datasets.ImageSet, datasets.ImageSet]:
    """The training and validation photos of ``cfg`` (see :func:`pdeflow.datasets.training_images`).

    Examples
    --------
    >>> from pdeflow.inpaint.training.wgan import TrainConfig, open_data
    >>> train_images, val_images = open_data(TrainConfig())   # the built-in TRAIN and TEST splits
    >>> len(train_images) > 0, len(val_images) > 0
    (True, True)
    """
    grey = cfg.channels == 1
    if len(cfg.data) == 1:
        return datasets.training_images(cfg.data[0], cfg.val_data, val_fraction=cfg.val_fraction, grey=grey,
                                        kind="photo")
    if cfg.val_data is None or cfg.val_data == "builtin":   # several sources: the built-in TEST photos validate
        return (datasets.source_images(cfg.data, grey=grey)[0],
                datasets.training_images("builtin", "builtin", grey=grey, kind="photo")[1])
    return datasets.source_images(cfg.data, grey=grey, val_data=cfg.val_data)


def random_masks(n: int, size: int, densities: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``(n, 1, size, size)`` masks, each pixel of mask ``i`` known with probability ``densities[i]``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.training.wgan import random_masks
    >>> m = random_masks(2, 8, torch.tensor([0.0, 1.0]), torch.Generator().manual_seed(0))
    >>> m.shape, m.flatten(1).mean(1).tolist()
    (torch.Size([2, 1, 8, 8]), [0.0, 1.0])
    """
    return (torch.rand(n, 1, size, size, generator=g) < densities.view(-1, 1, 1, 1)).float()


def sample_batch(cfg: TrainConfig, images: datasets.ImageSet,
                 g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step's crops ``(B, C, S, S)`` and, for stage wgan, random masks ``(B, 1, S, S)``.

    Everything is drawn from ``g`` (the step generator), in a fixed order.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.training.wgan import TrainConfig, open_data, sample_batch
    >>> cfg = TrainConfig(crop=32, batch_size=2)
    >>> f, masks = sample_batch(cfg, open_data(cfg)[0], torch.Generator().manual_seed(0))
    >>> f.shape, masks.shape
    (torch.Size([2, 1, 32, 32]), torch.Size([2, 1, 32, 32]))
    """
    f = images.crops(cfg.batch_size, cfg.crop, g)
    if cfg.stage != "wgan":
        return f, None
    d = cfg.density_min + (cfg.density_max - cfg.density_min) * torch.rand(cfg.batch_size, generator=g,
                                                                             dtype=torch.float64)
    return f, random_masks(cfg.batch_size, cfg.crop, d, g)


# --------------------------------------------------------------------------- validation


def validation_set(cfg: TrainConfig, images: datasets.ImageSet) -> dict:
    """Fixed validation crops, random masks per validation density, and noises (seed ``val_seed``).

    Examples
    --------
    >>> from pdeflow.inpaint.training.wgan import TrainConfig, open_data, validation_set
    >>> cfg = TrainConfig(crop=32, val_crops=2)
    >>> val = validation_set(cfg, open_data(cfg)[1])
    >>> sorted(val), val["f"].shape, sorted(val["masks"])
    (['f', 'masks', 'noise', 'r'], torch.Size([2, 1, 32, 32]), [0.05, 0.1, 0.2])
    """
    g = torch.Generator().manual_seed(cfg.val_seed)
    f = images.crops(cfg.val_crops, cfg.crop, g)
    masks = {float(d): random_masks(cfg.val_crops, cfg.crop, torch.full((cfg.val_crops,), float(d),
                                                                          dtype=torch.float64), g)
             for d in cfg.val_densities}
    return {"f": f, "masks": masks, "noise": torch.randn(f.shape, generator=g) * cfg.noise_std,
            "r": torch.rand(f.shape, generator=g)}


@torch.no_grad()
def validate(cfg: TrainConfig, gen: InpaintingGenerator, mask_net: MaskGenerator | None, val: dict,
             device: torch.device) -> dict[str, float]:
    """The validation metrics of the module docstring; ``out["metric"]`` decides the best model.

    Examples
    --------
    >>> from pdeflow.inpaint.training.wgan import TrainConfig, build_networks, open_data, validate, validation_set
    >>> cfg = TrainConfig(width=0.05, crop=32, val_crops=2)
    >>> val = validation_set(cfg, open_data(cfg)[1])
    >>> scores = validate(cfg, build_networks(cfg), None, val, torch.device("cpu"))
    >>> sorted(scores)[:4]
    ['metric', 'val_mae_10', 'val_mae_20', 'val_mae_5']
    """
    f, noise = val["f"].to(device), val["noise"].to(device)
    out: dict[str, float] = {}
    with evaluating(gen, mask_net):
        if mask_net is None:
            maes = []
            for d, m in val["masks"].items():
                m = m.to(device)
                u = composite(gen(f, m, noise), f, m)
                maes.append(float((u - f).abs().mean()))
                tag = f"{round(100 * d)}"
                out[f"val_mae_{tag}"] = maes[-1]
                out[f"val_psnr_{tag}"] = float(psnr(u, f, data_range=1.0).mean())
                out[f"val_ssim_{tag}"] = float(ssim(u, f, data_range=1.0).mean())
            out["metric"] = sum(maes) / len(maes)
        else:
            b = mask_net(f, val["r"].to(device))
            u = composite(gen(f, b, noise), f, b)
            dens = float((b.flatten(1).mean(1) - cfg.density).abs().mean())
            mae = float((u - f).abs().mean())
            out.update(val_density=float(b.mean()), val_density_loss=dens, val_mae=mae,
                       val_psnr=float(psnr(u, f, data_range=1.0).mean()),
                       val_ssim=float(ssim(u, f, data_range=1.0).mean()))
            out["metric"] = dens + cfg.beta * mae
    return out


def _diffusion_baseline(cfg: TrainConfig, val: dict) -> dict | None:
    """MAE of homogeneous diffusion inpainting on the validation masks (stage wgan)."""
    from ..operators.diffusion import inpaint_diffusion

    try:
        out = {}
        for d, m in val["masks"].items():
            u = inpaint_diffusion(val["f"].double(), m.double(), tol=1e-6)
            out[f"{round(100 * d)}"] = float((u - val["f"].double()).abs().mean())
        return out
    except Exception as e:  # a baseline is a courtesy; never stop training for it
        return {"error": f"{type(e).__name__}: {e}"}


# --------------------------------------------------------------------------- models and export


def build_networks(cfg: TrainConfig) -> InpaintingGenerator | MaskGAN:
    """The exported model of ``cfg``'s stage, freshly initialised: the generator (stage wgan) or
    the mask network and generator pair (stage mask).

    Examples
    --------
    >>> from pdeflow.inpaint.training.wgan import TrainConfig, build_networks
    >>> type(build_networks(TrainConfig(width=0.05))).__name__
    'InpaintingGenerator'
    >>> type(build_networks(TrainConfig(stage="mask", width=0.05))).__name__
    'MaskGAN'
    """
    if cfg.stage == "wgan":
        return InpaintingGenerator(cfg.channels, cfg.width, cfg.noise_std)
    return MaskGAN(cfg.channels, cfg.width, cfg.noise_std, cfg.density, random_start=cfg.random_start,
                   exact_density=cfg.exact_density)


def _parts(model: InpaintingGenerator | MaskGAN) -> tuple[InpaintingGenerator, MaskGenerator | None]:
    """The trained parts of a :func:`build_networks` model: (generator, mask network or None)."""
    return (model.inpainter, model.mask_net) if isinstance(model, MaskGAN) else (model, None)


def _init_from(cfg: TrainConfig, gen: InpaintingGenerator, critic: Critic) -> dict:
    """Load the best (else last) checkpoint of the stage-wgan run ``cfg.init``; returns its description."""
    run_dir = Path(cfg.init)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise UserInputError(f"init: {str(run_dir)!r} is not a training run directory (no config.json)")
    try:
        saved = json.loads(cfg_path.read_text())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UserInputError(f"init: {cfg_path} is not valid JSON ({exc})") from None
    if not isinstance(saved, dict) or saved.get("stage") != "wgan":
        raise UserInputError(f"init: {run_dir} is a stage {saved.get('stage')!r} run; need a stage 'wgan' run")
    for key in ("channels", "width", "crop", "noise_std"):
        if saved.get(key) != getattr(cfg, key):
            raise UserInputError(f"init: {run_dir} was trained with {key}={saved.get(key)!r}, "
                             f"this run has {key}={getattr(cfg, key)!r}")
    path = run_dir / "best.pt" if (run_dir / "best.pt").is_file() else run_dir / "last.pt"
    ckpt = load_checkpoint(path)
    gen.load_state_dict(ckpt["models"]["gen"])
    critic.load_state_dict(ckpt["models"]["critic"])
    return {"run_dir": str(run_dir.resolve()), "checkpoint": path.name, "steps": int(ckpt["step"]),
            "val_metric": ckpt["best"]["metric"]}


def _export(state: dict, cfg: TrainConfig, model_config: dict, run_dir: Path, run: Run, info: dict,
            best: dict) -> None:
    prov = {"trainer": "pdeflow.inpaint.training.wgan", **run.best_record(), "val_metric": float(run.best), "val": best,
            **info}
    kind = "inpainting" if cfg.stage == "wgan" else "maskgan"
    save_model(state, run_dir / "model", config={"kind": kind, "model": model_config}, provenance=prov)


# --------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, run_dir, *, device: str | torch.device | None = None, quiet: bool = False,
          command: str | None = None) -> Path:
    """Train (or resume) a stage of the inpainting GANs in ``run_dir``; returns the path of
    the exported ``model.json`` (the best model by validation). See the module docstring.

    ``device``: default ``cuda`` if available, else the CPU (one process; no DDP).
    ``command``: recorded in the exported JSON (default: this process's command line).

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.inpaint.training.wgan import TrainConfig, train
    >>> cfg = TrainConfig(width=0.05, crop=32, steps=1, batch_size=2, val_crops=2)
    >>> with tempfile.TemporaryDirectory() as run_dir:    # one optimiser step, only to show the call
    ...     print(train(cfg, run_dir, device="cpu", quiet=True).name)
    model.json
    """
    check_config(cfg)
    run_dir = Path(run_dir)
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    train_images, val_images = open_data(cfg)

    model = build_networks(cfg)                # what is exported; stage mask trains its two parts
    gen, mask_net = _parts(model)
    critic = Critic(cfg.channels, cfg.crop, cfg.width)
    init_info = _init_from(cfg, gen, critic) if cfg.init is not None else None
    nets = {"gen": gen, "critic": critic, **({"mask": mask_net} if mask_net is not None else {})}
    for net in nets.values():
        net.to(device)
    mask_lr = cfg.mask_lr if cfg.mask_lr is not None else cfg.lr
    opts = {name: torch.optim.Adam(net.parameters(), lr=mask_lr if name == "mask" else cfg.lr)
            for name, net in nets.items()}
    run = Run(run_dir, cfg, models=nets, optimizers=opts, ckpt_every=cfg.ckpt_every, best_mode="min",
              allow_changed=("steps",), quiet=quiet)
    start = run.resume()
    val = validation_set(cfg, val_images)
    info = provenance(cfg, command=command, device=device,
                      data={"train": train_images.description, "validation": val_images.description},
                      parameters={name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()},
                      **({"init": init_info} if init_info is not None else {}))
    if cfg.stage == "wgan":
        info["val_mae_diffusion"] = _diffusion_baseline(cfg, val)
    g_params = list(gen.parameters())
    m_params = list(mask_net.parameters()) if mask_net is not None else []
    d_params = list(critic.parameters())
    best_val: dict = {}

    for step in run.steps(start, cfg.steps):
        g = step_generator(cfg.seed, step)
        f, mask = sample_batch(cfg, train_images, g)
        f = f.to(device)
        if mask_net is not None:
            mask = mask_net(f, generator=g)                      # binary, straight-through gradient
        else:
            mask = mask.to(device)
        noise = (torch.randn(f.shape, generator=g) * cfg.noise_std).to(device)
        u = composite(gen(f, mask, noise), f, mask)

        warm = step < cfg.warmup                                 # generator on the MAE alone, critic idle
        loss_d = critic_loss(critic, f, u, mask)
        grads_d = torch.autograd.grad(loss_d, d_params) if not warm else ()
        alpha = 0.0 if warm else cfg.alpha
        loss_g, mae, d_fake = generator_loss(critic, f, u, mask, alpha)
        terms = {}
        if mask_net is None:
            grads = torch.autograd.grad(loss_g, g_params)
        else:
            loss_m, terms = mask_loss(mask, f, u, d_fake, cfg.density, cfg.beta, alpha)
            if cfg.beta == 1.0:
                # loss_m = loss_g + density term, which does not depend on g: one backward pass serves both
                grads = torch.autograd.grad(loss_g + terms["density"], g_params + m_params)
            else:
                grads = (torch.autograd.grad(loss_g, g_params, retain_graph=True)
                         + torch.autograd.grad(loss_m, m_params))
        for p, gr in zip((d_params if not warm else []) + g_params + m_params, (*grads_d, *grads)):
            p.grad = gr
        for opt in opts.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        if not warm:
            critic.clip_kernel_norms()

        row = dict(loss_critic=loss_d.item(), loss_gen=loss_g.item(), mae=mae.item(), d_fake=d_fake.item(),
                   d_real=d_fake.item() - loss_d.item(), density=mask.detach().mean().item())
        check_finite(step, "resume with a smaller --lr / --mask-lr", **row)   # a NaN mask gives a NaN density
        if terms:
            row.update(loss_mask=loss_m.item(), density_loss=terms["density"].item())
        run.log(step, **row)
        if run.validation_due(step, cfg.val_every):
            metrics = validate(cfg, gen, mask_net, val, device)
            if run.log_validation(step, metrics):
                best_val = metrics
                _export(model.state_dict(), cfg, model.config, run_dir, run, info, best_val)
    run.finish()

    # the exported model is the best one; (re)write it from best.pt with the final provenance
    best = run.best_models()
    if best is not None:
        gen.load_state_dict(best["gen"])
        if mask_net is not None:
            mask_net.load_state_dict(best["mask"])
        # resumed after the best was found: recompute its metrics from its weights
        _export(model.state_dict(), cfg, model.config, run_dir, run, info,
                best_val or validate(cfg, gen, mask_net, val, device))
    return run_dir / "model.json"
