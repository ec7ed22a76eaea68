"""The grid of a TV problem: 2-D or 3-D, unit or given spacing (used by :mod:`pdeflow.tv`).

The operators are those of :mod:`pdeflow.ops` (forward differences divided by the spacing, zero in
the last slice/row/column; ``div`` the exact negative adjoint) with the grid's ``ndim`` and
``spacing``, so that the solvers run on volumes ``(B, C, D, H, W)`` and on anisotropic grids.
A field over the grid has the components on the axis after ``C``: ``(B, C, K, *spatial)`` with
``K`` the number of spatial axes, component ``k`` the derivative along spatial axis ``k``.

The 2-D unit grid keeps its own fused kernels in :mod:`pdeflow.tv._rof_methods` (FGP on the CPU in compiled
loops); :class:`Grid` is the path of every other grid.  Its ``*_into`` kernels are the iterative solvers'
inner loop: fields kept with zero *unused* entries (component ``k`` in the last slab along axis ``k``, the
entries ``div`` never reads), each volume taken as a flat vector in which the neighbour along axis ``k`` is
``stride_k`` entries on, so that ``div`` and ``grad`` are a few contiguous in-place operations on preallocated
buffers (the wrap-around terms read the zero unused entries).  On large volumes the allocating ``grad``/``div``
composition spends most of its time in fresh memory (page faults), several times this.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from .. import ops
from ..errors import UserInputError


@dataclass(frozen=True)
class Grid:
    """``ndim`` spatial axes (2 or 3) with ``spacing`` (one positive float per axis)."""

    ndim: int = 2
    spacing: tuple[float, ...] = (1.0, 1.0)

    @functools.cached_property       # asked several times per solve
    def plain(self) -> bool:
        """The 2-D unit grid (the fused 2-D kernels apply)."""
        return self.ndim == 2 and all(h == 1.0 for h in self.spacing)

    @property
    def lipschitz(self) -> float:
        """Upper bound of ``||div||^2 = ||grad||^2``: ``4 * sum_k 1 / h_k^2`` (8 on the 2-D unit grid)."""
        return 4.0 * sum(1.0 / (h * h) for h in self.spacing)

    @property
    def voxel(self) -> float:
        """The cell volume ``prod(h)``."""
        return math.prod(self.spacing)

    def grad(self, u: torch.Tensor) -> torch.Tensor:
        """:func:`pdeflow.ops.grad` on this grid: ``(..., *spatial)`` -> ``(..., ndim, *spatial)``."""
        return ops.grad(u, ndim=self.ndim, spacing=self.spacing)

    def div(self, p: torch.Tensor) -> torch.Tensor:
        """:func:`pdeflow.ops.div` on this grid, ``-grad^T p`` for a field ``(..., ndim, *spatial)``."""
        return ops.div(p, ndim=self.ndim, spacing=self.spacing)

    def norm(self, z: torch.Tensor, channelwise: bool) -> torch.Tensor:
        """Pointwise norm of a field ``(B, C, K, *spatial)`` as ``(B, C|1, 1, *spatial)``."""
        sq = (z * z).sum(2, keepdim=True)
        return (sq if channelwise else sq.sum(1, keepdim=True)).sqrt()

    def project(self, p: torch.Tensor, channelwise: bool) -> torch.Tensor:
        """``p`` projected onto ``|p| <= 1`` pointwise."""
        return p / self.norm(p, channelwise).clamp_min(1.0)

    # ---- in-place kernels (fields with zero unused entries, see the module docstring)

    def zero_unused(self, p: torch.Tensor) -> torch.Tensor:
        """Zero the entries of a field ``(B, C, K, *spatial)`` that ``div`` never reads, in place."""
        K = self.ndim
        for k in range(K):
            n = p.shape[3 + k]
            p.select(2, k).narrow(2 + k, n - 1, 1).zero_()
        return p

    def div_into(self, p: torch.Tensor, out: torch.Tensor, scale: float = 1.0,
                 base: torch.Tensor | None = None) -> torch.Tensor:
        """``scale * div(p)`` (plus ``base``, a volume like ``out``) into ``out`` (``(B, C, *spatial)``,
        contiguous) for a contiguous field ``p`` with zero unused entries."""
        B, C, K = p.shape[:3]
        spatial = p.shape[3:]
        N = math.prod(spatial)
        pf = p.reshape(B * C, K, N)
        of = out.view(B * C, N)
        w = [scale / h for h in self.spacing]
        if base is None:
            torch.mul(pf[:, 0], w[0], out=of)
        else:
            torch.add(base.reshape(B * C, N), pf[:, 0], alpha=w[0], out=of)
        for k in range(1, K):
            of.add_(pf[:, k], alpha=w[k])
        for k in range(K):
            s = math.prod(spatial[k + 1:])
            if s < N:
                of[:, s:].sub_(pf[:, k, :-s], alpha=w[k])
        return out

    def grad_into(self, u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``grad(u)`` into the contiguous field ``out``, its unused entries zero."""
        B, C = u.shape[:2]
        spatial = u.shape[2:]
        N = math.prod(spatial)
        K = self.ndim
        uf = u.reshape(B * C, N)
        gf = out.view(B * C, K, N)
        for k, h in enumerate(self.spacing):
            s = math.prod(spatial[k + 1:])
            if s < N:
                dk = gf[:, k, :-s]
                torch.sub(uf[:, s:], uf[:, :-s], out=dk)
                if h != 1.0:
                    dk.mul_(1.0 / h)
        return self.zero_unused(out)  # the last slab of each component (its flat difference wrapped around)

    def sqnorm_into(self, z: torch.Tensor, out: torch.Tensor, channelwise: bool) -> torch.Tensor:
        """Pointwise squared norm of a field ``(B, C, K, *spatial)`` as ``(B, C|1, 1, *spatial)`` (into
        ``out`` where the norm is per channel or there is one channel)."""
        if channelwise or z.shape[1] == 1:
            torch.mul(z[:, :, 0:1], z[:, :, 0:1], out=out)
            for k in range(1, self.ndim):
                out.addcmul_(z[:, :, k:k + 1], z[:, :, k:k + 1])
            return out
        return (z * z).sum((1, 2), keepdim=True)

    def project_(self, z: torch.Tensor, buf: torch.Tensor, channelwise: bool) -> torch.Tensor:
        """Project a field onto ``|z| <= 1`` pointwise, in place (``buf``: a norm buffer)."""
        return z.mul_(self.sqnorm_into(z, buf, channelwise).clamp_min_(1.0).rsqrt_())

    def norm_buffer(self, f: torch.Tensor, channelwise: bool) -> torch.Tensor:
        """A buffer for the pointwise norm of a field over ``f`` ``(B, C, *spatial)``."""
        return f.new_empty(f.shape[0], f.shape[1] if channelwise else 1, 1, *f.shape[2:])


