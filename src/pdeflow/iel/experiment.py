"""The noisy-label segmentation experiment of Liu et al. (2023), offline and resumable.

One run trains a :class:`~pdeflow.iel.unet.SegmentationUNet` with cross-entropy, with or
without heat-diffusion (or other) IELs after its logits, on clean or noisy
training labels, and records the validation Dice after every epoch::

    from pdeflow.iel.experiment import RunConfig, train_run
    result = train_run(RunConfig(dataset="dsb2018", noise="blocks", iel=True), "runs/iel-s0")

An experiment is a grid of such runs, each in its own run directory (a
:class:`pdeflow.training.Run`: killed runs resume from ``last.pt``, finished
ones are skipped), aggregated at the end into ``summary.json``, ``table.md``
and a PNG of the Dice curves:

* ``compare`` -- {baseline, IELs} x {clean, noisy labels} x seeds.
* ``sweep`` -- IELs on noisy labels for every ``dt`` x ``layers``, plus the
  baseline on the same noisy labels, x seeds.

What a run does
---------------
1. Data (:mod:`pdeflow.iel.datasets`); the training label maps are made
   noisy **once** (:mod:`pdeflow.iel.noise`, seeded with the run's seed, so
   every seed sees its own noise realisation and the baseline and IEL runs of
   one seed see the same one). Validation labels are always clean.
2. Seeded init (:func:`~pdeflow.training.seed_everything`); an epoch is
   ``steps_per_epoch`` steps, by default as many as it takes for the crops
   to cover the training pixels once. Each step draws ``batch_size`` random
   ``crop x crop`` crops (image and label together,
   :func:`pdeflow.datasets.random_crops`) and random flips from
   :func:`~pdeflow.training.step_generator` ``(seed, step)`` and nothing else.
3. Loss: cross-entropy of ``net(x)`` against the (noisy) labels, where ``net``
   is the U-Net or ``with_iels(unet, ...)`` in ``train()`` mode, so the IELs
   sit between logits and loss. Adam (default) or the official code's
   RMSprop (momentum 0.9, weight decay 1e-8).
4. After every epoch: validation Dice in ``eval()`` mode (the IELs are off):
   argmax of the logits, :func:`pdeflow.metrics.dice` per image with the
   background excluded, averaged over the validation images.

Time step units: ``dt`` is PDE time per layer for the unit-spacing operators
of :mod:`pdeflow.iel.layers`; the official code's "dt 0.1" (kernel
``laplacian / 4``) is ``dt = 0.025`` here, which is the default, with 30 layers.

References
----------
.. [1] C. Liu, Z. Qiao, C. Li, C.-B. Schönlieb, "Inverse evolution layers: physics-informed regularizers
       for deep neural networks", arXiv:2307.07344, 2023.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import ops, training, viz
from ..datasets import random_crops
from ..errors import UserInputError
from ..io import write_bytes
from ..metrics import dice
from ..reporting import format_mean_std
from ..training import option
from .datasets import DATASETS, SegmentationData, load_dataset
from .layers import BOUNDARIES, OPERATORS, with_iels
from .noise import NOISE_KINDS, add_label_noise
from .unet import SegmentationUNet

__all__ = ["RunConfig", "check_config", "train_run", "prepare_data", "evaluate", "boundary_ratio",
           "ExperimentSpec", "check_spec", "plan_runs", "run_experiment", "aggregate", "RESULT_FILE"]

RESULT_FILE = "result.json"


@dataclasses.dataclass
class RunConfig:
    """One training run. Saved as the run directory's ``config.json``.

    Fields declared with :func:`pdeflow.training.option` are options of ``pdeflow iel-experiment`` (help,
    type and choices in their metadata); ``iel``, ``seed``, ``dt`` and ``layers`` are set per run by
    :func:`plan_runs` (the command line's ``--dt`` and ``--layers`` are :class:`ExperimentSpec`'s axes).

    Examples
    --------
    >>> from pdeflow.iel.experiment import RunConfig, check_config
    >>> cfg = RunConfig(dataset="synthetic", width=4, depth=2, crop=16, epochs=1, steps_per_epoch=1)
    >>> check_config(cfg)
    >>> cfg.operator, cfg.dt, cfg.layers
    ('heat', 0.025, 30)
    """
    dataset: str = option("dsb2018", "(default {default})", choices=DATASETS)
    data_path: str | None = option(None, "mricron: folder with ch2.nii.gz and ch2bet.nii.gz (default: "
                                         ".data/mricron-data from `make data`, then /usr/share/mricron/templates)",
                                   metavar="DIR")
    # none | blocks | windows (training labels only); the command line sets the noisy-label setting
    noise: str = option("none", "noisy-label setting: grid blocks replaced with probability 1-keep (official code) "
                                "or random windows covering --noise-area (paper text) (default {default})",
                        choices=NOISE_KINDS[1:])
    noise_size: int = option(3, "block / window side in pixels (default {default})", type="positive_int",
                             metavar="S")
    noise_keep: float = option(0.8, "blocks: probability that a block is untouched (default {default:g})",
                               type="fraction", metavar="P")
    noise_area: float = option(0.1, "windows: fraction of the image covered (default {default:g})",
                               type="fraction", metavar="A")
    iel: bool = False
    operator: str = option("heat", "(default {default})", choices=tuple(OPERATORS))
    operator_param: float | None = option(None, "heat: scale of the Laplacian (1); tv: eps (0.1); perona-malik: "
                                                "kappa (1)", type="positive_float", metavar="X")
    dt: float = 0.025                     # PDE time per layer (official "0.1" with laplacian/4)
    layers: int = 30
    boundary: str = option("zero", "zero padding (official code) or Neumann (default {default})",
                           choices=BOUNDARIES)
    width: int = option(16, "U-Net first-level channels (paper 64)", type="positive_int")
    depth: int = option(5, "U-Net levels (paper 5)", type="positive_int")
    crop: int = option(128, "training crop side, a multiple of 2**(depth-1)", type="positive_int")
    batch_size: int = option(8, type="positive_int")
    epochs: int = option(40, type="positive_int")
    # None: cover the training pixels once per epoch
    steps_per_epoch: int | None = option(None, "steps between validations (small preset: enough crops to cover "
                                               "the training pixels)", type="positive_int")
    optimizer: str = option("adam", "Adam or the official code's RMSprop (momentum 0.9) (default {default})",
                            choices=("adam", "rmsprop"))
    lr: float = option(1e-3, "learning rate (default {default:g})", type="positive_float")
    seed: int = 0
    deterministic: bool = option(False, "deterministic torch algorithms", flag=True)


def check_config(cfg: RunConfig) -> None:
    """Raise ValueError naming the first bad field of ``cfg``.

    Examples
    --------
    >>> from pdeflow.iel.experiment import RunConfig, check_config
    >>> check_config(RunConfig(dataset="synthetic"))
    >>> try:
    ...     check_config(RunConfig(dataset="synthetic", epochs=0))
    ... except ValueError as err:
    ...     print("rejected")
    rejected
    """
    def bad(name, what):
        raise UserInputError(f"RunConfig: {name} must be {what}, got {getattr(cfg, name)!r}")

    if cfg.dataset not in DATASETS:
        bad("dataset", f"one of {DATASETS}")
    if cfg.noise not in NOISE_KINDS:
        bad("noise", f"one of {NOISE_KINDS}")
    if cfg.operator not in OPERATORS:
        bad("operator", f"one of {tuple(OPERATORS)}")
    if cfg.boundary not in BOUNDARIES:
        bad("boundary", f"one of {BOUNDARIES}")
    if cfg.optimizer not in ("adam", "rmsprop"):
        bad("optimizer", "'adam' or 'rmsprop'")
    for name in ("noise_size", "layers", "width", "batch_size", "epochs"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            bad(name, "an int >= 1")
    if not isinstance(cfg.depth, int) or cfg.depth < 2:
        bad("depth", "an int >= 2")
    m = 2 ** (cfg.depth - 1)
    if not isinstance(cfg.crop, int) or cfg.crop < m or cfg.crop % m:
        bad("crop", f"a positive multiple of {m} (2**(depth-1))")
    if cfg.steps_per_epoch is not None and (not isinstance(cfg.steps_per_epoch, int) or cfg.steps_per_epoch < 1):
        bad("steps_per_epoch", "None or an int >= 1")
    for name in ("dt", "lr"):
        v = getattr(cfg, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            bad(name, "a finite number > 0")
    if not 0.0 <= cfg.noise_keep <= 1.0:
        bad("noise_keep", "a probability in [0, 1]")
    if not 0.0 <= cfg.noise_area <= 1.0:
        bad("noise_area", "a fraction in [0, 1]")
    if cfg.operator_param is not None and not (math.isfinite(cfg.operator_param) and cfg.operator_param > 0):
        bad("operator_param", "None or a finite number > 0")
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        bad("seed", "an int >= 0")


def prepare_data(cfg: RunConfig, data: SegmentationData | None = None) -> tuple[SegmentationData, float]:
    """The run's data with its training labels made noisy; also the fraction of changed pixels.

    Examples
    --------
    >>> from pdeflow.iel.datasets import synthetic_blobs
    >>> from pdeflow.iel.experiment import RunConfig, prepare_data
    >>> cfg = RunConfig(dataset="synthetic", noise="blocks", noise_keep=0.5)
    >>> data, changed = prepare_data(cfg, synthetic_blobs(2, 2, 16))
    >>> len(data.train_labels), 0.0 < changed < 1.0
    (2, True)
    """
    if data is None:
        data = load_dataset(cfg.dataset, cfg.data_path)
    g = training.step_generator(cfg.seed, 0, stream=3)    # the noise of this seed, nothing else
    noisy, changed, total = [], 0, 0
    for lab in data.train_labels:
        n = add_label_noise(lab, data.num_classes, cfg.noise, size=cfg.noise_size, keep=cfg.noise_keep,
                            area=cfg.noise_area, generator=g)
        changed += int((n != lab).sum())
        total += lab.numel()
        noisy.append(n)
    return dataclasses.replace(data, train_labels=noisy), changed / max(total, 1)


def _build(cfg: RunConfig, num_classes: int, in_channels: int):
    unet = SegmentationUNet(in_channels, num_classes, width=cfg.width, depth=cfg.depth)
    if not cfg.iel:
        return unet, unet
    from .layers import make_operator
    op = make_operator(cfg.operator, cfg.operator_param)
    return unet, with_iels(unet, op, dt=cfg.dt, steps=cfg.layers, boundary=cfg.boundary)


def _batch(data: SegmentationData, cfg: RunConfig, step: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's crops and flips, from ``step_generator(seed, step)`` only."""
    g = training.step_generator(cfg.seed, step)
    stacks = [torch.cat([im, lab[None].to(im.dtype)]) for im, lab in zip(data.train_images, data.train_labels)]
    crops = random_crops(stacks, cfg.batch_size, cfg.crop, generator=g)
    flips = torch.rand(cfg.batch_size, 2, generator=g) < 0.5
    for b in range(cfg.batch_size):
        dims = [d for d, f in zip((-2, -1), flips[b]) if f]
        if dims:
            crops[b] = crops[b].flip(dims)
    x, y = crops[:, :-1], crops[:, -1].round().long()
    return x.to(device), y.to(device)


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
             batch_size: int = 4) -> torch.Tensor:
    """Per-image Dice (background excluded) of ``argmax model(images)`` in eval mode, shape ``(N,)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel.experiment import evaluate
    >>> labels = torch.zeros(2, 8, 8, dtype=torch.int64)
    >>> labels[:, 2:6, 2:6] = 1
    >>> class Oracle(torch.nn.Module):  # logits that pick the true class of every pixel
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = torch.nn.Parameter(torch.ones(()))
    ...     def forward(self, x):
    ...         return self.scale * torch.nn.functional.one_hot(labels[: len(x)], 2).permute(0, 3, 1, 2)
    >>> evaluate(Oracle(), torch.zeros(2, 1, 8, 8), labels, 2)
    tensor([1., 1.])
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        pred = model(images[i:i + batch_size].to(device)).argmax(1)
        out.append(dice(pred, labels[i:i + batch_size].to(device), num_classes=num_classes).cpu())
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def boundary_ratio(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: int = 4) -> float:
    """Total boundary length of the predicted foreground over that of the labels, on all images.

    Lengths are the total variation (:func:`pdeflow.ops.tv`) of the binary
    foreground maps (``label > 0``), in pixels; 1 is a prediction as ragged as
    the truth, above 1 spurious specks or frayed edges (what IELs are meant
    to suppress), below 1 missed or over-smoothed objects.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import SegmentationUNet
    >>> from pdeflow.iel.experiment import boundary_ratio
    >>> _ = torch.manual_seed(0)
    >>> net = SegmentationUNet(width=4, depth=2)
    >>> labels = torch.zeros(2, 16, 16, dtype=torch.int64)
    >>> labels[:, 4:12, 4:12] = 1
    >>> boundary_ratio(net, torch.rand(2, 1, 16, 16), labels) >= 0.0
    True
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pred_len = 0.0
    for i in range(0, images.shape[0], batch_size):
        fg = (model(images[i:i + batch_size].to(device)).argmax(1) > 0).to(images.dtype)
        pred_len += float(ops.tv(fg[:, None]).sum())
    model.train(was_training)
    true_len = float(ops.tv((labels > 0).to(images.dtype)[:, None]).sum())
    return pred_len / true_len if true_len > 0 else float("nan")


