"""The default scale of Gaussian-weighted Shepard inpainting (``pdeflow.inpaint.operators.shepard.SIGMA``).

Maintained. Runs with ``--smoke`` here (one crop, one density).

Grey centre crops (``--crop`` px) of the built-in training images (``builtin_pool("train")``, never the test
split); for each scale ``--sigmas`` and density ``--densities``, a mask densified for Shepard inpainting at that
scale (``densify_mask(operator="shepard")``, its solve at that scale), then the PSNR of Shepard inpainting from it;
homogeneous diffusion from its own densified mask as the reference row. Writes ``sigma.md`` (the table)::

    OMP_NUM_THREADS=1 python experiments/shepard_sigma.py
    OMP_NUM_THREADS=1 python experiments/shepard_sigma.py --smoke --out /tmp/ss
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent / "benchmarks"))

from _results import add_output_args, open_out, write_text  # noqa: E402  (experiments/_results.py)
from pdeflow.datasets import builtin_pool  # noqa: E402
from pdeflow.inpaint import densify_mask, inpaint  # noqa: E402
from pdeflow.inpaint.operators import OPERATORS, shepard  # noqa: E402
from pdeflow.metrics import psnr  # noqa: E402
from pdeflow.reporting import md_table  # noqa: E402


def crops(n: int, size: int) -> dict[str, torch.Tensor]:
    """The first ``n`` built-in training images (sorted by name), grey, centre-cropped to ``size``, float64."""
    pool = builtin_pool("train")
    out = {}
    for name in sorted(pool)[:n]:
        f = pool[name].double()
        H, W = f.shape[-2:]
        s = min(size, H, W)
        out[name] = f[..., (H - s) // 2:(H - s) // 2 + s, (W - s) // 2:(W - s) // 2 + s]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4, help="built-in training images (default 4)")
    ap.add_argument("--crop", type=int, default=128, help="crop side in pixels (default 128)")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--smoke", action="store_true", help="one 32 px crop, one density")
    add_output_args(ap, "shepard_sigma", what="sigma.md")
    args = ap.parse_args(argv)
    if args.smoke:
        args.images, args.crop, args.densities = 1, 32, [0.1]
    out = open_out(args, argv)
    torch.set_num_threads(1)
    images = crops(args.images, args.crop)
    base = OPERATORS["shepard"]
    rows = []
    for d in args.densities:
        ref = [float(psnr(inpaint(f, densify_mask(f, d)), f)) for f in images.values()]
        rows.append(["diffusion", "", f"{d:g}"] + [f"{p:.2f}" for p in ref])
        for s in args.sigmas:
            def solve(f4, m, *, u0=None, tol=1e-3, s=s):
                return shepard.solve_unchecked(f4, m, sigma=s)

            OPERATORS["shepard"] = dataclasses.replace(base, solve=solve)   # densification at this scale
            try:
                got = [float(psnr(inpaint(f, densify_mask(f, d, operator="shepard"), "shepard", sigma=s), f))
                       for f in images.values()]
            finally:
                OPERATORS["shepard"] = base
            rows.append(["shepard", f"{s:g}", f"{d:g}"] + [f"{p:.2f}" for p in got])
    text = md_table(["operator", "sigma", "density", *images], rows)
    print(text)
    write_text(out / "sigma.md", text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
