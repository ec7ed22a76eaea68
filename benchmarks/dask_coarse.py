"""Decomposed diffusion inpainting with and without the coarse correction (pdeflow.dask.coarse), side by side.

The camera at ``--size`` with a square hole of ``--hole`` of its side (``--sparse P``: instead P of the pixels known
at random), by ``pdeflow.dask.inpaint`` on chunks of each ``--chunks``, with the correction and without it (the
operator's ``coarse`` off), in this process, to the residual ``--tol``: sweeps, CPU s over the single array's, the
largest error against it (solved to 1e-12) over the range.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_coarse.py --size 512 --chunks 64 128 256
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/dask_coarse.py --smoke

Maintained.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import pdeflow.dask as pdd  # noqa: E402
from _results import add_output_args, open_out, write_text  # noqa: E402
from pdeflow.datasets import builtin_image  # noqa: E402
from pdeflow.inpaint import OPERATORS, inpaint_diffusion  # noqa: E402


def problem(size: int, hole: float, sparse: float | None):
    x = builtin_image("skimage/camera", grey=True).double()[None]
    f = torch.nn.functional.interpolate(x, size=(size, size), mode="area")[0, 0].numpy()
    if sparse:
        return f, (np.random.default_rng(0).random(f.shape) < sparse).astype(float)
    m = np.ones(f.shape)
    a, b = int(size * (1 - hole) / 2), int(size * (1 + hole) / 2)
    m[a:b, a:b] = 0
    return f, m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--chunks", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--hole", type=float, default=0.6, help="the hole's side over the image's (default 0.6)")
    ap.add_argument("--sparse", type=float, default=None, metavar="P", help="P of the pixels known, no hole")
    ap.add_argument("--overlap", type=int, default=16)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--max-sweeps", type=int, default=200)
    ap.add_argument("--smoke", action="store_true", help="64 px, chunks of 16, overlap 4")
    add_output_args(ap, "dask_coarse")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    size, chunks = (64, [16]) if args.smoke else (args.size, args.chunks)
    overlap = 4 if args.smoke else args.overlap
    f, m = problem(size, args.hole, args.sparse)
    span = float(np.ptp(f))
    ref = inpaint_diffusion(torch.from_numpy(f), torch.from_numpy(m), tol=1e-12).numpy()
    t = time.process_time()
    inpaint_diffusion(torch.from_numpy(f), torch.from_numpy(m), tol=args.tol)
    single = time.process_time() - t
    what = f"{args.sparse:g} of the pixels known" if args.sparse else f"a hole of {args.hole:g} of the side"
    lines = [f"Diffusion inpainting of the camera at {size}², {what}, overlap {overlap}, tol {args.tol:g}; "
             f"single array {single:.2f} CPU s", "",
             "| chunks | correction | sweeps | converged | CPU s | / single | max error / range |",
             "|---|---|---|---|---|---|---|"]
    print(lines[0], flush=True)
    diffusion = OPERATORS["diffusion"]
    for c in chunks:
        for coarse in (True, False):
            OPERATORS["diffusion"] = dataclasses.replace(diffusion, coarse=coarse)
            try:
                t = time.process_time()
                r = pdd.inpaint(da.from_array(f, chunks=c), m, "diffusion", overlap=overlap, tol=args.tol,
                                max_sweeps=args.max_sweeps, full_output=True)
                u, sweeps, ok = dask.compute(r.u, r.sweeps, r.converged, scheduler="sync")
                cpu = time.process_time() - t
            finally:
                OPERATORS["diffusion"] = diffusion
            lines.append(f"| {c} | {'coarse' if coarse else 'none'} | {int(sweeps)} | {bool(ok)} | {cpu:.2f} | "
                         f"{cpu / single:.1f} | {np.abs(u - ref).max() / span:.1e} |")
            print(lines[-1], flush=True)
    write_text(out / "dask_coarse.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
