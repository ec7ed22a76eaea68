"""Diffusion inpainting of volumes (pdeflow.inpaint.inpaint_diffusion with ndim=3 / spacing,
pdeflow.multigrid.Multigrid3d): the solution against scipy's sparse direct solve of the same 7-point system (built here
independently of
pdeflow.ops), the known voxels bit for bit, a volume constant along D against the 2-D solver, and the adjoint
backward against finite differences (gradcheck) in float64."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch

from pdeflow import ops
from pdeflow.errors import UserInputError
from pdeflow.inpaint import inpaint_diffusion
from pdeflow.inpaint.operators.diffusion import SOLVERS
from pdeflow.multigrid import Multigrid3d, prolong3, restrict3


def neumann_laplacian_3d(shape, spacing=(1.0, 1.0, 1.0)):
    """The 7-point Neumann Laplacian (second differences divided by h**2) as a scipy matrix."""
    def d1(n):
        e = np.ones(max(n - 1, 0))
        return sp.diags([-e, e], [0, 1], shape=(max(n - 1, 0), n))
    mats = []
    for a, (n, h) in enumerate(zip(shape, spacing)):
        eyes = [sp.eye(m) for m in shape]
        eyes[a] = d1(n)
        G = sp.kron(sp.kron(eyes[0], eyes[1]), eyes[2]) / h
        mats.append(G.T @ G)
    return -(mats[0] + mats[1] + mats[2]).tocsr()


def direct(f, m, spacing=(1.0, 1.0, 1.0)):
    """u = f on the mask, L u = 0 elsewhere, by spsolve (float64), f and m (D, H, W) arrays."""
    L = neumann_laplacian_3d(f.shape, spacing)
    mf = m.reshape(-1)
    A = (sp.diags(mf) - sp.diags(1.0 - mf) @ L).tocsc()
    return spl.spsolve(A, mf * f.reshape(-1)).reshape(f.shape)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape,spacing,density", [
    ((9, 11, 13), (1.0, 1.0, 1.0), 0.05),
    ((13, 7, 15), (2.5, 0.7, 0.7), 0.05),      # CT-like anisotropic voxels
    ((17, 16, 9), (1.0, 3.0, 1.0), 0.02),      # sparse mask, strong anisotropy
    ((5, 19, 21), (0.5, 1.0, 1.0), 0.2),
])
@pytest.mark.parametrize("solver", SOLVERS)
def test_against_spsolve(shape, spacing, density, solver):
    f = torch.rand(shape, generator=gen(1), dtype=torch.float64)
    m = (torch.rand(shape, generator=gen(2)) < density).double()
    u = inpaint_diffusion(f, m, spacing=spacing, tol=1e-12, solver=solver)
    ref = direct(f.numpy(), m.numpy(), spacing)
    assert u.shape == f.shape and u.dtype == f.dtype
    np.testing.assert_allclose(u.numpy(), ref, rtol=0, atol=1e-8)


def test_structured_masks_and_batch_with_different_masks():
    shape = (11, 12, 13)
    f = torch.rand(3, 2, *shape, generator=gen(3), dtype=torch.float64)
    m = torch.zeros(3, 1, *shape, dtype=torch.float64)
    m[0, 0, ::4, ::4, ::4] = 1                      # a regular lattice
    m[1, 0, :, 6, :] = 1                            # one plane
    m[2, 0] = (torch.rand(shape, generator=gen(4)) < 0.1).double()   # random
    r = inpaint_diffusion(f, m, ndim=3, tol=1e-12, full_output=True)
    for b in range(3):
        for c in range(2):
            ref = direct(f[b, c].numpy(), m[b, 0].numpy())
            np.testing.assert_allclose(r.u[b, c].numpy(), ref, rtol=0, atol=1e-8)
    assert r.iterations.shape == (3,) and bool((r.residual <= 1e-12).all())


def test_per_volume_stopping():
    shape = (10, 10, 10)
    f = torch.rand(2, 1, *shape, generator=gen(5), dtype=torch.float64)
    f[1] = 0.0                                       # b = 0: nothing to do for the second volume
    m = (torch.rand(shape, generator=gen(6)) < 0.05).double()
    r = inpaint_diffusion(f, m, ndim=3, tol=1e-10, full_output=True)
    assert int(r.iterations[0]) > 0 and int(r.iterations[1]) == 0
    assert bool((r.u[1] == 0).all())
    # the first volume is solved as if it were alone
    alone = inpaint_diffusion(f[:1], m, ndim=3, tol=1e-10)
    torch.testing.assert_close(r.u[:1], alone, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("solver", SOLVERS)
def test_known_voxels_bit_for_bit(dtype, solver):
    f = torch.rand(2, 1, 12, 9, 14, generator=gen(7), dtype=dtype) * 100 - 30
    m = torch.rand(2, 1, 12, 9, 14, generator=gen(8)) < 0.07
    u = inpaint_diffusion(f, m, ndim=3, solver=solver)
    assert u.dtype == dtype
    assert torch.equal(u[m], f[m])


def test_residual_of_the_laplace_equation_float32():
    f = torch.rand(1, 1, 24, 20, 18, generator=gen(9))
    m = (torch.rand(1, 1, 24, 20, 18, generator=gen(10)) < 0.05).float()
    h = (2.0, 0.8, 0.8)
    r = inpaint_diffusion(f, m, spacing=h, full_output=True)
    assert float(r.residual) <= 1e-6
    # checked independently in float64: w L u = 0 relative to w L (m f)
    u64, f64, m64 = r.u.double(), f.double(), m.double()
    lap = ops.laplacian(u64, spacing=h)
    rel = ((1 - m64) * lap).norm() / ((1 - m64) * ops.laplacian(m64 * f64, spacing=h)).norm()
    assert float(rel) < 1e-5


def test_constant_along_depth_equals_the_2d_solve():
    f2 = torch.rand(2, 1, 17, 23, generator=gen(11), dtype=torch.float64)
    m2 = (torch.rand(2, 1, 17, 23, generator=gen(12)) < 0.08).double()
    u2 = inpaint_diffusion(f2, m2, tol=1e-12)
    D = 6
    f3 = f2[:, :, None].expand(-1, -1, D, -1, -1).contiguous()
    m3 = m2[:, :, None].expand(-1, -1, D, -1, -1).contiguous()
    for h in (None, (3.0, 1.0, 1.0)):   # the spacing along D does not matter
        u3 = inpaint_diffusion(f3, m3, ndim=3, spacing=h, tol=1e-12)
        for d in range(D):
            torch.testing.assert_close(u3[:, :, d], u2, rtol=0, atol=1e-9)


def test_2d_with_spacing_against_spsolve():
    f = torch.rand(15, 22, generator=gen(13), dtype=torch.float64)
    m = (torch.rand(15, 22, generator=gen(14)) < 0.08).double()
    u = inpaint_diffusion(f, m, spacing=(2.0, 0.5), tol=1e-12)
    ref = direct(f.numpy()[None], m.numpy()[None], (1.0, 2.0, 0.5))[0]
    np.testing.assert_allclose(u.numpy(), ref, rtol=0, atol=1e-8)
    # unit spacing given explicitly is the 2-D solver, bit for bit
    assert torch.equal(inpaint_diffusion(f, m, spacing=(1.0, 1.0)), inpaint_diffusion(f, m))


def test_shapes_and_broadcast_masks():
    f = torch.rand(7, 8, 9, generator=gen(15), dtype=torch.float64)
    m = (torch.rand(7, 8, 9, generator=gen(16)) < 0.1).double()
    u = inpaint_diffusion(f, m, ndim=3, tol=1e-12)
    assert u.shape == (7, 8, 9)
    u4 = inpaint_diffusion(f[None].expand(3, -1, -1, -1), m, ndim=3, tol=1e-12)
    assert u4.shape == (3, 7, 8, 9)
    for c in range(3):
        torch.testing.assert_close(u4[c], u, rtol=0, atol=1e-9)


def test_warm_start_and_half_precision():
    f = torch.rand(1, 1, 20, 20, 20, generator=gen(17))
    m = (torch.rand(1, 1, 20, 20, 20, generator=gen(18)) < 0.05).float()
    r = inpaint_diffusion(f, m, ndim=3, full_output=True)
    r2 = inpaint_diffusion(f, m, ndim=3, x0=r.u, full_output=True)
    assert int(r2.iterations) < int(r.iterations)
    uh = inpaint_diffusion(f.half(), m, ndim=3)
    assert uh.dtype == torch.float16 and uh.shape == f.shape


def test_bad_input():
    f = torch.rand(6, 7, 8)
    m = torch.zeros(6, 7, 8)
    m[0, 0, 0] = 1
    with pytest.raises(UserInputError, match="spacing"):
        inpaint_diffusion(f, m, ndim=2, spacing=(1.0, 1.0, 2.0))
    with pytest.raises(UserInputError, match="spacing"):
        inpaint_diffusion(f, m, spacing=(1.0, -1.0, 2.0))
    with pytest.raises(UserInputError, match="ndim"):
        inpaint_diffusion(f, m, ndim=4)
    with pytest.raises(UserInputError, match="mask"):
        inpaint_diffusion(f, m[:, :, :-1], ndim=3)
    with pytest.raises(UserInputError, match="no known voxel"):
        inpaint_diffusion(f, torch.zeros(6, 7, 8), ndim=3)
    with pytest.raises(UserInputError, match="binary"):
        inpaint_diffusion(f, m * 0.5 + 0.25, ndim=3)
    with pytest.raises(UserInputError, match=r"\(D, H, W\)"):
        inpaint_diffusion(torch.rand(6, 7), torch.ones(6, 7), ndim=3)
    with pytest.raises(UserInputError, match="empty batch"):
        inpaint_diffusion(torch.rand(0, 1, 6, 7, 8), m, ndim=3)


@pytest.mark.parametrize("spacing", [None, (2.5, 0.7, 0.7), (1.0, 1.0, 3.0)])
def test_iterations_stay_flat(spacing):
    """Flat in the size, and (semi-coarsening) nearly so in the anisotropy of the voxels."""
    its = []
    for n in (16, 40):
        f = torch.rand(1, 1, n, n, n, generator=gen(19))
        m = (torch.rand(1, 1, n, n, n, generator=gen(20)) < 0.05).float()
        its.append(int(inpaint_diffusion(f, m, spacing=spacing, ndim=3, full_output=True).iterations))
    assert its[1] <= its[0] + 2 and its[1] <= 12


# --- gradients -------------------------------------------------------------------------------------

def test_gradcheck_data_and_continuous_mask():
    shape = (1, 1, 4, 5, 3)
    f = torch.rand(shape, generator=gen(21), dtype=torch.float64, requires_grad=True)
    c = (0.15 + 0.7 * torch.rand(shape, generator=gen(22), dtype=torch.float64)).requires_grad_()
    fun = lambda f_, c_: inpaint_diffusion(f_, c_, spacing=(2.0, 1.0, 0.5), continuous=True, tol=1e-13)  # noqa: E731
    assert torch.autograd.gradcheck(fun, (f, c), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradient_binary_mask_against_finite_differences():
    """dl/df and the one-sided dl/dc at a binary mask (perturbations into [0, 1])."""
    shape = (5, 4, 6)
    f = torch.rand(shape, generator=gen(23), dtype=torch.float64)
    m = (torch.rand(shape, generator=gen(24)) < 0.3).double()
    m[0, 0, 0] = 1
    g = torch.rand(shape, generator=gen(25), dtype=torch.float64)
    h = (1.5, 1.0, 0.7)

    def loss(f_, c_):
        return float((inpaint_diffusion(f_, c_, spacing=h, continuous=True, tol=1e-13) * g).sum())

    fr, mr = f.clone().requires_grad_(), m.clone().requires_grad_()
    (inpaint_diffusion(fr, mr, spacing=h, tol=1e-13) * g).sum().backward()
    eps = 1e-6
    for idx in [(0, 0, 0), (2, 1, 3), (4, 3, 5), (1, 2, 2)]:
        e = torch.zeros(shape, dtype=torch.float64)
        e[idx] = eps
        fd_f = (loss(f + e, m) - loss(f - e, m)) / (2 * eps)
        assert abs(fd_f - float(fr.grad[idx])) < 1e-6
        # one-sided in c, second order: (-3 l(c) + 4 l(c + s) - l(c + 2 s)) / (2 s), s pointing into [0, 1]
        s = -eps if m[idx] == 1 else eps
        e[idx] = s
        fd_c = (-3 * loss(f, m) + 4 * loss(f, m + e) - loss(f, m + 2 * e)) / (2 * s)
        assert abs(fd_c - float(mr.grad[idx])) < 1e-5


# --- the multigrid kit ---------------------------------------------------------------------------

def test_prolong3_restrict3_are_transposes():
    for shape in [(3, 4, 5), (6, 1, 7), (2, 2, 2)]:
        coarse = tuple((n + 1) // 2 for n in shape)
        c = torch.rand(coarse, generator=gen(26), dtype=torch.float64)
        y = torch.rand(shape, generator=gen(27), dtype=torch.float64)
        torch.testing.assert_close((prolong3(c, shape) * y).sum(), (c * restrict3(y)).sum())
    assert torch.equal(prolong3(torch.ones(2, 3, 3), (4, 5, 6)), torch.ones(4, 5, 6))   # constants are kept


def test_multigrid3d_levels_and_exact_small_problem():
    known = (torch.rand(1, 1, 33, 17, 9, generator=gen(28)) < 0.05).double()
    assert Multigrid3d(known).grids[:3] == [(33, 17, 9), (17, 9, 5), (9, 5, 3)]
    # semi-coarsening: only the axes whose spacing is within 1.5x the finest are halved
    mg = Multigrid3d(known, spacing=(1.0, 2.0, 0.5))
    assert mg.grids[:3] == [(33, 17, 9), (33, 17, 5), (17, 17, 3)]
    ks = known[..., :5, :5, :5].clone()
    ks[..., 2, 2, 2] = 1                            # 125 voxels: one dense solve, CG in one step
    small = Multigrid3d(ks)
    assert small.grids == [(5, 5, 5)]
    b = torch.rand(1, 1, 5, 5, 5, generator=gen(29), dtype=torch.float64) * (1 - ks)
    x, it, res = small.solve(b, tol=1e-12)
    assert int(it) <= 2 and float(res) <= 1e-12


def test_cuda_if_available():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    f = torch.rand(2, 1, 24, 20, 22, generator=gen(30))
    m = (torch.rand(2, 1, 24, 20, 22, generator=gen(31)) < 0.05).float()
    u_cpu = inpaint_diffusion(f, m, ndim=3, tol=1e-6)
    u_gpu = inpaint_diffusion(f.cuda(), m.cuda(), ndim=3, tol=1e-6)
    assert u_gpu.device.type == "cuda"
    torch.testing.assert_close(u_gpu.cpu(), u_cpu, rtol=0, atol=1e-4)


def test_galerkin_coarse_operator_is_p_transpose_a_p():
    """The stencil-wise Galerkin product (one axis at a time) against dense P^T A P, A from scipy."""
    from pdeflow.multigrid._galerkin import coarsen
    from pdeflow.multigrid._multigrid3d import _dense3

    shape, h = (5, 6, 7), (2.0, 1.0, 0.5)
    known = (torch.rand(1, 1, *shape, generator=gen(32)) < 0.2).double()
    mg = Multigrid3d(known, spacing=h, coarsest=1)
    w = (1 - known).reshape(-1).numpy()
    A = (sp.diags(w) @ -neumann_laplacian_3d(shape, h) @ sp.diags(w)).toarray()   # W (-L) W
    S = mg._fine_stencil(mg.w * 0 + torch.from_numpy(np.diag(A).copy()).view(1, 1, *shape))
    np.testing.assert_allclose(_dense3(S, shape)[0, 0].numpy(), A, rtol=0, atol=1e-12)
    coarse = tuple((n + 1) // 2 for n in shape)
    nc = int(np.prod(coarse))
    P = prolong3(torch.eye(nc, dtype=torch.float64).reshape(nc, *coarse), shape).reshape(nc, -1).T.numpy()
    for axis in range(3):
        S = coarsen(S, shape[axis], axis)
    np.testing.assert_allclose(_dense3(S, coarse)[0, 0].numpy(), P.T @ A @ P, rtol=0, atol=1e-12)


def test_continuous_mask_against_spsolve():
    shape, h = (9, 8, 11), (1.0, 2.0, 1.0)
    f = torch.rand(shape, generator=gen(33), dtype=torch.float64)
    c = torch.rand(shape, generator=gen(34), dtype=torch.float64) * 0.6
    c[torch.rand(shape, generator=gen(35)) < 0.05] = 1.0
    u = inpaint_diffusion(f, c, spacing=h, continuous=True, tol=1e-12)
    cf = c.reshape(-1).numpy()
    M = (sp.diags(cf) - sp.diags(1.0 - cf) @ neumann_laplacian_3d(shape, h)).tocsc()
    ref = spl.spsolve(M, cf * f.reshape(-1).numpy()).reshape(shape)
    np.testing.assert_allclose(u.numpy(), ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("spacing", [None, (3.0, 1.0, 1.0)])
def test_first_coarse_grid_in_strips_equals_the_whole(spacing):
    from pdeflow.multigrid._galerkin import coarsen

    known = (torch.rand(2, 1, 13, 6, 7, generator=gen(36)) < 0.2).double()
    mg = Multigrid3d(known, spacing=spacing, coarsest=1)
    gdiag = torch.rand(2, 1, 13, 6, 7, generator=gen(37), dtype=torch.float64) * (1 - known)
    axes = mg.axes[0]
    whole = mg._fine_stencil(gdiag.clone())
    for axis in axes:
        whole = coarsen(whole, mg.shape[axis], axis)
    for planes in (1, 2, 3):
        strips = mg._first_galerkin(gdiag.clone(), axes, planes=planes)
        assert strips.keys() == whole.keys()
        for off in whole:
            torch.testing.assert_close(strips[off], whole[off], rtol=0, atol=1e-14)
