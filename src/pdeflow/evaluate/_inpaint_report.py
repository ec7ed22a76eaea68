"""The report of Peter (2022)'s evaluation (:mod:`pdeflow.evaluate.inpaint`): the paper's numbers, the
tables beside them, the figure."""
from __future__ import annotations

import json

import torch

from ..reporting import Report, format_mean_std

LABELS = {"random-diffusion": "random + diffusion", "random-wgan": "random + WGAN",
          "random-residual": "random + residual inpainter", "ps": "PS + diffusion",
          "ps-mse": "PS (MSE) + diffusion",
          "ps-nlpe": "PS+NLPE + diffusion", "maskgan": "mask GAN (MG)", "analytic": "analytic + diffusion",
          "analytic-refine": "analytic+refine + diffusion", "densify": "densified + diffusion",
          "learned": "learned + diffusion",
          "learned-refine": "learned+refine + diffusion", "learned-refine-mse": "learned+refine (MSE) + diffusion",
          "learned-residual": "learned + residual inpainter",
          "learned-residual-raw": "learned + residual inpainter, uncalibrated",
          "joint": "joint mask + residual (fine-tuned together)",
          "joint-refine": "joint mask+refine + residual", "joint-refine-mse": "joint mask+refine (MSE) + residual"}

#: Peter (2022)'s numbers. Table 2: PSNR on ImageNet 64x64 (random masks: WGAN; MG). Table 3: BSDS500, MAE on
#: 0-255 and SSIM. Table 4: seconds per 128x128 mask on one CPU core (i5-6600K).
PAPER = {
    "psnr": {"random-wgan": {0.05: 18.85, 0.1: 20.78, 0.2: 22.95}, "maskgan": {0.05: 21.66, 0.1: 23.63, 0.2: 25.36}},
    "mae255": {"ps": {0.05: 13.98, 0.1: 9.08, 0.2: 5.19}, "ps-nlpe": {0.05: 10.98, 0.1: 7.51, 0.2: 4.31},
               "maskgan": {0.05: 11.19, 0.1: 8.87, 0.2: 6.70}},
    "ssim": {"ps": {0.05: 0.69, 0.1: 0.80, 0.2: 0.90}, "ps-nlpe": {0.05: 0.70, 0.1: 0.81, 0.2: 0.91},
             "maskgan": {0.05: 0.71, 0.1: 0.79, 0.2: 0.85}},
    "mask_s": {"ps": {0.05: 58.84, 0.1: 33.89, 0.2: 18.86}, "ps-nlpe": {0.05: 251.28, 0.1: 340.61, 0.2: 389.34},
               "maskgan": {0.05: 0.93, 0.1: 0.93, 0.2: 0.93}},
}


def _refine_line(refine, rows: str = "") -> str:
    """The report's sentence on the ``*-refine`` rows' setting (results.json ``settings.refine``; ``rows``:
    which rows, e.g. ``' of the *-refine-mse rows'``)."""
    if not refine:
        return ""
    def one(v):
        extra = [v["metric"]] if "metric" in v else []
        extra += [f"{k} {v[k]:g}" for k in ("tol", "probe_tol") if k in v]
        return f"{v.get('shifts', 1)} x {v.get('rounds', 0)}" + (f" ({', '.join(extra)})" if extra else "")

    if all(isinstance(v, dict) for v in refine.values()):
        per = "; ".join(f"{float(d):g}: {one(v)}" for d, v in refine.items())
    else:
        per = one(refine)
    return (f" Refinement{rows} (tile shifts x exchange rounds, per density; the error minimised is the mask "
            f"network's loss unless named): {per}.")


def _ps_mse_line(results: dict) -> str:
    """The report's words on the ``ps-mse`` row."""
    s = results["settings"]
    if "ps-mse" not in results["methods"]:
        return ""
    if s.get("ps_mse_shares_mask") and "ps" in results["methods"]:
        return ("; PS (MSE) minimises the MSE: on grey images its mask is PS's (the removed candidates are those "
                "of smallest local error, |u - f| or (u - f)^2 alike), one run serves both rows")
    return "; PS (MSE) minimises the MSE"


#: The metrics of the comparison with PS: (key, label, unit, higher is better, the PS row's metric).
COMPARED = (("psnr", "PSNR", "dB", True, "mse"), ("mse255", "MSE (0-255)", "", False, "mse"),
            ("mae255", "MAE (0-255)", "", False, "mae"), ("ssim", "SSIM", "", True, None))


