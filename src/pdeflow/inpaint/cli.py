"""``pdeflow mask`` and ``pdeflow inpaint``: sparse masks and inpainting from the command line.

Wiring: :func:`add_parsers` takes the top-level subparsers of ``pdeflow`` (it fits
:data:`pdeflow.cli.COMMANDS`). The GAN methods go through
:mod:`pdeflow.inpaint.gan` (trained models); without a trained model they
exit with a one-line error that says how to get one.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import torch

from .. import data as pdata
from .. import metrics
from ..cli import (CLIError, Outputs, _centre_crop, _figure, _image_row, _load_input, _report_written,
                   check_device, positive_float, positive_int)
from ..cli import nonneg_int
from .diffusion import diffuse
from .masks import nonlocal_pixel_exchange, probabilistic_sparsification, random_mask

__all__ = ["add_parsers"]

MASK_METHODS = ("random", "ps", "nlpe", "gan")
INPAINT_METHODS = ("diffusion", "wgan")
#: Built-in images are centre-cropped to this size unless --size says otherwise (PS is slow on large images).
DEFAULT_SIZE = 128


def _density(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not (math.isfinite(v) and 0 < v < 1):
        raise argparse.ArgumentTypeError(f"expected a fraction of known pixels in (0, 1), got {text!r}")
    return v


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not (math.isfinite(v) and 0 < v <= 1):
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return v


def _add_image_args(p: argparse.ArgumentParser, *, optional: bool) -> None:
    g = p.add_argument_group("input")
    g.add_argument("image", metavar="IMAGE", nargs="?" if optional else None, default=None,
                   help="image file (PNG, JPEG, TIFF, DICOM) or builtin:NAME"
                        + (" (default: builtin:skimage/camera)" if optional else "")
                        + "; `pdeflow samples` lists the built-in names")
    g.add_argument("--size", type=positive_int, default=None,
                   help=f"centre-crop to SIZE x SIZE (default: whole file; built-in images: {DEFAULT_SIZE})")
    c = g.add_mutually_exclusive_group()
    c.add_argument("--grey", "--gray", dest="grey", action="store_true", default=True,
                   help="convert to grey (luminance) (default)")
    c.add_argument("--colour", "--color", dest="grey", action="store_false",
                   help="keep colour (one mask for the three channels)")


def _add_compute_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("computation")
    g.add_argument("--tol", type=positive_float, default=1e-6,
                   help="relative residual of each diffusion inpainting (default 1e-6)")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")


def _add_output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", required=True, help="output directory (created if missing)")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")


def add_parsers(sub) -> None:
    """Register ``pdeflow mask`` and ``pdeflow inpaint``."""
    p = sub.add_parser(
        "mask", help="choose the known pixels of a sparse inpainting mask (random, PS, PS+NLPE, mask GAN)",
        description="Choose a fraction D of the pixels of an image so that inpainting from them restores it: "
                    "random (uniform), ps (probabilistic sparsification), nlpe (PS, then non-local pixel "
                    "exchange) or gan (a trained mask GAN). Writes mask.png (white = known), inpainted.png "
                    "(diffusion inpainting; the GAN's own inpainting for --method gan), mask_figure.png "
                    "(known pixels marked, errors) and errors.csv (MSE, PSNR, MAE, SSIM on [0, 1], run time).",
        epilog="examples:\n"
               "  pdeflow mask builtin:skimage/camera --size 64 --density 0.1 --method nlpe --out m/\n"
               "  pdeflow mask photo.png --density 0.05 --method ps --colour --out m/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_image_args(p, optional=True)
    g = p.add_argument_group("mask")
    g.add_argument("--density", type=_density, required=True, metavar="D",
                   help="fraction of known pixels, in (0, 1)")
    g.add_argument("--method", choices=MASK_METHODS, default="ps", help="how to choose them (default ps)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="random seed (default 0)")
    g.add_argument("--metric", choices=("mse", "mae"), default="mse",
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
                   help="gan: a trained mask GAN (model.json or run directory; default: the shipped one for D)")
    _add_compute_args(p)
    _add_output_args(p)
    p.set_defaults(run=_run_mask, validate=_check)

    p = sub.add_parser(
        "inpaint", help="inpaint an image from the known pixels of a mask (diffusion or WGAN)",
        description="Reconstruct IMAGE from its pixels where MASK is white (> 0.5): homogeneous diffusion "
                    "(Laplace equation, Neumann boundary) or a trained inpainting WGAN. Writes inpainted.png, "
                    "inpaint_figure.png and errors.csv (MSE, PSNR, MAE, SSIM of the result against IMAGE, on "
                    "[0, 1]).",
        epilog="example: pdeflow inpaint photo.png --mask m/mask.png --out rec/")
    _add_image_args(p, optional=False)
    p.add_argument("--mask", required=True, metavar="MASK",
                   help="mask image of the size of IMAGE (after --size, which crops both): white = known pixel")
    p.add_argument("--method", choices=INPAINT_METHODS, default="diffusion", help="inpainting (default diffusion)")
    p.add_argument("--model", default=None, metavar="PATH",
                   help="wgan: a trained inpainting model (model.json or run directory; default: the shipped one)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="wgan: seed of the generator's noise (default 0)")
    _add_compute_args(p)
    _add_output_args(p)
    p.set_defaults(run=_run_inpaint, validate=_check)


def _check(args) -> None:
    args.device = check_device(args.parser, args.device)


def _load(args) -> tuple[torch.Tensor, str, Path | None]:
    """The input image (C, H, W) in [0, 1]; built-in images default to a DEFAULT_SIZE centre crop."""
    builtin = args.image is None or args.image.startswith("builtin:")
    if builtin and args.size is None:
        ns = argparse.Namespace(image=args.image, size=None, grey=args.grey)
        u, label, path = _load_input(ns)
        u = _centre_crop(u, DEFAULT_SIZE, strict=False)
        name = "skimage/camera" if args.image is None else args.image[len("builtin:"):]
        return u, f"builtin:{name} (centre {u.shape[-2]}x{u.shape[-1]} crop)", path
    return _load_input(args)


def _gan_module():
    """pdeflow.inpaint.gan, or a clear error if this installation has no GAN models."""
    if importlib.util.find_spec("pdeflow.inpaint.gan") is None:
        raise CLIError("argument --method: no mask/inpainting GAN is available in this installation")
    from . import gan
    return gan


def _errors(f: torch.Tensor, u: torch.Tensor) -> dict:
    f64, u64 = f.double().cpu(), u.double().cpu().clamp(0, 1)
    return {"mse": float(metrics.mse(f64, u64)), "psnr": float(metrics.psnr(f64, u64, data_range=1.0)),
            "mae": float(metrics.mae(f64, u64)), "ssim": float(metrics.ssim(f64, u64, data_range=1.0))}


def _err_text(e: dict) -> str:
    return f"MSE {e['mse']:.3g}, PSNR {e['psnr']:.2f} dB, MAE {e['mae']:.4f}, SSIM {e['ssim']:.4f}"


def _marked(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RGB (3, H, W): the image at half brightness with the known pixels in red."""
    rgb = 0.5 * (f.expand(3, *f.shape[-2:]) if f.shape[0] == 1 else f).clamp(0, 1)
    red = torch.tensor([1.0, 0.1, 0.1], dtype=rgb.dtype).view(3, 1, 1).expand_as(rgb)
    return torch.where(mask.bool(), red, rgb)


