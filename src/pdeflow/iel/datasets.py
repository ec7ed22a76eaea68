"""Real labelled segmentation data available offline, and a synthetic set for tests.

Every loader returns a :class:`SegmentationData`: training images and label
maps (full images or regions, cropped at random during training) and
validation images and label maps taken from **disjoint** regions or slices.
Images are float ``(1, H, W)`` tensors in [0, 1]; labels are int64 ``(H, W)``
maps, 0 = background (classes 1..K-1 per set, below).

* ``"dsb2018"`` -- the 2018 Data Science Bowl nuclei image shipped in the
  ``stardist`` wheel (``stardist/data/images/img2d.tif`` and ``mask2d.tif``,
  512 x 512, 125 instance labels; foreground = label > 0). Intensities are
  min-max scaled over the whole image. Training: columns 0..367; validation:
  columns 384..511 (a 16-column gap), cut into four 128 x 128 tiles. Install
  with ``pip install --no-deps stardist`` (``make install`` does); stardist is
  never imported, its files are located with ``importlib.util.find_spec``.
* ``"mricron"`` -- the Colin27 T1 MR head volume of Debian ``mricron-data``
  (``ch2.nii.gz``, 181 x 217 x 181 voxels of 1 mm, uint8) with the brain mask
  ``ch2bet.nii.gz > 0``: axial slices with at least 1% brain, split along the
  axis into blocks of 10 slices, every 4th block for validation, the slice
  next to a validation block on each side left out (so train and validation
  slices are at least 2 mm apart), every 2nd slice of the validation blocks
  used. Validation slices are zero-padded to 224 x 192.
  Intensities are the uint8 values / 255. One subject: the split is by slice,
  not by person. ``make data`` fetches it (``apt-get download mricron-data``
  and ``dpkg -x`` into ``.data/``; nothing is installed system-wide).
* ``"aal"`` -- multi-class (8): the same Colin27 T1 slices (``ch2.nii.gz``)
  labelled with the AAL atlas of ``mricron-data`` (``aal.nii.gz``, 116
  regions on the ch2 grid, names and codes in ``aal.nii.txt``) grouped into
  lobes by the first digit of the AAL code: 0 background (outside AAL),
  1 frontal (2xxx: precentral, frontal, rolandic, SMA, olfactory, rectus),
  2 parietal (6xxx: postcentral, parietal, supramarginal, angular, precuneus,
  paracentral), 3 temporal (8xxx: Heschl, temporal), 4 occipital (5xxx,
  fusiform included), 5 limbic and insula (3xxx, 4xxx: insula, cingulum,
  hippocampus, parahippocampal, amygdala), 6 subcortical grey (7xxx: caudate,
  putamen, pallidum, thalamus), 7 cerebellum (9xxx, vermis included). Axial
  slices with at least 1% AAL labels; the split is that of ``"mricron"``.
  AAL terms: free for research use with a citation of N. Tzourio-Mazoyer et
  al., "Automated anatomical labeling of activations in SPM using a
  macroscopic anatomical parcellation of the MNI MRI single-subject brain",
  NeuroImage 15, 2002.
* ``"icbm152"`` -- 3 classes: axial slices of the ICBM152 2009a symmetric
  template (1 mm, 197 x 233 x 189) shipped in the ``nilearn`` wheel
  (``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``;
  the wheel has no CSF map). Image: the T1 template / 255. Label: argmax of
  (other, GM, WM) with ``other = 1 - GM - WM`` from the uint8 probability
  maps, i.e. 0 background / CSF / non-brain, 1 grey matter, 2 white matter; a
  tissue wins where its probability exceeds both the other tissue and the
  rest. Axial slices with at least 1% GM or WM; the split is that of
  ``"mricron"``. Validation slices zero-padded to 240 x 208. Install with
  ``pip install --no-deps nilearn`` (``make install`` does); nilearn is never
  imported, the files are read with nibabel. Terms: the wheel's description
  (``datasets/description/icbm152_2009.rst``) says "License: unknown"; the
  template's distributor (McConnell Brain Imaging Centre, MNI) releases it
  under a copyright notice that permits use, copying and distribution with
  the notice kept (V. Fonov et al., "Unbiased average age-appropriate atlases
  for pediatric studies", NeuroImage 54, 2011).

Splits of the volume sets: one subject each, so the split is by slice, not by
person: blocks of 10 axial slices, every 4th block for validation, the slice
next to a validation block on each side left out of training (train and
validation slices at least 2 mm apart). There is no separate test split.
* ``"synthetic"`` -- random smooth blobs with Gaussian noise (for tests and
  quick checks; not a benchmark).
"""
from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserInputError

