"""Solvers for the ROF problem ``argmin_u 1/2 ||u - f||^2 + lam * TV(u)``.

All solvers share one dual formulation.  With ``|p| <= 1`` pointwise,

    u = f + lam * div(p),                       (primal from dual)
    D(p) = 1/2 ||f||^2 - 1/2 ||f + lam div p||^2 (dual objective)

and the duality gap of any pair ``(u, p)`` is the sum of two non-negative terms,

    P(u) - D(p) = 1/2 ||u - (f + lam div p)||^2 + lam * sum(|grad u| - <grad u, p>),

which we evaluate without cancellation.  Since ``P`` is 1-strongly convex,
``||u - u*||^2 <= 2 (P(u) - D(p))``: the relative gap ``tol`` bounds the error of
the returned image by ``sqrt(2 * tol * P(u))`` in the Euclidean norm.

Each image of a batch stops on its own once its relative gap
``(P - D) / P`` falls below ``tol``; converged images leave the working batch.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import UserInputError
from ..ops import batch_sum, div, grad, gradient_norm
from ..threads import auto_threads
from ._grid import PLAIN, Grid, make_grid
from ._implicit import apply_jacobian, flat_threshold

__all__ = ["rof", "RofResult", "ROF_METHODS", "ND_METHODS", "duality_gap", "ConvergenceWarning", "CompileWarning"]

ROF_METHODS = ("chambolle", "fgp", "pdhg", "admm")


class ConvergenceWarning(RuntimeWarning):
    """A solve stopped above its tolerance (at its iteration cap, or at its dtype's round-off floor).
    Raised as a warning (never an error) by :func:`rof`, :func:`~pdeflow.tv.tv_flow` and
    :func:`~pdeflow.tv.spectral_tv` when a solve stops above its tolerance: at its iteration
    cap, or at the round-off floor of its dtype.

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


@dataclass
class RofResult:
    """Solution of a batched ROF problem.

    Attributes
    ----------
    u : Tensor, shape of ``f``
        The minimiser.
    p : Tensor, shape ``(B, C, 2, H, W)``
        Dual field with ``|p| <= 1`` and ``u ~= f + lam * div(p)``.
    iterations : Tensor of int64, shape (B,)
        Iterations each image took.
    gap : Tensor, shape (B,)
        Final relative duality gap of each image.
    converged : Tensor of bool, shape (B,), or None
        Whether each image met ``tol`` (False: it stopped at ``max_iter`` or at the round-off floor of
        its dtype with the gap in ``gap``; an image constant to round-off counts as converged).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import rof
    >>> r = rof(torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4, dtype=torch.float64), 0.25, tol=1e-12, full_output=True)
    >>> r.u.shape, r.p.shape, bool(r.converged.all())
    (torch.Size([4, 4]), torch.Size([1, 1, 2, 4, 4]), True)
    """

    u: torch.Tensor
    p: torch.Tensor
    iterations: torch.Tensor
    gap: torch.Tensor
    converged: torch.Tensor | None = None


# --------------------------------------------------------------------------- helpers


def _project(p: torch.Tensor, channelwise: bool) -> torch.Tensor:
    """Project a dual field ``(B, C, 2, H, W)`` onto the unit ball, pointwise."""
    n = gradient_norm(p, channelwise=channelwise).unsqueeze(-3)  # (B, C|1, 1, H, W)
    return p / torch.clamp(n, min=1.0)


def duality_gap(f, u, p, lam, *, channelwise=False):
    """Duality gap and primal objective of ``(u, p)`` per image.

    Parameters
    ----------
    f, u : Tensor, shape (B, C, H, W)
    p : Tensor, shape (B, C, 2, H, W), feasible (``|p| <= 1``)
    lam : Tensor, shape (B, 1, 1, 1)

    Returns
    -------
    gap, primal : Tensor, shape (B,)
        Both accumulated in float64.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import duality_gap, rof
    >>> f = torch.tensor([[[[0.0, 0.0, 1.0, 1.0]] * 4]], dtype=torch.float64)
    >>> r = rof(f, 0.25, tol=1e-12, full_output=True)
    >>> gap, primal = duality_gap(f, r.u, r.p, 0.25)
    >>> bool(gap <= 1e-12 * primal), primal
    (True, tensor([0.8750], dtype=torch.float64))
    """
    f, u, p = _as_image(f, "f"), _as_image(u, "u"), _as_image(p, "p")
    for name, t in (("f", f), ("u", u)):
        if t.dim() != 4:
            raise UserInputError(f"{name} must have shape (B, C, H, W), got {tuple(t.shape)}")
        _check_image(t, name)
    if u.shape != f.shape:
        raise UserInputError(f"u must have the shape of f {tuple(f.shape)}, got {tuple(u.shape)}")
    if p.shape != (*f.shape[:2], 2, *f.shape[2:]):
        raise UserInputError(f"p must have shape {(*f.shape[:2], 2, *f.shape[2:])}, got {tuple(p.shape)}")
    lam = _per_image(lam.reshape(-1) if isinstance(lam, torch.Tensor) and lam.numel() == f.shape[0] else lam,
                     f.shape[0], f, "lam")
    return _duality_gap(f, u, p, lam, channelwise)


def _duality_gap(f, u, p, lam, channelwise, grid: Grid = PLAIN):
    """:func:`duality_gap` without its checks (the solvers' own calls); on ``grid`` (fields
    ``(B, C, K, *spatial)``) where it is not the 2-D unit grid.  Unweighted sums: the voxel volume
    multiplies both terms of the energy and cancels in the relative gap."""
    if grid.plain:
        g = grad(u)
        gn = gradient_norm(g, channelwise=channelwise)
        align = (g * p).sum(-3)
        if not channelwise:
            align = align.sum(-3, keepdim=True)
    else:
        g = grid.grad(u)
        gn = grid.norm(g, channelwise)
        align = (g * p).sum(2, keepdim=True)
        if not channelwise:
            align = align.sum(1, keepdim=True)
        gn, align = gn.squeeze(2), align.squeeze(2)
    div_p = div(p) if grid.plain else grid.div(p)
    lam_b = lam.reshape(-1).double()
    tv_u = batch_sum(gn).double()
    slack = batch_sum(gn - align).double().clamp_min(0.0)
    resid = batch_sum((u - f - lam * div_p) ** 2).double()
    fidelity = batch_sum((u - f) ** 2).double()
    gap = 0.5 * resid + lam_b * slack
    primal = 0.5 * fidelity + lam_b * tv_u
    return gap, primal


# --------------------------------------------------------------------------- kernels
# The dual methods keep their fields in a fixed layout: p[:, :, 0] is zero in the last
# row and p[:, :, 1] in the last column (the entries div never reads), so that div and
# grad are a handful of in-place slice operations on preallocated buffers.  Per
# iteration this halves the work of the plain ops.grad/ops.div composition, which
# allocates a fresh tensor for every intermediate.


def _new(x: torch.Tensor, zero: bool = False) -> torch.Tensor:
    """A contiguous buffer of the shape, dtype and device of ``x``."""
    return (torch.zeros if zero else torch.empty)(x.shape, dtype=x.dtype, device=x.device)


def _zero_unused(p: torch.Tensor) -> torch.Tensor:
    """Zero the entries of a dual field that ``div`` ignores (in place)."""
    p[:, :, 0, -1, :] = 0
    p[:, :, 1, :, -1] = 0
    return p


def _div_into(p: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``div(p)`` into ``out`` for a field with zero unused entries (see above).

    Works on each image as a flat vector of ``H * W`` pixels, where the neighbour
    below is ``W`` entries on and the one to the right is the next entry: contiguous
    slices, about twice as fast as 2-D slicing.  The wrap-around terms read the
    zero unused entries of ``p``.
    """
    B, C, _, H, W = p.shape
    pf = p.reshape(B * C, 2, H * W)
    of = out.reshape(B * C, H * W)
    torch.add(pf[:, 0], pf[:, 1], out=of)
    of[:, W:] -= pf[:, 0, :-W]
    of[:, 1:] -= pf[:, 1, :-1]
    return out


def _grad_into(u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``grad(u)`` into ``out``, whose unused entries must already be zero."""
    B, C, H, W = u.shape
    uf = u.reshape(B * C, H * W)
    gf = out.reshape(B * C, 2, H * W)
    torch.sub(uf[:, W:], uf[:, :-W], out=gf[:, 0, :-W])
    torch.sub(uf[:, 1:], uf[:, :-1], out=gf[:, 1, :-1])
    out[:, :, 1, :, -1] = 0  # the flat difference wrapped around the row ends
    return out


def _sqnorm_into(z: torch.Tensor, out: torch.Tensor, channelwise: bool) -> torch.Tensor:
    """Pointwise squared norm of a field ``(B, C, 2, H, W)`` as ``(B, C|1, 1, H, W)``."""
    if channelwise or z.shape[1] == 1:
        torch.mul(z[:, :, 0:1], z[:, :, 0:1], out=out)
        return out.addcmul_(z[:, :, 1:2], z[:, :, 1:2])
    return (z * z).sum((1, 2), keepdim=True)


def _norm_into(z: torch.Tensor, out: torch.Tensor, channelwise: bool) -> torch.Tensor:
    """Pointwise norm of a field ``(B, C, 2, H, W)`` as ``(B, C|1, 1, H, W)``."""
    return _sqnorm_into(z, out, channelwise).sqrt_()


def _project_(z: torch.Tensor, buf: torch.Tensor, channelwise: bool) -> torch.Tensor:
    """Project a field onto ``|z| <= 1`` pointwise, in place."""
    return z.mul_(_sqnorm_into(z, buf, channelwise).clamp_min_(1.0).rsqrt_())


def _norm_buffer(f: torch.Tensor, channelwise: bool) -> torch.Tensor:
    B, C, H, W = f.shape
    return f.new_empty(B, C if channelwise else 1, 1, H, W)


def _bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image inner product of two contiguous batched tensors, shape (B,)."""
    B = a.shape[0]
    return torch.linalg.vecdot(a.reshape(B, -1), b.reshape(B, -1))


def _dual_gap(s, f, lam, channelwise):
    """(u, p, gap, primal) for the dual methods, where ``u = f + lam div p`` exactly.

    Same quantities as :func:`duality_gap` (its residual term is zero here), on the
    state's buffers: the gap is ``lam * sum(|grad u| - <grad u, p>)``, a sum of
    non-negative terms, and the fidelity is ``lam^2 ||div p||^2``.
    """
    p = s["p"]
    d = _div_into(p, _new(f))
    u = torch.addcmul(f, lam, d)
    if "gf" in s:
        # grad u = lam (8 gf + grad div p) with gf = grad(f) / (8 lam) formed in float64:
        # no cancellation between f and lam div p, so the gap is accurate to round-off
        # of grad u rather than of |f| (what lets float32 resolve small gaps).
        g = _grad_into(d, s["z"]).add_(s["gf"], alpha=8.0).mul_(lam.unsqueeze(-1))
    else:
        g = _grad_into(u, s["z"])  # z is free between steps and keeps zero unused entries
    gn = _norm_into(g, s["n"], channelwise)
    if channelwise or f.shape[1] == 1:
        align = torch.mul(g[:, :, 0:1], p[:, :, 0:1])
        align.addcmul_(g[:, :, 1:2], p[:, :, 1:2])
    else:
        align = (g * p).sum((1, 2), keepdim=True)
    tv_u, slack = batch_sum(gn), batch_sum(torch.sub(gn, align, out=align))
    return (u, p) + _gap_and_bound(s, f, lam, tv_u, slack, _bdot(d, d))


def _gap_terms(lam, tv_u, slack, div_sq, af, C: int, N: int, r: float):
    """``(gap, primal, bound)`` per image from the float64 sums ``TV(u)``, ``sum(|grad u| - <grad u, p>)``
    and ``||div p||^2`` of a dual iterate of ``C`` channels of ``N`` pixels, each ``(B,)``; ``bound``
    bounds the round-off (unit roundoff ``r``) of the gap as evaluated with ``gf`` (FGP: ``grad u = lam
    (8 gf + grad div p)``; ``af`` the l1 norm of ``grad f``), None without ``af``.

    Plain arithmetic, so that it runs on NumPy arrays (:func:`_gap_and_bound`) and on tensors inside
    the compiled gap kernel alike.
    """
    gap = lam * (slack + abs(slack)) * 0.5              # lam * max(slack, 0), exactly
    primal = 0.5 * div_sq * lam * lam + lam * tv_u
    if af is None:
        return gap, primal, None
    # Per pixel, g = lam (grad div p + 8 gf) is off by at most r (37 lam + |grad f| + 2 |g|): div p by 9 r
    # (|p| <= 1), its differences by 26 r, gf by one rounding; |g| and <g, p> then add about
    # (2 + 2C) r |g|, and the error of g enters |g| - <g, p> at most twice.  Summed over pixels
    # (|grad f| <= its l1 norm, af), plus the summation's own error:
    bound = lam * r * (2.5 * af + (8.0 + 4.0 * C) * tv_u + 80.0 * C * N * lam) + 20.0 * r * gap
    return gap, primal, bound


def _gap_and_bound(s, f, lam, tv_u, slack, div_sq):
    """:func:`_gap_terms` of the eager dual methods' sums, as float64 tensors on ``f``'s device."""
    # On B numbers per check: NumPy float64 on the host, about 5x less overhead than as many tiny torch ops.
    host = [None if x is None else x.detach().reshape(-1).to("cpu", torch.float64).numpy()
            for x in (lam, tv_u, slack, div_sq, s.get("af"))]
    terms = _gap_terms(*host, f.shape[1], f[0, 0].numel(), torch.finfo(f.dtype).eps / 2)
    return tuple(None if x is None else torch.from_numpy(x).to(f.device) for x in terms)


def _generic_gap(extract):
    def gap(s, f, lam, channelwise):
        u, p = extract(s, f, lam, channelwise)
        g, primal = _duality_gap(f, u, p, lam, channelwise)
        return u, p, g, primal, None

    return gap


# --------------------------------------------------------------------------- methods
# Each method is (init, step, gap): init(f, lam, p0) -> state dict of per-image
# tensors; step(state, f, lam) advances one iteration in place; gap(state, f, lam)
# -> (u, p, gap, primal) with p feasible.  The driver below handles batching and stopping.


def _chambolle_init(f, lam, p0, channelwise):
    p = _zero_unused(p0.clone(memory_format=torch.contiguous_format))
    return {"p": p, "fl": f / lam, "v": _new(f), "z": _new(p, zero=True), "n": _norm_buffer(f, channelwise)}


def _chambolle_step(s, f, lam, channelwise, tau=0.25):
    # Chambolle (2004) semi-implicit projection on min ||div p + f/lam||^2, |p| <= 1:
    # p <- (p + tau g) / (1 + tau |g|) with g = grad(div p + f/lam).
    p = s["p"]
    v = _div_into(p, s["v"]).add_(s["fl"])
    g = _grad_into(v, s["z"])
    n = _norm_into(g, s["n"], channelwise)
    p.add_(g, alpha=tau).div_(n.mul_(tau).add_(1.0))


def _k_fgp_data(f, lam):
    """``(g0, g1, af)`` for FGP: the components of ``gf = grad(f) / (8 lam)`` (``(B, C, H, W)`` each in
    ``f``'s dtype, zero where unused) and ``||grad f||_1`` per image (float64).  Pure, for the eager
    and the compiled FGP alike.

    ``gf`` is formed in float64: the step adds it to O(1) terms instead of differencing
    ``f / (8 lam)``, whose round-off (eps |f| / lam) would set a float32 floor on the gap near
    1e-5 instead of 1e-7.  ``af`` is for the round-off bound of the gap (:func:`_gap_terms`).
    """
    fd, scale = f.double(), 8.0 * lam.double()
    d0 = _k_pad(fd[..., 1:, :] - fd[..., :-1, :], 0, 0, 0, 1)
    d1 = _k_pad(fd[..., :, 1:] - fd[..., :, :-1], 0, 1, 0, 0)
    af = (d0.abs() + d1.abs()).flatten(1).sum(1)
    return (d0 / scale).to(f.dtype), (d1 / scale).to(f.dtype), af


def _fgp_init(f, lam, p0, channelwise):
    p = _zero_unused(p0.clone(memory_format=torch.contiguous_format))
    g0, g1, af = _k_fgp_data(f, lam)
    gf = torch.stack([g0, g1], 2)
    return {"p": p, "q": p.clone(), "t": torch.ones_like(lam), "gf": gf, "af": af,
            "v": _new(f), "z": _new(p, zero=True), "d": _new(p),
            "n": _norm_buffer(f, channelwise)}


def _fgp_step(s, f, lam, channelwise):
    # Beck & Teboulle (2009) fast gradient projection on the dual, step 1/(8 lam^2),
    # with gradient-based adaptive restart (O'Donoghue & Candes 2015):
    #   p_new = proj(q + grad(f + lam div q) / (8 lam)),  q <- p_new + beta (p_new - p).
    p, q, z = s["p"], s["q"], s["z"]
    v = _div_into(q, s["v"]).mul_(0.125)
    _grad_into(v, z).add_(q).add_(s["gf"])  # q + grad(f + lam div q) / (8 lam)
    _project_(z, s["n"], channelwise)  # z = p_new
    step = torch.sub(z, p, out=s["d"])
    # Restart where the momentum points uphill: <q - p_new, p_new - p> > 0.
    uphill = (_bdot(q.sub_(z), step) > 0).reshape(-1, 1, 1, 1)
    t = s["t"]
    t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
    t_new = torch.where(uphill, torch.ones_like(t_new), t_new)
    beta = torch.where(uphill, torch.zeros_like(t), (t - 1.0) / t_new).unsqueeze(-1)
    torch.addcmul(z, beta, step, out=q)
    s["p"], s["z"], s["t"] = z, p, t_new


def _pdhg_init(f, lam, p0, channelwise):
    u = f + lam * div(p0)
    # tau0 * sigma0 * ||grad||^2 = 1 with ||grad||^2 <= 8; tau0 = 1 was the fastest of
    # 0.01..4 on natural 64x64 crops with lam in {0.02, 0.1, 0.5}.
    tau = torch.ones_like(lam)
    return {"u": u, "ubar": u.clone(), "p": p0.clone(), "tau": tau}


def _pdhg_step(s, f, lam, channelwise):
    # Chambolle & Pock (2011) Algorithm 2 (strong convexity of the data term, gamma = 1),
    # written for the scaled dual p = y / lam.
    tau = s["tau"]
    sigma = 1.0 / (8.0 * tau)
    p = _project(s["p"] + (sigma / lam).unsqueeze(-1) * grad(s["ubar"]), channelwise)
    u_old = s["u"]
    u = (u_old + tau * (lam * div(p) + f)) / (1.0 + tau)
    theta = 1.0 / torch.sqrt(1.0 + 2.0 * tau)
    s["ubar"] = u + theta * (u - u_old)
    s["u"], s["p"], s["tau"] = u, p, theta * tau


def _pdhg_extract(s, f, lam, channelwise):
    return s["u"], s["p"]


def _dct_matrix(n: int, dtype, device) -> torch.Tensor:
    """Orthonormal DCT-II matrix; its rows diagonalise the 1-D Neumann Laplacian."""
    k = torch.arange(n, dtype=torch.float64)
    c = torch.cos(torch.pi * k[:, None] * (k[None, :] + 0.5) / n) * (2.0 / n) ** 0.5
    c[0] /= 2.0**0.5
    return c.to(dtype=dtype, device=device)


def _admm_init(f, lam, p0, channelwise):
    H, W = f.shape[-2:]
    ch, cw = _dct_matrix(H, f.dtype, f.device), _dct_matrix(W, f.dtype, f.device)
    eig_h = 2.0 - 2.0 * torch.cos(torch.pi * torch.arange(H, dtype=f.dtype, device=f.device) / H)
    eig_w = 2.0 - 2.0 * torch.cos(torch.pi * torch.arange(W, dtype=f.dtype, device=f.device) / W)
    # Penalty proportional to lam; 128 * lam was the fastest of 0.1..512 on natural crops.
    rho = 128.0 * lam
    u = f + lam * div(p0)
    b = p0 * (lam / rho).unsqueeze(-1)
    return {"u": u, "d": grad(u), "b": b, "rho": rho, "ch": ch, "cw": cw,
            "eig": eig_h[:, None] + eig_w[None, :]}


def _admm_step(s, f, lam, channelwise):
    # Split Bregman / ADMM (Goldstein & Osher 2009) on d = grad u; the u-update
    # (I - rho * laplacian) u = f - rho * div(d - b) is solved exactly by the DCT.
    rho = s["rho"]
    rhs = f - rho * div(s["d"] - s["b"])
    ch, cw = s["ch"], s["cw"]
    spec = ch @ rhs @ cw.T
    u = ch.T @ (spec / (1.0 + rho * s["eig"])) @ cw
    gb = grad(u) + s["b"]
    n = gradient_norm(gb, channelwise=channelwise).unsqueeze(-3)
    d = gb * torch.clamp(1.0 - (lam / rho).unsqueeze(-1) / torch.clamp(n, min=1e-30), min=0.0)
    s["b"] = gb - d
    s["u"], s["d"] = u, d


def _admm_extract(s, f, lam, channelwise):
    return s["u"], _project(s["b"] * (s["rho"] / lam).unsqueeze(-1), channelwise)


# --------------------------------------------------------------------------- any grid
# The same methods on a :class:`~pdeflow.tv._grid.Grid` other than the 2-D unit one (volumes, spacing):
# fields (B, C, K, *spatial), lam shaped (B, 1, ..., 1) like f, and every step size scaled by the bound
# L = ||div||^2 <= 4 sum_k 1 / h_k^2 (8 on the 2-D unit grid, where these reduce to the methods above).


def _bc(t: torch.Tensor) -> torch.Tensor:
    """A per-image (B, 1, ..., 1) tensor shaped for a field (one more axis)."""
    return t.unsqueeze(-1)


def _nd_gap(s, f, lam, channelwise):
    grid = s["grid"]
    p = s["p"]
    u = s["u"] if "u" in s else f + lam * grid.div(p)
    g, primal = _duality_gap(f, u, p, lam, channelwise, grid)
    return u, p, g, primal, None


def _nd_chambolle_init(grid):
    def init(f, lam, p0, channelwise):
        return {"p": p0.clone(), "fl": f / lam, "grid": grid, "tau_nd": 2.0 / grid.lipschitz}
    return init


def _nd_chambolle_step(s, f, lam, channelwise):
    # Chambolle (2004) with tau = 2 / L (1/4 on the 2-D unit grid, 1/(2 ndim) in scikit-image's n-D code).
    grid, p, tau = s["grid"], s["p"], s["tau_nd"]
    g = grid.grad(grid.div(p) + s["fl"])
    p.add_(g, alpha=tau).div_(grid.norm(g, channelwise).mul_(tau).add_(1.0))


def _nd_fgp_init(grid):
    def init(f, lam, p0, channelwise):
        L = grid.lipschitz
        gf = (grid.grad(f.double()) / (L * _bc(lam.double()))).to(f.dtype)
        return {"p": p0.clone(), "q": p0.clone(), "t": torch.ones_like(lam), "gf": gf, "grid": grid, "L": L}
    return init


def _nd_fgp_step(s, f, lam, channelwise):
    # _fgp_step with the step 1 / (L lam^2): p_new = proj(q + grad(f + lam div q) / (L lam)).
    grid, p, q = s["grid"], s["p"], s["q"]
    z = grid.project(q + grid.grad(grid.div(q) / s["L"]) + s["gf"], channelwise)
    step = z - p
    uphill = (_bdot(q - z, step) > 0).reshape(lam.shape)
    t = s["t"]
    t_new = torch.where(uphill, torch.ones_like(t), 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t)))
    beta = torch.where(uphill, torch.zeros_like(t), (t - 1.0) / t_new)
    s["q"], s["p"], s["t"] = z + _bc(beta) * step, z, t_new


def _nd_pdhg_init(grid):
    def init(f, lam, p0, channelwise):
        u = f + lam * grid.div(p0)
        return {"u": u, "ubar": u.clone(), "p": p0.clone(), "tau": torch.ones_like(lam), "grid": grid}
    return init


def _nd_pdhg_step(s, f, lam, channelwise):
    # _pdhg_step with tau * sigma * L = 1.
    grid, tau = s["grid"], s["tau"]
    sigma = 1.0 / (grid.lipschitz * tau)
    p = grid.project(s["p"] + _bc(sigma / lam) * grid.grad(s["ubar"]), channelwise)
    u_old = s["u"]
    u = (u_old + tau * (lam * grid.div(p) + f)) / (1.0 + tau)
    theta = 1.0 / torch.sqrt(1.0 + 2.0 * tau)
    s["ubar"] = u + theta * (u - u_old)
    s["u"], s["p"], s["tau"] = u, p, theta * tau


# The methods that run on any grid, and what they are on the 2-D unit grid.
_ND_METHODS = {"chambolle": (_nd_chambolle_init, _nd_chambolle_step),
               "fgp": (_nd_fgp_init, _nd_fgp_step),
               "pdhg": (_nd_pdhg_init, _nd_pdhg_step)}
ND_METHODS = tuple(_ND_METHODS)


# --------------------------------------------------------------------------- compiled FGP
# The same FGP iteration and gap as pure functions of whole tensors, for torch.compile (``compile=True``):
# two fused loops per iteration instead of ~20 passes over the arrays.  The field's two components are
# kept as separate (B, C, H, W) tensors (one loop then writes both), and the momentum point
# q = p + beta (p - p_prev) is formed inside the loop, so the state is (p, p_prev, beta, t).  Every
# tensor they take has row-major strides (compiled graphs are specialised to strides).


def _k_pad(x, left: int, right: int, top: int, bottom: int):
    return torch.nn.functional.pad(x, (left, right, top, bottom))


def _k_div(q0, q1):
    """``div`` of the field ``(q0, q1)``, each ``(B, C, H, W)`` with zero unused entries."""
    return q0 + q1 - _k_pad(q0[..., :-1, :], 0, 0, 1, 0) - _k_pad(q1[..., :, :-1], 1, 0, 0, 0)


def _k_fgp_step(p0, p1, pp0, pp1, beta, t, g0, g1, channelwise: bool):
    """One iteration of :func:`_fgp_step` on split components: ``(p0, p1, beta, t)`` of the next one."""
    q0 = p0 + beta * (p0 - pp0)
    q1 = p1 + beta * (p1 - pp1)
    v = 0.125 * _k_div(q0, q1)
    z0 = q0 + _k_pad(v[..., 1:, :] - v[..., :-1, :], 0, 0, 0, 1) + g0
    z1 = q1 + _k_pad(v[..., :, 1:] - v[..., :, :-1], 0, 1, 0, 0) + g1
    sq = z0 * z0 + z1 * z1
    r = torch.rsqrt(torch.clamp_min(sq if channelwise else sq.sum(1, keepdim=True), 1.0))
    z0, z1 = z0 * r, z1 * r
    uphill = (((q0 - z0) * (z0 - p0) + (q1 - z1) * (z1 - p1)).flatten(1).sum(1) > 0).reshape(-1, 1, 1, 1)
    t_new = torch.where(uphill, torch.ones_like(t), 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t)))
    return z0, z1, torch.where(uphill, torch.zeros_like(beta), (t - 1.0) / t_new), t_new


def _k_fgp_gap(p0, p1, lam, g0, g1, af, channelwise: bool):
    """:func:`_gap_terms` ``(gap, primal, bound)`` per image (float64) of the iterate ``(p0, p1)``, from
    the sums of :func:`_dual_gap`."""
    d = _k_div(p0, p1)
    a0 = (_k_pad(d[..., 1:, :] - d[..., :-1, :], 0, 0, 0, 1) + 8.0 * g0) * lam
    a1 = (_k_pad(d[..., :, 1:] - d[..., :, :-1], 0, 1, 0, 0) + 8.0 * g1) * lam
    sq, align = a0 * a0 + a1 * a1, a0 * p0 + a1 * p1
    if not channelwise:
        sq, align = sq.sum(1, keepdim=True), align.sum(1, keepdim=True)
    gn = torch.sqrt(sq)
    # Summed over (C, H, W) rather than flattened first: the sums then share the pixel loop of the terms.
    sums = (gn.sum((1, 2, 3)), (gn - align).sum((1, 2, 3)), (d * d).sum((1, 2, 3)))
    B, C, H, W = p0.shape
    return _gap_terms(lam.reshape(B).double(), *(x.double() for x in sums), af, C, H * W,
                      torch.finfo(p0.dtype).eps / 2)


def _k_fgp_split(p):
    """The components of the field ``p`` (B, C, 2, H, W) as row-major ``(B, C, H, W)`` tensors with zero
    unused entries."""
    return (_k_pad(p[:, :, 0, :-1, :], 0, 0, 0, 1).contiguous(),
            _k_pad(p[:, :, 1, :, :-1], 0, 1, 0, 0).contiguous())


def _k_fgp_result(f, lam, p0, p1):
    """``(u, p)``: ``u = f + lam div p`` and the field ``p`` as one ``(B, C, 2, H, W)`` tensor."""
    return f + lam * _k_div(p0, p1), torch.stack([p0, p1], 2)


class CompileWarning(RuntimeWarning):
    """``compile=True`` could not compile the solver's kernels; it runs them uncompiled.

    Examples
    --------
    >>> from pdeflow.tv import CompileWarning
    >>> issubclass(CompileWarning, RuntimeWarning)
    True
"""


_KERNELS = {"data": _k_fgp_data, "split": _k_fgp_split, "step": _k_fgp_step, "gap": _k_fgp_gap,
            "result": _k_fgp_result}
_compiled: dict[str, Callable] = {}


def _kernel(name: str) -> Callable:
    """The kernel ``name`` compiled by torch.compile (at its first call; again for a new image size,
    dtype or ``channelwise``, and twice as the batch shrinks: a symbolic batch size, and one image), or
    the plain function, with a :class:`CompileWarning`, where torch.compile does not work (no C++
    compiler, say)."""
    fn = _compiled.get(name)
    if fn is not None:
        return fn
    compiled = torch.compile(_KERNELS[name])  # static shapes first, a symbolic batch size on the next

    def first_call(*args):
        try:
            out = compiled(*args)
        except Exception as exc:  # noqa: BLE001 - any failure to compile falls back to the same functions
            warnings.warn(f"compile=True: torch.compile failed ({type(exc).__name__}: {_first_line(exc)}); "
                          "running the FGP kernels uncompiled", CompileWarning, stacklevel=2)
            _compiled.update(_KERNELS)          # all of them: one warning, not one per kernel
            return _KERNELS[name](*args)
        _compiled[name] = compiled
        return out

    return first_call


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _fgpc_init(f, lam, p0, channelwise):
    # The components as row-major (B, C, H, W) tensors with zero unused entries; p_prev zeros (distinct
    # tensors: aliased inputs would be another graph), as beta = 0 at first makes its values irrelevant.
    g0, g1, af = _kernel("data")(f, lam)
    q0, q1 = _kernel("split")(p0)
    B = f.shape[0]
    return {"p0": q0, "p1": q1, "pp0": torch.zeros_like(q0), "pp1": torch.zeros_like(q1),
            "beta": f.new_zeros(B, 1, 1, 1), "t": f.new_ones(B, 1, 1, 1), "g0": g0, "g1": g1, "af": af}


def _plain(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself if it has the row-major strides of its shape (size-1 dimensions included: compiled
    graphs are specialised to strides), else a copy that does."""
    expect, acc = [], 1
    for n in reversed(x.shape):
        expect.append(acc)
        acc *= n
    return x if tuple(reversed(expect)) == x.stride() else x.new_empty(x.shape).copy_(x)


def _fgpc_step(s, f, lam, channelwise):
    z0, z1, s["beta"], s["t"] = _kernel("step")(s["p0"], s["p1"], s["pp0"], s["pp1"], s["beta"], s["t"],
                                                s["g0"], s["g1"], channelwise)
    s["pp0"], s["pp1"], s["p0"], s["p1"] = s["p0"], s["p1"], z0, z1     # the kernel's outputs are row-major


def _fgpc_gap(s, f, lam, channelwise):
    return (None, None) + _kernel("gap")(s["p0"], s["p1"], lam, s["g0"], s["g1"], s["af"], channelwise)


def _fgpc_result(s, f, lam):
    """``(u, p)`` of the current iterate, ``p`` as one ``(B, C, 2, H, W)`` field."""
    return _kernel("result")(f, lam, s["p0"], s["p1"])


_COMPILED_METHODS = {"fgp": (_fgpc_init, _fgpc_step, _fgpc_gap)}

_METHODS: dict[str, tuple[Callable, Callable, Callable]] = {
    "chambolle": (_chambolle_init, _chambolle_step, _dual_gap),
    "fgp": (_fgp_init, _fgp_step, _dual_gap),
    "pdhg": (_pdhg_init, _pdhg_step, _generic_gap(_pdhg_extract)),
    "admm": (_admm_init, _admm_step, _generic_gap(_admm_extract)),
}

# Per-image state entries that are shared constants rather than batched tensors.
_SHARED_STATE = ("ch", "cw", "eig", "grid", "tau_nd", "L")


# --------------------------------------------------------------------------- driver


def _as_image(f, name: str = "f") -> torch.Tensor:
    """``f`` as a tensor: a NumPy array or a (nested) list of numbers is converted (its own float dtype,
    integers as float64); anything else raises UserInputError naming ``name``."""
    if isinstance(f, torch.Tensor):
        return f
    try:
        t = torch.as_tensor(f)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UserInputError(f"{name} must be a torch.Tensor, a NumPy array or a list of numbers, "
                             f"got {type(f).__name__} ({exc})") from None
    return t if t.is_floating_point() else t.double()


def _check_image(f: torch.Tensor, name: str = "f", ndim: int = 2) -> None:
    if not isinstance(f, torch.Tensor):
        raise UserInputError(f"{name} must be a torch.Tensor, got {type(f).__name__}")
    if ndim == 3 and f.dim() not in (3, 4, 5):
        raise UserInputError(f"{name} must have shape (D, H, W), (C, D, H, W) or (B, C, D, H, W) with ndim=3, "
                             f"got {tuple(f.shape)}")
    if ndim == 2 and f.dim() not in (2, 3, 4):
        raise UserInputError(f"{name} must have shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(f.shape)}")
    if not f.is_floating_point():
        raise UserInputError(f"{name} must be a floating-point tensor, got dtype {f.dtype}")
    if f.numel() == 0:
        raise UserInputError(f"{name} must be a non-empty image batch (B, C, H >= 1, W >= 1 all > 0), "
                             f"got shape {tuple(f.shape)}")
    if f.device.type == "meta":
        raise UserInputError(f"{name} is on the 'meta' device, which holds no values; pass a tensor on a "
                             "real device (cpu, cuda, ...)")
    if not bool(torch.isfinite(f).all()):
        raise UserInputError(f"{name} contains NaN or inf values")


def _per_image(value, batch: int, like: torch.Tensor, name: str) -> torch.Tensor:
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
        raise UserInputError(f"{name} must be finite and >= 0, got {v.tolist() if batch <= 8 else 'values out of range'}")
    return v.reshape(batch, 1, 1, 1).clone()


@auto_threads
def rof(
    f: torch.Tensor,
    lam,
    *,
    method: str = "fgp",
    tol: float = 1e-6,
    max_iter: int = 20000,
    p0: torch.Tensor | None = None,
    channelwise: bool = False,
    check_every: int = 5,
    full_output: bool = False,
    compile: bool = False,
    ndim: int | None = None,
    spacing=None,
):
    """Solve ``argmin_u 1/2 ||u - f||^2 + lam * TV(u)`` for each image (or volume) of a batch.

    One implicit Euler step of size ``dt`` of the TV flow is ``rof(u, dt)``.
    scikit-image's ``denoise_tv_chambolle(f, weight=lam)`` solves the same problem
    with the same discretisation.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W); with ``ndim=3`` (D, H, W), (C, D, H, W) or (B, C, D, H, W)
        Data, any floating dtype and device; intensities are taken as given.
    lam : float or Tensor of shape (B,)
        Regularisation weight(s), ``>= 0``, in units of length (pixels at unit spacing; see Notes).
    method : {"fgp", "pdhg", "chambolle", "admm"}
        ``"fgp"``: fast gradient projection on the dual with adaptive restart
        (default, fastest here); ``"pdhg"``: Chambolle-Pock with the
        strong-convexity acceleration; ``"chambolle"``: Chambolle's 2004
        projection (the paper's reference algorithm, slow to converge tightly);
        ``"admm"``: split Bregman with an exact DCT solve (independent cross-check;
        2-D with unit spacing only: on volumes or with ``spacing`` it is refused,
        the other three run, see ``ND_METHODS``).
    tol : float
        Stop each image when its relative duality gap ``(P - D) / P <= tol``.
        This bounds ``||u - u*||_2 <= sqrt(2 * tol * P(u))``.  Below float64 the
        gap is evaluated in the working precision where a bound on its round-off
        shows that to be accurate to within ``tol`` (``"fgp"``; the exact gap is
        then at most ``2 * tol``: float32 decides ``tol`` down to about 2e-6 on
        natural images), and re-evaluated in float64 where not.
    max_iter : int
        Iteration cap per image; images that hit it are returned as they are
        (their final gap is reported in ``full_output``).
    p0 : Tensor, shape (B, C, 2, H, W) (volumes: (B, C, 3, D, H, W)), optional
        Warm start for the dual field (projected onto ``|p| <= 1``).
    channelwise : bool
        For ``C > 1``: False (default) couples channels (vectorial TV), True
        treats them independently.
    check_every : int
        Iterations between duality-gap evaluations.
    full_output : bool
        If True return a :class:`RofResult` (with dual field, iteration counts and
        gaps) instead of the image alone.
    compile : bool
        Run the ``"fgp"`` iterations and gap checks as kernels compiled by
        ``torch.compile`` (one fused loop each instead of ~20 array passes): the
        same iterates up to round-off, several times faster per iteration, after a
        one-time compilation per process (tens of seconds; PyTorch caches it on
        disk).  Pays off for long solves and :func:`~pdeflow.tv.tv_flow`, not for
        one small image.  Where torch.compile does not work (no C++ compiler) the
        kernels run uncompiled, with a :class:`CompileWarning`.  Ignored by the
        other methods, and on volumes or with ``spacing`` (the compiled kernels
        are 2-D on the unit grid).
    ndim : {2, 3}, optional
        Number of spatial axes.  ``3``: ``f`` is a volume ``(D, H, W)``,
        ``(C, D, H, W)`` or ``(B, C, D, H, W)`` and TV is the 3-D isotropic TV
        (forward differences along D, H and W, as :mod:`pdeflow.ops` with
        ``ndim=3``).  Default: 2, or 3 when ``spacing`` has three entries.  A
        tensor is a volume only when the call says so.
    spacing : float or sequence, optional
        Grid spacing ``(dy, dx)`` or ``(dz, dy, dx)`` (a number: the same on
        every axis), ``> 0``; default unit.  Enters the gradient as in
        :mod:`pdeflow.ops` (difference / ``h_k``); see Notes for the energy.

    Returns
    -------
    Tensor of the shape of ``f``, or :class:`RofResult`.

    Warns
    -----
    ConvergenceWarning
        Once per call, when any image stops at ``max_iter`` with its relative gap
        still above ``tol`` (how many, and the largest gap reached).
        It also warns when images stop at the round-off floor of their dtype above
        ``tol`` (``full_output``'s ``converged`` and ``gap`` say which and where),
        and up front when ``tol`` is below a few units of the dtype's round-off.
        float16 and bfloat16 inputs are solved in float32 and returned in their dtype.

    Notes
    -----
    **Volumes and spacing.**  With grid spacing ``h = (h_1, ..., h_n)`` the
    energy is the Riemann sum of the continuum one over the voxel cells,
    ``E(u) = prod(h) * [1/2 sum (u - f)^2 + lam * sum |grad_h u|]`` with
    ``grad_h`` the forward differences divided by ``h_k`` (so
    ``prod(h) sum |grad_h u|`` is ``pdeflow.ops.tv(u, spacing=h)``): the same
    voxel weight on both terms, so it does not change the minimiser, and
    ``lam`` has units of length (it is a time of the TV flow, as at unit
    spacing).  Halving the spacing of a fixed continuum image keeps the
    solution.  scikit-image's ``denoise_tv_chambolle(f, weight=w)`` (n-D,
    unit spacing) minimises ``1/2 sum (u - f)^2 + w sum |grad u|`` with the
    same differences: it is ``rof(f, w, ndim=f.ndim)`` at unit spacing, and
    ``rof(f, lam, spacing=(h,) * n)`` for an isotropic spacing ``h`` equals it
    with ``w = lam / h``.  The step sizes use ``||div||^2 <= 4 sum 1 / h_k^2``;
    the relative duality gap (the stopping rule) is that of ``E``, the voxel
    weight cancelling.

    **Derivatives.**  ``rof`` is differentiable with respect to ``f`` and ``lam`` (a
    float, or a 0-d or ``(B,)`` tensor with ``requires_grad``) by implicit
    differentiation at the computed solution, for every method: nothing of the
    iterations is kept (memory of a few images), and the backward pass solves a
    linear system by projected conjugate gradients, each image stopping on its own
    at a relative residual ``max(tol, 50 eps)`` (``max_iter`` iterations at most;
    :class:`ConvergenceWarning` otherwise).  With ``D = grad``, the solution
    satisfies ``u = f + lam div p`` with ``p = grad u / |grad u|`` where
    ``grad u != 0`` (set ``I``) and ``|p| <= 1`` on the flat pixels (set ``J``).
    The prox of the TV is not differentiable where this structure changes; the
    element of the generalised Jacobian returned everywhere is the derivative
    with the structure held fixed: **flat regions stay tied** (the derivative is
    constant on every connected component of pixels of zero gradient, each flat
    pixel tied to its right and lower neighbours; pixels count as flat where
    ``|grad u|`` is at most ``max(0.1 sqrt(tol), 100 eps)`` times the range of
    ``u``), and on ``I`` the derivative of ``grad u / |grad u|`` enters.  This is
    the Jacobian of the map wherever the structure is stable under small
    perturbations (almost every input), and there it matches finite differences
    (``tests/test_tv_autograd.py``).  It is symmetric in ``f``; ``d u / d lam``
    is that Jacobian applied to ``div p``.  The dual field ``p``, the iteration
    counts and the gaps of ``full_output`` carry no gradient.  ``p0`` does not
    change the solution and gets none.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import rof
    >>> f = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4, dtype=torch.float64)
    >>> rof(f, 0.25, tol=1e-12)[0]
    tensor([0.1250, 0.1250, 0.8750, 0.8750], dtype=torch.float64)
    >>> x = f.clone().requires_grad_()
    >>> rof(x, 0.25, tol=1e-12)[0, 0].backward()   # the left half is one flat region
    >>> x.grad[0]
    tensor([0.1250, 0.1250, 0.0000, 0.0000], dtype=torch.float64)

    A volume (``ndim=3``), here a 2-voxel-thick slab, with anisotropic voxels:

    >>> v = torch.zeros(4, 4, 4, dtype=torch.float64)
    >>> v[:2] = 1.0
    >>> rof(v, 0.25, ndim=3, tol=1e-12)[:, 0, 0]
    tensor([0.8750, 0.8750, 0.1250, 0.1250], dtype=torch.float64)
    >>> rof(v, 0.25, spacing=(2.0, 1.0, 1.0), tol=1e-12)[:, 0, 0]
    tensor([0.9375, 0.9375, 0.0625, 0.0625], dtype=torch.float64)
    """
    f = _as_image(f)
    grid = make_grid(ndim, spacing)
    _check_image(f, ndim=grid.ndim)
    if not grid.plain and method not in _ND_METHODS and method in _METHODS:
        raise UserInputError(f"method={method!r} runs on 2-D images with unit spacing only; for ndim=3 or a "
                             f"spacing use one of {ND_METHODS}")
    half = f.dtype in (torch.float16, torch.bfloat16)
    x = f.float() if half else f      # half precisions cannot resolve the gap: solved in float32
    if half and isinstance(p0, torch.Tensor):
        p0 = p0.float()
    check_tol(tol, x.dtype, "rof")
    lam_grad = isinstance(lam, torch.Tensor) and lam.requires_grad
    need_grad = torch.is_grad_enabled() and (x.requires_grad or lam_grad)
    res, short = _solve(x.detach() if need_grad else x, lam, method=method, tol=tol, max_iter=max_iter, p0=p0,
                        channelwise=channelwise, check_every=check_every, compile=compile, grid=grid)
    if bool(short.any()):
        warnings.warn(_short_message("rof", int(short.sum()), short.numel(), "image(s)",
                                     res.gap[short].max().item(), tol, max_iter, x.dtype,
                                     at_max_iter=int((res.iterations[short] >= max_iter).sum())),
                      ConvergenceWarning, stacklevel=3)  # past the auto_threads wrapper
    u = res.u
    if need_grad:
        u = differentiable(x, lam, u, res.p, tol=tol, max_iter=max_iter, channelwise=channelwise, grid=grid)
    if half:
        u = u.to(f.dtype)
        res = RofResult(u=u, p=res.p.to(f.dtype), iterations=res.iterations, gap=res.gap, converged=res.converged)
    elif need_grad:
        res = RofResult(u=u, p=res.p, iterations=res.iterations, gap=res.gap, converged=res.converged)
    return res if full_output else u


def check_tol(tol, dtype: torch.dtype, who: str) -> None:
    """Say up front (one :class:`ConvergenceWarning`) when a relative gap ``tol`` is below what ``dtype``
    can resolve: a few units of its round-off (the gap of a float32 iterate is re-evaluated in float64,
    but the iterate itself carries float32 round-off)."""
    if isinstance(tol, (int, float)) and 0 < tol < 4 * torch.finfo(dtype).eps:
        warnings.warn(f"{who}: tol={tol:g} is below the round-off of {dtype} (eps {torch.finfo(dtype).eps:.2g}); "
                      f"the solve will stop at its round-off floor above tol (solve in float64 for tighter gaps)",
                      ConvergenceWarning, stacklevel=4)


def differentiable(f: torch.Tensor, lam, u: torch.Tensor, p: torch.Tensor, *, tol: float, max_iter: int,
                   channelwise: bool, grid: Grid = PLAIN) -> torch.Tensor:
    """``u`` (the ROF solution of ``(f, lam)``, dual field ``p``) with the implicit derivative in ``f`` and
    ``lam`` attached: see :mod:`pdeflow.tv._implicit`.  ``f`` of any shape rof takes; ``lam`` a float,
    a 0-d or a ``(B,)`` tensor."""
    x = f.reshape((1,) * (grid.ndim + 2 - f.dim()) + tuple(f.shape))
    B = x.shape[0]
    if isinstance(lam, torch.Tensor):
        lam_b = lam.to(x.dtype).reshape(-1).expand(B)
    else:
        lam_b = torch.full((B,), float(lam), dtype=x.dtype, device=x.device)
    divp = div(p.detach()) if grid.plain else grid.div(p.detach())
    out = _RofGrad.apply(x, lam_b, u.reshape(x.shape).detach(), divp, (tol, max_iter, channelwise, grid))
    return out.reshape(f.shape)


class _RofGrad(torch.autograd.Function):
    """The ROF solution ``u`` (computed beforehand) as a function of ``(f, lam)``, differentiated
    implicitly at the solution (memory: a few images, whatever the iteration count)."""

    @staticmethod
    def forward(ctx, f, lam, u, divp, cfg):
        ctx.save_for_backward(u, divp, lam)
        ctx.cfg = cfg
        return u.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        u, divp, lam = ctx.saved_tensors
        tol, max_iter, channelwise, grid = ctx.cfg
        g = g.contiguous()
        w = g.clone()
        pos = torch.nonzero(lam > 0).reshape(-1)       # lam = 0 is the identity
        if pos.numel():
            eps = torch.finfo(u.dtype).eps
            up = u[pos]
            w_pos, _, conv = apply_jacobian(up, lam[pos], g[pos], channelwise=channelwise,
                                            threshold=flat_threshold(up, tol), rtol=max(tol, 50 * eps),
                                            max_iter=max_iter, grid=None if grid.plain else grid)
            w[pos] = w_pos
            if not bool(conv.all()):
                warnings.warn(f"rof backward: {int((~conv).sum())} of {conv.numel()} image(s) stopped at "
                              f"max_iter={max_iter} before the implicit-gradient solve reached rtol "
                              f"{max(tol, 50 * eps):g}", ConvergenceWarning, stacklevel=2)
        grad_f = w if ctx.needs_input_grad[0] else None
        grad_lam = _bdot(w, divp) if ctx.needs_input_grad[1] else None
        return grad_f, grad_lam, None, None, None


def _short_message(who: str, n: int, total: int, what: str, gap: float, tol: float, max_iter: int,
                   dtype: torch.dtype, at_max_iter: int | None = None) -> str:
    hint = "" if dtype == torch.float64 else ", or solve in float64 (lower precisions may not resolve such gaps)"
    at_max_iter = n if at_max_iter is None else at_max_iter
    if at_max_iter == n:
        where = f"stopped at max_iter={max_iter}"
    elif at_max_iter == 0:
        where = f"stopped at the round-off floor of {dtype}"
    else:
        where = f"stopped at max_iter={max_iter} ({at_max_iter}) or at the round-off floor of {dtype}"
    return (f"{who}: {n} of {total} {what} {where} short of tol={tol:g} "
            f"(largest relative duality gap reached: {gap:.2g}); raise max_iter or tol{hint}")


def _solve(f, lam, *, method, tol, max_iter, p0, channelwise, check_every, first_check=None, trusted=False,
           compile=False, grid: Grid = PLAIN):
    """:func:`rof` without the warning: ``(RofResult, short)``, ``short`` a (B,) bool tensor
    marking the images that stopped at ``max_iter`` short of ``tol``.

    ``first_check``: iterations before the first gap evaluation (default ``check_every``), for callers
    that know about how many a solve takes (the steps of :func:`~pdeflow.tv.tv_flow`).  ``trusted``: the
    caller has checked ``f`` (finite, 4-D) and ``p0`` (feasible, of the right shape and dtype), as
    :func:`~pdeflow.tv.tv_flow` does once per call instead of once per step.  ``grid``: the spatial
    grid (:mod:`pdeflow.tv._grid`); other than the 2-D unit grid, ``f`` has ``grid.ndim`` spatial axes
    and the methods of ``ND_METHODS`` run (uncompiled).
    """
    if not trusted:
        _check_image(f, ndim=grid.ndim)
    if method not in _METHODS:
        raise UserInputError(f"method must be one of {ROF_METHODS}, got {method!r}")
    if not grid.plain and method not in _ND_METHODS:
        raise UserInputError(f"method={method!r} runs on 2-D images with unit spacing only; for ndim=3 or a "
                             f"spacing use one of {ND_METHODS}")
    if not (tol > 0):
        raise UserInputError(f"tol must be > 0, got {tol}")
    if int(max_iter) < 1:
        raise UserInputError(f"max_iter must be >= 1, got {max_iter}")
    K = grid.ndim
    x = f.reshape((1,) * (K + 2 - f.dim()) + tuple(f.shape))
    B, C = x.shape[:2]
    spatial = tuple(x.shape[2:])
    lam_t = _per_image(lam, B, x, "lam").reshape((B,) + (1,) * (K + 1))
    if p0 is None:
        p = x.new_zeros(B, C, K, *spatial)
    elif trusted:
        p = p0
    else:
        if p0.shape != (B, C, K, *spatial):
            raise UserInputError(f"p0 must have shape {(B, C, K, *spatial)}, got {tuple(p0.shape)}")
        p = _project(p0.to(x), channelwise) if grid.plain else grid.project(p0.to(x), channelwise)

    # Converged images leave the working batch (the compiled kernels then recompile once for a symbolic
    # batch size, and once for a single image).
    compiled = compile and method in _COMPILED_METHODS and grid.plain
    if grid.plain:
        init, step, evaluate = (_COMPILED_METHODS if compiled else _METHODS)[method]
    else:
        init, step = _ND_METHODS[method]
        init, evaluate = init(grid), _nd_gap
    if compiled:
        x = _plain(x)
    iterations = torch.zeros(B, dtype=torch.long, device=x.device)
    gaps = torch.zeros(B, dtype=torch.float64, device=x.device)
    short = torch.zeros(B, dtype=torch.bool, device=x.device)
    out_u = out_p = None  # allocated once images finish at different times (or lam = 0)

    # lam = 0 is the identity (u = f); such images never enter the iteration.
    positive = lam_t.reshape(-1) > 0
    whole = bool(positive.all())
    active = torch.arange(B, device=x.device) if whole else torch.nonzero(positive).reshape(-1)
    fa, lam_a = (x, lam_t) if whole else (x[active], lam_t[active])
    if not whole:
        out_u, out_p = x.clone(), p.clone()
    # Round-off floor of the gap as evaluated in the working precision: once u is
    # constant to round-off (an image that has flowed to its mean), P and the gap are
    # both round-off of size ~ eps |f| per pixel and their ratio never falls.
    finfo = torch.finfo(x.dtype)
    N = x[0].numel()
    floor_a = (lam_a.reshape(-1).double() * N * 8 * finfo.eps
               * fa.abs().flatten(1).amax(1).double()) if active.numel() else lam_a.reshape(-1).double()
    # Below that floor a float64 input counts as converged.  Lower precisions
    # re-evaluate the gap of the same iterate in float64, which resolves it down to the
    # round-off of the iterate itself (|p| <= 1 to eps, so u to 4 lam eps): tol keeps its
    # meaning for float32 down to ~1e-7, and a constant image still stops at once.
    # Methods whose gap evaluation also returns a bound of its own round-off (fgp:
    # _dual_gap) decide in the working precision wherever that bound allows, and
    # verify in float64 only where it does not.
    exact = x.dtype == torch.float64
    floor64_a = lam_a.reshape(-1).double() ** 2 * N * 16 * finfo.eps
    state = init(fa, lam_a, p if whole else p[active], channelwise) if active.numel() else {}
    it = checks = 0
    first = check_every if first_check is None else max(1, int(first_check))
    while active.numel():
        n = min(first if checks == 0 else check_every, max_iter - it)
        for _ in range(n):
            step(state, fa, lam_a, channelwise)
        it += n
        # (u, p) of the iterate; the compiled gap leaves them in the state, formed below only where needed
        u, pa, gap, primal, bound = evaluate(state, fa, lam_a, channelwise)
        target = tol * primal
        rel = gap / primal.clamp_min(torch.finfo(torch.float64).tiny)
        if exact:
            converged = (rel <= tol) | (gap <= floor_a)
            verify = None
        elif bound is not None:
            # The gap is known to within +-bound.  Where that is at most the tolerance the working
            # precision decides (the exact relative gap is then <= 2 tol); elsewhere gaps that may meet
            # tol are re-evaluated in float64 (every fourth check where the gap is all round-off).
            resolved = bound <= target
            converged = (gap <= target) & resolved
            verify = ~resolved & (gap - bound <= target) & ((gap > bound) | (rel <= tol) | (checks % 4 == 0))
        else:
            converged = rel <= tol
            # Verify in float64 only where it can decide something: where float32 claims
            # convergence, or, every fourth check, where float32 cannot resolve the gap.
            verify = (gap <= floor_a) & ((rel <= tol) | (checks % 4 == 0))
        checks += 1
        if verify is not None and bool(verify.any()):
            if pa is None:
                u, pa = _fgpc_result(state, fa, lam_a)
            j = verify.nonzero().reshape(-1)
            f64, p64, lam64 = fa[j].double(), pa[j].double(), lam_a[j].double()
            div64 = div(p64) if grid.plain else grid.div(p64)
            gap64, primal64 = _duality_gap(f64, f64 + lam64 * div64, p64, lam64, channelwise, grid)
            rel[j] = gap64 / primal64.clamp_min(torch.finfo(torch.float64).tiny)
            converged[j] = (rel[j] <= tol) | (gap64 <= floor64_a[j]) | (primal64 <= floor_a[j])
        done = converged | (it >= max_iter)
        if pa is None and bool(done.any()):
            u, pa = _fgpc_result(state, fa, lam_a)
        if bool(done.all()) and out_u is None:
            # Every image finishes at this check: the state's tensors are the results.
            iterations[:], gaps[:], short[:] = it, rel, (rel > tol) & (primal > floor_a)
            return RofResult(u=u.reshape(f.shape), p=pa, iterations=iterations, gap=gaps, converged=~short), short
        if bool(done.any()):
            if out_u is None:
                out_u, out_p = x.clone(), p.clone()
            idx = active[done]
            out_u[idx], out_p[idx] = u[done], pa[done]
            iterations[idx], gaps[idx] = it, rel[done]
            # Short: above tol, at max_iter or at the round-off floor (an image constant to round-off, whose
            # objective is round-off itself, has met any tol).
            short[idx] = ((rel > tol) & (primal > floor_a))[done]
            keep = ~done
            active, fa, lam_a = active[keep], fa[keep], lam_a[keep]
            floor_a, floor64_a = floor_a[keep], floor64_a[keep]
            state = {k: (v if k in _SHARED_STATE else v[keep]) for k, v in state.items()}

    if out_u is None:  # no image entered the iteration (all lam = 0)
        out_u, out_p = x.clone(), p.clone()
    return RofResult(u=out_u.reshape(f.shape), p=out_p, iterations=iterations, gap=gaps, converged=~short), short
