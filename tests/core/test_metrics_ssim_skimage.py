"""scikit-image's own SSIM tests (skimage/metrics/tests/test_structural_similarity.py), ported to
pdeflow.metrics.ssim where they apply, and float32 against float64.

Where pdeflow differs by design the port says so: images are channels-first tensors; the full SSIM
map is the valid (cropped) region, not the whole image; only 2-D images; gradients come from autograd,
not ``gradient=True``. Integer images are taken as scikit-image takes them (tests/core/test_metrics_integer.py).
"""
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity

from pdeflow.errors import UserInputError
from pdeflow.metrics import ssim

GAUSSIAN = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


@pytest.fixture(scope="module")
def cam_pair():
    """scikit-image's test images: the camera and a noisy copy, both uint8."""
    cam = data.camera()
    noisy = np.clip(cam + 20.0 * np.random.RandomState(5).randn(*cam.shape), 0, 255).astype(cam.dtype)
    return cam, noisy


def _rand_u8(rng, n):
    return (rng.rand(n, n) * 255).astype(np.uint8)


def t(a):
    """A NumPy image as a tensor, integer images converted to float64 on their own scale (as scikit-image and
    pdeflow compute them, so the values agree)."""
    x = torch.from_numpy(np.ascontiguousarray(a))
    return x if x.is_floating_point() else x.double()


# --- ported ----------------------------------------------------------------------------------------

def test_patch_range():
    rng = np.random.RandomState(1234)
    X, Y = _rand_u8(rng, 51), _rand_u8(rng, 51)
    assert ssim(t(X), t(Y), 255, window="uniform", win_size=51) < 0.1
    assert ssim(t(X), t(X), 255, window="uniform", win_size=51) == 1


def test_image():
    rng = np.random.RandomState(1234)
    X, Y = t(_rand_u8(rng, 100)), t(_rand_u8(rng, 100))
    assert ssim(X, X, 255, window="uniform", win_size=3) == 1
    assert ssim(X, Y, 255, window="uniform", win_size=3) < 0.3
    assert ssim(X, Y, 255) < 0.3                                   # the Gaussian window (11 x 11)
    mssim0, S3 = ssim(X, Y, 255, window="uniform", full=True)
    assert S3.shape == (100 - 6, 100 - 6)                          # the valid region: r = 3 cropped
    assert mssim0 == ssim(X, Y, 255, window="uniform")
    assert torch.allclose(S3.mean(), mssim0, rtol=1e-12, atol=0)
    assert ssim(X, X, 255, window="uniform") == 1.0


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_grad(seed, dtype):
    """SSIM of unrelated noise and its gradient (autograd for scikit-image's ``gradient=True``) are small."""
    rnd = np.random.RandomState(seed)
    X = t(rnd.rand(30, 30)).to(dtype) * 255
    Y = (t(rnd.rand(30, 30)).to(dtype) * 255).requires_grad_()
    f = ssim(X, Y, 255, window="uniform")
    assert f < 0.05
    f.backward()
    assert Y.grad.dtype == dtype
    assert torch.all(Y.grad.float() < 0.05)
    mssim, smap = ssim(X, Y.detach(), 255, window="uniform", full=True)
    want = torch.float32 if dtype == torch.float16 else dtype
    assert mssim.dtype == smap.dtype == want


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.float16, torch.float32, torch.float64])
def test_dtype(dtype):
    rng = np.random.RandomState(1234)
    X, Y = t(rng.rand(30, 30)), t(rng.rand(30, 30))
    if dtype in (torch.uint8, torch.int32):
        X = (X * 255).to(dtype)
        Y = (Y * 255).to(dtype)
        S1 = ssim(X, Y, 255, window="uniform")                     # integer images: computed in float64
        assert S1.dtype == torch.float64
        assert S1 == ssim(X.double(), Y.double(), 255, window="uniform")
    else:
        S1 = ssim(X.to(dtype), Y.to(dtype), window="uniform")
        assert S1.dtype == (torch.float32 if dtype == torch.float16 else dtype)
    assert S1 < 0.1


def test_multichannel():
    rng = np.random.RandomState(1234)
    X, Y = t(_rand_u8(rng, 100)), t(_rand_u8(rng, 100))
    S1 = ssim(X, Y, 255, window="uniform", win_size=3)
    # Replicated across three channels (channels first): the same value.
    Xc, Yc = X.expand(3, -1, -1), Y.expand(3, -1, -1)
    S2 = ssim(Xc, Yc, 255, window="uniform", win_size=3)
    assert S2.item() == pytest.approx(S1.item(), abs=1e-7)
    _, S3 = ssim(Xc, Yc, 255, window="uniform", full=True)
    assert S3.shape == (3, 94, 94)
    # win_size exceeding the image extent
    with pytest.raises(UserInputError, match="at least 101x101"):
        ssim(Xc, Yc, 255, window="uniform", win_size=101)


