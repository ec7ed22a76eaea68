"""The codec encoder's settings, each against its alternatives, on selection photos (issue 64).

Maintained. Each part varies one setting of ``pdeflow.codec.encoder`` (or ``pdeflow.inpaint.tonal``) and encodes
grey centre crops of the selection photos (``.data/photos/opencv`` and ``.data/photos/lomiri``, the first
``--limit`` of each; never the held-out ``mate-nature`` photos), reporting the mean PSNR of the decoded images and
the encoder's CPU time:

* ``iterations``: the CGLS iterations of the encoder's tonal optimisation
  (``pdeflow.codec.CODEC_OPERATORS["diffusion"].tonal["max_iter"]``);
* ``warm``: those of the warm-started optimisations of rate control (``WARM_ITER``);
* ``lattice``: the automatic lattice (a step of 2 may become the full grid) against the lattice forced to the
  automatic step (``auto_lattice``), on the crops and on
  synthetic piecewise-smooth scenes (``pdeflow.datasets.piecewise_smooth``, seed 5);
* ``linearisations``: the Gauss-Newton steps of tonal optimisation for EED (``EED_LINEARISATIONS``, with the
  encoder's settings ``CODEC_OPERATORS["eed"].tonal``), PSNR of EED inpainting with the optimised values on masks densified for
  EED at 1.5 and 3 %;
* ``tolerance``: the decoder's solver tolerance (the header's exponent): PSNR and decoding time of one
  1024 x 1024 file decoded at 1e-3 to 1e-6.

Without the selection photos (no ``make photos``) the built-in TRAIN photos are used, with a note.

    OMP_NUM_THREADS=1 python experiments/codec_settings.py --out runs/benchmarks/codec_settings --overwrite
    OMP_NUM_THREADS=1 python experiments/codec_settings.py --smoke --out /tmp/cs
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent / "benchmarks"))

from _results import add_output_args, open_out, write_text  # noqa: E402  (experiments/_results.py)
from pdeflow.codec import CODEC_OPERATORS, decode, encode, encoder  # noqa: E402
from pdeflow.codec.decoder import reconstruct  # noqa: E402
from pdeflow.codec.encoder import auto_lattice  # noqa: E402
from pdeflow.codec.entropy import RangeReader, decode_mask, decode_values  # noqa: E402
from pdeflow.codec.format import read_header  # noqa: E402
from pdeflow.datasets import builtin_pool  # noqa: E402
from pdeflow.evaluate.codec import smooth_set  # noqa: E402
from pdeflow.inpaint import densify_mask, inpaint_eed, optimise_tonal, tonal  # noqa: E402
from pdeflow.io import read_image  # noqa: E402
from pdeflow.reporting import md_table  # noqa: E402


def centre(img: torch.Tensor, size: int) -> torch.Tensor:
    """The grey (1, size, size) float64 centre crop of a (1, H, W) image."""
    H, W = img.shape[-2:]
    s = min(size, H, W)
    return img[..., (H - s) // 2:(H - s) // 2 + s, (W - s) // 2:(W - s) // 2 + s].double().contiguous()


def selection_crops(limit: int, size: int) -> dict:
    out = {}
    for folder in ("opencv", "lomiri"):
        d = HERE.parent / ".data" / "photos" / folder
        if not d.is_dir():
            print(f"{d} not found: the built-in TRAIN photos instead (run `make photos`)", flush=True)
            return {k: centre(v, size) for k, v in list(builtin_pool("train", kind="photo").items())[:2 * limit]}
        for p in sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]:
            out[f"{folder}/{p.stem}"] = centre(read_image(p, grey=True), size)
    return out


def psnr(u: torch.Tensor, f: torch.Tensor) -> float:
    return 10 * math.log10(1 / max(float((u.double() - f).square().mean()), 1e-20))


def encode_all(images: dict, rates, **options) -> tuple[float, float]:
    """Mean PSNR of the decoded images over images and rates, and the encoder's CPU seconds in all."""
    values, t = [], time.process_time()
    for f in images.values():
        for bpp in rates:
            values.append(psnr(decode(encode(f, bpp=bpp, split=1.0, **options)), f))
    return sum(values) / len(values), time.process_time() - t


def part_iterations(args, images):
    rows, default = [], CODEC_OPERATORS["diffusion"].tonal["max_iter"]
    for k in args.iterations:
        CODEC_OPERATORS["diffusion"].tonal["max_iter"] = k
        p, cpu = encode_all(images, args.rates)
        rows.append({"max_iter": k, "mean_psnr": round(p, 3), "encode_cpu_s": round(cpu, 1)})
    CODEC_OPERATORS["diffusion"].tonal["max_iter"] = default
    return rows


def part_warm(args, images):
    rows, default = [], encoder.WARM_ITER
    for k in args.warm:
        encoder.WARM_ITER = k
        p, cpu = encode_all(images, args.rates)
        rows.append({"warm_iter": k, "mean_psnr": round(p, 3), "encode_cpu_s": round(cpu, 1)})
    encoder.WARM_ITER = default
    return rows


