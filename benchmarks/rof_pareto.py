"""rof's accuracy-time curve against scikit-image's, point by point (results page "Speed and accuracy").

Maintained.  The noisy photographs of rof_defaults.py.  scikit-image: ``denoise_tv_chambolle`` at its default and
at ``max_num_iter`` 50 to 3200 with ``eps=0``; pdeflow: ``rof`` at ``accuracy`` 0.1 to 1e-6 and ``tol`` 1e-6 to
1e-8.  A scikit-image point is dominated where a pdeflow call has a smaller largest error (against float64 at a
relative gap of ``--ref-tol``, over the range) in no more CPU time (one thread, best of ``--repeats`` under a second).
Writes ``table.md`` (per point, the cheapest pdeflow call below its error) and ``curves.json``.  Usage::

    python benchmarks/rof_pareto.py --sizes 256 512 --lams 0.02 0.1 0.3 0.5 --ref-cache runs/rof_refs
    python benchmarks/rof_pareto.py --sizes 2048 --lams 0.02 0.1 --tols 1e-6 --ref-cache runs/rof_refs
    python benchmarks/rof_pareto.py --smoke        # one small case (the test suite runs this)
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from _results import add_output_args, open_out
from pdeflow.tv import rof
from rof_defaults import label, noisy_photo, reference, shape_arg

SKIMAGE_ITERS = (50, 100, 200, 400, 800, 1600, 3200)
# eight to a decade down to 1e-3 (where a few iterations more or less change the error most), then four
ACCURACIES = tuple(float(a) for a in np.round(np.r_[0.1 * 10 ** (-np.arange(16) / 8), 1e-3 * 10 ** (-np.arange(13) / 4)], 9))
TOLS = (1e-6, 1e-7, 1e-8)


def best(fn, repeats):
    """(result, smallest CPU time) of ``fn`` over ``repeats`` calls, one call where the first takes a second."""
    times, out = [], None
    for _ in range(repeats):
        t = time.process_time()
        out = fn()
        times.append(time.process_time() - t)
        if times[-1] > 1.0:
            break
    return out, min(times)


def curves(g, lam, ref, repeats, skimage_iters, accuracies, tols):
    """The two curves as lists of (name, CPU s, largest error over the range)."""
    gt = torch.from_numpy(g)
    sk = [("default", lambda: denoise_tv_chambolle(g, weight=lam))]
    sk += [(f"{k} it.", lambda k=k: denoise_tv_chambolle(g, weight=lam, max_num_iter=k, eps=0))
           for k in skimage_iters]
    pf = [(f"accuracy={a:g}", lambda a=a: rof(gt, lam, accuracy=a).numpy()) for a in accuracies]
    pf += [(f"tol={t:g}", lambda t=t: rof(gt, lam, tol=t).numpy()) for t in tols]
    span = float(g.max() - g.min())
    return [[(name, t, float(np.abs(u - ref).max()) / span) for name, (u, t) in
             ((name, best(fn, repeats)) for name, fn in calls)] for calls in (sk, pf)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=shape_arg, nargs="+", default=[(256, 256), (512, 512)])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.02, 0.1, 0.3, 0.5])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tols", type=float, nargs="*", default=list(TOLS),
                    help="the tol calls on pdeflow's curve (default %(default)s; at 2048 px and up 1e-8 costs about "
                         "as much as the reference)")
    ap.add_argument("--ref-cache", type=Path, default=None, help="folder keeping the references (rof_defaults.py)")
    ap.add_argument("--ref-tol", type=float, default=1e-9,
                    help="the references' relative gap (default %(default)s)")
    ap.add_argument("--min-accuracy", type=float, default=0.0,
                    help="pdeflow's curve from accuracy 0.1 down to this (large images: the smallest take minutes)")
    ap.add_argument("--smoke", action="store_true", help="64 px, lam 0.1, short curves, one repeat")
    add_output_args(ap, "rof_pareto")
    args = ap.parse_args(argv)
    grid = (SKIMAGE_ITERS, tuple(a for a in ACCURACIES if a >= args.min_accuracy), tuple(args.tols))
    if args.smoke:
        args.sizes, args.lams, args.repeats, grid = [(64, 64)], [0.1], 1, ((50,), (0.1, 1e-3), (1e-6,))
    out = open_out(args, argv)
    torch.set_num_threads(1)
    rows = ["| size | lam | scikit-image | CPU s | error | cheapest pdeflow call below it | CPU s | error | ratio |",
            "|---|---|---|---|---|---|---|---|---|"]
    won = total = 0
    plotted = []
    for shape in args.sizes:
        g = noisy_photo(shape)
        for lam in args.lams:
            ref = reference(torch.from_numpy(g), lam, args.ref_tol, args.ref_cache, 10 ** 4)
            sk, pf = curves(g, lam, ref, args.repeats, *grid)
            plotted.append({"size": label(shape), "lam": lam, "skimage": sk, "pdeflow": pf})
            for name, t, e in sk:
                c = min((p for p in pf if p[2] < e), key=lambda p: p[1], default=None)
                total += 1
                won += c is not None and c[1] <= t
                tail = "- | - | - | -" if c is None else f"{c[0]} | {c[1]:.4f} | {c[2]:.1e} | {c[1] / t:.2f}"
                rows.append(f"| {label(shape)} | {lam:g} | {name} | {t:.4f} | {e:.1e} | {tail} |")
                print(rows[-1], flush=True)
    rows.append(f"\nDominated: {won} of {total} scikit-image points.")
    print(rows[-1])
    (out / "table.md").write_text("\n".join(rows) + "\n")
    (out / "curves.json").write_text(json.dumps(plotted))


if __name__ == "__main__":
    sys.exit(main())
