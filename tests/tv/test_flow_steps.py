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


# --------------------------------------------------------------------------- the time estimate before a flow

def test_the_iteration_estimate_scales_with_the_steps_and_the_pixels():
    from pdeflow.tv.steps import ITER_CHANNEL_POWER, ITER_LATER_POWER, ITER_POWER, ITER_SCALE, ITER_SIZE_POWER

    one = flow_steps([1.0], dt=0.1, accuracy=1e-3)
    two = flow_steps([2.0], dt=0.1, accuracy=2e-3)              # twice the steps, each to the same accuracy
    assert two.n_steps == 2 * one.n_steps
    # the first ten steps as before; the later ten cheaper than the first ten (they start closer), not free
    first = sum(ITER_SCALE * (0.1 / 1e-4) ** ITER_POWER * 4096 ** ITER_SIZE_POWER * k ** -ITER_LATER_POWER
                for k in range(1, 11))
    assert one.iterations(4096) == pytest.approx(first, rel=1e-9)
    assert 1.5 * one.iterations(4096) < two.iterations(4096) < 2 * one.iterations(4096)
    assert one.iterations(4 * 4096) == pytest.approx(4 ** ITER_SIZE_POWER * one.iterations(4096), rel=1e-12)
    # coupled colour channels take fewer iterations than one grey channel (measured), not more
    assert one.iterations(4096, channels=3) == pytest.approx(3 ** -ITER_CHANNEL_POWER * one.iterations(4096))
    # a tighter accuracy or a larger range-relative step costs more per step; the cap holds
    assert flow_steps([1.0], dt=0.1, accuracy=1e-4).iterations(4096) > one.iterations(4096)
    assert one.iterations(4096, data_range=0.5) > one.iterations(4096)
    assert one.iterations(10 ** 12, max_iter=50) == 50 * one.n_steps
    assert flow_steps([1.0], dt=0.1, tol=1e-4).iterations(4096) is None


def test_the_estimate_in_seconds_is_iterations_times_values_times_the_calibration(monkeypatch):
    import pdeflow.tv.steps as steps

    monkeypatch.setattr(steps, "seconds_per_iteration", lambda x, solver="fgp": 1e-8)
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0], x[0, 0, 1] = 0.0, 1.0                                     # range 1
    plan = flow_steps([1.0], dt=0.1, accuracy=1e-3)
    est = steps.estimate_seconds(plan, x)
    assert est == pytest.approx(plan.iterations(64 * 64, channels=3) * x.numel() * 1e-8, rel=1e-12)
    two = flow_steps([2.0], dt=0.1, accuracy=2e-3)                      # 2x the steps
    assert steps.estimate_seconds(two, x) == pytest.approx(two.iterations(64 * 64) / plan.iterations(64 * 64) * est,
                                                           rel=1e-12)
    assert steps.estimate_seconds(plan, torch.stack([x, x])) == pytest.approx(2 * est, rel=1e-12)   # 2 images
    assert steps.estimate_seconds(plan, x, solver="chambolle") is None     # the rule is FGP's
    assert steps.estimate_seconds(plan, x, compile=True) is None
    assert steps.estimate_seconds(plan, x, spacing=(1.0, 2.0)) is None


def test_the_calibration_is_cheap_and_positive():
    import time

    from pdeflow.tv.steps import seconds_per_iteration

    t0 = time.process_time()
    s = seconds_per_iteration(torch.rand(3, 512, 512))
    assert 0 < s < 1e-5 and time.process_time() - t0 < 1.0


def test_the_iteration_rule_against_the_iterations_a_flow_takes(monkeypatch):
    """The rule's count within the factor of two it claims, on a 64 x 64 area-downsampled photograph (not one of
    the sizes it was fitted at), for the README's flow and a spectral decomposition."""
    import pdeflow.tv.flow as flow_module
    from pdeflow.tv import spectral_tv
    from pdeflow.tv.spectral import spectral_steps

    counts = []
    real = flow_module.solve_auto

    def counting(*args, **kwargs):
        r, short = real(*args, **kwargs)
        counts.append(int(r.iterations.max()))
        return r, short

    monkeypatch.setattr(flow_module, "solve_auto", counting)
    x = torch.nn.functional.avg_pool2d(builtin_image("skimage/camera", grey=True)[None], 8)[0].float()
    x = x[:, :64, :64].contiguous()
    R = float(x.max() - x.min())
    for plan, run in [(flow_steps([0.1, 0.5, 2.0], data_range=R), lambda: tv_flow(x, [0.1, 0.5, 2.0])),
                      (spectral_steps(0.04, 20, data_range=R), lambda: spectral_tv(x, dt=0.04, n_steps=20))]:
        counts.clear()
        run()
        assert len(counts) == plan.n_steps
        assert 0.5 <= plan.iterations(64 * 64, R) / sum(counts) <= 2.0, (plan.iterations(64 * 64, R), counts)
