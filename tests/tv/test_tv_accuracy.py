"""The TV solvers' default accuracy: certified in the data's units, in mixed precision.

A call without ``tol`` stops once the duality gap certifies an RMS error of at most ``accuracy`` times
the data's range; each claim here is checked against a float64 solve to a relative gap of 1e-10.
"""
import functools
import sys

import numpy as np
import pytest
import torch

from pdeflow.datasets import builtin_image
from pdeflow.errors import UserInputError
from pdeflow.ops import div
from pdeflow.tv import ACCURACY, FLOW_ACCURACY, duality_gap, rof, spectral_tv, tv_flow
from pdeflow.tv._accuracy import OWN_PRIMAL, check_cost, check_interval, data_range
from pdeflow.tv._grid import PLAIN
from pdeflow.tv._tied import tied_certificate


def _noisy(n=48, seed=0, scale=1.0):
    f = builtin_image("skimage/camera")[0, 150:150 + n, 200:200 + n].double()
    g = torch.Generator().manual_seed(seed)
    return scale * (f + 0.08 * torch.randn(f.shape, generator=g, dtype=torch.float64))


def _rms(a, b):
    return (a.double() - b.double()).pow(2).mean().sqrt().item()


@functools.lru_cache(maxsize=None)
def _reference(lam):
    return rof(_noisy(scale=3.0), lam, tol=1e-10, max_iter=200000)


