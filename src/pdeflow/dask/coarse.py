"""The coarse correction of decomposed homogeneous diffusion inpainting: two-level Schwarz on the chunks.

Restricted additive Schwarz sweeps (:mod:`pdeflow.dask.inpaint`) pass information one chunk a sweep, and within a
chunk they converge at a rate set by the overlap against the chunk: a hole that spans several chunks needed about
as many sweeps as the chunks across it, times more as the chunks shrink. Between two sweeps the iterate ``u`` is
corrected on a coarse grid, one node at the centre of every chunk (per axis; the grid of the blocks):

    u <- u + P A_c^{-1} P^T r,        A_c = P^T A P,

with ``A = -L`` the diffusion system on the unknown pixels (``L`` the Neumann Laplacian, the known pixels its
Dirichlet data), ``r = (1 - m) L u`` its residual and ``P`` the multilinear interpolation from the nodes, zero on the
known pixels (the Galerkin coarse space of two-level overlapping Schwarz: Toselli and Widlund, "Domain Decomposition
Methods - Algorithms and Theory", 2005, chapter 3). The correction takes out the error's smooth part across the chunks,
which the local solves pass on slowly; the next sweep's local solves take out the rest.

Everything here is a block's own computation, the same on dask arrays and store to store:

* :meth:`CoarseGrid.operator_part`: a block's share of ``A_c``, from its mask grown by one pixel. ``A_c`` couples
  nodes at most two apart along each axis, so it is probed with ``5^d`` vectors, the hats of the nodes of one residue
  class modulo 5 summed (no two of them share a row of ``A_c``);
* :meth:`CoarseGrid.rhs_part`: a block's share of ``P^T r``;
* :func:`coarse_solve`: ``A_c`` assembled from the probes, per image, and ``A_c^{-1} P^T r`` by a sparse LU;
* :meth:`CoarseGrid.field`: ``P e_c`` on a grown block.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from .. import ops

__all__ = ["CoarseGrid", "coarse_solve"]

#: Nodes of one residue class modulo this are at least this far apart: ``A_c`` couples nodes at most two apart.
STRIDE = 5


@functools.lru_cache(maxsize=64)
def _hats(ends: tuple) -> np.ndarray:
    """(n, nodes): the hat weights of every pixel of an axis whose blocks end at ``ends`` (``[0, ..., n]``) on the
    nodes at the blocks' centres; constant beyond the first and last centre. Cached: every task of a solve asks."""
    n = ends[-1]
    centres = np.array([(a + b - 1) / 2 for a, b in zip(ends[:-1], ends[1:])])
    x = np.clip(np.arange(n, dtype=np.float64), centres[0], centres[-1])
    w = np.zeros((n, len(centres)))
    if len(centres) == 1:
        w[:, 0] = 1.0
        return w
    i = np.clip(np.searchsorted(centres, x, side="right") - 1, 0, len(centres) - 2)
    t = (x - centres[i]) / (centres[i + 1] - centres[i])
    rows = np.arange(n)
    w[rows, i] = 1.0 - t
    w[rows, i + 1] += t
    return w


def _contract(y: np.ndarray, weights) -> np.ndarray:
    """``y`` ``(b, c, *S)`` contracted along each spatial axis with its weights ``(S_k, n_k)``: ``(b, c, *n)``."""
    for w in weights:
        y = np.tensordot(y, w, axes=([2], [0]))
    return y


