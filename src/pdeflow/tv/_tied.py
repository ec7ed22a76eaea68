"""A sharper duality-gap certificate for the ROF solvers: the primal candidate tied on the dual's flat regions.

The gap ``P(v) - D(p)`` certifies ``||v - u*||^2 <= 2 (P(v) - D(p))`` for *any* image ``v`` and feasible
dual field ``p``.  The solvers' own candidate, ``u = f + lam div p``, carries the dual field's error
differentiated once: on the solution's flat regions it is small noise, and the total variation of that
noise makes ``P(u) - P*`` first order in it, while ``D* - D(p)`` (what bounds the error) is second order.
Near the end of a solve most of the gap is that excess total variation.

A pixel where ``|p| < 1`` is flat in the solution (``grad u* = 0`` there: the subgradient of ``|.|`` at a
non-zero gradient has norm one), so :func:`tied_primal` ties every pixel whose dual is inside the ball,
by a margin, to its forward neighbour on every axis and replaces ``u`` on each connected component of
tied pixels by its mean (the L2-nearest image constant there).  Where the dual has found the flat
regions this removes the noise's total variation; where it has not, the candidate's gap is larger and
the solver keeps its own.  Both are certificates, so the smaller one is taken.

The candidate's gap certifies the solver's own image too, so the solvers keep returning ``u``: the dual
objective ``D(p) = 1/2 ||f||^2 - 1/2 ||f + lam div p||^2`` is strongly concave in ``u = f + lam div p``,
so ``1/2 ||u - u*||^2 <= D* - D(p) <= P(v) - D(p)`` for every ``v`` (``P(v) >= P* = D*``). ``u = f + lam
div p`` then holds exactly (the TV flow's flux, the derivative) and the bound is on ``u`` itself.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ._fused_rows import FUSED, kernel
from ._grid import PLAIN, Grid
from ._rof_methods import gap_and_primal, project

#: A pixel is tied where its dual field's norm is below ``1 - MARGIN`` (at the solution it is one on every
#: pixel of non-zero gradient; a dual iterate approaches that from inside).
MARGIN = 1e-3


def tied_primal(u: torch.Tensor, p: torch.Tensor, channelwise: bool, grid: Grid = PLAIN) -> torch.Tensor:
    """``u`` ``(B, C, *spatial)`` made constant (its mean) on every connected component of the pixels
    where the dual field ``p`` ``(B, C, K, *spatial)`` has norm below ``1 - MARGIN``, each such pixel
    tied to its forward neighbour along every spatial axis (the pixels a zero forward gradient makes
    equal).  Coupled channels (``channelwise=False``) share the ties; each keeps its own mean.

    Examples
    --------
    >>> import torch
    >>> u = torch.tensor([[[[0.0, 0.2, 1.0]]]])
    >>> p = torch.zeros(1, 1, 2, 1, 3)
    >>> p[0, 0, 1] = torch.tensor([0.5, 1.0, 0.0])   # the first pixel is flat, the second on an edge
    >>> tied_primal(u, p, channelwise=False)
    tensor([[[[0.1000, 0.1000, 1.0000]]]])
    """
    return tied_means(u, p, channelwise, grid).to(u.dtype)


def tied_means(u: torch.Tensor, p: torch.Tensor, channelwise: bool, grid: Grid = PLAIN) -> torch.Tensor:
    """:func:`tied_primal` in float64 (the means unrounded): in the compiled union-find (``_tied.c``) where it
    runs, else by image labelling.

    Examples
    --------
    >>> import torch
    >>> tied_means(torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]]), torch.zeros(1, 1, 2, 2, 2), False)   # all flat
    tensor([[[[3., 3.],
              [3., 3.]]]], dtype=torch.float64)
    """
    u, p = u.detach(), p.detach()
    if FUSED and u.device.type == "cpu" and p.dtype in (torch.float32, torch.float64):
        v = u.to(torch.float64, memory_format=torch.contiguous_format, copy=True)
        _tie_compiled(v, p, [(0, n) for n in u.shape[2:]], None, None, not channelwise)
        return v
    C = u.shape[1]
    sq = p.double().pow(2).sum(2)                        # (B, C, *spatial)
    if not channelwise:
        sq = sq.sum(1, keepdim=True)
    flat = (sq < (1.0 - MARGIN) ** 2).cpu().numpy()      # (B, Cg, *spatial)
    # Components by image labelling on the grid refined twice: a pixel at the even positions, the tie to its
    # neighbour along axis k between them (set where the pixel is flat); axes B and C stay unconnected.
    K, spatial = grid.ndim, flat.shape[2:]
    refined = np.zeros(flat.shape[:2] + tuple(2 * n - 1 for n in spatial), dtype=bool)
    pixels = (slice(None),) * 2 + (slice(None, None, 2),) * K
    refined[pixels] = True
    for k in range(K):
        ties = list(pixels)
        ties[2 + k] = slice(1, None, 2)
        refined[tuple(ties)] = np.take(flat, range(spatial[k] - 1), axis=2 + k)
    structure = np.zeros((3, 3) + (3,) * K, dtype=bool)
    structure[1, 1] = ndimage.generate_binary_structure(K, 1)
    labels, count = ndimage.label(refined, structure)
    labels = labels[pixels] - 1
    labels = torch.from_numpy(labels.astype(np.int64)).to(u.device)
    if flat.shape[1] != C:                               # coupled channels: one label per pixel and channel
        labels = labels * C + torch.arange(C, device=u.device).reshape((1, C) + (1,) * grid.ndim)
        count *= C
    labels = labels.expand(u.shape).reshape(-1)
    values = u.double().reshape(-1)
    sums = torch.zeros(count, dtype=torch.float64, device=u.device).index_add_(0, labels, values)
    sizes = torch.zeros(count, dtype=torch.float64, device=u.device).index_add_(0, labels, torch.ones_like(values))
    return (sums / sizes)[labels].reshape(u.shape)


def tie_box(u: torch.Tensor, p: torch.Tensor, region: tuple, untied: torch.Tensor | None = None,
            scratch: torch.Tensor | None = None) -> torch.Tensor:
    """``u`` (float64, contiguous) made, in place on ``region`` (a tuple of slices of the spatial axes), its means
    on the components there (:func:`tied_means`, the channels coupled), each tie inside ``region``; the ``untied``
    pixels (bool, the spatial shape) start none. Returns ``sum((u - v)^2)`` over ``region``, per image (float64).
    Compiled: no copy of ``u`` or ``p``, its arrays in ``scratch`` (a contiguous tensor of free memory) where they
    fit; else on copies of the region.

    Examples
    --------
    >>> import torch
    >>> u = torch.tensor([[[[1.0, 2.0, 9.0]]]], dtype=torch.float64)
    >>> tie_box(u, torch.zeros(1, 1, 2, 1, 3), (slice(None), slice(0, 2))).tolist(), u.tolist()
    ([0.5], [[[[1.5, 1.5, 9.0]]]])
    """
    box = [r.indices(n)[:2] for r, n in zip(region, u.shape[2:])]
    if FUSED and u.dtype == torch.float64 and u.is_contiguous() and p.dtype in (torch.float32, torch.float64):
        return _tie_compiled(u, p, box, untied, scratch, True)
    inside = (slice(None), slice(None)) + tuple(slice(*b) for b in box)
    q = p[inside[:2] + (slice(None),) + inside[2:]].to(torch.float64, copy=True)
    if untied is not None:
        q.masked_fill_(untied[inside[2:]], 1.0)           # norm at least one: not flat
    K = u.dim() - 2
    v = tied_means(u[inside], q, False, PLAIN if K == 2 else Grid(K, (1.0,) * K))
    move = (u[inside] - v).pow(2).flatten(1).sum(1)
    u[inside] = v
    return move


def _tie_compiled(u, p, box, untied, scratch, joint) -> torch.Tensor:
    """:func:`tie_box` in ``_tied.c`` on ``box`` (``(lo, hi)`` per spatial axis); ``joint``: the channels coupled."""
    B, C, *spatial = u.shape
    p = p.contiguous()
    mask = untied.contiguous() if untied is not None else None      # bool: one byte, 0 or 1, as uint8
    pad = 3 - len(spatial)
    n = (1,) * pad + tuple(spatial)
    lo, hi = (0,) * pad + tuple(b[0] for b in box), (1,) * pad + tuple(b[1] for b in box)
    move = torch.zeros(B, dtype=torch.float64)
    kernel.tie_box(p.dtype == torch.float64, p.data_ptr(), u.data_ptr(), 0 if mask is None else mask.data_ptr(),
                   move.data_ptr(), B, C, n, lo, hi, len(spatial), joint, (1.0 - MARGIN) ** 2,
                   0 if scratch is None else scratch.data_ptr(),
                   0 if scratch is None else scratch.numel() * scratch.element_size())
    return move


def tied_certificate(f: torch.Tensor, u: torch.Tensor, p: torch.Tensor, lam: torch.Tensor, channelwise: bool,
                     grid: Grid):
    """The gap of the candidate ``v = tied_primal(u, p)`` on a batch ``(B, C, *spatial)`` (``lam`` of ``f``'s
    batch shape for broadcasting): ``(gap, primal)``, ``gap = P(v) - D(p)`` and ``P(v)`` per image (float64,
    ``p`` made feasible there). ``2 gap`` bounds ``||u - u*||^2`` as well as ``||v - u*||^2`` (the module's
    docstring says why)."""
    v = tied_means(u, p, channelwise, grid)
    p64 = p.double()
    p64 = project(p64, channelwise) if grid.plain else grid.project(p64, channelwise)
    return gap_and_primal(f.double(), v, p64, lam.double(), channelwise, grid)
