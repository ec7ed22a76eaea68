"""Training TVflowNET (Grossmann et al., 2022, sections 3 and 4.2): one loop, top to bottom.

    from pdeflow.tvflownet.train import TrainConfig, train
    train(TrainConfig(arch="semiresnet", crop="32", steps=20_000), "runs/semiresnet32")

or ``pdeflow train tvflownet --arch semiresnet --crop 32 --steps 20000 --run-dir runs/semiresnet32``.
The same call (or command) again resumes the run where it stopped; under
``torchrun`` every process runs the same loop (data parallel, one GPU per
process: each rank draws its own batch and the gradients are averaged over
the ranks before every step, see :func:`average_gradients`).

What a step does
----------------
1. Draw the step's batch from ``step_generator(seed, step, rank)`` and nothing
   else (so a resumed run sees exactly the batches the killed run would have):
   a crop size (fixed, or for ``crop="mixed"`` one size per step drawn in
   ``[mixed_min, mixed_max)``, the paper's mixed regime), ``batch_size``
   greyscale crops (reflect-padded where an image is smaller than the crop) of
   training photos picked uniformly at random, of which a fraction ``synthetic``
   is generated instead (:func:`pdeflow.datasets.scenes` of the
   ``synthetic_kinds``: flat disks, ellipses, rectangles, polygons, piecewise-smooth
   scenes), the augmentations that are on (:func:`augment`: contrast
   ``aug_gamma``, flips and quarter turns ``aug_dihedral``, intensity factor
   ``aug_scale`` of mean 1), all multiplied by ``scale`` (the paper feeds [0, 1]
   images times 5), and one flow time per crop, ``t = t_max U^t_power`` with
   ``U ~ U[0, 1)`` (uniform for the default ``t_power = 1``; a larger power
   samples the early times more often, where ``u_t`` is largest and most of
   Table 4's ``div phi`` error lies: 54-72 % of it before t = 0.2 at 32 and
   96 px; yet a cool-down with ``t_power = 2`` scored below the same with 1 on
   validation in every column but Table 7's finite differences, div phi by
   0.4-0.5 dB, ``benchmarks/results/tvflownet/dt01-c1p2/``).
   With ``times_per_image = k > 1`` the batch holds ``batch_size / k`` crops,
   each at ``k`` times of which the first is ``t = 0`` (the official code's
   mode that replicates one image over a batch of times: ``k = batch_size``).
   With ``ref_reuse = R > 1`` (supervised steps) the steps come in blocks of ``R``:
   the block's ``batch_size`` crops, each at ``R`` times, are drawn from the
   generator of its first step, their reference flow is solved once, and the
   ``R`` steps take its crop-time pairs in a shuffled order
   (:func:`reused_reference_batch`). The reference is most of a step's cost, and
   one flow to a crop's latest time serves all its times: a step of the LGD on
   32 px crops costs 0.20 s with ``R = 4`` against 0.47 s
   (``benchmarks/tvflownet_ref_reuse.py``).
2. The loss of the step's phase:

   * ``unsupervised`` -- Grossmann et al. (2022) eq. (12) (:class:`~pdeflow.tvflownet.TVFlowLoss`):
     ``a1 = a2 = 1e-4``, ``(|phi| - 1)_+`` and pdeflow's Neumann operators
     (``loss="paper"``), or the official code's loss, ``(|phi|^2 - 1)_+`` and
     its boundary convention for TV and div (``loss="official"``,
     :meth:`~pdeflow.tvflownet.TVFlowLoss.official`); ``u_t`` by
     forward-mode autodiff (``ut_method="jvp"``) or central differences.
   * ``supervised`` -- regression on the reference flow computed on the fly:
     :func:`pdeflow.tv.tv_flow` of the crops (implicit Euler, step ``ref_dt``,
     relative duality gap ``ref_tol``, at most ``ref_max_iter`` iterations per
     step) at the sampled times;
     ``mean (u - u_ref)^2``, plus ``phi_weight`` times ``mean (div phi - u_t,ref)^2``
     (``phi_target="div"``) or ``mean |phi - p_ref|^2`` (``"dual"``; the dual
     field is not unique where the image is flat, its divergence is).
   * ``hybrid`` -- supervised for the first ``round(hybrid_fraction * steps)``
     steps, unsupervised after (the Adam state carries over).
3. Adam (``lr`` 3e-4), gradient norm clipped to ``clip`` (1.0), as the paper; the learning rate
   is constant (the paper's) or, with ``lr_schedule="cosine"``, falls to ``lr * lr_final`` over
   ``steps`` (a cool-down: branch a long constant-rate run with ``init=".../last.pt"``).
4. Every ``val_every`` steps and after the last one: validation PSNR (below);
   a new best writes ``best.pt`` and exports the model.

Data
----
``data`` names one or more sources (:func:`pdeflow.datasets.source_images`):
``"builtin"``, every built-in photo of the TRAIN split of every installed package
(scikit-image, PyWavelets, scikit-learn, matplotlib), and folders of images. The
built-in TEST photos (the evaluation's natural test images) and the medical
images (Table 5's) are never among them, and never validate.

Validation
----------
A fixed set of ``val_crops`` crops of ``val_size`` pixels (seed ``val_seed``)
from images training never sees: a held-out ``val_fraction`` of all the
sources' photos, chosen by a hash of their names (so the split depends neither
on the order of the sources nor on the order the files are listed in), or the
images of the folder ``val_data``. A run resumed on another validation set
(its images, or the rules that choose them, changed) chooses its best model
again from its next validation.
The reference is :func:`~pdeflow.tv.tv_flow` of ``scale * crops`` at
``val_times`` times ``linspace(0, t_max)`` (``val_dt``, ``val_tol``,
``val_max_iter``), computed
once per run and cached in ``<run_dir>/val_reference.pt`` (written atomically;
recomputed if the validation settings change). The metric is the PSNR of
``u / scale`` against ``u_ref / scale`` with data range 1 (the paper's
convention), over each crop's whole stack of times, capped at 100 dB (as the
evaluation's: a flat crop stays flat, and its identity answer is exact), averaged
over the crops.
The exported JSON also records ``val_psnr_identity``, the PSNR of the trivial
answer ``u(t) = u0`` on the same set (22.6 dB for the default set, whose held-out
photo is scikit-image's page of text; 34.3 dB with ``.data/photos/opencv`` added): the
baseline a network has to beat.

Reference step and iteration caps: ``ref_dt`` sets the accuracy of the
``u_t`` target more than anything else. ``u_t`` is the last implicit step's
difference quotient, an average over up to ``ref_dt`` of a velocity that
jumps whenever a level set of the image vanishes, which happens most often
early in the flow. Measured with the evaluation's metric (the PSNR of each
crop's stack at the paper's 50 times; 16 crops of the test photos,
``experiments/tvflownet_targets.py --stack``), the ``u_t`` target is

* 32.5 dB (32 px) and 32.9 dB (96 px) from the evaluation's reference with
  steps of 0.05,
* 47.2 and 45.4 dB with steps of 0.01,

both at tol 1e-3 and 25 iterations per step, for at most twice the CPU time
per crop (equal at 96 px: the smaller steps start closer to their solution). A network can hardly
beat its target, and the tables ask for div phi >= 32 dB: hence the default
``ref_dt = 0.01`` (it was 0.05 before; the JSON of every shipped model
records the value it was trained with). Steps of 0.01 are
also closer to the continuous flow, not only to the evaluation's grid:
against steps of 0.0025, at 32 px, they score 36.9 dB, steps of 0.05 score
29.8 dB, and the evaluation's reference itself 38.2 dB. (On flat shapes,
whose velocity changes rarely, both steps are equally close, within the
solver's tolerance: ``tests/test_tvflownet_train.py``.) ``u`` is accurate
either way (64-76 dB). ``ref_max_iter``/``val_max_iter`` bound the
iterations of each implicit step; an uncapped solve costs about twice as much
for the same accuracy.

Run directory
-------------
``config.json``, ``last.pt`` (resume point), ``best.pt``, ``init.json`` (where the initial weights
came from, with ``init``), ``log.csv`` (loss
terms per step, ``val_psnr`` at validations), ``val_reference.pt`` and the
exported best model ``model.safetensors`` + ``model.json``
(:func:`pdeflow.io.save_model`): the JSON holds ``config``
(``{"model": <build_model kwargs>, "scale": ..., "t_max": ...}``, what
:func:`pdeflow.tvflownet.load` needs) and ``provenance`` (training config,
data, steps, wall time, the command, the validation PSNR).
``steps`` may be raised when resuming, to extend a finished run (for
``hybrid`` the switch point moves with it), and ``init`` may name anything (a
resumed run takes its weights from ``last.pt``); every other field must match.

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .. import datasets, ops
from ..errors import UserInputError
from ..io import save_model
from ..metrics import psnr
from ..training import (
    ConfigCheck,
    CpuClock,
    Run,
    broadcast_object,
    check_finite,
    ckpt_every_option,
    cleanup_distributed,
    clip_gradients,
    cosine_factor,
    get_rank,
    get_world_size,
    load_checkpoint,
    option,
    provenance,
    reduce_mean,
    save_checkpoint,
    seed_everything,
    setup_distributed,
    step_generator,
    val_every_option,
)
from ..tv import tv_flow
from .evaluate import PSNR_CAP
from .loss import TVFlowLoss
from .models import build_model

__all__ = ["TrainConfig", "train", "check_config", "data_sources", "open_data", "check_data", "sample_batch",
           "synthetic_images", "augment", "supervised_reference", "supervised_loss", "average_gradients",
           "validation_set", "validate", "identity_psnr", "MODES"]

MODES = ("unsupervised", "supervised", "hybrid")


@dataclass
class TrainConfig:
    """Everything that determines a TVflowNET training run (saved as ``config.json``).

    Defaults are the paper's (Grossmann et al., 2022, §4.2) where it gives a value.

    Examples
    --------
    >>> from pdeflow.tvflownet.train import MODES, TrainConfig, check_config
    >>> cfg = TrainConfig(arch="lgd", crop="32", steps=100, mode="unsupervised")
    >>> check_config(cfg)
    >>> MODES, cfg.scale, cfg.t_max
    (('unsupervised', 'supervised', 'hybrid'), 5.0, 1.0)
    """

    # Each field that is a command-line option carries its help text, type and choices (option(...)):
    # `pdeflow train tvflownet` is generated from them, so a hyperparameter is declared here only.
    # model
    arch: str = option("semiresnet", "architecture, with the paper's sizes (default {default})",
                       choices=("semiresnet", "unet", "lgd"))
    arch_kwargs: dict = option(default_factory=dict, type="json", metavar="JSON",
                               help="constructor arguments, e.g. '{{\"width\": 8}}' (see pdeflow.tvflownet.models)")
    # data
    data: str | tuple = option(("builtin",), nargs="+", metavar="DIR|builtin",
                               help="training photos, one or more sources: 'builtin' (every built-in photo of the "
                                    "TRAIN split, of every installed package; never a TEST photo, the evaluation's, "
                                    "nor a medical image) and/or folders of PNG/JPEG/TIFF images (searched "
                                    "recursively); a hashed 10%% of all of them is held out for "
                                    "validation unless --val-data is given (default builtin)")
    crop: str = option("32", type="crop", metavar="32|96|256|mixed",
                       help="crop size; 'mixed': one size per step drawn in [{mixed_min}, {mixed_max}) "
                            "(default {default})")
    mixed_min: int = option(32, "--crop mixed: smallest crop size (default {default})", type="positive_int",
                            metavar="N")
    mixed_max: int = option(256, "--crop mixed: crop sizes stay below this (default {default}, the paper's)",
                            type="positive_int", metavar="N")
    scale: float = option(5.0, "multiply the [0, 1] images by this (default {default:g}, the paper's)",
                          type="positive_float")
    t_max: float = option(1.0, "flow times t = T U^P, U ~ U[0, 1) (default {default:g})", type="positive_float",
                          metavar="T")
    t_power: float = option(1.0, type="positive_float", metavar="P",
                            help="exponent P of the flow times t = T U^P: 1 uniform, P > 1 more of the early "
                                 "times where u_t is largest (density proportional to t^(1/P - 1)) "
                                 "(default {default:g})")
    times_per_image: int = option(1, type="positive_int", metavar="K",
                                  help="each crop at K times, the first t = 0 (the official code's replicate mode: "
                                       "K = batch size) (default 1: one time per crop)")
    synthetic: float = option(0.0, type="float", metavar="F",
                              help="fraction of each batch generated instead of cropped, of the --synthetic-kinds "
                                   "(seeds disjoint from the evaluation's; default {default:g})")
    synthetic_kinds: tuple = option(tuple(datasets.SCENES), nargs="+", choices=tuple(datasets.SCENES), metavar="KIND",
                                    help="kinds of the generated images, in equal shares: piecewise constant "
                                         "(disks: isolated flat disks, eigenfunctions of the flow; ellipses: "
                                         "overlapping, as Table 5; rectangles; polygons) and piecewise smooth "
                                         "(smooth) (default: all five)")
    aug_scale: float = option(0.0, type="nonneg_float", metavar="F",
                              help="random intensity scale: each image times scale x U[1-F, 1+F], whose mean is "
                                   "--scale (F < 1; default 0: off)")
    aug_gamma: float = option(0.0, type="nonneg_float", metavar="G",
                              help="random contrast: each [0, 1] image to the power exp(U[-G, G]) before the "
                                   "scale (default 0: off)")
    aug_dihedral: bool = option(False, "random flips and 90-degree rotations of each image", flag=True)
    init: str | None = option(None, metavar="MODEL",
                              help="start from this model's weights (shipped name, model path, run directory, or "
                                   "a run's checkpoint file last.pt/best.pt; same --arch and --arch-kwargs)")
    # optimisation
    steps: int = option(20_000, "optimiser steps (default {default}; may be raised on resume to extend a run)",
                        type="positive_int", metavar="N")
    batch_size: int = option(16, "crops x times per step and process (default {default})", type="positive_int",
                             metavar="B")
    lr: float = option(3e-4, "Adam learning rate (default {default:g})", type="positive_float")
    lr_schedule: str = option("constant", choices=("constant", "cosine"),
                              help="learning rate over the run: constant (the paper's), or a cosine from --lr to "
                                   "--lr * --lr-final at the last step, e.g. to cool a branch of a long run down "
                                   "(default {default})")
    lr_final: float = option(0.01, "cosine schedule: final learning rate as a fraction of --lr (default {default:g})",
                             type="nonneg_float")
    clip: float | None = option(1.0, "gradient-norm clipping, 0 = off (default {default:g})",
                                type="nonneg_float")   # None (or 0 on the command line): off
    seed: int = option(0, "seed of weights and batches (default {default})", type="nonneg_int")
    deterministic: bool = option(False, "deterministic torch algorithms (bit-identical resume on CPU; slower on GPU)",
                                 flag=True)
    # objective
    mode: str = option("supervised", choices=("unsupervised", "supervised", "hybrid"),
                       help="loss (12) of the paper; MSE to the reference flow computed on the fly; or supervised "
                            "for --hybrid-fraction of the steps, then unsupervised (default {default}: on a CPU "
                            "it reaches a given validation PSNR in a fraction of the unsupervised loss's time, "
                            "see the README; the shipped model was trained so)")
    loss: str = option("paper", choices=("paper", "official"),
                       help="the paper's loss (12): constraint term (|phi|-1)_+, Neumann differences; or the official "
                            "code's: (|phi|^2-1)_+, its edge convention for TV and div (default paper)")
    a1: float = option(1e-4, "weight of the TV term (default {default:g})", type="nonneg_float")
    a2: float = option(1e-4, "weight of the minimal-norm term (default {default:g})", type="nonneg_float")
    ut_method: str = option("jvp", "u_t by forward-mode autodiff or central differences (default jvp)",
                            choices=("jvp", "fd"))
    hybrid_fraction: float = option(0.25, type="nonneg_float", metavar="F",
                                    help="hybrid: fraction of the steps trained supervised first (default {default:g})")
    phi_weight: float = option(0.0, "supervised: weight of the phi term (default 0: u only)", type="nonneg_float")
    phi_target: str = option("div", choices=("div", "dual"),
                             help="supervised phi term: div phi against the reference u_t, or phi against its dual "
                                  "field")
    ref_dt: float = option(0.01, "supervised: time step of the reference flow (default {default:g})",
                           type="positive_float")
    ref_tol: float = option(1e-3, "supervised: duality-gap tolerance of its steps (default {default:g})",
                            type="positive_float")
    ref_max_iter: int = option(50, "supervised: iteration cap of each of its steps (default {default})",
                               type="positive_int", metavar="N")
    ref_reuse: int = option(1, type="positive_int", metavar="R",
                            help="supervised: draw the crops of R steps at once, each at R times, and solve their "
                                 "reference in one call; the R steps share these crops, each step a shuffled "
                                 "share of their crop-time pairs (R = 4: 1.8-2.4x less CPU per step at 32-96 px, "
                                 "see the README; default 1: each step its own crops)")
    # validation and checkpoints
    val_data: str | None = option(None, "a folder of validation images instead of the held-out photos "
                                        "(never training images, never the evaluation's)",
                                  metavar="DIR")   # None: see the module doc
    val_fraction: float = 0.1                #: fraction of all the sources' photos held out for validation
    val_crops: int = option(16, "validation crops (default {default})", type="positive_int")
    val_size: int = option(96, "their size in pixels (default {default})", type="positive_int")
    val_times: int = option(10, "times linspace(0, T, N) (default {default})", type="positive_int")
    val_dt: float = option(0.01, "time step of the validation reference (default {default:g})", type="positive_float")
    val_tol: float = option(1e-4, "its duality-gap tolerance (default {default:g})", type="positive_float")
    val_max_iter: int = option(1000, "its iteration cap per step (default {default})", type="positive_int",
                               metavar="N")
    val_seed: int = option(0, "seed of the validation crops (default 0: the same set for every run)",
                           type="nonneg_int")
    val_every: int = val_every_option(500)
    ckpt_every: int = ckpt_every_option(500)

    def __post_init__(self):
        # One source is kept as a string, as runs from before several sources were possible saved it in
        # config.json (so that they resume); several as a tuple. Lists (JSON, the command line) become tuples.
        if isinstance(self.data, os.PathLike):
            self.data = os.fspath(self.data)
        if isinstance(self.data, list):
            self.data = tuple(self.data)
        if isinstance(self.data, tuple):
            self.data = tuple(os.fspath(d) if isinstance(d, os.PathLike) else d for d in self.data)
            if len(self.data) == 1 and isinstance(self.data[0], str):
                self.data = self.data[0]
        if isinstance(self.val_data, os.PathLike):
            self.val_data = os.fspath(self.val_data)
        if isinstance(self.synthetic_kinds, list):
            self.synthetic_kinds = tuple(self.synthetic_kinds)


def data_sources(cfg: TrainConfig) -> tuple[str, ...]:
    """The training sources of ``cfg`` as a tuple (``cfg.data`` holds one source as a string).

    Examples
    --------
    >>> from pdeflow.tvflownet.train import TrainConfig, data_sources
    >>> data_sources(TrainConfig(data="photos")), data_sources(TrainConfig(data=("builtin", "photos")))
    (('photos',), ('builtin', 'photos'))
    """
    return (cfg.data,) if isinstance(cfg.data, str) else tuple(cfg.data)


def check_config(cfg: TrainConfig) -> None:
    """Raise ValueError naming the first field that is out of range.

    Examples
    --------
    >>> from pdeflow.tvflownet.train import TrainConfig, check_config
    >>> check_config(TrainConfig())
    >>> try:
    ...     check_config(TrainConfig(steps=0))
    ... except ValueError:
    ...     print("rejected")
    rejected
    """
    need = ConfigCheck(cfg)
    need(isinstance(cfg.arch, str) and cfg.arch.lower().replace("-", "").replace("_", "")
         in ("semiresnet", "unet", "lgd"), "arch", "'semiresnet', 'unet' or 'lgd'")
    need(isinstance(cfg.arch_kwargs, dict), "arch_kwargs", "a dict of constructor arguments")
    from .models import ARCHITECTURES
    cls = ARCHITECTURES[cfg.arch.lower().replace("-", "").replace("_", "")]
    params = [p for p in inspect.signature(cls).parameters if p != "in_channels"]
    need(set(cfg.arch_kwargs) <= set(params), "arch_kwargs",
         f"constructor arguments of {cls.__name__} (among {', '.join(params)})")
    need(cfg.mode in MODES, "mode", f"one of {MODES}")
    need(cfg.loss in ("paper", "official"), "loss", "'paper' or 'official'")
    need(cfg.ut_method in ("jvp", "fd"), "ut_method", "'jvp' or 'fd'")
    need(cfg.phi_target in ("div", "dual"), "phi_target", "'div' or 'dual'")
    need(cfg.lr_schedule in ("constant", "cosine"), "lr_schedule", "'constant' or 'cosine'")
    need(cfg.crop == "mixed" or (str(cfg.crop).isdigit() and int(cfg.crop) >= 2), "crop",
         "a crop size >= 2 (e.g. '32', '96', '256') or 'mixed'")
    need(2 <= cfg.mixed_min < cfg.mixed_max, "mixed_min", "2 <= mixed_min < mixed_max")
    need.numbers("scale", "t_max", "t_power", "lr", "ref_dt", "ref_tol", "val_dt", "val_tol")
    need.numbers("a1", "a2", "phi_weight", "lr_final", positive=False)
    need.numbers("clip", positive=False, optional=True)
    need.trainer()
    need.ints("times_per_image", "ref_max_iter", "val_max_iter", "ref_reuse")
    need(cfg.ref_reuse == 1 or cfg.times_per_image == 1, "ref_reuse",
         "1 with times_per_image > 1 (both set the times of each crop)")
    need.ints("val_size", "val_times", minimum=2)
    need(cfg.batch_size % cfg.times_per_image == 0, "times_per_image", f"a divisor of batch_size {cfg.batch_size}")
    need(0.0 <= cfg.hybrid_fraction <= 1.0, "hybrid_fraction", "a number in [0, 1]")
    need(isinstance(cfg.data, str) and cfg.data != "" or isinstance(cfg.data, tuple) and len(cfg.data) > 0
         and all(isinstance(d, str) and d != "" for d in cfg.data), "data",
         "'builtin' and/or folders (a string, or a tuple of them)")
    need(cfg.val_data is None or isinstance(cfg.val_data, str) and cfg.val_data not in ("", "builtin"), "val_data",
         "None (a held-out fraction of the training photos) or a folder; the built-in TEST photos are the "
         "evaluation's and never select a checkpoint")
    need.numbers("synthetic", positive=False)
    need(cfg.synthetic <= 1.0, "synthetic", "a number in [0, 1]")
    need(isinstance(cfg.synthetic_kinds, tuple) and len(cfg.synthetic_kinds) > 0
         and all(k in datasets.SCENES for k in cfg.synthetic_kinds), "synthetic_kinds",
         f"a non-empty tuple among {tuple(datasets.SCENES)}")
    need.numbers("aug_scale", "aug_gamma", positive=False)
    need(cfg.aug_scale < 1, "aug_scale", "a number in [0, 1) (the scale factor 1 +- F stays positive)")
    need.flags("aug_dihedral")
    need(cfg.init is None or (isinstance(cfg.init, str) and cfg.init != ""), "init", "None or a model name or path")
    need.fractions("val_fraction")


# --------------------------------------------------------------------------- data


def open_data(cfg: TrainConfig) -> tuple[datasets.ImageSet, datasets.ImageSet]:
    """The training and validation images of ``cfg``, grey: the photos of its sources, a hashed
    ``val_fraction`` of them held out for validation, or ``val_data``'s (see
    :func:`pdeflow.datasets.source_images`). Never a built-in TEST photo or a medical image.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.io import write_image
    >>> from pdeflow.tvflownet.train import TrainConfig, open_data
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for k in range(4):
    ...         _ = write_image(Path(d) / f"p{k}.png", torch.full((1, 24, 24), k / 4))
    ...     train_set, val_set = open_data(TrainConfig(data=d, val_fraction=0.25))
    ...     print(len(train_set), len(val_set))
    3 1
    """
    return datasets.source_images(data_sources(cfg), grey=True, val_data=cfg.val_data,
                                  val_fraction=None if cfg.val_data is not None else cfg.val_fraction)


def check_data(cfg: TrainConfig, train_images: datasets.ImageSet, val_images: datasets.ImageSet) -> list[str]:
    """Open every training and validation image once, before a run writes anything: an unreadable
    file raises UserInputError naming it; returns warnings naming the images smaller than their crop
    (the training crop, ``mixed_min`` for mixed crops, or ``val_size``), which are reflect-padded up to
    it, so that a crop of them repeats a few pixels (a 1x1 image gives a flat crop).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet.train import TrainConfig, check_data
    >>> small = ImageSet(images=[torch.zeros(1, 8, 8), torch.zeros(1, 40, 40)], description={})
    >>> check_data(TrainConfig(crop="32", val_size=32), small, small)[0][:60]
    'train: 1 of 2 training image(s) smaller than the 32 px crop '
    """
    crop = cfg.mixed_min if cfg.crop == "mixed" else int(cfg.crop)
    notes = []
    for role, images, size in (("training", train_images, crop), ("validation", val_images, cfg.val_size)):
        sizes = images.sizes()
        small = sorted(f"{name} ({h}x{w})" for name, h, w in sizes if min(h, w) < size)
        if small:
            shown = ", ".join(small[:10]) + (f" and {len(small) - 10} more" if len(small) > 10 else "")
            notes.append(f"train: {len(small)} of {len(sizes)} {role} image(s) smaller than the {size} px crop "
                         f"are reflect-padded up to it: {shown}")
    return notes


def crop_size(cfg: TrainConfig, g: torch.Generator) -> int:
    if cfg.crop == "mixed":
        return int(torch.randint(cfg.mixed_min, cfg.mixed_max, (1,), generator=g))
    return int(cfg.crop)


#: Training seeds of the synthetic images start here; the evaluation's (``seed * 7919 + size``) stay below.
SYNTHETIC_SEED_BASE = 2 ** 30


def synthetic_images(n: int, size: int, g: torch.Generator, kinds=("disks", "ellipses")) -> torch.Tensor:
    """``n`` generated images ``(n, 1, size, size)`` in [0, 1] of the ``kinds`` of
    :data:`pdeflow.datasets.SCENES`, in equal shares (:func:`pdeflow.datasets.scenes`), with
    ``clip(size // 16, 1, 5)`` shapes each, as the evaluation's Table 5 images but from other seeds
    (one seed per call, drawn from ``g``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import synthetic_images
    >>> u0 = synthetic_images(4, 16, torch.Generator().manual_seed(0))
    >>> u0.shape, 0.0 <= u0.min().item() <= u0.max().item() <= 1.0
    (torch.Size([4, 1, 16, 16]), True)
    """
    seed = SYNTHETIC_SEED_BASE + int(torch.randint(2 ** 30, (1,), generator=g))
    return datasets.scenes(kinds, size, seed=seed, batch=n)


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Element ``k`` (0-7) of the symmetries of the square: ``k % 4`` quarter turns, then a flip for ``k >= 4``."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def augment(u0: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """The config's augmentations of images ``u0`` ``(n, 1, S, S)`` in [0, 1], each image its own draw, in
    this order: contrast ``u0 ** exp(U[-aug_gamma, aug_gamma])`` (stays in [0, 1]), a random flip and
    quarter turn (``aug_dihedral``), and the intensity factor ``U[1 - aug_scale, 1 + aug_scale]`` (mean 1:
    the batch's mean scale stays ``cfg.scale``). Draws from ``g`` only for the augmentations that are on,
    so a config without them sees the batches of before.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import TrainConfig, augment
    >>> cfg = TrainConfig(aug_gamma=0.5, aug_dihedral=True)
    >>> u0 = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> out = augment(u0, cfg, torch.Generator().manual_seed(0))
    >>> out.shape, 0.0 <= out.min().item() <= out.max().item() <= 1.0
    (torch.Size([3, 1, 8, 8]), True)
    """
    n = u0.shape[0]
    if cfg.aug_gamma > 0:
        gamma = torch.exp((2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * cfg.aug_gamma)
        u0 = u0.clamp(min=0) ** gamma.to(u0.dtype).view(n, 1, 1, 1)
    if cfg.aug_dihedral:
        ks = torch.randint(8, (n,), generator=g).tolist()
        u0 = torch.stack([_dihedral(x, k) for x, k in zip(u0, ks)])
    if cfg.aug_scale > 0:
        factor = 1 + (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * cfg.aug_scale
        u0 = u0 * factor.to(u0.dtype).view(n, 1, 1, 1)
    return u0


def sample_batch(cfg: TrainConfig, images: datasets.ImageSet, g: torch.Generator, *,
                 reuse: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's batch: ``u0`` ``(B, 1, S, S)`` (already times ``scale``) and times ``t`` ``(B,)``.

    A fraction ``cfg.synthetic`` of the images is generated (:func:`synthetic_images`), the
    rest are crops of ``images``; then :func:`augment`. Everything is drawn from ``g`` (the step
    generator), in a fixed order. With ``reuse = R > 1`` (``cfg.ref_reuse``, whose
    ``times_per_image`` is 1), the crops of a block of ``R`` steps: ``u0`` ``(B, 1, S, S)`` and
    ``R`` times per crop, ``t`` ``(B, R)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet.train import TrainConfig, sample_batch
    >>> images = ImageSet(images=[torch.rand(1, 40, 40, generator=torch.Generator().manual_seed(0))], description={})
    >>> u0, t = sample_batch(TrainConfig(crop="16", batch_size=4), images, torch.Generator().manual_seed(0))
    >>> u0.shape, t.shape, bool((0 <= t).all() and (t < 1).all())
    (torch.Size([4, 1, 16, 16]), torch.Size([4]), True)
    """
    k = cfg.times_per_image
    size = crop_size(cfg, g)
    n = cfg.batch_size // k
    n_synthetic = round(cfg.synthetic * n)
    parts = [images.crops(n - n_synthetic, size, g)] if n_synthetic < n else []
    if n_synthetic:                          # no extra draws from g without synthetic images
        parts.append(synthetic_images(n_synthetic, size, g, cfg.synthetic_kinds))
    u0 = augment(torch.cat(parts), cfg, g).repeat_interleave(k, 0) * cfg.scale
    t = torch.rand(cfg.batch_size * reuse, generator=g, dtype=torch.float64) ** cfg.t_power * cfg.t_max
    if k > 1:
        t[::k] = 0.0
    t = t.to(u0.dtype)
    return u0, (t.view(cfg.batch_size, reuse) if reuse > 1 else t)


# --------------------------------------------------------------------------- losses


def unsupervised_loss_fn(cfg: TrainConfig) -> TVFlowLoss:
    """Eq. (12) with the config's weights and variant."""
    make = TVFlowLoss.official if cfg.loss == "official" else TVFlowLoss
    return make(tv_weight=cfg.a1, min_norm_weight=cfg.a2, ut_method=cfg.ut_method, t_max=cfg.t_max)


@torch.no_grad()
def reference_at_times(crops: torch.Tensor, t: torch.Tensor, cfg: TrainConfig, *, dual: bool = False):
    """The reference TV flow of each of ``crops`` ``(N, 1, H, W)`` at its own times ``t`` ``(N, R)``,
    all in one call of :func:`~pdeflow.tv.tv_flow` (it lands a step on every time of the batch).

    Returns ``(u_ref,)`` or, if ``dual``, ``(u_ref, u_t,ref, p_ref)``, each ``(N, R, C, H, W)``.
    """
    times = sorted(set(t.flatten().tolist()))
    out = tv_flow(crops, times, dt=cfg.ref_dt, tol=cfg.ref_tol, max_iter=cfg.ref_max_iter,
                  return_ut=dual, return_dual=dual, scheme="euler")  # the paper's implicit Euler reference
    out = out if dual else (out,)                         # each (K, N, C, H, W)
    index = {s: i for i, s in enumerate(times)}
    ti = torch.tensor([[index[s] for s in row] for row in t.tolist()], device=crops.device)
    ii = torch.arange(crops.shape[0], device=crops.device)[:, None].expand_as(ti)
    return tuple(x[ti, ii] for x in out)


def supervised_reference(u0: torch.Tensor, t: torch.Tensor, cfg: TrainConfig, *, dual: bool = False):
    """The reference TV flow of each crop of ``u0`` at its own time ``t[i]``.

    Returns ``u_ref`` ``(B, 1, H, W)`` and, if ``dual``, ``(u_t,ref, p_ref)``.
    Crops repeated by ``times_per_image`` are evolved once.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import TrainConfig, supervised_reference
    >>> u0 = 5 * torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> u_ref = supervised_reference(u0, torch.tensor([0.0, 0.1]), TrainConfig())
    >>> u_ref.shape, torch.allclose(u_ref[0], u0[0]), torch.allclose(u_ref.mean((1, 2, 3)), u0.mean((1, 2, 3)))
    (torch.Size([2, 1, 8, 8]), True, True)
    """
    k = cfg.times_per_image
    out = tuple(x.flatten(0, 1) for x in reference_at_times(u0[::k], t.view(-1, k), cfg, dual=dual))
    return out if dual else out[0]


def reused_reference_batch(cfg: TrainConfig, images: datasets.ImageSet, step: int, rank: int, block: dict | None,
                           *, dual: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | tuple, dict]:
    """Step ``step``'s batch under ``ref_reuse = R``: ``(u0, t, reference, block)``.

    Steps ``bR ... bR + R - 1`` form block ``b``. Its ``B`` crops, each at ``R`` times, are drawn
    from the generator of step ``bR`` (:func:`sample_batch`), their reference is solved in one call
    (:func:`reference_at_times`), and its ``B R`` crop-time pairs, in an order drawn from the same
    generator, are its steps' batches, ``B`` each. ``block`` is the block last built (``None`` at
    first): it is reused within a block and rebuilt after, so a run resumed inside a block sees the
    batches the killed run would have. ``reference`` is ``supervised_reference``'s.
    """
    reuse, first = cfg.ref_reuse, step - step % cfg.ref_reuse
    if block is None or block["first"] != first:
        g = step_generator(cfg.seed, first, rank)
        crops, t = sample_batch(cfg, images, g, reuse=reuse)
        block = {"first": first, "crops": crops, "t": t, "ref": reference_at_times(crops, t, cfg, dual=dual),
                 "order": torch.randperm(crops.shape[0] * reuse, generator=g)}
    pairs = block["order"][(step - first) * cfg.batch_size:(step - first + 1) * cfg.batch_size]
    i, r = pairs // reuse, pairs % reuse
    ref = tuple(x[i, r] for x in block["ref"])
    return block["crops"][i], block["t"][i, r], ref if dual else ref[0], block


def step_batch(cfg: TrainConfig, images: datasets.ImageSet, step: int, rank: int, block: dict | None, *,
               supervised: bool):
    """Step ``step``'s ``(u0, t, reference, block)``: :func:`reused_reference_batch` for a supervised
    step with ``ref_reuse > 1``, else :func:`sample_batch` of the step's generator, with no reference
    (``None``: :func:`supervised_loss` solves it) and ``block`` passed through."""
    if supervised and cfg.ref_reuse > 1:
        return reused_reference_batch(cfg, images, step, rank, block, dual=cfg.phi_weight > 0)
    return (*sample_batch(cfg, images, step_generator(cfg.seed, step, rank)), None, block)


def supervised_loss(model, u0: torch.Tensor, t: torch.Tensor, cfg: TrainConfig, *, reference=None):
    """``mean (u - u_ref)^2`` (+ the optional phi term); ``(total, {name: float})``.

    ``reference``: ``supervised_reference(u0, t, cfg, dual=phi_weight > 0)`` when already known.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.train import TrainConfig, supervised_loss
    >>> _ = torch.manual_seed(0)
    >>> u0 = 5 * torch.rand(2, 1, 8, 8)
    >>> total, logs = supervised_loss(SemiResNet(width=4, depth=3), u0, torch.tensor([0.05, 0.1]), TrainConfig())
    >>> total.requires_grad, sorted(logs)
    (True, ['sup_u'])
    """
    want_phi = cfg.phi_weight > 0
    ref = reference if reference is not None else supervised_reference(u0, t, cfg, dual=want_phi)
    u, phi = model(u0, t)
    if not want_phi:
        loss_u = torch.mean((u - ref) ** 2)
        return loss_u, {"sup_u": float(loss_u.detach())}
    u_ref, ut_ref, p_ref = ref
    loss_u = torch.mean((u - u_ref) ** 2)
    if cfg.phi_target == "div":
        loss_phi = torch.mean((ops.div(phi) - ut_ref) ** 2)
    else:
        loss_phi = torch.mean(((phi - p_ref) ** 2).sum(-3))
    total = loss_u + cfg.phi_weight * loss_phi
    return total, {"sup_u": float(loss_u.detach()), "sup_phi": float(loss_phi.detach())}


def supervised_steps(cfg: TrainConfig) -> int:
    """Number of leading steps trained supervised."""
    return {"unsupervised": 0, "supervised": cfg.steps, "hybrid": round(cfg.hybrid_fraction * cfg.steps)}[cfg.mode]


def average_gradients(net: torch.nn.Module) -> None:
    """Average the gradients over the ranks (one all-reduce of a flat buffer); no-op on one process.

    Used instead of :func:`pdeflow.training.wrap_ddp`: the unsupervised loss
    evaluates the model inside ``torch.func.jvp``, and DDP's forward cannot run
    there (it rebuilds its gradient buckets in the second iteration's forward,
    which fails on functorch's tensors without storage). The result is DDP's:
    every rank steps with the mean gradient.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import average_gradients
    >>> net = torch.nn.Linear(2, 1)
    >>> net(torch.ones(1, 2)).sum().backward()
    >>> before = net.weight.grad.clone()
    >>> average_gradients(net)  # one process: nothing to average
    >>> torch.equal(net.weight.grad, before)
    True
    """
    world = get_world_size()
    if world == 1:
        return
    params = [p for p in net.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


# --------------------------------------------------------------------------- validation


def validation_set(cfg: TrainConfig, images: datasets.ImageSet, run_dir: Path, *, progress: bool = False) -> dict:
    """The fixed validation crops and their reference flow, cached in ``run_dir/val_reference.pt``.

    Returns ``{"key", "u0" (N, 1, S, S) in [0, 1], "times" (list), "ref" (K, N, 1, S, S) in scaled units,
    "replaced"}``; ``replaced`` is True where the cache held another set (other images: the run's earlier
    validations measured something else). Rank 0 computes or reads it; other ranks receive it.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet.train import TrainConfig, validation_set
    >>> images = ImageSet(images=[torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0))], description={})
    >>> cfg = TrainConfig(val_crops=2, val_size=16, val_times=3)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     val = validation_set(cfg, images, d)
    >>> val["u0"].shape, len(val["times"]), val["ref"].shape
    (torch.Size([2, 1, 16, 16]), 3, torch.Size([3, 2, 1, 16, 16]))
    """
    key = {"data": images.description, "crops": cfg.val_crops, "size": cfg.val_size, "times": cfg.val_times,
           "t_max": cfg.t_max, "scale": cfg.scale, "dt": cfg.val_dt, "tol": cfg.val_tol, "max_iter": cfg.val_max_iter,
           "seed": cfg.val_seed}
    path = Path(run_dir) / "val_reference.pt"
    val, replaced = None, False
    if get_rank() == 0:
        if path.exists():
            cached = load_checkpoint(path)
            if cached.get("key") == key:
                val = cached
            replaced = val is None
        if val is None:
            g = torch.Generator().manual_seed(cfg.val_seed)
            u0 = images.crops(cfg.val_crops, cfg.val_size, g)
            times = torch.linspace(0, cfg.t_max, cfg.val_times, dtype=torch.float64).tolist()
            ref = tv_flow(u0 * cfg.scale, times, dt=cfg.val_dt, tol=cfg.val_tol, max_iter=cfg.val_max_iter,
                          progress=progress, scheme="euler")
            val = {"key": key, "u0": u0, "times": times, "ref": ref}
            save_checkpoint(path, val)
        val = {**val, "replaced": replaced}
    return broadcast_object(val)


@torch.no_grad()
def validate(net, val: dict, cfg: TrainConfig, device: torch.device | str = "cpu") -> float:
    """Mean over the validation crops of the PSNR (data range 1, on ``u / scale``) over
    each crop's stack of times. Under DDP the crops are shared out and the result
    is the mean over all of them on every rank.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.train import TrainConfig, validate, validation_set
    >>> images = ImageSet(images=[torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0))], description={})
    >>> cfg = TrainConfig(val_crops=2, val_size=16, val_times=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     val = validation_set(cfg, images, d)
    >>> psnr = validate(SemiResNet(width=4, depth=3), val, cfg)
    >>> isinstance(psnr, float)
    True
    """
    rank, world = get_rank(), get_world_size()
    u0 = val["u0"][rank::world].to(device) * cfg.scale
    ref = val["ref"][:, rank::world].to(device)
    was_training = net.training
    net.eval()
    try:
        pred = torch.stack([net(u0, float(t))[0] for t in val["times"]])       # (K, n, 1, S, S)
    finally:
        net.train(was_training)
    stack = lambda x: x.transpose(0, 1).flatten(1, 2) / cfg.scale             # noqa: E731  (n, K, S, S)
    per_crop = (psnr(stack(pred), stack(ref), data_range=1.0).clamp(max=PSNR_CAP) if u0.shape[0]
                else u0.new_zeros(0))
    total = torch.stack([per_crop.sum().double(), torch.tensor(float(per_crop.numel()), dtype=torch.float64,
                                                               device=per_crop.device)])
    if world > 1:
        dist.all_reduce(total)
    return float(total[0] / total[1])


def identity_psnr(val: dict, cfg: TrainConfig) -> float:
    """The validation PSNR of the trivial answer ``u(t) = u0``: the baseline a network must beat.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet.train import TrainConfig, identity_psnr, validation_set
    >>> images = ImageSet(images=[torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0))], description={})
    >>> cfg = TrainConfig(val_crops=2, val_size=16, val_times=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     val = validation_set(cfg, images, d)
    >>> identity_psnr(val, cfg) > 10.0  # u(t) = u0 is close to the flow at small t
    True
    """
    ref = val["ref"] / cfg.scale
    u0 = val["u0"].unsqueeze(0).expand_as(ref)
    stack = lambda x: x.transpose(0, 1).flatten(1, 2)                           # noqa: E731
    return float(psnr(stack(u0), stack(ref), data_range=1.0).clamp(max=PSNR_CAP).mean())


# --------------------------------------------------------------------------- export


def _model_config(net, cfg: TrainConfig) -> dict:
    return {"model": net.config, "scale": float(cfg.scale), "t_max": float(cfg.t_max)}


def _export(state: dict, net, run_dir: Path, cfg: TrainConfig, run: Run, info: dict, clock: CpuClock) -> None:
    prov = {"trainer": "pdeflow.tvflownet.train", **run.best_record(), **clock.provenance(),
            "val_psnr": float(run.best), **info}
    save_model(state, run_dir / "model", config=_model_config(net, cfg), provenance=prov)


# --------------------------------------------------------------------------- the loop


def _init_from(net: torch.nn.Module, spec: str) -> dict:
    """Copy the weights of ``spec`` into ``net``; returns their description.

    ``spec``: a shipped name, a model path or run directory (its exported model), or a checkpoint
    file of a TVflowNET run (``last.pt``, ``best.pt``: the weights at that step, e.g. to branch a
    cool-down off a long run between its validations).
    """
    if str(spec).endswith(".pt"):
        return _init_from_checkpoint(net, Path(spec))
    from .api import load
    try:
        model = load(spec)
    except (FileNotFoundError, ValueError) as e:
        raise UserInputError(f"init: {e}") from None
    _load_weights(net, model.state_dict(), spec, model.meta["config"]["model"])
    prov = model.meta.get("provenance", {})
    return {"model": spec, "steps": prov.get("steps"), "val_psnr": prov.get("val_psnr"),
            "weights_sha256": model.meta.get("weights", {}).get("sha256")}


def _init_from_checkpoint(net: torch.nn.Module, path: Path) -> dict:
    try:
        ckpt = load_checkpoint(path)
        state = ckpt["models"]["net"]
        arch = ckpt["config"]["arch"], ckpt["config"].get("arch_kwargs", {})
    except FileNotFoundError:
        raise UserInputError(f"init: no checkpoint at {path}") from None
    except Exception as e:   # not a pdeflow checkpoint, truncated, or another trainer's
        raise UserInputError(f"init: {path} is not a readable TVflowNET run checkpoint ({type(e).__name__}: "
                             f"{e})") from None
    _load_weights(net, state, str(path), {"arch": arch[0], "arch_kwargs": arch[1]})
    # a checkpoint is no model file: its fingerprint is the SHA-256 of its tensors' bytes, in state order
    return {"checkpoint": str(path), "steps": int(ckpt["step"]),
            "state_sha256": hashlib.sha256(b"".join(v.detach().cpu().numpy().tobytes()
                                                    for v in state.values())).hexdigest()}


def _load_weights(net: torch.nn.Module, state: dict, spec: str, expected) -> None:
    """Strict load, except that parameters the architecture may grow (``grown_prefixes``, e.g. the
    U-Net's ``refine`` block) may be missing: they keep their initial values."""
    grown = tuple(getattr(net, "grown_prefixes", ()))
    state = {**{k: v for k, v in net.state_dict().items() if k.startswith(grown)}, **state}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise UserInputError(f"init: the weights of {spec!r} do not fit this run's architecture "
                             f"(arch and arch_kwargs must match {expected}): {e}") from None


def train(cfg: TrainConfig, run_dir, *, device: str | torch.device | None = None, quiet: bool = False,
          command: str | None = None) -> Path:
    """Train (or resume) a TVflowNET run in ``run_dir``; returns the path of the exported
    ``model.json`` (the best model by validation PSNR). See the module docstring.

    ``device``: default ``cuda:LOCAL_RANK`` if CUDA is available, else the CPU.
    ``command``: recorded in the exported JSON (default: this process's command line).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.io import write_image
    >>> from pdeflow.tvflownet.train import TrainConfig, train
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for k in range(3):
    ...         _ = write_image(Path(d) / f"p{k}.png", torch.full((1, 24, 24), k / 3))
    ...     cfg = TrainConfig(data=d, crop="16", steps=2, batch_size=2, arch_kwargs={"width": 4, "depth": 3},
    ...                       val_crops=1, val_size=16, val_times=2, val_every=2, ckpt_every=2, val_fraction=0.34)
    ...     path = train(cfg, Path(d) / "run", quiet=True)
    ...     print(path.name, sorted(p.name for p in path.parent.glob("model.*")))
    model.json ['model.json', 'model.safetensors']
    """
    check_config(cfg)
    run_dir = Path(run_dir)
    rank, world_size, default_device = setup_distributed()
    device = torch.device(device) if device is not None else default_device
    seed_everything(cfg.seed, deterministic=cfg.deterministic)       # same initial weights on every rank
    train_images, val_images = open_data(cfg)
    for note in check_data(cfg, train_images, val_images):     # before the run directory gets anything
        if rank == 0:
            warnings.warn(note, stacklevel=2)

    net = build_model(cfg.arch, **cfg.arch_kwargs).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    unsupervised = unsupervised_loss_fn(cfg)
    clock = CpuClock()
    # init only seeds a fresh run: a resumed one takes its weights from last.pt, so its --init may name
    # another copy of the same weights (or one that is gone, on another machine). Loaded before the
    # Run makes the directory, so that a bad --init leaves nothing behind; the record of where the
    # weights came from (the provenance's init) is kept in init.json for the resumed run.
    resuming = (run_dir / "last.pt").exists()
    loaded = _init_from(net, cfg.init) if cfg.init is not None and not resuming else None
    run = Run(run_dir, cfg, models={"net": net}, optimizers={"opt": opt}, extra={"cpu": clock},
              ckpt_every=cfg.ckpt_every, best_mode="max", allow_changed=("steps", "init", "ref_reuse"), quiet=quiet)
    start = run.resume()
    init_info = None if cfg.init is None else run.cached_json(   # a run started before init.json: its name
        "init.json", lambda: loaded or {"model": cfg.init})
    show = rank == 0 and not quiet and sys.stderr.isatty()
    val = validation_set(cfg, val_images, run_dir, progress=show)
    if val["replaced"] and start > 0 and run.best is not None:
        # a run resumed on another validation set (its images changed, or the rules that pick them):
        # its best so far was measured on the old set, so checkpoint selection starts again
        if rank == 0:
            warnings.warn(f"train: the validation set of {run_dir} changed since its best model (step "
                          f"{run.best_step + 1}, {run.best:.2f} dB on the old set); the best model is chosen "
                          "again from the next validation on", stacklevel=2)
        run.best, run.best_step = None, None
    n_supervised = supervised_steps(cfg)
    info = provenance(cfg, command=command, device=device,
                      data={"train": train_images.description, "validation": val_images.description},
                      validation={k: v for k, v in val["key"].items() if k != "data"},
                      val_psnr_identity=identity_psnr(val, cfg), world_size=world_size,
                      **({"init": init_info} if init_info is not None else {}))

    block = None                                                 # the crops and reference of ref_reuse's block
    for step in run.steps(start, cfg.steps):
        if cfg.lr_schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = cfg.lr * cosine_factor(step, cfg.steps, cfg.lr_final)
        u0, t, ref, block = step_batch(cfg, train_images, step, rank, block, supervised=step < n_supervised)
        u0, t = u0.to(device), t.to(device)
        if ref is not None:
            ref = ref.to(device) if torch.is_tensor(ref) else tuple(x.to(device) for x in ref)
        if step < n_supervised:
            loss, terms = supervised_loss(net, u0, t, cfg, reference=ref)
        else:
            loss, terms = unsupervised(net, u0, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(net)                                   # DDP: the mean over ranks
        grad_norm = clip_gradients(net, cfg.clip)
        opt.step()

        logged = reduce_mean(torch.tensor([float(loss.detach()), *terms.values()], dtype=torch.float64,
                                          device=device))          # on the device: NCCL reduces CUDA tensors
        check_finite(step, "resume with a smaller --lr or with --clip", loss=float(logged[0]))   # same on every rank
        run.log(step, loss=logged[0], **{name: logged[1 + i] for i, name in enumerate(terms) if name != "total"},
                **({"grad_norm": reduce_mean(grad_norm)} if grad_norm is not None else {}),
                crop=u0.shape[-1])
        if run.validation_due(step, cfg.val_every):
            val_psnr = validate(net, val, cfg, device)
            if run.log_validation(step, {"val_psnr": val_psnr}, key="val_psnr") and rank == 0:
                _export(net.state_dict(), net, run_dir, cfg, run, info, clock)
    run.finish()

    # the exported model is the best one; (re)write it from best.pt with the final provenance
    best = run.best_models()                # rank 0 only
    if best is not None:
        _export(best["net"], net, run_dir, cfg, run, info, clock)
    cleanup_distributed()
    return run_dir / "model.json"

