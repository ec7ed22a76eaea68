"""pdeflow's handling of OpenMP's wait policy (pdeflow/__init__.py, pdeflow.threads)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pdeflow
from pdeflow import threads
from pdeflow.tv import rof, tv_flow

SRC = str(Path(pdeflow.__file__).resolve().parents[1])


def _child(code: str, **env_changes) -> dict:
    drop = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "PDEFLOW_AUTO_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_changes)
    env["PYTHONPATH"] = SRC
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


REPORT = ("import json, os, pdeflow; print(json.dumps({'policy': os.environ.get('OMP_WAIT_POLICY'), "
          "'spins': pdeflow.threads.SPINS_AT_IMPORT}))")


def test_pdeflow_first_sets_passive_policy():
    assert _child(REPORT) == {"policy": "PASSIVE", "spins": False}


def test_user_policy_wins():
    assert _child(REPORT, OMP_WAIT_POLICY="ACTIVE") == {"policy": "ACTIVE", "spins": False}


@pytest.mark.slow   # a fresh interpreter importing torch first
def test_torch_first_is_detected_and_policy_left_alone():
    assert _child("import torch\n" + REPORT) == {"policy": None, "spins": True}
    assert _child("import torch\n" + REPORT, GOMP_SPINCOUNT="0") == {"policy": None, "spins": False}


def test_other_running_threads_counts_a_spinning_process():
    if threads.other_running_threads() is None:
        pytest.skip("no /proc/loadavg")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time
        time.sleep(0.3)
        # The spinner is always runnable, so every snapshot counts it (others may add more).
        assert min(threads.other_running_threads() for _ in range(20)) >= 1
    finally:
        spinner.kill()
        spinner.wait()


@pytest.fixture
def spinning(monkeypatch):
    monkeypatch.setattr(threads, "SPINS_AT_IMPORT", True)
    monkeypatch.delenv("PDEFLOW_AUTO_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def _threads_seen(monkeypatch):
    """Record torch's thread count in each inner solve (of rof, and of each step of tv_flow)."""
    import importlib
    seen = []
    for name in ("pdeflow.tv.rof", "pdeflow.tv.flow"):
        mod = importlib.import_module(name)
        orig = mod.solve
        monkeypatch.setattr(mod, "solve", lambda *a, _orig=orig, **k: (seen.append(torch.get_num_threads()),
                                                                         _orig(*a, **k))[1])
    return seen


def test_busy_machine_lowers_threads_during_the_call_and_restores(spinning, monkeypatch):
    seen = _threads_seen(monkeypatch)
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    tv_flow(torch.rand(1, 1, 16, 16, dtype=torch.float64), [0.02], dt=0.01)  # nested rof calls
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 4
    monkeypatch.setattr(threads, "free_cores", lambda: 3)
    rof(torch.rand(16, 16, dtype=torch.float64), 0.1)
    assert seen[-1] == 3 and torch.get_num_threads() == 4


def test_idle_machine_or_switch_off_keeps_threads(spinning, monkeypatch):
    seen = _threads_seen(monkeypatch)
    monkeypatch.setattr(threads, "free_cores", lambda: 8)  # never raised above the user's 4
    rof(torch.rand(16, 16, dtype=torch.float64), 0.1)
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    monkeypatch.setenv("PDEFLOW_AUTO_THREADS", "0")
    rof(torch.rand(16, 16, dtype=torch.float64), 0.1)
    monkeypatch.setattr(threads, "SPINS_AT_IMPORT", False)
    monkeypatch.delenv("PDEFLOW_AUTO_THREADS")
    rof(torch.rand(16, 16, dtype=torch.float64), 0.1)
    assert seen == [4, 4, 4]


def test_threads_restored_after_an_error(spinning, monkeypatch):
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    with pytest.raises(ValueError):
        rof(torch.rand(16, 16, dtype=torch.float64), -1.0)
    assert torch.get_num_threads() == 4
