"""Entropy coding of the mask and the quantised values with constriction's range coder.

Both coders are context-adaptive and vectorised: symbols are coded in batches (one call of the range
coder per batch), and the adaptive models are updated between batches, so encoding and decoding cost
``O(K log N)`` array operations for ``K`` known pixels of ``N``, never a Python loop over pixels.

**Mask.** A k-d tree of the lattice grid: the root is the whole grid with its ``K`` known pixels (from the
header); a node that is neither a single pixel nor full is cut in two halves across its longer side
(rows first on a tie), and the count ``c`` of known pixels in the first half is coded, given the node's
count ``n`` and the two halves' sizes (which bound ``c``). The tree is coded breadth first, one depth per
batch. For ``n <= SMALL`` the model is an adaptive table of counts per ``(n, halves equal)``, updated after
each depth; it learns how evenly the mask's points split (an optimised mask spreads its points more
evenly than a random one, and the rate is adaptive to it). Larger counts use a fixed bell-shaped model
around ``n a1 / (a1 + a2)`` with the hypergeometric spread. Under a uniformly random mask this code costs about
``log2 binom(N, K)`` bits, the uniform code.

**Values.** Each channel's level indices, in the mask's Morton (Z) order, with an adaptive histogram
updated after each batch (batches of 16, 16, 32, ... :data:`CHUNK` values). The levels are coded directly,
not as residuals of a prediction from decoded neighbours: optimised values are nearly uncorrelated with
their neighbours' (the optimisation over- and undershoots around edges, and the points of an optimised
mask sit on both sides of edges), so a prediction's residuals spread wider than the levels (the
comparison is on the guide page "Image compression by sparse inpainting").

Determinism: every model is a table of integer counts (or of values computed with the four basic
floating-point operations and ``sqrt``, which IEEE 754 rounds exactly), so the encoder and the decoder
build bit-identical models on any machine.
"""
from __future__ import annotations

import numpy as np

from .format import CodecError

__all__ = ["RangeWriter", "RangeReader", "encode_mask", "decode_mask", "encode_values", "decode_values",
           "morton_order", "min_value_bits", "doubling_slices"]

#: Largest count coded by the adaptive split tables.
SMALL = 15
#: Symbols per batch of the value coder (the adaptive tables are updated between batches).
CHUNK = 256
#: Weight of one observation in the adaptive tables (the priors have comparable weights).
STEP = 4


def _constriction():
    import constriction
    return constriction.stream


class RangeWriter:
    """constriction's range encoder, with categorical models given as 2-D tables (one row per symbol).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeWriter
    >>> w = RangeWriter()
    >>> w.write(np.array([0, 2, 1]), np.ones((3, 3)))
    >>> len(w.words())
    4
    """

    def __init__(self):
        cs = _constriction()
        self._enc = cs.queue.RangeEncoder()
        self._family = cs.model.Categorical(perfect=False)

    def write(self, symbols: np.ndarray, table: np.ndarray) -> None:
        if len(symbols):
            self._enc.encode(np.ascontiguousarray(symbols, dtype=np.int32), self._family,
                             np.ascontiguousarray(table, dtype=np.float64))

    def words(self) -> bytes:
        w = self._enc.get_compressed()
        if len(w) == 0:
            w = np.zeros(1, np.uint32)
        return np.ascontiguousarray(w, dtype="<u4").tobytes()

    def num_words(self) -> int:
        """The words :meth:`words` would return now (constriction's count, its seal included)."""
        return max(1, int(self._enc.num_words()))


