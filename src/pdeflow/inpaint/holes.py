"""Hole masks: the missing regions of damaged or edited photos (scratches, overlaid text, removed objects).

Sparse-data inpainting (:func:`~pdeflow.inpaint.densify_mask` and the other mask methods) keeps a few chosen
pixels; hole inpainting is the other half of the problem: most pixels are known and a few connected regions are
missing. :func:`hole_mask` draws such regions, reproducibly from a seed, as test cases for the inpainting
operators:

* ``'scratches'``: thin curved strokes (random cubic Bezier curves a few pixels wide), as on scanned prints;
* ``'text'``: rendered words at a few sizes (Pillow's default font, shipped with Pillow), as captions or
  watermarks to remove;
* ``'blobs'``: a few smooth random shapes (star-shaped, their outline a sum of low harmonics), as objects to
  remove.

Everything is drawn without anti-aliasing: a pixel is missing or known. The mask is ``True`` (1) where a pixel
is missing, the opposite of the inpainting functions' masks (1 = known): inpaint with ``mask=~holes``.
"""
from __future__ import annotations

import functools
import math
from numbers import Integral, Real

import numpy as np
import torch

from ..errors import UserInputError
from ..rng import as_generator

__all__ = ["HOLE_KINDS", "hole_mask", "star_radius"]

#: The kinds of holes :func:`hole_mask` draws.
HOLE_KINDS = ("scratches", "text", "blobs")

#: The largest coverage: beyond half of the image the known pixels are the sparse ones (a mask method's case).
MAX_COVERAGE = 0.5
#: The smallest image side: the smallest font and stroke still fit.
MIN_SIDE = 16
# Random places a word tries before it may overlap an earlier one.
_PLACES = 20

# Words of the text holes: captions, stamps and watermarks, mixed case and digits.
_WORDS = ("sample", "draft", "photo", "proof", "PREVIEW", "copy", "private", "Holiday", "summer", "garden",
          "river", "stone", "light", "north", "Lorem", "ipsum", "dolor", "amet", "No. 17", "page 3", "tag",
          "CONFIDENTIAL", "view", "pdeflow", "walk", "Sunday", "beach", "2nd", "archive", "scan", "film",
          "memories", "forest", "ok", "label", "45", "mountain", "Hello", "city", "night")


