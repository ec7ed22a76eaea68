"""Where a local Dask cluster pays for a batch: its start and stop against the work it parallelises.

Measures, single-threaded (torch on one thread, as each worker process runs):

* the seconds a file of ``pdeflow denoise``'s batch task takes in this process (ROF, ``lam`` 0.1, the library's
  default accuracy), by image size: the first file apart (this process's one-time costs), then the others;
* the start and stop of a local cluster of ``--workers`` processes with each worker ready to run the task
  (torch and pdeflow imported), wall and CPU (this process's and the workers');
* the break-even: the in-process work (seconds) above which the cluster finishes sooner, ``start / (1 - 1/n)``
  with ``n = min(workers, cores)`` and ``start`` :data:`pdeflow.dask.batch.CLUSTER_START_S`
  (:func:`pdeflow.dask.batch.cluster_pays`), and the files of each size it takes (a file's CPU seconds: the wall
  time of a loaded machine would count its load, as the cluster's start would);
* the issue's batch (``--n`` images of ``--check-size``): the cluster started at once against
  ``run_batch(start_cost=CLUSTER_START_S)``, the rule ``pdeflow denoise --workers`` follows.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/batch_break_even.py --n 50 --sizes 64 128 256 --workers 2

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/batch_break_even.py --smoke     # 4 images of 32 px, 1 worker

Wall-clock times on a shared machine move with its load: the load average is printed with them.

Maintained. It times today's ``pdeflow.dask.batch``; the test suite runs it with ``--smoke``.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _results import add_output_args, open_out, write_text
from pdeflow.dask.batch import CLUSTER_START_S, FileTask, batch_files, dask_client, run_batch
from pdeflow.io import write_image
from pdeflow.tv import rof


def _images(folder: Path, n: int, size: int) -> Path:
    rng = np.random.default_rng(size)
    y, x = np.mgrid[0:size, 0:size] / size
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        img = 0.5 + 0.3 * np.sin(2 * np.pi * (1 + k % 3) * x) * np.cos(2 * np.pi * y) + 0.1 * rng.standard_normal(x.shape)
        write_image(folder / f"im{k:04d}.png", torch.from_numpy(np.clip(img, 0, 1))[None].float())
    return folder


def _per_file(task, inputs: Path, out: Path) -> dict:
    """Each file in this process, one after another: wall and CPU seconds of the first and of the others."""
    walls, cpus = [], []
    for source, target in batch_files(inputs, out, suffix=".png"):
        w0, c0 = time.perf_counter(), time.process_time()
        status = task(source, target)[0]
        assert status == "written", status
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"first_wall": walls[0], "first_cpu": cpus[0], "wall": float(np.mean(walls[1:])),
            "cpu": float(np.mean(cpus[1:])), "n": len(walls)}


def _ready():
    import pdeflow.tv  # noqa: F401  (what a task imports first)
    return os.getpid()


def _cluster_start(workers: int) -> dict:
    """Start a local cluster as ``run_batch`` does, import the task's modules on every worker, stop it."""
    own0, kids0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    with dask_client(None, workers) as client:
        up = time.perf_counter() - w0
        client.run(_ready)
        ready = time.perf_counter() - w0
    total = time.perf_counter() - w0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    kids = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    return {"processes_up": up, "ready": ready, "wall": total, "cpu_here": time.process_time() - own0,
            "cpu_workers": kids}


