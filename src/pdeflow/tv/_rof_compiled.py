"""The FGP iteration of :func:`pdeflow.tv.rof` compiled by ``torch.compile`` (``compile=True``).

The FGP iteration and gap of :mod:`pdeflow.tv._rof_methods` as pure functions of whole tensors, for
torch.compile: two fused loops per iteration instead of ~20 passes over the arrays.  The field's two components are
kept as separate (B, C, H, W) tensors (one loop then writes both), and the momentum point
q = p + beta (p - p_prev) is formed inside the loop, so the state is (p, p_prev, beta, t).  Every
tensor they take has row-major strides (compiled graphs are specialised to strides).
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch

from ._fgp import gap_terms, momentum
from ._rof_methods import k_fgp_data, k_pad


def _k_div(q0, q1):
    """``div`` of the field ``(q0, q1)``, each ``(B, C, H, W)`` with zero unused entries."""
    return q0 + q1 - k_pad(q0[..., :-1, :], 0, 0, 1, 0) - k_pad(q1[..., :, :-1], 1, 0, 0, 0)


def _k_fgp_step(p0, p1, pp0, pp1, beta, t, g0, g1, channelwise: bool):
    """One iteration of FGP (``_rof_methods._fgp_step``) on split components: ``(p0, p1, beta, t)`` of the next one."""
    q0 = p0 + beta * (p0 - pp0)
    q1 = p1 + beta * (p1 - pp1)
    v = 0.125 * _k_div(q0, q1)
    z0 = q0 + k_pad(v[..., 1:, :] - v[..., :-1, :], 0, 0, 0, 1) + g0
    z1 = q1 + k_pad(v[..., :, 1:] - v[..., :, :-1], 0, 1, 0, 0) + g1
    sq = z0 * z0 + z1 * z1
    r = torch.rsqrt(torch.clamp_min(sq if channelwise else sq.sum(1, keepdim=True), 1.0))
    z0, z1 = z0 * r, z1 * r
    uphill = (((q0 - z0) * (z0 - p0) + (q1 - z1) * (z1 - p1)).flatten(1).sum(1) > 0).reshape(-1, 1, 1, 1)
    t_new, beta_new = momentum(t, uphill)
    return z0, z1, beta_new, t_new


def _k_fgp_gap(p0, p1, lam, g0, g1, af, channelwise: bool):
    """:func:`gap_terms` ``(gap, primal, bound)`` per image (float64) of the iterate ``(p0, p1)``, from
    the sums of ``_rof_methods._dual_gap``."""
    d = _k_div(p0, p1)
    a0 = (k_pad(d[..., 1:, :] - d[..., :-1, :], 0, 0, 0, 1) + 8.0 * g0) * lam
    a1 = (k_pad(d[..., :, 1:] - d[..., :, :-1], 0, 1, 0, 0) + 8.0 * g1) * lam
    sq, align = a0 * a0 + a1 * a1, a0 * p0 + a1 * p1
    if not channelwise:
        sq, align = sq.sum(1, keepdim=True), align.sum(1, keepdim=True)
    gn = torch.sqrt(sq)
    # Summed over (C, H, W) rather than flattened first: the sums then share the pixel loop of the terms.
    sums = (gn.sum((1, 2, 3)), (gn - align).sum((1, 2, 3)), (d * d).sum((1, 2, 3)))
    B, C, H, W = p0.shape
    return gap_terms(lam.reshape(B).double(), *(x.double() for x in sums), af, C, H * W,
                      torch.finfo(p0.dtype).eps / 2)


def _k_fgp_split(p):
    """The components of the field ``p`` (B, C, 2, H, W) as row-major ``(B, C, H, W)`` tensors with zero
    unused entries."""
    return (k_pad(p[:, :, 0, :-1, :], 0, 0, 0, 1).contiguous(),
            k_pad(p[:, :, 1, :, :-1], 0, 1, 0, 0).contiguous())


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


_KERNELS = {"data": k_fgp_data, "split": _k_fgp_split, "step": _k_fgp_step, "gap": _k_fgp_gap,
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


def row_major(x: torch.Tensor) -> torch.Tensor:
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


def compiled_result(s, f, lam):
    """``(u, p)`` of the current iterate, ``p`` as one ``(B, C, 2, H, W)`` field."""
    return _kernel("result")(f, lam, s["p0"], s["p1"])


COMPILED_METHODS = {"fgp": (_fgpc_init, _fgpc_step, _fgpc_gap)}
