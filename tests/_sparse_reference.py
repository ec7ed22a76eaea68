"""Independent SciPy references for diffusion inpainting tests: the 5-point Neumann Laplacian as a
sparse matrix (built without pdeflow) and a sparse direct solve of the inpainting system."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl


def neumann_laplacian(H, W):
    """The 5-point Neumann Laplacian of an H x W grid as a SciPy CSR matrix: -(Dy^T Dy + Dx^T Dx)."""
    def d1(n):
        e = np.ones(n - 1)
        return sp.diags([-e, e], [0, 1], shape=(n - 1, n))
    Dy = sp.kron(d1(H), sp.eye(W))
    Dx = sp.kron(sp.eye(H), d1(W))
    return -(Dy.T @ Dy + Dx.T @ Dx).tocsr()


def spsolve_inpaint(f, m):
    """u = f on the mask, L u = 0 elsewhere, by SciPy's sparse direct solver on the unknowns (float64)."""
    H, W = f.shape
    L = neumann_laplacian(H, W)
    k = m.ravel() > 0
    unk = ~k
    out = f.ravel().astype(np.float64).copy()
    if unk.any():
        out[unk] = spl.spsolve(L[unk][:, unk].tocsc(), -L[unk][:, k] @ f.ravel()[k])
    return out.reshape(H, W)
