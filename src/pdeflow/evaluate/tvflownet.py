"""The evaluation protocol of TVflowNET (Grossmann et al., 2022, §4, Tables 1-7 and 9) and a report writer.

Paper convention (official test code, docs/REFERENCES.md)
----------------------------------------------------
* images in [0, 1] are multiplied by :data:`PAPER_SCALE` = 5 before the flow;
* 50 times ``linspace(0, 0.98, 50)`` (:func:`paper_times`);
* the network gets ``5 * img`` and its outputs are divided by 5; PSNR and SSIM
  with ``data_range = 1`` as the official test code computes them
  (:data:`PAPER_METRICS`, :data:`METRICS`): the PSNR of each image's whole
  stack of frames, mean +- standard deviation over images, and the SSIM of
  each frame by scikit-image's default ``structural_similarity`` (7x7 uniform
  window, sample covariance; ``pdeflow.metrics.ssim(window="uniform")``), mean
  +- standard deviation over images and times.  The per-frame PSNR and the
  Gaussian-window SSIM are reported beside them;
* ``u`` is compared with the model-driven reference; ``div phi`` with the
  reference's ``u_t`` (divided by 5 as well);
* 16 held-out images per size and per image type by default (the paper: 40-200).

Times are PDE times of ``u_t = div(grad u / |grad u|)`` for the 5x image: the
network's ``t`` is PDE time because loss (12) uses the true ``du/dt``, and the
reference :func:`reference_flow` is pdeflow's implicit Euler TV flow (each step
an ROF problem solved to a relative duality gap ``tol``, warm started), in PDE
time too.  (Gilboa's MATLAB code, which the paper's ground truth descends
from, takes steps of ``2*dt`` where it says ``dt``; see docs/REFERENCES.md.)

PSNR values are capped at :data:`PSNR_CAP` dB so that identical images (the
initial frame of a reference, the telescoping reconstruction of Table 7) do
not make means infinite.

Reference flows are the expensive part on a CPU; :func:`reference_flow`
caches each image's flow on disk, keyed by a hash of the image and of the
times, ``dt``, ``tol`` and solver, written atomically.

Entry points: :func:`evaluate` (all tables) and :func:`pdeflow.evaluate.tvflownet_report.report`
(``report.md`` with the paper's numbers beside ours, ``results.json`` and PNG
figures, as a :class:`~pdeflow.reporting.Report`).  Each table also has its own function.  Models are any
``nn.Module``/callable ``model(u0, t) -> (u, phi)`` with ``u0`` ``(B, C, H, W)``,
``t`` a ``(B,)`` tensor and ``phi`` ``(B, C, 2, H, W)``.

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import datetime
import platform
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from .. import datasets, ops
from ..errors import UserInputError
from ..progress import progress_bar
from ..reporting import mean_std
from ..tv.spectral import spectral_from_stack
from ..tvflownet.joint import joint_optimise, paper_iterations
from ..tvflownet.symmetry import composes_in_time
from ._tvflownet_inputs import (
    Model,
    colour_photo_names,
    folder_files,
    model_dtype,
    model_flow,
    natural_images,
    scaled,
    time_derivatives,
    type_images,
)
from ._tvflownet_metrics import (
    METRICS,
    PAPER_METRICS,
    SSIM_VARIANTS,
    compare,
    frame_metrics,
    metric_stats,
    metric_values,
    stack_psnr,
)
from ._tvflownet_timing import evaluate_timing
from .tvflownet_paper import (
    PAPER,
    PAPER_SCALE,
    PSNR_CAP,
    model_in_channels,
    model_recipe,
    paper_key,
    paper_times,
    source_provenances,
    unwrap_model,
)
from .tvflownet_reference import default_cache_dir, reference_flow

__all__ = [
    "PAPER_SCALE",
    "PSNR_CAP",
    "PAPER",
    "paper_times",
    "default_cache_dir",
    "reference_flow",
    "model_flow",
    "time_derivatives",
    "METRICS",
    "PAPER_METRICS",
    "SSIM_VARIANTS",
    "frame_metrics",
    "stack_psnr",
    "natural_images",
    "model_channels",
    "colour_photo_names",
    "type_images",
    "paper_key",
    "evaluate_sizes",
    "evaluate_heldout",
    "evaluate_types",
    "with_wrapped",
    "evaluate_homogeneity",
    "evaluate_spectral",
    "evaluate_timing",
    "evaluate_joint",
    "evaluate",
]

# The metrics (_tvflownet_metrics), the test images and model flows (_tvflownet_inputs) the tables are made of,
# and Table 9's timing (_tvflownet_timing) live in modules of their own.

# =========================================================================== tables


def evaluate_sizes(models: Mapping[str, Model], *, sizes=(32, 96, 256), n_images: int = 16, times=None,
                   scale: float = PAPER_SCALE, seed: int = 0, image_dir=None, ref_kwargs=None, device=None,
                   progress: bool = False, keep_example: bool = True) -> dict:
    """Tables 2-4: u (PSNR, SSIM) and div phi (PSNR, SSIM) vs the reference at each size.

    Returns ``{"sizes": [...], "models": {name: {size: metrics}}, "example": ...}``
    with metrics ``u_psnr, u_ssim, div_psnr, div_ssim`` as ``[mean, std]`` over images
    and times.  ``example`` holds one image's stacks (for the figure).

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import evaluate_sizes
    >>> ref = {"dt": 0.1, "tol": 1e-4, "cache_dir": False}   # a coarse reference, not cached
    >>> out = evaluate_sizes({"semiresnet": load("semiresnet")}, sizes=(16,), n_images=1, times=[0.0, 0.1, 0.2],
    ...                      ref_kwargs=ref)
    >>> sorted(out["models"]["semiresnet"][16])[:4]
    ['div_psnr', 'div_psnr_frames', 'div_ssim', 'div_ssim_gaussian']
    """
    times = paper_times() if times is None else [float(t) for t in times]
    ref_kwargs = dict(ref_kwargs or {})
    channels = model_channels(models)
    out = {"sizes": [int(s) for s in sizes], "models": {name: {} for name in models}, "example": None,
           **({"channels": channels} if channels != 1 else {})}
    ex_size = int(sizes[len(sizes) // 2])
    # the reference flow and each model cost about the pixels of a size: the time left weighs them so
    costs = [float(s) ** 2 for s in sizes for _ in range(1 + len(models))]
    with progress_bar(total=len(costs), costs=costs, enabled=progress, desc="tables 2-4") as bar:
        for size in sizes:
            imgs = natural_images(size, n_images, seed=seed, image_dir=image_dir, channels=channels)
            x = scaled(imgs, scale)
            ref_u, ref_ut = reference_flow(x, times, **ref_kwargs)
            bar.update(1)
            for name, model in models.items():
                u, d = model_flow(model, x, times)
                out["models"][name][int(size)] = compare(u, d, ref_u, ref_ut, scale)
                if keep_example and out["example"] is None and int(size) == ex_size:
                    out["example"] = {"size": int(size), "model": name, "times": times,
                                      "u": u[:, 0] / scale, "div": d[:, 0] / scale,
                                      "ref_u": ref_u[:, 0] / scale, "ref_ut": ref_ut[:, 0] / scale}
                bar.update(1)
    return out


def model_channels(models: Mapping[str, Model]) -> int:
    """The image channels every model of ``models`` takes (1 for none): 1, the paper's grey models, or 3,
    colour models, evaluated on colour crops against the coupled colour flow. Models of both kinds in
    one evaluation are refused (their crops, and so their references, differ).

    Examples
    --------
    >>> from pdeflow.tvflownet import SemiResNet, load
    >>> from pdeflow.evaluate.tvflownet import model_channels
    >>> model_channels({"grey": load("semiresnet")}), model_channels({"colour": SemiResNet(in_channels=3)})
    (1, 3)
    """
    found = {model_in_channels(m) for m in models.values()}
    if len(found) > 1:
        raise UserInputError(f"models: grey and colour models in one evaluation ({sorted(found)} channels); "
                             "evaluate each kind on its own")
    return found.pop() if found else 1


def _training_sources(model) -> list[Path]:
    """The folders a model's provenance names among its training and validation data (what
    :mod:`pdeflow.tvflownet.train` records: ``provenance.data.{train,validation}``, their ``sources`` and
    ``path``; for an average of models, its sources'), resolved; ``"builtin"`` and unknown metadata give none."""
    found = []
    for holder in (model, unwrap_model(model)):
        provs = list(source_provenances((getattr(holder, "meta", None) or {}).get("provenance", {})))
        datas = [p.get("data", {}) for p in provs]
        parts = [part for data in datas if isinstance(data, Mapping) for part in data.values()]
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            srcs = part.get("sources", [])
            for src in [*(srcs if isinstance(srcs, list) else []), part.get("path")]:
                if isinstance(src, str) and src != "builtin":
                    found.append(Path(src).expanduser().resolve())
    return found


