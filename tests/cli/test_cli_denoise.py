"""``pdeflow denoise``: ROF per lambda, checked against scikit-image's independent solver; the
--noise/PSNR report; refusals and the all-or-nothing output rule."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_tv_chambolle

from pdeflow.cli import denoise as cli_denoise
from pdeflow.cli import main
from pdeflow.io import read_image, write_image
from pdeflow.metrics import psnr


@pytest.fixture
def image_file(tmp_path):
    """A 32x32 grey PNG: a bright square on a ramp."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    img = 0.2 + 0.3 * x
    img[8:24, 8:24] = 0.9
    return write_image(tmp_path / "in.png", img[None])


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_denoise_matches_scikit_image_for_each_lambda(tmp_path, image_file, capsys):
    out = tmp_path / "d"
    assert main(["denoise", str(image_file), "--lam", "0.2", "0.05", "--tol", "1e-6", "--out", str(out)]) == 0
    f = read_image(image_file, grey=True)[0].double().numpy()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["denoise.csv", "denoise.png", "input.png", "u_lam0.05.png", "u_lam0.20.png"]
    rows = _rows(out / "denoise.csv")
    assert [float(r["lambda"]) for r in rows] == [0.05, 0.2] and "psnr_db" not in rows[0]
    for lam, name in [(0.05, "u_lam0.05.png"), (0.2, "u_lam0.20.png")]:
        ref = denoise_tv_chambolle(f, weight=lam, eps=1e-10, max_num_iter=20000)
        got = read_image(out / name, grey=True)[0].double().numpy()
        assert np.abs(got - ref).max() <= 1.5 / 255       # the PNG's 8-bit rounding, and little else
    assert "lambda = 0.05" in capsys.readouterr().out


@pytest.mark.slow   # several rof solves per lambda
def test_noise_is_seeded_and_psnr_is_reported_per_lambda(tmp_path, image_file, capsys):
    args = ["denoise", str(image_file), "--noise", "0.1", "--lam", "0.02", "0.08", "0.5", "--method", "admm"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = _rows(tmp_path / "a" / "denoise.csv"), _rows(tmp_path / "b" / "denoise.csv")
    assert a == b and {r["method"] for r in a} == {"admm"} and {r["seed"] for r in a} == {"0"}
    scores = [float(r["psnr_db"]) for r in a]
    best = max(range(3), key=lambda i: scores[i])
    assert f"highest PSNR: lambda = {['0.02', '0.08', '0.50'][best]}" in text
    # the PSNR is that of the written result against the clean image (to the PNG's rounding)
    clean = read_image(image_file, grey=True).double()
    u = read_image(tmp_path / "a" / "u_lam0.08.png", grey=True).double()
    assert float(psnr(u, clean, data_range=1.0)) == pytest.approx(scores[1], abs=0.1)
    noisy = read_image(tmp_path / "a" / "noisy.png", grey=True).double()
    assert 0.05 < float((noisy - clean).std()) < 0.15
    assert main([*args, "--seed", "1", "--out", str(tmp_path / "c")]) == 0
    assert _rows(tmp_path / "c" / "denoise.csv") != a


def test_colour_keeps_three_channels(tmp_path, image_file):
    rgb = torch.stack([read_image(image_file, grey=True)[0] * s for s in (1.0, 0.5, 0.25)])
    path = write_image(tmp_path / "rgb.png", rgb)
    assert main(["denoise", str(path), "--colour", "--lam", "0.1", "--out", str(tmp_path / "o")]) == 0
    assert read_image(tmp_path / "o" / "u_lam0.10.png", grey=False).shape == (3, 32, 32)


@pytest.mark.parametrize("argv, message", [
    (["--lam", "0"], "argument --lam: expected a finite number > 0"),
    (["--lam", "0.1", "0.1"], "argument --lam: values must be distinct"),
    (["--lam", "nan"], "argument --lam"),
    (["--lam", "0.1", "--seed", "3"], "argument --seed: only used with --noise"),
    (["--lam", "0.1", "--noise", "-1"], "argument --noise"),
    (["--lam", "0.1", "--method", "sgd"], "argument --method: invalid choice"),
    ([], "the following arguments are required: --lam"),
])
def test_bad_arguments_are_refused_in_one_line(tmp_path, image_file, capsys, argv, message):
    assert main(["denoise", str(image_file), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and not (tmp_path / "o").exists()


def test_a_missing_image_is_refused(tmp_path, capsys):
    assert main(["denoise", str(tmp_path / "none.png"), "--lam", "0.1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"pdeflow denoise: error: argument IMAGE: no such file: '{tmp_path}/none.png'"
    assert not (tmp_path / "o").exists()


def test_never_overwrites_without_overwrite(tmp_path, image_file, capsys):
    out = tmp_path / "o"
    assert main(["denoise", str(image_file), "--lam", "0.1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["denoise", str(image_file), "--lam", "0.3", "0.1", "--out", str(out)]) == 2
    assert "already exists (pass --overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["denoise", str(image_file), "--lam", "0.3", "0.1", "--out", str(out), "--overwrite"]) == 0
    assert (out / "u_lam0.30.png").is_file() and len(_rows(out / "denoise.csv")) == 2


def test_a_failure_while_writing_leaves_no_partial_output(tmp_path, image_file, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(cli_denoise, "_denoise_figure", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        main(["denoise", str(image_file), "--lam", "0.1", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_a_solve_stopped_at_the_cap_is_reported(tmp_path, image_file, capsys):
    assert main(["denoise", str(image_file), "--lam", "0.3", "--method", "chambolle", "--tol", "1e-9",
                 "--max-iter", "5", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "stopped at --max-iter 5" in out
    assert int(_rows(tmp_path / "o" / "denoise.csv")[0]["iterations"]) <= 5
    assert math.isfinite(float(_rows(tmp_path / "o" / "denoise.csv")[0]["gap"]))
