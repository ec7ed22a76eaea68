"""MAE of diffusion inpainting against CPU time per mask (docs/results/data/inpaint_quality_time.json)."""
import json

import matplotlib.pyplot as plt

DATA = json.load(open("docs/results/data/inpaint_quality_time.json"))["sets"]
METHODS = {"random-diffusion": "random", "ps": "PS", "analytic": "analytic", "analytic-refine": "analytic + refine",
           "learned": "learned", "learned-refine": "learned + refine"}
fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
for ax, (folder, title) in zip(axes, (("builtin", "built-in TEST crops"), ("mate", "held-out nature photos"))):
    summary = DATA[folder]
    for method, label in METHODS.items():
        rows = summary[method]
        dens = sorted(rows, key=float)
        t = [max(rows[d]["mask_cpu_s"], 1e-5) for d in dens]
        mae = [rows[d]["mae255"] for d in dens]
        ax.plot(t, mae, "o-", label=label)
        for x, y, d in zip(t, mae, dens):
            ax.annotate(f"{100 * float(d):.0f}%", (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("CPU seconds per 64 x 64 mask")
    ax.set_title(title)
    ax.grid(alpha=0.3)
axes[0].set_ylabel("MAE (0-255)")
axes[1].legend(fontsize=7)
fig.tight_layout()
