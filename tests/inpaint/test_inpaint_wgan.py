"""The inpainting WGAN and the mask generator of Peter (2022): shapes, binarisation, clipping, losses, API."""
from __future__ import annotations

import pytest
import torch

from pdeflow.inpaint.learned.gan import gan_mask, inpaint_wgan, load_mask_gan, load_wgan
from pdeflow.inpaint.learned.maskgan import MaskGAN, MaskGenerator, binarise, density_loss, mask_loss
from pdeflow.inpaint.learned.wgan import (
    Critic,
    InpaintingGenerator,
    composite,
    critic_loss,
    generator_loss,
    hard_sigmoid,
    pad_to_multiple,
)
from pdeflow.io import save_model

W = 0.1   # tiny widths keep the tests fast; the architecture is the same


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_hard_sigmoid_is_keras():
    x = torch.tensor([-10.0, -2.5, -1.0, 0.0, 1.0, 2.5, 10.0])
    assert torch.allclose(hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.3, 0.5, 0.7, 1.0, 1.0]))


@pytest.mark.parametrize("channels", [1, 3])
def test_generator_shapes_range_and_published_channel_counts(channels):
    torch.manual_seed(0)
    gen = InpaintingGenerator(channels, width=W)
    f = torch.rand(2, channels, 32, 40)
    m = (torch.rand(2, 1, 32, 40) < 0.2).float()
    g = gen(f, m)
    assert g.shape == f.shape and g.min() >= 0 and g.max() <= 1
    # width 1: the published channel counts (32/32/64, 32/32/64, 64/64/128; 128/128/256; 64/64/128, 32/32/64, 32/32/64)
    full = InpaintingGenerator(channels, width=1.0)
    outs = [[b.out_channels for b in blk.branches] for blk in (*full.body.encoder, full.body.bottleneck,
                                                                *full.body.decoder)]
    assert outs == [[32, 32, 64], [32, 32, 64], [64, 64, 128], [128, 128, 256], [64, 64, 128], [32, 32, 64],
                    [32, 32, 64]]
    assert [b.dilation for b in full.body.encoder[0].branches] == [(2, 2), (5, 5), (1, 1)]
    assert all(isinstance(b, torch.nn.ConvTranspose2d) for blk in full.body.decoder for b in blk.branches)
    assert full.body.encoder[0].branches[0].in_channels == 2 * channels + 1       # f*c, c, noise
    assert full.head.out_channels == 8 and full.out.out_channels == channels
    with pytest.raises(ValueError, match="multiples of 8"):
        gen(torch.rand(1, channels, 30, 32), torch.ones(1, 1, 30, 32))


def test_generator_input_puts_noise_only_in_missing_pixels():
    gen = InpaintingGenerator(1, width=W, noise_std=0.1)
    captured = {}
    gen.body.register_forward_pre_hook(lambda mod, args: captured.setdefault("x0", args[0]))
    f = torch.rand(1, 1, 32, 32)
    m = (torch.rand(1, 1, 32, 32) < 0.3).float()
    gen(f, m, generator=torch.Generator().manual_seed(1))
    x0 = captured["x0"]
    assert torch.equal(x0[:, 0:1], f * m) and torch.equal(x0[:, 1:2], m)
    noise = x0[:, 2:3]
    assert torch.all(noise[m.bool()] == 0) and 0.05 < float(noise[~m.bool()].std()) < 0.2


def test_composite_keeps_known_pixels_exactly():
    torch.manual_seed(0)
    gen = InpaintingGenerator(1, width=W)
    f = torch.rand(3, 1, 32, 32)
    m = (torch.rand(3, 1, 32, 32) < 0.1).float()
    u = gen.inpaint(f, m)
    assert torch.equal(u[m.expand_as(u).bool()], f[m.expand_as(f).bool()])
    g = gen(f, m)
    assert torch.equal(composite(g, f, m)[~m.bool()], g[~m.bool()])