class RangeReader:
    """The decoder of :class:`RangeWriter`; any failure of the range coder becomes a :class:`CodecError`.

    The reader codes every batch it decodes again, with the same table, on a :class:`RangeWriter` of its own:
    the encoder is deterministic, so a payload that an encoder wrote is exactly the coding of the symbols it
    decodes to. That shadow coding tells when the data runs out. A range decoder reads its state two words
    ahead and, past the last word, shifts in zeros without a word: constriction's does not report it. The
    shadow writer has emitted all but its last one or two words (the seal) of what the symbols decoded so far
    need, so once it holds more than one word beyond the payload's, the decoder has used bits that are not in
    the file and :meth:`read` raises at once ("the payload ends early"); the one or two words of look-ahead that
    a complete file needs are allowed. :meth:`finish` then compares the whole coding with the payload: longer
    (the file was cut), shorter (data after the coded symbols) or different (damaged) are refused.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeReader, RangeWriter
    >>> w = RangeWriter()
    >>> w.write(np.array([0, 2, 1]), np.ones((3, 3)))
    >>> r = RangeReader(w.words())
    >>> r.read(np.ones((3, 3)))
    array([0, 2, 1])
    >>> r.finish()
    """

    def __init__(self, payload: bytes):
        cs = _constriction()
        self._payload = bytes(payload)
        words = np.frombuffer(self._payload, dtype="<u4").astype(np.uint32)
        try:
            self._dec = cs.queue.RangeDecoder(words)
        except Exception as err:   # constriction's own errors (ValueError, AssertionError, ...)
            raise CodecError(f"decode: the payload cannot be decoded ({type(err).__name__})") from None
        self._family = cs.model.Categorical(perfect=False)
        self._shadow = RangeWriter()

    def read(self, table: np.ndarray) -> np.ndarray:
        if table.shape[0] == 0:
            return np.zeros(0, np.int64)
        try:
            out = self._dec.decode(self._family, np.ascontiguousarray(table, dtype=np.float64))
        except Exception as err:
            raise CodecError(f"decode: the payload cannot be decoded ({type(err).__name__})") from None
        out = np.asarray(out, dtype=np.int64)
        self._shadow.write(out, table)
        # the shadow's words less its seal (at least one word) are a lower bound of the coding's final length
        if self._shadow.num_words() - 1 > len(self._payload) // 4:
            raise CodecError(f"decode: the payload ends early (its {len(self._payload)} bytes hold fewer symbols "
                             "than the header declares)")
        return out

    def finish(self) -> None:
        """Check that the payload is exactly the coding of the symbols read (class doc); :class:`CodecError`
        otherwise."""
        coded, n = self._shadow.words(), len(self._payload)
        if coded == self._payload:
            return
        if len(coded) > n:
            raise CodecError(f"decode: the payload ends early ({n} bytes, the symbols that the header declares "
                             f"need {len(coded)})")
        if len(coded) < n and self._payload.startswith(coded):
            raise CodecError(f"decode: {n - len(coded)} bytes after the end of the coded data")
        raise CodecError("decode: damaged payload (it is not the coding of the symbols it decodes to)")


# ------------------------------------------------------------------------------------------------ mask

def _split_prior() -> np.ndarray:
    """Prior counts ``(SMALL + 1, 2, 3, SMALL + 1)`` of the split tables (count, halves equal, neighbour
    context): binomial(n, 1/2) in integers."""
    from math import comb
    t = np.zeros((SMALL + 1, 2, 3, SMALL + 1), np.float64)
    for n in range(1, SMALL + 1):
        for c in range(n + 1):
            t[n, :, :, c] = 1 + (16 * STEP * comb(n, c)) // (2 ** n)
    return t


def _bell_table(n, a1, a2, lo, hi, shift) -> np.ndarray:
    """Rows ``P(c) ~ 1 / (1 + z^2)^2`` on ``[lo, hi]`` (as ``c - lo``; zero outside), ``z = (c - mean) /
    spread``: a heavy-tailed bell at the binomial mean of a split of ``n`` into areas ``a1``, ``a2``, moved by
    ``shift``, with the hypergeometric spread."""
    width = int((hi - lo).max()) + 1
    nf = n.astype(np.float64)
    p = a1.astype(np.float64) / (a1 + a2).astype(np.float64)
    mean = np.clip(nf * p + shift, lo, hi) - lo
    area = (a1 + a2).astype(np.float64)
    # the hypergeometric spread: n points among a1 + a2 cells, without repetition
    spread = np.sqrt(nf * p * (1.0 - p) * (area - nf) / np.maximum(area - 1.0, 1.0)) + 0.5
    c = np.arange(width, dtype=np.float64)[None, :]
    z = (c - mean[:, None]) / spread[:, None]
    t = 1.0 / np.square(1.0 + z * z)
    t[c > (hi - lo)[:, None]] = 0.0
    return t


