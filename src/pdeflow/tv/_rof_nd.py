"""The ROF solvers on any :class:`~pdeflow.tv._grid.Grid` other than the 2-D unit one (volumes, spacings):
Chambolle's projection, FGP and PDHG one iteration at a time, and the duality gap they stop on; FGP on CPU
volumes runs the fused loops of ``_fgp_volume``. :func:`pdeflow.tv.rof` drives them as it drives the 2-D methods
of ``_rof_methods`` (which they reduce to on the 2-D unit grid).
"""
from __future__ import annotations

import torch

from ..ops import batch_sum
from ._fgp import gap_terms, momentum
from ._fgp_volume import volume_applies, volume_gap, volume_init, volume_step
from ._fused_rows import FUSED
from ._rof_methods import gap_and_primal

__all__ = ["ND_STEPS", "nd_gap"]


def _bdot_(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A batched dot product without a temporary (a batched BLAS dot), for the volumes' loops."""
    B = a.shape[0]
    return torch.bmm(a.reshape(B, 1, -1), b.reshape(B, -1, 1)).reshape(B)


# --------------------------------------------------------------------------- any grid
# The same methods on a :class:`~pdeflow.tv._grid.Grid` other than the 2-D unit one (volumes, spacing):
# fields (B, C, K, *spatial), lam shaped (B, 1, ..., 1) like f, and every step size scaled by the bound
# L = ||div||^2 <= 4 sum_k 1 / h_k^2 (8 on the 2-D unit grid, where these reduce to ``_rof_methods``'s).


def _bc(t: torch.Tensor) -> torch.Tensor:
    """A per-image (B, 1, ..., 1) tensor shaped for a field (one more axis)."""
    return t.unsqueeze(-1)


def nd_gap(s, f, lam, channelwise):
    """(u, p, gap, primal, None) of a dual method's state on any grid, on the state's buffers (``v``, ``z``
    and ``n`` are free between steps): the 2-D unit grid's gap (``_rof_methods``) with ``L`` for 8.  The gap is
    ``lam * sum(|grad u| - <grad u, p>)`` and the fidelity ``lam^2 ||div p||^2``, unweighted sums (the
    voxel volume cancels in the relative gap)."""
    if "pp" in s:
        return volume_gap(s, channelwise)
    grid, p = s["grid"], s["p"]
    if "u" in s:  # pdhg: u is an iterate of its own, the gap has its residual term
        gap, primal = gap_and_primal(f, s["u"], p, lam, channelwise, grid)
        return s["u"], p, gap, primal, None
    d = grid.div_into(p, s["v"])
    u = torch.addcmul(f, lam, d)
    if "gf" in s:
        # grad u = lam (L gf + grad div p), gf = grad(f) / (L lam) formed in float64 (as on the 2-D unit grid)
        g = grid.grad_into(d, s["z"]).add_(s["gf"], alpha=s["L"]).mul_(_bc(lam))
    else:
        g = grid.grad_into(u, s["z"])
    gn = grid.sqnorm_into(g, s["n"], channelwise).sqrt_()
    if channelwise or f.shape[1] == 1:
        align = torch.mul(g[:, :, 0:1], p[:, :, 0:1])
        for k in range(1, grid.ndim):
            align.addcmul_(g[:, :, k:k + 1], p[:, :, k:k + 1])
    else:
        align = (g * p).sum((1, 2), keepdim=True)
    tv_u, slack = batch_sum(gn).double(), batch_sum(torch.sub(gn, align, out=align)).double()
    gap, primal, _ = gap_terms(lam.reshape(-1).double(), tv_u, slack, _bdot_(d, d).double(), None, f.shape[1],
                               f[0, 0].numel(), 0.0)
    return u, p, gap, primal, None


def _nd_buffers(grid, f, p, channelwise):
    """The work buffers of the dual methods on a grid: ``v`` (a volume), ``z`` (a field with zero unused
    entries) and ``n`` (a norm)."""
    contiguous = torch.contiguous_format
    return {"v": torch.empty_like(f, memory_format=contiguous), "z": torch.zeros_like(p, memory_format=contiguous),
            "n": grid.norm_buffer(f, channelwise)}


def _nd_chambolle_init(grid):
    def init(f, lam, p0, channelwise):
        p = grid.zero_unused(p0.clone(memory_format=torch.contiguous_format))
        return {"p": p, "fl": f / lam, "grid": grid, "tau_nd": 2.0 / grid.lipschitz,
                **_nd_buffers(grid, f, p, channelwise)}
    return init


def _nd_chambolle_step(s, f, lam, channelwise):
    # Chambolle (2004) with tau = 2 / L (1/4 on the 2-D unit grid, 1/(2 ndim) in scikit-image's n-D code):
    # p <- (p + tau g) / (1 + tau |g|) with g = grad(div p + f/lam), in place (as the 2-D unit grid's Chambolle step).
    grid, p, tau = s["grid"], s["p"], s["tau_nd"]
    v = grid.div_into(p, s["v"]).add_(s["fl"])
    g = grid.grad_into(v, s["z"])
    n = grid.sqnorm_into(g, s["n"], channelwise).sqrt_()
    p.add_(g, alpha=tau).div_(n.mul_(tau).add_(1.0))


def _nd_fgp_init(grid):
    def init(f, lam, p0, channelwise):
        L = grid.lipschitz
        p = grid.zero_unused(p0.clone(memory_format=torch.contiguous_format))
        if FUSED and volume_applies(grid, f, lam, p):
            return volume_init(grid, f, lam, p)
        s = {"p": p, "q": p.clone(), "t": torch.ones_like(lam), "grid": grid, "L": L,
             **_nd_buffers(grid, f, p, channelwise)}
        if f.dtype == torch.float64:
            # f / (L lam) enters div q / L: one pass less per step than adding gf to the field; in float64
            # its round-off (eps |f| / lam) is far below any tol the gap can resolve.
            s["fl"] = f / (L * lam)
        else:
            s["gf"] = (grid.grad(f.double()) / (L * _bc(lam.double()))).to(f.dtype).contiguous()
            s["d"] = torch.empty_like(p, memory_format=torch.contiguous_format)
        return s
    return init


def _nd_fgp_step(s, f, lam, channelwise):
    # FGP's step with the step 1 / (L lam^2): p_new = proj(q + grad(f + lam div q) / (L lam)), in place on
    # the state's buffers (the fields keep zero unused entries).
    if "pp" in s:
        return volume_step(s, channelwise)
    grid, p, q, z = s["grid"], s["p"], s["q"], s["z"]
    exact = "fl" in s
    if exact:
        grid.grad_into(grid.div_into(q, s["v"], scale=1.0 / s["L"], base=s["fl"]), z).add_(q)
    else:
        grid.grad_into(grid.div_into(q, s["v"], scale=1.0 / s["L"]), z).add_(q).add_(s["gf"])
    grid.project_(z, s["n"], channelwise)  # z = p_new
    # Restart where the momentum points uphill: <q - p_new, p_new - p> > 0.  In float64 as two dot products
    # (no p_new - p array: one field less to stream through memory; their difference is far above
    # round-off at any resolvable tol); in lower precisions from the difference itself.
    qz = q.sub_(z)
    if exact:
        uphill = ((_bdot_(qz, z) - _bdot_(qz, p)) > 0).reshape(lam.shape)
    else:
        step = torch.sub(z, p, out=s["d"])
        uphill = (_bdot_(qz, step) > 0).reshape(lam.shape)
    t_new, beta = momentum(s["t"], uphill)
    if exact:
        torch.lerp(p, z, _bc(1.0 + beta), out=q)  # z + beta (z - p); exactly z at beta = 0
    else:
        torch.addcmul(z, _bc(beta), step, out=q)
    s["p"], s["z"], s["t"] = z, p, t_new


def _nd_pdhg_init(grid):
    def init(f, lam, p0, channelwise):
        u = f + lam * grid.div(p0)
        return {"u": u, "ubar": u.clone(), "p": p0.clone(), "tau": torch.ones_like(lam), "grid": grid}
    return init


def _nd_pdhg_step(s, f, lam, channelwise):
    # PDHG's step with tau * sigma * L = 1.
    grid, tau = s["grid"], s["tau"]
    sigma = 1.0 / (grid.lipschitz * tau)
    p = grid.project(s["p"] + _bc(sigma / lam) * grid.grad(s["ubar"]), channelwise)
    u_old = s["u"]
    u = (u_old + tau * (lam * grid.div(p) + f)) / (1.0 + tau)
    theta = 1.0 / torch.sqrt(1.0 + 2.0 * tau)
    s["ubar"] = u + theta * (u - u_old)
    s["u"], s["p"], s["tau"] = u, p, theta * tau


# The methods that run on any grid, and what they are on the 2-D unit grid.
ND_STEPS = {"chambolle": (_nd_chambolle_init, _nd_chambolle_step),
            "fgp": (_nd_fgp_init, _nd_fgp_step),
            "pdhg": (_nd_pdhg_init, _nd_pdhg_step)}