@pytest.mark.parametrize("lam", [0.005, 0.05, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_default_rof_error_is_within_the_certified_accuracy(lam, dtype):
    f = _noisy(scale=3.0)
    ref = _reference(lam)
    r = rof(f.to(dtype), lam, full_output=True)
    assert r.u.dtype == dtype and bool(r.converged.all())
    rng = (f.max() - f.min()).item()
    assert _rms(r.u, ref) <= ACCURACY * rng
    if dtype != torch.float64:
        return      # the dual field comes back rounded to float32, which the certificate does not survive
    # the certificate itself, recomputed from the returned image and dual field: sqrt(2 gap / n), the gap of u or
    # of the candidate tied on the dual's flat regions (either bounds the error of u = f + lam div p)
    p = r.p
    p = p / p.norm(dim=2, keepdim=True).clamp_min(1.0)
    lam_t = torch.full((1, 1, 1, 1), lam, dtype=torch.float64)
    own, _ = duality_gap(f[None, None], r.u[None, None], p, lam_t)
    tied, _ = tied_certificate(f[None, None], r.u[None, None], p, lam_t, False, PLAIN)
    assert (2 * min(own.item(), tied.item()) / f.numel()) ** 0.5 <= ACCURACY * rng * (1 + 1e-3)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # ConvergenceWarning: iterates stopped on purpose
@pytest.mark.parametrize("channelwise", [False, True])
def test_the_gap_of_the_duals_own_primal_bounds_its_squared_error(channelwise):
    # P(u) - P* and D* - D(p) each bound 1/2 ||u - u*||^2 for u = f + lam div p, so the gap bounds ||u - u*||^2
    # (OWN_PRIMAL: the flows' steps stop on it); any other u has only twice the gap. FGP iterates of every age and
    # random feasible fields near and far from the solution, colour, against a float64 solve to 1e-12.
    g = torch.Generator().manual_seed(3)
    f = torch.stack([_noisy(24, seed=4), _noisy(24, seed=5) ** 2, 1 - _noisy(24, seed=6)])[None]
    for lam in (0.02, 0.1, 0.5):
        lam_t = torch.full((1, 1, 1, 1), lam, dtype=torch.float64)
        star = rof(f, lam, tol=1e-13, max_iter=10 ** 6, channelwise=channelwise, full_output=True)
        # the reference's own error, at most the root of its gap
        off = duality_gap(f, star.u, star.p, lam_t, channelwise=channelwise)[0].item() ** 0.5
        fields = [rof(f, lam, tol=1e-30, max_iter=k, channelwise=channelwise, full_output=True,
                      check_every=k).p for k in (1, 2, 4, 8)]
        fields += [star.p.new_zeros(star.p.shape)] + [
            star.p + s * torch.randn(star.p.shape, generator=g, dtype=torch.float64) for s in (0.01, 0.1, 1.0)]
        for p in fields:
            norm = p.norm(dim=2, keepdim=True) if channelwise else p.norm(dim=(1, 2), keepdim=True)
            p = p / norm.clamp_min(1.0)
            u = f + lam * div(p)
            gap = duality_gap(f, u, p, lam_t, channelwise=channelwise)[0].item()
            assert gap > 1e6 * off ** 2       # the reference resolves this field's error
            assert (max((u - star.u).norm().item() - off, 0.0)) ** 2 <= gap * OWN_PRIMAL / 2


def test_accuracy_is_per_image_in_a_batch_and_one_argument_away():
    f = torch.stack([_noisy(seed=1), 10 * _noisy(seed=2)])[:, None].float()
    lam = torch.tensor([0.05, 0.5])
    for accuracy in (1e-2, 1e-4):
        u = rof(f, lam, accuracy=accuracy)
        for b in range(2):
            ref = rof(f[b, 0].double(), lam[b].item(), tol=1e-10, max_iter=200000)
            assert _rms(u[b, 0], ref) <= accuracy * (f[b].max() - f[b].min()).item()


@pytest.mark.slow   # make test keeps volumes' certificate through the coarse-start batch below
def test_volumes_get_the_same_certificate():
    v = torch.stack([_noisy(16, seed=s) for s in range(4)]).float()     # (4, 16, 16) as a volume
    ref = rof(v.double(), 0.1, ndim=3, tol=1e-7, max_iter=200000)   # its error is ~50x below ACCURACY
    u = rof(v, 0.1, ndim=3)
    assert _rms(u, ref) <= ACCURACY * (v.max() - v.min()).item()


def test_mixed_precision_reaches_tolerances_float32_cannot():
    f = _noisy(32).float()
    r = rof(f, 0.1, tol=1e-9, full_output=True, max_iter=100000)
    assert bool(r.converged.all()) and r.gap.item() <= 1e-9
    assert r.p.norm(dim=2).max().item() <= 1 + 1e-6       # feasible (rounded to float32 on the way out)


def test_a_default_call_with_a_gradient_solves_tightly():
    # the derivative reads which pixels are flat: the default call switches to tol 1e-6 where it is asked for
    f = _noisy(24).requires_grad_()
    rof(f, 0.1).sum().backward()
    g_default = f.grad.clone()
    f.grad = None
    rof(f, 0.1, tol=1e-6).sum().backward()
    assert torch.equal(g_default, f.grad)


@pytest.mark.parametrize("accuracy", [0.0, 1.0, -1e-3, "high", True])
def test_bad_accuracy_is_refused_with_its_name(accuracy):
    with pytest.raises(UserInputError, match="^accuracy must be a number in"):
        rof(_noisy(8), 0.1, accuracy=accuracy)
    with pytest.raises(UserInputError, match="^accuracy must be a number in"):
        tv_flow(_noisy(8), [0.1], dt=0.05, accuracy=accuracy)


@pytest.mark.parametrize("dt", [0.01, 0.05])
# float64 in the slow tier: float32 is what users pass, and the harder case for the certificate
@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.float64, marks=pytest.mark.slow)])
def test_default_flow_frames_are_within_the_certified_accuracy(dtype, dt):
    # the steps stop on the tied candidate's gap where it certifies first (more often at the larger step)
    u0 = _noisy(32).to(dtype)
    times = [0.1, 0.2] if dt > 0.01 else [0.02, 0.05, 0.1]
    # (a relative gap of 1e-8 per step: a reference error far below the default's)
    ref = tv_flow(u0.double(), times, dt=dt, tol=1e-10 if dt <= 0.01 else 1e-8, max_iter=200000)
    u = tv_flow(u0, times, dt=dt)
    assert u.dtype == dtype
    rng = (u0.max() - u0.min()).item()
    for k in range(len(times)):
        assert _rms(u[k], ref[k]) <= FLOW_ACCURACY * rng


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spectral_default_frames_are_certified_and_reconstruct(dtype):
    u0 = _noisy(24).to(dtype)
    s = spectral_tv(u0, dt=0.02, n_steps=6)
    ref = spectral_tv(u0.double(), dt=0.02, n_steps=6, tol=1e-10, max_iter=200000)
    assert torch.allclose(s.reconstruct().double(), u0.double(), atol=1e-5)
    # the residual is a combination of the last two frames: (N+1) u_N - N u_{N+1}
    rng = (u0.max() - u0.min()).item()
    assert _rms(s.residual, ref.residual) <= (2 * 6 + 1) * FLOW_ACCURACY * rng


