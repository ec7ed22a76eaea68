"""Checks of the TV solvers' own arguments, and their convergence warning (shared by :func:`~pdeflow.tv.rof`,
:func:`~pdeflow.tv.tv_flow` and :func:`~pdeflow.tv.spectral_tv`); their images are checked by
:func:`pdeflow.ops.check_image`."""
from __future__ import annotations

import warnings

import torch

from .. import ops
from ..errors import UserInputError


class ConvergenceWarning(RuntimeWarning):
    """A solve stopped above its tolerance (at its iteration cap, or at its dtype's round-off floor): a warning
    (never an error) of :func:`rof`, :func:`~pdeflow.tv.tv_flow` and :func:`~pdeflow.tv.spectral_tv`.

    Examples
    --------
    >>> import warnings, torch
    >>> from pdeflow.tv import ConvergenceWarning, rof
    >>> f = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4, dtype=torch.float64)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = rof(f, 0.25, tol=1e-12, max_iter=2, check_every=1)
    >>> caught[0].category is ConvergenceWarning
    True
"""


#: ``precision=`` of the TV solvers: the dtype their iterates and duality gaps are computed in.
PRECISIONS = ("auto", "float64", "input")


def working_dtype(dtype: torch.dtype, precision: str) -> torch.dtype:
    """The dtype a TV solver iterates in for input of ``dtype``.

    ``"float64"`` (the solvers' default): always float64, the result returned in ``dtype``.  The
    dual methods form ``u = f + lam div p``: the round-off of ``p`` enters ``u`` multiplied by
    ``lam``, and the stopping rule (a relative duality gap) and the implicit derivative (which
    pixels are flat) both read ``grad u``, so a float32 iterate can neither certify ``tol`` nor give
    the right derivative.  ``"input"``: the input's dtype (float32 for half precisions), faster per
    iteration where ``tol`` is loose.
    """
    if precision not in PRECISIONS:
        raise UserInputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision in ("float64", "auto"):       # auto: float64 data and result, float32 iterations
        return torch.float64
    return ops.compute_dtype(dtype)


def per_image(value, batch: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """A float or (B,) tensor as a (B, 1, 1, 1) tensor, checked to be finite and >= 0."""
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            raise UserInputError(f"{name} is on the 'meta' device, which holds no values")
        value = value.detach()
    try:
        v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        raise UserInputError(f"{name} must be a float or a tensor of shape ({batch},), got {value!r}") from None
    if v.dim() == 0:
        v = v.expand(batch)
    if v.shape != (batch,):
        raise UserInputError(f"{name} must be a float or a tensor of shape ({batch},), got shape {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
        got = v.tolist() if batch <= 8 else "values out of range"
        raise UserInputError(f"{name} must be finite and >= 0, got {got}")
    return v.reshape(batch, 1, 1, 1).clone()


def check_tol(tol, dtype: torch.dtype, who: str) -> None:
    """Say up front (one :class:`ConvergenceWarning`) when a relative gap ``tol`` is below what ``dtype``
    can resolve: a few units of its round-off (the gap of a float32 iterate is re-evaluated in float64,
    but the iterate itself carries float32 round-off)."""
    if isinstance(tol, (int, float)) and 0 < tol < 4 * torch.finfo(dtype).eps:
        warnings.warn(f"{who}: tol={tol:g} is below the round-off of {dtype} (eps {torch.finfo(dtype).eps:.2g}); "
                      f"the solve will stop at its round-off floor above tol (precision='float64' iterates in float64)",
                      ConvergenceWarning, stacklevel=5)   # past rof or tv_flow and their two wrappers


def short_message(who: str, n: int, total: int, what: str, gap: float, tol: float, max_iter: int,
                   dtype: torch.dtype, at_max_iter: int | None = None) -> str:
    hint = "" if dtype == torch.float64 else ", or precision='float64' (float32 iterations may not resolve such gaps)"
    at_max_iter = n if at_max_iter is None else at_max_iter
    if at_max_iter == n:
        where = f"stopped at max_iter={max_iter}"
    elif at_max_iter == 0:
        where = f"stopped at the round-off floor of {dtype}"
    else:
        where = f"stopped at max_iter={max_iter} ({at_max_iter}) or at the round-off floor of {dtype}"
    # ||u - u*|| <= sqrt(2 gap P): a gap g instead of tol loosens that bound by sqrt(g / tol)
    factor = (gap / tol) ** 0.5 if tol > 0 and gap == gap else float("nan")
    return (f"{who}: {n} of {total} {what} {where} short of tol={tol:g} "
            f"(largest relative duality gap reached: {gap:.2g}, so the error bound is up to {factor:.2g}x the "
            f"one tol gives); raise max_iter or tol{hint}")
