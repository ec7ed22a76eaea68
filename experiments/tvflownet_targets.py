"""How accurate are the supervised TVflowNET trainer's targets, against the evaluation's reference?

    python experiments/tvflownet_targets.py [--size 32] [--batches 4] [--image-dir DIR] [--stack]

A supervised step (``pdeflow train tvflownet --mode supervised``) fits the network to
:func:`pdeflow.tvflownet.train.supervised_reference`: the implicit Euler TV flow of the batch's
crops, steps of at most ``ref_dt`` that land on the batch's sorted times, each solved to a relative
duality gap ``ref_tol`` or ``ref_max_iter`` iterations, and its ``u_t`` (the div phi target) is the
last step's difference quotient. The evaluation compares the network with a finer reference (steps
of 0.01 to 1e-5, :func:`pdeflow.tvflownet.evaluate.reference_flow`). A network trained on a target
cannot be expected to beat that target's own distance to the evaluation's reference, so this script
measures that distance: batches shaped as in training (16 crops, one random time each, drawn from the
paper's 50 evaluation times so that both flows have it on their grid), for a few target settings,
PSNR (data range 1, images x5 scaled back) of u and of u_t against the reference, and the CPU
seconds one batch's targets cost (most of a supervised step: the U-Net's forward and backward on a
batch of 16 crops of 32 px take about 0.08 s).

The flow steps on the grid of ``ref_dt`` and reaches an output time by one partial step from the grid
point below it, so u_t averages over that partial step (or the last full step where t is on the grid).

``--stack`` scores each crop's whole stack of the paper's 50 times instead, with Table 4's metric (the
PSNR of each crop's stack, averaged over crops): the ceiling a network trained on that target meets in
the table. Pooled and per-crop scores of single times hide it, because u_t's error concentrates at early
times (events of the flow within one ``ref_dt``) and in a few crops.
Printed, and written to ``--out`` (log.txt; default a fresh folder under runs/benchmarks/).

Historical. It chose the supervised trainer's reference step (ref_dt). Its results are kept for the record; it
is not expected to run against today's API. It still imported and parsed its options against today's API when
it was marked.
"""
from __future__ import annotations

import argparse
import time
import warnings

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow.metrics import psnr
from pdeflow.tv.rof import ConvergenceWarning
from pdeflow.tvflownet.evaluate import PAPER_SCALE, natural_images, paper_times, reference_flow, stack_psnr
from pdeflow.tvflownet.train import TrainConfig, supervised_reference

# (label, ref_dt, ref_tol, ref_max_iter)
SETTINGS = [
    ("dt 0.1, tol 1e-3, 25 it", 0.1, 1e-3, 25),
    ("dt 0.1, tol 1e-3, 50 it", 0.1, 1e-3, 50),
    ("dt 0.05, tol 1e-3, 15 it", 0.05, 1e-3, 15),
    ("dt 0.05, tol 1e-3, 25 it", 0.05, 1e-3, 25),
    ("dt 0.05, tol 1e-3, 50 it (the trainer's default until 2026-11)", 0.05, 1e-3, 50),
    ("dt 0.05, tol 1e-4, 200 it", 0.05, 1e-4, 200),
    ("dt 0.02, tol 1e-3, 25 it", 0.02, 1e-3, 25),
    ("dt 0.02, tol 1e-4, 200 it", 0.02, 1e-4, 200),
    ("dt 0.01, tol 1e-3, 25 it", 0.01, 1e-3, 25),
    ("dt 0.01, tol 1e-4, 200 it", 0.01, 1e-4, 200),
    ("dt 0.01, tol 1e-5, 2000 it (the evaluation's settings, capped)", 0.01, 1e-5, 2000),
]