def evaluate_heldout(models: Mapping[str, Model], folder, *, sizes=(32, 96, 256), n_images: int = 16,
                     times=None, scale: float = PAPER_SCALE, seed: int = 0, ref_kwargs=None, device=None,
                     progress: bool = False) -> dict:
    """Tables 2-4 (u and div phi, PSNR and SSIM) on a second held-out set: crops of the photos in ``folder``.

    The same protocol, crops and metrics as :func:`evaluate_sizes` on the images of ``folder`` (e.g. the
    nature photos of ``make photos``, never used in training or checkpoint selection), beside the built-in
    test photos. A model whose provenance names ``folder`` (or a folder inside or around it) among its
    training or validation data is listed in ``used_by`` and warned about.

    Returns
    -------
    dict
        ``{"source", "photos", "sizes", "models": {name: {size: metrics}}, "used_by"}`` as
        :func:`evaluate_sizes` (without its example).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.io import write_image
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import evaluate_heldout, natural_images
    >>> ref = {"dt": 0.1, "tol": 1e-4, "cache_dir": False}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = write_image(Path(folder) / "a.png", natural_images(24, 1)[0])
    ...     out = evaluate_heldout({"semiresnet": load("semiresnet")}, folder, sizes=(16,), n_images=1,
    ...                            times=[0.0, 0.1], ref_kwargs=ref)
    >>> out["photos"], out["used_by"], sorted(out["models"]["semiresnet"])
    (['a.png'], [], [16])
    """
    folder = Path(folder)
    photos = [p.name for p in folder_files(folder)]
    here = folder.expanduser().resolve()
    used_by = [name for name, m in models.items()
               if any(p == here or p in here.parents or here in p.parents for p in _training_sources(m))]
    if used_by:
        warnings.warn(f"evaluate: {folder} is not a held-out set for {', '.join(used_by)}: their provenance names "
                      "it among their training or validation data", stacklevel=2)
    out = evaluate_sizes(models, sizes=sizes, n_images=n_images, times=times, scale=scale, seed=seed,
                         image_dir=folder, ref_kwargs=ref_kwargs, device=device, progress=progress,
                         keep_example=False)
    out.pop("example", None)
    return {"source": str(folder), "photos": photos, **out, "used_by": used_by}


