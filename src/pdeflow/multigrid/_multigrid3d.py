"""The 3-D solver: :class:`~pdeflow.multigrid.Multigrid3d`, its trilinear grid transfers and coarse levels (see
the package's docstring)."""
from __future__ import annotations

import torch

from ..errors import UserInputError
from ..linalg import cg
from ._galerkin import coarsen, pinv_spd, sl, strip_elements

# ---------------------------------------------------------------------------
# Volumes: the 7-point masked Laplacian on (D, H, W) grids
# ---------------------------------------------------------------------------
# Natural layout throughout (a phase layout of eight sub-grids did not pay for its complexity in a first
# version): the eight colours of a grid are the strided views ``x[..., a::2, b::2, c::2]``; iterates live
# in arrays padded by one zero voxel on every side, so the neighbours of a colour are strided views too.

_OFFSETS3 = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
_COLOURS3 = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]


def _prolong_dim(c: torch.Tensor, n: int, dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Linear (vertex-centred) interpolation along ``dim`` from ``ceil(n/2)`` points to ``n`` (see :func:`prolong`),
    into ``out`` where given (every entry is written)."""
    shape = list(c.shape)
    shape[dim] = n
    out = c.new_empty(shape) if out is None else out
    sl(out, dim, slice(0, None, 2)).copy_(c)
    no, nc = n // 2, c.shape[dim]
    if no:
        odd = sl(out, dim, slice(1, None, 2))
        m = min(no, nc - 1)
        if m:
            odd.narrow(dim, 0, m).copy_(c.narrow(dim, 0, m)).add_(c.narrow(dim, 1, m)).mul_(0.5)
        if no == nc:   # n even: the last point copies its one coarse neighbour
            odd.narrow(dim, nc - 1, 1).copy_(c.narrow(dim, nc - 1, 1))
    return out


def _restrict_dim(g: torch.Tensor, dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """The transpose of :func:`_prolong_dim` (into ``out`` where given)."""
    n = g.shape[dim]
    even = sl(g, dim, slice(0, None, 2))
    gc = even.contiguous() if out is None else out.copy_(even)
    no, nc = n // 2, gc.shape[dim]
    if no:
        go = sl(g, dim, slice(1, None, 2))
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
            self._direct = pinv_spd(_dense3(S, self.shape))
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
                    S = coarsen(S, shape[axis], axis)
            for axis in axes:
                hs[axis] *= 2
            shape = tuple((n + 1) // 2 if a in axes else n for a, n in enumerate(shape))
            grids.append(shape)
            self.axes.append(axes)
            if shape[0] * shape[1] * shape[2] <= coarsest or not _semi_axes(shape, hs):
                S[(0, 0, 0)].masked_fill_(S[(0, 0, 0)] == 0, 1.0)
                self._dense = pinv_spd(_dense3(S, shape))
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
                S = coarsen(S, f1 - f0 if axis == 0 else self.shape[axis], axis)
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
        R = max(1, strip_elements(b.numel()) // max(1, B * C * H * W))
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
        """Solve ``A x = b`` per volume to the relative residual ``tol`` (checked in float64), from ``x0``
        (default zeros; its values on the known voxels are not read).

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
        x = None if x0 is None else x0 * self.w     # the start's values on the known voxels are not read
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
