"""Classical TV on volumes and anisotropic grids: rof, tv_flow and spectral_tv with ndim=3 / spacing.

Anchors (float64): the discrete ball's height falls at the rate (discrete surface) / (volume) of the
discrete TV; mass is conserved and TV never increases; a volume constant along D is the 2-D result;
rof is scikit-image's n-D ``denoise_tv_chambolle`` with ``weight = lam`` (unit spacing).
"""
import pytest
import torch

from pdeflow.errors import UserInputError
from pdeflow.tv import ND_METHODS, rof, spectral_tv, tv_flow
from pdeflow.tv._grid import Grid


def _ball(shape, r, h):
    """Indicator of the ball of radius ``r`` (length units) centred in a grid of spacing ``h``."""
    axes = [(torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * hk for n, hk in zip(shape, h)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return ((z * z + y * y + x * x) <= r * r).double()


def _tv(u, grid):
    """The discrete TV ``prod(h) sum |grad_h u|`` of a volume (D, H, W)."""
    return grid.voxel * grid.norm(grid.grad(u[None, None]), False).sum()


# the unit grid in the slow tier: the spaced one checks the same rule on a smaller volume
@pytest.mark.parametrize("h, shape", [pytest.param((1.0, 1.0, 1.0), (16, 16, 16), marks=pytest.mark.slow),
                                      ((2.0, 1.0, 1.0), (8, 16, 16))])
def test_ball_falls_at_discrete_surface_over_volume(h, shape):
    r = 5.0
    b = _ball(shape, r, h)
    grid = Grid(3, h)
    S = b.bool()
    rate = _tv(b, grid) / (grid.voxel * S.sum())      # discrete surface / volume (3 / r = 0.6 in the continuum)
    assert 0.6 < rate < 0.8
    times = [0.0, 0.25, 0.5, 0.75, 1.0]
    u = tv_flow(b, times, dt=0.125, tol=1e-6, spacing=h)
    m = torch.stack([x[S].mean() for x in u])
    slope = (m[0] - m[1:]) / torch.tensor(times[1:], dtype=torch.float64)
    # |p| <= 1 bounds the fall of the mean over S by TV(1_S) / |S| exactly; the first window meets it to
    # 2% (the voxel staircase rounds off later, so the slope then eases: not an exact discrete eigenfunction).
    assert bool((slope <= rate * (1 + 1e-6)).all())
    assert slope[0] >= 0.97 * rate
    assert bool((slope[1:] <= slope[:-1] + 1e-12).all())
    # still above the background at t = 1 (they have not met), mass conserved, TV never increases
    assert float(m[-1]) > float(u[-1][~S].mean()) + 0.1
    mass = u.sum((1, 2, 3))
    assert float((mass - mass[0]).abs().max()) < 1e-9 * float(mass[0])
    tvs = torch.stack([_tv(x, grid) for x in u])
    assert bool((tvs[1:] <= tvs[:-1] + 1e-9).all())


@pytest.mark.slow   # a 3-D and a 2-D solve to round-off
def test_volume_constant_along_depth_is_the_2d_result():
    g = torch.rand(9, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    v = g.expand(4, 9, 10).clone()
    for spacing in (None, (3.0, 1.0, 1.0)):
        r3 = rof(v, 0.3, ndim=3, spacing=spacing, tol=1e-13)
        r2 = rof(g, 0.3, tol=1e-13)
        assert float((r3 - r2).abs().max()) < 1e-9
    f3 = tv_flow(v, [0.2, 0.5], dt=0.1, ndim=3, tol=1e-10)
    f2 = tv_flow(g, [0.2, 0.5], dt=0.1, tol=1e-10)
    assert float((f3 - f2[:, None]).abs().max()) < 1e-7


@pytest.mark.slow   # 30000 scikit-image iterations; make test keeps the analytic ball and the 2-D comparisons
def test_rof_is_scikit_image_denoise_tv_chambolle():
    restoration = pytest.importorskip("skimage.restoration")
    f = torch.rand(8, 9, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    lam = 0.1
    r = rof(f, lam, ndim=3, tol=1e-14, full_output=True)
    assert bool(r.converged.all())
    grid = Grid(3, (1.0, 1.0, 1.0))

    def energy(u):
        return float(0.5 * ((u - f) ** 2).sum() + lam * _tv(u, grid))

    e_ours = energy(r.u)
    # The energy is 1-strongly convex, so ||v - u*||^2 <= 2 (E(v) - E(u*)) for any v; ours is within
    # sqrt(2 gap E) of u*.  scikit-image's Chambolle iteration (stopped on its energy change) must then lie
    # within sqrt(2 (E_sk - E_ours)) + sqrt(2 gap E) of ours: the same problem, same weight, to its tolerance.
    for iters in (1000, 30000):
        ref = torch.from_numpy(restoration.denoise_tv_chambolle(f.numpy(), weight=lam, eps=1e-14,
                                                                max_num_iter=iters))
        e_ref = energy(ref)
        assert e_ref >= e_ours - 1e-13
        bound = (2 * (e_ref - e_ours + 1e-13)) ** 0.5 + (2 * float(r.gap[0]) * e_ours) ** 0.5
        assert float((ref - r.u).norm()) <= bound
    assert float((ref - r.u).abs().max()) < 1e-5 and e_ref - e_ours < 1e-9 * e_ours
    # isotropic spacing h: weight = lam / h
    u_h = rof(f, 2 * lam, spacing=2.0, ndim=3, tol=1e-14)
    assert float((u_h - r.u).abs().max()) < 1e-7


@pytest.mark.slow   # every N-d method on volumes; the scikit-image check stays in make test
def test_every_nd_method_agrees_and_stops_per_volume():
    gen = torch.Generator().manual_seed(3)
    f = torch.rand(2, 1, 6, 7, 8, dtype=torch.float64, generator=gen)
    lam = torch.tensor([0.05, 0.4], dtype=torch.float64)
    ref = rof(f, lam, ndim=3, spacing=(2.0, 1.0, 0.5), tol=1e-12, full_output=True)
    assert bool(ref.converged.all()) and ref.p.shape == (2, 1, 3, 6, 7, 8)
    assert int(ref.iterations[0]) != int(ref.iterations[1])       # each volume stops on its own
    alone = rof(f[1:], lam[1:], ndim=3, spacing=(2.0, 1.0, 0.5), tol=1e-12)
    assert float((alone - ref.u[1:]).abs().max()) < 1e-6
    for method in ND_METHODS:
        u = rof(f, lam, method=method, ndim=3, spacing=(2.0, 1.0, 0.5), tol=1e-8, max_iter=100000)
        assert float((u - ref.u).abs().max()) < 1e-3, method


@pytest.mark.slow   # 3-D flows and a spectral decomposition
def test_flow_homogeneity_mean_shift_and_spectral_reconstruction():
    gen = torch.Generator().manual_seed(4)
    u0 = torch.rand(1, 1, 4, 5, 6, dtype=torch.float64, generator=gen)
    c, k, h = 3.0, 0.7, (1.5, 1.0, 1.0)
    u = tv_flow(u0, [0.1, 0.2], dt=0.05, tol=1e-9, spacing=h)
    uc = tv_flow(c * u0, [c * 0.1, c * 0.2], dt=c * 0.05, tol=1e-9, spacing=h)
    assert float((uc - c * u).abs().max()) < 1e-5
    us = tv_flow(u0 + k, [0.1, 0.2], dt=0.05, tol=1e-9, spacing=h)
    assert float((us - (u + k)).abs().max()) < 1e-5
    s = spectral_tv(u0, dt=0.05, n_steps=6, ndim=3, tol=1e-8)
    assert s.spectrum.shape == (6, 1) and s.phi.shape == (6, 1, 1, 4, 5, 6)
    assert float((s.filter().sum(0) + s.residual - u0).abs().max()) < 1e-12
    assert float((s.reconstruct() - u0).abs().max()) < 1e-12


def test_extinction_step_on_a_grid():
    # A nearly flat volume reaches its mean within one step (extinction step, no solver), flux feasible.
    u0 = 1.0 + 1e-4 * torch.rand(5, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    u, ut, p = tv_flow(u0, [1.0], dt=1.0, spacing=(2.0, 1.0, 0.5), return_ut=True, return_dual=True)
    assert float((u[0] - u0.mean()).abs().max()) < 1e-14
    grid = Grid(3, (2.0, 1.0, 0.5))
    assert p.shape == (1, 3, 5, 6, 7)
    assert float((grid.div(p[0][None])[0] - (u[0] - u0)).abs().max()) < 1e-14
    assert float(grid.norm(p[0][None, None], False).max()) <= 1.0


@pytest.mark.parametrize("spacing", [None, pytest.param((2.0, 1.0, 0.5), marks=pytest.mark.slow)])
def test_rof_gradcheck_on_a_tiny_volume(spacing):
    x = torch.rand(1, 1, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    x.requires_grad_()
    lam = torch.tensor([0.08], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rof(a, b, ndim=3, spacing=spacing, tol=1e-13), (x, lam),
                                    eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("call, name", [
    (lambda v: rof(v, 0.1, ndim=3, spacing=(1.0, 1.0)), "spacing"),
    (lambda v: rof(v, 0.1, spacing=(1.0, 0.0, 1.0)), "spacing"),
    (lambda v: rof(v, 0.1, spacing=(1.0, -2.0, 1.0)), "spacing"),
    (lambda v: rof(v, 0.1, ndim=4), "ndim"),
    (lambda v: rof(v, 0.1, ndim=3, method="admm"), "method"),
    (lambda v: rof(v[0, 0, 0], 0.1, ndim=3), "f"),
    (lambda v: tv_flow(v, [0.1], ndim=3, solver="admm"), "solver"),
    (lambda v: tv_flow(v, [0.1], ndim=3, method="explicit"), "method"),
    (lambda v: tv_flow(v, [0.1], spacing=(1.0, 1.0)), "u0"),
])
def test_bad_input_is_one_line_naming_the_argument(call, name):
    v = torch.rand(1, 1, 3, 4, 5)
    with pytest.raises(UserInputError) as info:
        call(v)
    msg = str(info.value)
    assert "\n" not in msg and name in msg
