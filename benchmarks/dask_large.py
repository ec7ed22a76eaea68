"""Maintained. A large image from a zarr store through pdeflow.dask, store to store: peak memory per worker against
the chunk size, and the difference to the single-array answer where that fits in this process.

A photograph (scikit-image's camera, resampled to ``--size``, cropped to ``--shape``; ``--ndim 3``: a volume of it),
float32, is written to a zarr store and solved by ``--op`` (``rof``: noise 0.1, ``--lam``; ``diffusion`` from 5 %
random pixels; ``eed`` filling scratches 3 px wide) into another store, by :func:`pdeflow.dask.rof_to_zarr` /
``inpaint_to_zarr`` (``--path store``) or the lazy function and :func:`pdeflow.io.write_zarr` (``--path lazy``), on a
fresh local cluster of ``--workers`` single-threaded processes. Printed: sweeps, CPU time (each worker's, and with
this process's, which runs the scheduler), wall time, each worker's peak resident set (``VmHWM``), its baseline
(torch, distributed and pdeflow.dask imported and the same call run once on a 64 px problem: the code and buffers
any first call loads, reported as "first call" in MB), the growth over it in float32 chunks, the largest managed memory of a
worker (sampled every 0.5 s); with ``--check`` the largest difference to the single-array answer (float64) in
units of the image's range.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_large.py --op diffusion --size 8192 --chunks 1024 --check
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_large.py --op rof --ndim 3 --size 128 --chunks 64
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_large.py --smoke      # 64 px, chunks 32, no cluster

The baseline it compares with is the single array (``--check``) and, for memory, a chunk of the image.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _results import add_output_args, open_out, write_text


def _photo(size: int) -> np.ndarray:
    import skimage.data
    import skimage.transform
    return skimage.transform.resize(skimage.data.camera() / 255.0, (size, size), order=3,
                                    anti_aliasing=size < 512).astype(np.float32)


def _problem(op: str, size: int, seed: int = 0, shape=None, ndim: int = 2):
    rng = np.random.default_rng(seed)
    if ndim == 3:       # a volume: the photograph, its contrast varying along the depth
        g = _photo(size)
        z = np.cos(np.linspace(0, np.pi, size, dtype=np.float32))[:, None, None]
        f = (0.5 + 0.5 * z * (g[None] - 0.5)).astype(np.float32)
        return (f + 0.1 * rng.standard_normal(f.shape, dtype=np.float32)).astype(np.float32), None
    f = _photo(size)
    if shape is not None:
        f = f[:shape[0], :shape[1]]
        size = min(shape)
    if op == "rof":
        return (f + 0.1 * rng.standard_normal(f.shape)).astype(np.float32), None
    if op == "eed":
        m = np.ones(f.shape, dtype=bool)
        for k in range(12):
            c = int(rng.integers(4, size - 8))
            if k % 2:
                m[:, c:c + 3] = False
            else:
                m[c:c + 3, :] = False
        return f, m
    return f, rng.random(f.shape) < 0.05


def _status(key: str) -> int:
    """``VmHWM`` (the peak resident set of this address space) or ``VmRSS`` from /proc/self/status, in bytes.
    Not ``ru_maxrss``: a worker process started by fork and exec keeps the peak of the process it was forked
    from in that."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, _status("VmHWM")


def _sample(dask_worker=None):
    """A worker's resident set and the bytes of the results dask holds in its memory (managed memory)."""
    held = 0
    if dask_worker is not None:
        try:
            held = int(sum(dask_worker.data.fast.weights.values()))
        except AttributeError:
            held = 0
    return _status("VmRSS"), held


