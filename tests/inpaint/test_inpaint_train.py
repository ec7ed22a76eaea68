"""Training the inpainting WGAN and the joint mask WGAN: tiny runs, resume, export, CLI (fast)."""
from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

import pdeflow.inpaint.training.wgan as T
from pdeflow.inpaint.learned.gan import gan_mask, inpaint_wgan, load_mask_gan, load_wgan
from pdeflow.inpaint.training.wgan import TrainConfig, train
from pdeflow.io import write_image
from pdeflow.training import RunConfigError, load_checkpoint

pytestmark = pytest.mark.usefixtures("torch_globals_restored")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six small synthetic 'photos' (smooth shapes plus texture) in a folder."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:56] / 48.0
    for k in range(6):
        img = 0.5 + 0.3 * np.sin(2 * np.pi * (k + 1) * x) * np.cos(2 * np.pi * y * (k % 3 + 1))
        img += 0.1 * rng.standard_normal(img.shape)
        write_image(folder / f"img{k}.png", torch.from_numpy(np.clip(img, 0, 1))[None].float())
    return folder


def tiny(photos, **kw) -> TrainConfig:
    base = dict(data=(str(photos),), width=0.05, crop=32, batch_size=2, steps=6, val_crops=2, val_every=3,
                ckpt_every=2, deterministic=True, val_fraction=0.34)
    base.update(kw)
    return TrainConfig(**base)


