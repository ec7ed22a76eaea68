"""The table of inpainting operators (pdeflow.inpaint.operators.OPERATORS): every registered operator is tested by
being registered. Its public function inpaints through ``pdeflow.inpaint.inpaint(method=name)``, keeps the known
pixels, reproduces a constant image, agrees with its unchecked solve, works batched and in colour, and masks
densified for it (``densify_mask(operator=name)``) inpaint better than random ones. The CLI's ``--holes`` and
``--operator`` are checked at the end."""
import numpy as np
import pytest
import torch

from pdeflow import io as pio
from pdeflow.cli import main
from pdeflow.errors import UserInputError
from pdeflow.inpaint import INPAINT_METHODS, densify_mask, inpaint, random_mask
from pdeflow.inpaint.operators import OPERATORS
from pdeflow.metrics import mse

NAMES = list(OPERATORS)


def _scene(size=24, channels=1, seed=0):
    """A smooth image with an edge: a ramp plus a disc, and a little texture."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                          torch.linspace(0, 1, size, dtype=torch.float64), indexing="ij")
    disc = ((x - 0.55) ** 2 + (y - 0.45) ** 2 < 0.08).double()
    chans = [0.2 + 0.3 * x + 0.4 * disc * (1 + 0.3 * c) + 0.02 * torch.rand(size, size, generator=g,
                                                                                  dtype=torch.float64)
             for c in range(channels)]
    return torch.stack(chans)[None]


def _mask(size=24, density=0.15, seed=1):
    return random_mask((1, 1, size, size), density, generator=seed, dtype=torch.float64)


def test_every_operator_is_an_inpainting_method():
    for name, op in OPERATORS.items():
        assert name in INPAINT_METHODS and INPAINT_METHODS[name].function is op.function


@pytest.mark.parametrize("name", NAMES)
def test_known_pixels_are_kept_and_a_constant_is_reproduced(name):
    f, m = _scene(), _mask()
    u = inpaint(f, m, method=name)
    assert u.shape == f.shape and u.dtype == f.dtype and torch.isfinite(u).all()
    known = m.expand_as(f) > 0
    assert torch.equal(u[known], f[known])
    c = torch.full_like(f, 0.37)
    assert torch.allclose(inpaint(c, m, method=name), c, atol=1e-3)            # at the default tolerance
    assert torch.allclose(inpaint(c, m, method=name, tol=1e-9), c, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_the_unchecked_solve_is_the_public_function(name):
    f, m = _scene(), _mask()
    u = inpaint(f, m, method=name, tol=1e-7)
    v = OPERATORS[name].solve(f, m, u0=None, tol=1e-7)
    assert float((u - v).abs().max()) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_batched_and_colour_equal_one_image_at_a_time(name):
    f = torch.cat([_scene(channels=3, seed=s) for s in range(2)])
    m = torch.cat([_mask(seed=1), _mask(seed=2)])
    u = inpaint(f, m, method=name)
    for b in range(2):
        ub = inpaint(f[b:b + 1], m[b:b + 1], method=name)
        assert float((u[b:b + 1] - ub).abs().max()) < 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_float32_is_float64_within_tolerance(name):
    f, m = _scene(), _mask()
    u64 = inpaint(f, m, method=name)
    u32 = inpaint(f.float(), m.float(), method=name)
    assert u32.dtype == torch.float32
    assert float((u32.double() - u64).abs().max()) < 2e-3


@pytest.mark.parametrize("name", NAMES)
def test_a_mask_densified_for_the_operator_beats_a_random_one(name):
    f = _scene(size=32)
    m = densify_mask(f, 0.08, operator=name)
    assert int(m.sum()) == round(0.08 * 32 * 32)
    r = random_mask((1, 1, 32, 32), 0.08, generator=3, dtype=torch.float64)
    assert float(mse(inpaint(f, m, method=name), f)) < float(mse(inpaint(f, r, method=name), f))


@pytest.mark.parametrize("name", NAMES)
def test_integer_images_are_refused_by_name(name):
    f = (_scene() * 255).to(torch.uint8)
    with pytest.raises(UserInputError):
        inpaint(f, _mask(), method=name)


def _write(path, a):
    pio.write_image(path, torch.as_tensor(a, dtype=torch.float32)[None])


@pytest.fixture
def hole_files(tmp_path):
    f = _scene(size=32)[0, 0].numpy()
    holes = np.zeros((32, 32))
    holes[14:17, 3:29] = 1
    _write(tmp_path / "im.png", f)
    _write(tmp_path / "holes.png", holes)
    return tmp_path


@pytest.mark.parametrize("name", NAMES)
def test_cli_inpaints_holes_with_each_operator(hole_files, name, capsys):
    out = hole_files / f"out_{name}"
    assert main(["inpaint", str(hole_files / "im.png"), "--holes", str(hole_files / "holes.png"), "--method", name,
                 "--out", str(out)]) == 0
    u = pio.read_image(out / "inpainted.png", grey=True)
    f = pio.read_image(hole_files / "im.png", grey=True)
    holes = pio.read_image(hole_files / "holes.png", grey=True) > 0.5
    assert torch.equal(u[~holes], f[~holes])       # outside the holes: the image as it was (8-bit round trip)
    assert float((u - f)[holes].abs().mean()) < 0.05


def test_cli_holes_refuse_an_image_that_is_all_holes_or_not_binary(hole_files, capsys):
    _write(hole_files / "all.png", np.ones((32, 32)))
    _write(hole_files / "grey.png", np.full((32, 32), 0.5))
    for holes, words in (("all.png", "no known pixel"), ("grey.png", "1 = missing")):
        assert main(["inpaint", str(hole_files / "im.png"), "--holes", str(hole_files / holes), "--out",
                     str(hole_files / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "argument --holes" in err[0] and words in err[0]
    assert not (hole_files / "o").exists()


def test_cli_mask_operator_densifies_for_the_operator(hole_files, capsys):
    out = hole_files / "m"
    assert main(["mask", str(hole_files / "im.png"), "--density", "0.1", "--operator", NAMES[-1], "--out",
                 str(out)]) == 0
    assert f"for {NAMES[-1]} inpainting" in capsys.readouterr().out
    assert main(["mask", str(hole_files / "im.png"), "--density", "0.1", "--method", "analytic", "--operator",
                 NAMES[-1], "--out", str(hole_files / "m2")]) == 2
    assert "only for --method densify" in capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_cli_tol_is_the_methods_own_tolerance(hole_files, name, monkeypatch, capsys):
    """``pdeflow inpaint --tol`` reaches every operator; without it each runs at its own default."""
    import pdeflow.cli.inpaint as cli_inpaint

    seen = []

    def recording(*args, **kwargs):
        seen.append(kwargs.get("tol"))
        return inpaint(*args, **kwargs)

    monkeypatch.setattr(cli_inpaint, "inpaint", recording)
    common = ["inpaint", str(hole_files / "im.png"), "--holes", str(hole_files / "holes.png"), "--method", name]
    assert main(common + ["--tol", "1e-7", "--out", str(hole_files / f"t_{name}")]) == 0
    assert main(common + ["--out", str(hole_files / f"d_{name}")]) == 0
    assert seen == [1e-7, None]
