"""CPU time (user + system) of the README's and the guides' shell commands on a 512 x 512 photo, one thread.

Maintained.  In the output folder, for the astronaut in grey and in colour: the photo, a folder holding it and
three scratches (holes); then each command in order (``mask`` writes what ``inpaint`` reads), a fresh process
with ``OMP_NUM_THREADS=1`` and caches of its own (a first run). Commands running a shipped network get
``--grey`` on the colour photo (the networks are grey). Training is left out (hours by design). ``--smoke``:
``pdeflow samples`` alone.

    OMP_NUM_THREADS=1 python benchmarks/readme_commands.py            # about 15 CPU min
    OMP_NUM_THREADS=1 python benchmarks/readme_commands.py --only decompress --photos colour
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys

import torch

from _results import add_output_args, open_out, write_text  # benchmarks/_results.py
from pdeflow import datasets, io

#: (page, command); ``IMG`` the photo, ``DIR`` its folder.
COMMANDS = [("README", c) for c in (
    "denoise IMG --lam 0.05 0.1 0.2 --out den/", "denoise IMG --noise 0.1 --lam 0.03 0.06 0.12 --out den2/",
    "flow IMG --times 0.1 0.5 2 --out flow/", "flow IMG --times 0.1 0.5 --method both --out cmp/",
    "spectral IMG --dt 0.04 --steps 50 --out spec/", "mask IMG --density 0.1 --method learned --out mask/",
    "inpaint IMG --mask mask/mask.png --method learned --out inp/",
    "inpaint IMG --holes scratches.png --method biharmonic --out fixed/", "compress IMG --bpp 0.1 --out photo.pdc",
    "decompress photo.pdc --out restored.png", "samples")] + [("cli", c) for c in (
        "denoise IMG --lam 0.05 0.1 --out denoised/", "demo --out demo/", "models", "mask IMG --density 0.1 --out m/",
        "inpaint IMG --mask m/mask.png --out rec/", "denoise DIR --lam 0.1 --workers 2 --out den3/",
        "evaluate tvflownet default --tables 2 --sizes 32 --n-images 8 --out report/")] + [
    ("inpaint", "mask IMG --density 0.1 --method learned --refine 8 --out m8/"),
    ("inpaint_operators", "inpaint IMG --holes scratches.png --method eed --out restored/"),
    ("inpaint_operators", "mask IMG --density 0.05 --operator eed --out me/"),
    ("inpaint_operators", "inpaint IMG --mask me/mask.png --method eed --out rece/"),
    ("codec", "compress IMG --bpp 0.2 --layers inpainting --out photo2.pdc")]


def make_inputs(work, colour: bool) -> None:
    img = datasets.builtin_image("skimage/astronaut", grey=not colour).float()
    img = torch.nn.functional.interpolate(img[None], size=(512, 512), mode="area")[0]   # it is 512 x 512 today
    (work / "photos").mkdir(parents=True, exist_ok=True)
    holes = torch.zeros(512, 512)
    i = torch.arange(40, 472)
    for k in range(3):
        holes[i, (60 + 150 * k + i // 3).clamp(max=511)] = 1
    for name, x in (("photo.png", img), ("photos/photo.png", img), ("scratches.png", holes)):
        io.write_image(work / name, x, overwrite=True)


def cpu_seconds(argv: list, work, log) -> tuple[float, int]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PDEFLOW_CACHE": str(work / "cache"), "PDEFLOW_CACHE_DIR": str(work / "cache")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, "-m", "pdeflow", *argv], cwd=work, env=env, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="WORD", help="the commands containing a WORD (and those they read)")
    ap.add_argument("--photos", nargs="+", choices=("grey", "colour"), default=["grey", "colour"])
    ap.add_argument("--smoke", action="store_true", help="`pdeflow samples` alone, grey")
    add_output_args(ap, "readme_commands", what="readme_commands.md, the inputs, each command's output and log")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    chosen = [c for c in COMMANDS if not args.only or any(w in c[1] for w in args.only)]
    reads = " ".join(c.split("--out")[0] for _, c in chosen)        # a mask, a .pdc file
    commands = [("README", "samples")] if args.smoke else [
        c for c in COMMANDS if c in chosen or c[1].split("--out ")[-1] in reads]
    cells = {c: {} for c in commands}
    for photo in ["grey"] if args.smoke else args.photos:
        make_inputs(out / photo, photo == "colour")
        for k, (page, command) in enumerate(commands):
            if photo == "colour" and command.split()[0] in ("samples", "demo", "models", "evaluate"):
                continue        # no photo: once
            grey = photo == "colour" and ("both" in command or "learned" in command)
            argv_k = command.replace("IMG", "photo.png").replace("DIR", "photos/").split() + ["--grey"] * grey
            cpu, rc = cpu_seconds(argv_k, out / photo, out / photo / f"log{k:02d}.txt")
            cells[page, command][photo] = (f"{cpu:.1f}" if rc == 0 else f"exit {rc}") + " (`--grey`)" * grey
            print(photo, page, command, cells[page, command][photo], flush=True)
    rows = [f"| `{c.split(' --out')[0].replace('IMG', 'photo.png').replace('DIR', 'photos/')}` | {page} | "
            f"{v.get('grey', '')} | {v.get('colour', '')} |" for (page, c), v in cells.items()]
    write_text(out / "readme_commands.md", "| command | page | grey | colour |\n|---|---|---|---|\n"
               + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
