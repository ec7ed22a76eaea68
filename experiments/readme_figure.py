"""The README's figure: the three pillars on one 128 x 128 crop of the camera image, in one row.

    python experiments/readme_figure.py [--out DIR]

Panels: the input; the exact TV flow at t = 0.1 (``pdeflow.tv.tv_flow``) and the shipped
TVflowNET at the same time (``pdeflow.tvflownet.flow``, its PSNR against the exact flow); one
spectral TV band (``pdeflow.tv.spectral_tv``); ten heat inverse evolution layers applied to the
image (``pdeflow.iel``; in training they act on a network's logits); the shipped mask network's 10 % mask (``pdeflow.inpaint.learned_mask``) and
the diffusion inpainting from it (``pdeflow.inpaint.diffuse``, its PSNR). Writes ``readme.png``
(a paletted PNG of about 100 KB) into ``--out``; the README shows ``docs/_static/readme.png``,
a copy of it.

Historical. It drew the README's figure; rerun by hand when the figure changes (a learned mask and flows take
longer than a smoke run). Its results are kept for the record; it is not expected to run against today's API.
It still imported and parsed its options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import io

import torch
from PIL import Image

from _results import add_output_args, open_out, write_file  # experiments/_results.py
from pdeflow import datasets, viz
from pdeflow.iel import InverseEvolution
from pdeflow.inpaint import diffuse, learned_mask
from pdeflow.metrics import psnr
from pdeflow.tv import spectral_tv, tv_flow
from pdeflow.tvflownet import flow as net_flow


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_output_args(ap, "readme_figure", what="readme.png")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    f = datasets.builtin_image("skimage/camera")[:, 40:168, 200:328]        # (1, 128, 128) in [0, 1]
    t = 0.1
    exact = tv_flow(f, [t])[0]
    net = net_flow(f, [t])[0]
    s = spectral_tv(f, dt=0.005, n_steps=40)
    band = s.filter([0.02, 0.08, 0.205])[0]
    sharpened = InverseEvolution("heat", dt=0.025, steps=10, boundary="neumann")(f[None])[0]
    m = learned_mask(f[None], 0.1)
    u = diffuse(f[None], m)[0]

    def signed(b):
        return (0.5 + b / (2 * b.abs().max())).clamp(0, 1)

    panels = [(f, "input"),
              (exact.clamp(0, 1), f"TV flow, t = {t:g}"),
              (net.clamp(0, 1), f"TVflowNET, t = {t:g}\nPSNR {float(psnr(net, exact)):.1f} dB vs exact"),
              (signed(band), "spectral TV band\nt in [0.02, 0.08)"),
              (sharpened.clamp(0, 1), "10 heat IELs: they amplify\nwhat diffusion smooths"),
              (m[0], "learned 10 % mask"),
              (u.clamp(0, 1), f"diffusion inpainting\nPSNR {float(psnr(u, f)):.1f} dB")]
    fig = viz.figure(2.0 * len(panels), 2.55)
    viz.image_grid(fig, panels, len(panels))
    for ax in fig.axes:
        ax.title.set_fontsize(8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE)
    png = io.BytesIO()
    img.save(png, format="PNG", optimize=True)
    write_file(out / "readme.png", png.getvalue())
    print(f"readme.png: {img.size[0]} x {img.size[1]} px, {len(png.getvalue()) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
