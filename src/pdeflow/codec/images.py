"""The encoder's input: the user's image as the codec's (C, H, W) float64 in [0, 1] with its bit depth
(:func:`prepare_image`), and the layout it was given (:func:`read_image_layout`), which the file records.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import ops
from ..errors import UserInputError

__all__ = ["prepare_image", "read_image_layout", "check_max_pixels"]


def read_image_layout(image, channel_axis, who: str = "encode"):
    """``(image with its channels first, Layout)``: the layout rule (:func:`pdeflow.layout.read_layout`) for the
    encoder's ``image``, and a NumPy array ``(H, W, 3)`` too small for the rule's notice (at most
    :data:`pdeflow.layout.MAX_IMAGE_CHANNELS` rows) read channels last as :func:`prepare_image` reads it (a PIL
    image's array).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.codec.images import read_image_layout
    >>> x, layout = read_image_layout(np.zeros((4, 5, 3), np.uint8), None)
    >>> x.shape, layout.channels_last
    ((4, 5, 3), True)
    """
    image, layout = ops.read_layout(image, "image", channel_axis=channel_axis, who=who, volumes=False, stacklevel=4)
    small = isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[0] != 3 and image.shape[-1] == 3
    if channel_axis is None and small:      # prepare_image moves its channels first
        layout = ops.Layout(True, (3, *image.shape[:2]), 2)
    return image, layout


def check_max_pixels(max_pixels, who: str) -> None:
    """Refuse a ``max_pixels`` that is not None or an int >= 4 (the encoder's and the decoder's limit).

    Examples
    --------
    >>> from pdeflow.codec.images import check_max_pixels
    >>> check_max_pixels(None, "example"), check_max_pixels(64, "example")
    (None, None)
    """
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int)
                                   or max_pixels < 4):
        raise UserInputError(f"{who}: max_pixels must be an int >= 4 or None, got {max_pixels!r}")


def prepare_image(image, who: str = "encode", *, max_pixels: int | None = None) -> tuple[torch.Tensor, int]:
    """``(f, bit_depth)``: the image as float64 (C, H, W) in [0, 1] with C = 1 or 3, and 8 or 16 bits.

    Float tensors and arrays (H, W) or (C, H, W) must lie in [0, 1]; uint8 and uint16 NumPy arrays are
    divided by 255 and 65535 (bit depth 8 and 16). A NumPy array (H, W, 3), channels last as
    ``np.asarray(PIL.Image.open(path))`` gives it, is taken as RGB (an array whose first and last axes both
    have 3 entries is (C, H, W)); an alpha channel (H, W, 4) is refused: composite or drop it first. An image
    of more than ``max_pixels`` pixels (``H W``; None: any) is refused before it is converted.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from pdeflow.codec.images import prepare_image
    >>> f, depth = prepare_image(np.full((4, 5), 65535, np.uint16))
    >>> f.shape, f.dtype, depth, float(f.max())
    (torch.Size([1, 4, 5]), torch.float64, 16, 1.0)
    >>> prepare_image(torch.zeros(3, 4, 5))[0].shape
    torch.Size([3, 4, 5])
    >>> prepare_image(np.zeros((4, 5, 3), np.uint8))[0].shape     # channels last (PIL's layout)
    torch.Size([3, 4, 5])
    """
    depth = 8
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[0] != 3:
        if image.shape[-1] == 4:
            raise UserInputError(f"{who}: image of shape {image.shape} has an alpha channel (H, W, 4), which the "
                                 "codec does not store; drop it (image[..., :3]) or composite it first")
        if image.shape[-1] == 3:     # (H, W, 3): channels last, as NumPy holds a PIL image
            image = np.moveaxis(image, -1, 0)
    check_max_pixels(max_pixels, who)
    shape = tuple(getattr(image, "shape", ()))
    if max_pixels is not None and len(shape) >= 2 and shape[-2] * shape[-1] > max_pixels:
        H, W = shape[-2:]
        raise UserInputError(f"{who}: image of {H} x {W} = {H * W} pixels is larger than max_pixels={max_pixels} "
                             "(by default the decoder's limit, MAX_PIXELS): pass a larger max_pixels, or None, to "
                             "encode and to decode")
    if isinstance(image, np.ndarray) and image.dtype in (np.uint8, np.uint16):
        depth = 8 if image.dtype == np.uint8 else 16
        image = torch.from_numpy(image.astype(np.float64) / (255.0 if depth == 8 else 65535.0))
    f = ops.check_tensor(image, f"{who}: image")
    ops.check_image(f, f"{who}: image", min_size=2)
    if f.dim() == 2:
        f = f[None]
    if f.dim() == 3 and f.shape[0] == 4:      # (4, H, W): an RGBA image, as encode's layout rule hands it on
        raise UserInputError(f"{who}: image has an alpha channel (H, W, 4) or (4, H, W), which the codec does not "
                             "store; drop it (image[..., :3] channels last, image[:3] channels first) or composite it "
                             "first")
    if f.dim() != 3 or f.shape[0] not in (1, 3):
        raise UserInputError(f"{who}: image must have shape (H, W) or (C, H, W) with C = 1 or 3, got "
                             f"{tuple(image.shape)}")
    if max(f.shape[1:]) > 65535:
        raise UserInputError(f"{who}: image sides must be at most 65535 pixels, got {tuple(f.shape[1:])}")
    f = f.detach().to(torch.float64).cpu()
    if float(f.min()) < 0 or float(f.max()) > 1:
        raise UserInputError(f"{who}: image values must lie in [0, 1], got [{float(f.min()):.4g}, "
                             f"{float(f.max()):.4g}]")
    return f, depth
