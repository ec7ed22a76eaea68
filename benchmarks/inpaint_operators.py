"""Sparse-data inpainting by operator: homogeneous diffusion, biharmonic, edge-enhancing diffusion (EED) and total
variation, each from a mask densified for it, at 5, 10 and 20 % known pixels, on held-out photos (issue 63).

Maintained. For each crop, density and operator of ``pdeflow.inpaint.operators.OPERATORS`` (those not
registered yet are skipped with a note): the mask ``densify_mask(f, density, operator=name)`` (error-driven
densification with that operator's inpaintings, default settings), then ``inpaint(f, mask, method=name)`` with
the operator's default options (``--option NAME:KEY=VALUE`` sets one). Beside it, each operator inpaints
diffusion's densified mask too, which separates what the operator gains from what its own mask gains.

Images: as ``benchmarks/inpaint_holes.py``: the held-out photos of ``--photos`` (default the repository's
``.data/photos/mate-nature``, from ``make photos``; the built-in TEST photos when it is missing), grey, float32,
each scaled (area average) to a shorter side of twice the crop size, one seeded random crop per photo; default
12 crops of 256 x 256 and 4 of 512 x 512. Never used to choose any operator's parameters.

Scores: PSNR (dB, data range 1), MAE on the 0-255 scale and SSIM (scikit-image's Gaussian SSIM,
``pdeflow.metrics``), of the inpainting clipped to [0, 1], over the whole image. Time: CPU seconds
(``time.process_time``) of the mask and of the inpainting, one image at a time, one thread.

Usage (from the repository root)::

    make photos
    OMP_NUM_THREADS=1 python benchmarks/inpaint_operators.py --out runs/benchmarks/inpaint_operators --overwrite
    python benchmarks/inpaint_operators.py --smoke      # one 64 px crop at 10 % (the test suite runs this)

Writes ``results.json`` (every crop), ``operators.md`` (means per size and density, EED against diffusion) and
``examples.png`` (the masks and inpaintings of the most structured crop of the first size at the lowest density)
to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch

import pdeflow
from _results import add_output_args, open_out, save_figure, timed, write_file  # benchmarks/_results.py
from inpaint_holes import add_photo_args, check_photo_args, parse_options, photo_crops  # the same crops
from pdeflow import metrics
from pdeflow.inpaint import densify_mask, inpaint
from pdeflow.inpaint.operators import OPERATORS as REGISTERED

OPERATORS = ("diffusion", "biharmonic", "eed", "tv")
LABELS = {"diffusion": "diffusion", "biharmonic": "biharmonic", "eed": "EED", "tv": "TV"}


def cpu_timed(fn, warned: list, who: str):
    """``(fn(), CPU seconds)``; warnings raised are collected in ``warned``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, secs = timed(fn)
    warned.extend(f"{who}: {w.category.__name__}: {w.message}" for w in caught)
    return out, secs


def scores(f: torch.Tensor, u: torch.Tensor) -> dict:
    u = u.clamp(0, 1).double()
    f = f.double()
    return {"psnr": float(metrics.psnr(u, f, data_range=1.0)), "mae255": 255 * float(metrics.mae(u, f)),
            "ssim": float(metrics.ssim(u, f, data_range=1.0))}


def mean(v) -> float:
    return float(sum(v) / len(v)) if v else float("nan")


