"""Shared by the benchmark scripts: each writes its results into benchmarks/RESULTS.md between its
own markers, so that re-running one script replaces its block and leaves the others alone; or a whole
results file (:func:`write_text`). Files are written atomically with :func:`pdeflow.io.write_bytes`."""
from __future__ import annotations

import argparse
from pathlib import Path

from pdeflow.io import write_bytes

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the block between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in ``path``
    (append it if absent; create the file if missing), atomically."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):].lstrip("\n")
    else:
        new = old.rstrip() + "\n\n" + block
    write_bytes(path, new.encode())


def write_text(path: Path, text: str) -> None:
    """Write a results file atomically (its folder created) and say where."""
    write_bytes(path, text.encode())
    print(f"written to {path}")


def add_results_option(ap: argparse.ArgumentParser) -> None:
    """``--results FILE``: also write the script's results block into FILE (committing results is explicit)."""
    ap.add_argument("--results", default="", metavar="FILE",
                    help="also write the results block into FILE (default: none, printed only); "
                         f"committing them is explicit: --results {RESULTS.relative_to(RESULTS.parents[1])}")
