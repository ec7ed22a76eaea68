"""What the residual inpainter's calibration chooses on one photograph, against the weight its unknown pixels want.

For a grey photo and a mask (default: the 3840 x 2160 benchmark photo and its learned 5 % mask), prints the
calibration's weight ``alpha`` (cross-validation on the known pixels, as ``learned_inpaint`` computes it), the
least-squares weight of the correction on the unknown pixels (which needs the photo there, so only a benchmark can
know it), and the PSNR of diffusion plus the correction at weights 0, ``alpha``, the least-squares one and 1. The
network runs on tiles, as ``learned_inpaint`` runs it. Also written to ``--out`` (log.txt)::

    OMP_NUM_THREADS=1 python experiments/inpaint_residual_calibration.py
    OMP_NUM_THREADS=1 python experiments/inpaint_residual_calibration.py --photo P.jpg --mask m/mask.png
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow import models as registry
from pdeflow.inpaint import diffuse, learned_mask, load_residual
from pdeflow.io import read_image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / ".data" / "photos" / "lomiri" / "umang_by_Abhishek_Mudgal.jpg"


def psnr(u: torch.Tensor, f: torch.Tensor) -> float:
    return -10 * math.log10(float(((u - f) ** 2).mean()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--mask", type=Path, default=None, help="a mask image (default: learned_mask(photo, --density))")
    ap.add_argument("--density", type=float, default=0.05)
    add_output_args(ap, "inpaint_residual_calibration", what="log.txt")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    f = read_image(args.photo, grey=True).double()[None]
    if args.mask is None:
        m = learned_mask(f.float(), args.density).double()
    else:
        m = (read_image(args.mask, grey=True) > 0.5).double()[None]
    print(f"photo {args.photo.name} {tuple(f.shape[-2:])}, mask density {float(m.mean()):.4f}")
    net = load_residual(None, channels=1)
    with registry.evaluating(net):
        t = time.process_time()
        alpha = float(net.calibration(f, m, generator=0, tile_size=512))
        print(f"calibration: alpha {alpha:.4f} ({time.process_time() - t:.1f} CPU s)")
        ud = diffuse(f, m, tol=net.tol)
        r = (1 - m) * net.residual(ud, m, f, tile_size=512)
        best = float(((f - ud) * r).sum() / (r * r).sum())
        print(f"least-squares weight on the unknown pixels: {best:.4f}")
        for name, a in (("0 (diffusion)", 0.0), ("alpha", alpha), ("least squares", best), ("1 (as trained)", 1.0)):
            print(f"weight {name:>15}: {a:.4f}  PSNR {psnr(ud + a * r, f):.2f} dB")


if __name__ == "__main__":
    main()
