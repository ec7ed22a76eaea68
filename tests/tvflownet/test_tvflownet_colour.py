"""Colour TVflowNET: ``channels=3`` through the trainer's data, model, validation and export, and ``flow()``."""
from __future__ import annotations

import pytest
import torch

from pdeflow.errors import UserInputError
from pdeflow.io import write_image
from pdeflow.tv import tv_flow
from pdeflow.tvflownet import flow, load
from pdeflow.tvflownet.train import TrainConfig, check_config, open_data, train, validation_set

TINY_UNET = {"scales": 2, "channels": [4, 8]}


@pytest.fixture(scope="module")
def colour_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("colour")
    g = torch.Generator().manual_seed(0)
    for k in range(4):
        write_image(folder / f"p{k}.png", torch.rand(3, 40, 40, generator=g))
    return folder


def test_a_colour_run_trains_validates_on_the_coupled_colour_flow_and_exports_a_colour_model(colour_photos, tmp_path):
    cfg = TrainConfig(data=str(colour_photos), channels=3, mode="unsupervised", crop="16", steps=2, batch_size=2,
                      arch="unet", arch_kwargs=TINY_UNET, val_crops=1, val_size=16, val_times=2, val_every=2,
                      ckpt_every=2, val_fraction=0.25)
    path = train(cfg, tmp_path / "run", quiet=True)
    model = load(str(path.parent))
    assert model.in_channels == 3 and model.meta["config"]["model"]["in_channels"] == 3
    # the validation reference is the coupled colour flow of colour crops (not three grey flows)
    val = validation_set(cfg, open_data(cfg)[1], tmp_path / "run")      # the run's cached set
    assert val["u0"].shape[1] == 3 and val["ref"].shape[2] == 3 and val["key"]["channels"] == 3
    coupled = tv_flow(val["u0"] * cfg.scale, val["times"], dt=cfg.val_dt, tol=cfg.val_tol,
                      max_iter=cfg.val_max_iter, scheme="euler")
    assert torch.allclose(val["ref"], coupled)
    u = flow(torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(1)), [0.1, 0.2], model)
    assert u.shape == (2, 3, 20, 20) and torch.isfinite(u).all()


def test_a_grey_run_reads_grey_crops_and_keeps_its_validation_key(colour_photos, tmp_path):
    """Runs started before colour existed resume on the same validation cache: a grey key names no channels."""
    cfg = TrainConfig(data=str(colour_photos), val_crops=1, val_size=16, val_times=2, val_fraction=0.25)
    val = validation_set(cfg, open_data(cfg)[1], tmp_path)
    assert val["u0"].shape[1] == 1 and "channels" not in val["key"]


@pytest.mark.parametrize("kwargs, field", [({"channels": 2}, "channels"),
                                            ({"channels": 3, "synthetic": 0.5}, "synthetic"),
                                            ({"channels": 3, "flowed": 0.5}, "flowed")])
def test_colour_settings_the_trainer_cannot_honour_are_refused_by_name(kwargs, field):
    with pytest.raises(UserInputError, match=field):
        check_config(TrainConfig(**kwargs))


def test_the_evaluation_runs_a_colour_model_on_colour_crops_against_the_coupled_colour_flow():
    from pdeflow.evaluate.tvflownet import colour_photo_names, evaluate, natural_images
    from pdeflow.tvflownet import SemiResNet

    model = SemiResNet(in_channels=3, width=4, depth=3)
    res = evaluate({"c": model}, sizes=(16,), n_images=2, tables=(2,), times=[0.0, 0.1], cache_dir=False)
    assert res["table2_4"]["channels"] == 3 and res["config"]["channels"] == 3
    assert res["models"]["c"]["paper_row"] is None                  # the paper's rows are grey models
    assert set(colour_photo_names()) and all(name in res["config"]["image_source"] for name in colour_photo_names())
    crops = natural_images(16, 4, channels=3)
    assert crops.shape == (4, 3, 16, 16) and not torch.equal(crops[:, 0], crops[:, 1])   # colour, not grey x 3
    with pytest.raises(UserInputError, match="tables"):
        evaluate({"c": model}, sizes=(16,), n_images=1, tables=(2, 5), times=[0.0, 0.1], cache_dir=False)
    with pytest.raises(UserInputError, match="grey and colour"):
        evaluate({"c": model, "g": SemiResNet(width=4, depth=3)}, sizes=(16,), n_images=1, tables=(2,),
                 times=[0.0, 0.1], cache_dir=False)


