"""How model weights are stored: the shipped models in float16, loaded as the float32 they were trained in;
what training writes stays as it is; float16 storage keeps a tensor that float16 cannot hold in its own dtype.

The quality of the shipped models with float16-stored weights, against their float32 originals, is measured by
``benchmarks/shipped_float16.py`` (the table in docs/results/index.md); the last test here checks three of them on
two crops where git history holds the originals.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from pdeflow import models, tvflownet
from pdeflow.errors import UserInputError
from pdeflow.io import fits_float16, load_model, model_paths, save_model, store_float16

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = list(models.SHIPPED)
#: The last commit whose shipped weights were float32 (benchmarks/shipped_float16.py reads the same).
FLOAT32_COMMIT = "9b9b5a3"


def _header(weights: Path) -> dict:
    """The safetensors header: tensor name -> {dtype, shape, offsets} (no tensor is read)."""
    with open(weights, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return {k: v for k, v in json.loads(f.read(n)).items() if k != "__metadata__"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_are_stored_in_float16_and_load_as_float32(name):
    stem = models.resolve(name, models.SHIPPED[name].pillar)
    weights, meta_path = model_paths(stem)
    record = json.loads(meta_path.read_text())["weights"]
    assert record["stored_dtype"] == "float16" and record["dtype"] == "float32"
    assert len(record["source_sha256"]) == 64 and record["source_sha256"] != record["sha256"]
    stored = {k: v["dtype"] for k, v in _header(weights).items()}
    assert {k: d for k, d in stored.items() if d != "F16"} == {k: "F32" for k in record["kept"]}
    state, _ = load_model(stem)
    assert {str(v.dtype) for v in state.values()} == {"torch.float32"}
    from safetensors.torch import load_file
    raw = load_file(weights)
    assert all(torch.equal(state[k], raw[k].float()) for k in raw)          # the upcast is exact


def test_the_float16_check_refuses_overflow_tiny_tensors_and_non_finite_values():
    assert fits_float16(torch.tensor([0.3, -1.2, 1e-7, 0.0]))        # a near-zero weight among ordinary ones
    assert fits_float16(torch.zeros(3)) and fits_float16(torch.empty(0))
    assert not fits_float16(torch.tensor([7e4, 1.0]))                 # beyond float16's largest, 65504
    assert not fits_float16(torch.tensor([3e-7, -1e-7]))              # all below the normal range: precision lost
    assert not fits_float16(torch.tensor([1.0, float("nan")]))
    assert not fits_float16(torch.tensor([1, 2]))                     # not floating
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float((x.half().double() - x).abs().max()) <= 2 ** -11 * float(x.abs().max())


def test_float16_storage_keeps_what_float16_cannot_hold_and_casts_back_to_the_training_dtype(tmp_path):
    state = {"w": torch.linspace(-2, 2, 7, dtype=torch.float64), "big": torch.tensor([1e5, 1.0], dtype=torch.float64),
             "tiny": torch.tensor([1e-7, 2e-7], dtype=torch.float64), "steps": torch.tensor([3])}
    w, j = save_model(state, tmp_path / "m", {"kind": "x"}, stored_dtype="float16")
    assert {k: v["dtype"] for k, v in _header(w).items()} == {"w": "F16", "big": "F64", "tiny": "F64", "steps": "I64"}
    loaded, meta = load_model(j)
    assert meta["weights"]["dtype"] == "float64" and meta["weights"]["kept"] == ["big", "tiny"]
    assert loaded["w"].dtype == torch.float64 and torch.equal(loaded["w"], state["w"].half().double())
    assert torch.equal(loaded["big"], state["big"]) and torch.equal(loaded["tiny"], state["tiny"])
    assert torch.equal(loaded["steps"], state["steps"])


def test_what_training_saves_stays_in_its_dtype(tmp_path):
    net = torch.nn.Conv2d(1, 2, 3)
    w, j = save_model(net, tmp_path / "model", {"kind": "x"})                # what every trainer calls
    assert {v["dtype"] for v in _header(w).values()} == {"F32"}
    assert "stored_dtype" not in json.loads(j.read_text())["weights"]
    state, _ = load_model(j)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_store_float16_copies_a_model_and_refuses_to_overwrite_or_convert_twice(tmp_path):
    save_model(torch.nn.Linear(3, 2), tmp_path / "a", {"kind": "x"}, {"steps": 5})
    w, j = store_float16(tmp_path / "a.json", tmp_path / "b")
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads(j.read_text())
    assert {k: v for k, v in a.items() if k != "weights"} == {k: v for k, v in b.items() if k != "weights"}
    assert b["weights"]["source_sha256"] == a["weights"]["sha256"] and b["weights"]["file"] == "b.safetensors"
    assert w.stat().st_size < (tmp_path / "a.safetensors").stat().st_size
    before = j.read_bytes()
    with pytest.raises(UserInputError, match="out: .*b.safetensors"):
        store_float16(tmp_path / "a", tmp_path / "b")
    assert j.read_bytes() == before
    with pytest.raises(UserInputError, match="already stored in float16"):
        store_float16(tmp_path / "b", tmp_path / "c")
    assert not (tmp_path / "c.safetensors").exists() and not (tmp_path / "c.json").exists()


def test_bad_storage_settings_are_refused_naming_them(tmp_path):
    with pytest.raises(UserInputError, match="stored_dtype must be one of"):
        save_model(torch.nn.Linear(2, 1), tmp_path / "m", {}, stored_dtype="bfloat16")
    mixed = {"a": torch.zeros(2), "b": torch.zeros(2, dtype=torch.float64)}
    with pytest.raises(UserInputError, match="one dtype"):
        save_model(mixed, tmp_path / "m", {}, stored_dtype="float16")
    assert not (tmp_path / "m.safetensors").exists()
    _, j = save_model(torch.nn.Linear(2, 1), tmp_path / "h", {}, stored_dtype="float16")
    meta = json.loads(j.read_text())
    meta["weights"]["dtype"] = "int8"                                   # the weights' checksum still matches
    j.write_text(json.dumps(meta))
    with pytest.raises(UserInputError, match=r"h\.json: weights\.stored_dtype .* 'int8'"):
        load_model(j)


def _float32_original(name: str, folder: Path) -> Path | None:
    """The float32 pair of ``name`` from git history, written to ``folder``; None where git or the commit is absent."""
    rel = models.WEIGHTS_DIRS[models.SHIPPED[name].pillar].relative_to(ROOT) / name
    for suffix in (".safetensors", ".json"):
        try:
            r = subprocess.run(["git", "show", f"{FLOAT32_COMMIT}:{rel.as_posix()}{suffix}"], cwd=ROOT,
                               capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode != 0:
            return None
        (folder / f"{name}{suffix}").write_bytes(r.stdout)
    return folder / name


@pytest.mark.parametrize("name", ["default", "masknet-10", "residual-inpainter"])
def test_stored_weights_give_the_float32_originals_output_to_float16s_precision(name, tmp_path):
    """Against the float32 file it was made from (git history; skipped where the checkout lacks it): the
    TVflowNET's u and the residual inpainter's inpainting differ by less than 1/20 of an 8-bit grey level (float16
    storage: about 0.01 and 0.03 here; bfloat16's 8 significant bits would give about 0.08 and 0.14), the mask
    network's mask by at most 1 % of its points."""
    from pdeflow import datasets
    from pdeflow.inpaint import analytic_mask, inpaint_learned, learned_mask
    from pdeflow.inpaint.learned.masknet import load_masknet
    from pdeflow.inpaint.learned.residual import load_residual

    original = _float32_original(name, tmp_path)
    if original is None:
        pytest.skip(f"the float32 originals (git commit {FLOAT32_COMMIT}) are not in this checkout")
    f = datasets.random_crops(datasets.builtin_pool("test", kind="photo"), 2, 48, generator=3)
    with torch.no_grad():
        if name == "default":
            a, b = (tvflownet.flow(f, [0.1, 0.2], tvflownet.load(m)) for m in (original, name))
        elif name == "masknet-10":
            a, b = (learned_mask(f, 0.1, model=load_masknet(m, density=0.1)) for m in (original, name))
            assert int((a != b).sum()) <= 0.01 * int(a.sum())
            return
        else:
            m = analytic_mask(f, 0.1)
            a, b = (inpaint_learned(f, m, model=load_residual(s)) for s in (original, name))
    assert float((a - b).abs().max()) < 0.05 / 255


def test_a_stage_chain_keeps_what_differs_and_refers_to_what_repeats(tmp_path):
    """A model trained from another keeps each stage's own settings and how it was trained; a block equal to the
    enclosing stage's block of the same name is stored once."""
    from pdeflow.io import SAME_AS_ABOVE, trimmed_provenance
    from pdeflow.models import training

    data = {"pools": ["builtin", "opencv", "lomiri"], "crops": list(range(40))}
    first = {"data": data, "train_config": {"mode": "unsupervised", "lr": 1e-3}, "steps": 300}
    second = {"data": data, "train_config": {"mode": "supervised", "lr": 1e-4}, "steps": 900,
              "init": {"model": "first", "provenance": first}}
    trimmed = trimmed_provenance(second)
    assert trimmed["data"] == data and trimmed["init"]["provenance"]["data"] == SAME_AS_ABOVE
    assert trimmed["init"]["provenance"]["train_config"] == first["train_config"]   # never trimmed: read per stage
    assert trimmed["init"]["provenance"]["steps"] == 300
    assert training(trimmed) == training(second) == "supervised+unsupervised"
    assert second["init"]["provenance"]["data"] is data                           # the input is left as it was
    other = {**second, "init": {"model": "first", "provenance": {**first, "data": {**data, "pools": ["builtin"]}}}}
    assert trimmed_provenance(other)["init"]["provenance"]["data"]["pools"] == ["builtin"]
    _, meta_path = save_model(torch.nn.Linear(2, 1), tmp_path / "m", {"width": 2}, second)
    assert json.loads(meta_path.read_text())["provenance"]["init"]["provenance"]["data"] == SAME_AS_ABOVE
