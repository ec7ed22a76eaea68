"""The shared input checks of the inpainting operators: the one mask check, the one rule for non-finite values,
warm starts, and the notice for a 3-D array taken as channels."""
from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import torch

from .. import layout, ops
from ..errors import UserInputError

__all__ = ["check_mask", "known_finite", "check_start", "volume_notice", "ChannelsWarning", "MAX_IMAGE_CHANNELS",
           "check_call", "check_positive"]

#: Most channels of an image (the layout rule's, :data:`pdeflow.layout.MAX_IMAGE_CHANNELS`).
MAX_IMAGE_CHANNELS = layout.MAX_IMAGE_CHANNELS

#: The notice of the layout rule (:class:`pdeflow.layout.ChannelsWarning`), by its name here too.
ChannelsWarning = layout.ChannelsWarning


def volume_notice(u, ndim, spacing, who: str, name: str = "f") -> None:
    """Warn (:class:`ChannelsWarning`) when ``u`` is 3-D with more than :data:`MAX_IMAGE_CHANNELS` leading entries
    and neither ``ndim`` nor ``spacing`` makes the call 3-D, in the wording of the layout rule
    (:func:`pdeflow.layout.read_layout`, which the public functions follow): pdeflow takes it as (C, H, W), its
    channels inpainted one by one, where scikit-image's inpainting would see a volume (D, H, W).

    Examples
    --------
    >>> import warnings, torch
    >>> from pdeflow.inpaint.checks import volume_notice
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     volume_notice(torch.zeros(8, 5, 5), None, None, "example")
    >>> print(w[0].message)  # doctest: +NORMALIZE_WHITESPACE
    example: f of shape (8, 5, 5) is taken as 8 channels of a 2-D image (C, H, W); pass ndim=3 for a volume
    (D, H, W), or channel_axis=0 to say so
    """
    if ndim is None and spacing is None and getattr(u, "ndim", 0) == 3 and u.shape[0] > MAX_IMAGE_CHANNELS:
        warnings.warn(layout.layout_message("channels", who, name, tuple(u.shape)), ChannelsWarning, stacklevel=3)


def check_mask(mask, f4: torch.Tensor, who: str, *, need_known: bool = True,
               continuous: bool = False, ndim: int = 2) -> torch.Tensor:
    """The one mask check: ``mask`` as a binary float tensor broadcastable to ``f4`` (B, C, H, W).

    The mask may be bool or numeric with values in {0, 1} (with ``continuous``:
    any values in [0, 1]); it may have fewer dimensions than ``f`` and size 1
    along the batch and channel axes. Each image (and channel, if the mask has
    several) must have at least one known pixel (a positive value) when
    ``need_known``. The conversion to the dtype of ``f4`` keeps autograd.
    ``ndim=3``: the same for volumes, ``f4`` (B, C, D, H, W) and a mask of
    shape (D, H, W), (1, D, H, W) or (B, 1, D, H, W).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.checks import check_mask
    >>> f4 = torch.zeros(2, 3, 4, 5)
    >>> check_mask(torch.ones(4, 5, dtype=torch.bool), f4, "example").shape   # broadcasts over (B, C)
    torch.Size([1, 1, 4, 5])
    >>> check_mask(torch.zeros(4, 5), f4, "example")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pdeflow.errors.UserInputError: example: mask has no known pixel in image 0; ...
    """
    return _fit_mask(mask, f4, who, ndim, need_known=need_known, continuous=continuous)


def known_finite(f: torch.Tensor, c: torch.Tensor, who: str) -> torch.Tensor:
    """``f`` with non-finite values at missing pixels (``c == 0``, where ``f`` is not used) set to 0, so
    that they cannot reach the solver (``0 * nan`` is NaN); non-finite values at known pixels are refused.
    The one rule of every inpainting operator.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.checks import known_finite
    >>> f = torch.tensor([[1.0, float("nan")]])
    >>> known_finite(f, torch.tensor([[1.0, 0.0]]), "demo")
    tensor([[1., 0.]])
    >>> known_finite(f, torch.tensor([[0.0, 1.0]]), "demo")    # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pdeflow.errors.UserInputError: demo: f has NaN or infinite values at 1 known pixels (mask > 0); ...
    """
    bad = ~torch.isfinite(f)
    if not bool(bad.any()):
        return f
    at_known = bad & (c.detach() > 0)
    if bool(at_known.any()):
        raise UserInputError(
            f"{who}: f has NaN or infinite values at {int(at_known.sum())} known pixels (mask > 0); only "
            "the values at missing pixels may be NaN. Mark the missing pixels with mask (1 = known, "
            "0 = missing), e.g. mask=~torch.isnan(f), or pass a NumPy masked array without mask")
    return torch.where(bad, torch.zeros((), dtype=f.dtype, device=f.device), f)


