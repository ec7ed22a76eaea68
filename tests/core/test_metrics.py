"""Tests for pdeflow.metrics: SSIM/PSNR against scikit-image, MAE, Dice."""
import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pdeflow.errors import UserInputError
from pdeflow.metrics import dice, mae, mse, psnr, ssim


def sk_ssim(x, y, data_range, sigma=1.5):
    """scikit-image reference for (H, W) or (C, H, W) float64 tensors."""
    x, y = x.numpy(), y.numpy()
    kw = dict(gaussian_weights=True, sigma=sigma, use_sample_covariance=False, data_range=data_range)
    if x.ndim == 3:
        return structural_similarity(np.moveaxis(x, 0, -1), np.moveaxis(y, 0, -1), channel_axis=-1, **kw)
    return structural_similarity(x, y, **kw)


def noisy(x, sigma, seed):
    g = torch.Generator().manual_seed(seed)
    return x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)


@pytest.fixture(scope="module")
def camera():
    return torch.from_numpy(skdata.camera()[128:320, 160:352] / 255.0)


@pytest.fixture(scope="module")
def astronaut():
    return torch.from_numpy(np.moveaxis(skdata.astronaut()[:160, 200:360] / 255.0, -1, 0).copy())


# --------------------------------------------------------------------- SSIM

@pytest.mark.parametrize("data_range", [1.0, 2.5, 0.3])
@pytest.mark.parametrize("shape", [(40, 53), (3, 37, 41), (2, 25, 30)])
def test_ssim_matches_skimage_random(shape, data_range):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g, dtype=torch.float64) * data_range
    y = noisy(x, 0.1 * data_range, 1)
    got = ssim(x, y, data_range)
    assert got.shape == ()
    assert got.dtype == torch.float64
    assert abs(got.item() - sk_ssim(x, y, data_range)) < 1e-6


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_ssim_matches_skimage_natural(camera, astronaut, data_range):
    for img in (camera, astronaut):
        x = img * data_range
        y = noisy(x, 0.05 * data_range, 2)
        assert abs(ssim(x, y, data_range).item() - sk_ssim(x, y, data_range)) < 1e-6
        # a blurred copy (structured differences rather than noise)
        yb = torch.nn.functional.avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), 3, 1, 1).reshape(x.shape)
        assert abs(ssim(x, yb, data_range).item() - sk_ssim(x, yb, data_range)) < 1e-6


def test_ssim_other_sigma(camera):
    y = noisy(camera, 0.05, 3)
    assert abs(ssim(camera, y, 1.0, win_sigma=0.8).item() - sk_ssim(camera, y, 1.0, sigma=0.8)) < 1e-6


def test_ssim_batch_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 2, 30, 31, generator=g, dtype=torch.float64)
    y = noisy(x, 0.2, 4)
    dr = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64)
    got = ssim(x, y, dr)
    assert got.shape == (4,)
    for b in range(4):
        assert abs(got[b].item() - sk_ssim(x[b], y[b], dr[b].item())) < 1e-6
    # scalar data_range broadcasts over the batch
    assert torch.allclose(ssim(x, y, 1.0)[0], ssim(x[0], y[0], 1.0))


def test_ssim_identity_float32_and_full():
    x = torch.rand(1, 3, 24, 24)
    assert torch.allclose(ssim(x, x), torch.ones(1))
    val, smap = ssim(x, x * 0.9, full=True)
    assert val.dtype == torch.float32
    assert smap.shape == (1, 3, 14, 14)
    assert torch.allclose(val, smap.mean((1, 2, 3)))
    x64 = x.double()
    assert abs(ssim(x, x * 0.9).item() - ssim(x64, x64 * 0.9).item()) < 1e-5


def test_ssim_gradient():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    y = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64, requires_grad=True)
    ssim(x, y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    y2 = y.detach()[..., :12, :12].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ssim(x[..., :12, :12], t, 1.0), (y2,), fast_mode=True)


def test_ssim_errors():
    x = torch.rand(20, 20)
    with pytest.raises(ValueError, match="x and y must have the same shape"):
        ssim(x, torch.rand(20, 21))
    with pytest.raises(ValueError, match="data_range"):
        ssim(x, x, data_range=0)
    with pytest.raises(ValueError, match="data_range"):
        ssim(x, x, data_range=float("nan"))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(10, 30), torch.rand(10, 30))
    with pytest.raises(ValueError, match="shape"):
        ssim(torch.rand(5), torch.rand(5))
    with pytest.raises(ValueError, match=r"data_range.*\(B,\)"):
        ssim(torch.rand(2, 1, 12, 12), torch.rand(2, 1, 12, 12), data_range=torch.ones(3))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        ssim(object(), x)
    # NumPy arrays are taken as tensors
    assert ssim(np.zeros((20, 20)), torch.zeros(20, 20, dtype=torch.float64)).item() == 1.0


