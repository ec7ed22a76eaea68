"""Homogeneous diffusion inpainting from 256 px to 4K (and 8K): pdeflow's multigrid against pyamg.

For each size: a grey photo (scikit-image's ``astronaut``, bilinearly resized), a uniform random
mask of ``--density`` (default 5 %), float32, relative residual ``--tol`` (default 1e-6); then, each
in a fresh subprocess on one thread:

* ``pdeflow`` -- ``pdeflow.inpaint.diffuse(f, mask, tol=tol, full_output=True)``: CG preconditioned by
  one geometric multigrid V-cycle (:class:`pdeflow.multigrid.Multigrid`), everything included
  (checks, hierarchy, right-hand side, solve, float64 residual check). CPU time
  (``time.process_time``), iterations, the float64 relative residual, and the process's peak
  resident memory (``ru_maxrss``) with the part above the process before the call (Python, torch,
  the image and the mask);
* ``pyamg`` -- smoothed aggregation (``pyamg.smoothed_aggregation_solver``, defaults) as a
  preconditioner of CG (``accel='cg'``) on the same system (the unknown pixels' rows of the masked
  Laplacian, assembled with SciPy, assembly not timed), same tolerance, in ``--pyamg-dtype``
  (default float64, pyamg's own); setup and solve CPU times; the largest difference of its
  solution from pdeflow's.

The ratio is pyamg (setup + solve) / pdeflow, both CPU seconds measured in the same run. pyamg
runs only up to ``--pyamg-max`` pixels (default 4K). The machine load (``os.getloadavg``) is
recorded before each size: the machine may be shared, so compare CPU times and ratios.

    OMP_NUM_THREADS=1 python benchmarks/inpaint_solver_scale.py                       # 256 .. 4K
    python benchmarks/inpaint_solver_scale.py --sizes 256 512 --out /tmp/scale        # quick
    python benchmarks/inpaint_solver_scale.py --sizes 256 512 1024 1920x1080 3840x2160 7680x4320 \\
        --out benchmarks/results/inpaint_solver_scale --overwrite                          # committed

Writes ``scale.json`` and ``scale.md`` to ``--out`` (default a fresh folder under runs/benchmarks/).

Historical. It sized the multigrid solver up to 4K and 8K (minutes) against pyamg. Its results are kept for
the record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _results import (  # benchmarks/_results.py
    add_output_args,
    maxrss_mb,
    open_out,
    solver_meta,
    solver_pair,
    solver_row,
    write_file,
)

HERE = Path(__file__).resolve().parent
SIZES = ["256", "512", "1024", "1920x1080", "3840x2160"]


def parse_size(s: str) -> tuple[int, int]:
    """``'512'`` -> (512, 512); ``'1920x1080'`` -> (H, W) = (1080, 1920)."""
    if "x" in s:
        w, h = s.lower().split("x")
        return int(h), int(w)
    return int(s), int(s)


def make_case(H: int, W: int, density: float, seed: int = 0):
    """(f, mask) as float32 NumPy arrays: the resized grey photo and a uniform random mask."""
    import numpy as np
    import skimage.data
    import torch
    import torch.nn.functional as F

    img = skimage.data.astronaut().astype(np.float32).mean(-1) / 255.0
    f = F.interpolate(torch.from_numpy(img)[None, None], size=(H, W), mode="bilinear", align_corners=False)
    f = f[0, 0].clamp(0, 1).numpy()
    rng = np.random.default_rng(seed)
    m = (rng.random((H, W)) < density).astype(np.float32)
    m[0, 0] = 1.0
    return np.ascontiguousarray(f), m



def worker_pdeflow(H, W, density, tol, repeats, save):
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from pdeflow.inpaint import diffuse

    f, m = make_case(H, W, density)
    ft, mt = torch.from_numpy(f), torch.from_numpy(m)
    base = maxrss_mb()
    best = None
    for _ in range(repeats):
        t0 = time.process_time()
        r = diffuse(ft, mt, tol=tol, full_output=True)
        dt = time.process_time() - t0
        best = dt if best is None else min(best, dt)
    peak = maxrss_mb()
    if save:
        np.save(save, r.u.numpy())
    return {"cpu_s": best, "iterations": int(r.iterations.max()), "residual": float(r.residual.max()),
            "peak_mb": peak, "base_mb": base, "above_base_mb": peak - base}


def worker_pyamg(H, W, density, tol, dtype, ref):
    import numpy as np
    import pyamg
    import scipy.sparse as sp

    f, m = make_case(H, W, density)

    def d1(n):
        e = np.ones(n - 1)
        return sp.diags([-e, e], [0, 1], shape=(n - 1, n))
    L = -(sp.kron(d1(H), sp.eye(W)).T @ sp.kron(d1(H), sp.eye(W))
          + sp.kron(sp.eye(H), d1(W)).T @ sp.kron(sp.eye(H), d1(W))).tocsr()
    k = m.ravel() > 0
    unk = ~k
    Lu = L[unk]
    A = (-Lu[:, unk]).tocsr().astype(dtype)
    b = (Lu[:, k] @ f.ravel()[k].astype(np.float64)).astype(dtype)
    del L, Lu
    base = maxrss_mb()
    t0 = time.process_time()
    ml = pyamg.smoothed_aggregation_solver(A)
    t1 = time.process_time()
    res = []
    x = ml.solve(b, tol=tol, accel="cg", maxiter=500, residuals=res)
    t2 = time.process_time()
    true = float(np.linalg.norm(b.astype(np.float64) - A.astype(np.float64) @ x.astype(np.float64))
                 / np.linalg.norm(b.astype(np.float64)))
    out = {"setup_s": t1 - t0, "solve_s": t2 - t1, "cpu_s": t2 - t0, "iterations": len(res) - 1,
           "residual": true, "levels": len(ml.levels), "peak_mb": maxrss_mb(), "above_base_mb": maxrss_mb() - base}
    if ref:
        u = np.load(ref).ravel().astype(np.float64)
        out["max_diff_vs_pdeflow"] = float(np.abs(u[unk] - x.astype(np.float64)).max())
    return out



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=SIZES, help="N (N x N) or WxH, e.g. 1920x1080")
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--pyamg-max", type=int, default=3840 * 2160, help="largest size (pixels) pyamg runs on")
    ap.add_argument("--pyamg-dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--repeats", type=int, default=3, help="pdeflow runs per size up to 1 Mpx (the fastest counts)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per subprocess")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    add_output_args(ap, "inpaint_solver_scale", what="scale.json, scale.md")
    args = ap.parse_args(argv)
    if args.child:
        kind, H, W, density, tol, extra, save = args.child
        H, W, density, tol = int(H), int(W), float(density), float(tol)
        if kind == "pdeflow":
            r = worker_pdeflow(H, W, density, tol, int(extra), save if save != "-" else None)
        else:
            r = worker_pyamg(H, W, density, tol, extra, save if save != "-" else None)
        print(json.dumps(r))
        return
    out = open_out(args, argv)
    rows = []
    tmp = Path(args.out) / "_u.npy"
    for s in args.sizes:
        H, W = parse_size(s)
        n = H * W
        load = os.getloadavg()
        rep = args.repeats if n <= 1 << 20 else 1
        run_amg = n <= args.pyamg_max
        problem = [str(H), str(W), str(args.density), str(args.tol)]
        pd_args = [*problem, str(rep), str(tmp) if run_amg else "-"]
        amg_args = [*problem, args.pyamg_dtype, str(tmp)] if run_amg else None
        row = {"size": f"{W}x{H}", "pixels": n, "load_before": load,
               **solver_pair(__file__, pd_args, amg_args, tmp, args.timeout)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = solver_meta(density=args.density, tol=args.tol, dtype="float32", pyamg_dtype=args.pyamg_dtype)
    write_file(out / "scale.json", json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [f"# Diffusion inpainting from 256 px to {args.sizes[-1]}: pdeflow multigrid vs pyamg", "",
             f"Uniform random mask {args.density:.0%}, float32 (pyamg: {args.pyamg_dtype}), relative residual "
             f"{args.tol:g}, one thread, CPU seconds (`time.process_time`), each in a fresh process. "
             f"Peak: the process's `ru_maxrss`; 'above' is the part above the process before the call "
             f"(Python, torch, the image and mask). Load = 1-min load average before the size "
             f"({os.cpu_count()} CPUs).", "",
             "| size | Mpx | load | pdeflow CPU s | its | residual | s/Mpx | peak MB | above MB "
             "| pyamg setup s | pyamg solve s | pyamg its | pyamg peak MB | max diff | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [solver_row(r, "pixels") for r in rows]
    lines += ["", f"`uptime` at the end: {meta['uptime']}", ""]
    write_file(out / "scale.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
