"""The ROF solvers, one iteration at a time: Chambolle's projection, FGP, PDHG and ADMM on the 2-D unit
grid (fused in-place kernels; on any :class:`~pdeflow.tv._grid.Grid`: ``_rof_nd``); the duality gap they stop on.
:func:`pdeflow.tv.rof` drives them (batching and stopping).

FGP on the 2-D unit grid, on CPU tensors of float32 or float64 outside autograd, runs its iteration and gap
as the fused loops of the compiled extension ``_fgp_kernel`` (``_fgp_kernel.c``, built by ``pip install``):
one pass over the arrays per iteration instead of ~20, the same arithmetic; so do :func:`project` and the
float64 certificate :func:`gap_and_primal` there (one pass each instead of ~15); on volumes (any spacing) FGP and
the certificates run in the loops of ``_fgp_volume``.  Without the extension (an install without a C compiler),
or with the environment variable ``PDEFLOW_FUSED=0`` set before import, it runs the PyTorch path below, as it
does for CUDA tensors, 2-D grids with a spacing and autograd.

Every FGP here (and the compiled one of ``_rof_compiled``) takes its momentum and restart from
``_fgp.momentum`` and its gap and primal energy from ``_fgp.gap_terms``, the rules the block solver of
:mod:`pdeflow.tv.subdomain` uses too.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..ops import batch_sum, div, grad, gradient_norm
from ._fgp import gap_terms, momentum
from ._fgp_volume import volume_applies, volume_certificate, volume_solution_gap
from ._fused_rows import FUSED, kernel, row_ranges, run_ranges
from ._grid import PLAIN, Grid


def project(p: torch.Tensor, channelwise: bool, out: torch.Tensor | None = None) -> torch.Tensor:
    """Project a dual field ``(B, C, 2, H, W)`` onto the unit ball, pointwise; into ``out`` (``p`` itself: in place)
    where given."""
    if _plain_fused(p) and (out is None or (p.is_contiguous() and out.is_contiguous())):
        return _fused_project(p, channelwise, out)
    n = gradient_norm(p, channelwise=channelwise).unsqueeze(-3)  # (B, C|1, 1, H, W)
    return torch.div(p, torch.clamp(n, min=1.0), out=out)


def gap_and_primal(f, u, p, lam, channelwise, grid: Grid = PLAIN):
    """:func:`duality_gap` without its checks (the solvers' own calls); on ``grid`` (fields
    ``(B, C, K, *spatial)``) where it is not the 2-D unit grid.  Unweighted sums: the voxel volume
    multiplies both terms of the energy and cancels in the relative gap."""
    if grid.plain and _certify_fused(f, u, p, lam):
        return _fused_certificate(f, u, p, lam, channelwise)
    if (not grid.plain and f.dtype == torch.float64 and isinstance(lam, torch.Tensor) and u.shape == f.shape
            and lam.numel() in (1, f.shape[0]) and FUSED and volume_applies(grid, f, u, p, lam)):
        return volume_certificate(f, u, p, lam, channelwise, grid)
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


def bdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image inner product of two contiguous batched tensors, shape (B,)."""
    B = a.shape[0]
    return torch.linalg.vecdot(a.reshape(B, -1), b.reshape(B, -1))


