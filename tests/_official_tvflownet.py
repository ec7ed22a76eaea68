"""The discrete operators and loss of the official TVflowNET code, transcribed to NumPy for tests only.

Written here from the formulas of the official code (github.com/TamaraGrossmann/TVflowNET,
``utils/div_and_tv.py`` with its default ``zero_out=True`` and ``utils/losses_handler.py``),
pixel by pixel, independently of :mod:`pdeflow.ops`:

* ``ux[i, j] = u[i+1, j] - u[i, j]`` for ``1 <= i <= H-2``, else 0 (``uy`` likewise along columns);
* ``q = p`` with ``q0`` zeroed in rows 0 and H-1 and ``q1`` in columns 0 and W-1;
  ``(d/dx)* q0 [i] = q0[i] - q0[i-1]`` for ``1 <= i <= H-2``, ``q0[0]`` at ``i = 0``,
  ``-q0[H-2]`` at ``i = H-1``; ``div p = (d/dx)* q0 + (d/dy)* q1``;
* ``TV_eps(u) = sum_ij sqrt(ux^2 + uy^2 + eps^2)``;
* loss, per batch of greyscale images ``(B, H, W)`` and fields ``(B, 2, H, W)``: the means over
  pixels then batch of ``(u_t - div phi)^2``, ``relu(phi0^2 + phi1^2 - 1)``, ``(u(0) - u0)^2``,
  ``a2 (div phi)^2``, and the batch mean of ``a1 (sum u div phi + TV_eps(u))^2``.
"""
from __future__ import annotations

import numpy as np


def official_grad_np(u):
    H, W = u.shape
    ux, uy = np.zeros((H, W)), np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            if 1 <= i <= H - 2:
                ux[i, j] = u[i + 1, j] - u[i, j]
            if 1 <= j <= W - 2:
                uy[i, j] = u[i, j + 1] - u[i, j]
    return ux, uy


def official_div_np(p0, p1):
    H, W = p0.shape
    q0, q1 = p0.copy(), p1.copy()
    q0[0, :] = q0[H - 1, :] = 0.0
    q1[:, 0] = q1[:, W - 1] = 0.0
    d = np.zeros((H, W))
    for i in range(H):
        for j in range(W):
            if i == 0:
                dx = q0[0, j]
            elif i == H - 1:
                dx = -q0[H - 2, j]
            else:
                dx = q0[i, j] - q0[i - 1, j]
            if j == 0:
                dy = q1[i, 0]
            elif j == W - 1:
                dy = -q1[i, W - 2]
            else:
                dy = q1[i, j] - q1[i, j - 1]
            d[i, j] = dx + dy
    return d


def official_tv_np(u, eps):
    ux, uy = official_grad_np(u)
    return float(np.sqrt(ux ** 2 + uy ** 2 + eps ** 2).sum())


def official_loss_np(u, u_t, phi, u0, u_at_0, *, a1=1e-4, a2=1e-4, eps=1e-5):
    """The five terms (weighted) of the official loss; ``u, u_t, u0, u_at_0`` (B, H, W), ``phi`` (B, 2, H, W)."""
    B = u.shape[0]
    d = np.stack([official_div_np(phi[b, 0], phi[b, 1]) for b in range(B)])
    tv = np.array([official_tv_np(u[b], eps) for b in range(B)])
    return {
        "temporal": float(((u_t - d) ** 2).reshape(B, -1).mean(-1).mean()),
        "tv": a1 * float((((u * d).reshape(B, -1).sum(-1) + tv) ** 2).mean()),
        "norm": float(np.maximum(phi[:, 0] ** 2 + phi[:, 1] ** 2 - 1, 0).reshape(B, -1).mean(-1).mean()),
        "initial": float(((u_at_0 - u0) ** 2).reshape(B, -1).mean(-1).mean()),
        "min_norm": a2 * float((d ** 2).reshape(B, -1).mean(-1).mean()),
    }
