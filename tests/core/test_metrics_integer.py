"""Integer images in pdeflow.metrics, as scikit-image takes them: the data range from the dtype, computed in
float64. Ported from scikit-image's metrics tests (skimage/metrics/tests/test_simple_metrics.py and
test_structural_similarity.py) where they pass integer images, and checked against skimage.metrics."""
import warnings

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from pdeflow.errors import UserInputError
from pdeflow.metrics import mae, mse, psnr, ssim

GAUSSIAN = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


@pytest.fixture(scope="module")
def cam_pair():
    """scikit-image's test pair: the camera and a noisy copy, both uint8."""
    cam = data.camera()
    noisy = np.clip(cam + 20.0 * np.random.RandomState(5).randn(*cam.shape), 0, 255).astype(cam.dtype)
    return cam, noisy


# --- ported ----------------------------------------------------------------------------------------

def test_psnr_vs_ipol(cam_pair):
    """imdiff of "Image quality assessment" (IPOL), the value scikit-image's test holds, from uint8 images
    without data_range."""
    cam, noisy = cam_pair
    p = psnr(torch.from_numpy(cam), torch.from_numpy(noisy))
    assert p.dtype == torch.float64
    assert p.item() == pytest.approx(22.409353363576034, abs=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_psnr_uint8_equals_float(cam_pair, dtype):
    cam, noisy = cam_pair
    p_uint8 = psnr(torch.from_numpy(cam), torch.from_numpy(noisy))
    p_float = psnr(torch.from_numpy(cam / 255.0).to(dtype), torch.from_numpy(noisy / 255.0).to(dtype), data_range=1)
    assert p_uint8.item() == pytest.approx(p_float.item(), abs=1e-3 if dtype == torch.float16 else 1e-5)


def test_mse_no_int_overflow(cam_pair):
    cam, noisy = cam_pair
    got = mse(torch.from_numpy(cam), torch.from_numpy(noisy))
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(mean_squared_error(cam.astype(np.float32), noisy.astype(np.float32)),
                                       rel=1e-12)


def test_ssim_gaussian_vs_ipol(cam_pair):
    """scikit-image's test: uint8 images without data_range (255 from the dtype)."""
    cam, noisy = cam_pair
    got = ssim(torch.from_numpy(cam), torch.from_numpy(noisy))
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(0.357959091663361, abs=1.5e-3)
    assert got.item() == pytest.approx(structural_similarity(cam, noisy, **GAUSSIAN), abs=1e-12)


def test_ssim_vs_legacy(cam_pair):
    cam, noisy = cam_pair
    got = ssim(torch.from_numpy(cam), torch.from_numpy(noisy), window="uniform")
    assert got.item() == pytest.approx(0.3674518327910367, abs=1.5e-7)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_ssim_dtype(dtype):
    rng = np.random.RandomState(1234)
    X = (rng.rand(30, 30) * 255).astype(dtype)
    Y = (rng.rand(30, 30) * 255).astype(dtype)
    S1 = ssim(torch.from_numpy(X), torch.from_numpy(Y), 255.0, window="uniform")
    assert S1.dtype == torch.float64 and S1 < 0.1
    assert S1.item() == pytest.approx(structural_similarity(X, Y, data_range=255.0), abs=1e-12)


# --- against skimage.metrics, dtype by dtype ------------------------------------------------------

def _pair(dtype, seed=10, shape=(40, 44)):
    g = np.random.default_rng(seed)
    a = g.integers(0, 256, shape)
    b = np.clip(a + g.integers(-20, 21, a.shape), 0, 255)
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.int64])
def test_every_metric_matches_skimage_without_data_range(dtype):
    a, b = _pair(dtype)
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    assert psnr(x, y).item() == pytest.approx(peak_signal_noise_ratio(a, b), abs=1e-10)
    assert mse(x, y).item() == pytest.approx(mean_squared_error(a, b), rel=1e-14)
    assert mae(x, y).item() == pytest.approx(np.abs(a.astype(np.float64) - b).mean(), rel=1e-14)
    for window, kw in (("gaussian", GAUSSIAN), ("uniform", {})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # scikit-image warns for integers other than uint8
            ref = structural_similarity(a, b, **kw)
        assert ssim(x, y, window=window).item() == pytest.approx(ref, abs=1e-12)


def test_signed_psnr_takes_the_whole_span_for_negative_data():
    a, b = _pair(np.int16)
    a, b = a - 100, b - 100                    # negative values: the span of int16, 65535 (scikit-image)
    assert psnr(torch.from_numpy(a), torch.from_numpy(b)).item() == pytest.approx(
        peak_signal_noise_ratio(a, b), abs=1e-10)
    assert psnr(torch.from_numpy(a), torch.from_numpy(b)).item() == pytest.approx(
        psnr(torch.from_numpy(a).double(), torch.from_numpy(b).double(), 65535.0).item(), abs=1e-12)


def test_batched_and_colour_uint8_and_data_range():
    g = np.random.default_rng(3)
    a = g.integers(0, 256, (2, 3, 24, 24)).astype(np.uint8)
    b = np.clip(a + g.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    p, s = psnr(x, y), ssim(x, y)
    assert p.shape == s.shape == (2,) and p.dtype == s.dtype == torch.float64
    for i in range(2):
        assert p[i].item() == pytest.approx(peak_signal_noise_ratio(a[i], b[i]), abs=1e-10)
        assert s[i].item() == pytest.approx(structural_similarity(a[i], b[i], channel_axis=0, **GAUSSIAN), abs=1e-12)
    # an explicit data_range wins over the dtype's, as in scikit-image
    assert psnr(x, y, 100.0)[0].item() == pytest.approx(peak_signal_noise_ratio(a[0], b[0], data_range=100),
                                                        abs=1e-10)
    assert torch.equal(psnr(x, y), psnr(x.double() / 255, y.double() / 255))


def test_identical_integer_images():
    x = torch.arange(64, dtype=torch.uint8).reshape(8, 8)
    assert torch.isinf(psnr(x, x)) and mse(x, x).item() == 0.0


def test_mixed_dtypes_and_bool_are_refused():
    a, b = _pair(np.uint8)
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    for metric in (psnr, ssim, mse, mae):
        with pytest.raises(UserInputError, match=r"y is an integer image \(torch.uint8\).*y.double\(\) / 255"):
            metric(x.double() / 255, y)
        with pytest.raises(UserInputError, match=r"x is an integer image \(torch.uint8\) and y has dtype torch.int16"):
            metric(x, y.to(torch.int16))
        with pytest.raises(UserInputError, match="bool"):
            metric(x > 100, y > 100)
