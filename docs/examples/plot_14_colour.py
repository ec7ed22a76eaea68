"""
Colour images
=============

Every solver takes ``(B, C, H, W)`` with any number of channels. ROF and the TV flow couple the
channels by default (the vectorial TV, ``sqrt`` of the sum of all channels' squared gradients), so
edges stay aligned across colours; ``channelwise=True`` treats each channel on its own. Diffusion
inpainting shares one mask ``(B, 1, H, W)`` across the channels.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt
import torch

from pdeflow import datasets, metrics
from pdeflow.inpaint import analytic_mask, inpaint_diffusion
from pdeflow.tv import rof

clean = datasets.builtin_image("skimage/astronaut", grey=False)[:, 30:158, 160:288]  # (3, 128, 128)
noisy = (clean + 0.12 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
coupled = rof(noisy, 0.1, tol=1e-4)
separate = rof(noisy, 0.1, tol=1e-4, channelwise=True)
for name, u in (("noisy", noisy), ("vectorial TV", coupled), ("channelwise", separate)):
    print(f"{name:13s} PSNR {metrics.psnr(u, clean, data_range=1.0):.2f} dB")

m = analytic_mask(clean.mean(0, keepdim=True)[None], 0.1)  # one mask for the three channels
inpainted = inpaint_diffusion(clean[None], m)[0]

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, img, title in zip(axes, (noisy, coupled, separate, inpainted),
                          ("noisy", "ROF, vectorial TV", "ROF, channelwise", "10 % mask, diffusion")):
    ax.imshow(img.permute(1, 2, 0).clamp(0, 1))
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
