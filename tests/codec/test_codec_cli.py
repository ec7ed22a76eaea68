"""``pdeflow compress``, ``decompress`` and ``evaluate codec``: the round trip through a file, the budget flags,
one-line errors (exit status 2) that leave no file behind, a damaged file refused, the evaluation's report."""
from __future__ import annotations

import json

import pytest
import torch

from pdeflow import cli
from pdeflow.cli import codec as codec_cli
from pdeflow.codec.format import LAYER_INPAINTING, read_header, read_layers
from pdeflow.evaluate import codec as ev
from pdeflow.io import read_image, write_image
from pdeflow.metrics import psnr


def _registered() -> bool:
    sub = cli.build_parser()._subparsers._group_actions[0]
    return "compress" in sub.choices


@pytest.fixture
def run(monkeypatch, capsys):
    """``run(*argv) -> (status, stdout, stderr)`` through ``pdeflow.cli.main``. While cli/__init__.py does not
    register the codec's commands yet, they are added to its parser here (argparse's subparsers actions)."""
    if not _registered():
        build = cli.build_parser

        def with_codec():
            parser = build()
            sub = parser._subparsers._group_actions[0]
            codec_cli.add_parsers(sub)
            codec_cli.add_evaluate_parser(sub.choices["evaluate"]._subparsers._group_actions[0])
            return parser
        monkeypatch.setattr(cli, "build_parser", with_codec)

    def go(*argv):
        status = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err
    return go


def test_the_codec_commands_are_registered():
    assert _registered(), "cli/__init__.py: register codec.add_parsers(sub) and codec.add_evaluate_parser(evaluate)"


@pytest.fixture
def image(tmp_path):
    """A 48 x 64 grey piecewise-smooth PNG."""
    u = ev.smooth_set(1, size=64, seed=4)["smooth-0"][:, :48]
    path = tmp_path / "in.png"
    write_image(path, u)
    return path, read_image(path)


def test_compress_and_decompress_round_trip_within_the_budget(run, image, tmp_path):
    path, u = image
    status, out, err = run("compress", path, "--bpp", 1.0, "--out", tmp_path / "c" / "x.pdc")
    assert status == 0, err
    data = (tmp_path / "c" / "x.pdc").read_bytes()
    assert 0 < len(data) <= 48 * 64 / 8 and f"{len(data)} bytes" in out
    status, out, err = run("decompress", tmp_path / "c" / "x.pdc", "--out", tmp_path / "d" / "y.png")
    assert status == 0, err
    v = read_image(tmp_path / "d" / "y.png")
    assert v.shape == u.shape
    flat = torch.full_like(u, float(u.mean()))
    assert float(psnr(v, u, data_range=1.0)) > float(psnr(flat, u, data_range=1.0)) + 3
    status, _, err = run("decompress", tmp_path / "c" / "x.pdc", "--out", tmp_path / "d" / "y16.tif", "--bits", 16)
    assert status == 0, err and read_image(tmp_path / "d" / "y16.tif").shape == u.shape


@pytest.mark.slow   # an EED encoding
def test_compress_with_eed_records_it_and_decompresses(run, image, tmp_path):
    path, u = image
    status, out, err = run("compress", path, "--bpp", 1.0, "--operator", "eed", "--out", tmp_path / "e.pdc")
    assert status == 0, err
    assert "eed" in out and read_header((tmp_path / "e.pdc").read_bytes())[0].operator == 1
    status, _, err = run("decompress", tmp_path / "e.pdc", "--out", tmp_path / "e.png")
    assert status == 0, err and read_image(tmp_path / "e.png").shape == u.shape
    status, _, err = run("compress", path, "--bpp", 1.0, "--operator", "tv", "--out", tmp_path / "t.pdc")
    assert status == 2 and "--operator" in err and "invalid choice" in err and not (tmp_path / "t.pdc").exists()


@pytest.mark.slow   # encodings per layer choice
def test_compress_layers_chooses_what_the_file_codes(run, image, tmp_path):
    """--layers inpainting writes a version-1 file, --layers wavelet the wavelet layer alone, each as encode(split=)
    does; best (the default) the one of smaller error."""
    from pdeflow.codec import encode
    path, u = image
    for layers, split, version, kinds in (("inpainting", 1.0, 1, 1), ("wavelet", 0.0, 2, 2)):
        status, out, err = run("compress", path, "--bpp", 1.0, "--layers", layers, "--out", tmp_path / f"{layers}.pdc")
        assert status == 0, err
        data = (tmp_path / f"{layers}.pdc").read_bytes()
        assert data[4] == version and read_layers(data)[0].layers == kinds
        assert data == encode(u, bpp=1.0, split=split)
    status, _, err = run("compress", path, "--bpp", 1.0, "--layers", "both", "--out", tmp_path / "b.pdc")
    assert status == 2 and "--layers" in err and "invalid choice" in err and not (tmp_path / "b.pdc").exists()


