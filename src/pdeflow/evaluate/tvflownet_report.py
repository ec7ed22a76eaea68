"""The report of the TVflowNET evaluation: the paper's tables beside ours, figures, JSON.

:func:`report` turns the results of :func:`pdeflow.evaluate.tvflownet.evaluate` into a
:class:`~pdeflow.reporting.Report` (``report.md``, ``results.json``, PNG figures); the
caller writes it (``pdeflow evaluate tvflownet`` writes it into ``--out``, all files or none).

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

from .. import viz
from ..reporting import Report, format_mean_std, jsonable, md_table, mean_std
from .tvflownet import METRICS, PAPER, PAPER_SCALE, PSNR_CAP, paper_iterations
from .tvflownet_paper import ARCH_LABEL as _ARCH_LABEL

__all__ = ["report"]

def _pm(v, digits: int, sdigits: int | None = None) -> str:
    if v is None:
        return "—"
    m, s = v
    return format_mean_std(m, s, None, digits, sdigits=sdigits)      # over images and times: n > 1


def _ps(p, s) -> str:
    """A paper cell "PSNR (SSIM)", as printed in the paper."""
    return f"{p:g} ({s:g})"


def _paper_pm(v) -> str:
    """A paper cell "mean ± std", as printed in the paper."""
    return "—" if v is None else f"{v[0]:g} ± {v[1]:g}"


def _row_label(row) -> str:
    if not row:
        return "—"
    arch, train = row
    return f"{_ARCH_LABEL.get(arch, arch)}, {train if train == 'mixed' else train + ' px'}"


def _paper_lookup(table: str, row):
    if not row:
        return None
    return PAPER[table].get(tuple(row))


def _paper_cell(pap: dict, key) -> str:
    """The paper's "PSNR (SSIM)" cell ``pap[key]``, or a dash where the paper has none."""
    return _ps(*pap[key]) if key in pap else "—"


def _ours(r: dict, psnr: str = "u_psnr", ssim: str = "u_ssim") -> str:
    """Our "PSNR (SSIM)" cell: the PSNR's mean ± std and the mean SSIM of result ``r``."""
    return f"{_pm(r[psnr], 2)} ({r[ssim][0]:.3f})"


def _autodiff_cell(r: dict | None) -> str:
    """Table 7's autodiff cell; ``None`` for a model that composes in time (no autodiff value, see the note)."""
    return "— (composes in time)" if r is None else _ours(r, "psnr", "ssim")


def _model_rows(paper_rows, table: str, cells) -> list[list[str]]:
    """The rows of a table that compares models with the paper: for each ``(name, paper row)``, the name,
    the paper row it is compared with and ``cells(name, the paper's numbers of that row in table)``."""
    return [[n, _row_label(row)] + cells(n, _paper_lookup(table, row) or {}) for n, row in paper_rows]


def _section(lines: list[str], title: str, note: str | None, header=None, rows=None) -> None:
    """Append a section of the report: its heading, a note (if any) and, with ``header``, a table."""
    lines += [f"## {title}", ""] + ([note, ""] if note is not None else [])
    if header is not None:
        lines += [md_table(header, rows), ""]


