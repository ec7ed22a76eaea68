"""Combining trained TVflowNETs: their weights (`pdeflow.tvflownet.average`, `pdeflow train tvflownet-average`) and
their outputs (`pdeflow.tvflownet.ensemble`, `pdeflow train tvflownet-ensemble`)."""
import json
import sys

import pytest
import torch

from pdeflow import tvflownet
from pdeflow.cli import main
from pdeflow.errors import UserInputError
from pdeflow.evaluate import tvflownet as E
from pdeflow.io import save_model
from pdeflow.tvflownet import build_model

TINY = {"width": 4, "depth": 2}


def _saved(path, seed, provenance=None, **kwargs):
    torch.manual_seed(seed)
    net = build_model("semiresnet", **{**TINY, **kwargs})
    config = {"model": net.config, "scale": 5.0, "t_max": 1.0}
    save_model(net, path, config=config, provenance=provenance or {"steps": seed})
    return net.state_dict()


def test_average_is_the_normalised_weighted_mean_and_records_its_sources(tmp_path):
    a = _saved(tmp_path / "a", 0)
    b = _saved(tmp_path / "b", 1)
    first = tvflownet.average([tmp_path / "a.json", tmp_path / "b.json"], [1, 0])
    for k, v in first.state_dict().items():
        assert torch.equal(v, a[k])                                     # weight 0: the first model exactly
    soup = tvflownet.average([tmp_path / "a.json", tmp_path / "b.json"], [1, 3])
    for k, v in soup.state_dict().items():
        torch.testing.assert_close(v, 0.25 * a[k] + 0.75 * b[k])
    assert not soup.training and not any(p.requires_grad for p in soup.parameters())
    sources = soup.meta["provenance"]["averaged"]
    assert [s["weight"] for s in sources] == [0.25, 0.75]
    assert [s["provenance"]["steps"] for s in sources] == [0, 1] and all(len(s["sha256"]) == 64 for s in sources)
    equal = tvflownet.average([tmp_path / "a.json", tmp_path / "b.json"])
    for k, v in equal.state_dict().items():
        torch.testing.assert_close(v, 0.5 * (a[k] + b[k]))


def test_average_refuses_other_configs_and_bad_weights(tmp_path):
    _saved(tmp_path / "a", 0)
    _saved(tmp_path / "wide", 1, width=8)
    with pytest.raises(UserInputError, match="models: .*differs from .* in width"):
        tvflownet.average([tmp_path / "a.json", tmp_path / "wide.json"])
    with pytest.raises(UserInputError, match="models: give two or more"):
        tvflownet.average([tmp_path / "a.json"])
    with pytest.raises(UserInputError, match="weights: one per model"):
        tvflownet.average([tmp_path / "a.json", tmp_path / "a.json"], [1.0])
    with pytest.raises(UserInputError, match="weights: finite numbers >= 0"):
        tvflownet.average([tmp_path / "a.json", tmp_path / "a.json"], [0.0, 0.0])


def test_a_model_saved_before_an_option_existed_averages_with_one_that_records_its_default(tmp_path):
    """A JSON without a constructor option (written before it existed) means that option's default."""
    torch.manual_seed(0)
    kw = dict(channels=(4, 6, 8), scales=3, skip=2)
    old, new = build_model("unet", **kw), build_model("unet", **kw)
    old_config = {k: v for k, v in old.config.items() if k != "refine"}
    save_model(old, tmp_path / "old", config={"model": old_config, "scale": 5.0, "t_max": 1.0}, provenance={})
    save_model(new, tmp_path / "new", config={"model": new.config, "scale": 5.0, "t_max": 1.0}, provenance={})
    soup = tvflownet.average([tmp_path / "old.json", tmp_path / "new.json"])
    assert soup.meta["config"]["model"]["refine"] == 0
    for k, v in soup.state_dict().items():
        torch.testing.assert_close(v, 0.5 * (old.state_dict()[k] + new.state_dict()[k]))
    refined = build_model("unet", **kw, refine=3)
    save_model(refined, tmp_path / "refined", config={"model": refined.config, "scale": 5.0, "t_max": 1.0},
               provenance={})
    with pytest.raises(UserInputError, match="differs from .* in refine"):
        tvflownet.average([tmp_path / "old.json", tmp_path / "refined.json"])


