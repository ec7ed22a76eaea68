#!/usr/bin/env python
"""A single-time query u(t = 1) of a 256x256 image: TVflowNET against the reference solver,
at matched accuracy, side by side on this machine.

The paper's convention (Grossmann et al., 2022): images in [0, 1] times 5, the TV flow at PDE time t on that
scale, the "model-driven" reference = implicit Euler steps of dt = 0.02 solved to convergence.

1. Ground truth per image: pdeflow ``tv_flow`` in float64, dt = 0.02 (the paper's reference
   grid), relative duality gap ``--ref-tol``.
2. The network's accuracy: PSNR of its ``u(t)`` against the ground truth (data range 1 on the
   [0, 1] scale, i.e. the error divided by 5), averaged over the images.
3. The reference solver at matched accuracy: the cheapest setting on a grid of ``dt`` (coarse
   implicit steps are the solver's own way to trade accuracy for time; one step of size t is a
   single ROF problem) x ``tol`` x float32 whose mean PSNR against the ground truth is at least
   the network's. Grids are scanned from cheap to expensive.
4. Both are then timed side by side, interleaved, ``--repeats`` times (median kept), one image
   per call (a single query), in the same process and thread count; the ratio is printed.

    python benchmarks/tvflownet_speed.py                        # the shipped default model
    python benchmarks/tvflownet_speed.py --model runs/RUN       # a run directory

Results are printed and written to ``--out`` (tvflownet_speed.md; default a fresh folder under
runs/benchmarks/); ``--results benchmarks/RESULTS.md`` also writes them there between markers.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_block, write_file  # benchmarks/_results.py
from pdeflow import datasets, tvflownet
from pdeflow.metrics import psnr
from pdeflow.tv import tv_flow

DTS = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
TOLS = (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def mean_psnr(u: torch.Tensor, ref: torch.Tensor, scale: float) -> float:
    return float(psnr(u.double() / scale, ref / scale, data_range=1.0).mean())


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    """Median seconds of ``fn()`` over ``repeats`` calls, and its last result."""
    secs, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t0)
    return statistics.median(secs), out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--model", default=None, help="shipped name, model path or run directory (default: shipped "
                                                  "default)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n-images", type=int, default=4, help="held-out crops (test split photos)")
    ap.add_argument("--time", type=float, default=1.0, help="PDE time on the x5 scale")
    ap.add_argument("--scale", type=float, default=5.0)
    ap.add_argument("--ref-tol", type=float, default=1e-7)
    ap.add_argument("--ref-dt", type=float, default=0.02)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both sides (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-psnr", type=float, default=60.0,
                    help="stop tightening tol at a dt once the reference reaches this PSNR (dB)")
    add_output_args(ap, "tvflownet_speed", results_block=True, what="tvflownet_speed.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    t = args.time

    model = tvflownet.load(args.model)
    prov = model.meta.get("provenance", {})
    name = args.model or tvflownet.api.DEFAULT_MODEL
    pool = datasets.builtin_pool("test", kind="photo")
    x = datasets.random_crops(pool, args.n_images, args.size, generator=args.seed).double() * args.scale
    print(f"{args.n_images} test-split crops {args.size}x{args.size} x{args.scale:g}, t = {t:g}; "
          f"model {name} ({model.config.get('arch')}); {torch.get_num_threads()} thread(s)", flush=True)

    t0 = time.perf_counter()
    truth = tv_flow(x, [t], dt=args.ref_dt, tol=args.ref_tol)[0]
    print(f"ground truth: float64, dt {args.ref_dt:g}, tol {args.ref_tol:g}: {time.perf_counter() - t0:.1f} s",
          flush=True)

    xf = x.float()
    grid: list[tuple[float, float, float, float]] = []   # (seconds / image, dt, tol, PSNR), filled lazily

    def cheapest_reference(target: float):
        """The cheapest (dt, tol) on the grid whose mean PSNR reaches ``target``: for each dt, from
        coarse to fine, the loosest tol that reaches it; then the fastest of those."""
        if not grid:
            for dt in DTS:
                for tol in TOLS:
                    t0 = time.perf_counter()
                    u = tv_flow(xf, [t], dt=dt, tol=tol)[0]
                    sec = (time.perf_counter() - t0) / args.n_images
                    grid.append((sec, dt, tol, mean_psnr(u, truth, args.scale)))
                    print(f"  reference dt {dt:<5g} tol {tol:<6g}: {grid[-1][3]:6.2f} dB, {sec:7.3f} s/image",
                          flush=True)
                    if grid[-1][3] >= args.max_psnr:   # tighter tols only cost more
                        break
        per_dt = {}
        for sec, dt, tol, p in grid:              # grid order: tol loosest first within each dt
            if p >= target and dt not in per_dt:
                per_dt[dt] = (sec, dt, tol, p)
        return min(per_dt.values()) if per_dt else None

    rows = []
    for label, equivariant in (("with the symmetry wrapper", True), ("bare network", False)):
        def net_query(i, equivariant=equivariant):
            return tvflownet.flow(x[i:i + 1].float(), [t], model, scale=1.0, equivariant=equivariant)[0]

        net_psnr = mean_psnr(torch.cat([net_query(i) for i in range(args.n_images)]), truth, args.scale)
        print(f"network, {label}: mean PSNR {net_psnr:.2f} dB against the ground truth", flush=True)
        best = cheapest_reference(net_psnr)
        if best is None:
            print(f"  no reference setting on the grid reached {net_psnr:.2f} dB")
            continue
        _, dt, tol, ref_psnr = best

        def ref_query(i, dt=dt, tol=tol):
            return tv_flow(xf[i:i + 1], [t], dt=dt, tol=tol)[0]

        net_secs, ref_secs = [], []
        for i in range(args.n_images):
            net_query(i)  # warm-up
            ref_secs.append(timed(lambda: ref_query(i), args.repeats)[0])
            net_secs.append(timed(lambda: net_query(i), args.repeats)[0])
        net_s, ref_s = statistics.mean(net_secs), statistics.mean(ref_secs)
        rows.append((label, net_psnr, net_s, dt, tol, ref_psnr, ref_s))
        print(f"network ({label}): {net_s * 1e3:.1f} ms/image at {net_psnr:.2f} dB; reference (dt {dt:g}, "
              f"tol {tol:g}, float32): {ref_s * 1e3:.1f} ms/image at {ref_psnr:.2f} dB -> ratio reference / "
              f"network {ref_s / net_s:.2f}", flush=True)

    if rows:
        total = time.perf_counter() - t_all
        md = [
            "## TVflowNET single-time query vs the reference solver (`benchmarks/tvflownet_speed.py`)\n",
            f"Generated {datetime.datetime.now():%Y-%m-%d %H:%M} by `python benchmarks/tvflownet_speed.py "
            f"{' '.join(argv if argv is not None else sys.argv[1:])}` in {total / 60:.1f} minutes; "
            f"{os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}, "
            f"load average at the end {'%.1f %.1f %.1f' % os.getloadavg()}.\n",
            f"- Task: u(t = {t:g}) of {args.n_images} held-out {args.size}x{args.size} crops (test split photos) "
            f"x{args.scale:g}, one image per call.",
            f"- Ground truth: `tv_flow` float64, dt {args.ref_dt:g}, tol {args.ref_tol:g}. PSNR on the [0, 1] "
            "scale (data range 1), mean over the images.",
            f"- Model: `{name}` ({model.config.get('arch')}, "
            f"{sum(p.numel() for p in model.parameters()):,} parameters; trained "
            f"{prov.get('steps', '?')} steps), through `tvflownet.flow`, with and without the symmetry wrapper "
            "(which may compose several network calls to reach t).",
            f"- Reference at matched accuracy: the cheapest of dt in {{{', '.join(map(str, DTS))}}} x tol in "
            f"{{{', '.join(f'{v:g}' for v in TOLS)}}} (float32) reaching the network's PSNR. dt = {t:g} is a "
            "single ROF problem with lam = t.\n",
            "| network | PSNR (dB) | time / image | reference setting | PSNR (dB) | time / image | reference / "
            "network |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, net_psnr, net_s, dt, tol, ref_psnr, ref_s in rows:
            md.append(f"| {name}, {label} | {net_psnr:.2f} | {net_s * 1e3:.1f} ms | dt {dt:g}, tol {tol:g} | "
                      f"{ref_psnr:.2f} | {ref_s * 1e3:.1f} ms | {ref_s / net_s:.2f}x |")
        md += ["", "Reference grid (all images at once, seconds per image):", "",
               "| dt | tol | PSNR (dB) | s / image |", "|---|---|---|---|"]
        md += [f"| {dt:g} | {tol:g} | {p:.2f} | {sec:.3f} |" for sec, dt, tol, p in grid]
        write_file(out / "tvflownet_speed.md", "\n".join(md) + "\n")
        print(f"wrote {out / 'tvflownet_speed.md'}")
        if args.results:
            write_block(Path(args.results), "tvflownet_speed.py", "\n".join(md))
            print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
