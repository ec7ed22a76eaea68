"""``pdeflow train inpainting``, ``train masknet`` and ``train residual``: the inpainting trainers on the command
line.

Each command's options are generated from its config dataclass
(:class:`~pdeflow.inpaint.training.wgan.TrainConfig`,
:class:`~pdeflow.inpaint.training.masknet.MaskNetConfig`,
:class:`~pdeflow.inpaint.training.residual.ResidualConfig`; fields declared with
:func:`pdeflow.training.option`); fields without option metadata keep their defaults.
``train inpainting --stage S`` trains the GANs (``wgan``, ``mask``) or a stage of the learned masks
(``masknet``, ``residual``, ``joint``): its parser (``StagedParser``, of the shared plumbing) hands the
command line to the stage's own parser, whose options are those of ``train masknet`` / ``train residual``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserInputError
from ..inpaint.training import masknet as tm
from ..inpaint.training import residual as tr
from ..inpaint.training.wgan import TrainConfig, check_config, train
from ..models import shipped_models
from ._arguments import ArgumentParser, add_command, add_config_options, check_data_dir, check_device, config_kwargs
from ._training import check_trainer_args, config_error_as_argument, run_trainer, trainer_options

__all__ = ["add_train_parsers", "config_from_args"]


_MASKNET_LAYOUT = [
    ("run", ["--run-dir", "steps", "seed", "deterministic", "--device", "--threads", "--quiet"]),
    ("model", ["density", "channels", "widths", "init", "feedback", "feedback_gamma"]),
    ("data", ["data", "crop", "batch_size"]),
    ("objective", ["lr", "ssim_weight", "mse_weight"]),
    ("validation and checkpoints", ["val_every", "ckpt_every", "val_crops"]),
]
_RESIDUAL_LAYOUT = [
    ("run", ["--run-dir", "stage", "steps", "seed", "deterministic", "--device", "--threads", "--quiet"]),
    ("masks", ["mask_models", "masks", "densities", "init", "refine"]),
    ("model", ["channels", "widths", "normalize"]),
    ("data", ["data", "val_data", "crop", "aug_blur", "batch_size"]),
    ("objective", ["lr", "mask_lr", "ssim_weight", "alpha", "critic_width", "critic_lr"]),
    ("validation and checkpoints", ["val_every", "ckpt_every", "val_crops"]),
]
_DEVICE_HELP = "torch device (default cpu)"


def _resolve(path: str) -> str:
    return path if path == "builtin" else str(Path(path).expanduser().resolve())


def masknet_config(args) -> tm.MaskNetConfig:
    """The :class:`~pdeflow.inpaint.training.masknet.MaskNetConfig` of parsed arguments."""
    kw = config_kwargs(tm.MaskNetConfig, args)
    kw["data"] = tuple(_resolve(d) for d in kw["data"])
    if kw["init"] is not None and Path(kw["init"]).expanduser().exists():   # a path (else a shipped name)
        kw["init"] = str(Path(kw["init"]).expanduser().resolve())
    return tm.MaskNetConfig(**kw)


def residual_config(args) -> tr.ResidualConfig:
    """The :class:`~pdeflow.inpaint.training.residual.ResidualConfig` of parsed arguments."""
    kw = config_kwargs(tr.ResidualConfig, args)
    kw["data"] = tuple(_resolve(d) for d in kw["data"])
    kw["val_data"] = _resolve(kw["val_data"])
    kw["mask_models"] = tuple(str(Path(m).expanduser().resolve()) for m in kw["mask_models"])
    if kw["init"] is not None:
        kw["init"] = str(Path(kw["init"]).expanduser().resolve())
    return tr.ResidualConfig(**kw)


def _checker(config_from_args, check_config):
    def check(args) -> None:
        for d in args.data:
            check_data_dir(args.parser, "--data", d)
        check_data_dir(args.parser, "--val-data", getattr(args, "val_data", None))
        for name in ("mask_models", "init"):
            paths = getattr(args, name, None)
            for m in ([paths] if isinstance(paths, str) else paths or []):
                if not Path(m).expanduser().exists() and m not in shipped_models("inpaint"):
                    args.parser.error(f"argument --{name.replace('_', '-')}: {m!r} does not exist")
        if args.device is not None:
            args.device = check_device(args.parser, args.device)
        else:
            args.device = "cpu"
        try:
            check_config(config_from_args(args))
        except UserInputError as e:
            args.parser.error(config_error_as_argument(str(e), args))
    return check


def _report(meta_path: Path) -> None:
    if meta_path.exists():
        prov = json.loads(meta_path.read_text()).get("provenance", {})
        if "val_metric" in prov:
            print(f"best validation metric {prov['val_metric']:.4g} after {prov.get('steps', '?')} steps")
        print(f"model: {meta_path.with_suffix('.safetensors')} + {meta_path.name}")


def _run_masknet(args) -> int:
    """Train a mask network for one mask density on random crops of photos: a small U-Net corrects the analytic
    density |laplacian(G_sigma f)|, the mask is dithered from it and the loss is the error of homogeneous
    diffusion inpainting from the mask. The best model by validation on held-out photos is exported as
    RUN_DIR/model.safetensors + model.json (use it with `pdeflow mask --method learned --model RUN_DIR`).
    Running the same command again resumes."""
    cfg = masknet_config(args)
    which = (f"density {cfg.density:g}" if cfg.density is not None
             else f"all densities ({', '.join(f'{d:g}' for d in cfg.densities)})")
    print(f"training a mask network for {which} in {args.run_dir}: {cfg.channels} channel(s), "
          f"{cfg.crop}x{cfg.crop} crops, {cfg.steps} steps of batch {cfg.batch_size}; images in [0, 1]")
    _report(run_trainer(args, cfg, tm.train_masknet))
    return 0


def _run_residual(args) -> int:
    """Train the residual inpainter on random crops of photos: homogeneous diffusion inpainting plus a small
    U-Net's correction on the unknown pixels, on analytic or uniformly random masks (--masks) or the masks of
    trained mask networks (--mask-models). Stage 'joint' fine-tunes one mask network together with the
    inpainter (--init: a trained residual inpainter). The best model by validation is exported as
    RUN_DIR/model.safetensors + model.json (use it with `pdeflow inpaint --method learned --model RUN_DIR`).
    Running the same command again resumes."""
    cfg = residual_config(args)
    masks = ", ".join(cfg.mask_models) if cfg.mask_models else f"{cfg.masks} masks"
    print(f"training stage {cfg.stage} of the residual inpainter in {args.run_dir} ({masks}): "
          f"{cfg.channels} channel(s), {cfg.crop}x{cfg.crop} crops, {cfg.steps} steps of batch {cfg.batch_size}; "
          "images in [0, 1]")
    _report(run_trainer(args, cfg, tr.train_residual))
    return 0


# --------------------------------------------------------------------------- pdeflow train inpainting (GANs)

def _crop(text: str) -> int:
    if text.isdigit() and int(text) >= 32 and int(text) % 32 == 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a multiple of 32 (32, 64, 128, ...), got {text!r}")


#: Groups and order of the options of `pdeflow train inpainting`: TrainConfig fields (whose option(...)
#: metadata declares help, type and choices) and the command line's own "--flags".
_TRAIN_LAYOUT = [
    ("run", ["--run-dir", "stage", "steps", "seed", "deterministic", "--device", "--threads", "--quiet"]),
    ("masks", ["density", "random_start", "exact_density", "density_min", "density_max", "init"]),
    ("model", ["channels", "width", "noise_std"]),
    ("data", ["data", "val_data", "crop", "batch_size"]),
    ("objective", ["lr", "mask_lr", "alpha", "warmup", "beta"]),
    ("validation and checkpoints", ["val_every", "ckpt_every", "val_crops", "val_densities", "val_seed"]),
]


def _add_inpainting_parser(train_sub) -> None:
    """Register ``inpainting`` on the subparsers of ``pdeflow train``: the GANs' options, and the parsers of the
    learned masks' stages (:class:`StagedParser`)."""
    p = add_command(train_sub, "inpainting", _run_train,
                    examples=["pdeflow train inpainting --stage wgan --width 0.25 --steps 3000 --run-dir runs/wgan",
                              "pdeflow train inpainting --stage mask --density 0.05 --init runs/wgan --width 0.25 "
                              "--steps 3000 --run-dir runs/mask05",
                              "pdeflow train inpainting --stage masknet --density 0.05 --run-dir runs/masknet05"],
                    note="Images are read in [0, 1]; --channels 1 trains on luminance. --stage masknet, residual "
                         "and joint are the learned-mask design's stages, with the options of `pdeflow train "
                         "masknet`, `pdeflow train residual` and `pdeflow train residual --stage joint` "
                         "(`pdeflow train inpainting --stage S --help` lists them).",
                    validate=_check_train)
    extra = trainer_options("torch device (default: cuda if available, else cpu)")
    add_config_options(p, TrainConfig, _TRAIN_LAYOUT, types={"crop32": _crop}, extra=extra)
    p.stages = _stage_parsers(p.prog)
    stage = next(a for a in p._actions if a.dest == "stage")
    stage.choices = (*stage.choices, *p.stages)   # shown in the usage; the stages' parsers take those
    stage.help += "; masknet, residual, joint: the learned masks' commands (below)"