def _code_splits(io, n, area1, area2, before, after, c, tables):
    """Code (``io`` a writer, ``c`` given) or decode (``c`` None) one depth's split counts; ``before`` and
    ``after`` are the counts of the nodes next to each one along the cut's axis (-1: none)."""
    lo = np.maximum(0, n - area2)
    hi = np.minimum(n, area1)
    out = lo.copy() if c is None else c
    coded = lo < hi
    small = n <= SMALL
    eq = (area1 == area2).astype(np.int64)
    both = (before >= 0) & (after >= 0)
    ctx = np.where(both, np.sign(before - after), 0) + 1
    # the density's slope across the node moves the large counts' expected split
    shift = np.where(both, (before - after).astype(np.float64) / 8.0, 0.0)
    # the small counts in one batch; the large ones (symbols c - lo) in batches of similar range widths
    bucket = np.where(small, -1, np.frexp((hi - lo + 1).astype(np.float64))[1].astype(np.int64))   # exact
    bucket = np.where(coded, bucket, -2)
    for b in np.unique(bucket):
        if b == -2:
            continue
        idx = np.nonzero(bucket == b)[0]
        if b < 0:
            t = tables[n[idx], eq[idx], ctx[idx]].copy()
            cc = np.arange(SMALL + 1)[None, :]
            t[(cc < lo[idx, None]) | (cc > hi[idx, None])] = 0.0
            off = 0
        else:
            t = _bell_table(n[idx], area1[idx], area2[idx], lo[idx], hi[idx], shift[idx])
            off = lo[idx]
        if c is None:
            got = io.read(t) + off
            if bool(((got < lo[idx]) | (got > hi[idx])).any()):
                raise CodecError("decode: damaged mask code (a split count out of range)")
            out[idx] = got
        else:
            io.write(c[idx] - off, t)
    # adapt the small tables after the depth (the same update on both sides)
    idx = np.nonzero(small & coded)[0]
    np.add.at(tables, (n[idx], eq[idx], ctx[idx], out[idx]), STEP)
    return out


def _split_intervals(starts: np.ndarray, lengths: np.ndarray):
    """Each interval cut in two (first half ``length // 2``): the new starts and lengths, interleaved."""
    a = lengths // 2
    return np.stack([starts, starts + a], 1).reshape(-1), np.stack([a, lengths - a], 1).reshape(-1)