def evaluate_types(models: Mapping[str, Model], *, size: int = 96, n_images: int = 16, times=None,
                   scale: float = PAPER_SCALE, seed: int = 0, medical_split: str = "test", medical_dir=None,
                   ref_kwargs=None, device=None, progress: bool = False) -> dict:
    """Table 5: PSNR and SSIM of u on disks, ellipses and medical images.

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import evaluate_types
    >>> ref = {"dt": 0.1, "tol": 1e-4, "cache_dir": False}
    >>> out = evaluate_types({"semiresnet": load("semiresnet")}, size=16, n_images=1, times=[0.0, 0.1], ref_kwargs=ref)
    >>> sorted(out["models"]["semiresnet"])
    ['disks', 'ellipses', 'medical']
    """
    times = paper_times() if times is None else [float(t) for t in times]
    ref_kwargs = dict(ref_kwargs or {})
    kinds = ("disks", "ellipses", "medical")
    out = {"size": int(size), "n_images": int(n_images), "medical_split": medical_split,
           "medical_source": str(medical_dir) if medical_dir is not None else
           ", ".join(datasets.builtin_names(medical_split, kind="medical")),
           "models": {name: {} for name in models}}
    with progress_bar(total=len(kinds) * (1 + len(models)), enabled=progress, desc="table 5") as bar:
        for kind in kinds:
            x = scaled(type_images(kind, size, n_images, seed=seed, medical_split=medical_split,
                                    medical_dir=medical_dir), scale)
            ref_u, ref_ut = reference_flow(x, times, **ref_kwargs)
            bar.update(1)
            for name, model in models.items():
                u, d = model_flow(model, x, times)
                out["models"][name][kind] = compare(u, d, ref_u, ref_ut, scale)
                bar.update(1)
    return out