def test_critic_shape_and_kernel_norm_clipping():
    torch.manual_seed(0)
    critic = Critic(channels=1, size=64, width=0.25)
    assert [c.stride for c in critic.convs] == [(2, 2)] * 5 and [c.kernel_size for c in critic.convs] == [(5, 5)] * 5
    assert [c.out_channels for c in Critic(1, 64, 1.0).convs] == [64, 128, 256, 256, 512]
    out = critic(torch.rand(4, 1, 64, 64), torch.ones(4, 1, 64, 64))
    assert out.shape == (4,)
    # at construction (Glorot init has norms > 1) and after any update, every kernel has L2 norm <= 1
    kernels = [m.weight for m in (*critic.convs, critic.linear)]
    assert all(float(torch.linalg.vector_norm(k.detach())) <= 1 + 1e-6 for k in kernels)
    with torch.no_grad():
        for k in kernels:
            k.mul_(7.0)
        critic.convs[0].bias.fill_(5.0)
        small = critic.convs[1].weight
        small.mul_(0.5 / torch.linalg.vector_norm(small))                 # one kernel already inside the ball
    before_small = small.clone()
    critic.clip_kernel_norms()
    for k in kernels:
        assert float(torch.linalg.vector_norm(k.detach())) <= 1 + 1e-6
    assert torch.equal(small, before_small)                                 # untouched if the norm is <= 1
    assert float(torch.linalg.vector_norm(critic.convs[0].weight.detach())) == pytest.approx(1.0, rel=1e-6)
    assert torch.all(critic.convs[0].bias == 5.0)                           # biases are not clipped
    with pytest.raises(ValueError, match="built for 64x64"):
        critic(torch.rand(1, 1, 32, 32), torch.ones(1, 1, 32, 32))


def test_wgan_losses_have_the_paper_signs():
    torch.manual_seed(0)
    critic = Critic(1, 32, width=0.25)
    f = torch.rand(2, 1, 32, 32)
    u = torch.rand(2, 1, 32, 32, requires_grad=True)
    m = torch.ones(2, 1, 32, 32)
    ld = critic_loss(critic, f, u, m)
    assert torch.allclose(ld, critic(u, m).mean() - critic(f, m).mean())
    assert not torch.autograd.grad(ld, critic.linear.weight)[0].abs().sum() == 0
    total, mae, d_fake = generator_loss(critic, f, u, m, alpha=0.005)
    assert torch.allclose(total, (f - u).abs().mean() - 0.005 * critic(u, m).mean())
    assert torch.allclose(mae, (f - u).abs().mean()) and torch.allclose(d_fake, critic(u, m).mean())


def test_binarisation_block_keeps_the_linear_gradient_where_the_hard_sigmoid_saturates():
    z = torch.tensor([-10.0, -2.6, -0.1, 0.0, 0.1, 2.6, 10.0], requires_grad=True)
    b, c = binarise(z)
    assert b.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert torch.equal(b, torch.floor(c + 0.5)) and c[0] == 0 and c[-1] == 1
    w = torch.arange(7.0)
    (g,) = torch.autograd.grad((b * w).sum(), z)
    assert torch.allclose(g, 0.2 * w)              # 0.2 everywhere, also at -10 and 10 (saturated)


def test_mask_generator_outputs_binary_masks_and_gradients_reach_it():
    torch.manual_seed(0)
    net = MaskGenerator(1, width=W)
    f = torch.rand(2, 1, 32, 32)
    b, c = net(f, generator=torch.Generator().manual_seed(0), return_confidence=True)
    assert b.shape == (2, 1, 32, 32) and set(b.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(b, torch.floor(c + 0.5)) and c.min() >= 0 and c.max() <= 1
    b2 = net(f, generator=torch.Generator().manual_seed(0))
    assert torch.equal(b, b2)                      # the seed r is the only randomness
    density_loss(b, 0.1).backward()
    assert net.out.weight.grad is not None and net.out.weight.grad.abs().sum() > 0
    assert net.body.encoder[0].branches[0].weight.grad.abs().sum() > 0


def test_density_loss_and_mask_loss():
    b = torch.zeros(2, 1, 10, 10)
    b[0, 0, :2] = 1          # 20 % known
    b[1, 0, :1] = 1          # 10 % known
    assert float(density_loss(b, 0.1)) == pytest.approx((0.1 + 0.0) / 2)
    assert float(density_loss(b, 0.2)) == pytest.approx((0.0 + 0.1) / 2)
    f, u = torch.rand(2, 1, 10, 10), torch.rand(2, 1, 10, 10)
    total, terms = mask_loss(b, f, u, torch.tensor(3.0), 0.1, beta=2.0, alpha=0.01)
    assert float(total) == pytest.approx(0.05 + 2.0 * float((f - u).abs().mean()) - 0.03, rel=1e-6)
    assert float(terms["density"]) == pytest.approx(0.05)
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="density must be a number in \\(0, 1\\)"):
            density_loss(b, bad)


