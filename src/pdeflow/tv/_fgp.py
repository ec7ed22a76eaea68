"""The rules of FGP on the ROF dual, in one place: the momentum with its restart, and the duality gap.

Fast gradient projection on the dual ``min 1/2 ||f + lam div p||^2`` over ``|p| <= 1`` (Beck and Teboulle, "Fast
gradient-based algorithms for constrained total variation image denoising and deblurring problems", 2009), with
adaptive restart (O'Donoghue and Candes, "Adaptive restart for accelerated gradient schemes", 2015), runs in
several layouts of one step: the fused loops of ``_fgp_kernel.c`` (one step and one gap loop, for
:func:`pdeflow.tv.rof`'s whole images and for the blocks of a domain decomposition alike), and in PyTorch
(``_rof_methods``: eager on the 2-D unit grid and on any grid; compiled by ``torch.compile`` in ``_rof_compiled``;
:mod:`pdeflow.tv.subdomain`'s loop for volumes, a row block at a time). A block's boundary is a parameter of the
same step: the ``fixed`` duals are held (they keep their values and enter only through ``div p``), and the sums of
its gap run over its own pixels. Every layout takes its momentum from :func:`momentum` (the compiled loop's
``momentum`` is the same rule in C) and its gap and primal energy from :func:`gap_terms`, the block's sums in
PyTorch from :func:`block_sums`.
"""
from __future__ import annotations

import torch

__all__ = ["momentum", "gap_terms", "block_sums", "gradient_sums", "difference_into", "difference_rows", "primal_rows"]


def momentum(t, uphill):
    """``(t_new, beta)``: FGP's momentum after a step, restarted where the step went ``uphill``.

    Beck and Teboulle's ``t_new = (1 + sqrt(1 + 4 t^2)) / 2`` and ``beta = (t - 1) / t_new``; where the momentum
    points uphill (``<q - p_new, p_new - p> > 0``, O'Donoghue and Candes) ``t_new = 1`` and ``beta = 0``. ``t`` and
    ``uphill`` are tensors of one shape: one value per image.
    """
    t_new = torch.where(uphill, torch.ones_like(t), 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t)))
    return t_new, torch.where(uphill, torch.zeros_like(t), (t - 1.0) / t_new)


def gap_terms(lam, tv_u, slack, div_sq, af, C: int, N: int, r: float):
    """``(gap, primal, bound)`` per image from the float64 sums ``TV(u)``, ``sum(|grad u| - <grad u, p>)``
    and ``||div p||^2`` of a dual iterate of ``C`` channels of ``N`` pixels, each ``(B,)``; ``bound``
    bounds the round-off (unit roundoff ``r``) of the gap as evaluated with ``gf`` (FGP: ``grad u = lam
    (8 gf + grad div p)``; ``af`` the l1 norm of ``grad f``), None without ``af``.

    Plain arithmetic, so that it runs on NumPy arrays, on tensors and inside the compiled gap kernel alike.
    """
    gap = lam * (slack + abs(slack)) * 0.5              # lam * max(slack, 0), exactly
    primal = 0.5 * div_sq * lam * lam + lam * tv_u
    if af is None:
        return gap, primal, None
    # Per pixel, g = lam (grad div p + 8 gf) is off by at most r (37 lam + 3 |grad f| + 2 |g|): div p by 9 r
    # (|p| <= 1), its differences by 26 r, gf by three roundings (a difference of f, 1 / (8 lam), their product);
    # |g| and <g, p> then add about (2 + 2C) r |g|, and the error of g enters |g| - <g, p> at most twice.  Summed
    # over pixels (|grad f| <= its l1 norm, af), plus the summation's own error:
    bound = lam * r * (6.5 * af + (8.0 + 4.0 * C) * tv_u + 80.0 * C * N * lam) + 20.0 * r * gap
    return gap, primal, bound


# --------------------------------------------------------------------------- the block's operators and gap
# A block's dual field (b, C, n, *S) with its divergence reading every dual of the block, its last slab too (the
# edges into the next block), the duals before it counting as zero; the gradient is the forward difference, zero
# on the last slab. They run row block by row block (slices of the first spatial axis), so that their scratch is a
# row block's, not arrays of the block's size.


def difference_into(out, v, k):
    """The forward difference of ``v`` (b, *S) along spatial axis ``k`` written into ``out``, 0 on the last slab
    (:func:`pdeflow.ops.grad`'s component ``k``)."""
    axis = 1 + k
    n = v.shape[axis]
    out.narrow(axis, n - 1, 1).zero_()
    torch.sub(v.narrow(axis, 1, n - 1), v.narrow(axis, 0, n - 1), out=out.narrow(axis, 0, n - 1))
    return out


