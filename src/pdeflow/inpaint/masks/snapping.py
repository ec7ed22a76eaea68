"""Snapping mask points to local extrema: :func:`snap_to_extrema` moves each point to the pixel of its 3 x 3
neighbourhood with the largest score (default :func:`extremality`, ``|f - G_1 * f|``), never onto another
point; :func:`neighbour_mass` is its differentiable expectation (what the mask network trains through).

Homogeneous diffusion satisfies a maximum principle and cannot recreate extrema that are not in the mask,
so the analytic masks (:mod:`~pdeflow.inpaint.masks.analytic`), the mask network and the test-time
refinement (:mod:`~pdeflow.inpaint.masks.refine`) all snap with these.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ...filters import gaussian_blur

__all__ = ["extremality", "snap_to_extrema", "neighbour_mass"]


def extremality(f: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """``|f - G_sigma * f|`` summed over channels ``(B, 1, H, W)``: how extreme a pixel is against its local mean.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.snapping import extremality
    >>> f = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    >>> f[0, 0, 3, 3] = 1.0                              # a single bright pixel
    >>> s = extremality(f)
    >>> s.shape, divmod(int(s.argmax()), 7)
    (torch.Size([1, 1, 7, 7]), (3, 3))
    """
    return (f - gaussian_blur(f, sigma)).abs().sum(1, keepdim=True)


# 3x3 neighbourhood offsets (dy, dx), row-major (index 4 is the centre)
_DY = (-1, -1, -1, 0, 0, 0, 1, 1, 1)
_DX = (-1, 0, 1, -1, 0, 1, -1, 0, 1)


def _point_neighbours(idx: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(..., 9)`` of the 3x3 neighbourhoods of the flat pixel indices ``idx`` and their validity
    (inside the image; outside ones are clamped to the edge). Only the points' neighbourhoods: a table for
    every pixel would grow with the image rather than the mask (the results page "Sparse inpainting")."""
    dy = torch.tensor(_DY, device=idx.device)
    dx = torch.tensor(_DX, device=idx.device)
    ii = (idx // W)[..., None] + dy
    jj = (idx % W)[..., None] + dx
    valid = (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
    return ii.clamp(0, H - 1) * W + jj.clamp(0, W - 1), valid


def snap_to_extrema(mask: torch.Tensor, score: torch.Tensor, priority: torch.Tensor | None = None,
                    max_rounds: int = 12) -> torch.Tensor:
    """Move each known pixel of ``mask`` to the best free pixel of its 3x3 neighbourhood.

    Parameters
    ----------
    mask : Tensor (B, 1, H, W)
        Binary mask.
    score : Tensor (B, 1, H, W)
        Where to move: each point takes the pixel of largest score in its
        3x3 neighbourhood (itself included) that no other point holds.
    priority : Tensor (B, 1, H, W), optional
        Order of the points when two want the same pixel (larger first;
        default: the score at the point's own position).
    max_rounds : int
        Rounds of claims; points still without a pixel after them (all nine
        neighbours taken) go to the free pixels of largest score.

    Returns
    -------
    Tensor, shape and dtype of ``mask``
        A binary mask with exactly as many known pixels per image as ``mask``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.snapping import snap_to_extrema
    >>> mask, score = torch.zeros(1, 1, 5, 5), torch.zeros(1, 1, 5, 5)
    >>> mask[0, 0, 1, 1] = 1.0
    >>> score[0, 0, 2, 2] = 1.0                          # the best pixel next to the point
    >>> m = snap_to_extrema(mask, score)
    >>> m.nonzero().tolist(), int(m.sum())
    ([[0, 0, 2, 2]], 1)
    """
    B, _, H, W = mask.shape
    if B == 1 and mask.device.type == "cpu" and score.device.type == "cpu" \
            and (priority is None or priority.device.type == "cpu"):
        return _snap_one(mask, score, priority, max_rounds)
    n = H * W
    dev = mask.device
    m = mask.detach().flatten(1) > 0.5
    counts = m.sum(1)
    k = int(counts.max()) if B else 0
    s = score.detach().flatten(1).to(torch.float64)
    pr = s if priority is None else priority.detach().flatten(1).to(torch.float64)
    # the k positions of each image (images with fewer points get padding entries, inactive)
    pos = torch.where(m, pr, torch.full_like(pr, -math.inf)).topk(k, dim=1)
    idx = pos.indices                                                    # (B, k), highest priority first
    active = torch.arange(k, device=dev)[None] < counts[:, None]
    rank = (k - torch.arange(k, device=dev, dtype=torch.float64))[None].expand(B, k)  # unique priorities
    cand, cvalid = _point_neighbours(idx, H, W)                          # (B, k, 9)
    cscore = torch.where(cvalid, s.gather(1, cand.flatten(1)).view(B, k, 9), torch.full(cand.shape, -math.inf,
                                                                                       dtype=torch.float64, device=dev))
    taken = torch.zeros(B, n + 1, dtype=torch.bool, device=dev)          # column n: a dummy for non-claims
    todo = active.clone()
    for _ in range(max_rounds):
        if not bool(todo.any()):
            break
        free = ~taken.gather(1, cand.flatten(1)).view(B, k, 9)
        cs = torch.where(free, cscore, torch.full_like(cscore, -math.inf))
        best_val, best = cs.max(2)
        want = todo & torch.isfinite(best_val)
        if not bool(want.any()):
            break
        tgt = torch.where(want, cand.gather(2, best[..., None])[..., 0], torch.full_like(best, n))
        claim = torch.full((B, n + 1), -1.0, dtype=torch.float64, device=dev)
        claim.scatter_reduce_(1, tgt, torch.where(want, rank, torch.full_like(rank, -1.0)), reduce="amax")
        win = want & (claim.gather(1, tgt) == rank)
        taken.scatter_(1, torch.where(win, tgt, torch.full_like(tgt, n)), True)
        todo = todo & ~win
    taken = taken[:, :n]
    out = taken.clone()
    left = todo.sum(1)
    if bool((left > 0).any()):                                           # rare: fill from the best free pixels
        for b in torch.nonzero(left > 0).flatten().tolist():
            free_s = torch.where(out[b], torch.full_like(s[b], -math.inf), s[b])
            out[b, free_s.topk(int(left[b])).indices] = True
    return out.view(B, 1, H, W).to(mask.dtype)


def _snap_one(mask: torch.Tensor, score: torch.Tensor, priority, max_rounds: int) -> torch.Tensor:
    """:func:`snap_to_extrema` for one CPU image in NumPy: the same claims, rounds and fill (a few
    hundred points per 64 x 64 mask; the tensor version spends most of its time dispatching small ops)."""
    _, _, H, W = mask.shape
    n = H * W
    m = mask.detach().reshape(-1).numpy() > 0.5
    k = int(m.sum())
    s = score.detach().reshape(-1).to(torch.float64).numpy()
    pr = s if priority is None else priority.detach().reshape(-1).to(torch.float64).numpy()
    out = np.zeros(n + 1, dtype=bool)                                   # entry n: a dummy for non-claims
    if k:
        # highest priority first, ties in the order of the tensor version's topk
        idx = torch.from_numpy(np.where(m, pr, -np.inf)).topk(k).indices.numpy()
        rank = (k - np.arange(k)).astype(np.float64)
        cand, valid = (t.numpy() for t in _point_neighbours(torch.from_numpy(idx), H, W))   # (k, 9)
        cscore = np.where(valid, s[cand], -np.inf)
        todo = np.arange(k)                             # the points still without a pixel, in priority order
        claim = np.full(n + 1, -1.0)
        for _ in range(max_rounds):
            if not todo.size:
                break
            # only the points left claim: after the first round a few percent of them (on a 4K mask, each
            # round over all the points cost as much as the first)
            c = cand[todo]
            cs = np.where(out[c], -np.inf, cscore[todo])
            best = cs.argmax(1)
            rows = np.arange(todo.size)
            want = np.isfinite(cs[rows, best])
            if not want.any():
                break
            tgt = np.where(want, c[rows, best], n)
            r = np.where(want, rank[todo], -1.0)
            np.maximum.at(claim, tgt, r)
            win = want & (claim[tgt] == r)
            claim[tgt] = -1.0                                            # reset only what this round touched
            out[np.where(win, tgt, n)] = True
            todo = todo[~win]
        out = out[:n].copy()
        left = int(todo.size)
        if left:                                                         # rare: fill from the best free pixels
            free_s = np.where(out, -np.inf, s)
            out[torch.from_numpy(free_s).topk(left).indices.numpy()] = True
    else:
        out = out[:n]
    return torch.from_numpy(out).view(1, 1, H, W).to(mask.dtype)


def neighbour_mass(p: torch.Tensor, score: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The expected mask of snapping: pixel ``j``'s mass ``p_j`` spread over its 3x3 neighbourhood
    by ``softmax(score / temperature)`` (differentiable in ``p`` and ``score``); sums are kept.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.snapping import neighbour_mass
    >>> p = torch.full((1, 1, 4, 4), 0.25)
    >>> q = neighbour_mass(p, torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0)))
    >>> q.shape, round(float(q.sum()), 5)                # the total mass is kept
    (torch.Size([1, 1, 4, 4]), 4.0)
    """
    B, _, H, W = p.shape
    sp = F.pad(score / temperature, (1, 1, 1, 1), value=-math.inf)
    cand = F.unfold(sp, 3)                                               # (B, 9, H W): neighbours of j
    wts = torch.softmax(cand, dim=1)
    mass = wts * p.flatten(2)
    return F.fold(mass, (H, W), 3, padding=1)


