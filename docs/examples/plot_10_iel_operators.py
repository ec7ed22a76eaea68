"""
Heat, TV and Perona-Malik IELs on logits
========================================

Any evolution plugs into :class:`pdeflow.iel.InverseEvolution`: heat diffusion (``F = laplacian``,
the paper's), the TV flow and Perona-Malik diffusion. Applied to a segmentation network's logits
they amplify different things: heat amplifies every non-constant mode, the checkerboard most, by
``(1 + 8 dt)^steps``; TV and Perona-Malik sharpen edges and leave flat regions alone.
:func:`pdeflow.iel.heat_iel_symbol` gives the exact gain of each Fourier (cosine) mode.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt
import torch

from pdeflow.iel import Heat, InverseEvolution, PeronaMalik, TVFlow, heat_iel_symbol

g = torch.Generator().manual_seed(0)
yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
logits = torch.tanh(((xx - 32) ** 2 + (yy - 32) ** 2).sqrt() - 18)[None, None]   # a smooth disk
logits = logits + 0.05 * torch.randn(logits.shape, generator=g)                   # slightly ragged

layers = {
    "heat": InverseEvolution(Heat(), dt=0.025, steps=10),
    "TV flow": InverseEvolution(TVFlow(eps=0.1), dt=0.01, steps=10, boundary="neumann"),
    "Perona-Malik": InverseEvolution(PeronaMalik(kappa=0.5), dt=0.025, steps=10, boundary="neumann"),
}
out = {name: layer(logits) for name, layer in layers.items()}
for name, v in out.items():
    print(f"{name:13s} max |L(u) - u| = {float((v - logits).abs().max()):.2f}")
gain = heat_iel_symbol(64, 64, dt=0.025, steps=30)
print(f"heat, 30 layers of dt 0.025: checkerboard gain {float(gain.max()):.0f}x")

# %%
fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
# signed maps, each on its own scale centred on zero (the layers amplify the logits)
for ax, (title, v) in zip(axes, [("logits", logits)] + [(f"{name} IELs", v) for name, v in out.items()]):
    lim = float(v.abs().max())
    im = ax.imshow(v[0, 0], cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
im = axes[4].imshow(gain.log10(), cmap="viridis")
axes[4].set_title("log10 heat gain per mode")
fig.colorbar(im, ax=axes[4], fraction=0.046, pad=0.04)
fig.tight_layout()
