"""``pdeflow iel-experiment``: the command line of :mod:`pdeflow.iel.experiment`.

``add_parsers(sub)`` registers the subcommand on the top-level subparsers of ``pdeflow``.

References
----------
.. [1] C. Liu, Z. Qiao, C. Li, C.-B. Schönlieb, "Inverse evolution layers: physics-informed regularizers
       for deep neural networks", arXiv:2307.07344, 2023.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import UserInputError
from ..iel.datasets import DATASETS
from ..iel.experiment import ExperimentSpec, RunConfig, check_spec, run_experiment
from ..iel.layers import BOUNDARIES, OPERATORS
from ..training import RunConfigError
from ._common import CLIError, check_device, nonneg_float, nonneg_int, positive_float, positive_int

__all__ = ["add_parsers", "PRESETS", "spec_from_args"]

#: Settings of the two presets; flags given on the command line win.
PRESETS = {
    # minutes on one CPU core: a check that everything works, not a result
    "small": dict(width=8, depth=5, crop=64, batch_size=8, epochs=30, steps_per_epoch=None),
    # the runs whose results are committed (CPU-hours; minutes on a GPU)
    "full": dict(width=16, depth=5, crop=128, batch_size=4, epochs=60, steps_per_epoch=10),
}


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


def add_parsers(sub) -> None:
    """Register ``pdeflow iel-experiment``."""
    d = RunConfig()
    p = sub.add_parser(
        "iel-experiment", help="noisy-label segmentation with and without inverse evolution layers (Liu et al., 2023)",
        description="Train a U-Net (InstanceNorm, LeakyReLU) with cross-entropy, with and without inverse "
                    "evolution layers (IELs) after its logits, on clean and noisy training labels, over several "
                    "seeds; validation Dice (background excluded) after every epoch. Each (setting, seed) run "
                    "has its own resumable run directory under OUT/runs; the same command again resumes and "
                    "skips finished runs; OUT/summary.json, OUT/table.md and a PNG are written once all runs "
                    "are done. dt is PDE time per layer with the unit-spacing 5-point Laplacian: the official "
                    "code's dt 0.1 (kernel laplacian/4) is --dt 0.025.",
        epilog="examples:\n"
               "  pdeflow iel-experiment --preset small --dataset dsb2018 --seeds 0 1 2 --out out/iel-small\n"
               "  pdeflow iel-experiment --dataset mricron --noise blocks --dt 0.025 --layers 30 --out out/iel-mri\n"
               "  pdeflow iel-experiment --mode sweep --dt 0.0125 0.025 0.05 --layers 10 30 60 --out out/sweep\n"
               "  (two processes sharing one grid: add --shard 0/2 and --shard 1/2)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("experiment")
    g.add_argument("--out", required=True, metavar="DIR", help="experiment folder (created; resumed if it holds "
                                                                "this experiment)")
    g.add_argument("--mode", choices=("compare", "sweep"), default="compare",
                   help="compare: {baseline, IELs} x {clean, noisy}; sweep: IELs for every --dt x --layers on "
                        "noisy labels, plus the baseline (default compare)")
    g.add_argument("--preset", choices=tuple(PRESETS), default="full",
                   help="model and schedule sizes: " + "; ".join(
                       f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items()) for k, v in PRESETS.items())
                   + " (default full; the flags below override)")
    g.add_argument("--seeds", type=nonneg_int, nargs="+", default=[0, 1, 2], metavar="S",
                   help="seeds (weights, batches and the label noise) (default 0 1 2)")
    g.add_argument("--shard", type=_shard, default=(0, 1), metavar="K/N",
                   help="train only runs i with i %% N == K (several processes on one grid)")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")

    g = p.add_argument_group("data and label noise")
    g.add_argument("--dataset", choices=DATASETS, default=d.dataset, help=f"(default {d.dataset})")
    g.add_argument("--data-path", default=None, metavar="DIR",
                   help="mricron: folder with ch2.nii.gz and ch2bet.nii.gz (default: .data/mricron-data from "
                        "`make data`, then /usr/share/mricron/templates)")
    g.add_argument("--noise", choices=("blocks", "windows"), default="blocks",
                   help="noisy-label setting: grid blocks replaced with probability 1-keep (official code) or "
                        "random windows covering --noise-area (paper text) (default blocks)")
    g.add_argument("--noise-size", type=positive_int, default=d.noise_size, metavar="S",
                   help=f"block / window side in pixels (default {d.noise_size})")
    g.add_argument("--noise-keep", type=_fraction, default=d.noise_keep, metavar="P",
                   help=f"blocks: probability that a block is untouched (default {d.noise_keep:g})")
    g.add_argument("--noise-area", type=_fraction, default=d.noise_area, metavar="A",
                   help=f"windows: fraction of the image covered (default {d.noise_area:g})")

    g = p.add_argument_group("inverse evolution layers")
    g.add_argument("--dt", type=positive_float, nargs="+", default=[d.dt], metavar="DT",
                   help=f"PDE time per layer (default {d.dt:g} = official 0.1 with laplacian/4); several "
                        "values in sweep mode")
    g.add_argument("--layers", type=positive_int, nargs="+", default=[d.layers], metavar="N",
                   help=f"number of layers (default {d.layers}); several values in sweep mode")
    g.add_argument("--operator", choices=tuple(OPERATORS), default=d.operator, help="(default heat)")
    g.add_argument("--operator-param", type=positive_float, default=None, metavar="X",
                   help="heat: scale of the Laplacian (1); tv: eps (0.1); perona-malik: kappa (1)")
    g.add_argument("--boundary", choices=BOUNDARIES, default=d.boundary,
                   help="zero padding (official code) or Neumann (default zero)")

    g = p.add_argument_group("network and training (defaults from --preset)")
    g.add_argument("--width", type=positive_int, default=None, help="U-Net first-level channels (paper 64)")
    g.add_argument("--depth", type=positive_int, default=None, help="U-Net levels (paper 5)")
    g.add_argument("--crop", type=positive_int, default=None, help="training crop side, a multiple of 2**(depth-1)")
    g.add_argument("--batch-size", type=positive_int, default=None)
    g.add_argument("--epochs", type=positive_int, default=None)
    g.add_argument("--steps-per-epoch", type=positive_int, default=None,
                   help="steps between validations (small preset: enough crops to cover the training pixels)")
    g.add_argument("--optimizer", choices=("adam", "rmsprop"), default=d.optimizer,
                   help="Adam or the official code's RMSprop (momentum 0.9) (default adam)")
    g.add_argument("--lr", type=positive_float, default=d.lr, help=f"learning rate (default {d.lr:g})")
    g.add_argument("--deterministic", action="store_true", help="deterministic torch algorithms")
    p.set_defaults(run=_run, validate=_check, parser=p)


def spec_from_args(args):
    """The :class:`~pdeflow.iel.experiment.ExperimentSpec` of parsed arguments."""
    sizes = dict(PRESETS[args.preset])
    for k in sizes:
        if getattr(args, k) is not None:
            sizes[k] = getattr(args, k)
    data_path = None if args.data_path is None else str(Path(args.data_path).expanduser().resolve())
    base = RunConfig(dataset=args.dataset, data_path=data_path, noise=args.noise, noise_size=args.noise_size,
                     noise_keep=args.noise_keep, noise_area=args.noise_area, operator=args.operator,
                     operator_param=args.operator_param, dt=args.dt[0], layers=args.layers[0],
                     boundary=args.boundary, optimizer=args.optimizer, lr=args.lr,
                     deterministic=args.deterministic, **sizes)
    return ExperimentSpec(mode=args.mode, base=base, seeds=tuple(args.seeds), dts=tuple(args.dt),
                          layers=tuple(args.layers))


def _check(args) -> None:
    p = args.parser
    if args.mode == "compare" and (len(args.dt) > 1 or len(args.layers) > 1):
        p.error("arguments --dt/--layers: the compare mode takes one value each; use --mode sweep for several")
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"argument --seeds: seeds must be distinct, got {' '.join(map(str, args.seeds))}")
    if args.data_path is not None and args.dataset != "mricron":
        p.error("argument --data-path: only the mricron dataset reads a folder")
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
    if args.threads is not None:
        torch.set_num_threads(args.threads)
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
