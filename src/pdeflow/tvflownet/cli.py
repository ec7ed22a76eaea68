"""``pdeflow train tvflownet``: the command line of :func:`pdeflow.tvflownet.train.train`.

Wiring: ``add_parsers(sub)`` takes the top-level subparsers of ``pdeflow`` (it
fits :data:`pdeflow.cli.COMMANDS`) and registers ``tvflownet`` under a
``train`` subcommand, creating ``train`` if no other trainer has yet (other
trainers add their own ``pdeflow train NAME`` to :func:`train_subparsers`).
The parser sets ``run`` (and ``validate``, ``parser``) defaults as the main CLI expects.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..cli import positive_int as _positive_int, nonneg_int as _nonneg_int, positive_float as _positive_float, nonneg_float as _nonneg_float  # the CLI's one set of argument types

__all__ = ["add_parsers", "train_subparsers", "config_from_args"]


def train_subparsers(sub) -> argparse._SubParsersAction:
    """The subparsers of ``pdeflow train`` (created on first use) under the top-level ``sub``."""
    train_p = sub.choices.get("train")
    if train_p is None:
        train_p = sub.add_parser(
            "train", help="train a network (tvflownet, ...)",
            description="Train a network. Runs are resumable: the same command again continues a killed run "
                        "from its last checkpoint. Under torchrun every process runs the same loop (DDP).")
        train_p._pdeflow_train_sub = train_p.add_subparsers(dest="model", metavar="MODEL", required=True)
    return train_p._pdeflow_train_sub






def _crop(text: str) -> str:
    if text == "mixed" or (text.isdigit() and int(text) >= 2):
        return text
    raise argparse.ArgumentTypeError(f"expected a crop size in pixels (32, 96, 256, ...) or 'mixed', got {text!r}")


def _kwargs(text: str) -> dict:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"width\": 8}}': {e}") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"width\": 8}}', got {text!r}")
    return d


def add_parsers(sub) -> None:
    """Register ``pdeflow train tvflownet`` (see the module doc)."""
    from .train import TrainConfig
    d = TrainConfig()
    p = train_subparsers(sub).add_parser(
        "tvflownet", help="train TVflowNET, the network that learns the TV flow (seed 000)",
        description="Train a TVflowNET (Semi-ResNet, U-Net or LGD) on random greyscale crops, unsupervised with "
                    "the paper's loss (12), supervised on the reference TV flow, or supervised first then "
                    "unsupervised (hybrid). Adam, gradient clipping, validation PSNR against the reference flow "
                    "on held-out images; the best model is exported as RUN_DIR/model.safetensors + model.json "
                    "(load it with pdeflow.tvflownet.load('RUN_DIR')). Running the same command again resumes.",
        epilog="examples:\n"
               "  pdeflow train tvflownet --arch semiresnet --crop 32 --steps 20000 --run-dir runs/sr32\n"
               "  pdeflow train tvflownet --arch unet --crop mixed --data ~/food101/train --run-dir runs/unet\n"
               "  torchrun --nproc_per_node 4 -m pdeflow train tvflownet --arch unet --run-dir runs/ddp\n"
               "Times are PDE times of the flow for images in [0, 1] multiplied by --scale (paper: 5, t in [0, 1]).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("run")
    g.add_argument("--run-dir", required=True, metavar="DIR",
                   help="run directory (created; if it holds this run, training resumes from its last checkpoint)")
    g.add_argument("--steps", type=_positive_int, default=d.steps, metavar="N",
                   help=f"optimiser steps (default {d.steps}; may be raised on resume to extend a run)")
    g.add_argument("--seed", type=_nonneg_int, default=d.seed, help=f"seed of weights and batches (default {d.seed})")
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic torch algorithms (bit-identical resume on CPU; slower on GPU)")
    g.add_argument("--device", default=None,
                   help="torch device (default: cuda:LOCAL_RANK if CUDA is available, else cpu)")
    g.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=("semiresnet", "unet", "lgd"), default=d.arch,
                   help=f"architecture, with the paper's sizes (default {d.arch})")
    g.add_argument("--arch-kwargs", type=_kwargs, default={}, metavar="JSON",
                   help="constructor arguments, e.g. '{\"width\": 8}' (see pdeflow.tvflownet.models)")

    g = p.add_argument_group("data")
    g.add_argument("--data", default=d.data, metavar="DIR|builtin",
                   help="folder of PNG/JPEG/TIFF images (searched recursively; a hashed 10%% of the files is held "
                        "out for validation) or 'builtin' (the built-in pool's TRAIN split; validation uses its "
                        "TEST split) (default builtin)")
    g.add_argument("--synthetic", type=float, default=d.synthetic, metavar="F",
                   help="fraction of each batch generated instead of cropped: flat disks and ellipses "
                        f"(seeds disjoint from the evaluation's; default {d.synthetic:g})")
    g.add_argument("--init", default=None, metavar="MODEL",
                   help="start from this model's weights (shipped name, model path or run directory; "
                        "same --arch and --arch-kwargs)")
    g.add_argument("--val-data", default=None, metavar="DIR|builtin",
                   help="validation images instead (never the training images)")
    g.add_argument("--crop", type=_crop, default=d.crop, metavar="32|96|256|mixed",
                   help=f"crop size; 'mixed': one size per step drawn in [{d.mixed_min}, {d.mixed_max}) "
                        f"(default {d.crop})")
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size, metavar="B",
                   help=f"crops x times per step and process (default {d.batch_size})")
    g.add_argument("--scale", type=_positive_float, default=d.scale,
                   help=f"multiply the [0, 1] images by this (default {d.scale:g}, the paper's)")
    g.add_argument("--t-max", type=_positive_float, default=d.t_max, metavar="T",
                   help=f"flow times t ~ U[0, T) (default {d.t_max:g})")
    g.add_argument("--times-per-image", type=_positive_int, default=d.times_per_image, metavar="K",
                   help="each crop at K times, the first t = 0 (the official code's replicate mode: K = batch "
                        "size) (default 1: one time per crop)")

    g = p.add_argument_group("objective")
    g.add_argument("--mode", choices=("unsupervised", "supervised", "hybrid"), default=d.mode,
                   help="loss (12) of the paper; MSE to the reference flow computed on the fly; or supervised "
                        f"for --hybrid-fraction of the steps, then unsupervised (default {d.mode})")
    g.add_argument("--loss", choices=("paper", "official"), default=d.loss,
                   help="constraint term (|phi|-1)_+ (paper) or (|phi|^2-1)_+ (official code) (default paper)")
    g.add_argument("--a1", type=_nonneg_float, default=d.a1, help=f"weight of the TV term (default {d.a1:g})")
    g.add_argument("--a2", type=_nonneg_float, default=d.a2, help=f"weight of the minimal-norm term (default {d.a2:g})")
    g.add_argument("--ut-method", choices=("jvp", "fd"), default=d.ut_method,
                   help="u_t by forward-mode autodiff or central differences (default jvp)")
    g.add_argument("--lr", type=_positive_float, default=d.lr, help=f"Adam learning rate (default {d.lr:g})")
    g.add_argument("--clip", type=_nonneg_float, default=d.clip,
                   help=f"gradient-norm clipping, 0 = off (default {d.clip:g})")
    g.add_argument("--hybrid-fraction", type=_nonneg_float, default=d.hybrid_fraction, metavar="F",
                   help=f"hybrid: fraction of the steps trained supervised first (default {d.hybrid_fraction:g})")
    g.add_argument("--phi-weight", type=_nonneg_float, default=d.phi_weight,
                   help="supervised: weight of the phi term (default 0: u only)")
    g.add_argument("--phi-target", choices=("div", "dual"), default=d.phi_target,
                   help="supervised phi term: div phi against the reference u_t, or phi against its dual field")
    g.add_argument("--ref-dt", type=_positive_float, default=d.ref_dt,
                   help=f"supervised: time step of the reference flow (default {d.ref_dt:g})")
    g.add_argument("--ref-tol", type=_positive_float, default=d.ref_tol,
                   help=f"supervised: duality-gap tolerance of its steps (default {d.ref_tol:g})")
    g.add_argument("--ref-max-iter", type=_positive_int, default=d.ref_max_iter, metavar="N",
                   help=f"supervised: iteration cap of each of its steps (default {d.ref_max_iter})")

    g = p.add_argument_group("validation and checkpoints")
    g.add_argument("--val-every", type=_positive_int, default=d.val_every, metavar="N",
                   help=f"validate every N steps and after the last (default {d.val_every})")
    g.add_argument("--ckpt-every", type=_positive_int, default=d.ckpt_every, metavar="N",
                   help=f"write the resume checkpoint every N steps (default {d.ckpt_every})")
    g.add_argument("--val-crops", type=_positive_int, default=d.val_crops,
                   help=f"validation crops (default {d.val_crops})")
    g.add_argument("--val-size", type=_positive_int, default=d.val_size,
                   help=f"their size in pixels (default {d.val_size})")
    g.add_argument("--val-times", type=_positive_int, default=d.val_times,
                   help=f"times linspace(0, T, N) (default {d.val_times})")
    g.add_argument("--val-dt", type=_positive_float, default=d.val_dt,
                   help=f"time step of the validation reference (default {d.val_dt:g})")
    g.add_argument("--val-tol", type=_positive_float, default=d.val_tol,
                   help=f"its duality-gap tolerance (default {d.val_tol:g})")
    g.add_argument("--val-max-iter", type=_positive_int, default=d.val_max_iter, metavar="N",
                   help=f"its iteration cap per step (default {d.val_max_iter})")
    g.add_argument("--val-seed", type=_nonneg_int, default=d.val_seed,
                   help="seed of the validation crops (default 0: the same set for every run)")
    p.set_defaults(run=_run, validate=_check, parser=p)


def config_from_args(args):
    """The :class:`~pdeflow.tvflownet.train.TrainConfig` of parsed arguments."""
    from .train import TrainConfig
    data = args.data if args.data == "builtin" else str(Path(args.data).expanduser().resolve())
    val_data = args.val_data
    if val_data not in (None, "builtin"):
        val_data = str(Path(val_data).expanduser().resolve())
    init = args.init
    if init is not None and Path(init).expanduser().exists():
        init = str(Path(init).expanduser().resolve())
    return TrainConfig(
        arch=args.arch, arch_kwargs=args.arch_kwargs, data=data, crop=args.crop, scale=args.scale,
        synthetic=args.synthetic, init=init,
        t_max=args.t_max, times_per_image=args.times_per_image, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, clip=args.clip if args.clip > 0 else None, seed=args.seed, deterministic=args.deterministic,
        mode=args.mode, loss=args.loss, a1=args.a1, a2=args.a2, ut_method=args.ut_method,
        hybrid_fraction=args.hybrid_fraction, phi_weight=args.phi_weight, phi_target=args.phi_target,
        ref_dt=args.ref_dt, ref_tol=args.ref_tol, ref_max_iter=args.ref_max_iter, val_max_iter=args.val_max_iter,
        val_data=val_data, val_crops=args.val_crops,
        val_size=args.val_size, val_times=args.val_times, val_dt=args.val_dt, val_tol=args.val_tol,
        val_seed=args.val_seed, val_every=args.val_every, ckpt_every=args.ckpt_every)


def _check(args) -> None:
    from .train import check_config
    if args.batch_size % args.times_per_image:
        args.parser.error(f"argument --times-per-image: {args.times_per_image} does not divide "
                          f"--batch-size {args.batch_size}")
    if args.hybrid_fraction > 1:
        args.parser.error(f"argument --hybrid-fraction: expected a number in [0, 1], got {args.hybrid_fraction:g}")
    if args.val_times < 2 or args.val_size < 2:
        args.parser.error("arguments --val-times and --val-size must be >= 2")
    from ..cli import check_trainer_args
    check_trainer_args(args, config_from_args, check_config)


def _run(args) -> int:
    from ..cli import run_trainer
    from .train import train

    cfg = config_from_args(args)
    main = int(os.environ.get("RANK", "0")) == 0
    run_dir = Path(args.run_dir)
    if main:
        resuming = (run_dir / "last.pt").exists()
        print(f"{'resuming' if resuming else 'starting'} TVflowNET run in {run_dir}: {cfg.arch}, crop {cfg.crop}, "
              f"{cfg.mode}, {cfg.steps} steps of batch {cfg.batch_size}, data {cfg.data}")
        print(f"intensities: images in [0, 1] times {cfg.scale:g}; flow times t in [0, {cfg.t_max:g}] on that scale")
    meta_path = run_trainer(args, cfg, train)
    if main and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        prov = meta["provenance"]
        print(f"best validation PSNR {prov['val_psnr']:.2f} dB after {prov['steps']} steps "
              f"({prov['steps_total']} trained, {prov['wall_time_s']:.0f} s); "
              f"the identity u(t) = u0 scores {prov['val_psnr_identity']:.2f} dB")
        print(f"model: {meta_path.with_suffix('.safetensors')} + {meta_path.name}; "
              f"load it with pdeflow.tvflownet.load({str(run_dir)!r})")
    return 0
