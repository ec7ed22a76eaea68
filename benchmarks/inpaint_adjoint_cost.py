#!/usr/bin/env python
"""Cost of the gradient of diffusion inpainting: forward solve against forward + adjoint backward.

For a batch of grey 64x64 crops of the built-in test photos and masks of one density, times,
interleaved in one run (the median of ``--repeats``, one torch thread, after a warm-up):

CPU time (``time.process_time``) is reported: on a machine shared with other jobs it is the
figure that predicts CPU-hours; the wall-clock ratio is printed beside it.

* ``forward (no grad)``  -- ``pdeflow.inpaint.diffuse(f, mask)``, nothing recorded;
* ``forward (recorded)`` -- the same with ``f`` and ``mask`` requiring grad (the autograd node
  keeps the solver's multigrid hierarchy for the backward);
* ``forward + backward`` -- that, then ``loss.backward()`` for the MAE loss ``|u - f|``: one
  adjoint solve with the same operator and hierarchy, gradients for ``f`` and the mask.

Rows for binary masks (random, ``--density``) and continuous masks (the binary mask
smoothed into [0, 1]: ``c = m + 0.02 (1 - m) * r`` with r uniform), float32 and float64.
The ratio printed is (forward + backward) / forward (no grad).

    OMP_NUM_THREADS=1 python benchmarks/inpaint_adjoint_cost.py            # 64x64, batch 16, 5 %

Before the timings, the accuracy of the gradient (float64, tol 1e-13): relative error
``||grad - fd|| / ||fd||`` of the adjoint gradients in ``f`` and in the mask against central
finite differences (step 1e-6) of a dense solve of ``M(c) u = C f``, on 16x18 images (a
multigrid level below the finest) for a binary, a continuous and a mixed mask.

Writes ``adjoint_cost.md`` to ``--out`` (default a fresh folder under runs/benchmarks/; the committed one:
``--out benchmarks/results/inpaint --overwrite``).

Historical. It sized the cost of diffusion inpainting's gradient when the adjoint solve was added. Its results
are kept for the record; it is not expected to run against today's API. It still imported and parsed its
options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_text  # benchmarks/_results.py
from pdeflow import datasets
from pdeflow.inpaint import diffuse, random_mask

HERE = Path(__file__).resolve().parent


def gradient_accuracy(H: int = 16, W: int = 18, h: float = 1e-6) -> list[tuple[str, float, float]]:
    """[(mask kind, relative error of dl/df, of dl/dc)] against central differences of a dense solve."""
    import numpy as np

    from pdeflow.ops import laplacian

    n = H * W
    eye = torch.eye(n, dtype=torch.float64).reshape(n, H, W)
    Ld = laplacian(eye).reshape(n, n).T.numpy()  # column j = L e_j

    def dense(f, c):
        return np.linalg.solve(np.diag(c) - np.diag(1.0 - c) @ Ld, c * f)

    gen = torch.Generator().manual_seed(0)
    f = torch.rand(H, W, generator=gen, dtype=torch.float64)
    gw = torch.randn(H, W, generator=gen, dtype=torch.float64)
    m = random_mask((H, W), 0.1, generator=1, dtype=torch.float64)
    r = torch.rand(H, W, generator=gen, dtype=torch.float64)
    masks = {"binary": m, "continuous (0, 1)": 0.02 + 0.96 * r, "mixed 0 / 1 / (0, 1)": torch.where(r < 0.5, m, r)}
    rows = []
    for name, c in masks.items():
        ft, ct = f.clone().requires_grad_(True), c.clone().requires_grad_(True)
        (gw * diffuse(ft, ct, tol=1e-13, continuous=True)).sum().backward()
        f0, c0, g0 = f.numpy().ravel(), c.numpy().ravel(), gw.numpy().ravel()
        E = np.eye(n) * h
        fd_f = np.array([g0 @ (dense(f0 + E[i], c0) - dense(f0 - E[i], c0)) / (2 * h) for i in range(n)])
        fd_c = np.array([g0 @ (dense(f0, c0 + E[i]) - dense(f0, c0 - E[i])) / (2 * h) for i in range(n)])
        ef = np.linalg.norm(ft.grad.numpy().ravel() - fd_f) / np.linalg.norm(fd_f)
        ec = np.linalg.norm(ct.grad.numpy().ravel() - fd_c) / np.linalg.norm(fd_c)
        rows.append((name, float(ef), float(ec)))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=15)
    add_output_args(ap, "inpaint_adjoint_cost", what="adjoint_cost.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)

    acc = gradient_accuracy()
    pool = datasets.builtin_pool("test", kind="photo")
    f0 = datasets.random_crops(list(pool.values()), args.batch, args.size, generator=0)  # (B, 1, S, S)
    m0 = random_mask(tuple(f0.shape), args.density, generator=1, dtype=f0.dtype)
    r = torch.rand(f0.shape, generator=torch.Generator().manual_seed(2), dtype=f0.dtype)
    cases = {}
    for dt in (torch.float32, torch.float64):
        f, m = f0.to(dt), m0.to(dt)
        cases[("binary", dt)] = (f, m, False)
        cases[("continuous", dt)] = (f, m + 0.02 * (1 - m) * r.to(dt), True)

    def fwd(f, c, cont):
        return diffuse(f, c, tol=args.tol, continuous=cont)

    def fwd_rec(f, c, cont):
        return diffuse(f.clone().requires_grad_(True), c.clone().requires_grad_(True), tol=args.tol,
                       continuous=cont)

    def fwd_bwd(f, c, cont):
        fg, cg = f.clone().requires_grad_(True), c.clone().requires_grad_(True)
        u = diffuse(fg, cg, tol=args.tol, continuous=cont)
        (u - f).abs().mean().backward()
        return cg.grad

    kinds = {"fwd": fwd, "rec": fwd_rec, "fb": fwd_bwd}
    times = {(key, k): [] for key in cases for k in kinds}
    for key, (f, c, cont) in cases.items():  # warm-up
        for fn in kinds.values():
            fn(f, c, cont)
    iters = {key: diffuse(f, c, tol=args.tol, continuous=cont, full_output=True).iterations.float().mean()
             for key, (f, c, cont) in cases.items()}
    for _ in range(args.repeats):  # interleaved: the machine's load hits all rows alike
        for key, (f, c, cont) in cases.items():
            for k, fn in kinds.items():
                t0, c0 = time.perf_counter(), time.process_time()
                fn(f, c, cont)
                times[(key, k)].append((time.process_time() - c0, time.perf_counter() - t0))
    med = {k: statistics.median(t[0] for t in v) * 1e3 for k, v in times.items()}  # CPU ms
    wall = {k: statistics.median(t[1] for t in v) * 1e3 for k, v in times.items()}

    lines = [f"## Diffusion inpainting: forward vs forward + adjoint backward "
             f"({args.size}x{args.size}, batch {args.batch}, density {args.density:g}, tol {args.tol:g}, "
             "one torch thread)", "",
             f"`OMP_NUM_THREADS=1 python benchmarks/inpaint_adjoint_cost.py --size {args.size} --batch {args.batch} "
             f"--density {args.density:g} --tol {args.tol:g} --repeats {args.repeats}` on {datetime.date.today()}, "
             f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
             "shared with other jobs; CPU milliseconds per batch (`time.process_time`, the figure that "
             "predicts CPU-hours on a loaded machine), median of the repeats, rows timed interleaved in one run; "
             "the last column is the same ratio in wall-clock time.", "",
             "| mask | dtype | MG-CG iterations (forward, mean) | forward, no grad (ms) | forward, recorded (ms) "
             "| forward + backward (ms) | backward alone (ms) | (forward + backward) / forward | same, wall |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in cases:
        mask, dt = key
        a, b, c = med[(key, "fwd")], med[(key, "rec")], med[(key, "fb")]
        lines.append(f"| {mask} | {str(dt).replace('torch.', '')} | {float(iters[key]):.1f} | {a:.1f} | {b:.1f} "
                     f"| {c:.1f} | {c - b:.1f} | {c / a:.2f} | {wall[(key, 'fb')] / wall[(key, 'fwd')]:.2f} |")
    lines += ["", "Gradient accuracy (float64, 16x18, solver tol 1e-13): relative error "
              "`||adjoint - fd|| / ||fd||` against central differences (step 1e-6) of a dense solve of "
              "`M(c) u = C f`, all 288 pixels.", "",
              "| mask | dl/df | dl/dmask |", "|---|---|---|"]
    lines += [f"| {name} | {ef:.1e} | {ec:.1e} |" for name, ef, ec in acc]
    text = "\n".join(lines) + "\n"
    print(text)
    write_text(out / "adjoint_cost.md", text)


if __name__ == "__main__":
    main()
