"""metrics.ssim's uniform (scikit-image default) window, dtypes and the full map, against scikit-image."""
import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pdeflow.metrics import mae, mse, psnr, ssim


def sk(x, y, **kw):
    """scikit-image on (H, W) or (C, H, W) arrays (channels first)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        return structural_similarity(np.moveaxis(x, 0, -1), np.moveaxis(y, 0, -1), channel_axis=-1, **kw)
    return structural_similarity(x, y, **kw)


@pytest.fixture(scope="module")
def camera():
    return torch.from_numpy(skdata.camera()[100:260, 150:310] / 255.0)


@pytest.fixture(scope="module")
def astronaut():
    return torch.from_numpy(np.moveaxis(skdata.astronaut()[:120, 200:330] / 255.0, -1, 0).copy())


def _noisy(x, sigma, seed):
    g = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)


@pytest.mark.parametrize("data_range", [1.0, 2.5])
@pytest.mark.parametrize("shape", [(40, 53), (3, 37, 41), (7, 7)])
def test_uniform_window_is_skimage_default(shape, data_range):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g, dtype=torch.float64) * data_range
    y = (x + 0.2 * data_range * torch.rand(shape, generator=g, dtype=torch.float64)).clamp(0, data_range)
    got = ssim(x, y, data_range, window="uniform")
    assert got.dtype == torch.float64
    assert abs(got.item() - sk(x, y, data_range=data_range)) < 1e-6


@pytest.mark.parametrize("data_range", [1.0, 5.0])
@pytest.mark.parametrize("shape", [(32, 32), (96, 96), (7, 7), (40, 53)])
def test_uniform_window_equals_skimage_to_float64_precision(shape, data_range):
    """The SSIM of the TVflowNET paper's tables: structural_similarity(x, y, data_range=..., win_size=7)."""
    g = torch.Generator().manual_seed(shape[0] + int(data_range))
    x = torch.rand(shape, generator=g, dtype=torch.float64) * data_range
    y = x + 0.1 * data_range * torch.randn(shape, generator=g, dtype=torch.float64)
    ref = structural_similarity(x.numpy(), y.numpy(), data_range=data_range, win_size=7)
    assert ssim(x, y, data_range, window="uniform").item() == pytest.approx(ref, rel=0, abs=1e-13)
    assert ssim(x, y, data_range, window="uniform", win_size=7).item() == pytest.approx(ref, rel=0, abs=1e-13)


def test_uniform_window_natural_images(camera, astronaut):
    for x in (camera, astronaut):
        for sigma in (0.02, 0.1):
            y = _noisy(x, sigma, 3)
            ref = sk(x, y, data_range=1.0)
            assert abs(ssim(x, y, 1.0, window="uniform").item() - ref) < 1e-6
            # The variants differ by more than the tolerance (the reason to have both).
            assert abs(ssim(x, y, 1.0).item() - ref) > 1e-3


@pytest.mark.parametrize("win_size", [3, 5, 9])
def test_uniform_window_sizes_and_covariance(camera, win_size):
    y = _noisy(camera, 0.05, 4)
    assert abs(ssim(camera, y, 1.0, window="uniform", win_size=win_size).item()
               - sk(camera, y, data_range=1.0, win_size=win_size)) < 1e-6
    assert abs(ssim(camera, y, 1.0, window="uniform", win_size=win_size, sample_covariance=False).item()
               - sk(camera, y, data_range=1.0, win_size=win_size, use_sample_covariance=False)) < 1e-6


def test_gaussian_window_with_sample_covariance(camera):
    y = _noisy(camera, 0.05, 5)
    ref = sk(camera, y, data_range=1.0, gaussian_weights=True, sigma=1.5)  # scikit-image: sample covariance
    assert abs(ssim(camera, y, 1.0, sample_covariance=True).item() - ref) < 1e-6