def part_lattice(args, images):
    sets = {"selection photos": images,
            "synthetic scenes": {k: v.double() for k, v in smooth_set(args.scenes, size=args.crop, seed=5).items()}}
    rows = []
    for name, imgs in sets.items():
        for bpp in args.rates:
            auto, forced = [], []
            for f in imgs.values():
                budget = int(bpp * f.shape[-2] * f.shape[-1] / 8)
                step = auto_lattice(budget, *f.shape[-2:], 1)
                auto.append(psnr(encode(f, size=budget, split=1.0, full_output=True).reconstruction, f))
                forced.append(psnr(encode(f, size=budget, lattice=step, split=1.0, full_output=True).reconstruction, f))
            rows.append({"set": name, "bpp": bpp, "automatic": round(sum(auto) / len(auto), 3),
                         "forced_lattice": round(sum(forced) / len(forced), 3),
                         "gain_dB": round((sum(auto) - sum(forced)) / len(auto), 3)})
    return rows


def part_linearisations(args, images):
    rows, default = [], tonal.EED_LINEARISATIONS
    for d in args.densities:
        masks = {k: densify_mask(f, d, operator="eed") for k, f in images.items()}
        own = [psnr(inpaint_eed(f, masks[k], tol=1e-4), f) for k, f in images.items()]
        rows.append({"density": d, "linearisations": 0, "mean_psnr": round(sum(own) / len(own), 3), "cpu_s": 0.0})
        for n in args.linearisations:
            tonal.EED_LINEARISATIONS = n
            t = time.process_time()
            got = [psnr(optimise_tonal(f, masks[k], operator="eed", full_output=True, **CODEC_OPERATORS["eed"].tonal).u, f)
                   for k, f in images.items()]
            rows.append({"density": d, "linearisations": n, "mean_psnr": round(sum(got) / len(got), 3),
                         "cpu_s": round(time.process_time() - t, 1)})
    tonal.EED_LINEARISATIONS = default
    return rows


def part_tolerance(args, images):
    f = next(iter(images.values()))
    f = torch.nn.functional.interpolate(f[None], size=(args.tol_size,) * 2, mode="bilinear", antialias=True)[0]
    f = f.clamp(0, 1)
    header, payload = read_header(encode(f, bpp=0.1, split=1.0))
    reader = RangeReader(payload)
    cy, cx = decode_mask(reader, *header.grid, header.known)
    idx = [decode_values(reader, header.q[0], header.known)]
    rows, ref = [], None
    for t in (6, 5, 4, 3):
        h = dataclasses.replace(header, tol_exponent=t)
        start = time.process_time()
        u = reconstruct(h, cy * h.lattice, cx * h.lattice, idx)
        cpu = time.process_time() - start
        ref = u if ref is None else ref
        rows.append({"tolerance": f"1e-{t}", "psnr": round(psnr(u, f), 3), "decode_cpu_s": round(cpu, 3),
                     "max_diff_to_1e-6": float((u - ref).abs().max())})
    return rows


PARTS = {"iterations": part_iterations, "warm": part_warm, "lattice": part_lattice,
         "linearisations": part_linearisations, "tolerance": part_tolerance}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", nargs="+", choices=tuple(PARTS), default=list(PARTS))
    ap.add_argument("--limit", type=int, default=4, help="photos of each selection folder (sorted)")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--iterations", type=int, nargs="+", default=[20, 10, 6])
    ap.add_argument("--warm", type=int, nargs="+", default=[10, 5, 3])
    ap.add_argument("--scenes", type=int, default=3, help="synthetic scenes of the lattice part")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.015, 0.03])
    ap.add_argument("--linearisations", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--tol-size", type=int, default=1024, help="side of the tolerance part's image")
    ap.add_argument("--smoke", action="store_true", help="one crop of 48 px per folder, one rate, tiny grids")
    add_output_args(ap, "codec_settings", what="settings.json, settings.md")
    args = ap.parse_args(argv)
    if args.smoke:
        args.limit, args.crop, args.rates, args.iterations, args.warm = 1, 48, [0.5], [4], [2]
        args.scenes, args.densities, args.linearisations, args.tol_size = 1, [0.05], [1], 64
    out = open_out(args, argv)
    torch.set_num_threads(1)
    images = selection_crops(args.limit, args.crop)
    results, text = {}, "# The codec encoder's settings on selection photos\n"
    for part in args.parts:
        t = time.time()
        results[part] = PARTS[part](args, images)
        table = [[str(v) for v in r.values()] for r in results[part]]
        text += f"\n## {part}\n\n" + md_table(list(results[part][0]), table) + "\n"
        print(f"{part}: {time.time() - t:.0f} s", flush=True)
    write_text(out / "settings.json", json.dumps({"images": list(images), "rates": args.rates, **results},
                                                 indent=1) + "\n")
    write_text(out / "settings.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
