"""spectral_tv at its default accuracy (SPECTRAL_ACCURACY, looser than a flow's with dt): the claims that do not
depend on the accuracy still hold (the bands and the residual add up to u0 to round-off, a disk's spectrum is one
peak), the bands are close to tight solves, float32 gives float64's answer, and spectral_steps says what it runs."""
from __future__ import annotations

import pytest
import torch

from pdeflow.datasets import builtin_image, disk
from pdeflow.errors import UserInputError
from pdeflow.tv import FLOW_ACCURACY, SPECTRAL_ACCURACY, spectral_steps, spectral_tv


@pytest.fixture(scope="module")
def crop():
    return builtin_image("skimage/camera", grey=True)[:, 200:248, 220:268].double()


@pytest.fixture(scope="module")
def default(crop):
    return spectral_tv(crop, dt=0.04, n_steps=20)


def test_default_reconstructs_to_round_off(crop, default):
    assert SPECTRAL_ACCURACY > FLOW_ACCURACY
    assert float((default.reconstruct() - crop).abs().max()) < 1e-12
    assert float((default.filter().sum(0) + default.residual - crop).abs().max()) < 1e-12


def test_default_bands_are_close_to_tight_ones(crop, default):
    # Stated tolerance: the bands' RMS error within half the frames' certified accuracy (as a fraction of the
    # range), their largest error within 2.5 times it, against frames certified 40 times tighter (measured here:
    # 3.6e-3 and 2.8e-2 at the default 2e-2, in the two coarsest bands).
    tight = spectral_tv(crop, dt=0.04, n_steps=20, accuracy=SPECTRAL_ACCURACY / 40)
    rng = float(crop.max() - crop.min())
    err = torch.cat([default.filter() - tight.filter(), (default.residual - tight.residual)[None]]).flatten(1)
    assert float(err.square().mean(1).sqrt().max()) / rng < SPECTRAL_ACCURACY / 2
    assert float(err.abs().max()) / rng < 2.5 * SPECTRAL_ACCURACY
    # the loose solve is loose: not the tight one to round-off (else the test would say nothing)
    assert float(err.abs().max()) > 1e-9


def test_default_disk_spectrum_is_a_single_peak():
    # A disk of height 1 and radius r is an eigenfunction: its height falls linearly (by perimeter / area per unit
    # time), so phi is zero but where it meets its background. The pixel disk is one up to its corners, which
    # round off first: a tight solve puts 91 % of the spectrum on the peak and its two neighbours.
    r = 6
    u0 = disk(48, r).double()
    s = spectral_tv(u0, dt=0.2, n_steps=30)
    tight = spectral_tv(u0, dt=0.2, n_steps=30, tol=1e-7)
    peak = int(s.spectrum.argmax())
    assert peak == int(tight.spectrum.argmax()) and abs(float(s.times[peak]) - r / 2) < 0.35 * r / 2
    assert float(s.spectrum[max(peak - 1, 0):peak + 2].sum()) > 0.9 * float(s.spectrum.sum())
    assert float((s.spectrum - tight.spectrum).abs().max()) < 0.01 * float(tight.spectrum.max())
    assert float((s.reconstruct() - u0).abs().max()) < 1e-12


def test_float32_gives_the_float64_answer(crop, default):
    s32 = spectral_tv(crop.float(), dt=0.04, n_steps=20)
    assert s32.phi.dtype == torch.float32
    # stated tolerance: float32 rounding of the bands (the frames are computed in float64 either way)
    assert float((s32.filter().double() - default.filter()).abs().max()) < 1e-5
    assert float((s32.residual.double() - default.residual).abs().max()) < 1e-5
    assert float((s32.reconstruct().double() - crop).abs().max()) < 1e-5


def test_spectral_steps_says_what_spectral_tv_runs():
    s = spectral_steps(0.04, 50, data_range=1.0)
    assert (s.n_steps, s.dt, s.solver_accuracy) == (51, 0.04, SPECTRAL_ACCURACY)
    assert "51 implicit steps (dt 0.04)" in s.describe()
    assert spectral_steps(0.1, 9, accuracy=1e-3).solver_accuracy == 1e-3
    assert spectral_steps(0.1, 9, tol=1e-6).solver_accuracy is None
    for bad in (0, 2.5, "5", None, float("inf"), float("nan")):
        with pytest.raises(UserInputError, match="n_steps must be an integer >= 1"):
            spectral_steps(0.1, bad)
    with pytest.raises(UserInputError, match="dt must be a finite number > 0"):
        spectral_steps(-0.1, 5)