def _batch(task, inputs: Path, out: Path, workers: int, start_cost) -> dict:
    jobs = batch_files(inputs, out, suffix=".png")
    own0, kids0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    res = run_batch(task, jobs, workers=workers, start_cost=start_cost)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert res.ok and len(res.written) == len(jobs), res.summary()
    return {"wall": res.seconds, "cpu": time.process_time() - own0 + (kids1.ru_utime + kids1.ru_stime)
            - (kids0.ru_utime + kids0.ru_stime), "cluster_threads": res.workers, "here": res.here,
            "summary": res.summary()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50, help="images per size (default 50)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="image sides (default 64 128 256)")
    ap.add_argument("--workers", type=int, default=2, help="cluster size (default 2)")
    ap.add_argument("--check-size", type=int, default=128, help="the side of the end-to-end batch (default 128)")
    ap.add_argument("--lam", type=float, default=0.1, help="ROF weight (default 0.1)")
    ap.add_argument("--smoke", action="store_true", help="4 images of 32x32, 1 worker: a check that it runs")
    add_output_args(ap, "batch_break_even", what="results.md, results.json; the images under work/")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    if args.smoke:
        args.n, args.sizes, args.check_size, args.workers = 4, [32], 32, 1
    torch.set_num_threads(1)
    task = FileTask(functools.partial(rof, lam=args.lam))
    cores = len(os.sched_getaffinity(0))
    load0 = os.getloadavg()
    n_eff = min(args.workers, cores)
    rows = {}
    for size in args.sizes:
        folder = _images(out / "work" / f"in{size}", args.n, size)
        rows[size] = _per_file(task, folder, out / "work" / f"loop{size}")
        print(f"{size}: {rows[size]}", flush=True)
    start = _cluster_start(args.workers)
    print(f"cluster: {start}", flush=True)
    # the start on a machine with a core for each worker: this process's CPU, then the workers' side by side
    idle_start = start["cpu_here"] + start["cpu_workers"] / max(args.workers, 1)
    breakeven = CLUSTER_START_S / (1 - 1 / n_eff) if n_eff > 1 else float("inf")
    check_in = out / "work" / f"in{args.check_size}"
    if not check_in.exists():
        _images(check_in, args.n, args.check_size)
    forced = _batch(task, check_in, out / "work" / "forced", args.workers, None)
    ruled = _batch(task, check_in, out / "work" / "ruled", args.workers, CLUSTER_START_S)
    print(f"forced: {forced}\nruled: {ruled}", flush=True)
    load1 = os.getloadavg()

    lines = [f"ROF lam={args.lam} (default accuracy), one thread; {cores} cores; workers {args.workers}; load average "
             f"{load0[0]:.1f} at the start, {load1[0]:.1f} at the end", "",
             "| image | first file wall / CPU s | a file after it, wall / CPU s | files to break even |",
             "|---|---|---|---|"]
    for size, r in rows.items():
        files = breakeven / r["cpu"] if r["cpu"] > 0 else float("inf")
        lines.append(f"| {size}x{size} | {r['first_wall']:.3f} / {r['first_cpu']:.3f} | {r['wall']:.3f} / "
                     f"{r['cpu']:.3f} | {files:.0f} |")
    lines += ["", f"Cluster of {args.workers}: processes up {start['processes_up']:.1f} s, ready (torch and pdeflow "
              f"imported) {start['ready']:.1f} s, with the stop {start['wall']:.1f} s wall; CPU {start['cpu_here']:.1f} "
              f"s here + {start['cpu_workers']:.1f} s in the workers, so {idle_start:.1f} s on a machine with a core "
              f"for each worker (this process's CPU, then the workers' side by side). Break-even at "
              f"CLUSTER_START_S = {CLUSTER_START_S:g} s: {breakeven:.1f} s of in-process work (start / "
              f"(1 - 1/{n_eff})), in files of each size: that over a file's CPU seconds.", "",
              f"{args.n} images of {args.check_size}x{args.check_size}:", "",
              "| run | wall s | CPU s (here + workers) | files in this process | where |", "|---|---|---|---|---|"]
    for name, r in (("cluster started at once", forced), ("start_cost=CLUSTER_START_S (the CLI's rule)", ruled)):
        where = f"{r['cluster_threads']} worker threads" if r["cluster_threads"] else "this process"
        lines.append(f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['here']} | {where} |")
    table = "\n".join(lines)
    print(table)
    write_text(out / "results.md", table + "\n")
    write_text(out / "results.json", json.dumps({"rows": rows, "cluster": start, "breakeven_s": breakeven,
                                                 "idle_start_s": idle_start,
                                                 "forced": forced, "ruled": ruled, "load": [load0, load1],
                                                 "cores": cores}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
