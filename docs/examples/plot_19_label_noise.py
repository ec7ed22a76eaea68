"""
Label noise for segmentation experiments
========================================

The noisy-label experiment of the IEL paper corrupts the training labels. :mod:`pdeflow.iel.noise`
has the two kinds: ``block_noise`` (the official code: a grid of ``s x s`` blocks, each replaced by
a random class with probability ``1 - keep``) and ``window_noise`` (the paper's text: random
``s x s`` windows covering a fraction of the image). Both are seeded.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt
import torch

from pdeflow.iel import block_noise, window_noise

yy, xx = torch.meshgrid(torch.arange(96), torch.arange(96), indexing="ij")
labels = (((xx - 40) ** 2 + (yy - 50) ** 2) < 30**2).long()
blocks = block_noise(labels, 2, size=3, keep=0.8, generator=0)
windows = window_noise(labels, 2, size=8, area=0.1, generator=0)
for name, v in (("blocks", blocks), ("windows", windows)):
    print(f"{name}: {(v != labels).float().mean():.1%} of the pixels changed")

fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, img, title in zip(axes, (labels, blocks, windows), ("labels", "block noise, s = 3", "window noise, s = 8")):
    ax.imshow(img, cmap="gray")
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
