"""The losses of a TVflowNET training run (:mod:`pdeflow.tvflownet.train`): the unsupervised loss of
eq. (12), and the supervised one against the reference TV flow of each crop."""
from __future__ import annotations

import torch

from .. import ops
from ..tv import tv_flow
from ._train_config import TrainConfig
from .loss import TVFlowLoss


def unsupervised_loss_fn(cfg: TrainConfig) -> TVFlowLoss:
    """Eq. (12) with the config's weights and variant."""
    make = TVFlowLoss.official if cfg.loss == "official" else TVFlowLoss
    return make(tv_weight=cfg.a1, min_norm_weight=cfg.a2, ut_method=cfg.ut_method, t_max=cfg.t_max)


@torch.no_grad()
def reference_at_times(crops: torch.Tensor, t: torch.Tensor, cfg: TrainConfig, *, dual: bool = False):
    """The reference TV flow of each of ``crops`` ``(N, 1, H, W)`` at its own times ``t`` ``(N, R)``,
    all in one call of :func:`~pdeflow.tv.tv_flow` (it lands a step on every time of the batch).

    Returns ``(u_ref,)`` or, if ``dual``, ``(u_ref, u_t,ref, p_ref)``, each ``(N, R, C, H, W)``.
    """
    times = sorted(set(t.flatten().tolist()))
    out = tv_flow(crops, times, dt=cfg.ref_dt, tol=cfg.ref_tol, max_iter=cfg.ref_max_iter,
                  return_ut=dual, return_dual=dual, scheme="euler")  # the paper's implicit Euler reference
    out = out if dual else (out,)                         # each (K, N, C, H, W)
    index = {s: i for i, s in enumerate(times)}
    ti = torch.tensor([[index[s] for s in row] for row in t.tolist()], device=crops.device)
    ii = torch.arange(crops.shape[0], device=crops.device)[:, None].expand_as(ti)
    return tuple(x[ti, ii] for x in out)


def supervised_reference(u0: torch.Tensor, t: torch.Tensor, cfg: TrainConfig, *, dual: bool = False):
    """The reference TV flow of each crop of ``u0`` at its own time ``t[i]``.

    Returns ``u_ref`` ``(B, 1, H, W)`` and, if ``dual``, ``(u_t,ref, p_ref)``.
    Crops repeated by ``times_per_image`` are evolved once.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import TrainConfig, supervised_reference
    >>> u0 = 5 * torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> u_ref = supervised_reference(u0, torch.tensor([0.0, 0.1]), TrainConfig())
    >>> u_ref.shape, torch.allclose(u_ref[0], u0[0]), torch.allclose(u_ref.mean((1, 2, 3)), u0.mean((1, 2, 3)))
    (torch.Size([2, 1, 8, 8]), True, True)
    """
    k = cfg.times_per_image
    out = tuple(x.flatten(0, 1) for x in reference_at_times(u0[::k], t.view(-1, k), cfg, dual=dual))
    return out if dual else out[0]


def supervised_loss(model, u0: torch.Tensor, t: torch.Tensor, cfg: TrainConfig, *, reference=None):
    """``mean (u - u_ref)^2`` (+ the optional phi term); ``(total, {name: float})``.

    ``reference``: ``supervised_reference(u0, t, cfg, dual=phi_weight > 0)`` when already known.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.train import TrainConfig, supervised_loss
    >>> _ = torch.manual_seed(0)
    >>> u0 = 5 * torch.rand(2, 1, 8, 8)
    >>> total, logs = supervised_loss(SemiResNet(width=4, depth=3), u0, torch.tensor([0.05, 0.1]), TrainConfig())
    >>> total.requires_grad, sorted(logs)
    (True, ['sup_u'])
    """
    want_phi = cfg.phi_weight > 0
    ref = reference if reference is not None else supervised_reference(u0, t, cfg, dual=want_phi)
    u, phi = model(u0, t)
    if not want_phi:
        loss_u = torch.mean((u - ref) ** 2)
        return loss_u, {"sup_u": float(loss_u.detach())}
    u_ref, ut_ref, p_ref = ref
    loss_u = torch.mean((u - u_ref) ** 2)
    if cfg.phi_target == "div":
        loss_phi = torch.mean((ops.div(phi) - ut_ref) ** 2)
    else:
        loss_phi = torch.mean(((phi - p_ref) ** 2).sum(-3))
    total = loss_u + cfg.phi_weight * loss_phi
    return total, {"sup_u": float(loss_u.detach()), "sup_phi": float(loss_phi.detach())}


def supervised_steps(cfg: TrainConfig) -> int:
    """Number of leading steps trained supervised."""
    return {"unsupervised": 0, "supervised": cfg.steps, "hybrid": round(cfg.hybrid_fraction * cfg.steps)}[cfg.mode]
