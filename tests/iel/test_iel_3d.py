"""Inverse evolution layers on 5-D logits (batches of volumes): spectrum, stencil, 2-D agreement, with_iels."""
import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from torch import nn

from pdeflow.iel import Heat, InverseEvolution, PeronaMalik, TVFlow, heat_iel_symbol, with_iels


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_heat_iel_on_a_volume_multiplies_each_dct_mode_by_its_symbol_neumann():
    D, H, W, dt, steps = 5, 7, 6, 0.04, 3
    u = _rand(1, 1, D, H, W)
    out = InverseEvolution("heat", dt, steps, boundary="neumann")(u)
    cu = scipy.fft.dctn(u[0, 0].numpy(), type=2, norm="ortho")
    co = scipy.fft.dctn(out[0, 0].numpy(), type=2, norm="ortho")
    sym = heat_iel_symbol(H, W, dt, steps, boundary="neumann", depth=D).numpy()
    assert sym.shape == (D, H, W)
    np.testing.assert_allclose(co, sym * cu, rtol=0, atol=1e-11)
    # the constant mode alone is left as it is; the highest frequency is amplified the most
    assert sym[0, 0, 0] == 1.0 and (sym.reshape(-1)[1:] > 1).all() and sym.max() == sym[-1, -1, -1]


def test_heat_iel_on_a_volume_multiplies_each_dst_mode_by_its_symbol_zero_boundary():
    D, H, W, dt = 4, 6, 5, 0.03
    u = _rand(1, 1, D, H, W, seed=1)
    out = InverseEvolution("heat", dt, 1, boundary="zero")(u)
    gain = scipy.fft.dstn(out[0, 0].numpy(), type=1) / scipy.fft.dstn(u[0, 0].numpy(), type=1)
    np.testing.assert_allclose(gain, heat_iel_symbol(H, W, dt, 1, boundary="zero", depth=D).numpy(), rtol=1e-9)


def test_heat_iel_zero_boundary_on_volumes_is_the_zero_padded_seven_point_convolution():
    u = _rand(2, 3, 5, 6, 7, seed=2)
    k = torch.zeros(3, 3, 3, dtype=torch.float64)
    k[1, 1, 1] = -6
    for idx in ((0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)):
        k[idx] = 1
    dt, expected = 0.05, u.clone()
    for _ in range(4):
        expected = expected - dt * F.conv3d(expected, k.expand(3, 1, 3, 3, 3), padding=1, groups=3)
    torch.testing.assert_close(InverseEvolution("heat", dt, 4, boundary="zero")(u), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("operator", [Heat(), TVFlow(0.2), PeronaMalik(0.7)])
def test_a_volume_constant_along_d_evolves_as_its_2d_slices_neumann(operator):
    img = _rand(2, 3, 9, 8, seed=3)
    vol = img[:, :, None].expand(2, 3, 4, 9, 8).contiguous()
    iel = InverseEvolution(operator, 0.02, 3, boundary="neumann")
    torch.testing.assert_close(iel(vol), iel(img)[:, :, None].expand_as(vol), rtol=0, atol=1e-12)


@pytest.mark.parametrize("operator", ["heat", "tv", "perona-malik"])
def test_volume_operators_neumann_conserve_mass_and_keep_constants(operator):
    u = _rand(2, 2, 4, 5, 6, seed=4)
    iel = InverseEvolution(operator, 0.01, 1, boundary="neumann")
    out = iel(u)
    assert out.shape == u.shape
    torch.testing.assert_close(out.sum(dim=(2, 3, 4)), u.sum(dim=(2, 3, 4)), rtol=0, atol=1e-11)
    c = torch.full((1, 1, 3, 4, 5), 0.7, dtype=torch.float64)
    torch.testing.assert_close(iel(c), c, rtol=0, atol=0)
    # the zero boundary does not keep a constant (zero logits outside): the border is raised
    z = InverseEvolution(operator, 0.01, 1, boundary="zero")(c)
    assert z[0, 0, 0, 0, 0] > 0.7 and torch.isclose(z[0, 0, 1, 1, 1], torch.tensor(0.7, dtype=torch.float64))


class _TinySeg3d(nn.Module):
    """Two 3-D convolutions: (B, 1, D, H, W) images to (B, 2, D, H, W) class logits."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv3d(1, 4, 3, padding=1)
        self.b = nn.Conv3d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_with_iels_wraps_a_3d_segmentation_network():
    torch.manual_seed(0)
    net = _TinySeg3d()
    wrapped = with_iels(net, "heat", dt=0.02, steps=5)
    x = torch.randn(2, 1, 6, 8, 7)
    target = torch.randint(0, 2, (2, 6, 8, 7))
    wrapped.train()
    logits = wrapped(x)
    assert logits.shape == (2, 2, 6, 8, 7)
    # the IELs changed the logits (amplified their high frequencies) ...
    assert not torch.allclose(logits, net(x))
    torch.testing.assert_close(logits, InverseEvolution("heat", 0.02, 5)(net(x)))
    loss = F.cross_entropy(logits, target)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and g.shape == p.shape and torch.isfinite(g).all() and g.abs().sum() > 0
               for g, p in zip(grads, net.parameters()))
    # ... and in eval mode the output is the network's own, bit for bit
    wrapped.eval()
    with torch.no_grad():
        assert torch.equal(wrapped(x), net(x))
    assert set(wrapped.state_dict()) == {f"model.{k}" for k in net.state_dict()}


@pytest.mark.parametrize("operator", ["tv", "perona-malik"])
def test_nonlinear_volume_iels_are_differentiable(operator):
    u = _rand(1, 1, 3, 4, 3, seed=5).requires_grad_()
    iel = InverseEvolution(operator, 0.01, 2, boundary="zero")
    assert torch.autograd.gradcheck(iel, (u,))


def test_heat_iel_symbol_2d_is_unchanged_by_depth_keyword():
    s2 = heat_iel_symbol(5, 6, 0.1, 2, boundary="zero")
    s3 = heat_iel_symbol(5, 6, 0.1, 2, boundary="zero", depth=1)
    assert s2.shape == (5, 6) and s3.shape == (1, 5, 6)
    # a depth of one adds the lowest DST mode of a length-1 axis: 4 sin^2(pi / 4) = 2
    torch.testing.assert_close((s3[0] ** 0.5 - 1) / 0.1, (s2 ** 0.5 - 1) / 0.1 + 2.0)
