"""The codec's second layer: what the inpainting misses, coded with a wavelet transform.

The residual ``r = f - u`` of the image ``f`` and the decoded inpainting ``u`` (or the image itself, when the
file has no inpainting layer) is transformed per channel (luma and chroma for colour, an orthonormal basis, so
the squared error is the same) with the CDF 9/7 wavelet in lifting form (:func:`forward`, :func:`inverse`:
``levels`` dyadic levels, whole-sample symmetric extension, any side length of at least 2 per level), its
coefficients quantised with one step ``Δ`` and a deadzone (:func:`quantise`: ``q = sign(c) floor(|c| / Δ)``,
back as ``sign(q) (|q| + δ) Δ``, the offset ``δ`` chosen by the encoder and stored), and the level indices
coded with context-adaptive models and the range coder (:func:`encode_bands`).

**Coefficient coding.** Subbands coarsest first (the low-pass band as vertical differences, the first row as
horizontal ones, so that an image without an inpainting layer does not pay for its mean at every
coefficient). Each band: one flag "all zero"; otherwise its coefficients in four interleaved phases (even
rows and columns, odd rows and columns, even rows and odd columns, odd rows and even columns), so that every
phase after the first sees decoded neighbours on all sides. A coefficient's magnitude (0 to 14, or an escape
followed by an Elias-gamma class and its raw bits) is coded with an adaptive table chosen by its context:
the phase, luma or chroma, and a bucket of the activity around it (the capped magnitudes of its decoded
neighbours in the band, of its parent in the next coarser band of the same orientation, and of the
coefficients at the same place in the band's already coded siblings). Signs are coded raw. The tables are
integer counts, updated after every batch of at most :data:`CHUNK` coefficients and halved when a row's
total passes :data:`LIMIT`.

Determinism: the coded symbols are integers; the transform uses additions and multiplications of float64
arrays only (elementwise NumPy operations, no reductions and no fused multiply-add), which IEEE 754 rounds
exactly, so the encoder's reconstruction and the decoder's are bit-identical on every platform.

Bounds: the decoder allocates ``O(C H W)`` (the coefficients as int64 and float64, and the transform's
temporaries: under twelve times the decoded image in float32), and every loop is over bands, phases and batches
(``O(levels)`` and ``O(C H W / CHUNK)`` calls of the range coder), so its time is linear in the pixels; the
format refuses a residual section shorter than :data:`MIN_BYTES_PER_PIXEL` per coefficient
(:func:`read_section`), so a small file cannot claim a large decoding.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from .entropy import RangeReader, RangeWriter, doubling_slices
from .format import CodecError

__all__ = ["forward", "inverse", "band_shapes", "max_levels", "quantise", "dequantise", "encode_bands",
           "decode_bands", "ResidualSection", "write_section", "read_section", "code_residual", "decode_residual",
           "MIN_BYTES_PER_PIXEL", "CHUNK", "LIMIT"]

# CDF 9/7 lifting constants (Daubechies and Sweldens 1998) and the scaling that makes the transform nearly
# orthonormal (the low-pass band's DC gain sqrt(2)), so one step suits every band.
_ALPHA = -1.586134342059924
_BETA = -0.052980118572961
_GAMMA = 0.882911075530934
_DELTA = 0.443506852043971
_ZETA = 1.149604398860241

#: Coefficients per batch of the range coder (the adaptive tables are updated between batches).
CHUNK = 2048
#: A table row is halved when its total passes this (the model follows the statistics through the image).
LIMIT = 1 << 15
#: Weight of one observation in the adaptive tables.
STEP = 8
#: Largest magnitude coded directly; larger ones are an escape, an Elias-gamma class and raw bits.
ESCAPE = 15
#: Most raw bits after an escape (magnitudes below ``ESCAPE + 2**MAX_CLASS``).
MAX_CLASS = 30
#: Most wavelet levels.
MAX_LEVELS = 8
#: The residual section must have at least this many bytes per coded coefficient (``C H W``): a decoding's
#: work and memory are linear in ``C H W``, so a short file cannot claim a large one. The encoder never
#: writes a residual layer below it (a residual of fewer bytes is worth nothing at such sizes).
MIN_BYTES_PER_PIXEL = 1 / 4096
#: The encoder's rounding in the quantiser (:func:`quantise`): the zero bin ``2 (1 - ROUNDING)`` steps wide.
ROUNDING = 0.0
#: The encoder zeroes isolated coefficients of magnitude 1 below ``1 + ISOLATED`` steps (0: none).
ISOLATED = 0.3
#: Sentinel coded after the coefficients (8 bits): a payload that ran out is noticed (but for one chance in
#: 256; the CRC catches accidental damage).
SENTINEL = 0xA5
_PARAMS = struct.Struct("<BHB")        # levels, step code (step = code / 65536), offset code (offset = code / 256)


# ------------------------------------------------------------------------------------------------- wavelet

def _lift_forward(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level along axis 0: ``(low, high)`` of ``a`` (n >= 2 rows)."""
    s, d = a[0::2].copy(), a[1::2].copy()
    ne, no = s.shape[0], d.shape[0]

    def s_next():       # s[i + 1] for each d[i], mirrored at the end
        return s[1:no + 1] if ne > no else np.concatenate([s[1:], s[-1:]])

    def d_around():     # d[i - 1] + d[i] for each s[i], mirrored at both ends
        prev = np.concatenate([d[:1], d[:-1]])
        cur = d if ne == no else np.concatenate([d, d[-1:]])
        if ne > no:
            prev = np.concatenate([prev, d[-1:]])
        return prev[:ne] + cur[:ne]

    d += _ALPHA * (s[:no] + s_next())
    s += _BETA * d_around()
    d += _GAMMA * (s[:no] + s_next())
    s += _DELTA * d_around()
    return s * _ZETA, d * (1.0 / _ZETA)


