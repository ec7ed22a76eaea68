"""The 2-D calculus before and after ``ndim``/``spacing`` were added to ``pdeflow.ops``: the same speed.

Loads ``src/pdeflow/ops.py`` as it was at a git revision (default ``dbf5b14``, the commit before the 3-D
calculus) next to the current one and times ``grad``, ``div`` and ``laplacian`` on one 512 x 512 float32
image (and a batch of 8 at 128 x 128), alternating old and new calls in one run and one thread; CPU time
(``time.process_time``), the median of ``--rounds`` rounds of ``--reps`` calls. Also checks that the
outputs are bit for bit equal.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/ops_2d_unchanged.py --out DIR

Historical. It checked that adding ndim and spacing to pdeflow.ops left the 2-D speed unchanged. Its results
are kept for the record; it is not expected to run against today's API. It still imported and parsed its
options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out  # benchmarks/_results.py
from pdeflow import ops as new_ops

ROOT = Path(__file__).resolve().parent.parent


def old_ops(rev: str):
    """``pdeflow/ops.py`` at ``rev`` as a module of its own (its one relative import resolved to pdeflow's)."""
    text = subprocess.run(["git", "show", f"{rev}:src/pdeflow/ops.py"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    text = text.replace("from .errors import", "from pdeflow.errors import")
    path = Path(tempfile.mkdtemp()) / "ops_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("ops_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cpu_time(f, reps: int) -> float:
    t0 = time.process_time()
    for _ in range(reps):
        f()
    return (time.process_time() - t0) / reps


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="dbf5b14")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=7)
    add_output_args(ap, "ops_2d_unchanged", what="log.txt (the timings printed)")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    old = old_ops(args.rev)
    g = torch.Generator().manual_seed(0)
    for shape in ((512, 512), (8, 1, 128, 128)):
        u = torch.randn(*shape, generator=g)
        p = old.grad(u)
        print(f"shape {shape}, float32, one thread, CPU ms per call (median of {args.rounds} x {args.reps}):")
        for name, call in (("grad", lambda m: m.grad(u)), ("div", lambda m: m.div(p)),
                           ("laplacian", lambda m: m.laplacian(u))):
            assert torch.equal(call(old), call(new_ops)), name
            t_old, t_new = [], []
            for _ in range(args.rounds):
                t_old.append(cpu_time(lambda: call(old), args.reps))
                t_new.append(cpu_time(lambda: call(new_ops), args.reps))
            a, b = statistics.median(t_old), statistics.median(t_new)
            print(f"  {name:9s} before {1e3 * a:7.3f}  after {1e3 * b:7.3f}  after/before {b / a:.3f}")


if __name__ == "__main__":
    sys.exit(main())
