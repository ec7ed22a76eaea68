"""
Built-in and synthetic images
=============================

pdeflow downloads nothing: its built-in images come from installed packages (scikit-image,
PyWavelets, matplotlib, pydicom, ...) and :mod:`pdeflow.datasets` generates seeded synthetic scenes:
isolated disks (eigenfunctions of the TV flow), overlapping ellipses (as in TVflowNET's Table 5),
rectangles, polygons and piecewise-smooth fields. ``pdeflow samples`` lists the built-in images.
"""
import pdeflow  # before torch: see Installation
import matplotlib.pyplot as plt

from pdeflow import datasets

print(len(datasets.builtin_names()), "built-in images, e.g.", datasets.builtin_names()[:4])
print("the evaluation's TEST photos:", datasets.builtin_names("test"))
kinds = ["disks", "ellipses", "rectangles", "polygons", "smooth"]
fig, axes = plt.subplots(1, 5, figsize=(13, 2.9))
for ax, kind in zip(axes, kinds):
    img = datasets.scenes([kind], 96, seed=0, batch=1)
    ax.imshow(img[0, 0], cmap="gray")
    ax.set_title(kind)
    ax.axis("off")
fig.tight_layout()
