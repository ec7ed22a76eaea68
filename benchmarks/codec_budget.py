#!/usr/bin/env python
"""How much of the budget the codec's rate control uses: file size / budget, colour and grey, on the built-in
photos and on held-out photos (``--photos DIR``: the 12 mate-backgrounds nature photos of ``make photos``).

Each photo is encoded whole (built-in) or as its centre ``--crop`` (held-out), in colour and in grey, at each
``--bpp`` budget and at the byte budgets of ``--size``. Prints one row per file with the share of its budget
that it uses, and the smallest share per colour mode.

    python benchmarks/codec_budget.py --photos .data/photos/mate-nature --out DIR
    python benchmarks/codec_budget.py --smoke     # one small photo, one budget: a check that it runs

Maintained. The test suite runs it with ``--smoke``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from _results import add_output_args, open_out, timed, write_text  # benchmarks/_results.py
from pdeflow import datasets, io
from pdeflow.codec import encode
from pdeflow.io.images import LUMA_WEIGHTS as LUMA

#: Built-in colour photos (their grey versions too).
BUILTIN = ["skimage/astronaut", "skimage/coffee", "skimage/chelsea", "skimage/rocket", "skimage/motorcycle"]


def _centre(u: torch.Tensor, size: int) -> torch.Tensor:
    H, W = u.shape[-2:]
    s = min(size, H, W)
    y, x = (H - s) // 2, (W - s) // 2
    return u[..., y:y + s, x:x + s]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--photos", type=Path, default=None, help="folder of held-out photos (JPEG/PNG)")
    ap.add_argument("--crop", type=int, default=512, help="centre crop of each held-out photo (px)")
    ap.add_argument("--bpp", type=float, nargs="+", default=[0.05, 0.1, 0.2], help="budgets in bits per pixel")
    ap.add_argument("--size", type=int, nargs="*", default=[500], help="budgets in bytes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="one 64 px crop, one budget: a check that it runs")
    add_output_args(ap, "codec_budget", what="codec_budget.md")
    args = ap.parse_args(argv)
    if args.photos is not None and not args.photos.is_dir():
        ap.error(f"--photos {args.photos}: not a folder")
    torch.set_num_threads(args.threads)
    out = open_out(args, argv)
    images = [(n, datasets.builtin_image(n, grey=None)) for n in BUILTIN]
    if args.photos is not None:
        images += [(p.name, _centre(io.read_image(p, grey=False), args.crop))
                   for p in sorted(args.photos.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    budgets = [("bpp", b) for b in args.bpp] + [("size", s) for s in args.size]
    if args.smoke:
        images, budgets = [(images[0][0], _centre(images[0][1], 64))], [("bpp", 0.5)]
    lines = ["| image | H x W | mode | budget | bytes | used | CPU s |", "|---|---|---|---|---|---|---|"]
    worst = {"colour": 1.0, "grey": 1.0}
    for name, u in images:
        for mode in ("colour", "grey"):
            x = u if mode == "colour" else torch.einsum("c,chw->hw", torch.tensor(LUMA, dtype=u.dtype), u)[None]
            H, W = x.shape[-2:]
            for kind, b in budgets:
                nbytes = int(b * H * W / 8) if kind == "bpp" else b
                data, secs = timed(lambda: encode(x, **{kind: b}))
                used = len(data) / nbytes
                worst[mode] = min(worst[mode], used)
                lines.append(f"| {name} | {H} x {W} | {mode} | {b:g} {kind} ({nbytes} B) | {len(data)} | "
                             f"{100 * used:.1f} % | {secs:.1f} |")
                print(lines[-1], flush=True)
    lines += ["", f"Smallest share used: colour {100 * worst['colour']:.1f} %, grey {100 * worst['grey']:.1f} %."]
    text = "# Budget used by the codec's rate control\n\n" + "\n".join(lines) + "\n"
    print(lines[-1])
    write_text(out / "codec_budget.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
