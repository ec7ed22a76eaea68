"""API contract of pdeflow.tv and pdeflow.metrics over every public function (from ``__all__``) and input kind."""
import warnings

import pytest
import torch

import pdeflow.metrics as metrics
import pdeflow.tv as tv
from _contract import KINDS, Entry, check_case, public_callables
from pdeflow.errors import UserInputError

TIGHT = dict(tol=1e-9, max_iter=20000)


def _y(x):
    if isinstance(x, list):
        return (torch.tensor(x) * 0.8 + 0.1).tolist()
    t = torch.as_tensor(x)
    return (t * 0.8 + 0.1) if t.device.type != "meta" else t


def _rof_full(x):
    r = tv.rof(x, 0.1, full_output=True, **TIGHT)
    return r.u, r.p


def _gap(x):
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    if t.device.type != "meta" and t.dim() == 4 and t.numel():
        r = tv.rof(t.detach().double(), 0.1, full_output=True, **TIGHT)
        return tv.duality_gap(x, r.u.to(t.dtype), r.p.to(t.dtype), 0.1)
    return tv.duality_gap(x, x, x, 0.1)


def _stack(x):
    if isinstance(x, list):
        return torch.stack([torch.tensor(x) * c for c in (1.0, 0.5, 0.25)]).tolist()
    t = torch.as_tensor(x)
    # frames exact in every dtype (the stack is made in the input's dtype)
    return torch.stack([t, 0.5 * t, 0.25 * t]) if t.device.type != "meta" else torch.stack([t, t, t])


TV_TABLE = {
    "rof": Entry(lambda x: tv.rof(x, 0.1, **TIGHT), "f"),
    "duality_gap": Entry(_gap, "f"),
    "tv_flow": Entry(lambda x: tv.tv_flow(x, [0.05], dt=0.02, **TIGHT), "u0"),
    "spectral_tv": Entry(lambda x: tv.spectral_tv(x, dt=0.02, n_steps=2, **TIGHT), "u0",
                         out=lambda s: (s.phi, s.residual, s.spectrum)),
    "spectral_from_stack": Entry(lambda x: tv.spectral_from_stack(_stack(x), 0.1), "u",
                                 out=lambda s: (s.phi, s.residual, s.spectrum)),
}
TV_EXEMPT = {"dyadic_band_edges": "band edges from (n_steps, dt), no image"}

METRICS_TABLE = {
    "psnr": Entry(lambda x: metrics.psnr(x, _y(x)), "x"),
    "ssim": Entry(lambda x: metrics.ssim(x, _y(x)), "x", min_size=11),
    "mse": Entry(lambda x: metrics.mse(x, _y(x)), "x"),
    "mae": Entry(lambda x: metrics.mae(x, _y(x)), "x"),
    "dice": Entry(lambda x: metrics.dice(x, _y(x), exclude_background=False), "pred"),
}
METRICS_EXEMPT = {"gaussian_window": "a 1-D window from (sigma, truncate), no image"}

#: (package, table, exempt): add a package here to hold it to the same contract.
PACKAGES = [(tv, TV_TABLE, TV_EXEMPT), (metrics, METRICS_TABLE, METRICS_EXEMPT)]

CASES = [(mod.__name__, name, kind) for mod, table, _ in PACKAGES for name in table for kind in KINDS]


@pytest.mark.parametrize("module,exempt,table", [(m, e, t) for m, t, e in PACKAGES],
                         ids=lambda v: getattr(v, "__name__", ""))
def test_every_public_function_is_in_the_table(module, exempt, table):
    missing = set(public_callables(module)) - set(table) - set(exempt)
    assert not missing, f"{module.__name__}: add {sorted(missing)} to the contract table (tests/test_tv_contract.py)"


@pytest.mark.parametrize("package,name,kind", CASES)
def test_contract(package, name, kind):
    table = next(t for m, t, _ in PACKAGES if m.__name__ == package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # ConvergenceWarning at round-off floors is said, not a failure here
        outcome = check_case(table[name], kind, UserInputError)
    assert outcome in ("ok", "refused")
