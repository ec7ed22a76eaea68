"""``pdeflow evaluate tvflownet MODEL...``: the paper's evaluation protocol as a command.

:func:`add_parsers` registers an ``evaluate`` subcommand (with its own
subcommands, of which ``tvflownet`` is this one) on the main CLI's
subparsers; ``pdeflow.cli`` wires it in.  The command is a thin wrapper over
:func:`pdeflow.tvflownet.evaluate.evaluate` and
:func:`~pdeflow.tvflownet.evaluate.write_report`: it writes ``report.md``,
``results.json`` and PNG figures into ``--out``.

MODEL is a shipped model's name or a path to a ``.safetensors``/``.json``
pair (either file or their common stem), loaded with
``pdeflow.tvflownet.load`` when that exists, else with
:func:`pdeflow.training.import_state` and
:func:`~pdeflow.tvflownet.build_model`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..cli import positive_int as _positive_int, positive_float as _positive_float  # the CLI's one set of argument types

__all__ = ["add_parsers", "add_tvflownet_parser", "load_model", "run_tvflownet"]

_TABLES = (1, 2, 3, 4, 5, 6, 7, 9)


class _UserError(Exception):
    pass


def _error_type():
    """The main CLI's error class (one-line message, exit status 2) if available."""
    try:
        from ..cli import CLIError
        return CLIError
    except Exception:  # pragma: no cover - the CLI module is optional here
        return _UserError



def _size(text: str) -> int:
    v = _positive_int(text)
    if v < 11:
        raise argparse.ArgumentTypeError(f"sizes must be at least 11 px (the SSIM window), got {text!r}")
    return v



