"""The one training toolkit: seeds, resumable runs, atomic checkpoints, logs, DDP.

This module is a handful of small helpers, not a framework: a trainer keeps its
own loop, written top to bottom, and calls into :class:`Run` for the
bookkeeping. Every trainer in pdeflow (TVflowNET, the IEL segmentation
experiment, the inpainting WGANs) follows the same shape::

    @dataclass
    class Config:                      # one dataclass per trainer; saved as config.json
        seed: int = 0
        steps: int = 10_000
        batch_size: int = 16
        lr: float = 3e-4
        clip: float | None = 1.0

    def train(cfg: Config, run_dir: str) -> None:
        rank, world_size, device = setup_distributed()        # torchrun or a plain process
        seed_everything(cfg.seed, deterministic=False)         # same init on every rank
        net = Net().to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        model = wrap_ddp(net, device)                          # identity when world_size == 1
        run = Run(run_dir, cfg, models={"net": net}, optimizers={"opt": opt})
        start = run.resume()                                   # 0, or the step after last.pt
        for step in run.steps(start, cfg.steps):               # progress bar + periodic last.pt
            g = step_generator(cfg.seed, step, rank)           # this step's data, nothing else
            x = sample_batch(pool, cfg.batch_size, generator=g).to(device)
            loss = loss_fn(model, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(net, cfg.clip)
            opt.step()
            run.log(step, loss=reduce_mean(loss.detach()))
            if (step + 1) % 1000 == 0:
                run.update_best(step, reduce_mean(validate(net)))   # best.pt, mode "min"
        run.finish()                                           # last.pt, log flushed
        cleanup_distributed()

A trainer with two optimisers (a WGAN's generator and critic) passes both:
``Run(..., models={"gen": G, "critic": D}, optimizers={"gen": opt_g, "critic":
opt_d})`` and writes its inner critic loop inside the step.

Resumability contract
---------------------
A run killed at any point and restarted with the same command and config
continues from ``last.pt`` and, on CPU in deterministic mode, ends with weights
bit-identical to an uninterrupted run. This holds because everything a step
depends on is either in the checkpoint (weights, optimiser and scheduler
states, the global RNG states of every rank, the best metric, the elapsed
time) or a pure function of ``(seed, step, rank)``:

**the step-generator pattern.** A step draws all its random data (which images,
which crops, which flow times, which masks) from ``step_generator(seed, step,
rank)``, a fresh ``torch.Generator`` seeded from those three numbers, and from
nothing else. There is no data-loader state to save, a resumed run draws
exactly the batches the killed run would have drawn, and each DDP rank gets its
own data. For a finite data set visited in epochs, :func:`batch_indices` gives
the indices of the step's batch (a fresh permutation per epoch, sharded
across ranks), again a pure function of ``(seed, step, rank)``. Use
``stream=1, 2, ...`` for independent draws in one step (e.g. a fixed
validation set: ``step_generator(seed, 0, stream=1)``). Randomness inside the
model (dropout) comes from the global RNG, which the checkpoint restores.

Checkpoint step convention: ``checkpoint["step"]`` is the number of completed
steps, i.e. the loop index the resumed run starts at. ``last.pt`` is written
every ``ckpt_every`` completed steps and at the end; steps after it are
replayed on resume and the rows they logged are dropped from ``log.csv``.

Distributed runs
----------------
Under ``torchrun`` every rank runs the same loop. Only rank 0 writes files
(config.json, checkpoints, log.csv, TensorBoard) and shows the progress bar;
rank 0 reads ``last.pt`` and broadcasts it, so the run directory need not be
on a shared file system. :meth:`Run.resume`, :meth:`Run.steps` (its periodic
checkpoints), :meth:`Run.update_best` and :meth:`Run.finish` are collective:
call them on every rank. Metrics passed to ``update_best`` should already be
averaged over ranks (:func:`reduce_mean`); rank 0's value decides.

Checkpoints (``last.pt``, ``best.pt``) are internal and written with
``torch.save``; a model that is shipped is exported with :func:`export_model`
as safetensors weights plus a JSON of its configuration and provenance.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import random
import secrets
import shlex
import sys
import time
import typing
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    # config
    "save_config", "load_config", "config_to_dict", "ConfigCheck",
    # seeds and data
    "seed_everything", "step_seed", "step_generator", "batch_indices",
    # files
    "atomic_write", "save_checkpoint", "load_checkpoint", "export_model", "import_state", "model_from_export",
    # distributed
    "setup_distributed", "cleanup_distributed", "wrap_ddp", "unwrap", "reduce_mean",
    "get_rank", "get_world_size",
    # loop helpers
    "clip_gradients", "check_finite", "Run", "RunConfigError", "invoked_command",
]

PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------

_TMP_SUFFIX = ".tmp"


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file atomically: ``write(f)`` fills a temp file in the same directory,
    which is flushed, fsynced and renamed over ``path`` with :func:`os.replace`.

    If ``write`` (or anything after it) fails, the temp file is removed and an
    existing ``path`` is left untouched: readers see the old file or the new
    one, never a partial one. Parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
    try:
        with open(tmp, "xb") as f:     # "x": never clobber; mode follows the umask
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _to_json(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be JSON serialisable (numbers, strings, lists, dicts; "
                         f"no NaN/inf): {e}") from None


def _atomic_write_json(path: PathLike, obj: Any, what: str) -> Path:
    return _atomic_write_bytes(path, _to_json(obj, what).encode())


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------

def config_to_dict(config: Any) -> dict:
    """A dataclass instance (or a dict) as a plain JSON-ready dict (tuples become lists)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        d = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        d = dict(config)
    else:
        raise TypeError(f"config: expected a dataclass instance or a dict, got {type(config).__name__}")
    return json.loads(_to_json(d, "config"))


