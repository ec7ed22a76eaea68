"""Homogeneous diffusion inpainting: pdeflow's multigrid-preconditioned CG against plain CG
and a sparse direct solve, side by side.

For each image size, mask kind and density: a crop of a test-split photo (grey) and a mask:
``random`` (uniform) or ``edges`` (the pixels of largest gradient magnitude, as an optimised
mask would cluster them: large flat holes, the hard case for plain CG); then

* ``mg``     -- ``pdeflow.inpaint.diffuse(solver='mg')``: CG preconditioned by one geometric
  multigrid V-cycle (Galerkin coarse grids), relative residual ``--tol``;
* ``cg``     -- ``pdeflow.inpaint.diffuse(solver='cg')``: plain CG on the same system
  (the solver of the reference C codes), same stopping rule;
* ``spsolve`` -- ``scipy.sparse.linalg.spsolve`` (SuperLU) on the unknowns, float64, with the
  matrix assembly timed separately.

Errors are max |u - u_spsolve| (intensities in [0, 1]). Times are the median of ``--repeats``
runs after one warm-up run. Ratios printed: cg / mg and spsolve / mg.

    OMP_NUM_THREADS=1 python benchmarks/inpaint_solver.py                  # 128, 256, 512; 1, 5, 10 %
    python benchmarks/inpaint_solver.py --sizes 512 --densities 0.01 --dtype float32

Writes solver_<dtype>.json and .md to ``--out`` (default a fresh folder under runs/benchmarks/; the
committed ones: ``--out benchmarks/results/inpaint --overwrite``).

Historical. It chose multigrid-preconditioned CG as diffuse's solver. Its results are kept for the record; it
is not expected to run against today's API. It still imported and parsed its options against today's API when
it was marked.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch

from _results import add_output_args, open_out, write_file  # benchmarks/_results.py
from pdeflow import datasets, ops
from pdeflow.inpaint import diffuse, random_mask


def neumann_laplacian(H: int, W: int) -> sp.csr_matrix:
    def d1(n):
        e = np.ones(n - 1)
        return sp.diags([-e, e], [0, 1], shape=(n - 1, n))
    Dy = sp.kron(d1(H), sp.eye(W))
    Dx = sp.kron(sp.eye(H), d1(W))
    return -(Dy.T @ Dy + Dx.T @ Dx).tocsr()


def spsolve_inpaint(f: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(u, assembly seconds, solve seconds)."""
    t0 = time.perf_counter()
    H, W = f.shape
    L = neumann_laplacian(H, W)
    k = m.ravel() > 0
    unk = ~k
    A = L[unk][:, unk].tocsc()
    rhs = -(L[unk][:, k] @ f.ravel()[k])
    t1 = time.perf_counter()
    x = spl.spsolve(A, rhs)
    t2 = time.perf_counter()
    u = f.ravel().astype(np.float64).copy()
    u[unk] = x
    return u.reshape(H, W), t1 - t0, t2 - t1


def timed(fn, repeats: int):
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def photo(size: int) -> torch.Tensor:
    """A centre crop of the largest grey test-split photo (reflect-padded if needed)."""
    pool = datasets.builtin_pool("test", kind="photo")
    name = max(pool, key=lambda n: min(pool[n].shape[-2:]))
    img = pool[name]
    H, W = img.shape[-2:]
    if min(H, W) >= size:
        top, left = (H - size) // 2, (W - size) // 2
        return img[0, top:top + size, left:left + size], name
    return datasets.random_crops([img], 1, size, generator=0)[0, 0], name


