"""The residual inpainter (diffusion + a learned correction), its trainer and the joint fine-tune."""
from __future__ import annotations

import json

import pytest
import torch

from _dense_diffuse import dense_diffuse
from _training_logs import log_rows
from pdeflow import datasets as pdata
from pdeflow.evaluate.inpaint import test_images as eval_test_images
from pdeflow.inpaint import inpaint_learned
from pdeflow.inpaint.learned.losses import charbonnier
from pdeflow.inpaint.learned.masknet import MaskNet, load_masknet
from pdeflow.inpaint.learned.residual import ResidualInpainter, load_residual
from pdeflow.inpaint.masks.analytic import analytic_mask
from pdeflow.inpaint.operators.diffusion import inpaint_diffusion
from pdeflow.inpaint.training.residual import (
    ResidualConfig,
    check_config,
    evaluation_boxes,
    train_residual,
    validation_crops,
)
from pdeflow.io import save_model as export_model
from pdeflow.metrics import ssim


@pytest.fixture(autouse=True)
def _tile_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PDEFLOW_CACHE_DIR", str(tmp_path / "cache"))


def _images(B, H, W, seed=0, C=1):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, H, dtype=torch.float64), torch.linspace(0, 1, W, dtype=torch.float64),
                          indexing="ij")
    out = []
    for _ in range(B):
        a, b, c = (torch.rand(3, generator=g, dtype=torch.float64) * 4 + 1).tolist()
        img = 0.5 + 0.25 * torch.sin(a * x + b * y) * torch.cos(c * y) + 0.05 * torch.rand(H, W, generator=g,
                                                                                          dtype=torch.float64)
        out.append(img.expand(C, H, W))
    return torch.stack(out)


def _random_out_layer(model, seed=0):
    torch.manual_seed(seed)
    torch.nn.init.normal_(model.net.out.weight, std=0.1)
    torch.nn.init.normal_(model.net.out.bias, std=0.1)
    return model


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("C,normalize", [(1, False), (3, False), (1, True), (3, True)])
def test_untrained_model_is_diffusion_exactly(C, normalize):
    f = _images(2, 24, 20, C=C)
    b = analytic_mask(f, 0.1)
    model = ResidualInpainter(C, widths=(4, 8), normalize=normalize)
    u = model(f, b)
    assert torch.equal(u, inpaint_diffusion(f, b, tol=model.tol))
    path_free = inpaint_learned(f, b, model=model)
    assert torch.equal(path_free, inpaint_diffusion(f, b))


def test_known_pixels_stay_exact_and_the_correction_acts_elsewhere():
    f = _images(2, 24, 24, seed=1)
    b = analytic_mask(f, 0.1)
    model = _random_out_layer(ResidualInpainter(1, widths=(4, 8)))
    u = inpaint_learned(f, b, model=model)
    known = b.expand_as(f) > 0
    assert torch.equal(u[known], f[known])
    assert (u - inpaint_diffusion(f, b))[~known].abs().max() > 1e-3
    # only the mask's values of f are used
    g = torch.where(known, f, torch.rand_like(f))
    assert torch.allclose(inpaint_learned(g, b, model=model), u, atol=1e-12)


def test_tiled_inpainting_equals_untiled():
    """inpaint_learned's network on tiles (as on large photos) gives the untiled result to round-off, calibrated or
    not, in float64 end to end; bad tile sizes are refused naming the argument."""
    f = _images(1, 70, 90, seed=2)
    b = analytic_mask(f, 0.1)
    model = _random_out_layer(ResidualInpainter(1, widths=(4, 8, 16))).double()
    for calibrate in (True, False):
        whole = inpaint_learned(f, b, model=model, calibrate=calibrate, tile_size=None)
        tiled = inpaint_learned(f, b, model=model, calibrate=calibrate, tile_size=32)
        assert float((tiled - whole).abs().max()) < 1e-12
        if not calibrate:                   # (a random correction, which the calibration rightly weighs by ~0)
            assert float((whole - inpaint_diffusion(f, b)).abs().max()) > 1e-3
    for bad in (8, 32.0, True, "32"):
        with pytest.raises(ValueError, match="inpaint_learned: tile_size"):
            inpaint_learned(f, b, model=model, tile_size=bad)


