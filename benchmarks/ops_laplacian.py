"""The 5-point Laplacian by size: one convolution (the former ``ops.laplacian``) against shifted slices.

``pdeflow.ops.laplacian`` takes one convolution of the padded image for tensors of at most
``LAPLACE_CONV_MAX_ELEMENTS`` elements and, above, adds the four shifted neighbours in place into ``-4 u``.
This script times, side by side in one run and one thread:

1. the operator alone, at image sizes 32-512, 1024 and 4K (3840 x 2160) and a batch of 16 at 64 x 64,
   float32 and float64: the convolution, the in-place slices, the former slices of a padded copy (a new
   tensor per term, :func:`padded_slices`) and ``laplacian`` as shipped (median of repeated calls,
   microseconds);
2. whole solves that spend their time in it, with ``laplacian`` as shipped and with the convolution at
   every size (the former behaviour, ``LAPLACE_CONV_MAX_ELEMENTS`` set to infinity for that call):
   ``diffuse`` (multigrid, 5 % random mask) on one 256 x 256 and one 512 x 512 image, and plain CG on a
   batch of 16 crops of 64 x 64 in float64 (the batched path of mask training and refinement).

    OMP_NUM_THREADS=1 python benchmarks/ops_laplacian.py --out benchmarks/results/ops_laplacian

Historical. It chose shifted slices over one convolution for the Laplacian of large images. Its results are
kept for the record; it is not expected to run against today's API. It still imported and parsed its options
against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import add_output_args, open_out  # noqa: E402
from pdeflow import ops  # noqa: E402
from pdeflow.inpaint import diffuse  # noqa: E402


@contextlib.contextmanager
def conv_threshold(value: float):
    """``ops.laplacian`` with ``LAPLACE_CONV_MAX_ELEMENTS = value`` inside the block: ``math.inf`` is the
    convolution at every size (the former ``ops.laplacian``), 0 the shifted slices at every size."""
    shipped = ops.LAPLACE_CONV_MAX_ELEMENTS
    ops.LAPLACE_CONV_MAX_ELEMENTS = value
    try:
        yield
    finally:
        ops.LAPLACE_CONV_MAX_ELEMENTS = shipped


def padded_slices(u: torch.Tensor) -> torch.Tensor:
    """The former large-tensor ``ops.laplacian``: shifted slices of the border-replicated copy, each sum a
    new tensor."""
    H, W = u.shape[-2:]
    x = u.reshape(-1, 1, H, W)
    p = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    return (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4 * x).reshape(u.shape)


def timed_with(value: float, fn) -> float:
    """:func:`median_us` of ``fn`` under :func:`conv_threshold` ``(value)``."""
    with conv_threshold(value):
        return median_us(fn)


def median_us(fn, min_seconds: float = 0.2) -> float:
    """Median time of one call in microseconds (batches of calls for at least ``min_seconds`` in all)."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > 0.02:
            break
        n *= 2
    times, t_all = [], time.perf_counter()
    while time.perf_counter() - t_all < min_seconds or len(times) < 5:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return 1e6 * statistics.median(times)


def cpu_seconds(fn, repeats: int) -> float:
    """Smallest CPU time of ``repeats`` calls (seconds)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(ap, "ops_laplacian", what="report.md")
    ap.add_argument("--repeats", type=int, default=3, help="solves per configuration (the fastest counts)")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    lines = ["# The 5-point Laplacian: convolution against shifted slices", "",
             f"Torch {torch.__version__}, one thread. `ops.LAPLACE_CONV_MAX_ELEMENTS` = "
             f"{ops.LAPLACE_CONV_MAX_ELEMENTS}.", "",
             "## The operator alone (median microseconds per call)", "",
             "| dtype | shape | convolution | slices in place | slices of a padded copy (former) | "
             "`ops.laplacian` | convolution / shipped | former slices / shipped |",
             "|---|---|---|---|---|---|---|---|"]
    shapes = [(1, 1, 32, 32), (1, 1, 64, 64), (1, 1, 128, 128), (1, 1, 256, 256), (1, 1, 512, 512),
              (1, 1, 1024, 1024), (1, 1, 2160, 3840), (16, 1, 64, 64)]
    for dtype in (torch.float64, torch.float32):
        for shape in shapes:
            u = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
            tol = 1e-12 if dtype == torch.float64 else 1e-4
            with conv_threshold(math.inf):
                by_conv = ops.laplacian(u)
            with conv_threshold(0):
                by_slices = ops.laplacian(u)
            assert torch.allclose(by_conv, by_slices, atol=tol) and torch.allclose(ops.laplacian(u), by_slices, atol=tol)
            assert torch.allclose(padded_slices(u), by_slices, atol=tol)
            tc, ts = (timed_with(v, lambda: ops.laplacian(u)) for v in (math.inf, 0))
            tp = median_us(lambda: padded_slices(u))
            tl = median_us(lambda: ops.laplacian(u))
            row = (f"| {str(dtype).removeprefix('torch.')} | {shape} | {tc:.1f} | {ts:.1f} | {tp:.1f} | {tl:.1f} | "
                   f"{tc / tl:.2f}x | {tp / tl:.2f}x |")
            print(row, flush=True)
            lines.append(row)

    lines += ["", f"## Whole solves (CPU seconds, the fastest of {args.repeats})", "",
              "| solve | convolution at every size (former) | as shipped | speed-up |", "|---|---|---|---|"]

    def solves():
        for size in (256, 512):
            f = torch.rand(1, 1, size, size, generator=g)
            m = (torch.rand(1, 1, size, size, generator=g) < 0.05).float()
            yield f"diffuse, multigrid, one {size} x {size} image, float32, 5 %", lambda f=f, m=m: diffuse(f, m)
        f = torch.rand(16, 1, 64, 64, generator=g, dtype=torch.float64)
        m = (torch.rand(16, 1, 64, 64, generator=g) < 0.1).double()
        yield "diffuse, plain CG, 16 x 64 x 64, float64, 10 %", lambda: diffuse(f, m, solver="cg")

    for name, fn in solves():
        with conv_threshold(math.inf):
            t_conv = cpu_seconds(fn, args.repeats)
        t_new = cpu_seconds(fn, args.repeats)
        row = f"| {name} | {t_conv:.3f} | {t_new:.3f} | {t_conv / t_new:.2f}x |"
        print(row, flush=True)
        lines.append(row)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
