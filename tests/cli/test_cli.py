"""Tests for the `pdeflow` command (pdeflow.cli): subcommands, output rules, errors."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from pdeflow.cli import flow as cli_flow
from pdeflow.cli import main
from pdeflow.datasets import builtin_image
from pdeflow.io import read_image, write_image
from pdeflow.tv import spectral_tv, tv_flow

SIZE = 48


def camera_crop(size=SIZE):
    u = builtin_image("skimage/camera")
    H, W = u.shape[-2:]
    top, left = (H - size) // 2, (W - size) // 2
    return u[:, top:top + size, left:left + size]


def listing(d: Path) -> list[str]:
    """All names in d, hidden temporary files included."""
    return sorted(os.listdir(d)) if d.exists() else []


def png_shape(p: Path):
    with Image.open(p) as im:
        return im.size[::-1], im.mode


@pytest.fixture
def image_file(tmp_path):
    x = torch.rand(1, 40, 44, generator=torch.Generator().manual_seed(0))
    return write_image(tmp_path / "in.png", x)


# --------------------------------------------------------------------- subcommands

def test_flow_builtin_writes_pngs_figure_and_npy(tmp_path, capsys):
    out = tmp_path / "new" / "flow"  # created, parents too
    rc = main(["flow", "--size", str(SIZE), "--times", "0.05", "0.2", "--dt", "0.05", "--tol", "1e-4",
               "--save-npy", "--out", str(out)])
    assert rc == 0
    assert listing(out) == ["flow.png", "u.npy", "u_t0.05.png", "u_t0.20.png"]
    for name in ("u_t0.05.png", "u_t0.20.png"):
        assert png_shape(out / name) == ((SIZE, SIZE), "L")
    text = capsys.readouterr().out
    assert "builtin:skimage/camera" in text and "intensity scale" in text and " s" in text

    u = np.load(out / "u.npy")
    ref = tv_flow(camera_crop(), [0.05, 0.2], dt=0.05, tol=1e-4, solver="fgp").numpy()
    assert u.shape == (2, 1, SIZE, SIZE) and u.dtype == np.float32
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-6)
    # the PNGs are the stack clipped to [0, 1], 8-bit
    png = read_image(out / "u_t0.20.png").numpy()
    assert np.abs(png - np.clip(ref[1], 0, 1)).max() <= 0.5 / 255 + 1e-6


def test_flow_file_with_scale_matches_tv_flow(tmp_path, image_file, capsys):
    out = tmp_path / "o"
    rc = main(["flow", str(image_file), "--scale", "5", "--times", "0", "0.375", "--dt", "0.125",
               "--tol", "1e-4", "--save-npy", "--out", str(out)])
    assert rc == 0
    assert listing(out) == ["flow.png", "u.npy", "u_t0.000.png", "u_t0.375.png"]
    assert "multiplied by 5" in capsys.readouterr().out
    u0 = read_image(image_file, grey=True)
    ref = tv_flow(5 * u0, [0.0, 0.375], dt=0.125, tol=1e-4).numpy()
    u = np.load(out / "u.npy")
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-5)
    png = read_image(out / "u_t0.375.png").numpy()
    assert np.abs(png - np.clip(ref[1] / 5, 0, 1)).max() <= 0.5 / 255 + 1e-6


def test_flow_colour(tmp_path):
    out = tmp_path / "o"
    assert main(["flow", "builtin:skimage/coffee", "--colour", "--size", "32", "--times", "0.1",
                 "--out", str(out)]) == 0
    assert png_shape(out / "u_t0.10.png") == ((32, 32), "RGB")



def _export_tiny_tvflownet(path: Path) -> Path:
    from pdeflow.io import save_model
    from pdeflow.tvflownet import build_model

    torch.manual_seed(0)
    m = build_model("semiresnet", width=4, depth=3)
    save_model(m, path, {"model": m.config, "scale": 5.0, "t_max": 1.0}, provenance={})
    return path.with_suffix(".json")


@pytest.mark.slow   # a network and a reference flow; the net and flow tests cover each
def test_flow_method_both_compares_network_with_reference(tmp_path, capsys):
    from pdeflow import tvflownet
    from pdeflow.metrics import psnr

    model = _export_tiny_tvflownet(tmp_path / "tiny")
    out = tmp_path / "o"
    rc = main(["flow", "--size", "24", "--times", "0.05", "0.1", "--method", "both", "--model", str(model),
               "--save-npy", "--out", str(out)])
    assert rc == 0
    assert listing(out) == ["comparison.csv", "flow.png", "net.npy", "net_t0.05.png", "net_t0.10.png",
                            "u.npy", "u_t0.05.png", "u_t0.10.png"]
    net, ref = np.load(out / "net.npy"), np.load(out / "u.npy")
    u0 = camera_crop(24)
    torch.testing.assert_close(torch.from_numpy(net), tvflownet.flow(u0, [0.05, 0.1], tvflownet.load(model)))
    rows = (out / "comparison.csv").read_text().splitlines()
    expected = psnr(torch.from_numpy(net).double(), torch.from_numpy(ref).double(), data_range=1.0)
    assert [float(r.split(",")[1]) for r in rows[1:]] == pytest.approx(expected.tolist(), abs=1e-3)
    assert "network vs reference PSNR" in capsys.readouterr().out


def test_flow_method_net_errors(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["flow", "--size", "24", "--method", "net", "--model", str(tmp_path / "none.json"),
                 "--out", str(out)]) == 2
    assert "argument --model" in capsys.readouterr().err and listing(out) == []
    assert main(["flow", "--size", "24", "--model", "x", "--out", str(out)]) == 2
    assert "only used with --method net" in capsys.readouterr().err
    assert main(["flow", "--size", "24", "--method", "net", "--model", "lgd", "--colour", "--out", str(out)]) == 2
    assert "is colour and the model takes 1 channel(s)" in capsys.readouterr().err and listing(out) == []
    assert main(["flow", "--size", "24", "--symmetry", "transpose", "--out", str(out)]) == 2
    assert "argument --symmetry: only used with --method net" in capsys.readouterr().err


def test_flow_method_net_symmetry_averages_the_network(tmp_path):
    from pdeflow import tvflownet

    model = _export_tiny_tvflownet(tmp_path / "tiny")
    out = tmp_path / "o"
    assert main(["flow", "--size", "24", "--times", "0.1", "--method", "net", "--model", str(model),
                 "--symmetry", "square", "--save-npy", "--out", str(out)]) == 0
    net = torch.from_numpy(np.load(out / "net.npy"))
    plain = tvflownet.flow(camera_crop(24), [0.1], tvflownet.load(model))
    torch.testing.assert_close(net, tvflownet.flow(camera_crop(24), [0.1], tvflownet.load(model), symmetry="square"))
    assert (net - plain).abs().max() > 1e-5

def test_spectral_writes_bands_residual_csv(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(["spectral", "--size", str(SIZE), "--dt", "0.05", "--steps", "8", "--bands", "0.025", "0.125",
               "0.425", "--save-npy", "--out", str(out)])
    assert rc == 0
    assert listing(out) == ["band_0.png", "band_1.png", "bands.npy", "residual.npy", "residual.png",
                            "spectral.png", "spectrum.csv"]
    text = capsys.readouterr().out
    assert "reconstruction error" in text
    err = float(text.split("reconstruction error")[1].split("=")[1].split()[0])
    assert err < 1e-4

    with open(out / "spectrum.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["k"]) for r in rows] == list(range(1, 9))
    assert [r["band"] for r in rows] == ["0", "0", "1", "1", "1", "1", "1", "1"]
    s = spectral_tv(camera_crop(), dt=0.05, n_steps=8)    # the command uses the library's default accuracy
    np.testing.assert_allclose([float(r["S"]) for r in rows], s.spectrum.numpy(), rtol=1e-5)
    bands = np.load(out / "bands.npy")
    np.testing.assert_allclose(bands, s.filter([0.025, 0.125, 0.425]).numpy(), rtol=0, atol=1e-5)
    assert np.abs(bands.sum(0) + np.load(out / "residual.npy") - camera_crop().numpy()).max() < 1e-4
    # bands are normalised for display: symmetric around grey
    b = read_image(out / "band_0.png").numpy()
    assert b.min() >= 0 and b.max() <= 1 and (b.max() == 1.0 or b.min() == 0.0)


def test_spectral_default_bands_are_dyadic(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["spectral", "--size", "32", "--steps", "8", "--out", str(out)]) == 0
    assert listing(out) == ["band_0.png", "band_1.png", "band_2.png", "residual.png", "spectral.png",
                            "spectrum.csv"]
    text = capsys.readouterr().out
    assert "band edges: 0.02 0.06 0.14 0.34" in text  # k in [1,2), [2,4), [4,9)
    # what it runs, before it runs: N + 1 steps of dt, the frames certified to the spectral default
    assert "steps: 9 implicit steps (dt 0.04);" in text and "solver 0.014 certified" in text


@pytest.mark.slow   # draws from every sample pool
def test_samples_lists_and_draws(tmp_path, capsys):
    assert main(["samples"]) == 0
    text = capsys.readouterr().out
    assert "skimage/camera" in text and "512x512" in text and "test" in text
    out = tmp_path / "sam"
    assert main(["samples", "--out", str(out)]) == 0
    assert listing(out) == ["samples.png"]


def test_demo_small(tmp_path, monkeypatch, capsys):
    # The real demo (256x256) takes about 20 s; the same code on a small crop.
    monkeypatch.setitem(cli_flow.DEMO, "size", 40)
    monkeypatch.setitem(cli_flow.DEMO, "times", [0.05, 0.2])
    monkeypatch.setitem(cli_flow.DEMO, "steps", 8)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    assert listing(out) == sorted(["input.png", "u_t0.05.png", "u_t0.20.png", "band_0.png", "band_1.png",
                                   "band_2.png", "residual.png", "spectrum.csv", "demo.png"])
    text = capsys.readouterr().out
    assert "dt=0.05" in text and "tol 0.0001" in text and "total" in text
    assert main(["demo", "--out", str(out)]) == 2  # refuses to overwrite
    assert main(["demo", "--out", str(out), "--overwrite"]) == 0


@pytest.mark.slow   # two subprocess runs; the in-process CLI tests cover the commands
def test_console_script_and_module(tmp_path):
    exe = Path(sys.executable).with_name("pdeflow")
    assert exe.exists(), "the pdeflow console script is not installed in this environment"
    out = tmp_path / "o"
    r = subprocess.run([str(exe), "flow", "--size", "24", "--times", "0.1", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert listing(out) == ["flow.png", "u_t0.10.png"]
    r = subprocess.run([sys.executable, "-m", "pdeflow", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("pdeflow ")


@pytest.mark.slow   # a subprocess killed mid-run
def test_sigterm_leaves_no_output(tmp_path):
    exe = Path(sys.executable).with_name("pdeflow")
    out = tmp_path / "demo"
    proc = subprocess.Popen([str(exe), "demo", "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # the demo stages input.png first, then runs the flow for several seconds
        while not (out.exists() and any(n.endswith(".tmp.png") for n in os.listdir(out))):
            assert proc.poll() is None and time.monotonic() < deadline, "demo never staged a file"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and "terminated" in err
    assert not out.exists()


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert main(["flow", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--times" in text and "--overwrite" in text
    assert main([]) == 2


# --------------------------------------------------------------------- output rules

def test_refuses_to_overwrite_unless_asked(tmp_path, capsys):
    out = tmp_path / "o"
    args = ["flow", "--size", "24", "--times", "0.1", "--out", str(out)]
    assert main(args) == 0
    before = {n: (out / n).read_bytes() for n in listing(out)}
    (out / "u_t0.10.png").write_bytes(b"keep me")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pdeflow flow: error: argument --out" in err and "--overwrite" in err
    assert (out / "u_t0.10.png").read_bytes() == b"keep me"  # untouched
    assert (out / "flow.png").read_bytes() == before["flow.png"]
    assert main(args + ["--overwrite"]) == 0
    assert (out / "u_t0.10.png").read_bytes() == before["u_t0.10.png"]
    assert listing(out) == ["flow.png", "u_t0.10.png"]


def test_refuses_to_write_over_the_input(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    src = write_image(out / "u_t0.10.png", torch.rand(1, 20, 20))
    data = src.read_bytes()
    assert main(["flow", str(src), "--times", "0.1", "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "argument --out" in err and "input" in err
    assert src.read_bytes() == data and listing(out) == ["u_t0.10.png"]
    # the same file reached through another path
    assert main(["flow", str(out / ".." / "o" / "u_t0.10.png"), "--times", "0.1",
                 "--out", str(out), "--overwrite"]) == 2
    assert src.read_bytes() == data


def test_failure_midway_leaves_no_file(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(cli_flow, "_flow_figure", boom)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="figure failed"):
        main(["flow", "--size", "24", "--times", "0.1", "0.2", "--out", str(out)])
    assert not out.exists()  # created by the run, removed with it
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "other.txt").write_text("x")
    with pytest.raises(RuntimeError):
        main(["flow", "--size", "24", "--times", "0.1", "--out", str(kept)])
    assert listing(kept) == ["other.txt"]


def test_overwrite_failure_midway_leaves_no_partial_set(tmp_path, monkeypatch):
    out = tmp_path / "o"
    args = ["flow", "--size", "24", "--times", "0.1", "--out", str(out), "--overwrite"]
    assert main(args) == 0
    monkeypatch.setattr(cli_flow, "_flow_figure", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        main(args)
    # nothing was committed: the previous complete set is still there, no temporary files
    assert listing(out) == ["flow.png", "u_t0.10.png"]


# --------------------------------------------------------------------- errors

def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["flow", "--size", "24", "--out", str(f)]) == 2
    assert "argument --out" in capsys.readouterr().err and f.read_text() == "x"


def test_image_after_times_gets_a_hint(tmp_path, image_file, capsys):
    assert main(["flow", "--times", "0.1", str(image_file), "--out", str(tmp_path / "o")]) == 2
    assert "give IMAGE before the list" in capsys.readouterr().err


@pytest.fixture
def bad_files(tmp_path):
    d = tmp_path / "inputs"
    d.mkdir()
    (d / "text.png").write_text("not an image")
    a = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    a[2, 3] = np.nan
    tifffile.imwrite(d / "nan.tif", a)
    a[2, 3] = np.inf
    tifffile.imwrite(d / "inf.tif", a)
    return d


ERROR_CASES = [
    (["flow", "{d}/missing.png"], "IMAGE"),
    (["flow", "{d}/text.png"], "IMAGE"),
    (["flow", "{d}/nan.tif"], "IMAGE"),
    (["flow", "{d}/inf.tif"], "IMAGE"),
    (["flow", "{d}"], "IMAGE"),
    (["flow", "builtin:nope/none"], "IMAGE"),
    (["flow", "--times", "-1", "2"], "--times"),
    (["flow", "--times", "1", "0.5"], "--times"),
    (["flow", "--times", "0.5", "0.2"], "--times"),     # decreasing (repeated times are taken, as by the API)
    (["flow", "--times", "nan"], "--times"),
    (["flow", "--dt", "0"], "--dt"),
    (["flow", "--dt", "-0.1"], "--dt"),
    (["flow", "--tol", "0"], "--tol"),
    (["flow", "--tol", "-1e-3"], "--tol"),
    (["flow", "--scale", "0"], "--scale"),
    (["flow", "{d}/nan.tif", "--size", "64"], "IMAGE"),
    (["flow", "builtin:pydicom/MR_small", "--size", "65"], "--size"),
    (["flow", "--solver", "magic"], "--solver"),
    (["spectral", "--dt", "0"], "--dt"),
    (["spectral", "--steps", "0"], "--steps"),
    (["spectral", "--bands", "0.3"], "--bands"),
    (["spectral", "--bands", "0.3", "0.1"], "--bands"),
    (["spectral", "--bands", "-0.1", "0.3"], "--bands"),
    (["spectral", "--bands", "0.01", "0.02", "0.5"], "--bands"),  # empty band: t_1 = 0.04
    (["spectral", "--bands", "0.1", "inf"], "--bands"),
    (["spectral", "{d}/text.png"], "IMAGE"),
]


@pytest.mark.parametrize("argv,name", ERROR_CASES, ids=[" ".join(a) for a, _ in ERROR_CASES])
def test_bad_input_exits_2_naming_the_argument(tmp_path, bad_files, capsys, argv, name):
    out = tmp_path / "out"
    argv = [a.format(d=bad_files) for a in argv] + ["--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"pdeflow {argv[0]}: error: ") and name in last, err
    assert "Traceback" not in err
    assert listing(out) == []  # nothing written, the directory not even created


def test_figures_show_the_input_in_its_own_units():
    """With --scale the results are divided back by the scale; the input is already in [0, 1]."""
    u0 = camera_crop(24)
    fig = cli_flow._flow_figure(u0, {"reference": 5 * u0[None]}, [0.1], 5.0, "camera", "params")
    shown = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]
    assert shown[0].max() == pytest.approx(float(u0.max()), abs=1e-6)      # input panel
    assert shown[1].max() == pytest.approx(float(u0.max()), abs=1e-6)      # 5 u0 / 5


def test_only_user_input_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """A UserInputError from the library is one line and exit status 2; any other exception is a bug and
    propagates with its traceback (the pdeflow entry point prints it), and no output file is left."""
    from pdeflow.errors import UserInputError

    def bad_input(*a, **k):
        raise UserInputError("tv_flow: dt must be > 0, got -1")

    def bug(*a, **k):
        raise ValueError("an internal inconsistency")

    argv = ["flow", "builtin:skimage/camera", "--size", "16", "--times", "0.1", "--out", str(tmp_path / "o")]
    monkeypatch.setattr(cli_flow, "tv_flow", bad_input)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["pdeflow flow: error: tv_flow: dt must be > 0, got -1"]
    monkeypatch.setattr(cli_flow, "tv_flow", bug)
    with pytest.raises(ValueError, match="internal inconsistency"):
        main(argv)
    assert not (tmp_path / "o").exists()
