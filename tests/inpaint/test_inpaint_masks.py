"""Masks for diffusion inpainting: random masks, probabilistic sparsification (PS) and
non-local pixel exchange (NLPE)."""
import math

import pytest
import torch

from pdeflow import datasets
from pdeflow.inpaint import (
    inpaint_diffusion,
    inpainting_error,
    nlpe_mask,
    ps_mask,
    random_mask,
)

SIZE = 32


def photo(size=SIZE, colour=False):
    """A centre crop of a test-split photo, float64."""
    u = datasets.builtin_image("skimage/camera", grey=not colour)
    H, W = u.shape[-2:]
    top, left = (H - size) // 2 - 60, (W - size) // 2
    return u[:, top:top + size, left:left + size].double()


def mse_of(f, mask):
    return float(inpainting_error(f, inpaint_diffusion(f, mask, tol=1e-10)))


# --------------------------------------------------------------------- random masks

def test_random_mask_exact_count_shapes_and_seed():
    m = random_mask((4, 1, 20, 30), 0.1, generator=3)
    assert m.shape == (4, 1, 20, 30) and m.dtype == torch.float32
    assert m.flatten(1).sum(1).tolist() == [60.0] * 4
    assert not torch.equal(m[0], m[1])  # each image its own mask
    assert torch.equal(m, random_mask((4, 1, 20, 30), 0.1, generator=3))
    assert torch.equal(m, random_mask((4, 1, 20, 30), 0.1, generator=torch.Generator().manual_seed(3)))
    b = random_mask((9, 9), 0.5, dtype=torch.bool)
    assert b.dtype == torch.bool and int(b.sum()) == round(0.5 * 81)


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, float("nan"), 1e-4])
def test_density_errors(bad):
    with pytest.raises((ValueError, TypeError), match="density"):
        random_mask((20, 20), bad)
    with pytest.raises((ValueError, TypeError), match="density"):
        ps_mask(torch.rand(20, 20), bad, progress=False)


def test_random_mask_bad_shape_and_generator():
    with pytest.raises(ValueError, match="shape"):
        random_mask((20,), 0.1)
    with pytest.raises(TypeError, match="generator"):
        random_mask((20, 20), 0.1, generator="seed")


# --------------------------------------------------------------------- PS

def test_ps_reaches_the_density_and_beats_random_masks():
    f = photo(24)
    for d in (0.1,):  # the defaults p = q = 0.02
        r = ps_mask(f, d, generator=0, progress=False, full_output=True)
        assert r.mask.shape == (1, 24, 24)
        assert int(r.mask.sum()) == round(d * 24 * 24)
        assert torch.equal(r.u[r.mask.expand_as(f).bool()], f[r.mask.expand_as(f).bool()])
        random_err = [mse_of(f, random_mask((1, 24, 24), d, generator=s, dtype=f.dtype)) for s in range(5)]
        assert float(r.error) < min(random_err)
        assert math.isclose(float(r.error), mse_of(f, r.mask), rel_tol=1e-4)


@pytest.mark.slow   # PS runs at several densities in colour
def test_ps_several_densities_in_one_run_and_batched_colour():
    f = torch.stack([photo(24, colour=True), photo(24, colour=True).flip(-1)])  # (2, 3, 24, 24)
    kw = dict(p=0.05, q=0.2, generator=1, progress=False)
    m20, m10 = ps_mask(f, [0.2, 0.1], **kw)
    assert m20.shape == (2, 1, 24, 24) and m20.dtype == f.dtype
    assert m20.flatten(1).sum(1).tolist() == [round(0.2 * 576)] * 2
    assert m10.flatten(1).sum(1).tolist() == [round(0.1 * 576)] * 2
    assert bool((m10 <= m20).all())  # sparsification only removes pixels
    assert torch.equal(m20, ps_mask(f, 0.2, **kw))  # the same run stopped earlier


def test_ps_from_a_mask_sparsifies_that_mask():
    """``mask=``: PS starts from the given pixels instead of all of them. From the full mask it is the same run;
    from a denser mask it returns exactly the density, inside that mask, better than random subsets of it."""
    f = photo(24)
    kw = dict(p=0.1, q=0.2, generator=0)
    assert torch.equal(ps_mask(f, 0.1, mask=torch.ones(24, 24), **kw),
                       ps_mask(f, 0.1, **kw))
    m0 = random_mask((1, 24, 24), 0.3, generator=5, dtype=f.dtype)
    m = ps_mask(f, 0.1, mask=m0, **kw)
    assert int(m.sum()) == round(0.1 * 576) and bool((m <= m0).all())
    idx = m0.flatten().nonzero().flatten()
    subsets = []
    for s in range(5):
        pick = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(s))[:round(0.1 * 576)]]
        subsets.append(mse_of(f, torch.zeros(576, dtype=f.dtype).index_fill_(0, pick, 1.0).view(1, 24, 24)))
    assert mse_of(f, m) < min(subsets)


