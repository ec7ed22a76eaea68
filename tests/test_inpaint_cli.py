"""`pdeflow mask` and `pdeflow inpaint`: outputs, agreement with the library, errors."""
import csv
import os

import pytest
import torch

from pdeflow.cli import main
from pdeflow.inpaint import diffuse, random_mask
from pdeflow.io import read_image, write_image

SIZE = 24


def listing(d):
    return sorted(os.listdir(d)) if d.exists() else []


def read_csv(p):
    with open(p) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def photo_file(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 20, 22, generator=g)
    return write_image(tmp_path / "in.png", x)


def test_mask_random_writes_all_outputs(tmp_path, capsys):
    out = tmp_path / "m"
    rc = main(["mask", "--size", str(SIZE), "--density", "0.1", "--method", "random", "--seed", "3",
               "--out", str(out)])
    assert rc == 0
    assert listing(out) == ["errors.csv", "inpainted.png", "mask.png", "mask_figure.png"]
    m = read_image(out / "mask.png")
    assert m.shape == (1, SIZE, SIZE)
    assert int((m > 0.5).sum()) == round(0.1 * SIZE * SIZE)
    row = read_csv(out / "errors.csv")[0]
    assert row["method"] == "random" and float(row["psnr"]) > 10
    assert "PSNR" in capsys.readouterr().out


def test_mask_nlpe_then_inpaint_reproduces_the_errors(tmp_path):
    out = tmp_path / "m"
    rc = main(["mask", "--size", str(SIZE), "--density", "0.15", "--method", "nlpe", "--p", "0.1", "--q", "0.2",
               "--cycles", "1", "--out", str(out)])
    assert rc == 0
    row = read_csv(out / "errors.csv")[0]
    assert int((read_image(out / "mask.png") > 0.5).sum()) == round(0.15 * SIZE * SIZE)
    rec = tmp_path / "rec"
    # IMAGE: the same 24x24 centre crop of the default image
    rc = main(["inpaint", "builtin:skimage/camera", "--size", str(SIZE), "--mask", str(out / "mask.png"),
               "--out", str(rec)])
    assert rc == 0
    assert listing(rec) == ["errors.csv", "inpaint_figure.png", "inpainted.png"]
    row2 = read_csv(rec / "errors.csv")[0]
    assert abs(float(row2["psnr"]) - float(row["psnr"])) < 1e-3
    # The random mask of the same density does worse than PS + NLPE
    ran = tmp_path / "r"
    assert main(["mask", "--size", str(SIZE), "--density", "0.15", "--method", "random", "--out", str(ran)]) == 0
    assert float(read_csv(ran / "errors.csv")[0]["mse"]) > float(row["mse"])


def test_inpaint_file_matches_library(tmp_path, photo_file):
    m = random_mask((1, 20, 22), 0.2, generator=1)
    write_image(tmp_path / "mask.png", m)
    out = tmp_path / "o"
    assert main(["inpaint", str(photo_file), "--mask", str(tmp_path / "mask.png"), "--out", str(out)]) == 0
    f = read_image(photo_file)
    u = read_image(out / "inpainted.png")
    ref = diffuse(f.double(), m.double()).clamp(0, 1).float()
    assert (u - ref).abs().max() <= 1 / 255 + 1e-6  # 8-bit PNG


def test_errors_exit_2_and_leave_nothing(tmp_path, photo_file, capsys):
    out = tmp_path / "o"
    for argv in (["mask", "--density", "0", "--out", str(out)],
                 ["mask", "--density", "1.5", "--out", str(out)],
                 ["mask", "--density", "x", "--out", str(out)],
                 ["mask", "--size", "8", "--density", "0.001", "--out", str(out)],
                 ["mask", "--density", "0.1", "--method", "magic", "--out", str(out)]):
        assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert "--density" in err and "(0, 1)" in err
    # a mask of another size
    write_image(tmp_path / "small.png", torch.ones(1, 10, 10))
    assert main(["inpaint", str(photo_file), "--mask", str(tmp_path / "small.png"), "--out", str(out)]) == 2
    assert "10x10 but IMAGE is 20x22" in capsys.readouterr().err
    # a mask with no known pixel
    write_image(tmp_path / "empty.png", torch.zeros(1, 20, 22))
    assert main(["inpaint", str(photo_file), "--mask", str(tmp_path / "empty.png"), "--out", str(out)]) == 2
    assert "no known pixel" in capsys.readouterr().err
    assert main(["inpaint", str(photo_file), "--mask", str(tmp_path / "nope.png"), "--out", str(out)]) == 2
    assert not out.exists()


def test_existing_outputs_are_not_overwritten(tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "mask.png").write_text("mine")
    argv = ["mask", "--size", "16", "--density", "0.2", "--method", "random", "--out", str(out)]
    assert main(argv) == 2
    assert listing(out) == ["mask.png"] and (out / "mask.png").read_text() == "mine"
    assert main(argv + ["--overwrite"]) == 0
    assert read_image(out / "mask.png").shape == (1, 16, 16)


def test_gan_methods_without_a_model_give_one_line_errors(tmp_path, capsys):
    from pdeflow.inpaint import gan
    if "maskgan-10" in gan.shipped_models():
        pytest.skip("a mask GAN is shipped; covered by the GAN tests")
    out = tmp_path / "g"
    assert main(["mask", "--size", "16", "--density", "0.1", "--method", "gan", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--method" in err[0]
    assert not out.exists()


def test_gan_and_wgan_dispatch_with_exported_models(tmp_path, capsys):
    """The CLI runs the GAN methods through pdeflow.inpaint.gan (untrained tiny models: wiring only)."""
    from pdeflow.inpaint.masknet import MaskGAN
    from pdeflow.inpaint.wgan import InpaintingGenerator
    from pdeflow.io import save_model

    torch.manual_seed(0)
    pair = MaskGAN(1, width=0.1, density=0.1)
    save_model(pair, tmp_path / "mg", config={"kind": "maskgan", "model": pair.config})
    gen = InpaintingGenerator(1, width=0.1)
    save_model(gen, tmp_path / "inp", config={"kind": "inpainting", "model": gen.config})
    out = tmp_path / "g"
    assert main(["mask", "--size", "16", "--density", "0.1", "--method", "gan", "--model", str(tmp_path / "mg.json"),
                 "--out", str(out)]) == 0
    assert listing(out) == ["errors.csv", "inpainted.png", "mask.png", "mask_figure.png"]
    assert read_csv(out / "errors.csv")[0]["method"] == "gan"
    # a model trained for another density is refused with one line
    bad = tmp_path / "bad"
    assert main(["mask", "--size", "16", "--density", "0.2", "--method", "gan", "--model", str(tmp_path / "mg.json"),
                 "--out", str(bad)]) == 2
    assert not bad.exists()
    capsys.readouterr()
    m = random_mask((1, 16, 16), 0.3, generator=0)
    write_image(tmp_path / "m.png", m)
    rec = tmp_path / "w"
    assert main(["inpaint", "builtin:skimage/camera", "--size", "16", "--mask", str(tmp_path / "m.png"),
                 "--method", "wgan", "--model", str(tmp_path / "inp.json"), "--out", str(rec)]) == 0
    f = read_image(rec / "inpainted.png")
    assert listing(rec) == ["errors.csv", "inpaint_figure.png", "inpainted.png"] and f.shape == (1, 16, 16)
