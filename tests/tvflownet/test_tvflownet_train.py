"""TVflowNET training, loading, flow() and the symmetry wrapper, on tiny models (fast)."""
from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import pdeflow.tvflownet.api as api
import pdeflow.tvflownet.train as T
from pdeflow import datasets
from pdeflow.cli import build_parser
from pdeflow.training import RunConfigError, load_checkpoint
from pdeflow.tv import tv_flow
from pdeflow.tvflownet import Equivariant, build_model, flow, load
from pdeflow.tvflownet.train import TrainConfig, train

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
              pytest.mark.usefixtures("torch_globals_restored")]

TINY = dict(width=4, depth=3)


def tiny_config(**kw) -> TrainConfig:
    base = dict(mode="unsupervised", arch_kwargs=TINY, crop="16",  # the paper's loss (not the default)
                steps=6, batch_size=4, val_every=3, ckpt_every=2, val_crops=2,
                val_size=16, val_times=3, val_dt=0.1, val_tol=1e-3, val_max_iter=100, ref_dt=0.1,
                ref_max_iter=50, deterministic=True)
    base.update(kw)
    return TrainConfig(**base)


def _rows(run_dir) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in ("wall_time", "cpu_time")} for r in csv.DictReader(f)]


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------- train, export, load

def test_tiny_hybrid_run_exports_a_model_that_load_reads_back(tmp_path):
    cfg = tiny_config(mode="hybrid", hybrid_fraction=0.5)
    meta_path = train(cfg, tmp_path / "run", quiet=True, command="pdeflow train tvflownet --test")
    run = tmp_path / "run"
    assert meta_path == run / "model.json"
    for name in ("config.json", "last.pt", "best.pt", "log.csv", "val_reference.pt", "model.safetensors", "model.json"):
        assert (run / name).is_file(), name
    rows = _rows(run)
    assert [r["step"] for r in rows] == [str(s) for s in range(6)]
    assert all(r["sup_u"] != "" for r in rows[:3]) and all(r["temporal"] != "" for r in rows[3:])  # the two phases
    assert [r["val_psnr"] != "" for r in rows] == [False, False, True, False, False, True]
    with open(run / "log.csv", newline="") as f:                 # CPU seconds so far at each validation
        cpu = [float(r["cpu_time"]) for r in csv.DictReader(f) if r["val_psnr"] != ""]
    assert 0 < cpu[0] < cpu[1]

    meta = json.loads(meta_path.read_text())
    assert meta["config"]["model"]["arch"] == "semiresnet" and meta["config"]["model"]["width"] == 4
    assert meta["config"]["scale"] == 5.0 and meta["config"]["t_max"] == 1.0
    prov = meta["provenance"]
    best = load_checkpoint(run / "best.pt")
    assert prov["val_psnr"] == best["best"]["metric"] and prov["steps"] == best["step"]
    assert prov["command"] == "pdeflow train tvflownet --test" and prov["wall_time_s"] > 0
    train_names, val_names = prov["data"]["train"]["images"], prov["data"]["validation"]["images"]
    assert train_names and val_names and not set(train_names) & set(val_names)
    never = {f"builtin:{n}" for n in datasets.builtin_names("test") + datasets.builtin_names(kind="medical")}
    assert not never & set(train_names + val_names)         # neither the evaluation's photos nor medical images

    net = build_model(**meta["config"]["model"])
    net.load_state_dict(best["models"]["net"])
    net.eval()
    u0, t = torch.rand(3, 1, 20, 18) * 5, torch.tensor([0.0, 0.4, 0.9])
    ref = net(u0, t)
    for spec in (run, run / "model.json", run / "model.safetensors", str(run / "model")):
        model = load(spec)
        assert not model.training and model.meta["provenance"]["steps"] == prov["steps"]
        out = model(u0, t)
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])

    cached = load_checkpoint(run / "val_reference.pt")
    assert cached["ref"].shape == (3, 2, 1, 16, 16) and cached["times"] == [0.0, 0.5, 1.0]
    assert 0 < prov["val_psnr_identity"] < 100


def test_validation_reference_is_computed_once_per_run(tmp_path, monkeypatch):
    cfg = tiny_config(steps=2, val_every=1)
    train(cfg, tmp_path, quiet=True)
    before = (tmp_path / "val_reference.pt").read_bytes()

    def no_flow(*a, **k):
        raise AssertionError("the validation reference was recomputed")
    monkeypatch.setattr(T, "tv_flow", no_flow)
    train(dataclasses.replace(cfg, steps=3), tmp_path, quiet=True)          # resumed and extended: uses the cache
    assert (tmp_path / "val_reference.pt").read_bytes() == before
    assert json.loads((tmp_path / "model.json").read_text())["provenance"]["steps_total"] == 3


def test_resume_after_kill_is_bit_identical(tmp_path, monkeypatch):
    cfg = tiny_config(mode="unsupervised")
    train(cfg, tmp_path / "full", quiet=True, command="x")

    real = T.sample_batch
    calls = []

    def killed_at_5(cfg_, images, g):
        calls.append(1)
        if len(calls) == 6:                      # the top of step 5: last.pt holds 4 steps
            raise KeyboardInterrupt
        return real(cfg_, images, g)

    monkeypatch.setattr(T, "sample_batch", killed_at_5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", quiet=True, command="x")
    monkeypatch.setattr(T, "sample_batch", real)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 4
    train(cfg, tmp_path / "resumed", quiet=True, command="x")

    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "resumed" / "last.pt")
    _same(a["models"]["net"], b["models"]["net"])
    _same(a["optimizers"]["opt"]["state"][0], b["optimizers"]["opt"]["state"][0])
    assert a["best"] == b["best"]
    assert _rows(tmp_path / "full") == _rows(tmp_path / "resumed")
    assert ((tmp_path / "full" / "model.safetensors").read_bytes()
            == (tmp_path / "resumed" / "model.safetensors").read_bytes())
    with pytest.raises(RunConfigError, match="lr"):
        train(dataclasses.replace(cfg, lr=1e-3), tmp_path / "resumed", quiet=True)


