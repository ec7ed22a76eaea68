"""pdeflow.codec.entropy: the mask and value codes round-trip, cost what they should, and refuse bad data."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pdeflow.codec import CodecError
from pdeflow.codec.entropy import (
    RangeReader,
    RangeWriter,
    decode_mask,
    decode_values,
    encode_mask,
    encode_values,
    morton_order,
)


def _lbinom(n, k):
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def _round_trip_mask(grid):
    w = RangeWriter()
    encode_mask(w, grid)
    data = w.words()
    y, x = decode_mask(RangeReader(data), *grid.shape, int(grid.sum()))
    back = np.zeros_like(grid)
    back[y, x] = True
    return back, data, (y, x)


@pytest.mark.parametrize("shape, k", [((1, 1), 1), ((2, 1), 2), ((1, 9), 4), ((5, 7), 3), ((13, 29), 100),
                                      ((64, 64), 4096), ((64, 64), 1), ((33, 65), 700), ((300, 7), 50)])
def test_mask_round_trip(shape, k):
    rng = np.random.default_rng(k)
    grid = np.zeros(shape[0] * shape[1], bool)
    grid[rng.choice(grid.size, k, replace=False)] = True
    grid = grid.reshape(shape)
    back, _, (y, x) = _round_trip_mask(grid)
    assert np.array_equal(back, grid)
    assert np.array_equal(np.argsort(morton_order(y, x)), np.arange(len(y)))   # returned in Morton order


def test_a_random_mask_costs_about_the_uniform_code():
    """Sparse masks (the codec's): within a few percent of log2 binom(N, K), the cost of a random mask under
    the best code that knows only N and K."""
    rng = np.random.default_rng(1)
    for n, k in ((128 * 128, 300), (128 * 128, 1600), (96 * 96, 900)):
        grid = np.zeros(n, bool)
        grid[rng.choice(n, k, replace=False)] = True
        _, data, _ = _round_trip_mask(grid.reshape(-1, 128 if n == 128 * 128 else 96))
        bits = 8 * len(data)
        assert bits <= 1.04 * _lbinom(n, k) + 64, (n, k, bits, _lbinom(n, k))


def test_a_regular_mask_costs_less_than_the_uniform_code():
    grid = np.zeros((128, 128), bool)
    grid[::8, ::8] = True
    _, data, _ = _round_trip_mask(grid)
    assert 8 * len(data) < 0.5 * _lbinom(grid.size, int(grid.sum()))


def test_values_round_trip_and_adapt():
    rng = np.random.default_rng(2)
    for q, K in ((2, 1), (16, 37), (16, 2000), (300, 500)):
        v = np.minimum(rng.geometric(0.3, K) - 1, q - 1)
        w = RangeWriter()
        encode_values(w, v, q)
        data = w.words()
        assert np.array_equal(decode_values(RangeReader(data), q, K), v)
        if K >= 2000:     # a skewed histogram is learnt: well below log2(q) bits per value
            assert 8 * len(data) < 0.75 * K * math.log2(q)


def test_damaged_streams_are_refused_or_decoded_in_range():
    rng = np.random.default_rng(3)
    refused = 0
    for _ in range(100):
        payload = rng.bytes(4 * int(rng.integers(1, 20)))
        try:
            y, x = decode_mask(RangeReader(payload), 20, 30, 50)
            assert len(y) == 50 and y.max() < 20 and x.max() < 30
            v = decode_values(RangeReader(payload), 16, 50)
            assert v.min() >= 0 and v.max() < 16
        except CodecError as err:
            refused += 1
            assert str(err).startswith("decode:") and "\n" not in str(err)
    assert refused > 0
