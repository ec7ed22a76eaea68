"""Blue-noise threshold tiles and ordered dithering of a density to exactly ``k`` points.

* :func:`blue_noise_tile`: a threshold tile by the void-and-cluster method of
  Ulichney, "The void-and-cluster method for dither array generation", SPIE
  1913, 1993. The tile is a permutation of the ranks ``0 .. h w - 1`` (returned
  as thresholds ``(rank + 0.5) / (h w)`` in (0, 1)) whose every level set
  ``{T < t}`` is a well-spaced (blue-noise) point set on the torus, so the tile
  can be repeated over an image without seams.
* :func:`threshold_map`: the tile repeated over an ``H x W`` image, optionally
  shifted and flipped at random per image (training uses a fresh tile position
  for each sample, so the network does not learn the tile).
* :func:`dither`: ordered dithering of a non-negative density ``p`` to exactly
  ``k = round(density H W)`` known pixels per image: the ``k`` largest values
  of ``log p - log T``. Classical ordered dithering turns pixel ``i`` on where
  ``s p_i > T_i`` for a scale ``s``; choosing ``s`` such that exactly ``k``
  pixels pass is the top-``k`` of ``p / T``.
* Volumes ``(B, 1, D, H, W)``: :func:`volume_thresholds` repeats a 16^3
  void-and-cluster tile (the same algorithm on the 3-D torus, kept in memory
  only: it is recomputed once per process) and :func:`dither` keeps exactly ``round(density D H W)``
  voxels per volume.

Tiles are computed once per (size, seed) and cached in memory and in a small
``.npy`` file under the user's cache directory (``$XDG_CACHE_HOME/pdeflow`` or
``~/.cache/pdeflow``; set ``PDEFLOW_CACHE_DIR`` to move it); an unreadable or
unwritable cache only costs the recomputation (its time is on the results page
"Sparse inpainting").

Randomness: every function that draws random numbers takes
``generator: None | int | torch.Generator`` (None: torch's global generator; an
int: a fresh generator seeded with it).
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from ... import ops
from ...errors import UserInputError
from ...rng import as_generator

__all__ = ["blue_noise_tile", "threshold_map", "volume_thresholds", "dither", "n_known", "binary_mask",
           "as_generator"]

#: Standard deviation (pixels) of the Gaussian energy filter of void-and-cluster (Ulichney's 1.5).
VC_SIGMA = 1.5
#: Fraction of ones in the initial binary pattern (Ulichney: at most about 10 %).
VC_INITIAL = 0.1
_TILE_VERSION = 1  # bump when the algorithm changes: old cache files are ignored


def n_known(density, n_pixels: int, who: str) -> int:
    """``k = round(density * n_pixels)``, or a ValueError naming ``density`` (out of (0, 1), or 0 or all pixels).

    Examples
    --------
    >>> from pdeflow.inpaint.masks.dither import n_known
    >>> n_known(0.1, 32 * 32, "demo")
    102
    >>> try:
    ...     n_known(0.0001, 100, "demo")
    ... except ValueError as e:
    ...     print(e)
    demo: density 0.0001 keeps no pixel of a 100-pixel image (need density >= 0.005)
    """
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not math.isfinite(density) \
            or not 0.0 < density < 1.0:
        raise UserInputError(f"{who}: density must be a number in (0, 1) (the fraction of known pixels), "
                         f"got {density!r}")
    k = int(round(float(density) * n_pixels))
    if k < 1:
        raise UserInputError(f"{who}: density {density!r} keeps no pixel of a {n_pixels}-pixel image "
                         f"(need density >= {0.5 / n_pixels:.3g})")
    if k >= n_pixels:
        raise UserInputError(f"{who}: density {density!r} keeps every pixel of a {n_pixels}-pixel image")
    return k


def binary_mask(mask, f: torch.Tensor, f4: torch.Tensor, who: str) -> torch.Tensor:
    """A mask argument of a mask function, checked, as ``(B, 1, H, W)`` bool on ``f4``'s device: it must have
    the shape the mask functions return for ``f`` (``(B, 1, H, W)``, ``(1, H, W)`` or ``(H, W)``; ``f4`` is
    ``f`` as a batch) and the values 0 and 1 (or be bool). A UserInputError naming ``mask`` otherwise.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.dither import binary_mask
    >>> f = torch.zeros(6, 5)
    >>> binary_mask(torch.eye(6, 5), f, f[None, None], "demo").shape
    torch.Size([1, 1, 6, 5])
    >>> try:
    ...     binary_mask(torch.full((6, 5), 0.5), f, f[None, None], "demo")
    ... except ValueError as e:
    ...     print(e)
    demo: mask must be binary (values 0 and 1, 1 = known pixel)
    """
    B, _, H, W = f4.shape
    want = (B, 1, H, W) if f.dim() == 4 else ((1, H, W) if f.dim() == 3 else (H, W))
    mask = ops.check_tensor(mask, f"{who}: mask")
    if tuple(mask.shape) != want:
        raise UserInputError(f"{who}: mask must have shape {want} for f of shape {tuple(f.shape)}, got "
                             f"{tuple(mask.shape)}")
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise UserInputError(f"{who}: mask must be binary (values 0 and 1, 1 = known pixel)")
    return mask.reshape(B, 1, H, W).to(f4.device).bool()


# ---------------------------------------------------------------------------
# Void-and-cluster
# ---------------------------------------------------------------------------

def _energy_kernel(h: int, w: int, sigma: float) -> np.ndarray:
    """Toroidal Gaussian ``exp(-d^2 / (2 sigma^2))`` centred at (0, 0) on an ``h x w`` torus."""
    dy = np.minimum(np.arange(h), h - np.arange(h)).astype(np.float64)
    dx = np.minimum(np.arange(w), w - np.arange(w)).astype(np.float64)
    return np.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2 * sigma * sigma))


def _void_and_cluster(h: int, w: int, seed: int) -> np.ndarray:
    """Ranks ``(h, w)`` int64, a permutation of ``0 .. h w - 1`` (Ulichney 1993)."""
    n = h * w
    kern = _energy_kernel(h, w, VC_SIGMA)
    kf = np.fft.rfft2(kern)

    def energy(pattern: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(np.fft.rfft2(pattern) * kf, s=(h, w))

    def add(e: np.ndarray, idx: int, sign: float) -> None:
        y, x = divmod(idx, w)
        e += sign * np.roll(np.roll(kern, y, axis=0), x, axis=1)

    rng = np.random.default_rng(seed)
    n_init = max(1, min(n - 1, int(round(VC_INITIAL * n)))) if n > 1 else 1
    proto = np.zeros(n, dtype=bool)
    proto[rng.choice(n, n_init, replace=False)] = True
    # Initial binary pattern: move the tightest cluster into the largest void until stable.
    e = energy(proto.reshape(h, w).astype(np.float64)).ravel()
    for _ in range(10 * n):
        cluster = int(np.argmax(np.where(proto, e, -np.inf)))
        proto[cluster] = False
        add(e.reshape(h, w), cluster, -1.0)
        void = int(np.argmin(np.where(proto, np.inf, e)))
        proto[void] = True
        add(e.reshape(h, w), void, 1.0)
        if void == cluster:
            break
    rank = np.full(n, -1, dtype=np.int64)
    # Phase 1: ranks of the initial ones, removing the tightest cluster first (highest rank).
    pat = proto.copy()
    e = energy(pat.reshape(h, w).astype(np.float64)).ravel()
    for r in range(n_init - 1, -1, -1):
        cluster = int(np.argmax(np.where(pat, e, -np.inf)))
        pat[cluster] = False
        add(e.reshape(h, w), cluster, -1.0)
        rank[cluster] = r
    # Phase 2: up to half, fill the largest void.
    pat = proto.copy()
    e = energy(pat.reshape(h, w).astype(np.float64)).ravel()
    r = n_init
    while r < (n + 1) // 2:
        void = int(np.argmin(np.where(pat, np.inf, e)))
        pat[void] = True
        add(e.reshape(h, w), void, 1.0)
        rank[void] = r
        r += 1
    # Phase 3: the rest, by the tightest cluster of the minority (zeros) in the inverted pattern.
    e = energy((~pat).reshape(h, w).astype(np.float64)).ravel()
    while r < n:
        cluster = int(np.argmax(np.where(pat, -np.inf, e)))
        pat[cluster] = True
        add(e.reshape(h, w), cluster, -1.0)
        rank[cluster] = r
        r += 1
    return rank.reshape(h, w)


def _void_and_cluster_nd(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Ranks of shape ``shape`` (any number of axes): :func:`_void_and_cluster` on an n-D torus."""
    n = int(np.prod(shape))
    axes = tuple(range(len(shape)))
    d2 = sum(np.minimum(np.arange(s), s - np.arange(s)).astype(np.float64).reshape(
        [-1 if i == a else 1 for i in axes]) ** 2 for a, s in enumerate(shape))
    kern = np.exp(-d2 / (2 * VC_SIGMA ** 2))
    kf = np.fft.rfftn(kern, axes=axes)

    def energy(pat):
        spec = np.fft.rfftn(pat.reshape(shape).astype(np.float64), axes=axes) * kf
        return np.fft.irfftn(spec, s=shape, axes=axes).ravel()

    def add(e, idx, sign):
        e += sign * np.roll(kern, np.unravel_index(idx, shape), axis=axes).ravel()

    rng = np.random.default_rng(seed)
    n_init = max(1, min(n - 1, int(round(VC_INITIAL * n))))
    proto = np.zeros(n, dtype=bool)
    proto[rng.choice(n, n_init, replace=False)] = True
    e = energy(proto)
    for _ in range(10 * n):
        c = int(np.argmax(np.where(proto, e, -np.inf)))
        proto[c] = False
        add(e, c, -1.0)
        v = int(np.argmin(np.where(proto, np.inf, e)))
        proto[v] = True
        add(e, v, 1.0)
        if v == c:
            break
    rank = np.full(n, -1, dtype=np.int64)
    pat = proto.copy()
    e = energy(pat)
    for r in range(n_init - 1, -1, -1):
        c = int(np.argmax(np.where(pat, e, -np.inf)))
        pat[c] = False
        add(e, c, -1.0)
        rank[c] = r
    pat = proto.copy()
    e = energy(pat)
    r = n_init
    while r < (n + 1) // 2:
        v = int(np.argmin(np.where(pat, np.inf, e)))
        pat[v] = True
        add(e, v, 1.0)
        rank[v] = r
        r += 1
    e = energy(~pat)
    while r < n:
        c = int(np.argmax(np.where(pat, -np.inf, e)))
        pat[c] = True
        add(e, c, -1.0)
        rank[c] = r
        r += 1
    return rank.reshape(shape)


