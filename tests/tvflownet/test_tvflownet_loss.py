"""The TVflowNET loss (Grossmann et al., 2022, eq. (12)): term by term, on the reference TV flow and on models."""
import pytest
import torch

from pdeflow import ops
from pdeflow.tvflownet import TVFlowLoss, build_model, loss_terms, time_derivative, zero_border

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

TERMS = ("temporal", "tv", "norm", "initial", "min_norm")


def _test_image(H=16, W=16, dtype=torch.float64):
    """A disk, a square and a smooth texture (so that the border moves too)."""
    yy, xx = torch.meshgrid(torch.arange(H, dtype=dtype), torch.arange(W, dtype=dtype), indexing="ij")
    disk = ((xx - 6) ** 2 + (yy - 7) ** 2 <= 12).to(dtype)
    square = ((xx >= 9) & (xx < 14) & (yy >= 9) & (yy < 14)).to(dtype)
    return (disk + 0.6 * square + 0.1 * torch.sin(xx / 2) * torch.cos(yy / 3))[None, None]


def _check_reference_terms(u, u_t, p, u0, label):
    """Loss terms of a reference solution u (T,1,H,W), u_t, dual p (T,1,2,H,W): near zero;
    perturbed u, phi or u(0): large."""
    ref = loss_terms(u, u_t, p, u0, u0)
    print(f"{label}: " + ", ".join(f"{k}={ref[k].item():.2e}" for k in (*TERMS, "total")))
    assert ref["temporal"] < 1e-12
    assert ref["tv"] < 1e-6
    assert ref["norm"] < 1e-12
    assert ref["initial"] == 0
    # the minimal-norm term is a penalty, not a residual: a2 * mean(u_t^2) > 0
    torch.testing.assert_close(ref["min_norm"], 1e-4 * (u_t ** 2).mean())

    g = torch.Generator().manual_seed(1)
    noise_u = torch.randn(u.shape, generator=g, dtype=u.dtype)
    noise_p = torch.randn(p.shape, generator=g, dtype=p.dtype)
    pert_u = loss_terms(u + 0.05 * noise_u, u_t, p, u0, u0)
    pert_p = loss_terms(u, u_t, p + 0.2 * noise_p, u0, u0)
    pert_0 = loss_terms(u, u_t, p, u0, u0 + 0.05 * noise_u[:1])
    for name, d in (("perturbed u", pert_u), ("perturbed phi", pert_p), ("perturbed u(0)", pert_0)):
        print(f"{label}, {name}: " + ", ".join(f"{k}={d[k].item():.2e}" for k in (*TERMS, "total")))
    assert pert_u["tv"] > 1e4 * max(ref["tv"].item(), 1e-12)
    assert pert_u["tv"] > 1e-3
    assert pert_p["temporal"] > 1e-2 and pert_p["norm"] > 1e-2
    assert pert_0["initial"] > 1e-3
    # the hard constraint phi = 0 on a 1-pixel border is not met by the reference dual field:
    # zeroing it there freezes the first row and column (div phi = 0) -- report the size
    border = loss_terms(u, u_t, zero_border(p, 1), u0, u0)
    print(f"{label}, reference phi zeroed on the border: temporal={border['temporal'].item():.2e}")


def test_loss_terms_on_implicit_euler_reference_from_rof():
    """Independent of tv_flow: implicit Euler steps u_k = rof(u_{k-1}, dt) with duals p_k,
    so u_t = (u_k - u_{k-1}) / dt = div p_k and <u_k, div p_k> = -TV(u_k)."""
    from pdeflow.tv import rof

    u0 = _test_image()
    dt, n = 0.01, 10
    us, ps, u, p = [], [], u0, None
    for _ in range(n):
        r = rof(u, dt, tol=1e-10, max_iter=100000, p0=p, full_output=True)
        u, p = r.u, r.p
        us.append(u)
        ps.append(p)
    U, P = torch.cat(us), torch.cat(ps)
    U_prev = torch.cat([u0] + us[:-1])
    U_t = (U - U_prev) / dt
    assert (U_t - ops.div(P)).abs().max() < 1e-6
    _check_reference_terms(U, ops.div(P), P, u0, "rof implicit Euler")


