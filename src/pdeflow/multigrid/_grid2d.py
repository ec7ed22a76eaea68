"""The 2-D grids of :class:`~pdeflow.multigrid.Multigrid`: bilinear grid transfers, the phase layout, the
transfers between a level's phases and the next coarser grid, the 9-point Galerkin coarse operators built in
that layout and the coarse levels (see the package's docstring)."""
from __future__ import annotations

import torch

from ._galerkin import coarsen, pinv_spd

_OFFSETS = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]   # stencil entry k = 3 (a + 1) + (b + 1)
#: The entries a coarse operator stores: the centre (k = 4) and the couplings to the neighbours before it. The
#: operators are symmetric, so entry ``8 - k`` at a point is entry ``k`` at the neighbour it couples to: four
#: quarter-size arrays less per level.
STORED = 5


# ---------------------------------------------------------------------------
# Bilinear (vertex-centred) interpolation and its transpose, natural layout
# ---------------------------------------------------------------------------

def _prolong_last(c: torch.Tensor, n: int) -> torch.Tensor:
    out = c.new_empty(*c.shape[:-1], n)
    out[..., 0::2] = c
    no = n // 2
    if no:
        cpad = torch.cat([c, c[..., -1:]], dim=-1)
        out[..., 1::2] = 0.5 * (cpad[..., :no] + cpad[..., 1:no + 1])
    return out


def _restrict_last(g: torch.Tensor) -> torch.Tensor:
    n = g.shape[-1]
    gc = g[..., 0::2].clone()
    no = n // 2
    if no:
        go = 0.5 * g[..., 1::2]
        gc[..., :no] += go
        if no == gc.shape[-1]:   # n even: the last odd point leans on c[-1] twice
            gc[..., 1:] += go[..., :-1]
            gc[..., -1:] += go[..., -1:]
        else:
            gc[..., 1:] += go
    return gc


