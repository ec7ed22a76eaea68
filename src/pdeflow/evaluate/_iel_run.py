"""One run of the noisy-label segmentation experiment (:mod:`pdeflow.evaluate.iel`, whose docstring says
what a run does): its configuration, data, training loop and evaluation."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import ops, training
from ..datasets import random_crops
from ..errors import UserInputError
from ..iel.datasets import DATASETS, SegmentationData, load_dataset
from ..iel.layers import BOUNDARIES, EVOLUTIONS, with_iels
from ..iel.noise import NOISE_KINDS, add_label_noise
from ..iel.unet import SegmentationUNet
from ..io import write_bytes
from ..metrics import dice, miou
from ..training import option

RESULT_FILE = "result.json"


@dataclasses.dataclass
class RunConfig:
    """One training run. Saved as the run directory's ``config.json``.

    Fields declared with :func:`pdeflow.training.option` are options of ``pdeflow iel-experiment`` (help,
    type and choices in their metadata); ``iel``, ``seed``, ``dt`` and ``layers`` are set per run by
    :func:`plan_runs` (the command line's ``--dt`` and ``--layers`` are :class:`ExperimentSpec`'s axes).

    Examples
    --------
    >>> from pdeflow.evaluate.iel import RunConfig, check_config
    >>> cfg = RunConfig(dataset="synthetic", width=4, depth=2, crop=16, epochs=1, steps_per_epoch=1)
    >>> check_config(cfg)
    >>> cfg.operator, cfg.dt, cfg.layers
    ('heat', 0.025, 30)
    """
    dataset: str = option("dsb2018", "(default {default})", choices=DATASETS)
    data_path: str | None = option(None, "mricron, aal: folder with ch2.nii.gz and ch2bet.nii.gz or aal.nii.gz "
                                         "(default: .data/mricron-data from `make data`, then "
                                         "/usr/share/mricron/templates); icbm152: folder with the "
                                         "mni_icbm152_*_09a files (default: the nilearn wheel's)",
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
    operator: str = option("heat", "(default {default})", choices=tuple(EVOLUTIONS))
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
    lr: float = option(1e-3, "learning rate (paper 1e-4)", type="positive_float")
    seed: int = 0
    deterministic: bool = option(False, "deterministic torch algorithms", flag=True)


def check_config(cfg: RunConfig) -> None:
    """Raise ValueError naming the first bad field of ``cfg``.

    Examples
    --------
    >>> from pdeflow.evaluate.iel import RunConfig, check_config
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
    if cfg.operator not in EVOLUTIONS:
        bad("operator", f"one of {tuple(EVOLUTIONS)}")
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
    >>> from pdeflow.evaluate.iel import RunConfig, prepare_data
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
    from ..iel.layers import make_operator
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
             batch_size: int = 4, *, metric: str = "dice") -> torch.Tensor:
    """Per-image Dice or mIoU (``metric``; background excluded, mean over the other classes, a class absent
    from prediction and label counting 1) of ``argmax model(images)`` in eval mode, shape ``(N,)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.evaluate.iel import evaluate
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
    if metric not in ("dice", "miou"):
        raise UserInputError(f"evaluate: metric must be 'dice' or 'miou', got {metric!r}")
    score = dice if metric == "dice" else miou
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, images.shape[0], batch_size):
        pred = model(images[i:i + batch_size].to(device)).argmax(1)
        out.append(score(pred, labels[i:i + batch_size].to(device), num_classes=num_classes).cpu())
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
    >>> from pdeflow.evaluate.iel import boundary_ratio
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
    ``best_dice`` and ``best_epoch``, ``final_dice_per_image``, ``final_miou``
    and ``final_miou_per_image`` (mean IoU, background excluded),
    ``label_noise_fraction`` (training pixels whose label the noise changed),
    ``steps_per_epoch`` and ``wall_time_s``. A finished run is not trained
    again: its ``result.json`` is returned. ``data`` replaces the named
    dataset (tests); its name must equal ``cfg.dataset``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.iel.datasets import synthetic_blobs
    >>> from pdeflow.evaluate.iel import RESULT_FILE, RunConfig, train_run
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
    per_image_iou = evaluate(unet, data.val_images, data.val_labels, data.num_classes, metric="miou")
    best = int(np.argmax(curve))
    result = {
        "config": training.config_to_dict(cfg),
        "dataset": data.description,
        "val_dice": curve,
        "final_dice": curve[-1],
        "final_dice_per_image": per_image.tolist(),
        "final_miou": float(per_image_iou.mean()),
        "final_miou_per_image": per_image_iou.tolist(),
        "final_boundary_ratio": boundary_ratio(unet, data.val_images, data.val_labels),
        "best_dice": curve[best],
        "best_epoch": best + 1,
        "label_noise_fraction": noise_fraction,
        "steps_per_epoch": spe,
        "wall_time_s": run.elapsed,
        "device": str(device),
        "torch": str(torch.__version__),
    }
    write_json(run_dir / RESULT_FILE, result)
    return result


def write_json(path: Path, obj) -> None:
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    write_bytes(path, text.encode())


def _read_log(path: Path) -> list[dict]:
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _finished(run_dir: Path, cfg: RunConfig) -> dict | None:
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    res = json.loads(path.read_text())
    if res.get("config") != training.config_to_dict(cfg):
        raise training.RunConfigError(f"{path} was written by a run with a different config; "
                                      "use another directory or delete it")
    return res
