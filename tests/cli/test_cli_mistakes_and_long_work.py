"""The command line's answers to mistakes and to slow or failing work: usage errors in one line, a full disk,
a mask that is not binary, long flows, the PS time estimate and warnings that name the command's flags."""
from __future__ import annotations

import argparse
import errno
import io
import os
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import pdeflow.io
from pdeflow import progress
from pdeflow.cli import build_parser, main
from pdeflow.cli import flow as cli_flow
from pdeflow.inpaint.masks import sparsification
from pdeflow.progress import WorkModel

#: A small, fast flow: the command every output test runs.
FLOW = ["flow", "builtin:skimage/camera", "--size", "16", "--times", "0.01", "0.02"]


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _commands(parser: argparse.ArgumentParser, name: str = "pdeflow"):
    """``[(argv, prog)]`` for the command and every (nested) subcommand."""
    found = [(name.split()[1:], parser.prog)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found += _commands(sub, f"{name} {sub_name}")
    return found


@pytest.mark.parametrize("argv,prog", _commands(build_parser()), ids=lambda v: " ".join(v) if isinstance(v, list)
                         else None)
def test_a_usage_error_is_one_line_with_a_help_hint(capsys, argv, prog):
    assert main([*argv, "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{prog}: error: ") and err[0].endswith(f"; see `{prog} --help`"), err


def test_a_bad_value_names_the_subcommand_and_its_help(capsys):
    assert main(["flow", "--times", "x", "--out", "o"]) == 2
    assert capsys.readouterr().err == ("pdeflow flow: error: argument --times: expected a number >= 0, got 'x' "
                                       "(give IMAGE before the list); see `pdeflow flow --help`\n")


# --------------------------------------------------------------------------- 2. a full disk

def test_a_full_disk_while_writing_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    calls = []

    def second_write_fails(path, *args, **kwargs):      # the first image is written, the second meets a full disk
        calls.append(path)
        if len(calls) == 2:
            _no_space()
        return write_image(path, *args, **kwargs)

    write_image = pdeflow.io.write_image
    monkeypatch.setattr(pdeflow.io, "write_image", second_write_fails)
    out = tmp_path / "out"
    assert main([*FLOW, "--out", str(out)]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"pdeflow flow: error: cannot write '{out}/") and "Traceback" not in err[0]
    assert "No space left on device (ENOSPC)" in err[0]
    assert not out.exists()            # created by this run, so removed with every file in it


def test_a_full_disk_when_committing_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(os, "fsync", _no_space)         # atomic_path flushes each file before its rename
    assert main([*FLOW, "--out", str(out)]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pdeflow flow: error: cannot write '{out}/"), err
    assert "(ENOSPC)" in err[0]
    assert os.listdir(out) == []       # no temporary file, no committed one


def test_a_full_disk_outside_the_outputs_is_one_line(capsys, monkeypatch):
    from pdeflow.cli import samples

    def full(args):                     # as a training run's checkpoint write would meet it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "run/checkpoint.pt")

    monkeypatch.setattr(samples, "_run_samples", full)
    assert main(["samples"]) == 74
    assert capsys.readouterr().err == ("pdeflow samples: error: cannot write 'run/checkpoint.pt': "
                                       "No space left on device (ENOSPC)\n")


def test_the_exit_status_of_a_failed_write_is_documented():
    assert "74 an output file could not" in build_parser().format_help()


# --------------------------------------------------------------------------- 3. a mask that is not binary

@pytest.fixture
def image_and_mask(tmp_path):
    """A 16x16 grey image and a binary mask PNG of it (0 and 255)."""
    rng = np.random.default_rng(0)
    image = tmp_path / "image.png"
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(image)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.where(rng.random((16, 16)) < 0.3, 255, 0).astype(np.uint8)).save(mask)
    return image, mask


def test_inpaint_refuses_a_photograph_as_mask(tmp_path, image_and_mask, capsys):
    image, _ = image_and_mask
    out = tmp_path / "out"
    assert main(["inpaint", str(image), "--mask", str(image), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pdeflow inpaint: error: argument --mask: '{image}' is not a "
                                               "binary mask: expected an image of 0 and 1 only"), err
    assert not out.exists()


def test_inpaint_refuses_a_jpeg_mask_and_says_why(tmp_path, image_and_mask, capsys):
    image, mask = image_and_mask
    jpeg = tmp_path / "mask.jpg"
    Image.open(mask).save(jpeg, quality=95)
    assert main(["inpaint", str(image), "--mask", str(jpeg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --mask" in err[0] and "save it as PNG" in err[0], err


# "L" and "RGB" (the commonest, read as every grey and colour image is) in the slow tier
@pytest.mark.parametrize("mode", [pytest.param(m, marks=pytest.mark.slow) if m in ("L", "RGB") else m
                                  for m in ["L", "1", "RGB", "I;16"]])
def test_inpaint_takes_a_black_and_white_mask_in_any_png_mode(tmp_path, image_and_mask, capsys, mode):
    image, mask = image_and_mask
    converted = tmp_path / f"mask_{mode.replace(';', '')}.png"
    with Image.open(mask) as m:
        known = np.asarray(m) > 0
        (Image.fromarray(known.astype(np.uint16) * 65535) if mode == "I;16" else m.convert(mode)).save(converted)
    assert main(["inpaint", str(image), "--mask", str(converted), "--out", str(tmp_path / "out")]) == 0
    assert f"mask density {known.mean():.4f}" in capsys.readouterr().out


def test_a_start_mask_must_be_binary_too(tmp_path, image_and_mask, capsys):
    image, _ = image_and_mask
    assert main(["mask", str(image), "--density", "0.1", "--method", "ps", "--start-mask", str(image),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --start-mask" in err[0] and "not a binary mask" in err[0], err


def test_inpaint_refuses_a_volume_mask_that_is_not_binary(tmp_path, capsys):
    vol = np.random.default_rng(0).random((6, 8, 8)).astype(np.float32)
    np.save(tmp_path / "vol.npy", vol)
    np.save(tmp_path / "soft.npy", vol)
    assert main(["inpaint", str(tmp_path / "vol.npy"), "--mask", str(tmp_path / "soft.npy"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --mask" in err[0] and "volume of 0 and 1" in err[0], err


# --------------------------------------------------------------------------- 4. long flows

def test_a_flow_shows_a_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(progress, "_columns", lambda stream: 80, raising=False)
    assert main([*FLOW, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "TV flow:" in err and "step/s" in err, err       # tqdm's bar


def test_a_long_flow_writes_progress_lines_in_a_log(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("pdeflow.cli._flow_common.LONG_FLOW_WORK", 1000)   # FLOW's 14 steps of 256 values count as long
    assert main([*FLOW, "--dt", "0.0016", "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    err = err.splitlines()
    assert err[-1].startswith("TV flow: 100% (") and "ETA" in err[-1], err
    # before the bar's first 10 %: the first step's time and the estimate of the whole flow from it
    assert err[0].startswith("TV flow: the first of 14 implicit steps took ") and " in all" in err[0], err
    assert "steps: 14 implicit steps (dt 0.0016)" in out, out  # 12 on the grid, 2 partial


def test_a_flow_says_its_steps_and_the_accuracy_they_buy(tmp_path, capsys):
    from pdeflow.datasets import builtin_image
    from pdeflow.tv.steps import flow_steps

    assert main([*FLOW, "--out", str(tmp_path / "out")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("steps: ")]
    u0 = builtin_image("skimage/camera")                     # FLOW's image: the centre 16 x 16 crop
    c0, c1 = u0.shape[-2] // 2 - 8, u0.shape[-1] // 2 - 8
    crop = u0[..., c0:c0 + 16, c1:c1 + 16]
    plan = flow_steps([0.01, 0.02], data_range=float(crop.max() - crop.min()))
    assert lines == [f"steps: {plan.describe()}"], lines
    # the default: 8e-3 of the range in all, half certified for the solver
    assert plan.accuracy <= 8e-3 * (1 + 1e-12) and plan.solver_accuracy == 4e-3, plan
    assert "estimated" in lines[0] and "certified" in lines[0], lines


def test_a_short_flow_keeps_a_log_quiet(tmp_path, capsys):
    assert main([*FLOW, "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().err == ""


def test_a_terminal_of_unknown_width_gets_progress_lines(capsys, monkeypatch):
    monkeypatch.setattr(progress, "_isatty", lambda stream: True)
    monkeypatch.setattr(progress, "_columns", lambda stream: 0)      # where tqdm would draw nothing
    with progress.progress_bar(total=10, desc="work") as bar:
        bar.update(10)
    assert capsys.readouterr().err.startswith("work: 100% (10/10 it)")


def test_a_long_flow_gets_a_hint_naming_dt(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli_flow, "LONG_FLOW_STEPS", 10)             # FLOW's 13 steps count as long
    monkeypatch.setattr(cli_flow, "_HINT_STEPS", 4)
    assert main([*FLOW, "--dt", "0.0016", "--out", str(tmp_path / "out")]) == 0
    hints = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert hints == ["note: t = 0.02 with --dt 0.0016 is about 13 implicit steps (one ROF solve each) on this "
                     "16x16 image; a larger --dt takes fewer, coarser in time (--dt 0.005: 4 steps)"]


def test_the_hint_of_the_reported_flow(capsys):
    cli_flow._long_flow_hint(2.0, 0.0016, (477, 720))
    assert capsys.readouterr().err == (
        "note: t = 2 with --dt 0.0016 is about 1250 implicit steps (one ROF solve each) on this 477x720 image; "
        "a larger --dt takes fewer, coarser in time (--dt 0.01: 200 steps)\n")
    cli_flow._long_flow_hint(0.5, 0.0016, (477, 720))                 # 313 steps: no hint
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- 5. the PS time estimate

def _ps_run(size=128, density=0.1):
    """The PS schedule of the CLI's default run (p = q = 0.02) and the step times of a synthetic cost model in
    which a step costs in inverse proportion to the known fraction, as measured."""
    n = size * size
    schedule = sparsification.ps_schedule(n, [round(density * n)], 0.02, 0.02)
    return n, schedule, [0.004 * n / c for c in schedule]


def test_the_ps_estimate_is_exact_where_its_model_holds():
    n, schedule, secs = _ps_run()
    model = WorkModel(sparsification.ps_step_costs(schedule, n))
    done = np.cumsum(secs)
    for frac in (0.02, 0.1, 0.5, 0.9):
        k = int(np.searchsorted(done, frac * done[-1])) + 1              # steps done by then
        assert model.eta(k, done[k - 1]) == pytest.approx(done[-1] - done[k - 1], rel=1e-9)


def test_the_old_estimate_by_removed_pixels_was_far_too_short():
    n, schedule, secs = _ps_run()
    done = np.cumsum(secs)
    removed = n - np.array(schedule[1:] + [round(0.1 * n)])                 # pixels removed after each step
    k = int(np.searchsorted(done, 0.1 * done[-1])) + 1
    linear = done[k - 1] * (removed[-1] - removed[k - 1]) / removed[k - 1]
    honest = WorkModel(sparsification.ps_step_costs(schedule, n)).eta(k, done[k - 1])
    assert linear < 0.25 * (done[-1] - done[k - 1]) and honest == pytest.approx(done[-1] - done[k - 1])


@pytest.mark.parametrize("exponent", [0.7, 1.4])
def test_the_ps_estimate_errs_mildly_where_its_model_is_off(exponent):
    n, schedule, _ = _ps_run()
    secs = [(c / n) ** -exponent for c in schedule]                       # costs grow slower or faster
    model = WorkModel(sparsification.ps_step_costs(schedule, n))
    done = np.cumsum(secs)
    for frac in (0.1, 0.5, 0.9):
        k = int(np.searchsorted(done, frac * done[-1])) + 1
        assert 0.5 < model.eta(k, done[k - 1]) / (done[-1] - done[k - 1]) < 1.6


def test_ps_progress_lines_report_the_modelled_time_left(monkeypatch):
    clock = [0.0]
    inpaint_diffusion = sparsification.inpaint_diffusion

    def costed(f, m, **kw):                     # each solve takes the model's time on a synthetic clock
        clock[0] += float(m[0, 0].numel()) / float(m[0, 0].sum())
        return inpaint_diffusion(f, m, **kw)

    monkeypatch.setattr(sparsification, "inpaint_diffusion", costed)
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    f = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    sparsification.ps_mask(f, 0.1, p=0.2, q=0.5, generator=0, progress=True)
    lines = buf.getvalue().splitlines()
    steps = sparsification.ps_steps(144, 0.1, 0.2, 0.5)
    assert lines[0].startswith("PS: ") and f"/{steps} step)" in lines[0], lines
    eta, total = float(lines[0].split("ETA ")[1].split(" s")[0]), clock[0]
    elapsed = float(lines[0].split(", ")[1].split(" s")[0])
    assert eta == pytest.approx(total - elapsed, abs=0.15 * total + 1), lines      # the linear one: far less


def test_ps_cost_scales_one_solve_by_the_modelled_costs(monkeypatch):
    clock = [0.0]
    inpaint_diffusion = sparsification.inpaint_diffusion

    def two_seconds(*args, **kwargs):           # every solve takes 2 s on a synthetic clock
        clock[0] += 2.0
        return inpaint_diffusion(*args, **kwargs)

    monkeypatch.setattr(sparsification, "inpaint_diffusion", two_seconds)
    monkeypatch.setattr(sparsification.time, "perf_counter", lambda: clock[0])
    cost = sparsification.ps_cost(torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)), 0.25, 0.1,
                                  0.5, cycles=1)
    schedule = sparsification.ps_schedule(256, [64], 0.1, 0.5)
    relative = sum(sparsification.ps_step_costs(schedule, 256)) / (256 / 64)
    assert cost["steps"] == len(schedule) and cost["exchanges"] == 64
    assert cost["seconds"] == pytest.approx(2.0 * (relative + 64))
    assert cost["seconds"] < 2.0 * (len(schedule) + 64)       # the old estimate: every step as dear as the last


# --------------------------------------------------------------------------- 6. warnings name the flags

@pytest.fixture
def shown_warnings():
    """Warnings shown the standard way, formatted by ``warnings.formatwarning`` onto stderr (pytest records
    them instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line))
        yield


def test_a_flows_convergence_warning_names_its_flags(tmp_path, capsys, monkeypatch, shown_warnings):
    tv_flow = cli_flow.tv_flow

    def capped(*args, **kwargs):                    # the real solver, stopped at an iteration cap of 2
        return tv_flow(*args, max_iter=2, **kwargs)

    monkeypatch.setattr(cli_flow, "tv_flow", capped)
    assert main([*FLOW, "--tol", "1e-5", "--out", str(tmp_path / "out")]) == 0
    shown = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(shown) == 1 and shown[0].startswith("pdeflow flow: warning: tv_flow: "), shown
    assert "the iteration cap 2 short of --tol 1e-05" in shown[0] and "raise the iteration cap or --tol" in shown[0]
    assert "max_iter" not in shown[0] and "tol=" not in shown[0]


def test_an_inpaintings_solver_warning_names_tol(tmp_path, image_and_mask, capsys, monkeypatch, shown_warnings):
    import dataclasses

    from pdeflow.inpaint import INPAINT_METHODS, inpaint_diffusion

    # the command inpaints through the library's table of methods: its diffusion entry capped at one iteration
    capped = dataclasses.replace(INPAINT_METHODS["diffusion"],
                                 function=lambda *a, **kw: inpaint_diffusion(*a, max_iter=1, **kw),
                                 option_sources=(inpaint_diffusion,))
    monkeypatch.setitem(INPAINT_METHODS, "diffusion", capped)
    image, mask = image_and_mask
    assert main(["inpaint", str(image), "--mask", str(mask), "--tol", "1e-8", "--out", str(tmp_path / "o")]) == 0
    shown = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert shown and shown[0].startswith(
        "pdeflow inpaint: warning: inpaint_diffusion: the iteration cap 1 reached before --tol 1e-08"), shown


def _train_args(*extra):
    return build_parser().parse_args(["train", "tvflownet", "--run-dir", "r", "--ref-tol", "0.002", *extra])


@pytest.mark.parametrize("message,worded", [
    ("tv_flow: 1 of 4 implicit steps stopped at max_iter=50 short of tol=0.002; raise max_iter or tol",
     "tv_flow: 1 of 4 implicit steps stopped at --ref-max-iter 50 short of --ref-tol 0.002; "
     "raise --ref-max-iter or --ref-tol"),
    ("tv_flow: 2 of 9 implicit steps stopped at max_iter=1000 short of tol=0.0001; raise max_iter or tol",
     "tv_flow: 2 of 9 implicit steps stopped at --val-max-iter 1000 short of --val-tol 0.0001; "
     "raise --val-max-iter or --val-tol"),
    ("tv_flow: tol=1e-05 is below the round-off", "tv_flow: --grad-ref-tol 1e-05 is below the round-off"),
    ("rof: atol=1 rtol=2 stays", "rof: atol=1 rtol=2 stays"),          # only whole names are the library's
])
def test_train_tvflownet_words_warnings_with_the_option_whose_value_they_quote(message, worded):
    from pdeflow.cli import cli_wording

    assert cli_wording(message, _train_args()) == worded


def test_a_training_runs_warning_summary_names_the_flags(tmp_path, capsys, monkeypatch):
    from pdeflow.cli import tvflownet as cli_tvflownet
    from pdeflow.training import Run
    from pdeflow.tv import ConvergenceWarning

    def train(cfg, run_dir, **kwargs):              # a trainer whose supervised reference stops at its cap
        w = torch.nn.Parameter(torch.zeros(()))
        run = Run(run_dir, cfg, models={"w": torch.nn.ParameterList([w])},
                  optimizers={"opt": torch.optim.SGD([w], lr=0.1)}, ckpt_every=100, progress_every=100)
        for _ in run.steps(run.resume(), 2):
            warnings.warn(f"tv_flow: 1 of 4 implicit steps stopped at max_iter={cfg.ref_max_iter} short of "
                          f"tol={cfg.ref_tol:g}; raise max_iter or tol", ConvergenceWarning)
        run.finish()
        return run_dir / "none.json"

    monkeypatch.setattr(cli_tvflownet, "train", train)
    assert main(["train", "tvflownet", "--run-dir", str(tmp_path / "r"), "--ref-tol", "0.002", "--steps", "2"]) == 0
    summary = [line for line in capsys.readouterr().err.splitlines() if "raised" in line]
    assert summary == ["r: ConvergenceWarning raised 2 times during training (first in step 1): tv_flow: 1 of 4 "
                       "implicit steps stopped at --ref-max-iter 50 short of --ref-tol 0.002; raise --ref-max-iter "
                       "or --ref-tol"]
