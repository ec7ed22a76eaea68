"""The discrete calculus on volumes (ndim=3) and with a grid spacing: adjointness, stencils, TV in physical units."""
import math

import pytest
import torch

from pdeflow import ops
from pdeflow.errors import UserInputError
from pdeflow.ops import div, grad, gradient_norm, laplacian, tv, tv_eps


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _adjoint_gap(u, p, **kw):
    lhs = (grad(u, **kw) * p).sum()
    rhs = -(u * div(p, **kw)).sum()
    return abs(lhs - rhs).item() / max(1.0, abs(lhs).item())


# --------------------------------------------------------------------------- adjointness

@pytest.mark.parametrize("shape", [(4, 5, 6), (2, 7, 3, 5), (2, 3, 5, 4, 6), (1, 1, 1, 1, 3), (3, 1, 4)])
@pytest.mark.parametrize("spacing", [None, (2.5, 0.7, 0.7), (0.3, 1.9, 1.1)])
@pytest.mark.parametrize("zero_edges", [False, True])
def test_div_is_negative_adjoint_of_grad_3d(shape, spacing, zero_edges):
    u = _rand(*shape, seed=1)
    p = _rand(*shape[:-3], 3, *shape[-3:], seed=2)
    kw = dict(ndim=3, spacing=spacing, zero_edges=zero_edges)
    assert grad(u, **kw).shape == p.shape and div(p, **kw).shape == u.shape
    assert _adjoint_gap(u, p, **kw) <= 1e-12


@pytest.mark.parametrize("shape", [(7, 5), (3, 16, 9), (2, 3, 11, 13)])
@pytest.mark.parametrize("spacing", [(0.7, 2.5), 0.4])
def test_div_is_negative_adjoint_of_grad_2d_with_spacing(shape, spacing):
    u = _rand(*shape, seed=3)
    p = _rand(*shape[:-2], 2, *shape[-2:], seed=4)
    for zero_edges in (False, True):
        assert _adjoint_gap(u, p, spacing=spacing, zero_edges=zero_edges) <= 1e-12


# --------------------------------------------------------------------------- stencils and boundaries

def test_grad_3d_forward_differences_neumann_and_spacing():
    u = _rand(5, 6, 7)
    g = grad(u, ndim=3)
    assert g.shape == (3, 5, 6, 7)
    torch.testing.assert_close(g[0, :-1], u[1:] - u[:-1], rtol=0, atol=0)
    torch.testing.assert_close(g[1, :, :-1], u[:, 1:] - u[:, :-1], rtol=0, atol=0)
    torch.testing.assert_close(g[2, :, :, :-1], u[:, :, 1:] - u[:, :, :-1], rtol=0, atol=0)
    assert g[0, -1].abs().max() == 0 and g[1, :, -1].abs().max() == 0 and g[2, :, :, -1].abs().max() == 0
    gh = grad(u, spacing=(2.0, 0.5, 4.0))            # length 3 implies ndim=3
    torch.testing.assert_close(gh, g / torch.tensor([2.0, 0.5, 4.0], dtype=u.dtype).view(3, 1, 1, 1))
    # zero_edges also zeroes the first slab of each normal component, nothing else
    gz = grad(u, ndim=3, zero_edges=True)
    assert gz[0, 0].abs().max() == 0 and gz[1, :, 0].abs().max() == 0 and gz[2, :, :, 0].abs().max() == 0
    torch.testing.assert_close(gz[0, 1:], g[0, 1:], rtol=0, atol=0)


def test_a_volume_constant_along_d_has_the_2d_gradient_and_laplacian():
    img = _rand(2, 9, 8)                               # (C, H, W)
    vol = img[:, None].expand(2, 5, 9, 8).contiguous()  # (C, D, H, W), constant along D
    g3 = grad(vol, ndim=3)
    assert g3[:, 0].abs().max() == 0
    torch.testing.assert_close(g3[:, 1:], grad(img)[:, :, None].expand(2, 2, 5, 9, 8), rtol=0, atol=0)
    torch.testing.assert_close(laplacian(vol, ndim=3), laplacian(img)[:, None].expand_as(vol), rtol=0, atol=1e-13)
    # ... and the volume's TV is D slices of the image's
    torch.testing.assert_close(tv(vol, ndim=3), 5 * tv(img), rtol=1e-13, atol=0)
    torch.testing.assert_close(tv(vol, spacing=(2.5, 0.7, 0.6)), 5 * 2.5 * tv(img, spacing=(0.7, 0.6)),
                               rtol=1e-13, atol=0)


