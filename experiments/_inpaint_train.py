"""Shared by the inpainting trainer scripts (``inpaint_masknet_train.py``, ``inpaint_residual_train.py``):
the options both take, and what both do before training."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch


def trainer_parser(doc: str, *, steps: int, val_crops: int, lr: float) -> argparse.ArgumentParser:
    """A parser (described by the first line of ``doc``) with the options both trainer scripts take."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--data", nargs="+", default=["builtin", ".data/photos/opencv"])
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--val-crops", type=int, default=val_crops)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--ssim-weight", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-5, help="solver tolerance in training")
    return p


def shared_config(args) -> tuple[dict, str]:
    """One torch thread (a shared CPU); returns the config fields of the shared options (``data`` with
    folders made absolute) and this command line, for the trained model's provenance."""
    torch.set_num_threads(1)
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in sys.argv)
    data = tuple(str(Path(d).resolve()) if d != "builtin" else d for d in args.data)
    return dict(data=data, steps=args.steps, val_every=args.val_every, val_crops=args.val_crops,
                batch_size=args.batch_size, lr=args.lr, ssim_weight=args.ssim_weight, seed=args.seed,
                tol=args.tol), command
