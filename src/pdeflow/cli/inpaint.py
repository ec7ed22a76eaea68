"""``pdeflow mask`` and ``inpaint`` (``evaluate inpainting``: :mod:`.inpaint_evaluate`; ``train inpainting``:
:mod:`.inpaint_train`).

:func:`add_parsers` registers ``mask`` and ``inpaint`` on the top-level subparsers of ``pdeflow``. Both dispatch
through the library's tables of methods (:data:`pdeflow.inpaint.MASK_METHODS`, :data:`pdeflow.inpaint.INPAINT_METHODS`:
:func:`~pdeflow.inpaint.make_mask`, :func:`~pdeflow.inpaint.inpaint`): a flag sets the option of that name where
the chosen method takes it. Methods that run a trained model exit, without one, with a one-line error that says
how to get one. The methods and their references (Peter, 2022, and the others) are in :mod:`pdeflow.inpaint`.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

from .. import io as pio
from ..errors import UserInputError
from ..inpaint import INPAINT_METHODS, MASK_METHODS, OPERATORS, analytic_sigma, default_stages, inpaint, make_mask
from ..inpaint.result import errors_text, result_errors, result_figure
from ._batch import add_batch_args, check_batch, file_task, run_batch_command
from ._common import (
    VOLUME_HELP,
    CLIError,
    Outputs,
    add_command,
    add_volume_args,
    centre_crop,
    check_device,
    check_volume_args,
    density,
    load_input,
    load_volume,
    nonneg_int,
    positive_float,
    positive_int,
    report_written,
)
from ._masks import check_binary, read_mask
from ._zarr import add_zarr_args, check_zarr, check_zarr_operator, run_inpaint_zarr

#: ``inpaint_diffusion``'s default tolerance, read from the library (declared there once).
DIFFUSE_TOL = INPAINT_METHODS["diffusion"].default("tol")

__all__ = ["add_parsers"]

#: The densify method's default number of stages (for --help and the report).
DENSIFY_STAGES = default_stages()
#: PS / NLPE estimated to take longer than this (seconds) get a warning line before they start.
SLOW_WARNING_S = 60.0
#: Built-in images are centre-cropped to this size unless --size says otherwise (PS is slow on large images).
DEFAULT_SIZE = 128


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not (math.isfinite(v) and 0 < v <= 1):
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return v


def _strength(text: str):
    """``--strength``: ``X`` or ``A,B``, finite numbers >= 0 (:func:`learned_mask`'s ``strength``)."""
    try:
        w = tuple(float(v) for v in text.split(","))
    except ValueError:
        w = ()
    if not 1 <= len(w) <= 2 or any(not (math.isfinite(v) and v >= 0) for v in w):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or a pair A,B of them, got {text!r}")
    return w[0] if len(w) == 1 else w


def _add_image_args(p: argparse.ArgumentParser, *, optional: bool, volume: bool = False, many: bool = False):
    """The input group (returned); ``volume``: IMAGE may be a volume; ``many``: or a batch."""
    g = p.add_argument_group("input")
    g.add_argument("image", metavar="IMAGE", nargs="?" if optional else ("+" if many else None), default=None,
                   help="image file (PNG, JPEG, TIFF, DICOM) or builtin:NAME"
                        + (" (default: builtin:skimage/camera)" if optional else "")
                        + "; `pdeflow samples` lists the built-in names" + (f"; {VOLUME_HELP}" if volume else "")
                        + ("; or several files, folders or patterns: a batch (below); or a zarr store IN.zarr "
                           "followed by OUT.zarr, with a zarr --mask or --holes (below)" if many else ""))
    g.add_argument("--size", type=positive_int, default=None,
                   help=f"centre-crop to SIZE x SIZE (default: whole file; built-in images: {DEFAULT_SIZE}"
                        + ("; a volume: each axis to at most SIZE)" if volume else ")"))
    c = g.add_mutually_exclusive_group()
    c.add_argument("--grey", "--gray", dest="grey", action="store_true", default=None,
                   help="convert a colour image to grey (luminance) first (default: keep its colour)")
    c.add_argument("--colour", "--color", dest="grey", action="store_false",
                   help="keep colour (the default for a colour image: one mask for the three channels; a grey "
                        "image gets 3 equal channels)")
    return g


def add_compute_args(p: argparse.ArgumentParser, *, method_tol: bool = False) -> None:
    """The computation group; ``method_tol``: ``--tol`` is the chosen inpainting method's own tolerance (default:
    the method's), else that of each diffusion inpainting."""
    p.set_defaults(warning_flags=[("tol", "tol", "--tol")])
    g = p.add_argument_group("computation")
    if method_tol:
        g.add_argument("--tol", type=positive_float, default=None,
                       help="the tolerance of the method's solve, a relative residual (default: the method's own; "
                            f"{DIFFUSE_TOL:g} for diffusion)".replace("e-0", "e-"))
    else:
        g.add_argument("--tol", type=positive_float, default=DIFFUSE_TOL,
                       help="relative residual of each diffusion inpainting (default "
                            f"{DIFFUSE_TOL:g})".replace("e-0", "e-"))
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")


def add_output_args(p: argparse.ArgumentParser, required: bool = True):
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", required=required, help="output directory (created if missing)")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return g


def add_parsers(sub) -> None:
    """Register ``pdeflow mask`` and ``pdeflow inpaint``."""
    p = add_command(sub, "mask", _run_mask,
                    examples=["pdeflow mask builtin:skimage/camera --size 64 --density 0.1 --out m/",
                              "pdeflow mask builtin:skimage/camera --size 64 --density 0.1 --method analytic "
                              "--refine 8 --out m/",
                              "pdeflow mask builtin:skimage/camera --size 64 --density 0.1 --method nlpe --out m/",
                              "pdeflow mask photo.png --density 0.05 --method ps --colour --out m/"],
                    validate=_check_mask)
    inputs = _add_image_args(p, optional=True, volume=True)
    g = p.add_argument_group("mask")
    g.add_argument("--density", type=density, required=True, metavar="D",
                   help="fraction of known pixels, in (0, 1)")
    g.add_argument("--method", choices=tuple(MASK_METHODS), default=None,
                   help="how to choose them (default: densify for an image, better than analytic, learned and ps "
                        "in MSE, MAE and SSIM wherever measured; analytic for a volume)")
    g.add_argument("--refine", type=nonneg_int, default=0, metavar="N",
                   help="analytic, learned: N rounds of pixel exchanges (adjoint-guided reveals, probed hides) "
                        "after the mask (test-time refinement; default 0: none)")
    g.add_argument("--strength", type=_strength, default=1.0, metavar="X|A,B",
                   help="learned: weight of the network's corrections of the analytic maps (default 1: as "
                        "trained; 0: the analytic mask); A,B: the log-density's by A, the snap score's by B "
                        "(0.3,0 for photographs at their native resolution, see the results pages)")
    g.add_argument("--scale", type=positive_int, default=1, metavar="N",
                   help="learned: the network reads the image reduced by N, its corrections resized back "
                        "(N^2 times less network work on large images; default 1: full resolution)")
    g.add_argument("--bfloat16", action="store_true",
                   help="learned: the network's convolutions in bfloat16 (faster on CPUs with bfloat16 "
                        "instructions and on GPUs; a few percent of the points move)")
    g.add_argument("--padding", choices=MASK_METHODS["learned"].choices["padding"], default="zeros",
                   help="learned: what the network sees beyond the image's border (default zeros: as in "
                        "training; reflect: the image mirrored, for photographs at their native resolution "
                        "with --strength 0.3,0)")
    g.add_argument("--start-mask", metavar="MASK", default=None,
                   help="ps, nlpe: sparsify from the white pixels of this mask image (e.g. a learned mask of a "
                        "few times the density) instead of from every pixel; densify: grow from them (at most "
                        "D of the pixels) instead of from a sparse analytic mask")
    g.add_argument("--stages", type=positive_int, default=None, metavar="N",
                   help=f"densify: inpaintings that add points where the error is largest (default {DENSIFY_STAGES}; "
                        + "; ".join(f"{o.stages} for --operator {n}" for n, o in OPERATORS.items()
                                    if o.stages != DENSIFY_STAGES) + ")")
    g.add_argument("--operator", choices=tuple(OPERATORS), default=None,
                   help="densify: the inpainting operator the mask is made for, whose errors place the points and "
                        "which inpaints from it here (default diffusion)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    g.add_argument("--metric", choices=MASK_METHODS["ps"].choices["metric"], default="mse",
                   help="error minimised by PS and NLPE (default mse)")
    g.add_argument("--p", type=_fraction, default=0.02, help="PS: fraction of mask pixels drawn as candidates "
                                                             "per step (default 0.02)")
    g.add_argument("--q", type=_fraction, default=0.02, help="PS: fraction of the candidates removed per step "
                                                             "(default 0.02)")
    g.add_argument("--candidates", type=positive_int, default=30, help="NLPE: candidates per exchange (default 30)")
    g.add_argument("--exchanges", type=positive_int, default=1, help="NLPE: pixels exchanged at once (default 1)")
    g.add_argument("--cycles", type=positive_int, default=5, help="NLPE: cycles of |mask| exchanges (default 5)")
    g.add_argument("--parallel", type=positive_int, default=1,
                   help="NLPE: exchanges tried per batched solve, the best kept (default 1: classical)")
    g.add_argument("--model", default=None, metavar="PATH",
                   help="learned: a trained mask network, gan: a trained mask GAN (model.json or run directory; "
                        "default: the shipped one for D, an error naming the way to train one if none is shipped)")
    add_compute_args(p)
    add_volume_args(inputs, add_output_args(p))

    p = add_command(sub, "inpaint", _run_inpaint,
                    epilog="example: pdeflow inpaint photo.png --mask m/mask.png --out rec/",
                    validate=_check_inpaint)
    inputs = _add_image_args(p, optional=False, volume=True, many=True)
    known = p.add_mutually_exclusive_group(required=True)
    known.add_argument("--mask", metavar="MASK",
                       help="sparse data: a mask image of the size of IMAGE (after --size, which crops both), black "
                            "and white only (PNG; white = known pixel); for a volume IMAGE, a volume file of its shape "
                            "of 0 and 1 (1 = known)")
    known.add_argument("--holes", metavar="HOLES",
                       help="holes: an image of the size of IMAGE, black and white only (PNG; white = missing: "
                            "scratches, text, objects to remove); every other pixel of IMAGE is known")
    p.add_argument("--method", choices=tuple(INPAINT_METHODS), default="diffusion",
                   help="inpainting (default diffusion): the PDE operators, learned (the shipped residual inpainter), "
                        "or wgan, an inpainting WGAN that you trained (`pdeflow train inpainting`; none is shipped), "
                        "given with --model")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="learned, wgan: a trained model (model.json or run directory; default: the shipped one, "
                        "an error if none is shipped)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="wgan: seed of the generator's noise (default 0)")
    p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=None,
                   help="learned: weight the network's correction per image by cross-validation on the known pixels "
                        "(default on: one more solve; see pdeflow.inpaint.inpaint_learned); --no-calibrate applies it "
                        "as trained")
    add_compute_args(p, method_tol=True)
    add_volume_args(inputs, add_output_args(p, required=False))
    add_batch_args(p)
    add_zarr_args(p, overlap=True)