def test_multichannel_chelsea():
    Xc = data.chelsea()
    Yc = np.clip(Xc + 15.0 * np.random.RandomState(1234).randn(*Xc.shape), 0, 255).astype(Xc.dtype)
    X, Y = t(np.moveaxis(Xc, -1, 0)), t(np.moveaxis(Yc, -1, 0))
    # The multichannel result is the mean of the channels' results.
    mssim = ssim(X, Y, 255, window="uniform")
    sep = [ssim(Y[c], X[c], 255, window="uniform").item() for c in range(3)]
    assert mssim.item() == pytest.approx(np.mean(sep), abs=1e-7)
    assert ssim(X, X, 255, window="uniform") == 1.0


def test_gaussian_vs_ipol(cam_pair):
    """Against imdiff of "Image quality assessment" (IPOL, https://www.ipol.im/pub/art/2011/g_lmii/), the
    value scikit-image's test holds."""
    cam, noisy = cam_pair
    assert ssim(t(cam), t(noisy), 255).item() == pytest.approx(0.357959091663361, abs=1.5e-3)


def test_mssim_vs_legacy(cam_pair):
    """scikit-image 0.17's default SSIM of the pair, as scikit-image's test holds it."""
    cam, noisy = cam_pair
    assert ssim(t(cam), t(noisy), 255, window="uniform").item() == pytest.approx(0.3674518327910367, abs=1.5e-7)


def test_mssim_mixed_dtype(cam_pair):
    cam, noisy = cam_pair
    mssim = ssim(t(cam), t(noisy), 255, window="uniform")
    mixed = ssim(t(cam), t(noisy.astype(np.float32)), 255, window="uniform")
    assert mixed.dtype == torch.float64                            # float64 with float32: float64
    assert mixed.item() == pytest.approx(mssim.item(), abs=1e-7)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_small_image(dtype):
    X = torch.zeros(5, 5, dtype=dtype)
    # computable for small images if win_size is odd and at most the smaller side
    assert ssim(X, X, 1.0, window="uniform", win_size=3) == 1.0
    assert ssim(X, X, 1.0, window="uniform", win_size=5) == 1.0
    with pytest.raises(UserInputError):
        ssim(X, X, 1.0, window="uniform")                          # the default 7 x 7 window
    with pytest.raises(UserInputError):
        ssim(X, X, 1.0)                                            # the Gaussian window: 11 x 11


def test_errors_without_data_range():
    """scikit-image refuses float images without data_range; pdeflow takes 1 for data in [0, 1] and
    refuses data outside it."""
    X = torch.zeros(64, 64, dtype=torch.float64)
    assert ssim(X, X) == 1.0
    with pytest.raises(UserInputError, match="data_range"):
        ssim(X + 2, X + 2)


def test_invalid_input():
    X, Y = torch.zeros(9, 9, dtype=torch.float64), torch.zeros(8, 8, dtype=torch.float64)
    with pytest.raises(UserInputError, match="same shape"):
        ssim(X, Y, 1)
    with pytest.raises(UserInputError, match="at least"):
        ssim(X, X, 1, window="uniform", win_size=X.shape[0] + 2)
    with pytest.raises(UserInputError, match="K1"):
        ssim(X, X, 1, K1=-0.1)
    with pytest.raises(UserInputError, match="K2"):
        ssim(X, X, 1, K2=-0.1)
    with pytest.raises(UserInputError, match="win_sigma"):
        ssim(X, X, 1, win_sigma=-1.0)


# --- pdeflow's own: window arguments, float32 against float64 and scikit-image --------------------

@pytest.mark.parametrize("window", ["gaussian", "uniform"])
@pytest.mark.parametrize("kw,name", [
    (dict(win_sigma=-1.0), "win_sigma"), (dict(win_sigma=0.0), "win_sigma"),
    (dict(win_sigma=float("nan")), "win_sigma"), (dict(win_sigma=float("inf")), "win_sigma"),
    (dict(win_sigma="1.5"), "win_sigma"), (dict(win_sigma=True), "win_sigma"),
    (dict(truncate=-3.5), "truncate"), (dict(truncate=0), "truncate"),
    (dict(win_size=4), "win_size"), (dict(win_size=1), "win_size"), (dict(win_size=7.0), "win_size"),
    (dict(win_size=True), "win_size"), (dict(K1=float("nan")), "K1"), (dict(full=1), "full"),
])
def test_invalid_window_arguments_are_refused_for_either_window(window, kw, name):
    X = torch.rand(32, 32)
    with pytest.raises(UserInputError, match=f"ssim: {name}"):
        ssim(X, X, 1.0, window=window, **kw)


@pytest.mark.parametrize("window", [None, 3, ["gaussian"], "Gaussian"])
def test_invalid_window_names(window):
    X = torch.rand(32, 32)
    with pytest.raises(UserInputError, match="ssim: window"):
        ssim(X, X, 1.0, window=window)


def test_arguments_of_the_other_window_are_refused():
    X = torch.rand(32, 32)
    with pytest.raises(UserInputError, match="win_sigma applies to window='gaussian'"):
        ssim(X, X, 1.0, window="uniform", win_sigma=2.0)
    with pytest.raises(UserInputError, match="truncate applies to window='gaussian'"):
        ssim(X, X, 1.0, window="uniform", truncate=2.0)
    with pytest.raises(UserInputError, match="win_size applies to window='uniform'"):
        ssim(X, X, 1.0, win_size=7)
    # the defaults, passed explicitly, are accepted
    assert ssim(X, X, 1.0, window="uniform", win_sigma=1.5, truncate=3.5) == 1


