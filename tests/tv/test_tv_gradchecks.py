"""Gradient checks of the differentiable TV functions not in tests/tv/test_tv_autograd.py: rof with
method="pdhg", the u_t output of tv_flow, and spectral_tv's bands at given edges and its phi.

All in float64 against finite differences (torch.autograd.gradcheck: central differences of the forward)."""
import warnings

import pytest
import torch

from pdeflow.tv import ConvergenceWarning, rof, spectral_tv, tv_flow

TIGHT = dict(tol=1e-14, max_iter=200000)


def _image(shape, seed):
    # A generic point: noise, so that the flat regions of the solution do not change under small perturbations.
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _jacobian_fd(fn, f, h=1e-6):
    cols = []
    for i in range(f.numel()):
        e = torch.zeros(f.numel(), dtype=f.dtype)
        e[i] = h
        e = e.reshape(f.shape)
        cols.append(((fn(f + e) - fn(f - e)) / (2 * h)).reshape(-1))
    return torch.stack(cols, 1)


@pytest.mark.parametrize("lam0", [0.07, 0.3])     # 0.3: the whole solution is one flat region (u = mean f)
def test_rof_pdhg_gradcheck(lam0):
    """PDHG's own path (its solution, then the implicit backward) against central differences of the same
    PDHG call.  PDHG converges as O(1/k) and never reaches the 1e-11 that differences with a step of 1e-6
    need from a cold start; started from the exact dual (computed, without gradient, by FGP at 1e-14 for
    the perturbed input as well) it starts at its fixed point, so its forward is the exact ROF map."""
    f = _image((1, 1, 4, 4), 1).requires_grad_()
    lam = torch.tensor([lam0], dtype=torch.float64, requires_grad=True)

    def fn(a, b):
        with torch.no_grad():
            p = rof(a.detach(), b.detach(), full_output=True, **TIGHT).p
        return rof(a, b, method="pdhg", p0=p, tol=1e-12, max_iter=200)

    assert torch.autograd.gradcheck(fn, (f, lam))


@pytest.mark.slow   # PDHG's Jacobian from a cold start
def test_rof_pdhg_jacobian_from_a_cold_start_converges_with_tol():
    """From a cold start the derivative is that of PDHG's own (inexact) solution: its error against the
    central-difference Jacobian of exact solves falls with the tolerance, as the solution's error does
    (about sqrt(tol))."""
    f = _image((1, 1, 4, 4), 1)
    exact = _jacobian_fd(lambda a: rof(a, 0.07, **TIGHT), f)
    errors = []
    for tol in (1e-6, 1e-8):
        jac = torch.autograd.functional.jacobian(lambda a: rof(a, 0.07, method="pdhg", tol=tol, max_iter=100000), f)
        errors.append((jac.reshape(exact.shape) - exact).abs().max().item())
    assert errors[1] < 1e-4 and errors[1] < errors[0] / 5, errors


@pytest.mark.parametrize("scheme", ["euler", "bdf2"])
def test_tv_flow_ut_gradcheck(scheme):
    """u_t (return_ut) with respect to u0 and the times, off and on the time grid."""
    u0 = _image((1, 1, 3, 3), 8).requires_grad_()
    # off the grid n dt: on it u(t) has a kink (the left derivative is returned), which central differences miss
    times = torch.tensor([0.03, 0.075], dtype=torch.float64, requires_grad=True)

    def fn(a, t):
        u, ut = tv_flow(a, t, dt=0.02, scheme=scheme, tol=1e-13, max_iter=20000, return_ut=True)
        return u, ut

    assert torch.autograd.gradcheck(fn, (u0, times))


def test_tv_flow_ut_is_the_step_quotient_and_its_gradient_matches():
    """The value of u_t is the difference quotient of the last step, and a loss on u_t alone backpropagates
    to u0 (central differences of the loss, float64 solves at 1e-12)."""
    u0 = _image((1, 1, 4, 5), 9)
    kw = dict(dt=0.02, tol=1e-12, max_iter=20000)
    w = _image((1, 1, 1, 4, 5), 10)
    x = u0.clone().requires_grad_()
    u, ut = tv_flow(x, [0.04, 0.1], return_ut=True, **kw)
    step_u = tv_flow(u0, [0.02, 0.04, 0.08, 0.1], **kw)
    torch.testing.assert_close(ut[0].detach(), (step_u[1] - step_u[0]) / 0.02, atol=1e-9, rtol=0)
    (ut[1:] * w).sum().backward()
    v = torch.randn(u0.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)

    def loss(a):
        return float((tv_flow(a, [0.04, 0.1], return_ut=True, **kw)[1][1:] * w).sum())

    h = 1e-5
    fd = (loss(u0 + h * v) - loss(u0 - h * v)) / (2 * h)
    assert abs(float((x.grad * v).sum()) - fd) < 1e-5 * abs(fd)


def test_spectral_tv_band_and_phi_gradcheck():
    """A band at given edges (filter(bands)) and the spectral components phi, with respect to u0."""
    u0 = _image((1, 1, 3, 4), 12).requires_grad_()

    def fn(a):
        s = spectral_tv(a, dt=0.02, n_steps=3, tol=1e-13, max_iter=20000)
        return s.filter([0.0, 0.03, 0.07]), s.phi

    assert torch.autograd.gradcheck(fn, (u0,))


@pytest.mark.parametrize("method", ["chambolle", "fgp", "pdhg", "admm"])
def test_rof_gradient_where_the_solution_is_one_flat_region(method):
    """lam large enough that u is the mean of f: the derivative is the mean projection.  (The flat threshold
    once came from the range of u, zero here, so that no pixel counted as flat: off by up to 0.43.)"""
    f = _image((1, 1, 4, 4), 1)
    g = _image(f.shape, 5)
    x = f.clone().requires_grad_()
    u = rof(x, 0.3, method=method, tol=1e-10, max_iter=100000)
    assert float((u.max() - u.min()).detach()) < 1e-9
    u.backward(g)
    torch.testing.assert_close(x.grad, g.mean().expand_as(g), atol=1e-12, rtol=0)