def _check(args) -> None:
    args.device = check_device(args.parser, args.device)


#: The mask methods for volumes (the others are 2-D).
VOLUME_MASK_METHODS = tuple(m for m, entry in MASK_METHODS.items() if entry.volumes)


def _check_mask(args) -> None:
    _check(args)
    check_volume_args(args)
    if args.volume:
        if args.method is not None and args.method not in VOLUME_MASK_METHODS:
            args.parser.error(f"argument --method: {args.method} is for 2-D images and IMAGE '{args.image}' is a "
                              f"volume; use --method {' or '.join(VOLUME_MASK_METHODS)}")
        if args.refine:
            args.parser.error("argument --refine: refinement is for 2-D images; IMAGE is a volume")
    elif args.spacing is not None:
        args.parser.error("argument --spacing: for a volume IMAGE only in `pdeflow mask` (its masks of images are "
                          "on pixels)")


def _check_inpaint(args) -> None:
    _check(args)
    if check_zarr(args, refuse=[("--size", args.size is not None), ("--spacing", args.spacing is not None),
                                ("--grey", args.grey is not None), ("--model", args.model is not None),
                                ("--volume-format", args.volume_format is not None),
                                ("--calibrate", args.calibrate is not None), ("--device", args.device.type != "cpu")],
                  masks=[("--mask", args.mask), ("--holes", args.holes)]):
        check_zarr_operator(args)
        return
    if check_batch(args, refuse=[("--size", args.size is not None), ("--spacing", args.spacing is not None),
                                 ("--volume-format", args.volume_format is not None),
                                 ("--device", args.device.type != "cpu")]):
        args.volume = False
        return
    check_volume_args(args)
    if args.holes is not None and (args.volume or args.spacing is not None):
        args.parser.error("argument --holes: for 2-D images; a volume IMAGE takes --mask (1 = known voxel)")
    if (args.volume or args.spacing is not None) and not INPAINT_METHODS[args.method].volumes:
        why = f"IMAGE '{args.image}' is a volume" if args.volume else "--spacing is given"
        args.parser.error(f"argument --method: {args.method} is for 2-D images on unit pixels and {why}; use "
                          "--method diffusion")


