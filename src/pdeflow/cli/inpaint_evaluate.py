"""``pdeflow evaluate inpainting``: the evaluation of :mod:`pdeflow.evaluate.inpaint` (Peter, 2022, Tables 2-4,
and pdeflow's analytic and learned masks and inpainters) on held-out photos.

:func:`add_evaluate_parser` adds ``inpainting`` to the subparsers of ``pdeflow evaluate``.
"""
from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import torch

from ..evaluate.inpaint import METHODS, check_refine, evaluate, report
from ..inpaint import load_mask_gan, load_wgan
from ._arguments import add_command, density, positive_float, positive_int, ssim_size
from ._errors import CLIError
from ._outputs import Outputs

__all__ = ["add_evaluate_parser"]

#: The defaults of the evaluation's settings, read from :func:`pdeflow.inpaint.evaluation.evaluate`.
EVALUATE_DEFAULTS = {k: v.default for k, v in inspect.signature(evaluate).parameters.items()}


def add_evaluate_parser(evaluate_sub) -> None:
    """Register ``inpainting`` on the subparsers of ``pdeflow evaluate``."""
    p = add_command(evaluate_sub, "inpainting", _run_evaluate,
                    validate=_check_evaluate)
    g = p.add_argument_group("protocol")
    g.add_argument("--densities", type=density, nargs="+", default=[0.05, 0.1, 0.2], metavar="D",
                   help="mask densities (default 0.05 0.1 0.2)")
    g.add_argument("--methods", choices=METHODS, nargs="+", default=list(METHODS), metavar="M",
                   help=f"methods among {' '.join(METHODS)} (default all)")
    g.add_argument("--n-images", type=positive_int, default=4, metavar="N", help="test crops (default 4)")
    g.add_argument("--size", type=ssim_size, default=64, metavar="PX",
                   help="crop size (default 64, the training size; the paper's timings are at 128)")
    g.add_argument("--channels", type=int, choices=(1, 3), default=1, help="1: luminance, 3: colour (default 1)")
    g.add_argument("--seed", type=int, default=0, help="seed of the crops, random masks and PS/NLPE (default 0)")
    g.add_argument("--image-dir", metavar="DIR", default=None,
                   help="folder of test images instead of the built-in TEST photos")
    g = p.add_argument_group("models")
    g.add_argument("--inpainting-model", default=None, metavar="NAME|PATH",
                   help="random-mask inpainting WGAN (default: the shipped inpainting-wgan if there is one, "
                        "else random-wgan is skipped with a note in the report)")
    g.add_argument("--mask-models", nargs="+", default=None, metavar="PATH",
                   help="mask GAN models, one per density in the order of --densities (default: the models "
                        "shipped for those densities where there are any; a density without one is skipped "
                        "with a note in the report)")
    g.add_argument("--masknet-models", nargs="+", default=None, metavar="PATH",
                   help="learned*: mask networks, one per density in the order of --densities (default: the "
                        "shipped ones; a density without one is skipped with a note)")
    g.add_argument("--residual-model", default=None, metavar="PATH",
                   help="learned-residual, random-residual: the residual inpainter (default: the shipped one)")
    g.add_argument("--joint-models", nargs="+", default=None, metavar="PATH",
                   help="joint: mask network + residual inpainter pairs fine-tuned together, one per density in "
                        "the order of --densities: run directories of `pdeflow train residual --stage joint` "
                        "(default: the shipped pairs; a density without one is skipped with a note)")
    g.add_argument("--refine", default=None, metavar="JSON",
                   help="refine_mask options of the *-refine rows: a JSON object of options for every density "
                        "(e.g. '{\"shifts\": 2, \"rounds\": 400, \"metric\": \"mse\"}') or of density -> "
                        "options (default: pdeflow.inpaint.masks.refine.REFINE, in the report)")
    g.add_argument("--refine-mse", default=None, metavar="JSON",
                   help="the same for the *-refine-mse rows, whose refinement minimises the MSE (default: "
                        "pdeflow.inpaint.masks.refine.REFINE_MSE, in the report)")
    g.add_argument("--reuse", default=None, metavar="JSON",
                   help="an earlier run's results.json: its random, PS and PS+NLPE rows are reused when its crops "
                        "and settings are the same (the report says so), instead of recomputed")
    g = p.add_argument_group("PS and NLPE")
    d = EVALUATE_DEFAULTS
    g.add_argument("--ps-p", type=positive_float, default=d["ps_p"],
                   help=f"PS candidate fraction p (default {d['ps_p']:g})")
    g.add_argument("--ps-q", type=positive_float, default=d["ps_q"],
                   help=f"PS removal fraction q (default {d['ps_q']:g})")
    g.add_argument("--nlpe-cycles", type=positive_int, default=d["nlpe_cycles"],
                   help=f"NLPE cycles of |mask| exchanges (default {d['nlpe_cycles']})")
    g.add_argument("--nlpe-candidates", type=positive_int, default=d["nlpe_candidates"],
                   help=f"NLPE candidates (default {d['nlpe_candidates']})")
    g.add_argument("--metric", choices=("mae", "mse"), default=d["metric"],
                   help=f"error PS and NLPE minimise (default {d['metric']}, as the paper)")
    p.set_defaults(warning_flags=[("tol", "tol", "--tol")])
    g.add_argument("--tol", type=positive_float, default=d["tol"],
                   help=f"diffusion solver tolerance (default {d['tol']:g})".replace("e-0", "e-"))
    o = p.add_argument_group("computation and output")
    o.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    o.add_argument("--out", metavar="DIR", default="inpainting-eval",
                   help="output directory (default ./inpainting-eval)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")


