"""Validation PSNR against CPU-hours, one U-Net trained three ways (docs/results/data/tvflownet_modes.json,
benchmarks/tvflownet_modes.py)."""
import json

import matplotlib.pyplot as plt

RUNS = json.load(open("docs/results/data/tvflownet_modes.json"))
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for run in RUNS:
    ax.plot(run["cpu_hours"], run["val_psnr"], ".-", lw=1, ms=3, label=run["label"])
ax.set(xlabel="CPU-hours of training (one thread)", ylabel="validation PSNR of u (dB)", ylim=(38, None))
ax.grid(alpha=0.3)
ax.legend(fontsize=7)
fig.tight_layout()
