"""``pdeflow denoise|flow|spectral|inpaint`` on volumes: detection (:func:`pdeflow.io.is_volume`), the
[0, 1] mapping and back, the spacing (header, --spacing), the written formats, the slice figures, a real CT
series (pydicom's test files), and the refusals (one line naming the argument, no output)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pdeflow.cli import main
from pdeflow.datasets import ball, shepp_logan_3d
from pdeflow.errors import UserInputError
from pdeflow.inpaint import inpaint_diffusion, random_mask
from pdeflow.io import is_volume, read_volume, write_image, write_volume
from pdeflow.tv import rof, tv_flow

SPACING = (2.0, 1.0, 1.0)


def _ct_series() -> Path:
    from pydicom.data import get_testdata_file

    # pydicom's test files: 5 CT slices (16 x 16 pixels of 0.488 mm, 2.5 mm apart) of one series
    return Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / "98892001" / "CT5N"


@pytest.fixture
def phantom():
    """The 3-D Shepp-Logan phantom (12^3) in made-up units (-200 to 800), plus a little seeded noise."""
    v = shepp_logan_3d(12).double()
    v = v + 0.05 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1), dtype=v.dtype)
    return (1000.0 * v - 200.0).float()


@pytest.fixture
def tif(tmp_path, phantom):
    return write_volume(tmp_path / "vol.tif", phantom, spacing=SPACING)


def _units(v, ref):
    """``v`` in [0, 1] units of the min-max map of ``ref`` back in ref's units."""
    lo, hi = float(ref.min()), float(ref.max())
    return v.double() * (hi - lo) + lo


