"""Train the mask networks (stage ``masknet``) for several densities, one after another, resumably.

Each density is its own run directory ``ROOT/masknet-DD`` (``ROOT/masknet-all`` for one network
serving all densities); running the same command again resumes every unfinished run and skips
finished ones (raise ``--steps`` to extend them). Single-threaded (a shared CPU)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/inpaint_masknet_train.py \\
        --root /work/runs/inpaint --densities 0.05 0.1 0.2 --steps 3600 \\
        --data builtin .data/photos/opencv

Never pass the evaluation's held-out photo pools (the built-in TEST split, ``.data/photos/mate-nature``)
as ``--data``: ``builtin`` means the built-in TRAIN split.
"""
from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import torch

from pdeflow.inpaint.train_masknet import MaskNetConfig, train_masknet


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="folder of the run directories")
    p.add_argument("--densities", nargs="+", default=["0.05", "0.1", "0.2"],
                   help="densities to train, one run each, in this order; 'all' = one network for 0.05 0.1 0.2")
    p.add_argument("--steps", type=int, default=3600)
    p.add_argument("--data", nargs="+", default=["builtin", ".data/photos/opencv"])
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--val-crops", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ssim-weight", type=float, default=0.6)
    p.add_argument("--tol", type=float, default=1e-5, help="solver tolerance in training")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in sys.argv)
    data = tuple(str(Path(d).resolve()) if d != "builtin" else d for d in args.data)
    for ds in args.densities:
        density = None if ds == "all" else float(ds)
        name = "masknet-all" if density is None else f"masknet-{round(100 * density):02d}"
        # analytic density's smoothing ~ 0.45 x the mean point spacing 1/sqrt(density): 2.0 / 1.4 / 1.0 px at
        # 5 / 10 / 20 % (the best of 1, 1.5, 2 by the validation loss of the analytic mask at each density)
        sigma = round(0.45 / math.sqrt(density if density is not None else 0.1), 2)
        cfg = MaskNetConfig(density=density, data=data, steps=args.steps, val_every=args.val_every,
                            val_crops=args.val_crops, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            sigma=sigma, ssim_weight=args.ssim_weight, tol=args.tol)
        print(f"== {name}: {cfg}", flush=True)
        out = train_masknet(cfg, Path(args.root) / name, quiet=True, command=command)
        print(f"== {name}: exported {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
