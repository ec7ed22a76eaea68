"""IEL experiment: data sets, U-Net, one run, a resumable grid, the CLI."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from _nifti import write_nifti
from pdeflow.cli import main
from pdeflow.evaluate.iel import (
    ExperimentSpec,
    RunConfig,
    boundary_ratio,
    evaluate,
    plan_runs,
    prepare_data,
    run_experiment,
    train_run,
)
from pdeflow.iel import SegmentationUNet
from pdeflow.iel import datasets as ds
from pdeflow.training import RunConfigError

TINY = dict(dataset="synthetic", width=4, depth=2, crop=32, batch_size=2, epochs=2, steps_per_epoch=2)


@pytest.fixture(scope="module")
def tiny_data():
    return ds.synthetic_blobs(n_train=2, n_val=2, size=32, seed=0)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

def test_dsb2018_from_the_stardist_wheel_disjoint_regions():
    import tifffile
    d = ds.dsb2018()
    img_path, mask_path = ds._stardist_files()
    mask = tifffile.imread(mask_path)
    assert d.num_classes == 2
    assert d.train_images[0].shape == (1, 512, 368) and d.train_labels[0].shape == (512, 368)
    assert d.val_images.shape == (4, 1, 128, 128) and d.val_labels.dtype == torch.int64
    # validation tiles are exactly columns 384..511 of the mask, training columns 0..367
    assert torch.equal(d.val_labels[1], torch.from_numpy((mask[128:256, 384:] > 0).astype(np.int64)))
    assert torch.equal(d.train_labels[0], torch.from_numpy((mask[:, :368] > 0).astype(np.int64)))
    assert 0.0 <= float(d.train_images[0].min()) and float(d.val_images.max()) <= 1.0
    assert 0.1 < float(d.val_labels.float().mean()) < 0.3


def test_dsb2018_missing_stardist_names_the_install_command(monkeypatch):
    monkeypatch.setattr(ds.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps stardist"):
        ds.dsb2018()


def test_read_nifti_and_mricron_split_on_a_generated_volume(tmp_path):
    rng = np.random.default_rng(0)
    nz, ny, nx = 80, 20, 24
    vol = rng.integers(1, 255, (nz, ny, nx), dtype=np.uint8)
    bet = vol.copy()
    bet[:, :4] = 0                                 # "skull"
    write_nifti(tmp_path / "ch2.nii.gz", vol)
    write_nifti(tmp_path / "ch2bet.nii.gz", bet)
    np.testing.assert_array_equal(ds.read_nifti(tmp_path / "ch2.nii.gz"), vol)
    assert ds.mricron_brain(tmp_path, val_step=2).val_images.shape == (10, 1, 32, 32)
    d = ds.mricron_brain(tmp_path, val_step=1)
    assert d.val_images.shape == (20, 1, 32, 32)   # every 4th block of 10: slices 30-39 and 70-79
    assert len(d.train_images) == 80 - 20 - 3      # minus slices 29, 40 and 69, next to validation
    # train and validation slices are different slices and never neighbours
    val_set = {bytes(v[0].numpy().tobytes()) for v in torch.from_numpy(vol.astype(np.float32) / 255)[:, None]
               [[z for z in range(80) if (z // 10) % 4 == 3]]}
    for im in d.train_images:
        assert bytes(im.numpy().tobytes()) not in val_set
    assert d.train_labels[0][:4].sum() == 0 and d.train_labels[0][4:].all()


def test_mricron_missing_gives_the_fetch_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        ds.mricron_brain(tmp_path)


def test_mricron_real_data_if_present():
    try:
        d = ds.mricron_brain()
    except FileNotFoundError as e:
        pytest.skip(f"optional dataset mricron-data not fetched (`make data`): {e}")
    assert d.val_images.shape[1:] == (1, 224, 192)
    assert len(d.train_images) > 1.5 * d.val_images.shape[0] * 0.8
    assert 0.1 < float(d.val_labels.float().mean()) < 0.6


# ---------------------------------------------------------------------------
# U-Net
# ---------------------------------------------------------------------------

def test_unet_shapes_norms_and_errors():
    net = SegmentationUNet(1, 3, width=4, depth=3)
    assert net(torch.rand(2, 1, 16, 20)).shape == (2, 3, 16, 20)
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"InstanceNorm2d", "LeakyReLU", "ConvTranspose2d", "MaxPool2d"} <= kinds
    assert "BatchNorm2d" not in kinds
    # the paper's size: width 64, depth 5 (64 ... 1024 channels) is about 31 M parameters
    assert 30e6 < sum(p.numel() for p in SegmentationUNet(3, 2).parameters()) < 32e6
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.rand(1, 1, 18, 16))
    with pytest.raises(ValueError, match=r"shape \(B, 1, H, W\)"):
        net(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match="depth must be an int >= 2"):
        SegmentationUNet(depth=1)


def test_evaluate_perfect_and_empty_predictions(tiny_data):
    class Oracle(torch.nn.Module):
        def __init__(self, labels):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.labels = labels

        def forward(self, x):
            return torch.nn.functional.one_hot(self.labels[: x.shape[0]], 2).permute(0, 3, 1, 2).float()

    d = tiny_data
    assert torch.equal(evaluate(Oracle(d.val_labels), d.val_images, d.val_labels, 2, batch_size=2),
                       torch.ones(2))
    none = evaluate(Oracle(torch.zeros_like(d.val_labels)), d.val_images, d.val_labels, 2)
    assert torch.equal(none, torch.zeros(2))
    # boundary length ratio: 1 for the truth, 0 for an empty prediction, > 1 with specks added
    assert boundary_ratio(Oracle(d.val_labels), d.val_images, d.val_labels) == pytest.approx(1.0)
    assert boundary_ratio(Oracle(torch.zeros_like(d.val_labels)), d.val_images, d.val_labels) == 0.0
    specks = d.val_labels.clone()
    specks[:, ::8, ::8] = 1 - specks[:, ::8, ::8]
    assert boundary_ratio(Oracle(specks), d.val_images, d.val_labels) > 1.5


# ---------------------------------------------------------------------------
# runs and grids
# ---------------------------------------------------------------------------

def test_noise_is_shared_by_baseline_and_iel_of_a_seed(tiny_data):
    a, fa = prepare_data(RunConfig(noise="blocks", seed=3, **TINY), tiny_data)
    b, fb = prepare_data(RunConfig(noise="blocks", seed=3, iel=True, **TINY), tiny_data)
    c, _ = prepare_data(RunConfig(noise="blocks", seed=4, **TINY), tiny_data)
    assert all(torch.equal(x, y) for x, y in zip(a.train_labels, b.train_labels))
    assert not all(torch.equal(x, y) for x, y in zip(a.train_labels, c.train_labels))
    assert fa == fb and 0.02 < fa < 0.2
    assert torch.equal(a.val_labels, tiny_data.val_labels)       # validation stays clean


def test_train_run_result_and_resume(tmp_path, tiny_data, monkeypatch):
    import copy

    from pdeflow.evaluate import _iel_run as _run  # the module of train_run (one run of the experiment)
    torch.set_num_threads(1)
    seen = []                                   # the network train_run measures its boundary ratio on

    def recording_boundary_ratio(model, images, labels, *args, **kwargs):
        seen.append((copy.deepcopy(model), images, labels))
        return boundary_ratio(model, images, labels, *args, **kwargs)

    monkeypatch.setattr(_run, "boundary_ratio", recording_boundary_ratio)
    cfg = RunConfig(noise="blocks", iel=True, seed=0, **TINY)
    res = train_run(cfg, tmp_path / "r", data=tiny_data)
    assert len(res["val_dice"]) == 2 and res["final_dice"] == res["val_dice"][-1]
    assert 0.0 <= res["final_dice"] <= 1.0 and res["steps_per_epoch"] == 2
    # the reported ratio is the final network's, on the clean validation set (the one its dice is measured on)
    (model, images, labels), = seen
    assert torch.equal(images, tiny_data.val_images) and torch.equal(labels, tiny_data.val_labels)
    assert res["final_boundary_ratio"] == boundary_ratio(model, images, labels)
    np.testing.assert_allclose(evaluate(model, images, labels, tiny_data.num_classes).numpy(),
                               res["final_dice_per_image"], rtol=1e-6)
    np.testing.assert_allclose(np.mean(res["final_dice_per_image"]), res["final_dice"], rtol=1e-6)
    # a finished run is returned, not retrained; a different config in its folder is an error
    assert train_run(cfg, tmp_path / "r", data=tiny_data) == res
    with pytest.raises(RunConfigError):
        train_run(dataclasses.replace(cfg, dt=0.05), tmp_path / "r", data=tiny_data)
    # killed after its last checkpoint but before result.json: resumes at the end, same curve
    (tmp_path / "r" / "result.json").unlink()
    again = train_run(cfg, tmp_path / "r", data=tiny_data)
    assert again["val_dice"] == res["val_dice"]


def test_plan_and_bad_specs():
    base = RunConfig(noise="blocks", **TINY)
    runs = plan_runs(ExperimentSpec("compare", base, seeds=(0, 1)))
    assert [n for n, _, _ in runs][:4] == ["clean-baseline-s0", "clean-iel-dt0.025-n30-s0",
                                           "noisy-baseline-s0", "noisy-iel-dt0.025-n30-s0"]
    assert len(runs) == 8 and sum(c.iel for _, _, c in runs) == 4
    sweep = plan_runs(ExperimentSpec("sweep", base, seeds=(0,), dts=(0.01, 0.02), layers=(5, 10, 20)))
    assert len(sweep) == 1 + 6 and all(c.noise == "blocks" for _, _, c in sweep)
    with pytest.raises(ValueError, match="one dt and one layers"):
        plan_runs(ExperimentSpec("compare", base, dts=(0.01, 0.02)))
    with pytest.raises(ValueError, match="noisy-label setting"):
        plan_runs(ExperimentSpec("compare", dataclasses.replace(base, noise="none")))
    with pytest.raises(ValueError, match="crop must be"):
        plan_runs(ExperimentSpec("compare", dataclasses.replace(base, crop=31)))


def test_grid_resumes_and_aggregates(tmp_path, tiny_data):
    torch.set_num_threads(1)
    spec = ExperimentSpec("compare", RunConfig(noise="blocks", **TINY), seeds=(0, 1))
    logs = []
    # two shards: the first leaves the grid incomplete and writes no summary
    assert run_experiment(spec, tmp_path, shard=(0, 2), data=tiny_data, log=logs.append) is None
    assert not (tmp_path / "summary.json").exists()
    summary = run_experiment(spec, tmp_path, shard=(1, 2), data=tiny_data, log=logs.append)
    for name in ("summary.json", "table.md", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = {(r["labels"], r["method"]): r for r in summary["rows"]}
    assert set(rows) == {("clean", "baseline"), ("clean", "iel"), ("noisy", "baseline"), ("noisy", "iel")}
    r = rows[("noisy", "iel")]
    assert r["final_dice"]["n"] == 2 and len(r["curve_mean"]) == 2
    base = rows[("noisy", "baseline")]["final_dice"]["values"]
    np.testing.assert_allclose(r["final_minus_baseline"]["values"],
                               np.array(r["final_dice"]["values"]) - np.array(base))
    assert rows[("clean", "baseline")]["label_noise_fraction"]["mean"] == 0.0
    # again: nothing is trained, the same summary comes back
    n_logs = len(logs)
    assert run_experiment(spec, tmp_path, data=tiny_data, log=logs.append) == summary
    assert not any("..." in line for line in logs[n_logs:])
    with pytest.raises(RunConfigError, match="different experiment"):
        run_experiment(dataclasses.replace(spec, seeds=(0, 2)), tmp_path, data=tiny_data)


def test_sweep_writes_a_heatmap(tmp_path, tiny_data):
    torch.set_num_threads(1)
    spec = ExperimentSpec("sweep", RunConfig(noise="windows", noise_size=2, **dict(TINY, epochs=1)),
                          seeds=(0,), dts=(0.01, 0.05), layers=(2,))
    summary = run_experiment(spec, tmp_path, data=tiny_data, log=lambda s: None)
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert len(summary["rows"]) == 3
    assert "IELs (dt 0.05, 2 layers)" in (tmp_path / "table.md").read_text()


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

CLI_TINY = ["iel-experiment", "--dataset", "synthetic", "--preset", "small", "--width", "4", "--depth", "2",
            "--crop", "32", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "1", "--quiet"]


def test_cli_runs_and_resumes(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "exp"
    assert main(CLI_TINY + ["--seeds", "0", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "final Dice" in text and "| noisy | IELs (dt 0.025, 30 layers)" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["base_config"]["width"] == 4 and summary["seeds"] == [0, 1]
    assert main(CLI_TINY + ["--seeds", "0", "1", "--out", str(out)]) == 0     # resumes: nothing to do


@pytest.mark.parametrize("extra, match", [
    (["--dt", "0"], "--dt: expected a finite number > 0"),
    (["--layers", "0"], "--layers: expected a finite integer > 0"),
    (["--dt", "0.01", "0.02"], "compare mode takes one value each"),
    (["--seeds", "1", "1"], "seeds must be distinct"),
    (["--crop", "31"], "--crop"),
    (["--noise-keep", "1.5"], "--noise-keep"),
    (["--data-path", "/nonexistent"], "--data-path"),
    (["--device", "nonsense"], "--device"),
])
def test_cli_bad_arguments(tmp_path, capsys, extra, match):
    assert main(CLI_TINY + ["--out", str(tmp_path / "o")] + extra) == 2
    err = capsys.readouterr().err
    assert match in err.strip().splitlines()[-1]          # argparse: usage, then one error line
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(CLI_TINY + ["--out", str(tmp_path)]) == 2
    assert "holds no IEL experiment" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_cli_missing_optional_dataset_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PDEFLOW_MRICRON_DIR", str(tmp_path))
    args = [a if a != "synthetic" else "mricron" for a in CLI_TINY]
    assert main(args + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "make data" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
