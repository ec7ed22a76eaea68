"""What the library does with inputs it cannot take or that misled before: a model name or path for
``tvflownet.flow``, ``inpaint_diffusion`` under ``torch.compile``, unstable IELs, argument messages, a 2-D ``.npy``
given to ``read_volume``, 5-D tensors without ``ndim``, missing files, spectral bands past the computed times, integer
images. Each test failed before its fix."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import pdeflow
from pdeflow import inpaint, io, ops, tvflownet
from pdeflow.errors import InputDtypeError, InputFileNotFoundError, InputIsADirectoryError, UserInputError
from pdeflow.iel import AmplificationWarning, InverseEvolution, heat_iel_symbol, official_heat_iel, with_iels


def _image(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ------------------------------------------------------------ 1. tvflownet.flow takes a model name or path

def test_flow_takes_a_shipped_name_as_load_does():
    u0 = _image(1, 1, 16, 16)
    by_name = tvflownet.flow(u0, [0.1], "unet")
    torch.testing.assert_close(by_name, tvflownet.flow(u0, [0.1], tvflownet.load("unet")), rtol=0, atol=0)


def test_flow_takes_a_model_path_and_refuses_an_unknown_name(tmp_path):
    u0 = _image(1, 1, 12, 12, seed=1)
    net = tvflownet.load("semiresnet")
    io.save_model(net, tmp_path / "mine", config=net.meta["config"], provenance={})
    torch.testing.assert_close(tvflownet.flow(u0, [0.05], tmp_path / "mine.json"), tvflownet.flow(u0, [0.05], net),
                               rtol=0, atol=0)
    with pytest.raises(UserInputError, match="not shipped"):
        tvflownet.flow(u0, [0.05], "no-such-model")
    with pytest.raises(UserInputError, match="model must be"):
        tvflownet.flow(u0, [0.05], 3)


# ------------------------------------------------------------ 2. torch.compile around inpaint_diffusion

@pytest.mark.slow   # torch.compile's first compile
def test_diffuse_runs_under_torch_compile():
    torch._dynamo.reset()
    f = _image(1, 1, 12, 12, dtype=torch.float64)
    m = (_image(1, 1, 12, 12, seed=1) < 0.3).double()
    m[..., 0, 0] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # dynamo's notes on its graph breaks
        u = torch.compile(lambda x: pdeflow.inpaint_diffusion(x, m))(f)
    torch.testing.assert_close(u, pdeflow.inpaint_diffusion(f, m), rtol=0, atol=1e-12)


# ------------------------------------------------------------ 3. the IELs' amplification

def test_iels_that_overflow_float32_are_refused():
    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    with pytest.raises(UserInputError, match=r"\(1 \+ 0.5 \* 8\)\^60 = 8.7e\+41.*float32.*dt <= 0.015 with steps=60"):
        with_iels(net, "heat", dt=0.5, steps=60)


def test_iels_beyond_the_stable_range_warn_with_the_factor_and_a_stable_setting():
    net = torch.nn.Conv2d(1, 2, 3, padding=1)
    with pytest.warns(AmplificationWarning, match=r"= 4.6e\+07.*dt <= 0.032 with steps=30.*steps <= 11 with dt=0.1"):
        model = with_iels(net, "heat", dt=0.1, steps=30)
    assert issubclass(AmplificationWarning, UserWarning)
    assert model.iel.amplification() == pytest.approx(1.8 ** 30)
    ok = InverseEvolution("heat", dt=0.032, steps=30)
    assert ok.amplification() <= 1e3


@pytest.mark.parametrize("make, gain", [
    (lambda: with_iels(torch.nn.Identity(), "heat", dt=0.025, steps=30), 1.2 ** 30),   # official dt 0.1, 30 layers
    (lambda: with_iels(torch.nn.Identity(), "heat", dt=0.025, steps=20), 1.2 ** 20),   # official dt 0.1, 20 layers
    (lambda: with_iels(torch.nn.Identity(), official_heat_iel(0.1, 35)), 1.2 ** 35),
    (lambda: with_iels(torch.nn.Identity(), official_heat_iel(0.2, 10)), 1.4 ** 10),   # official dt 0.2, 10 layers
])
def test_the_papers_settings_are_in_the_stable_range(make, gain):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = make()
    assert model.iel.amplification() == pytest.approx(gain)


def test_volumes_are_checked_with_the_seven_point_rate():
    iel = InverseEvolution("heat", dt=0.05, steps=20)            # 1.4^20 = 837 on images, 1.6^20 = 1.2e4 on volumes
    with pytest.warns(AmplificationWarning, match=r"3-D.*1\.2e\+04"):
        iel(torch.zeros(1, 1, 3, 4, 4))


def test_the_guides_stable_range_matches_the_layers():
    from pathlib import Path
    text = Path(__file__).resolve().parents[2].joinpath("docs", "guide", "iel.md").read_text()
    assert "## The stable range" in text
    for dt, steps in ((0.032, 30), (0.015, 60), (0.025, 37), (0.05, 20)):
        assert InverseEvolution("heat", dt=dt, steps=steps).amplification() <= 1e3
    for dt, steps in ((0.025, 38), (0.05, 21)):
        with pytest.warns(AmplificationWarning):
            InverseEvolution("heat", dt=dt, steps=steps)


# ------------------------------------------------------------ 4. clear messages for bad arguments

@pytest.mark.parametrize("args, name", [((-4, 8, 0.025, 30), "H"), ((4, 0, 0.025, 30), "W"),
                                        ((4, 8, -0.1, 30), "dt"), ((4, 8, 0.025, 2.5), "steps")])
def test_heat_iel_symbol_names_a_bad_argument(args, name):
    with pytest.raises(UserInputError, match=rf"heat_iel_symbol: {name} must be"):
        heat_iel_symbol(*args)


def test_read_image_of_a_number_names_the_path():
    with pytest.raises(UserInputError, match="read_image: path must be a str or path-like"):
        io.read_image(3)


# ------------------------------------------------------------ 5. a 2-D .npy given to read_volume

def test_read_volume_of_a_2d_npy_says_how_to_read_it(tmp_path):
    np.save(tmp_path / "img.npy", np.zeros((5, 6), dtype=np.float32))
    with pytest.raises(UserInputError, match=r"2-D image.*numpy.load.*not \.npy") as caught:
        io.read_volume(tmp_path / "img.npy")
    assert "read it with pdeflow.io.read_image" not in str(caught.value)


# ------------------------------------------------------------ 6. 5-D tensors without ndim

@pytest.mark.parametrize("call", [lambda v: pdeflow.rof(v, 0.1), lambda v: pdeflow.tv_flow(v, [0.1]),
                                  lambda v: pdeflow.spectral_tv(v, dt=0.1, n_steps=2),
                                  lambda v: pdeflow.inpaint_diffusion(v, torch.ones_like(v)), lambda v: ops.tv(v)])
def test_a_5d_tensor_without_ndim_is_refused_with_a_pointer_to_ndim(call):
    v = _image(1, 1, 3, 6, 6)
    with pytest.raises(UserInputError, match="needs ndim=3"):
        call(v)


def test_the_data_guide_says_what_the_solvers_do_with_5d_input():
    from pathlib import Path
    text = Path(__file__).resolve().parents[2].joinpath("docs", "guide", "data.md").read_text()
    assert "a 5-D tensor is a\nstack of 2-D images" not in text
    assert "refuse a 5-D tensor" in text


# ------------------------------------------------------------ 7. one family of input errors

def test_missing_files_and_directories_are_user_input_errors_and_builtin_types(tmp_path):
    for call in (lambda: io.read_image(tmp_path / "none.png"), lambda: io.read_volume(tmp_path / "none.npy"),
                 lambda: tvflownet.load("no-such-model"), lambda: tvflownet.load(tmp_path / "none.json"),
                 lambda: inpaint.load_masknet(tmp_path / "none.json")):
        with pytest.raises(InputFileNotFoundError) as caught:
            call()
        assert isinstance(caught.value, UserInputError) and isinstance(caught.value, FileNotFoundError)
    with pytest.raises(InputIsADirectoryError) as caught:
        io.read_image(tmp_path)
    assert isinstance(caught.value, UserInputError) and isinstance(caught.value, IsADirectoryError)
    assert {"InputFileNotFoundError", "InputIsADirectoryError", "InputDtypeError"} <= set(pdeflow.__all__)


# ------------------------------------------------------------ 8. spectral bands past the computed times

def test_spectral_bands_past_the_computed_times_are_refused():
    s = pdeflow.spectral_tv(_image(8, 8, dtype=torch.float64), dt=0.1, n_steps=3, tol=1e-6)
    with pytest.raises(UserInputError, match=r"band 0, t in \[5, 9\).*from 0.1 to 0.3"):
        s.filter([5.0, 9.0])
    with pytest.raises(UserInputError, match=r"band 2, t in \[7, 9\)"):
        s.filter([0.0, 0.25, 7.0, 9.0])
    assert s.filter([0.0, 0.15, 0.35]).shape == (2, 8, 8)


# ------------------------------------------------------------ 9. one rule for integer images

def _mask(shape):
    m = _image(*shape, seed=3) < 0.3
    m[..., 0, 0] = True
    return m.float()


_U8 = (_image(1, 1, 16, 16) * 255).to(torch.uint8)

_PUBLIC = {
    "rof": lambda f: pdeflow.rof(f, 0.1),
    "tv_flow": lambda f: pdeflow.tv_flow(f, [0.1]),
    "spectral_tv": lambda f: pdeflow.spectral_tv(f, dt=0.1, n_steps=2),
    "analytic_mask": lambda f: inpaint.analytic_mask(f, 0.1),
    "ps_mask": lambda f: inpaint.ps_mask(f, 0.1),
    "nlpe_mask": lambda f: inpaint.nlpe_mask(f, _mask(f.shape)),
    "densify_mask": lambda f: inpaint.densify_mask(f, 0.1),
    "refine_mask": lambda f: inpaint.refine_mask(f, _mask(f.shape)),
    "learned_mask": lambda f: inpaint.learned_mask(f, 0.1),
    "inpaint_learned": lambda f: inpaint.inpaint_learned(f, _mask(f.shape)),
    "inpainting_error": lambda f: inpaint.inpainting_error(f, f),
    "InverseEvolution": lambda f: InverseEvolution("heat", 0.01, 2)(f),
    "tvflownet.flow": lambda f: tvflownet.flow(f, [0.1]),
    "ops.grad": lambda f: ops.grad(f),                  # uint8 differences wrapped around (0 - 1 = 255)
    "ops.laplacian": lambda f: ops.laplacian(f),
    "ops.tv": lambda f: ops.tv(f),
}


@pytest.mark.parametrize("name", sorted(_PUBLIC))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_and_bool_images_are_refused_naming_the_argument_dtype_and_conversion(name, dtype):
    f = _U8.to(dtype)
    with pytest.raises(UserInputError, match=rf"must be a floating-point tensor.*got dtype {dtype}.*convert") as caught:
        _PUBLIC[name](f)
    assert isinstance(caught.value, InputDtypeError) and isinstance(caught.value, TypeError)
    if dtype == torch.uint8:
        assert "x.float() / 255" in str(caught.value)


def test_integer_numpy_images_are_refused_as_tensors_are():
    with pytest.raises(InputDtypeError, match=r"f must be a floating-point tensor.*torch.int64"):
        pdeflow.rof(np.arange(16).reshape(4, 4), 0.1)
    with pytest.raises(InputDtypeError, match=r"u0 must be a floating-point tensor.*torch.uint8"):
        tvflownet.flow(np.zeros((8, 8), dtype=np.uint8), [0.1])


def test_diffuse_refuses_integer_images_by_the_one_rule():
    with pytest.raises(InputDtypeError, match="x.float"):
        pdeflow.inpaint_diffusion(_U8, _mask(_U8.shape))


def test_the_one_rule_is_stated_in_the_data_guide():
    from pathlib import Path
    text = Path(__file__).resolve().parents[2].joinpath("docs", "guide", "data.md").read_text()
    assert "### Integer images" in text and "x.float() / 255" in text
    assert math.isfinite(float(ops.check_float(torch.zeros(2, 2)).sum()))
