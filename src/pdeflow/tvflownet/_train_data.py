"""The batches of a TVflowNET training run (:mod:`pdeflow.tvflownet.train`): its images, the crops and
synthetic scenes of a step, their augmentations, and the blocks of steps that share one reference flow."""
from __future__ import annotations

import dataclasses
import warnings

import torch

from .. import datasets
from ..training import step_generator
from ._train_config import TrainConfig, data_sources
from ._train_loss import reference_at_times


def open_data(cfg: TrainConfig) -> tuple[datasets.ImageSet, datasets.ImageSet]:
    """The training and validation images of ``cfg``, grey or colour (``cfg.channels``): the photos of its
    sources, a hashed ``val_fraction`` of them held out for validation, or ``val_data``'s (see
    :func:`pdeflow.datasets.source_images`), at most ``cfg.max_side`` pixels a side where it is set. Never a
    built-in TEST photo or a medical image.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.io import write_image
    >>> from pdeflow.tvflownet.train import TrainConfig, open_data
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for k in range(4):
    ...         _ = write_image(Path(d) / f"p{k}.png", torch.full((1, 24, 24), k / 4))
    ...     train_set, val_set = open_data(TrainConfig(data=d, val_fraction=0.25))
    ...     print(len(train_set), len(val_set))
    3 1
    """
    return datasets.source_images(data_sources(cfg), grey=cfg.channels == 1, val_data=cfg.val_data,
                                  val_fraction=None if cfg.val_data is not None else cfg.val_fraction,
                                  max_side=cfg.max_side)


def check_data(cfg: TrainConfig, train_images: datasets.ImageSet, val_images: datasets.ImageSet) -> list[str]:
    """Open every training and validation image once, before a run writes anything: an unreadable
    file raises UserInputError naming it; returns warnings naming the images smaller than their crop
    (the training crop, ``mixed_min`` for mixed crops, or ``val_size``), which are reflect-padded up to
    it, so that a crop of them repeats a few pixels (a 1x1 image gives a flat crop).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet.train import TrainConfig, check_data
    >>> small = ImageSet(images=[torch.zeros(1, 8, 8), torch.zeros(1, 40, 40)], description={})
    >>> check_data(TrainConfig(crop="32", val_size=32), small, small)[0][:60]
    'train: 1 of 2 training image(s) smaller than the 32 px crop '
    """
    crop = cfg.mixed_min if cfg.crop == "mixed" else int(cfg.crop)
    notes = []
    for role, images, size in (("training", train_images, crop), ("validation", val_images, cfg.val_size)):
        sizes = images.sizes()
        small = sorted(f"{name} ({h}x{w})" for name, h, w in sizes if min(h, w) < size)
        if small:
            shown = ", ".join(small[:10]) + (f" and {len(small) - 10} more" if len(small) > 10 else "")
            notes.append(f"train: {len(small)} of {len(sizes)} {role} image(s) smaller than the {size} px crop "
                         f"are reflect-padded up to it: {shown}")
    return notes


def crop_size(cfg: TrainConfig, g: torch.Generator) -> int:
    if cfg.crop == "mixed":
        return int(torch.randint(cfg.mixed_min, cfg.mixed_max, (1,), generator=g))
    return int(cfg.crop)


#: Training seeds of the synthetic images start here; the evaluation's (``seed * 7919 + size``) stay below.
SYNTHETIC_SEED_BASE = 2 ** 30