def _rows(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_time"} for r in csv.DictReader(f)]


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def wgan_run(photos, tmp_path_factory):
    run = tmp_path_factory.mktemp("wgan")
    train(tiny(photos), run, quiet=True, command="pdeflow train inpainting --test")
    return run


# ---------------------------------------------------------------- the two stages, export, load

def test_several_sources_train_together_and_the_builtin_test_photos_validate(photos):
    from pdeflow.inpaint.training.wgan import open_data
    train_images, val_images = open_data(tiny(photos, data=("builtin", str(photos))))
    names = train_images.description["images"]
    assert any(n.startswith("builtin:") for n in names) and any(n.startswith(photos.name + "/") for n in names)
    assert val_images.description["split"] == "test"


def test_wgan_stage_exports_a_model_that_loads_back(wgan_run):
    for name in ("config.json", "last.pt", "best.pt", "log.csv", "model.safetensors", "model.json"):
        assert (wgan_run / name).is_file(), name
    rows = _rows(wgan_run)
    assert [r["step"] for r in rows] == [str(s) for s in range(6)]
    assert [r["val_metric"] != "" for r in rows] == [False, False, True, False, False, True]
    assert all(0.02 <= float(r["density"]) <= 0.3 + 0.15 for r in rows)     # random masks of the configured range
    meta = json.loads((wgan_run / "model.json").read_text())
    assert meta["config"] == {"kind": "inpainting", "model": {"channels": 1, "width": 0.05, "noise_std": 0.1}}
    prov = meta["provenance"]
    best = load_checkpoint(wgan_run / "best.pt")
    assert prov["val_metric"] == best["best"]["metric"] and prov["steps"] == best["step"]
    assert prov["command"] == "pdeflow train inpainting --test"
    assert prov["data"]["train"]["source"] == "folder" and prov["data"]["validation"]["role"] == "validation"
    assert not set(prov["data"]["train"]["files"]) & set(prov["data"]["validation"]["files"])
    assert set(prov["val"]) >= {"val_mae_5", "val_mae_10", "val_mae_20"}
    gen = load_wgan(wgan_run)
    _same(gen.state_dict(), best["models"]["gen"])
    f = torch.rand(1, 1, 40, 40)
    m = (torch.rand(1, 1, 40, 40) < 0.1).float()
    u = inpaint_wgan(f, m, gen, generator=0)
    assert torch.equal(u[m.bool()], f[m.bool()])


def test_mask_stage_from_the_wgan_run(photos, wgan_run, tmp_path):
    cfg = tiny(photos, stage="mask", density=0.1, init=str(wgan_run), steps=4, val_every=2)
    meta_path = train(cfg, tmp_path / "mask", quiet=True)
    meta = json.loads(meta_path.read_text())
    assert meta["config"]["kind"] == "maskgan" and meta["config"]["model"]["density"] == 0.1
    assert meta["provenance"]["init"]["run_dir"] == str(wgan_run.resolve())
    rows = _rows(tmp_path / "mask")
    assert all(r["density_loss"] != "" and r["loss_mask"] != "" for r in rows)
    val = meta["provenance"]["val"]
    assert val["metric"] == pytest.approx(val["val_density_loss"] + val["val_mae"])      # eq. (4), beta = 1
    pair = load_mask_gan(meta_path)
    best = load_checkpoint(tmp_path / "mask" / "best.pt")
    _same(pair.mask_net.state_dict(), best["models"]["mask"])
    _same(pair.inpainter.state_dict(), best["models"]["gen"])
    m = gan_mask(torch.rand(1, 1, 32, 32), 0.1, pair, generator=0)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    # the generator and critic started from the wgan run's best checkpoint
    first = TrainConfig(**{**dataclasses.asdict(cfg), "steps": 1, "val_every": 1})
    train(first, tmp_path / "one", quiet=True)
    wbest = load_checkpoint(wgan_run / "best.pt")["models"]
    one = load_checkpoint(tmp_path / "one" / "last.pt")["models"]
    diff = max(float((one["gen"][k] - wbest["gen"][k]).abs().max()) for k in wbest["gen"])
    assert 0 < diff < 1e-3                       # one Adam step (lr 5e-5) away from the initialisation
    with pytest.raises(ValueError, match="init: .* was trained with width=0.05"):
        train(dataclasses.replace(cfg, width=0.1), tmp_path / "bad", quiet=True)


def test_exact_density_mask_stage_with_its_own_learning_rate(photos, wgan_run, tmp_path):
    cfg = tiny(photos, stage="mask", density=0.1, init=str(wgan_run), steps=2, val_every=2, exact_density=True,
               mask_lr=1e-3)
    meta = json.loads(train(cfg, tmp_path / "x", quiet=True).read_text())
    assert meta["config"]["model"]["exact_density"] is True
    rows = _rows(tmp_path / "x")
    assert all(float(r["density"]) == pytest.approx(round(0.1 * 32 * 32) / (32 * 32)) for r in rows)
    assert float(rows[-1]["density_loss"]) < 0.003            # only the rounding of D H W to whole pixels
    pair = load_mask_gan(tmp_path / "x" / "model.json")
    assert pair.mask_net.exact_density == 0.1
    m = gan_mask(torch.rand(2, 1, 32, 32), 0.1, pair, generator=0)
    assert m.flatten(1).sum(1).tolist() == [102.0, 102.0]
    # the mask network moved by lr 1e-3 steps, the generator by lr 5e-5 ones
    init = load_checkpoint(wgan_run / "best.pt")["models"]["gen"]
    one = load_checkpoint(tmp_path / "x" / "last.pt")["models"]
    assert max(float((one["gen"][k] - init[k]).abs().max()) for k in init) < 2.5e-4
    with pytest.raises(ValueError, match="TrainConfig.mask_lr"):
        train(dataclasses.replace(cfg, mask_lr=0.0), tmp_path / "bad", quiet=True)


def test_a_diverged_run_stops_with_a_clear_error_and_keeps_its_checkpoints(photos, tmp_path, monkeypatch):
    real, calls = T.generator_loss, []

    def nan_at_step_3(*args, **kw):
        calls.append(1)
        total, mae, d_fake = real(*args, **kw)
        return (total * float("nan") if len(calls) == 4 else total), mae, d_fake
    monkeypatch.setattr(T, "generator_loss", nan_at_step_3)
    with pytest.raises(FloatingPointError, match="training diverged at step 3 .*resume with a smaller"):
        train(tiny(photos, steps=6), tmp_path / "nan", quiet=True)
    assert load_checkpoint(tmp_path / "nan" / "last.pt")["step"] <= 3


@pytest.mark.slow   # a training run, killed and resumed; tests/training keeps resuming in make test
def test_a_killed_run_resumes_bit_identically(photos, wgan_run, tmp_path, monkeypatch):
    for stage, extra in (("wgan", {}), ("mask", {"init": str(wgan_run)})):
        cfg = tiny(photos, stage=stage, steps=5, **extra)
        train(cfg, tmp_path / stage / "full", quiet=True, command="x")
        real, calls = T.sample_batch, []

        def killed_at_3(cfg_, images, g):
            calls.append(1)
            if len(calls) == 4:                  # the top of step 3: last.pt holds 2 steps
                raise KeyboardInterrupt
            return real(cfg_, images, g)

        monkeypatch.setattr(T, "sample_batch", killed_at_3)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / stage / "resumed", quiet=True, command="x")
        monkeypatch.setattr(T, "sample_batch", real)
        assert load_checkpoint(tmp_path / stage / "resumed" / "last.pt")["step"] == 2
        train(cfg, tmp_path / stage / "resumed", quiet=True, command="x")

        a = load_checkpoint(tmp_path / stage / "full" / "last.pt")
        b = load_checkpoint(tmp_path / stage / "resumed" / "last.pt")
        for name in a["models"]:
            _same(a["models"][name], b["models"][name])
            _same(a["optimizers"][name]["state"][0], b["optimizers"][name]["state"][0])
        assert a["best"] == b["best"]
        assert _rows(tmp_path / stage / "full") == _rows(tmp_path / stage / "resumed")
        assert ((tmp_path / stage / "full" / "model.safetensors").read_bytes()
                == (tmp_path / stage / "resumed" / "model.safetensors").read_bytes())
    with pytest.raises(RunConfigError, match="lr"):
        train(dataclasses.replace(cfg, lr=1e-3), tmp_path / "mask" / "resumed", quiet=True)