def test_normalised_model_is_equivariant_to_affine_intensity_changes():
    """normalize=True: u(a f + c) = a u(f) + c for a > 0, as for diffusion inpainting (float64, exact solves);
    the unnormalised model is not (its correction does not scale with the contrast)."""
    f = _images(2, 20, 20, seed=3)
    b = analytic_mask(f, 0.15)
    for normalize in (True, False):
        model = _random_out_layer(ResidualInpainter(1, widths=(4, 8), tol=1e-12, normalize=normalize)).double()
        with torch.no_grad():
            u = model(f, b)
            for a, c in ((0.2, 0.3), (3.0, -1.0)):
                err = (model(a * f + c, b) - (a * u + c)).abs().max() / a
                assert (err < 1e-9) == normalize, (normalize, a, c, float(err))


def test_normalised_model_on_a_flat_image_is_diffusion():
    """A constant image: diffusion returns it and the correction vanishes (std floored, not divided by 0)."""
    f = torch.full((1, 1, 16, 16), 0.4, dtype=torch.float64)
    b = analytic_mask(_images(1, 16, 16), 0.1)
    model = _random_out_layer(ResidualInpainter(1, widths=(4, 8), normalize=True)).double()
    with torch.no_grad():
        u = model(f, b)
    assert torch.isfinite(u).all()
    # R's output is scaled by the floored std (1/255 / REF_STD): at most a fraction of a grey level
    assert (u - f).abs().max() < 2 / 255


class _Oracle(ResidualInpainter):
    """An R that knows the image: correction = ``scale`` times the true error of diffusion (+ optional bias)."""

    def __init__(self, truth, scale, bias=0.0):
        super().__init__(1, widths=(4,))
        self.truth, self.scale, self.bias = truth, scale, bias

    def residual(self, u_diff, b, f, *, tile_size=None):
        return self.scale * (self.truth - u_diff) + self.bias