def _sign_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image inner product for a sign test, shape (B,): a BLAS dot per image, without :func:`bdot`'s
    temporary (mapped and unmapped on every call at 2048²), unless the images are small and many."""
    B = a.shape[0]
    if B > 1 and a[0].numel() < (1 << 16):
        return bdot(a, b)
    return torch.stack([torch.dot(a[i].reshape(-1), b[i].reshape(-1)) for i in range(B)])


def _dual_gap(s, f, lam, channelwise):
    """(u, p, gap, primal) for the dual methods, where ``u = f + lam div p`` exactly.

    Same quantities as :func:`duality_gap` (its residual term is zero here), on the
    state's buffers: the gap is ``lam * sum(|grad u| - <grad u, p>)``, a sum of
    non-negative terms, and the fidelity is ``lam^2 ||div p||^2``.
    """
    if "pp" in s:
        return _fused_gap(s, f, lam, channelwise)
    p = s["p"]
    d = _div_into(p, _new(f))
    u = torch.addcmul(f, lam, d)
    if "gf" in s:
        # grad u = lam (8 gf + grad div p) with gf = grad(f) / (8 lam) formed from differences of f (k_fgp_data):
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
    return (u, p) + _gap_and_bound(s, f, lam, tv_u, slack, bdot(d, d))


def _gap_and_bound(s, f, lam, tv_u, slack, div_sq):
    """:func:`gap_terms` of the eager dual methods' sums, as float64 tensors on ``f``'s device."""
    # On B numbers per check: NumPy float64 on the host, with less overhead than as many tiny torch ops.
    host = [None if x is None else x.detach().reshape(-1).to("cpu", torch.float64).numpy()
            for x in (lam, tv_u, slack, div_sq, s.get("af"))]
    terms = gap_terms(*host, f.shape[1], f[0, 0].numel(), torch.finfo(f.dtype).eps / 2)
    return tuple(None if x is None else torch.from_numpy(x).to(f.device) for x in terms)


def generic_gap(extract):
    def gap(s, f, lam, channelwise):
        u, p = extract(s, f, lam, channelwise)
        g, primal = gap_and_primal(f, u, p, lam, channelwise)
        return u, p, g, primal, None

    return gap


# --------------------------------------------------------------------------- methods
# Each method is (init, step, gap): init(f, lam, p0) -> state dict of per-image
# tensors; step(state, f, lam) advances one iteration in place; gap(state, f, lam)
# -> (u, p, gap, primal) with p feasible.  The driver (``pdeflow.tv.rof.solve``) handles
# batching and stopping.


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


def k_pad(x, left: int, right: int, top: int, bottom: int):
    """``x`` zero-padded on its last two axes (a pure function: the eager and the compiled FGP share it)."""
    return torch.nn.functional.pad(x, (left, right, top, bottom))


def k_fgp_data(f, lam):
    """``(g0, g1, af)`` for FGP: the components of ``gf = grad(f) / (8 lam)`` (``(B, C, H, W)`` each in
    ``f``'s dtype, zero where unused) and ``||grad f||_1`` per image (float64).  Pure, for the eager
    and the compiled FGP alike.

    ``gf`` is the differences of ``f`` times ``1 / (8 lam)`` (rounded to ``f``'s dtype), in ``f``'s dtype, as the
    compiled loops form it: the step adds it to O(1) terms instead of differencing ``f / (8 lam)``, whose
    round-off (eps |f| / lam) would set a float32 floor on the gap near 1e-5 instead of 1e-7; a difference of
    two values of ``f`` is exact or within half an ulp of itself.  ``af`` is for the round-off bound of the gap
    (:func:`gap_terms`).
    """
    inv = (1.0 / (8.0 * lam.double())).to(f.dtype)
    d0 = k_pad((f[..., 1:, :] - f[..., :-1, :]) * inv, 0, 0, 0, 1)
    d1 = k_pad((f[..., :, 1:] - f[..., :, :-1]) * inv, 0, 1, 0, 0)
    fd = f.double()
    af = ((fd[..., 1:, :] - fd[..., :-1, :]).abs().flatten(1).sum(1)
          + (fd[..., :, 1:] - fd[..., :, :-1]).abs().flatten(1).sum(1))
    return d0, d1, af


def _fgp_init(f, lam, p0, channelwise):
    p = _zero_unused(p0.clone(memory_format=torch.contiguous_format))
    if fused_applies(f, lam, p):
        return _fused_init(f, lam, p)
    g0, g1, af = k_fgp_data(f, lam)
    gf = torch.stack([g0, g1], 2)
    return {"p": p, "q": p.clone(), "t": torch.ones_like(lam), "gf": gf, "af": af,
            "v": _new(f), "z": _new(p, zero=True), "d": _new(p),
            "n": _norm_buffer(f, channelwise)}


def _fgp_step(s, f, lam, channelwise):
    if "pp" in s:
        return _fused_step(s, channelwise)
    # Beck & Teboulle (2009) fast gradient projection on the dual, step 1/(8 lam^2),
    # with gradient-based adaptive restart (O'Donoghue & Candes 2015):
    #   p_new = proj(q + grad(f + lam div q) / (8 lam)),  q <- p_new + beta (p_new - p).
    p, q, z = s["p"], s["q"], s["z"]
    v = _div_into(q, s["v"]).mul_(0.125)
    _grad_into(v, z).add_(q).add_(s["gf"])  # q + grad(f + lam div q) / (8 lam)
    _project_(z, s["n"], channelwise)  # z = p_new
    step = torch.sub(z, p, out=s["d"])
    # Restart where the momentum points uphill: <q - p_new, p_new - p> > 0.
    uphill = (_sign_dot(q.sub_(z), step) > 0).reshape(-1, 1, 1, 1)
    t_new, beta = momentum(s["t"], uphill)
    torch.addcmul(z, beta.unsqueeze(-1), step, out=q)
    s["p"], s["z"], s["t"] = z, p, t_new


# --------------------------------------------------------------------------- the fused FGP (compiled)
# The state of the fused loops: the iterate p and the one before, pp (the momentum point q = p + beta (p - pp)
# is formed inside the loop: no pass to store it), a buffer z for the next iterate, and t, beta per image (B,).
# The loops take the tensors' addresses: every tensor they get is contiguous, of the state's dtype and shape,
# which _fused_tensors checks before each call.


def fused_applies(f: torch.Tensor, lam: torch.Tensor, p: torch.Tensor) -> bool:
    """Whether the fused loops run FGP on ``(f, lam, p)``: the extension is there, CPU tensors of float32 or
    float64, 2-D images, no gradient wanted."""
    return (FUSED and f.device.type == "cpu" and f.dtype in (torch.float32, torch.float64) and f.dim() == 4
            and lam.dtype == f.dtype and p.dtype == f.dtype
            and not (torch.is_grad_enabled() and (f.requires_grad or lam.requires_grad or p.requires_grad)))


def _fused_init(f, lam, p):
    # k_fgp_data's gf and af in one pass, written into the field's layout
    f = f.contiguous()
    B, C, H, W = f.shape
    lam_b = lam.reshape(B).contiguous()
    gf = torch.empty_like(p)
    ranges = row_ranges(B, C, H, W)
    af = torch.empty(len(ranges), B, dtype=torch.float64)
    head = (f.dtype == torch.float64, f.data_ptr(), lam_b.data_ptr(), gf.data_ptr())
    run_ranges(kernel.fgp_data, ranges, lambda k: head + (af[k].data_ptr(), B, C, H, W))
    return {"p": p, "pp": torch.empty_like(p), "z": torch.empty_like(p), "gf": gf,
            "af": af.sum(0) if len(ranges) > 1 else af[0],      # (a sum of one term is that term)
            "t": f.new_ones(B), "beta": f.new_zeros(B)}


def _fused_tensors(s, *more):
    """The state's fields and ``more`` (images), checked for the loops: contiguous, one dtype, matching shapes."""
    p = s["p"]
    B, C, K, H, W = p.shape
    for x in (s["pp"], s["z"], s["gf"]):
        if x.shape != p.shape or x.dtype != p.dtype or not x.is_contiguous() or x.device.type != "cpu":
            raise RuntimeError("fused FGP: inconsistent state")
    for x in more:
        if x.shape != (B, C, H, W) or x.dtype != p.dtype or not x.is_contiguous():
            raise RuntimeError("fused FGP: inconsistent state")
    for x in (s["t"], s["beta"]):
        if x.shape != (B,) or x.dtype != p.dtype or not x.is_contiguous():
            raise RuntimeError("fused FGP: inconsistent state")
    if not (p.is_contiguous() and K == 2 and H >= 1 and W >= 1):
        raise RuntimeError("fused FGP: inconsistent state")
    return B, C, H, W


class _Plan:
    """What the step of a fused state passes besides its fields, checked and formed once per state (a solve
    calls the step thousands of times): the shapes, the row ranges, the restart sums' buffer and the addresses of
    the three fields the iterates rotate through, of ``gf``, ``t`` and ``beta``. Held in the state as ``plan``
    (:data:`SHARED_STATE`): a state whose tensors were replaced (images leaving the batch) gets a new one."""

    __slots__ = ("tensors", "address", "threads", "B", "C", "H", "W", "ranges", "sums", "sums_at", "est", "est_at",
                 "lam", "lam_sq", "double", "tail", "est_rows")

    def __init__(self, s):
        self.B, self.C, self.H, self.W = _fused_tensors(s)
        self.tensors = tuple(s[k] for k in ("p", "pp", "z", "gf", "t", "beta"))
        self.address = {id(x): x.data_ptr() for x in self.tensors}
        self.threads = torch.get_num_threads()
        self.ranges = row_ranges(self.B, self.C, self.H, self.W)
        # (rows' addresses by arithmetic: iterating a tensor forms a view per row)
        self.sums = torch.empty(len(self.ranges), self.B, dtype=torch.float64)
        self.sums_at = [self.sums.data_ptr() + 8 * self.B * k for k in range(len(self.ranges))]
        # the step's gap estimate: its four sums per range and image, and lam^2 per image (of the lam it was for)
        self.est = torch.empty(len(self.ranges), self.B, 4, dtype=torch.float64)
        self.est_at = [self.est.data_ptr() + 32 * self.B * k for k in range(len(self.ranges))]
        # one range: its sums as NumPy views (every step rewrites them)
        self.est_rows = tuple(self.est[0].numpy().T) if len(self.ranges) == 1 else None
        self.lam = self.lam_sq = None
        self.double = self.tensors[0].dtype == torch.float64
        self.tail = (self.B, self.C, self.H, self.W)

    def fits(self, s):
        """Whether ``s`` still holds this plan's tensors (its fields in any order) and torch's thread count."""
        p, pp, z, gf, t, beta = self.tensors
        sp, spp, sz = s["p"], s["pp"], s["z"]
        return (s["gf"] is gf and s["t"] is t and s["beta"] is beta and self.threads == torch.get_num_threads()
                and (sp is p or sp is pp or sp is z) and (spp is p or spp is pp or spp is z)
                and (sz is p or sz is pp or sz is z))


def _fused_step(s, channelwise, lam=None, n=1):
    """:func:`_fgp_step` in the fused loops, ``n`` times: the same iteration (momentum point, div, grad, projection,
    restart), one pass over the fields. With ``lam`` (the solve's, ``(B, 1, 1, 1)``) it also returns the last step's
    gap estimate :func:`fgp_step_estimate` describes, ``(gap, primal)`` (NumPy ``(B,)``), or None where the loops do not
    form it (channels coupled by the projection)."""
    plan = s.get("plan")
    if plan is None or not plan.fits(s):
        plan = s["plan"] = _Plan(s)
    at = plan.address
    double = plan.double
    beta, t = at[id(s["beta"])], at[id(s["t"])]
    estimate = lam is not None and (channelwise or plan.C == 1)
    tail = plan.tail + (not channelwise,)
    if n > 1 and len(plan.ranges) == 1:      # one call for n steps (on small images a call costs a step)
        kernel.steps(double, at[id(s["p"])], at[id(s["pp"])], at[id(s["z"])], at[id(s["gf"])], t, beta,
                     plan.sums_at[0], plan.est_at[0] if estimate else 0, *tail, n)
        for _ in range(n % 3):
            s["p"], s["pp"], s["z"] = s["z"], s["p"], s["pp"]
        n = 0
    for k in range(n):
        p, pp, z = s["p"], s["pp"], s["z"]
        # gf held (rof's loop is faster reading it than forming it; the block solver forms it), no held duals
        head = (double, at[id(p)], at[id(pp)], 0, at[id(z)], at[id(s["gf"])], 0, 0, 0, beta)
        run_ranges(kernel.step, plan.ranges, lambda r: head + (plan.sums_at[r],) + tail,
                   (lambda r: (plan.est_at[r],)) if estimate and k == n - 1 else None)
        kernel.momentum(double, plan.sums_at[0], len(plan.ranges), plan.B, t, beta)
        s["p"], s["pp"], s["z"] = z, p, pp
    if not estimate:
        return None
    if plan.lam is not lam:
        plan.lam, plan.lam_sq = lam, lam.reshape(-1).double().square().numpy()
    slack, h_norm, v_sq, count = plan.est_rows or plan.est.sum(0).numpy().T
    if not count[0]:        # no row sampled (a short image): no estimate
        return None
    scale = plan.lam_sq * (plan.C * plan.H * plan.W / count)
    return scale * (8.0 * slack), scale * (32.0 * v_sq + 8.0 * h_norm)


def fgp_step_estimate(s, f, lam, channelwise, steps=1):
    """``steps`` FGP steps (:func:`_fgp_step`) and an estimate of the duality gap after the last: ``(gap, primal)``
    (NumPy ``(B,)``), or None (the PyTorch path, channels coupled by the projection). The solver's gap
    ``lam sum(|grad u_y| - <grad u_y, y>)`` at its iterate ``y`` with ``u_q = f + lam div q`` of the step's momentum
    point for ``u_y``, over every fourth row, scaled; ``P(u_q)``. It certifies nothing: a solve places its gap
    evaluations by it.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv._rof_methods import _fgp_init, fgp_step_estimate
    >>> f = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> lam = torch.full((1, 1, 1, 1), 0.1, dtype=torch.float64)
    >>> s = _fgp_init(f, lam, torch.zeros(1, 1, 2, 16, 16, dtype=torch.float64), False)
    >>> gap, primal = fgp_step_estimate(s, f, lam, False)
    >>> bool(0 <= gap[0] <= primal[0])
    True
    """
    if "pp" not in s:
        for _ in range(steps):
            _fgp_step(s, f, lam, channelwise)
        return None
    return _fused_step(s, channelwise, lam, steps)


def _gap_pass(p, f, lam_b, channelwise, u=None, gf=None):
    """``u = f + lam div p`` and the float64 sums of its gap (TV(u), the slack, ``||div p||^2``; NumPy, each
    ``(B,)``) in one fused pass; ``f`` and ``lam_b`` ``(B,)`` contiguous, of ``p``'s dtype; ``u``: where to write
    ``u`` (contiguous, ``f``'s shape and dtype), or None: a new tensor; ``gf``: FGP's data term (the state's), or
    None: formed from ``f``."""
    B, C, H, W = f.shape
    if u is None:
        u = torch.empty_like(f)
    ranges = row_ranges(B, C, H, W)
    sums = torch.empty(len(ranges), B, 3, dtype=torch.float64)
    head = (p.dtype == torch.float64, p.data_ptr(), f.data_ptr(), 0 if gf is None else gf.data_ptr(), lam_b.data_ptr(),
            0, 0, H, 0, W, u.data_ptr())
    tail = (B, C, H, W, not channelwise)
    run_ranges(kernel.gap, ranges, lambda k: head + (sums[k].data_ptr(),) + tail)
    return u, (sums.sum(0) if len(ranges) > 1 else sums[0]).numpy().T


def _fused_gap(s, f, lam, channelwise):
    """:func:`_dual_gap` in the fused loops: ``u = f + lam div p`` and the gap's sums (float64) in one pass."""
    f = f.contiguous()
    B, C, H, W = _fused_tensors(s, f)
    p = s["p"]
    lam_b = lam.reshape(B).contiguous()
    # u in one buffer for every check (a new image each time pays its page faults): solve reads each check's u
    # before the next
    u = s.get("u_gap")
    if u is None or u.shape != f.shape:
        u = s["u_gap"] = torch.empty_like(f)
    u, (tv_u, slack, div_sq) = _gap_pass(p, f, lam_b, channelwise, u, s["gf"])
    return (u, p) + _host_terms(lam_b.double().numpy(), tv_u, slack, div_sq, s["af"].numpy(), C, H * W,
                                torch.finfo(f.dtype).eps / 2)


def _host_terms(lam, tv_u, slack, div_sq, af, C, N, r):
    """:func:`gap_terms` of NumPy sums as float64 tensors; one image's in Python floats (the same arithmetic, faster
    than on arrays of one)."""
    if len(tv_u) == 1:
        terms = gap_terms(*(None if a is None else float(a[0]) for a in (lam, tv_u, slack, div_sq, af)), C, N, r)
        return tuple(None if x is None else torch.from_numpy(np.array([x])) for x in terms)
    return tuple(None if x is None else torch.from_numpy(x) for x in gap_terms(lam, tv_u, slack, div_sq, af, C, N, r))


def solution_gap(f, p, lam, channelwise, grid: Grid = PLAIN):
    """``(u, gap, primal)``: ``u = f + lam div p`` and :func:`gap_and_primal` of ``(u, p)``, for float64 ``f``,
    ``p`` and ``lam`` (``(B, 1, ..., 1)``): one fused pass where the loops apply (the gap without its residual term
    ``||u - f - lam div p||^2 / 2``, which is then ``u``'s own round-off squared; the entries of ``p`` that ``div``
    ignores are zeroed in place, as the loop reads them), else PyTorch."""
    if grid.plain and _plain_fused(p) and p.dtype == torch.float64 and f.dtype == p.dtype and lam.dtype == p.dtype:
        f = f.contiguous()
        lam_b = lam.reshape(-1).expand(f.shape[0]).contiguous()
        u, (tv_u, slack, div_sq) = _gap_pass(_zero_unused(p).contiguous(), f, lam_b, channelwise)
        gap, primal, _ = _host_terms(lam_b.numpy(), tv_u, slack, div_sq, None, f.shape[1], f[0, 0].numel(), 0.0)
        return u, gap, primal
    if not grid.plain and p.dtype == torch.float64 and FUSED and volume_applies(grid, f, p, lam):
        return volume_solution_gap(f, p, lam, channelwise, grid)
    u = f + lam * (div(p) if grid.plain else grid.div(p))
    return (u,) + gap_and_primal(f, u, p, lam, channelwise, grid)


def _plain_fused(p: torch.Tensor) -> bool:
    """Whether the fused loops apply to a dual field ``p`` on the 2-D unit grid: CPU, float32 or float64,
    ``(B, C, 2, H, W)``, not empty, no gradient wanted."""
    return (FUSED and p.device.type == "cpu" and p.dtype in (torch.float32, torch.float64) and p.dim() == 5
            and p.shape[2] == 2 and p.numel() > 0 and not (torch.is_grad_enabled() and p.requires_grad))


def _certify_fused(f, u, p, lam) -> bool:
    """Whether :func:`gap_and_primal` runs in the fused loop: float64 (its sums are float64 either way; a float32
    certificate keeps PyTorch's float32 sums), ``f``, ``u`` ``(B, C, H, W)``, ``p`` their dual field, one ``lam``
    per image (``(B, 1, 1, 1)`` or one for all), no gradient wanted."""
    if not (_plain_fused(p) and p.dtype == torch.float64 and isinstance(lam, torch.Tensor)):
        return False
    B, C = p.shape[:2]
    image = (B, C) + tuple(p.shape[3:])
    return (f.shape == image and u.shape == image and all(x.dtype == torch.float64 and x.device.type == "cpu"
                                                          for x in (f, u, lam))
            and (lam.numel() == 1 and lam.dim() <= 4 or lam.shape == (B, 1, 1, 1))
            and not (torch.is_grad_enabled() and (f.requires_grad or u.requires_grad or lam.requires_grad)))


def _fused_certificate(f, u, p, lam, channelwise):
    """:func:`gap_and_primal` on the 2-D unit grid in the fused loop: the same sums, one pass, float64."""
    f, u, p = f.contiguous(), u.contiguous(), p.contiguous()
    B, C, H, W = f.shape
    lam_b = lam.reshape(-1).expand(B).contiguous()
    ranges = row_ranges(B, C, H, W)
    sums = torch.empty(len(ranges), B, 4, dtype=torch.float64)
    head = (True, f.data_ptr(), u.data_ptr(), p.data_ptr(), lam_b.data_ptr())
    run_ranges(kernel.certify, ranges, lambda k: head + (sums[k].data_ptr(), B, C, H, W, not channelwise))
    tv_u, slack, resid, fidelity = sums.sum(0).unbind(1)
    return 0.5 * resid + lam_b * slack.clamp_min(0.0), 0.5 * fidelity + lam_b * tv_u


def _fused_project(p, channelwise, out=None):
    """:func:`project` in the fused loop (the same operations, one pass; each value read before it is written, so
    ``out`` may be ``p``)."""
    B, C, _, H, W = p.shape
    if out is None:
        p = p.contiguous()
        out = torch.empty_like(p)
    elif out.shape != p.shape or out.dtype != p.dtype:
        raise RuntimeError("fused projection: out must have p's shape and dtype")
    head = (p.dtype == torch.float64, p.data_ptr(), out.data_ptr(), B, C, H, W, not channelwise)
    run_ranges(kernel.project, row_ranges(B, C, H, W), lambda k: head)
    return out


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
    p = project(s["p"] + (sigma / lam).unsqueeze(-1) * grad(s["ubar"]), channelwise)
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
    return s["u"], project(s["b"] * (s["rho"] / lam).unsqueeze(-1), channelwise)


# The methods on the 2-D unit grid: (init, step, gap).
METHODS: dict[str, tuple[Callable, Callable, Callable]] = {
    "chambolle": (_chambolle_init, _chambolle_step, _dual_gap),
    "fgp": (_fgp_init, _fgp_step, _dual_gap),
    "pdhg": (_pdhg_init, _pdhg_step, generic_gap(_pdhg_extract)),
    "admm": (_admm_init, _admm_step, generic_gap(_admm_extract)),
}

# The methods whose candidate is the dual field's own primal u = f + lam div p (on every grid): OWN_PRIMAL times the
# gap any u needs certifies it (pdeflow.tv._accuracy).
DUAL_METHODS = ("chambolle", "fgp")

# The methods whose step can also estimate the gap after it (fgp_step_estimate), by name.
STEP_ESTIMATES: dict[str, Callable] = {"fgp": fgp_step_estimate}

# Per-image state entries that are shared constants rather than batched tensors.
SHARED_STATE = ("ch", "cw", "eig", "grid", "tau_nd", "L", "plan")
