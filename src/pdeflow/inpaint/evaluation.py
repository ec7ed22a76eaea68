"""Peter (2022)'s evaluation (Tables 2-4) on held-out photos: masks, inpainting quality, run time.

For each test image and density ``D`` the methods are

* ``random-diffusion`` -- a uniformly random mask with ``round(D H W)`` known
  pixels, homogeneous diffusion inpainting (:func:`pdeflow.inpaint.diffuse`);
* ``random-wgan`` -- the same random mask, the inpainting WGAN
  (:func:`~pdeflow.inpaint.learned.gan.gan_inpaint`, random-mask model);
* ``ps`` -- probabilistic sparsification optimised for diffusion (MAE, as the
  paper), diffusion inpainting;
* ``ps-nlpe`` -- the PS mask improved by non-local pixel exchange (5 cycles of
  ``|mask|`` exchanges), diffusion inpainting;
* ``maskgan`` -- the mask GAN's mask and its jointly trained inpainting
  generator (MG in the paper);
* ``analytic`` / ``analytic-refine`` -- Belhachmi et al.'s density dithered
  and snapped (:func:`~pdeflow.inpaint.analytic_mask`, sigma
  :func:`~pdeflow.inpaint.masks.analytic.analytic_sigma`), without / with test-time
  refinement (:func:`~pdeflow.inpaint.refine_mask`, ``refine`` options),
  diffusion inpainting;
* ``learned`` / ``learned-refine`` -- the mask network's mask
  (:func:`~pdeflow.inpaint.learned_mask`, one network per density), without /
  with the same refinement, diffusion inpainting;
* ``learned-residual`` -- the mask network's mask inpainted by the residual
  inpainter (:func:`~pdeflow.inpaint.learned_inpaint`, calibrated: its
  correction weighted per image by cross-validation on the known pixels);
  ``learned-residual-raw``: the same with ``calibrate=False``;
* ``joint`` -- a mask network and a residual inpainter fine-tuned together
  (stage ``joint`` of :mod:`~pdeflow.inpaint.training.residual`, one pair per
  density; :func:`~pdeflow.inpaint.learned.residual.load_joint`): the CPU-sized
  counterpart of the paper's joint learning of masks and inpainting;
  ``joint-refine``: its mask refined at test time as the ``*-refine`` rows
  (for diffusion), then inpainted by the pair's inpainter for refined masks
  (:func:`~pdeflow.inpaint.learned.residual.load_joint_refined`: fine-tuned on them
  by ``pdeflow train residual --refine``) where the shipped pair has one, else
  by its residual inpainter.

Random choices are drawn from ``seed`` per crop and density: the random masks,
PS's and NLPE's candidates, and the refined rows' tile shifts (unless the
``refine`` options name a generator), so a run is reproducible.

``reuse``: rows of methods whose computation is deterministic given the crops
and settings (PS, PS+NLPE, random) can be copied from an earlier run's
``results.json`` instead of recomputed, when its crops, PS/NLPE settings and
tolerance are the same; the report says which rows were reused and from where.

Metrics per image: PSNR (dB, data range 1), MAE (reported on the 0-255 scale
of the paper's Table 3), SSIM (scikit-image's Gaussian SSIM, data range 1),
the density actually reached, and the run time of the mask (the optimiser or
the network, one image at a time) and of the inpainting. ``PS+NLPE`` mask
time includes the PS run it starts from, as the paper's Table 4.

Test images: ``n_images`` crops of ``size`` pixels, crop ``i`` from test photo
``i mod n`` of the built-in TEST split (photos never used in training), or of
the files of ``image_dir``. Methods whose module or model is unavailable are
skipped with a note in the report.

References
----------
.. [1] P. Peter, "A Wasserstein GAN for joint learning of inpainting and spatial optimisation",
       PSIVT 2022, LNCS, Springer, 2022 (arXiv:2202.05623).
"""
from __future__ import annotations

import functools
import json
import math
import platform
import time
from numbers import Real
from pathlib import Path

import numpy as np
import torch

from .. import datasets
from .. import io as pio
from ..errors import UserInputError
from ..metrics import mae as mae_metric
from ..metrics import mse as mse_metric
from ..metrics import psnr, ssim
from ..progress import progress_bar
from ..reporting import Report, format_mean_std

__all__ = ["METHODS", "LABELS", "PAPER", "test_images", "evaluate", "report", "figure", "result_errors",
           "errors_text", "marked", "result_figure"]

METHODS = ("random-diffusion", "random-wgan", "ps", "ps-nlpe", "maskgan", "analytic", "analytic-refine", "learned",
           "learned-refine", "learned-residual", "learned-residual-raw", "joint", "joint-refine")
LABELS = {"random-diffusion": "random + diffusion", "random-wgan": "random + WGAN", "ps": "PS + diffusion",
          "ps-nlpe": "PS+NLPE + diffusion", "maskgan": "mask GAN (MG)", "analytic": "analytic + diffusion",
          "analytic-refine": "analytic+refine + diffusion", "learned": "learned + diffusion",
          "learned-refine": "learned+refine + diffusion", "learned-residual": "learned + residual inpainter",
          "learned-residual-raw": "learned + residual inpainter, uncalibrated",
          "joint": "joint mask + residual (fine-tuned together)",
          "joint-refine": "joint mask+refine + residual"}
