"""The discrete calculus: adjointness, boundary conditions, TV definitions."""
import numpy as np
import pytest
import torch

from _official_tvflownet import official_div_np, official_grad_np, official_tv_np
from pdeflow import ops
from pdeflow.ops import div, grad, laplacian, tv, tv_eps


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("shape", [(7, 5), (3, 16, 9), (2, 3, 11, 13)])
def test_div_is_negative_adjoint_of_grad(shape):
    u = _rand(*shape, seed=1)
    p = _rand(*shape[:-2], 2, *shape[-2:], seed=2)
    lhs = (grad(u) * p).sum()
    rhs = -(u * div(p)).sum()
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def test_grad_forward_differences_and_neumann_boundary():
    u = _rand(6, 8)
    g = grad(u)
    assert g.shape == (2, 6, 8)
    torch.testing.assert_close(g[0, :-1], u[1:] - u[:-1])
    torch.testing.assert_close(g[1, :, :-1], u[:, 1:] - u[:, :-1])
    assert g[0, -1].abs().max() == 0 and g[1, :, -1].abs().max() == 0


def test_laplacian_is_five_point_neumann_and_conserves_mass():
    u = _rand(9, 10)
    lap = laplacian(u)
    # Interior: the 5-point stencil.
    i, j = 4, 5
    assert torch.isclose(lap[i, j], u[i + 1, j] + u[i - 1, j] + u[i, j + 1] + u[i, j - 1] - 4 * u[i, j])
    # Corner with Neumann boundary: only two neighbours.
    assert torch.isclose(lap[0, 0], u[1, 0] + u[0, 1] - 2 * u[0, 0])
    # Neumann boundary conserves the sum; constants are in the kernel.
    assert abs(lap.sum()) < 1e-12
    assert laplacian(torch.full((5, 5), 3.0, dtype=torch.float64)).abs().max() == 0


def test_laplacian_eigenvalues_are_dct_frequencies():
    # cos(pi k (i + 1/2) / n) is an eigenvector of the 1-D Neumann Laplacian.
    n, k = 12, 3
    i = torch.arange(n, dtype=torch.float64)
    v = torch.cos(torch.pi * k * (i + 0.5) / n)
    u = v.expand(4, n).clone()
    lam = 2 * torch.cos(torch.tensor(torch.pi * k / n, dtype=torch.float64)) - 2
    torch.testing.assert_close(laplacian(u), lam * u, atol=1e-12, rtol=0)


def test_tv_values_shapes_and_colour_coupling():
    u = torch.zeros(2, 1, 6, 6, dtype=torch.float64)
    u[0, 0, :, 3:] = 2.0  # a vertical edge of height 2 over 6 rows
    assert tv(u).shape == (2,)
    torch.testing.assert_close(tv(u), torch.tensor([12.0, 0.0], dtype=torch.float64))
    assert tv(u[0]).dim() == 0 and tv(u[0, 0]).dim() == 0
    # Two channels with the same edge: coupled TV is sqrt(2) * one channel's, channelwise twice it.
    c = torch.cat([u[:1], u[:1]], dim=1)
    torch.testing.assert_close(tv(c), torch.tensor([12.0 * 2**0.5], dtype=torch.float64))
    torch.testing.assert_close(tv(c, channelwise=True), torch.tensor([24.0], dtype=torch.float64))
    # tv_eps adds eps per pixel where the gradient vanishes and tends to tv.
    assert torch.isclose(tv_eps(u[1], 0.5), torch.tensor(36 * 0.5, dtype=torch.float64))
    assert abs(tv_eps(u[0], 1e-8) - tv(u[0])) < 1e-6


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="p must have shape"):
        div(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="u must have shape"):
        tv(torch.zeros(1, 1, 1, 4, 4))


def test_as_batch_and_check_image():
    from pdeflow.errors import UserInputError
    u = torch.rand(5, 6)
    x, nd = ops.as_batch(u, "u0")
    assert x.shape == (1, 1, 5, 6) and nd == 2 and ops.unbatch(x, nd).shape == (5, 6)
    assert ops.as_batch(torch.rand(3, 5, 6))[0].shape == (1, 3, 5, 6)
    with pytest.raises(UserInputError, match=r"u0 must have shape \(H, W\)"):
        ops.as_batch(torch.rand(5), "u0")
    assert ops.check_image([[0.0]], "f").dtype == torch.float32      # a list: as torch.as_tensor makes it
    with pytest.raises(UserInputError, match="f must be a torch.Tensor, a NumPy array or a list"):
        ops.check_image("a picture", "f")
    with pytest.raises(UserInputError, match="f is on the 'meta' device"):
        ops.check_image(torch.zeros(3, 3, device="meta"), "f")
    with pytest.raises(TypeError, match="floating-point"):
        ops.check_image(torch.ones(3, 3, dtype=torch.int64), "f")
    with pytest.raises(UserInputError, match="NaN or infinite"):
        ops.check_image(torch.tensor([[0.0, float("nan")]]), "f")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_check_image_finds_one_non_finite_value_in_every_float_dtype(dtype, bad):
    """The finite test reads the extremes only: one NaN or infinity anywhere is found; the largest finite pass."""
    from pdeflow.errors import UserInputError
    big = torch.full((2, 3, 17, 19), torch.finfo(dtype).max, dtype=dtype)
    big[0, 1, 3] = -torch.finfo(dtype).max
    assert ops.check_image(big, "f", ndim=2) is big
    for index in [(0, 0, 0, 0), (1, 2, 16, 18), (1, 0, 8, 5)]:
        u = torch.rand(2, 3, 17, 19).to(dtype)
        u[index] = bad
        with pytest.raises(UserInputError, match="f contains NaN or infinite values"):
            ops.check_image(u, "f", ndim=2)


