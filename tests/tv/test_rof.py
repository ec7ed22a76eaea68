"""ROF solvers: agreement between independent methods, optimality, batching, errors."""
import numpy as np
import pytest
import torch
from skimage.restoration import denoise_tv_chambolle

from pdeflow.datasets import builtin_image
from pdeflow.ops import tv
from pdeflow.tv import ROF_METHODS, duality_gap, rof

LAMS = (0.02, 0.1, 0.5)


def _crop(name="skimage/camera", y=150, x=200, size=64):
    return builtin_image(name, grey=True)[0, y : y + size, x : x + size].double()


def objective(u, f, lam):
    return 0.5 * ((u - f) ** 2).sum() + lam * tv(u)


@pytest.fixture(scope="module")
def crop():
    return _crop()


class _References(dict):
    """Tight FGP solutions per lam, each solved when first asked for; the other methods are checked against them."""

    def __init__(self, crop):
        super().__init__()
        self.crop = crop

    def __missing__(self, lam):
        self[lam] = rof(self.crop, lam, method="fgp", tol=1e-12, max_iter=20000, full_output=True)
        return self[lam]


@pytest.fixture(scope="module")
def references(crop):
    return _References(crop)


# Iterations each method may take to agree with the FGP reference; every method of ROF_METHODS is checked
# (a new one without a budget here fails at collection). Chambolle's projection converges as O(1/k): at
# lam = 0.5 it needs ~10^5 iterations.
_BUDGET = {"pdhg": 30000, "admm": 6000, "chambolle": 60000}
_AGREE = [(m, _BUDGET[m]) for m in ROF_METHODS if m != "fgp"]


def _agree_cases():
    """The slow tier: every method at every lam (ADMM takes thousands of iterations, PDHG and Chambolle tens of
    thousands each); make test keeps each method's shapes, dtypes and lam 0 (test_shapes_dtype_and_lambda_zero)."""
    cases = [(m, n, lam) for m, n in _AGREE for lam in LAMS if not (m == "chambolle" and lam == 0.5)]
    cases.append(("chambolle", 200000, 0.5))
    return [pytest.param(*c, marks=pytest.mark.slow) for c in cases]


@pytest.mark.parametrize("method,max_iter,lam", _agree_cases())
def test_methods_agree_to_1e4(crop, references, method, max_iter, lam):
    u = rof(crop, lam, method=method, tol=1e-12, max_iter=max_iter)
    err = (u - references[lam].u).abs().max().item()
    assert err < 1e-4, f"{method} differs from fgp by {err:.2e} at lam={lam}"


# lam 0.1 (50000 scikit-image iterations, seconds of CPU) in the slow tier: 0.02 and 0.5 keep both branches below
@pytest.mark.parametrize("lam", [pytest.param(lam, marks=pytest.mark.slow) if lam == 0.1 else lam for lam in LAMS])
def test_objective_not_above_scikit_image(crop, references, lam):
    sk = torch.from_numpy(denoise_tv_chambolle(crop.numpy(), weight=lam, eps=1e-12, max_num_iter=50000))
    ref = references[lam]
    p_sk = objective(sk, crop, lam)
    assert objective(ref.u, crop, lam) <= p_sk
    # Strong convexity: ||sk - u*||^2 <= 2 (P(sk) - P(u*)) <= 2 (P(sk) - D(p)) for our dual p,
    # so the distance between the two is what scikit-image's own objective excess allows.
    lam_t = torch.full((1, 1, 1, 1), lam, dtype=torch.float64)
    gap, primal = duality_gap(crop[None, None], ref.u[None, None], ref.p, lam_t)
    dual_bound = primal - gap
    assert (sk - ref.u).norm() <= (2 * (p_sk - dual_bound)).sqrt() + (2 * gap).sqrt()
    if lam < 0.5:  # at lam = 0.5, 50000 iterations leave scikit-image 1.2e-3 short
        assert (ref.u - sk).abs().max() < 1e-3


def test_duality_gap_bounds_the_error(crop, references):
    lam = 0.02
    r = rof(crop, lam, method="fgp", tol=1e-3, full_output=True)
    lam_t = torch.tensor([lam], dtype=torch.float64).reshape(1, 1, 1, 1)
    gap, primal = duality_gap(crop[None, None], r.u[None, None], r.p, lam_t)
    assert gap.item() <= 1e-3 * primal.item() * (1 + 1e-9)
    assert ((r.u - references[lam].u) ** 2).sum().item() <= 2 * gap.item() + 1e-12
    assert r.p.norm(dim=2).max() <= 1 + 1e-12


