"""Validation PSNR of TVflowNET training runs against steps and CPU time, in one figure.

    python experiments/tvflownet_curves.py RUN_DIR [RUN_DIR ...] [--out DIR]

Reads each run's ``log.csv`` (written by ``pdeflow train tvflownet``) and its
``config.json`` (for the label), and draws the identity's PSNR (``u(t) = u0``,
from the run's exported model.json) as a dashed line when known. Prints the
best validation PSNR of each run with its step and wall time. Writes ``training_curves.png`` to
``--out`` (default a fresh folder under runs/benchmarks/; the committed figure:
``--out benchmarks/results/tvflownet --overwrite``).

Historical. It plotted the TVflowNET training runs' validation curves. Its results are kept for the record; it
is not expected to run against today's API. It still imported and parsed its options against today's API when
it was marked.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from _results import add_output_args, add_run_dirs_arg, check_run_dirs, open_out, save_figure  # experiments/_results.py


def read_run(run_dir: Path) -> dict:
    log = run_dir / "log.csv"
    if not log.is_file():
        raise SystemExit(f"{run_dir}: no log.csv (not a pdeflow training run directory)")
    steps, walls, psnrs = [], [], []
    with open(log, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("val_psnr"):
                steps.append(int(row["step"]) + 1)
                walls.append(float(row["wall_time"]) / 3600)
                psnrs.append(float(row["val_psnr"]))
    cfg = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    meta = run_dir / "model.json"
    identity = None
    if meta.is_file():
        identity = json.loads(meta.read_text()).get("provenance", {}).get("val_psnr_identity")
    label = f"{cfg.get('arch', '?')}, crop {cfg.get('crop', '?')}, {cfg.get('mode', '?')}"
    return {"label": label, "steps": steps, "hours": walls, "psnr": psnrs, "identity": identity}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_dirs_arg(ap)
    add_output_args(ap, "tvflownet_curves", what="training_curves.png")
    args = ap.parse_args(argv)
    check_run_dirs(ap, args.runs)
    out = open_out(args, argv)
    runs = [read_run(r) for r in args.runs]

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for run in runs:
        best = max(range(len(run["psnr"])), key=run["psnr"].__getitem__) if run["psnr"] else None
        if best is not None:
            print(f"{run['label']}: best {run['psnr'][best]:.2f} dB at step {run['steps'][best]} "
                  f"({run['hours'][best]:.2f} h)")
        for ax, x in zip(axes, ("steps", "hours")):
            ax.plot(run[x], run["psnr"], marker=".", label=run["label"])
    identity = next((r["identity"] for r in runs if r["identity"] is not None), None)
    for ax, xlabel in zip(axes, ("training steps", "wall time (hours, one CPU core)")):
        if identity is not None:
            ax.axhline(identity, color="grey", ls="--", lw=1, label="identity u(t) = u0")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation PSNR (dB)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "training_curves.png", dpi=120)
    print(f"wrote {out / 'training_curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
