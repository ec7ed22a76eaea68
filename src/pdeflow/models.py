"""The one model registry: resolve, list, load and save trained models of every pillar.

A trained model is a pair of files written by :func:`save_model`: ``NAME.safetensors`` (the weights) and
``NAME.json`` (``config``: what rebuilds the model; ``provenance``: how it was trained; the weights'
SHA-256). The models that ship with pdeflow live in the pillars' weights folders
(:data:`WEIGHTS_DIRS`, package data) and are documented in :data:`SHIPPED`; a test fails if a documented
model stops shipping or an undocumented one appears. Every loader of the library goes through
:func:`resolve` (a shipped name, either file of a pair, their common stem, or a training run directory
holding ``model.*``) and :func:`load` (the file checks, naming the file; the model's ``config.kind``;
the model built and its weights loaded; ``.meta`` set; eval mode). On the command line:
``pdeflow models``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .errors import InputFileNotFoundError, UserInputError
from .io import load_model, model_from_export, model_paths, save_model

__all__ = ["WEIGHTS_DIRS", "SHIPPED", "Shipped", "shipped_models", "shipped_name", "resolve", "label", "read", "load",
           "build_model", "ready",
           "save_model", "describe", "training", "evaluating"]

_ROOT = Path(__file__).resolve().parent
#: The folder of shipped weights of each pillar that ships models (package data).
WEIGHTS_DIRS = {"tvflownet": _ROOT / "tvflownet" / "weights", "inpaint": _ROOT / "inpaint" / "weights"}


@dataclass(frozen=True)
class Shipped:
    """What a shipped model is: its pillar, its ``config.kind``, its role among the pillar's defaults
    (``group``, with the ``density`` it was trained for where that selects it) and what it is for.

    Examples
    --------
    >>> from pdeflow.models import SHIPPED
    >>> SHIPPED["masknet-10"].density
    0.1
    """

    pillar: str
    kind: str
    group: str
    purpose: str
    density: float | None = None


def _joint(d: float, pct: str) -> dict[str, Shipped]:
    pair = f"of the pair fine-tuned together at {d:.0%} density (load_joint)"
    return {
        f"joint-{pct}-mask": Shipped("inpaint", "masknet", "joint-mask", f"mask network {pair}", d),
        f"joint-{pct}-inpainter": Shipped("inpaint", "residual-inpainter", "joint-inpainter",
                                          f"residual inpainter {pair}", d),
        f"joint-{pct}-inpainter-refined": Shipped("inpaint", "residual-inpainter", "joint-inpainter-refined",
                                                  "the pair's inpainter for test-time refined masks", d),
    }


#: The models that ship, by name (the file stem in the pillar's :data:`WEIGHTS_DIRS` folder).
SHIPPED: dict[str, Shipped] = {
    "default": Shipped("tvflownet", "tvflownet", "default",
                       "TVflowNET used when none is named: ensemble of the U-Net (u) and LGD models (phi)"),
    "unet": Shipped("tvflownet", "tvflownet", "tvflownet", "TVflowNET U-Net (the paper's architecture)"),
    "lgd": Shipped("tvflownet", "tvflownet", "tvflownet", "TVflowNET learned gradient descent, 5 blocks"),
    "lgd10": Shipped("tvflownet", "tvflownet", "tvflownet", "TVflowNET learned gradient descent, 10 blocks"),
    "semiresnet": Shipped("tvflownet", "tvflownet", "tvflownet", "TVflowNET Semi-ResNet (the paper's smallest)"),
    "unet-unsupervised": Shipped("tvflownet", "tvflownet", "unsupervised",
                                 "TVflowNET U-Net trained the paper's way, from loss (12) alone (no computed flow in "
                                 "any step), with u(0) = u0 built in"),
    "lgd-unsupervised": Shipped("tvflownet", "tvflownet", "unsupervised",
                                "TVflowNET learned gradient descent (5 blocks) trained the paper's way, from loss (12) "
                                "alone (no computed flow in any step), with u(0) = u0 built in"),
    "semiresnet-unsupervised": Shipped("tvflownet", "tvflownet", "unsupervised",
                                       "TVflowNET Semi-ResNet trained the paper's way, from loss (12) alone (no "
                                       "computed flow in any step), with u(0) = u0 built in"),
    "unet-colour": Shipped("tvflownet", "tvflownet", "colour",
                           "TVflowNET for colour images, the coupled colour flow: the grey U-Net on every channel, "
                           "the channels' coupling learned (flow()'s default for colour images)"),
    "unet-colour-hybrid": Shipped("tvflownet", "tvflownet", "colour-hybrid",
                                  "unet-colour's architecture and supervised grey start, the channels' coupling "
                                  "learned from loss (12) alone (no computed flow in its colour stage)"),
    "unet-colour-unsupervised": Shipped("tvflownet", "tvflownet", "colour-unsupervised",
                                        "unet-colour's architecture from unet-unsupervised, loss (12) alone in "
                                        "every stage (no computed flow), early times weighted"),
    "masknet-05": Shipped("inpaint", "masknet", "masknet", "mask network for 5% density (learned_mask)", 0.05),
    "masknet-10": Shipped("inpaint", "masknet", "masknet", "mask network for 10% density (learned_mask)", 0.1),
    "masknet-20": Shipped("inpaint", "masknet", "masknet", "mask network for 20% density (learned_mask)", 0.2),
    "masknet-20-feedback": Shipped("inpaint", "masknet", "masknet-feedback",
                                   "mask network for 20% density that reads its first mask's inpainting error "
                                   "(learned_mask(f, 0.2, model='masknet-20-feedback'))", 0.2),
    "residual-inpainter": Shipped("inpaint", "residual-inpainter", "residual",
                                  "diffusion inpainting plus a learned correction, all densities "
                                  "(inpaint_learned)"),
    "residual-inpainter-random": Shipped("inpaint", "residual-inpainter", "residual-random",
                                         "the residual inpainter fine-tuned with a WGAN critic on uniformly random "
                                         "masks (inpaint_learned(f, mask, model='residual-inpainter-random'))"),
    **_joint(0.05, "05"), **_joint(0.1, "10"), **_joint(0.2, "20"),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SUFFIXES = (".safetensors", ".json")


def _pillar(pillar: str) -> Path:
    if pillar not in WEIGHTS_DIRS:
        raise UserInputError(f"pillar must be one of {', '.join(WEIGHTS_DIRS)}, got {pillar!r}")
    return WEIGHTS_DIRS[pillar]


def shipped_models(pillar: str | None = None) -> list[str]:
    """Names of the models present in the weights folder of ``pillar`` (all pillars if None), sorted.

    A model is present when both of its files are. The documented list is :data:`SHIPPED`.

    Examples
    --------
    >>> from pdeflow.models import shipped_models
    >>> "default" in shipped_models("tvflownet"), "masknet-10" in shipped_models("inpaint")
    (True, True)
    """
    folders = [_pillar(pillar)] if pillar is not None else list(WEIGHTS_DIRS.values())
    return sorted(p.stem for d in folders if d.is_dir() for p in d.glob("*.safetensors")
                  if p.with_suffix(".json").is_file())


def shipped_name(group: str, density: float | None = None) -> str | None:
    """The documented shipped model of ``group`` (a :class:`Shipped` group) for ``density``, or None.

    Examples
    --------
    >>> from pdeflow.models import shipped_name
    >>> shipped_name("masknet", 0.1), shipped_name("masknet", 0.3)
    ('masknet-10', None)
    """
    for name, s in SHIPPED.items():
        if s.group == group and (density is None or (s.density is not None
                                                     and math.isclose(s.density, float(density), abs_tol=1e-9))):
            return name
    return None


def resolve(spec, pillar: str, *, who: str = "load", hint: str = "") -> Path:
    """The common stem of a model's two files: a shipped name of ``pillar`` first, else a path.

    Parameters
    ----------
    spec : str or path
        A shipped name, either file of a pair, their common stem, or a run
        directory holding ``model.safetensors`` and ``model.json``.
    pillar : str
        Whose weights folder a bare name is looked up in (a key of :data:`WEIGHTS_DIRS`).
    who, hint : str
        The caller named in the message, and how to get a model (appended to it).

    Raises
    ------
    pdeflow.errors.InputFileNotFoundError
        An unknown name (the message lists the shipped ones) or a path without both files
        (a :class:`~pdeflow.errors.UserInputError` and a FileNotFoundError).

    Examples
    --------
    >>> from pdeflow.models import resolve
    >>> resolve("masknet-10", "inpaint").name
    'masknet-10'
    """
    folder = _pillar(pillar)
    text = os.fspath(spec)
    p = Path(text)
    stem = p / "model" if p.is_dir() else model_paths(p)[0].with_suffix("")
    is_path = (isinstance(spec, os.PathLike) or os.sep in text or "/" in text or p.is_dir()
               or p.suffix in _SUFFIXES)
    if not is_path and _NAME.match(text) and text in shipped_models(pillar):
        return folder / text
    pair = model_paths(stem)
    if is_path or any(f.is_file() for f in pair):
        missing = [str(f) for f in pair if not f.is_file()]
        if missing:
            raise InputFileNotFoundError(f"{who}: no model at {text!r}: missing {', '.join(missing)} (a model is "
                                         "a .safetensors + .json pair written by save_model, or a run directory "
                                         "holding model.safetensors + model.json)")
        return stem
    names = shipped_models(pillar)
    have = f"shipped models: {', '.join(names)}" if names else "no model is shipped in this installation yet"
    raise InputFileNotFoundError(f"{who}: the model {text!r} is not shipped in {folder} ({have})"
                                 + (f"; {hint}" if hint else ""))


def label(spec, pillar: str) -> str:
    """A model's short name in reports: a shipped name as it is, a training run's model by its run directory's
    name (the run writes ``model.*``), any other pair by its stem.

    Examples
    --------
    >>> from pdeflow.models import label
    >>> label("masknet-10", "inpaint")
    'masknet-10'
    """
    stem = resolve(spec, pillar)
    return stem.parent.name if stem.name == "model" and stem.parent.name else stem.name


def read(spec, pillar: str, *, kinds=None, what: str = "a model", who: str = "load", hint: str = "",
         channels: int | None = None) -> tuple[dict, dict, Path]:
    """The weights, JSON and stem of the model ``spec`` (see :func:`resolve`), checked.

    A damaged file, or a model whose ``config.kind`` is not one of ``kinds`` (None: any kind with a
    ``config.model``) or, with ``channels``, was trained for another channel count, raises a
    :class:`~pdeflow.errors.UserInputError` naming the file.

    Examples
    --------
    >>> from pdeflow.models import read
    >>> state, meta, stem = read("masknet-10", "inpaint", kinds=("masknet",))
    >>> meta["config"]["kind"], stem.name
    ('masknet', 'masknet-10')
    """
    stem = resolve(spec, pillar, who=who, hint=hint)
    state, meta = load_model(stem)
    cfg = meta.get("config") if isinstance(meta, dict) else None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict) \
            or (kinds is not None and cfg.get("kind") not in kinds):
        want = f" (config.kind {' or '.join(map(repr, kinds))})" if kinds is not None else " (no config.model)"
        raise UserInputError(f"{who}: {stem}.json is not {what}{want}")
    have = cfg["model"].get("channels")
    if channels is not None and have != channels:
        raise UserInputError(f"{who}: channels: {stem}.json was trained for {have} channel(s), "
                             f"the image has {channels}")
    return state, meta, stem


def load(spec, pillar: str, build: Callable[..., torch.nn.Module], *, device=None, **checks) -> torch.nn.Module:
    """A trained model, ready to use: ``build(**config.model)`` with its weights, ``.meta`` its JSON, in eval mode.

    Parameters
    ----------
    spec, pillar
        As :func:`resolve`.
    build : callable
        The model class (or factory) its ``config.model`` is passed to.
    device : torch device, optional
    **checks
        ``kinds``, ``what``, ``who``, ``hint``, ``channels``: as :func:`read`.

    Examples
    --------
    >>> from pdeflow.inpaint.learned.masknet import MaskNet
    >>> from pdeflow.models import load
    >>> net = load("masknet-10", "inpaint", MaskNet, kinds=("masknet",))
    >>> net.density, net.training
    (0.1, False)
    """
    state, meta, stem = read(spec, pillar, **checks)
    return build_model(build, state, meta, stem, who=checks.get("who", "load"), device=device)


def build_model(build: Callable[..., torch.nn.Module], state: dict, meta: dict, stem, *, who: str = "load",
                device=None) -> torch.nn.Module:
    """``build(**meta['config']['model'])`` with ``state`` loaded, made :func:`ready`; what :func:`read`
    gives, for loaders that check more of the JSON first. A configuration that does not build, or weights
    that do not fit, raise a :class:`~pdeflow.errors.UserInputError` naming the files.

    Examples
    --------
    >>> from pdeflow.inpaint.learned.masknet import MaskNet
    >>> from pdeflow.models import build_model, read
    >>> state, meta, stem = read("masknet-10", "inpaint")
    >>> build_model(MaskNet, state, meta, stem).channels
    1
    """
    return ready(model_from_export(build, state, meta, stem, who), meta, device)


def ready(model: torch.nn.Module, meta: dict, device=None) -> torch.nn.Module:
    """``model`` with its JSON as ``.meta``, on ``device`` (if given), in eval mode.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.models import ready
    >>> ready(torch.nn.Linear(1, 1), {"config": {}}).meta
    {'config': {}}
    """
    model.meta = meta
    return (model.to(device) if device is not None else model).eval()


@contextlib.contextmanager
def evaluating(*nets: torch.nn.Module | None):
    """Run ``nets`` (None entries skipped) in eval mode without gradients, then restore their modes;
    yields the device of the first one's weights.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.models import evaluating
    >>> net = torch.nn.Linear(1, 1)
    >>> with evaluating(net) as device:
    ...     print(device, net.training, torch.is_grad_enabled())
    cpu False False
    >>> net.training
    True
    """
    # only nets in training mode are switched (train()/eval() walk every submodule, which is not free)
    switched = [n for n in nets if n is not None and n.training]
    for n in switched:
        n.eval()
    try:
        with torch.no_grad():
            yield next(next(n for n in nets if n is not None).parameters()).device
    finally:
        for n in switched:
            n.train()


def _parameters(weights: Path) -> int:
    """The number of parameters in a safetensors file, from its header (no tensor is read)."""
    with open(weights, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def _provenance(prov: dict) -> str:
    parts = [str(prov.get("trainer") or prov.get("command", "").split(" --")[0] or "?")]
    if "steps" in prov:
        parts.append(f"{prov['steps']} steps")
    for key in ("members", "averaged"):
        if key in prov:
            parts.append(f"{key} of {len(prov[key])}")
    if "created" in prov:
        parts.append(str(prov["created"])[:10])
    return ", ".join(parts)


def _train_configs(prov):
    """Every ``train_config`` in a provenance, its stages', members' and init chains' included."""
    if isinstance(prov, dict):
        if isinstance(prov.get("train_config"), dict):
            yield prov["train_config"]
        for v in prov.values():
            yield from _train_configs(v)
    elif isinstance(prov, list):
        for v in prov:
            yield from _train_configs(v)


