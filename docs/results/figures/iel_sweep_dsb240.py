"""Final validation Dice over dt x layers, DSB2018, noisy labels (docs/results/data/iel/sweep-dsb-240.json)."""
import json
import matplotlib.pyplot as plt
import numpy as np

d = json.load(open("docs/results/data/iel/sweep-dsb-240.json"))
grid = np.full((len(d["layers"]), len(d["dts"])), np.nan)
for r in d["rows"]:
    if r["method"] == "iel":
        grid[d["layers"].index(r["layers"]), d["dts"].index(r["dt"])] = r["final_dice_mean"]
fig, ax = plt.subplots(figsize=(4.6, 3.4))
im = ax.imshow(grid, cmap="viridis", origin="lower")
ax.set_xticks(range(len(d["dts"])), [str(v) for v in d["dts"]])
ax.set_yticks(range(len(d["layers"])), [str(v) for v in d["layers"]])
ax.set_xlabel("dt")
ax.set_ylabel("layers")
for (i, j), v in np.ndenumerate(grid):
    ax.text(j, i, f"{v:.3f}", ha="center", va="center", color="w" if v < 0.88 else "k")
fig.colorbar(im, label="final validation Dice")
fig.tight_layout()