def _steps_per_epoch(cfg: RunConfig, data: SegmentationData) -> int:
    if cfg.steps_per_epoch is not None:
        return cfg.steps_per_epoch
    pixels = sum(lab.numel() for lab in data.train_labels)
    return max(1, math.ceil(pixels / (cfg.crop * cfg.crop * cfg.batch_size)))


def train_run(cfg: RunConfig, run_dir, *, device="cpu", quiet: bool = True,
              data: SegmentationData | None = None) -> dict:
    """Train one run (resuming it if ``run_dir`` holds it) and return its result.

    Returns (and writes to ``run_dir/result.json``) a dict with ``config``,
    ``val_dice`` (the mean validation Dice after each epoch), ``final_dice``,
    ``best_dice`` and ``best_epoch``, ``final_dice_per_image``,
    ``label_noise_fraction`` (training pixels whose label the noise changed),
    ``steps_per_epoch`` and ``wall_time_s``. A finished run is not trained
    again: its ``result.json`` is returned. ``data`` replaces the named
    dataset (tests); its name must equal ``cfg.dataset``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.iel.datasets import synthetic_blobs
    >>> from pdeflow.iel.experiment import RESULT_FILE, RunConfig, train_run
    >>> cfg = RunConfig(dataset="synthetic", width=4, depth=2, crop=16, batch_size=2, epochs=2, steps_per_epoch=1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     result = train_run(cfg, d, data=synthetic_blobs(2, 2, 16))
    ...     print(RESULT_FILE, (Path(d) / RESULT_FILE).is_file())
    result.json True
    >>> len(result["val_dice"]), 0.0 <= result["final_dice"] <= 1.0
    (2, True)
    """
    check_config(cfg)
    run_dir = Path(run_dir)
    done = _finished(run_dir, cfg)
    if done is not None:
        return done
    if data is not None and data.name != cfg.dataset:
        raise UserInputError(f"train_run: data is {data.name!r} but cfg.dataset is {cfg.dataset!r}")
    device = torch.device(device)
    training.seed_everything(cfg.seed, deterministic=cfg.deterministic)
    data, noise_fraction = prepare_data(cfg, data)
    unet, net = _build(cfg, data.num_classes, data.train_images[0].shape[0])
    unet.to(device)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(unet.parameters(), lr=cfg.lr)
    else:
        opt = torch.optim.RMSprop(unet.parameters(), lr=cfg.lr, weight_decay=1e-8, momentum=0.9)
    spe = _steps_per_epoch(cfg, data)
    total = cfg.epochs * spe
    run = training.Run(run_dir, cfg, models={"unet": unet}, optimizers={"opt": opt}, ckpt_every=spe,
                       best_mode="max", quiet=quiet)
    start = run.resume()
    net.train()
    for step in run.steps(start, total):
        x, y = _batch(data, cfg, step, device)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.log(step, loss=loss.detach())
        if (step + 1) % spe == 0:
            d = evaluate(unet, data.val_images, data.val_labels, data.num_classes).mean()
            run.log(step, epoch=(step + 1) // spe, val_dice=d)
            run.update_best(step, d)
            net.train()
    run.finish()
    # the curve from the log (it holds the rows of earlier processes of a resumed run)
    rows = _read_log(run_dir / "log.csv")
    curve = [float(r["val_dice"]) for r in rows if r.get("val_dice") not in (None, "")]
    if len(curve) != cfg.epochs:
        raise RuntimeError(f"train_run: {run_dir}/log.csv holds {len(curve)} validation rows, "
                           f"expected {cfg.epochs}")
    per_image = evaluate(unet, data.val_images, data.val_labels, data.num_classes)
    best = int(np.argmax(curve))
    result = {
        "config": training.config_to_dict(cfg),
        "dataset": data.description,
        "val_dice": curve,
        "final_dice": curve[-1],
        "final_dice_per_image": per_image.tolist(),
        "final_boundary_ratio": boundary_ratio(unet, data.val_images, data.val_labels),
        "best_dice": curve[best],
        "best_epoch": best + 1,
        "label_noise_fraction": noise_fraction,
        "steps_per_epoch": spe,
        "wall_time_s": run.elapsed,
        "device": str(device),
        "torch": str(torch.__version__),
    }
    _write_json(run_dir / RESULT_FILE, result)
    return result


def _write_json(path: Path, obj) -> None:
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    write_bytes(path, text.encode())


def _read_log(path: Path) -> list[dict]:
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _spec_diff(saved: dict, given: dict, prefix: str = "") -> list[str]:
    """The fields in which two experiment descriptions differ, one short item each
    (``base.lr: saved 0.001, given 0.002``); nested dicts are compared field by field."""
    missing = object()
    items = []
    for key in sorted(set(saved) | set(given)):
        a, b = saved.get(key, missing), given.get(key, missing)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            items += _spec_diff(a, b, f"{prefix}{key}.")
            continue
        fmt = lambda v: "<absent>" if v is missing else json.dumps(v)  # noqa: E731
        items.append(f"{prefix}{key}: saved {fmt(a)}, given {fmt(b)}")
    return items


def _finished(run_dir: Path, cfg: RunConfig) -> dict | None:
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    res = json.loads(path.read_text())
    if res.get("config") != training.config_to_dict(cfg):
        raise training.RunConfigError(f"{path} was written by a run with a different config; "
                                      "use another directory or delete it")
    return res


# ---------------------------------------------------------------------------
# Experiments: grids of runs
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class ExperimentSpec:
    """A grid of runs. ``base`` holds everything the runs share (its ``noise`` is
    the noisy-label setting; ``iel``, ``seed``, ``dt`` and ``layers`` are set per run).

    Examples
    --------
    >>> from pdeflow.iel.experiment import ExperimentSpec, RunConfig, plan_runs
    >>> spec = ExperimentSpec(mode="compare", base=RunConfig(dataset="synthetic", noise="blocks"), seeds=(0,))
    >>> [name for name, _, _ in plan_runs(spec)]
    ['clean-baseline-s0', 'clean-iel-dt0.025-n30-s0', 'noisy-baseline-s0', 'noisy-iel-dt0.025-n30-s0']
    """
    mode: str = option("compare", "compare: {{baseline, IELs}} x {{clean, noisy}}; sweep: IELs for every --dt x "
                                  "--layers on noisy labels, plus the baseline (default {default})",
                       choices=("compare", "sweep"))
    base: RunConfig = dataclasses.field(default_factory=lambda: RunConfig(noise="blocks"))
    seeds: tuple = option((0, 1, 2), "seeds (weights, batches and the label noise) (default 0 1 2)",
                          type="nonneg_int", nargs="+", metavar="S")
    # the sweep axes (compare: exactly one value each)
    dts: tuple = option((RunConfig.dt,), "PDE time per layer (default {default[0]:g} = official 0.1 with "
                                         "laplacian/4); several values in sweep mode",
                        type="positive_float", nargs="+", metavar="DT", name="--dt")
    layers: tuple = option((RunConfig.layers,), "number of layers (default {default[0]}); several values in sweep "
                                                "mode", type="positive_int", nargs="+", metavar="N")


def check_spec(spec: ExperimentSpec) -> None:
    """Raise ValueError naming the first bad field of ``spec`` (and of its base config).

    Examples
    --------
    >>> from pdeflow.iel.experiment import ExperimentSpec, check_spec
    >>> check_spec(ExperimentSpec(seeds=(0, 1)))
    >>> try:
    ...     check_spec(ExperimentSpec(mode="neither"))
    ... except ValueError:
    ...     print("rejected")
    rejected
    """
    if spec.mode not in ("compare", "sweep"):
        raise UserInputError(f"ExperimentSpec: mode must be 'compare' or 'sweep', got {spec.mode!r}")
    if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds):
        raise UserInputError(f"ExperimentSpec: seeds must be distinct and non-empty, got {spec.seeds!r}")
    if spec.base.noise == "none":
        raise UserInputError("ExperimentSpec: base.noise must name the noisy-label setting ('blocks' or 'windows'); "
                         "clean runs are added by the compare mode")
    if spec.mode == "compare" and (len(spec.dts) != 1 or len(spec.layers) != 1):
        raise UserInputError("ExperimentSpec: the compare mode takes one dt and one layers value "
                         f"(got dts {spec.dts}, layers {spec.layers}); use mode='sweep' for several")
    for dt in spec.dts:
        if not (math.isfinite(dt) and dt > 0):
            raise UserInputError(f"ExperimentSpec: dts must be > 0, got {dt!r}")
    for n in spec.layers:
        if not isinstance(n, int) or n < 1:
            raise UserInputError(f"ExperimentSpec: layers must be ints >= 1, got {n!r}")
    check_config(spec.base)