@pytest.mark.slow   # 40 training steps to see learning; make test trains both stages a few steps (wgan_run and after)
def test_losses_fall_on_a_small_problem(photos, tmp_path):
    """A few dozen steps at a higher learning rate: the inpainting MAE must drop, in training and validation."""
    cfg = tiny(photos, steps=40, lr=2e-3, width=0.1, batch_size=4, val_every=20, deterministic=False)
    train(cfg, tmp_path, quiet=True)
    rows = _rows(tmp_path)
    mae = [float(r["mae"]) for r in rows]
    assert np.mean(mae[-10:]) < 0.85 * np.mean(mae[:5])
    # the untrained network (same seed) on the same validation set does worse than the exported best one
    torch.manual_seed(cfg.seed)
    untrained = T.InpaintingGenerator(1, cfg.width, cfg.noise_std)
    val = T.validation_set(cfg, T.open_data(cfg)[1])
    before = T.validate(cfg, untrained, None, val, torch.device("cpu"))["metric"]
    after = json.loads((tmp_path / "model.json").read_text())["provenance"]["val_metric"]
    assert after < 0.85 * before


def test_warmup_trains_the_generator_on_the_mae_alone(photos, tmp_path):
    base = tiny(photos, steps=3, val_every=10)
    train(dataclasses.replace(base, warmup=3), tmp_path / "warm", quiet=True)
    train(dataclasses.replace(base, alpha=0.0), tmp_path / "mae", quiet=True)
    train(base, tmp_path / "gan", quiet=True)
    a, b, c = (load_checkpoint(tmp_path / n / "last.pt")["models"] for n in ("warm", "mae", "gan"))
    _same(a["gen"], b["gen"])
    torch.manual_seed(base.seed)                    # the trainer's construction order: generator, then critic
    T.InpaintingGenerator(1, base.width, base.noise_std)
    _same(a["critic"], T.Critic(1, base.crop, base.width).state_dict())     # idle during the warm-up
    assert any(not torch.equal(a["critic"][k], b["critic"][k]) for k in a["critic"])
    assert any(not torch.equal(a["gen"][k], c["gen"][k]) for k in a["gen"])     # alpha > 0 does change it


