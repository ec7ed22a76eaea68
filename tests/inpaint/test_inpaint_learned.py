"""Blue-noise dithering, analytic masks (Belhachmi et al.), the mask network and its trainer (fast)."""
from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from _dense_diffuse import dense_diffuse
from _training_logs import log_rows
from pdeflow.inpaint import inpaint_diffusion, random_mask
from pdeflow.inpaint.learned.masknet import MaskNet, learned_mask, load_masknet
from pdeflow.inpaint.masks.analytic import analytic_mask
from pdeflow.inpaint.masks.dither import blue_noise_tile, dither, threshold_map
from pdeflow.inpaint.masks.snapping import neighbour_mass, snap_to_extrema
from pdeflow.inpaint.training.masknet import MaskNetConfig, open_photos, train_masknet
from pdeflow.io import save_model


@pytest.fixture(autouse=True)
def _tile_cache(tmp_path, monkeypatch):
    """Tiles are computed afresh into a temporary cache: no test depends on a pre-existing cache file."""
    monkeypatch.setenv("PDEFLOW_CACHE_DIR", str(tmp_path / "cache"))


def _smooth_images(B, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 1, H // 4 + 1, W // 4 + 1, generator=g, dtype=torch.float64)
    return torch.nn.functional.interpolate(x, size=(H, W), mode="bicubic", align_corners=True).clamp(0, 1)


# --------------------------------------------------------------------------- tiles and dithering

@pytest.mark.parametrize("size", [(16, 16), (8, 12), (32, 32)])
def test_tile_is_a_permutation_of_ranks(size):
    D = importlib.import_module("pdeflow.inpaint.masks.dither")
    D._ranks.cache_clear()
    r = blue_noise_tile(size, ranks=True)
    assert r.shape == size and r.dtype == torch.int64
    assert torch.equal(r.flatten().sort().values, torch.arange(size[0] * size[1]))
    t = blue_noise_tile(size)
    assert float(t.min()) > 0 and float(t.max()) < 1


def _low_frequency_share(m: np.ndarray) -> float:
    """Share of the (mean-free) power spectrum below radial frequency 0.1, per unit area of that disc."""
    F = np.abs(np.fft.fft2(m - m.mean())) ** 2
    fy = np.fft.fftfreq(m.shape[0])[:, None]
    fx = np.fft.fftfreq(m.shape[1])[None]
    rr = np.sqrt(fy ** 2 + fx ** 2)
    return F[(rr > 0) & (rr < 0.1)].mean() / F[rr > 0].mean()


def test_tile_is_blue_noise():
    """Every level set of the tile has far less low-frequency energy than white noise of the same density."""
    t = blue_noise_tile(32).numpy()
    rng = np.random.default_rng(0)
    for level in (0.05, 0.1, 0.3, 0.5):
        blue = _low_frequency_share((t < level).astype(float))
        white = np.mean([_low_frequency_share((rng.random(t.shape) < level).astype(float)) for _ in range(20)])
        assert blue < 0.3 * white, (level, blue, white)


def test_tile_cache_file_round_trip(tmp_path):
    D = importlib.import_module("pdeflow.inpaint.masks.dither")
    D._ranks.cache_clear()
    a = blue_noise_tile(12, ranks=True)
    files = list((tmp_path / "cache").glob("bluenoise-*12x12*.npy"))
    assert len(files) == 1
    D._ranks.cache_clear()
    assert torch.equal(blue_noise_tile(12, ranks=True), a)          # read back from the file
    files[0].write_bytes(b"garbage")                                 # a broken cache file is recomputed
    D._ranks.cache_clear()
    assert torch.equal(blue_noise_tile(12, ranks=True), a)


@pytest.mark.parametrize("B,H,W", [(1, 16, 16), (3, 20, 28), (2, 64, 48)])
@pytest.mark.parametrize("density", [0.01, 0.05, 0.1, 0.2, 0.5])
def test_dither_gives_exactly_k_points(B, H, W, density):
    p = torch.rand(B, 1, H, W, generator=torch.Generator().manual_seed(1), dtype=torch.float64) ** 3
    p[0, 0, :4] = 0                                                   # zeros allowed
    k = round(density * H * W)
    if k < 1:
        with pytest.raises(ValueError, match="density"):
            dither(p, density)
        return
    for random in (False, True):
        m = dither(p, density, tile=blue_noise_tile(16), random=random, generator=3)
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        assert m.flatten(1).sum(1).tolist() == [k] * B


def test_dither_follows_the_density():
    """Left half 4x the density of the right half: about 4/5 of the points land on the left."""
    p = torch.ones(1, 1, 64, 64, dtype=torch.float64)
    p[..., :32] = 4.0
    m = dither(p, 0.1)
    left = float(m[..., :32].sum()) / float(m.sum())
    assert abs(left - 0.8) < 0.03


def test_threshold_map_random_is_seeded_and_varies():
    t = blue_noise_tile(16)
    a = threshold_map((4, 1, 20, 20), tile=t, random=True, generator=5)
    b = threshold_map((4, 1, 20, 20), tile=t, random=True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1]) or not torch.equal(a[1], a[2])
    # every 16x16 window of a shifted/flipped tile is still a permutation of the tile's values
    assert torch.equal(a[2, 0, :16, :16].flatten().sort().values, t.flatten().sort().values)
    with pytest.raises(TypeError, match="generator"):
        threshold_map((1, 1, 8, 8), tile=t, random=True, generator="x")


