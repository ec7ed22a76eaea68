"""The reference TV flow against analytic solutions, symmetries and conservation laws."""
import importlib

import pytest
import torch

from pdeflow.datasets import builtin_image, disk, plateau_1d
from pdeflow.ops import tv
from pdeflow.tv import rof, tv_flow


@pytest.fixture(scope="module")
def natural():
    img = builtin_image("skimage/camera", grey=True)[0, 100:124, 180:204].double()
    return img[None, None]


def test_plateau_1d_eigenfunctions_flow_exactly():
    # Profile along W: [0 (width 10) | 1 (width 10) | 0.3 (width 20)], constant along H.
    u0 = plateau_1d(40, [10, 10, 20], [0.0, 1.0, 0.3]).double()
    times = [0.0, 0.5, 1.0, 1.55, 2.0, 2.5]
    u = tv_flow(u0, times, dt=0.1, tol=1e-10)
    for i, t in enumerate(times):
        left, mid, right = u[i, 0, :, 5], u[i, 0, :, 15], u[i, 0, :, 30]
        # The plateau falls at 2/width, each boundary region rises at 1/width.
        torch.testing.assert_close(mid, torch.full_like(mid, 1.0 - 2 * t / 10), rtol=1e-6, atol=0)
        torch.testing.assert_close(left, torch.full_like(left, t / 10), rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(right, torch.full_like(right, 0.3 + t / 20), rtol=1e-6, atol=0)


def test_disk_decays_almost_uniformly_and_conserves_mean():
    r = 12
    u0 = disk(64, r).double()
    times = [0.0, 1.0, 2.0, 3.0]
    u = tv_flow(u0, times, dt=0.25, tol=1e-7)
    inside = disk(64, r - 3).bool()[0]
    centre = u[:, 0, 32, 32]
    rate = (centre[0] - centre[-1]) / times[-1]
    assert abs(rate - 2 / r) < 0.1 * 2 / r  # continuum rate 2/r, up to pixelation
    for i in range(1, len(times)):
        vals = u[i, 0][inside]
        assert vals.max() - vals.min() < 0.05 * (1 - vals.mean())  # uniform drop inside
    means = u.mean(dim=(1, 2, 3))
    assert (means - means[0]).abs().max() < 1e-6


def test_tv_never_increases_and_mean_is_conserved(natural):
    u = tv_flow(natural, [0.1 * k for k in range(11)], dt=0.1, tol=1e-7)
    t = tv(u[:, 0])
    assert bool((t[1:] <= t[:-1] + 1e-9).all())
    m = u.mean(dim=(1, 2, 3, 4))
    assert (m - m[0]).abs().max() < 1e-6


@pytest.mark.slow   # flows of scaled and shifted images; tests/core/test_properties.py keeps both in make test
def test_one_homogeneity_and_mean_shift(natural):
    c, k = 3.0, 0.7
    u = tv_flow(natural, [0.3, 0.6], dt=0.1, tol=1e-6)
    # The implicit scheme is exactly one-homogeneous when the step scales with c.
    uc = tv_flow(c * natural, [c * 0.3, c * 0.6], dt=c * 0.1, tol=1e-6)
    assert (uc - c * u).abs().max() < 1e-4 * c
    us = tv_flow(natural + k, [0.3, 0.6], dt=0.1, tol=1e-6)
    assert (us - (u + k)).abs().max() < 1e-4


@pytest.mark.slow   # flows at several steps
def test_euler_off_grid_time_is_one_partial_step(natural):
    u, p = tv_flow(natural, [0.2, 0.27], dt=0.1, tol=1e-8, scheme="euler", return_dual=True)
    partial = rof(u[0], 0.07, tol=1e-8)
    assert (u[1] - partial).abs().max() < 1e-4
    assert p.shape == (2, 1, 1, 2, 24, 24) and p.norm(dim=3).max() <= 1 + 1e-9


def test_euler_ut_is_the_difference_quotient_of_the_last_step(natural):
    u, ut = tv_flow(natural, [0.2, 0.3], dt=0.1, tol=1e-8, scheme="euler", return_ut=True)
    torch.testing.assert_close(ut[1], (u[1] - u[0]) / 0.1, atol=1e-6, rtol=0)
    assert ut.shape == u.shape


def test_halving_dt_changes_u1_by_little(natural):
    a = tv_flow(5 * natural, [1.0], dt=0.04, tol=1e-6)
    b = tv_flow(5 * natural, [1.0], dt=0.02, tol=1e-6)
    rms = ((a - b) ** 2).mean().sqrt().item()
    assert rms < 5e-3  # first-order scheme: O(dt) on a [0, 5] image


@pytest.mark.slow   # regularised flows at several eps
@pytest.mark.parametrize("method", ["explicit", "lagged"])
def test_regularised_schemes_approach_the_reference_as_eps_shrinks(natural, method):
    ref = tv_flow(natural, [0.3], dt=0.05, tol=1e-7)
    errors = [
        (tv_flow(natural, [0.3], dt=0.05, method=method, eps=eps, tol=1e-7) - ref).abs().mean().item()
        for eps in (0.1, 0.03, 0.01)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.03, errors


def test_shapes_and_dtypes():
    u0 = torch.rand(3, 2, 12, 10)
    u, ut, p = tv_flow(u0, [0.0, 0.05], dt=0.05, tol=1e-4, return_ut=True, return_dual=True)
    assert u.shape == (2, 3, 2, 12, 10) and ut.shape == u.shape and p.shape == (2, 3, 2, 2, 12, 10)
    assert u.dtype == torch.float32
    assert torch.equal(u[0], u0)
    assert tv_flow(u0[0, 0], [0.1], dt=0.05).shape == (1, 12, 10)


@pytest.mark.parametrize("scheme", ["euler", "bdf2"])
def test_large_images_of_a_batch_flow_one_at_a_time(monkeypatch, scheme):
    # Images of ALONE_ELEMENTS values or more are evolved one at a time: exactly their flows alone, u, u_t
    # and p in the batch's order, with one warning for the whole call; smaller ones as one batch.
    import pdeflow.tv.flow as flow_module
    from pdeflow.tv import ConvergenceWarning

    u0 = 5 * torch.rand(3, 1, 12, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    kw = dict(dt=0.02, tol=1e-6, scheme=scheme, return_ut=True, return_dual=True)
    batch = tv_flow(u0, [0.0, 0.05, 0.13], **kw)
    monkeypatch.setattr(flow_module, "ALONE_ELEMENTS", 12 * 10)
    alone = [tv_flow(u0[i:i + 1], [0.0, 0.05, 0.13], **kw) for i in range(3)]
    for got, parts in zip(tv_flow(u0, [0.0, 0.05, 0.13], **kw), zip(*alone)):
        assert torch.equal(got, torch.cat(parts, 1))
    assert not torch.equal(batch[0], torch.cat([a[0] for a in alone], 1))    # the batch stops its steps together
    with pytest.warns(ConvergenceWarning) as record:
        tv_flow(u0, [0.04], dt=0.02, tol=1e-12, max_iter=3)
    assert len(record) == 1 and "6 of 6 implicit steps" in str(record[0].message)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(times=[-0.1]), "times must be >= 0"),
        (dict(times=[0.2, 0.1]), "times must be sorted"),
        (dict(times=[float("nan")]), "times must be finite"),
        (dict(dt=0.0), "dt must be"),
        (dict(dt=-1.0), "dt must be"),
        (dict(method="heat"), "method must be one of"),
        (dict(solver="newton"), "solver must be one of"),
        (dict(scheme="rk4"), "scheme must be one of"),
        (dict(u0=torch.zeros(5)), "u0 must have shape"),
        (dict(u0=torch.tensor([[float("inf"), 0.0]])), "u0 contains NaN or inf"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = dict(u0=torch.zeros(4, 4), times=[0.1])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        tv_flow(args.pop("u0"), args.pop("times"), **args)


# --------------------------------------------------------------------------- schemes


@pytest.mark.parametrize("scheme", ["euler", "bdf2"])
def test_plateau_eigenfunctions_flow_exactly_with_either_scheme(scheme):
    # Linear in time until the plateaus meet: both schemes are exact, partial steps included.
    u0 = plateau_1d(40, [10, 10, 20], [0.0, 1.0, 0.3]).double()
    times = [0.35, 1.0, 1.55, 2.5]
    u = tv_flow(u0, times, dt=0.2, tol=1e-10, scheme=scheme)
    for i, t in enumerate(times):
        mid, right = u[i, 0, :, 15], u[i, 0, :, 30]
        torch.testing.assert_close(mid, torch.full_like(mid, 1.0 - 2 * t / 10), rtol=1e-6, atol=0)
        torch.testing.assert_close(right, torch.full_like(right, 0.3 + t / 20), rtol=1e-6, atol=0)


@pytest.mark.slow   # BDF2 flows at two steps; the Euler u_t test keeps u_t in make test
def test_bdf2_ut_is_the_bdf2_difference_quotient(natural):
    dt = 0.05
    u, ut, p = tv_flow(natural, [0.1, 0.15, 0.2], dt=dt, tol=1e-10, scheme="bdf2", return_ut=True, return_dual=True)
    torch.testing.assert_close(ut[2], (3 * u[2] - 4 * u[1] + u[0]) / (2 * dt), atol=1e-6, rtol=0)
    assert p.norm(dim=3).max() <= 1 + 1e-9  # u_t = div(p) with |p| <= 1, as for implicit Euler


@pytest.mark.slow   # BDF2 flows; the Euler properties stay in make test
def test_bdf2_conserves_the_mean_and_is_one_homogeneous(natural):
    c = 3.0
    u = tv_flow(natural, [0.3, 0.65], dt=0.1, tol=1e-7, scheme="bdf2")
    uc = tv_flow(c * natural, [c * 0.3, c * 0.65], dt=c * 0.1, tol=1e-7, scheme="bdf2")
    assert (uc - c * u).abs().max() < 1e-4 * c
    m = u.mean(dim=(1, 2, 3, 4))
    assert (m - natural.mean()).abs().max() < 1e-9


def test_steps_stopping_at_max_iter_warn_once(natural):
    from pdeflow.tv import ConvergenceWarning

    with pytest.warns(ConvergenceWarning) as record:
        tv_flow(5 * natural, [0.3], dt=0.1, tol=1e-12, max_iter=5)
    assert len(record) == 1 and record[0].filename == __file__
    assert "tv_flow: 3 of 3 implicit steps stopped at max_iter=5 short of tol=1e-12" in str(record[0].message)


def test_extinction_step_is_exact_and_agrees_with_the_solver():
    # range r with (H + W) r <= dt: the flow reaches the mean within one step; the step gives the mean
    # exactly and the flux p with div p = (mean - u0) / dt, |p| <= 1, without the solver.
    import warnings

    from pdeflow.ops import div
    from pdeflow.tv import ConvergenceWarning
    g = torch.Generator().manual_seed(3)
    u0 = 1.0 + 0.9 * 0.02 / 28 * torch.rand(1, 1, 12, 16, generator=g, dtype=torch.float64)
    flat = torch.full((1, 1, 12, 16), 2.0, dtype=torch.float64)
    x = torch.cat([u0, flat, 5 * torch.rand(1, 1, 12, 16, generator=g, dtype=torch.float64)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)    # flat images no longer run to max_iter
        u, ut, p = tv_flow(x, [0.02, 0.2], dt=0.02, tol=1e-6, max_iter=500, return_ut=True, return_dual=True)
    mean = u0.mean()
    assert torch.equal(u[0, 0], torch.full_like(u0[0], mean.item()))
    assert torch.allclose(ut[0, 0], (mean - u0[0]) / 0.02, rtol=0, atol=1e-12)
    assert torch.allclose(div(p[0, 0]), ut[0, 0], rtol=0, atol=1e-12)
    assert float(p[0, 0].norm(dim=-3).max()) <= 1.0
    assert torch.equal(u[:, 1], flat.expand(2, -1, -1, -1)) and float(ut[:, 1].abs().max()) == 0.0
    # the solver, independently, on the same step
    ref = rof(u0, 0.02, tol=1e-10, max_iter=200000)
    assert float((ref - mean).abs().max()) < 1e-8
    # the other image of the batch is solved as before: as on its own
    alone = tv_flow(x[2:], [0.02, 0.2], dt=0.02, tol=1e-6, max_iter=500)
    assert torch.equal(u[:, 2:], alone)


def test_error_shrinks_with_dt_at_about_first_order(natural):
    # The change of u(0.5) when dt halves (x5 crop, tight solves) falls by a factor near 2 each time
    # (measured 1.85 and 1.41 in the mean; the max norm is erratic on one small crop: events): implicit
    # Euler's error is O(dt), the defaults' accuracy rests on it (README table; benchmarks/flow_accuracy.py
    # measures the defaults' error against a converged flow).
    u = [tv_flow(5 * natural, [0.5], dt=dt, tol=1e-7) for dt in (0.04, 0.02, 0.01)]
    d = [(a - b).abs().mean().item() for a, b in zip(u, u[1:])]
    assert d[0] > d[1] > 0, d
    assert 1.3 < d[0] / d[1] < 3.0, d


def _reset_compiled(monkeypatch):
    compiled = importlib.import_module("pdeflow.tv._rof_compiled")
    monkeypatch.setattr(compiled, "_compiled", {})  # this test's kernels, not another test's


@pytest.mark.slow   # two flows, one through torch.compile's fallback
def test_compile_without_a_compiler_warns_and_gives_the_same_flow(natural, monkeypatch):
    # compile=True runs the FGP steps as whole-tensor kernels (one batch shape, converged images kept
    # in it, u and p formed when an image is done). Where torch.compile fails they run uncompiled:
    # the same arithmetic as the in-place kernels, so in float64 the same flow to round-off.
    from pdeflow.tv import CompileWarning

    def no_compiler(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler here")
        return fail

    _reset_compiled(monkeypatch)
    monkeypatch.setattr(torch, "compile", no_compiler)
    # the compiled steps have no gap estimate: the reference evaluates its gap at every check too (the same
    # schedule, so the same stops)
    monkeypatch.setattr(importlib.import_module("pdeflow.tv.rof"), "STEP_ESTIMATES", {})
    x = torch.cat([5 * natural, 2 * natural.flip(-1), 0 * natural + 1.5])  # converge at different iterations
    with pytest.warns(CompileWarning, match="no C\\+\\+ compiler here"):
        u, ut, p = tv_flow(x, [0.05, 0.12], dt=0.01, tol=1e-7, compile=True, return_ut=True, return_dual=True,
                           precision="float64")
    ref = tv_flow(x, [0.05, 0.12], dt=0.01, tol=1e-7, return_ut=True, return_dual=True, precision="float64")
    for a, b in zip((u, ut, p), ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    r, r0 = (rof(x, 0.3, tol=1e-9, full_output=True, compile=c, precision="float64") for c in (True, False))
    assert r.iterations.tolist() == r0.iterations.tolist() and len(set(r.iterations.tolist())) > 1
    torch.testing.assert_close(r.u, r0.u, rtol=0, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("channels, channelwise", [(1, False), (3, False), (3, True)])
def test_compiled_flow_matches_the_uncompiled_one(natural, monkeypatch, channels, channelwise):
    import warnings

    from pdeflow.tv import CompileWarning

    _reset_compiled(monkeypatch)
    x = torch.cat([(c + 1) * natural.roll(3 * c, -1) for c in range(channels)], 1).float() * 2
    x = torch.cat([x, x.flip(-2)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        u = tv_flow(x, [0.05, 0.1], dt=0.01, tol=1e-6, channelwise=channelwise, compile=True, check_every=5)
    if any(issubclass(w.category, CompileWarning) for w in caught):
        pytest.skip("torch.compile does not work here")
    # one schedule for both (without check_every the fused loops space their checks by their cost)
    ref = tv_flow(x, [0.05, 0.1], dt=0.01, tol=1e-6, channelwise=channelwise, check_every=5)
    assert (u - ref).abs().max() < 1e-4  # same iterates up to float32 round-off (stops may move by a check)


@pytest.mark.parametrize("method", ["explicit", "lagged"])
def test_times_requiring_grad_are_refused_where_the_scheme_gives_no_gradient(method):
    # the implicit flow differentiates with respect to the times; the regularised schemes dropped that gradient
    from pdeflow.errors import UserInputError
    t = torch.tensor([0.05], dtype=torch.float64, requires_grad=True)
    with pytest.raises(UserInputError, match=r"^times requires grad, but method="):
        tv_flow(torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True), t, dt=0.01, method=method)


def test_times_gradient_of_a_float32_flow_is_the_float64_one():
    u0 = torch.rand(1, 1, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    grads = []
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor([0.055], dtype=dtype, requires_grad=True)   # exact in float32, off the step grid
        u = tv_flow(u0.to(dtype), t, dt=0.01)
        grads.append(float(torch.autograd.grad((u.double() * u0).sum(), t)[0]))
    assert grads[1] != 0 and abs(grads[0] - grads[1]) <= 1e-4 * abs(grads[1])
