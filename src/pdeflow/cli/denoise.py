"""``pdeflow denoise``: TV denoising (ROF) of an image or a volume for one or more weights lambda.

Images are read in [0, 1] and used as they are (lambda in those units); results are shown clipped to
[0, 1]. A volume IMAGE (a volume file or a folder of DICOM slices, :func:`pdeflow.io.is_volume`) is read
with its spacing, min-max mapped to [0, 1], denoised in 3-D and written as volumes in the file's units,
with a figure of three orthogonal slices (:func:`pdeflow.viz.slices_figure`).

``add_parsers(sub)`` registers the subcommand on the top-level subparsers of ``pdeflow``.
"""
from __future__ import annotations

import math
import time
import warnings

import torch

from .. import viz
from ..tv import ACCURACY, ConvergenceWarning, rof
from ._arguments import (
    accuracy,
    add_command,
    add_compute_args,
    add_output_args,
    check_compute,
    positive_float,
    positive_int,
    setup_compute,
    stopping_rule,
)
from ._batch import add_batch_args, check_batch, file_task, run_batch_command
from ._errors import PROG
from ._inputs import (
    SIZE_HELP,
    VOLUME_HELP,
    add_volume_args,
    check_nd_solver,
    check_volume_args,
    load_input,
    load_volume,
    print_spacing,
)
from ._outputs import Outputs, report_written, time_labels
from ._zarr import add_zarr_args, check_zarr, open_store, run_zarr

__all__ = ["add_parsers", "DENOISE"]


#: ``pdeflow denoise``'s defaults: rof's own accuracy (a certified RMS error of 2.5e-4 of the image's range).
DENOISE = dict(tol=None, accuracy=ACCURACY, max_iter=20000, seed=0)


def _register_denoise(sub) -> None:
    p = add_command(sub, "denoise", _run_denoise,
                    examples=[f"{PROG} denoise photo.png --lam 0.05 0.1 0.2 --out den/",
                              f"{PROG} denoise builtin:skimage/camera --noise 0.1 --lam 0.03 0.06 0.12 0.25 "
                              "--out den/"],
                    note="With --noise the table and the figure give the PSNR of each lambda against the clean "
                         "image: the lambda to pick is the one with the highest PSNR.",
                    validate=_check_denoise)
    inputs = g = p.add_argument_group("input")
    g.add_argument("image", metavar="IMAGE", nargs="+",
                   help="image file (PNG, JPEG, TIFF, DICOM) or builtin:NAME, read in [0, 1] and used as it is; "
                        + VOLUME_HELP + ", min-max mapped to [0, 1]; or several files, folders or patterns: a batch "
                        "(below); or a zarr store IN.zarr followed by OUT.zarr (below)")
    g.add_argument("--size", type=positive_int, default=None, help=SIZE_HELP)
    c = g.add_mutually_exclusive_group()
    c.add_argument("--grey", "--gray", dest="grey", action="store_true", default=None,
                   help="convert a colour image to grey (luminance) first (default: keep its colour)")
    c.add_argument("--colour", "--color", dest="grey", action="store_false",
                   help="keep colour (the default for a colour image: 3 channels, coupled vectorial TV; a grey "
                        "image gets 3 equal channels)")
    g.add_argument("--noise", metavar="SIGMA", type=positive_float, default=None,
                   help="add Gaussian noise of standard deviation SIGMA (in [0, 1] units, not clipped) first, "
                        "and report the PSNR of each result against the clean image")
    g.add_argument("--seed", type=int, default=None,
                   help=f"seed of the --noise (default {DENOISE['seed']})")
    g = p.add_argument_group("ROF: argmin_u 1/2 ||u - f||^2 + lambda TV(u)")
    g.add_argument("--lam", type=_lam_value, nargs="+", required=True, metavar="L",
                   help="weights lambda > 0, in units of the [0, 1] image (one result per value; typical: "
                        "about the noise's standard deviation to twice it), or 'auto': chosen for white Gaussian "
                        "noise by Stein's unbiased risk estimate at the noise level estimated from the image "
                        "(one image or volume; says which lambda it chose)")
    g.add_argument("--method", choices=("fgp", "pdhg", "chambolle", "admm"), default="fgp",
                   help="fgp: fast gradient projection (default); pdhg: Chambolle-Pock; chambolle: Chambolle's "
                        "2004 projection; admm: split Bregman")
    g.add_argument("--accuracy", type=accuracy, default=DENOISE["accuracy"],
                   help=f"stop once the RMS error of each result is certified (by the duality gap) to be at most "
                        f"this fraction of the image's range (default {DENOISE['accuracy']:g}, a sixteenth of an "
                        "8-bit step)")
    g.add_argument("--tol", type=positive_float, default=DENOISE["tol"],
                   help="stop at this relative duality gap instead of --accuracy (1e-6: the exact minimiser; "
                        "a zarr store: the gap of the whole image, 1e-7 the exact minimiser; --method not used)")
    g.add_argument("--max-iter", type=positive_int, default=DENOISE["max_iter"],
                   help=f"iteration cap per lambda (default {DENOISE['max_iter']})")
    add_compute_args(p)
    p.set_defaults(warning_flags=[("max_iter", "max_iter", "--max-iter"), ("tol", "tol", "--tol")])
    add_volume_args(inputs, add_output_args(p, required=False))
    add_batch_args(p)
    add_zarr_args(p)