def test_laplacian_3d_is_seven_point_neumann_and_spacing_weighted():
    u = _rand(6, 7, 8)
    lap = laplacian(u, ndim=3)
    i, j, k = 3, 4, 5
    expected = (u[i + 1, j, k] + u[i - 1, j, k] + u[i, j + 1, k] + u[i, j - 1, k] + u[i, j, k + 1]
                + u[i, j, k - 1] - 6 * u[i, j, k])
    assert torch.isclose(lap[i, j, k], expected, rtol=0, atol=1e-13)
    assert torch.isclose(lap[0, 0, 0], u[1, 0, 0] + u[0, 1, 0] + u[0, 0, 1] - 3 * u[0, 0, 0], rtol=0, atol=1e-13)
    assert abs(lap.sum()) < 1e-12                      # Neumann: mass conserved
    assert laplacian(torch.full((3, 4, 5), 2.0, dtype=torch.float64), ndim=3).abs().max() == 0
    dz, dy, dx = 2.5, 0.7, 0.4
    lh = laplacian(u, spacing=(dz, dy, dx))
    expected = ((u[i + 1, j, k] + u[i - 1, j, k] - 2 * u[i, j, k]) / dz**2
                + (u[i, j + 1, k] + u[i, j - 1, k] - 2 * u[i, j, k]) / dy**2
                + (u[i, j, k + 1] + u[i, j, k - 1] - 2 * u[i, j, k]) / dx**2)
    assert torch.isclose(lh[i, j, k], expected, rtol=1e-13, atol=0)
    # 2-D with a spacing
    v = _rand(9, 10)
    lv = laplacian(v, spacing=(0.7, 2.5))
    expected = (v[5, 4] + v[3, 4] - 2 * v[4, 4]) / 0.49 + (v[4, 5] + v[4, 3] - 2 * v[4, 4]) / 6.25
    assert torch.isclose(lv[4, 4], expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("shape", [(4, 5, 6), (2, 3, 4, 5, 6), (1, 1, 1), (2, 9, 1, 7)])
@pytest.mark.parametrize("spacing", [None, (2.5, 0.7, 0.7)])
def test_laplacian_3d_is_div_of_grad_with_gradients(shape, spacing):
    u = _rand(*shape, seed=5).requires_grad_()
    kw = dict(ndim=3, spacing=spacing)
    torch.testing.assert_close(laplacian(u, **kw), div(grad(u, **kw), **kw), atol=1e-13, rtol=0)
    (gl,) = torch.autograd.grad(laplacian(u, **kw).pow(2).sum(), u)
    (gd,) = torch.autograd.grad(div(grad(u, **kw), **kw).pow(2).sum(), u)
    torch.testing.assert_close(gl, gd, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(5, 7), (3, 50, 61), (2, 1, 6, 4)])
def test_laplacian_2d_with_spacing_is_div_of_grad(shape):
    u = _rand(*shape, seed=6)
    h = (0.7, 2.5)
    torch.testing.assert_close(laplacian(u, spacing=h), div(grad(u, spacing=h), spacing=h), atol=1e-13, rtol=0)


def test_laplacian_3d_eigenvectors_are_dct_modes():
    # cos(pi k (i + 1/2) / n) along each axis; eigenvalue sum_k (2 cos(pi k / n) - 2) / h_k^2
    shape, modes, h = (6, 8, 10), (2, 3, 1), (2.5, 0.7, 1.3)
    u = torch.ones(shape, dtype=torch.float64)
    lam = 0.0
    for axis, (n, k, hk) in enumerate(zip(shape, modes, h)):
        v = torch.cos(torch.pi * k * (torch.arange(n, dtype=torch.float64) + 0.5) / n)
        u = u * v.view([-1 if a == axis else 1 for a in range(3)])
        lam += (2 * math.cos(math.pi * k / n) - 2) / hk**2
    torch.testing.assert_close(laplacian(u, spacing=h), lam * u, atol=1e-12, rtol=0)