def test_pdeflow_flow_runs_a_colour_model_on_a_colour_image_and_refuses_a_grey_one(tmp_path, capsys):
    from pdeflow.cli import main
    from pdeflow.io import save_model
    from pdeflow.tvflownet import SemiResNet

    net = SemiResNet(in_channels=3, width=4, depth=3)
    save_model(net.state_dict(), tmp_path / "c" / "model", config={"model": net.config, "scale": 5.0, "t_max": 1.0},
               provenance={"trainer": "test"})
    model = str(tmp_path / "c" / "model.json")
    assert main(["flow", "builtin:skimage/coffee", "--size", "24", "--method", "net", "--model", model,
                 "--times", "0.1", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "net_t0.10.png").is_file()
    assert main(["flow", "builtin:skimage/camera", "--size", "24", "--method", "net", "--model", model,
                 "--times", "0.1", "--out", str(tmp_path / "g")]) == 2
    assert "is grey and the model takes 3 channel(s): pass --colour" in capsys.readouterr().err


@pytest.mark.parametrize("channelwise", [False, True])
def test_a_grey_unet_inflated_to_colour_computes_the_grey_flow_of_a_repeated_grey_image(channelwise, tmp_path):
    """The inflated weights, on a grey image in every channel: u the grey model's at the coupled flow's time
    t / sqrt(3) (per channel: t) in every channel, phi the grey phi / sqrt(3) (per channel: phi), to the
    round-off of the model file's float32 weights (and, coupled, of the input's eps, whose square the coupled norm
    adds once where the repeated grey norm adds it three times);
    through the trainer's init (recorded), and refused for an architecture without the rule."""
    from pdeflow.io import save_model
    from pdeflow.tvflownet import LGD, UNet
    from pdeflow.tvflownet.train import _init_from

    kw = dict(scales=3, skip=2, channels=(4, 6, 8), refine=3, channelwise=channelwise)
    grey = UNet(**kw)
    with torch.no_grad():       # the refinement block's last layer starts at zero: give it a part to play
        for p in grey.refine.parameters():
            p.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    save_model(grey.state_dict(), tmp_path / "g" / "model", config={"model": grey.config, "scale": 5.0,
               "t_max": 1.0}, provenance={"trainer": "test"})
    colour = UNet(in_channels=3, **kw)
    assert _init_from(colour, str(tmp_path / "g" / "model.json"))["inflated_from_channels"] == 1
    grey, colour = grey.double(), colour.double()
    s = 1.0 if channelwise else 3 ** 0.5
    x = 5 * torch.rand(2, 1, 13, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.05, 0.9], dtype=torch.float64)
    with torch.no_grad():
        u3, phi3 = colour(x.expand(2, 3, 13, 10), t)
        u1, phi1 = grey(x, t / s)
    assert torch.allclose(u3, u1.expand_as(u3), atol=1e-6, rtol=0)
    assert torch.allclose(phi3, (phi1 / s).expand_as(phi3), atol=1e-6, rtol=0)
    # a colour image gives three different channels (the channels are not tied by the inflation)
    with torch.no_grad():
        u, _ = colour(5 * torch.rand(1, 3, 13, 10, dtype=torch.float64), 0.3)
    assert not torch.allclose(u[:, 0], u[:, 1])
    with pytest.raises(UserInputError, match="cannot be inflated"):
        LGD(in_channels=3).inflated_state(LGD().state_dict(), 1)


