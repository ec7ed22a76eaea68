"""The residual inpainter against plain diffusion inpainting on the same masks, per density, on held-out photos.

Masks: the analytic mask (Belhachmi et al.'s density, dithered with the fixed tile, snapped; smoothing
0.45/sqrt(density) px, as in training) or, with ``--mask-models``, trained mask networks' masks. Photo sets:
``eval`` = the evaluation's crops (:func:`pdeflow.inpaint.evaluate.test_images`, built-in TEST split, seed 0),
``mate`` = crops of ``.data/photos/mate-nature`` downsampled 4x, the held-out set of
``benchmarks/inpaint_learned_masks.py`` (never used in training or checkpoint selection). Prints a
markdown table (MAE on 0-255, SSIM, mean over crops, and the run time per 64x64 image of each inpainter), also
written to ``--out`` (log.txt; default a fresh folder under runs/benchmarks/)::

    OMP_NUM_THREADS=1 python benchmarks/inpaint_residual_eval.py --model /work/runs/inpaint/residual/r0 \\
        --sets eval mate --n 32

Historical. The evaluation behind shipping the residual inpainter. Its results are kept for the record; it is
not expected to run against today's API. It still imported and parsed its options against today's API when it
was marked.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out  # benchmarks/_results.py
from inpaint_learned_masks import mate_crops  # the same held-out set as the mask benchmark
from pdeflow.inpaint.diffusion import diffuse
from pdeflow.inpaint.evaluation import test_images
from pdeflow.inpaint.learned.masknet import load_masknet
from pdeflow.inpaint.learned.residual import learned_inpaint, load_residual
from pdeflow.inpaint.training.residual import _masks
from pdeflow.metrics import ssim


def photo_set(name: str, n: int, size: int, mate_dir: Path) -> torch.Tensor:
    if name == "eval":
        return test_images(n, size)[0]
    if name == "mate":
        return mate_crops(n, size, folder=mate_dir)[0]
    raise ValueError(f"--sets: unknown set {name!r} (eval, mate)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="residual inpainter: run dir or model.json")
    p.add_argument("--mask-models", nargs="*", default=[], help="mask networks (one per density); none: analytic")
    p.add_argument("--densities", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    p.add_argument("--sets", nargs="+", default=["eval", "mate"])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--mate-dir", default=".data/photos/mate-nature")
    add_output_args(p, "inpaint_residual_eval", what="log.txt")
    args = p.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    model = load_residual(args.model, channels=1)
    nets = {}
    for spec in args.mask_models:
        net = load_masknet(spec, channels=1)
        nets[net.density] = net
    print(f"model: {args.model} (steps {model.meta['provenance'].get('steps')}, "
          f"CPU-hours {model.meta['provenance'].get('cpu_hours')})")
    print("| set | density | masks | diffusion MAE | residual MAE | diffusion SSIM | residual SSIM | "
          "diffusion ms/img | residual ms/img (incl. diffusion) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in args.sets:
        f = photo_set(s, args.n, args.size, Path(args.mate_dir)).double()
        for d in args.densities:
            net = nets.get(d)
            if args.mask_models and net is None:
                continue
            b = _masks(f.float() if net is not None else f, d, net, random=False).double()
            t0 = time.perf_counter()
            ud = diffuse(f, b)
            t1 = time.perf_counter()
            ur = learned_inpaint(f, b, model=model)
            t2 = time.perf_counter()
            mae = lambda u: 255 * float((u - f).abs().mean())  # noqa: E731
            ss = lambda u: float(ssim(u, f).mean())  # noqa: E731
            print(f"| {s} | {d:g} | {'learned' if net is not None else 'analytic'} | {mae(ud):.2f} | {mae(ur):.2f} | "
                  f"{ss(ud):.4f} | {ss(ur):.4f} | {1e3 * (t1 - t0) / len(f):.1f} | {1e3 * (t2 - t1) / len(f):.1f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