def save_config(config: Any, path: PathLike) -> Path:
    """Write a dataclass config (or dict) to ``path`` as JSON, atomically."""
    return _atomic_write_json(path, config_to_dict(config), "config")


def load_config(cls: type, path: PathLike) -> Any:
    """Read a JSON config written by :func:`save_config` back into dataclass ``cls``.

    Missing fields take their defaults; unknown fields are an error (a typo or a
    config from another trainer). Lists are turned back into tuples for fields
    annotated as tuples.
    """
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"load_config: cls must be a dataclass type, got {cls!r}")
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"load_config: {path} does not hold a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"load_config: {path} has fields unknown to {cls.__name__}: {unknown}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:   # unresolvable annotations: leave lists as lists
        hints = {}
    for name, value in data.items():
        origin = typing.get_origin(hints.get(name))
        if isinstance(value, list) and (hints.get(name) is tuple or origin is tuple):
            data[name] = tuple(value)
    return cls(**data)


def _field_defaults(config: Any) -> dict:
    """JSON-ready defaults of a dataclass config's fields (empty for a dict config)."""
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        return {}
    out = {}
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return json.loads(_to_json(out, "config"))


def _config_diff(saved: dict, given: dict, ignore: tuple[str, ...] = (), defaults: dict | None = None) -> list[str]:
    """Lines naming the fields in which two configs differ. A field absent from ``saved``
    (added to the config class after that run started) counts as its value in ``defaults``."""
    missing = object()
    saved = {**(defaults or {}), **saved}
    lines = []
    for key in sorted(set(saved) | set(given)):
        if key in ignore:
            continue
        a, b = saved.get(key, missing), given.get(key, missing)
        if a != b:
            fmt = lambda v: "<absent>" if v is missing else json.dumps(v)  # noqa: E731
            lines.append(f"  {key}: saved {fmt(a)}, given {fmt(b)}")
    return lines


# --------------------------------------------------------------------------------------
# Seeds, RNG states, per-step data
# --------------------------------------------------------------------------------------

