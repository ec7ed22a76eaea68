"""Biharmonic inpainting: pdeflow's ``inpaint_biharmonic`` against scikit-image's ``inpaint_biharmonic``.

Both solve the same discrete system (the rows of ``L^2`` on the missing pixels, ``L`` the Neumann 5-point
Laplacian, 7-point in 3-D) and scikit-image clips its result to the range of the known values, so pdeflow runs
with ``clip=True`` and the two must agree up to the solvers' accuracy. One run, side by side, single-threaded,
on the camera image resized (bilinear) to 256 x 256, 1024 x 1024 (1 Mpx) and 3840 x 2160 (4K), float64, and
on a 128^3 Shepp-Logan volume, for two masks:

* ``sparse``: 5 % of the pixels known, uniformly at random;
* ``holes``: random disks (balls in 3-D) and, in 2-D, straight scratches 3 px wide, until 5 % are missing.

Each solver runs in child processes of its own (inputs read from ``.npy`` files written by the parent),
after a warm-up call on a 40 px crop (12^3 in 3-D) that loads and initialises the library code. Measured
there: CPU time (``time.process_time``) and wall time of the call, and, in a second run with glibc's mmap
threshold fixed at 128 KiB (freed large blocks go back to the system at once, so the resident set follows
the live allocations; that run's time is not used), its peak memory: the process's peak resident set
(``VmHWM``, reset through ``/proc/self/clear_refs`` after the warm-up) minus the resident set before the
call, i.e. everything the call allocated (NumPy, SciPy and torch alike), also as a multiple of the input
image's bytes (float64). scikit-image gets ``--timeout`` seconds per case and an
address-space limit of ``--sk-mem-gb``; a case it does not finish is recorded as such ("did not finish in
T s", "out of memory"), and the larger sizes of that mask kind are then not tried (recorded too). pdeflow runs
with its defaults (``solver='auto'``) and any other ``--solvers``.

Usage::

    python benchmarks/biharmonic_skimage.py --out runs/benchmarks/biharmonic --overwrite

Maintained. It compares today's ``pdeflow.inpaint.operators.biharmonic.inpaint_biharmonic`` with
scikit-image; the test suite runs it with ``--smoke`` (48 px images and a 12^3 volume, sparse data, a 60 s cap).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import add_output_args, open_out, write_text

SIZES = {"256 px": (256, 256), "1 Mpx": (1024, 1024), "4K": (2160, 3840), "128^3": (128, 128, 128)}
SMOKE_SIZES = {"48 px": (48, 48), "12^3": (12, 12, 12)}
KINDS = ("sparse", "holes")
THREADS = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


# ----------------------------------------------------------------------------- inputs

def make_image(shape) -> np.ndarray:
    """The camera image resized to ``shape`` (2-D) or the Shepp-Logan phantom (3-D), float64 in [0, 1]."""
    import torch

    if len(shape) == 3:
        from pdeflow.datasets import shepp_logan_3d

        return shepp_logan_3d(shape, dtype=torch.float64).numpy()
    from skimage import data

    cam = torch.from_numpy(data.camera().astype(np.float64) / 255.0)[None, None]
    return torch.nn.functional.interpolate(cam, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def make_known(shape, kind: str, seed: int = 0) -> np.ndarray:
    """The known pixels (bool) of a ``sparse`` or ``holes`` mask (see the module doc)."""
    rng = np.random.default_rng(seed)
    if kind == "sparse":
        return rng.random(shape) < 0.05
    missing = np.zeros(shape, dtype=bool)
    n = min(shape)
    count, target = 0, 0.05 * missing.size
    while count < target:
        centre = [int(rng.integers(0, s)) for s in shape]
        if len(shape) == 2 and rng.random() < 0.3:   # a scratch, horizontal or vertical
            length = max(4, n // 4)
            y, x = centre
            if rng.random() < 0.5:
                sl = (slice(y, y + 3), slice(x, x + length))
            else:
                sl = (slice(y, y + length), slice(x, x + 3))
            count += int((~missing[sl]).sum())
            missing[sl] = True
            continue
        r = int(rng.integers(2, max(3, int(0.03 * n) + 3)))
        box = tuple(slice(max(0, c - r), min(s, c + r + 1)) for c, s in zip(centre, shape))
        grids = np.ogrid[box]
        ball = sum((g - c) ** 2 for g, c in zip(grids, centre)) <= r * r
        count += int((ball & ~missing[box]).sum())
        missing[box] |= ball
    return ~missing


# ----------------------------------------------------------------------------- children

def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(method: str, case: Path, solver: str, mem_gb: float, warm: bool = True) -> None:
    """Run one solver on ``case/f.npy`` and ``case/known.npy``; write ``u_METHOD.npy`` and print JSON."""
    f = np.load(case / "f.npy")
    known = np.load(case / "known.npy")
    if method == "skimage":
        if mem_gb > 0:
            limit = int(mem_gb * 2 ** 30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        from skimage.restoration import inpaint_biharmonic

        def run(f=f, known=known):
            return inpaint_biharmonic(f, ~known), {}
    else:
        import torch

        from pdeflow.inpaint.operators.biharmonic import inpaint_biharmonic

        torch.set_num_threads(1)
        ft, mt = torch.from_numpy(f), torch.from_numpy(known)

        def run(ft=ft, mt=mt):
            r = inpaint_biharmonic(ft, mt, solver=solver, clip=True, ndim=ft.dim(), full_output=True)
            return r.u.numpy(), {"solver": r.solver, "iterations": int(r.iterations.max()),
                                 "residual": float(r.residual.max())}
    if warm:   # the library code loaded and initialised by a call on a small input of the same kind
        small = tuple(slice(0, 40 if f.ndim == 2 else 12) for _ in f.shape)
        ks = known[small].copy()
        ks.flat[0] = True
        ks[tuple(slice(4, 8) for _ in f.shape)] = False
        fs = np.ascontiguousarray(f[small])
        if method == "skimage":
            run(fs, ks)
        else:
            run(torch.from_numpy(fs), torch.from_numpy(ks))
    reset = _reset_peak()
    before = _status_kb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    u, extra = run()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    name = "skimage" if method == "skimage" else solver
    np.save(case / f"u_{name}.npy", u)
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "peak_bytes": max(0, peak - before) * 1024,
                      "peak_reset": reset, **extra}))


def run_child(method: str, case: Path, solver: str, timeout: float, mem_gb: float) -> dict:
    """Two runs of the child: the time with the default allocator, then the peak memory with glibc's mmap
    threshold fixed (:data:`MEMORY_ENV`); the second only if the first finished."""
    timed = _run_child(method, case, solver, timeout, mem_gb, {})
    if timed["status"] != "ok":
        return timed
    sized = _run_child(method, case, solver, timeout, mem_gb, MEMORY_ENV)
    timed["peak_bytes_default_malloc"] = timed.pop("peak_bytes")
    timed["peak_bytes"] = sized.get("peak_bytes", float("nan"))
    return timed


#: The memory runs: every block of 128 KiB or more mapped on its own and unmapped when freed (glibc raises
#: its threshold dynamically otherwise and keeps freed blocks), so the peak resident set is that of the
#: live allocations. The page faults this costs make those runs slower: their times are not reported.
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _run_child(method: str, case: Path, solver: str, timeout: float, mem_gb: float, extra_env: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", method, "--case", str(case),
           "--solver", solver, "--sk-mem-gb", str(mem_gb)]
    env = {**os.environ, **THREADS, **extra_env}
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"did not finish in {timeout:g} s"}
    if p.returncode != 0:
        err = (p.stderr or "").strip().splitlines()
        elapsed = time.perf_counter() - t0
        if any("MemoryError" in line for line in err[-3:]):
            status = "out of memory"
        elif p.returncode < 0:   # e.g. SIGSEGV when an allocation under the address-space limit fails
            status = f"crashed (signal {-p.returncode}) after {elapsed:.0f} s"
        else:
            status = f"failed (exit {p.returncode})"
        return {"status": status, "error": err[-1] if err else "", "elapsed_s": elapsed}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["status"] = "ok"
    return out


# ----------------------------------------------------------------------------- report

def _mib(b):
    return f"{b / 2 ** 20:.0f} MiB" if b >= 2 ** 20 else f"{b / 2 ** 10:.0f} KiB"


def report(meta: dict) -> str:
    """The Markdown page of a run: how it was measured, then :func:`table`."""
    head = [
        "# Biharmonic inpainting: pdeflow against scikit-image",
        "",
        "pdeflow's `inpaint_biharmonic(f, mask, clip=True)` (default `solver='auto'`, `tol=1e-8`; `mg` also run "
        "where `auto` chose `direct`) against `skimage.restoration.inpaint_biharmonic(f, ~mask)`: the same "
        "discrete system, float64, one thread (`OMP_NUM_THREADS=1`, `torch.set_num_threads(1)`), each in a child "
        "process after a warm-up call on a small crop. Images: the camera image resized (bilinear); volume: "
        "the Shepp-Logan phantom. Masks: `sparse` = 5 % of the pixels known at random; `holes` = random "
        "disks (balls) and 3 px scratches until 5 % are missing.",
        "",
        f"* CPU time: {meta['time']}; scikit-image gets {meta['timeout_s']:g} s per case and an address-space "
        f"limit of {meta['sk_mem_gb']:g} GiB; a mask kind it did not finish at one size is not tried at the "
        "larger ones.",
        f"* Peak memory: {meta['memory']}; the multiple is of the input image (float64).",
        "* Speed-up: scikit-image's CPU time over pdeflow's; max abs difference: between the two outputs.",
        "",
    ]
    return "\n".join(head) + "\n" + table(meta["rows"])


def table(rows) -> str:
    lines = ["| case | mask | unknowns | scikit-image CPU s | scikit-image peak | pdeflow solver (iterations) | "
             "pdeflow CPU s | pdeflow peak (x image) | speed-up | max abs difference |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        sk = r["skimage"]
        sk_t = f"{sk['cpu_s']:.2f}" if sk["status"] == "ok" else sk["status"]
        sk_m = _mib(sk["peak_bytes"]) if sk["status"] == "ok" else ""
        for p in r["pdeflow"]:
            if p["status"] != "ok":
                lines.append(f"| {r['case']} | {r['kind']} | {r['unknowns']} | {sk_t} | {sk_m} | "
                             f"{p.get('requested')} | {p['status']} | | | |")
                continue
            ratio = f"{sk['cpu_s'] / p['cpu_s']:.3g}x" if sk["status"] == "ok" else ""
            diff = f"{p['max_abs_diff']:.1e}" if "max_abs_diff" in p else ""
            lines.append(f"| {r['case']} | {r['kind']} | {r['unknowns']} | {sk_t} | {sk_m} | "
                         f"{p['solver']} ({p['iterations']}) | {p['cpu_s']:.2f} | {_mib(p['peak_bytes'])} "
                         f"({p['peak_bytes'] / r['image_bytes']:.1f}x) | {ratio} | {diff} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="48 px images and a 12^3 volume, sparse data, a 60 s cap")
    ap.add_argument("--cases", nargs="+", default=None, help=f"cases to run (default all: {list(SIZES)})")
    ap.add_argument("--kinds", nargs="+", default=None, choices=KINDS,
                    help="default: both (with --smoke: sparse data only)")
    ap.add_argument("--solvers", nargs="+", default=["auto"], choices=["auto", "mg", "direct"],
                    help="pdeflow solvers to run (default: auto)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds scikit-image gets per case")
    ap.add_argument("--sk-mem-gb", type=float, default=12.0, help="scikit-image's address-space limit (0: none)")
    ap.add_argument("--child", choices=["pdeflow", "skimage"], help=argparse.SUPPRESS)
    ap.add_argument("--case", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--solver", default="auto", help=argparse.SUPPRESS)
    add_output_args(ap, "biharmonic", what="biharmonic_skimage.json, biharmonic_skimage.md")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.case, args.solver, args.sk_mem_gb)
        return 0
    out = open_out(args, argv)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    kinds = args.kinds or (["sparse"] if args.smoke else list(KINDS))
    timeout = 60.0 if args.smoke else args.timeout
    names = args.cases or list(sizes)
    rows, failed_at = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            shape = sizes[name]
            f = make_image(shape)
            for kind in kinds:
                case = Path(tmp) / f"{name.replace(' ', '_').replace('^', '')}_{kind}"
                case.mkdir()
                known = make_known(shape, kind)
                np.save(case / "f.npy", f)
                np.save(case / "known.npy", known)
                row = {"case": name, "shape": list(shape), "kind": kind, "unknowns": int((~known).sum()),
                       "image_bytes": f.nbytes}
                print(f"{name} {kind}: {row['unknowns']} unknowns", flush=True)
                group = (len(shape), kind)
                if group in failed_at:
                    row["skimage"] = {"status": f"not tried (did not finish at {failed_at[group]})"}
                else:
                    row["skimage"] = run_child("skimage", case, "", timeout, args.sk_mem_gb)
                    if row["skimage"]["status"] != "ok":
                        failed_at[group] = name
                print(f"  scikit-image: {row['skimage']}", flush=True)
                row["pdeflow"] = []
                for solver in args.solvers:
                    if solver == "mg" and any(q.get("solver") == "mg" for q in row["pdeflow"]):
                        continue   # 'auto' ran the multigrid solver already
                    p = run_child("pdeflow", case, solver, max(timeout, 3 * 3600.0), 0)
                    p["requested"] = solver
                    if p["status"] == "ok" and row["skimage"]["status"] == "ok":
                        a, b = np.load(case / f"u_{solver}.npy"), np.load(case / "u_skimage.npy")
                        p["max_abs_diff"] = float(np.abs(a - b).max())
                        p["speedup_cpu"] = row["skimage"]["cpu_s"] / p["cpu_s"]
                    print(f"  pdeflow {solver}: {p}", flush=True)
                    row["pdeflow"].append(p)
                for u in case.glob("u_*.npy"):
                    u.unlink()
                rows.append(row)
                meta = {"timeout_s": timeout, "sk_mem_gb": args.sk_mem_gb, "threads": 1,
                        "memory": "peak resident set of the child process during the call (VmHWM after a "
                                  "reset) minus the resident set before it, in a run with "
                                  "MALLOC_MMAP_THRESHOLD_=131072 (peak_bytes_default_malloc: the timed run's)",
                        "time": "time.process_time of the call in its child process", "rows": rows}
                write_text(out / "biharmonic_skimage.json", json.dumps(meta, indent=1) + "\n")
                write_text(out / "biharmonic_skimage.md", report(meta))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
