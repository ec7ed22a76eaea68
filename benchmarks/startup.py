#!/usr/bin/env python
"""Start-up cost of ``import pdeflow`` and of the ``pdeflow`` command, against ``python -c "import torch"``.

Each case is a fresh interpreter; its CPU time (user + system, of the child process) is measured, the cases
interleaved over ``--repeats`` rounds, and the median printed with its difference to ``import torch`` in the
same run. ``--src DIR`` (repeatable) measures the ``src`` folders of other checkouts side by side (a ``git
archive`` of an older commit, say); the default is this checkout's.

    python benchmarks/startup.py --repeats 7 --out DIR
    python benchmarks/startup.py --src /tmp/before/src --src ../src --out DIR   # before and after a change
    python benchmarks/startup.py --smoke     # one round: a check that it runs

Maintained. It runs the command's cheap paths (``--version``, ``--help``, a usage error); the test suite runs
it with ``--smoke``.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from _results import add_output_args, open_out, write_text  # benchmarks/_results.py

HERE = Path(__file__).resolve().parent
#: (label, python arguments): the baseline first.
CASES = [
    ("import torch", ["-c", "import torch"]),
    ("import pdeflow", ["-c", "import pdeflow"]),
    ("import pdeflow.inpaint", ["-c", "import pdeflow.inpaint"]),
    ("import pdeflow.codec", ["-c", "import pdeflow.codec"]),
    ("pdeflow --version", ["-m", "pdeflow", "--version"]),
    ("pdeflow --help", ["-m", "pdeflow", "--help"]),
    ("pdeflow compress --help", ["-m", "pdeflow", "compress", "--help"]),
    ("pdeflow compress (usage error)", ["-m", "pdeflow", "compress", "photo.png"]),
    ("pdeflow inpaint --help", ["-m", "pdeflow", "inpaint", "--help"]),
]


def cpu_seconds(args: list[str], src: str) -> float:
    """CPU time (user + system) of ``python ARGS`` with ``src`` first on its path."""
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=HERE, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--src", action="append", default=None,
                    help="a checkout's src folder to measure (repeatable; default: this checkout's)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--smoke", action="store_true", help="one round: a check that it runs")
    add_output_args(ap, "startup", what="startup.md")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    srcs = [str(Path(s).resolve()) for s in (args.src or [HERE.parent / "src"])]
    for s in srcs:
        if not (Path(s) / "pdeflow" / "__init__.py").is_file():
            ap.error(f"--src {s}: no pdeflow package there")
    repeats = 1 if args.smoke else args.repeats
    out = open_out(args, argv)
    times = {(s, label): [] for s in srcs for label, _ in CASES}
    for _ in range(repeats):
        for s in srcs:
            for label, case in CASES:
                times[(s, label)].append(cpu_seconds(case, s))
    lines = [f"# Start-up CPU time (s, median of {repeats} interleaved rounds; one thread; "
             f"Python {sys.version.split()[0]})", "",
             "| case | " + " | ".join(f"`{s}` | above `import torch`" for s in srcs) + " |",
             "|---" * (1 + 2 * len(srcs)) + "|"]
    for label, _ in CASES:
        row = [label]
        for s in srcs:
            median = statistics.median(times[(s, label)])
            base = statistics.median(times[(s, "import torch")])
            row += [f"{median:.2f}", "" if label == "import torch" else f"{median - base:+.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    write_text(out / "startup.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
