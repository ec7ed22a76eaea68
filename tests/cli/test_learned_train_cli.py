"""`pdeflow train masknet` and `pdeflow train residual`: a tiny run writes a run directory, bad options exit 2."""
import json

import pytest

from pdeflow.cli import build_parser, main
from pdeflow.inpaint.training.masknet import MaskNetConfig
from pdeflow.inpaint.training.residual import ResidualConfig

TINY = ["--steps", "2", "--crop", "16", "--batch-size", "2", "--val-crops", "2", "--widths", "4",
        "--val-every", "2", "--seed", "3", "--quiet"]


@pytest.mark.parametrize("command, cls", [("masknet", MaskNetConfig), ("residual", ResidualConfig)])
def test_tiny_run_writes_the_run_dir_with_the_options(tmp_path, command, cls, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", command, *TINY, "--run-dir", str(run_dir)]) == 0
    cfg = json.loads((run_dir / "config.json").read_text())
    # the options reached the config; fields that are not options keep the dataclass defaults
    assert (cfg["steps"], cfg["crop"], cfg["batch_size"], cfg["seed"], list(cfg["widths"])) == (2, 16, 2, 3, [4])
    assert cfg["lr_final"] == cls().lr_final
    assert (run_dir / "model.json").is_file() and (run_dir / "model.safetensors").is_file()
    assert "model:" in capsys.readouterr().out


def test_masknet_for_all_densities_and_residual_without_normalisation(tmp_path, capsys):
    assert main(["train", "masknet", *TINY, "--density", "all", "--run-dir", str(tmp_path / "m")]) == 0
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["density"] is None and cfg["density_input"]
    assert "for all densities (0.05, 0.1, 0.2)" in capsys.readouterr().out
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["config"]["model"]["density"] is None
    assert main(["train", "residual", *TINY, "--no-normalize", "--run-dir", str(tmp_path / "r")]) == 0
    assert json.loads((tmp_path / "r" / "model.json").read_text())["config"]["model"]["normalize"] is False


def test_residual_critic_options_reach_the_run(tmp_path):
    """--alpha, --critic-width and --critic-lr train the residual inpainter with a critic (Peter, 2022)."""
    run_dir = tmp_path / "run"
    tiny = [*TINY[:2], "--crop", "32", *TINY[4:]]
    assert main(["train", "residual", *tiny, "--alpha", "0.005", "--critic-width", "0.05", "--critic-lr", "2e-4",
                 "--run-dir", str(run_dir)]) == 0
    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["alpha"], cfg["critic_width"], cfg["critic_lr"]) == (0.005, 0.05, 2e-4)
    log = (run_dir / "log.csv").read_text().splitlines()
    assert "loss_critic" in log[0] and len(log) > 1                 # the critic trained beside the inpainter


@pytest.mark.parametrize("argv, name", [
    (["train", "masknet", "--density", "most"], "--density"),
    (["train", "masknet", "--density", "1.5"], "--density"),
    (["train", "masknet", "--widths", "0"], "--widths"),
    (["train", "residual", "--stage", "magic"], "--stage"),
    (["train", "residual", "--stage", "joint"], "--mask-models"),      # joint needs exactly one mask network
    (["train", "residual", "--data", "no/such/dir"], "--data"),
    (["train", "residual", "--alpha", "-0.1"], "--alpha"),
    (["train", "residual", "--alpha", "0.005", "--crop", "48"], "--crop"),   # the critic's strides need 32 | crop
    (["train", "residual", "--critic-width", "0"], "--critic-width"),
])
def test_bad_option_exits_2_with_one_error_line(tmp_path, capsys, argv, name):
    run_dir = tmp_path / "run"
    assert main([*argv, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line.lower()]   # argparse: usage, then one line
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0] == err.strip().splitlines()[-1]
    assert errors[0].startswith(f"pdeflow train {argv[1]}: error: argument {name}")
    assert not run_dir.exists()


@pytest.mark.parametrize("stage, config_stage", [("masknet", None), ("residual", "residual")])
def test_train_inpainting_stage_runs_the_stage_command(tmp_path, stage, config_stage):
    # `pdeflow train inpainting --stage S` (the interface) is the stage's own command, options and all
    run_dir = tmp_path / "run"
    assert main(["train", "inpainting", *TINY[:4], "--stage", stage, *TINY[4:], "--run-dir", str(run_dir)]) == 0
    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["steps"], cfg["crop"], list(cfg["widths"])) == (2, 16, [4])
    assert cfg.get("stage") == config_stage
    assert (run_dir / "model.json").is_file()


def test_train_inpainting_stage_picks_the_parser_of_its_options(tmp_path, capsys):
    # argparse itself: --stage (anywhere on the line) hands the whole command line to the stage's parser
    parse = build_parser().parse_args
    a = parse(["train", "inpainting", "--steps", "3", "--stage", "masknet", "--widths", "4", "--run-dir", "r"])
    assert (a.steps, list(a.widths), a.run.__name__) == (3, [4], "_run_masknet") and not hasattr(a, "width")
    a = parse(["train", "inpainting", "--stage=joint", "--steps", "3", "--run-dir", "r"])
    assert (a.stage, a.steps, a.run.__name__) == ("joint", 3, "_run_residual") and hasattr(a, "mask_models")
    a = parse(["train", "inpainting", "--width", "0.5", "--stage", "mask", "--run-dir", "r"])
    assert (a.stage, a.width, a.run.__name__) == ("mask", 0.5, "_run_train") and not hasattr(a, "widths")
    assert parse(["train", "inpainting", "--run-dir", "r"]).stage == "wgan"
    # another stage's option is refused, by the subcommand given
    assert main(["train", "inpainting", "--stage", "masknet", "--alpha", "0.5",
                 "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("pdeflow train inpainting: error: unrecognized arguments: "
                                                   "--alpha 0.5;")
    assert main(["train", "inpainting", "--stage", "masknet", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pdeflow train inpainting") and "--widths" in out and "--width " not in out
    assert not (tmp_path / "run").exists()
