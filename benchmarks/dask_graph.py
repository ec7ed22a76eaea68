"""Maintained. The cost of building the lazy graph of pdeflow.dask's decomposed solves (before any compute) and of
computing it, against ``max_sweeps``: the graph holds every sweep it may need, so its build must stay cheap and
linear in the sweeps.

For each case (``rof`` on a noisy disk-and-step image of ``--sizes`` px in chunks of ``--chunks``, ``lam=0.1``,
``tol=1e-6``; ``diffusion`` inpainting from 10 % random pixels, overlap 4, ``tol=1e-9``; ``tv_flow``, 3 steps of
``dt=0.002``; ``store``: ``rof``'s case by :func:`pdeflow.dask.rof_to_zarr`, eager, its CPU time as the compute's)
and each ``--max-sweeps``: the CPU time (``time.process_time``, one thread) of building the graph
and of computing ``u``, ``sweeps``, ``criterion`` and ``converged`` on dask's synchronous scheduler, and the
graph's layers and tasks. With ``--before REV`` the same cases run, side by side in this process, on
``src/pdeflow/dask`` as it was at the git revision ``REV`` (loaded from git beside the installed package), and
every computed value is compared bit for bit (``np.array_equal``) with it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_graph.py --before 4a22adef
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_graph.py --smoke

Writes ``results.json`` (after every case) and ``table.md`` into ``--out``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from _results import add_output_args, open_out, write_text

ROOT = Path(__file__).resolve().parents[1]


def _image(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:n, :n] / n
    clean = ((x - 0.4) ** 2 + (y - 0.45) ** 2 < 0.06).astype(float) + 0.5 * (x > 0.7)
    return clean + 0.1 * rng.standard_normal((n, n))


def load_revision(rev: str):
    """``pdeflow.dask`` as it was at the git revision ``rev``, imported as ``pdeflow._dask_at_rev`` (its relative
    imports of the rest of pdeflow read the installed package)."""
    folder = Path(tempfile.mkdtemp(prefix="pdeflow-dask-"))
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, "src/pdeflow/dask/"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for path in names:
        if path.endswith(".py"):
            text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout
            (folder / Path(path).name).write_text(text)
    spec = importlib.util.spec_from_file_location("pdeflow._dask_at_rev", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["pdeflow._dask_at_rev"] = module
    spec.loader.exec_module(module)
    return module


def _call(mod, op: str, size: int, chunks: int, max_sweeps: int):
    import dask.array as da
    f = da.from_array(_image(size), chunks=chunks)
    if op == "rof":
        return mod.rof(f, 0.1, tol=1e-6, max_sweeps=max_sweeps, full_output=True)
    if op == "store":       # eager: the whole solve runs here
        target = Path(tempfile.mkdtemp(prefix="dask-graph-")) / "u.zarr"
        return mod.rof_to_zarr(f, 0.1, target, tol=1e-6, max_sweeps=max_sweeps, scheduler="sync")
    if op == "tv_flow":
        return mod.tv_flow(f, [0.0, 0.002, 0.006], dt=0.002, max_sweeps=max_sweeps, full_output=True)
    mask = np.random.default_rng(1).random((size, size)) < 0.1
    return mod.inpaint(f, mask, "diffusion", overlap=4, tol=1e-9, max_sweeps=max_sweeps, full_output=True)


def run_case(mod, op, size, chunks, max_sweeps, compute: bool):
    import dask
    t = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = _call(mod, op, size, chunks, max_sweeps)
    build = time.process_time() - t
    if op == "store":       # the solve was the call; what is left to compute is reading the result
        row = {"build_s": 0.0, "compute_s": build, "layers": 0, "tasks": 0, "sweeps": r.sweeps,
               "criterion": r.criterion}
        return row, (r.u.compute(scheduler="sync"), r.sweeps, r.criterion, r.converged)
    row = {"build_s": build, "layers": len(r.u.dask.layers), "tasks": len(r.u.dask)}
    values = None
    if compute:
        t = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # a graph that ran out of sweeps warns: not what is measured here
            values = dask.compute(r.u, r.sweeps, r.criterion, r.converged, scheduler="sync")
        row["compute_s"] = time.process_time() - t
        row["sweeps"], row["criterion"] = int(values[1]), float(values[2])
    return row, values


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", nargs="+", choices=("rof", "diffusion", "tv_flow", "store"), default=["rof", "diffusion"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 512], help="image sizes (default 32 512)")
    ap.add_argument("--chunks", type=int, nargs="+", default=[16, 128],
                    help="the chunk of each size, in order (default 16 128)")
    ap.add_argument("--max-sweeps", type=int, nargs="+", default=[8, 30])
    ap.add_argument("--before", default=None, metavar="REV",
                    help="also run src/pdeflow/dask as it was at this git revision, and compare the results")
    ap.add_argument("--no-compute", action="store_true", help="measure the build only")
    ap.add_argument("--smoke", action="store_true", help="rof and diffusion at 32 px, chunks 16, 2 sweeps")
    add_output_args(ap, "dask_graph", what="results.json, table.md")
    args = ap.parse_args(argv)
    if len(args.chunks) != len(args.sizes):
        ap.error("argument --chunks: give one chunk per size")
    if args.smoke:
        args.sizes, args.chunks, args.max_sweeps = [32], [16], [2]
    out = open_out(args, argv)
    torch.set_num_threads(1)
    import pdeflow.dask as now
    mods = [("after", now)]
    if args.before:
        mods.insert(0, ("before", load_revision(args.before)))
    for _, mod in mods:        # imports and first calls out of the measurements
        run_case(mod, "rof", 16, 8, 1, True)
    rows = []
    for op in args.ops:
        for size, chunks in zip(args.sizes, args.chunks):
            for ms in args.max_sweeps:
                row = {"op": op, "size": size, "chunks": chunks, "max_sweeps": ms,
                       "load": os.getloadavg()[0]}
                results = {}
                for label, mod in mods:
                    row[label], results[label] = run_case(mod, op, size, chunks, ms, not args.no_compute)
                if args.before and not args.no_compute:
                    a, b = results["before"], results["after"]
                    row["identical"] = all(np.array_equal(x, y) for x, y in zip(a, b))
                print(json.dumps(row), flush=True)
                rows.append(row)
                write_text(out / "results.json", json.dumps({"before": args.before, "rows": rows}, indent=1))
    labels = [label for label, _ in mods]
    head = "| op | size | chunk | max_sweeps | " + " | ".join(
        f"build s ({x}) | compute s ({x}) | layers ({x}) | tasks ({x})" for x in labels)
    head += " | sweeps | identical |" if args.before else " | sweeps |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["op"], r["size"], r["chunks"], r["max_sweeps"]]
        for x in labels:
            cells += [f"{r[x]['build_s']:.2f}", f"{r[x].get('compute_s', float('nan')):.2f}", r[x]["layers"],
                      r[x]["tasks"]]
        cells.append(r[labels[-1]].get("sweeps", ""))
        if args.before:
            cells.append(r.get("identical", ""))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    write_text(out / "table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