def _result_figure(f, mask, u, title: str):
    panels = [(f, "input"), (mask.expand(1, *mask.shape[-2:]).float(), "mask (white = known)"),
              (_marked(f, mask), "known pixels (red)"), (u.clamp(0, 1), "inpainted")]
    err = (u - f).abs().amax(0, keepdim=True)
    scale = float(err.max())
    panels.append(((err / scale) if scale > 0 else err, f"|error| (white = {scale:.3g})"))
    fig = _figure(2.7 * len(panels), 3.4)
    _image_row(fig, panels, len(panels))
    fig.suptitle(title, fontsize=9)
    return fig


def _run_mask(args) -> int:
    f, label, path = _load(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Outputs(args.out, ["mask.png", "inpainted.png", "mask_figure.png", "errors.csv"],
                  overwrite=args.overwrite, inputs=[path])
    C, H, W = f.shape
    k = round(args.density * H * W)
    if k < 1 or k >= H * W:
        raise CLIError(f"argument --density: {args.density:g} of a {H}x{W} image keeps {k} pixels; "
                       "need at least 1 and fewer than all")
    gan = _gan_module() if args.method == "gan" else None
    dev = args.device
    x = f.to(dev)
    progress = sys.stderr.isatty()
    print(f"image: {label}, {'grey' if C == 1 else 'colour'}, intensities in [0, 1]")
    with out:
        t0 = time.perf_counter()
        notes = []
        if args.method == "random":
            mask = random_mask((1, H, W), args.density, generator=args.seed, dtype=x.dtype, device=dev)
        elif args.method in ("ps", "nlpe"):
            mask = probabilistic_sparsification(x, args.density, p=args.p, q=args.q, metric=args.metric,
                                                tol=args.tol, generator=args.seed, progress=progress)
            notes.append(f"PS (p={args.p:g}, q={args.q:g}) {time.perf_counter() - t0:.2f} s")
            if args.method == "nlpe":
                t1 = time.perf_counter()
                mask = nonlocal_pixel_exchange(x, mask, candidates=args.candidates, exchanges=args.exchanges,
                                               cycles=args.cycles, parallel=args.parallel, metric=args.metric,
                                               tol=args.tol, generator=args.seed + 1, progress=progress)
                notes.append(f"NLPE ({args.cycles} cycles, {args.candidates} candidates, "
                             f"{args.exchanges} exchange(s)) {time.perf_counter() - t1:.2f} s")
        else:
            try:
                model = gan.load_mask_model(args.model if args.model is not None else args.density, device=dev)
                mask = gan.gan_mask(x, args.density, model, seed=args.seed)
            except (FileNotFoundError, ValueError) as exc:
                raise CLIError(f"argument --method gan: {exc}") from None
        secs_mask = time.perf_counter() - t0
        if not bool(mask.any()):
            raise CLIError("argument --method: the mask has no known pixel")
        t1 = time.perf_counter()
        if args.method == "gan":
            u = gan.gan_inpaint(x, mask, model, seed=args.seed)
            how = "the mask GAN's inpainting"
        else:
            u = diffuse(x, mask, tol=args.tol)
            how = "diffusion inpainting"
        secs_inp = time.perf_counter() - t1
        f_c, m_c, u_c = f, mask.cpu(), u.cpu()
        e = _errors(f_c, u_c)
        real = float(m_c.float().mean())
        print(f"mask: {args.method}, density {real:.4f} ({int(m_c.sum())} of {H * W} pixels; asked "
              f"{args.density:g}), {secs_mask:.2f} s" + (f" [{'; '.join(notes)}]" if notes else ""))
        print(f"{how}: {secs_inp:.2f} s; {_err_text(e)}")
        out.image("mask.png", m_c.float())
        out.image("inpainted.png", u_c.clamp(0, 1))
        out.figure("mask_figure.png", _result_figure(
            f_c, m_c, u_c, f"{label}: {args.method} mask, density {real:.4f}, {secs_mask:.2f} s; "
                           f"{how}: {_err_text(e)}"))
        out.csv("errors.csv", ["method", "density", "mse", "psnr", "mae", "ssim", "mask_seconds", "inpaint_seconds"],
                [[args.method, f"{real:.6f}", f"{e['mse']:.6g}", f"{e['psnr']:.4f}", f"{e['mae']:.6g}",
                  f"{e['ssim']:.6f}", f"{secs_mask:.3f}", f"{secs_inp:.3f}"]])
    _report_written(out)
    return 0


def _read_mask(args, shape) -> torch.Tensor:
    path = Path(args.mask)
    if not path.exists():
        raise CLIError(f"argument --mask: no such file: '{args.mask}'")
    try:
        m = pdata.read_image(path, grey=True)
    except (ValueError, OSError) as exc:
        raise CLIError(f"argument --mask: {exc}") from None
    m = _centre_crop(m, args.size, strict=True)
    if m.shape[-2:] != shape:
        raise CLIError(f"argument --mask: the mask is {m.shape[-2]}x{m.shape[-1]} but IMAGE is "
                       f"{shape[0]}x{shape[1]}")
    m = (m > 0.5).to(torch.float32)
    if not bool(m.any()):
        raise CLIError("argument --mask: the mask has no known pixel (white, > 0.5)")
    return m


def _run_inpaint(args) -> int:
    f, label, path = _load_input(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    C, H, W = f.shape
    mask = _read_mask(args, (H, W))
    gan = _gan_module() if args.method == "wgan" else None
    out = Outputs(args.out, ["inpainted.png", "inpaint_figure.png", "errors.csv"], overwrite=args.overwrite,
                  inputs=[path, Path(args.mask)])
    dev = args.device
    print(f"image: {label}, {'grey' if C == 1 else 'colour'}, intensities in [0, 1]; mask density "
          f"{float(mask.mean()):.4f}")
    with out:
        t0 = time.perf_counter()
        if args.method == "diffusion":
            u = diffuse(f.to(dev), mask.to(dev), tol=args.tol)
        else:
            try:
                model = gan.load_inpainting_model(args.model, device=dev)
                u = gan.gan_inpaint(f.to(dev), mask.to(dev), model, seed=args.seed)
            except (FileNotFoundError, ValueError) as exc:
                raise CLIError(f"argument --method wgan: {exc}") from None
        secs = time.perf_counter() - t0
        u = u.cpu()
        e = _errors(f, u)
        print(f"{args.method} inpainting: {secs:.2f} s; against IMAGE: {_err_text(e)}")
        out.image("inpainted.png", u.clamp(0, 1))
        out.figure("inpaint_figure.png", _result_figure(
            f, mask, u, f"{label}: {args.method} inpainting, {secs:.2f} s; {_err_text(e)}"))
        out.csv("errors.csv", ["method", "density", "mse", "psnr", "mae", "ssim", "seconds"],
                [[args.method, f"{float(mask.mean()):.6f}", f"{e['mse']:.6g}", f"{e['psnr']:.4f}",
                  f"{e['mae']:.6g}", f"{e['ssim']:.6f}", f"{secs:.3f}"]])
    _report_written(out)
    return 0
