"""FGP on the CPU: the fused loops of the compiled extension against the PyTorch path, side by side.

Maintained.  Six tables, one thread (``torch.set_num_threads(1)``), CPU time (``time.process_time``):

* **per iteration**: ms per FGP iteration (momentum point, div, grad, projection, restart) and per gap
  evaluation, of ``rof``'s FGP on a grey noise image, float32 and float64, the PyTorch path (about 20 passes over
  the arrays) and the fused loops (one), in the same process, alternating;
* **rof's default**: ``rof(g, lam)`` on a noisy photograph (``benchmarks/rof_defaults.py``'s: the astronaut,
  grey, resized, Gaussian noise sigma 0.08, float32) with the fused loops and without, and scikit-image's
  ``denoise_tv_chambolle(g, weight=lam)`` default; each with its largest error against a converged float64
  reference (``rof_defaults.reference``, relative gap ``--ref-tol``) divided by the image's range;
* **volumes**: the same on volumes (``rof(..., ndim=3)``'s FGP, ``_fgp_volume.c``): ms per iteration and per gap
  of the two paths on a noise volume, and ``rof(g, lam, ndim=3)`` at its default on ``rof_defaults.py``'s noisy
  Shepp-Logan phantom with and without the loops, beside scikit-image's n-D default;
* **checks**: ``rof(g, lam)``'s default with checks on the step's gap estimate and with every check evaluated:
  iterations, gap evaluations, CPU (the smallest of ``--repeat``), error, scikit-image's default; then ``tv_flow``
  and ``spectral_tv`` on the camera, both ways;
* **block solver**: ms per iteration of ``pdeflow.tv.subdomain.solve_subdomain`` (the Dask path's subproblem) on a
  block with held duals on a band of rows and columns, its compiled loop against its PyTorch loop;
* **start-up**: in fresh processes, ``import pdeflow`` and the first ``rof`` call after it (CPU time of the
  process, wall time beside it), then a second call: the extension has no first-call compile.

The PyTorch paths are selected by the switches ``FUSED`` of ``_rof_methods`` and ``_rof_nd`` (the environment
variable ``PDEFLOW_FUSED=0`` sets them at import).

Usage::

    python benchmarks/fgp_kernel.py                          # 256, 512, 2048; rof at 512, lam 0.02 0.1 0.3
    python benchmarks/fgp_kernel.py --sizes 256 512 --rof-size 256
    python benchmarks/fgp_kernel.py --tables block startup   # some of the tables
    python benchmarks/fgp_kernel.py --tables checks --check-sizes 128 256 512 --lams 0.02 0.1 0.5 --repeat 7
    python benchmarks/fgp_kernel.py --tables volume --volume-sizes 64 128 --lams 0.02 0.1 0.5
    python benchmarks/fgp_kernel.py --smoke                  # one small case of each table
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from _results import add_output_args, open_out, timed
from pdeflow.datasets import builtin_image
from pdeflow.tv import rof, spectral_tv, subdomain, tv_flow
from rof_defaults import noisy_photo, noisy_volume, reference

# the solver's internals: its FGP state, one step and one gap, and the switch between its two paths
R = importlib.import_module("pdeflow.tv._rof_methods")
ND = importlib.import_module("pdeflow.tv._rof_nd")
Grid = importlib.import_module("pdeflow.tv._grid").Grid
# the solver's schedule: which steps estimate the gap
SOLVE = importlib.import_module("pdeflow.tv.rof")


def per_iteration(n: int, dtype, iters: int, rounds: int = 3, ndim: int = 2) -> dict:
    """ms per FGP step and per gap evaluation, PyTorch path and fused loops, the best of ``rounds`` alternating
    runs of ``iters`` steps (a fifth as many gaps) from the same state, on an ``n^ndim`` noise image or volume."""
    g = torch.Generator().manual_seed(0)
    shape = (1, 1) + (n,) * ndim
    f = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
    lam = torch.full((1,) * len(shape), 0.1, dtype=dtype)
    p0 = torch.zeros(1, 1, ndim, *shape[2:], dtype=dtype)
    if ndim == 2:
        init, step, gap = R._fgp_init, R._fgp_step, R._dual_gap
    else:
        (init, step), gap = ND.ND_STEPS["fgp"], ND.nd_gap
        init = init(Grid(3, (1.0, 1.0, 1.0)))
    best = {}
    for _ in range(rounds):
        for fused in (False, True):
            R.FUSED = ND.FUSED = fused
            s = init(f, lam, p0, False)
            for _ in range(3):
                step(s, f, lam, False)
            t = time.process_time()
            for _ in range(iters):
                step(s, f, lam, False)
            it = (time.process_time() - t) / iters * 1e3
            k = max(1, iters // 5)
            t = time.process_time()
            for _ in range(k):
                gap(s, f, lam, False)
            g_ms = (time.process_time() - t) / k * 1e3
            key = "fused" if fused else "pytorch"
            old = best.get(key, (np.inf, np.inf))
            best[key] = (min(old[0], it), min(old[1], g_ms))
    R.FUSED = ND.FUSED = True
    return best


def rof_default(n: int, lam: float, ref_tol: float, cache, ndim: int = 2) -> dict:
    """``rof(g, lam)`` with and without the fused loops and scikit-image's default, times and errors; ``ndim=3``:
    on the noisy ``n^3`` phantom (scikit-image n-D)."""
    g = noisy_photo(n) if ndim == 2 else noisy_volume(n)
    g32 = torch.from_numpy(g)
    ref = reference(g32, lam, ref_tol, cache, 5000, ndim=ndim)
    rng = float(g.max()) - float(g.min())

    def err(u):
        return float(np.abs(np.asarray(u, dtype=np.float64) - ref).max() / rng)

    row = {"size": n, "lam": lam}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fused in (False, True):
            R.FUSED = ND.FUSED = fused
            r, secs = timed(lambda: rof(g32, lam, ndim=ndim, full_output=True))
            row["fused" if fused else "pytorch"] = (secs, err(r.u), int(r.iterations[0]))
    R.FUSED = ND.FUSED = True
    u, secs = timed(lambda: denoise_tv_chambolle(g, weight=lam))
    row["skimage"] = (secs, err(u))
    return row


def _schedules():
    """Every check evaluated, then checks on the step's estimate (the default): the solver's switch set for each."""
    estimates = SOLVE.STEP_ESTIMATES
    try:
        for key, table in (("evaluated", {}), ("estimated", estimates)):
            SOLVE.STEP_ESTIMATES = table
            yield key
    finally:
        SOLVE.STEP_ESTIMATES = estimates


def checks(n: int, lam: float, ref_tol: float, cache, repeat: int) -> dict:
    """The checks table's row (see the module doc), the two schedules alternating."""
    g = noisy_photo(n)
    g32 = torch.from_numpy(g)
    ref = reference(g32, lam, ref_tol, cache, 5000)
    rng = float(g.max()) - float(g.min())
    gap = R._fused_gap
    count = [0]

    def counted(*args):
        count[0] += 1
        return gap(*args)

    row = {"size": n, "lam": lam}
    R._fused_gap = counted
    try:
        for _ in range(repeat):
            for key in _schedules():
                count[0] = 0
                r, secs = timed(lambda: rof(g32, lam, full_output=True))
                err = float(np.abs(r.u.double().numpy() - ref).max() / rng)
                best = row.get(key, (np.inf,))[0]
                row[key] = (min(best, secs), err, int(r.iterations[0]), count[0])
            u, secs = timed(lambda: denoise_tv_chambolle(g, weight=lam))
            row["skimage"] = (min(row.get("skimage", (np.inf,))[0], secs),
                              float(np.abs(u - ref).max() / rng))
    finally:
        R._fused_gap = gap
    return row


