"""FGP on volumes in the fused loops (``pdeflow.tv._fgp_volume``, ``_fgp_volume.c``) against the PyTorch path of
:class:`~pdeflow.tv._grid.Grid` they replace: the same iterates, gap and certificates to round-off, on any spacing,
coupled and separate channels, per-volume lam; the same answers of ``rof``."""
from __future__ import annotations

import importlib

import pytest
import torch

from pdeflow.tv import ACCURACY, rof

R = importlib.import_module("pdeflow.tv._rof_methods")
ND = importlib.import_module("pdeflow.tv._rof_nd")
ROWS = importlib.import_module("pdeflow.tv._fused_rows")
Grid = importlib.import_module("pdeflow.tv._grid").Grid

pytestmark = pytest.mark.skipif(not R.FUSED, reason="the compiled loops are not built")

CASES = [(1, True, (1.0, 1.0, 1.0)), (2, False, (1.0, 1.0, 1.0)), (2, False, (2.0, 1.0, 0.5)),
         (3, True, (0.7, 1.3, 1.0))]


def _problem(dtype, B, C, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    # a step along the first axis plus noise: flat regions, edges, restarts
    step = (torch.arange(shape[0]) >= shape[0] // 2).to(torch.float64).reshape(-1, 1, 1) * 0.6
    f = (step + 0.15 * torch.randn(B, C, *shape, generator=g, dtype=torch.float64)).to(dtype)
    lam = torch.tensor([0.3, 0.08][:B], dtype=dtype).reshape(B, 1, 1, 1, 1)
    return f, lam


def _loops(monkeypatch, fused):
    """The solvers' switch between the compiled loops and PyTorch, in both modules of methods."""
    for module in (R, ND):
        monkeypatch.setattr(module, "FUSED", fused)


def _run(f, lam, grid, channelwise, fused, monkeypatch, steps=40):
    _loops(monkeypatch, fused)
    init, step = ND.ND_STEPS["fgp"]
    p0 = torch.zeros(f.shape[0], f.shape[1], 3, *f.shape[2:], dtype=f.dtype)
    s = init(grid)(f, lam, p0, channelwise)
    assert ("pp" in s) == fused            # the path, as the init chose it
    for _ in range(steps):
        step(s, f, lam, channelwise)
    return ND.nd_gap(s, f, lam, channelwise)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 1e-4)])
@pytest.mark.parametrize("C, channelwise, spacing", CASES)
def test_iterates_and_gap_equal_the_pytorch_path(dtype, rtol, C, channelwise, spacing, monkeypatch):
    f, lam = _problem(dtype, 2, C, (7, 9, 11))
    grid = Grid(3, spacing)
    (u1, p1, gap1, primal1, _), (u0, p0, gap0, primal0, _) = (
        _run(f, lam, grid, channelwise, fused, monkeypatch) for fused in (True, False))
    eps = torch.finfo(dtype).eps
    assert float((p1 - p0).abs().max()) <= 2000 * eps              # 40 iterations of round-off
    assert float((u1 - u0).abs().max()) <= 2000 * eps
    assert torch.equal(p1[:, :, 0, -1], torch.zeros_like(p1[:, :, 0, -1]))    # unused entries stay zero
    assert torch.allclose(primal1, primal0, rtol=rtol)
    # the gap is small against the primal energy: compare it on that scale
    assert float(((gap1 - gap0) / primal0).abs().max()) <= rtol


@pytest.mark.parametrize("C, channelwise, spacing", CASES)
def test_certificates_equal_the_pytorch_path(C, channelwise, spacing, monkeypatch):
    # any candidate u, a dual field above the unit ball with values where div reads none: gap_and_primal's sums,
    # and u = f + lam div p with its gap (solution_gap), float64
    g = torch.Generator().manual_seed(5)
    shape = (2, C, 5, 6, 7)
    grid = Grid(3, spacing)
    f = torch.randn(shape, generator=g, dtype=torch.float64)
    u = f + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
    p = 0.9 * torch.randn(2, C, 3, 5, 6, 7, generator=g, dtype=torch.float64)
    lam = torch.tensor([0.2, 0.05], dtype=torch.float64).reshape(2, 1, 1, 1, 1)
    calls = []
    certify, gap3 = ROWS.kernel.certify3, ROWS.kernel.gap3
    monkeypatch.setattr(ROWS.kernel, "certify3", lambda *a: calls.append("certify3") or certify(*a))
    monkeypatch.setattr(ROWS.kernel, "gap3", lambda *a: calls.append("gap3") or gap3(*a))
    out = {}
    for fused in (True, False):
        _loops(monkeypatch, fused)
        out[fused] = (R.gap_and_primal(f, u, p, lam, channelwise, grid),
                      R.solution_gap(f, grid.zero_unused(p.clone()), lam, channelwise, grid))
    assert calls == ["certify3", "gap3"]
    (cert1, sol1), (cert0, sol0) = out[True], out[False]
    for a, b in zip(cert1, cert0):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-13 * float(cert0[1].abs().max()))
    assert torch.allclose(sol1[0], sol0[0], rtol=0, atol=1e-14)
    for a, b in zip(sol1[1:], sol0[1:]):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-13 * float(sol0[2].abs().max()))