def _table(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v not in _TABLES:
        raise argparse.ArgumentTypeError(f"expected a table number among {' '.join(map(str, _TABLES))}, got {text!r}")
    return v


def add_tvflownet_parser(evaluate_subparsers) -> argparse.ArgumentParser:
    """Add ``tvflownet`` to the subparsers of an ``evaluate`` command; returns its parser."""
    p = evaluate_subparsers.add_parser(
        "tvflownet",
        help="TVflowNET models vs the reference TV flow: the paper's Tables 1-7 and 9",
        description="Evaluate TVflowNET models with the protocol of seed 000 (Grossmann et al.): "
                    "images in [0, 1] x 5, 50 times in [0, 0.98] (PDE time), PSNR/SSIM with data_range 1 "
                    "against the model-driven reference (implicit Euler TV flow), mean +- std over images and "
                    "times. Writes report.md (the paper's numbers beside ours), results.json and PNG figures. "
                    "Reference flows are cached on disk.")
    p.add_argument("models", metavar="MODEL", nargs="*",
                   help="shipped model name or path to a .safetensors/.json pair (none: only Table 1 and the "
                        "reference rows)")
    g = p.add_argument_group("protocol")
    g.add_argument("--tables", type=_table, nargs="+", default=list(_TABLES), metavar="N",
                   help="tables to produce, among 1 2 3 4 5 6 7 9 (default all; 2, 3 and 4 share one run; "
                        "1 is the joint space-time optimisation)")
    g.add_argument("--sizes", type=_size, nargs="+", default=[32, 96, 256], metavar="PX",
                   help="evaluation sizes of Tables 2-4 and 6 (default 32 96 256)")
    g.add_argument("--n-images", type=_positive_int, default=4, metavar="N",
                   help="test images per size and per image type (default 4; the paper: 200)")
    g.add_argument("--n-times", type=_positive_int, default=50, metavar="N",
                   help="number of times linspace(0, T_MAX, N) (default 50)")
    g.add_argument("--t-max", type=_positive_float, default=0.98, help="last time (default 0.98)")
    g.add_argument("--seed", type=int, default=0, help="seed of the crops and synthetic images (default 0)")
    g.add_argument("--image-dir", metavar="DIR", default=None,
                   help="folder of natural test images to crop from (default: the built-in test photos)")
    g.add_argument("--medical-dir", metavar="DIR", default=None,
                   help="folder of medical images for Table 5 (default: the built-in medical images)")
    g.add_argument("--medical-split", choices=("test", "train", "all"), default="test",
                   help="split of the built-in medical images (default test)")
    g.add_argument("--type-size", type=_size, default=None, metavar="PX",
                   help="image size of Table 5 (default 96 if among --sizes, else the middle size)")
    g.add_argument("--spectral-size", type=_size, default=None, metavar="PX",
                   help="image size of Table 7 (default as --type-size)")
    g.add_argument("--timing-sizes", type=_size, nargs="+", default=[96, 256], metavar="PX",
                   help="image sizes of Table 9 (default 96 256)")
    g.add_argument("--timing-repeats", type=_positive_int, default=5, metavar="N",
                   help="timed runs per network measurement (default 5)")
    g.add_argument("--joint-sizes", type=_size, nargs="+", default=None, metavar="PX",
                   help="sizes of Table 1 (default: --sizes up to 96 px)")
    g.add_argument("--joint-images", type=_positive_int, default=1, metavar="N",
                   help="images per size for Table 1 (default 1)")
    g.add_argument("--joint-iterations", type=_positive_int, default=None, metavar="N",
                   help="iterations of the joint optimisation (default: the paper's, 2000 up to 96 px, "
                        "14000 at 256 px)")
    g.add_argument("--homogeneity-sizes", type=_size, nargs="+", default=None, metavar="PX",
                   help="image sizes of Table 6 (default: --sizes)")
    g.add_argument("--equivariant", action="store_true",
                   help="every table also for each model wrapped by pdeflow.tvflownet.symmetry.Equivariant "
                        "(exact shift and contrast symmetry, composition past the trained times)")
    r = p.add_argument_group("reference solver")
    r.add_argument("--dt", type=_positive_float, default=0.01, help="implicit Euler step (default 0.01)")
    r.add_argument("--tol", type=_positive_float, default=1e-5,
                   help="relative duality gap of each ROF step (default 1e-5)")
    r.add_argument("--solver", default="fgp", help="ROF method (default fgp)")
    c = r.add_mutually_exclusive_group()
    c.add_argument("--cache", metavar="DIR", default=None,
                   help="cache directory of reference flows (default $PDEFLOW_CACHE/tvflow_reference or "
                        "~/.cache/pdeflow/tvflow_reference)")
    c.add_argument("--no-cache", action="store_true", help="do not read or write the reference cache")
    o = p.add_argument_group("computation and output")
    o.add_argument("--device", default="cpu", help="torch device of the networks (default cpu)")
    o.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    o.add_argument("--out", metavar="DIR", default="tvflownet-eval",
                   help="output directory (default ./tvflownet-eval)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")
    p.set_defaults(run=run_tvflownet, validate=_validate, parser=p)
    return p


def add_parsers(subparsers) -> argparse._SubParsersAction:
    """Register ``evaluate`` (with subcommand ``tvflownet``) on the main CLI's ``subparsers``.

    If an ``evaluate`` command is already registered with its own subparsers,
    ``tvflownet`` is added to those.  Returns the ``evaluate`` subparsers so that
    other pillars can add theirs.
    """
    existing = subparsers.choices.get("evaluate") if hasattr(subparsers, "choices") else None
    if existing is not None:
        for action in existing._actions:
            if isinstance(action, argparse._SubParsersAction):
                add_tvflownet_parser(action)
                return action
        raise ValueError("an 'evaluate' command without subcommands is already registered")
    ev = subparsers.add_parser("evaluate", help="reproduce a paper's evaluation (tables and figures)",
                               description="Reproduce the evaluation protocol of a paper.")
    sub = ev.add_subparsers(dest="evaluate_what", metavar="WHAT", required=True)
    add_tvflownet_parser(sub)
    return sub


def _validate(args) -> None:
    from ..tv import ROF_METHODS
    if args.solver not in ROF_METHODS:
        args.parser.error(f"argument --solver: expected one of {', '.join(ROF_METHODS)}, got {args.solver!r}")
    from ..cli import check_device
    check_device(args.parser, args.device)


def load_model(spec: str):
    """A model from a shipped name or a ``.safetensors``/``.json`` path; returns ``(name, model)``."""
    err = _error_type()
    try:
        from . import api  # written in parallel: pdeflow.tvflownet.api.load
    except ImportError:
        api = None
    if api is not None and hasattr(api, "load"):
        try:
            model = api.load(spec)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise err(f"argument MODEL: cannot load {spec!r}: {exc}") from None
        name = Path(spec).with_suffix("").name if Path(spec).suffix in (".safetensors", ".json") else spec
        return name, model.eval()
    from ..training import import_state
    from .models import build_model
    path = Path(spec)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    if not (stem.with_name(stem.name + ".safetensors").is_file() or stem.with_name(stem.name + ".json").is_file()):
        raise err(f"argument MODEL: no model file {stem}.safetensors/.json "
                  "(and pdeflow.tvflownet.load for shipped names is not available)")
    try:
        state, meta = import_state(stem)
    except (FileNotFoundError, ValueError) as exc:
        raise err(f"argument MODEL: {exc}") from None
    cfg = meta.get("config", {})
    if isinstance(cfg, dict) and "arch" not in cfg and isinstance(cfg.get("model"), dict):
        cfg = cfg["model"]
    if not isinstance(cfg, dict) or "arch" not in cfg:
        raise err(f"argument MODEL: {stem}.json has no model configuration with an 'arch'")
    try:
        model = build_model(**cfg)
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise err(f"argument MODEL: {stem}: {exc}") from None
    model.meta = meta
    return stem.name, model.eval()


def run_tvflownet(args) -> int:
    import torch

    from .evaluate import evaluate, paper_times, write_report
    err = _error_type()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise err(f"argument --out: '{out}' exists and is not a directory")
    if not args.overwrite and (out / "report.md").exists():
        raise err(f"argument --out: '{out / 'report.md'}' already exists (pass --overwrite to replace it)")
    for d, name in ((args.image_dir, "--image-dir"), (args.medical_dir, "--medical-dir")):
        if d is not None and not Path(d).is_dir():
            raise err(f"argument {name}: '{d}' is not a directory")
    models = {}
    for spec in args.models:
        name, model = load_model(spec)
        while name in models:
            name += "'"
        models[name] = model.to(args.device)
    wrapper = None
    if args.equivariant:
        from .symmetry import Equivariant
        wrapper = Equivariant
    tables = sorted(set(args.tables))
    progress = sys.stderr.isatty()
    t0 = time.perf_counter()
    try:
        results = evaluate(
            models, sizes=args.sizes, n_images=args.n_images, tables=tables,
            times=paper_times(args.n_times, args.t_max), seed=args.seed, image_dir=args.image_dir,
            medical_dir=args.medical_dir, medical_split=args.medical_split, type_size=args.type_size,
            spectral_size=args.spectral_size or args.type_size, timing_sizes=args.timing_sizes,
            timing_repeats=args.timing_repeats, wrapper=wrapper, homogeneity_sizes=args.homogeneity_sizes, joint_sizes=args.joint_sizes,
            joint_images=args.joint_images, joint_iterations=args.joint_iterations, dt=args.dt, tol=args.tol,
            solver=args.solver, cache_dir=False if args.no_cache else args.cache, device=args.device,
            progress=progress)
    except ValueError as exc:
        raise err(str(exc)) from None
    report = write_report(results, out)
    print(f"wrote {report} (and results.json, figures) in {time.perf_counter() - t0:.0f} s", file=sys.stdout)
    return 0