def test_ps_from_a_mask_refuses_what_it_cannot_sparsify():
    f = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    m = random_mask((2, 1, 16, 16), 0.1, generator=0, dtype=f.dtype)
    with pytest.raises(ValueError, match="density: the mask has 26 known pixels per image, fewer than 51"):
        ps_mask(f, 0.2, mask=m)
    m[1, 0].view(-1)[m[1, 0].view(-1).argmin()] = 1.0             # one more pixel in the second image
    with pytest.raises(ValueError, match="mask must have the same number of known pixels in every image"):
        ps_mask(f, 0.05, mask=m)
    with pytest.raises(ValueError, match="mask must have one channel"):
        ps_mask(f.expand(2, 3, 16, 16), 0.05, mask=torch.ones(2, 3, 16, 16))
    with pytest.raises(ValueError, match="mask"):
        ps_mask(f, 0.05, mask=torch.ones(5, 5))


def test_ps_argument_errors():
    f = torch.rand(16, 16)
    with pytest.raises(ValueError, match="p must"):
        ps_mask(f, 0.1, p=0, progress=False)
    with pytest.raises(ValueError, match="q must"):
        ps_mask(f, 0.1, q=1.5, progress=False)
    with pytest.raises(ValueError, match="metric"):
        ps_mask(f, 0.1, metric="psnr", progress=False)
    with pytest.raises(ValueError, match="NaN"):
        ps_mask(f * float("nan"), 0.1, progress=False)
    with pytest.raises(ValueError, match="ps_mask: solver"):
        ps_mask(f, 0.1, solver="lu")
    with pytest.raises(ValueError, match="ps_mask: tol"):
        ps_mask(f, 0.1, tol=2.0, progress=False)


# --------------------------------------------------------------------- NLPE

@pytest.mark.parametrize("parallel", [1, 4])
def test_nlpe_never_increases_the_error(parallel):
    f = photo()
    m0 = random_mask((1, SIZE, SIZE), 0.08, generator=2, dtype=f.dtype)
    r = nlpe_mask(f, m0, cycles=1, parallel=parallel, generator=0, progress=False,
                                full_output=True)
    trace = r.trace[0]
    assert trace.shape[0] == 1 + math.ceil(int(m0.sum()) / parallel)
    assert bool((trace[1:] <= trace[:-1]).all())
    assert int(r.mask.sum()) == int(m0.sum())
    assert int(r.accepted) > 0 and float(trace[-1]) < float(trace[0])
    assert float(r.error) == float(trace[-1])
    # The trace is not bookkeeping only: fresh, tight solves agree with it.
    assert math.isclose(float(trace[0]), mse_of(f, m0), rel_tol=1e-4)
    assert math.isclose(float(r.error), mse_of(f, r.mask), rel_tol=1e-4)
    assert torch.allclose(r.u, inpaint_diffusion(f, r.mask, tol=1e-10), atol=1e-4)


@pytest.mark.slow   # PS and NLPE at several densities
def test_ps_plus_nlpe_beats_random_masks_at_several_densities():
    f = photo()
    densities = (0.05, 0.1, 0.2)
    masks = ps_mask(f, list(densities), p=0.05, q=0.1, generator=0, progress=False)
    for d, ps in zip(densities, masks):
        r = nlpe_mask(f, ps, cycles=1, generator=0, progress=False, full_output=True)
        random_err = [mse_of(f, random_mask((1, SIZE, SIZE), d, generator=s, dtype=f.dtype)) for s in range(5)]
        assert float(r.error) <= mse_of(f, ps) + 1e-12
        assert float(r.error) < 0.8 * min(random_err), (d, float(r.error), random_err)


def test_nlpe_batched_and_mae():
    f = torch.stack([photo(24), photo(24).flip(-2)])
    m0 = random_mask((2, 1, 24, 24), 0.1, generator=5, dtype=f.dtype)
    r = nlpe_mask(f, m0, cycles=1, parallel=2, metric="mae", generator=0, progress=False,
                                full_output=True)
    assert r.mask.shape == (2, 1, 24, 24)
    assert r.mask.flatten(1).sum(1).tolist() == m0.flatten(1).sum(1).tolist()
    assert bool((r.trace[:, 1:] <= r.trace[:, :-1]).all())
    mae = inpainting_error(f, inpaint_diffusion(f, r.mask, tol=1e-10), metric="mae")
    assert torch.allclose(mae, r.error, rtol=1e-4)


def test_nlpe_argument_errors():
    f = torch.rand(16, 16, dtype=torch.float64)
    m = random_mask((16, 16), 0.1, generator=0, dtype=f.dtype)
    with pytest.raises(ValueError, match="does not fit"):
        nlpe_mask(f, m[:8], progress=False)
    with pytest.raises(ValueError, match="no known pixel"):
        nlpe_mask(f, torch.zeros(16, 16), progress=False)
    with pytest.raises(ValueError, match="no unknown pixel"):
        nlpe_mask(f, torch.ones(16, 16), progress=False)
    with pytest.raises(ValueError, match="candidates"):
        nlpe_mask(f, m, candidates=0, progress=False)
    with pytest.raises(ValueError, match="exchanges"):
        nlpe_mask(f, m, candidates=3, exchanges=4, progress=False)
    with pytest.raises(ValueError, match="nlpe_mask: solver"):
        nlpe_mask(f, m, solver="lu")
    with pytest.raises(ValueError, match="one channel"):
        nlpe_mask(torch.rand(3, 16, 16), m.expand(3, 16, 16), progress=False)
