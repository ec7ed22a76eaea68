"""The helpers a trainer's loop calls besides :class:`~pdeflow.training.Run`: gradient clipping, the
cosine learning-rate factor, the divergence check, the CPU clock, and the provenance of an exported model."""
from __future__ import annotations

import math
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import config_to_dict
from .distributed import unwrap


def invoked_command() -> str:
    """The command line of this process, for a run's provenance (``pdeflow ...`` when run as the CLI).

    Examples
    --------
    >>> from pdeflow.training import invoked_command
    >>> isinstance(invoked_command(), str)
    True
    """
    prog = Path(sys.argv[0]).name
    return shlex.join(["pdeflow" if prog in ("pdeflow", "__main__.py") else prog, *sys.argv[1:]])


def provenance(config: Any, *, data: Any, device: Any, command: str | None = None, **more: Any) -> dict:
    """What every trainer records in its exported model: the command line (default: this process's), the
    training config, the data, the device, and ``more`` (parameter counts, the model it started from...).

    Examples
    --------
    >>> from pdeflow.training import provenance
    >>> record = provenance({"lr": 0.1}, data="builtin", device="cpu", command="pdeflow train", parameters=40)
    >>> record["command"], record["train_config"], record["parameters"]
    ('pdeflow train', {'lr': 0.1}, 40)
    """
    return {"command": command if command is not None else invoked_command(), "train_config": config_to_dict(config),
            "data": data, "device": str(device), **more}


def clip_gradients(model: nn.Module | Iterator[torch.Tensor], max_norm: float | None) -> torch.Tensor | None:
    """Clip the gradient norm to ``max_norm`` (``None`` or 0: leave them); return the
    norm before clipping, or ``None`` when nothing was done. Call after ``backward``
    (in DDP the gradients are already averaged, so every rank clips alike).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.training import clip_gradients
    >>> net = torch.nn.Linear(1, 1, bias=False)
    >>> net.weight.grad = torch.tensor([[3.0]])
    >>> clip_gradients(net, 1.0), net.weight.grad, clip_gradients(net, None)
    (tensor(3.), tensor([[1.0000]]), None)
    """
    if not max_norm:
        return None
    params = unwrap(model).parameters() if isinstance(model, nn.Module) else model
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def cosine_factor(step: int, total: int, final: float) -> float:
    """The learning-rate factor of a cosine schedule at ``step`` of ``total``: 1 at step 0, ``final`` at
    ``total``.

    Examples
    --------
    >>> from pdeflow.training import cosine_factor
    >>> [round(cosine_factor(step, 100, 0.1), 4) for step in (0, 50, 100)]
    [1.0, 0.55, 0.1]
    """
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * step / total))


def check_finite(step: int, hint: str = "", **values: float) -> None:
    """Raise FloatingPointError naming ``step`` and ``values`` if any of them is not finite.

    Call it before ``Run.log`` of the step: the checkpoints written so far are
    left as they are, so the run can be resumed (``hint``: what to change).

    Examples
    --------
    >>> from pdeflow.training import check_finite
    >>> check_finite(7, loss=0.5)
    >>> try:
    ...     check_finite(8, "lower the learning rate", loss=float("nan"))
    ... except FloatingPointError:
    ...     print("stopped at step 8")
    stopped at step 8
    """
    bad = {k: v for k, v in values.items() if not math.isfinite(float(v))}
    if bad:
        shown = ", ".join(f"{k} {float(v):g}" for k, v in values.items())
        raise FloatingPointError(f"training diverged at step {step} ({shown}); the checkpoints before it are "
                                 f"kept{': ' + hint if hint else ''}")


class CpuClock:
    """CPU seconds of this process spent in training, summed over resumes (checkpoint it as a
    :class:`Run` ``extra``).

    A run resumed from a checkpoint written before the clock was added (``Run.resume`` allows it:
    :attr:`optional`) counts from the resume on; :attr:`complete` is then False and
    :meth:`provenance` says so.

    Examples
    --------
    >>> from pdeflow.training import CpuClock
    >>> clock = CpuClock()  # give it to Run(extra={"clock": clock}) to count over resumes
    >>> clock.seconds >= 0.0, sorted(clock.state_dict())
    (True, ['complete', 'cpu_seconds', 'from_step'])
    """

    #: ``Run.resume`` accepts a checkpoint without this extra (one written before the trainer had it).
    optional = True

    def __init__(self):
        self.before = 0.0
        self.t0 = time.process_time()
        self.complete = True          # counts every step of the run
        self.from_step = 0            # the step it counts from when not complete

    @property
    def seconds(self) -> float:
        return self.before + time.process_time() - self.t0

    def state_dict(self) -> dict:
        return {"cpu_seconds": self.seconds, "complete": self.complete, "from_step": self.from_step}

    def load_state_dict(self, state: dict) -> None:
        self.before = float(state["cpu_seconds"])
        self.complete = bool(state.get("complete", True))
        self.from_step = int(state.get("from_step", 0))
        self.t0 = time.process_time()

    def missing_from_checkpoint(self, step: int) -> None:
        """The resumed checkpoint (at ``step``) has no clock: count from here, marked incomplete."""
        self.before, self.complete, self.from_step = 0.0, False, int(step)
        self.t0 = time.process_time()

    def provenance(self) -> dict:
        """``{"cpu_time_s": ...}`` for an exported model; with the step it counts from if incomplete."""
        if self.complete:
            return {"cpu_time_s": _cpu_seconds(self.seconds)}
        return {"cpu_time_s": None, "cpu_time_s_since_step": [self.from_step, _cpu_seconds(self.seconds)]}


def _cpu_seconds(seconds: float) -> float:
    """Seconds to 0.1 s, or to 3 significant digits below 1 s (a short run must not read as 0)."""
    return round(seconds, 1) if seconds >= 1 else float(f"{seconds:.3g}")
