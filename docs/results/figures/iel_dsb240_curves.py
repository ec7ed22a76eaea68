"""Validation Dice over epochs, DSB2018, 240 epochs, 3 seeds (docs/results/data/iel/dsb-240-curves.json)."""
import json
import matplotlib.pyplot as plt
import numpy as np

rows = json.load(open("docs/results/data/iel/dsb-240-curves.json"))["rows"]
fig, axes = plt.subplots(1, 2, sharey=True)
for ax, labels in zip(axes, ("clean", "noisy")):
    for row in (r for r in rows if r["labels"] == labels):
        m, s = np.array(row["mean_x1000"]) / 1000, np.array(row["std_x1000"]) / 1000
        epochs = np.arange(1, 2 * len(m), 2)       # every second epoch
        name = "IELs" if row["method"] == "iel" else "baseline"
        ax.plot(epochs, m, label=name)
        ax.fill_between(epochs, m - s, m + s, alpha=0.25)
    ax.set_title(f"{labels} training labels")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("validation Dice (mean ± std, 3 seeds)")
axes[1].legend()
axes[0].set_ylim(0.6, 1.0)
fig.tight_layout()