def plan_runs(spec: ExperimentSpec) -> list[tuple[str, dict, RunConfig]]:
    """The runs of ``spec``: ``(directory name, labels, RunConfig)`` in a fixed order.

    Examples
    --------
    >>> from pdeflow.iel.experiment import ExperimentSpec, RunConfig, plan_runs
    >>> spec = ExperimentSpec(mode="sweep", base=RunConfig(noise="windows"), seeds=(0,),
    ...                       dts=(0.01, 0.025), layers=(20,))
    >>> for name, labels, cfg in plan_runs(spec):
    ...     print(name, cfg.iel, cfg.dt, cfg.layers)
    noisy-baseline-s0 False 0.025 30
    noisy-iel-dt0.01-n20-s0 True 0.01 20
    noisy-iel-dt0.025-n20-s0 True 0.025 20
    """
    check_spec(spec)
    b = spec.base
    out = []
    labels_noise = [("clean", "none"), ("noisy", b.noise)] if spec.mode == "compare" else [("noisy", b.noise)]
    iel_settings = [(dt, n) for dt in spec.dts for n in spec.layers]
    for seed in spec.seeds:
        for lab, noise in labels_noise:
            cfg = dataclasses.replace(b, noise=noise, iel=False, seed=int(seed))
            out.append((f"{lab}-baseline-s{seed}", {"labels": lab, "method": "baseline", "seed": seed}, cfg))
            for dt, n in iel_settings:
                cfg = dataclasses.replace(b, noise=noise, iel=True, dt=float(dt), layers=int(n), seed=int(seed))
                name = f"{lab}-iel-dt{dt:g}-n{n}-s{seed}"
                out.append((name, {"labels": lab, "method": "iel", "dt": dt, "layers": n, "seed": seed}, cfg))
    return out


