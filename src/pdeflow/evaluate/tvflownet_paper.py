"""The TVflowNET paper's evaluation as data: its tables' numbers (:data:`PAPER`), its intensity scale and
time grid, its architecture labels, and which of its rows a model belongs to (:func:`paper_key`).

Grossmann, Dittmer, Korolev, Schönlieb, "Unsupervised learning of the total variation flow",
arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from ..errors import UserInputError
from ..metrics import PSNR_CAP

__all__ = ["PAPER_SCALE", "PSNR_CAP", "PAPER", "ARCH_LABEL", "paper_times", "paper_key", "unwrap_model",
           "model_in_channels", "model_recipe", "source_provenances"]


#: Intensity scale of the paper: images in [0, 1] times 5.
PAPER_SCALE = 5.0


def paper_times(n: int = 50, t_max: float = 0.98) -> list[float]:
    """The test times of the official code: ``linspace(0, t_max, n)`` (0, 0.02, ..., 0.98).

    Examples
    --------
    >>> from pdeflow.evaluate.tvflownet_paper import paper_times
    >>> times = paper_times()
    >>> len(times), times[:3], times[-1]
    (50, [0.0, 0.02, 0.04], 0.98)
    """
    if int(n) < 1:
        raise UserInputError(f"n must be >= 1, got {n}")
    return [float(v) for v in np.linspace(0.0, float(t_max), int(n))]


# =========================================================================== the paper's numbers
# (arch, training size) -> values; training size "32", "96", "256" or "mixed".

_ARCHS = ("semiresnet", "unet", "lgd")
_TRAIN = ("32", "96", "256", "mixed")


def _rows(values):
    return {(a, t): v for (a, t), v in zip([(a, t) for a in _ARCHS for t in _TRAIN], values)}


PAPER = {
    # Table 1: joint space-time optimisation vs model-driven; mean, std per evaluation size
    "table1": {
        "u_psnr": {32: (42.05, 3.03), 96: (43.47, 1.88), 256: (40.39, 0.27)},
        "u_ssim": {32: (0.989, 0.008), 96: (0.990, 0.006), 256: (0.978, 0.0005)},
        "div_psnr": {32: (29.86, 1.47), 96: (29.61, 1.40), 256: (24.09, 0.95)},
        "div_ssim": {32: (0.671, 0.142), 96: (0.676, 0.111), 256: (0.4075, 0.137)},
    },
    # Table 2: PSNR of u; (mean, std over five trainings) at evaluation sizes 32, 96, 256
    "table2": _rows([
        {32: (41.07, 0.09), 96: (42.73, 0.12), 256: (43.59, 0.15)},
        {32: (39.52, 0.23), 96: (41.48, 0.22), 256: (42.39, 0.34)},
        {32: (29.25, 1.05), 96: (32.38, 1.07), 256: (33.85, 1.02)},
        {32: (39.35, 0.05), 96: (40.93, 0.12), 256: (41.42, 0.21)},
        {32: (42.2, 0.08), 96: (43.95, 0.21), 256: (44.84, 0.31)},
        {32: (41.48, 0.21), 96: (43.86, 0.19), 256: (44.82, 0.2)},
        {32: (38.18, 0.14), 96: (39.63, 0.25), 256: (40.1, 0.29)},
        {32: (41.16, 0.3), 96: (42.08, 0.29), 256: (42.29, 0.28)},
        {32: (41.72, 0.08), 96: (43.8, 0.12), 256: (45.14, 0.16)},
        {32: (39.95, 0.45), 96: (42.27, 0.29), 256: (43.6, 0.2)},
        {32: (35.15, 0.13), 96: (38.27, 0.19), 256: (39.55, 0.28)},
        {32: (39.79, 0.17), 96: (41.66, 0.09), 256: (42.67, 0.12)},
    ]),
    # Table 3: SSIM of u; (mean, std over five trainings)
    "table3": _rows([
        {32: (0.986, 0.0002), 96: (0.989, 0.0002), 256: (0.989, 0.0002)},
        {32: (0.982, 0.0008), 96: (0.986, 0.0007), 256: (0.987, 0.0009)},
        {32: (0.89, 0.018), 96: (0.939, 0.009), 256: (0.95, 0.006)},
        {32: (0.981, 0.0005), 96: (0.985, 0.0004), 256: (0.985, 0.0005)},
        {32: (0.991, 0.0003), 96: (0.992, 0.0007), 256: (0.991, 0.0008)},
        {32: (0.988, 0.0009), 96: (0.992, 0.0003), 256: (0.992, 0.0005)},
        {32: (0.974, 0.0008), 96: (0.981, 0.001), 256: (0.982, 0.001)},
        {32: (0.987, 0.001), 96: (0.988, 0.0009), 256: (0.986, 0.0008)},
        {32: (0.989, 0.0002), 96: (0.992, 0.0002), 256: (0.993, 0.0002)},
        {32: (0.985, 0.001), 96: (0.99, 0.0005), 256: (0.991, 0.0004)},
        {32: (0.966, 0.001), 96: (0.981, 0.001), 256: (0.983, 0.001)},
        {32: (0.984, 0.0004), 96: (0.989, 0.0003), 256: (0.989, 0.0003)},
    ]),
    # Table 4: div phi; (PSNR, SSIM)
    "table4": _rows([
        {32: (31.94, 0.821), 96: (34.01, 0.867), 256: (34.52, 0.881)},
        {32: (31.09, 0.771), 96: (33.37, 0.831), 256: (34.01, 0.848)},
        {32: (22.59, 0.191), 96: (25.45, 0.242), 256: (26.39, 0.257)},
        {32: (30.64, 0.721), 96: (32.44, 0.773), 256: (32.76, 0.788)},
        {32: (32.62, 0.836), 96: (34.7, 0.873), 256: (35.16, 0.885)},
        {32: (32.36, 0.824), 96: (34.7, 0.873), 256: (35.23, 0.889)},
        {32: (29.6, 0.475), 96: (31.09, 0.538), 256: (31.12, 0.552)},
        {32: (31.46, 0.744), 96: (33.11, 0.77), 256: (33.21, 0.763)},
        {32: (32.53, 0.854), 96: (34.89, 0.896), 256: (35.62, 0.91)},
        {32: (31.81, 0.823), 96: (34.16, 0.875), 256: (34.86, 0.889)},
        {32: (28.26, 0.546), 96: (30.59, 0.621), 256: (31.0, 0.641)},
        {32: (31.27, 0.794), 96: (33.54, 0.846), 256: (34.15, 0.863)},
    ]),
    # Table 5: (PSNR, SSIM) on disks, ellipses, medical (spleen CT, 512 px)
    "table5": _rows([
        {"disks": (52.12, 0.983), "ellipses": (43.32, 0.947), "medical": (44.83, 0.984)},
        {"disks": (43.92, 0.798), "ellipses": (40.8, 0.906), "medical": (43.35, 0.959)},
        {"disks": (33.07, 0.856), "ellipses": (30.07, 0.782), "medical": (35.22, 0.935)},
        {"disks": (42.77, 0.786), "ellipses": (39.21, 0.906), "medical": (42.46, 0.956)},
        {"disks": (51.11, 0.975), "ellipses": (43.62, 0.963), "medical": (46.36, 0.989)},
        {"disks": (49.98, 0.968), "ellipses": (43.74, 0.947), "medical": (45.8, 0.985)},
        {"disks": (40.96, 0.826), "ellipses": (36.87, 0.883), "medical": (41.55, 0.946)},
        {"disks": (49.59, 0.964), "ellipses": (41.0, 0.917), "medical": (44.08, 0.976)},
        {"disks": (51.14, 0.963), "ellipses": (44.62, 0.963), "medical": (45.98, 0.987)},
        {"disks": (51.57, 0.984), "ellipses": (43.4, 0.94), "medical": (45.04, 0.983)},
        {"disks": (37.36, 0.604), "ellipses": (34.14, 0.766), "medical": (40.95, 0.937)},
        {"disks": (43.52, 0.867), "ellipses": (37.82, 0.902), "medical": (44.02, 0.974)},
    ]),
    # Table 6: one-homogeneity, (PSNR, SSIM) for factors 3 and 0.3
    "table6": _rows([
        {3.0: (51.22, 0.997), 0.3: (29.91, 0.852)},
        {3.0: (46.71, 0.996), 0.3: (32.4, 0.929)},
        {3.0: (28.55, 0.944), 0.3: (22.35, 0.839)},
        {3.0: (40.45, 0.994), 0.3: (28.94, 0.813)},
        {3.0: (50.34, 0.997), 0.3: (35.78, 0.941)},
        {3.0: (46.02, 0.994), 0.3: (35.41, 0.952)},
        {3.0: (35.24, 0.983), 0.3: (34.36, 0.957)},
        {3.0: (39.67, 0.988), 0.3: (34.68, 0.943)},
        {3.0: (52.0, 0.998), 0.3: (26.11, 0.721)},
        {3.0: (42.27, 0.993), 0.3: (29.12, 0.849)},
        {3.0: (30.6, 0.979), 0.3: (28.57, 0.879)},
        {3.0: (43.53, 0.992), 0.3: (10.38, 0.646)},
    ]),
    # Table 7: reconstruction of u0 from the spectral TV transform, (PSNR, SSIM), 96 px
    "table7": _rows([
        {"autodiff": (47.53, 0.997), "fd": (47.68, 0.997)},
        {"autodiff": (43.82, 0.994), "fd": (44.18, 0.995)},
        {"autodiff": (29.98, 0.877), "fd": (30.21, 0.885)},
        {"autodiff": (41.35, 0.988), "fd": (41.72, 0.988)},
        {"autodiff": (50.32, 0.998), "fd": (50.32, 0.998)},
        {"autodiff": (48.14, 0.997), "fd": (48.2, 0.997)},
        {"autodiff": (38.57, 0.971), "fd": (38.58, 0.971)},
        {"autodiff": (43.94, 0.992), "fd": (43.96, 0.992)},
        {"autodiff": (49.69, 0.998), "fd": (49.71, 0.998)},
        {"autodiff": (45.79, 0.996), "fd": (45.82, 0.996)},
        {"autodiff": (37.14, 0.969), "fd": (37.15, 0.97)},
        {"autodiff": (42.82, 0.993), "fd": (42.84, 0.993)},
    ]),
    "table7_fd_gt": (66.53, 0.999),
    # Table 9: evaluation time in seconds (networks on a P6000 GPU; model-driven on CPU and GPU)
    "table9": {
        "semiresnet": {32: 0.001, 96: 0.005, 256: 0.03, 512: 0.12},
        "unet": {32: 0.003, 96: 0.01, 256: 0.05, 512: 0.19},
        "lgd": {32: 0.008, 96: 0.014, 256: 0.073, 512: 0.29},
        "model-driven (CPU)": {32: 0.58, 96: 5.61, 256: 44.07, 512: 89.22},
        "model-driven (GPU)": {32: 3.12, 96: 3.14, 256: 3.17, 512: 3.42},
        "joint": {32: 14.09, 96: 14.39, 256: 581.87, 512: 3217.93},
    },
}

ARCH_LABEL = {"semiresnet": "Semi-ResNet", "unet": "U-Net", "lgd": "LGD"}


# =========================================================================== paper rows


def source_provenances(prov):
    """A model's provenance and, for an average of models (:func:`pdeflow.tvflownet.average`) or an
    ensemble (:func:`pdeflow.tvflownet.ensemble`), each source's, recursively.

    Examples
    --------
    >>> from pdeflow.evaluate.tvflownet_paper import source_provenances
    >>> prov = {"trainer": "pdeflow.tvflownet.average",
    ...         "averaged": [{"provenance": {"trainer": "a"}}, {"provenance": {"trainer": "b"}}]}
    >>> [p["trainer"] for p in source_provenances(prov)]
    ['pdeflow.tvflownet.average', 'a', 'b']
    """
    if not isinstance(prov, Mapping):
        return
    yield prov
    for key in ("averaged", "members"):
        sources = prov.get(key)
        for src in sources if isinstance(sources, list) else ():
            if isinstance(src, Mapping):
                yield from source_provenances(src.get("provenance"))




def model_recipe(model) -> str | None:
    """A digest of how ``model`` was trained (its provenance's ``train_config`` less the fields that tell
    trainings apart, :func:`pdeflow.tvflownet.train.recipe`): equal for independent trainings of one recipe,
    None for a model without a training run of its own (an average of models, a bare network).

    Examples
    --------
    >>> from pdeflow.evaluate.tvflownet_paper import model_recipe
    >>> from pdeflow.tvflownet import load
    >>> model_recipe(load("semiresnet")) == model_recipe(load("semiresnet")), model_recipe(load("unet"))
    (True, None)
    """
    import hashlib
    import json

    from ..tvflownet.train import recipe
    config = ((getattr(unwrap_model(model), "meta", None) or {}).get("provenance") or {}).get("train_config")
    if not isinstance(config, Mapping):
        return None
    return hashlib.sha256(json.dumps(recipe(dict(config)), sort_keys=True).encode()).hexdigest()[:12]


def unwrap_model(model):
    """The model inside wrappers (attributes ``model``, ``module``, ``base``, ``inner``, ``net``, up to
    five deep): the first one whose ``config`` names an ``arch``, else the innermost.

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet_paper import unwrap_model
    >>> from pdeflow.tvflownet.symmetry import Equivariant
    >>> net = load("semiresnet")
    >>> unwrap_model(Equivariant(net)) is net
    True
    """
    seen = 0
    while seen < 5:
        cfg = getattr(model, "config", None)
        if isinstance(cfg, Mapping) and "arch" in cfg:
            return model
        inner = None
        for attr in ("model", "module", "base", "inner", "net"):
            inner = getattr(model, attr, None)
            if inner is not None and inner is not model:
                break
            inner = None
        if inner is None:
            return model
        model, seen = inner, seen + 1
    return model



def model_in_channels(model) -> int:
    """The image channels ``model`` takes: its own ``in_channels`` first (``PerChannel`` runs a grey model on
    colour images), else the unwrapped model's, else 1.

    Examples
    --------
    >>> from pdeflow.tvflownet import PerChannel, load
    >>> from pdeflow.evaluate.tvflownet_paper import model_in_channels
    >>> model_in_channels(load("semiresnet")), model_in_channels(PerChannel(load("semiresnet")))
    (1, 3)
    """
    return int(getattr(model, "in_channels", None) or getattr(unwrap_model(model), "in_channels", None) or 1)

_TRAIN_KEYS = ("train_size", "training_size", "crop", "crop_size")


def _find_train_size(d, depth: int = 0) -> str | None:
    """The training crop size in a model's metadata: ``provenance.train_config.crop`` (what
    :mod:`pdeflow.tvflownet.train` writes) first, else one of :data:`_TRAIN_KEYS` anywhere
    (outside validation settings)."""
    if not isinstance(d, Mapping) or depth > 4:
        return None
    prov = d.get("provenance")
    if isinstance(prov, Mapping) and isinstance(prov.get("train_config"), Mapping):
        v = prov["train_config"].get("crop")
        if v is not None:
            return str(v).lower()
    sources = list(source_provenances(prov))[1:]
    if sources:                                  # an average of models: their common training size, if any
        sizes = {_find_train_size({"provenance": p}, depth + 1) for p in sources}
        return sizes.pop() if len(sizes) == 1 else None
    for k in _TRAIN_KEYS:
        if d.get(k) is not None and not isinstance(d[k], Mapping):
            return str(d[k]).lower()
    for k, v in d.items():
        if isinstance(v, Mapping) and "valid" not in str(k).lower():
            found = _find_train_size(v, depth + 1)
            if found is not None:
                return found
    return None


def paper_key(name: str, model=None) -> tuple[str, str] | None:
    """The paper's row ``(arch, training size)`` for a model, or None if unknown or a colour model.

    ``arch`` from ``model.config["arch"]`` (also through wrappers with a
    ``.model`` attribute) or the name; the training size (``"32"``, ``"96"``,
    ``"256"``, ``"mixed"``) from the metadata :func:`pdeflow.tvflownet.load`
    attaches (``model.meta["provenance"]["train_config"]["crop"]``, or a
    ``crop``/``crop_size``/``train_size`` entry) or from the name (e.g. ``"unet-32"``).

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet_paper import paper_key
    >>> paper_key("semiresnet", load("semiresnet")), paper_key("unet-96"), paper_key("mine")
    (('semiresnet', '32'), ('unet', '96'), None)
    """
    if model is not None and model_in_channels(model) > 1:
        return None             # a colour model (or a grey one per channel): the paper's rows are grey
    base = unwrap_model(model) if model is not None else None
    arch = None
    cfg = getattr(base, "config", None)
    if isinstance(cfg, Mapping):
        arch = str(cfg.get("arch", "")).lower() or None
    low = str(name).lower().replace("-", "").replace("_", "")
    if arch not in _ARCHS:
        arch = next((a for a in _ARCHS if a in low), None)
    if arch is None:
        return None
    train = None
    for holder in (model, base):
        train = _find_train_size(getattr(holder, "meta", None))
        if train is None:
            for attr in ("provenance", "training", "info"):
                train = _find_train_size(getattr(holder, attr, None))
                if train is not None:
                    break
        if train is not None:
            break
    if train is None:
        m = re.search(r"(?<!\d)(32|96|256)(?!\d)|mixed", str(name).lower())
        train = m.group(0) if m else None
    if train not in _TRAIN:
        return None
    return arch, train
