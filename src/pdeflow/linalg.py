"""Batched linear solvers shared by the PDE schemes (lagged diffusivity, inpainting).

Conjugate gradients on tensors (:func:`cg`) and on an explicit sparse matrix
(:func:`cg_matrix`), and the 5-point Neumann Laplacian as a SciPy CSR matrix
(:func:`laplacian_csr`, :func:`csr_matvec`). The multigrid preconditioner of
diffusion inpainting is :class:`pdeflow.multigrid.Multigrid`.
"""
from __future__ import annotations

import functools
import math
import sys
from typing import Callable

import numpy as np
import scipy.linalg.blas
import scipy.sparse
import torch

from .ops import batch_sum

__all__ = ["cg", "cg_matrix", "laplacian_csr", "csr_matvec", "eager"]

try:   # SciPy's CSR product kernel (private; ``@`` is the fallback)
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:   # pragma: no cover
    _csr_matvec = None


def eager(fn: Callable) -> Callable:
    """``fn``, run eagerly (uncompiled) when a function compiled by ``torch.compile`` calls it.

    The solvers write in place into views of preallocated buffers, which torch.compile's functionalisation
    cannot trace, so dynamo must break the graph around them. ``torch.compiler.disable`` would do that, but
    as a decorator it imports ``torch._dynamo`` (seconds) when the decorated module is imported; this
    applies it at the first call made once ``torch._dynamo`` is loaded (whoever compiles has loaded it),
    and until then calls ``fn`` directly.

    Parameters
    ----------
    fn : callable
        The function.

    Returns
    -------
    callable
        A wrapper with ``fn``'s name and docstring.

    Examples
    --------
    >>> double = eager(lambda x: 2 * x)
    >>> double(3)
    6
    """
    disabled: list[Callable] = []

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if "torch._dynamo" not in sys.modules:   # nothing has compiled in this process
            return fn(*args, **kwargs)
        if not disabled:
            disabled.append(torch.compiler.disable(fn))
        return disabled[0](*args, **kwargs)

    wrapper._torchdynamo_disable = True   # dynamo does not inline the wrapper into a compiled caller
    return wrapper


@functools.lru_cache(maxsize=16)
def laplacian_csr(H: int, W: int, dtype: str = "float64"):
    """:func:`pdeflow.ops.laplacian` on ``(H, W)`` images as a SciPy CSR matrix (row-major pixels).

    Cached per size and dtype (do not modify the returned matrix).

    Parameters
    ----------
    H, W : int
        Image size.
    dtype : str
        NumPy dtype name of the entries, ``'float64'`` (default) or ``'float32'``.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (H W, H W)

    Examples
    --------
    >>> from pdeflow.linalg import laplacian_csr
    >>> laplacian_csr(2, 3).toarray()
    array([[-2.,  1.,  0.,  1.,  0.,  0.],
           [ 1., -3.,  1.,  0.,  1.,  0.],
           [ 0.,  1., -2.,  0.,  0.,  1.],
           [ 1.,  0.,  0., -2.,  1.,  0.],
           [ 0.,  1.,  0.,  1., -3.,  1.],
           [ 0.,  0.,  1.,  0.,  1., -2.]])
    """
    def second_difference(n):
        main = np.full(n, -2.0)
        main[0] = main[-1] = -1.0 if n > 1 else 0.0
        return scipy.sparse.diags([np.ones(n - 1), main, np.ones(n - 1)], [-1, 0, 1])
    lap = (scipy.sparse.kron(scipy.sparse.eye(H), second_difference(W))
           + scipy.sparse.kron(second_difference(H), scipy.sparse.eye(W))).tocsr().astype(dtype)
    lap.sort_indices()
    return lap


def csr_matvec(a, v: np.ndarray) -> np.ndarray:
    """``a @ v`` for a square CSR matrix and a vector, without the checks of ``@``.

    SciPy's product kernel is called directly where the dtypes match and ``v``
    is contiguous (the checks are a third of a 64 x 64 product's time);
    otherwise this is ``a @ v``.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.linalg import csr_matvec, laplacian_csr
    >>> csr_matvec(laplacian_csr(2, 2), np.array([1.0, 2.0, 3.0, 4.0]))
    array([ 3.,  1., -1., -3.])
    """
    if _csr_matvec is None or v.dtype != a.dtype or not v.flags.c_contiguous:
        return a @ v
    n = a.shape[0]
    y = np.zeros(n, dtype=v.dtype)
    _csr_matvec(n, n, a.indptr, a.indices, a.data, v, y)
    return y