def test_batched_per_image_lambda_and_stopping():
    f = torch.stack([_crop(y=100), _crop(y=300), _crop("skimage/astronaut", 200, 200)])[:, None]
    lam = torch.tensor([0.02, 0.1, 0.5], dtype=torch.float64)
    r = rof(f, lam, tol=1e-6, full_output=True)
    assert r.u.shape == f.shape and r.iterations.shape == (3,)
    assert len(set(r.iterations.tolist())) > 1  # each image stops on its own
    for i in range(3):
        single = rof(f[i, 0], lam[i].item(), tol=1e-6, full_output=True)
        assert (single.u - r.u[i, 0]).abs().max() < 1e-5
        assert r.gap[i] <= 1e-6
        assert single.iterations.item() == r.iterations[i].item()


def test_warm_start_from_the_solution_converges_at_once(crop):
    r = rof(crop, 0.1, tol=1e-8, full_output=True)
    again = rof(crop, 0.1, tol=1e-8, p0=r.p, full_output=True)
    assert again.iterations.item() <= 5 < r.iterations.item()
    assert (again.u - r.u).abs().max() < 1e-5


@pytest.mark.slow   # scikit-image per channel on a colour crop; the grey comparison stays in make test
def test_colour_channelwise_matches_scikit_image_per_channel():
    img = builtin_image("skimage/astronaut", grey=False)[:, 100:132, 200:232].double()
    u = rof(img, 0.1, channelwise=True, tol=1e-10, max_iter=20000)
    sk = denoise_tv_chambolle(img.permute(1, 2, 0).numpy(), weight=0.1, eps=1e-12, max_num_iter=20000, channel_axis=-1)
    assert np.abs(u.permute(1, 2, 0).numpy() - sk).max() < 1e-3


@pytest.mark.slow   # every method on a colour crop; the channelwise scikit-image check stays in make test
def test_colour_vectorial_tv_methods_agree_and_couple_channels():
    img = builtin_image("skimage/astronaut", grey=False)[:, 100:132, 200:232].double()
    a = rof(img, 0.1, method="fgp", tol=1e-12, max_iter=100000)
    b = rof(img, 0.1, method="admm", tol=1e-12, max_iter=6000)
    assert (a - b).abs().max() < 1e-4
    sep = rof(img, 0.1, channelwise=True, tol=1e-10)
    assert (a - sep).abs().max() > 1e-3  # coupling changes the answer
    assert objective(a, img, 0.1) <= objective(sep, img, 0.1)  # vectorial TV objective


@pytest.mark.parametrize("method", ROF_METHODS)
def test_shapes_dtype_and_lambda_zero(method):
    f32 = _crop(size=16).float()
    u = rof(f32, 0.05, method=method, tol=1e-4)
    assert u.shape == f32.shape and u.dtype == torch.float32
    assert torch.equal(rof(f32[None], 0.0, method=method), f32[None])
    # Mean is preserved by the Neumann TV.
    assert abs(u.mean() - f32.mean()) < 1e-5


def test_constant_image_is_a_fixed_point():
    f = torch.full((1, 1, 8, 8), 0.7, dtype=torch.float64)
    assert torch.equal(rof(f, 0.3), f)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(f=torch.zeros(2, 2, 2, 2, 2)), "f must have shape"),
        (dict(f=torch.tensor([[0.0, float("nan")], [0.0, 0.0]])), "NaN or inf"),
        (dict(lam=-0.1), "lam must be finite and >= 0"),
        (dict(lam=torch.tensor([0.1, 0.2])), r"lam must be a float or a tensor of shape \(1,\)"),
        (dict(method="newton"), "method must be one of"),
        (dict(tol=0.0), "tol must be > 0"),
        (dict(max_iter=0), "max_iter must be >= 1"),
        (dict(p0=torch.zeros(1, 1, 2, 3, 3)), "p0 must have shape"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = dict(f=torch.zeros(4, 4), lam=0.1)
    args.update(kwargs)
    f = args.pop("f")
    lam = args.pop("lam")
    with pytest.raises((ValueError, TypeError), match=match):
        rof(f, lam, **args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_image_constant_to_round_off_stops_at_once(dtype):
    # An image that has flowed to its mean: P and the gap are both round-off, so the
    # relative gap never falls; the round-off floor of the gap must stop the solver.
    f = 3.0 + torch.finfo(dtype).eps * torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)).to(dtype)
    r = rof(f, 0.1, tol=1e-8, full_output=True)
    assert r.iterations.item() <= 10
    assert (r.u - f.mean()).abs().max() < 1e-5


def test_stopping_at_max_iter_short_of_tol_warns_once(crop):
    from pdeflow.tv import ConvergenceWarning

    f = torch.stack([crop, crop.flip(-1), torch.full_like(crop, 0.3)])[:, None]
    with pytest.warns(ConvergenceWarning) as record:
        r = rof(f, 0.1, method="pdhg", tol=1e-10, max_iter=20, full_output=True)
    assert len(record) == 1 and record[0].filename == __file__  # points at the caller
    msg = str(record[0].message)
    # The two textured images stop short; the constant one is its own mean (extinct: no iteration).
    assert "2 of 3 image(s)" in msg and "max_iter=20" in msg and "tol=1e-10" in msg
    assert f"{r.gap.max().item():.2g}" in msg
    assert r.iterations.tolist() == [20, 20, 0] and bool((r.gap[:2] > 1e-10).all())


