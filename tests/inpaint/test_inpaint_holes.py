"""pdeflow.inpaint.holes.hole_mask: exact coverage, reproducibility, the shapes of each kind, bad input; star_radius:
the outline's geometry."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import pdeflow  # noqa: F401  (before torch's threads start)
from pdeflow.errors import UserInputError
from pdeflow.inpaint import inpaint_diffusion
from pdeflow.inpaint.holes import HOLE_KINDS, hole_mask, star_radius


@pytest.mark.parametrize("kind", HOLE_KINDS)
@pytest.mark.parametrize("shape, coverage", [((16, 16), 0.02), ((64, 48), 0.05), ((128, 128), 0.1),
                                             ((97, 131), 0.5), ((256, 256), 0.02)])
def test_exact_coverage(kind, shape, coverage):
    m = hole_mask(shape, kind, coverage, generator=3)
    assert m.shape == shape and m.dtype == torch.bool
    assert int(m.sum()) == max(1, round(coverage * shape[0] * shape[1]))


@pytest.mark.parametrize("kind", HOLE_KINDS)
def test_reproducible_from_a_seed_and_a_generator(kind):
    a = hole_mask((64, 64), kind, 0.05, generator=7)
    assert torch.equal(a, hole_mask((64, 64), kind, 0.05, generator=7))
    assert torch.equal(a, hole_mask((64, 64), kind, 0.05, generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(a, hole_mask((64, 64), kind, 0.05, generator=8))
    torch.manual_seed(0)
    b = hole_mask((64, 64), kind, 0.05)
    torch.manual_seed(0)
    assert torch.equal(b, hole_mask((64, 64), kind, 0.05))      # None: torch's global generator


@pytest.mark.parametrize("kind", HOLE_KINDS)
def test_batch_slices_get_their_own_masks(kind):
    m = hole_mask((3, 1, 40, 50), kind, 0.08, generator=0)
    assert m.shape == (3, 1, 40, 50)
    assert m.flatten(1).sum(1).tolist() == [round(0.08 * 40 * 50)] * 3
    assert not torch.equal(m[0], m[1]) and not torch.equal(m[1], m[2])


@pytest.mark.parametrize("kind", ["scratches", "text"])
def test_a_lower_coverage_is_the_start_of_a_higher_one(kind):
    """The last shape is cut short: the same seed at a lower coverage draws the same shapes up to the cut, so
    its holes are a subset of the higher coverage's."""
    lo = hole_mask((96, 96), kind, 0.03, generator=5)
    hi = hole_mask((96, 96), kind, 0.09, generator=5)
    assert int(lo.sum()) < int(hi.sum()) and bool((hi | ~lo).all())


