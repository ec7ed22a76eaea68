"""
Spectral TV: bands, spectrum and exact reconstruction
=====================================================

Gilboa's spectral TV decomposition (SIAM J. Imaging Sci., 2014) takes the TV flow ``u(t)`` and forms
``phi(t) = t * u_tt``. The spectrum ``S(t) = ||phi(t)||_1`` says at which scales (times) the image
has its structure; band-pass images sum ``phi`` over time bands; the bands and the residual
``f_r = u(T) - T u_t(T)`` add up to the input. ``pdeflow spectral IMAGE --out DIR`` writes the same
bands, the spectrum plot and a CSV.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt

from pdeflow import datasets
from pdeflow.tv import spectral_tv

u0 = 5 * datasets.builtin_image("skimage/camera")[:, 160:256, 220:316]  # paper scale: [0, 5]
s = spectral_tv(u0, dt=0.04, n_steps=50, tol=1e-5)
bands = s.filter()  # dyadic bands in time
print("bands:", tuple(bands.shape), "residual:", tuple(s.residual.shape))
err = (bands.sum(0) + s.residual - u0).abs().max()
print(f"reconstruction error {err:.2e}")

# %%
fig = plt.figure(figsize=(12, 5.2))
n = len(bands)
ax = fig.add_subplot(2, n + 1, 1)
ax.imshow(u0[0], cmap="gray")
ax.set_title("u0")
ax.axis("off")
for i in range(n):
    ax = fig.add_subplot(2, n + 1, i + 2)
    lim = float(bands[i].abs().max())
    im = ax.imshow(bands[i, 0], cmap="RdBu_r", vmin=-lim, vmax=lim)  # signed: centred on zero
    ax.set_title(f"band {i + 1}")
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
ax = fig.add_subplot(2, 1, 2)
ax.plot(s.times, s.spectrum.reshape(len(s.times), -1).sum(1), "o-", ms=3)
ax.set_xlabel("t (scale)")
ax.set_ylabel("S(t) = ||phi(t)||_1")
fig.tight_layout()
