"""
Learned inpainting: diffusion plus a residual network
=====================================================

:func:`pdeflow.inpaint.inpaint_learned` runs diffusion inpainting and adds the shipped residual
network's correction on the unknown pixels, weighted per image by cross-validation on the known
pixels (so it never does much worse than diffusion). :func:`pdeflow.inpaint.load_joint` gives a
mask network and an inpainter fine-tuned together for one density.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt

from pdeflow import datasets, metrics
from pdeflow.inpaint import inpaint_diffusion, inpaint_learned, learned_mask, load_joint

f = datasets.builtin_image("skimage/coffee")[None, :, 100:164, 250:314]  # (1, 1, 64, 64)
m = learned_mask(f, 0.1)
u_diff = inpaint_diffusion(f, m)
u_learned = inpaint_learned(f, m)
mask_net, inpainter = load_joint(None, density=0.1)
m_joint = learned_mask(f, 0.1, model=mask_net)
u_joint = inpaint_learned(f, m_joint, model=inpainter)

results = {"diffusion": u_diff, "diffusion + residual": u_learned, "joint pair": u_joint}
for name, u in results.items():
    print(f"{name:22s} MAE {255 * float(metrics.mae(u, f)):.2f}  "
          f"SSIM {float(metrics.ssim(u, f, data_range=1.0)):.3f}")

# %%
fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
panels = [(f, "image"), (m, "learned 10 % mask")] + [(u, name) for name, u in results.items()]
for ax, (img, title) in zip(axes, panels):
    ax.imshow(img[0, 0], cmap="gray" if "mask" not in title else "gray_r", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
