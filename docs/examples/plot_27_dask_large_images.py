"""
Large images on Dask: the global answer from chunks
===================================================

``pdeflow.dask`` runs ROF and the inpainting operators on chunked dask arrays. A global problem is not
solved tile by tile and blended: the chunks exchange their values in sweeps of overlapping domain
decomposition until the whole image's problem is solved. Here a photograph in chunks of 48 x 48 pixels goes
through ROF and diffusion inpainting from 5 % of its pixels, with dask's threads (a ``dask.distributed``
cluster runs the same graph); the right column shows the difference to the single-array answer, and, for
comparison, what solving each grown tile alone and cutting it back (tiling) would give.
"""
import pdeflow  # before torch: see Installation
import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
import torch

import pdeflow.dask
from pdeflow import datasets
from pdeflow.inpaint import inpaint_diffusion
from pdeflow.tv import rof

f = datasets.builtin_image("skimage/camera")[0, 40:136, 60:156].double().numpy()
noisy = f + 0.1 * np.random.default_rng(0).standard_normal(f.shape)
x = da.from_array(noisy, chunks=48)

r = pdeflow.dask.rof(x, 0.1, tol=1e-7, full_output=True)
u, sweeps, gap = dask.compute(r.u, r.sweeps, r.criterion, scheduler="threads")
ref = rof(torch.from_numpy(noisy), 0.1, tol=1e-9, max_iter=100000).numpy()
print(f"rof: {int(sweeps)} sweeps, relative duality gap {gap:.1e}, largest difference {abs(u - ref).max():.1e}")

# tiling for comparison: every chunk grown by 8 pixels, solved alone, cut back
tiled = np.zeros_like(noisy)
for i in range(0, 96, 48):
    for j in range(0, 96, 48):
        a, b = max(i - 8, 0), max(j - 8, 0)
        t = rof(torch.from_numpy(noisy[a:i + 56, b:j + 56]), 0.1, tol=1e-9, max_iter=100000).numpy()
        tiled[i:i + 48, j:j + 48] = t[i - a:i - a + 48, j - b:j - b + 48]

mask = np.random.default_rng(1).random(f.shape) < 0.05
v = pdeflow.dask.inpaint(da.from_array(f, chunks=48), mask, "diffusion", overlap=8, tol=1e-9).compute()
vref = inpaint_diffusion(torch.from_numpy(f), torch.from_numpy(mask.astype(float)), tol=1e-12).numpy()
print(f"diffusion inpainting: largest difference {abs(v - vref).max():.1e}")

# %%
# Top: ROF from chunks, its difference to the single array, and tiling's. Bottom: diffusion inpainting.
fig, axes = plt.subplots(2, 3, figsize=(10, 6.5))
axes[0, 0].imshow(u, cmap="gray", vmin=0, vmax=1)
axes[0, 0].set_title("rof on chunks of 48")
for ax, d, title in ((axes[0, 1], u - ref, "pdeflow.dask - single array"), (axes[0, 2], tiled - ref,
                                                                              "tiling - single array")):
    lim = max(abs(tiled - ref).max(), 1e-12)
    im = ax.imshow(d, cmap="RdBu", vmin=-lim, vmax=lim)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
axes[1, 0].imshow(v, cmap="gray", vmin=0, vmax=1)
axes[1, 0].set_title("diffusion inpainting, 5 %")
lim = max(abs(v - vref).max(), 1e-12)
im = axes[1, 1].imshow(v - vref, cmap="RdBu", vmin=-lim, vmax=lim)
axes[1, 1].set_title("pdeflow.dask - single array")
fig.colorbar(im, ax=axes[1, 1], shrink=0.8)
axes[1, 2].imshow(mask, cmap="gray")
axes[1, 2].set_title("known pixels")
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
