"""The tied candidate of the ROF certificate (pdeflow.tv._tied): what it ties, that its gap certifies the candidate
and the solver's own image u = f + lam div p, and that rof calls stopping on it keep their accuracy, in float32 and
float64."""
import functools
import sys

import numpy as np
import pytest
import torch

from pdeflow.datasets import builtin_image
from pdeflow.ops import div
from pdeflow.tv import ACCURACY, duality_gap, rof
from pdeflow.tv._grid import PLAIN, Grid
from pdeflow.tv._tied import tie_box, tied_certificate, tied_means, tied_primal

_tied = sys.modules["pdeflow.tv._tied"]


def _noisy(n=64, seed=0):
    f = builtin_image("skimage/camera")[0, 150:150 + n, 200:200 + n].double()
    g = torch.Generator().manual_seed(seed)
    return f + 0.08 * torch.randn(f.shape, generator=g, dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def _reference(n, seed, lam):
    return rof(_noisy(n, seed), lam, tol=1e-9, max_iter=10 ** 6)


def _components_by_search(flat):
    """Connected components of the tie graph (a flat pixel tied to its right and lower neighbours), by
    breadth-first search: the independent reference for the labelling."""
    H, W = flat.shape
    label = -np.ones((H, W), dtype=int)
    nbrs = {(i, j): [] for i in range(H) for j in range(W)}
    for i in range(H):
        for j in range(W):
            if flat[i, j]:
                for a, b in ((i + 1, j), (i, j + 1)):
                    if a < H and b < W:
                        nbrs[(i, j)].append((a, b))
                        nbrs[(a, b)].append((i, j))
    count = 0
    for start in nbrs:
        if label[start] >= 0:
            continue
        stack = [start]
        label[start] = count
        while stack:
            x = stack.pop()
            for y in nbrs[x]:
                if label[y] < 0:
                    label[y] = count
                    stack.append(y)
        count += 1
    return label


def test_tied_primal_is_the_mean_over_each_component_of_the_tie_graph():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(1, 1, 9, 11, generator=g, dtype=torch.float64)
    p = torch.rand(1, 1, 2, 9, 11, generator=g, dtype=torch.float64)   # norms in [0, 1.41]
    flat = (p[0, 0].pow(2).sum(0).sqrt() < 0.999).numpy()
    label = _components_by_search(flat)
    want = torch.zeros(9, 11, dtype=torch.float64)
    for c in np.unique(label):
        m = torch.from_numpy(label == c)
        want[m] = u[0, 0][m].mean()
    assert torch.allclose(tied_primal(u, p, channelwise=False)[0, 0], want, rtol=0, atol=1e-14)


def test_channels_share_ties_unless_channelwise_and_images_never_do():
    u = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)
    p = torch.zeros(2, 3, 2, 4, 5, dtype=torch.float64)                   # every pixel flat
    v = tied_primal(u, p, channelwise=False)
    assert torch.allclose(v, u.mean((2, 3), keepdim=True).expand_as(u))  # one region per image and channel
    p[:, 1] = 1.0                                                         # channel 1 on edges everywhere
    assert torch.equal(tied_primal(u, p, channelwise=True)[:, 1], u[:, 1])
    # coupled: the pixel norm over channels is above one, nothing is tied
    assert torch.equal(tied_primal(u, p, channelwise=False), u)


