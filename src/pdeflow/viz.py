"""Figures: the one set of drawing helpers of the library and the command line.

Figures are :class:`matplotlib.figure.Figure` objects with an Agg canvas, made
without ``pyplot``: no global state, no display backend, safe in threads and
in tests. Images are tensors ``(C, H, W)`` or ``(H, W)`` with values in [0, 1]
(grey when ``C == 1``); volumes are ``(D, H, W)`` with values in [0, 1], shown as three
orthogonal slices (:func:`orthogonal_slices`, :func:`slices_figure`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["figure", "show_image", "image_grid", "colorbar", "figure_png", "robust_range", "stretch",
           "stretch_label", "zoom_window", "crop", "mark_window", "orthogonal_slices", "slices_figure"]


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
    if v.numel() < 2 ** 24:
        lo, hi = (float(x) for x in torch.quantile(v, torch.tensor([lower, upper], dtype=v.dtype)))
    else:   # torch.quantile refuses inputs this large (a CT volume); NumPy's default is the same interpolation
        lo, hi = (float(x) for x in np.quantile(v.cpu().numpy(), [lower, upper]))
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
    # window sums from the summed-area table: time linear in the image whatever the window (a pooling with a
    # window of a quarter of a 4K image took hours)
    table = torch.nn.functional.pad(w.cumsum(0).cumsum(1), (1, 0, 1, 0))
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
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


#: The views of :func:`orthogonal_slices`: name, the axis cut, and its letter (axis 0 is z, 1 y, 2 x).
_VIEWS = (("axial", 0, "z"), ("coronal", 1, "y"), ("sagittal", 2, "x"))


def _volume_rows(rows, spacing):
    vols = []
    for vol, title in rows:
        v = vol.detach().cpu().double() if isinstance(vol, torch.Tensor) else torch.as_tensor(vol, dtype=torch.float64)
        if v.dim() != 3:
            raise ValueError(f"orthogonal_slices: each volume must have shape (D, H, W), got {tuple(v.shape)}")
        vols.append((v, str(title)))
    if not vols:
        raise ValueError("orthogonal_slices: rows is empty")
    shapes = {tuple(v.shape) for v, _ in vols}
    if len(shapes) > 1:
        raise ValueError(f"orthogonal_slices: the volumes have different shapes {sorted(shapes)}")
    h = tuple(float(x) for x in spacing)
    if len(h) != 3 or not all(math.isfinite(x) and x > 0 for x in h):
        raise ValueError(f"orthogonal_slices: spacing must be three numbers > 0 (dz, dy, dx), got {spacing!r}")
    return vols, h


def _extents(shape, spacing):
    """Physical (width, height) of the axial, coronal and sagittal views."""
    (D, H, W), (dz, dy, dx) = shape, spacing
    return (W * dx, H * dy), (W * dx, D * dz), (H * dy, D * dz)


def orthogonal_slices(fig_or_sub, rows, spacing=(1.0, 1.0, 1.0), *, centre=None) -> np.ndarray:
    """Draw each volume of ``rows`` as three orthogonal slices, one row per volume.

    The columns are the axial view (the slice ``z = k``: rows y, columns x),
    the coronal view (``y = j``: rows z, columns x) and the sagittal view
    (``x = i``: rows z, columns y), cut through ``centre``. Each slice is drawn
    in physical units, so voxels of spacing ``(dz, dy, dx)`` keep their aspect
    (a CT of 2.5 mm slices and 0.5 mm pixels is not squashed); in the coronal
    and sagittal views z points up. Values are shown in grey, 0 black and 1
    white, nearest-neighbour (no smoothing of what the volume holds).

    Parameters
    ----------
    fig_or_sub : matplotlib Figure or SubFigure
    rows : sequence of (volume, title)
        Volumes of one shape ``(D, H, W)`` (tensors or arrays) with values in
        [0, 1] (values outside are clipped by the colour map), each with its title.
    spacing : (float, float, float), optional
        ``(dz, dy, dx)``, > 0 (default unit).
    centre : (int, int, int), optional
        ``(k, j, i)``, the voxel the three slices go through (default: the
        centre voxel ``(D // 2, H // 2, W // 2)``).

    Returns
    -------
    numpy.ndarray of Axes, shape (len(rows), 3)

    Raises
    ------
    ValueError
        Volumes that are not 3-D or of different shapes, a bad spacing or centre.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import ball
    >>> from pdeflow.viz import figure, orthogonal_slices
    >>> v = ball((8, 16, 16), 5, spacing=(2.0, 1.0, 1.0))
    >>> axes = orthogonal_slices(figure(6, 4), [(v, "ball"), (1 - v, "inverse")], spacing=(2.0, 1.0, 1.0))
    >>> axes.shape, axes[0, 0].get_title(), axes[1, 2].get_title()
    ((2, 3), 'ball\\naxial, z = 4', 'sagittal, x = 8')
    >>> [float(e) for e in axes[0, 1].images[0].get_extent()]    # coronal: 16 x 1 wide, 8 x 2 high, z up
    [0.0, 16.0, 0.0, 16.0]
    """
    vols, h = _volume_rows(rows, spacing)
    shape = tuple(vols[0][0].shape)
    c = tuple(n // 2 for n in shape) if centre is None else tuple(int(x) for x in centre)
    if len(c) != 3 or not all(0 <= x < n for x, n in zip(c, shape)):
        raise ValueError(f"orthogonal_slices: centre must be a voxel (k, j, i) of a volume of shape {shape}, "
                         f"got {centre!r}")
    ext = _extents(shape, h)
    axes = np.asarray(fig_or_sub.subplots(len(vols), 3, squeeze=False,
                                          gridspec_kw={"width_ratios": [w for w, _ in ext]}))
    for r, (v, title) in enumerate(vols):
        cuts = (v[c[0]], v[:, c[1]], v[:, :, c[2]])
        for col, ((view, axis, letter), cut, (w, hgt)) in enumerate(zip(_VIEWS, cuts, ext)):
            ax = axes[r, col]
            # axial: row 0 at the top (image convention); coronal and sagittal: z up
            extent, origin = ((0, w, hgt, 0), "upper") if axis == 0 else ((0, w, 0, hgt), "lower")
            ax.imshow(cut.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", extent=extent,
                      origin=origin)
            head = f"{title}\n" if col == 0 else ""
            ax.set_title(f"{head}{view}, {letter} = {c[axis]}", fontsize=8)
            ax.set_axis_off()
    return axes


def slices_figure(rows, spacing=(1.0, 1.0, 1.0), *, title: str = "", centre=None, below: float = 0.0,
                  width: float = 9.0):
    """A figure of :func:`orthogonal_slices` of ``rows``, sized to the volumes' physical extent.

    Parameters
    ----------
    rows, spacing, centre
        As :func:`orthogonal_slices`.
    title : str, optional
        The figure's title (above the rows).
    below : float, optional
        Height in inches of a free area under the slices (default 0: none);
        when given, the figure has two subfigures and ``fig.subfigs[1]`` is
        that area, e.g. for a plot.
    width : float, optional
        Width of the figure in inches (default 9).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import shepp_logan_3d
    >>> from pdeflow.viz import figure_png, slices_figure
    >>> v = shepp_logan_3d(16)
    >>> fig = slices_figure([(v, "input"), (v.clamp(0, 0.5), "clipped")], (2.0, 1.0, 1.0), title="phantom",
    ...                     below=2.0)
    >>> len(fig.subfigs), len(fig.subfigs[0].axes), figure_png(fig)[1:4]
    (2, 6, b'PNG')
    """
    vols, h = _volume_rows(rows, spacing)
    ext = _extents(tuple(vols[0][0].shape), h)
    scale = (width - 0.3) / sum(w for w, _ in ext)       # inches per unit of length
    row_h = min(max(scale * max(hgt for _, hgt in ext) + 0.45, 1.2), 5.0)
    head = 0.25 * (title.count("\n") + 1) + 0.1 if title else 0.0
    fig = figure(width, row_h * len(vols) + head + below)
    top = fig
    if below > 0:
        top, _ = fig.subfigures(2, 1, height_ratios=[row_h * len(vols) + head, below])
    orthogonal_slices(top, vols, h, centre=centre)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


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
