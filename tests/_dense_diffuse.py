"""A small dense, differentiable homogeneous diffusion inpainting for tests only.

``M(c) u = c f`` with ``M(c) = C - (I - C) L`` (``L`` the 5-point Neumann Laplacian as a
matrix, ``C = diag(c)``), solved densely with ``torch.linalg.solve``; autograd
differentiates it in ``f`` and in the (binary or continuous) mask ``c``. Only for
images of a few hundred pixels.
"""
from __future__ import annotations

import torch

from pdeflow.ops import laplacian


def laplacian_matrix(H: int, W: int, dtype=torch.float64) -> torch.Tensor:
    """``(H W, H W)`` matrix of :func:`pdeflow.ops.laplacian` (columns = images of unit vectors)."""
    eye = torch.eye(H * W, dtype=dtype).reshape(H * W, 1, H, W)
    return laplacian(eye).reshape(H * W, H * W).T


def dense_diffuse(f: torch.Tensor, mask: torch.Tensor, **_ignored) -> torch.Tensor:
    B, C, H, W = f.shape
    L = laplacian_matrix(H, W, f.dtype)
    c = mask.expand(B, 1, H, W).reshape(B, H * W).to(f.dtype)
    M = torch.diag_embed(c) - (1 - c)[:, :, None] * L[None]
    rhs = (c[:, None, :] * f.reshape(B, C, H * W)).transpose(1, 2)      # (B, n, C)
    u = torch.linalg.solve(M, rhs)
    return u.transpose(1, 2).reshape(B, C, H, W)
