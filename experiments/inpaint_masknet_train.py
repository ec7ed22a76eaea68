"""Train the mask networks (stage ``masknet``) for several densities, one after another, resumably.

Each density is its own run directory ``ROOT/masknet-DD`` (``ROOT/masknet-all`` for one network
serving all densities); running the same command again resumes every unfinished run and skips
finished ones (raise ``--steps`` to extend them). Single-threaded (a shared CPU)::

    OMP_NUM_THREADS=1 nice -n 10 python experiments/inpaint_masknet_train.py \\
        --root /work/runs/inpaint --densities 0.05 0.1 0.2 --steps 3600 \\
        --data builtin .data/photos/opencv

Never pass the evaluation's held-out photo pools (the built-in TEST split, ``.data/photos/mate-nature``)
as ``--data``: ``builtin`` means the built-in TRAIN split.

Historical. The driver that trained the shipped mask networks (CPU-hours). Its results are kept for the
record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import math
from pathlib import Path

from _inpaint_train import shared_config, trainer_parser  # experiments/_inpaint_train.py
from pdeflow.inpaint.training.masknet import MaskNetConfig, train_masknet


def main(argv=None) -> int:
    p = trainer_parser(__doc__, steps=3600, val_crops=64, lr=3e-4)
    p.add_argument("--root", required=True, help="folder of the run directories")
    p.add_argument("--densities", nargs="+", default=["0.05", "0.1", "0.2"],
                   help="densities to train, one run each, in this order; 'all' = one network for 0.05 0.1 0.2")
    args = p.parse_args(argv)
    shared, command = shared_config(args)
    for ds in args.densities:
        density = None if ds == "all" else float(ds)
        name = "masknet-all" if density is None else f"masknet-{round(100 * density):02d}"
        # analytic density's smoothing ~ 0.45 x the mean point spacing 1/sqrt(density): 2.0 / 1.4 / 1.0 px at
        # 5 / 10 / 20 % (the best of 1, 1.5, 2 by the validation loss of the analytic mask at each density)
        sigma = round(0.45 / math.sqrt(density if density is not None else 0.1), 2)
        cfg = MaskNetConfig(density=density, sigma=sigma, **shared)
        print(f"== {name}: {cfg}", flush=True)
        out = train_masknet(cfg, Path(args.root) / name, quiet=True, command=command)
        print(f"== {name}: exported {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