def _tree(io, gh: int, gw: int, K: int, grid: np.ndarray | None):
    """The k-d tree walk shared by the coder (``grid`` given) and the decoder: returns the known cells'
    ``(y, x)``.

    Every depth cuts all nodes across the same axis (the one whose longest interval is longer), so the
    nodes of a depth are the cells of a product of row and column intervals; the nodes with known points
    are kept as their (row interval, column interval) indices, sorted, so that a node's neighbours along
    the cut are found by binary search (a node not kept has no point)."""
    tables = _split_prior()
    if grid is not None:
        S = np.zeros((gh + 1, gw + 1), np.int64)
        S[1:, 1:] = grid.astype(np.int64).cumsum(0).cumsum(1)
    rs, rl = np.zeros(1, np.int64), np.full(1, gh, np.int64)     # row intervals: starts, lengths
    cs, cl = np.zeros(1, np.int64), np.full(1, gw, np.int64)     # column intervals
    i = np.zeros(1, np.int64)                                     # the kept nodes: row and column interval
    j = np.zeros(1, np.int64)
    n = np.full(1, K, np.int64)
    max_depth = 2 * (max(gh, gw).bit_length() + 1)
    for _ in range(max_depth + 1):
        if int(rl.max()) <= 1 and int(cl.max()) <= 1:
            break
        rows = int(rl.max()) >= int(cl.max())
        if rows:
            first_len, second_len = rl[i] // 2, rl[i] - rl[i] // 2
            area1, area2 = first_len * cl[j], second_len * cl[j]
            key, stride, along = i * len(cl) + j, len(cl), i
            span = len(rl)
        else:
            first_len, second_len = cl[j] // 2, cl[j] - cl[j] // 2
            area1, area2 = rl[i] * first_len, rl[i] * second_len
            key, stride, along = i * len(cl) + j, 1, j
            span = len(cl)
        order = np.argsort(key, kind="stable")
        skey = key[order]

        def lookup(k, valid):
            pos = np.clip(np.searchsorted(skey, k), 0, len(skey) - 1)
            found = valid & (skey[pos] == k)
            return np.where(valid, np.where(found, n[order][pos], 0), -1)
        before = lookup(key - stride, along > 0)
        after = lookup(key + stride, along < span - 1)
        c = None
        if grid is not None:
            y0, x0 = rs[i], cs[j]
            h1 = first_len if rows else rl[i]
            w1 = cl[j] if rows else first_len
            c = S[y0 + h1, x0 + w1] - S[y0, x0 + w1] - S[y0 + h1, x0] + S[y0, x0]
        c = _code_splits(io, n, area1, area2, before, after, c, tables)
        if rows:
            rs, rl = _split_intervals(rs, rl)
            i = np.concatenate([2 * i, 2 * i + 1])
            j = np.concatenate([j, j])
        else:
            cs, cl = _split_intervals(cs, cl)
            j = np.concatenate([2 * j, 2 * j + 1])
            i = np.concatenate([i, i])
        n = np.concatenate([c, n - c])
        keep = n > 0
        i, j, n = i[keep], j[keep], n[keep]
    else:
        raise CodecError("decode: damaged mask code (the tree does not end)")
    if bool((n != 1).any()) or bool(((rl[i] != 1) | (cl[j] != 1)).any()):
        raise CodecError("decode: damaged mask code (a cell with more than one point)")
    return rs[i], cs[j]


def encode_mask(writer: RangeWriter, grid: np.ndarray) -> None:
    """Code the binary lattice mask ``grid`` (gh, gw); its count goes in the header.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeReader, RangeWriter, decode_mask, encode_mask
    >>> grid = np.zeros((4, 5), bool)
    >>> grid[[0, 1, 3], [0, 3, 2]] = True
    >>> w = RangeWriter()
    >>> encode_mask(w, grid)
    >>> y, x = decode_mask(RangeReader(w.words()), 4, 5, int(grid.sum()))
    >>> back = np.zeros((4, 5), bool)
    >>> back[y, x] = True
    >>> bool((back == grid).all())
    True
    """
    gh, gw = grid.shape
    _tree(writer, gh, gw, int(grid.sum()), grid)


def decode_mask(reader: RangeReader, gh: int, gw: int, K: int) -> tuple[np.ndarray, np.ndarray]:
    """The known cells ``(y, x)`` of a mask coded by :func:`encode_mask`, in Morton order.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeReader, RangeWriter, decode_mask, encode_mask
    >>> grid = np.zeros((4, 5), bool)
    >>> grid[[0, 1, 3], [0, 3, 2]] = True
    >>> w = RangeWriter()
    >>> encode_mask(w, grid)
    >>> y, x = decode_mask(RangeReader(w.words()), 4, 5, 3)
    >>> y.tolist(), x.tolist()
    ([0, 1, 3], [0, 3, 2])
    """
    y, x = _tree(reader, gh, gw, K, None)
    if len(y) != K:
        raise CodecError("decode: damaged mask code (wrong number of known pixels)")
    order = morton_order(y, x)
    return y[order], x[order]


def morton_order(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The permutation that sorts cells ``(y, x)`` (< 2**16) along the Morton (Z) curve.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import morton_order
    >>> y, x = np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0])
    >>> order = morton_order(y, x)
    >>> order.tolist()
    [2, 1, 3, 0]
    >>> list(zip(y[order].tolist(), x[order].tolist()))
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    def spread(v):
        v = v.astype(np.uint64) & np.uint64(0xFFFF)
        v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
        v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
        v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
        v = (v | (v << np.uint64(1))) & np.uint64(0x55555555)
        return v
    return np.argsort((spread(y) << np.uint64(1)) | spread(x), kind="stable")


