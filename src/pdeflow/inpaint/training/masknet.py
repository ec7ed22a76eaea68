"""Training the mask network (:class:`~pdeflow.inpaint.learned.MaskNet`): stage ``masknet``.

One resumable run (:class:`pdeflow.training.Run`) per call::

    from pdeflow.inpaint.training.masknet import MaskNetConfig, train_masknet
    train_masknet(MaskNetConfig(density=0.05, data=("builtin", ".data/photos/opencv")), "runs/masknet-05")

The same call again resumes a killed run where it stopped (``steps`` may be
raised to extend a finished run).

A step
------
1. Everything random comes from ``step_generator(seed, step)``: ``batch_size``
   crops of ``crop x crop`` pixels from training photos picked uniformly at
   random, then (``density=None``: one network for all densities) the step's
   density, drawn from ``densities``, then the random shift/flip of the
   blue-noise tile of each crop.
2. ``b = net(f)``: exactly ``k = round(D crop^2)`` known pixels per crop, with
   the straight-through gradient of :mod:`pdeflow.inpaint.learned.masknet`.
3. ``u = inpaint_diffusion(f, b)`` (homogeneous diffusion inpainting, float64, relative
   residual ``tol``); its gradient with respect to the mask is one adjoint solve.
4. Loss ``charbonnier(u, f) + ssim_weight (1 - SSIM(u, f)) + mse_weight MSE(u, f)`` (images in
   [0, 1]; the MSE of the batch, i.e. the mean of its crops' MSEs, as a large image's MSE is the mean
   of its parts': detailed parts count most); Adam, learning
   rate ``lr`` on a cosine schedule to ``lr * lr_final`` over ``steps``;
   gradients clipped to norm ``clip``.
5. Every ``val_every`` steps and after the last: validation on ``val_crops``
   fixed crops of the validation photos with the fixed (unshifted) tile; the
   metric is the loss; the best model is exported as ``model.safetensors`` +
   ``model.json`` (config ``{"kind": "masknet", "model": MaskNet.config}``,
   provenance: training config, data, steps, wall and CPU seconds, the command,
   validation numbers and those of the analytic mask on the same crops).

Data: ``data`` lists the sources, ``"builtin"`` (the TRAIN split of the
built-in photos; never the TEST split that the evaluation crops from) and
folders. A ``val_fraction`` of all photos, chosen by a hash of their names,
is held out for validation (never trained on); the validation crops are never
reported as results.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ... import datasets
from ...io import save_model
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
from ..learned.masknet import KIND, MaskNet, load_masknet
from ..masks.analytic import analytic_mask
from ..masks.dither import blue_noise_tile, threshold_map
from ..operators.diffusion import inpaint_diffusion
from ._shared import densities, export_best, load_init, start_run, tag

__all__ = ["MaskNetConfig", "train_masknet", "check_config", "open_photos", "build_masknet", "inpainting_loss"]


@dataclass
class MaskNetConfig:
    """Everything that determines a mask-network training run (saved as ``config.json``).

    Examples
    --------
    >>> from pdeflow.inpaint.training.masknet import MaskNetConfig, check_config
    >>> cfg = MaskNetConfig(density=0.1, widths=(4,), crop=16, steps=1)
    >>> check_config(cfg)
    >>> cfg.density, cfg.channels, cfg.batch_size
    (0.1, 1, 16)
    """

    density: float | None = option(0.05, "target fraction of known pixels, or 'all': one network for every density, "
                                         "trained on 5, 10 and 20 %% (default {default:g})", type="density_or_all",
                                   metavar="D|all")  #: None: one network for all ``densities``
    densities: tuple = (0.05, 0.1, 0.2)  #: density=None: the step's density is drawn from these
    channels: int = option(1, "1: greyscale (luminance), 3: colour (default 1)", type="int", choices=(1, 3))
    widths: tuple = option((16, 32, 64), "U-Net channels per level (default 16 32 64)", type="positive_int",
                           nargs="+", metavar="C")
    bound: float = 3.0                   #: corrections are bound * tanh
    sigma: float = 2.0                   #: analytic density |laplacian(G_sigma f)|
    floor: float = 0.05                  #: + floor * its mean
    snap_sigma: float = 1.0              #: extremality |f - G_snap_sigma f|
    density_input: bool = True           #: log(density) as an input channel
    tile: int = 64                       #: blue-noise tile size
    feedback: bool = option(False, "a second pass that reads the first mask's inpainting error (MaskNet's "
                            "feedback; with --init, the starting network becomes its first pass)", flag=True)
    feedback_gamma: float = option(0.0, "with --feedback and --init of a network without it: the starting weight "
                                        "of the error's log in the second pass (default {default:g})",
                                   type="nonneg_float", metavar="G")
    init: str | None = option(None, "a trained mask network to start from (shipped name such as masknet-10, "
                              "model.json or run directory; same widths; its analytic-map settings are "
                              "kept)", metavar="MODEL")
    # data
    data: tuple = option(("builtin",), "training photos: 'builtin' (the shipped TRAIN split) and/or folders "
                         "(default builtin)", nargs="+", metavar="DIR|builtin")
    val_fraction: float = 0.15           #: of all photos, held out (by name hash) for validation
    crop: int = option(64, "crop size, at least 16 (default {default})", type="positive_int", metavar="PX")
    # optimisation
    steps: int = option(3000, "optimiser steps (default {default}; may be raised on resume to extend a run)",
                        type="positive_int", metavar="N")
    batch_size: int = option(16, "crops per step (default {default})", type="positive_int")
    lr: float = option(3e-4, "Adam learning rate (default {default:g})", type="positive_float")
    lr_final: float = 0.01               #: the cosine schedule ends at lr * lr_final
    clip: float = 1.0                    #: gradient-norm clip
    ssim_weight: float = option(0.3, "weight of 1 - SSIM in the loss (default {default:g})", type="nonneg_float")
    mse_weight: float = option(0.0, "weight of the MSE (images in [0, 1]) in the loss (default {default:g}: off)",
                               type="nonneg_float")
    tol: float = 1e-5                    #: diffusion solver's relative residual in training
    seed: int = option(0, "seed of weights and batches (default {default})", type="nonneg_int")
    deterministic: bool = option(False, "deterministic torch algorithms (bit-identical resume on CPU)", flag=True)
    # validation and checkpoints
    val_crops: int = option(64, "validation crops (default {default})", type="positive_int")
    val_seed: int = 0
    val_every: int = val_every_option(100)
    ckpt_every: int = ckpt_every_option(25)


def check_config(cfg: MaskNetConfig) -> None:
    """Raise ValueError naming the first field that is out of range.

    Examples
    --------
    >>> from pdeflow.inpaint.training.masknet import MaskNetConfig, check_config
    >>> check_config(MaskNetConfig())                    # the defaults are valid
    >>> try:
    ...     check_config(MaskNetConfig(crop=8))
    ... except ValueError as e:
    ...     print(str(e).split(",")[0])
    MaskNetConfig.crop: expected an int >= 16
    """
    need = ConfigCheck(cfg)
    need.fractions("density", optional=True)
    need.tuple_of("densities", "numbers in (0, 1)", lambda d: is_number(d) and 0 < d < 1)
    need(cfg.channels in (1, 3), "channels", "1 or 3")
    need.tuple_of("widths", "positive ints", lambda w: isinstance(w, int) and w >= 1)
    need.numbers("bound", "lr", "snap_sigma", "tol", "clip")
    need.numbers("sigma", "floor", "ssim_weight", "mse_weight", "lr_final", positive=False)
    need(cfg.init is None or isinstance(cfg.init, str), "init", "None or a model name or path")
    need.flags("density_input", "feedback")
    need.numbers("feedback_gamma", positive=False)
    need(cfg.density is not None or cfg.density_input, "density_input", "True when density is None")
    need.tuple_of("data", "'builtin' and folders", lambda s: isinstance(s, str))
    need.fractions("val_fraction")
    need.ints("crop", minimum=16)
    need.ints("tile")
    need.trainer()
    need(cfg.tol < 1, "tol", "a number in (0, 1)")


# --------------------------------------------------------------------------- data


def open_photos(cfg: MaskNetConfig) -> tuple[datasets.ImageSet, datasets.ImageSet]:
    """Training and validation photos of ``cfg.data`` (see the module docstring and
    :func:`pdeflow.datasets.source_images`).

    Examples
    --------
    >>> from pdeflow.inpaint.training.masknet import MaskNetConfig, open_photos
    >>> train, val = open_photos(MaskNetConfig())        # the built-in TRAIN split, split by name hash
    >>> len(train), len(val)
    (10, 2)
    """
    return datasets.source_images(cfg.data, grey=cfg.channels == 1, val_fraction=cfg.val_fraction)


def validation_crops(cfg: MaskNetConfig, images: datasets.ImageSet) -> torch.Tensor:
    """The fixed validation crops ``(val_crops, C, crop, crop)`` (seed ``val_seed``)."""
    return images.crops(cfg.val_crops, cfg.crop, torch.Generator().manual_seed(cfg.val_seed))


# --------------------------------------------------------------------------- model and loss


def build_masknet(cfg: MaskNetConfig) -> MaskNet:
    """A freshly initialised :class:`~pdeflow.inpaint.learned.masknet.MaskNet` of ``cfg``'s model fields.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.training.masknet import MaskNetConfig, build_masknet
    >>> net = build_masknet(MaskNetConfig(density=0.1, widths=(4,), tile=16))
    >>> f = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> type(net).__name__, int(net(f, 0.1).sum())       # round(0.1 * 256) known pixels
    ('MaskNet', 26)
    """
    return MaskNet(cfg.channels, cfg.density, widths=tuple(cfg.widths), bound=cfg.bound, sigma=cfg.sigma,
                   floor=cfg.floor, snap_sigma=cfg.snap_sigma, density_input=cfg.density_input, tile=cfg.tile,
                   norm_window=cfg.crop, feedback=cfg.feedback)


def inpainting_loss(f: torch.Tensor, b: torch.Tensor, ssim_weight: float, tol: float, mse_weight: float = 0.0
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`~pdeflow.inpaint.learned.losses.reconstruction_loss` of ``u = inpaint_diffusion(f, b)`` (float64); the
    terms also hold ``u``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.training.masknet import inpainting_loss
    >>> f = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> loss, terms = inpainting_loss(f, torch.ones_like(f), 0.3, 1e-6)   # every pixel known: u = f
    >>> round(float(loss), 6), sorted(terms)
    (0.0, ['charbonnier', 'mae', 'ssim', 'u'])
    """
    f64 = f.double()
    u = inpaint_diffusion(f64, b.double(), tol=tol)
    loss, terms = reconstruction_loss(u, f64, ssim_weight)
    if mse_weight:
        loss = loss + mse_weight * ((u - f64) ** 2).mean()
    return loss, {**terms, "u": u.detach()}


