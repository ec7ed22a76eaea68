"""Edge-enhancing diffusion inpainting (pdeflow.inpaint.operators.eed) and the shared lagged-diffusivity operator:
exact solutions, symmetries, an independent SciPy fixed point, float32 against float64, batches, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg
import torch

from _operator_data import edge_image, random_known
from pdeflow.errors import InputDtypeError, UserInputError
from pdeflow.inpaint.operators.eed import inpaint_eed, solve_unchecked
from pdeflow.inpaint.operators.tensor_diffusion import TensorOperator

_image, _mask = edge_image, random_known


# ---------------------------------------------------------------------------
# An independent implementation: SciPy sparse matrices from the definition
# ---------------------------------------------------------------------------

def _differences(H, W):
    """Forward and backward difference matrices along H and W (zero rows across the boundary), row-major."""
    def one(n, forward):
        d = scipy.sparse.lil_matrix((n, n))
        for i in range(n):
            if forward and i < n - 1:
                d[i, i], d[i, i + 1] = -1, 1
            if not forward and i > 0:
                d[i, i - 1], d[i, i] = -1, 1
        return d.tocsr()
    eye_h, eye_w = scipy.sparse.eye(H), scipy.sparse.eye(W)
    dy = [scipy.sparse.kron(one(H, fw), eye_w).tocsr() for fw in (True, False)]
    dx = [scipy.sparse.kron(eye_h, one(W, fw)).tocsr() for fw in (True, False)]
    return dy, dx


def _matrix(d00, d01, d11, dy, dx):
    """``1/4 sum_ab G_ab^T D G_ab`` from the definition."""
    D00, D01, D11 = (scipy.sparse.diags(d.ravel()) for d in (d00, d01, d11))
    A = 0
    for gy in dy:
        for gx in dx:
            A = A + gy.T @ (D00 @ gy + D01 @ gx) + gx.T @ (D01 @ gy + D11 @ gx)
    return (A / 4).tocsr()


def _central(v, axis):
    """Half the sum of the forward and the backward difference (Neumann), NumPy."""
    e = np.diff(v, axis=axis)
    pad = [(0, 0)] * v.ndim
    pad[axis] = (1, 0)
    lo = np.pad(e, pad)
    pad[axis] = (0, 1)
    return 0.5 * (lo + np.pad(e, pad))


def _eed_reference(f, m, lam, sigma, iterations=400):
    """EED inpainting of a grey image by the plain fixed point with exact sparse solves (float64)."""
    H, W = f.shape
    dy, dx = _differences(H, W)
    known = m.ravel() > 0
    unk = ~known

    def solve(A):
        u = f.ravel().copy()
        u[unk] = scipy.sparse.linalg.spsolve(A[unk][:, unk].tocsc(), -A[unk][:, known] @ f.ravel()[known])
        return u.reshape(H, W)

    ones = np.ones((H, W))
    u = solve(_matrix(ones, 0 * ones, ones, dy, dx))                     # homogeneous diffusion
    for _ in range(iterations):
        us = scipy.ndimage.gaussian_filter(u, sigma, mode="mirror", truncate=3.5)
        cy, cx = _central(us, 0), _central(us, 1)
        s2 = cy ** 2 + cx ** 2
        g = 1 / np.sqrt(1 + s2 / lam ** 2)
        h = np.where(s2 > 0, (1 - g) / np.where(s2 > 0, s2, 1), 1 / (2 * lam ** 2))
        new = solve(_matrix(1 - h * cy * cy, -h * cy * cx, 1 - h * cx * cx, dy, dx))
        if np.abs(new - u).max() < 1e-13:
            return new
        u = new
    raise AssertionError("the reference fixed point did not converge")


def test_operator_is_the_energy_of_the_four_one_sided_gradients():
    H, W = 6, 7
    g = torch.Generator().manual_seed(3)
    d00, d11 = (0.5 + torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) for _ in range(2))
    d01 = 0.3 * (torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) - 0.5)
    op = TensorOperator.from_tensor(d00, d01, d11, torch.ones(1, 1, H, W, dtype=torch.float64))
    A = _matrix(d00[0, 0].numpy(), d01[0, 0].numpy(), d11[0, 0].numpy(), *_differences(H, W))
    u = torch.randn(1, 1, H, W, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(op.apply(u).ravel().numpy(), A @ u.ravel().numpy(), atol=1e-13)
    # symmetric positive semi-definite with the constants as null space
    assert abs(A - A.T).max() < 1e-14
    ev = np.linalg.eigvalsh(A.toarray())
    assert ev[0] > -1e-12 and ev[1] > 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("isotropic", [False, True])
def test_operator_in_strips_of_rows_is_the_operator_on_the_whole_image(isotropic, dtype, monkeypatch):
    from pdeflow.inpaint.operators import tensor_diffusion
    H, W = 23, 9
    g = torch.Generator().manual_seed(4)
    d00, d11 = (0.5 + torch.rand(2, 1, H, W, generator=g, dtype=dtype) for _ in range(2))
    d01 = None if isotropic else 0.3 * (torch.rand(2, 1, H, W, generator=g, dtype=dtype) - 0.5)
    op = TensorOperator.from_tensor(d00, d01, d11, torch.ones(2, 1, H, W, dtype=dtype))
    u = torch.randn(2, 3, H, W, generator=g, dtype=dtype)
    whole = op.apply(u)                                    # 23 rows: one piece
    d01_ref = np.zeros((H, W)) if isotropic else d01[1, 0].double().numpy()
    A = _matrix(d00[1, 0].double().numpy(), d01_ref, d11[1, 0].double().numpy(), *_differences(H, W))
    np.testing.assert_allclose(whole[1, 2].double().ravel().numpy(), A @ u[1, 2].double().ravel().numpy(),
                               atol=1e-13 if dtype == torch.float64 else 1e-5)
    for rows in (1, 2, 5, 11):                             # strips of these many rows (the last one shorter)
        monkeypatch.setattr(tensor_diffusion, "STRIP_ELEMENTS", rows * 3 * W)
        assert torch.equal(op.apply(u), whole)


def test_against_scipy_fixed_point():
    f = _image((14, 15))
    m = _mask((14, 15), 0.25)
    lam, sigma = 0.1, 1.0
    ref = _eed_reference(f.numpy(), m.numpy(), lam, sigma)
    rng = float(f[m > 0].max() - f[m > 0].min())
    u = inpaint_eed(f, m, contrast=lam / rng, sigma=sigma, tol=1e-11, max_iter=500)
    np.testing.assert_allclose(u.numpy(), ref, atol=1e-8)


def test_constant_and_linear_data_are_exact():
    H, W = 20, 22
    m = _mask((H, W), 0.05)
    m[0, 0] = 1
    u = inpaint_eed(torch.full((H, W), 0.3, dtype=torch.float64), m, tol=1e-10)
    assert float((u - 0.3).abs().max()) < 1e-9     # exact up to the tolerance
    # a linear ramp: exact once the frame where the smoothing meets the boundary (radius + stencil) is known
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    f = 0.02 * x - 0.03 * y + 0.5
    frame = torch.ones(H, W, dtype=torch.float64)
    r = int(3.5 * 1.0 + 0.5) + 2
    frame[r:H - r, r:W - r] = 0
    u = inpaint_eed(f, frame, sigma=1.0, tol=1e-11)
    assert float((u - f).abs().max()) < 1e-9
    # affine intensity changes commute with the inpainting (the contrast is relative to the range)
    g, mm = _image((16, 16)), _mask((16, 16), 0.1)
    np.testing.assert_allclose(inpaint_eed(3 * g - 1, mm, tol=1e-10).numpy(),
                               (3 * inpaint_eed(g, mm, tol=1e-10) - 1).numpy(), atol=1e-8)


# k = 2, 3: the slow tier (k = 1 and the flip keep the symmetry in make test)
@pytest.mark.parametrize("k", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_rotations_and_flips_commute(k):
    f, m = _image((2, 18, 18)), _mask((18, 18), 0.15)
    u = inpaint_eed(f, m, tol=1e-11)
    rot = inpaint_eed(torch.rot90(f, k, (-2, -1)), torch.rot90(m, k, (-2, -1)), tol=1e-11)
    np.testing.assert_allclose(rot.numpy(), torch.rot90(u, k, (-2, -1)).numpy(), atol=1e-8)
    flip = inpaint_eed(f.flip(-1), m.flip(-1), tol=1e-11)
    np.testing.assert_allclose(flip.numpy(), u.flip(-1).numpy(), atol=1e-8)


def test_float32_within_tolerance_of_float64():
    f, m = _image((40, 40)), _mask((40, 40), 0.05)
    u64 = inpaint_eed(f, m, tol=1e-5)
    u32 = inpaint_eed(f.float(), m, tol=1e-5)
    assert u32.dtype == torch.float32
    # stated tolerance: 1e-4 of the range (the two may stop a step apart; a step at this residual moves u less)
    assert float((u32.double() - u64).abs().max()) < 1e-4
    u16 = inpaint_eed(f.half(), m, tol=1e-5)
    assert u16.dtype == torch.float16 and float((u16.double() - u64).abs().max()) < 2e-3


@pytest.mark.slow   # EED solves per image and batched
def test_batch_equals_loop_and_channels():
    f = _image((2, 3, 16, 17))
    m = torch.stack([_mask((1, 16, 17), 0.1, seed=s) for s in (4, 5)])
    u = inpaint_eed(f, m, tol=1e-10)
    for b in range(2):
        np.testing.assert_allclose(u[b].numpy(), inpaint_eed(f[b], m[b], tol=1e-10).numpy(), atol=1e-9)
    # a grey image repeated in every channel is inpainted as the grey one (the tensor averages the channels)
    grey = inpaint_eed(f[0, 0], m[0, 0], tol=1e-10)
    rep = inpaint_eed(f[0, :1].expand(3, -1, -1), m[0], tol=1e-10)
    np.testing.assert_allclose(rep.numpy(), grey.expand(3, -1, -1).numpy(), atol=1e-9)
    # known pixels are kept exactly; the values at missing pixels are not read
    assert torch.equal(u[m.expand_as(u) > 0], f[m.expand_as(f) > 0])
    g = f[0].clone()
    g[m[0].expand_as(g) == 0] = float("nan")
    np.testing.assert_allclose(inpaint_eed(g, m[0], tol=1e-10).numpy(), u[0].numpy(), atol=1e-9)


def test_edges_are_continued_better_than_by_diffusion():
    # a disc known on sparse points: EED keeps its edge sharper than homogeneous diffusion
    from pdeflow.inpaint import inpaint_diffusion
    y, x = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    f = ((y - 24) ** 2 + (x - 24) ** 2 < 14 ** 2).double()
    m = _mask((48, 48), 0.06, seed=7)
    err_eed = float((inpaint_eed(f, m, tol=1e-6) - f).square().mean())
    err_hd = float((inpaint_diffusion(f, m, tol=1e-8) - f).square().mean())
    assert err_eed < 0.8 * err_hd


def test_full_output_and_solve_unchecked():
    f, m = _image((1, 1, 24, 24)), _mask((1, 1, 24, 24), 0.08)
    r = inpaint_eed(f, m, tol=1e-6, full_output=True)
    assert r.u.shape == f.shape and r.outer_iterations.shape == (1,) and float(r.residual) <= 1e-6
    assert int(r.inner_iterations) >= int(r.outer_iterations) >= 1 and r.energy is None
    u = solve_unchecked(f, m, tol=1e-6)
    np.testing.assert_allclose(u.numpy(), r.u.numpy(), atol=1e-5)
    # a warm start from the solution stops at once, in the public function too (its values on the mask not read)
    w = inpaint_eed(f, m, tol=1e-6, full_output=True)
    assert torch.allclose(solve_unchecked(f, m, u0=w.u, tol=1e-5), w.u, atol=1e-6)
    x0 = torch.where(m > 0, 7.0, w.u)
    again = inpaint_eed(f, m, tol=1e-6, x0=x0, full_output=True)
    assert int(again.outer_iterations) == 0 and torch.equal(again.u, w.u)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_overwrite_f_gives_the_same_inpainting_in_fs_memory(dtype):
    f, m = _image((1, 1, 24, 24)).to(dtype), _mask((1, 1, 24, 24), 0.08)
    g = torch.where(m > 0, f, 0.0)                  # zero off the mask, as a Dask block's data
    u = inpaint_eed(g, m, tol=1e-6)
    h = g.clone()
    v = inpaint_eed(h, m, tol=1e-6, overwrite_f=True)
    assert torch.equal(v, u) and v.data_ptr() == h.data_ptr()        # the start and the iteration in h
    # a warm start in the same array: the data on the mask, the start off it
    x0 = torch.where(m > 0, g, 0.5 * u)
    w = inpaint_eed(g, m, tol=1e-6, x0=x0)
    y = x0.clone()
    assert torch.equal(inpaint_eed(y, m, tol=1e-6, x0=y, overwrite_f=True), w)
    assert torch.equal(inpaint_eed(g, m, tol=1e-6, x0=x0.clone(), overwrite_f=False), w)


def test_max_iter_warns():
    f, m = _image((24, 24)), _mask((24, 24), 0.05)
    with pytest.warns(RuntimeWarning, match="inpaint_eed: max_iter=1 reached"):
        inpaint_eed(f, m, tol=1e-12, max_iter=1)


def test_bad_input_messages():
    f, m = _image((8, 8)), _mask((8, 8), 0.3)
    cases = [
        (dict(f=f, mask=torch.zeros(8, 8)), "no known pixel"),
        (dict(f=f, mask=torch.ones(7, 8)), "does not fit f"),
        (dict(f=f, mask=m * 0.5 + 0.25), "binary"),
        (dict(f=f, mask=m, contrast=0), "contrast must be a finite number > 0"),
        (dict(f=f, mask=m, sigma=-1), "sigma must be a finite number >= 0"),
        (dict(f=f, mask=m, tol=2), "tol must be a number in"),
        (dict(f=f, mask=m, max_iter=0), "max_iter must be a positive int"),
        (dict(f=f, mask=m, x0=torch.zeros(3)), "x0 must be a tensor of the shape of f"),
        (dict(f=f, mask=m, overwrite_f=1), "overwrite_f must be True or False"),
        (dict(f=f[None, None, None], mask=m), "must have shape"),
        (dict(f=torch.zeros(1, 8), mask=torch.ones(1, 8)), "at least 2x2"),
    ]
    for kwargs, match in cases:
        with pytest.raises(UserInputError, match=match):
            inpaint_eed(**kwargs)
    g = f.clone()
    g[m > 0] = float("nan")
    with pytest.raises(UserInputError, match="known pixels"):
        inpaint_eed(g, m)
    with pytest.raises(InputDtypeError, match="inpaint_eed: f must be a floating-point tensor"):
        inpaint_eed((f * 255).to(torch.uint8), m)
    with pytest.raises(UserInputError, match="not differentiable"):
        inpaint_eed(f.clone().requires_grad_(), m)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error")
        inpaint_eed(f.clone().requires_grad_(), m)       # no graph is built: accepted
