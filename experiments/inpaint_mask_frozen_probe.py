"""Train only a mask network against a FROZEN inpainting generator and watch the validation MAE.

    python experiments/inpaint_mask_frozen_probe.py WGAN_RUN_DIR [--exact-density] [--beta 1]
        [--prior-scale 10] [--lr 1e-3] [--steps 250]

The README's "What the mask stage does on this CPU": with Peter's (2022) loss (rounding + density
loss, beta 1) the mask network hardly moves ("net std": the spread of its output around the
random-start prior); with beta 20 the density runs away; with --exact-density it moves and the
validation MAE rises. Density 5 %, 64x64 crops, batch 16, one thread.

Historical. A probe of mask training against a frozen generator, answered. Its results are kept for the
record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow.inpaint.learned import maskgan as masknet
from pdeflow.inpaint.learned.wgan import composite
from pdeflow.inpaint.training.wgan import TrainConfig, build_networks, open_data, sample_batch, validate, validation_set
from pdeflow.training import load_checkpoint, step_generator


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wgan_run", type=Path)
    p.add_argument("--exact-density", action="store_true")
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--prior-scale", type=float, default=masknet.PRIOR_SCALE)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=250)
    add_output_args(p, "inpaint_mask_frozen_probe", what="log.txt")
    a = p.parse_args(argv)
    open_out(a, argv)
    torch.set_num_threads(1)
    masknet.PRIOR_SCALE = a.prior_scale            # read by MaskGenerator.logits at call time
    d = 0.05
    cfg = TrainConfig(stage="mask", density=d, width=0.25, batch_size=16, crop=64, exact_density=a.exact_density)
    train_images, val_images = open_data(cfg)
    val = validation_set(cfg, val_images)
    pair = build_networks(cfg)                        # the mask stage's two parts, as the trainer builds them
    gen, net = pair.inpainter, pair.mask_net
    gen.load_state_dict(load_checkpoint(a.wgan_run / "best.pt")["models"]["gen"])
    gen.requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    cpu = torch.device("cpu")

    def report(step: int, t0: float) -> None:
        v = validate(cfg, gen, net, val, cpu)
        with torch.no_grad():
            spread = (net.logits(val["f"], val["r"]) - a.prior_scale * (d - val["r"][:, :1])).std()
        print(f"step {step:4d} ({time.time() - t0:4.0f} s): val density {v['val_density']:.4f}, MAE "
              f"{v['val_mae']:.4f}, SSIM {v['val_ssim']:.3f}, net std {float(spread):.2e}", flush=True)

    t0 = time.time()
    report(0, t0)
    for step in range(a.steps):
        g = step_generator(1234, step)
        f, _ = sample_batch(cfg, train_images, g)
        b = net(f, generator=g)
        u = composite(gen(f, b, torch.randn(f.shape, generator=g) * cfg.noise_std), f, b)
        loss = masknet.density_loss(b, d) + a.beta * (u - f).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            report(step + 1, t0)


if __name__ == "__main__":
    main()
