"""The symmetries of the square on pixels and on the flux grid, and the DihedralMean wrapper."""
from __future__ import annotations

import pytest
import torch

from pdeflow import ops
from pdeflow.errors import UserInputError
from pdeflow.tv import tv_flow
from pdeflow.tvflownet import build_model
from pdeflow.tvflownet.symmetry import DihedralMean, Equivariant, dihedral, flow_model


def _used(phi: torch.Tensor) -> torch.Tensor:
    """phi with the slots that no divergence reads (last row of component 0, last column of 1) zeroed."""
    phi = phi.clone()
    phi[..., 0, -1, :] = 0
    phi[..., 1, :, -1] = 0
    return phi


def _field(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("k", range(8))
def test_dihedral_commutes_with_div_and_grad(k):
    u, p = _field((2, 1, 5, 7)), _field((2, 1, 2, 5, 7), 1)
    gu, gp = dihedral(u, p, k)
    torch.testing.assert_close(ops.div(gp), dihedral(ops.div(p), None, k)[0], rtol=0, atol=1e-13)
    torch.testing.assert_close(dihedral(u, ops.grad(u), k)[1], ops.grad(gu), rtol=0, atol=0)


@pytest.mark.parametrize("k", range(8))
def test_dihedral_inverse_undoes_it(k):
    u, p = _field((1, 2, 6, 4)), _field((1, 2, 2, 6, 4), 1)
    back_u, back_p = dihedral(*dihedral(u, p, k), k, inverse=True)
    torch.testing.assert_close(back_u, u, rtol=0, atol=0)
    torch.testing.assert_close(_used(back_p), _used(p), rtol=0, atol=0)


def test_the_eight_elements_are_distinct():
    u = _field((3, 3))
    seen = {tuple(dihedral(u, None, k)[0].flatten().tolist()) for k in range(8)}
    assert len(seen) == 8


def test_dihedral_rejects_a_bad_element():
    with pytest.raises(UserInputError, match="k must be an int in 0..7"):
        dihedral(torch.zeros(3, 3), None, 8)


def _tiny(dtype=torch.float64):
    torch.manual_seed(0)
    return build_model("semiresnet", width=4, depth=3).to(dtype).eval()


@pytest.mark.parametrize("group", ["transpose", "square"])
def test_dihedral_mean_is_exactly_equivariant_under_its_group(group):
    """An untrained network is not equivariant; its mean over a group is, for u and for div phi."""
    m = DihedralMean(_tiny(), group)
    u0 = _field((2, 1, 10, 8)).abs()
    t = torch.tensor([0.1, 0.6], dtype=torch.float64)
    with torch.no_grad():
        u, phi = m(u0, t)
        for k in DihedralMean.GROUPS[group]:
            gu, gphi = m(dihedral(u0, None, k)[0], t)
            want_u, want_phi = dihedral(u, phi, k)
            torch.testing.assert_close(gu, want_u, rtol=0, atol=1e-12)
            torch.testing.assert_close(ops.div(gphi), ops.div(want_phi), rtol=0, atol=1e-12)


def test_the_bare_network_and_the_transpose_mean_are_not_flip_equivariant():
    """(so that the test above can fail)"""
    u0 = _field((1, 1, 10, 8)).abs()
    for m in (_tiny(), DihedralMean(_tiny(), "transpose")):
        with torch.no_grad():
            u, _ = m(u0, 0.3)
            gu, _ = m(dihedral(u0, None, 5)[0], 0.3)
        assert (gu - dihedral(u, None, 5)[0]).abs().max() > 1e-6


def _reference(x):
    u, _, p = tv_flow(x, [0.2], dt=0.01, tol=1e-10, max_iter=50000, return_ut=True, return_dual=True)
    return u[0], p[0]


def test_the_reference_flow_commutes_with_the_transposition_only():
    """The discrete flow's symmetry group, which is why group="transpose" is the default: the transposed
    image's flow and dual field are the transposed ones; a flip (forward differences become backward ones)
    gives another flow."""
    u0 = 5 * _field((1, 1, 12, 9)).abs()
    u, p = _reference(u0)
    gu, gp = _reference(dihedral(u0, None, 4)[0])
    want_u, want_p = dihedral(u, p, 4)
    torch.testing.assert_close(gu, want_u, rtol=0, atol=1e-6)
    torch.testing.assert_close(ops.div(gp), ops.div(want_p), rtol=0, atol=1e-5)
    for k in (1, 2, 3):
        assert (_reference(dihedral(u0, None, k)[0])[0] - dihedral(u, None, k)[0]).abs().max() > 0.05


def test_dihedral_mean_rejects_an_unknown_group():
    with pytest.raises(UserInputError, match="group must be one of 'transpose', 'square'"):
        DihedralMean(_tiny(), "rotations")


def test_dihedral_mean_wraps_an_equivariant_model_and_keeps_its_description():
    inner = _tiny()
    inner.meta = {"config": {"scale": 5.0, "t_max": 1.0}}
    m = DihedralMean(Equivariant(inner), "square")
    assert m.meta is inner.meta and m.in_channels == inner.in_channels
    u, phi = m(_field((9, 11)).abs(), 0.2)
    assert u.shape == (9, 11) and phi.shape == (2, 9, 11)


def test_flow_symmetry_option_averages_the_network():
    from pdeflow.tvflownet import flow
    m = _tiny(torch.float32)
    m.meta = {"config": {"scale": 5.0, "t_max": 1.0}}
    u0 = torch.rand(2, 1, 10, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want_u, want_phi = DihedralMean(Equivariant(m), "transpose")(u0, 0.1)
    u, phi = flow(u0, [0.1], m, symmetry="transpose", return_dual=True)
    torch.testing.assert_close(u[0], want_u)
    torch.testing.assert_close(phi[0], want_phi)
    bare = flow(u0, [0.1], m, equivariant=False, symmetry="square")
    with torch.no_grad():
        torch.testing.assert_close(bare[0], DihedralMean(m, "square")(5 * u0, 0.5)[0] / 5)
    with pytest.raises(UserInputError, match="symmetry must be None or one of 'transpose', 'square'"):
        flow(u0, [0.1], m, symmetry="flip")


def test_flow_model_takes_the_symmetry_mean_over_the_equivariant_model_and_wraps_once():
    inner = _tiny()
    m = flow_model(inner)
    assert isinstance(m, DihedralMean) and m.group == "transpose"
    assert isinstance(m.model, Equivariant) and m.model.model is inner and m.model.contrast == "range"
    assert flow_model(m, symmetry=None) is m                     # no second Equivariant around a wrapped model
    assert flow_model(inner, equivariant=False, symmetry=None) is inner
    std = flow_model(inner, contrast="std", symmetry="square")
    assert std.model.contrast == "std" and std.group == "square"
