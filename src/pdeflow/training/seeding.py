"""Seeds and RNG states: every batch a pure function of ``(seed, step, rank)``."""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from ..errors import UserInputError

__all__ = ["seed_everything", "step_seed", "step_generator", "batch_indices"]


PathLike = str | os.PathLike


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and all GPUs).

    ``deterministic=True`` also turns on ``torch.use_deterministic_algorithms``
    (ops without a deterministic implementation then raise), disables the cuDNN
    autotuner and sets ``CUBLAS_WORKSPACE_CONFIG`` if unset (effective only
    before CUDA is first used). ``deterministic=False`` switches those off again.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.training import seed_everything
    >>> seed_everything(0)
    >>> a = torch.rand(3)
    >>> seed_everything(0)
    >>> torch.equal(a, torch.rand(3))
    True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    if torch.are_deterministic_algorithms_enabled() != deterministic:   # the call imports inductor (slow)
        torch.use_deterministic_algorithms(deterministic)


def step_seed(seed: int, step: int, rank: int = 0, stream: int = 0) -> int:
    """A 63-bit seed that is a pure, well-mixed function of ``(seed, step, rank, stream)``.

    Examples
    --------
    >>> from pdeflow.training import step_seed
    >>> s = step_seed(0, step=10)
    >>> s == step_seed(0, step=10), s != step_seed(0, step=11), s != step_seed(0, step=10, rank=1), 0 <= s < 2**63
    (True, True, True, True)
    """
    for name, v in (("seed", seed), ("step", step), ("rank", rank), ("stream", stream)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise UserInputError(f"step_seed: {name} must be a non-negative int, got {v!r}")
    state = np.random.SeedSequence([int(seed), int(step), int(rank), int(stream)]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def step_generator(seed: int, step: int, rank: int = 0, *, stream: int = 0,
                   device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` for the data of one step on one rank.

    Draw everything random about a step's batch from it and from nothing else;
    then a resumed run needs no data-loader state (see the module docstring).
    A CUDA generator (``device="cuda"``) draws different numbers than a CPU one.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.training import step_generator
    >>> a = torch.rand(2, generator=step_generator(0, step=5))
    >>> torch.equal(a, torch.rand(2, generator=step_generator(0, step=5)))  # a resumed run sees the same batch
    True
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

    Examples
    --------
    >>> import torch
    >>> from pdeflow.training import batch_indices
    >>> epoch = [batch_indices(6, 2, step, seed=0) for step in range(3)]  # 6 items, batches of 2
    >>> [b.shape[0] for b in epoch], sorted(torch.cat(epoch).tolist())  # one epoch sees every item once
    ([2, 2, 2], [0, 1, 2, 3, 4, 5])
    """
    per_step = batch_size * world_size
    if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise UserInputError(f"batch_indices: need batch_size >= 1 and 0 <= rank < world_size, "
                         f"got batch_size={batch_size}, rank={rank}, world_size={world_size}")
    if n < per_step:
        raise UserInputError(f"batch_indices: data set of n={n} items is smaller than one global batch "
                         f"(batch_size {batch_size} x world_size {world_size})")
    steps_per_epoch = n // per_step
    epoch, i = divmod(step, steps_per_epoch)
    # the epoch's permutation: rank 0's generator for that "step", on a stream of its own
    perm = torch.randperm(n, generator=step_generator(seed, epoch, 0, stream=2**31 - 1))
    start = i * per_step + rank * batch_size
    return perm[start:start + batch_size]


def rng_state() -> dict:
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


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
