"""The error feedback of the mask network on the analytic density alone: how much it lowers the MSE, by gamma.

An untrained :class:`~pdeflow.inpaint.learned.masknet.MaskNet` (zero corrections) gives the analytic mask
(computed in float32: up to a few dithering ties); its ``with_feedback(gamma)`` copy inpaints that mask, and dithers the analytic density times
``E ** gamma`` (``E`` the first inpainting's smoothed squared error over its local mean) with the same
thresholds. This script runs it for each ``--gammas`` value on centre crops of the selection photos (the
``lomiri`` pool, never the held-out ``mate-nature`` photos) and prints the mean MSE, MAE (0-255 scale) and
SSIM of diffusion inpainting against the analytic mask's. It chose the starting ``gamma`` of the shipped
``masknet-20-feedback`` (docs/results/inpaint.md)::

    OMP_NUM_THREADS=1 python experiments/inpaint_feedback_gamma.py --crop 512 --limit 4 --density 0.2 \\
        --gammas 0.1 0.2 0.35 0.5 --out DIR

Historical. It chose the mask network's error-feedback gamma. Its results are kept for the record; it is not
expected to run against today's API. It still imported and parsed its options against today's API when it was
marked.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent / "benchmarks"))   # after experiments/: _results is experiments/_results.py
from _results import add_output_args, open_out, write_file  # noqa: E402  (experiments/_results.py)
from inpaint_masks_4k import centre_crop, load_grey, photos, quality  # noqa: E402  (benchmarks/inpaint_masks_4k.py)
from pdeflow.inpaint import MaskNet, analytic_mask, learned_mask  # noqa: E402
from pdeflow.inpaint.masks.analytic import analytic_sigma  # noqa: E402

FOLDER = HERE.parent / ".data" / "photos" / "lomiri"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=FOLDER, help="the selection photos")
    ap.add_argument("--crop", type=int, default=512, help="centre crops of N x N at native resolution")
    ap.add_argument("--limit", type=int, default=4, help="the first N photos (sorted)")
    ap.add_argument("--density", type=float, default=0.2)
    ap.add_argument("--gammas", nargs="+", type=float, default=[0.1, 0.2, 0.35, 0.5])
    add_output_args(ap, "inpaint_feedback_gamma", what="feedback-gamma.json, feedback-gamma.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    d = args.density
    base = MaskNet(1, d, sigma=analytic_sigma(d)).eval()          # untrained: the analytic mask
    rows = []
    for p in photos(args.folder, args.limit):
        f = centre_crop(load_grey(p), args.crop)
        # zero corrections: the analytic mask (computed in float32 here: a few ties of the dithering may differ)
        a = learned_mask(f, d, model=base)
        same = float((a * analytic_mask(f, d, sigma=analytic_sigma(d))).sum() / a.sum())
        rows.append({"photo": p.name, "gamma": None, "shared_with_analytic_mask": same, **quality(f, a)})
        for g in args.gammas:
            rows.append({"photo": p.name, "gamma": g, **quality(f, learned_mask(f, d, model=base.with_feedback(g)))})
        print(json.dumps(rows[-1]), flush=True)
    lines = [f"# Error feedback on the analytic density ({args.folder.name}, {args.limit} photos, {args.crop} px "
             f"centre crops, {d:.0%})", "", "| gamma | MSE | MAE | SSIM | MSE / analytic |", "|---|---|---|---|---|"]
    ref = [r["mse"] for r in rows if r["gamma"] is None]
    for g in [None, *args.gammas]:
        rs = [r for r in rows if r["gamma"] == g]
        mse, mae, ssim = (sum(r[k] for r in rs) / len(rs) for k in ("mse", "mae", "ssim"))
        lines.append(f"| {'analytic' if g is None else g} | {mse:.4f} | {mae:.4f} | {ssim:.5f} | "
                     f"{sum(r['mse'] for r in rs) / sum(ref):.3f} |")
    write_file(out / "feedback-gamma.json", json.dumps({"args": vars(args) | {"folder": str(args.folder),
                                                                                "out": str(args.out)},
                                                         "rows": rows}, indent=1) + "\n")
    write_file(out / "feedback-gamma.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
