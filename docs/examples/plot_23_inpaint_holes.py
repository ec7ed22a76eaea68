"""
Removing text and scratches: hole inpainting with every operator
================================================================

Inpainting restores the pixels of a region from the pixels around it. Here the regions are holes, not sparse
data: overlaid words and thin scratches drawn by :func:`pdeflow.inpaint.hole_mask` (``True`` where a pixel
is missing, covering an exact fraction of the image, reproducible from a seed). Every inpainting operator of
:data:`pdeflow.inpaint.OPERATORS` fills them in -- homogeneous diffusion, and where registered the
biharmonic, edge-enhancing diffusion (EED) and total variation operators -- through the one entry point
:func:`pdeflow.inpaint.inpaint`, whose mask is 1 on *known* pixels: the complement ``~holes``. Nothing here
needs OpenCV; the results page "Inpainting operators" compares the same operators with OpenCV's ``cv2.inpaint``.
"""
import pdeflow  # before torch: see Installation
import math
import time

import matplotlib.pyplot as plt

from pdeflow import datasets, metrics
from pdeflow.inpaint import OPERATORS, hole_mask, inpaint

f = datasets.builtin_image("skimage/astronaut")[None, :, 30:158, 140:268]   # (1, 1, 128, 128) in [0, 1]
damage = {kind: hole_mask(f.shape, kind, 0.06, generator=1) for kind in ("text", "scratches")}


def hole_psnr(u, holes):
    """PSNR (dB) over the missing pixels only: the known ones are kept exactly."""
    mse = float(metrics.mse(u.clamp(0, 1)[holes][None], f[holes][None]))   # the missing pixels as one row
    return 10 * math.log10(1 / mse)


# %%
# One row per kind of damage: the original, the damaged image (missing pixels white), then each operator's
# result with its PSNR on the missing pixels and its CPU time.
fig, axes = plt.subplots(2, 2 + len(OPERATORS), figsize=(2.3 * (2 + len(OPERATORS)), 5.2))
for row, (kind, holes) in enumerate(damage.items()):
    axes[row, 0].imshow(f[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
    axes[row, 0].set_title("original")
    axes[row, 1].imshow(f[0, 0].masked_fill(holes[0, 0], 1.0).numpy(), cmap="gray", vmin=0, vmax=1)
    axes[row, 1].set_title(f"{kind}, {100 * float(holes.float().mean()):.0f} % missing")
    for col, name in enumerate(OPERATORS, start=2):
        t0 = time.process_time()
        u = inpaint(f.masked_fill(holes, 0.0), ~holes, method=name)    # the missing values are never read
        seconds = time.process_time() - t0
        print(f"{kind:9s} {name:10s} {hole_psnr(u, holes):5.2f} dB on the holes, {seconds:.2f} CPU-s")
        axes[row, col].imshow(u[0, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        axes[row, col].set_title(f"{name}: {hole_psnr(u, holes):.1f} dB")
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