def with_wrapped(models: Mapping[str, Model], wrapper: Callable[[Model], Model] | None) -> dict[str, Model]:
    """``models`` and, with ``wrapper``, each ``wrapper(model)`` named ``"<name> + <wrapper name>"``.

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import with_wrapped
    >>> from pdeflow.tvflownet.symmetry import Equivariant
    >>> list(with_wrapped({"semiresnet": load("semiresnet")}, Equivariant))
    ['semiresnet', 'semiresnet + Equivariant']
    """
    todo = dict(models)
    if wrapper is not None:
        wname = getattr(wrapper, "__name__", type(wrapper).__name__)
        for name, model in models.items():
            todo[f"{name} + {wname}"] = wrapper(model)
    return todo


def evaluate_homogeneity(models: Mapping[str, Model], *, sizes=(32, 96, 256), n_images: int = 16,
                         factors=(3.0, 0.3), wrapper: Callable[[Model], Model] | None = None, times=None,
                         scale: float = PAPER_SCALE, seed: int = 0, image_dir=None, ref_kwargs=None,
                         device=None, progress: bool = False) -> dict:
    """Table 6: one-homogeneity on inputs ``c * u0``.

    For each factor ``c`` the model's ``u(c u0, t)`` is compared with the exact
    reference flow of the scaled image, ``reference(c u0, t) = c reference(u0, t/c)``
    (the implicit scheme is exactly one-homogeneous), both divided by ``c * scale``
    (i.e. on the [0, 1] scale of the unscaled image).  Also reported: the model's
    self-consistency ``u(c u0, t) / c`` vs ``u(u0, t/c)`` (the paper's wording).
    Images: the natural test crops of all ``sizes`` (the paper's "mixed resolution").
    With ``wrapper``, every model is also evaluated as ``wrapper(model)``
    (name suffixed " + wrapper").

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import evaluate_homogeneity
    >>> ref = {"dt": 0.1, "tol": 1e-4, "cache_dir": False}
    >>> out = evaluate_homogeneity({"semiresnet": load("semiresnet")}, sizes=(16,), n_images=1, times=[0.0, 0.1],
    ...                            ref_kwargs=ref)
    >>> out["factors"], sorted(out["models"]["semiresnet"][3.0])[:2]
    ([3.0, 0.3], ['psnr', 'psnr_frames'])
    """
    times = paper_times() if times is None else [float(t) for t in times]
    ref_kwargs = dict(ref_kwargs or {})
    todo = with_wrapped(models, wrapper)
    factors = [float(c) for c in factors]
    acc = {name: {c: {p + k: [] for p in ("", "self_") for k in METRICS} for c in factors} for name in todo}
    with progress_bar(total=len(sizes) * len(factors) * (1 + len(todo)), enabled=progress, desc="table 6") as bar:
        for size in sizes:
            x = scaled(natural_images(size, n_images, seed=seed, image_dir=image_dir), scale)
            for c in factors:
                ref_u, _ = reference_flow(x * c, times, **ref_kwargs)
                bar.update(1)
                for name, m in todo.items():
                    u, _ = model_flow(m, x * c, times)
                    for k, v in metric_values(u / (c * scale), ref_u / (c * scale)).items():
                        acc[name][c][k].append(v)
                    # self-consistency: u(c u0, t)/c vs u(u0, t/c)
                    u_slow, _ = model_flow(m, x, [t / c for t in times])
                    for k, v in metric_values(u / (c * scale), u_slow / scale).items():
                        acc[name][c]["self_" + k].append(v)
                    bar.update(1)
    res = {name: {c: {k: mean_std(torch.cat(v)) for k, v in d.items()} for c, d in per.items()}
           for name, per in acc.items()}
    return {"factors": factors, "sizes": [int(s) for s in sizes], "n_images": int(n_images),
            "models": res}


