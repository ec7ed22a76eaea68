"""
Batches, dtypes and devices (GPU tensors)
=========================================

Every solver is batched and runs on the device and in the dtype of its input: move the tensor to a
GPU with ``.to("cuda")`` and the work happens there; the result comes back on the same device.
Per-image parameters are a float or a ``(B,)`` tensor. ``(H, W)`` and ``(C, H, W)`` inputs return
the same shape. This example runs on whatever device is available (a CPU when the documentation
is built).
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt
import torch

from pdeflow import datasets, tvflownet
from pdeflow.inpaint import inpaint_diffusion, random_mask
from pdeflow.tv import rof, tv_flow

device = "cuda" if torch.cuda.is_available() else "cpu"
images = datasets.random_crops([datasets.builtin_image("skimage/camera")], 8, 64, generator=0)
x = images.to(device)

u = rof(x, torch.linspace(0.02, 0.3, 8, device=device))   # one lam per image
print("rof:", tuple(u.shape), u.device, u.dtype)

u64 = tv_flow(x.double()[:2], [0.05, 0.1], dt=0.01)         # float64 in, float64 out
print("tv_flow:", tuple(u64.shape), u64.dtype)

u2d = rof(x[0, 0], 0.1)                                     # (H, W) in, (H, W) out
print("2-D input:", tuple(u2d.shape))

m = random_mask(x.shape, 0.1, generator=0, device=device)
print("inpaint_diffusion:", tuple(inpaint_diffusion(x, m).shape))

model = tvflownet.load("semiresnet", device=device)         # networks load onto a device too
print("tvflownet:", tuple(tvflownet.flow(5 * x[:2], [0.5], model).shape))

# %%
# The batch of crops, each denoised with its own lam (left to right: lam from 0.02 to 0.3).
fig, axes = plt.subplots(1, 8, figsize=(13, 2))
for k, ax in enumerate(axes):
    ax.imshow(u[k, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"lam {float(torch.linspace(0.02, 0.3, 8)[k]):.2f}", fontsize=8)
    ax.axis("off")
fig.tight_layout()