def targets(u0, t, dt, tol, max_iter, times_per_image=1):
    """u and u_t of each crop ``u0[i]`` at its time ``t[i]``: the trainer's own
    :func:`~pdeflow.tvflownet.train.supervised_reference` with these reference settings
    (``times_per_image`` consecutive crops are one crop at that many times)."""
    cfg = TrainConfig(ref_dt=dt, ref_tol=tol, ref_max_iter=max_iter, batch_size=len(t),
                      times_per_image=times_per_image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        u, ut, _ = supervised_reference(u0, torch.tensor(t, dtype=u0.dtype), cfg, dual=True)
    return u, ut


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32, help="crop size in pixels (default 32, the trainer's)")
    ap.add_argument("--batches", type=int, default=4, help="batches of 16 crops (default 4)")
    ap.add_argument("--image-dir", default=None, help="photos to crop (default: the built-in test photos)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--ref-dt", type=float, default=0.01,
                    help="time step of the reference scored against (default 0.01, the evaluation's; a finer "
                         "one shows how far each target, and the evaluation's reference, is from the continuum)")
    ap.add_argument("--stack", action="store_true",
                    help="score each crop's stack of the paper's 50 times with Table 4's metric")
    add_output_args(ap, "tvflownet_targets", what="log.txt")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    n = 16 * args.batches
    u0 = natural_images(args.size, n, seed=args.seed, image_dir=args.image_dir).double() * PAPER_SCALE
    grid = paper_times()
    if args.stack:
        run_stack(u0, grid, args.ref_dt)
    else:
        run_single_times(u0, grid, args)


def run_single_times(u0, grid, args) -> None:
    """One random time per crop; mean over crops of its PSNR, and the pooled PSNR."""
    n = u0.shape[0]
    g = torch.Generator().manual_seed(args.seed)
    t = [grid[int(j)] for j in torch.randint(1, len(grid), (n,), generator=g)]   # t = 0 is exact anyway
    ref_u, ref_ut = reference_flow(u0, sorted(set(t)), dt=args.ref_dt, cache_dir=False)
    k = torch.tensor([sorted(set(t)).index(s) for s in t])
    ref_u, ref_ut = ref_u[k, torch.arange(n)], ref_ut[k, torch.arange(n)]
    print(f"{n} crops of {args.size} px, one time each from the paper's grid; PSNR against the evaluation's "
          f"reference (dt {args.ref_dt:g}, tol 1e-5), mean over crops (pooled MSE in brackets)")
    print(f"{'target setting':62s} | u PSNR        | u_t PSNR      | CPU s / batch")
    for label, dt, tol, it in SETTINGS:
        us, uts = [], []
        start = time.process_time()
        for b in range(args.batches):
            sl = slice(16 * b, 16 * (b + 1))
            u, ut = targets(u0[sl], t[sl], dt, tol, it)
            us.append(u)
            uts.append(ut)
        cpu = (time.process_time() - start) / args.batches
        u, ut = torch.cat(us), torch.cat(uts)

        def score(x, y):
            per = psnr(x / PAPER_SCALE, y / PAPER_SCALE, data_range=1.0).clamp(max=100)
            pooled = psnr((x / PAPER_SCALE).reshape(1, 1, -1, 1), (y / PAPER_SCALE).reshape(1, 1, -1, 1),
                          data_range=1.0)
            return f"{float(per.mean()):5.1f} ({float(pooled):5.1f})"
        print(f"{label:62s} | {score(u, ref_u)} | {score(ut, ref_ut)} | {cpu:.2f}", flush=True)


def run_stack(u0, grid, ref_dt) -> None:
    """Every crop at all of the paper's times; Table 4's stack PSNR, mean over crops."""
    n, K = u0.shape[0], len(grid)
    ref_u, ref_ut = reference_flow(u0, grid, dt=ref_dt, cache_dir=False)          # (K, n, 1, H, W)
    print(f"{n} crops of {u0.shape[-1]} px, each at the paper's {K} times; stack PSNR (Tables 2 and 4's metric) "
          f"against the reference of dt {ref_dt:g}, tol 1e-5, mean over crops")
    print(f"{'target setting':62s} | u PSNR | u_t PSNR | CPU s / crop")
    for label, dt, tol, it in SETTINGS:
        start = time.process_time()
        u, ut = targets(u0.repeat_interleave(K, 0), grid * n, dt, tol, it, times_per_image=K)
        cpu = (time.process_time() - start) / n
        u, ut = (x.reshape(n, K, *x.shape[1:]).transpose(0, 1) for x in (u, ut))

        def score(x, y):
            return f"{float(stack_psnr(x / PAPER_SCALE, y / PAPER_SCALE).mean()):6.1f}"
        print(f"{label:62s} | {score(u, ref_u)} | {score(ut, ref_ut):8s} | {cpu:.2f}", flush=True)


if __name__ == "__main__":
    main()
