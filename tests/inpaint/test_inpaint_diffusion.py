"""Homogeneous diffusion inpainting (pdeflow.inpaint.inpaint_diffusion): agreement with a sparse
direct solve, exact known pixels, analytic solutions, batching and errors."""
import numpy as np
import pytest
import torch

from _sparse_reference import spsolve_inpaint
from pdeflow.inpaint import inpaint_diffusion, inpainting_error, random_mask
from pdeflow.inpaint.operators import diffusion_system as dmod
from pdeflow.inpaint.operators.diffusion import SOLVERS
from pdeflow.ops import laplacian


def rand_case(H, W, density, seed, C=None):
    g = torch.Generator().manual_seed(seed)
    f = torch.rand((H, W) if C is None else (C, H, W), generator=g, dtype=torch.float64)
    m = random_mask((H, W), density, generator=seed + 1, dtype=torch.float64)
    return f, m


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize("H,W,density", [(9, 14, 0.2), (37, 50, 0.05), (70, 65, 0.01), (64, 64, 0.5),
                                          (40, 44, 0.98)])
def test_agrees_with_sparse_direct_solve(H, W, density, method):
    f, m = rand_case(H, W, density, seed=H + W)
    u = inpaint_diffusion(f, m, tol=1e-10, solver=method)
    ref = spsolve_inpaint(f.numpy(), m.numpy())
    assert np.abs(u.numpy() - ref).max() < 1e-5
    known = m.bool()
    assert torch.equal(u[known], f[known])  # bit for bit


def test_default_tolerance_agrees_to_1e5_in_float64_and_float32():
    f, m = rand_case(96, 80, 0.03, seed=3)
    ref = spsolve_inpaint(f.numpy(), m.numpy())
    assert np.abs(inpaint_diffusion(f, m).numpy() - ref).max() < 1e-5
    u32 = inpaint_diffusion(f.float(), m.float())
    assert u32.dtype == torch.float32
    assert np.abs(u32.double().numpy() - ref).max() < 1e-4
    assert torch.equal(u32[m.bool()], f.float()[m.bool()])


def test_residual_and_laplace_equation():
    f, m = rand_case(50, 60, 0.05, seed=7)
    r = inpaint_diffusion(f, m, tol=1e-9, full_output=True)
    assert float(r.residual.max()) <= 1e-9
    # the residual is relative to ||b|| = ||laplacian(m f)|| on the unknowns
    b = laplacian(m * f)[~m.bool()].norm()
    lap = laplacian(r.u)[~m.bool()]
    assert float(lap.norm()) <= 1.01e-9 * float(b)
    assert float(lap.abs().max()) < 1e-8


def test_constant_is_preserved_and_maximum_principle():
    m = random_mask((40, 33), 0.02, generator=0, dtype=torch.float64)
    f = torch.full((40, 33), 0.37, dtype=torch.float64)
    assert torch.allclose(inpaint_diffusion(f, m, tol=1e-12), f, atol=1e-9, rtol=0)
    f, m = rand_case(40, 33, 0.02, seed=1)
    u = inpaint_diffusion(f, m, tol=1e-10)
    kf = f[m.bool()]
    assert float(u.min()) >= float(kf.min()) - 1e-12 and float(u.max()) <= float(kf.max()) + 1e-12