def block_iteration(n: int, dtype, iters: int, rounds: int = 3) -> dict:
    """ms per iteration of solve_subdomain on an n x n block (held duals on 8 rows and 8 columns), compiled loop and
    PyTorch loop, the best of ``rounds`` alternating runs of ``iters`` iterations (no gap check between)."""
    g = torch.Generator().manual_seed(0)
    f = torch.rand(1, 1, n, n, generator=g, dtype=torch.float64).to(dtype)
    p = torch.zeros(1, 1, 2, n, n, dtype=dtype)
    free = torch.ones(n, n, dtype=torch.bool)
    free[:8], free[:, -8:] = False, False
    region = (slice(None), slice(None))
    best = {}
    for _ in range(rounds):
        for fused in (False, True):
            subdomain.FUSED = fused
            t = time.process_time()
            subdomain.solve_subdomain(f, p, 0.1, free, region, tol=1e-30, max_iter=iters, check_every=10 ** 9)
            key = "fused" if fused else "pytorch"
            best[key] = min(best.get(key, np.inf), (time.process_time() - t) / iters * 1e3)
    subdomain.FUSED = True
    return best


STARTUP = """
import time, resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c0, w0 = cpu(), time.perf_counter()
import pdeflow
c1, w1 = cpu(), time.perf_counter()
import torch
torch.set_num_threads(1)
from pdeflow.tv import rof
g = torch.rand(256, 256, generator=torch.Generator().manual_seed(0))
c2, w2 = cpu(), time.perf_counter()
rof(g, 0.1)
c3, w3 = cpu(), time.perf_counter()
rof(g, 0.1)
c4, w4 = cpu(), time.perf_counter()
print(c1 - c0, w1 - w0, c3 - c2, w3 - w2, c4 - c3, w4 - w3)
"""


