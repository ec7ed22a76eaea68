"""The output convention of the benchmark and experiment scripts (benchmarks/_results.py, loaded by
experiments/_results.py): every script writes to
``--out DIR``, by default a fresh folder under ``runs/benchmarks/`` (never a committed file), and
refuses a non-empty folder unless ``--overwrite``; raw output never enters git (a results page's summary is
copied into ``docs/results/data/`` by hand). Every script is maintained and runs here at a smoke size; one-off
studies are removed once they have decided (git history keeps them)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
EXPERIMENTS = BENCH.parent / "experiments"
BENCHMARKS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
SCRIPTS = BENCHMARKS + sorted(p for p in EXPERIMENTS.glob("*.py") if not p.name.startswith("_"))
ALL = [p for p in [*BENCH.glob("*.py"), *EXPERIMENTS.glob("*.py")] if p.name != "_results.py"]


@pytest.fixture
def results_module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import _results

    return _results


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else getattr(f, "attr", ""))
    return names


def test_there_are_benchmark_and_experiment_scripts():
    assert len(BENCHMARKS) >= 10 and len(SCRIPTS) >= 12


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_takes_out_through_the_helper(script):
    calls = _calls(script)
    assert {"add_output_args", "open_out"} <= calls, f"{script.name} does not use _results.add_output_args/open_out"
    src = script.read_text()
    # no output path of its own: no --out/--no-write/--update-results argument defined by hand
    for flag in ('"--out"', '"--no-write"', '"--update-results"'):
        assert f"add_argument({flag}" not in src, f"{script.name} defines {flag} itself"


@pytest.mark.parametrize("script", ALL, ids=lambda p: p.name)
def test_no_script_writes_a_committed_file_by_default(script):
    """Committed locations appear only as things read (references, caches copied), never as a
    default output: no ``write_block(RESULTS, ...)`` and no default path into results/ or weights/."""
    src = script.read_text()
    assert "write_block(RESULTS" not in src
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flag = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else ""
            for kw in node.keywords:
                if kw.arg == "default" and flag in ("--out", "--results", "--ps-cache"):
                    text = ast.unparse(kw.value)
                    assert "results" not in text and "RESULTS" not in text and "weights" not in text, \
                        f"{script.name}: {flag} defaults to {text}"


def test_open_out_defaults_to_a_fresh_folder_under_runs(results_module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = SimpleNamespace(out=None, overwrite=False, _bench_name="demo")
    out1 = results_module.open_out(a, ["--x", "1"], log=False)
    (out1 / "f.txt").write_text("x")
    b = SimpleNamespace(out=None, overwrite=False, _bench_name="demo")
    out2 = results_module.open_out(b, [], log=False)
    assert out1 != out2
    for out in (out1, out2):
        assert out.is_dir() and out.parts[:3] == ("runs", "benchmarks", "demo")


def test_open_out_refuses_a_non_empty_folder_unless_overwrite(results_module, tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "kept.md").write_text("committed")
    with pytest.raises(SystemExit) as exc:
        results_module.open_out(SimpleNamespace(out=tmp_path / "o", overwrite=False, _bench_name="demo"), [])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("--out:") and "--overwrite" in err
    assert (tmp_path / "o" / "kept.md").read_text() == "committed" and len(list((tmp_path / "o").iterdir())) == 1
    (tmp_path / "f").write_text("")
    with pytest.raises(SystemExit):
        results_module.check_out(tmp_path / "f", overwrite=True)
    results_module.check_out(tmp_path / "o", overwrite=True)             # asked: allowed
    results_module.check_out(tmp_path / "empty", overwrite=False)        # absent: allowed


@pytest.mark.slow   # two benchmark runs in fresh interpreters; the open_out tests keep the rule in make test
def test_a_script_writes_its_folder_and_refuses_it_the_second_time(tmp_path):
    """iel_layers.py on tiny logits (seconds): command.txt and log.txt (what it printed) in --out;
    run again into the same folder: exit status 2, one line, nothing changed."""
    cmd = [sys.executable, str(BENCH / "iel_layers.py"), "--size", "8", "--batch", "1", "--steps", "2",
           "--repeat", "1", "--out", "o"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ratio official / pdeflow" in (tmp_path / "o" / "log.txt").read_text()
    assert (tmp_path / "o" / "command.txt").read_text().startswith("python benchmarks/iel_layers.py --size 8")
    before = {p.name: p.read_text() for p in (tmp_path / "o").iterdir()}
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().startswith("--out:") and len(r.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_text() for p in (tmp_path / "o").iterdir()} == before


@pytest.mark.slow   # a fresh interpreter
def test_the_experiments_helper_names_its_folder_in_command_txt(tmp_path):
    code = ("import argparse, sys; sys.path.insert(0, sys.argv[1]); import _results; "
            "ap = argparse.ArgumentParser(); _results.add_output_args(ap, 'probe'); "
            "_results.open_out(ap.parse_args(['--out', 'o']), ['--x', '1'])")
    r = subprocess.run([sys.executable, "-c", code, str(EXPERIMENTS)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "command.txt").read_text() == "python experiments/probe.py --x 1\n"


@pytest.mark.slow   # a benchmark of every TV solver in float32 and float64
def test_float32_accuracy_benchmark_runs_at_smoke_size(tmp_path):
    # maintained: float32 against float64 for the TV solvers, values and gradients (its exit status is 1 when
    # the float32 and float64 gradients disagree)
    r = subprocess.run([sys.executable, str(BENCH / "float32_accuracy.py"), "--smoke", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=BENCH, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    table = (tmp_path / "o" / "float32_accuracy.md").read_text()
    assert "| rof | fgp lam=1e+06 |" in table and "| tv_flow |" in table and "| ok |" in table


# ---------------------------------------------------------------------------
# Every script is maintained: it says so, and it runs here at a smoke size
# ---------------------------------------------------------------------------

#: Every script a reader might run; helpers start with ``_``.
EVERY_SCRIPT = sorted(p for p in [*BENCH.glob("*.py"), *EXPERIMENTS.glob("*.py")] if not p.name.startswith("_"))


def _maintained(script: Path) -> bool:
    """A paragraph of the module docstring starts with "Maintained." (and says what keeps it working)."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    return any(p.lstrip().startswith("Maintained.") for p in doc.split("\n\n"))


