"""rof's accuracy-time curve against scikit-image's (docs/results/data/rof_pareto.json, benchmarks/rof_pareto.py)."""
import json

import matplotlib.pyplot as plt

CASES = json.load(open("docs/results/data/rof_pareto.json"))  # (CPU s, error) per call
fig, axes = plt.subplots(1, len(CASES), figsize=(3.4 * len(CASES), 3.4), sharey=True)
for ax, case in zip(axes, CASES):
    ax.plot(*zip(*case["skimage"]), "s--", ms=3, label="scikit-image: default, 50-3200 it.")
    ax.plot(*zip(*case["pdeflow"]), "o", ms=3, label="pdeflow: accuracy")
    ax.plot(*case["skimage"][0], "kx", ms=8, label="scikit-image's default")
    ax.set(xscale="log", yscale="log", xlabel="CPU seconds, one thread", title=f"{case['size']}², lam {case['lam']:g}")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("largest error / range")
axes[-1].legend(fontsize=7)
fig.tight_layout()
