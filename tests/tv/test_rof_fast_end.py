"""rof at loose accuracies (the fast end): the certificate holds, and the zero start there answers as the
half-size start does."""
import sys

import pytest
import torch

from pdeflow.datasets import builtin_image
from pdeflow.tv import rof

ROF = sys.modules["pdeflow.tv.rof"]      # the module (pdeflow.tv.rof is also the function's name)


def _noisy(name, size=128, seed=0):
    f = builtin_image(name, grey=True)[0, :size * 2:2, :size * 2:2].double()
    return f + 0.08 * torch.randn(f.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture(scope="module")
def cases():
    out = {}
    for name in ("skimage/camera", "skimage/astronaut"):
        g = _noisy(name)
        for lam in (0.05, 0.3):
            out[name, lam] = (g, rof(g, lam, tol=1e-7, max_iter=20000))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("accuracy", [0.1, 0.05, 0.02, 0.01])
def test_loose_accuracy_is_certified(cases, accuracy, dtype):
    # The certificate bounds the RMS error by accuracy x range, against a float64 solve to a relative gap
    # of 1e-7 (whose own error is far below the bound).
    for (name, lam), (g, ref) in cases.items():
        r = rof(g.to(dtype), lam, accuracy=accuracy, full_output=True)
        assert r.u.dtype == dtype and bool(r.converged.all())
        rms = (r.u.double() - ref).pow(2).mean().sqrt().item()
        assert rms <= accuracy * float(g.max() - g.min()), (name, lam, rms)


def test_loose_accuracy_starts_from_zero(cases, monkeypatch):
    # At LOOSE_ACCURACY and above no half-size start; below it (lam wide enough) there is one. Both certified.
    calls = []
    real = ROF.coarse_start
    monkeypatch.setattr(ROF, "coarse_start", lambda *a, **k: calls.append(1) or real(*a, **k))
    g, ref = cases["skimage/camera", 0.3]
    span = float(g.max() - g.min())
    for accuracy, coarse in [(ROF.LOOSE_ACCURACY, False), (0.1, False), (ROF.LOOSE_ACCURACY / 2, True)]:
        calls.clear()
        u = rof(g.float(), 0.3, accuracy=accuracy)
        assert bool(calls) == coarse, accuracy
        assert (u.double() - ref).pow(2).mean().sqrt().item() <= accuracy * span


def test_zero_start_answers_like_coarse_start(cases, monkeypatch):
    # The same loose call with the half-size start forced on: both answers are certified to the same bound
    # and lie within twice that bound of each other.
    g, ref = cases["skimage/astronaut", 0.3]
    span = float(g.max() - g.min())
    fast = rof(g.float(), 0.3, accuracy=0.05, full_output=True)
    monkeypatch.setattr(ROF, "LOOSE_ACCURACY", 1.0)
    slow = rof(g.float(), 0.3, accuracy=0.05, full_output=True)
    for r in (fast, slow):
        assert bool(r.converged.all())
        assert (r.u.double() - ref).pow(2).mean().sqrt().item() <= 0.05 * span
    assert (fast.u.double() - slow.u.double()).pow(2).mean().sqrt().item() <= 2 * 0.05 * span
