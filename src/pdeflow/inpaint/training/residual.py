"""Training the residual inpainter (:class:`~pdeflow.inpaint.ResidualInpainter`) and the joint fine-tune.

Two stages, each one resumable run (:class:`pdeflow.training.Run`)::

    from pdeflow.inpaint.training.residual import ResidualConfig, train_residual
    # R alone, on analytic masks (or on trained mask networks' masks: mask_models=(run dirs...))
    train_residual(ResidualConfig(data=("builtin", ".data/photos/opencv"), steps=3000), "runs/residual")
    # the joint fine-tune: a mask network and R together (one mask network per run)
    train_residual(ResidualConfig(stage="joint", init="runs/residual", mask_models=("runs/masknet-05",),
                                  data=("builtin", ".data/photos/opencv"), steps=1000), "runs/joint-05")

The same call again resumes a killed run where it stopped (``steps`` may be
raised to extend a finished run).

A step
------
1. Everything random comes from ``step_generator(seed, step)``: ``batch_size``
   crops of ``crop x crop`` pixels of the training photos, the step's mask
   source and density (a mask network picked uniformly from ``mask_models``,
   at its density; an all-density network or the analytic mask at a density
   drawn from ``densities``, or uniformly from ``density_range`` when set),
   and the random shift/flip of the blue-noise dithering tile per crop.
2. The masks (``masks``): uniformly random (``"random"``: exactly
   ``round(density H W)`` known pixels per crop, the masks of Peter's (2022)
   Table 2(a)), or the analytic mask of Belhachmi, Bucur, Burgeth, Weickert (2009)
   (:func:`~pdeflow.inpaint.masks.analytic.analytic_mask`, dithered, snapped to
   extrema, smoothing ``0.45 / sqrt(density)`` pixels as the mask network's
   training uses) or a trained mask network's masks (no gradient in stage
   ``residual``; with the straight-through gradient in stage ``joint``),
   with ``refine`` refined by :func:`~pdeflow.inpaint.masks.refine.refine_mask` as
   the evaluation's ``*-refine`` rows refine them (their setting at the
   network's density; tile shifts from the step's generator): an inpainter
   for the masks those rows inpaint, which the refinement has fitted to
   diffusion.
3. ``u = u_diff + (1 - b) R(u_diff, b, b f)``, ``u_diff = inpaint_diffusion(f, b)``
   (float64, relative residual ``tol``). Stage ``joint``: the gradient reaches
   the mask through ``inpaint_diffusion`` (its adjoint, Hoeltgen, Setzer, Weickert
   2013) and through ``R``'s inputs and the ``(1 - b)`` factor (autograd).
4. Loss ``charbonnier(u, f) + ssim_weight (1 - SSIM(u, f)) - alpha mean d(u, b)``
   with ``d`` the WGAN critic of P. Peter, "A Wasserstein GAN for joint
   learning of inpainting and spatial optimisation" (2022)
   (:class:`~pdeflow.inpaint.learned.wgan.Critic` at width ``critic_width``, trained
   on ``mean d(u, b) - mean d(f, b)`` with Adam ``critic_lr`` and kernel
   norms clipped to 1; ``alpha = 0``: no critic at all, the paper's value is
   0.005). Adam on a cosine schedule from ``lr`` (``mask_lr`` for the mask
   network) to ``lr * lr_final``; gradients clipped to norm ``clip``.
5. Every ``val_every`` steps and after the last: validation; the metric is
   the loss without the critic, averaged over the validation densities; a
   new best exports ``model.safetensors`` + ``model.json`` (config
   ``{"kind": "residual-inpainter", "model": ...}``, provenance: training
   config, data, steps, wall and CPU seconds, the command, validation
   numbers and plain diffusion's on the same masks); stage ``joint`` also
   exports the fine-tuned mask network as ``mask.safetensors`` +
   ``mask.json`` (loadable by :func:`~pdeflow.inpaint.learned.load_masknet`).

Validation: ``val_crops`` fixed ``crop x crop`` crops (seed ``val_seed``) of
the built-in TEST photos (never trained on) that do not overlap the crops the
evaluation reports (:func:`pdeflow.evaluate.inpaint.test_images`, seed 0, at
the sizes and counts in ``avoid_eval``), or of a folder ``val_data``. Masks:
the fixed (unshifted) tile, per density of ``densities`` (stage
``residual`` on analytic masks; random masks: drawn from seed 0), or the mask networks' masks (with ``refine``:
refined, tile shifts from seed 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ... import datasets as pdata
from ... import io as pio
from ...errors import UserInputError
from ...filters import gaussian_blur
from ...io import save_model as export_model
from ...models import evaluating
from ...training import (
    ConfigCheck,
    CpuClock,
    Run,
    check_finite,
    ckpt_every_option,
    clip_gradients,
    cosine_factor,
    is_number,
    option,
    provenance,
    step_generator,
    val_every_option,
)
from ..learned.losses import loss_scores, reconstruction_loss
from ..learned.masknet import KIND as MASK_KIND
from ..learned.masknet import MaskNet, load_masknet, network_mask
from ..learned.residual import KIND, ResidualInpainter, load_residual
from ..learned.wgan import Critic, critic_loss
from ..masks.analytic import analytic_mask, analytic_sigma  # noqa: F401 (analytic_sigma: re-exported)
from ..masks.dither import blue_noise_tile, threshold_map
from ..masks.refine import refine_setting
from ..masks.sparsification import random_mask
from ..operators.diffusion import inpaint_diffusion
from ._shared import densities, export_best, load_init, start_run, tag

__all__ = ["ResidualConfig", "train_residual", "check_config", "evaluation_boxes", "validation_crops",
           "open_training_photos", "analytic_sigma", "STAGES", "MASKS"]

STAGES = ("residual", "joint")
#: The masks a run without mask networks trains on (``ResidualConfig.masks``).
MASKS = ("analytic", "random")


@dataclass
class ResidualConfig:
    """Everything that determines a residual-inpainter training run (saved as ``config.json``).

    Examples
    --------
    >>> from pdeflow.inpaint.training.residual import ResidualConfig, check_config
    >>> cfg = ResidualConfig(widths=(4,), crop=16, steps=1)
    >>> check_config(cfg)
    >>> cfg.stage, cfg.densities, cfg.mask_models
    ('residual', (0.05, 0.1, 0.2), ())
    """

    stage: str = option("residual", choices=("residual", "joint"),
                        help="residual: train the residual inpainter alone; joint: fine-tune one mask network "
                             "(--mask-models) together with it (default {default})")
    channels: int = option(1, "1: greyscale (luminance), 3: colour (default 1)", type="int", choices=(1, 3))
    widths: tuple = option((16, 32, 64), "the inpainter's U-Net channels per level (default 16 32 64)",
                           type="positive_int", nargs="+", metavar="C")
    # masks
    mask_models: tuple = option((), "trained mask networks (run directories or model.json) whose masks train "
                                "the inpainter (default: --masks)", nargs="+", metavar="PATH")
    masks: str = option("analytic", choices=MASKS,
                        help="the masks without --mask-models: analytic (Belhachmi et al.'s density, dithered) or "
                             "random (each crop exactly round(density H W) uniformly random known pixels, the "
                             "masks of Peter's (2022) Table 2(a)) (default {default})")
    densities: tuple = option((0.05, 0.1, 0.2), "mask densities drawn per step (default 0.05 0.1 0.2)",
                              type="density", nargs="+", metavar="D")
    density_range: tuple | None = None   #: or uniformly from [lo, hi] (validation still on ``densities``)
    refine: bool = option(False, "stage residual: train and validate on the mask networks' masks refined as the "
                                 "evaluation's *-refine rows refine them (pdeflow.inpaint.masks.refine.REFINE at each "
                                 "network's density), the masks those rows inpaint", flag=True)
    init: str | None = option(None, "the residual inpainter (run directory or model.json) to start from; stage "
                                    "joint: the one to fine-tune (default: none, i.e. plain diffusion)",
                              metavar="PATH")
    normalize: bool = option(True, "do not normalise the contrast R sees (models before the option; default: R "
                                   "sees each image at a fixed mean and contrast of its known pixels)",
                             negate="--no-normalize")
    # data
    data: tuple = option(("builtin",), "training photos: 'builtin' (the shipped TRAIN split) and/or folders "
                         "(default builtin)", nargs="+", metavar="DIR|builtin")
    val_data: str = option("builtin", "validation photos: 'builtin' (the shipped TEST split minus the "
                                     "evaluation's crops) or a folder (default builtin)", metavar="DIR|builtin")
    crop: int = option(64, "crop size, at least 16 (default {default})", type="positive_int", metavar="PX")
    aug_blur: float = option(0.0, "fraction of the training crops replaced by a Gaussian-blurred copy (sigma "
                                  "uniform in [0.5, 2.5] px, 8-bit values): smooth images, on which the correction "
                                  "must stay small, in training (default 0: off)", type="nonneg_float", metavar="F")
    # optimisation
    steps: int = option(3000, "optimiser steps (default {default}; may be raised on resume to extend a run)",
                        type="positive_int", metavar="N")
    batch_size: int = option(16, "crops per step (default {default})", type="positive_int")
    lr: float = option(5e-4, "Adam learning rate (default {default:g})", type="positive_float")
    mask_lr: float = option(1e-4, "stage joint: the mask network's learning rate (default {default:g})",
                            type="positive_float")
    lr_final: float = 0.01               #: the cosine schedule ends at lr * lr_final
    clip: float = 1.0
    ssim_weight: float = option(0.6, "weight of 1 - SSIM in the loss (default {default:g})", type="nonneg_float")
    alpha: float = option(0.0, type="nonneg_float",
                          help="weight of the adversarial term -alpha mean d(u, b) of a WGAN critic d trained beside "
                               "the inpainter (Peter, 2022: 0.005; needs a --crop multiple of 32; default 0: no "
                               "critic)")
    critic_width: float = option(0.25, "alpha > 0: channel multiplier of the critic (default {default:g})",
                                 type="positive_float")
    critic_lr: float = option(1e-4, "alpha > 0: the critic's Adam learning rate (default {default:g})",
                              type="positive_float")
    tol: float = 1e-5                    #: diffusion solver's relative residual in training
    seed: int = option(0, "seed of weights and batches (default {default})", type="nonneg_int")
    deterministic: bool = option(False, "deterministic torch algorithms (bit-identical resume on CPU)", flag=True)
    # validation and checkpoints
    val_crops: int = option(48, "validation crops (default {default})", type="positive_int")
    val_seed: int = 1
    avoid_eval: tuple = ((64, 64), (128, 16))   #: (size, n): evaluation crops the validation must not overlap
    val_every: int = val_every_option(100)
    ckpt_every: int = ckpt_every_option(25)


def check_config(cfg: ResidualConfig) -> None:
    """Raise ValueError naming the first field that is out of range.

    Examples
    --------
    >>> from pdeflow.inpaint.training.residual import ResidualConfig, check_config
    >>> check_config(ResidualConfig())                   # the defaults are valid
    >>> try:
    ...     check_config(ResidualConfig(stage="joint"))  # joint needs one mask network
    ... except ValueError as e:
    ...     print(e)
    ResidualConfig.mask_models: expected exactly one mask network (stage joint), got ()
    """
    need = ConfigCheck(cfg)
    need(cfg.stage in STAGES, "stage", f"one of {STAGES}")
    need(cfg.channels in (1, 3), "channels", "1 or 3")
    need.tuple_of("widths", "positive ints", lambda w: isinstance(w, int) and w >= 1)
    need.tuple_of("mask_models", "paths", lambda m: isinstance(m, str), empty=True)
    need(cfg.stage != "joint" or len(cfg.mask_models) == 1, "mask_models", "exactly one mask network (stage joint)")
    need.tuple_of("densities", "numbers in (0, 1)", lambda d: is_number(d) and 0 < d < 1)
    need(cfg.density_range is None or (isinstance(cfg.density_range, (tuple, list)) and len(cfg.density_range) == 2
                                       and all(is_number(d) for d in cfg.density_range)
                                       and 0 < cfg.density_range[0] <= cfg.density_range[1] < 1),
         "density_range", "None or (lo, hi) with 0 < lo <= hi < 1")
    need(cfg.masks in MASKS, "masks", f"one of {MASKS}")
    need(cfg.masks == "analytic" or not cfg.mask_models, "masks", "'analytic' (the default) with --mask-models")
    need(cfg.init is None or isinstance(cfg.init, str), "init", "None or a path")
    need(not cfg.refine or (cfg.stage == "residual" and cfg.mask_models), "refine",
         "stage residual with --mask-models (refined masks carry no gradient, and analytic masks are not refined)")
    need.tuple_of("data", "'builtin' and folders", lambda s: isinstance(s, str))
    need(isinstance(cfg.val_data, str), "val_data", "'builtin' or a folder")
    need.ints("crop", minimum=16)
    need(is_number(cfg.aug_blur) and 0 <= cfg.aug_blur <= 1, "aug_blur", "a fraction in [0, 1]")
    need.trainer()
    need.numbers("lr", "mask_lr", "clip", "tol", "critic_width", "critic_lr")
    need.numbers("ssim_weight", "lr_final", "alpha", positive=False)
    need(cfg.tol < 1, "tol", "a number in (0, 1)")
    need(cfg.alpha == 0 or cfg.crop % 32 == 0, "crop", "a multiple of 32 when alpha > 0 (the critic)")
    need.tuple_of("avoid_eval", "(size, n) pairs", lambda a: isinstance(a, (tuple, list)) and len(a) == 2
                  and all(isinstance(v, int) and v >= 1 for v in a), empty=True)


# --------------------------------------------------------------------------- data


def open_training_photos(cfg: ResidualConfig) -> pdata.ImageSet:
    """All photos of ``cfg.data`` (the built-in TRAIN split and/or folders), in memory
    (:func:`pdeflow.datasets.source_images`).

    Examples
    --------
    >>> from pdeflow.inpaint.training.residual import ResidualConfig, open_training_photos
    >>> len(open_training_photos(ResidualConfig()))      # the built-in TRAIN split
    12
    """
    return pdata.source_images(cfg.data, grey=cfg.channels == 1)[0]


def evaluation_boxes(size: int, n: int, *, seed: int = 0) -> list[tuple[str, int, int]]:
    """``(photo, top, left)`` of the first ``n`` crops of :func:`pdeflow.evaluate.inpaint.test_images`
    at ``size`` (built-in TEST split): the same draws, made on images of pixel coordinates.

    Examples
    --------
    >>> from pdeflow.inpaint.training.residual import evaluation_boxes
    >>> evaluation_boxes(64, 2)
    [('matplotlib/grace_hopper', 447, 418), ('pywt/aero', 273, 118)]
    """
    pool = pdata.builtin_pool("test", grey=True, kind="photo")
    names = list(pool)
    coords = []
    for im in pool.values():
        H, W = im.shape[-2:]
        yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64),
                                indexing="ij")
        coords.append(torch.stack([yy, xx]))
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k = i % len(names)
        c = pdata.random_crops([coords[k]], 1, size, generator=g)[0]
        out.append((names[k], int(c[0, 0, 0]), int(c[1, 0, 0])))
    return out


def validation_crops(cfg: ResidualConfig) -> tuple[torch.Tensor, dict]:
    """The fixed validation crops ``(val_crops, C, crop, crop)`` and their description (see the module doc).

    Examples
    --------
    >>> from pdeflow.inpaint.training.residual import ResidualConfig, validation_crops
    >>> crops, about = validation_crops(ResidualConfig(crop=16, val_crops=2))
    >>> crops.shape, about["source"]
    (torch.Size([2, 1, 16, 16]), "builtin TEST split, outside the evaluation's crops")
    """
    grey = cfg.channels == 1
    g = torch.Generator().manual_seed(cfg.val_seed)
    s = cfg.crop
    if cfg.val_data != "builtin":
        files = pio.image_files(Path(cfg.val_data), "val_data")
        images = pdata.ImageSet(files=files, grey=grey, description={})
        return images.crops(cfg.val_crops, s, g), {"source": cfg.val_data, "crops": cfg.val_crops, "seed": cfg.val_seed}
    pool = pdata.builtin_pool("test", grey=grey, kind="photo")
    names = list(pool)
    avoid = [(name, t, l, sz) for sz, n in cfg.avoid_eval for name, t, l in evaluation_boxes(sz, n)]
    crops, boxes, tries = [], [], 0
    while len(crops) < cfg.val_crops:
        tries += 1
        if tries > 1000 * cfg.val_crops:
            raise UserInputError(f"val_crops: cannot place {cfg.val_crops} crops of {s} px in the TEST photos "
                             f"outside the evaluation's crops {list(cfg.avoid_eval)}")
        k = int(torch.randint(len(names), (1,), generator=g))
        im = pool[names[k]]
        H, W = im.shape[-2:]
        if H < s or W < s:
            continue
        t = int(torch.randint(H - s + 1, (1,), generator=g))
        l = int(torch.randint(W - s + 1, (1,), generator=g))  # noqa: E741
        if any(n == names[k] and t < at + sz and at < t + s and l < al + sz and al < l + s for n, at, al, sz in avoid):
            continue
        crops.append(im[:, t:t + s, l:l + s])
        boxes.append([names[k], t, l])
    return torch.stack(crops), {"source": "builtin TEST split, outside the evaluation's crops",
                                "avoid_eval": [list(a) for a in cfg.avoid_eval], "seed": cfg.val_seed,
                                "crops": boxes}


# --------------------------------------------------------------------------- masks and loss


def _masks(f: torch.Tensor, d: float, net: MaskNet | None, *, random: bool, g=None, grad: bool = False,
           refine: bool = False, kind: str = "analytic"):
    """Masks ``(B, 1, H, W)`` (float64) at density ``d``: ``kind`` (``net=None``) or from a mask network,
    refined (``refine``) with the evaluation's setting at ``d``, its tile shifts (or random pixels) drawn
    from ``g`` (from seed 0 when ``g`` is None)."""
    if net is None and kind == "random":
        return random_mask((f.shape[0], 1, *f.shape[-2:]), d, generator=0 if g is None else g,
                           dtype=torch.float64, device=f.device)
    if net is None:
        return analytic_mask(f.double(), d, sigma=analytic_sigma(d), snap=True, tile=blue_noise_tile(64),
                             random=random, generator=g)
    thr = threshold_map(f.shape, tile=blue_noise_tile(net.tile), random=random, generator=g, device=f.device)
    opts = {**refine_setting(d), "generator": 0 if g is None else g} if refine else None
    with torch.set_grad_enabled(grad and not refine):
        return network_mask(net, f, d, refine=opts, thresholds=thr).double()


def _mask_sources(cfg: ResidualConfig, device) -> list[tuple[MaskNet | None, list[float]]]:
    """``(network or None, its validation densities)`` per mask source."""
    nets = [load_masknet(spec, channels=cfg.channels, device=device) for spec in cfg.mask_models] or [None]
    return [(net, densities(None if net is None else net.density, cfg)) for net in nets]


@torch.no_grad()
def validate(cfg: ResidualConfig, model: ResidualInpainter, sources, fval: torch.Tensor) -> dict[str, float]:
    """Per validation density: loss, MAE (0-255) and SSIM of the model and of plain diffusion on the same masks."""
    out: dict[str, float] = {}
    losses = []
    f = fval.double()
    with evaluating(model, *(n for n, _ in sources)):
        for net, dens in sources:
            for d in dens:
                b = _masks(fval, d, net, random=False, refine=cfg.refine, kind=cfg.masks)
                u_diff = inpaint_diffusion(f, b, tol=1e-6)
                ours = loss_scores(*reconstruction_loss(model(f, b, u_diff=u_diff), f, cfg.ssim_weight))
                diffusion = loss_scores(*reconstruction_loss(u_diff, f, cfg.ssim_weight))
                losses.append(ours["loss"])
                out.update({f"val_{k}_{tag(d)}": v for k, v in ours.items()})
                out.update({f"val_diff_{k}_{tag(d)}": diffusion[k] for k in ("mae255", "ssim")})
    out["metric"] = sum(losses) / len(losses)
    return out


def _step_source(cfg: ResidualConfig, sources, g: torch.Generator) -> tuple[MaskNet | None, float]:
    net, _ = sources[int(torch.randint(len(sources), (1,), generator=g))] if len(sources) > 1 else sources[0]
    if net is not None and net.density is not None:
        return net, net.density
    if cfg.density_range is not None:
        lo, hi = cfg.density_range
        return net, float(lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64))
    return net, float(cfg.densities[int(torch.randint(len(cfg.densities), (1,), generator=g))])


def blur_some(f: torch.Tensor, fraction: float, g: torch.Generator) -> torch.Tensor:
    """``f`` with each crop, with probability ``fraction``, replaced by its Gaussian blur of a standard
    deviation drawn uniformly from [0.5, 2.5] px, rounded to 8 bits as a photo's values are (everything
    drawn from ``g``, so resumes see the same)."""
    if fraction <= 0:
        return f
    pick = torch.rand(f.shape[0], generator=g) < fraction
    sigmas = 0.5 + 2.0 * torch.rand(f.shape[0], generator=g, dtype=torch.float64)
    out = f.clone()
    for i in torch.nonzero(pick).reshape(-1).tolist():
        out[i:i + 1] = torch.round(gaussian_blur(f[i:i + 1], float(sigmas[i])) * 255) / 255
    return out


# --------------------------------------------------------------------------- the loop


def train_residual(cfg: ResidualConfig, run_dir, *, quiet: bool = False, command: str | None = None,
                   device: str | torch.device = "cpu") -> Path:
    """Train (or resume) the residual inpainter (stage ``residual``) or fine-tune a mask network with it
    (stage ``joint``) in ``run_dir``; returns the path of the exported ``model.json`` (the best by
    validation). See the module docstring.

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.inpaint.training.residual import ResidualConfig, train_residual
    >>> cfg = ResidualConfig(widths=(4,), crop=16, steps=1, batch_size=1, val_crops=1)
    >>> with tempfile.TemporaryDirectory() as run_dir:    # one optimiser step, only to show the call
    ...     print(train_residual(cfg, run_dir, quiet=True).name)
    model.json
    """
    run_dir, device = start_run(cfg, check_config, run_dir, device)
    train_images = open_training_photos(cfg)
    sources = _mask_sources(cfg, device)
    model = ResidualInpainter(cfg.channels, widths=tuple(cfg.widths), normalize=cfg.normalize).to(device)
    init_info = None
    if cfg.init is not None:
        start_model = load_init(load_residual, cfg)
        # normalize may differ: an unnormalised R fine-tuned into a normalised one (REF_STD keeps its input range)
        model.load_state_dict(start_model.state_dict())
        init_info = {"path": str(cfg.init), "provenance": getattr(start_model, "meta", {}).get("provenance", {})}
    joint = cfg.stage == "joint"
    mask_net = sources[0][0] if joint else None
    if mask_net is not None:
        mask_net.train()
    models = {"residual": model}
    opts = {"residual": torch.optim.Adam(model.parameters(), lr=cfg.lr)}
    if mask_net is not None:
        models["masknet"] = mask_net
        opts["masknet"] = torch.optim.Adam(mask_net.parameters(), lr=cfg.mask_lr)
    else:
        for net, _ in sources:
            if net is not None:
                net.requires_grad_(False)
    critic = None
    if cfg.alpha > 0:
        critic = Critic(cfg.channels, cfg.crop, cfg.critic_width).to(device)
        models["critic"] = critic
        opts["critic"] = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
    clock = CpuClock()
    run = Run(run_dir, cfg, models=models, optimizers=opts, extra={"cpu": clock}, ckpt_every=cfg.ckpt_every,
              best_mode="min", allow_changed=("steps",), quiet=quiet)
    start = run.resume()
    fval, val_desc = validation_crops(cfg)
    fval = fval.to(device)
    masks = ([{"model": spec, "density": net.density} for spec, (net, _) in zip(cfg.mask_models, sources)]
             or ("analytic (Belhachmi et al. density, dithered, snapped; sigma 0.45/sqrt(density))"
                 if cfg.masks == "analytic" else "random (round(density H W) uniformly random known pixels per crop)"))
    info = {"trainer": "pdeflow.inpaint.training.residual",
            **provenance(cfg, command=command, device=device,
                         data={"train": train_images.description, "validation": val_desc}, masks=masks,
                         parameters={k: sum(p.numel() for p in m.parameters()) for k, m in models.items()},
                         **({"init": init_info} if init_info is not None else {}),
                         # the starting point (R = 0: diffusion; stage joint: the init models)
                         val_start=run.cached_json("val_start.json", lambda: validate(cfg, model, sources, fval)))}
    best_val: dict = {}

    def export(states: dict, metrics: dict) -> None:
        prov = {**info, **run.best_record(), **clock.provenance(),
                "cpu_hours": round(clock.seconds / 3600, 3), "val_metric": float(run.best), "val": metrics}
        export_model(states["residual"], run_dir / "model", config={"kind": KIND, "model": model.config},
                     provenance=prov)
        if "masknet" in states:
            export_model(states["masknet"], run_dir / "mask", config={"kind": MASK_KIND, "model": mask_net.config},
                         provenance={**prov, "joint_with": str(run_dir / "model.json")})

    params = list(model.parameters()) + (list(mask_net.parameters()) if mask_net is not None else [])
    trained = {k: m for k, m in models.items() if k != "critic"}  # the critic is not exported
    for step in run.steps(start, cfg.steps):
        g = step_generator(cfg.seed, step)
        f = blur_some(train_images.crops(cfg.batch_size, cfg.crop, g), cfg.aug_blur, g).to(device)
        net, d = _step_source(cfg, sources, g)
        frac = cosine_factor(step, cfg.steps, cfg.lr_final)
        for name, opt in opts.items():
            base = {"residual": cfg.lr, "masknet": cfg.mask_lr, "critic": cfg.critic_lr}[name]
            for group in opt.param_groups:
                group["lr"] = base * (frac if name != "critic" else 1.0)
        b = _masks(f, d, net, random=True, g=g, grad=joint, refine=cfg.refine, kind=cfg.masks)
        f64 = f.double()
        u_diff = inpaint_diffusion(f64, b, tol=cfg.tol)
        u = model(f64, b, u_diff=u_diff)
        loss, terms = reconstruction_loss(u, f64, cfg.ssim_weight)
        row = {}
        total = loss
        if critic is not None:
            loss_d = critic_loss(critic, f, u.float(), b.float())
            d_fake = critic(u.float(), b.float()).mean()
            total = loss - cfg.alpha * d_fake
            opts["critic"].zero_grad(set_to_none=True)
            grads_d = torch.autograd.grad(loss_d, list(critic.parameters()))
            row.update(loss_critic=loss_d.item(), d_fake=d_fake.item())
        for opt in opts.values():
            opt.zero_grad(set_to_none=True)
        total.backward()
        gnorm = clip_gradients(params, cfg.clip)
        if critic is not None:
            for p, gr in zip(critic.parameters(), grads_d):
                p.grad = gr
        for opt in opts.values():
            opt.step()
        if critic is not None:
            critic.clip_kernel_norms()
        with torch.no_grad():
            diffusion = loss_scores(*reconstruction_loss(u_diff.detach(), f64, cfg.ssim_weight))
        row.update(**loss_scores(loss, terms), diff_mae255=diffusion["mae255"], diff_ssim=diffusion["ssim"],
                   grad_norm=float(gnorm), lr=cfg.lr * frac, density=d, cpu_time=clock.seconds)
        check_finite(step, "resume with a smaller lr", **row)
        run.log(step, **row)
        if run.validation_due(step, cfg.val_every):
            metrics = validate(cfg, model, sources, fval)
            if run.log_validation(step, metrics):
                best_val = metrics
                export({k: m.state_dict() for k, m in trained.items()}, best_val)
    export_best(run, trained, lambda m: export({k: n.state_dict() for k, n in trained.items()}, m),
                lambda: best_val or validate(cfg, model, sources, fval))
    return run_dir / "model.json"
