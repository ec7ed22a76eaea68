"""The codec's colour transform: an orthonormal luma-chroma basis of RGB.

``Y = (R + G + B) / sqrt(3)``, ``C1 = (R - B) / sqrt(2)``, ``C2 = (R - 2 G + B) / sqrt(6)``. Luma and chroma
are decorrelated on natural images as with YCbCr, and because the basis is orthonormal a squared error in
the transformed channels is the same squared error in RGB: the tonal optimisation of each transformed
channel minimises the RGB error, and the inpainting (linear, channel by channel) commutes with the
transform. The chroma channels have less detail; the encoder gives them fewer quantisation levels.
"""
from __future__ import annotations

import math

import torch

__all__ = ["BASIS", "to_luma_chroma", "from_luma_chroma", "channel_ranges"]

#: Rows: the luma and the two chroma directions (orthonormal).
BASIS = ((1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)),
         (1 / math.sqrt(2), 0.0, -1 / math.sqrt(2)),
         (1 / math.sqrt(6), -2 / math.sqrt(6), 1 / math.sqrt(6)))


def _basis(like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(BASIS, dtype=like.dtype, device=like.device)


def to_luma_chroma(rgb: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB to (3, H, W) luma and chroma.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.codec.colour import from_luma_chroma, to_luma_chroma
    >>> x = torch.rand(3, 4, 5, dtype=torch.float64)
    >>> bool(torch.allclose(from_luma_chroma(to_luma_chroma(x)), x))
    True
    """
    return torch.einsum("kc,chw->khw", _basis(rgb), rgb)


def from_luma_chroma(ych: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_luma_chroma` (the transpose).

    Examples
    --------
    >>> import math, torch
    >>> from pdeflow.codec.colour import from_luma_chroma
    >>> ych = torch.tensor([math.sqrt(3), 0.0, 0.0], dtype=torch.float64).reshape(3, 1, 1)
    >>> from_luma_chroma(ych).flatten()   # luma alone: grey
    tensor([1., 1., 1.], dtype=torch.float64)
    """
    return torch.einsum("kc,khw->chw", _basis(ych), ych)


def channel_ranges(channels: int) -> list[tuple[float, float]]:
    """The range of each stored channel for RGB in [0, 1] (grey: [0, 1]).

    Examples
    --------
    >>> from pdeflow.codec.colour import channel_ranges
    >>> channel_ranges(1)
    [(0.0, 1.0)]
    >>> [(round(lo, 4), round(hi, 4)) for lo, hi in channel_ranges(3)]
    [(0.0, 1.7321), (-0.7071, 0.7071), (-0.8165, 0.8165)]
    """
    if channels == 1:
        return [(0.0, 1.0)]
    return [(sum(min(0.0, v) for v in b), sum(max(0.0, v) for v in b)) for b in BASIS]
