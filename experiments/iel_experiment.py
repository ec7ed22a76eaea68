"""The IEL noisy-label experiments whose results are committed under benchmarks/results/iel/.

Each named experiment is one `pdeflow iel-experiment` command. Its run directories (checkpoints,
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
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

from _results import add_output_args, open_out, write_file  # experiments/_results.py

ROOT = Path(__file__).resolve().parent.parent
NOISE = ["--noise", "blocks", "--noise-size", "3", "--noise-keep", "0.8"]   # the official DSB2018 noise
EXPERIMENTS = {
    # a check that everything works on one CPU core, not a result
    "small-dsb": ["--preset", "small", "--dataset", "dsb2018", *NOISE, "--seeds", "0", "1", "2"],
    "small-dsb-neumann": ["--preset", "small", "--dataset", "dsb2018", *NOISE, "--boundary", "neumann",
                          "--seeds", "0", "1", "2"],
    "small-sweep-dsb": ["--preset", "small", "--mode", "sweep", "--dataset", "dsb2018", *NOISE,
                        "--dt", "0.0125", "0.025", "0.05", "--layers", "10", "30", "--seeds", "0", "1", "2"],
    "small-mricron": ["--preset", "small", "--dataset", "mricron", *NOISE, "--steps-per-epoch", "6",
                      "--seeds", "0"],
    # {baseline, IELs (official dt 0.1 = 0.025 here, 30 layers)} x {clean, noisy} x 5 seeds
    "dsb": ["--preset", "full", "--dataset", "dsb2018", *NOISE, "--dt", "0.025", "--layers", "30",
            "--seeds", "0", "1", "2", "3", "4"],
    "mricron": ["--preset", "full", "--dataset", "mricron", *NOISE, "--dt", "0.025", "--layers", "30",
                "--seeds", "0", "1", "2", "3", "4"],
    # the official code's optimizer (RMSprop, momentum 0.9) instead of Adam; lr 1e-4 (official 1e-5 over far
    # longer GPU training does not train in 600 steps)
    "dsb-rmsprop": ["--preset", "full", "--dataset", "dsb2018", *NOISE, "--dt", "0.025", "--layers", "30",
                    "--optimizer", "rmsprop", "--lr", "1e-4", "--seeds", "0", "1", "2"],
    # 4x longer training on noisy labels: does the baseline start to fit the noise, do the IELs catch up?
    "dsb-long": ["--preset", "full", "--mode", "sweep", "--dataset", "dsb2018", *NOISE, "--dt", "0.025",
                 "--layers", "30", "--epochs", "240", "--seeds", "0"],
    # the dsb grid at the length where the baseline fits the noise (dsb-long: it peaks near epoch 50, then falls)
    "dsb-240": ["--preset", "full", "--dataset", "dsb2018", *NOISE, "--dt", "0.025", "--layers", "30",
                "--epochs", "240", "--seeds", "0", "1", "2"],
    # brain MR at the same length, noisy labels only (baseline and IELs), 3 seeds
    "mricron-long": ["--preset", "full", "--mode", "sweep", "--dataset", "mricron", *NOISE, "--dt", "0.025",
                     "--layers", "30", "--epochs", "240", "--seeds", "0", "1", "2"],
    # the brain-MR grid at that length, clean and noisy (copy mricron-long's runs into out/iel/mricron-240/runs)
    "mricron-240": ["--preset", "full", "--dataset", "mricron", *NOISE, "--dt", "0.025", "--layers", "30",
                    "--epochs", "240", "--seeds", "0", "1", "2"],
    # dt x layers at 240 epochs, noisy labels, one seed (dsb-long's two runs can be copied in)
    "sweep-dsb-240": ["--preset", "full", "--mode", "sweep", "--dataset", "dsb2018", *NOISE,
                      "--dt", "0.0125", "0.025", "0.05", "--layers", "10", "30", "60", "--epochs", "240",
                      "--seeds", "0"],
    # dt x layers on noisy labels (plus the baseline), 3 seeds
    "sweep-dsb": ["--preset", "full", "--mode", "sweep", "--dataset", "dsb2018", *NOISE,
                  "--dt", "0.0125", "0.025", "0.05", "--layers", "10", "30", "60", "--seeds", "0", "1", "2"],
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Run a committed IEL experiment and copy its results.")
    p.add_argument("name", nargs="?", choices=tuple(EXPERIMENTS))
    p.add_argument("--list", action="store_true", help="print the commands and exit")
    p.add_argument("--shard", default=None, metavar="K/N")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", default="1")
    add_output_args(p, "iel_experiment", what="summary.json, table.md, curves.png or sweep.png, command.txt")
    a = p.parse_args(argv)
    if a.list or a.name is None:
        for name, args in EXPERIMENTS.items():
            print(f"{name}: pdeflow iel-experiment {shlex.join(args)} --out out/iel/{name}")
        return 0
    if a.out is None:
        a._bench_name = f"iel_experiment/{a.name}"
    dest = open_out(a, argv)
    from pdeflow.cli import main as pdeflow

    out = ROOT / "out" / "iel" / a.name
    argv = ["iel-experiment", *EXPERIMENTS[a.name], "--out", str(out), "--device", a.device,
            "--threads", a.threads, "--quiet"]
    if a.shard:
        argv += ["--shard", a.shard]
    status = pdeflow(argv)
    if status or not (out / "summary.json").exists():
        return status
    for f in ("summary.json", "table.md", "curves.png", "sweep.png"):
        if (out / f).exists():
            shutil.copy2(out / f, dest / f)
    write_file(dest / "command.txt", f"pdeflow {shlex.join(argv)}\n".replace(str(ROOT) + "/", ""))
    print(f"copied to {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