# ---------------------------------------------------------------------------------------------- values

def doubling_slices(n: int, first: int, cap: int):
    """Batch boundaries of an adaptive coder: ``first``, ``first``, then doubling up to ``cap`` symbols, so that
    its tables have learnt something after the first few batches (the value coder: 16 up to :data:`CHUNK`).

    Examples
    --------
    >>> from pdeflow.codec.entropy import doubling_slices
    >>> [s.stop - s.start for s in doubling_slices(200, 16, 64)]
    [16, 16, 32, 64, 64, 8]
    """
    i, size = 0, first
    while i < n:
        yield slice(i, min(n, i + size))
        i += size
        if i >= 2 * first:
            size = min(cap, 2 * size)


def _chunks(K: int):
    return doubling_slices(K, 16, CHUNK)


def encode_values(writer: RangeWriter, v: np.ndarray, q: int) -> None:
    """Code level indices ``v`` (K,) in [0, q) in the order given (an adaptive histogram).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeReader, RangeWriter, decode_values, encode_values
    >>> v = np.array([3, 0, 1, 3, 2])
    >>> w = RangeWriter()
    >>> encode_values(w, v, 4)
    >>> bool((decode_values(RangeReader(w.words()), 4, len(v)) == v).all())
    True
    """
    table = np.ones(q, np.float64)
    for sl in _chunks(len(v)):
        writer.write(v[sl], np.broadcast_to(table, (len(v[sl]), q)))
        np.add.at(table, v[sl], STEP)


def decode_values(reader: RangeReader, q: int, K: int) -> np.ndarray:
    """The ``K`` level indices coded by :func:`encode_values`.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeReader, RangeWriter, decode_values, encode_values
    >>> w = RangeWriter()
    >>> encode_values(w, np.array([3, 0, 1, 3, 2]), 4)
    >>> decode_values(RangeReader(w.words()), 4, 5).tolist()
    [3, 0, 1, 3, 2]
    """
    table = np.ones(q, np.float64)
    v = np.zeros(K, np.int64)
    for sl in _chunks(K):
        got = reader.read(np.broadcast_to(table, (sl.stop - sl.start, q)))
        if bool(((got < 0) | (got >= q)).any()):
            raise CodecError("decode: damaged value code (a level out of range)")
        v[sl] = got
        np.add.at(table, got, STEP)
    return v


def min_value_bits(q: int, K: int) -> float:
    """A lower bound of the payload bits that :func:`encode_values` needs for ``K`` level indices of ``q``
    levels, whatever the indices: the cost of the most probable level in every batch.

    Before a batch that follows ``n`` values, no level has a count above ``n``, so no level has a probability
    above ``(1 + STEP n) / (q + STEP n)``, raised by ``2**-20`` for constriction's 24-bit quantisation of the
    table. A range coder's words carry at least the information ``sum(log2(1 / p))`` of the symbols they code
    (each symbol shrinks the coder's range by its probability; each word emitted widens it by ``2**32``, and the
    range stays below ``2**64``), so no payload that decodes to ``K`` values is shorter. The bound grows with
    ``q`` (the first values cost ``log2 q`` bits each) and only slowly with ``K`` (a run of one level is cheap).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.entropy import RangeWriter, encode_values, min_value_bits
    >>> w = RangeWriter()
    >>> encode_values(w, np.zeros(5000, np.int64), 4096)      # the cheapest 5000 values of 4096 levels
    >>> round(min_value_bits(4096, 5000)), 8 * len(w.words())
    (4438, 4448)
    """
    # the batches of _chunks, vectorised: 16, 16, 32, 64, 128, then CHUNK values each
    n = np.concatenate([np.array([0, 16, 32, 64, 128]), np.arange(2 * 128, max(K, 1), CHUNK)])
    n = n[n < K].astype(np.float64)
    size = np.minimum(np.append(n[1:], K), K) - n
    p = np.minimum(1.0, (1 + STEP * n) / (q + STEP * n) + 2.0 ** -20)
    return float((size * -np.log2(p)).sum())
