#!/usr/bin/env python
"""Time to accuracy of ``tv_flow``: today's solver and each speed lever, side by side.

Task: ``u(t)`` of ``--n-images`` test-split photo crops of ``--size`` px, in [0, 1] times
``--scale`` (5, the TVflowNET convention), at ``t = --time`` (1).  Accuracy: the max abs error
over all pixels of all images, on the x5 scale, against a converged float64 flow; the target is
``--target`` (1e-3).

The converged flow: implicit Euler with ``dt = --ref-dt`` (1/4096) and relative duality gap
``--ref-tol`` (1e-8) per step, in float64, one image at a time, cached under ``--cache`` (never
in the repository).  Implicit Euler converges at first order in the max norm here (halving dt
halves the change), so its own error is estimated by the max change from a run with twice its
step (on ``--ref-check`` images): that number is printed beside the results.

Every setting runs on the same batch of images in one process, interleaved over ``--repeats``
rounds (the best time is kept), and its time is divided by that of today's defaults (implicit
Euler, dt 0.01, tol 1e-6, check every 5 iterations) measured in the same rounds.  Then the
new defaults at 512x512 (time, and peak memory per pixel measured in a fresh process).

    python benchmarks/flow_speed.py                                # ~30 min on a busy 2-core machine
    python benchmarks/flow_speed.py --quick                        # 64x64 crops, a few minutes
    python benchmarks/flow_speed.py --out benchmarks/results/flow_speed --overwrite \
        --results benchmarks/RESULTS.md                            # commit: the folder and the block

Writes ``flow_speed.md`` and ``flow_speed.json`` to ``--out`` (default a fresh folder under
``runs/benchmarks/``); ``benchmarks/RESULTS.md`` is only rewritten with ``--results``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_block, write_file  # benchmarks/_results.py
from pdeflow import datasets as data
from pdeflow.metrics import psnr
from pdeflow.tv import tv_flow

#: Today's (before this benchmark) defaults of tv_flow.
OLD = dict(scheme="euler", dt=0.01, tol=1e-6, check_every=5)


def settings(new: dict) -> list[tuple[str, dict]]:
    """(label, tv_flow keyword arguments), the old defaults first, then one lever at a time."""
    rows = [
        ("today's defaults: euler, dt 0.01, tol 1e-6", dict(OLD)),
        ("inner tol: euler, dt 0.01, tol 1e-5", dict(OLD, tol=1e-5)),
        ("smaller step: euler, dt 0.005, tol 1e-5", dict(OLD, dt=0.005, tol=1e-5)),
        ("smaller step: euler, dt 0.0025, tol 1e-6", dict(OLD, dt=0.0025, tol=1e-6)),
        ("second order: bdf2, dt 0.01, tol 1e-5", dict(OLD, scheme="bdf2", tol=1e-5)),
        ("second order: bdf2, dt 0.005, tol 1e-5", dict(OLD, scheme="bdf2", dt=0.005, tol=1e-5)),
    ]
    label = "**new defaults**: " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in new.items())
    same = [i for i, (_, kw) in enumerate(rows) if kw == new]
    if same:
        rows[same[0]] = (rows[same[0]][0] + " = " + label, rows[same[0]][1])
    else:
        rows.append((label, dict(new)))
    return rows


def new_defaults() -> dict:
    import inspect

    sig = inspect.signature(tv_flow).parameters
    return {k: sig[k].default for k in ("scheme", "dt", "tol", "check_every")}


def images(args) -> torch.Tensor:
    pool = data.builtin_pool("test", kind="photo")
    return data.random_crops(pool, args.n_images, args.size, generator=args.seed) * args.scale


def reference(x: torch.Tensor, args, dt: float, i: int) -> torch.Tensor:
    """u(t) of image i with implicit Euler at step dt, tol --ref-tol, float64 (cached)."""
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    name = (f"ref_{args.size}px_seed{args.seed}_x{args.scale:g}_img{i}_t{args.time:g}"
            f"_dt{dt:g}_tol{args.ref_tol:g}.pt")
    path = cache / name
    if path.exists():
        return torch.load(path)
    t0 = time.perf_counter()
    u = tv_flow(x[i:i + 1].double(), [args.time], dt=dt, tol=args.ref_tol, scheme="euler",
                max_iter=args.ref_max_iter)[0]
    print(f"  reference image {i} dt {dt:g}: {time.perf_counter() - t0:.0f} s", flush=True)
    tmp = path.with_suffix(".tmp")
    torch.save(u, tmp)
    os.replace(tmp, path)
    return u


def peak_memory(size: int, kwargs: dict, scale: float, t: float) -> dict:
    """Peak RSS of tv_flow on one size x size image (float32) in a fresh process, per pixel."""
    code = f"""