def test_slab_ranges_on_threads_give_the_same_iterates(monkeypatch):
    f, lam = _problem(torch.float32, 2, 2, (9, 8, 7), seed=2)
    grid = Grid(3, (1.0, 1.0, 1.0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        monkeypatch.setattr(ROWS, "FUSED_GRAIN", 1)            # 3 slab ranges
        split = _run(f, lam, grid, False, True, monkeypatch, steps=25)
        monkeypatch.setattr(ROWS, "FUSED_GRAIN", 1 << 40)      # one
        whole = _run(f, lam, grid, False, True, monkeypatch, steps=25)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(split[1], whole[1]) and torch.equal(split[0], whole[0])
    assert torch.allclose(split[2], whole[2], rtol=1e-12)


def test_autograd_and_other_grids_keep_the_pytorch_path(monkeypatch):
    f, lam = _problem(torch.float64, 1, 1, (4, 5, 6))
    p = torch.zeros(1, 1, 3, 4, 5, 6, dtype=torch.float64)
    volume = importlib.import_module("pdeflow.tv._fgp_volume")
    grid = Grid(3, (1.0, 1.0, 1.0))
    assert volume.volume_applies(grid, f, lam, p)
    assert not volume.volume_applies(grid, f.clone().requires_grad_(), lam, p)
    assert not volume.volume_applies(grid, f, lam.float(), p)
    assert not volume.volume_applies(Grid(2, (1.0, 2.0)), f[:, :, 0], lam[..., 0], p[:, :, :2, 0])
    # a gradient through rof on a volume: the PyTorch path, as before
    x = f.clone().requires_grad_()
    rof(x, 0.2, ndim=3, tol=1e-8).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rof_on_volumes_agrees_with_and_without_the_kernel(dtype, monkeypatch):
    # rof's default (float32 iterations, float64 certificate) on a batch with per-volume lam and a spacing
    f, _ = _problem(dtype, 2, 1, (12, 10, 14), seed=3)
    lam = torch.tensor([0.05, 0.25], dtype=dtype)
    out = {}
    for fused in (True, False):
        _loops(monkeypatch, fused)
        out[fused] = rof(f, lam, spacing=(1.5, 1.0, 1.0), full_output=True)
    r1, r0 = out[True], out[False]
    assert r1.converged.all() and r0.converged.all()
    # both certified: their distance is within what their gaps allow, volume by volume
    grid = Grid(3, (1.5, 1.0, 1.0))
    bound = 0.0
    _loops(monkeypatch, False)
    for r in (r1, r0):
        gap, _ = R.gap_and_primal(f.double(), r.u.double(), r.p.double(), lam.double().reshape(2, 1, 1, 1, 1), False,
                                  grid)
        bound = bound + (2 * gap.clamp_min(0)).sqrt()
    distance = (r1.u.double() - r0.u.double()).flatten(1).norm(dim=1)
    assert (distance <= bound + 1e-9).all(), (distance, bound)
    assert ((r1.iterations - r0.iterations).abs() <= 0.25 * r0.iterations + 20).all()


def test_avx2_and_default_loops_agree_to_the_bit(monkeypatch):
    # the volume loops are built twice too (any CPU of the platform, and AVX2): the same operations in the same order
    extension = importlib.import_module("pdeflow.tv._fgp_kernel")
    f, lam = _problem(torch.float32, 2, 2, (6, 7, 9), seed=11)
    grid = Grid(3, (1.0, 2.0, 1.0))
    out = {}
    before = extension.wide(True)
    try:
        for wide in (False, True):
            extension.wide(wide)
            u, p, gap, primal, _ = _run(f, lam, grid, False, True, monkeypatch, steps=30)
            out[wide] = (u, p, gap, primal, *R.gap_and_primal(f.double(), u.double(), p.double(), lam.double(), False,
                                                               grid))
    finally:
        extension.wide(before)
    for a, b in zip(out[False], out[True]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("lam", [0.02, 0.1, 0.5])
def test_float32_volumes_agree_with_float64_within_the_certified_accuracy(lam):
    # the fused loops in both precisions at rof's default: each certifies an RMS error of at most accuracy x range,
    # so the two answers are at most twice that apart (RMS over the voxels)
    f64, _ = _problem(torch.float64, 1, 1, (10, 12, 9), seed=6)
    u64 = rof(f64, lam, ndim=3)
    u32 = rof(f64.float(), lam, ndim=3)
    assert u32.dtype == torch.float32
    rms = float((u32.double() - u64).pow(2).mean().sqrt())
    assert rms <= 2 * ACCURACY * float(f64.max() - f64.min()), rms