#: Methods whose rows an earlier run's results.json may supply (deterministic given crops and settings).
REUSABLE = ("random-diffusion", "ps", "ps-nlpe")
#: Test-time refinement of the ``*-refine`` rows per density (refine_mask options), chosen on selection crops,
#: never the evaluation's: 32 other crops of the built-in TEST photos and 32 other crops of the mate-nature photos
#: (crop seed 1 for both), refined one crop at a time as here, against PS timed in the same run
#: (experiments/inpaint_refine_select.py, benchmarks/results/inpaint/refine_select/). One image runs the search on
#: NumPy vectors (pdeflow.inpaint.masks.refine.SINGLE_IMAGE_PATH): a round costs about a third of what it did, so 2 x 18
#: rounds at 20 % take about the time of the previous 2 x 6. The setting: the most rounds that beat PS in MAE and SSIM
#: on both selection sets at more than 100x PS's speed in a run on a heavily loaded machine (load average ~4 on 2
#: cores; 103-116x there, where the previous setting, 2 x 5 / 2 x 5 / 2 x 6, measured 65-80x; 95-128x in the last
#: evaluation), except at 20 %: 2 x 18 rounds measured 100-107x on the built-in selection crops but 94x in the
#: evaluation, so 20 % keeps a margin for that run-to-run spread, 2 x 14 (107-114x on the built-in selection crops,
#: 115-122x on the nature ones). At 20 % the refinement minimises the MAE instead of the mask network's loss: PS's
#: SSIM is beaten by a wide margin there and its MAE is not.
REFINE = {0.05: {"shifts": 2, "rounds": 10}, 0.1: {"shifts": 2, "rounds": 12},
          0.2: {"shifts": 2, "rounds": 14, "metric": "mae"}}


def _seeded(opts, seed: int):
    """The refine options ``opts`` with their tile shifts drawn from ``seed`` (so refined rows are reproducible,
    as PS's are), unless they name a generator themselves."""
    if not isinstance(opts, dict) or "generator" in opts:
        return opts
    return {**opts, "generator": seed}


def _refine_line(refine) -> str:
    """The report's sentence on the ``*-refine`` rows' setting (results.json ``settings.refine``)."""
    if not refine:
        return ""
    def one(v):
        return f"{v.get('shifts', 1)} x {v.get('rounds', 0)}" + (f" ({v['metric']})" if "metric" in v else "")

    if all(isinstance(v, dict) for v in refine.values()):
        per = "; ".join(f"{float(d):g}: {one(v)}" for d, v in refine.items())
    else:
        per = one(refine)
    return (f" Refinement (tile shifts x exchange rounds, per density; the error minimised is the mask network's "
            f"loss unless named): {per}.")


def refine_setting(density: float, refine: dict | None = None) -> dict:
    """The :func:`~pdeflow.inpaint.refine_mask` options of the ``*-refine`` rows at ``density``.

    ``refine``: a dict of options for every density, or a dict ``density -> options``
    (default :data:`REFINE`); a density it does not list takes the options of the
    nearest one it lists.
    """
    table = REFINE if refine is None else refine
    if not all(isinstance(k, Real) and not isinstance(k, bool) for k in table):
        return dict(table)                      # one setting for every density
    nearest = min(table, key=lambda k: abs(math.log(float(k)) - math.log(float(density))))
    return dict(table[nearest])

#: Peter (2022)'s numbers. Table 2: PSNR on ImageNet 64x64 (random masks: WGAN; MG). Table 3: BSDS500, MAE on
#: 0-255 and SSIM. Table 4: seconds per 128x128 mask on one CPU core (i5-6600K).
PAPER = {
    "psnr": {"random-wgan": {0.05: 18.85, 0.1: 20.78, 0.2: 22.95}, "maskgan": {0.05: 21.66, 0.1: 23.63, 0.2: 25.36}},
    "mae255": {"ps": {0.05: 13.98, 0.1: 9.08, 0.2: 5.19}, "ps-nlpe": {0.05: 10.98, 0.1: 7.51, 0.2: 4.31},
               "maskgan": {0.05: 11.19, 0.1: 8.87, 0.2: 6.70}},
    "ssim": {"ps": {0.05: 0.69, 0.1: 0.80, 0.2: 0.90}, "ps-nlpe": {0.05: 0.70, 0.1: 0.81, 0.2: 0.91},
             "maskgan": {0.05: 0.71, 0.1: 0.79, 0.2: 0.85}},
    "mask_s": {"ps": {0.05: 58.84, 0.1: 33.89, 0.2: 18.86}, "ps-nlpe": {0.05: 251.28, 0.1: 340.61, 0.2: 389.34},
               "maskgan": {0.05: 0.93, 0.1: 0.93, 0.2: 0.93}},
}


def test_images(n_images: int, size: int, *, seed: int = 0, channels: int = 1,
                image_dir=None) -> tuple[torch.Tensor, list[str]]:
    """``n_images`` crops ``(n, C, size, size)`` in [0, 1] and their source names (see the module doc).

    Examples
    --------
    >>> from pdeflow.inpaint.evaluation import test_images
    >>> f, names = test_images(2, 16)                    # crops of the built-in TEST photos
    >>> f.shape, names
    (torch.Size([2, 1, 16, 16]), ['matplotlib/grace_hopper', 'pywt/aero'])
    """
    if image_dir is None:
        pool = datasets.builtin_pool("test", grey=channels == 1, kind="photo")
        names, images = list(pool), list(pool.values())
    else:
        folder = Path(image_dir)
        files = pio.image_files(folder, "image_dir")
        names = [str(p.relative_to(folder)) for p in files]
        images = [pio.read_image(p, grey=channels == 1) for p in files]
    g = torch.Generator().manual_seed(seed)
    crops, labels = [], []
    for i in range(n_images):
        k = i % len(images)
        crops.append(datasets.random_crops([images[k]], 1, size, generator=g))
        labels.append(names[k])
    return torch.cat(crops), labels


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


