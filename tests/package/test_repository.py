"""The repository stays lean: what git tracks is source, tests, docs (with the small summaries the results pages
show, ``docs/results/data/``) and the shipped weights.

Raw benchmark output, per-run figures, candidate weights and checkpoints are written outside git (``runs/``) by
the scripts that make them (``benchmarks/``, ``experiments/``), never committed.
"""
from __future__ import annotations

import fnmatch
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The one place where files over 1 MB and safetensors belong: the shipped models.
WEIGHTS = "src/pdeflow/*/weights/*"
MAX_FILE = 1_000_000
#: The whole tracked tree, and the part of it outside the shipped weights (which alone are about 5 MB, stored in
#: float16: tests/io/test_model_storage.py).
MAX_TOTAL = 10_000_000
MAX_OUTSIDE_WEIGHTS = 5_000_000
#: Where a script's output or a run's files would go: nothing there is tracked.
RAW_OUTPUT = ("benchmarks/results/", "runs/", "out/")


def tracked() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    # a file deleted in the working tree but not yet in the index is not there to weigh
    return [Path(p) for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def _in_weights(path: Path) -> bool:
    return fnmatch.fnmatch(path.as_posix(), WEIGHTS)


def test_no_tracked_file_over_1_mb_outside_the_shipped_weights():
    big = [(p.as_posix(), (ROOT / p).stat().st_size) for p in tracked()
           if not _in_weights(p) and (ROOT / p).stat().st_size > MAX_FILE]
    assert big == []


def test_the_tracked_tree_is_under_10_mb_and_under_5_mb_outside_the_weights():
    sizes = {p: (ROOT / p).stat().st_size for p in tracked()}
    total = sum(sizes.values())
    outside = sum(s for p, s in sizes.items() if not _in_weights(p))
    assert total < MAX_TOTAL, f"{total / 1e6:.1f} MB tracked"
    assert outside < MAX_OUTSIDE_WEIGHTS, f"{outside / 1e6:.1f} MB tracked outside the shipped weights"


def test_no_raw_output_is_tracked():
    """Benchmarks and experiments are scripts; their output lives outside git (docs/results/data holds the
    summaries a page shows)."""
    raw = [p.as_posix() for p in tracked() if p.as_posix().startswith(RAW_OUTPUT)]
    assert raw == []
    stray = [p.as_posix() for p in tracked() if p.parts[0] in ("benchmarks", "experiments")
             and p.suffix not in (".py", ".md")]
    assert stray == []


def test_weights_files_live_only_in_the_weights_folders():
    stray = [p.as_posix() for p in tracked()
             if p.suffix in {".safetensors", ".pt", ".pth", ".ckpt"} and not _in_weights(p)]
    assert stray == []


def test_the_checks_see_the_shipped_weights():
    """The checks above look at the real tree (the shipped models are tracked and recognised)."""
    shipped = [p for p in tracked() if p.suffix == ".safetensors"]
    assert shipped and all(_in_weights(p) for p in shipped)
