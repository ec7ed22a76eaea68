"""The built-in image pool: photographs and medical images shipped inside installed Python packages."""
from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserInputError
from ..io.images import minmax as _minmax
from ..io.images import read_image
from ..io.images import to_chw as _to_chw

__all__ = ["builtin_names", "builtin_image", "builtin_pool", "builtin_info"]


# ---------------------------------------------------------------------------
# Built-in image pool
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Builtin:
    name: str
    package: str  # importable module that ships the file
    relpath: str  # path inside the package directory
    kind: str  # "photo", "microscopy" or "medical"
    split: str  # "train" or "test"
    loader: str = "image"  # "image", "npz" or "raw_mr"
    note: str = ""


# The split is fixed by hand, by source image (about a quarter of each kind
# in "test"). Duplicates in the installed data are left out: skimage
# "cat" is "chelsea", pywt "camera" is skimage "camera", skimage's
# motorcycle_right is the other view of motorcycle_left, and pydicom's other
# MR_small* files are encodings of MR_small. Synthetic or graphic images
# (checkerboard, colorwheel, logo, horse, phantom) are not photographs and are
# not in the pool; nor are skimage images that need a download (brain, cells3d,
# eagle, human_mitosis, kidney, lily, skin, ...).
_REGISTRY: tuple[_Builtin, ...] = (
    _Builtin("skimage/astronaut", "skimage", "data/astronaut.png", "photo", "train"),
    _Builtin("skimage/brick", "skimage", "data/brick.png", "photo", "train"),
    _Builtin("skimage/camera", "skimage", "data/camera.png", "photo", "test",
             note="same photo as pywt.data.camera"),
    _Builtin("skimage/chelsea", "skimage", "data/chelsea.png", "photo", "train",
             note="same photo as skimage.data.cat"),
    _Builtin("skimage/clock", "skimage", "data/clock_motion.png", "photo", "train"),
    _Builtin("skimage/coffee", "skimage", "data/coffee.png", "photo", "test"),
    _Builtin("skimage/coins", "skimage", "data/coins.png", "photo", "test"),
    _Builtin("skimage/grass", "skimage", "data/grass.png", "photo", "train"),
    _Builtin("skimage/gravel", "skimage", "data/gravel.png", "photo", "test"),
    _Builtin("skimage/hubble_deep_field", "skimage", "data/hubble_deep_field.jpg", "photo", "train"),
    _Builtin("skimage/moon", "skimage", "data/moon.png", "photo", "train"),
    _Builtin("skimage/motorcycle", "skimage", "data/motorcycle_left.png", "photo", "train",
             note="left view of skimage.data.stereo_motorcycle"),
    _Builtin("skimage/page", "skimage", "data/page.png", "photo", "train"),
    _Builtin("skimage/rocket", "skimage", "data/rocket.jpg", "photo", "train"),
    _Builtin("skimage/text", "skimage", "data/text.png", "photo", "train"),
    _Builtin("pywt/aero", "pywt", "data/aero.npz", "photo", "test", loader="npz"),
    _Builtin("pywt/ascent", "pywt", "data/ascent.npz", "photo", "train", loader="npz"),
    _Builtin("matplotlib/grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "photo", "test"),
    _Builtin("sklearn/china", "sklearn", "datasets/images/china.jpg", "photo", "train"),
    _Builtin("sklearn/flower", "sklearn", "datasets/images/flower.jpg", "photo", "test"),
    _Builtin("skimage/cell", "skimage", "data/cell.png", "microscopy", "train"),
    _Builtin("skimage/immunohistochemistry", "skimage", "data/ihc.png", "microscopy", "test"),
    _Builtin("skimage/retina", "skimage", "data/retina.jpg", "medical", "train"),
    _Builtin("skimage/microaneurysms", "skimage", "data/microaneurysms.png", "medical", "train"),
    _Builtin("matplotlib/s1045", "matplotlib", "mpl-data/sample_data/s1045.ima.gz", "medical", "train",
             loader="raw_mr", note="256x256 head MR, min-max scaled"),
    _Builtin("pydicom/MR_small", "pydicom", "data/test_files/MR_small.dcm", "medical", "train",
             note="64x64 MR, min-max scaled"),
    _Builtin("pydicom/CT_small", "pydicom", "data/test_files/CT_small.dcm", "medical", "test",
             note="128x128 CT, min-max scaled"),
)
_BY_NAME = {b.name: b for b in _REGISTRY}
_SPLITS = ("train", "test", "all")
_KINDS = ("photo", "microscopy", "medical")


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _builtin_file(entry: _Builtin) -> Path | None:
    base = _package_dir(entry.package)
    if base is None:
        return None
    p = base / entry.relpath
    return p if p.is_file() else None


def _check_split_kind(who: str, split: str, kind) -> None:
    if split not in _SPLITS:
        raise UserInputError(f"{who}: split must be one of {_SPLITS}, got {split!r}")
    if kind is not None and kind not in _KINDS:
        raise UserInputError(f"{who}: kind must be None or one of {_KINDS}, got {kind!r}")


def builtin_names(split: str = "all", *, kind: str | None = None) -> list[str]:
    """Names of the built-in images available offline in this environment.

    Images are files shipped inside installed packages: scikit-image
    (``skimage/...``), PyWavelets (``pywt/...``), matplotlib
    (``matplotlib/...``), pydicom (``pydicom/...``) and, only if it is
    installed, scikit-learn (``sklearn/china``, ``sklearn/flower``).

    Parameters
    ----------
    split : {'all', 'train', 'test'}, optional
        Restrict to one part of the fixed split (see :func:`builtin_pool`).
    kind : {None, 'photo', 'microscopy', 'medical'}, optional
        Restrict to one kind of image.

    Returns
    -------
    list of str
        Sorted names, e.g. ``'skimage/camera'``, ``'pywt/ascent'``.

    Examples
    --------
    >>> from pdeflow.datasets import builtin_names
    >>> "skimage/camera" in builtin_names()
    True
    >>> "skimage/camera" in builtin_names("test", kind="photo")
    True
    """
    _check_split_kind("builtin_names", split, kind)
    return sorted(
        b.name for b in _REGISTRY
        if (split == "all" or b.split == split) and (kind is None or b.kind == kind)
        and _builtin_file(b) is not None
    )


def builtin_info(name: str) -> dict:
    """Metadata of a built-in image: source file, kind, split and a note.

    Examples
    --------
    >>> from pdeflow.datasets import builtin_info
    >>> info = builtin_info("skimage/camera")
    >>> info["kind"], info["split"]
    ('photo', 'test')
    """
    entry = _lookup(name)
    return {"name": entry.name, "file": str(_builtin_file(entry)), "kind": entry.kind,
            "split": entry.split, "note": entry.note}


def _lookup(name: str) -> _Builtin:
    entry = _BY_NAME.get(name)
    if entry is None or _builtin_file(entry) is None:
        raise UserInputError(f"builtin_image: unknown or unavailable image {name!r}; "
                         f"available: {', '.join(builtin_names())}")
    return entry


def builtin_image(name: str, grey: bool | None = True) -> torch.Tensor:
    """Load a built-in image by name (see :func:`builtin_names`).

    Photos are scaled by their type's maximum (8-bit: /255); medical images
    (MR, CT) have no fixed white level and are min-max scaled to [0, 1].

    Parameters
    ----------
    name : str
        E.g. ``'skimage/camera'``.
    grey : bool or None, optional
        ``True`` (default): luminance, ``C = 1``; ``False``: ``C = 3``;
        ``None``: as stored.

    Returns
    -------
    Tensor, shape (C, H, W), float32
        Intensities in [0, 1].

    Examples
    --------
    >>> from pdeflow.datasets import builtin_image
    >>> img = builtin_image("skimage/camera")
    >>> img.shape, img.dtype, 0.0 <= img.min().item() <= img.max().item() <= 1.0
    (torch.Size([1, 512, 512]), torch.float32, True)
    """
    entry = _lookup(name)
    path = _builtin_file(entry)
    if entry.loader == "image":
        return read_image(path, grey=grey)
    if entry.loader == "npz":
        with np.load(path) as z:
            arr = z["data"]
        return _to_chw(arr.astype(np.float64) / 255.0, grey, "builtin_image")
    if entry.loader == "raw_mr":  # 256x256 big-endian uint16 samples
        with gzip.open(path, "rb") as fh:
            arr = np.frombuffer(fh.read(), ">u2").reshape(256, 256)
        return _to_chw(_minmax(arr), grey, "builtin_image")
    raise AssertionError(entry.loader)


def builtin_pool(split: str = "train", *, grey: bool | None = True, kind: str | None = None) -> dict[str, torch.Tensor]:
    """The built-in images of one split, loaded.

    The split is fixed and made by source image: "train" and "test" never
    contain the same photograph (duplicates shipped by different packages
    are in the pool once), so crops of a test image are never seen in
    training. About a quarter of the images of each kind are in "test"; see
    :func:`builtin_info` for each image's split.

    Parameters
    ----------
    split : {'train', 'test', 'all'}, optional
    grey : bool or None, optional
        As in :func:`builtin_image`; the default gives every image ``C = 1``.
    kind : {None, 'photo', 'microscopy', 'medical'}, optional
        Restrict to one kind of image.

    Returns
    -------
    dict of str to Tensor
        Name to ``(C, H, W)`` float32 image in [0, 1], in the order of
        :func:`builtin_names`. Image sizes differ.

    Examples
    --------
    >>> from pdeflow.datasets import builtin_pool
    >>> pool = builtin_pool("test", kind="medical")
    >>> all(img.ndim == 3 and img.shape[0] == 1 for img in pool.values())
    True
    """
    _check_split_kind("builtin_pool", split, kind)
    return {name: builtin_image(name, grey=grey) for name in builtin_names(split, kind=kind)}