def _lam_value(text: str):
    """``--lam``: a positive number or ``auto``."""
    return "auto" if text == "auto" else positive_float(text)


def _check_denoise(args) -> None:
    if "auto" in args.lam:
        if len(args.lam) > 1:
            args.parser.error("argument --lam: 'auto' takes no other value")
    lams = ["auto"] if "auto" in args.lam else [float(v) for v in args.lam]
    if len(set(lams)) != len(lams):
        args.parser.error(f"argument --lam: values must be distinct, got {' '.join(f'{v:g}' for v in lams)}")
    args.lam = lams if lams == ["auto"] else sorted(lams)
    if args.seed is not None and args.noise is None:
        args.parser.error("argument --seed: only used with --noise")
    args.seed = DENOISE["seed"] if args.seed is None else args.seed
    if check_zarr(args, refuse=[("--noise", args.noise is not None), ("--size", args.size is not None),
                                ("--spacing", args.spacing is not None), ("--grey", args.grey is not None),
                                ("--volume-format", args.volume_format is not None),
                                ("--device", args.device != "cpu")]):
        if len(args.lam) > 1:
            args.parser.error("argument --lam: a zarr store takes one lambda (one output store)")
        _refuse_auto(args, "a zarr store")
        check_compute(args)
        return
    if check_batch(args, refuse=[("--noise", args.noise is not None), ("--size", args.size is not None),
                                 ("--spacing", args.spacing is not None),
                                 ("--volume-format", args.volume_format is not None),
                                 ("--device", args.device != "cpu")]):
        args.volume = False
        _refuse_auto(args, "a batch of files")
        check_compute(args)
        return
    check_volume_args(args)
    check_nd_solver(args, "--method", args.method)
    check_compute(args)


def _denoise_names(lams, noise: bool) -> list[str]:
    return (["input.png"] + (["noisy.png"] if noise else []) + [f"u_lam{lab}.png" for lab in _labels(lams)]
            + ["denoise.png", "denoise.csv"])


def _refuse_auto(args, what: str) -> None:
    if args.lam == ["auto"]:
        args.parser.error(f"argument --lam: 'auto' takes one image or volume; {what} takes numbers")


