"""Seeded random crops, and the training/validation image sets of a trainer."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from numbers import Integral
from pathlib import Path

import torch
from PIL import Image

from ..errors import UserInputError
from ..io import image_files, read_image
from ..rng import as_generator
from .builtin import builtin_pool

_HEADER_FORMATS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

__all__ = ["random_crops", "ImageSet", "training_images", "source_images", "held_out"]


# ---------------------------------------------------------------------------
# Random crops
# ---------------------------------------------------------------------------

def _pad_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map (possibly out-of-range) indices ``i`` onto ``0..n-1`` by padding rule."""
    if mode == "reflect":  # edge not repeated, period 2(n - 1)
        if n == 1:
            return torch.zeros_like(i)
        p = 2 * (n - 1)
        i = i % p
        return torch.where(i >= n, p - i, i)
    if mode == "symmetric":  # edge repeated, period 2n
        p = 2 * n
        i = i % p
        return torch.where(i >= n, p - 1 - i, i)
    if mode == "circular":
        return i % n
    return i.clamp(0, n - 1)  # replicate (and the in-range part of constant)


_PAD_MODES = ("reflect", "symmetric", "replicate", "circular", "constant")


def random_crops(
    images,
    n: int,
    size,
    *,
    generator=None,
    pad_mode: str = "reflect",
    seed: int | None = None,
    return_picks: bool = False,
):
    """Random crops from a list of images, reproducible with a seed.

    Each crop picks an image uniformly at random, then a uniformly random
    position. An image smaller than the crop along an axis is first padded by
    ``size - extent`` on both sides of that axis (as torchvision's
    ``RandomCrop(pad_if_needed=True)``), so the crop may still move.

    Parameters
    ----------
    images : sequence or mapping of Tensor, each (C, H, W)
        Source images with a common ``C`` (a mapping's values are used, in
        order, e.g. the output of :func:`builtin_pool`). Sizes may differ.
    n : int
        Number of crops.
    size : int or (int, int)
        Crop height and width in pixels.
    seed : int, optional
        Seed for a fresh generator: the same seed gives the same crops.
    generator : torch.Generator, optional
        A CPU generator to draw from instead (mutually exclusive with
        ``seed``). With neither, torch's global generator is used.
    pad_mode : {'reflect', 'symmetric', 'replicate', 'circular', 'constant'}, optional
        Padding of small images; ``'reflect'`` mirrors without repeating the
        edge pixel, ``'constant'`` pads with zeros.
    return_picks : bool, optional
        Also return which image each crop was cut from.

    Returns
    -------
    Tensor, shape (n, C, size, size)
        Dtype and device of the first image.
    list of int
        With ``return_picks``: the index in ``images`` of each crop's image.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import random_crops
    >>> images = [torch.rand(1, 20, 30), torch.rand(1, 40, 16)]
    >>> crops = random_crops(images, 5, 16, generator=0)
    >>> crops.shape, torch.equal(crops, random_crops(images, 5, 16, generator=0))
    (torch.Size([5, 1, 16, 16]), True)
    """
    if isinstance(images, Mapping):
        images = list(images.values())
    if isinstance(images, torch.Tensor):
        images = [images] if images.dim() == 3 else list(images)
    if not isinstance(images, Sequence) or len(images) == 0:
        raise UserInputError("random_crops: images must be a non-empty sequence of (C, H, W) tensors")
    for k, im in enumerate(images):
        if not isinstance(im, torch.Tensor) or im.dim() != 3:
            raise UserInputError(f"random_crops: images[{k}] must be a (C, H, W) tensor, "
                             f"got {getattr(im, 'shape', type(im).__name__)}")
        if im.shape[0] != images[0].shape[0]:
            raise UserInputError(f"random_crops: all images must have the same number of channels, "
                             f"images[0] has {images[0].shape[0]}, images[{k}] has {im.shape[0]}")
        if im.shape[1] < 1 or im.shape[2] < 1:
            raise UserInputError(f"random_crops: images[{k}] is empty")
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 0:
        raise UserInputError(f"random_crops: n must be a non-negative int, got {n!r}")
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in size)):
        raise UserInputError(f"random_crops: size must be a positive int or a pair of them, got {size!r}")
    if pad_mode not in _PAD_MODES:
        raise UserInputError(f"random_crops: pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    generator = as_generator(generator, "random_crops", seed=seed)
    sh, sw = size

    out = images[0].new_empty((n, images[0].shape[0], sh, sw))
    picks = torch.randint(len(images), (n,), generator=generator).tolist()
    for k, j in enumerate(picks):
        im = images[j]
        H, W = im.shape[-2:]
        ph, pw = max(sh - H, 0), max(sw - W, 0)
        top = int(torch.randint(H + 2 * ph - sh + 1, (1,), generator=generator))
        left = int(torch.randint(W + 2 * pw - sw + 1, (1,), generator=generator))
        if ph == 0 and pw == 0:
            out[k] = im[:, top:top + sh, left:left + sw]
            continue
        rows = torch.arange(top - ph, top - ph + sh)
        cols = torch.arange(left - pw, left - pw + sw)
        ri = _pad_index(rows, H, pad_mode).to(im.device)
        ci = _pad_index(cols, W, pad_mode).to(im.device)
        crop = im[:, ri][:, :, ci]
        if pad_mode == "constant":
            keep = (((rows >= 0) & (rows < H))[:, None] & ((cols >= 0) & (cols < W))[None, :]).to(im.device)
            crop = torch.where(keep, crop, torch.zeros((), dtype=crop.dtype, device=crop.device))
        out[k] = crop
    return (out, picks) if return_picks else out



# ---------------------------------------------------------------------------

# Training images (the data of every trainer)
# ---------------------------------------------------------------------------

class ImageSet:
    """Images ``(C, H, W)`` in [0, 1] by index, held in memory or read from files on demand.

    A file is read when first used and the last ``cache`` decoded files are
    kept, so a large folder costs no memory. ``description`` says where the
    images come from (it goes into a trained model's provenance).

    Parameters
    ----------
    images : list of Tensor, optional
        In-memory images ``(C, H, W)``.
    files : list of Path, optional
        Image files.
    items : list of Tensor or Path, optional
        Both kinds, in this order (exactly one of ``images``, ``files`` and ``items``).
    grey : bool
        Read files as grey ``C = 1`` (True) or colour ``C = 3``.
    description : dict
    cache : int
        Number of decoded files kept.
    max_side : int
        Images whose longer side exceeds it are downscaled to it on read (area averaging, the aspect ratio kept),
        as Food101's photos are at most 512 px; 0 (the default): as read.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import ImageSet
    >>> images = ImageSet(images=[torch.zeros(1, 8, 8), torch.ones(1, 12, 10)], description={"source": "example"})
    >>> len(images), images[1].shape
    (2, torch.Size([1, 12, 10]))
    >>> images.crops(3, 8, torch.Generator().manual_seed(0)).shape
    torch.Size([3, 1, 8, 8])
    """

    def __init__(self, *, images: list[torch.Tensor] | None = None, files: list[Path] | None = None,
                 items: list | None = None, grey: bool = True, description: dict, cache: int = 512,
                 max_side: int = 0):
        if sum(x is not None for x in (images, files, items)) != 1:
            raise UserInputError("ImageSet: give images or files (or items: both kinds)")
        self._items = list(images if images is not None else files if files is not None else items)
        for k, x in enumerate(self._items):
            if not isinstance(x, (torch.Tensor, Path)):
                raise UserInputError(f"ImageSet: item {k} must be a (C, H, W) tensor or a Path, "
                                     f"got {type(x).__name__}")
        if not isinstance(max_side, Integral) or isinstance(max_side, bool) or max_side < 0:
            raise UserInputError(f"ImageSet: max_side must be an int >= 0 (0: as read), got {max_side!r}")
        self.grey = grey
        self.description = description
        self.max_side = int(max_side)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_size = cache

    @property
    def images(self) -> list[torch.Tensor] | None:
        """The in-memory images, or None where there are none."""
        out = [x for x in self._items if isinstance(x, torch.Tensor)]
        return out or None

    @property
    def files(self) -> list[Path] | None:
        """The image files, or None where there are none."""
        out = [x for x in self._items if isinstance(x, Path)]
        return out or None

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self._items[i]
        if isinstance(x, torch.Tensor) and not self.max_side:
            return x
        if i not in self._cache:
            self._cache[i] = self._fit(x if isinstance(x, torch.Tensor) else read_image(x, grey=self.grey))
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(i)
        return self._cache[i]

    def _fitted(self, h: int, w: int) -> tuple[int, int]:
        """The size of an ``h x w`` image as this set hands it out."""
        if not 0 < self.max_side < max(h, w):
            return h, w
        f = self.max_side / max(h, w)
        return max(1, round(h * f)), max(1, round(w * f))

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        size = self._fitted(*x.shape[-2:])
        if size == tuple(x.shape[-2:]):
            return x
        return torch.nn.functional.interpolate(x[None], size=size, mode="area")[0].clamp(0.0, 1.0)

    def sizes(self) -> list[tuple[str, int, int]]:
        """``(name, H, W)`` of every image, each file opened once: a file that cannot be read raises
        UserInputError naming it, so that a trainer can check its data before it writes anything.

        PNG, JPEG, BMP, GIF and WebP files are checked from their headers and chunks (PIL's
        ``verify``), without decoding; other formats are read in full. Sizes after ``max_side``.

        Examples
        --------
        >>> import torch
        >>> from pdeflow.datasets import ImageSet
        >>> ImageSet(images=[torch.zeros(1, 8, 6)], description={}).sizes()
        [('image 0', 8, 6)]
        """
        out = []
        for k, x in enumerate(self._items):
            if isinstance(x, torch.Tensor):
                out.append((f"image {k}", *self._fitted(int(x.shape[-2]), int(x.shape[-1]))))
            elif x.suffix.lower() in _HEADER_FORMATS:
                try:
                    with Image.open(x) as im:
                        w, h = im.size
                        im.verify()
                except Exception as exc:          # PIL raises many kinds for a broken file
                    raise UserInputError(f"data: {x} cannot be read as an image ({exc})") from None
                out.append((x.name, *self._fitted(h, w)))
            else:
                img = read_image(x, grey=self.grey)
                out.append((x.name, *self._fitted(int(img.shape[-2]), int(img.shape[-1]))))
        return out

    def crops(self, n: int, size: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` crops ``(n, C, size, size)``, each of an image picked uniformly at random.

        Everything is drawn from ``generator``, in a fixed order (picks, then
        one :func:`random_crops` draw per pick), so a seeded trainer sees the
        same crops whenever it is resumed.
        """
        picks = torch.randint(len(self), (n,), generator=generator).tolist()
        return torch.cat([random_crops([self[i]], 1, size, generator=generator) for i in picks])


def _builtin_set(split: str, grey: bool, kind: str | None) -> ImageSet:
    pool = builtin_pool(split, grey=grey, kind=kind)
    desc = {"source": "builtin", "split": split, **({"kind": kind} if kind else {}), "images": list(pool)}
    return ImageSet(images=list(pool.values()), grey=grey, description=desc)


def _folder_set(folder: Path, files: list[Path], role: str, grey: bool) -> ImageSet:
    desc = {"source": "folder", "path": str(folder.resolve()), "role": role, "n_images": len(files)}
    if len(files) <= 50:
        desc["files"] = [str(p.relative_to(folder)) for p in files]
    return ImageSet(files=files, grey=grey, description=desc)


def training_images(data="builtin", val_data=None, *, val_fraction: float = 0.1, grey: bool = True,
                    kind: str | None = None) -> tuple[ImageSet, ImageSet]:
    """The training and validation images of a trainer; never one source image in both.

    Parameters
    ----------
    data : 'builtin' or path
        'builtin': the train split of the built-in pool (:func:`builtin_pool`);
        a folder: its images (:data:`IMAGE_SUFFIXES`, recursively).
    val_data : None, 'builtin' or path
        None: the built-in test split for built-in data, else a held-out
        ``val_fraction`` of the folder's files (chosen by a hash of their
        relative paths, so the split does not depend on the file order);
        'builtin': the built-in test split; a folder: its images, which must
        not be training files.
    val_fraction : float
        Fraction of a folder held out when ``val_data`` is None (at least one
        file, never all).
    grey : bool
        Grey ``C = 1`` (True) or colour ``C = 3`` images.
    kind : {None, 'photo', 'microscopy', 'medical'}
        Restrict the built-in pool to one kind of image.

    Returns
    -------
    (ImageSet, ImageSet)
        Training and validation images.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.datasets import training_images
    >>> from pdeflow.io import write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for k in range(4):
    ...         _ = write_image(Path(d) / f"img{k}.png", torch.full((1, 8, 8), k / 4))
    ...     train, val = training_images(d, val_fraction=0.25)
    ...     print(len(train), len(val), train[0].shape)
    3 1 torch.Size([1, 8, 8])
    """
    if data == "builtin":
        train_set, folder, held = _builtin_set("train", grey, kind), None, []
    else:
        folder = Path(data)
        files = image_files(folder, "data")
        held = []
        if val_data is None:
            if len(files) < 2:
                raise UserInputError(f"data: {folder} holds {len(files)} image; need at least 2 to hold one out "
                                 "for validation, or give val_data (--val-data)")
            names = held_out([str(p.relative_to(folder)) for p in files], val_fraction)
            held = sorted(p for p in files if str(p.relative_to(folder)) in names)
            files = [p for p in files if p not in set(held)]
        train_set = _folder_set(folder, files, "train", grey)
    if val_data is None:
        val_set = (_builtin_set("test", grey, kind) if folder is None
                   else _folder_set(folder, held, "validation", grey))
    elif val_data == "builtin":
        val_set = _builtin_set("test", grey, kind)
    else:
        vfolder = Path(val_data)
        vfiles = image_files(vfolder, "val_data")
        if train_set.files is not None:
            overlap = {p.resolve() for p in vfiles} & {p.resolve() for p in train_set.files}
            if overlap:
                raise UserInputError(f"val_data: {len(overlap)} file(s) of {vfolder} are also training images, "
                                 f"e.g. {sorted(overlap)[0]}")
        val_set = _folder_set(vfolder, vfiles, "validation", grey)
    return train_set, val_set


def held_out(names: Sequence[str], fraction: float) -> set[str]:
    """The names held out for validation: a ``fraction`` of them (at least one, never all), chosen by a
    hash of each name, so the split depends neither on the order of the names nor on what else is there.

    Examples
    --------
    >>> from pdeflow.datasets import held_out
    >>> names = [f"img{k}.png" for k in range(8)]
    >>> val = held_out(names, 0.25)
    >>> len(val), val == held_out(names[::-1], 0.25)
    (2, True)
    """
    n_val = min(len(names) - 1, max(1, round(fraction * len(names))))
    return set(sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())[:n_val])


#: Above this many images, a description names a hash of the image names instead of listing them.
_LISTED = 200


def _names_description(names: list[str]) -> dict:
    """``{"images": names}``, or for a long list its length, first names and a SHA-1 of all of them
    (what changes when the set changes, without a provenance of megabytes)."""
    if len(names) <= _LISTED:
        return {"images": names}
    digest = hashlib.sha1("\n".join(names).encode()).hexdigest()
    return {"n_images": len(names), "first_images": names[:10], "images_sha1": digest}


def source_images(sources: Sequence[str], *, grey: bool = True, val_fraction: float | None = None,
                  val_data: str | None = None, max_side: int = 0) -> tuple[ImageSet, ImageSet | None]:
    """The photos of several sources: ``'builtin'`` (every built-in photo of the TRAIN split, of every
    installed package, named ``builtin:NAME``; never a TEST photo, a medical or a microscopy image) and
    folders (their images, recursively, named ``FOLDER/RELATIVE_PATH``, read when first used).

    Parameters
    ----------
    sources : sequence of str
        ``'builtin'`` and/or folder paths; a source that is neither is a ValueError naming it.
    grey : bool
        Grey ``C = 1`` (True) or colour ``C = 3`` images.
    val_fraction : float, optional
        Hold out this fraction of all photos for validation (:func:`held_out` by name, so the split
        depends neither on the order of the sources nor on the order of the files; never trained on).
    val_data : path, optional
        A folder of validation images instead (exclusive with ``val_fraction``); none of its files may
        be a training file.
    max_side : int
        The training and validation images downscaled to at most this many pixels a side (:class:`ImageSet`);
        0: as read.

    Returns
    -------
    (ImageSet, ImageSet or None)
        The training photos and the validation photos (None without ``val_fraction`` and ``val_data``).
        Each description holds the sources, the role and the image names (:func:`_names_description`).
        Two sources that give one name (the same folder twice) are refused.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.datasets import source_images
    >>> from pdeflow.io import write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for k in range(4):
    ...         _ = write_image(Path(d) / f"img{k}.png", torch.full((1, 8, 8), k / 4))
    ...     train, val = source_images([d], val_fraction=0.25)
    ...     print(len(train), len(val))
    3 1
    """
    if isinstance(sources, (str, Path)) or not isinstance(sources, Sequence) or len(sources) == 0:
        raise UserInputError(f"data: expected a non-empty list of 'builtin' and folders, got {sources!r}")
    if val_fraction is not None and val_data is not None:
        raise UserInputError("source_images: give val_fraction or val_data, not both")
    named: list[tuple[str, object]] = []
    for src in sources:
        if src == "builtin":
            named += [(f"builtin:{k}", v) for k, v in builtin_pool("train", grey=grey, kind="photo").items()]
        else:
            folder = Path(src)
            named += [(f"{folder.name}/{p.relative_to(folder).as_posix()}", p) for p in image_files(folder, "data")]
    names = [n for n, _ in named]
    if val_fraction is not None and len(named) < 2:
        raise UserInputError(f"data: {list(sources)} holds {len(named)} photo(s); need at least 2 "
                             "(one is held out for validation), or give val_data")
    if len(set(names)) != len(names):
        raise UserInputError(f"data: two sources share photo names (e.g. the same folder twice): {list(sources)}")
    val_names = held_out(names, val_fraction) if val_fraction is not None else set()

    def image_set(role: str, items: list[tuple[str, object]], srcs) -> ImageSet:
        return ImageSet(items=[x for _, x in items], grey=grey, max_side=max_side,
                        description={"sources": [str(s) for s in srcs], "role": role,
                                     **({"max_side": max_side} if max_side else {}),
                                     **_names_description([n for n, _ in items])})

    train = image_set("train", [(n, x) for n, x in named if n not in val_names], sources)
    if val_data is not None:
        vfolder = Path(val_data)
        vfiles = image_files(vfolder, "val_data")
        overlap = {p.resolve() for p in vfiles} & {p.resolve() for p in train.files or []}
        if overlap:
            raise UserInputError(f"val_data: {len(overlap)} file(s) of {vfolder} are also training images, "
                                 f"e.g. {sorted(overlap)[0]}")
        return train, image_set("validation", [(f"{vfolder.name}/{p.relative_to(vfolder).as_posix()}", p)
                                               for p in vfiles], [val_data])
    if val_fraction is None:
        return train, None
    return train, image_set("validation", [(n, x) for n, x in named if n in val_names], sources)
