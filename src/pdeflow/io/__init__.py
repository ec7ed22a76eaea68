"""Files: images, the one atomic write, and model files.

* :mod:`~pdeflow.io.images`: :func:`read_image` / :func:`write_image` (PNG, JPEG, TIFF and DICOM to and
  from float32 tensors ``(C, H, W)`` in [0, 1]; writes are atomic), :func:`image_files` (the image files of
  a folder, searched recursively), :data:`IMAGE_SUFFIXES`, :data:`LUMA_WEIGHTS`.
* :mod:`~pdeflow.io.files`: :func:`atomic_write` / :func:`atomic_path`, the one atomic-write helper
  (temporary file beside the target, then :func:`os.replace`) for every module that writes files;
  :func:`write_bytes`, :func:`to_json`.
* :mod:`~pdeflow.io.model_files`: :func:`save_model` / :func:`load_model`: a model as a ``.safetensors``
  weights file plus a ``.json`` of its configuration and provenance (what inference reads, without the
  training toolkit), the weights optionally stored in float16 (:func:`fits_float16`, :func:`store_float16`).
  Finding, listing and loading trained models: :mod:`pdeflow.models`.
* :mod:`~pdeflow.io.volumes`: :func:`read_volume` / :func:`write_volume`: 3-D volumes (TIFF stacks, DICOM
  series and multi-frame files, NIfTI with the ``volumes`` extra, ``.npy``) with their voxel spacing;
  :func:`is_volume` tells a volume's path from an image's.
* :mod:`~pdeflow.io.zarr_arrays`: :func:`read_zarr` / :func:`write_zarr`: arrays larger than memory, zarr
  stores as lazy dask arrays and dask arrays written to zarr atomically (the ``dask`` extra;
  :mod:`pdeflow.dask` computes on them).

Nothing here downloads anything.
"""
from .files import atomic_path, atomic_write, to_json, write_bytes
from .images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    LUMA_WEIGHTS,
    WRITE_SUFFIXES,
    image_files,
    read_image,
    write_image,
)
from .model_files import (
    SAME_AS_ABOVE,
    STORED_DTYPES,
    fits_float16,
    load_model,
    model_bytes,
    model_from_export,
    model_paths,
    save_model,
    store_float16,
    trimmed_provenance,
)
from .volumes import DEFAULT_MAX_VOXELS, VOLUME_FORMATS, VOLUME_SUFFIXES, is_volume, read_volume, write_volume
from .zarr_arrays import read_zarr, write_zarr

__all__ = [
    "read_image",
    "write_image",
    "image_files",
    "IMAGE_SUFFIXES",
    "WRITE_SUFFIXES",
    "atomic_write",
    "atomic_path",
    "save_model",
    "model_bytes",
    "load_model",
    "to_json",
    "write_bytes",
    "LUMA_WEIGHTS",
    "DEFAULT_MAX_PIXELS",
    "model_from_export",
    "model_paths",
    "fits_float16",
    "store_float16",
    "trimmed_provenance",
    "SAME_AS_ABOVE",
    "STORED_DTYPES",
    "read_volume",
    "write_volume",
    "VOLUME_SUFFIXES",
    "VOLUME_FORMATS",
    "is_volume",
    "DEFAULT_MAX_VOXELS",
    "read_zarr",
    "write_zarr",
]