@lru_cache(maxsize=4)
def _ranks_nd(shape: tuple[int, ...], seed: int) -> np.ndarray:
    r = _void_and_cluster_nd(shape, seed)
    r.setflags(write=False)
    return r


def _cache_dir() -> Path:
    env = os.environ.get("PDEFLOW_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pdeflow"


@lru_cache(maxsize=16)
def _ranks(h: int, w: int, seed: int) -> np.ndarray:
    path = _cache_dir() / f"bluenoise-v{_TILE_VERSION}-{h}x{w}-seed{seed}.npy"
    try:
        r = np.load(path, allow_pickle=False)
        if r.shape == (h, w) and r.dtype == np.int64 and np.array_equal(np.sort(r.ravel()), np.arange(h * w)):
            r.setflags(write=False)
            return r
    except (OSError, ValueError):
        pass
    r = _void_and_cluster(h, w, seed)
    try:  # best effort: write to a temp name, then rename
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, r, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass
    r.setflags(write=False)
    return r


def _check_size(size, who: str) -> tuple[int, int]:
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in size)
            or size[0] * size[1] < 2):
        raise UserInputError(f"{who}: size must be a positive int or a pair (h, w) of positive ints "
                         f"with at least 2 pixels, got {size!r}")
    return int(size[0]), int(size[1])


