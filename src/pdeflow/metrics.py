"""Image quality and segmentation metrics: PSNR, SSIM, MAE and Dice.

All metrics are per image. Images are ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``; 4-D input gives shape
``(B,)``, 2-D or 3-D a 0-d tensor. The result is on the inputs' device, in the dtype computed in, as scikit-image:
float32 and float64 as they are (promoted to the wider), float16 and bfloat16 in float32 (half precision
overflows or loses digits).

**Integer images** are taken as scikit-image takes them, unlike the solvers (which refuse them,
:func:`pdeflow.ops.check_float`): a metric compares values on their stored scale. They are computed in float64 (no
``uint8`` wrap-around); without ``data_range`` the range comes from the dtype, as scikit-image's ``dtype_range``:
255 for ``uint8``, 65535 for ``uint16``. For signed types :func:`psnr` takes the dtype's largest value when neither
image is negative, else its whole span, :func:`ssim` its whole span (as scikit-image). Both images must have the
same dtype: where scikit-image warns and takes the first's, pdeflow refuses an integer image paired with another
dtype (different scales: ``uint8`` against floats in [0, 1]), saying how to convert. Bool images are refused (a
mask is not an image). :func:`ssim` computes in float64 whatever the input (its local variances cancel digits
float32 lacks) but returns the dtype above: a float32 SSIM is the float64 SSIM rounded to float32.
:func:`psnr`, :func:`ssim` and :func:`mae` are differentiable; :func:`dice` for probability inputs (soft Dice).

:func:`ssim` has scikit-image's two variants of the SSIM of Wang, Bovik, Sheikh and Simoncelli, "Image quality
assessment: from error visibility to structural similarity", IEEE Trans. Image Process. 13(4), 2004:

* ``window='gaussian'`` (default): ``structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=...)``, the paper's 11x11 Gaussian window, population covariance;
* ``window='uniform'``: scikit-image's default ``structural_similarity(x, y, data_range=...)``, a uniform 7x7
  window with the sample covariance (behind the SSIM values of Grossmann, Dittmer, Korolev and Schönlieb,
  "Unsupervised learning of the total variation flow", 2022).

Both crop the image border as scikit-image does and average several channels as with ``channel_axis``.
"""
from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F

from . import ops
from .errors import UserInputError
from .filters import gaussian_window
from .ops import correlate1d

__all__ = ["psnr", "ssim", "mae", "mse", "dice", "miou", "gaussian_window", "SSIM_WINDOWS"]


# ---------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------

