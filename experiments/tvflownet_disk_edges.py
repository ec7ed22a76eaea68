"""Where a TVflowNET model errs on a flat disk: at the edge or inside, by radius.

    python experiments/tvflownet_disk_edges.py [--model NAME_OR_PATH]

One disk of height 1 on a 64x64 zero background per radius (x5 scale, as the
paper), the bare network against the reference TV flow (implicit Euler,
dt 0.01, tol 1e-6, float64). Prints PSNR (data range 1) at each time, and at
the last time the error at the disk's centre and the largest error (which
sits on its boundary). Printed, and written to ``--out`` (log.txt; default a fresh folder under
runs/benchmarks/).

Historical. It located a TVflowNET model's error on a flat disk. Its results are kept for the record; it is
not expected to run against today's API. It still imported and parsed its options against today's API when it
was marked.
"""
from __future__ import annotations

import argparse

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow import datasets
from pdeflow.metrics import psnr
from pdeflow.tv import tv_flow
from pdeflow.tvflownet import load

SCALE = 5.0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="shipped name or model path (default: the shipped default)")
    ap.add_argument("--radii", type=float, nargs="+", default=[3, 5, 8, 12, 16])
    ap.add_argument("--times", type=float, nargs="+", default=[0.1, 0.25, 0.5, 0.98])
    add_output_args(ap, "tvflownet_disk_edges", what="log.txt")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    model = load(args.model)
    print(f"radius | PSNR (dB) at t = {args.times} | at t = {args.times[-1]}: |error| at the centre, max |error|")
    for r in args.radii:
        x = datasets.disk(64, r, height=1.0).reshape(1, 1, 64, 64) * SCALE
        ref = tv_flow(x.double(), args.times, dt=0.01, tol=1e-6).float()
        scores = []
        with torch.no_grad():
            for k, t in enumerate(args.times):
                u, _ = model(x, torch.tensor([t]))
                scores.append(float(psnr(u / SCALE, ref[k] / SCALE, data_range=1)))
        err = (u - ref[-1]).abs()[0, 0] / SCALE
        print(f"{r:6g} | " + " ".join(f"{s:5.1f}" for s in scores)
              + f" | centre {float(err[32, 32]):.4f}, max {float(err.max()):.4f}")


if __name__ == "__main__":
    main()
