"""
Compressing an image to a few hundred bytes
===========================================

:func:`pdeflow.codec.encode` stores an image as a sparse set of pixels, their values optimised for the inpainting
that restores the rest, and entropy-codes both; :func:`pdeflow.codec.decode` inpaints. Here the camera image
(256 x 256, grey) is stored at three budgets, and JPEG (Pillow, optimised Huffman tables) gets the same number of
bytes: its quality is the highest whose file fits, and where even quality 1 is too large, JPEG cannot make the
file at all. The results page "Image compression: rate-distortion" compares with JPEG 2000, WebP, AVIF and JPEG XL
on held-out photographs.
"""
import pdeflow  # before torch: see Installation
import io

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from pdeflow import codec, datasets, metrics

f = datasets.builtin_image("skimage/camera")[:, ::2, ::2]   # (1, 256, 256) in [0, 1]
H, W = f.shape[-2:]


def jpeg_within(image: torch.Tensor, budget: int):
    """The best JPEG of ``image`` of at most ``budget`` bytes, decoded, and its size (None: none fits)."""
    pixels = Image.fromarray(np.round(image[0].numpy() * 255).astype(np.uint8))
    for quality in range(95, 0, -1):
        buf = io.BytesIO()
        pixels.save(buf, format="JPEG", quality=quality, optimize=True)
        if buf.tell() <= budget:
            decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255
            return torch.from_numpy(decoded)[None], buf.tell()
    return None, None


# %%
# Each budget in bits per pixel is ``bpp * H * W / 8`` bytes for the whole file, header included.
rates = (0.05, 0.1, 0.2)
fig, axes = plt.subplots(2, len(rates), figsize=(3.2 * len(rates), 6.6))
for col, bpp in enumerate(rates):
    budget = int(bpp * H * W / 8)
    data = codec.encode(f, bpp=bpp)
    u = codec.decode(data)
    psnr = float(metrics.psnr(u, f, data_range=1.0))
    print(f"{bpp:.2f} bpp ({budget} bytes): pdeflow {len(data)} bytes, PSNR {psnr:.2f} dB", end="; ")
    axes[0, col].imshow(u[0].numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0, col].set_title(f"pdeflow, {len(data)} bytes\n{psnr:.2f} dB")
    j, size = jpeg_within(f, budget)
    if j is None:
        print("JPEG: no file fits")
        axes[1, col].text(0.5, 0.5, "no JPEG fits", ha="center", va="center")
    else:
        jpsnr = float(metrics.psnr(j, f, data_range=1.0))
        print(f"JPEG {size} bytes, PSNR {jpsnr:.2f} dB")
        axes[1, col].imshow(j[0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1, col].set_title(f"JPEG, {size} bytes\n{jpsnr:.2f} dB")
for ax in axes.ravel():
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# The same from the shell: ``pdeflow compress camera.png --bpp 0.1 --out camera.pdc`` and
# ``pdeflow decompress camera.pdc --out restored.png``. A damaged file is refused with one line:
try:
    codec.decode(data[:-5])
except codec.CodecError as exc:
    print(exc)