def blue_noise_tile(size=64, *, seed: int = 0, dtype: torch.dtype = torch.float64, ranks: bool = False
                    ) -> torch.Tensor:
    """A void-and-cluster blue-noise threshold tile (Ulichney 1993).

    Parameters
    ----------
    size : int or (int, int)
        Tile height and width ``(h, w)`` (an int: square).
    seed : int
        Seed of the initial random pattern (different seeds give different tiles).
    dtype : torch.dtype
        Of the thresholds.
    ranks : bool
        Return the integer ranks (int64, a permutation of ``0 .. h w - 1``) instead of thresholds.

    Returns
    -------
    Tensor, shape (h, w)
        Thresholds ``(rank + 0.5) / (h w)`` in (0, 1), or the ranks.

    Examples
    --------
    >>> from pdeflow.inpaint import blue_noise_tile
    >>> t = blue_noise_tile(8)
    >>> t.shape, float(t.min()) >= 0, float(t.max()) <= 1
    (torch.Size([8, 8]), True, True)
    """
    h, w = _check_size(size, "blue_noise_tile")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise UserInputError(f"blue_noise_tile: seed must be an int >= 0, got {seed!r}")
    r = torch.from_numpy(_ranks(h, w, int(seed)).copy())
    if ranks:
        return r
    return ((r.to(torch.float64) + 0.5) / (h * w)).to(dtype)