def _rof_per_lambda(batch, lams, args, spacing):
    """``rof`` of ``batch`` (one copy of the input per lambda) with the i-th lambda on the i-th copy, and its
    seconds; a solve that stops at the cap is reported by the caller, one line per lambda."""
    lam = "auto" if lams == ["auto"] else torch.tensor(lams, dtype=batch.dtype, device=args.device)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = rof(batch, lam, method=args.method, tol=args.tol, accuracy=args.accuracy, max_iter=args.max_iter,
                  full_output=True,
                  spacing=spacing)
    secs = time.perf_counter() - t0
    if res.lam is not None:
        from ..tv import estimate_sigma

        sigma = float(estimate_sigma(batch[:1], ndim=batch.dim() - 2))
        print(f"lambda auto: {float(res.lam[0]):.4g} (smallest SURE at the noise level sigma = {sigma:.4g} "
              "estimated from the image)")
    return res, secs


def _labels(lams) -> list[str]:
    return ["auto"] if lams == ["auto"] else time_labels(lams)


def _run_denoise(args) -> int:
    """TV denoising: for each weight lambda (--lam) solve the ROF problem argmin_u 1/2 ||u - f||^2 + lambda TV(u)
    (pdeflow.tv.rof, all lambdas in one batch) on the image f as read in [0, 1], or on the image plus Gaussian noise
    (--noise SIGMA, seeded by --seed). Writes input.png (and noisy.png), one u_lamL.png per lambda, a figure
    (denoise.png) and a table (denoise.csv: lambda, iterations, duality gap, TV, and with --noise the PSNR against
    the clean image). Results are shown clipped to [0, 1]. A volume IMAGE is denoised in 3-D with its voxel spacing
    (--spacing) after a min-max map to [0, 1]: it writes (noisy.EXT and) u_lamL.EXT per lambda, in the file's
    units and format (EXT: .npy, .tif, .nii or .nii.gz; --volume-format), and a figure of three orthogonal slices
    per result (denoise.png). Several files, folders or patterns are a batch: each file's u_lamL.png is written as
    --out/NAME.png (NAME_lamL.png for several lambdas), NAME its path in its folder."""
    if args.zarr is not None:
        return _run_denoise_zarr(args)
    if args.batch is not None:
        return _run_denoise_batch(args)
    if args.volume:
        return _run_denoise_volume(args)
    from ..metrics import psnr
    from ..ops import tv

    clean, label, path = load_input(args)
    lams, labels, noisy = args.lam, _labels(args.lam), args.noise is not None
    out = Outputs(args.out, _denoise_names(lams, noisy), overwrite=args.overwrite, inputs=[path])
    setup_compute(args)
    f = clean.double()
    if noisy:
        gen = torch.Generator().manual_seed(args.seed)
        f = f + args.noise * torch.randn(f.shape, generator=gen, dtype=torch.float64)
    f = f.float()
    print(f"image: {label}, {'grey' if clean.shape[0] == 1 else 'colour'}; intensities in [0, 1] as read "
          f"(lambda in those units)" + (f"; Gaussian noise sigma={args.noise:g}, seed {args.seed}" if noisy else ""))
    print_spacing(args)
    res, secs = _rof_per_lambda(f.to(args.device).unsqueeze(0).expand(len(lams), *f.shape), lams, args, args.spacing)
    lams = lams if res.lam is None else res.lam.tolist()
    u = res.u.detach().cpu()
    iters, gaps = res.iterations.cpu().tolist(), res.gap.cpu().tolist()
    tvs = tv(u, spacing=args.spacing).tolist()
    scores = psnr(u.double().clamp(0, 1), clean.double().expand_as(u), data_range=1.0).tolist() if noisy else None
    base = float(psnr(f.double().clamp(0, 1), clean.double(), data_range=1.0)) if noisy else None
    _rof_report(args, lams, labels, iters, gaps, tvs, scores, secs, base, res.converged.cpu().tolist())
    header, rows = _denoise_rows(args, lams, iters, gaps, tvs, scores)
    with out:
        out.image("input.png", clean)
        if noisy:
            out.image("noisy.png", f.clamp(0, 1))
        for lab, ui in zip(labels, u):
            out.image(f"u_lam{lab}.png", ui.clamp(0, 1))
        out.csv("denoise.csv", header, rows)
        out.figure("denoise.png", _denoise_figure(clean, f if noisy else None, u, labels, scores, label, args))
    report_written(out)
    return 0