def test_loss_terms_on_tv_flow_reference():
    """Loss terms on pdeflow.tv.tv_flow's solution at a fine grid of times: u_t from its
    return, phi its dual field; near zero, and large when u or phi is perturbed."""
    from pdeflow.tv import tv_flow

    u0 = _test_image()
    dt = 0.01
    times = dt * torch.arange(0, 13, dtype=torch.float64)
    out = tv_flow(u0, times, dt=dt, tol=1e-9, return_ut=True, return_dual=True)
    if isinstance(out, tuple):
        u, u_t, p = out
    else:  # a result object
        u, u_t, p = out.u, getattr(out, "u_t", None), getattr(out, "p", None)
    T = times.numel()
    assert u.shape == (T, 1, 1, 16, 16) and u_t.shape == u.shape and p.shape == (T, 1, 1, 2, 16, 16)
    torch.testing.assert_close(u[0], u0)
    # samples t > 0 (at t = 0 the dual field of the flow is the limit t -> 0+)
    U, U_t, P = u[1:, 0], u_t[1:, 0], p[1:, 0]
    _check_reference_terms(U, U_t, P, u0, "tv_flow")
    # u_t by backward differences of the returned u agrees with div(p) (implicit Euler)
    fd = (u[1:, 0] - u[:-1, 0]) / dt
    temporal_fd = loss_terms(U, fd, P, u0, u0)["temporal"]
    print(f"tv_flow: temporal term with backward-difference u_t = {temporal_fd.item():.2e}")
    assert temporal_fd < 1e-8


def test_loss_terms_zero_for_constant_image():
    u = torch.full((2, 1, 8, 9), 0.7, dtype=torch.float64)
    phi = torch.zeros(2, 1, 2, 8, 9, dtype=torch.float64)
    d = loss_terms(u, torch.zeros_like(u), phi, u, u)
    for k in ("temporal", "norm", "initial", "min_norm"):
        assert d[k] == 0
    # only the eps of TV_eps remains: a1 * (H W eps)^2
    torch.testing.assert_close(d["tv"], torch.tensor(1e-4 * (72 * 1e-5) ** 2, dtype=torch.float64))


def test_loss_terms_by_hand_and_variants():
    torch.manual_seed(0)
    u = torch.randn(3, 1, 6, 7, dtype=torch.float64)
    u_t = torch.randn_like(u)
    phi = 0.9 * torch.randn(3, 1, 2, 6, 7, dtype=torch.float64)
    u0, u00 = torch.randn_like(u), torch.randn_like(u)
    w = dict(temporal_weight=2.0, tv_weight=0.5, norm_weight=3.0, initial_weight=4.0, min_norm_weight=5.0)
    d = loss_terms(u, u_t, phi, u0, u00, tv_eps=1e-3, **w)
    dv = ops.div(phi)
    nrm = phi.pow(2).sum(2).sqrt()
    expect = {
        "temporal": 2.0 * ((u_t - dv) ** 2).mean(),
        "tv": 0.5 * (((u * dv).sum((1, 2, 3)) + ops.tv_eps(u, 1e-3)) ** 2).mean(),
        "norm": 3.0 * torch.relu(nrm - 1).mean(),
        "initial": 4.0 * ((u00 - u0) ** 2).mean(),
        "min_norm": 5.0 * (dv ** 2).mean(),
    }
    for k, v in expect.items():
        torch.testing.assert_close(d[k], v)
    torch.testing.assert_close(d["total"], sum(expect.values()))
    sq = loss_terms(u, u_t, phi, u0, u00, squared_norm=True)
    torch.testing.assert_close(sq["norm"], torch.relu(nrm ** 2 - 1).mean())
    assert loss_terms(u, u_t, phi)["initial"] == 0
    with pytest.raises(ValueError, match="phi"):
        loss_terms(u, u_t, phi[:, 0])


