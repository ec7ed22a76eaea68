"""Geometric multigrid for the masked Neumann Laplacian, the system of diffusion inpainting.

The system. On an ``H x W`` grid with a *known* indicator ``k`` (1 on the
Dirichlet pixels), ``w = 1 - k`` and an optional non-negative diagonal ``d``
(zero where ``k = 1``),

    A x = w * (-L (w * x)) + (k + d) * x,

with ``L`` the 5-point Neumann Laplacian of :func:`pdeflow.ops.laplacian`.
``A`` is symmetric positive definite as soon as every image has a known pixel
(or a positive ``d``). :class:`Multigrid` solves ``A x = b`` for right-hand
sides that are zero on the known pixels (the unknowns of diffusion
inpainting) by conjugate gradients preconditioned with one symmetric V-cycle.

The hierarchy. Coarse grids halve each side (vertex-centred: coarse point
``I`` sits on fine point ``2 I``); the prolongation is bilinear
interpolation, restricted to the unknown pixels on the finest grid, and the
restriction its transpose. The coarse operators are the Galerkin products
``R A P``, built one axis at a time from the stencils (a 5-point stencil
becomes a 9-point one and stays 9-point), so a mask of any sparsity is
coarsened faithfully. Grids are coarsened until at most ``coarsest`` points
are left, which are solved by a dense pseudo-inverse.

The smoother. Vectors live in a *phase layout*: the four sub-grids of even
and odd rows and columns, each contiguous, ``(..., 2, 2, ceil(H/2),
ceil(W/2))``. On the finest grid (5-point stencil) the phases (even, even) and
(odd, odd) are the red points of red-black Gauss-Seidel and the other two the
black ones; a half-sweep updates one colour in place from contiguous shifted
views of the other. On the 9-point coarse grids no two points of one phase
are neighbours, so the four phases are the four colours of a four-colour
Gauss-Seidel. Pre-smoothing visits the colours in one order and
post-smoothing in the reverse one, so the V-cycle is a symmetric
preconditioner. Points whose value the next half-sweep overwrites are neither
restricted from nor prolongated to (their residual is zero after the
pre-smoother; their correction is overwritten by the post-smoother).

Precision. Everything runs in the dtype of the mask (float32 or float64) on
its device. The stopping rule is the relative residual
``||b - A x|| / ||b||`` per image; when CG's recurrence residual says it is
reached, the true residual is recomputed in float64 (in strips of rows, so
the memory stays a small multiple of the image) and the iteration goes on
from it if it is not.

Volumes. :class:`Multigrid3d` is the same solver for the 7-point Laplacian on
``(D, H, W)`` grids, with a grid ``spacing`` (anisotropic voxels): trilinear
interpolation, Galerkin 27-point coarse operators built one axis at a time,
semi-coarsening where the voxels are anisotropic, red-black Gauss-Seidel on
the finest grid and eight-colour Gauss-Seidel on the coarse ones, in the
natural layout (a colour is a strided view).

References
----------
.. [1] U. Trottenberg, C. W. Oosterlee, A. Schueller, "Multigrid", Academic
   Press, 2001 (Galerkin coarse grids, red-black and four-colour
   Gauss-Seidel smoothing).
.. [2] S. Kaemper, V. Chizhov, J. Weickert, "Efficient and accurate
   inpainting of 4K colour images on the GPU" (multigrid for homogeneous
   diffusion inpainting), 2024.
"""
from __future__ import annotations

import functools

import torch

from .errors import UserInputError
from .linalg import cg
from .ops import laplacian

__all__ = ["Multigrid", "Multigrid3d", "prolong", "restrict", "prolong3", "restrict3"]

_OFFSETS = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]   # stencil entry k = 3 (a + 1) + (b + 1)
_STRIP_ELEMENTS = 1 << 20   # float64 residual check: elements per strip of rows (8 MiB)


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