@dataclass(frozen=True)
class CoarseGrid:
    """The coarse grid of a decomposition: ``ends``, the block boundaries of each spatial axis
    (``(0, ..., size)``); one node at the centre of every block.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.dask.coarse import CoarseGrid
    >>> grid = CoarseGrid(((0, 4, 8), (0, 8)))
    >>> grid.nodes
    (2, 1)
    >>> e = grid.field(np.array([[[[1.0], [3.0]]]]), ((0, 1), (0, 8), (0, 8)))     # P e_c on the whole image
    >>> e[0, 0, :, 0].tolist()        # constant beyond the centres (1.5 and 5.5), linear between them
    [1.0, 1.0, 1.25, 1.75, 2.25, 2.75, 3.0, 3.0]
    """

    ends: tuple

    @classmethod
    def of(cls, chunks) -> "CoarseGrid":
        """The grid of a batched array's spatial ``chunks`` (a tuple of block sizes per axis)."""
        return cls(tuple(tuple(int(v) for v in itertools.accumulate(c, initial=0)) for c in chunks))

    @property
    def nodes(self) -> tuple:
        """Nodes per spatial axis."""
        return tuple(len(e) - 1 for e in self.ends)

    @property
    def size(self) -> int:
        """Nodes in all."""
        return int(np.prod(self.nodes))

    @property
    def probes(self) -> int:
        """Probe vectors of :meth:`operator_part`."""
        return STRIDE ** len(self.ends)

    def weights(self, region) -> list:
        """The hat weights of the pixels of ``region`` (a (lo, hi) per spatial axis), per axis ``(S_k, n_k)``."""
        return [_hats(e)[lo:hi] for e, (lo, hi) in zip(self.ends, region)]

    def field(self, ec: np.ndarray, region) -> np.ndarray:
        """``P e_c`` (before the mask) on ``region`` (a (lo, hi) per batch and spatial axis) for node values
        ``ec`` ``(b, c, *nodes)`` of the region's images: ``(b, c, *S)``."""
        return _contract(ec, [w.T for w in self.weights(region[1:])])

    def rhs_part(self, r: np.ndarray, region) -> np.ndarray:
        """The share of ``P^T r`` ``(b, c, *nodes)`` of the residual ``r`` ``(b, c, *S)`` (zero on the known pixels) on
        ``region`` (a (lo, hi) per spatial axis)."""
        return _contract(r, self.weights(region))

    def operator_part(self, mb: np.ndarray, faces, region) -> np.ndarray:
        """A block's share (its own pixels) of ``P^T A P`` applied to each probe: ``(b, probes, *nodes)``, for the mask
        ``mb`` ``(b, 1, *S)`` of the block grown by ``faces`` (one pixel where it has a neighbour) to ``region`` (a
        (lo, hi) per batch and spatial axis)."""
        nd = mb.ndim - 2
        unk = torch.from_numpy(np.ascontiguousarray(mb, dtype=np.float64) <= 0).to(torch.float64)
        own = (slice(None), slice(None)) + tuple(slice(lo, s - hi) for (lo, hi), s in zip(faces, mb.shape[2:]))
        grown = self.weights(region[1:])
        inner = [w[lo:w.shape[0] - hi] for w, (lo, hi) in zip(grown, faces)]
        # per axis and residue class: the summed hats of that class on the grown block's pixels
        classes = [[torch.from_numpy(w[:, q::STRIDE].sum(axis=1)) for q in range(STRIDE)] for w in grown]
        out = np.zeros((mb.shape[0], self.probes) + self.nodes)
        for p, q in enumerate(itertools.product(range(STRIDE), repeat=nd)):
            v = unk.clone()
            for k in range(nd):
                v *= classes[k][q[k]].reshape((-1,) + (1,) * (nd - 1 - k))
            av = (ops.laplacian(v, ndim=nd).mul_(unk).neg_())[own]       # A v = -(1 - m) L v, v zero on the mask
            out[:, p] = _contract(av.numpy(), inner)[:, 0]
        return out


def _matrix(probes: np.ndarray, nodes: tuple):
    """``A_c`` (a scipy CSC matrix, symmetrised) of one image from its summed probes (probes, *nodes)."""
    import scipy.sparse as sp

    nd = len(nodes)
    size = int(np.prod(nodes))
    index = np.arange(size).reshape(nodes)
    grid = np.indices(nodes)
    rows, cols, vals = [], [], []
    for offset in itertools.product(range(-2, 3), repeat=nd):
        j = [grid[k] + offset[k] for k in range(nd)]
        ok = np.ones(nodes, dtype=bool)
        for k in range(nd):
            ok &= (j[k] >= 0) & (j[k] < nodes[k])
        if not ok.any():
            continue
        jj = [j[k][ok] for k in range(nd)]
        probe = np.ravel_multi_index([v % STRIDE for v in jj], (STRIDE,) * nd)
        # column j of A_c, row i: the probe of j's class read at node i
        vals.append(probes[(probe,) + tuple(grid[k][ok] for k in range(nd))])
        rows.append(index[ok])
        cols.append(index[tuple(jj)])
    a = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size))
    a = ((a + a.T) * 0.5).tocsc()
    diag = a.diagonal()
    # a node without an unknown pixel in its support has an empty row: it takes no correction
    empty = diag <= 0
    if empty.any():
        a = a + sp.diags(empty.astype(np.float64)).tocsc()
    return a


def coarse_solve(probes: np.ndarray, rhs: np.ndarray, nodes: tuple) -> np.ndarray:
    """``e_c = A_c^{-1} P^T r`` per image, in float64.

    ``probes`` ``(B or 1, probes, *nodes)``: the summed :meth:`CoarseGrid.operator_part` (one mask for every image
    where B is 1); ``rhs`` ``(B, C, *nodes)``: the summed :meth:`CoarseGrid.rhs_part`; returns ``(B, C, *nodes)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.dask.coarse import CoarseGrid, coarse_solve
    >>> grid = CoarseGrid(((0, 4, 8), (0, 4, 8)))
    >>> m = np.zeros((1, 1, 8, 8))
    >>> m[..., 0, 0] = 1                                             # one known pixel
    >>> probes = grid.operator_part(m, ((0, 0), (0, 0)), ((0, 1), (0, 8), (0, 8)))
    >>> ec = coarse_solve(probes, np.ones((1, 1, 2, 2)), grid.nodes)
    >>> ec.shape, bool(np.isfinite(ec).all())
    ((1, 1, 2, 2), True)
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    B, C = rhs.shape[:2]
    out = np.zeros(rhs.shape)
    factors = {}
    for b in range(B):
        i = b if probes.shape[0] > 1 else 0
        if i not in factors:
            a = _matrix(probes[i], nodes)
            try:
                factors[i] = splu(a)
            except RuntimeError:       # singular: two nodes whose hats share their only unknown pixels
                shift = 1e-10 * max(float(a.diagonal().max()), 1.0)
                factors[i] = splu((a + shift * sp.identity(a.shape[0], format="csc")).tocsc())
        out[b] = factors[i].solve(rhs[b].reshape(C, -1).T).T.reshape(rhs[b].shape)
    return out