def check_start(x0, f, fb: torch.Tensor, who: str):
    """A warm start ``x0`` of the shape of ``f``, as ``fb`` (the checked batch) is: detached, in its dtype and
    device, reshaped like it; None stays None. Refuses another shape and non-finite values.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.checks import check_start
    >>> f = torch.zeros(4, 5)
    >>> check_start(torch.ones(4, 5), f, f[None, None].double(), "demo").shape
    torch.Size([1, 1, 4, 5])
    """
    if x0 is None:
        return None
    if not isinstance(x0, torch.Tensor) or x0.shape != f.shape:
        raise UserInputError(f"{who}: x0 must be a tensor of the shape of f {tuple(f.shape)}, "
                             f"got {tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}")
    x0 = x0.detach().to(device=fb.device, dtype=fb.dtype).reshape(fb.shape)
    if not bool(torch.isfinite(x0).all()):
        raise UserInputError(f"{who}: x0 contains NaN or infinite values")
    return x0


def _fit_mask(mask, f: torch.Tensor, who: str, spatial: int, *, need_known: bool, continuous: bool) -> torch.Tensor:
    """The checks of :func:`check_mask` for ``spatial`` = 2 (images, ``f`` (B, C, H, W)) or 3 (volumes,
    ``f`` (B, C, D, H, W)): shape, dtype, values, and at least one known site per image."""
    site, item = ("pixel", "image") if spatial == 2 else ("voxel", "volume")
    axes = "(H, W)" if spatial == 2 else "(D, H, W)"
    mask = ops.check_tensor(mask, f"{who}: mask")
    if not spatial <= mask.dim() <= spatial + 2:
        raise UserInputError(f"{who}: mask must have shape {axes}, (1, {axes[1:]} or (B, 1, {axes[1:]} matching f "
                             f"{tuple(f.shape)}, got {tuple(mask.shape)}")
    m = mask
    while m.dim() < spatial + 2:
        m = m[None]
    B, C = f.shape[:2]
    if m.shape[2:] != f.shape[2:] or m.shape[0] not in (1, B) or m.shape[1] not in (1, C):
        raise UserInputError(f"{who}: mask of shape {tuple(mask.shape)} does not fit f of shape {tuple(f.shape)} "
                             f"(expected {axes} = {tuple(f.shape[2:])}, with batch 1 or {B} and channels 1 or {C})")
    if m.is_complex():
        raise TypeError(f"{who}: mask must be bool or real, got {m.dtype}")
    if m.dtype != torch.bool:
        if continuous:
            if not bool(((m >= 0) & (m <= 1)).all()):
                raise UserInputError(f"{who}: mask must have values in [0, 1] (1 = known {site}), "
                                     f"got values in [{float(m.min())}, {float(m.max())}]")
        elif not bool(m.eq(0).logical_or_(m.eq(1)).all()):
            raise UserInputError(f"{who}: mask must be binary (values 0 and 1, 1 = known {site})"
                                 + ("; pass continuous=True for a mask with values in [0, 1]"
                                    if who == "inpaint_diffusion" else ""))
    m = m.to(device=f.device, dtype=f.dtype)
    if need_known:
        known = m.detach().flatten(2).amax(-1)  # (Bm, Cm); values are in [0, 1]
        if bool((known == 0).any()):
            bad = (known == 0).nonzero()[0].tolist()
            raise UserInputError(f"{who}: mask has no known {site} in {item} {bad[0]}"
                                 + (f", channel {bad[1]}" if m.shape[1] > 1 else "")
                                 + f"; at least one {site} per {item} must be known")
    return m


def check_call(f, mask, who: str, tol, max_iter):
    """``(f4, m, ndim)``: the checked image as (B, C, H, W) in its compute dtype (half precision promoted; values
    at missing pixels that are not finite set to zero), the binary mask of :func:`check_mask` in that dtype, and
    the number of dimensions of ``f``; refuses a bad ``tol`` or ``max_iter``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.checks import check_call
    >>> f4, m, nd = check_call(torch.rand(5, 6), torch.ones(5, 6), "example", 1e-3, 10)
    >>> f4.shape, m.shape, nd
    (torch.Size([1, 1, 5, 6]), torch.Size([1, 1, 5, 6]), 2)
    """
    f = ops.check_tensor(f, f"{who}: f")
    ops.check_image(f, f"{who}: f", finite=False, min_size=2)
    fb, nd = ops.as_batch(f, f"{who}: f")
    fb = ops.promote_half(fb)
    m = check_mask(mask, fb, who)
    fb = known_finite(fb, m, who)
    if isinstance(tol, bool) or not isinstance(tol, Real) or not 0 < tol < 1:
        raise UserInputError(f"{who}: tol must be a number in (0, 1), got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, Integral) or max_iter < 1:
        raise UserInputError(f"{who}: max_iter must be a positive int, got {max_iter!r}")
    return fb, m, nd


def check_positive(value, name: str, who: str, *, zero: bool = False) -> float:
    """``value`` as a float, refused unless a finite number > 0 (``zero``: >= 0).

    Examples
    --------
    >>> from pdeflow.inpaint.checks import check_positive
    >>> check_positive(2, "contrast", "example"), check_positive(0, "sigma", "example", zero=True)
    (2.0, 0.0)
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or not (value >= 0 if zero else value > 0):
        raise UserInputError(f"{who}: {name} must be a finite number {'>= 0' if zero else '> 0'}, got {value!r}")
    return float(value)