def test_uniform_batch_per_image():
    g = torch.Generator().manual_seed(9)
    x = torch.rand(3, 2, 20, 22, generator=g, dtype=torch.float64)
    y = (x + 0.3 * torch.rand(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    got = ssim(x, y, 1.0, window="uniform")
    assert got.shape == (3,)
    for b in range(3):
        assert abs(got[b].item() - sk(x[b], y[b], data_range=1.0)) < 1e-6


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_full_map_shapes_follow_the_input(window):
    r = 5 if window == "gaussian" else 3
    x = torch.rand(2, 3, 30, 31, dtype=torch.float64)
    y = (x + 0.1).clamp(0, 1)
    for inp_x, inp_y in ((x[0, 0], y[0, 0]), (x[0], y[0]), (x, y)):
        val, smap = ssim(inp_x, inp_y, 1.0, window=window, full=True)
        assert smap.shape == inp_x.shape[:-2] + (30 - 2 * r, 31 - 2 * r)
        dims = tuple(range(1, smap.dim())) if inp_x.dim() == 4 else tuple(range(smap.dim()))
        assert torch.allclose(val, smap.mean(dims))


def test_full_map_matches_skimage_interior(camera):
    y = _noisy(camera, 0.05, 6)
    for window, kw, r in (("gaussian", dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False), 5),
                          ("uniform", {}, 3)):
        _, smap = ssim(camera, y, 1.0, window=window, full=True)
        _, S = structural_similarity(camera.numpy(), y.numpy(), data_range=1.0, full=True, **kw)
        assert smap.shape == (camera.shape[0] - 2 * r, camera.shape[1] - 2 * r)
        assert np.abs(smap.numpy() - S[r:-r, r:-r]).max() < 1e-10


def test_float16_in_0_255_is_finite_and_matches_skimage(camera):
    x = (camera * 255).to(torch.float16)
    y = (_noisy(camera, 0.05, 7).clamp(0, 1) * 255).to(torch.float16)
    for window, kw in (("gaussian", dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)),
                       ("uniform", {})):
        got = ssim(x, y, 255.0, window=window)
        assert got.dtype == torch.float32 and torch.isfinite(got)
        ref = sk(x.numpy(), y.numpy(), data_range=255.0, **kw)  # scikit-image upcasts float16 to float32
        exact = sk(x.double().numpy(), y.double().numpy(), data_range=255.0, **kw)
        assert abs(got.item() - ref) < 1e-5 and abs(got.item() - exact) < 1e-5
    p = psnr(x, y, 255.0)
    assert p.dtype == torch.float32
    ref = peak_signal_noise_ratio(x.double().numpy(), y.double().numpy(), data_range=255.0)
    assert abs(p.item() - ref) < 1e-4
    assert abs(p.item() - peak_signal_noise_ratio(x.numpy(), y.numpy(), data_range=255.0)) < 1e-4
    assert mse(x, y).dtype == torch.float32 and mae(x, y).dtype == torch.float32


def test_bfloat16_is_computed_in_float32(camera):
    x, y = camera.to(torch.bfloat16), _noisy(camera, 0.05, 8).clamp(0, 1).to(torch.bfloat16)
    got = ssim(x, y)
    assert got.dtype == torch.float32
    assert abs(got.item() - ssim(x.double(), y.double()).item()) < 1e-5


def test_integer_input_equals_its_float64_and_matches_skimage():
    g = np.random.default_rng(10)
    a = g.integers(0, 256, (40, 44), dtype=np.uint8)
    b = np.clip(a.astype(int) + g.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    for metric in (ssim, psnr, mse, mae):          # taken as scikit-image takes them: float64, range 255
        assert torch.equal(metric(x, y), metric(x.double(), y.double(), *([255.0] if metric in (ssim, psnr)
                                                                           else [])))
    x, y = x.double(), y.double()     # the same values on the 0..255 scale
    for window, kw in (("gaussian", dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)),
                       ("uniform", {})):
        got = ssim(x, y, 255.0, window=window)
        assert got.dtype == torch.float64
        assert abs(got.item() - sk(a, b, data_range=255, **kw)) < 1e-12
    p = psnr(x, y, 255.0)
    assert p.dtype == torch.float64 and abs(p.item() - peak_signal_noise_ratio(a, b, data_range=255)) < 1e-10


def test_window_argument_errors():
    x = torch.rand(20, 20)
    with pytest.raises(ValueError, match="window must be one of"):
        ssim(x, x, window="box")
    for bad in (4, 1, 2.0, True):
        with pytest.raises(ValueError, match="win_size must be an odd int >= 3"):
            ssim(x, x, window="uniform", win_size=bad)
    with pytest.raises(ValueError, match="win_size applies to window='uniform'"):
        ssim(x, x, win_size=7)
    with pytest.raises(ValueError, match="sample_covariance"):
        ssim(x, x, sample_covariance="yes")
    with pytest.raises(ValueError, match=r"at least 9x9 pixels for window='uniform', win_size=9"):
        ssim(torch.rand(8, 30), torch.rand(8, 30), window="uniform", win_size=9)