def ps_reference(results: dict, metric_of_row: str | None) -> str | None:
    """The PS row a metric is compared against: the one minimising that metric (``'mse'``: ``ps-mse``, or
    ``ps`` run with ``metric='mse'``; ``'mae'``: ``ps`` run with ``metric='mae'``); ``None`` (SSIM, which
    neither minimises): ``ps``, else ``ps-mse``. ``None`` if the run has no such row.

    Examples
    --------
    >>> from pdeflow.evaluate._inpaint_report import ps_reference
    >>> res = {"methods": ["ps", "ps-mse", "learned"], "settings": {"ps": {"metric": "mae"}}}
    >>> ps_reference(res, "mse"), ps_reference(res, "mae"), ps_reference(res, None)
    ('ps-mse', 'ps', 'ps')
    """
    methods, ps_metric = results["methods"], results["settings"]["ps"]["metric"]
    if metric_of_row is None:
        return next((m for m in ("ps", "ps-mse") if m in methods), None)
    if "ps" in methods and ps_metric == metric_of_row:
        return "ps"
    if metric_of_row == "mse" and "ps-mse" in methods:
        return "ps-mse"
    return None


def against_ps(results: dict) -> list[str]:
    """Markdown lines: every mask method's mean against the PS row minimising the metric compared (see
    :func:`ps_reference`), per density: the difference (PSNR, MAE, SSIM) or ratio (MSE), and whether it wins."""
    s, summ = results["settings"], results["summary"]
    cols = [(k, label, unit, up, ps_reference(results, met)) for k, label, unit, up, met in COMPARED]
    cols = [c for c in cols if c[4] is not None]
    rows = [m for m in results["methods"] if not m.startswith("ps") and m in summ]
    if not cols or not rows:
        return []
    lines = ["", "## Against PS on the metric compared", "",
             "Each metric against the PS row that minimises it: "
             + "; ".join(f"{label} against {LABELS[ref]}" for _, label, _, _, ref in cols)
             + " (SSIM: neither minimises it). Difference of the means (ratio for the MSE); "
               "**bold**: better than that PS row.", "",
             "| density | method | " + " | ".join(f"{label} vs {LABELS[ref]}" for _, label, _, _, ref in cols) + " |",
             "|---" * (len(cols) + 2) + "|"]
    for d in s["densities"]:
        for m in rows:
            c = summ[m].get(str(d))
            if c is None:
                continue
            out = []
            for k, _, unit, up, ref in cols:
                p = summ.get(ref, {}).get(str(d))
                if p is None or k not in c or k not in p:
                    out.append("--")
                    continue
                a, b = c[k]["mean"], p[k]["mean"]
                txt = (f"{a / b:.3f}x" if k == "mse255"
                       else f"{a - b:+.{3 if k == 'ssim' else 2}f}" + (f" {unit}" if unit else ""))
                out.append(f"**{txt}**" if (a > b if up else a < b) else txt)
            lines.append(f"| {d:g} | {LABELS[m]} | " + " | ".join(out) + " |")
    return lines


def _fmt(cell: dict | None, key: str, digits: int) -> str:
    if cell is None:
        return "--"
    v = cell[key]
    return format_mean_std(v["mean"], v["std"], v.get("n"), digits)


def _paper(key: str, m: str, d: float, digits: int) -> str:
    v = PAPER.get(key, {}).get(m, {}).get(d)
    return "--" if v is None else f"{v:.{digits}f}"


