#!/usr/bin/env python
"""Biharmonic against homogeneous diffusion on sparse data, each from its own densified mask, on the held-out
photos prepared two ways: as the results page's operator comparison prepares them (each photo scaled, by area
averaging, to a shorter side of twice the crop, then a seeded random crop: ``benchmarks/inpaint_holes.py``'s
``photo_crops``) and at the photos' own resolution (a seeded random crop of the photo as stored).

Prints, per preparation and density, the mean PSNR gain of biharmonic over diffusion (dB, data range 1) with
biharmonic's result clipped to [0, 1] and unclipped, the crops where biharmonic is worse by more than 1 dB, and
the range of biharmonic's unclipped values.

    python benchmarks/biharmonic_scale.py --photos .data/photos/mate-nature --out DIR
    python benchmarks/biharmonic_scale.py --smoke     # one 64 px crop per preparation at 10 %

Maintained. The test suite runs it with ``--smoke``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_text  # benchmarks/_results.py
from inpaint_holes import DEFAULT_PHOTOS, photo_crops  # benchmarks/inpaint_holes.py: the page's crops
from pdeflow import datasets
from pdeflow.inpaint import densify_mask, inpaint
from pdeflow.io import image_files, read_image
from pdeflow.metrics import psnr


def native_crops(folder: Path | None, size: int, seed: int = 0) -> list[torch.Tensor]:
    """One seeded random ``size`` px crop of each photo of ``folder`` at its own resolution, grey (the built-in
    TEST photos when ``folder`` is None, as ``photo_crops`` does)."""
    g = torch.Generator().manual_seed(seed)
    crops = []
    images = ([read_image(p, grey=True) for p in image_files(folder, "--photos")] if folder is not None
              else list(datasets.builtin_pool("test", grey=True, kind="photo").values()))
    for img in images:
        H, W = img.shape[-2:]
        top = int(torch.randint(H - size + 1, (1,), generator=g))
        left = int(torch.randint(W - size + 1, (1,), generator=g))
        crops.append(img[:, top:top + size, left:left + size])
    return crops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of held-out photos")
    ap.add_argument("--size", type=int, default=256, help="crop size (px)")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.03, 0.05, 0.1])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="one 64 px crop per preparation at 10 %%")
    add_output_args(ap, "biharmonic_scale", what="biharmonic_scale.md")
    args = ap.parse_args(argv)
    if not args.photos.is_dir():
        print(f"{args.photos} not found: the built-in TEST photos instead (run `make photos`)")
        args.photos = None
    torch.set_num_threads(args.threads)
    out = open_out(args, argv)
    size, densities = (64, [0.1]) if args.smoke else (args.size, args.densities)
    sets = {"scaled as the results page": list(photo_crops(args.photos, size, seed=0)[0]),
            "own resolution": native_crops(args.photos, size)}
    if args.smoke:
        sets = {k: v[:1] for k, v in sets.items()}
    lines = ["| photos | density | gain, both clipped to [0, 1] | gain, biharmonic unclipped | worse by > 1 dB "
             "(clipped) | biharmonic's range, unclipped |",
             "|---|---|---|---|---|---|"]
    rows = []
    for prep, crops in sets.items():
        for d in densities:
            gc, gu, worse, lo, hi = [], [], 0, float("inf"), float("-inf")
            for f in crops:
                f = f.float()
                ud = inpaint(f, densify_mask(f, d), method="diffusion")
                ub = inpaint(f, densify_mask(f, d, operator="biharmonic"), method="biharmonic", clip=False)
                lo, hi = min(lo, float(ub.min())), max(hi, float(ub.max()))
                pd = float(psnr(ud.clamp(0, 1), f, data_range=1.0))
                gc.append(float(psnr(ub.clamp(0, 1), f, data_range=1.0)) - pd)
                gu.append(float(psnr(ub, f, data_range=1.0)) - pd)
                worse += gc[-1] < -1
            n = len(crops)
            rows.append(dict(photos=prep, density=d, gain_clipped=sum(gc) / n, gain_unclipped=sum(gu) / n,
                             worse_1db=worse, crops=n, range=[lo, hi]))
            lines.append(f"| {prep} | {100 * d:g} % | {sum(gc) / n:+.2f} dB | {sum(gu) / n:+.2f} dB | {worse} of {n} | "
                         f"[{lo:.2f}, {hi:.2f}] |")
            print(lines[-1], flush=True)
    write_text(out / "biharmonic_scale.md", "\n".join(lines) + "\n")
    write_text(out / "biharmonic_scale.json", json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
