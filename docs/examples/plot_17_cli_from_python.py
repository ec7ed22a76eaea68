"""
The command line from Python
============================

Every ``pdeflow`` subcommand is a thin wrapper over the Python API, and :func:`pdeflow.cli.main`
runs one in the current process: handy in notebooks and scripts that want the command's files
(PNGs, figures, CSV) without a shell. It returns the exit status (0 on success, 2 for bad input,
with a one-line message). ``subprocess.run(["pdeflow", ...])`` works too.
"""
import pdeflow  # before torch: see Installation
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from pdeflow import io
from pdeflow.cli import main

out = Path(tempfile.mkdtemp()) / "flow"
status = main(["flow", "builtin:skimage/camera", "--size", "96", "--times", "0.2", "1", "--dt", "0.02",
               "--out", str(out)])
print("exit status", status)
print(sorted(p.name for p in out.iterdir()))

status = main(["flow", "builtin:skimage/camera", "--times", "-1", "--out", str(out)])  # bad input
print("exit status", status)

# %%
pngs = sorted(out.glob("*t*.png"))[:2]
fig, axes = plt.subplots(1, len(pngs), figsize=(4 * len(pngs), 4))
for ax, p in zip(list(axes) if len(pngs) > 1 else [axes], pngs):
    ax.imshow(io.read_image(p)[0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(p.name)
    ax.axis("off")
fig.tight_layout()
