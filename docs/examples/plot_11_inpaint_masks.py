"""
Diffusion inpainting from random, analytic, learned, densified and PS masks
===========================================================================

Homogeneous diffusion inpainting keeps the known pixels and solves ``laplacian(u) = 0`` elsewhere
(Neumann boundary): :func:`pdeflow.inpaint.inpaint_diffusion`. How good it is depends on which pixels are
known. This compares five ways of choosing 10 % of the pixels of one 64 x 64 crop: uniformly at
random; the analytic density of Belhachmi, Bucur, Burgeth and Weickert (2009) dithered with blue
noise; the shipped mask network; the analytic mask at 30 % of the density grown by adding points where
the inpainting errs most (:func:`pdeflow.inpaint.densify_mask`, eight inpaintings); and probabilistic
sparsification (PS, Mainberger et al., 2011), which removes points a few at a time, one inpainting per
step: slow, but it optimises the mask for this image.
"""
import pdeflow  # before torch: see Installation
import time

import matplotlib.pyplot as plt

from pdeflow import datasets, metrics
from pdeflow.inpaint import (
    analytic_mask,
    densify_mask,
    inpaint_diffusion,
    learned_mask,
    ps_mask,
    random_mask,
)

f = datasets.builtin_image("skimage/camera")[None, :, 150:214, 200:264]  # (1, 1, 64, 64) in [0, 1]
density = 0.1
masks, seconds = {}, {}
for name, make in [
    ("random", lambda: random_mask(f.shape, density, generator=0)),
    ("analytic", lambda: analytic_mask(f, density)),
    ("learned", lambda: learned_mask(f, density)),
    ("densified", lambda: densify_mask(f, density)),
    ("PS", lambda: ps_mask(f, density, generator=0)),
]:
    t0 = time.process_time()
    masks[name] = make()
    seconds[name] = time.process_time() - t0

# %%
fig, axes = plt.subplots(2, 5, figsize=(13.5, 5.6))
for k, (name, m) in enumerate(masks.items()):
    u = inpaint_diffusion(f, m)
    mae = 255 * float(metrics.mae(u, f))
    print(f"{name:9s} {int(m.sum())} known pixels, MAE {mae:5.2f} (0-255), mask in {seconds[name]:.2f} CPU-s")
    axes[0, k].imshow(m[0, 0], cmap="gray_r")
    axes[0, k].set_title(f"{name} mask")
    axes[1, k].imshow(u[0, 0], cmap="gray", vmin=0, vmax=1)
    axes[1, k].set_title(f"MAE {mae:.2f}")
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
