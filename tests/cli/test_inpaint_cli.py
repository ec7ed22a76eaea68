"""`pdeflow mask` and `pdeflow inpaint`: outputs, agreement with the library, errors."""
import csv
import os

import pytest
import torch

from pdeflow.cli import main
from pdeflow.inpaint import inpaint_diffusion, random_mask
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


@pytest.mark.slow   # NLPE sweeps
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
    ref = inpaint_diffusion(f.double(), m.double()).clamp(0, 1).float()
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
    from pdeflow import models
    if models.shipped_name("maskgan", 0.1):
        pytest.skip("a mask GAN is shipped; covered by the GAN tests")
    out = tmp_path / "g"
    assert main(["mask", "--size", "16", "--density", "0.1", "--method", "gan", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model" in err[0]  # the option to pass, as --help says
    assert not out.exists()


@pytest.mark.slow   # two exported networks
def test_gan_and_wgan_dispatch_with_exported_models(tmp_path, capsys):
    """The CLI runs the GAN methods through pdeflow.inpaint.learned.gan (untrained tiny models: wiring only)."""
    from pdeflow.inpaint.learned.maskgan import MaskGAN
    from pdeflow.inpaint.learned.wgan import InpaintingGenerator
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


def test_readme_mask_then_inpaint_pair_on_the_default_image(tmp_path, capsys):
    """The README's `pdeflow mask` then `pdeflow inpaint IMAGE --mask DIR/mask.png` on the default
    built-in image: both crop it the same way, so the mask fits."""
    d = tmp_path / "m"
    assert main(["mask", "--density", "0.1", "--method", "random", "--out", str(d)]) == 0
    assert main(["inpaint", "builtin:skimage/camera", "--mask", str(d / "mask.png"),
                 "--out", str(tmp_path / "r")]) == 0, capsys.readouterr().err
    assert (tmp_path / "r" / "inpainted.png").is_file()


# ------------------------------------------------------------- analytic and learned masks, learned inpainting

def _exported_masknet(tmp_path, density=0.1, channels=1):
    from pdeflow.inpaint.learned.masknet import MaskNet
    from pdeflow.io import save_model

    torch.manual_seed(0)
    net = MaskNet(channels, density, widths=(4, 8))
    save_model(net, tmp_path / f"mn{channels}", config={"kind": "masknet", "model": net.config})
    return tmp_path / f"mn{channels}.json", net


def _exported_residual(tmp_path, channels=1):
    from pdeflow.inpaint.learned.residual import ResidualInpainter
    from pdeflow.io import save_model

    torch.manual_seed(0)
    r = ResidualInpainter(channels, widths=(4, 8))
    save_model(r, tmp_path / f"res{channels}", config={"kind": "residual-inpainter", "model": r.config})
    return tmp_path / f"res{channels}.json"


def test_mask_default_is_densify(tmp_path, capsys):
    """Without --method an image gets densify_mask's mask (grey or colour, any density); a volume the analytic."""
    from pdeflow.inpaint import densify_mask
    out = tmp_path / "a"
    assert main(["mask", "--size", "32", "--density", "0.15", "--out", str(out)]) == 0
    assert "method: densify (the default)" in capsys.readouterr().out
    m = read_image(out / "mask.png") > 0.5
    assert int(m.sum()) == round(0.15 * 32 * 32)
    assert read_csv(out / "errors.csv")[0]["method"] == "densify"
    # the library's mask for the same crop
    import argparse

    from pdeflow.cli.inpaint import _load
    x, _, _ = _load(argparse.Namespace(image=None, size=32, grey=True))
    assert torch.equal(m, densify_mask(x, 0.15) > 0.5)
    # the learned-only options name the method they need
    assert main(["mask", "--size", "32", "--density", "0.1", "--strength", "0.3", "--out", str(tmp_path / "b")]) == 2
    assert "argument --strength: only for --method learned, not densify" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


@pytest.mark.slow   # refinement sweeps
def test_mask_analytic_refine_does_not_increase_the_error(tmp_path):
    rows = {}
    for r in (0, 3):
        out = tmp_path / f"r{r}"
        assert main(["mask", "--size", "32", "--density", "0.1", "--method", "analytic", "--refine", str(r),
                     "--out", str(out)]) == 0
        rows[r] = read_csv(out / "errors.csv")[0]
        assert int((read_image(out / "mask.png") > 0.5).sum()) == round(0.1 * 32 * 32)
    # refinement keeps an exchange only if the (MSE) error drops
    assert float(rows[3]["mse"]) <= float(rows[0]["mse"]) * (1 + 1e-9)


def test_mask_learned_with_an_exported_network(tmp_path, capsys):
    from pdeflow.inpaint.learned.masknet import learned_mask
    model, net = _exported_masknet(tmp_path)
    out = tmp_path / "l"
    assert main(["mask", "--size", "32", "--density", "0.1", "--method", "learned", "--model", str(model),
                 "--out", str(out)]) == 0
    m = read_image(out / "mask.png") > 0.5
    assert int(m.sum()) == round(0.1 * 32 * 32)
    import argparse

    from pdeflow.cli.inpaint import _load
    x, _, _ = _load(argparse.Namespace(image=None, size=32, grey=True))
    assert torch.equal(m, learned_mask(x, 0.1, model=net) > 0.5)


@pytest.mark.slow   # mask networks per option
def test_mask_learned_options_are_learned_masks_options(tmp_path, capsys):
    """--strength, --scale, --bfloat16 and --padding give learned_mask's mask with those arguments (the shipped
    network)."""
    import argparse

    from pdeflow.cli.inpaint import _load
    from pdeflow.inpaint.learned.masknet import learned_mask
    x, _, _ = _load(argparse.Namespace(image=None, size=48, grey=True))
    for extra, kw in ((["--strength", "0.3,0"], {"strength": (0.3, 0.0)}), (["--strength", "0"], {"strength": 0.0}),
                      (["--scale", "2"], {"scale": 2}), (["--bfloat16"], {"compute_dtype": torch.bfloat16}),
                      (["--padding", "reflect"], {"padding": "reflect"})):
        out = tmp_path / "_".join(extra).strip("-")
        assert main(["mask", "--size", "48", "--density", "0.1", "--method", "learned", *extra,
                     "--out", str(out)]) == 0, extra
        assert torch.equal(read_image(out / "mask.png") > 0.5, learned_mask(x, 0.1, **kw) > 0.5), extra
    for bad in ("-1", "1,2,3", "nan", "a"):                  # argparse's usage, then the error naming the option
        assert main(["mask", "--size", "48", "--density", "0.1", "--strength", bad, "--out", str(tmp_path / "x")]) == 2
        assert "argument --strength: expected a number >= 0" in capsys.readouterr().err.strip().splitlines()[-1]
        assert not (tmp_path / "x").exists()


@pytest.mark.slow   # PS rounds
def test_ps_from_a_start_mask(tmp_path, capsys):
    """--start-mask: PS sparsifies from the mask's pixels (its cost counted from them); the result is a subset."""
    from pdeflow.inpaint.masks.sparsification import ps_steps
    start = tmp_path / "m20"
    assert main(["mask", "--size", "24", "--density", "0.2", "--method", "analytic", "--out", str(start)]) == 0
    capsys.readouterr()
    out = tmp_path / "ps"
    assert main(["mask", "--size", "24", "--density", "0.1", "--method", "ps", "--start-mask",
                 str(start / "mask.png"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    steps = ps_steps(24 * 24, 0.1, 0.02, 0.02, start=round(0.2 * 24 * 24))
    assert f"{steps} PS steps" in text and steps < ps_steps(24 * 24, 0.1, 0.02, 0.02)
    m, m0 = read_image(out / "mask.png") > 0.5, read_image(start / "mask.png") > 0.5
    assert int(m.sum()) == round(0.1 * 24 * 24) and bool((m <= m0).all())
    # refused: for another method, a mask sparser than the density, of another size
    small = tmp_path / "m05"
    assert main(["mask", "--size", "24", "--density", "0.05", "--method", "analytic", "--out", str(small)]) == 0
    other = tmp_path / "m16"
    assert main(["mask", "--size", "16", "--density", "0.2", "--method", "analytic", "--out", str(other)]) == 0
    capsys.readouterr()
    for argv, word in (
            (["--method", "analytic", "--start-mask", str(start / "mask.png")],
             "only for --method densify, ps or nlpe"),
            (["--method", "ps", "--start-mask", str(small / "mask.png")], "fewer than"),
            (["--method", "ps", "--start-mask", str(other / "mask.png")], "16x16"),
            (["--method", "ps", "--start-mask", str(tmp_path / "none.png")], "no such file")):
        assert main(["mask", "--size", "24", "--density", "0.1", *argv, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--start-mask" in err[0] and word in err[0], err
        assert not (tmp_path / "bad").exists()


@pytest.mark.slow   # a densification through the CLI and the library
def test_densify_is_the_library_function(tmp_path, capsys):
    """--method densify writes densify_mask's mask (with --stages; from --start-mask, which it keeps); --stages
    and a start mask denser than the density are refused in one line, nothing written."""
    from pdeflow.inpaint import densify_mask
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 44), indexing="ij")
    photo = write_image(tmp_path / "photo.png", (0.5 + 0.4 * torch.sin(7 * x * y) * (x > 0.3))[None])
    out = tmp_path / "d"
    assert main(["mask", str(photo), "--density", "0.1", "--method", "densify", "--stages", "4",
                 "--out", str(out)]) == 0
    assert "4 stages" in capsys.readouterr().out
    f = read_image(photo)
    assert torch.equal(read_image(out / "mask.png") > 0.5, densify_mask(f, 0.1, stages=4) > 0.5)
    start = tmp_path / "m05"
    assert main(["mask", "--size", "48", "--density", "0.05", "--method", "analytic", "--out", str(start)]) == 0
    grown = tmp_path / "g"
    assert main(["mask", "--size", "48", "--density", "0.1", "--method", "densify", "--start-mask",
                 str(start / "mask.png"), "--out", str(grown)]) == 0
    m, m0 = read_image(grown / "mask.png") > 0.5, read_image(start / "mask.png") > 0.5
    assert int(m.sum()) == round(0.1 * 48 * 48) and bool((m >= m0).all())
    dense = tmp_path / "m20"
    assert main(["mask", "--size", "48", "--density", "0.2", "--method", "analytic", "--out", str(dense)]) == 0
    capsys.readouterr()
    for argv, word in ((["--method", "analytic", "--stages", "3"], "argument --stages: only for --method densify"),
                       (["--method", "densify", "--start-mask", str(dense / "mask.png")], "densify grows a mask")):
        assert main(["mask", "--size", "48", "--density", "0.1", *argv, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0], err
        assert not (tmp_path / "bad").exists()


def test_learned_bad_models_exit_2_with_one_line_and_nothing_written(tmp_path, capsys):
    model, _ = _exported_masknet(tmp_path, density=0.1)
    model3, _ = _exported_masknet(tmp_path, density=0.1, channels=3)
    bad = tmp_path / "broken"
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 40)
    out = tmp_path / "o"
    cases = [
        (["mask", "--size", "32", "--density", "0.2", "--method", "learned", "--model", str(model)], "density"),
        (["mask", "--size", "32", "--density", "0.1", "--method", "learned", "--model", str(model3)], "channel"),
        (["mask", "--size", "32", "--density", "0.1", "--method", "learned", "--model", str(bad) + ".json"],
         "broken"),
        (["mask", "--size", "32", "--density", "0.1", "--method", "random", "--refine", "2"], "--refine"),
        (["mask", "--size", "32", "--density", "0.1", "--method", "analytic", "--strength", "0.3"], "--strength"),
        (["mask", "--size", "32", "--density", "0.1", "--method", "random", "--bfloat16"], "--bfloat16"),
        (["mask", "--size", "32", "--density", "0.1", "--method", "analytic", "--padding", "reflect"], "--padding"),
        (["mask", "--size", "32", "--density", "0.1", "--method", "learned", "--scale", "20"], "--scale"),
        (["mask", "--size", "32", "--density", "0.1", "--method", "ps", "--scale", "2"], "--scale"),
        (["mask", "--size", "32", "--density", "0.0001", "--method", "analytic"], "--density"),
    ]
    for argv, word in cases:
        assert main(argv + ["--out", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and word in err[0] and "--" in err[0], (argv, err)
        assert not out.exists()
    m = random_mask((1, 32, 32), 0.2, generator=0)
    write_image(tmp_path / "m.png", m)
    res3 = _exported_residual(tmp_path, channels=3)
    for model_path, word in ((res3, "channel"), (str(bad) + ".json", "broken")):
        assert main(["inpaint", "builtin:skimage/camera", "--size", "32", "--mask", str(tmp_path / "m.png"),
                     "--method", "learned", "--model", str(model_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--model" in err[0] and word in err[0], err
        assert not out.exists()


@pytest.mark.slow   # a learned inpainter's solve
def test_inpaint_learned_untrained_is_diffusion(tmp_path, capsys):
    """An untrained residual inpainter (last layer zero) is diffusion inpainting: the two commands agree."""
    res = _exported_residual(tmp_path)
    m = random_mask((1, 32, 32), 0.2, generator=0)
    write_image(tmp_path / "m.png", m)
    outs = {}
    for method in ("diffusion", "learned"):
        outs[method] = tmp_path / method
        argv = ["inpaint", "builtin:skimage/camera", "--size", "32", "--mask", str(tmp_path / "m.png"),
                "--method", method, "--out", str(outs[method])]
        assert main(argv + (["--model", str(res)] if method == "learned" else [])) == 0
    a, b = (read_image(outs[k] / "inpainted.png") for k in ("diffusion", "learned"))
    assert (a - b).abs().max() <= 1 / 255 + 1e-6
    assert read_csv(outs["learned"] / "errors.csv")[0]["method"] == "learned"
    # --no-calibrate (calibration is the default): the untrained correction is zero, so still diffusion;
    # either flag is refused for other methods
    argv = ["inpaint", "builtin:skimage/camera", "--size", "32", "--mask", str(tmp_path / "m.png")]
    raw = ["--no-calibrate", "--method", "learned", "--model", str(res), "--out", str(tmp_path / "raw")]
    assert main(argv + raw) == 0
    assert (read_image(tmp_path / "raw" / "inpainted.png") - a).abs().max() <= 1 / 255 + 1e-6
    for flag in ("--calibrate", "--no-calibrate"):
        assert main(argv + [flag, "--method", "diffusion", "--out", str(tmp_path / "cal2")]) == 2
        assert flag in capsys.readouterr().err
        assert not (tmp_path / "cal2").exists()


def test_ps_announces_its_cost(tmp_path, capsys):
    from pdeflow.inpaint import ps_mask
    from pdeflow.inpaint.masks.sparsification import ps_steps
    assert ps_steps(100, 0.5, 0.5, 0.5) > 0
    # the count is the one PS runs: each step removes max(1, round(q ceil(p n))) of n pixels, down to the target
    assert ps_steps(10, 0.5, 0.02, 0.02) == 5
    res = ps_mask(torch.rand(1, 1, 12, 12, dtype=torch.float64), 0.3, p=0.2, q=0.5,
                                       generator=0, full_output=True)
    assert res.trace.shape[1] == ps_steps(144, 0.3, 0.2, 0.5)        # one trial solve per step of the schedule
    out = tmp_path / "p"
    assert main(["mask", "--size", "16", "--density", "0.3", "--method", "ps", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "estimated cost:" in text and "PS steps" in text


@pytest.mark.slow   # an evaluation run twice
def test_evaluate_learned_rows_and_reuse(tmp_path, capsys):
    """The analytic/learned rows run with exported (untrained) networks; a second run reuses random rows."""
    import json

    from pdeflow.inpaint.learned.masknet import MaskNet
    from pdeflow.inpaint.learned.residual import ResidualInpainter
    from pdeflow.inpaint.masks.analytic import analytic_sigma
    from pdeflow.io import save_model

    torch.manual_seed(0)
    net = MaskNet(1, 0.2, widths=(4, 8), sigma=analytic_sigma(0.2))
    save_model(net, tmp_path / "mn", config={"kind": "masknet", "model": net.config})
    r = ResidualInpainter(1, widths=(4, 8))
    save_model(r, tmp_path / "res", config={"kind": "residual-inpainter", "model": r.config})
    save_model(net, tmp_path / "joint" / "mask", config={"kind": "masknet", "model": net.config})   # a joint run
    save_model(r, tmp_path / "joint" / "model", config={"kind": "residual-inpainter", "model": r.config})
    methods = ["random-diffusion", "analytic", "analytic-refine", "learned", "learned-residual", "joint",
               "joint-refine"]
    base = ["evaluate", "inpainting", "--densities", "0.2", "--n-images", "2", "--size", "16",
            "--masknet-models", str(tmp_path / "mn.json"), "--residual-model", str(tmp_path / "res.json"),
            "--joint-models", str(tmp_path / "joint")]
    first = tmp_path / "e1"
    assert main(base + ["--methods", *methods, "--out", str(first)]) == 0
    res = json.loads((first / "results.json").read_text())
    s = res["summary"]
    assert set(s) == set(methods)
    # an untrained mask network is the analytic mask; an untrained residual inpainter is diffusion
    assert s["learned"]["0.2"]["mae255"]["mean"] == pytest.approx(s["analytic"]["0.2"]["mae255"]["mean"], rel=1e-6)
    assert s["learned-residual"]["0.2"]["mae255"]["mean"] == pytest.approx(s["learned"]["0.2"]["mae255"]["mean"],
                                                                            rel=1e-5)
    # the same pair as a joint run: the same row
    assert s["joint"]["0.2"]["mae255"]["mean"] == s["learned-residual"]["0.2"]["mae255"]["mean"]
    # refinement keeps a mask unless it lowers diffusion's loss; an untrained R is diffusion
    assert s["joint-refine"]["0.2"]["mae255"]["mean"] <= s["joint"]["0.2"]["mae255"]["mean"] * 1.05
    assert s["analytic-refine"]["0.2"]["mae255"]["mean"] <= s["analytic"]["0.2"]["mae255"]["mean"] * 1.05
    assert "learned + diffusion" in (first / "report.md").read_text()
    assert "joint-mask-0.2" in res["models"] and "joint-inpainter-0.2" in res["models"]
    assert "joint-inpainter-refined-0.2" not in res["models"]      # a user's pair: its own inpainter throughout
    second = tmp_path / "e2"
    assert main(base + ["--methods", "random-diffusion", "--reuse", str(first / "results.json"),
                        "--out", str(second)]) == 0
    res2 = json.loads((second / "results.json").read_text())
    assert res2["per_image"]["random-diffusion"] == [] or \
        res2["per_image"]["random-diffusion"]["0.2"] == [dict(row, reused=True)
                                                         for row in res["per_image"]["random-diffusion"]["0.2"]]
    assert "rows reused from" in (second / "report.md").read_text()
    # other crops: nothing reused, said so
    third = tmp_path / "e3"
    assert main(base + ["--methods", "random-diffusion", "--seed", "1", "--reuse", str(first / "results.json"),
                        "--out", str(third)]) == 0
    assert "nothing reused" in (third / "report.md").read_text()


def test_a_colour_image_with_a_shipped_grey_model_is_told_to_pass_grey(tmp_path, capsys):
    """The shipped mask and inpainting networks are grey: a colour photo is refused with the way out (--grey),
    before any work, and --grey then runs."""
    photo = write_image(tmp_path / "rgb.png", torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(0)))
    mask = write_image(tmp_path / "m.png", (torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(1)) < 0.2)
                       .float())
    for argv in (["mask", str(photo), "--density", "0.1", "--method", "learned"],
                 ["inpaint", str(photo), "--mask", str(mask), "--method", "learned"]):
        assert main(argv + ["--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is colour" in err[0] and "pass --grey" in err[0], (argv, err)
        assert not (tmp_path / "o").exists()
    assert main(["mask", str(photo), "--density", "0.1", "--method", "learned", "--grey", "--out",
                 str(tmp_path / "g")]) == 0