def startup(runs: int) -> dict:
    """Median over ``runs`` fresh processes: import pdeflow, the first rof call (256 x 256, lam 0.1), a second."""
    got = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        got.append([float(x) for x in out.stdout.split()])
    med = np.median(np.array(got), 0)
    return dict(zip(["import cpu", "import wall", "first cpu", "first wall", "second cpu", "second wall"],
                    med.tolist()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 2048])
    ap.add_argument("--rof-size", type=int, default=512)
    ap.add_argument("--volume-sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.02, 0.1, 0.3])
    ap.add_argument("--ref-tol", type=float, default=1e-9)
    ap.add_argument("--ref-cache", type=Path, default=None, metavar="DIR", help="keep the references here")
    ap.add_argument("--startup-runs", type=int, default=5)
    ap.add_argument("--check-sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each call in the checks table (the smallest)")
    ap.add_argument("--tables", nargs="+", choices=["iteration", "rof", "checks", "volume", "block", "startup"],
                    default=["iteration", "rof", "checks", "volume", "block", "startup"])
    ap.add_argument("--smoke", action="store_true", help="one small case of each table")
    add_output_args(ap, "fgp_kernel")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    if args.smoke:
        args.sizes, args.rof_size, args.lams, args.startup_runs, args.volume_sizes = [64], 48, [0.1], 1, [16]
        args.check_sizes, args.repeat = [48], 1
    result = {"per_iteration": [], "rof": [], "checks": [], "volume": [], "block": [], "startup": None}

    if "iteration" in args.tables:
        iteration_table(args, result)
    if "rof" in args.tables:
        rof_table(args, result)
    if "checks" in args.tables:
        checks_table(args, result)
    if "volume" in args.tables:
        volume_table(args, result)
    if "block" in args.tables:
        print()
        print("| block | dtype | PyTorch loop (ms/it) | compiled loop (ms/it) | speed-up |")
        print("|---|---|---|---|---|")
        for n in args.sizes:
            b = block_iteration(n, torch.float32, max(5, min(100, (1 << 22) // (n * n))))
            result["block"].append({"size": n, **b})
            print(f"| {n} | float32 | {b['pytorch']:.3f} | {b['fused']:.3f} | {b['pytorch'] / b['fused']:.1f}x |",
                  flush=True)
    if "startup" in args.tables:
        s = startup(args.startup_runs)
        result["startup"] = s
        print()
        print(f"start-up (median of {args.startup_runs} fresh processes; CPU s, wall s): import pdeflow "
              f"{s['import cpu']:.3f}, {s['import wall']:.3f}; first rof(256x256, 0.1) {s['first cpu']:.3f}, "
              f"{s['first wall']:.3f}; second {s['second cpu']:.3f}, {s['second wall']:.3f}")
    (out / "fgp_kernel.json").write_text(json.dumps(result, indent=1))
    return 0


def iteration_table(args, result):
    print("| size | dtype | PyTorch step (ms) | fused step (ms) | speed-up | PyTorch gap (ms) | fused gap (ms) |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        for dtype in (torch.float32, torch.float64):
            iters = max(5, min(200, (1 << 24) // (n * n)))
            b = per_iteration(n, dtype, iters)
            (ps, pg), (fs, fg) = b["pytorch"], b["fused"]
            result["per_iteration"].append({"size": n, "dtype": str(dtype), **b})
            print(f"| {n} | {str(dtype)[6:]} | {ps:.3f} | {fs:.3f} | {ps / fs:.1f}x | {pg:.3f} | {fg:.3f} |",
                  flush=True)


def rof_table(args, result):
    print()
    print("| size | lam | rof default, PyTorch path | rof default, fused | speed-up | skimage default |")
    print("|---|---|---|---|---|---|")
    for lam in args.lams:
        r = rof_default(args.rof_size, lam, args.ref_tol, args.ref_cache)
        result["rof"].append(r)
        (pt, pe, pi), (ft, fe, fi), (st, se) = r["pytorch"], r["fused"], r["skimage"]
        print(f"| {args.rof_size} | {lam:g} | {pt:.3f} s, {pe:.1e} ({pi} it) | {ft:.3f} s, {fe:.1e} ({fi} it) | "
              f"{pt / ft:.1f}x | {st:.3f} s, {se:.1e} |", flush=True)


def flow_checks(n: int, repeat: int) -> dict:
    """``tv_flow`` (t = 0.1 ... 1) and ``spectral_tv`` on the camera at ``n``, the two schedules alternating."""
    x = builtin_image("skimage/camera", grey=True)[0]
    x = torch.nn.functional.interpolate(x[None, None].float(), size=(n, n), mode="area")[0, 0]
    row = {"size": n}
    for _ in range(repeat):
        for key in _schedules():
            _, flow = timed(lambda: tv_flow(x, [0.1 * k for k in range(1, 11)]))
            _, spectral = timed(lambda: spectral_tv(x))
            best = row.get(key, (np.inf, np.inf))
            row[key] = (min(best[0], flow), min(best[1], spectral))
    return row


def checks_table(args, result):
    print()
    print("| size | lam | every check evaluated: s, error (it, gaps) | checks on the estimate | speed-up | "
          "skimage default |")
    print("|---|---|---|---|---|---|")
    for n in args.check_sizes:
        for lam in args.lams:
            r = checks(n, lam, args.ref_tol, args.ref_cache, args.repeat)
            result["checks"].append(r)
            (et, ee, ei, eg), (st, se, si, sg), (kt, ke) = r["evaluated"], r["estimated"], r["skimage"]
            print(f"| {n} | {lam:g} | {1e3 * et:.1f} ms, {ee:.1e} ({ei} it, {eg}) | {1e3 * st:.1f} ms, {se:.1e} "
                  f"({si} it, {sg}) | {et / st:.2f}x | {1e3 * kt:.1f} ms, {ke:.1e} |", flush=True)
    n = args.check_sizes[len(args.check_sizes) // 2]
    r = flow_checks(n, args.repeat)
    result["checks"].append(r)
    print()
    print("| camera | every check evaluated: tv_flow, spectral_tv (s) | checks on the estimate | speed-up |")
    print("|---|---|---|---|")
    (ef, es), (sf, ss) = r["evaluated"], r["estimated"]
    print(f"| {n} | {ef:.3f}, {es:.3f} | {sf:.3f}, {ss:.3f} | {ef / sf:.2f}x, {es / ss:.2f}x |", flush=True)


def volume_table(args, result):
    print()
    print("| volume | dtype | PyTorch step (ms) | fused step (ms) | speed-up | PyTorch gap (ms) | fused gap (ms) |")
    print("|---|---|---|---|---|---|---|")
    for n in args.volume_sizes:
        for dtype in (torch.float32, torch.float64):
            b = per_iteration(n, dtype, max(5, min(100, (1 << 23) // n ** 3)), ndim=3)
            (ps, pg), (fs, fg) = b["pytorch"], b["fused"]
            result["volume"].append({"size": n, "dtype": str(dtype), **b})
            print(f"| {n}³ | {str(dtype)[6:]} | {ps:.2f} | {fs:.2f} | {ps / fs:.1f}x | {pg:.2f} | {fg:.2f} |", flush=True)
    print()
    print("| volume | lam | rof default, PyTorch path | rof default, fused | speed-up | skimage default |")
    print("|---|---|---|---|---|---|")
    for n in args.volume_sizes:
        for lam in args.lams:
            r = rof_default(n, lam, args.ref_tol, args.ref_cache, ndim=3)
            result["volume"].append(r)
            (pt, pe, pi), (ft, fe, fi), (st, se) = r["pytorch"], r["fused"], r["skimage"]
            print(f"| {n}³ | {lam:g} | {pt:.2f} s, {pe:.1e} ({pi} it) | {ft:.2f} s, {fe:.1e} ({fi} it) | "
                  f"{pt / ft:.1f}x | {st:.3f} s, {se:.1e} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
