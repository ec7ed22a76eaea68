"""Small and odd inputs that confused users: ``pdeflow flow --method both`` on an 8 px image, a NumPy array for
``tvflownet.flow``, repeated times, training images smaller than the crop, an unreadable training image. Each
reproduced, each with the behaviour that replaced it."""
import warnings

import numpy as np
import pytest
import torch

from pdeflow.cli import main
from pdeflow.errors import UserInputError
from pdeflow.io import write_image
from pdeflow.tv import tv_flow
from pdeflow.tvflownet import flow as net_flow
from pdeflow.tvflownet.train import TrainConfig, train

TINY = {"width": 4, "depth": 3}


def _config(data, **kw) -> TrainConfig:
    base = dict(data=str(data), mode="unsupervised", arch="semiresnet", arch_kwargs=TINY, crop="16", steps=2,
                batch_size=2, val_every=2, ckpt_every=2, val_crops=1, val_size=16, val_times=2, val_dt=0.1,
                val_tol=1e-3, val_max_iter=50, ref_dt=0.1, ref_max_iter=50, deterministic=True)
    base.update(kw)
    return TrainConfig(**base)


# (a) the flow command on an image under SSIM's 11x11 window: PSNR only, a note, every file written
def test_flow_both_on_an_8px_image_writes_its_files_and_skips_ssim(tmp_path, capsys):
    img = tmp_path / "eight.png"
    write_image(img, torch.linspace(0, 1, 64).reshape(1, 8, 8))
    out = tmp_path / "out"
    assert main(["flow", str(img), "--method", "both", "--times", "0.1", "--dt", "0.05", "--tol", "1e-3",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SSIM skipped" in text and "11x11" in text
    rows = (out / "comparison.csv").read_text().splitlines()
    assert rows[0] == "time,psnr_db,ssim" and rows[1].endswith(",")       # the SSIM cell left empty
    assert (out / "flow.png").exists()


# (b) a NumPy array: accepted as a tensor by tvflownet.flow, as by tv.rof
def test_tvflownet_flow_takes_a_numpy_array_like_rof():
    u0 = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    u = net_flow(u0, [0.0, 0.1])
    assert torch.is_tensor(u) and u.shape == (2, 16, 16)
    assert torch.equal(u, net_flow(torch.from_numpy(u0), [0.0, 0.1]))
    with pytest.raises(UserInputError, match="u0.*NumPy array"):
        net_flow(np.zeros((2, 2, 2, 2, 2), dtype=np.float32), [0.1])
    with pytest.raises(UserInputError, match="u0.*got str"):
        net_flow("image.png", [0.1])


# (c) repeated times: the API and the CLI both take non-decreasing times
def test_repeated_times_accepted_by_the_api_and_the_cli(tmp_path, capsys):
    u0 = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u = tv_flow(u0, [0.1, 0.1], dt=0.05, tol=1e-6)
    assert torch.equal(u[0], u[1])
    out = tmp_path / "out"
    assert main(["flow", "--size", "16", "--times", "0.1", "0.1", "0.2", "--dt", "0.05", "--tol", "1e-3",
                 "--out", str(out)]) == 0
    assert "repeated" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("u_t*.png")) == ["u_t0.10.png", "u_t0.20.png"]
    assert main(["flow", "--size", "16", "--times", "0.2", "0.1", "--out", str(tmp_path / "o2")]) == 2
    assert "non-decreasing" in capsys.readouterr().err and not (tmp_path / "o2").exists()


# (d) images smaller than the crop: a warning naming them
def test_training_warns_about_images_smaller_than_the_crop(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_image(data / "one.png", torch.full((1, 1, 1), 0.5))
    write_image(data / "eight.png", torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0)))
    for k in range(3):
        write_image(data / f"big{k}.png", torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(k)))
    with pytest.warns(UserWarning, match=r"smaller than the 16 px crop.*eight\.png.*one\.png"):
        train(_config(data), tmp_path / "run", quiet=True)


# (e) an unreadable image: refused before the run directory gets anything
def test_training_refuses_an_unreadable_image_before_writing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for k in range(3):
        write_image(data / f"p{k}.png", torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(k)))
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UserInputError, match=r"broken\.png"):
            train(_config(data), tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()
