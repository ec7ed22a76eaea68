"""
The shipped TVflowNET models compared
=====================================

pdeflow ships eight trained grey models (:func:`pdeflow.tvflownet.shipped_models`): ``semiresnet``, ``unet``
and ``lgd`` (the paper's three architectures), ``lgd10`` (an LGD of 10 unrolled steps) and
``default``, a weighted ensemble of ``unet`` and ``lgd10``, all trained supervised by the exact flow; and
``unet-unsupervised``, ``lgd-unsupervised`` and ``semiresnet-unsupervised``, the three trained the paper's way,
from loss (12) alone. The three ``unet-colour*`` models are for colour images. This compares the grey ones on one
image: the accuracy of ``u`` at ``t = 0.5`` against the exact flow, and the CPU time of a call.
"""
import pdeflow  # before torch: see Installation
import time

import matplotlib.pyplot as plt

from pdeflow import datasets, metrics, tvflownet
from pdeflow.tv import tv_flow

u0 = 5 * datasets.builtin_image("skimage/coffee")[:, 100:164, 200:264]  # 64 x 64 in [0, 5]
exact = tv_flow(u0, [0.5])[0]
names = [n for n in tvflownet.shipped_models() if tvflownet.load(n).in_channels == 1]
rows = []
for name in names:
    model = tvflownet.load(name)
    t0 = time.process_time()
    u = tvflownet.flow(u0, [0.5], model)[0]
    seconds = time.process_time() - t0
    p = float(metrics.psnr(u / 5, exact / 5, data_range=1.0))
    n_params = sum(w.numel() for w in model.parameters())
    rows.append((name, n_params, p, seconds))
    print(f"{name:23s} {n_params:8d} parameters  PSNR {p:.2f} dB  {seconds:.2f} CPU-s")

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.barh([r[0] for r in rows], [r[2] for r in rows])
ax.set_xlabel("PSNR of u(0.5) against the exact flow (dB)")
ax.set_xlim(min(r[2] for r in rows) - 3, max(r[2] for r in rows) + 1)
fig.tight_layout()