def test_config_errors(photos, tmp_path):
    with pytest.raises(ValueError, match="TrainConfig.density"):
        train(tiny(photos, stage="mask", density=1.0), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.density"):
        train(tiny(photos, stage="mask", density=0.0), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.crop"):
        train(tiny(photos, crop=48), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.warmup"):
        train(tiny(photos, warmup=-1), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.stage"):
        train(tiny(photos, stage="joint"), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.init"):
        train(tiny(photos, init=str(tmp_path)), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="not a training run directory"):
        train(tiny(photos, stage="mask", init=str(tmp_path)), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="neither 'builtin' nor a directory"):
        train(tiny(photos, data=(str(tmp_path / "nowhere"),)), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.data: expected a non-empty tuple"):
        train(tiny(photos, data=str(photos)), tmp_path / "a", quiet=True)


# ---------------------------------------------------------------- CLI

def test_cli_parses_and_rejects_bad_arguments(photos, wgan_run, tmp_path, capsys):
    from pdeflow.cli import build_parser, main
    args = build_parser().parse_args(["train", "inpainting", "--stage", "mask", "--density", "0.05", "--init",
                                      str(wgan_run), "--width", "0.25", "--crop", "64", "--run-dir", "r"])
    from pdeflow.cli.inpaint_train import config_from_args
    cfg = config_from_args(args)
    assert (cfg.stage, cfg.density, cfg.width, cfg.crop, cfg.init) == ("mask", 0.05, 0.25, 64, str(wgan_run.resolve()))
    for argv, msg in ((["--density", "1.5"], "argument --density: expected a number in (0, 1)"),
                      (["--density", "0"], "argument --density: expected a number in (0, 1)"),
                      (["--crop", "48"], "argument --crop: expected a multiple of 32"),
                      (["--init", str(wgan_run)], "argument --init: only for --stage mask"),
                      (["--stage", "mask", "--init", str(tmp_path)], "not a training run directory"),
                      (["--data", str(tmp_path / "none")], "argument --data")):
        assert main(["train", "inpainting", "--run-dir", str(tmp_path / "r"), *argv]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    rc = main(["train", "inpainting", "--run-dir", str(tmp_path / "cli"), "--data", str(photos), "--width", "0.05",
               "--crop", "32", "--batch-size", "2", "--steps", "2", "--val-crops", "2", "--val-every", "2",
               "--quiet"])
    assert rc == 0 and "best validation MAE" in capsys.readouterr().out
    assert (tmp_path / "cli" / "model.json").is_file()


@pytest.mark.slow   # an evaluation run of exported models
def test_evaluate_cli_on_exported_models(tmp_path, capsys):
    from pdeflow.cli import main
    from pdeflow.inpaint.learned.maskgan import MaskGAN
    from pdeflow.inpaint.learned.wgan import InpaintingGenerator
    from pdeflow.io import save_model
    torch.manual_seed(0)
    pair, gen = MaskGAN(1, 0.05, density=0.2), InpaintingGenerator(1, 0.05)
    save_model(pair, tmp_path / "mg", config={"kind": "maskgan", "model": pair.config})
    save_model(gen, tmp_path / "inp", config={"kind": "inpainting", "model": gen.config})
    out = tmp_path / "eval"
    argv = ["evaluate", "inpainting", "--densities", "0.2", "0.3", "--n-images", "1", "--size", "16",
            "--methods", "random-diffusion", "random-wgan", "ps", "maskgan", "--inpainting-model",
            str(tmp_path / "inp.json"), "--out", str(out)]
    assert main([*argv, "--mask-models", str(tmp_path / "mg.json"), str(tmp_path / "mg.json")]) == 0
    stdout = capsys.readouterr().out
    assert "note: mask GAN at 0.3 skipped" in stdout and "trained for density 0.2" in stdout
    res = json.loads((out / "results.json").read_text())
    assert set(res["summary"]) == {"random-diffusion", "random-wgan", "ps", "maskgan"}
    assert set(res["summary"]["maskgan"]) == {"0.2"} and set(res["summary"]["ps"]) == {"0.2", "0.3"}
    for m in ("random-diffusion", "ps"):
        assert res["summary"][m]["0.2"]["density"]["mean"] == pytest.approx(round(0.2 * 256) / 256)
    assert "| 0.2 |" in (out / "report.md").read_text() and (out / "inpainting.png").stat().st_size > 0
    # the report is not overwritten, bad arguments exit with status 2 and one line
    assert main([*argv, "--mask-models", str(tmp_path / "mg.json"), str(tmp_path / "mg.json")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["evaluate", "inpainting", "--densities", "1.2", "--out", str(tmp_path / "x")]) == 2
    assert "expected a number in (0, 1)" in capsys.readouterr().err
    assert main(["evaluate", "inpainting", "--mask-models", "a", "--out", str(tmp_path / "x")]) == 2
    assert "one model per density" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_evaluation_figure_shows_the_most_textured_crop():
    from pdeflow.evaluate.inpaint import evaluate, figure, test_images
    res = evaluate((0.2,), n_images=3, size=16, methods=("random-diffusion",))
    crops, _ = test_images(3, 16)
    k = res["settings"]["figure_image"]
    assert k == int(crops.flatten(1).std(1).argmax()) and k != 0     # not simply the first crop
    mask, u = res["_examples"][("random-diffusion", 0.2)]
    assert torch.allclose(res["_shown"], crops[k])
    # the example is crop k's own inpainting: it keeps crop k's known pixels
    assert torch.allclose(u[mask.bool().expand_as(u)], crops[k][mask.bool().expand_as(u)], atol=1e-6)
    figure(res)


def test_cli_options_are_generated_from_the_config():
    """Parsed defaults of `pdeflow train inpainting` give back TrainConfig(): each option is declared once."""
    import dataclasses

    from pdeflow.cli import build_parser
    from pdeflow.cli.inpaint_train import config_from_args
    args = build_parser().parse_args(["train", "inpainting", "--run-dir", "r"])
    assert config_from_args(args) == TrainConfig()
    opts = {f.name for f in dataclasses.fields(TrainConfig) if "cli" in f.metadata}
    assert len(opts) >= 25 and opts <= set(vars(args))
    args = build_parser().parse_args(["train", "inpainting", "--run-dir", "r", "--no-random-start",
                                      "--val-densities", "0.1", "0.3", "--mask-lr", "1e-3"])
    cfg = config_from_args(args)
    assert (cfg.random_start, cfg.val_densities, cfg.mask_lr) == (False, (0.1, 0.3), 1e-3)
