"""pdeflow.linalg: cg's scalar loop for one system, its batched loop and cg_matrix (NumPy, explicit
matrix) solve the same systems alike."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pdeflow.linalg import cg, cg_matrix


def _spd(n, seed, cond=1e3):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    ev = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), n, dtype=torch.float64)
    return (q * ev) @ q.T


@pytest.mark.parametrize("precond", [False, True])
@pytest.mark.parametrize("warm", [False, True])
def test_single_system_matches_the_batched_loop_and_a_dense_solve(precond, warm):
    n = 60
    A = _spd(n, 0)
    b = torch.randn(2, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_true = torch.linalg.solve(A, b.T).T
    apply = lambda x: x @ A.T  # noqa: E731  (A acts on each row)
    pre = (lambda r: r / torch.diagonal(A)) if precond else None
    x0 = x_true + 0.1 * torch.randn_like(x_true) if warm else None
    xb, itb = cg(apply, b, x0, tol=1e-10, max_iter=500, precond=pre)       # batched loop (B = 2)
    for i in range(2):
        xs, its = cg(apply, b[i:i + 1], None if x0 is None else x0[i:i + 1], tol=1e-10, max_iter=500, precond=pre)
        assert its.shape == (1,) and its.dtype == torch.long
        # the same iterates up to the summation order of the dot products (CG past n steps amplifies
        # rounding, here ~130 steps for n = 60): about the same stopping step
        assert abs(int(its) - int(itb[i])) <= max(1, 0.05 * int(itb[i]))
        assert torch.allclose(xs[0], xb[i], rtol=0, atol=1e-8)
        assert torch.linalg.norm(b[i] - xs[0] @ A.T) <= 1e-10 * torch.linalg.norm(b[i]) * 1.0001
        assert torch.allclose(xs[0], x_true[i], rtol=0, atol=1e-6)


def test_single_system_stops_at_once_when_converged_and_respects_max_iter():
    A = _spd(30, 2)
    b = torch.randn(1, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.linalg.solve(A, b.T).T
    _, it = cg(lambda v: v @ A.T, b, x, tol=1e-8)
    assert int(it) == 0                                   # a converged start: no iteration
    _, it = cg(lambda v: v @ A.T, torch.zeros_like(b))
    assert int(it) == 0                                   # b = 0: x = 0
    _, it = cg(lambda v: v @ A.T, b, tol=1e-14, max_iter=3)
    assert int(it) == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("warm", [False, True])
def test_matrix_loop_matches_the_tensor_loop(dtype, warm):
    """cg_matrix (NumPy/BLAS, explicit sparse matrix) runs cg's iterates: same steps, same solution."""
    n = 60
    A = _spd(n, 4, cond=1e2)
    b = torch.randn(1, n, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x0 = 0.3 * torch.randn(1, n, generator=torch.Generator().manual_seed(6), dtype=torch.float64) if warm else None
    tol = 1e-10 if dtype == np.float64 else 1e-4
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    At = A.to(tdt)
    xt, itt = cg(lambda x: x @ At.T, b.to(tdt), None if x0 is None else x0.to(tdt), tol=tol, max_iter=500)
    a = sp.csr_matrix(A.numpy().astype(dtype))
    x0n = None if x0 is None else x0[0].numpy().astype(dtype)
    x0_copy = None if x0n is None else x0n.copy()
    xm, itm = cg_matrix(a, b[0].numpy().astype(dtype), x0n, tol=tol, max_iter=500)
    assert xm.dtype == dtype and isinstance(itm, int)
    assert x0n is None or np.array_equal(x0n, x0_copy)        # the initial guess is not modified
    assert abs(itm - int(itt)) <= max(1, 0.05 * int(itt))
    atol = 1e-8 if dtype == np.float64 else 1e-3
    assert np.allclose(xm, xt[0].numpy(), rtol=0, atol=atol * float(xt.abs().max()))
    res = np.linalg.norm(b[0].numpy() - A.numpy() @ xm.astype(np.float64)) / float(torch.linalg.norm(b))
    assert res <= tol * (1.001 if dtype == np.float64 else 10)
    # the recurrence residual it can return is the true one up to rounding
    _, _, rec = cg_matrix(a, b[0].numpy().astype(dtype), x0n, tol=tol, max_iter=500, return_residual=True)
    assert rec <= tol and abs(rec - res) <= (1e-3 if dtype == np.float64 else 0.5) * tol


def test_matrix_loop_stops_at_once_when_converged_and_respects_max_iter():
    A = _spd(30, 7)
    b = torch.randn(30, generator=torch.Generator().manual_seed(8), dtype=torch.float64).numpy()
    x = np.linalg.solve(A.numpy(), b)
    a = sp.csr_matrix(A.numpy())
    _, it = cg_matrix(a, b, x, tol=1e-8)
    assert it == 0
    _, it = cg_matrix(a, b, None, tol=1e-14, max_iter=3)
    assert it == 3
    xz, it = cg_matrix(a, np.zeros(30), None, tol=1e-8)       # b = 0: x = 0 at once
    assert it == 0 and not xz.any()


@pytest.mark.parametrize("batch", [1, 2])
def test_overwrite_b_and_add_to_give_the_same_solve_and_b_is_kept_without_it(batch):
    A = _spd(40, 4)
    b = torch.randn(batch, 40, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    kept = b.clone()
    x, it = cg(lambda v: v @ A.T, b, tol=1e-10)
    assert torch.equal(b, kept)                           # not overwritten by default
    x2, it2 = cg(lambda v: v @ A.T, b, tol=1e-10, overwrite_b=True)
    assert torch.equal(x, x2) and torch.equal(it, it2)
    assert torch.linalg.norm(kept - x2 @ A.T) <= 1e-10 * torch.linalg.norm(kept) * 1.0001
    start = torch.randn(batch, 40, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    y = start.clone()
    x3, it3 = cg(lambda v: v @ A.T, kept.clone(), tol=1e-10, add_to=y)      # the solution added to y in place
    assert x3 is y and torch.equal(it3, it) and torch.allclose(y - start, x, rtol=0, atol=1e-12)
