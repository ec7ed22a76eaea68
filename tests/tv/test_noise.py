"""The noise estimates (pdeflow.tv.estimate_sigma: the wavelet one against scikit-image's estimate_sigma, the patch
one on texture) and rof(f, "auto")."""
import math

import numpy as np
import pytest
import torch
from skimage.restoration import estimate_sigma as sk_estimate_sigma

import pdeflow
from pdeflow.datasets import scenes
from pdeflow.errors import UserInputError
from pdeflow.metrics import psnr
from pdeflow.tv import estimate_sigma, rof


def _noisy(shape, sigma, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.zeros(shape, dtype=torch.float64)
    clean[..., shape[-2] // 4: 3 * shape[-2] // 4, shape[-1] // 3:] = 0.7
    return clean, clean + sigma * torch.randn(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("shape", [(37, 41), (64, 64), (5, 7), (2, 9), (1, 1)])
@pytest.mark.filterwarnings("ignore:image is size")
def test_estimate_sigma_equals_skimage_grey(shape):
    a = np.random.default_rng(sum(shape)).random(shape)
    got = estimate_sigma(torch.from_numpy(a), method="wavelet")
    assert got.shape == () and got.dtype == torch.float64
    assert got.item() == pytest.approx(sk_estimate_sigma(a), rel=1e-12, abs=1e-15)


def test_estimate_sigma_equals_skimage_colour_batch_and_volume():
    rng = np.random.default_rng(1)
    a = rng.random((2, 3, 30, 33))
    got = estimate_sigma(torch.from_numpy(a), method="wavelet")
    assert got.shape == (2,)
    for b in range(2):
        ref = sk_estimate_sigma(a[b], channel_axis=0, average_sigmas=True)
        assert got[b].item() == pytest.approx(ref, rel=1e-12)
    v = rng.random((9, 10, 11))
    got = estimate_sigma(torch.from_numpy(v), ndim=3, method="wavelet").item()
    assert got == pytest.approx(sk_estimate_sigma(v), rel=1e-12)
    # float32 in, float32 out, the float64 estimate of the same values rounded
    x32 = torch.from_numpy(a).float()
    assert estimate_sigma(x32, method="wavelet").dtype == torch.float32
    assert torch.allclose(estimate_sigma(x32, method="wavelet").double(),
                          estimate_sigma(x32.double(), method="wavelet"), rtol=1e-6)


@pytest.mark.parametrize("method", ["lower", "patch", "wavelet"])
def test_estimate_sigma_finds_the_noise_and_zero_for_a_constant(method):
    _, f = _noisy((256, 256), 0.05)
    assert estimate_sigma(f, method=method).item() == pytest.approx(0.05, rel=0.05)
    assert estimate_sigma(torch.full((16, 16), 0.3), method=method).item() < 1e-12    # round-off only
    with pytest.raises(UserInputError, match="f"):
        estimate_sigma(torch.zeros(0, 1, 8, 8), method=method)


def _textured(sigma, seed=1):
    """Two synthetic scenes, a fine diagonal grating (amplitude 0.1, periods of 2-3 pixels) over the left half."""
    x = scenes(["disks", "polygons"], 128, seed=0, batch=2, dtype=torch.float64)
    i = torch.arange(128, dtype=torch.float64)
    tex = 0.1 * torch.sin(2 * math.pi * (0.31 * i[:, None] + 0.43 * i[None, :])) * (i[None, :] < 64)
    g = torch.Generator().manual_seed(seed)
    return x + tex + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("sigma", [0.01, 0.05])
def test_patch_estimate_is_not_misled_by_texture(sigma):
    """Texture over half the image: the wavelet estimate counts it as noise (1.75 to 4 times sigma here), the
    weak-texture patches do not (within 3 % here), and the default takes the smaller."""
    f = _textured(sigma)
    wav, pat, low = (estimate_sigma(f, method=m) / sigma for m in ("wavelet", "patch", "lower"))
    assert (wav > 1.5).all(), wav
    assert ((pat - 1).abs() < 0.05).all(), pat
    assert torch.equal(low, torch.minimum(wav, pat))


def test_patch_estimate_float32_colour_volume_and_small_images():
    f = _textured(0.02)
    p64 = estimate_sigma(f, method="patch")
    p32 = estimate_sigma(f.float(), method="patch")
    assert p32.dtype == torch.float32 and p32.shape == (2,)
    assert torch.allclose(p32.double(), p64, rtol=1e-3)
    # colour: the mean over the channels of each channel's estimate
    c = torch.cat([f, 0.5 * f.flip(-1), f.transpose(-1, -2)], 1)                  # (2, 3, 128, 128)
    per = torch.stack([estimate_sigma(c[:, k:k + 1], method="patch") for k in range(3)], 1)
    assert torch.allclose(estimate_sigma(c, method="patch"), per.mean(1), rtol=1e-12)
    assert estimate_sigma(c[0], method="patch").shape == ()
    # volumes: 5 x 5 x 5 patches; a half-textured volume as above
    g = torch.Generator().manual_seed(2)
    k = torch.arange(24, dtype=torch.float64)
    tex = 0.1 * torch.sin(2 * math.pi * (0.31 * k[:, None, None] + 0.43 * k[None, :, None] + 0.37 * k)) * (k < 12)
    v = (k[:, None, None] > 8) * 0.6 + tex + 0.03 * torch.randn(24, 24, 24, generator=g, dtype=torch.float64)
    assert estimate_sigma(v, ndim=3, method="patch").item() == pytest.approx(0.03, rel=0.05)
    assert estimate_sigma(v, ndim=3, method="wavelet").item() > 0.045
    assert estimate_sigma(v[None, None].expand(2, 1, 24, 24, 24), ndim=3).shape == (2,)
    # fewer patches than a patch has pixels: no patch estimate (0), the default is the wavelet one
    a = torch.rand(9, 12, generator=g, dtype=torch.float64)
    assert estimate_sigma(a, method="patch").item() == 0
    assert estimate_sigma(a).item() == estimate_sigma(a, method="wavelet").item() > 0


@pytest.mark.parametrize("bad", ["Wavelet", "pca", None])
def test_estimate_sigma_refuses_unknown_methods(bad):
    with pytest.raises(UserInputError, match="method must be one of 'lower', 'patch', 'wavelet', got"):
        estimate_sigma(torch.rand(16, 16), method=bad)


@pytest.mark.parametrize("sigma", [0.05, 0.15])
def test_rof_auto_is_near_the_best_lam(sigma):
    clean, f = _noisy((96, 96), sigma, seed=3)
    r = rof(f, "auto", full_output=True)
    assert r.lam.shape == (1,) and r.lam.dtype == torch.float64
    got = psnr(r.u, clean, data_range=1.0).item()
    assert torch.allclose(r.u, rof(f, r.lam.item()), atol=1e-3)     # the same as the chosen lam given
    lams = sigma * np.geomspace(0.2, 4, 14)
    best = max(psnr(rof(f, float(lam)), clean, data_range=1.0).item() for lam in lams)
    assert got >= best - 0.3, (got, best)


def test_rof_auto_batched_colour_per_image_and_constant_image():
    c1, f1 = _noisy((3, 48, 48), 0.05, seed=1)
    _, f2 = _noisy((3, 48, 48), 0.15, seed=2)
    f = torch.stack([f1, f2, torch.full_like(f1, 0.4)]).float()
    r = rof(f, "auto", full_output=True)
    assert r.u.shape == f.shape and r.u.dtype == torch.float32 and r.lam.shape == (3,)
    assert 0 < r.lam[0] < r.lam[1] and r.lam[2] < 1e-9          # more noise, a larger weight; no noise, none
    assert torch.allclose(r.u[2], f[2], atol=1e-6)
    assert rof(f, "auto").shape == f.shape                    # without full_output: the image alone


def test_rof_auto_volume_and_gradient_with_lam_constant():
    _, v = _noisy((12, 16, 16), 0.1, seed=4)
    r = pdeflow.rof(v, "auto", ndim=3, full_output=True)
    assert r.u.shape == v.shape and r.lam.item() > 0
    x = v[0].clone().requires_grad_()
    rof(x, "auto").sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("bad", ["Auto", "sure", ""])
def test_rof_lam_strings_other_than_auto_are_refused(bad):
    with pytest.raises(UserInputError, match="lam must be .*'auto'"):
        rof(torch.rand(8, 8), bad)


@pytest.mark.parametrize("sigma", [pytest.param(0.02, marks=pytest.mark.slow), 0.2])   # one noise level per tier
def test_rof_auto_in_float32_chooses_the_float64_lam_and_answer(sigma):
    """Across the documented noise range: the lam chosen from float32 data is the float64 one up to the search's
    resolution, the answers agree within the default's accuracy, and so do the gradients (lam held constant)."""
    _, f64 = _noisy((64, 64), sigma, seed=5)
    f32 = f64.float()
    r64, r32 = rof(f64, "auto", full_output=True), rof(f32, "auto", full_output=True)
    assert abs(r32.lam.item() / r64.lam.item() - 1) < 0.05, (r32.lam, r64.lam)
    assert (r32.u.double() - r64.u).abs().max() < 5e-3
    w = torch.randn(f64.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    grads = []
    for f in (f64, f32):
        x = f.clone().requires_grad_()
        (rof(x, "auto") * w.to(f.dtype)).sum().backward()
        grads.append(x.grad.double())
    assert (grads[0] - grads[1]).norm() / grads[0].norm() < 5e-2
