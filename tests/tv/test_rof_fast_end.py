"""rof at loose accuracies: certified, with or without the half-size start."""
import sys

import pytest
import torch

from pdeflow.datasets import builtin_image
from pdeflow.tv import rof

ROF = sys.modules["pdeflow.tv.rof"]      # the module (pdeflow.tv.rof is also the function)


@pytest.fixture(scope="module")
def cases():
    out = {}
    for i, name in enumerate(("skimage/camera", "skimage/astronaut")):
        f = builtin_image(name, grey=True)[0, :256:2, :256:2].double()
        g = f + 0.08 * torch.randn(f.shape, generator=torch.Generator().manual_seed(i), dtype=f.dtype)
        for lam in (0.05, 0.3):
            out[name, lam] = g, rof(g, lam, accuracy=1e-4)   # certified 100x below the bounds
    return out


def rms_ok(u, ref, g, accuracy):
    return (u.double() - ref).pow(2).mean().sqrt().item() <= accuracy * float(g.max() - g.min())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("accuracy", [0.1, 0.05, 0.02, 0.01])
def test_loose_accuracy_is_certified(cases, accuracy, dtype):
    for (name, lam), (g, ref) in cases.items():
        r = rof(g.to(dtype), lam, accuracy=accuracy, full_output=True)
        assert r.u.dtype == dtype and bool(r.converged.all()) and rms_ok(r.u, ref, g, accuracy), (name, lam)


def test_half_size_start_only_where_accuracy_is_small_against_lam(cases, monkeypatch):
    """The half-size start runs where accuracy < COARSE_ACCURACY lam / range, and only there."""
    calls, real = [], ROF.coarse_start
    monkeypatch.setattr(ROF, "coarse_start", lambda *a: calls.append(1) or real(*a))
    g, ref = cases["skimage/camera", 0.3]
    edge = ROF.COARSE_ACCURACY * 0.3 / float(g.max() - g.min())
    for accuracy, coarse in [(1.05 * edge, False), (0.1, False), (0.95 * edge, True), (ROF.ACCURACY, True)]:
        calls.clear()
        assert rms_ok(rof(g.float(), 0.3, accuracy=accuracy), ref, g, accuracy)
        assert bool(calls) == coarse, accuracy
    calls.clear()
    rof(g.float(), 0.3, tol=1e-5)       # a tol: the half-size start wherever lam is large enough
    assert calls


def test_zero_start_answers_like_half_size_start(cases, monkeypatch):
    g, ref = cases["skimage/astronaut", 0.3]
    fast = rof(g.float(), 0.3, accuracy=0.05)
    monkeypatch.setattr(ROF, "COARSE_ACCURACY", 1e9)     # the half-size start at every accuracy
    slow = rof(g.float(), 0.3, accuracy=0.05)
    assert rms_ok(fast, ref, g, 0.05) and rms_ok(slow, ref, g, 0.05) and rms_ok(fast, slow.double(), g, 0.1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("first, most", [(25, 60), (5, 10)])
def test_one_image_at_a_small_lam_is_certified_by_single_image_or_after_it(monkeypatch, fused_loops, dtype, first,
                                                                          most):
    g = builtin_image("skimage/camera", grey=True)[0, :128, :128].double()
    g = g + 0.08 * torch.randn(g.shape, generator=torch.Generator().manual_seed(3), dtype=g.dtype)
    lam, calls, real = 0.01 * float(g.max() - g.min()), [], ROF.solve_auto
    monkeypatch.setattr(ROF, "solve_auto", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(ROF, "LEAN_FIRST", first)
    monkeypatch.setattr(ROF, "LEAN_ITERATIONS", most)
    r = rof(g.to(dtype), lam, full_output=True)
    assert bool(calls) == (most == 10) and r.u.dtype == dtype and bool(r.converged.all())
    assert r.iterations > len(calls) * most and rms_ok(r.u, rof(g, lam, tol=1e-12), g, ROF.ACCURACY)
