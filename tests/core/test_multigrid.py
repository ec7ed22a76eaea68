"""pdeflow.multigrid: the multigrid-preconditioned CG of diffusion inpainting against SciPy's sparse
direct solver (float64), its parts against their definitions (Galerkin products, transposed transfers,
a symmetric V-cycle), and inpaint_diffusion's dtype and batch contract."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch

from _sparse_reference import neumann_laplacian, spsolve_inpaint
from pdeflow.errors import UserInputError
from pdeflow.inpaint import inpaint_diffusion
from pdeflow.multigrid import Multigrid, prolong, restrict
from pdeflow.multigrid._grid2d import (
    STORED,
    _coarsen_axis,
    _dense,
    fine_block,
    from_phases,
    phase_block,
    phase_shape,
    to_phases,
)
from pdeflow.ops import laplacian


def masks(H, W, kind, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        m = torch.rand(H, W, generator=g) < 0.05
    elif kind == "sparse":
        m = torch.rand(H, W, generator=g) < 0.003
    elif kind == "structured":      # a grid of lines and a filled disk: large holes between them
        m = torch.zeros(H, W, dtype=torch.bool)
        m[::7, :] = True
        m[:, ::11] = True
        yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        m |= (yy - H / 2) ** 2 + (xx - W / 3) ** 2 < (min(H, W) / 4) ** 2
        m[H // 3: 2 * H // 3, W // 2:] = False      # and one big empty block
    elif kind == "one":
        m = torch.zeros(H, W, dtype=torch.bool)
        m[H // 3, W - 2] = True
    elif kind == "all":
        m = torch.ones(H, W, dtype=torch.bool)
    m = m.clone()
    m.view(-1)[0] = True if kind != "one" else m.view(-1)[0]
    return m.double()


@pytest.mark.parametrize("kind", ["random", "sparse", "structured", "one", "all"])
@pytest.mark.parametrize("H,W", [(63, 65), (64, 48), (17, 129), (5, 300)])
def test_diffuse_matches_spsolve_float64(kind, H, W):
    g = torch.Generator().manual_seed(H * W)
    f = torch.rand(H, W, generator=g, dtype=torch.float64)
    m = masks(H, W, kind, seed=H + W)
    r = inpaint_diffusion(f, m, tol=1e-12, full_output=True)
    ref = spsolve_inpaint(f.numpy(), m.numpy())
    assert np.abs(r.u.numpy() - ref).max() < 1e-8
    known = m.bool()
    assert torch.equal(r.u[known], f[known])            # exactly, bit for bit
    assert float(r.residual.max()) <= 1e-12
    if kind == "all":
        assert int(r.iterations.max()) == 0 and torch.equal(r.u, f)
    if kind == "one":
        assert torch.allclose(r.u, f[known].expand(H, W), atol=1e-9)


def test_batch_with_different_masks_and_colour():
    H, W = 41, 54
    g = torch.Generator().manual_seed(3)
    f = torch.rand(3, 2, H, W, generator=g, dtype=torch.float64)
    m = torch.stack([masks(H, W, k, seed=i)[None] for i, k in enumerate(["random", "sparse", "structured"])])
    r = inpaint_diffusion(f, m, tol=1e-11, full_output=True)
    assert r.iterations.shape == (3,) and r.residual.shape == (3,)
    for i in range(3):
        for c in range(2):
            ref = spsolve_inpaint(f[i, c].numpy(), m[i, 0].numpy())
            assert np.abs(r.u[i, c].numpy() - ref).max() < 1e-8
        one = inpaint_diffusion(f[i:i + 1], m[i:i + 1], tol=1e-11, full_output=True)   # per-image stopping
        assert int(one.iterations) == int(r.iterations[i])
        assert torch.allclose(one.u, r.u[i:i + 1], atol=1e-12)
    assert torch.equal(r.u[m.expand_as(f).bool()], f[m.expand_as(f).bool()])


def test_continuous_diagonal_matches_a_sparse_solve():
    """``Multigrid(k, d)`` solves w (-L (w x)) + (k + d) x = b."""
    H, W = 37, 45
    g = torch.Generator().manual_seed(5)
    k = (torch.rand(1, 1, H, W, generator=g) < 0.03).double()
    d = (1 - k) * torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) * 3
    b = (1 - k) * torch.randn(1, 1, H, W, generator=g, dtype=torch.float64)
    x, it, res = Multigrid(k, d).solve(b, tol=1e-12)
    w = (1 - k).reshape(-1).numpy()
    A = sp.diags(w) @ (-neumann_laplacian(H, W)) @ sp.diags(w) + sp.diags(k.reshape(-1).numpy()
                                                                        + d.reshape(-1).numpy())
    ref = spl.spsolve(A.tocsc(), b.reshape(-1).numpy())
    assert np.abs(x.reshape(-1).numpy() - ref).max() < 1e-9
    assert float(res) <= 1e-12
    assert torch.equal(x[k.bool()], torch.zeros_like(x[k.bool()]))


@pytest.mark.parametrize("H,W", [(11, 14), (12, 9), (13, 13), (7, 2)])
def test_galerkin_operator_equals_the_dense_triple_product(H, W):
    g = torch.Generator().manual_seed(H * W)
    k = (torch.rand(2, 1, H, W, generator=g) < 0.2).double()
    d = (1 - k) * torch.rand(2, 1, H, W, generator=g, dtype=torch.float64)
    S = fine_block(k, d, 0, H)
    A = _dense(S, H, W)
    w = (1 - k).reshape(2, 1, -1)
    ref_fine = w[..., :, None] * (-torch.from_numpy(neumann_laplacian(H, W).toarray())) * w[..., None, :] \
        + torch.diag_embed(d.reshape(2, 1, -1))
    assert torch.allclose(A, ref_fine, atol=1e-14)
    hc, wc = (H + 1) // 2, (W + 1) // 2
    P = torch.stack([prolong(e.reshape(hc, wc), H, W).reshape(-1) for e in torch.eye(hc * wc, dtype=torch.float64)],
                    1)
    Sc = _coarsen_axis(_coarsen_axis(S, H, -2), W, -1)
    assert torch.allclose(_dense(Sc, hc, wc), P.T @ A @ P, atol=1e-13)
    # and from the multigrid object, which builds it in strips in the phase layout and stores the first STORED
    # entries: the others, read back by symmetry, are the triple product's too
    if H * W > 64:
        mg = Multigrid(k, d, coarsest=16)
        Sph = mg.levels[0].S
        assert Sph.shape[2] == STORED
        rows = phase_block(Sph, hc, wc)(0, hc)
        for kk, off in enumerate([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]):
            ref = Sc[off]
            if off == (0, 0):
                ref = torch.where(ref == 0, torch.ones_like(ref), ref)
            if kk < STORED:
                nat = from_phases(Sph[..., kk, :, :, :, :], torch.empty(2, 1, hc, wc, dtype=torch.float64))
                assert torch.allclose(nat, ref, atol=1e-13)
            assert torch.allclose(rows[off], ref, atol=1e-13)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 11])
def test_grid_transfers_are_adjoint_and_keep_constants(n):
    g = torch.Generator().manual_seed(n)
    H, W = n + 3, n
    c = torch.rand(2, (H + 1) // 2, (W + 1) // 2, generator=g, dtype=torch.float64)
    y = torch.rand(2, H, W, generator=g, dtype=torch.float64)
    assert abs(float((prolong(c, H, W) * y).sum() - (c * restrict(y)).sum())) < 1e-12
    assert torch.allclose(prolong(torch.ones_like(c), H, W), torch.ones_like(y))


@pytest.mark.parametrize("H,W", [(1, 1), (2, 3), (5, 4), (6, 7)])
def test_phase_layout_round_trip(H, W):
    x = torch.arange(H * W, dtype=torch.float64).reshape(1, 1, H, W) + 1
    p = to_phases(x, torch.full((1, 1, *phase_shape(H, W)), float("nan"), dtype=torch.float64))
    assert int(torch.isnan(p).sum()) == 0 and float(p.sum()) == float(x.sum())   # zero outside the grid
    assert float(p[0, 0, 1, 0, 0, 0]) == (float(x[0, 0, 1, 0]) if H > 1 else 0.0)
    assert torch.equal(from_phases(p, torch.empty_like(x)), x)


@pytest.mark.parametrize("shape", [(64, 64), (45, 70)])
def test_vcycle_is_symmetric_positive_definite(shape):
    H, W = shape
    g = torch.Generator().manual_seed(1)
    k = (torch.rand(1, 1, H, W, generator=g) < 0.05).double()
    mg = Multigrid(k, coarsest=32)
    assert len(mg.grids) >= 3
    r1, r2 = ((1 - k) * torch.randn(2, 1, 1, H, W, generator=g, dtype=torch.float64)).unbind(0)
    z1, z2 = mg.precondition(r1), mg.precondition(r2)
    assert abs(float((z1 * r2).sum() - (r1 * z2).sum())) < 1e-12 * float(z1.abs().sum())
    assert float((z1 * r1).sum()) > 0
    assert torch.equal(z1[k.bool()], torch.zeros_like(z1[k.bool()]))


def test_few_iterations_and_a_true_float64_residual_in_float32():
    H, W = 160, 190
    g = torch.Generator().manual_seed(2)
    f = torch.rand(1, 1, H, W, generator=g)
    for density in (0.05, 0.005):
        m = (torch.rand(1, 1, H, W, generator=g) < density).float()
        r = inpaint_diffusion(f, m, tol=1e-6, full_output=True)
        assert int(r.iterations) <= 12
        # the reported residual is the float64 one of the returned solution
        u64, k = r.u.double(), m.double()
        b = (1 - k) * laplacian(k * f.double())
        x = (1 - k) * u64
        true = ((b + (1 - k) * laplacian(x)).norm() / b.norm()).item()
        assert true <= 1e-6
        assert abs(true - float(r.residual)) <= 1e-3 * true + 1e-12
        ref = spsolve_inpaint(f[0, 0].double().numpy(), m[0, 0].double().numpy())
        assert np.abs(r.u[0, 0].double().numpy() - ref).max() < 1e-4


def test_warm_start():
    H, W = 50, 61
    g = torch.Generator().manual_seed(4)
    k = (torch.rand(1, 1, H, W, generator=g) < 0.05).double()
    b = (1 - k) * torch.randn(1, 1, H, W, generator=g, dtype=torch.float64)
    mg = Multigrid(k)
    x, it, _ = mg.solve(b, tol=1e-10)
    x2, it2, res2 = mg.solve(b, x + 1e-6 * (1 - k) * torch.randn(1, 1, H, W, generator=g, dtype=torch.float64),
                             tol=1e-10)
    assert int(it2) < int(it) and float(res2) <= 1e-10
    assert torch.allclose(x, x2, atol=1e-9)
    # the start's values on the known pixels are not read: any values there give the same iterates
    start = x + 1e-6 * (1 - k) * torch.randn(1, 1, H, W, generator=g, dtype=torch.float64)
    x3, it3, _ = mg.solve(b, start, tol=1e-10)
    x4, it4, _ = mg.solve(b, start + 5.0 * k, tol=1e-10)
    assert int(it3) == int(it4) and torch.equal(x3, x4) and bool((x4[k == 1] == 0).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    g = torch.Generator().manual_seed(6)
    f = torch.rand(2, 1, 40, 33, generator=g)
    m = (torch.rand(2, 1, 40, 33, generator=g) < 0.1).float()
    u = inpaint_diffusion(f.to(dtype), m)
    assert u.dtype == dtype and u.shape == f.shape
    ref = inpaint_diffusion(f.to(dtype).float(), m)
    assert torch.equal(u, ref.to(dtype))
    assert torch.equal(u[m.bool()], f.to(dtype)[m.bool()])


def test_empty_batch_is_refused():
    for shape in [(0, 1, 8, 8), (2, 0, 8, 8)]:
        with pytest.raises(UserInputError, match="empty batch"):
            inpaint_diffusion(torch.rand(shape), torch.ones(8, 8))


def test_multigrid_bad_input():
    with pytest.raises(UserInputError, match="known"):
        Multigrid(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(UserInputError, match="known"):
        Multigrid(torch.ones(1, 1, 1, 4, 4))
    with pytest.raises(UserInputError, match="diag"):
        Multigrid(torch.ones(4, 4), torch.ones(3, 4))
    mg = Multigrid(torch.ones(1, 1, 4, 5))
    with pytest.raises(UserInputError, match="b must be"):
        mg.solve(torch.zeros(1, 1, 5, 4))
    with pytest.raises(UserInputError, match="b must be"):
        mg.solve(torch.zeros(1, 1, 4, 5, dtype=torch.float64))
    with pytest.raises(UserInputError, match="x0"):
        mg.solve(torch.zeros(1, 1, 4, 5), torch.zeros(4, 5))


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_strips_of_any_size_give_the_same_solve(monkeypatch, dtype, tol):
    """Strips of a few rows (hierarchy, float64 residual) give the same solve; float32 within its round-off."""
    import sys
    known = (torch.rand(1, 1, 90, 70, generator=torch.Generator().manual_seed(4)) < 0.1).to(torch.float64)
    b = (1 - known) * torch.rand(1, 1, 90, 70, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ref = Multigrid(known).solve(b, tol=1e-12)[0]
    monkeypatch.setattr(sys.modules["pdeflow.multigrid._multigrid2d"], "strip_elements", lambda n, most=0, share=0: 200)
    x, _, res = Multigrid(known.to(dtype)).solve(b.to(dtype), tol=tol)
    assert float(res) <= tol and (x.double() - ref).abs().max().item() <= 50 * tol
