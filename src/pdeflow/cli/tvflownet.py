"""``pdeflow train tvflownet`` and ``pdeflow evaluate tvflownet``.

``train tvflownet`` is the command line of :func:`pdeflow.tvflownet.train.train`;
``evaluate tvflownet MODEL...`` is the paper's evaluation protocol, a thin wrapper over
:func:`pdeflow.evaluate.tvflownet.evaluate` and :func:`pdeflow.evaluate.tvflownet_report.report`
(``report.md``, ``results.json`` and PNG figures in ``--out``). MODEL is a shipped model's name or a
path to a ``.safetensors``/``.json`` pair (either file or their common stem), loaded with
:func:`pdeflow.tvflownet.load`. The method (Grossmann et al., 2022) and its full reference are in
:mod:`pdeflow.tvflownet`.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from pathlib import Path

import torch

from .. import models as registry
from ..errors import UserInputError
from ..evaluate.tvflownet import evaluate
from ..evaluate.tvflownet_paper import model_in_channels, paper_times
from ..evaluate.tvflownet_report import report
from ..io import model_bytes
from ..training import invoked_command
from ..tv import ROF_METHODS
from ..tvflownet import api as tvflownet_api
from ..tvflownet.per_channel import PerChannel
from ..tvflownet.symmetry import DihedralMean, flow_model
from ..tvflownet.train import TrainConfig, check_config, data_sources, train
from ._arguments import (
    add_command,
    add_config_options,
    check_device,
    config_kwargs,
    positive_float,
    positive_int,
    ssim_size,
)
from ._errors import CLIError
from ._outputs import Outputs, check_writable_dir
from ._training import check_trainer_args, run_trainer, trainer_options

__all__ = ["add_train_parser", "add_average_parser", "add_evaluate_parser", "config_from_args"]


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


#: What :func:`pdeflow.tvflownet.load` raises for a model that is missing or not a TVflowNET.
LOAD_ERRORS = (FileNotFoundError, ValueError, KeyError)


#: Groups and order of the options of `pdeflow train tvflownet`: TrainConfig fields (whose option(...)
#: metadata declares help, type and choices) and the command line's own "--flags".
_TRAIN_LAYOUT = [
    ("run", ["--run-dir", "steps", "seed", "deterministic", "--device", "--threads", "--quiet"]),
    ("model", ["arch", "arch_kwargs"]),
    ("data", ["data", "max_side", "channels", "synthetic", "synthetic_kinds", "aug_scale", "aug_gamma",
              "aug_dihedral", "flowed", "flowed_max", "init", "val_data", "crop", "mixed_min", "mixed_max",
              "batch_size", "scale", "t_max", "t_power", "times_per_image"]),
    ("objective", ["mode", "loss", "a1", "a2", "ut_method", "lr", "lr_schedule", "lr_final", "clip",
                   "hybrid_fraction", "phi_weight", "phi_target", "ref_dt", "ref_tol", "ref_max_iter", "ref_reuse",
                   "grad_weight", "grad_ref_dt", "grad_ref_tol", "grad_crops"]),
    ("validation and checkpoints", ["val_every", "ckpt_every", "val_crops", "val_size", "val_times", "val_dt",
                                    "val_tol", "val_max_iter", "val_seed"]),
]


def add_train_parser(train_sub) -> None:
    """Register ``tvflownet`` on the subparsers of ``pdeflow train``."""
    p = add_command(train_sub, "tvflownet", _run_train,
                    examples=["pdeflow train tvflownet --arch semiresnet --crop 32 --steps 20000 --run-dir runs/sr32",
                              "pdeflow train tvflownet --arch unet --crop mixed --data builtin ~/food101/train "
                              "--synthetic 0.25 --aug-scale 0.5 --aug-dihedral --run-dir runs/unet",
                              "torchrun --nproc_per_node 4 -m pdeflow train tvflownet --arch unet --run-dir runs/ddp"],
                    note="Times are PDE times of the flow for images in [0, 1] multiplied by --scale (paper: 5, t "
                         "in [0, 1]).",
                    validate=_check_train)
    extra = trainer_options("torch device (default: cuda:LOCAL_RANK if CUDA is available, else cpu)")
    add_config_options(p, TrainConfig, _TRAIN_LAYOUT, types={"crop": _crop, "json": _kwargs}, extra=extra)
    p.set_defaults(warning_flags=_TRAIN_WARNING_FLAGS)


def config_from_args(args):
    """The :class:`~pdeflow.tvflownet.train.TrainConfig` of parsed arguments."""
    kw = config_kwargs(TrainConfig, args)
    resolve = lambda d: d if d in (None, "builtin") else str(Path(d).expanduser().resolve())   # noqa: E731
    kw["data"], kw["val_data"] = tuple(resolve(d) for d in kw["data"]), resolve(kw["val_data"])
    if kw["init"] is not None and Path(kw["init"]).expanduser().exists():
        kw["init"] = str(Path(kw["init"]).expanduser().resolve())
    kw["clip"] = kw["clip"] if kw["clip"] > 0 else None
    return TrainConfig(**kw)


def _check_train(args) -> None:
    if args.batch_size % args.times_per_image:
        args.parser.error(f"argument --times-per-image: {args.times_per_image} does not divide "
                          f"--batch-size {args.batch_size}")
    if args.hybrid_fraction > 1:
        args.parser.error(f"argument --hybrid-fraction: expected a number in [0, 1], got {args.hybrid_fraction:g}")
    if args.val_times < 2 or args.val_size < 2:
        args.parser.error("arguments --val-times and --val-size must be >= 2")
    check_trainer_args(args, config_from_args, check_config)


def _run_train(args) -> int:
    """Train a TVflowNET (Semi-ResNet, U-Net or LGD) on random crops (grey, or colour with --channels 3),
    unsupervised with the paper's loss (12), supervised on the reference TV flow, or supervised first then
    unsupervised (hybrid). Adam,
    gradient clipping, validation PSNR against the reference flow on held-out images; the best model is exported
    as RUN_DIR/model.safetensors + model.json (load it with pdeflow.tvflownet.load('RUN_DIR')). Running the same
    command again resumes."""
    cfg = config_from_args(args)
    main = int(os.environ.get("RANK", "0")) == 0
    run_dir = Path(args.run_dir)
    if main:
        resuming = (run_dir / "last.pt").exists()
        print(f"{'resuming' if resuming else 'starting'} TVflowNET run in {run_dir}: {cfg.arch}, crop {cfg.crop}, "
              f"{cfg.mode}, {cfg.steps} steps of batch {cfg.batch_size}, data {' '.join(data_sources(cfg))}")
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


def add_average_parser(train_sub) -> None:
    """Register ``tvflownet-average`` (weights) and ``tvflownet-ensemble`` (outputs) on ``pdeflow train``."""
    commands = [
        ("tvflownet-average", _run_average, "two or more models of one architecture",
         "pdeflow train tvflownet-average runs/a runs/b --weights 0.3 0.7 --out runs/soup/model"),
        ("tvflownet-ensemble", _run_ensemble, "two or more models trained on one intensity scale and "
         "time interval", "pdeflow train tvflownet-ensemble default runs/lgd/model.json --out runs/ensemble/model"),
    ]
    for name, run, models_help, example in commands:
        p = add_command(train_sub, name, run, examples=[example],
                        note="Each MODEL as `pdeflow evaluate tvflownet` takes it: a shipped name, a run directory "
                             "or a .safetensors/.json path.",
                        validate=_check_average)
        p.add_argument("models", nargs="+", metavar="MODEL", help=models_help)
        p.add_argument("--weights", nargs="+", type=float, metavar="W",
                       help="one weight >= 0 per model, normalised to sum 1 (default: equal weights)")
        if run is _run_ensemble:
            p.add_argument("--phi-weights", nargs="+", type=float, metavar="W",
                           help="the same for phi (default: --weights): div phi depends on these only, u on "
                                "--weights only")
        p.add_argument("--input-eps", type=float, metavar="EPS",
                       help="the scale of the new model's normalised-gradient input grad u0 / sqrt(|grad u0|^2 + "
                            "EPS^2) (pdeflow.tvflownet.with_input_eps; default: the models' own eps); about 0.1 on "
                            "the x5 intensity scale keeps the model's gradient with respect to u0 usable")
        p.add_argument("--out", required=True, metavar="STEM",
                       help="the new model's files, STEM.safetensors and STEM.json (refused if they exist)")
        p.add_argument("--overwrite", action="store_true", help="replace existing STEM files")


def _check_average(args) -> None:
    if len(args.models) < 2:
        args.parser.error(f"argument MODEL: give two or more models to combine, got {len(args.models)}")
    if args.input_eps is not None and not (math.isfinite(args.input_eps) and args.input_eps > 0):
        args.parser.error(f"argument --input-eps: expected a finite number > 0, got {args.input_eps:g}")
    # tvflownet-average has no --phi-weights
    for option, weights in (("--weights", args.weights), ("--phi-weights", getattr(args, "phi_weights", None))):
        if weights is None:
            continue
        if len(weights) != len(args.models):
            args.parser.error(f"argument {option}: one weight per MODEL ({len(args.models)}), got {len(weights)}")
        if not all(w >= 0 for w in weights) or sum(weights) <= 0:   # NaN fails w >= 0
            args.parser.error(f"argument {option}: expected numbers >= 0, not all zero, got "
                              f"{' '.join(f'{w:g}' for w in weights)}")


def _write_combined(args, combine, sources_key: str) -> int:
    """Combine ``args.models`` with ``combine`` (average or ensemble) and write ``args.out``'s two files."""
    stem = Path(args.out).expanduser()
    stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
    names = [stem.name + ".safetensors", stem.name + ".json"]
    outputs = Outputs(stem.parent, names, overwrite=args.overwrite)
    try:
        model = combine(args.models, args.weights)
    except FileNotFoundError as exc:        # a model file that is not there (also a UserInputError)
        raise CLIError(f"argument MODEL: cannot load: {exc}") from None
    except UserInputError:
        raise                               # names its argument (models, weights)
    except LOAD_ERRORS as exc:              # a model that does not load
        raise CLIError(f"argument MODEL: cannot load: {exc}") from None
    provenance = {**model.meta["provenance"], "command": invoked_command()}
    weights, meta = model_bytes(model, names[0], model.meta["config"], provenance)
    with outputs:
        outputs.raw(names[0], weights)
        outputs.raw(names[1], meta)
    shares = ", ".join(f"{w['weight']:.3g} x {w['model']}" for w in provenance[sources_key])
    print(f"wrote {stem}.safetensors + {stem.name}.json: {shares}")
    return 0


