"""pdeflow.inpaint.tonal: tonal optimisation against the normal equations, quantised levels, batches, checks; for
EED against its own error and its linearisation."""
from __future__ import annotations

import pytest
import torch

from pdeflow.errors import UserInputError
from pdeflow.inpaint import OPERATORS, inpaint_diffusion, inpaint_eed
from pdeflow.inpaint.operators import eed
from pdeflow.inpaint.tonal import optimise_tonal, quantise_levels


def _case(size=20, seed=0, channels=None):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                          torch.linspace(0, 1, size, dtype=torch.float64), indexing="ij")
    f = 0.5 + 0.4 * torch.sin(6 * x) * torch.cos(5 * y) + 0.05 * torch.rand(size, size, dtype=torch.float64,
                                                                                generator=g)
    if channels:
        f = torch.stack([f * (0.5 + 0.2 * c) for c in range(channels)])
    mask = (torch.rand(size, size, generator=g) < 0.08).double()
    mask[0, 0] = 1
    return f, mask


def _err(values, mask, f):
    return float((inpaint_diffusion(values, mask, tol=1e-12) - f).square().sum())


def _dense_optimum(f, mask):
    """The least-squares values by the dense matrix of g -> inpaint_diffusion(g on the mask)."""
    idx = mask.flatten().nonzero().squeeze(1)
    cols = []
    for i in idx.tolist():
        e = torch.zeros(f.numel(), dtype=torch.float64)
        e[i] = 1
        cols.append(inpaint_diffusion(e.view_as(f), mask, tol=1e-13).flatten())
    M = torch.stack(cols, 1)
    g = torch.linalg.lstsq(M, f.flatten()[:, None]).solution[:, 0]
    out = f.clone().flatten()
    out[idx] = g
    return out.view_as(f)


def test_matches_the_dense_least_squares_solution():
    f, mask = _case()
    g = optimise_tonal(f, mask, tol=1e-10, solve_tol=1e-12, max_iter=500)
    ref = _dense_optimum(f, mask)
    assert torch.allclose(g, ref, atol=1e-6)
    assert _err(g, mask, f) < 0.7 * _err(f, mask, f)
    assert torch.equal(g[mask == 0], f[mask == 0])     # unknown pixels keep f


def test_full_output_and_the_inpainting_it_reports():
    f, mask = _case(seed=1)
    r = optimise_tonal(f, mask, full_output=True)
    assert torch.allclose(r.u, inpaint_diffusion(r.values, mask, tol=1e-12), atol=1e-5)
    assert r.iterations >= 1 and r.mse.shape == (1,)
    assert abs(float(r.mse[0]) - float((r.u - f).square().mean())) < 1e-12


@pytest.mark.slow   # tonal optimisations at several level counts
def test_levels_give_values_on_the_levels_and_lose_little():
    f, mask = _case(seed=2)
    levels = torch.linspace(-0.2, 1.2, 40, dtype=torch.float64)
    free = optimise_tonal(f, mask, tol=1e-8, solve_tol=1e-10, max_iter=300)
    q = optimise_tonal(f, mask, levels=levels, tol=1e-8, solve_tol=1e-10, max_iter=300)
    on = q[mask > 0]
    assert bool((quantise_levels(on, levels) == on).all())
    rounded = torch.where(mask > 0, quantise_levels(free, levels), f)
    # the rounds re-optimise the free values: not worse than rounding the optimum (up to the solves' tolerance)
    assert _err(q, mask, f) <= _err(rounded, mask, f) * 1.02
    assert _err(q, mask, f) < _err(f, mask, f)
    ints = optimise_tonal(f, mask, levels=8)
    assert set(torch.unique(ints[mask > 0] * 7).round().tolist()) <= set(range(8))


def test_batch_and_channels_equal_single_calls():
    f, mask = _case(channels=2)
    both = optimise_tonal(f[None].expand(2, -1, -1, -1).contiguous(), mask, tol=1e-9, solve_tol=1e-11,
                          max_iter=300)
    one = optimise_tonal(f[1], mask, tol=1e-9, solve_tol=1e-11, max_iter=300)
    assert both.shape == (2, 2, 20, 20)
    assert torch.allclose(both[1, 1], one, atol=1e-6)


