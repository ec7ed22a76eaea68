"""Using a trained TVflowNET: :func:`load` a model, :func:`flow` an image.

    from pdeflow import tvflownet
    model = tvflownet.load()                         # the shipped default (or a name, or a path)
    u = tvflownet.flow(img, [0.01, 0.05, 0.1])       # like pdeflow.tv.tv_flow(img, [...])

A trained model is a pair of files written by :func:`pdeflow.io.save_model`
(what ``pdeflow train tvflownet`` leaves in its run directory as
``model.safetensors`` + ``model.json``): the weights, and a JSON whose
``config`` holds ``{"model": <build_model kwargs>, "scale": s, "t_max": T}``.
Shipped models live in ``pdeflow/tvflownet/weights/NAME.safetensors`` +
``NAME.json`` and are resolved, checked and listed by the one model registry,
:mod:`pdeflow.models`; :func:`shipped_models` lists them.

Units
-----
:func:`flow` mirrors :func:`pdeflow.tv.tv_flow`: images in the user's own
intensities, times in PDE time for those intensities. A network was trained on
images multiplied by ``s`` (the paper: [0, 1] times 5) for times in ``[0, T]``;
by one-homogeneity ``tv_flow(u0, t) = tv_flow(s u0, s t) / s``, so :func:`flow`
feeds the network ``s * u0`` at time ``s * t`` and divides ``u`` by ``s``
(``phi`` and ``u_t = div phi`` need no conversion). Nothing is rescaled behind
the user's back: the result approximates the TV flow of the image as given.
For images in [0, 1] and the paper's ``s = 5, T = 1`` the trained range is
``t <= 0.2``; later times are answered by composition (the semigroup property
``u(t) = flow(flow(u0, t1), t - t1)``) when the model is wrapped in
:class:`~pdeflow.tvflownet.symmetry.Equivariant`, which :func:`flow` does by
default (``equivariant=True``; it also maps each image's range onto the
training intensities ``[0, s]``, which makes the result exactly shift
equivariant and one-homogeneous). The wrapper makes ``u`` more accurate;
for ``div phi`` the bare network (``equivariant=False``) is the closer one,
so call it so where ``div phi`` is what you need (see the results page
"TVflowNET: the paper's Tables 1-9").
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .. import models as registry
from .. import ops
from ..errors import UserInputError
from ..progress import progress_bar
from ..tv.flow import flow_result
from ..tv.steps import check_times
from .architectures import Ensemble, build_model, with_input_eps
from .architectures.registry import normalised_weights

__all__ = ["load", "average", "ensemble", "flow", "shipped_models", "DEFAULT_MODEL", "DEFAULT_COLOUR_MODEL",
           "model_scale", "model_t_max"]

#: The name :func:`load` and :func:`flow` use when none is given.
DEFAULT_MODEL = "default"
#: The name :func:`flow` (and ``pdeflow flow``) uses for a colour image (3 channels) when none is given.
DEFAULT_COLOUR_MODEL = "unet-colour"

_TRAIN_HINT = ("train one with `pdeflow train tvflownet --arch semiresnet --crop 32 --run-dir RUN` (see "
               "`pdeflow train tvflownet --help`) and load it with load('RUN/model.json'), or ship it as a "
               "name by copying RUN/model.safetensors and RUN/model.json to "
               f"{registry.WEIGHTS_DIRS['tvflownet']}/NAME.safetensors and NAME.json")


def shipped_models() -> list[str]:
    """Names of the TVflowNETs that ship (:func:`pdeflow.models.shipped_models` of the ``tvflownet`` pillar).

    Examples
    --------
    >>> from pdeflow.tvflownet import shipped_models
    >>> shipped_models()  # doctest: +NORMALIZE_WHITESPACE
    ['default', 'lgd', 'lgd-unsupervised', 'lgd10', 'semiresnet', 'semiresnet-unsupervised', 'unet', 'unet-colour',
     'unet-colour-hybrid', 'unet-colour-unsupervised', 'unet-unsupervised']
    """
    return registry.shipped_models("tvflownet")


def _stem(name_or_path) -> Path:
    return registry.resolve(DEFAULT_MODEL if name_or_path is None else name_or_path, "tvflownet", who="load",
                          hint=_TRAIN_HINT)


def load(name_or_path=None, *, device: str | torch.device = "cpu") -> nn.Module:
    """A trained TVflowNET, ready to use: in eval mode, on ``device``, gradients off.

    Parameters
    ----------
    name_or_path : str or path, optional
        A shipped name (default ``"default"``, see :func:`shipped_models`), or a
        path: the ``.safetensors`` or ``.json`` file, their common stem, or a run
        directory (its ``model.*``).
    device : torch device

    Returns
    -------
    nn.Module
        ``model(u0, t) -> (u, phi)`` (see :mod:`pdeflow.tvflownet.architectures`), with
        ``model.meta`` the JSON (``config`` with ``scale`` and ``t_max``, and
        ``provenance``). The weights are checked against the JSON's checksum.

    Raises
    ------
    FileNotFoundError
        Unknown name (the message lists the shipped ones and how to train one),
        or a path without both files.
    ValueError
        Damaged files, or weights and JSON that do not belong together (the
        message names the files).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import load
    >>> model = load("semiresnet")
    >>> model.training, model.meta["config"]["scale"], model.meta["config"]["model"]["arch"]
    (False, 5.0, 'semiresnet')
    >>> u, phi = model(torch.rand(1, 1, 16, 16), torch.tensor([0.1]))
    >>> u.shape, phi.shape
    (torch.Size([1, 1, 16, 16]), torch.Size([1, 1, 2, 16, 16]))
    """
    state, meta, stem = registry.read(_stem(name_or_path), "tvflownet", who="load", what="a TVflowNET model")
    if "arch" not in meta["config"]["model"]:
        raise UserInputError(f"load: {stem}.json is not a TVflowNET model (its config.model has no 'arch')")
    model = registry.build_model(build_model, state, meta, stem, who="load")
    model.requires_grad_(False)
    return model.to(device)


def _weighted_sources(models: Sequence, weights: Sequence[float] | None) -> tuple[list, list[float]]:
    """Check two or more models and one weight >= 0 per model; the weights normalised to sum 1."""
    models = list(models)
    if len(models) < 2:
        raise UserInputError(f"models: give two or more models, got {len(models)}")
    return models, normalised_weights(weights, len(models))


def _require_equal(models: list, configs: list[dict], what: str) -> None:
    """Refuse models whose flattened ``configs`` differ, naming the first differing model and keys."""
    flat = lambda c: {**{k: v for k, v in c.items() if k != "model"}, **c.get("model", {})}  # noqa: E731
    for name, other in zip(models[1:], configs[1:]):
        if other != configs[0]:
            a, b = flat(configs[0]), flat(other)
            keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            raise UserInputError(f"models: {os.fspath(name)!r} differs from {os.fspath(models[0])!r} in "
                                 f"{', '.join(keys)}; only models of {what} can be combined")


def _sources_provenance(models: list, weights: list[float], loaded: list) -> list[dict]:
    return [{"model": os.fspath(name), "weight": w, "sha256": m.meta["weights"]["sha256"],
             "provenance": m.meta.get("provenance", {})} for name, w, m in zip(models, weights, loaded)]


def average(models: Sequence, weights: Sequence[float] | None = None, *,
            input_eps: float | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """A weighted average of trained TVflowNETs' weights (a "model soup"), as a model like :func:`load`'s.

    Averaging the weights of networks fine-tuned from one starting point can combine
    what each learned (Wortsman et al., "Model soups", 2022); the models must share
    one architecture and training convention (their JSON ``config`` must be equal).
    The average is formed in float64 and stored in the models' dtype.

    Parameters
    ----------
    models : sequence of str or path
        Two or more models, each as :func:`load` takes it (shipped name or path).
    weights : sequence of float, optional
        One non-negative weight per model, not all zero; normalised to sum 1
        (default: equal weights).
    input_eps : float, optional
        The scale of the averaged model's normalised-gradient input, as
        :func:`~pdeflow.tvflownet.architectures.with_input_eps` sets it (default: the
        sources' own), recorded in the provenance.
    device : torch device

    Returns
    -------
    nn.Module
        The averaged model, in eval mode with gradients off; ``model.meta`` holds
        the shared ``config`` and a ``provenance`` that records each source (as
        given, its weights' SHA-256, its normalised weight and its own provenance).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import average, load
    >>> soup = average(["unet", "unet"], weights=[1, 3])   # models of one architecture
    >>> [s["weight"] for s in soup.meta["provenance"]["averaged"]]
    [0.25, 0.75]
    >>> w = load("unet").state_dict()                      # a model averaged with itself is itself
    >>> all(torch.allclose(v, w[k]) for k, v in soup.state_dict().items())
    True
    """
    models, weights = _weighted_sources(models, weights)
    loaded = [load(m) for m in models]
    # each JSON's model config completed by its constructor's defaults: a model saved before an
    # architecture option existed (e.g. the U-Net's refine) has that option's default
    configs = [{**m.meta["config"], "model": {**m.meta["config"]["model"], **m.config}} for m in loaded]
    _require_equal(models, configs, "one architecture and training convention")
    states = [m.state_dict() for m in loaded]
    avg = {k: sum(w * s[k].double() for w, s in zip(weights, states)).to(states[0][k].dtype) for k in states[0]}
    model = loaded[0]
    model.load_state_dict(avg)
    model.meta = {"config": configs[0], "provenance": {
        "trainer": "pdeflow.tvflownet.average", "averaged": _sources_provenance(models, weights, loaded)}}
    return _with_input_eps(model, input_eps).to(device)


def _with_input_eps(model: nn.Module, input_eps: float | None) -> nn.Module:
    """``model`` with ``input_eps`` set (``None``: unchanged), its provenance saying so."""
    if input_eps is None:
        return model
    out = with_input_eps(model, input_eps)
    out.meta["provenance"] = {**out.meta["provenance"], "input_eps": float(input_eps)}
    return out


def ensemble(models: Sequence, weights: Sequence[float] | None = None, *,
             phi_weights: Sequence[float] | None = None, input_eps: float | None = None,
             device: str | torch.device = "cpu") -> nn.Module:
    """A weighted mean of trained TVflowNETs' outputs (an :class:`~pdeflow.tvflownet.architectures.Ensemble`).

    Unlike :func:`average`, the models may be of different architectures: each runs,
    and ``u`` and ``phi`` are the weighted means of theirs (one network call per
    model). They must share the training convention (the intensity scale and time
    interval in their JSON ``config``), so that one input means the same to all.

    Parameters
    ----------
    models : sequence of str or path
        Two or more models, each as :func:`load` takes it (shipped name or path).
    weights : sequence of float, optional
        One non-negative weight per model, not all zero; normalised to sum 1
        (default: equal weights).
    phi_weights : sequence of float, optional
        The same for ``phi`` (default: ``weights``): ``div phi`` depends on these only and
        ``u`` on ``weights`` only, so each can be chosen on its own tables.
    input_eps : float, optional
        The scale of every member's normalised-gradient input, as
        :func:`~pdeflow.tvflownet.architectures.with_input_eps` sets it (default: the
        members' own), recorded in the provenance.
    device : torch device

    Returns
    -------
    Ensemble
        In eval mode with gradients off; ``model.meta`` holds the shared ``config``
        (its ``model`` the members' configs and the weights) and a ``provenance``
        that records each member as :func:`average` records its sources.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import ensemble
    >>> model = ensemble(["unet", "lgd"], weights=[1, 2])  # different architectures, one convention
    >>> type(model).__name__, [round(w, 4) for w in model.config["weights"]]
    ('Ensemble', [0.3333, 0.6667])
    >>> model(torch.rand(1, 1, 16, 16), torch.tensor([0.1]))[0].shape
    torch.Size([1, 1, 16, 16])
    """
    models, weights = _weighted_sources(models, weights)
    loaded = [load(m) for m in models]
    conventions = [{k: v for k, v in m.meta["config"].items() if k != "model"} for m in loaded]
    _require_equal(models, conventions, "one training convention (intensity scale and time interval)")
    model = Ensemble(loaded, weights, phi_weights)
    members = [{**source, "phi_weight": v}
               for source, v in zip(_sources_provenance(models, weights, loaded), model.phi_weights)]
    model.meta = {"config": {**conventions[0], "model": model.config}, "provenance": {
        "trainer": "pdeflow.tvflownet.ensemble", "members": members}}
    return _with_input_eps(model.eval(), input_eps).to(device)


def _trained_with(model, key: str) -> float | None:
    """The number ``key`` of the training config in a loaded model's JSON, or None."""
    try:
        return float(getattr(model, "meta", None)["config"][key])
    except (TypeError, KeyError):
        return None


def model_scale(model) -> float | None:
    """The intensity scale a model was trained at (from its JSON), or None.

    Examples
    --------
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.api import model_scale
    >>> model_scale(SemiResNet(width=4, depth=3)) is None  # no JSON: trained models carry theirs
    True
    """
    return _trained_with(model, "scale")


def model_t_max(model) -> float | None:
    """The end ``T`` of the time interval a model was trained on, or None.

    Examples
    --------
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.api import model_t_max
    >>> model_t_max(SemiResNet(width=4, depth=3)) is None  # no JSON: trained models carry theirs
    True
    """
    return _trained_with(model, "t_max")


_MODEL_CACHE: dict[tuple[str, str, int], nn.Module] = {}


def _cached_model(name_or_path, device: torch.device) -> nn.Module:
    """:func:`load` of a name or path, kept for later calls (keyed by the weights file and its
    modification time, so a model retrained in place is read again)."""
    stem = _stem(name_or_path)
    weights = stem.with_suffix(".safetensors")
    key = (str(stem), str(device), weights.stat().st_mtime_ns if weights.is_file() else 0)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = load(name_or_path, device=device)
    return _MODEL_CACHE[key]


def _device_of(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def _dtype_of(model) -> torch.dtype:
    p = next(iter(model.parameters()), None)
    return p.dtype if p is not None else torch.float32


def flow(
    u0: torch.Tensor,
    times: Sequence[float] | torch.Tensor,
    model: nn.Module | None = None,
    *,
    scale: float | None = None,
    equivariant: bool = True,
    symmetry: str | None = "transpose",
    batch_size: int = 32,
    return_ut: bool = False,
    return_dual: bool = False,
    progress: bool = False,
):
    """The TV flow of ``u0`` at ``times`` by a trained TVflowNET; mirrors :func:`pdeflow.tv.tv_flow`.

    Parameters
    ----------
    u0 : Tensor or ndarray, shape (H, W), (C, H, W) or (B, C, H, W)
        Images in their own intensities (``C`` = the model's ``in_channels``, 1
        for the paper's greyscale models). A NumPy array is taken as a tensor
        (its float dtype), as :func:`pdeflow.tv.rof` does; integer and bool
        images are refused (:func:`pdeflow.ops.check_float`).
    times : sequence of float
        Non-decreasing, ``>= 0``, PDE time for ``u0`` as given (as ``tv_flow``).
    model : nn.Module, str or path, optional
        ``model(u0, t) -> (u, phi)``, or what :func:`load` accepts (a shipped
        name such as ``"unet"``, or a path), loaded onto ``u0``'s device and
        kept for later calls; default :data:`DEFAULT_MODEL`, for a colour ``u0``
        (3 channels) :data:`DEFAULT_COLOUR_MODEL` (the coupled colour flow).
    scale : float, optional
        The network sees ``scale * u0`` at time ``scale * t`` and ``u`` is divided
        by ``scale`` (one-homogeneity; see the module doc). Default: the model's
        training scale from its JSON (1 for a model without one). Ignored in
        effect when ``equivariant`` (the wrapper normalises each image itself).
    equivariant : bool
        Wrap the model in :class:`~pdeflow.tvflownet.symmetry.Equivariant`
        (unless it already is one): each image's range is mapped onto the
        training intensities, and times beyond the trained interval are reached
        by composition (see the module doc for what it gains). ``False``: the
        bare network, which extrapolates in time beyond ``T / scale`` (a warning
        says so).
    symmetry : {None, "transpose", "square"}
        Average the network over a group of symmetries of the grid
        (:class:`~pdeflow.tvflownet.symmetry.DihedralMean`): ``"transpose"``
        (default), the discrete flow's own symmetry (2 network calls per
        query), or ``"square"``, all 8 flips and quarter turns (8 calls; the
        discrete flow is not flip symmetric, so on flat shapes this average is
        the less accurate one). ``None``: the network alone, one call. The
        results page "TVflowNET: the paper's Tables 1-9" compares them.
    batch_size : int
        (image, time) pairs per network call.
    return_ut : bool
        Also return ``u_t = div phi`` (shape of ``u``).
    return_dual : bool
        Also return ``phi``, shape ``(len(times), *u0.shape[:-2], 2, H, W)``.
    progress : bool
        Show a progress bar over the network calls.

    Returns
    -------
    u, u_t, phi : Tensor
        As :func:`pdeflow.tv.tv_flow` returns ``u``, ``u_t`` and ``p`` (:func:`pdeflow.tv.flow_result`).

        Computed on the model's device, in its dtype; the results have ``u0``'s
        device and dtype. Differentiable with respect to ``u0`` when it requires
        grad (autograd through the model and its wrappers; for the shipped
        ``default``, whose normalised-gradient input has ``input_eps = 0.1``, a
        gradient of the flow's accuracy, see :func:`~pdeflow.tvflownet.architectures.with_input_eps`);
        otherwise run under ``torch.no_grad``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import disk
    >>> from pdeflow.tvflownet import flow
    >>> u0 = disk(16, 5.0)  # (1, 16, 16), the shipped default model
    >>> u = flow(u0, [0.0, 0.5])
    >>> u.shape, u.dtype
    (torch.Size([2, 1, 16, 16]), torch.float32)
    """
    # A NumPy array or a list is taken as pdeflow.tv.rof takes it: as a tensor of its float dtype.
    if isinstance(u0, (list, tuple)):
        u0 = ops.check_tensor(u0, "u0")
    kind = "NumPy array" if isinstance(u0, np.ndarray) else "tensor"
    if isinstance(u0, np.ndarray):
        try:
            u0 = torch.as_tensor(u0)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise UserInputError(f"u0: a NumPy array of dtype {u0.dtype} cannot become a tensor ({exc})") from None
    if not torch.is_tensor(u0):
        raise UserInputError(f"u0 must be a torch.Tensor or a NumPy array of shape (H, W), (C, H, W) or "
                             f"(B, C, H, W), got {type(u0).__name__}")
    ops.check_float(u0, "u0")             # the library's one rule for integer images
    if u0.dim() not in (2, 3, 4):
        raise UserInputError(f"u0 must be a floating-point tensor or NumPy array of shape (H, W), (C, H, W) or "
                             f"(B, C, H, W), got a {kind} of shape {tuple(u0.shape)}, dtype {u0.dtype}")
    ops.check_tensor(u0, "u0")            # refuses an empty batch or image, and a meta tensor (no values)
    if not bool(torch.isfinite(u0).all()):
        raise UserInputError("u0 must be finite")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise UserInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    times_f = check_times(times)
    if model is None and u0.dim() >= 3 and u0.shape[-3] == 3:
        model = DEFAULT_COLOUR_MODEL
    if model is None or isinstance(model, (str, os.PathLike)):
        model = _cached_model(model, u0.device)
    elif not isinstance(model, nn.Module):
        raise UserInputError(f"model must be a TVflowNET (nn.Module), a shipped name ({', '.join(shipped_models())}) "
                             f"or a path, got {type(model).__name__}")
    from .symmetry import DihedralMean, composes_in_time, flow_model
    if symmetry is not None and symmetry not in DihedralMean.GROUPS:
        raise UserInputError(f"symmetry must be None or one of {', '.join(map(repr, DihedralMean.GROUPS))}, "
                             f"got {symmetry!r}")
    model = flow_model(model, equivariant=equivariant, symmetry=symmetry)
    composes = composes_in_time(model)
    s = scale if scale is not None else (model_scale(model) or 1.0)
    if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
        raise UserInputError(f"scale must be a finite number > 0, got {scale!r}")
    T = model_t_max(model)
    if not composes and T is not None and times_f[-1] * s > T * (1 + 1e-6):
        warnings.warn(f"flow: times up to {times_f[-1]:g} reach {times_f[-1] * s:g} on the network's scale, beyond "
                      f"its trained interval [0, {T:g}]; the network extrapolates (use equivariant=True to compose)",
                      stacklevel=2)

    x = u0.reshape((1,) * (4 - u0.dim()) + tuple(u0.shape))
    B, C, H, W = x.shape
    in_ch = getattr(model, "in_channels", None)
    if in_ch is not None and C != in_ch:
        hint = (f": convert u0 to grey, pass a model of {C} channels (the coupled colour flow"
                + (f", such as {DEFAULT_COLOUR_MODEL!r}, the default for colour images" if C == 3 else "")
                + "), or wrap this one in pdeflow.tvflownet.PerChannel (the channelwise flow)" if in_ch == 1 else "")
        raise UserInputError(f"u0 has {C} channel(s) but the model takes {in_ch}{hint}")
    dev, dt = _device_of(model), _dtype_of(model)
    xs = x.to(device=dev, dtype=dt) * s
    K = len(times_f)
    tt = torch.tensor(times_f, dtype=torch.float64).repeat_interleave(B) * s          # pair j: time j // B
    img = torch.arange(B).repeat(K)                                                   # pair j: image j % B
    us, phis = [], []
    was_training = model.training
    model.eval()
    try:
        # a graph only for a gradient with respect to u0: as an inference call, no memory for activations
        record = torch.is_grad_enabled() and u0.requires_grad
        with torch.set_grad_enabled(record), progress_bar(total=math.ceil(B * K / batch_size), enabled=progress,
                                                          desc="TVflowNET", unit="batch") as bar:
            for j in range(0, B * K, batch_size):
                sl = slice(j, j + batch_size)
                u, phi = model(xs[img[sl].to(dev)], tt[sl].to(device=dev, dtype=dt))
                us.append(u / s)
                if return_ut or return_dual:
                    phis.append(phi)
                bar.update(1)
    finally:
        model.train(was_training)
    back = dict(device=u0.device, dtype=u0.dtype)
    phi = torch.cat(phis) if phis else None
    return flow_result(torch.cat(us).to(**back), tuple(u0.shape), ops.div(phi).to(**back) if return_ut else None,
                       phi.to(**back) if return_dual else None)
