"""Stopping rules that tell the truth, half precision, and refusals of rof / tv_flow / spectral_tv."""
import warnings

import pytest
import torch

from pdeflow.errors import UserInputError
from pdeflow.tv import ConvergenceWarning, rof, spectral_tv, tv_flow


def _image(dtype=torch.float64, size=24):
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    noise = 0.1 * torch.rand(size, size, generator=torch.Generator().manual_seed(0))
    return ((x > 0.4).double() * 0.6 + 0.3 * y + noise).to(dtype)


def test_tol_below_the_dtype_round_off_is_said_up_front():
    # only where the solver iterates in float32 (precision="input"); by default it iterates in float64
    with pytest.warns(ConvergenceWarning, match=r"tol=1e-09 is below the round-off of torch.float32"):
        rof(_image(torch.float32), 0.1, tol=1e-9, precision="input")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rof(_image(torch.float32), 0.1, tol=1e-9)


def test_stop_at_the_round_off_floor_warns_and_full_output_reports_it():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = rof(_image(torch.float32), 0.1, tol=2e-7, full_output=True, precision="input")
    ends = [w for w in caught if "short of tol" in str(w.message)]
    assert len(ends) == 1 and "round-off floor of torch.float32" in str(ends[0].message)
    assert not bool(r.converged.all()) and r.gap.max().item() > 2e-7
    assert f"{r.gap.max().item():.2g}" in str(ends[0].message)


def test_converged_solves_are_marked_so():
    r = rof(_image(), 0.1, tol=1e-8, full_output=True)
    assert bool(r.converged.all()) and r.gap.item() <= 1e-8


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float64(dtype):
    f = _image(dtype)
    ref = rof(f.double(), 0.1, tol=1e-8)
    u = rof(f, 0.1)
    assert u.dtype == dtype
    # the float64 solve (tol 1e-6) rounded to the dtype: no more than its rounding off
    assert (u.double() - ref).abs().max() <= 2 * torch.finfo(dtype).eps + 1e-3
    flow = tv_flow(f, [0.05], dt=0.01)
    flow64 = tv_flow(f.double(), [0.05], dt=0.01, tol=1e-8)
    assert flow.dtype == dtype and (flow.double() - flow64).abs().max() <= 2 * torch.finfo(dtype).eps + 1e-3


@pytest.mark.parametrize("call,name", [
    (lambda x: rof(x, 0.1), "f"),
    (lambda x: tv_flow(x, [0.1]), "u0"),
    (lambda x: spectral_tv(x, dt=0.1, n_steps=2), "u0"),
])
@pytest.mark.parametrize("x", [torch.zeros(0, 1, 4, 4), torch.zeros(1, 1, 0, 0), torch.zeros(4, 4, device="meta")],
                         ids=["empty batch", "0x0", "meta"])
def test_empty_and_meta_inputs_are_refused_by_name(call, name, x):
    with pytest.raises(UserInputError, match=rf"^{name} "):
        call(x)