import resource, time, torch, json
torch.set_num_threads(1)
from pdeflow import datasets as data
from pdeflow.tv import tv_flow
x = (data.random_crops(data.builtin_pool("test", kind="photo"), 1, {size}, generator=1) * {scale}).float()
tv_flow(x[..., :16, :16], [0.01], dt=0.01)   # warm up the allocator and the imports
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
tv_flow(x, [{t}], **{kwargs!r})
sec = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(seconds=sec, base_kib=base, peak_kib=peak)))
"""
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["bytes_per_pixel"] = (r["peak_kib"] - r["base_kib"]) * 1024 / size**2
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_args(ap, "flow_speed", results_block=True, what="flow_speed.md, flow_speed.json")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "pdeflow-bench"),
                    help="where the converged reference flows are kept (default ~/.cache/pdeflow-bench)")
    ap.add_argument("--n-images", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=5.0)
    ap.add_argument("--time", type=float, default=1.0)
    ap.add_argument("--target", type=float, default=1e-3)
    ap.add_argument("--ref-dt", type=float, default=1 / 4096)
    ap.add_argument("--ref-tol", type=float, default=1e-8)
    ap.add_argument("--ref-max-iter", type=int, default=20000)
    ap.add_argument("--ref-check", type=int, default=1, help="images whose reference error is estimated")
    ap.add_argument("--ref-images", default=None, help="compute (cache) only these reference images, e.g. 0,2; "
                                                        "then exit")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--big", type=int, default=512, help="size of the time / memory run (0 to skip)")
    ap.add_argument("--big-time", type=float, default=1.0, help="flow time of that run")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--quick", action="store_true", help="64x64 crops, 2 images, 1 repeat, no 512 run")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    if args.quick:
        args.size, args.n_images, args.repeats, args.big = 64, 2, 1, 0
    torch.set_num_threads(1)
    x = images(args)

    if args.ref_images is not None:
        for i in (int(s) for s in args.ref_images.split(",")):
            reference(x, args, args.ref_dt, i)
            if i < args.ref_check:
                reference(x, args, 2 * args.ref_dt, i)
        return

    t_start = time.perf_counter()
    print(f"{args.n_images} crops {args.size}x{args.size} x{args.scale:g}, t = {args.time:g}", flush=True)
    new = new_defaults()
    rows = settings(new)
    xd = x.to(getattr(torch, args.dtype))
    best = {label: float("inf") for label, _ in rows}
    outputs, result = {}, {}
    for r in range(args.repeats):
        for label, kw in rows:
            t0 = time.perf_counter()
            outputs[label] = tv_flow(xd, [args.time], **kw)[0]
            sec = time.perf_counter() - t0
            best[label] = min(best[label], sec)
            print(f"round {r + 1}: {label}: {sec:.2f} s", flush=True)

    # The converged flow after the timings (it may be computing elsewhere into the cache meanwhile).
    print(f"reference: euler dt {args.ref_dt:g}, tol {args.ref_tol:g}, float64 (cache {args.cache})", flush=True)
    ref = torch.cat([reference(x, args, args.ref_dt, i) for i in range(args.n_images)])
    ref_err = max(((reference(x, args, 2 * args.ref_dt, i) - ref[i]).abs().max().item()
                   for i in range(min(args.ref_check, args.n_images))), default=float("nan"))
    print(f"reference error estimate (max change from dt {2 * args.ref_dt:g}): {ref_err:.1e}", flush=True)
    for label, kw in rows:
        u = outputs[label].double()
        err = (u - ref).abs().max().item()
        p = psnr(u, ref, data_range=args.scale)
        result[label] = dict(kwargs=kw, max_error=err, psnr_mean=p.mean().item(), psnr_min=p.min().item())
        print(f"{label}: {best[label]:.2f} s, max err {err:.2e}, PSNR {p.mean():.1f} dB", flush=True)
    base = best[rows[0][0]]
    for label, _ in rows:
        result[label]["seconds"] = best[label]
        result[label]["seconds_per_image"] = best[label] / args.n_images
        result[label]["speedup"] = base / best[label]

    tour = {}
    if args.size >= 256:
        # The README tour's line: tv_flow(5 * u0, [0.1, 0.5, 1.0], dt=0.02, return_ut=True), camera 256x256.
        u0 = data.builtin_image("skimage/camera")[:, :256, :256]
        for label, kw in (("before", dict(OLD, dt=0.02)), ("after", dict(new, dt=0.02))):
            t0 = time.perf_counter()
            tv_flow(5 * u0, [0.1, 0.5, 1.0], return_ut=True, **kw)
            tour[label] = dict(kwargs=kw, seconds=time.perf_counter() - t0)
            print(f"README tour line {label}: {tour[label]['seconds']:.2f} s", flush=True)

    big = {}
    if args.big:
        for label, kw in (("today's defaults", OLD), ("new defaults", new)):
            big[label] = peak_memory(args.big, kw, args.scale, args.big_time)
            print(f"{args.big}x{args.big} {label}: {big[label]['seconds']:.1f} s, peak memory "
                  f"{big[label]['bytes_per_pixel']:.0f} bytes / pixel", flush=True)
    total = time.perf_counter() - t_start

    cmd = "python benchmarks/flow_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load = "%.1f %.1f %.1f" % os.getloadavg()
    md = ["## Time to accuracy of `tv_flow` (`benchmarks/flow_speed.py`)", "",
          f"Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `{cmd}` in {total / 60:.1f} minutes; "
          f"1 torch thread, torch {torch.__version__}, {os.cpu_count()} cores shared with other jobs "
          f"(load average at the end {load}: absolute times are inflated, ratios come from the same rounds).", "",
          f"- Task: u(t = {args.time:g}) of {args.n_images} test-split photo crops of {args.size}x{args.size}, "
          f"in [0, 1] x {args.scale:g}, {args.dtype}, one batch per call. Target: max abs error {args.target:g}.",
          f"- Converged flow: implicit Euler, dt {args.ref_dt:g}, tol {args.ref_tol:g}, float64; its own error, "
          f"estimated by the max change from dt {2 * args.ref_dt:g} on {min(args.ref_check, args.n_images)} "
          f"image(s): {ref_err:.1e}.",
          f"- Times: best of {args.repeats} interleaved rounds; speed-up = today's defaults' time / the setting's.",
          "", "| setting | max error | PSNR mean (min), range 5 | time / image | speed-up |", "|---|---|---|---|---|"]
    for label, _ in rows:
        r = result[label]
        ok = " ✓" if r["max_error"] <= args.target else ""
        md.append(f"| {label} | {r['max_error']:.1e}{ok} | {r['psnr_mean']:.1f} ({r['psnr_min']:.1f}) | "
                  f"{r['seconds_per_image']:.2f} s | {r['speedup']:.1f}x |")
    if tour:
        md += ["", "README tour line `tv_flow(5 * u0, [0.1, 0.5, 1.0], dt=0.02, return_ut=True)` (camera "
               "256x256): " + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in tour.items())
               + f" ({tour['before']['seconds'] / tour['after']['seconds']:.1f}x)."]
    if big:
        md += ["", f"{args.big}x{args.big}, one image, t = {args.big_time:g}, float32, fresh process: "
               + "; ".join(f"{k} {v['seconds']:.1f} s, peak memory {v['bytes_per_pixel']:.0f} bytes / pixel"
                           for k, v in big.items()) + "."]
    text = "\n".join(md)
    print(text)
    write_file(out / "flow_speed.md", text + "\n")
    write_file(out / "flow_speed.json", json.dumps(dict(command=cmd, reference_error=ref_err, rows=result,
                                                        tour=tour, big=big), indent=1, default=str) + "\n")
    print(f"wrote {out / 'flow_speed.md'}")
    if args.results:
        write_block(Path(args.results), "flow_speed.py", text)
        print(f"updated {args.results}")


if __name__ == "__main__":
    main()