def _load(args) -> tuple[torch.Tensor, str, Path | None]:
    """The input image (C, H, W) in [0, 1]; built-in images default to a DEFAULT_SIZE centre crop."""
    builtin = args.image is None or args.image.startswith("builtin:")
    if builtin and args.size is None:
        ns = argparse.Namespace(image=args.image, size=None, grey=args.grey)
        u, label, path = load_input(ns)
        u = centre_crop(u, DEFAULT_SIZE, strict=False)
        name = "skimage/camera" if args.image is None else args.image[len("builtin:"):]
        return u, f"builtin:{name} (centre {u.shape[-2]}x{u.shape[-1]} crop)", path
    return load_input(args)


def _announce_cost(args, x: torch.Tensor, start: torch.Tensor | None) -> None:
    """Print the estimated run time of PS (and NLPE) on this image before starting; warn when it is long."""
    H, W = x.shape[-2:]
    cost = MASK_METHODS[args.method].cost(x, args.density, args.p, args.q,
                                          cycles=args.cycles if args.method == "nlpe" else 0, tol=args.tol,
                                          generator=args.seed, start=None if start is None else int(start.sum()))
    secs = cost["seconds"]
    what = f"{cost['steps']} PS steps" + (f" + {cost['exchanges']} NLPE exchanges" if args.method == "nlpe" else "")
    print(f"estimated cost: {what}, one diffusion solve each: about {_duration(secs)} on this "
          f"{H}x{W} image (one solve measured at the final density; the earlier steps, on denser masks, scaled "
          "down by their modelled cost)")
    if secs > SLOW_WARNING_S:
        print(f"warning: --method {args.method} will take about {_duration(secs)}; --method densify (the default, "
              "better than PS wherever measured) takes seconds, or choose a smaller --size", file=sys.stderr)