def cg(
    apply_a: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 10000,
    precond: Callable[[torch.Tensor], torch.Tensor] | None = None,
    overwrite_b: bool = False,
    add_to: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Preconditioned conjugate gradients, one independent system per batch item.

    Solves ``A x = b`` for a symmetric positive (semi-)definite ``A`` that acts on
    each item of the batch separately.  Each item stops when its relative
    residual ``||b - A x|| / ||b||`` is at most ``tol``; items that stopped are
    frozen while the others go on.

    Parameters
    ----------
    apply_a : callable
        ``x -> A x`` on tensors shaped like ``b``.
    b : Tensor, shape (B, ...)
    x0 : Tensor, optional
        Initial guess (default zeros).
    tol : float
        Relative residual per item.
    max_iter : int
    precond : callable, optional
        ``r -> M^{-1} r`` for a symmetric positive definite ``M``.
    overwrite_b : bool
        Whether ``b`` may be overwritten (by the residual): one vector less for a caller that does not read it
        again.
    add_to : Tensor, optional
        Shaped like ``b``, without ``x0``: the solution is added to it in place as it is formed and ``add_to +
        x`` is returned, one vector less for a caller that corrects an iterate by the solution.

    Returns
    -------
    x : Tensor, shape of ``b``
    iterations : Tensor of int64, shape (B,)

    Notes
    -----
    A single system (``B = 1``) runs a scalar loop: the step lengths and
    residual norms are Python floats, so an iteration is ``A d``, two dot
    products and three vector updates (at 64 x 64 its cost is about that of
    ``A d``), where the batched loop needs about twenty more small tensor
    operations to keep per-item step lengths and freeze converged items. Both
    loops compute the same iterates (up to the summation order of the dot
    products) and stop at the same rule.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.linalg import cg
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> b = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)    # two systems
    >>> x, iterations = cg(lambda v: v @ A, b, tol=1e-12)
    >>> torch.allclose(x @ A, b), iterations.tolist()
    (True, [2, 2])
    """
    if add_to is not None and x0 is not None:
        raise ValueError("cg: add_to is for a solve from zero; got x0 too")
    if b.shape[0] == 1:
        return _cg_single(apply_a, b, x0, tol, max_iter, precond, overwrite_b, add_to)
    # In-place updates and one reduction per product: at 64 x 64 an iteration is a few dozen
    # small tensor operations, and their count, not arithmetic, sets the speed.
    x = add_to if add_to is not None else torch.zeros_like(b) if x0 is None else x0.clone()
    view = (-1,) + (1,) * (b.dim() - 1)
    r = b - apply_a(x) if add_to is None else b.clone()
    z = precond(r) if precond is not None else r
    d = z.clone()
    rr = batch_sum(r * r)
    rz = batch_sum(r * z) if precond is not None else rr
    b_norm = batch_sum(b * b).sqrt().clamp_min(torch.finfo(b.dtype).tiny)
    threshold = (tol * b_norm) ** 2           # ||r|| > tol ||b||, compared squared
    iterations = torch.zeros(b.shape[0], dtype=torch.long, device=b.device)
    active = rr > threshold
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        ad = apply_a(d)
        dad = batch_sum(d * ad)
        step = active & (dad > 0)
        alpha = torch.where(step, rz / torch.where(step, dad, 1.0), 0.0).view(view)
        x.addcmul_(alpha, d)
        r = r - alpha * ad                        # a new tensor: z may alias the old r
        iterations += active.long()
        rr = batch_sum(r * r)
        active = active & (rr > threshold)
        if precond is not None:
            z = precond(r)
            rz_new = batch_sum(r * z)
        else:
            z, rz_new = r, rr
        beta = torch.where(active, rz_new / torch.where(rz != 0, rz, 1.0), 0.0).view(view)
        d = torch.addcmul(z, beta, d)
        rz = rz_new
    return x, iterations


def _cg_single(apply_a, b, x0, tol, max_iter, precond, overwrite_b=False, add_to=None):
    """:func:`cg` for one system (``b.shape[0] == 1``), with Python-float scalars."""
    def dot(u, v):
        return float(torch.dot(u.reshape(-1), v.reshape(-1)))

    threshold = (tol * max(math.sqrt(dot(b, b)), torch.finfo(b.dtype).tiny)) ** 2
    x = add_to if add_to is not None else torch.zeros_like(b) if x0 is None else x0.clone()
    if x0 is not None:
        r = b - apply_a(x)
    else:
        r = b if overwrite_b else b.clone()
    z = precond(r) if precond is not None else r
    d = z.clone()
    rr = dot(r, r)
    rz = dot(r, z) if precond is not None else rr
    z = None
    it = 0
    while it < max_iter and rr > threshold:
        ad = apply_a(d)
        dad = dot(d, ad)
        if not dad > 0:   # d = 0 (r = 0) or a semi-definite direction: no progress possible
            break
        alpha = rz / dad
        x.add_(d, alpha=alpha)
        r.add_(ad, alpha=-alpha)          # z may alias r, but is not read again before it is reassigned
        ad = None                         # freed before the next product (a large solve's peak memory)
        it += 1
        rr = dot(r, r)
        if rr <= threshold:
            break
        if precond is not None:
            z = precond(r)
            rz_new = dot(r, z)
        else:
            z, rz_new = r, rr
        torch.add(z, d, alpha=rz_new / rz, out=d)
        z = None                          # as ad: not held through the next product
        rz = rz_new
    return x, torch.full((1,), it, dtype=torch.long, device=b.device)


def cg_matrix(a, b: np.ndarray, x0: np.ndarray | None = None, *, tol: float = 1e-6,
              max_iter: int = 10000, return_residual: bool = False):
    """Conjugate gradients for one system ``A x = b`` with an explicit (sparse) matrix, in NumPy.

    The loop of :func:`cg` for a single system without preconditioner, with the
    same iterates (up to the summation order of the dot products) and stopping
    rule. For small images an iteration of :func:`cg` is about ten tensor
    operations of a few microseconds of dispatch each; here it is one SciPy
    sparse product and four BLAS level-1 calls, which pays on small images where
    dispatch dominates.

    Parameters
    ----------
    a : scipy.sparse matrix (N, N) or anything with ``a @ v``
        Symmetric positive (semi-)definite, of the dtype of ``b``.
    b : ndarray (N,), float32 or float64
    x0 : ndarray (N,), optional
        Initial guess (default zeros); not modified.
    tol : float
        Relative residual ``||b - A x|| / ||b||`` to stop at.
    max_iter : int
    return_residual : bool
        Also return the relative residual ``||r|| / ||b||`` of the last iterate
        as CG's recurrence updated it (equal to ``b - A x`` up to rounding,
        without the extra product).

    Returns
    -------
    x : ndarray (N,)
    iterations : int
    residual : float
        Only with ``return_residual``.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse
    >>> from pdeflow.linalg import cg_matrix
    >>> A = scipy.sparse.csr_matrix(np.array([[4.0, 1.0], [1.0, 3.0]]))
    >>> x, iterations = cg_matrix(A, np.array([1.0, 2.0]), tol=1e-12)
    >>> np.allclose(A @ x, [1.0, 2.0]), iterations
    (True, 2)
    """
    axpy, dot, scal = scipy.linalg.blas.get_blas_funcs(("axpy", "dot", "scal"), (b,))
    x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=b.dtype)
    r = b - a @ x if x0 is not None else b.copy()
    d = r.copy()
    rr = float(dot(r, r))
    b_norm = math.sqrt(float(dot(b, b)))
    threshold = (tol * max(b_norm, np.finfo(b.dtype).tiny)) ** 2
    it = 0
    while it < max_iter and rr > threshold:
        ad = a @ d
        dad = float(dot(d, ad))
        if not dad > 0:   # d = 0 (r = 0) or a semi-definite direction: no progress possible
            break
        alpha = rr / dad
        x = axpy(d, x, a=alpha)        # x += alpha d (in place)
        r = axpy(ad, r, a=-alpha)      # r -= alpha A d
        it += 1
        rr_new = float(dot(r, r))
        if rr_new <= threshold:
            rr = rr_new
            break
        d = axpy(r, scal(rr_new / rr, d))   # d = r + beta d, in place
        rr = rr_new
    if not return_residual:
        return x, it
    return x, it, (math.sqrt(rr) / b_norm if b_norm > 0 else 0.0)