__all__ = ["SegmentationData", "DATASETS", "load_dataset", "dsb2018", "mricron_brain", "synthetic_blobs",
           "mricron_dir", "read_nifti", "STARDIST_INSTALL", "MRICRON_INSTALL",
           "aal_lobes", "icbm152_tissue", "NILEARN_INSTALL", "AAL_LOBES"]

STARDIST_INSTALL = "pip install --no-deps stardist"
MRICRON_INSTALL = ("make data (runs `apt-get download mricron-data` and `dpkg -x` into .data/mricron-data), "
                   "or apt-get install mricron-data, or pass the folder holding ch2.nii.gz and ch2bet.nii.gz")
NILEARN_INSTALL = "make install (runs `pip install --no-deps nilearn`)"
#: Class names of the "aal" set, by label; the AAL code's first digit -> class is in _AAL_GROUP.
AAL_LOBES = ("background", "frontal", "parietal", "temporal", "occipital", "limbic+insula", "subcortical",
             "cerebellum")
_AAL_GROUP = {2: 1, 6: 2, 8: 3, 5: 4, 3: 5, 4: 5, 7: 6, 9: 7}


@dataclasses.dataclass
class SegmentationData:
    """Images and labels for one experiment.

    Attributes
    ----------
    name : str
    train_images : list of Tensor (1, H, W), float in [0, 1]
    train_labels : list of Tensor (H, W), int64 in 0..num_classes-1
    val_images : Tensor (N, 1, Hv, Wv)
    val_labels : Tensor (N, Hv, Wv), int64
    num_classes : int
    description : str
        One line saying where the data come from and how it was split.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel.datasets import SegmentationData
    >>> data = SegmentationData("tiny", [torch.zeros(1, 16, 16)], [torch.zeros(16, 16, dtype=torch.int64)],
    ...                         torch.zeros(1, 1, 16, 16), torch.zeros(1, 16, 16, dtype=torch.int64), 2, "zeros")
    >>> data.name, len(data.train_images), data.val_images.shape
    ('tiny', 1, torch.Size([1, 1, 16, 16]))
    """
    name: str
    train_images: list
    train_labels: list
    val_images: torch.Tensor
    val_labels: torch.Tensor
    num_classes: int
    description: str


# ---------------------------------------------------------------------------
# DSB2018 nuclei from the stardist wheel
# ---------------------------------------------------------------------------

def _stardist_files() -> tuple[Path, Path]:
    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"dataset 'dsb2018' needs the stardist wheel's data files: {STARDIST_INSTALL}")
    base = Path(list(spec.submodule_search_locations)[0]) / "data" / "images"
    img, mask = base / "img2d.tif", base / "mask2d.tif"
    if not (img.is_file() and mask.is_file()):
        raise FileNotFoundError(f"dataset 'dsb2018': {img} or {mask} is missing from the installed stardist; "
                                f"reinstall it: {STARDIST_INSTALL}")
    return img, mask


