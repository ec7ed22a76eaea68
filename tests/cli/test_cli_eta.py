"""The time estimate ``pdeflow flow`` and ``pdeflow spectral`` print before a long flow starts, and its silence
before a short one."""
from __future__ import annotations

import pytest

import pdeflow.cli._flow_common as flow_common
from pdeflow.cli import flow as cli_flow
from pdeflow.cli import main

#: A small, fast flow (the one of test_cli_mistakes_and_long_work.py), with a --dt of 14 steps.
FLOW = ["flow", "builtin:skimage/camera", "--size", "16", "--times", "0.01", "0.02", "--dt", "0.0016"]
SPECTRAL = ["spectral", "builtin:skimage/camera", "--size", "16", "--dt", "0.01", "--steps", "12"]


def _record_output_at_start(monkeypatch, capsys, module, name):
    """Wrap ``module.name`` (the flow the command runs) to record what the command had printed when it started."""
    seen = {}
    real = getattr(module, name)

    def wrapped(*args, **kwargs):
        out, err = capsys.readouterr()
        seen["out"], seen["err"] = out, err
        print(out, end="")      # give it back to the capture
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return seen


def test_a_long_flow_says_its_estimate_before_it_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(flow_common, "LONG_WORK_SECONDS", 0.0)          # FLOW counts as long
    monkeypatch.setattr(flow_common, "LONG_FLOW_WORK", 1000)            # and reports its first step in a log
    seen = _record_output_at_start(monkeypatch, capsys, cli_flow, "tv_flow")
    assert main([*FLOW, "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    before = [line for line in seen["out"].splitlines() if line.startswith("time: about ")]
    assert len(before) == 1 and "estimated for the 14 steps" in before[0], seen["out"]
    assert seen["out"].index("steps: ") < seen["out"].index("time: about ")
    assert "the first of" not in seen["err"]                             # nothing of the flow's own yet
    assert "TV flow: the first of 14 implicit steps took " in err, err  # refined after the first step, as before


def test_a_long_decomposition_says_its_estimate_before_it_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(flow_common, "LONG_WORK_SECONDS", 0.0)
    seen = _record_output_at_start(monkeypatch, capsys, flow_common, "spectral_tv")
    assert main([*SPECTRAL, "--out", str(tmp_path / "out")]) == 0
    assert "time: about " in seen["out"] and "estimated for the 13 steps" in seen["out"], seen["out"]


@pytest.mark.parametrize("argv", [FLOW, SPECTRAL], ids=["flow", "spectral"])
def test_a_short_run_prints_no_estimate(tmp_path, capsys, argv):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert "time: about" not in capsys.readouterr().out


def test_no_estimate_where_the_rule_does_not_apply(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(flow_common, "LONG_WORK_SECONDS", 0.0)
    assert main([*FLOW, "--tol", "1e-4", "--out", str(tmp_path / "a")]) == 0    # a relative gap, no accuracy
    # fitted to FGP (one step: Chambolle's projection takes thousands of iterations per step)
    one_step = [*FLOW[:4], "--times", "0.01", "--dt", "0.01"]
    assert main([*one_step, "--solver", "chambolle", "--out", str(tmp_path / "b")]) == 0
    assert "time: about" not in capsys.readouterr().out


@pytest.mark.parametrize("secs,words", [(0.4, "about 0.4 s"), (7.3, "about 7 s"), (33, "about 30 s"),
                                        (89, "about 90 s"), (150, "about 2 min"), (1440, "about 20 min")])
def test_the_estimate_has_one_significant_figure(secs, words):
    assert flow_common.about(secs) == words