@pytest.mark.parametrize("shape", [(5, 7), (2, 6, 4), (3, 2, 8, 5), (2, 1, 2, 4, 6), (1, 1), (3, 50, 61)])
def test_laplacian_is_div_of_grad_for_every_shape(shape):
    """The stencil form (replicate padding) is div(grad(u)) of the calculus, for any leading axes, with grads;
    (3, 50, 61) is above LAPLACE_CONV_MAX_ELEMENTS, so both the convolution and the slices are checked."""
    u = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    torch.testing.assert_close(laplacian(u), div(grad(u)), atol=1e-14, rtol=0)
    (gl,) = torch.autograd.grad(laplacian(u).pow(2).sum(), u)
    (gd,) = torch.autograd.grad(div(grad(u)).pow(2).sum(), u)
    torch.testing.assert_close(gl, gd, atol=1e-13, rtol=0)


def test_laplacian_convolution_and_slices_agree():
    """The two ways laplacian computes the stencil (by size) give the same values in float32 and float64."""
    g = torch.Generator().manual_seed(3)
    for dtype, tol in ((torch.float64, 1e-14), (torch.float32, 1e-6)):
        u = torch.randn(4, 1, 64, 64, generator=g, dtype=torch.float64).to(dtype)
        assert u.numel() > ops.LAPLACE_CONV_MAX_ELEMENTS >= u[0].numel()
        one_by_one = torch.cat([laplacian(u[i:i + 1]) for i in range(4)])   # convolutions
        torch.testing.assert_close(laplacian(u), one_by_one, atol=tol, rtol=tol)


# --------------------------------------------------------------------------- the official TVflowNET convention
# Compared with a NumPy transcription of the official code's formulas (tests/_official_tvflownet.py).

@pytest.mark.parametrize("shape", [(5, 4), (7, 9), (12, 12)])
def test_zero_edges_is_the_official_tvflownet_convention(shape):
    u = _rand(*shape, seed=3)
    p = _rand(2, *shape, seed=4)
    ux, uy = official_grad_np(u.numpy())
    g = grad(u, zero_edges=True)
    np.testing.assert_allclose(g[0].numpy(), ux, rtol=0, atol=1e-15)
    np.testing.assert_allclose(g[1].numpy(), uy, rtol=0, atol=1e-15)
    np.testing.assert_allclose(div(p, zero_edges=True).numpy(), official_div_np(p[0].numpy(), p[1].numpy()),
                               rtol=0, atol=1e-14)
    for eps in (0.0, 1e-5, 0.3):
        assert tv_eps(u, eps, zero_edges=True).item() == pytest.approx(official_tv_np(u.numpy(), eps), rel=1e-14)
    # adjoint pair, as the Neumann one
    lhs = (g * p).sum()
    assert abs(lhs + (u * div(p, zero_edges=True)).sum()) <= 1e-12 * max(1.0, abs(lhs))
    # It differs from the Neumann convention exactly in the first row/column of the gradient ...
    gn = grad(u)
    assert (gn[0, 0] - g[0, 0]).abs().max() > 0 and (gn[1, :, 0] - g[1, :, 0]).abs().max() > 0
    torch.testing.assert_close(gn[0, 1:], g[0, 1:], rtol=0, atol=0)
    torch.testing.assert_close(gn[1, :, 1:], g[1, :, 1:], rtol=0, atol=0)
    assert tv_eps(u, 1e-5).item() > tv_eps(u, 1e-5, zero_edges=True).item()
    # ... and div coincides with pdeflow's for a field zeroed on a one-pixel border
    pz = p.clone()
    pz[:, 0, :] = pz[:, -1, :] = pz[:, :, 0] = pz[:, :, -1] = 0
    torch.testing.assert_close(div(pz, zero_edges=True), div(pz), rtol=0, atol=0)
    assert (div(p, zero_edges=True) - div(p)).abs().max() > 0


def test_zero_edges_batched_and_differentiable():
    u = _rand(2, 3, 6, 7, seed=5).requires_grad_()
    g = grad(u, zero_edges=True)
    for b in range(2):
        for c in range(3):
            ux, uy = official_grad_np(u[b, c].detach().numpy())
            np.testing.assert_allclose(g[b, c, 0].detach().numpy(), ux, atol=1e-15)
            np.testing.assert_allclose(g[b, c, 1].detach().numpy(), uy, atol=1e-15)
    p = _rand(2, 3, 2, 6, 7, seed=6)
    (div(g, zero_edges=True) * p[:, :, 0]).sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