@pytest.mark.slow   # a colour encoding under a byte budget
def test_compress_meets_a_budget_in_bytes_and_keeps_colour(run, tmp_path):
    grey = ev.smooth_set(3, size=48, seed=2)
    path = tmp_path / "rgb.png"
    write_image(path, torch.cat(list(grey.values())))
    status, _, err = run("compress", path, "--size", 900, "--out", tmp_path / "x.pdc")
    assert status == 0, err
    assert len((tmp_path / "x.pdc").read_bytes()) <= 900
    assert run("decompress", tmp_path / "x.pdc", "--out", tmp_path / "y.png")[0] == 0
    assert read_image(tmp_path / "y.png").shape == (3, 48, 48)
    status, _, err = run("compress", path, "--size", 600, "--grey", "--out", tmp_path / "g.pdc")
    assert status == 0, err
    assert run("decompress", tmp_path / "g.pdc", "--out", tmp_path / "g.png")[0] == 0
    assert read_image(tmp_path / "g.png").shape == (1, 48, 48)


def _one_line_error(status, err, *words):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("flags, words", [
    ([], ["--bpp", "--size", "required"]),
    (["--bpp", "0.1", "--size", "100"], ["--size", "not allowed with", "--bpp"]),
    (["--bpp", "0"], ["--bpp", "> 0"]),
    (["--bpp", "x"], ["--bpp"]),
    (["--size", "-3"], ["--size"]),
    (["--size", "2.5"], ["--size", "integer"]),
])
def test_the_budget_flags(run, image, tmp_path, flags, words):
    status, _, err = run("compress", image[0], *flags, "--out", tmp_path / "x.pdc")
    _one_line_error(status, err, *words)
    assert not (tmp_path / "x.pdc").exists()


def test_compress_refuses_a_missing_image_and_a_folder_as_out(run, image, tmp_path):
    _one_line_error(*run("compress", tmp_path / "none.png", "--bpp", 1, "--out", tmp_path / "x.pdc")[::2],
                    "IMAGE", "no such file")
    _one_line_error(*run("compress", image[0], "--bpp", 1, "--out", f"{tmp_path}/")[::2], "--out")


@pytest.mark.slow   # encodings searched for a budget
def test_compress_refuses_an_impossible_budget_and_an_existing_file(run, image, tmp_path):
    target = tmp_path / "x.pdc"
    status, _, err = run("compress", image[0], "--size", 4, "--out", target)
    _one_line_error(status, err, "--size")
    assert not target.exists() and not list(tmp_path.glob(".*"))              # no partial file
    assert run("compress", image[0], "--bpp", 1, "--out", target)[0] == 0
    before = target.read_bytes()
    _one_line_error(*run("compress", image[0], "--bpp", 2, "--out", target)[::2], "--out", "--overwrite")
    assert target.read_bytes() == before
    assert run("compress", image[0], "--bpp", 2, "--out", target, "--overwrite")[0] == 0


def test_decompress_refuses_a_file_that_is_not_a_codec_file(run, tmp_path):
    bad = tmp_path / "bad.pdc"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    status, out, err = run("decompress", bad, "--out", tmp_path / "o" / "y.png")
    _one_line_error(status, err, "FILE", "bad.pdc")
    assert not (tmp_path / "o").exists()
    _one_line_error(*run("decompress", tmp_path / "none.pdc", "--out", tmp_path / "y.png")[::2], "FILE",
                    "no such file")
    _one_line_error(*run("decompress", bad, "--out", tmp_path / "y.jpg")[::2], "--out", ".png")


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    """The bytes of ``image``'s picture compressed by the command at 1 bpp, made once for the damage cases."""
    d = tmp_path_factory.mktemp("compressed")
    write_image(d / "in.png", ev.smooth_set(1, size=64, seed=4)["smooth-0"][:, :48])
    assert cli.main(["compress", str(d / "in.png"), "--bpp", "1", "--out", str(d / "x.pdc")]) == 0
    return (d / "x.pdc").read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "header only", "empty"])