def _autodiff_reconstruction(model: Model, x: torch.Tensor, tt: torch.Tensor, dev, dtype, bar):
    """Table 7's autodiff reconstruction of each image of ``x`` (B, C, H, W) at the times ``tt`` (float64),
    one image at a time with all its times in one batch: ``u0 ~ trapezoid(t u_tt) + u(T) - T u_t(T)``
    (B, C, H, W) and each image's spectrum ``||t u_tt(t)||_1`` per time."""
    T = tt.shape[0]
    recon, spectra = [], []
    for b in range(x.shape[0]):
        xb = x[b:b + 1].to(device=dev, dtype=dtype).expand(T, -1, -1, -1)
        with torch.no_grad():  # forward-mode AD still runs; no backward graph is kept
            u, u_t, u_tt = time_derivatives(model, xb, tt.to(device=dev, dtype=dtype), method="autodiff")
        u, u_t, u_tt = u.detach().double().cpu(), u_t.detach().double().cpu(), u_tt.detach().double().cpu()
        phi = tt.reshape(-1, 1, 1, 1) * u_tt  # (T, C, H, W)
        recon.append(torch.trapezoid(phi, tt, dim=0) + (u[-1] - tt[-1] * u_t[-1]))
        spectra.append(ops.batch_sum(phi.abs()))
        bar.update(1)
    return torch.stack(recon), spectra


def evaluate_spectral(models: Mapping[str, Model], *, size: int = 96, n_images: int = 16, times=None,
                      scale: float = PAPER_SCALE, seed: int = 0, image_dir=None, ref_kwargs=None, device=None,
                      progress: bool = False) -> dict:
    """Table 7: reconstruction of ``u0`` from the spectral TV transform.

    ``phi(t) = t u_tt(t)`` on the time grid ``t_k = k dt`` (``times``, uniform from 0):

    * autodiff: ``u_tt`` and ``u_t`` by forward-mode autodiff in ``t``;
      ``u0 ~ trapezoid(sum_k phi(t_k)) + u(T) - T u_t(T)``;
    * FD network: second differences of the network's ``u(t_k)``
      (:func:`spectral_from_stack`, which telescopes to the network's ``u(0)``);
    * FD reference: the same on the reference flow (telescopes to ``u0``).

    A model that composes in time (:func:`~pdeflow.tvflownet.symmetry.composes_in_time`) gets FD only
    (``"autodiff": None``): its ``u_t`` jumps where two stages join, which the integration by parts
    behind the autodiff formula cannot do without.

    PSNR/SSIM against ``u0`` (divided by ``scale``).  ``example`` keeps one image's
    spectra for the figure.

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import evaluate_spectral
    >>> ref = {"dt": 0.1, "tol": 1e-4, "cache_dir": False}
    >>> out = evaluate_spectral({"semiresnet": load("semiresnet")}, size=16, n_images=1, times=[0.0, 0.1, 0.2],
    ...                         ref_kwargs=ref)
    >>> sorted(out["models"]["semiresnet"]), out["reference"]["fd"]["psnr"][0]   # the reference telescopes to u0
    (['autodiff', 'fd'], 100.0)
    """
    times = paper_times() if times is None else [float(t) for t in times]
    tt = torch.tensor(times, dtype=torch.float64)
    if len(times) < 3 or abs(times[0]) > 1e-12:
        raise UserInputError("table 7 needs at least 3 times starting at 0")
    steps = tt[1:] - tt[:-1]
    dt = float(steps.mean())
    if float((steps - dt).abs().max()) > 1e-9:
        raise UserInputError("table 7 needs uniformly spaced times")
    ref_kwargs = dict(ref_kwargs or {})
    x = scaled(natural_images(size, n_images, seed=seed, image_dir=image_dir), scale)
    ref_u, _ = reference_flow(x, times, **ref_kwargs)
    u0 = x / scale
    out = {"size": int(size), "n_images": int(n_images), "dt": dt, "models": {}, "reference": {}}
    s_ref = spectral_from_stack(ref_u.double(), dt)
    out["reference"]["fd"] = metric_stats(s_ref.reconstruct() / scale, u0.double())
    example = {"times": s_ref.times.tolist(), "reference_fd": s_ref.spectrum[:, 0].tolist(), "models": {}}
    dev = torch.device(device) if device is not None else x.device
    with progress_bar(total=len(models) * n_images, enabled=progress, desc="table 7") as bar:
        for name, model in models.items():
            # FD on the grid
            u_net, _ = model_flow(model, x, times)
            s_fd = spectral_from_stack(u_net.double(), dt)
            fd_stats = metric_stats(s_fd.reconstruct() / scale, u0.double())
            if composes_in_time(model):
                # u_t jumps where composed stages join; autodiff misses them (module doc of symmetry), so FD only
                ad_stats, ad_spectrum = None, None
                bar.update(n_images)
            else:
                rec, spectra = _autodiff_reconstruction(model, x, tt, dev, model_dtype(model), bar)
                ad_stats, ad_spectrum = metric_stats(rec / scale, u0.double()), spectra[0].tolist()
            out["models"][name] = {"autodiff": ad_stats, "fd": fd_stats}
            example["models"][name] = {"times": times, "autodiff": ad_spectrum,
                                       "fd_times": s_fd.times.tolist(), "fd": s_fd.spectrum[:, 0].tolist()}
    out["example"] = example
    return out