def dsb2018(val_tile: int = 128) -> SegmentationData:
    """The stardist DSB2018 nuclei image: train on columns 0..367, validate on 384..511.

    Parameters
    ----------
    val_tile : int
        Side of the square validation tiles cut from the 512 x 128 validation
        region (a divisor of 128, default 128: four tiles).

    Examples
    --------
    >>> from pdeflow.iel.datasets import STARDIST_INSTALL, dsb2018
    >>> STARDIST_INSTALL  # what provides the image
    'pip install --no-deps stardist'
    >>> data = dsb2018(val_tile=64)
    >>> data.train_images[0].shape, data.val_images.shape, data.val_labels.dtype
    (torch.Size([1, 512, 368]), torch.Size([16, 1, 64, 64]), torch.int64)
    """
    if not isinstance(val_tile, int) or val_tile < 16 or 128 % val_tile:
        raise UserInputError(f"dsb2018: val_tile must be a divisor of 128 and >= 16, got {val_tile!r}")
    import tifffile
    img_path, mask_path = _stardist_files()
    img = tifffile.imread(img_path).astype(np.float64)
    mask = tifffile.imread(mask_path)
    img = (img - img.min()) / (img.max() - img.min())
    u = torch.from_numpy(img).float()[None]
    lab = torch.from_numpy((mask > 0).astype(np.int64))
    train_img, train_lab = u[..., :, :368].contiguous(), lab[:, :368].contiguous()
    vu, vl = u[..., :, 384:], lab[:, 384:]
    t = val_tile
    tiles = [(vu[:, i:i + t, j:j + t], vl[i:i + t, j:j + t]) for i in range(0, 512, t) for j in range(0, 128, t)]
    return SegmentationData(
        name="dsb2018", train_images=[train_img], train_labels=[train_lab],
        val_images=torch.stack([a for a, _ in tiles]), val_labels=torch.stack([b for _, b in tiles]),
        num_classes=2,
        description=f"DSB2018 nuclei (stardist img2d/mask2d, 512x512): train columns 0-367, "
                    f"validation columns 384-511 as {len(tiles)} tiles of {t}x{t}")


# ---------------------------------------------------------------------------
# Brain MR slices from Debian mricron-data
# ---------------------------------------------------------------------------

_NIFTI_DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 256: np.int8,
                 512: np.uint16, 768: np.uint32}


def read_nifti(path) -> np.ndarray:
    """A 3-D NIfTI-1 volume (``.nii`` or ``.nii.gz``) as an array indexed ``[z, y, x]``.

    Minimal reader for single-file NIfTI-1 with a scalar datatype: applies
    ``scl_slope``/``scl_inter`` when the slope is non-zero and not 1, ignores
    the orientation (the voxel order is the file's).

    Examples
    --------
    >>> import struct, tempfile, numpy as np
    >>> from pathlib import Path
    >>> from pdeflow.iel.datasets import read_nifti
    >>> hdr = bytearray(352)  # a minimal NIfTI-1 header: size, dims (x, y, z), float32, data offset, magic
    >>> hdr[:4], hdr[40:56] = struct.pack("<i", 348), struct.pack("<8h", 3, 4, 3, 2, 1, 1, 1, 1)
    >>> hdr[70:72], hdr[108:112], hdr[344:347] = struct.pack("<h", 16), struct.pack("<f", 352.0), b"n+1"
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "v.nii").write_bytes(bytes(hdr) + np.arange(24, dtype="<f4").tobytes())
    ...     vol = read_nifti(Path(d) / "v.nii")
    >>> vol.shape, vol[1, 2, 3]
    ((2, 3, 4), np.float32(23.0))
    """
    path = Path(path)
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 352:
        raise UserInputError(f"read_nifti: {path} is too short to be a NIfTI-1 file")
    endian = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    if struct.unpack(endian + "i", raw[:4])[0] != 348 or raw[344:347] not in (b"n+1", b"ni1"):
        raise UserInputError(f"read_nifti: {path} is not a single-file NIfTI-1 volume")
    dim = struct.unpack(endian + "8h", raw[40:56])
    code = struct.unpack(endian + "h", raw[70:72])[0]
    offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    slope, inter = struct.unpack(endian + "2f", raw[112:120])
    if code not in _NIFTI_DTYPES:
        raise UserInputError(f"read_nifti: {path} has unsupported NIfTI datatype code {code}")
    if dim[0] != 3 or dim[4] > 1:
        raise UserInputError(f"read_nifti: {path} is not a 3-D volume (dim = {dim})")
    nx, ny, nz = dim[1:4]
    dt = np.dtype(_NIFTI_DTYPES[code]).newbyteorder(endian)
    a = np.frombuffer(raw, dtype=dt, count=nx * ny * nz, offset=offset).reshape(nz, ny, nx)
    if slope not in (0.0, 1.0) or inter != 0.0:
        a = a * (slope if slope else 1.0) + inter
    return np.array(a)