def _unit(ref):
    lo, hi = float(ref.min()), float(ref.max())
    return ((ref.double() - lo) / (hi - lo)).float()


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _refused(capsys, argv, *needles):
    """Exit status 2 and one line on stderr naming what it should."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    for n in needles:
        assert n in err, err
    return err


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------

def test_is_volume_tells_volumes_from_images(tmp_path):
    from pydicom.data import get_testdata_file

    np.save(tmp_path / "v.npy", np.zeros((3, 4, 5)))
    np.save(tmp_path / "flat.npy", np.zeros((1, 4, 5)))
    write_volume(tmp_path / "stack.tif", torch.zeros(3, 4, 5))
    write_image(tmp_path / "img.png", torch.zeros(1, 4, 5))
    import tifffile
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((4, 5), dtype=np.float32))
    assert is_volume(tmp_path / "v.npy") and is_volume(tmp_path / "stack.tif") and is_volume(_ct_series())
    assert is_volume(tmp_path / "any.nii.gz") is False          # a NIfTI name, but no such file
    assert is_volume(get_testdata_file("rtdose.dcm"))           # a multi-frame DICOM file
    for name in ("flat.npy", "img.png", "one.tif"):
        assert not is_volume(tmp_path / name), name
    assert not is_volume(get_testdata_file("CT_small.dcm"))     # one slice


# ---------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------

@pytest.mark.slow   # a 3-D rof through files; test_image_spacing_enters_2d_rof keeps spacing in make test
def test_denoise_volume_is_3d_rof_with_the_header_spacing_in_the_file_units(tmp_path, tif, phantom, capsys):
    out = tmp_path / "d"
    assert main(["denoise", str(tif), "--lam", "0.05", "0.2", "--tol", "1e-5", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["denoise.csv", "denoise.png", "u_lam0.05.tif", "u_lam0.20.tif"]
    assert "spacing (dz, dy, dx) = (2, 1, 1) mm from the header" in capsys.readouterr().out
    u, spacing = read_volume(out / "u_lam0.05.tif")
    assert [round(h, 6) for h in spacing] == list(SPACING)               # the spacing is written back
    # the reference: float64, a gap 10x tighter than the command's
    want = _units(rof(_unit(phantom).double(), 0.05, spacing=SPACING, tol=1e-6), phantom)
    assert (u.double() - want).abs().max() <= 1e-3 * 1000               # 1e-3 of the range
    unit = _units(rof(_unit(phantom).double(), 0.05, ndim=3, tol=1e-6), phantom)
    assert (unit - want).abs().max() > 20 * (u.double() - want).abs().max()   # the spacing mattered
    rows = _rows(out / "denoise.csv")
    assert [float(r["lambda"]) for r in rows] == [0.05, 0.2] and all(float(r["gap"]) <= 1e-5 for r in rows)
    assert (out / "denoise.png").read_bytes()[1:4] == b"PNG"


def test_spacing_overrides_the_header_and_is_written(tmp_path, tif, phantom):
    out = tmp_path / "d"
    assert main(["denoise", str(tif), "--lam", "0.05", "--tol", "1e-5", "--spacing", "1", "1", "1",
                 "--volume-format", "npy", "--out", str(out)]) == 0
    u = torch.from_numpy(np.load(out / "u_lam0.05.npy")).double()       # .npy: the array only
    want = _units(rof(_unit(phantom).double(), 0.05, ndim=3, tol=1e-6), phantom)
    assert (u - want).abs().max() <= 1.0


def test_flow_volume_keeps_the_mean_and_matches_the_api(tmp_path, phantom):
    src = tmp_path / "vol.npy"
    np.save(src, phantom.numpy())
    out = tmp_path / "f"
    assert main(["flow", str(src), "--times", "0.1", "0.3", "--dt", "0.1", "--tol", "1e-4", "--spacing", "2", "1",
                 "1", "--save-npy", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["flow.png", "u.npy", "u_t0.10.npy", "u_t0.30.npy"]
    u = torch.from_numpy(np.load(out / "u_t0.30.npy")).double()
    assert abs(float(u.mean()) - float(phantom.double().mean())) <= 1e-3 * 1000   # TV flow keeps the mass
    assert float(u.std()) < float(phantom.double().std())                         # and smooths
    ref = _units(tv_flow(_unit(phantom), [0.3], dt=0.1, tol=1e-4, spacing=SPACING)[0], phantom)
    assert (u - ref).abs().max() <= 1e-3 * 1000
    assert np.load(out / "u.npy").shape == (2, 12, 12, 12)


@pytest.mark.slow   # a 3-D spectral run; tests/tv/test_spectral.py keeps the exactness
def test_spectral_volume_bands_and_residual_give_back_the_input(tmp_path, tif, phantom):
    out = tmp_path / "s"
    # 7 steps: the dyadic bands [1, 2), [2, 4), [4, 8) (in units of dt) hold every time step
    assert main(["spectral", str(tif), "--dt", "0.1", "--steps", "7", "--out", str(out)]) == 0
    bands = sorted(out.glob("band_*.tif"))
    assert len(bands) == 3 and (out / "spectral.png").exists() and len(_rows(out / "spectrum.csv")) == 7
    total = read_volume(out / "residual.tif")[0].double() + sum(read_volume(b)[0].double() for b in bands)
    assert (total - phantom.double()).abs().max() <= 1e-4 * 1000        # float32 round-off, in units of 1000


def test_inpaint_volume_keeps_known_voxels_and_fills_by_3d_diffusion(tmp_path, phantom, capsys):
    pytest.importorskip("nibabel")
    src = write_volume(tmp_path / "vol.nii.gz", phantom, spacing=SPACING)
    m = random_mask(phantom.shape, 0.2, generator=0).float()
    mask = write_volume(tmp_path / "mask.npy", m)
    out = tmp_path / "i"
    assert main(["inpaint", str(src), "--mask", str(mask), "--tol", "1e-8", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["errors.csv", "inpaint_figure.png", "inpainted.nii.gz"]
    u, spacing = read_volume(out / "inpainted.nii.gz")
    assert spacing == SPACING
    known = m > 0
    assert (u[known] - phantom[known]).abs().max() <= 1e-3
    want = _units(inpaint_diffusion(_unit(phantom).double(), m.double(), spacing=SPACING, tol=1e-10), phantom)
    assert (u.double() - want).abs().max() <= 1e-2
    row = _rows(out / "errors.csv")[0]
    assert row["method"] == "diffusion" and abs(float(row["density"]) - float(m.mean())) < 1e-6
    assert row["ssim"] == "" and float(row["psnr"]) > 10
    assert "3-D" in capsys.readouterr().out


@pytest.mark.slow   # volume masks and inpaintings through files
@pytest.mark.parametrize("method", ["analytic", "random"])
def test_mask_volume_keeps_exactly_the_asked_voxels_and_inpaint_reads_it(tmp_path, tif, phantom, method):
    out = tmp_path / "m"
    assert main(["mask", str(tif), "--density", "0.1", "--method", method, "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["errors.csv", "inpainted.tif", "mask.tif", "mask_figure.png"]
    m, spacing = read_volume(out / "mask.tif")
    assert int(m.sum()) == round(0.1 * phantom.numel()) and set(m.unique().tolist()) == {0.0, 1.0}
    assert [round(h, 6) for h in spacing] == list(SPACING)
    rec = tmp_path / "r"
    assert main(["inpaint", str(tif), "--mask", str(out / "mask.tif"), "--out", str(rec)]) == 0
    a, b = read_volume(out / "inpainted.tif")[0], read_volume(rec / "inpainted.tif")[0]
    assert torch.equal(a, b)                                  # the same 3-D diffusion from the same mask
    assert float(_rows(out / "errors.csv")[0]["psnr"]) == float(_rows(rec / "errors.csv")[0]["psnr"])


@pytest.mark.slow   # a real CT series through two commands
def test_real_ct_series_through_denoise_and_inpaint(tmp_path, capsys):
    series = _ct_series()
    assert sorted(p.name for p in series.iterdir()) == ["2062", "2392", "2693", "3023", "3353"]
    ct, spacing = read_volume(series)
    assert tuple(ct.shape) == (5, 16, 16)
    out = tmp_path / "den"
    assert main(["denoise", str(series), "--lam", "0.05", "--out", str(out)]) == 0
    u, sp = read_volume(out / "u_lam0.05.tif")                           # DICOM in, TIFF out
    assert u.shape == ct.shape and np.allclose(sp, spacing, rtol=1e-6)
    assert float(u.min()) >= float(ct.min()) - 1e-3 and float(u.max()) <= float(ct.max()) + 1e-3   # in HU
    assert "mm from the header" in capsys.readouterr().out
    mask = write_volume(tmp_path / "mask.tif", random_mask(ct.shape, 0.3, generator=0).float())
    out = tmp_path / "inp"
    assert main(["inpaint", str(series), "--mask", str(mask), "--volume-format", "npy", "--out", str(out)]) == 0
    assert np.load(out / "inpainted.npy").shape == (5, 16, 16)


def test_image_spacing_enters_2d_rof(tmp_path):
    y, x = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 24), indexing="ij")
    img = (0.2 + 0.6 * ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1)).float()
    src = write_image(tmp_path / "in.png", img[None], bits=16)
    out = tmp_path / "d"
    assert main(["denoise", str(src), "--lam", "0.1", "--spacing", "3", "1", "--out", str(out)]) == 0
    from pdeflow.io import read_image

    f = read_image(src, grey=True).double()
    got = read_image(out / "u_lam0.10.png", grey=True).double()
    want = rof(f, 0.1, spacing=(3.0, 1.0), tol=1e-6).clamp(0, 1)
    unit = rof(f, 0.1, tol=1e-6).clamp(0, 1)
    assert (got - want).abs().max() <= 1.5 / 255 < (unit - want).abs().max()


# ---------------------------------------------------------------------------
# Refusals: one line naming the argument, nothing written
# ---------------------------------------------------------------------------

def test_a_dicom_series_with_a_missing_slice_is_refused(tmp_path, capsys):
    series = tmp_path / "ct"
    shutil.copytree(_ct_series(), series)
    (series / "2693").unlink()                                          # the middle slice
    out = tmp_path / "o"
    for argv in (["denoise", str(series), "--lam", "0.1"], ["inpaint", str(series), "--mask", str(series)]):
        _refused(capsys, [*argv, "--out", str(out)], "argument IMAGE", "missing slice")
        assert not out.exists()


@pytest.mark.parametrize("argv,needles", [
    (["flow", "{vol}", "--method", "net"], ["argument --method", "TVflowNET is 2-D only", "--method reference"]),
    (["flow", "{vol}", "--method", "both"], ["argument --method", "TVflowNET is 2-D only"]),
    (["denoise", "{vol}", "--lam", "0.1", "--spacing", "1", "1"], ["argument --spacing", "give 3 values (dz dy dx)"]),
    (["denoise", "{img}", "--lam", "0.1", "--spacing", "1", "1", "1"], ["argument --spacing", "give 2 values (dy dx)"]),
    (["spectral", "{vol}", "--spacing", "1", "0", "1"], ["argument --spacing", "> 0, got '0'"]),
    (["denoise", "{vol}", "--lam", "0.1", "--spacing", "1", "-2", "1"], ["argument --spacing", "got '-2'"]),
    (["denoise", "{vol}", "--lam", "0.1", "--method", "admm"], ["argument --method", "admm runs on 2-D images"]),
    (["flow", "{vol}", "--solver", "admm"], ["argument --solver", "admm runs on 2-D images"]),
    (["inpaint", "{vol}", "--mask", "{vol}", "--method", "learned"], ["argument --method", "--method diffusion"]),
    (["inpaint", "{vol}", "--mask", "{small}"], ["argument --mask", "4x4x4 but IMAGE is 12x12x12"]),
    (["denoise", "{vol}", "--lam", "0.1", "--colour"], ["argument --colour", "grey"]),
    (["denoise", "{img}", "--lam", "0.1", "--volume-format", "tif"], ["argument --volume-format", "only for a volume"]),
    (["flow", "{img}", "--method", "net", "--spacing", "2", "1"], ["argument --spacing", "unit pixel spacing"]),
    (["mask", "{vol}", "--density", "0.1", "--method", "ps"], ["argument --method", "analytic or random"]),
    (["mask", "{vol}", "--density", "0.1", "--refine", "2"], ["argument --refine", "IMAGE is a volume"]),
    (["mask", "{img}", "--density", "0.1", "--spacing", "1", "1"], ["argument --spacing", "volume IMAGE only"]),
])
def test_bad_volume_input_is_refused_in_one_line(tmp_path, tif, capsys, argv, needles):
    write_image(tmp_path / "img.png", torch.zeros(1, 8, 8))
    write_volume(tmp_path / "small.npy", torch.ones(4, 4, 4))
    names = {"vol": str(tif), "img": str(tmp_path / "img.png"), "small": str(tmp_path / "small.npy")}
    out = tmp_path / "o"
    _refused(capsys, [a.format(**names) for a in argv] + ["--out", str(out)], *needles)
    assert not out.exists()


def test_the_input_folder_is_not_an_output_folder_and_nothing_is_overwritten(tmp_path, tif, capsys):
    series = tmp_path / "ct"
    shutil.copytree(_ct_series(), series)
    _refused(capsys, ["denoise", str(series), "--lam", "0.1", "--out", str(series)], "argument --out",
             "input folder")
    assert sorted(p.name for p in series.iterdir()) == ["2062", "2392", "2693", "3023", "3353"]
    out = tmp_path / "o"
    assert main(["denoise", str(tif), "--lam", "0.1", "--out", str(out)]) == 0
    before = (out / "u_lam0.10.tif").read_bytes()
    _refused(capsys, ["denoise", str(tif), "--lam", "0.1", "--max-iter", "3", "--out", str(out)],
             "argument --out", "already exists")
    assert (out / "u_lam0.10.tif").read_bytes() == before
    assert main(["denoise", str(tif), "--lam", "0.1", "--max-iter", "3", "--overwrite", "--out", str(out)]) == 0
    assert (out / "u_lam0.10.tif").read_bytes() != before


def test_tvflownet_api_refuses_a_volume():
    from pdeflow.tvflownet import flow

    with pytest.raises(UserInputError, match=r"u0 must be .* shape \(H, W\), \(C, H, W\) or \(B, C, H, W\)"):
        flow(ball(8, 3)[None, None], [0.1])
