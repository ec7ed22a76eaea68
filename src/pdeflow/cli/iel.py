"""``pdeflow iel-experiment``: the command line of :mod:`pdeflow.evaluate.iel`.

``add_parsers(sub)`` registers the subcommand on the top-level subparsers of ``pdeflow``. The method
(Liu et al., 2023) and its full reference are in :mod:`pdeflow.iel`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import UserInputError
from ..evaluate.iel import PRESETS, ExperimentSpec, RunConfig, check_spec, run_experiment
from ..training import RunConfigError
from ._arguments import add_command, add_config_options, check_device, config_kwargs, nonneg_float, positive_int
from ._errors import CLIError
from ._outputs import check_writable_dir

__all__ = ["add_parsers", "PRESETS", "spec_from_args"]

def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N (e.g. 0/2), got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N (e.g. 0/2), got {text!r}")
    return k, n


def _fraction(text: str) -> float:
    v = nonneg_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


#: The fields of RunConfig whose command-line default is "from --preset" (explicit options win).
_PRESET_FIELDS = tuple(PRESETS["full"])

#: Groups and order of the options: ExperimentSpec and RunConfig fields (whose option(...) metadata
#: declares help, type and choices) and the command line's own "--flags".
_LAYOUT = [
    ("experiment", ["--out", "mode", "--preset", "seeds", "--shard", "--device", "--threads", "--quiet"]),
    ("data and label noise", ["dataset", "data_path", "noise", "noise_size", "noise_keep", "noise_area"]),
    ("inverse evolution layers", ["dts", "layers", "operator", "operator_param", "boundary"]),
    ("network and training (defaults from --preset)", [*_PRESET_FIELDS, "optimizer", "deterministic"]),
]


def _extra_options() -> dict:
    return {
        "--out": lambda g: g.add_argument(
            "--out", required=True, metavar="DIR", help="experiment folder (created; resumed if it holds this "
                                                        "experiment)"),
        "--preset": lambda g: g.add_argument(
            "--preset", choices=tuple(PRESETS), default="full",
            help="model and schedule sizes: " + "; ".join(
                f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items()) for k, v in PRESETS.items())
            + " (default full; the flags below override)"),
        "--shard": lambda g: g.add_argument(
            "--shard", type=_shard, default=(0, 1), metavar="K/N",
            help="train only runs i with i %% N == K (several processes on one grid)"),
        "--device": lambda g: g.add_argument("--device", default="cpu", help="torch device (default cpu)"),
        "--threads": lambda g: g.add_argument("--threads", type=positive_int, default=None,
                                              help="torch CPU threads (default: torch's)"),
        "--quiet": lambda g: g.add_argument("--quiet", action="store_true", help="no progress bars"),
    }


def add_parsers(sub) -> None:
    """Register ``pdeflow iel-experiment``."""
    p = add_command(sub, "iel-experiment", _run,
                    examples=["pdeflow iel-experiment --preset small --dataset dsb2018 --seeds 0 1 2 --out "
                              "out/iel-small",
                              "pdeflow iel-experiment --dataset mricron --noise blocks --dt 0.025 --layers 30 --out "
                              "out/iel-mri",
                              "pdeflow iel-experiment --preset paper --dataset aal --noise windows --noise-size 3 "
                              "--out out/iel-aal",
                              "pdeflow iel-experiment --mode sweep --dt 0.0125 0.025 0.05 --layers 10 30 60 --out "
                              "out/sweep",
                              "(two processes sharing one grid: add --shard 0/2 and --shard 1/2)"],
                    validate=_check)
    # the noisy-label setting is ExperimentSpec's base noise; the sizes are None until the preset fills them
    defaults = {"noise": ExperimentSpec().base.noise, **{k: None for k in _PRESET_FIELDS}}
    add_config_options(p, (ExperimentSpec, RunConfig), _LAYOUT, types={"fraction": _fraction},
                       extra=_extra_options(), defaults=defaults)


def spec_from_args(args):
    """The :class:`~pdeflow.evaluate.iel.ExperimentSpec` of parsed arguments.

    Three layers, later ones winning: RunConfig's defaults, ``--preset``, the options given.
    """
    kw = {k: v for k, v in config_kwargs(RunConfig, args).items() if v is not None}
    kw = {**PRESETS[args.preset], **kw}
    if kw.get("data_path") is not None:
        kw["data_path"] = str(Path(kw["data_path"]).expanduser().resolve())
    spec = config_kwargs(ExperimentSpec, args)
    base = RunConfig(dt=spec["dts"][0], layers=spec["layers"][0], **kw)
    return ExperimentSpec(base=base, **spec)


def _check(args) -> None:
    p = args.parser
    if args.mode == "compare" and (len(args.dts) > 1 or len(args.layers) > 1):
        p.error("arguments --dt/--layers: the compare mode takes one value each; use --mode sweep for several")
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"argument --seeds: seeds must be distinct, got {' '.join(map(str, args.seeds))}")
    if args.data_path is not None and args.dataset not in ("mricron", "aal", "icbm152"):
        p.error("argument --data-path: only the mricron, aal and icbm152 datasets read a folder")
    if args.data_path is not None and not Path(args.data_path).expanduser().is_dir():
        p.error(f"argument --data-path: not a directory: {args.data_path!r}")
    args.device = check_device(p, args.device)
    try:
        check_spec(spec_from_args(args))
    except UserInputError as e:
        msg = str(e).replace("RunConfig: ", "").replace("ExperimentSpec: ", "")
        p.error(f"argument --{msg.split(' ')[0].replace('_', '-')}: {msg}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        p.error(f"argument --out: '{out}' exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "experiment.json").exists():
        p.error(f"argument --out: '{out}' is not empty and holds no IEL experiment; choose another folder")


def _run(args) -> int:
    """Train a U-Net (InstanceNorm, LeakyReLU) with cross-entropy, with and without inverse evolution layers
    (IELs) after its logits, on clean and noisy training labels, over several seeds; validation Dice (background
    excluded) after every epoch. Each (setting, seed) run has its own resumable run directory under OUT/runs;
    the same command again resumes and skips finished runs; OUT/summary.json, OUT/table.md and a PNG are written
    once all runs are done. dt is PDE time per layer with the unit-spacing 5-point Laplacian: the official
    code's dt 0.1 (kernel laplacian/4) is --dt 0.025."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    check_writable_dir(args.out, "--out")
    spec = spec_from_args(args)
    b = spec.base
    print(f"IEL experiment ({spec.mode}) on {b.dataset}: U-Net width {b.width}, {b.epochs} epochs, "
          f"seeds {list(spec.seeds)}; IELs {b.operator}, dt {list(spec.dts)} (PDE time per layer), layers "
          f"{list(spec.layers)}, boundary {b.boundary}; noisy labels: {b.noise}")
    try:
        summary = run_experiment(spec, args.out, device=args.device, shard=args.shard, quiet=args.quiet)
    except RunConfigError as e:
        raise CLIError(f"argument --out: {e}") from None
    except FileNotFoundError as e:
        raise CLIError(f"argument --dataset: {e}") from None
    if summary is not None:
        print((Path(args.out) / "table.md").read_text())
        print(f"written: {args.out}/summary.json, table.md, "
              f"{'curves.png' if spec.mode == 'compare' else 'sweep.png'}")
    return 0
