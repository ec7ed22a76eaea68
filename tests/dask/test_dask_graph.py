"""The lazy graphs of pdeflow.dask's decomposed solves: a sweep is one layer whose tasks gather their halo from
chunks of any size (checked against the grown blocks cut from the whole array), the graph builds in time linear
in the sweeps (dask's graph merges counted), and every result of ``full_output`` computes on its own."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import dask  # noqa: E402
from dask.highlevelgraph import HighLevelGraph  # noqa: E402

import pdeflow.dask as pdd  # noqa: E402
from pdeflow.dask.arrays import Graph, block_sums, sweep  # noqa: E402


def _ends(chunks):
    return np.cumsum((0,) + tuple(chunks))


def _reference(fn, x, grid, depth):
    """``fn`` on every block of ``grid`` grown by ``depth`` (cut from the whole array), trimmed, put together."""
    out = np.empty_like(x)
    ends = [_ends(c) for c in grid[2:]]
    for idx in itertools.product(*(range(len(c)) for c in grid[2:])):
        grown, faces = [], []
        for k, i in enumerate(idx):
            lo, hi, n = ends[k][i], ends[k][i + 1], len(ends[k]) - 2
            face = (depth if i > 0 else 0, depth if i < n else 0)
            grown.append(slice(lo - face[0], hi + face[1]))
            faces.append(face)
        block = fn(x[(slice(None), slice(None), *grown)], faces=tuple(faces))
        own = tuple(slice(a, s - c) for (a, c), s in zip(faces, block.shape[2:]))
        out[(slice(None), slice(None), *(slice(ends[k][i], ends[k][i + 1]) for k, i in enumerate(idx)))] = \
            block[(slice(None), slice(None), *own)]
    return out


def _mix(b, faces):
    """Depends on the whole grown block and on where its halo is: wrong anywhere if a piece is misplaced."""
    return b * 2.0 + np.roll(b, 1, axis=-1) - np.roll(b, 1, axis=-2) + faces[0][0] + 10 * faces[1][1]


@pytest.mark.parametrize("src, grid", [
    (((7, 9, 8), (5, 11, 8)), ((7, 9, 8), (5, 11, 8))),         # the chunks of the array itself
    (((8, 8, 8), (12, 12)), ((4, 8, 8, 4), (6, 12, 6))),         # staggered by half a chunk
    (((4, 12, 8), (24,)), ((10, 14), (9, 15))),                  # any other blocks
])
def test_a_sweep_gathers_its_grown_blocks_from_chunks_of_any_size(src, grid):
    x = np.random.default_rng(0).random((2, 3, 24, 24))
    xd = da.from_array(x, chunks=((1, 1), (3,)) + src)
    g4 = ((1, 1), (3,)) + grid
    depth = {0: 0, 1: 0, 2: 2, 3: 2}
    got = sweep(_mix, [xd], depth, False, dtype=x.dtype, grid=g4)
    assert got.chunks == g4 and len(got.dask.layers) == 2      # the array's layer and the sweep's
    assert np.array_equal(got.compute(scheduler="sync"), _reference(_mix, x, g4, 2))
    # done: the blocks pass through, whatever the chunks
    assert np.array_equal(sweep(_mix, [xd], depth, True, dtype=x.dtype, grid=g4).compute(scheduler="sync"), x)


def test_block_sums_read_the_grown_blocks_as_a_sweep_does():
    x = np.random.default_rng(1).random((1, 1, 20, 20))
    xd = da.from_array(x, chunks=(1, 1, (6, 14), (10, 10)))

    def sums(b, faces):
        return np.array([b.sum(), faces[0][0] + faces[1][1]]).reshape(1, 2, 1, 1)

    parts = block_sums(sums, [xd], {0: 0, 1: 0, 2: 1, 3: 1}, False).compute(scheduler="sync")
    assert parts.shape == (1, 2, 2, 2)
    assert np.isclose(parts[0, 0, 0, 0], x[0, 0, :7, :11].sum())      # grown into both neighbours
    assert np.isclose(parts[0, 0, 1, 1], x[0, 0, 5:, 9:].sum())
    assert parts[0, 1].ravel().tolist() == [1, 0, 2, 1]
    done = block_sums(sums, [xd], {0: 0, 1: 0, 2: 1, 3: 1}, True).compute(scheduler="sync")
    assert not done.any()


def _merged_layers(build):
    """The layers every graph made while ``build()`` runs holds, summed: what dask's merges of layers cost."""
    total = [0]
    init = HighLevelGraph.__init__

    def counting(self, layers, *args, **kwargs):
        total[0] += len(layers)
        init(self, layers, *args, **kwargs)

    HighLevelGraph.__init__ = counting
    try:
        build()
    finally:
        HighLevelGraph.__init__ = init
    return total[0]


@pytest.mark.parametrize("solve", ["rof", "inpaint", "tv_flow"])
def test_the_graph_builds_in_time_linear_in_the_sweeps(solve):
    f = da.from_array(np.random.default_rng(0).random((32, 32)), chunks=16)
    m = np.random.default_rng(1).random((32, 32)) < 0.2

    def build(sweeps):
        if solve == "rof":
            return lambda: pdd.rof(f, 0.1, max_sweeps=sweeps)
        if solve == "inpaint":
            return lambda: pdd.inpaint(f, m, "diffusion", overlap=4, max_sweeps=sweeps)
        return lambda: pdd.tv_flow(f, [0.0, 0.004], dt=0.002, max_sweeps=sweeps)

    a, b, c = (_merged_layers(build(n)) for n in (10, 20, 40))
    # each sweep adds the same work: doubling the sweeps doubles the added work (quadratic: it would quadruple)
    assert (c - b) <= 2.2 * (b - a)


def test_every_result_of_full_output_computes_on_its_own():
    f = da.from_array(np.random.default_rng(0).random((16, 16)), chunks=8)
    r = pdd.tv_flow(f, [0.0, 0.004], dt=0.002, max_sweeps=3, full_output=True)
    together = dask.compute(r.u, r.sweeps, r.criterion, r.converged, scheduler="sync")
    alone = [x.compute(scheduler="sync") for x in (r.u, r.sweeps, r.criterion, r.converged)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))
    # each array's graph holds what it depends on only: the criterion does not carry the result's layers
    assert r.u.name not in r.criterion.dask.layers and r.criterion.name in r.u.dask.layers


def test_a_graph_keeps_its_arrays_as_their_names_only():
    g = Graph()
    x = g.keep(da.ones(4, chunks=2))
    for _ in range(5):
        x = g.keep(x * 2)
    assert len(x.dask.layers) == 1 and len(g.layers) == 6
    (y,) = g.finish(x)
    assert y.compute(scheduler="sync").tolist() == [32.0] * 4