def test_unit_spacing_is_the_unit_grid_bit_for_bit():
    u = _rand(2, 3, 12, 13)
    for f in (grad, laplacian):
        torch.testing.assert_close(f(u, spacing=(1.0, 1.0)), f(u), rtol=0, atol=0)
        torch.testing.assert_close(f(u, spacing=1), f(u), rtol=0, atol=0)
    p = grad(u)
    torch.testing.assert_close(div(p, spacing=(1, 1)), div(p), rtol=0, atol=0)
    torch.testing.assert_close(tv(u, spacing=(1.0, 1.0)), tv(u), rtol=0, atol=0)
    # a number is the same spacing on every axis
    v = _rand(4, 5, 6)
    torch.testing.assert_close(grad(v, spacing=0.5, ndim=3), grad(v, spacing=(0.5, 0.5, 0.5)), rtol=0, atol=0)


# --------------------------------------------------------------------------- TV in physical units

@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.7), (0.3, 1.7, 0.9)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_tv_of_a_linear_ramp_is_slope_times_extent(spacing, axis):
    D, H, W, s = 5, 6, 7, 1.7
    shape = (D, H, W)
    pos = torch.arange(shape[axis], dtype=torch.float64) * spacing[axis]
    u = (s * pos).view([-1 if a == axis else 1 for a in range(3)]).expand(shape)
    cells = [n * h for n, h in zip(shape, spacing)]      # extent of the voxel cells along each axis
    ramp_extent = (shape[axis] - 1) * spacing[axis]        # first to last sample centre along the ramp
    expected = s * ramp_extent * math.prod(c for a, c in enumerate(cells) if a != axis)
    assert tv(u, spacing=spacing).item() == pytest.approx(expected, rel=1e-13)
    # the 2-D case: a ramp along W in an (H, W) image with (dy, dx)
    img = (s * torch.arange(W, dtype=torch.float64) * spacing[2]).expand(H, W)
    assert tv(img, spacing=spacing[1:]).item() == pytest.approx(s * (W - 1) * spacing[2] * H * spacing[1], rel=1e-13)


