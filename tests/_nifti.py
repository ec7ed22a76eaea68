"""A minimal uint8 NIfTI-1 writer for the tests of the IEL data sets (no nibabel needed)."""
import gzip
import struct

import numpy as np

__all__ = ["write_nifti"]


def write_nifti(path, vol: np.ndarray) -> None:
    """Write the (z, y, x) volume ``vol`` as gzipped uint8 NIfTI-1, unit spacing."""
    nz, ny, nx = vol.shape
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    struct.pack_into("<8h", hdr, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", hdr, 70, 2, 8)                 # uint8
    struct.pack_into("<f", hdr, 108, 352.0)
    struct.pack_into("<ff", hdr, 112, 1.0, 0.0)
    hdr[344:348] = b"n+1\x00"
    with gzip.open(path, "wb") as f:
        f.write(bytes(hdr) + vol.astype(np.uint8).tobytes())
