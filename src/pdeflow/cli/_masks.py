"""The MASK of the ``pdeflow`` commands: a black-and-white image file read as 0 and 1 (1 = known pixel).

* :func:`read_mask`: ``--mask``, ``--holes``, ``--start-mask``: the file read, checked and centre-cropped as IMAGE.
* :func:`check_binary`: a mask with values other than 0 and 1 refused, naming the option.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import io as pio
from ._errors import CLIError
from ._inputs import centre_crop

#: Lossy image formats: their compression turns a mask's 0 and 1 into other values (and blurs isolated pixels).
LOSSY = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp")


def check_binary(m: torch.Tensor, option: str, text: str, what: str = "an image", one: str = "known") -> None:
    """Refuse a mask with values other than 0 and 1 (black and white, 0 and 255 in an 8-bit file), as
    :func:`~pdeflow.inpaint.inpaint_diffusion` does: thresholding a photograph or a compressed mask would choose the
    known pixels silently."""
    other = ~(m.eq(0) | m.eq(1))
    if bool(other.any()):
        hint = ("; JPEG compression changes a mask's values: save it as PNG"
                if Path(text).suffix.lower() in LOSSY else "")
        raise CLIError(f"argument {option}: '{text}' is not a binary mask: expected {what} of 0 and 1 only "
                       f"(black and white; 1 = {one}), but {float(other.float().mean()):.1%} of its values are "
                       f"neither{hint}")


def read_mask(text: str, option: str, size, shape, *, holes: bool = False) -> torch.Tensor:
    """The mask image ``text`` of ``option`` as (1, H, W) of 0/1 (1: known), centre-cropped by ``--size``
    as IMAGE is; a clear error for a missing file, values other than black and white, another size than
    ``shape`` (``None``: any size, as for a batch, whose images are checked one by one) or no known pixel.
    White is known, or with ``holes`` missing (the mask is then its negative)."""
    path = Path(text)
    if not path.exists():
        raise CLIError(f"argument {option}: no such file: '{text}'")
    try:
        m = pio.read_image(path, grey=True)
    except (ValueError, OSError) as exc:
        raise CLIError(f"argument {option}: {exc}") from None
    m = centre_crop(m, size, strict=False)       # a mask smaller than --size: the size error below names it
    if shape is not None and m.shape[-2:] != shape:
        raise CLIError(f"argument {option}: the mask is {m.shape[-2]}x{m.shape[-1]} but IMAGE is "
                       f"{shape[0]}x{shape[1]}")
    if holes:
        check_binary(m, option, text, one="missing")
        m = 1.0 - m
        if not bool(m.any()):
            raise CLIError(f"argument {option}: the holes cover the whole image: no known pixel (black) is left")
        return m.to(torch.float32)
    check_binary(m, option, text)
    if not bool(m.any()):
        raise CLIError(f"argument {option}: the mask has no known pixel (white)")
    return m.to(torch.float32)