def _gaussian(spacing, sigma, half_extent):
    axes = []
    for h in spacing:
        n = int(round(2 * half_extent / h)) + 1
        axes.append((torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * h)
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    sz, sy, sx = sigma
    return torch.exp(-0.5 * ((z / sz) ** 2 + (y / sy) ** 2 + (x / sx) ** 2))


def test_tv_of_a_ct_like_anisotropic_voxel_grid_matches_analytic_and_a_finer_unit_grid():
    """A Gaussian sampled on CT voxels (dz, dy, dx) = (2.5, 0.7, 0.7) mm has the TV of the continuum, to the
    discretisation error, and agrees with a finer isotropic (unit) grid; ignoring the spacing is badly off."""
    ct = (2.5, 0.7, 0.7)
    # isotropic: TV = int |grad u| = 8 pi sigma^2 in closed form (the domain +-6 sigma holds all of it)
    sigma = 6.0
    exact = 8 * math.pi * sigma**2
    u_ct = _gaussian(ct, (sigma,) * 3, 36.0)
    u_unit = _gaussian((1.0, 1.0, 1.0), (sigma,) * 3, 36.0)
    tv_ct, tv_unit = tv(u_ct, spacing=ct).item(), tv(u_unit, ndim=3).item()
    assert abs(tv_ct / exact - 1) < 2e-3 and abs(tv_unit / exact - 1) < 1e-3
    assert abs(tv(u_ct, ndim=3).item() * math.prod(ct) / exact - 1) > 0.3      # spacing ignored
    # anisotropic Gaussian (no closed form): against the same function on the unit grid
    sig = (9.0, 6.0, 4.0)
    u_ct = _gaussian(ct, sig, 45.0)
    ref = tv(_gaussian((1.0, 1.0, 1.0), sig, 45.0), ndim=3).item()
    assert abs(tv(u_ct, spacing=ct).item() / ref - 1) < 2e-3
    # the axes matter: the same samples read with the spacing reversed are far off
    assert abs(tv(u_ct, spacing=ct[::-1]).item() / ref - 1) > 0.3


def test_tv_and_tv_eps_3d_shapes_channels_and_eps():
    u = torch.zeros(2, 1, 4, 5, 6, dtype=torch.float64)
    u[0, 0, :, :, 3:] = 2.0                            # a plane edge of height 2 across 4 x 5 voxels
    assert tv(u, ndim=3).shape == (2,)
    torch.testing.assert_close(tv(u, ndim=3), torch.tensor([40.0, 0.0], dtype=torch.float64))
    assert tv(u[0], ndim=3).dim() == 0 and tv(u[0, 0], ndim=3).dim() == 0
    c = torch.cat([u[:1], u[:1]], dim=1)
    torch.testing.assert_close(tv(c, ndim=3), torch.tensor([40.0 * 2**0.5], dtype=torch.float64))
    torch.testing.assert_close(tv(c, ndim=3, channelwise=True), torch.tensor([80.0], dtype=torch.float64))
    # eps enters at every voxel, times the voxel volume with a spacing
    assert tv_eps(u[1], 0.5, ndim=3).item() == pytest.approx(120 * 0.5)
    assert tv_eps(u[1], 0.5, spacing=(2.0, 1.0, 0.5)).item() == pytest.approx(120 * 0.5 * 1.0)
    g = grad(c, ndim=3)
    assert gradient_norm(g, ndim=3).shape == (1, 1, 4, 5, 6)
    assert gradient_norm(g, ndim=3, channelwise=True).shape == (1, 2, 4, 5, 6)


def test_tv_eps_3d_gradient_matches_finite_differences():
    u = _rand(1, 1, 3, 4, 5, seed=7).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: tv_eps(x, 0.3, spacing=(2.5, 0.7, 0.9)), (u,))


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, match", [
    (lambda: grad(torch.zeros(4, 4, 4), ndim=2, spacing=(1.0, 1.0, 1.0)), r"spacing .* has 3 values but ndim=2"),
    (lambda: grad(torch.zeros(4, 4, 4), ndim=4), r"ndim \(the number of spatial axes\) must be 2 or 3"),
    (lambda: div(torch.zeros(2, 4, 4, 4), ndim=3), r"p must have shape \(\.\.\., 3, D, H, W\)"),
    (lambda: laplacian(torch.zeros(4, 4), ndim=3), r"u must have at least 3 dimensions"),
    (lambda: tv(torch.zeros(4, 4), ndim=3), r"u must have shape \(D, H, W\)"),
    (lambda: tv(torch.zeros(1, 1, 1, 4, 4, 4), ndim=3), r"u must have shape \(D, H, W\)"),
    (lambda: tv(torch.zeros(4, 4), spacing=(1.0, -2.0)), r"spacing must hold finite numbers > 0"),
    (lambda: tv(torch.zeros(4, 4), spacing=(1.0, float("nan"))), r"spacing must hold finite numbers > 0"),
    (lambda: tv(torch.zeros(4, 4), spacing=(1.0,)), r"spacing must have 2 values \(dy, dx\) or 3"),
    (lambda: tv(torch.zeros(4, 4), spacing="1,1"), r"spacing must hold finite numbers"),
    (lambda: gradient_norm(torch.zeros(1, 1, 2, 3, 3), ndim=1), r"ndim"),
])
def test_bad_ndim_and_spacing_are_refused_with_a_message(call, match):
    with pytest.raises(UserInputError, match=match):
        call()


def test_default_stays_2d_a_5d_tensor_is_a_stack_of_images():
    u = _rand(2, 3, 4, 5, 6)
    assert grad(u).shape == (2, 3, 4, 2, 5, 6)
    with pytest.raises(UserInputError, match=r"u must have shape \(H, W\)"):
        ops.tv(u)
