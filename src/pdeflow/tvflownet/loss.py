"""The TVflowNET loss, Grossmann et al. (2022) eq. (12), term by term.

    L = w_temporal * ||u_t - div phi||^2                         "temporal"
      + a1 * || <u, div phi> + TV_eps(u) ||^2                    "tv"
      + w_norm * mean (|phi| - 1)_+                              "norm"
      + w_initial * ||u(0) - u0||^2                              "initial"
      + a2 * ||div phi||^2                                       "min_norm"

Discretisation: the space-time L2 norms are Monte-Carlo estimates over the
sampled times, i.e. every term is a mean over pixels (and channels) and then a
mean over the batch; the TV term is the square of the per-image sum
``sum(u * div phi) + TV_eps(u)`` (the L2 norm in time of a spatial integral),
then a batch mean.  ``div`` and ``TV_eps`` are :func:`pdeflow.ops.div` and
:func:`pdeflow.ops.tv_eps` (``sum sqrt(|grad u|^2 + eps^2)`` over all pixels,
eps = 1e-5 by default, as the official code; the paper writes
``sqrt(|grad u|^2 + eps)`` without a value).

Defaults follow the paper: ``a1 = a2 = 1e-4``, unit weights for the other
terms, the constraint term ``(|phi| - 1)_+`` and pdeflow's operators
(forward-difference gradient with Neumann boundary, its negative adjoint as
``div``).

:meth:`TVFlowLoss.official` is the official code's loss (``utils/losses_handler.py``
and ``utils/div_and_tv.py`` of github.com/TamaraGrossmann/TVflowNET), term by
term and operator by operator: the constraint term ``(|phi|^2 - 1)_+``
(``squared_norm=True``), ``tv_eps = 1e-5`` and its boundary convention
(``zero_edges=True``, its ``zero_out=True``): the gradient of the TV term is
the forward difference with the derivative along H zeroed in the first *and*
last rows and the derivative along W in the first and last columns (pdeflow's
Neumann gradient zeroes only the last), and ``div`` is its negative adjoint,
the backward-difference divergence of ``phi`` with its normal components
zeroed on the four edges.  The TV term is the only place where the two
conventions give different numbers for the models here (and the paper's), whose
``phi`` is zero on a one-pixel border (``edge_width=1``): for such a ``phi``
both ``div`` agree, while the official TV leaves out the differences between
the first and second row and column.  (The official model wrapper, which
computes the ``div phi`` of its loss, is not published; with ``phi`` zeroed on
the border, as its ``edge_width=1`` does, any of the two ``div`` gives the same
numbers.)  The official code is greyscale only (its ``TV`` asserts one
channel); both conventions here also take colour.

``u_t`` is the per-pixel derivative of the network's ``u`` in ``t``, computed by
forward-mode autodiff (``torch.func.jvp`` with tangent ones; each image's ``u``
depends only on its own ``t``, so this is exactly the per-pixel derivative), or
optionally by central differences in ``t``.

Shapes: ``u, u_t, u0, u_at_0`` are ``(B, C, H, W)``; ``phi`` is ``(B, C, 2, H, W)``
(the models' convention).  For colour the norms couple the channels unless
``channelwise=True``.

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from .. import ops
from ..errors import UserInputError

__all__ = ["loss_terms", "time_derivative", "TVFlowLoss", "TERM_NAMES"]


def jvp(fn, primals: tuple, tangents: tuple):
    """``torch.func.jvp``, quiet about torch's own deprecation of ``torch.jit.script``: the first forward-mode
    call of a process loads torch's decompositions for it, which script functions (torch 2.13), a warning no
    caller can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
        return torch.func.jvp(fn, primals, tangents)

TERM_NAMES = ("temporal", "tv", "norm", "initial", "min_norm")


