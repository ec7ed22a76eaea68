"""The workload benchmark (TVflowNET vs the reference at matched accuracy) runs end to end.

A smoke run of ``benchmarks/tvflownet_workloads.py --quick`` (tiny crops; its numbers mean
nothing and nothing here checks a time): both workloads finish and write their results.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_writes_both_workloads(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tvflownet_workloads.py"), "--quick", "--cache", "",
                    "--workloads", "batch", "grad", "inputeps", "--input-eps", "none", "0.1",
                    "--out", str(tmp_path)], check=True, env=env, cwd=tmp_path, capture_output=True, text=True)
    md = (tmp_path / "results.md").read_text()
    assert "<!-- batch_32px:begin -->" in md and "<!-- grad_16px:begin -->" in md
    batch = json.loads((tmp_path / "batch_32px.json").read_text())
    assert {r["K"] for r in batch["rows"]} == {1, 2}
    grad = json.loads((tmp_path / "grad_16px.json").read_text())
    assert grad["implicit_autograd"] == "works"           # the reference differentiates (implicitly, each step)
    implicit = [c for c in grad["curve"] if c["scheme"] == "implicit"]
    assert implicit and all("implicit" in r and r["implicit"].get("setting") for r in grad["rows"])
    unrolled = [c for c in grad["curve"] if c["scheme"] == "unrolled" and c["dt"] == 0.1 and c["knob"] == 50]
    assert unrolled and unrolled[0]["grad_error"] < 0.05   # same dt as the finite differences: they agree
    assert grad["full_reference"]["grad_error"] < 0.05     # the full reference gradient agrees with them too
    assert unrolled[0]["full_error"] < 0.05
    kinds = ["tvflownet.flow (wrapper + transposition mean)", "network + symmetry wrapper", "bare network"]
    assert [r["variant"] for r in grad["rows"]] == kinds + [f"{k}, input eps 0.1" for k in kinds]
    inputeps = json.loads((tmp_path / "inputeps.json").read_text())
    assert [r["input_eps"] for r in inputeps["rows"]] == [None, 0.1]
    assert all(r[k] > 20 for r in inputeps["rows"] for k in ("u_32", "u_96", "div_phi_32", "div_phi_96"))
    assert list(tmp_path.glob("*.pt")) == []               # --cache '' caches nothing
