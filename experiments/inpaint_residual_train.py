"""Train the residual inpainter (stage ``residual``) or run the joint fine-tune (stage ``joint``), resumably.

One run directory per call; running the same command again resumes it (raise ``--steps`` to extend a
finished run). Single-threaded (a shared CPU)::

    # R on analytic masks at 5/10/20 % (until trained mask networks exist)
    OMP_NUM_THREADS=1 nice -n 10 python experiments/inpaint_residual_train.py --run /work/runs/inpaint/residual/r0 \\
        --steps 1500 --data builtin .data/photos/opencv
    # the same with Peter's critic term (alpha 0.005)
    ... --run /work/runs/inpaint/residual/r0-critic --alpha 0.005
    # R on the mask networks' masks
    ... --run RUN --mask-models /work/runs/inpaint/masknet-05 /work/runs/inpaint/masknet-10 /work/runs/inpaint/masknet-20
    # the joint fine-tune of one mask network with R (R starts from a stage-residual run)
    ... --run RUN --stage joint --init /work/runs/inpaint/residual/r0 --mask-models /work/runs/inpaint/masknet-05 --steps 600

Never pass the evaluation's held-out photo pools (the built-in TEST split, ``.data/photos/mate-nature``)
as ``--data``: ``builtin`` means the built-in TRAIN split; validation crops come from the TEST split
outside the crops the evaluation reports.

Historical. The driver that trained the shipped residual inpainter (CPU-hours). Its results are kept for the
record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

from pathlib import Path

from _inpaint_train import shared_config, trainer_parser  # experiments/_inpaint_train.py
from pdeflow.inpaint.training.residual import ResidualConfig, train_residual


def main(argv=None) -> int:
    p = trainer_parser(__doc__, steps=1500, val_crops=48, lr=5e-4)
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--stage", default="residual", choices=("residual", "joint"))
    p.add_argument("--init", default=None, help="stage joint: the residual run (dir or model.json) to start R from")
    p.add_argument("--mask-models", nargs="*", default=[], help="mask network runs; none: analytic masks")
    p.add_argument("--densities", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    p.add_argument("--mask-lr", type=float, default=1e-4)
    p.add_argument("--alpha", type=float, default=0.0, help="critic weight (Peter 2022: 0.005); 0: no critic")
    args = p.parse_args(argv)
    shared, command = shared_config(args)
    cfg = ResidualConfig(stage=args.stage, init=args.init, mask_models=tuple(str(Path(m).resolve()) for m in args.mask_models),
                         densities=tuple(args.densities), mask_lr=args.mask_lr, alpha=args.alpha, **shared)
    print(f"== {args.run}: {cfg}", flush=True)
    out = train_residual(cfg, args.run, quiet=True, command=command)
    print(f"== exported {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
