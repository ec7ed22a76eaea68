"""
Train TVflowNET on a folder of your images
==========================================

:func:`pdeflow.tvflownet.train.train` (the command ``pdeflow train tvflownet``) trains a model on
random crops of the images in one or more folders, supervised by the exact flow computed on the fly
(the default, the fastest way on a CPU) or unsupervised with the paper's loss (12). A run directory
holds the configuration, resumable checkpoints, a CSV log and ``model.safetensors`` + ``model.json``,
which :func:`pdeflow.tvflownet.load` reads. Running the same command again resumes a killed run.

Here a folder of a few PNGs stands for your images, and the run is a few seconds long (the shipped
models trained for CPU-hours), so the model is far from useful: the point is the workflow. The same
from the shell::

    pdeflow train tvflownet --arch semiresnet --data my_photos/ --crop 32 --steps 20000 --run-dir runs/mine
"""
import pdeflow  # before torch: see Installation
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt

from pdeflow import datasets, io, metrics, tvflownet
from pdeflow.tv import ConvergenceWarning, tv_flow
from pdeflow.tvflownet.train import TrainConfig, train

work = Path(tempfile.mkdtemp())
folder = work / "my_photos"
folder.mkdir()
for name in ("skimage/astronaut", "skimage/chelsea", "skimage/rocket", "pywt/ascent"):
    img = datasets.builtin_image(name)[:, :128, :128]
    io.write_image(folder / (name.replace("/", "_") + ".png"), img)
print(sorted(p.name for p in folder.iterdir()))

# This demo's supervision (the exact flow of each batch) is cut short on purpose: keep its warnings quiet.
warnings.simplefilter("ignore", ConvergenceWarning)
cfg = TrainConfig(arch="semiresnet", data=(str(folder),), crop="32", steps=12, batch_size=4, ref_dt=0.05,
                  val_every=12, ckpt_every=6, val_crops=2, val_size=32, val_times=2, val_dt=0.05)
train(cfg, work / "run", quiet=True)
print("run directory:", sorted(p.name for p in (work / "run").iterdir()))

# %%
# The trained model is used like a shipped one.
model = tvflownet.load(work / "run")
u0 = 5 * datasets.builtin_image("skimage/camera")[:, 100:164, 200:264]
u_net = tvflownet.flow(u0, [0.3], model)[0]
u_ref = tv_flow(u0, [0.3])[0]
print(f"PSNR after 12 steps: {metrics.psnr(u_net / 5, u_ref / 5, data_range=1.0):.1f} dB")

fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, img, title in zip(axes, (u0, u_ref, u_net), ("u0", "exact u(0.3)", "12-step model")):
    ax.imshow(img[0], cmap="gray", vmin=0, vmax=5)
    ax.set_title(title)
    ax.axis("off")
fig.tight_layout()
