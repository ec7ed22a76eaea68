"""Peter (2022)'s evaluation (Tables 2-4) on held-out photos: masks, inpainting quality, run time.

For each test image and density ``D`` the methods are

* ``random-diffusion`` -- a uniformly random mask of ``round(D H W)`` known pixels, homogeneous diffusion
  inpainting (:func:`pdeflow.inpaint.inpaint_diffusion`);
* ``random-wgan`` -- that random mask, the inpainting WGAN (:func:`~pdeflow.inpaint.learned.gan.inpaint_wgan`,
  random-mask model);
* ``random-residual`` -- that random mask, the residual inpainter (``residual_model``;
  :func:`~pdeflow.inpaint.inpaint_learned`, calibrated);
* ``ps`` -- probabilistic sparsification for diffusion (``metric``: MAE by default, as the paper), diffusion
  inpainting;
* ``ps-mse`` -- the same minimising the MSE (the PS the PSNR and MSE compare against). On grey images PS's mask
  does not depend on the metric: ``|u - f|`` and ``(u - f)^2`` order the candidates alike (the metric only enters
  PS's trace), so one PS run serves ``ps`` and ``ps-mse`` (the report says so);
* ``ps-nlpe`` -- the PS mask improved by non-local pixel exchange (5 cycles of ``|mask|`` exchanges), diffusion
  inpainting;
* ``maskgan`` -- the mask GAN's mask and its jointly trained inpainting generator (MG in the paper);
* ``analytic`` / ``analytic-refine`` -- Belhachmi et al.'s density dithered and snapped
  (:func:`~pdeflow.inpaint.analytic_mask`, sigma :func:`~pdeflow.inpaint.masks.analytic.analytic_sigma`), without /
  with test-time refinement (:func:`~pdeflow.inpaint.refine_mask`, ``refine`` options), diffusion inpainting;
* ``densify`` -- the analytic mask at 30 % of the density grown by adding points at the maxima of the
  inpainting's error (:func:`~pdeflow.inpaint.densify_mask`), diffusion inpainting;
* ``learned`` / ``learned-refine`` -- the mask network's mask (:func:`~pdeflow.inpaint.learned_mask`, one network
  per density), without / with the same refinement, diffusion inpainting;
* ``learned-residual`` -- the mask network's mask inpainted by the residual inpainter
  (:func:`~pdeflow.inpaint.inpaint_learned`, calibrated: its correction weighted per image by cross-validation on
  the known pixels); ``learned-residual-raw``: with ``calibrate=False``;
* ``joint`` -- a mask network and residual inpainter fine-tuned together (stage ``joint`` of
  :mod:`~pdeflow.inpaint.training.residual`, one pair per density;
  :func:`~pdeflow.inpaint.learned.residual.load_joint`): the CPU-sized counterpart of the paper's joint learning
  of masks and inpainting; ``joint-refine``: its mask refined as the ``*-refine`` rows (for diffusion), then
  inpainted by the pair's inpainter for refined masks (:func:`~pdeflow.inpaint.learned.residual.load_joint_refined`,
  fine-tuned on them by ``pdeflow train residual --refine``) where the shipped pair has one, else by its residual
  inpainter;
* ``learned-refine-mse`` / ``joint-refine-mse`` -- the same with the MSE-minimising refinement (``refine_mse``
  options, :data:`~pdeflow.inpaint.masks.refine.REFINE_MSE`): the rows PSNR and MSE compare with ``ps-mse``, as
  the ``*-refine`` rows (mask network's loss, or MAE) are those MAE and SSIM compare with ``ps``.

Random choices come from ``seed`` per crop and density: random masks, PS's and NLPE's candidates, the refined
rows' tile shifts (unless the ``refine`` options name a generator); a run is reproducible.

``reuse``: rows of deterministic methods (PS, PS+NLPE, random) can be copied from an earlier run's
``results.json`` when its crops, PS/NLPE settings and tolerance match; the report says which and from where.

Metrics per image: PSNR (dB, data range 1), MSE and MAE (reported on the 0-255
scale of the paper's Table 3), SSIM (scikit-image's Gaussian SSIM, data range 1),
the distance between the gradient magnitudes of the filled and the true unknown
pixels (``grad_w1``: the 1-Wasserstein distance of their two distributions, 0-255
scale, forward differences; what a critic changes in the texture of the fill, where
the MAE and SSIM reward a smooth fill), the density actually reached, and the run time of the mask (the optimiser or
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
from pathlib import Path

import numpy as np
import torch

from .. import datasets, ops
from .. import io as pio
from ..errors import UserInputError
from ..inpaint.masks.refine import REFINE_MSE, refine_options, refine_setting
from ..inpaint.methods import INPAINT_METHODS, MASK_METHODS, inpaint, make_mask
from ..metrics import mae as mae_metric
from ..metrics import mse as mse_metric
from ..metrics import psnr, ssim
from ..progress import progress_bar
from ._inpaint_report import LABELS, PAPER, figure, report

__all__ = ["METHODS", "LABELS", "PAPER", "test_images", "check_refine", "evaluate", "report", "figure",
           "gradient_distance"]

# The report (the paper's numbers, the tables beside them, the figure) lives in _inpaint_report; this module is
# the evaluation protocol itself. The refinement settings of the *-refine rows are the pillar's
# (pdeflow.inpaint.masks.refine.REFINE): its trainer refines the masks it learns from with them too.

METHODS = ("random-diffusion", "random-wgan", "random-residual", "ps", "ps-mse", "ps-nlpe", "maskgan", "analytic",
           "analytic-refine", "densify", "learned", "learned-refine", "learned-refine-mse", "learned-residual",
           "learned-residual-raw", "joint", "joint-refine", "joint-refine-mse")
#: Methods whose rows an earlier run's results.json may supply (deterministic given crops and settings).
REUSABLE = ("random-diffusion", "ps", "ps-mse", "ps-nlpe")


def gradient_distance(u: torch.Tensor, f: torch.Tensor, mask: torch.Tensor) -> float:
    """The 1-Wasserstein distance between the gradient magnitudes of ``u`` and ``f`` (forward differences,
    0-255 scale) over the unknown pixels of ``mask``: 0 when the fill has the true texture's statistics,
    whatever its pixels; a smooth fill of a textured region is far.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.evaluate.inpaint import gradient_distance
    >>> f = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> mask = torch.zeros_like(f)
    >>> gradient_distance(f.mT, f, mask) < 1e-9 < gradient_distance(torch.zeros_like(f), f, mask)  # f.mT: the same
    True
    """
    unknown = (mask < 0.5).expand_as(f)
    a, b = (torch.linalg.vector_norm(ops.grad(255.0 * x.double()), dim=2)[unknown] for x in (u, f))
    if a.numel() == 0:
        return 0.0
    return float((a.sort().values - b.sort().values).abs().mean())
def _seeded(opts, seed: int):
    """The refine options ``opts`` with their tile shifts drawn from ``seed`` (so refined rows are reproducible,
    as PS's are), unless they name a generator themselves."""
    if not isinstance(opts, dict) or "generator" in opts:
        return opts
    return {**opts, "generator": seed}


def test_images(n_images: int, size: int, *, seed: int = 0, channels: int = 1,
                image_dir=None) -> tuple[torch.Tensor, list[str]]:
    """``n_images`` crops ``(n, C, size, size)`` in [0, 1] and their source names (see the module doc).

    Examples
    --------
    >>> from pdeflow.evaluate.inpaint import test_images
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
    loaded = {"wgan": None, "mask": {}}
    if "random-wgan" in methods:
        try:
            loaded["wgan"] = INPAINT_METHODS["wgan"].load_model(inpainting_model)
        except (FileNotFoundError, ValueError) as e:
            notes.append(f"random + WGAN skipped: {e}")
    if "maskgan" in methods:
        for d in densities:
            spec = (mask_models or {}).get(d, d)
            try:
                model = MASK_METHODS["gan"].load_model(spec, density=d)
            except (FileNotFoundError, ValueError) as e:
                notes.append(f"mask GAN at {d:g} skipped: {e}")
                continue
            if not math.isclose(model.density, d, abs_tol=1e-9):
                notes.append(f"mask GAN at {d:g} skipped: {spec} was trained for density {model.density:g}")
                continue
            loaded["mask"][d] = model
    if {"learned", "learned-refine", "learned-refine-mse", "learned-residual", "learned-residual-raw"} & set(methods):
        loaded["masknet"] = {}
        for d in densities:
            spec = (masknet_models or {}).get(d, d)
            try:
                loaded["masknet"][d] = MASK_METHODS["learned"].load_model(spec, density=d, channels=channels)
            except (FileNotFoundError, ValueError) as e:
                notes.append(f"learned masks at {d:g} skipped: {e}")
    if {"learned-residual", "learned-residual-raw", "random-residual"} & set(methods):
        try:
            loaded["residual"] = INPAINT_METHODS["learned"].load_model(residual_model, channels=channels)
        except (FileNotFoundError, ValueError) as e:
            notes.append(f"learned + residual inpainter skipped: {e}")
    if {"joint", "joint-refine", "joint-refine-mse"} & set(methods):
        from ..inpaint.learned.residual import load_joint, load_joint_refined
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


def check_refine(refine, who: str) -> dict:
    """``refine`` (or ``refine_mse``) as :func:`evaluate` takes it, checked: one dict of
    :func:`~pdeflow.inpaint.refine_mask` options for every density, or a dict ``density -> options``.

    Density keys may be strings (as JSON writes them); they come back as floats. A bad table raises a
    :class:`~pdeflow.errors.UserInputError` that names ``who``.

    Examples
    --------
    >>> from pdeflow.evaluate.inpaint import check_refine
    >>> check_refine({"0.05": {"rounds": 3}}, "--refine")
    {0.05: {'rounds': 3}}
    >>> check_refine({"shifts": 1}, "--refine")
    {'shifts': 1}
    """
    if not isinstance(refine, dict):
        raise UserInputError(f"{who}: expected a JSON object of refine_mask options, or of density -> options")
    numeric = bool(refine) and all(str(k).replace(".", "", 1).isdigit() for k in refine)
    table = {float(k): v for k, v in refine.items()} if numeric else refine
    for opts in (table.values() if numeric else [table]):
        if not isinstance(opts, dict) or not opts and not numeric:
            raise UserInputError(f"{who}: expected a JSON object of refine_mask options, or of density -> options")
        refine_options(opts, who)
    return table


def evaluate(densities=(0.05, 0.1, 0.2), *, n_images: int = 4, size: int = 64, seed: int = 0, channels: int = 1,
             methods=METHODS, image_dir=None, inpainting_model=None, mask_models: dict | None = None,
             ps_p: float = 0.02, ps_q: float = 0.02, nlpe_cycles: int = 5, nlpe_candidates: int = 30,
             metric: str = "mae", tol: float = 1e-6, progress: bool = False, masknet_models: dict | None = None,
             residual_model=None, refine: dict | None = None, reuse=None, joint_models: dict | None = None,
             refine_mse: dict | None = None) -> dict:
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
        The residual inpainter of the ``learned-residual`` and ``random-residual`` rows (default: the shipped
        one).
    joint_models : dict of density -> str, optional
        Jointly fine-tuned pairs per density (what :func:`~pdeflow.inpaint.learned.residual.load_joint` accepts;
        default: the shipped ones).
    refine : dict, optional
        :func:`~pdeflow.inpaint.refine_mask` options of the ``*-refine`` rows, for every density or per
        density (see :func:`~pdeflow.inpaint.masks.refine.refine_setting`; default
        :data:`~pdeflow.inpaint.masks.refine.REFINE`).
    refine_mse : dict, optional
        The same for the ``*-refine-mse`` rows (default :data:`~pdeflow.inpaint.masks.refine.REFINE_MSE`).
    reuse : str, path or dict, optional
        An earlier run's ``results.json`` (or its dict): rows of :data:`REUSABLE` methods are copied from it
        when its crops and settings are the same (see the module doc).

    Examples
    --------
    >>> from pdeflow.evaluate.inpaint import evaluate
    >>> res = evaluate((0.1,), n_images=1, size=16, methods=("random-diffusion", "analytic"))
    >>> res["methods"], sorted(res["summary"]["analytic"]["0.1"])[:4]
    (['random-diffusion', 'analytic'], ['density', 'grad_w1', 'inpaint_s', 'mae255'])
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

    models = _load_models(methods, densities, inpainting_model, mask_models, notes, masknet_models, residual_model,
                          channels, joint_models)
    refine_at = {d: refine_setting(d, refine) for d in densities}
    refine_mse_at = {d: refine_setting(d, refine_mse, REFINE_MSE) for d in densities}
    if models["wgan"] is None and "random-wgan" in methods:
        methods.remove("random-wgan")

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
                if {"random-diffusion", "random-wgan", "random-residual"} & todo:
                    mask, t_mask = _timed(lambda: make_mask(f, d, "random", generator=seed * 1000 + i * 10 + j))
                    if "random-diffusion" in todo:
                        u, t_inp = _timed(lambda: inpaint(f, mask, "diffusion", tol=tol))
                        res["random-diffusion"] = (mask, u, t_mask, t_inp)
                    if "random-wgan" in todo:
                        u, t_inp = _timed(lambda: inpaint(f.float(), mask.float(), "wgan", model=models["wgan"],
                                                          generator=i))
                        res["random-wgan"] = (mask, u.double(), t_mask, t_inp)
                    if "random-residual" in todo and models.get("residual") is not None:
                        u, t_inp = _timed(lambda: inpaint(f, mask.double(), "learned", model=models["residual"]))
                        res["random-residual"] = (mask, u, t_mask, t_inp)
                # PS per metric it minimises: `metric` for ps and ps-nlpe, the MSE for ps-mse
                ps_runs = {}
                for m, met in (("ps", metric), ("ps-nlpe", metric), ("ps-mse", "mse")):
                    if m not in todo or met in ps_runs:
                        continue
                    if channels == 1 and ps_runs:       # grey: the same mask whatever the metric (module doc)
                        ps_runs[met] = next(iter(ps_runs.values()))
                        continue
                    ps_runs[met] = _timed_cpu(functools.partial(
                        make_mask, f, d, "ps", p=ps_p, q=ps_q, metric=met, tol=tol,
                        generator=seed * 1000 + i * 10 + j, progress=False))
                for m, met in (("ps", metric), ("ps-mse", "mse")):
                    if m in todo:
                        ps_mask, t_ps = ps_runs[met]
                        same = next((r for r in res.values() if r[0] is ps_mask), None)
                        u, t_inp = same[1:4:2] if same else _timed(lambda: inpaint(f, ps_mask, "diffusion", tol=tol))
                        res[m] = (ps_mask, u, t_ps, t_inp)
                if "ps-nlpe" in todo:
                    ps_mask, t_ps = ps_runs[metric]
                    nl_mask, t_nl = _timed_cpu(lambda: make_mask(
                        f, d, "nlpe", sparsified=ps_mask, candidates=nlpe_candidates, cycles=nlpe_cycles,
                        metric=metric, tol=tol, generator=seed * 1000 + i * 10 + j, progress=False))
                    u, t_inp = _timed(lambda: inpaint(f, nl_mask, "diffusion", tol=tol))
                    res["ps-nlpe"] = (nl_mask, u, _Seconds.total(t_ps, t_nl), t_inp)
                if {"analytic", "analytic-refine"} & todo:
                    if "analytic" in todo:
                        b, t_mask = _timed_cpu(lambda: make_mask(f, d, "analytic"))
                        u, t_inp = _timed(lambda: inpaint(f, b, "diffusion", tol=tol))
                        res["analytic"] = (b, u, t_mask, t_inp)
                    if "analytic-refine" in todo:
                        b, t_mask = _timed_cpu(lambda: make_mask(f, d, "analytic", refine=seeded(refine_at[d])))
                        u, t_inp = _timed(lambda: inpaint(f, b, "diffusion", tol=tol))
                        res["analytic-refine"] = (b, u, t_mask, t_inp)
                if "densify" in todo:
                    b, t_mask = _timed_cpu(lambda: make_mask(f, d, "densify"))
                    u, t_inp = _timed(lambda: inpaint(f, b, "diffusion", tol=tol))
                    res["densify"] = (b, u, t_mask, t_inp)
                net = models.get("masknet", {}).get(d)
                if net is not None and {"learned", "learned-refine", "learned-refine-mse", "learned-residual",
                                        "learned-residual-raw"} & todo:
                    b, t_mask = _timed_cpu(lambda: make_mask(f.float(), d, "learned", model=net))
                    b = b.double()
                    if "learned" in todo:
                        u, t_inp = _timed(lambda: inpaint(f, b, "diffusion", tol=tol))
                        res["learned"] = (b, u, t_mask, t_inp)
                    for m, cal in (("learned-residual", True), ("learned-residual-raw", False)):
                        if m in todo and models.get("residual") is not None:
                            u, t_inp = _timed(lambda: inpaint(f, b, "learned", model=models["residual"],
                                                              calibrate=cal))
                            res[m] = (b, u, t_mask, t_inp)
                    for m, opts in (("learned-refine", refine_at[d]), ("learned-refine-mse", refine_mse_at[d])):
                        if m in todo:
                            br, t_r = _timed_cpu(lambda: make_mask(f.float(), d, "learned", model=net,
                                                                   refine=seeded(opts)))
                            br = br.double()
                            u, t_inp = _timed(lambda: inpaint(f, br, "diffusion", tol=tol))
                            res[m] = (br, u, t_r, t_inp)
                pair = models.get("joint", {}).get(d)
                for m, opts in (("joint", 0), ("joint-refine", seeded(refine_at[d])),
                                ("joint-refine-mse", seeded(refine_mse_at[d]))):
                    if pair is None or m not in todo:
                        continue
                    b, t_mask = _timed_cpu(lambda: make_mask(f.float(), d, "learned", model=pair[0], refine=opts))
                    b = b.double()
                    inpainter = models.get("joint_refined", {}).get(d, pair[1]) if opts else pair[1]
                    u, t_inp = _timed(lambda: inpaint(f, b, "learned", model=inpainter))
                    res[m] = (b, u, t_mask, t_inp)
                if "maskgan" in todo and d in models["mask"]:
                    model = models["mask"][d]
                    b, t_mask = _timed(lambda: make_mask(f.float(), d, "gan", model=model, generator=i))
                    u, t_inp = _timed(lambda: inpaint(f.float(), b, MASK_METHODS["gan"].inpaint_with, model=model,
                                                      generator=i))
                    res["maskgan"] = (b.double(), u.double(), t_mask, t_inp)
                for m, (mask, u, t_mask, t_inp) in res.items():
                    u = u.clamp(0, 1)
                    per[m][d].append({
                        "image": i, "source": names[i], "psnr": float(psnr(u, f)),
                        "mse255": 255 ** 2 * float(mse_metric(u, f)), "mae255": 255 * float(mae_metric(u, f)),
                        "ssim": float(ssim(u, f)), "grad_w1": gradient_distance(u, f, mask),
                        "density": float(mask.mean()), "mask_s": float(t_mask),
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
                for k in ("psnr", "mse255", "mae255", "ssim", "grad_w1", "density", "mask_s", "inpaint_s",
                          "mask_cpu_s")
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
        "settings": {**settings, "figure_image": shown, "ps_mse_shares_mask": channels == 1 and metric != "mse",
                     "refine": {str(d): v for d, v in refine_at.items()},
                     "refine_mse": {str(d): v for d, v in refine_mse_at.items()},
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