def test_psnr_ssim_refuse_to_guess_the_data_range():
    # As scikit-image: data outside [0, 1] needs data_range (psnr(x*255, 0.9*x*255) used to give -23 dB).
    x = torch.rand(16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for fn in (psnr, ssim):
        with pytest.raises(UserInputError, match=r"outside \[0, 1\].*data_range"):
            fn(x * 255, 0.9 * x * 255)
        with pytest.raises(UserInputError, match="y has values outside"):
            fn(x, x - 0.5)
        assert torch.isclose(fn(x * 255, 0.9 * x * 255, data_range=255.0), fn(x, 0.9 * x, data_range=1.0))
        assert torch.equal(fn(x, 0.9 * x), fn(x, 0.9 * x, data_range=1.0))


# --------------------------------------------------------------------- PSNR, MAE

@pytest.mark.parametrize("data_range", [1.0, 4.0, 255.0])
def test_psnr_matches_skimage(camera, astronaut, data_range):
    for img in (camera, astronaut):
        x = img * data_range
        y = noisy(x, 0.03 * data_range, 6)
        ref = peak_signal_noise_ratio(x.numpy(), y.numpy(), data_range=data_range)
        assert abs(psnr(x, y, data_range).item() - ref) < 1e-9


def test_psnr_batch_identity_gradient():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 1, 8, 9, generator=g, dtype=torch.float64)
    y = noisy(x, 0.1, 8).requires_grad_(True)
    got = psnr(x, y, 1.0)
    assert got.shape == (3,)
    for b in range(3):
        ref = peak_signal_noise_ratio(x[b].numpy(), y[b].detach().numpy(), data_range=1.0)
        assert abs(got[b].item() - ref) < 1e-9
    got.sum().backward()
    assert torch.isfinite(y.grad).all()
    assert torch.isinf(psnr(x, x)).all()


def test_mae_mse():
    x = torch.zeros(2, 1, 2, 2)
    y = torch.tensor([[[[1.0, -1.0], [0.0, 0.0]]], [[[2.0, 2.0], [2.0, 2.0]]]])
    assert torch.allclose(mae(x, y), torch.tensor([0.5, 2.0]))
    assert torch.allclose(mse(x, y), torch.tensor([0.5, 4.0]))
    assert mae(x[0], y[0]).shape == ()
    # integer images on their own scale, in float64 (no uint8 wrap-around: 0 - 2 is -2, not 254)
    got = mae(torch.zeros(3, 3, dtype=torch.uint8), torch.full((3, 3), 2, dtype=torch.uint8))
    assert got.dtype == torch.float64 and got.item() == 2.0
    assert mse(torch.zeros(3, 3, dtype=torch.uint8), torch.full((3, 3), 2, dtype=torch.uint8)).item() == 4.0
    with pytest.raises(UserInputError, match=r"mae: x is an integer image .*x.double\(\) / 255"):
        mae(torch.zeros(3, 3, dtype=torch.uint8), torch.full((3, 3), 2.0))
    with pytest.raises(ValueError, match="same shape"):
        mae(x, y[0])


# --------------------------------------------------------------------- Dice

def test_dice_labels_hand_built():
    t = torch.tensor([[0, 1, 1, 0],
                      [0, 1, 1, 0],
                      [2, 2, 0, 0],
                      [2, 2, 0, 0]])
    assert dice(t, t).item() == 1.0
    p = t.clone()
    p[0, 1] = 0  # class 1: |P| = 3, |T| = 4, overlap 3 -> 6/7; class 2 perfect
    assert abs(dice(p, t).item() - (6 / 7 + 1) / 2) < 1e-7
    assert torch.allclose(dice(p, t, per_class=True), torch.tensor([6 / 7, 1.0]))
    # with background: class 0 has |P| = 9, |T| = 8, overlap 8 -> 16/17
    assert abs(dice(p, t, exclude_background=False).item() - (16 / 17 + 6 / 7 + 1) / 3) < 1e-7
    # a class absent from both counts as 1.0
    assert abs(dice(p, t, num_classes=4).item() - (6 / 7 + 1 + 1) / 3) < 1e-7
    # disjoint prediction
    assert dice(torch.tensor([[1, 0]]), torch.tensor([[0, 1]])).item() == 0.0


def test_dice_batched_onehot_and_probabilities():
    t = torch.tensor([[[0, 1], [1, 1]], [[2, 2], [0, 1]]])
    p = torch.tensor([[[0, 1], [0, 1]], [[2, 0], [0, 1]]])
    hard = dice(p, t, num_classes=3)
    assert hard.shape == (2,)
    # image 0: class 1 -> 2*2/(2+3) = 0.8, class 2 absent -> 1; image 1: class 1 -> 1, class 2 -> 2/3
    assert torch.allclose(hard, torch.tensor([0.9, (1 + 2 / 3) / 2]))
    onehot = torch.nn.functional.one_hot(p, 3).permute(0, 3, 1, 2).float()
    assert torch.allclose(dice(onehot, t), hard)
    assert torch.allclose(dice(onehot, onehot.clone()), torch.ones(2))
    # soft Dice from probabilities is differentiable
    logits = torch.randn(2, 3, 2, 2, requires_grad=True)
    d = dice(logits.softmax(1), t)
    assert d.shape == (2,) and ((d >= 0) & (d <= 1)).all()
    d.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_dice_errors():
    t = torch.zeros(4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="do not match"):
        dice(t, torch.zeros(4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="num_classes"):
        dice(t + 3, t, num_classes=2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        dice(t, t)
    with pytest.raises(ValueError, match="non-negative"):
        dice(t - 1, t)
    with pytest.raises(ValueError, match=r"\(K, H, W\)"):
        dice(torch.rand(4, 4), t)
    with pytest.raises(ValueError, match="does not match the class dimension"):
        dice(torch.rand(3, 4, 4), t, num_classes=4)