def training(prov: dict) -> str:
    """How a model was trained, from every stage its provenance records: TVflowNET's modes (``supervised``
    by the exact flow, ``unsupervised`` by loss (12) alone, ``hybrid``; several stages' modes joined by
    ``+``), and for the inpainting models whether a WGAN critic took part (``alpha > 0``).

    Examples
    --------
    >>> from pdeflow.models import training
    >>> training({"train_config": {"mode": "unsupervised"}})
    'unsupervised'
    >>> training({"train_config": {"mode": "supervised"}, "init": {"train_config": {"mode": "unsupervised"}}})
    'supervised+unsupervised'
    >>> training({"train_config": {"mode": "unsupervised"}, "shipped": {"training_stages": [{"mode": "supervised"}]}})
    'supervised+unsupervised'
    >>> training({"train_config": {"stage": "residual", "alpha": 0.005}})
    'supervised, critic'
    """
    configs = list(_train_configs(prov))
    stages = prov.get("shipped", {}).get("training_stages", []) if isinstance(prov, dict) else []
    modes = sorted({c["mode"] for c in configs + [s for s in stages if isinstance(s, dict)]
                    if isinstance(c.get("mode"), str)})
    if modes:
        return "+".join(modes)
    if not configs:
        return "?"
    critic = any(isinstance(c.get("alpha"), (int, float)) and c["alpha"] > 0 for c in configs)
    return "supervised, critic" if critic else "supervised"


