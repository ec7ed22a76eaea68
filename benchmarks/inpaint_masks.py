"""Masks for diffusion inpainting: random vs probabilistic sparsification (PS) vs PS + non-local
pixel exchange (NLPE), at several densities, on held-out built-in photos (Peter, 2022, Tables 3-4).

Images: test-split photos of ``pdeflow.datasets.builtin_pool('test', kind='photo')``, grey, the
centre square of each downscaled (area average) to ``--size`` x ``--size``, intensities in
[0, 1]. Inpainting: homogeneous diffusion (``pdeflow.inpaint.diffuse``, relative residual 1e-6).

* random: ``--random-masks`` uniformly random masks per image and density (mean of their errors);
* PS: ``probabilistic_sparsification`` with p = q = 0.02 (docs/REFERENCES.md), one run per batch of
  images through all densities (the time for a density is the time until it was reached);
* PS+NLPE: ``nonlocal_pixel_exchange`` from the PS mask, 30 candidates, 1 exchange, ``--cycles``
  cycles of |mask| exchanges; its time includes PS.

Errors against the original: MSE, PSNR, MAE (x255 too, as in the paper) and SSIM, mean over
images. Times are wall-clock for the batch of images divided by their number (all images are
optimised together, batched).

    OMP_NUM_THREADS=1 python benchmarks/inpaint_masks.py                      # 64x64, 3 photos, a few minutes
    python benchmarks/inpaint_masks.py --size 128 --images skimage/camera     # closer to the paper's 128x128

Writes masks_<size>.json, .md and .png to ``--out`` (default a fresh folder under runs/benchmarks/; the
committed ones: ``--out benchmarks/results/inpaint --overwrite``).

Historical. The first reproduction of Peter (2022)'s mask tables; the results page "Sparse inpainting" holds
today's. Its results are kept for the record; it is not expected to run against today's API. It still imported
and parsed its options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from _results import add_output_args, open_out, save_figure, write_file  # benchmarks/_results.py
from pdeflow import datasets, metrics
from pdeflow.inpaint import diffuse, nonlocal_pixel_exchange, probabilistic_sparsification, random_mask

DEFAULT_IMAGES = ["skimage/camera", "skimage/coffee", "pywt/aero"]


def load(names, size: int) -> torch.Tensor:
    pool = datasets.builtin_pool("test", kind="photo")
    missing = [n for n in names if n not in pool]
    if missing:
        raise SystemExit(f"--images: {missing} are not test-split photos here; available: {sorted(pool)}")
    out = []
    for n in names:
        img = pool[n]
        H, W = img.shape[-2:]
        s = min(H, W)
        sq = img[:, (H - s) // 2:(H - s) // 2 + s, (W - s) // 2:(W - s) // 2 + s]
        out.append(F.interpolate(sq[None].double(), size=(size, size), mode="area")[0])
    return torch.stack(out)  # (B, 1, size, size) float64


def scores(f: torch.Tensor, u: torch.Tensor) -> dict:
    u = u.clamp(0, 1)
    return {"mse": metrics.mse(f, u).tolist(), "psnr": metrics.psnr(f, u, data_range=1.0).tolist(),
            "mae": metrics.mae(f, u).tolist(), "ssim": metrics.ssim(f, u, data_range=1.0).tolist()}


def mean(v) -> float:
    return float(sum(v) / len(v))


def figure(f0: torch.Tensor, shown: dict, results: dict, args):
    """Masks (known pixels white) and inpaintings of the first image, one row per density."""
    from pdeflow.viz import figure as _figure
    from pdeflow.viz import image_grid as _image_row

    panels = []
    for d, by in shown.items():
        panels.append((f0, f"original ({args.images[0]})"))
        for meth in ("random", "ps", "ps+nlpe"):
            m, u = by[meth]
            psnr = results[d][meth]["per_image"]["psnr"][0]
            panels += [(m.float(), f"{meth} mask, {d:g}"), (u.clamp(0, 1), f"{meth}: {psnr:.2f} dB")]
    fig = _figure(2.2 * 7, 2.4 * len(shown) + 0.4)
    _image_row(fig, panels, 7)
    for ax in fig.axes:
        ax.title.set_fontsize(7)
    fig.suptitle(f"Diffusion inpainting from random, PS and PS+NLPE masks ({args.size}x{args.size}); "
                 "PSNR of this image", fontsize=9)
    return fig


def parallel_study(f: torch.Tensor, args) -> int:
    """NLPE with several exchanges per batched solve: error reached against run time."""
    d = args.densities[0]
    m0 = random_mask(f.shape[:1] + (1,) + f.shape[-2:], d, generator=args.seed, dtype=f.dtype)
    e0 = float(metrics.mse(f, diffuse(f, m0))[0])
    runs = [(1, 1), (1, 2), (4, 2), (4, 4), (8, 4), (8, 8)]
    lines = [f"# NLPE: exchanges tried per batched solve ({args.size}x{args.size}, {args.images[0]}, "
             f"random {d:g} mask, MSE {e0:.3e})", "",
             f"`python benchmarks/inpaint_masks.py {' '.join(sys.argv[1:])}`", "",
             "Same candidates (30) and exchanges (1); `parallel` S tries S exchanges per solve and keeps the "
             "best if it lowers the error; cycles count attempts (|mask| per cycle). 1 thread.", "",
             "| parallel | cycles | seconds | MSE | exchanges kept |", "|---|---|---|---|---|"]
    print(f"start: random mask, density {d:g}, MSE {e0:.3e}")
    for par, cyc in runs:
        t0 = time.perf_counter()
        r = nonlocal_pixel_exchange(f, m0, cycles=cyc, parallel=par, metric=args.metric, generator=args.seed + 1,
                                    progress=sys.stderr.isatty(), full_output=True)
        secs = time.perf_counter() - t0
        print(f"parallel {par} cycles {cyc}: {secs:.1f} s, MSE {float(r.error[0]):.3e}, kept {int(r.accepted[0])}",
              flush=True)
        lines.append(f"| {par} | {cyc} | {secs:.1f} | {float(r.error[0]):.3e} | {int(r.accepted[0])} |")
    out = Path(args.out)
    write_file(out / f"nlpe_parallel_{args.size}.md", "\n".join(lines) + "\n")
    print(f"wrote {out / f'nlpe_parallel_{args.size}.md'}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--images", nargs="+", default=DEFAULT_IMAGES)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--random-masks", type=int, default=5)
    ap.add_argument("--metric", choices=("mse", "mae"), default="mse")
    ap.add_argument("--parallel", type=int, default=1, help="NLPE exchanges tried per batched solve (default 1)")
    ap.add_argument("--parallel-study", action="store_true",
                    help="instead: NLPE from a random mask (first image, density --densities[0]) with "
                         "parallel 1, 4, 8 and several cycle counts, error against run time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    add_output_args(ap, "inpaint_masks", what="masks_SIZE.json, .md, .png")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(args.threads)
    f = load(args.images, args.size)
    if args.parallel_study:
        return parallel_study(f[:1], args)
    B = f.shape[0]
    densities = sorted(args.densities, reverse=True)
    print(f"{B} test photos {args.images}, {args.size}x{args.size} grey, densities {densities}, "
          f"metric {args.metric}, {torch.get_num_threads()} torch thread(s)", flush=True)
    results = {d: {} for d in densities}
    shown = {d: {} for d in densities}  # image 0: (mask, inpainting) per method, for the figure

    # random masks
    for d in densities:
        errs, secs = [], 0.0
        for r in range(args.random_masks):
            t0 = time.perf_counter()
            m = random_mask((B, 1, args.size, args.size), d, generator=args.seed + 1000 * r + int(1e4 * d),
                            dtype=f.dtype)
            u = diffuse(f, m)
            secs += time.perf_counter() - t0
            errs.append(scores(f, u))
            if r == 0:
                shown[d]["random"] = (m[0], u[0])
        per_image = {k: [mean([e[k][b] for e in errs]) for b in range(B)] for k in errs[0]}
        results[d]["random"] = dict(per_image=per_image, seconds_per_image=secs / args.random_masks / B)

    # PS, one run through all densities
    t0 = time.perf_counter()
    ps = probabilistic_sparsification(f, densities, metric=args.metric, generator=args.seed,
                                      progress=sys.stderr.isatty(), full_output=True)
    print(f"PS: {time.perf_counter() - t0:.1f} s for {B} images", flush=True)
    for d, r in zip(densities, ps):
        shown[d]["ps"] = (r.mask[0], r.u[0])
        results[d]["ps"] = dict(per_image=scores(f, r.u), seconds_per_image=r.seconds / B,
                                density=r.mask.flatten(1).mean(1).tolist(), steps=int(r.accepted[0]))
        t1 = time.perf_counter()
        nl = nonlocal_pixel_exchange(f, r.mask, cycles=args.cycles, parallel=args.parallel, metric=args.metric,
                                     generator=args.seed + 1,
                                     progress=sys.stderr.isatty(), full_output=True)
        t_nl = time.perf_counter() - t1
        assert bool((nl.trace[:, 1:] <= nl.trace[:, :-1]).all()), "NLPE increased the error"
        shown[d]["ps+nlpe"] = (nl.mask[0], nl.u[0])
        results[d]["ps+nlpe"] = dict(per_image=scores(f, nl.u), seconds_per_image=(r.seconds + t_nl) / B,
                                     nlpe_seconds_per_image=t_nl / B, accepted=nl.accepted.tolist(),
                                     attempts=args.cycles * int(r.mask[0].sum()))
        print(f"NLPE at {d:g}: {t_nl:.1f} s for {B} images, accepted {nl.accepted.tolist()}", flush=True)

    lines = [f"# Masks for diffusion inpainting: random vs PS vs PS+NLPE ({args.size}x{args.size})", "",
             f"`python benchmarks/inpaint_masks.py {' '.join(sys.argv[1:] if argv is None else argv)}`".replace(
                 " `", "`"), "",
             f"Images (test split, grey, centre square downscaled to {args.size}x{args.size}): "
             f"{', '.join(args.images)}. Metric optimised: {args.metric}. PS p = q = 0.02; NLPE 30 candidates, "
             f"1 exchange, {args.cycles} cycles; random: mean of {args.random_masks} masks. Means over images; "
             "MAE also x255 (the paper's scale). Seconds per image (batched over the images, 1 thread).", "",
             "| density | method | MSE | PSNR dB | MAE | MAE x255 | SSIM | s / image |", "|" + "---|" * 8]
    print()
    print(f"{'density':>7} {'method':>8} {'MSE':>9} {'PSNR':>6} {'MAE':>7} {'MAEx255':>7} {'SSIM':>6} {'s/img':>8}")
    for d in densities:
        for meth in ("random", "ps", "ps+nlpe"):
            r = results[d][meth]
            p = r["per_image"]
            r["mean"] = {k: mean(v) for k, v in p.items()}
            mm = r["mean"]
            print(f"{d:>7.2f} {meth:>8} {mm['mse']:>9.3g} {mm['psnr']:>6.2f} {mm['mae']:>7.4f} "
                  f"{255 * mm['mae']:>7.2f} {mm['ssim']:>6.4f} {r['seconds_per_image']:>8.2f}")
            lines.append(f"| {d:g} | {meth} | {mm['mse']:.3g} | {mm['psnr']:.2f} | {mm['mae']:.4f} | "
                         f"{255 * mm['mae']:.2f} | {mm['ssim']:.4f} | {r['seconds_per_image']:.2f} |")
    wins = all(results[d]["ps+nlpe"]["mean"]["mse"] < results[d]["random"]["mean"]["mse"] for d in densities)
    lines += ["", f"PS+NLPE has a lower mean MSE than random masks at every density: {wins}."]
    meta = dict(size=args.size, images=args.images, metric=args.metric, cycles=args.cycles, parallel=args.parallel,
                random_masks=args.random_masks, seed=args.seed, threads=torch.get_num_threads(),
                torch=torch.__version__, machine=platform.machine(),
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    out = Path(args.out)
    tag = f"masks_{args.size}" + ("" if args.metric == "mse" else f"_{args.metric}")
    write_file(out / f"{tag}.json", json.dumps(dict(meta=meta, results={str(k): v for k, v in results.items()}),
                                               indent=1))
    write_file(out / f"{tag}.md", "\n".join(lines) + "\n")
    save_figure(figure(f[0], shown, results, args), out / f"{tag}.png")
    print(f"\nwrote {out / (tag + '.json')}, {tag}.md and {tag}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
