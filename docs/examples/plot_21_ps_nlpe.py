"""
Probabilistic sparsification and non-local pixel exchange
=========================================================

The model-based mask optimisers of Mainberger, Hoffmann, Weickert et al. (2011), Peter (2022)'s
baselines: probabilistic sparsification (PS) removes the pixels whose removal costs least until the
density is reached; non-local pixel exchange (NLPE) then swaps known and unknown pixels while the
error falls. Both need many diffusion solves, so they are for small images (seconds at 32 x 32).
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt

from pdeflow import datasets
from pdeflow.inpaint import inpaint_diffusion, inpainting_error, nlpe_mask, ps_mask

f = datasets.builtin_image("skimage/camera")[None, :, 112:144, 212:244].double()  # (1, 1, 32, 32)
ps = ps_mask(f, 0.1, generator=0)
res = nlpe_mask(f, ps, cycles=3, generator=0, full_output=True)
print("MSE with the PS mask:  ", float(inpainting_error(f, inpaint_diffusion(f, ps))))
print("MSE after NLPE:        ", float(inpainting_error(f, inpaint_diffusion(f, res.mask))))

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
axes[0].imshow(f[0, 0], cmap="gray", vmin=0, vmax=1)
axes[0].set_title("image")
axes[1].imshow(inpaint_diffusion(f, ps)[0, 0], cmap="gray", vmin=0, vmax=1)
axes[1].set_title("PS, 10 %")
axes[2].imshow(res.u[0, 0], cmap="gray", vmin=0, vmax=1)
axes[2].set_title("PS + NLPE")
for ax in axes[:3]:
    ax.axis("off")
axes[3].plot(res.trace.reshape(len(res.trace), -1)[:, 0])
axes[3].set_xlabel("exchange")
axes[3].set_ylabel("MSE")
axes[3].set_title("NLPE never raises the error")
fig.tight_layout()