def describe(pillar: str | None = None) -> list[dict]:
    """One row per shipped model (of ``pillar``, or all): name, pillar, kind, parameters, size in bytes,
    purpose, how it was trained (:func:`training`) and a one-line provenance (trainer, steps, date), for
    ``pdeflow models``.

    Examples
    --------
    >>> from pdeflow.models import describe
    >>> row = next(r for r in describe("inpaint") if r["name"] == "masknet-10")
    >>> row["kind"], row["parameters"] > 0
    ('masknet', True)
    """
    rows = []
    for name in shipped_models(pillar):
        folder = next(d for d in WEIGHTS_DIRS.values() if (d / f"{name}.json").is_file())
        meta = json.loads((folder / f"{name}.json").read_text())
        cfg = meta.get("config", {})
        info = SHIPPED.get(name)
        arch = cfg.get("model", {}).get("arch") if isinstance(cfg.get("model"), dict) else None
        weights = folder / f"{name}.safetensors"
        rows.append({"name": name, "pillar": next(k for k, d in WEIGHTS_DIRS.items() if d == folder),
                     "kind": cfg.get("kind") or f"tvflownet ({arch})",
                     "parameters": _parameters(weights), "size": weights.stat().st_size,
                     "purpose": info.purpose if info else "(undocumented)",
                     "training": training(meta.get("provenance", {})),
                     "provenance": _provenance(meta.get("provenance", {}))})
    return rows
