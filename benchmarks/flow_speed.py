#!/usr/bin/env python
"""Time to accuracy of ``tv_flow``: the solver before this work and the new one, side by side.

Task: ``u(t)`` of ``--n-images`` test-split photo crops of ``--size`` px, in [0, 1] times
``--scale`` (5, the TVflowNET convention), at ``t = --time`` (1).  Accuracy: the max abs error
over all pixels of all images, on the x5 scale, against a converged float64 flow; the target is
``--target`` (1e-3).

The converged flow: implicit Euler with ``dt = --ref-dt`` (1/8192) and relative duality gap
``--ref-tol`` (1e-8) per step, in float64, one image at a time, on ``--ref-device`` (a GPU makes
it minutes instead of hours), cached under ``--cache`` (never in the repository).  Implicit Euler
converges at first order in the max norm here (halving dt halves the change), so its own error is
estimated by the max change from a run with twice its step (on ``--ref-check`` images): printed
beside the results.

The baseline is the solver as it was before this work (``benchmarks/_tv_flow_before.py``, a
verbatim copy) with its own defaults' tolerance (tol 1e-6) at the largest step of
``--baseline-dts`` that reaches the target: the time to the target with the old defaults.  Every
setting runs on the same batch of images in one process, interleaved over ``--repeats`` rounds
(the best time is kept), and its time is divided by the baseline's from the same rounds.  The
compiled setting (``compile=True``) is timed after a first call on the same shapes that compiles
it (its time is printed separately).  Then 512x512 (time, and peak memory per pixel measured in a
fresh process) and the README tour line.

    python benchmarks/flow_speed.py --cache DIR                    # ~40 min on a busy 2-core machine
    python benchmarks/flow_speed.py --quick                        # 64x64 crops, a few minutes
    python benchmarks/flow_speed.py --out benchmarks/results/flow_speed --overwrite \\
        --results benchmarks/RESULTS.md                            # commit: the folder and the block

Writes ``flow_speed.md`` and ``flow_speed.json`` to ``--out`` (default a fresh folder under
``runs/benchmarks/``); ``benchmarks/RESULTS.md`` is only rewritten with ``--results``.

Historical. It chose tv_flow's solver against the one before it (benchmarks/_tv_flow_before.py); even --quick
takes minutes, far over a smoke run. Its results are kept for the record; it is not expected to run against
today's API. It still imported and parsed its options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_block, write_file  # benchmarks/_results.py
from _tv_flow_before import tv_flow_before  # benchmarks/_tv_flow_before.py
from pdeflow import datasets as data
from pdeflow.metrics import psnr
from pdeflow.tv import tv_flow

#: The defaults before this work: the original ones, and the last release's.
ORIGINAL = dict(dt=0.01, tol=1e-6)
LAST = dict(dt=0.005, tol=1e-5)


def _g(v: float) -> str:
    """1e-06 -> 1e-6."""
    return f"{v:g}".replace("e-0", "e-")


def new_defaults() -> dict:
    sig = inspect.signature(tv_flow).parameters
    return {k: sig[k].default for k in ("dt", "tol")}


def settings(args, new: dict) -> list[dict]:
    """The rows: (label, which solver, keyword arguments, role)."""
    rows = [dict(label=f"before: dt {_g(ORIGINAL['dt'])}, tol {_g(ORIGINAL['tol'])} (original defaults)",
                 solver="before", kw=dict(ORIGINAL), role=""),
            dict(label=f"before: dt {_g(LAST['dt'])}, tol {_g(LAST['tol'])} (last release's defaults)",
                 solver="before", kw=dict(LAST), role="")]
    for dt in args.baseline_dts:
        rows.append(dict(label=f"before: dt {_g(dt)}, tol 1e-6", solver="before", kw=dict(dt=dt, tol=1e-6),
                         role="baseline-candidate"))
    rows.append(dict(label=f"new steps only: dt {_g(args.baseline_dts[-1])}, tol 1e-6", solver="new",
                     kw=dict(dt=args.baseline_dts[-1], tol=1e-6), role=""))
    # The new solver's own cheapest settings, found by the baseline's rule (the largest passing step).
    for compiled in (False, True):
        for dt in args.new_dts:
            label = f"new{', compile=True' if compiled else ''}: dt {_g(dt)}, tol {_g(new['tol'])}"
            rows.append(dict(label=label, solver="new", kw=dict(dt=dt, tol=new["tol"], compile=compiled),
                             role="cheapest-compiled" if compiled else "cheapest-eager"))
    rows.append(dict(label=f"new steps, default dt, tol 1e-6: dt {_g(new['dt'])}, tol 1e-6", solver="new",
                     kw=dict(dt=new["dt"], tol=1e-6), role=""))
    rows.append(dict(label=f"**new defaults**: dt {_g(new['dt'])}, tol {_g(new['tol'])}", solver="new",
                     kw=dict(new), role="new"))
    rows.append(dict(label=f"**new defaults, compile=True**: dt {_g(new['dt'])}, tol {_g(new['tol'])}",
                     solver="new", kw=dict(new, compile=True), role="new"))
    return rows


def run(row: dict, x: torch.Tensor, times) -> torch.Tensor:
    fn = tv_flow_before if row["solver"] == "before" else tv_flow
    return fn(x, times, **row["kw"])


def images(args) -> torch.Tensor:
    pool = data.builtin_pool("test", kind="photo")
    return data.random_crops(pool, args.n_images, args.size, generator=args.seed) * args.scale


def reference(x: torch.Tensor, args, dt: float, i: int) -> torch.Tensor:
    """u(t) of image i (of the --n-images crops) with implicit Euler at step dt, tol --ref-tol, float64
    (cached)."""
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    name = (f"ref_{args.size}px_seed{args.seed}_n{args.n_images}_x{args.scale:g}_img{i}_t{args.time:g}"
            f"_dt{dt:g}_tol{args.ref_tol:g}.pt")
    path = cache / name
    if path.exists():
        return torch.load(path)
    t0 = time.perf_counter()
    u = tv_flow(x[i:i + 1].double().to(args.ref_device), [args.time], dt=dt, tol=args.ref_tol, scheme="euler",
                max_iter=args.ref_max_iter)[0].cpu()
    print(f"  reference image {i} dt {dt:g}: {time.perf_counter() - t0:.0f} s", flush=True)
    tmp = path.with_suffix(".tmp")
    torch.save(u, tmp)
    os.replace(tmp, path)
    return u


def peak_memory(size: int, solver: str, kwargs: dict, scale: float, t: float) -> dict:
    """Time and peak RSS of one flow of one size x size image (float32) in a fresh process, per pixel."""
    bench = str(Path(__file__).resolve().parent)
    code = f"""
