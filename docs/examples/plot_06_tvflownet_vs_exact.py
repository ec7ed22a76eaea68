"""
TVflowNET against the exact flow, PSNR over time
================================================

TVflowNET (Grossmann, Dittmer, Korolev and Schönlieb, 2022) is a network that maps ``(u0, t)`` to the
TV flow ``u(t)`` and its flux ``phi`` with ``div phi = u_t``. :func:`pdeflow.tvflownet.flow` runs a
shipped model with the same shape convention as :func:`pdeflow.tv.tv_flow`; the models were trained
on images in [0, 5] and times in [0, 1] (the paper's convention, and :func:`~pdeflow.tvflownet.flow`
rescales other inputs by ``scale``). Here both run on one crop and are compared at each time,
including ``t = 0.5``.
"""
import pdeflow  # before torch: see Installation
import time

import matplotlib.pyplot as plt

from pdeflow import datasets, metrics, tvflownet
from pdeflow.tv import tv_flow

u0 = 5 * datasets.builtin_image("skimage/camera")[:, 80:176, 200:296]  # [0, 5], 96 x 96
times = [0.1, 0.25, 0.5, 0.75, 1.0]

t0 = time.process_time()
exact = tv_flow(u0, times)  # the reference: dt 0.0016, max error about 1e-3 on [0, 5]
t_exact = time.process_time() - t0
model = tvflownet.load()  # the shipped default
t0 = time.process_time()
net = tvflownet.flow(u0, times, model)
t_net = time.process_time() - t0

# PSNR on the [0, 1] scale, as the paper reports it (the result divided by 5, data_range 1)
psnr = [float(metrics.psnr(net[k] / 5, exact[k] / 5, data_range=1.0)) for k in range(len(times))]
for t, p in zip(times, psnr):
    print(f"t = {t:4}: PSNR {p:.2f} dB")
print(f"CPU seconds: exact {t_exact:.1f}, network {t_net:.1f}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
k = times.index(0.5)
for ax, img, title in zip(axes, (exact[k], net[k]), ("exact, t = 0.5", "TVflowNET, t = 0.5")):
    ax.imshow(img[0], cmap="gray", vmin=0, vmax=5)  # one grey scale for both: [0, 5]
    ax.set_title(title)
    ax.axis("off")
# the difference on a diverging map centred on zero, with its scale
diff = (net[k] - exact[k])[0]
lim = float(diff.abs().max())
im = axes[2].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim)
axes[2].set_title("TVflowNET - exact")
axes[2].axis("off")
fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.04)
axes[3].plot(times, psnr, "o-")
axes[3].set_xlabel("t")
axes[3].set_ylabel("PSNR (dB)")
axes[3].set_title("TVflowNET vs exact")
fig.tight_layout()