def _pairs():
    cam = data.camera() / 255.0
    rng = np.random.RandomState(5)
    noisy = np.clip(cam + 0.08 * rng.randn(*cam.shape), 0, 1)
    ast = np.moveaxis(data.astronaut()[:200, 100:300] / 255.0, -1, 0)
    yield "camera", cam, noisy
    yield "camera crop", cam[200:328, 200:328], 0.5 * cam[200:328, 200:328] + 0.25
    yield "astronaut", ast, np.clip(ast + 0.03 * rng.randn(*ast.shape), 0, 1)
    yield "smooth", np.outer(np.linspace(0.4, 0.6, 96), np.linspace(0.4, 0.6, 96)), \
        np.outer(np.linspace(0.4, 0.6, 96), np.linspace(0.4, 0.6, 96)) + 1e-3 * rng.rand(96, 96)


@pytest.mark.parametrize("window", ["gaussian", "uniform"])
def test_float32_agrees_with_float64(window):
    """float32 SSIM is the float64 SSIM of the same values to float32 rounding (it was 6e-6 away)."""
    for name, a, b in _pairs():
        x32, y32 = t(a).float(), t(b).float()
        v32, m32 = ssim(x32, y32, 1.0, window=window, full=True)
        v64, m64 = ssim(x32.double(), y32.double(), 1.0, window=window, full=True)
        assert v32.dtype == m32.dtype == torch.float32
        assert abs(v32.item() - v64.item()) <= 1.2e-7 * abs(v64.item()), name
        assert torch.allclose(m32.double(), m64, rtol=1.2e-7, atol=1e-8), name
        # half precision: returned in float32, as computed from the rounded half values
        v16 = ssim(x32.half(), y32.half(), 1.0, window=window)
        assert v16.dtype == torch.float32
        ref16 = ssim(x32.half().double(), y32.half().double(), 1.0, window=window).item()
        assert abs(v16.item() - ref16) <= 1.2e-7 * abs(ref16), name


def test_float32_agrees_with_skimage_float64():
    for name, a, b in _pairs():
        x32, y32 = t(a).float(), t(b).float()
        a64, b64 = x32.double().numpy(), y32.double().numpy()
        kw = dict(channel_axis=0) if a64.ndim == 3 else {}
        ref = structural_similarity(a64, b64, data_range=1, **GAUSSIAN, **kw)
        assert abs(ssim(x32, y32, 1.0).item() - ref) <= 1.2e-7 * abs(ref), name
        ref_u = structural_similarity(a64, b64, data_range=1, **kw)
        assert abs(ssim(x32, y32, 1.0, window="uniform").item() - ref_u) <= 1.2e-7 * abs(ref_u), name


def test_batch_and_per_image_data_range_in_float32():
    rng = np.random.RandomState(7)
    x = t(rng.rand(3, 2, 40, 45)).float()
    y = (x + 0.1 * t(rng.randn(3, 2, 40, 45)).float()).clamp(0, 1)
    dr = torch.tensor([1.0, 2.0, 0.5])
    got = ssim(x, y, dr)
    assert got.dtype == torch.float32 and got.shape == (3,)
    for b in range(3):
        ref = structural_similarity(x[b].double().numpy(), y[b].double().numpy(), data_range=dr[b].item(),
                                    channel_axis=0, **GAUSSIAN)
        assert abs(got[b].item() - ref) <= 1.2e-7 * abs(ref)


def test_full_map_is_the_same_in_bands():
    """A tall image is computed in bands of rows: the map and the mean are those of one piece."""
    rng = np.random.RandomState(3)
    a = rng.rand(700, 60)
    b = np.clip(a + 0.1 * rng.randn(700, 60), 0, 1)
    val, smap = ssim(t(a), t(b), 1.0, full=True)
    ref_val, ref_map = structural_similarity(a, b, data_range=1, full=True, **GAUSSIAN)
    assert smap.shape == (700 - 10, 60 - 10)
    np.testing.assert_allclose(smap.numpy(), ref_map[5:-5, 5:-5], rtol=0, atol=1e-13)
    assert val.item() == pytest.approx(ref_val, rel=0, abs=1e-13)


def test_float32_gradient_matches_float64():
    rng = np.random.RandomState(11)
    x = t(rng.rand(1, 1, 48, 48))
    y = (x + 0.1 * t(rng.randn(1, 1, 48, 48))).clamp(0, 1)
    x, y = x.float().double(), y.float().double()                  # the same values in both dtypes
    grads = []
    for dtype in (torch.float32, torch.float64):
        yy = y.to(dtype).requires_grad_()
        ssim(x.to(dtype), yy, 1.0).sum().backward()
        assert yy.grad.dtype == dtype
        grads.append(yy.grad.double())
    assert torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-9)
