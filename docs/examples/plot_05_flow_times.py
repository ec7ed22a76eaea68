"""
The TV flow of a photo at several times
=======================================

:func:`pdeflow.tv.tv_flow` takes implicit Euler steps, each a warm-started ROF solve, and returns
``u`` at the requested times (shape ``(T, *u0.shape)``), optionally with ``u_t``. Time is the PDE
time of ``u_t = div(grad u / |grad u|)`` on unit pixels, so it depends on the intensity scale:
``tv_flow(c * u0, t) = c * tv_flow(u0, t / c)``. TVflowNET's paper uses images in [0, 5] and times in
[0, 1]; the same is done here. The total variation never increases, and the mean is conserved.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt

from pdeflow import datasets, ops
from pdeflow.tv import tv_flow

u0 = 5 * datasets.builtin_image("skimage/astronaut")[:, 20:148, 150:278]
times = [0.05, 0.2, 0.5, 1.0]
u, ut = tv_flow(u0, times, dt=0.01, tol=1e-5, return_ut=True)
print("u:", tuple(u.shape), " u_t:", tuple(ut.shape))
tvs = [float(ops.tv(u0))] + [float(ops.tv(v)) for v in u]
print("TV:", [round(v) for v in tvs], "(never increases)")
print("mean:", [round(float(v.mean()), 6) for v in [u0, *u]])

# the one-homogeneity of the flow: scaling the image by 1/5 scales time by 1/5
u_small = tv_flow(u0 / 5, [0.2 / 5], dt=0.01 / 5, tol=1e-5)
print("flow(u0/5, t/5) * 5 = flow(u0, t) to", float((5 * u_small[0] - u[1]).abs().max()))

# %%
fig, axes = plt.subplots(2, 5, figsize=(13, 5.4))
axes[0, 0].imshow(u0[0], cmap="gray", vmin=0, vmax=5)
axes[0, 0].set_title("u0")
axes[1, 0].plot([0, *times], tvs, "o-")
axes[1, 0].set_title("TV(u(t))")
for k, t in enumerate(times):
    axes[0, k + 1].imshow(u[k, 0], cmap="gray", vmin=0, vmax=5)
    axes[0, k + 1].set_title(f"u(t = {t})")
    lim = float(ut[k].abs().max())
    im = axes[1, k + 1].imshow(ut[k, 0], cmap="RdBu_r", vmin=-lim, vmax=lim)  # signed: centred on zero
    axes[1, k + 1].set_title(f"u_t(t = {t})")
    fig.colorbar(im, ax=axes[1, k + 1], fraction=0.046, pad=0.04)
for ax in axes.flat:
    if ax is not axes[1, 0]:
        ax.axis("off")
fig.tight_layout()
