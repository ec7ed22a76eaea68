"""The time ``pdeflow flow`` and ``pdeflow spectral`` estimate before they start, against the CPU time the work
then takes.

Maintained.  For each case: the image as the commands read it (a PNG in [0, 1], grey or colour), the steps and
the estimate the command prints (:func:`pdeflow.tv.steps.estimate_seconds`: the iteration rule times the values
times a calibration of a few ms, whose own CPU time is reported too), then the flow or decomposition itself
(``tv_flow`` / ``spectral_tv`` with the command's defaults), timed with ``time.process_time`` on one thread.

``--fit`` instead recounts the iterations the rule :data:`pdeflow.tv.steps.ITER_SCALE` was fitted to (flows and
decompositions of three grey photographs, area-downsampled to 64-256 pixels a side) and fits it again by least
squares on the log of each run's total, printing the constants and each run's estimate / count; then the
iterations of two colour photographs against their grey versions, for ``ITER_CHANNEL_POWER``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/eta_estimate.py --fit          # the rule's constants (about 2 CPU min)
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

from _results import add_output_args, open_out, timed  # benchmarks/_results.py
from pdeflow import datasets
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
    """An image file, or a built-in image by name (``skimage/camera``), as (C, H, W) in [0, 1]."""
    if path in datasets.builtin_names():
        return datasets.builtin_image(path).float()
    a = iio.imread(path).astype(np.float32) / 255.0
    x = torch.from_numpy(a)
    return x[None] if x.dim() == 2 else x[..., :3].permute(2, 0, 1).contiguous()


#: The runs of ``--fit``: (name, options of tv_flow, or of spectral_tv with "spec").
FIT_RUNS = [("readme", dict(times=[0.1, 0.5, 2.0])), ("acc4e-3", dict(times=[0.1, 0.5, 2.0], accuracy=4e-3)),
            ("t0.5", dict(times=[0.5])), ("dt0.1", dict(times=[0.1, 0.5, 2.0], dt=0.1)),
            ("spec", dict(spec=(0.04, 50))), ("spec1e-2", dict(spec=(0.04, 50), accuracy=1e-2)),
            ("spec.1x20", dict(spec=(0.1, 20)))]


def _photo(name: str, n: int, grey: bool) -> torch.Tensor:
    import skimage.data
    import skimage.transform

    a = getattr(skimage.data, name)().astype(np.float64) / 255
    a = a[..., :3].mean(-1) if a.ndim == 3 and grey else a[..., :3] if a.ndim == 3 else a
    a = skimage.transform.resize(a, (n, n) + a.shape[2:], anti_aliasing=True)
    x = torch.tensor(a, dtype=torch.float32)
    return x.permute(2, 0, 1).contiguous() if x.dim() == 3 else x[None]


def fit() -> None:
    from scipy.optimize import least_squares

    import pdeflow.tv.flow as flow_module

    counts, real = [], flow_module.solve_auto

    def counting(*args, **kwargs):
        r, short = real(*args, **kwargs)
        counts.append(int(r.iterations.max()))
        return r, short

    flow_module.solve_auto = counting

    def run(x, o):
        R = float(x.max() - x.min())
        counts.clear()
        if "spec" in o:
            plan = spectral_steps(*o["spec"], accuracy=o.get("accuracy"), data_range=R)
            spectral_tv(x, dt=o["spec"][0], n_steps=o["spec"][1], accuracy=o.get("accuracy"))
        else:
            plan = flow_steps(o["times"], dt=o.get("dt"), accuracy=o.get("accuracy"), data_range=R)
            tv_flow(x, o["times"], dt=o.get("dt"), accuracy=o.get("accuracy"))
        return plan, R, sum(counts)

    runs = []       # grey: the rule's four constants
    for name, n in [("camera", 64), ("camera", 128), ("camera", 256), ("astronaut", 128), ("coffee", 128)]:
        x = _photo(name, n, True)
        for label, o in FIT_RUNS:
            runs.append((f"{name} {n} {label}", *run(x, o), n * n))

    def model(c, plan, R, pixels):
        a = plan.solver_accuracy / plan.n_steps * R
        return sum(np.exp(c[0]) * (h / a) ** c[1] * pixels ** c[2] * (t / h) ** -c[3] for h, t in plan.sizes())

    c = least_squares(lambda c: [np.log(model(c, r[1], r[2], r[4]) / r[3]) for r in runs], [0.0, 0.7, 0.2, 0.0]).x
    print(f"ITER_SCALE {np.exp(c[0]):.3g}, ITER_POWER {c[1]:.3g}, ITER_SIZE_POWER {c[2]:.3g}, "
          f"ITER_LATER_POWER {c[3]:.3g}")
    for name, plan, R, k, pixels in runs:
        print(f"{name}: {k} iterations, estimate / count {model(c, plan, R, pixels) / k:.2f}")
    ratios = []     # colour (coupled channels) against grey: the channel power
    for name in ("astronaut", "coffee"):
        for n in (128, 256):
            for label, o in FIT_RUNS[:1] + FIT_RUNS[4:5]:
                grey, colour = run(_photo(name, n, True), o)[2], run(_photo(name, n, False), o)[2]
                ratios.append(colour / grey)
                print(f"{name} {n} {label}: colour / grey iterations {colour / grey:.2f}")
    print(f"ITER_CHANNEL_POWER {-np.mean(np.log(ratios)) / np.log(3):.3g}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("--smoke", action="store_true", help="64 x 64 crops of the built-in camera image only")
    ap.add_argument("--fit", action="store_true", help="refit the iteration rule (see above)")
    add_output_args(ap, "eta_estimate", what="log.txt: the table")
    a = ap.parse_args(argv)
    open_out(a, argv)
    torch.set_num_threads(1)
    if a.smoke and not a.images:
        a.images = ["skimage/camera"]
    if a.fit:
        return fit()
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
            est, cal = timed(lambda: estimate_seconds(plan, x))
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
