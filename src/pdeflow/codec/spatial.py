"""The encoder's masks: error-driven densification on a lattice, with tonal optimisation in the loop.

Positions cost most of a sparse-inpainting file at low rates. Restricting the known pixels to the rows and
columns that are multiples of ``s`` (a lattice of step ``s``) divides the positions' choices by ``s^2``, so
each costs about ``2 log2 s`` bits less, for a small loss of freedom in where the points go.

:func:`lattice_mask` grows a mask on the lattice as :func:`~pdeflow.inpaint.densify_mask` does on the pixel
grid: start from the analytic mask (snapped to the lattice) at a fraction of the count, then in ``stages``
steps with geometrically growing counts, inpaint, take the squared error (summed over channels, smoothed),
sum it over each lattice point's cell, and add the free lattice points at the cells' local maxima, largest
first. In the last ``tonal_stages`` steps the error is that of the inpainting from tonally optimised values
(:func:`~pdeflow.inpaint.tonal.optimise_tonal`), the values the file will store: points go where the
optimised inpainting still errs (joint spatial and tonal optimisation, as in Mainberger et al. 2011 and
Hoeltgen, Mainberger, Hoffmann, Weickert et al. 2015).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["lattice_mask", "lattice_to_pixels", "prefix_mask"]


def lattice_to_pixels(grid: np.ndarray, s: int, H: int, W: int) -> np.ndarray:
    """The pixel mask (H, W) of a lattice mask ``grid`` (ceil(H/s), ceil(W/s)).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.spatial import lattice_to_pixels
    >>> grid = np.array([[True, False], [False, True]])
    >>> lattice_to_pixels(grid, 2, 3, 4).astype(int)
    array([[1, 0, 0, 0],
           [0, 0, 0, 0],
           [0, 0, 1, 0]])
    """
    m = np.zeros((H, W), bool)
    m[::s, ::s] = grid
    return m


def _cell_scores(e: torch.Tensor, s: int, gh: int, gw: int) -> torch.Tensor:
    """Sum of ``e`` (1, 1, H, W) over the ``s x s`` cell centred on each lattice point: (gh, gw)."""
    if s == 1:
        return e[0, 0]
    a = s // 2
    H, W = e.shape[-2:]
    padded = F.pad(e, (a, gw * s - W - a + s, a, gh * s - H - a + s))
    return F.avg_pool2d(padded, s, s)[0, 0, :gh, :gw]


def lattice_mask(f: torch.Tensor, K: int, s: int, *, stages: int = 8, start: float = 0.3, sigma: float = 0.7,
                 tonal_stages: int = 0, tol: float = 1e-3,
                 operator="diffusion") -> tuple[np.ndarray, np.ndarray]:
    """A lattice mask (gh, gw) bool with ``K`` known points for ``f`` (C, H, W) float64 in [0, 1], and the
    rank (gh, gw) int64 of each point in the order they were added (the start mask first, then each stage's
    points, largest error first; cells not in the mask rank last): the ``k`` points of smallest rank are a
    mask of ``k`` points, as a densification stopped there would have grown it, nearly.

    With one shared mask the error is summed over channels. ``operator``: the inpainting whose error drives the
    densification (a name or an entry of :data:`~pdeflow.codec.CODEC_OPERATORS`; homogeneous diffusion by default).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.codec.spatial import lattice_mask, prefix_mask
    >>> f = torch.linspace(0, 1, 16 * 16, dtype=torch.float64).reshape(1, 16, 16)
    >>> grid, rank = lattice_mask(f, 6, 2)
    >>> grid.shape, int(grid.sum())
    ((8, 8), 6)
    >>> bool((prefix_mask(rank, 6) == grid).all())
    True
    """
    from ..filters import gaussian_blur, max3x3
    from ..inpaint import analytic_mask, analytic_sigma, optimise_tonal
    from .operators import codec_operator

    operator = codec_operator(operator, "lattice_mask")
    solve = operator.operator.solve

    C, H, W = f.shape
    gh, gw = -(-H // s), -(-W // s)
    K = max(1, min(K, gh * gw))
    k0 = max(1, round(start * K))
    m0 = analytic_mask(f, k0 / (H * W), sigma=analytic_sigma(K / (H * W))).reshape(H, W) > 0.5
    y, x = np.nonzero(m0.numpy())
    grid = np.zeros((gh, gw), bool)
    gy = np.minimum(np.rint(y / s).astype(np.int64), gh - 1)
    gx = np.minimum(np.rint(x / s).astype(np.int64), gw - 1)
    grid[gy, gx] = True
    k0 = int(grid.sum())
    rank = np.full(gh * gw, gh * gw, np.int64)
    rank[np.flatnonzero(grid)] = 0
    placed = k0
    u = None
    for st in range(1, stages + 1):
        add = round(k0 * (K / k0) ** (st / stages)) - int(grid.sum())
        if add <= 0:
            continue
        m = torch.from_numpy(lattice_to_pixels(grid, s, H, W).astype(np.float64))
        if st > stages - tonal_stages:
            u = optimise_tonal(f, m, operator=operator.name, tol=1e-2, max_iter=10, solve_tol=tol, full_output=True).u
        else:    # warm-started from the previous stage's inpainting
            u = solve(f[None], m[None, None], u0=None if u is None else u[None], tol=tol)[0]
        e = (u - f).square().sum(0)[None, None]
        if sigma > 0:
            e = gaussian_blur(e, sigma)
        score = _cell_scores(e, s, gh, gw)
        free = torch.from_numpy(~grid)
        peak = (score >= max3x3(score[None, None])[0, 0]) & (score > 0) & free
        flat = score.flatten()
        cand = peak.flatten().nonzero().squeeze(1)
        if cand.numel() >= add:
            pick = cand[flat[cand].topk(add).indices]
        else:
            rest = flat.masked_fill(~free.flatten() | peak.flatten(), -math.inf)
            pick = torch.cat([cand, rest.topk(min(add - cand.numel(), int(free.sum()) - cand.numel())).indices])
        g = grid.reshape(-1)
        pick = pick.numpy()
        g[pick] = True
        rank[pick] = placed + np.arange(len(pick))
        placed += len(pick)
        grid = g.reshape(gh, gw)
    return grid, rank.reshape(gh, gw)


def prefix_mask(rank: np.ndarray, k: int) -> np.ndarray:
    """The mask of the ``k`` points of smallest rank (:func:`lattice_mask`).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.spatial import prefix_mask
    >>> rank = np.array([[0, 3], [1, 2]])
    >>> prefix_mask(rank, 2)
    array([[ True, False],
           [ True, False]])
    """
    flat = rank.reshape(-1)
    keep = np.zeros(flat.shape, bool)
    keep[np.argsort(flat, kind="stable")[:k]] = True
    return keep.reshape(rank.shape)