@pytest.mark.parametrize("script", EVERY_SCRIPT, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_script_is_maintained_and_has_a_smoke_size(script):
    """A one-off study that has decided leaves the tree (git history keeps it); what stays says "Maintained."
    in its docstring and takes ``--smoke``."""
    assert _maintained(script), f"{script.name}: say 'Maintained.' in a paragraph of its docstring"
    assert '"--smoke"' in script.read_text(), f"{script.name} is maintained but has no --smoke option"


def test_the_maintained_check_sees_a_script_without_the_word(tmp_path):
    (tmp_path / "a.py").write_text('"""Times a thing.\n\nHistorical. Kept for the record."""\n')
    (tmp_path / "b.py").write_text('"""Times a thing.\n\nMaintained. Runs with --smoke here."""\n')
    assert not _maintained(tmp_path / "a.py") and _maintained(tmp_path / "b.py")


# slow: a fresh interpreter per script, ~30 of them; make test keeps the output convention's runs above
# (iel_layers.py twice, float32_accuracy.py)
@pytest.mark.slow
@pytest.mark.parametrize("script", [p for p in EVERY_SCRIPT if p.name != "float32_accuracy.py"], ids=lambda p: p.name)
def test_a_maintained_script_runs_at_smoke_size(script, tmp_path):
    """``SCRIPT --smoke --out DIR`` finishes in seconds on one core and writes its files; a script that stops
    working against today's API fails here (float32_accuracy.py has its own test above)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    r = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(tmp_path / "o")], capture_output=True,
                       text=True, cwd=script.parent, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    written = {p.name for p in (tmp_path / "o").iterdir()}
    assert "command.txt" in written and len(written) >= 2, written
