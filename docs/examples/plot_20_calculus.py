"""
The discrete calculus: grad, div, laplacian, TV
===============================================

Everything in pdeflow is built on :mod:`pdeflow.ops`: ``grad`` takes forward differences with a
zero last row/column (Neumann boundary) and returns ``(..., 2, H, W)``; ``div = -grad^T`` exactly
(Chambolle 2004's backward differences); ``laplacian = div(grad)``; ``tv`` is the isotropic total
variation per image. The adjoint identity ``<grad u, p> = -<u, div p>`` holds to round-off.
"""
import pdeflow  # before torch: see Installation
import math

import matplotlib.pyplot as plt
import torch

from pdeflow import datasets, ops

g = torch.Generator().manual_seed(0)
u = torch.randn(1, 1, 32, 32, generator=g, dtype=torch.float64)
p = torch.randn(1, 1, 2, 32, 32, generator=g, dtype=torch.float64)
lhs = (ops.grad(u) * p).sum()
rhs = -(u * ops.div(p)).sum()
print(f"<grad u, p> + <u, div p> = {float(lhs - rhs):.1e}")

r = 20
d = datasets.disk(96, r, dtype=torch.float64)
print(f"TV of a disk of radius {r}: {float(ops.tv(d)):.1f} (continuum perimeter {2 * math.pi * r:.1f})")

img = datasets.builtin_image("skimage/camera")[:, 150:278, 200:328]
gr = ops.grad(img)
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, a, title in zip(axes, (img[0], gr[0, 0], gr[0, 1], ops.laplacian(img)[0]),
                        ("u", "d/dH (rows)", "d/dW (columns)", "laplacian")):
    ax.imshow(a, cmap="gray")
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
