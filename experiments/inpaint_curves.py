"""Validation curves of the learned-inpainting training runs: MAE and SSIM per density against steps.

    python experiments/inpaint_curves.py RUN_DIR [RUN_DIR ...] [--out DIR]

Reads each run's ``log.csv`` and ``config.json``, as written by ``pdeflow train masknet`` and
``pdeflow train residual`` (stages residual and joint). One column per density, MAE (0-255) above and
SSIM below, one line per run, and the run's own baseline on the same validation crops as a dashed line
of the same colour: the analytic mask (``val_baselines.json`` of a mask-network run) or diffusion on
the same masks (``val_diff_*`` of a residual or joint run; a joint run's masks change as it trains,
its line is the last validation's). Prints the best validation row of each run.
Writes ``training_curves.png`` to ``--out`` (default a fresh folder under runs/benchmarks/; the committed
figure: ``--out benchmarks/results/inpaint/curves --overwrite``).

Historical. It plotted the validation curves of the learned-inpainting training runs. Its results are kept for
the record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

from _results import add_output_args, add_run_dirs_arg, check_run_dirs, open_out, save_figure  # experiments/_results.py

_VAL = re.compile(r"^val_(mae255|ssim)_(\d\d)$")


def read_run(run_dir: Path) -> dict:
    """Validation rows of one run: {tag: {"step": [...], "mae255": [...], "ssim": [...]}} and its baselines."""
    curves: dict[str, dict[str, list]] = {}
    base: dict[str, dict[str, float]] = {}
    with open(run_dir / "log.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            for key, value in row.items():
                m = _VAL.match(key or "")
                if not m or not value:
                    continue
                metric, tag = m.groups()
                c = curves.setdefault(tag, {"step": [], "mae255": [], "ssim": []})
                if metric == "mae255":
                    c["step"].append(int(row["step"]) + 1)
                c[metric].append(float(value))
                diff = row.get(f"val_diff_{metric}_{tag}")
                if diff:
                    base.setdefault(tag, {})[metric] = float(diff)
    baselines = run_dir / "val_baselines.json"
    if baselines.is_file():
        for tag, rows in json.loads(baselines.read_text()).items():
            if "analytic_snap" in rows:
                base[tag] = {k: rows["analytic_snap"][k] for k in ("mae255", "ssim")}
    cfg = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    kind = ("joint fine-tune" if cfg.get("stage") == "joint" else "residual inpainter"
            if "stage" in cfg else "mask network")
    return {"label": f"{run_dir.name}: {kind}", "curves": curves, "base": base,
            "base_label": "diffusion, same masks" if "stage" in cfg else "analytic mask"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_dirs_arg(ap)
    add_output_args(ap, "inpaint_curves", what="training_curves.png")
    args = ap.parse_args(argv)
    check_run_dirs(ap, args.runs)
    out = open_out(args, argv)
    runs = [read_run(r) for r in args.runs]
    tags = sorted({t for r in runs for t in r["curves"]})

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(tags), figsize=(4.2 * len(tags), 6.4), squeeze=False)
    for i, run in enumerate(runs):
        colour = f"C{i % 10}"
        for j, tag in enumerate(tags):
            c = run["curves"].get(tag)
            if not c:
                continue
            for row, metric in enumerate(("mae255", "ssim")):
                ax = axes[row, j]
                ax.plot(c["step"], c[metric], color=colour, marker=".", label=run["label"])
                if metric in run["base"].get(tag, {}):
                    ax.axhline(run["base"][tag][metric], color=colour, ls="--", lw=0.8,
                               label=f"{run['label']}: {run['base_label']}")
            best = min(range(len(c["mae255"])), key=c["mae255"].__getitem__)
            print(f"{run['label']}, {int(tag)} %: best validation MAE {c['mae255'][best]:.3f} / SSIM "
                  f"{c['ssim'][best]:.4f} at step {c['step'][best]}"
                  + (f" (baseline {run['base'][tag]['mae255']:.3f} / {run['base'][tag]['ssim']:.4f})"
                     if "mae255" in run["base"].get(tag, {}) else ""))
    for j, tag in enumerate(tags):
        axes[0, j].set_title(f"density {int(tag)} %")
        axes[1, j].set_xlabel("step")
    axes[0, 0].set_ylabel("validation MAE (0-255)")
    axes[1, 0].set_ylabel("validation SSIM")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.025 * (len(labels) // 2), 1, 1))
    save_figure(fig, out / "training_curves.png", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