@torch.no_grad()
def validate(cfg: MaskNetConfig, net: MaskNet, fval: torch.Tensor) -> dict[str, float]:
    """Validation metrics (loss, MAE on 0-255, SSIM) per density with the fixed tile; ``metric`` decides."""
    out: dict[str, float] = {}
    losses = []
    with evaluating(net):
        for d in densities(cfg.density, cfg):
            scores = loss_scores(*inpainting_loss(fval, net(fval, d), cfg.ssim_weight, 1e-6, cfg.mse_weight))
            losses.append(scores["loss"])
            out.update({f"val_{k}_{tag(d)}": v for k, v in scores.items()})
    out["metric"] = sum(losses) / len(losses)
    return out


@torch.no_grad()
def baselines(cfg: MaskNetConfig, fval: torch.Tensor) -> dict:
    """The analytic mask (no learning; what the untrained network gives) on the validation crops."""
    out = {}
    for d in densities(cfg.density, cfg):
        m = analytic_mask(fval.double(), d, sigma=cfg.sigma, floor=cfg.floor, snap=True, snap_sigma=cfg.snap_sigma,
                          tile=blue_noise_tile(cfg.tile))
        out[tag(d)] = {"analytic_snap": loss_scores(*inpainting_loss(fval, m, cfg.ssim_weight, 1e-6, cfg.mse_weight))}
    return out


