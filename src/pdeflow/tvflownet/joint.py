"""Joint space-time optimisation of the TVflowNET loss (Grossmann et al., 2022, §3.1.1).

The loss (12) is minimised directly over ``u`` and ``phi`` on a fixed grid of
times, without a network: the baseline that shows the loss itself recovers the
TV flow (Grossmann et al., 2022, Table 1).  As in the paper:

* ``u`` is initialised with ``u0`` at every time and ``phi`` with the
  regularised normalised gradient ``grad u0 / sqrt(|grad u0|^2 + eps^2)``;
* ``u_t`` is a finite difference in time on the grid;
* Adam with learning rate ``5e-3``, ``a1 = a2 = 1e-4``;
* 2,000 iterations for 32x32 and 96x96 images, 14,000 for 256x256 (20,000 for
  512x512 in Table 9); :func:`paper_iterations` gives these numbers.

Time differences (``fd="backward"``, the default): ``u_t(t_k) = (u_k - u_{k-1}) /
(t_k - t_{k-1})`` for ``k >= 1`` and the forward quotient at ``t_0``.  With this
choice the temporal term paired with ``div phi_k`` is exactly one implicit Euler
step, so the loss is minimised (up to the a2 penalty) by the model-driven
reference, whose ``u_t`` (``tv_flow(..., return_ut=True)``) is the same
backward quotient.  ``fd="central"`` uses second-order central differences
inside and one-sided ones at the ends (``numpy.gradient``).

The optimisation is batched over images: the loss is a mean over images, and
Adam's per-coordinate normalisation makes each image's trajectory (nearly)
independent of the others in the batch.

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .. import ops
from ..errors import UserInputError
from ..progress import progress_bar
from .architectures import normalised_gradient, zero_border
from .loss import loss_terms

__all__ = ["joint_optimise", "paper_iterations", "time_difference", "PAPER_ITERATIONS"]

#: Iterations ("epochs") of the joint optimisation in Grossmann et al. (2022) (§4.1 and Table 9) by image size.
PAPER_ITERATIONS = {32: 2000, 96: 2000, 256: 14000, 512: 20000}


def paper_iterations(size: int) -> int:
    """The paper's iteration count for a square image of side ``size``.

    2,000 up to 96 px, 14,000 at 256 px, 20,000 at 512 px; other sizes take the
    count of the next listed size up (20,000 beyond 512).

    Examples
    --------
    >>> from pdeflow.tvflownet.joint import PAPER_ITERATIONS, paper_iterations
    >>> PAPER_ITERATIONS
    {32: 2000, 96: 2000, 256: 14000, 512: 20000}
    >>> paper_iterations(64), paper_iterations(256), paper_iterations(1024)
    (2000, 14000, 20000)
    """
    size = int(size)
    if size < 1:
        raise UserInputError(f"size must be a positive int, got {size}")
    for s in sorted(PAPER_ITERATIONS):
        if size <= s:
            return PAPER_ITERATIONS[s]
    return PAPER_ITERATIONS[max(PAPER_ITERATIONS)]


def time_difference(u: torch.Tensor, times: torch.Tensor, fd: str = "backward") -> torch.Tensor:
    """Finite-difference ``du/dt`` along the leading (time) dimension of ``u``.

    Parameters
    ----------
    u : Tensor, shape (T, ...)
        Values at the times ``times``, ``T >= 2``.
    times : Tensor, shape (T,)
        Strictly increasing.
    fd : {"backward", "central"}
        ``"backward"``: ``(u_k - u_{k-1}) / (t_k - t_{k-1})``, forward quotient at
        ``k = 0`` (the implicit Euler pairing); ``"central"``: second order
        inside and first-order one-sided at both ends, as ``numpy.gradient``
        with ``edge_order=1`` (also on a non-uniform grid).

    Returns
    -------
    Tensor, shape of ``u``

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.joint import time_difference
    >>> times = torch.tensor([0.0, 0.5, 1.0, 2.0])
    >>> time_difference(times ** 2, times)  # backward quotients (forward at k = 0)
    tensor([0.5000, 0.5000, 1.5000, 3.0000])
    >>> time_difference(times ** 2, times, fd="central")
    tensor([0.5000, 1.0000, 2.0000, 3.0000])
    """
    T = u.shape[0]
    if T < 2:
        raise UserInputError(f"time_difference: need at least 2 times, got {T}")
    t = times.to(dtype=u.dtype, device=u.device).reshape(-1, *([1] * (u.dim() - 1)))
    h = t[1:] - t[:-1]  # (T-1, 1, ...)
    d = (u[1:] - u[:-1]) / h  # quotient on each interval
    if fd == "backward":
        return torch.cat([d[:1], d], dim=0)
    if fd == "central":
        if T == 2:
            return torch.cat([d, d], dim=0)
        h0, h1 = h[:-1], h[1:]
        # numpy.gradient's second-order formula for non-uniform spacing
        inner = (h0 * d[1:] + h1 * d[:-1]) / (h0 + h1)
        return torch.cat([d[:1], inner, d[-1:]], dim=0)
    raise UserInputError(f"fd must be 'backward' or 'central', got {fd!r}")


def joint_optimise(
    u0: torch.Tensor,
    times: Sequence[float] | torch.Tensor,
    *,
    iterations: int = 2000,
    lr: float = 5e-3,
    tv_weight: float = 1e-4,
    min_norm_weight: float = 1e-4,
    temporal_weight: float = 1.0,
    norm_weight: float = 1.0,
    initial_weight: float = 1.0,
    tv_eps: float = 1e-5,
    squared_norm: bool = False,
    phi_eps: float = 1e-4,
    fd: str = "backward",
    edge_width: int = 0,
    channelwise: bool = False,
    u_init: torch.Tensor | None = None,
    phi_init: torch.Tensor | None = None,
    progress: bool = False,
    return_history: bool = False,
    history_every: int = 1,
):
    """Minimise the loss (12) over ``u`` and ``phi`` on a fixed time grid (Grossmann et al., 2022, §3.1.1).

    Parameters
    ----------
    u0 : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Initial images, intensities as given (the paper uses images in [0, 1]
        times 5).  A batch is optimised jointly, each image on its own grid.
    times : sequence of float or Tensor, shape (T,)
        Strictly increasing, ``T >= 2``, ``times[0] == 0`` (the initial term of
        (12) is taken at the first time).  The paper: 50 equidistant times in
        ``[0, 1]``; the test protocol ``linspace(0, 0.98, 50)``.
    iterations : int
        Adam iterations ("epochs" in the paper: 2,000 for 32 and 96 px, 14,000
        for 256 px; :func:`paper_iterations`).
    lr : float
        Adam's learning rate (paper: 5e-3).
    tv_weight, min_norm_weight : float
        ``a1`` and ``a2`` of (12) (paper: 1e-4 both).
    temporal_weight, norm_weight, initial_weight, tv_eps, squared_norm, channelwise
        Passed to :func:`pdeflow.tvflownet.loss_terms`.
    phi_eps : float
        ``eps`` of the initialisation ``phi = grad u0 / sqrt(|grad u0|^2 + eps^2)``.
    fd : {"backward", "central"}
        Finite difference for ``u_t``; see :func:`time_difference`.
    edge_width : int
        If > 0, ``phi`` is zeroed on a border of this width (the networks' hard
        Dirichlet constraint).  Default 0: ``pdeflow.ops.div`` already encodes
        the discrete boundary condition of the dual field.
    u_init, phi_init : Tensor, optional
        Other starting points, shapes ``(T, B, C, H, W)`` and ``(T, B, C, 2, H, W)``.
    progress : bool
        Show a progress bar.
    return_history : bool
        Also return the loss history.
    history_every : int
        Record the loss terms every this many iterations (and at the last one).

    Returns
    -------
    u : Tensor, shape (T, *u0.shape)
    phi : Tensor, shape (T, *u0.shape[:-2], 2, H, W)
        Detached; ``pdeflow.ops.div(phi)`` approximates ``u_t``.
    history : dict of list, only if ``return_history``
        ``"iteration"`` and the weighted loss terms (``"total"``, ``"temporal"``,
        ``"tv"``, ``"norm"``, ``"initial"``, ``"min_norm"``) as floats; the first
        entry is the loss of the initialisation (iteration 0).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.datasets import disk
    >>> from pdeflow.tvflownet import joint_optimise
    >>> u, phi = joint_optimise(5 * disk(8, 2.5), [0.0, 0.1, 0.2], iterations=20)
    >>> u.shape, phi.shape
    (torch.Size([3, 1, 8, 8]), torch.Size([3, 1, 2, 8, 8]))
    """
    u0 = ops.check_tensor(u0, "u0")
    x = ops.check_float(ops.as_batch(u0, "u0")[0], "u0")
    if not bool(torch.isfinite(x).all()):
        raise UserInputError("u0 contains NaN or infinite values")
    t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if t.numel() < 2:
        raise UserInputError(f"times must hold at least 2 times, got {t.numel()}")
    if not bool(torch.isfinite(t).all()) or bool((t[1:] <= t[:-1]).any()):
        raise UserInputError(f"times must be finite and strictly increasing, got {t.tolist()}")
    if abs(float(t[0])) > 1e-12:
        raise UserInputError(f"times must start at 0 (the initial condition of (12)), got times[0] = {float(t[0])}")
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 0:
        raise UserInputError(f"iterations must be an int >= 0, got {iterations!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise UserInputError(f"lr must be > 0, got {lr!r}")
    if fd not in ("backward", "central"):
        raise UserInputError(f"fd must be 'backward' or 'central', got {fd!r}")
    if int(history_every) < 1:
        raise UserInputError(f"history_every must be >= 1, got {history_every}")
    iterations = int(iterations)
    T = t.numel()
    B, C, H, W = x.shape
    x = x.detach()
    out_dtype = x.dtype
    x = ops.promote_half(x)     # Adam's moments underflow in half precision: float32 inside, u0's dtype out
    t = t.to(device=x.device)

    if u_init is None:
        u = x.unsqueeze(0).expand(T, B, C, H, W).clone()
    else:
        if tuple(u_init.shape) != (T, B, C, H, W):
            raise UserInputError(f"u_init must have shape {(T, B, C, H, W)}, got {tuple(u_init.shape)}")
        u = u_init.detach().to(x).clone()
    if phi_init is None:
        phi = normalised_gradient(x, phi_eps, channelwise=channelwise).unsqueeze(0).expand(T, B, C, 2, H, W).clone()
    else:
        if tuple(phi_init.shape) != (T, B, C, 2, H, W):
            raise UserInputError(f"phi_init must have shape {(T, B, C, 2, H, W)}, got {tuple(phi_init.shape)}")
        phi = phi_init.detach().to(x).clone()
    phi = zero_border(phi, int(edge_width))
    u.requires_grad_(True)
    phi.requires_grad_(True)

    term_kwargs = dict(temporal_weight=temporal_weight, tv_weight=tv_weight, norm_weight=norm_weight,
                       initial_weight=initial_weight, min_norm_weight=min_norm_weight, tv_eps=tv_eps,
                       squared_norm=squared_norm, channelwise=channelwise)

    def loss():
        p = zero_border(phi, int(edge_width))
        u_t = time_difference(u, t, fd)
        return loss_terms(u.reshape(T * B, C, H, W), u_t.reshape(T * B, C, H, W),
                          p.reshape(T * B, C, 2, H, W), x, u[0], **term_kwargs)

    history: dict[str, list] = {"iteration": []}

    def record(it, terms):
        history["iteration"].append(it)
        for k, v in terms.items():
            history.setdefault(k, []).append(float(v.detach()))

    opt = torch.optim.Adam([u, phi], lr=lr)
    with torch.enable_grad(), progress_bar(total=iterations, enabled=progress, desc="joint space-time",
                                           unit="it") as bar:
        for it in range(iterations):
            opt.zero_grad(set_to_none=True)
            terms = loss()
            if return_history and it % int(history_every) == 0:
                record(it, terms)
            terms["total"].backward()
            opt.step()
            bar.update(1)
            if it % 50 == 0:
                bar.set_postfix(loss=f"{float(terms['total'].detach()):.3e}", refresh=False)
        if return_history:
            with torch.no_grad():
                record(iterations, loss())

    u_out = u.detach().to(out_dtype)
    phi_out = zero_border(phi.detach(), int(edge_width)).to(out_dtype)
    shape = tuple(u0.shape)
    u_out = u_out.reshape(T, *shape)
    phi_out = phi_out.reshape(T, *shape[:-2], 2, H, W)
    if return_history:
        return u_out, phi_out, history
    return u_out, phi_out
