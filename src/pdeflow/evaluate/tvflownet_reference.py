"""The reference TV flow of the evaluation (the model-driven approach, :func:`pdeflow.tv.tv_flow`) on the
paper's time grid, cached on disk per image and setting so that the tables are computed once.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import io as pio
from .. import ops
from ..errors import UserInputError
from ..tv import tv_flow

__all__ = ["default_cache_dir", "reference_flow", "grid_indices", "reference_solve"]

_CACHE_VERSION = 1



def default_cache_dir() -> Path:
    """``$PDEFLOW_CACHE/tvflow_reference``, else ``$XDG_CACHE_HOME/pdeflow/...`` or ``~/.cache/pdeflow/...``.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> from pdeflow.evaluate.tvflownet import default_cache_dir
    >>> with mock.patch.dict(os.environ, {"PDEFLOW_CACHE": "/somewhere"}):
    ...     print(default_cache_dir().as_posix())
    /somewhere/tvflow_reference
    """
    root = os.environ.get("PDEFLOW_CACHE")
    if root:
        return Path(root) / "tvflow_reference"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "pdeflow" / "tvflow_reference"


def grid_indices(times: Sequence[float], dt: float) -> list[int]:
    """The step numbers ``round(t / dt)`` of ``times`` on the grid of step ``dt``; a time off the grid or
    out of order raises ValueError.

    Examples
    --------
    >>> from pdeflow.evaluate.tvflownet_reference import grid_indices
    >>> grid_indices([0.0, 0.1, 0.25], dt=0.05)
    [0, 2, 5]
    """
    idx = []
    for t in times:
        k = round(float(t) / dt)
        if abs(k * dt - float(t)) > 1e-9 * max(1.0, abs(float(t))) or k < 0:
            raise UserInputError(f"times must be non-negative multiples of dt = {dt:g}; {t!r} is not "
                             f"(choose a dt that divides the time spacing)")
        idx.append(k)
    if any(b < a for a, b in zip(idx, idx[1:])):
        raise UserInputError(f"times must be non-decreasing, got {list(times)}")
    return idx


def reference_solve(x: torch.Tensor, idx: list[int], dt: float, tol: float, solver: str, max_iter: int,
               progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference of ``x`` (B, C, H, W) at the grid steps ``idx``: :func:`pdeflow.tv.tv_flow`, implicit
    Euler steps of ``dt`` (each an ROF problem to relative duality gap ``tol``; an image flat enough to
    reach its mean within a step does so exactly), ``(u, u_t)`` each (T, B, C, H, W).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.evaluate.tvflownet_reference import reference_solve
    >>> x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> x[..., 2:6, 2:6] = 1.0                               # a square
    >>> u, u_t = reference_solve(x, [0, 1, 2], dt=0.1, tol=1e-6, solver="fgp", max_iter=2000)
    >>> u.shape, round(float(u[2].mean()), 6) == round(float(x.mean()), 6)   # the mean is kept
    (torch.Size([3, 1, 1, 8, 8]), True)
    """
    return tv_flow(x, [k * dt for k in idx], dt=dt, tol=tol, method="implicit", scheme="euler", solver=solver,
                   max_iter=max_iter, return_ut=True, progress=progress)


def _image_key(img: torch.Tensor, times: list[float], dt: float, tol: float, solver: str, max_iter: int) -> str:
    a = np.ascontiguousarray(img.detach().cpu().double().numpy())
    h = hashlib.sha256()
    h.update(f"v{_CACHE_VERSION}|{a.shape}|".encode())
    h.update(a.tobytes())
    h.update(json.dumps({"times": [repr(float(t)) for t in times], "dt": repr(float(dt)),
                         "tol": repr(float(tol)), "solver": solver, "max_iter": int(max_iter)}).encode())
    return h.hexdigest()[:40]