def _repo_data_dir() -> Path:
    # An editable install: src/pdeflow/iel/datasets.py -> the repository's .data/
    return Path(__file__).resolve().parents[3] / ".data"


def mricron_dir(path=None) -> Path:
    """The folder holding ``ch2.nii.gz`` and ``ch2bet.nii.gz``.

    Searched in order: ``path``; ``$PDEFLOW_MRICRON_DIR``; ``.data/mricron-data``
    of the repository (``make data``); ``/usr/share/mricron/templates``
    (``apt-get install mricron-data``). A folder holding the extracted package
    (``usr/share/mricron/templates`` inside it) is accepted too.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.iel.datasets import MRICRON_INSTALL, mricron_dir
    >>> MRICRON_INSTALL.startswith("make data")
    True
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for name in ("ch2.nii.gz", "ch2bet.nii.gz"):
    ...         (Path(d) / name).touch()
    ...     print(mricron_dir(d) == Path(d))
    True
    """
    return _find_dir(path, ("ch2.nii.gz", "ch2bet.nii.gz"), "mricron")


def _find_dir(path, files, dataset) -> Path:
    candidates = []
    if path is not None:
        candidates.append(Path(path).expanduser())
    elif os.environ.get("PDEFLOW_MRICRON_DIR"):
        candidates.append(Path(os.environ["PDEFLOW_MRICRON_DIR"]).expanduser())
    else:
        candidates += [_repo_data_dir() / "mricron-data", Path("/usr/share/mricron/templates")]
    for c in candidates:
        for d in (c, c / "usr" / "share" / "mricron" / "templates"):
            if all((d / f).is_file() for f in files):
                return d
    where = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"dataset {dataset!r}: {' and '.join(files)} not found in {where}; "
                            f"get them with {MRICRON_INSTALL}")


def _pad_to(t: torch.Tensor, H: int, W: int) -> torch.Tensor:
    h, w = t.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    return F.pad(t, (left, W - w - left, top, H - h - top))