def test_float32_close_to_float64():
    f, mask = _case(seed=3)
    g64 = optimise_tonal(f, mask)
    g32 = optimise_tonal(f.float(), mask)
    assert g32.dtype == torch.float32
    assert _err(g32.double(), mask, f) <= _err(g64, mask, f) * 1.05


@pytest.mark.parametrize("kwargs, match", [
    ({"tol": 0}, "tol"),
    ({"solve_tol": 2}, "solve_tol"),
    ({"max_iter": 0}, "max_iter"),
    ({"rounds": 0}, "rounds"),
    ({"levels": 1}, "levels"),
    ({"levels": torch.tensor([0.5, 0.2])}, "increasing"),
])
def test_checks(kwargs, match):
    f, mask = _case()
    with pytest.raises(UserInputError, match=match):
        optimise_tonal(f, mask, **kwargs)
    with pytest.raises(UserInputError, match="no known pixel"):
        optimise_tonal(f, torch.zeros_like(mask))
    with pytest.raises(UserInputError):
        optimise_tonal(f, mask[:5])


# ---------------------------------------------------------------------------------------------- EED

def _edge_case(size=24, seed=0):
    """A smooth image with a slanted edge (what EED keeps and homogeneous diffusion blurs), a random mask."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                          torch.linspace(0, 1, size, dtype=torch.float64), indexing="ij")
    f = 0.2 + 0.3 * x + 0.4 * (x + 0.3 * y > 0.6).double()
    mask = (torch.rand(size, size, generator=g) < 0.1).double()
    mask[0, 0] = 1
    return f, mask


def _eed_err(values, mask, f):
    return float((inpaint_eed(values, mask, tol=1e-8, max_iter=500) - f).square().sum())


@pytest.mark.slow   # three EED tonal optimisations
def test_eed_values_lower_the_eed_error_below_the_own_and_the_diffusion_optimal_values():
    f, mask = _edge_case()
    r = optimise_tonal(f, mask, operator="eed", full_output=True)
    own, hd = _eed_err(f, mask, f), _eed_err(optimise_tonal(f, mask), mask, f)
    opt = _eed_err(r.values, mask, f)
    assert opt < 0.8 * own and opt < hd, (opt, own, hd)      # at least 1 dB
    # the reported inpainting is EED's of the returned values
    assert torch.allclose(r.u, inpaint_eed(r.values, mask, tol=1e-8, max_iter=500), atol=1e-3)
    assert torch.equal(r.values[mask == 0], f[mask == 0])


def test_the_eed_linearisation_is_exact_at_its_point_and_its_adjoint_is_the_transpose():
    f, mask = _edge_case(size=16)
    f4, m = f[None, None], mask[None, None]
    u = eed.solve_unchecked(f4, m, tol=1e-12)
    lin = eed.linearised(f4, m, u, solve_tol=1e-13)
    assert torch.allclose(lin.forward(f4), u, atol=1e-9)
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(f4.shape, dtype=f4.dtype, generator=g), torch.rand(f4.shape, dtype=f4.dtype, generator=g)
    lhs, rhs = float((lin.forward(a) * b).sum()), float((a * lin.adjoint(b)).sum())
    assert abs(lhs - rhs) < 1e-9 * abs(lhs)


@pytest.mark.slow   # EED tonal optimisations per image and batched
def test_eed_values_on_levels_and_batches_equal_single_calls():
    f, mask = _edge_case()
    q = optimise_tonal(f, mask, operator="eed", levels=16)
    on = q[mask > 0]
    assert torch.allclose(on * 15, torch.round(on * 15), atol=1e-12)
    other, _ = _edge_case(seed=3)
    both = optimise_tonal(torch.stack([f, other])[:, None], mask, operator="eed")
    one = optimise_tonal(other, mask, operator="eed")
    assert torch.allclose(both[1, 0], one, atol=1e-6)


def test_an_unknown_operator_is_refused_by_name():
    f, mask = _case()
    served = ", ".join(repr(name) for name, op in OPERATORS.items() if op.tonal)
    assert served.startswith("'diffusion', 'eed'")
    with pytest.raises(UserInputError, match=f"operator must be one of {served}, got 'tv'"):
        optimise_tonal(f, mask, operator="tv")
