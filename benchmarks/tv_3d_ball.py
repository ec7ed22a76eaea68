"""The ball eigenfunction of the 3-D TV flow: measured fall rate of ``tv_flow(ndim=3)`` against the prediction.

The indicator of a ball ``S`` of radius ``r`` is an eigenfunction of the TV flow in the continuum: its height
falls at the rate ``surface / volume = 3 / r`` until it meets the background.  On the grid the prediction is
the discrete one, ``TV(1_S) / (prod(h) |S|)`` with ``TV`` the discrete TV ``prod(h) sum |grad_h u|``
(``pdeflow.ops.tv``): ``|p| <= 1`` bounds the fall of the mean over ``S`` by exactly that, and the voxelised
ball meets it only as long as its staircase surface does not round off (it is no exact discrete
eigenfunction).  For unit voxels and for anisotropic ones (CT-like, ``--spacing``), this script runs
``tv_flow`` (float64, implicit steps ``dt``, ``tol``) and prints, per time window, the measured slope of the
mean over ``S``, its relative error against the discrete prediction and against ``3 / r``, and whether mass
is conserved and TV non-increasing.

Usage::

    python benchmarks/tv_3d_ball.py --out runs/benchmarks/tv_3d_ball
    python benchmarks/tv_3d_ball.py --smoke      # a ball of radius 3, two windows: seconds

Maintained. It validates today's ``tv_flow`` in 3-D against the eigenfunction; the test suite runs it with
``--smoke``.
"""
from __future__ import annotations

import argparse
import json
import math

import torch

from _results import add_output_args, open_out, timed, write_file
from pdeflow.ops import tv
from pdeflow.tv import tv_flow


def ball(shape, r, h):
    """Indicator of the ball of radius ``r`` (length units) centred in a grid of spacing ``h``, float64."""
    axes = [(torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * hk for n, hk in zip(shape, h)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return ((z * z + y * y + x * x) <= r * r).double()


def run_case(shape, h, r, times, dt, tol) -> dict:
    b = ball(shape, r, h)
    S = b.bool()
    voxel = math.prod(h)
    rate = float(tv(b, spacing=h)) / (voxel * int(S.sum()))
    u, cpu = timed(lambda: tv_flow(b, times, dt=dt, tol=tol, spacing=h))
    m = [float(x[S].mean()) for x in u]
    windows = []
    for i in range(1, len(times)):
        slope = (m[i - 1] - m[i]) / (times[i] - times[i - 1])
        windows.append({"t0": times[i - 1], "t1": times[i], "slope": slope,
                        "rel_err_discrete": slope / rate - 1.0, "rel_err_continuum": slope / (3.0 / r) - 1.0})
    mass = u.sum((1, 2, 3))
    tvs = [float(tv(x, spacing=h)) for x in u]
    return {"shape": list(shape), "spacing": list(h), "radius": r, "voxels_in_ball": int(S.sum()),
            "rate_discrete": rate, "rate_continuum": 3.0 / r, "times": list(times), "dt": dt, "tol": tol,
            "windows": windows, "mass_rel_change": float((mass - mass[0]).abs().max() / mass[0]),
            "tv_increase": max(0.0, max(b_ - a for a, b_ in zip(tvs, tvs[1:]))),
            "met_background": m[-1] <= float(u[-1][~S].mean()), "cpu_s": cpu}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radius", type=float, default=7.0, help="ball radius in length units")
    ap.add_argument("--spacing", type=float, nargs=3, default=[2.5, 0.7, 0.7], metavar=("DZ", "DY", "DX"),
                    help="the anisotropic case's voxel spacing (the other case is unit)")
    ap.add_argument("--dt", type=float, default=0.125)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--times", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0, 1.5])
    ap.add_argument("--smoke", action="store_true", help="radius 3, times 0 0.1 0.2, tol 1e-4: a check that it runs")
    add_output_args(ap, "tv_3d_ball", what="ball.json, ball.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    if args.smoke:
        args.radius, args.times, args.tol = 3.0, [0.0, 0.1, 0.2], 1e-4
    r = args.radius
    rows = []
    for h in ((1.0, 1.0, 1.0), tuple(args.spacing)):
        # the ball plus a margin of about r on each side, in voxels
        shape = tuple(int(math.ceil(4 * r / hk)) for hk in h)
        row = run_case(shape, h, r, args.times, args.dt, args.tol)
        rows.append(row)
        print(f"spacing {h}, grid {shape}, r = {r:g}: discrete rate (surface/volume) {row['rate_discrete']:.4f}, "
              f"continuum 3/r {3 / r:.4f}; mass change {row['mass_rel_change']:.1e}, TV increase "
              f"{row['tv_increase']:.1e}, {row['cpu_s']:.1f} s", flush=True)
        for w in row["windows"]:
            print(f"  t {w['t0']:g}..{w['t1']:g}: slope {w['slope']:.4f}, vs discrete {w['rel_err_discrete']:+.2%}, "
                  f"vs 3/r {w['rel_err_continuum']:+.2%}", flush=True)
    write_file(out / "ball.json", json.dumps({"rows": rows}, indent=2) + "\n")
    lines = ["# 3-D TV flow of a ball: measured fall rate vs surface / volume", "",
             f"Ball of radius {r:g} (length units), float64, `tv_flow(spacing=h, dt={args.dt:g}, tol={args.tol:g})`; "
             "slope of the mean over the ball per time window, relative to the discrete prediction "
             "`TV(1_S) / (prod(h) |S|)` and to the continuum `3 / r`.", "",
             "| spacing | grid | discrete rate | 3/r | window | slope | vs discrete | vs 3/r |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for w in row["windows"]:
            lines.append(f"| {tuple(row['spacing'])} | {'x'.join(map(str, row['shape']))} | "
                         f"{row['rate_discrete']:.4f} | {row['rate_continuum']:.4f} | {w['t0']:g}..{w['t1']:g} | "
                         f"{w['slope']:.4f} | {w['rel_err_discrete']:+.2%} | {w['rel_err_continuum']:+.2%} |")
    lines += ["", "Mass: largest relative change " + ", ".join(f"{r_['mass_rel_change']:.1e}" for r_ in rows)
              + "; TV increase between outputs: " + ", ".join(f"{r_['tv_increase']:.1e}" for r_ in rows) + ".", ""]
    write_file(out / "ball.md", "\n".join(lines))


if __name__ == "__main__":
    main()