class _Sampler:
    """Samples every worker's resident set and managed memory every ``every`` seconds, in a thread."""

    def __init__(self, client, every=0.5):
        import threading
        self.client, self.every, self.rss, self.held, self.stop = client, every, {}, {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(self.every):
            try:
                got = self.client.run(_sample)
            except Exception:     # a worker restarting: skip this sample
                continue
            for w, (rss, held) in got.items():
                self.rss[w] = max(self.rss.get(w, 0), rss)
                self.held[w] = max(self.held.get(w, 0), held)

    def close(self):
        self.stop.set()
        self.thread.join()
        return max(self.held.values(), default=0)


def _warm(op=None, ndim=2, overlap=16):
    """A worker's CPU time and resident set once pdeflow.dask is imported (the imported baseline) and, with ``op``,
    after the same store-to-store call on a tiny problem in this process (the warm baseline: the code and the
    buffers a first call touches, whatever the chunk)."""
    torch.set_num_threads(1)
    import pdeflow.dask as pdd
    if op is not None:
        import tempfile

        import dask.array as da
        n = 16 if ndim == 3 else 64
        f, m = _problem(op, n, ndim=ndim)
        with tempfile.TemporaryDirectory() as tmp:
            x = da.from_array(f, chunks=n // 2)
            if op == "rof":
                pdd.rof_to_zarr(x, 0.1, Path(tmp) / "u.zarr", scheduler="sync", **({"ndim": 3} if ndim == 3 else {}))
            else:
                pdd.inpaint_to_zarr(x, da.from_array(m, chunks=n // 2), Path(tmp) / "u.zarr", op,
                                    overlap=min(overlap, n // 4), scheduler="sync")
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, _status("VmRSS")


def _single(op, f, m, args):
    """The single-array answer (float64) and its CPU time; kept in ``--cache`` (the reference of a large ROF takes
    tens of CPU minutes), keyed by the problem, and read from there when present (its CPU time then NaN)."""
    from pdeflow.inpaint import OPERATORS
    from pdeflow.tv import rof
    cached = None
    if args.cache is not None:
        key = f"{op}_{'x'.join(map(str, f.shape))}_{args.size}" + (f"_lam{args.lam:g}" if op == "rof" else "") \
            + ("_default" if args.default_accuracy else "")
        cached = args.cache / f"{key}.npy"
        if cached.exists():
            return np.load(cached), float("nan")
    t = time.process_time()
    x = torch.from_numpy(f.astype(np.float64))
    if op == "rof" and args.default_accuracy:
        u = rof(x, args.lam)
    elif op == "rof":
        u = rof(x, args.lam, tol=1e-9, max_iter=200000)
    elif op == "diffusion":
        u = OPERATORS[op].function(x, torch.from_numpy(m.astype(np.float64)), tol=1e-10)
    else:
        u = OPERATORS[op].function(x, torch.from_numpy(m.astype(np.float64)), tol=1e-10, max_iter=5000)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, u.numpy())
    return u.numpy(), time.process_time() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op", choices=("rof", "diffusion", "eed"), default="diffusion")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--chunks", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--overlap", type=int, default=16, help="inpainting's overlap (default 16)")
    ap.add_argument("--lam", type=float, default=0.1, help="ROF's weight (default 0.1)")
    ap.add_argument("--tol", type=float, default=None,
                    help="the stopping measure (default 1e-6: rof's relative gap, diffusion's relative residual "
                         "in float32, eed's change per sweep)")
    ap.add_argument("--default-accuracy", action="store_true",
                    help="rof at the default accuracy; --check then compares with rof's default")
    ap.add_argument("--local-tol", type=float, default=None,
                    help="the inpainting subdomain solves' tolerance (default: the operator's, pdeflow.dask.inpaint)")
    ap.add_argument("--max-sweeps", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs=2, default=None, metavar=("H", "W"),
                    help="crop the photograph to H x W (weak scaling: the same work per worker)")
    ap.add_argument("--ndim", type=int, choices=(2, 3), default=2, help="3: a --size^3 volume (rof only)")
    ap.add_argument("--path", choices=("store", "lazy"), default="store",
                    help="store: rof_to_zarr / inpaint_to_zarr (the iterate in zarr between sweeps, default); "
                         "lazy: pdeflow.dask.rof / inpaint written by write_zarr (one graph for all sweeps)")
    ap.add_argument("--worker-env", nargs="*", default=[], metavar="KEY=VALUE",
                    help="environment of the worker processes (e.g. MALLOC_MMAP_THRESHOLD_=131072: glibc then maps "
                         "every large array on its own and returns it on release, instead of a heap that fragments)")
    ap.add_argument("--profiler", action="store_true",
                    help="keep dask's statistical profiler in the workers (a cluster's default; pdeflow's own local "
                         "cluster turns it off)")
    ap.add_argument("--check", action="store_true", help="compare with the single-array answer (in this process)")
    ap.add_argument("--cache", type=Path, default=None, metavar="DIR",
                    help="keep the single-array answers of --check in DIR and reuse them")
    ap.add_argument("--smoke", action="store_true", help="64 px, chunks 32, --check, the synchronous scheduler in "
                                                         "this process (no cluster), 4 sweeps at most")
    add_output_args(ap, "dask_large", what="large.md, large.json; the stores under work/")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    if args.smoke:
        args.size, args.chunks, args.check, args.overlap, args.max_sweeps = 64, [32], True, 6, 4
    tol = args.tol if args.tol is not None else 1e-6
    if args.default_accuracy:
        if args.op != "rof" or args.tol is not None:
            ap.error("--default-accuracy is rof's, without --tol")
        tol = None
    torch.set_num_threads(1)
    import dask
    import dask.array as da
    import distributed

    import pdeflow.dask as pdd
    from pdeflow.dask.batch import WORKER_CONFIG
    from pdeflow.io import read_zarr, write_zarr

    f, m = _problem(args.op, args.size, shape=args.shape, ndim=args.ndim)
    span = float(f.max() - f.min())
    ref, t_ref = _single(args.op, f, m, args) if args.check else (None, float("nan"))
    print(f"{args.op} of a {' x '.join(map(str, f.shape))} photograph from zarr, {args.workers} workers; load average "
          f"{os.getloadavg()[0]:.1f}" + (f"; the single array took {t_ref:.1f} CPU s" if args.check else ""),
          flush=True)
    rows = []
    for cs in args.chunks:
        work = out / "work" / f"c{cs}"
        work.mkdir(parents=True)
        src = write_zarr(da.from_array(f, chunks=cs), work / "in.zarr")
        nd = {"ndim": 3} if args.ndim == 3 else {}
        msrc = write_zarr(da.from_array(m, chunks=cs), work / "mask.zarr") if m is not None else None
        # the workers of pdeflow's own local cluster (pdeflow.dask.batch.dask_client, what --workers starts)
        with dask.config.set({**WORKER_CONFIG, "distributed.worker.profile.enabled": args.profiler}):
            cluster = None if args.smoke else distributed.LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.CRITICAL, env=dict(kv.split("=", 1) for kv in args.worker_env))
        client = distributed.Client(cluster) if cluster is not None else None
        imported = client.run(_warm) if client else {"here": _warm()}
        base = (client.run(_warm, args.op, args.ndim, args.overlap) if client
                else {"here": _warm(args.op, args.ndim, args.overlap)})
        x = read_zarr(src)
        sampler = _Sampler(client) if client else None
        w0, c0 = time.perf_counter(), time.process_time()
        with dask.config.set(scheduler=client if client else "sync"):
            if args.path == "store" and args.op == "rof":
                r = pdd.rof_to_zarr(x, args.lam, work / "out.zarr", tol=tol, max_sweeps=args.max_sweeps, **nd)
            elif args.path == "store":
                r = pdd.inpaint_to_zarr(x, read_zarr(msrc), work / "out.zarr", args.op, overlap=args.overlap,
                                        tol=tol, max_sweeps=args.max_sweeps, local_tol=args.local_tol)
            if args.path == "store":
                target, sweeps, crit, ok = r.path, r.sweeps, r.criterion, r.converged
            else:
                if args.op == "rof":
                    r = pdd.rof(x, args.lam, tol=tol, max_sweeps=args.max_sweeps, full_output=True, **nd)
                else:
                    r = pdd.inpaint(x, read_zarr(msrc), args.op, overlap=args.overlap, tol=tol,
                                    max_sweeps=args.max_sweeps, local_tol=args.local_tol, full_output=True)
                target, (sweeps, crit, ok) = write_zarr(r.u, work / "out.zarr", also=[r.sweeps, r.criterion,
                                                                                      r.converged])
        wall, here = time.perf_counter() - w0, time.process_time() - c0
        held = sampler.close() if sampler else 0
        after = client.run(_usage) if client else {"here": _usage()}
        if client:
            client.close()
            cluster.close()
            here_cpu = here
        else:
            here_cpu = 0.0      # this process's time is in ``after``
        cpu = sum(after[w][0] - base[w][0] for w in after) + here_cpu
        peaks = sorted(after[w][1] / 2**20 for w in after)
        baseline = max(base[w][1] for w in base) / 2**20
        fixed = max(base[w][1] - imported[w][1] for w in base) / 2**20
        chunk_mb = cs ** f.ndim * 4 / 2**20
        row = dict(op=args.op, path=args.path, worker_env=args.worker_env, profiler=args.profiler, shape=list(f.shape), workers=args.workers if client else 0, size=args.size, chunk=cs, chunk_mb=chunk_mb, sweeps=int(sweeps), criterion=float(crit),
                   converged=bool(ok), cpu_s=cpu, wall_s=wall, single_cpu_s=t_ref, peak_mb=peaks,
                   baseline_mb=baseline, first_call_mb=fixed, growth_in_chunks=(max(peaks) - baseline) / chunk_mb,
                   worker_cpu_s=sorted(after[w][0] - base[w][0] for w in after), here_cpu_s=here_cpu,
                   held_mb=held / 2**20, held_in_chunks=held / 2**20 / chunk_mb, load=os.getloadavg()[0])
        if args.check:
            d = read_zarr(target).compute() - ref
            row["max_diff"] = float(np.abs(d).max() / span)
            row["rms_diff"] = float(np.sqrt(np.mean(np.square(d, dtype=np.float64))) / span)
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = ["| operator | path | shape | workers | chunk | sweeps | max diff / range | CPU s (dask) | CPU s (single) | wall s | "
             "peak RSS per worker (MB) | baseline (MB) | first call (MB) | growth / chunk |", "|" + "---|" * 14]
    for r in rows:
        diff = f"{r['max_diff']:.1e}" if "max_diff" in r else "-"
        lines.append(f"| {r['op']} | {r['path']} | {'x'.join(map(str, r['shape']))} | {r['workers']} | {r['chunk']} | {r['sweeps']} | {diff} | {r['cpu_s']:.0f} | "
                     f"{r['single_cpu_s']:.0f} | {r['wall_s']:.0f} | {', '.join(f'{p:.0f}' for p in r['peak_mb'])} | "
                     f"{r['baseline_mb']:.0f} | {r['first_call_mb']:.0f} | {r['growth_in_chunks']:.0f} |")
    write_text(out / "large.md", "\n".join(lines) + "\n")
    write_text(out / "large.json", json.dumps(rows, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
