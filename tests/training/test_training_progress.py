"""Training that shows itself: off a terminal, ``Run.steps`` prints a line every N steps and one per
validation; warnings raised inside the loop are counted and reported once per site at the end."""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import pytest
import torch

from pdeflow.training import Run
from pdeflow.training import run as run_module
from pdeflow.tv import ConvergenceWarning, rof


@dataclass
class Cfg:
    lr: float = 0.1


def tiny_train(run_dir, *, quiet=False, progress_every=5, real_solver=False, steps=10):
    """Fit one weight w to 2 with a validation every 5 steps; each step raises the reference solver's
    ConvergenceWarning (a real ROF solve stopped at its cap, or a stand-in), step 3 also a UserWarning."""
    w = torch.nn.Parameter(torch.zeros(()))
    opt = torch.optim.SGD([w], lr=0.1)
    run = Run(run_dir, Cfg(), models={"w": torch.nn.ParameterList([w])}, optimizers={"opt": opt},
              ckpt_every=100, best_mode="min", quiet=quiet, progress_every=progress_every)
    start = run.resume()
    f = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for step in run.steps(start, steps):
        if real_solver:
            rof(f, 0.5, max_iter=2, tol=1e-4, check_every=1)  # above float32 round-off: one warning, at the cap
        else:
            warnings.warn(f"rof: stopped at max_iter in step {step}", ConvergenceWarning)
        if step == 3:
            warnings.warn("something else", UserWarning)
        loss = (w - 2) ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log(step, loss=loss, data=loss / 2)
        if run.validation_due(step, 5):
            run.log_validation(step, {"val_err": float(abs(w.detach() - 2))}, key="val_err")
    run.finish()
    return run


def test_off_a_terminal_one_line_per_n_steps_and_per_validation(tmp_path, capsys):
    tiny_train(tmp_path / "r")
    err = capsys.readouterr().err.splitlines()
    steps = [line for line in err if re.match(r"r: step \d+/10 ", line)]
    assert [line.split()[2] for line in steps] == ["5/10", "10/10"]
    assert re.fullmatch(r"r: step 5/10 \(50%\) loss \S+ data \S+ \| \S+ steps/s, ETA \S+, 6 warnings so far "
                        r"\(summary at the end\)", steps[0])
    assert "val_err" not in steps[0] and steps[1].split()[3] == "(100%)"
    vals = [line for line in err if "validation" in line]
    assert vals == [f"r: validation after step 5/10: val_err {abs(0.8 ** 5 * 2):.4g} (new best)",
                    f"r: validation after step 10/10: val_err {abs(0.8 ** 10 * 2):.4g} (new best)"]
    # the loss logged for step 5 (index 4) is the one shown
    loss5 = float(steps[0].split()[5])
    assert loss5 == pytest.approx((2 * 0.8 ** 4) ** 2, rel=1e-3)


def test_warnings_in_the_loop_are_reported_once_per_site_with_a_count(tmp_path, capsys):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        tiny_train(tmp_path / "r")
    assert seen == []                                   # none shown one by one
    err = capsys.readouterr().err.splitlines()
    summary = [line for line in err if "raised" in line]
    assert summary == ["r: ConvergenceWarning raised 10 times during training (first in step 1): "
                       "rof: stopped at max_iter in step 0",
                       "r: UserWarning raised 1 time during training (first in step 4): something else"]
    with pytest.warns(UserWarning, match="after the loop"):    # the filters are restored afterwards
        warnings.warn("after the loop", UserWarning)


def test_the_real_solvers_convergence_warning_is_counted(tmp_path, capsys):
    with pytest.warns(ConvergenceWarning):             # the stand-in is faithful: rof does warn here
        rof(torch.rand(1, 1, 8, 8), 0.5, max_iter=2, tol=1e-4, check_every=1)
    tiny_train(tmp_path / "r", real_solver=True, steps=6, progress_every=3)
    err = capsys.readouterr().err
    assert re.search(r"r: ConvergenceWarning raised 6 times during training \(first in step 1\): ", err)
    assert err.count("ConvergenceWarning") == 1


def test_default_interval_is_a_twentieth_of_the_run(tmp_path, capsys):
    tiny_train(tmp_path / "r", progress_every=None, steps=40)
    steps = [line for line in capsys.readouterr().err.splitlines() if re.match(r"r: step ", line)]
    assert [line.split()[2] for line in steps] == [f"{k}/40" for k in range(2, 41, 2)]


def test_on_a_terminal_the_bar_shows_progress_and_validations_still_print(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(run_module, "_isatty", lambda stream: True)
    tiny_train(tmp_path / "r")
    err = capsys.readouterr().err
    assert not re.search(r"r: step \d+/10 \(", err)
    assert "r: validation after step 5/10" in err and "ConvergenceWarning raised 10 times" in err


def test_quiet_prints_only_the_warning_summary(tmp_path, capsys):
    """--quiet: no progress or validation lines, and a warning raised in every step is still said once."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        tiny_train(tmp_path / "r", quiet=True)
    assert seen == []
    assert capsys.readouterr().err.splitlines() == [
        "r: ConvergenceWarning raised 10 times during training (first in step 1): rof: stopped at max_iter in step 0",
        "r: UserWarning raised 1 time during training (first in step 4): something else"]


def test_a_resumed_run_reports_from_where_it_resumes(tmp_path, capsys):
    tiny_train(tmp_path / "r", steps=6, progress_every=3)
    capsys.readouterr()
    tiny_train(tmp_path / "r", steps=9, progress_every=3)          # resumes at step 6
    err = capsys.readouterr().err
    assert [line.split()[2] for line in err.splitlines() if line.startswith("r: step ")] == ["9/9"]
    assert "r: ConvergenceWarning raised 3 times" in err and "UserWarning" not in err


def test_progress_every_is_checked(tmp_path):
    from pdeflow.errors import UserInputError

    with pytest.raises(UserInputError, match="progress_every"):
        Run(tmp_path / "r", Cfg(), models={}, progress_every=0)


@pytest.mark.filterwarnings("ignore::pdeflow.tv.ConvergenceWarning")   # the validation set's, before the loop
def test_a_real_trainer_off_a_terminal(tmp_path, capsys):
    """`pdeflow train tvflownet` (4 tiny steps, supervised with references cut short so that the solver
    warns in every step): the progress lines, the validations, one warning line with its count."""
    from pdeflow.cli import main

    assert main(["train", "tvflownet", "--run-dir", str(tmp_path / "tv"), "--steps", "4", "--crop", "32",
                 "--batch-size", "2", "--val-every", "2", "--val-crops", "1", "--val-size", "32",
                 "--val-max-iter", "5", "--ref-max-iter", "2", "--arch", "semiresnet",
                 "--arch-kwargs", '{"width": 4, "depth": 3}']) == 0
    err = capsys.readouterr().err.splitlines()
    steps = [line for line in err if line.startswith("tv: step ")]
    assert [line.split()[2] for line in steps] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(" loss " in line and " steps/s, ETA " in line for line in steps)
    assert len([line for line in err if line.startswith("tv: validation after step ")]) == 2
    warned = [line for line in err if "Warning" in line]
    assert len(warned) == 1 and re.match(r"tv: ConvergenceWarning raised 4 times during training", warned[0])
