"""
The TV flow of a disk: an eigenfunction, checked analytically
=============================================================

A disk of radius ``r`` and height ``h`` on a zero background is an eigenfunction of the total
variation flow ``u_t = div(grad u / |grad u|)``: its shape stays and its height falls linearly in
time, at the rate perimeter / area (``2 / r`` in the continuum), until it meets the background; the
mean is conserved, so the background rises a little. On the pixel grid the perimeter is the
discrete one, so the measured rate is close to, not equal to, ``2 / r``.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt
import numpy as np
import torch

from pdeflow import datasets
from pdeflow.tv import tv_flow

n, r, h = 48, 10.0, 1.0
u0 = datasets.disk(n, r, height=h)[None]  # (1, 1, 48, 48)
times = torch.linspace(0.25, 2.5, 10)
u = tv_flow(u0, times, dt=0.05, tol=1e-5)  # (T, 1, 1, 48, 48)

inside = u0[0, 0] > 0.5
contrast = np.array([float(v[0, 0][inside].mean() - v[0, 0][~inside].mean()) for v in u])
slope, intercept = np.polyfit(times.numpy(), contrast, 1)
area = float(inside.sum())
continuum = 2 / r * (1 + area / (n * n - area))  # disk falls at P/A, background rises at P/(N - A)
print(f"contrast falls at {-slope:.4f} per unit time (continuum: {continuum:.4f}); "
      f"largest deviation from a line {np.abs(contrast - (slope * times.numpy() + intercept)).max():.1e}")
print("mean conserved to", float((u.mean(dim=(-1, -2)) - u0.mean()).abs().max()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
axes[0].imshow(u0[0, 0], cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"u0: disk, r = {r:g}")
axes[0].axis("off")
axes[1].plot(u0[0, 0, n // 2], label="t = 0")
for k in (1, 5, 9):
    axes[1].plot(u[k, 0, 0, n // 2], label=f"t = {times[k]:.2f}")
axes[1].set_title("profile through the centre")
axes[1].legend(fontsize=8)
axes[2].plot(times, contrast, "o", label="pdeflow")
axes[2].plot(times, h - continuum * times, "-", label="h - (2/r)(1 + A/(N-A)) t")
axes[2].set_xlabel("t")
axes[2].set_title("the contrast falls linearly")
axes[2].legend(fontsize=8)
fig.tight_layout()
