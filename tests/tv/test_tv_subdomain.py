"""The ROF subproblem of one block (:mod:`pdeflow.tv.subdomain`): held duals stay, box and masked blocks agree,
float32 within its round-off of float64."""
import pytest
import torch

from pdeflow.tv import subdomain
from pdeflow.tv.subdomain import block_divergence, solve_subdomain


def _problem(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    f = torch.rand(2, 1, 40, 36, generator=g, dtype=torch.float64)
    p = 0.5 * (2 * torch.rand(2, 1, 2, 40, 36, generator=g, dtype=torch.float64) - 1)
    return f.to(dtype), p.to(dtype)


def _box(lo=(1, 1), hi=(38, 34)):
    free = torch.zeros(40, 36, dtype=torch.bool)
    free[lo[0]:hi[0], lo[1]:hi[1]] = True
    return free


REGION = (slice(1, 39), slice(1, 35))


def _energy(f, p, lam):
    return 0.5 * (f + lam * block_divergence(p, 2))[(Ellipsis,) + REGION].pow(2).sum().item()


@pytest.mark.parametrize("free", [_box(), _box((0, 0), (39, 36)), torch.rand(40, 36, generator=torch.Generator()
                                                                           .manual_seed(1)) > 0.3])
def test_held_duals_stay_and_the_objective_does_not_rise(free):
    f, p = _problem()
    out = solve_subdomain(f, p, 0.1, free, REGION, tol=1e-10)
    assert torch.equal(out[..., ~free], p[..., ~free])
    assert out.norm(dim=2).max().item() <= 1 + 1e-12
    assert _energy(f, out, 0.1) <= _energy(f, p, 0.1)


def test_row_blocks_of_any_size_give_the_same_iterates(monkeypatch):
    """The iteration runs row block by row block: one row at a time gives the iterates of the default blocks, for a
    box of free duals and a scattered mask."""
    f, p = _problem()
    for free in (_box(), torch.rand(40, 36, generator=torch.Generator().manual_seed(4)) > 0.3):
        whole = solve_subdomain(f, p, 0.1, free, REGION, tol=1e-10)
        with monkeypatch.context() as m:
            m.setattr(subdomain, "SLAB_ELEMENTS", 1)
            by_rows = solve_subdomain(f, p, 0.1, free, REGION, tol=1e-10)
        assert torch.allclose(by_rows, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("lam", [0.02, 0.1, 0.5])
def test_float32_is_within_its_round_off_of_float64(lam):
    """Over the weights the decomposed ROF is documented for (small to large against the unit range), the float32
    solve is within its certificate and 1e-5 RMS of the float64 one (the solver has no gradient: it is not in an
    autograd graph)."""
    f, p = _problem()
    free = _box()
    u64 = f + lam * block_divergence(solve_subdomain(f, p, lam, free, REGION, tol=1e-10), 2)
    f32, p32 = _problem(torch.float32)
    q32 = solve_subdomain(f32, p32, lam, free, REGION, tol=1e-6)
    assert q32.dtype == torch.float32
    u32 = f + lam * block_divergence(q32.double(), 2)
    # the certificate (a relative gap of 1e-6 bounds the RMS error by sqrt(2e-6 P / n), P below the start's
    # energy) and the stated float32 tolerance, 1e-5 of the data's unit range in RMS
    rms = (u32 - u64)[(Ellipsis,) + REGION].pow(2).mean().sqrt().item()
    assert rms <= (2e-6 * _energy(f, p, lam) / u64[(Ellipsis,) + REGION].numel()) ** 0.5
    assert rms <= 1e-5


@pytest.mark.parametrize("C", [1, 3])
def test_block_gap_and_primal_are_the_whole_image_certificate_and_read_float32_exactly(C):
    """On a whole image with zero duals on the far slabs (where the block's divergence and the image's agree),
    block_gap is pdeflow.tv.duality_gap (an independent implementation, the coupled colour TV included), and
    float32 data and duals give the float64 computation of the same values (they are read, not rounded)."""
    from pdeflow.tv import duality_gap
    from pdeflow.tv.subdomain import block_gap, block_primal

    g = torch.Generator().manual_seed(2)
    f = torch.rand(2, C, 12, 10, generator=g, dtype=torch.float64)
    p = torch.randn(2, C, 2, 12, 10, generator=g, dtype=torch.float64)
    p = p / p.norm(dim=(1, 2), keepdim=True).clamp(min=1.0)
    p[:, :, 0, -1, :] = 0
    p[:, :, 1, :, -1] = 0
    whole = (slice(None), slice(None))
    u = block_primal(f, p, 0.3)
    gap, energy = duality_gap(f, u, p, torch.full((2, 1, 1, 1), 0.3, dtype=torch.float64))
    got = block_gap(f, p, 0.3, whole)
    assert torch.allclose(got[:, 0], gap, rtol=1e-12, atol=1e-12)
    assert torch.allclose(got[:, 1], energy, rtol=1e-12, atol=1e-12)
    f32, p32 = f.float(), p.float()
    assert torch.equal(block_gap(f32, p32, 0.3, whole), block_gap(f32.double(), p32.double(), 0.3, whole))
    assert torch.equal(block_primal(f32, p32, 0.3), block_primal(f32.double(), p32.double(), 0.3))


@pytest.mark.parametrize("C", [1, 2])
def test_the_float32_momentum_gives_the_whole_problem_answer_in_3d(C):
    """A float64 solve keeps its last move in float32 (memory): with every dual free it is pdeflow.tv.rof's answer
    (an independent solver) for a volume and coupled channels, as in 2-D; row blocks of a row (SLAB_ELEMENTS made
    small) give the same iterates."""
    from pdeflow.tv import rof

    g = torch.Generator().manual_seed(3)
    f = torch.rand(1, C, 10, 9, 8, generator=g, dtype=torch.float64)
    free = torch.ones(10, 9, 8, dtype=torch.bool)
    whole = (slice(None),) * 3
    p = solve_subdomain(f, torch.zeros(1, C, 3, 10, 9, 8, dtype=torch.float64), 0.1, free, whole, tol=1e-10)
    u = f + 0.1 * block_divergence(p, 3)
    ref = rof(f[0], 0.1, ndim=3, tol=1e-12, max_iter=10 ** 6)
    assert (u[0] - ref).abs().max().item() <= 1e-5
    old = subdomain.SLAB_ELEMENTS
    try:
        subdomain.SLAB_ELEMENTS = 16
        q = solve_subdomain(f, torch.zeros_like(p), 0.1, free, whole, tol=1e-10)
    finally:
        subdomain.SLAB_ELEMENTS = old
    assert torch.allclose(q, p, rtol=0, atol=1e-12)


@pytest.mark.parametrize("C", [1, 3])
def test_the_stopping_sums_over_the_free_duals_equal_plain_operators(C):
    """The solver's stopping test and block_gap are one computation (``pdeflow.tv._fgp.block_sums``): with held
    duals it sums the gradient terms over the free pixels and ``||div p||^2`` over the region, as plain ops.grad of
    u = f + lam div p (coupled channels) gives them, in row blocks of any size."""
    import importlib

    from pdeflow import ops

    fgp = importlib.import_module("pdeflow.tv._fgp")
    g = torch.Generator().manual_seed(7)
    f = torch.rand(2, C, 40, 36, generator=g, dtype=torch.float64)
    p = 0.5 * (2 * torch.rand(2, C, 2, 40, 36, generator=g, dtype=torch.float64) - 1)
    free = torch.rand(40, 36, generator=g) > 0.3
    lam = 0.2
    d = block_divergence(p, 2)
    grad_u = ops.grad(f + lam * d)                                            # (b, C, 2, H, W)
    grad_u = grad_u.masked_fill(~free, 0.0)
    tv = grad_u.pow(2).sum((1, 2)).sqrt().flatten(1).sum(1)
    inner = (grad_u * p).flatten(1).sum(1)
    div_sq = d[(Ellipsis,) + REGION].pow(2).flatten(1).sum(1)
    for rows_per_block in (40, 7, 1):
        blocks = [slice(i, min(i + rows_per_block, 40)) for i in range(0, 40, rows_per_block)]
        u = torch.empty_like(f)
        got = fgp.block_sums(u, f, p, lam, blocks, REGION, held=~free)
        for a, b in zip(got, (tv, tv - inner, div_sq)):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not subdomain.FUSED, reason="the compiled loops are not built")
@pytest.mark.parametrize("lam", [0.02, 0.1, 0.5, 2.0])
@pytest.mark.parametrize("floor, tol, dtypes", [(None, 1e-5, None), (None, 1e-9, {True}),
                                                (0.0, 1e-10, {False, True})])
def test_a_float64_block_runs_in_float32_and_is_certified_in_float64(monkeypatch, floor, tol, dtypes, lam):
    """A float64 block runs in float32 where its target allows (certified, and finished where needed, in float64),
    in float64 below ``FLOAT32_TOL``; with the floor off float32 stalls short of 1e-10 and float64 takes over. Each
    answer is within the certificate of the float64-only one at small to large lam, held duals to the bit (no
    gradient: the block solver is not in an autograd graph)."""
    f, p = _problem()
    free = _box()
    seen = set()
    step = subdomain.kernel.step

    def recorded(double, *args):
        seen.add(bool(double))
        return step(double, *args)

    if floor is not None:
        monkeypatch.setattr(subdomain, "FLOAT32_TOL", floor)
    monkeypatch.setattr(subdomain.kernel, "step", recorded)
    out = solve_subdomain(f, p, lam, free, REGION, tol=tol)
    assert False in seen if dtypes is None else seen == dtypes     # float32 first (float64 after it where needed)
    monkeypatch.setattr(subdomain, "FLOAT32_TOL", float("inf"))
    ref = solve_subdomain(f, p, lam, free, REGION, tol=tol)
    assert torch.equal(out[..., ~free], p[..., ~free])
    assert out.norm(dim=2).max().item() <= 1 + 1e-12
    u, u_ref = (f + lam * block_divergence(q, 2) for q in (out, ref))
    # each within sqrt(2 tol E) of the subproblem's minimiser (E: its energy, below the start's)
    dist = (u - u_ref)[(Ellipsis,) + REGION].pow(2).sum().sqrt().item()
    assert dist <= 2 * (2 * tol * 2 * _energy(f, p, lam)) ** 0.5



@pytest.mark.filterwarnings("ignore::pdeflow.tv.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C", [1, 3])
def test_chunks_tied_gaps_sum_to_the_whole_image_gap_of_their_joined_candidate(dtype, C):
    """Four chunks (grown by a pixel where a neighbour is) each tie their own pixels but their first slab after
    another chunk: the candidates join, and the whole image's gap there (pdeflow.tv.duality_gap, independent) is
    the chunks' sum, under half the plain one, bounding the error of u; each task takes the smaller gap."""
    from pdeflow.dask.rof_blocks import gap_sums
    from pdeflow.datasets import builtin_image
    from pdeflow.tv import duality_gap, rof
    from pdeflow.tv._tied import tie_box
    from pdeflow.tv.subdomain import block_gap, block_primal, block_tied_gap

    n, lam = 48, 0.1
    photo = builtin_image("skimage/astronaut" if C == 3 else "skimage/camera")[:C, 100:100 + n, 200:200 + n]
    f = photo[None].double() + 0.08 * torch.randn(1, C, n, n, generator=torch.Generator().manual_seed(5))
    p = rof(f, lam, tol=1e-12, max_iter=150, precision="float64", full_output=True).p
    p[:, :, 0, -1], p[:, :, 1, :, -1] = 0, 0
    p = p / p.norm(dim=(1, 2), keepdim=True).clamp(min=1.0) * (1 - 1e-6)     # inside the ball after rounding too
    f, p = f.to(dtype).double(), p.to(dtype).double()       # float32 values are read exactly
    v, sums = torch.empty_like(f), torch.zeros(3, dtype=torch.float64)
    lam_t = torch.full((1, 1, 1, 1), lam, dtype=torch.float64)
    for r0, r1, c0, c1 in [(0, 20, 0, 20), (0, 20, 20, n), (20, n, 0, 20), (20, n, 20, n)]:
        faces = ((int(r0 > 0), int(r1 < n)), (int(c0 > 0), int(c1 < n)))
        box = (Ellipsis, slice(r0 - faces[0][0], r1 + faces[0][1]), slice(c0 - faces[1][0], c1 + faces[1][1]))
        fb, pb = f[box].to(dtype), p[box].to(dtype)
        own = tuple(slice(lo, s - hi) for (lo, hi), s in zip(faces, fb.shape[2:]))
        first = torch.zeros(fb.shape[2:], dtype=torch.bool)
        first[faces[0][0]] |= bool(faces[0][0])
        first[:, faces[1][0]] |= bool(faces[1][0])
        vb = block_primal(fb, pb, lam)
        tie_box(vb, pb, own, first)
        v[..., r0:r1, c0:c1] = vb[(Ellipsis,) + own]
        task = gap_sums(fb.numpy(), pb.flatten(1, 2).numpy(), faces=faces, lam=lam, C=C, tied=True)
        sums += torch.stack([block_tied_gap(fb, pb, lam, own, untied=first)[0], block_gap(fb, pb, lam, own)[0, 0],
                             torch.tensor(task[0, 0].item(), dtype=torch.float64)])
    tied, plain, tasks = sums.tolist()
    assert tied == pytest.approx(duality_gap(f, v, p, lam_t)[0].item(), rel=1e-10)
    assert tied < 0.5 * plain and tied <= tasks <= plain
    u = f + lam * block_divergence(p, 2)
    assert 0.5 * (u - rof(f, lam, tol=1e-12, max_iter=10 ** 6)).pow(2).sum().item() <= tied
    # nothing tied: block_gap's gap
    whole = (slice(None), slice(None))
    assert block_tied_gap(f, p, lam, whole, untied=torch.ones(n, n, dtype=torch.bool)).item() == \
        pytest.approx(block_gap(f, p, lam, whole)[0, 0].item(), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_block_given_atol_may_stop_on_its_tied_gap_and_keeps_that_accuracy(monkeypatch, dtype):
    """With an absolute target the compiled block solve also tries the tied candidate's gap (block_tied_gap, held
    duals left out): it stops on it here, and its own u is then within that gap of the subproblem's minimiser."""
    from pdeflow.datasets import builtin_image
    from pdeflow.tv.subdomain import block_tied_gap

    if not subdomain.FUSED:
        pytest.skip("the tied candidate is tried in the compiled loop")
    g = torch.Generator().manual_seed(6)
    f = builtin_image("skimage/camera")[:1, 200:240, 100:136].double()[None]
    f = f + 0.08 * torch.randn(f.shape, generator=g, dtype=torch.float64)
    p, free, lam = torch.zeros(1, 1, 2, 40, 36, dtype=torch.float64), _box(), 0.1
    ref = f + lam * block_divergence(solve_subdomain(f, p, lam, free, REGION, tol=1e-13, max_iter=10 ** 5), 2)
    tries = []

    def recorded(*args, **kwargs):       # a float64 block's float32 phase lends its iterate's memory (spare)
        tries.append(block_tied_gap(*args, **kwargs).item())
        return torch.tensor(tries[-1:], dtype=torch.float64)

    monkeypatch.setattr(subdomain, "block_tied_gap", recorded)
    atol = torch.tensor([1e-4], dtype=torch.float64)
    out = solve_subdomain(f.to(dtype), p.to(dtype), lam, free, REGION, tol=1e-12, atol=atol)
    assert tries and tries[-1] <= atol.item()
    u = f + lam * block_divergence(out.double(), 2)
    assert 0.5 * (u - ref)[(Ellipsis,) + REGION].pow(2).sum().item() <= atol.item()


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("atol", [None, 1e-4])
def test_a_float32_field_solved_in_float64_is_the_solve_of_its_float64_copy(overwrite, atol):
    """``dtype=torch.float64`` on float32 duals: the solve of their float64 copy, to the bit (``overwrite``: rounded
    into them)."""
    g = torch.Generator().manual_seed(7)
    f = torch.rand(1, 1, 40, 36, generator=g)
    p = (0.5 * torch.rand(1, 1, 2, 40, 36, generator=g) - 0.25).float()
    free, lam = _box(), 0.1
    kw = dict(tol=1e-5, atol=None) if atol is None else dict(tol=1e-12, atol=torch.tensor([atol], dtype=torch.float64))
    ref = solve_subdomain(f, p.double(), lam, free, REGION, **kw)
    given = p.clone()
    out = solve_subdomain(f, given, lam, free, REGION, overwrite=overwrite, dtype=torch.float64, **kw)
    if overwrite:
        assert out.data_ptr() == given.data_ptr() and torch.equal(out, ref.float())
    else:
        assert out.dtype == torch.float64 and torch.equal(out, ref) and torch.equal(given, p)
