"""The IEL noisy-label experiments whose results are committed under benchmarks/results/iel/.

Each named experiment is one :func:`pdeflow.iel.experiment.run_experiment` call (what
`pdeflow iel-experiment` runs). Its run directories (checkpoints,
logs) go to out/iel/NAME, which is resumable: kill it and start the same command again. When
every run is done, summary.json, table.md, command.txt and the PNG are copied to ``--out`` (default
a fresh folder under runs/benchmarks/iel_experiment/; committing them is explicit:
``--out benchmarks/results/iel/NAME``, with ``--overwrite`` to replace a committed result).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/iel_experiment.py small-dsb     # ~10 min, 1 core
    (small-dsb-neumann ~10 min, small-sweep-dsb ~16 min, small-mricron ~8 min: checks, not results)
    OMP_NUM_THREADS=1 .venv/bin/python experiments/iel_experiment.py dsb           # CPU-hours
    OMP_NUM_THREADS=1 .venv/bin/python experiments/iel_experiment.py mricron       # needs `make data`
    OMP_NUM_THREADS=1 .venv/bin/python experiments/iel_experiment.py sweep-dsb
    (dsb-rmsprop: the official optimizer; dsb-long: 4x longer training, noisy labels, one seed;
     dsb-240: the dsb grid at that length, 3 seeds; mricron-long: brain MR, 240 epochs, noisy labels, 3 seeds;
     mricron-240: with clean labels too; sweep-dsb-240: dt x layers at 240 epochs, one seed)
    ... NAME --shard 0/2 and NAME --shard 1/2 in two processes split a grid; --device cuda on a GPU.

`--list` prints the commands without running them.

Historical. The driver of the committed IEL results; its smallest experiment takes about ten minutes, far over
a smoke run. Its results are kept for the record; it is not expected to run against today's API. It still
imported and parsed its options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_file  # experiments/_results.py
from pdeflow.iel.experiment import PRESETS, ExperimentSpec, RunConfig, check_spec, run_experiment

ROOT = Path(__file__).resolve().parent.parent
NOISE = dict(noise="blocks", noise_size=3, noise_keep=0.8)   # the official DSB2018 noise
SWEEP = dict(mode="sweep", dts=(0.0125, 0.025, 0.05), layers=(10, 30, 60))


def spec(preset: str, *, mode: str = "compare", dts=(0.025,), layers=(30,), seeds=(0, 1, 2), **base) -> ExperimentSpec:
    """An experiment on noisy labels: ``preset``'s sizes, then ``base``'s RunConfig fields."""
    run = RunConfig(**{**PRESETS[preset], **NOISE, "dt": dts[0], "layers": layers[0], **base})
    return ExperimentSpec(mode=mode, base=run, seeds=tuple(seeds), dts=tuple(dts), layers=tuple(layers))


EXPERIMENTS = {
    # a check that everything works on one CPU core, not a result
    "small-dsb": spec("small", dataset="dsb2018"),
    "small-dsb-neumann": spec("small", dataset="dsb2018", boundary="neumann"),
    "small-sweep-dsb": spec("small", **{**SWEEP, "layers": (10, 30)}, dataset="dsb2018"),
    "small-mricron": spec("small", dataset="mricron", steps_per_epoch=6, seeds=(0,)),
    # {baseline, IELs (official dt 0.1 = 0.025 here, 30 layers)} x {clean, noisy} x 5 seeds
    "dsb": spec("full", dataset="dsb2018", seeds=range(5)),
    "mricron": spec("full", dataset="mricron", seeds=range(5)),
    # the official code's optimizer (RMSprop, momentum 0.9) instead of Adam; lr 1e-4 (official 1e-5 over far
    # longer GPU training does not train in 600 steps)
    "dsb-rmsprop": spec("full", dataset="dsb2018", optimizer="rmsprop", lr=1e-4),
    # 4x longer training on noisy labels: does the baseline start to fit the noise, do the IELs catch up?
    "dsb-long": spec("full", mode="sweep", dataset="dsb2018", epochs=240, seeds=(0,)),
    # the dsb grid at the length where the baseline fits the noise (dsb-long: it peaks near epoch 50, then falls)
    "dsb-240": spec("full", dataset="dsb2018", epochs=240),
    # brain MR at the same length, noisy labels only (baseline and IELs), 3 seeds
    "mricron-long": spec("full", mode="sweep", dataset="mricron", epochs=240),
    # the brain-MR grid at that length, clean and noisy (copy mricron-long's runs into out/iel/mricron-240/runs)
    "mricron-240": spec("full", dataset="mricron", epochs=240),
    # dt x layers at 240 epochs, noisy labels, one seed (dsb-long's two runs can be copied in)
    "sweep-dsb-240": spec("full", **SWEEP, dataset="dsb2018", epochs=240, seeds=(0,)),
    # dt x layers on noisy labels (plus the baseline), 3 seeds
    "sweep-dsb": spec("full", **SWEEP, dataset="dsb2018"),
}


def _shard(text: str) -> tuple[int, int]:
    k, n = (int(v) for v in text.split("/"))
    return k, n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run a committed IEL experiment and copy its results.")
    p.add_argument("name", nargs="?", choices=tuple(EXPERIMENTS))
    p.add_argument("--list", action="store_true", help="print the experiments and exit")
    p.add_argument("--shard", type=_shard, default=(0, 1), metavar="K/N")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    add_output_args(p, "iel_experiment", what="summary.json, table.md, curves.png or sweep.png, command.txt")
    a = p.parse_args(argv)
    if a.list or a.name is None:
        for name, s in EXPERIMENTS.items():
            print(f"{name}: {s}")
        return 0
    if a.out is None:
        a._bench_name = f"iel_experiment/{a.name}"
    s = EXPERIMENTS[a.name]
    check_spec(s)
    dest = open_out(a, argv)
    torch.set_num_threads(a.threads)
    out = ROOT / "out" / "iel" / a.name
    summary = run_experiment(s, out, device=a.device, shard=a.shard, quiet=True)
    if summary is None:
        return 0
    for f in ("summary.json", "table.md", "curves.png", "sweep.png"):
        if (out / f).exists():
            shutil.copy2(out / f, dest / f)
    write_file(dest / "command.txt", f"python experiments/iel_experiment.py {a.name}\n{s}\n")
    print(f"copied to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
