"""Which per-image contrast the shift-and-contrast wrapper should normalise: the range, the std, or none (bare).

    python experiments/tvflownet_wrapper_contrast.py [MODEL ...] [--size 64] [--n-images 16] [--image-dir DIR]

:class:`pdeflow.tvflownet.symmetry.Equivariant` maps each image to the training intensities before the network
sees it, with the shift and contrast measured as the midrange and ``max - min`` (``"range"``) or the mean and
``4 * std`` (``"std"``), and reaches
times past the trained interval by composition; :func:`pdeflow.tvflownet.flow` applies it by default. For each
model, natural-image crops (those of ``pdeflow evaluate tvflownet``'s Tables 2-4: by default the built-in test
photos; ``--image-dir VAL_PHOTOS --seed 1`` gives the validation crops; crops of one grey level are left out,
the wrapper returns them exactly) are evolved x5 (the paper's scale) to a few network times, inside the
trained interval [0, 1] and past it, by

* the bare network, and the network wrapped by ``Equivariant(contrast="std")`` and ``"range"``,

each averaged over the transposition (``flow``'s default symmetry), and scored against the evaluation's
reference flow (implicit Euler, dt 0.01): the mean over crops of each crop's PSNR (data range 1 on the [0, 1]
scale) of u and of div phi at each time. Printed, and written to ``--out`` (results.md, results.json,
command.txt, log.txt; default a fresh folder under runs/benchmarks/).

Historical. It chose the shift-and-contrast wrapper's per-image contrast. Its results are kept for the record;
it is not expected to run against today's API. It still imported and parsed its options against today's API
when it was marked.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from _results import add_output_args, open_out, write_text  # experiments/_results.py
from pdeflow.tvflownet import load
from pdeflow.tvflownet.evaluate import PAPER_SCALE, model_flow, natural_images, reference_flow
from pdeflow.tvflownet.symmetry import flow_model

VARIANTS = ("bare", "std", "range")


def wrapped(model, variant: str):
    """The model as ``tvflownet.flow`` would call it with this contrast (``"bare"``: no Equivariant)."""
    if variant == "bare":
        return flow_model(model, equivariant=False)
    return flow_model(model, contrast=variant)


def mean_psnr_per_time(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean over crops of each crop's PSNR per time; ``x, ref``: ``(T, B, C, H, W)`` on the x5 scale."""
    mse = ((x - ref).double() / PAPER_SCALE).pow(2).flatten(2).mean(2)
    return (10 * torch.log10(1.0 / mse)).mean(1)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("models", nargs="*", default=["default", "unet", "lgd10", "lgd", "semiresnet"],
                    help="shipped names or model paths")
    ap.add_argument("--size", type=int, default=64, help="crop size (px)")
    ap.add_argument("--n-images", type=int, default=16)
    ap.add_argument("--image-dir", default=None, help="photos to crop (default: the built-in test photos)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--times", type=float, nargs="+", default=[0.1, 0.3, 0.6, 1.0, 2.0, 5.0],
                    help="network times (images x5; the trained interval is [0, 1])")
    ap.add_argument("--threads", type=int, default=1)
    add_output_args(ap, "tvflownet_wrapper_contrast", what="results.md, results.json")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(args.threads)

    crops = natural_images(args.size, args.n_images, seed=args.seed, image_dir=args.image_dir)
    crops = crops[crops.flatten(1).std(1) > 0]
    x = crops * PAPER_SCALE
    ref_u, ref_ut = reference_flow(x, args.times)
    print(f"{x.shape[0]} crops {args.size} px (of {args.n_images}), times {args.times}", flush=True)
    rows = []
    for spec in args.models:
        model = load(None if spec == "default" else spec).eval()
        for variant in VARIANTS:
            t0 = time.process_time()
            u, d = model_flow(wrapped(model, variant), x, args.times)
            rows.append(dict(model=spec, variant=variant, cpu_s=time.process_time() - t0,
                             u=mean_psnr_per_time(u, ref_u).tolist(), div=mean_psnr_per_time(d, ref_ut).tolist()))
            r = rows[-1]
            print(f"{spec:12s} {variant:6s} u " + " ".join(f"{v:6.2f}" for v in r["u"])
                  + "  div phi " + " ".join(f"{v:6.2f}" for v in r["div"]) + f"  ({r['cpu_s']:.0f} CPU-s)", flush=True)

    ts = " | ".join(f"{t:g}" for t in args.times)
    md = [f"# The wrapper's contrast: {x.shape[0]} crops {args.size} px, "
          f"{'photos in ' + args.image_dir if args.image_dir else 'built-in test photos'}, seed {args.seed}", "",
          "Mean over crops of the crop's PSNR (dB) at each network time (images x5; trained interval [0, 1]); "
          "every variant averaged over the transposition.", ""]
    for key, what in (("u", "u"), ("div", "div phi")):
        md += [f"## {what}", "", f"| model | wrapper | {ts} |", "|---|---|" + "---|" * len(args.times)]
        md += [f"| {r['model']} | {r['variant']} | " + " | ".join(f"{v:.2f}" for v in r[key]) + " |" for r in rows]
        md.append("")
    write_text(out / "results.md", "\n".join(md))
    write_text(out / "results.json", json.dumps(dict(times=args.times, size=args.size, n_crops=int(x.shape[0]),
                                                     image_dir=args.image_dir, seed=args.seed, rows=rows),
                                                indent=1) + "\n")


if __name__ == "__main__":
    main()
