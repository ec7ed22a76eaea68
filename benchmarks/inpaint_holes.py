"""Hole inpainting: pdeflow's operators against OpenCV's cv2.inpaint (Telea, Navier-Stokes) and scikit-image's
inpaint_biharmonic, on held-out photos with scratches, text and blobs (issue 63).

Maintained. Runs every operator of ``pdeflow.inpaint.INPAINT_METHODS`` among diffusion, biharmonic, EED and TV
(those not registered yet are skipped with a note), with their default options through
``pdeflow.inpaint.inpaint(f, ~holes, method=name)`` (its registered function, for the iteration counts;
``--option NAME:KEY=VALUE`` passes an option to one operator, none by default), and the baselines:
``cv2.inpaint`` with ``INPAINT_TELEA`` and ``INPAINT_NS``, radius 3 (the value of OpenCV's own sample), and
``skimage.restoration.inpaint_biharmonic``. Every method gets the same float32 grey image, its missing pixels set
to 0 (no method sees them); OpenCV gets it scaled to 0-255, still float32 (its Telea implementation assumes that
range), and its result is scaled back.

Images: the held-out photos of ``--photos`` (default the repository's ``.data/photos/mate-nature``, made by
``make photos``; the built-in TEST photos when that folder is missing), grey, each scaled (area average) to a shorter side of
twice the crop size, one seeded random crop per photo: a crop holds a quarter of the scene's extent, not a
flat patch of a wallpaper. Holes: ``pdeflow.inpaint.holes.hole_mask`` of each kind (scratches, text, blobs)
at each coverage (default 2, 5 and 10 %), a different seeded mask per photo.

Scores (outputs clipped to [0, 1] first, as saving an image would): PSNR and SSIM **on the missing pixels**
(primary: the known pixels are kept by every method, so whole-image scores mostly measure how many pixels are
known) -- the PSNR of the squared error averaged over the holes, and the mean of scikit-image's Gaussian SSIM
map (``pdeflow.metrics.ssim``) over the holes at least the window's radius from the border -- and over the
whole image. Time: CPU seconds of the call (``time.process_time``), one thread (``torch.set_num_threads(1)``,
``cv2.setNumThreads(1)``).

The 1 Mpx case: ``--timing-photos`` photos scaled to a shorter side of 1024, their centre 1024 x 1024 crop,
each kind at 5 %, every method, the best of ``--repeats`` CPU times; the ratio of each operator's time to
OpenCV's is the issue's "time ratio at 1 Mpx".

Usage (from the repository root)::

    make photos
    OMP_NUM_THREADS=1 python benchmarks/inpaint_holes.py --out runs/benchmarks/inpaint_holes --overwrite
    python benchmarks/inpaint_holes.py --smoke      # one 64 px crop per kind, seconds (the test suite runs this)

Writes ``results.json`` (every case), ``holes.md`` (means per kind and coverage), ``timing.md`` (the 1 Mpx case)
and ``examples.png`` (per kind, the most structured crop of the first size at the second coverage, every method)
to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import pdeflow
from _results import add_output_args, open_out, save_figure, write_file  # benchmarks/_results.py
from pdeflow import datasets, metrics
from pdeflow.inpaint import INPAINT_METHODS
from pdeflow.inpaint.holes import HOLE_KINDS, hole_mask
from pdeflow.inpaint.operators import OPERATORS as REGISTERED
from pdeflow.io import image_files, read_image

OPERATORS = ("diffusion", "biharmonic", "eed", "tv")
BASELINES = ("opencv-telea", "opencv-ns", "skimage-biharmonic")
LABELS = {"diffusion": "diffusion", "biharmonic": "biharmonic", "eed": "EED", "tv": "TV",
          "opencv-telea": "OpenCV Telea", "opencv-ns": "OpenCV NS", "skimage-biharmonic": "skimage biharmonic"}
#: cv2.inpaint's inpaintRadius for both of its methods.
CV2_RADIUS = 3
DEFAULT_PHOTOS = Path(__file__).resolve().parent.parent / ".data" / "photos" / "mate-nature"


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------

def add_photo_args(ap) -> None:
    """``--photos``, ``--sizes`` and ``--n-photos``: the held-out crops of this benchmark and inpaint_operators.py."""
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of held-out photos")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="crop sizes")
    ap.add_argument("--n-photos", type=int, nargs="+", default=[12, 4],
                    help="photos per crop size (the first N of the folder, sorted)")


def check_photo_args(ap, args) -> None:
    if len(args.n_photos) != len(args.sizes):
        ap.error("--n-photos: one number per --sizes")


def photo_crops(folder: Path | None, size: int, *, n: int | None = None, seed: int = 0, centre: bool = False,
                notes: list | None = None):
    """``(crops (n, 1, size, size) float32, names)``: each photo grey, scaled (area average) to a shorter side
    of ``2 size`` (``size`` with ``centre``), one seeded random crop (the centre crop with ``centre``). The
    built-in TEST photos when ``folder`` is None or missing."""
    if folder is not None and Path(folder).is_dir():
        files = image_files(Path(folder), "--photos")
        named = [(p.stem, lambda p=p: read_image(p, grey=True)) for p in files]
    else:
        if notes is not None:
            notes.append(f"{folder} not found: crops of the built-in TEST photos instead (run `make photos`)")
        pool = datasets.builtin_pool("test", grey=True, kind="photo")
        named = [(k, lambda v=v: v) for k, v in pool.items()]
    named = named[:n] if n is not None else named
    g = torch.Generator().manual_seed(seed)
    crops, names = [], []
    for name, load in named:
        img = load().double()
        short = min(img.shape[-2:])
        target = size if centre else 2 * size
        scale = target / short
        hw = (max(size, round(img.shape[-2] * scale)), max(size, round(img.shape[-1] * scale)))
        img = F.interpolate(img[None], size=hw, mode="area" if scale < 1 else "bilinear")[0]
        H, W = img.shape[-2:]
        if centre:
            top, left = (H - size) // 2, (W - size) // 2
        else:
            top = int(torch.randint(H - size + 1, (1,), generator=g))
            left = int(torch.randint(W - size + 1, (1,), generator=g))
        crops.append(img[:, top:top + size, left:left + size].clamp(0, 1).float())
        names.append(name)
    return torch.stack(crops), names


# ---------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------

#: Options of the pdeflow operators (``--option NAME:KEY=VALUE``), ``{name: {key: value}}``; none by default.
OPTIONS: dict = {}


def parse_options(ap, items) -> dict:
    """``--option eed:tol=1e-5`` ... as ``{'eed': {'tol': 1e-05}}`` (values as Python literals where they parse)."""
    import ast

    out = {}
    for item in items or []:
        m = re.fullmatch(r"(\w+):(\w+)=(.+)", item)
        if not m or m.group(1) not in OPERATORS:
            ap.error(f"--option: expected NAME:KEY=VALUE with NAME one of {', '.join(OPERATORS)}, got {item!r}")
        try:
            value = ast.literal_eval(m.group(3))
        except (ValueError, SyntaxError):
            value = m.group(3)
        out.setdefault(m.group(1), {})[m.group(2)] = value
    return out


def available(requested, notes: list) -> list[str]:
    """The requested methods that can run here; a note for each that cannot."""
    out = []
    for m in requested:
        if m in OPERATORS and (m not in INPAINT_METHODS or m not in REGISTERED):
            notes.append(f"{m}: not in pdeflow.inpaint.operators.OPERATORS in this checkout, skipped")
            continue
        if m.startswith("opencv"):
            try:
                import cv2
                cv2.setNumThreads(1)
            except ImportError:
                notes.append(f"{m}: OpenCV (opencv-python-headless) is not installed, skipped")
                continue
        out.append(m)
    return out


def run(method: str, f: np.ndarray, holes: np.ndarray, warned: list | None = None,
        info: dict | None = None) -> np.ndarray:
    """``method``'s inpainting of ``f`` (H, W) float32 at ``holes`` (H, W) bool (True = missing); ``info`` gets a
    pdeflow operator's ``iterations`` (the outer ones of EED and TV)."""
    g = np.where(holes, np.float32(0), f).astype(np.float32)
    if method in OPERATORS:
        # the registered function of pdeflow.inpaint.inpaint(method=...), with its iteration counts
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = REGISTERED[method].function(torch.from_numpy(g), torch.from_numpy(~holes), full_output=True,
                                              **OPTIONS.get(method, {}))
        if warned is not None:
            warned.extend(f"{method}: {w.category.__name__}: {w.message}" for w in caught)
        if info is not None:
            info["iterations"] = int(getattr(res, "outer_iterations", getattr(res, "iterations", None)).max())
        return res.u.numpy()
    if method.startswith("opencv"):
        import cv2
        flag = cv2.INPAINT_TELEA if method == "opencv-telea" else cv2.INPAINT_NS
        # float32 on the 0-255 scale: Telea's implementation assumes it (on [0, 1] it returns values far
        # outside the image's range); no rounding to 8 bits
        return cv2.inpaint(g * np.float32(255), holes.astype(np.uint8), CV2_RADIUS, flag) / np.float32(255)
    if method == "skimage-biharmonic":
        from skimage.restoration import inpaint_biharmonic
        return inpaint_biharmonic(g, holes).astype(np.float32)
    raise ValueError(method)