def run_experiment(spec: ExperimentSpec, out_dir, *, device="cpu", shard: tuple[int, int] = (0, 1),
                   quiet: bool = True, data: SegmentationData | None = None, log=print) -> dict | None:
    """Train the runs of ``spec`` not finished yet (those of shard ``k`` of ``n``:
    run index ``i`` with ``i % n == k``) under ``out_dir/runs/``, then aggregate
    if every run of the grid is finished. Returns the summary, or None if runs
    are missing. Re-running the same call resumes; ``out_dir/experiment.json``
    guards against mixing two different experiments in one folder.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.iel.datasets import synthetic_blobs
    >>> from pdeflow.iel.experiment import ExperimentSpec, RunConfig, run_experiment
    >>> base = RunConfig(dataset="synthetic", noise="blocks", width=4, depth=2, crop=16, batch_size=2, epochs=1,
    ...                  steps_per_epoch=1, layers=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     summary = run_experiment(ExperimentSpec(base=base, seeds=(0,), layers=(2,)), d,
    ...                              data=synthetic_blobs(2, 2, 16), log=lambda *a: None)
    ...     print(sorted(p.name for p in Path(d).iterdir()))
    ['curves.png', 'experiment.json', 'runs', 'summary.json', 'table.md']
    >>> sorted(summary)
    ['base_config', 'dataset', 'device', 'dts', 'layers', 'mode', 'rows', 'seeds', 'torch']
    """
    runs = plan_runs(spec)
    out_dir = Path(out_dir)
    k, n = shard
    if not (isinstance(n, int) and n >= 1 and isinstance(k, int) and 0 <= k < n):
        raise UserInputError(f"run_experiment: shard must be (k, n) with 0 <= k < n, got {shard!r}")
    spec_dict = {"mode": spec.mode, "base": training.config_to_dict(spec.base), "seeds": list(spec.seeds),
                 "dts": list(spec.dts), "layers": list(spec.layers)}
    mine = [r for i, r in enumerate(runs) if i % n == k]
    todo = [r for r in mine if not (out_dir / "runs" / r[0] / RESULT_FILE).exists()]
    spec_path = out_dir / "experiment.json"
    if spec_path.exists():
        saved = json.loads(spec_path.read_text())
        if saved != spec_dict:
            raise training.RunConfigError(f"{out_dir} holds a different experiment ("
                                          + "; ".join(_spec_diff(saved, spec_dict)) + "); use another --out folder")
    if todo and data is None:     # once for all runs, and before anything is written
        data = load_dataset(spec.base.dataset, spec.base.data_path)
    if not spec_path.exists():
        _write_json(spec_path, spec_dict)
    for i, (name, _, cfg) in enumerate(mine):
        run_dir = out_dir / "runs" / name
        if (run_dir / RESULT_FILE).exists():
            continue
        t0 = time.monotonic()
        log(f"[{i + 1}/{len(mine)}] {name} ...")
        res = train_run(cfg, run_dir, device=device, quiet=quiet, data=data)
        log(f"[{i + 1}/{len(mine)}] {name}: final Dice {res['final_dice']:.4f} "
            f"(best {res['best_dice']:.4f} at epoch {res['best_epoch']}), {time.monotonic() - t0:.0f} s")
    missing = [name for name, _, _ in runs if not (out_dir / "runs" / name / RESULT_FILE).exists()]
    if missing:
        log(f"{len(missing)} of {len(runs)} runs are not finished yet; the summary is written when all are")
        return None
    return aggregate(spec, out_dir)