def threshold_map(shape, *, tile=None, random: bool = False, generator=None, dtype=torch.float64,
                  device=None) -> torch.Tensor:
    """Thresholds ``(B, 1, H, W)``: a tile repeated over each image.

    Parameters
    ----------
    shape : tuple (B, 1, H, W) or (B, C, H, W)
        Only ``B``, ``H`` and ``W`` are used.
    tile : Tensor (h, w), optional
        Thresholds in (0, 1) (default: :func:`blue_noise_tile` of 64 x 64).
    random : bool
        Shift the tile by a random offset and flip it at random (vertically,
        horizontally, and transposed if square) per image, from ``generator``.
    generator : None, int or torch.Generator

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.dither import threshold_map
    >>> tile = torch.tensor([[0.1, 0.6], [0.8, 0.3]], dtype=torch.float64)
    >>> t = threshold_map((2, 3, 3, 5), tile=tile)
    >>> t.shape, t[0, 0, 2].tolist()
    (torch.Size([2, 1, 3, 5]), [0.1, 0.6, 0.1, 0.6, 0.1])
    >>> threshold_map((2, 1, 64, 64), random=True, generator=0).shape   # the 64 x 64 blue-noise tile
    torch.Size([2, 1, 64, 64])
    """
    who = "threshold_map"
    if tile is None:
        tile = blue_noise_tile(64)
    if not isinstance(tile, torch.Tensor) or tile.dim() != 2:
        raise UserInputError(f"{who}: tile must be a 2-D tensor of thresholds, got {getattr(tile, 'shape', tile)!r}")
    B, H, W = int(shape[0]), int(shape[-2]), int(shape[-1])
    h, w = tile.shape
    tile = tile.to(dtype=dtype, device=device)
    if not random:
        reps = (-(-H // h), -(-W // w))
        return tile.repeat(*reps)[:H, :W].expand(B, 1, H, W).clone()
    gen = as_generator(generator, who)
    draws = torch.rand(B, 5, generator=gen, dtype=torch.float64)
    out = []
    for b in range(B):
        t = tile
        if h == w and draws[b, 0] < 0.5:
            t = t.transpose(0, 1)
        if draws[b, 1] < 0.5:
            t = t.flip(0)
        if draws[b, 2] < 0.5:
            t = t.flip(1)
        dy, dx = int(draws[b, 3] * h), int(draws[b, 4] * w)
        t = torch.roll(t, (dy, dx), (0, 1))
        out.append(t.repeat(-(-H // h), -(-W // w))[:H, :W])
    return torch.stack(out)[:, None]


@ops.follows_layout_rule("p")
def dither(p: torch.Tensor, density: float, *, tile=None, random: bool = False, generator=None,
           thresholds: torch.Tensor | None = None) -> torch.Tensor:
    """Ordered dithering of a density ``p`` to exactly ``k = round(density H W)`` points per image.

    Parameters
    ----------
    p : Tensor, shape (B, 1, H, W) or (B, 1, D, H, W)
        Non-negative density (any scale; only its ratios matter). Zeros are
        allowed (such pixels are chosen last). A 5-D ``p`` is a batch of
        volumes: exactly ``k = round(density D H W)`` voxels per volume, with
        the thresholds of :func:`volume_thresholds`.
    density : float in (0, 1)
        Fraction of known pixels.
    tile, random, generator
        The threshold map (:func:`threshold_map`): default a fixed 64 x 64
        blue-noise tile; ``random=True`` shifts/flips it per image.
    thresholds : Tensor (B, 1, H, W) or (H, W), optional
        A ready threshold map in (0, 1) instead of ``tile``.

    Returns
    -------
    Tensor, shape and dtype of ``p``
        1 on the ``k`` pixels of largest ``log p - log T`` of each image, 0 elsewhere.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import dither
    >>> m = dither(torch.ones(1, 1, 16, 16), 0.1)
    >>> int(m.sum())
    26
    >>> int(dither(torch.ones(1, 1, 5, 7, 9), 0.1).sum())   # a volume: round(0.1 * 5 * 7 * 9) voxels
    32
    """
    who = "dither"
    p = ops.check_tensor(p, f"{who}: p")
    if p.dim() not in (4, 5) or p.shape[1] != 1 or not p.is_floating_point():
        raise UserInputError(f"{who}: p must be a floating-point tensor (B, 1, H, W) or (B, 1, D, H, W), "
                         f"got {getattr(p, 'shape', type(p).__name__)}")
    if p.dim() == 5:
        return _dither_volume(p, density, tile, random, generator, thresholds, who)
    B, _, H, W = p.shape
    k = n_known(density, H * W, who)
    pd = p.detach()
    if bool((pd < 0).any()) or not bool(torch.isfinite(pd).all()):
        raise UserInputError(f"{who}: p must be finite and non-negative")
    if thresholds is None:
        thresholds = threshold_map(p.shape, tile=tile, random=random, generator=generator, device=p.device)
    T = thresholds.to(device=p.device, dtype=torch.float64).expand(B, 1, H, W)
    score = torch.log(pd.to(torch.float64).clamp_min(1e-300)) - torch.log(T)   # zeros: chosen last, by T
    return top_k_mask(score, k).to(p.dtype)


#: Per-slice shift of the tile in a volume, as fractions of its height and width: the golden-ratio
#: sequence (d * 0.618..., d * 0.382...) mod 1 puts the tiles of nearby slices far apart on the torus.
_SLICE_SHIFT = ((math.sqrt(5) - 1) / 2, (3 - math.sqrt(5)) / 2)


#: Side of the default 3-D blue-noise tile of :func:`volume_thresholds` (16^3 voxels, computed once per process).
VOLUME_TILE = 16


def volume_thresholds(shape, *, tile=None, random: bool = False, generator=None, dtype=torch.float64,
                      device=None) -> torch.Tensor:
    """Thresholds ``(B, 1, D, H, W)`` for volumes: a blue-noise tile repeated over each volume.

    Parameters
    ----------
    shape : tuple (B, C, D, H, W)
        Only ``B``, ``D``, ``H`` and ``W`` are used.
    tile : Tensor (d, h, w) or (h, w), optional
        Thresholds in (0, 1). Default: a 16^3 void-and-cluster tile (Ulichney 1993 on the 3-D torus),
        whose level sets are well spaced in all three directions. A 2-D tile is used slice by slice,
        slice ``d`` shifted by ``d`` times the golden-ratio offset ``(0.618 h, 0.382 w)`` on its torus
        (blue noise within each slice only).
    random : bool
        Shift the tile by a random offset per volume (and flip it along each axis at random).
    generator : None, int or torch.Generator

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.masks.dither import volume_thresholds
    >>> t = volume_thresholds((1, 1, 3, 20, 20))
    >>> t.shape, bool((t[0, 0, 1] != t[0, 0, 0]).any())
    (torch.Size([1, 1, 3, 20, 20]), True)
    """
    who = "volume_thresholds"
    if tile is None:
        r = torch.from_numpy(_ranks_nd((VOLUME_TILE,) * 3, 0).copy())
        tile = (r.to(torch.float64) + 0.5) / r.numel()
    if not isinstance(tile, torch.Tensor) or tile.dim() not in (2, 3):
        raise UserInputError(f"{who}: tile must be a 2-D or 3-D tensor of thresholds, "
                             f"got {getattr(tile, 'shape', tile)!r}")
    B, D, H, W = int(shape[0]), int(shape[-3]), int(shape[-2]), int(shape[-1])
    if tile.dim() == 2:
        h, w = tile.shape
        base = threshold_map((B, 1, h, w), tile=tile, random=random, generator=generator, dtype=dtype,
                             device=device)
        out = []
        for d in range(D):
            sy, sx = int(round(d * _SLICE_SHIFT[0] * h)) % h, int(round(d * _SLICE_SHIFT[1] * w)) % w
            t = torch.roll(base, (sy, sx), (-2, -1))
            out.append(t.repeat(1, 1, -(-H // h), -(-W // w))[..., :H, :W])
        return torch.stack(out, 2)
    tile = tile.to(dtype=dtype, device=device)
    td, th, tw = tile.shape
    reps = (-(-D // td), -(-H // th), -(-W // tw))
    if not random:
        return tile.repeat(*reps)[:D, :H, :W].expand(B, 1, D, H, W).clone()
    gen = as_generator(generator, who)
    draws = torch.rand(B, 6, generator=gen, dtype=torch.float64)
    out = []
    for b in range(B):
        t = tile
        for ax in range(3):
            if draws[b, ax] < 0.5:
                t = t.flip(ax)
        shift = tuple(int(draws[b, 3 + ax] * n) for ax, n in enumerate(tile.shape))
        out.append(torch.roll(t, shift, (0, 1, 2)).repeat(*reps)[:D, :H, :W])
    return torch.stack(out)[:, None]


def _dither_volume(p, density, tile, random, generator, thresholds, who):
    """:func:`dither` of ``(B, 1, D, H, W)``: the top ``round(density D H W)`` of ``log p - log T`` per volume."""
    B, _, D, H, W = p.shape
    k = n_known(density, D * H * W, who)
    pd = p.detach()
    if bool((pd < 0).any()) or not bool(torch.isfinite(pd).all()):
        raise UserInputError(f"{who}: p must be finite and non-negative")
    if thresholds is None:
        thresholds = volume_thresholds(p.shape, tile=tile, random=random, generator=generator, device=p.device)
    T = thresholds.to(device=p.device, dtype=torch.float64).expand(B, 1, D, H, W)
    score = torch.log(pd.to(torch.float64).clamp_min(1e-300)) - torch.log(T)
    return top_k_mask(score, k).to(p.dtype)


def top_k_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, 1, H, W)`` with 1 on the ``k`` largest scores of each image (float64)."""
    flat = score.flatten(1)
    idx = flat.topk(k, dim=1).indices
    return torch.zeros(flat.shape, dtype=torch.float64, device=score.device).scatter_(1, idx, 1.0).view(score.shape)
