"""``pdeflow train inpainting``: the command line of :func:`pdeflow.inpaint.train.train`.

``add_parsers(sub)`` takes the top-level subparsers of ``pdeflow`` and
registers ``inpainting`` under the shared ``pdeflow train`` command
(:func:`pdeflow.tvflownet.cli.train_subparsers`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli import nonneg_float, nonneg_int, positive_float, positive_int

__all__ = ["add_parsers", "config_from_args"]


def _unit_interval(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) (a fraction of known pixels), got {text!r}")
    return v


def _crop(text: str) -> int:
    if text.isdigit() and int(text) >= 32 and int(text) % 32 == 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a multiple of 32 (32, 64, 128, ...), got {text!r}")


def add_parsers(sub) -> None:
    """Register ``pdeflow train inpainting``."""
    from ..tvflownet.cli import train_subparsers
    from .train import TrainConfig
    d = TrainConfig()
    p = train_subparsers(sub).add_parser(
        "inpainting", help="train the inpainting WGAN and the joint mask WGAN (seed 004)",
        description="Train the inpainting GANs of seed 004 on random crops of photos, in two stages: "
                    "'wgan' trains the inpainting WGAN (Vasata et al.) on random masks of all densities in "
                    "[--density-min, --density-max]; 'mask' trains the mask generator jointly with the inpainting "
                    "generator and the critic for one --density, starting from a 'wgan' run (--init). "
                    "Adam 5e-5, alpha 0.005, beta 1, critic kernels clipped to norm 1. The best model by "
                    "validation on held-out photos is exported as RUN_DIR/model.safetensors + model.json. "
                    "Running the same command again resumes.",
        epilog="examples:\n"
               "  pdeflow train inpainting --stage wgan --width 0.25 --steps 3000 --run-dir runs/wgan\n"
               "  pdeflow train inpainting --stage mask --density 0.05 --init runs/wgan --width 0.25 "
               "--steps 3000 --run-dir runs/mask05\n"
               "Images are read in [0, 1]; --channels 1 trains on luminance.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("run")
    g.add_argument("--run-dir", required=True, metavar="DIR",
                   help="run directory (created; if it holds this run, training resumes from its last checkpoint)")
    g.add_argument("--stage", choices=("wgan", "mask"), default=d.stage,
                   help="'wgan': inpainting on random masks; 'mask': the joint mask WGAN for --density "
                        f"(default {d.stage})")
    g.add_argument("--steps", type=positive_int, default=d.steps, metavar="N",
                   help=f"optimiser steps (default {d.steps}; may be raised on resume to extend a run)")
    g.add_argument("--seed", type=nonneg_int, default=d.seed, help=f"seed of weights and batches (default {d.seed})")
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic torch algorithms (bit-identical resume on CPU)")
    g.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    g = p.add_argument_group("masks")
    g.add_argument("--density", type=_unit_interval, default=d.density, metavar="D",
                   help=f"stage mask: target fraction of known pixels (default {d.density:g})")
    g.add_argument("--no-random-start", dest="random_start", action="store_false",
                   help="stage mask: the paper's mask generator, without the prior that starts it at random masks "
                        "of --density (see pdeflow.inpaint.masknet.MaskGenerator)")
    g.add_argument("--exact-density", action="store_true",
                   help="stage mask (beyond the paper): every mask has exactly --density of its pixels, the largest "
                        "pre-activations, instead of rounding plus the density loss")
    g.add_argument("--density-min", type=_unit_interval, default=d.density_min, metavar="D",
                   help=f"stage wgan: smallest random-mask density (default {d.density_min:g})")
    g.add_argument("--density-max", type=_unit_interval, default=d.density_max, metavar="D",
                   help=f"stage wgan: largest random-mask density (default {d.density_max:g})")
    g.add_argument("--init", default=None, metavar="DIR",
                   help="stage mask: a stage-wgan run directory whose best generator and critic start this run "
                        "(default: from scratch)")

    g = p.add_argument_group("model")
    g.add_argument("--channels", type=int, choices=(1, 3), default=d.channels,
                   help="1: greyscale (luminance), 3: colour (default 1)")
    g.add_argument("--width", type=positive_float, default=d.width,
                   help="channel multiplier of all networks (1 = the published sizes; 0.25 for CPU) (default 1)")
    g.add_argument("--noise-std", type=nonneg_float, default=d.noise_std,
                   help=f"generator noise in the missing pixels (default {d.noise_std:g})")

    g = p.add_argument_group("data")
    g.add_argument("--data", default=d.data, metavar="DIR|builtin",
                   help="folder of PNG/JPEG/TIFF images (searched recursively; a hashed 10%% of the files is held "
                        "out for validation) or 'builtin' (the built-in photos' TRAIN split; validation uses the "
                        "TEST split) (default builtin)")
    g.add_argument("--val-data", default=None, metavar="DIR|builtin",
                   help="validation images instead (never the training images)")
    g.add_argument("--crop", type=_crop, default=d.crop, metavar="PX",
                   help=f"crop size, a multiple of 32 (default {d.crop})")
    g.add_argument("--batch-size", type=positive_int, default=d.batch_size, metavar="B",
                   help=f"crops per step (default {d.batch_size}; the paper: 128 at 64 px, 32 at 128 px)")

    g = p.add_argument_group("objective")
    g.add_argument("--lr", type=positive_float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    g.add_argument("--mask-lr", type=positive_float, default=None,
                   help="stage mask: the mask network's Adam learning rate (default: --lr)")
    g.add_argument("--alpha", type=nonneg_float, default=d.alpha,
                   help=f"weight of the critic in the generator and mask losses (default {d.alpha:g})")
    g.add_argument("--warmup", type=nonneg_int, default=d.warmup, metavar="N",
                   help="first N steps with alpha = 0: the generator learns from the MAE alone and the critic "
                        f"waits (default {d.warmup}, the paper)")
    g.add_argument("--beta", type=nonneg_float, default=d.beta,
                   help=f"weight of the MAE in the mask loss (default {d.beta:g})")

    g = p.add_argument_group("validation and checkpoints")
    g.add_argument("--val-every", type=positive_int, default=d.val_every, metavar="N",
                   help=f"validate every N steps and after the last (default {d.val_every})")
    g.add_argument("--ckpt-every", type=positive_int, default=d.ckpt_every, metavar="N",
                   help=f"write the resume checkpoint every N steps (default {d.ckpt_every})")
    g.add_argument("--val-crops", type=positive_int, default=d.val_crops,
                   help=f"validation crops (default {d.val_crops})")
    g.add_argument("--val-densities", type=_unit_interval, nargs="+", default=list(d.val_densities), metavar="D",
                   help="stage wgan: random-mask densities of the validation (default 0.05 0.1 0.2)")
    g.add_argument("--val-seed", type=nonneg_int, default=d.val_seed,
                   help="seed of the validation crops, masks and noises (default 0)")
    p.set_defaults(run=_run, validate=_check, parser=p)


def config_from_args(args):
    """The :class:`~pdeflow.inpaint.train.TrainConfig` of parsed arguments."""
    from .train import TrainConfig
    resolve = lambda s: s if s in (None, "builtin") else str(Path(s).expanduser().resolve())  # noqa: E731
    return TrainConfig(
        stage=args.stage, density=args.density, random_start=args.random_start, exact_density=args.exact_density,
        density_min=args.density_min, density_max=args.density_max,
        init=None if args.init is None else str(Path(args.init).expanduser().resolve()), channels=args.channels,
        width=args.width, noise_std=args.noise_std, data=resolve(args.data), crop=args.crop, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, mask_lr=args.mask_lr, alpha=args.alpha, warmup=args.warmup,
        beta=args.beta, seed=args.seed,
        deterministic=args.deterministic, val_data=resolve(args.val_data), val_crops=args.val_crops,
        val_densities=tuple(args.val_densities), val_seed=args.val_seed, val_every=args.val_every,
        ckpt_every=args.ckpt_every)


def _check(args) -> None:
    from .train import check_config
    if args.init is not None:
        if args.stage != "mask":
            args.parser.error("argument --init: only for --stage mask")
        if not (Path(args.init).expanduser() / "config.json").is_file():
            args.parser.error(f"argument --init: {args.init!r} is not a training run directory (no config.json)")
    if args.density_min > args.density_max:
        args.parser.error(f"argument --density-max: {args.density_max:g} is below --density-min {args.density_min:g}")
    from ..cli import check_trainer_args
    check_trainer_args(args, config_from_args, check_config)


def _run(args) -> int:
    from ..cli import run_trainer
    from .train import train

    cfg = config_from_args(args)
    run_dir = Path(args.run_dir)
    what = ("inpainting WGAN on random masks of density "
            f"{cfg.density_min:g}-{cfg.density_max:g}" if cfg.stage == "wgan"
            else f"joint mask WGAN for density {cfg.density:g}"
            + (f", from {cfg.init}" if cfg.init else ", from scratch"))
    print(f"{'resuming' if (run_dir / 'last.pt').exists() else 'starting'} {what} in {run_dir}: width {cfg.width:g}, "
          f"{cfg.channels} channel(s), {cfg.crop}x{cfg.crop} crops, {cfg.steps} steps of batch {cfg.batch_size}, "
          f"data {cfg.data}; images in [0, 1]")
    meta_path = run_trainer(args, cfg, train)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        prov = meta["provenance"]
        val = prov.get("val", {})
        if cfg.stage == "wgan":
            detail = ", ".join(f"{k[8:]} %: {v:.4f}" for k, v in val.items() if k.startswith("val_mae_"))
            print(f"best validation MAE {prov['val_metric']:.4f} (per density {detail}) after {prov['steps']} steps")
        else:
            print(f"best validation loss (eq. 4) {prov['val_metric']:.4f}: density {val.get('val_density', 0):.4f}, "
                  f"MAE {val.get('val_mae', 0):.4f}, PSNR {val.get('val_psnr', 0):.2f} dB after {prov['steps']} steps")
        print(f"model: {meta_path.with_suffix('.safetensors')} + {meta_path.name} "
              f"({prov['steps_total']} steps trained, {prov['wall_time_s']:.0f} s)")
    return 0
