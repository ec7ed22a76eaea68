"""rof at loose accuracies against scikit-image's default (results page "Speed and accuracy", "The fast end").

The noisy photograph of rof_defaults.py; CPU s (one thread, best of --repeats) and the largest error against
rof(float64, tol=1e-9) over the range; ratio: time over scikit-image's.  Usage: rof_fast_end.py [--smoke]

Maintained. The test suite runs it with --smoke.
"""
import argparse
import sys
import time

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from _results import add_output_args, open_out
from pdeflow.tv import rof
from rof_defaults import noisy_photo


def best(fn, k):
    ts = []
    for _ in range(k):
        t = time.process_time()
        out = fn()
        ts.append(time.process_time() - t)
    return out, min(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.02, 0.1, 0.3])
    ap.add_argument("--accuracies", type=float, nargs="+", default=[0.1, 0.05, 0.02, 0.01])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="64 px, lam 0.1, one repeat")
    add_output_args(ap, "rof_fast_end")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.lams, args.accuracies, args.repeats = [64], [0.1], [0.1, 0.01], 1
    out = open_out(args, argv)
    torch.set_num_threads(1)
    rows = ["| size | lam | call | CPU s | max error | ratio |", "|---|---|---|---|---|---|"]
    for n in args.sizes:
        g = noisy_photo(n)
        span = float(g.max() - g.min())
        for lam in args.lams:
            ref = rof(torch.from_numpy(g).double(), lam, tol=1e-9, max_iter=10 ** 6).numpy()
            calls = [("skimage default", lambda: denoise_tv_chambolle(g, weight=lam))]
            calls += [(f"accuracy={a:g}", lambda a=a: rof(torch.from_numpy(g), lam, accuracy=a).numpy())
                      for a in args.accuracies]
            t0 = None
            for name, fn in calls:
                u, t = best(fn, args.repeats)
                t0 = t0 or t      # scikit-image's, first
                rows.append(f"| {n} | {lam:g} | {name} | {t:.4f} | {np.abs(u - ref).max() / span:.1e} | {t / t0:.1f} |")
                print(rows[-1], flush=True)
    (out / "table.md").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    sys.exit(main())