def test_converged_solve_does_not_warn(crop):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rof(crop, 0.1, tol=1e-4)
        rof(crop, 0.1, tol=1e-4, max_iter=10**6)


@pytest.mark.parametrize("lam", [0.002, 0.05, 1.0])
@pytest.mark.parametrize("channels", [1, 3])
def test_float32_gap_is_within_its_round_off_bound(lam, channels):
    # FGP's gap in float32 comes with a bound on its own round-off (what lets float32 decide tol
    # without a float64 re-evaluation): check it against the float64 gap of the same iterate.
    import importlib

    from pdeflow.ops import div

    R = importlib.import_module("pdeflow.tv._rof_methods")
    f = torch.stack([5 * _crop(y=40 + 30 * c, x=60, size=48) for c in range(channels)])[None].float()
    lam_t = torch.full((1, 1, 1, 1), lam)
    s = R._fgp_init(f, lam_t, torch.zeros(1, channels, 2, 48, 48), False)
    for iterations in (0, 3, 40):
        for _ in range(iterations):
            R._fgp_step(s, f, lam_t, False)
        u, p, gap, primal, bound = R._dual_gap(s, f, lam_t, False)
        f64, p64 = f.double(), p.double()
        lam64 = torch.full((1, 1, 1, 1), lam, dtype=torch.float64)
        gap64, primal64 = duality_gap(f64, f64 + lam * div(p64), p64, lam64)
        assert abs(gap.item() - gap64.item()) <= bound.item(), (iterations, gap.item(), gap64.item(), bound.item())
        if lam <= 0.002 and gap64.item() < 1e-5 * primal64.item():
            # the steps of tv_flow near convergence: float32 decides its default tol (3e-6) on its own
            assert bound.item() <= 3e-6 * primal64.item(), (bound.item(), primal64.item())


def test_float32_decides_ordinary_tolerances_without_float64(crop, monkeypatch):
    import importlib

    R = importlib.import_module("pdeflow.tv.rof")
    calls = []
    unchecked = R.gap_and_primal    # what the solver calls (duality_gap is its checked public form)
    monkeypatch.setattr(R, "gap_and_primal", lambda *a, **k: calls.append(1) or unchecked(*a, **k))
    f = (5 * crop).float()
    r = rof(f, 0.01, tol=1e-5, full_output=True, precision="input")
    assert not calls  # decided on the float32 gap and its bound
    g64, p64 = duality_gap(f.double()[None, None], r.u.double()[None, None], r.p.double(),
                           torch.full((1, 1, 1, 1), 0.01, dtype=torch.float64))
    assert (g64 / p64).item() <= 2e-5  # tol met, to within the 2x the bound allows
    rof(f, 0.01, tol=1e-8, precision="input")  # beyond what float32 resolves: verified in float64
    assert calls


@pytest.mark.slow   # two 64x64 solves and backward passes; test_differential's test_gradients[tv.rof] keeps float32
# gradients against float64 ones in make test
def test_float32_gradient_is_the_float64_one_on_a_camera_crop():
    # float32 iterations gave dL/dlam = +489 against -62.08 here (wrong sign) and x.grad 8x off
    from pdeflow.datasets import builtin_image
    f = builtin_image("skimage/camera")[:, 200:264, 200:264].contiguous()
    grads = {}
    for dtype in (torch.float32, torch.float64):
        x = f.to(dtype).clone().requires_grad_(True)
        lam = torch.tensor(0.1, dtype=torch.float32).to(dtype).requires_grad_(True)   # the same lam in both
        (0.5 * (rof(x, lam) - 0.5).square().sum()).backward()
        grads[dtype] = (float(lam.grad), x.grad.double())
    (l32, g32), (l64, g64) = grads[torch.float32], grads[torch.float64]
    assert l64 < 0 and abs(l32 - l64) <= 1e-4 * abs(l64)
    assert float((g32 - g64).abs().max()) <= 1e-4 * float(g64.abs().max())


def test_float32_rof_beyond_extinction_is_the_mean():
    from pdeflow.datasets import builtin_image
    g = builtin_image("skimage/camera")[:, 200:248, 200:248].contiguous()
    for lam in (1e2, 1e4, 1e6):
        r = rof(g, lam, full_output=True)
        assert r.u.dtype == torch.float32 and int(r.iterations[0]) == 0
        assert float((r.u.double() - g.double().mean()).abs().max()) <= 1e-7

