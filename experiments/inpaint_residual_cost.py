"""Cost of the residual inpainter's network R at 64x64, batch 16, one CPU thread (choosing its width).

Times a training step's share of R (forward + backward, float32) for several U-Net widths, beside the
diffusion solve it corrects (float64, 10 % analytic mask, tol 1e-5), and prints the parameter counts
and the ratio R / diffusion (also written to ``--out``: log.txt, default a fresh folder under
runs/benchmarks/)::

    OMP_NUM_THREADS=1 python experiments/inpaint_residual_cost.py

Historical. It chose the width of the residual inpainter's network. Its results are kept for the record; it is
not expected to run against today's API. It still imported and parsed its options against today's API when it
was marked.
"""
from __future__ import annotations

import argparse
import time

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow import datasets as pdata
from pdeflow.inpaint.diffusion import diffuse
from pdeflow.inpaint.learned.residual import ResidualInpainter
from pdeflow.inpaint.masks.analytic import analytic_mask

WIDTHS = [(8, 16, 32), (12, 24, 48), (16, 32, 64), (24, 48, 96)]


def best_of(fn, n=5):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), sorted(ts)[len(ts) // 2]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(ap, "inpaint_residual_cost", what="log.txt")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    f = pdata.random_crops(pdata.builtin_pool("train", kind="photo"), 16, 64, seed=0).double()
    b = analytic_mask(f, 0.1)
    t_diff = best_of(lambda: diffuse(f, b, tol=1e-5))
    u = diffuse(f, b, tol=1e-5)
    print(f"diffuse (float64, 10 %, tol 1e-5), batch 16: min {1e3 * t_diff[0]:.0f} ms, median {1e3 * t_diff[1]:.0f} ms")
    print("| widths | parameters | R fwd+bwd min (ms) | median (ms) | R / diffuse |")
    print("|---|---|---|---|---|")
    for w in WIDTHS:
        torch.manual_seed(0)
        net = ResidualInpainter(1, widths=w)
        torch.nn.init.normal_(net.net.out.weight, std=0.01)   # a non-zero last layer: realistic backward

        def step():
            r = net.residual(u, b, f)
            (r.float() ** 2).mean().backward()

        t = best_of(step)
        n = sum(p.numel() for p in net.parameters())
        print(f"| {w} | {n} | {1e3 * t[0]:.0f} | {1e3 * t[1]:.0f} | {t[1] / t_diff[1]:.2f} |")


if __name__ == "__main__":
    main()