def mricron_brain(path=None, *, block: int = 10, val_every: int = 4, val_step: int = 2,
                  min_brain: float = 0.01) -> SegmentationData:
    """Axial Colin27 T1 slices with brain masks (``ch2bet > 0``), split by slice blocks.

    Parameters
    ----------
    path : str or Path, optional
        Folder with ``ch2.nii.gz`` and ``ch2bet.nii.gz`` (see :func:`mricron_dir`).
    block : int
        Slices per block (default 10).
    val_every : int
        Every ``val_every``-th block is validation (default 4: a quarter).
    val_step : int
        Validate on every ``val_step``-th slice of the validation blocks (default 2:
        neighbouring 1 mm slices are nearly the same image, and validation after
        every epoch costs a full-slice forward pass per slice).
    min_brain : float
        Keep slices whose brain covers at least this fraction of the slice.

    Examples
    --------
    >>> import gzip, struct, tempfile, numpy as np
    >>> from pathlib import Path
    >>> from pdeflow.iel.datasets import mricron_brain
    >>> def nifti(vol):  # a minimal gzipped NIfTI-1 float32 volume
    ...     hdr = bytearray(352)
    ...     hdr[:4], hdr[40:56] = struct.pack("<i", 348), struct.pack("<8h", 3, *vol.shape[::-1], 1, 1, 1, 1)
    ...     hdr[70:72], hdr[108:112], hdr[344:347] = struct.pack("<h", 16), struct.pack("<f", 352.0), b"n+1"
    ...     return gzip.compress(bytes(hdr) + vol.astype("<f4").tobytes())
    >>> vol = np.zeros((40, 32, 32))
    >>> vol[:, 8:24, 8:24] = 1.0
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for name in ("ch2", "ch2bet"):
    ...         _ = (Path(d) / f"{name}.nii.gz").write_bytes(nifti(vol))
    ...     data = mricron_brain(d)
    >>> data.num_classes, len(data.train_images), data.val_images.shape
    (2, 29, torch.Size([5, 1, 32, 32]))
    """
    _check_split("mricron_brain", block, val_every, val_step)
    d = mricron_dir(path)
    vol = read_nifti(d / "ch2.nii.gz")
    bet = read_nifti(d / "ch2bet.nii.gz")
    if vol.shape != bet.shape:
        raise UserInputError(f"dataset 'mricron': ch2 {vol.shape} and ch2bet {bet.shape} differ in shape")
    mask = bet > 0
    scale = 255.0 if vol.dtype == np.uint8 else float(vol.max())
    return _slice_set("mricron", vol.astype(np.float32) / scale, mask.astype(np.int64), mask, 2,
                      "Colin27 T1 (mricron-data ch2, brain mask ch2bet > 0)", block=block, val_every=val_every,
                      val_step=val_step, min_brain=min_brain)


