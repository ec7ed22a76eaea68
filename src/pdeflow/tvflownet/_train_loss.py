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
    if cfg.grad_weight > 0:
        u0 = u0.detach().requires_grad_(True)
    u, phi = model(u0, t)
    u_ref = ref[0] if want_phi else ref
    loss_u = torch.mean((u - u_ref) ** 2)
    total, logs = loss_u, {"sup_u": float(loss_u.detach())}
    if want_phi:
        _, ut_ref, p_ref = ref
        if cfg.phi_target == "div":
            loss_phi = torch.mean((ops.div(phi) - ut_ref) ** 2)
        else:
            loss_phi = torch.mean(((phi - p_ref) ** 2).sum(-3))
        total = total + cfg.phi_weight * loss_phi
        logs["sup_phi"] = float(loss_phi.detach())
    if cfg.grad_weight > 0:
        # the benchmark's loss 0.5 ||u(t) - target||^2 has the cotangent u(t) - target: another image's crop
        n = cfg.grad_crops or u0.shape[0]
        w = (u_ref - u0.detach().roll(1, 0)).detach()[:n]
        (g,) = torch.autograd.grad(u[:n], u0, w, create_graph=True)
        g, g_ref = g[:n], reference_vjp(u0.detach()[:n], t.flatten()[:n], w, cfg)
        loss_g = (g - g_ref).square().sum() / g_ref.square().sum().clamp(min=1e-12)
        total = total + cfg.grad_weight * loss_g
        logs["sup_grad"] = float(loss_g.detach())
    return total, logs


def reference_vjp(u0: torch.Tensor, t: torch.Tensor, w: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """``d/du0 <u_ref(t), w>`` for the reference flow of each crop of ``u0`` ``(B, C, H, W)`` at its
    own time ``t[i]``: autograd through :func:`~pdeflow.tv.tv_flow` (implicit Euler, step
    ``grad_ref_dt``, tolerance ``grad_ref_tol``, each step differentiated implicitly at its
    solution), one call for the batch.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import TrainConfig, reference_vjp
    >>> u0 = 5 * torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> w = torch.ones_like(u0)  # the flow keeps each crop's mean: d/du0 of its sum is all ones
    >>> torch.allclose(reference_vjp(u0, torch.tensor([0.1, 0.3]), w, TrainConfig()), w, atol=1e-4)
    True
    """
    times = sorted(set(t.flatten().tolist()))
    with torch.enable_grad():
        x = u0.detach().requires_grad_(True)
        out = tv_flow(x, times, dt=cfg.grad_ref_dt, tol=cfg.grad_ref_tol, max_iter=cfg.val_max_iter, scheme="euler")
        index = {s: i for i, s in enumerate(times)}
        ti = torch.tensor([index[s] for s in t.flatten().tolist()], device=u0.device)
        u = out[ti, torch.arange(u0.shape[0], device=u0.device)]
        (g,) = torch.autograd.grad(u, x, w)
    return g.detach()


def supervised_steps(cfg: TrainConfig) -> int:
    """Number of leading steps trained supervised."""
    return {"unsupervised": 0, "supervised": cfg.steps, "hybrid": round(cfg.hybrid_fraction * cfg.steps)}[cfg.mode]
