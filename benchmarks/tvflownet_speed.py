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

Historical. It timed TVflowNET against the reference solver for the paper's speed claim; minutes. Its results
are kept for the record; it is not expected to run against today's API. It still imported and parsed its
options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

from _results import add_output_args, open_out, write_block, write_file  # benchmarks/_results.py
from pdeflow import datasets, tvflownet
from pdeflow.metrics import psnr
from pdeflow.tv import tv_flow

DTS = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
TOLS = (3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)


def mean_psnr(u: torch.Tensor, ref: torch.Tensor, scale: float) -> float:
    """Mean PSNR (dB, data range 1 on the [0, 1] scale) of ``u`` against ``ref``, both on the x``scale``
    scale, over all images; leading dimensions (times, images) are flattened."""
    u, ref = (v.double().reshape(-1, *v.shape[-3:]) for v in (u, ref))
    return float(psnr(u / scale, ref / scale, data_range=1.0).mean())


def timed(fn, repeats: int, sync=None) -> tuple[float, float, torch.Tensor]:
    """Median wall seconds and median CPU seconds (this process, ``time.process_time``) of ``fn()``
    over ``repeats`` calls, and its last result; ``sync()`` (e.g. ``torch.cuda.synchronize``) is
    called before each clock is read."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        if sync:
            sync()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if sync:
            sync()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


class Setting(NamedTuple):
    """One reference setting, run once on all images (and times) together: seconds per image (wall,
    then CPU), its dt and tol, and its mean PSNR against the ground truth."""
    sec: float
    dt: float
    tol: float
    psnr: float
    cpu: float


class ReferenceGrid:
    """The reference solver at matched accuracy: ``tv_flow`` in float32 on a grid of ``dt`` x ``tol``.

    Coarse implicit steps are the solver's own way to trade accuracy for time (one step of size
    ``t`` is a single ROF problem with ``lam = t``), loose inner tolerances the other. Settings are
    run lazily, all images and all ``times`` in one call (the reference gets every time of an image
    from one trajectory and batches the images), and kept.

    Parameters
    ----------
    x : Tensor (N, 1, H, W)
        The images, on the x``scale`` scale (any dtype; the reference runs in float32).
    times : list of float
        The PDE times wanted.
    truth : Tensor (len(times), N, 1, H, W)
        The converged flow at ``times``.
    max_psnr : float
        Stop tightening ``tol`` at a ``dt`` once the reference reaches this PSNR.
    log : callable or None
        Called with one line per setting run.
    sync : callable or None
        Called before each clock read (``torch.cuda.synchronize`` on a GPU).
    flow : callable or None
        ``flow(x, times, dt, tol) -> u`` of shape (len(times), *x.shape); default ``tv_flow`` with
        that ``dt`` and ``tol``. Another solver with two knobs (the second ordered from cheap to
        accurate along ``tols``) can be searched the same way; ``names`` labels the knobs.
    """

    def __init__(self, x, times, truth, scale, *, dts=DTS, tols=TOLS, max_psnr=60.0, log=print, sync=None,
                 flow=None, names=("dt", "tol")):
        self.x, self.times, self.truth, self.scale = x.float(), list(times), truth, scale
        self.dts, self.tols, self.max_psnr, self.log, self.sync = dts, tols, max_psnr, log, sync
        self._flow, self.names = flow, names
        self.rows: dict[tuple[float, float], Setting] = {}

    def run(self, dt: float, tol: float) -> Setting:
        """The setting ``(dt, tol)``, run once (then cached)."""
        if (dt, tol) not in self.rows:
            wall, cpu, u = timed(lambda: self.flow(self.x, dt, tol), 1, self.sync)
            n = self.x.shape[0]
            row = Setting(wall / n, dt, tol, mean_psnr(u, self.truth, self.scale), cpu / n)
            self.rows[(dt, tol)] = row
            if self.log:
                a, b = self.names
                self.log(f"  reference {a} {dt:<5g} {b} {tol:<6g}: {row.psnr:6.2f} dB, {row.sec:7.3f} s/image "
                         f"({row.cpu:.3f} s CPU)")
        return self.rows[(dt, tol)]

    def flow(self, x, dt: float, tol: float) -> torch.Tensor:
        """``u`` at all times for the images ``x``, shape (len(times), *x.shape)."""
        if self._flow is not None:
            return self._flow(x, self.times, dt, tol)
        return tv_flow(x, self.times, dt=dt, tol=tol)

    def scan(self, target: float | None = None) -> None:
        """Run the grid: for each ``dt`` (coarse first) the tols from loose to tight, until the PSNR
        reaches ``target`` (then the loosest tol reaching it is known) or ``max_psnr``. With a
        target, a ``dt`` is also left once a setting costs more than the cheapest one already
        found to reach it (tighter tols only cost more)."""
        best = math.inf
        for dt in self.dts:
            for tol in self.tols:
                row = self.run(dt, tol)
                if target is not None and row.psnr >= target:
                    best = min(best, row.sec)
                    break
                if row.psnr >= self.max_psnr or (target is not None and row.sec > best):
                    break

    def cheapest(self, target: float) -> Setting | None:
        """The cheapest setting whose mean PSNR reaches ``target``: for each ``dt`` the loosest
        ``tol`` reaching it, then the fastest of those; None if none on the grid does."""
        self.scan(target)
        per_dt: dict[float, Setting] = {}
        for row in self.table:                    # grid order: the loosest tol first within each dt
            if row.psnr >= target and row.dt not in per_dt:
                per_dt[row.dt] = row
        return min(per_dt.values()) if per_dt else None

    @property
    def table(self) -> list[Setting]:
        """The settings run so far, in grid order."""
        order = {(dt, tol): (i, j) for i, dt in enumerate(self.dts) for j, tol in enumerate(self.tols)}
        return sorted(self.rows.values(), key=lambda r: order.get((r.dt, r.tol), (len(order), 0)))


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
    grid = ReferenceGrid(x, [t], truth.unsqueeze(0), args.scale, max_psnr=args.max_psnr,
                         log=lambda line: print(line, flush=True))
    grid.scan()                                   # the whole grid (up to --max-psnr), printed below

    rows = []
    for label, equivariant in (("with the symmetry wrapper", True), ("bare network", False)):
        def net_query(i, equivariant=equivariant):
            return tvflownet.flow(x[i:i + 1].float(), [t], model, scale=1.0, equivariant=equivariant, symmetry=None)[0]

        net_psnr = mean_psnr(torch.cat([net_query(i) for i in range(args.n_images)]), truth, args.scale)
        print(f"network, {label}: mean PSNR {net_psnr:.2f} dB against the ground truth", flush=True)
        best = grid.cheapest(net_psnr)
        if best is None:
            print(f"  no reference setting on the grid reached {net_psnr:.2f} dB")
            continue
        dt, tol, ref_psnr = best.dt, best.tol, best.psnr

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
        md += [f"| {r.dt:g} | {r.tol:g} | {r.psnr:.2f} | {r.sec:.3f} |" for r in grid.table]
        write_file(out / "tvflownet_speed.md", "\n".join(md) + "\n")
        print(f"wrote {out / 'tvflownet_speed.md'}")
        if args.results:
            write_block(Path(args.results), "tvflownet_speed.py", "\n".join(md))
            print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