def difference_rows(out, v, k, rows):
    """Rows ``rows`` (of the first spatial axis) of :func:`difference_into` of ``v`` (b, *S) along axis ``k``,
    into ``out`` (b, its rows, *S[1:])."""
    if k:
        return difference_into(out, v[:, rows], k)
    lo, hi = rows.start, rows.stop
    inside = min(hi, v.shape[1] - 1) - lo       # rows with a next row; the image's last row has a zero difference
    if inside > 0:
        torch.sub(v[:, lo + 1:lo + 1 + inside], v[:, lo:lo + inside], out=out[:, :inside])
    out[:, max(inside, 0):].zero_()
    return out


def primal_rows(u, f, p, lam, spatial, blocks):
    """``u = f + lam * div p`` (the block's divergence) written into ``u`` block of rows by block of rows
    (``blocks``, slices of the first spatial axis: each block's operations in cache), with no temporary of the
    dual field's size. ``f = None``: ``u = lam div p``."""
    for rows in blocks:
        ur = u[:, :, rows]
        if f is None:
            ur.zero_()
        else:
            ur.copy_(f[:, :, rows])
        for k in range(spatial):
            pk = p[:, :, k]
            ur.add_(pk[:, :, rows], alpha=lam)
            if k:
                n = ur.shape[2 + k]
                ur.narrow(2 + k, 1, n - 1).sub_(pk[:, :, rows].narrow(2 + k, 0, n - 1), alpha=lam)
            else:
                lo = max(rows.start, 1)
                if rows.stop > lo:
                    u[:, :, lo:rows.stop].sub_(pk[:, :, lo - 1:rows.stop - 1], alpha=lam)
    return u


def block_sums(u, f, p, lam, blocks, region, held=None, scratch=None):
    """The float64 sums of a block's gap, per image: ``(TV(u), sum(|grad u| - <grad u, p>), ||div p||^2)``, ``u =
    f + lam div p`` written into ``u`` (its dtype the working precision; ``f`` and ``p`` are read in their own).

    The gradient terms are summed as :func:`gradient_sums` sums them; ``||div p||^2`` over ``region``. ``blocks``:
    the row blocks it runs by. :func:`gap_terms` turns the sums into the gap and the primal energy.
    """
    spatial = u.dim() - 2
    primal_rows(u, f, p, lam, spatial, blocks)
    tv, inner = gradient_sums(u, p, blocks, region, held, scratch)
    # ||div p||^2 over the region: div p formed again in u (u - f would round f into u's dtype in a temporary)
    # and summed over the strided view (flattening it would copy the region)
    primal_rows(u, None, p, 1.0, spatial, blocks).square_()
    div_sq = u[(Ellipsis,) + tuple(region)].sum(tuple(range(2, u.dim())), dtype=torch.float64).sum(1)
    return tv, tv - inner, div_sq


def gradient_sums(u, p, blocks, region, held=None, scratch=None):
    """``(TV(u), sum(<grad u, p>))`` in float64, per image, a row block at a time: over every pixel but those of
    ``held`` (bool, the shape of a block's pixels: a block solver's held duals, whose terms its subproblem's gap
    leaves out), or over ``region`` (a tuple of slices) where ``held`` is None. ``scratch``: ``(grad, norm)``, a row
    block's buffers ``(b, C, n, rows, ...)`` and ``(b, rows, ...)`` in ``u``'s dtype (default: new ones)."""
    b, C = u.shape[:2]
    spatial = u.dim() - 2
    plane = tuple(u.shape[3:])
    most = max(r.stop - r.start for r in blocks)
    if scratch is None:
        scratch = (torch.empty((b, C, spatial, most) + plane, dtype=u.dtype),
                   torch.empty((b, most) + plane, dtype=u.dtype))
    grad, norm = scratch
    # the gradient terms' pixels: all but the held ones, or the region's slices (rows within each row block)
    first, rest = region[0], tuple(region[1:])
    lo, hi, _ = first.indices(u.shape[2])
    tv = torch.zeros(b, dtype=torch.float64)
    inner = torch.zeros(b, dtype=torch.float64)
    for rows in blocks:
        s = rows.stop - rows.start
        a, n = grad[:, :, :, :s], norm[:, :s]
        for c in range(C):
            for k in range(spatial):
                g = difference_rows(a[:, c, k], u[:, c], k, rows)
                if held is not None:
                    g.masked_fill_(held[rows], 0.0)
                if c or k:
                    n.addcmul_(g, g)
                else:
                    torch.mul(g, g, out=n)
        n.sqrt_()
        if held is None:
            r0, r1 = max(lo, rows.start), min(hi, rows.stop)
            if r1 <= r0:
                continue
            sel = (slice(None), slice(r0 - rows.start, r1 - rows.start)) + rest
            psel = (slice(r0, r1),) + rest
        else:
            sel, psel = (slice(None), slice(None)), (rows,)
        # in the scratch (the gradient is read no more) and summed over the strided views: no temporaries
        dims = tuple(range(1, n.dim()))
        for c in range(C):
            for k in range(spatial):
                inner += a[:, c, k][sel].mul_(p[:, c, k][(slice(None),) + psel]).sum(dims, dtype=torch.float64)
        tv += n[sel].sum(dims, dtype=torch.float64)
    return tv, inner