def timed(method, f, holes, repeats: int = 1, warned=None, info=None):
    """``(u, best CPU seconds, wall seconds of that call)`` over ``repeats`` calls."""
    best = (math.inf, math.inf)
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        u = run(method, f, holes, warned, info)
        best = min(best, (time.process_time() - c0, time.perf_counter() - t0))
    return u, best[0], best[1]


def scores(f: np.ndarray, u: np.ndarray, holes: np.ndarray) -> dict:
    """PSNR and SSIM on the missing pixels and on the whole image (``u`` clipped to [0, 1])."""
    u = np.clip(u, 0.0, 1.0)
    ft, ut = torch.from_numpy(f).double(), torch.from_numpy(u).double()
    err = (ut - ft)[torch.from_numpy(holes)]
    s, smap = metrics.ssim(ut, ft, data_range=1.0, full=True)
    r = (f.shape[0] - smap.shape[0]) // 2
    inner = torch.from_numpy(holes[r:f.shape[0] - r, r:f.shape[1] - r])
    known = ~holes
    return {"psnr_hole": float(-10 * torch.log10(err.pow(2).mean().clamp_min(1e-20))),
            "ssim_hole": float(smap[inner].mean()) if bool(inner.any()) else float("nan"),
            "psnr": float(metrics.psnr(ut, ft, data_range=1.0)), "ssim": float(s),
            "known_changed": float(np.abs(u - np.clip(f, 0, 1))[known].max())}


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