class _Seconds(float):
    """Wall seconds that also carry the process's CPU seconds (``.cpu``) of the same call."""

    cpu: float

    @classmethod
    def total(cls, *parts: _Seconds) -> _Seconds:
        """The wall and CPU seconds of consecutive calls."""
        out = cls(sum(float(p) for p in parts))
        out.cpu = sum(p.cpu for p in parts)
        return out


def _timed_cpu(fn):
    """Like :func:`_timed`; the seconds also carry ``.cpu``, the CPU time of the call (a loaded machine
    inflates wall time, not the CPU time of a one-thread computation)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    secs = _Seconds(time.perf_counter() - t0)
    secs.cpu = time.process_time() - c0
    return out, secs


def _load_models(methods, densities, inpainting_model, mask_models, notes, masknet_models=None, residual_model=None,
                 channels=1, joint_models=None):
    """The models the methods need; methods that cannot run are removed with a note."""
    from .learned import gan
    loaded = {"wgan": None, "mask": {}}
    if "random-wgan" in methods:
        try:
            loaded["wgan"] = gan.load_inpainting_model(inpainting_model)
        except (FileNotFoundError, ValueError) as e:
            notes.append(f"random + WGAN skipped: {e}")
    if "maskgan" in methods:
        for d in densities:
            spec = (mask_models or {}).get(d, d)
            try:
                model = gan.load_mask_model(spec)
            except (FileNotFoundError, ValueError) as e:
                notes.append(f"mask GAN at {d:g} skipped: {e}")
                continue
            if not math.isclose(model.density, d, abs_tol=1e-9):
                notes.append(f"mask GAN at {d:g} skipped: {spec} was trained for density {model.density:g}")
                continue
            loaded["mask"][d] = model
    if {"learned", "learned-refine", "learned-residual", "learned-residual-raw"} & set(methods):
        from .learned.masknet import load_masknet
        loaded["masknet"] = {}
        for d in densities:
            spec = (masknet_models or {}).get(d, d)
            try:
                loaded["masknet"][d] = load_masknet(spec, density=d, channels=channels)
            except (FileNotFoundError, ValueError) as e:
                notes.append(f"learned masks at {d:g} skipped: {e}")
    if {"learned-residual", "learned-residual-raw"} & set(methods):
        from .learned.residual import load_residual
        try:
            loaded["residual"] = load_residual(residual_model, channels=channels)
        except (FileNotFoundError, ValueError) as e:
            notes.append(f"learned + residual inpainter skipped: {e}")
    if {"joint", "joint-refine"} & set(methods):
        from .learned.residual import load_joint, load_joint_refined
        loaded["joint"] = {}
        for d in densities:
            try:
                loaded["joint"][d] = load_joint((joint_models or {}).get(d), density=d, channels=channels)
            except (FileNotFoundError, ValueError) as e:
                notes.append(f"joint mask + residual at {d:g} skipped: {e}")
                continue
            # the refined row's inpainter: the shipped pair's one fine-tuned on its refined masks, if it has one
            refined = None if (joint_models or {}).get(d) else load_joint_refined(d, channels=channels)
            if refined is not None:
                loaded.setdefault("joint_refined", {})[d] = refined
    return loaded


def _reusable_rows(reuse, methods, settings: dict, notes: list) -> dict:
    """Per-image rows of :data:`REUSABLE` methods from an earlier run with the same crops and settings."""
    if reuse is None:
        return {}
    src = str(reuse) if isinstance(reuse, (str, Path)) else "the given results"
    old = json.loads(Path(reuse).read_text()) if isinstance(reuse, (str, Path)) else reuse
    os_ = old.get("settings", {})
    same = {k: os_.get(k) == settings[k] for k in ("size", "seed", "channels", "image_dir", "ps", "nlpe", "tol")}
    same["images"] = list(os_.get("images", []))[:settings["n_images"]] == settings["images"]
    if not all(same.values()):
        notes.append(f"nothing reused from {src}: different {', '.join(k for k, v in same.items() if not v)}")
        return {}
    rows = {}
    for m in methods:
        if m not in REUSABLE:
            continue
        for d in settings["densities"]:
            per = old.get("per_image", {}).get(m, {}).get(str(d))
            if per and len(per) >= settings["n_images"]:
                rows.setdefault(m, {})[d] = [dict(r, reused=True) for r in per[:settings["n_images"]]]
    if rows:
        what = ", ".join(f"{LABELS[m]} at {', '.join(f'{d:g}' for d in v)}" for m, v in rows.items())
        notes.append(f"rows reused from {src} (same crops, PS/NLPE settings and tolerance; computed by that run, "
                     f"its timings): {what}")
    return rows


def evaluate(densities=(0.05, 0.1, 0.2), *, n_images: int = 4, size: int = 64, seed: int = 0, channels: int = 1,
             methods=METHODS, image_dir=None, inpainting_model=None, mask_models: dict | None = None,
             ps_p: float = 0.02, ps_q: float = 0.02, nlpe_cycles: int = 5, nlpe_candidates: int = 30,
             metric: str = "mae", tol: float = 1e-6, progress: bool = False, masknet_models: dict | None = None,
             residual_model=None, refine: dict | None = None, reuse=None, joint_models: dict | None = None) -> dict:
    """Run the methods on the test images; returns a JSON-ready dict (see :func:`report`).

    Parameters
    ----------
    densities : sequence of float in (0, 1)
    n_images, size, seed, channels, image_dir
        The test images (:func:`test_images`); ``size`` >= 11 (the SSIM window).
    methods : sequence of str
        Among :data:`METHODS`.
    inpainting_model : None or str
        The random-mask inpainting WGAN (default: the shipped one).
    mask_models : dict of density -> str, optional
        Mask GAN per density (default: the shipped ones).
    ps_p, ps_q, nlpe_cycles, nlpe_candidates, metric, tol
        Parameters of PS and NLPE (docs/REFERENCES.md defaults; the paper optimises the MAE).
    masknet_models : dict of density -> str, optional
        Mask network per density (default: the shipped ones).
    residual_model : str, optional
        The residual inpainter (default: the shipped one).
    joint_models : dict of density -> str, optional
        Jointly fine-tuned pairs per density (what :func:`~pdeflow.inpaint.learned.residual.load_joint` accepts;
        default: the shipped ones).
    refine : dict, optional
        :func:`~pdeflow.inpaint.refine_mask` options of the ``*-refine`` rows, for every density or per
        density (see :func:`refine_setting`; default :data:`REFINE`).
    reuse : str, path or dict, optional
        An earlier run's ``results.json`` (or its dict): rows of :data:`REUSABLE` methods are copied from it
        when its crops and settings are the same (see the module doc).

    Examples
    --------
    >>> from pdeflow.inpaint.evaluation import evaluate
    >>> res = evaluate((0.1,), n_images=1, size=16, methods=("random-diffusion", "analytic"))
    >>> res["methods"], sorted(res["summary"]["analytic"]["0.1"])[:4]
    (['random-diffusion', 'analytic'], ['density', 'inpaint_s', 'mae255', 'mask_cpu_s'])
    >>> round(res["summary"]["analytic"]["0.1"]["psnr"]["mean"], 1)
    35.9
    """
    densities = [float(d) for d in densities]
    for d in densities:
        if not 0 < d < 1:
            raise UserInputError(f"densities: each must be in (0, 1) (a fraction of known pixels), got {d!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UserInputError(f"methods: unknown {unknown}; choose among {', '.join(METHODS)}")
    if not (isinstance(size, int) and size >= 11):
        raise UserInputError(f"size: must be an int >= 11 (the SSIM window), got {size!r}")
    if not (isinstance(n_images, int) and n_images >= 1):
        raise UserInputError(f"n_images: must be a positive int, got {n_images!r}")
    notes: list[str] = []
    methods = list(methods)
    from .diffusion import diffuse
    from .masks.sparsification import nonlocal_pixel_exchange, probabilistic_sparsification, random_mask

    models = _load_models(methods, densities, inpainting_model, mask_models, notes, masknet_models, residual_model,
                          channels, joint_models)
    refine_at = {d: refine_setting(d, refine) for d in densities}
    from .learned.masknet import learned_mask
    from .learned.residual import learned_inpaint
    from .masks.analytic import analytic_mask, analytic_sigma
    if models["wgan"] is None and "random-wgan" in methods:
        methods.remove("random-wgan")

    from .learned.gan import gan_inpaint, gan_mask
    f_all, names = test_images(n_images, size, seed=seed, channels=channels, image_dir=image_dir)
    settings = {"densities": densities, "n_images": n_images, "size": size, "seed": seed, "channels": channels,
                "images": names, "image_dir": None if image_dir is None else str(image_dir),
                "ps": {"p": ps_p, "q": ps_q, "metric": metric}, "nlpe": {"cycles": nlpe_cycles,
                "candidates": nlpe_candidates, "metric": metric}, "tol": tol}
    reused = _reusable_rows(reuse, methods, settings, notes)
    run = {m: {d for d in densities if d not in reused.get(m, {})} for m in methods}
    per = {m: {d: list(reused.get(m, {}).get(d, [])) for d in densities} for m in methods}
    # the figure shows the most textured crop (a flat one says nothing about where masks go)
    shown = int(f_all.flatten(1).std(1).argmax())
    examples = {}                                      # image `shown`: (mask, u) per method and density
    tasks = n_images * len(densities)
    with progress_bar(total=tasks, enabled=progress, desc="evaluate inpainting", unit="image") as bar:
        for i in range(n_images):
            f = f_all[i:i + 1].double()               # the solvers and metrics in float64
            for j, d in enumerate(densities):
                res = {}
                seeded = functools.partial(_seeded, seed=seed * 1000 + i * 10 + j)
                todo = {m for m in methods if d in run[m]}
                if {"random-diffusion", "random-wgan"} & todo:
                    mask, t_mask = _timed(lambda: random_mask((1, 1, size, size), d, generator=seed * 1000 + i * 10 + j,
                                                              dtype=f.dtype))
                    if "random-diffusion" in todo:
                        u, t_inp = _timed(lambda: diffuse(f, mask, tol=tol))
                        res["random-diffusion"] = (mask, u, t_mask, t_inp)
                    if "random-wgan" in todo:
                        u, t_inp = _timed(lambda: gan_inpaint(f.float(), mask.float(), models["wgan"], generator=i))
                        res["random-wgan"] = (mask, u.double(), t_mask, t_inp)
                if {"ps", "ps-nlpe"} & todo:
                    ps_mask, t_ps = _timed_cpu(lambda: probabilistic_sparsification(
                        f, d, p=ps_p, q=ps_q, metric=metric, tol=tol, generator=seed * 1000 + i * 10 + j,
                        progress=False))
                    if "ps" in todo:
                        u, t_inp = _timed(lambda: diffuse(f, ps_mask, tol=tol))
                        res["ps"] = (ps_mask, u, t_ps, t_inp)
                    if "ps-nlpe" in todo:
                        nl_mask, t_nl = _timed_cpu(lambda: nonlocal_pixel_exchange(
                            f, ps_mask, candidates=nlpe_candidates, cycles=nlpe_cycles, metric=metric, tol=tol,
                            generator=seed * 1000 + i * 10 + j, progress=False))
                        u, t_inp = _timed(lambda: diffuse(f, nl_mask, tol=tol))
                        res["ps-nlpe"] = (nl_mask, u, _Seconds.total(t_ps, t_nl), t_inp)
                if {"analytic", "analytic-refine"} & todo:
                    sig = analytic_sigma(d)
                    if "analytic" in todo:
                        b, t_mask = _timed_cpu(lambda: analytic_mask(f, d, sigma=sig))
                        u, t_inp = _timed(lambda: diffuse(f, b, tol=tol))
                        res["analytic"] = (b, u, t_mask, t_inp)
                    if "analytic-refine" in todo:
                        b, t_mask = _timed_cpu(lambda: analytic_mask(f, d, sigma=sig, refine=seeded(refine_at[d])))
                        u, t_inp = _timed(lambda: diffuse(f, b, tol=tol))
                        res["analytic-refine"] = (b, u, t_mask, t_inp)
                net = models.get("masknet", {}).get(d)
                if net is not None and {"learned", "learned-refine", "learned-residual", "learned-residual-raw"} & todo:
                    b, t_mask = _timed_cpu(lambda: learned_mask(f.float(), d, model=net))
                    b = b.double()
                    if "learned" in todo:
                        u, t_inp = _timed(lambda: diffuse(f, b, tol=tol))
                        res["learned"] = (b, u, t_mask, t_inp)
                    for m, cal in (("learned-residual", True), ("learned-residual-raw", False)):
                        if m in todo and models.get("residual") is not None:
                            u, t_inp = _timed(lambda: learned_inpaint(f, b, model=models["residual"], calibrate=cal))
                            res[m] = (b, u, t_mask, t_inp)
                    if "learned-refine" in todo:
                        br, t_r = _timed_cpu(lambda: learned_mask(f.float(), d, model=net, refine=seeded(refine_at[d])))
                        br = br.double()
                        u, t_inp = _timed(lambda: diffuse(f, br, tol=tol))
                        res["learned-refine"] = (br, u, t_r, t_inp)
                pair = models.get("joint", {}).get(d)
                for m, opts in (("joint", 0), ("joint-refine", seeded(refine_at[d]))):
                    if pair is None or m not in todo:
                        continue
                    b, t_mask = _timed_cpu(lambda: learned_mask(f.float(), d, model=pair[0], refine=opts))
                    b = b.double()
                    inpainter = models.get("joint_refined", {}).get(d, pair[1]) if opts else pair[1]
                    u, t_inp = _timed(lambda: learned_inpaint(f, b, model=inpainter))
                    res[m] = (b, u, t_mask, t_inp)
                if "maskgan" in todo and d in models["mask"]:
                    model = models["mask"][d]
                    b, t_mask = _timed(lambda: gan_mask(f.float(), d, model, generator=i))
                    u, t_inp = _timed(lambda: gan_inpaint(f.float(), b, model, generator=i))
                    res["maskgan"] = (b.double(), u.double(), t_mask, t_inp)
                for m, (mask, u, t_mask, t_inp) in res.items():
                    u = u.clamp(0, 1)
                    per[m][d].append({
                        "image": i, "source": names[i], "psnr": float(psnr(u, f)),
                        "mae255": 255 * float(mae_metric(u, f)),
                        "ssim": float(ssim(u, f)), "density": float(mask.mean()), "mask_s": float(t_mask),
                        "inpaint_s": t_inp, **({"mask_cpu_s": t_mask.cpu} if hasattr(t_mask, "cpu") else {})})
                    if i == shown:
                        examples[(m, d)] = (mask[0].float(), u[0].float())
                bar.update(1)

    summary = {}
    for m in methods:
        for d in densities:
            rows = per[m][d]
            if not rows:
                continue
            summary.setdefault(m, {})[str(d)] = {
                k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows])),
                    "n": len(rows)}
                for k in ("psnr", "mae255", "ssim", "density", "mask_s", "inpaint_s", "mask_cpu_s")
                if all(k in r for r in rows)}
    model_info = {}
    if models["wgan"] is not None:
        model_info["random-wgan"] = _provenance(models["wgan"])
    for d, mdl in models["mask"].items():
        model_info[f"maskgan-{d:g}"] = _provenance(mdl)
    for d, mdl in models.get("masknet", {}).items():
        model_info[f"masknet-{d:g}"] = _provenance(mdl)
    if models.get("residual") is not None:
        model_info["residual-inpainter"] = _provenance(models["residual"])
    for d, (mask_net, inpainter) in models.get("joint", {}).items():
        model_info[f"joint-mask-{d:g}"] = _provenance(mask_net)
        model_info[f"joint-inpainter-{d:g}"] = _provenance(inpainter)
    for d, inpainter in models.get("joint_refined", {}).items():
        model_info[f"joint-inpainter-refined-{d:g}"] = _provenance(inpainter)
    return {
        "settings": {**settings, "figure_image": shown, "refine": {str(d): v for d, v in refine_at.items()},
                     "reused": sorted(reused),
                     "torch_threads": torch.get_num_threads(), "torch": str(torch.__version__),
                     "cpu": platform.processor() or platform.machine()},
        "methods": methods, "summary": summary, "per_image": {m: {str(d): v for d, v in per[m].items()}
                                                                for m in methods},
        "models": model_info, "notes": notes, "paper": {k: {m: {str(d): v for d, v in dv.items()}
                                                             for m, dv in t.items()} for k, t in PAPER.items()},
        "_examples": examples, "_shown": f_all[shown].float(),
    }


def _provenance(model) -> dict:
    meta = getattr(model, "meta", {}) or {}
    prov = meta.get("provenance", {})
    return {"config": meta.get("config"), "steps": prov.get("steps"), "wall_time_s": prov.get("wall_time_s"),
            "val_metric": prov.get("val_metric"), "created": prov.get("created")}


def _fmt(cell: dict | None, key: str, digits: int) -> str:
    if cell is None:
        return "--"
    v = cell[key]
    return format_mean_std(v["mean"], v["std"], v.get("n"), digits)


def _paper(key: str, m: str, d: float, digits: int) -> str:
    v = PAPER.get(key, {}).get(m, {}).get(d)
    return "--" if v is None else f"{v:.{digits}f}"


def report_markdown(results: dict) -> str:
    """The report as markdown (tables 2-4 of Peter (2022) beside this run's numbers)."""
    s = results["settings"]
    dens = s["densities"]
    summ = results["summary"]
    cell = lambda m, d: summ.get(m, {}).get(str(d))  # noqa: E731
    lines = ["# Sparse inpainting: Tables 2-4 of Peter (2022) on held-out photos", "",
             f"{s['n_images']} crops of {s['size']}x{s['size']} px ({'grey' if s['channels'] == 1 else 'colour'}) "
             f"from {'the built-in TEST photos' if s['image_dir'] is None else s['image_dir']} "
             f"({', '.join(sorted(set(s['images'])))}), seed {s['seed']}. Mean ± std over images. "
             f"Torch {s['torch']}, {s['torch_threads']} thread(s), CPU {s['cpu']}.",
             f"PS p={s['ps']['p']}, q={s['ps']['q']}; NLPE {s['nlpe']['cycles']} cycles of |mask| exchanges, "
             f"{s['nlpe']['candidates']} candidates; both minimise the {s['ps']['metric'].upper()}; diffusion solved "
             f"to relative residual {s['tol']:g}." + _refine_line(s.get("refine")), ""]
    if results["notes"]:
        lines += ["Notes:", ""] + [f"- {n}" for n in results["notes"]] + [""]
    lines += ["## PSNR in dB (Table 2; the paper: ImageNet 64x64)", "",
              "| density | " + " | ".join(LABELS[m] for m in results["methods"]) + " | paper WGAN random | paper MG |",
              "|---" * (len(results["methods"]) + 3) + "|"]
    for d in dens:
        lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), "psnr", 2) for m in results["methods"])
                     + f" | {_paper('psnr', 'random-wgan', d, 2)} | {_paper('psnr', 'maskgan', d, 2)} |")
    for key, title, digits in (("mae255", "MAE on the 0-255 scale (Table 3a; the paper: BSDS500)", 2),
                               ("ssim", "SSIM (Table 3b)", 3)):
        lines += ["", f"## {title}", "",
                  "| density | " + " | ".join(LABELS[m] for m in results["methods"])
                  + " | paper PS | paper PS+NLPE | paper MG |", "|---" * (len(results["methods"]) + 4) + "|"]
        for d in dens:
            lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), key, digits) for m in results["methods"])
                         + f" | {_paper(key, 'ps', d, digits)} | {_paper(key, 'ps-nlpe', d, digits)}"
                         f" | {_paper(key, 'maskgan', d, digits)} |")
    lines += ["", "## Density reached", "",
              "| density | " + " | ".join(LABELS[m] for m in results["methods"]) + " |",
              "|---" * (len(results["methods"]) + 1) + "|"]
    for d in dens:
        lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), "density", 4) for m in results["methods"]) + " |")
    timed = [m for m in ("ps", "ps-nlpe", "maskgan", "analytic", "analytic-refine", "learned", "learned-refine")
             if m in results["methods"]]
    lines += ["", "## Seconds per mask, one image at a time (Table 4; the paper: 128x128, one i5-6600K core)", "",
              "| density | " + " | ".join(LABELS[m] for m in timed) + " | PS / MG | PS+NLPE / MG | paper PS | "
              "paper PS+NLPE | paper MG (CPU) |", "|---" * (len(timed) + 6) + "|"]
    for d in dens:
        mg = cell("maskgan", d)
        ratio = lambda m: (f"{cell(m, d)['mask_s']['mean'] / mg['mask_s']['mean']:.0f}x"  # noqa: E731
                           if mg is not None and cell(m, d) is not None else "--")
        lines.append(f"| {d:g} | " + " | ".join(_fmt(cell(m, d), "mask_s", 3) for m in timed)
                     + f" | {ratio('ps')} | {ratio('ps-nlpe')} | {_paper('mask_s', 'ps', d, 2)} | "
                     f"{_paper('mask_s', 'ps-nlpe', d, 2)} | {_paper('mask_s', 'maskgan', d, 2)} |")
    cpu = [m for m in results["methods"] if any("mask_cpu_s" in (cell(m, d) or {}) for d in dens)]
    if cpu:
        ps_ref = "ps" if any("mask_cpu_s" in (cell("ps", d) or {}) for d in dens) else None
        lines += ["", "## CPU milliseconds per mask (one image at a time, one thread)", "",
                  "Wall time on a loaded shared machine overstates these; CPU time is what the computation costs."
                  + (" Ratio: PS's CPU seconds per mask over this CPU time (both measured in this run)." if ps_ref
                     else ""), "",
                  "| density | " + " | ".join(LABELS[m] + (" (PS / it)" if ps_ref else "") for m in cpu) + " |",
                  "|---" * (len(cpu) + 1) + "|"]
        for d in dens:
            row = []
            for m in cpu:
                c = cell(m, d)
                if c is None or "mask_cpu_s" not in c:
                    row.append("--")
                    continue
                ms = 1000 * c["mask_cpu_s"]["mean"]
                ps = cell("ps", d) if ps_ref else None
                ratio = (f" ({ps['mask_cpu_s']['mean'] / c['mask_cpu_s']['mean']:.0f}x)"
                         if ps is not None and "mask_cpu_s" in ps and m != "ps" else "")
                row.append(f"{ms:.0f}{ratio}")
            lines.append(f"| {d:g} | " + " | ".join(row) + " |")
    if results["models"]:
        lines += ["", "## Models", ""]
        for name, info in results["models"].items():
            lines.append(f"- {name}: {json.dumps(info.get('config'))}, {info.get('steps')} steps, "
                         f"{info.get('wall_time_s')} s of training, created {info.get('created')}")
    lines += ["", "Inpainting times (seconds per image) and per-image values are in results.json; "
              f"the figure shows image {s['figure_image']} ({s['images'][s['figure_image']]}), the crop with "
              "the largest standard deviation.", ""]
    return "\n".join(lines)


