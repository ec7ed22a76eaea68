"""Model files: a model's weights as ``NAME.safetensors`` and its configuration, provenance and the weights'
checksum as ``NAME.json`` (the format; finding, listing and loading models is :mod:`pdeflow.models`).
"""
from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..errors import InputFileNotFoundError, UserInputError
from .files import to_json, write_bytes

__all__ = ["model_paths", "model_bytes", "save_model", "load_model", "model_from_export"]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_paths(path) -> tuple[Path, Path]:
    """The two files of the model ``path`` (either file or their common stem): ``(weights, json)``.

    Examples
    --------
    >>> from pdeflow.io import model_paths
    >>> [p.name for p in model_paths("runs/a/model.json")]
    ['model.safetensors', 'model.json']
    """
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def model_bytes(model, weights_name: str, config: dict, provenance: dict | None = None) -> tuple[bytes, bytes]:
    """A model's two files as bytes: ``(weights, metadata)``, what :func:`save_model` writes.

    For writers that stage files themselves (the command line's all-or-nothing outputs).
    ``weights_name`` is the weights file's name, recorded in the JSON with its SHA-256; the
    other arguments as :func:`save_model`.

    Examples
    --------
    >>> import json, torch
    >>> from pdeflow.io import model_bytes
    >>> weights, meta = model_bytes(torch.nn.Linear(2, 1), "m.safetensors", {"width": 2})
    >>> json.loads(meta)["weights"]["file"]
    'm.safetensors'
    """
    from safetensors.torch import save as st_save

    from .. import __version__

    if isinstance(model, torch.nn.Module):
        state = getattr(model, "module", model).state_dict()
    elif isinstance(model, Mapping):
        state = dict(model)
    else:
        raise TypeError(f"save_model: model must be an nn.Module or a state dict, got {type(model).__name__}")
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
    weights = st_save(tensors, metadata={"format": "pdeflow-model"})
    meta = {
        "format": "pdeflow-model",
        "format_version": 1,
        "config": config,
        "provenance": {
            "pdeflow_version": __version__,
            "torch_version": str(torch.__version__),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **(provenance or {}),
        },
        "weights": {"file": weights_name, "sha256": hashlib.sha256(weights).hexdigest()},
    }
    return weights, to_json(meta, "save_model: config and provenance").encode()


def save_model(model, path, config: dict, provenance: dict | None = None) -> tuple[Path, Path]:
    """Ship a model: ``<path>.safetensors`` (weights) and ``<path>.json`` (metadata).

    The JSON holds ``config`` (what is needed to rebuild the model), ``provenance``
    (how it was trained: data, steps, metrics, ...; pdeflow/torch versions and the
    date are added) and the SHA-256 of the weights file, which
    :func:`load_model` checks. Both files are written atomically, weights first.

    Parameters
    ----------
    model : torch.nn.Module or mapping of str to torch.Tensor
        The model (a DDP wrapper is unwrapped) or its state dict.
    path : str or path-like
        The common stem of the two files (a ``.safetensors`` or ``.json`` suffix is dropped).
    config, provenance : dict
        JSON-serialisable metadata.

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The weights file and the JSON file.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.io import save_model
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print([p.name for p in save_model(torch.nn.Linear(2, 1), f"{d}/m", {"width": 2}, {"steps": 1})])
    ['m.safetensors', 'm.json']
    """
    weights_path, meta_path = model_paths(path)
    weights, meta = model_bytes(model, weights_path.name, config, provenance)
    write_bytes(weights_path, weights)
    write_bytes(meta_path, meta)
    return weights_path, meta_path


def load_model(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a model written by :func:`save_model`: ``(state_dict, meta)``.

    ``path`` may name the ``.safetensors`` file, the ``.json`` file or the common
    stem. Tensors are on the CPU. Raises a :class:`~pdeflow.errors.UserInputError`,
    naming the file, if the JSON is not a JSON object, the weights file is not a
    readable safetensors file, or the weights do not match the checksum in the
    JSON (files from two different exports, or a damaged file).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.io import load_model, save_model
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_model(torch.nn.Linear(2, 1), f"{d}/m", {"width": 2}, {"steps": 1})
    ...     state, meta = load_model(f"{d}/m.json")
    >>> sorted(state), meta["config"], meta["provenance"]["steps"]
    (['bias', 'weight'], {'width': 2}, 1)
    """
    from safetensors.torch import load_file

    weights_path, meta_path = model_paths(path)
    for p in (weights_path, meta_path):
        if not p.is_file():
            raise InputFileNotFoundError(f"load_model: missing {p} (a model is a .safetensors + .json pair)")
    try:
        meta = json.loads(meta_path.read_bytes())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UserInputError(f"load_model: {meta_path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise UserInputError(f"load_model: {meta_path} is not valid JSON (nested too deeply)") from None
    weights = meta.get("weights", {}) if isinstance(meta, dict) else None
    if not isinstance(weights, dict):
        raise UserInputError(f"load_model: {meta_path} is not a model's metadata (expected a JSON object "
                             "with 'config', 'provenance' and 'weights', as written by save_model)")
    expected = weights.get("sha256")
    if expected is not None and _sha256(weights_path) != expected:
        raise UserInputError(f"load_model: {weights_path} does not match the checksum in {meta_path} "
                             "(weights and metadata come from different exports, or a file is damaged)")
    try:
        state = load_file(weights_path, device="cpu")
    except Exception as exc:  # safetensors' SafetensorError is no ValueError
        raise UserInputError(f"load_model: {weights_path} is not a readable safetensors file ({exc})") from None
    return state, meta


def model_from_export(build: Callable[..., torch.nn.Module], state: Mapping[str, torch.Tensor], meta: dict,
                      path, who: str = "load") -> torch.nn.Module:
    """``build(**meta['config']['model'])`` with the exported ``state`` loaded into it.

    For loaders of models read by :func:`load_model`: a configuration that
    does not build a model, or weights that do not fit it (missing or extra
    names, other shapes), raise a :class:`~pdeflow.errors.UserInputError` naming
    the files instead of the constructor's or ``load_state_dict``'s own error.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.io import load_model, model_from_export, save_model
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_model(torch.nn.Linear(2, 1), f"{d}/m", {"model": {"in_features": 2, "out_features": 1}})
    ...     state, meta = load_model(f"{d}/m")
    ...     net = model_from_export(torch.nn.Linear, state, meta, f"{d}/m")
    >>> net.weight.shape
    torch.Size([1, 2])
    """
    weights_path, meta_path = model_paths(path)
    config = meta.get("config") if isinstance(meta, dict) else None
    kwargs = config.get("model") if isinstance(config, dict) else None
    if not isinstance(kwargs, dict):
        raise UserInputError(f"{who}: {meta_path} has no model configuration (config.model must be a JSON object)")
    try:
        model = build(**kwargs)
    except Exception as exc:  # anything the constructor makes of a damaged configuration
        raise UserInputError(f"{who}: the model configuration in {meta_path} cannot be built "
                             f"({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 300 else detail[:300] + " ..."
        raise UserInputError(f"{who}: the weights in {weights_path} do not fit the model described by {meta_path} "
                             f"({detail})") from None
    return model
