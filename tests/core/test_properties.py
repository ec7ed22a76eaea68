"""Property-based tests (Hypothesis) of the maths invariants that hold for any input.

Public APIs only: ``pdeflow.ops``, ``pdeflow.tv.tv_flow`` and ``pdeflow.inpaint``.
Shapes are small and ``max_examples`` low so the file runs in well under a minute.

Tolerances of the TV-flow properties come from the solver's stopping rule (see
``pdeflow.tv.rof``): each implicit step ``u_k = rof(u_{k-1}, h)`` stops at a relative
duality gap ``(P - D) / P <= tol``, and ``P`` is 1-strongly convex, so the step's
error is at most ``sqrt(2 tol P)`` in the Euclidean norm, with
``P <= h TV(u_{k-1}) (1 + tol) <= dt TV(u0) (1 + tol)``.  The ROF map is
non-expansive, so after ``n`` steps an inexact trajectory is within
``n sqrt(2 tol dt TV(u0) (1 + tol))`` of the exact implicit Euler one, which has the
invariances exactly.  A float64 round-off term is added on top.
"""
from __future__ import annotations

import math

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from pdeflow import inpaint  # noqa: E402
from pdeflow.inpaint.operators.diffusion import SOLVERS  # noqa: E402
from pdeflow.ops import div, grad, tv  # noqa: E402
from pdeflow.tv import tv_flow  # noqa: E402

SETTINGS = dict(deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
TOL = 1e-12  # relative duality gap of every implicit step below
DT = 0.01


def images(max_b=2, channels=(1,), min_side=2, max_side=7, lo=-5.0, hi=5.0):
    """Strategy of float64 tensors ``(B, C, H, W)`` with entries in ``[lo, hi]``."""

    @st.composite
    def draw(d):
        shape = (
            d(st.integers(1, max_b)),
            d(st.sampled_from(channels)),
            d(st.integers(min_side, max_side)),
            d(st.integers(min_side, max_side)),
        )
        arr = d(hnp.arrays("float64", shape, elements=st.floats(lo, hi, allow_nan=False, width=64)))
        return torch.from_numpy(arr)

    return draw()


def unit_images(shape):
    """Strategy of float64 tensors of ``shape`` with entries in [0, 1]."""
    arrays = hnp.arrays("float64", shape, elements=st.floats(0.0, 1.0, allow_nan=False))
    return arrays.map(torch.from_numpy)


def flow_bound(u0, n_steps, dt=DT, tol=TOL):
    """Euclidean-norm bound per image of an inexact trajectory's distance to the exact one."""
    tv0 = tv(u0).clamp_min(0.0)
    solver = n_steps * torch.sqrt(2.0 * tol * dt * tv0 * (1.0 + tol))
    roundoff = 1e-11 * (1.0 + u0.abs().flatten(1).amax(1)) * n_steps * math.sqrt(u0[0].numel())
    return solver + roundoff


def l2(x):
    """Euclidean norm per image over all but the first dimension."""
    return x.flatten(1).norm(dim=1)


# --- discrete calculus ------------------------------------------------------------------------


@settings(**SETTINGS)
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    zero_edges=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
)
def test_div_is_minus_grad_transpose(shape, zero_edges, seed, scale):
    # <grad u, p> = -<u, div p> in float64, to 1e-12 relative to the sizes of the terms
    g = torch.Generator().manual_seed(seed)
    u = scale * torch.randn(shape, generator=g, dtype=torch.float64)
    p = torch.randn(shape[:-2] + (2,) + shape[-2:], generator=g, dtype=torch.float64)
    gu = grad(u, zero_edges=zero_edges)
    dp = div(p, zero_edges=zero_edges)
    assert gu.shape == p.shape and dp.shape == u.shape
    lhs = (gu * p).sum()
    rhs = -(u * dp).sum()
    size = (gu.abs() * p.abs()).sum() + (u.abs() * dp.abs()).sum()
    assert abs(lhs - rhs) <= 1e-12 * max(size.item(), 1.0)


# --- TV flow ----------------------------------------------------------------------------------

TIMES = st.lists(st.floats(0.0, 0.08), min_size=1, max_size=3).map(sorted)


def _steps(times, dt):
    """Implicit steps taken to reach the last time (grid steps plus one partial step)."""
    return math.ceil(max(times) / dt + 1e-9) + 1


