"""Extinction: where the ROF solution is the constant mean, proved by an explicit dual field.

``rof(f, lam)`` is the mean of ``f`` (per channel) exactly when ``lam`` is at least the dual norm of
``f - mean``: when some field ``q`` with ``div q = (mean - f) / lam`` has ``|q| <= 1`` everywhere.
:func:`extinction_flux` builds one such field from cumulative sums (axis by axis: the residual's means
over the later axes, summed along the axis), and :func:`extinct` tests it.  Where the test passes,
``(mean, q)`` is an exact primal-dual solution (zero duality gap up to round-off), returned without
iterating: the iterative solvers converge slowly there (the dual problem is a Poisson problem once the
constraint is inactive), and their stopping rule, a relative duality gap, cannot be met once the image
is flat to round-off (gap and objective are both round-off).

The test is sufficient, not necessary: between the exact extinction ``lam`` and the one this field
proves, the solvers iterate as usual.
"""
from __future__ import annotations

import torch

from ._grid import PLAIN, Grid


def extinction_flux(f: torch.Tensor, lam: torch.Tensor, grid: Grid = PLAIN) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean of f, q)`` with ``div(q) = (mean - f) / lam`` exactly up to round-off.

    ``f`` is ``(B, C, *spatial)``, ``lam`` positive, ``(B, 1, ..., 1)`` shaped like ``f`` (or a float);
    ``q`` is ``(B, C, K, *spatial)`` on ``grid``.
    """
    K = grid.ndim
    axes = tuple(range(f.dim() - K, f.dim()))
    mean = f.mean(dim=axes, keepdim=True)
    res = (mean - f) / lam
    q = f.new_zeros(*f.shape[:2], K, *f.shape[2:])
    for k, h in enumerate(grid.spacing):
        later = axes[k + 1:]
        m = res.mean(dim=later, keepdim=True) if later else res
        n = f.shape[axes[k]]
        # the backward difference of the partial sums (times h_k) along axis k is m; m sums to zero there
        c = torch.cumsum(m, axes[k]).narrow(axes[k], 0, n - 1) * h
        q.select(2, k).narrow(axes[k], 0, n - 1).copy_(c.expand(*c.shape[:axes[k] + 1], *f.shape[axes[k] + 1:]))
        res = res - m
    return mean.expand_as(f).clone(), q


def may_be_extinct(f: torch.Tensor, lam: torch.Tensor, channelwise: bool, grid: Grid = PLAIN) -> torch.Tensor:
    """(B,) bool: False where the field of :func:`extinction_flux` is infeasible on its first axis already.

    That component (the residual's means over the later axes, summed along the first axis) is one pass over
    ``f`` (the residual's means are those of ``f``'s, moved); the whole field, built only where this passes, is
    the axes' cumulative sums and a norm.  Where it is False, :func:`extinct` of the whole field is False too
    (``|q| >= |q_0|``).
    """
    K = grid.ndim
    axes = tuple(range(f.dim() - K, f.dim()))
    m = f.mean(dim=axes[1:], keepdim=True) if K > 1 else f
    res = (m.mean(dim=axes[0], keepdim=True) - m) / lam
    c = torch.cumsum(res, axes[0])
    if grid.spacing[0] != 1.0:      # (x 1 is the identity)
        c = c * grid.spacing[0]
    sq = c * c
    if not channelwise and f.shape[1] > 1:      # (a sum of one term is that term)
        sq = sq.sum(1, keepdim=True)
    return sq.flatten(1).amax(1) <= 1.0 + 16 * torch.finfo(f.dtype).eps


def extinct(q: torch.Tensor, channelwise: bool) -> torch.Tensor:
    """(B,) bool: the images whose field ``q`` (from :func:`extinction_flux`) is feasible, ``|q| <= 1``.

    A margin of a few units of round-off: ``q`` is then projected onto the ball (a change of that size).
    """
    sq = (q * q).sum(2)
    if not channelwise:
        sq = sq.sum(1, keepdim=True)
    return sq.flatten(1).amax(1) <= 1.0 + 16 * torch.finfo(q.dtype).eps
