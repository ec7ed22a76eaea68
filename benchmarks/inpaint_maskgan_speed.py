#!/usr/bin/env python
"""Seconds per mask: the mask GAN against probabilistic sparsification (PS), side by side.

Peter (2022)'s Table 4: one 128x128 image at a time on one CPU core, PS (p = q = 0.02, MAE, diffusion
solved by CG to relative residual 1e-6) against one forward pass of the mask generator. Here both
run in the same process with the same thread count (``--threads``, default 1), on centre crops of
the built-in TEST photos, for each density; PS once per image, the mask GAN ``--repeats`` times
per image after a warm-up call (median kept). Wall-clock and CPU seconds (``time.process_time``)
are both recorded; on a machine shared with other jobs the CPU time is the steadier one. The ratio
PS / mask GAN is printed per density, for both.

The mask network's run time does not depend on its weights: without a shipped model for a density
(``pdeflow.inpaint.gan.MASK_MODELS``) the benchmark times an untrained network of the same
architecture at each ``--widths`` (the published size is width 1) and says so.

    python benchmarks/inpaint_maskgan_speed.py                       # 128x128, 5/10/20 %, 2 images
    python benchmarks/inpaint_maskgan_speed.py --size 64 --images 1  # quicker

Results are printed and written to ``inpaint_maskgan_speed.md`` in ``--out`` (default a fresh folder under
runs/benchmarks/; the committed one: ``--out benchmarks/results --overwrite``).

Historical. It timed the mask GAN against PS when the GAN was added. Its results are kept for the record; it
is not expected to run against today's API. It still imported and parsed its options against today's API when
it was marked.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_text  # benchmarks/_results.py
from pdeflow import datasets
from pdeflow.inpaint import probabilistic_sparsification
from pdeflow.inpaint.learned.gan import gan_mask, load_mask_model
from pdeflow.inpaint.learned.maskgan import MaskGAN

HERE = Path(__file__).resolve().parent


def crops(n: int, size: int) -> list[torch.Tensor]:
    """Centre crops ``(1, 1, size, size)`` of the first ``n`` TEST photos (reflect-padded if small)."""
    pool = datasets.builtin_pool("test", grey=True, kind="photo")
    out = []
    for name in list(pool)[:n]:
        img = pool[name]
        H, W = img.shape[-2:]
        if H < size or W < size:
            img = torch.nn.functional.pad(img[None], (0, max(0, size - W), 0, max(0, size - H)), mode="reflect")[0]
            H, W = img.shape[-2:]
        top, left = (H - size) // 2, (W - size) // 2
        out.append(img[None, :, top:top + size, left:left + size].contiguous())
    return out


def time_gan(model: MaskGAN, f: torch.Tensor, density: float, repeats: int) -> tuple[float, float, float]:
    """Median wall and CPU seconds of one mask, and the density of the last mask."""
    gan_mask(f, density, model, generator=0)                       # warm-up (allocations, kernels)
    walls, cpus, dens = [], [], 0.0
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        b = gan_mask(f, density, model, generator=r)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        dens = float(b.mean())
    return statistics.median(walls), statistics.median(cpus), dens


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--widths", type=float, nargs="+", default=[0.25, 1.0],
                    help="widths of untrained networks timed where no model is shipped (default 0.25 1)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    add_output_args(ap, "inpaint_maskgan_speed", what="inpaint_maskgan_speed.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(args.threads)
    images = crops(args.images, args.size)

    rows = []
    for d in args.densities:
        try:
            models = {"shipped": load_mask_model(d)}
        except (FileNotFoundError, ValueError):
            torch.manual_seed(0)
            models = {f"untrained, width {w:g}": MaskGAN(1, w, density=d).eval() for w in args.widths}
        ps_t, ps_c, ps_d = [], [], []
        gan_t, gan_c, gan_d = ({k: [] for k in models} for _ in range(3))
        for i, f in enumerate(images):
            t0, c0 = time.perf_counter(), time.process_time()
            m = probabilistic_sparsification(f, d, metric="mae", tol=1e-6, generator=i, progress=False)
            ps_t.append(time.perf_counter() - t0)
            ps_c.append(time.process_time() - c0)
            ps_d.append(float(m.mean()))
            for k, model in models.items():
                t, c, dens = time_gan(model, f, d, args.repeats)
                gan_t[k].append(t)
                gan_c[k].append(c)
                gan_d[k].append(dens)
        ps, psc = statistics.mean(ps_t), statistics.mean(ps_c)
        for k in models:
            g, gc = statistics.mean(gan_t[k]), statistics.mean(gan_c[k])
            rows.append((d, ps, psc, k, g, gc, ps / g, psc / gc))
            print(f"density {d:g}: PS {ps:.2f} s/mask ({psc:.2f} CPU-s, density {statistics.mean(ps_d):.4f}); "
                  f"mask GAN [{k}] {g * 1e3:.1f} ms/mask ({gc * 1e3:.1f} CPU-ms); PS / mask GAN = {ps / g:.0f}x wall, "
                  f"{psc / gc:.0f}x CPU", flush=True)

    lines = [f"## Mask GAN vs PS: seconds per mask ({args.size}x{args.size}, {args.images} TEST photos, "
             f"{args.threads} thread(s))", "",
             f"`python benchmarks/inpaint_maskgan_speed.py --size {args.size} --images {args.images} "
             f"--threads {args.threads}` on {datetime.date.today()}, torch {torch.__version__}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs: "
             "wall-clock times). PS: p = q = 0.02, MAE, CG to 1e-6. Paper (Table 4, 128x128, i5-6600K core): "
             "PS 58.84 / 33.89 / 18.86 s, mask GAN 0.93 s (ratio up to ~63).", "",
             "| density | PS s/mask (wall) | PS CPU-s | mask GAN | GAN s/mask (wall) | GAN CPU-s | PS / GAN (wall) "
             "| PS / GAN (CPU) |", "|---|---|---|---|---|---|---|---|"]
    for d, ps, psc, k, g, gc, ratio, ratio_c in rows:
        lines.append(f"| {d:g} | {ps:.2f} | {psc:.2f} | {k} | {g:.4f} | {gc:.4f} | {ratio:.0f}x | {ratio_c:.0f}x |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    write_text(out / "inpaint_maskgan_speed.md", text)


if __name__ == "__main__":
    main()
