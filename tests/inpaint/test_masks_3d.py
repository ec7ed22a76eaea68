"""Inpainting masks on volumes (issue 47, item 3): random_mask, analytic_mask and dithering with ndim=3."""
import pytest
import torch

from pdeflow.errors import UserInputError
from pdeflow.inpaint import analytic_mask, blue_noise_tile, dither, inpaint_diffusion, random_mask
from pdeflow.inpaint.masks.analytic import laplacian_density

SIZES = [(5, 7, 9), (3, 11, 6), (8, 8, 8)]
DENSITIES = [0.02, 0.05, 0.1, 0.37]


def _smooth_volume(D=20, H=24, W=28):
    z, y, x = torch.meshgrid(*(torch.linspace(0, 1, n, dtype=torch.float64) for n in (D, H, W)), indexing="ij")
    return (torch.exp(-((z - .4) ** 2 + (y - .5) ** 2 + (x - .6) ** 2) / 0.02)
            + 0.5 * torch.exp(-((z - .7) ** 2 + (y - .3) ** 2 + (x - .3) ** 2) / 0.01))[None, None]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("density", DENSITIES)
def test_exact_voxel_counts(size, density):
    k = round(density * size[0] * size[1] * size[2])
    m = random_mask((2, 1, *size), density, generator=1, ndim=3)
    assert m.shape == (2, 1, *size) and m.flatten(1).sum(1).tolist() == [k, k]
    f = torch.rand(2, 2, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for kw in ({"ndim": 3}, {"spacing": (2.5, 0.7, 0.7)}, {"ndim": 3, "random": True, "generator": 3}):
        a = analytic_mask(f, density, **kw)
        assert a.shape == (2, 1, *size) and a.flatten(1).sum(1).tolist() == [k, k]
        assert set(a.unique().tolist()) <= {0.0, 1.0}
    d = dither(torch.rand(3, 1, *size, generator=torch.Generator().manual_seed(2)), density)
    assert d.flatten(1).sum(1).tolist() == [k, k, k]


def test_volume_shapes_and_unbatching():
    f = torch.rand(6, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert analytic_mask(f, 0.1, ndim=3).shape == (6, 7, 8)
    assert analytic_mask(f[None], 0.1, ndim=3).shape == (1, 6, 7, 8)
    assert random_mask((6, 7, 8), 0.1, ndim=3).sum() == round(0.1 * 6 * 7 * 8)
    # a length-3 spacing implies ndim=3, as in pdeflow.ops and inpaint_diffusion
    assert random_mask((6, 7, 8), 0.1, spacing=(1.0, 2.0, 2.0), generator=0).sum() == round(0.1 * 6 * 7 * 8)


def test_2d_calls_unchanged():
    # ndim=2 (default) counts per (H, W) slice, as before; a 5-D shape is a stack of images
    m = random_mask((2, 3, 8, 8), 0.25, generator=0)
    assert m.flatten(2).sum(-1).eq(16).all()
    assert torch.equal(m, random_mask((2, 3, 8, 8), 0.25, generator=0, ndim=2))
    f = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(analytic_mask(f, 0.1), analytic_mask(f, 0.1, ndim=2, snap=True))


def test_density_constant_along_depth():
    img = torch.rand(1, 2, 12, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    vol = img[:, :, None].expand(1, 2, 7, 12, 10).contiguous()
    p = laplacian_density(vol, 1.5, ndim=3)
    assert p.shape == (1, 1, 7, 12, 10)
    torch.testing.assert_close(p, p[:, :, :1].expand_as(p), rtol=1e-12, atol=1e-14)
    # no variation along D: the 3-D Laplacian of the blurred volume is the 2-D one of the blurred image
    p2 = laplacian_density(img, 1.5)
    torch.testing.assert_close(p[:, :, 3], p2, rtol=1e-10, atol=1e-12)
    # and an anisotropic spacing keeps it constant along D too
    pa = laplacian_density(vol, 1.5, spacing=(3.0, 0.7, 0.7))
    torch.testing.assert_close(pa, pa[:, :, :1].expand_as(pa), rtol=1e-12, atol=1e-14)


def test_analytic_beats_random_at_5_percent():
    f = _smooth_volume()
    ma = analytic_mask(f, 0.05, ndim=3)
    assert int(ma.sum()) == round(0.05 * f[0, 0].numel())
    err_a = float(((inpaint_diffusion(f, ma, ndim=3, tol=1e-10) - f) ** 2).mean())
    err_r = [float(((inpaint_diffusion(f, random_mask(f.shape, 0.05, generator=s, ndim=3, dtype=f.dtype), ndim=3,
                                tol=1e-10) - f) ** 2).mean()) for s in range(3)]
    # measured: 1.52e-4 against 1.17e-3 .. 1.71e-3
    assert err_a < 0.5 * min(err_r)


def test_volume_thresholds_differ_between_slices():
    m = dither(torch.ones(1, 1, 4, 16, 16, dtype=torch.float64), 0.1)
    assert int(m.sum()) == round(0.1 * 4 * 256)
    assert not torch.equal(m[0, 0, 0], m[0, 0, 1])


@pytest.mark.parametrize("call, name", [
    (lambda f: analytic_mask(f, 0.05, ndim=4), "ndim"),
    (lambda f: analytic_mask(f, 0.05, spacing=(1.0, -1.0, 1.0)), "spacing"),
    (lambda f: analytic_mask(f, 0.05, spacing=(1.0, 1.0, 1.0), ndim=2), "spacing"),
    (lambda f: analytic_mask(f, 1.5, ndim=3), "density"),
    (lambda f: analytic_mask(f, 1e-5, ndim=3), "density"),
    (lambda f: analytic_mask(f, 0.05, ndim=3, snap=True), "snap"),
    (lambda f: analytic_mask(f, 0.05, ndim=3, refine=2), "refine"),
    (lambda f: analytic_mask(f[0, 0, 0], 0.05, ndim=3), "f"),
    (lambda f: analytic_mask(f, 0.05, spacing=(2.0, 1.0)), "spacing"),
    (lambda f: random_mask((4, 5), 0.1, ndim=3), "shape"),
    (lambda f: random_mask((4, 5, 6), 0.1, ndim=3, spacing="x"), "spacing"),
    (lambda f: random_mask((4, 5, 6), 0.0, ndim=3), "density"),
])
def test_bad_input_one_line_error(call, name):
    f = torch.rand(1, 1, 5, 6, 7, dtype=torch.float64)
    with pytest.raises(UserInputError) as e:
        call(f)
    msg = str(e.value)
    assert "\n" not in msg and name in msg


def _min_distances(m):
    pts = m.nonzero().to(torch.float64)
    d = torch.cdist(pts, pts)
    d.fill_diagonal_(float("inf"))
    return d.min(1).values


def test_default_volume_tile_is_blue_noise():
    # a constant density dithered with the 3-D void-and-cluster tile spaces its points out in all three
    # directions: every point's nearest neighbour is farther than for uniform random points
    m = dither(torch.ones(1, 1, 16, 16, 16, dtype=torch.float64), 0.05)[0, 0]
    r = random_mask((16, 16, 16), 0.05, generator=0, ndim=3)
    dm, dr = _min_distances(m), _min_distances(r)
    assert int(m.sum()) == int(r.sum()) == round(0.05 * 16 ** 3)
    # measured: nearest-neighbour distance min 1.41 / mean 2.24 (3-D tile), 1.0 / 1.65 (random),
    # 1.0 / 1.87 (the 2-D 64 x 64 tile slice by slice: blue noise within slices only)
    assert float(dm.min()) > 1.4 > float(dr.min())
    assert float(dm.mean()) > 1.3 * float(dr.mean())
    s = dither(torch.ones(1, 1, 16, 16, 16, dtype=torch.float64), 0.05, tile=blue_noise_tile(64))[0, 0]
    assert int(s.sum()) == int(m.sum())
    assert float(dm.mean()) > 1.1 * float(_min_distances(s).mean())
