"""Where does one implicit TV-flow step change the flux? The bound on a tiled or sparse solver.

    python experiments/flow_activity.py [--size 256] [--tile 16]

A solver that iterated only where the dual field (the flux p) changes could skip the rest of the
image. This measures how much that is at the default step (dt 0.0016, tol 3e-6): two natural test
crops x5, float32, consecutive steps at a few times; the fraction of pixels where |p_{n+1} - p_n|
exceeds a threshold, and of ``tile`` x ``tile`` tiles holding any such pixel (what a tiled solver
would still have to iterate). Printed, and written to ``--out`` (log.txt).

Historical. A one-off question about a tiled or sparse TV-flow solver, answered. Its results are kept for the
record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow.tv import tv_flow
from pdeflow.tvflownet.evaluate import natural_images


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--tile", type=int, default=16)
    ap.add_argument("--n-images", type=int, default=2)
    ap.add_argument("--dt", type=float, default=0.0016)
    ap.add_argument("--tol", type=float, default=3e-6)
    ap.add_argument("--times", type=float, nargs="+", default=[0.05, 0.5, 0.95])
    ap.add_argument("--thresholds", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    add_output_args(ap, "flow_activity", what="log.txt")
    args = ap.parse_args(argv)
    open_out(args, argv)
    if args.size % args.tile:
        raise SystemExit(f"--tile must divide --size ({args.size}), got {args.tile}")
    torch.set_num_threads(1)
    n, s, k = args.n_images, args.size, args.size // args.tile
    u0 = natural_images(s, n, seed=0).float() * 5
    print(f"{n} test crops {s}x{s} x5, float32, dt {args.dt:g}, tol {args.tol:g}: one step's change of the flux p")
    print("t | threshold | pixels with |dp| above | tiles of "
          f"{args.tile}x{args.tile} holding one | pixels with |du| above threshold * dt")
    for t0 in args.times:
        step = round(t0 / args.dt)
        u, _, p = tv_flow(u0, [step * args.dt, (step + 1) * args.dt], dt=args.dt, tol=args.tol,
                          return_ut=True, return_dual=True)
        dp = (p[1] - p[0]).norm(dim=-3)                 # (n, 1, s, s)
        du = (u[1] - u[0]).abs()
        for thr in args.thresholds:
            active = dp > thr
            tiles = active.reshape(n, 1, k, args.tile, k, args.tile).any(3).any(-1)
            print(f"{t0:g} | {thr:g} | {float(active.float().mean()):.3f} | {float(tiles.float().mean()):.3f} | "
                  f"{float((du > thr * args.dt).float().mean()):.3f}", flush=True)


if __name__ == "__main__":
    main()
