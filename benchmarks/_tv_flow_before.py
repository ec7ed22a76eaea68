"""``tv_flow`` as it was before the time-to-accuracy work (pdeflow commit ff994a0): the baseline of
``flow_speed.py``.

Implicit Euler steps ``u_{k+1} = rof(u_k, dt)``, each solved by FGP (fast gradient projection on the
dual with adaptive restart) to a relative duality gap ``tol``, warm-started from the previous step's
dual field; float32 gaps below their round-off floor re-evaluated in float64.  The functions below are
copied verbatim from ``pdeflow/tv/rof.py`` and ``pdeflow/tv/flow.py`` of that commit (only the parts
that implicit Euler with ``solver="fgp"`` runs), so that the baseline keeps running that
day's code while the library moves on.  Shared operators (``grad``, ``div``) come from ``pdeflow.ops``,
unchanged since.
"""
from __future__ import annotations

import math

import torch

from pdeflow.errors import UserInputError
from pdeflow.ops import batch_sum, div, grad, gradient_norm
from pdeflow.tv._checks import check_image as _check_image
from pdeflow.tv.rof import RofResult

_SHARED_STATE = ("ch", "cw", "eig")


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
    """
    g = grad(u)
    gn = gradient_norm(g, channelwise=channelwise)
    align = (g * p).sum(-3)
    if not channelwise:
        align = align.sum(-3, keepdim=True)
    lam_b = lam.reshape(-1).double()
    tv_u = batch_sum(gn).double()
    slack = batch_sum(gn - align).double().clamp_min(0.0)
    resid = batch_sum((u - f - lam * div(p)) ** 2).double()
    fidelity = batch_sum((u - f) ** 2).double()
    gap = 0.5 * resid + lam_b * slack
    primal = 0.5 * fidelity + lam_b * tv_u
    return gap, primal


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
    lam_b = lam.reshape(-1).double()
    tv_u = batch_sum(gn).double()
    slack = batch_sum(torch.sub(gn, align, out=align)).double().clamp_min(0.0)
    fidelity = _bdot(d, d).double() * lam_b * lam_b
    return u, p, lam_b * slack, 0.5 * fidelity + lam_b * tv_u


def _fgp_init(f, lam, p0, channelwise):
    p = _zero_unused(p0.clone(memory_format=torch.contiguous_format))
    # grad(f) / (8 lam), formed in float64: the step adds it to O(1) terms instead of
    # differencing f / (8 lam), whose round-off (eps |f| / lam) would set a float32
    # floor on the gap near 1e-5 instead of 1e-7.
    gf = _zero_unused(grad(f.double()) / (8.0 * lam.double().unsqueeze(-1))).to(f.dtype)
    return {"p": p, "q": p.clone(), "t": torch.ones_like(lam), "gf": gf,
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


def _per_image(value, batch: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """A float or (B,) tensor as a (B, 1, 1, 1) tensor, checked to be finite and >= 0."""
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if v.dim() == 0:
        v = v.expand(batch)
    if v.shape != (batch,):
        raise UserInputError(f"{name} must be a float or a tensor of shape ({batch},), got shape {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
        raise UserInputError(f"{name} must be finite and >= 0, got {v.tolist() if batch <= 8 else 'values out of range'}")
    return v.reshape(batch, 1, 1, 1).clone()


def _solve(f, lam, *, method, tol, max_iter, p0, channelwise, check_every):
    """:func:`rof` without the warning: ``(RofResult, short)``, ``short`` a (B,) bool tensor
    marking the images that stopped at ``max_iter`` short of ``tol``."""
    _check_image(f)
    if method not in _METHODS:
        raise UserInputError(f"method must be one of {ROF_METHODS}, got {method!r}")
    if not (tol > 0):
        raise UserInputError(f"tol must be > 0, got {tol}")
    if int(max_iter) < 1:
        raise UserInputError(f"max_iter must be >= 1, got {max_iter}")
    ndim = f.dim()
    x = f.reshape((1,) * (4 - ndim) + tuple(f.shape))
    B, C, H, W = x.shape
    lam_t = _per_image(lam, B, x, "lam")
    if p0 is None:
        p = x.new_zeros(B, C, 2, H, W)
    else:
        if p0.shape != (B, C, 2, H, W):
            raise UserInputError(f"p0 must have shape {(B, C, 2, H, W)}, got {tuple(p0.shape)}")
        p = _project(p0.to(x), channelwise)

    init, step, evaluate = _METHODS[method]
    out_u = x.clone()
    out_p = p.clone()
    iterations = torch.zeros(B, dtype=torch.long, device=x.device)
    gaps = torch.zeros(B, dtype=torch.float64, device=x.device)
    short = torch.zeros(B, dtype=torch.bool, device=x.device)

    # lam = 0 is the identity (u = f); such images never enter the iteration.
    active = torch.nonzero(lam_t.reshape(-1) > 0).reshape(-1)
    fa, lam_a = x[active], lam_t[active]
    # Round-off floor of the gap as evaluated in the working precision: once u is
    # constant to round-off (an image that has flowed to its mean), P and the gap are
    # both round-off of size ~ eps |f| per pixel and their ratio never falls.
    finfo = torch.finfo(x.dtype)
    floor_a = (lam_a.reshape(-1).double() * (C * H * W) * 8 * finfo.eps
               * fa.abs().flatten(1).amax(1).double())
    # Below that floor a float64 input counts as converged.  Lower precisions
    # re-evaluate the gap of the same iterate in float64, which resolves it down to the
    # round-off of the iterate itself (|p| <= 1 to eps, so u to 4 lam eps): tol keeps its
    # meaning for float32 down to ~1e-7, and a constant image still stops at once.
    exact = x.dtype == torch.float64
    floor64_a = lam_a.reshape(-1).double() ** 2 * (C * H * W) * 16 * finfo.eps
    state = init(fa, lam_a, p[active], channelwise) if active.numel() else {}
    it = checks = 0
    while active.numel():
        n = min(check_every, max_iter - it)
        for _ in range(n):
            step(state, fa, lam_a, channelwise)
        it += n
        u, pa, gap, primal = evaluate(state, fa, lam_a, channelwise)
        rel = gap / primal.clamp_min(torch.finfo(torch.float64).tiny)
        converged = rel <= tol
        unsure = gap <= floor_a
        if exact:
            converged |= unsure
        else:
            # Verify in float64 only where it can decide something: where float32 claims
            # convergence, or, every fourth check, where float32 cannot resolve the gap.
            unsure &= (rel <= tol) | (checks % 4 == 0)
        checks += 1
        if not exact and bool(unsure.any()):
            j = unsure.nonzero().reshape(-1)
            f64, p64, lam64 = fa[j].double(), pa[j].double(), lam_a[j].double()
            gap64, primal64 = duality_gap(f64, f64 + lam64 * div(p64), p64, lam64, channelwise=channelwise)
            rel[j] = gap64 / primal64.clamp_min(torch.finfo(torch.float64).tiny)
            converged[j] = (rel[j] <= tol) | (gap64 <= floor64_a[j]) | (primal64 <= floor_a[j])
        done = converged | (it >= max_iter)
        if bool(done.any()):
            idx = active[done]
            out_u[idx], out_p[idx] = u[done], pa[done]
            iterations[idx], gaps[idx] = it, rel[done]
            short[idx] = ~converged[done]
            keep = ~done
            active, fa, lam_a = active[keep], fa[keep], lam_a[keep]
            floor_a, floor64_a = floor_a[keep], floor64_a[keep]
            state = {k: (v if k in _SHARED_STATE else v[keep]) for k, v in state.items()}

    return RofResult(u=out_u.reshape(f.shape), p=out_p, iterations=iterations, gap=gaps), short


_METHODS = {"fgp": (_fgp_init, _fgp_step, _dual_gap)}
ROF_METHODS = ("fgp",)


def _step_schedule(times: list[float], dt: float) -> list[tuple[int, float]]:
    """For each requested time: (number of full steps of dt, remaining partial step)."""
    out = []
    for t in times:
        n = int(math.floor(t / dt + 1e-9))
        rem = t - n * dt
        out.append((n, rem if rem > 1e-12 * max(1.0, t) else 0.0))
    return out


def _extinct(f: torch.Tensor, lam: float, channelwise: bool) -> torch.Tensor:
    """(B,) bool: the images of ``f`` (B, C, H, W) that the bound above proves extinct within ``lam``."""
    B, C, H, W = f.shape
    flat = f.reshape(B, -1)
    bound = (H + W) * (1.0 if channelwise else math.sqrt(C))
    return bound * (flat.amax(1) - flat.amin(1)) <= lam


def _extinction_step(f: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean of f, p)`` with ``div(p) = (mean - f) / lam`` exactly (up to round-off), ``f`` (B, C, H, W)."""
    mean = f.mean(dim=(-2, -1), keepdim=True)
    g = (mean - f) / lam                                    # zero mean per channel
    rows = g.mean(-1, keepdim=True)                         # (B, C, H, 1), sums to zero over H
    q = f.new_zeros(*f.shape[:-2], 2, *f.shape[-2:])
    q[..., 0, :-1, :] = torch.cumsum(rows, -2)[..., :-1, :]  # div along H gives the rows' means
    q[..., 1, :, :-1] = torch.cumsum(g - rows, -1)[..., :, :-1]  # div along W each row's deviation
    return mean.expand_as(f).clone(), q


