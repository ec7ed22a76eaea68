"""Averaging trained TVflowNETs' weights: `pdeflow.tvflownet.average` and `pdeflow train tvflownet-average`."""
import json
import sys

import pytest
import torch

from pdeflow import tvflownet
from pdeflow.cli import main
from pdeflow.errors import UserInputError
from pdeflow.io import save_model
from pdeflow.tvflownet import build_model
from pdeflow.tvflownet import evaluate as E

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
