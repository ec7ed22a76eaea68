"""Tests of pdeflow.training: atomic files, configs, resumable runs, best checkpoints,
exported models, DDP on two CPU processes (gloo)."""
from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pdeflow.io import load_model, save_model
from pdeflow.training import (
    CpuClock,
    Run,
    RunConfigError,
    batch_indices,
    check_finite,
    load_checkpoint,
    load_config,
    save_checkpoint,
    save_config,
    seed_everything,
    step_generator,
)

HERE = Path(__file__).resolve().parents[1]
SCRIPT = HERE / "_tiny_trainer.py"
_spec = importlib.util.spec_from_file_location("_tiny_trainer", SCRIPT)
tiny = sys.modules.setdefault("_tiny_trainer", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(tiny)


pytestmark = pytest.mark.usefixtures("torch_globals_restored")


def _log_rows(run_dir: Path, drop=("wall_time",)) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class _Boom:
    def __reduce__(self):
        raise RuntimeError("disk on fire")


# ---------------------------------------------------------------- atomic files

def test_atomic_checkpoint_failure_keeps_old_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"w": torch.arange(5), "step": 1})
    with pytest.raises(RuntimeError, match="disk on fire"):      # fails halfway through pickling
        save_checkpoint(path, {"w": torch.zeros(1000), "bad": _Boom()})
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 1 and torch.equal(ckpt["w"], torch.arange(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]   # no temp file left

    new = tmp_path / "new.pt"                                     # a failed first write leaves nothing
    with pytest.raises(RuntimeError):
        save_checkpoint(new, {"bad": _Boom()})
    assert not new.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_atomic_write_fsyncs_and_survives_failing_fsync(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    save_checkpoint(path, {"step": 2})
    assert calls and load_checkpoint(path)["step"] == 2

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"step": 3})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


# ---------------------------------------------------------------- configs

def test_config_round_trip(tmp_path):
    @dataclasses.dataclass
    class Cfg:
        lr: float = 1e-3
        sizes: tuple[int, ...] = (32, 96)
        name: str = "x"

    save_config(Cfg(lr=0.5), tmp_path / "c.json")
    assert load_config(Cfg, tmp_path / "c.json") == Cfg(lr=0.5)
    (tmp_path / "d.json").write_text(json.dumps({"lr": 1.0, "typo": 3}))
    with pytest.raises(ValueError, match="typo"):
        load_config(Cfg, tmp_path / "d.json")


def test_run_refuses_a_directory_with_a_different_config(tmp_path):
    net = nn.Linear(2, 2)
    Run(tmp_path, tiny.TinyConfig(), models=net, quiet=True)
    Run(tmp_path, tiny.TinyConfig(), models=net, quiet=True)            # same config: fine
    with pytest.raises(RunConfigError, match=r"lr: saved 0\.01, given 0\.5"):
        Run(tmp_path, tiny.TinyConfig(lr=0.5), models=net, quiet=True)
    assert load_config(tiny.TinyConfig, tmp_path / "config.json") == tiny.TinyConfig()   # untouched
    run = Run(tmp_path, tiny.TinyConfig(steps=20), models=net, allow_changed=("steps",), quiet=True)
    assert run.resume() == 0
    assert load_config(tiny.TinyConfig, tmp_path / "config.json").steps == 20


def test_run_resumes_a_directory_written_before_a_config_field_was_added(tmp_path):
    net = nn.Linear(2, 2)
    Run(tmp_path, tiny.TinyConfig(), models=net, quiet=True)
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["lr"]                                   # as if `lr` had been added to the class later
    (tmp_path / "config.json").write_text(json.dumps(saved))
    Run(tmp_path, tiny.TinyConfig(), models=net, quiet=True)            # absent = the default: same run
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == tiny.TinyConfig().lr
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(RunConfigError, match=r"lr: saved 0\.01, given 0\.5"):   # not the default: refused
        Run(tmp_path, tiny.TinyConfig(lr=0.5), models=net, quiet=True)