def test_config_errors_and_changed_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="TrainConfig.crop"):
        train(tiny_config(crop="big"), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.times_per_image"):
        train(tiny_config(times_per_image=3), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="TrainConfig.mode"):
        train(tiny_config(mode="semi"), tmp_path / "a", quiet=True)
    with pytest.raises(ValueError, match="neither 'builtin' nor a directory"):
        train(tiny_config(data=str(tmp_path / "nowhere")), tmp_path / "a", quiet=True)


def test_sample_batch_is_a_pure_function_of_the_generator_and_mixed_sizes(tmp_path):
    images, _ = T.open_data(tiny_config())
    cfg = tiny_config(crop="mixed", mixed_min=8, mixed_max=24, times_per_image=2)
    g = lambda s: T.step_generator(0, s)  # noqa: E731
    u_a, t_a = T.sample_batch(cfg, images, g(3))
    u_b, t_b = T.sample_batch(cfg, images, g(3))
    assert torch.equal(u_a, u_b) and torch.equal(t_a, t_b)
    sizes = {T.sample_batch(cfg, images, g(s))[0].shape[-1] for s in range(12)}
    assert len(sizes) > 3 and all(8 <= s < 24 for s in sizes)
    assert torch.equal(u_a[0], u_a[1]) and t_a[0] == 0 and t_a[2] == 0 and u_a.max() > 1   # replicated, x5


def test_time_power_maps_the_same_uniform_draws():
    images, _ = T.open_data(tiny_config())
    g = lambda: T.step_generator(0, 5)  # noqa: E731
    u1, t1 = T.sample_batch(tiny_config(batch_size=64, t_max=0.5), images, g())
    u2, t2 = T.sample_batch(tiny_config(batch_size=64, t_max=0.5, t_power=2.0), images, g())
    assert torch.equal(u1, u2)                                          # same crops: only t changes
    torch.testing.assert_close(t2, 0.5 * (t1 / 0.5) ** 2)               # t = T U^2 for the same U
    assert float((t1 < 0.1).float().mean()) < float((t2 < 0.1).float().mean())
    with pytest.raises(ValueError, match="t_power"):
        T.check_config(tiny_config(t_power=0.0))


def test_sample_batch_mixes_in_synthetic_shapes_without_changing_the_photo_draws():
    images, _ = T.open_data(tiny_config())
    g = lambda: T.step_generator(0, 7)  # noqa: E731
    plain = T.sample_batch(tiny_config(batch_size=8), images, g())[0]
    assert torch.equal(plain, images.crops(8, 16, g()) * 5)            # synthetic = 0: the draws of before
    mixed = T.sample_batch(tiny_config(batch_size=8, synthetic=0.5), images, g())[0]
    assert torch.equal(mixed[:4], images.crops(4, 16, g()) * 5)         # photo crops first
    for img in mixed[4:]:                                               # then flat shapes: a few grey levels
        assert 2 <= img.unique().numel() <= 8 and float(img.min()) == 0.0
    assert T.sample_batch(tiny_config(batch_size=8, synthetic=1.0), images, g())[0].shape == (8, 1, 16, 16)
    with pytest.raises(ValueError, match="synthetic"):
        T.check_config(tiny_config(synthetic=1.5))


def test_flowed_inputs_are_the_stretched_flow_of_a_fraction_of_the_crops():
    images, _ = T.open_data(tiny_config())
    g = lambda: T.step_generator(0, 9)  # noqa: E731
    plain = T.sample_batch(tiny_config(batch_size=8), images, g())[0]
    cfg = tiny_config(batch_size=8, flowed=0.5, flowed_max=0.2)   # short of extinction
    out = T.sample_batch(cfg, images, g())[0]
    changed = (out != plain).flatten(1).any(1)
    assert int(changed.sum()) == 4                                      # the photo draws are the same, half flowed
    for i in changed.nonzero().flatten().tolist():                      # each stretched to exactly [0, 5]
        assert float(out[i].min()) == 0.0 and float(out[i].max()) == pytest.approx(5.0)
    # and the TV flow of its crop at a time s in [0, flowed_max], drawn after the crops: one checked independently
    gen = g()
    images.crops(8, 16, gen)
    idx = torch.randperm(8, generator=gen)[:4]
    assert set(idx.tolist()) == set(changed.nonzero().flatten().tolist())
    s = torch.rand(4, 1, generator=gen, dtype=torch.float64) * 0.2
    u = tv_flow(plain[idx[0]][None], [float(s[0, 0])], dt=0.05, tol=cfg.ref_tol,   # the documented coarse step
                max_iter=cfg.ref_max_iter, scheme="euler")[0, 0]
    # both solved to the relative gap ref_tol (1e-3) along different iterations (a batch of four, one image; the
    # checks' schedule differs): each within the inputs' documented 0.3 % of the range (5) of the exact flow, so
    # within twice that of each other, not to round-off
    torch.testing.assert_close(out[idx[0]], 5 * (u - u.min()) / (u.max() - u.min()), atol=2 * 0.003 * 5, rtol=0)
    with pytest.raises(ValueError, match="flowed"):
        T.check_config(tiny_config(flowed=1.5))


def test_init_copies_a_model_and_refuses_another_architecture(tmp_path):
    from pdeflow.tvflownet.api import load
    net = build_model("semiresnet", **TINY)
    shipped = load("semiresnet")
    other = build_model("semiresnet")                        # the shipped model's architecture
    info = T._init_from(other, "semiresnet")
    _same(other.state_dict(), shipped.state_dict())
    assert info["steps"] == shipped.meta["provenance"]["steps"] and len(info["weights_sha256"]) == 64
    with pytest.raises(ValueError, match="init: the weights of 'semiresnet' do not fit"):
        T._init_from(net, "semiresnet")
    with pytest.raises(ValueError, match="init: "):
        T._init_from(net, str(tmp_path / "nothing"))


def test_init_from_a_run_checkpoint_copies_its_weights_at_that_step(tmp_path):
    train(tiny_config(arch="semiresnet"), tmp_path / "run", quiet=True)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    net = build_model("semiresnet", **TINY)
    info = T._init_from(net, str(tmp_path / "run" / "last.pt"))
    _same(net.state_dict(), ckpt["models"]["net"])
    assert info["steps"] == ckpt["step"] == 6 and len(info["state_sha256"]) == 64
    with pytest.raises(ValueError, match="do not fit this run's architecture"):
        T._init_from(build_model("semiresnet", width=6, depth=3), str(tmp_path / "run" / "last.pt"))
    with pytest.raises(ValueError, match="init: no checkpoint at"):
        T._init_from(net, str(tmp_path / "missing.pt"))
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not a readable TVflowNET run checkpoint"):
        T._init_from(net, str(tmp_path / "other.pt"))


def test_a_resumed_run_ignores_init_and_keeps_its_record(tmp_path):
    """--init seeds a fresh run only: resuming may name another copy of the weights, or one that is
    gone (another machine), and the export still records the weights the run started from."""
    train(tiny_config(arch="semiresnet", steps=2), tmp_path / "seed", quiet=True)
    first = tmp_path / "first.pt"
    first.write_bytes((tmp_path / "seed" / "last.pt").read_bytes())
    run = tmp_path / "run"
    train(tiny_config(arch="semiresnet", steps=4, init=str(first)), run, quiet=True)
    record = json.loads((run / "init.json").read_text())
    assert record["checkpoint"] == str(first) and record["steps"] == 2
    first.unlink()                                             # the --init of the first start is gone
    train(tiny_config(arch="semiresnet", steps=6, init=str(tmp_path / "elsewhere.pt")), run, quiet=True)
    meta = json.loads((run / "model.json").read_text())
    assert meta["provenance"]["init"] == record and meta["provenance"]["steps_total"] == 6
    with pytest.raises(ValueError, match="init: no checkpoint at"):   # a fresh run still needs it
        train(tiny_config(arch="semiresnet", steps=2, init=str(first)), tmp_path / "new", quiet=True)


def test_validation_does_not_change_the_training(tmp_path):
    """So a run that validates only at its last step exports exactly its final weights (how the shipped
    default's cool-down is reproduced: README, --val-every equal to --steps)."""
    for every in (2, 6):
        train(tiny_config(mode="supervised", phi_weight=0.1, val_every=every), tmp_path / f"v{every}", quiet=True)
    _same(load_checkpoint(tmp_path / "v2" / "last.pt")["models"]["net"],
          load_checkpoint(tmp_path / "v6" / "last.pt")["models"]["net"])
    _same(load(tmp_path / "v6").state_dict(), load_checkpoint(tmp_path / "v6" / "last.pt")["models"]["net"])


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_learning_rate_schedule(tmp_path, schedule):
    from pdeflow.training import cosine_factor
    cfg = tiny_config(lr=1e-3, lr_schedule=schedule, lr_final=0.1)
    train(cfg, tmp_path / "run", quiet=True)
    lr = load_checkpoint(tmp_path / "run" / "last.pt")["optimizers"]["opt"]["param_groups"][0]["lr"]
    want = 1e-3 * (cosine_factor(cfg.steps - 1, cfg.steps, 0.1) if schedule == "cosine" else 1.0)
    assert lr == pytest.approx(want, rel=1e-12)
    if schedule == "cosine":
        assert lr < 0.2e-3                             # the last step runs near the final rate
    with pytest.raises(ValueError, match="lr_schedule"):
        T.check_config(tiny_config(lr_schedule="linear"))


def test_folder_data_holds_out_images_for_validation(tmp_path):
    from pdeflow import io as pio
    folder = tmp_path / "imgs" / "sub"
    folder.mkdir(parents=True)
    for i in range(5):
        pio.write_image(folder / f"im{i}.png", torch.rand(1, 24, 24))
    cfg = tiny_config(data=str(tmp_path / "imgs"))
    tr, va = T.open_data(cfg)
    assert len(tr) == 4 and len(va) == 1
    assert not set(tr.description["images"]) & set(va.description["images"])
    assert va.description["images"][0].startswith("imgs/sub/im")      # named FOLDER/RELATIVE_PATH
    assert tr[0].shape == (1, 24, 24)


# ---------------------------------------------------------------- supervised

def test_a_diverged_run_stops_with_a_clear_error_and_keeps_its_checkpoints(tmp_path, monkeypatch):
    real, calls = T.supervised_loss, []

    def nan_at_step_3(*args, **kw):
        calls.append(1)
        loss, terms = real(*args, **kw)
        return (loss * float("nan") if len(calls) == 4 else loss), terms
    monkeypatch.setattr(T, "supervised_loss", nan_at_step_3)
    with pytest.raises(FloatingPointError, match="training diverged at step 3 .*--clip"):
        train(tiny_config(mode="supervised"), tmp_path / "nan", quiet=True)
    assert load_checkpoint(tmp_path / "nan" / "last.pt")["step"] <= 3


def test_supervised_loss_decreases():
    torch.manual_seed(0)
    cfg = tiny_config(mode="supervised", phi_weight=0.1)
    net = build_model("semiresnet", **TINY)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    images, _ = T.open_data(cfg)
    u0, t = T.sample_batch(cfg, images, T.step_generator(0, 0))
    losses = []
    for _ in range(25):
        loss, terms = T.supervised_loss(net, u0, t, cfg)
        assert set(terms) == {"sup_u", "sup_phi"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.75 * losses[0] and min(losses[-5:]) < min(losses[:5])


def test_reference_flow_picks_each_crops_own_time():
    cfg = tiny_config(times_per_image=2)
    u0 = torch.rand(2, 1, 10, 10).repeat_interleave(2, 0) * 5
    t = torch.tensor([0.0, 0.3, 0.0, 0.7])
    ref = T.supervised_reference(u0, t, cfg)
    direct = tv_flow(u0[::2], [0.3, 0.7], dt=cfg.ref_dt, tol=cfg.ref_tol, max_iter=cfg.ref_max_iter)
    # within the solves' tolerance (batched and alone they stop apart: up to 0.013 here); the other time is 1.2 off
    assert torch.equal(ref[0], u0[0]) and torch.allclose(ref[1], direct[0, 0], atol=0.05)
    assert torch.allclose(ref[3], direct[1, 1], atol=0.05)


def test_reused_reference_blocks_use_each_crop_time_pair_once_with_its_own_flow():
    images, _ = T.open_data(tiny_config())
    cfg = tiny_config(mode="supervised", phi_weight=0.1, ref_reuse=3, crop="12")
    block, pairs = None, []
    for step in (3, 4, 5):                                   # block 1 of steps 3, 4, 5
        u0, t, (u_ref, ut_ref, p_ref), block = T.reused_reference_batch(cfg, images, step, 0, block, dual=True)
        assert block["first"] == 3 and u0.shape == (4, 1, 12, 12) and t.shape == (4,) and u_ref.shape == u0.shape
        pairs += [(i, float(s)) for i in range(4) for s in t[(u0 == block["crops"][i]).flatten(1).all(1)]]
        for k in range(4):                                   # each pair's target is its own crop's flow at its time
            alone = tv_flow(u0[k:k + 1], [float(t[k])], dt=cfg.ref_dt, tol=cfg.ref_tol, max_iter=cfg.ref_max_iter)
            assert torch.allclose(u_ref[k], alone[0, 0], atol=0.05)
        if step == 4:                                        # resumed inside the block: the same batch
            again = T.reused_reference_batch(cfg, images, 4, 0, None, dual=True)
            assert torch.equal(again[0], u0) and torch.equal(again[1], t) and torch.equal(again[2][1], ut_ref)
    assert sorted(pairs) == sorted((i, float(s)) for i in range(4) for s in block["t"][i])   # all 12, once each
    assert len({s for _, s in pairs}) == 12
    nxt = T.reused_reference_batch(cfg, images, 6, 0, block, dual=False)
    assert nxt[3]["first"] == 6 and torch.is_tensor(nxt[2]) and not torch.equal(nxt[3]["crops"], block["crops"])
    with pytest.raises(ValueError, match="TrainConfig.ref_reuse"):
        T.check_config(tiny_config(ref_reuse=2, times_per_image=2))


def test_a_run_with_reused_references_resumes_inside_a_block_bit_identically(tmp_path, monkeypatch):
    cfg = tiny_config(mode="supervised", phi_weight=0.1, ref_reuse=3)
    train(cfg, tmp_path / "full", quiet=True, command="x")
    real, calls = T.reused_reference_batch, []

    def killed_at_5(*args, **kw):
        calls.append(1)
        if len(calls) == 6:                      # the top of step 5 (block 3, 4, 5): last.pt holds 4 steps
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(T, "reused_reference_batch", killed_at_5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", quiet=True, command="x")
    monkeypatch.setattr(T, "reused_reference_batch", real)
    train(cfg, tmp_path / "resumed", quiet=True, command="x")
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "resumed" / "last.pt")
    _same(a["models"]["net"], b["models"]["net"])
    assert _rows(tmp_path / "full") == _rows(tmp_path / "resumed")
    train(dataclasses.replace(cfg, ref_reuse=2, steps=8), tmp_path / "resumed", quiet=True, command="x")   # may change
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["step"] == 8


def test_default_reference_step_resolves_u_t():
    """The u_t target is the last implicit step's difference quotient: on textured images, whose
    level sets vanish all the time, the default step (0.01) must be far closer to the flow's
    velocity (a fine, tightly solved flow, float64) than 0.05. (On flat shapes, which change
    velocity rarely, both are within the solver's tolerance: 1e-4 to 3e-4 there.)"""
    noise = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u0 = torch.cat([datasets.scenes(("smooth",), 24, seed=0, batch=2, dtype=torch.float64), noise]) * 5
    t = torch.tensor([0.05, 0.1, 0.15, 0.2], dtype=torch.float64)       # on both grids: no partial steps
    fine = tv_flow(u0, t.tolist(), dt=0.0025, tol=1e-7, max_iter=5000, return_ut=True)[1]
    fine = fine[torch.arange(4), torch.arange(4)]                       # each crop at its own time
    err = {}
    for dt in (0.01, 0.05):
        ut = T.supervised_reference(u0, t, TrainConfig(ref_dt=dt), dual=True)[1]
        err[dt] = float(((ut - fine) ** 2).mean())
    assert TrainConfig().ref_dt == 0.01
    assert err[0.01] < 0.2 * err[0.05], err


# ---------------------------------------------------------------- load and flow

def _tiny_model(scale=5.0, t_max=1.0, dtype=torch.float32):
    torch.manual_seed(0)
    m = build_model("semiresnet", **TINY).to(dtype).eval()
    m.meta = {"config": {"model": m.config, "scale": scale, "t_max": t_max}}
    return m


@pytest.mark.parametrize("shape", [(12, 10), (1, 12, 10), (3, 1, 12, 10)])
def test_flow_output_shapes_mirror_tv_flow(shape):
    u0 = torch.rand(shape)
    times = [0.0, 0.02, 0.1]
    ref_u, ref_ut, ref_p = tv_flow(u0, times, dt=0.05, tol=1e-2, max_iter=50, return_ut=True, return_dual=True)
    for eq in (True, False):
        u, ut, p = flow(u0, times, _tiny_model(), equivariant=eq, batch_size=2, return_ut=True, return_dual=True)
        assert u.shape == ref_u.shape and ut.shape == ref_ut.shape and p.shape == ref_p.shape
        assert u.dtype == u0.dtype and torch.isfinite(u).all()
    assert flow(u0, times, _tiny_model()).shape == ref_u.shape
    with pytest.raises(ValueError, match="channel"):
        flow(torch.rand(1, 3, 8, 8), times, _tiny_model())
    with pytest.raises(ValueError, match="sorted"):
        flow(u0, [0.5, 0.1], _tiny_model())


def test_flow_applies_the_training_scale():
    """The bare network sees s*u0 at time s*t; the output is divided by s."""
    m = _tiny_model(scale=5.0)
    u0 = torch.rand(2, 1, 12, 12)
    u = flow(u0, [0.1], m, equivariant=False, symmetry=None)
    with torch.no_grad():
        direct = m(u0 * 5, 0.5)[0] / 5
    torch.testing.assert_close(u[0], direct)
    with pytest.warns(UserWarning, match="beyond its trained interval"):
        flow(u0, [0.5], m, equivariant=False)


def test_load_names_paths_and_missing_weights(tmp_path, monkeypatch):
    from pdeflow import models
    monkeypatch.setitem(models.WEIGHTS_DIRS, "tvflownet", tmp_path / "weights")
    monkeypatch.setattr(api, "_MODEL_CACHE", {})
    with pytest.raises(FileNotFoundError, match="no model is shipped.*pdeflow train tvflownet"):
        load()
    with pytest.raises(FileNotFoundError, match="no model is shipped"):
        flow(torch.rand(8, 8), [0.1])
    with pytest.raises(FileNotFoundError, match="missing"):
        load(tmp_path / "nothing.json")
    from pdeflow.io import save_model
    m = _tiny_model()
    save_model(m, tmp_path / "weights" / "default", config=m.meta["config"], provenance={})
    save_model(m, tmp_path / "weights" / "small", config=m.meta["config"], provenance={})
    assert api.shipped_models() == ["default", "small"]
    u0 = torch.rand(1, 1, 8, 8)
    for loaded in (load(), load("small"), load(tmp_path / "weights" / "small.safetensors")):
        torch.testing.assert_close(loaded(u0, 0.3)[0], m(u0, 0.3)[0], rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="shipped models: default, small"):
        load("large")
    torch.testing.assert_close(flow(u0, [0.1]), flow(u0, [0.1], m))


# ---------------------------------------------------------------- symmetry wrapper

@pytest.mark.parametrize("contrast", ["range", "std"])
def test_equivariant_wrapper_is_shift_equivariant_and_one_homogeneous(contrast):
    m = Equivariant(_tiny_model(dtype=torch.float64), contrast=contrast)
    gen = torch.Generator().manual_seed(1)
    u0 = torch.rand(3, 1, 14, 12, generator=gen, dtype=torch.float64)
    t = torch.tensor([0.0, 0.05, 0.7], dtype=torch.float64)      # 0.7: past T on the network's scale -> composed
    for _ in range(4):
        c = float(10 ** (torch.rand(1, generator=gen) * 4 - 2))   # 0.01 .. 100
        k = float(torch.randn(1, generator=gen) * 10)
        u_a, phi_a = m(c * u0 + k, t)
        u_b, phi_b = m(u0, t / c)
        expected = c * u_b + k
        assert (u_a - expected).abs().max() <= 1e-5 * expected.abs().max()
        assert (phi_a - phi_b).abs().max() <= 1e-5
    # per-image contrasts: each image scaled by its own factor
    cs = torch.tensor([0.3, 2.0, 7.0], dtype=torch.float64).view(-1, 1, 1, 1)
    u_a, _ = m(cs * u0 - 4.0, t)
    u_b, _ = m(u0, t / cs.view(-1))
    assert (u_a - (cs * u_b - 4.0)).abs().max() <= 1e-5 * (cs * u_b - 4.0).abs().max()


def test_equivariant_wrapper_with_the_range_shows_the_network_exactly_the_training_intensities():
    """contrast='range' shifts by the midrange: whatever the image's offset and skew, the network
    sees values spanning exactly [0, S] (a mean shift would push a skewed image past S)."""
    seen = []

    class Spy(torch.nn.Module):
        meta = {"config": {"scale": 5.0, "t_max": 1.0}}

        def forward(self, u0, t):
            seen.append((u0.flatten(1).amin(1), u0.flatten(1).amax(1)))
            return u0, u0.new_zeros(*u0.shape[:2], 2, *u0.shape[2:])

    u0 = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    u0[0, 0, 0, 0] = 1.0                      # one bright pixel: its mean sits near the minimum
    u0[1] = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 9 + 40
    Equivariant(Spy(), contrast="range")(u0, 0.5)
    lo, hi = seen[0]
    torch.testing.assert_close(lo, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(hi, torch.full((2,), 5.0, dtype=torch.float64))

def test_equivariant_wrapper_composes_beyond_the_trained_interval_and_keeps_constants():
    inner = _tiny_model(dtype=torch.float64)
    calls = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner
            self.meta = inner.meta

        def forward(self, u0, t):
            calls.append(torch.as_tensor(t).detach().clone())
            return self.inner(u0, t)

    m = Equivariant(Spy(), contrast="range")
    u0 = torch.rand(1, 1, 10, 10, dtype=torch.float64)
    c = float(u0.max() - u0.min())
    lam = c / 5.0
    calls.clear()
    m(u0, 0.5 * lam)                               # network time 0.5: one call
    assert len(calls) == 1 and torch.allclose(calls[0], torch.tensor([0.5], dtype=torch.float64))
    calls.clear()
    m(u0, 2.5 * lam)                               # network time 2.5 > T = 1: composed, every call within [0, T]
    assert len(calls) >= 2 and all(float(x.max()) <= 1.0 + 1e-12 for x in calls)
    assert torch.allclose(calls[0], torch.tensor([1.0], dtype=torch.float64))
    calls.clear()
    Equivariant(Spy(), contrast="range", compose=False)(u0, 2.5 * lam)
    assert len(calls) == 1 and torch.allclose(calls[0], torch.tensor([2.5], dtype=torch.float64))

    const = torch.full((2, 1, 6, 6), 3.25, dtype=torch.float64)
    u, phi = m(const, 0.4)
    assert torch.equal(u, const) and phi.abs().max() == 0
    u2, phi2 = m(const[0, 0], 0.4)                 # (H, W) in, (H, W) out
    assert u2.shape == (6, 6) and phi2.shape == (2, 6, 6)


# ---------------------------------------------------------------- command line

def test_cli_trains_then_resumes_with_the_same_command(tmp_path, capsys):
    parser = build_parser()
    argv = ["train", "tvflownet", "--arch", "semiresnet", "--arch-kwargs", '{"width": 4, "depth": 3}',
            "--crop", "16", "--steps", "2", "--batch-size", "2", "--run-dir", str(tmp_path / "run"),
            "--val-crops", "1", "--val-size", "16", "--val-times", "2", "--val-dt", "0.1", "--val-tol", "1e-3",
            "--val-max-iter", "50", "--quiet"]
    for _ in range(2):
        args = parser.parse_args(argv)
        args.validate(args)
        assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "starting" in out and "resuming" in out and "best validation PSNR" in out
    assert load(tmp_path / "run").config["width"] == 4
    with pytest.raises(SystemExit):
        parser.parse_args(argv[:-1] + ["--crop", "huge"])


def test_cli_options_of_the_schedule_and_mixed_crops_reach_the_config(tmp_path):
    from pdeflow.cli.tvflownet import config_from_args
    args = build_parser().parse_args(["train", "tvflownet", "--crop", "mixed", "--mixed-min", "40", "--mixed-max",
                                      "97", "--lr-schedule", "cosine", "--lr-final", "0.05",
                                      "--run-dir", str(tmp_path / "run")])
    cfg = config_from_args(args)
    assert (cfg.crop, cfg.mixed_min, cfg.mixed_max, cfg.lr_schedule, cfg.lr_final) == ("mixed", 40, 97, "cosine", 0.05)
    defaults = config_from_args(build_parser().parse_args(["train", "tvflownet", "--run-dir", str(tmp_path / "r")]))
    assert (defaults.mixed_min, defaults.mixed_max, defaults.lr_schedule) == (32, 256, "constant")


# ---------------------------------------------------------------- DDP

DDP_SCRIPT = """
import os, sys, torch
torch.set_num_threads(1)
import pdeflow.tvflownet.train as T
built = []
build = T.build_model
T.build_model = lambda *a, **k: built.append(build(*a, **k)) or built[-1]
cfg = T.TrainConfig(arch_kwargs={"width": 4, "depth": 3}, crop="16", steps=4, batch_size=2, val_every=2,
                    ckpt_every=2, val_crops=3, val_size=16, val_times=2, val_dt=0.1, val_tol=1e-3, val_max_iter=50)
T.train(cfg, sys.argv[1], quiet=True, command="ddp")
torch.save(built[0].state_dict(), os.path.join(sys.argv[1], "..", "rank" + os.environ["RANK"] + ".pt"))
"""


@pytest.mark.slow   # three processes (torchrun, two ranks); make test keeps the toolkit's two-process run
def test_ddp_two_cpu_processes(tmp_path):   # (tests/training/test_training.py::test_ddp_two_cpu_processes)
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["provenance"]["world_size"] == 2
    assert [r["step"] for r in _rows(tmp_path / "run")] == ["0", "1", "2", "3"]
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["world_size"] == 2
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    _same(ranks[0], ranks[1])                          # the ranks stepped alike...
    _same(ranks[0], last["models"]["net"])             # ...and rank 0 checkpointed it


def test_equivariant_wrapper_stops_at_the_mean_past_extinction():
    """Far past the extinction time the composed flow returns the mean, without a warning."""
    import warnings

    class Shrink(torch.nn.Module):
        """Shrinks the contrast by 0.8 per unit of network time around the mean, like a flow that flattens."""
        meta = {"config": {"scale": 5.0, "t_max": 1.0}}

        def forward(self, u0, t):
            t = torch.as_tensor(t, dtype=u0.dtype).reshape(-1, 1, 1, 1)
            mean = u0.mean((1, 2, 3), keepdim=True)
            return mean + (u0 - mean) * 0.8 ** t, u0.new_zeros(*u0.shape[:2], 2, *u0.shape[2:])

    m = Equivariant(Shrink())
    u0 = torch.rand(2, 1, 10, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u, _ = m(u0, 1e6)
    torch.testing.assert_close(u, u0.mean((1, 2, 3), keepdim=True).expand_as(u0), rtol=0, atol=1e-12)
    with pytest.warns(UserWarning, match="short of their time"):   # flat=0: chases the contrast down
        Equivariant(Shrink(), flat=0.0)(u0, 1e6)
    with pytest.raises(ValueError, match="flat"):
        Equivariant(_tiny_model(), flat=1.5)


def test_cli_options_are_generated_from_the_config():
    """Every TrainConfig option field is a `pdeflow train tvflownet` option with the field's default, and the
    parsed defaults give back TrainConfig() (a hyperparameter is declared once, in the config)."""
    import dataclasses

    from pdeflow.cli.tvflownet import config_from_args

    parser = build_parser()
    args = parser.parse_args(["train", "tvflownet", "--run-dir", "r"])
    assert config_from_args(args) == TrainConfig()
    opts = {f.name for f in dataclasses.fields(TrainConfig) if "cli" in f.metadata}
    assert len(opts) >= 36 and opts <= set(vars(args))
    args = parser.parse_args(["train", "tvflownet", "--run-dir", "r", "--lr", "0.01", "--clip", "0", "--crop", "mixed",
                              "--arch-kwargs", '{"width": 4}', "--deterministic"])
    cfg = config_from_args(args)
    assert (cfg.lr, cfg.clip, cfg.crop, cfg.arch_kwargs, cfg.deterministic) == (0.01, None, "mixed", {"width": 4}, True)


# ---------------------------------------------------------------- data sources, generated images, augmentation

def _photo_folder(root, n=3):
    from pdeflow import io as pio
    root.mkdir(parents=True)
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        pio.write_image(root / f"p{i}.png", torch.rand(1, 20, 24, generator=g))
    return root


def test_data_sources_parse_from_the_config_and_the_command_line(tmp_path):
    from pdeflow.cli.tvflownet import config_from_args
    from pdeflow.training import config_to_dict

    folder = _photo_folder(tmp_path / "mine")
    assert TrainConfig().data == "builtin" and config_to_dict(TrainConfig())["data"] == "builtin"   # as old runs
    assert TrainConfig(data=("builtin",)).data == "builtin" == TrainConfig(data=["builtin"]).data
    cfg = TrainConfig(data=["builtin", folder])
    assert cfg.data == ("builtin", str(folder)) and T.data_sources(cfg) == ("builtin", str(folder))
    assert config_to_dict(cfg)["data"] == ["builtin", str(folder)]
    parser = build_parser()
    args = parser.parse_args(["train", "tvflownet", "--run-dir", "r", "--data", "builtin", str(folder),
                              "--synthetic-kinds", "disks", "smooth", "--aug-scale", "0.5", "--aug-dihedral"])
    cfg = config_from_args(args)
    assert cfg.data == ("builtin", str(folder.resolve())) and cfg.synthetic_kinds == ("disks", "smooth")
    assert (cfg.aug_scale, cfg.aug_gamma, cfg.aug_dihedral) == (0.5, 0.0, True)
    args.validate(args)
    # errors name the argument and the bad value
    args = parser.parse_args(["train", "tvflownet", "--run-dir", "r", "--data", "builtin", str(tmp_path / "nope")])
    with pytest.raises(SystemExit):
        args.validate(args)
    with pytest.raises(ValueError, match=f"data: '{tmp_path / 'nope'}' is neither 'builtin' nor a directory"):
        T.open_data(TrainConfig(data=("builtin", str(tmp_path / "nope"))))
    for bad, field in ((dict(val_data="builtin"), "val_data: expected None .* evaluation's"),
                       (dict(data=()), "data"), (dict(data=("builtin", 3)), "data"),
                       (dict(synthetic_kinds=("stars",)), "synthetic_kinds"), (dict(aug_scale=1.0), "aug_scale"),
                       (dict(aug_gamma=-1.0), "aug_gamma"), (dict(aug_dihedral=1), "aug_dihedral")):
        with pytest.raises(ValueError, match=f"TrainConfig.{field}"):
            T.check_config(TrainConfig(**bad))


def test_no_test_photo_or_medical_image_trains_or_validates(tmp_path):
    folder = _photo_folder(tmp_path / "mine")
    never = {f"builtin:{n}" for n in datasets.builtin_names("test") + datasets.builtin_names(kind="medical")}
    for data in ("builtin", ("builtin", str(folder))):
        tr, va = T.open_data(TrainConfig(data=data))
        names = tr.description["images"] + va.description["images"]
        assert len(names) == len(tr) + len(va) and not never & set(names)
        assert not set(tr.description["images"]) & set(va.description["images"]) and len(va) >= 1
    tr, va = T.open_data(TrainConfig(data=("builtin",), val_data=str(folder)))
    assert va.description["images"] == ["mine/p0.png", "mine/p1.png", "mine/p2.png"]
    assert len(tr) == len(datasets.builtin_names("train", kind="photo"))


def test_synthetic_images_mix_the_configured_kinds():
    g = lambda: T.step_generator(0, 2)  # noqa: E731
    old = T.synthetic_images(5, 32, g())                        # the kinds of before: disks then ellipses
    base = importlib.import_module("pdeflow.tvflownet._train_data").SYNTHETIC_SEED_BASE
    seed = base + int(torch.randint(2 ** 30, (1,), generator=g()))
    assert torch.equal(old, torch.cat([datasets.disks(32, 2, seed=seed, batch=3),
                                       datasets.ellipses(32, 2, seed=seed, batch=2)]))
    mixed = T.synthetic_images(5, 32, g(), kinds=tuple(datasets.SCENES))
    assert torch.equal(mixed, datasets.scenes(tuple(datasets.SCENES), 32, seed=seed, batch=5))
    assert 0 <= float(mixed.min()) and float(mixed.max()) <= 1
    u0, _ = T.sample_batch(tiny_config(batch_size=4, synthetic=1.0, synthetic_kinds=("smooth",)), None, g())
    assert u0.shape == (4, 1, 16, 16) and all(img.unique().numel() > 50 for img in u0)   # piecewise smooth


def test_augmentations_are_seeded_bounded_and_off_by_default():
    x = torch.rand(400, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    gen = g()
    assert T.augment(x, TrainConfig(), gen) is x                              # off: no change, no draw
    assert torch.equal(gen.get_state(), g().get_state())
    # intensity scale: one factor per image in [1 - F, 1 + F], mean 1 (the batch's mean scale stays cfg.scale)
    y = T.augment(x, TrainConfig(aug_scale=0.5), g())
    factor = (y / x).flatten(1)
    assert torch.allclose(factor, factor[:, :1].expand_as(factor), rtol=1e-5)
    f = factor[:, 0]
    assert 0.5 <= float(f.min()) and float(f.max()) <= 1.5 and abs(float(f.mean()) - 1) < 0.05
    assert float(f.std()) > 0.2                                                # spread over the range (U: 0.29)
    # contrast: a power exp(U[-G, G]) per image, which keeps [0, 1] and the order of the pixels
    y = T.augment(x, TrainConfig(aug_gamma=0.7), g())
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    gamma = (y.log() / x.log()).flatten(1)
    assert torch.allclose(gamma, gamma[:, :1].expand_as(gamma), rtol=1e-3)
    assert math.exp(-0.7) - 1e-4 <= float(gamma.min()) and float(gamma.max()) <= math.exp(0.7) + 1e-4
    # flips and quarter turns: each image one of its 8 symmetries, all 8 drawn
    D = importlib.import_module("pdeflow.tvflownet._train_data")
    y = T.augment(x, TrainConfig(aug_dihedral=True), g())
    found = set()
    for a, b in zip(x, y):
        k = [k for k in range(8) if torch.equal(D._dihedral(a, k), b)]
        assert k
        found.add(k[0])
    assert found == set(range(8))
    # all together: seeded
    cfg = TrainConfig(aug_scale=0.3, aug_gamma=0.2, aug_dihedral=True)
    assert torch.equal(T.augment(x, cfg, g()), T.augment(x, cfg, g()))


def test_three_steps_on_several_sources_with_generated_images_and_augmentation(tmp_path):
    folder = _photo_folder(tmp_path / "mine", 4)
    cfg = tiny_config(mode="supervised", steps=3, val_every=3, data=("builtin", str(folder)), synthetic=0.5,
                      synthetic_kinds=tuple(datasets.SCENES), aug_scale=0.5, aug_gamma=0.3, aug_dihedral=True)
    meta = json.loads(train(cfg, tmp_path / "run", quiet=True, command="x").read_text())
    prov = meta["provenance"]
    assert prov["train_config"]["data"] == ["builtin", str(folder)]
    assert prov["train_config"]["synthetic_kinds"] == list(datasets.SCENES)
    train_names, val_names = prov["data"]["train"]["images"], prov["data"]["validation"]["images"]
    assert any(n.startswith("mine/") for n in train_names + val_names) and not set(train_names) & set(val_names)
    never = {f"builtin:{n}" for n in datasets.builtin_names("test") + datasets.builtin_names(kind="medical")}
    assert not never & set(train_names + val_names)
    assert [r["step"] for r in _rows(tmp_path / "run")] == ["0", "1", "2"] and math.isfinite(prov["val_psnr"])


def test_a_run_saved_before_these_options_resumes_and_chooses_its_best_again(tmp_path):
    """A run directory written before several sources, generated kinds and augmentation existed
    (config.json and last.pt without those fields, a validation set of other images) resumes; its best
    model is chosen again on the new validation set."""
    cfg = tiny_config(steps=2, val_every=1)
    train(cfg, tmp_path, quiet=True)
    new = ("synthetic_kinds", "aug_scale", "aug_gamma", "aug_dihedral")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["data"] == "builtin"
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in saved.items() if k not in new}))
    last = load_checkpoint(tmp_path / "last.pt")
    last["config"] = {k: v for k, v in last["config"].items() if k not in new}
    last["best"]["metric"] = 1000.0                               # unbeatable on any set
    torch.save(last, tmp_path / "last.pt")
    val = load_checkpoint(tmp_path / "val_reference.pt")
    val["key"]["data"] = {"source": "builtin", "split": "test", "images": ["skimage/camera"]}   # the old rule
    torch.save(val, tmp_path / "val_reference.pt")
    with pytest.warns(UserWarning, match="validation set .* changed"):
        train(dataclasses.replace(cfg, steps=3), tmp_path, quiet=True)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["step"] == 3 and best["best"]["metric"] < 1000   # chosen again, on the new set
    assert load_checkpoint(tmp_path / "val_reference.pt")["key"]["data"]["sources"] == ["builtin"]


def test_a_refined_unet_grown_from_a_plain_one_computes_the_same_flow_until_trained(tmp_path):
    """init into a U-Net with a refinement block: only the block's parameters may be missing, and
    its zero last layer leaves the grown network's (u, phi) exactly those of the weights it grew from."""
    kw = dict(channels=(4, 6, 8), scales=3, skip=2)
    plain, grown = build_model("unet", **kw), build_model("unet", **kw, refine=5)
    ckpt = tmp_path / "plain.pt"
    torch.save({"config": {"arch": "unet", "arch_kwargs": kw}, "models": {"net": plain.state_dict()}, "step": 7},
               ckpt)
    assert T._init_from(grown, str(ckpt))["steps"] == 7
    x, t = torch.rand(2, 1, 13, 10, dtype=torch.float64), torch.tensor([0.05, 0.9], dtype=torch.float64)
    with torch.no_grad():
        (u0, p0), (u1, p1) = plain.double()(x, t), grown.double()(x, t)
    assert torch.equal(u0, u1) and torch.equal(p0, p1)
    # the block is really there and trainable: a step of Adam moves the output away
    opt = torch.optim.Adam(grown.refine.parameters(), lr=1e-2)
    u, phi = grown(x, t)
    (u.square().mean() + phi.square().mean()).backward()
    opt.step()
    with torch.no_grad():
        assert not torch.equal(grown(x, t)[0], u0)
    # the other way round (weights with a block into a plain net) is refused, as any mismatch
    with pytest.raises(ValueError, match="do not fit this run's architecture"):
        T._load_weights(build_model("unet", **kw), grown.state_dict(), "grown", kw)
    with pytest.raises(ValueError, match="refine must be >= 0"):
        build_model("unet", refine=-1)


def test_a_deeper_lgd_grown_from_a_shallower_one_computes_the_same_flow_until_trained(tmp_path):
    """init into an LGD with grown_steps more blocks: only those blocks may be missing, and their zero
    output layers leave the grown network's (u, phi) those of the weights it grew from."""
    kw = dict(hidden=6, dim_z=2, edge_width=0)
    shallow, deep = build_model("lgd", n_steps=2, **kw), build_model("lgd", n_steps=4, grown_steps=2, **kw)
    assert deep.config["grown_steps"] == 2 and "grown_steps" not in shallow.config
    T._load_weights(deep, shallow.state_dict(), "shallow", kw)
    x, t = torch.rand(2, 1, 11, 9, dtype=torch.float64), torch.tensor([0.1, 0.7], dtype=torch.float64)
    with torch.no_grad():
        (u0, p0), (u1, p1) = shallow.double()(x, t), deep.double()(x, t)
    assert torch.equal(u0, u1) and torch.equal(p0, p1)
    opt = torch.optim.Adam(deep.blocks[2:].parameters(), lr=1e-2)      # the new blocks train
    for _ in range(2):                 # the first step moves only their zero output layers
        opt.zero_grad()
        u, phi = deep(x, t)
        (u.square().mean() + phi.square().mean()).backward()
        opt.step()
    with torch.no_grad():
        assert not torch.equal(deep(x, t)[0], u0)
    assert deep.blocks[2][0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="do not fit this run's architecture"):   # a block missing elsewhere
        T._load_weights(build_model("lgd", n_steps=4, grown_steps=1, **kw), shallow.state_dict(), "shallow", kw)
    with pytest.raises(ValueError, match="grown_steps must be in"):
        build_model("lgd", n_steps=3, grown_steps=3)


# ---------------------------------------------------------------- gradient matching (grad_weight)

def test_reference_vjp_is_the_derivative_of_the_reference_flow():
    g = torch.Generator().manual_seed(1)
    u0, w = 5 * torch.rand(2, 1, 8, 8, generator=g, dtype=torch.float64), torch.randn(2, 1, 8, 8, generator=g,
                                                                                       dtype=torch.float64)
    t, v, h = torch.tensor([0.2, 0.4]), torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64), 1e-4
    cfg = TrainConfig(grad_ref_dt=0.1, grad_ref_tol=1e-10, val_max_iter=20_000)
    vjp = T.reference_vjp(u0, t, w, cfg)

    def f(x):  # <u_ref(t), w>, each crop at its own time
        out = tv_flow(x, [0.2, 0.4], dt=0.1, tol=1e-12, max_iter=20_000)
        return float((out[0, 0] * w[0]).sum() + (out[1, 1] * w[1]).sum())
    fd = (f(u0 + h * v) - f(u0 - h * v)) / (2 * h)
    assert float((vjp * v).sum()) == pytest.approx(fd, rel=1e-4)


@pytest.mark.slow
def test_gradient_term_trains_the_models_vjp_towards_the_references():
    torch.manual_seed(0)
    cfg = tiny_config(mode="supervised", grad_weight=1.0, grad_crops=2, grad_ref_dt=0.1, grad_ref_tol=1e-4)
    net = build_model("semiresnet", **TINY, input_eps=0.3)   # a bounded derivative of the normalised input
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    images, _ = T.open_data(cfg)
    u0, t = T.sample_batch(cfg, images, T.step_generator(0, 0))
    ref = T.supervised_reference(u0, t, cfg)
    grads = []
    for _ in range(20):
        loss, terms = T.supervised_loss(net, u0, t, cfg, reference=ref)
        assert set(terms) == {"sup_u", "sup_grad"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        grads.append(terms["sup_grad"])
    assert grads[-1] < 0.5 * grads[0]


def test_check_config_takes_the_gradient_term_in_supervised_mode_only():
    T.check_config(tiny_config(mode="supervised", grad_weight=0.1))
    for bad in (dict(mode="unsupervised", grad_weight=0.1), dict(mode="supervised", grad_weight=-1.0),
                dict(mode="supervised", grad_crops=-1), dict(mode="supervised", grad_ref_tol=0.0)):
        with pytest.raises(ValueError):
            T.check_config(tiny_config(**bad))


def test_an_ensemble_is_fine_tuned_end_to_end_from_its_model_file(tmp_path):
    from pdeflow.io import save_model
    from pdeflow.tvflownet import Ensemble
    torch.manual_seed(0)
    ens = Ensemble([build_model("semiresnet", **TINY), build_model("lgd", n_steps=2, dim_z=2, hidden=4)], [1, 2])
    save_model(ens.state_dict(), tmp_path / "ens", config={"model": ens.config, "scale": 5.0, "t_max": 1.0})
    kw = {k: v for k, v in ens.config.items() if k != "arch"}
    kw["members"] = [dict(m, input_eps=0.1) for m in kw["members"]]
    cfg = tiny_config(mode="supervised", arch="ensemble", arch_kwargs=kw, init=str(tmp_path / "ens.json"), steps=2,
                      val_every=2, grad_weight=0.1, grad_crops=1, grad_ref_dt=0.1, grad_ref_tol=1e-3)
    model = load(train(cfg, tmp_path / "run", quiet=True))
    assert model.config["weights"] == pytest.approx([1 / 3, 2 / 3])
    assert [m.config["input_eps"] for m in model.members] == [0.1, 0.1]
    assert all(r["sup_grad"] != "" for r in _rows(tmp_path / "run"))
