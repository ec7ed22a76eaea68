"""An inpainting operator is its module plus one entry of pdeflow.inpaint.OPERATORS.

The entry (pdeflow.inpaint.operators.Operator) carries every fact the rest of the library asks of an operator: an
entry that lacks one its kind needs is refused when it is made, with a message naming the field. A test-only
operator, defined here (its "module": :func:`inpaint_twin`) and registered by one table entry for the test's
duration, then runs through :func:`pdeflow.inpaint.inpaint`, hole inpainting, densification, tonal optimisation, the
codec (its file records the entry's id, and decodes by it), the ``pdeflow compress`` command and pdeflow.dask,
with nothing else edited.
"""
import dataclasses

import dask.array as da
import numpy as np
import pytest
import torch

import pdeflow.dask as pdd
from pdeflow import codec
from pdeflow.cli import main
from pdeflow.codec.format import read_header
from pdeflow.inpaint import INPAINT_METHODS, OPERATORS, densify_mask, hole_mask, inpaint, inpaint_diffusion
from pdeflow.inpaint.operators import Operator, Option, Storage, diffusion

#: The codec id of the test-only operator: one no shipped operator uses.
TWIN_ID = 250


def inpaint_twin(f, mask, *, tol: float = 1e-6):
    """The test-only operator's public function: homogeneous diffusion under another name."""
    return inpaint_diffusion(f, mask, tol=tol)


def _twin(**changes) -> Operator:
    fields = dict(options=(Option("tol", 1e-6, float, low=0.0),), local=False, stencil=1, subdomain_tol=1e-9,
                  subdomain_eps=16, measure="residual", linear_map=diffusion.DiffusionMap,
                  storage=Storage(TWIN_ID))
    fields.update(changes)
    return Operator("twin", inpaint_twin, diffusion.solve_unchecked, "homogeneous diffusion, a test's copy",
                    "f and mask", **fields)


@pytest.fixture
def twin(monkeypatch):
    """The test-only operator registered: one table entry, removed after the test."""
    entry = _twin()
    monkeypatch.setitem(OPERATORS, entry.name, entry)
    yield entry
    monkeypatch.undo()
    assert "twin" not in INPAINT_METHODS and "twin" not in codec.CODEC_OPERATORS


def _image(size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size, dtype=torch.float64),
                          torch.linspace(0, 1, size, dtype=torch.float64), indexing="ij")
    disc = ((x - 0.55) ** 2 + (y - 0.45) ** 2 < 0.08).double()
    return (0.2 + 0.3 * x + 0.4 * disc + 0.02 * torch.rand(size, size, generator=g, dtype=torch.float64))


# ---------------------------------------------------------------- the entry's fields, checked when it is made

@pytest.mark.parametrize("changes,field", [
    ({"stencil": None}, "stencil"),
    ({"stencil": 0}, "stencil"),
    ({"subdomain_tol": None}, "subdomain_tol"),
    ({"subdomain_eps": None}, "subdomain_eps"),
    ({"measure": None}, "measure"),
    ({"measure": "residue"}, "measure"),
    ({"relative": "contrast"}, "relative 'contrast'"),
    ({"presmoothing": "sigma"}, "presmoothing 'sigma'"),
    ({"clip": "tol"}, "clip 'tol'"),
    ({"options": (Option("tol", 1e-3, float),)}, "declares the default 0.001, its function 1e-06"),
    ({"options": (Option("eps", 1e-6, float),)}, "must be its function's keyword options ('tol',)"),
    ({"options": ("tol",)}, "options must be a tuple of Option"),
    ({"storage": Storage(256)}, "storage"),
])
def test_an_entry_without_a_field_its_kind_needs_is_refused_when_made(changes, field):
    with pytest.raises(ValueError, match="inpainting operator 'twin': .*" + field.replace("(", r"\(")
                       .replace(")", r"\)")):
        _twin(**changes)


def test_the_schema_and_the_locality_are_required_fields():
    with pytest.raises(TypeError, match="options"):
        Operator("twin", inpaint_twin, diffusion.solve_unchecked, "a copy", "f and mask", local=False)
    with pytest.raises(TypeError, match="local"):
        Operator("twin", inpaint_twin, diffusion.solve_unchecked, "a copy", "f and mask", options=())
    # a local operator needs no reach, subdomain tolerance or measure: it solves no equation
    local = _twin(local=True, stencil=None, subdomain_tol=None, subdomain_eps=None, measure=None)
    assert local.reach({}) == 0