PLAIN = Grid()


def make_grid(ndim, spacing, f_dim: int | None = None) -> Grid:
    """The :class:`Grid` of a call's ``ndim`` and ``spacing`` arguments, checked like :mod:`pdeflow.ops`:
    a 3-element ``spacing`` implies ``ndim=3``; a length that contradicts ``ndim``, a non-positive or
    non-finite spacing, or an ``ndim`` other than 2 or 3 is refused (UserInputError naming the argument).
    ``f_dim``: the number of axes of the input, checked to hold ``ndim`` spatial axes (+ C, + B)."""
    if ndim is not None and (isinstance(ndim, bool) or ndim not in (2, 3)):
        raise UserInputError(f"ndim must be 2 or 3 (the number of spatial axes), got {ndim!r}")
    if spacing is None:
        h = None
    else:
        if isinstance(spacing, torch.Tensor):
            spacing = spacing.detach().reshape(-1).tolist() if spacing.dim() else float(spacing)
        if isinstance(spacing, (int, float)) and not isinstance(spacing, bool):
            h = (float(spacing),) * (ndim or 2)
        else:
            try:
                h = tuple(float(s) for s in spacing)
            except (TypeError, ValueError):
                raise UserInputError(f"spacing must be a positive number or a sequence (dy, dx) or (dz, dy, dx) "
                                     f"of positive numbers, got {spacing!r}") from None
        if len(h) not in (2, 3):
            raise UserInputError(f"spacing must have 2 (dy, dx) or 3 (dz, dy, dx) entries, got {len(h)}")
        if not all(math.isfinite(s) and s > 0 for s in h):
            raise UserInputError(f"spacing must be finite and > 0 on every axis, got {spacing!r}")
        if ndim is not None and len(h) != ndim:
            raise UserInputError(f"spacing has {len(h)} entries but ndim={ndim}: give one spacing per spatial "
                                 f"axis ({'(dz, dy, dx)' if ndim == 3 else '(dy, dx)'})")
    K = len(h) if h is not None else (ndim or 2)
    if f_dim is not None and not (K <= f_dim <= K + 2):
        shapes = "(D, H, W), (C, D, H, W) or (B, C, D, H, W)" if K == 3 else "(H, W), (C, H, W) or (B, C, H, W)"
        raise UserInputError(f"f must have shape {shapes} for ndim={K}, got {f_dim} axes")
    return Grid(K, h if h is not None else (1.0,) * K)
