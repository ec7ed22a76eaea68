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

__all__ = ["figure", "show_image", "image_grid", "colorbar", "figure_png", "robust_range", "stretch",
           "stretch_label", "zoom_window", "crop", "mark_window"]


def figure(width: float, height: float):
    """A new figure of ``width`` x ``height`` inches (100 dpi, constrained layout).

    Examples
    --------
    >>> from pdeflow.viz import figure
    >>> fig = figure(4, 2)
    >>> tuple(float(v) for v in fig.get_size_inches()), fig.dpi
    ((4.0, 2.0), 100)
    """
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
    """Draw ``img`` (values in [0, 1]) on ``ax`` with ``title``, no axes.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.viz import figure, show_image
    >>> ax = figure(2, 2).subplots()
    >>> show_image(ax, torch.rand(1, 8, 8), "noise")
    >>> ax.get_title()
    'noise'
    """
    a = _hwc(img)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def image_grid(fig_or_sub, panels, ncols: int) -> np.ndarray:
    """``panels``: list of (image in [0, 1], title), drawn on a grid of ``ncols`` columns.
    Returns the axes (flat, row by row; those after the panels are blank).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.viz import figure, image_grid
    >>> axes = image_grid(figure(6, 4), [(torch.zeros(8, 8), "a"), (torch.ones(8, 8), "b"), (torch.rand(8, 8), "c")], 2)
    >>> len(axes), [ax.get_title() for ax in axes]
    (4, ['a', 'b', 'c', ''])
    """
    nrows = max(1, math.ceil(len(panels) / ncols))
    axes = np.atleast_1d(fig_or_sub.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (img, title) in zip(axes, panels):
        show_image(ax, img, title)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    return axes


def colorbar(fig, mappable, axes, label: str) -> None:
    """A colour bar for ``mappable`` (what ``imshow`` returned) beside ``axes`` (one row of panels).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.viz import colorbar, figure
    >>> fig = figure(3, 3)
    >>> ax = fig.subplots()
    >>> colorbar(fig, ax.imshow(torch.rand(8, 8).numpy()), [ax], "error")
    >>> len(fig.axes)
    2
    """
    cb = fig.colorbar(mappable, ax=list(np.atleast_1d(axes).ravel()), shrink=0.85, pad=0.01, aspect=12)
    cb.set_label(label, fontsize=7)
    cb.ax.tick_params(labelsize=6)


def robust_range(img: torch.Tensor, lower: float = 0.01, upper: float = 0.99) -> tuple[float, float]:
    """The ``lower`` and ``upper`` quantiles of the values of ``img`` (the range a contrast
    stretch maps to black and white), widened to at least 1e-3 so that a flat image stays grey.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.viz import robust_range
    >>> tuple(round(v, 3) for v in robust_range(torch.linspace(0, 1, 101)))
    (0.01, 0.99)
    >>> tuple(round(v, 4) for v in robust_range(torch.full((4, 4), 0.5)))
    (0.4995, 0.5005)
    """
    v = img.detach().double().reshape(-1)
    lo, hi = (float(x) for x in torch.quantile(v, torch.tensor([lower, upper], dtype=v.dtype)))
    if hi - lo < 1e-3:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - 5e-4, mid + 5e-4
    return lo, hi


def stretch(img: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Contrast stretch: ``(img - lo) / (hi - lo)`` clipped to [0, 1] (``lo`` black, ``hi`` white).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.viz import stretch
    >>> stretch(torch.tensor([0.0, 0.2, 0.3, 0.6]), 0.2, 0.4)
    tensor([0.0000, 0.0000, 0.5000, 1.0000])
    """
    return ((img - lo) / (hi - lo)).clamp(0.0, 1.0)


def stretch_label(lo: float, hi: float) -> str:
    """How a stretched panel maps values, for its title: ``"contrast [lo, hi] -> [0, 1]"``.

    Examples
    --------
    >>> from pdeflow.viz import stretch_label
    >>> stretch_label(0.25, 0.75)
    'contrast [0.25, 0.75] -> [0, 1]'
    """
    return f"contrast [{lo:.2f}, {hi:.2f}] -> [0, 1]"


def zoom_window(weight: torch.Tensor, size: int) -> tuple[int, int, int]:
    """The ``size`` x ``size`` window where ``weight`` (``(H, W)`` or ``(C, H, W)``, summed over
    channels) has the largest sum: ``(top, left, size)``, ``size`` clipped to the image.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.viz import zoom_window
    >>> w = torch.zeros(10, 10)
    >>> w[6:9, 2:5] = 1.0
    >>> zoom_window(w, 3)
    (6, 2, 3)
    """
    w = weight.detach().double()
    w = w.sum(0) if w.ndim == 3 else w
    H, W = w.shape
    size = max(1, min(int(size), H, W))
    sums = torch.nn.functional.avg_pool2d(w[None, None], size, stride=1)[0, 0]
    k = int(sums.reshape(-1).argmax())
    return k // sums.shape[1], k % sums.shape[1], size


def crop(img: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """``img[..., top:top + size, left:left + size]`` for ``window = (top, left, size)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.viz import crop
    >>> crop(torch.arange(25).reshape(1, 5, 5), (1, 2, 2))
    tensor([[[ 7,  8],
             [12, 13]]])
    """
    top, left, size = window
    return img[..., top:top + size, left:left + size]


def mark_window(ax, window: tuple[int, int, int], color: str = "yellow") -> None:
    """Outline ``window = (top, left, size)`` on an image panel ``ax``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.viz import figure, mark_window, show_image
    >>> ax = figure(2, 2).subplots()
    >>> show_image(ax, torch.rand(1, 16, 16), "zoom")
    >>> mark_window(ax, (4, 4, 8))
    >>> len(ax.patches)
    1
    """
    from matplotlib.patches import Rectangle

    top, left, size = window
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor=color, linewidth=1.0))


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (at its own dpi).

    Examples
    --------
    >>> from pdeflow.viz import figure, figure_png
    >>> png = figure_png(figure(1, 1))
    >>> png[1:4]
    b'PNG'
    """
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()
