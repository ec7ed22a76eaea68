"""``rof`` against an earlier pdeflow: the same calls on the same noisy photograph, the two trees side by side.

Maintained.  The earlier pdeflow is the ``src`` folder of another checkout (``--before-src``), imported by a
subprocess of its own; this tree's runs in another, alternating, one thread each.  A child times a call after one
untimed call (CPU time, the smallest of ``--repeat``) on ``rof_defaults.py``'s photograph; the table gives each
call's CPU s, iterations and largest error over the range against the float64 reference (``--ref-tol``), and the
ratio.  ``exact``: ``rof(g, lam, tol=1e-6)``; ``default``: ``rof(g, lam)``, each tree's own default.

Usage::

    git worktree add /tmp/before 933b3120^            # the tree before the fused FGP loops
    python benchmarks/rof_before.py --before-src /tmp/before/src --sizes 256 512 --lams 0.02 0.1 0.3 0.5
    python benchmarks/rof_before.py --smoke           # this tree against itself, one small case
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
THIS_SRC = HERE.parent / "src"
CALLS = {"exact": {"tol": 1e-6}, "default": {}}


def child(image: str, lam: float, call: str, repeat: int, answer: str) -> None:
    """The subprocess: time ``rof``, save its answer, print ``{"cpu", "iterations", "module"}``."""
    torch.set_num_threads(1)
    import pdeflow
    from pdeflow.tv import rof

    x = torch.from_numpy(np.load(image))
    kwargs = CALLS[call]
    r = rof(x, lam, full_output=True, **kwargs)
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        r = rof(x, lam, full_output=True, **kwargs)
        best = min(best, time.process_time() - start)
    np.save(answer, r.u.double().numpy())
    print(json.dumps({"cpu": best, "iterations": int(r.iterations.reshape(-1)[0]), "module": pdeflow.__file__}))


def timed_in(src: Path, image: Path, lam: float, call: str, repeat: int, answer: Path) -> dict:
    """Run :func:`child` with the pdeflow of ``src``; its JSON."""
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(image), str(lam), call, str(repeat),
           str(answer)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"the pdeflow of {src} failed:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if not Path(out["module"]).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"the subprocess imported {out['module']}, not the pdeflow of {src}")
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], float(argv[2]), argv[3], int(argv[4]), argv[5])
        return 0
    # here, not at the top: the child imports no pdeflow but the one it times
    from _results import add_output_args, open_out
    from rof_defaults import noisy_photo, reference

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before-src", type=Path, default=None, metavar="DIR",
                    help="the src folder of the earlier pdeflow (required but with --smoke: this tree's)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--lams", type=float, nargs="+", default=[0.02, 0.1, 0.5])
    ap.add_argument("--calls", nargs="+", choices=sorted(CALLS), default=["exact", "default"])
    ap.add_argument("--seed", type=int, default=0, help="the noise's seed")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls in each process; the smallest is kept")
    ap.add_argument("--ref-tol", type=float, default=1e-9, help="relative duality gap of the float64 reference")
    ap.add_argument("--ref-cache", type=Path, default=None, metavar="DIR", help="keep the references here")
    ap.add_argument("--smoke", action="store_true", help="this tree against itself, one small case")
    add_output_args(ap, "rof_before")
    args = ap.parse_args(argv)
    if args.smoke:
        args.before_src = args.before_src or THIS_SRC
        args.sizes, args.lams, args.repeat, args.ref_tol = [48], [0.1], 1, 1e-7
    if args.before_src is None:
        ap.error("argument --before-src: required (the src folder of the earlier pdeflow)")
    if not (args.before_src / "pdeflow" / "__init__.py").is_file():
        ap.error(f"argument --before-src: {args.before_src} holds no pdeflow package (expected DIR/pdeflow/)")
    out = open_out(args, argv)
    torch.set_num_threads(1)
    rows = []
    print("| size | lam | call | before: CPU s, it, error | now: CPU s, it, error | speed-up |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in args.sizes:
            g = noisy_photo(n, args.seed)
            image = tmp / f"g{n}.npy"
            np.save(image, g)
            span = float(g.max()) - float(g.min())
            for lam in args.lams:
                ref = reference(torch.from_numpy(g), lam, args.ref_tol, args.ref_cache, 5000,
                                seed=args.seed).reshape(g.shape)
                for call in args.calls:
                    row = {"size": n, "lam": lam, "call": call}
                    for name, src in (("before", args.before_src), ("now", THIS_SRC)):
                        res = timed_in(src, image, lam, call, args.repeat, tmp / "u.npy")
                        u = np.load(tmp / "u.npy").reshape(g.shape)
                        row[name] = {"cpu": res["cpu"], "iterations": res["iterations"],
                                     "error": float(np.abs(u - ref).max()) / span}
                    row["speed-up"] = row["before"]["cpu"] / row["now"]["cpu"]
                    rows.append(row)
                    b, w = row["before"], row["now"]
                    print(f"| {n} | {lam:g} | {call} | {b['cpu']:.3f}, {b['iterations']}, {b['error']:.1e} | "
                          f"{w['cpu']:.3f}, {w['iterations']}, {w['error']:.1e} | {row['speed-up']:.1f}x |",
                          flush=True)
    (out / "rof_before.json").write_text(json.dumps({"before_src": str(args.before_src), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
