#!/usr/bin/env python
"""CPU cost of one training step of the inpainting GANs, per width: the numbers to plan a run by.

Times the real trainer (:func:`pdeflow.inpaint.train.train`) twice per width and stage, for
``--steps`` and ``2 --steps`` steps (checkpoints and validation only at the end, identical in both
runs), and reports the difference divided by ``--steps``: the cost of a step without the set-up.
CPU seconds (``time.process_time``, one torch thread) are reported beside wall-clock seconds:
on a machine shared with other jobs the CPU time is the one that predicts CPU-hours.

    python experiments/inpaint_train_cost.py --widths 0.25 0.5 1 --batch-size 32 --crop 64

Results are printed and written to ``inpaint_train_cost_bBATCH_cCROP.md`` in ``--out`` (default a fresh folder
under runs/benchmarks/; the committed ones: ``--out benchmarks/results --overwrite``).

Historical. It sized one training step of the inpainting GANs, to plan the runs. Its results are kept for the
record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_text  # experiments/_results.py
from pdeflow.inpaint.training.wgan import TrainConfig, train

HERE = Path(__file__).resolve().parent


def cost(cfg: TrainConfig) -> tuple[float, float]:
    """(wall, CPU) seconds of ``train(cfg)`` in a fresh directory."""
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), time.process_time()
        train(cfg, Path(d) / "run", quiet=True, command="benchmark")
        return time.perf_counter() - t0, time.process_time() - c0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--stages", nargs="+", choices=("wgan", "mask"), default=["wgan", "mask"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    add_output_args(ap, "inpaint_train_cost", what="inpaint_train_cost_bBATCH_cCROP.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    rows = []
    for w in args.widths:
        for stage in args.stages:
            base = dict(stage=stage, width=w, batch_size=args.batch_size, crop=args.crop, val_crops=8,
                        val_every=10**6, ckpt_every=10**6)
            (w1, c1), (w2, c2) = (cost(TrainConfig(steps=n, **base)) for n in (args.steps, 2 * args.steps))
            wall, cpu = (w2 - w1) / args.steps, (c2 - c1) / args.steps
            rows.append((w, stage, wall, cpu))
            print(f"width {w:g}, stage {stage}: {cpu:.2f} CPU-s/step, {wall:.2f} wall-s/step "
                  f"(batch {args.batch_size}, {args.crop}x{args.crop})", flush=True)
    lines = [f"## Inpainting GAN training: seconds per step (batch {args.batch_size}, {args.crop}x{args.crop} crops, "
             "one torch thread)", "",
             f"`python experiments/inpaint_train_cost.py --batch-size {args.batch_size} --crop {args.crop}` on "
             f"{datetime.date.today()}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs shared with other jobs (wall > CPU).", "",
             "| width | stage | CPU s/step | wall s/step | steps per CPU-hour |", "|---|---|---|---|---|"]
    for w, stage, wall, cpu in rows:
        lines.append(f"| {w:g} | {stage} | {cpu:.2f} | {wall:.2f} | {3600 / cpu:.0f} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    name = f"inpaint_train_cost_b{args.batch_size}_c{args.crop}.md"
    write_text(out / name, text)


if __name__ == "__main__":
    main()
