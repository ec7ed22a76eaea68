"""
Reading DICOM, 16-bit PNG and float TIFF images
===============================================

:func:`pdeflow.io.read_image` returns a float32 tensor ``(C, H, W)`` in [0, 1] and never rescales
silently: integer images are divided by their type's maximum (255, 65535), floating-point TIFFs are
taken as stored (they must lie in [0, 1]), and DICOM, which has no white level, is min-max scaled
after its rescale slope and intercept. ``return_info=True`` says how the values were mapped.
The DICOM file here is a CT slice shipped with pydicom's test data.
"""
import pdeflow  # before torch: see Installation
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tifffile
from pydicom.data import get_testdata_file

from pdeflow import io

ct, info = io.read_image(get_testdata_file("CT_small.dcm"), return_info=True)
print("DICOM:", tuple(ct.shape), ct.dtype, info)

work = Path(tempfile.mkdtemp())
io.write_image(work / "ct16.png", ct, bits=16)  # 16-bit PNG
ct16, info16 = io.read_image(work / "ct16.png", return_info=True)
print("16-bit PNG:", info16, " max difference", float((ct16 - ct).abs().max()))

tifffile.imwrite(work / "float.tif", ct[0].numpy().astype(np.float32))
ct_tif = io.read_image(work / "float.tif")
print("float TIFF, read as stored:", float((ct_tif - ct).abs().max()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, img, title in zip(axes, (ct, ct16, ct_tif), ("DICOM", "16-bit PNG", "float TIFF")):
    ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