def table(rows, ops, size) -> list[str]:
    sel = [r for r in rows if r["size"] == size]
    if not sel:
        return []
    n = len({r["photo"] for r in sel})
    lines = [f"**{size} x {size} crops** ({n} photos): PSNR (dB) / MAE (0-255) / SSIM, mean over the crops, each "
             "operator from its own densified mask (**bold**: the best of the row); in brackets: the same operator "
             "on diffusion's densified mask. CPU s per image: mask + inpainting.", "",
             "| density | " + " | ".join(LABELS[o] for o in ops) + " | " + " | ".join(f"{LABELS[o]} CPU s" for o in ops)
             + " |", "|---|" + "---|" * (2 * len(ops))]
    for d in sorted({r["density"] for r in sel}):
        g = {o: [r for r in sel if r["density"] == d and r["operator"] == o] for o in ops}
        m = {o: {k: mean([r[k] for r in g[o]]) for k in ("psnr", "mae255", "ssim", "psnr_dmask", "mask_s",
                                                          "inpaint_s")} for o in ops}
        bp, bm, bs = (max(m[o]["psnr"] for o in ops), min(m[o]["mae255"] for o in ops),
                      max(m[o]["ssim"] for o in ops))
        cells = []
        for o in ops:
            p = f"**{m[o]['psnr']:.2f}**" if m[o]["psnr"] == bp else f"{m[o]['psnr']:.2f}"
            a = f"**{m[o]['mae255']:.2f}**" if m[o]["mae255"] == bm else f"{m[o]['mae255']:.2f}"
            s = f"**{m[o]['ssim']:.3f}**" if m[o]["ssim"] == bs else f"{m[o]['ssim']:.3f}"
            cells.append(f"{p} / {a} / {s} ({m[o]['psnr_dmask']:.2f})")
        times = [f"{m[o]['mask_s']:.2f} + {m[o]['inpaint_s']:.3f}" for o in ops]
        lines.append(f"| {100 * d:g} % | " + " | ".join(cells + times) + " |")
    return lines + [""]


def eed_lines(rows, ops) -> list[str]:
    """EED against diffusion (each from its own mask): mean PSNR difference per density, the crops it wins."""
    if "eed" not in ops or "diffusion" not in ops:
        return []
    lines = ["EED against diffusion, every crop (all sizes), each from its own densified mask (the goal: "
             "+1.5 dB at 5 %):", "", "| density | PSNR diffusion | PSNR EED | difference | crops EED wins |",
             "|---|---|---|---|---|"]
    for d in sorted({r["density"] for r in rows}):
        by = {(r["photo"], r["size"]): r["psnr"] for r in rows if r["density"] == d and r["operator"] == "diffusion"}
        pairs = [(by[(r["photo"], r["size"])], r["psnr"]) for r in rows
                 if r["density"] == d and r["operator"] == "eed" and (r["photo"], r["size"]) in by]
        if not pairs:
            continue
        a, b = mean([p[0] for p in pairs]), mean([p[1] for p in pairs])
        lines.append(f"| {100 * d:g} % | {a:.2f} | {b:.2f} | {b - a:+.2f} dB | "
                     f"{sum(y > x for x, y in pairs)} of {len(pairs)} |")
    return lines + [""]