def evaluate_joint(*, sizes=(32,), n_images: int = 1, iterations=None, times=None, scale: float = PAPER_SCALE,
                   seed: int = 0, image_dir=None, ref_kwargs=None, lr: float = 5e-3, progress: bool = False,
                   keep_example: bool = True, **joint_kwargs) -> dict:
    """Table 1: joint space-time optimisation vs the reference (u and div phi).

    ``iterations``: None (the paper's counts, :func:`~pdeflow.tvflownet.joint.paper_iterations`),
    an int for every size, or a dict size -> int.  The images are ``n_images`` natural
    test crops of each size (:func:`natural_images`; the crops of Tables 2-4 when they
    use as many).

    Examples
    --------
    >>> from pdeflow.evaluate.tvflownet import evaluate_joint
    >>> ref = {"dt": 0.1, "tol": 1e-4, "cache_dir": False}
    >>> out = evaluate_joint(sizes=(16,), iterations=2, times=[0.0, 0.1, 0.2], ref_kwargs=ref)
    >>> out["iterations"], sorted(out["results"][16])[:2]
    ({16: 2}, ['div_psnr', 'div_psnr_frames'])
    """
    times = paper_times() if times is None else [float(t) for t in times]
    ref_kwargs = dict(ref_kwargs or {})
    out = {"sizes": [int(s) for s in sizes], "n_images": int(n_images), "lr": lr, "results": {},
           "iterations": {}, "seconds": {}, "example": None}
    for size in sizes:
        if iterations is None:
            its = paper_iterations(size)
        elif isinstance(iterations, Mapping):
            its = int(iterations.get(size, iterations.get(str(size), paper_iterations(size))))
        else:
            its = int(iterations)
        x = scaled(natural_images(size, n_images, seed=seed, image_dir=image_dir), scale)
        ref_u, ref_ut = reference_flow(x, times, **ref_kwargs)
        t0 = time.perf_counter()
        u, phi = joint_optimise(x, times, iterations=its, lr=lr, progress=progress, **joint_kwargs)
        secs = time.perf_counter() - t0
        d = ops.div(phi)
        out["results"][int(size)] = compare(u, d, ref_u, ref_ut, scale)
        out["iterations"][int(size)] = its
        out["seconds"][int(size)] = secs / max(1, int(n_images))
        if keep_example and out["example"] is None:
            out["example"] = {"size": int(size), "times": times, "u": u[:, 0] / scale, "div": d[:, 0] / scale,
                              "ref_u": ref_u[:, 0] / scale, "ref_ut": ref_ut[:, 0] / scale}
    return out


# =========================================================================== all together

ALL_TABLES = (1, 2, 3, 4, 5, 6, 7, 9)


