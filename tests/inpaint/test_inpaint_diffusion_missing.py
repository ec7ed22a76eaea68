"""How inpaint_diffusion is told which pixels are missing: the mask argument (1 = known, 0 = missing), a NumPy
masked array's own mask, and NaN at missing pixels."""
import numpy as np
import pytest
import torch

import pdeflow
from pdeflow.errors import UserInputError
from pdeflow.inpaint import inpaint_diffusion


@pytest.fixture
def case():
    g = torch.Generator().manual_seed(4)
    f = torch.rand(2, 3, 20, 17, generator=g, dtype=torch.float64)
    m = torch.rand(2, 1, 20, 17, generator=g) < 0.3
    return f, m


def _with_nan(f, m):
    g = f.clone()
    g.masked_fill_(~m.expand_as(f), float("nan"))
    return g


def test_masked_array_mask_is_the_missing_pixels(case):
    f, m = case
    a = np.ma.masked_array(f.numpy(), mask=~m.expand_as(f).numpy())
    u = inpaint_diffusion(a, tol=1e-10)
    assert isinstance(u, torch.Tensor) and u.shape == f.shape and u.dtype == torch.float64
    assert torch.equal(u, inpaint_diffusion(f, m, tol=1e-10))
    assert torch.equal(pdeflow.inpaint_diffusion(a, tol=1e-10), u)          # the top-level name too


def test_masked_array_per_channel_masks_and_garbage_under_the_mask(case):
    f, _ = case
    g = torch.Generator().manual_seed(5)
    m = torch.rand(f.shape, generator=g) < 0.3                      # one mask per channel
    data = f.numpy().copy()
    data[~m.numpy()] = np.nan                                        # what masked_invalid is for
    u = inpaint_diffusion(np.ma.masked_invalid(data), tol=1e-10)
    assert torch.equal(u, inpaint_diffusion(f, m, tol=1e-10))


def test_masked_array_float32_2d():
    f = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    a = np.ma.masked_array(f, mask=np.ones_like(f, dtype=bool))
    a.mask[::3, ::3] = False
    u = inpaint_diffusion(a)
    assert u.dtype == torch.float32 and u.shape == (8, 8)
    assert torch.equal(u[::3, ::3], torch.from_numpy(f)[::3, ::3])


def test_masked_array_with_a_mask_as_well_is_refused(case):
    f, m = case
    a = np.ma.masked_array(f.numpy(), mask=~m.expand_as(f).numpy())
    with pytest.raises(UserInputError, match="masked array .* and a mask is given as well"):
        inpaint_diffusion(a, m)
    # a masked array with nothing masked is an array: the mask decides
    assert torch.equal(inpaint_diffusion(np.ma.masked_array(f.numpy()), m, tol=1e-10),
                       inpaint_diffusion(f, m, tol=1e-10))


def test_masked_array_volume(case):
    g = torch.Generator().manual_seed(6)
    v = torch.rand(5, 6, 7, generator=g, dtype=torch.float64)
    mv = torch.rand(5, 6, 7, generator=g) < 0.3
    a = np.ma.masked_array(v.numpy(), mask=~mv.numpy())
    assert torch.equal(inpaint_diffusion(a, ndim=3, tol=1e-10), inpaint_diffusion(v, mv, ndim=3, tol=1e-10))


def test_no_mask_is_refused_with_the_convention(case):
    f, m = case
    with pytest.raises(UserInputError, match=r"mask is required \(1 = known pixel, 0 = missing\)"):
        inpaint_diffusion(f)
    with pytest.raises(UserInputError, match=r"NaN does not mark pixels as missing.*mask=~torch.isnan\(f\)"):
        inpaint_diffusion(_with_nan(f, m))


def test_nan_at_missing_pixels_is_accepted(case):
    f, m = case
    ref = inpaint_diffusion(f, m, tol=1e-10)
    u = inpaint_diffusion(_with_nan(f, m), m, tol=1e-10)
    assert torch.equal(u, ref)
    g = f.clone()
    g.masked_fill_(~m.expand_as(f), float("inf"))
    assert torch.equal(inpaint_diffusion(g, m, tol=1e-10), ref)
    # the mask read from the NaN, as the messages suggest
    assert torch.equal(inpaint_diffusion(_with_nan(f, m), ~torch.isnan(_with_nan(f, m)), tol=1e-10), ref)


def test_nan_at_missing_pixels_float32_and_solvers(case):
    f, m = case
    f = f.float()
    for solver in ("mg", "cg"):
        assert torch.equal(inpaint_diffusion(_with_nan(f, m), m, solver=solver), inpaint_diffusion(f, m, solver=solver))


def test_nan_at_missing_pixels_of_a_volume_and_with_spacing():
    g = torch.Generator().manual_seed(7)
    v = torch.rand(5, 6, 7, generator=g, dtype=torch.float64)
    mv = torch.rand(5, 6, 7, generator=g) < 0.3
    w = v.masked_fill(~mv, float("nan"))
    assert torch.equal(inpaint_diffusion(w, mv, ndim=3, tol=1e-10), inpaint_diffusion(v, mv, ndim=3, tol=1e-10))
    f, m = v[0], mv[0]
    assert torch.equal(inpaint_diffusion(f.masked_fill(~m, float("nan")), m, spacing=(1.0, 2.0), tol=1e-10),
                       inpaint_diffusion(f, m, spacing=(1.0, 2.0), tol=1e-10))


def test_nan_at_missing_pixels_gradient_is_finite(case):
    f, m = case
    g = _with_nan(f, m).requires_grad_()
    inpaint_diffusion(g, m, tol=1e-10).square().sum().backward()
    assert bool(torch.isfinite(g.grad).all())
    assert float(g.grad[~m.expand_as(f)].abs().max()) == 0.0        # missing values are not used
    h = f.clone().requires_grad_()
    inpaint_diffusion(h, m, tol=1e-10).square().sum().backward()
    assert torch.allclose(g.grad, h.grad, rtol=0, atol=1e-12)


def test_nan_at_known_pixels_is_refused_with_how_to_mark_missing_pixels(case):
    f, m = case
    g = f.clone()
    g[0, 1, m[0, 0]] = float("nan")                                 # known pixels of one channel
    with pytest.raises(UserInputError, match=r"NaN or infinite values at \d+ known pixels.*1 = known, 0 = missing"):
        inpaint_diffusion(g, m)
    with pytest.raises(UserInputError, match="known pixels"):
        inpaint_diffusion(g, torch.ones(20, 17))                              # every pixel known
    with pytest.raises(UserInputError, match="known pixels"):
        inpaint_diffusion(g[0], m[0].expand_as(g[0]), ndim=3)                     # a volume
    # a continuous mask: every pixel with c > 0 is used
    c = m.double() * 0.5
    with pytest.raises(UserInputError, match="known pixels"):
        inpaint_diffusion(g, c, continuous=True)
    assert bool(torch.isfinite(inpaint_diffusion(_with_nan(f, m), c, continuous=True)).all())
