"""The tables of methods (pdeflow.inpaint.MASK_METHODS, INPAINT_METHODS) and their entry points make_mask and
inpaint: every registered method runs at a tiny size through its entry point and equals its function called
directly, so a method is tested by being registered."""
import importlib

import pytest
import torch

import pdeflow.inpaint as ip
from pdeflow.errors import UserInputError
from pdeflow.inpaint import INPAINT_METHODS, MASK_METHODS, inpaint, make_mask

DENSITY = 0.1


def _image(channels=1, size=16):
    return torch.rand(1, channels, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _tiny_model(method):
    """An untrained tiny model for methods with no shipped one at DENSITY (wiring only), else the shipped one."""
    if method.name == "gan":
        torch.manual_seed(0)
        return ip.learned.maskgan.MaskGAN(1, width=0.1, density=DENSITY).eval()
    if method.name == "wgan":
        torch.manual_seed(0)
        return ip.learned.wgan.InpaintingGenerator(1, width=0.1).eval()
    return method.load_model(None, density=DENSITY, channels=1)


#: Options that keep a method tiny (a method not named here runs with its defaults).
TINY = {"ps": {"p": 0.3, "q": 0.3, "generator": 0}, "nlpe": {"p": 0.3, "q": 0.3, "cycles": 1, "candidates": 4,
                                                              "generator": 0},
        "random": {"generator": 0}, "gan": {"generator": 0}, "analytic": {"refine": 1, "generator": 0},
        "wgan": {"generator": 0}}


def _options(method):
    opts = dict(TINY.get(method.name, {}))
    if method.needs_model:
        opts["model"] = _tiny_model(method)
    return opts


def _masks_equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("name", list(MASK_METHODS))
def test_every_mask_method_runs_through_make_mask_as_its_function(name):
    method = MASK_METHODS[name]
    f = _image()
    opts = _options(method)
    x = f.float() if method.needs_model else f
    m = make_mask(x, DENSITY, name, **opts)
    assert _masks_equal(m, method.function(x, DENSITY, **opts))
    assert m.shape == (1, 1, 16, 16) and set(m.unique().tolist()) <= {0.0, 1.0} and m.sum() > 0


@pytest.mark.parametrize("name", list(INPAINT_METHODS))
def test_every_inpainting_method_runs_through_inpaint_as_its_function(name):
    method = INPAINT_METHODS[name]
    f = _image()
    mask = ip.random_mask((1, 1, 16, 16), 0.3, generator=0, dtype=f.dtype)
    opts = _options(method)
    x = f.float() if method.needs_model else f
    u = inpaint(x, mask.to(x.dtype), name, **opts)
    assert u.shape == x.shape and torch.equal(u, method.function(x, mask.to(x.dtype), **opts))


def test_the_entries_call_the_library_functions_as_documented():
    """The adapters' defaults: what make_mask's docstring says each method is."""
    f = _image()
    assert torch.equal(make_mask(f, DENSITY, "analytic"),
                       ip.analytic_mask(f, DENSITY, sigma=ip.analytic_sigma(DENSITY)))
    assert torch.equal(make_mask(f, DENSITY), ip.densify_mask(f, DENSITY))
    assert torch.equal(make_mask(f[0], DENSITY, "random", generator=3),
                       ip.random_mask((1, 16, 16), DENSITY, generator=3, dtype=f.dtype))
    ps = ip.ps_mask(f, DENSITY, p=0.3, q=0.3, generator=1)
    assert torch.equal(make_mask(f, DENSITY, "ps", p=0.3, q=0.3, generator=1), ps)
    nl = ip.nlpe_mask(f, ps, cycles=1, candidates=4, generator=2)
    assert torch.equal(make_mask(f, DENSITY, "nlpe", p=0.3, q=0.3, cycles=1, candidates=4, generator=1,
                                 exchange_generator=2), nl)
    assert torch.equal(make_mask(f, DENSITY, "nlpe", sparsified=ps, cycles=1, candidates=4, generator=2), nl)
    start = ip.random_mask((1, 1, 16, 16), 0.5, generator=4, dtype=f.dtype)     # PS from a start mask
    ps_start = ip.ps_mask(f, DENSITY, p=0.3, q=0.3, generator=1, mask=start)
    assert torch.equal(make_mask(f, DENSITY, "nlpe", p=0.3, q=0.3, cycles=1, candidates=4, generator=1, mask=start),
                       ip.nlpe_mask(f, ps_start, cycles=1, candidates=4, generator=1))
    v = torch.rand(6, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h = (2.0, 1.0, 1.0)
    assert torch.equal(make_mask(v, DENSITY, "analytic", spacing=h),
                       ip.analytic_mask(v, DENSITY, sigma=ip.analytic_sigma(DENSITY, spacing=h), spacing=h))
    mask = make_mask(f, 0.3, "random", generator=0)
    assert torch.equal(inpaint(f, mask), ip.inpaint_diffusion(f, mask))


def test_the_tables_say_what_each_method_needs():
    assert {m for m, e in MASK_METHODS.items() if e.needs_model} == {"learned", "gan"}
    assert {m for m, e in MASK_METHODS.items() if e.start_mask} == {"densify", "ps", "nlpe"}
    assert all("mask" in e.options for e in MASK_METHODS.values() if e.start_mask)
    assert all("model" in e.options for e in (*MASK_METHODS.values(), *INPAINT_METHODS.values()) if e.needs_model)
    assert all(e.inpaint_with in INPAINT_METHODS for e in MASK_METHODS.values())
    assert MASK_METHODS["densify"].default("stages") is None and ip.default_stages() == 8  # per operator


def test_unknown_methods_and_options_are_refused_by_name():
    f = _image()
    with pytest.raises(UserInputError, match=r"make_mask: method must be one of 'analytic', .*got 'blue'"):
        make_mask(f, DENSITY, "blue")
    with pytest.raises(UserInputError, match=r"make_mask: method 'densify' takes no option 'rounds'; its options: "
                                             r"start, stages, sigma, tol, mask"):
        make_mask(f, DENSITY, "densify", rounds=3)
    with pytest.raises(UserInputError, match="inpaint: method must be one of " + ", ".join(map(repr, INPAINT_METHODS))):
        inpaint(f, torch.ones(16, 16), "telea")
    with pytest.raises(UserInputError, match=r"inpaint: method 'diffusion' takes no option 'full_output'"):
        inpaint(f, torch.ones(16, 16), full_output=True)
    with pytest.raises(UserInputError, match="takes no option 'x'"):
        MASK_METHODS["ps"].default("x")


def test_the_command_line_offers_the_tables_methods():
    from pdeflow.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a.choices, dict) and "mask" in a.choices)
    for command, table in (("mask", MASK_METHODS), ("inpaint", INPAINT_METHODS)):
        method = next(a for a in sub.choices[command]._actions if a.dest == "method")
        assert tuple(method.choices) == tuple(table)


