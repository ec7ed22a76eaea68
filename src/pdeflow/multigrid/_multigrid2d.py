"""The 2-D solver: :class:`~pdeflow.multigrid.Multigrid` (see the package's docstring)."""
from __future__ import annotations

import functools

import torch

from ..errors import UserInputError
from ..ops import laplacian
from ._galerkin import strip_elements
from ._grid2d import (
    Coarse,
    Dense,
    fine_block,
    from_phases,
    galerkin,
    interp,
    phase_block,
    phase_shape,
    restrict_add,
    rows_from_phases,
    rows_to_phases,
    to_phases,
)


class Multigrid:
    """Conjugate gradients preconditioned by a geometric multigrid V-cycle, for diffusion inpainting.

    Solves ``A x = b`` for the masked Neumann Laplacian
    ``A x = w (-L (w x)) + (k + d) x`` (see the module doc) with ``b`` zero on
    the known pixels, batched: each image (all its channels together) has
    its own stopping rule. The hierarchy is built once, in the constructor,
    and serves any number of right-hand sides (the forward and the adjoint
    solve of :func:`pdeflow.inpaint.inpaint_diffusion`).

    Parameters
    ----------
    known : Tensor, shape (H, W) or (Bm, Cm, H, W)
        1 on the known (Dirichlet) pixels, 0 elsewhere; float32 or float64
        (the working dtype and device). ``Bm`` and ``Cm`` broadcast against
        the right-hand sides' batch and channel axes.
    diag : Tensor, optional
        A non-negative diagonal ``d`` added on the unknown pixels (shape of
        ``known``, zero on the known pixels), e.g. the continuous-mask
        term of :func:`pdeflow.inpaint.inpaint_diffusion`.
    coarsest : int, optional
        Grids with at most this many points are solved densely (default 256).

    Notes
    -----
    Memory, in the working dtype: the finest grid keeps one array of the
    image's size (the inverse diagonal; the known pixels of half the points
    as bool, and the diagonal too once a solve has run), the first coarse grid six arrays of a quarter of it
    (five of the nine stencil entries, the others by symmetry, and the inverse diagonal), the coarser ones a
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
        lead = k.shape[:2]
        # finest grid, phase layout: the inverse of the diagonal w deg + d (0 on known pixels and outside the grid)
        # and where it is zero on the phases (0, 0) and (1, 1), as bool; the diagonal itself is formed again when a
        # solve asks for it (:attr:`diag`): a preconditioner alone does not read it (one array less in a large solve)
        diag = self._finest_diagonal()
        self.invd = torch.reciprocal(diag).masked_fill_(diag == 0, 0.0)
        self.known_red = diag[..., (0, 1), (0, 1), :, :] == 0
        del diag
        self._diag = None
        self.levels: list = []
        self._buffers: dict = {}
        self._direct = H * W <= coarsest
        if self._direct:
            # small image: the whole problem is dense (with the identity rows of the known pixels)
            S = fine_block(k, d, 0, H)
            S[(0, 0)] = S[(0, 0)] + k
            self.levels.append(Dense(S, H, W))
            return
        block = functools.partial(fine_block, k, d)
        # the coarse levels' strips are the finest's size: a small part of the block a solve of the chunks holds
        strip = strip_elements(H * W, 1 << 17, 8)
        h, wd = H, W
        while True:
            S_ph = galerkin(block, h, wd, k, lead, strip)
            h, wd = (h + 1) // 2, (wd + 1) // 2
            if h * wd <= coarsest:
                self.levels.append(Dense(phase_block(S_ph, h, wd)(0, h), h, wd))
                break
            self.levels.append(Coarse(S_ph, h, wd))
            block = phase_block(S_ph, h, wd)

    def _finest_diagonal(self) -> torch.Tensor:
        """The diagonal ``w deg + d`` of the finest grid in the phase layout, built in strips of rows."""
        k, d = self.k, self.d
        H, W = self.shape
        out = k.new_zeros(*k.shape[:2], *phase_shape(H, W))
        R = max(2, strip_elements(H * W, 1 << 18, 8) // max(W, 1))
        for f0 in range(0, H, R):
            rows_to_phases(fine_block(k, d, f0, min(H, f0 + R), True)[(0, 0)], f0, out)
        return out

    @property
    def diag(self) -> torch.Tensor:
        """The diagonal of the finest grid (phase layout), formed on first use and kept."""
        if self._diag is None:
            self._diag = self._finest_diagonal()
        return self._diag

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
            ph = phase_shape(H, W)
            new = k.new_empty
            b = {"s": new(*lead, *ph[2:]), "t": new(*lead, *ph[2:]), "res": new(*lead, 2, *ph[2:]),
                 "lv": []}
            for lv in self.levels:
                hh, ww = lv.h, lv.w
                e = {"nat": new(*lead, hh, ww)}
                if isinstance(lv, Coarse):
                    p = phase_shape(hh, ww)
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
            from_phases(r, nat)
            y = (self.levels[0].inv @ nat.reshape(*nat.shape[:-2], H * W, 1)).reshape(nat.shape)
            to_phases(y, x)
            return torch.where(invd != 0, x, torch.zeros_like(x), out=x)
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
            y.masked_fill_(self.known_red[..., i, :, :], 0.0)
        # restriction (w is already in the residual) to the first coarse grid
        H, W = self.shape
        c = B["lv"][0]["nat"]
        c.copy_(res[..., 0, :, :])
        t = B["t"]
        t.zero_()
        restrict_add(res[..., 1, :, :], t, -1, W % 2 == 0)
        restrict_add(t, c, -2, H % 2 == 0)
        e = self._coarse_cycle(B["lv"], 0, c)
        # prolongation to the red points (the black ones are overwritten next), on the unknowns only
        x[..., 0, 0, :, :].add_(e).masked_fill_(self.known_red[..., 0, :, :], 0.0)   # x was zero there
        interp(e, t, -1, W % 2 == 0)
        interp(t, s, -2, H % 2 == 0)
        x[..., 1, 1, :, :].add_(s).masked_fill_(self.known_red[..., 1, :, :], 0.0)
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
        if isinstance(lv, Dense):
            n = lv.h * lv.w
            return (lv.inv @ c.reshape(*c.shape[:-2], n, 1)).reshape(c.shape)
        r, x, acc = buf["r"], buf["x"], buf["acc"]
        to_phases(c, r)
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
        restrict_add(res[..., 1, :, :], cn, -1, w % 2 == 0)
        restrict_add(res[..., 2, :, :], cn, -2, h % 2 == 0)
        e = self._coarse_cycle(bufs, li + 1, cn)
        x[..., 0, 0, :, :].add_(e)   # the last colour is overwritten first in the post-smoother
        x[..., 0, 1, :, :].add_(interp(e, t, -1, w % 2 == 0))
        x[..., 1, 0, :, :].add_(interp(e, t, -2, h % 2 == 0))
        for p in order[::-1]:
            self._gs4(lv, x, r, acc, p)
        return from_phases(x, buf["nat"])

    @staticmethod
    def _res4(lv: Coarse, x, acc, p):
        """The residual of colour ``p`` after the pre-smoother, into ``acc``."""
        S = lv.S
        terms = lv.res[p]
        first = 0
        (kk, sa, sb, ssl), qa, qb, dst, src = terms[0]
        if dst == (Ellipsis, slice(None), slice(None)):
            torch.mul(S[..., kk, sa, sb, :, :][ssl], x[..., qa, qb, :, :][src], out=acc).neg_()
            first = 1
        else:
            acc.zero_()
        for (kk, sa, sb, ssl), qa, qb, dst, src in terms[first:]:
            acc[dst].addcmul_(S[..., kk, sa, sb, :, :][ssl], x[..., qa, qb, :, :][src], value=-1)

    @staticmethod
    def _gs4(lv: Coarse, x, r, acc, p, residual=False, pre=False):
        """Update colour ``p`` of ``x`` (or, with ``residual``, write its residual into ``acc``)."""
        pa, pb = p
        S = lv.S
        terms = lv.pre[p] if pre else lv.terms[p]
        rp = r[..., pa, pb, :, :]
        if not terms:
            torch.mul(lv.invd[..., pa, pb, :, :], rp, out=x[..., pa, pb, :, :])
            return
        first = 0
        (kk, sa, sb, ssl), qa, qb, dst, src = terms[0]
        if dst == (Ellipsis, slice(None), slice(None)):
            torch.addcmul(rp, S[..., kk, sa, sb, :, :][ssl], x[..., qa, qb, :, :][src], value=-1, out=acc)
            first = 1
        else:
            acc.copy_(rp)
        for (kk, sa, sb, ssl), qa, qb, dst, src in terms[first:]:
            acc[dst].addcmul_(S[..., kk, sa, sb, :, :][ssl], x[..., qa, qb, :, :][src], value=-1)
        if residual:
            acc.addcmul_(S[..., 4, pa, pb, :, :], x[..., pa, pb, :, :], value=-1)
        else:
            torch.mul(lv.invd[..., pa, pb, :, :], acc, out=x[..., pa, pb, :, :])

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        """One V-cycle ``M^{-1} r`` for ``r`` (B, C, H, W) zero on the known pixels (natural layout)."""
        H, W = self.shape
        lead = r.shape[:-2]
        rp = to_phases(r, r.new_empty(*lead, *phase_shape(H, W)))
        xp = self._vcycle(rp, torch.empty_like(rp))
        del rp      # before the result is allocated: one array less at a large solve's peak
        return from_phases(xp, r.new_empty(r.shape))

    # -- float64 residual --------------------------------------------------------------------------

    def residual(self, b: torch.Tensor, x: torch.Tensor | None, *, out: torch.Tensor | None = None):
        """``||b - A x||`` per image, in float64, shape (B,) (``x = None``: ``||b||``; ``x`` may be
        in the phase layout).

        Computed in strips of rows from the differences of neighbouring values (the
        Neumann Laplacian as a sum of fluxes), so the memory is a few strips; ``out``
        (optional, dtype of ``b``, its shape or the phase layout) receives ``b - A x``.
        """
        B, C, H, W = b.shape
        N = B
        rows = max(1, strip_elements(b.numel()) // max(1, B * C * W))
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
                    rows_from_phases(x, h0, h1, xs)
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
            if out is not None and out.dim() == 6:
                rows_to_phases(y, r0, out)
            elif out is not None:
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
            Initial guess, default zeros (its values on the known pixels are not read).
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
        ph = phase_shape(H, W)
        new = b.new_empty
        # CG's vectors in the phase layout; A d and M r share one buffer (A d is used up first)
        x, r, zq, dv = new(*lead, *ph), new(*lead, *ph), new(*lead, *ph), new(*lead, *ph)
        to_phases(b, r)
        if x0 is None:
            x.zero_()
        else:
            to_phases(x0, x)
            torch.where(self.invd != 0, x, torch.zeros((), dtype=x.dtype, device=x.device), out=x)
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
                    self.residual(b, x, out=zq)     # zq is free here (A d is used up)
                    torch.where(bad.view(view), zq, r, out=r)
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
        del zq, dv
        # the solution in the residual's memory (r is used up, and holds at least the image's elements): one
        # array less at a block solve's peak
        xn = from_phases(x, r.view(-1)[:b.numel()].view(b.shape))
        rel = torch.where(bnorm > 0, true_res / bden, torch.zeros_like(true_res))
        return xn, iters, rel