def _to_phases(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
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


def _from_phases(p: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    H, W = out.shape[-2:]
    for a in (0, 1):
        nr = (H - a + 1) // 2
        for b in (0, 1):
            nc = (W - b + 1) // 2
            out[..., a::2, b::2].copy_(p[..., a, b, :nr, :nc])
    return out


def _rows_from_phases(p: torch.Tensor, r0: int, r1: int, out: torch.Tensor) -> torch.Tensor:
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


def _phase_shape(H: int, W: int) -> tuple[int, int, int, int]:
    return (2, 2, (H + 1) // 2, (W + 1) // 2)


_SHIFT = {-1: (slice(1, None), slice(None, -1)), 0: (slice(None), slice(None)), 1: (slice(None, -1), slice(1, None))}


# Grid transfer between a level's phases and the next coarser grid (natural layout, the size of a phase).
# Along one axis, a fine odd point 2J+1 is (c[J] + c[J+1]) / 2, or c[J] alone if it is the grid's last point
# (``even``: the fine size is even); past the grid (odd fine size) it does not exist and stays zero.

def _interp(c: torch.Tensor, out: torch.Tensor, dim: int, even: bool) -> torch.Tensor:
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


def _restrict_add(u: torch.Tensor, acc: torch.Tensor, dim: int, even: bool) -> None:
    """``acc +=`` the transpose of :func:`_interp` applied to ``u`` (values on the odd points)."""
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
    return _coarsen(S, n, dim + 2, ndim=2)


def _fine_block(k: torch.Tensor, d: torch.Tensor | None, f0: int, f1: int, centre_only: bool = False) -> dict:
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


def _rows_to_phases(x: torch.Tensor, r0: int, out: torch.Tensor) -> torch.Tensor:
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


def _galerkin(fine_block, h: int, w: int, like: torch.Tensor, lead) -> torch.Tensor:
    """The 9-point Galerkin operator ``P^T A P`` of the grid ``(ceil(h/2), ceil(w/2))`` in the phase
    layout, shape (*lead, 9, 2, 2, ...), from ``fine_block(f0, f1)``: rows ``f0:f1`` of ``A``'s
    stencil (a dict, see :func:`_coarsen_axis`). Built in strips of coarse rows, so the memory
    beyond the result is a strip's. Empty rows (all interpolants on known pixels) get the identity."""
    hc, wc = (h + 1) // 2, (w + 1) // 2
    out = like.new_zeros(*lead, 9, *_phase_shape(hc, wc))
    R = max(4, (1 << 17) // max(w, 1))   # coarse rows per strip: a strip of the fine stencil is ~ 10 MB
    for I0 in range(0, hc, R):
        I1 = min(hc, I0 + R)
        f0, f1 = max(0, 2 * I0 - 2), min(h, 2 * I1 + 1)   # every fine row that couples to rows I0:I1
        T = _coarsen_axis(_coarsen_axis(fine_block(f0, f1), f1 - f0, -2), w, -1)
        o = I0 - f0 // 2
        for kk, off in enumerate(_OFFSETS):
            if off in T:
                blk = T[off][..., o:o + I1 - I0, :]
                if kk == 4:
                    blk.masked_fill_(blk == 0, 1.0)
                _rows_to_phases(blk, I0, out[..., kk, :, :, :, :])
    return out


def _phase_block(S_ph: torch.Tensor, h: int, w: int):
    """``fine_block`` for :func:`_galerkin` reading rows of a 9-point operator in the phase layout."""
    def block(f0, f1):
        res = {}
        for kk, off in enumerate(_OFFSETS):
            t = S_ph.new_empty(*S_ph.shape[:-5], f1 - f0, w)
            res[off] = _rows_from_phases(S_ph[..., kk, :, :, :, :], f0, f1, t)
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


def _pinv_spd(A: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of a batch of symmetric positive semi-definite matrices (computed in float64)."""
    A64 = A.double()
    A64 = 0.5 * (A64 + A64.transpose(-1, -2))
    evals, evecs = torch.linalg.eigh(A64)
    cut = evals.amax(-1, keepdim=True) * (A.shape[-1] * torch.finfo(A.dtype).eps * 10)
    inv = torch.where(evals > cut, 1.0 / torch.where(evals > cut, evals, torch.ones_like(evals)),
                      torch.zeros_like(evals))
    return ((evecs * inv[..., None, :]) @ evecs.transpose(-1, -2)).to(A.dtype)


# ---------------------------------------------------------------------------
# Levels
# ---------------------------------------------------------------------------

class _Coarse:
    """A coarse grid with a 9-point operator in the phase layout (four-colour Gauss-Seidel)."""

    def __init__(self, S_ph: torch.Tensor, h: int, w: int):
        self.h, self.w = h, w
        self.S = S_ph
        diag = S_ph[..., 4, :, :, :, :]
        self.invd = torch.reciprocal(diag).masked_fill_(diag == 0, 0.0)   # zero outside the grid
        # per phase: the 8 neighbour terms (stencil index, neighbour phase, destination and source slices),
        # one over the whole phase first; ``pre``: those the pre-smoother needs (it starts from zero and
        # visits the phases in the order (0, 0), (0, 1), (1, 0), (1, 1))
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
                lst.append((kk, qa, qb, (Ellipsis, di, dj), (Ellipsis, si, sj)))
            lst.sort(key=lambda t: t[3] != full)
            self.terms[(pa, pb)] = lst
            self.pre[(pa, pb)] = [t for t in lst if (t[1], t[2]) in order[:pi]]
            # after the pre-smoother a colour's residual comes from the colours updated after it only
            # (they were zero when it was updated): - sum of those terms
            self.res[(pa, pb)] = [t for t in lst if (t[1], t[2]) in order[pi + 1:]]


class _Dense:
    """The coarsest grid: a dense pseudo-inverse."""

    def __init__(self, S: dict, h: int, w: int):
        self.h, self.w = h, w
        self.inv = _pinv_spd(_dense(S, h, w))


# ---------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------

class Multigrid:
    """Conjugate gradients preconditioned by a geometric multigrid V-cycle, for diffusion inpainting.

    Solves ``A x = b`` for the masked Neumann Laplacian
    ``A x = w (-L (w x)) + (k + d) x`` (see the module doc) with ``b`` zero on
    the known pixels, batched: each image (all its channels together) has
    its own stopping rule. The hierarchy is built once, in the constructor,
    and serves any number of right-hand sides (the forward and the adjoint
    solve of :func:`pdeflow.inpaint.diffuse`).

    Parameters
    ----------
    known : Tensor, shape (H, W) or (Bm, Cm, H, W)
        1 on the known (Dirichlet) pixels, 0 elsewhere; float32 or float64
        (the working dtype and device). ``Bm`` and ``Cm`` broadcast against
        the right-hand sides' batch and channel axes.
    diag : Tensor, optional
        A non-negative diagonal ``d`` added on the unknown pixels (shape of
        ``known``, zero on the known pixels), e.g. the continuous-mask
        term of :func:`pdeflow.inpaint.diffuse`.
    coarsest : int, optional
        Grids with at most this many points are solved densely (default 256).

    Notes
    -----
    Memory, in the working dtype: the finest grid keeps 2.5 arrays of the
    image's size (the diagonal, its inverse and the unknowns' indicator on
    half the points), the first coarse grid ten arrays of a quarter of it
    (the nine stencil entries and the inverse diagonal), the coarser ones a
    third of that; a solve four vectors and the solution; the hierarchy is
    built and the float64 residual computed in strips of rows.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.multigrid import Multigrid
    >>> known = torch.zeros(1, 1, 40, 50, dtype=torch.float64)
    >>> known[..., 5, 7] = known[..., 30, 41] = 1
    >>> mg = Multigrid(known)
    >>> f = torch.zeros_like(known)
    >>> f[..., 5, 7], f[..., 30, 41] = 1.0, 3.0
    >>> b = (1 - known) * torch.nn.functional.conv2d(   # b = w L(k f), zero on the known pixels
    ...     torch.nn.functional.pad(known * f, (1, 1, 1, 1), mode="replicate"),
    ...     torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]], dtype=torch.float64))
    >>> x, iterations, residual = mg.solve(b, tol=1e-10)
    >>> bool(residual.item() <= 1e-10), int(iterations.item()) < 20
    (True, True)
    >>> bool(torch.allclose(mg.apply(x), b, atol=1e-9))
    True
    """

    def __init__(self, known: torch.Tensor, diag: torch.Tensor | None = None, *, coarsest: int = 256):
        if not isinstance(known, torch.Tensor) or known.dim() not in (2, 3, 4) \
                or known.dtype not in (torch.float32, torch.float64) or known.numel() == 0:
            raise UserInputError("Multigrid: known must be a non-empty float32 or float64 tensor of shape (H, W), "
                                 f"(C, H, W) or (B, C, H, W), got {getattr(known, 'shape', type(known).__name__)}"
                                 f"{' of ' + str(known.dtype) if isinstance(known, torch.Tensor) else ''}")
        k = known
        while k.dim() < 4:
            k = k[None]
        d = None
        if diag is not None:
            if not isinstance(diag, torch.Tensor) or diag.shape[-2:] != k.shape[-2:]:
                raise UserInputError(f"Multigrid: diag must be a tensor of the shape of known {tuple(known.shape)}, "
                                     f"got {getattr(diag, 'shape', type(diag).__name__)}")
            d = diag.to(device=k.device, dtype=k.dtype)
            while d.dim() < 4:
                d = d[None]
            d = d.expand_as(k) if d.shape != k.shape else d
        self.k, self.d = k, d
        H, W = k.shape[-2:]
        self.shape = (H, W)
        ph = _phase_shape(H, W)
        lead = k.shape[:2]
        # finest grid, phase layout: the diagonal w deg + d (0 on known pixels and outside the grid)
        self.diag = k.new_zeros(*lead, *ph)
        R = max(2, (1 << 18) // max(W, 1))
        for f0 in range(0, H, R):
            _rows_to_phases(_fine_block(k, d, f0, min(H, f0 + R), True)[(0, 0)], f0, self.diag)
        self.invd = torch.reciprocal(self.diag).masked_fill_(self.diag == 0, 0.0)
        self.w_red = (self.diag[..., (0, 1), (0, 1), :, :] != 0).to(k.dtype)   # w on phases (0,0), (1,1)
        self.levels: list = []
        self._buffers: dict = {}
        self._direct = H * W <= coarsest
        if self._direct:
            # small image: the whole problem is dense (with the identity rows of the known pixels)
            S = _fine_block(k, d, 0, H)
            S[(0, 0)] = S[(0, 0)] + k
            self.levels.append(_Dense(S, H, W))
            return
        block = functools.partial(_fine_block, k, d)
        h, wd = H, W
        while True:
            S_ph = _galerkin(block, h, wd, k, lead)
            h, wd = (h + 1) // 2, (wd + 1) // 2
            if h * wd <= coarsest:
                self.levels.append(_Dense(_phase_block(S_ph, h, wd)(0, h), h, wd))
                break
            self.levels.append(_Coarse(S_ph, h, wd))
            block = _phase_block(S_ph, h, wd)

    @property
    def grids(self) -> list[tuple[int, int]]:
        """The grid sizes from the finest to the coarsest (one: the problem is solved densely)."""
        return [self.shape] + ([] if self._direct else [(lv.h, lv.w) for lv in self.levels])

    # -- operator ---------------------------------------------------------------------------------

    @staticmethod
    def _nbr_sum(x: torch.Tensor, a: int, b: int, out: torch.Tensor) -> torch.Tensor:
        """Sum of the 4 grid neighbours of phase (a, b) (zero outside the grid) into ``out``."""
        v, hz = x[..., 1 - a, b, :, :], x[..., a, 1 - b, :, :]
        torch.add(v, hz, out=out)
        if a == 0:
            out[..., 1:, :] += v[..., :-1, :]
        else:
            out[..., :-1, :] += v[..., 1:, :]
        if b == 0:
            out[..., :, 1:] += hz[..., :, :-1]
        else:
            out[..., :, :-1] += hz[..., :, 1:]
        return out

    def _apply_phases(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``A x`` in the phase layout, for ``x`` zero on the known pixels: ``diag (x - invd * nbrs)``."""
        for a in (0, 1):
            for b in (0, 1):
                y = out[..., a, b, :, :]
                self._nbr_sum(x, a, b, y)
                torch.addcmul(x[..., a, b, :, :], self.invd[..., a, b, :, :], y, value=-1, out=y)
                y.mul_(self.diag[..., a, b, :, :])
        return out

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x`` (B, C, H, W) zero on the known pixels (natural layout)."""
        y = -laplacian(x) * (1.0 - self.k)
        return y if self.d is None else y + self.d * x

    # -- V-cycle -----------------------------------------------------------------------------------

    def _bufs(self, lead):
        key = tuple(lead)
        if key not in self._buffers:
            self._buffers.clear()
            k = self.k
            H, W = self.shape
            ph = _phase_shape(H, W)
            new = k.new_empty
            b = {"s": new(*lead, *ph[2:]), "t": new(*lead, *ph[2:]), "res": new(*lead, 2, *ph[2:]),
                 "lv": []}
            for lv in self.levels:
                hh, ww = lv.h, lv.w
                e = {"nat": new(*lead, hh, ww)}
                if isinstance(lv, _Coarse):
                    p = _phase_shape(hh, ww)
                    e.update(r=new(*lead, *p), x=new(*lead, *p), acc=new(*lead, *p[2:]),
                             res=new(*lead, 3, *p[2:]), t=new(*lead, *p[2:]), t2=new(*lead, *p[2:]))
                b["lv"].append(e)
            self._buffers[key] = b
        return self._buffers[key]

    def _vcycle(self, r: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``x = M^{-1} r`` (phase layout, finest grid); ``x`` is overwritten."""
        B = self._bufs(r.shape[:-4])
        invd = self.invd
        if self._direct:
            H, W = self.shape
            nat = B["lv"][0]["nat"]
            _from_phases(r, nat)
            y = (self.levels[0].inv @ nat.reshape(*nat.shape[:-2], H * W, 1)).reshape(nat.shape)
            _to_phases(y, x)
            return torch.where(self.diag != 0, x, torch.zeros_like(x), out=x)
        s = B["s"]
        red, black = ((0, 0), (1, 1)), ((0, 1), (1, 0))
        # pre-smoothing, red then black (x = 0 before)
        for a, b in red:
            torch.mul(invd[..., a, b, :, :], r[..., a, b, :, :], out=x[..., a, b, :, :])
        for a, b in black:
            self._half_sweep(x, r, a, b)
        # residual: zero on the black points after their update
        res = B["res"]
        for i, (a, b) in enumerate(red):
            # r - diag x + nbrs, with x = invd r set while its neighbours were zero: w * nbrs
            y = res[..., i, :, :]
            self._nbr_sum(x, a, b, y)
            y.mul_(self.w_red[..., i, :, :])
        # restriction (w is already in the residual) to the first coarse grid
        H, W = self.shape
        c = B["lv"][0]["nat"]
        c.copy_(res[..., 0, :, :])
        t = B["t"]
        t.zero_()
        _restrict_add(res[..., 1, :, :], t, -1, W % 2 == 0)
        _restrict_add(t, c, -2, H % 2 == 0)
        e = self._coarse_cycle(B["lv"], 0, c)
        # prolongation to the red points (the black ones are overwritten next), on the unknowns only
        x[..., 0, 0, :, :].addcmul_(self.w_red[..., 0, :, :], e)
        _interp(e, t, -1, W % 2 == 0)
        _interp(t, s, -2, H % 2 == 0)
        x[..., 1, 1, :, :].addcmul_(self.w_red[..., 1, :, :], s)
        # post-smoothing, black then red
        for a, b in black:
            self._half_sweep(x, r, a, b)
        for a, b in red:
            self._half_sweep(x, r, a, b)
        return x

    def _half_sweep(self, x, r, a, b):
        y = x[..., a, b, :, :]
        self._nbr_sum(x, a, b, y)      # y does not take part in its own neighbour sum
        y.add_(r[..., a, b, :, :]).mul_(self.invd[..., a, b, :, :])

    def _coarse_cycle(self, bufs: list, li: int, c: torch.Tensor) -> torch.Tensor:
        """The correction on level ``li`` (natural layout in and out) for the restricted residual ``c``."""
        lv = self.levels[li]
        buf = bufs[li]
        if isinstance(lv, _Dense):
            n = lv.h * lv.w
            return (lv.inv @ c.reshape(*c.shape[:-2], n, 1)).reshape(c.shape)
        r, x, acc = buf["r"], buf["x"], buf["acc"]
        _to_phases(c, r)
        order = ((0, 0), (0, 1), (1, 0), (1, 1))
        for p in order:
            self._gs4(lv, x, r, acc, p, pre=True)
        res = buf["res"]
        for i, p in enumerate(order[:3]):   # zero on the last colour after its update
            self._res4(lv, x, res[..., i, :, :], p)
        h, w = lv.h, lv.w
        cn = bufs[li + 1]["nat"]
        t = buf["t"]
        cn.copy_(res[..., 0, :, :])
        _restrict_add(res[..., 1, :, :], cn, -1, w % 2 == 0)
        _restrict_add(res[..., 2, :, :], cn, -2, h % 2 == 0)
        e = self._coarse_cycle(bufs, li + 1, cn)
        x[..., 0, 0, :, :].add_(e)   # the last colour is overwritten first in the post-smoother
        x[..., 0, 1, :, :].add_(_interp(e, t, -1, w % 2 == 0))
        x[..., 1, 0, :, :].add_(_interp(e, t, -2, h % 2 == 0))
        for p in order[::-1]:
            self._gs4(lv, x, r, acc, p)
        return _from_phases(x, buf["nat"])

    @staticmethod
    def _res4(lv: _Coarse, x, acc, p):
        """The residual of colour ``p`` after the pre-smoother, into ``acc``."""
        pa, pb = p
        S = lv.S
        terms = lv.res[p]
        first = 0
        kk, qa, qb, dst, src = terms[0]
        if dst == (Ellipsis, slice(None), slice(None)):
            torch.mul(S[..., kk, pa, pb, :, :], x[..., qa, qb, :, :][src], out=acc).neg_()
            first = 1
        else:
            acc.zero_()
        for kk, qa, qb, dst, src in terms[first:]:
            acc[dst].addcmul_(S[..., kk, pa, pb, :, :][dst], x[..., qa, qb, :, :][src], value=-1)

    @staticmethod
    def _gs4(lv: _Coarse, x, r, acc, p, residual=False, pre=False):
        """Update colour ``p`` of ``x`` (or, with ``residual``, write its residual into ``acc``)."""
        pa, pb = p
        S = lv.S
        terms = lv.pre[p] if pre else lv.terms[p]
        rp = r[..., pa, pb, :, :]
        if not terms:
            torch.mul(lv.invd[..., pa, pb, :, :], rp, out=x[..., pa, pb, :, :])
            return
        first = 0
        kk, qa, qb, dst, src = terms[0]
        if dst == (Ellipsis, slice(None), slice(None)):
            torch.addcmul(rp, S[..., kk, pa, pb, :, :], x[..., qa, qb, :, :][src], value=-1, out=acc)
            first = 1
        else:
            acc.copy_(rp)
        for kk, qa, qb, dst, src in terms[first:]:
            acc[dst].addcmul_(S[..., kk, pa, pb, :, :][dst], x[..., qa, qb, :, :][src], value=-1)
        if residual:
            acc.addcmul_(S[..., 4, pa, pb, :, :], x[..., pa, pb, :, :], value=-1)
        else:
            torch.mul(lv.invd[..., pa, pb, :, :], acc, out=x[..., pa, pb, :, :])

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        """One V-cycle ``M^{-1} r`` for ``r`` (B, C, H, W) zero on the known pixels (natural layout)."""
        H, W = self.shape
        lead = r.shape[:-2]
        rp = _to_phases(r, r.new_empty(*lead, *_phase_shape(H, W)))
        xp = self._vcycle(rp, torch.empty_like(rp))
        return _from_phases(xp, r.new_empty(r.shape))

    # -- float64 residual --------------------------------------------------------------------------

    def residual(self, b: torch.Tensor, x: torch.Tensor | None, *, out: torch.Tensor | None = None):
        """``||b - A x||`` per image, in float64, shape (B,) (``x = None``: ``||b||``; ``x`` may be
        in the phase layout).

        Computed in strips of rows from the differences of neighbouring values (the
        Neumann Laplacian as a sum of fluxes), so the memory is a few strips; ``out``
        (optional, shape and dtype of ``b``) receives ``b - A x``.
        """
        B, C, H, W = b.shape
        N = B
        rows = max(1, _STRIP_ELEMENTS // max(1, B * C * W))
        f64 = dict(dtype=torch.float64, device=b.device)
        acc = torch.zeros(N, **f64)
        Y = torch.empty(B, C, min(rows, H), W, **f64)
        if x is not None:
            X = torch.empty(B, C, min(rows, H) + 2, W, **f64)
            Dv = torch.empty(B, C, min(rows, H) + 1, W, **f64)
            Dh = torch.empty(B, C, min(rows, H), max(W - 1, 0), **f64)
        k, d = self.k, self.d
        for r0 in range(0, H, rows):
            r1 = min(H, r0 + rows)
            n = r1 - r0
            y = Y[..., :n, :]
            y.copy_(b[..., r0:r1, :])
            if x is not None:
                # y = w (b + L x) - d x, with L x the sum of the fluxes to the neighbours in the grid
                h0, h1 = max(0, r0 - 1), min(H, r1 + 1)
                m, o = h1 - h0, r0 - h0          # strip rows with halo; row j of y is row o + j of xs
                xs = X[..., :m, :]
                if x.dim() == 6:
                    _rows_from_phases(x, h0, h1, xs)
                else:
                    xs.copy_(x[..., h0:h1, :])
                xm = xs[..., o:o + n, :]
                dv = Dv[..., :m - 1, :]
                torch.sub(xs[..., 1:, :], xs[..., :-1, :], out=dv)   # dv[i] = xs[i + 1] - xs[i]
                cnt = min(n, m - 1 - o)                              # rows with a neighbour below
                y[..., :cnt, :] += dv[..., o:o + cnt, :]
                j0 = 1 if o == 0 else 0                              # rows with a neighbour above
                y[..., j0:, :] -= dv[..., o + j0 - 1:o + n - 1, :]
                if W > 1:
                    e = Dh[..., :n, :]
                    torch.sub(xm[..., :, 1:], xm[..., :, :-1], out=e)
                    y[..., :, :-1] += e
                    y[..., :, 1:] -= e
                y.addcmul_(k[..., r0:r1, :], y, value=-1)            # (b + L x) w, b being zero where k = 1
                if d is not None:
                    y.addcmul_(d[..., r0:r1, :], xm, value=-1)
            if out is not None:
                out[..., r0:r1, :] = y
            yv = y.reshape(N, -1)
            acc += torch.bmm(yv[:, None, :], yv[:, :, None]).reshape(N)
        return acc.sqrt()

    # -- conjugate gradients -----------------------------------------------------------------------

    def solve(self, b: torch.Tensor, x0: torch.Tensor | None = None, *, tol: float = 1e-6,
              max_iter: int = 500, max_restarts: int = 3):
        """Solve ``A x = b`` per image to the relative residual ``tol``.

        The channels of an image are solved together (one block-diagonal
        system, its residual the norm over all channels), as
        :func:`pdeflow.linalg.cg` does; images stop independently.

        Parameters
        ----------
        b : Tensor, shape (B, C, H, W)
            Zero on the known pixels; dtype and device of ``known``.
        x0 : Tensor, optional
            Initial guess (zero on the known pixels), default zeros.
        tol : float
            Relative residual ``||b - A x|| / ||b||`` per system, checked in float64.
        max_iter : int
            CG iterations per system at most.
        max_restarts : int
            How often the iteration may restart from the float64 residual when
            the recurrence residual claims a convergence the true one does not
            confirm (float32 round-off).

        Returns
        -------
        x : Tensor, shape of ``b``, zero on the known pixels
        iterations : Tensor of int64, shape (B,)
        residual : Tensor of float64, shape (B,)
            The relative residual of ``x`` (float64).

        Examples
        --------
        >>> import torch
        >>> from pdeflow.multigrid import Multigrid
        >>> known = (torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0)) < 0.1).float()
        >>> b = (1 - known) * torch.ones(2, 3, 24, 24)
        >>> x, it, res = Multigrid(known).solve(b, tol=1e-5)
        >>> x.shape, it.shape, bool((res <= 1e-5).all())
        (torch.Size([2, 3, 24, 24]), torch.Size([2]), True)
        """
        if not isinstance(b, torch.Tensor) or b.dim() != 4 or tuple(b.shape[-2:]) != self.shape \
                or b.dtype != self.k.dtype or b.shape[0] == 0 or b.shape[1] == 0:
            raise UserInputError(f"Multigrid.solve: b must be a non-empty (B, C, H, W) tensor with (H, W) = "
                                 f"{self.shape} and dtype {self.k.dtype}, got {getattr(b, 'shape', type(b).__name__)}")
        if x0 is not None and (not isinstance(x0, torch.Tensor) or x0.shape != b.shape):
            raise UserInputError(f"Multigrid.solve: x0 must be a tensor of the shape of b {tuple(b.shape)}")
        B, C, H, W = b.shape
        N = B
        lead = (B, C)
        ph = _phase_shape(H, W)
        new = b.new_empty
        # CG's vectors in the phase layout; A d and M r share one buffer (A d is used up first)
        x, r, zq, dv = new(*lead, *ph), new(*lead, *ph), new(*lead, *ph), new(*lead, *ph)
        _to_phases(b, r)
        if x0 is None:
            x.zero_()
        else:
            _to_phases(x0, x)
            r.sub_(self._apply_phases(x, zq))
        bnorm = self.residual(b, None)
        bden = bnorm.clamp_min(torch.finfo(b.dtype).tiny)
        iters = torch.zeros(N, dtype=torch.long, device=b.device)

        def dots(u, v):
            if N == 1:
                return torch.dot(u.reshape(-1), v.reshape(-1)).reshape(1).double()
            return torch.bmm(u.reshape(N, 1, -1), v.reshape(N, -1, 1)).reshape(N).double()

        view = (B,) + (1,) * 5
        self._vcycle(r, zq)
        dv.copy_(zq)
        rz = dots(r, zq)
        rr = dots(r, r)
        thr = (tol * bden) ** 2
        active = (rr > thr) & (bnorm > 0)
        restarts = torch.zeros(N, dtype=torch.long, device=b.device)
        true_res = None
        fresh = False   # true_res belongs to the current x
        it = 0
        while it < max_iter and bool(active.any()):
            ad = self._apply_phases(dv, zq)
            dad = dots(dv, ad)
            ok = active & (dad > 0)
            alpha = torch.where(ok, rz / torch.where(ok, dad, torch.ones_like(dad)), torch.zeros_like(dad))
            if N == 1:
                af = float(alpha)
                x.add_(dv, alpha=af)
                r.add_(ad, alpha=-af)
            else:
                al = alpha.to(b.dtype).view(view)
                x.addcmul_(al, dv)
                r.addcmul_(al, ad, value=-1)
            iters += active.long()
            it += 1
            rr = dots(r, r)
            stalled = active & ~(dad > 0)
            done = active & ((rr <= thr) | stalled)
            restart = torch.zeros_like(active)
            fresh = False
            if bool(done.any()):
                # confirm with the true residual in float64; go on from it where it is not reached
                true_res = self.residual(b, x)
                fresh = True
                bad = done & (true_res > tol * bden) & (restarts < max_restarts) & ~stalled
                if bool(bad.any()):
                    rt = new(b.shape)
                    self.residual(b, x, out=rt)
                    torch.where(bad.view(view), _to_phases(rt, zq), r, out=r)
                    del rt
                    rr = torch.where(bad, dots(r, r), rr)
                    restarts += bad.long()
                    restart = bad
                active = active & ~(done & ~bad)
            if not bool(active.any()):
                break
            z = self._vcycle(r, zq)
            rz_new = dots(r, z)
            beta = torch.where(active & ~restart, rz_new / torch.where(rz != 0, rz, torch.ones_like(rz)),
                               torch.zeros_like(rz))
            if N == 1:
                dv.mul_(float(beta)).add_(z)
            else:
                dv.mul_(beta.to(b.dtype).view(view)).add_(z)
            rz = rz_new
        if not fresh:
            true_res = self.residual(b, x)
        del r, zq, dv
        xn = _from_phases(x, new(b.shape))
        rel = torch.where(bnorm > 0, true_res / bden, torch.zeros_like(true_res))
        return xn, iters, rel


# ---------------------------------------------------------------------------
# Volumes: the 7-point masked Laplacian on (D, H, W) grids
# ---------------------------------------------------------------------------
# Natural layout throughout (a phase layout of eight sub-grids did not pay for its complexity in a first
# version): the eight colours of a grid are the strided views ``x[..., a::2, b::2, c::2]``; iterates live
# in arrays padded by one zero voxel on every side, so the neighbours of a colour are strided views too.

_OFFSETS3 = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
_COLOURS3 = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]


def _sl(t: torch.Tensor, dim: int, s: slice) -> torch.Tensor:
    idx = [slice(None)] * t.dim()
    idx[dim] = s
    return t[tuple(idx)]


def _prolong_dim(c: torch.Tensor, n: int, dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Linear (vertex-centred) interpolation along ``dim`` from ``ceil(n/2)`` points to ``n`` (see :func:`prolong`),
    into ``out`` where given (every entry is written)."""
    shape = list(c.shape)
    shape[dim] = n
    out = c.new_empty(shape) if out is None else out
    _sl(out, dim, slice(0, None, 2)).copy_(c)
    no, nc = n // 2, c.shape[dim]
    if no:
        odd = _sl(out, dim, slice(1, None, 2))
        m = min(no, nc - 1)
        if m:
            odd.narrow(dim, 0, m).copy_(c.narrow(dim, 0, m)).add_(c.narrow(dim, 1, m)).mul_(0.5)
        if no == nc:   # n even: the last point copies its one coarse neighbour
            odd.narrow(dim, nc - 1, 1).copy_(c.narrow(dim, nc - 1, 1))
    return out


def _restrict_dim(g: torch.Tensor, dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """The transpose of :func:`_prolong_dim` (into ``out`` where given)."""
    n = g.shape[dim]
    even = _sl(g, dim, slice(0, None, 2))
    gc = even.contiguous() if out is None else out.copy_(even)
    no, nc = n // 2, gc.shape[dim]
    if no:
        go = _sl(g, dim, slice(1, None, 2))
        m = min(no, nc - 1)
        if m:
            gc.narrow(dim, 0, m).add_(go.narrow(dim, 0, m), alpha=0.5)
            gc.narrow(dim, 1, m).add_(go.narrow(dim, 0, m), alpha=0.5)
        if no == nc:
            gc.narrow(dim, nc - 1, 1).add_(go.narrow(dim, nc - 1, 1))
    return gc


def prolong3(c: torch.Tensor, shape) -> torch.Tensor:
    """Trilinear interpolation from the coarse grid ``ceil(shape / 2)`` to ``shape = (D, H, W)``.

    The 3-D counterpart of :func:`prolong`, one axis at a time (an axis of
    size 1 is left as it is).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.multigrid import prolong3
    >>> prolong3(torch.tensor([[[0.0, 2.0]], [[4.0, 6.0]]]), (3, 1, 3))[:, 0]
    tensor([[0., 1., 2.],
            [2., 3., 4.],
            [4., 5., 6.]])
    """
    D, H, W = shape
    return _prolong_dim(_prolong_dim(_prolong_dim(c, W, -1), H, -2), D, -3)


def restrict3(g: torch.Tensor) -> torch.Tensor:
    """The transpose of :func:`prolong3`: ``(..., D, H, W)`` to ``(..., ceil(D/2), ceil(H/2), ceil(W/2))``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.multigrid import prolong3, restrict3
    >>> c, y = torch.rand(2, 2, 3, dtype=torch.float64), torch.rand(3, 4, 5, dtype=torch.float64)
    >>> bool(torch.isclose((prolong3(c, (3, 4, 5)) * y).sum(), (c * restrict3(y)).sum()))
    True
    """
    return _restrict_dim(_restrict_dim(_restrict_dim(g, -3), -2), -1)


def _coarsen(S: dict, n: int, axis: int, ndim: int = 3) -> dict:
    """``P^T A P`` for the 1-D linear ``P`` along spatial ``axis`` of an ``ndim``-D stencil ``S``.

    ``S`` maps offsets (``(dz, dy, dx)`` in 3-D, ``(dy, dx)`` in 2-D) to tensors ``(..., *spatial)``: the
    entry of ``A`` coupling point ``p`` to ``p + offset`` (zero where that is outside the grid); ``n`` is
    the size along ``axis`` and the result has ``ceil(n / 2)`` there.
    """
    dim = axis - ndim
    nc = (n + 1) // 2
    like = next(iter(S.values()))
    wlo = like.new_ones(n)
    whi = like.new_zeros(n)
    wlo[1::2] = 0.5
    whi[1::2] = 0.5
    if n % 2 == 0:
        wlo[-1], whi[-1] = 1.0, 0.0
    shape = list(like.shape)
    shape[dim] = nc
    out: dict = {}
    bview = (-1,) + (1,) * (-dim - 1)
    for off, T in S.items():
        dy = off[axis]
        for par in (0, 1):
            start = par if par + dy >= 0 else par + 2
            stop = min(n, n - dy)
            if start >= stop:
                continue
            cnt = len(range(start, stop, 2))
            i0 = start // 2
            qpar = (par + dy) % 2
            for k, wk in ((0, wlo), (1, whi))[:1 + par]:
                for l_, wl in ((0, wlo), (1, whi))[:1 + qpar]:
                    key = off[:axis] + ((par + dy) // 2 + l_ - k,) + off[axis + 1:]
                    if key not in out:
                        out[key] = like.new_zeros(shape)
                    m = min(cnt, nc - i0 - k)   # a parent past the grid has weight zero
                    if m <= 0:
                        continue
                    ps = slice(start, start + 2 * m, 2)
                    qs = slice(start + dy, start + dy + 2 * m, 2)
                    coef = (wk[ps] * wl[qs]).view(bview)
                    _sl(out[key], dim, slice(i0 + k, i0 + k + m)).addcmul_(_sl(T, dim, ps), coef)
    return out


#: An axis is halved only while its spacing is at most this many times the smallest one (of the axes
#: that can still be halved): semi-coarsening, so that the point smoother meets strong couplings in every
#: halved direction (a CT volume of 0.7 x 0.7 x 2.5 mm is first coarsened in-plane only).
SEMI_RATIO = 1.5


def _semi_axes(shape, hs) -> tuple:
    """The axes to halve on a grid of ``shape`` with the (effective) spacing ``hs``."""
    cand = [a for a in range(3) if shape[a] > 1]
    if not cand:
        return ()
    hmin = min(hs[a] for a in cand)
    return tuple(a for a in cand if hs[a] <= SEMI_RATIO * hmin)


def _restrict_axes(g: torch.Tensor, axes, buf=None) -> torch.Tensor:
    """Restrict along each of ``axes`` in turn (``buf(key, shape, like)``: where the steps write)."""
    for i, a in enumerate(axes):
        shape = list(g.shape)
        shape[a - 3] = (shape[a - 3] + 1) // 2
        g = _restrict_dim(g, a - 3, None if buf is None else buf(("restrict", i), shape, g))
    return g


def _prolong_axes(c: torch.Tensor, shape, axes, buf=None) -> torch.Tensor:
    """Interpolate along each of ``axes`` in turn to ``shape`` (``buf``: as in :func:`_restrict_axes`)."""
    for i, a in enumerate(axes):
        out_shape = list(c.shape)
        out_shape[a - 3] = shape[a]
        c = _prolong_dim(c, shape[a], a - 3, None if buf is None else buf(("prolong", i), out_shape, c))
    return c


def _dense3(S: dict, shape) -> torch.Tensor:
    """The ``(..., N, N)`` matrix of a 3-D stencil, ``N = D H W``."""
    D, H, W = shape
    like = S[(0, 0, 0)]
    A = like.new_zeros(*like.shape[:-3], D * H * W, D * H * W)
    dev = like.device
    K = torch.arange(D, device=dev)[:, None, None].expand(D, H, W)
    I = torch.arange(H, device=dev)[None, :, None].expand(D, H, W)
    J = torch.arange(W, device=dev)[None, None, :].expand(D, H, W)
    for (a, b, c), T in S.items():
        ok = (K + a >= 0) & (K + a < D) & (I + b >= 0) & (I + b < H) & (J + c >= 0) & (J + c < W)
        A[..., ((K * H + I) * W + J)[ok], (((K + a) * H + I + b) * W + J + c)[ok]] = T[..., ok]
    return A


def _views(shape, colour, off):
    """Slices of the colour's voxels shifted by ``off`` in an array padded by one voxel."""
    return (Ellipsis,) + tuple(slice(1 + a + o, 1 + a + o + 2 * ((n - a + 1) // 2) - 1, 2)
                               for n, a, o in zip(shape, colour, off))


class _Level3:
    """A coarse grid with a 27-point operator, stored per colour (eight-colour Gauss-Seidel)."""

    def __init__(self, S: dict, shape):
        self.shape = shape
        diag = S[(0, 0, 0)]
        diag.masked_fill_(diag == 0, 1.0)   # empty rows (every interpolant on known voxels): the identity
        self.terms, self.invd = {}, {}
        for i, col in enumerate(_COLOURS3):
            sel = (Ellipsis,) + tuple(slice(a, None, 2) for a in col)
            # (offset, entries, the neighbour's colour index): the pre-smoother starts from zero and
            # visits the colours in order, so colour i sees only colours < i then; the residual after
            # it comes from the colours > i alone
            self.terms[col] = [(off, S[off][sel].contiguous(),
                                _COLOURS3.index(tuple((a + o) % 2 for a, o in zip(col, off))))
                               for off in _OFFSETS3 if off != (0, 0, 0) and off in S]
            self.invd[col] = torch.reciprocal(diag[sel])

    def nbr(self, xp: torch.Tensor, col, acc: torch.Tensor, keep=None) -> torch.Tensor:
        """``acc -= sum_off S_off x[. + off]`` over the colour's voxels (``keep``: the neighbour colours to use)."""
        for off, s, j in self.terms[col]:
            if keep is None or keep(j):
                acc.addcmul_(s, xp[_views(self.shape, col, off)], value=-1)
        return acc


class Multigrid3d:
    """Conjugate gradients preconditioned by a 3-D geometric multigrid V-cycle, for volume inpainting.

    Solves ``A x = b`` for the masked 7-point Neumann Laplacian
    ``A x = w (-L (w x)) + (k + d) x`` on ``(D, H, W)`` grids, with ``L`` the
    Laplacian of :func:`pdeflow.ops.laplacian` (``ndim=3``, anisotropic with
    ``spacing``: the second difference along each axis divided by ``h**2``),
    ``k`` the known voxels, ``w = 1 - k`` and ``d`` an optional non-negative
    diagonal; ``b`` is zero on the known voxels. Batched: each volume (all its
    channels together) has its own stopping rule.

    The hierarchy halves the axes (vertex-centred, trilinear interpolation
    restricted to the unknown voxels on the finest grid, restriction its
    transpose) down to at most ``coarsest`` voxels, solved by a dense
    pseudo-inverse. With unit (isotropic) spacing every axis is halved on
    every level; with anisotropic voxels only the axes whose (coarse-grid)
    spacing is within :data:`SEMI_RATIO` of the smallest are (semi-coarsening:
    a point smoother cannot damp errors that vary smoothly along the strong
    couplings only, so the grid is coarsened along those first), which keeps
    the iteration count nearly independent of the spacing. The coarse operators are the Galerkin products ``P^T A P``
    (27-point), built one axis at a time from the stencils, so masks of any
    sparsity and any spacing are coarsened faithfully. The smoother is
    red-black Gauss-Seidel on the finest grid and eight-colour Gauss-Seidel
    (the parities of the three indices) on the coarse ones, the colours
    visited in reverse order after the coarse-grid correction, so the
    V-cycle is a symmetric preconditioner. The iteration runs in the dtype of
    ``known``; the stopping rule is confirmed with the residual in float64 and
    the iteration restarted from it where float32 round-off fooled CG's
    recurrence.

    Parameters
    ----------
    known : Tensor, shape (D, H, W) or (Bm, Cm, D, H, W)
        1 on the known voxels, 0 elsewhere; float32 or float64 (the working
        dtype and device). ``Bm`` and ``Cm`` broadcast against the right-hand
        sides' batch and channel axes.
    diag : Tensor, optional
        A non-negative diagonal added on the unknown voxels (shape of ``known``).
    spacing : tuple of 3 floats, optional
        ``(dz, dy, dx)``, default unit.
    coarsest : int, optional
        Largest grid (voxels) solved directly. Default 256.

    References
    ----------
    .. [1] U. Trottenberg, C. W. Oosterlee, A. Schueller, "Multigrid", Academic
       Press, 2001.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.multigrid import Multigrid3d
    >>> known = (torch.rand(2, 1, 9, 10, 11, generator=torch.Generator().manual_seed(0)) < 0.1).double()
    >>> b = (1 - known) * torch.ones(2, 1, 9, 10, 11, dtype=torch.float64)
    >>> x, it, res = Multigrid3d(known, spacing=(2.0, 1.0, 1.0), coarsest=8).solve(b, tol=1e-10)
    >>> x.shape, bool((res <= 1e-10).all()), len(Multigrid3d(known, coarsest=8).grids)
    (torch.Size([2, 1, 9, 10, 11]), True, 4)
    """

    def __init__(self, known: torch.Tensor, diag: torch.Tensor | None = None, *, spacing=None,
                 coarsest: int = 256):
        k = known
        while k.dim() < 5:
            k = k[None]
        if not k.is_floating_point():
            k = k.float()
        self.k = k
        self.d = None if diag is None else diag.expand_as(k).to(k.dtype)
        self.shape = tuple(k.shape[-3:])
        h = (1.0, 1.0, 1.0) if spacing is None else tuple(float(v) for v in spacing)
        self.spacing = h
        self.coef = tuple(1.0 / (v * v) for v in h)
        w = 1.0 - k
        self.w = w
        D, H, W = self.shape
        # the fine diagonal (without k: the Galerkin source) w * sum_a c_a deg_a + d
        deg = k.new_zeros(self.shape)
        for a, (n, ca) in enumerate(zip(self.shape, self.coef)):
            if n > 1:
                dg = k.new_full((n,), 2.0 * ca)
                dg[0] = dg[-1] = ca
                deg += dg.view((-1,) + (1,) * (2 - a))
        gdiag = w * deg
        del deg
        if self.d is not None:
            gdiag.add_(self.d)
        self.levels: list = []
        self._scratch: dict = {}
        self._work: dict | None = None   # the fine-grid buffers of the solve in progress (see _buf)
        self._direct = None
        if D * H * W <= coarsest:   # the whole problem is small: solve it exactly
            S = self._fine_stencil(gdiag + k)
            self._direct = _pinv_spd(_dense3(S, self.shape))
            self.grids = [self.shape]
            return
        # red-black smoother on the finest grid: x = invd (r + sum_a c_a (neighbours)), zero on known voxels
        # (w / gdiag is only read where gdiag > 0: the setup's memory peak is here, so no temporaries)
        self.invd = torch.div(w, gdiag).masked_fill_(gdiag <= 0, 0.0)
        shape, hs = self.shape, list(h)
        grids = [shape]
        self.axes: list = []   # the axes halved from grid l to grid l + 1
        first = True
        while True:
            axes = _semi_axes(shape, hs)
            if first:   # from the fine grid, in strips of planes: the memory beyond the result is a strip's
                S = self._first_galerkin(gdiag, axes)
                del gdiag
                first = False
            else:
                for axis in axes:
                    S = _coarsen(S, shape[axis], axis)
            for axis in axes:
                hs[axis] *= 2
            shape = tuple((n + 1) // 2 if a in axes else n for a, n in enumerate(shape))
            grids.append(shape)
            self.axes.append(axes)
            if shape[0] * shape[1] * shape[2] <= coarsest or not _semi_axes(shape, hs):
                S[(0, 0, 0)].masked_fill_(S[(0, 0, 0)] == 0, 1.0)
                self._dense = _pinv_spd(_dense3(S, shape))
                break
            self.levels.append(_Level3(S, shape))
        self.grids = grids

    def _first_galerkin(self, gdiag, axes, planes: int | None = None) -> dict:
        """The Galerkin operator of the first coarse grid (``axes`` halved), built from strips of
        ``planes`` coarse planes along D (default: about 1 M voxels of the fine grid per strip)."""
        D, H, W = self.shape
        Dc = (D + 1) // 2 if 0 in axes else D
        R = planes or max(1, (1 << 19) // (H * W))
        out: dict = {}
        for I0 in range(0, Dc, R):
            I1 = min(Dc, I0 + R)
            if 0 in axes:   # every fine plane that couples to coarse planes I0:I1 (f0 even, f1 - f0 odd
                # unless f1 = D, so the strip's own end is no boundary for the interpolation)
                f0, f1 = max(0, 2 * I0 - 2), min(D, 2 * I1 + 1)
                o = I0 - f0 // 2
            else:           # D kept: a halo of one plane, so the couplings along D are all there
                f0, f1 = max(0, I0 - 1), min(D, I1 + 1)
                o = I0 - f0
            S = self._fine_stencil(gdiag, f0, f1)
            for axis in axes:
                S = _coarsen(S, f1 - f0 if axis == 0 else self.shape[axis], axis)
            for off, t in S.items():
                if off not in out:
                    out[off] = t.new_zeros(*t.shape[:-3], Dc, *t.shape[-2:])
                out[off][..., I0:I1, :, :] = t[..., o:o + I1 - I0, :, :]
        return out

    def _fine_stencil(self, diag, f0: int = 0, f1: int | None = None) -> dict:
        """The 7-point stencil of ``w (-L) w`` plus ``diag`` (a dict of offsets), of the planes ``f0:f1``
        along D; the couplings to planes outside them are left out (zero)."""
        f1 = self.shape[0] if f1 is None else f1
        w = self.w[..., f0:f1, :, :]
        diag = diag[..., f0:f1, :, :]
        S = {(0, 0, 0): diag if diag.shape == w.shape else diag.expand_as(w).clone()}
        for a, ca in enumerate(self.coef):
            dim = a - 3
            n = w.shape[dim]
            e = [0, 0, 0]
            e[a] = 1
            # one buffer one longer along the axis: the couplings up (from p) and down (from p + e) share it
            shape = list(w.shape)
            shape[dim] = n + 1
            V = w.new_zeros(shape)
            if n > 1:
                torch.mul(w.narrow(dim, 0, n - 1), w.narrow(dim, 1, n - 1), out=V.narrow(dim, 1, n - 1)).mul_(-ca)
            S[tuple(e)] = V.narrow(dim, 1, n)
            S[tuple(-v for v in e)] = V.narrow(dim, 0, n)
        return S

    # -- the operator ------------------------------------------------------------------------------

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x`` (B, C, D, H, W) zero on the known voxels."""
        return self._apply(x, None)

    def _apply(self, x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """:meth:`apply` into ``out`` (a new tensor where None); inside :meth:`solve` without temporaries."""
        y = self._lap(x, out, self._buf("flux", x.shape, x) if self._work is not None else None).mul_(self.w).neg_()
        if self.d is not None:
            y.addcmul_(self.d, x)
        return y

    def _buf(self, key, shape, like: torch.Tensor) -> torch.Tensor:
        """A work buffer of the solve in progress, kept across its iterations: a volume's worth of fresh memory
        per operation costs as much as the operation itself once the allocator hands out new pages
        (large blocks), which made the time per voxel grow with the volume."""
        t = self._work.get(key)
        shape = tuple(shape)
        if t is None or tuple(t.shape) != shape or t.dtype != like.dtype or t.device != like.device:
            t = self._work[key] = like.new_zeros(shape)
        return t

    def _lap(self, x: torch.Tensor, out: torch.Tensor | None = None, flux: torch.Tensor | None = None) -> torch.Tensor:
        """The (anisotropic) 7-point Neumann Laplacian as a sum of fluxes (into ``out``; ``flux``: a
        scratch volume of ``x``'s shape)."""
        y = torch.zeros_like(x) if out is None else out.zero_()
        for a, ca in enumerate(self.coef):
            dim = a - 3
            n = x.shape[dim]
            if n < 2:
                continue
            hi, lo = x.narrow(dim, 1, n - 1), x.narrow(dim, 0, n - 1)
            g = hi - lo if flux is None else torch.sub(hi, lo, out=flux.narrow(dim, 0, n - 1))
            if ca != 1.0:
                g.mul_(ca)
            y.narrow(dim, 0, n - 1).add_(g)
            y.narrow(dim, 1, n - 1).sub_(g)
        return y

    def residual(self, b: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
        """``||b - A x||`` per volume in float64, shape (B,) (``x = None``: ``||b||``).

        Computed in strips of planes along D (with a halo of one plane for the
        Laplacian), so the float64 copies are a strip's, not the volume's.
        """
        B, C, D, H, W = b.shape
        R = max(1, _STRIP_ELEMENTS // max(1, B * C * H * W))
        acc = torch.zeros(B, dtype=torch.float64, device=b.device)
        for z0 in range(0, D, R):
            z1 = min(D, z0 + R)
            r = b[..., z0:z1, :, :].double()
            if x is not None:
                h0, h1 = max(0, z0 - 1), min(D, z1 + 1)
                xs = x[..., h0:h1, :, :].double()
                o = z0 - h0
                # the kept planes have all their neighbours in the strip, so its own ends do not matter
                r += self._lap(xs)[..., o:o + z1 - z0, :, :].mul_(self.w[..., z0:z1, :, :].double())
                if self.d is not None:
                    r.addcmul_(self.d[..., z0:z1, :, :].double(), xs[..., o:o + z1 - z0, :, :], value=-1)
            acc += r.square().flatten(1).sum(1)
        return acc.sqrt()

    # -- the V-cycle -------------------------------------------------------------------------------

    def _smooth_fine(self, xp, r, colours, pre=False):
        """Red-black Gauss-Seidel half-sweeps on the finest grid (``pre``: ``x`` was zero before)."""
        shape, c = self.shape, self.coef
        for col in colours:
            sel = (Ellipsis,) + tuple(slice(a, None, 2) for a in col)
            if pre and sum(col) % 2 == 0:   # the first colour of the pre-smoother: zero neighbours
                torch.mul(r[sel], self.invd[sel], out=self._tmp(col, r))
            else:
                acc = self._tmp(col, r)
                acc.copy_(r[sel])
                for a in range(3):
                    e = [0, 0, 0]
                    e[a] = 1
                    acc.add_(xp[_views(shape, col, e)], alpha=c[a])
                    e[a] = -1
                    acc.add_(xp[_views(shape, col, e)], alpha=c[a])
                acc.mul_(self.invd[sel])
            xp[_views(shape, col, (0, 0, 0))].copy_(self._tmp(col, r))

    def _tmp(self, col, r):
        """A scratch tensor of the colour's voxels."""
        shape = r.shape[:-3] + tuple((n - a + 1) // 2 for n, a in zip(self.shape, col))
        t = self._scratch.get(col)
        if t is None or t.shape != shape or t.dtype != r.dtype or t.device != r.device:
            t = self._scratch[col] = r.new_empty(shape)
        return t

    def _smooth_coarse(self, lv: _Level3, xp, r, colours, pre=False):
        for i, col in enumerate(colours):
            acc = r[(Ellipsis,) + tuple(slice(a, None, 2) for a in col)].clone()
            if not pre:
                lv.nbr(xp, col, acc)
            elif i:
                lv.nbr(xp, col, acc, lambda j, i=i: j < i)
            xp[_views(lv.shape, col, (0, 0, 0))].copy_(acc.mul_(lv.invd[col]))

    def _residual_coarse(self, lv: _Level3, xp, r):
        """``r - A x`` after the pre-smoother: on colour i, minus the couplings to the colours after it."""
        res = torch.zeros_like(r)
        for i, col in enumerate(_COLOURS3[:-1]):
            sel = (Ellipsis,) + tuple(slice(a, None, 2) for a in col)
            res[sel] = lv.nbr(xp, col, res[sel].contiguous(), lambda j, i=i: j > i)
        return res

    def _cycle(self, li: int, r: torch.Tensor) -> torch.Tensor:
        """The correction on coarse level ``li`` (index into ``levels``) for the residual ``r``."""
        if li == len(self.levels):
            n = r.shape[-3] * r.shape[-2] * r.shape[-1]
            return (self._dense @ r.reshape(*r.shape[:-3], n, 1)).reshape(r.shape)
        lv = self.levels[li]
        xp = r.new_zeros(*r.shape[:-3], *(n + 2 for n in lv.shape))
        self._smooth_coarse(lv, xp, r, _COLOURS3, pre=True)
        res = self._residual_coarse(lv, xp, r)
        axes = self.axes[li + 1]
        e = self._cycle(li + 1, _restrict_axes(res, axes))
        xp[..., 1:-1, 1:-1, 1:-1] += _prolong_axes(e, lv.shape, axes)
        self._smooth_coarse(lv, xp, r, _COLOURS3[::-1])
        return xp[..., 1:-1, 1:-1, 1:-1].contiguous()

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        """One symmetric V-cycle ``M^{-1} r`` for ``r`` (B, C, D, H, W) zero on the known voxels."""
        return self._precondition(r, None)

    def _precondition(self, r: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """:meth:`precondition` into ``out`` (a new tensor where None); inside :meth:`solve` the fine grid's
        work arrays are the solve's buffers (:meth:`_buf`)."""
        if self._direct is not None:
            n = r.shape[-3] * r.shape[-2] * r.shape[-1]
            z = (self._direct @ r.reshape(*r.shape[:-3], n, 1)).reshape(r.shape)
            return z if out is None else out.copy_(z)
        red = [c for c in _COLOURS3 if sum(c) % 2 == 0]
        black = [c for c in _COLOURS3 if sum(c) % 2 == 1]
        buf = self._buf if self._work is not None else None
        padded = (*r.shape[:-3], *(n + 2 for n in self.shape))
        # (kept buffers: the padding is never written, and every voxel is written before it is read)
        xp = r.new_zeros(padded) if buf is None else buf("xp", padded, r)
        x = xp[..., 1:-1, 1:-1, 1:-1]
        self._smooth_fine(xp, r, red + black, pre=True)
        # b - A x: zero on the black voxels (just updated); on the red ones, set from zero neighbours
        # (x = r / diag), the couplings to the black ones
        res = torch.zeros_like(r) if buf is None else buf("res", r.shape, r)   # (black voxels stay zero)
        for col in red:
            sel = (Ellipsis,) + tuple(slice(a, None, 2) for a in col)
            acc = self._tmp(col, r).zero_()
            for a in range(3):
                e = [0, 0, 0]
                e[a] = 1
                acc.add_(xp[_views(self.shape, col, e)], alpha=self.coef[a])
                e[a] = -1
                acc.add_(xp[_views(self.shape, col, e)], alpha=self.coef[a])
            res[sel] = acc.mul_(self.w[sel])
        e = self._cycle(0, _restrict_axes(res, self.axes[0], buf))
        x.addcmul_(self.w, _prolong_axes(e, self.shape, self.axes[0], buf))
        self._smooth_fine(xp, r, black + red)
        return x.contiguous() if out is None else out.copy_(x)

    # -- conjugate gradients -----------------------------------------------------------------------

    def solve(self, b: torch.Tensor, x0: torch.Tensor | None = None, *, tol: float = 1e-6,
              max_iter: int = 500, max_restarts: int = 3):
        """Solve ``A x = b`` per volume to the relative residual ``tol`` (checked in float64).

        Returns ``x`` (shape of ``b``, zero on the known voxels), the iterations
        (B,) and the relative residual (B,) in float64.

        Examples
        --------
        >>> import torch
        >>> from pdeflow.multigrid import Multigrid3d
        >>> known = torch.zeros(1, 1, 16, 16, 16)
        >>> known[..., ::5, ::5, ::5] = 1
        >>> x, it, res = Multigrid3d(known).solve((1 - known) * torch.rand(1, 1, 16, 16, 16), tol=1e-5)
        >>> bool(res <= 1e-5), bool((x[known == 1] == 0).all())
        (True, True)
        """
        if not isinstance(b, torch.Tensor) or b.dim() != 5 or tuple(b.shape[-3:]) != self.shape \
                or b.dtype != self.k.dtype or b.shape[0] == 0 or b.shape[1] == 0:
            raise UserInputError(f"Multigrid3d.solve: b must be a non-empty (B, C, D, H, W) tensor with "
                                 f"(D, H, W) = {self.shape} and dtype {self.k.dtype}, "
                                 f"got {getattr(b, 'shape', type(b).__name__)}")
        if x0 is not None and (not isinstance(x0, torch.Tensor) or x0.shape != b.shape):
            raise UserInputError(f"Multigrid3d.solve: x0 must be a tensor of the shape of b {tuple(b.shape)}")
        bnorm = self.residual(b, None)
        bden = bnorm.clamp_min(torch.finfo(b.dtype).tiny)
        iters = torch.zeros(b.shape[0], dtype=torch.long, device=b.device)
        x = x0
        # cg reads A d and M^{-1} r only within the iteration that asked for them: each can be written
        # into one buffer of the solve, as can the V-cycle's fine-grid arrays (see _buf)
        self._work = {}
        try:
            ad, z = torch.empty_like(b), torch.empty_like(b)
            for _ in range(max_restarts + 1):
                x, it = cg(lambda v: self._apply(v, ad), b, x, tol=tol, max_iter=max(1, max_iter - int(iters.max())),
                           precond=lambda v: self._precondition(v, z))
                iters += it
                rel = torch.where(bnorm > 0, self.residual(b, x) / bden, torch.zeros_like(bnorm))
                if bool((rel <= tol).all()) or int(iters.max()) >= max_iter:
                    break
        finally:
            self._work = None
        return x * self.w, iters, rel