def _pixel_batch_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over all but the first dimension, then over the batch."""
    return x.reshape(x.shape[0], -1).mean(-1).mean()


def _check_pair(u: torch.Tensor, phi: torch.Tensor) -> None:
    if u.dim() != 4:
        raise UserInputError(f"u must have shape (B, C, H, W), got {tuple(u.shape)}")
    want = (*u.shape[:-2], 2, *u.shape[-2:])
    if tuple(phi.shape) != want:
        raise UserInputError(f"phi must have shape (B, C, 2, H, W) = {want} to match u, got {tuple(phi.shape)}")


def loss_terms(
    u: torch.Tensor,
    u_t: torch.Tensor,
    phi: torch.Tensor,
    u0: torch.Tensor | None = None,
    u_at_0: torch.Tensor | None = None,
    *,
    temporal_weight: float = 1.0,
    tv_weight: float = 1e-4,
    norm_weight: float = 1.0,
    initial_weight: float = 1.0,
    min_norm_weight: float = 1e-4,
    tv_eps: float = 1e-5,
    squared_norm: bool = False,
    channelwise: bool = False,
    zero_edges: bool = False,
) -> dict[str, torch.Tensor]:
    """The weighted terms of eq. (12) from given tensors; no model needed.

    Parameters
    ----------
    u, u_t : Tensor, shape (B, C, H, W)
        Solution and its time derivative at B (image, time) samples.
    phi : Tensor, shape (B, C, 2, H, W)
        Diffusivity (dual) field at the same samples.
    u0, u_at_0 : Tensor, shape (B', C, H, W), optional
        Initial images and the solution evaluated at t = 0 for them.  If either is
        None the initial term is zero.
    temporal_weight, tv_weight, norm_weight, initial_weight, min_norm_weight : float
        Weights of the five terms (paper: 1, a1 = 1e-4, 1, 1, a2 = 1e-4).
    tv_eps : float
        Smoothing of TV in the TV term, ``sum sqrt(|grad u|^2 + tv_eps^2)``.
    squared_norm : bool
        Constraint term ``(|phi|^2 - 1)_+`` (official code) instead of ``(|phi| - 1)_+``.
    channelwise : bool
        For colour: per-channel norms of ``phi`` and a channelwise TV.
    zero_edges : bool
        The official code's boundary convention for ``div`` and the TV's gradient
        (:func:`pdeflow.ops.grad` with ``zero_edges=True``; see the module docstring)
        instead of pdeflow's Neumann one.

    Returns
    -------
    dict of 0-d tensors
        ``temporal, tv, norm, initial, min_norm`` (already weighted) and ``total``,
        their sum; differentiable.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import loss_terms
    >>> from pdeflow.tvflownet.loss import TERM_NAMES
    >>> u = torch.ones(1, 1, 6, 6)  # a constant image is a steady state: u_t = div phi = 0
    >>> terms = loss_terms(u, torch.zeros_like(u), torch.zeros(1, 1, 2, 6, 6), u, u)
    >>> TERM_NAMES
    ('temporal', 'tv', 'norm', 'initial', 'min_norm')
    >>> [round(terms[k].item(), 6) for k in TERM_NAMES + ("total",)]
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    u, u_t, phi = ops.check_tensor(u, "u"), ops.check_tensor(u_t, "u_t"), ops.check_tensor(phi, "phi")
    u0 = None if u0 is None else ops.check_tensor(u0, "u0")
    u_at_0 = None if u_at_0 is None else ops.check_tensor(u_at_0, "u_at_0")
    _check_pair(u, phi)
    if tuple(u_t.shape) != tuple(u.shape):
        raise UserInputError(f"u_t must have the shape of u {tuple(u.shape)}, got {tuple(u_t.shape)}")
    div_phi = ops.div(phi, zero_edges=zero_edges)

    temporal = _pixel_batch_mean((u_t - div_phi) ** 2)

    inner = ops.batch_sum(u * div_phi)  # <u, div phi> per image, (B,)
    tv = ((inner + ops.tv_eps(u, tv_eps, channelwise=channelwise, zero_edges=zero_edges)) ** 2).mean()

    sq = (phi * phi).sum(-3)  # |phi|^2 (no sqrt: its derivative is infinite at phi = 0)
    if not channelwise:
        sq = sq.sum(-3, keepdim=True)  # (B, C|1, H, W)
    if squared_norm:
        excess = torch.relu(sq - 1.0)
    else:
        # (|phi| - 1)_+ with a finite derivative where phi = 0 (e.g. the zeroed border)
        excess = torch.sqrt(torch.clamp(sq, min=1.0)) - 1.0
    norm = _pixel_batch_mean(excess)

    if u0 is not None and u_at_0 is not None:
        if tuple(u0.shape) != tuple(u_at_0.shape):
            raise UserInputError(f"u0 {tuple(u0.shape)} and u_at_0 {tuple(u_at_0.shape)} must have the same shape")
        initial = _pixel_batch_mean((u_at_0 - u0) ** 2)
    else:
        initial = u.new_zeros(())

    min_norm = _pixel_batch_mean(div_phi ** 2)

    terms = {
        "temporal": temporal_weight * temporal,
        "tv": tv_weight * tv,
        "norm": norm_weight * norm,
        "initial": initial_weight * initial,
        "min_norm": min_norm_weight * min_norm,
    }
    terms["total"] = sum(terms[k] for k in TERM_NAMES)
    return terms


def _as_time_tensor(t, u0: torch.Tensor) -> torch.Tensor:
    B = u0.shape[0]
    if not torch.is_tensor(t):
        return torch.full((B,), float(t), dtype=u0.dtype, device=u0.device)
    t = t.to(dtype=u0.dtype, device=u0.device)
    if t.dim() == 0:
        return t.reshape(1).expand(B).clone()
    t = t.reshape(-1)
    if t.shape[0] != B:
        raise UserInputError(f"t must be a float or a tensor of shape () or (B,) = ({B},), got {tuple(t.shape)}")
    return t


def time_derivative(
    model: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    u0: torch.Tensor,
    t,
    *,
    method: str = "jvp",
    fd_step: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Evaluate ``(u, phi) = model(u0, t)`` and the per-pixel ``u_t = du/dt``.

    Parameters
    ----------
    model : callable ``(u0, t) -> (u, phi)``
    u0 : Tensor, shape (B, C, H, W)
    t : float or Tensor of shape () or (B,)
    method : ``"jvp"`` or ``"fd"``
        Forward-mode autodiff (``torch.func.jvp``, tangent ones; exact) or central
        differences ``(u(t + h) - u(t - h)) / (2h)`` with ``h = fd_step`` (two more
        forward passes).

    Returns
    -------
    u, phi, u_t
        All differentiable with respect to the model's parameters.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import time_derivative
    >>> def model(u0, t):  # u = u0 - t: u_t = -1
    ...     t = torch.as_tensor(t, dtype=u0.dtype).reshape(-1, 1, 1, 1)
    ...     return u0 - t, torch.zeros(u0.shape[0], u0.shape[1], 2, *u0.shape[2:])
    >>> u, phi, u_t = time_derivative(model, torch.zeros(2, 1, 4, 4), torch.tensor([0.2, 0.5]))
    >>> u_t.unique()
    tensor([-1.])
    """
    u0 = ops.check_float(u0, "u0")
    if u0.dim() != 4:
        raise UserInputError(f"u0 must have shape (B, C, H, W), got {tuple(u0.shape)}")
    tt = _as_time_tensor(t, u0)
    if method == "jvp":
        (u, phi), (u_t, _) = jvp(lambda s: model(u0, s), (tt,), (torch.ones_like(tt),))
        return u, phi, u_t
    if method == "fd":
        if not fd_step > 0:
            raise UserInputError(f"fd_step must be > 0, got {fd_step}")
        u, phi = model(u0, tt)
        up, _ = model(u0, tt + fd_step)
        um, _ = model(u0, tt - fd_step)
        return u, phi, (up - um) / (2.0 * fd_step)
    raise UserInputError(f"method must be 'jvp' or 'fd', got {method!r}")


class TVFlowLoss(nn.Module):
    """Eq. (12) evaluated on a model: ``total, logs = loss_fn(model, u0, t)``.

    ``u, phi, u_t`` come from :func:`time_derivative` at ``(u0, t)``; ``u(0)`` from a
    second forward pass ``model(u0, 0)``.  If ``t`` is None it is drawn uniformly
    from ``[0, t_max)`` per image (``generator`` for reproducibility).

    Returns the differentiable total and a dict of detached floats (the weighted
    terms, see :func:`loss_terms`, and ``total``) for logging.  The weights and
    variants are the keyword arguments of :func:`loss_terms`, plus ``ut_method``
    (``"jvp"`` or ``"fd"``), ``fd_step`` and ``t_max``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import SemiResNet, TVFlowLoss
    >>> _ = torch.manual_seed(0)
    >>> loss_fn, model = TVFlowLoss(), SemiResNet(width=4, depth=3)
    >>> total, logs = loss_fn(model, torch.rand(2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    >>> total.requires_grad, sorted(logs)
    (True, ['initial', 'min_norm', 'norm', 'temporal', 'total', 'tv'])
    """

    def __init__(self, *, temporal_weight: float = 1.0, tv_weight: float = 1e-4, norm_weight: float = 1.0,
                 initial_weight: float = 1.0, min_norm_weight: float = 1e-4, tv_eps: float = 1e-5,
                 squared_norm: bool = False, channelwise: bool = False, zero_edges: bool = False,
                 ut_method: str = "jvp",
                 fd_step: float = 1e-3, t_max: float = 1.0):
        super().__init__()
        if ut_method not in ("jvp", "fd"):
            raise UserInputError(f"ut_method must be 'jvp' or 'fd', got {ut_method!r}")
        for name, w in dict(temporal_weight=temporal_weight, tv_weight=tv_weight, norm_weight=norm_weight,
                            initial_weight=initial_weight, min_norm_weight=min_norm_weight).items():
            if not float(w) >= 0:
                raise UserInputError(f"{name} must be >= 0, got {w}")
        self.term_kwargs = dict(temporal_weight=float(temporal_weight), tv_weight=float(tv_weight),
                                norm_weight=float(norm_weight), initial_weight=float(initial_weight),
                                min_norm_weight=float(min_norm_weight), tv_eps=float(tv_eps),
                                squared_norm=bool(squared_norm), channelwise=bool(channelwise),
                                zero_edges=bool(zero_edges))
        self.ut_method = ut_method
        self.fd_step = float(fd_step)
        self.t_max = float(t_max)

    @classmethod
    def official(cls, **overrides) -> "TVFlowLoss":
        """The official code's loss: squared norm in the constraint term, tv_eps 1e-5 and its boundary
        convention for ``div`` and TV (``zero_edges=True``); see the module docstring."""
        kw = dict(squared_norm=True, tv_eps=1e-5, zero_edges=True)
        kw.update(overrides)
        return cls(**kw)

    @property
    def config(self) -> dict:
        return dict(**self.term_kwargs, ut_method=self.ut_method, fd_step=self.fd_step, t_max=self.t_max)

    def forward(self, model, u0: torch.Tensor, t=None, *, generator: torch.Generator | None = None):
        if u0.dim() != 4:
            raise UserInputError(f"u0 must have shape (B, C, H, W), got {tuple(u0.shape)}")
        if t is None:
            t = torch.rand(u0.shape[0], generator=generator, dtype=u0.dtype, device=u0.device) * self.t_max
        u, phi, u_t = time_derivative(model, u0, t, method=self.ut_method, fd_step=self.fd_step)
        # a model with u(0) = u0 built in (``exact_initial``) has a zero initial term: no forward pass at t = 0
        u_at_0 = None if getattr(model, "exact_initial", False) else model(u0, 0.0)[0]
        terms = loss_terms(u, u_t, phi, u0, u_at_0, **self.term_kwargs)
        total = terms["total"]
        return total, {k: float(v.detach()) for k, v in terms.items()}
