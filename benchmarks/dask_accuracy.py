"""The accuracy table of pdeflow.dask: operator x chunk size x overlap -> largest difference to the single-array
answer (in units of the image's range), sweeps, time; and the peak memory of the worker processes.

A photograph (scikit-image's camera, resampled to ``--size``) goes through ``pdeflow.dask.rof`` (noise 0.1,
lam 0.1), diffusion, biharmonic, TV and Shepard inpainting from 5 % random pixels, and EED hole filling (scratches), on a
local Dask cluster of ``--workers`` worker processes (one thread each), and through the single-array functions
(pdeflow.tv.rof at tol 1e-9, the operators at their tightest tolerance) in this process. CPU time: this
process's for the single array; the workers' (summed, from their resource usage) for the decomposed solve.
Peak memory per worker: the largest resident set of a worker process over the whole run (ru_maxrss), printed with
the size of one chunk of float64 and the resident set of a worker once it has imported what a task needs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_accuracy.py --size 512 --chunks 128 256 --overlaps 8 16
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_accuracy.py --smoke     # 32 px, the synchronous scheduler

Maintained. It measures today's ``pdeflow.dask``; the test suite runs it with ``--smoke``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch

from _results import add_output_args, open_out, write_text

OPS = ("rof", "diffusion", "biharmonic", "eed", "tv", "shepard")


def _photo(size: int) -> np.ndarray:
    import skimage.data
    import skimage.transform
    return skimage.transform.resize(skimage.data.camera() / 255.0, (size, size), order=3, anti_aliasing=True)


def _problem(op: str, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    f = _photo(size)
    if op == "rof":
        return f + 0.1 * rng.standard_normal(f.shape), None
    if op == "eed":
        m = np.ones_like(f)
        for k in range(6):   # scratches: rows and columns 3 px wide
            c = int(rng.integers(4, size - 8))
            if k % 2:
                m[:, c:c + 3] = 0
            else:
                m[c:c + 3, :] = 0
        return f, m
    return f, (rng.random(f.shape) < 0.05).astype(np.float64)


def _single(op: str, f, m):
    from pdeflow.inpaint import OPERATORS
    from pdeflow.tv import rof
    t = time.process_time()
    if op == "rof":
        u = rof(torch.from_numpy(f), 0.1, tol=1e-9, max_iter=200000)
    elif op == "shepard":
        u = OPERATORS[op].function(torch.from_numpy(f), torch.from_numpy(m))
    elif op in ("diffusion", "biharmonic"):
        u = OPERATORS[op].function(torch.from_numpy(f), torch.from_numpy(m), tol=1e-10)
    else:
        u = OPERATORS[op].function(torch.from_numpy(f), torch.from_numpy(m), tol=1e-10, max_iter=5000)
    return u.numpy(), time.process_time() - t


def _worker_usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss * 1024


def _one_thread():
    torch.set_num_threads(1)
    import pdeflow.dask  # noqa: F401  (the imports a task needs: the baseline of the worker's memory)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--chunks", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--overlaps", type=int, nargs="+", default=[8, 16], help="inpainting's overlaps (ROF's "
                    "decompositions are staggered by half a chunk)")
    ap.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="32 px, chunks 16, overlap 6, the synchronous scheduler")
    add_output_args(ap, "dask_accuracy", what="accuracy.md, accuracy.json")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    import dask
    import dask.array as da

    import pdeflow.dask as pdd
    if args.smoke:
        args.size, args.chunks, args.overlaps = 32, [16], [6]
    client = cluster = None
    if not args.smoke:
        import distributed
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=50)
        client = distributed.Client(cluster)
        base = max(client.run(_one_thread).values())
        print(f"worker baseline (torch, distributed, pdeflow.dask imported): {base / 2**20:.0f} MB", flush=True)
    rows = []
    print(f"size {args.size}, workers {args.workers if client else 0}, load {os.getloadavg()[0]:.1f}", flush=True)
    for op in args.ops:
        f, m = _problem(op, args.size)
        ref, t_ref = _single(op, f, m)
        span = float(f.max() - f.min())
        for cs in args.chunks:
            for ov in ([cs // 2] if op == "rof" else args.overlaps):
                x = da.from_array(f, chunks=cs)
                if op == "rof":
                    r = pdd.rof(x, 0.1, tol=1e-6, full_output=True)
                else:
                    r = pdd.inpaint(x, m, op, overlap=ov, tol=1e-9 if op == "diffusion" else 1e-7, full_output=True)
                before = client.run(_worker_usage) if client else {}
                t0, w0 = time.process_time(), time.perf_counter()
                u, sweeps, crit, ok = dask.compute(r.u, r.sweeps, r.criterion, r.converged,
                                                   **({} if client else {"scheduler": "sync"}))
                wall = time.perf_counter() - w0
                after = client.run(_worker_usage) if client else {}
                cpu = (sum(after[w][0] - before[w][0] for w in after) if client else 0.0) + time.process_time() - t0
                peak = max((after[w][1] for w in after), default=_worker_usage()[1])
                row = dict(op=op, size=args.size, chunk=cs, overlap=ov, max_diff=float(np.abs(u - ref).max() / span),
                           sweeps=int(sweeps), criterion=float(crit), converged=bool(ok), cpu_s=cpu, wall_s=wall,
                           single_cpu_s=t_ref, peak_worker_mb=peak / 2**20, chunk_mb=cs * cs * 8 / 2**20)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if client:
        client.close()
        cluster.close()
    lines = ["| operator | size | chunk | overlap | max diff / range | sweeps | criterion | CPU s (dask) | "
             "CPU s (single) | wall s | peak RSS per worker (MB) |", "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['op']} | {r['size']} | {r['chunk']} | {r['overlap']} | {r['max_diff']:.1e} | "
                     f"{r['sweeps']} | {r['criterion']:.1e} | {r['cpu_s']:.1f} | {r['single_cpu_s']:.1f} | "
                     f"{r['wall_s']:.1f} | {r['peak_worker_mb']:.0f} |")
    write_text(out / "accuracy.md", "\n".join(lines) + "\n")
    write_text(out / "accuracy.json", json.dumps(rows, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
