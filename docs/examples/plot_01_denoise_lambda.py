"""
TV-denoise a photo and pick lambda
==================================

The ROF model ``argmin_u 1/2 ||u - f||^2 + lam * TV(u)`` (Rudin, Osher and Fatemi, 1992) removes
noise and keeps edges; ``lam`` trades the two. Here a noisy photo is denoised for several values of
``lam`` in one batched call and the value with the best PSNR against the clean image is kept. With
your own PNG, read it with :func:`pdeflow.io.read_image` (values in [0, 1]) instead of the built-in
image; ``pdeflow denoise IMAGE --lam 0.05 0.1 --out DIR`` does the same from the shell.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt
import torch

from pdeflow import datasets, metrics
from pdeflow.tv import rof

clean = datasets.builtin_image("skimage/camera")[:, 100:228, 180:308]  # (1, 128, 128) in [0, 1]
noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))

# %%
# One call for all values of lam: a batch of copies and a (B,) tensor of lam.
lams = torch.tensor([0.02, 0.05, 0.08, 0.12, 0.2, 0.3])
batch = noisy.expand(len(lams), 1, -1, -1)
denoised = rof(batch, lams, tol=1e-4)
scores = metrics.psnr(denoised, clean.expand_as(denoised), data_range=1.0)
best = int(scores.argmax())
for lam, s in zip(lams.tolist(), scores.tolist()):
    print(f"lam = {lam:.2f}: PSNR {s:.2f} dB")
print(f"best lam: {lams[best]:.2f}")

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
axes[0].imshow(noisy[0], cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"noisy ({metrics.psnr(noisy, clean, data_range=1.0):.1f} dB)")
axes[1].imshow(denoised[best, 0], cmap="gray", vmin=0, vmax=1)
axes[1].set_title(f"ROF, lam = {lams[best]:.2f} ({scores[best]:.1f} dB)")
axes[2].imshow(denoised[-1, 0], cmap="gray", vmin=0, vmax=1)
axes[2].set_title(f"lam = {lams[-1]:.2f}: too smooth")
for ax in axes[:3]:
    ax.axis("off")
axes[3].plot(lams, scores, "o-")
axes[3].set_xlabel("lam")
axes[3].set_ylabel("PSNR (dB)")
axes[3].set_title("pick lam")
fig.tight_layout()