def _rof_report(args, lams, labels, iters, gaps, tvs, scores, secs, noisy_psnr, converged) -> None:
    """The lines ``denoise`` prints after the solve, for images and volumes."""
    print(f"ROF ({args.method}, {stopping_rule(args)}) for {len(lams)} lambda(s): {secs:.2f} s")
    if args.tol is None:
        print(f"  accuracy: each result's RMS error is at most {args.accuracy:g} of the image's range, certified by "
              "its duality gap (--tol 1e-6 for the exact minimiser)")
    if noisy_psnr is not None:
        print(f"  noisy input: PSNR {noisy_psnr:.2f} dB")
    for i, lab in enumerate(labels):
        line = f"  lambda = {lab}: {iters[i]} iterations, gap {gaps[i]:.2g}, TV {tvs[i]:.6g}"
        print(line + (f", PSNR {scores[i]:.2f} dB" if scores else ""))
        if not converged[i]:
            print(f"  lambda = {lab}: stopped at --max-iter {args.max_iter} short of {stopping_rule(args)}; raise "
                  f"--max-iter, or loosen {'--tol' if args.tol is not None else '--accuracy'}")
    if scores:
        best = max(range(len(lams)), key=lambda i: scores[i])
        print(f"highest PSNR: lambda = {labels[best]} ({scores[best]:.2f} dB)")


def _denoise_rows(args, lams, iters, gaps, tvs, scores):
    noisy = scores is not None
    header = ["lambda", "method", "iterations", "gap", "tv"] + (["psnr_db", "noise_sigma", "seed"] if noisy else [])
    rows = [[lams[i], args.method, iters[i], f"{gaps[i]:.3g}", f"{tvs[i]:.8g}"]
            + ([f"{scores[i]:.4f}", args.noise, args.seed] if noisy else []) for i in range(len(lams))]
    return header, rows


def _run_denoise_batch(args) -> int:
    """``pdeflow denoise`` of a batch: one task per file and lambda, the ROF of the one-image command."""
    import functools

    setup_compute(args)
    several = len(args.lam) > 1
    tasks = [(file_task(functools.partial(rof, lam=lam, method=args.method, tol=args.tol, accuracy=args.accuracy,
                                         max_iter=args.max_iter),
                       grey=args.grey), f"_lam{lab}" if several else "")
             for lam, lab in zip(args.lam, time_labels(args.lam))]
    return run_batch_command(args, tasks, suffix=".png", what="results")


def _run_denoise_zarr(args) -> int:
    """``pdeflow denoise IN.zarr OUT.zarr``: :func:`pdeflow.dask.rof_to_zarr` of the store, chunk by chunk."""
    setup_compute(args)

    def build():
        from ..dask import rof_to_zarr

        f = open_store(args.zarr[0], "IMAGE", chunks=args.chunks, ndim=args.ndim or 2, fill_missing=args.fill_missing)

        def solve(target, overwrite):
            return rof_to_zarr(f, args.lam[0], target, accuracy=args.accuracy, tol=args.tol,
                               max_iter=args.max_iter, max_sweeps=args.max_sweeps, ndim=args.ndim,
                               overwrite=overwrite)

        return f, solve

    rule = (f"relative duality gap {args.tol:g}" if args.tol is not None
            else f"RMS error at most {args.accuracy:g} of the range, certified")
    return run_zarr(args, build, f"ROF (lambda {args.lam[0]:g}, {rule})")


