"""``pdeflow evaluate inpainting``: seed 004's Tables 2-4 as a command.

A thin wrapper over :func:`pdeflow.inpaint.evaluate.evaluate` and
:func:`~pdeflow.inpaint.evaluate.write_report`: ``report.md``,
``results.json`` and ``inpainting.png`` in ``--out`` (all or none).
"""
from __future__ import annotations

import argparse
import sys
import time

from ..cli import positive_float, positive_int

__all__ = ["add_parsers"]


def _density(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a density in (0, 1) (a fraction of known pixels), got {text!r}")
    return v


def _size(text: str) -> int:
    v = positive_int(text)
    if v < 11:
        raise argparse.ArgumentTypeError(f"sizes must be at least 11 px (the SSIM window), got {text!r}")
    return v


def _evaluate_subparsers(sub):
    """The subparsers of ``pdeflow evaluate`` (created if no pillar has yet)."""
    existing = sub.choices.get("evaluate")
    if existing is not None:
        for action in existing._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
        raise ValueError("an 'evaluate' command without subcommands is already registered")
    ev = sub.add_parser("evaluate", help="reproduce a paper's evaluation (tables and figures)",
                        description="Reproduce the evaluation protocol of a paper.")
    return ev.add_subparsers(dest="evaluate_what", metavar="WHAT", required=True)


def add_parsers(sub) -> None:
    """Register ``pdeflow evaluate inpainting``."""
    from .evaluate import METHODS
    p = _evaluate_subparsers(sub).add_parser(
        "inpainting", help="masks and inpainting of seed 004: random, PS, PS+NLPE, inpainting WGAN, mask GAN "
                           "(Tables 2-4)",
        description="Evaluate sparse inpainting on held-out photos (the built-in TEST split, never seen in "
                    "training): random masks with diffusion and with the inpainting WGAN, probabilistic "
                    "sparsification (PS) and PS + non-local pixel exchange (NLPE) with diffusion, and the mask GAN "
                    "with its jointly trained generator. PSNR, MAE (0-255), SSIM, density reached and seconds per "
                    "mask, beside the paper's numbers. Methods whose model is not available are skipped with a "
                    "note. Writes report.md, results.json and inpainting.png into --out.")
    g = p.add_argument_group("protocol")
    g.add_argument("--densities", type=_density, nargs="+", default=[0.05, 0.1, 0.2], metavar="D",
                   help="mask densities (default 0.05 0.1 0.2)")
    g.add_argument("--methods", choices=METHODS, nargs="+", default=list(METHODS), metavar="M",
                   help=f"methods among {' '.join(METHODS)} (default all)")
    g.add_argument("--n-images", type=positive_int, default=4, metavar="N", help="test crops (default 4)")
    g.add_argument("--size", type=_size, default=64, metavar="PX",
                   help="crop size (default 64, the training size; the paper's timings are at 128)")
    g.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1: luminance, 3: colour (default 1)")
    g.add_argument("--seed", type=int, default=0, help="seed of the crops, random masks and PS/NLPE (default 0)")
    g.add_argument("--image-dir", metavar="DIR", default=None,
                   help="folder of test images instead of the built-in TEST photos")
    g = p.add_argument_group("models")
    g.add_argument("--inpainting-model", default=None, metavar="NAME|PATH",
                   help="random-mask inpainting WGAN (default: the shipped inpainting-wgan)")
    g.add_argument("--mask-models", nargs="+", default=None, metavar="PATH",
                   help="mask GAN models, one per density in the order of --densities (default: the shipped ones)")
    g = p.add_argument_group("PS and NLPE")
    g.add_argument("--ps-p", type=positive_float, default=0.02, help="PS candidate fraction p (default 0.02)")
    g.add_argument("--ps-q", type=positive_float, default=0.02, help="PS removal fraction q (default 0.02)")
    g.add_argument("--nlpe-cycles", type=positive_int, default=5, help="NLPE cycles of |mask| exchanges (default 5)")
    g.add_argument("--nlpe-candidates", type=positive_int, default=30, help="NLPE candidates (default 30)")
    g.add_argument("--metric", choices=("mae", "mse"), default="mae",
                   help="error PS and NLPE minimise (default mae, as the paper)")
    g.add_argument("--tol", type=positive_float, default=1e-6, help="diffusion solver tolerance (default 1e-6)")
    o = p.add_argument_group("computation and output")
    o.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    o.add_argument("--out", metavar="DIR", default="inpainting-eval",
                   help="output directory (default ./inpainting-eval)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")
    p.set_defaults(run=_run, validate=_check, parser=p)


def _check(args) -> None:
    from pathlib import Path
    if args.mask_models is not None and len(args.mask_models) != len(args.densities):
        args.parser.error(f"argument --mask-models: give one model per density ({len(args.densities)}), "
                          f"got {len(args.mask_models)}")
    if args.image_dir is not None and not Path(args.image_dir).is_dir():
        args.parser.error(f"argument --image-dir: '{args.image_dir}' is not a directory")
    for name in ("ps_p", "ps_q"):
        if getattr(args, name) >= 1:
            args.parser.error(f"argument --{name.replace('_', '-')}: expected a fraction in (0, 1), "
                              f"got {getattr(args, name):g}")
    if not 0 < args.tol < 1:
        args.parser.error(f"argument --tol: expected a number in (0, 1), got {args.tol:g}")
    if len(set(args.densities)) != len(args.densities):
        args.parser.error("argument --densities: values must differ")


def _run(args) -> int:
    import torch

    from ..cli import CLIError, Outputs
    from .evaluate import evaluate, write_report

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Outputs(args.out, ["report.md", "results.json", "inpainting.png"], overwrite=args.overwrite)
    mask_models = dict(zip(args.densities, args.mask_models)) if args.mask_models else None
    t0 = time.perf_counter()
    try:
        results = evaluate(args.densities, n_images=args.n_images, size=args.size, seed=args.seed,
                           channels=args.channels, methods=args.methods, image_dir=args.image_dir,
                           inpainting_model=args.inpainting_model, mask_models=mask_models, ps_p=args.ps_p,
                           ps_q=args.ps_q, nlpe_cycles=args.nlpe_cycles, nlpe_candidates=args.nlpe_candidates,
                           metric=args.metric, tol=args.tol, progress=sys.stderr.isatty())
    except ValueError as e:
        raise CLIError(str(e)) from None
    with out:
        paths = write_report(results, out)
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - t0:.0f} s")
    return 0