def reference_flow(
    u0: torch.Tensor,
    times: Sequence[float],
    *,
    dt: float = 0.01,
    tol: float = 1e-5,
    solver: str = "fgp",
    max_iter: int = 20000,
    cache_dir: str | os.PathLike | None | bool = None,
    batch_size: int = 16,
    progress: bool = False,
    return_info: bool = False,
):
    """The model-driven reference: TV flow ``u`` and ``u_t`` at ``times``, cached per image.

    Parameters
    ----------
    u0 : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Initial images, intensities as given (the paper's convention: 5 x [0, 1]).
    times : sequence of float
        Non-decreasing multiples of ``dt`` (PDE time).
    dt, tol, solver, max_iter
        Implicit Euler step, relative duality gap of each ROF step, ROF method
        and its iteration cap (see :func:`pdeflow.tv.rof`).  Computed in float64.
    cache_dir : path, None or False
        Directory of the on-disk cache (created if missing); None:
        :func:`default_cache_dir`; False: no cache.  One ``.npz`` per image,
        keyed by the SHA-256 of the image (float64 bytes and shape) and of
        ``times, dt, tol, solver, max_iter``; written atomically.
    batch_size : int
        Images solved together (ROF is batched with per-image stopping).
    progress : bool
        Progress bar over the time steps.
    return_info : bool
        Also return ``{"hits": int, "misses": int, "seconds": float}``.

    Returns
    -------
    u, u_t : Tensor, shape (len(times), *u0.shape), float32 (as stored in the cache)
        ``u_t`` is the backward quotient of the step that reached each time
        (``div`` of the ROF dual field), at ``t = 0`` the quotient of the first step.
    info : dict, if ``return_info``

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.evaluate.tvflownet import natural_images, reference_flow
    >>> x = 5 * natural_images(16, 1)                        # the paper's scale
    >>> with tempfile.TemporaryDirectory() as cache:
    ...     u, u_t = reference_flow(x, [0.0, 0.1, 0.2], dt=0.1, cache_dir=cache)
    ...     *_, info = reference_flow(x, [0.0, 0.1, 0.2], dt=0.1, cache_dir=cache, return_info=True)
    >>> u.shape, u.dtype, info["hits"], info["misses"]
    (torch.Size([3, 1, 1, 16, 16]), torch.float32, 1, 0)
    """
    x = ops.check_float(ops.as_batch(u0, "u0")[0], "u0")
    if not bool(torch.isfinite(x).all()):
        raise UserInputError("u0 contains NaN or infinite values")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise UserInputError(f"dt must be a finite number > 0, got {dt!r}")
    times = [float(t) for t in times]
    if not times:
        raise UserInputError("times must contain at least one time")
    idx = grid_indices(times, float(dt))
    t0 = time.perf_counter()
    cache = None
    if cache_dir is not False:
        cache = Path(default_cache_dir() if cache_dir is None else cache_dir)
        cache.mkdir(parents=True, exist_ok=True)
    B = x.shape[0]
    T = len(times)
    out_u = torch.empty((T, *x.shape), dtype=torch.float32)
    out_ut = torch.empty((T, *x.shape), dtype=torch.float32)
    keys = [_image_key(x[b], times, dt, tol, solver, max_iter) for b in range(B)]
    missing = []
    for b, key in enumerate(keys):
        path = cache / f"{key}.npz" if cache is not None else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    u_b, ut_b = torch.from_numpy(z["u"]), torch.from_numpy(z["u_t"])
                if tuple(u_b.shape) == (T, *x.shape[1:]) and tuple(ut_b.shape) == (T, *x.shape[1:]):
                    out_u[:, b], out_ut[:, b] = u_b, ut_b
                    continue
            except (OSError, ValueError, KeyError):
                pass  # unreadable or stale entry: recompute and replace it
        missing.append(b)
    for start in range(0, len(missing), max(1, int(batch_size))):
        sel = missing[start:start + max(1, int(batch_size))]
        xb = x[sel].detach().to(torch.float64)
        u, ut = reference_solve(xb, idx, float(dt), float(tol), solver, int(max_iter), progress=progress)
        u, ut = u.float().cpu(), ut.float().cpu()
        for j, b in enumerate(sel):
            out_u[:, b], out_ut[:, b] = u[:, j], ut[:, j]
            if cache is not None:
                path = cache / f"{keys[b]}.npz"
                meta = json.dumps({"times": times, "dt": dt, "tol": tol, "solver": solver,
                                   "max_iter": max_iter, "shape": list(x.shape[1:]),
                                   "version": _CACHE_VERSION})
                with pio.atomic_path(path, overwrite=True) as tmp, open(tmp, "wb") as fh:
                    np.savez_compressed(fh, u=u[:, j].numpy(), u_t=ut[:, j].numpy(), meta=np.array(meta))
    shape = (T, *u0.shape)
    res = (out_u.reshape(shape), out_ut.reshape(shape))
    if return_info:
        return (*res, {"hits": B - len(missing), "misses": len(missing), "seconds": time.perf_counter() - t0})
    return res
