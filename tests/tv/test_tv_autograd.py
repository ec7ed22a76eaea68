"""Gradients of rof and tv_flow (implicit differentiation) against finite differences in float64 (spectral_tv's:
tests/tv/test_tv_gradchecks.py and the registry, tests/core/test_differential.py)."""
import warnings

import pytest
import torch

from pdeflow.tv import ROF_METHODS, ConvergenceWarning, rof, tv_flow

TIGHT = dict(tol=1e-14, max_iter=200000)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _image(shape, seed):
    # A generic point: noise, so that the solution's flat regions do not change under small perturbations.
    return torch.rand(shape, generator=_gen(seed), dtype=torch.float64)


@pytest.fixture(autouse=True)
def _quiet():
    # Tight float64 tolerances sit at the round-off floor of the gap on some images: that is said, and fine here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# PDHG's iterates converge as O(1/k) (4x4 noise: 6e-5 after 3000 iterations), never to the 1e-12 that finite
# differences need: its derivative (the same map of its solution) is checked against FGP's below.
EXACT = [m for m in ROF_METHODS if m != "pdhg"]


# ADMM's and Chambolle's gradchecks solve to round-off at every perturbation (seconds to tens of seconds): the slow
# tier; test_rof_gradients_match_central_differences keeps each method's derivative in make test
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m in ("admm", "chambolle") else m
                                    for m in EXACT])
def test_rof_gradcheck(method):
    f = _image((1, 1, 4, 4), 1).requires_grad_()
    lam = torch.tensor([0.07], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rof(a, b, method=method, **TIGHT), (f, lam))


# the coupled and the per-channel projection onto T
@pytest.mark.parametrize("channelwise, shape", [(False, (2, 2, 3, 4)), (True, (2, 2, 2, 3))])
def test_rof_gradcheck_batch_per_image_lam(channelwise, shape):
    f = _image(shape, 14).requires_grad_()
    lam = torch.tensor([0.07, 0.15], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rof(a, b, channelwise=channelwise, **TIGHT), (f, lam))


# ADMM's: the slow tier (the derivative is the same map of the solution, test_rof.py's methods_agree checks ADMM's)
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m == "admm" else m for m in EXACT])
def test_rof_gradients_match_central_differences(method):
    # Directional derivatives of a scalar loss in f and in lam (0-d tensor lam), float64 solves at tol 1e-12.
    f = _image((1, 2, 5, 4), 2)
    w = _image(f.shape, 3)
    v = torch.randn(f.shape, generator=_gen(4), dtype=torch.float64)
    kw = dict(tol=1e-12, max_iter=200000, method=method)
    x = f.clone().requires_grad_()
    lam = torch.tensor(0.12, dtype=torch.float64, requires_grad=True)
    (rof(x, lam, **kw) * w).sum().backward()

    def loss(a, b):
        with torch.no_grad():
            return float((rof(a, b, **kw) * w).sum())

    h = 1e-5
    fd_f = (loss(f + h * v, 0.12) - loss(f - h * v, 0.12)) / (2 * h)
    fd_lam = (loss(f, 0.12 + h) - loss(f, 0.12 - h)) / (2 * h)
    an_f = float((x.grad * v).sum())
    assert abs(an_f - fd_f) < 1e-5 * abs(fd_f)
    assert abs(lam.grad.item() - fd_lam) < 1e-5 * abs(fd_lam)


@pytest.mark.slow   # PDHG solved to round-off; FGP's gradcheck and central differences stay in make test
def test_rof_pdhg_gradient_is_that_of_the_solution():
    f = _image((1, 1, 4, 4), 1)
    grads = []
    for method, kw in (("pdhg", dict(tol=1e-9, max_iter=20000)), ("fgp", TIGHT)):
        x = f.clone().requires_grad_()
        lam = torch.tensor(0.07, dtype=torch.float64, requires_grad=True)
        (rof(x, lam, method=method, **kw) * _image(f.shape, 3)).sum().backward()
        grads.append(torch.cat([x.grad.reshape(-1), lam.grad.reshape(-1)]))
    assert (grads[0] - grads[1]).abs().max() < 1e-3 * grads[1].abs().max()


def test_rof_flat_image_and_lam_zero():
    # A constant image is its own solution (every pixel flat): the derivative is the mean projection in f
    # and zero in lam; lam = 0 is the identity.
    f = torch.full((1, 1, 4, 5), 0.3, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)
    g = _image(f.shape, 5)
    rof(f, lam).backward(g)
    assert torch.allclose(f.grad, g.mean().expand_as(g), atol=1e-12)
    assert abs(lam.grad.item()) < 1e-12
    x = _image((3, 3), 6).requires_grad_()
    rof(x, 0.0).backward(g[0, 0, :3, :3])
    assert torch.equal(x.grad, g[0, 0, :3, :3])


def test_rof_half_precision_gradient_flows():
    x = _image((6, 6), 7).to(torch.bfloat16).requires_grad_()
    u = rof(x, 0.1)
    assert u.dtype == torch.bfloat16
    u.float().square().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and bool(torch.isfinite(x.grad).all())


# the slow tier: make test gradchecks tv_flow through the registry (tests/core/test_differential.py) and its u_t
# with respect to u0 and the times, both schemes (tests/tv/test_tv_gradchecks.py)
@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["euler", "bdf2"])
def test_tv_flow_gradcheck(scheme):
    u0 = _image((1, 1, 3, 3), 8).requires_grad_()
    times = torch.tensor([0.03, 0.075], dtype=torch.float64, requires_grad=True)   # off the grid: generic

    def fn(a, t):
        return tv_flow(a, t, dt=0.02, scheme=scheme, tol=1e-13, max_iter=20000)

    assert torch.autograd.gradcheck(fn, (u0, times))


def test_tv_flow_gradients_match_central_differences():
    u0 = _image((2, 1, 5, 4), 9)
    w = _image((2, 2, 1, 5, 4), 10)
    v = torch.randn(u0.shape, generator=_gen(11), dtype=torch.float64)
    kw = dict(dt=0.02, tol=1e-12, max_iter=20000)
    x = u0.clone().requires_grad_()
    t = torch.tensor([0.05, 0.09], dtype=torch.float64, requires_grad=True)
    (tv_flow(x, t, **kw) * w).sum().backward()

    def loss(a, times):
        with torch.no_grad():
            return float((tv_flow(a, times, **kw) * w).sum())

    h = 1e-5
    fd = (loss(u0 + h * v, [0.05, 0.09]) - loss(u0 - h * v, [0.05, 0.09])) / (2 * h)
    assert abs(float((x.grad * v).sum()) - fd) < 1e-5 * abs(fd)
    for i, shift in enumerate(([h, 0], [0, h])):
        tp = [0.05 + shift[0], 0.09 + shift[1]]
        tm = [0.05 - shift[0], 0.09 - shift[1]]
        fd_t = (loss(u0, tp) - loss(u0, tm)) / (2 * h)
        assert abs(t.grad[i].item() - fd_t) < 1e-5 * abs(fd_t)


def test_backward_memory_does_not_keep_iterations():
    # What autograd keeps for one rof call: a few image-sized tensors, not one per iteration.
    f = _image((1, 1, 32, 32), 13).requires_grad_()
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        r = rof(f, 0.1, tol=1e-10, full_output=True)
    assert r.iterations.item() > 50
    # u, div p and the dual field p (two components: it tells edges from flat pixels)
    assert sum(sizes) <= 5 * f.numel() + 16
