"""Pieces shared by :class:`~pdeflow.multigrid.Multigrid` and :class:`~pdeflow.multigrid.Multigrid3d`: the
Galerkin coarsening of a stencil one axis at a time, the dense pseudo-inverse of the coarsest grid and the
strip size of the float64 residual check."""
from __future__ import annotations

import torch

STRIP_ELEMENTS = 1 << 16   # float64 residual check: elements per strip of rows at most (512 KiB)


def strip_elements(elements: int, most: int = STRIP_ELEMENTS, share: int = 16) -> int:
    """Elements of a strip of an array of ``elements``: ``most`` at most, a ``share``-th of it (8192 at least).

    Examples
    --------
    >>> from pdeflow.multigrid._galerkin import strip_elements
    >>> strip_elements(4096 * 4096), strip_elements(544 * 544)
    (65536, 18496)
    """
    return min(most, max(1 << 13, elements // share))


def sl(t: torch.Tensor, dim: int, s: slice) -> torch.Tensor:
    idx = [slice(None)] * t.dim()
    idx[dim] = s
    return t[tuple(idx)]


def coarsen(S: dict, n: int, axis: int, ndim: int = 3) -> dict:
    """``P^T A P`` for the 1-D linear ``P`` along spatial ``axis`` of an ``ndim``-D stencil ``S``.

    ``S`` maps offsets (``(dz, dy, dx)`` in 3-D, ``(dy, dx)`` in 2-D) to tensors ``(..., *spatial)``: the
    entry of ``A`` coupling point ``p`` to ``p + offset`` (zero where that is outside the grid); ``n`` is
    the size along ``axis`` and the result has ``ceil(n / 2)`` there.
    """
    dim = axis - ndim
    nc = (n + 1) // 2
    like = next(iter(S.values()))
    wlo = like.new_ones(n)
    whi = like.new_zeros(n)
    wlo[1::2] = 0.5
    whi[1::2] = 0.5
    if n % 2 == 0:
        wlo[-1], whi[-1] = 1.0, 0.0
    shape = list(like.shape)
    shape[dim] = nc
    out: dict = {}
    bview = (-1,) + (1,) * (-dim - 1)
    for off, T in S.items():
        dy = off[axis]
        for par in (0, 1):
            start = par if par + dy >= 0 else par + 2
            stop = min(n, n - dy)
            if start >= stop:
                continue
            cnt = len(range(start, stop, 2))
            i0 = start // 2
            qpar = (par + dy) % 2
            for k, wk in ((0, wlo), (1, whi))[:1 + par]:
                for l_, wl in ((0, wlo), (1, whi))[:1 + qpar]:
                    key = off[:axis] + ((par + dy) // 2 + l_ - k,) + off[axis + 1:]
                    if key not in out:
                        out[key] = like.new_zeros(shape)
                    m = min(cnt, nc - i0 - k)   # a parent past the grid has weight zero
                    if m <= 0:
                        continue
                    ps = slice(start, start + 2 * m, 2)
                    qs = slice(start + dy, start + dy + 2 * m, 2)
                    coef = (wk[ps] * wl[qs]).view(bview)
                    sl(out[key], dim, slice(i0 + k, i0 + k + m)).addcmul_(sl(T, dim, ps), coef)
    return out


def pinv_spd(A: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of a batch of symmetric positive semi-definite matrices (computed in float64)."""
    A64 = A.double()
    A64 = 0.5 * (A64 + A64.transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(A64)
    cut = evals.amax(-1, keepdim=True) * (A.shape[-1] * torch.finfo(A.dtype).eps * 10)
    inv = torch.where(evals > cut, 1.0 / torch.where(evals > cut, evals, torch.ones_like(evals)),
                      torch.zeros_like(evals))
    return ((evecs * inv[..., None, :]) @ evecs.transpose(-1, -2)).to(A.dtype)
