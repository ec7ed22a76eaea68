"""Analytic and learned masks against random masks and PS, on two held-out photo sets, side by side.

Sets (64x64 grey crops, crop ``i`` from photo ``i mod n``, as ``pdeflow evaluate inpainting``):

* ``test``: the evaluation's crops (:func:`pdeflow.inpaint.evaluate.test_images`, the built-in TEST
  split, seed 0; its first 8 crops are the evaluation's 8);
* ``mate``: the 12 nature photos of Debian's mate-backgrounds (``make photos``), never used in
  training or checkpoint selection, downscaled 4x by area averaging (they are 1280-2560 pixels
  wide; 64x64 crops of the originals are nearly flat).

Methods: ``random`` (uniform, exactly k points), ``flat`` (blue-noise dithering of a constant
density), ``analytic`` (Belhachmi et al.'s ``|laplacian(G_sigma f)|`` dithered), ``analytic-snap``
(+ 3x3 snap to extrema), ``learned`` (a mask network per density, ``--models``), ``ps``
(probabilistic sparsification, MAE, p = q = 0.02; slow). Every mask is inpainted by homogeneous
diffusion (float64, tol 1e-6); MAE on 0-255, SSIM (scikit-image's); mask time per image, one image
at a time, one thread. Writes results.json and report.md to ``--out`` (default a fresh folder under
runs/benchmarks/). Example::

    OMP_NUM_THREADS=1 python benchmarks/inpaint_learned_masks.py --sets test mate --n-images 32 \\
        --models 0.05=/work/runs/inpaint/masknet-05 --ps --out benchmarks/results/inpaint/learned_masks

Historical. The comparison behind shipping the mask networks; it evaluates on two photo sets for minutes. Its
results are kept for the record; it is not expected to run against today's API. It still imported and parsed
its options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _results import add_output_args, open_out, write_file  # benchmarks/_results.py
from pdeflow import datasets
from pdeflow.inpaint import diffuse, probabilistic_sparsification, random_mask
from pdeflow.inpaint.evaluation import test_images
from pdeflow.inpaint.learned.masknet import learned_mask, load_masknet
from pdeflow.inpaint.masks.analytic import analytic_mask
from pdeflow.inpaint.masks.dither import dither
from pdeflow.io import image_files, read_image
from pdeflow.metrics import ssim

ROOT = Path(__file__).resolve().parents[1]
MATE = ROOT / ".data" / "photos" / "mate-nature"
METHODS = ("random", "flat", "analytic", "analytic-snap", "learned", "ps")


def mate_crops(n: int, size: int, seed: int = 0, folder: Path = MATE, factor: int = 4):
    files = image_files(folder, "mate photos (make photos)")
    images = [F.avg_pool2d(read_image(p, grey=True)[None], factor)[0] for p in files]
    g = torch.Generator().manual_seed(seed)
    crops = [datasets.random_crops([images[i % len(images)]], 1, size, generator=g) for i in range(n)]
    return torch.cat(crops), [files[i % len(files)].name for i in range(n)]


def sigma_for(d: float) -> float:
    """The analytic density's smoothing used by the mask networks: ~0.45 x the point spacing."""
    return round(0.45 / math.sqrt(d), 2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="+", default=["test", "mate"], choices=("test", "mate"))
    p.add_argument("--n-images", type=int, default=32)
    p.add_argument("--densities", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    p.add_argument("--models", nargs="*", default=[], help="DENSITY=PATH of trained mask networks")
    p.add_argument("--ps", action="store_true", help="also PS (about 30 s per crop for all densities)")
    p.add_argument("--ps-cache", type=Path, default=None,
                   help="folder keeping the PS masks and times per set (computed once, reused by later runs)")
    p.add_argument("--only-ps", action="store_true", help="compute (and cache) the PS masks, nothing else")
    add_output_args(p, "inpaint_learned_masks", what="results.json, report.md")
    args = p.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    models = {}
    for spec in args.models:
        d, path = spec.split("=", 1)
        models[float(d)] = load_masknet(path, density=float(d), channels=1)
    results = {"command": "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in sys.argv),
               "models": {str(d): {"path": str(spec), "provenance": {k: m.meta["provenance"].get(k) for k in
                                   ("steps", "cpu_time_s", "wall_time_s", "command", "val")}}
                          for (d, m), spec in zip(models.items(), args.models)},
               "sets": {}}
    for set_name in args.sets:
        f, names = test_images(args.n_images, 64, seed=0) if set_name == "test" else mate_crops(args.n_images, 64)
        f = f.double()
        rows: dict = {}
        ps_masks = [None] * len(f)
        if args.ps:
            ds = sorted(args.densities, reverse=True)
            cache = None
            if args.ps_cache is not None:
                args.ps_cache.mkdir(parents=True, exist_ok=True)
                cache = args.ps_cache / f"ps_{set_name}_{len(f)}_{'-'.join(f'{d:g}' for d in ds)}.pt"
            done = torch.load(cache) if cache is not None and cache.is_file() else {}
            for i in range(len(f)):
                if i not in done:
                    t0 = time.perf_counter()
                    ms = probabilistic_sparsification(f[i:i + 1], ds, p=0.02, q=0.02, metric="mae", generator=i,
                                                      progress=False)
                    done[i] = ({d: m for d, m in zip(ds, ms)}, time.perf_counter() - t0)
                    if cache is not None:
                        torch.save(done, cache)
                    print(f"{set_name} PS crop {i}: {done[i][1]:.1f} s", flush=True)
                ps_masks[i] = done[i]
        if args.only_ps:
            continue
        for d in args.densities:
            methods = {
                "random": lambda x, i: random_mask((1, 1, 64, 64), d, generator=i, dtype=x.dtype),
                "flat": lambda x, i: dither(torch.ones_like(x[:, :1]), d),
                "analytic": lambda x, i: analytic_mask(x, d, sigma=sigma_for(d), snap=False),
                "analytic-snap": lambda x, i: analytic_mask(x, d, sigma=sigma_for(d), snap=True),
            }
            if d in models:
                methods["learned"] = lambda x, i: learned_mask(x.float(), d, model=models[d]).double()
            if args.ps:
                methods["ps"] = lambda x, i: ps_masks[i][0][d]
            for name, fn in methods.items():
                fn(f[:1], 0)                                          # warm-up (tile, first call)
                maes, ssims, times = [], [], []
                for i in range(len(f)):
                    x = f[i:i + 1]
                    t0 = time.perf_counter()
                    m = fn(x, i)
                    times.append(time.perf_counter() - t0 if name != "ps" else ps_masks[i][1])
                    assert int(m.sum()) == round(d * 4096), (name, d, int(m.sum()))
                    u = diffuse(x, m, tol=1e-6).clamp(0, 1)
                    maes.append(255 * float((u - x).abs().mean()))
                    ssims.append(float(ssim(u, x).mean()))
                rows.setdefault(str(d), {})[name] = {
                    "mae255": float(np.mean(maes)), "ssim": float(np.mean(ssims)),
                    "mae255_se": float(np.std(maes) / math.sqrt(len(maes))),
                    "ssim_se": float(np.std(ssims) / math.sqrt(len(ssims))),
                    "mask_s": float(np.median(times)),
                    "per_image": {"mae255": maes, "ssim": ssims}}
                print(f"{set_name} {d:g} {name:14s} MAE {np.mean(maes):6.2f}  SSIM {np.mean(ssims):.4f}  "
                      f"mask {np.median(times) * 1e3:8.1f} ms", flush=True)
        results["sets"][set_name] = {"n_images": len(f), "images": names, "densities": rows}
    write_file(out / "results.json", json.dumps(results, indent=1))
    lines = [f"Command: `{results['command']}`", ""]
    for set_name, s in results["sets"].items():
        lines += [f"### {set_name} ({s['n_images']} crops, 64x64): MAE (0-255) / SSIM / mask time", "",
                  "| density | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
        for d, r in s["densities"].items():
            cells = [f"{r[m]['mae255']:.2f} / {r[m]['ssim']:.3f} / {r[m]['mask_s'] * 1e3:.0f} ms" if m in r
                     else "" for m in METHODS]
            lines.append(f"| {float(d):g} | " + " | ".join(cells) + " |")
        lines.append("")
    write_file(out / "report.md", "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