def _lift_inverse(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_lift_forward`."""
    s, d = s * (1.0 / _ZETA), d * _ZETA
    ne, no = s.shape[0], d.shape[0]

    def s_next():
        return s[1:no + 1] if ne > no else np.concatenate([s[1:], s[-1:]])

    def d_around():
        prev = np.concatenate([d[:1], d[:-1]])
        cur = d if ne == no else np.concatenate([d, d[-1:]])
        if ne > no:
            prev = np.concatenate([prev, d[-1:]])
        return prev[:ne] + cur[:ne]

    s -= _DELTA * d_around()
    d -= _GAMMA * (s[:no] + s_next())
    s -= _BETA * d_around()
    d -= _ALPHA * (s[:no] + s_next())
    out = np.empty((ne + no,) + s.shape[1:], np.float64)
    out[0::2], out[1::2] = s, d
    return out


def max_levels(height: int, width: int) -> int:
    """The most wavelet levels of an ``height`` x ``width`` channel: every level halves sides of at least 2.

    Examples
    --------
    >>> from pdeflow.codec.residual import max_levels
    >>> max_levels(256, 256), max_levels(2, 9), max_levels(1, 9)
    (8, 1, 0)
    """
    n, h, w = 0, height, width
    while n < MAX_LEVELS and h >= 2 and w >= 2:
        h, w, n = -(-h // 2), -(-w // 2), n + 1
    return n


def band_shapes(height: int, width: int, levels: int) -> list:
    """The shapes of the bands of :func:`forward`: ``[low-pass, (three detail bands) per level, coarsest
    first]``.

    Examples
    --------
    >>> from pdeflow.codec.residual import band_shapes
    >>> band_shapes(5, 8, 2)
    [(2, 2), ((2, 2), (1, 2), (1, 2)), ((3, 4), (2, 4), (2, 4))]
    """
    sizes = [(height, width)]
    for _ in range(levels):
        h, w = sizes[-1]
        sizes.append((-(-h // 2), -(-w // 2)))
    out = [sizes[-1]]
    for j in range(levels, 0, -1):
        h, w = sizes[j - 1]
        lo_h, lo_w, hi_h, hi_w = -(-h // 2), -(-w // 2), h // 2, w // 2
        out.append(((lo_h, hi_w), (hi_h, lo_w), (hi_h, hi_w)))
    return out


def forward(x: np.ndarray, levels: int) -> list:
    """The CDF 9/7 transform of ``x`` (H, W) float64: ``[LL, (HL, LH, HH) per level, coarsest first]``
    (HL: high-pass across the columns; shapes :func:`band_shapes`).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.residual import forward, inverse
    >>> x = np.random.default_rng(0).random((7, 10))
    >>> bands = forward(x, 2)
    >>> bool(np.abs(inverse(bands, 7, 10) - x).max() < 1e-12)
    True
    """
    if not 0 <= levels <= max_levels(*x.shape):
        raise ValueError(f"levels must be in [0, {max_levels(*x.shape)}] for shape {x.shape}, got {levels}")
    details = []
    ll = np.asarray(x, np.float64)
    for _ in range(levels):
        lo, hi = _lift_forward(ll)                 # along the rows' axis
        lolo, lohi = (b.T for b in _lift_forward(lo.T))
        hilo, hihi = (b.T for b in _lift_forward(hi.T))
        details.append((np.ascontiguousarray(lohi), np.ascontiguousarray(hilo), np.ascontiguousarray(hihi)))
        ll = np.ascontiguousarray(lolo)
    return [ll] + details[::-1]


def inverse(bands: list, height: int, width: int) -> np.ndarray:
    """The inverse of :func:`forward`: the (height, width) float64 array of its bands.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.residual import forward, inverse
    >>> x = np.arange(12.0).reshape(3, 4)
    >>> bool(np.allclose(inverse(forward(x, 1), 3, 4), x))
    True
    """
    ll = bands[0]
    for hl, lh, hh in bands[1:]:
        lo = _lift_inverse(ll.T, hl.T).T
        hi = _lift_inverse(lh.T, hh.T).T
        ll = _lift_inverse(lo, hi)
    assert ll.shape == (height, width)
    return ll


# ---------------------------------------------------------------------------------------------- quantiser

def quantise(bands: list, step: float, rounding: float = 0.0) -> list:
    """Deadzone quantisation of every band: ``sign(c) floor(|c| / step + rounding)`` (int64), the bands'
    nesting kept (``rounding`` below 1/2: a zero bin wider than the others).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.residual import quantise
    >>> quantise([np.array([[-2.5, -0.9, 0.9, 1.0, 3.2]])], 1.0)[0].tolist()
    [[-2, 0, 0, 1, 3]]
    """
    def q(c):
        return (np.sign(c) * np.floor(np.abs(c) / step + rounding)).astype(np.int64)
    return [q(bands[0])] + [tuple(q(b) for b in level) for level in bands[1:]]


def dequantise(qbands: list, step: float, offset: float) -> list:
    """The coefficients of level indices: ``sign(q) (|q| + offset) step`` (0 for 0).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.residual import dequantise
    >>> dequantise([np.array([[-2, 0, 1]])], 0.5, 0.25)[0].tolist()
    [[-1.125, 0.0, 0.625]]
    """
    def d(q):
        return np.sign(q) * ((np.abs(q) + offset) * step)
    return [d(qbands[0])] + [tuple(d(b) for b in level) for level in qbands[1:]]


# ------------------------------------------------------------------------------------------ entropy coding

#: Magnitudes are capped at this in the activity of a coefficient's context.
CAP = 2
#: The activity's buckets: the first activity of each.
THRESHOLDS = (0, 1, 2, 3, 5, 8, 12, 20)
_PHASES = ((0, 0), (1, 1), (0, 1), (1, 0))


def _buckets():
    return np.searchsorted(np.array(THRESHOLDS), np.arange(THRESHOLDS[-1] + 1), side="right") - 1


class _Models:
    """The adaptive tables of one file (integer counts, the same updates on both sides)."""

    def __init__(self):
        # (luma/chroma, band kind: low-pass or detail of finest / coarser levels, phase, activity, magnitude)
        self.mag = np.ones((2, 3, 4, len(THRESHOLDS), ESCAPE + 1), np.int64)
        self.mag[..., 0] += 16 * STEP       # a prior for zeros: most coefficients are zero at low rates
        self.cls = np.ones((2, MAX_CLASS + 1), np.int64)
        self.zero = np.ones((2, 3, 2), np.int64)

    @staticmethod
    def adapt(table: np.ndarray, index: tuple, symbols: np.ndarray) -> None:
        np.add.at(table, index + (symbols,), STEP)
        rows = table[index] if index else table
        big = rows.sum(-1) > LIMIT
        if bool(big.any()):
            full = table.reshape(-1, table.shape[-1])
            flat = np.ravel_multi_index(index, table.shape[:-1]) if index else np.zeros(1, np.int64)
            hit = np.unique(flat[np.broadcast_to(big, flat.shape)])
            full[hit] = np.maximum(full[hit] // 2, 1)


def _activity(known: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sum of the capped magnitudes (0 to 2) of the 8 neighbours of ``(ys, xs)`` in ``known`` (0 where not yet
    decoded)."""
    h, w = known.shape
    pad = np.zeros((h + 2, w + 2), np.int64)
    pad[1:-1, 1:-1] = np.minimum(np.abs(known), CAP)
    total = np.zeros(ys.shape, np.int64)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if dy != 1 or dx != 1:
                total += pad[ys + dy, xs + dx]
    return total


def _code_band(io, models: _Models, band: np.ndarray | None, shape, chroma: int, kind: int, parent, siblings):
    """Code (``band`` given) or decode one band; returns the decoded band (int64)."""
    h, w = shape
    out = np.zeros((h, w), np.int64)
    if h * w == 0:
        return out
    zt = models.zero[chroma, kind]
    if band is not None:
        flag = np.array([int(not band.any())])
        io.write(flag, zt[None].astype(np.float64))
    else:
        flag = io.read(zt[None].astype(np.float64))
    zt[flag[0]] += STEP
    if flag[0] == 1:
        return out
    # what the context sees of the parent and the siblings at each place, capped
    outside = np.zeros((h, w), np.int64)
    if parent is not None:
        ph, pw = parent.shape
        yy = np.minimum(np.arange(h) // 2, ph - 1)
        xx = np.minimum(np.arange(w) // 2, pw - 1)
        outside += 2 * np.minimum(np.abs(parent[yy[:, None], xx[None, :]]), CAP)
    for s in siblings:
        outside += np.minimum(np.abs(s), CAP)
    for p, (py, px) in enumerate(_PHASES):
        ys, xs = np.meshgrid(np.arange(py, h, 2), np.arange(px, w, 2), indexing="ij")
        ys, xs = ys.reshape(-1), xs.reshape(-1)
        if len(ys) == 0:
            continue
        act = _activity(out, ys, xs) + outside[ys, xs]
        buckets = _buckets()
        ctx = buckets[np.minimum(act, len(buckets) - 1)]
        for sl in _batches(len(ys)):
            y, x, c = ys[sl], xs[sl], ctx[sl]
            table = models.mag[chroma, kind, p][c]
            if band is not None:
                v = band[y, x]
                m = np.minimum(np.abs(v), ESCAPE)
                io.write(m, table.astype(np.float64))
                mags = _code_escapes(io, models, chroma, np.abs(v[m == ESCAPE]) - ESCAPE)
                signs = (v[v != 0] < 0).astype(np.int64)
                io.write(signs, np.ones((len(signs), 2)))
            else:
                m = io.read(table.astype(np.float64))
                mags = _code_escapes(io, models, chroma, None, int((m == ESCAPE).sum()))
                v = m.copy()
                v[m == ESCAPE] = ESCAPE + mags
                signs = io.read(np.ones((int((v != 0).sum()), 2)))
                v[v != 0] *= 1 - 2 * signs
            out[y, x] = v
            _Models.adapt(models.mag, (np.full(len(c), chroma), np.full(len(c), kind), np.full(len(c), p), c), m)
    return out


def _batches(n: int):
    """Batch boundaries: 32, 32, 64, 128, ... up to :data:`CHUNK` coefficients, so that the tables adapt early
    in every phase (a band of zeros costs little from its first coefficients on)."""
    return doubling_slices(n, 32, CHUNK)


def _code_escapes(io, models: _Models, chroma: int, extra: np.ndarray | None, n: int = 0) -> np.ndarray:
    """Code (``extra`` given) or decode ``n`` magnitudes above the escape: the class ``b`` of ``extra + 1``
    (its bit length less one, adaptive) and its ``b`` low bits (raw)."""
    table = models.cls[chroma]
    if extra is not None:
        n = len(extra)
        v = extra + 1
        b = np.zeros(n, np.int64)
        for k in range(1, MAX_CLASS + 1):
            b += (v >> k) > 0
        if n:
            io.write(b, np.broadcast_to(table.astype(np.float64), (n, MAX_CLASS + 1)))
            owner = np.repeat(np.arange(n), b)
            first = np.concatenate([[0], np.cumsum(b)[:-1]])
            bits = (v[owner] >> (np.arange(len(owner)) - first[owner])) & 1
            io.write(bits, np.ones((len(bits), 2)))
            np.add.at(table, b, STEP)
        return extra
    if n == 0:
        return np.zeros(0, np.int64)
    b = io.read(np.broadcast_to(table.astype(np.float64), (n, MAX_CLASS + 1)))
    bits = io.read(np.ones((int(b.sum()), 2)))
    np.add.at(table, b, STEP)
    owner = np.repeat(np.arange(n), b)
    first = np.concatenate([[0], np.cumsum(b)[:-1]])
    weight = np.left_shift(np.int64(1), np.arange(len(bits)) - first[owner]) if len(bits) else np.zeros(0, np.int64)
    low = np.zeros(n, np.int64)
    np.add.at(low, owner, bits * weight)
    return (np.left_shift(np.int64(1), b) + low) - 1


def _ll_differences(ll: np.ndarray) -> np.ndarray:
    """The low-pass band as differences: each row less the row above, the first row less its left neighbour."""
    d = ll.copy()
    d[1:] -= ll[:-1]
    d[0, 1:] -= ll[0, :-1]
    return d


def _ll_from_differences(d: np.ndarray) -> np.ndarray:
    ll = d.copy()
    ll[0] = np.cumsum(d[0])
    return np.cumsum(ll, axis=0)


def encode_bands(writer: RangeWriter, channels: list) -> None:
    """Code the quantised bands of every channel (each a :func:`quantise` result of the same shapes).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeReader, RangeWriter
    >>> from pdeflow.codec.residual import decode_bands, encode_bands, forward, quantise
    >>> q = quantise(forward(np.random.default_rng(0).normal(size=(9, 12)), 2), 0.1)
    >>> w = RangeWriter()
    >>> encode_bands(w, [q])
    >>> back = decode_bands(RangeReader(w.words()), 9, 12, 1, 2)
    >>> all(np.array_equal(a, b) for a, b in zip([back[0][0]] + [x for l in back[0][1:] for x in l],
    ...                                          [q[0]] + [x for l in q[1:] for x in l]))
    True
    """
    models = _Models()
    for c, qb in enumerate(channels):
        _code_channel(writer, models, qb, min(c, 1), None)
    writer.write(np.array([SENTINEL]), np.ones((1, 256)))


def decode_bands(reader: RangeReader, height: int, width: int, channels: int, levels: int) -> list:
    """The quantised bands coded by :func:`encode_bands`, per channel; :class:`CodecError` if the data ran out.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeReader, RangeWriter
    >>> from pdeflow.codec.residual import decode_bands, encode_bands, quantise, forward
    >>> q = quantise(forward(np.ones((8, 8)), 1), 0.5)
    >>> w = RangeWriter()
    >>> encode_bands(w, [q])
    >>> decode_bands(RangeReader(w.words()), 8, 8, 1, 1)[0][0].shape
    (4, 4)
    """
    models = _Models()
    shapes = band_shapes(height, width, levels)
    out = [_code_channel(reader, models, None, min(c, 1), shapes) for c in range(channels)]
    if int(reader.read(np.ones((1, 256)))[0]) != SENTINEL:
        raise CodecError("decode: damaged residual code (the payload ran out or was changed)")
    return out


def _code_channel(io, models, qb, chroma, shapes):
    coding = qb is not None
    if coding:
        shapes = [qb[0].shape] + [tuple(b.shape for b in level) for level in qb[1:]]
    ll = _code_band(io, models, _ll_differences(qb[0]) if coding else None, shapes[0], chroma, 0, None, ())
    out = [_ll_from_differences(ll)]
    parents = (None, None, None)
    nlev = len(shapes) - 1
    for j, level_shapes in enumerate(shapes[1:]):
        kind = 1 if j == nlev - 1 else 2          # the finest level has its own tables
        level = []
        for o in range(3):
            band = qb[1 + j][o] if coding else None
            got = _code_band(io, models, band, level_shapes[o], chroma, kind, parents[o],
                             [s for s in level if s.shape == level_shapes[o]])
            level.append(got)
        out.append(tuple(level))
        parents = tuple(level)
    return out


# ------------------------------------------------------------------------------------------ the section

@dataclass
class ResidualSection:
    """The residual layer's parameters: wavelet ``levels``, the step ``step_code / 65536`` and the
    reconstruction offset ``offset_code / 256``, followed in the file by the range coder's words.

    Examples
    --------
    >>> from pdeflow.codec.residual import ResidualSection
    >>> p = ResidualSection(levels=4, step_code=16384, offset_code=64)
    >>> p.step, p.offset
    (0.25, 0.25)
    """

    levels: int
    step_code: int
    offset_code: int

    @property
    def step(self) -> float:
        return self.step_code / 65536.0

    @property
    def offset(self) -> float:
        return self.offset_code / 256.0


def write_section(params: ResidualSection, words: bytes) -> bytes:
    """The residual section's bytes: its parameters (4 bytes), then ``words``.

    Examples
    --------
    >>> from pdeflow.codec.residual import ResidualSection, read_section, write_section
    >>> data = write_section(ResidualSection(3, 1000, 96), bytes(8))
    >>> read_section(data, 16, 16, 1)[0]
    ResidualSection(levels=3, step_code=1000, offset_code=96)
    """
    return _PARAMS.pack(params.levels, params.step_code, params.offset_code) + words


def read_section(data: bytes, height: int, width: int, channels: int) -> tuple[ResidualSection, bytes]:
    """``(parameters, words)`` of a residual section, every field checked; :class:`CodecError` otherwise.

    Examples
    --------
    >>> from pdeflow.codec.residual import ResidualSection, read_section, write_section
    >>> params, words = read_section(write_section(ResidualSection(2, 32768, 0), bytes(8)), 8, 8, 1)
    >>> params.levels, len(words)
    (2, 8)
    """
    if len(data) < _PARAMS.size + 4:
        raise CodecError(f"decode: residual section of {len(data)} bytes is truncated")
    levels, step_code, offset_code = _PARAMS.unpack_from(data, 0)
    words = data[_PARAMS.size:]
    if len(words) % 4:
        raise CodecError(f"decode: residual payload of {len(words)} bytes, expected a multiple of 4")
    if not 0 <= levels <= max_levels(height, width):
        raise CodecError(f"decode: {levels} wavelet levels, expected 0 to {max_levels(height, width)} for "
                         f"{height} x {width}")
    if step_code == 0:
        raise CodecError("decode: residual quantisation step 0")
    least = math.ceil(MIN_BYTES_PER_PIXEL * channels * height * width)
    if len(data) < least:
        raise CodecError(f"decode: residual section of {len(data)} bytes is too short for {channels} x {height} x "
                         f"{width} coefficients (at least {least})")
    return ResidualSection(levels, step_code, offset_code), words


def _synthesise(qchannels: list, params: ResidualSection, height: int, width: int) -> np.ndarray:
    return np.stack([inverse(dequantise(qb, params.step, params.offset), height, width) for qb in qchannels])


def decode_residual(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """The residual (channels, height, width) float64 of a section written by :func:`code_residual`.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.residual import code_residual, decode_residual
    >>> r = np.random.default_rng(0).normal(0, 0.1, (1, 16, 16))
    >>> data, rec = code_residual(r, 200)
    >>> len(data) <= 200, bool(np.array_equal(decode_residual(data, 16, 16, 1), rec))
    (True, True)
    """
    params, words = read_section(data, height, width, channels)
    q = decode_bands(RangeReader(words), height, width, channels, params.levels)
    return _synthesise(q, params, height, width)


def _drop_isolated(coeffs, q, step):
    """Zero the detail coefficients of magnitude 1 whose neighbours and parent are zero and whose value is
    below ``1 + ISOLATED`` steps: they cost many bits for little error."""
    if ISOLATED <= 0:
        return q
    out = [q[0]]
    parents = (None, None, None)
    for cl, ql in zip(coeffs[1:], q[1:]):
        level = []
        for o, (c, k) in enumerate(zip(cl, ql)):
            h, w = k.shape
            pad = np.zeros((h + 2, w + 2), np.int64)
            pad[1:-1, 1:-1] = np.abs(k)
            around = sum(pad[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) - np.abs(k)
            if parents[o] is not None:
                p = parents[o]
                around = around + np.abs(p[np.minimum(np.arange(h) // 2, p.shape[0] - 1)[:, None],
                                           np.minimum(np.arange(w) // 2, p.shape[1] - 1)[None, :]])
            drop = (np.abs(k) == 1) & (around == 0) & (np.abs(c) < (1 + ISOLATED) * step)
            level.append(np.where(drop, 0, k))
        out.append(tuple(level))
        parents = tuple(level)
    return out


def _size_and_code(coeffs, step_code, levels):
    q = [_drop_isolated(b, quantise(b, step_code / 65536.0, ROUNDING), step_code / 65536.0) for b in coeffs]
    w = RangeWriter()
    encode_bands(w, q)
    return q, w.words()


def code_residual(r: np.ndarray, budget: int, *, levels: int | None = None):
    """``(section bytes, decoded residual)``: the residual ``r`` (C, H, W) float64 coded in at most ``budget``
    bytes with the finest step that fits (bisection on the step's code), or ``(None, None)`` when no step fits
    (or the budget is below the format's minimum).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.residual import code_residual
    >>> r = np.random.default_rng(1).normal(0, 0.05, (1, 32, 32))
    >>> data, rec = code_residual(r, 400)
    >>> len(data) <= 400, float(((rec - r) ** 2).mean()) < float((r ** 2).mean())
    (True, True)
    """
    C, H, W = r.shape
    if levels is None:
        levels = max_levels(H, W)
    if budget < max(_PARAMS.size + 4, math.ceil(MIN_BYTES_PER_PIXEL * C * H * W)):
        return None, None
    coeffs = [forward(r[c], levels) for c in range(C)]

    def size(code):
        q, words = _size_and_code(coeffs, code, levels)
        return q, words, _PARAMS.size + len(words)

    # the step's code on a log scale: sizes fall with the step, nearly monotonically
    lo, hi = 0, 64 * 16                   # step = 2 ** (i / 64 - 16): i = 0 is 1 / 65536, i = 1024 is 1
    def code_of(i):
        return max(1, min(65535, int(round(2.0 ** (i / 64.0)))))
    best = None
    q, words, n = size(code_of(hi))
    if n > budget:
        return None, None
    best = (code_of(hi), q, words)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        q, words, n = size(code_of(mid))
        if n <= budget:
            hi, best = mid, (code_of(mid), q, words)
        else:
            lo = mid
    code, q, words = best
    offset_code = _best_offset(coeffs, q, code / 65536.0)
    params = ResidualSection(levels, code, offset_code)
    rec = _synthesise(q, params, H, W)
    return write_section(params, words), rec


def _best_offset(coeffs, q, step) -> int:
    """The reconstruction offset (units of 1/256, 0 to 255) that minimises the squared error of the nonzero
    coefficients: the mean of ``|c| / step - |q|`` over them."""
    num, den = 0.0, 0
    for cb, qb in zip(coeffs, q):
        for c, k in zip([cb[0]] + [b for lv in cb[1:] for b in lv], [qb[0]] + [b for lv in qb[1:] for b in lv]):
            nz = k != 0
            num += float((np.abs(c[nz]) / step - np.abs(k[nz])).sum())
            den += int(nz.sum())
    return int(min(255, max(0, round(256 * num / den)))) if den else 128
