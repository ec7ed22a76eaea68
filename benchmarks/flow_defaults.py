"""tv_flow, spectral_tv and TVflowNET's reference at their defaults, against the previous release's calls.

Maintained.  A grey photograph crop (float32 in [0, 1]):

* ``tv_flow``: u at t = 0.05 and 0.1 with dt = 0.01 (10 implicit steps); default
  (``accuracy=1e-3``, mixed precision) against the previous default (``tol=3e-6,
  precision="float64"``);
* ``spectral_tv``: the README's settings (dt = 0.01, 30 steps); default against the previous
  default (``tol=1e-6, precision="float64"``); errors of the frames and of the bands ``phi_k dt``;
* TVflowNET's reference (``pdeflow.evaluate``'s ``reference_flow`` call: 5 x the image, dt = 0.01,
  tol = 1e-5, ten steps): mixed precision (now) against float64 iterations (before).

Errors are the largest absolute difference to the same call solved to a relative gap of 1e-9 in
float64, divided by the image's range (the bands: by the largest |phi_k dt|).  CPU time from
``time.process_time``, single-threaded, one run each.

Usage::

    python benchmarks/flow_defaults.py --size 256
    python benchmarks/flow_defaults.py --smoke        # a small crop (the test suite runs this)
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from _results import add_output_args, open_out, timed
from pdeflow.datasets import builtin_image
from pdeflow.tv import spectral_tv, tv_flow


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--smoke", action="store_true", help="a 16 px crop, 6 spectral steps, a looser reference")
    add_output_args(ap, "flow_defaults")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    n = 16 if args.smoke else args.size
    steps = 6 if args.smoke else 30                   # spectral_tv's steps
    ref_tol = 1e-7 if args.smoke else 1e-9
    f = builtin_image("skimage/camera")[:, 100:100 + n, 150:150 + n].contiguous()
    rng = float(f.max() - f.min())
    rows = []

    def row(task, now, before, ref, scale):
        (u1, s1), (u0, s0) = now, before
        r = {"task": task, "now": s1, "before": s0, "speed-up": s0 / s1,
             "error now": float((u1.double() - ref).abs().max()) / scale,
             "error before": float((u0.double() - ref).abs().max()) / scale}
        rows.append(r)
        print(f"| {task} | {s0:.2f} s, {r['error before']:.1e} | {s1:.2f} s, {r['error now']:.1e} | "
              f"{r['speed-up']:.1f}x |", flush=True)

    print(f"grey crop {n} x {n}, CPU s, max error / range")
    print("| task | before | now | speed-up |\n|---|---|---|---|")
    times = [0.05, 0.1]
    ref = tv_flow(f.double(), times, dt=0.01, tol=ref_tol, max_iter=10 ** 6)
    row("tv_flow, 10 steps", timed(lambda: tv_flow(f, times, dt=0.01)),
        timed(lambda: tv_flow(f, times, dt=0.01, tol=3e-6, precision="float64")), ref, rng)

    def frames_and_bands(s):
        return s.phi * s.dt

    sref = spectral_tv(f.double(), dt=0.01, n_steps=steps, tol=ref_tol, max_iter=10 ** 6)
    bref = frames_and_bands(sref)
    (s1, t1), (s0, t0) = (timed(lambda: spectral_tv(f, dt=0.01, n_steps=steps)),
                          timed(lambda: spectral_tv(f, dt=0.01, n_steps=steps, tol=1e-6, precision="float64")))
    row(f"spectral_tv (dt 0.01, {steps} steps): bands phi_k dt", (frames_and_bands(s1), t1), (frames_and_bands(s0), t0),
        bref, float(bref.abs().max()))

    x = 5 * f
    idx = [1, 5, 10]
    rref = tv_flow(x.double(), [k * 0.01 for k in idx], dt=0.01, tol=ref_tol, max_iter=10 ** 6)
    row("TVflowNET reference (5 x image, dt 0.01, tol 1e-5)",
        timed(lambda: tv_flow(x, [k * 0.01 for k in idx], dt=0.01, tol=1e-5)),
        timed(lambda: tv_flow(x, [k * 0.01 for k in idx], dt=0.01, tol=1e-5, precision="float64")), rref, 5 * rng)
    (out / "flow_defaults.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