def test_one_naming_scheme_and_every_public_name_in_one_api_group():
    """pdeflow.inpaint's scheme (docs/DESIGN.md): inpaint_<method> for each inpainting method, <method>_mask for
    each mask method, load_<model> for the loaders; the API reference's groups hold every public name once."""
    names = set(ip.__all__)
    assert {f"inpaint_{key}" for key in INPAINT_METHODS} <= names
    assert {f"{key}_mask" for key in MASK_METHODS} <= names
    assert all(INPAINT_METHODS[key].function is getattr(ip, f"inpaint_{key}") for key in ip.OPERATORS)
    assert not any(n[:1].isupper() and not n.isupper() for n in names)        # no class at the top level
    grouped = [n for members in ip.__api_groups__.values() for n in members]
    assert sorted(grouped) == sorted(ip.__all__) and len(grouped) == len(set(grouped))


def test_the_previous_names_warn_and_give_the_new_objects():
    for old, (module, new) in ip._DEPRECATED.items():
        with pytest.warns(DeprecationWarning, match=rf"pdeflow\.inpaint\.{old} is deprecated.*{new}"):
            obj = getattr(ip, old)
        assert obj is getattr(importlib.import_module(f"pdeflow.inpaint.{module}"), new)
    with pytest.raises(AttributeError):
        ip.no_such_name