# --------------------------------------------------------------------------- analytic masks

@pytest.mark.parametrize("snap", [False, True])
@pytest.mark.parametrize("density", [0.03, 0.1, 0.25])
def test_analytic_mask_exact_count(snap, density):
    f = _smooth_images(3, 40, 36)
    m = analytic_mask(f, density, snap=snap)
    assert m.shape == (3, 1, 40, 36) and m.dtype == f.dtype
    assert m.flatten(1).sum(1).tolist() == [round(density * 40 * 36)] * 3
    assert analytic_mask(f[0, 0], density, snap=snap).shape == (40, 36)
    assert analytic_mask(f[0], density, snap=snap).shape == (1, 40, 36)


@pytest.mark.parametrize("density", [0.0, 1.0, -0.1, 1.5, float("nan"), 1e-5, True, "0.1"])
def test_analytic_mask_bad_density(density):
    with pytest.raises(ValueError, match="density"):
        analytic_mask(_smooth_images(1, 16, 16), density)


def test_analytic_mask_beats_random_on_a_smooth_image():
    """Belhachmi et al.'s density puts points where the Laplacian is large: lower error than random masks."""
    f = _smooth_images(4, 48, 48, seed=3)
    ma = analytic_mask(f, 0.05, snap=False)
    mr = random_mask((4, 1, 48, 48), 0.05, generator=0, dtype=f.dtype)
    ea = (inpaint_diffusion(f, ma, tol=1e-8) - f).abs().mean()
    er = (inpaint_diffusion(f, mr, tol=1e-8) - f).abs().mean()
    assert ea < er