@settings(**SETTINGS)
@given(u0=images(channels=(1, 3)), times=TIMES, c=st.floats(0.1, 10.0))
def test_tv_flow_one_homogeneous(u0, times, c):
    # tv_flow(c u0, t; dt) = c tv_flow(u0, t / c; dt / c): the same steps, scaled
    a = tv_flow(c * u0, [c * t for t in times], dt=c * DT, tol=TOL)
    b = c * tv_flow(u0, times, dt=DT, tol=TOL)
    bound = flow_bound(c * u0, _steps(times, DT), dt=c * DT) + c * flow_bound(u0, _steps(times, DT))
    for k in range(len(times)):
        assert torch.all(l2(a[k] - b[k]) <= bound), (k, l2(a[k] - b[k]), bound)


@settings(**SETTINGS)
@given(u0=images(channels=(1, 3)), times=TIMES, k=st.floats(-10.0, 10.0))
def test_tv_flow_mean_shift(u0, times, k):
    # tv_flow(u0 + k, t) = tv_flow(u0, t) + k
    a = tv_flow(u0 + k, times, dt=DT, tol=TOL)
    b = tv_flow(u0, times, dt=DT, tol=TOL) + k
    bound = 2 * flow_bound(u0, _steps(times, DT)) + 1e-12 * abs(k) * math.sqrt(u0[0].numel())
    for j in range(len(times)):
        assert torch.all(l2(a[j] - b[j]) <= bound), (j, l2(a[j] - b[j]), bound)


@settings(**SETTINGS)
@given(u0=images(channels=(1, 3)), times=TIMES)
def test_tv_flow_conserves_mass(u0, times):
    # u = f + h div p at every step and div p sums to zero (Neumann): the mean of every
    # channel is kept to round-off, whatever the solver's tolerance
    u = tv_flow(u0, times, dt=DT, tol=TOL)
    m0 = u0.mean(dim=(-2, -1))
    size = u0.abs().amax().item() + 1.0
    for j in range(len(times)):
        assert torch.allclose(u[j].mean(dim=(-2, -1)), m0, rtol=0, atol=1e-12 * size * _steps(times, DT))


@settings(**SETTINGS)
@given(u0=images(channels=(1, 3)), n=st.integers(2, 6))
def test_tv_flow_never_increases_tv(u0, n):
    # Exactly: h TV(rof(f, h)) <= P(rof(f, h)) <= P(f) = h TV(f).  With a relative gap
    # tol, P(u) <= P(u*) + tol P(u), so TV(u_k) <= TV(u_{k-1}) (1 + tol)^2 per step.
    times = [DT * j for j in range(n + 1)]
    u = tv_flow(u0, times, dt=DT, tol=TOL)
    tvs = torch.stack([tv(u[j]) for j in range(len(times))])  # (T, B)
    assert torch.allclose(tvs[0], tv(u0), rtol=1e-12, atol=1e-12)
    slack = (1 + TOL) ** 2 - 1 + 1e-12
    assert torch.all(tvs[1:] <= tvs[:-1] * (1 + slack) + 1e-12), tvs


# --- inpainting -------------------------------------------------------------------------------