def _run_denoise_volume(args) -> int:
    """``pdeflow denoise`` of a volume: 3-D ROF with its spacing, on the volume min-max mapped to [0, 1]."""
    from ..metrics import psnr
    from ..ops import tv

    vin = load_volume(args)
    lams, labels, noisy, sfx = args.lam, _labels(args.lam), args.noise is not None, vin.suffix
    names = (["noisy" + sfx] if noisy else []) + [f"u_lam{lab}{sfx}" for lab in labels] + ["denoise.png",
                                                                                             "denoise.csv"]
    out = Outputs(args.out, names, overwrite=args.overwrite, inputs=[vin.path])
    setup_compute(args)
    clean = vin.data
    f = clean.double()
    if noisy:
        gen = torch.Generator().manual_seed(args.seed)
        f = f + args.noise * torch.randn(f.shape, generator=gen, dtype=torch.float64)
    f = f.float()
    print(vin.about)
    print("lambda in units of the [0, 1] values times the spacing's unit of length"
          + (f"; Gaussian noise sigma={args.noise:g} (of the [0, 1] range), seed {args.seed}" if noisy else ""))
    res, secs = _rof_per_lambda(f.to(args.device)[None, None].expand(len(lams), 1, *f.shape), lams, args, vin.spacing)
    lams = lams if res.lam is None else res.lam.tolist()
    u = res.u.detach().cpu()[:, 0]                                  # (L, D, H, W)
    iters, gaps = res.iterations.cpu().tolist(), res.gap.cpu().tolist()
    tvs = tv(u[:, None], spacing=vin.spacing).tolist()
    # (L, D, H, W) read as (B, C, H, W): one PSNR per volume, over all its voxels; not clipped (as written)
    scores = psnr(u.double(), clean.double().expand_as(u), data_range=1.0).tolist() if noisy else None
    base = float(psnr(f.double(), clean.double(), data_range=1.0)) if noisy else None
    _rof_report(args, lams, labels, iters, gaps, tvs, scores, secs, base, res.converged.cpu().tolist())
    header, rows = _denoise_rows(args, lams, iters, gaps, tvs, scores)
    panels = [(vin.shown(clean), "input" if not noisy else "clean input")]
    panels += [(vin.shown(f), f"noisy, sigma = {args.noise:g}, PSNR {base:.2f} dB")] if noisy else []
    panels += [(vin.shown(ui), f"lambda = {lab}" + (f", PSNR {scores[i]:.2f} dB" if noisy else ""))
               for i, (lab, ui) in enumerate(zip(labels, u))]
    with out:
        if noisy:
            out.volume("noisy" + sfx, vin.in_units(f).float(), vin.spacing)
        for lab, ui in zip(labels, u):
            out.volume(f"u_lam{lab}{sfx}", vin.in_units(ui).float(), vin.spacing)
        out.csv("denoise.csv", header, rows)
        out.figure("denoise.png", viz.slices_figure(
            panels, vin.spacing, title=f"TV denoising (ROF, 3-D) of {vin.label}\nmethod {args.method}, "
                                       f"{stopping_rule(args)}, {secs:.2f} s\n{vin.window_note()}"))
    report_written(out)
    return 0


def _denoise_figure(clean, noisy, u, labels, scores, label, args):
    panels = [(clean, "input" if noisy is None else "clean input")]
    panels += [(noisy.clamp(0, 1), f"noisy, sigma = {args.noise:g}")] if noisy is not None else []
    panels += [(ui.clamp(0, 1), f"lambda = {lab}" + (f"\nPSNR {scores[i]:.2f} dB" if scores else ""))
               for i, (lab, ui) in enumerate(zip(labels, u))]
    ncols = min(len(panels), 6)
    nrows = math.ceil(len(panels) / ncols)
    plot = scores is not None and len(labels) > 1
    fig = viz.figure(2.8 * ncols, 3.0 * nrows + (2.8 if plot else 0.0) + 0.5)
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.0 * nrows, 2.8]) if plot else (fig, None)
    viz.image_grid(top, panels, ncols)
    if plot:
        ax = bottom.subplots()
        ax.semilogx(args.lam, scores, "o-", lw=1)
        ax.set_xticks(args.lam, labels, minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("lambda")
        ax.set_ylabel("PSNR (dB) against the clean image")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"TV denoising (ROF) of {label}\nmethod {args.method}, {stopping_rule(args)}; "
                 "intensities in [0, 1], shown clipped", fontsize=10)
    return fig


def add_parsers(sub) -> None:
    """Register ``pdeflow denoise`` on the top-level subparsers."""
    _register_denoise(sub)
