"""What the residual inpainter's calibration chooses on photographs, against the weight their unknown pixels want.

For each grey photo (default: the 3840 x 2160 benchmark photo; ``--folder``: every photo of a folder, at native
resolution or ``--crop``-ped) and density, with the learned mask (or ``--mask`` for one photo), prints the
calibration's weight ``alpha`` (cross-validation on the known pixels, as ``learned_inpaint`` computes it) weighted
(the default) and unweighted (the estimate before), the least-squares weight of the correction on the unknown
pixels (which needs the photo there, so only a benchmark can know it), and the PSNR of diffusion plus the
correction at weights 0 (diffusion), the weighted and unweighted ``alpha`` and the least-squares one. The network
runs on tiles, as ``learned_inpaint`` runs it. A table of the means is written to ``--out`` (calibration.md,
calibration.json, log.txt)::

    OMP_NUM_THREADS=1 python experiments/inpaint_residual_calibration.py
    OMP_NUM_THREADS=1 python experiments/inpaint_residual_calibration.py --photo P.jpg --mask m/mask.png
    OMP_NUM_THREADS=1 python experiments/inpaint_residual_calibration.py --folder .data/photos/mate-nature \\
        --densities 0.05 0.1 0.2

Historical. It checked what the residual inpainter's calibration chooses. Its results are kept for the record;
it is not expected to run against today's API. It still imported and parsed its options against today's API
when it was marked.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow import io as pio
from pdeflow import models as registry
from pdeflow.inpaint import diffuse, learned_mask, load_residual

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / ".data" / "photos" / "lomiri" / "umang_by_Abhishek_Mudgal.jpg"
ROWS = ("diffusion", "weighted", "unweighted", "least squares")


def psnr(u: torch.Tensor, f: torch.Tensor) -> float:
    return -10 * math.log10(float(((u - f) ** 2).mean()))


def centre_crop(f: torch.Tensor, n: int) -> torch.Tensor:
    H, W = f.shape[-2:]
    n = min(n, H, W)
    return f[..., (H - n) // 2:(H - n) // 2 + n, (W - n) // 2:(W - n) // 2 + n]


def measure(net, f: torch.Tensor, m: torch.Tensor) -> dict:
    """The weights and PSNRs of one photo ``f`` (1, 1, H, W) float64 and mask ``m``."""
    t = time.process_time()
    weighted = float(net.calibration(f, m, generator=0, tile_size=512))
    seconds = time.process_time() - t
    unweighted = float(net.calibration(f, m, generator=0, tile_size=512, weighted=False))
    ud = diffuse(f, m, tol=net.tol)
    r = (1 - m) * net.residual(ud, m, f, tile_size=512)
    best = float(((f - ud) * r).sum() / (r * r).sum())
    alphas = {"diffusion": 0.0, "weighted": weighted, "unweighted": unweighted, "least squares": best}
    return {"alpha": alphas, "psnr": {k: psnr(ud + a * r, f) for k, a in alphas.items()},
            "calibration_cpu_s": seconds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--folder", type=Path, default=None, help="every photo of this folder instead of --photo")
    ap.add_argument("--crop", type=int, default=0, help="centre crops of this side (default 0: the whole photo)")
    ap.add_argument("--mask", type=Path, default=None,
                    help="one --photo: a mask image instead of learned_mask(photo, density)")
    ap.add_argument("--densities", nargs="+", type=float, default=[0.05])
    add_output_args(ap, "inpaint_residual_calibration", what="calibration.md, calibration.json, log.txt")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    paths = pio.image_files(args.folder, "--folder") if args.folder else [args.photo]
    net = load_residual(None, channels=1)
    rows = []
    with registry.evaluating(net):
        for path in paths:
            f = pio.read_image(path, grey=True).double()[None]
            if args.crop:
                f = centre_crop(f, args.crop)
            for d in args.densities:
                if args.mask is not None:
                    m = (pio.read_image(args.mask, grey=True) > 0.5).double()[None]
                else:
                    m = learned_mask(f.float(), d).double()
                row = {"photo": path.name, "size": f"{f.shape[-1]}x{f.shape[-2]}", "density": d, **measure(net, f, m)}
                rows.append(row)
                print(f"{path.name} {row['size']} {d:g}: " + ", ".join(
                    f"{k} {row['alpha'][k]:.3f} ({row['psnr'][k]:.2f} dB)" for k in ROWS)
                    + f"; calibration {row['calibration_cpu_s']:.1f} CPU s", flush=True)
    lines = ["| density | photos | " + " | ".join(f"{k}: alpha / PSNR dB" for k in ROWS)
             + " | weighted beats diffusion | unweighted beats diffusion |",
             "|---" * (4 + len(ROWS)) + "|"]
    for d in args.densities:
        rs = [r for r in rows if r["density"] == d]
        mean = {k: (sum(r["alpha"][k] for r in rs) / len(rs), sum(r["psnr"][k] for r in rs) / len(rs)) for k in ROWS}
        wins = [sum(r["psnr"][k] >= r["psnr"]["diffusion"] for r in rs) for k in ("weighted", "unweighted")]
        lines.append(f"| {d:g} | {len(rs)} | " + " | ".join(f"{a:.3f} / {p:.2f}" for a, p in mean.values())
                     + f" | {wins[0]}/{len(rs)} | {wins[1]}/{len(rs)} |")
    (out / "calibration.md").write_text("\n".join(lines) + "\n")
    (out / "calibration.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
