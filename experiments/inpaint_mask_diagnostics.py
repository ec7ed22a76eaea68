"""Where does a mask-stage run put its pixels? (the README's "What the mask stage does on this CPU")

    python experiments/inpaint_mask_diagnostics.py RUN_DIR [last.pt|best.pt]

Loads the mask network of a `pdeflow train inpainting --stage mask` run and reports, on the run's
own fixed validation crops: the density; the share of mask pixels that are still those of the
random start [r < D]; the overlap of the masks of two different images (input dependence); the
share on the 2-pixel image border against that border's share of the area; and the mean
horizontal gradient magnitude at mask pixels against the image mean (do the masks sit on edges?).

Historical. It diagnosed where a mask-stage run puts its pixels. Its results are kept for the record; it is
not expected to run against today's API. It still imported and parsed its options against today's API when it
was marked.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow import ops
from pdeflow.inpaint.training.wgan import TrainConfig, build_networks, open_data, validation_set
from pdeflow.training import load_checkpoint, load_config


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("checkpoint", nargs="?", default="last.pt")
    add_output_args(p, "inpaint_mask_diagnostics", what="log.txt")
    a = p.parse_args(argv)
    open_out(a, argv)
    cfg = load_config(TrainConfig, a.run_dir / "config.json")
    if cfg.stage != "mask":
        p.error(f"argument run_dir: {a.run_dir} is not a stage 'mask' run")
    d = cfg.density
    net = build_networks(cfg).mask_net
    ckpt = load_checkpoint(a.run_dir / a.checkpoint)
    net.load_state_dict(ckpt["models"]["mask"])
    net.eval()
    val = validation_set(cfg, open_data(cfg)[1])
    with torch.no_grad():
        b = net(val["f"], val["r"])
    start = (val["r"][:, :1] < d).float()
    border = torch.ones_like(b[:1])
    border[..., 2:-2, 2:-2] = 0
    fx = ops.grad(val["f"])[:, :, 1].abs().mean(1, keepdim=True)     # |forward difference along W|
    n = b.sum().clamp(min=1)
    print(f"{a.run_dir} {a.checkpoint} (step {ckpt['step']}): density {float(b.mean()):.4f} (target {d:g})")
    print(f"  share of mask pixels still the random start's: {float((b * start).sum() / n):.3f}")
    overlap = (b[0] * b[1]).sum() / b[0].sum().clamp(min=1)
    print(f"  overlap of the masks of validation images 0 and 1: {float(overlap):.3f}")
    print(f"  share on the 2-pixel border: {float((b * border).sum() / n):.3f} "
          f"(border area {float(border.mean()):.3f})")
    print(f"  mean |f_x| at mask pixels {float((fx * b).sum() / n):.4f}, over the image {float(fx.mean()):.4f}")


if __name__ == "__main__":
    main()
