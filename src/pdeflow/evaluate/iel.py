"""The noisy-label segmentation experiment of Liu et al. (2023), offline and resumable.

One run trains a :class:`~pdeflow.iel.unet.SegmentationUNet` with cross-entropy, with or
without heat-diffusion (or other) IELs after its logits, on clean or noisy
training labels, and records the validation Dice after every epoch::

    from pdeflow.evaluate.iel import RunConfig, train_run
    result = train_run(RunConfig(dataset="dsb2018", noise="blocks", iel=True), "runs/iel-s0")

An experiment is a grid of such runs, each in its own run directory (a
:class:`pdeflow.training.Run`: killed runs resume from ``last.pt``, finished
ones are skipped), aggregated at the end into ``summary.json``, ``table.md``
and a PNG of the Dice curves:

* ``compare`` -- {baseline, IELs} x {clean, noisy labels} x seeds.
* ``sweep`` -- IELs on noisy labels for every ``dt`` x ``layers``, plus the
  baseline on the same noisy labels, x seeds.

What a run does
---------------
1. Data (:mod:`pdeflow.iel.datasets`); the training label maps are made
   noisy **once** (:mod:`pdeflow.iel.noise`, seeded with the run's seed, so
   every seed sees its own noise realisation and the baseline and IEL runs of
   one seed see the same one). Validation labels are always clean.
2. Seeded init (:func:`~pdeflow.training.seed_everything`); an epoch is
   ``steps_per_epoch`` steps, by default as many as it takes for the crops
   to cover the training pixels once. Each step draws ``batch_size`` random
   ``crop x crop`` crops (image and label together,
   :func:`pdeflow.datasets.random_crops`) and random flips from
   :func:`~pdeflow.training.step_generator` ``(seed, step)`` and nothing else.
3. Loss: cross-entropy of ``net(x)`` against the (noisy) labels, where ``net``
   is the U-Net or ``with_iels(unet, ...)`` in ``train()`` mode, so the IELs
   sit between logits and loss. Adam (default) or the official code's
   RMSprop (momentum 0.9, weight decay 1e-8).
4. After every epoch: validation Dice in ``eval()`` mode (the IELs are off):
   argmax of the logits, :func:`pdeflow.metrics.dice` per image with the
   background excluded, averaged over the validation images.

Time step units: ``dt`` is PDE time per layer for the unit-spacing operators
of :mod:`pdeflow.iel.layers`; the official code's "dt 0.1" (kernel
``laplacian / 4``) is ``dt = 0.025`` here, which is the default, with 30 layers.

References
----------
.. [1] C. Liu, Z. Qiao, C. Li, C.-B. Schönlieb, "Inverse evolution layers: physics-informed regularizers
       for deep neural networks", arXiv:2307.07344, 2023.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from .. import training, viz
from ..errors import UserInputError
from ..iel.datasets import SegmentationData, load_dataset
from ..io import write_bytes
from ..reporting import format_mean_std, mean_std
from ..training import option
from ._iel_run import (
    RESULT_FILE,
    RunConfig,
    boundary_ratio,
    check_config,
    evaluate,
    prepare_data,
    train_run,
    write_json,
)

__all__ = ["PRESETS", "RunConfig", "check_config", "train_run", "prepare_data", "evaluate", "boundary_ratio",
           "ExperimentSpec", "check_spec", "plan_runs", "run_experiment", "aggregate", "RESULT_FILE"]

# One run (its config, data, loop and evaluation) lives in _run; this module is the experiments: grids of runs,
# their aggregation, table and figures.

def _spec_diff(saved: dict, given: dict, prefix: str = "") -> list[str]:
    """The fields in which two experiment descriptions differ, one short item each
    (``base.lr: saved 0.001, given 0.002``); nested dicts are compared field by field."""
    missing = object()
    items = []
    for key in sorted(set(saved) | set(given)):
        a, b = saved.get(key, missing), given.get(key, missing)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            items += _spec_diff(a, b, f"{prefix}{key}.")
            continue
        fmt = lambda v: "<absent>" if v is missing else json.dumps(v)  # noqa: E731
        items.append(f"{prefix}{key}: saved {fmt(a)}, given {fmt(b)}")
    return items

#: Network and training sizes of the two presets (:class:`RunConfig` fields): ``small`` is a check that
#: everything works in minutes on one CPU core, not a result; ``full`` the setting of the committed runs.
#: ``paper``: Liu et al.'s setting (U-Net of depth 5, width 64, 20 epochs at lr 1e-4; their IELs, heat with dt 0.1
#: on laplacian/4 = ``dt`` 0.025 here and 20-35 layers, are the ``--dt``/``--layers`` defaults); its CPU cost
#: is in docs/results/iel.md.
PRESETS = {
    "small": dict(width=8, depth=5, crop=64, batch_size=8, epochs=30, steps_per_epoch=None, lr=1e-3),
    "full": dict(width=16, depth=5, crop=128, batch_size=4, epochs=60, steps_per_epoch=10, lr=1e-3),
    "paper": dict(width=64, depth=5, crop=128, batch_size=4, epochs=20, steps_per_epoch=None, lr=1e-4),
}


# ---------------------------------------------------------------------------
# Experiments: grids of runs
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class ExperimentSpec:
    """A grid of runs. ``base`` holds everything the runs share (its ``noise`` is
    the noisy-label setting; ``iel``, ``seed``, ``dt`` and ``layers`` are set per run).

    Examples
    --------
    >>> from pdeflow.evaluate.iel import ExperimentSpec, RunConfig, plan_runs
    >>> spec = ExperimentSpec(mode="compare", base=RunConfig(dataset="synthetic", noise="blocks"), seeds=(0,))
    >>> [name for name, _, _ in plan_runs(spec)]
    ['clean-baseline-s0', 'clean-iel-dt0.025-n30-s0', 'noisy-baseline-s0', 'noisy-iel-dt0.025-n30-s0']
    """
    mode: str = option("compare", "compare: {{baseline, IELs}} x {{clean, noisy}}; sweep: IELs for every --dt x "
                                  "--layers on noisy labels, plus the baseline (default {default})",
                       choices=("compare", "sweep"))
    base: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(noise="blocks"))
    seeds: tuple = option((0, 1, 2), "seeds (weights, batches and the label noise) (default 0 1 2)",
                          type="nonneg_int", nargs="+", metavar="S")
    # the sweep axes (compare: exactly one value each)
    dts: tuple = option((RunConfig.dt,), "PDE time per layer (default {default[0]:g} = official 0.1 with "
                                         "laplacian/4); several values in sweep mode",
                        type="positive_float", nargs="+", metavar="DT", name="--dt")
    layers: tuple = option((RunConfig.layers,), "number of layers (default {default[0]}); several values in sweep "
                                                "mode", type="positive_int", nargs="+", metavar="N")


def check_spec(spec: ExperimentSpec) -> None:
    """Raise ValueError naming the first bad field of ``spec`` (and of its base config).

    Examples
    --------
    >>> from pdeflow.evaluate.iel import ExperimentSpec, check_spec
    >>> check_spec(ExperimentSpec(seeds=(0, 1)))
    >>> try:
    ...     check_spec(ExperimentSpec(mode="neither"))
    ... except ValueError:
    ...     print("rejected")
    rejected
    """
    if spec.mode not in ("compare", "sweep"):
        raise UserInputError(f"ExperimentSpec: mode must be 'compare' or 'sweep', got {spec.mode!r}")
    if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds):
        raise UserInputError(f"ExperimentSpec: seeds must be distinct and non-empty, got {spec.seeds!r}")
    if spec.base.noise == "none":
        raise UserInputError("ExperimentSpec: base.noise must name the noisy-label setting ('blocks' or 'windows'); "
                         "clean runs are added by the compare mode")
    if spec.mode == "compare" and (len(spec.dts) != 1 or len(spec.layers) != 1):
        raise UserInputError("ExperimentSpec: the compare mode takes one dt and one layers value "
                         f"(got dts {spec.dts}, layers {spec.layers}); use mode='sweep' for several")
    for dt in spec.dts:
        if not (math.isfinite(dt) and dt > 0):
            raise UserInputError(f"ExperimentSpec: dts must be > 0, got {dt!r}")
    for n in spec.layers:
        if not isinstance(n, int) or n < 1:
            raise UserInputError(f"ExperimentSpec: layers must be ints >= 1, got {n!r}")
    check_config(spec.base)


def plan_runs(spec: ExperimentSpec) -> list[tuple[str, dict, RunConfig]]:
    """The runs of ``spec``: ``(directory name, labels, RunConfig)`` in a fixed order.

    Examples
    --------
    >>> from pdeflow.evaluate.iel import ExperimentSpec, RunConfig, plan_runs
    >>> spec = ExperimentSpec(mode="sweep", base=RunConfig(noise="windows"), seeds=(0,),
    ...                       dts=(0.01, 0.025), layers=(20,))
    >>> for name, labels, cfg in plan_runs(spec):
    ...     print(name, cfg.iel, cfg.dt, cfg.layers)
    noisy-baseline-s0 False 0.025 30
    noisy-iel-dt0.01-n20-s0 True 0.01 20
    noisy-iel-dt0.025-n20-s0 True 0.025 20
    """
    check_spec(spec)
    b = spec.base
    out = []
    labels_noise = [("clean", "none"), ("noisy", b.noise)] if spec.mode == "compare" else [("noisy", b.noise)]
    iel_settings = [(dt, n) for dt in spec.dts for n in spec.layers]
    for seed in spec.seeds:
        for lab, noise in labels_noise:
            cfg = dataclasses.replace(b, noise=noise, iel=False, seed=int(seed))
            out.append((f"{lab}-baseline-s{seed}", {"labels": lab, "method": "baseline", "seed": seed}, cfg))
            for dt, n in iel_settings:
                cfg = dataclasses.replace(b, noise=noise, iel=True, dt=float(dt), layers=int(n), seed=int(seed))
                name = f"{lab}-iel-dt{dt:g}-n{n}-s{seed}"
                out.append((name, {"labels": lab, "method": "iel", "dt": dt, "layers": n, "seed": seed}, cfg))
    return out


def run_experiment(spec: ExperimentSpec, out_dir, *, device="cpu", shard: tuple[int, int] = (0, 1),
                   quiet: bool = True, data: SegmentationData | None = None, log=print) -> dict | None:
    """Train the runs of ``spec`` not finished yet (those of shard ``k`` of ``n``:
    run index ``i`` with ``i % n == k``) under ``out_dir/runs/``, then aggregate
    if every run of the grid is finished. Returns the summary, or None if runs
    are missing. Re-running the same call resumes; ``out_dir/experiment.json``
    guards against mixing two different experiments in one folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.iel.datasets import synthetic_blobs
    >>> from pdeflow.evaluate.iel import ExperimentSpec, RunConfig, run_experiment
    >>> base = RunConfig(dataset="synthetic", noise="blocks", width=4, depth=2, crop=16, batch_size=2, epochs=1,
    ...                  steps_per_epoch=1, layers=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     summary = run_experiment(ExperimentSpec(base=base, seeds=(0,), layers=(2,)), d,
    ...                              data=synthetic_blobs(2, 2, 16), log=lambda *a: None)
    ...     print(sorted(p.name for p in Path(d).iterdir()))
    ['curves.png', 'experiment.json', 'runs', 'summary.json', 'table.md']
    >>> sorted(summary)
    ['base_config', 'dataset', 'device', 'dts', 'layers', 'mode', 'rows', 'seeds', 'torch']
    """
    runs = plan_runs(spec)
    out_dir = Path(out_dir)
    k, n = shard
    if not (isinstance(n, int) and n >= 1 and isinstance(k, int) and 0 <= k < n):
        raise UserInputError(f"run_experiment: shard must be (k, n) with 0 <= k < n, got {shard!r}")
    spec_dict = {"mode": spec.mode, "base": training.config_to_dict(spec.base), "seeds": list(spec.seeds),
                 "dts": list(spec.dts), "layers": list(spec.layers)}
    mine = [r for i, r in enumerate(runs) if i % n == k]
    todo = [r for r in mine if not (out_dir / "runs" / r[0] / RESULT_FILE).exists()]
    spec_path = out_dir / "experiment.json"
    if spec_path.exists():
        saved = json.loads(spec_path.read_text())
        if saved != spec_dict:
            raise training.RunConfigError(f"{out_dir} holds a different experiment ("
                                          + "; ".join(_spec_diff(saved, spec_dict)) + "); use another --out folder")
    if todo and data is None:     # once for all runs, and before anything is written
        data = load_dataset(spec.base.dataset, spec.base.data_path)
    if not spec_path.exists():
        write_json(spec_path, spec_dict)
    for i, (name, _, cfg) in enumerate(mine):
        run_dir = out_dir / "runs" / name
        if (run_dir / RESULT_FILE).exists():
            continue
        t0 = time.monotonic()
        log(f"[{i + 1}/{len(mine)}] {name} ...")
        res = train_run(cfg, run_dir, device=device, quiet=quiet, data=data)
        log(f"[{i + 1}/{len(mine)}] {name}: final Dice {res['final_dice']:.4f} "
            f"(best {res['best_dice']:.4f} at epoch {res['best_epoch']}), {time.monotonic() - t0:.0f} s")
    missing = [name for name, _, _ in runs if not (out_dir / "runs" / name / RESULT_FILE).exists()]
    if missing:
        log(f"{len(missing)} of {len(runs)} runs are not finished yet; the summary is written when all are")
        return None
    return aggregate(spec, out_dir)


def _mean_std(values) -> dict:
    mean, std = mean_std(values, ddof=1)
    return {"mean": mean, "std": std, "n": len(values), "values": [float(v) for v in values]}


def aggregate(spec: ExperimentSpec, out_dir) -> dict:
    """Read every run's result and write ``summary.json``, ``table.md`` and ``curves.png``
    (compare) or ``sweep.png`` (sweep) into ``out_dir``. Returns the summary.

    Statistics over seeds: mean and sample standard deviation (ddof 1) of the
    final-epoch Dice, of the best-epoch Dice (optimistic: chosen on the
    validation set itself), and of the paired difference IEL - baseline
    (same seed, same noise realisation).

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.iel.datasets import synthetic_blobs
    >>> from pdeflow.evaluate.iel import ExperimentSpec, RunConfig, aggregate, run_experiment
    >>> base = RunConfig(dataset="synthetic", noise="blocks", width=4, depth=2, crop=16, batch_size=2, epochs=1,
    ...                  steps_per_epoch=1, layers=2)
    >>> spec = ExperimentSpec(base=base, seeds=(0,), layers=(2,))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = run_experiment(spec, d, data=synthetic_blobs(2, 2, 16), log=lambda *a: None)
    ...     summary = aggregate(spec, d)  # again, from the runs' result.json files
    >>> summary["mode"], [(row["labels"], row["method"]) for row in summary["rows"]]
    ('compare', [('clean', 'baseline'), ('clean', 'iel'), ('noisy', 'baseline'), ('noisy', 'iel')])
    """
    out_dir = Path(out_dir)
    runs = plan_runs(spec)
    results = {}
    for name, lab, _ in runs:
        results[name] = (lab, json.loads((out_dir / "runs" / name / RESULT_FILE).read_text()))
    groups: dict[tuple, list] = {}
    for name, (lab, res) in results.items():
        key = (lab["labels"], lab["method"], lab.get("dt"), lab.get("layers"))
        groups.setdefault(key, []).append((lab["seed"], res))
    rows = []
    for key, items in groups.items():
        items.sort(key=lambda t: t[0])
        labels, method, dt, layers = key
        base_items = dict(groups[(labels, "baseline", None, None)])
        row = {"labels": labels, "method": method, "dt": dt, "layers": layers,
               "seeds": [s for s, _ in items],
               "final_dice": _mean_std([r["final_dice"] for _, r in items]),
               "best_dice": _mean_std([r["best_dice"] for _, r in items]),
               # runs written before mIoU was recorded have none
               "final_miou": (_mean_std([r["final_miou"] for _, r in items])
                              if all("final_miou" in r for _, r in items) else None),
               "curves": [r["val_dice"] for _, r in items],
               "curve_mean": np.mean([r["val_dice"] for _, r in items], axis=0).tolist(),
               "curve_std": (np.std([r["val_dice"] for _, r in items], axis=0, ddof=1).tolist()
                             if len(items) > 1 else [0.0] * len(items[0][1]["val_dice"])),
               "label_noise_fraction": _mean_std([r["label_noise_fraction"] for _, r in items]),
               "boundary_ratio": (_mean_std([r["final_boundary_ratio"] for _, r in items])
                                  if all("final_boundary_ratio" in r for _, r in items) else None),
               "wall_time_s": float(sum(r["wall_time_s"] for _, r in items))}
        if method != "baseline":
            row["final_minus_baseline"] = _mean_std([r["final_dice"] - base_items[s]["final_dice"]
                                                     for s, r in items])
        rows.append(row)
    first = next(iter(results.values()))[1]
    summary = {"mode": spec.mode, "dataset": first["dataset"], "base_config": training.config_to_dict(spec.base),
               "seeds": list(spec.seeds), "dts": list(spec.dts), "layers": list(spec.layers),
               "device": first["device"], "torch": first["torch"], "rows": rows}
    write_json(out_dir / "summary.json", summary)
    table = _table(summary).encode()
    write_bytes(out_dir / "table.md", table)
    fig = _curves_figure(summary) if spec.mode == "compare" else _sweep_figure(summary)
    _save_figure(fig, out_dir / ("curves.png" if spec.mode == "compare" else "sweep.png"))
    return summary


def _fmt(ms: dict, signed: bool = False, digits: int = 4) -> str:
    return format_mean_std(ms["mean"], ms["std"], ms.get("n"), digits, signed=signed)


def _method_name(row: dict) -> str:
    return "baseline" if row["method"] == "baseline" else f"IELs (dt {row['dt']:g}, {row['layers']} layers)"


def _table(summary: dict) -> str:
    b = summary["base_config"]
    op = b["operator"] + (f"({b['operator_param']:g})" if b["operator_param"] is not None else "")
    noise = (f"{b['noise']} s={b['noise_size']}, " +
             (f"keep={b['noise_keep']:g}" if b["noise"] == "blocks" else f"area={b['noise_area']:g}"))
    lines = [
        f"# IEL experiment ({summary['mode']}): {b['dataset']}",
        "",
        f"Data: {summary['dataset']}.",
        f"U-Net width {b['width']}, depth {b['depth']}; {b['epochs']} epochs, crops {b['crop']}, batch "
        f"{b['batch_size']}, {b['optimizer']} lr {b['lr']:g}; IELs: {op}, boundary {b['boundary']} "
        f"(dt in PDE time per layer, unit-spacing operator); noisy labels: {noise}. "
        f"Seeds {summary['seeds']}; device {summary['device']}, torch {summary['torch']}.",
        "",
        "Validation Dice (background excluded, per image, mean over images), mean ± std over seeds "
        "(sample std). *Final*: after the last epoch. *Best*: best epoch, chosen on the validation set "
        "itself (optimistic). *Final mIoU*: mean IoU over the classes but the background, per image, after the "
        "last epoch. *Δ final*: paired difference to the baseline of the same seed and labels. "
        "*Boundary ratio*: total boundary length (TV) of the final predicted foreground over that of the "
        "true validation masks (1: as ragged as the truth; > 1: specks and frayed edges).",
        "",
        "| labels | method | changed label pixels | final Dice | final mIoU | best Dice | Δ final vs baseline "
        "| boundary ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(summary["rows"], key=lambda r: (r["labels"], r["method"] != "baseline",
                                                     r["dt"] or 0, r["layers"] or 0)):
        delta = _fmt(r["final_minus_baseline"], signed=True) if "final_minus_baseline" in r else "—"
        lines.append(f"| {r['labels']} | {_method_name(r)} | {r['label_noise_fraction']['mean']:.3f} | "
                     f"{_fmt(r['final_dice'])} | {_fmt(r['final_miou']) if r.get('final_miou') else '—'} | "
                     f"{_fmt(r['best_dice'])} | {delta} | "
                     f"{_fmt(r['boundary_ratio'], digits=2) if r.get('boundary_ratio') else '—'} |")
    return "\n".join(lines) + "\n"


def _save_figure(fig, path: Path) -> None:
    write_bytes(path, viz.figure_png(fig))


def _curves_figure(summary: dict):
    fig = viz.figure(7, 4.5)
    ax = fig.add_subplot()
    colours = {"baseline": "tab:green", "iel": "tab:red"}
    for r in summary["rows"]:
        m, s = np.asarray(r["curve_mean"]), np.asarray(r["curve_std"])
        ep = np.arange(1, m.size + 1)
        style = "-" if r["labels"] == "clean" else "--"
        ax.plot(ep, m, style, marker="o" if m.size == 1 else None, color=colours[r["method"]],
                label=f"{_method_name(r)}, {r['labels']} labels")
        ax.fill_between(ep, np.clip(m - s, 0, 1), np.clip(m + s, 0, 1), color=colours[r["method"]], alpha=0.12,
                        linewidth=0)
        for c in r["curves"]:      # each seed, thin: a collapsed seed shows as its own line
            ax.plot(ep, c, style, color=colours[r["method"]], alpha=0.35, linewidth=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Dice")
    ax.set_title(f"{summary['base_config']['dataset']}: mean ± std over {len(summary['seeds'])} seeds "
                 "(thin: each seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _sweep_figure(summary: dict):
    """Left: final Dice per (dt, layers), the colour scale spanning the values and the baseline;
    right: the mean Dice curves (colour: dt, line style: layers; black: the baseline), which
    show whether a setting only delays the baseline's decline or stops it."""
    dts, layers = summary["dts"], summary["layers"]
    grid = np.full((len(layers), len(dts)), np.nan)
    spread = np.full_like(grid, np.nan)
    base = next(r for r in summary["rows"] if r["method"] == "baseline")
    iel_rows = [r for r in summary["rows"] if r["method"] == "iel"]
    for r in iel_rows:
        i, j = layers.index(r["layers"]), dts.index(r["dt"])
        grid[i, j], spread[i, j] = r["final_dice"]["mean"], r["final_dice"]["std"]
    several = len(summary["seeds"]) > 1
    lo = min(np.nanmin(grid), base["final_dice"]["mean"])
    hi = max(np.nanmax(grid), base["final_dice"]["mean"])
    curves = len(base["curve_mean"]) > 1      # one epoch: no curve to draw, so no empty panel
    fig = viz.figure((5.5 if curves else 1.5) + 1.3 * len(dts), 1.8 + 0.8 * max(len(layers), 4))
    if curves:
        ax, ax_curves = fig.subplots(1, 2, gridspec_kw={"width_ratios": [0.9 + 0.45 * len(dts), 4]})
    else:
        ax = fig.subplots()
    im = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto", vmin=lo, vmax=max(hi, lo + 1e-3))
    for i in range(len(layers)):
        for j in range(len(dts)):
            text = f"{grid[i, j]:.3f}" + (f"\n± {spread[i, j]:.3f}" if several else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="k" if grid[i, j] > lo + 0.6 * (hi - lo) else "w")
    ax.set_xticks(range(len(dts)), [f"{d:g}" for d in dts])
    ax.set_yticks(range(len(layers)), [str(n) for n in layers])
    ax.set_xlabel("dt (PDE time per layer)")
    ax.set_ylabel("layers")
    base_text = format_mean_std(base["final_dice"]["mean"], base["final_dice"]["std"], len(summary["seeds"]), 3)
    ax.set_title(f"final Dice, noisy labels\n(baseline {base_text})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.08)
    if not curves:
        return fig
    colours = dict(zip(dts, ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown", "tab:pink")))
    styles = dict(zip(layers, (":", "--", "-", "-.")))
    epochs = np.arange(1, len(base["curve_mean"]) + 1)
    ax_curves.plot(epochs, base["curve_mean"], color="k", linewidth=2, label="baseline")
    for r in iel_rows:
        ax_curves.plot(epochs, r["curve_mean"], styles.get(r["layers"], "-"), color=colours.get(r["dt"], "tab:gray"),
                       linewidth=1.2, label=f"dt {r['dt']:g} x {r['layers']} (T = {r['dt'] * r['layers']:g})")
    ax_curves.set_xlabel("epoch")
    ax_curves.set_ylabel("validation Dice" + (" (mean over seeds)" if several else ""))
    ax_curves.set_title(f"{summary['base_config']['dataset']}: Dice per epoch; T = dt x layers", fontsize=9)
    ax_curves.grid(alpha=0.3)
    ax_curves.legend(fontsize=7, ncol=2)
    return fig
