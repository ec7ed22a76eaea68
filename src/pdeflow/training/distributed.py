"""Distributed training under ``torchrun``: setup, DDP wrapping, collectives."""
from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["setup_distributed", "cleanup_distributed", "wrap_ddp", "unwrap", "reduce_mean", "get_rank",
           "get_world_size", "broadcast_object"]


PathLike = str | os.PathLike


# --------------------------------------------------------------------------------------
# Distributed
# --------------------------------------------------------------------------------------

def get_world_size() -> int:
    """Number of processes of the process group (1 without one).

    Examples
    --------
    >>> from pdeflow.training import get_world_size
    >>> get_world_size()  # 1 without a process group
    1
    """
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_rank() -> int:
    """This process's rank in the process group (0 without one).

    Examples
    --------
    >>> from pdeflow.training import get_rank
    >>> get_rank()  # 0 without a process group
    0
    """
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def setup_distributed(backend: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group that ``torchrun`` describes; return ``(rank, world_size, device)``.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and, through ``env://``,
    ``MASTER_ADDR``/``MASTER_PORT``). Backend ``nccl`` with one GPU per process
    (``cuda:LOCAL_RANK``) when CUDA is available, else ``gloo`` on the CPU.
    Without ``torchrun`` (no ``WORLD_SIZE``, or 1) nothing is initialised and it
    returns ``(0, 1, cuda:0 or cpu)``. Calling it again returns the same answer.

    Examples
    --------
    >>> from pdeflow.training import cleanup_distributed, setup_distributed
    >>> rank, world_size, device = setup_distributed()  # a plain process: no process group
    >>> rank, world_size
    (0, 1)
    >>> cleanup_distributed()
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
    """Leave the process group, if there is one, all ranks together (call it on every rank at the end of a
    run): a rank that tears gloo down while rank 0 still exports can abort at exit (SIGABRT, seen in CI).

    Examples
    --------
    >>> from pdeflow.training import cleanup_distributed, get_world_size, setup_distributed
    >>> _ = setup_distributed()
    >>> cleanup_distributed()  # on every rank at the end of a run; a no-op without a process group
    >>> get_world_size()
    1
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module, device: torch.device | str | None = None, **ddp_kwargs: Any) -> nn.Module:
    """``DistributedDataParallel(model)`` when running on several processes, else ``model``.

    Build the model and optimiser first (on ``device``); step the optimiser of
    the inner model and give the inner model to :class:`Run` or the DDP one
    (checkpoints unwrap it either way).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.training import unwrap, wrap_ddp
    >>> net = torch.nn.Linear(2, 1)
    >>> wrap_ddp(net) is net, unwrap(wrap_ddp(net)) is net  # one process: the model itself
    (True, True)
    """
    if get_world_size() == 1:
        return model
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [device.index])
        ddp_kwargs.setdefault("output_device", device.index)
    return nn.parallel.DistributedDataParallel(model, **ddp_kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper and/or ``torch.compile``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.training import unwrap
    >>> net = torch.nn.Linear(2, 1)
    >>> unwrap(net) is net  # also the module inside a DistributedDataParallel or torch.compile wrapper
    True
    """
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

    Examples
    --------
    >>> import torch
    >>> from pdeflow.training import reduce_mean
    >>> reduce_mean(2.5), reduce_mean(torch.tensor([1.0, 3.0]))  # one process: unchanged
    (2.5, tensor([1., 3.]))
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


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (identity without a process group).

    Examples
    --------
    >>> from pdeflow.training import broadcast_object
    >>> broadcast_object({"key": "rank 0's value"})
    {'key': "rank 0's value"}
    """
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main_then_broadcast(is_main: bool, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 and give its result, or raise its error, on every rank."""
    result, error = None, None
    if is_main:
        try:
            result = fn()
        except Exception as e:  # re-raised below, on every rank
            error = e
    result, error = broadcast_object((result, error))
    if error is not None:
        raise error
    return result


def gather_object(obj: Any) -> list:
    if get_world_size() == 1:
        return [obj]
    out: list = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out