@settings(**SETTINGS)
@given(
    f=images(channels=(1, 3), min_side=3, max_side=9, lo=0.0, hi=1.0),
    density=st.floats(0.05, 0.9),
    seed=st.integers(0, 2**31 - 1),
    solver=st.sampled_from(SOLVERS),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_diffuse_equals_data_on_mask(f, density, seed, solver, dtype):
    f = f.to(dtype)
    B, _, H, W = f.shape
    density = min(max(density, 1.0 / (H * W)), 1.0 - 1.0 / (H * W))
    mask = inpaint.random_mask((B, 1, H, W), density, generator=seed, dtype=dtype)
    u = inpaint.inpaint_diffusion(f, mask, solver=solver)
    assert u.shape == f.shape and u.dtype == dtype
    known = mask.expand_as(f).bool()
    assert torch.equal(u[known], f[known])


def _count(h, w, density):
    return round(density * h * w)


def _densities(h, w):
    """A density in (0, 1) that gives at least one known and one unknown pixel."""
    return st.floats(0.01, 0.99).filter(lambda d: 1 <= _count(h, w, d) <= h * w - 1)


def _counts(mask):
    return mask.flatten(-2).sum(-1)


@settings(**SETTINGS)
@given(data=st.data(), lead=st.sampled_from([(), (1,), (2, 1), (3,)]), h=st.integers(2, 12), w=st.integers(2, 12))
def test_random_mask_exact_count(data, lead, h, w):
    density = data.draw(_densities(h, w))
    seed = data.draw(st.integers(0, 2**31 - 1))
    mask = inpaint.random_mask(lead + (h, w), density, generator=seed)
    assert mask.shape == lead + (h, w)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(_counts(mask) == _count(h, w, density))


@settings(**SETTINGS)
@given(data=st.data(), h=st.integers(3, 12), w=st.integers(3, 12), b=st.integers(1, 2), snap=st.booleans())
def test_analytic_mask_exact_count(data, h, w, b, snap):
    density = data.draw(_densities(h, w))
    f = data.draw(unit_images((b, 1, h, w)))
    mask = inpaint.analytic_mask(f, density, snap=snap)
    assert mask.shape == (b, 1, h, w)
    assert torch.all(_counts(mask) == _count(h, w, density))


@settings(**SETTINGS)
@given(data=st.data(), h=st.integers(3, 12), w=st.integers(3, 12), b=st.integers(1, 2))
def test_densify_mask_exact_count(data, h, w, b):
    density = data.draw(_densities(h, w))
    f = data.draw(unit_images((b, 1, h, w)))
    mask = inpaint.densify_mask(f, density, stages=3)
    assert mask.shape == (b, 1, h, w)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(_counts(mask) == _count(h, w, density))


@settings(**SETTINGS)
@given(data=st.data(), h=st.integers(2, 12), w=st.integers(2, 12), b=st.integers(1, 2))
def test_dither_exact_count(data, h, w, b):
    density = data.draw(_densities(h, w))
    p = data.draw(hnp.arrays("float64", (b, 1, h, w), elements=st.floats(0.0, 10.0, allow_nan=False)))
    random = data.draw(st.booleans())
    mask = inpaint.dither(torch.from_numpy(p), density, random=random, generator=0)
    assert torch.all(_counts(mask) == _count(h, w, density))


@settings(**{**SETTINGS, "max_examples": 10})
@given(data=st.data(), h=st.integers(3, 6), w=st.integers(3, 6))
def test_probabilistic_sparsification_exact_count(data, h, w):
    density = data.draw(_densities(h, w))
    f = data.draw(unit_images((data.draw(st.integers(1, 2)), 1, h, w)))
    mask = inpaint.ps_mask(f, density, p=0.3, q=0.5, generator=data.draw(st.integers(0, 99)))
    assert mask.shape == (f.shape[0], 1, h, w)
    assert torch.all(_counts(mask) == _count(h, w, density))


@settings(**{**SETTINGS, "max_examples": 10})
@given(data=st.data(), h=st.integers(3, 6), w=st.integers(3, 6))
def test_pixel_exchange_and_refinement_keep_the_count(data, h, w):
    # NLPE and refine_mask work at the density of the mask they are given
    density = data.draw(_densities(h, w))
    seed = data.draw(st.integers(0, 99))
    f = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    mask = inpaint.random_mask((2, 1, h, w), density, generator=seed, dtype=torch.float64)
    k = _count(h, w, density)
    nlpe = inpaint.nlpe_mask(f, mask, candidates=4, cycles=1, generator=seed)
    assert torch.all(_counts(nlpe) == k)
    refined = inpaint.refine_mask(f, mask, rounds=2, metric="mse", generator=seed)
    assert torch.all(_counts(refined) == k)


@settings(**{**SETTINGS, "max_examples": 10})
@given(data=st.data(), h=st.integers(4, 12), w=st.integers(4, 12))
def test_learned_mask_exact_count(data, h, w):
    # an untrained mask network: the count comes from the dithering, not from training
    density = data.draw(_densities(h, w))
    torch.manual_seed(0)
    net = inpaint.learned.masknet.MaskNet(density=None, widths=(4, 8)).eval()
    f = torch.rand(2, 1, h, w, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))))
    mask = inpaint.learned_mask(f, density, model=net)
    assert mask.shape == (2, 1, h, w)
    assert torch.all(_counts(mask) == _count(h, w, density))