import resource, sys, time, torch, json
sys.path.insert(0, {bench!r})
torch.set_num_threads(1)
from pdeflow import datasets as data
from pdeflow.tv import tv_flow
from _tv_flow_before import tv_flow_before
fn = tv_flow_before if {solver!r} == "before" else tv_flow
x = (data.random_crops(data.builtin_pool("test", kind="photo"), 1, {size}, generator=1) * {scale}).float()
fn(x[..., :16, :16], [0.01], dt=0.01, tol=1e-6)   # warm up the allocator and the imports

def status(key):
    with open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith(key)).split()[1])

try:  # reset the high-water mark (Linux): loading the image pool may have peaked above the flow
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = status("VmRSS:")
except OSError:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
fn(x, [{t}], **{kwargs!r})
sec = time.perf_counter() - t0
try:
    peak = status("VmHWM:")
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(seconds=sec, base_kib=base, peak_kib=peak)))
"""
    # glibc's malloc keeps freed heap memory (loading the image pool leaves plenty) and serves the flow's
    # arrays from it unless large blocks are mapped: then the resident size follows the live arrays.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["bytes_per_pixel"] = (r["peak_kib"] - r["base_kib"]) * 1024 / size**2
    return r


def cheapest_passing(rows: list[dict], result: dict, role: str, target: float) -> tuple[dict, float] | None:
    """``(row, seconds)``: the largest-step row of ``role`` that reaches the target, timed as the least of the
    passing rows of ``role`` (a smaller step never costs less; timing noise on a shared machine can say
    otherwise); None if none passes. The rule of the baseline and of the new solver's cheapest settings."""
    passing = [r for r in rows if r["role"] == role and result[r["label"]]["max_error"] <= target]
    if not passing:
        return None
    return passing[0], min(result[r["label"]]["seconds"] for r in passing)


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


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
    ap.add_argument("--ref-dt", type=float, default=1 / 8192)
    ap.add_argument("--ref-tol", type=float, default=1e-8)
    ap.add_argument("--ref-max-iter", type=int, default=200000)
    ap.add_argument("--ref-device", default="cpu", help="device of the reference flows (cpu, cuda)")
    ap.add_argument("--ref-check", type=int, default=5, help="images whose reference error is estimated")
    ap.add_argument("--ref-images", default=None, help="compute (cache) only these reference images, e.g. 0,2; "
                                                        "then exit")
    ap.add_argument("--baseline-dts", type=floats, default=[0.002, 0.0019, 0.0018],
                    help="steps of the baseline (the solver before, tol 1e-6); the largest that reaches --target "
                         "is the baseline (default 0.002,0.0019,0.0018)")
    ap.add_argument("--new-dts", type=floats, default=[0.0018, 0.0017],
                    help="steps of the new solver (default tol) whose largest passing one is its cheapest setting")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--big", type=int, default=512, help="size of the time / memory run (0 to skip)")
    ap.add_argument("--big-time", type=float, default=0.25, help="flow time of that run")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--quick", action="store_true", help="64x64 crops, 2 images, 1 repeat, no 512 run")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    if args.quick:
        args.size, args.n_images, args.repeats, args.big = 64, 2, 1, 0
        args.ref_dt, args.ref_check = 1 / 2048, 1
    args.baseline_dts = sorted(args.baseline_dts, reverse=True)
    args.new_dts = sorted(args.new_dts, reverse=True)
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
    rows = settings(args, new)
    xd = x.to(getattr(torch, args.dtype))
    # compile=True compiles at its first call on a shape: time that call apart, on the same images.
    # Ten steps: the batch shrinks within steps, so the later graphs (symbolic batch, one image) compile too.
    t0 = time.perf_counter()
    tv_flow(xd, [10 * new["dt"]], **dict(new, compile=True))
    compile_seconds = time.perf_counter() - t0
    print(f"compile=True, first call (compiles the kernels; ten steps): {compile_seconds:.1f} s", flush=True)
    best = {r["label"]: float("inf") for r in rows}
    outputs, result = {}, {}
    for rnd in range(args.repeats):
        for r in rows:
            t0 = time.perf_counter()
            outputs[r["label"]] = run(r, xd, [args.time])[0]
            sec = time.perf_counter() - t0
            best[r["label"]] = min(best[r["label"]], sec)
            print(f"round {rnd + 1}: {r['label']}: {sec:.2f} s", flush=True)

    # The converged flow after the timings (it may be computing elsewhere into the cache meanwhile).
    print(f"reference: euler dt {args.ref_dt:g}, tol {args.ref_tol:g}, float64 (cache {args.cache})", flush=True)
    ref = torch.cat([reference(x, args, args.ref_dt, i) for i in range(args.n_images)])
    ref_err = max(((reference(x, args, 2 * args.ref_dt, i) - ref[i]).abs().max().item()
                   for i in range(min(args.ref_check, args.n_images))), default=float("nan"))
    print(f"reference error estimate (max change from dt {2 * args.ref_dt:g}): {ref_err:.1e}", flush=True)
    for r in rows:
        u = outputs[r["label"]].double()
        err = (u - ref).abs().amax(dim=(1, 2, 3))
        p = psnr(u, ref, data_range=args.scale)
        result[r["label"]] = dict(solver=r["solver"], kwargs=r["kw"], max_error=err.max().item(),
                                  max_error_per_image=err.tolist(), psnr_mean=p.mean().item(),
                                  psnr_min=p.min().item(), seconds=best[r["label"]],
                                  seconds_per_image=best[r["label"]] / args.n_images)
        print(f"{r['label']}: {best[r['label']]:.2f} s, max err {err.max():.2e}, PSNR {p.mean():.1f} dB", flush=True)
    # The baseline: the old solver's cheapest passing step (if none passes, its smallest step).
    passing = cheapest_passing(rows, result, "baseline-candidate", args.target)
    base_row = passing[0] if passing else [r for r in rows if r["role"] == "baseline-candidate"][-1]
    base = passing[1] if passing else best[base_row["label"]]
    for r in rows:
        result[r["label"]]["speedup"] = base / best[r["label"]]
    cheapest = {}
    for role in ("cheapest-eager", "cheapest-compiled"):
        found = cheapest_passing(rows, result, role, args.target)
        cheapest[role] = found and dict(label=found[0]["label"], seconds=found[1], speedup=base / found[1])

    tour = {}
    if args.size >= 256:
        # The README tour's line: tv_flow(5 * u0, [0.1, 0.5, 1.0], dt=0.02, return_ut=True), camera 256x256.
        u0 = data.builtin_image("skimage/camera")[:, :256, :256]
        t0 = time.perf_counter()
        tv_flow_before(5 * u0, [0.1, 0.5, 1.0], dt=0.02, tol=ORIGINAL["tol"])
        tour["before"] = dict(seconds=time.perf_counter() - t0)
        t0 = time.perf_counter()
        tv_flow(5 * u0, [0.1, 0.5, 1.0], dt=0.02, return_ut=True)
        tour["after"] = dict(seconds=time.perf_counter() - t0)
        print(f"README tour line: before {tour['before']['seconds']:.2f} s, after {tour['after']['seconds']:.2f} s",
              flush=True)

    big = {}
    if args.big:
        for label, solver, kw in (("baseline", "before", base_row["kw"]), ("new defaults", "new", new)):
            big[label] = peak_memory(args.big, solver, kw, args.scale, args.big_time)
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
          "- \"before\": the solver before this work (`benchmarks/_tv_flow_before.py`); baseline (1.0x): its "
          f"tolerance 1e-6 at the largest step of {', '.join(_g(v) for v in args.baseline_dts)} that reaches the "
          f"target, **{base_row['label']}**" + ("" if passing else " (none reaches it: the smallest step)")
          + "; its time is the least of the passing candidates' (a smaller step never costs less).",
          f"- Times: best of {args.repeats} interleaved rounds; compile=True is timed after a first call that "
          f"compiled it ({compile_seconds:.0f} s, ten steps included).",
          "", "| setting | max error | PSNR mean (min), range 5 | time / image | speed-up vs baseline |",
          "|---|---|---|---|---|"]
    for r in rows:
        res = result[r["label"]]
        ok = " ✓" if res["max_error"] <= args.target else ""
        md.append(f"| {r['label']} | {res['max_error']:.2e}{ok} | {res['psnr_mean']:.1f} ({res['psnr_min']:.1f}) | "
                  f"{res['seconds_per_image']:.2f} s | {res['speedup']:.1f}x |")
    news = [r for r in rows if r["role"] == "new"]
    md += ["", f"Time to max error {args.target:g}: baseline {base / args.n_images:.2f} s "
           "per image; " + "; ".join(f"{r['label'].replace('**', '')} {result[r['label']]['seconds_per_image']:.2f} s "
                                      f"(**{result[r['label']]['speedup']:.1f}x**)" for r in news) + "."]
    for role, c in cheapest.items():
        what = "compile=True" if role == "cheapest-compiled" else "eager"
        md += ["", f"The new solver's cheapest {what} setting reaching the target (the largest passing step of "
               f"{', '.join(_g(v) for v in args.new_dts)}, the baseline's rule): "
               + (f"**{c['label']}**, {c['seconds'] / args.n_images:.2f} s per image (**{c['speedup']:.1f}x**)."
                  if c else "none passes.")]
    if tour:
        md += ["", "README tour line `tv_flow(5 * u0, [0.1, 0.5, 1.0], dt=0.02, return_ut=True)` (camera "
               "256x256, default tol: before 1e-6, after the new one): "
               + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in tour.items())
               + f" ({tour['before']['seconds'] / tour['after']['seconds']:.1f}x)."]
    if big:
        md += ["", f"{args.big}x{args.big}, one image, t = {args.big_time:g}, float32, fresh process: "
               + "; ".join(f"{k} {v['seconds']:.1f} s, peak memory {v['bytes_per_pixel']:.0f} bytes / pixel"
                           for k, v in big.items()) + "."]
    text = "\n".join(md)
    print(text)
    write_file(out / "flow_speed.md", text + "\n")
    write_file(out / "flow_speed.json", json.dumps(dict(command=cmd, reference_error=ref_err, baseline=base_row["label"],
                                                        baseline_seconds=base,
                                                        compile_seconds=compile_seconds, rows=result, cheapest=cheapest,
                                                        tour=tour,
                                                        big=big), indent=1, default=str) + "\n")
    print(f"wrote {out / 'flow_speed.md'}")
    if args.results:
        write_block(Path(args.results), "flow_speed.py", text)
        print(f"updated {args.results}")


if __name__ == "__main__":
    main()
