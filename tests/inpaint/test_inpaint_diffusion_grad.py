"""Differentiable diffusion inpainting (pdeflow.inpaint.inpaint_diffusion): continuous masks in the forward
against a sparse direct solve, and the adjoint backward against torch.autograd.gradcheck and
central finite differences of a dense solve of M(c) u = C f, M(c) = C - (I - C) L."""
import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch

from _sparse_reference import neumann_laplacian
from pdeflow.inpaint import inpaint_diffusion, random_mask
from pdeflow.inpaint.operators import diffusion_system as dmod
from pdeflow.inpaint.operators.diffusion import SOLVERS
from pdeflow.multigrid import Multigrid

TOL = 1e-13  # solver tolerance of the gradient tests


def m_of_c(c, L):
    """M(c) = C - (I - C) L (sparse), c flat."""
    return (sp.diags(c) - sp.diags(1.0 - c) @ L).tocsc()


def dense_solve(f, c, Ld):
    """u = M(c)^{-1} C f by a dense LU solve (float64), f and c flat."""
    return sla.solve(np.diag(c) - np.diag(1.0 - c) @ Ld, c * f)


def fd_gradient(fun, x, idx, h=1e-5):
    """Central finite differences of the scalar fun at x along the coordinates idx."""
    out = np.empty(len(idx))
    for n, i in enumerate(idx):
        e = np.zeros_like(x)
        e[i] = h
        out[n] = (fun(x + e) - fun(x - e)) / (2 * h)
    return out


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def case(B, C, H, W, seed, kind):
    g = torch.Generator().manual_seed(seed)
    f = torch.rand(B, C, H, W, generator=g, dtype=torch.float64)
    m = random_mask((B, 1, H, W), 0.3, generator=seed + 1, dtype=torch.float64)
    if kind == "binary":
        return f, m
    c = 0.05 + 0.9 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    if kind == "interior":  # strictly inside (0, 1), with values near both ends
        c.view(-1)[::7] = 1e-3
        c.view(-1)[3::7] = 1 - 1e-3
        return f, c
    # "mixed": exact zeros and ones beside fractional values
    return f, torch.where(torch.rand(c.shape, generator=g, dtype=torch.float64) < 0.3, m, c)


# ---------------------------------------------------------------------------
# Forward: continuous masks
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize("H,W", [(9, 14), (37, 50)])
@pytest.mark.parametrize("kind", ["interior", "mixed", "near_one"])
def test_continuous_mask_agrees_with_sparse_direct_solve(H, W, kind, method):
    f, c = case(2, 1, H, W, seed=H + W, kind="mixed" if kind == "near_one" else kind)
    if kind == "near_one":
        m = random_mask((2, 1, H, W), 0.05, generator=3, dtype=torch.float64)
        c = m * (1 - 1e-6) + (1 - m) * 1e-4
    u = inpaint_diffusion(f, c, tol=1e-11, solver=method, continuous=True)
    L = neumann_laplacian(H, W)
    for b in range(2):
        cb, fb = c[b, 0].numpy().ravel(), f[b, 0].numpy().ravel()
        ref = spl.spsolve(m_of_c(cb, L), cb * fb).reshape(H, W)
        assert np.abs(u[b, 0].numpy() - ref).max() < 1e-8
    known = (c == 1).expand_as(f)
    assert torch.equal(u[known], f[known])  # exact where c = 1


def test_continuous_flag_and_binary_masks():
    f, m = case(2, 3, 20, 19, seed=4, kind="binary")
    # a binary mask gives bit for bit the same result with continuous=True
    assert torch.equal(inpaint_diffusion(f, m, continuous=True), inpaint_diffusion(f, m))
    # c = 0 pixels do not influence u; f only matters where c > 0
    _, c = case(2, 1, 20, 19, seed=4, kind="mixed")
    f2 = torch.where(c == 0, torch.rand_like(f), f)
    assert torch.allclose(inpaint_diffusion(f2, c, tol=1e-12, continuous=True),
                          inpaint_diffusion(f, c, tol=1e-12, continuous=True), atol=1e-10, rtol=0)
    # constants are kept and the maximum principle holds
    assert torch.allclose(inpaint_diffusion(torch.full_like(f, 0.3), c, tol=1e-12, continuous=True),
                          torch.full_like(f, 0.3), atol=1e-10, rtol=0)
    u = inpaint_diffusion(f, c, tol=1e-12, continuous=True)
    assert float(u.min()) >= float(f.min()) - 1e-12 and float(u.max()) <= float(f.max()) + 1e-12


