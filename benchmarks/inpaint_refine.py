"""Test-time mask refinement: inpainting quality against CPU time per mask (issue 12, item 4).

Masks at 5, 10 and 20 % for held-out 64 x 64 crops, from the analytic mask of Belhachmi, Bucur,
Burgeth, Weickert (2009) (smoothing ``sigma = 0.45 / sqrt(density)`` px as the mask networks, snapped) (and from trained mask networks given with --learned), refined by
:func:`pdeflow.inpaint.refine_mask` with ``n`` blue-noise tile shifts and ``r`` adjoint-guided
exchange rounds; MAE (0-255) and SSIM of homogeneous diffusion inpainting, and CPU seconds per mask
(start mask + refinement, all crops of a set in one batch, one thread). Reference points: probabilistic
sparsification (PS) and PS + non-local pixel exchange (NLPE) on the same crops, and the budget
"100x faster than PS".

Crop sets:

* ``eval``: the 8 crops of ``pdeflow evaluate inpainting`` (seed 0, built-in TEST photos); PS and
  PS+NLPE are read from that evaluation's results.json (--eval-json), not recomputed.
* ``extra``: ``--n-extra`` other crops of the built-in TEST photos (crop seed ``--extra-seed``); PS on
  them is computed once (about 30 CPU-s per crop for the three densities) and cached in --ps-cache
  (default OUT/ps_extra.json, started from a copy of the committed
  benchmarks/results/inpaint/refine_single/ps_extra.json, PS timed with the current diffusion solver,
  which is never written unless named); with --no-compute-ps only the crops already in the cache are used.

All refinements of one (set, density, start, n) come from one ``refine_mask`` run with the largest
``r``: the quality after round ``r`` is read by its callback (the masks after ``r`` rounds are those of
an ``r``-round run), and the time to there is the CPU time up to that callback (including that
round's adjoint solve, which an ``r``-round run skips: slightly pessimistic). Times are CPU seconds
of this single-threaded process (time.process_time), which stay meaningful on a shared, loaded
machine; PS times: the evaluation's (wall clock, one thread) and this cache's CPU seconds. With
``--one-at-a-time`` each crop is refined by its own call (the evaluation's way; per-call overhead counts
fully) and the time is the mean over the crops; ``pdeflow.inpaint.evaluate.REFINE`` was chosen so
(benchmarks/results/inpaint/refine_single/).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/inpaint_refine.py                 # a fresh runs/benchmarks/ folder
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/inpaint_refine.py --out benchmarks/results/inpaint/refine \
        --overwrite                                                               # the committed results

Historical. It chose the settings of test-time mask refinement. Its results are kept for the record; it is not
expected to run against today's API. It still imported and parsed its options against today's API when it was
marked.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
COMMITTED_PS = ROOT / "results" / "inpaint" / "refine_single" / "ps_extra.json"   # PS timed with today's solver

from _ps_extra import ps_reference  # noqa: E402
from _results import add_output_args, open_out, save_figure, write_file  # noqa: E402
from inpaint_learned_masks import sigma_for  # noqa: E402  (the analytic smoothing the mask networks use)
from pdeflow.inpaint import diffuse, refine_mask  # noqa: E402
from pdeflow.inpaint.evaluation import test_images  # noqa: E402
from pdeflow.inpaint.masks.analytic import analytic_mask, laplacian_density  # noqa: E402
from pdeflow.inpaint.masks.snapping import extremality  # noqa: E402
from pdeflow.metrics import mae, ssim  # noqa: E402


def _cpu() -> float:
    return time.process_time()


def load_sets(args, notes) -> list[dict]:
    sets = []
    f, names = test_images(8, 64, seed=0)
    ev = {"name": "eval", "label": "the evaluation's 8 crops (built-in TEST photos, seed 0)", "f": f.double(),
          "names": names, "ref": {}, "ref_n": 8, "ref_time": "wall s, one thread (the evaluation's run)"}
    try:
        r = json.loads(Path(args.eval_json).read_text())
        s = r["settings"]
        if (s["n_images"], s["size"], s["seed"], s["channels"], s["image_dir"]) != (8, 64, 0, 1, None):
            raise ValueError("settings differ from 8 crops of 64 px, seed 0, grey, built-in photos")
        for m in ("ps", "ps-nlpe"):
            for d in args.densities:
                rows = r["per_image"][m][str(d)]
                ev["ref"].setdefault(m, {})[d] = [{"mae255": x["mae255"], "ssim": x["ssim"], "s": x["mask_s"]}
                                                  for x in rows]
    except (OSError, KeyError, ValueError) as e:
        notes.append(f"PS references of the eval crops unavailable ({type(e).__name__}: {e})")
    sets.append(ev)
    if args.n_extra > 0:
        f, names = test_images(args.n_extra, 64, seed=args.extra_seed)
        cache = Path(args.ps_cache)
        data = None
        if args.compute_ps:
            data = ps_reference(f, names, list(args.densities), cache, seed=args.extra_seed, nlpe=args.nlpe,
                                log=lambda s: print(s, flush=True))
        elif cache.is_file():
            data = json.loads(cache.read_text())
            if data.get("key", {}).get("names") != names \
                    or not set(args.densities) <= set(data["key"].get("densities", [])):
                notes.append(f"{cache} is for other crops or densities: not used")
                data = None
        n = args.n_extra
        ref, n_cov = {}, 0
        if data is not None:
            n_cov = min(len(data["ps"][str(d)]) for d in args.densities)
            for m in ("ps", "ps-nlpe"):
                rows = {d: data[m][str(d)] for d in args.densities}
                if n_cov and all(len(v) >= n_cov for v in rows.values()):
                    ref[m] = {d: [{"mae255": x["mae255"], "ssim": x["ssim"], "s": x["mask_cpu_s"]}
                                  for x in v[:n_cov]] for d, v in rows.items()}
        if n_cov == 0:
            notes.append("extra crops: no PS reference (no cache; run with --compute-ps)")
        sets.append({"name": "extra", "label": f"{n} other crops of the built-in TEST photos (crop seed "
                     f"{args.extra_seed})", "f": f.double(), "names": names, "ref": ref, "ref_n": n_cov,
                     "ref_time": "CPU s, one thread (this script's PS cache)"})
    return sets


def start_masks(f, d, start, models):
    """(mask, density_map, snap_score, cpu seconds for the batch)."""
    c0 = _cpu()
    if start == "analytic":
        m = analytic_mask(f, d, sigma=sigma_for(d))
        p, s = laplacian_density(f, sigma_for(d)), extremality(f)
    else:
        net = models[start]
        with torch.no_grad():
            x = f.to(next(net.parameters()).dtype)
            logp, s = net.maps(x, d)
            m = net(x, d, maps=(logp, s)).double()
            logp, s = logp.double(), s.double()
            p = torch.exp(logp - logp.flatten(1).amax(1).view(-1, 1, 1, 1))
    return m, p, s, _cpu() - c0


def run_curve_single(f, d, start, models, shifts, rounds, generator, opts):
    """:func:`run_curve` one crop at a time (the evaluation's way): per-crop runs, merged.

    ``cpu_per_mask`` is the mean over the crops of the CPU time of the start mask and the
    refinement of that crop alone.
    """
    per = [run_curve(f[i:i + 1], *start_masks(f[i:i + 1], d, start, models), shifts, rounds, generator, opts)
           for i in range(f.shape[0])]
    return {key: {"mae255": [x for c in per for x in c[key]["mae255"]],
                  "ssim": [x for c in per for x in c[key]["ssim"]],
                  "known": [x for c in per for x in c[key]["known"]],
                  "cpu_per_mask": float(np.mean([c[key]["cpu_per_mask"] for c in per]))} for key in per[0]}


def run_curve(f, m0, p, s, t_start, shifts, rounds, generator, opts):
    """{(n, r): {"mae255": [...], "ssim": [...], "cpu_per_mask": float}}; ``opts``: refine_mask's
    metric, hide, tol and swaps."""
    B = f.shape[0]
    out = {}
    rmax = max(rounds)
    with torch.no_grad():
        u0 = refine_mask(f, m0, rounds=0)  # warm-up of caches (tile, imports); not timed
    del u0
    for n in shifts:
        state = {"cb": 0.0}
        c0 = _cpu()

        def cb(r, mask, u, err, n=n, state=state, c0=c0):
            t_in = _cpu()
            if r in rounds:
                # the quality of the mask, not of refine_mask's (possibly loose) solves: re-inpainted at 1e-6
                uc = diffuse(f.to(torch.float64), mask.to(torch.float64), tol=1e-6).clamp(0, 1)
                out[(n, r)] = {"mae255": (255 * mae(uc, f)).tolist(), "ssim": ssim(uc, f).tolist(),
                               "cpu_per_mask": (t_start + t_in - c0 - state["cb"]) / B,
                               "known": mask.flatten(1).sum(1).tolist()}
            state["cb"] += _cpu() - t_in

        refine_mask(f, m0, rounds=rmax, shifts=n, density_map=p, snap_score=s, generator=generator,
                    callback=cb, **opts)
        if n == 1 and (1, 0) in out:      # no refinement at all: the start mask's time only
            out[(1, 0)]["cpu_per_mask"] = t_start / B
    return out


def summarise(vals):
    return float(np.mean(vals)), float(np.std(vals))


def markdown(res) -> str:
    a = res["settings"]
    lines = ["# Test-time mask refinement: quality against time per 64 x 64 mask", "",
             f"Command: `{res['command']}`", ""] + [f"Merged with the run `{c}`" for c in res.get("merged_commands", [])] \
        + ([f"Report: `{res['report_command']}`", ""] if res.get("report_command") else []) + [
             f"Torch {a['torch']}, one thread, CPU {a['cpu']}; load average at the start {a['load']}. "
             "Times are CPU seconds of this process per mask (start mask + refinement; " + (
                 "one crop per call, the mean over the crops" if a.get("one_at_a_time") else
                 "all crops of a set in one batch") + f", refine_mask tol {a.get('tol', 1e-5):g}"
                 + (f", swaps {a['swaps']:g}" if a.get("swaps") is not None else "") + "). Refinement error: " + a["metric"]
                 + (" (the mask network's training loss). " if a["metric"] == "masknet" else ". ") +
             "Cells: MAE (0-255) / SSIM of homogeneous diffusion inpainting, mean over the crops, "
             "and CPU ms per mask; n = tile shifts, r = exchange rounds; † lower MAE and higher SSIM than PS "
             "within the 100x budget (PS's time / 100). PS times: " + "; ".join(
                 f"{st['name']}: {st['ref_time']}" for st in res["sets"]) + ".", ""]
    if res["notes"]:
        lines += ["Notes:", ""] + [f"- {x}" for x in res["notes"]] + [""]
    for st in res["sets"]:
        lines += [f"## {st['shown']}", ""]
        for d in a["densities"]:
            ref = st["ref"]
            ps = ref.get("ps", {}).get(str(d))
            nl = ref.get("ps-nlpe", {}).get(str(d))
            budget = ps["s"] / 100 if ps else None
            lines += [f"### density {d:g}", ""]
            if str(d) in st.get("metric_by_density", {}):
                lines += [f"Refinement error at this density: {st['metric_by_density'][str(d)]} (a merged run's).", ""]
            if ps:
                lines.append(f"PS: {ps['mae255']:.2f} / {ps['ssim']:.3f}, {ps['s']:.1f} s per mask ({st['ref_time']});"
                             f" 100x budget: {1000 * budget:.0f} ms.")
            if nl:
                lines.append(f"PS+NLPE: {nl['mae255']:.2f} / {nl['ssim']:.3f}, {nl['s']:.1f} s per mask.")
            lines.append("")
            for start, curve in st["curves"].get(str(d), {}).items():
                lines += [f"Start: {start}", "", "| n \\ r | " + " | ".join(str(r) for r in a["rounds"]) + " |",
                          "|---" * (len(a["rounds"]) + 1) + "|"]
                for n in a["shifts"]:
                    cells = []
                    for r in a["rounds"]:
                        c = curve.get(f"{n},{r}")
                        if c is None:
                            cells.append("--")
                            continue
                        mark = ""
                        if ps and c["cpu_per_mask"] <= budget:
                            mark = " **" if (c["mae255"] < ps["mae255"] and c["ssim"] > ps["ssim"]) else ""
                        cells.append(f"{c['mae255']:.2f} / {c['ssim']:.3f}, {1000 * c['cpu_per_mask']:.0f} ms"
                                     + (" †" if mark else ""))
                    lines.append(f"| {n} | " + " | ".join(cells) + " |")
                lines.append("")
                if ps:
                    inb = [(k, c) for k, c in curve.items() if c["cpu_per_mask"] <= budget]
                    if inb:
                        k, c = max(inb, key=lambda kc: kc[1]["ssim"])
                        lines.append(f"Best SSIM within the 100x budget: n, r = {k}: {c['mae255']:.2f} / "
                                     f"{c['ssim']:.3f} in {1000 * c['cpu_per_mask']:.0f} ms "
                                     f"({ps['s'] / c['cpu_per_mask']:.0f}x faster than PS).")
                        lines.append("")
    return "\n".join(lines) + "\n"


def figure(res, st):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = res["settings"]
    dens = a["densities"]
    fig, axes = plt.subplots(2, len(dens), figsize=(4.2 * len(dens), 7), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, d in enumerate(dens):
        ps = st["ref"].get("ps", {}).get(str(d))
        nl = st["ref"].get("ps-nlpe", {}).get(str(d))
        for i, key in enumerate(("mae255", "ssim")):
            ax = axes[i, j]
            ci = 0
            for start, curve in st["curves"].get(str(d), {}).items():
                for n in a["shifts"]:
                    pts = [curve[f"{n},{r}"] for r in a["rounds"] if f"{n},{r}" in curve]
                    ax.plot([1000 * c["cpu_per_mask"] for c in pts], [c[key] for c in pts], marker="o", ms=3,
                            color=colours[ci % len(colours)], ls="-" if start == "analytic" else "--",
                            label=f"{start.split(':')[0]}, n={n}")
                    ci += 1
            for ref, lab, mk in ((ps, "PS", "s"), (nl, "PS+NLPE", "^")):
                if ref:
                    ax.plot([1000 * ref["s"]], [ref[key]], mk, color="k", ms=7)
                    ax.annotate(lab, (1000 * ref["s"], ref[key]), textcoords="offset points", xytext=(-10, 6),
                                fontsize=8, ha="right")
                    if lab == "PS":
                        ax.axhline(ref[key], color="k", lw=0.6, ls=":")
            if ps:
                ax.axvline(10 * ps["s"], color="r", lw=0.8, ls="--")
                ax.text(10 * ps["s"], ax.get_ylim()[0], " PS/100", color="r", fontsize=8, va="bottom")
            ax.set_xscale("log")
            ax.set_xlabel("CPU ms per mask")
            ax.set_ylabel("MAE (0-255)" if key == "mae255" else "SSIM")
            ax.set_title(f"density {d:g}")
            ax.grid(alpha=0.3)
        if j == 0:
            axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"mask refinement: {st['shown']} (points: r = {', '.join(map(str, a['rounds']))})", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(ap, "inpaint_refine", what="report.md, results.json, refine_eval.png, refine_extra.png")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--shifts", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--rounds", type=int, nargs="+", default=[0, 1, 2, 4, 8, 16])
    ap.add_argument("--metric", default="masknet", choices=["masknet", "mse", "mae"])
    ap.add_argument("--hide", default="probe", choices=["probe", "adjoint"], help="refine_mask's hide= (default probe)")
    ap.add_argument("--swaps", type=float, default=None, help="refine_mask's swaps= (default its own)")
    ap.add_argument("--learned", nargs="*", default=[], help="trained mask networks (model.json or run folder)")
    ap.add_argument("--eval-json", default=str(ROOT / "results/inpaint/evaluation_64/results.json"))
    ap.add_argument("--n-extra", type=int, default=32)
    ap.add_argument("--extra-seed", type=int, default=1)
    ap.add_argument("--ps-cache", default=None,
                    help="PS of the extra crops, computed once (default OUT/ps_extra.json, started from a copy "
                         "of the committed results/inpaint/refine_single/ps_extra.json)")
    ap.add_argument("--compute-ps", action=argparse.BooleanOptionalAction, default=True,
                    help="compute the PS of the extra crops missing from --ps-cache (default on)")
    ap.add_argument("--nlpe", action="store_true", help="also PS+NLPE on the extra crops (slow: ~50 CPU-s a mask)")
    ap.add_argument("--seed", type=int, default=0, help="tile shifts")
    ap.add_argument("--analytic", action=argparse.BooleanOptionalAction, default=True,
                    help="also refine from the analytic mask (default on)")
    tol = inspect.signature(refine_mask).parameters["tol"].default
    ap.add_argument("--tol", type=float, default=tol, help=f"refine_mask's tol (default its own, {tol:g})")
    ap.add_argument("--one-at-a-time", action="store_true",
                    help="refine each crop alone (the evaluation's way: one image per call) instead of all crops of "
                         "a set in one batch; times are then the mean CPU time per crop")
    ap.add_argument("--sets", nargs="+", default=["eval", "extra"], choices=["eval", "extra"])
    ap.add_argument("--merge", nargs="*", default=[],
                    help="with --report-only: also take the curves of these results.json files (runs split by "
                         "set or density, e.g. run in parallel)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite report and figures from --out/results.json with the PS cache's current crops")
    args = ap.parse_args(argv)
    if args.report_only:
        if args.out is None:
            ap.error("--report-only needs --out: the folder of an earlier run")
        args.overwrite = True                      # rewriting that folder's report is what was asked
    dest = open_out(args, argv)
    if args.ps_cache is None:
        args.ps_cache = str(dest / "ps_extra.json")
        if not Path(args.ps_cache).exists() and COMMITTED_PS.is_file():
            shutil.copyfile(COMMITTED_PS, args.ps_cache)
    torch.set_num_threads(1)
    notes: list[str] = []
    if args.report_only:
        res = json.loads((dest / "results.json").read_text())
        for other in args.merge:
            extra = json.loads(Path(other).read_text())
            res.setdefault("merged_commands", []).append(extra["command"])
            for st in extra["sets"]:
                mine = next((x for x in res["sets"] if x["name"] == st["name"]), None)
                if mine is None:
                    res["sets"].append(st)
                else:
                    for d, per in st["per_image"].items():
                        mine["per_image"].setdefault(d, {}).update(per)
                        if extra["settings"]["metric"] != res["settings"]["metric"]:   # named in its section
                            mine.setdefault("metric_by_density", {})[d] = extra["settings"]["metric"]
        order = {"eval": 0, "extra": 1}
        res["sets"].sort(key=lambda st: order.get(st["name"], 2))
        for st in res["sets"]:
            st["per_image"] = {d: st["per_image"][d] for d in sorted(st["per_image"], key=float)}
        res["settings"]["densities"] = sorted({float(d) for st in res["sets"] for d in st["per_image"]})
        args.densities = res["settings"]["densities"]
        args.compute_ps = False
        fresh = {st["name"]: st for st in load_sets(args, notes)}
        for st in res["sets"]:
            if st["name"] in fresh and st["names"] == fresh[st["name"]]["names"]:
                st["ref_rows"] = fresh[st["name"]]["ref"]
                st["ref_n"] = fresh[st["name"]]["ref_n"]
        res["notes"] = notes
        res["report_command"] = _command(argv)
        write(res, dest)
        return 0
    from pdeflow.inpaint.learned.masknet import load_masknet
    models = {}
    for spec in args.learned:
        net = load_masknet(spec)
        models[f"learned:{Path(spec).parent.name if spec.endswith('.json') else Path(spec).name}"] = net
    sets = [st for st in load_sets(args, notes) if st["name"] in args.sets]
    res = {"command": _command(argv),
           "settings": {"densities": args.densities, "shifts": args.shifts, "rounds": args.rounds,
                        "metric": args.metric, "hide": args.hide, "tol": args.tol, "swaps": args.swaps,
                        "one_at_a_time": args.one_at_a_time, "torch": torch.__version__, "cpu": platform.processor() or
                        platform.machine(), "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
                        "learned": {k: {"path": spec, "steps": getattr(v, "meta", {}).get("provenance", {}).get(
                            "steps")} for (k, v), spec in zip(models.items(), args.learned)}},
           "notes": notes, "sets": []}
    opts = {"metric": args.metric, "hide": args.hide, "tol": args.tol}
    if args.swaps is not None:
        opts["swaps"] = args.swaps
    for st in sets:
        f = st["f"]
        out = {"name": st["name"], "label": st["label"], "ref_time": st["ref_time"], "names": st["names"],
               "ref_rows": st["ref"], "ref_n": st["ref_n"], "per_image": {}}
        for d in args.densities:
            starts = ["analytic"] * args.analytic + [k for k, net in models.items()
                                     if net.density is None or math.isclose(net.density, d, abs_tol=1e-9)]
            out["per_image"][str(d)] = {}
            for start in starts:
                if args.one_at_a_time:
                    curve = run_curve_single(f, d, start, models, args.shifts, args.rounds, args.seed, opts)
                else:
                    m0, p, s, t0 = start_masks(f, d, start, models)
                    curve = run_curve(f, m0, p, s, t0, args.shifts, args.rounds, args.seed, opts)
                k = round(d * f.shape[-1] * f.shape[-2])
                assert all(x == k for c in curve.values() for x in c["known"]), "refinement changed k"
                out["per_image"][str(d)][start] = {f"{n},{r}": {"mae255": c["mae255"], "ssim": c["ssim"],
                                                                "cpu_per_mask": c["cpu_per_mask"]}
                                                   for (n, r), c in sorted(curve.items())}
                c0, c1 = curve[(min(args.shifts), min(args.rounds))], curve[(max(args.shifts), max(args.rounds))]
                print(f"{st['name']} {d:g} {start}: first {np.mean(c0['mae255']):.2f}/{np.mean(c0['ssim']):.3f};"
                      f" max {np.mean(c1['mae255']):.2f}/{np.mean(c1['ssim']):.3f} "
                      f"{1000 * c1['cpu_per_mask']:.0f} ms", flush=True)
        res["sets"].append(out)
        write_file(dest / "results.json", json.dumps(res, indent=1) + "\n")   # partial results as they come
    write(res, dest)
    return 0


def _command(argv) -> str:
    return "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(x) for x in [sys.argv[0]] + list(
        argv if argv is not None else sys.argv[1:]))


def finalise(res) -> None:
    """Means for the report: the refinement and the references over the crops with references (paired)."""
    for st in res["sets"]:
        n = st["ref_n"] or len(st["names"])
        st["n_used"] = n
        st["ref"] = {m: {str(d): {k: summarise([x[k] for x in rows[:n]])[0] for k in ("mae255", "ssim", "s")}
                         for d, rows in v.items()} for m, v in st["ref_rows"].items()}
        st["curves"] = {d: {start: {key: {"mae255": float(np.mean(c["mae255"][:n])), "ssim": float(np.mean(
            c["ssim"][:n])), "cpu_per_mask": c["cpu_per_mask"]} for key, c in curve.items()}
            for start, curve in per.items()} for d, per in st["per_image"].items()}
        st["label"] = re.sub(r", the first \d+ \(those with PS computed\)$", "", st["label"])
        st["shown"] = st["label"] + (f", the first {n} (those with PS computed)" if n < len(st["names"]) else "")


def write(res, dest: Path) -> None:
    finalise(res)
    public = {k: v for k, v in res.items()}
    public["sets"] = [{k: v for k, v in st.items() if k not in ("curves", "ref", "n_used", "shown")} for st in res["sets"]]
    write_file(dest / "results.json", json.dumps(public, indent=1) + "\n")
    write_file(dest / "report.md", markdown(res))
    for st in res["sets"]:
        fig = figure(res, st)
        save_figure(fig, dest / f"refine_{st['name']}.png", dpi=110)
    print(f"wrote {dest}/report.md, results.json, " + ", ".join(f"refine_{st['name']}.png" for st in res["sets"]))


if __name__ == "__main__":
    sys.exit(main())