def test_a_shared_unet_grown_from_a_grey_one_is_the_grey_model_per_channel_and_permutes_with_the_channels(tmp_path):
    """shared=True: the grey weights load unchanged (the coupling starts at zero) and give PerChannel's u in float64;
    with a coupling, permuting the channels permutes u and phi (as the coupled flow), and Tiled evaluates it."""
    from pdeflow.io import save_model
    from pdeflow.tvflownet import PerChannel, Tiled, UNet
    from pdeflow.tvflownet.train import _init_from

    kw = dict(scales=3, skip=2, channels=(4, 6, 8), refine=3)
    grey = UNet(**kw)
    save_model(grey.state_dict(), tmp_path / "g" / "model", config={"model": grey.config, "scale": 5.0,
               "t_max": 1.0}, provenance={"trainer": "test"})
    shared = UNet(in_channels=3, shared=True, **kw)
    assert _init_from(shared, str(tmp_path / "g" / "model.json"))["inflated_from_channels"] == 1
    grey, shared = grey.double(), shared.double()
    x = 5 * torch.rand(2, 3, 13, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.05, 0.9], dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(shared(x, t)[0], PerChannel(grey)(x, t)[0])
        for m in shared.mix:
            m.weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
        u, phi = shared(x, t)
        assert not torch.allclose(u, PerChannel(grey)(x, t)[0])
        perm = [2, 0, 1]
        up, pp = shared(x[:, perm], t)
        assert torch.allclose(up, u[:, perm], atol=1e-12) and torch.allclose(pp, phi[:, perm], atol=1e-12)
        big = 5 * torch.rand(1, 3, 70, 52, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        ut, pt = Tiled(shared, tile=24)(big, 0.4)
        ub, pb = shared(big, 0.4)
        assert torch.allclose(ut, ub, atol=1e-12) and torch.allclose(pt, pb, atol=1e-12)
    with pytest.raises(UserInputError, match="needs in_channels > 1"):
        UNet(shared=True)


def test_per_channel_runs_a_grey_model_as_the_channelwise_flow_and_counts_as_colour():
    from pdeflow.evaluate.tvflownet import model_channels
    from pdeflow.tvflownet import PerChannel, SemiResNet

    net = SemiResNet(width=4, depth=3).double()
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.2, 0.7], dtype=torch.float64)
    with torch.no_grad():
        u, phi = PerChannel(net)(x, t)
        for b in range(2):
            for c in range(3):
                ub, pb = net(x[b:b + 1, c:c + 1], t[b])
                assert torch.allclose(u[b, c], ub[0, 0], atol=1e-12) and torch.allclose(phi[b, c], pb[0, 0], atol=1e-12)
    assert model_channels({"c": PerChannel(net), "colour": SemiResNet(in_channels=3)}) == 3
    with pytest.raises(UserInputError, match="grey model"):
        PerChannel(SemiResNet(in_channels=3))
    assert flow(x[0].float(), [0.1], PerChannel(net.float())).shape == (1, 3, 9, 7)      # the wrappers of flow()
    with pytest.raises(UserInputError, match="wrap this one in pdeflow.tvflownet.PerChannel"):
        flow(x[0].float(), [0.1], net)
    with pytest.raises(UserInputError, match=r"u0 must have shape \(B, 3, H, W\)"):
        PerChannel(net)(x[:, :1], 0.1)


def test_pdeflow_evaluate_scores_grey_models_per_channel_beside_a_colour_model(tmp_path):
    import json

    from pdeflow.cli import main
    from pdeflow.io import save_model
    from pdeflow.tvflownet import SemiResNet

    paths = []
    for name, c in (("colour", 3), ("grey", 1)):
        net = SemiResNet(in_channels=c, width=4, depth=3)
        save_model(net.state_dict(), tmp_path / name / "model", config={"model": net.config, "scale": 5.0,
                   "t_max": 1.0}, provenance={"trainer": "test"})
        paths.append(str(tmp_path / name / "model.json"))
    args = ["evaluate", "tvflownet", *paths, "--tables", "2", "--sizes", "16", "--n-images", "1", "--n-times", "3",
            "--no-cache", "--threads", "1"]
    assert main(args + ["--out", str(tmp_path / "mixed")]) == 2          # grey beside colour: refused
    assert main(args + ["--per-channel", "--out", str(tmp_path / "o")]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["config"]["channels"] == 3 and sorted(res["models"]) == ["colour", "grey per channel"]
    assert res["models"]["grey per channel"]["paper_row"] is None
