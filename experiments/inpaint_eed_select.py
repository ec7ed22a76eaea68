"""Choose EED inpainting's default contrast and presmoothing on selection photos (never the held-out mate-nature ones).

Grey centre crops (``--crop`` px) of the selection photos: ``.data/photos/opencv``, ``.data/photos/lomiri`` and
pdeflow's built-in TRAIN photos (the first ``--limit`` of each source, sorted). For every ``contrast`` x ``sigma``
of the grid, at ``--density`` (default 5 %):

* ``eed_own``: EED from a mask densified for EED (``densify_mask(..., operator='eed')`` with these parameters),
  the setting of the issue's goal, against ``hd_own``: homogeneous diffusion from its own densified mask;
* ``eed_hd``: EED from the diffusion-densified mask, and ``eed_random``: EED from a uniformly random mask (against
  ``hd_random``: diffusion from it).

PSNR of the inpaintings clipped to [0, 1]; EED to a nonlinear residual of 1e-4 (its outer and inner iteration
counts recorded). The default is the grid point of the best mean ``eed_own``. Writes ``select.json`` and
``select.md`` to ``--out``::

    OMP_NUM_THREADS=1 python experiments/inpaint_eed_select.py --crop 128 --limit 4 --out DIR

The defaults were chosen by that command with ``--contrast 0.005 0.01 0.02 0.04 --sigma 1 1.5 2 3``. With one grid
point and ``--skip N`` (the images after the first N of each source) the same table checks the chosen defaults
on selection images the choice did not see.

``--time N`` instead times EED (and, once, TV inpainting) against homogeneous diffusion (:func:`pdeflow.inpaint.diffuse`, default settings)
at ``N x N`` on one thread, from the same 5 % diffusion-densified mask and from an EED-densified one, on the
selection photo ``--time-photo`` (best of ``--repeats`` runs each, in one process), and writes ``timing.md`` and
``timing.json``::

    OMP_NUM_THREADS=1 python experiments/inpaint_eed_select.py --time 1024 --out DIR

``densify_mask(..., operator='eed')`` needs the 'eed' entry of :data:`pdeflow.inpaint.operators.OPERATORS`;
where it is not registered yet, this script registers it for its own run.

Maintained.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent / "benchmarks"))   # after experiments/: _results is experiments/_results.py
from _results import add_output_args, open_out, write_text  # noqa: E402  (experiments/_results.py)
from inpaint_masks_4k import centre_crop, load_grey  # noqa: E402  (benchmarks/inpaint_masks_4k.py)
from pdeflow import metrics  # noqa: E402
from pdeflow.datasets import builtin_pool  # noqa: E402
from pdeflow.inpaint import densify_mask, diffuse, operators  # noqa: E402
from pdeflow.inpaint.operators import eed, tv  # noqa: E402


def selection_images(limit: int, crop: int, skip: int = 0) -> dict:
    """Name -> grey (H, W) float64 crop of the selection photos: of each source the ``limit`` after the first
    ``skip``."""
    out = {}
    for folder in ("opencv", "lomiri"):
        d = HERE.parent / ".data" / "photos" / folder
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
        u_hd, t_hd = best_of(lambda: diffuse(f, m), args.repeats)
        r, t_eed = best_of(lambda: eed.eed_inpaint(f, m, full_output=True), args.repeats)
        rt, t_tv = best_of(lambda: tv.tv_inpaint(f, m, full_output=True), 1)
        row = {"mask": kind, "size": n, "diffuse_s": t_hd, "eed_s": t_eed, "ratio": t_eed / t_hd,
               "eed_outer": int(r.outer_iterations), "eed_inner": int(r.inner_iterations),
               "eed_residual": float(r.residual), "psnr_diffuse": psnr(u_hd, f), "psnr_eed": psnr(r.u, f),
               "tv_s": t_tv, "tv_outer": int(rt.outer_iterations), "tv_inner": int(rt.inner_iterations),
               "psnr_tv": psnr(rt.u, f)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = [f"# EED against homogeneous diffusion at {n} x {n} ({args.time_photo.name}, one thread, "
             f"density {args.density}, best of {args.repeats})", "",
             "| mask densified for | diffuse (s) | eed_inpaint (s) | ratio | EED outer / inner iterations | "
             "PSNR diffuse | PSNR EED | tv_inpaint (s, one run) | TV outer / inner | PSNR TV |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mask']} | {r['diffuse_s']:.3f} | {r['eed_s']:.3f} | {r['ratio']:.1f} | "
                     f"{r['eed_outer']} / {r['eed_inner']} | {r['psnr_diffuse']:.2f} | {r['psnr_eed']:.2f} | "
                     f"{r['tv_s']:.3f} | {r['tv_outer']} / {r['tv_inner']} | {r['psnr_tv']:.2f} |")
    write_text(out / "timing.md", "\n".join(lines) + "\n")
    write_text(out / "timing.json", json.dumps(rows, indent=1))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--limit", type=int, default=6, help="N images of each source (sorted)")
    ap.add_argument("--skip", type=int, default=0, help="after the first SKIP of each source (a check on images "
                    "the selection did not see)")
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--contrast", nargs="+", type=float, default=[0.005, 0.01, 0.02, 0.04])
    ap.add_argument("--sigma", nargs="+", type=float, default=[0.5, 1.0, 1.5, 2.0])
    ap.add_argument("--smoke", action="store_true", help="two images of 48 px, a 2 x 1 grid")
    ap.add_argument("--time", type=int, default=0, metavar="N", help="time EED against diffusion at N x N instead")
    ap.add_argument("--time-photo", type=Path,
                    default=HERE.parent / ".data" / "photos" / "lomiri" / "Dragonfly_by_Bolly.jpg")
    ap.add_argument("--repeats", type=int, default=3)
    add_output_args(ap, "inpaint_eed_select", what="select.json, select.md, log.txt")
    args = ap.parse_args(argv)
    if args.smoke:
        args.crop, args.limit, args.contrast, args.sigma = 48, 1, args.contrast[:2], args.sigma[:1]
    out = open_out(args, argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)   # iteration caps are recorded in the rows instead
    if "eed" not in operators.OPERATORS:
        operators.OPERATORS["eed"] = operators.Operator("eed", eed.eed_inpaint, eed.solve_unchecked, "EED", "")
    if args.time:
        return timing(args, out)
    images = selection_images(args.limit, args.crop, args.skip)
    if args.smoke:
        images = dict(list(images.items())[:2])
    rows = []
    defaults = (eed.CONTRAST, eed.SIGMA)
    for name, f in images.items():
        gen = torch.Generator().manual_seed(0)
        m_rand = (torch.rand(f.shape, generator=gen, dtype=f.dtype) < args.density).to(f.dtype)
        m_hd = densify_mask(f, args.density)
        hd_own, hd_random = psnr(diffuse(f, m_hd, tol=1e-6), f), psnr(diffuse(f, m_rand, tol=1e-6), f)
        for c in args.contrast:
            for s in args.sigma:
                eed.CONTRAST, eed.SIGMA = c, s   # densify_mask's EED solves use the module's defaults
                try:
                    t0 = time.process_time()
                    m_eed = densify_mask(f, args.density, operator="eed")
                    mask_s = time.process_time() - t0
                finally:
                    eed.CONTRAST, eed.SIGMA = defaults
                row = {"image": name, "contrast": c, "sigma": s, "hd_own": hd_own, "hd_random": hd_random,
                       "eed_mask_cpu_s": mask_s}
                for key, m in (("eed_own", m_eed), ("eed_hd", m_hd), ("eed_random", m_rand)):
                    t0 = time.process_time()
                    r = eed.eed_inpaint(f, m, contrast=c, sigma=s, tol=1e-4, max_iter=200, full_output=True)
                    row.update({key: psnr(r.u, f), f"{key}_outer": int(r.outer_iterations),
                                f"{key}_inner": int(r.inner_iterations), f"{key}_cpu_s": time.process_time() - t0})
                rows.append(row)
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}),
                      flush=True)
    lines = [f"# EED parameter selection ({len(images)} selection images, {args.crop} px crops, "
             f"density {args.density})", "",
             "Mean PSNR (dB) over the images; gain = EED minus homogeneous diffusion, each from the mask named.", "",
             "| contrast | sigma | eed_own | hd_own | gain own masks | eed_hd | gain HD mask | eed_random | "
             "hd_random | gain random | mean outer (own) | mean inner (own) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    best = None
    for c in args.contrast:
        for s in args.sigma:
            sel = [r for r in rows if r["contrast"] == c and r["sigma"] == s]
            mean = {k: sum(r[k] for r in sel) / len(sel) for k in sel[0] if isinstance(sel[0][k], (int, float))}
            lines.append(f"| {c:g} | {s:g} | {mean['eed_own']:.2f} | {mean['hd_own']:.2f} | "
                         f"{mean['eed_own'] - mean['hd_own']:+.2f} | {mean['eed_hd']:.2f} | "
                         f"{mean['eed_hd'] - mean['hd_own']:+.2f} | {mean['eed_random']:.2f} | "
                         f"{mean['hd_random']:.2f} | {mean['eed_random'] - mean['hd_random']:+.2f} | "
                         f"{mean['eed_own_outer']:.1f} | {mean['eed_own_inner']:.1f} |")
            if best is None or mean["eed_own"] > best[0]:
                best = (mean["eed_own"], c, s)
    lines += ["", f"Best mean eed_own: contrast {best[1]:g}, sigma {best[2]:g} ({best[0]:.2f} dB).", "",
              "Images: " + ", ".join(images)]
    write_text(out / "select.md", "\n".join(lines) + "\n")
    write_text(out / "select.json", json.dumps({"args": {k: v for k, v in vars(args).items()
                                                         if not k.startswith("_") and k != "out"},
                                                "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
