"""Score TVflowNET checkpoints, and their average, on a run's own validation set.

    python experiments/tvflownet_checkpoints.py RUN_DIR CKPT.pt [CKPT.pt ...] [--no-average]

At a constant learning rate the weights of a long run wander from checkpoint to checkpoint; this
measures how much (the trainer's validation PSNR of each checkpoint: u against the reference on the
run's held-out crops, dB) and whether averaging the checkpoints' weights helps (the alternative to a
cool-down). RUN_DIR supplies the config and the cached validation set (``val_reference.pt``); the
checkpoints (``last.pt``/``best.pt`` of that run, or copies) must hold the same architecture.
Printed, and written to ``--out`` (log.txt; default a fresh folder under runs/benchmarks/).

Historical. It scored TVflowNET checkpoints and their average when choosing the shipped models. Its results
are kept for the record; it is not expected to run against today's API. It still imported and parsed its
options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow.training import load_checkpoint
from pdeflow.tvflownet import build_model
from pdeflow.tvflownet.train import TrainConfig, open_data, validate, validation_set


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="the run whose config and validation set are used")
    ap.add_argument("checkpoints", nargs="+", help="checkpoint files of that run (last.pt, best.pt or copies)")
    ap.add_argument("--no-average", action="store_true", help="skip the average of the checkpoints' weights")
    add_output_args(ap, "tvflownet_checkpoints", what="log.txt")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    run = Path(args.run_dir)
    cfg = TrainConfig(**json.loads((run / "config.json").read_text()))
    val = validation_set(cfg, open_data(cfg)[1], run)

    def score(state) -> float:
        net = build_model(cfg.arch, **cfg.arch_kwargs)
        net.load_state_dict(state)
        return validate(net, val, cfg)

    states = []
    print(f"validation PSNR (dB) of u on {run}'s held-out crops")
    for path in args.checkpoints:
        ckpt = load_checkpoint(path)
        states.append(ckpt["models"]["net"])
        print(f"{Path(path).name} (step {ckpt['step']}): {score(states[-1]):.3f}", flush=True)
    if len(states) > 1 and not args.no_average:
        avg = {k: (sum(s[k].double() for s in states) / len(states)).to(states[0][k].dtype) for k in states[0]}
        print(f"average of the {len(states)} checkpoints' weights: {score(avg):.3f}")


if __name__ == "__main__":
    main()