def mean(v) -> float:
    v = [x for x in v if not (isinstance(x, float) and math.isnan(x))]
    return float(sum(v) / len(v)) if v else float("nan")


def summary(rows, methods, group) -> dict:
    """``{group value: {method: {metric: mean}}}``."""
    out = {}
    for key in dict.fromkeys(group(r) for r in rows):
        sel = [r for r in rows if group(r) == key]
        out[key] = {m: {k: mean([r[k] for r in sel if r["method"] == m])
                        for k in ("psnr_hole", "ssim_hole", "psnr", "ssim", "cpu_s")} for m in methods}
    return out


def wins(rows, method, other, metric) -> tuple[int, int]:
    """Cases where ``method`` scores above ``other`` in ``metric``, and the number of cases."""
    by = {(r["photo"], r["kind"], r["coverage"], r["size"]): r[metric] for r in rows if r["method"] == other}
    mine = [(by[(r["photo"], r["kind"], r["coverage"], r["size"])], r[metric]) for r in rows
            if r["method"] == method and (r["photo"], r["kind"], r["coverage"], r["size"]) in by]
    return sum(b > a for a, b in mine), len(mine)


def quality_table(rows, methods, size) -> list[str]:
    sel = [r for r in rows if r["size"] == size]
    if not sel:
        return []
    n = len({r["photo"] for r in sel})
    lines = [f"**{size} x {size} crops** ({n} photos per row): PSNR (dB) / SSIM on the missing pixels, "
             "mean over the photos (**bold**: the best of the row); CPU s per image below.", "",
             "| kind | coverage | " + " | ".join(LABELS[m] for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    groups = summary(sel, methods, lambda r: (r["kind"], r["coverage"]))
    groups.update({(k, "all"): v for k, v in summary(sel, methods, lambda r: r["kind"]).items()})
    order = [(k, c) for k in HOLE_KINDS for c in [*sorted({r["coverage"] for r in sel}), "all"]]
    for key in order:
        if key not in groups:
            continue
        g = groups[key]
        best_p = max(g[m]["psnr_hole"] for m in methods)
        best_s = max(g[m]["ssim_hole"] for m in methods)
        cells = []
        for m in methods:
            p, s = g[m]["psnr_hole"], g[m]["ssim_hole"]
            ps = f"**{p:.2f}**" if p == best_p else f"{p:.2f}"
            ss = f"**{s:.3f}**" if s == best_s else f"{s:.3f}"
            cells.append(f"{ps} / {ss}")
        cov = "mean" if key[1] == "all" else f"{100 * key[1]:g} %"
        lines.append(f"| {key[0]} | {cov} | " + " | ".join(cells) + " |")
    lines += ["", "| kind | " + " | ".join(LABELS[m] for m in methods) + " |", "|---|" + "---|" * len(methods)]
    for kind, g in summary(sel, methods, lambda r: r["kind"]).items():
        lines.append(f"| {kind} (CPU s) | " + " | ".join(f"{g[m]['cpu_s']:.3f}" for m in methods) + " |")
    lines += ["", "Whole image, mean over every kind and coverage: PSNR (dB) / SSIM", "",
              "| " + " | ".join(LABELS[m] for m in methods) + " |", "|" + "---|" * len(methods)]
    whole = summary(sel, methods, lambda r: "all")["all"]
    lines.append("| " + " | ".join(f"{whole[m]['psnr']:.2f} / {whole[m]['ssim']:.4f}" for m in methods) + " |")
    return lines + [""]


def goal_lines(rows, methods) -> list[str]:
    """Against OpenCV: the mean over every case of each operator, and the cases it wins."""
    ops = [m for m in methods if m in OPERATORS]
    cvs = [m for m in methods if m.startswith("opencv")]
    if not ops or not cvs:
        return []
    lines = ["Against OpenCV, every case (kinds, coverages, sizes): mean PSNR / SSIM on the missing pixels, "
             "the difference to each OpenCV method, and the cases won (of all).", "",
             "| operator | PSNR / SSIM | " + " | ".join(f"vs {LABELS[c]}: dPSNR, dSSIM, wins PSNR / SSIM"
                                                     for c in cvs) + " | above both on the mean |",
             "|---|---|" + "---|" * len(cvs) + "---|"]
    allm = summary(rows, methods, lambda r: "all")["all"]
    for m in ops:
        cells, above = [], True
        for c in cvs:
            dp = allm[m]["psnr_hole"] - allm[c]["psnr_hole"]
            ds = allm[m]["ssim_hole"] - allm[c]["ssim_hole"]
            wp, n = wins(rows, m, c, "psnr_hole")
            ws, _ = wins(rows, m, c, "ssim_hole")
            above &= dp > 0 and ds > 0
            cells.append(f"{dp:+.2f} dB, {ds:+.4f}, {wp} / {ws} of {n}")
        lines.append(f"| {LABELS[m]} | {allm[m]['psnr_hole']:.2f} / {allm[m]['ssim_hole']:.4f} | "
                     + " | ".join(cells) + f" | {'yes' if above else 'no'} |")
    return lines + [""]


def start_lines(rows, methods) -> list[str]:
    """How often EED and TV stopped at their start (no outer iteration: the tolerance met by the homogeneous
    diffusion start they begin from)."""
    out = []
    for m in ("eed", "tv"):
        its = [r["iterations"] for r in rows if r["method"] == m and "iterations" in r]
        if its:
            out.append(f"{LABELS[m]}: no outer iteration (its start met the tolerance) in {its.count(0)} of "
                       f"{len(its)} cases, median {int(np.median(its))} outer iterations.")
    return [" ".join(out), ""] if out else []


def timing_table(trows, methods) -> list[str]:
    if not trows:
        return []
    cvs = [m for m in methods if m.startswith("opencv")]
    size = trows[0]["size"]
    lines = [f"**{size} x {size}** ({size * size / 1e6:.2f} Mpx), each kind at "
             f"{100 * trows[0]['coverage']:g} %, best CPU s of {trows[0]['repeats']} runs, one thread; "
             "PSNR (dB) on the missing pixels; ratio: the operator's time over OpenCV's.", "",
             "| photo | kind | " + " | ".join(LABELS[m] for m in methods) + " |", "|---|---|" + "---|" * len(methods)]
    for key in dict.fromkeys((r["photo"], r["kind"]) for r in trows):
        by = {r["method"]: r for r in trows if (r["photo"], r["kind"]) == key}
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(
            f"{by[m]['cpu_s']:.3f} s ({by[m]['psnr_hole']:.2f})" if m in by else "-" for m in methods) + " |")
    if cvs:
        lines += ["", "| operator | " + " | ".join(f"time / {LABELS[c]} (geometric mean, range)" for c in cvs)
                  + " |", "|---|" + "---|" * len(cvs)]
        for m in [m for m in methods if m in OPERATORS]:
            cells = []
            for c in cvs:
                ratios = []
                for key in dict.fromkeys((r["photo"], r["kind"]) for r in trows):
                    by = {r["method"]: r for r in trows if (r["photo"], r["kind"]) == key}
                    if m in by and c in by:
                        ratios.append(by[m]["cpu_s"] / by[c]["cpu_s"])
                gm = math.exp(sum(map(math.log, ratios)) / len(ratios))
                cells.append(f"{gm:.1f}x ({min(ratios):.1f}-{max(ratios):.1f}x)")
            lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    return lines + [""]


# ---------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------

def figure(examples, methods, path):
    """One row per kind: the original, the damaged image (holes in red), every method's result."""
    from pdeflow.viz import figure as new_figure

    ncol = 2 + len(methods)
    fig = new_figure(1.9 * ncol, 2.15 * len(examples) + 0.3)
    axes = fig.subplots(len(examples), ncol, squeeze=False)
    for i, (kind, ex) in enumerate(examples.items()):
        f, holes = ex["f"], ex["holes"]
        damaged = np.repeat(np.where(holes, 0.0, f)[..., None], 3, axis=2)
        damaged[holes] = (1.0, 0.0, 0.0)
        panels = [(f, f"original ({ex['photo']})"), (damaged, f"{kind}, {100 * ex['coverage']:g} %")]
        panels += [(np.clip(ex["u"][m], 0, 1), f"{LABELS[m]}: {ex['psnr'][m]:.2f} dB") for m in methods]
        for ax, (img, title) in zip(axes[i], panels):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.set_axis_off()
    fig.suptitle("Hole inpainting (PSNR on the missing pixels)", fontsize=9)
    save_figure(fig, path, dpi=110)


# ---------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_photo_args(ap)
    ap.add_argument("--kinds", nargs="+", choices=HOLE_KINDS, default=list(HOLE_KINDS))
    ap.add_argument("--coverages", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    ap.add_argument("--methods", nargs="+", choices=OPERATORS + BASELINES, default=list(OPERATORS + BASELINES))
    ap.add_argument("--timing-size", type=int, default=1024, help="side of the 1 Mpx case (0: none)")
    ap.add_argument("--timing-photos", type=int, default=2)
    ap.add_argument("--timing-coverage", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3, help="timing runs of the 1 Mpx case (the best is kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--option", action="append", metavar="NAME:KEY=VALUE",
                    help="an option of a pdeflow operator, e.g. eed:tol=1e-5 (repeatable; default: none)")
    ap.add_argument("--smoke", action="store_true", help="one 64 px crop, one coverage, a 96 px timing case")
    add_output_args(ap, "inpaint_holes", what="results.json, holes.md, timing.md, examples.png")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.n_photos, args.coverages = [64], [1], [0.05]
        args.timing_size, args.timing_photos, args.repeats = 96, 1, 1
    check_photo_args(ap, args)
    OPTIONS.update(parse_options(ap, args.option))
    out = open_out(args, argv)
    torch.set_num_threads(1)
    notes: list[str] = []
    methods = available(args.methods, notes)
    for n in notes:
        print("note:", n)
    warned: list[str] = []

    rows, examples = [], {}
    for size, n_photos in zip(args.sizes, args.n_photos):
        crops, names = photo_crops(args.photos, size, n=n_photos, seed=args.seed, notes=notes)
        # the figure's crop: the most structured one (largest mean gradient magnitude), chosen before any method ran
        shown = int(torch.stack([crops[:, 0].diff(dim=-1).abs().mean((-2, -1)),
                                 crops[:, 0].diff(dim=-2).abs().mean((-2, -1))]).sum(0).argmax())
        for ki, kind in enumerate(args.kinds):
            for ci, cov in enumerate(args.coverages):
                for p, name in enumerate(names):
                    f = crops[p, 0].numpy()
                    seed = args.seed + 1000 * size + 100 * ki + 10 * ci + p * 100_000
                    holes = hole_mask(f.shape, kind, cov, generator=seed).numpy()
                    line = []
                    for m in methods:
                        info = {}
                        u, cpu, wall = timed(m, f, holes, warned=warned, info=info)
                        r = {"photo": name, "size": size, "kind": kind, "coverage": cov, "method": m,
                             "cpu_s": cpu, "wall_s": wall, **info, **scores(f, u, holes)}
                        rows.append(r)
                        line.append(f"{m} {r['psnr_hole']:.2f}/{r['ssim_hole']:.3f} {cpu:.2f}s")
                        if p == shown and size == args.sizes[0] and math.isclose(cov, args.coverages[
                                min(1, len(args.coverages) - 1)]):
                            ex = examples.setdefault(kind, {"f": f, "holes": holes, "photo": name,
                                                            "coverage": cov, "u": {}, "psnr": {}})
                            ex["u"][m], ex["psnr"][m] = u, r["psnr_hole"]
                    print(f"{size} {kind} {cov:g} {name}: " + ", ".join(line), flush=True)

    trows = []
    if args.timing_size:
        crops, names = photo_crops(args.photos, args.timing_size, n=args.timing_photos, centre=True)
        for p, name in enumerate(names):
            f = crops[p, 0].numpy()
            for ki, kind in enumerate(args.kinds):
                holes = hole_mask(f.shape, kind, args.timing_coverage, generator=args.seed + 7 + 10 * ki + p).numpy()
                for m in methods:
                    info = {}
                    u, cpu, wall = timed(m, f, holes, repeats=args.repeats, warned=warned, info=info)
                    trows.append({"photo": name, "size": args.timing_size, "kind": kind,
                                  "coverage": args.timing_coverage, "method": m, "cpu_s": cpu, "wall_s": wall,
                                  "repeats": args.repeats, **info, **scores(f, u, holes)})
                    print(f"timing {args.timing_size} {name} {kind} {m}: {cpu:.3f} CPU s, "
                          f"{trows[-1]['psnr_hole']:.2f} dB", flush=True)

    changed = max((r["known_changed"] for r in rows + trows), default=0.0)
    meta = {"photos": str(args.photos), "sizes": args.sizes, "n_photos": args.n_photos, "kinds": args.kinds,
            "options": OPTIONS,
            "coverages": args.coverages, "methods": methods, "cv2_radius": CV2_RADIUS, "seed": args.seed,
            "timing": {"size": args.timing_size, "photos": args.timing_photos, "coverage": args.timing_coverage,
                       "repeats": args.repeats},
            "versions": versions(), "threads": torch.get_num_threads(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "load": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "notes": notes,
            "warnings": sorted(set(warned)), "known_pixels_changed_max": changed}
    write_file(out / "results.json", json.dumps({"meta": meta, "rows": rows, "timing": trows}, indent=1))
    cmd = (out / "command.txt").read_text().strip()
    md = [f"<!-- generated by `{cmd}` -->", ""]
    for size in args.sizes:
        md += quality_table(rows, methods, size)
    md += goal_lines(rows, methods)
    md += start_lines(rows + trows, methods)
    md += [f"Largest change of a known pixel by any method: {changed:.1e}. " + " ".join(notes)]
    if warned:
        md += ["", "Warnings: " + "; ".join(sorted(set(warned)))]
    write_file(out / "holes.md", "\n".join(md).rstrip() + "\n")
    write_file(out / "timing.md", "\n".join([f"<!-- generated by `{cmd}` -->", ""]
                                          + timing_table(trows, methods)).rstrip() + "\n")
    if examples:
        figure(examples, methods, out / "examples.png")
    print("\n".join(md))
    print("\n".join(timing_table(trows, methods)))
    print(f"wrote {out}")
    return 0


def versions() -> dict:
    v = {"pdeflow": pdeflow.__version__, "torch": torch.__version__, "numpy": np.__version__,
         "python": platform.python_version()}
    try:
        import cv2
        v["opencv"] = cv2.__version__
    except ImportError:
        v["opencv"] = None
    import skimage
    v["skimage"] = skimage.__version__
    return v


if __name__ == "__main__":
    sys.exit(main())
