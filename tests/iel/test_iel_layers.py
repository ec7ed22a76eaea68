"""Inverse evolution layers: definition, spectrum, train/eval behaviour, operators, errors."""
import math

import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F

from pdeflow import ops
from pdeflow.iel import (
    EVOLUTIONS,
    Heat,
    InverseEvolution,
    PeronaMalik,
    SegmentationUNet,
    TVFlow,
    heat_iel_symbol,
    make_operator,
    official_heat_iel,
    with_iels,
)

STENCIL = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def _conv_laplacian_zero(u):
    """Zero-padded 5-point Laplacian by convolution, independent of pdeflow.ops."""
    C = u.shape[1]
    k = STENCIL.to(u.dtype).expand(C, 1, 3, 3)
    return F.conv2d(u, k, padding=1, groups=C)


@pytest.fixture
def u():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 13, 17, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("steps", [1, 5])
def test_heat_neumann_equals_repeated_explicit_steps(u, steps):
    dt = 0.07
    expected = u.clone()
    for _ in range(steps):
        expected = expected - dt * ops.laplacian(expected)
    got = InverseEvolution("heat", dt, steps, boundary="neumann")(u)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("steps", [1, 7])
def test_heat_zero_boundary_equals_zero_padded_convolution(u, steps):
    dt = 0.05
    expected = u.clone()
    for _ in range(steps):
        expected = expected - dt * _conv_laplacian_zero(expected)
    got = InverseEvolution("heat", dt, steps, boundary="zero")(u)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