def config_from_args(args):
    """The :class:`~pdeflow.inpaint.training.wgan.TrainConfig` of parsed arguments."""
    kw = config_kwargs(TrainConfig, args)
    kw["data"] = tuple(_resolve(d) for d in kw["data"])
    for name in ("val_data", "init"):
        if kw[name] is not None:
            kw[name] = _resolve(kw[name])
    return TrainConfig(**kw)


def _check_train(args) -> None:
    if args.init is not None:
        if args.stage != "mask":
            args.parser.error("argument --init: only for --stage mask")
        if not (Path(args.init).expanduser() / "config.json").is_file():
            args.parser.error(f"argument --init: {args.init!r} is not a training run directory (no config.json)")
    if args.density_min > args.density_max:
        args.parser.error(f"argument --density-max: {args.density_max:g} is below --density-min {args.density_min:g}")
    check_trainer_args(args, config_from_args, check_config)


def _run_train(args) -> int:
    """Train the inpainting GANs of Peter (2022) on random crops of photos, in two stages: 'wgan' trains the
    inpainting WGAN (Vasata et al.) on random masks of all densities in [--density-min, --density-max]; 'mask'
    trains the mask generator jointly with the inpainting generator and the critic for one --density, starting
    from a 'wgan' run (--init). Adam 5e-5, alpha 0.005, beta 1, critic kernels clipped to norm 1. The best model
    by validation on held-out photos is exported as RUN_DIR/model.safetensors + model.json. Running the same
    command again resumes."""
    cfg = config_from_args(args)
    run_dir = Path(args.run_dir)
    what = ("inpainting WGAN on random masks of density "
            f"{cfg.density_min:g}-{cfg.density_max:g}" if cfg.stage == "wgan"
            else f"joint mask WGAN for density {cfg.density:g}"
            + (f", from {cfg.init}" if cfg.init else ", from scratch"))
    print(f"{'resuming' if (run_dir / 'last.pt').exists() else 'starting'} {what} in {run_dir}: width {cfg.width:g}, "
          f"{cfg.channels} channel(s), {cfg.crop}x{cfg.crop} crops, {cfg.steps} steps of batch {cfg.batch_size}, "
          f"data {' '.join(cfg.data)}; images in [0, 1]")
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


