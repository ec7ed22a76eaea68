"""Table 9 of the TVflowNET evaluation (:mod:`pdeflow.evaluate.tvflownet`): the inference time of each
model beside the reference solver's, the one table that measures cost rather than accuracy."""
from __future__ import annotations

import time
from typing import Mapping

import numpy as np
import torch

from ..progress import progress_bar
from ._tvflownet_inputs import Model, model_device, model_dtype, natural_images, scaled
from .tvflownet_paper import PAPER_SCALE, paper_times
from .tvflownet_reference import grid_indices, reference_solve


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, repeats: int, device) -> float:
    fn()  # warm-up
    _sync(device)
    ts = []
    for _ in range(max(1, int(repeats))):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def evaluate_timing(models: Mapping[str, Model], *, sizes=(96, 256), times=None, scale: float = PAPER_SCALE,
                    seed: int = 0, image_dir=None, devices=None, repeats: int = 5, ref_kwargs=None,
                    reference: bool = True, progress: bool = False) -> dict:
    """Table 9: inference time of each model and of the reference solver, one image.

    For each size and device: the model at a single time (``t = times[-1]``) and
    at all times (one batch), median of ``repeats`` runs after a warm-up, no
    gradients; the reference implicit TV flow (same ``dt``/``tol`` as the
    evaluation, no cache) to the single time and to all times, one run each.
    ``devices`` default: ``["cpu"]`` plus ``"cuda"`` when available.

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import evaluate_timing
    >>> out = evaluate_timing({"semiresnet": load("semiresnet")}, sizes=(16,), times=[0.0, 0.1], devices=["cpu"],
    ...                       repeats=1, ref_kwargs={"dt": 0.1, "tol": 1e-4})
    >>> sorted(out["models"]["semiresnet"]["cpu"][16]), sorted(out["reference"]["cpu"][16])   # seconds
    (['all', 'single'], ['all', 'single'])
    """
    times = paper_times() if times is None else [float(t) for t in times]
    ref_kwargs = dict(ref_kwargs or {})
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    dt = float(ref_kwargs.get("dt", 0.01))
    tol = float(ref_kwargs.get("tol", 1e-5))
    solver = ref_kwargs.get("solver", "fgp")
    max_iter = int(ref_kwargs.get("max_iter", 20000))
    out = {"sizes": [int(s) for s in sizes], "devices": [str(d) for d in devices], "n_times": len(times),
           "models": {name: {} for name in models}, "reference": {}, "repeats": int(repeats),
           "threads": torch.get_num_threads()}
    total = len(sizes) * len(devices) * (len(models) + (1 if reference else 0))
    with progress_bar(total=total, enabled=progress, desc="table 9") as bar:
        for dev in devices:
            dev = str(dev)
            for size in sizes:
                x = scaled(natural_images(size, 1, seed=seed, image_dir=image_dir), scale)
                for name, model in models.items():
                    home = model_device(model)
                    m = model.to(dev) if hasattr(model, "to") else model
                    dtype = model_dtype(m)
                    x1 = x.to(device=dev, dtype=dtype)
                    xs = x1.expand(len(times), -1, -1, -1)
                    t1 = torch.tensor([times[-1]], dtype=dtype, device=dev)
                    ta = torch.tensor(times, dtype=dtype, device=dev)
                    with torch.no_grad():
                        single = _median_time(lambda: m(x1, t1), repeats, dev)
                        every = _median_time(lambda: m(xs, ta), repeats, dev)
                    out["models"][name].setdefault(dev, {})[int(size)] = {"single": single, "all": every}
                    if hasattr(model, "to") and home is not None:
                        model.to(home)
                    bar.update(1)
                if reference:
                    xr = x.to(device=dev, dtype=torch.float64)
                    res = {}
                    for key, tsel in (("single", [times[-1]]), ("all", times)):
                        idx = grid_indices(tsel, dt)
                        _sync(dev)
                        t0 = time.perf_counter()
                        reference_solve(xr, idx, dt, tol, solver, max_iter)
                        _sync(dev)
                        res[key] = time.perf_counter() - t0
                    out["reference"].setdefault(dev, {})[int(size)] = res
                    bar.update(1)
    return out
