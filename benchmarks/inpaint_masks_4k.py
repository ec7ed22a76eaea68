"""Inpainting masks from 512 px to 4K, and on native-resolution photographs: time, memory, quality.

Three parts (``--part``), each side by side in one run:

* ``scale`` (default): one grey photo (``--photo``, default the 3840 x 2160 photograph of the
  ``lomiri`` pool in ``.data/photos``), reduced (area) to each of ``--sizes``. For each size and mask
  method, in a fresh single-threaded subprocess: the mask's CPU time (``time.process_time``), the
  process's peak resident memory (``ru_maxrss``) and the part above the process before the call, then
  homogeneous diffusion inpainting of the float32 image from that mask (``diffuse``, multigrid, tol
  1e-6; not timed) and its PSNR, MSE, MAE (0-255 scale) and SSIM (:mod:`pdeflow.metrics`). Methods:
  ``analytic`` (``analytic_mask(f, d, sigma=analytic_sigma(d))``), ``learned``
  (``learned_mask(f, d)``: the shipped network, tiled), ``learned-untiled`` (``tile_size=None``, the
  network in one piece as before), ``learned-bf16`` (``compute_dtype=torch.bfloat16``: the network's
  convolutions in bfloat16), ``learned-s2`` (``scale=2``), ``densify`` (``densify_mask(f, d)``: grown from
  a sparse analytic mask at the inpainting error's maxima) and, with ``--refine R``, the analytic
  and the learned mask refined on the whole image (``refine={"rounds": R, "solver": "mg"}``:
  ``refine_mask``'s exchange rounds with multigrid solves) and on tiles (``refine={"rounds": R,
  "tile_size": T}``, ``--refine-tile T``, default 512, CG solves on each tile). ``--allocator default
  retain``: each (size, method) also in a process that first calls
  :func:`pdeflow.allocator.retain_freed_memory`, as the ``pdeflow`` command does.
* ``native``: every photo of ``--folder`` (default ``.data/photos/mate-nature``, never used in
  training) at its native resolution, grey, at each of ``--densities``: the same metrics for the
  analytic mask and the learned ones (scale 1 and ``--scales``; ``--native-methods``: more, e.g.
  ``densify``), with the mask CPU times; one process. ``--crop N``: centre crops of N x N at native
  resolution instead (used on the ``lomiri`` pool to choose the scale before the evaluation on
  ``mate-nature``).
* ``ps``: centre crops of ``--crops`` px of the same photos: the analytic and learned masks against
  probabilistic sparsification (``probabilistic_sparsification(f, densities, metric='mse')``, one run
  giving every density, timed once per crop) in the same metrics; ``--ps-refine R``: also the analytic
  and learned masks refined (``refine={"rounds": R, "shifts": 2}``); ``--ps-refine-mse``: refined minimising
  the MSE as the 64 px evaluation's ``*-refine-mse`` rows; ``--ps-methods``: more rows by name (e.g.
  ``learned-refine-mse2000``: that refinement with 2000 rounds; ``-net``: its options minimising the mask
  network's loss; ``learned20-ps``: PS started from the learned mask of 20 %, ``learned20-ps-refine-mse2000``:
  then refined); ``--reuse-ps JSON``: PS's rows from an earlier
  run (PS is deterministic and the slowest). The tables are rewritten after every photo.
* ``ps-merge``: the rows of several ``ps`` runs (``--inputs A.json B.json``) in one table, wins against PS.

    OMP_NUM_THREADS=1 python benchmarks/inpaint_masks_4k.py --out /tmp/m4k                      # scale
    OMP_NUM_THREADS=1 python benchmarks/inpaint_masks_4k.py --part native --out /tmp/m4k-native
    OMP_NUM_THREADS=1 python benchmarks/inpaint_masks_4k.py --part ps --crops 128 --out /tmp/m4k-ps

Writes ``scale.*``, ``native-<folder>[-crop<N>].*`` or ``ps-<crops>[-first<N>].*`` (json and md) to ``--out`` (default a fresh folder under runs/benchmarks/).

Historical. It sized the mask methods from 512 px to 4K; minutes to hours per size. Its results are kept for
the record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

from _results import add_output_args, maxrss_mb, open_out, run_child, write_file  # benchmarks/_results.py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = ["512", "1024", "1920x1080", "3840x2160"]
METHODS = ["analytic", "learned", "learned-bf16", "learned-s2", "learned-untiled"]
PHOTO = ROOT / ".data" / "photos" / "lomiri" / "umang_by_Abhishek_Mudgal.jpg"
#: ``--candidate D=MODEL``: mask networks (a model.json, a run directory or a shipped name) that the ``candidate`` rows use
CANDIDATES: dict[float, str] = {}
FOLDER = ROOT / ".data" / "photos" / "mate-nature"


def parse_size(s: str) -> tuple[int, int]:
    """``'512'`` -> (512, 512); ``'1920x1080'`` -> (H, W) = (1080, 1920)."""
    if "x" in s:
        w, h = s.lower().split("x")
        return int(h), int(w)
    return int(s), int(s)


def load_grey(path, size=None):
    """A grey float32 tensor (H, W) in [0, 1] of the photo at ``path``; ``size`` (H, W): centre-cropped
    to that aspect ratio, then reduced (area average)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    img = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    f = torch.from_numpy(img)
    if size is None:
        return f.contiguous()
    H, W = size
    h, w = f.shape
    if h * W > w * H:           # too tall: crop rows
        hh = w * H // W
        f = f[(h - hh) // 2:(h - hh) // 2 + hh]
    else:
        ww = h * W // H
        f = f[:, (w - ww) // 2:(w - ww) // 2 + ww]
    f = F.interpolate(f[None, None], size=(H, W), mode="area")[0, 0]
    return f.clamp(0, 1).contiguous()


def make_mask(f, density, method, refine_rounds=2):
    """The mask of ``method``: a name of :data:`METHODS`, ``learned-bf16`` (the network in bfloat16;
    ``learned-bf16-wX``: with strength X),
    ``learned-sN`` (scale N), ``learned-wX`` (strength X), ``learned-wA,B`` (strength (A, B): the log-density's
    and the snap score's corrections weighted apart; ``-reflect`` after either: ``padding="reflect"``; then
    ``-sN``: scale N)
    or ``analytic-refine`` / ``learned-refine`` (``-tT``: on tiles of T; ``analytic-refineR`` / ``learned-refineR``:
    R rounds, 2 tile shifts)."""
    import torch

    from pdeflow.inpaint import analytic_mask, densify_mask, learned_mask
    from pdeflow.inpaint.masks.analytic import analytic_sigma

    if method == "densify":
        return densify_mask(f, density)
    if method == "analytic":
        return analytic_mask(f, density, sigma=analytic_sigma(density))
    if method == "analytic-refine":
        return analytic_mask(f, density, sigma=analytic_sigma(density),
                             refine={"rounds": refine_rounds, "solver": "mg"})
    if method == "learned":
        return learned_mask(f, density)
    candidate = re.fullmatch(r"candidate(?:-w([\d.]+))?(-reflect)?", method)
    if candidate:
        return learned_mask(f, density, model=CANDIDATES[density], strength=float(candidate[1] or 1),
                            padding="reflect" if candidate[2] else "zeros")
    if method == "learned-refine":
        return learned_mask(f, density, refine={"rounds": refine_rounds, "solver": "mg"})
    if method.startswith(("analytic-refine-t", "learned-refine-t")):
        opts = {"rounds": refine_rounds, "tile_size": int(method.rsplit("-t", 1)[1])}
        if method.startswith("analytic"):
            return analytic_mask(f, density, sigma=analytic_sigma(density), refine=opts)
        return learned_mask(f, density, refine=opts)
    hybrid = re.fullmatch(r"learned(\d+)-ps(-refine-mse(\d*))?", method)
    if hybrid:
        # PS (minimising the MSE, as the PS-mse rows) started from the learned mask of a higher density instead
        # of every pixel; then, with "-refine-mse[R]", refined as the learned-refine-mse rows (one tile shift:
        # the PS mask has no density map to shift)
        from pdeflow.inpaint import probabilistic_sparsification
        from pdeflow.inpaint.masks.refine import refine_mask
        start = int(hybrid[1]) / 100
        m = probabilistic_sparsification(f.double(), density, metric="mse", generator=0,
                                         mask=learned_mask(f, start).double()).to(f.dtype)
        if not hybrid[2]:
            return m
        return refine_mask(f, m, **{**refine_mse_options(density, hybrid[3]), "shifts": 1})
    tuned = re.fullmatch(r"(analytic|learned)-refine-(mse|net)(\d*)", method)
    if tuned:
        # the evaluation's refinement minimising the MSE (the rows compared with PS-mse at 64 px; its solves to
        # 1e-5: the errors of these photos are too small for the default 3e-3); "-net": the same options
        # minimising the mask network's loss (MAE and SSIM); "-mseR" / "-netR": R rounds instead of 600-800
        opts = refine_mse_options(density, tuned[3])
        if tuned[2] == "net":
            opts["metric"] = "masknet"
        if method.startswith("analytic"):
            return analytic_mask(f, density, sigma=analytic_sigma(density), refine=opts)
        return learned_mask(f, density, refine=opts)
    if method.startswith(("analytic-refine", "learned-refine")) and method[-1].isdigit() and "-t" not in method:
        opts = {"rounds": int(method.rsplit("refine", 1)[1]), "shifts": 2, "generator": 0}
        if method.startswith("analytic"):
            return analytic_mask(f, density, sigma=analytic_sigma(density), refine=opts)
        return learned_mask(f, density, refine=opts)
    if method == "learned-untiled":
        return learned_mask(f, density, tile_size=None)
    if method == "learned-bf16":
        return learned_mask(f, density, compute_dtype=torch.bfloat16)
    if method.startswith("learned-s"):
        return learned_mask(f, density, scale=int(method[len("learned-s"):]))
    weighted = re.fullmatch(r"learned-(bf16-)?w([\d.,]+)(-reflect)?(?:-s(\d+))?", method)
    if weighted:
        return learned_mask(f, density, strength=parse_strength(weighted[2]),
                            compute_dtype=torch.bfloat16 if weighted[1] else None,
                            padding="reflect" if weighted[3] else "zeros", scale=int(weighted[4] or 1))
    raise ValueError(method)


def refine_mse_options(density, rounds=""):
    """The 64 px evaluation's refinement minimising the MSE (``REFINE_MSE``, nearest density), seeded;
    ``rounds``: a number of rounds instead of its own ("": its own)."""
    from pdeflow.inpaint.evaluation import REFINE_MSE
    opts = {**REFINE_MSE[min(REFINE_MSE, key=lambda k: abs(k - density))], "generator": 0}
    if rounds:
        opts["rounds"] = int(rounds)
    return opts


def parse_strength(text: str):
    """``"X"`` -> X, ``"A,B"`` -> (A, B): a ``learned_mask`` strength as the method names write it."""
    w = [float(v) for v in text.split(",")]
    return w[0] if len(w) == 1 else tuple(w)


METHOD_PATTERN = re.compile(r"densify|candidate(-w\d*\.?\d+)?(-reflect)?|(analytic|learned)(-refine(\d+|-t\d+|-mse\d*|-net\d*)?)?"
                            r"|learned-(untiled|bf16|s\d+|(bf16-)?w\d*\.?\d+(,\d*\.?\d+)?(-reflect)?(-s\d+)?)|learned\d+-ps(-refine-mse\d*)?")


def method_arg(text: str) -> str:
    """``--methods``: a name :func:`make_mask` knows, checked before anything runs."""
    if not METHOD_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected densify, analytic, learned, learned-untiled, learned-bf16, learned-sN, learned-wX or "
                                         f"(analytic|learned)-refine[R|-tT|-mse[R]|-net[R]] or learnedP-ps[-refine-mse[R]], "
                                         f"got {text!r}")
    return text


def strength_arg(text: str) -> str:
    """``--strengths``: ``X`` or ``A,B`` (numbers >= 0), as the method name writes it (``0.30`` -> ``0.3``)."""
    try:
        w = parse_strength(text)
    except ValueError:
        w = ()
    w = w if isinstance(w, tuple) else (w,)
    if not 1 <= len(w) <= 2 or any(not v >= 0 for v in w):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or a pair A,B of them, got {text!r}")
    return ",".join(f"{v:g}" for v in w)


def quality(f, m):
    """PSNR, MSE, MAE (0-255) and SSIM of the diffusion inpainting of ``f`` from ``m``."""
    from pdeflow import metrics
    from pdeflow.inpaint import diffuse

    u = diffuse(f, m, tol=1e-6).clamp(0, 1)
    return {"psnr": float(metrics.psnr(u, f, data_range=1.0)), "mse": float(metrics.mse(u * 255, f * 255)),
            "mae": float(metrics.mae(u * 255, f * 255)), "ssim": float(metrics.ssim(u, f, data_range=1.0))}


def worker(photo, H, W, density, method, refine_rounds, allocator="default"):
    import torch

    if allocator == "retain":
        from pdeflow.allocator import retain_freed_memory
        if not retain_freed_memory():
            raise RuntimeError("retain_freed_memory() is not available here (glibc only)")
    torch.set_num_threads(1)
    f = load_grey(photo, (H, W))
    make_mask(f[:64, :64], density, method.replace("-untiled", ""))   # loads the network, the tile cache
    base = maxrss_mb()
    t0 = time.process_time()
    m = make_mask(f, density, method, refine_rounds)
    dt = time.process_time() - t0
    peak = maxrss_mb()
    row = {"mask_cpu_s": dt, "peak_mb": peak, "above_base_mb": peak - base, "known": int(m.sum())}
    row.update(quality(f, m))
    return row


def run_scale(args, out):
    methods = args.methods + (["analytic-refine", "learned-refine", f"analytic-refine-t{args.refine_tile}",
                               f"learned-refine-t{args.refine_tile}"] if args.refine else [])
    rows = []
    for s in args.sizes:
        H, W = parse_size(s)
        for method in methods:
            for allocator in args.allocator:
                load = os.getloadavg()[0]
                r = run_child(__file__, [str(args.photo), str(H), str(W), str(args.density), method,
                                         str(args.refine), allocator], args.timeout)
                row = {"size": f"{W}x{H}", "pixels": H * W, "method": method, "allocator": allocator,
                       "load_before": load, **r}
                rows.append(row)
                print(json.dumps(row), flush=True)
    write_file(out / "scale.json", json.dumps({"meta": meta(args), "rows": rows}, indent=1) + "\n")
    lines = [f"# Masks at {args.density:.0%} from {args.sizes[0]} to {args.sizes[-1]}", "",
             f"Photo `{Path(args.photo).name}` (grey, reduced to each size), one thread, each (size, method) "
             "in a fresh process: mask CPU seconds (`time.process_time`), the process's peak `ru_maxrss` and "
             "the part above the process before the call (Python, torch, the image, the loaded network); "
             "then diffusion inpainting from the mask (multigrid, tol 1e-6, not timed) and its quality "
             "(MSE, MAE on the 0-255 scale). Load = 1-min load average before the run "
             f"({os.cpu_count()} CPUs). Allocator `retain`: the process called "
             "`pdeflow.allocator.retain_freed_memory()` first, as the `pdeflow` command does.", "",
             "| size | method | allocator | load | mask CPU s | peak MB | above MB | PSNR dB | MSE | MAE | SSIM |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['size']} | {r['method']} | {r.get('allocator', 'default')} | {r['load_before']:.1f} |"
        if "error" in r:
            lines.append(f"{head} error: {r['error']} | | | | | |")
            continue
        lines.append(f"{head} {r['mask_cpu_s']:.2f} | "
                     f"{r['peak_mb']:.0f} | {r['above_base_mb']:.0f} | {r['psnr']:.2f} | {r['mse']:.2f} | "
                     f"{r['mae']:.3f} | {r['ssim']:.4f} |")
    lines += ["", f"`uptime` at the end: {os.getloadavg()}", ""]
    write_file(out / "scale.md", "\n".join(lines))
    print("\n".join(lines))


def centre_crop(f, n: int):
    """The centre ``n x n`` of ``f`` (..., H, W), contiguous; a side shorter than ``n`` is kept whole."""
    h, w = f.shape[-2:]
    top, left = max(0, (h - n) // 2), max(0, (w - n) // 2)
    return f[..., top:top + n, left:left + n].contiguous()


def photos(folder, limit, offset=0):
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[offset:]
    return files[:limit] if limit else files


def run_native(args, out):
    import torch

    torch.set_num_threads(1)
    methods = ["analytic", "learned"] + [f"learned-s{s}" for s in args.scales] \
        + [f"learned-w{w}" for w in args.strengths] \
        + ([f"learned-bf16-w{w}" for w in args.strengths] if args.bf16 else []) \
        + ([f"learned-w{w}-reflect" for w in args.strengths] if args.reflect else []) \
        + [f"learned-w{w}-reflect-s{n}" for w in args.strengths for n in args.reflect_scales] \
        + ([f"candidate{'' if w == 1 else f'-w{w:g}'}{'-reflect' if args.reflect else ''}"
            for w in args.candidate_strengths] if CANDIDATES else []) \
        + args.native_methods
    rows = []
    for p in photos(args.folder, args.limit, args.offset):
        f = load_grey(p)
        if args.crop:
            f = centre_crop(f, args.crop)
        for d in args.densities:
            for method in methods:
                t0 = time.process_time()
                m = make_mask(f, d, method)
                dt = time.process_time() - t0
                row = {"photo": p.name, "size": f"{f.shape[1]}x{f.shape[0]}", "density": d, "method": method,
                       "mask_cpu_s": dt, **quality(f, m)}
                rows.append(row)
                print(json.dumps(row), flush=True)
        write_native_tables(args, out, methods, rows)    # after every photo: a stopped run keeps its photos


def write_native_tables(args, out, methods, rows):
    """``native-<folder>[-crop<N>][-from<K>].json`` and ``.md`` of the rows so far."""
    tag = f"native-{Path(args.folder).name}" + (f"-crop{args.crop}" if args.crop else "") \
        + (f"-from{args.offset}" if args.offset else "")
    write_file(out / f"{tag}.json", json.dumps({"meta": meta(args), "rows": rows}, indent=1) + "\n")
    lines = [f"# Masks on native-resolution photos ({Path(args.folder).name}, {len(rows) // max(1, len(methods) * len(args.densities))} photos)", "",
             "Grey, native resolution; diffusion inpainting (multigrid, tol 1e-6) from each mask. Means over "
             "the photos; MSE and MAE on the 0-255 scale; 'wins' = photos where the method beats `analytic` "
             "in MSE / MAE / SSIM.", "",
             "| density | method | mask CPU s | PSNR dB | MSE | MAE | SSIM | wins MSE | wins MAE | wins SSIM |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += summary(rows, args.densities, methods, "photo")
    write_file(out / f"{tag}.md", "\n".join(lines + [""]))
    print("\n".join(lines))


def summary(rows, densities, methods, key, ref="analytic"):
    """Table rows: per density and method the means over ``key`` (the photos or sizes) and the wins against
    the method ``ref`` on the same ``key``."""
    import numpy as np

    lines = []
    for d in densities:
        base = {r[key]: r for r in rows if r["density"] == d and r["method"] == ref}
        for method in methods:
            rs = [r for r in rows if r["density"] == d and r["method"] == method]
            if not rs:
                continue
            mean = {k: float(np.mean([r[k] for r in rs])) for k in ("mask_cpu_s", "psnr", "mse", "mae", "ssim")}
            wins = [sum(r[k] < base[r[key]][k] if k != "ssim" else r[k] > base[r[key]][k] for r in rs)
                    for k in ("mse", "mae", "ssim")]
            lines.append(f"| {d:.0%} | {method} | {mean['mask_cpu_s']:.3f} | {mean['psnr']:.2f} | {mean['mse']:.2f} | "
                         f"{mean['mae']:.3f} | {mean['ssim']:.4f} | {wins[0]}/{len(rs)} | {wins[1]}/{len(rs)} | "
                         f"{wins[2]}/{len(rs)} |")
    return lines


def run_ps(args, out):
    import torch

    from pdeflow.inpaint import probabilistic_sparsification

    torch.set_num_threads(1)
    methods = ["analytic", "learned"] + [f"learned-w{w}" for w in args.strengths] \
        + ([f"analytic-refine{args.ps_refine}", f"learned-refine{args.ps_refine}"] if args.ps_refine else []) \
        + (["analytic-refine-mse", "learned-refine-mse"] if args.ps_refine_mse else []) \
        + args.ps_methods + (["candidate"] if CANDIDATES else []) + ["PS-mse"]
    rows = []
    # PS is deterministic (generator 0) and by far the slowest row: an earlier run's rows of the same crops
    reused = {}
    if args.reuse_ps:
        for r in json.loads(Path(args.reuse_ps).read_text())["rows"]:
            if r["method"] == "PS-mse":
                reused[(r["photo"], r["crop"], r["density"])] = r
    for p in photos(args.folder, args.limit):
        full = load_grey(p)
        for n in args.crops:
            f = centre_crop(full, n)
            old = {d: reused.get((p.name, n, d)) for d in args.densities}
            if not all(old.values()):
                t0 = time.process_time()
                ps = probabilistic_sparsification(f.double(), list(args.densities), metric="mse", generator=0)
                t_ps = time.process_time() - t0
            for k, d in enumerate(args.densities):
                for method in methods:
                    if method == "PS-mse" and old[d]:
                        row = {**old[d], "reused": str(args.reuse_ps)}
                    else:
                        t0 = time.process_time()
                        m = ps[k].to(f.dtype) if method == "PS-mse" else make_mask(f, d, method)
                        dt = t_ps if method == "PS-mse" else time.process_time() - t0
                        row = {"crop": n, "photo": p.name, "density": d, "method": method, "mask_cpu_s": dt,
                               **quality(f, m)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        write_ps_tables(args, out, methods, rows)       # after every photo: a stopped run keeps its photos


def run_ps_merge(args, out):
    """The rows of several ``ps`` runs of the same photos and crops (``--inputs``; a row repeated in a later
    file is the earlier one's) in one table, with the wins against PS; ``--ps-methods``: only those rows
    (and analytic, learned, PS)."""
    rows, seen, methods = [], set(), []
    for path in args.inputs:
        for r in json.loads(Path(path).read_text())["rows"]:
            k = (r["photo"], r["crop"], r["density"], r["method"])
            if k not in seen:
                seen.add(k)
                rows.append(r)
                if r["method"] not in methods:
                    methods.append(r["method"])
    if args.ps_methods:                      # only these (besides analytic, learned and PS)
        methods = [m for m in methods if m in ("analytic", "learned", *args.ps_methods)]
        rows = [r for r in rows if r["method"] in (*methods, "PS-mse")]
    methods = [m for m in methods if m != "PS-mse"] + ["PS-mse"]
    args.crops = sorted({r["crop"] for r in rows})
    args.densities = sorted({r["density"] for r in rows})
    args.inputs = [str(p) for p in args.inputs]
    write_ps_tables(args, out, methods, rows, ref="PS-mse", sources=args.inputs)


def write_ps_tables(args, out, methods, rows, ref="analytic", sources=None):
    """``ps-<crops>[-first<N>].json`` and ``.md`` of the rows so far (whole photos only)."""
    tag = "ps-" + "-".join(map(str, args.crops)) + (f"-first{args.limit}" if args.limit else "")
    n_photos = len({r["photo"] for r in rows})
    write_file(out / f"{tag}.json", json.dumps({"meta": meta(args), "rows": rows}, indent=1) + "\n")
    lines = [f"# Masks against probabilistic sparsification on centre crops ({Path(args.folder).name})", "",
             "Grey centre crops; PS minimises the MSE (p = q = 0.02, one run for all densities: its CPU "
             "time is that run's); diffusion inpainting (multigrid, tol 1e-6) from each mask; means over "
             f"the photos ({n_photos}), MSE/MAE on the 0-255 scale; 'wins' against `{ref}`.", ""]
    if sources:
        lines += ["Rows merged from " + ", ".join(f"`{s}`" for s in sources) + ".", ""]
    for n in args.crops:
        lines += [f"## {n} x {n}", "",
                  "| density | method | mask CPU s | PSNR dB | MSE | MAE | SSIM | wins MSE | wins MAE | wins SSIM |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += summary([r for r in rows if r["crop"] == n], args.densities, methods, "photo", ref) + [""]
    write_file(out / f"{tag}.md", "\n".join(lines))
    print("\n".join(lines), flush=True)


def meta(args):
    import platform

    import torch

    import pdeflow
    return {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k not in ("child", "out", "overwrite")},
            "pdeflow": pdeflow.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "cpus": os.cpu_count(), "threads": torch.get_num_threads()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["scale", "native", "ps", "ps-merge"], default="scale")
    ap.add_argument("--inputs", nargs="+", type=Path, default=[], help="ps-merge: the ps runs' JSON files")
    ap.add_argument("--sizes", nargs="+", default=SIZES, help="scale: N (N x N) or WxH, e.g. 1920x1080")
    ap.add_argument("--methods", nargs="+", type=method_arg, default=METHODS, help="scale: the mask methods")
    ap.add_argument("--photo", type=Path, default=PHOTO, help="scale: the photo")
    ap.add_argument("--density", type=float, default=0.05, help="scale: the density")
    ap.add_argument("--refine", type=int, default=0, help="scale: also the analytic mask refined by this many "
                                                           "rounds (multigrid solves); 0: not")
    ap.add_argument("--refine-tile", type=int, default=512, help="scale: the tile size of the tiled refinement")
    ap.add_argument("--folder", type=Path, default=FOLDER, help="native, ps: the photos")
    ap.add_argument("--limit", type=int, default=0, help="native, ps: the first N photos (sorted); 0: all")
    ap.add_argument("--offset", type=int, default=0, help="native: skip the first N photos (sorted)")
    ap.add_argument("--densities", nargs="+", type=float, default=[0.05, 0.1, 0.2], help="native, ps")
    ap.add_argument("--crop", type=int, default=0, help="native: centre crops of at most N x N at native "
                                                         "resolution (0: whole photos)")
    ap.add_argument("--scales", nargs="*", type=int, default=[2], help="native: learned_mask(scale=) besides 1")
    ap.add_argument("--strengths", nargs="*", type=strength_arg, default=[], metavar="X|A,B",
                    help="native, ps: learned_mask(strength=) besides 1 (A,B: the pair (A, B))")
    ap.add_argument("--crops", nargs="+", type=int, default=[128], help="ps: crop sizes")
    ap.add_argument("--ps-refine", type=int, default=0, help="ps: also the analytic and learned masks refined "
                                                             "(2 tile shifts and this many rounds); 0: not")
    ap.add_argument("--ps-refine-mse", action="store_true",
                    help="ps: also the analytic and learned masks refined minimising the MSE with the 64 px "
                         "evaluation's options (pdeflow.inpaint.evaluation.REFINE_MSE)")
    ap.add_argument("--ps-methods", nargs="+", type=method_arg, default=[], metavar="METHOD",
                    help="ps: more mask methods, e.g. learned-refine2000 learned-refine-mse2000")
    ap.add_argument("--native-methods", nargs="+", type=method_arg, default=[], metavar="METHOD",
                    help="native: more mask methods, e.g. densify")
    ap.add_argument("--reuse-ps", type=Path, help="ps: the PS-mse rows of the same photos, crops and densities "
                                                   "from this earlier run's ps-*.json instead of running PS again")
    ap.add_argument("--candidate", nargs="+", default=[], metavar="D=MODEL",
                    help="native, ps: 'candidate' rows with these mask networks (model.json or run directory) "
                         "for density D")
    ap.add_argument("--bf16", action="store_true",
                    help="native: each --strengths row also with the network in bfloat16 (learned-bf16-wX)")
    ap.add_argument("--reflect", action="store_true",
                    help="native: each --strengths row also with padding=\"reflect\" (learned-wX-reflect), the candidate rows "
                         "with it instead of zeros")
    ap.add_argument("--reflect-scales", nargs="*", type=int, default=[], metavar="N",
                    help="native: each --strengths row also with padding=\"reflect\" and scale N")
    ap.add_argument("--candidate-strengths", nargs="+", type=float, default=[1.0],
                    help="native: the candidate networks at these strengths (default 1)")
    ap.add_argument("--allocator", nargs="+", choices=["default", "retain"], default=["default"],
                    help="scale: each row with the C allocator as it is, and/or after retain_freed_memory()")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per subprocess")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    add_output_args(ap, "inpaint_masks_4k", what="<part>.json, <part>.md")
    args = ap.parse_args(argv)
    if args.child:
        photo, H, W, density, method, rounds, allocator = args.child
        print(json.dumps(worker(photo, int(H), int(W), float(density), method, int(rounds), allocator)))
        return
    for spec in args.candidate:
        d, _, path = spec.partition("=")
        CANDIDATES[float(d)] = path
    out = open_out(args, argv)
    {"scale": run_scale, "native": run_native, "ps": run_ps, "ps-merge": run_ps_merge}[args.part](args, out)


if __name__ == "__main__":
    main()