class ConfigCheck:
    """Range checks of a config dataclass that raise ValueError naming the field.

    ``need = ConfigCheck(cfg)``; ``need(ok, "name", "what was expected")``, or the
    common cases ``need.ints("steps", "batch_size")`` (ints >= 1) and
    ``need.numbers("lr", positive=True)`` (finite numbers > 0, or >= 0).
    """

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def __call__(self, ok: bool, name: str, what: str) -> None:
        if not ok:
            raise ValueError(f"{type(self.cfg).__name__}.{name}: expected {what}, got {getattr(self.cfg, name)!r}")

    def ints(self, *names: str, minimum: int = 1) -> None:
        for name in names:
            v = getattr(self.cfg, name)
            self(isinstance(v, int) and not isinstance(v, bool) and v >= minimum, name, f"an int >= {minimum}")

    def numbers(self, *names: str, positive: bool = True) -> None:
        for name in names:
            v = getattr(self.cfg, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            self(ok and (v > 0 if positive else v >= 0), name, f"a finite number {'>' if positive else '>='} 0")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and all GPUs).

    ``deterministic=True`` also turns on ``torch.use_deterministic_algorithms``
    (ops without a deterministic implementation then raise), disables the cuDNN
    autotuner and sets ``CUBLAS_WORKSPACE_CONFIG`` if unset (effective only
    before CUDA is first used). ``deterministic=False`` switches those off again.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    if torch.are_deterministic_algorithms_enabled() != deterministic:   # the call imports inductor (~2 s)
        torch.use_deterministic_algorithms(deterministic)