# --------------------------------------------------------------------------- the learned masks' stages

def _masknet_options(p: argparse.ArgumentParser) -> None:
    p.set_defaults(run=_run_masknet, validate=_checker(masknet_config, tm.check_config), parser=p)
    add_config_options(p, tm.MaskNetConfig, _MASKNET_LAYOUT, extra=trainer_options(_DEVICE_HELP))


def _residual_options(p: argparse.ArgumentParser) -> None:
    p.set_defaults(run=_run_residual, validate=_checker(residual_config, tr.check_config), parser=p)
    add_config_options(p, tr.ResidualConfig, _RESIDUAL_LAYOUT, extra=trainer_options(_DEVICE_HELP))


def _stage_parsers(prog: str) -> dict[str, argparse.ArgumentParser]:
    """The parsers of ``train inpainting --stage masknet|residual|joint``: the options of ``train masknet`` and
    ``train residual`` (whose own ``--stage`` is residual or joint) under the prog of ``train inpainting``."""
    def parser(run):
        return ArgumentParser(prog=prog, description=" ".join(run.__doc__.split()))
    masknet = parser(_run_masknet)
    masknet.add_argument("--stage", choices=["masknet"], help="masknet: train a mask network")
    _masknet_options(masknet)
    residual = parser(_run_residual)
    _residual_options(residual)
    return {"masknet": masknet, "residual": residual, "joint": residual}


def add_train_parsers(train_sub) -> None:
    """Register ``inpainting``, ``masknet`` and ``residual`` on the subparsers of ``pdeflow train`` (made with
    ``parser_class=StagedParser``)."""
    _add_inpainting_parser(train_sub)
    p = add_command(train_sub, "masknet", _run_masknet,
                    examples=["pdeflow train masknet --density 0.05 --steps 3000 --run-dir runs/masknet05"])
    _masknet_options(p)

    p = add_command(train_sub, "residual", _run_residual,
                    examples=["pdeflow train residual --steps 3000 --run-dir runs/residual",
                              "pdeflow train residual --stage joint --mask-models runs/masknet05 --densities 0.05 "
                              "--init runs/residual --run-dir runs/joint05"])
    _residual_options(p)
