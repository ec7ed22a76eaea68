"""
Mask refinement: quality against time
=====================================

:func:`pdeflow.inpaint.refine_mask` improves a mask for diffusion inpainting by adjoint-guided pixel
exchanges (each round: hide the known pixels that cost least, reveal those where the gradient of
the error says most is gained). Starting from the fast learned mask, a few rounds take tens of
milliseconds and reach or beat probabilistic sparsification, which takes seconds. ``learned_mask(f,
d, refine=R)`` and ``pdeflow mask --refine R`` do the same.
"""
import pdeflow  # before torch: see Installation
import time

import matplotlib.pyplot as plt

from pdeflow import datasets, metrics
from pdeflow.inpaint import inpaint_diffusion, learned_mask, refine_mask

f = datasets.builtin_image("skimage/camera")[None, :, 150:214, 200:264]
start = learned_mask(f, 0.1)
rows = []
for rounds in (0, 2, 4, 8, 12, 16):
    t0 = time.process_time()
    m = refine_mask(f, start, rounds=rounds, generator=0) if rounds else start
    t = time.process_time() - t0
    mae = 255 * float(metrics.mae(inpaint_diffusion(f, m), f))
    rows.append((rounds, t, mae))
    print(f"{rounds:2d} rounds: MAE {mae:.2f} (0-255), {1000 * t:.0f} CPU-ms")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot([1000 * r[1] for r in rows], [r[2] for r in rows], "o-")
for r in rows:
    ax.annotate(str(r[0]), (1000 * r[1], r[2]), textcoords="offset points", xytext=(4, 4), fontsize=8)
ax.set_xlabel("CPU milliseconds (refinement only)")
ax.set_ylabel("MAE of the inpainting (0-255)")
ax.set_title("learned mask + R refinement rounds")
fig.tight_layout()