def test_continuous_mask_errors():
    f = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    c = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match="binary.*continuous=True"):
        inpaint_diffusion(f, c)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        inpaint_diffusion(f, c + 0.5, continuous=True)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        inpaint_diffusion(f, c - 0.5, continuous=True)
    z = c.clone()
    z[1] = 0
    with pytest.raises(ValueError, match="no known pixel in image 1"):
        inpaint_diffusion(f, z, continuous=True)
    with pytest.raises(ValueError, match="continuous"):
        inpaint_diffusion(f, c, continuous="yes")


# ---------------------------------------------------------------------------
# Backward: gradcheck and finite differences of a dense solve
# ---------------------------------------------------------------------------

# The two gradchecks below: the slow tier (a full Jacobian, solve after solve); make test checks the same kinds of
# mask against central differences of a dense solve (test_gradient_agrees_with_finite_differences_of_a_dense_solve)
# and gradchecks the multigrid path in colour.
@pytest.mark.slow
def test_gradcheck_binary_mask_grad_f():
    f, m = case(2, 1, 6, 7, seed=0, kind="binary")
    f.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: inpaint_diffusion(f, m, tol=TOL), (f,))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["interior", "mixed_f_only"])
def test_gradcheck_continuous_mask(kind):
    if kind == "interior":
        f, c = case(2, 1, 6, 7, seed=1, kind="interior")
        f.requires_grad_(True)
        c.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda f, c: inpaint_diffusion(f, c, tol=TOL, continuous=True), (f, c))
    else:  # exact 0s and 1s cannot be perturbed both ways inside [0, 1]: gradient in f only
        f, c = case(2, 1, 6, 7, seed=2, kind="mixed")
        f.requires_grad_(True)
        assert torch.autograd.gradcheck(lambda f: inpaint_diffusion(f, c, tol=TOL, continuous=True), (f,))


def test_gradcheck_with_multigrid_levels_and_colour():
    # 17 x 16 > 256 pixels: the multigrid hierarchy has a coarse level; colour with a (B, 1, H, W) mask.
    f, c = case(1, 3, 17, 16, seed=3, kind="interior")
    f.requires_grad_(True)
    c.requires_grad_(True)
    assert len(Multigrid((c == 1).double()).grids) > 1
    # fast mode (random directions): the full Jacobian of 816 outputs takes minutes
    assert torch.autograd.gradcheck(lambda f, c: inpaint_diffusion(f, c, tol=TOL, continuous=True), (f, c),
                                    fast_mode=True)


@pytest.mark.parametrize("kind", ["binary", "interior", "mixed"])
# 16 x 18: the same dense-solve comparison on a larger grid, slow tier (6 x 7 keeps each kind in make test)
@pytest.mark.parametrize("H,W", [(6, 7), pytest.param(16, 18, marks=pytest.mark.slow)])
def test_gradient_agrees_with_finite_differences_of_a_dense_solve(kind, H, W):
    """The must-show: relative error < 1e-6 (float64) against central differences of a dense
    solve of M(c) u = C f, for f and for the mask (at binary masks: the continuous extension)."""
    f, c = case(1, 1, H, W, seed=H * W, kind=kind)
    gen = np.random.default_rng(H + W)
    gw = gen.standard_normal(H * W)  # loss l(u) = <gw, u> + 0.5 |u|^2, so g = gw + u
    Ld = neumann_laplacian(H, W).toarray()
    f0, c0 = f.numpy().ravel(), c.numpy().ravel()

    def loss_np(u):
        return gw @ u + 0.5 * u @ u

    ft = f.clone().requires_grad_(True)
    ct = c.clone().requires_grad_(True)
    u = inpaint_diffusion(ft, ct, tol=TOL, continuous=True)
    (torch.from_numpy(gw).view_as(u) * u + 0.5 * u * u).sum().backward()
    n = H * W
    idx = np.arange(n) if n <= 42 else np.sort(gen.choice(n, 60, replace=False))
    idx = np.union1d(idx, np.flatnonzero(c0 == 1)[:10])  # always some known pixels
    fd_f = fd_gradient(lambda x: loss_np(dense_solve(x, c0, Ld)), f0, idx)
    fd_c = fd_gradient(lambda x: loss_np(dense_solve(f0, x, Ld)), c0, idx)
    assert rel(ft.grad.numpy().ravel()[idx], fd_f) < 1e-6
    assert rel(ct.grad.numpy().ravel()[idx], fd_c) < 1e-6


