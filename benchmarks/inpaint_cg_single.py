"""Plain CG for one image: pdeflow's NumPy/SciPy matrix loop against its torch tensor loop, side by side.

``pdeflow.inpaint.diffuse(solver='cg')`` on a single CPU image of at most
``MATRIX_PATH_MAX_PIXELS`` runs ``pdeflow.linalg.cg_matrix`` on the explicit CSR matrix of the system;
before, and for batches, it runs ``pdeflow.linalg.cg``'s tensor loop (one convolution for the
Laplacian, torch dot products and updates). Both compute the same iterates. Here both run on the same
images and masks in one process (either loop forced by the size limit, whatever the library's), and PS
(``probabilistic_sparsification``, which inpaints one image per step with this solver) is timed both ways
on 64 x 64 crops: the baseline of the learned masks' speed claims gets faster with the solver.

    OMP_NUM_THREADS=1 python benchmarks/inpaint_cg_single.py --out benchmarks/results/inpaint/cg_single --overwrite

Writes report.md and results.json. CPU seconds of this process (median of the repeats).

Historical. It chose the NumPy/SciPy loop of pdeflow.linalg.cg_matrix over the tensor loop. Its results are
kept for the record; it is not expected to run against today's API. It still imported and parsed its options
against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import add_output_args, open_out, write_file  # noqa: E402
from pdeflow.inpaint import diffuse, diffusion, probabilistic_sparsification, random_mask  # noqa: E402
from pdeflow.inpaint.evaluation import test_images  # noqa: E402

PATHS = {"matrix": 1 << 62, "tensor": 0}   # size limits that force either loop (the library's: MATRIX_PATH_MAX_PIXELS)


def timed(fn, repeats: int) -> float:
    """Median CPU seconds of ``fn()`` over ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def with_path(path: str, fn):
    old = diffusion.MATRIX_PATH_MAX_PIXELS
    diffusion.MATRIX_PATH_MAX_PIXELS = PATHS[path]
    try:
        return fn()
    finally:
        diffusion.MATRIX_PATH_MAX_PIXELS = old


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(ap, "inpaint_cg_single", what="report.md, results.json")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.2])
    ap.add_argument("--ps-crops", type=int, default=3, help="64 x 64 crops PS is timed on (0: skip PS)")
    ap.add_argument("--ps-density", type=float, default=0.1)
    args = ap.parse_args(argv)
    dest = open_out(args, argv)
    torch.set_num_threads(1)
    rows = []
    for n in args.sizes:
        f = test_images(1, n, seed=0)[0].double()
        for d in args.densities:
            m = random_mask((1, 1, n, n), d, generator=0, dtype=torch.float64)
            row = {"size": n, "density": d}
            for path in PATHS:
                out = with_path(path, lambda: diffuse(f, m, solver="cg", full_output=True))
                row[path] = with_path(path, lambda: timed(lambda: diffuse(f, m, solver="cg"),
                                                          max(3, int(3e5 / (n * n)))))
                row[f"{path}_iterations"] = int(out.iterations)
                row[f"{path}_u"] = out.u
            row["max_diff"] = float((row.pop("matrix_u") - row.pop("tensor_u")).abs().max())
            rows.append(row)
            print(f"{n:4d} {d:4g}: tensor {1e3 * row['tensor']:8.2f} ms, matrix {1e3 * row['matrix']:8.2f} ms, "
                  f"ratio {row['tensor'] / row['matrix']:.2f}, iterations {row['tensor_iterations']} / "
                  f"{row['matrix_iterations']}, max |u diff| {row['max_diff']:.1e}", flush=True)
    ps = []
    if args.ps_crops > 0:
        crops = test_images(args.ps_crops, 64, seed=1)[0].double()
        for i in range(args.ps_crops):
            fi = crops[i:i + 1]
            rec = {"crop": i}
            for path in PATHS:
                c0 = time.process_time()
                mask = with_path(path, lambda: probabilistic_sparsification(fi, args.ps_density, generator=i))
                rec[path] = time.process_time() - c0
                rec[f"{path}_mask"] = mask
            rec["same_mask"] = bool(torch.equal(rec.pop("matrix_mask"), rec.pop("tensor_mask")))
            ps.append(rec)
            print(f"PS crop {i}: tensor {rec['tensor']:.2f} s, matrix {rec['matrix']:.2f} s, "
                  f"ratio {rec['tensor'] / rec['matrix']:.2f}, same mask {rec['same_mask']}", flush=True)
    lines = ["# Plain CG for one image: matrix loop (NumPy/SciPy) vs tensor loop (torch), side by side", "",
             f"`OMP_NUM_THREADS=1 python benchmarks/inpaint_cg_single.py {' '.join(argv or sys.argv[1:])}`", "",
             f"Torch {torch.__version__}, one thread, CPU {platform.processor() or platform.machine()}. "
             "`diffuse(f, random mask, solver='cg')`, relative residual 1e-6, float64, a grey test crop; "
             "CPU ms, median of repeats. Ratio: tensor / matrix. The library runs the matrix loop up to "
             f"{diffusion.MATRIX_PATH_MAX_PIXELS} pixels (`MATRIX_PATH_MAX_PIXELS`).", "",
             "| size | density | tensor loop ms | matrix loop ms | ratio | CG iterations (tensor / matrix) | "
             "max abs(u difference) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['density']:g} | {1e3 * r['tensor']:.2f} | {1e3 * r['matrix']:.2f} | "
              f"{r['tensor'] / r['matrix']:.2f} | {r['tensor_iterations']} / {r['matrix_iterations']} | "
              f"{r['max_diff']:.1e} |" for r in rows]
    if ps:
        tt, tm = sum(r["tensor"] for r in ps), sum(r["matrix"] for r in ps)
        lines += ["", f"PS (p = q = 0.02, density {args.ps_density:g}) on {len(ps)} crops of 64 x 64 (built-in "
                  f"TEST photos, crop seed 1): {tt / len(ps):.2f} CPU s per mask with the tensor loop, "
                  f"{tm / len(ps):.2f} s with the matrix loop (ratio {tt / tm:.2f}); the same masks: "
                  f"{all(r['same_mask'] for r in ps)}."]
    write_file(dest / "report.md", "\n".join(lines) + "\n")
    write_file(dest / "results.json", json.dumps({"rows": rows, "ps": ps}, indent=1) + "\n")
    print(f"wrote {dest / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
