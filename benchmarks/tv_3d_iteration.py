"""Per-iteration CPU time of 3-D ROF: pdeflow ``rof(ndim=3)`` (fgp, chambolle) against scikit-image's
``denoise_tv_chambolle`` on the same volume (float64, one thread), side by side in one run.

Each solver runs ``n1`` and then ``n2`` iterations with no stopping (scikit-image with ``eps=0``; ``rof``
with one duality-gap check at the end, ``check_every = max_iter``); the per-iteration time is
``(t(n2) - t(n1)) / (n2 - n1)``, which removes the set-up and the final gap.  CPU time is
``time.process_time``, the best of ``--repeat`` rounds that interleave the three solvers.

Usage::

    python benchmarks/tv_3d_iteration.py --sizes 64 128 --out benchmarks/results/tv_3d/iteration

Historical. It timed 3-D ROF iterations against scikit-image when ndim=3 was added. Its results are kept for
the record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from _results import add_output_args, open_out, write_file
from pdeflow.tv import rof


def cpu(fn):
    t = time.process_time()
    fn()
    return time.process_time() - t


def per_iteration(runs: dict, n1, n2, repeat) -> dict:
    """ms per iteration of each ``runs[name](k)`` (k iterations): rounds interleave the solvers, so that a
    change of the machine's load hits them alike; the fastest of the rounds counts for each length."""
    best = {(name, k): float("inf") for name in runs for k in (n1, n2)}
    for _ in range(repeat):
        for name, run in runs.items():
            for k in (n1, n2):
                best[name, k] = min(best[name, k], cpu(lambda: run(k)))
    return {name: 1e3 * (best[name, n2] - best[name, n1]) / (n2 - n1) for name in runs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--iters", type=int, nargs=2, default=[10, 30], metavar=("N1", "N2"))
    ap.add_argument("--repeat", type=int, default=5)
    add_output_args(ap, "tv_3d_iteration", what="iteration.json, iteration.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # rof warns that it stopped at max_iter short of tol: intended here
    n1, n2 = args.iters
    rows = []
    for n in args.sizes:
        f = np.random.default_rng(0).random((n, n, n))
        ft = torch.from_numpy(f)
        runs = {"skimage": lambda k: denoise_tv_chambolle(f, weight=args.lam, eps=0.0, max_num_iter=k)}
        for method in ("fgp", "chambolle"):
            runs[method] = lambda k, m=method: rof(ft, args.lam, ndim=3, method=m, tol=1e-300, max_iter=k,
                                                   check_every=k)
        ms = per_iteration(runs, n1, n2, args.repeat)
        row = {"size": n, "skimage_ms": ms["skimage"]}
        for method in ("fgp", "chambolle"):
            row[f"{method}_ms"] = ms[method]
            row[f"{method}_over_skimage"] = row[f"{method}_ms"] / row["skimage_ms"]
        rows.append(row)
        print(f"{n}^3: per iteration skimage {row['skimage_ms']:.1f} ms, rof fgp {row['fgp_ms']:.1f} ms "
              f"({row['fgp_over_skimage']:.2f}x), rof chambolle {row['chambolle_ms']:.1f} ms "
              f"({row['chambolle_over_skimage']:.2f}x)", flush=True)
    write_file(out / "iteration.json", json.dumps({"torch_threads": torch.get_num_threads(), "iters": [n1, n2],
                                                   "rows": rows}, indent=2) + "\n")
    lines = ["# 3-D ROF: CPU time per iteration, pdeflow `rof(ndim=3)` vs scikit-image `denoise_tv_chambolle`",
             "", f"Uniform random volume, float64, one thread, lam = weight = {args.lam}; "
             f"(t({n2} it.) - t({n1} it.)) / {n2 - n1}, best of {args.repeat} interleaved rounds.", "",
             "| size | skimage ms/it | rof fgp ms/it | fgp / skimage | rof chambolle ms/it | chambolle / skimage |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['size']}^3 | {r['skimage_ms']:.1f} | {r['fgp_ms']:.1f} | {r['fgp_over_skimage']:.2f} | "
              f"{r['chambolle_ms']:.1f} | {r['chambolle_over_skimage']:.2f} |" for r in rows]
    write_file(out / "iteration.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
