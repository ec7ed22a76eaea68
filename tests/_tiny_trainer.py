"""A tiny trainer written the way pdeflow's trainers use `pdeflow.training`.

Imported by tests/training/test_training.py (single process) and run as a script:

    python tests/_tiny_trainer.py RUN_DIR [--kill-at K]          # one process; SIGKILL before step K
    torchrun --nproc_per_node 2 tests/_tiny_trainer.py OUT --ddp  # the DDP check (see ddp_main)
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pdeflow.training import (
    Run,
    cleanup_distributed,
    clip_gradients,
    reduce_mean,
    seed_everything,
    setup_distributed,
    step_generator,
    wrap_ddp,
)


@dataclass
class TinyConfig:
    seed: int = 0
    steps: int = 10
    batch_size: int = 4
    size: int = 12
    lr: float = 1e-2
    clip: float | None = 0.5
    ckpt_every: int = 4
    val_every: int = 3


class TinyNet(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.25),
                                  nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


def target(x):
    """What the net learns: a 3x3 box blur."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def train(run_dir, cfg: TinyConfig, *, stop_at: int | None = None, kill_at: int | None = None,
          on_batch=None) -> nn.Module:
    """Train; `stop_at`: leave the loop before that step without finishing (a "kill" in
    process); `kill_at`: SIGKILL this process before that step (a real kill)."""
    rank, world_size, device = setup_distributed()
    seed_everything(cfg.seed, deterministic=True)
    net = TinyNet().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    model = wrap_ddp(net, device)
    run = Run(run_dir, cfg, models={"net": model}, optimizers={"opt": opt}, schedulers={"sched": sched},
              ckpt_every=cfg.ckpt_every, best_mode="min", quiet=True)
    start = run.resume()
    x_val = torch.rand(8, 1, cfg.size, cfg.size, generator=step_generator(cfg.seed, 0, stream=1))
    for step in run.steps(start, cfg.steps):
        if step == stop_at:
            return net
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        g = step_generator(cfg.seed, step, rank)
        x = torch.rand(cfg.batch_size, 1, cfg.size, cfg.size, generator=g).to(device)
        if on_batch is not None:
            on_batch(step, x)
        loss = F.mse_loss(model(x), target(x))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = clip_gradients(net, cfg.clip)
        opt.step()
        sched.step()
        run.log(step, loss=reduce_mean(loss.detach()), grad_norm=reduce_mean(gnorm), lr=sched.get_last_lr()[0])
        if (step + 1) % cfg.val_every == 0:
            net.eval()
            with torch.no_grad():
                val = reduce_mean(F.mse_loss(net(x_val.to(device)), target(x_val.to(device))))
            net.train()
            run.log(step, val=val)
            run.update_best(step, val)
    run.finish()
    return net


def ddp_main(out: Path) -> None:
    """Under torchrun: an uninterrupted run in out/full, an interrupted + resumed one in
    out/resumed; each rank reports its weights, its first batches and every file write it
    made inside the run directories (seen through an audit hook)."""
    rank, world_size, _ = setup_distributed()
    run_dirs = [(out / "full").resolve(), (out / "resumed").resolve()]
    writes: list[str] = []

    def audit(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.truncate"):
            path, writing = args[0], True
        else:
            return
        if writing and isinstance(path, (str, bytes, os.PathLike)):
            p = Path(os.fsdecode(path)).resolve()
            if any(p == d or d in p.parents for d in run_dirs):
                writes.append(f"{event} {p}")

    sys.addaudithook(audit)
    cfg = TinyConfig()
    batches = {}
    full = train(out / "full", cfg, on_batch=lambda s, x: batches.setdefault(s, float(x.sum())))
    train(out / "resumed", cfg, stop_at=7)
    resumed = train(out / "resumed", cfg)
    torch.save({"full": full.state_dict(), "resumed": resumed.state_dict()}, out / f"weights_rank{rank}.pt")
    report = {"rank": rank, "world_size": world_size, "writes": writes, "batches": batches,
              "mean_of_rank": reduce_mean(float(rank))}
    (out / f"report_rank{rank}.json").write_text(json.dumps(report))
    cleanup_distributed()
    # Everything is written and the group is left: end the process here, before the interpreter's
    # teardown. Gloo's threads have twice aborted a rank in that teardown in CI ("terminate called
    # without an active exception", after all the work), a race upstream of pdeflow that 30 runs here
    # (24 of them three at once) did not reproduce; what this check is about is done by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--ddp", action="store_true")
    ap.add_argument("--kill-at", type=int, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.ddp:
        ddp_main(a.dir)
    else:
        train(a.dir, TinyConfig(), kill_at=a.kill_at)
