"""Figures: the one set of drawing helpers of the library and the command line.

Figures are :class:`matplotlib.figure.Figure` objects with an Agg canvas, made
without ``pyplot``: no global state, no display backend, safe in threads and
in tests. Images are tensors ``(C, H, W)`` or ``(H, W)`` with values in [0, 1]
(grey when ``C == 1``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["figure", "show_image", "image_grid", "figure_png"]


def figure(width: float, height: float):
    """A new figure of ``width`` x ``height`` inches (100 dpi, constrained layout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _hwc(img: torch.Tensor) -> np.ndarray:
    a = img.detach().cpu().numpy()
    if a.ndim == 2:
        return a
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def show_image(ax, img: torch.Tensor, title: str) -> None:
    """Draw ``img`` (values in [0, 1]) on ``ax`` with ``title``, no axes."""
    a = _hwc(img)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def image_grid(fig_or_sub, panels, ncols: int) -> None:
    """``panels``: list of (image in [0, 1], title), drawn on a grid of ``ncols`` columns."""
    nrows = max(1, math.ceil(len(panels) / ncols))
    axes = np.atleast_1d(fig_or_sub.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (img, title) in zip(axes, panels):
        show_image(ax, img, title)
    for ax in axes[len(panels):]:
        ax.set_axis_off()


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (at its own dpi)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()
