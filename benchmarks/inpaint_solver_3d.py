"""Diffusion inpainting of volumes from 64^3 to 256^3: pdeflow's 3-D multigrid (and pyamg side by side).

For each size N: the 3-D Shepp-Logan phantom (``pdeflow.datasets.phantoms.shepp_logan_3d``, N^3,
float32) plus a smooth ramp (so the solution is not piecewise constant), a uniform random mask of
``--density`` (default 5 %), relative residual ``--tol`` (default 1e-6); then, each in a fresh
subprocess on one thread:

* ``pdeflow`` -- ``pdeflow.inpaint.diffuse(f, mask, ndim=3, tol=tol, full_output=True)``: CG
  preconditioned by one 3-D V-cycle (:class:`pdeflow.multigrid.Multigrid3d`), everything included
  (checks, hierarchy, right-hand side, solve, float64 residual check). CPU time
  (``time.process_time``, the fastest of ``--repeats`` up to 128^3), iterations, the float64 relative
  residual, the process's peak resident memory (``ru_maxrss``) and the part above the process
  before the call (Python, torch, the volume and the mask);
* ``pyamg`` (up to ``--pyamg-max`` voxels, default 128^3) -- smoothed aggregation
  (``pyamg.smoothed_aggregation_solver``, defaults) as a preconditioner of CG (``accel='cg'``) on the
  same system (the unknown voxels' rows of the 7-point masked Laplacian, assembled with SciPy,
  assembly not timed), float64 (pyamg's own), same tolerance; setup and solve CPU times and the
  largest difference of its solution from pdeflow's.

    OMP_NUM_THREADS=1 python benchmarks/inpaint_solver_3d.py --sizes 64 96 --out /tmp/s3d     # quick
    python benchmarks/inpaint_solver_3d.py --sizes 64 96 128 160 192 256 --direct-sizes 32 \\
        --out benchmarks/results/inpaint_solver_3d --overwrite                                  # committed
    python benchmarks/inpaint_solver_3d.py --sizes 64 128 --spacing 2.5 0.7 0.7 --out /tmp/s3d_ct   # CT voxels

Writes ``scale3d.json`` and ``scale3d.md`` to ``--out`` (default a fresh folder under runs/benchmarks/).

Historical. It sized the 3-D multigrid solver up to 256^3 (minutes) when volumes were added. Its results are
kept for the record; it is not expected to run against today's API. It still imported and parsed its options
against today's API when it was marked.
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
    run_child,
    solver_meta,
    solver_pair,
    solver_row,
    write_file,
)

SIZES = ["64", "96", "128", "160", "192", "256"]


def make_case(n: int, density: float, seed: int = 0):
    """(f, mask) as float32 NumPy arrays (n, n, n)."""
    import numpy as np

    from pdeflow.datasets.phantoms import shepp_logan_3d

    f = shepp_logan_3d((n, n, n)).numpy()
    f = f + 0.3 * np.linspace(0.0, 1.0, n, dtype=np.float32)[None, None, :]
    rng = np.random.default_rng(seed)
    m = (rng.random((n, n, n)) < density).astype(np.float32)
    m[0, 0, 0] = 1.0
    return np.ascontiguousarray(f, dtype=np.float32), m



def worker_pdeflow(n, density, tol, repeats, save, spacing=None):
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from pdeflow.inpaint import diffuse

    f, m = make_case(n, density)
    ft, mt = torch.from_numpy(f), torch.from_numpy(m)
    base = maxrss_mb()
    best = None
    for _ in range(repeats):
        t0 = time.process_time()
        r = diffuse(ft, mt, ndim=3, spacing=spacing, tol=tol, full_output=True)
        dt = time.process_time() - t0
        best = dt if best is None else min(best, dt)
    peak = maxrss_mb()
    if save:
        np.save(save, r.u.numpy())
    return {"cpu_s": best, "iterations": int(r.iterations.max()), "residual": float(r.residual.max()),
            "peak_mb": peak, "base_mb": base, "above_base_mb": peak - base}


def system(n, density):
    """The unknown voxels' rows of the 7-point masked Laplacian (SciPy, float64): ``(A, b, unk)``."""
    import numpy as np
    import scipy.sparse as sp

    f, m = make_case(n, density)

    def d1(k):
        e = np.ones(k - 1)
        return sp.diags([-e, e], [0, 1], shape=(k - 1, k))
    eye = sp.eye(n)
    L = None
    for a in range(3):
        mats = [eye, eye, eye]
        mats[a] = d1(n)
        G = sp.kron(sp.kron(mats[0], mats[1]), mats[2]).tocsr()
        L = -(G.T @ G) if L is None else L - G.T @ G
    L = L.tocsr()
    k = m.ravel() > 0
    unk = ~k
    Lu = L[unk]
    A = (-Lu[:, unk]).tocsr()
    b = Lu[:, k] @ f.ravel()[k].astype(np.float64)
    return A, b, unk


