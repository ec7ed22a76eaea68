"""Checkpoints: ``torch.save`` written atomically (temp file, fsync, rename)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputFileNotFoundError
from ..io import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint"]


PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------
# Checkpoints and exported models
# --------------------------------------------------------------------------------------

def save_checkpoint(path: PathLike, state: dict) -> Path:
    """``torch.save(state)`` to ``path`` atomically (temp file, fsync, ``os.replace``).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.training import load_checkpoint, save_checkpoint
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_checkpoint(Path(d) / "last.pt", {"step": 3, "weight": torch.ones(2)})
    ...     print(path.name, sorted(p.name for p in Path(d).iterdir()))  # no temporary file left
    last.pt ['last.pt']
    """
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint: state must be a dict, got {type(state).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: torch.save(state, tmp), overwrite=True)


def load_checkpoint(path: PathLike, map_location: Any = "cpu", weights_only: bool = True) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors onto ``map_location``).

    Checkpoints written by :class:`Run` hold only tensors and plain Python values,
    so the safe ``weights_only=True`` loader reads them.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.training import load_checkpoint, save_checkpoint
    >>> with tempfile.TemporaryDirectory() as d:
    ...     state = load_checkpoint(save_checkpoint(Path(d) / "last.pt", {"step": 3, "weight": torch.ones(2)}))
    >>> state["step"], state["weight"]
    (3, tensor([1., 1.]))
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"load_checkpoint: no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=weights_only)