def prolong(c: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Bilinear interpolation from the coarse grid ``(ceil(H/2), ceil(W/2))`` to ``(H, W)``.

    Vertex-centred: ``fine[2I, 2J] = c[I, J]``, points between two coarse
    points take their mean (four: their mean), and a last odd row or column
    copies its one coarse neighbour, so constants are kept. The multigrid
    prolongation of :class:`Multigrid` (there in the phase layout).

    Parameters
    ----------
    c : Tensor, shape (..., ceil(H/2), ceil(W/2))
    H, W : int
        The fine grid.

    Returns
    -------
    Tensor, shape (..., H, W)

    Examples
    --------
    >>> import torch
    >>> from pdeflow.multigrid import prolong
    >>> prolong(torch.tensor([[0.0, 2.0], [4.0, 6.0]]), 3, 4)
    tensor([[0., 1., 2., 2.],
            [2., 3., 4., 4.],
            [4., 5., 6., 6.]])
    """
    x = _prolong_last(c, W)
    return _prolong_last(x.transpose(-1, -2), H).transpose(-1, -2)


def restrict(g: torch.Tensor) -> torch.Tensor:
    """The transpose of :func:`prolong`: ``(..., H, W)`` to ``(..., ceil(H/2), ceil(W/2))``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.multigrid import prolong, restrict
    >>> restrict(torch.ones(3, 4))
    tensor([[2.2500, 3.7500],
            [2.2500, 3.7500]])
    >>> c, y = torch.rand(2, 2, dtype=torch.float64), torch.rand(3, 4, dtype=torch.float64)
    >>> bool(torch.isclose((prolong(c, 3, 4) * y).sum(), (c * restrict(y)).sum()))
    True
    """
    x = _restrict_last(g)
    return _restrict_last(x.transpose(-1, -2)).transpose(-1, -2)


# ---------------------------------------------------------------------------
# The phase layout: (..., H, W) <-> (..., 2, 2, ceil(H/2), ceil(W/2))
# ---------------------------------------------------------------------------

def to_phases(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out[..., a, b, i, j] = x[..., 2i + a, 2j + b]``, zero where that is outside the grid."""
    H, W = x.shape[-2:]
    for a in (0, 1):
        nr = (H - a + 1) // 2
        for b in (0, 1):
            nc = (W - b + 1) // 2
            p = out[..., a, b, :, :]
            p[..., :nr, :nc].copy_(x[..., a::2, b::2])
            if nr < p.shape[-2]:
                p[..., nr:, :].zero_()
            if nc < p.shape[-1]:
                p[..., :, nc:].zero_()
    return out


def from_phases(p: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    H, W = out.shape[-2:]
    for a in (0, 1):
        nr = (H - a + 1) // 2
        for b in (0, 1):
            nc = (W - b + 1) // 2
            out[..., a::2, b::2].copy_(p[..., a, b, :nr, :nc])
    return out


def rows_from_phases(p: torch.Tensor, r0: int, r1: int, out: torch.Tensor) -> torch.Tensor:
    """Rows ``r0:r1`` of the natural layout of ``p`` into ``out`` (..., r1 - r0, W) (any dtype)."""
    W = out.shape[-1]
    for a in (0, 1):
        ra = r0 + (a - r0) % 2   # the first row of parity a
        if ra >= r1:
            continue
        n, i0 = len(range(ra, r1, 2)), (ra - a) // 2
        for b in (0, 1):
            nc = (W - b + 1) // 2
            out[..., ra - r0::2, b::2].copy_(p[..., a, b, i0:i0 + n, :nc])
    return out


def phase_shape(H: int, W: int) -> tuple[int, int, int, int]:
    return (2, 2, (H + 1) // 2, (W + 1) // 2)


_SHIFT = {-1: (slice(1, None), slice(None, -1)), 0: (slice(None), slice(None)), 1: (slice(None, -1), slice(1, None))}


# Grid transfer between a level's phases and the next coarser grid (natural layout, the size of a phase).
# Along one axis, a fine odd point 2J+1 is (c[J] + c[J+1]) / 2, or c[J] alone if it is the grid's last point
# (``even``: the fine size is even); past the grid (odd fine size) it does not exist and stays zero.

def interp(c: torch.Tensor, out: torch.Tensor, dim: int, even: bool) -> torch.Tensor:
    """``out`` = the odd points along ``dim`` (-1 or -2) interpolated from ``c`` (same shape)."""
    n = c.shape[dim]
    lo, hi, last = c.narrow(dim, 0, n - 1), c.narrow(dim, 1, n - 1), out.narrow(dim, n - 1, 1)
    o = out.narrow(dim, 0, n - 1)
    torch.add(lo, hi, out=o)
    o.mul_(0.5)
    if even:
        last.copy_(c.narrow(dim, n - 1, 1))
    else:
        last.zero_()
    return out


def restrict_add(u: torch.Tensor, acc: torch.Tensor, dim: int, even: bool) -> None:
    """``acc +=`` the transpose of :func:`interp` applied to ``u`` (values on the odd points)."""
    n = u.shape[dim]
    acc.add_(u, alpha=0.5)
    if n > 1:
        acc.narrow(dim, 1, n - 1).add_(u.narrow(dim, 0, n - 1), alpha=0.5)
    if even:
        acc.narrow(dim, n - 1, 1).add_(u.narrow(dim, n - 1, 1), alpha=0.5)


# ---------------------------------------------------------------------------
# Galerkin coarse operators from stencils, one axis at a time
# ---------------------------------------------------------------------------

def _coarsen_axis(S: dict, n: int, dim: int) -> dict:
    """``P^T A P`` for the 1-D bilinear ``P`` along ``dim`` (-2: rows, -1: columns); see
    :func:`_coarsen_rows`. Columns are coarsened as the rows of the transposed stencil (strided
    access along the last axis is several times slower than along rows)."""
    if dim == -2:
        return _coarsen_rows(S, n)
    T = {(dx, dy): t.transpose(-1, -2).contiguous() for (dy, dx), t in S.items()}
    return {(dy, dx): t.transpose(-1, -2) for (dx, dy), t in _coarsen_rows(T, n).items()}


def _coarsen_rows(S: dict, n: int, dim: int = -2) -> dict:
    """``P^T A P`` for the 1-D bilinear ``P`` along ``dim`` (-2: rows, -1: columns) of a 2-D stencil.

    ``S`` maps offsets ``(dy, dx)`` to tensors ``(..., h, w)``: ``S[(dy, dx)][i, j]`` is the
    entry of ``A`` coupling point ``(i, j)`` to ``(i + dy, j + dx)`` (zero where that is
    outside the grid). ``n`` is the size along ``dim``; the result has ``ceil(n / 2)``.
    """
    return coarsen(S, n, dim + 2, ndim=2)


def fine_block(k: torch.Tensor, d: torch.Tensor | None, f0: int, f1: int, centre_only: bool = False) -> dict:
    """Rows ``f0:f1`` of the 5-point stencil of ``W (-L) W + D`` (no ``K``: the Galerkin products use
    ``W P``); couplings to rows outside the block are left out (zero). ``centre_only``: the
    diagonal ``w deg + d`` alone."""
    H, W = k.shape[-2:]
    kb = k[..., f0:f1, :]
    n = f1 - f0
    w = 1.0 - kb
    S = {}
    if not centre_only:
        V = kb.new_zeros(*kb.shape[:-2], n + 1, W)
        torch.mul(w[..., :-1, :], w[..., 1:, :], out=V[..., 1:n, :]).neg_()
        Hc = kb.new_zeros(*kb.shape[:-2], n, W + 1)
        torch.mul(w[..., :, :-1], w[..., :, 1:], out=Hc[..., :, 1:W]).neg_()
        S = {(-1, 0): V[..., :-1, :], (1, 0): V[..., 1:, :], (0, -1): Hc[..., :, :-1], (0, 1): Hc[..., :, 1:]}
    centre = w.mul_(4.0)   # w deg, the degree counting the neighbours inside the grid
    edges = [(Ellipsis, slice(None), 0), (Ellipsis, slice(None), W - 1)]
    if f0 == 0:
        edges.append((Ellipsis, 0, slice(None)))
    if f1 == H:
        edges.append((Ellipsis, n - 1, slice(None)))
    for sl in edges:
        centre[sl] -= 1.0 - kb[sl]
    if d is not None:
        centre += d[..., f0:f1, :]
    S[(0, 0)] = centre
    return S


def rows_to_phases(x: torch.Tensor, r0: int, out: torch.Tensor) -> torch.Tensor:
    """Write natural rows ``r0:r0 + x.shape[-2]`` (..., n, W) into the phase layout ``out``."""
    n, W = x.shape[-2:]
    r1 = r0 + n
    for a in (0, 1):
        ra = r0 + (a - r0) % 2
        if ra >= r1:
            continue
        m, i0 = len(range(ra, r1, 2)), (ra - a) // 2
        for b in (0, 1):
            nc = (W - b + 1) // 2
            out[..., a, b, i0:i0 + m, :nc].copy_(x[..., ra - r0::2, b::2])
    return out


def galerkin(fine_block, h: int, w: int, like: torch.Tensor, lead, strip: int = 1 << 17) -> torch.Tensor:
    """The 9-point Galerkin operator ``P^T A P`` of the grid ``(ceil(h/2), ceil(w/2))`` in the phase
    layout, its first :data:`STORED` entries (the others by symmetry), shape (*lead, STORED, 2, 2, ...),
    from ``fine_block(f0, f1)``: rows ``f0:f1`` of ``A``'s stencil (a dict, see :func:`_coarsen_axis`).
    Built in strips of ``strip // w`` coarse rows (4 at least), so the memory beyond the result is a strip's
    (about 20 elements a coarse row's element). Empty rows (all interpolants on known pixels) get the identity."""
    hc, wc = (h + 1) // 2, (w + 1) // 2
    out = like.new_zeros(*lead, STORED, *phase_shape(hc, wc))
    R = max(4, strip // max(w, 1))
    for I0 in range(0, hc, R):
        I1 = min(hc, I0 + R)
        f0, f1 = max(0, 2 * I0 - 2), min(h, 2 * I1 + 1)   # every fine row that couples to rows I0:I1
        T = _coarsen_axis(_coarsen_axis(fine_block(f0, f1), f1 - f0, -2), w, -1)
        o = I0 - f0 // 2
        for kk, off in enumerate(_OFFSETS[:STORED]):
            if off in T:
                blk = T[off][..., o:o + I1 - I0, :]
                if kk == 4:
                    blk.masked_fill_(blk == 0, 1.0)
                rows_to_phases(blk, I0, out[..., kk, :, :, :, :])
    return out


def phase_block(S_ph: torch.Tensor, h: int, w: int):
    """``fine_block`` for :func:`galerkin` reading rows of a 9-point operator in the phase layout (its
    :data:`STORED` entries; entry ``(dy, dx)`` at a point is entry ``(-dy, -dx)`` at the point it couples to)."""
    lead = S_ph.shape[:-5]

    def block(f0, f1):
        res = {}
        for kk, off in enumerate(_OFFSETS[:STORED]):
            res[off] = rows_from_phases(S_ph[..., kk, :, :, :, :], f0, f1, S_ph.new_empty(*lead, f1 - f0, w))
        for kk, (dy, dx) in enumerate(_OFFSETS[STORED:], STORED):
            t = S_ph.new_zeros(*lead, f1 - f0, w)
            r0, r1 = f0 + dy, min(f1 + dy, h)
            if r1 > r0:
                mirror = rows_from_phases(S_ph[..., 8 - kk, :, :, :, :], r0, r1, S_ph.new_empty(*lead, r1 - r0, w))
                (dst, src) = {-1: ((slice(1, None)), slice(None, -1)), 0: (slice(None), slice(None)),
                              1: (slice(None, -1), slice(1, None))}[dx]
                t[..., :r1 - r0, dst] = mirror[..., :, src]
            res[(dy, dx)] = t
        return res
    return block


def _dense(S: dict, h: int, w: int) -> torch.Tensor:
    """The ``(..., h w, h w)`` matrix of a stencil."""
    like = S[(0, 0)]
    n = h * w
    A = like.new_zeros(*like.shape[:-2], n, n)
    I = torch.arange(h, device=like.device)[:, None].expand(h, w)
    J = torch.arange(w, device=like.device)[None, :].expand(h, w)
    for (a, b), T in S.items():
        ok = (I + a >= 0) & (I + a < h) & (J + b >= 0) & (J + b < w)
        A[..., (I * w + J)[ok], ((I + a) * w + (J + b))[ok]] = T[..., ok]
    return A



# ---------------------------------------------------------------------------
# Levels
# ---------------------------------------------------------------------------

class Coarse:
    """A coarse grid with a 9-point operator in the phase layout (four-colour Gauss-Seidel)."""

    def __init__(self, S_ph: torch.Tensor, h: int, w: int):
        self.h, self.w = h, w
        self.S = S_ph
        diag = S_ph[..., 4, :, :, :, :]
        self.invd = torch.reciprocal(diag).masked_fill_(diag == 0, 0.0)   # zero outside the grid
        # per phase: the 8 neighbour terms (the stored entry's stencil index, phase and slice, the neighbour's
        # phase, destination and source slices), one over the whole phase first; ``pre``: those the
        # pre-smoother needs (it starts from zero and visits the phases in the order (0, 0), (0, 1), (1, 0),
        # (1, 1)). An entry past the stored ones is the mirrored entry at the neighbour (symmetry).
        full = (Ellipsis, slice(None), slice(None))
        order = ((0, 0), (0, 1), (1, 0), (1, 1))
        self.terms, self.pre, self.res = {}, {}, {}
        for pi, (pa, pb) in enumerate(order):
            lst = []
            for kk, (dy, dx) in enumerate(_OFFSETS):
                if kk == 4:
                    continue
                qa, qb = (pa + dy) % 2, (pb + dx) % 2
                (di, si), (dj, sj) = _SHIFT[(pa + dy) // 2], _SHIFT[(pb + dx) // 2]
                dst, src = (Ellipsis, di, dj), (Ellipsis, si, sj)
                entry = (kk, pa, pb, dst) if kk < STORED else (8 - kk, qa, qb, src)
                lst.append((entry, qa, qb, dst, src))
            lst.sort(key=lambda t: t[3] != full)
            self.terms[(pa, pb)] = lst
            self.pre[(pa, pb)] = [t for t in lst if (t[1], t[2]) in order[:pi]]
            # after the pre-smoother a colour's residual comes from the colours updated after it only
            # (they were zero when it was updated): - sum of those terms
            self.res[(pa, pb)] = [t for t in lst if (t[1], t[2]) in order[pi + 1:]]


class Dense:
    """The coarsest grid: a dense pseudo-inverse."""

    def __init__(self, S: dict, h: int, w: int):
        self.h, self.w = h, w
        self.inv = pinv_spd(_dense(S, h, w))
