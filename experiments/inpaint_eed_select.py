"""Choose EED inpainting's pipeline (contrast, presmoothing, its mask's densification) on selection photos only.

Never on the held-out mate-nature photos.

Grey centre crops (``--crop`` px) of the selection photos: ``.data/photos/opencv``, ``.data/photos/lomiri`` and
pdeflow's built-in TRAIN photos (the first ``--limit`` of each source, sorted). For every point of the grid (below),
at each ``--density`` (default 5 %):

* ``eed_own``: EED from a mask densified for EED (``densify_mask(..., operator='eed')`` with these parameters),
  the setting of the issue's goal, against ``hd_own``: homogeneous diffusion from its own densified mask;
* ``eed_hd``: EED from the diffusion-densified mask, and ``eed_random``: EED from a uniformly random mask (against
  ``hd_random``: diffusion from it).

PSNR of the inpaintings clipped to [0, 1]; EED to a nonlinear residual of ``--eval-tol`` (1e-4; its outer and
inner iteration counts recorded). The choice is the grid point of the best mean ``eed_own``. Writes
``select.json`` and ``select.md`` to ``--out``::

    OMP_NUM_THREADS=1 python experiments/inpaint_eed_select.py --crop 256 --limit 4 --masks own --out DIR

The defaults were chosen on the first 4 images of each source (``--limit 4``) at 256 px, a few options at a time
(the commands are the ``command.txt`` of ``e9512d6:benchmarks/results/inpaint_eed_select/choose_*`` in git history). With one grid
point and ``--skip N`` (the images after the first N of each source) the same table checks the choice on
selection images it did not see (``confirm_*``).

The grid also spans the rest of the EED pipeline (each option takes several values; every combination is run):
the densification of the EED mask (``--stages``, ``--start``, ``--dsigma``: its error smoothing, ``--dtol``: the
tolerance of its EED solves), the relative residual of each lagged-diffusivity step's CG (``--inner-rtol``, in
the densification and the final inpainting) and the diffusivity (``--diffusivity``: ``charbonnier``, the
module's, or ``pm``, Perona and Malik's ``1 / (1 + s^2 / lambda^2)``, or ``weickert``, the exponential one of
Galic et al. 2008, for this script's run only). ``--density`` takes several densities; ``--masks own`` skips the
diffusion-densified and random masks. The diffusion baseline ``hd_own`` uses ``densify_mask``'s defaults unless
``--hd-stages`` or ``--hd-dsigma`` say otherwise. ``--dsigma-per-spacing`` gives ``--dsigma`` in units of the
mask's mean spacing ``1 / sqrt(density)`` instead of pixels.

``--time N`` instead times EED (and, once, TV inpainting) against homogeneous diffusion
(:func:`pdeflow.inpaint.inpaint_diffusion`, default settings) at ``N x N`` on one thread, from the same 5 %
diffusion-densified mask and from an EED-densified one, on the selection photo ``--time-photo`` (best of
``--repeats`` runs each, in one process), and writes ``timing.md`` and ``timing.json``::

    OMP_NUM_THREADS=1 python experiments/inpaint_eed_select.py --time 1024 --out DIR

``densify_mask(..., operator='eed')`` needs the 'eed' entry of :data:`pdeflow.inpaint.operators.OPERATORS`;
where it is not registered yet, this script registers it for its own run.

Maintained.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
from _results import add_output_args, open_out, write_text  # noqa: E402  (experiments/_results.py)
from pdeflow import metrics  # noqa: E402
from pdeflow.datasets import builtin_pool  # noqa: E402
from pdeflow.filters import gaussian_blur  # noqa: E402
from pdeflow.inpaint import densify_mask, inpaint_diffusion, operators  # noqa: E402
from pdeflow.inpaint.operators import (  # noqa: E402
    STAGES,  # noqa: E402
    eed,
    tv,
)
from pdeflow.inpaint.operators.tensor_diffusion import TensorOperator, central_differences  # noqa: E402


def load_grey(path, size=None):
    """A grey float32 tensor (H, W) in [0, 1] of the photo at ``path``; ``size`` (H, W): centre-cropped
    to that aspect ratio, then reduced (area average)."""
    import torch.nn.functional as F
    from PIL import Image

    f = torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0)
    if size is None:
        return f.contiguous()
    H, W = size
    h, w = f.shape
    if h * W > w * H:           # too tall: crop rows
        hh = w * H // W
        f = f[(h - hh) // 2:(h - hh) // 2 + hh]
    else:
        ww = h * W // H
        f = f[:, (w - ww) // 2:(w - ww) // 2 + ww]
    f = F.interpolate(f[None, None], size=(H, W), mode="area")[0, 0]
    return f.clamp(0, 1).contiguous()


def centre_crop(f, n: int):
    """The centre ``n x n`` of ``f`` (..., H, W), contiguous; a side shorter than ``n`` is kept whole."""
    h, w = f.shape[-2:]
    top, left = max(0, (h - n) // 2), max(0, (w - n) // 2)
    return f[..., top:top + n, left:left + n].contiguous()


#: The pipeline options of the grid: (name, argparse type, default values).
PIPELINE = (("contrast", float, [0.005, 0.01, 0.02, 0.04]), ("sigma", float, [0.5, 1.0, 1.5, 2.0]),
            ("stages", int, [STAGES]), ("start", float, [0.3]), ("dsigma", float, [0.7]),
            ("dtol", float, [1e-3]), ("inner_rtol", float, [eed.INNER_RTOL]),
            ("diffusivity", str, ["charbonnier"]))


def eed_tensor_with(diffusivity: str):
    """A stand-in for :func:`eed.eed_tensor` with another diffusivity ``g`` (``h = (1 - g) / s^2``)."""
    if diffusivity == "charbonnier":
        return eed.eed_tensor

    def tensor(u, lam2, sigma, w):
        cy, cx = central_differences(gaussian_blur(u, sigma))
        j11 = (cy * cy).mean(1, keepdim=True)
        j12 = (cy * cx).mean(1, keepdim=True)
        j22 = (cx * cx).mean(1, keepdim=True)
        lam2 = lam2.view(-1, 1, 1, 1)
        s2 = j11 + j22
        if diffusivity == "pm":
            h = (s2 + lam2).reciprocal()                  # g = 1 / (1 + s^2 / lambda^2)
        else:                                             # Weickert: g = 1 - exp(-3.31488 / (s / lambda)^8)
            q = (s2 / lam2).clamp_min(1e-30)
            h = torch.exp(-3.31488 / q.pow(4)) / (s2 + 1e-300)   # -> 0 as s -> 0: g = 1 there
        return TensorOperator.from_tensor(1 - h * j11, -h * j12, 1 - h * j22, w)
    return tensor


def selection_images(limit: int, crop: int, skip: int = 0) -> dict:
    """Name -> grey (H, W) float64 crop of the selection photos: of each source the ``limit`` after the first
    ``skip``. A source folder that is missing (no ``make photos`` yet) is left out, with a note."""
    out = {}
    for folder in ("opencv", "lomiri"):
        d = HERE.parent / ".data" / "photos" / folder
        if not d.is_dir():
            print(f"{d} not found: left out of the selection photos (run `make photos`)", flush=True)
            continue
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[skip:skip + limit]
        for p in files:
            out[f"{folder}/{p.name}"] = centre_crop(load_grey(p), crop).double()
    for name, img in list(builtin_pool("train", kind="photo").items())[skip:skip + limit]:
        out[name] = centre_crop(img[0], crop).double()
    return out


def psnr(u, f) -> float:
    return float(metrics.psnr(u.clamp(0, 1), f, data_range=1.0))


def best_of(fn, repeats: int):
    """``(result, seconds)``: the smallest wall time of ``repeats`` calls of ``fn``."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def timing(args, out: Path) -> int:
    """EED against homogeneous diffusion at ``args.time`` px, same masks, one thread."""
    n = args.time
    f = load_grey(args.time_photo, (n, n))
    rows = []
    for kind in ("diffusion", "eed"):
        m = densify_mask(f, args.density, operator=kind)
        u_hd, t_hd = best_of(lambda: inpaint_diffusion(f, m), args.repeats)
        r, t_eed = best_of(lambda: eed.inpaint_eed(f, m, full_output=True), args.repeats)
        rt, t_tv = best_of(lambda: tv.inpaint_tv(f, m, full_output=True), 1)
        row = {"mask": kind, "size": n, "diffuse_s": t_hd, "eed_s": t_eed, "ratio": t_eed / t_hd,
               "eed_outer": int(r.outer_iterations), "eed_inner": int(r.inner_iterations),
               "eed_residual": float(r.residual), "psnr_diffuse": psnr(u_hd, f), "psnr_eed": psnr(r.u, f),
               "tv_s": t_tv, "tv_outer": int(rt.outer_iterations), "tv_inner": int(rt.inner_iterations),
               "psnr_tv": psnr(rt.u, f)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = [f"# EED against homogeneous diffusion at {n} x {n} ({args.time_photo.name}, one thread, "
             f"density {args.density}, best of {args.repeats})", "",
             "| mask densified for | inpaint_diffusion (s) | inpaint_eed (s) | ratio | EED outer / inner iterations | "
             "PSNR inpaint_diffusion | PSNR EED | inpaint_tv (s, one run) | TV outer / inner | PSNR TV |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mask']} | {r['diffuse_s']:.3f} | {r['eed_s']:.3f} | {r['ratio']:.1f} | "
                     f"{r['eed_outer']} / {r['eed_inner']} | {r['psnr_diffuse']:.2f} | {r['psnr_eed']:.2f} | "
                     f"{r['tv_s']:.3f} | {r['tv_outer']} / {r['tv_inner']} | {r['psnr_tv']:.2f} |")
    write_text(out / "timing.md", "\n".join(lines) + "\n")
    write_text(out / "timing.json", json.dumps(rows, indent=1))
    return 0


def run_eed(f, density: float, cfg: dict, masks: dict, kinds, eval_tol: float = 1e-4,
            per_spacing: bool = False) -> dict:
    """EED from each mask of ``kinds`` (``eed_own``: densified here, for EED with ``cfg``), with the pipeline
    settings ``cfg``: PSNR, iteration counts and CPU seconds. ``per_spacing``: ``cfg['dsigma']`` is in units of
    the mask's mean spacing ``1 / sqrt(density)``."""
    dsigma = cfg["dsigma"] / density ** 0.5 if per_spacing else cfg["dsigma"]
    saved = (eed.CONTRAST, eed.SIGMA, eed.INNER_RTOL, eed.eed_tensor)
    # densify_mask's EED solves (solve_unchecked) read the module's defaults
    eed.CONTRAST, eed.SIGMA, eed.INNER_RTOL = cfg["contrast"], cfg["sigma"], cfg["inner_rtol"]
    eed.eed_tensor = eed_tensor_with(cfg["diffusivity"])
    row = {}
    try:
        t0 = time.process_time()
        masks = dict(masks, eed_own=densify_mask(f, density, operator="eed", stages=cfg["stages"],
                                                  start=cfg["start"], sigma=dsigma, tol=cfg["dtol"]))
        row["eed_mask_cpu_s"] = time.process_time() - t0
        for key in kinds:
            t0 = time.process_time()
            r = eed.inpaint_eed(f, masks[key], contrast=cfg["contrast"], sigma=cfg["sigma"], tol=eval_tol,
                                max_iter=500, full_output=True)
            row.update({key: psnr(r.u, f), f"{key}_outer": int(r.outer_iterations),
                        f"{key}_inner": int(r.inner_iterations), f"{key}_residual": float(r.residual),
                        f"{key}_cpu_s": time.process_time() - t0})
    finally:
        eed.CONTRAST, eed.SIGMA, eed.INNER_RTOL, eed.eed_tensor = saved
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--limit", type=int, default=6, help="N images of each source (sorted)")
    ap.add_argument("--skip", type=int, default=0, help="after the first SKIP of each source (a check on images "
                    "the selection did not see)")
    ap.add_argument("--density", nargs="+", type=float, default=[0.05])
    for key, typ, default in PIPELINE:
        ap.add_argument("--" + key.replace("_", "-"), nargs="+", type=typ, default=default)
    ap.add_argument("--hd-stages", type=int, default=STAGES,
                    help="densify_mask's stages for the diffusion masks (a check that the baseline is not held back)")
    ap.add_argument("--hd-dsigma", type=float, default=0.7, help="densify_mask's sigma for the diffusion masks")
    ap.add_argument("--dsigma-per-spacing", action="store_true",
                    help="--dsigma in units of the mask's mean spacing 1 / sqrt(density) (pixels otherwise)")
    ap.add_argument("--eval-tol", type=float, default=1e-4, help="tolerance of the evaluated EED inpaintings")
    ap.add_argument("--masks", choices=("all", "own"), default="all",
                    help="own: EED from its own densified mask only (no eed_hd, eed_random)")
    ap.add_argument("--smoke", action="store_true", help="two images of 48 px, a 2 x 1 grid")
    ap.add_argument("--time", type=int, default=0, metavar="N", help="time EED against diffusion at N x N instead")
    ap.add_argument("--time-photo", type=Path,
                    default=HERE.parent / ".data" / "photos" / "lomiri" / "Dragonfly_by_Bolly.jpg")
    ap.add_argument("--repeats", type=int, default=3)
    add_output_args(ap, "inpaint_eed_select", what="select.json, select.md, log.txt")
    args = ap.parse_args(argv)
    if args.smoke:
        args.crop, args.limit, args.contrast, args.sigma = 48, 1, args.contrast[:2], args.sigma[:1]
        args.density = args.density[:1]
    out = open_out(args, argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)   # iteration caps are recorded in the rows instead
    if "eed" not in operators.OPERATORS:
        operators.OPERATORS["eed"] = operators.Operator("eed", eed.inpaint_eed, eed.solve_unchecked, "EED", "")
    if args.time:
        args.density = args.density[0]
        return timing(args, out)
    images = selection_images(args.limit, args.crop, args.skip)
    if args.smoke:
        images = dict(list(images.items())[:2])
    keys = [k for k, _, _ in PIPELINE]
    grid = [dict(zip(keys, values)) for values in itertools.product(*(getattr(args, k) for k in keys))]
    kinds = ("eed_own", "eed_hd", "eed_random") if args.masks == "all" else ("eed_own",)
    rows = []
    for name, f in images.items():
        for d in args.density:
            gen = torch.Generator().manual_seed(0)
            m_rand = (torch.rand(f.shape, generator=gen, dtype=f.dtype) < d).to(f.dtype)
            m_hd = densify_mask(f, d, stages=args.hd_stages, sigma=args.hd_dsigma)
            hd_own, hd_random = psnr(inpaint_diffusion(f, m_hd, tol=1e-6), f), psnr(inpaint_diffusion(f, m_rand, tol=1e-6), f)
            for cfg in grid:
                row = {"image": name, "density": d, **cfg, "hd_own": hd_own, "hd_random": hd_random}
                row.update(run_eed(f, d, cfg, {"eed_own": None, "eed_hd": m_hd, "eed_random": m_rand}, kinds,
                                   args.eval_tol, args.dsigma_per_spacing))
                rows.append(row)
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}),
                      flush=True)
    lines = [f"# EED parameter selection ({len(images)} selection images, {args.crop} px crops; diffusion masks: "
             f"stages {args.hd_stages}, sigma {args.hd_dsigma})", "",
             "Mean PSNR (dB) over the images; gain = EED minus homogeneous diffusion, each from the mask named "
             "(own: densified for the operator; hd_own with the diffusion masks' settings of the title). Wins: "
             "images where EED from its own mask beats diffusion from its own."
             + (" dsigma in units of the mean spacing 1 / sqrt(density)." if args.dsigma_per_spacing else ""), "",
             "| density | " + " | ".join(keys) + " | eed_own | hd_own | gain own masks | min / max gain | wins | "
             + ("eed_hd | gain HD mask | eed_random | hd_random | gain random | " if args.masks == "all" else "")
             + "mean outer (own) | mean inner (own) | mask CPU s |",
             "|" + "---|" * (len(keys) + (13 if args.masks == "all" else 8))]
    best = {}
    for d in args.density:
        for cfg in grid:
            sel = [r for r in rows if r["density"] == d and all(r[k] == cfg[k] for k in keys)]
            mean = {k: sum(r[k] for r in sel) / len(sel) for k in sel[0]
                    if isinstance(sel[0][k], (int, float)) and k not in keys}
            gains = [r["eed_own"] - r["hd_own"] for r in sel]
            line = (f"| {d:g} | " + " | ".join(f"{cfg[k]:g}" if not isinstance(cfg[k], str) else cfg[k]
                                                for k in keys)
                    + f" | {mean['eed_own']:.2f} | {mean['hd_own']:.2f} | {mean['eed_own'] - mean['hd_own']:+.2f} | "
                    f"{min(gains):+.2f} / {max(gains):+.2f} | {sum(g > 0 for g in gains)}/{len(gains)} | ")
            if args.masks == "all":
                line += (f"{mean['eed_hd']:.2f} | {mean['eed_hd'] - mean['hd_own']:+.2f} | "
                         f"{mean['eed_random']:.2f} | {mean['hd_random']:.2f} | "
                         f"{mean['eed_random'] - mean['hd_random']:+.2f} | ")
            line += (f"{mean['eed_own_outer']:.1f} | {mean['eed_own_inner']:.1f} | "
                     f"{mean['eed_mask_cpu_s']:.2f} |")
            lines.append(line)
            if d not in best or mean["eed_own"] > best[d][0]:
                best[d] = (mean["eed_own"], cfg)
    lines.append("")
    for d, (v, cfg) in best.items():
        lines.append(f"Best mean eed_own at density {d:g}: " + ", ".join(f"{k} {cfg[k]}" for k in keys)
                     + f" ({v:.2f} dB).")
    lines += ["", "Images: " + ", ".join(images)]
    write_text(out / "select.md", "\n".join(lines) + "\n")
    write_text(out / "select.json", json.dumps({"args": {k: v for k, v in vars(args).items()
                                                         if not k.startswith("_") and k != "out"},
                                                "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