def test_official_scaling_is_laplacian_over_four(u):
    # the official code: x - 0.1 * conv2d(x, laplacian/4, padding=1), 30 times
    expected = u.clone()
    for _ in range(30):
        expected = expected - 0.1 * _conv_laplacian_zero(expected) / 4
    torch.testing.assert_close(official_heat_iel(0.1, 30)(u), expected, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(InverseEvolution(Heat(scale=0.25), 0.1, 30)(u), expected, rtol=1e-12, atol=1e-9)


def test_symbol_neumann_dct_every_nonconstant_mode_amplified():
    H, W, dt, steps = 12, 9, 0.1, 3
    g = torch.Generator().manual_seed(1)
    u = torch.randn(1, 1, H, W, generator=g, dtype=torch.float64)
    out = InverseEvolution("heat", dt, steps, boundary="neumann")(u)
    # DCT-II diagonalises the Neumann 5-point Laplacian
    cu = scipy.fft.dctn(u[0, 0].numpy(), type=2, norm="ortho")
    co = scipy.fft.dctn(out[0, 0].numpy(), type=2, norm="ortho")
    gain = co / cu
    sym = heat_iel_symbol(H, W, dt, steps, boundary="neumann").numpy()
    np.testing.assert_allclose(gain, sym, rtol=1e-9)
    # independent closed form of the eigenvalues
    k, l = np.arange(H)[:, None], np.arange(W)[None, :]
    lam = (2 - 2 * np.cos(np.pi * k / H)) + (2 - 2 * np.cos(np.pi * l / W))
    np.testing.assert_allclose(sym, (1 + dt * lam) ** steps, rtol=1e-12)
    assert gain[0, 0] == pytest.approx(1.0, abs=1e-12)          # the constant mode is left alone
    nonconst = np.ones_like(gain, dtype=bool)
    nonconst[0, 0] = False
    assert (gain[nonconst] > 1 + 1e-6).all()
    # the highest frequency (checkerboard) is amplified most
    assert gain.max() == pytest.approx(gain[-1, -1])


def test_symbol_zero_boundary_dst_every_mode_amplified():
    H, W, dt = 10, 7, 0.2
    g = torch.Generator().manual_seed(2)
    u = torch.randn(1, 1, H, W, generator=g, dtype=torch.float64)
    out = InverseEvolution("heat", dt, 1, boundary="zero")(u)
    # DST-I diagonalises the Dirichlet (zero-padded) 5-point Laplacian
    gain = scipy.fft.dstn(out[0, 0].numpy(), type=1) / scipy.fft.dstn(u[0, 0].numpy(), type=1)
    np.testing.assert_allclose(gain, heat_iel_symbol(H, W, dt, 1, boundary="zero").numpy(), rtol=1e-9)
    assert (gain > 1 + 1e-6).all()


def test_amplifies_noise_more_than_smooth_signal():
    x = torch.linspace(0, 1, 32, dtype=torch.float64)
    smooth = torch.sin(math.pi * x)[:, None] * torch.sin(math.pi * x)[None, :]
    noise = 0.01 * torch.randn(32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    iel = InverseEvolution("heat", 0.025, 30, boundary="neumann")
    d_smooth = iel(smooth[None, None]) - smooth
    d_noise = iel((smooth + noise)[None, None]) - iel(smooth[None, None])
    assert d_noise.norm() / noise.norm() > 5 * d_smooth.norm() / smooth.norm()


def test_eval_output_is_the_networks_own_and_train_adds_iels():
    torch.manual_seed(0)
    unet = SegmentationUNet(1, 2, width=4, depth=3)
    net = with_iels(unet, "heat", dt=0.025, steps=30)
    x = torch.rand(2, 1, 16, 16)
    net.eval()
    unet.eval()
    assert torch.equal(net(x), unet(x))
    net.train()
    iel = InverseEvolution("heat", 0.025, 30)
    torch.testing.assert_close(net(x), iel(unet(x)))
    assert not torch.equal(net(x), unet(x))
    assert set(net.state_dict()) == {f"model.{k}" for k in unet.state_dict()}


def test_gradients_flow_through_the_layers():
    u = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    for op in EVOLUTIONS:                                 # every registered evolution
        InverseEvolution(make_operator(op), 0.02, 4)(u).square().sum().backward()
        assert u.grad is not None and torch.isfinite(u.grad).all()
        u.grad = None


@pytest.mark.parametrize("name", sorted(EVOLUTIONS))
def test_neumann_operators_keep_constants_and_the_mean(u, name):
    op = make_operator(name)
    c = torch.full((1, 2, 6, 5), 3.5, dtype=torch.float64)
    torch.testing.assert_close(InverseEvolution(op, 0.1, 3, boundary="neumann")(c), c)
    out = InverseEvolution(op, 0.01, 3, boundary="neumann")(u)
    torch.testing.assert_close(out.mean((-2, -1)), u.mean((-2, -1)), rtol=0, atol=1e-12)


def test_tv_and_perona_malik_limits_are_heat(u):
    # PM with huge kappa and TV with huge eps (times eps) reduce to the Laplacian
    for b in ("zero", "neumann"):
        lap = Heat()(u, b)
        torch.testing.assert_close(PeronaMalik(1e6)(u, b), lap, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(1e6 * TVFlow(1e6)(u, b), lap, rtol=1e-6, atol=1e-6)


def test_tv_flow_matches_independent_formula():
    u = torch.randn(1, 1, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    eps = 0.3
    a = u[0, 0].numpy()
    gx = np.zeros_like(a)
    gy = np.zeros_like(a)
    gx[:-1] = a[1:] - a[:-1]
    gy[:, :-1] = a[:, 1:] - a[:, :-1]
    n = np.sqrt(gx ** 2 + gy ** 2 + eps ** 2)
    px, py = gx / n, gy / n
    # backward-difference divergence with Neumann rows (px[-1] = py[:, -1] = 0)
    d = px.copy()
    d[1:] -= px[:-1]
    d += py
    d[:, 1:] -= py[:, :-1]
    np.testing.assert_allclose(TVFlow(eps)(u, "neumann")[0, 0].numpy(), d, rtol=1e-12, atol=1e-14)


def test_custom_operator_callable():
    calls = []

    def minus_u(v):      # takes only u: the boundary is left to it
        calls.append(v.shape)
        return -v
    u = torch.ones(1, 1, 4, 4)
    out = InverseEvolution(minus_u, 0.5, 2)(u)
    torch.testing.assert_close(out, torch.full_like(u, 1.5 ** 2))
    assert len(calls) == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(dt=0.0), "dt must be a finite number > 0"),
    (dict(dt=-0.1), "dt must be a finite number > 0"),
    (dict(dt=float("nan")), "dt must be a finite number > 0"),
    (dict(dt="0.1"), "dt must be a finite number > 0"),
    (dict(steps=0), "steps must be an int >= 1"),
    (dict(steps=-3), "steps must be an int >= 1"),
    (dict(steps=2.5), "steps must be an int >= 1"),
    (dict(boundary="periodic"), "boundary must be one of"),
    (dict(operator="laplace"), "name must be one of"),
])
def test_bad_arguments(kwargs, match):
    args = dict(operator="heat", dt=0.1, steps=3, boundary="zero")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        InverseEvolution(**args)


def test_bad_operator_type_and_inputs():
    with pytest.raises(TypeError, match="operator must be a callable"):
        InverseEvolution(3.0, 0.1, 2)
    iel = InverseEvolution("heat", 0.1, 2)
    for bad in (torch.zeros(8, 8), torch.zeros(2, 8, 8), torch.zeros(1, 1, 1, 1, 8, 8)):
        with pytest.raises(ValueError, match=r"input must have shape \(B, C, H, W\)"):
            iel(bad)
    with pytest.raises(TypeError, match="floating"):
        iel(torch.zeros(1, 1, 4, 4, dtype=torch.long))
    assert torch.equal(iel(np.zeros((1, 1, 4, 4))), iel(torch.zeros(1, 1, 4, 4, dtype=torch.float64)))
    with pytest.raises(ValueError, match="input must be a torch.Tensor, a NumPy array or a list"):
        iel("logits")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        with_iels(lambda x: x)
    for cls, name in ((TVFlow, "eps"), (PeronaMalik, "kappa"), (Heat, "scale")):
        with pytest.raises(ValueError, match=f"{name} must be"):
            cls(0.0)