def _check_shape(shape, who: str) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if isinstance(shape, Integral) and not isinstance(shape, bool):
        shape = (int(shape), int(shape))
    if (not isinstance(shape, (tuple, list)) or len(shape) < 2
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1 for s in shape)):
        raise UserInputError(f"{who}: shape must be an int or a tuple of at least 2 positive ints (..., H, W), "
                             f"got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if min(shape[-2:]) < MIN_SIDE:
        raise UserInputError(f"{who}: the image must be at least {MIN_SIDE} x {MIN_SIDE} pixels, got shape "
                             f"{shape!r} (H, W = {shape[-2]}, {shape[-1]})")
    return shape


def _check_coverage(coverage, n: int, who: str) -> int:
    if isinstance(coverage, bool) or not isinstance(coverage, Real) or not math.isfinite(float(coverage)):
        raise UserInputError(f"{who}: coverage must be a number in (0, {MAX_COVERAGE}], got {coverage!r}")
    if not 0.0 < float(coverage) <= MAX_COVERAGE:
        raise UserInputError(f"{who}: coverage must be in (0, {MAX_COVERAGE}] (the fraction of missing pixels; "
                             f"for sparse known pixels use a mask method), got {coverage!r}")
    k = round(float(coverage) * n)
    if k < 1:
        raise UserInputError(f"{who}: coverage {coverage!r} of {n} pixels is less than one missing pixel")
    return k


# ---------------------------------------------------------------------------
# Shapes: each returns (top, left, key), key a float array over its bounding box, inf outside the shape; the
# shape's pixels are added in increasing key, so a shape cut short keeps its start (a shorter stroke, the first
# letters of a word, a smaller blob).
# ---------------------------------------------------------------------------

def _scratch(rng: np.random.Generator, holes: np.ndarray):
    """A cubic Bezier stroke; key: the index of the first segment covering the pixel."""
    from PIL import Image, ImageDraw

    H, W = holes.shape
    side = min(H, W)
    width = int(rng.integers(1, 3)) if side < 64 else int(rng.integers(2, 6))
    length = rng.uniform(0.15, 0.5) * side
    theta = rng.uniform(0.0, 2.0 * math.pi)
    p0 = np.array([rng.uniform(0, W), rng.uniform(0, H)])
    d = length * np.array([math.cos(theta), math.sin(theta)])
    normal = np.array([-d[1], d[0]])
    p1 = p0 + d / 3 + rng.uniform(-0.4, 0.4) * normal
    p2 = p0 + 2 * d / 3 + rng.uniform(-0.4, 0.4) * normal
    p3 = p0 + d
    t = np.linspace(0.0, 1.0, int(math.ceil(1.5 * length)) + 2)[:, None]
    pts = ((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3)
    lo = np.floor(pts.min(0) - width).astype(int)
    hi = np.ceil(pts.max(0) + width).astype(int) + 1
    left, top = max(lo[0], 0), max(lo[1], 0)
    right, bottom = min(hi[0], W), min(hi[1], H)
    if right <= left or bottom <= top:
        return 0, 0, np.full((1, 1), np.inf)
    img = Image.new("I", (right - left, bottom - top), 0)
    draw = ImageDraw.Draw(img)
    local = pts - np.array([left, top])
    # drawn last to first, so each pixel keeps the first segment that covers it
    for k in range(len(local) - 2, -1, -1):
        draw.line([tuple(local[k]), tuple(local[k + 1])], fill=k + 1, width=width)
        if width > 2:   # round the joints: a disc at each point
            (x, y), r = local[k], width / 2
            draw.ellipse([x - r + 0.5, y - r + 0.5, x + r - 0.5, y + r - 0.5], fill=k + 1)
    lab = np.asarray(img, dtype=np.float64)
    return top, left, np.where(lab > 0, lab, np.inf)


@functools.lru_cache(maxsize=16)
def _font(size: int):
    """Pillow's default font at ``size`` pixels (its scalable font where Pillow has FreeType), and the factor the
    rendering is enlarged by (the bitmap font of a Pillow without FreeType has one size)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size), 1
    except (ImportError, OSError, TypeError):   # no FreeType (or an old Pillow): the bitmap font, enlarged
        return ImageFont.load_default(), max(1, round(size / 11))


def _word(rng: np.random.Generator, holes: np.ndarray):
    """A word at one of three sizes, where it overlaps no earlier word if one of a few random places allows;
    key: column, then row (a word cut short keeps its first letters)."""
    from PIL import Image, ImageDraw

    H, W = holes.shape
    side = min(H, W)
    size = max(10, round(side * float(rng.choice([0.05, 0.08, 0.12]))))
    font, scale = _font(size)
    word = str(rng.choice(_WORDS))
    stroke = max(0, round(size / 16)) if scale == 1 else 0
    probe = ImageDraw.Draw(Image.new("1", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), word, font=font, stroke_width=stroke)
    img = Image.new("1", (x1 - x0 + 2, y1 - y0 + 2), 0)
    ImageDraw.Draw(img).text((1 - x0, 1 - y0), word, font=font, fill=1, stroke_width=stroke, stroke_fill=1)
    ink = np.asarray(img, dtype=bool)
    if scale > 1:
        ink = ink.repeat(scale, 0).repeat(scale, 1)
    h, w = ink.shape
    for _ in range(_PLACES):   # anywhere the word fits (else clipped by the border), apart from other words
        top = int(rng.integers(0, max(H - h, 0) + 1)) - max(h - H, 0) // 2
        left = int(rng.integers(0, max(W - w, 0) + 1)) - max(w - W, 0) // 2
        if not holes[max(top, 0):top + h, max(left, 0):left + w].any():
            break
    t0, l0 = max(top, 0), max(left, 0)
    ink = ink[t0 - top:min(h, H - top), l0 - left:min(w, W - left)]
    rows, cols = np.indices(ink.shape)
    key = np.where(ink, (cols * ink.shape[0] + rows).astype(np.float64), np.inf)
    return t0, l0, key


def _blob(rng: np.random.Generator, holes: np.ndarray):
    """A smooth star-shaped region around a random centre; key: the radius relative to the outline in that
    direction (the shape's pixels in increasing key are its level sets, growing from the centre)."""
    H, W = holes.shape
    cy, cx = rng.uniform(0, H), rng.uniform(0, W)
    aspect, angle = rng.uniform(0.5, 1.0), rng.uniform(0.0, math.pi)
    harmonics = np.arange(2, 7)
    amp = rng.uniform(0.0, 0.5, harmonics.size) / harmonics     # outline radius stays above 0.27 of its mean
    phase = rng.uniform(0.0, 2.0 * math.pi, harmonics.size)
    return 0, 0, _star_radius(H, W, cy, cx, aspect, angle, amp, phase)


def _star_radius(H: int, W: int, cy: float, cx: float, aspect: float, angle: float, amp: np.ndarray,
                 phase: np.ndarray) -> np.ndarray:
    """:func:`star_radius` on checked arguments, as a float64 NumPy array."""
    harmonics = np.arange(2, 2 + amp.size)
    y, x = np.ogrid[0:H, 0:W]
    dy, dx = y + 0.5 - cy, x + 0.5 - cx
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, (-s * dx + c * dy) / aspect
    phi = np.arctan2(v, u)
    outline = 1.0 + (amp[:, None, None] * np.cos(harmonics[:, None, None] * phi + phase[:, None, None])).sum(0)
    return np.hypot(u, v) / outline


def _real(value, name: str, who: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) \
            or (positive and not value > 0):
        raise UserInputError(f"{who}: {name} must be a finite number{' > 0' if positive else ''}, got {value!r}")
    return float(value)


def star_radius(shape, centre, *, aspect: float = 1.0, angle: float = 0.0, amplitudes=(),
                phases=None) -> torch.Tensor:
    """Each pixel's distance to ``centre`` over the radius of a smooth star-shaped outline: the blobs' shape.

    The pixels below ``t`` form a smooth star-shaped region about ``centre``: an ellipse of half-axes ``t`` and
    ``aspect t`` (pixels) turned by ``angle``, its radius in the direction ``phi`` scaled by ``1 + sum_j a_j
    cos((j + 2) phi + b_j)`` (harmonics 2, 3, ...). The pixels taken in increasing value grow the region from
    its centre outwards: :func:`hole_mask` cuts its ``'blobs'`` to an exact pixel count this way, and so can a
    caller drawing its own region (a removed object of a given area).

    Parameters
    ----------
    shape : int or tuple of int
        ``(H, W)`` (an int ``n``: ``(n, n)``), at least 16 x 16.
    centre : tuple of float
        ``(cy, cx)`` in pixels (pixel ``(i, j)`` has its centre at ``(i + 0.5, j + 0.5)``); may lie outside.
    aspect : float, optional
        Ratio of the second half-axis to the first, ``> 0`` (default 1: a circle before the harmonics).
    angle : float, optional
        Angle of the first half-axis from the W axis towards the H axis, in radians.
    amplitudes : sequence of float, optional
        ``a_j`` of harmonics 2, 3, ...; their absolute values must sum to less than 1 (so the outline keeps
        a positive radius).
    phases : sequence of float, optional
        ``b_j``, one per amplitude (default zeros).

    Returns
    -------
    Tensor, shape (H, W), float64
        The distance to ``centre`` (in the ellipse's metric) over the outline's radius in that direction.

    Raises
    ------
    UserInputError
        For a bad ``shape``, a ``centre`` that is not two finite numbers, ``aspect <= 0``, amplitudes whose
        absolute values sum to 1 or more, or ``phases`` of another length.

    Examples
    --------
    >>> from pdeflow.inpaint.holes import star_radius
    >>> r = star_radius((16, 16), (8.0, 8.0))             # circles about the image's centre
    >>> round(float(r[8, 12]), 3)                         # pixel (8, 12): its centre 4.5 right, 0.5 down
    4.528
    >>> holes = star_radius((32, 32), (16, 16), aspect=0.6, amplitudes=(0.2,)).flatten().argsort()[:100]
    >>> holes.shape                                      # the 100 pixels of a region grown from its centre
    torch.Size([100])
    """
    who = "star_radius"
    if isinstance(shape, (tuple, list, torch.Size)) and len(shape) != 2:
        raise UserInputError(f"{who}: shape must be an int or (H, W), got {shape!r}")
    H, W = _check_shape(shape, who)
    try:
        cy, cx = (float(c) for c in centre)
    except (TypeError, ValueError):
        raise UserInputError(f"{who}: centre must be two numbers (cy, cx), got {centre!r}") from None
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise UserInputError(f"{who}: centre must be finite, got {centre!r}")
    aspect = _real(aspect, "aspect", who, positive=True)
    angle = _real(angle, "angle", who)
    try:
        amp = np.asarray([float(a) for a in amplitudes], dtype=np.float64)
        phase = np.zeros_like(amp) if phases is None else np.asarray([float(b) for b in phases], dtype=np.float64)
    except (TypeError, ValueError):
        raise UserInputError(f"{who}: amplitudes and phases must be sequences of numbers, got {amplitudes!r} "
                             f"and {phases!r}") from None
    if phase.shape != amp.shape:
        raise UserInputError(f"{who}: phases must give one value per amplitude ({amp.size}), got {phase.size}")
    if not (np.isfinite(amp).all() and np.isfinite(phase).all()) or np.abs(amp).sum() >= 1:
        raise UserInputError(f"{who}: amplitudes must be finite with absolute values summing to less than 1 (a "
                             f"positive outline radius), got {amplitudes!r}")
    return torch.from_numpy(_star_radius(H, W, cy, cx, aspect, angle, amp, phase))


_SHAPES = {"scratches": _scratch, "text": _word, "blobs": _blob}


def _one_mask(rng: np.random.Generator, H: int, W: int, kind: str, k: int, who: str) -> np.ndarray:
    """One (H, W) mask with exactly ``k`` missing pixels: shapes are added until the next one would exceed ``k``,
    which is cut to the pixels still needed (in its key's order)."""
    holes = np.zeros((H, W), dtype=bool)
    count = 0
    shape_of = _SHAPES[kind]
    if kind == "blobs":   # a few blobs, their areas a random split of k (each cut to its share)
        n = int(rng.integers(2, 6))
        shares = np.diff(np.round(np.cumsum(np.r_[0.0, rng.dirichlet(np.full(n, 2.0))]) * k)).astype(int)
    idle = 0
    while count < k:
        top, left, key = shape_of(rng, holes)
        limit = k - count
        if kind == "blobs":
            limit = min(limit, int(shares[0]) if shares.size else limit)
            shares = shares[1:]
            if limit <= 0:
                continue
        region = holes[top:top + key.shape[0], left:left + key.shape[1]]
        new = np.isfinite(key) & ~region
        rows, cols = np.nonzero(new)
        if rows.size == 0:
            idle += 1
            if idle > 10_000:   # cannot happen below MAX_COVERAGE; a guard against an endless loop
                raise RuntimeError(f"{who}: no free pixel left for {kind!r} after 10000 shapes")
            continue
        idle = 0
        if rows.size > limit:
            keep = np.argsort(key[rows, cols], kind="stable")[:limit]
            rows, cols = rows[keep], cols[keep]
        region[rows, cols] = True
        count += rows.size
    return holes


def hole_mask(shape, kind: str = "scratches", coverage: float = 0.05, *, generator=None,
              dtype: torch.dtype = torch.bool, device=None) -> torch.Tensor:
    """A mask of missing regions: scratches, text or blobs covering exactly ``coverage`` of each image.

    Shapes of the kind are drawn at random positions (without anti-aliasing) and added until
    ``round(coverage * H * W)`` pixels are missing; the last shape is cut short to hit that count exactly (a
    scratch keeps its start, a word its first letters, a blob its inner part), so the coverage is exact to the
    pixel.

    Parameters
    ----------
    shape : int or tuple of int
        ``(H, W)``, ``(1, H, W)``, ``(B, 1, H, W)`` or any ``(..., H, W)``; each ``(H, W)`` slice gets its own
        mask. An int ``n`` means ``(n, n)``. ``H`` and ``W`` at least 16.
    kind : {'scratches', 'text', 'blobs'}, optional
        What is missing (:data:`HOLE_KINDS`):

        * ``'scratches'``: cubic Bezier strokes, 2 to 5 pixels wide (1 to 2 below 64 pixels), each as long as
          0.15 to 0.5 of the shorter image side;
        * ``'text'``: words of Pillow's default font at 5, 8 or 12 % of the shorter side (at least 10 pixels),
          their strokes thickened by a sixteenth of the size;
        * ``'blobs'``: 2 to 5 smooth star-shaped regions (an ellipse's outline perturbed by harmonics 2 to 6),
          their areas a random split of the missing pixels.
    coverage : float in (0, 0.5], optional
        Fraction of missing pixels (default 0.05): exactly ``round(coverage * H * W)`` per image, at least one.
    generator : None, int or torch.Generator, optional
        Seed or CPU generator (default: torch's global generator); the same seed gives the same masks.
    dtype, device : optional
        Of the returned mask (default ``torch.bool`` on the CPU); a floating dtype gives 1.0 / 0.0.

    Returns
    -------
    Tensor of ``shape``
        True (1) on missing pixels, False (0) on known ones: the inpainting functions' mask (1 = known) is
        ``~holes`` (or ``1 - holes`` for a float mask).

    Raises
    ------
    UserInputError
        For a shape that is not ``(..., H, W)`` with ``H, W >= 16``, an unknown ``kind``, or a ``coverage``
        outside (0, 0.5] or below one pixel.

    References
    ----------
    .. [1] M. Bertalmio, G. Sapiro, V. Caselles, C. Ballester, "Image inpainting", SIGGRAPH 2000 (scratches and
       overlaid text as the regions to restore).
    .. [2] A. Telea, "An image inpainting technique based on the fast marching method", Journal of Graphics
       Tools 9(1), 2004.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> from pdeflow.inpaint.holes import hole_mask
    >>> holes = hole_mask((64, 64), "text", 0.05, generator=0)
    >>> holes.dtype, int(holes.sum()), round(0.05 * 64 * 64)
    (torch.bool, 205, 205)
    >>> torch.equal(holes, hole_mask((64, 64), "text", 0.05, generator=0))
    True
    >>> f = torch.linspace(0, 1, 64).expand(64, 64)
    >>> u = inpaint_diffusion(f, ~holes)                             # 1 = known: the complement of the holes
    >>> bool((u - f).abs().max() < 1e-4)                   # a linear ramp is restored
    True
    >>> hole_mask((64, 64), "stains")
    Traceback (most recent call last):
    ...
    pdeflow.errors.UserInputError: hole_mask: kind must be one of 'scratches', 'text', 'blobs', got 'stains'
    """
    who = "hole_mask"
    shape = _check_shape(shape, who)
    if not isinstance(kind, str) or kind not in HOLE_KINDS:
        raise UserInputError(f"{who}: kind must be one of {', '.join(map(repr, HOLE_KINDS))}, got {kind!r}")
    H, W = shape[-2:]
    k = _check_coverage(coverage, H * W, who)
    if not isinstance(dtype, torch.dtype):
        raise UserInputError(f"{who}: dtype must be a torch.dtype, got {dtype!r}")
    gen = as_generator(generator, who)
    lead = shape[:-2]
    n = math.prod(lead)
    # one NumPy generator per mask, seeded from the torch generator (the library's one randomness convention)
    seeds = torch.randint(0, 2 ** 62, (n,), generator=gen).tolist()
    out = np.stack([_one_mask(np.random.default_rng(s), H, W, kind, k, who) for s in seeds])
    return torch.from_numpy(out.reshape(shape)).to(device=device, dtype=dtype)