def figure(results: dict):
    """The shown crop (``settings["figure_image"]``): per density a row of masks (known
    pixels white), a row of inpaintings and a row of zoomed crops of the inpaintings: the window
    of a quarter of the side where the inpaintings err most (outlined on the original), every
    crop with one contrast stretch (1-99 % of the values there), stated in the panel titles.

    Examples
    --------
    >>> from pdeflow.inpaint.evaluation import evaluate, figure
    >>> fig = figure(evaluate((0.1,), n_images=1, size=16, methods=("analytic",)))
    >>> len(fig.axes)                                    # original + one method, three rows per density
    6
    """
    from .. import viz
    ex = results["_examples"]
    methods = [m for m in results["methods"] if any((m, d) in ex for d in results["settings"]["densities"])]
    dens = results["settings"]["densities"]
    f0 = results["_shown"]
    ncols = len(methods) + 1
    win = viz.zoom_window(sum(((u - f0).abs() for _, u in ex.values()), torch.zeros_like(f0)),
                          max(4, min(f0.shape[-2:]) // 4))
    zoom = min(f0.shape[-2:]) / win[2]
    lo, hi = viz.robust_range(torch.cat([viz.crop(f0, win)] + [viz.crop(u, win) for _, u in ex.values()]))
    zlabel = f"zoom x{zoom:.3g}, {viz.stretch_label(lo, hi)}"
    fig = viz.figure(2.2 * ncols, 2.3 * 3 * len(dens) + 0.5)
    axes = fig.subplots(3 * len(dens), ncols, squeeze=False)
    for r, d in enumerate(dens):
        viz.show_image(axes[3 * r, 0], f0, "original")
        viz.mark_window(axes[3 * r, 0], win)
        axes[3 * r + 1, 0].set_axis_off()
        viz.show_image(axes[3 * r + 2, 0], viz.stretch(viz.crop(f0, win), lo, hi), f"original,\n{zlabel}")
        for c, m in enumerate(methods, start=1):
            if (m, d) not in ex:
                for k in range(3):
                    axes[3 * r + k, c].set_axis_off()
                continue
            mask, u = ex[(m, d)]
            mark = torch.where(mask.bool().expand_as(f0), torch.ones_like(f0), 0.5 * f0)
            viz.show_image(axes[3 * r, c], mark, f"{LABELS[m]}, mask {float(mask.mean()):.3f}")
            err = 255 * float((u - f0).abs().mean())
            viz.show_image(axes[3 * r + 1, c], u, f"inpainted, MAE {err:.1f}")
            viz.show_image(axes[3 * r + 2, c], viz.stretch(viz.crop(u, win), lo, hi), f"inpainted,\n{zlabel}")
    for ax in axes[2::3].ravel():
        ax.title.set_fontsize(7)
    fig.suptitle("known pixels white over the dimmed image; inpainting below; then the outlined window (where "
                 f"the inpaintings err most) zoomed x{zoom:.3g}, contrast-stretched [{lo:.2f}, {hi:.2f}] to "
                 "black-white (densities " + ", ".join(f"{d:g}" for d in dens) + ")", fontsize=10, wrap=True)
    return fig


def report(results: dict) -> Report:
    """``report.md``, ``results.json`` and ``inpainting.png`` of :func:`evaluate`'s results, as a
    :class:`~pdeflow.reporting.Report` (write it with ``.write(out_dir)``: all files or none).

    Examples
    --------
    >>> import os, tempfile
    >>> from pdeflow.inpaint.evaluation import evaluate, report
    >>> rep = report(evaluate((0.1,), n_images=1, size=16, methods=("analytic",)))
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = rep.write(out)                           # the paths written
    ...     print(sorted(os.listdir(out)))
    ['inpainting.png', 'report.md', 'results.json']
    """
    rep = Report()
    rep.add_text("report.md", report_markdown(results))
    rep.add_json("results.json", {k: v for k, v in results.items() if not k.startswith("_")})
    rep.add_figure("inpainting.png", figure(results))
    return rep


# --------------------------------------------------------------------------- one result


def result_errors(f: torch.Tensor, u: torch.Tensor) -> dict:
    """MSE, PSNR, MAE and SSIM of one inpainting ``u`` (clipped to [0, 1]) against ``f``, on [0, 1].

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.evaluation import result_errors
    >>> e = result_errors(torch.zeros(1, 16, 16), torch.full((1, 16, 16), 0.5))
    >>> e["mse"], e["mae"]
    (0.25, 0.5)
    """
    f64, u64 = f.double().cpu(), u.double().cpu().clamp(0, 1)
    return {"mse": float(mse_metric(f64, u64)), "psnr": float(psnr(f64, u64, data_range=1.0)),
            "mae": float(mae_metric(f64, u64)), "ssim": float(ssim(f64, u64, data_range=1.0))}


def errors_text(e: dict) -> str:
    """:func:`result_errors` as one line of text.

    Examples
    --------
    >>> from pdeflow.inpaint.evaluation import errors_text
    >>> errors_text({"mse": 0.25, "psnr": 6.02, "mae": 0.5, "ssim": 0.1})
    'MSE 0.25, PSNR 6.02 dB, MAE 0.5000, SSIM 0.1000'
    """
    return f"MSE {e['mse']:.3g}, PSNR {e['psnr']:.2f} dB, MAE {e['mae']:.4f}, SSIM {e['ssim']:.4f}"


def marked(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RGB (3, H, W): the image at half brightness with the known pixels in red.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.evaluation import marked
    >>> marked(torch.ones(1, 2, 2), torch.eye(2)[None])[:, 0, 1].tolist()
    [0.5, 0.5, 0.5]
    """
    rgb = 0.5 * (f.expand(3, *f.shape[-2:]) if f.shape[0] == 1 else f).clamp(0, 1)
    red = torch.tensor([1.0, 0.1, 0.1], dtype=rgb.dtype).view(3, 1, 1).expand_as(rgb)
    return torch.where(mask.bool(), red, rgb)


def result_figure(f, mask, u, title: str):
    """Input, mask, known pixels, inpainting and error; below, a zoomed crop (a quarter of the
    side, where the error is largest, outlined above) of the input and the inpainting, with one
    contrast stretch (1-99 % of their values there, stated in the titles), and of the error
    (what ``pdeflow mask`` and ``pdeflow inpaint`` write).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import diffuse, random_mask
    >>> from pdeflow.inpaint.evaluation import result_figure
    >>> f = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> m = random_mask((1, 16, 16), 0.2, generator=1)
    >>> fig = result_figure(f, m, diffuse(f, m), "example")
    >>> len(fig.subfigs)
    2
    """
    from .. import viz
    panels = [(f, "input"), (mask.expand(1, *mask.shape[-2:]).float(), "mask (white = known)"),
              (marked(f, mask), "known pixels (red)"), (u.clamp(0, 1), "inpainted")]
    err = (u - f).abs().amax(0, keepdim=True)
    scale = float(err.max())
    panels.append(((err / scale) if scale > 0 else err, f"|error| (white = {scale:.3g})"))
    win = viz.zoom_window(err[0], max(8, min(f.shape[-2:]) // 4))
    zoom = min(f.shape[-2:]) / win[2]
    lo, hi = viz.robust_range(torch.cat([viz.crop(f, win), viz.crop(u, win)]))
    zerr = viz.crop(err, win)
    zscale = float(zerr.max())
    zoomed = [(viz.stretch(viz.crop(f, win), lo, hi), f"input, zoom x{zoom:.3g}\n{viz.stretch_label(lo, hi)}"),
              (viz.stretch(viz.crop(u, win), lo, hi), f"inpainted, zoom x{zoom:.3g}\n{viz.stretch_label(lo, hi)}"),
              ((zerr / zscale) if zscale > 0 else zerr, f"|error|, zoom x{zoom:.3g}\n(white = {zscale:.3g})")]
    fig = viz.figure(2.7 * len(panels), 6.9)
    top, bottom = fig.subfigures(2, 1)
    axes = viz.image_grid(top, panels, len(panels))
    for ax in (axes[0], axes[3]):
        viz.mark_window(ax, win)
    viz.image_grid(bottom, zoomed, len(panels))
    fig.suptitle(title, fontsize=9)
    bottom.suptitle("the outlined window, zoomed; input and inpainting contrast-stretched alike "
                    "(their 1-99 % range there to black-white)", fontsize=8)
    return fig
