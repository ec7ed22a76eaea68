"""tv_flow without ``dt``: steps chosen from ``accuracy`` that land on the requested times, what they buy, and
the time it says before a long flow."""
import math

import pytest
import torch

from pdeflow.datasets import builtin_image, plateau_1d
from pdeflow.errors import UserInputError
from pdeflow.tv import tv_flow
from pdeflow.tv.steps import STEP_ACCURACY, TIME_SHARE, flow_steps


@pytest.fixture(scope="module")
def photo():
    """A 40 x 40 crop of a photograph in [0, 1], float64."""
    return builtin_image("skimage/camera", grey=True)[:, 180:220, 200:240].double()


def test_the_steps_land_on_the_times_and_grow_later():
    s = flow_steps([0.1, 0.5, 2.0])
    assert [round(sum(h), 12) for h in s.steps] == [0.1, 0.4, 1.5]          # each interval exactly
    assert s.n_steps == sum(len(h) for h in s.steps)
    assert s.steps[0][0] < s.steps[1][0] < s.steps[2][0] == s.dt           # longer steps later
    assert s.solver_accuracy == pytest.approx((1 - TIME_SHARE) * STEP_ACCURACY)
    assert s.time_error <= TIME_SHARE * STEP_ACCURACY * (1 + 1e-12)
    assert s.accuracy == pytest.approx(s.time_error + s.solver_accuracy)
    line = s.describe()
    assert line.startswith(f"{s.n_steps} implicit steps (dt up to {s.dt:.3g}); RMS error about ") and \
        "estimated" in line and "certified" in line, line


def test_a_tighter_accuracy_takes_more_steps_and_a_time_zero_none():
    loose, tight = flow_steps([0.0, 0.5], accuracy=8e-3), flow_steps([0.0, 0.5], accuracy=1e-3)
    assert loose.steps[0] == () and tight.steps[0] == ()
    assert tight.n_steps > loose.n_steps >= 1 and tight.time_error < loose.time_error


def test_an_explicit_dt_keeps_its_grid_and_its_solver_accuracy():
    s = flow_steps([0.25, 0.5], dt=0.2, accuracy=1e-3)
    assert s.steps == ((0.2,), (0.2,)) and s.n_steps == 4 and s.dt == 0.2   # two partial steps: 0.05, 0.1
    assert s.solver_accuracy == 1e-3
    assert flow_steps([0.5], dt=0.1).solver_accuracy == 1e-3                # FLOW_ACCURACY, the old default
    assert flow_steps([0.5], dt=0.1, tol=1e-6).accuracy is None


@pytest.mark.parametrize("kwargs", [dict(data_range=0.0), dict(accuracy=2.0), dict(data_range=float("nan"))])
def test_bad_input_names_the_argument(kwargs):
    with pytest.raises(UserInputError, match=next(iter(kwargs))):
        flow_steps([0.5], **kwargs)


def test_default_steps_are_exact_where_the_flow_is_linear_in_time():
    # Plateaus in 1-D flow linearly in time between their merges: steps landing on the times are exact.
    u0 = plateau_1d(40, [10, 10, 20], [0.0, 1.0, 0.3]).double()
    times = [0.5, 1.0, 1.55]
    u = tv_flow(u0, times, tol=1e-10)
    for i, t in enumerate(times):
        torch.testing.assert_close(u[i, 0, :, 15], torch.full_like(u[i, 0, :, 15], 1.0 - 2 * t / 10), rtol=1e-6,
                                   atol=0)
        torch.testing.assert_close(u[i, 0, :, 30], torch.full_like(u[i, 0, :, 30], 0.3 + t / 20), rtol=1e-6,
                                   atol=0)


def test_the_default_meets_its_accuracy_against_a_fine_reference(photo):
    # The reference: uniform steps of 0.0025 and 0.005 landing on the times, tight float64 solves; implicit
    # Euler's error is first order, so the finer one is off the exact flow by about their difference, which
    # is charged to the default.
    times = [0.05, 0.2]
    rng = float(photo.max() - photo.min())
    ref = tv_flow(photo, times, dt=0.0025, tol=1e-8)
    ref2 = tv_flow(photo, times, dt=0.005, tol=1e-8)
    u = tv_flow(photo.float(), times, accuracy=4e-3)
    plan = flow_steps(times, accuracy=4e-3, data_range=rng)

    def rms(a, b):
        return ((a.double() - b).square().mean(dim=(1, 2, 3)).sqrt() / rng).tolist()

    ref_err = rms(ref2, ref)
    err = rms(u, ref)
    assert all(e + r <= plan.accuracy for e, r in zip(err, ref_err)), (err, ref_err, plan)
    assert max(err) > 0.05 * plan.accuracy, (err, plan)       # the rule is not wildly pessimistic here


def test_float32_gives_the_float64_flow(photo):
    times = [0.05, 0.2]
    u64 = tv_flow(photo, times)
    u32 = tv_flow(photo.float(), times)
    assert u32.dtype == torch.float32
    rng = float(photo.max() - photo.min())
    # the same steps (the range is read in the working dtype, float64) and solves; float32 rounding
    assert float((u32.double() - u64).abs().max()) <= 1e-6 * rng


def test_a_long_flow_says_its_time_after_the_first_step(photo, capsys):
    plan = flow_steps([0.3], accuracy=5e-4, data_range=float(photo.max() - photo.min()))
    assert plan.n_steps > 10
    tv_flow(photo, [0.3], accuracy=5e-4, progress=True, tol=1e-4)
    err = capsys.readouterr().err.splitlines()
    first = [line for line in err if "the first of" in line]
    assert len(first) == 1 and first[0].startswith(f"TV flow: the first of {plan.n_steps} implicit steps took "), err
    assert first[0].endswith(" in all"), first
    assert math.isfinite(float(first[0].split("took ")[1].split(" s")[0]))
