"""Model files: a model's weights as ``NAME.safetensors`` and its configuration, provenance and the weights'
checksum as ``NAME.json`` (the format; finding, listing and loading models is :mod:`pdeflow.models`).

Weights may be stored in float16 (``stored_dtype="float16"``, how the shipped models are kept small): each
floating tensor that float16 holds to its own rounding (:func:`fits_float16`) is stored in float16, the
others as they are, and the JSON's ``weights`` records ``stored_dtype`` and ``dtype`` (the precision the
model was trained in), to which :func:`load_model` casts the float16 tensors back.
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

__all__ = ["model_paths", "model_bytes", "save_model", "load_model", "model_from_export", "fits_float16",
           "store_float16", "trimmed_provenance", "STORED_DTYPES", "SAME_AS_ABOVE"]

#: What ``stored_dtype`` may be: None (each tensor as it is) or ``"float16"``.
STORED_DTYPES = (None, "float16")
_FLOAT16 = torch.finfo(torch.float16)
#: What :func:`trimmed_provenance` writes in place of a block that repeats the enclosing stage's.
SAME_AS_ABOVE = "same as the enclosing stage"
#: Blocks whose JSON is shorter than this stay as they are: a reference would save nothing.
_TRIM_MIN_CHARS = 80


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


def fits_float16(tensor: torch.Tensor) -> bool:
    """Whether float16 holds the floating ``tensor`` to float16's own rounding: no value overflows and no
    value moves by more than float16's unit roundoff (2**-11) times the tensor's largest magnitude.

    Values below float16's normal range (about 6.1e-5) lose relative precision but move by at most
    2**-25 each; that counts only where the tensor's largest magnitude is itself that small, so a tensor of
    ordinary weights with a few near-zero entries fits and a tensor of tiny values does not.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.io import fits_float16
    >>> [fits_float16(torch.tensor(x)) for x in ([0.3, -1.2, 1e-7], [1e5], [3e-7, 1e-7])]
    [True, False, False]
    """
    if not tensor.is_floating_point():
        return False
    x = tensor.detach().double()
    if x.numel() == 0:
        return True
    if not bool(torch.isfinite(x).all()) or float(x.abs().max()) > _FLOAT16.max:
        return False
    error = float((x.half().double() - x).abs().max())
    return error <= 2.0 ** -11 * float(x.abs().max())


def _stored(tensors: dict[str, torch.Tensor], stored_dtype: str | None) -> tuple[dict[str, torch.Tensor], dict]:
    """``tensors`` as stored with ``stored_dtype``, and what the JSON's ``weights`` records about it."""
    if stored_dtype not in STORED_DTYPES:
        raise UserInputError(f"save_model: stored_dtype must be one of {STORED_DTYPES}, got {stored_dtype!r}")
    if stored_dtype is None:
        return tensors, {}
    floating = {str(v.dtype).removeprefix("torch.") for v in tensors.values() if v.is_floating_point()}
    if len(floating) != 1 or floating & {"float16", "bfloat16"}:
        raise UserInputError(f"save_model: stored_dtype 'float16' needs the floating tensors in one dtype of "
                             f"float32 or float64 (the training precision recorded), got {sorted(floating)}")
    kept = sorted(k for k, v in tensors.items() if v.is_floating_point() and not fits_float16(v))
    out = {k: v.half() if v.is_floating_point() and k not in kept else v for k, v in tensors.items()}
    return out, {"stored_dtype": "float16", "dtype": floating.pop(), "kept": kept}


def trimmed_provenance(provenance: dict) -> dict:
    """``provenance`` with each nested stage's block that repeats the enclosing stage's block of the same key
    replaced by :data:`SAME_AS_ABOVE`.

    A model trained from another records that model's provenance under ``init`` (and so on down the chain of
    stages); the data, validation crops and commands often repeat from stage to stage. A block is compared with
    the nearest enclosing block of the same name; each stage keeps its own ``train_config`` (how it was trained
    is read from every stage) and whatever differs; short values stay as they are.

    Parameters
    ----------
    provenance : dict
        A provenance as :func:`save_model` takes it.

    Returns
    -------
    dict
        A new dict; ``provenance`` is not changed.

    Examples
    --------
    >>> from pdeflow.io import trimmed_provenance
    >>> data = {"pools": ["builtin", "opencv", "lomiri"], "validation": "24 crops of 32 px, seed 0, held out"}
    >>> prov = {"data": data, "steps": 900, "init": {"provenance": {"data": data, "steps": 300}}}
    >>> trimmed_provenance(prov)["init"]
    {'provenance': {'data': 'same as the enclosing stage', 'steps': 300}}
    """
    def walk(node, above: dict):
        if isinstance(node, list):
            return [walk(v, above) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            repeats = (key in above and key != "train_config" and value == above[key]
                       and len(json.dumps(value, default=str)) >= _TRIM_MIN_CHARS)
            # below this node, the nearest enclosing block of each name is the one to compare with
            out[key] = SAME_AS_ABOVE if repeats else walk(value, {**above, **node})
        return out

    return {k: walk(v, provenance) for k, v in provenance.items()}


def model_bytes(model, weights_name: str, config: dict, provenance: dict | None = None, *,
                stored_dtype: str | None = None) -> tuple[bytes, bytes]:
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
    tensors, storage = _stored(tensors, stored_dtype)
    weights = st_save(tensors, metadata={"format": "pdeflow-model"})
    meta = {
        "format": "pdeflow-model",
        "format_version": 1,
        "config": config,
        "provenance": {
            "pdeflow_version": __version__,
            "torch_version": str(torch.__version__),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **trimmed_provenance(provenance or {}),
        },
        "weights": {"file": weights_name, "sha256": hashlib.sha256(weights).hexdigest(), **storage},
    }
    return weights, to_json(meta, "save_model: config and provenance").encode()


def save_model(model, path, config: dict, provenance: dict | None = None, *,
               stored_dtype: str | None = None) -> tuple[Path, Path]:
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
    stored_dtype : None or "float16"
        None: every tensor as it is (what training writes). ``"float16"``: the floating tensors that
        :func:`fits_float16` in float16, the others as they are (all floating tensors must share one dtype,
        float32 or float64); the JSON's ``weights`` records ``stored_dtype``, ``dtype`` (that shared dtype,
        to which :func:`load_model` casts them back) and ``kept`` (the tensors not stored in float16). Half
        the file for float32 weights, at a relative rounding of at most 2**-11 per tensor.

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
    weights, meta = model_bytes(model, weights_path.name, config, provenance, stored_dtype=stored_dtype)
    write_bytes(weights_path, weights)
    write_bytes(meta_path, meta)
    return weights_path, meta_path


