"""TVflowNET architectures: sizes, shapes, boundary condition, d/dt, training step, config."""
import json

import pytest
import torch

from pdeflow import ops
from pdeflow.tvflownet import (
    PAPER_PARAMETER_COUNTS,
    TVFlowLoss,
    build_model,
    count_parameters,
    time_derivative,
)

ARCHS = ["semiresnet", "unet", "lgd"]

# torch.func.jvp loads its decompositions with torch.jit.script once, which warns in torch >= 2.9
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_count_matches_paper(arch):
    n = count_parameters(build_model(arch))
    ref = PAPER_PARAMETER_COUNTS[arch]
    print(f"{arch}: {n} parameters (paper {ref}, {100 * (n / ref - 1):+.2f} %)")
    assert abs(n / ref - 1) <= 0.05


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(33, 47), (16, 16), (5, 7)])
def test_shapes_border_and_projection(arch, size):
    torch.manual_seed(0)
    model = build_model(arch)
    H, W = size
    u0 = torch.rand(3, 1, H, W)
    t = torch.tensor([0.0, 0.3, 0.9])
    u, phi = model(u0, t)
    assert u.shape == (3, 1, H, W)
    assert phi.shape == (3, 1, 2, H, W)
    assert ops.div(phi).shape == u.shape
    assert torch.isfinite(u).all() and torch.isfinite(phi).all()
    # hard Dirichlet constraint on a 1-pixel border
    assert phi[..., 0, :].abs().max() == 0 and phi[..., -1, :].abs().max() == 0
    assert phi[..., :, 0].abs().max() == 0 and phi[..., :, -1].abs().max() == 0
    assert phi[..., 1:-1, 1:-1].abs().max() > 0
    # projection onto |phi| <= 1
    assert (phi ** 2).sum(-3).sqrt().max() <= 1 + 1e-6


def test_border_convention_and_the_reference_flux():
    """The reference flow's flux p has div(p) = u_t up to the edge; zeroing a 1-pixel border of it
    (edge_width=1, the paper's) loses u_t on the border rows and columns, edge_width=0 keeps it exact."""
    from pdeflow.tv import tv_flow
    from pdeflow.tvflownet.architectures import zero_border
    torch.manual_seed(1)
    u0 = 5 * torch.rand(1, 1, 12, 12, dtype=torch.float64)
    _, ut, p = tv_flow(u0, [0.1], dt=0.05, tol=1e-9, max_iter=20000, return_ut=True, return_dual=True)
    assert torch.allclose(ops.div(zero_border(p[0], 0)), ut[0], atol=1e-10)
    err = (ops.div(zero_border(p[0], 1)) - ut[0]).abs()[0, 0]
    border = torch.ones(12, 12, dtype=torch.bool)
    border[2:-1, 2:-1] = False          # the first two rows/columns and the last ones feel the zeroed flux
    assert err[~border].max() < 1e-10
    assert err[border].max() > 1e-2


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("edge_width", [0, 2])
def test_edge_width_option(arch, edge_width):
    torch.manual_seed(0)
    model = build_model(arch, edge_width=edge_width)
    _, phi = model(torch.rand(2, 1, 16, 16), torch.tensor([0.1, 0.5]))
    w = edge_width
    if w == 0:
        assert phi[..., 0, :].abs().max() > 0 and phi[..., :, -1].abs().max() > 0
    else:
        assert phi[..., :w, :].abs().max() == 0 and phi[..., -w:, :].abs().max() == 0
        assert phi[..., :, :w].abs().max() == 0 and phi[..., :, -w:].abs().max() == 0
        assert phi[..., w:-w, w:-w].abs().max() > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_time_argument_forms_and_unbatched_input(arch):
    torch.manual_seed(0)
    model = build_model(arch)
    u0 = torch.rand(2, 1, 12, 10)
    u_a, phi_a = model(u0, 0.25)
    u_b, phi_b = model(u0, torch.tensor(0.25))
    u_c, phi_c = model(u0, torch.full((2,), 0.25))
    assert torch.equal(u_a, u_b) and torch.equal(u_a, u_c) and torch.equal(phi_a, phi_c)
    # per-image times: image 1 at t=0.7 equals the batch-of-one evaluation
    u_d, _ = model(u0, torch.tensor([0.25, 0.7]))
    u_e, _ = model(u0[1:], 0.7)
    torch.testing.assert_close(u_d[1:], u_e)
    # (H, W) and (C, H, W) inputs keep their shape
    u2, phi2 = model(u0[0, 0], 0.25)
    assert u2.shape == (12, 10) and phi2.shape == (2, 12, 10)
    torch.testing.assert_close(u2, u_a[0, 0])
    u3, phi3 = model(u0[0], 0.25)
    assert u3.shape == (1, 12, 10) and phi3.shape == (1, 2, 12, 10)