def _mean_std(values) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "n": int(a.size),
            "values": [float(v) for v in a]}


def aggregate(spec: ExperimentSpec, out_dir) -> dict:
    """Read every run's result and write ``summary.json``, ``table.md`` and ``curves.png``
    (compare) or ``sweep.png`` (sweep) into ``out_dir``. Returns the summary.

    Statistics over seeds: mean and sample standard deviation (ddof 1) of the
    final-epoch Dice, of the best-epoch Dice (optimistic: chosen on the
    validation set itself), and of the paired difference IEL - baseline
    (same seed, same noise realisation).

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.iel.datasets import synthetic_blobs
    >>> from pdeflow.iel.experiment import ExperimentSpec, RunConfig, aggregate, run_experiment
    >>> base = RunConfig(dataset="synthetic", noise="blocks", width=4, depth=2, crop=16, batch_size=2, epochs=1,
    ...                  steps_per_epoch=1, layers=2)
    >>> spec = ExperimentSpec(base=base, seeds=(0,), layers=(2,))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = run_experiment(spec, d, data=synthetic_blobs(2, 2, 16), log=lambda *a: None)
    ...     summary = aggregate(spec, d)  # again, from the runs' result.json files
    >>> summary["mode"], [(row["labels"], row["method"]) for row in summary["rows"]]
    ('compare', [('clean', 'baseline'), ('clean', 'iel'), ('noisy', 'baseline'), ('noisy', 'iel')])
    """
    out_dir = Path(out_dir)
    runs = plan_runs(spec)
    results = {}
    for name, lab, _ in runs:
        results[name] = (lab, json.loads((out_dir / "runs" / name / RESULT_FILE).read_text()))
    groups: dict[tuple, list] = {}
    for name, (lab, res) in results.items():
        key = (lab["labels"], lab["method"], lab.get("dt"), lab.get("layers"))
        groups.setdefault(key, []).append((lab["seed"], res))
    rows = []
    for key, items in groups.items():
        items.sort(key=lambda t: t[0])
        labels, method, dt, layers = key
        base_items = dict(groups[(labels, "baseline", None, None)])
        row = {"labels": labels, "method": method, "dt": dt, "layers": layers,
               "seeds": [s for s, _ in items],
               "final_dice": _mean_std([r["final_dice"] for _, r in items]),
               "best_dice": _mean_std([r["best_dice"] for _, r in items]),
               "curves": [r["val_dice"] for _, r in items],
               "curve_mean": np.mean([r["val_dice"] for _, r in items], axis=0).tolist(),
               "curve_std": (np.std([r["val_dice"] for _, r in items], axis=0, ddof=1).tolist()
                             if len(items) > 1 else [0.0] * len(items[0][1]["val_dice"])),
               "label_noise_fraction": _mean_std([r["label_noise_fraction"] for _, r in items]),
               "boundary_ratio": (_mean_std([r["final_boundary_ratio"] for _, r in items])
                                  if all("final_boundary_ratio" in r for _, r in items) else None),
               "wall_time_s": float(sum(r["wall_time_s"] for _, r in items))}
        if method != "baseline":
            row["final_minus_baseline"] = _mean_std([r["final_dice"] - base_items[s]["final_dice"]
                                                     for s, r in items])
        rows.append(row)
    first = next(iter(results.values()))[1]
    summary = {"mode": spec.mode, "dataset": first["dataset"], "base_config": training.config_to_dict(spec.base),
               "seeds": list(spec.seeds), "dts": list(spec.dts), "layers": list(spec.layers),
               "device": first["device"], "torch": first["torch"], "rows": rows}
    _write_json(out_dir / "summary.json", summary)
    table = _table(summary).encode()
    write_bytes(out_dir / "table.md", table)
    fig = _curves_figure(summary) if spec.mode == "compare" else _sweep_figure(summary)
    _save_figure(fig, out_dir / ("curves.png" if spec.mode == "compare" else "sweep.png"))
    return summary


