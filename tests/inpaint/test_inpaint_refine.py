"""Test-time mask refinement (pdeflow.inpaint.masks.refine): exact k, monotone error, best of shifts, batching,
errors."""
import warnings

import pytest
import torch

from pdeflow.inpaint import inpaint_diffusion, refine_mask
from pdeflow.inpaint.masks.analytic import analytic_mask, laplacian_density
from pdeflow.inpaint.masks.refine import image_loss, refine_options
from pdeflow.inpaint.masks.snapping import extremality


def _images(B=3, H=32, W=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(H, dtype=torch.float64)[:, None]
    x = torch.arange(W, dtype=torch.float64)[None, :]
    base = 0.5 + 0.25 * torch.sin(x / 3.0) * torch.cos(y / 5.0)
    noise = torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    blur = torch.nn.functional.avg_pool2d(noise, 3, 1, 1, count_include_pad=False)
    steps = (x > W // 2).to(torch.float64) * 0.2
    return (base + steps + 0.3 * (blur - 0.5)).clamp(0, 1)


def _maps(f):
    return laplacian_density(f), extremality(f)


@pytest.mark.parametrize("metric, hide", [("masknet", "probe"), ("mse", "probe"), ("mae", "probe"),
                                          ("masknet", "adjoint")])
def test_exact_k_and_monotone_error(metric, hide):
    f = _images()
    m = analytic_mask(f, 0.08)
    p, s = _maps(f)
    res = refine_mask(f, m, rounds=6, shifts=3, density_map=p, snap_score=s, metric=metric, hide=hide, generator=1,
                      full_output=True)
    assert res.mask.shape == m.shape and res.mask.dtype == f.dtype
    assert torch.equal(res.mask.flatten(1).sum(1), m.flatten(1).sum(1))
    assert bool(((res.mask == 0) | (res.mask == 1)).all())
    tr = res.trace
    assert tr.shape == (3, 2 + 6)
    assert bool((tr[:, 1:] <= tr[:, :-1]).all())               # never increases
    # the reported error is that of the returned mask, and it is the input's or lower
    err = image_loss(inpaint_diffusion(f, res.mask), f, metric)
    assert torch.allclose(err, res.error, rtol=1e-4, atol=1e-12)     # solved to refine_mask's final_tol 1e-6
    assert torch.allclose(tr[:, 0], image_loss(inpaint_diffusion(f, m), f, metric), rtol=1e-4, atol=1e-12)
    assert bool((res.error <= tr[:, 0]).all())
    assert int(res.accepted.sum()) > 0                           # the exchanges do something here


def test_loose_search_never_returns_a_worse_mask():
    """The search compares masks by loose solves; the result is checked against the input at final_tol.
    With a useless search tolerance (one CG step or so) accepted swaps can make things worse; the
    returned mask then is the input, and the reported error is the accurate one."""
    f = _images(B=4, seed=9)
    m = analytic_mask(f, 0.08)
    p, s = _maps(f)
    for tol in (0.9, 3e-3):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "refine_mask: for .* too loose", UserWarning)   # said so: tested below
            res = refine_mask(f, m, rounds=6, shifts=3, density_map=p, snap_score=s, generator=2, tol=tol,
                              full_output=True)
        err_in = image_loss(inpaint_diffusion(f, m, tol=1e-10), f, "masknet")
        err_out = image_loss(inpaint_diffusion(f, res.mask, tol=1e-10), f, "masknet")
        assert torch.allclose(res.error, err_out, rtol=1e-5)
        assert bool((err_out <= err_in * (1 + 1e-6)).all())
    with pytest.raises(ValueError, match="final_tol"):
        refine_mask(f, m, rounds=1, final_tol=0)


def test_best_of_shifts_never_worse_than_first_tile():
    f = _images(B=4, seed=3)
    m = analytic_mask(f, 0.1)
    p, s = _maps(f)
    one = refine_mask(f, m, rounds=0, shifts=1, density_map=p, snap_score=s, full_output=True)
    many = refine_mask(f, m, rounds=0, shifts=6, density_map=p, snap_score=s, generator=0, full_output=True)
    assert torch.equal(one.mask, m) and bool((one.shift == 0).all())
    assert bool((many.error <= one.error).all())
    keep = many.shift == 0
    assert torch.equal(many.mask[keep], m[keep])
    assert torch.equal(many.mask.flatten(1).sum(1), m.flatten(1).sum(1))
    # seeded: the same generator gives the same result
    again = refine_mask(f, m, rounds=0, shifts=6, density_map=p, snap_score=s, generator=0)
    assert torch.equal(again, many.mask)


def test_batched_equals_per_image():
    f = _images(B=3, seed=5)
    m = analytic_mask(f, 0.06)
    batched = refine_mask(f, m, rounds=5, full_output=True)
    for i in range(3):
        one = refine_mask(f[i:i + 1], m[i:i + 1], rounds=5, full_output=True)
        assert torch.equal(one.mask, batched.mask[i:i + 1])
        assert torch.allclose(one.trace, batched.trace[i:i + 1], rtol=1e-9, atol=1e-14)


def test_unbatched_shapes():
    f = _images(B=1)[0, 0]
    m = analytic_mask(f, 0.1)
    out = refine_mask(f, m, rounds=2)
    assert out.shape == f.shape and int(out.sum()) == int(m.sum())
    out3 = refine_mask(f[None], m[None], rounds=2)
    assert out3.shape == (1,) + f.shape


def test_gradient_ranks_revealed_pixels():
    """Sign convention: the unknown pixel of largest 'benefit of revealing' (-dl/dc) lowers the error
    more when revealed than the one of median benefit."""
    from pdeflow.inpaint.masks._refine_loss import Loss as _Loss
    from pdeflow.inpaint.masks._refine_search import evaluate as _evaluate
    from pdeflow.inpaint.masks._refine_search import evaluate_graph as _evaluate_graph
    f = _images(B=1, seed=7)
    m = analytic_mask(f, 0.05)
    keep = m.flatten(1).bool()
    loss = _Loss(f, "mse")
    _, e0, gradient = _evaluate_graph(f, keep, loss, 1e-8, "cg")
    g, _ = gradient()
    ben = torch.where(keep, torch.full_like(g, -float("inf")), -g)[0]
    order = ben.argsort(descending=True)
    n_unknown = int((~keep).sum())
    drops = []
    for j in (int(order[0]), int(order[n_unknown // 2])):
        k2 = keep.clone()
        k2[0, j] = True
        _, e = _evaluate(f, k2, loss, 1e-8, "cg")
        drops.append(float(e0 - e))
    assert drops[0] > 0 and drops[0] > drops[1]


def test_hooks_keep_k_and_do_not_hurt():
    f = _images(B=2, seed=2)
    base = analytic_mask(f, 0.1)
    ref = analytic_mask(f, 0.1, refine={"rounds": 3, "shifts": 2}, generator=0)
    assert torch.equal(ref.flatten(1).sum(1), base.flatten(1).sum(1))
    e_base = image_loss(inpaint_diffusion(f, base), f, "masknet")
    e_ref = image_loss(inpaint_diffusion(f, ref), f, "masknet")
    assert bool((e_ref <= e_base + 1e-12).all())
    assert torch.equal(analytic_mask(f, 0.1, refine=0), base)


def test_learned_mask_hook():
    from pdeflow.inpaint.learned.masknet import MaskNet, learned_mask
    torch.manual_seed(0)
    net = MaskNet(1, 0.1, widths=(4, 8))
    f = _images(B=2, seed=4).float()
    base = learned_mask(f, 0.1, model=net)
    ref = learned_mask(f, 0.1, model=net, refine={"rounds": 3, "shifts": 2, "generator": 0})
    assert ref.dtype == f.dtype and torch.equal(ref.flatten(1).sum(1), base.flatten(1).sum(1))
    e_base = image_loss(inpaint_diffusion(f.double(), base.double()), f.double(), "masknet")
    e_ref = image_loss(inpaint_diffusion(f.double(), ref.double()), f.double(), "masknet")
    assert bool((e_ref <= e_base + 1e-9).all())


@pytest.mark.parametrize("kwargs, name", [
    ({"rounds": -1}, "rounds"),
    ({"rounds": 1.5}, "rounds"),
    ({"shifts": 0}, "shifts"),
    ({"shifts": 2}, "density_map"),
    ({"swaps": 0.0}, "swaps"),
    ({"metric": "psnr"}, "metric"),
    ({"hide": "random"}, "hide"),
    ({"solver": "lu"}, "solver"),
    ({"density_map": torch.ones(1, 1, 5, 5)}, "density_map"),
])
def test_bad_arguments(kwargs, name):
    f = _images(B=1)
    m = analytic_mask(f, 0.1)
    with pytest.raises(ValueError, match=name):
        refine_mask(f, m, **kwargs)


def test_bad_mask():
    f = _images(B=2)
    m = analytic_mask(f, 0.1)
    with pytest.raises(ValueError, match="mask"):
        refine_mask(f, m[:, :, :-1])                     # other shape
    with pytest.raises(ValueError, match="mask"):
        refine_mask(f, m[:1])                             # other batch
    with pytest.raises(ValueError, match="mask"):
        refine_mask(f, 0.5 * m)                           # not binary
    with pytest.raises(ValueError, match="mask"):
        refine_mask(f, torch.ones_like(m))                # no unknown pixel


def test_refine_option():
    assert refine_options(0, "x") is None and refine_options(None, "x") is None
    assert refine_options(3, "x") == {"rounds": 3}
    assert refine_options({"shifts": 4}, "x") == {"shifts": 4, "rounds": 0}
    for bad in (-1, 1.5, "2", {"round": 2}):
        with pytest.raises(ValueError, match="refine"):
            refine_options(bad, "x")
    with pytest.raises(ValueError, match="refine"):
        analytic_mask(_images(B=1), 0.1, refine=-2)


def test_probe_costs_are_measured_local_errors():
    """'probe' ranks known pixels by the squared error they get when hidden with a
    non-touching subset: for a probed pixel alone, that is its exact single-removal error
    up to the interaction with the other probed pixels, and it orders pixels like it."""
    from pdeflow.inpaint.masks._refine_search import probe_costs as _probe_costs
    from pdeflow.inpaint.masks.dither import blue_noise_tile
    f = _images(B=1, seed=9)
    keep = analytic_mask(f, 0.15).flatten(1).bool()
    u = inpaint_diffusion(f, keep.view(f.shape).to(f.dtype), tol=1e-10)
    cost = _probe_costs(f, u, keep, 1e-10, "cg", blue_noise_tile(64), 0)
    probed = torch.isfinite(cost)
    assert bool((probed <= keep).all()) and int(probed.sum()) > 10
    H, W = f.shape[-2:]
    pm = probed.view(H, W).to(torch.float64)[None, None]
    touching = torch.nn.functional.conv2d(pm, torch.ones(1, 1, 3, 3, dtype=pm.dtype), padding=1) - pm
    assert float((touching * pm).max()) == 0                   # no two probed pixels touch
    idx = probed[0].nonzero().flatten()
    order = cost[0, idx].argsort()
    lo, hi = int(idx[order[0]]), int(idx[order[-1]])
    single = []
    for j in (lo, hi):                                         # hide one pixel alone: its exact cost
        k2 = keep.clone()
        k2[0, j] = False
        uj = inpaint_diffusion(f, k2.view(f.shape).to(f.dtype), tol=1e-10)
        single.append(float(((uj - f) ** 2).flatten()[j]))
    assert single[0] < single[1]
    assert abs(single[1] - float(cost[0, hi])) <= 0.5 * single[1]


def test_probe_beats_linearised_hiding_on_average():
    f = _images(B=4, H=48, W=48, seed=11)
    m = analytic_mask(f, 0.2)
    e = {h: refine_mask(f, m, rounds=8, hide=h, metric="mse", full_output=True).error for h in ("probe", "adjoint")}
    assert float(e["probe"].mean()) < float(e["adjoint"].mean())


@pytest.mark.parametrize("metric", ["masknet", "mse", "mae"])
@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (2, 3, 20, 17)])
def test_hand_gradient_loss_equals_image_loss_and_its_autograd_gradient(metric, shape):
    """The refinement's _Loss (f's SSIM statistics filtered once, closed-form SSIM gradient) is image_loss."""
    from pdeflow.inpaint.masks._refine_loss import Loss as _Loss
    g = torch.Generator().manual_seed(sum(shape))
    f = torch.rand(shape, generator=g, dtype=torch.float64)
    u = (f + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    err, grad = _Loss(f, metric)(u.detach())
    ref = image_loss(u, f, metric)
    (gref,) = torch.autograd.grad(ref.sum(), u)
    assert torch.allclose(err, ref.detach(), rtol=1e-13, atol=1e-15)
    assert torch.allclose(grad(), gref, rtol=0, atol=1e-12 * float(gref.abs().max()))


def test_trial_gradient_is_the_diffuse_autograd_gradient():
    """_evaluate_graph's deferred gradient (adjoint solve on demand) equals autograd through inpaint_diffusion +
    image_loss."""
    from pdeflow.inpaint.masks._refine_loss import Loss as _Loss
    from pdeflow.inpaint.masks._refine_search import evaluate_graph as _evaluate_graph
    f = _images(B=2, seed=3)
    m = analytic_mask(f, 0.1)
    keep = m.flatten(1).bool()
    u, err, gradient = _evaluate_graph(f, keep, _Loss(f, "masknet"), 1e-10, "cg", adjoint_tol=1e-10)
    g, nu = gradient()
    c = m.clone().requires_grad_(True)
    ref = image_loss(inpaint_diffusion(f, c, tol=1e-10, solver="cg"), f, "masknet")
    (gref,) = torch.autograd.grad(ref.sum(), c)
    assert torch.allclose(err, ref.detach(), rtol=1e-9)
    assert torch.allclose(g, gref.flatten(1), rtol=0, atol=1e-8 * float(gref.abs().max()))
    assert nu.shape == f.shape and bool((nu.flatten(1)[keep] == 0).all())   # adjoint unknowns: zero on the mask


@pytest.mark.parametrize("metric, hide", [("masknet", "probe"), ("mae", "probe"), ("mse", "adjoint")])
def test_single_image_numpy_path_equals_the_tensor_search(metric, hide, monkeypatch):
    """One grey image runs the search on NumPy vectors (refine.SINGLE_IMAGE_PATH): the same masks,
    errors, trace and callback as the tensor search it replaces for that call."""
    import pdeflow.inpaint.masks.refine as refine
    f = _images(B=3, H=40, W=36, seed=13)
    p, s = _maps(f)
    for i in range(3):
        fi, mi = f[i:i + 1], analytic_mask(f[i:i + 1], 0.12)
        out, calls = {}, {}
        for flag in (True, False):
            monkeypatch.setattr(refine, "SINGLE_IMAGE_PATH", flag)
            seen = []
            out[flag] = refine_mask(fi, mi, rounds=7, shifts=3, density_map=p[i:i + 1], snap_score=s[i:i + 1],
                                    metric=metric, hide=hide, generator=i, full_output=True,
                                    callback=lambda r, m, u, e, seen=seen: seen.append((r, m.clone(), float(e[0]))))
            calls[flag] = seen
        a, b = out[True], out[False]
        assert torch.equal(a.mask, b.mask)
        assert torch.allclose(a.trace, b.trace, rtol=1e-6, atol=1e-12)
        assert torch.allclose(a.error, b.error, rtol=1e-8) and torch.allclose(a.u, b.u, atol=1e-8)
        assert torch.equal(a.shift, b.shift) and torch.equal(a.accepted, b.accepted)
        assert torch.equal(a.swapped, b.swapped)
        assert [r for r, _, _ in calls[True]] == list(range(8)) == [r for r, _, _ in calls[False]]
        assert all(torch.equal(x[1], y[1]) for x, y in zip(calls[True], calls[False]))


@pytest.mark.parametrize("single", [True, False])
def test_a_search_too_loose_for_the_image_says_so_and_keeps_the_input(monkeypatch, single):
    """On a nearly flat image (inpainting errors ~1e-7) the search's solves to tol=3e-3 cannot rank masks: the
    result is no better at final_tol, the input comes back, and a warning names tol; 1e-7 refines it."""
    import pdeflow.inpaint.masks.refine as R
    monkeypatch.setattr(R, "SINGLE_IMAGE_PATH", single)
    yy, xx = torch.meshgrid(*(torch.linspace(0, 1, 48, dtype=torch.float64),) * 2, indexing="ij")
    f = 0.5 + 1e-3 * torch.sin(3 * xx + 2 * yy) * torch.cos(4 * yy)
    m0 = analytic_mask(f, 0.1)
    with pytest.warns(UserWarning, match=r"tol=0\.003 are too loose.*e\.g\. 3e-05"):
        loose = refine_mask(f, m0, rounds=30, tol=3e-3, generator=0)
    assert torch.equal(loose, m0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = refine_mask(f, m0, rounds=30, tol=1e-7, generator=0, full_output=True)
    assert not torch.equal(fine.mask, m0) and int(fine.mask.sum()) == int(m0.sum())
    f4 = f[None, None]
    assert float(fine.error) < float(image_loss(inpaint_diffusion(f4, m0[None, None], tol=1e-10), f4, "masknet"))