def load_model(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a model written by :func:`save_model`: ``(state_dict, meta)``.

    ``path`` may name the ``.safetensors`` file, the ``.json`` file or the common
    stem. Tensors are on the CPU; weights stored in float16 (``weights.stored_dtype``
    in the JSON) are cast back to the recorded ``weights.dtype``. Raises a :class:`~pdeflow.errors.UserInputError`,
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
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_model(torch.nn.Linear(2, 1), f"{d}/h", {"width": 2}, stored_dtype="float16")
    ...     state, meta = load_model(f"{d}/h")
    >>> state["weight"].dtype, meta["weights"]["stored_dtype"], meta["weights"]["dtype"]
    (torch.float32, 'float16', 'float32')
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
    return _loaded(state, weights, meta_path), meta


def _loaded(state: dict[str, torch.Tensor], weights: dict, meta_path: Path) -> dict[str, torch.Tensor]:
    """``state`` with float16-stored tensors cast back to the dtype the JSON's ``weights`` records."""
    stored = weights.get("stored_dtype")
    if stored is None:
        return state
    dtype = weights.get("dtype")
    if stored != "float16" or dtype not in ("float32", "float64"):
        raise UserInputError(f"load_model: {meta_path}: weights.stored_dtype must be 'float16' with weights.dtype "
                             f"'float32' or 'float64', got {stored!r} and {dtype!r}")
    return {k: v.to(getattr(torch, dtype)) if v.dtype == torch.float16 else v for k, v in state.items()}


def store_float16(path, out) -> tuple[Path, Path]:
    """Write the model at ``path`` again at ``out`` with its weights stored in float16 (how a model is shipped).

    The JSON is the source's (config and provenance unchanged); its ``weights`` gets the new file's
    name and SHA-256, ``stored_dtype``, ``dtype`` and ``kept`` as :func:`save_model` records them,
    and ``source_sha256``, the checksum of the weights it was made from (the one the source JSON
    records), so that provenance naming that file still finds it. Existing files at ``out`` are
    refused, as is a source already stored in float16.

    Parameters
    ----------
    path : str or path-like
        The source model (either file of the pair or their stem), as :func:`load_model` reads it.
    out : str or path-like
        The new pair's stem (or either file's name).

    Returns
    -------
    (pathlib.Path, pathlib.Path)
        The weights file and the JSON file written.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.io import load_model, save_model, store_float16
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_model(torch.nn.Linear(2, 1), f"{d}/m", {"width": 2})
    ...     w, _ = store_float16(f"{d}/m", f"{d}/m16")
    ...     state, meta = load_model(w)
    >>> w.name, state["weight"].dtype, meta["weights"]["stored_dtype"]
    ('m16.safetensors', torch.float32, 'float16')
    """
    from safetensors.torch import save as st_save

    state, meta = load_model(path)
    _, source_json = model_paths(path)
    if meta["weights"].get("stored_dtype") is not None:
        raise UserInputError(f"store_float16: {source_json} is already stored in {meta['weights']['stored_dtype']}")
    weights_path, meta_path = model_paths(out)
    existing = [str(p) for p in (weights_path, meta_path) if p.exists()]
    if existing:
        raise UserInputError(f"store_float16: out: {', '.join(existing)} exist(s); give a new stem")
    tensors, storage = _stored({k: v.contiguous() for k, v in state.items()}, "float16")
    weights = st_save(tensors, metadata={"format": "pdeflow-model"})
    meta = {**meta, "provenance": trimmed_provenance(meta.get("provenance", {})),
            "weights": {"file": weights_path.name, "sha256": hashlib.sha256(weights).hexdigest(), **storage,
                                "source_sha256": meta["weights"].get("sha256") or _sha256(model_paths(path)[0])}}
    text = to_json(meta, "store_float16: the source JSON").encode()
    write_bytes(weights_path, weights)
    write_bytes(meta_path, text)
    return weights_path, meta_path


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
