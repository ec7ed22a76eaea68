"""The fast end of the curve: ``rof`` at loose accuracies against scikit-image's default.

Maintained.  A noisy photograph (``rof_defaults.py``'s: the astronaut, grey, resized, Gaussian noise of
sigma 0.08, float32) per size and ``lam``: scikit-image's ``denoise_tv_chambolle(g, weight=lam)`` and
``pdeflow.rof(g, lam, accuracy=a)`` for each ``a``: CPU time (``time.process_time``, one thread, best of
``--repeats``) and the largest error against ``rof(float64, tol=1e-9)``, as a fraction of the range.  ``ratio``
is pdeflow's time over scikit-image's, measured in the same run.

Usage::

    python benchmarks/rof_fast_end.py
    python benchmarks/rof_fast_end.py --smoke
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage.restoration import denoise_tv_chambolle  # noqa: E402

from _results import add_output_args, open_out  # noqa: E402
from pdeflow.tv import rof  # noqa: E402
from rof_defaults import noisy_photo  # noqa: E402


def best(fn, repeats: int):
    """``(result, least CPU seconds)`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        out = fn()
        times.append(time.process_time() - t)
    return out, min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.02, 0.1, 0.3])
    ap.add_argument("--accuracies", type=float, nargs="+", default=[0.1, 0.05, 0.02, 0.01])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="one small case, one repeat")
    add_output_args(ap, "rof_fast_end", what="table.md")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.lams, args.accuracies, args.repeats = [64], [0.1], [0.1, 0.01], 1
    out = open_out(args, argv)
    torch.set_num_threads(1)
    rows = ["| size | lam | method | CPU s | max error / range | time / skimage |", "|---|---|---|---|---|---|"]
    for n in args.sizes:
        g32 = noisy_photo(n)
        g = torch.from_numpy(g32)
        span = float(g32.max() - g32.min())
        for lam in args.lams:
            ref = rof(g.double(), lam, tol=1e-9, max_iter=10 ** 6).numpy()
            sk, t_sk = best(lambda: denoise_tv_chambolle(g32, weight=lam), args.repeats)
            rows.append(f"| {n} | {lam:g} | skimage default | {t_sk:.4f} | {np.abs(sk - ref).max() / span:.1e} | 1 |")
            print(rows[-1], flush=True)
            for a in args.accuracies:
                u, t = best(lambda: rof(g, lam, accuracy=a), args.repeats)
                err = np.abs(u.numpy() - ref).max() / span
                rows.append(f"| {n} | {lam:g} | accuracy={a:g} | {t:.4f} | {err:.1e} | {t / t_sk:.1f} |")
                print(rows[-1], flush=True)
    (out / "table.md").write_text("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