def _run_steps(run_dir, n, extra):
    run = Run(run_dir, {}, models=nn.Linear(1, 1), extra=extra, ckpt_every=1, quiet=True)
    for _ in run.steps(run.resume(), n):
        sum(i * i for i in range(20000))                # some CPU time
    run.finish()
    return run


def test_cpu_clock_sums_over_resumes_and_tolerates_checkpoints_without_it(tmp_path):
    clock = CpuClock()
    _run_steps(tmp_path / "a", 2, {"cpu": clock})
    first = clock.seconds
    again = CpuClock()
    _run_steps(tmp_path / "a", 4, {"cpu": again})     # resumed: counts on from the saved seconds
    assert again.complete and again.seconds >= first > 0
    assert again.provenance()["cpu_time_s"] >= round(first, 1)
    # a run shorter than 0.05 s of CPU is not reported as 0 s
    quick = CpuClock()
    quick.load_state_dict({"cpu_seconds": 0.0123})
    assert 0.0123 <= quick.provenance()["cpu_time_s"] < 0.05
    # a run checkpointed before the trainer had a clock: resumable, the clock counts from there
    _run_steps(tmp_path / "b", 2, {})
    late = CpuClock()
    _run_steps(tmp_path / "b", 4, {"cpu": late})
    assert not late.complete and late.from_step == 2
    prov = late.provenance()
    assert prov["cpu_time_s"] is None and prov["cpu_time_s_since_step"][0] == 2
    # only extras marked optional may be missing
    class Counter:
        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass
    with pytest.raises(RuntimeError, match="holds extra"):
        Run(tmp_path / "b", {}, models=nn.Linear(1, 1), extra={"cpu": CpuClock(), "n": Counter()},
            quiet=True).resume()


# ---------------------------------------------------------------- step data

def test_step_generator_and_batch_indices_are_pure_functions():
    draw = lambda *a: torch.rand(4, generator=step_generator(*a))  # noqa: E731
    assert torch.equal(draw(0, 5, 0), draw(0, 5, 0))
    assert not torch.equal(draw(0, 5, 0), draw(0, 5, 1))    # ranks differ
    assert not torch.equal(draw(0, 5, 0), draw(0, 6, 0))    # steps differ
    assert not torch.equal(draw(0, 5, 0), draw(1, 5, 0))    # seeds differ
    # one epoch = 3 global batches of 2 x 2 over 13 items, without replacement, same on re-call
    epoch = torch.cat([batch_indices(13, 2, s, seed=0, rank=r, world_size=2) for s in range(3) for r in range(2)])
    assert len(set(epoch.tolist())) == 12
    assert torch.equal(batch_indices(13, 2, 4, seed=0, rank=1, world_size=2),
                       batch_indices(13, 2, 4, seed=0, rank=1, world_size=2))
    with pytest.raises(ValueError, match="smaller than one global batch"):
        batch_indices(3, 2, 0, seed=0, world_size=2)


# ---------------------------------------------------------------- resume

def test_resume_after_kill_is_bit_identical(tmp_path):
    cfg = tiny.TinyConfig()                      # 10 steps, last.pt every 4, validation every 3
    ref = tiny.train(tmp_path / "full", cfg).state_dict()

    # stop before step 7: last.pt holds step 4, rows 0..5 are on disk, best.pt from step 5
    tiny.train(tmp_path / "resumed", cfg, stop_at=7)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 4
    assert [r["step"] for r in _log_rows(tmp_path / "resumed")] == [str(s) for s in range(6)]
    resumed = tiny.train(tmp_path / "resumed", cfg).state_dict()

    _assert_same_weights(ref, resumed)
    rows = _log_rows(tmp_path / "resumed")
    assert rows == _log_rows(tmp_path / "full")
    assert [r["step"] for r in rows] == [str(s) for s in range(10)]          # no duplicates
    assert [r["val"] != "" for r in rows] == [(s + 1) % 3 == 0 for s in range(10)]
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(tmp_path / "full" / name), load_checkpoint(tmp_path / "resumed" / name)
        assert a["step"] == b["step"] and a["best"] == b["best"]
        _assert_same_weights(a["models"]["net"], b["models"]["net"])
        _assert_same_weights(a["optimizers"]["opt"]["state"][0], b["optimizers"]["opt"]["state"][0])

    # resuming a finished run does nothing more
    again = tiny.train(tmp_path / "resumed", cfg).state_dict()
    _assert_same_weights(ref, again)
    assert _log_rows(tmp_path / "resumed") == rows