def test_binary_mask_gradient_matches_one_sided_differences_of_diffuse():
    """At a binary mask, d/dc through inpaint_diffusion itself (steps into [0, 1]: down at known pixels,
    up at unknown ones), second-order one-sided differences."""
    f, m = case(1, 1, 16, 18, seed=5, kind="binary")
    g = torch.randn(f.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mt = m.clone().requires_grad_(True)
    (g * inpaint_diffusion(f, mt, tol=TOL)).sum().backward()
    flat = m.view(-1)
    picks = list(flat.nonzero()[:6, 0]) + list((flat == 0).nonzero()[:6, 0])
    h = 1e-4
    for i in picks:
        s = -1.0 if flat[i] == 1 else 1.0

        def F(t):
            c = m.clone()
            c.view(-1)[i] += s * t
            return float((g * inpaint_diffusion(f, c, tol=TOL, continuous=True)).sum())
        fd = s * (-3 * F(0.0) + 4 * F(h) - F(2 * h)) / (2 * h)
        an = float(mt.grad.view(-1)[i])
        assert abs(an - fd) <= 1e-6 * max(1.0, abs(fd)), (int(i), an, fd)


def test_binary_mask_gradient_formulas():
    """The binary-mask forms: unknown pixel dl/dc = mu (f - u), known pixel
    dl/dc = -(g + L mu) L u, dl/df = m (g + L mu), with A mu = (1 - m) g solved by scipy."""
    from pdeflow.ops import laplacian
    H, W = 13, 11
    f, m = case(1, 1, H, W, seed=6, kind="binary")
    g = torch.randn(f.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ft, mt = f.clone().requires_grad_(True), m.clone().requires_grad_(True)
    u = inpaint_diffusion(ft, mt, tol=TOL)
    (g * u).sum().backward()
    L = neumann_laplacian(H, W)
    unk = m.numpy().ravel() == 0
    mu = np.zeros(H * W)
    mu[unk] = spl.spsolve(-L[unk][:, unk].tocsc(), g.numpy().ravel()[unk])
    mu = torch.from_numpy(mu).view_as(f)
    u = u.detach()
    lam_known = g + laplacian(mu)
    expect_c = torch.where(m.bool(), -lam_known * laplacian(u), mu * (f - u))
    expect_f = m * lam_known
    assert torch.allclose(mt.grad, expect_c, atol=1e-10, rtol=0)
    assert torch.allclose(ft.grad, expect_f, atol=1e-10, rtol=0)


# ---------------------------------------------------------------------------
# Backward: structure (batching, broadcasting, zeros, invariants, no graph)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["binary", "mixed"])
def test_batch_gradient_equals_per_image_gradients(kind):
    f, c = case(3, 2, 20, 23, seed=7, kind=kind)
    g = torch.randn(f.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ft, ct = f.clone().requires_grad_(True), c.clone().requires_grad_(True)
    (g * inpaint_diffusion(ft, ct, tol=TOL, continuous=True)).sum().backward()
    for b in range(3):
        fb, cb = f[b].clone().requires_grad_(True), c[b].clone().requires_grad_(True)
        (g[b] * inpaint_diffusion(fb, cb, tol=TOL, continuous=True)).sum().backward()
        assert torch.allclose(ft.grad[b], fb.grad, atol=1e-11, rtol=0)
        assert torch.allclose(ct.grad[b], cb.grad, atol=1e-11, rtol=0)
    # one (H, W) mask shared by the batch and the channels: its gradient sums theirs
    c0 = c[0, 0].clone().requires_grad_(True)
    (g * inpaint_diffusion(f, c0, tol=TOL, continuous=True)).sum().backward()
    total = 0
    for b in range(3):
        for ch in range(2):
            cb = c[0, 0].clone().requires_grad_(True)
            (g[b, ch] * inpaint_diffusion(f[b, ch], cb, tol=TOL, continuous=True)).sum().backward()
            total = total + cb.grad
    assert torch.allclose(c0.grad, total, atol=1e-10, rtol=0)


def test_colour_image_with_single_channel_mask():
    f, c = case(2, 3, 15, 17, seed=8, kind="mixed")
    g = torch.randn(f.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ft, ct = f.clone().requires_grad_(True), c.clone().requires_grad_(True)
    (g * inpaint_diffusion(ft, ct, tol=TOL, continuous=True)).sum().backward()
    assert ct.grad.shape == (2, 1, 15, 17) and ft.grad.shape == f.shape
    total = torch.zeros_like(c)
    for ch in range(3):
        fc, cc = f[:, ch:ch + 1].clone().requires_grad_(True), c.clone().requires_grad_(True)
        (g[:, ch:ch + 1] * inpaint_diffusion(fc, cc, tol=TOL, continuous=True)).sum().backward()
        assert torch.allclose(ft.grad[:, ch:ch + 1], fc.grad, atol=1e-11, rtol=0)
        total += cc.grad
    assert torch.allclose(ct.grad, total, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["binary", "mixed", "interior"])
def test_grad_f_vanishes_exactly_where_c_is_zero(kind):
    """dl/df = c lam: exactly zero where c = 0 (f is not used there), and generically non-zero
    where c > 0. Since u(f + t) = u(f) + t, the f-gradient sums to the sum of g per image."""
    f, c = case(2, 1, 18, 21, seed=9, kind=kind)
    g = torch.randn(f.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ft, ct = f.clone().requires_grad_(True), c.clone().requires_grad_(True)
    (g * inpaint_diffusion(ft, ct, tol=TOL, continuous=True)).sum().backward()
    zero = (c == 0).expand_as(f)
    assert torch.equal(ft.grad[zero], torch.zeros_like(ft.grad[zero]))
    assert bool((ft.grad[~zero] != 0).all())
    assert torch.allclose(ft.grad.sum((1, 2, 3)), g.sum((1, 2, 3)), atol=1e-10, rtol=0)
    # a constant image is a fixed point for every mask: zero mask gradient
    fc, cc = torch.full_like(f, 0.4), c.clone().requires_grad_(True)
    (g * inpaint_diffusion(fc, cc, tol=TOL, continuous=True)).sum().backward()
    assert float(cc.grad.abs().max()) < 1e-10


def test_no_graph_without_grad(monkeypatch):
    f, m = case(2, 1, 12, 12, seed=10, kind="binary")

    def fail(*a, **k):
        raise AssertionError("the autograd node was built without need")
    monkeypatch.setattr(dmod._DiffuseFunction, "apply", fail)
    assert inpaint_diffusion(f, m).grad_fn is None
    with torch.no_grad():
        assert inpaint_diffusion(f.clone().requires_grad_(True), m).grad_fn is None
    monkeypatch.undo()
    u = inpaint_diffusion(f.clone().requires_grad_(True), m, full_output=True)
    assert u.u.grad_fn is not None and u.iterations.shape == (2,)


def test_float32_straight_through_and_warm_start():
    f, m = case(2, 1, 24, 20, seed=11, kind="binary")
    f, m = f.float(), m.float()
    soft = torch.rand(m.shape, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    hard = m + (soft - soft.detach())  # straight-through: exactly binary in the forward
    u0 = inpaint_diffusion(f, m)
    u = inpaint_diffusion(f.requires_grad_(True), hard, x0=u0 + 0.01)
    assert torch.allclose(u.detach(), u0, atol=1e-5)
    u.square().mean().backward()
    assert soft.grad.dtype == torch.float32 and f.grad.dtype == torch.float32
    assert bool(torch.isfinite(soft.grad).all()) and float(soft.grad.abs().max()) > 0
    # float32 gradient agrees with float64 to single precision
    fd, md = f.detach().double().requires_grad_(True), m.double().requires_grad_(True)
    inpaint_diffusion(fd, md, tol=1e-10).square().mean().backward()
    assert torch.allclose(soft.grad.double(), md.grad, atol=1e-4 * float(md.grad.abs().max()), rtol=0)


def test_adjoint_warm_start_gives_the_same_gradient_in_fewer_iterations():
    """The private warm start of the adjoint solve (mask refinement solves nearby masks):
    same gradient to the solve tolerance, fewer CG iterations from the previous adjoint."""
    import pdeflow.inpaint.operators.diffusion_system as D
    g = torch.Generator().manual_seed(0)
    f = torch.rand(2, 1, 24, 20, generator=g, dtype=torch.float64)
    m1 = (torch.rand(2, 1, 24, 20, generator=g) < 0.15).to(torch.float64)
    m2 = m1.clone()
    m2[:, :, 5, 5] = 1 - m2[:, :, 5, 5]                     # a nearby mask: one pixel flipped

    def grad(m, start=None):
        c = m.clone().requires_grad_(True)
        u, info = D.diffuse_recorded(f, c, True, 1e-12, 2000, None, "cg", start)
        ((u - f) ** 2).sum().backward()
        return c.grad, info["adjoint"]

    _, nu1 = grad(m1)
    iters = []
    orig = D.cg

    def counting_cg(*a, **k):
        x, it = orig(*a, **k)
        iters.append(int(it.max()))
        return x, it

    D.cg = counting_cg
    try:
        cold, _ = grad(m2)
        warm, _ = grad(m2, nu1)
    finally:
        D.cg = orig
    assert torch.allclose(cold, warm, rtol=1e-8, atol=1e-10)
    assert iters[3] < iters[1]                                # [forward, adjoint] x (cold, warm)
