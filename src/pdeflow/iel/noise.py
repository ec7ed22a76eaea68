"""Label noise for the noisy-label experiments of Liu et al. (2023), seeded.

Two kinds, both on integer label maps ``(H, W)`` or ``(B, H, W)`` with values
``0..num_classes-1``:

* :func:`block_noise` -- the official code's: the image is cut into a grid of
  ``s x s`` blocks (starting at the top-left corner; the last row/column of
  blocks may be cut by the border) and each block is, with probability
  ``1 - keep``, overwritten by one class drawn uniformly from all classes
  (so it may keep its true class). The official settings are ``s=3, keep=0.8``
  (DSB2018), ``s=2, keep=0.9`` (WBC), ``s=1, keep=0.5`` (DRIVE).
* :func:`window_noise` -- the paper's text: ``round(area * H * W / s^2)``
  windows of ``s x s`` pixels at uniformly random positions inside the image,
  each overwritten by one uniformly random class (windows may overlap, so the
  covered area is at most ``area``). Paper: ``s=2`` (WBC), ``s=3`` (DSB2018),
  ``area=0.1``.

Randomness comes from ``generator`` (an int seed or a torch.Generator; ``seed=`` is its deprecated former name), so
the same seed gives the same noisy labels; each image of a batch gets its own
draw.

References
----------
.. [1] C. Liu, Z. Qiao, C. Li, C.-B. Schönlieb, "Inverse evolution layers: physics-informed regularizers
       for deep neural networks", arXiv:2307.07344, 2023.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import torch

from .. import ops
from ..errors import UserInputError
from ..rng import as_generator

__all__ = ["block_noise", "window_noise", "add_label_noise", "NOISE_KINDS"]

NOISE_KINDS = ("none", "blocks", "windows")


def _prepare(labels, num_classes, who):
    labels = ops.check_tensor(labels, f"{who}: labels")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{who}: labels must be an integer label map, got dtype {labels.dtype}")
    if labels.dim() not in (2, 3):
        raise UserInputError(f"{who}: labels must have shape (H, W) or (B, H, W), got {tuple(labels.shape)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 2:
        raise UserInputError(f"{who}: num_classes must be an int >= 2, got {num_classes!r}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise UserInputError(f"{who}: labels must lie in 0..{num_classes - 1}, "
                         f"got values in {int(labels.min())}..{int(labels.max())}")
    return labels if labels.dim() == 3 else labels[None]


def _generator(seed, generator, who):
    g = as_generator(generator, who, seed=seed)
    if g is None:
        raise UserInputError(f"{who}: pass generator (an int seed or a torch.Generator), so that the noise is "
                             "reproducible")
    return g


def _block_size(size, who) -> int:
    if isinstance(size, bool) or not isinstance(size, Integral) or size < 1:
        raise UserInputError(f"{who}: size must be an int >= 1 (pixels), got {size!r}")
    return int(size)


def block_noise(labels: torch.Tensor, num_classes: int, size: int = 3, keep: float = 0.8, *,
                generator=None, seed: int | None = None) -> torch.Tensor:
    """Replace ``s x s`` grid blocks by a uniform random class with probability ``1 - keep``.

    Parameters
    ----------
    labels : integer Tensor, shape (H, W) or (B, H, W)
        Clean labels in ``0..num_classes-1``.
    num_classes : int
        Number of classes K >= 2; replacement classes are uniform on ``0..K-1``.
    size : int
        Block side ``s`` in pixels.
    keep : float
        Probability in [0, 1] that a block keeps its labels untouched.
    generator : None, int or torch.Generator
        Source of randomness (an int seed or a CPU generator; required; ``seed=`` is its deprecated former name).

    Returns
    -------
    Tensor
        Noisy labels, same shape, dtype and device as ``labels``. The expected
        fraction of changed pixels is ``(1 - keep) * (1 - 1/K)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import block_noise
    >>> labels = torch.zeros(2, 12, 12, dtype=torch.int64)
    >>> noisy = block_noise(labels, num_classes=2, size=3, keep=0.5, generator=0)
    >>> noisy.shape, noisy.dtype, torch.equal(noisy, block_noise(labels, 2, 3, 0.5, generator=0))
    (torch.Size([2, 12, 12]), torch.int64, True)
    """
    who = "block_noise"
    labels = ops.check_tensor(labels, f"{who}: labels")
    lab = _prepare(labels, num_classes, who)
    s = _block_size(size, who)
    if isinstance(keep, bool) or not isinstance(keep, Real) or not 0.0 <= keep <= 1.0:
        raise UserInputError(f"{who}: keep must be a probability in [0, 1], got {keep!r}")
    g = _generator(seed, generator, who)
    B, H, W = lab.shape
    hb, wb = math.ceil(H / s), math.ceil(W / s)
    replace = torch.rand(B, hb, wb, generator=g) >= keep
    cls = torch.randint(0, num_classes, (B, hb, wb), generator=g)

    def up(t):   # blocks -> pixels, cut at the border
        return t.repeat_interleave(s, 1).repeat_interleave(s, 2)[:, :H, :W].to(lab.device)

    out = torch.where(up(replace), up(cls).to(lab.dtype), lab)
    return out if labels.dim() == 3 else out[0]


def window_noise(labels: torch.Tensor, num_classes: int, size: int = 3, area: float = 0.1, *,
                 generator=None, seed: int | None = None) -> torch.Tensor:
    """Overwrite random ``s x s`` windows covering a fraction ``area`` of the image.

    Parameters
    ----------
    labels : integer Tensor, shape (H, W) or (B, H, W)
        Clean labels in ``0..num_classes-1``; ``H, W >= size``.
    num_classes : int
        Number of classes K >= 2.
    size : int
        Window side ``s`` in pixels.
    area : float
        Total window area as a fraction of ``H * W`` in [0, 1]: the number of
        windows per image is ``round(area * H * W / s^2)``.
    generator : None, int or torch.Generator
        Source of randomness (exactly one).

    Returns
    -------
    Tensor
        Noisy labels, same shape, dtype and device as ``labels``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import window_noise
    >>> labels = torch.zeros(12, 12, dtype=torch.int64)
    >>> noisy = window_noise(labels, num_classes=2, size=3, area=0.25, generator=0)
    >>> noisy.shape, int((noisy != labels).sum()) <= 36  # round(0.25 * 144 / 9) = 4 windows of 9 pixels
    (torch.Size([12, 12]), True)
    """
    who = "window_noise"
    labels = ops.check_tensor(labels, f"{who}: labels")
    lab = _prepare(labels, num_classes, who)
    s = _block_size(size, who)
    if isinstance(area, bool) or not isinstance(area, Real) or not 0.0 <= area <= 1.0:
        raise UserInputError(f"{who}: area must be a fraction in [0, 1], got {area!r}")
    B, H, W = lab.shape
    if H < s or W < s:
        raise UserInputError(f"{who}: windows of size {s} do not fit in {H}x{W} labels")
    g = _generator(seed, generator, who)
    n = int(round(area * H * W / (s * s)))
    out = lab.clone()
    top = torch.randint(0, H - s + 1, (B, n), generator=g)
    left = torch.randint(0, W - s + 1, (B, n), generator=g)
    cls = torch.randint(0, num_classes, (B, n), generator=g)
    for b in range(B):
        # paint all windows of image b at once: a window id per covered pixel (later ones win)
        canvas = torch.full((H, W), -1, dtype=torch.long)
        for i in range(n):
            canvas[top[b, i]:top[b, i] + s, left[b, i]:left[b, i] + s] = cls[b, i]
        hit = canvas >= 0
        out[b][hit.to(out.device)] = canvas[hit].to(out.device, out.dtype)
    return out if labels.dim() == 3 else out[0]


def add_label_noise(labels: torch.Tensor, num_classes: int, kind: str, *, size: int = 3,
                    keep: float = 0.8, area: float = 0.1, generator=None,
                    seed: int | None = None) -> torch.Tensor:
    """Dispatch on ``kind`` in :data:`NOISE_KINDS`: ``"none"`` returns a copy of ``labels``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import add_label_noise
    >>> from pdeflow.iel.noise import NOISE_KINDS
    >>> NOISE_KINDS
    ('none', 'blocks', 'windows')
    >>> labels = torch.ones(8, 8, dtype=torch.int64)
    >>> torch.equal(add_label_noise(labels, 2, "none"), labels)
    True
    >>> add_label_noise(labels, 2, "blocks", keep=0.5, generator=0).shape
    torch.Size([8, 8])
    """
    if kind == "none":
        _prepare(labels, num_classes, "add_label_noise")
        return labels.clone()
    if kind == "blocks":
        return block_noise(labels, num_classes, size, keep, generator=generator, seed=seed)
    if kind == "windows":
        return window_noise(labels, num_classes, size, area, generator=generator, seed=seed)
    raise UserInputError(f"add_label_noise: kind must be one of {NOISE_KINDS}, got {kind!r}")