def test_snap_moves_to_free_extrema_without_collisions():
    # a 5x5 image, score peaks at (2, 2); two points next to the peak: one takes it, the other its own best free pixel
    score = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    score[0, 0, 2, 2] = 10.0
    score[0, 0, 1, 1] = 5.0
    m = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    m[0, 0, 2, 1] = 1
    m[0, 0, 2, 3] = 1
    out = snap_to_extrema(m, score)
    assert int(out.sum()) == 2
    assert out[0, 0, 2, 2] == 1 and out[0, 0, 1, 1] == 1
    # a full block of points stays full (no pixel to move to), the count is kept
    m = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    m[0, 0, 1:4, 1:4] = 1
    out = snap_to_extrema(m, torch.rand(1, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    assert int(out.sum()) == 9



@pytest.mark.parametrize("shape, density", [((64, 64), 0.05), ((64, 64), 0.2), ((31, 17), 0.5), ((8, 8), 0.9)])
def test_snap_of_one_image_equals_the_batched_snap(shape, density):
    """One CPU image snaps in NumPy (the mask functions' call); the same claims as the tensor version,
    which a batch of two runs (continuous scores: no ties), with and without a separate priority."""
    g = torch.Generator().manual_seed(shape[0] + int(100 * density))
    for priority in (False, True):
        m = (torch.rand(1, 1, *shape, generator=g) < density).to(torch.float64)
        s = torch.randn(1, 1, *shape, generator=g, dtype=torch.float64)
        pr = torch.randn(1, 1, *shape, generator=g, dtype=torch.float64) if priority else None
        one = snap_to_extrema(m, s, pr)
        two = snap_to_extrema(m.repeat(2, 1, 1, 1), s.repeat(2, 1, 1, 1), None if pr is None else pr.repeat(2, 1, 1, 1))
        assert one.dtype == m.dtype and torch.equal(one, two[:1]) and torch.equal(one, two[1:])
        assert int(one.sum()) == int(m.sum())


def test_neighbour_mass_keeps_the_mass():
    p = torch.rand(2, 1, 9, 7, dtype=torch.float64)
    s = torch.randn(2, 1, 9, 7, dtype=torch.float64)
    q = neighbour_mass(p, s)
    assert torch.allclose(q.sum((1, 2, 3)), p.sum((1, 2, 3)))
    assert torch.allclose(neighbour_mass(p, s / 1e-9), neighbour_mass(p, s / 1e-9).clamp_min(0))


# --------------------------------------------------------------------------- the mask network

def test_untrained_masknet_is_the_analytic_mask():
    f = _smooth_images(2, 32, 32).float()
    net = MaskNet(1, 0.1).eval()
    with torch.no_grad():
        m = net(f, 0.1)
    a = analytic_mask(f.double(), 0.1, snap=True, tile=blue_noise_tile(64))
    assert torch.equal(m.double(), a)


@pytest.mark.parametrize("density", [0.05, 0.1, 0.2])
def test_masknet_forward_exact_k_and_gradient(density):
    f = _smooth_images(3, 24, 24).float()
    net = MaskNet(1, None)
    b = net(f, density, random=True, generator=0)
    assert set(b.detach().unique().tolist()) <= {0.0, 1.0}
    assert b.detach().flatten(1).sum(1).tolist() == [round(density * 576)] * 3
    loss = (dense_diffuse(f.double(), b.double()) - f.double()).abs().mean()
    loss.backward()
    assert float(net.net.out.weight.grad.abs().sum()) > 0           # the adjoint reaches the network


def test_feedback_network_starts_as_its_first_pass_and_then_follows_the_error():
    f = _smooth_images(2, 32, 32).float()
    net = MaskNet(1, 0.2, widths=(4, 8))
    torch.nn.init.normal_(net.net.out.weight, std=0.3)              # a "trained" first pass
    net.eval()
    fb = net.with_feedback().eval()
    assert fb.feedback and fb.with_feedback() is fb and fb.config["feedback"]
    with torch.no_grad():
        assert torch.equal(fb(f, 0.2), net(f, 0.2))                   # zero weights on the error: the same mask
        first = net(f, 0.2)
        fb.gamma.fill_(0.5)                                           # density raised where the first mask erred
        second = fb(f, 0.2)
    assert second.flatten(1).sum(1).tolist() == [round(0.2 * 1024)] * 2
    moved = second != first
    assert 0 < int(moved.sum()) < int(first.sum())                  # the same thresholds: most points stay
    e = (dense_diffuse(f.double(), first.double()) - f.double()).square()
    added, removed = moved & (second > 0.5), moved & (first > 0.5)
    assert float(e[added].mean()) > float(e[removed].mean())         # points move towards the error


def test_feedback_network_gradient_reaches_gamma_and_the_error_channel():
    f = _smooth_images(2, 24, 24).float()
    fb = MaskNet(1, 0.2, widths=(4, 8)).with_feedback()
    torch.nn.init.normal_(fb.net.out.weight, std=0.1)
    b = fb(f, 0.2, random=True, generator=0)
    (dense_diffuse(f.double(), b.double()) - f.double()).square().mean().backward()
    assert float(fb.gamma.grad.abs()) > 0
    assert float(fb.net.down[0][0].weight.grad[:, -1].abs().sum()) > 0
    with pytest.raises(ValueError, match="scale"):
        fb.maps(f, 0.2, scale=2)


def test_masknet_refuses_other_density():
    net = MaskNet(1, 0.05)
    with pytest.raises(ValueError, match="density"):
        net(_smooth_images(1, 16, 16).float(), 0.1)


# --------------------------------------------------------------------------- trainer, export, loading

@pytest.fixture(scope="module")
def photos(smooth_photos):
    return smooth_photos(5)


def _tiny(photos, **kw):
    base = dict(data=(str(photos),), crop=16, batch_size=2, steps=3, val_crops=2, val_every=2, ckpt_every=1,
                widths=(4, 8), tile=16, deterministic=True, val_fraction=0.2)
    base.update(kw)
    return MaskNetConfig(**base)


def test_open_photos_holds_out_validation(photos):
    tr, va = open_photos(_tiny(photos))
    assert len(tr) + len(va) == 5 and len(va) == 1
    assert not set(tr.description["images"]) & set(va.description["images"])


def test_train_resumes_and_exports(photos, tmp_path, dense, monkeypatch):
    import pdeflow.inpaint.training.masknet as TM
    cfg = _tiny(photos)
    full = train_masknet(cfg, tmp_path / "a", quiet=True, command="test")
    # the same run killed in its third step and resumed: same log, same weights
    calls, loss = [0], TM.inpainting_loss

    def dying(*a, **k):
        calls[0] += 1
        if calls[0] == 4:                       # step 0, step 1, validation, step 2
            raise KeyboardInterrupt
        return loss(*a, **k)

    monkeypatch.setattr(TM, "inpainting_loss", dying)
    with pytest.raises(KeyboardInterrupt):
        train_masknet(cfg, tmp_path / "b", quiet=True)
    monkeypatch.setattr(TM, "inpainting_loss", loss)
    train_masknet(cfg, tmp_path / "b", quiet=True)
    assert log_rows(tmp_path / "a") == log_rows(tmp_path / "b")
    wa = load_masknet(tmp_path / "a").state_dict()
    wb = load_masknet(tmp_path / "b").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    meta = json.loads(full.read_text())
    assert meta["config"]["kind"] == "masknet" and meta["config"]["model"]["density"] == 0.05
    assert meta["provenance"]["command"] == "test" and meta["provenance"]["cpu_time_s"] > 0
    assert "analytic_snap" in meta["provenance"]["val_baselines"]["05"]
    net = load_masknet(full, density=0.05, channels=1)
    m = learned_mask(_smooth_images(2, 16, 16).float(), 0.05, model=full)
    assert m.flatten(1).sum(1).tolist() == [round(0.05 * 256)] * 2
    assert net.config["widths"] == [4, 8]


def test_train_from_a_trained_network_starts_from_its_weights_and_maps(photos, tmp_path):
    first = train_masknet(_tiny(photos, sigma=2.5), tmp_path / "a", quiet=True)
    # one step at a negligible learning rate: the weights are the start's
    again = train_masknet(_tiny(photos, init=str(first), steps=1, lr=1e-30, val_every=1), tmp_path / "b",
                          quiet=True)
    a, b = load_masknet(first), load_masknet(again)
    assert b.config["sigma"] == 2.5                                  # the start's analytic maps are kept
    assert all(torch.allclose(a.state_dict()[k], b.state_dict()[k], atol=1e-20) for k in a.state_dict())
    assert json.loads(again.read_text())["provenance"]["init"]["model"] == str(first)
    with pytest.raises(ValueError, match="init.*widths"):
        train_masknet(_tiny(photos, init=str(first), widths=(4,)), tmp_path / "c", quiet=True)


def test_train_feedback_from_a_trained_network_gives_its_masks_at_first(photos, tmp_path):
    first = train_masknet(_tiny(photos), tmp_path / "a", quiet=True)
    again = train_masknet(_tiny(photos, init=str(first), feedback=True, steps=1, lr=1e-30, val_every=1),
                          tmp_path / "b", quiet=True)
    a, b = load_masknet(first), load_masknet(again)
    assert b.feedback and not a.feedback and abs(float(b.gamma.detach())) < 1e-20
    f = _smooth_images(2, 16, 16).float()
    assert torch.equal(learned_mask(f, 0.05, model=again), learned_mask(f, 0.05, model=first))


def test_mse_weight_adds_the_batch_mse():
    from pdeflow.inpaint.training.masknet import inpainting_loss
    f = _smooth_images(3, 16, 16, seed=2)
    b = (torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    base, terms = inpainting_loss(f, b, 0.3, 1e-10)
    with_mse, _ = inpainting_loss(f, b, 0.3, 1e-10, mse_weight=50.0)
    assert torch.allclose(with_mse - base, 50.0 * ((terms["u"] - f.double()) ** 2).mean(), rtol=1e-10)
    assert float(with_mse - base) > 0


def test_export_load_round_trip_and_refusals(tmp_path):
    net = MaskNet(1, 0.1, widths=(4, 8))
    torch.nn.init.normal_(net.net.out.weight)
    save_model(net, tmp_path / "m", config={"kind": "masknet", "model": net.config})
    back = load_masknet(tmp_path / "m.json")
    for (k, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    f = _smooth_images(1, 16, 16).float()
    with torch.no_grad():
        assert torch.equal(net.eval()(f, 0.1), learned_mask(f, 0.1, model=tmp_path / "m"))
    with pytest.raises(ValueError, match="density"):
        learned_mask(f, 0.05, model=tmp_path / "m")
    with pytest.raises(ValueError, match="channels"):
        learned_mask(f.expand(1, 3, 16, 16).contiguous(), 0.1, model=tmp_path / "m")
    (tmp_path / "m.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="m.safetensors"):
        load_masknet(tmp_path / "m")


def test_learned_mask_without_a_shipped_model_says_so(tmp_path, monkeypatch):
    from pdeflow import models
    monkeypatch.setitem(models.WEIGHTS_DIRS, "inpaint", tmp_path)       # a package without shipped models
    with pytest.raises(FileNotFoundError, match="not shipped"):
        learned_mask(_smooth_images(1, 16, 16).float(), 0.05)
    with pytest.raises(ValueError, match="density"):
        learned_mask(_smooth_images(1, 16, 16).float(), 0.07)
    with pytest.raises(ValueError, match="density"):
        learned_mask(_smooth_images(1, 16, 16).float(), 1.2)


def test_masknet_gradient_through_diffuse_matches_dense_solver():
    """The network's gradient through pdeflow's inpaint_diffusion (adjoint) equals the one through a dense solve."""
    f = _smooth_images(2, 16, 16, seed=4)
    net = MaskNet(1, 0.1, widths=(4, 8)).double()
    torch.nn.init.normal_(net.net.out.weight, std=0.1)
    grads = []
    for solve in (lambda a, b: inpaint_diffusion(a, b, tol=1e-12), dense_diffuse):
        net.zero_grad()
        b = net(f, 0.1, random=True, generator=7)
        ((solve(f, b) - f) ** 2).mean().backward()     # smooth: |u - f| has a kink where u = f
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert float(grads[1].norm()) > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-10 * float(grads[1].abs().max()))
