"""The fused CPU loops of FGP (the compiled extension ``pdeflow.tv._fgp_kernel``) against the PyTorch path they
replace: the same iterates to round-off, the same restarts, the same gap, the same answers of ``rof``."""
from __future__ import annotations

import importlib
import os

import pytest
import torch

from pdeflow.ops import div, gradient_norm
from pdeflow.tv import duality_gap, rof

R = importlib.import_module("pdeflow.tv._rof_methods")
ROWS = importlib.import_module("pdeflow.tv._fused_rows")


def _problem(dtype, B, C, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    # piecewise constant plus noise: flat regions (the projection active and not) and edges
    f = (torch.rand(B, C, 1, 1, generator=g) + (torch.rand(B, C, H, W, generator=g) > 0.5) * 0.5
         + 0.2 * torch.randn(B, C, H, W, generator=g)).to(dtype)
    lam = torch.tensor([0.05, 0.3, 0.12, 1.0][:B], dtype=dtype).reshape(B, 1, 1, 1)
    return f, lam


def _states(f, lam, channelwise, monkeypatch):
    p0 = torch.zeros(f.shape[0], f.shape[1], 2, *f.shape[2:], dtype=f.dtype)
    monkeypatch.setattr(R, "FUSED", True)
    fused = R._fgp_init(f, lam, p0, channelwise)
    monkeypatch.setattr(R, "FUSED", False)
    eager = R._fgp_init(f, lam, p0, channelwise)
    assert "pp" in fused and "pp" not in eager     # the two paths, as chosen by _fgp_init
    return fused, eager


def test_the_extension_is_built_in_this_install():
    # `pip install -e .` compiles it (setup.py); an install without it would silently run the PyTorch path
    importlib.import_module("pdeflow.tv._fgp_kernel")
    if os.environ.get("PDEFLOW_FUSED", "1") != "0":
        assert R.FUSED


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape, channelwise", [((1, 1, 17, 23), False), ((3, 3, 19, 13), False),
                                                ((2, 3, 12, 31), True), ((1, 1, 1, 9), False),
                                                ((2, 1, 8, 1), False), ((1, 2, 2, 2), False)])
def test_iterates_equal_the_pytorch_path(dtype, shape, channelwise, monkeypatch):
    f, lam = _problem(dtype, *shape)
    fused, eager = _states(f, lam, channelwise, monkeypatch)
    # The same arithmetic, but PyTorch's kernels fuse some multiply-adds where the CPU has FMA (the extension,
    # built for any CPU of its platform, does not): an ulp here and there, which the iteration carries on.
    # float64: round-off; float32: a few ulps of |p| <= 1, growing slowly with the iterations.
    eps = torch.finfo(dtype).eps
    restarts = 0
    for it in range(60):
        R._fgp_step(fused, f, lam, channelwise)
        R._fgp_step(eager, f, lam, channelwise)
        atol = 1e-12 if dtype == torch.float64 else (4 + it) * eps
        assert torch.allclose(fused["p"], eager["p"], rtol=0, atol=atol), (it, (fused["p"] - eager["p"]).abs().max())
        # the same momentum: t is 1 exactly after a restart, the same recurrence otherwise
        assert torch.equal(fused["t"] == 1, eager["t"].reshape(-1) == 1), it
        assert torch.allclose(fused["t"], eager["t"].reshape(-1), rtol=1e-12 if dtype == torch.float64 else 1e-6)
        restarts += int(((fused["t"] == 1) & (it > 0)).sum())
    if min(shape[2:]) > 2:
        assert restarts > 0     # the restart rule was exercised


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C, channelwise", [(1, False), (3, False), (3, True)])
def test_gap_equals_the_pytorch_path(dtype, C, channelwise, monkeypatch):
    f, lam = _problem(dtype, 2, C, 21, 18, seed=1)
    fused, eager = _states(f, lam, channelwise, monkeypatch)
    for _ in range(25):
        R._fgp_step(fused, f, lam, channelwise)
        R._fgp_step(eager, f, lam, channelwise)
    u1, p1, gap1, primal1, bound1 = R._dual_gap(fused, f, lam, channelwise)
    u2, p2, gap2, primal2, bound2 = R._dual_gap(eager, f, lam, channelwise)
    assert u1.dtype == u2.dtype == dtype and gap1.dtype == torch.float64
    eps = torch.finfo(dtype).eps
    assert torch.allclose(u1, u2, rtol=0, atol=16 * eps * float(f.abs().max()))
    assert torch.allclose(primal1, primal2, rtol=1e3 * eps)
    # the fused sums are float64 (the PyTorch path's are in the working precision): within the bound of the
    # gap's round-off, and in float64 that bound is round-off itself
    assert ((gap1 - gap2).abs() <= bound1 + bound2).all(), (gap1, gap2, bound1)
    assert torch.allclose(bound1, bound2, rtol=1e-3)
    # and against the gap of the same iterate recomputed in float64 by the public function
    f64, p64, lam64 = f.double(), p1.double(), lam.double()
    g64, _ = duality_gap(f64, f64 + lam64 * div(p64), p64, lam64, channelwise=channelwise)
    assert ((gap1 - g64).abs() <= bound1).all(), (gap1, g64, bound1)