def test_dtype_and_device():
    m = hole_mask(32, "blobs", 0.1, generator=1, dtype=torch.float64)
    assert m.shape == (32, 32) and m.dtype == torch.float64 and set(m.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(m.bool(), hole_mask((32, 32), "blobs", 0.1, generator=1))
    assert hole_mask((32, 32), generator=1, device="cpu").device.type == "cpu"


def _surviving(mask: torch.Tensor, size: int) -> float:
    """Fraction of the missing pixels left after erosion by a size x size square."""
    m = mask.numpy()
    return ndimage.binary_erosion(m, np.ones((size, size)), border_value=1).sum() / m.sum()


def test_the_kinds_have_their_shapes():
    """Scratches are thin (a 7 x 7 erosion removes them, but where strokes cross); blobs are a few solid
    regions (a 3 x 3 erosion keeps most of them, not of the scratches); text is glyphs (pieces with counters,
    the enclosed insides of o, e, a) with strokes of a few pixels."""
    for seed in range(3):
        scratches = hole_mask((256, 256), "scratches", 0.05, generator=seed)
        blobs = hole_mask((256, 256), "blobs", 0.05, generator=seed)
        text = hole_mask((256, 256), "text", 0.05, generator=seed)
        assert _surviving(scratches, 7) < 0.05
        assert _surviving(scratches, 2) > 0.3                            # strokes at least 2 px wide
        assert _surviving(blobs, 3) > 0.75 > _surviving(scratches, 3)
        assert 1 <= ndimage.label(blobs.numpy())[1] <= 5
        counters = ndimage.label(~text.numpy())[1] - 1    # enclosed known regions: the insides of o, e, a, ...
        assert counters >= 8 and ndimage.label(text.numpy())[1] >= 3
        assert _surviving(text, 9) < 0.2 < _surviving(text, 2)


def test_text_without_freetype_uses_the_bitmap_font(monkeypatch):
    """A Pillow without FreeType has only the bitmap font (no size): it is enlarged, coverage still exact."""
    from PIL import ImageFont

    from pdeflow.inpaint import holes

    bitmap = ImageFont.load_default_imagefont() if hasattr(ImageFont, "load_default_imagefont") else None
    if bitmap is None:
        pytest.skip("this Pillow has no load_default_imagefont")

    def no_freetype(size=None):
        if size is not None:
            raise ImportError("The _imagingft C module is not installed")
        return bitmap

    monkeypatch.setattr(ImageFont, "load_default", no_freetype)
    holes._font.cache_clear()
    try:
        m = hole_mask((200, 200), "text", 0.04, generator=2)
        assert int(m.sum()) == round(0.04 * 200 * 200)
        assert not torch.equal(m, hole_mask((200, 200), "scratches", 0.04, generator=2))
    finally:
        holes._font.cache_clear()


def test_inpainting_with_the_complement_restores_a_ramp():
    # holes away from the border, where the ramp is not a Neumann solution
    holes = torch.nn.functional.pad(hole_mask((1, 1, 48, 48), "blobs", 0.1, generator=0), (8, 8, 8, 8))
    f = torch.linspace(0, 1, 64, dtype=torch.float64).expand(1, 1, 64, 64)
    corrupted = torch.where(holes, torch.tensor(0.5, dtype=f.dtype), f)
    u = inpaint_diffusion(corrupted, ~holes, tol=1e-10)
    assert float((u - f).abs().max()) < 1e-6
    assert float((corrupted - f).abs().max()) > 0.1


@pytest.mark.parametrize("args, kwargs, match", [
    (((64,),), {}, r"hole_mask: shape must be an int or a tuple of at least 2 positive ints"),
    (((0, 64),), {}, r"shape must be"),
    (((64.0, 64),), {}, r"shape must be"),
    (((15, 64),), {}, r"at least 16 x 16 pixels, got shape \(15, 64\)"),
    (((64, 64), "stains"), {}, r"kind must be one of 'scratches', 'text', 'blobs', got 'stains'"),
    (((64, 64), "text", 0.0), {}, r"coverage must be in \(0, 0.5\]"),
    (((64, 64), "text", 0.6), {}, r"coverage must be in \(0, 0.5\]"),
    (((64, 64), "text", float("nan")), {}, r"coverage must be a number"),
    (((64, 64), "text", True), {}, r"coverage must be a number"),
    (((64, 64), "text", 1e-5), {}, r"less than one missing pixel"),
    (((64, 64),), {"dtype": "bool"}, r"dtype must be a torch.dtype"),
])
def test_bad_input_is_named(args, kwargs, match):
    with pytest.raises(UserInputError, match=match):
        hole_mask(*args, **kwargs)


def test_bad_generator():
    with pytest.raises(TypeError, match="hole_mask: generator must be None, an int seed or a torch.Generator"):
        hole_mask((32, 32), generator="seed")


def test_star_radius_geometry():
    # Written out from the definition: a circle gives the Euclidean distance to the centre; an ellipse turned
    # by angle divides the distance along its second axis by aspect; a harmonic scales the outline's radius in
    # each direction by 1 + a cos(k phi + b).
    H, W, cy, cx = 40, 50, 17.3, 21.8
    y, x = np.mgrid[0:H, 0:W] + 0.5
    np.testing.assert_allclose(star_radius((H, W), (cy, cx)).numpy(), np.hypot(y - cy, x - cx), rtol=1e-12)
    angle, aspect = 0.7, 0.5
    along = np.cos(angle) * (x - cx) + np.sin(angle) * (y - cy)
    across = -np.sin(angle) * (x - cx) + np.cos(angle) * (y - cy)
    r = star_radius((H, W), (cy, cx), aspect=aspect, angle=angle).numpy()
    np.testing.assert_allclose(r, np.hypot(along, across / aspect), rtol=1e-12)
    a, b = (0.1, -0.2), (0.3, 1.1)
    phi = np.arctan2(y - cy, x - cx)
    outline = 1 + a[0] * np.cos(2 * phi + b[0]) + a[1] * np.cos(3 * phi + b[1])
    np.testing.assert_allclose(star_radius((H, W), (cy, cx), amplitudes=a, phases=b).numpy(),
                               np.hypot(y - cy, x - cx) / outline, rtol=1e-12)
    # hole_mask's blobs are regions of this outline: each blob is star-shaped about its centre, so a mask
    # grown in increasing value from a centre is connected
    grown = (star_radius((64, 64), (30, 33), aspect=0.6, angle=1.0, amplitudes=(0.2, 0.1)) < 12).numpy()
    assert ndimage.label(grown)[1] == 1 and grown.sum() > 100


@pytest.mark.parametrize("args, kwargs, match", [
    (((64, 64, 3), (1, 1)), {}, r"star_radius: shape must be an int or \(H, W\)"),
    (((8, 64), (1, 1)), {}, r"at least 16 x 16"),
    (((32, 32), (1,)), {}, r"centre must be two numbers"),
    (((32, 32), (1, float("inf"))), {}, r"centre must be finite"),
    (((32, 32), (1, 1)), {"aspect": 0}, r"aspect must be a finite number > 0"),
    (((32, 32), (1, 1)), {"amplitudes": (0.6, -0.5)}, r"absolute values summing to less than 1"),
    (((32, 32), (1, 1)), {"amplitudes": (0.1,), "phases": (0.0, 1.0)}, r"one value per amplitude \(1\), got 2"),
])
def test_star_radius_bad_input(args, kwargs, match):
    with pytest.raises(UserInputError, match=match):
        star_radius(*args, **kwargs)
