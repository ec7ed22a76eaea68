"""The TV solvers' default stopping rule: an accuracy in the data's units, certified by the duality gap."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import UserInputError


def check_accuracy(accuracy) -> float:
    """``accuracy`` as a float in (0, 1), or :class:`UserInputError`."""
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not (0 < accuracy < 1):
        raise UserInputError(f"accuracy must be a number in (0, 1) (an RMS error as a fraction of the data's "
                             f"range), got {accuracy!r}")
    return float(accuracy)


def data_range(f: torch.Tensor) -> torch.Tensor:
    """``max - min`` of each image of ``f`` ``(B, ...)``, in ``f``'s dtype, shape ``(B,)``."""
    flat = f.detach().reshape(f.shape[0], -1)
    return flat.amax(1) - flat.amin(1)


def extrema(f: torch.Tensor, ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Each image's smallest and largest value (float64 NumPy ``(B,)``; NaN where it holds one) of ``f`` as
    :func:`pdeflow.ops.check_image` takes it: :func:`data_range` and :func:`largest_magnitude` on the host."""
    flat = f.detach()
    flat = flat.reshape(flat.shape[0] if flat.dim() == ndim + 2 else 1, -1)
    if flat.shape[0] == 1:      # aminmax along an axis is many times slower than over all
        lo, hi = torch.aminmax(flat)
        return np.array([float(lo)]), np.array([float(hi)])
    return flat.amin(1).cpu().double().numpy(), flat.amax(1).cpu().double().numpy()


def host_ranges(lo, hi, dtype: torch.dtype) -> np.ndarray:
    """:func:`data_range` (float64) of data of ``dtype`` (float32 or float64) from its :func:`extrema`."""
    return hi - lo if dtype == torch.float64 else (hi.astype(np.float32) - lo.astype(np.float32)).astype(np.float64)


def largest_magnitude(f: torch.Tensor) -> torch.Tensor:
    """``max |f|`` of each image of ``f`` ``(B, ...)``, in ``f``'s dtype, shape ``(B,)``, without a copy of ``f``
    (``amax`` and ``amin`` outrun ``abs().amax`` and ``aminmax`` on the CPU).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv._accuracy import largest_magnitude
    >>> largest_magnitude(torch.tensor([[1.0, -3.0], [2.0, 0.5]]))
    tensor([3., 2.])
    """
    flat = f.detach().reshape(f.shape[0], -1)
    return torch.maximum(flat.amax(1), -flat.amin(1))


#: For the dual solvers' own primal ``u = f + lam div p`` the gap is the sum of ``P(u) - P*`` and ``D* - D(p)``, each at
#: least ``1/2 ||u - u*||^2`` (``P`` is 1-strongly convex, ``D`` 1-strongly concave in ``u``): ``||u - u*||^2 <= P(u) -
#: D(p)``, so this many times the gap of :func:`gap_targets` certifies the same error for it (any other candidate, as
#: the tied one, has only the primal half).
OWN_PRIMAL = 2.0


def gap_targets(f: torch.Tensor, accuracy: float) -> torch.Tensor:
    """Per image of ``f`` ``(B, C, ...)``: the absolute duality gap that certifies a root-mean-square
    error of at most ``accuracy`` times the image's range, as float64 ``(B,)``.

    The ROF energy is 1-strongly convex, so ``||u - u*||^2 <= 2 (P(u) - D(p))``: a gap of
    ``1/2 (accuracy * range)^2 * n`` (``n`` values per image) bounds the RMS error of any ``u`` by
    ``accuracy * range`` (of ``u = f + lam div p``: :data:`OWN_PRIMAL` times that gap does).  The range is that of
    the data (the solution's lies inside it).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.rof import gap_targets
    >>> gap_targets(torch.zeros(1, 1, 10, 10).index_fill_(2, torch.tensor([0]), 2.0), 1e-3)
    tensor([0.0002], dtype=torch.float64)
    """
    return gap_per_value(accuracy, data_range(f).double()) * f[0].numel()


def gap_per_value(accuracy: float, ranges):
    """The duality gap per value that certifies an RMS error of ``accuracy`` times ``ranges`` (tensors or NumPy
    arrays alike): ``1/2 (accuracy * range)^2`` (:func:`gap_targets`).

    Examples
    --------
    >>> from pdeflow.tv.rof import gap_per_value
    >>> gap_per_value(1e-3, 2.0)
    2e-06
    """
    return 0.5 * (accuracy * ranges) ** 2


def iterations_to(it: int, gap, last_it, last_gap, target):
    """Per image, the iterations a power law through its last two duality gaps (``last_gap`` at ``last_it``,
    ``gap`` at ``it``; NumPy ``(B,)``) predicts it still needs to reach ``target``; NaN where the gap did not
    fall (no prediction).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.tv._accuracy import iterations_to
    >>> iterations_to(400, np.array([0.04]), np.array([200]), np.array([0.16]), np.array([0.01]))
    array([400.])
    """
    gap, last_gap = np.asarray(gap, dtype=np.float64), np.asarray(last_gap, dtype=np.float64)
    falling = (np.asarray(last_it) > 0) & (gap < last_gap)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rate = np.log(last_gap / gap) / np.log(it / np.asarray(last_it, dtype=np.float64))   # gap ~ it ** -rate
        need = it * (np.maximum(gap / target, 1.0) ** (1.0 / rate) - 1.0)
    return np.where(falling, need, np.nan)


def check_interval(it: int, gap, last_it, last_gap, target, every: int, cost: float = 0.0):
    """Per image, the iterations to run before its next duality-gap evaluation, at iteration ``it`` (int).

    ``every`` near the target, or, where a check costs ``cost`` iterations (:func:`check_cost`), at least
    ``sqrt(2 it cost)`` (a check's cost balanced against half an interval run past the target). Where an image's
    gap (NumPy ``(B,)``) fell since its last evaluation (``last_gap`` at ``last_it``; 0 for none), after half the
    iterations a power law through the two predicts it needs, and at most a tenth of its iterations so far.

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.tv._accuracy import check_interval
    >>> check_interval(400, np.array([0.04]), np.array([200]), np.array([0.16]), np.array([1e-3]), 5)
    array([40])
    """
    least = max(every, int(math.sqrt(2.0 * it * cost))) if cost > 0 else every
    if it // 10 <= least:
        return least
    n = np.minimum(0.5 * iterations_to(it, gap, last_it, last_gap, target), it // 10)     # NaN: no prediction
    return np.where(n >= least, np.floor(n), least).astype(np.int64)


#: A check's fixed cost (its Python; the estimate's set-up) and an FGP step's, in element-iterations of the fused
#: loops: a check costs ``(CHECK_ELEMENTS + n / 3) / (STEP_ELEMENTS + n)`` iterations of an ``n``-element image.
CHECK_ELEMENTS = 23000
STEP_ELEMENTS = 2300


def check_cost(n: int) -> float:
    """What a gap check costs in iterations of a solve on ``n``-element images (the fused loops).

    Examples
    --------
    >>> from pdeflow.tv._accuracy import check_cost
    >>> round(check_cost(256 * 256), 2)
    0.66
    """
    return (CHECK_ELEMENTS + n / 3) / (STEP_ELEMENTS + n)