def worker_direct(n, density, ref):
    """SciPy's sparse direct solve (``scipy.sparse.linalg.spsolve``, SuperLU) of the same system."""
    import numpy as np
    from scipy.sparse.linalg import spsolve

    A, b, unk = system(n, density)
    t0 = time.process_time()
    x = spsolve(A.tocsc(), b)
    t = time.process_time() - t0
    u = np.load(ref).ravel().astype(np.float64)
    return {"cpu_s": t, "unknowns": int(unk.sum()), "residual": float(np.linalg.norm(b - A @ x) / np.linalg.norm(b)),
            "max_diff_vs_pdeflow": float(np.abs(u[unk] - x).max()), "max_abs_solution": float(np.abs(x).max())}


def worker_pyamg(n, density, tol, ref):
    import numpy as np
    import pyamg

    A, b, unk = system(n, density)
    base = maxrss_mb()
    t0 = time.process_time()
    ml = pyamg.smoothed_aggregation_solver(A)
    t1 = time.process_time()
    res = []
    x = ml.solve(b, tol=tol, accel="cg", maxiter=500, residuals=res)
    t2 = time.process_time()
    true = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    out = {"setup_s": t1 - t0, "solve_s": t2 - t1, "cpu_s": t2 - t0, "iterations": len(res) - 1,
           "residual": true, "levels": len(ml.levels), "peak_mb": maxrss_mb(), "above_base_mb": maxrss_mb() - base}
    if ref:
        u = np.load(ref).ravel().astype(np.float64)
        out["max_diff_vs_pdeflow"] = float(np.abs(u[unk] - x).max())
    return out



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", type=int, default=[int(s) for s in SIZES], help="N (volumes N^3)")
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("DZ", "DY", "DX"),
                    help="voxel spacing for pdeflow (default unit); pyamg is then not run (its matrix is the unit one)")
    ap.add_argument("--pyamg-max", type=int, default=128 ** 3, help="largest size (voxels) pyamg runs on")
    ap.add_argument("--direct-sizes", nargs="*", type=int, default=[32],
                    help="N: also solve these small volumes with SciPy's sparse direct solver and compare")
    ap.add_argument("--repeats", type=int, default=3, help="pdeflow runs per size up to 128^3 (the fastest counts)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per subprocess")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    add_output_args(ap, "inpaint_solver_3d", what="scale3d.json, scale3d.md")
    args = ap.parse_args(argv)
    if args.child:
        kind, n, density, tol, extra, save, spacing = args.child
        n, density, tol = int(n), float(density), float(tol)
        save = save if save != "-" else None
        spacing = None if spacing == "-" else tuple(float(v) for v in spacing.split(","))
        r = worker_pdeflow(n, density, tol, int(extra), save, spacing) if kind == "pdeflow" else \
            worker_direct(n, density, save) if kind == "direct" else worker_pyamg(n, density, tol, save)
        print(json.dumps(r))
        return
    out = open_out(args, argv)
    rows = []
    tmp = Path(args.out) / "_u.npy"
    direct = []
    for n in args.direct_sizes if args.spacing is None else []:
        pd = run_child(__file__, ["pdeflow", str(n), str(args.density), str(args.tol), "1", str(tmp), "-"], args.timeout)
        dr = run_child(__file__, ["direct", str(n), str(args.density), str(args.tol), "-", str(tmp), "-"], args.timeout)
        if tmp.exists():
            tmp.unlink()
        direct.append({"size": f"{n}^3", "pdeflow": pd, "direct": dr})
        print(json.dumps(direct[-1]), flush=True)
    for n in args.sizes:
        vox = n ** 3
        load = os.getloadavg()
        rep = args.repeats if vox <= 128 ** 3 else 1
        run_amg = vox <= args.pyamg_max and args.spacing is None
        sp = "-" if args.spacing is None else ",".join(str(v) for v in args.spacing)
        problem = [str(n), str(args.density), str(args.tol)]
        pd_args = [*problem, str(rep), str(tmp) if run_amg else "-", sp]
        amg_args = [*problem, "-", str(tmp), "-"] if run_amg else None
        row = {"size": f"{n}^3", "voxels": vox, "load_before": load,
               **solver_pair(__file__, pd_args, amg_args, tmp, args.timeout)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = solver_meta(density=args.density, tol=args.tol, spacing=args.spacing, dtype="float32",
                       pyamg_dtype="float64")
    write_file(out / "scale3d.json", json.dumps({"meta": meta, "rows": rows, "direct": direct}, indent=1) + "\n")
    lines = [f"# Diffusion inpainting of volumes, {args.sizes[0]}^3 to {args.sizes[-1]}^3: pdeflow 3-D multigrid "
             "(and pyamg)", "",
             f"3-D Shepp-Logan phantom plus a ramp, uniform random mask {args.density:.0%}, voxel spacing "
             f"{tuple(args.spacing) if args.spacing else 'unit'}, float32 (pyamg: "
             f"float64), relative residual {args.tol:g}, one thread, CPU seconds (`time.process_time`), each "
             f"in a fresh process. Peak: the process's `ru_maxrss`; 'above' is the part above the process "
             f"before the call (Python, torch, the volume and mask). Load = 1-min load average before the "
             f"size ({os.cpu_count()} CPUs).", "",
             "| size | Mvox | load | pdeflow CPU s | its | residual | s/Mvox | peak MB | above MB "
             "| pyamg setup s | pyamg solve s | pyamg its | pyamg peak MB | max diff | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [solver_row(r, "voxels") for r in rows]
    vox = [r for r in rows if "cpu_s" in r["pdeflow"]]
    if len(vox) > 1:
        per = [r["pdeflow"]["cpu_s"] / r["voxels"] * 1e6 for r in vox]
        lines += ["", f"Time per voxel, largest over smallest size: {per[-1] / per[0]:.2f}; largest over the "
                  f"fastest: {per[-1] / min(per):.2f} (linear scaling: 1)."]
    if direct:
        lines += ["", "Against SciPy's sparse direct solve (`scipy.sparse.linalg.spsolve`, SuperLU, float64) of "
                  "the same system (the unknown voxels' rows), pdeflow in float32 to the relative residual above:",
                  "", "| size | unknowns | max abs difference | max abs solution | spsolve residual | "
                  "pdeflow CPU s | spsolve CPU s |", "|---|---|---|---|---|---|---|"]
        for d in direct:
            p, q = d["pdeflow"], d["direct"]
            if "cpu_s" in p and "cpu_s" in q:
                lines.append(f"| {d['size']} | {q['unknowns']} | {q['max_diff_vs_pdeflow']:.1e} | "
                             f"{q['max_abs_solution']:.2f} | {q['residual']:.1e} | {p['cpu_s']:.3f} | {q['cpu_s']:.2f} |")
            else:
                lines.append(f"| {d['size']} | failed: {p.get('error') or q.get('error')} | | | | | |")
    lines += ["", f"`uptime` at the end: {meta['uptime']}", ""]
    write_file(out / "scale3d.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