def report_markdown(results: dict) -> str:
    """The report as markdown (tables 2-4 of Peter (2022) beside this run's numbers)."""
    s = results["settings"]
    dens = s["densities"]
    summ = results["summary"]
    cell = lambda m, d: summ.get(m, {}).get(str(d))  # noqa: E731
    lines = ["# Sparse inpainting: Tables 2-4 of Peter (2022) on held-out photos", "",
             f"{s['n_images']} crops of {s['size']}x{s['size']} px ({'grey' if s['channels'] == 1 else 'colour'}) "
             f"from {'the built-in TEST photos' if s['image_dir'] is None else s['image_dir']} "
             f"({', '.join(sorted(set(s['images'])))}), seed {s['seed']}. Mean ± std over images. "
             f"Torch {s['torch']}, {s['torch_threads']} thread(s), CPU {s['cpu']}.",
             f"PS p={s['ps']['p']}, q={s['ps']['q']}; NLPE {s['nlpe']['cycles']} cycles of |mask| exchanges, "
             f"{s['nlpe']['candidates']} candidates; both minimise the {s['ps']['metric'].upper()}"
             + _ps_mse_line(results) + f"; diffusion solved to relative residual {s['tol']:g}."
             + _refine_line(s.get("refine"))
             + (_refine_line(s.get("refine_mse"), " of the *-refine-mse rows")
                if any(m.endswith("-refine-mse") for m in results["methods"]) else ""), ""]
    if results["notes"]:
        lines += ["Notes:", ""] + [f"- {n}" for n in results["notes"]] + [""]
    lines += ["## PSNR in dB (Table 2; the paper: ImageNet 64x64)", "",
              "| density | " + " | ".join(LABELS[m] for m in results["methods"]) + " | paper WGAN random | paper MG |",
              "|---" * (len(results["methods"]) + 3) + "|"]
    for d in dens:
        lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), "psnr", 2) for m in results["methods"])
                     + f" | {_paper('psnr', 'random-wgan', d, 2)} | {_paper('psnr', 'maskgan', d, 2)} |")
    if any(cell(m, d) is not None and "mse255" in cell(m, d) for m in results["methods"] for d in dens):
        lines += ["", "## MSE on the 0-255 scale", "",
                  "| density | " + " | ".join(LABELS[m] for m in results["methods"]) + " |",
                  "|---" * (len(results["methods"]) + 1) + "|"]
        for d in dens:
            lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), "mse255", 3) if cell(m, d) is not None
                                                    and "mse255" in cell(m, d) else "--"
                                                    for m in results["methods"]) + " |")
    for key, title, digits in (("mae255", "MAE on the 0-255 scale (Table 3a; the paper: BSDS500)", 2),
                               ("ssim", "SSIM (Table 3b)", 3)):
        lines += ["", f"## {title}", "",
                  "| density | " + " | ".join(LABELS[m] for m in results["methods"])
                  + " | paper PS | paper PS+NLPE | paper MG |", "|---" * (len(results["methods"]) + 4) + "|"]
        for d in dens:
            lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), key, digits) for m in results["methods"])
                         + f" | {_paper(key, 'ps', d, digits)} | {_paper(key, 'ps-nlpe', d, digits)}"
                         f" | {_paper(key, 'maskgan', d, digits)} |")
    if any("grad_w1" in (cell(m, d) or {}) for m in results["methods"] for d in dens):
        lines += ["", "## Texture of the fill: gradient-magnitude distance to the true pixels (0-255, lower is "
                  "closer)", "", "| density | " + " | ".join(LABELS[m] for m in results["methods"]) + " |",
                  "|---" * (len(results["methods"]) + 1) + "|"]
        for d in dens:
            lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), "grad_w1", 2) if "grad_w1" in (cell(m, d) or {})
                                                    else "--" for m in results["methods"]) + " |")
    lines += against_ps(results)
    lines += ["", "## Density reached", "",
              "| density | " + " | ".join(LABELS[m] for m in results["methods"]) + " |",
              "|---" * (len(results["methods"]) + 1) + "|"]
    for d in dens:
        lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), "density", 4) for m in results["methods"]) + " |")
    timed = [m for m in ("ps", "ps-mse", "ps-nlpe", "maskgan", "analytic", "analytic-refine", "densify", "learned",
                         "learned-refine", "learned-refine-mse") if m in results["methods"]]
    lines += ["", "## Seconds per mask, one image at a time (Table 4; the paper: 128x128, one i5-6600K core)", "",
              "| density | " + " | ".join(LABELS[m] for m in timed) + " | PS / MG | PS+NLPE / MG | paper PS | "
              "paper PS+NLPE | paper MG (CPU) |", "|---" * (len(timed) + 6) + "|"]
    for d in dens:
        mg = cell("maskgan", d)
        ratio = lambda m: (f"{cell(m, d)['mask_s']['mean'] / mg['mask_s']['mean']:.0f}x"  # noqa: E731
                           if mg is not None and cell(m, d) is not None else "--")
        lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), "mask_s", 3) for m in timed)
                     + f" | {ratio('ps')} | {ratio('ps-nlpe')} | {_paper('mask_s', 'ps', d, 2)} | "
                     f"{_paper('mask_s', 'ps-nlpe', d, 2)} | {_paper('mask_s', 'maskgan', d, 2)} |")
    cpu = [m for m in results["methods"] if any("mask_cpu_s" in (cell(m, d) or {}) for d in dens)]
    if cpu:
        ps_ref = "ps" if any("mask_cpu_s" in (cell("ps", d) or {}) for d in dens) else None
        lines += ["", "## CPU milliseconds per mask (one image at a time, one thread)", "",
                  "Wall time on a loaded shared machine overstates these; CPU time is what the computation costs."
                  + (" Ratio: PS's CPU seconds per mask over this CPU time (both measured in this run)." if ps_ref
                     else ""), "",
                  "| density | " + " | ".join(LABELS[m] + (" (PS / it)" if ps_ref else "") for m in cpu) + " |",
                  "|---" * (len(cpu) + 1) + "|"]
        for d in dens:
            row = []
            for m in cpu:
                c = cell(m, d)
                if c is None or "mask_cpu_s" not in c:
                    row.append("--")
                    continue
                ms = 1000 * c["mask_cpu_s"]["mean"]
                ps = cell("ps", d) if ps_ref else None
                ratio = (f" ({ps['mask_cpu_s']['mean'] / c['mask_cpu_s']['mean']:.0f}x)"
                         if ps is not None and "mask_cpu_s" in ps and m not in ("ps", "ps-mse") else "")
                row.append(f"{ms:.0f}{ratio}")
            lines.append(f"| {d:g} | " + " | ".join(row) + " |")
    if results["models"]:
        lines += ["", "## Models", ""]
        for name, info in results["models"].items():
            lines.append(f"- {name}: {json.dumps(info.get('config'))}, {info.get('steps')} steps, "
                         f"{info.get('wall_time_s')} s of training, created {info.get('created')}")
    lines += ["", "Inpainting times (seconds per image) and per-image values are in results.json; "
              f"the figure shows image {s['figure_image']} ({s['images'][s['figure_image']]}), the crop with "
              "the largest standard deviation.", ""]
    return "\n".join(lines)