@pytest.mark.slow   # a training subprocess killed with SIGKILL; the in-process kill test stays in make test
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    """A real kill (SIGKILL mid-run in a separate process), then the same command again."""
    cfg = tiny.TinyConfig()
    ref = tiny.train(tmp_path / "full", cfg).state_dict()
    cmd = [sys.executable, str(SCRIPT), str(tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(cmd + ["--kill-at", "6"], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _assert_same_weights(ref, load_checkpoint(tmp_path / "run" / "last.pt")["models"]["net"])
    assert _log_rows(tmp_path / "run") == _log_rows(tmp_path / "full")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "config.json", "last.pt", "log.csv"]


# ---------------------------------------------------------------- best checkpoint

@pytest.mark.parametrize("mode", ["min", "max"])
def test_best_checkpoint_tracking(tmp_path, mode):
    net = nn.Linear(1, 1, bias=False)
    run = Run(tmp_path, {"mode": mode}, models={"net": net}, best_mode=mode, ckpt_every=100, quiet=True)
    start = run.resume()
    metrics = [3.0, 1.0, 2.0, float("nan"), 0.5, 4.0]
    improved = []
    for step in run.steps(start, len(metrics)):
        with torch.no_grad():
            net.weight.fill_(step)
        improved.append(run.update_best(step, torch.tensor(metrics[step])))
    run.finish()
    if mode == "min":
        assert improved == [True, True, False, False, True, False]
        best_step = 4
    else:
        assert improved == [True, False, False, False, False, True]
        best_step = 5
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["best"] == {"metric": metrics[best_step], "step": best_step, "mode": mode}
    assert best["step"] == best_step + 1 and best["models"]["net"]["weight"].item() == best_step
    # the best so far survives a resume
    run2 = Run(tmp_path, {"mode": mode}, models={"net": net}, best_mode=mode, quiet=True)
    assert run2.resume() == len(metrics) and (run2.best, run2.best_step) == (metrics[best_step], best_step)
    with pytest.raises(ValueError, match="best_mode"):
        Run(tmp_path / "x", {}, models=net, best_mode="maximum")


# ---------------------------------------------------------------- log and progress bar

def test_log_merges_a_step_and_grows_columns_and_bar_shows_loss(tmp_path, monkeypatch):
    class FakeTTY(io.StringIO):
        def isatty(self):
            return True
    err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", err)
    run = Run(tmp_path, {}, models=nn.Linear(1, 1))
    for step in run.steps(run.resume(), 3):
        run.log(step, loss=1.0 / (step + 1))
        if step == 1:
            run.log(step, psnr=30.5)
    run.finish()
    assert "loss" in err.getvalue() and "3/3" in err.getvalue()
    rows = _log_rows(tmp_path)
    assert rows == [{"step": "0", "loss": "1.0", "psnr": ""}, {"step": "1", "loss": "0.5", "psnr": "30.5"},
                    {"step": "2", "loss": repr(1 / 3), "psnr": ""}]

    quiet_err = FakeTTY()
    monkeypatch.setattr(sys, "stderr", quiet_err)
    run = Run(tmp_path / "q", {}, models=nn.Linear(1, 1), quiet=True)
    for step in run.steps(run.resume(), 3):
        run.log(step, loss=1.0)
    assert quiet_err.getvalue() == ""


def test_steps_requires_resume(tmp_path):
    run = Run(tmp_path, {}, models=nn.Linear(1, 1), quiet=True)
    with pytest.raises(RuntimeError, match="resume"):
        next(iter(run.steps(0, 3)))


# ---------------------------------------------------------------- exported models

def test_export_import_round_trip(tmp_path):
    seed_everything(0)
    net = tiny.TinyNet()
    ws, js = save_model(net, tmp_path / "tiny", config={"width": 4}, provenance={"steps": 10})
    assert (ws.name, js.name) == ("tiny.safetensors", "tiny.json")
    for p in (tmp_path / "tiny", ws, js):
        state, meta = load_model(p)
        _assert_same_weights(net.state_dict(), state)
    assert meta["config"] == {"width": 4} and meta["provenance"]["steps"] == 10
    assert "torch_version" in meta["provenance"]
    fresh = tiny.TinyNet()
    fresh.load_state_dict(state)
    x = torch.rand(1, 1, 8, 8)
    assert torch.equal(fresh.eval()(x), net.eval()(x))
    seed_everything(1)
    save_model(tiny.TinyNet(), tmp_path / "other", config={}, provenance={})
    os.replace(tmp_path / "other.safetensors", ws)                       # weights of another export
    with pytest.raises(ValueError, match="checksum"):
        load_model(tmp_path / "tiny")


# ---------------------------------------------------------------- DDP

@pytest.mark.slow   # two DDP processes
def test_ddp_two_cpu_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(SCRIPT), str(tmp_path), "--ddp"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    written = sorted(p.name for p in tmp_path.glob("report_rank*.json"))
    assert proc.returncode == 0, f"reports written: {written}\n" + proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"report_rank{r}.json").read_text()) for r in range(2)]
    weights = [torch.load(tmp_path / f"weights_rank{r}.pt") for r in range(2)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [r["mean_of_rank"] for r in reports] == [0.5, 0.5]              # reduce_mean
    assert reports[0]["batches"] != reports[1]["batches"]                   # each rank its own data
    assert reports[1]["writes"] == [] and reports[0]["writes"]              # only rank 0 writes
    for w in weights[1:]:                                                   # ranks agree...
        _assert_same_weights(weights[0]["full"], w["full"])
        _assert_same_weights(weights[0]["resumed"], w["resumed"])
    _assert_same_weights(weights[0]["full"], weights[0]["resumed"])         # ...and resume is exact
    last = load_checkpoint(tmp_path / "full" / "last.pt")
    _assert_same_weights(weights[0]["full"], last["models"]["net"])
    assert last["world_size"] == 2 and len(last["rng"]) == 2
    for d in ("full", "resumed"):
        assert sorted(p.name for p in (tmp_path / d).iterdir()) == ["best.pt", "config.json", "last.pt", "log.csv"]
        assert [r["step"] for r in _log_rows(tmp_path / d)] == [str(s) for s in range(10)]
    assert _log_rows(tmp_path / "full") == _log_rows(tmp_path / "resumed")


def test_run_removes_temp_files_of_a_killed_write_and_tensorboard_is_optional(tmp_path):
    (tmp_path / ".last.pt.0123abcd.tmp").write_bytes(b"half a checkpoint")
    run = Run(tmp_path, {}, models=nn.Linear(1, 1), quiet=True, tensorboard=True)
    assert not (tmp_path / ".last.pt.0123abcd.tmp").exists()
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.warns(UserWarning, match="tensorboard"):
            start = run.resume()
    else:
        start = run.resume()
    for step in run.steps(start, 2):
        run.log(step, loss=1.0)
    run.finish()
    assert (tmp_path / "tb").exists() == (importlib.util.find_spec("tensorboard") is not None)
    assert [r["step"] for r in _log_rows(tmp_path)] == ["0", "1"]


def test_check_finite_names_the_step_and_the_values():
    check_finite(3, loss=1.0, mae=torch.tensor(0.5))          # finite: nothing happens
    with pytest.raises(FloatingPointError, match=r"diverged at step 7 \(loss nan, mae 0.5\).*kept: use less lr"):
        check_finite(7, "use less lr", loss=float("nan"), mae=0.5)
    with pytest.raises(FloatingPointError, match="critic -inf"):
        check_finite(0, critic=torch.tensor(float("-inf")))
