"""densify_mask: exact counts, the starting points kept, the added points at the error's maxima, batches, and
a mask better than the analytic one it starts from."""
import math

import pytest
import torch
import torch.nn.functional as F

from pdeflow.datasets import builtin_image
from pdeflow.errors import UserInputError
from pdeflow.filters import gaussian_blur
from pdeflow.inpaint import analytic_mask, densify_mask, inpaint_diffusion
from pdeflow.inpaint.masks.analytic import analytic_sigma


def _image(h=48, w=40, c=1, b=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64), torch.linspace(0, 1, w, dtype=torch.float64),
                          indexing="ij")
    smooth = 0.5 + 0.3 * torch.sin(6 * x) * torch.cos(4 * y) + 0.2 * (x > 0.6)
    return (smooth + 0.05 * torch.rand(b, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)


@pytest.mark.parametrize("shape", [(48, 40), (1, 48, 40), (2, 1, 48, 40), (1, 3, 48, 40)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_count_shape_and_dtype(shape, dtype):
    f = _image(b=shape[0] if len(shape) == 4 else 1, c=shape[-3] if len(shape) == 4 else 1).to(dtype)
    f = f.reshape(shape)
    m = densify_mask(f, 0.1)
    lead = shape[:-3] + (1,) if len(shape) >= 3 else ()
    assert m.shape == lead + shape[-2:] and m.dtype == dtype
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(m.reshape(-1, 48 * 40).sum(1) == round(0.1 * 48 * 40))


def test_keeps_the_starting_mask():
    f = _image()
    start = analytic_mask(f, 0.3 * 0.1, sigma=analytic_sigma(0.1))
    m = densify_mask(f, 0.1)
    assert bool((m >= start).all())                      # every starting point is still there
    given = torch.zeros_like(f[:, :1])
    given[..., ::7, ::5] = 1
    m2 = densify_mask(f, 0.1, mask=given)
    assert bool((m2 >= given).all()) and int(m2.sum()) == round(0.1 * 48 * 40)


def test_a_full_start_is_returned_as_it_is():
    f = _image()
    start = analytic_mask(f, 0.1)
    assert torch.equal(densify_mask(f, 0.1, mask=start), start)


def _reference_densify(f, density, start_mask, stages, sigma):
    """An independent reading of the rule, with pdeflow's checked inpaint_diffusion solved tightly: per stage,
    inpaint_diffusion from the mask, square the error (summed over channels), smooth, add the free positive 3 x 3
    maxima (torch's max
    pooling, not the function's own) largest first, then the other free pixels largest first."""
    H, W = f.shape[-2:]
    k = round(density * H * W)
    m = start_mask.clone()
    k0 = int(m.sum())
    for s in range(1, stages + 1):
        add = round(k0 * (k / k0) ** (s / stages)) - int(m.sum())
        if add <= 0:
            continue
        u = inpaint_diffusion(f, m, tol=1e-11)
        e = gaussian_blur(((u - f) ** 2).sum(1, keepdim=True), sigma)
        free = m < 0.5
        peak = (e >= F.max_pool2d(e, 3, stride=1, padding=1)) & (e > 0) & free
        key = torch.where(peak, e + e.max() + 1, torch.where(free, e, torch.full_like(e, -math.inf)))
        m = m.flatten().clone()
        m[key.flatten().topk(add).indices] = 1
        m = m.view_as(start_mask)
    return m


@pytest.mark.parametrize("channels,stages", [(1, 1), (1, 6), (3, 6)])
def test_stages_add_the_largest_maxima_of_the_smoothed_error(channels, stages):
    # with tight solves the masks equal the reference's at every stage: the multigrid hierarchy rebuilt only
    # every few stages (a grown mask's system preconditioned by a smaller mask's V-cycle) changes no pick
    f = _image(c=channels)
    start = torch.zeros_like(f[:, :1])
    start[..., 2::6, 3::6] = 1
    m = densify_mask(f, 0.12, mask=start, stages=stages, sigma=0.7, tol=1e-11)
    assert torch.equal(m, _reference_densify(f, 0.12, start, stages, 0.7))


def test_one_stage_uses_both_tiers():
    # fewer positive maxima than points to add in one stage: the rest go to the largest other free pixels
    f = _image()
    start = torch.zeros_like(f)
    start[..., 2::6, 3::6] = 1
    u = inpaint_diffusion(f, start, tol=1e-11)
    e = gaussian_blur((u - f) ** 2, 0.7)
    peak = (e >= F.max_pool2d(e, 3, stride=1, padding=1)) & (e > 0) & (start < 0.5)
    assert 0 < int(peak.sum()) < round(0.12 * 48 * 40) - int(start.sum())
    m = densify_mask(f, 0.12, mask=start, stages=1, tol=1e-11)
    assert bool((m.bool() | ~peak).all())                 # every maximum taken
    assert int(m.sum()) == round(0.12 * 48 * 40)


def test_batch_equals_one_image_at_a_time():
    f = torch.cat([_image(seed=0), _image(seed=1)])
    m = densify_mask(f, 0.08)
    assert torch.equal(m[:1], densify_mask(f[:1], 0.08)) and torch.equal(m[1:], densify_mask(f[1:], 0.08))


def test_deterministic():
    f = _image()
    assert torch.equal(densify_mask(f, 0.05), densify_mask(f, 0.05))


@pytest.mark.parametrize("density", [0.05, 0.1, 0.2])
def test_better_than_the_analytic_mask_on_a_photo(density):
    # the point of the method: adding points where the inpainting errs beats the analytic mask of the same
    # density (a 96 px crop of a shipped photo; tol 1e-8 inpainting for the comparison)
    f = builtin_image("skimage/astronaut", grey=True).double()[None, ..., 100:196, 200:296]
    def mse(m):
        return float(((inpaint_diffusion(f, m, tol=1e-8) - f) ** 2).mean())
    assert mse(densify_mask(f, density)) < 0.9 * mse(analytic_mask(f, density, sigma=analytic_sigma(density)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(density=0.0), "density"),
    (dict(density=0.1, start=0.0), "start must be a number in \\(0, 1\\]"),
    (dict(density=0.1, start=1.5), "start"),
    (dict(density=0.1, stages=0), "stages must be an int >= 1"),
    (dict(density=0.1, stages=2.0), "stages"),
    (dict(density=0.1, sigma=-1.0), "sigma must be a number >= 0"),
    (dict(density=0.1, sigma=float("nan")), "sigma"),
    (dict(density=0.1, tol=0.0), "tol must be a number in \\(0, 1\\)"),
    (dict(density=0.1, tol=True), "tol"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(UserInputError, match="densify_mask: " + match):
        densify_mask(_image(), **kwargs)


def test_bad_images_and_masks_are_named():
    f = _image()
    with pytest.raises(UserInputError, match="densify_mask: f must be a floating-point tensor"):
        densify_mask((f * 255).to(torch.uint8), 0.1)
    with pytest.raises(UserInputError, match="densify_mask: mask must have shape \\(1, 1, 48, 40\\)"):
        densify_mask(f, 0.1, mask=torch.ones(48, 40))
    with pytest.raises(UserInputError, match="densify_mask: mask must be binary"):
        densify_mask(f, 0.1, mask=torch.full_like(f, 0.5))
    full = torch.zeros_like(f)
    full[..., ::2, :] = 1                                # half the pixels: more than 10 %
    with pytest.raises(UserInputError, match="between 1 and round\\(density H W\\) = 192"):
        densify_mask(f, 0.1, mask=full)
    two = torch.zeros(2, 1, 48, 40, dtype=torch.float64)
    two[0, 0, 0, :3] = 1
    two[1, 0, 0, :4] = 1
    with pytest.raises(UserInputError, match="the same number of known pixels in each image"):
        densify_mask(torch.cat([f, f]), 0.1, mask=two)