def evaluate(
    models: Mapping[str, Model],
    *,
    sizes: Sequence[int] = (32, 96, 256),
    n_images: int = 16,
    tables: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 9),
    times: Sequence[float] | None = None,
    scale: float = PAPER_SCALE,
    seed: int = 0,
    image_dir=None,
    heldout_dir=None,
    medical_dir=None,
    medical_split: str = "test",
    type_size: int | None = None,
    spectral_size: int | None = None,
    timing_sizes: Sequence[int] = (96, 256),
    timing_devices=None,
    timing_repeats: int = 5,
    wrapper: Callable[[Model], Model] | None = None,
    factors: Sequence[float] = (3.0, 0.3),
    homogeneity_sizes: Sequence[int] | None = None,
    joint_sizes: Sequence[int] | None = None,
    joint_images: int | None = None,
    joint_iterations=None,
    dt: float = 0.01,
    tol: float = 1e-5,
    solver: str = "fgp",
    cache_dir=None,
    device=None,
    paper_rows: Mapping[str, tuple[str, str]] | None = None,
    progress: bool = False,
) -> dict:
    """Run the paper's evaluation protocol on ``models`` (name -> model).

    Parameters
    ----------
    models : mapping of str to model
        ``model(u0, t) -> (u, phi)``; may be empty (then only Table 1 and the
        reference rows of Tables 7 and 9 are produced).
    sizes : sequence of int
        Evaluation sizes of Tables 2-4 and 6 (paper: 32, 96, 256).
    n_images : int
        Test images per size and per image type (default 16; paper: 200; 100
        disks and ellipses, 40 medical, 600 mixed for Table 6).
    tables : sequence of int
        Which of 1, 2, 3, 4, 5, 6, 7, 9 to run (2, 3, 4 share one run).
    times : sequence of float, optional
        Default :func:`paper_times` (50 times in [0, 0.98]).
    scale : float
        Intensity scale (paper: 5).
    seed : int
        Seed of the crops and synthetic images.
    image_dir, medical_dir : path, optional
        User folders replacing the built-in natural test photos / medical images.
    heldout_dir : path, optional
        A second held-out set of natural photos, never used in training or checkpoint selection:
        Tables 2-4 on its crops as well (:func:`evaluate_heldout`, result ``heldout``).
    medical_split : str
        Split of the built-in medical images (default "test": held out).
    type_size, spectral_size : int, optional
        Image size of Table 5 and Table 7 (default: 96 if in ``sizes``, else the middle size).
    timing_sizes, timing_devices, timing_repeats
        Table 9.
    wrapper : callable, optional
        Every table also for ``wrapper(model)`` (e.g. ``symmetry.Equivariant``),
        named ``"<name> + <wrapper name>"``.
    factors : sequence of float
        Table 6's contrast factors (paper: 3 and 0.3).
    homogeneity_sizes : sequence of int, optional
        Image sizes of Table 6 (default ``sizes``; the costliest table: each model
        runs four times per factor, plus the wrapped models).
    joint_sizes, joint_images, joint_iterations
        Table 1: sizes (default: those of ``sizes`` up to 96 px), images per
        size (default ``n_images``, at most ``n_images``; with ``n_images`` they
        are the crops of Tables 2-4), iterations (default: the paper's).
    dt, tol, solver, cache_dir
        Reference flow (:func:`reference_flow`).
    device : torch device, optional
        Where the models run for Tables 2-7.
    paper_rows : mapping, optional
        Model name -> ``(arch, training size)`` of the paper's row to print
        beside it; by default inferred (:func:`paper_key`).
    progress : bool
        Progress bars.

    Returns
    -------
    dict
        ``config``, ``models`` (architecture, parameters, paper row), and one entry
        per table run (``table1``, ``table2_4``, ``heldout``, ``table5``, ``table6``, ``table7``,
        ``table9``), plus ``seconds`` per part.  JSON-ready except the
        ``example`` entries (tensors for the figures), which :func:`pdeflow.evaluate.tvflownet_report.report`
        turns into PNGs.

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import evaluate
    >>> res = evaluate({"semiresnet": load("semiresnet")}, sizes=(16,), n_images=1, tables=(2,), times=[0.0, 0.1],
    ...                dt=0.1, tol=1e-4, cache_dir=False)
    >>> sorted(res), res["models"]["semiresnet"]["paper_row"]
    (['config', 'models', 'seconds', 'table2_4'], ['semiresnet', '32'])
    """
    tables = sorted({int(t) for t in tables})
    bad = [t for t in tables if t not in ALL_TABLES]
    if bad:
        raise UserInputError(f"tables must be among {ALL_TABLES}, got {bad}")
    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 11 for s in sizes):
        raise UserInputError(f"sizes must be at least 11 px (the SSIM window), got {sizes}")
    if int(n_images) < 1:
        raise UserInputError(f"n_images must be >= 1, got {n_images}")
    times = paper_times() if times is None else [float(t) for t in times]
    mid = 96 if 96 in sizes else sizes[len(sizes) // 2]
    type_size = int(type_size or mid)
    spectral_size = int(spectral_size or mid)
    if joint_sizes is None:
        joint_sizes = [s for s in sizes if s <= 96] or [min(sizes)]
    ref_kwargs = dict(dt=dt, tol=tol, solver=solver, cache_dir=cache_dir)
    common = dict(times=times, scale=scale, seed=seed, ref_kwargs=ref_kwargs, progress=progress)

    models = with_wrapped(models, wrapper)
    channels = model_channels(models)
    if channels != 1 and set(tables) - {2, 3, 4}:
        raise UserInputError(f"tables: colour models are evaluated on Tables 2-4 (and --heldout-dir) only, got "
                             f"{sorted(tables)}; Tables 1 and 5-9 are the paper's grey experiments")
    info = {}
    for name, m in models.items():
        meta_cfg = (getattr(unwrap_model(m), "meta", None) or {}).get("config", {})
        if isinstance(meta_cfg, Mapping) and meta_cfg.get("scale") not in (None, scale):
            warnings.warn(f"evaluate: model {name!r} was trained on images scaled by {meta_cfg['scale']:g}, "
                          f"the evaluation feeds images scaled by {scale:g}", stacklevel=2)
        key = (paper_rows or {}).get(name) or paper_key(name, m)
        base = unwrap_model(m)
        cfg = getattr(base, "config", None)
        n_par = sum(p.numel() for p in m.parameters()) if hasattr(m, "parameters") else None
        info[name] = {"arch": (cfg or {}).get("arch") if isinstance(cfg, Mapping) else None,
                      "parameters": n_par, "paper_row": list(key) if key else None, "recipe": model_recipe(m)}
    results = {
        "config": {"sizes": sizes, "n_images": int(n_images), "tables": tables, "n_times": len(times),
                   "times": [times[0], times[-1]], "scale": scale, "seed": seed, "dt": dt, "tol": tol,
                   "solver": solver, "image_source": str(image_dir) if image_dir else
                   "builtin test photos: " + ", ".join(datasets.builtin_names("test", kind="photo"))
                   if channels == 1 else "builtin colour test photos: " + ", ".join(colour_photo_names()),
                   "channels": channels,
                   "heldout_source": str(heldout_dir) if heldout_dir else None,
                   "type_size": type_size, "spectral_size": spectral_size, "device": str(device or "cpu"),
                   "torch": str(torch.__version__), "threads": torch.get_num_threads(),
                   "machine": platform.processor() or platform.machine(),
                   "date": datetime.datetime.now().isoformat(timespec="seconds")},
        "models": info,
        "seconds": {},
    }
    if models and any(t in tables for t in (2, 3, 4)):
        t0 = time.perf_counter()
        results["table2_4"] = evaluate_sizes(models, sizes=sizes, n_images=n_images, image_dir=image_dir,
                                             device=device, **common)
        results["seconds"]["table2_4"] = time.perf_counter() - t0
        if heldout_dir is not None:
            t0 = time.perf_counter()
            results["heldout"] = evaluate_heldout(models, heldout_dir, sizes=sizes, n_images=n_images, device=device,
                                                  **common)
            results["seconds"]["heldout"] = time.perf_counter() - t0
    if models and 5 in tables:
        t0 = time.perf_counter()
        results["table5"] = evaluate_types(models, size=type_size, n_images=n_images, medical_split=medical_split,
                                           medical_dir=medical_dir, device=device, **common)
        results["seconds"]["table5"] = time.perf_counter() - t0
    if models and 6 in tables:
        t0 = time.perf_counter()
        results["table6"] = evaluate_homogeneity(models, sizes=[int(v) for v in (homogeneity_sizes or sizes)],
                                                 n_images=n_images, factors=factors,
                                                 image_dir=image_dir, device=device, **common)
        results["seconds"]["table6"] = time.perf_counter() - t0
    if 7 in tables:
        t0 = time.perf_counter()
        results["table7"] = evaluate_spectral(models, size=spectral_size, n_images=n_images, image_dir=image_dir,
                                              device=device, **common)
        results["seconds"]["table7"] = time.perf_counter() - t0
    if 1 in tables:
        t0 = time.perf_counter()
        n_joint = int(n_images) if joint_images is None else min(int(joint_images), int(n_images))
        results["table1"] = evaluate_joint(sizes=joint_sizes, n_images=n_joint,
                                           iterations=joint_iterations, image_dir=image_dir, **common)
        results["seconds"]["table1"] = time.perf_counter() - t0
    if 9 in tables:
        t0 = time.perf_counter()
        results["table9"] = evaluate_timing(models, sizes=timing_sizes, times=times, scale=scale, seed=seed,
                                            image_dir=image_dir, devices=timing_devices, repeats=timing_repeats,
                                            ref_kwargs=ref_kwargs, progress=progress)
        results["seconds"]["table9"] = time.perf_counter() - t0
    results["seconds"]["total"] = sum(results["seconds"].values())
    return results
