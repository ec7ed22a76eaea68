"""Batch throughput: N images through ``pdeflow denoise``'s batch task (ROF, FGP, tol 1e-4) as the plain
per-file loop in this process and on a local Dask cluster of 1 and 2 worker processes
(:func:`pdeflow.dask.batch.run_batch`), images per second and the ratio to the loop.

Each cluster size runs twice: one file a task (``files_per_task=1``) and the default, guided number of files a
task (:func:`pdeflow.dask.batch.run_batch`). Each configuration writes its own folder of results (all equal to the
loop's, checked). The cluster's
start and stop (worker processes importing torch and pdeflow) is timed apart, by a batch of one image,
and the rate is given with and without it. CPU time: this process's plus the tasks' (summed over the
worker processes). Wall-clock ratios on a shared machine move with its load: the load average is printed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_batch.py --n 100 --size 256
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_batch.py --smoke     # 4 images of 32 px, 1 worker

Maintained. It times today's ``pdeflow.dask.batch``; the test suite runs it with ``--smoke``.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _results import add_output_args, open_out, write_text
from pdeflow.dask.batch import FileTask, batch_files, run_batch
from pdeflow.io import read_image, write_image
from pdeflow.tv import rof


def _make_images(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """``n`` noisy smooth grey scenes of ``size`` x ``size`` (sinusoids of different frequencies plus noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        fx, fy = rng.uniform(1, 4, size=2)
        img = 0.5 + 0.3 * np.sin(2 * np.pi * fx * x) * np.cos(2 * np.pi * fy * y) + 0.1 * rng.standard_normal(x.shape)
        write_image(folder / f"img{k:05d}.png", torch.from_numpy(np.clip(img, 0, 1))[None].float())


def _run(task, inputs: Path, out: Path, workers: int | None, files_per_task: int | None = None) -> dict:
    jobs = batch_files(inputs, out, suffix=".png")
    cpu0 = time.process_time()
    res = run_batch(task, jobs, workers=workers, files_per_task=files_per_task)
    cpu = time.process_time() - cpu0 - (res.cpu_seconds if workers is None else 0.0)   # here: besides the tasks
    assert res.ok and len(res.written) == len(jobs), res.summary()
    return {"seconds": res.seconds, "cpu_here": cpu, "cpu_tasks": res.cpu_seconds, "n": len(jobs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="images in the batch (default 1000)")
    ap.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    ap.add_argument("--lam", type=float, default=0.1, help="ROF weight (default 0.1)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes (default 1 2)")
    ap.add_argument("--smoke", action="store_true", help="4 images of 32x32, 1 worker: a check that it runs")
    add_output_args(ap, "dask_batch", what="results.md, results.json; the images and results under work/")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    if args.smoke:
        args.n, args.size, args.workers = 4, 32, [1]
    torch.set_num_threads(1)        # the loop on one thread, as each worker process runs
    work = out / "work"
    _make_images(work / "in", args.n, args.size)
    _make_images(work / "one", 1, args.size, seed=1)
    task = FileTask(functools.partial(rof, lam=args.lam, method="fgp", tol=1e-4, max_iter=20000))
    load0 = os.getloadavg()
    print(f"{args.n} images of {args.size}x{args.size}, ROF lam={args.lam}; load average "
          f"{' '.join(f'{v:.2f}' for v in load0)}; {os.cpu_count()} CPUs", flush=True)

    rows = {"loop": _run(task, work / "in", work / "loop", None)}
    rows["loop"]["start"] = 0.0
    folders = {}
    for w in args.workers:
        start = _run(task, work / "one", work / f"one-w{w}", w)["seconds"]
        for per, label in ((1, "one file a task"), (None, "files per task guided")):
            name = f"workers={w}, {label}"
            folders[name] = work / f"w{w}-{per or 'guided'}"
            rows[name] = {**_run(task, work / "in", folders[name], w, per), "start": start}
    # every configuration's results are the loop's
    ref = sorted((work / "loop").glob("*.png"))
    for name, folder in folders.items():
        for r in ref:
            np.testing.assert_array_equal(read_image(folder / r.name).numpy(), read_image(r).numpy())
    base = rows["loop"]["n"] / rows["loop"]["seconds"]
    lines = ["| run | wall s | images/s | ratio to loop | start+stop s | images/s without it | ratio | "
             "CPU s (tasks + the submitting process besides them) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        rate = r["n"] / r["seconds"]
        rest = r["seconds"] - r["start"]
        rate2 = r["n"] / rest if rest > 0 else float("nan")
        r.update(rate=rate, rate_without_start=rate2, ratio=rate / base, ratio_without_start=rate2 / base)
        lines.append(f"| {name} | {r['seconds']:.1f} | {rate:.2f} | {rate / base:.2f} | {r['start']:.1f} | "
                     f"{rate2:.2f} | {rate2 / base:.2f} | {r['cpu_tasks']:.1f} + {r['cpu_here']:.1f} |")
    table = "\n".join(lines)
    load = f"load average at the start {load0[0]:.2f}, at the end {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs"
    print(table)
    print(load)
    print("outputs identical to the loop's: yes")
    write_text(out / "results.md", f"{args.n} images of {args.size}x{args.size}, ROF lam={args.lam}; {load}\n\n"
                                   f"{table}\n")
    write_text(out / "results.json", json.dumps({"n": args.n, "size": args.size, "lam": args.lam,
                                                 "load_start": load0, "load_end": os.getloadavg(), "rows": rows},
                                                indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