def test_decompress_refuses_a_damaged_file_with_one_line(run, compressed, tmp_path, damage):
    data = bytearray(compressed)
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    elif damage == "flipped":
        data[len(data) // 2] ^= 0x40
    elif damage == "header only":
        data = data[:12]
    else:
        data = b""
    bad = tmp_path / "bad.pdc"
    bad.write_bytes(bytes(data))
    status, _, err = run("decompress", bad, "--out", tmp_path / "y.png")
    _one_line_error(status, err, "FILE")
    assert not (tmp_path / "y.png").exists()


def test_evaluate_codec_on_two_tiny_images_with_the_builtin_baselines(run, tmp_path):
    status, out, err = run("evaluate", "codec", "--no-builtin", "--smooth", 2, "--size", 64,
                           "--codecs", "jpeg", "jpeg2000", "--rates", 0.3, 2, "--out", tmp_path / "e")
    assert status == 0, err
    names = sorted(p.name for p in (tmp_path / "e").iterdir())
    assert names == ["rd.png", "report.md", "results.json"]
    res = json.loads((tmp_path / "e" / "results.json").read_text())
    assert len(res["rows"]) == 2 * 2 * 2 and set(res["sets"]) == {"smooth"}
    text = (tmp_path / "e" / "report.md").read_text()
    assert "JPEG at 0.3 bpp: 2 image(s) do not fit" in text          # 153 bytes: less than JPEG's headers
    assert "| JPEG 2000 |" in text and "BD-rate" in text
    status, _, err = run("evaluate", "codec", "--no-builtin", "--smooth", 2, "--size", 64, "--codecs", "jpeg",
                         "--out", tmp_path / "e")
    _one_line_error(status, err, "--out", "--overwrite")


def test_evaluate_codec_argument_errors(run, tmp_path, monkeypatch):
    _one_line_error(*run("evaluate", "codec", "--image-dir", tmp_path / "none", "--out", tmp_path / "e")[::2],
                    "--image-dir")
    _one_line_error(*run("evaluate", "codec", "--no-builtin", "--smooth", 0, "--out", tmp_path / "e")[::2],
                    "no image set")
    _one_line_error(*run("evaluate", "codec", "--colour", "--smooth", 3, "--out", tmp_path / "e")[::2], "--smooth")
    _one_line_error(*run("evaluate", "codec", "--codecs", "png", "--out", tmp_path / "e")[::2], "--codecs")
    _one_line_error(*run("evaluate", "codec", "--rates", 0.1, 0.1, "--out", tmp_path / "e")[::2], "--rates")
    monkeypatch.setitem(__import__("sys").modules, "imagecodecs", None)       # the optional package missing
    status, _, err = run("evaluate", "codec", "--no-builtin", "--smooth", 1, "--size", 32, "--codecs", "jpeg",
                         "avif", "--out", tmp_path / "e")
    _one_line_error(status, err, "--codecs", "imagecodecs", "pip install")
    assert not (tmp_path / "e").exists()


@pytest.mark.slow   # encodings per layer set
def test_compress_says_which_layers_the_file_holds(run, image, tmp_path):
    # the encoder keeps the inpainting or the wavelet layer, whichever codes the image better: the message names
    # what the file holds, not the --operator asked for (which a wavelet-only file records but does not use)
    path, _ = image
    status, out, err = run("compress", path, "--bpp", 0.5, "--operator", "eed", "--out", tmp_path / "w.pdc")
    assert status == 0, err
    layers = read_layers((tmp_path / "w.pdc").read_bytes(), None)[0].layers
    assert ("eed inpainting" in out) == bool(layers & LAYER_INPAINTING), out
    assert ("wavelet layer" in out) == (layers != LAYER_INPAINTING), out


@pytest.mark.slow   # a colour encoding; tests/core/test_layouts.py keeps the layout rule
def test_decompress_writes_the_image_of_a_file_encoded_channels_last(run, tmp_path):
    """A file from ``encode`` of an (H, W, 3) array records that layout; ``decompress`` writes the same image file as
    for the channels-first one (an image file has its own layout), and ``compress`` of a PNG records channels first."""
    from pdeflow.codec import encode
    grey = ev.smooth_set(3, size=32, seed=5)
    rgb = torch.cat(list(grey.values()))
    last = encode(rgb.movedim(0, -1), bpp=2.0, channel_axis=-1)
    assert read_header(last)[0].channels_last
    (tmp_path / "last.pdc").write_bytes(last)
    (tmp_path / "first.pdc").write_bytes(encode(rgb, bpp=2.0))
    for name in ("last", "first"):
        status, out, err = run("decompress", tmp_path / f"{name}.pdc", "--out", tmp_path / f"{name}.png")
        assert status == 0 and "32x32, colour" in out, err
    assert (tmp_path / "last.png").read_bytes() == (tmp_path / "first.png").read_bytes()
    status, _, err = run("decompress", tmp_path / "last.pdc", tmp_path / "first.pdc", "--out", tmp_path / "batch")
    assert status == 0, err
    assert read_image(tmp_path / "batch" / "last.png").shape == (3, 32, 32)
    write_image(tmp_path / "rgb.png", rgb)
    assert run("compress", tmp_path / "rgb.png", "--bpp", 2.0, "--out", tmp_path / "c.pdc")[0] == 0
    assert not read_header((tmp_path / "c.pdc").read_bytes())[0].channels_last