def _duration(secs: float) -> str:
    if secs < 90:
        return f"{secs:.0f} s"
    if secs < 5400:
        return f"{secs / 60:.0f} min"
    return f"{secs / 3600:.1f} h"


def _run_mask(args) -> int:
    """Choose a fraction D of the pixels of an image so that inpainting from them restores it: analytic (Belhachmi et
    al.'s density |laplacian(G_sigma f)|, dithered with blue noise, points snapped to local extrema; milliseconds),
    learned (a trained mask network that corrects the analytic density; milliseconds), densify (grown from a sparse
    analytic mask by adding points where the diffusion inpainting errs most, a few inpaintings: seconds for a 4K
    photograph, better than PS), random (uniform), ps (probabilistic sparsification; minutes on a 128x128 image,
    growing with the image), nlpe (PS, then non-local pixel exchange; slower still) or gan (a trained mask GAN).
    Default: densify. PS and NLPE print an estimate of their run time before they start. Writes mask.png (white =
    known), inpainted.png (diffusion inpainting; the GAN's own inpainting for --method gan), mask_figure.png (known
    pixels marked, errors) and errors.csv (MSE, PSNR, MAE, SSIM on [0, 1], run time). A volume IMAGE gets an
    analytic (default; 3-D Laplacian density with its spacing, dithered to exactly D voxels) or random mask:
    mask.EXT (1 = known), inpainted.EXT (3-D diffusion) in the file's format, mask_figure.png with three orthogonal
    slices, errors.csv (no SSIM)."""
    if args.volume:
        return _run_mask_volume(args)
    f, label, path = _load(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    C, H, W = f.shape
    k = round(args.density * H * W)
    if k < 1 or k >= H * W:
        raise CLIError(f"argument --density: {args.density:g} of a {H}x{W} image keeps {k} pixels; "
                       "need at least 1 and fewer than all")
    chosen = args.method is None
    if chosen:      # the best mask measured on every set (docs/results/inpaint.md), grey or colour
        args.method = "densify"
    method = MASK_METHODS[args.method]
    for flag, option in _given_method_flags(args):
        if option not in method.options:
            takers = [m for m, entry in MASK_METHODS.items() if option in entry.options]
            raise CLIError(f"argument {flag}: only for --method {_either(takers)}, not {args.method}")
    start = None if args.start_mask is None else read_mask(args.start_mask, "--start-mask", args.size, (H, W))
    if start is not None and args.method != "densify" and int(start.sum()) < k:
        raise CLIError(f"argument --start-mask: it has {int(start.sum())} known pixels, fewer than the "
                       f"{k} of --density {args.density:g}")
    if start is not None and args.method == "densify" and not 1 <= int(start.sum()) <= k:
        raise CLIError(f"argument --start-mask: it has {int(start.sum())} known pixels; densify grows a mask of "
                       f"1 to {k} (--density {args.density:g}) known pixels")
    if args.scale > 1 and min(H, W) < 2 * args.scale:
        raise CLIError(f"argument --scale: {args.scale} leaves less than 2 pixels a side of a {H}x{W} image")
    dev = args.device
    model = _load_model(method, args, channels=C)
    out = Outputs(args.out, ["mask.png", "inpainted.png", "mask_figure.png", "errors.csv"],
                  overwrite=args.overwrite, inputs=[path])
    x = f.to(dev)
    print(f"image: {label}, {'grey' if C == 1 else 'colour'}, intensities in [0, 1]")
    if chosen:
        print(f"method: {args.method} (the default)")
    if method.cost is not None:
        _announce_cost(args, x, start)
    options = _mask_options(args, method, x, start, model)
    with out:
        t0 = time.perf_counter()
        notes = _mask_notes(args, start)
        if args.method == "nlpe":   # PS and NLPE timed apart: the report gives both
            ps_options = {k: v for k, v in options.items() if k in MASK_METHODS["ps"].options}
            mask = make_mask(x, args.density, "ps", **ps_options)
            notes.append(f"PS (p={args.p:g}, q={args.q:g}{'' if start is None else ', from --start-mask'}) "
                         f"{time.perf_counter() - t0:.2f} s")
            t1 = time.perf_counter()
            mask = make_mask(x, args.density, "nlpe", sparsified=mask, exchange_generator=args.seed + 1,
                             **{k: v for k, v in options.items() if k not in ("p", "q", "mask")})
            notes.append(f"NLPE ({args.cycles} cycles, {args.candidates} candidates, "
                         f"{args.exchanges} exchange(s)) {time.perf_counter() - t1:.2f} s")
        else:
            try:
                mask = make_mask(x, args.density, args.method, **options)
            except (FileNotFoundError, ValueError) as exc:
                if not method.needs_model:
                    raise
                raise CLIError(f"argument --method {args.method}: {exc}") from None
            if args.method == "ps":
                notes.append(f"PS (p={args.p:g}, q={args.q:g}{'' if start is None else ', from --start-mask'}) "
                             f"{time.perf_counter() - t0:.2f} s")
        secs_mask = time.perf_counter() - t0
        if not bool(mask.any()):
            raise CLIError("argument --method: the mask has no known pixel")
        t1 = time.perf_counter()
        inpainter = INPAINT_METHODS[args.operator or method.inpaint_with]
        if inpainter.needs_model:    # the mask method's own model inpaints (the mask GAN's generator)
            u = inpaint(x, mask, inpainter.name, model=model, generator=args.seed)
            how = f"the mask {args.method.upper()}'s inpainting"
        else:
            u = inpaint(x, mask, inpainter.name, **({"tol": args.tol} if inpainter.diffusion_tol else {}))
            how = f"{inpainter.name} inpainting"
        secs_inp = time.perf_counter() - t1
        f_c, m_c, u_c = f, mask.cpu(), u.cpu()
        e = result_errors(f_c, u_c)
        real = float(m_c.float().mean())
        print(f"mask: {args.method}, density {real:.4f} ({int(m_c.sum())} of {H * W} pixels; asked "
              f"{args.density:g}), {secs_mask:.2f} s" + (f" [{'; '.join(notes)}]" if notes else ""))
        print(f"{how}: {secs_inp:.2f} s; {errors_text(e)}")
        out.image("mask.png", m_c.float())
        out.image("inpainted.png", u_c.clamp(0, 1))
        out.figure("mask_figure.png", result_figure(
            f_c, m_c, u_c, f"{label}: {args.method} mask, density {real:.4f}, {secs_mask:.2f} s; "
                           f"{how}: {errors_text(e)}"))
        out.csv("errors.csv", ["method", "density", "mse", "psnr", "mae", "ssim", "mask_seconds", "inpaint_seconds"],
                [[args.method, f"{real:.6f}", f"{e['mse']:.6g}", f"{e['psnr']:.4f}", f"{e['mae']:.6g}",
                  f"{e['ssim']:.6f}", f"{secs_mask:.3f}", f"{secs_inp:.3f}"]])
    report_written(out)
    return 0


#: The flags of `pdeflow mask` that set one option of some mask methods, with the option's name.
_METHOD_FLAGS = (("--refine", "refine"), ("--strength", "strength"), ("--scale", "scale"),
                 ("--bfloat16", "compute_dtype"), ("--padding", "padding"), ("--stages", "stages"),
                 ("--start-mask", "mask"), ("--operator", "operator"))


def _given_method_flags(args):
    """``(flag, option)`` of the :data:`_METHOD_FLAGS` given on the command line (not at their defaults)."""
    given = {"--refine": args.refine, "--strength": args.strength != 1.0, "--scale": args.scale != 1,
             "--bfloat16": args.bfloat16, "--padding": args.padding != "zeros", "--stages": args.stages is not None,
             "--start-mask": args.start_mask is not None, "--operator": args.operator is not None}
    return [(flag, option) for flag, option in _METHOD_FLAGS if given[flag]]


def _either(names) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _load_model(method, args, *, channels: int):
    """The trained model of a method that runs one (``--model`` or the shipped one), else None."""
    if not method.needs_model:
        return None
    try:
        return method.load_model(args.model, density=getattr(args, "density", None), channels=channels,
                                 device=args.device)
    except (FileNotFoundError, ValueError) as exc:
        if args.model is not None:
            raise CLIError(f"argument --model: {exc}") from None
        if channels > 1 and "channel(s)" in str(exc):   # the shipped models are grey, the image is not
            raise CLIError(f"argument IMAGE: it is colour and the shipped --method {method.name} model takes 1 "
                           "channel: pass --grey, or a colour model (--model, trained with --channels 3)") from None
        # no --model: the method asked for the shipped one, which is missing
        raise CLIError(f"argument --method {method.name}: {exc} (give it with --model)") from None


def _mask_options(args, method, x: torch.Tensor, start, model) -> dict:
    """The options of the mask ``method`` that the command line sets: each flag's option where the method takes
    it; ``--seed`` for methods that draw at random, ``--tol`` where it is the diffusion solves' tolerance."""
    values = {"refine": args.refine, "strength": args.strength, "scale": args.scale,
              "compute_dtype": torch.bfloat16 if args.bfloat16 else None, "padding": args.padding,
              "stages": args.stages, "mask": None if start is None else start.to(device=x.device, dtype=x.dtype),
              "model": model, "p": args.p, "q": args.q, "metric": args.metric, "candidates": args.candidates,
              "exchanges": args.exchanges, "cycles": args.cycles, "parallel": args.parallel,
              "operator": args.operator,
              "progress": True}   # a bar on a terminal, a line per 10 % with ETA in a log
    if method.random:
        values["generator"] = args.seed
    if method.diffusion_tol:
        values["tol"] = args.tol
    options = {k: v for k, v in values.items() if k in method.options}
    for unset in ("stages", "mask", "operator"):      # not given: the method's default
        if options.get(unset, 0) is None:
            del options[unset]
    return options


def _mask_notes(args, start) -> list[str]:
    """What the report says about the chosen method's settings (PS and NLPE add their times as they run)."""
    notes = []
    if args.method == "analytic":
        notes.append(f"sigma {analytic_sigma(args.density):g}"
                     + (f", {args.refine} refinement rounds" if args.refine else ""))
    elif args.method == "learned":
        if args.strength != 1.0:
            a, b = args.strength if isinstance(args.strength, tuple) else (args.strength,) * 2
            notes.append(f"strength {a:g}, {b:g}")
        if args.scale > 1:
            notes.append(f"network at 1/{args.scale} scale")
        if args.bfloat16:
            notes.append("bfloat16 network")
        if args.padding != "zeros":
            notes.append(f"{args.padding} padding")
        if args.refine:
            notes.append(f"{args.refine} refinement rounds")
    elif args.method == "densify":
        stages = default_stages(args.operator or "diffusion") if args.stages is None else args.stages
        notes.append(f"{stages} stages" + ("" if start is None else ", from --start-mask")
                     + ("" if args.operator is None else f", for {args.operator} inpainting"))
    return notes


def _run_inpaint(args) -> int:
    """Reconstruct IMAGE from its pixels where MASK is white (a MASK with grey values is refused): homogeneous diffusion
    (Laplace equation, Neumann boundary) or another PDE operator, learned (diffusion plus a small trained network's
    correction on the unknown pixels, the residual inpainter) or an inpainting WGAN that you trained. Writes
    inpainted.png, inpaint_figure.png and errors.csv (MSE, PSNR, MAE, SSIM of the result against IMAGE, on [0, 1]:
    how well the known pixels of MASK restore an image you have). With --holes, IMAGE is the damaged image and there
    is nothing to compare with: no errors.csv, and the figure shows the input, the holes and the result. A volume
    IMAGE (with a MASK volume of its shape) is inpainted by 3-D diffusion with its voxel spacing (--spacing):
    inpainted.EXT in the file's units and format, inpaint_figure.png with three orthogonal slices, errors.csv (no
    SSIM). Several files, folders or patterns are a batch, inpainted from the one MASK (or HOLES): each file's
    inpainted.png is written as --out/NAME.png, NAME its path in its folder."""
    if args.calibrate is not None and args.method != "learned":
        flag = "--calibrate" if args.calibrate else "--no-calibrate"
        raise CLIError(f"argument {flag}: only for --method learned, not {args.method}")
    if args.zarr is not None:
        return run_inpaint_zarr(args)
    if args.batch is not None:
        return _run_inpaint_batch(args)
    if args.volume:
        return _run_inpaint_volume(args)
    f, label, path = _load(args)  # the same default crop of built-in images as `pdeflow mask`
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    C, H, W = f.shape
    given = args.mask if args.holes is None else args.holes
    mask = read_mask(given, "--mask" if args.holes is None else "--holes", args.size, (H, W),
                      holes=args.holes is not None)
    method = INPAINT_METHODS[args.method]
    model = _load_model(method, args, channels=C)
    holes = args.holes is not None      # IMAGE is the damaged image: no reference to measure errors against
    out = Outputs(args.out, ["inpainted.png", "inpaint_figure.png"] + ([] if holes else ["errors.csv"]),
                  overwrite=args.overwrite, inputs=[path, Path(given)])
    dev = args.device
    print(f"image: {label}, {'grey' if C == 1 else 'colour'}, intensities in [0, 1]; mask density "
          f"{float(mask.mean()):.4f}")
    options = _inpaint_options(args, method, model)
    with out:
        t0 = time.perf_counter()
        try:
            u = inpaint(f.to(dev), mask.to(dev), args.method, **options)
        except (FileNotFoundError, ValueError) as exc:
            if not method.needs_model:     # a trained model's refusal names the method that ran it
                raise
            raise CLIError(f"argument --method {args.method}: {exc}") from None
        secs = time.perf_counter() - t0
        u = u.cpu()
        out.image("inpainted.png", u.clamp(0, 1))
        if holes:
            print(f"{args.method} inpainting of the holes: {secs:.2f} s (no errors: IMAGE is the damaged image)")
            out.figure("inpaint_figure.png", _holes_figure(f, mask, u, f"{label}: {args.method} inpainting of "
                                                                        f"the holes, {secs:.2f} s"))
        else:
            _write_errors(out, args, f, mask, u, secs, label)
    report_written(out)
    return 0


def _inpaint_options(args, method, model) -> dict:
    """The options of :func:`~pdeflow.inpaint.inpaint` that ``method`` takes, from the command line."""
    values = {"tol": args.tol, "spacing": args.spacing, "model": model,
              "calibrate": args.calibrate is not False, "generator": args.seed if method.random else None}
    return {k: v for k, v in values.items() if k in method.options and (v is not None or k == "spacing")}


def _run_inpaint_batch(args) -> int:
    """``pdeflow inpaint`` of a batch: one task per file, inpainted from the one MASK (or HOLES) as the one-image
    command does (a file of another size than MASK fails with its line)."""
    import functools

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    given, flag = (args.mask, "--mask") if args.holes is None else (args.holes, "--holes")
    mask = read_mask(given, flag, None, None, holes=args.holes is not None)
    method = INPAINT_METHODS[args.method]
    model = _load_model(method, args, channels=3 if args.grey is False else 1)
    fn = functools.partial(inpaint, mask=mask, method=args.method, **_inpaint_options(args, method, model))
    return run_batch_command(args, [(file_task(fn, grey=args.grey), "")], suffix=".png", what="images")


def _write_errors(out, args, f, mask, u, secs: float, label: str) -> None:
    """The errors of the inpainting ``u`` against IMAGE ``f``: printed, in the figure and in errors.csv."""
    e = result_errors(f, u)
    print(f"{args.method} inpainting: {secs:.2f} s; against IMAGE: {errors_text(e)}")
    out.figure("inpaint_figure.png", result_figure(
        f, mask, u, f"{label}: {args.method} inpainting, {secs:.2f} s; {errors_text(e)}"))
    out.csv("errors.csv", ["method", "density", "mse", "psnr", "mae", "ssim", "seconds"],
            [[args.method, f"{float(mask.mean()):.6f}", f"{e['mse']:.6g}", f"{e['psnr']:.4f}",
              f"{e['mae']:.6g}", f"{e['ssim']:.6f}", f"{secs:.3f}"]])


def _holes_figure(f: torch.Tensor, mask: torch.Tensor, u: torch.Tensor, title: str):
    """The damaged input, its holes and the inpainting, side by side (no error: there is no reference)."""
    from .. import viz

    panels = [(f, "input (damaged)"), (1 - mask.expand(1, *mask.shape[-2:]).float(), "holes (white)"),
              (u.clamp(0, 1), "inpainted")]
    fig = viz.figure(2.7 * len(panels), 3.2)
    viz.image_grid(fig, panels, len(panels))
    fig.suptitle(title, fontsize=9)
    return fig


def _volume_errors(f: torch.Tensor, u: torch.Tensor) -> tuple[dict, str]:
    """MSE, PSNR and MAE of a volume's inpainting on the [0, 1] scale, over all voxels (not clipped, as written),
    and as text."""
    from ..metrics import mae, mse, psnr

    f64, u64 = f.double(), u.double()         # (D, H, W) read as (C, H, W): one value over all voxels
    e = {"mse": float(mse(u64, f64)), "psnr": float(psnr(u64, f64, data_range=1.0)), "mae": float(mae(u64, f64))}
    return e, f"MSE {e['mse']:.3g}, PSNR {e['psnr']:.2f} dB, MAE {e['mae']:.3g} (on [0, 1])"


def _volume_figure(vin, mask, u, title: str):
    """Input, mask, inpainting and error of a volume, three orthogonal slices each."""
    from .. import viz

    err = (u - vin.data).abs()
    top = float(err.max())
    panels = [(vin.shown(vin.data), "input"), (mask, f"mask (white = known), density {float(mask.mean()):.4f}"),
              (vin.shown(u), "inpainted"), (err / top if top > 0 else err, f"|error| (white = {top:.3g} of the range)")]
    return viz.slices_figure(panels, vin.spacing, title=f"{title}\n{vin.window_note()}")


def _run_mask_volume(args) -> int:
    """``pdeflow mask`` of a volume: an analytic or random mask of exactly round(D * voxels) voxels, and its 3-D
    diffusion inpainting."""
    vin = load_volume(args)
    n = vin.data.numel()
    k = round(args.density * n)
    if k < 1 or k >= n:
        raise CLIError(f"argument --density: {args.density:g} of a {'x'.join(map(str, vin.data.shape))} volume keeps "
                       f"{k} voxels; need at least 1 and fewer than all")
    method = args.method or "analytic"
    sfx = vin.suffix
    out = Outputs(args.out, ["mask" + sfx, "inpainted" + sfx, "mask_figure.png", "errors.csv"],
                  overwrite=args.overwrite, inputs=[vin.path])
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(vin.about)
    f, dev = vin.data, args.device
    with out:
        t0 = time.perf_counter()
        if MASK_METHODS[method].random:   # drawn on the CPU, whatever the device: the same mask everywhere
            mask = make_mask(f, args.density, method, generator=args.seed, spacing=vin.spacing)
            how = f"{method} (seed {args.seed})"
        else:
            mask = make_mask(f.to(dev), args.density, method, spacing=vin.spacing).cpu()
            how = f"{method} (sigma {analytic_sigma(args.density, spacing=vin.spacing):g} in the spacing's unit)"
        secs_mask = time.perf_counter() - t0
        t1 = time.perf_counter()
        u = inpaint(f.to(dev), mask.to(dev, f.dtype), "diffusion", tol=args.tol, spacing=vin.spacing).cpu()
        secs_inp = time.perf_counter() - t1
        e, text = _volume_errors(f, u)
        dens = float(mask.float().mean())
        print(f"mask: {how}, density {dens:.4f} ({int(mask.sum())} of {n} voxels; asked {args.density:g}), "
              f"{secs_mask:.2f} s")
        print(f"diffusion inpainting (3-D): {secs_inp:.2f} s; {text}")
        out.volume("mask" + sfx, mask.float(), vin.spacing)
        out.volume("inpainted" + sfx, vin.in_units(u).float(), vin.spacing)
        out.figure("mask_figure.png", _volume_figure(
            vin, mask.float(), u, f"{vin.label}: {how} mask, {secs_mask:.2f} s; diffusion inpainting (3-D), "
                                  f"{secs_inp:.2f} s\n{text}"))
        out.csv("errors.csv", ["method", "density", "mse", "psnr", "mae", "ssim", "mask_seconds", "inpaint_seconds"],
                [[method, f"{dens:.6f}", f"{e['mse']:.6g}", f"{e['psnr']:.4f}", f"{e['mae']:.6g}", "",
                  f"{secs_mask:.3f}", f"{secs_inp:.3f}"]])
    report_written(out)
    return 0


def _run_inpaint_volume(args) -> int:
    """``pdeflow inpaint`` of a volume: 3-D diffusion inpainting (7-point Laplacian with the volume's spacing) from
    the voxels where the MASK volume is 1 (0 elsewhere), on the volume min-max mapped to [0, 1]."""
    vin = load_volume(args)
    try:
        m = centre_crop(pio.read_volume(args.mask)[0], args.size, strict=False, ndim=3)
    except (UserInputError, FileNotFoundError) as exc:
        msg = str(exc)
        raise CLIError(f"argument --mask: {msg[len('read_volume: '):] if msg.startswith('read_volume: ') else msg}"
                       ) from None
    if m.shape != vin.data.shape:
        raise CLIError(f"argument --mask: the mask volume is {'x'.join(map(str, m.shape))} but IMAGE is "
                       f"{'x'.join(map(str, vin.data.shape))}" + (" (after --size)" if args.size else ""))
    check_binary(m, "--mask", args.mask, "a volume")
    mask = m.to(torch.float32)
    if not bool(mask.any()):
        raise CLIError("argument --mask: the mask has no known voxel (1)")
    name = "inpainted" + vin.suffix
    out = Outputs(args.out, [name, "inpaint_figure.png", "errors.csv"], overwrite=args.overwrite,
                  inputs=[vin.path, Path(args.mask)])
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    f, dens = vin.data, float(mask.mean())
    print(vin.about)
    print(f"mask: {args.mask}, density {dens:.4f} ({int(mask.sum())} of {mask.numel()} voxels known)")
    with out:
        t0 = time.perf_counter()
        tol = {} if args.tol is None else {"tol": args.tol}
        u = inpaint(f.to(args.device), mask.to(args.device), args.method, spacing=vin.spacing, **tol).cpu()
        secs = time.perf_counter() - t0
        e, text = _volume_errors(f, u)
        print(f"{args.method} inpainting (3-D): {secs:.2f} s; against IMAGE: {text}")
        out.volume(name, vin.in_units(u).float(), vin.spacing)
        out.figure("inpaint_figure.png", _volume_figure(
            vin, mask, u, f"{args.method} inpainting (3-D) of {vin.label}, {secs:.2f} s\n{text}"))
        out.csv("errors.csv", ["method", "density", "mse", "psnr", "mae", "ssim", "seconds"],
                [[args.method, f"{dens:.6f}", f"{e['mse']:.6g}", f"{e['psnr']:.4f}", f"{e['mae']:.6g}", "",
                  f"{secs:.3f}"]])
    report_written(out)
    return 0