def figure(example, ops, path):
    """The crop, then per operator its mask and its inpainting."""
    from pdeflow.viz import figure as new_figure

    fig = new_figure(2.0 * (1 + len(ops)), 4.4)
    axes = fig.subplots(2, 1 + len(ops), squeeze=False)
    f = example["f"]
    axes[0, 0].imshow(f, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0, 0].set_title(f"original ({example['photo']})", fontsize=7)
    axes[1, 0].set_axis_off()
    for j, o in enumerate(ops, start=1):
        mask, u, p = example["ops"][o]
        axes[0, j].imshow(mask, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(f"{LABELS[o]} mask, {100 * example['density']:g} %", fontsize=7)
        axes[1, j].imshow(np.clip(u, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[1, j].set_title(f"{LABELS[o]}: {p:.2f} dB", fontsize=7)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle("Sparse inpainting: each operator from its own densified mask", fontsize=9)
    save_figure(fig, path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_photo_args(ap)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--operators", nargs="+", choices=OPERATORS, default=list(OPERATORS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--option", action="append", metavar="NAME:KEY=VALUE",
                    help="an option of an operator's inpainting (not of its densification), e.g. eed:tol=1e-5 "
                         "(repeatable; default: none)")
    ap.add_argument("--smoke", action="store_true", help="one 64 px crop at 10 %%")
    add_output_args(ap, "inpaint_operators", what="results.json, operators.md, examples.png")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.n_photos, args.densities = [64], [1], [0.1]
    check_photo_args(ap, args)
    opts = parse_options(ap, args.option)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    notes: list[str] = []
    ops = [o for o in args.operators if o in REGISTERED]
    notes += [f"{o}: not in pdeflow.inpaint.operators.OPERATORS in this checkout, skipped"
              for o in args.operators if o not in REGISTERED]
    for n in notes:
        print("note:", n)
    warned: list[str] = []
    rows, example = [], None
    for size, n_photos in zip(args.sizes, args.n_photos):
        crops, names = photo_crops(args.photos, size, n=n_photos, seed=args.seed, notes=notes)
        # the figure's crop: the most structured one (largest mean gradient magnitude), chosen before any method ran
        shown = int(torch.stack([crops[:, 0].diff(dim=-1).abs().mean((-2, -1)),
                                 crops[:, 0].diff(dim=-2).abs().mean((-2, -1))]).sum(0).argmax())
        for p, name in enumerate(names):
            f = crops[p:p + 1]                                     # (1, 1, size, size) float32
            for d in args.densities:
                masks, line = {}, []
                for o in ["diffusion"] + [o for o in ops if o != "diffusion"]:
                    mask, mask_s = cpu_timed(lambda o=o: densify_mask(f, d, operator=o), warned, f"densify {o}")
                    masks[o] = mask
                    if o not in ops:                               # diffusion's mask only, for the others
                        continue
                    # the registered function of inpaint(method=o), with its iteration counts
                    res, inp_s = cpu_timed(
                        lambda o=o: REGISTERED[o].function(f, mask, full_output=True, **opts.get(o, {})), warned, o)
                    u = res.u
                    its = int(getattr(res, "outer_iterations", getattr(res, "iterations", None)).max())
                    r = {"photo": name, "size": size, "density": d, "operator": o, "known": int(mask.sum()),
                         "mask_s": mask_s, "inpaint_s": inp_s, "iterations": its, **scores(f, u)}
                    ud = u if o == "diffusion" else inpaint(f, masks["diffusion"], method=o, **opts.get(o, {}))
                    r["psnr_dmask"] = scores(f, ud)["psnr"]
                    rows.append(r)
                    line.append(f"{o} {r['psnr']:.2f} dB ({r['psnr_dmask']:.2f}) {mask_s:.2f}+{inp_s:.2f} s")
                    if size == args.sizes[0] and p == shown and d == min(args.densities):
                        example = example or {"f": f[0, 0].numpy(), "photo": name, "density": d, "ops": {}}
                        example["ops"][o] = (mask[0, 0].numpy(), u[0, 0].numpy(), r["psnr"])
                print(f"{size} {name} {d:g}: " + ", ".join(line), flush=True)

    meta = {"photos": str(args.photos), "sizes": args.sizes, "n_photos": args.n_photos,
            "densities": args.densities, "operators": ops, "options": opts, "seed": args.seed, "dtype": "float32",
            "versions": {"pdeflow": pdeflow.__version__, "torch": torch.__version__,
                         "python": platform.python_version()},
            "threads": torch.get_num_threads(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "notes": notes,
            "warnings": sorted(set(warned))}
    write_file(out / "results.json", json.dumps({"meta": meta, "rows": rows}, indent=1))
    cmd = (out / "command.txt").read_text().strip()
    md = [f"<!-- generated by `{cmd}` -->", ""]
    for size in args.sizes:
        md += table(rows, ops, size)
    md += eed_lines(rows, ops)
    for o in ("eed", "tv"):
        its = [r["iterations"] for r in rows if r["operator"] == o]
        if its:
            md.append(f"{LABELS[o]}: no outer iteration (its start met the tolerance) on {its.count(0)} of "
                      f"{len(its)} crops, median {int(np.median(its))} outer iterations.")
    md.append("")
    if notes:
        md += [" ".join(notes)]
    if warned:
        md += ["", "Warnings: " + "; ".join(sorted(set(warned)))]
    write_file(out / "operators.md", "\n".join(md).rstrip() + "\n")
    if example is not None:
        figure(example, ops, out / "examples.png")
    print("\n".join(md))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
