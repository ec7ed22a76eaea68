#!/usr/bin/env python
"""The cost of one TVflowNET call, model against model, side by side on this machine.

Each model answers the same query: one greyscale image of ``--size`` px (a test-split photo crop in
[0, 1] times 5) at one time, ``model(u0, t)`` without gradients (the bare network, one call; the
transposition mean of ``tvflownet.flow`` doubles every row; a colour model gets the crop in each of its three
channels). The models are timed interleaved,
``--repeats`` rounds of ``--calls`` calls each, in one process and thread; the median CPU time per
call is printed with its ratio to the first model's.

    python benchmarks/tvflownet_call_cost.py unet lgd10 default --size 256 --out DIR
    python benchmarks/tvflownet_call_cost.py --smoke     # every shipped model, 32 px, one call: seconds

Maintained. It times today's shipped models; the test suite runs it with ``--smoke``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from _results import add_output_args, open_out, write_text  # benchmarks/_results.py
from pdeflow import datasets, tvflownet


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("models", nargs="*", help="shipped names, model files or run directories (default: every "
                                              "shipped model)")
    ap.add_argument("--size", type=int, nargs="+", default=[256], help="image sizes (px)")
    ap.add_argument("--time", type=float, default=0.5, help="flow time on the x5 scale")
    ap.add_argument("--calls", type=int, default=5, help="calls per model and round")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="32 px, one round of one call: a check that it runs")
    add_output_args(ap, "tvflownet_call_cost", what="tvflownet_call_cost.md")
    args = ap.parse_args(argv)
    args.models = args.models or tvflownet.shipped_models()
    if args.smoke:
        args.size, args.calls, args.repeats = [32], 1, 1
    if args.calls < 1 or args.repeats < 1:
        ap.error("--calls and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    out = open_out(args, argv)
    models = {name: tvflownet.load(name) for name in args.models}
    pool = datasets.builtin_pool("test", kind="photo")
    lines = [f"# One TVflowNET call, bare (CPU ms per call, median of {args.repeats} interleaved rounds of "
             f"{args.calls} calls, {args.threads} thread(s), t = {args.time:g} on the x5 scale)", "",
             "| size | " + " | ".join(f"`{m}`" for m in models) + " |", "|---" * (len(models) + 1) + "|"]
    for size in args.size:
        u0 = 5 * datasets.random_crops(pool, 1, size, generator=0)
        times = {name: [] for name in models}
        with torch.no_grad():
            inputs = {name: u0.expand(-1, model.in_channels, -1, -1) for name, model in models.items()}
            for name, model in models.items():                  # warm-up: allocator, kernels
                model(inputs[name], args.time)
            for _ in range(args.repeats):
                for name, model in models.items():
                    start = time.process_time()
                    for _ in range(args.calls):
                        model(inputs[name], args.time)
                    times[name].append(1e3 * (time.process_time() - start) / args.calls)
        med = {name: statistics.median(ts) for name, ts in times.items()}
        first = med[args.models[0]]
        lines.append(f"| {size} px | " + " | ".join(f"{ms:.1f} ({ms / first:.2f}x)" for ms in med.values()) + " |")
        print(lines[-1], flush=True)
    write_text(out / "tvflownet_call_cost.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