def test_a_long_step_does_not_hold_later_steps_of_a_flow_at_its_count(monkeypatch):
    # Each implicit step's first gap check is placed from the previous step's iteration count.  A step whose
    # float32 iterations ran to their round-off floor (then a few in float64) took ~2170 iterations; placing
    # the next check just below that count made every later step take as many (108k FGP iterations here
    # before the fix, 18k after).  Counted through the FGP step, not timed.
    import importlib

    from pdeflow.datasets import builtin_image
    from pdeflow.tv import spectral_tv

    estimates = importlib.import_module("pdeflow.tv._rof_methods").STEP_ESTIMATES
    estimate = estimates["fgp"]      # every step of a solve with step estimates, and their count
    calls = [0]

    def counted(s, f, lam, channelwise, steps=1):
        calls[0] += steps
        return estimate(s, f, lam, channelwise, steps)

    monkeypatch.setitem(estimates, "fgp", counted)
    f = builtin_image("skimage/camera")[0, 100:116, 150:166].contiguous()
    spectral_tv(f, dt=0.04, n_steps=50)
    assert 0 < calls[0] < 40000, calls[0]



@pytest.mark.slow   # converged references for four 64 px images
def test_a_batch_across_the_coarse_start_threshold_is_right_in_float32_and_float64():
    # 64 px: the half-size start applies; lam below and above COARSE_LAM times the range in one batch (the
    # images below it start from zero), up to a large lam
    from pdeflow.tv.rof import COARSE_LAM
    f = torch.stack([_noisy(64, seed=s) for s in range(4)])[:, None]
    rng = f.amax(dim=(1, 2, 3)) - f.amin(dim=(1, 2, 3))
    lam = torch.stack([0.2 * COARSE_LAM * rng[0], 0.9 * COARSE_LAM * rng[1], 1.5 * COARSE_LAM * rng[2],
                       torch.tensor(0.3, dtype=torch.float64)])
    refs = [rof(f[b, 0], lam[b].item(), tol=1e-9, max_iter=200000) for b in range(4)]
    answers = {}
    for dtype in (torch.float32, torch.float64):
        r = rof(f.to(dtype), lam.to(dtype), full_output=True)
        assert r.u.dtype == dtype and bool(r.converged.all())
        for b in range(4):
            assert _rms(r.u[b, 0], refs[b]) <= ACCURACY * rng[b].item()
            assert _rms(rof(f[b, 0].to(dtype), lam[b].item()), refs[b]) <= ACCURACY * rng[b].item()
        answers[dtype] = r.u
    assert _rms(answers[torch.float32], answers[torch.float64]) <= 2 * ACCURACY * rng.max().item()


