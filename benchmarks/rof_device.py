"""ROF's default (mixed precision) against the previous release's float64 default on one device (e.g. a GPU).

Maintained.  A noisy photograph (float32, sigma 0.08) at each size, each ``lam``: wall time of
``rof(g, lam)`` (certified RMS error <= 2.5e-4 of the range), ``rof(g, lam, tol=1e-6)`` (exact),
``rof(g, lam, tol=1e-6, precision="float64")`` (the previous default) and ``precision="input"``,
each after one warm-up call, with the device synchronised; the largest error against a float64 solve
to a relative gap of 1e-9, divided by the image's range.

Usage::

    python benchmarks/rof_device.py --device cuda --sizes 2048 4096
    python benchmarks/rof_device.py --smoke          # CPU, one small case (the test suite runs this)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import torch

from _results import add_output_args, open_out
from pdeflow.tv import rof
from rof_defaults import noisy_photo


def wall(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.05, 0.2])
    ap.add_argument("--smoke", action="store_true", help="one small case")
    add_output_args(ap, "rof_device")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    if args.smoke:
        args.sizes, args.lams = [48], [0.1]
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    calls = {"default": {}, "exact (tol 1e-6)": {"tol": 1e-6},
             "before: float64, tol 1e-6": {"tol": 1e-6, "precision": "float64"},
             "before: input, tol 1e-6": {"tol": 1e-6, "precision": "input"}}
    print(f"device: {name}")
    print("| size | lam | " + " | ".join(calls) + " |")
    print("|---" * (len(calls) + 2) + "|")
    rows = []
    for n in args.sizes:
        g = torch.from_numpy(noisy_photo(n)).to(device)
        rng = float(g.max() - g.min())
        for lam in args.lams:
            ref = rof(g.double(), lam, tol=1e-9, max_iter=10 ** 6)
            row = {"size": n, "lam": lam, "device": name}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")         # precision="input" may stop at float32's floor
                for label, kw in calls.items():
                    rof(g[:64, :64], lam, **kw)       # warm-up (kernels, allocator)
                    u, secs = wall(lambda: rof(g, lam, **kw), device)
                    row[label] = (secs, float((u.double() - ref).abs().max()) / rng)
            rows.append(row)
            print(f"| {n} | {lam:g} | " + " | ".join(f"{row[c][0]:.3f} s, {row[c][1]:.1e}" for c in calls) + " |",
                  flush=True)
    (out / "rof_device.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
