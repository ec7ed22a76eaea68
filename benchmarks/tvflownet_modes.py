"""Supervised, unsupervised and hybrid TVflowNET training side by side: validation PSNR against CPU-hours.

    python benchmarks/tvflownet_modes.py --arch unet --steps 10000 --runs-dir runs/modes
    python benchmarks/tvflownet_modes.py --runs runs/unet-unsup-s0 runs/unet-unsup-s1 runs/modes/supervised-s0

With ``--runs-dir`` the script trains one run per mode and seed (``pdeflow.tvflownet.train.train``: the
same architecture, data, crops, steps and schedule; the mode changes only the objective, and ``hybrid``
is supervised for a quarter of the steps, then loss (12)), one thread, one run after the other; a run
directory that exists is resumed (the same command again continues where it stopped). With ``--runs``
it reads finished or unfinished runs as they are. Each run's ``log.csv`` gives the trainer's validation
PSNR (96 px crops of its held-out photos, 10 times, against the reference flow) and the CPU seconds of
training at each validation (``cpu_time``; a run logged before that column existed is read at its
recorded CPU seconds per step, stated as an estimate). Writes ``curves.json`` (per run: mode, seed,
steps, CPU-hours, validation PSNR, the identity's PSNR), ``table.md`` (per run: CPU seconds per step,
the best validation PSNR, and the best reached within the budget of the shortest run: the comparison
at equal CPU) and ``curves.png``.

Maintained. It trains and reads today's trainer; the test suite runs it with ``--smoke`` (a Semi-ResNet
of width 4 on 16 px crops, three steps per mode).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from _results import add_output_args, open_out  # benchmarks/_results.py
from pdeflow import viz
from pdeflow.reporting import md_table
from pdeflow.tvflownet.train import MODES, TrainConfig, train

DATA = ["builtin", ".data/photos/opencv", ".data/photos/lomiri"]     # the Makefile's training pools


def read_run(run_dir: Path) -> dict:
    """A run's validation curve: steps, CPU-hours and PSNR at each validation, with its mode and seed."""
    cfg = json.loads((run_dir / "config.json").read_text())
    with open(run_dir / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_psnr")]
    meta = json.loads((run_dir / "model.json").read_text()) if (run_dir / "model.json").is_file() else {}
    prov = meta.get("provenance", {})
    estimated = not rows or not rows[0].get("cpu_time")
    if estimated:   # logged before the cpu_time column: the run's CPU seconds per step so far
        per_step = (prov.get("cpu_time_s") or 0.0) / max(1, prov.get("steps_total") or 1)
        cpu = [(int(r["step"]) + 1) * per_step for r in rows]
    else:
        cpu = [float(r["cpu_time"]) for r in rows]
    return {"run": run_dir.name, "mode": cfg["mode"], "seed": cfg["seed"], "arch": cfg["arch"],
            "steps": [int(r["step"]) + 1 for r in rows], "cpu_hours": [c / 3600 for c in cpu],
            "val_psnr": [float(r["val_psnr"]) for r in rows], "identity_psnr": prov.get("val_psnr_identity"),
            "cpu_estimated": estimated}


def summary(curves: list[dict]) -> tuple[float, list[list[str]]]:
    """The equal budget (the shortest run's CPU-hours) and one table row per run."""
    budget = min(c["cpu_hours"][-1] for c in curves if c["cpu_hours"])
    rows = []
    for c in curves:
        within = [p for p, h in zip(c["val_psnr"], c["cpu_hours"]) if h <= budget * (1 + 1e-9)]
        per_step = 3600 * c["cpu_hours"][-1] / c["steps"][-1]
        rows.append([c["run"], c["mode"], str(c["seed"]), f"{c['steps'][-1]}",
                     f"{per_step:.3f}" + (" (est.)" if c["cpu_estimated"] else ""),
                     f"{max(c['val_psnr']):.2f}", f"{max(within):.2f}" if within else "—",
                     "—" if c["identity_psnr"] is None else f"{c['identity_psnr']:.2f}"])
    return budget, rows


def figure(curves: list[dict]):
    fig = viz.figure(6.5, 4.0)
    ax = fig.subplots()
    colours = {m: f"C{i}" for i, m in enumerate(MODES)}
    for c in curves:
        ax.plot(c["cpu_hours"], c["val_psnr"], ".-", color=colours.get(c["mode"], "k"), lw=1, ms=3,
                label=f"{c['mode']}, seed {c['seed']}")
    ident = [c["identity_psnr"] for c in curves if c["identity_psnr"] is not None]
    if ident:
        ax.axhline(ident[0], color="grey", lw=0.8, ls="--", label="identity u(t) = u0")
    ax.set_xlabel("CPU-hours of training (one thread)")
    ax.set_ylabel("validation PSNR of u (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, nargs="+", help="read these run directories (no training)")
    ap.add_argument("--runs-dir", type=Path, help="train one run per mode and seed here (resumed if present)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--smoke", action="store_true", help="a tiny Semi-ResNet, three steps per mode")
    add_output_args(ap, "tvflownet_modes", what="curves.json, table.md, curves.png")
    args = ap.parse_args(argv)
    if not args.smoke and (args.runs is None) == (args.runs_dir is None):
        ap.error("give --runs or --runs-dir")
    out = open_out(args, argv)
    torch.set_num_threads(1)
    if args.smoke:
        args.runs_dir = out / "runs"
    run_dirs = list(args.runs or [])
    if args.runs_dir is not None:
        for mode in args.modes:
            for seed in args.seeds:
                kw = dict(arch=args.arch, mode=mode, seed=seed, steps=args.steps, crop="32", data=tuple(DATA),
                          lr_schedule="cosine", hybrid_fraction=0.25)
                if args.smoke:
                    kw.update(arch="semiresnet", arch_kwargs={"width": 4, "depth": 2}, data=("builtin",),
                              crop="16", steps=3, batch_size=2, val_every=1, val_crops=1, val_size=16,
                              val_times=2, val_dt=0.1, val_tol=1e-3, ref_dt=0.1, ref_tol=1e-2)
                run_dir = args.runs_dir / f"{mode}-s{seed}"
                print(f"{mode}, seed {seed}: {run_dir}", flush=True)
                train(TrainConfig(**kw), run_dir, quiet=args.smoke,   # a real run: progress lines, warnings counted
                      command=f"python benchmarks/tvflownet_modes.py --arch {kw['arch']} --steps {kw['steps']} "
                              f"(mode {mode}, seed {seed})")
                run_dirs.append(run_dir)
    curves = [read_run(Path(d)) for d in run_dirs]
    budget, rows = summary(curves)
    table = md_table(["run", "mode", "seed", "steps", "CPU s / step", "best val PSNR",
                      f"best within {budget:.3g} CPU-h", "identity"], rows)
    print(table)
    (out / "table.md").write_text(f"Equal budget: {budget:.3g} CPU-hours (the shortest run).\n\n{table}\n")
    (out / "curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    figure(curves).savefig(out / "curves.png", dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