# --------------------------------------------------------------------------- the loop


def train_masknet(cfg: MaskNetConfig, run_dir, *, quiet: bool = False, command: str | None = None,
                  device: str | torch.device = "cpu") -> Path:
    """Train (or resume) a mask network in ``run_dir``; returns the path of the exported ``model.json``
    (the best model by validation). See the module docstring.

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.inpaint.training.masknet import MaskNetConfig, train_masknet
    >>> cfg = MaskNetConfig(density=0.1, widths=(4,), crop=16, steps=1, batch_size=1, val_crops=1, tile=16)
    >>> with tempfile.TemporaryDirectory() as run_dir:    # one optimiser step, only to show the call
    ...     print(train_masknet(cfg, run_dir, quiet=True).name)
    model.json
    """
    run_dir, device = start_run(cfg, check_config, run_dir, device)
    train_images, val_images = open_photos(cfg)
    if cfg.init is None:
        net, init_info = build_masknet(cfg), None
    else:
        # the starting network's analytic maps (sigma, floor, ...) are kept: its weights were trained on them;
        # its inputs are standardised over this run's crops
        initial = load_init(load_masknet, cfg)
        if cfg.feedback:
            initial = initial.with_feedback(cfg.feedback_gamma)
        net = MaskNet(**{**initial.config, "density": cfg.density, "norm_window": cfg.crop})
        net.load_state_dict(initial.state_dict())
        init_info = {"model": str(cfg.init), "provenance": initial.meta.get("provenance", {})}
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    clock = CpuClock()
    run = Run(run_dir, cfg, models={"masknet": net}, optimizers={"adam": opt}, extra={"cpu": clock},
              ckpt_every=cfg.ckpt_every, best_mode="min", allow_changed=("steps",), quiet=quiet)
    start = run.resume()
    fval = validation_crops(cfg, val_images).to(device)
    info = {"trainer": "pdeflow.inpaint.training.masknet",
            **provenance(cfg, command=command, device=device,
                         data={"train": train_images.description, "validation": val_images.description},
                         parameters=sum(p.numel() for p in net.parameters()),
                         **({"init": init_info} if init_info is not None else {}),
                         val_baselines=run.cached_json("val_baselines.json", lambda: baselines(cfg, fval)))}
    tile = blue_noise_tile(cfg.tile)
    dens = densities(cfg.density, cfg)
    best_val: dict = {}

    def export(model_state, metrics):
        prov = {**info, **run.best_record(), **clock.provenance(), "val_metric": float(run.best),
                "val": metrics}
        save_model(model_state, run_dir / "model", config={"kind": KIND, "model": net.config}, provenance=prov)

    for step in run.steps(start, cfg.steps):
        g = step_generator(cfg.seed, step)
        f = train_images.crops(cfg.batch_size, cfg.crop, g).to(device)
        d = dens[0] if len(dens) == 1 else dens[int(torch.randint(len(dens), (1,), generator=g))]
        thr = threshold_map(f.shape, tile=tile, random=True, generator=g, device=device)
        lr = cfg.lr * cosine_factor(step, cfg.steps, cfg.lr_final)
        for group in opt.param_groups:
            group["lr"] = lr
        b = net(f, d, thresholds=thr)
        loss, terms = inpainting_loss(f, b, cfg.ssim_weight, cfg.tol, cfg.mse_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = clip_gradients(net, cfg.clip)
        opt.step()
        row = {**loss_scores(loss, terms), "grad_norm": float(gnorm), "lr": lr, "density": d, "cpu_time": clock.seconds}
        check_finite(step, "resume with a smaller lr", **row)
        run.log(step, **row)
        if run.validation_due(step, cfg.val_every):
            metrics = validate(cfg, net, fval)
            if run.log_validation(step, metrics):
                best_val = metrics
                export(net.state_dict(), best_val)
    export_best(run, {"masknet": net}, lambda m: export(net.state_dict(), m),
                lambda: best_val or validate(cfg, net, fval))
    return run_dir / "model.json"