def test_every_registered_operator_declares_its_function_options_and_its_facts():
    for name, op in OPERATORS.items():
        assert op.name == name and op.options, name
        assert all(isinstance(o, Option) for o in op.options)
        if not op.local:
            assert op.reach({}) >= 1 and op.subdomain_tol > 0 and op.measure in ("residual", "change"), name
    eed = OPERATORS["eed"]
    # the presmoothing widens the reach by one and the Gaussian's radius int(3.5 sigma + 0.5)
    assert (eed.reach({}), eed.reach({"sigma": 2.0}), eed.reach({"sigma": 0.0})) == (7, 10, 3)
    assert OPERATORS["biharmonic"].clips({}) and not OPERATORS["biharmonic"].clips({"clip": False})
    assert [n for n, o in OPERATORS.items() if o.relative] == ["eed", "tv"]
    assert [n for n, o in OPERATORS.items() if o.local] == ["shepard"]
    with pytest.raises(KeyError, match="takes no option 'contrast'; its options: eps, tol, max_iter"):
        OPERATORS["tv"].option("contrast")


# ---------------------------------------------------------------- a test-only operator, one table entry

def test_a_registered_operator_inpaints_holes_and_sparse_data(twin):
    f = _image()[None, None]
    m = (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) < 0.1).double()
    u = inpaint(f, m, method="twin", tol=1e-10)
    assert torch.allclose(u, inpaint_diffusion(f, m, tol=1e-10), atol=1e-8)
    holes = hole_mask((32, 32), "scratches", 0.1, generator=0)
    v = inpaint(f, (~holes).double()[None, None], "twin")
    assert torch.equal(v[0, 0][~holes], f[0, 0][~holes]) and torch.isfinite(v).all()


def test_a_registered_operator_gets_masks_densified_for_it(twin):
    f = _image()[None, None]
    m = densify_mask(f, 0.1, operator="twin")
    assert int(m.sum()) == round(0.1 * 32 * 32) and set(m.unique().tolist()) <= {0.0, 1.0}
    # its solve places the points: the mask equals the one densified by diffusion's solve, warm-started as it is
    plain = dataclasses.replace(OPERATORS["diffusion"], warm_start=None)
    OPERATORS["diffusion"], old = plain, OPERATORS["diffusion"]
    try:
        assert torch.equal(m, densify_mask(f, 0.1, operator="diffusion"))
    finally:
        OPERATORS["diffusion"] = old


def test_a_registered_operator_with_a_storage_is_stored_by_the_codec(twin, tmp_path, capsys):
    f = _image().float()
    assert codec.CODEC_OPERATORS["twin"].id == TWIN_ID
    data = codec.encode(f, bpp=1.0, operator="twin")
    assert read_header(data)[0].operator == TWIN_ID and len(data) <= 32 * 32 / 8
    u = codec.decode(data)
    assert float((u[0] - f).square().mean()) < 1e-3
    # the command offers it too (its choices are the table's)
    from pdeflow import io as pio
    pio.write_image(tmp_path / "im.png", f)
    assert main(["compress", str(tmp_path / "im.png"), "--bpp", "1", "--operator", "twin",
                 "--out", str(tmp_path / "im.pdc")]) == 0
    assert read_header((tmp_path / "im.pdc").read_bytes())[0].operator == TWIN_ID
    assert "twin inpainting" in capsys.readouterr().out


def test_a_registered_operator_runs_on_dask_arrays(twin):
    rng = np.random.default_rng(0)
    x, m = rng.random((48, 48)), (rng.random((48, 48)) < 0.1).astype(float)
    r = pdd.inpaint(da.from_array(x, chunks=24), m, "twin", overlap=4, tol=1e-9, full_output=True)
    u, ok = r.u.compute(scheduler="sync"), bool(r.converged.compute(scheduler="sync"))
    ref = inpaint_diffusion(torch.from_numpy(x), torch.from_numpy(m), tol=1e-12).numpy()
    assert ok and np.abs(u - ref).max() < 1e-6
    stack = np.stack([_image(32, s).float().numpy() for s in range(2)])
    files = pdd.encode(da.from_array(stack, chunks=(1, 32, 32)), bpp=1.0, operator="twin").compute(scheduler="sync")
    assert [read_header(bytes(b))[0].operator for b in files] == [TWIN_ID, TWIN_ID]