def _flow_figure(ex: dict, title: str, label: str = "network"):
    times = ex["times"]
    T = len(times)
    pick = sorted({0, T // 8, T // 4, T // 2, T - 1})
    rows = [(f"u {label}", ex["u"], "grey"), ("u reference", ex["ref_u"], "grey"),
            ("|u error| x10", None, "err"), (f"div phi {label}", ex["div"], "div"),
            ("u_t reference", ex["ref_ut"], "div")]
    fig = viz.figure(2.0 * len(pick) + 0.6, 2.0 * len(rows) + 0.4)
    axes = fig.subplots(len(rows), len(pick), squeeze=False)
    dmax = float(ex["ref_ut"][pick].abs().max()) or 1.0
    for r, (name, stack, kind) in enumerate(rows):
        for c, k in enumerate(pick):
            ax = axes[r][c]
            if kind == "grey":
                im = ax.imshow(stack[k, 0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            elif kind == "err":
                err = (ex["u"][k, 0] - ex["ref_u"][k, 0]).abs().numpy() * 10
                im = ax.imshow(err, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
            else:
                im = ax.imshow(stack[k, 0].numpy(), cmap="RdBu_r", vmin=-dmax, vmax=dmax, interpolation="nearest")
            ax.set_axis_off()
            if r == 0:
                ax.set_title(f"t = {times[k]:.2f}", fontsize=9)
            if c == 0:
                ax.text(-0.08, 0.5, name, transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=8)
        if kind != "grey":
            viz.colorbar(fig, im, axes[r], "|u - u_ref| x 10" if kind == "err" else "per unit time (x5 image)")
    fig.suptitle(title, fontsize=10)
    return fig


def _spectra_figure(ex: dict):
    fig = viz.figure(7.0, 4.0)
    ax = fig.subplots()
    ax.plot(ex["times"], ex["reference_fd"], "k.-", lw=1.2, ms=3, label="reference, FD")
    for i, (name, d) in enumerate(ex["models"].items()):
        if d["autodiff"] is not None:
            ax.plot(d["times"], d["autodiff"], "-", color=f"C{i}", lw=1, label=f"{name}, autodiff")
        ax.plot(d["fd_times"], d["fd"], "--", color=f"C{i}", lw=1, label=f"{name}, FD")
    ax.set_xlabel("flow time t (5x image)")
    ax.set_ylabel(r"$S(t) = \|t\,u_{tt}(t)\|_1$")
    ax.set_title("spectral TV spectrum of one test image", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _variant_rows(results: dict) -> list[list[str]]:
    """Rows ``table, column, model, psnr_frames, psnr, ssim_gaussian, ssim`` of every table run."""
    rows = []

    def add(table, column, model, r, prefix=""):
        if r.get(prefix + "psnr_frames") is None:
            return
        rows.append([table, column, model, _pm(r[prefix + "psnr_frames"], 2), _pm(r[prefix + "psnr"], 2),
                     _pm(r[prefix + "ssim_gaussian"], 3), _pm(r[prefix + "ssim"], 3)])

    t1 = results.get("table1")
    if t1:
        for s, r in t1["results"].items():
            for what in ("u", "div"):
                add("1", f"{what.replace('div', 'div φ')}, {s} px", "joint", r, what + "_")
    t24 = results.get("table2_4")
    if t24:
        for n, per in t24["models"].items():
            for s, r in per.items():
                add("2, 3", f"u, {s} px", n, r, "u_")
                add("4", f"div φ, {s} px", n, r, "div_")
    t5 = results.get("table5")
    if t5:
        for n, per in t5["models"].items():
            for k, r in per.items():
                add("5", f"u, {k}", n, r, "u_")
    t6 = results.get("table6")
    if t6:
        for n, per in t6["models"].items():
            for c, r in per.items():
                add("6", f"c = {c:g}", n, r)
                add("6", f"c = {c:g}, self", n, r, "self_")
    t7 = results.get("table7")
    if t7:
        add("7", "FD reference", "reference", t7["reference"]["fd"])
        for n, per in t7["models"].items():
            if per["autodiff"] is not None:
                add("7", "autodiff", n, per["autodiff"])
            add("7", "FD network", n, per["fd"])
    return rows


def _heldout_name(held: dict) -> str:
    """The second held-out set's name: its folder's."""
    return held["source"].rstrip("/").rsplit("/", 1)[-1]


def _heldout_section(lines: list[str], t24: dict, held: dict) -> None:
    """Tables 2-4 on the second held-out set, each model's row on the built-in test photos beside it."""
    sizes = held["sizes"]
    name = _heldout_name(held)
    warn = (f" **Not held out for {', '.join(held['used_by'])}**: their provenance names this folder among "
            "their training or validation data." if held.get("used_by") else "")
    cells = lambda r: sum([[f"{_pm(r[s]['u_psnr'], 2)} ({r[s]['u_ssim'][0]:.3f})",      # noqa: E731
                            f"{_pm(r[s]['div_psnr'], 2)} ({r[s]['div_ssim'][0]:.3f})"] for s in sizes], [])
    rows = []
    for n, per in held["models"].items():
        if n in t24["models"] and all(s in t24["models"][n] for s in sizes):
            rows.append([n, "built-in test photos"] + cells(t24["models"][n]))
        rows.append([n, f"held out: {name}"] + cells(per))
    n_crops = next((r[s]["n_images"] for r in held["models"].values() for s in sizes), 0)
    _section(lines, f"Tables 2–4 on a second held-out set: {name}",
             f"{n_crops} crops per size of the {len(held['photos'])} photos in `{held['source']}`, a set never used "
             f"in training or checkpoint selection (the crops and the protocol of Tables 2–4), beside each "
             f"model's row on the built-in test photos. PSNR (SSIM): {METRICS['psnr']}; {METRICS['ssim']}. "
             f"The paper has no such set.{warn}",
             ["model", "images"] + sum([[f"{s}×{s} u", f"{s}×{s} div φ"] for s in sizes], []), rows)


def _over_trainings_section(lines: list[str], models: dict, t24: dict, held: dict | None) -> None:
    """Tables 2-4 as the paper reports them: per recipe of several models, the mean ± std over the trainings."""
    groups: dict[str, list[str]] = {}
    for n, m in models.items():
        if m.get("recipe") and n in t24["models"]:
            groups.setdefault(m["recipe"], []).append(n)
    groups = {k: v for k, v in groups.items() if len(v) > 1}
    if not groups:
        return
    sizes = t24["sizes"]

    def cell(per: dict, names: list[str], s, key: str, digits: int) -> str:
        return format_mean_std(*mean_std([per[n][s][key][0] for n in names], ddof=1), len(names), digits)

    rows = []
    for names in groups.values():
        label = f"{', '.join(names)} ({len(names)} trainings)"
        pap = _paper_lookup("table2", models[names[0]].get("paper_row")) or {}
        sets = [("built-in test photos", t24["models"])]
        if held and all(n in held["models"] for n in names):
            sets.append((f"held out: {_heldout_name(held)}", held["models"]))
        for where, per in sets:
            rows.append([label, where] + sum([[cell(per, names, s, "u_psnr", 2), cell(per, names, s, "u_ssim", 3),
                                               cell(per, names, s, "div_psnr", 2)] for s in sizes], []))
        rows.append([_row_label(models[names[0]].get("paper_row")), "paper (Food101)"]
                    + sum([[_paper_pm(pap.get(s)), "", ""] for s in sizes], []))
    _section(lines, "Tables 2–4 over trainings",
             "Models trained by one recipe (their provenance's training configuration equal but for the seed): "
             "the mean ± standard deviation over the trainings of each model's mean over the images, as the "
             f"paper reports its rows (over five trainings). PSNR: {METRICS['psnr']}; SSIM: {METRICS['ssim']}.",
             ["models", "images"] + sum([[f"{s}×{s} u PSNR", f"{s}×{s} u SSIM", f"{s}×{s} div φ PSNR"]
                                         for s in sizes], []), rows)


def report(results: dict, *, title: str = "TVflowNET evaluation") -> Report:
    """The report of :func:`~pdeflow.evaluate.tvflownet.evaluate`'s results: ``report.md``, PNG figures and
    ``results.json``, as a :class:`~pdeflow.reporting.Report` (write it with ``.write(out_dir)``, all or none).

    ``report.md`` has the paper's tables (1-7, 9) for what ``evaluate``
    ran, ours beside the paper's numbers for the matching row (architecture and
    training size, see :func:`~pdeflow.evaluate.tvflownet.paper_key`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.evaluate.tvflownet_report import report
    >>> rep = report({"config": {}, "models": {}})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = rep.write(d)
    ...     print(sorted(p.name for p in Path(d).iterdir()))
    ['report.md', 'results.json']
    """
    rep = Report()
    cfg = results.get("config", {})
    models = results.get("models", {})
    names = list(models)
    lines = [f"# {title}", ""]
    lines.append(f"Generated {cfg.get('date', '')} with torch {cfg.get('torch', '')} "
                 f"({cfg.get('threads', '')} thread(s), {cfg.get('machine', '')}); "
                 f"total evaluation time {results.get('seconds', {}).get('total', 0):.0f} s.")
    lines.append("")
    lines.append("**Protocol** (Grossmann et al., 2022, §4; official test code): images in [0, 1] times "
                 f"{cfg.get('scale', PAPER_SCALE):g}; {cfg.get('n_times', 50)} times "
                 f"linspace({cfg.get('times', [0, 0.98])[0]:g}, {cfg.get('times', [0, 0.98])[1]:g}) in PDE time; "
                 "network input 5·img, outputs /5; data_range 1. Every column beside a paper number is "
                 f"computed as the official test code does: PSNR = {METRICS['psnr']}; SSIM = {METRICS['ssim']}. "
                 "The section \"Metric variants\" gives the same columns as pdeflow's earlier reports computed "
                 f"them: {METRICS['psnr_frames']}; {METRICS['ssim_gaussian']}. "
                 "Reference (\"model-driven\"): implicit Euler TV flow, "
                 f"dt = {cfg.get('dt')}, each step ROF by {cfg.get('solver')} to a relative duality gap "
                 f"{cfg.get('tol')}; div φ is compared with the reference's u_t (the dual field's divergence). "
                 f"PSNR is capped at {PSNR_CAP:g} dB.")
    lines.append("")
    lines.append(f"**Images**: {cfg.get('n_images')} per size and type (paper: 200; 100 disks/ellipses, "
                 f"40 medical; 600 for Table 6); natural images: {cfg.get('image_source')}; seed {cfg.get('seed')}."
                 + (" Colour models: colour crops (RGB), against the coupled colour TV flow (the norm of grad u "
                    "couples the channels)." if cfg.get("channels", 1) != 1 else ""))
    lines.append("")
    if names:
        lines.append("## Models")
        lines.append("")
        rows = [[n, str(models[n].get("arch") or "?"), str(models[n].get("parameters") or "?"),
                 _row_label(models[n].get("paper_row"))] for n in names]
        lines.append(md_table(["model", "architecture", "parameters", "paper row compared with"], rows))
        lines.append("")

    figures = []

    # ---- Table 1
    t1 = results.get("table1")
    if t1:
        header = ["", "metric"] + [f"{s}×{s} ours" for s in t1["sizes"]] + [f"{s}×{s} paper" for s in t1["sizes"]]
        rows = []
        for key, lab, dg in (("u_psnr", ("u", "PSNR"), 2), ("u_ssim", ("u", "SSIM"), 3),
                             ("div_psnr", ("div φ", "PSNR"), 2), ("div_ssim", ("div φ", "SSIM"), 3)):
            ours = [_pm(t1["results"][s][key], dg) for s in t1["sizes"]]
            paper = [_paper_pm(PAPER["table1"][key].get(s)) for s in t1["sizes"]]
            rows.append([lab[0], lab[1]] + ours + paper)
        rows.append(["", "iterations"] + [str(t1["iterations"][s]) for s in t1["sizes"]]
                    + [str(paper_iterations(s)) for s in t1["sizes"]])
        rows.append(["", "seconds / image"] + [f"{t1['seconds'][s]:.1f}" for s in t1["sizes"]]
                    + [f"{PAPER['table9']['joint'][s]:g} (GPU)" if s in PAPER["table9"]["joint"] else "—"
                       for s in t1["sizes"]])
        _section(lines, "Table 1 — joint space-time optimisation vs model-driven",
                 f"{t1['n_images']} image(s) per size; Adam lr {t1['lr']:g}, a1 = a2 = 1e-4; "
                 "u_t by backward differences in time (the implicit Euler pairing). Paper: 200 images.",
                 header, rows)
        if t1.get("example") is not None:
            rep.add_figure("joint_flow.png", _flow_figure(
                t1["example"], f"joint space-time optimisation, {t1['example']['size']} px", label="joint"))
            figures.append(("joint_flow.png", "joint optimisation vs reference: u, error, div φ vs u_t"))

    paper_rows = [(n, models[n].get("paper_row")) for n in names]

    # ---- Tables 2-4
    t24 = results.get("table2_4")
    if t24:
        sizes = t24["sizes"]
        header = ["model", "paper row"] + sum([[f"{s}×{s} ours", f"{s}×{s} paper"] for s in sizes], [])
        _section(lines, "Table 2 — PSNR of u vs model-driven, natural test images",
                 f"Ours: {METRICS['psnr']}. Paper: mean ± std over five trainings (200 Food101 test images).",
                 header, _model_rows(paper_rows, "table2", lambda n, pap: sum(
                     [[_pm(t24["models"][n][s]["u_psnr"], 2), _paper_pm(pap.get(s))] for s in sizes], [])))
        # Table 3 also shows the Gaussian-window SSIM, labelled
        _section(lines, "Table 3 — SSIM of u vs model-driven, natural test images",
                 f"Ours: {METRICS['ssim']}. Paper: mean ± std over five trainings (200 Food101 test images). "
                 f"\"ours, Gaussian\": {METRICS['ssim_gaussian']}.",
                 ["model", "paper row"] + sum([[f"{s}×{s} ours", f"{s}×{s} ours, Gaussian", f"{s}×{s} paper"]
                                               for s in sizes], []),
                 _model_rows(paper_rows, "table3", lambda n, pap: sum(
                     [[_pm(t24["models"][n][s]["u_ssim"], 3), _pm(t24["models"][n][s].get("u_ssim_gaussian"), 3),
                       _paper_pm(pap.get(s))] for s in sizes], [])))
        _section(lines, "Table 4 — div φ vs the reference's u_t: PSNR (SSIM)", None, header,
                 _model_rows(paper_rows, "table4", lambda n, pap: sum(
                     [[f"{_pm(t24['models'][n][s]['div_psnr'], 2)} ({_pm(t24['models'][n][s]['div_ssim'], 3)})",
                       _paper_cell(pap, s)] for s in sizes], [])))
        held = results.get("heldout")
        if held:
            _heldout_section(lines, t24, held)
        _over_trainings_section(lines, models, t24, held)
        if t24.get("example") is not None:
            ex = t24["example"]
            rep.add_figure("flow_example.png", _flow_figure(ex, f"{ex['model']}, {ex['size']} px test crop"))
            figures.append(("flow_example.png", f"{ex['model']} vs reference on one {ex['size']} px test crop: "
                                                "u, error ×10, div φ vs u_t"))

    # ---- Table 5
    t5 = results.get("table5")
    if t5:
        kinds = ("disks", "ellipses", "medical")
        shapes = max(1, min(5, t5["size"] // 16))
        _section(lines, "Table 5 — other image types: PSNR (SSIM) of u",
                 f"{t5['n_images']} images of {t5['size']}×{t5['size']} px per type: {shapes} isolated disks; "
                 f"{shapes} overlapping ellipses; crops of medical images ({t5['medical_source']}). "
                 "Paper: 100 disk and 100 ellipse images, 40 spleen CT images of 512×512 px.",
                 ["model", "paper row"] + sum([[f"{k} ours", f"{k} paper"] for k in kinds], []),
                 _model_rows(paper_rows, "table5", lambda n, pap: sum(
                     [[_ours(t5["models"][n][k]), _paper_cell(pap, k)] for k in kinds], [])))

    # ---- Table 6
    t6 = results.get("table6")
    if t6:
        fs = t6["factors"]
        _section(lines, "Table 6 — one-homogeneity: PSNR (SSIM) of u(c·u0, t) vs the reference flow of c·u0",
                 f"{t6['n_images']} natural test crops at each of {', '.join(map(str, t6['sizes']))} px; "
                 "both divided by 5c (the reference is exactly one-homogeneous: "
                 "reference(c·u0, t) = c·reference(u0, t/c)). \"self\": u(c·u0, t)/c vs the same "
                 "model's u(u0, t/c). Paper: 600 images of mixed size.",
                 ["model", "paper row"] + sum([[f"c = {c:g} ours", f"c = {c:g} self", f"c = {c:g} paper"]
                                               for c in fs], []),
                 _model_rows([(n, models.get(n.split(" + ")[0], {}).get("paper_row")) for n in t6["models"]],
                             "table6", lambda n, pap: sum(
                                 [[_ours(t6["models"][n][c], "psnr", "ssim"),
                                   _ours(t6["models"][n][c], "self_psnr", "self_ssim"), _paper_cell(pap, c)]
                                  for c in fs], [])))

    # ---- Table 7
    t7 = results.get("table7")
    if t7:
        ref_cell = _ours(t7["reference"]["fd"], "psnr", "ssim")
        gt = _ps(*PAPER["table7_fd_gt"])
        rows = _model_rows([(n, row) for n, row in paper_rows if n in t7["models"]], "table7", lambda n, pap: [
            _autodiff_cell(t7["models"][n]["autodiff"]), _paper_cell(pap, "autodiff"),
            _ours(t7["models"][n]["fd"], "psnr", "ssim"), _paper_cell(pap, "fd"), ref_cell, gt])
        _section(lines, "Table 7 — reconstruction of u0 from the spectral TV transform: PSNR (SSIM)",
                 f"{t7['n_images']} natural test crops of {t7['size']} px; φ(t) = t·u_tt(t) at the "
                 f"{cfg.get('n_times', 50)} times (dt = {t7['dt']:g}). Autodiff: u_t, u_tt by forward-mode "
                 "autodiff in t, u0 ≈ trapezoid ∫φ dt + u(T) − T·u_t(T). FD: second differences on the "
                 "grid, u0 ≈ Σ φ_k dt + (N+1)u_N − N·u_{N+1}, which telescopes exactly to u(0) — of the "
                 "network (its initial-condition error) or of the reference (= u0 up to float32 "
                 "round-off of the cached flow). A model that composes in time (the shift-and-contrast "
                 "wrapper) has no autodiff column: its u_t jumps where two stages join, and the "
                 "integration by parts behind that formula needs it continuous.",
                 ["model", "paper row", "autodiff ours", "autodiff paper", "FD network ours", "FD network paper",
                  "FD reference ours", "FD reference paper"],
                 rows or [["(reference only)", "—", "—", "—", "—", "—", ref_cell, gt]])
        if t7.get("example"):
            rep.add_figure("spectra.png", _spectra_figure(t7["example"]))
            figures.append(("spectra.png", "spectrum S(t) of one test crop: reference (FD) and each model "
                                           "(autodiff, FD)"))

    # ---- Table 9
    t9 = results.get("table9")
    if t9:
        _section(lines, "Table 9 — evaluation time (seconds, one image)",
                 f"Median of {t9['repeats']} runs after a warm-up for the networks, one run for the reference "
                 f"(dt = {cfg.get('dt')}, tol = {cfg.get('tol')}, {cfg.get('solver')}, float64); "
                 f"{t9['threads']} CPU thread(s). \"1 t\": a single time (t = 0.98, which the reference "
                 f"reaches by evolving through all steps); \"{t9['n_times']} t\": all times. Paper: networks "
                 "on an Nvidia P6000 GPU; model-driven on CPU (Chambolle) and GPU (PDHG); sizes 32–512.")
        sizes = t9["sizes"]
        header = ["method", "device"] + sum([[f"{s}² 1 t", f"{s}² {t9['n_times']} t", f"{s}² paper"]
                                             for s in sizes], [])

        def cells(per: dict, paper: dict, fmt: str) -> list[str]:
            """Per size: the seconds for one time and for all times (None: not run), and the paper's."""
            return sum([[*("—" if per[s][k] is None else f"{per[s][k]:{fmt}}" for k in ("single", "all")),
                         f"{paper[s]:g}" if s in paper else "—"] for s in sizes], [])

        rows = [[n, dev] + cells(per, PAPER["table9"].get(models[n].get("arch"), {}), ".4f")
                for n in names for dev, per in t9["models"].get(n, {}).items()]
        rows += [["reference (implicit Euler + ROF)", dev]
                 + cells(per, PAPER["table9"]["model-driven (GPU)" if dev.startswith("cuda") else "model-driven (CPU)"],
                         ".2f")
                 for dev, per in t9["reference"].items()]
        if t1:
            joint = {s: {"single": None, "all": t1["seconds"].get(s)} for s in sizes}
            rows.append(["joint space-time optimisation", "cpu"] + cells(joint, PAPER["table9"]["joint"], ".1f"))
        lines.append(md_table(header, rows))
        lines.append("")
        for dev in t9["reference"]:
            for n in names:
                per = t9["models"].get(n, {}).get(dev)
                if not per:
                    continue
                sp = ", ".join(f"{s} px: {t9['reference'][dev][s]['all'] / max(per[s]['all'], 1e-12):.0f}× "
                               f"({t9['n_times']} t), "
                               f"{t9['reference'][dev][s]['single'] / max(per[s]['single'], 1e-12):.0f}× (1 t)"
                               for s in sizes)
                lines.append(f"- speed-up of {n} over the reference on {dev}: {sp}")
        lines.append("")

    variants = _variant_rows(results)
    if variants:
        _section(lines, "Metric variants",
                 "The columns above with the metrics of pdeflow's earlier reports instead of the paper's "
                 f"(not comparable with the paper's numbers): PSNR per frame = {METRICS['psnr_frames']}; "
                 f"SSIM Gaussian = {METRICS['ssim_gaussian']}. Beside them the paper's metrics, as above.",
                 ["table", "column", "model", "PSNR per frame", "PSNR of the stack (paper's)", "SSIM Gaussian",
                  "SSIM 7×7 uniform (paper's)"], variants)

    if figures:
        lines.append("## Figures")
        lines.append("")
        for f, cap in figures:
            lines.append(f"- [{f}]({f}): {cap}")
            lines.append("")
            lines.append(f"  ![{cap}]({f})")
            lines.append("")
    secs = results.get("seconds", {})
    if secs:
        lines.append("## Run time")
        lines.append("")
        lines.append(md_table(["part", "seconds"], [[k, f"{v:.1f}"] for k, v in secs.items()]))
        lines.append("")

    text = "\n".join(lines) + "\n"
    rep.add_text("report.md", text)
    rep.add_json("results.json", jsonable(results))
    return rep
