"""Analytic inpainting masks: the Laplacian-magnitude density of Belhachmi et al., dithered.

Belhachmi, Bucur, Burgeth, Weickert, "How to choose interpolation data in
images", SIAM J. Appl. Math. 69(1), 2009: for homogeneous diffusion
inpainting the optimal density of known pixels is proportional to the
magnitude of the Laplacian of the (slightly smoothed) image,
``p ∝ |laplacian(G_sigma * f)|``. Binarised by ordered dithering with a
blue-noise tile (:mod:`pdeflow.inpaint.dither`) it gives exactly
``round(density H W)`` well-spaced points per image.

:func:`snap_to_extrema` then moves each point to the pixel of its 3 x 3
neighbourhood with the largest score (default ``|f - G_1 * f|``, the most
extreme pixel against its local mean), never onto another point: homogeneous
diffusion satisfies a maximum principle and cannot recreate extrema that are
not in the mask.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserInputError
from ..metrics import gaussian_window
from ..ops import laplacian
from .diffusion import _check_f
from .dither import blue_noise_tile, dither, n_known

__all__ = ["analytic_mask", "gaussian_blur", "laplacian_density", "extremality", "snap_to_extrema", "neighbour_mass"]

# 3x3 neighbourhood offsets, row-major (index 4 is the centre)
_NB = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]


def gaussian_blur(f: torch.Tensor, sigma: float) -> torch.Tensor:
    """``G_sigma * f`` per channel of ``(B, C, H, W)``: separable Gaussian (radius ``int(3.5 sigma + 0.5)``),
    mirrored boundary (edge pixel not repeated; the window is cut to the image for tiny images)."""
    if sigma == 0:
        return f
    win = gaussian_window(sigma, dtype=f.dtype, device=f.device)
    r = win.numel() // 2
    B, C, H, W = f.shape
    x = f.reshape(B * C, 1, H, W)
    ry, rx = min(r, H - 1), min(r, W - 1)
    wy = win[r - ry:r + ry + 1] / win[r - ry:r + ry + 1].sum()
    wx = win[r - rx:r + rx + 1] / win[r - rx:r + rx + 1].sum()
    x = F.conv2d(F.pad(x, (0, 0, ry, ry), mode="reflect") if ry else x, wy.view(1, 1, -1, 1))
    x = F.conv2d(F.pad(x, (rx, rx, 0, 0), mode="reflect") if rx else x, wx.view(1, 1, 1, -1))
    return x.reshape(B, C, H, W)


def laplacian_density(f: torch.Tensor, sigma: float = 2.0, floor: float = 0.05) -> torch.Tensor:
    """Belhachmi et al.'s density ``|laplacian(G_sigma * f)|`` (summed over channels) ``(B, 1, H, W)``,
    plus ``floor`` times its image mean (so flat regions keep a few points)."""
    lap = laplacian(gaussian_blur(f, sigma)).abs().sum(1, keepdim=True)
    mean = lap.flatten(1).mean(1).view(-1, 1, 1, 1)
    return lap + floor * mean + torch.finfo(f.dtype).tiny ** 0.5


def extremality(f: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """``|f - G_sigma * f|`` summed over channels ``(B, 1, H, W)``: how extreme a pixel is against its local mean."""
    return (f - gaussian_blur(f, sigma)).abs().sum(1, keepdim=True)


@functools.lru_cache(maxsize=16)
def _neighbours(H: int, W: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(H W, 9)`` of each pixel's 3x3 neighbourhood and their validity (inside the image);
    cached per size and device (read-only: callers index them)."""
    I = torch.arange(H, device=device).view(H, 1).expand(H, W).reshape(-1)
    J = torch.arange(W, device=device).view(1, W).expand(H, W).reshape(-1)
    ii = torch.stack([I + a for a, _ in _NB], 1)
    jj = torch.stack([J + b for _, b in _NB], 1)
    valid = (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
    return (ii.clamp(0, H - 1) * W + jj.clamp(0, W - 1)), valid


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
    nb, valid = _neighbours(H, W, dev)
    cand, cvalid = nb[idx], valid[idx]                                   # (B, k, 9)
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
        nb, valid = _neighbours_np(H, W)
        cand = nb[idx]                                                   # (k, 9)
        cscore = np.where(valid[idx], s[cand], -np.inf)
        todo = np.ones(k, dtype=bool)
        rows = np.arange(k)
        for _ in range(max_rounds):
            if not todo.any():
                break
            cs = np.where(out[cand], -np.inf, cscore)
            best = cs.argmax(1)
            want = todo & np.isfinite(cs[rows, best])
            if not want.any():
                break
            tgt = np.where(want, cand[rows, best], n)
            claim = np.full(n + 1, -1.0)
            np.maximum.at(claim, tgt, np.where(want, rank, -1.0))
            win = want & (claim[tgt] == rank)
            out[np.where(win, tgt, n)] = True
            todo &= ~win
        out = out[:n].copy()
        left = int(todo.sum())
        if left:                                                         # rare: fill from the best free pixels
            free_s = np.where(out, -np.inf, s)
            out[torch.from_numpy(free_s).topk(left).indices.numpy()] = True
    else:
        out = out[:n]
    return torch.from_numpy(out).view(1, 1, H, W).to(mask.dtype)


@functools.lru_cache(maxsize=16)
def _neighbours_np(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_neighbours` as NumPy arrays (read-only)."""
    nb, valid = _neighbours(H, W, torch.device("cpu"))
    a, b = nb.numpy().copy(), valid.numpy().copy()
    a.flags.writeable = b.flags.writeable = False
    return a, b


def neighbour_mass(p: torch.Tensor, score: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The expected mask of snapping: pixel ``j``'s mass ``p_j`` spread over its 3x3 neighbourhood
    by ``softmax(score / temperature)`` (differentiable in ``p`` and ``score``); sums are kept."""
    B, _, H, W = p.shape
    sp = F.pad(score / temperature, (1, 1, 1, 1), value=-math.inf)
    cand = F.unfold(sp, 3)                                               # (B, 9, H W): neighbours of j
    wts = torch.softmax(cand, dim=1)
    mass = wts * p.flatten(2)
    return F.fold(mass, (H, W), 3, padding=1)


def _check_number(x, name: str, who: str, *, minimum: float = 0.0, open_low: bool = True) -> float:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) \
        and (x > minimum if open_low else x >= minimum)
    if not ok:
        raise UserInputError(f"{who}: {name} must be a number {'>' if open_low else '>='} {minimum:g}, got {x!r}")
    return float(x)


def analytic_sigma(density: float) -> float:
    """Smoothing of the analytic density for a mask density: ``0.45 / sqrt(density)`` pixels (~0.45 x the point
    spacing), rounded to 0.01; what the mask networks, the residual inpainter's training and ``pdeflow mask`` use."""
    return round(0.45 / math.sqrt(density), 2)


def analytic_mask(f: torch.Tensor, density: float, *, sigma: float = 2.0, floor: float = 0.05,
                  snap: bool = True, snap_sigma: float = 1.0, tile=None, random: bool = False,
                  generator=None, refine=0) -> torch.Tensor:
    """A mask for homogeneous diffusion inpainting from Belhachmi et al.'s density, dithered.

    The density ``|laplacian(G_sigma * f)| + floor * mean`` (Belhachmi, Bucur,
    Burgeth, Weickert, 2009) is dithered with a blue-noise threshold tile to
    exactly ``k = round(density H W)`` known pixels per image; with ``snap``
    each point then moves to the most extreme pixel (largest
    ``|f - G_snap_sigma * f|``) of its 3x3 neighbourhood not taken by another
    point.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point, values in [0, 1] (any range works).
    density : float in (0, 1)
        Fraction of known pixels; must give at least one and not every pixel.
    sigma : float >= 0
        Pre-smoothing of the Laplacian, pixels (Belhachmi et al. smooth
        slightly; 2 is good for photos at 64-256 pixels).
    floor : float >= 0
        Added density, in units of the image's mean density.
    snap : bool
        Move points to the local extrema (see above).
    snap_sigma : float > 0
        Scale of the local mean of the snap score, pixels.
    tile, random, generator
        Threshold tile (default 64 x 64 blue noise) and a random shift/flip of
        it per image (:func:`pdeflow.inpaint.dither.threshold_map`).
    refine : int, dict or None
        Test-time refinement (:func:`pdeflow.inpaint.refine.refine_mask` with
        this density map and snap score): 0 (default) none, an int of exchange
        rounds, or a dict of its options (``{"shifts": 4, "rounds": 8}``;
        its ``generator`` defaults to this one).

    Returns
    -------
    Tensor
        Mask of the dtype of ``f``, 1 = known pixel: ``(B, 1, H, W)`` for
        4-D input, ``(1, H, W)`` for 3-D, ``(H, W)`` for 2-D.
    """
    who = "analytic_mask"
    f4 = _check_f(f, who)
    B, C, H, W = f4.shape
    n_known(density, H * W, who)
    sigma = _check_number(sigma, "sigma", who, open_low=False)
    floor = _check_number(floor, "floor", who, open_low=False)
    snap_sigma = _check_number(snap_sigma, "snap_sigma", who)
    if not isinstance(snap, bool):
        raise UserInputError(f"{who}: snap must be True or False, got {snap!r}")
    with torch.no_grad():
        x = f4.to(torch.float64)
        p = laplacian_density(x, sigma, floor)
        m = dither(p, density, tile=tile if tile is not None else blue_noise_tile(64), random=random,
                   generator=generator)
        if snap:
            m = snap_to_extrema(m, extremality(x, snap_sigma))
    # test-time refinement (pdeflow.inpaint.refine)
    from .refine import refine_mask, refine_options
    opts = refine_options(refine, who)
    if opts is not None:
        opts.setdefault("generator", generator)
        m = refine_mask(x, m, density_map=p, snap_score=extremality(x, snap_sigma) if snap else None,
                        tile=tile if tile is not None else blue_noise_tile(64), **opts)
    m = m.to(f4.dtype)
    return m if f.dim() == 4 else (m[0] if f.dim() == 3 else m[0, 0])