def _check_evaluate(args) -> None:
    for name in ("mask_models", "masknet_models", "joint_models"):
        models = getattr(args, name)
        if models is not None and len(models) != len(args.densities):
            args.parser.error(f"argument --{name.replace('_', '-')}: give one model per density "
                              f"({len(args.densities)}), got {len(models)}")
    if args.reuse is not None:
        try:
            json.loads(Path(args.reuse).read_text())
        except (OSError, ValueError) as exc:
            args.parser.error(f"argument --reuse: cannot read '{args.reuse}' as JSON ({type(exc).__name__})")
    for name in ("refine", "refine_mse"):
        if getattr(args, name) is not None:
            setattr(args, name, _refine_json(args, name))
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


def _refine_json(args, name: str) -> dict:
    """``--refine``'s (``--refine-mse``'s) JSON as ``evaluate``'s: options for every density, or density -> options."""
    flag = "--" + name.replace("_", "-")
    try:
        return check_refine(json.loads(getattr(args, name)), flag)
    except ValueError as exc:       # a JSON syntax error, or check_refine's UserInputError
        args.parser.error(f"argument {flag}: {str(exc).removeprefix(flag + ': ')}")


def _run_evaluate(args) -> int:
    """Evaluate sparse inpainting on held-out photos (the built-in TEST split, never seen in training): random
    masks with diffusion and with the inpainting WGAN, probabilistic sparsification (PS; ps-mse: minimising the
    MSE) and PS + non-local pixel exchange (NLPE) with diffusion, the mask GAN with its jointly trained
    generator, analytic masks and the mask networks' masks (each also with test-time refinement; *-refine-mse:
    minimising the MSE) with diffusion, the mask networks' masks with the residual inpainter, and mask networks
    fine-tuned together with it (joint). PSNR, MSE and MAE (0-255), SSIM, density reached and seconds per mask,
    beside the paper's numbers. Methods whose model is not available are skipped with a note. Writes report.md,
    results.json and inpainting.png into --out."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Outputs(args.out, ["report.md", "results.json", "inpainting.png"], overwrite=args.overwrite)
    # A model named explicitly must load (a missing shipped one only skips its method, with a note).
    for flag, specs in (("--inpainting-model", [args.inpainting_model]), ("--mask-models", args.mask_models or [])):
        for spec in specs:
            if spec is None:
                continue
            try:
                (load_wgan if flag == "--inpainting-model" else load_mask_gan)(spec)
            except (FileNotFoundError, ValueError) as exc:
                raise CLIError(f"argument {flag}: {exc}") from None
    mask_models = dict(zip(args.densities, args.mask_models)) if args.mask_models else None
    masknet_models = dict(zip(args.densities, args.masknet_models)) if args.masknet_models else None
    joint_models = dict(zip(args.densities, args.joint_models)) if args.joint_models else None
    t0 = time.perf_counter()
    results = evaluate(args.densities, n_images=args.n_images, size=args.size, seed=args.seed,
                       channels=args.channels, methods=args.methods, image_dir=args.image_dir,
                       inpainting_model=args.inpainting_model, mask_models=mask_models, ps_p=args.ps_p,
                       ps_q=args.ps_q, nlpe_cycles=args.nlpe_cycles, nlpe_candidates=args.nlpe_candidates,
                       metric=args.metric, tol=args.tol, progress=True,
                       masknet_models=masknet_models, residual_model=args.residual_model, reuse=args.reuse,
                       joint_models=joint_models, refine=args.refine, refine_mse=args.refine_mse)
    with out:
        paths = out.report(report(results))
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - t0:.0f} s")
    return 0