def test_calibration_recovers_the_weight_of_a_scaled_correction():
    """Cross-validation on the known pixels: a correction that is s times the true error gets
    alpha = 1 / s (so the result is exact); a useless constant offset gets alpha = 0 (diffusion)."""
    f = _images(3, 32, 32, seed=7)
    b = analytic_mask(f, 0.15)
    ud = inpaint_diffusion(f, b)
    for s in (1.0, 2.0, 4.0):
        model = _Oracle(f, s)
        alpha = model.calibration(f, b, generator=0)
        assert torch.allclose(alpha, torch.full_like(alpha, 1 / s), atol=1e-6), (s, alpha)
        u = inpaint_learned(f, b, model=model)                     # calibrated by default
        assert (u - f).abs().max() < 1e-5
        uncal = inpaint_learned(f, b, model=model, calibrate=False)
        assert s == 1.0 or (uncal - f).abs().max() > 0.01          # overshoots without calibration
    model = _Oracle(f, 0.0, bias=0.2)          # a constant offset: alpha = mean error on the held pixels / 0.2
    alpha = model.calibration(f, b, generator=0)
    assert bool((alpha < 0.1).all()), alpha
    assert (inpaint_learned(f, b, model=model, calibrate=True) - ud).abs().max() < 0.02
    assert (inpaint_learned(f, b, model=model, calibrate=False) - ud).abs().max() > 0.19
    # the untrained model's correction is zero: alpha 1 by convention, and the result is diffusion
    plain = ResidualInpainter(1, widths=(4, 8))
    assert torch.equal(plain.calibration(f, b), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(inpaint_learned(f, b, model=plain, calibrate=True), inpaint_diffusion(f, b), atol=1e-12)


class _Signed(ResidualInpainter):
    """An R that knows the image: the true error of diffusion times ``sign`` (+1 helps, -1 hurts)."""

    def __init__(self, truth, sign):
        super().__init__(1, widths=(4,))
        self.truth, self.sign = truth, sign

    def residual(self, u_diff, b, f, *, tile_size=None):
        return self.sign * (self.truth - u_diff)


def test_weighted_calibration_speaks_for_the_unknown_pixels():
    """A mask dense on the left (50 %) and sparse on the right (3 %), a correction that is exact on the left and
    the error's opposite on the right: the unknown pixels, mostly on the right, want weight 0 (least squares < 0).
    The held-out known pixels, mostly on the left, say otherwise unweighted; weighted by (1 - pi) / pi, as the
    unknown pixels they stand for, they agree with the unknown pixels on every draw."""
    H, W = 48, 96
    f = _images(1, H, W, seed=3)
    dens = torch.full((1, 1, H, W), 0.03, dtype=torch.float64)
    dens[..., :W // 2] = 0.5
    b = (torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64) < dens).double()
    sign = torch.ones_like(b)
    sign[..., W // 2:] = -1
    model = _Signed(f, sign)
    e = (f - inpaint_diffusion(f, b)) * (1 - b)
    assert float((sign * e * e).sum() / (e * e).sum()) < -0.5          # what the unknown pixels want
    weighted = [float(model.calibration(f, b, generator=s)) for s in range(8)]
    plain = [float(model.calibration(f, b, generator=s, weighted=False)) for s in range(8)]
    assert max(weighted) == 0.0
    assert sum(plain) / len(plain) > 0.4
    # and the image: the weighted calibration inpaints the unknown pixels better
    def err(u):
        return float((((u - f) * (1 - b)) ** 2).sum())

    assert err(inpaint_learned(f, b, model=model, generator=1)) < err(inpaint_diffusion(f, b)) + 1e-12
    u_plain = inpaint_diffusion(f, b) + plain[1] * (1 - b) * model.residual(inpaint_diffusion(f, b), b, f)
    assert err(inpaint_learned(f, b, model=model, generator=1)) < 0.5 * err(u_plain)


def test_calibration_is_reproducible_and_checks_its_arguments():
    f = _images(2, 24, 24, seed=2)
    b = analytic_mask(f, 0.1)
    model = _random_out_layer(ResidualInpainter(1, widths=(4, 8)))
    u1 = inpaint_learned(f, b, model=model, calibrate=True)
    assert torch.equal(u1, inpaint_learned(f, b, model=model, calibrate=True))       # default seed 0
    known = b.expand_as(f) > 0
    assert torch.equal(u1[known], f[known])
    with pytest.raises(ValueError, match="holdout"):
        inpaint_learned(f, b, model=model, calibrate=True, holdout=1.0)
    with pytest.raises(ValueError, match="calibrate"):
        inpaint_learned(f, b, model=model, calibrate="yes")


def test_joint_gradient_reaches_the_mask_network_through_R_and_diffusion():
    """d loss / d mask-network weights through R and inpaint_diffusion's adjoint equals the one through a dense
    solve."""
    f = _images(2, 12, 12, seed=4)
    net = MaskNet(1, 0.2, widths=(4, 8), tile=16).double()
    torch.manual_seed(1)
    torch.nn.init.normal_(net.net.out.weight, std=0.1)
    R = _random_out_layer(ResidualInpainter(1, widths=(4, 8), tol=1e-12)).double()
    thr = torch.rand(2, 1, 12, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.9 + 0.05

    def grads(solver):
        net.zero_grad()
        R.zero_grad()
        b = net(f, 0.2, thresholds=thr)
        u = R(f, b, u_diff=solver(f, b))
        loss = charbonnier(u, f) + 0.5 * (1 - ssim(u, f).mean())     # smooth: |.| has a kink at the known pixels
        loss.backward()
        return [p.grad.clone() for p in list(net.parameters()) + list(R.parameters())]

    ga = grads(lambda x, m: inpaint_diffusion(x, m, tol=1e-12))
    gb = grads(dense_diffuse)
    num = sum(float((a - b).norm() ** 2) for a, b in zip(ga, gb)) ** 0.5
    den = sum(float(b.norm() ** 2) for b in gb) ** 0.5
    assert den > 0 and num / den < 1e-6


# --------------------------------------------------------------------------- API, loading, bad input


def test_export_load_round_trip_and_refusals(tmp_path):
    model = _random_out_layer(ResidualInpainter(1, widths=(4, 8)))
    export_model(model, tmp_path / "m", config={"kind": "residual-inpainter", "model": model.config})
    back = load_residual(tmp_path / "m.json")
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    f = _images(1, 16, 16).float()
    b = analytic_mask(f, 0.1)
    assert torch.equal(inpaint_learned(f, b, model=model), inpaint_learned(f, b, model=tmp_path / "m"))
    with pytest.raises(ValueError, match="channels"):
        inpaint_learned(f.expand(1, 3, 16, 16).contiguous(), b, model=tmp_path / "m")
    with pytest.raises(ValueError, match="model"):
        inpaint_learned(f.expand(1, 3, 16, 16).contiguous(), b, model=model)
    (tmp_path / "m.safetensors").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="m.safetensors"):
        inpaint_learned(f, b, model=tmp_path / "m")
    # a model of another kind
    net = MaskNet(1, 0.1, widths=(4, 8))
    export_model(net, tmp_path / "mask", config={"kind": "masknet", "model": net.config})
    with pytest.raises(ValueError, match="residual-inpainter"):
        load_residual(tmp_path / "mask")


def test_load_joint_pairs_and_refusals(tmp_path, monkeypatch):
    from pdeflow import models
    from pdeflow.inpaint.learned.residual import load_joint
    net = MaskNet(1, 0.1, widths=(4, 8), tile=16)
    r = _random_out_layer(ResidualInpainter(1, widths=(4, 8), normalize=True))
    # a run directory of stage joint: mask.json + model.json
    export_model(net, tmp_path / "run" / "mask", config={"kind": "masknet", "model": net.config})
    export_model(r, tmp_path / "run" / "model", config={"kind": "residual-inpainter", "model": r.config})
    m, back = load_joint(tmp_path / "run", density=0.1)
    assert m.density == 0.1 and back.normalize and torch.equal(back.net.out.weight, r.net.out.weight)
    # shipped files STEM-mask / STEM-inpainter
    monkeypatch.setitem(models.WEIGHTS_DIRS, "inpaint", tmp_path)
    with pytest.raises(FileNotFoundError, match="density: no jointly trained pair is shipped for 0.1"):
        load_joint(None, density=0.1)
    export_model(net, tmp_path / "joint-10-mask", config={"kind": "masknet", "model": net.config})
    export_model(r, tmp_path / "joint-10-inpainter", config={"kind": "residual-inpainter", "model": r.config})
    m, back = load_joint(None, density=0.1)
    assert m.density == 0.1 and back.normalize
    with pytest.raises(ValueError, match="density: .* trained for density 0.1"):
        load_joint(tmp_path / "run", density=0.2)
    with pytest.raises(ValueError, match="channels"):
        load_joint(tmp_path / "run", density=0.1, channels=3)
    with pytest.raises(FileNotFoundError, match="nowhere-mask.json"):
        load_joint(tmp_path / "nowhere", density=0.1)
    # the pair's inpainter for refined masks: None until shipped, then that file's weights
    from pdeflow.inpaint.learned.residual import load_joint_refined
    assert load_joint_refined(0.1) is None and load_joint_refined(0.3) is None
    r2 = _random_out_layer(ResidualInpainter(1, widths=(4, 8), normalize=True), seed=1)
    export_model(r2, tmp_path / "joint-10-inpainter-refined", config={"kind": "residual-inpainter", "model": r2.config})
    assert torch.equal(load_joint_refined(0.1).net.out.weight, r2.net.out.weight)


def test_learned_inpaint_without_a_shipped_model_says_so(tmp_path, monkeypatch):
    from pdeflow import models
    monkeypatch.setitem(models.WEIGHTS_DIRS, "inpaint", tmp_path)       # a package without shipped models
    f = _images(1, 16, 16).float()
    with pytest.raises(FileNotFoundError, match="no residual inpainter is shipped"):
        inpaint_learned(f, analytic_mask(f, 0.1))


def test_learned_inpaint_bad_inputs():
    model = ResidualInpainter(1, widths=(4, 8))
    f = _images(1, 16, 16).float()
    b = analytic_mask(f, 0.1)
    with pytest.raises(ValueError, match="no known pixel"):
        inpaint_learned(f, torch.zeros_like(b), model=model)
    with pytest.raises(ValueError, match="binary"):
        inpaint_learned(f, 0.5 * b, model=model)
    with pytest.raises(ValueError, match="mask"):
        inpaint_learned(f, b[..., :8], model=model)
    # a NumPy image is taken as torch.as_tensor makes it (the API contract, tests/package/test_api_contract.py)
    assert torch.equal(inpaint_learned(f.numpy(), b, model=model), inpaint_learned(f, b, model=model))
    with pytest.raises(ValueError, match="NaN"):
        inpaint_learned(torch.full_like(f, float("nan")), b, model=model)
    with pytest.raises(TypeError, match="model"):
        inpaint_learned(f, b, model=3)
    # shapes: 2-D and 3-D in, same shape out
    assert inpaint_learned(f[0, 0], b[0, 0], model=model).shape == (16, 16)
    assert inpaint_learned(f[0], b[0], model=model).shape == (1, 16, 16)


# --------------------------------------------------------------------------- trainer


@pytest.fixture(scope="module")
def photos(smooth_photos):
    return smooth_photos(4)


def _tiny(photos, **kw):
    base = dict(data=(str(photos),), val_data=str(photos), crop=16, batch_size=2, steps=3, val_crops=2, val_every=2,
                ckpt_every=1, widths=(4, 8), deterministic=True, densities=(0.1, 0.2))
    base.update(kw)
    return ResidualConfig(**base)


def test_train_resumes_and_exports(photos, tmp_path, dense, monkeypatch):
    import pdeflow.inpaint.training.residual as TR
    cfg = _tiny(photos)
    full = train_residual(cfg, tmp_path / "a", quiet=True, command="test")
    calls, loss = [0], TR.reconstruction_loss

    def dying(*a, **k):                           # killed inside the third step
        calls[0] += 1
        if calls[0] == 1 + 4 + 4 + 1:             # val_start (2 densities x 2), step 0, 1 (2 each), val (4), step 2
            raise KeyboardInterrupt
        return loss(*a, **k)

    monkeypatch.setattr(TR, "reconstruction_loss", dying)
    calls[0] = -4                                 # the validation at the start calls it 4 times
    with pytest.raises(KeyboardInterrupt):
        train_residual(cfg, tmp_path / "b", quiet=True)
    monkeypatch.setattr(TR, "reconstruction_loss", loss)
    assert (tmp_path / "b" / "last.pt").is_file()
    train_residual(cfg, tmp_path / "b", quiet=True)
    assert log_rows(tmp_path / "a") == log_rows(tmp_path / "b")
    wa, wb = load_residual(tmp_path / "a").state_dict(), load_residual(tmp_path / "b").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    meta = json.loads(full.read_text())
    assert meta["config"]["kind"] == "residual-inpainter"
    prov = meta["provenance"]
    assert prov["command"] == "test" and prov["cpu_time_s"] > 0 and "cpu_hours" in prov
    assert {"val_mae255_10", "val_diff_ssim_20"} <= set(prov["val"])
    # at the start R = 0: the model's numbers are diffusion's
    start = prov["val_start"]
    assert start["val_mae255_10"] == start["val_diff_mae255_10"]


def test_train_with_the_critic_term(photos, tmp_path, dense):
    cfg = _tiny(photos, crop=32, alpha=0.005, critic_width=0.0625, steps=2, density_range=(0.05, 0.25))
    train_residual(cfg, tmp_path / "c", quiet=True)
    rows = log_rows(tmp_path / "c")
    assert "loss_critic" in rows[0] and "d_fake" in rows[0]


def test_random_masks_train_and_validate_on_uniformly_random_pixels(photos, tmp_path, dense, monkeypatch):
    import pdeflow.inpaint.training.residual as TR
    seen, masks = [], TR._masks

    def spy(*a, **k):
        b = masks(*a, **k)
        seen.append(b)
        return b

    monkeypatch.setattr(TR, "_masks", spy)
    meta = json.loads(train_residual(_tiny(photos, masks="random", steps=2), tmp_path / "r", quiet=True).read_text())
    assert meta["provenance"]["masks"].startswith("random")
    # every mask has exactly round(d H W) known pixels (16 x 16 crops at 0.1 or 0.2), no two crops alike
    assert all(int(b[i].sum()) in (26, 51) for b in seen for i in range(b.shape[0]))
    assert any(not torch.equal(b[0], b[1]) for b in seen)
    with pytest.raises(ValueError, match="masks"):
        check_config(ResidualConfig(masks="ps"))
    with pytest.raises(ValueError, match="masks"):
        check_config(ResidualConfig(masks="random", mask_models=("m",)))


def test_joint_stage_trains_the_mask_network_and_exports_it(photos, tmp_path, dense):
    net = MaskNet(1, 0.1, widths=(4, 8), tile=16)
    export_model(net, tmp_path / "masknet" / "model", config={"kind": "masknet", "model": net.config})
    r = ResidualInpainter(1, widths=(4, 8))
    export_model(r, tmp_path / "res" / "model", config={"kind": "residual-inpainter", "model": r.config})
    cfg = _tiny(photos, stage="joint", init=str(tmp_path / "res"), mask_models=(str(tmp_path / "masknet"),),
                steps=2, mask_lr=1e-2, lr=1e-2)
    train_residual(cfg, tmp_path / "j", quiet=True)
    mask = load_masknet(tmp_path / "j" / "mask", density=0.1)
    changed = any(not torch.equal(a, b) for a, b in zip(mask.state_dict().values(), net.state_dict().values()))
    assert changed
    assert load_residual(tmp_path / "j").config["widths"] == [4, 8]


def test_blur_augmentation_replaces_the_drawn_fraction_by_8_bit_blurred_copies():
    from pdeflow.filters import gaussian_blur
    from pdeflow.inpaint.training.residual import blur_some
    f = torch.round(_images(64, 16, 16, seed=5).float() * 255) / 255
    g = torch.Generator().manual_seed(0)
    assert blur_some(f, 0.0, g) is f
    out = blur_some(f, 0.25, torch.Generator().manual_seed(1))
    assert torch.equal(out, blur_some(f, 0.25, torch.Generator().manual_seed(1)))     # reproducible
    changed = (out != f).flatten(1).any(1)
    assert 8 <= int(changed.sum()) <= 24                                               # about a quarter of 64
    assert torch.equal(out[~changed], f[~changed])
    assert torch.equal(torch.round(out * 255) / 255, out)                               # 8-bit values
    i = int(changed.nonzero()[0])
    # a blur of some sigma in [0.5, 2.5] (to 8 bits): smoother than the crop, closer to one sigma's blur
    tv = lambda x: (x[..., 1:, :] - x[..., :-1, :]).abs().sum() + (x[..., 1:] - x[..., :-1]).abs().sum()  # noqa: E731
    assert tv(out[i]) < tv(f[i])
    best = min((out[i:i + 1] - gaussian_blur(f[i:i + 1], s)).abs().max() for s in torch.linspace(0.5, 2.5, 201))
    assert best <= 0.5 / 255 + 1e-3
    with pytest.raises(ValueError, match="aug_blur"):
        check_config(ResidualConfig(aug_blur=1.5))


def test_bad_configs():
    with pytest.raises(ValueError, match="stage"):
        check_config(ResidualConfig(stage="gan"))
    with pytest.raises(ValueError, match="mask_models"):
        check_config(ResidualConfig(stage="joint"))
    with pytest.raises(ValueError, match="density_range"):
        check_config(ResidualConfig(density_range=(0.3, 0.1)))
    with pytest.raises(ValueError, match="crop"):
        check_config(ResidualConfig(alpha=0.005, crop=48))


def test_validation_avoids_the_evaluation_crops():
    boxes = evaluation_boxes(64, 8)
    pool = pdata.builtin_pool("test", grey=True, kind="photo")
    crops, names = eval_test_images(8, 64)
    for (name, t, l), c, n in zip(boxes, crops, names):
        assert name == n and torch.equal(pool[name][:, t:t + 64, l:l + 64], c)
    cfg = ResidualConfig(val_crops=24, avoid_eval=((64, 32),))
    fval, desc = validation_crops(cfg)
    assert fval.shape == (24, 1, 64, 64)
    avoid = evaluation_boxes(64, 32)
    for name, t, l in desc["crops"]:
        assert not any(n == name and abs(t - at) < 64 and abs(l - al) < 64 for n, at, al in avoid)


def test_residual_stage_on_a_mask_networks_masks_leaves_it_alone(photos, tmp_path, dense):
    net = MaskNet(1, 0.1, widths=(4, 8), tile=16)
    torch.nn.init.normal_(net.net.out.weight, std=0.1)
    export_model(net, tmp_path / "masknet" / "model", config={"kind": "masknet", "model": net.config})
    cfg = _tiny(photos, mask_models=(str(tmp_path / "masknet"),), steps=2, lr=1e-2)
    meta = json.loads(train_residual(cfg, tmp_path / "r", quiet=True).read_text())
    assert set(k for k in meta["provenance"]["val"] if k.startswith("val_mae255")) == {"val_mae255_10"}
    assert not (tmp_path / "r" / "mask.json").exists()
    assert meta["provenance"]["masks"][0]["density"] == 0.1


@pytest.mark.slow   # refinement sweeps per training mask
def test_refined_training_masks_are_the_refined_rows_masks(photos, tmp_path, dense):
    from pdeflow.inpaint.learned.masknet import learned_mask
    from pdeflow.inpaint.masks.refine import refine_setting
    from pdeflow.inpaint.training.residual import _masks
    net = MaskNet(1, 0.1, widths=(4, 8), tile=16)
    torch.nn.init.normal_(net.net.out.weight, std=0.1)
    f = _images(3, 32, 32, seed=2).float()
    # validation's masks (fixed tile, shifts from seed 0) are exactly what the evaluation's refined rows inpaint
    b = _masks(f, 0.1, net, random=False, refine=True)
    row = learned_mask(f, 0.1, model=net, refine={**refine_setting(0.1), "generator": 0}).double()
    assert torch.equal(b, row) and (b.flatten(1).sum(1) == round(0.1 * 32 * 32)).all()
    assert not torch.equal(b, _masks(f, 0.1, net, random=False))               # the refinement moved pixels
    # training masks: shifted tiles and refinement shifts from the step's generator, reproducibly
    drawn = [_masks(f, 0.1, net, random=True, g=torch.Generator().manual_seed(7), refine=True) for _ in range(2)]
    assert torch.equal(*drawn) and not torch.equal(drawn[0], b)
    export_model(net, tmp_path / "masknet" / "model", config={"kind": "masknet", "model": net.config})
    cfg = _tiny(photos, mask_models=(str(tmp_path / "masknet"),), steps=2, refine=True)
    meta = json.loads(train_residual(cfg, tmp_path / "r", quiet=True).read_text())
    assert meta["provenance"]["train_config"]["refine"] is True
    for bad in (dict(refine=True), dict(refine=True, stage="joint", mask_models=("m",))):
        with pytest.raises(ValueError, match="refine"):
            check_config(ResidualConfig(**bad))


def test_the_shipped_refined_row_uses_the_pairs_inpainter_for_refined_masks():
    from pdeflow.evaluate.inpaint import _load_models
    from pdeflow.inpaint.learned.residual import load_joint_refined
    notes = []
    loaded = _load_models(["joint", "joint-refine"], [0.05, 0.2], None, None, notes)
    assert not notes and set(loaded["joint"]) == {0.05, 0.2}
    for d in (0.05, 0.2):
        shipped = load_joint_refined(d)
        assert (d in loaded.get("joint_refined", {})) == (shipped is not None)
        if shipped is not None:   # a different model from the pair's inpainter, named after the pair
            assert shipped.meta["provenance"]["shipped"]["selection"]
            assert not torch.equal(shipped.net.out.weight, loaded["joint"][d][1].net.out.weight)
    assert load_joint_refined(0.2) is not None        # shipped at 20 %