def tv_flow_before(u0: torch.Tensor, times, *, dt: float, tol: float, max_iter: int = 20000,
                   check_every: int = 5) -> torch.Tensor:
    """u at ``times`` (implicit Euler, FGP), as ``tv_flow(u0, times, dt=dt, tol=tol)`` computed it at that
    commit (grey or colour-coupled images, no ``u_t``/flux output)."""
    times_f = [float(t) for t in times]
    schedule = _step_schedule(times_f, dt)
    x = u0.reshape((1,) * (4 - u0.dim()) + tuple(u0.shape))
    B, C, H, W = x.shape

    def step(u, p, h):
        if not bool(_extinct(u, h, False).any()):
            r, _ = _solve(u, h, p0=p, method="fgp", tol=tol, max_iter=max_iter, channelwise=False,
                          check_every=check_every)
            return r.u, r.p
        v, q = torch.empty_like(u), torch.empty_like(p)
        ext = _extinct(u, h, False)
        v[ext], q[ext] = _extinction_step(u[ext], h)
        if bool((~ext).any()):
            r, _ = _solve(u[~ext], h, p0=p[~ext], method="fgp", tol=tol, max_iter=max_iter, channelwise=False,
                          check_every=check_every)
            v[~ext], q[~ext] = r.u, r.p
        return v, q

    us, u, p, k = [], x, x.new_zeros(B, C, 2, H, W), 0
    for n_full, rem in schedule:
        while k < n_full:
            u, p = step(u, p, dt)
            k += 1
        us.append(step(u, p, rem)[0] if rem > 0 else u)
    return torch.stack(us).reshape(len(times_f), *u0.shape)