def _fmt(ms: dict, signed: bool = False, digits: int = 4) -> str:
    return format_mean_std(ms["mean"], ms["std"], ms.get("n"), digits, signed=signed)


def _method_name(row: dict) -> str:
    return "baseline" if row["method"] == "baseline" else f"IELs (dt {row['dt']:g}, {row['layers']} layers)"


def _table(summary: dict) -> str:
    b = summary["base_config"]
    op = b["operator"] + (f"({b['operator_param']:g})" if b["operator_param"] is not None else "")
    noise = (f"{b['noise']} s={b['noise_size']}, " +
             (f"keep={b['noise_keep']:g}" if b["noise"] == "blocks" else f"area={b['noise_area']:g}"))
    lines = [
        f"# IEL experiment ({summary['mode']}): {b['dataset']}",
        "",
        f"Data: {summary['dataset']}.",
        f"U-Net width {b['width']}, depth {b['depth']}; {b['epochs']} epochs, crops {b['crop']}, batch "
        f"{b['batch_size']}, {b['optimizer']} lr {b['lr']:g}; IELs: {op}, boundary {b['boundary']} "
        f"(dt in PDE time per layer, unit-spacing operator); noisy labels: {noise}. "
        f"Seeds {summary['seeds']}; device {summary['device']}, torch {summary['torch']}.",
        "",
        "Validation Dice (background excluded, per image, mean over images), mean ± std over seeds "
        "(sample std). *Final*: after the last epoch. *Best*: best epoch, chosen on the validation set "
        "itself (optimistic). *Δ final*: paired difference to the baseline of the same seed and labels. "
        "*Boundary ratio*: total boundary length (TV) of the final predicted foreground over that of the "
        "true validation masks (1: as ragged as the truth; > 1: specks and frayed edges).",
        "",
        "| labels | method | changed label pixels | final Dice | best Dice | Δ final vs baseline "
        "| boundary ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(summary["rows"], key=lambda r: (r["labels"], r["method"] != "baseline",
                                                     r["dt"] or 0, r["layers"] or 0)):
        delta = _fmt(r["final_minus_baseline"], signed=True) if "final_minus_baseline" in r else "—"
        lines.append(f"| {r['labels']} | {_method_name(r)} | {r['label_noise_fraction']['mean']:.3f} | "
                     f"{_fmt(r['final_dice'])} | {_fmt(r['best_dice'])} | {delta} | "
                     f"{_fmt(r['boundary_ratio'], digits=2) if r.get('boundary_ratio') else '—'} |")
    return "\n".join(lines) + "\n"


