"""What a new user meets in the first minutes (issue "The first minutes, again"): the codec's encoder refuses up
front what its decoder would refuse (``max_pixels`` / ``--max-pixels`` on both sides) and shows progress on
large images; encode's errors name the option they come from; ``decompress`` prints H x W; encode takes the
(H, W, 3) arrays that ``np.asarray(PIL.Image)`` gives."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from pdeflow import cli
from pdeflow.codec import MAX_PIXELS, decode, encode
from pdeflow.errors import UserInputError
from pdeflow.io import read_image, write_image


def _run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _smooth(h: int, w: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return (0.5 + 0.4 * torch.sin(3 * x) * torch.cos(2 * y))[None]


# ------------------------------------------------------------------ the encoder refuses what the decoder refuses

def test_encode_refuses_an_image_larger_than_the_decoders_limit_before_any_work():
    side = int(MAX_PIXELS ** 0.5) + 1           # one pixel more per side than the decoder's default accepts
    image = torch.empty(side, side)             # uninitialised: refused before its values are read
    with pytest.raises(UserInputError, match=rf"encode: image of {side} x {side} = {side * side} pixels is larger "
                                             rf"than max_pixels={MAX_PIXELS}"):
        encode(image, bpp=0.1)
    with pytest.raises(UserInputError, match="max_pixels must be an int >= 4 or None"):
        encode(torch.rand(8, 8), bpp=1.0, max_pixels=2.5)


def test_max_pixels_on_both_sides_of_the_command(tmp_path, capsys):
    write_image(tmp_path / "in.png", _smooth(40, 64))
    f = tmp_path / "x.pdc"
    status, _, err = _run(capsys, "compress", tmp_path / "in.png", "--bpp", 1, "--max-pixels", 2000, "--out", f)
    assert status == 2 and not f.exists()
    assert err.strip() == ("pdeflow compress: error: argument IMAGE: image of 40 x 64 = 2560 pixels is larger than "
                           "--max-pixels 2000 (by default the decoder's limit, MAX_PIXELS): pass a larger "
                           "--max-pixels, to compress and to decompress")
    assert _run(capsys, "compress", tmp_path / "in.png", "--bpp", 1, "--max-pixels", 2560, "--out", f)[0] == 0
    status, _, err = _run(capsys, "decompress", f, "--max-pixels", 2559, "--out", tmp_path / "y.png")
    assert status == 2 and not (tmp_path / "y.png").exists()
    assert "more than --max-pixels 2559 (--max-pixels accepts larger images)" in err
    status, out, _ = _run(capsys, "decompress", f, "--max-pixels", 2560, "--out", tmp_path / "y.png")
    assert status == 0
    assert "): 40x64, grey," in out                          # H x W, as every other command prints it
    assert read_image(tmp_path / "y.png").shape == (1, 40, 64)


@pytest.mark.slow   # an encoding of a photo
def test_encode_reports_progress_when_asked(capsys):
    encode(_smooth(32, 32), bpp=0.5, progress=True)
    err = capsys.readouterr().err
    assert "encode: 100%" in err
    encode(_smooth(32, 32), bpp=0.5)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ encode's errors name their own option

def test_a_one_pixel_image_is_blamed_on_image_not_on_the_budget(tmp_path, capsys):
    write_image(tmp_path / "one.png", torch.zeros(1, 1, 1))
    for budget in (["--bpp", 1], ["--size", 100]):
        status, _, err = _run(capsys, "compress", tmp_path / "one.png", *budget, "--out", tmp_path / "o.pdc")
        assert status == 2
        assert err.startswith("pdeflow compress: error: argument IMAGE: image must be at least 2x2 pixels"), err
    status, _, err = _run(capsys, "compress", "builtin:skimage/camera", "--size", 5, "--out", tmp_path / "o.pdc")
    assert status == 2 and err.startswith("pdeflow compress: error: argument --size: --size 5 bytes is too small"), err
    assert "give --size >= 34" in err, err


# ------------------------------------------------------------------ channels last

@pytest.mark.slow   # two colour encodings; tests/core/test_layouts.py's test_codec_round_trip_keeps_channels_last
# encodes and decodes the same channels-last array in make test
def test_encode_takes_channels_last_arrays_as_pil_gives_them():
    rgb = (np.random.default_rng(0).random((24, 40, 3)) * 255).astype(np.uint8)       # np.asarray(PIL.Image)
    from pdeflow.codec.format import with_layout
    data = encode(rgb, bpp=2.0)
    # the same file as of the channels-first image but for the layout it records, and decoded in that layout
    assert with_layout(data, False) == encode(np.ascontiguousarray(np.moveaxis(rgb, -1, 0)), bpp=2.0)
    assert decode(data).shape == (24, 40, 3)
    with pytest.raises(UserInputError, match=r"alpha channel \(H, W, 4\).*image\[\.\.\., :3\]"):
        encode(np.zeros((24, 40, 4), np.uint8), bpp=2.0)


# ------------------------------------------------------------------ inpaint --holes, --method wgan

def test_inpainting_holes_writes_no_errors_against_the_damaged_image(tmp_path, capsys):
    damaged = _smooth(32, 40)
    holes = torch.zeros(1, 32, 40)
    holes[:, 10:13, 5:35] = 1                    # a scratch (white = missing)
    damaged[holes > 0] = 1.0                     # painted over the photo, as a scratch is
    write_image(tmp_path / "damaged.png", damaged)
    write_image(tmp_path / "holes.png", holes)
    status, out, _ = _run(capsys, "inpaint", tmp_path / "damaged.png", "--holes", tmp_path / "holes.png",
                          "--out", tmp_path / "o")
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["inpaint_figure.png", "inpainted.png"]
    assert "no errors: IMAGE is the damaged image" in out and "PSNR" not in out
    u = read_image(tmp_path / "o" / "inpainted.png")
    assert float(u[holes > 0].max()) < 0.95      # the scratch is filled from its surroundings


def test_wgan_without_a_model_blames_the_method_and_its_help_says_none_is_shipped(tmp_path, capsys):
    from pdeflow.inpaint import INPAINT_METHODS

    try:
        INPAINT_METHODS["wgan"].load_model(None)
    except (FileNotFoundError, ValueError):
        pass
    else:
        pytest.skip("an inpainting WGAN is shipped")
    write_image(tmp_path / "in.png", _smooth(16, 16))
    write_image(tmp_path / "m.png", (torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.3).float())
    status, _, err = _run(capsys, "inpaint", tmp_path / "in.png", "--mask", tmp_path / "m.png", "--method", "wgan",
                          "--out", tmp_path / "o")
    assert status == 2 and err.startswith("pdeflow inpaint: error: argument --method wgan: "), err
    assert "no inpainting WGAN is shipped" in err and not (tmp_path / "o").exists()
    status, out, _ = _run(capsys, "inpaint", "--help")
    assert status == 0 and "none is shipped" in " ".join(out.split())
    status, out, _ = _run(capsys, "--help")
    assert "WGAN from a model you trained" in " ".join(out.split())


# ------------------------------------------------------------------ rate control: the budget is used

@pytest.mark.slow   # two full encodings of the 512² astronaut; tests/codec keeps rate control on small images
@pytest.mark.parametrize("grey, size", [(None, 500), (True, 500)])
def test_rate_control_uses_the_budget_in_colour_and_grey(grey, size):
    """The colour astronaut at 500 B used 414 B: the one densification, sized by an estimate that colour's cheap
    chroma values beat, ended before the budget did; it is now extended while all its points fit."""
    from pdeflow import datasets

    f = datasets.builtin_image("skimage/astronaut", grey=grey)
    data = encode(f, size=size)
    assert 0.95 * size <= len(data) <= size


# ------------------------------------------------------------------ small things

def test_an_out_path_under_a_folder_that_takes_no_files_names_what_cannot_be_created(tmp_path, capsys):
    from pathlib import Path

    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc, a folder that takes no new files (even from root)")
    status, _, err = _run(capsys, "compress", "builtin:skimage/camera", "--size", 2000, "--out", "/proc/x/o.pdc")
    assert status == 2
    assert err.startswith("pdeflow compress: error: argument --out: cannot create '/proc/x' ('/proc' takes no new "
                          "files): "), err


def test_interrupting_a_command_that_is_not_training_does_not_mention_checkpoints(tmp_path, capsys, monkeypatch):
    import pdeflow.codec

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(pdeflow.codec, "encode", interrupted)
    status, _, err = _run(capsys, "compress", "builtin:skimage/camera", "--size", 2000, "--out", tmp_path / "o.pdc")
    assert status == 130 and not (tmp_path / "o.pdc").exists()
    assert err.strip() == "pdeflow compress: interrupted; its partial output files were removed"


@pytest.mark.slow   # an encoding of a photo; tests/codec keeps save and load in make test
def test_codec_save_refuses_to_overwrite_unless_asked(tmp_path):
    from pdeflow.codec import load, save

    f = _smooth(32, 32)
    path = save(tmp_path / "a.pdc", f, bpp=0.5)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"save: .*a\.pdc' already exists \(pass overwrite=True"):
        save(path, 1 - f, bpp=0.5)
    assert path.read_bytes() == before
    save(path, 1 - f, bpp=0.5, overwrite=True)
    assert path.read_bytes() != before and load(path).shape == (1, 32, 32)


def test_the_inpainting_guide_prints_the_densify_options_as_they_are():
    import re
    from pathlib import Path

    from pdeflow.inpaint import MASK_METHODS

    guide = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "inpaint.md").read_text()
    shown = re.search(r'print\(MASK_METHODS\["densify"\]\.options\)\s*# (\(.*\))', guide).group(1)
    assert shown == repr(MASK_METHODS["densify"].options)


# ------------------------------------------------------------------ one colour rule

def _colour_photo(tmp_path, alpha: bool = False):
    u = _smooth(24, 32)
    rgb = torch.cat([u, u.flip(-1), 1 - u])                          # three different channels
    path = tmp_path / ("rgba.png" if alpha else "rgb.png")
    if alpha:
        from PIL import Image
        a = (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(np.dstack([a, np.full(a.shape[:2], 128, np.uint8)]), "RGBA").save(path)
    else:
        write_image(path, rgb)
    return path


def test_every_image_command_keeps_colour_unless_grey_is_given(tmp_path, capsys):
    photo = _colour_photo(tmp_path)
    mask = tmp_path / "m.png"
    write_image(mask, (torch.rand(1, 24, 32, generator=torch.Generator().manual_seed(1)) < 0.3).float())
    assert _run(capsys, "inpaint", photo, "--mask", mask, "--out", tmp_path / "i")[0] == 0
    assert read_image(tmp_path / "i" / "inpainted.png").shape[0] == 3
    assert _run(capsys, "inpaint", photo, "--mask", mask, "--grey", "--out", tmp_path / "g")[0] == 0
    assert read_image(tmp_path / "g" / "inpainted.png").shape[0] == 1
    assert _run(capsys, "denoise", photo, "--lam", 0.05, "--out", tmp_path / "d")[0] == 0
    assert all(read_image(p).shape[0] == 3 for p in (tmp_path / "d").glob("*lam*.png"))
    status, out, _ = _run(capsys, "mask", photo, "--density", 0.1, "--method", "random", "--out", tmp_path / "k")
    assert status == 0 and "colour" in out
    status, out, _ = _run(capsys, "flow", photo, "--method", "net", "--times", 0.1, "--out", tmp_path / "f")
    assert status == 0 and "unet-colour" in out          # the shipped colour model, the coupled colour flow
    assert read_image(tmp_path / "f" / "net_t0.10.png").shape[0] == 3
    status, _, err = _run(capsys, "flow", photo, "--method", "net", "--model", "unet", "--times", 0.1,
                          "--out", tmp_path / "u")
    assert status == 2 and "is colour and the model takes 1 channel(s): pass --grey" in err, err


def test_an_alpha_channel_is_dropped_with_a_note(tmp_path, capsys):
    status, _, err = _run(capsys, "denoise", _colour_photo(tmp_path, alpha=True), "--lam", 0.05,
                          "--out", tmp_path / "d")
    assert status == 0
    assert "has an alpha channel (transparency); it is dropped" in err
    assert read_image(_colour_photo(tmp_path, alpha=True), return_info=True)[1]["alpha"] is True


# ------------------------------------------------------------------ a volume given without ndim=3

@pytest.mark.parametrize("name", ["inpaint_biharmonic", "inpaint_diffusion"])
def test_a_volume_like_array_without_ndim_is_taken_as_channels_with_a_notice(name):
    from pdeflow.inpaint import inpaint_diffusion
    from pdeflow.inpaint.checks import ChannelsWarning
    from pdeflow.inpaint.operators.biharmonic import inpaint_biharmonic

    fn = {"inpaint_biharmonic": inpaint_biharmonic, "inpaint_diffusion": inpaint_diffusion}[name]
    vol = torch.rand(6, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    m = torch.zeros(6, 10, 10)
    m[:, ::3, ::3] = 1
    with pytest.warns(ChannelsWarning, match=rf"{name}: f of shape \(6, 10, 10\) is taken as 6 channels of a 2-D "
                                             r"image \(C, H, W\); pass ndim=3 for a volume"):
        fn(vol, m)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChannelsWarning)
        fn(vol, m, ndim=3)                                        # said: a volume
        fn(vol[:3], m[:3])                                        # three channels: an RGB image