def _run_average(args) -> int:
    """Average the weights of trained TVflowNETs (pdeflow.tvflownet.average): models of one architecture and
    training convention, e.g. fine-tuned branches of one run, combined with the given weights into a new model,
    written as STEM.safetensors + STEM.json with the sources in its provenance (load it with
    pdeflow.tvflownet.load('STEM.json'))."""
    return _write_combined(args, functools.partial(tvflownet_api.average, input_eps=args.input_eps), "averaged")


def _run_ensemble(args) -> int:
    """Average the outputs of trained TVflowNETs (pdeflow.tvflownet.ensemble): models of any architectures
    trained on one intensity scale and time interval, each run on every call, u and phi the weighted means of
    theirs; written as STEM.safetensors (all members' weights) + STEM.json (their configs, the weights and each
    member's provenance; load it with pdeflow.tvflownet.load('STEM.json'))."""
    return _write_combined(args, functools.partial(tvflownet_api.ensemble, phi_weights=args.phi_weights,
                                                     input_eps=args.input_eps), "members")


# ---------------------------------------------------------------------------
# pdeflow evaluate tvflownet
# ---------------------------------------------------------------------------

_TABLES = (1, 2, 3, 4, 5, 6, 7, 9)


def _table(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v not in _TABLES:
        raise argparse.ArgumentTypeError(f"expected a table number among {' '.join(map(str, _TABLES))}, got {text!r}")
    return v


#: The reference solves of ``train tvflownet`` (supervised, validation, gradient) and their options, for warnings.
_TRAIN_WARNING_FLAGS = [("max_iter", "ref_max_iter", "--ref-max-iter"), ("tol", "ref_tol", "--ref-tol"),
                        ("max_iter", "val_max_iter", "--val-max-iter"), ("tol", "val_tol", "--val-tol"),
                        ("tol", "grad_ref_tol", "--grad-ref-tol")]


def add_evaluate_parser(evaluate_sub) -> argparse.ArgumentParser:
    """Register ``tvflownet`` on the subparsers of ``pdeflow evaluate``; returns its parser."""
    p = add_command(evaluate_sub, "tvflownet", _run_evaluate,
                    validate=_check_evaluate)
    p.add_argument("models", metavar="MODEL", nargs="*",
                   help="shipped model name or path to a .safetensors/.json pair (none: only Table 1 and the "
                        "reference rows)")
    g = p.add_argument_group("protocol")
    g.add_argument("--tables", type=_table, nargs="+", default=list(_TABLES), metavar="N",
                   help="tables to produce, among 1 2 3 4 5 6 7 9 (default all; 2, 3 and 4 share one run; "
                        "1 is the joint space-time optimisation)")
    g.add_argument("--sizes", type=ssim_size, nargs="+", default=[32, 96, 256], metavar="PX",
                   help="evaluation sizes of Tables 2-4 and 6 (default 32 96 256)")
    g.add_argument("--n-images", type=positive_int, default=16, metavar="N",
                   help="held-out test images per size and per image type (default 16; the paper: 40-200)")
    g.add_argument("--n-times", type=positive_int, default=50, metavar="N",
                   help="number of times linspace(0, T_MAX, N) (default 50)")
    g.add_argument("--t-max", type=positive_float, default=0.98, help="last time (default 0.98)")
    g.add_argument("--seed", type=int, default=0, help="seed of the crops and synthetic images (default 0)")
    g.add_argument("--image-dir", metavar="DIR", default=None,
                   help="folder of natural test images to crop from (default: the built-in test photos)")
    g.add_argument("--heldout-dir", metavar="DIR", default=None,
                   help="a second held-out set: a folder of natural photos never used in training or checkpoint "
                        "selection (e.g. .data/photos/mate-nature of `make photos`); Tables 2-4 (u and div phi, "
                        "PSNR and SSIM) on its crops too, beside the test photos")
    g.add_argument("--medical-dir", metavar="DIR", default=None,
                   help="folder of medical images for Table 5 (default: the built-in medical images)")
    g.add_argument("--medical-split", choices=("test", "train", "all"), default="test",
                   help="split of the built-in medical images (default test)")
    g.add_argument("--type-size", type=ssim_size, default=None, metavar="PX",
                   help="image size of Table 5 (default 96 if among --sizes, else the middle size)")
    g.add_argument("--spectral-size", type=ssim_size, default=None, metavar="PX",
                   help="image size of Table 7 (default as --type-size)")
    g.add_argument("--timing-sizes", type=ssim_size, nargs="+", default=[96, 256], metavar="PX",
                   help="image sizes of Table 9 (default 96 256)")
    g.add_argument("--timing-repeats", type=positive_int, default=5, metavar="N",
                   help="timed runs per network measurement (default 5)")
    g.add_argument("--joint-sizes", type=ssim_size, nargs="+", default=None, metavar="PX",
                   help="sizes of Table 1 (default: --sizes up to 96 px)")
    g.add_argument("--joint-images", type=positive_int, default=None, metavar="N",
                   help="images per size for Table 1, at most --n-images (default: --n-images; about 45 s "
                        "per 96 px image on one idle core)")
    g.add_argument("--joint-iterations", type=positive_int, default=None, metavar="N",
                   help="iterations of the joint optimisation (default: the paper's, 2000 up to 96 px, "
                        "14000 at 256 px)")
    g.add_argument("--homogeneity-sizes", type=ssim_size, nargs="+", default=None, metavar="PX",
                   help="image sizes of Table 6 (default: --sizes)")
    g.add_argument("--equivariant", action="store_true",
                   help="every table also for each model wrapped by pdeflow.tvflownet.symmetry.Equivariant "
                        "(exact shift and contrast symmetry, composition past the trained times); with "
                        "--dihedral, the mean is taken over the wrapped model, as tvflownet.flow does; its "
                        "Table 7 by finite differences only (u_t jumps where composed calls join)")
    g.add_argument("--contrast", choices=("range", "std"), default="range",
                   help="with --equivariant: the per-image contrast the wrapper normalises (default range)")
    g.add_argument("--per-channel", action="store_true",
                   help="grey models run on each channel of colour crops (pdeflow.tvflownet.PerChannel: the "
                        "channelwise flow), to score them beside colour models against the coupled colour flow")
    g.add_argument("--dihedral", choices=list(DihedralMean.GROUPS), default=None, metavar="GROUP",
                   help="every table also for each model averaged over a symmetry group of the grid "
                        "(pdeflow.tvflownet.symmetry.DihedralMean): 'transpose' (2 network calls per query; "
                        "exact for the discrete flow) or 'square' (8 flips and quarter turns)")
    r = p.add_argument_group("reference solver")
    r.add_argument("--dt", type=positive_float, default=0.01, help="implicit Euler step (default 0.01)")
    p.set_defaults(warning_flags=[("tol", "tol", "--tol")])
    r.add_argument("--tol", type=positive_float, default=1e-5,
                   help="relative duality gap of each ROF step (default 1e-5)")
    r.add_argument("--solver", default="fgp", help="ROF method (default fgp)")
    c = r.add_mutually_exclusive_group()
    c.add_argument("--cache", metavar="DIR", default=None,
                   help="cache directory of reference flows (default $PDEFLOW_CACHE/tvflow_reference or "
                        "~/.cache/pdeflow/tvflow_reference)")
    c.add_argument("--no-cache", action="store_true", help="do not read or write the reference cache")
    o = p.add_argument_group("computation and output")
    o.add_argument("--device", default="cpu", help="torch device of the networks (default cpu)")
    o.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    o.add_argument("--out", metavar="DIR", default="tvflownet-eval",
                   help="output directory (default ./tvflownet-eval)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")
    return p


def _check_evaluate(args) -> None:
    if args.solver not in ROF_METHODS:
        args.parser.error(f"argument --solver: expected one of {', '.join(ROF_METHODS)}, got {args.solver!r}")
    check_device(args.parser, args.device)
    # The reference flow is computed on the grid k * dt: every test time must lie on it.
    off = [t for t in paper_times(args.n_times, args.t_max) if abs(round(t / args.dt) * args.dt - t) > 1e-9 * max(1, t)]
    if off:
        args.parser.error(f"argument --n-times: linspace(0, {args.t_max:g}, {args.n_times}) gives t = {off[0]:g}, "
                          f"not a multiple of --dt {args.dt:g}; choose N with (N - 1) dividing "
                          f"{args.t_max / args.dt:g} (e.g. the default 50), or another --dt or --t-max")


def _load_model(spec: str):
    """A model from a shipped name or a ``.safetensors``/``.json`` path; returns ``(name, model)``."""
    try:
        model = tvflownet_api.load(spec)
    except LOAD_ERRORS as exc:
        raise CLIError(f"argument MODEL: cannot load {spec!r}: {exc}") from None
    return registry.label(spec, "tvflownet"), model.eval()


def _test_time_wrapper(args):
    """The --equivariant / --dihedral wrapper (None without either), in tvflownet.flow's order:
    the symmetry mean over the equivariant model."""
    if not (args.equivariant or args.dihedral):
        return None
    names = []
    if args.equivariant:
        names.append(f"Equivariant({args.contrast})")
    if args.dihedral:
        names.append(f"DihedralMean({args.dihedral})")

    def wrap(model):
        return flow_model(model, equivariant=args.equivariant, contrast=args.contrast, symmetry=args.dihedral)
    wrap.__name__ = " + ".join(names)
    return wrap


def _run_evaluate(args) -> int:
    """Evaluate TVflowNET models with the protocol of Grossmann et al. (2022): images in [0, 1] x 5, 50 times in
    [0, 0.98] (PDE time), against the model-driven reference (implicit Euler TV flow), with the official test
    code's metrics (data_range 1): PSNR of each image's stack of frames, SSIM of each frame by scikit-image's
    default structural_similarity (7x7 uniform window); the per-frame PSNR and the Gaussian-window SSIM beside
    them. Writes report.md (the paper's numbers beside ours), results.json and PNG figures. Reference flows are
    cached on disk."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    check_writable_dir(out, "--out")
    if not args.overwrite and (out / "report.md").exists():
        raise CLIError(f"argument --out: '{out / 'report.md'}' already exists (pass --overwrite to replace it)")
    for d, name in ((args.image_dir, "--image-dir"), (args.heldout_dir, "--heldout-dir"),
                    (args.medical_dir, "--medical-dir")):
        if d is not None and not Path(d).is_dir():
            raise CLIError(f"argument {name}: '{d}' is not a directory")
    models = {}
    for spec in args.models:
        name, model = _load_model(spec)
        while name in models:
            name += "'"
        models[name] = model.to(args.device)
    if args.per_channel:
        grey = [name for name, m in models.items() if model_in_channels(m) == 1]
        models = {**{n: m for n, m in models.items() if n not in grey},
                  **{f"{n} per channel": PerChannel(models[n]) for n in grey}}
    wrapper = _test_time_wrapper(args)
    tables = sorted(set(args.tables))
    progress = True  # a bar on a terminal, a line per 10 % with ETA in a log
    t0 = time.perf_counter()
    results = evaluate(
        models, sizes=args.sizes, n_images=args.n_images, tables=tables,
        times=paper_times(args.n_times, args.t_max), seed=args.seed, image_dir=args.image_dir,
        heldout_dir=args.heldout_dir,
        medical_dir=args.medical_dir, medical_split=args.medical_split, type_size=args.type_size,
        spectral_size=args.spectral_size or args.type_size, timing_sizes=args.timing_sizes,
        timing_repeats=args.timing_repeats, wrapper=wrapper, homogeneity_sizes=args.homogeneity_sizes,
        joint_sizes=args.joint_sizes,
        joint_images=args.joint_images, joint_iterations=args.joint_iterations, dt=args.dt, tol=args.tol,
        solver=args.solver, cache_dir=False if args.no_cache else args.cache, device=args.device,
        progress=progress)
    rep = report(results)
    written = Outputs(out, rep.names, overwrite=args.overwrite)
    with written:
        written.report(rep)
    print(f"wrote {out / 'report.md'} (and results.json, figures) in {time.perf_counter() - t0:.0f} s")
    return 0