def test_cli_writes_a_loadable_average_and_never_overwrites(tmp_path, capsys, monkeypatch):
    a = _saved(tmp_path / "a", 0, provenance={"data": {"train": {"sources": [str(tmp_path / "photos")]}},
                                             "train_config": {"crop": "mixed"}})
    b = _saved(tmp_path / "b", 1, provenance={"train_config": {"crop": "mixed"}})
    out = tmp_path / "soup" / "model"
    argv = ["train", "tvflownet-average", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
            "--weights", "0.3", "0.7", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["pdeflow", *argv])               # what the provenance records
    assert main(argv) == 0
    soup = tvflownet.load(out.with_suffix(".json"))
    for k, v in soup.state_dict().items():
        torch.testing.assert_close(v, (0.3 * a[k].double() + 0.7 * b[k].double()).float())
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["provenance"]["command"].startswith("pdeflow train tvflownet-average")
    # the evaluation sees through the average: its sources' training photos and crop size
    assert set(E._training_sources(soup)) == {(tmp_path / "photos").resolve()}
    assert E.paper_key("soup", soup) == ("semiresnet", "mixed")
    before = out.with_suffix(".safetensors").read_bytes()
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err
    assert out.with_suffix(".safetensors").read_bytes() == before
    # bad input: a clear message naming the argument, and no file written
    assert main(argv[:-2] + ["--out", str(tmp_path / "x" / "m"), "--weights", "1"]) == 2
    assert main(["train", "tvflownet-average", str(tmp_path / "a.json"), str(tmp_path / "none.json"),
                 "--out", str(tmp_path / "x" / "m")]) == 2
    err = capsys.readouterr().err
    assert "argument --weights: one weight per MODEL (2), got 1" in err and "argument MODEL: cannot load" in err
    assert not (tmp_path / "x").exists()


def _saved_lgd(path, seed, **config):
    torch.manual_seed(seed)
    net = build_model("lgd", n_steps=2, dim_z=2, hidden=4, edge_width=0)
    save_model(net, path, config={"model": net.config, "scale": 5.0, "t_max": 1.0, **config},
               provenance={"steps": seed, "train_config": {"crop": "32"}})
    return net


def test_ensemble_is_the_weighted_mean_of_its_members_outputs_of_any_architectures(tmp_path):
    _saved(tmp_path / "a", 0)
    lgd = _saved_lgd(tmp_path / "b", 1)
    semi = tvflownet.load(tmp_path / "a.json")
    u0, t = 5 * torch.rand(3, 1, 12, 10, generator=torch.Generator().manual_seed(2)), torch.tensor([0.0, 0.1, 0.5])
    ens = tvflownet.ensemble([tmp_path / "a.json", tmp_path / "b.json"], [1, 3])
    assert ens.weights == [0.25, 0.75] and not ens.training
    assert not any(p.requires_grad for p in ens.parameters())
    (ua, pa), (ub, pb), (u, phi) = semi(u0, t), lgd(u0, t), ens(u0, t)
    torch.testing.assert_close(u, 0.25 * ua + 0.75 * ub)
    torch.testing.assert_close(phi, 0.25 * pa + 0.75 * pb)
    assert phi.square().sum(2).amax() <= 1 + 1e-6                          # a mean of unit-ball fields
    first = tvflownet.ensemble([tmp_path / "a.json", tmp_path / "b.json"], [1, 0])
    assert all(torch.equal(x, y) for x, y in zip(first(u0, t), semi(u0, t)))   # weight 0: the first model exactly
    members = ens.meta["provenance"]["members"]
    assert [m["weight"] for m in members] == [0.25, 0.75] and [m["provenance"]["steps"] for m in members] == [0, 1]
    assert ens.meta["config"]["scale"] == 5.0 and ens.meta["config"]["model"]["arch"] == "ensemble"
    u2d, phi2d = ens(u0[0, 0], 0.1)                                         # the members' shape conventions
    torch.testing.assert_close(u2d, ens(u0[:1], 0.1)[0][0, 0])
    assert phi2d.shape == (2, 12, 10)


