"""The configuration of a TVflowNET training run (:mod:`pdeflow.tvflownet.train`) and its checks."""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

from .. import datasets
from ..training import ConfigCheck, ckpt_every_option, option, val_every_option

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
    arch: str = option("semiresnet", "architecture, with the paper's sizes (default {default}); 'ensemble' "
                                     "fine-tunes a trained ensemble end to end (--init it, --arch-kwargs its "
                                     "config without 'arch')",
                       choices=("semiresnet", "unet", "lgd", "ensemble"))
    arch_kwargs: dict = option(default_factory=dict, type="json", metavar="JSON",
                               help="constructor arguments, e.g. '{{\"width\": 8}}' "
                                    "(see pdeflow.tvflownet.architectures)")
    channels: int = option(1, type="positive_int", metavar="C", choices=(1, 3),
                           help="image channels: 1 grey (the paper's), 3 colour (RGB photos; the coupled colour TV "
                                "flow, whose norm of grad u couples the channels) (default {default})")
    # data
    data: str | tuple = option(("builtin",), nargs="+", metavar="DIR|builtin",
                               help="training photos, one or more sources: 'builtin' (every built-in photo of the "
                                    "TRAIN split, of every installed package; never a TEST photo, the evaluation's, "
                                    "nor a medical image) and/or folders of PNG/JPEG/TIFF images (searched "
                                    "recursively); a hashed 10%% of all of them is held out for "
                                    "validation unless --val-data is given (default builtin)")
    max_side: int = option(0, type="nonneg_int", metavar="N",
                           help="downscale the training and validation photos to at most N pixels a side "
                                "(area averaging), as Food101's are at most 512 (default 0: as read)")
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
    flowed: float = option(0.0, type="nonneg_float", metavar="F",
                           help="fraction of each step's crops replaced by their own TV flow at a time s ~ "
                                "U[0, --flowed-max] (a coarse reference, dt 0.05) stretched to [0, scale]: the "
                                "inputs of the later stages of the Equivariant wrapper, which composes the "
                                "network in time (default 0: off)")
    flowed_max: float = option(3.0, "the largest of those times s (default {default:g})", type="positive_float",
                               metavar="S")
    init: str | None = option(None, metavar="MODEL",
                              help="start from this model's weights (shipped name, model path, run directory, or "
                                   "a run's checkpoint file last.pt/best.pt; same --arch and --arch-kwargs; a grey "
                                   "U-Net model starts a --channels 3 run inflated to colour)")
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
    grad_weight: float = option(0.0, type="nonneg_float", metavar="W",
                                help="supervised: weight of the gradient-matching term, the relative squared "
                                     "error of the model's vector-Jacobian product d/du0 <u(t), w> against the "
                                     "reference flow's (autograd through tv_flow, implicit differentiation) for "
                                     "the cotangent w = u_ref(t) - another crop of the batch (default 0: off)")
    grad_ref_dt: float = option(0.02, "supervised: time step of the reference flow of that term "
                                      "(default {default:g})", type="positive_float")
    grad_ref_tol: float = option(1e-5, type="positive_float",
                                 help="supervised: duality-gap tolerance of its steps, at most --val-max-iter "
                                      "iterations each (default {default:g}: the reference's gradient is 5 %% off "
                                      "at 1e-5, 15-30 %% at 1e-4 to 1e-3 on 48 px crops)")
    grad_crops: int = option(0, type="nonneg_int", metavar="N",
                             help="supervised: the gradient term on the first N crops of each batch only, as its "
                                  "reference costs more than the rest of the step (default 0: all)")
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
         in ("semiresnet", "unet", "lgd", "ensemble"), "arch", "'semiresnet', 'unet', 'lgd' or 'ensemble'")
    need(isinstance(cfg.arch_kwargs, dict), "arch_kwargs", "a dict of constructor arguments")
    from .architectures import ARCHITECTURES, Ensemble
    key = cfg.arch.lower().replace("-", "").replace("_", "")
    cls = Ensemble if key == Ensemble.arch else ARCHITECTURES[key]   # an ensemble: fine-tuned end to end
    params = [p for p in inspect.signature(cls).parameters if p != "in_channels"]
    need(set(cfg.arch_kwargs) <= set(params), "arch_kwargs",
         f"constructor arguments of {cls.__name__} (among {', '.join(params)})")
    need(cfg.channels in (1, 3), "channels", "1 (grey) or 3 (colour)")
    need(cfg.channels == 1 or key != Ensemble.arch, "channels", "1 for an ensemble (its members fix their channels)")
    need(cfg.channels == 1 or cfg.synthetic == 0, "synthetic", "0 with channels 3 (the generated scenes are grey)")
    need(cfg.channels == 1 or cfg.flowed == 0, "flowed", "0 with channels 3 (its coarse reference is grey)")
    need(cfg.mode in MODES, "mode", f"one of {MODES}")
    need(cfg.loss in ("paper", "official"), "loss", "'paper' or 'official'")
    need(cfg.ut_method in ("jvp", "fd"), "ut_method", "'jvp' or 'fd'")
    need(cfg.phi_target in ("div", "dual"), "phi_target", "'div' or 'dual'")
    need(cfg.lr_schedule in ("constant", "cosine"), "lr_schedule", "'constant' or 'cosine'")
    need(cfg.crop == "mixed" or (str(cfg.crop).isdigit() and int(cfg.crop) >= 2), "crop",
         "a crop size >= 2 (e.g. '32', '96', '256') or 'mixed'")
    need(2 <= cfg.mixed_min < cfg.mixed_max, "mixed_min", "2 <= mixed_min < mixed_max")
    need.numbers("scale", "t_max", "t_power", "lr", "ref_dt", "ref_tol", "val_dt", "val_tol")
    need.numbers("a1", "a2", "phi_weight", "lr_final", "grad_weight", positive=False)
    need.numbers("grad_ref_dt", "grad_ref_tol")
    need.ints("grad_crops", minimum=0)
    need(cfg.grad_weight == 0 or cfg.mode == "supervised", "grad_weight", "0 unless mode is 'supervised'")
    need.numbers("clip", positive=False, optional=True)
    need.trainer()
    need.ints("times_per_image", "ref_max_iter", "val_max_iter", "ref_reuse")
    need(cfg.ref_reuse == 1 or cfg.times_per_image == 1, "ref_reuse",
         "1 with times_per_image > 1 (both set the times of each crop)")
    need.ints("val_size", "val_times", minimum=2)
    need.ints("max_side", minimum=0)
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
    need.numbers("flowed", positive=False)
    need(cfg.flowed <= 1.0, "flowed", "a number in [0, 1]")
    need.numbers("flowed_max")
    need(cfg.init is None or (isinstance(cfg.init, str) and cfg.init != ""), "init", "None or a model name or path")
    need.fractions("val_fraction")


#: The fields of a run's configuration that tell independent trainings of one recipe apart, or that change
#: nothing the run learns (how often it checkpoints, how deterministic its kernels are).
RUN_FIELDS = ("seed", "deterministic", "ckpt_every")


def recipe(config: dict) -> dict:
    """The recipe of a run: its configuration (``config.json``, or a model's ``provenance.train_config``)
    without :data:`RUN_FIELDS`. Runs with equal recipes are independent trainings of one method, the
    paper's "mean ± std over trainings".

    Examples
    --------
    >>> from dataclasses import asdict
    >>> from pdeflow.tvflownet.train import TrainConfig, recipe
    >>> recipe(asdict(TrainConfig(seed=0))) == recipe(asdict(TrainConfig(seed=1)))
    True
    >>> recipe(asdict(TrainConfig(steps=10))) == recipe(asdict(TrainConfig(steps=20)))
    False
    """
    return {k: v for k, v in config.items() if k not in RUN_FIELDS}