@pytest.mark.parametrize("arch", ARCHS)
def test_colour_option(arch):
    torch.manual_seed(0)
    model = build_model(arch, in_channels=3)
    u0 = torch.rand(2, 3, 11, 13)
    u, phi = model(u0, torch.tensor([0.1, 0.5]))
    assert u.shape == (2, 3, 11, 13) and phi.shape == (2, 3, 2, 11, 13)
    assert ops.div(phi).shape == u.shape
    # coupled (vectorial) projection: Frobenius norm over channels and components <= 1
    assert (phi ** 2).sum((1, 2)).sqrt().max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="in_channels"):
        model(torch.rand(2, 1, 11, 13), 0.1)


@pytest.mark.parametrize("arch", ARCHS)
def test_jvp_in_t_matches_central_differences_float64(arch):
    torch.manual_seed(0)
    model = build_model(arch).double()
    u0 = torch.rand(2, 1, 13, 11, dtype=torch.float64)
    t = torch.tensor([0.2, 0.65], dtype=torch.float64)
    with torch.no_grad():
        u, phi, u_t = time_derivative(model, u0, t, method="jvp")
        _, _, u_t_fd = time_derivative(model, u0, t, method="fd", fd_step=1e-4)
    u_ref, phi_ref = model(u0, t)
    torch.testing.assert_close(u, u_ref.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(phi, phi_ref.detach(), rtol=0, atol=1e-12)
    scale = u_t.abs().max().item()
    assert scale > 1e-5  # non-trivial derivative
    err = (u_t - u_t_fd).abs().max().item()
    print(f"{arch}: max |u_t(jvp) - u_t(fd)| = {err:.2e}, max |u_t| = {scale:.2e}")
    assert err < 1e-6 * max(scale, 1.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_decreases_with_adam(arch):
    torch.manual_seed(0)
    model = build_model(arch)
    u0 = 5 * torch.rand(2, 1, 12, 12)
    t = torch.tensor([0.1, 0.6])
    loss_fn = TVFlowLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(6):
        total, logs = loss_fn(model, u0, t)
        assert set(logs) == {"temporal", "tv", "norm", "initial", "min_norm", "total"}
        assert all(isinstance(v, float) for v in logs.values())
        opt.zero_grad()
        total.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append(logs["total"])
    print(f"{arch}: loss {history[0]:.4g} -> {history[-1]:.4g}")
    assert history[-1] < history[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_config_round_trip(arch):
    torch.manual_seed(0)
    model = build_model(arch, edge_width=2, eps=1e-3)
    cfg = json.loads(json.dumps(model.config))
    assert cfg["arch"] == arch
    clone = build_model(**cfg)
    assert clone.config == model.config
    clone.load_state_dict(model.state_dict())
    u0 = torch.rand(1, 1, 9, 10)
    u_a, phi_a = model(u0, 0.4)
    u_b, phi_b = clone(u0, 0.4)
    assert torch.equal(u_a, u_b) and torch.equal(phi_a, phi_b)
    assert phi_a[..., :2, :].abs().max() == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_exact_initial_builds_u0_into_the_model(arch):
    """``exact_initial``: u = u0 + t du with the plain model's du (same weights), so u(0) = u0 to the bit; its
    config rebuilds it; loss (12)'s initial term is zero and the loss skips the pass at t = 0."""
    torch.manual_seed(0)
    plain = build_model(arch).double()
    exact = build_model(arch, exact_initial=True).double()
    assert exact.config == {**plain.config, "exact_initial": True} and "exact_initial" not in plain.config
    exact.load_state_dict(plain.state_dict())
    assert build_model(**json.loads(json.dumps(exact.config))).exact_initial
    u0 = torch.rand(2, 1, 12, 13, dtype=torch.float64)
    t = torch.tensor([0.0, 0.7], dtype=torch.float64)
    with torch.no_grad():
        u_p, phi_p = plain(u0, t)
        u_e, phi_e = exact(u0, t)
    assert torch.equal(u_e[0], u0[0]) and torch.equal(phi_e, phi_p)
    torch.testing.assert_close(u_e[1], u0[1] + 0.7 * (u_p[1] - u0[1]), rtol=0, atol=1e-12)
    calls = []
    exact.register_forward_hook(lambda *_: calls.append(1))
    total, logs = TVFlowLoss()(exact, u0, t)
    assert logs["initial"] == 0.0 and len(calls) == 1        # the jvp's pass only
    assert total.requires_grad


def test_build_model_errors():
    with pytest.raises(ValueError, match="arch"):
        build_model("resnet")
    with pytest.raises(TypeError):
        build_model("unet", depth=3)
    with pytest.raises(ValueError, match="t must"):
        build_model("semiresnet")(torch.rand(2, 1, 8, 8), torch.rand(3))