def test_row_ranges_on_threads_give_the_same_iterates(monkeypatch):
    # one call split into row ranges on threads (large images, torch threads > 1) against one range
    f, lam = _problem(torch.float32, 2, 3, 40, 33, seed=2)
    monkeypatch.setattr(R, "FUSED", True)
    p0 = torch.zeros(2, 3, 2, 40, 33)
    fused, one = R._fgp_init(f, lam, p0, False), R._fgp_init(f, lam, p0, False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        for _ in range(30):
            monkeypatch.setattr(ROWS, "FUSED_GRAIN", 1)            # 3 row ranges
            R._fgp_step(fused, f, lam, False)
            monkeypatch.setattr(ROWS, "FUSED_GRAIN", 1 << 40)      # one
            R._fgp_step(one, f, lam, False)
            assert torch.equal(fused["p"], one["p"])
        monkeypatch.setattr(ROWS, "FUSED_GRAIN", 1)
        split = R._dual_gap(fused, f, lam, False)
        monkeypatch.setattr(ROWS, "FUSED_GRAIN", 1 << 40)
        whole = R._dual_gap(one, f, lam, False)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(split[0], whole[0])
    assert torch.allclose(split[2], whole[2], rtol=1e-12, atol=1e-14)


def test_autograd_keeps_the_pytorch_path(fused_loops):
    f, lam = _problem(torch.float64, 1, 1, 8, 8)
    p = torch.zeros(1, 1, 2, 8, 8, dtype=torch.float64)
    assert R.fused_applies(f, lam, p)
    assert not R.fused_applies(f.clone().requires_grad_(), lam, p)
    assert not R.fused_applies(f, lam.clone().requires_grad_(), p)
    with torch.no_grad():
        assert R.fused_applies(f.clone().requires_grad_(), lam, p)
    assert not R.fused_applies(f.half(), lam.half(), p.half())


def _certified_distance(f, r1, r2, lam, channelwise):
    """A bound on ||u1 - u2|| from the gaps of both answers: ||u - u*||^2 <= 2 gap(u, p)."""
    bound = 0.0
    for r in (r1, r2):
        x = f.double().reshape(1, *f.shape[-3:])[None] if f.dim() == 3 else f.double()
        gap, _ = duality_gap(x, r.u.double().reshape(x.shape), r.p.double(), lam, channelwise=channelwise)
        bound = bound + (2 * gap.clamp_min(0)).sqrt()
    return bound


@pytest.mark.parametrize("precision, dtype", [("input", torch.float64), ("auto", torch.float64),
                                              ("input", torch.float32)])
def test_rof_answers_agree_with_and_without_the_kernel(precision, dtype, monkeypatch):
    # a batch with per-image lam: images converge at different checks and leave the fused state's batch
    f, _ = _problem(torch.float64, 3, 3, 48, 40, seed=3)
    f = f.to(dtype)
    lam = torch.tensor([0.02, 0.1, 0.3], dtype=dtype)
    out = {}
    for fused in (True, False):
        monkeypatch.setattr(R, "FUSED", fused)
        out[fused] = rof(f, lam, full_output=True, precision=precision, channelwise=False)
    r1, r2 = out[True], out[False]
    assert r1.converged.all() and r2.converged.all()
    # both certified: their distance is within what their gaps allow, image by image
    lam64 = lam.double().reshape(3, 1, 1, 1)
    distance = (r1.u.double() - r2.u.double()).flatten(1).norm(dim=1)
    assert (distance <= _certified_distance(f, r1, r2, lam64, False) + 1e-9).all(), distance
    # and the iterations are those of the same method (a round-off difference may move a stop by a check)
    assert ((r1.iterations - r2.iterations).abs() <= 0.25 * r2.iterations + 20).all(), (r1.iterations,
                                                                                        r2.iterations)


def test_rof_to_round_off_with_and_without_the_kernel(monkeypatch):
    f, _ = _problem(torch.float64, 1, 1, 32, 32, seed=4)
    u = {}
    for fused in (True, False):
        monkeypatch.setattr(R, "FUSED", fused)
        u[fused] = rof(f, 0.1, tol=1e-13, precision="input", max_iter=100000)
    assert float((u[True] - u[False]).abs().max()) <= 1e-6


# --------------------------------------------------------------------------- the block solver (pdeflow.tv.subdomain)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C, held", [(1, False), (3, True), (1, True)])
def test_block_solver_iterates_equal_the_pytorch_loop(dtype, C, held, monkeypatch):
    from pdeflow.tv import subdomain
    g = torch.Generator().manual_seed(5)
    b, H, W = 2, 27, 35
    f = ((torch.rand(b, C, H, W, generator=g) > 0.5) + 0.2 * torch.randn(b, C, H, W, generator=g)).to(dtype)
    p = torch.zeros(b, C, 2, H, W, dtype=dtype)
    free = torch.ones(H, W, dtype=torch.bool)
    if held:       # held duals on a band of rows and of columns, the warm start elsewhere
        free[:3], free[:, -4:] = False, False
        p[...] = (0.6 * torch.rand(p.shape, generator=g) - 0.3).to(dtype)
    region = (slice(1, None), slice(None))
    out = {}
    for fused in (True, False):
        monkeypatch.setattr(subdomain, "FUSED", fused)
        out[fused] = subdomain.solve_subdomain(f, p, 0.15, free, region, tol=1e-30, max_iter=40, check_every=1000)
    x1, x2 = out[True], out[False]
    assert torch.equal(x1[..., ~free], p[..., ~free])       # the held duals are held
    # rof's step in both (the compiled loop; PyTorch a row block at a time), summed in other orders: round-off,
    # except that both keep the last move in float32: a round-off difference in a move may round it to the
    # neighbouring float32 (6e-8 of the move) in one path and not the other, which in float64 then shows.
    atol = 1e-9 if dtype == torch.float64 else 64 * torch.finfo(dtype).eps
    assert torch.allclose(x1, x2, rtol=0, atol=atol), (x1 - x2).abs().max()


def test_block_solver_stops_at_the_same_gap(monkeypatch):
    from pdeflow.tv import subdomain
    g = torch.Generator().manual_seed(6)
    f = torch.rand(1, 1, 30, 30, generator=g, dtype=torch.float64)
    p = torch.zeros(1, 1, 2, 30, 30, dtype=torch.float64)
    free = torch.ones(30, 30, dtype=torch.bool)
    region = (slice(None), slice(None))
    x = {}
    for fused in (True, False):
        monkeypatch.setattr(subdomain, "FUSED", fused)
        x[fused] = subdomain.solve_subdomain(f, p, 0.1, free, region, tol=1e-10)
        gap, energy = subdomain.block_gap(f, x[fused], 0.1, region)[0].tolist()
        assert gap <= 1e-10 * energy
    u = {k: subdomain.block_primal(f, v, 0.1) for k, v in x.items()}
    assert float((u[True] - u[False]).abs().max()) <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C, channelwise", [(1, False), (3, False), (3, True)])
def test_gap_reading_the_data_term_has_the_same_sums(dtype, C, channelwise, monkeypatch):
    """rof's gap reads FGP's data term from the state instead of forming it from f again: u and the sums are the
    same bits either way (the data term is formed alike in both)."""
    f, lam = _problem(dtype, 2, C, 17, 23, seed=5)
    fused, _ = _states(f, lam, channelwise, monkeypatch)
    for _ in range(7):
        R._fused_step(fused, channelwise)
    lam_b = lam.reshape(-1).contiguous()
    read = R._gap_pass(fused["p"], f.contiguous(), lam_b, channelwise, gf=fused["gf"])
    formed = R._gap_pass(fused["p"], f.contiguous(), lam_b, channelwise)
    assert torch.equal(read[0], formed[0]) and all((a == b).all() for a, b in zip(read[1], formed[1]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gap_without_u_has_the_same_sums(dtype):
    """The block solver asks the gap loop for its sums only (u 0: no image of u held): the sums are those of the
    call that writes u, to the bit, and u is not touched."""
    kernel = importlib.import_module("pdeflow.tv._fgp_kernel")
    f, _ = _problem(dtype, 2, 1, 17, 23, seed=3)
    g = torch.Generator().manual_seed(4)
    p = (torch.rand(2, 1, 2, 17, 23, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    lams = torch.tensor([0.1, 0.4], dtype=dtype)
    held = (torch.rand(17, 23, generator=g) > 0.8).to(torch.uint8)
    sums = {}
    for write in (True, False):
        u = torch.full_like(f, 7.0)
        s = torch.empty(2, 3, dtype=torch.float64)
        kernel.gap(dtype == torch.float64, p.data_ptr(), f.data_ptr(), 0, lams.data_ptr(), held.data_ptr(), 1, 16,
                   2, 21, u.data_ptr() if write else 0, s.data_ptr(), 2, 1, 17, 23, True, 0, 17)
        sums[write] = s
        assert bool((u == 7.0).all()) != write
    assert torch.equal(sums[True], sums[False])


# --------------------------------------------------------------------------- one momentum rule


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_fgp_takes_the_one_momentum_rule(dtype):
    """The compiled loop's momentum and the PyTorch paths' (rof's and the block solver's, per image) are one rule,
    pdeflow.tv._fgp.momentum: the same t and beta after a restart and after a descent."""
    momentum = importlib.import_module("pdeflow.tv._fgp").momentum
    kernel = importlib.import_module("pdeflow.tv._fgp_kernel")
    t = torch.tensor([1.0, 1.7, 3.25, 12.0, 40.5], dtype=dtype)
    up = torch.tensor([[0.3, -1e-3, 0.0, 2.0, -5.0], [-0.1, 0.2, -1e-9, -2.0, 1e-30]], dtype=torch.float64)
    tc, bc = t.clone(), torch.zeros_like(t)
    kernel.momentum(dtype == torch.float64, up.data_ptr(), 2, len(t), tc.data_ptr(), bc.data_ptr())
    uphill = up.sum(0) > 0
    tt, bt = momentum(t, uphill)
    assert torch.equal(tt, tc) and torch.equal(bt, bc)
    assert torch.equal(tt[uphill], torch.ones_like(tt[uphill])) and not bt[uphill].any()


# --------------------------------------------------------------------------- the certificate, projection and data


def _counting(monkeypatch, name):
    """Count the calls of the extension's loop ``name``."""
    calls = []
    loop = getattr(ROWS.kernel, name)
    monkeypatch.setattr(ROWS.kernel, name, lambda *a: calls.append(1) or loop(*a))
    return calls


@pytest.mark.parametrize("shape, channelwise", [((1, 1, 17, 23), False), ((2, 3, 19, 13), False),
                                                ((2, 3, 12, 31), True), ((1, 3, 1, 9), False),
                                                ((2, 1, 8, 1), False), ((1, 2, 2, 2), True)])
def test_certificate_equals_the_pytorch_path(shape, channelwise, monkeypatch):
    # any candidate u (not only f + lam div p) and a dual field with values where div reads none (its last row and
    # column) and above the unit ball: the sums of gap_and_primal, to round-off of float64 sums
    B, C, H, W = shape
    g = torch.Generator().manual_seed(7)
    f = torch.randn(shape, generator=g, dtype=torch.float64)
    u = f + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
    p = 0.9 * torch.randn(B, C, 2, H, W, generator=g, dtype=torch.float64)
    lam = torch.rand(B, 1, 1, 1, generator=g, dtype=torch.float64) + 0.05
    calls = _counting(monkeypatch, "certify")
    out = {}
    for fused in (True, False):
        monkeypatch.setattr(R, "FUSED", fused)
        out[fused] = R.gap_and_primal(f, u, p, lam, channelwise)
    assert len(calls) == 1
    for a, b in zip(out[True], out[False]):
        assert a.dtype == b.dtype == torch.float64 and a.shape == b.shape == (B,)
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-13 * float(out[False][1].abs().max())), (a, b)
    # one lam for every image broadcasts as in the PyTorch path; float32 keeps PyTorch's float32 sums
    monkeypatch.setattr(R, "FUSED", True)
    one = R.gap_and_primal(f, u, p, lam[:1].reshape(()), channelwise)
    monkeypatch.setattr(R, "FUSED", False)
    assert torch.allclose(one[0], R.gap_and_primal(f, u, p, lam[:1].reshape(()), channelwise)[0], rtol=1e-12)
    monkeypatch.setattr(R, "FUSED", True)
    R.gap_and_primal(f.float(), u.float(), p.float(), lam.float(), channelwise)
    assert len(calls) == 2


@pytest.mark.parametrize("shape, channelwise", [((1, 1, 17, 23), False), ((2, 3, 12, 31), True), ((2, 1, 8, 1), False)])
def test_solution_gap_equals_the_pytorch_path(shape, channelwise, monkeypatch):
    # u = f + lam div p and its certificate in one pass: u to round-off, the gap and primal of gap_and_primal
    B, C, H, W = shape
    g = torch.Generator().manual_seed(9)
    f = torch.randn(shape, generator=g, dtype=torch.float64)
    p = R.project(torch.randn(B, C, 2, H, W, generator=g, dtype=torch.float64), channelwise)
    lam = torch.rand(B, 1, 1, 1, generator=g, dtype=torch.float64) + 0.05
    out, u = {}, f + lam * div(p)           # div ignores p's unused entries (random here)
    for fused in (True, False):
        monkeypatch.setattr(R, "FUSED", fused)
        out[fused] = R.solution_gap(f, p.clone(), lam, channelwise)
    assert torch.allclose(out[True][0], u, rtol=0, atol=1e-14)
    for a, b in zip(out[True][1:], out[False][1:]):
        assert a.shape == b.shape == (B,)
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-13 * float(out[False][2].abs().max())), (a, b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C, channelwise", [(1, False), (3, False), (3, True)])
def test_projection_equals_the_pytorch_path(dtype, C, channelwise, monkeypatch):
    g = torch.Generator().manual_seed(8)
    p = (0.8 * torch.randn(2, C, 2, 13, 17, generator=g, dtype=torch.float64)).to(dtype)
    calls = _counting(monkeypatch, "project")
    out = {}
    for fused in (True, False):
        monkeypatch.setattr(R, "FUSED", fused)
        out[fused] = R.project(p, channelwise)
    assert len(calls) == 1 and out[True].dtype == dtype and out[True].data_ptr() != p.data_ptr()
    # p / max(|p|, 1), the same operations; PyTorch's vectorised sqrt is not always correctly rounded (the C one
    # is): an ulp apart at most
    assert torch.allclose(out[True], out[False], rtol=2 * torch.finfo(dtype).eps, atol=0)
    inside = gradient_norm(p, channelwise=channelwise) <= 1          # pixels left as they are, exactly
    kept = inside.unsqueeze(2).expand_as(p)
    assert torch.equal(out[True][kept], p[kept]) and not torch.equal(out[True], p)
    for fused in (True, False):                 # in place (out=p): the same values, in p's own storage
        monkeypatch.setattr(R, "FUSED", fused)
        q = p.clone()
        assert R.project(q, channelwise, out=q).data_ptr() == q.data_ptr() and torch.equal(q, out[fused])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fgp_data_equals_k_fgp_data(dtype, monkeypatch):
    f, lam = _problem(dtype, 3, 3, 14, 11, seed=9)
    monkeypatch.setattr(R, "FUSED", True)
    s = R._fgp_init(f, lam, torch.zeros(3, 3, 2, 14, 11, dtype=dtype), False)
    g0, g1, af = R.k_fgp_data(f, lam)
    assert torch.equal(s["gf"], torch.stack([g0, g1], 2))          # the same differences times the same factor
    assert torch.allclose(s["af"], af, rtol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C, joint", [(3, True), (1, True), (3, False)])
def test_the_block_solvers_step_is_rofs(dtype, C, joint):
    # rof's loop reads grad f / (8 lam) from a field and writes a new iterate beside the last two; the block solver's
    # forms it from f's rows and updates the iterate in place with its last move in float32 (no field of either
    # held). Forming the data term changes no bit; holding the move rounds it to float32 (6e-8 of a move). Coupled
    # channels take the loops' general path, one channel or separate channels their two loops a row.
    kernel = importlib.import_module("pdeflow.tv._fgp_kernel")
    f, lam = _problem(dtype, 2, C, 19, 26, seed=12)
    B, C, H, W = f.shape
    gf = torch.stack(R.k_fgp_data(f, lam)[:2], 2).contiguous()
    lam_b = lam.reshape(B).contiguous()
    double = dtype == torch.float64
    out = {}
    for layout in ("rof", "move", "move, data formed"):
        p, pp, z = (torch.zeros(B, C, 2, H, W, dtype=dtype) for _ in range(3))
        move = torch.zeros(B, C, 2, H, W, dtype=torch.float32)
        t, beta = torch.ones(B, dtype=dtype), torch.zeros(B, dtype=dtype)
        sums = torch.empty(1, B, dtype=torch.float64)
        for _ in range(20):
            if layout == "rof":
                kernel.step(double, p.data_ptr(), pp.data_ptr(), 0, z.data_ptr(), gf.data_ptr(), 0, 0, 0,
                            beta.data_ptr(), sums.data_ptr(), B, C, H, W, joint, 0, H)
                p, pp, z = z, p, pp
            else:
                data = (0, f.data_ptr(), lam_b.data_ptr()) if layout.endswith("formed") else (gf.data_ptr(), 0, 0)
                kernel.step(double, p.data_ptr(), 0, move.data_ptr(), 0, *data, 0, beta.data_ptr(),
                            sums.data_ptr(), B, C, H, W, joint, 0, H)
            kernel.momentum(double, sums.data_ptr(), 1, B, t.data_ptr(), beta.data_ptr())
        out[layout] = p
    assert torch.equal(out["move"], out["move, data formed"])
    atol = 1e-7 if double else 32 * torch.finfo(dtype).eps
    assert torch.allclose(out["rof"], out["move"], rtol=0, atol=atol)
    with pytest.raises(ValueError, match="every row"):       # in place: one call takes every row
        kernel.step(False, p.data_ptr(), 0, move.data_ptr(), 0, 0, f.data_ptr(), lam_b.data_ptr(), 0,
                    beta.data_ptr(), sums.data_ptr(), B, C, H, W, True, 0, H - 1)


def test_avx2_and_default_kernels_agree_to_the_bit():
    # the extension carries every kernel twice, for any CPU of the platform and for AVX2 (chosen at import where
    # the CPU has it): the same operations in the same order
    kernel = importlib.import_module("pdeflow.tv._fgp_kernel")
    f, lam = _problem(torch.float32, 2, 3, 23, 37, seed=10)
    out = {}
    before = kernel.wide(True)
    try:
        for wide in (False, True):
            kernel.wide(wide)
            s = R._fused_init(f, lam, torch.zeros(2, 3, 2, 23, 37))
            for _ in range(30):
                R._fused_step(s, False)
            u, p, gap, primal, bound = R._fused_gap(s, f, lam, False)
            p64 = R.project(p.double(), False)
            out[wide] = (p, u, gap, primal, s["gf"], p64,
                         *R.gap_and_primal(f.double(), u.double(), p64, lam.double(), False))
    finally:
        kernel.wide(before)
    for a, b in zip(out[False], out[True]):
        assert torch.equal(a, b)


def test_the_step_plan_follows_images_leaving_the_batch(monkeypatch):
    # rof's solve drops converged images from the state (new tensors, the plan kept as shared state): the next
    # step forms a new plan, and the iterates go on as in the PyTorch path
    f, lam = _problem(torch.float64, 3, 3, 15, 12, seed=11)
    fused, eager = _states(f, lam, False, monkeypatch)
    for _ in range(10):
        R._fgp_step(fused, f, lam, False)
        R._fgp_step(eager, f, lam, False)
    keep = torch.tensor([True, False, True])
    fused = {k: (v if k in R.SHARED_STATE else v[keep]) for k, v in fused.items()}
    eager = {k: (v if k in R.SHARED_STATE else v[keep]) for k, v in eager.items()}
    old = fused["plan"]
    for _ in range(10):
        R._fgp_step(fused, f[keep], lam[keep], False)
        R._fgp_step(eager, f[keep], lam[keep], False)
    assert fused["plan"] is not old and fused["plan"].B == 2
    assert torch.allclose(fused["p"], eager["p"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C, channelwise", [(1, False), (3, True)])
def test_the_step_estimate_is_its_sums_and_leaves_the_iterates(dtype, C, channelwise, monkeypatch):
    # the plain step's iterate to the bit; the slack of (u_q, y) and P(u_q) on every fourth row as float64 forms them
    f, lam = _problem(dtype, 2, C, 22, 19, seed=4)
    monkeypatch.setattr(R, "FUSED", True)
    p0 = torch.zeros(2, C, 2, 22, 19, dtype=dtype)
    s, plain = R._fgp_init(f, lam, p0, channelwise), R._fgp_init(f, lam, p0, channelwise)
    rows = torch.arange(22) % 4 == 3
    scale = 22 / int(rows.sum())
    for it in range(30):
        p, pp, beta = s["p"].double(), s["pp"].double(), s["beta"].double().reshape(-1, 1, 1, 1, 1)
        q = torch.where(beta == 0, p, p + beta * (p - pp))     # pp may be unset after a restart
        gap, primal = R.fgp_step_estimate(s, f, lam, channelwise)
        R._fgp_step(plain, f, lam, channelwise)
        assert torch.equal(s["p"], plain["p"]), it
        f64, lam64 = f.double(), lam.double()
        u_q = f64 + lam64 * div(q)
        g = torch.stack([torch.diff(u_q, dim=-2, append=u_q[..., -1:, :]),
                         torch.diff(u_q, dim=-1, append=u_q[..., -1:])], 2)
        slack = (g.norm(dim=2) - (g * s["p"].double()).sum(2))[..., rows, :].sum((1, 2, 3))
        fidelity = 0.5 * ((u_q - f64) ** 2)[..., rows, :].sum((1, 2, 3))
        tv = g.norm(dim=2)[..., rows, :].sum((1, 2, 3))
        lam_b = lam64.reshape(-1)
        # the slack cancels: within round-off of |h| (the TV)
        off = 50 * torch.finfo(dtype).eps * scale * lam_b * tv
        gap, primal = torch.from_numpy(gap), torch.from_numpy(primal)
        assert ((gap - scale * lam_b * slack).abs() <= off).all(), (it, gap, scale * lam_b * slack, off)
        assert ((primal - scale * (fidelity + lam_b * tv)).abs() <= off + 1e-12 * primal).all(), it


def test_the_step_estimate_saves_gap_evaluations_not_accuracy(monkeypatch, fused_loops):
    # rof's default with the step's estimate: fewer gap evaluations, the same certified answer
    f = (torch.rand(1, 1, 96, 96, generator=torch.Generator().manual_seed(3)) > 0.5).float() * 0.5
    f = f + 0.08 * torch.randn(1, 1, 96, 96, generator=torch.Generator().manual_seed(4))
    solve = importlib.import_module("pdeflow.tv.rof")
    counts = {}
    gap = R._fused_gap

    def counted(*args):
        counts[key] += 1
        return gap(*args)

    monkeypatch.setattr(R, "_fused_gap", counted)
    results = {}
    for key, estimates in (("evaluated", {}), ("estimated", solve.STEP_ESTIMATES)):
        counts[key] = 0
        monkeypatch.setattr(solve, "STEP_ESTIMATES", estimates)
        results[key] = rof(f, 0.05, full_output=True)
    assert counts["estimated"] < 0.7 * counts["evaluated"], counts
    for key in results:
        assert bool(results[key].converged.all())
    rms = float((results["estimated"].u - results["evaluated"].u).square().mean().sqrt())
    assert rms <= 2 * 2.5e-4 * float(f.max() - f.min()), rms



@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C, channelwise, n", [(1, False, 7), (3, True, 5), (3, False, 6), (1, False, 1)])
def test_steps_in_one_call_equal_one_call_a_step(dtype, C, channelwise, n, monkeypatch):
    # kernel.steps rotates the fields as the Python loop does: the same iterates, momentum and estimate, to the bit
    f, lam = _problem(dtype, 2, C, 21, 18, seed=5)
    monkeypatch.setattr(R, "FUSED", True)
    p0 = torch.zeros(2, C, 2, 21, 18, dtype=dtype)
    many, one = R._fgp_init(f, lam, p0, channelwise), R._fgp_init(f, lam, p0, channelwise)
    calls = []
    monkeypatch.setattr(ROWS.kernel, "steps", lambda *a, f=ROWS.kernel.steps: calls.append(a[-1]) or f(*a))
    for _ in range(4):
        est = R.fgp_step_estimate(many, f, lam, channelwise, n)
        for _ in range(n - 1):
            R._fgp_step(one, f, lam, channelwise)
        ref = R.fgp_step_estimate(one, f, lam, channelwise)
        assert (est is None) == (ref is None) and (est is None or all((a == b).all() for a, b in zip(est, ref)))
        assert all(torch.equal(many[k], one[k]) for k in ("p", "pp", "t", "beta"))
    assert calls == ([n] * 4 if n > 1 else [])