def _check_split(who, block, val_every, val_step):
    for name, v in (("block", block), ("val_every", val_every), ("val_step", val_step)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise UserInputError(f"{who}: {name} must be an int >= 1, got {v!r}")


def _slice_set(name, vol, lab, inside, num_classes, what, *, block, val_every, val_step,
               min_brain) -> SegmentationData:
    """Axial slices ``[z]`` of ``vol`` (float in [0, 1]) and ``lab`` (int), those with ``inside`` covering at
    least ``min_brain``, split into interleaved blocks (module docstring)."""
    keep = np.nonzero(inside.reshape(inside.shape[0], -1).mean(1) >= min_brain)[0]
    z0 = int(keep.min())
    is_val = {int(z): ((int(z) - z0) // block) % val_every == val_every - 1 for z in keep}
    train_z, val_z = [], []
    for z in keep:
        z = int(z)
        if is_val[z]:
            if (z - z0) % val_step == 0:
                val_z.append(z)
        elif not any(is_val.get(z + dz, False) for dz in (-1, 1)):   # a 1-slice gap to validation
            train_z.append(z)
    img = torch.from_numpy(np.ascontiguousarray(vol, dtype=np.float32))
    lab = torch.from_numpy(np.ascontiguousarray(lab, dtype=np.int64))
    H, W = img.shape[1:]
    Hp, Wp = -(-H // 16) * 16, -(-W // 16) * 16
    return SegmentationData(
        name=name, train_images=[img[z][None] for z in train_z], train_labels=[lab[z] for z in train_z],
        val_images=torch.stack([_pad_to(img[z][None], Hp, Wp) for z in val_z]),
        val_labels=torch.stack([_pad_to(lab[z], Hp, Wp) for z in val_z]),
        num_classes=num_classes,
        description=f"{what}: {len(train_z)} training and "
                    f"{len(val_z)} validation axial slices ({H}x{W}, validation zero-padded to {Hp}x{Wp}) "
                    f"from interleaved blocks of {block} slices (validation: one block in {val_every}, "
                    f"slices {val_step} apart)")


def aal_lobes(path=None, *, block: int = 10, val_every: int = 4, val_step: int = 2,
              min_brain: float = 0.01) -> SegmentationData:
    """Axial Colin27 T1 slices labelled with AAL regions grouped into 8 lobe classes (:data:`AAL_LOBES`).

    Parameters
    ----------
    path : str or Path, optional
        Folder with ``ch2.nii.gz``, ``aal.nii.gz`` and ``aal.nii.txt`` (searched
        like :func:`mricron_dir`).
    block, val_every, val_step, min_brain
        The slice split, as in :func:`mricron_brain` (``min_brain``: fraction of
        the slice inside AAL regions).

    Examples
    --------
    >>> from pdeflow.iel.datasets import AAL_LOBES
    >>> len(AAL_LOBES), AAL_LOBES[7]
    (8, 'cerebellum')
    """
    _check_split("aal_lobes", block, val_every, val_step)
    d = _find_dir(path, ("ch2.nii.gz", "aal.nii.gz", "aal.nii.txt"), "aal")
    vol = read_nifti(d / "ch2.nii.gz")
    aal = read_nifti(d / "aal.nii.gz").astype(np.int64)
    if vol.shape != aal.shape:
        raise UserInputError(f"dataset 'aal': ch2 {vol.shape} and aal {aal.shape} differ in shape")
    lut = np.zeros(max(int(aal.max()), 1) + 1, dtype=np.int64)
    for line in (d / "aal.nii.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit() and parts[2].isdigit():
            idx, group = int(parts[0]), _AAL_GROUP.get(int(parts[2][0]))
            if group is None or idx >= lut.size:
                raise UserInputError(f"dataset 'aal': unexpected line in {d / 'aal.nii.txt'}: {line!r}")
            lut[idx] = group
    lab = lut[aal]
    if (lab[aal > 0] == 0).any():
        raise UserInputError(f"dataset 'aal': {d / 'aal.nii.gz'} holds regions not named in aal.nii.txt")
    scale = 255.0 if vol.dtype == np.uint8 else float(vol.max())
    return _slice_set("aal", vol.astype(np.float32) / scale, lab, aal > 0, len(AAL_LOBES),
                      "Colin27 T1 (mricron-data ch2) with AAL regions grouped into 8 lobe classes",
                      block=block, val_every=val_every, val_step=val_step, min_brain=min_brain)


def _nilearn_files(path=None) -> tuple[Path, Path, Path]:
    if path is not None:
        base = Path(path).expanduser()
    else:
        spec = importlib.util.find_spec("nilearn")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"dataset 'icbm152' needs the nilearn wheel's template files: "
                                    f"{NILEARN_INSTALL}")
        base = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    files = tuple(base / f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm"))
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"dataset 'icbm152': {', '.join(missing)} missing; {NILEARN_INSTALL}")
    return files


def icbm152_tissue(path=None, *, block: int = 10, val_every: int = 4, val_step: int = 2,
                   min_brain: float = 0.01) -> SegmentationData:
    """Axial ICBM152 2009a T1 slices labelled background / grey matter / white matter.

    Parameters
    ----------
    path : str or Path, optional
        Folder holding the three ``mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``
        files (default: those of the installed nilearn wheel).
    block, val_every, val_step, min_brain
        The slice split, as in :func:`mricron_brain` (``min_brain``: fraction of
        the slice labelled GM or WM).

    Examples
    --------
    >>> from pdeflow.iel.datasets import NILEARN_INSTALL
    >>> NILEARN_INSTALL  # what provides the template
    'make install (runs `pip install --no-deps nilearn`)'
    """
    _check_split("icbm152_tissue", block, val_every, val_step)
    import nibabel
    t1, gm, wm = (np.asarray(nibabel.load(f).dataobj, dtype=np.float32).transpose(2, 1, 0)
                  for f in _nilearn_files(path))     # [x, y, z] -> [z, y, x] as read_nifti
    if not t1.shape == gm.shape == wm.shape:
        raise UserInputError(f"dataset 'icbm152': t1 {t1.shape}, gm {gm.shape}, wm {wm.shape} differ in shape")
    other = np.clip(255.0 - gm - wm, 0.0, None)
    lab = np.stack([other, gm, wm]).argmax(0)
    return _slice_set("icbm152", t1 / 255.0, lab, lab > 0, 3,
                      "ICBM152 2009a sym (nilearn wheel): T1 / 255, labels argmax(other, GM, WM)",
                      block=block, val_every=val_every, val_step=val_step, min_brain=min_brain)


# ---------------------------------------------------------------------------
# Synthetic
# ---------------------------------------------------------------------------

def synthetic_blobs(n_train: int = 4, n_val: int = 4, size: int = 64, *, noise: float = 0.15,
                    seed: int = 0) -> SegmentationData:
    """Random ellipses on a dark background plus Gaussian noise; for tests, not a benchmark.

    ``n_train`` and ``n_val`` images of ``size x size`` (a multiple of 16),
    drawn from one generator seeded with ``seed`` (training and validation
    images are different draws).

    Examples
    --------
    >>> from pdeflow.iel.datasets import synthetic_blobs
    >>> data = synthetic_blobs(n_train=2, n_val=3, size=32, seed=0)
    >>> len(data.train_images), data.val_images.shape, sorted(data.val_labels.unique().tolist())
    (2, torch.Size([3, 1, 32, 32]), [0, 1])
    """
    if size < 16 or size % 16:
        raise UserInputError(f"synthetic_blobs: size must be a positive multiple of 16, got {size!r}")
    g = torch.Generator()
    g.manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")

    def one():
        lab = torch.zeros(size, size, dtype=torch.bool)
        for _ in range(int(torch.randint(3, 7, (1,), generator=g))):
            c = torch.rand(2, generator=g) * size
            r = 3 + torch.rand(2, generator=g) * size / 8
            lab |= ((yy - c[0]) / r[0]) ** 2 + ((xx - c[1]) / r[1]) ** 2 <= 1
        img = 0.2 + 0.5 * lab.float() + noise * torch.randn(size, size, generator=g)
        return img.clamp(0, 1)[None], lab.long()

    train = [one() for _ in range(n_train)]
    val = [one() for _ in range(n_val)]
    return SegmentationData(
        name="synthetic", train_images=[a for a, _ in train], train_labels=[b for _, b in train],
        val_images=torch.stack([a for a, _ in val]), val_labels=torch.stack([b for _, b in val]),
        num_classes=2, description=f"synthetic ellipses, {n_train} training and {n_val} validation "
                                   f"images of {size}x{size}, noise sigma {noise:g}, seed {seed}")


DATASETS = ("dsb2018", "mricron", "aal", "icbm152", "synthetic")


def load_dataset(name: str, path=None) -> SegmentationData:
    """A dataset by name (:data:`DATASETS`); ``path`` is the data folder of mricron, aal or icbm152, if given.

    Examples
    --------
    >>> from pdeflow.iel.datasets import DATASETS, load_dataset
    >>> DATASETS
    ('dsb2018', 'mricron', 'aal', 'icbm152', 'synthetic')
    >>> data = load_dataset("synthetic")
    >>> data.name, data.num_classes, data.val_images.shape
    ('synthetic', 2, torch.Size([4, 1, 64, 64]))
    """
    if name == "dsb2018":
        return dsb2018()
    if name == "mricron":
        return mricron_brain(path)
    if name == "aal":
        return aal_lobes(path)
    if name == "icbm152":
        return icbm152_tissue(path)
    if name == "synthetic":
        return synthetic_blobs()
    raise UserInputError(f"load_dataset: name must be one of {DATASETS}, got {name!r}")
