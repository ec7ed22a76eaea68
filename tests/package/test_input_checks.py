"""One check per input kind, one place that promotes half precision.

A public call checks its image once, with :func:`pdeflow.ops.check_image` (internal calls take the unchecked
paths: densification's analytic start mask, the residual inpainter's diffusion solves, rof's solve); the
promotion of float16/bfloat16 to float32 is :func:`pdeflow.ops.compute_dtype` /
:func:`pdeflow.ops.promote_half`, nowhere written out by hand.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import pdeflow
from pdeflow import ops

ROOT = Path(pdeflow.__file__).resolve().parent


@pytest.fixture
def image_checks(monkeypatch):
    """The names the one image check was called with, in order."""
    seen: list[str] = []
    check = ops.check_image

    def counting(u, name="u", **kwargs):
        seen.append(name)
        return check(u, name, **kwargs)

    monkeypatch.setattr(ops, "check_image", counting)
    return seen


def _image(size=24):
    return torch.rand(1, 1, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_learned_inpaint_checks_its_image_once(image_checks):
    from pdeflow.inpaint import inpaint_learned, random_mask
    from pdeflow.inpaint.learned.residual import ResidualInpainter

    f = _image()
    m = random_mask(f.shape, 0.1, generator=1, dtype=torch.float64)
    torch.manual_seed(0)
    inpaint_learned(f, m, model=ResidualInpainter(1, widths=(4, 8)))
    assert image_checks == ["inpaint_learned: f"]


@pytest.mark.parametrize("method", ["densify", "analytic", "random"])
def test_make_mask_checks_its_image_once(image_checks, method):
    from pdeflow.inpaint import make_mask

    make_mask(_image(), 0.1, method)
    assert len(image_checks) <= 1, image_checks      # random masks need only the shape


@pytest.mark.parametrize("spacing", [None, (1.0, 2.0), (1.0, 1.0, 1.0)])
def test_diffuse_checks_its_image_once(image_checks, spacing):
    from pdeflow.inpaint import inpaint_diffusion

    f = _image(8) if spacing is None or len(spacing) == 2 else _image(8)[:, :, None].expand(1, 1, 3, 8, 8)
    m = torch.zeros(f.shape[2:])
    m.view(-1)[::5] = 1
    inpaint_diffusion(f, m, spacing=spacing)
    assert image_checks == ["inpaint_diffusion: f"]


def test_rof_checks_its_image_once(image_checks):
    from pdeflow.tv import rof

    rof(_image(8), 0.1)
    assert image_checks == ["f"]


def test_the_checks_of_diffuse_refuse_as_before():
    """Images and volumes share inpaint_diffusion's checks; the messages are those of the one check."""
    from pdeflow.errors import UserInputError
    from pdeflow.inpaint import inpaint_diffusion

    with pytest.raises(UserInputError, match=r"inpaint_diffusion: f must be at least 2x2 pixels, got \(1, 5\)"):
        inpaint_diffusion(torch.zeros(1, 5), torch.ones(1, 5))
    with pytest.raises(UserInputError, match=r"inpaint_diffusion: f must be at least 2x2x2 voxels, got \(1, 4, 4\)"):
        inpaint_diffusion(torch.zeros(1, 4, 4), torch.ones(1, 4, 4), ndim=3)
    for kw in ({}, {"ndim": 3}, {"spacing": (1.0, 2.0)}):
        with pytest.raises(UserInputError, match="inpaint_diffusion: tol must be a number in"):
            inpaint_diffusion(torch.zeros(3, 3, 3), torch.ones(3, 3, 3), tol=2, **kw)
        with pytest.raises(UserInputError, match="inpaint_diffusion: continuous must be True or False"):
            inpaint_diffusion(torch.zeros(3, 3, 3), torch.ones(3, 3, 3), continuous=1, **kw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32_and_returned_as_given(dtype):
    from pdeflow.inpaint import inpaint_diffusion

    f = _image(8).to(dtype)
    m = torch.zeros(8, 8)
    m[::3, ::3] = 1
    u = inpaint_diffusion(f, m)
    assert u.dtype == dtype
    assert torch.equal(u, inpaint_diffusion(f.float(), m).to(dtype))
    assert ops.compute_dtype(dtype) == torch.float32
    assert ops.compute_dtype(torch.float64) == torch.float64


def _half_upcasts(tree: ast.AST) -> list[int]:
    """Lines of comparisons that single out half precision by name (``dtype in (torch.float16, ...)``,
    ``== torch.half``): the hand-written promotions the helper replaces."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        names = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
                 and isinstance(n.value, ast.Name) and n.value.id == "torch"}
        if names & {"float16", "half"} or ("bfloat16" in names and names & {"float32", "float64", "float"}):
            lines.append(node.lineno)
    return lines


#: Modules that compare with half precision for another reason than computing in it, and why.
NOT_ARITHMETIC = {
    "io/model_files.py": "shipped weights are stored in float16 and cast back to their recorded training dtype "
                         "(storage, not arithmetic: the dtype may be float64)",
}


def test_one_place_promotes_half_precision():
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "ops.py" or str(path.relative_to(ROOT)) in NOT_ARITHMETIC:
            continue
        lines = _half_upcasts(ast.parse(path.read_text(), str(path)))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert not found, f"half precision promoted by hand (use pdeflow.ops.promote_half / compute_dtype): {found}"


def test_the_upcast_rule_sees_what_it_checks():
    src = ("if x.dtype in (torch.float16, torch.bfloat16):\n    x = x.float()\n"
           "if y.dtype not in (torch.float32, torch.float64):\n    y = y.float()\n"
           "if option not in (None, torch.bfloat16):\n    raise ValueError\n")
    assert _half_upcasts(ast.parse(src)) == [1]   # not the others: they name no half-precision dtype
    assert _half_upcasts(ast.parse("if d == torch.half:\n    pass\n")) == [1]