def test_volumes_tie_along_all_three_axes():
    u = torch.randn(1, 1, 3, 4, 5, dtype=torch.float64)
    p = torch.ones(1, 1, 3, 3, 4, 5, dtype=torch.float64)
    p[..., 0, :, :] = 0.0               # the first slice flat: tied to itself and to the second slice
    v = tied_primal(u, p, channelwise=False, grid=Grid(3, (1.0, 1.0, 1.0)))
    assert torch.allclose(v[0, 0, :2], u[0, 0, :2].mean().expand(2, 4, 5))
    assert torch.equal(v[0, 0, 2], u[0, 0, 2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_both_labellings_give_the_same_means(dtype, monkeypatch):
    """The compiled union-find (tested above) and the image labelling agree exactly on random fields of images and
    volumes, one channel or three, coupled or channelwise (norms around the margin: components of every shape)."""
    g = torch.Generator().manual_seed(1)
    for trial in range(40):
        K = 2 + trial % 2
        B, C = 1 + (trial // 2) % 2, 1 + 2 * (trial % 3 == 0)
        spatial = tuple(int(n) for n in torch.randint(1, 8 if K == 3 else 24, (K,), generator=g))
        u = torch.rand(B, C, *spatial, generator=g, dtype=dtype)
        p = torch.rand(B, C, K, *spatial, generator=g, dtype=dtype) * 1.3 / (K * C) ** 0.5
        grid, channelwise = Grid(K, (1.0,) * K), trial % 5 == 0
        compiled = tied_means(u, p, channelwise, grid)
        monkeypatch.setattr(_tied, "FUSED", False)
        assert torch.equal(compiled, tied_means(u, p, channelwise, grid))
        monkeypatch.undo()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_box_tied_in_place_is_the_tie_of_its_copy(dtype, monkeypatch):
    """tie_box (compiled: in place, reading the whole fields, its arrays in scratch where they fit) gives on a box
    the means of that box's copy by the image labelling, pixels marked untied starting no tie, and the squared
    move; u outside the box stays."""
    g = torch.Generator().manual_seed(2)
    for trial in range(24):
        K = 2 + trial % 2
        B, C = 1 + (trial // 2) % 2, 1 + 2 * (trial % 3 == 0)
        spatial = tuple(int(n) for n in torch.randint(2, 8 if K == 3 else 24, (K,), generator=g))
        u = torch.rand(B, C, *spatial, generator=g, dtype=torch.float64)
        p = (torch.rand(B, C, K, *spatial, generator=g, dtype=torch.float64) * 1.3 / (K * C) ** 0.5).to(dtype)
        region = tuple(slice(int(torch.randint(0, n // 2, (1,), generator=g)), n - trial % 2) for n in spatial)
        untied = torch.rand(spatial, generator=g) < 0.2 if trial % 4 else None
        mine = u.clone()
        # its arrays in scratch of any size (too small: allocated)
        scratch = torch.empty(int(torch.randint(0, 3 * u[0, 0].numel(), (1,), generator=g)), dtype=torch.float64)
        move = tie_box(mine, p, region, untied, scratch if trial % 3 else None)
        box = (slice(None), slice(None)) + region
        q = p[box[:2] + (slice(None),) + box[2:]].double()
        if untied is not None:
            q = q.masked_fill(untied[region], 1.0)
        monkeypatch.setattr(_tied, "FUSED", False)
        expected = tied_means(u[box].contiguous(), q.contiguous(), False, Grid(K, (1.0,) * K))
        monkeypatch.undo()
        assert torch.allclose(mine[box], expected, rtol=1e-13, atol=1e-15)
        outside = torch.ones(spatial, dtype=torch.bool)
        outside[region] = False
        assert torch.equal(mine[..., outside], u[..., outside])
        assert torch.allclose(move, (u[box] - expected).pow(2).flatten(1).sum(1), rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("ignore::pdeflow.tv.ConvergenceWarning")
@pytest.mark.parametrize("lam", [0.05, pytest.param(0.3, marks=pytest.mark.slow)])   # 0.3: a long solve
def test_the_tied_gap_certifies_the_candidate_and_the_solvers_own_image(lam):
    # any (v, p) with |p| <= 1 bounds ||v - u*||^2 by twice the gap, and (the dual's strong concavity in
    # u = f + lam div p) ||u - u*||^2 too: check both against a converged reference
    f = _noisy()[None, None]
    ref = _reference(64, 0, lam)
    lam_t = torch.full((1, 1, 1, 1), lam, dtype=torch.float64)
    for k in (50, 150, 400):
        r = rof(f, lam, tol=1e-12, max_iter=k, precision="float64", full_output=True)
        gap, primal = tied_certificate(f, r.u, r.p, lam_t, False, PLAIN)
        v = tied_primal(r.u, r.p, False)
        assert torch.allclose(torch.stack(duality_gap(f, v, r.p, lam_t)), torch.stack([gap, primal]), rtol=1e-12)
        # (the reference's own error, at a relative gap of 1e-9, is far below these gaps)
        assert (v - ref).pow(2).sum().item() <= 2 * gap.item() * (1 + 1e-6)
        assert (r.u - ref).pow(2).sum().item() <= 2 * gap.item() * (1 + 1e-6)


@pytest.mark.filterwarnings("ignore::pdeflow.tv.ConvergenceWarning")
def test_the_candidate_is_what_helps_late_in_a_solve():
    # late in a solve most of the solver's own gap is the noise's total variation on flat regions: the tied
    # candidate's gap is several times smaller (this is why the solver stops earlier with it)
    f = _noisy(96)[None, None]
    lam = 0.1
    r = rof(f, lam, tol=1e-12, max_iter=300, precision="float64", full_output=True)
    lam_t = torch.full((1, 1, 1, 1), lam, dtype=torch.float64)
    own, _ = duality_gap(f, r.u, r.p, lam_t)
    tied, _ = tied_certificate(f, r.u, r.p, lam_t, False, PLAIN)
    assert tied.item() < 0.5 * own.item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
# 0.4: its reference takes ~10^5 iterations
@pytest.mark.parametrize("lam", [0.1, pytest.param(0.4, marks=pytest.mark.slow)])
def test_default_rof_keeps_its_accuracy_and_mean(dtype, lam):
    f = _noisy(64, seed=2)
    ref = _reference(64, 2, lam)
    r = rof(f.to(dtype), lam, full_output=True)
    rng = (f.max() - f.min()).item()
    err = (r.u.double() - ref)
    assert err.pow(2).mean().sqrt().item() <= ACCURACY * rng
    assert err.abs().max().item() <= 1e-3 * rng
    # u = f + lam div p keeps the data's mean (div p sums to zero)
    assert abs(r.u.double().mean().item() - f.mean().item()) <= 4 * torch.finfo(dtype).eps * f.abs().max().item()
    # and the float32 call gives the float64 call's answer within the certified accuracy
    if dtype == torch.float32:
        r64 = rof(f, lam)
        assert (r.u.double() - r64).pow(2).mean().sqrt().item() <= 2 * ACCURACY * rng


def _without_candidate(monkeypatch):
    """rof's mixed-precision solver (every call here) with the tied candidate turned off: the comparison."""
    module = sys.modules["pdeflow.tv.rof"]
    fn = module.solve_auto
    monkeypatch.setattr(module, "solve_auto", lambda *a, **k: fn(*a, **{**k, "tied": False}))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_default_call_stops_on_the_candidate_where_it_certifies_first_and_returns_its_own_image(dtype, monkeypatch):
    """The default call stops earlier with the candidate than without it, returns u = f + lam div p (not the
    candidate), and keeps the certified RMS error."""
    f = _noisy(64, seed=2)
    lam = 0.1
    ref = _reference(64, 2, lam)
    r = rof(f.to(dtype), lam, full_output=True)
    assert (r.u.double() - (f + lam * div(r.p.double())[0, 0])).abs().max().item() <= 8 * lam * torch.finfo(dtype).eps
    assert (r.u.double() - ref).pow(2).mean().sqrt().item() <= ACCURACY * (f.max() - f.min()).item()
    with monkeypatch.context() as m:
        _without_candidate(m)
        own = rof(f.to(dtype), lam, full_output=True)
    assert r.iterations.item() < own.iterations.item()


def test_a_call_with_tol_stops_on_its_own_gap():
    """A call with tol does not use the candidate: its own relative gap meets tol."""
    f = _noisy(64, seed=2)
    lam = 0.1
    r = rof(f, lam, tol=1e-6, full_output=True)
    lam_t = torch.full((1, 1, 1, 1), lam, dtype=torch.float64)
    gap, primal = duality_gap(f[None, None], r.u[None, None], r.p, lam_t)
    assert gap.item() <= 1e-6 * primal.item() * (1 + 1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_call_with_a_gradient_does_not_use_the_candidate(dtype):
    # the implicit derivative reads the flat pixels from (u, p), solved to tol 1e-6 with u = f + lam div p:
    # the answer is the dual's own primal to round-off, and its gradient agrees between float32 and float64
    f = _noisy(64, seed=2)
    lam = 0.1
    grads = {}
    for dt in (torch.float32, torch.float64):
        x = f.to(dt).clone().requires_grad_()
        r = rof(x, lam, full_output=True)
        if dt == dtype:
            own = f + lam * div(r.p.double())[0, 0]
            assert (r.u.detach().double() - own).abs().max().item() <= 1e-5
        r.u.sum().backward()
        grads[dt] = x.grad.double()
    scale = grads[torch.float64].norm().item()
    assert (grads[torch.float32] - grads[torch.float64]).norm().item() <= 1e-4 * scale
