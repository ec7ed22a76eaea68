"""TVflowNET on large images: the network evaluated in overlapping tiles, with the untiled result.

A TVflowNET is a convolutional network: the value it returns at a pixel depends on the input
within a bounded distance, its *receptive radius* (:func:`receptive_radius`). :class:`Tiled`
evaluates a bare network (Semi-ResNet, LGD, U-Net or an :class:`~pdeflow.tvflownet.Ensemble`
of them) on tiles of ``tile`` pixels extended by ``overlap >=`` that radius on each side and
keeps each tile's core, so the memory of the network's activations is that of one extended
tile whatever the image size, and the result equals the untiled one up to round-off (the
convolutions' summation order): pixels near a tile's cut see the same input as in the whole
image. Two parts of the U-Net are not local and are evaluated in the whole image's
coordinates instead of the tile's: the padding of the input to a multiple of
``2**(scales - 1)`` (done once on the whole input, tiles aligned to that multiple) and the
bilinear upsampling with ``align_corners=True``, whose sampling positions depend on the
image size (they are computed from the global indices and sizes).

:func:`tiled_flow` is :func:`pdeflow.tvflownet.flow` with the network tiled: the per-image
normalisation of :class:`~pdeflow.tvflownet.Equivariant` and the symmetry mean of
:class:`~pdeflow.tvflownet.symmetry.DihedralMean` act on the whole image (they are cheap,
elementwise or a transposition), around the tiled network.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserInputError
from .api import flow, load
from .architectures import LGD, Ensemble, SemiResNet, UNet, time_image
from .wrapper import ModelWrapper

__all__ = ["tiled_flow", "Tiled", "receptive_radius"]


def receptive_radius(model: nn.Module) -> int:
    """How far (pixels) a bare TVflowNET's output at a pixel looks into its input.

    Semi-ResNet: one pixel per convolution; LGD: two per step; U-Net: the
    convolutions and upsamplings of every level at their strides, rounded up to
    a multiple of ``2**(scales - 1)``; each plus one for the normalised-gradient
    input and one of margin. An :class:`~pdeflow.tvflownet.Ensemble`: its
    members' largest.

    Examples
    --------
    >>> from pdeflow.tvflownet import LGD, SemiResNet, UNet
    >>> from pdeflow.tvflownet.tiled import receptive_radius
    >>> receptive_radius(SemiResNet()), receptive_radius(LGD(n_steps=10)), receptive_radius(UNet())
    (10, 22, 56)
    """
    if isinstance(model, Ensemble):
        return max(receptive_radius(m) for m in model.members)
    if isinstance(model, SemiResNet):
        return len(model.convs) + 2
    if isinstance(model, LGD):
        return 2 * model.n_steps + 2
    if isinstance(model, UNet):
        S = model.scales
        r = 1 + sum(2 ** (lvl - 1) + 2 ** lvl for lvl in range(1, S))       # input conv, encoder
        r += sum(2 ** lvl + 2 ** lvl for lvl in range(1, S))               # upsampling, decoder convs
        r += (2 if model.refine is not None else 0) + 2
        m = 2 ** (S - 1)
        return -(-r // m) * m
    raise UserInputError(f"tiled evaluation needs a bare SemiResNet, UNet, LGD or Ensemble of them, got "
                         f"{type(model).__name__}")


def _interp_global(y: torch.Tensor, dim: int, a_c: int, a_f: int, n_f: int, N_c: int, N_f: int) -> torch.Tensor:
    """Along ``dim``: bilinear ``align_corners=True`` upsampling from a global grid of ``N_c`` to ``N_f``
    points, for the fine global indices ``a_f .. a_f + n_f - 1``, from ``y`` holding the coarse global
    indices ``a_c ..`` (clamped to what ``y`` holds: only near a tile's cut, in its overlap)."""
    n_c = y.shape[dim]
    scale = torch.tensor((N_c - 1) / (N_f - 1) if N_f > 1 else 0.0, dtype=y.dtype)
    pos = scale * torch.arange(a_f, a_f + n_f, dtype=y.dtype)
    i0 = pos.floor()
    lam = (pos - i0).to(y.device)
    i0 = i0.long()
    i1 = torch.where(i0 < N_c - 1, i0 + 1, i0)
    i0 = (i0 - a_c).clamp(0, n_c - 1).to(y.device)
    i1 = (i1 - a_c).clamp(0, n_c - 1).to(y.device)
    shape = [1] * y.dim()
    shape[dim] = n_f
    lam = lam.view(shape)
    return y.index_select(dim, i0) * (1 - lam) + y.index_select(dim, i1) * lam


class Tiled(ModelWrapper):
    """A bare TVflowNET evaluated tile by tile: the same ``(u, phi)``, bounded memory.

    Parameters
    ----------
    model : nn.Module
        A bare :class:`~pdeflow.tvflownet.SemiResNet`, :class:`~pdeflow.tvflownet.UNet`,
        :class:`~pdeflow.tvflownet.LGD` or :class:`~pdeflow.tvflownet.Ensemble` of them
        (not wrapped in :class:`~pdeflow.tvflownet.Equivariant`: wrap the tiled one).
    tile : int
        Side of a tile's core (rounded up to the U-Net's multiple).
    overlap : int, optional
        Pixels added on each side of a tile; default and minimum
        :func:`receptive_radius` of ``model``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.tiled import Tiled
    >>> net = SemiResNet().double()
    >>> u0 = torch.rand(1, 1, 40, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> with torch.no_grad():
    ...     u, phi = Tiled(net, tile=16)(u0, 0.1)
    ...     u_ref, phi_ref = net(u0, 0.1)
    >>> float((u - u_ref).abs().max()) < 1e-12, float((phi - phi_ref).abs().max()) < 1e-12
    (True, True)
    """

    def __init__(self, model: nn.Module, tile: int = 512, overlap: int | None = None):
        super().__init__()
        r = receptive_radius(model)
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise UserInputError(f"tile must be an int >= 1, got {tile!r}")
        if overlap is None:
            overlap = r
        if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < r:
            raise UserInputError(f"overlap must be an int >= the receptive radius {r} of the model, got {overlap!r}")
        self.model, self.tile, self.overlap = model, tile, overlap

    def extra_repr(self) -> str:
        return f"tile={self.tile}, overlap={self.overlap}"

    def forward(self, u0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        if u0.dim() != 4:
            raise UserInputError(f"u0 must have shape (B, C, H, W), got {tuple(u0.shape)}")
        return self._eval(self.model, u0, t)

    def _eval(self, model, u0, t):
        if isinstance(model, Ensemble):
            u = phi = None
            for w, v, member in zip(model.weights, model.phi_weights, model.members):
                u_i, phi_i = self._eval(member, u0, t)
                u = w * u_i if u is None else u + w * u_i
                phi = v * phi_i if phi is None else phi + v * phi_i
            return u, phi
        if isinstance(model, UNet):
            return self._unet(model, u0, t)
        return self._local(model, u0, t)

    def _tiles(self, n: int, align: int = 1):
        """(core start, core end, extended start, extended end) along an axis of ``n`` points."""
        T = -(-self.tile // align) * align
        ov = -(-self.overlap // align) * align
        for a in range(0, n, T):
            b = min(n, a + T)
            yield a, b, max(0, a - ov), min(n, b + ov)

    def _local(self, model, u0, t):
        """A local network: the public forward on each extended tile, its core kept (``phi``'s zeroed
        border falls on the image's border or in a tile's overlap)."""
        B, C, H, W = u0.shape
        u = torch.empty_like(u0)
        phi = u0.new_empty(B, C, 2, H, W)
        for r0, r1, e0, e1 in self._tiles(H):
            for c0, c1, f0, f1 in self._tiles(W):
                ut, pt = model(u0[..., e0:e1, f0:f1], t)
                u[..., r0:r1, c0:c1] = ut[..., r0 - e0:r1 - e0, c0 - f0:c1 - f0]
                phi[..., r0:r1, c0:c1] = pt[..., r0 - e0:r1 - e0, c0 - f0:c1 - f0]
        return u, phi

    def _unet(self, net: UNet, u0, t):
        """:class:`UNet`'s forward with the padding and the upsampling in global coordinates."""
        B, C, H, W = u0.shape
        tau = time_image(t, u0)
        x = net.network_input(u0, tau)
        m = 2 ** (net.scales - 1)
        ph, pw = (-H) % m, (-W) % m
        top, left = ph // 2, pw // 2
        if ph or pw:
            mode = net.pad_mode
            if mode == "reflect" and (max(pw // 2, pw - pw // 2) >= W or max(ph // 2, ph - ph // 2) >= H):
                mode = "replicate"
            x = F.pad(x, (left, pw - left, top, ph - top), mode=mode)
        Hp, Wp = x.shape[-2:]
        out = x.new_empty(B, 3 * C, H, W)
        for r0, r1, e0, e1 in self._tiles(Hp, m):
            for c0, c1, f0, f1 in self._tiles(Wp, m):
                o = self._unet_tile(net, x[..., e0:e1, f0:f1], e0, f0, Hp, Wp)
                # core rows r0:r1 in padded coordinates, those inside the image
                R0, R1 = max(r0, top), min(r1, top + H)
                C0, C1 = max(c0, left), min(c1, left + W)
                if R0 < R1 and C0 < C1:
                    out[..., R0 - top:R1 - top, C0 - left:C1 - left] = o[..., R0 - e0:R1 - e0, C0 - f0:C1 - f0]
        return net.assemble(u0, tau, out[:, :C], out[:, C:].reshape(B, C, 2, H, W))

    @staticmethod
    def _unet_tile(net: UNet, x, e0, f0, Hp, Wp):
        xs = [net.coupled(F.softplus(net.inc(x)), 0)]
        for d in net.down:
            xs.append(net.coupled(d(xs[-1]), len(xs)))
        y = xs[-1]
        S = net.scales
        for i, up in enumerate(net.up):
            lc, lf = S - 1 - i, S - 2 - i                 # the levels of y and of its bridge
            bridge = xs[-2 - i]
            for dim, a0, N in ((-2, e0, Hp), (-1, f0, Wp)):
                y = _interp_global(y, dim, a0 // 2 ** lc, a0 // 2 ** lf, bridge.shape[dim], N // 2 ** lc, N // 2 ** lf)
            if up.skip > 0:
                y = torch.cat([y, F.softplus(up.skip_conv(bridge))], dim=1)
            y = net.coupled(F.softplus(up.conv2(F.softplus(up.conv1(y)))), S + i)
        out = net.outc(y)
        if net.refine is not None:
            out = out + net.refine(torch.cat([y, x], dim=1))
        return net.output(out)


def tiled_flow(u0: torch.Tensor, times: Sequence[float] | torch.Tensor, model: nn.Module | None = None, *,
               tile: int = 512, overlap: int | None = None, batch_size: int = 1, **kwargs):
    """:func:`pdeflow.tvflownet.flow` with the network evaluated in overlapping tiles (:class:`Tiled`).

    The same result as :func:`~pdeflow.tvflownet.flow` up to round-off, with the
    network's activations bounded by one tile of ``tile + 2 overlap`` pixels a
    side; what grows with the image is a few images' worth of ``u``, ``phi`` and
    the wrappers' intermediates per (image, time) pair in a network call
    (``batch_size``, default 1).

    Parameters
    ----------
    u0, times, model
        As :func:`~pdeflow.tvflownet.flow`; ``model`` must be a bare network (or
        :class:`~pdeflow.tvflownet.Ensemble`) as :func:`~pdeflow.tvflownet.load`
        returns, or what it accepts (a shipped name or a path), default the
        shipped default model.
    tile, overlap
        See :class:`Tiled`.
    batch_size : int
        (image, time) pairs per network call (default 1: large images).
    **kwargs
        The other keywords of :func:`~pdeflow.tvflownet.flow` (``scale``,
        ``equivariant``, ``symmetry``, ``return_ut``, ``return_dual``, ``progress``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import LGD, flow
    >>> from pdeflow.tvflownet.tiled import tiled_flow
    >>> net = LGD(n_steps=2).double()
    >>> u0 = torch.rand(36, 44, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    >>> u = tiled_flow(u0, [0.05, 0.2], net, tile=16)
    >>> u.shape, float((u - flow(u0, [0.05, 0.2], net)).abs().max()) < 1e-12
    (torch.Size([2, 36, 44]), True)
    """
    if model is None or isinstance(model, (str, os.PathLike)):
        model = load(model)
    return flow(u0, times, Tiled(model, tile=tile, overlap=overlap), batch_size=batch_size, **kwargs)
