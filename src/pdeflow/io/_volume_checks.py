"""The refusal and the size check shared by the volume readers (:mod:`pdeflow.io.volumes` and its DICOM
reader, :mod:`pdeflow.io._dicom`): one line, prefixed ``read_volume:``, naming the path."""
from __future__ import annotations

import math

from ..errors import UserInputError

#: What :func:`pdeflow.io.read_volume` reads, for its refusals.
EXPECTED = ("expected a .npy file, a TIFF stack, a NIfTI .nii/.nii.gz file, a multi-frame DICOM file or a folder "
            "of DICOM slices")


def refuse(message: str) -> UserInputError:
    """The error :func:`pdeflow.io.read_volume` raises for what it cannot read (``raise refuse(...)``)."""
    return UserInputError(f"read_volume: {message}")


def check_size(shape, max_voxels, path) -> None:
    """Refuse a volume of ``shape`` with more than ``max_voxels`` voxels (None: no limit), before it is loaded."""
    n = math.prod(int(s) for s in shape)
    if max_voxels is not None and n > max_voxels:
        raise refuse(f"path '{path}' holds a volume of shape {tuple(int(s) for s in shape)} ({n:.3g} voxels), "
                     f"more than max_voxels={max_voxels:.3g} (pass max_voxels=... to read larger volumes)")