def step_seed(seed: int, step: int, rank: int = 0, stream: int = 0) -> int:
    """A 63-bit seed that is a pure, well-mixed function of ``(seed, step, rank, stream)``."""
    for name, v in (("seed", seed), ("step", step), ("rank", rank), ("stream", stream)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"step_seed: {name} must be a non-negative int, got {v!r}")
    state = np.random.SeedSequence([int(seed), int(step), int(rank), int(stream)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def step_generator(seed: int, step: int, rank: int = 0, *, stream: int = 0,
                   device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` for the data of one step on one rank.

    Draw everything random about a step's batch from it and from nothing else;
    then a resumed run needs no data-loader state (see the module docstring).
    A CUDA generator (``device="cuda"``) draws different numbers than a CPU one.
    """
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, step, rank, stream))
    return g


def batch_indices(n: int, batch_size: int, step: int, seed: int, rank: int = 0,
                  world_size: int = 1) -> torch.Tensor:
    """Indices into a data set of ``n`` items for the batch of ``step`` on ``rank``.

    Epochs without replacement: each epoch is a fresh permutation of ``range(n)``
    (the same on every rank), cut into ``n // (batch_size * world_size)`` global
    batches (the remainder is dropped), each split into one slice per rank.
    A pure function of its arguments, so resuming needs no sampler state.
    """
    per_step = batch_size * world_size
    if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"batch_indices: need batch_size >= 1 and 0 <= rank < world_size, "
                         f"got batch_size={batch_size}, rank={rank}, world_size={world_size}")
    if n < per_step:
        raise ValueError(f"batch_indices: data set of n={n} items is smaller than one global batch "
                         f"(batch_size {batch_size} x world_size {world_size})")
    steps_per_epoch = n // per_step
    epoch, i = divmod(step, steps_per_epoch)
    # the epoch's permutation: rank 0's generator for that "step", on a stream of its own
    perm = torch.randperm(n, generator=step_generator(seed, epoch, 0, stream=2**31 - 1))
    start = i * per_step + rank * batch_size
    return perm[start:start + batch_size]


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # this process's GPU only: get_rng_state_all() would open a context on every GPU
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


# --------------------------------------------------------------------------------------
# Checkpoints and exported models
# --------------------------------------------------------------------------------------

def save_checkpoint(path: PathLike, state: dict) -> Path:
    """``torch.save(state)`` to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint: state must be a dict, got {type(state).__name__}")
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: PathLike, map_location: Any = "cpu", weights_only: bool = True) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors onto ``map_location``).

    Checkpoints written by :class:`Run` hold only tensors and plain Python values,
    so the safe ``weights_only=True`` loader reads them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=weights_only)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_paths(path: PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def export_model(model: nn.Module | Mapping[str, torch.Tensor], path: PathLike, config: dict,
                 provenance: dict | None = None) -> tuple[Path, Path]:
    """Ship a model: ``<path>.safetensors`` (weights) and ``<path>.json`` (metadata).

    The JSON holds ``config`` (what is needed to rebuild the model), ``provenance``
    (how it was trained: data, steps, metrics, ...; pdeflow/torch versions and the
    date are added) and the SHA-256 of the weights file, which
    :func:`import_state` checks. Both files are written atomically, weights first.
    """
    if isinstance(model, nn.Module):
        state = unwrap(model).state_dict()
    elif isinstance(model, Mapping):
        state = dict(model)
    else:
        raise TypeError(f"export_model: model must be an nn.Module or a state dict, got {type(model).__name__}")
    from safetensors.torch import save as st_save
    from pdeflow import __version__
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
    weights_path, meta_path = _model_paths(path)
    _atomic_write_bytes(weights_path, st_save(tensors, metadata={"format": "pdeflow-model"}))
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
        "weights": {"file": weights_path.name, "sha256": _sha256(weights_path)},
    }
    _atomic_write_json(meta_path, meta, "export_model: config and provenance")
    return weights_path, meta_path


def import_state(path: PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a model written by :func:`export_model`: ``(state_dict, meta)``.

    ``path`` may name the ``.safetensors`` file, the ``.json`` file or the common
    stem. Tensors are on the CPU. Raises ValueError, naming the file, if the
    JSON is not a JSON object, the weights file is not a readable safetensors
    file, or the weights do not match the checksum in the JSON (files from two
    different exports, or a damaged file).
    """
    from safetensors.torch import load_file
    weights_path, meta_path = _model_paths(path)
    for p in (weights_path, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"import_state: missing {p} (a model is a .safetensors + .json pair)")
    try:
        meta = json.loads(meta_path.read_bytes())
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"import_state: {meta_path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"import_state: {meta_path} is not valid JSON (nested too deeply)") from None
    weights = meta.get("weights", {}) if isinstance(meta, dict) else None
    if not isinstance(weights, dict):
        raise ValueError(f"import_state: {meta_path} is not a model's metadata (expected a JSON object "
                         "with 'config', 'provenance' and 'weights', as written by export_model)")
    expected = weights.get("sha256")
    if expected is not None and _sha256(weights_path) != expected:
        raise ValueError(f"import_state: {weights_path} does not match the checksum in {meta_path} "
                         "(weights and metadata come from different exports, or a file is damaged)")
    try:
        state = load_file(weights_path, device="cpu")
    except Exception as exc:  # safetensors' SafetensorError is no ValueError
        raise ValueError(f"import_state: {weights_path} is not a readable safetensors file ({exc})") from None
    return state, meta


def model_from_export(build: Callable[..., nn.Module], state: Mapping[str, torch.Tensor], meta: dict,
                      path: PathLike, who: str = "load") -> nn.Module:
    """``build(**meta['config']['model'])`` with the exported ``state`` loaded into it.

    For loaders of models read by :func:`import_state`: a configuration that
    does not build a model, or weights that do not fit it (missing or extra
    names, other shapes), raise ValueError naming the files instead of the
    constructor's or ``load_state_dict``'s own error.
    """
    weights_path, meta_path = _model_paths(path)
    config = meta.get("config") if isinstance(meta, dict) else None
    kwargs = config.get("model") if isinstance(config, dict) else None
    if not isinstance(kwargs, dict):
        raise ValueError(f"{who}: {meta_path} has no model configuration (config.model must be a JSON object)")
    try:
        model = build(**kwargs)
    except Exception as exc:  # anything the constructor makes of a damaged configuration
        raise ValueError(f"{who}: the model configuration in {meta_path} cannot be built "
                         f"({type(exc).__name__}: {exc})") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 300 else detail[:300] + " ..."
        raise ValueError(f"{who}: the weights in {weights_path} do not fit the model described by {meta_path} "
                         f"({detail})") from None
    return model


# --------------------------------------------------------------------------------------
# Distributed
# --------------------------------------------------------------------------------------

def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def setup_distributed(backend: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group that ``torchrun`` describes; return ``(rank, world_size, device)``.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and, through ``env://``,
    ``MASTER_ADDR``/``MASTER_PORT``). Backend ``nccl`` with one GPU per process
    (``cuda:LOCAL_RANK``) when CUDA is available, else ``gloo`` on the CPU.
    Without ``torchrun`` (no ``WORLD_SIZE``, or 1) nothing is initialised and it
    returns ``(0, 1, cuda:0 or cpu)``. Calling it again returns the same answer.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        backend = backend or ("nccl" if cuda else "gloo")
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, init_method="env://", rank=int(os.environ["RANK"]),
                                world_size=world_size, **kwargs)
    return dist.get_rank(), dist.get_world_size(), device


def cleanup_distributed() -> None:
    """Leave the process group, if there is one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module, device: torch.device | str | None = None, **ddp_kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` when running on several processes, else ``model``.

    Build the model and optimiser first (on ``device``); step the optimiser of
    the inner model and give the inner model to :class:`Run` or the DDP one
    (checkpoints unwrap it either way).
    """
    if get_world_size() == 1:
        return model
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [device.index])
        ddp_kwargs.setdefault("output_device", device.index)
    return nn.parallel.DistributedDataParallel(model, **ddp_kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper and/or ``torch.compile``."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def reduce_mean(x: torch.Tensor | float) -> torch.Tensor | float:
    """The mean of ``x`` over all ranks (for logging and validation metrics).

    Collective: call it on every rank. A tensor gives a detached tensor, a
    number gives a float. Without a process group it returns ``x`` unchanged.
    """
    world_size = get_world_size()
    if isinstance(x, torch.Tensor):
        if world_size == 1:
            return x.detach()
        t = x.detach().clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t / world_size
    if world_size == 1:
        return float(x)
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend() == "nccl" else torch.device("cpu"))
    t = torch.tensor(float(x), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / world_size


def _broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (identity without a process group)."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _on_main_then_broadcast(is_main: bool, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 and give its result, or raise its error, on every rank."""
    result, error = None, None
    if is_main:
        try:
            result = fn()
        except Exception as e:  # re-raised below, on every rank
            error = e
    result, error = _broadcast_object((result, error))
    if error is not None:
        raise error
    return result


def _gather_object(obj: Any) -> list:
    if get_world_size() == 1:
        return [obj]
    out: list = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------------------
# Loop helpers
# --------------------------------------------------------------------------------------

def invoked_command() -> str:
    """The command line of this process, for a run's provenance (``pdeflow ...`` when run as the CLI)."""
    prog = Path(sys.argv[0]).name
    return shlex.join(["pdeflow" if prog in ("pdeflow", "__main__.py") else prog, *sys.argv[1:]])


def clip_gradients(model: nn.Module | Iterator[torch.Tensor], max_norm: float | None) -> torch.Tensor | None:
    """Clip the gradient norm to ``max_norm`` (``None`` or 0: leave them); return the
    norm before clipping, or ``None`` when nothing was done. Call after ``backward``
    (in DDP the gradients are already averaged, so every rank clips alike)."""
    if not max_norm:
        return None
    params = unwrap(model).parameters() if isinstance(model, nn.Module) else model
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def check_finite(step: int, hint: str = "", **values: float) -> None:
    """Raise FloatingPointError naming ``step`` and ``values`` if any of them is not finite.

    Call it before ``Run.log`` of the step: the checkpoints written so far are
    left as they are, so the run can be resumed (``hint``: what to change).
    """
    bad = {k: v for k, v in values.items() if not math.isfinite(float(v))}
    if bad:
        shown = ", ".join(f"{k} {float(v):g}" for k, v in values.items())
        raise FloatingPointError(f"training diverged at step {step} ({shown}); the checkpoints before it are "
                                 f"kept{': ' + hint if hint else ''}")


class RunConfigError(ValueError):
    """A run directory holds a run whose config differs from the one given."""


class Run:
    """A run directory: config, resumable checkpoints, best checkpoint, CSV log, progress bar.

    Files in ``dir``: ``config.json``, ``last.pt`` (resume point, every
    ``ckpt_every`` steps and at the end), ``best.pt`` (best by the validation
    metric given to :meth:`update_best`), ``log.csv`` (one row per step that
    logged anything: ``step``, ``wall_time`` (seconds of training, summed over
    resumes), then the named scalars) and ``tb/`` if ``tensorboard=True``.

    Parameters
    ----------
    dir : path
        Created if needed. If it holds a run with a different config, a
        :class:`RunConfigError` says which fields differ.
    config : dataclass instance or dict
        The trainer's config; must be JSON serialisable.
    models, optimizers, schedulers : dict of name -> object (or one object)
        Everything whose ``state_dict`` goes into checkpoints. Models may be DDP
        or ``torch.compile`` wrappers.
    extra : dict of name -> object with ``state_dict``/``load_state_dict``
        Any other state to checkpoint (a GradScaler, an EMA of the weights...).
    ckpt_every : int
        Steps between writes of ``last.pt``.
    best_mode : "min" or "max"
        Whether a lower or a higher validation metric is better.
    allow_changed : tuple of str
        Config fields that may differ when resuming (e.g. ``("steps",)`` to
        extend a finished run); ``config.json`` is then updated.
    quiet : bool
        No progress bar. The bar is also off when stderr is not a terminal
        and on ranks other than 0.
    tensorboard : bool
        Also write scalars to ``dir/tb`` if the ``tensorboard`` package is
        installed (a warning otherwise; it is never required).
    """

    def __init__(self, dir: PathLike, config: Any, *, models: Any, optimizers: Any = None,
                 schedulers: Any = None, extra: Mapping[str, Any] | None = None,
                 ckpt_every: int = 1000, best_mode: str = "min", allow_changed: tuple[str, ...] = (),
                 quiet: bool = False, tensorboard: bool = False):
        if best_mode not in ("min", "max"):
            raise ValueError(f"Run: best_mode must be 'min' or 'max', got {best_mode!r}")
        if not (isinstance(ckpt_every, int) and ckpt_every >= 1):
            raise ValueError(f"Run: ckpt_every must be a positive int, got {ckpt_every!r}")
        self.dir = Path(dir)
        self.config = config
        self.config_dict = config_to_dict(config)
        self._defaults = _field_defaults(config)
        self.models = self._named(models, "models", "model")
        self.optimizers = self._named(optimizers, "optimizers", "optimizer")
        self.schedulers = self._named(schedulers, "schedulers", "scheduler")
        self.extra = self._named(extra, "extra", "extra")
        self.ckpt_every = ckpt_every
        self.best_mode = best_mode
        self.allow_changed = tuple(allow_changed)
        self.quiet = quiet
        self.tensorboard = tensorboard
        self.rank, self.world_size = get_rank(), get_world_size()
        self.is_main = self.rank == 0

        self.best: float | None = None       # best metric so far
        self.best_step: int | None = None    # loop index at which it was measured
        self.done = 0                        # completed steps
        self._resumed = False
        self._saved_at: int | None = None    # `done` when last.pt was last written
        self._elapsed0 = 0.0                 # training seconds before this process
        self._t0 = time.monotonic()
        self._bar = None
        self._tb = None
        self._fields: list[str] = []         # log.csv columns
        self._row: dict | None = None        # the row being filled for the current step
        _on_main_then_broadcast(self.is_main, self._prepare_dir)

    @staticmethod
    def _named(objs: Any, what: str, default_name: str) -> dict:
        if objs is None:
            return {}
        if isinstance(objs, Mapping):
            return dict(objs)
        if isinstance(objs, (list, tuple)):
            raise TypeError(f"Run: {what} must be a dict of name -> object (or a single object)")
        return {default_name: objs}

    # ---- directory and config ---------------------------------------------------------

    def _prepare_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(f".*{_TMP_SUFFIX}"):   # temp files of a killed write
            with contextlib.suppress(OSError):
                stale.unlink()
        path = self.dir / "config.json"
        if path.exists():
            saved = json.loads(path.read_text())
            diff = _config_diff(saved, self.config_dict, self.allow_changed, self._defaults)
            if diff:
                raise RunConfigError(
                    f"run directory {self.dir} holds a run with a different config:\n" + "\n".join(diff)
                    + "\nResume it with the same config, use a new directory, or delete this one"
                    " (fields that may change on resume go in Run(..., allow_changed=...)).")
            if saved == self.config_dict:
                return
        _atomic_write_json(path, self.config_dict, "config")

    # ---- resume -----------------------------------------------------------------------

    def resume(self) -> int:
        """Load ``last.pt`` if there is one; return the step to start the loop at.

        Restores models, optimisers, schedulers, extras, the RNG states, the best
        metric and the elapsed time, and cuts ``log.csv`` back to the rows of
        steps before the returned one. Without ``last.pt`` the run starts afresh
        at 0 (a ``log.csv``/``best.pt`` left by a run killed before its first
        checkpoint are removed). Collective under DDP.
        """
        ckpt = _on_main_then_broadcast(self.is_main, self._read_last)
        start = 0
        if ckpt is not None:
            for kind, objs in (("models", self.models), ("optimizers", self.optimizers),
                               ("schedulers", self.schedulers), ("extra", self.extra)):
                saved = ckpt.get(kind, {})
                if set(saved) != set(objs):
                    raise RuntimeError(f"Run.resume: {self.dir / 'last.pt'} holds {kind} {sorted(saved)}, "
                                       f"this run has {sorted(objs)}")
                for name, obj in objs.items():
                    (unwrap(obj) if isinstance(obj, nn.Module) else obj).load_state_dict(saved[name])
            rng = ckpt["rng"]
            if len(rng) != self.world_size:
                warnings.warn(f"Run.resume: checkpoint written with {len(rng)} processes, now "
                              f"{self.world_size}; RNG states are restored where a rank has one", stacklevel=2)
            if self.rank < len(rng):
                _set_rng_state(rng[self.rank])
            self.best, self.best_step = ckpt["best"]["metric"], ckpt["best"]["step"]
            self._elapsed0 = float(ckpt["wall_time"])
            start = int(ckpt["step"])
        self.done = start
        self._saved_at = start if ckpt is not None else None
        self._t0 = time.monotonic()
        if self.is_main:
            self._truncate_log(start)
            if start == 0:
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / "best.pt").unlink()
            if self.tensorboard:
                self._open_tensorboard(start)
        self._resumed = True
        return start

    def _read_last(self) -> dict | None:
        path = self.dir / "last.pt"
        if not path.exists():
            return None
        ckpt = load_checkpoint(path)
        diff = _config_diff(ckpt.get("config", {}), self.config_dict, self.allow_changed, self._defaults)
        if diff:
            raise RunConfigError(f"{path} was written with a different config:\n" + "\n".join(diff))
        return ckpt

    def _open_tensorboard(self, start: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("Run: tensorboard=True but the tensorboard package is not installed; "
                          "logging to log.csv only", stacklevel=3)
            return
        self._tb = SummaryWriter(str(self.dir / "tb"), purge_step=start)

    # ---- the loop -----------------------------------------------------------------------

    def steps(self, start: int, total: int) -> Iterator[int]:
        """Yield ``start, ..., total - 1``; after each step update the progress bar and,
        every ``ckpt_every`` completed steps and after the last one, write ``last.pt``.

        A step counts as completed when the loop comes back for the next one. To
        stop early on purpose, ``break`` at the top of a step (before its update)
        and call :meth:`finish`: ``last.pt`` then holds exactly the steps done.
        """
        if not self._resumed:
            raise RuntimeError("Run.steps: call run.resume() first (it returns the start step)")
        show = self.is_main and not self.quiet and _isatty(sys.stderr)
        from tqdm import tqdm
        self._bar = tqdm(total=total, initial=start, desc=self.dir.name, unit="step",
                         dynamic_ncols=True, disable=not show)
        try:
            for step in range(start, total):
                yield step
                self.done = step + 1
                self._bar.update(1)
                if self.done % self.ckpt_every == 0 or self.done == total:
                    self.save()
        finally:
            self._bar.close()
            self._bar = None

    def log(self, step: int, **scalars: float | torch.Tensor) -> None:
        """Record scalars for ``step`` (rank 0 only; others ignore the call, so
        average over ranks first with :func:`reduce_mean`). Several calls for
        one step fill one CSV row; a new column extends the header."""
        if not self.is_main:
            return
        values = {}
        for k, v in scalars.items():
            if k in ("step", "wall_time"):
                raise ValueError(f"Run.log: {k!r} is a reserved column name")
            if isinstance(v, torch.Tensor):
                if v.numel() != 1:
                    raise ValueError(f"Run.log: {k} must be a scalar, got a tensor of shape {tuple(v.shape)}")
                v = v.item()
            if not isinstance(v, (int, float, np.integer, np.floating)):
                raise ValueError(f"Run.log: {k} must be a number, got {type(v).__name__}")
            values[k] = float(v) if isinstance(v, (float, np.floating)) else int(v)
        if self._row is not None and self._row["step"] != step:
            self._flush_row()
        if self._row is None:
            self._row = {"step": int(step), "wall_time": round(self.elapsed, 3)}
        self._row.update(values)
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)
        if self._bar is not None and values:
            self._bar.set_postfix(values, refresh=False)

    def update_best(self, step: int, metric: float | torch.Tensor) -> bool:
        """If ``metric`` beats the best so far (per ``best_mode``), write ``best.pt``
        and return True. Call after the update of ``step``. NaN never wins.
        Collective under DDP; rank 0's metric decides."""
        metric = float(metric.item() if isinstance(metric, torch.Tensor) else metric)
        metric = float(_broadcast_object(metric))
        if math.isnan(metric):
            return False
        better = (self.best is None or (metric > self.best if self.best_mode == "max" else metric < self.best))
        if better:
            self.best, self.best_step = metric, int(step)
            self._write("best.pt", self._state(done=step + 1))
        return better

    def save(self) -> None:
        """Write ``last.pt`` now (the loop does this itself). Collective under DDP."""
        self._flush_row()
        self._write("last.pt", self._state(done=self.done))
        self._saved_at = self.done

    def finish(self) -> None:
        """Write ``last.pt`` if the last completed step is not in it yet, flush the
        log, close TensorBoard. Collective under DDP."""
        if self._saved_at != self.done:
            self.save()
        self._flush_row()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    @property
    def elapsed(self) -> float:
        """Seconds of training in this run directory, over all resumes."""
        return self._elapsed0 + time.monotonic() - self._t0

    # ---- checkpoint contents ----------------------------------------------------------

    def _state(self, done: int) -> dict:
        rng = _gather_object(_rng_state())      # every rank's RNG, so each resumes its own
        if not self.is_main:
            return {}
        sd = lambda o: (unwrap(o) if isinstance(o, nn.Module) else o).state_dict()  # noqa: E731
        return {
            "format": "pdeflow-checkpoint",
            "format_version": 1,
            "step": done,
            "config": self.config_dict,
            "models": {k: sd(m) for k, m in self.models.items()},
            "optimizers": {k: sd(o) for k, o in self.optimizers.items()},
            "schedulers": {k: sd(s) for k, s in self.schedulers.items()},
            "extra": {k: sd(e) for k, e in self.extra.items()},
            "rng": rng,
            "best": {"metric": self.best, "step": self.best_step, "mode": self.best_mode},
            "wall_time": self.elapsed,
            "world_size": self.world_size,
            "torch_version": str(torch.__version__),
        }

    def _write(self, name: str, state: dict) -> None:
        if self.is_main:
            save_checkpoint(self.dir / name, state)

    # ---- log.csv ----------------------------------------------------------------------

    @property
    def _log_path(self) -> Path:
        return self.dir / "log.csv"

    def _flush_row(self) -> None:
        row, self._row = self._row, None
        if row is None or not self.is_main:
            return
        new = [k for k in row if k not in self._fields]
        if new or not self._log_path.exists():
            self._fields += new
            rows = self._read_log()[1] if self._log_path.exists() else []
            self._rewrite_log(rows + [row])
            return
        with open(self._log_path, "a", newline="") as f:
            csv.DictWriter(f, self._fields).writerow(_format_row(row))

    def _read_log(self) -> tuple[list[str], list[dict]]:
        with open(self._log_path, newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)

    def _rewrite_log(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self._fields)
        writer.writeheader()
        writer.writerows(_format_row(r) for r in rows)
        _atomic_write_bytes(self._log_path, buf.getvalue().encode())

    def _truncate_log(self, start: int) -> None:
        """Keep the rows of steps before ``start`` (those of replayed steps go)."""
        self._row = None
        if not self._log_path.exists():
            self._fields = []
            return
        if start == 0:
            self._log_path.unlink()
            self._fields = []
            return
        fields, rows = self._read_log()
        self._fields = fields
        self._rewrite_log([r for r in rows if int(r["step"]) < start])


def _format_row(row: dict) -> dict:
    return {k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()}


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
