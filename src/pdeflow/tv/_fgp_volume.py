"""FGP on volumes in the fused loops of the compiled extension (``_fgp_volume.c``).

:func:`pdeflow.tv.rof`'s FGP on 3-D grids (any spacing), on CPU tensors of float32 or float64 outside autograd:
its iteration, gap and float64 certificates in one pass over the fields each, where the PyTorch path of
``_rof_methods`` (:class:`~pdeflow.tv._grid.Grid`'s kernels) makes about twenty-five; both agree to round-off. The
state holds the iterate ``p``, the one before (``pp``: the loop forms the momentum point) and a field for the next;
the loops form the data term ``grad f / (L lam)`` from ``f``. ``_rof_methods`` chooses the path.
"""
from __future__ import annotations

import torch

from ._fgp import gap_terms
from ._fused_rows import kernel, row_ranges, run_ranges
from ._grid import Grid

__all__ = ["volume_applies", "volume_init", "volume_step", "volume_gap", "volume_solution_gap", "volume_certificate"]


def volume_applies(grid: Grid, *tensors: torch.Tensor) -> bool:
    """Whether the loops can run on volumes with ``tensors`` (the data ``(B, C, D, H, W)`` first): the extension is
    built, a 3-D grid, CPU tensors of one dtype, float32 or float64, no gradient wanted."""
    f = tensors[0]
    return (kernel is not None and grid.ndim == 3 and f.dim() == 5 and f.dtype in (torch.float32, torch.float64)
            and all(x.device.type == "cpu" and x.dtype == f.dtype for x in tensors)
            and not (torch.is_grad_enabled() and any(x.requires_grad for x in tensors)))


def volume_init(grid: Grid, f, lam, p):
    """The fused state of FGP from the dual field ``p`` (a contiguous copy with zero unused entries, which the
    state owns), ``f`` ``(B, C, D, H, W)`` and ``lam`` ``(B, 1, 1, 1, 1)``."""
    B = f.shape[0]
    # f and lam (B,) as the loops read them: the solver passes the same f and lam to every step
    return {"p": p, "pp": torch.empty_like(p), "z": torch.empty_like(p), "f": f.contiguous(),
            "lam": lam.reshape(B).contiguous(), "t": f.new_ones(B), "beta": f.new_zeros(B), "grid": grid}


def volume_step(s, channelwise):
    """One FGP iteration of the fused state ``s`` (the next iterate, its restart and momentum)."""
    grid, p, pp, z = s["grid"], s["p"], s["pp"], s["z"]
    B, C, D, H, W = _checked(s)
    ranges = row_ranges(B, C, D, H * W)
    sums = torch.empty(len(ranges), B, dtype=torch.float64)
    scale = 1.0 / grid.lipschitz            # div's weights as Grid.div_into forms them (scale / h)
    weights = (tuple(scale / h for h in grid.spacing), tuple(1.0 / h for h in grid.spacing))
    double = p.dtype == torch.float64
    head = (double, p.data_ptr(), pp.data_ptr(), z.data_ptr(), s["f"].data_ptr(), s["lam"].data_ptr(),
            grid.lipschitz, s["beta"].data_ptr())
    tail = (B, C, D, H, W) + weights + (not channelwise,)
    run_ranges(kernel.step3, ranges, lambda k: head + (sums[k].data_ptr(),) + tail)
    kernel.momentum(double, sums.data_ptr(), len(ranges), B, s["t"].data_ptr(), s["beta"].data_ptr())
    s["p"], s["pp"], s["z"] = z, p, pp


def volume_gap(s, channelwise):
    """``(u, p, gap, primal, None)`` of the fused state's iterate (``nd_gap``'s)."""
    _checked(s)
    u, g, primal = _gap_pass(s["f"], s["p"], s["lam"], channelwise, s["grid"])
    return u, s["p"], g, primal, None


def _gap_pass(f, p, lam_b, channelwise, grid):
    """``(u, gap, primal)`` of ``u = f + lam div p`` in one fused pass (the float64 sums of the gap); ``f``
    ``(B, C, D, H, W)``, ``p`` its dual field with zero unused entries and ``lam_b`` ``(B,)``, contiguous, of one
    dtype."""
    B, C, D, H, W = f.shape
    u = torch.empty_like(f)
    ranges = row_ranges(B, C, D, H * W)
    sums = torch.empty(len(ranges), B, 3, dtype=torch.float64)
    head = (p.dtype == torch.float64, p.data_ptr(), f.data_ptr(), lam_b.data_ptr(), grid.lipschitz,
            tuple(1.0 / h for h in grid.spacing), u.data_ptr())
    run_ranges(kernel.gap3, ranges, lambda k: head + (sums[k].data_ptr(), B, C, D, H, W, not channelwise))
    tv_u, slack, div_sq = sums.sum(0).numpy().T
    g, primal, _ = gap_terms(lam_b.double().numpy(), tv_u, slack, div_sq, None, C, D * H * W, 0.0)
    return u, torch.from_numpy(g), torch.from_numpy(primal)


def volume_solution_gap(f, p, lam, channelwise, grid: Grid):
    """``(u, gap, primal)`` of ``u = f + lam div p`` (float64, ``lam`` one per volume or one for all) in the gap
    loop: the gap without its residual term, which is then ``u``'s own round-off squared. The entries of ``p``
    that ``div`` ignores are zeroed in place, as the loop reads them."""
    lam_b = lam.reshape(-1).expand(f.shape[0]).contiguous()
    return _gap_pass(f.contiguous(), grid.zero_unused(p).contiguous(), lam_b, channelwise, grid)


def volume_certificate(f, u, p, lam, channelwise, grid: Grid):
    """``(gap, primal)`` of any candidate ``u`` and dual field ``p`` (float64 volumes; ``lam`` one per volume or
    one for all): ``gap_and_primal``'s sums in one pass. ``p``'s entries that ``div`` ignores count as zero."""
    f, u = f.contiguous(), u.contiguous()
    p = grid.zero_unused(p.clone(memory_format=torch.contiguous_format))
    B, C, D, H, W = f.shape
    lam_b = lam.reshape(-1).expand(B).contiguous()
    ranges = row_ranges(B, C, D, H * W)
    sums = torch.empty(len(ranges), B, 4, dtype=torch.float64)
    head = (True, f.data_ptr(), u.data_ptr(), p.data_ptr(), lam_b.data_ptr(), tuple(1.0 / h for h in grid.spacing))
    run_ranges(kernel.certify3, ranges, lambda k: head + (sums[k].data_ptr(), B, C, D, H, W, not channelwise))
    tv_u, slack, resid, fidelity = sums.sum(0).unbind(1)
    return 0.5 * resid + lam_b * slack.clamp_min(0.0), 0.5 * fidelity + lam_b * tv_u


def _checked(s):
    """``(B, C, D, H, W)`` of a fused state, its tensors checked for the loops, which take their addresses:
    contiguous CPU tensors of one dtype and matching shapes."""
    p = s["p"]
    B, C, K, D, H, W = p.shape
    fields = all(x.shape == p.shape and x.dtype == p.dtype and x.is_contiguous() and x.device.type == "cpu"
                 for x in (p, s["pp"], s["z"]))
    volume = s["f"].shape == (B, C, D, H, W) and s["f"].dtype == p.dtype and s["f"].is_contiguous()
    scalars = all(x.shape == (B,) and x.dtype == p.dtype and x.is_contiguous() for x in (s["t"], s["beta"], s["lam"]))
    if not (fields and volume and scalars and K == 3):
        raise RuntimeError("fused FGP on volumes: inconsistent state")
    return B, C, D, H, W