def test_norm_term_gradient_finite_where_phi_is_zero():
    phi = torch.zeros(1, 1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    u = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    for squared in (False, True):
        d = loss_terms(u, torch.zeros_like(u), phi, squared_norm=squared)
        (g,) = torch.autograd.grad(d["total"], phi)
        assert torch.isfinite(g).all()


def test_tvflowloss_jvp_vs_fd_and_logs():
    torch.manual_seed(0)
    model = build_model("semiresnet").double()
    u0 = 5 * torch.rand(2, 1, 10, 12, dtype=torch.float64)
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    total_j, logs_j = TVFlowLoss()(model, u0, t)
    total_f, logs_f = TVFlowLoss(ut_method="fd", fd_step=1e-4)(model, u0, t)
    for k in logs_j:
        assert logs_j[k] == pytest.approx(logs_f[k], rel=1e-6, abs=1e-12)
    # backward through the jvp: parameter gradients agree with the finite-difference loss
    g_j = torch.autograd.grad(total_j, list(model.parameters()))
    g_f = torch.autograd.grad(total_f, list(model.parameters()))
    for a, b in zip(g_j, g_f):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
    # the loss equals loss_terms on the model's outputs
    u, phi, u_t = time_derivative(model, u0, t)
    ref = loss_terms(u, u_t, phi, u0, model(u0, 0.0)[0])
    torch.testing.assert_close(total_j, ref["total"])
    # random times are drawn when t is None; the official variant uses the squared norm
    g = torch.Generator().manual_seed(0)
    total_r, _ = TVFlowLoss.official()(model, u0, generator=g)
    assert torch.isfinite(total_r)
    assert TVFlowLoss.official().config["squared_norm"] is True
    with pytest.raises(ValueError, match="ut_method"):
        TVFlowLoss(ut_method="central")


def test_official_loss_matches_a_transcription_of_the_official_code():
    """TVFlowLoss.official's terms equal the official code's loss (NumPy transcription in
    tests/_official_tvflownet.py), for a phi with and without a zero border."""
    from _official_tvflownet import official_loss_np

    g = torch.Generator().manual_seed(7)
    u = torch.randn(3, 1, 9, 8, generator=g, dtype=torch.float64)
    u_t = torch.randn(u.shape, generator=g, dtype=torch.float64)
    u0, u00 = torch.randn(u.shape, generator=g, dtype=torch.float64), torch.randn(u.shape, generator=g,
                                                                                 dtype=torch.float64)
    phi = 0.9 * torch.randn(3, 1, 2, 9, 8, generator=g, dtype=torch.float64)
    official = TVFlowLoss.official().term_kwargs
    assert official["zero_edges"] and official["squared_norm"] and official["tv_eps"] == 1e-5
    for p in (phi, zero_border(phi, 1)):
        got = loss_terms(u, u_t, p, u0, u00, **official)
        want = official_loss_np(u[:, 0].numpy(), u_t[:, 0].numpy(), p[:, 0].numpy(), u0[:, 0].numpy(),
                                u00[:, 0].numpy())
        for k in TERMS:
            assert got[k].item() == pytest.approx(want[k], rel=1e-12, abs=1e-300), k
        # pdeflow's (Neumann) operators: the TV term differs, here by a visible amount
        neumann = loss_terms(u, u_t, p, u0, u00, squared_norm=True)
        assert abs(neumann["tv"].item() - want["tv"]) > 1e-6 * want["tv"]
    # with a zero border, div (hence the temporal and minimal-norm terms) agrees with pdeflow's
    pz = zero_border(phi, 1)
    a = loss_terms(u, u_t, pz, u0, u00, **official)
    b = loss_terms(u, u_t, pz, u0, u00, squared_norm=True)
    for k in ("temporal", "min_norm", "norm"):
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_forward_mode_time_derivative_warns_nothing_in_a_fresh_process(fresh_interpreter):
    """torch's first forward-mode call scripts its decompositions (a DeprecationWarning of torch's own): the
    user of loss (12) sees none (the last step of tests/_fresh.py)."""
    assert fresh_interpreter["forward_mode"] == []
