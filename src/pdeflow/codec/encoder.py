"""The encoder: a mask, the values to store on it, their coding, and the number of points that meets a budget.

For a number ``K`` of known pixels the encoder

1. takes the mask of ``K`` points on a lattice of step ``s`` (:func:`~pdeflow.codec.spatial.lattice_mask`:
   densification by the error of the decoder's operator, one mask for all channels; the step follows the
   points' expected spacing, :data:`LATTICE_SPACING`);
2. optimises the stored values (:func:`~pdeflow.inpaint.tonal.optimise_tonal`, per luma-chroma channel for
   colour), freely, then on ``q`` levels spanning the optimum's range (:data:`TONAL_ROUNDS`);
3. codes the mask and the level indices (:mod:`pdeflow.codec.entropy`) behind the header
   (:mod:`pdeflow.codec.format`).

Rate control: one densification to a little more points than the budget's estimate records the order of the
points; its prefixes are the masks of fewer points. Bisection finds the largest prefix that fits with the
image's own values (coding only, no solve); then the values are optimised and the count shrunk (by the cost per
point, at least 2 % a step; or, once, grown into a slack over :data:`SLACK`) until the file fits, each
optimisation warm-started from the last. If optimised values do not fit in a few steps, the file stores the
image's own values at the bisection's count. Where the automatic lattice step is 2, the full pixel grid is
planned too, the rate control's first step (optimised, quantised values at the count that fits with the own
values) decoded on both, and the grid reproducing the image better kept (the own values' inpainting is no
guide: optimised values on both sides of edges make the full grid win where it does not show; see the codec
guide). A constant image is stored as one exact point, whatever the budget (:func:`encode`).

Two layers (``split``): the inpainting layer is coded at a share of the budget and decoded; the rest codes the
residual (image minus decoded inpainting) with the wavelet layer of :mod:`pdeflow.codec.residual` (finest
quantisation step that fits). By default the shares of :data:`SPLITS` are tried (1: inpainting alone, a
version-1 file; 0: wavelet layer alone), keeping the file of least squared error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import UserInputError
from ..progress import progress_bar
from .colour import channel_ranges, to_luma_chroma
from .decoder import add_residual, level_values, reconstruct
from .entropy import RangeWriter, encode_mask, encode_values, morton_order
from .format import (
    LAYER_INPAINTING,
    LAYER_RESIDUAL,
    MAX_PIXELS,
    VALUE_UNIT,
    Header,
    budget_bytes,
    read_header,
    with_layout,
    write_header,
)
from .images import prepare_image, read_image_layout
from .operators import CodecOperator, codec_operator, least_bytes
from .residual import code_residual
from .spatial import lattice_mask, lattice_to_pixels, prefix_mask

__all__ = ["encode", "EncodeResult", "code_image", "auto_lattice", "STEP_RATIO", "LATTICE_SPACING",
           "SPLITS"]

#: The automatic quantisation step ``sqrt(12 STEP_RATIO mse)``, ``mse`` that of the inpainting from the image's
#: own values: the rounding error (``step^2 / 12``) a fixed share of the inpainting's error (16 levels on
#: selection crops imply 0.1 to 1.4, geometric mean about 0.17): finer levels for smooth images.
STEP_RATIO = 0.15
#: Most levels per channel with the automatic step.
MAX_LEVELS = 1024
#: Solver tolerance exponent written to the header (the decoder solves to ``10**-t``; the loosest that keeps the
#: PSNR of tighter solves: docs/results/codec.md, "Encoder settings").
TOL_EXPONENT = 4
#: The automatic lattice step is the expected spacing of the known pixels, ``sqrt(H W / K)``, over this
#: (chosen on selection photos: steps 1 to 4 at 0.05, 0.1 and 0.2 bpp on 256 px crops).
LATTICE_SPACING = 3.5
#: Unused share of the budget above which the encoder tries once more with more points.
SLACK = 0.015
#: Most densifications per lattice: the first to the budget's estimate, again (further) while all its points fit.
DENSIFY_TRIES = 3
#: Default number of densification stages with tonally optimised values.
TONAL_STAGES = 0
#: CGLS iterations of a tonal optimisation warm-started from the values of a nearby count (rate control's later
#: steps; chosen as :data:`~pdeflow.codec.operators.TONAL`).
WARM_ITER = 5
#: Rounds of the quantisation-aware tonal optimisation (1: the optimum rounded to the levels; the rounds
#: gained nothing in rate and distortion on selection crops and double the tonal optimisation's time).
TONAL_ROUNDS = 1
#: The inpainting layer's shares of the budget that the encoder tries by default (the rest codes the residual);
#: it keeps the file of the smallest squared error.
SPLITS = (1.0, 0.0)
#: Bytes of a two-layer file beyond the inpainting layer's own: the layers field and its payload's word count.
LAYER_BYTES = 5


@dataclass
class EncodeResult:
    """The coded file and what the encoder knows about it.

    Attributes
    ----------
    data : bytes
        The file.
    known : int
        Known pixels.
    mask_bytes, value_bytes : float
        The payload's share of the mask and of the values (bytes; the range coder's words are shared).
    reconstruction : Tensor
        What :func:`~pdeflow.codec.decode` returns for ``data``.
    values : Tensor
        The stored channels before quantisation (C, H, W) float64: the optimised values on the mask.
    residual_bytes : int
        The residual layer's section (0: none). A file of the wavelet layer alone has ``known`` 0, no mask or
        value bytes, and ``values`` zero.
    split : float
        The inpainting layer's share of the budget that the encoder chose (1: the inpainting layer alone).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.codec import decode, encode
    >>> f = torch.linspace(0, 1, 32 * 32).reshape(32, 32)
    >>> r = encode(f, bpp=0.5, full_output=True)
    >>> len(r.data) <= 0.5 * 32 * 32 / 8, r.known > 0, r.mask_bytes + r.value_bytes <= len(r.data)
    (True, True, True)
    >>> r.reconstruction.shape, r.values.shape
    (torch.Size([1, 32, 32]), torch.Size([1, 32, 32]))
    >>> bool(torch.equal(r.reconstruction, decode(r.data)))
    True
    """

    data: bytes
    known: int
    mask_bytes: float
    value_bytes: float
    reconstruction: torch.Tensor
    values: torch.Tensor
    residual_bytes: int = 0
    split: float = 1.0


def _range_units(v: np.ndarray, allowed: tuple[float, float]) -> tuple[int, int]:
    """The value range ``(lo, hi)`` in header units that covers ``v``, within ``allowed`` widened by a
    quarter of its span (optimised values overshoot the image's range a little)."""
    span = allowed[1] - allowed[0]
    a, b = allowed[0] - span / 4, allowed[1] + span / 4
    lo = math.floor(max(a, float(v.min())) * VALUE_UNIT)
    hi = math.ceil(min(b, float(v.max())) * VALUE_UNIT)
    return lo, max(hi, lo + 1)


def code_image(f: torch.Tensor, depth: int, grid: np.ndarray, levels, *, lattice: int = 1, tonal: bool = True,
               values0=None, reconstruct_image: bool = True,
               operator: str | CodecOperator = "diffusion") -> EncodeResult:
    """Code ``f`` (C, H, W) float64 RGB or grey with the lattice mask ``grid`` (ceil(H/s), ceil(W/s)) of step
    ``lattice`` for the inpainting ``operator`` (a name or :data:`~pdeflow.codec.CODEC_OPERATORS` entry):
    ``levels`` per channel (ints) or a quantisation step (float) giving them; ``values0``: the tonal
    optimisation's warm start.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from pdeflow.codec import decode
    >>> from pdeflow.codec.encoder import code_image
    >>> from pdeflow.codec.images import prepare_image
    >>> f, depth = prepare_image(torch.linspace(0, 1, 32 * 32).reshape(32, 32))
    >>> grid = np.zeros((8, 8), bool)   # lattice step 4: an (8, 8) grid
    >>> grid[::2, ::2] = True
    >>> r = code_image(f, depth, grid, (16,), lattice=4)
    >>> r.known, r.reconstruction.shape
    (16, torch.Size([1, 32, 32]))
    >>> bool(torch.equal(r.reconstruction, decode(r.data)))
    True
    """
    operator = codec_operator(operator, "code_image")
    C, H, W = f.shape
    s = lattice
    store = to_luma_chroma(f) if C == 3 else f
    m = torch.from_numpy(lattice_to_pixels(grid, s, H, W).astype(np.float64))
    if tonal:
        from ..inpaint import optimise_tonal
        start = None if values0 is None else torch.where(m > 0, values0, store)
        own = operator.tonal
        settings = own if values0 is None else {**own, "max_iter": WARM_ITER}
        store = optimise_tonal(store, m, operator=operator.name, values0=start, **settings)
    ranges = [_range_units(store[c][m > 0].numpy(), allowed) for c, allowed in enumerate(channel_ranges(C))]
    if isinstance(levels, float):      # a quantisation step: the levels that span each channel's range
        levels = tuple(int(min(MAX_LEVELS, max(4, round((hi - lo) / VALUE_UNIT / levels) + 1)))
                       for lo, hi in ranges)
    if tonal and TONAL_ROUNDS > 1:
        # quantisation-aware: the values fixed to the levels in rounds, the free ones re-optimised
        lv = [torch.from_numpy(level_values(np.arange(int(levels[c])), int(levels[c]), *ranges[c]))
              for c in range(C)]
        store = optimise_tonal(f if C == 1 else to_luma_chroma(f), m, operator=operator.name, levels=lv,
                               values0=store, rounds=TONAL_ROUNDS, **operator.tonal)
    cy, cx = np.nonzero(grid)
    order = morton_order(cy, cx)
    cy, cx = cy[order], cx[order]
    y, x = cy * s, cx * s
    K = len(y)
    header = Header(H, W, C, depth, 0 if C == 1 else 1, operator.id, operator.pack(), TOL_EXPONENT, s, K)
    alone = RangeWriter()              # the mask's share, for the report (coded again below)
    encode_mask(alone, grid)
    mask_words = len(alone.words())
    w = RangeWriter()
    encode_mask(w, grid)
    idx = []
    vals = store[:, torch.from_numpy(y), torch.from_numpy(x)].numpy()
    for c, allowed in enumerate(channel_ranges(C)):
        q = int(levels[c])
        lo, hi = ranges[c]
        step = (hi - lo) / VALUE_UNIT / (q - 1)
        i = np.clip(np.rint((vals[c] - lo / VALUE_UNIT) / step), 0, q - 1).astype(np.int64)
        # the nearest level by the decoder's own formula (rint's choice can miss it by round-off)
        lv = level_values(i, q, lo, hi)
        for j in (np.minimum(i + 1, q - 1), np.maximum(i - 1, 0)):
            better = np.abs(level_values(j, q, lo, hi) - vals[c]) < np.abs(lv - vals[c])
            i = np.where(better, j, i)
            lv = level_values(i, q, lo, hi)
        header.q.append(q), header.lo.append(lo), header.hi.append(hi)
        encode_values(w, i, q)
        idx.append(i)
    payload = w.words()
    data = write_header(header, payload)
    rec = reconstruct(header, y, x, idx) if reconstruct_image else None
    return EncodeResult(data, K, mask_words, len(payload) - mask_words, rec, store)


def _levels(levels, C: int, who: str):
    lv = (levels,) * C if isinstance(levels, int) and not isinstance(levels, bool) else tuple(levels)
    if len(lv) != C or any(isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 65535 for v in lv):
        raise UserInputError(f"{who}: levels must be an int or {C} ints in [2, 65535], got {levels!r}")
    return lv


def encode(image, *, bpp: float | None = None, size: int | None = None, levels=None, lattice: int | None = None,
           tonal: bool = True, tonal_stages: int | None = None, operator: str = "diffusion",
           split=None, max_pixels: int | None = MAX_PIXELS, progress: bool = False, full_output: bool = False,
           channel_axis: int | None = None):
    """Compress an image by sparse inpainting: a few pixels, their optimised values, and the inpainting.

    Parameters
    ----------
    image : Tensor or ndarray
        (H, W) or (C, H, W), C = 1 (grey) or 3 (RGB): floating point in [0, 1], or a uint8 or uint16 NumPy
        array (a 16-bit image records its depth in the file). Also (H, W, 3), channels last, as
        ``np.asarray(PIL.Image.open(path))`` gives it (``channel_axis``); the file records the layout, so
        :func:`~pdeflow.codec.decode` and ``full_output``'s images give it back ``(H, W, 3)``.
    bpp : float, optional
        Budget in bits per pixel: the file has at most ``bpp H W / 8`` bytes.
    size : int, optional
        Budget in bytes (instead of ``bpp``).
    levels : int or sequence of int, optional
        Quantisation levels of the stored values (per luma-chroma channel for colour). Default: levels one
        step apart spanning each channel's values, the step from the inpainting's error (:data:`STEP_RATIO`).
    lattice : int, optional
        Step of the known pixels' lattice (1: any pixel). Default: the known pixels' expected spacing for the
        budget over :data:`LATTICE_SPACING` (sparser masks on coarser lattices).
    tonal : bool, optional
        Optimise the stored values (default True) instead of storing the image's own.
    tonal_stages : int, optional
        Densification stages that measure the error of the tonally optimised inpainting (default
        :data:`TONAL_STAGES`; 0: the image's own values).
    operator : {"diffusion", "eed", "shepard"}, optional
        The decoder's inpainting, recorded in the file (:data:`pdeflow.codec.CODEC_OPERATORS`): homogeneous
        diffusion (default), edge-enhancing diffusion (:func:`pdeflow.inpaint.inpaint_eed`: sharper edges at
        the same size, mask and values chosen for it; the encoder takes several times as long, the decoder
        about twice) or Gaussian-weighted Shepard interpolation (:func:`pdeflow.inpaint.inpaint_shepard`: no
        equation solved).
    split : float or sequence of float, optional
        The inpainting layer's share of the budget, in [0, 1]; the rest codes the residual (image minus
        decoded inpainting) with a wavelet layer (:mod:`pdeflow.codec.residual`). 1: inpainting alone (a
        version-1 file); 0: wavelet layer alone. A sequence: each is tried, the file of least squared error
        kept. Default :data:`SPLITS`.
    max_pixels : int or None, optional
        Largest image (``H W``) accepted, checked first: by default :data:`~pdeflow.codec.format.MAX_PIXELS`,
        :func:`~pdeflow.codec.decode`'s limit, so no file is written that the decoder refuses by default;
        None lifts it (decode such a file with the same ``max_pixels``).
    progress : bool, optional
        Report progress on stderr (the densification and the rate control's steps); default False.
    full_output : bool, optional
        Return an :class:`EncodeResult` instead of the bytes.
    channel_axis : int, optional
        Where ``image``'s channels are: ``0`` for ``(C, H, W)``, or ``-1``: channels last, ``(H, W, C)``
        (scikit-image, imageio, Pillow), recorded in the file (flag bit
        :data:`~pdeflow.codec.format.CHANNELS_LAST`). Default: the layout rule of
        :func:`pdeflow.layout.read_layout` (a 3-D ``(H, W, 3)`` is channels last, with a
        :class:`~pdeflow.layout.ChannelsWarning`).

    Returns
    -------
    bytes
        The file (format: :mod:`pdeflow.codec.format`); an :class:`EncodeResult` with ``full_output``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.codec import encode
    >>> f = torch.linspace(0, 1, 64 * 64).reshape(64, 64)
    >>> len(encode(f, bpp=0.1)) <= 0.1 * 64 * 64 / 8
    True
    >>> from pdeflow.codec import decode
    >>> decode(encode(torch.rand(32, 32, 3), bpp=1.0, channel_axis=-1)).shape      # the layout it was given
    torch.Size([32, 32, 3])
    """
    image, layout = read_image_layout(image, channel_axis, "encode")     # the file records what it read
    out = _encode_image(image, bpp=bpp, size=size, levels=levels, lattice=lattice, tonal=tonal,
                        tonal_stages=tonal_stages, operator=operator, split=split, max_pixels=max_pixels,
                        progress=progress, full_output=full_output)
    if not layout.channels_last:
        return out
    if not full_output:
        return with_layout(out, True)
    return layout.restore(replace(out, data=with_layout(out.data, True)))


def _encode_image(image, *, bpp, size, levels, lattice, tonal, tonal_stages, operator, split, max_pixels, progress,
                  full_output):
    """:func:`encode` of an image with its channels first (``(H, W)`` or ``(C, H, W)``)."""
    who = "encode"
    if not isinstance(progress, bool):
        raise UserInputError(f"{who}: progress must be True or False, got {progress!r}")
    f, depth = prepare_image(image, who, max_pixels=max_pixels)
    C, H, W = f.shape
    budget = _budget(bpp, size, H, W, who)
    lv = None if levels is None else _levels(levels, C, who)
    if not isinstance(tonal, bool):
        raise UserInputError(f"{who}: tonal must be True or False, got {tonal!r}")
    if lattice is not None and (isinstance(lattice, bool) or not isinstance(lattice, int)
                                or not 1 <= lattice <= 16):
        raise UserInputError(f"{who}: lattice must be an int in [1, 16] or None, got {lattice!r}")
    s = min(auto_lattice(budget, H, W, C) if lattice is None else lattice, H, W)
    entry = codec_operator(operator, who)      # the name's entry, once: the codec passes it on
    ts = TONAL_STAGES if tonal_stages is None else tonal_stages
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise UserInputError(f"{who}: tonal_stages must be an int >= 0, got {tonal_stages!r}")
    ts = ts if tonal else 0
    splits = _splits(split, who)
    job = _Job(f, depth, budget, lv, ts, tonal, entry, who, f"bpp={bpp!r}" if bpp is not None else f"size={size!r}")
    # a constant image is one exact point, whatever the split
    result = _reproduced(job, s)
    if result is None and splits != (1.0,):
        return _layers(job, splits, lattice, progress, full_output)
    # the lattice: the automatic step, or, where that is 2, any pixel (step 1) if its file decodes to the image
    # better (_encode): edges of piecewise-smooth images need points on both sides.
    # Coarser automatic steps are kept: step 1 costs too many bits per position there (docs/results/codec.md)
    lattices = [s, 1] if lattice is None and s == 2 else [s]
    if result is None:
        with progress_bar(total=len(lattices) + 1 + RATE_STEPS, enabled=progress, desc="encode", unit="step") as bar:
            result = _encode(job, lattices, bar)
    if full_output:
        result.reconstruction = _reconstruction(result.data)
    return result if full_output else result.data


@dataclass(frozen=True)
class _Job:
    """One encoding's checked arguments, read by every step: image ``f`` (C, H, W) float64, bit depth, byte
    budget, levels (None: automatic), tonal stages, whether values are optimised, operator entry, and for
    messages the function's and budget argument's names."""

    f: torch.Tensor
    depth: int
    budget: int
    levels: tuple | None
    tonal_stages: int
    tonal: bool
    operator: CodecOperator
    who: str
    arg: str


def _reproduced(job: _Job, s: int) -> EncodeResult | None:
    """The file of one point if it fits the budget and decodes to the image on its bit depth's levels (a
    constant image; any larger budget gives the same file), else None: more points would only add the tonal
    optimisation's over- and undershoots to an exact image."""
    f, depth, lv = job.f, job.depth, job.levels
    C, H, W = f.shape
    if bool((f.flatten(1).amax(1) != f.flatten(1).amin(1)).any()):
        return None
    gh, gw = -(-H // s), -(-W // s)
    single = np.zeros((gh, gw), bool)
    single[gh // 2, gw // 2] = True
    top = 255.0 if depth == 8 else 65535.0
    # a few levels on the value's 1/8192-wide range place it within 16-bit levels only by luck: 16-bit images
    # may need the finest levels (two bytes more)
    for levels in [lv or (4,) * C] + ([(65535,) * C] if lv is None and depth == 16 else []):
        r = code_image(f, depth, single, levels, lattice=s, tonal=False, operator=job.operator)
        if torch.equal(torch.round(r.reconstruction.double() * top), torch.round(f * top)):
            return r if len(r.data) <= job.budget else None
    return None


def _splits(split, who: str) -> tuple:
    if split is None:
        return SPLITS
    seq = split if isinstance(split, (tuple, list)) else (split,)
    if not seq or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1 for v in seq):
        raise UserInputError(f"{who}: split must be a number in [0, 1] or a sequence of them, got {split!r}")
    return tuple(float(v) for v in seq)


def _layers(job: _Job, splits, lattice, progress: bool, full_output: bool):
    """:func:`encode` with the residual layer: each share of ``splits`` for the inpainting layer, the rest for
    the residual; the file of the smallest squared error (the image as the decoder gives it)."""
    f = job.f
    best = too_small = None
    with progress_bar(total=len(splits), enabled=progress, desc="encode", unit="split") as bar:
        for share in splits:
            try:
                cand = _two_layers(job, share, lattice)
            except UserInputError as e:     # the share is too small for the inpainting layer
                cand, too_small = None, too_small or e
            bar.update(1)
            if cand is None:
                continue
            err = float((cand.reconstruction.double() - f).square().mean())
            if best is None or err < best[0]:
                best = (err, cand)
    if best is None and too_small is not None:
        raise too_small                     # names the least bpp or size the inpainting layer needs
    if best is None:
        raise UserInputError(f"{job.who}: a budget of {job.budget} bytes is too small for this image (no split of "
                             f"{splits} fits)")
    result = best[1]
    return result if full_output else result.data


def _two_layers(job: _Job, share: float, lattice):
    """The file with the inpainting layer at ``share`` of the budget and the residual in the rest, or None where
    the residual does not fit (UserInputError where the inpainting layer does not)."""
    f, depth, budget, operator = job.f, job.depth, job.budget, job.operator
    C, H, W = f.shape
    base = None
    if share > 0:
        b = int(share * budget) - (LAYER_BYTES if share < 1 else 0)
        s = min(auto_lattice(b, H, W, C) if lattice is None else lattice, H, W)
        lattices = [s, 1] if lattice is None and s == 2 else [s]
        with progress_bar(total=len(lattices) + 1 + RATE_STEPS, enabled=False) as bar:
            base = _encode(replace(job, budget=b), lattices, bar)
        base.reconstruction = _reconstruction(base.data)
        if share == 1:
            return base
        header, payload = read_header(base.data, None)
        u = base.reconstruction
        rest = budget - len(base.data) - LAYER_BYTES
        header.layers = LAYER_INPAINTING | LAYER_RESIDUAL
    else:
        # the operator asked for is recorded (not used: there is no inpainting layer)
        header = Header(H, W, C, depth, 0 if C == 1 else 1, operator.id, operator.pack(), TOL_EXPONENT, 1, 0,
                        [2] * C, [0] * C, [1] * C, layers=LAYER_RESIDUAL)
        payload, u = b"", None
        rest = budget - len(write_header(header, b"", b""))
    r = f if u is None else f - u.double()
    if C == 3:
        r = to_luma_chroma(r)
    section, rec = code_residual(r.numpy(), rest)
    if section is None:
        return None
    data = write_header(header, payload, section)
    return EncodeResult(data, header.known, base.mask_bytes if base else 0, base.value_bytes if base else 0,
                        add_residual(u, rec, header), base.values if base else torch.zeros_like(f),
                        len(section), share)


#: Most tonal optimisations of the rate control (each may shrink or, once, grow the count).
RATE_STEPS = 6


def _encode(job: _Job, lattices, bar) -> EncodeResult:
    """:func:`encode` on checked arguments: a plan per lattice, the better one, then the rate control."""
    f, depth, budget, tonal, operator = job.f, job.depth, job.budget, job.tonal, job.operator
    plans = []
    for step in lattices:
        plans.append(_plan(job, step))
        bar.update(1)
    first = None
    if len(plans) > 1:
        # each lattice's first rate-control step, decoded; the better one is kept (the own values' inpainting is
        # no guide: the full grid's points sit on both sides of edges, which the optimised values use)
        firsts = [code_image(f, depth, prefix_mask(q.rank, q.K), q.levels, lattice=q.lattice, tonal=tonal,
                             operator=operator) for q in plans]
        errors = [float((r.reconstruction.double() - f).square().mean()) for r in firsts]
        best = int(np.argmin(errors))
        p, first = plans[best], firsts[best]
    else:
        p = plans[0]
    bar.update(1)
    s, rank, K_hi, K, lv, overhead = p.lattice, p.rank, p.K_hi, p.K, p.levels, p.overhead
    own, small = p.own, p.small
    result, values0, grown = (own if len(own.data) <= budget else small), None, False
    for done in range(RATE_STEPS):
        if done == 0 and first is not None:     # that step is done
            r = first
        else:
            r = code_image(f, depth, prefix_mask(rank, K), lv, lattice=s, tonal=tonal, values0=values0,
                           reconstruct_image=False, operator=operator)
        bar.update(1)
        values0 = r.values
        per = max(len(r.data) - overhead, 1) / K
        if len(r.data) <= budget:
            result = r
            # well under the budget: one more try with the points the slack pays for
            more = min(K_hi, int(K + (budget - len(r.data)) / per) - 1)
            if grown or len(r.data) > budget * (1 - SLACK) or more <= K:
                break
            K, grown = more, True
            continue
        if grown:
            break
        # by the cost per point, and at least 2 % (the size is not exactly monotone in the count)
        K = max(1, min(int(K * (budget - overhead) / max(len(r.data) - overhead, 1)) - 1, int(K * 0.98)))
    bar.update(RATE_STEPS - 1 - done)        # the steps the rate control did not need
    return result


@dataclass
class _Plan:
    """A lattice's order of points and the count that fits the budget with the image's own values."""

    lattice: int
    rank: np.ndarray
    K_hi: int
    K: int
    levels: object
    overhead: int
    small: EncodeResult
    own: EncodeResult


def _too_small(who: str, budget: int, least: int, H: int, W: int, arg: str, what: str) -> str:
    """The message of a budget below the smallest file (``least`` bytes, ``what`` says why)."""
    if arg.startswith("bpp"):
        # the least bpp whose budget (budget_bytes) reaches ``least`` bytes
        return (f"{who}: {arg} gives a budget of {budget} bytes, too small for this image: its smallest file ({what}) "
                f"has {least} bytes; give bpp >= {8 * least / (H * W):.6g} (or size >= {least})")
    return (f"{who}: {arg} bytes is too small a budget for this image: its smallest file ({what}) has {least} "
            f"bytes; give size >= {least}")


def _plan(job: _Job, s: int) -> _Plan:
    """Densify on the lattice of step ``s`` and find the largest prefix that fits (sizes only)."""
    f, depth, budget, lv, operator, who, arg = job.f, job.depth, job.budget, job.levels, job.operator, job.who, job.arg
    C, H, W = f.shape
    gh, gw = -(-H // s), -(-W // s)
    N = gh * gw
    single = np.zeros((gh, gw), bool)
    single[gh // 2, gw // 2] = True
    small = code_image(f, depth, single, lv or (4,) * C, lattice=s, tonal=False, reconstruct_image=False,
                       operator=operator)
    if len(small.data) > budget:
        raise UserInputError(_too_small(who, budget, len(small.data), H, W, arg, "the header and one point"))
    least = least_bytes(operator, C, H, W)
    if least > budget:
        raise UserInputError(_too_small(who, budget, least, H, W, arg, f"one byte per "
                                        f"{operator.values_per_byte} values for {operator.name} inpainting, "
                                        "which bounds the decoder's work"))
    overhead = len(small.data)
    # one densification a little beyond the budget's estimate; its prefixes are the masks of fewer points
    K_hi = min(N, int(1.3 * _estimate(budget - overhead, N, C)) + 8)
    step = lv
    for _ in range(DENSIFY_TRIES):
        grid, rank = lattice_mask(f, K_hi, s, tonal_stages=job.tonal_stages, operator=operator)
        K_hi = int(grid.sum())
        if step is None:   # the quantisation step from the error of the inpainting at the estimated count
            lv = _auto_step(f, prefix_mask(rank, max(1, int(K_hi / 1.3))), s, operator)
        full = len(code_image(f, depth, grid, lv, lattice=s, tonal=False, reconstruct_image=False,
                              operator=operator).data)
        if full > budget or K_hi >= N:
            break
        # all fit: the estimate was short (chroma values cost less); densify again to the count the cost per
        # point extrapolates to, with the same margin
        K_hi = min(N, int(1.3 * K_hi * (budget - overhead) / max(full - overhead, 1)) + 8)

    # the largest prefix that fits with the image's own values (no solve: sizes only)
    lo, hi = 1, K_hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(code_image(f, depth, prefix_mask(rank, mid), lv, lattice=s, tonal=False,
                          reconstruct_image=False, operator=operator).data) <= budget:
            lo = mid
        else:
            hi = mid - 1
    K = lo
    # the image's own values at that count fit: the file if the optimised values never do
    own = code_image(f, depth, prefix_mask(rank, K), lv, lattice=s, tonal=False, reconstruct_image=False,
                     operator=operator)
    return _Plan(s, rank, K_hi, K, lv, overhead, small, own)


def _reconstruction(data: bytes) -> torch.Tensor:
    from .decoder import decode
    return decode(data, max_pixels=None, channel_axis=0)


def _own_mse(f: torch.Tensor, grid: np.ndarray, s: int, operator: CodecOperator) -> float:
    """Mean squared error of the inpainting of ``f`` from its own values on the lattice mask ``grid``."""
    from ..inpaint import inpaint
    C, H, W = f.shape
    m = torch.from_numpy(lattice_to_pixels(grid, s, H, W).astype(np.float64))
    return float((inpaint(f, m, method=operator.name, tol=1e-3) - f).square().mean())


def _auto_step(f: torch.Tensor, grid: np.ndarray, s: int, operator: CodecOperator) -> float:
    return math.sqrt(12 * STEP_RATIO * max(_own_mse(f, grid, s, operator), 1e-12))


def auto_lattice(budget: int, H: int, W: int, C: int) -> int:
    """The automatic lattice step for ``budget`` bytes on a (C, H, W) image: the known pixels' expected spacing
    over :data:`LATTICE_SPACING` (fixed-point steps: the step changes the positions' cost, so the count).
    :func:`encode` may replace a step of 2 by the full pixel grid.

    Examples
    --------
    >>> from pdeflow.codec.encoder import auto_lattice
    >>> auto_lattice(409, 256, 256, 1), auto_lattice(1638, 256, 256, 1)     # 0.05 and 0.2 bpp
    (4, 2)
    """
    s = 1
    for _ in range(4):
        K = _estimate(max(budget - 30, 1), -(-H // s) * -(-W // s), C)
        s = int(min(16, max(1, round(math.sqrt(H * W / K) / LATTICE_SPACING))))
    return s


def _estimate(payload: int, N: int, C: int) -> int:
    """Known pixels whose coded size is about ``payload`` bytes: positions at the uniform code's cost and
    about four bits per stored value."""
    lo, hi = 1, N
    while lo < hi:
        mid = (lo + hi + 1) // 2
        bits = (math.lgamma(N + 1) - math.lgamma(mid + 1) - math.lgamma(N - mid + 1)) / math.log(2) + 4 * C * mid
        if bits <= 8 * payload:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _budget(bpp, size, H: int, W: int, who: str) -> int:
    if (bpp is None) == (size is None):
        raise UserInputError(f"{who}: give exactly one of bpp and size")
    if bpp is not None:
        if isinstance(bpp, bool) or not isinstance(bpp, (int, float)) or not (0 < bpp < math.inf):
            raise UserInputError(f"{who}: bpp must be a positive finite number, got {bpp!r}")
        return budget_bytes(bpp, H, W)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise UserInputError(f"{who}: size must be a positive int (bytes), got {size!r}")
    return size