def test_ensemble_weights_phi_apart_from_u_so_u_and_div_phi_are_chosen_on_their_own_tables(tmp_path, monkeypatch,
                                                                                         capsys):
    _saved(tmp_path / "a", 0)
    _saved_lgd(tmp_path / "b", 1)
    models = [tmp_path / "a.json", tmp_path / "b.json"]
    u0, t = 5 * torch.rand(2, 1, 11, 9, generator=torch.Generator().manual_seed(4)), torch.tensor([0.05, 0.4])
    split = tvflownet.ensemble(models, [1, 2], phi_weights=[1, 3])
    same = tvflownet.ensemble(models, [1, 2])                               # default: phi weighted as u
    (u, phi), (u12, phi12), (_, phi13) = split(u0, t), same(u0, t), tvflownet.ensemble(models, [1, 3])(u0, t)
    assert torch.equal(u, u12) and torch.equal(phi, phi13)                 # each mean from its own weights
    assert not torch.equal(phi, phi12)
    assert split.meta["config"]["model"]["phi_weights"] == [0.25, 0.75]
    assert [m["phi_weight"] for m in split.meta["provenance"]["members"]] == [0.25, 0.75]
    assert same.phi_weights == same.weights
    with pytest.raises(UserInputError, match="phi_weights: one per member"):
        tvflownet.ensemble(models, phi_weights=[1])
    # the command line writes the same model, and names the option it refuses
    out = tmp_path / "ens" / "model"
    argv = ["train", "tvflownet-ensemble", *map(str, models), "--weights", "1", "2", "--phi-weights", "1", "3",
            "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["pdeflow", *argv])
    assert main(argv) == 0
    assert all(torch.equal(x, y) for x, y in zip(tvflownet.load(out.with_suffix(".json"))(u0, t), (u, phi)))
    assert main(argv[:-2] + ["--out", str(tmp_path / "x" / "m"), "--phi-weights", "1", "-1"]) == 2
    assert "argument --phi-weights: expected numbers >= 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_combined_models_take_an_input_eps(tmp_path, monkeypatch, capsys):
    """``input_eps`` sets every source's normalised-gradient input in the combined model (the API and the
    command line alike), is recorded in the provenance, and a bad value is refused by name."""
    _saved(tmp_path / "a", 0)
    _saved(tmp_path / "b", 1)
    models = [tmp_path / "a.json", tmp_path / "b.json"]
    u0 = 5 * torch.rand(1, 1, 9, 9, generator=torch.Generator().manual_seed(4))
    for combine in (tvflownet.average, tvflownet.ensemble):
        plain, smooth = combine(models), combine(models, input_eps=0.2)
        assert torch.equal(smooth(u0, 0.3)[0], tvflownet.with_input_eps(plain, 0.2)(u0, 0.3)[0])
        assert smooth.meta["provenance"]["input_eps"] == 0.2 and "input_eps" not in plain.meta["provenance"]
    out = tmp_path / "ens" / "model"
    argv = ["train", "tvflownet-ensemble", *map(str, models), "--input-eps", "0.2", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["pdeflow", *argv])
    assert main(argv) == 0
    loaded = tvflownet.load(out.with_suffix(".json"))
    assert all(m.input_eps == 0.2 for m in loaded.members)
    assert torch.equal(loaded(u0, 0.3)[0], tvflownet.ensemble(models, input_eps=0.2)(u0, 0.3)[0])
    argv = ["train", "tvflownet-average", *map(str, models), "--input-eps", "0", "--out", str(tmp_path / "x" / "m")]
    assert main(argv) == 2
    assert "argument --input-eps: expected a finite number > 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_ensemble_refuses_other_training_conventions_and_bad_members(tmp_path):
    _saved(tmp_path / "a", 0)
    _saved_lgd(tmp_path / "b", 1, scale=1.0)
    with pytest.raises(UserInputError, match="models: .*differs from .* in scale"):
        tvflownet.ensemble([tmp_path / "a.json", tmp_path / "b.json"])
    with pytest.raises(UserInputError, match="models: give two or more"):
        tvflownet.ensemble([tmp_path / "a.json"])
    with pytest.raises(UserInputError, match="weights: finite numbers >= 0"):
        tvflownet.ensemble([tmp_path / "a.json", tmp_path / "a.json"], [1.0, float("nan")])
    with pytest.raises(UserInputError, match="members: all must take the same number of channels"):
        tvflownet.Ensemble([build_model("semiresnet", **TINY), build_model("semiresnet", **TINY, in_channels=3)])


def test_cli_writes_a_loadable_ensemble_that_the_evaluation_sees_through(tmp_path, monkeypatch):
    _saved(tmp_path / "a", 0, provenance={"data": {"train": {"sources": [str(tmp_path / "photos")]}},
                                         "train_config": {"crop": "32"}})
    _saved_lgd(tmp_path / "b", 1)
    out = tmp_path / "ens" / "model"
    argv = ["train", "tvflownet-ensemble", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["pdeflow", *argv])
    assert main(argv) == 0
    loaded = tvflownet.load(out.with_suffix(".json"))
    direct = tvflownet.ensemble([tmp_path / "a.json", tmp_path / "b.json"])
    u0 = 5 * torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(loaded(u0, 0.2), direct(u0, 0.2)))
    assert json.loads(out.with_suffix(".json").read_text())["provenance"]["command"].startswith(
        "pdeflow train tvflownet-ensemble")
    assert set(E._training_sources(loaded)) == {(tmp_path / "photos").resolve()}
    assert E.paper_key("ens", loaded) is None                            # no single paper row
