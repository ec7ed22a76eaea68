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
#: Two budgets: the shipped weights (float16, tests/io/test_model_storage.py) and everything else. The weights'
#: budget leaves room for the models a release adds (about 5 MB shipped today); the rest stays at 5 MB.
MAX_WEIGHTS = 10_000_000
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


def budgets(paths, root: Path = ROOT) -> tuple[int, int]:
    """Bytes of ``paths`` (relative to ``root``) in the shipped weights, and outside them."""
    sizes = {p: (root / p).stat().st_size for p in paths}
    weights = sum(s for p, s in sizes.items() if _in_weights(p))
    return weights, sum(sizes.values()) - weights


def test_the_shipped_weights_stay_under_10_mb_and_everything_else_under_5_mb():
    weights, outside = budgets(tracked())
    assert weights < MAX_WEIGHTS, f"{weights / 1e6:.2f} MB of shipped weights (budget {MAX_WEIGHTS / 1e6:g} MB)"
    assert outside < MAX_OUTSIDE_WEIGHTS, (f"{outside / 1e6:.2f} MB tracked outside the shipped weights "
                                           f"(budget {MAX_OUTSIDE_WEIGHTS / 1e6:g} MB)")


def test_the_budgets_count_each_file_on_its_own_side(tmp_path):
    """A planted file in a weights folder counts against the weights, one elsewhere against the rest."""
    (tmp_path / "src/pdeflow/tvflownet/weights").mkdir(parents=True)
    (tmp_path / "src/pdeflow/tvflownet/weights/m.safetensors").write_bytes(b"w" * 300)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/page.md").write_bytes(b"d" * 20)
    assert budgets([Path("src/pdeflow/tvflownet/weights/m.safetensors"), Path("docs/page.md")], tmp_path) == (300, 20)


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