@pytest.mark.slow   # solves to round-off in three precisions; test_rof's float32 gradient stays in make test
@pytest.mark.parametrize("lam", [0.02, 0.3])
def test_gradients_across_the_coarse_start_threshold_agree_in_float32_and_float64(lam):
    # a default call with a gradient solves to tol 1e-6 in mixed precision (from the half-size start where lam
    # is large): the same derivative from float32 and float64 data, and from a solve in float64 throughout
    # that starts from zero
    f = _noisy(64, seed=3)
    w = torch.randn(f.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = {}
    for name, dtype, precision in (("32", torch.float32, "auto"), ("64", torch.float64, "auto"),
                                   ("64 throughout", torch.float64, "float64")):
        x = f.to(dtype).clone().requires_grad_()
        (rof(x, lam, precision=precision) * w.to(dtype)).sum().backward()
        grads[name] = x.grad.double()
    scale = grads["64"].norm().item()
    assert (grads["32"] - grads["64"]).norm().item() <= 1e-4 * scale
    assert (grads["64 throughout"] - grads["64"]).norm().item() <= 1e-2 * scale


@pytest.mark.slow   # converged references on grids with spacings and volumes
@pytest.mark.parametrize("ndim, spacing", [(3, None), (2, (1.0, 0.5))])
def test_volumes_and_spacings_start_from_the_coarse_grid_and_keep_their_accuracy(monkeypatch, ndim, spacing):
    # the coarse start on a grid other than the 2-D unit one: the same lam on twice the spacing, at every level;
    # the default answer stays within its certified RMS error of a tight float64 solve from zero, in both dtypes
    import importlib

    from pdeflow.datasets import shepp_logan_3d

    R = importlib.import_module("pdeflow.tv.rof")
    monkeypatch.setattr(R, "COARSEST", 4)           # levels at this test's small size (16 -> 8 -> 4)
    grids, real = [], R.coarse_start
    monkeypatch.setattr(R, "coarse_start", lambda f, lam, cw, grid: grids.append(grid) or real(f, lam, cw, grid))
    g = torch.Generator().manual_seed(0)
    f = shepp_logan_3d(16, dtype=torch.float64) if ndim == 3 else _noisy(16)
    f = f + 0.08 * torch.randn(f.shape, generator=g, dtype=torch.float64)
    rng, lam = (f.max() - f.min()).item(), 0.2
    ref = rof(f, lam, ndim=ndim, spacing=spacing, tol=1e-8, max_iter=10**6)     # RMS within 1/10 of ACCURACY
    for dtype in (torch.float32, torch.float64):
        grids.clear()
        r = rof(f.to(dtype), lam, ndim=ndim, spacing=spacing, full_output=True)
        assert r.u.dtype == dtype and bool(r.converged.all())
        assert _rms(r.u, ref) <= ACCURACY * rng
        h = (1.0,) * ndim if spacing is None else spacing
        assert [gr.spacing for gr in grids] == [h, tuple(2 * x for x in h)]      # the grids of the two finer levels


def _coarse_volume(monkeypatch, seed=0):
    """A noisy 16^3 phantom (float64), with the coarse start's size threshold lowered so that it runs here."""
    import importlib

    from pdeflow.datasets import shepp_logan_3d

    monkeypatch.setattr(importlib.import_module("pdeflow.tv.rof"), "COARSEST", 4)
    g = torch.Generator().manual_seed(seed)
    v = shepp_logan_3d(16, dtype=torch.float64)
    return v + 0.08 * torch.randn(v.shape, generator=g, dtype=torch.float64)


def test_a_volume_batch_across_the_coarse_start_threshold_agrees_in_float32_and_float64(monkeypatch):
    # lam below the threshold (from zero), above it and large, in one batch of volumes: both dtypes certify the
    # default accuracy, so their answers lie within twice it of each other
    f = torch.stack([_coarse_volume(monkeypatch, seed=s) for s in range(3)])[:, None]
    lam = torch.tensor([0.02, 0.2, 0.5], dtype=torch.float64)
    rng = (f.amax(dim=(1, 2, 3, 4)) - f.amin(dim=(1, 2, 3, 4))).max().item()
    answers = {}
    for dtype in (torch.float32, torch.float64):
        r = rof(f.to(dtype), lam.to(dtype), ndim=3, full_output=True)
        assert r.u.dtype == dtype and bool(r.converged.all())
        answers[dtype] = r.u.double()
    for b in range(3):
        assert _rms(answers[torch.float32][b], answers[torch.float64][b]) <= 2 * ACCURACY * rng


@pytest.mark.slow   # volume solves in three precisions; the 2-D test above keeps the coarse start's gradient
@pytest.mark.parametrize("lam", [0.02, 0.3])
def test_volume_gradients_across_the_coarse_start_threshold_agree_in_float32_and_float64(monkeypatch, lam):
    # as the 2-D test above, on a volume: float32 and float64 data (mixed precision, from the coarse start where lam
    # is large) give the derivative of a float64 solve from zero
    f = _coarse_volume(monkeypatch, seed=3)
    w = torch.randn(f.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = {}
    for name, dtype, precision in (("32", torch.float32, "auto"), ("64", torch.float64, "auto"),
                                   ("64 throughout", torch.float64, "float64")):
        x = f.to(dtype).clone().requires_grad_()
        (rof(x, lam, ndim=3, precision=precision) * w.to(dtype)).sum().backward()
        grads[name] = x.grad.double()
    scale = grads["64"].norm().item()
    assert (grads["32"] - grads["64"]).norm().item() <= 1e-4 * scale
    assert (grads["64 throughout"] - grads["64"]).norm().item() <= 1e-2 * scale


def test_the_range_behind_accuracy_is_each_images_max_minus_min_in_float32_and_float64():
    """``accuracy`` is relative to each image's max - min: float32 within rounding of float64."""
    g = torch.Generator().manual_seed(3)
    for shape in [(1, 24, 31), (4, 1, 9, 10), (2, 1, 5, 6, 7)]:
        f64 = torch.randn(shape, generator=g, dtype=torch.float64) * torch.logspace(-3, 3, shape[0]).view(
            (-1,) + (1,) * (len(shape) - 1))
        want = f64.reshape(shape[0], -1).max(1).values - f64.reshape(shape[0], -1).min(1).values
        assert torch.equal(data_range(f64), want)
        r32 = data_range(f64.float())
        assert r32.dtype == torch.float32
        assert torch.allclose(r32.double(), want, rtol=2 * torch.finfo(torch.float32).eps, atol=0)


def test_the_gap_checks_space_out_on_a_falling_gap_and_never_pass_its_target():
    # a gap falling as k ** -2 from 1 at iteration 20 (0.25 at 40) reaches 1e-4 at iteration 2000
    def gap(k):
        return np.array([(20.0 / k) ** 2])
    target, k, last, checks = np.array([1e-4]), 40, 20, 0
    while True:
        n = int(np.max(check_interval(k, gap(k), np.array([last]), gap(last), target, 5)))
        assert 5 <= n <= max(5, k // 10) and k + n <= 2000 + 5
        last, k, checks = k, k + n, checks + 1
        if gap(k) <= target:
            break
    assert k <= 2005 and checks < 80            # checking every 5: 392 checks
    # a rising gap, no earlier check, or early on: every check_every
    rising = check_interval(100, gap(90), np.array([100]), gap(100), target, 5)
    none = check_interval(100, gap(100), np.array([0]), np.zeros(1), target, 5)
    assert rising.tolist() == none.tolist() == [5] and check_interval(40, gap(40), np.array([20]), gap(20),
                                                                         target, 5) == 5


def test_small_images_space_their_checks_by_their_cost_and_stay_certified(monkeypatch, fused_loops):
    assert check_cost(16 * 16) > 1 > check_cost(512 * 512)
    # no prediction yet: every sqrt(2 it cost) iterations, never below check_every
    assert [check_interval(30, 0.1, np.zeros(1), np.zeros(1), 1e-4, 5, cost=c) for c in (4.0, 0.1)] == [15, 5]
    solver = sys.modules["pdeflow.tv.rof"]
    estimate, calls = solver.STEP_ESTIMATES["fgp"], []
    monkeypatch.setitem(solver.STEP_ESTIMATES, "fgp", lambda *a: calls.append(1) or estimate(*a))
    f, exact, counts = _noisy(16).float(), rof(_noisy(16), 0.1, tol=1e-12), []
    for every in (None, 5):
        calls.clear()
        r = rof(f, 0.1, check_every=every, full_output=True)
        counts.append(len(calls))
        assert bool(r.converged.all()) and _rms(r.u, exact) <= ACCURACY * float(f.max() - f.min())
    assert counts[0] < 0.7 * counts[1]


@pytest.mark.parametrize("lam", [0.01, 0.1, pytest.param(0.5, marks=pytest.mark.slow)])
def test_channels_apart_read_the_step_estimate_and_agree_in_float32_and_float64(lam, monkeypatch):
    # channels apart read the step's gap estimate: certified in both dtypes, with it and without; float32 gradient
    import importlib

    solve = importlib.import_module("pdeflow.tv.rof")
    f = torch.stack([_noisy(32, seed=s) for s in range(3)])
    ref = rof(f, lam, channelwise=True, tol=1e-8, max_iter=200000)
    rng = (f.max() - f.min()).item()
    for estimates in (solve.STEP_ESTIMATES, {}):
        monkeypatch.setattr(solve, "STEP_ESTIMATES", estimates)
        for dtype in (torch.float32, torch.float64):
            r = rof(f.to(dtype), lam, channelwise=True, full_output=True)
            assert bool(r.converged.all()) and r.u.dtype == dtype
            assert _rms(r.u, ref) <= ACCURACY * rng, (estimates, dtype)
    w = torch.randn(f.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = {}
    for dtype in (torch.float32, torch.float64):
        x = f.to(dtype).clone().requires_grad_()
        (rof(x, lam, channelwise=True) * w.to(dtype)).sum().backward()
        grads[dtype] = x.grad.double()
    scale = grads[torch.float64].norm().item()
    assert (grads[torch.float32] - grads[torch.float64]).norm().item() <= 1e-4 * scale
