"""Python API speed on a busy machine: torch imported first, with and without pdeflow's fixes.

Times ``tv_flow(5 * camera[:128, :128], [0.1, 0.5, 1], dt=0.02)`` (the README's
flow on a crop) in fresh Python processes while a second process spins on a
core (``while True: pass``, killed at the end), so that the machine has more
runnable threads than cores:

* ``plain``: ``import torch`` then pdeflow, ``OMP_WAIT_POLICY`` unset and
  pdeflow's thread adjustment off (``PDEFLOW_AUTO_THREADS=0``): the library
  before the fix, for any import order (it set nothing).
* ``torch first``: ``import torch`` then pdeflow, ``OMP_WAIT_POLICY`` unset:
  the policy is fixed at torch's load, so pdeflow lowers torch's thread count
  to the free cores during the solve (:mod:`pdeflow.threads`).
* ``pdeflow first``: ``import pdeflow`` then torch: pdeflow sets
  ``OMP_WAIT_POLICY=PASSIVE`` before the OpenMP runtime reads it.
* ``PASSIVE env``: ``OMP_WAIT_POLICY=PASSIVE`` set by the caller (what the
  ``pdeflow`` command does), the reference.

The variants run in turn, ``--repeats`` rounds, and the median of each is
reported with the ratio ``plain / variant``. A ``plain`` run longer than
``--timeout`` seconds is stopped and reported as "> timeout" (its ratio is
then a lower bound). Other processes on the machine add to the load and to
the spread; the spinner guarantees at least one.

Usage::

    python benchmarks/omp_wait_policy.py          # writes omp_wait_policy.md to a fresh runs/benchmarks/ folder
    python benchmarks/omp_wait_policy.py --timeout 90 --out benchmarks/results/omp_wait_policy --overwrite

Historical. It measured the wait-policy fix of pdeflow.threads; it needs a busy machine and minutes. Its
results are kept for the record; it is not expected to run against today's API. It still imported and parsed
its options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _results import add_output_args, open_out, write_file  # benchmarks/_results.py

CHILD = r"""
import json, os, sys, time
order = sys.argv[1]
if order == "torch":
    import torch
    import pdeflow
else:
    import pdeflow
    import torch
from pdeflow.datasets import builtin_image
from pdeflow.tv import tv_flow
_rof = sys.modules["pdeflow.tv.flow"]  # tv_flow checks its input inside its auto_threads wrapper

seen = []
_orig = _rof.check_image
def _spy(*a, **k):  # records torch's thread count inside the solve
    seen.append(torch.get_num_threads())
    return _orig(*a, **k)
_rof.check_image = _spy

size = int(sys.argv[2]); times = [float(t) for t in sys.argv[3].split(",")]; dt = float(sys.argv[4])
u0 = builtin_image("skimage/camera")[..., :size, :size]
t0 = time.perf_counter()
tv_flow(5 * u0, times, dt=dt)
sec = time.perf_counter() - t0
print(json.dumps({"seconds": sec, "threads_before": torch.get_num_threads(),
                  "threads_in_solve": max(set(seen), key=seen.count) if seen else None}))
"""

VARIANTS = {
    # name: (import order, environment changes)
    "plain": ("torch", {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None, "PDEFLOW_AUTO_THREADS": "0"}),
    "torch first": ("torch", {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None, "PDEFLOW_AUTO_THREADS": None}),
    "pdeflow first": ("pdeflow", {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None, "PDEFLOW_AUTO_THREADS": None}),
    "PASSIVE env": ("torch", {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None, "PDEFLOW_AUTO_THREADS": None}),
}


def run_child(order: str, env_changes: dict, args) -> dict:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)  # torch's default thread count, as a user gets it
    env.pop("MKL_NUM_THREADS", None)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-c", CHILD, order, str(args.size), ",".join(map(str, args.times)), str(args.dt)]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "wall": time.perf_counter() - t0}
    if res.returncode != 0:
        raise RuntimeError(f"child failed ({order}, {env_changes}):\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_output_args(ap, "omp_wait_policy", what="omp_wait_policy.md")
    ap.add_argument("--size", type=int, default=128, help="crop size of the camera image")
    ap.add_argument("--times", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    ap.add_argument("--dt", type=float, default=0.02)
    ap.add_argument("--repeats", type=int, default=1, help="rounds over the variants")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is stopped")
    ap.add_argument("--no-spinner", action="store_true", help="do not start the spinning process")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    out = open_out(args, argv)

    spinner = None
    if not args.no_spinner:
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    results: dict[str, list] = {v: [] for v in args.variants}
    try:
        for r in range(args.repeats):
            for name in args.variants:
                order, env = VARIANTS[name]
                res = run_child(order, env, args)
                res["load"] = os.getloadavg()[0]
                results[name].append(res)
                sec = "> %.0f s (stopped)" % args.timeout if res["seconds"] is None else "%.2f s" % res["seconds"]
                print(f"round {r + 1}  {name:14s} {sec}  threads in solve: {res.get('threads_in_solve')}  "
                      f"load: {res['load']:.1f}", flush=True)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()

    def med(name):
        secs = [r["seconds"] if r["seconds"] is not None else args.timeout for r in results[name]]
        return statistics.median(secs), any(r["seconds"] is None for r in results[name])

    base, base_cut = med(args.variants[0])
    lines = [
        "# Python API on a busy machine (OMP wait policy)",
        "",
        f"`tv_flow(5 * camera[:{args.size}, :{args.size}], {args.times}, dt={args.dt})`, torch's default "
        f"thread count ({os.cpu_count()} CPUs), {'no spinner' if args.no_spinner else 'one spinning process'} "
        f"plus whatever else runs; median of {args.repeats} run(s) per variant, fresh process each.",
        "",
        f"| variant | seconds (median) | runs | threads in solve | load (1 min) after each run "
        f"| {args.variants[0]} / variant |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.variants:
        m, cut = med(name)
        runs = ", ".join("> %.0f" % args.timeout if r["seconds"] is None else "%.1f" % r["seconds"]
                         for r in results[name])
        threads = sorted({r.get("threads_in_solve") for r in results[name] if r.get("threads_in_solve")})
        ratio = base / m
        ratio_s = ("> %.1f" if base_cut and not cut else "%.1f") % ratio
        loads = ", ".join("%.1f" % r["load"] for r in results[name])
        lines.append(f"| {name} | {'> ' if cut else ''}{m:.2f} | {runs} | {threads} | {loads} | {ratio_s} |")
    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    lines += ["", "Command: `python benchmarks/omp_wait_policy.py " + cmd + "`"]
    text = "\n".join(lines) + "\n"
    print(text)
    write_file(out / "omp_wait_policy.md", text)
    print(f"wrote {out / 'omp_wait_policy.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
