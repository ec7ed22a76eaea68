"""The multi-class IEL sets (AAL lobes on Colin27, ICBM152 tissue), mIoU, the paper's noise and preset."""

import numpy as np
import pytest
import torch

from _nifti import write_nifti
from pdeflow.cli import build_parser
from pdeflow.cli.iel import spec_from_args
from pdeflow.evaluate.iel import RunConfig, evaluate, train_run
from pdeflow.iel import datasets as ds
from pdeflow.iel import window_noise
from pdeflow.metrics import miou


def test_aal_lobes_groups_regions_by_code_on_a_generated_volume(tmp_path):
    nz, ny, nx = 40, 16, 16
    write_nifti(tmp_path / "ch2.nii.gz", np.full((nz, ny, nx), 100, dtype=np.uint8))
    aal = np.zeros((nz, ny, nx), dtype=np.uint8)
    aal[:, 2:6, 2:6] = 1       # code 2001 (precentral) -> frontal
    aal[:, 8:12, 2:6] = 2      # code 9001 (cerebellum crus 1) -> cerebellum
    aal[:, 8:12, 8:12] = 3     # code 3001 (insula) -> limbic+insula
    write_nifti(tmp_path / "aal.nii.gz", aal)
    (tmp_path / "aal.nii.txt").write_text("1 Precentral_L 2001\n2 Cerebelum_Crus1_L 9001\n3 Insula_L 3001\n")
    d = ds.aal_lobes(tmp_path)
    assert d.num_classes == 8 and d.val_images.shape == (5, 1, 16, 16)   # slices 30, 32, .., 38
    lab = d.train_labels[0]
    assert int(lab[3, 3]) == 1 and int(lab[9, 3]) == 7 and int(lab[9, 9]) == 5 and int(lab[0, 0]) == 0
    assert ds.AAL_LOBES[7] == "cerebellum"


def test_missing_data_names_the_make_target(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data"):
        ds.aal_lobes(tmp_path)
    with pytest.raises(FileNotFoundError, match="make install"):
        ds.icbm152_tissue(tmp_path)


def test_aal_real_data_if_present():
    try:
        d = ds.load_dataset("aal")
    except FileNotFoundError as e:
        pytest.skip(f"optional dataset mricron-data not fetched (`make data`): {e}")
    assert d.num_classes == 8 and d.train_images[0].shape == (1, 217, 181)
    assert d.val_images.shape[1:] == (1, 224, 192) and d.val_labels.shape[1:] == (224, 192)
    counts = torch.bincount(torch.cat([lab.flatten() for lab in d.train_labels]), minlength=8)
    assert counts.numel() == 8 and (counts > 0).all()          # every lobe class occurs in training
    assert set(d.val_labels.unique().tolist()) <= set(range(8))


def test_icbm152_real_data_if_present():
    try:
        d = ds.load_dataset("icbm152")
    except FileNotFoundError as e:
        pytest.skip(f"nilearn's template files not installed (`make install`): {e}")
    assert d.num_classes == 3 and d.train_images[0].shape == (1, 233, 197)
    assert d.val_images.shape[1:] == (1, 240, 208)
    assert 0.0 <= float(d.val_images.min()) and float(d.val_images.max()) <= 1.0
    frac = torch.bincount(d.val_labels.flatten(), minlength=3).double() / d.val_labels.numel()
    assert frac[1] > 0.05 and frac[2] > 0.05                    # grey and white matter both present


def test_miou_against_a_hand_computed_case():
    target = torch.tensor([[0, 1, 1], [2, 2, 1], [0, 2, 2]])
    pred = torch.tensor([[0, 1, 2], [2, 2, 1], [1, 2, 0]])
    # class 1: intersection 2, union 4; class 2: 3 and 5; class 0: 1 and 3
    assert torch.allclose(miou(pred, target), torch.tensor((0.5 + 0.6) / 2))
    assert torch.allclose(miou(pred, target, exclude_background=False), torch.tensor((1 / 3 + 0.5 + 0.6) / 3))
    assert torch.allclose(miou(pred, target, per_class=True), torch.tensor([0.5, 0.6]))


def test_evaluate_reports_miou_per_image():
    labels = torch.tensor([[[0, 1], [2, 2]], [[0, 1], [1, 1]]])
    pred = torch.tensor([[[0, 1], [2, 1]], [[0, 1], [1, 1]]])

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x):
            return self.w * torch.nn.functional.one_hot(pred[: len(x)], 3).permute(0, 3, 1, 2).float()

    got = evaluate(Fixed(), torch.zeros(2, 1, 2, 2), labels, 3, metric="miou")
    # image 0: class 1 IoU 1/2, class 2 IoU 1/2; image 1: class 1 exact, class 2 absent from both (1)
    assert torch.allclose(got, torch.tensor([0.5, 1.0]))


def test_train_run_records_miou(tmp_path):
    cfg = RunConfig(dataset="synthetic", width=4, depth=2, crop=16, batch_size=2, epochs=1, steps_per_epoch=1)
    res = train_run(cfg, tmp_path, data=ds.synthetic_blobs(2, 2, 16))
    assert len(res["final_miou_per_image"]) == 2
    assert res["final_miou"] == pytest.approx(float(np.mean(res["final_miou_per_image"])))
    # IoU <= Dice image by image (IoU = D / (2 - D))
    assert all(i <= d + 1e-6 for i, d in zip(res["final_miou_per_image"], res["final_dice_per_image"]))


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_paper_window_noise_covers_about_ten_percent(size):
    # many classes: a window almost always gets a class other than the label, so changed ~ covered
    lab = torch.zeros(1, 400, 400, dtype=torch.long)
    out = window_noise(lab, 1000, size=size, area=0.1, generator=size)
    covered = float((out != lab).float().mean())
    # round(0.1 * H * W / s^2) windows at random positions overlap: 1 - exp(-0.1) = 0.095 expected
    assert 0.088 < covered <= 0.1


def test_paper_preset_and_explicit_options():
    p = build_parser()
    args = p.parse_args(["iel-experiment", "--preset", "paper", "--dataset", "synthetic", "--out", "x"])
    b = spec_from_args(args).base
    assert (b.width, b.depth, b.epochs, b.lr, b.dt) == (64, 5, 20, 1e-4, 0.025)
    assert 20 <= b.layers <= 35
    args = p.parse_args(["iel-experiment", "--preset", "paper", "--lr", "0.001", "--dataset", "synthetic",
                         "--out", "x"])
    assert spec_from_args(args).base.lr == 1e-3
    args = p.parse_args(["iel-experiment", "--dataset", "synthetic", "--out", "x"])
    assert spec_from_args(args).base.lr == 1e-3                # the full preset's
