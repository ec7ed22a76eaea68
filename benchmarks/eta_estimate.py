"""The time ``pdeflow flow`` and ``pdeflow spectral`` estimate before they start, against the CPU time the work
then takes.

Maintained.  For each case: the image as the commands read it (a PNG in [0, 1], grey or colour), the steps and
the estimate the command prints (:func:`pdeflow.tv.steps.estimate_seconds`: the iteration rule times the values
times a calibration of a few ms, whose own CPU time is reported too), then the flow or decomposition itself
(``tv_flow`` / ``spectral_tv`` with the command's defaults), timed with ``time.process_time`` on one thread.

Usage::

    python -c "import skimage.data, imageio.v3 as iio; iio.imwrite('photo.png', skimage.data.camera())"
    python -c "import skimage.data, imageio.v3 as iio; iio.imwrite('colour.png', skimage.data.astronaut())"
    OMP_NUM_THREADS=1 python benchmarks/eta_estimate.py photo.png colour.png
"""
from __future__ import annotations

import argparse
import time

import imageio.v3 as iio
import numpy as np
import torch

from pdeflow.tv import SPECTRAL_ACCURACY, spectral_steps, spectral_tv, tv_flow
from pdeflow.tv.steps import estimate_seconds, flow_steps

#: (label, grey, crop size or None, kind, options): the README's commands, then other sizes and settings.
CASES = [
    ("flow --times 0.1 0.5 2", "flow", None, dict(times=[0.1, 0.5, 2.0])),
    ("spectral --dt 0.04 --steps 50", "spectral", None, dict(dt=0.04, n_steps=50)),
    ("flow --times 0.1 0.5 2, 256 crop", "flow", 256, dict(times=[0.1, 0.5, 2.0])),
    ("flow --times 0.5 --dt 0.05, 256 crop", "flow", 256, dict(times=[0.5], dt=0.05)),
    ("spectral --accuracy 0.01, 256 crop", "spectral", 256, dict(dt=0.04, n_steps=50, accuracy=1e-2)),
]


def load(path: str) -> torch.Tensor:
    a = iio.imread(path).astype(np.float32) / 255.0
    x = torch.from_numpy(a)
    return x[None] if x.dim() == 2 else x[..., :3].permute(2, 0, 1).contiguous()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--smoke", action="store_true", help="64 x 64 crops only")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| image | command | steps | estimate (s) | calibration (CPU s) | actual (CPU s) | estimate / actual |")
    print("|---|---|---|---|---|---|---|")
    for path in a.images:
        full = load(path)
        for label, kind, crop, o in CASES:
            if a.smoke:
                crop = 64
            x = full
            if crop is not None:
                h0, w0 = (full.shape[-2] - crop) // 2, (full.shape[-1] - crop) // 2
                x = full[:, h0:h0 + crop, w0:w0 + crop].contiguous()
            rng = float(x.max() - x.min())
            if kind == "flow":
                plan = flow_steps(o["times"], dt=o.get("dt"), data_range=rng)
            else:
                plan = spectral_steps(o["dt"], o["n_steps"], accuracy=o.get("accuracy", SPECTRAL_ACCURACY),
                                      data_range=rng)
            c0 = time.process_time()
            est = estimate_seconds(plan, x)
            cal = time.process_time() - c0
            t0 = time.process_time()
            if kind == "flow":
                tv_flow(x, o["times"], dt=o.get("dt"))
            else:
                spectral_tv(x, dt=o["dt"], n_steps=o["n_steps"], accuracy=o.get("accuracy"))
            secs = time.process_time() - t0
            name = f"{path} ({'grey' if x.shape[0] == 1 else 'colour'} {x.shape[-2]}x{x.shape[-1]})"
            print(f"| {name} | `{label}` | {plan.n_steps} | {est:.1f} | {cal:.3f} | {secs:.1f} | {est / secs:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
