"""Speed of pdeflow's heat IELs against the official code's grouped convolution, side by side.

pdeflow builds the zero-boundary heat IEL from ``pdeflow.ops`` (zero pad, ``div(grad)``, crop);
the official implementation (cyliu111/Inverse-Evolution-Layers-Segmentation) applies
``x - dt * conv2d(x, laplacian/4, padding=1, groups=C)``. Both give the same numbers (checked
here, and in tests/iel/test_iel_layers.py). Timed: forward + backward of 30 layers on a batch of
2-class logits, the setting of a training step; the ratio is official / pdeflow (> 1: pdeflow faster).
Printed, and written to ``--out`` (log.txt; default a fresh folder under runs/benchmarks/).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/iel_layers.py [--size 128] [--batch 8] [--repeat 5]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/iel_layers.py --smoke   # 8 px, 2 layers: seconds

Maintained. It times today's ``pdeflow.iel`` against the official layers; the test suite runs it with
``--smoke``.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from _results import add_output_args, open_out  # benchmarks/_results.py
from pdeflow.iel import official_heat_iel


def official(x: torch.Tensor, dt: float, steps: int) -> torch.Tensor:
    C = x.shape[1]
    k = torch.zeros(3, 3, dtype=x.dtype)
    k[0, 1] = k[1, 0] = k[1, 2] = k[2, 1] = 0.25
    k[1, 1] = -1.0
    k = k.expand(C, 1, 3, 3)
    for _ in range(steps):
        x = x - dt * F.conv2d(x, k, padding=1, groups=C)
    return x


def timed(fn, x, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        y = x.detach().clone().requires_grad_(True)
        t0 = time.perf_counter()
        fn(y).square().mean().backward()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="8 px, batch 1, 2 layers, 1 repeat: a check that it runs")
    add_output_args(p, "iel_layers", what="log.txt")
    a = p.parse_args(argv)
    open_out(a, argv)
    if a.smoke:
        a.size, a.batch, a.steps, a.repeat = 8, 1, 2, 1
    torch.set_num_threads(a.threads)
    x = torch.randn(a.batch, 2, a.size, a.size, generator=torch.Generator().manual_seed(0))
    iel = official_heat_iel(0.1, a.steps)
    err = (iel(x.double()) - official(x.double(), 0.1, a.steps)).abs().max().item()
    t_pdeflow = timed(iel, x, a.repeat)
    t_official = timed(lambda y: official(y, 0.1, a.steps), x, a.repeat)
    print(f"heat IELs, {a.steps} layers, logits {a.batch}x2x{a.size}x{a.size}, float32, forward+backward, "
          f"{a.threads} thread(s), best of {a.repeat}; torch {torch.__version__}")
    print(f"max |pdeflow - official| (float64): {err:.2e}")
    print(f"pdeflow (ops: pad, div(grad), crop): {1e3 * t_pdeflow:8.1f} ms")
    print(f"official (grouped conv2d)          : {1e3 * t_official:8.1f} ms")
    print(f"ratio official / pdeflow           : {t_official / t_pdeflow:8.2f}")


if __name__ == "__main__":
    main()
