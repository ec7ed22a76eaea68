"""``pdeflow train masknet`` and ``pdeflow train residual``: the learned-mask trainers on the command line.

Each command's options are generated from its config dataclass
(:class:`~pdeflow.inpaint.training.masknet.MaskNetConfig`,
:class:`~pdeflow.inpaint.training.residual.ResidualConfig`; fields declared with
:func:`pdeflow.training.option`); fields without option metadata keep their defaults.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserInputError
from ..inpaint.training import masknet as tm
from ..inpaint.training import residual as tr
from ._common import (
    add_command,
    add_config_options,
    check_data_dir,
    check_device,
    config_error_as_argument,
    config_kwargs,
    run_trainer,
    trainer_options,
)

__all__ = ["add_train_parsers"]

_MASKNET_LAYOUT = [
    ("run", ["--run-dir", "steps", "seed", "deterministic", "--device", "--threads", "--quiet"]),
    ("model", ["density", "channels", "widths"]),
    ("data", ["data", "crop", "batch_size"]),
    ("objective", ["lr", "ssim_weight"]),
    ("validation and checkpoints", ["val_every", "ckpt_every", "val_crops"]),
]
_RESIDUAL_LAYOUT = [
    ("run", ["--run-dir", "stage", "steps", "seed", "deterministic", "--device", "--threads", "--quiet"]),
    ("masks", ["mask_models", "densities", "init", "refine"]),
    ("model", ["channels", "widths", "normalize"]),
    ("data", ["data", "val_data", "crop", "aug_blur", "batch_size"]),
    ("objective", ["lr", "mask_lr", "ssim_weight"]),
    ("validation and checkpoints", ["val_every", "ckpt_every", "val_crops"]),
]
_DEVICE_HELP = "torch device (default cpu)"


def _resolve(path: str) -> str:
    return path if path == "builtin" else str(Path(path).expanduser().resolve())


def masknet_config(args) -> tm.MaskNetConfig:
    """The :class:`~pdeflow.inpaint.training.masknet.MaskNetConfig` of parsed arguments."""
    kw = config_kwargs(tm.MaskNetConfig, args)
    kw["data"] = tuple(_resolve(d) for d in kw["data"])
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
                if not Path(m).expanduser().exists():
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
    U-Net's correction on the unknown pixels, on analytic masks or the masks of trained mask networks
    (--mask-models). Stage 'joint' fine-tunes one mask network together with the inpainter (--init: a trained
    residual inpainter). The best model by validation is exported as RUN_DIR/model.safetensors + model.json (use
    it with `pdeflow inpaint --method learned --model RUN_DIR`). Running the same command again resumes."""
    cfg = residual_config(args)
    masks = ", ".join(cfg.mask_models) if cfg.mask_models else "analytic masks"
    print(f"training stage {cfg.stage} of the residual inpainter in {args.run_dir} ({masks}): "
          f"{cfg.channels} channel(s), {cfg.crop}x{cfg.crop} crops, {cfg.steps} steps of batch {cfg.batch_size}; "
          "images in [0, 1]")
    _report(run_trainer(args, cfg, tr.train_residual))
    return 0


def add_train_parsers(train_sub) -> None:
    """Register ``masknet`` and ``residual`` on the subparsers of ``pdeflow train``."""
    p = add_command(train_sub, "masknet", _run_masknet,
                    help="train a mask network (learned correction of the analytic mask density)",
                    examples=["pdeflow train masknet --density 0.05 --steps 3000 --run-dir runs/masknet05"],
                    validate=_checker(masknet_config, tm.check_config))
    add_config_options(p, tm.MaskNetConfig, _MASKNET_LAYOUT, extra=trainer_options(_DEVICE_HELP))

    p = add_command(train_sub, "residual", _run_residual,
                    help="train the residual inpainter (diffusion plus a learned correction), or fine-tune a mask "
                         "network with it",
                    examples=["pdeflow train residual --steps 3000 --run-dir runs/residual",
                              "pdeflow train residual --stage joint --mask-models runs/masknet05 --densities 0.05 "
                              "--init runs/residual --run-dir runs/joint05"],
                    validate=_checker(residual_config, tr.check_config))
    add_config_options(p, tr.ResidualConfig, _RESIDUAL_LAYOUT, extra=trainer_options(_DEVICE_HELP))