def edge_mask(img: torch.Tensor, density: float) -> torch.Tensor:
    """The round(density * H * W) pixels of largest gradient magnitude (ties broken by position)."""
    g = ops.gradient_norm(ops.grad(img.double()[None, None]))[0, 0]
    k = round(density * g.numel())
    m = torch.zeros(g.numel(), dtype=torch.float64)
    m[g.flatten().topk(k).indices] = 1
    return m.view_as(g)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.1])
    ap.add_argument("--masks", nargs="+", choices=("random", "edges"), default=["random", "edges"])
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    add_output_args(ap, "inpaint_solver", what="solver_DTYPE.json, .md")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    rows = []
    hdr = (f"{'size':>5} {'mask':>6} {'dens':>5} | {'mg s':>7} {'it':>3} {'err':>8} | "
           f"{'cg s':>7} {'it':>4} {'err':>8} | "
           f"{'spsolve s':>9} (+asm) | {'cg/mg':>6} {'sp/mg':>6}")
    print(f"pdeflow diffusion inpainting, {args.dtype}, tol {args.tol:g}, device {args.device}, "
          f"{torch.get_num_threads()} torch thread(s), median of {args.repeats}")
    print(hdr)
    for size in args.sizes:
        img, name = photo(size)
        for kind, d in [(k, d) for k in args.masks for d in args.densities]:
            m = (random_mask((size, size), d, generator=size, dtype=torch.float64) if kind == "random"
                 else edge_mask(img, d))
            u_ref, t_asm, t_sp = spsolve_inpaint(img.double().numpy(), m.numpy())
            f = img.to(device=args.device, dtype=dtype)
            mm = m.to(device=args.device, dtype=dtype)
            res = {}
            for method in ("mg", "cg"):
                def run():
                    r = diffuse(f, mm, tol=args.tol, solver=method, full_output=True)
                    if f.is_cuda:
                        torch.cuda.synchronize()
                    return r
                r, t = timed(run, args.repeats)
                res[method] = dict(seconds=t, iterations=int(r.iterations.max()),
                                   residual=float(r.residual.max()),
                                   max_error=float(np.abs(r.u.double().cpu().numpy() - u_ref).max()))
            _, t_sp_med = timed(lambda: spsolve_inpaint(img.double().numpy(), m.numpy()), max(1, args.repeats))
            row = dict(size=size, mask=kind, density=d, image=name, mg=res["mg"], cg=res["cg"],
                       spsolve=dict(seconds=t_sp_med, assembly_seconds=t_asm),
                       cg_over_mg=res["cg"]["seconds"] / res["mg"]["seconds"],
                       spsolve_over_mg=t_sp_med / res["mg"]["seconds"])
            rows.append(row)
            print(f"{size:>5} {kind:>6} {d:>5.3f} | {res['mg']['seconds']:>7.3f} {res['mg']['iterations']:>3} "
                  f"{res['mg']['max_error']:>8.1e} | {res['cg']['seconds']:>7.3f} {res['cg']['iterations']:>4} "
                  f"{res['cg']['max_error']:>8.1e} | {t_sp_med:>9.3f} ({t_asm:.3f}) | "
                  f"{row['cg_over_mg']:>6.1f} {row['spsolve_over_mg']:>6.1f}", flush=True)
    meta = dict(dtype=args.dtype, tol=args.tol, repeats=args.repeats, threads=torch.get_num_threads(),
                device=args.device, torch=torch.__version__, scipy=scipy.__version__,
                machine=platform.machine(), processor=platform.processor(),
                date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                spsolve_note="spsolve time includes the full-grid Laplacian assembly (column 'asm') "
                             "separately; its total is both")
    out = Path(args.out)
    tag = f"solver_{args.dtype}" + ("" if args.device == "cpu" else f"_{args.device.split(':')[0]}")
    write_file(out / f"{tag}.json", json.dumps(dict(meta=meta, rows=rows), indent=1))
    lines = [f"# Diffusion inpainting solvers ({args.dtype}, tol {args.tol:g}, {args.device}, "
             f"{meta['threads']} thread(s), {meta['date']})", "",
             "`python benchmarks/inpaint_solver.py " + " ".join(sys.argv[1:] if argv is None else argv) + "`", "",
             "| size | mask | density | mg s | mg it. | mg max err | cg s | cg it. | cg max err | spsolve s | "
             "assembly s "
             "| cg / mg | spsolve / mg |", "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['size']} | {r['mask']} | {r['density']:g} | {r['mg']['seconds']:.3f} | "
                     f"{r['mg']['iterations']} | "
                     f"{r['mg']['max_error']:.1e} | {r['cg']['seconds']:.3f} | {r['cg']['iterations']} | "
                     f"{r['cg']['max_error']:.1e} | {r['spsolve']['seconds']:.3f} | "
                     f"{r['spsolve']['assembly_seconds']:.3f} | {r['cg_over_mg']:.1f} | {r['spsolve_over_mg']:.1f} |")
    write_file(out / f"{tag}.md", "\n".join(lines) + "\n")
    print(f"wrote {out / (tag + '.json')} and {out / (tag + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
