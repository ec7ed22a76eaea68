"""The cost of pdeflow.dask.rof (or tv_flow) against the single array at the same stopping rule: CPU s, sweeps, error.

A noisy photograph (scikit-image's camera resampled to ``--size``, noise 0.1, lam 0.1) is solved by
``pdeflow.tv.rof`` at its default (``accuracy``), and by ``pdeflow.dask.rof`` on chunks of each ``--chunks`` at its
default (the same accuracy) and at ``tol=1e-7`` (the exact answer), all in this process (dask's synchronous
scheduler: every task's CPU time is this process's). Errors are against ``rof`` at ``tol=1e-9``, as RMS and largest
difference over the image's range; the ratio is CPU time over the single array's in the same run. With
``--flow T ...`` the TV flow of the photograph without noise to those times instead: ``pdeflow.tv.tv_flow`` and
``pdeflow.dask.tv_flow`` at their defaults (the same steps and accuracy), errors at the last time against the same
steps solved to ``tol=1e-8`` (``--against-single``: against the single array's answer). With ``--zero-start``
every dask solve runs a second time from zero duals (the coarse
start, ``pdeflow.dask.tv.coarse_start``, turned off by making its factor 1), side by side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_rof_cost.py --size 512 --chunks 128 256
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_rof_cost.py --size 512 --chunks 128 256 --flow 0.1 0.5 2
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_rof_cost.py --size 256 --chunks 64 --lam 0.5 2 --zero-start --default-only
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_rof_cost.py --size 2048 --chunks 512 --default-only --against-single
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_rof_cost.py --smoke

Maintained.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import pdeflow.dask as pdd  # noqa: E402
import pdeflow.dask.tv as dask_tv  # noqa: E402
from _results import add_output_args, open_out, write_text  # noqa: E402
from pdeflow.datasets import builtin_image  # noqa: E402
from pdeflow.tv import rof, tv_flow  # noqa: E402


def photo(size: int, noise: float = 0.1) -> np.ndarray:
    x = builtin_image("skimage/camera", grey=True).double()[None]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")[0, 0].numpy()
    return x + noise * np.random.default_rng(0).standard_normal(x.shape)


def errors(u, ref, span) -> tuple[float, float]:
    d = np.asarray(u, np.float64) - ref
    return float(np.sqrt((d * d).mean()) / span), float(np.abs(d).max() / span)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--chunks", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--lam", type=float, nargs="+", default=[0.1])
    ap.add_argument("--default-only", action="store_true", help="no tol=1e-7 rows")
    ap.add_argument("--zero-start", action="store_true",
                    help="also run every dask solve from zero duals (no coarse start), side by side")
    ap.add_argument("--flow", type=float, nargs="+", metavar="T", help="the TV flow to these times instead of ROF")
    ap.add_argument("--against-single", action="store_true",
                    help="errors against the single array's answer (a converged one takes hours at 2048)")
    ap.add_argument("--smoke", action="store_true", help="64 px, chunks of 32")
    add_output_args(ap, "dask_rof_cost")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    size, chunks = (64, [32]) if args.smoke else (args.size, args.chunks)
    f = photo(size, 0.0 if args.flow else 0.1)
    span = float(np.ptp(f))
    tables = [run(args, f, span, size, chunks, lam) for lam in ([None] if args.flow else args.lam)]
    write_text(out / "dask_rof_cost.md", "\n\n".join(tables) + "\n")
    return 0


def run(args, f, span, size, chunks, lam) -> str:
    """The table of one ``lam`` (or of the flow, ``lam`` None)."""
    if args.flow:
        def solve(x, **kw):
            return tv_flow(torch.from_numpy(x), args.flow, **kw).numpy()[-1]

        def dask_solve(x, **kw):
            r = pdd.tv_flow(x, args.flow, full_output=True, **kw)
            return r.u[-1], r.sweeps, r.criterion
        variants = (("default", {}),)
        what = f"TV flow of the photograph to t = {' '.join(f'{t:g}' for t in args.flow)}"
    else:
        def solve(x, **kw):
            return rof(torch.from_numpy(x), lam, **kw).numpy()

        def dask_solve(x, **kw):
            r = pdd.rof(x, lam, full_output=True, **kw)
            return r.u, r.sweeps, r.criterion
        variants = (("default", {}),) + (() if args.default_only else (("tol=1e-7", {"tol": 1e-7}),))
        what = f"ROF, lam {lam:g}, noise 0.1"
    # the flow's steps stall short of 1e-9 (a step then takes max_iter): 1e-8 is 100 times below its share
    ref = None
    if not args.against_single:
        ref = solve(f, tol=1e-8, max_iter=50000) if args.flow else solve(f, tol=1e-9, max_iter=200000)
    t = time.process_time()
    u = solve(f)
    single = time.process_time() - t
    ref = u if ref is None else ref
    rms, big = errors(u, ref, span)
    rows = [f"| single array, default | | | {single:.2f} | 1.0 | {rms:.1e} | {big:.1e} |"]
    print(rows[-1], flush=True)
    factor = dask_tv.coarse_factor
    for c in chunks:
        for label, kw in variants:
            for start in ("coarse", "zero") if args.zero_start else ("coarse",):
                dask_tv.coarse_factor = factor if start == "coarse" else (lambda f4: 1)
                t = time.process_time()
                u, sweeps, crit = dask.compute(*dask_solve(da.from_array(f, chunks=c), **kw), scheduler="sync")
                cpu = time.process_time() - t
                dask_tv.coarse_factor = factor
                rms, big = errors(u, ref, span)
                name = f"dask, {label}" + (f", {start} start" if args.zero_start else "")
                rows.append(f"| {name} | {c} | {int(sweeps)} | {cpu:.2f} | {cpu / single:.1f} | {rms:.1e} | "
                            f"{big:.1e} |")
                print(rows[-1], flush=True)
    return "\n".join([f"{size} x {size}, {what}; CPU s in one process (one thread)", "",
                      "| solve | chunks | sweeps | CPU s | ratio | RMS error | largest error |",
                      "|---|---|---|---|---|---|---|", *rows])


if __name__ == "__main__":
    sys.exit(main())
