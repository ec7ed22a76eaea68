"""``pdeflow denoise --lam auto``: the lambda rof(f, "auto") chooses, reported in one line and in the table."""
from __future__ import annotations

import csv

import pytest
import torch

import pdeflow
from pdeflow.cli import main
from pdeflow.io import write_image


@pytest.fixture
def image_file(tmp_path):
    """A 48x48 grey PNG: a bright square on a ramp."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    img = 0.2 + 0.3 * x
    img[12:36, 12:36] = 0.9
    return write_image(tmp_path / "in.png", img[None])


def test_lam_auto_reports_the_lambda_it_chose(tmp_path, image_file, capsys):
    out = tmp_path / "d"
    assert main(["denoise", str(image_file), "--noise", "0.1", "--lam", "auto", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if ln.startswith("lambda auto: ")]
    assert len(lines) == 1, text
    lam = float(lines[0].split()[2])
    with open(out / "denoise.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and float(rows[0]["lambda"]) == pytest.approx(lam, rel=1e-3)
    assert (out / "u_lamauto.png").exists()
    # the same choice as the library's on the same noisy image
    from pdeflow.io import read_image
    f = read_image(image_file, grey=True).double()
    f = (f + 0.1 * torch.randn(f.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).float()
    assert float(pdeflow.rof(f, "auto", full_output=True).lam[0]) == pytest.approx(lam, rel=1e-3)


@pytest.mark.parametrize("extra,match", [(["0.1"], "'auto' takes no other value")])
def test_lam_auto_refusals(tmp_path, image_file, capsys, extra, match):
    assert main(["denoise", str(image_file), "--lam", "auto", *extra, "--out", str(tmp_path / "x")]) == 2
    assert match in capsys.readouterr().err