def test_neumann_boundary_analytic_solutions():
    H, W = 23, 31
    f = torch.rand(H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # Known first and last columns: each row is harmonic and the vertical Neumann
    # boundary is free, so u is linear in the column between the two values.
    f[:, 0], f[:, -1] = 0.2, 0.9
    m = torch.zeros(H, W, dtype=torch.float64)
    m[:, 0] = m[:, -1] = 1
    u = inpaint_diffusion(f, m, tol=1e-12)
    lin = 0.2 + 0.7 * torch.arange(W, dtype=torch.float64) / (W - 1)
    assert torch.allclose(u, lin.expand(H, W), atol=1e-9, rtol=0)
    # Only the first column known (constant): Neumann elsewhere gives that constant.
    m2 = torch.zeros(H, W, dtype=torch.float64)
    m2[:, 0] = 1
    assert torch.allclose(inpaint_diffusion(f, m2, tol=1e-12), torch.full((H, W), 0.2, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("method", SOLVERS)
def test_one_known_pixel_gives_a_constant(method):
    # Neumann boundary: with a single known pixel the harmonic extension is that value everywhere.
    f = torch.rand(2, 1, 45, 38, generator=torch.Generator().manual_seed(1))
    m = torch.zeros(2, 1, 45, 38)
    m[0, 0, 3, 30] = 1
    m[1, 0, 44, 0] = 1
    u = inpaint_diffusion(f, m, solver=method, tol=1e-7)
    assert torch.allclose(u[0], f[0, 0, 3, 30].expand(1, 45, 38), atol=1e-5)
    assert torch.allclose(u[1], f[1, 0, 44, 0].expand(1, 45, 38), atol=1e-5)


def test_mirror_symmetry():
    f, m = rand_case(30, 41, 0.05, seed=5)
    u = inpaint_diffusion(f, m, tol=1e-11)
    for dims in ((-1,), (-2,), (-1, -2)):
        uf = inpaint_diffusion(f.flip(dims), m.flip(dims), tol=1e-11)
        assert torch.allclose(uf, u.flip(dims), atol=1e-9)


def test_batched_colour_and_broadcast_masks():
    g = torch.Generator().manual_seed(2)
    f = torch.rand(3, 3, 33, 47, generator=g, dtype=torch.float64)
    masks = random_mask((3, 1, 33, 47), 0.04, generator=4, dtype=torch.float64)
    u = inpaint_diffusion(f, masks, tol=1e-10)
    assert u.shape == f.shape
    for b in range(3):
        for c in range(3):
            ref = spsolve_inpaint(f[b, c].numpy(), masks[b, 0].numpy())
            assert np.abs(u[b, c].numpy() - ref).max() < 1e-6
    # One (H, W) mask for the whole batch, and (C, H, W) input.
    u1 = inpaint_diffusion(f, masks[0, 0], tol=1e-10)
    assert torch.allclose(u1[2], inpaint_diffusion(f[2], masks[0, 0], tol=1e-10), atol=1e-8)
    # A per-channel mask decouples the channels.
    mc = random_mask((3, 33, 47), 0.05, generator=9, dtype=torch.float64)
    uc = inpaint_diffusion(f[0], mc, tol=1e-10)
    for c in range(3):
        assert torch.allclose(uc[c], inpaint_diffusion(f[0, c], mc[c], tol=1e-10), atol=1e-8)
    # bool masks work the same
    assert torch.equal(inpaint_diffusion(f[0], masks[0].bool(), tol=1e-10),
                       inpaint_diffusion(f[0], masks[0], tol=1e-10))


def test_warm_start_gives_the_same_solution():
    f, m = rand_case(48, 48, 0.05, seed=11)
    u = inpaint_diffusion(f, m, tol=1e-10)
    m2 = m.clone()
    on = m.flatten().nonzero()[0, 0]
    m2.view(-1)[on] = 0
    m2.view(-1)[(m.flatten() == 0).nonzero()[3, 0]] = 1
    for method in SOLVERS:
        r = inpaint_diffusion(f, m2, tol=1e-10, x0=u, solver=method, full_output=True)
        ref = spsolve_inpaint(f.numpy(), m2.numpy())
        assert np.abs(r.u.numpy() - ref).max() < 1e-7


def test_multigrid_needs_few_iterations_on_sparse_masks():
    f, m = rand_case(200, 180, 0.01, seed=13)
    mg = inpaint_diffusion(f, m, tol=1e-8, full_output=True)
    cg = inpaint_diffusion(f, m, tol=1e-8, solver="cg", full_output=True)
    assert int(mg.iterations.max()) <= 30
    assert int(cg.iterations.max()) > 5 * int(mg.iterations.max())
    assert torch.allclose(mg.u, cg.u, atol=1e-6)


def test_inpainting_error():
    f, m = rand_case(20, 20, 0.1, seed=0)
    u = inpaint_diffusion(f, m)
    assert torch.isclose(inpainting_error(f, u), ((u - f) ** 2).mean())
    assert torch.isclose(inpainting_error(f, u, metric="mae"), (u - f).abs().mean())
    with pytest.raises(ValueError, match="metric"):
        inpainting_error(f, u, metric="psnr")


def test_bad_input_errors():
    f = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    m = random_mask((2, 1, 16, 16), 0.1, generator=0, dtype=torch.float64)
    with pytest.raises(ValueError, match="does not fit"):
        inpaint_diffusion(f, m[..., :15])
    with pytest.raises(ValueError, match="does not fit"):
        inpaint_diffusion(f, torch.ones(3, 1, 16, 16))
    empty = m.clone()
    empty[1] = 0
    with pytest.raises(ValueError, match="no known pixel in image 1"):
        inpaint_diffusion(f, empty)
    bad = f.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        inpaint_diffusion(bad, m)
    with pytest.raises(ValueError, match="binary"):
        inpaint_diffusion(f, m * 0.5)
    with pytest.raises(TypeError, match="floating"):
        inpaint_diffusion(torch.ones(8, 8, dtype=torch.int64), torch.ones(8, 8))
    with pytest.raises(ValueError, match="tol"):
        inpaint_diffusion(f, m, tol=0)
    with pytest.raises(ValueError, match="solver must be one of"):
        inpaint_diffusion(f, m, solver="lu")
    with pytest.raises(ValueError, match="x0"):
        inpaint_diffusion(f, m, x0=torch.zeros(16, 16))
    # a NumPy mask is taken as torch.as_tensor makes it (the API contract, tests/package/test_api_contract.py)
    assert torch.equal(inpaint_diffusion(f, np.ones((16, 16))),
                       inpaint_diffusion(f, torch.ones(16, 16, dtype=torch.float64)))
    with pytest.raises(ValueError, match="mask must be a torch.Tensor, a NumPy array or a list"):
        inpaint_diffusion(f, "everywhere")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    f, m = rand_case(64, 64, 0.02, seed=1)
    u = inpaint_diffusion(f.cuda(), m.cuda(), tol=1e-10)
    assert u.is_cuda
    assert torch.allclose(u.cpu(), inpaint_diffusion(f, m, tol=1e-10), atol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cg_operator_is_the_masked_laplacian(dtype):
    """The CG operator (one convolution) is w (-laplacian(w x)) + m x (+ d x for continuous masks)."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 17, 23, generator=g, dtype=torch.float64)
    m = (torch.rand(2, 1, 17, 23, generator=g) < 0.2).double()
    c = torch.where(m > 0, torch.ones_like(m), 0.9 * torch.rand(2, 1, 17, 23, generator=g, dtype=torch.float64))
    for mask, binary in ((m, True), (c, False)):
        s = dmod.DiffusionSystem(mask.to(dtype), "cg", binary)
        w = 1 - s.k.double()
        xw = x * w                                            # CG vectors are zero on the known pixels
        ref = w * (-laplacian(w * xw)) + s.k.double() * xw + (0 if binary else s.d.double() * xw)
        tol = 1e-12 if dtype == torch.float64 else 1e-5
        assert torch.allclose(s.apply_a(xw.to(dtype)).double(), ref, rtol=0, atol=tol * float(ref.abs().max()))


@pytest.mark.parametrize("binary", [True, False])
def test_single_image_matrix_path_matches_the_batched_solver(binary):
    """One CPU image with plain CG runs cg_matrix on the Laplacian's CSR matrix; a batch runs the tensor
    loop. Both solve the same system: the same solution and about the same iteration count."""
    g = torch.Generator().manual_seed(11)
    f = torch.rand(3, 1, 29, 41, generator=g, dtype=torch.float64)
    m = (torch.rand(3, 1, 29, 41, generator=g) < 0.1).double()
    c = m if binary else torch.where(m > 0, m, 0.8 * torch.rand(3, 1, 29, 41, generator=g, dtype=torch.float64))
    lap = dmod.laplacian_csr(29, 41)
    x = torch.randn(29, 41, generator=g, dtype=torch.float64)
    assert torch.allclose(torch.from_numpy(lap @ x.reshape(-1).numpy()).view(29, 41), laplacian(x), atol=1e-13)
    for i in range(3):   # the operator of the matrix path is apply_a on vectors zero on the mask
        s = dmod.DiffusionSystem(c[i:i + 1], "cg", binary)
        xw = s.w * x
        assert np.allclose(s.matrix(np.float64) @ xw.reshape(-1).numpy(), s.apply_a(xw).reshape(-1).numpy(),
                           rtol=0, atol=1e-12)
    batched = inpaint_diffusion(f, c, tol=1e-10, solver="cg", continuous=not binary, full_output=True)
    for i in range(3):
        one = inpaint_diffusion(f[i:i + 1], c[i:i + 1], tol=1e-10, solver="cg", continuous=not binary, full_output=True)
        assert torch.allclose(one.u, batched.u[i:i + 1], rtol=0, atol=1e-9)
        assert abs(int(one.iterations) - int(batched.iterations[i])) <= max(2, 0.05 * int(batched.iterations[i]))
        assert float(one.residual) <= 1e-10
