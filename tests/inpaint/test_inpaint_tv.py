"""Total variation inpainting (pdeflow.inpaint.operators.tv): exact solutions, symmetries, monotone energy, an
independent SciPy minimisation, float32 against float64, the implicit gradient against finite differences, batches,
bad input."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.optimize
import torch

from _operator_data import edge_image, random_known
from pdeflow.errors import InputDtypeError, UserInputError
from pdeflow.inpaint.operators.tv import Hessian, inpaint_tv, solve_unchecked, tv_energy

_image, _mask = edge_image, random_known


def _energy_numpy(u, eps):
    """The smoothed TV of the module doc written out in NumPy, with its gradient (grey (H, W))."""
    ey, ex = np.diff(u, axis=0), np.diff(u, axis=1)
    s = np.zeros_like(u)
    s[:-1] += ey ** 2
    s[1:] += ey ** 2
    s[:, :-1] += ex ** 2
    s[:, 1:] += ex ** 2
    s *= 0.5
    r = np.sqrt(s + eps ** 2)
    # dJ/du: sum_i (1 / (2 r_i)) ds_i/du
    c = 0.5 / r
    gy = (c[:-1] + c[1:]) * ey
    gx = (c[:, :-1] + c[:, 1:]) * ex
    grad = np.zeros_like(u)
    grad[:-1] -= gy
    grad[1:] += gy
    grad[:, :-1] -= gx
    grad[:, 1:] += gx
    return r.sum(), grad


def _minimiser(fn, known, energy, eps):
    """The minimiser of ``energy`` over the unknown pixels of ``fn`` by L-BFGS, the known ones held: the
    independent reference."""
    def fun(x):
        u = fn.copy()
        u[~known] = x
        e, g = energy(u, eps)
        return e, g[~known]

    res = scipy.optimize.minimize(fun, np.full((~known).sum(), fn[known].mean()), jac=True, method="L-BFGS-B",
                                  options=dict(maxiter=20000, ftol=1e-15, gtol=1e-12, maxcor=30))
    ref = fn.copy()
    ref[~known] = res.x
    return ref


def test_against_scipy_minimisation():
    f, m = _image((12, 13)), _mask((12, 13), 0.3)
    rng = float(f[m > 0].max() - f[m > 0].min())
    eps = 0.05
    known = m.numpy() > 0
    fn = f.numpy()

    ref = _minimiser(fn, known, _energy_numpy, eps * rng)
    u = inpaint_tv(f, m, eps=eps, tol=1e-11, max_iter=2000)
    np.testing.assert_allclose(u.numpy(), ref, atol=1e-6)
    # the energy of the module is the one written out here
    assert abs(float(tv_energy(u[None, None], torch.tensor([eps * rng], dtype=torch.float64)))
               - _energy_numpy(u.numpy(), eps * rng)[0]) < 1e-10


def test_constant_and_linear_data_are_exact():
    H, W = 16, 18
    m = _mask((H, W), 0.05)
    m[3, 3] = 1
    u = inpaint_tv(torch.full((H, W), -0.7, dtype=torch.float64), m, tol=1e-10)
    assert float((u + 0.7).abs().max()) < 1e-9      # exact up to the tolerance
    # a linear ramp with a known frame of two pixels: the diffusivity is constant on the unknowns
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    f = 0.05 * x + 0.02 * y
    frame = torch.ones(H, W, dtype=torch.float64)
    frame[2:H - 2, 2:W - 2] = 0
    assert float((inpaint_tv(f, frame, tol=1e-11) - f).abs().max()) < 1e-9
    # affine intensity changes commute with the inpainting (eps is relative to the range)
    g, mm = _image((14, 14)), _mask((14, 14), 0.2)
    np.testing.assert_allclose(inpaint_tv(-2 * g + 1, mm, tol=1e-10).numpy(),
                               (-2 * inpaint_tv(g, mm, tol=1e-10) + 1).numpy(), atol=1e-8)


# k = 2, 3: the slow tier (k = 1 and the flip keep the symmetry in make test)
@pytest.mark.parametrize("k", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_rotations_and_flips_commute(k):
    f, m = _image((2, 14, 14)), _mask((14, 14), 0.2)
    u = inpaint_tv(f, m, tol=1e-11, max_iter=2000)
    rot = inpaint_tv(torch.rot90(f, k, (-2, -1)), torch.rot90(m, k, (-2, -1)), tol=1e-11, max_iter=2000)
    np.testing.assert_allclose(rot.numpy(), torch.rot90(u, k, (-2, -1)).numpy(), atol=1e-8)
    flip = inpaint_tv(f.flip(-2), m.flip(-2), tol=1e-11, max_iter=2000)
    np.testing.assert_allclose(flip.numpy(), u.flip(-2).numpy(), atol=1e-8)


@pytest.mark.parametrize("eps", [1e-1, 1e-2, 1e-3])
def test_energy_decreases_monotonically(eps):
    f, m = _image((32, 32), seed=2), _mask((32, 32), 0.05, seed=3)
    r = inpaint_tv(f, m, eps=eps, tol=1e-6, max_iter=500, full_output=True)
    e = r.energy[0]
    e = e[~torch.isnan(e)]
    assert e.numel() == int(r.outer_iterations) + 1 >= 3
    assert bool((e[1:] <= e[:-1] * (1 + 1e-13)).all()), e
    assert float(r.residual) <= 1e-6


def test_hessian_is_that_of_the_energy():
    g = torch.Generator().manual_seed(5)
    u, v = torch.randn(2, 2, 3, 6, 7, generator=g, dtype=torch.float64)
    eps = torch.tensor([0.2, 0.05], dtype=torch.float64)
    h = Hessian(u, eps, torch.ones_like(u))
    hv = torch.autograd.functional.hvp(lambda x: tv_energy(x, eps).sum(), u, v)[1]
    np.testing.assert_allclose(h.apply(v).numpy(), hv.numpy(), atol=1e-12)
    # the derivative of the energy's gradient with respect to eps, against central differences
    x = u.clone().requires_grad_()
    d = 1e-6
    g1 = torch.autograd.grad(tv_energy(x, eps + d).sum(), x)[0]
    g0 = torch.autograd.grad(tv_energy(x, eps - d).sum(), x)[0]
    np.testing.assert_allclose(h.eps_derivative().numpy(), ((g1 - g0) / (2 * d)).numpy(), atol=1e-7)


def test_gradient_against_finite_differences():
    f = _image((1, 2, 7, 8), seed=8)
    m = _mask((7, 8), 0.4, seed=9)
    gen = torch.Generator().manual_seed(10)
    wts = torch.randn(1, 2, 7, 8, generator=gen, dtype=torch.float64)

    def loss(x):
        return (inpaint_tv(x, m, eps=0.1, tol=1e-13, max_iter=3000) * wts).sum()

    x = f.clone().requires_grad_()
    loss(x).backward()
    known = m.expand_as(f) > 0
    # random directions, and the pixel of the largest known value (where eps's range term enters)
    top = torch.zeros_like(f).flatten()
    top[torch.where(known, f, -torch.inf).flatten().argmax()] = 1
    dirs = [torch.randn(f.shape, generator=gen, dtype=torch.float64) for _ in range(3)] + [top.view(f.shape)]
    h = 1e-6
    for v in dirs:
        fd = (float(loss(f + h * v)) - float(loss(f - h * v))) / (2 * h)
        assert abs(float((x.grad * v).sum()) - fd) <= 1e-6 * max(1.0, abs(fd)), (float((x.grad * v).sum()), fd)
    # the gradient is zero at missing pixels (their values are not read)
    assert float(x.grad[~known].abs().max()) == 0.0


def test_float32_within_tolerance_of_float64():
    f, m = _image((40, 40)), _mask((40, 40), 0.05)
    u64 = inpaint_tv(f, m, tol=1e-5)
    u32 = inpaint_tv(f.float(), m, tol=1e-5)
    assert u32.dtype == torch.float32
    # stated tolerance: 1e-4 of the range (the two may stop a step apart; a step at this residual moves u less)
    assert float((u32.double() - u64).abs().max()) < 1e-4
    u16 = inpaint_tv(f.bfloat16(), m, tol=1e-5)
    assert u16.dtype == torch.bfloat16
    # the implicit gradient in float32: within 1e-4 of float64's, relative to its largest entry
    wts = torch.randn(40, 40, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    grads = []
    for dtype in (torch.float64, torch.float32):
        x = f.to(dtype).detach().requires_grad_()
        (inpaint_tv(x, m, tol=1e-5) * wts.to(dtype)).sum().backward()
        grads.append(x.grad.double())
    assert float((grads[1] - grads[0]).abs().max()) < 1e-4 * float(grads[0].abs().max())


def test_batch_equals_loop_and_colour_coupling():
    f = _image((2, 3, 12, 13))
    m = torch.stack([_mask((1, 12, 13), 0.15, seed=s) for s in (4, 5)])
    u = inpaint_tv(f, m, tol=1e-10, max_iter=2000)
    for b in range(2):
        np.testing.assert_allclose(u[b].numpy(), inpaint_tv(f[b], m[b], tol=1e-10, max_iter=2000).numpy(),
                                   atol=1e-8)
    # vectorial TV: a grey image repeated in C channels has C times the squared gradient, so each channel is
    # the grey inpainting with eps / sqrt(C)
    rep = inpaint_tv(f[0, :1].expand(3, -1, -1), m[0], eps=0.03, tol=1e-11, max_iter=2000)
    grey = inpaint_tv(f[0, 0], m[0, 0], eps=0.03 / 3 ** 0.5, tol=1e-11, max_iter=2000)
    np.testing.assert_allclose(rep.numpy(), grey.expand(3, -1, -1).numpy(), atol=1e-8)
    assert torch.equal(u[m.expand_as(u) > 0], f[m.expand_as(f) > 0])


def test_full_output_warning_and_solve_unchecked():
    f, m = _image((1, 1, 24, 24)), _mask((1, 1, 24, 24), 0.08)
    r = inpaint_tv(f, m, tol=1e-6, full_output=True)
    assert r.u.shape == f.shape and float(r.residual) <= 1e-6 and r.energy.shape[1] == int(r.outer_iterations) + 1
    np.testing.assert_allclose(solve_unchecked(f, m, tol=1e-6).numpy(), r.u.numpy(), atol=1e-5)
    with pytest.warns(RuntimeWarning, match="inpaint_tv: max_iter=1 reached"):
        inpaint_tv(f, m, tol=1e-12, max_iter=1)


def test_bad_input_messages():
    f, m = _image((8, 8)), _mask((8, 8), 0.3)
    cases = [
        (dict(f=f, mask=torch.zeros(8, 8)), "no known pixel"),
        (dict(f=f, mask=torch.ones(8, 7)), "does not fit f"),
        (dict(f=f, mask=m * 2), "binary"),
        (dict(f=f, mask=m, eps=-0.1), "eps must be a finite number > 0"),
        (dict(f=f, mask=m, tol=0), "tol must be a number in"),
        (dict(f=f, mask=m, max_iter=1.5), "max_iter must be a positive int"),
    ]
    for kwargs, match in cases:
        with pytest.raises(UserInputError, match=match):
            inpaint_tv(**kwargs)
    with pytest.raises(InputDtypeError, match="inpaint_tv: f must be a floating-point tensor"):
        inpaint_tv(torch.zeros(8, 8, dtype=torch.int32), m)


def _colour_energy_numpy(u, eps):
    """The vectorial smoothed TV of the module doc for (C, H, W) in NumPy (``s`` summed over the channels, one
    ``sqrt`` per pixel), with its gradient."""
    ey, ex = np.diff(u, axis=1), np.diff(u, axis=2)
    s = np.zeros(u.shape[1:])
    s[:-1] += (ey ** 2).sum(0)
    s[1:] += (ey ** 2).sum(0)
    s[:, :-1] += (ex ** 2).sum(0)
    s[:, 1:] += (ex ** 2).sum(0)
    r = np.sqrt(0.5 * s + eps ** 2)
    c = 0.5 / r
    gy, gx = (c[:-1] + c[1:]) * ey, (c[:, :-1] + c[:, 1:]) * ex
    grad = np.zeros_like(u)
    grad[:, :-1] -= gy
    grad[:, 1:] += gy
    grad[:, :, :-1] -= gx
    grad[:, :, 1:] += gx
    return r.sum(), grad


def test_per_channel_masks_against_scipy_and_finite_differences():
    # Channels with their own masks (as inpaint_eed and inpaint_diffusion take them): the coupled colour energy
    # minimised over each channel's unknowns, checked against L-BFGS on the energy written out in NumPy.
    f = _image((2, 10, 11), seed=3)
    m = _mask((2, 10, 11), 0.35, seed=4)
    assert not torch.equal(m[0], m[1])
    known = m.numpy() > 0
    rng = float(f[m > 0].max() - f[m > 0].min())
    eps = 0.05
    fn = f.numpy()

    ref = _minimiser(fn, known, _colour_energy_numpy, eps * rng)
    u = inpaint_tv(f, m, eps=eps, tol=1e-11, max_iter=2000)
    assert u.shape == f.shape
    np.testing.assert_allclose(u.numpy(), ref, atol=1e-6)
    # the implicit gradient with per-channel masks: against central differences, zero where a channel is missing
    wts = torch.randn(2, 10, 11, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def loss(x):
        return (inpaint_tv(x, m, eps=0.1, tol=1e-13, max_iter=3000) * wts).sum()

    x = f.clone().requires_grad_()
    loss(x).backward()
    v = torch.randn(f.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    h = 1e-6
    fd = (float(loss(f + h * v)) - float(loss(f - h * v))) / (2 * h)
    assert abs(float((x.grad * v).sum()) - fd) <= 1e-6 * max(1.0, abs(fd))
    assert float(x.grad[~torch.from_numpy(known)].abs().max()) == 0.0