def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float32/float64 as is, half precision in float32, integers and bool in float64 (as scikit-image)."""
    return ops.compute_dtype(t.dtype) if t.is_floating_point() else torch.float64


def _check_pair(name: str, x, y) -> tuple[torch.Tensor, torch.Tensor, bool, torch.dtype | None]:
    """Validate a pair of images; return them as ``(B, C, H, W)`` floats, whether the input was batched
    (4-D) and their integer dtype (None for floating images)."""
    x, y = _as_tensor(name, "x", x), _as_tensor(name, "y", y)
    for arg, t in (("x", x), ("y", y)):
        if t.dtype == torch.bool:
            ops.check_float(t, f"{name}: {arg}")  # refused, saying how to convert
        if t.device.type == "meta":
            raise UserInputError(f"{name}: {arg} is on the 'meta' device, which holds no values")
        if t.dim() not in (2, 3, 4):
            raise UserInputError(
                f"{name}: {arg} must have shape (H, W), (C, H, W) or (B, C, H, W), "
                f"got shape {tuple(t.shape)}"
            )
    for arg, t in (("x", x), ("y", y)):
        if t.numel() == 0:
            raise UserInputError(f"{name}: {arg} is empty (shape {tuple(t.shape)}); a metric needs pixels")
    if x.shape != y.shape:
        raise UserInputError(
            f"{name}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.device != y.device:
        raise UserInputError(f"{name}: x and y must be on the same device, got {x.device} and {y.device}")
    if x.is_complex() or y.is_complex():
        raise TypeError(f"{name}: complex images are not supported")
    integer = _integer_dtype(name, x, y)
    batched = x.dim() == 4
    dtype = torch.promote_types(_compute_dtype(x), _compute_dtype(y))
    x = x.to(dtype)
    y = y.to(dtype)
    while x.dim() < 4:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    return x, y, batched, integer


def _integer_dtype(name: str, x: torch.Tensor, y: torch.Tensor) -> torch.dtype | None:
    """The pair's integer dtype (None if both are floating); an integer image with an image of another
    dtype is refused: the two are on different scales (8-bit against [0, 1]) or their range is ambiguous."""
    if x.is_floating_point() and y.is_floating_point():
        return None
    if x.dtype != y.dtype:
        i, other = ("x", "y") if not x.is_floating_point() else ("y", "x")
        it = x if i == "x" else y
        scale = torch.iinfo(it.dtype).max
        raise UserInputError(
            f"{name}: {i} is an integer image ({it.dtype}) and {other} has dtype {(y if i == 'x' else x).dtype}: "
            f"a pair with an integer image must have one dtype (the data range comes from it); convert {i}, "
            f"e.g. {i}.double() / {scale} to compare with floats in [0, 1]")
    return x.dtype


def _integer_range(name: str, dtype: torch.dtype, x: torch.Tensor, y: torch.Tensor) -> float:
    """The default data range of integer images, as scikit-image's ``dtype_range``: the dtype's largest
    value for data that are not negative (:func:`psnr`; unsigned types always), its whole span otherwise
    (and always for :func:`ssim`)."""
    info = torch.iinfo(dtype)
    if name == "psnr" and (info.min == 0 or min(float(x.detach().min()), float(y.detach().min())) >= 0):
        return float(info.max)
    return float(info.max) - float(info.min)


def _as_tensor(name: str, arg: str, t) -> torch.Tensor:
    """A tensor as it is; a NumPy array or a (nested) list of numbers converted (as ``torch.as_tensor``)."""
    if isinstance(t, torch.Tensor):
        return t
    try:
        return torch.as_tensor(t)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name}: {arg} must be a torch.Tensor (or a NumPy array or list of numbers), "
                        f"got {type(t).__name__}") from None


def _default_range(name: str, x: torch.Tensor, y: torch.Tensor) -> float:
    """``data_range`` when none is given: 1, for data in [0, 1]; other data raise (as scikit-image does
    for floats outside their range): the range cannot be told from the data."""
    for arg, t in (("x", x), ("y", y)):
        lo, hi = float(t.detach().min()), float(t.detach().max())
        if lo < 0 or hi > 1:
            raise UserInputError(
                f"{name}: {arg} has values outside [0, 1] (min {lo:.4g}, max {hi:.4g}); pass data_range "
                "(e.g. 255 for 8-bit intensities, 1 for images in [0, 1]): it is not guessed from the data"
            )
    return 1.0


def _check_data_range(name: str, data_range, batch: int, ref: torch.Tensor) -> torch.Tensor:
    """``data_range`` as a tensor broadcastable against a ``(B,)`` result."""
    if isinstance(data_range, torch.Tensor):
        dr = data_range.to(device=ref.device, dtype=ref.dtype)
        if dr.dim() == 0:
            pass
        elif dr.shape != (batch,):
            raise UserInputError(
                f"{name}: data_range must be a positive number or a tensor of shape (B,) = ({batch},), "
                f"got shape {tuple(dr.shape)}"
            )
        if not bool(torch.all(torch.isfinite(dr) & (dr > 0))):
            raise UserInputError(f"{name}: data_range must be positive and finite, got {data_range}")
        return dr
    if isinstance(data_range, bool) or not isinstance(data_range, Real):
        raise TypeError(
            f"{name}: data_range must be a positive number or a (B,) tensor, "
            f"got {type(data_range).__name__}"
        )
    if not (math.isfinite(data_range) and data_range > 0):
        raise UserInputError(f"{name}: data_range must be positive and finite, got {data_range}")
    return torch.tensor(float(data_range), dtype=ref.dtype, device=ref.device)


def _finish(v: torch.Tensor, batched: bool) -> torch.Tensor:
    return v if batched else v[0]


# ---------------------------------------------------------------------------
# Pixel-wise errors
# ---------------------------------------------------------------------------

def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image.

    Parameters
    ----------
    x, y : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Images of the same shape; integer images (of one dtype) are
        computed in float64 on their own scale (see the module docstring).

    Returns
    -------
    Tensor, shape (B,) for 4-D input, 0-d otherwise
        ``mean((x - y)**2)`` over channels and pixels, in squared intensity units.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.metrics import mse
    >>> mse(torch.zeros(2, 2), torch.full((2, 2), 0.5))
    tensor(0.2500)
    """
    x, y, batched, _ = _check_pair("mse", x, y)
    return _finish((x - y).square().flatten(1).mean(1), batched)