def figure(results: dict):
    """The shown crop (``settings["figure_image"]``): per density a row of masks (known
    pixels white), a row of inpaintings and a row of zoomed crops of the inpaintings: the window
    of a quarter of the side where the inpaintings err most (outlined on the original), every
    crop with one contrast stretch (1-99 % of the values there), stated in the panel titles.

    Examples
    --------
    >>> from pdeflow.evaluate.inpaint import evaluate, figure
    >>> fig = figure(evaluate((0.1,), n_images=1, size=16, methods=("analytic",)))
    >>> len(fig.axes)                                    # original + one method, three rows per density
    6
    """
    from .. import viz
    ex = results["_examples"]
    methods = [m for m in results["methods"] if any((m, d) in ex for d in results["settings"]["densities"])]
    dens = results["settings"]["densities"]
    f0 = results["_shown"]
    ncols = len(methods) + 1
    win = viz.zoom_window(sum(((u - f0).abs() for _, u in ex.values()), torch.zeros_like(f0)),
                          max(4, min(f0.shape[-2:]) // 4))
    zoom = min(f0.shape[-2:]) / win[2]
    lo, hi = viz.robust_range(torch.cat([viz.crop(f0, win)] + [viz.crop(u, win) for _, u in ex.values()]))
    zlabel = f"zoom x{zoom:.3g}, {viz.stretch_label(lo, hi)}"
    fig = viz.figure(2.2 * ncols, 2.3 * 3 * len(dens) + 0.5)
    axes = fig.subplots(3 * len(dens), ncols, squeeze=False)
    for r, d in enumerate(dens):
        viz.show_image(axes[3 * r, 0], f0, "original")
        viz.mark_window(axes[3 * r, 0], win)
        axes[3 * r + 1, 0].set_axis_off()
        viz.show_image(axes[3 * r + 2, 0], viz.stretch(viz.crop(f0, win), lo, hi), f"original,\n{zlabel}")
        for c, m in enumerate(methods, start=1):
            if (m, d) not in ex:
                for k in range(3):
                    axes[3 * r + k, c].set_axis_off()
                continue
            mask, u = ex[(m, d)]
            mark = torch.where(mask.bool().expand_as(f0), torch.ones_like(f0), 0.5 * f0)
            viz.show_image(axes[3 * r, c], mark, f"{LABELS[m]}, mask {float(mask.mean()):.3f}")
            err = 255 * float((u - f0).abs().mean())
            viz.show_image(axes[3 * r + 1, c], u, f"inpainted, MAE {err:.1f}")
            viz.show_image(axes[3 * r + 2, c], viz.stretch(viz.crop(u, win), lo, hi), f"inpainted,\n{zlabel}")
    for ax in axes[2::3].ravel():
        ax.title.set_fontsize(7)
    fig.suptitle("known pixels white over the dimmed image; inpainting below; then the outlined window (where "
                 f"the inpaintings err most) zoomed x{zoom:.3g}, contrast-stretched [{lo:.2f}, {hi:.2f}] to "
                 "black-white (densities " + ", ".join(f"{d:g}" for d in dens) + ")", fontsize=10, wrap=True)
    return fig


def report(results: dict) -> Report:
    """``report.md``, ``results.json`` and ``inpainting.png`` of :func:`evaluate`'s results, as a
    :class:`~pdeflow.reporting.Report` (write it with ``.write(out_dir)``: all files or none).

    Examples
    --------
    >>> import os, tempfile
    >>> from pdeflow.evaluate.inpaint import evaluate, report
    >>> rep = report(evaluate((0.1,), n_images=1, size=16, methods=("analytic",)))
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = rep.write(out)                           # the paths written
    ...     print(sorted(os.listdir(out)))
    ['inpainting.png', 'report.md', 'results.json']
    """
    rep = Report()
    rep.add_text("report.md", report_markdown(results))
    rep.add_json("results.json", {k: v for k, v in results.items() if not k.startswith("_")})
    rep.add_figure("inpainting.png", figure(results))
    return rep