def test_pad_to_multiple():
    x = torch.rand(1, 1, 13, 16)
    y, (H, W_) = pad_to_multiple(x, 8)
    assert y.shape == (1, 1, 16, 16) and (H, W_) == (13, 16) and torch.equal(y[..., :13, :], x)


# --------------------------------------------------------------------------- the API on exported models

def _export_pair(tmp_path, density=0.1, channels=1):
    torch.manual_seed(0)
    pair = MaskGAN(channels, width=W, density=density)
    save_model(pair, tmp_path / "mg", config={"kind": "maskgan", "model": pair.config}, provenance={"test": 1})
    gen = InpaintingGenerator(channels, width=W)
    save_model(gen, tmp_path / "inp", config={"kind": "inpainting", "model": gen.config})
    return pair, gen


def test_export_load_round_trip_and_api(tmp_path):
    pair, gen = _export_pair(tmp_path)
    loaded = load_mask_gan(str(tmp_path / "mg.json"))
    assert not loaded.training and loaded.density == 0.1 and loaded.meta["provenance"]["test"] == 1
    for a, b in zip(pair.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    inp = load_wgan(tmp_path / "inp")
    assert all(torch.equal(a, b) for a, b in zip(gen.state_dict().values(), inp.state_dict().values()))
    inp2 = load_wgan(tmp_path / "mg.safetensors")      # a mask GAN's own inpainting generator
    assert all(torch.equal(a, b) for a, b in zip(pair.inpainter.state_dict().values(), inp2.state_dict().values()))

    f = torch.rand(2, 1, 30, 37)                # not multiples of 8: padded and cropped back
    m = gan_mask(f, 0.1, loaded, generator=3)
    assert m.shape == (2, 1, 30, 37) and set(m.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(m, gan_mask(f, 0.1, loaded, generator=3))
    assert gan_mask(f[0, 0], 0.1, loaded, generator=3).shape == (30, 37)
    assert gan_mask(f[0], 0.1, loaded, generator=3).shape == (1, 30, 37)
    m = (torch.rand(2, 1, 30, 37) < 0.1).float()
    u = inpaint_wgan(f, m, inp, generator=0)
    assert u.shape == f.shape and torch.equal(u[m.bool()], f[m.bool()])
    assert torch.equal(u, inpaint_wgan(f, m.bool(), inp, generator=0))
    # the pair's inpainter, and a colour image through a greyscale model (channel by channel)
    fc = torch.rand(3, 30, 37)
    uc = inpaint_wgan(fc, m[0], loaded, generator=0)
    assert uc.shape == fc.shape and torch.equal(uc[m[0].expand(3, -1, -1).bool()], fc[m[0].expand(3, -1, -1).bool()])
    assert gan_mask(fc, 0.1, loaded, generator=0).shape == (1, 30, 37)


def test_bad_input_errors(tmp_path):
    pair, gen = _export_pair(tmp_path)
    f = torch.rand(1, 1, 32, 32)
    for bad in (0.0, 1.0, 1.2, -0.5, float("nan")):
        with pytest.raises(ValueError, match="density must be a number in \\(0, 1\\)"):
            gan_mask(f, bad, pair)
    with pytest.raises(ValueError, match="differs from the model's training density"):
        gan_mask(f, 0.2, pair)
    with pytest.raises(ValueError, match="no shipped mask GAN for density 0.3"):
        load_mask_gan(0.3)
    with pytest.raises(ValueError, match="mask must have shape"):
        inpaint_wgan(f, torch.ones(1, 1, 32, 31), gen)
    with pytest.raises(ValueError, match="mask must have shape"):
        inpaint_wgan(f, torch.ones(2, 1, 32, 32), gen)
    with pytest.raises(ValueError, match="no known pixel"):
        inpaint_wgan(f, torch.zeros(1, 1, 32, 32), gen)
    with pytest.raises(ValueError, match="0 \\(missing\\) or 1 \\(known\\)"):
        inpaint_wgan(f, torch.full((1, 1, 32, 32), 0.5), gen)
    with pytest.raises(ValueError, match="NaN"):
        inpaint_wgan(torch.full((1, 1, 32, 32), float("nan")), torch.ones(1, 1, 32, 32), gen)
    with pytest.raises(FileNotFoundError, match="not shipped"):
        load_wgan("no-such-model")
    with pytest.raises(FileNotFoundError, match="no model at"):
        load_mask_gan(str(tmp_path / "nowhere" / "x.json"))
    with pytest.raises(ValueError, match="holds an inpainting model"):
        load_mask_gan(tmp_path / "inp.json")
    with pytest.raises(TypeError, match="MaskGAN"):
        gan_mask(f, 0.1, gen)


def test_shipped_names_resolve_in_the_weights_folder(tmp_path, monkeypatch):
    from pdeflow import models
    monkeypatch.setitem(models.WEIGHTS_DIRS, "inpaint", tmp_path)      # a release that ships two GANs
    monkeypatch.setitem(models.SHIPPED, "maskgan-10", models.Shipped("inpaint", "maskgan", "maskgan", "", 0.1))
    monkeypatch.setitem(models.SHIPPED, "inpainting-wgan",
                        models.Shipped("inpaint", "inpainting", "inpainting-wgan", ""))
    torch.manual_seed(0)
    pair = MaskGAN(1, width=W, density=0.1)
    save_model(pair, tmp_path / "maskgan-10", config={"kind": "maskgan", "model": pair.config})
    gen = InpaintingGenerator(1, width=W)
    save_model(gen, tmp_path / "inpainting-wgan", config={"kind": "inpainting", "model": gen.config})
    assert models.shipped_models("inpaint") == ["inpainting-wgan", "maskgan-10"]
    f = torch.rand(1, 1, 32, 32)
    m = gan_mask(f, 0.1, generator=0)                         # the shipped model for 0.1, found by density
    assert torch.equal(m, gan_mask(f, 0.1, load_mask_gan("maskgan-10"), generator=0))
    assert torch.equal(inpaint_wgan(f, m, generator=0), inpaint_wgan(f, m, gen, generator=0))
    assert torch.equal(inpaint_wgan(f, m, load_wgan(0.1), generator=0), inpaint_wgan(f, m, pair, generator=0))
    with pytest.raises(ValueError, match="no shipped mask GAN for density 0.05"):
        gan_mask(f, 0.05)


def test_gan_defaults_name_no_model_that_does_not_ship():
    """No GAN ships: the loaders' defaults say so instead of naming a missing file."""
    from pdeflow import models
    assert not [n for n, s in models.SHIPPED.items() if s.group in ("maskgan", "inpainting-wgan")]
    with pytest.raises(ValueError, match="no inpainting WGAN is shipped"):
        load_wgan()
    with pytest.raises(ValueError, match="no shipped mask GAN for density 0.1"):
        load_mask_gan(0.1)


def test_mask_generator_random_start_gives_random_masks_of_the_density_and_learns_from_there():
    torch.manual_seed(0)
    net = MaskGenerator(1, width=W, prior_density=0.1)
    f = torch.rand(4, 1, 32, 32)
    r = torch.rand(4, 1, 32, 32)
    b = net(f, r)
    assert torch.equal(b, (r < 0.1).float())        # exactly the random mask [r < D] at initialisation
    assert abs(float(b.detach().mean()) - 0.1) < 0.02
    # the MAE-like signal reaches the whole network through the prior (after the zero last layer moves)
    loss = (b * f).mean()
    loss.backward()
    assert net.out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="density must be a number in \\(0, 1\\)"):
        MaskGenerator(1, width=W, prior_density=1.5)
    pair = MaskGAN(1, W, density=0.05, random_start=True)
    assert pair.mask_net.prior_density == 0.05 and pair.config["random_start"] is True


def test_exact_density_chooses_the_largest_preactivations_with_the_linear_gradient():
    z = torch.tensor([[[[0.3, -1.0, 2.0, -0.2], [5.0, -3.0, 0.1, -0.1]]]], requires_grad=True)
    b, _ = binarise(z, density=0.25)                      # 2 of 8 pixels: the two largest z
    assert b.flatten().tolist() == [0, 0, 1, 0, 1, 0, 0, 0]
    (g,) = torch.autograd.grad((b * torch.arange(8.0).view_as(z)).sum(), z)
    assert torch.allclose(g, 0.2 * torch.arange(8.0).view_as(z))
    torch.manual_seed(0)
    pair = MaskGAN(1, W, density=0.1, random_start=True, exact_density=True)
    r = torch.rand(3, 1, 32, 32)
    b = pair.mask_net(torch.rand(3, 1, 32, 32), r)
    assert b.flatten(1).sum(1).tolist() == [102.0, 102.0, 102.0]    # round(0.1 * 1024) per image
    assert torch.equal(b, (r <= r.flatten(1).kthvalue(102, dim=1).values.view(-1, 1, 1, 1)).float())
    assert pair.config["exact_density"] is True
    with pytest.raises(ValueError, match="density must be a number in \\(0, 1\\)"):
        binarise(z, density=0.0)
