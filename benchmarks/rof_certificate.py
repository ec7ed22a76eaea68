"""What the duality-gap certificate costs: FGP's iterate error against its gap, iteration by iteration.

Maintained.  A noisy photograph (as ``rof_defaults.py``: a grey photograph resized, Gaussian noise of
sigma 0.08, float32) is solved by ``rof(g, lam, max_iter=k, precision="input")`` (FGP in float32 from a
zero dual field) for growing ``k``.  For each iterate ``u_k = g + lam div p_k`` the script prints, in
float64 against a converged reference ``u*`` (a relative gap of 1e-9):

* ``gap``: the duality gap ``P(u_k) - D(p_k)``, which the default call stops on;
* ``D* - D``: the dual suboptimality, the part of the gap that bounds the error
  (``||u_k - u*||^2 / 2 <= D* - D(p_k) <= gap``; the rest, ``P(u_k) - P*``, is the primal
  iterate's excess total variation);
* the largest and the RMS error of ``u_k``, divided by the image's range.

and the first sampled ``k`` at which (a) the largest error is at most 1e-3 of the range, (b) the RMS error is
within the default's target (2.5e-4 of the range: where an exact certificate would stop), (c) ``D* - D`` (the
sharpest bound a dual field gives, reached only with the exact primal) and (d) the gap meet that target, beside
scikit-image's default ``denoise_tv_chambolle(g, weight=lam)``: its CPU time and largest error.
CPU time from ``time.process_time``, single-threaded.

Usage::

    python benchmarks/rof_certificate.py --size 512 --lams 0.1 0.5
    python benchmarks/rof_certificate.py --smoke
"""
from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from _results import add_output_args, open_out, timed
from pdeflow.ops import div
from pdeflow.tv import duality_gap, rof
from rof_defaults import noisy_photo

ACCURACY = 2.5e-4      # the default's certified RMS error, a fraction of the range
MAX_ERROR = 1e-3       # the largest error a user can see: a quarter of an 8-bit step


def iterate(g: torch.Tensor, lam: float, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FGP's ``k``-th dual iterate (float32, from zero) and its primal, in float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # stopping at max_iter is the point here
        r = rof(g.float(), lam, tol=1e-12, max_iter=k, precision="input", full_output=True)
    p = r.p.double()
    p = p / p.pow(2).sum(2, keepdim=True).sqrt().clamp_min(1.0)   # feasible in float64
    return g + lam * div(p), p


def trace(n: int, lam: float, ks: list[int]) -> dict:
    g = torch.from_numpy(noisy_photo(n)).double().reshape(1, 1, n, n)
    span = float(g.max() - g.min())
    ref = rof(g, lam, tol=1e-9, max_iter=10 ** 6, precision="float64", full_output=True)
    gap_ref, primal_ref = duality_gap(g, ref.u.reshape(g.shape), ref.p, lam)
    d_star = float(primal_ref - gap_ref)          # D* to within the reference's gap (1e-9 relative)
    target = 0.5 * (ACCURACY * span) ** 2 * g.numel()
    rows, first = [], {}
    for k in ks:
        u, p = iterate(g, lam, k)
        gap, primal = duality_gap(g, u, p, lam)
        dual = float(primal - gap)
        err = (u - ref.u.reshape(g.shape)).abs()
        row = dict(k=k, gap=float(gap), dual_sub=d_star - dual, max_err=float(err.max()) / span,
                   rms=float(err.pow(2).mean().sqrt()) / span)
        rows.append(row)
        for name, met in (("max error <= 1e-3", row["max_err"] <= MAX_ERROR),
                          ("RMS error <= target", row["rms"] <= ACCURACY),
                          ("D* - D <= target", row["dual_sub"] <= target),
                          ("gap <= target", row["gap"] <= target)):
            if met and name not in first:
                first[name] = k
    sk, t_sk = timed(lambda: denoise_tv_chambolle(g[0, 0].float().numpy(), weight=lam))
    sk_err = float(np.abs(sk - ref.u.reshape(n, n).numpy()).max()) / span
    per_it = timed(lambda: iterate(g, lam, 100))[1] / 100
    return dict(size=n, lam=lam, target=target, rows=rows, first=first, skimage=(t_sk, sk_err), per_it=per_it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--lams", type=float, nargs="+", default=[0.1, 0.5])
    ap.add_argument("--smoke", action="store_true", help="32 px, lam 0.1, a few iterates")
    add_output_args(ap, "rof_certificate")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    n, lams = (32, [0.1]) if args.smoke else (args.size, args.lams)
    ks = [5, 10, 20] if args.smoke else [25, 50, 75, 100, 150, 200, 300, 400, 600, 800, 1200, 1600, 2400]
    summary = ["| size | lam | FGP it/s | first k: max error <= 1e-3 | RMS error <= target | D* - D <= target "
               "| gap <= target | skimage default: CPU s, max error |", "|---|---|---|---|---|---|---|---|"]
    for lam in lams:
        r = trace(n, lam, ks)
        print(f"\n{n} x {n}, lam {lam}: target gap {r['target']:.3e}")
        print(f"{'k':>6} {'gap':>10} {'D*-D':>10} {'max err':>9} {'rms':>9}")
        for row in r["rows"]:
            print(f"{row['k']:>6} {row['gap']:10.3e} {row['dual_sub']:10.3e} {row['max_err']:9.2e} {row['rms']:9.2e}")
        f = r["first"]
        cells = [str(f.get(name, f"> {ks[-1]}")) for name in
                 ("max error <= 1e-3", "RMS error <= target", "D* - D <= target", "gap <= target")]
        summary.append(f"| {n} | {lam} | {1 / r['per_it']:.0f} | " + " | ".join(cells)
                       + f" | {r['skimage'][0]:.3f} s, {r['skimage'][1]:.1e} |")
    text = "\n".join(summary)
    print("\n" + text)
    (out / "rof_certificate.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
