"""The one model registry (:mod:`pdeflow.models`) and ``pdeflow models``."""
import json

import pytest
import torch

from pdeflow import models
from pdeflow.cli import main
from pdeflow.errors import UserInputError


@pytest.mark.parametrize("name", sorted(models.SHIPPED))
def test_every_documented_model_ships_in_its_pillars_folder(name):
    info = models.SHIPPED[name]
    assert name in models.shipped_models(info.pillar), f"{name} is documented in SHIPPED but does not ship"
    meta = json.loads((models.WEIGHTS_DIRS[info.pillar] / f"{name}.json").read_text())
    assert meta["config"].get("kind", "tvflownet") == info.kind
    if info.kind == "masknet":
        assert meta["config"]["model"]["density"] == pytest.approx(info.density)


def test_every_shipped_model_is_documented():
    assert sorted(models.shipped_models()) == sorted(models.SHIPPED)


def test_defaults_name_only_documented_models():
    """Every group a loader takes a default from names a documented model, or none (no GAN ships)."""
    from pdeflow.inpaint.learned.masknet import MASKNET_MODELS
    from pdeflow.inpaint.learned.residual import JOINT_MODELS, RESIDUAL_MODEL
    from pdeflow.tvflownet.api import DEFAULT_MODEL
    named = [DEFAULT_MODEL, RESIDUAL_MODEL, *MASKNET_MODELS.values(),
             *(f"{n}-{p}" for n in JOINT_MODELS.values() for p in ("mask", "inpainter", "inpainter-refined"))]
    assert set(named) <= set(models.SHIPPED)
    assert models.shipped_name("maskgan", 0.1) is None and models.shipped_name("inpainting-wgan") is None


def test_resolve_a_name_a_file_a_stem_and_a_run_directory(tmp_path):
    net = torch.nn.Linear(2, 1)
    run = tmp_path / "run"
    models.save_model(net, run / "model", config={"kind": "x", "model": {}}, provenance={"steps": 1})
    stem = run / "model"
    for spec in (run, stem, run / "model.json", run / "model.safetensors", str(run / "model.json")):
        assert models.resolve(spec, "inpaint") == stem
    assert models.resolve("masknet-10", "inpaint") == models.WEIGHTS_DIRS["inpaint"] / "masknet-10"
    with pytest.raises(FileNotFoundError, match="'nosuch' is not shipped .*masknet-10"):
        models.resolve("nosuch", "inpaint", hint="train one")
    with pytest.raises(FileNotFoundError, match="missing .*nothing.safetensors"):
        models.resolve(tmp_path / "nothing.json", "tvflownet")
    with pytest.raises(UserInputError, match="pillar"):
        models.resolve("default", "nopillar")
    # a report names a run's model by its run directory, any other pair by its stem
    assert {models.label(spec, "inpaint") for spec in (run, run / "model.json", str(stem))} == {"run"}
    models.save_model(net, tmp_path / "mine", config={"kind": "x", "model": {}})
    assert models.label(tmp_path / "mine.json", "inpaint") == "mine"
    assert models.label("masknet-10", "inpaint") == "masknet-10"


def test_read_and_load_check_the_kind_and_channels_naming_the_file(tmp_path):
    from pdeflow.inpaint.learned.masknet import MaskNet
    net = MaskNet(1, 0.1, widths=(4, 8))
    models.save_model(net, tmp_path / "m", config={"kind": "masknet", "model": net.config})
    back = models.load(tmp_path / "m", "inpaint", MaskNet, kinds=("masknet",))
    assert not back.training and back.meta["config"]["kind"] == "masknet"
    assert torch.equal(back.state_dict()["net.out.weight"], net.state_dict()["net.out.weight"])
    with pytest.raises(UserInputError, match=r"m\.json is not a residual model"):
        models.read(tmp_path / "m", "inpaint", kinds=("residual-inpainter",), what="a residual model")
    with pytest.raises(UserInputError, match=r"channels: .*m\.json was trained for 1"):
        models.read(tmp_path / "m", "inpaint", channels=3)
    (tmp_path / "m.safetensors").write_bytes(b"damaged")
    with pytest.raises(UserInputError, match=r"m\.safetensors"):
        models.load(tmp_path / "m", "inpaint", MaskNet)


def test_evaluating_restores_the_training_mode():
    net = torch.nn.Linear(1, 1)
    with models.evaluating(None, net):
        assert not net.training and not torch.is_grad_enabled()
    assert net.training


def test_describe_counts_parameters_from_the_weights():
    from pdeflow import tvflownet
    row = next(r for r in models.describe("tvflownet") if r["name"] == "semiresnet")
    assert row["parameters"] == sum(p.numel() for p in tvflownet.load("semiresnet").parameters())
    assert row["size"] == (models.WEIGHTS_DIRS["tvflownet"] / "semiresnet.safetensors").stat().st_size


def test_pdeflow_models_lists_every_shipped_model(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "pillar", "kind", "parameters", "size", "training", "purpose", "provenance"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(models.SHIPPED)
    # how each model was trained, from its JSON: every shipped TVflowNET says its mode, every inpainter its kind
    rows = {r["name"]: r for r in models.describe()}
    assert all(rows[n]["training"] in ("supervised", "unsupervised", "hybrid", "supervised, critic")
               or "+" in rows[n]["training"] for n in rows), {n: r["training"] for n, r in rows.items()}
    assert main(["models", "--pillar", "inpaint"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names and all(models.SHIPPED[n].pillar == "inpaint" for n in names)
