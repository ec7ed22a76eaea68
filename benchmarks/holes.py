"""Which operator to fill holes with: every operator of pdeflow's table against OpenCV's ``cv2.inpaint``, per kind
of hole and kind of photo, in quality and CPU time (issue 89).

Maintained. Runs every operator of ``pdeflow.inpaint.operators.OPERATORS`` (whatever the table holds: diffusion,
biharmonic, EED, TV, Shepard today) with its default options through the public entry point
``pdeflow.inpaint.inpaint(f, ~holes, method=name)``, and OpenCV's ``cv2.inpaint`` with ``INPAINT_TELEA`` and
``INPAINT_NS`` (radius 3), the way ``benchmarks/inpaint_holes.py`` calls them: the same float32 grey image, its
missing pixels set to 0; OpenCV gets it on the 0-255 scale, still float32, scaled back after.

Images, three sets (never used to choose any default):

* ``native``: each held-out photo of ``--photos`` (default the repository's ``.data/photos/mate-nature``, made
  by ``make photos``) at its own resolution, one seeded random ``--size`` crop;
* ``scaled``: the same photos scaled (area average) to a shorter side of ``--size``, the centre square: the
  whole scene at web size;
* ``test``: the built-in TEST photos (``pdeflow.datasets.builtin_pool("test", kind="photo")``: camera, coffee,
  coins, gravel, aero, Grace Hopper), at their own resolution, the centre square of at most ``--size``.

Holes, each a different seeded mask per image, their coverage exact to the pixel: ``text`` (5 %), ``scratches``
(5 %) and ``blobs`` (5 %: 2-5 removed objects) of ``pdeflow.inpaint.holes.hole_mask``; ``text+scratches`` (9 %:
text at 5 % and scratches at 4 %, the union; a damaged captioned print); ``objects`` (10 %: one large smooth
region near the centre, a removed object, drawn here).

Scores (outputs clipped to [0, 1]): PSNR and SSIM on the missing pixels (primary: every method keeps the known
pixels) and on the whole image, as ``benchmarks/inpaint_holes.py`` computes them; CPU seconds of the call
(``time.process_time``, best of ``--repeats``), one thread (``torch.set_num_threads(1)``, ``cv2.setNumThreads(1)``).
A method *wins* an image when its PSNR on the holes is the highest of all methods.

The ``self-test`` row is a choice a user can make without the missing pixels: test holes of the same kind and
coverage drawn over the *known* pixels (another seed; an object anywhere in the middle 70 %), each of diffusion,
biharmonic and EED inpainting the image with both the holes and the test holes missing, and the one best on the
test holes (PSNR) filling the real holes; its time is that of the test plus the chosen operator's.

Usage (from the repository root)::

    make photos
    OMP_NUM_THREADS=1 python benchmarks/holes.py --out runs/benchmarks/holes --overwrite
    python benchmarks/holes.py --smoke      # 64 px crops of two photos per set, seconds (the test suite runs this)

Writes ``results.json`` (every case), ``holes.md`` (per set and kind) and ``summary.md`` (per kind over every
image, per set over every kind, time) to ``--out``, and prints both tables; ``--tables-from DIR`` writes the
tables again from the ``results.json`` of an earlier run's folder, without running anything.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _results import add_output_args, open_out, timed, write_file  # benchmarks/_results.py
from inpaint_holes import CV2_RADIUS, DEFAULT_PHOTOS, mean, scores, versions  # benchmarks/inpaint_holes.py: same scores
from pdeflow import datasets
from pdeflow.inpaint import inpaint
from pdeflow.inpaint.holes import hole_mask, star_radius
from pdeflow.inpaint.operators import OPERATORS
from pdeflow.io import image_files, read_image

BASELINES = ("opencv-telea", "opencv-ns")
#: The operators the self-test chooses from.
CANDIDATES = ("diffusion", "biharmonic", "eed")
SELF_TEST = "self-test"
METHODS = (*OPERATORS, SELF_TEST, *BASELINES)
LABELS = {"diffusion": "diffusion", "biharmonic": "biharmonic", "eed": "EED", "tv": "TV", "shepard": "Shepard",
          "opencv-telea": "OpenCV Telea", "opencv-ns": "OpenCV NS", SELF_TEST: "self-test"}
#: The kinds of holes and their coverage (fraction of missing pixels).
KINDS = {"text": 0.05, "scratches": 0.05, "text+scratches": 0.09, "blobs": 0.05, "objects": 0.10}
SETS = ("native", "scaled", "test")
SET_LABELS = {"native": "nature photos, own resolution", "scaled": "nature photos, scaled to the crop",
              "test": "TEST photos (camera, coffee, coins, gravel, aero, Grace Hopper)"}


def label(m: str) -> str:
    return LABELS.get(m, m)


# ---------------------------------------------------------------------------
# Images and holes
# ---------------------------------------------------------------------------

def images(which: str, folder: Path, size: int, *, n: int | None, seed: int, notes: list) -> list[tuple[str, np.ndarray]]:
    """``[(name, (H, W) float32 in [0, 1])]`` of one set (module doc)."""
    if which == "test":
        pool = datasets.builtin_pool("test", grey=True, kind="photo")
        named = [(k.split("/")[-1], lambda v=v: v) for k, v in pool.items()]
    elif Path(folder).is_dir():
        named = [(p.stem, lambda p=p: read_image(p, grey=True)) for p in image_files(Path(folder), "--photos")]
    else:
        notes.append(f"{which}: {folder} not found, set skipped (run `make photos`)")
        return []
    out = []
    g = torch.Generator().manual_seed(seed)
    for name, load in named[:n]:
        img = load().double()[0]
        H, W = img.shape
        if which == "scaled":
            s = size / min(H, W)
            hw = (max(size, round(H * s)), max(size, round(W * s)))
            img = F.interpolate(img[None, None], size=hw, mode="area" if s < 1 else "bilinear")[0, 0]
            H, W = img.shape
        side_h, side_w = min(size, H), min(size, W)
        if which == "native":   # a seeded random crop: not always the photo's centre
            top = int(torch.randint(H - side_h + 1, (1,), generator=g))
            left = int(torch.randint(W - side_w + 1, (1,), generator=g))
        else:
            top, left = (H - side_h) // 2, (W - side_w) // 2
        side = min(side_h, side_w)
        out.append((name, img[top:top + side, left:left + side].clamp(0, 1).float().numpy()))
    return out


def object_mask(shape, coverage: float, rng: np.random.Generator, *, spread: float = 0.15) -> np.ndarray:
    """One large smooth region (a removed object) of exactly ``round(coverage H W)`` pixels, its centre within
    ``spread`` of the image's centre (in fractions of the sides): an ellipse of random aspect and angle, its outline
    perturbed by harmonics 2-4 (``pdeflow.inpaint.holes.star_radius``), filled from its centre outwards."""
    H, W = shape
    k = round(coverage * H * W)
    cy, cx = rng.uniform(0.5 - spread, 0.5 + spread) * H, rng.uniform(0.5 - spread, 0.5 + spread) * W
    aspect, angle = rng.uniform(0.5, 1.0), rng.uniform(0.0, math.pi)
    harmonics = np.arange(2, 5)
    amp = rng.uniform(0.0, 0.3, harmonics.size) / harmonics
    phase = rng.uniform(0.0, 2.0 * math.pi, harmonics.size)
    # the library's outline of hole_mask's blobs (harmonics 2-4 here, smaller: an object's smoother outline)
    key = star_radius((H, W), (cy, cx), aspect=aspect, angle=angle, amplitudes=amp, phases=phase).numpy().ravel()
    holes = np.zeros(H * W, dtype=bool)
    holes[np.argsort(key, kind="stable")[:k]] = True
    return holes.reshape(H, W)


def holes_of(kind: str, shape, seed: int, *, spread: float = 0.15) -> np.ndarray:
    """The (H, W) bool mask (True = missing) of ``kind`` (:data:`KINDS`), from ``seed`` (``spread``: of an
    object's centre, :func:`object_mask`)."""
    cov = KINDS[kind]
    if kind == "objects":
        return object_mask(shape, cov, np.random.default_rng(seed), spread=spread)
    if kind == "text+scratches":
        return (hole_mask(shape, "text", 0.05, generator=seed)
                | hole_mask(shape, "scratches", cov - 0.05, generator=seed + 1)).numpy()
    return hole_mask(shape, kind, cov, generator=seed).numpy()


# ---------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------

def run(method: str, f: np.ndarray, holes: np.ndarray, warned: list) -> np.ndarray:
    """``method``'s inpainting of ``f`` (H, W) float32 at ``holes`` (True = missing)."""
    g = np.where(holes, np.float32(0), f).astype(np.float32)
    if method in OPERATORS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            u = inpaint(torch.from_numpy(g), torch.from_numpy(~holes), method=method)
        warned.extend(f"{method}: {w.category.__name__}: {w.message}" for w in caught)
        return u.numpy()
    import cv2
    flag = cv2.INPAINT_TELEA if method == "opencv-telea" else cv2.INPAINT_NS
    # float32 on the 0-255 scale: Telea's implementation assumes it; no rounding to 8 bits
    return cv2.inpaint(g * np.float32(255), holes.astype(np.uint8), CV2_RADIUS, flag) / np.float32(255)


def self_test(f: np.ndarray, holes: np.ndarray, kind: str, seed: int, warned: list) -> tuple[str, dict]:
    """The operator of :data:`CANDIDATES` that best fills test holes of the same kind and coverage drawn over the
    *known* pixels (what a user can do without the missing ones), and each candidate's PSNR there."""
    test = holes_of(kind, f.shape, seed, spread=0.35) & ~holes
    if not test.any():
        return CANDIDATES[0], {}
    both = holes | test
    psnr = {}
    for m in CANDIDATES:
        u = np.clip(run(m, f, both, warned), 0.0, 1.0)
        psnr[m] = float(-10 * np.log10(max(float(np.mean((u[test] - f[test]) ** 2)), 1e-20)))
    return max(CANDIDATES, key=lambda m: psnr[m]), psnr


def seed_of(seed: int, si: int, p: int, kind: str) -> int:
    """The seed of the holes of set ``si``, image ``p``, ``kind``."""
    return seed + 1_000_000 * si + 1000 * p + 10 * list(KINDS).index(kind)


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

def gmean(v) -> float:
    return float(math.exp(sum(map(math.log, v)) / len(v))) if v else float("nan")


def cases(rows) -> dict:
    """``{(set, image, kind): {method: row}}``."""
    out: dict = {}
    for r in rows:
        out.setdefault((r["set"], r["image"], r["kind"]), {})[r["method"]] = r
    return out


def stats(rows, methods, select) -> dict:
    """Over the cases that ``select(set, image, kind)`` keeps: per method the mean PSNR / SSIM on the holes and
    on the whole image, the mean difference of hole PSNR to diffusion, the wins (highest hole PSNR of all
    methods), the geometric mean of CPU time over Telea's and the mean CPU s; ``n`` the number of cases."""
    sel = [c for k, c in cases(rows).items() if select(*k) and all(m in c for m in methods)]
    out = {"n": len(sel)}
    rivals = [m for m in methods if m != SELF_TEST]   # the self-test repeats one of them
    for m in methods:
        out[m] = {k: mean([c[m][k] for c in sel]) for k in ("psnr_hole", "ssim_hole", "psnr", "ssim", "cpu_s")}
        out[m]["wins"] = sum(c[m]["psnr_hole"] >= max(c[x]["psnr_hole"] for x in rivals) for c in sel)
        if "diffusion" in methods:
            out[m]["d_diffusion"] = mean([c[m]["psnr_hole"] - c["diffusion"]["psnr_hole"] for c in sel])
        if "opencv-telea" in methods:
            out[m]["x_telea"] = gmean([c[m]["cpu_s"] / max(c["opencv-telea"]["cpu_s"], 1e-6) for c in sel])
        short = [max(c[x]["psnr_hole"] for x in rivals) - c[m]["psnr_hole"] for c in sel]
        out[m]["short_mean"], out[m]["short_max"] = mean(short), max(short, default=float("nan"))
    return out


def best_operator(st, methods) -> str:
    ops = [m for m in methods if m in OPERATORS]
    return max(ops, key=lambda m: st[m]["psnr_hole"]) if ops else "-"


def quality_row(name: str, st, methods) -> str:
    top = max(st[m]["psnr_hole"] for m in methods)
    cells = []
    for m in methods:
        p = f"{st[m]['psnr_hole']:.2f}"
        cells.append(f"{'**' + p + '**' if st[m]['psnr_hole'] == top else p} / {st[m]['ssim_hole']:.3f} "
                     f"({st[m]['wins']})")
    return f"| {name} | {st['n']} | " + " | ".join(cells) + f" | {label(best_operator(st, methods))} |"


def header(methods, first: str) -> list[str]:
    return [f"| {first} | images | " + " | ".join(label(m) for m in methods) + " | best operator |",
            "|---|---|" + "---|" * len(methods) + "---|"]


def detail_table(rows, methods, sets) -> list[str]:
    """Per set and kind: mean PSNR / SSIM on the holes (wins)."""
    lines = ["PSNR (dB) / SSIM on the missing pixels, mean over the images (wins: images where the method's PSNR "
             "is the highest of all; **bold**: the highest mean).", ""]
    for s in sets:
        if not any(r["set"] == s for r in rows):
            continue
        sides = sorted({r["side"] for r in rows if r["set"] == s})
        size = f"{sides[0]} x {sides[0]}" if len(sides) == 1 else f"{sides[0]}-{sides[-1]} px squares"
        lines += [f"**{s}**: {SET_LABELS[s]}, {size}", ""] + header(methods, "holes (coverage)")
        for kind, cov in KINDS.items():
            st = stats(rows, methods, lambda s_, i, k, s=s, kind=kind: s_ == s and k == kind)
            if st["n"]:
                lines.append(quality_row(f"{kind} ({100 * cov:g} %)", st, methods))
        st = stats(rows, methods, lambda s_, i, k, s=s: s_ == s)
        lines += [quality_row("every kind", st, methods), ""]
    return lines


def summary_table(rows, methods, sets) -> list[str]:
    """Per kind over every image, per set over every kind; then the time."""
    lines = ["Mean PSNR (dB) on the missing pixels, its difference to diffusion in brackets where not diffusion, "
             "and the wins (images where the method is the best of all).", "",
             "| holes | images | " + " | ".join(label(m) for m in methods) + " | best operator |",
             "|---|---|" + "---|" * len(methods) + "---|"]

    def row(name, st):
        top = max(st[m]["psnr_hole"] for m in methods)
        cells = []
        for m in methods:
            p = f"{st[m]['psnr_hole']:.2f}"
            p = f"**{p}**" if st[m]["psnr_hole"] == top else p
            d = f" ({st[m]['d_diffusion']:+.2f})" if m != "diffusion" and "d_diffusion" in st[m] else ""
            cells.append(f"{p}{d}, {st[m]['wins']}")
        return f"| {name} | {st['n']} | " + " | ".join(cells) + f" | {label(best_operator(st, methods))} |"

    for kind in KINDS:
        st = stats(rows, methods, lambda s, i, k, kind=kind: k == kind)
        if st["n"]:
            lines.append(row(kind, st))
    for s in sets:
        st = stats(rows, methods, lambda s_, i, k, s=s: s_ == s)
        if st["n"]:
            lines.append(row(f"every kind, {s}", st))
    st = stats(rows, methods, lambda s, i, k: True)
    lines.append(row("**every case**", st))
    lines += ["", "Every case: the shortfall of the hole PSNR to the best method of the case (dB, mean and "
              "worst), whole-image PSNR (dB) / SSIM, mean CPU seconds per image and the geometric mean of the "
              "ratio to OpenCV Telea's time on the same case (one thread).", "",
              "| | " + " | ".join(label(m) for m in methods) + " |", "|---|" + "---|" * len(methods),
              "| shortfall: mean / worst | " + " | ".join(f"{st[m]['short_mean']:.2f} / {st[m]['short_max']:.2f}"
                                                      for m in methods) + " |",
              "| whole image | " + " | ".join(f"{st[m]['psnr']:.2f} / {st[m]['ssim']:.4f}" for m in methods) + " |",
              "| CPU s | " + " | ".join(f"{st[m]['cpu_s']:.3f}" for m in methods) + " |"]
    if "opencv-telea" in methods:
        lines.append("| time / Telea | " + " | ".join(f"{st[m]['x_telea']:.1f}x" for m in methods) + " |")
    return lines + [""]


# ---------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of held-out photos")
    ap.add_argument("--size", type=int, default=512, help="side of the square crops")
    ap.add_argument("--n-photos", type=int, default=None, help="the first N photos of each set (default: all)")
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    ap.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--repeats", type=int, default=1, help="CPU time: the best of this many calls")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="64 px crops of two photos per set")
    ap.add_argument("--tables-from", type=Path, nargs="+", default=None, metavar="DIR",
                    help="no run: the tables of earlier runs' folders (their results.json and command.txt), "
                         "e.g. one run per --sets")
    add_output_args(ap, "holes", what="results.json, holes.md, summary.md")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.n_photos = 64, 2
    out = open_out(args, argv)
    torch.set_num_threads(1)
    notes: list[str] = []
    methods = list(args.methods)
    if any(m in BASELINES for m in methods):
        try:
            import cv2
            cv2.setNumThreads(1)
        except ImportError:
            notes.append("OpenCV (opencv-python-headless, the baselines extra) is not installed: baselines skipped")
            methods = [m for m in methods if m not in BASELINES]
    for n in notes:
        print("note:", n)
    warned: list[str] = []
    rows = []
    if args.tables_from is not None:   # the tables again (after a change to them), from the cases of runs
        sets, commands = [], []
        for folder in args.tables_from:
            earlier = json.loads((folder / "results.json").read_text())
            rows += earlier["rows"]
            meta = earlier["meta"]
            methods = [m for m in methods if m in meta["methods"]] if commands else list(meta["methods"])
            sets += [x for x in meta["sets"] if x not in sets]
            notes += meta["notes"]
            warned += meta["warnings"]
            commands.append((folder / "command.txt").read_text().strip())
        sets = [x for x in SETS if x in sets]
        return tables(rows, methods, sets, notes, warned, "`, `".join(commands), out)
    for s in args.sets:
        si = SETS.index(s)   # the set's crops and holes do not depend on which other sets run
        for p, (name, f) in enumerate(images(s, args.photos, args.size, n=args.n_photos, seed=args.seed + si,
                                             notes=notes)):
            for ki, kind in enumerate(args.kinds):
                holes = holes_of(kind, f.shape, seed_of(args.seed, si, p, kind))
                line, done = [], {}
                for m in methods:
                    if m == SELF_TEST:
                        continue
                    u, cpu = timed(lambda: run(m, f, holes, warned), args.repeats)
                    r = {"set": s, "image": name, "side": f.shape[0], "kind": kind, "coverage": float(holes.mean()),
                         "method": m, "cpu_s": cpu, **scores(f, u, holes)}
                    rows.append(r)
                    done[m] = r
                    line.append(f"{m} {r['psnr_hole']:.2f} {cpu:.2f}s")
                if SELF_TEST in methods:   # its result is the chosen operator's; its time adds the test's
                    (chosen, tested), cost = timed(
                        lambda: self_test(f, holes, kind, seed_of(args.seed, si, p, kind) + 5, warned))
                    if chosen not in done:   # not among --methods
                        u, cpu = timed(lambda: run(chosen, f, holes, warned), args.repeats)
                        done[chosen] = {**r, "method": chosen, "cpu_s": cpu, **scores(f, u, holes)}
                    rows.append({**done[chosen], "method": SELF_TEST, "chosen": chosen, "tested": tested,
                                 "cpu_s": done[chosen]["cpu_s"] + cost, "test_cpu_s": cost})
                    line.append(f"self-test: {chosen}")
                print(f"{s} {name} {kind}: " + ", ".join(line), flush=True)

    sets = [s for s in args.sets if any(r["set"] == s for r in rows)]
    changed = max((r["known_changed"] for r in rows), default=0.0)
    meta = {"photos": str(args.photos), "size": args.size, "n_photos": args.n_photos, "sets": sets,
            "kinds": {k: KINDS[k] for k in args.kinds}, "methods": methods, "cv2_radius": CV2_RADIUS,
            "seed": args.seed, "repeats": args.repeats, "versions": versions(), "threads": torch.get_num_threads(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "load": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "notes": notes,
            "warnings": sorted(set(warned)), "known_pixels_changed_max": changed}
    write_file(out / "results.json", json.dumps({"meta": meta, "rows": rows}, indent=1))
    return tables(rows, methods, sets, notes, warned, (out / "command.txt").read_text(), out)


def tables(rows, methods, sets, notes, warned, command: str, out: Path) -> int:
    """Write and print ``holes.md`` and ``summary.md`` of the cases ``rows``."""
    cmd = command.strip()
    changed = max((r["known_changed"] for r in rows), default=0.0)
    tail = [f"Largest change of a known pixel by any method: {changed:.1e}. " + " ".join(notes)]
    picks = [r for r in rows if r["method"] == SELF_TEST]
    if picks:
        tail += ["", "The self-test chose (of " + ", ".join(label(m) for m in CANDIDATES) + "): " + "; ".join(
            f"{s}: " + ", ".join(f"{label(m)} {sum(r['chosen'] == m for r in picks if r['set'] == s)}"
                                 for m in CANDIDATES) for s in sets) + "."]
    if warned:
        tail += ["", "Warnings: " + "; ".join(sorted(set(warned)))]
    detail = [f"<!-- generated by `{cmd}` -->", ""] + detail_table(rows, methods, sets) + tail
    summary = [f"<!-- generated by `{cmd}` -->", ""] + summary_table(rows, methods, sets)
    write_file(out / "holes.md", "\n".join(detail).rstrip() + "\n")
    write_file(out / "summary.md", "\n".join(summary).rstrip() + "\n")
    print("\n".join(detail))
    print("\n".join(summary))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