def mae(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image: ``mean(|x - y|)`` over channels and pixels, in intensity units.

    Arguments and result shape as :func:`mse`.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.metrics import mae
    >>> mae(torch.zeros(2, 2), torch.tensor([[0.0, 0.5], [0.5, 1.0]]))
    tensor(0.5000)
    """
    x, y, batched, _ = _check_pair("mae", x, y)
    return _finish((x - y).abs().flatten(1).mean(1), batched)


#: Where tables of PSNR cap identical frames (``t = 0`` of a flow), in dB: the TVflowNET evaluation and validation.
PSNR_CAP = 100.0


def psnr(x: torch.Tensor, y: torch.Tensor, data_range=None) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in decibels.

    ``psnr = 10 * log10(data_range**2 / mse(x, y))``, as scikit-image's
    ``peak_signal_noise_ratio``; identical images give ``inf``.

    Parameters
    ----------
    x, y : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Images of the same shape (the metric is symmetric).
    data_range : float or Tensor of shape (B,), optional
        Largest minus smallest possible intensity, positive: e.g. 1 for [0, 1], 255 for 8-bit values.
        Default: for integer images their dtype's range (255 for ``uint8``; module docstring), else 1 for
        data in [0, 1]; float data outside [0, 1] without it raise UserInputError (not guessed, as in
        scikit-image).

    Returns
    -------
    Tensor, shape (B,) for 4-D input, 0-d otherwise
        PSNR in dB; the mean squared error runs over channels and pixels.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.metrics import psnr
    >>> x = torch.zeros(4, 4)
    >>> psnr(x, x + 0.1)
    tensor(20.)
    >>> psnr(x * 255, x * 255 + 25.5, data_range=255.0)   # data outside [0, 1]: data_range is required
    tensor(20.)
    >>> a = torch.zeros(4, 4, dtype=torch.uint8)
    >>> psnr(a, a + 51)                                     # 8-bit images: the range 255 from the dtype
    tensor(13.9794, dtype=torch.float64)
    """
    x, y, batched, integer = _check_pair("psnr", x, y)
    if data_range is None:
        data_range = _integer_range("psnr", integer, x, y) if integer else _default_range("psnr", x, y)
    dr = _check_data_range("psnr", data_range, x.shape[0], x)
    err = (x - y).square().flatten(1).mean(1)
    return _finish(10.0 * torch.log10(dr.square() / err), batched)


# ---------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------

SSIM_WINDOWS = ("gaussian", "uniform")


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range=None,
    *,
    window: str = "gaussian",
    win_size: int | None = None,
    win_sigma: float = 1.5,
    truncate: float = 3.5,
    sample_covariance: bool | None = None,
    K1: float = 0.01,
    K2: float = 0.03,
    full: bool = False,
):
    """Structural similarity index per image, as in scikit-image.

    Local means, variances and covariance use a normalised window; the SSIM map is averaged over the pixels at
    least ``r`` from the border (scikit-image's crop; the window is ``2 r + 1`` wide), then over channels. Two
    windows (module docstring):

    * ``'gaussian'`` (default): a Gaussian of standard deviation ``win_sigma`` truncated at radius
      ``r = int(truncate * win_sigma + 0.5)`` (11x11 by default), population covariance; equals
      ``skimage.metrics.structural_similarity(x, y, data_range=data_range, gaussian_weights=True,
      sigma=win_sigma, use_sample_covariance=False)``.
    * ``'uniform'``: a ``win_size`` x ``win_size`` box (7x7 by default), sample covariance (times
      ``N / (N - 1)``, ``N = win_size**2``); equals scikit-image's default
      ``structural_similarity(x, y, data_range=data_range)``.

    Parameters
    ----------
    x, y : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Images of the same shape; ``H`` and ``W`` must be at least the window size.
    data_range : float or Tensor of shape (B,), optional
        Largest minus smallest possible intensity (1 for [0, 1]); sets ``C1 = (K1 * data_range)**2`` and
        ``C2 = (K2 * data_range)**2``. Default: for integer images their dtype's span (255 for ``uint8``, as
        scikit-image), else 1 for data in [0, 1]; float data outside [0, 1] without it raise UserInputError
        (as scikit-image).
    window : {'gaussian', 'uniform'}, optional
        The local window.
    win_size : int, optional
        Side of the uniform window, odd, at least 3 (default 7); ``window='uniform'`` only (the Gaussian's size
        follows from ``win_sigma`` and ``truncate``).
    win_sigma : float, optional
        Standard deviation of the Gaussian window in pixels, positive; ``window='gaussian'`` only (a
        non-default value with the uniform window raises UserInputError).
    truncate : float, optional
        Gaussian window radius in units of ``win_sigma``, positive (scikit-image always uses 3.5);
        ``window='gaussian'`` only, as ``win_sigma``.
    sample_covariance : bool, optional
        Use the sample (``N / (N - 1)``) instead of the population covariance. Default: True for the uniform
        window, False for the Gaussian (whose ``N`` is its pixel count, as scikit-image).
    K1, K2 : float, optional
        Stabilising constants, non-negative.
    full : bool, optional
        Also return the SSIM map of the valid (cropped) region.

    Returns
    -------
    Tensor, shape (B,) for 4-D input, 0-d otherwise
        Mean SSIM, dimensionless, at most 1.
    Tensor, only if ``full=True``
        The SSIM map: the input's shape with ``H' = H - 2 r`` rows and ``W' = W - 2 r`` columns (``(H', W')``,
        ``(C, H', W')`` or ``(B, C, H', W')``).

    Notes
    -----
    Two 1-D valid filters per statistic (:func:`pdeflow.ops.correlate1d`), equal to scipy's reflect-padded
    filtering inside the cropped region, so the border treatment never enters. Statistics and mean are in
    float64 for every dtype (float32 on MPS, which lacks float64): a local variance is a difference of nearly
    equal second moments, which float32 resolves to few digits. The result is returned in the input's dtype
    (float32 for half precision), so a float32 SSIM is the float64 SSIM rounded to float32. Invalid window
    arguments (non-positive ``win_sigma`` or ``truncate``, even ``win_size``, an argument of the other window)
    raise UserInputError naming it, whichever window is chosen.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.metrics import ssim
    >>> x = torch.linspace(0, 1, 121).reshape(11, 11)
    >>> ssim(x, x)
    tensor(1.)
    >>> bool(ssim(x, 0.5 * x) < 1)
    True
    """
    in_dim = x.dim() if isinstance(x, torch.Tensor) else None
    x, y, batched, integer = _check_pair("ssim", x, y)
    out_dtype = x.dtype
    # float64 throughout (E[x^2] - E[x]^2 cancels digits), rounded once; MPS has no float64: float32 there
    work = torch.float64 if x.device.type != "mps" else x.dtype
    if data_range is None:
        data_range = _integer_range("ssim", integer, x, y) if integer else _default_range("ssim", x, y)
    dr = _check_data_range("ssim", data_range, x.shape[0], torch.empty(0, dtype=work, device=x.device))
    for name, v in (("K1", K1), ("K2", K2)):
        if isinstance(v, bool) or not (isinstance(v, Real) and math.isfinite(v) and v >= 0):
            raise UserInputError(f"ssim: {name} must be a non-negative number, got {v!r}")
    if not isinstance(window, str) or window not in SSIM_WINDOWS:
        raise UserInputError(f"ssim: window must be one of {SSIM_WINDOWS}, got {window!r}")
    # Checked for either window, so a bad value never passes unnoticed because the window ignores it.
    for name, v in (("win_sigma", win_sigma), ("truncate", truncate)):
        if isinstance(v, bool) or not (isinstance(v, Real) and math.isfinite(v) and v > 0):
            raise UserInputError(f"ssim: {name} must be a positive finite number, got {v!r}")
    if win_size is not None and (isinstance(win_size, bool) or not isinstance(win_size, int)
                                 or win_size < 3 or win_size % 2 == 0):
        raise UserInputError(f"ssim: win_size must be an odd int >= 3, got {win_size!r}")
    if sample_covariance not in (None, True, False):
        raise UserInputError(f"ssim: sample_covariance must be True, False or None, got {sample_covariance!r}")
    if not isinstance(full, bool):
        raise UserInputError(f"ssim: full must be True or False, got {full!r}")
    if window == "uniform":
        for name, v, default in (("win_sigma", win_sigma, 1.5), ("truncate", truncate, 3.5)):
            if v != default:
                raise UserInputError(f"ssim: {name} applies to window='gaussian'; the uniform window's size "
                                     "is set by win_size")
        if win_size is None:
            win_size = 7
        win = torch.full((win_size,), 1.0 / win_size, dtype=work, device=x.device)
        what = f"win_size={win_size}"
        if sample_covariance is None:
            sample_covariance = True
    else:
        if win_size is not None:
            raise UserInputError("ssim: win_size applies to window='uniform'; the Gaussian window's size "
                             "is set by win_sigma and truncate")
        win = gaussian_window(win_sigma, truncate, dtype=work, device=x.device)
        what = f"win_sigma={win_sigma}, truncate={truncate}"
    k = win.numel()
    B, C, H, W = x.shape
    if H < k or W < k:
        raise UserInputError(
            f"ssim: x and y must be at least {k}x{k} pixels for window={window!r}, {what} "
            f"(window size {k}), got {H}x{W}"
        )

    cov_norm = k * k / (k * k - 1) if sample_covariance else 1.0
    if dr.dim():
        dr = dr.view(-1, 1, 1, 1)
    C1 = (K1 * dr) ** 2
    C2 = (K2 * dr) ** 2
    Hv, Wv = H - k + 1, W - k + 1
    # On the CPU, bands of output rows whose statistics fit in the cache: float64 in bands is faster
    # than one float32 pass over the whole image, whose five statistics stream through memory per tap.
    # Other devices take the image in one piece (one kernel launch per tap).
    rows = Hv if x.device.type != "cpu" else min(Hv, max(_SSIM_MIN_ROWS, _SSIM_BAND_PIXELS // (B * C * Wv)))
    sums, maps = [], []
    for r0 in range(0, Hv, rows):
        r1 = min(Hv, r0 + rows)
        # each band converted on its own: no float64 copy of the whole image
        band = _ssim_map(x[:, :, r0:r1 + k - 1].to(work), y[:, :, r0:r1 + k - 1].to(work), win, cov_norm, C1, C2)
        sums.append(band.flatten(1).sum(1))
        if full:
            maps.append(band)
    val = (torch.stack(sums).sum(0) / (C * Hv * Wv)).to(out_dtype)
    if not full:
        return _finish(val, batched)
    smap = torch.cat(maps, dim=2).to(out_dtype)
    smap = smap.reshape(smap.shape[4 - in_dim:]) if in_dim < 4 else smap
    return _finish(val, batched), smap


#: SSIM's row bands on the CPU: about this many output pixels (times 5 statistics) per band, at least
#: this many rows (the filter reads ``k - 1`` rows more than it writes).
_SSIM_BAND_PIXELS = 1 << 15
_SSIM_MIN_ROWS = 16


def _ssim_map(x, y, win, cov_norm, C1, C2):
    """The SSIM map of ``(B, C, h, W)`` images over their valid region."""
    B, C, H, W = x.shape
    # Five statistics through one separable filter (shifted sums, not convolutions: results page "Speed").
    stack = torch.stack([x, y, x * x, y * y, x * y], dim=2).reshape(B * C * 5, 1, H, W)
    stack = correlate1d(correlate1d(stack, win, 2), win, 3)
    Hv, Wv = stack.shape[-2:]
    ux, uy, uxx, uyy, uxy = stack.reshape(B, C, 5, Hv, Wv).unbind(2)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    num = (2 * ux * uy + C1) * (2 * vxy + C2)
    den = (ux * ux + uy * uy + C1) * (vx + vy + C2)
    return num / den


# ---------------------------------------------------------------------------
# Dice
# ---------------------------------------------------------------------------

def _is_labels(t: torch.Tensor) -> bool:
    return not t.is_floating_point()


def dice(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int | None = None,
    exclude_background: bool = True,
    *,
    per_class: bool = False,
) -> torch.Tensor:
    """Dice coefficient per image, averaged over classes.

    Per class ``k``: ``2 |P_k ∩ T_k| / (|P_k| + |T_k|)`` (products and sums of probabilities for soft inputs).
    **A class absent from both inputs in an image counts as 1.0** there (a perfect, empty agreement). The class
    mean runs over ``1..K-1`` when ``exclude_background`` (class 0 is the background), else over all ``K``.

    Parameters
    ----------
    pred, target : Tensor
        Integer (or bool) label maps ``(H, W)`` or ``(B, H, W)`` with values in ``0..K-1``, or floating
        one-hot encodings / class probabilities ``(K, H, W)`` or ``(B, K, H, W)``, possibly mixed (e.g.
        probabilities against labels); spatial and batch shapes must agree. Floating inputs give the
        differentiable soft Dice; pass ``argmax`` labels (or their one-hot) for the hard Dice.
    num_classes : int, optional
        Number of classes ``K``: by default a floating input's class dimension, else ``1 + max label`` over
        both inputs (whole batch). Labels outside ``0..K-1`` raise ValueError.
    exclude_background : bool, optional
        Leave class 0 out of the mean (default).
    per_class : bool, optional
        Return the per-class values instead of their mean.

    Returns
    -------
    Tensor
        ``(B,)`` for batched input (``(B, H, W)`` labels or ``(B, K, H, W)`` probabilities), else 0-d;
        ``per_class=True`` adds a trailing class axis of length ``K - 1`` (or ``K``). Values in [0, 1].

    Examples
    --------
    >>> import torch
    >>> from pdeflow.metrics import dice
    >>> dice(torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [0, 1]]))
    tensor(0.8000)
    """
    pred, target = _as_tensor("dice", "pred", pred), _as_tensor("dice", "target", target)
    for arg, t in (("pred", pred), ("target", target)):
        if t.device.type == "meta":
            raise UserInputError(f"dice: {arg} is on the 'meta' device, which holds no values")
        if t.numel() == 0:
            raise UserInputError(f"dice: {arg} is empty (shape {tuple(t.shape)})")
        if _is_labels(t):
            if t.dim() not in (2, 3):
                raise UserInputError(
                    f"dice: integer label map {arg} must have shape (H, W) or (B, H, W), "
                    f"got shape {tuple(t.shape)}"
                )
        elif t.dim() not in (3, 4):
            raise UserInputError(
                f"dice: floating {arg} (one-hot or probabilities) must have shape (K, H, W) or "
                f"(B, K, H, W), got shape {tuple(t.shape)}"
            )
    if pred.device != target.device:
        raise UserInputError(f"dice: pred and target must be on the same device, got {pred.device} and {target.device}")

    # Spatial/batch shape without a class dimension, and the class count.
    def spatial(t):
        return tuple(t.shape) if _is_labels(t) else tuple(t.shape[:-3]) + tuple(t.shape[-2:])

    if spatial(pred) != spatial(target):
        raise UserInputError(
            f"dice: pred and target do not match: shapes {tuple(pred.shape)} and {tuple(target.shape)} "
            "(label maps are (B, H, W), one-hot/probabilities (B, K, H, W))"
        )
    batched = len(spatial(pred)) == 3

    ks = {t.shape[-3] for t in (pred, target) if not _is_labels(t)}
    if len(ks) > 1:
        raise UserInputError(f"dice: pred and target have different numbers of classes: {sorted(ks)}")
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise UserInputError(f"dice: num_classes must be a positive int, got {num_classes!r}")
        if ks and num_classes != next(iter(ks)):
            raise UserInputError(
                f"dice: num_classes={num_classes} does not match the class dimension {next(iter(ks))}"
            )
    labels = [t for t in (pred, target) if _is_labels(t)]
    for t in labels:
        if t.numel() and int(t.min()) < 0:
            raise UserInputError("dice: label maps must be non-negative")
    if num_classes is None:
        if ks:
            num_classes = next(iter(ks))
        else:
            num_classes = 1 + max(int(t.max()) if t.numel() else 0 for t in labels)
    for arg, t in (("pred", pred), ("target", target)):
        if _is_labels(t) and t.numel() and int(t.max()) >= num_classes:
            raise UserInputError(f"dice: {arg} has label {int(t.max())} >= num_classes={num_classes}")
    if exclude_background and num_classes < 2:
        raise UserInputError("dice: exclude_background=True needs at least 2 classes (class 0 is the background)")

    float_dtype = next((t.dtype for t in (pred, target) if not _is_labels(t)), torch.get_default_dtype())

    def onehot(t):
        if not _is_labels(t):
            t = t if t.dim() == 4 else t.unsqueeze(0)
            return t.to(float_dtype)
        t = t.long()
        t = t if t.dim() == 3 else t.unsqueeze(0)
        return F.one_hot(t, num_classes).permute(0, 3, 1, 2).to(float_dtype)

    p, q = onehot(pred), onehot(target)
    if exclude_background:
        p, q = p[:, 1:], q[:, 1:]
    inter = (p * q).flatten(2).sum(2)
    total = p.flatten(2).sum(2) + q.flatten(2).sum(2)
    empty = total == 0
    d = torch.where(empty, torch.ones_like(total), 2 * inter / torch.where(empty, torch.ones_like(total), total))
    out = d if per_class else d.mean(1)
    return out if batched else out[0]


def miou(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int | None = None,
    exclude_background: bool = True,
    *,
    per_class: bool = False,
) -> torch.Tensor:
    """Intersection over union (Jaccard index) per image, averaged over classes (mIoU).

    Per class ``k``: ``|P_k ∩ T_k| / |P_k ∪ T_k|`` as ``D_k / (2 - D_k)`` of :func:`dice`'s per-class ``D_k``,
    exact for label maps and one-hot inputs (for soft inputs, that transform of the soft Dice). Arguments,
    shapes, class mean, errors and the rule that **a class absent from both inputs counts as 1.0**: as
    :func:`dice`.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.metrics import miou
    >>> miou(torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [0, 1]]))  # 2 / 3 for class 1
    tensor(0.6667)
    """
    d = dice(pred, target, num_classes, exclude_background, per_class=True)
    iou = d / (2 - d)
    return iou if per_class else iou.mean(-1)