def synthetic_images(n: int, size: int, g: torch.Generator, kinds=("disks", "ellipses")) -> torch.Tensor:
    """``n`` generated images ``(n, 1, size, size)`` in [0, 1] of the ``kinds`` of
    :data:`pdeflow.datasets.SCENES`, in equal shares (:func:`pdeflow.datasets.scenes`), with
    ``clip(size // 16, 1, 5)`` shapes each, as the evaluation's Table 5 images but from other seeds
    (one seed per call, drawn from ``g``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import synthetic_images
    >>> u0 = synthetic_images(4, 16, torch.Generator().manual_seed(0))
    >>> u0.shape, 0.0 <= u0.min().item() <= u0.max().item() <= 1.0
    (torch.Size([4, 1, 16, 16]), True)
    """
    seed = SYNTHETIC_SEED_BASE + int(torch.randint(2 ** 30, (1,), generator=g))
    return datasets.scenes(kinds, size, seed=seed, batch=n)


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element ``k`` (0-7) of the symmetries of the square: ``k % 4`` quarter turns, then a flip for ``k >= 4``."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def augment(u0: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """The config's augmentations of images ``u0`` ``(n, 1, S, S)`` in [0, 1], each image its own draw, in
    this order: contrast ``u0 ** exp(U[-aug_gamma, aug_gamma])`` (stays in [0, 1]), a random flip and
    quarter turn (``aug_dihedral``), and the intensity factor ``U[1 - aug_scale, 1 + aug_scale]`` (mean 1:
    the batch's mean scale stays ``cfg.scale``). Draws from ``g`` only for the augmentations that are on,
    so a config without them sees the batches of before.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import TrainConfig, augment
    >>> cfg = TrainConfig(aug_gamma=0.5, aug_dihedral=True)
    >>> u0 = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> out = augment(u0, cfg, torch.Generator().manual_seed(0))
    >>> out.shape, 0.0 <= out.min().item() <= out.max().item() <= 1.0
    (torch.Size([3, 1, 8, 8]), True)
    """
    n = u0.shape[0]
    if cfg.aug_gamma > 0:
        gamma = torch.exp((2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * cfg.aug_gamma)
        u0 = u0.clamp(min=0) ** gamma.to(u0.dtype).view(n, 1, 1, 1)
    if cfg.aug_dihedral:
        ks = torch.randint(8, (n,), generator=g).tolist()
        u0 = torch.stack([_dihedral(x, k) for x, k in zip(u0, ks)])
    if cfg.aug_scale > 0:
        factor = 1 + (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * cfg.aug_scale
        u0 = u0 * factor.to(u0.dtype).view(n, 1, 1, 1)
    return u0


FLOWED_DT = 0.05     # the flowed inputs need only look like a stage's input, not be the exact flow


def flowed_inputs(u0: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """A fraction ``cfg.flowed`` of the crops ``u0`` ``(n, 1, S, S)`` (already times ``scale``), drawn at
    random, replaced by their own TV flow at a time ``s ~ U[0, cfg.flowed_max]`` stretched to exactly
    ``[0, scale]``. These are the inputs the :class:`~pdeflow.tvflownet.Equivariant` wrapper gives the
    network after its first stage (it re-normalises the flowed image and composes): flatter, with
    sharper edges than a photo crop. A crop that the flow has made (nearly) constant is kept.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import TrainConfig, flowed_inputs
    >>> u0 = 5 * torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    >>> out = flowed_inputs(u0, TrainConfig(flowed=0.5), torch.Generator().manual_seed(0))
    >>> changed = (out != u0).flatten(1).any(1)
    >>> int(changed.sum()), [round(float(x.min()), 6) for x in out[changed]], [float(x.max()) for x in out[changed]]
    (2, [0.0, 0.0], [5.0, 5.0])
    """
    n = u0.shape[0]
    k = round(cfg.flowed * n)
    if k == 0:
        return u0
    idx = torch.randperm(n, generator=g)[:k]
    s = torch.rand(k, 1, generator=g, dtype=torch.float64) * cfg.flowed_max
    with warnings.catch_warnings():   # short of ref_tol is fine for an input: 0.3 % of the range off at dt 0.05
        warnings.simplefilter("ignore")
        (u,) = reference_at_times(u0[idx], s.to(u0.dtype), dataclasses.replace(cfg, ref_dt=FLOWED_DT))
    u = u[:, 0]
    lo, hi = u.amin((1, 2, 3), keepdim=True), u.amax((1, 2, 3), keepdim=True)
    keep = (hi - lo) <= 1e-3 * cfg.scale
    stretched = cfg.scale * (u - lo) / torch.where(keep, torch.ones_like(hi), hi - lo)
    out = u0.clone()
    out[idx] = torch.where(keep, u0[idx], stretched)
    return out


def sample_batch(cfg: TrainConfig, images: datasets.ImageSet, g: torch.Generator, *,
                 reuse: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's batch: ``u0`` ``(B, C, S, S)`` (already times ``scale``; ``C = cfg.channels``) and times
    ``t`` ``(B,)``.

    A fraction ``cfg.synthetic`` of the images is generated (:func:`synthetic_images`), the
    rest are crops of ``images``; then :func:`augment` and, with ``cfg.flowed``, :func:`flowed_inputs`.
    Everything is drawn from ``g`` (the step generator), in a fixed order. With ``reuse = R > 1``
    (``cfg.ref_reuse``, whose ``times_per_image`` is 1), the crops of a block of ``R`` steps:
    ``u0`` ``(B, 1, S, S)`` and ``R`` times per crop, ``t`` ``(B, R)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet.train import TrainConfig, sample_batch
    >>> images = ImageSet(images=[torch.rand(1, 40, 40, generator=torch.Generator().manual_seed(0))], description={})
    >>> u0, t = sample_batch(TrainConfig(crop="16", batch_size=4), images, torch.Generator().manual_seed(0))
    >>> u0.shape, t.shape, bool((0 <= t).all() and (t < 1).all())
    (torch.Size([4, 1, 16, 16]), torch.Size([4]), True)
    """
    k = cfg.times_per_image
    size = crop_size(cfg, g)
    n = cfg.batch_size // k
    n_synthetic = round(cfg.synthetic * n)
    parts = [images.crops(n - n_synthetic, size, g)] if n_synthetic < n else []
    if n_synthetic:                          # no extra draws from g without synthetic images
        parts.append(synthetic_images(n_synthetic, size, g, cfg.synthetic_kinds))
    u0 = augment(torch.cat(parts), cfg, g) * cfg.scale
    if cfg.flowed > 0:                       # no extra draws from g when off
        u0 = flowed_inputs(u0, cfg, g)
    u0 = u0.repeat_interleave(k, 0)
    t = torch.rand(cfg.batch_size * reuse, generator=g, dtype=torch.float64) ** cfg.t_power * cfg.t_max
    if k > 1:
        t[::k] = 0.0
    t = t.to(u0.dtype)
    return u0, (t.view(cfg.batch_size, reuse) if reuse > 1 else t)


def reused_reference_batch(cfg: TrainConfig, images: datasets.ImageSet, step: int, rank: int, block: dict | None,
                           *, dual: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | tuple, dict]:
    """Step ``step``'s batch under ``ref_reuse = R``: ``(u0, t, reference, block)``.

    Steps ``bR ... bR + R - 1`` form block ``b``. Its ``B`` crops, each at ``R`` times, are drawn
    from the generator of step ``bR`` (:func:`sample_batch`), their reference is solved in one call
    (:func:`reference_at_times`), and its ``B R`` crop-time pairs, in an order drawn from the same
    generator, are its steps' batches, ``B`` each. ``block`` is the block last built (``None`` at
    first): it is reused within a block and rebuilt after, so a run resumed inside a block sees the
    batches the killed run would have. ``reference`` is ``supervised_reference``'s.
    """
    reuse, first = cfg.ref_reuse, step - step % cfg.ref_reuse
    if block is None or block["first"] != first:
        g = step_generator(cfg.seed, first, rank)
        crops, t = sample_batch(cfg, images, g, reuse=reuse)
        block = {"first": first, "crops": crops, "t": t, "ref": reference_at_times(crops, t, cfg, dual=dual),
                 "order": torch.randperm(crops.shape[0] * reuse, generator=g)}
    pairs = block["order"][(step - first) * cfg.batch_size:(step - first + 1) * cfg.batch_size]
    i, r = pairs // reuse, pairs % reuse
    ref = tuple(x[i, r] for x in block["ref"])
    return block["crops"][i], block["t"][i, r], ref if dual else ref[0], block
