"""Gaussian-weighted Shepard inpainting (pdeflow.inpaint.operators.shepard) against an independent normalised
convolution (SciPy's Gaussian filter), its linear map against its adjoint, and the codec storing it (one table entry
each; the table-driven tests of tests/inpaint/test_inpaint_operators.py cover the rest)."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from pdeflow.codec import CODEC_OPERATORS, decode, encode
from pdeflow.codec.format import read_header
from pdeflow.errors import UserInputError
from pdeflow.inpaint import OPERATORS, inpaint, optimise_tonal, random_mask
from pdeflow.inpaint.operators.shepard import inpaint_shepard, linear_map


def _image(size=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                          torch.linspace(0, 1, size, dtype=torch.float64), indexing="ij")
    return 0.3 + 0.4 * x * y + 0.1 * torch.rand(size, size, generator=g, dtype=torch.float64)


def test_it_is_scipys_normalised_convolution_where_a_known_pixel_is_in_reach():
    f = _image()
    m = random_mask((40, 40), 0.3, generator=1, dtype=torch.float64)
    for sigma in (1.0, 2.5):
        u = inpaint_shepard(f, m, sigma=sigma).numpy()
        # SciPy's radius int(truncate sigma + 0.5) with truncate 3.5, mirrored without repeating the edge pixel
        num = ndimage.gaussian_filter((m * f).numpy(), sigma, mode="mirror", truncate=3.5)
        den = ndimage.gaussian_filter(m.numpy(), sigma, mode="mirror", truncate=3.5)
        assert den.min() > 1e-6                     # every pixel in reach at this scale: one scale used
        ref = np.where(m.numpy() > 0, f.numpy(), num / den)
        assert np.abs(u - ref).max() < 1e-12


def test_far_pixels_take_a_larger_scale_and_the_result_stays_in_the_known_range():
    f = _image(64)
    m = torch.zeros(64, 64, dtype=torch.float64)
    m[3, 5] = m[60, 58] = m[30, 2] = 1             # most pixels far beyond 3.5 sigma of any known one
    u = inpaint_shepard(f, m, sigma=1.0)
    known = f[m > 0]
    assert torch.isfinite(u).all() and float(u.min()) >= float(known.min()) - 1e-12
    assert float(u.max()) <= float(known.max()) + 1e-12


def test_its_linear_map_is_the_inpainting_and_its_adjoint_is_exact():
    m = random_mask((1, 1, 24, 24), 0.1, generator=2, dtype=torch.float64)
    g = torch.rand(1, 2, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    r = torch.rand(1, 2, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    M = linear_map(m, g.shape, 1e-6)
    assert torch.allclose(M.forward(g), inpaint(g, m, method="shepard"), atol=1e-14)
    assert abs(float((M.forward(g) * r).sum() - (g * M.adjoint(r)).sum())) < 1e-10


def test_tonal_optimisation_serves_it_and_lowers_the_error():
    f = _image(32)[None, None]
    m = random_mask((1, 1, 32, 32), 0.08, generator=5, dtype=torch.float64)
    r = optimise_tonal(f, m, operator="shepard", full_output=True)
    own = float((inpaint(f, m, method="shepard") - f).square().mean())
    assert float(r.mse) < 0.9 * own
    assert torch.allclose(r.u, inpaint(r.values, m, method="shepard"), atol=1e-12)


def test_bad_options_are_refused_by_name():
    with pytest.raises(UserInputError, match="sigma"):
        inpaint_shepard(_image(8), torch.ones(8, 8), sigma=0)


def test_the_codec_table_is_built_from_the_operators():
    ids = [op.id for op in CODEC_OPERATORS.values()]
    assert len(set(ids)) == len(ids)
    for name, op in CODEC_OPERATORS.items():
        assert name in OPERATORS and OPERATORS[name].tonal          # the encoder optimises the stored values
        assert op.unpack(op.pack()) == pytest.approx(op.defaults(), abs=1 / 256)


def test_a_shepard_file_records_its_operator_and_decodes_to_the_encoders_reconstruction():
    f = _image(48)[None].float()
    r = encode(f, bpp=0.8, operator="shepard", full_output=True)
    h, _ = read_header(r.data)
    assert len(r.data) <= 0.8 * 48 * 48 / 8 and h.operator == CODEC_OPERATORS["shepard"].id
    assert CODEC_OPERATORS["shepard"].unpack(h.operator_params) == {"sigma": 1.0}
    assert torch.equal(decode(r.data), r.reconstruction)
    mean = float((f - f.mean()).square().mean())
    assert float((r.reconstruction - f).square().mean()) < 0.25 * mean
