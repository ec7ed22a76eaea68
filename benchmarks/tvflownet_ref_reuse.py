"""CPU time of a supervised TVflowNET training step, with and without reused references.

    python benchmarks/tvflownet_ref_reuse.py [--archs lgd unet] [--sizes 32 96] [--reuse 1 2 4 8] [--steps 16]

A supervised step (``pdeflow train tvflownet --mode supervised``) solves the reference TV flow of its
crops (:func:`pdeflow.tvflownet.train.supervised_reference`) before the network's forward and backward
pass. With ``--ref-reuse R`` the crops of ``R`` steps are drawn at once, each at ``R`` times, and
their reference is solved in one call (:func:`pdeflow.tvflownet.train.reused_reference_batch`, via ``step_batch``): one
flow per crop to its latest time serves ``R`` samples. This script times whole steps (batch, reference,
forward, backward, Adam) of the trainer's own functions, each setting for the same ``--steps``
consecutive steps (a multiple of every ``R``) of the same seed, one thread, settings interleaved
over two rounds and the lesser time kept, and prints each setting's CPU seconds per step and its
speed-up over ``R = 1`` (the baseline: the trainer's default) beside it. The config is the shipped
runs': 16 crops of the training photos (a quarter generated), ``--ref-dt 0.01``,
``--ref-max-iter 25``, ``--phi-weight 0.1``. Printed, and written to ``--out`` (log.txt).

Maintained. It times today's supervised training step with and without reused references; the test
suite runs it with ``--smoke`` (the LGD on 16 px crops, R = 1 and 2, two steps).
"""
from __future__ import annotations

import argparse
import time
import warnings

import torch

from _results import add_output_args, open_out  # benchmarks/_results.py
from pdeflow.tv.rof import ConvergenceWarning
from pdeflow.tvflownet.architectures import build_model
from pdeflow.tvflownet.train import (
    TrainConfig,
    open_data,
    step_batch,
    supervised_loss,
)

ARCH_KWARGS = {"lgd": {"edge_width": 0}, "unet": {"edge_width": 0}, "semiresnet": {}}


def time_steps(cfg: TrainConfig, images, steps: int) -> float:
    """CPU seconds per step of ``steps`` supervised steps from a fresh network (steps 0 .. steps-1)."""
    torch.manual_seed(0)
    net = build_model(cfg.arch, **cfg.arch_kwargs)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    block = None
    start = time.process_time()
    for step in range(steps):
        u0, t, ref, block = step_batch(cfg, images, step, 0, block, supervised=True)
        loss, _ = supervised_loss(net, u0, t, cfg, reference=ref)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.process_time() - start) / steps


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["lgd", "unet"], choices=sorted(ARCH_KWARGS))
    ap.add_argument("--sizes", nargs="+", type=int, default=[32, 96], help="crop sizes (default 32 96)")
    ap.add_argument("--reuse", nargs="+", type=int, default=[1, 2, 4, 8], help="values of R (default 1 2 4 8)")
    ap.add_argument("--steps", type=int, default=16, help="steps per timing, a multiple of every R (default 16)")
    ap.add_argument("--smoke", action="store_true", help="the LGD on 16 px crops, R = 1 2, two steps: a check that it runs")
    add_output_args(ap, "tvflownet_ref_reuse", what="log.txt")
    args = ap.parse_args(argv)
    if args.smoke:
        args.archs, args.sizes, args.reuse, args.steps = ["lgd"], [16], [1, 2], 2
    if 1 not in args.reuse or any(args.steps % r for r in args.reuse):
        ap.error(f"argument --reuse: expected 1 among the values and divisors of --steps {args.steps}")
    open_out(args, argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)       # the trainer's capped steps, as in training
    base = dict(mode="supervised", phi_weight=0.1, ref_dt=0.01, ref_max_iter=25, synthetic=0.25, aug_scale=0.2,
                aug_dihedral=True)
    images, _ = open_data(TrainConfig(**base))
    print(f"CPU s per supervised step (16 crops, {args.steps} steps, best of 2 interleaved rounds, one thread)")
    print(f"{'arch':10s} {'crop':>4s} " + " ".join(f"{'R = ' + str(r):>14s}" for r in args.reuse))
    for arch in args.archs:
        for size in args.sizes:
            configs = {r: TrainConfig(**base, arch=arch, arch_kwargs=ARCH_KWARGS[arch], crop=str(size), ref_reuse=r)
                       for r in args.reuse}
            best = {r: float("inf") for r in args.reuse}
            for _ in range(2):                               # rounds, the settings interleaved
                for r in args.reuse:
                    best[r] = min(best[r], time_steps(configs[r], images, args.steps))
            cells = [f"{best[r]:6.3f} ({best[1] / best[r]:4.2f}x)" for r in args.reuse]
            print(f"{arch:10s} {size:4d} " + " ".join(f"{c:>14s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
