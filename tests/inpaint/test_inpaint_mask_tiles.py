"""The mask network on large images: tiled inference, the reduced-scale network and the strength of its
corrections (pdeflow.inpaint.learned.masknet)."""
import math

import pytest
import torch

from pdeflow.errors import UserInputError
from pdeflow.inpaint import learned_mask, load_masknet
from pdeflow.inpaint.masks.analytic import laplacian_density
from pdeflow.inpaint.masks.snapping import extremality


def _image(H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth structure plus noise, so the network's corrections are not constant
    y = torch.linspace(0, 1, H).view(H, 1)
    x = torch.linspace(0, 1, W).view(1, W)
    f = 0.5 + 0.3 * torch.sin(9 * x + 4 * y) * torch.cos(5 * y) + 0.05 * torch.rand(H, W, generator=g)
    return f.clamp(0, 1)


@pytest.mark.parametrize("tile", [32, 40, 64])
def test_tiled_corrections_equal_untiled(tile):
    net = load_masknet(0.1)
    # sizes not multiples of the pooling factor or of the tile: padded edges and partial tiles
    x = net._inputs(_image(101, 147)[None, None], 0.1)[2]
    with torch.no_grad():
        whole = net.corrections(x)
        tiled = net.corrections(x, tile_size=tile)
    assert tiled.shape == whole.shape == (1, 2, 101, 147)
    assert float(whole.abs().max()) > 0.1                       # the network does change the maps
    assert float((tiled - whole).abs().max()) <= 1e-5


def test_tiles_cut_each_axis_in_equal_parts():
    from pdeflow.inpaint.learned.unet import _tile_side
    # a 4K frame at tile 512: 4 rows of 540 (not 4 of 512 and a sliver of 112), 8 columns of 480
    assert (_tile_side(2160, 512, 4), _tile_side(3840, 512, 4)) == (540, 480)
    for n in (16, 101, 147, 513, 700, 2160, 4001):
        side = _tile_side(n, 40, 4)
        count = -(-n // side)
        # each cut costs two margins: never more tiles than the nearest count, nor than tiles of 40 need
        assert side % 4 == 0 and count <= max(1, round(n / 40)) and count <= -(-n // 40)


@pytest.mark.slow   # a mask network per probe pixel
def test_receptive_radius_is_how_far_one_input_pixel_reaches():
    """The structural radius (an impulse through positive weights) against perturbing one pixel of a random input
    of the shipped network, at every offset from the pooling grid; tiles with that margin are exact in float64."""
    net = load_masknet(0.1).double()
    u = net.net
    fac = u.factor
    x = torch.randn(1, 4, 96, 96, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    reach = 0
    with torch.no_grad():
        base = u(x)
        for k in range(fac * fac):
            cy, cx = 48 + k // fac, 48 + k % fac
            x2 = x.clone()
            x2[..., cy, cx] += 1.0
            ii, jj = ((u(x2) - base).abs().amax(1)[0] > 0).nonzero(as_tuple=True)
            reach = max(reach, int((ii - cy).abs().max()), int((jj - cx).abs().max()))
        assert reach == u.receptive_radius == 26
        big = net._inputs(_image(101, 147).double()[None, None], 0.1)[2]
        assert float((net.corrections(big, tile_size=32) - net.corrections(big)).abs().max()) < 1e-12


def test_reflect_padding_reads_the_border_as_the_mirrored_image_does():
    """padding="reflect": the corrections of the network input x are those of its mirror image
    xg = [x, x mirrored] (edge column not repeated) on xg's first half, in float64, tiled or not: the network reads
    x's right border as the interior of xg. Zero padding (as trained) does not, near the border only."""
    net = load_masknet(0.1).double()
    x = net._inputs(_image(72, 90, seed=2).double()[None, None], 0.1)[2]
    xg = torch.cat([x, x.flip(-1)[..., 1:]], -1)               # mirrored across the last column
    with torch.no_grad():
        whole = net.corrections(xg, padding="reflect")[..., :90]
        for tile in (None, 32):
            mine = net.corrections(x, tile_size=tile, padding="reflect")
            assert float((mine - whole).abs().max()) < 1e-10, tile
        zeros = net.corrections(x)
        small = net.corrections(x[..., :9, :12], padding="reflect")   # under the margin: mirrored as far as it goes
    assert float((zeros - whole)[..., -10:].abs().max()) > 1e-2
    assert float((zeros - whole)[..., 30:42, 30:60].abs().max()) < 1e-10   # beyond the borders' reach: the same
    assert small.shape == (1, 2, 9, 12) and bool(torch.isfinite(small).all())


def test_learned_mask_tiled_equals_untiled():
    f = _image(90, 130, seed=1)
    a = learned_mask(f, 0.1, tile_size=32)
    b = learned_mask(f, 0.1, tile_size=None)
    assert a.shape == (90, 130) and int(a.sum()) == round(0.1 * 90 * 130)
    # equal corrections to round-off; the masks agree but for possible ties broken by it
    assert int((a != b).sum()) <= 2


def test_bfloat16_network_is_close_to_float32():
    net = load_masknet(0.1)
    f = _image(96, 120, seed=4)
    x = net._inputs(f[None, None], 0.1)[2]
    with torch.no_grad():
        full = net.corrections(x, tile_size=48)
        low = net.corrections(x, tile_size=48, compute_dtype=torch.bfloat16)
    assert low.dtype == torch.float32
    err = float((low - full).abs().max())
    # bfloat16 keeps 8 bits of the mantissa: the corrections (bound 3) move by a few hundredths, not zero
    assert 0 < err < 0.1
    a = learned_mask(f, 0.1)
    b = learned_mask(f, 0.1, compute_dtype=torch.bfloat16)
    assert int(b.sum()) == int(a.sum()) == round(0.1 * 96 * 120)
    assert int((a != b).sum()) / 2 <= 0.1 * int(a.sum())        # a few points move, the mask stays


def test_scale_runs_network_on_reduced_image():
    net = load_masknet(0.05)
    f = _image(64, 96, seed=2)[None, None]
    with torch.no_grad():
        lp1, s1 = net.maps(f, 0.05)
        lp2, s2 = net.maps(f, 0.05, scale=2)
    assert lp2.shape == lp1.shape == (1, 1, 64, 96)
    # the analytic part is the full-resolution one; the corrections stay within the network's bound
    lp0 = torch.log(laplacian_density(f, net.sigma, net.floor))
    assert float((lp2 - lp0).abs().max()) <= net.bound + 1e-5
    assert float((lp2 - lp1).abs().max()) > 1e-3                 # a different (coarse) correction
    m = learned_mask(f[0, 0], 0.05, scale=2)
    assert int(m.sum()) == round(0.05 * 64 * 96)
    # the reduced image is the block mean, partial blocks included (odd sizes run)
    assert int(learned_mask(_image(33, 47), 0.1, scale=3).sum()) == round(0.1 * 33 * 47)


def test_strength_blends_with_analytic_maps():
    net = load_masknet(0.1)
    f = _image(48, 64, seed=3)[None, None]
    lp0 = torch.log(laplacian_density(f, net.sigma, net.floor))
    s0 = torch.log(extremality(f, net.snap_sigma) + 1e-3)
    with torch.no_grad():
        lp, s = net.maps(f, 0.1, strength=0.0)
        full, sfull = net.maps(f, 0.1)
        half, shalf = net.maps(f, 0.1, strength=0.5)
    assert torch.equal(lp, lp0) and torch.equal(s, s0)
    assert torch.allclose(half - lp0, 0.5 * (full - lp0), atol=1e-5)
    assert torch.allclose(shalf - s0, 0.5 * (sfull - s0), atol=1e-5)
    assert torch.equal(learned_mask(f, 0.1, strength=1.0), learned_mask(f, 0.1))
    with torch.no_grad():                   # a pair weights the log-density's and the snap score's corrections apart
        lp_a, s_a = net.maps(f, 0.1, strength=(0.5, 0.0))
        lp_b, s_b = net.maps(f, 0.1, strength=(0.0, 0.5))
    assert torch.equal(lp_a, half) and torch.equal(s_a, s0) and torch.equal(lp_b, lp0) and torch.equal(s_b, shalf)
    assert torch.equal(learned_mask(f, 0.1, strength=(1, 1)), learned_mask(f, 0.1))


@pytest.mark.parametrize("kw, name", [({"scale": 0}, "scale"), ({"scale": True}, "scale"), ({"scale": 1.5}, "scale"),
                                      ({"scale": 40}, "scale"), ({"strength": -1.0}, "strength"),
                                      ({"strength": math.nan}, "strength"), ({"strength": (0.3,)}, "strength"),
                                      ({"strength": (0.3, -1)}, "strength"), ({"strength": (1, 1, 1)}, "strength"),
                                      ({"strength": "0.3"}, "strength"), ({"tile_size": 8}, "tile_size"),
                                      ({"tile_size": 32.0}, "tile_size"),
                                      ({"compute_dtype": torch.float16}, "compute_dtype"),
                                      ({"compute_dtype": "bfloat16"}, "compute_dtype"),
                                      ({"padding": "mirror"}, "padding"), ({"padding": None}, "padding")])
def test_bad_options_refused(kw, name):
    with pytest.raises(UserInputError, match=f"learned_mask: {name}"):
        learned_mask(_image(40, 40), 0.1, **kw)


def test_refine_on_tiles():
    from pdeflow.inpaint import analytic_mask, refine_mask

    f = _image(70, 90, seed=4).double()
    m0 = analytic_mask(f, 0.1)
    # a tile covering the image: the whole-image refinement
    assert torch.equal(refine_mask(f, m0, rounds=2, tile_size=96), refine_mask(f, m0, rounds=2))
    m = refine_mask(f, m0, rounds=2, tile_size=40)     # 2 x 3 near-equal tiles (35 x 30)
    assert not torch.equal(m, m0)
    for y0, y1 in ((0, 35), (35, 70)):
        for x0, x1 in ((0, 30), (30, 60), (60, 90)):
            sl = (slice(y0, y1), slice(x0, x1))
            assert int(m[sl].sum()) == int(m0[sl].sum())           # each tile keeps its known pixels
            assert torch.equal(m[sl], refine_mask(f[sl].contiguous(), m0[sl].contiguous(), rounds=2))
    # the option reaches refine_mask from the mask functions
    lm = learned_mask(f.float(), 0.1, refine={"rounds": 1, "tile_size": 48})
    assert int(lm.sum()) == round(0.1 * 70 * 90)
    for bad in (8, 40.0, True):
        with pytest.raises(ValueError, match="refine_mask: tile_size"):
            refine_mask(f, m0, rounds=1, tile_size=bad)
    with pytest.raises(ValueError, match="refine_mask: tile_size"):
        refine_mask(f, m0, rounds=1, tile_size=40, full_output=True)