def _save_figure(fig, path: Path) -> None:
    write_bytes(path, viz.figure_png(fig))


def _curves_figure(summary: dict):
    fig = viz.figure(7, 4.5)
    ax = fig.add_subplot()
    colours = {"baseline": "tab:green", "iel": "tab:red"}
    for r in summary["rows"]:
        m, s = np.asarray(r["curve_mean"]), np.asarray(r["curve_std"])
        ep = np.arange(1, m.size + 1)
        style = "-" if r["labels"] == "clean" else "--"
        ax.plot(ep, m, style, marker="o" if m.size == 1 else None, color=colours[r["method"]],
                label=f"{_method_name(r)}, {r['labels']} labels")
        ax.fill_between(ep, np.clip(m - s, 0, 1), np.clip(m + s, 0, 1), color=colours[r["method"]], alpha=0.12,
                        linewidth=0)
        for c in r["curves"]:      # each seed, thin: a collapsed seed shows as its own line
            ax.plot(ep, c, style, color=colours[r["method"]], alpha=0.35, linewidth=0.7)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Dice")
    ax.set_title(f"{summary['base_config']['dataset']}: mean ± std over {len(summary['seeds'])} seeds "
                 "(thin: each seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _sweep_figure(summary: dict):
    """Left: final Dice per (dt, layers), the colour scale spanning the values and the baseline;
    right: the mean Dice curves (colour: dt, line style: layers; black: the baseline), which
    show whether a setting only delays the baseline's decline or stops it."""
    dts, layers = summary["dts"], summary["layers"]
    grid = np.full((len(layers), len(dts)), np.nan)
    spread = np.full_like(grid, np.nan)
    base = next(r for r in summary["rows"] if r["method"] == "baseline")
    iel_rows = [r for r in summary["rows"] if r["method"] == "iel"]
    for r in iel_rows:
        i, j = layers.index(r["layers"]), dts.index(r["dt"])
        grid[i, j], spread[i, j] = r["final_dice"]["mean"], r["final_dice"]["std"]
    several = len(summary["seeds"]) > 1
    lo = min(np.nanmin(grid), base["final_dice"]["mean"])
    hi = max(np.nanmax(grid), base["final_dice"]["mean"])
    curves = len(base["curve_mean"]) > 1      # one epoch: no curve to draw, so no empty panel
    fig = viz.figure((5.5 if curves else 1.5) + 1.3 * len(dts), 1.8 + 0.8 * max(len(layers), 4))
    if curves:
        ax, ax_curves = fig.subplots(1, 2, gridspec_kw={"width_ratios": [0.9 + 0.45 * len(dts), 4]})
    else:
        ax = fig.subplots()
    im = ax.imshow(grid, cmap="viridis", origin="lower", aspect="auto", vmin=lo, vmax=max(hi, lo + 1e-3))
    for i in range(len(layers)):
        for j in range(len(dts)):
            text = f"{grid[i, j]:.3f}" + (f"\n± {spread[i, j]:.3f}" if several else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="k" if grid[i, j] > lo + 0.6 * (hi - lo) else "w")
    ax.set_xticks(range(len(dts)), [f"{d:g}" for d in dts])
    ax.set_yticks(range(len(layers)), [str(n) for n in layers])
    ax.set_xlabel("dt (PDE time per layer)")
    ax.set_ylabel("layers")
    base_text = format_mean_std(base["final_dice"]["mean"], base["final_dice"]["std"], len(summary["seeds"]), 3)
    ax.set_title(f"final Dice, noisy labels\n(baseline {base_text})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.08)
    if not curves:
        return fig
    colours = dict(zip(dts, ("tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown", "tab:pink")))
    styles = dict(zip(layers, (":", "--", "-", "-.")))
    epochs = np.arange(1, len(base["curve_mean"]) + 1)
    ax_curves.plot(epochs, base["curve_mean"], color="k", linewidth=2, label="baseline")
    for r in iel_rows:
        ax_curves.plot(epochs, r["curve_mean"], styles.get(r["layers"], "-"), color=colours.get(r["dt"], "tab:gray"),
                       linewidth=1.2, label=f"dt {r['dt']:g} x {r['layers']} (T = {r['dt'] * r['layers']:g})")
    ax_curves.set_xlabel("epoch")
    ax_curves.set_ylabel("validation Dice" + (" (mean over seeds)" if several else ""))
    ax_curves.set_title(f"{summary['base_config']['dataset']}: Dice per epoch; T = dt x layers", fontsize=9)
    ax_curves.grid(alpha=0.3)
    ax_curves.legend(fontsize=7, ncol=2)
    return fig
