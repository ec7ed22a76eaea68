"""Biharmonic inpainting (pdeflow.inpaint.operators.biharmonic): scikit-image's own test cases, discrete
biharmonic polynomials, an independent sparse solve of the same system (images, spacings, volumes), the two
solvers against each other, float32, batches and colour, gradients and bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.sparse
import scipy.sparse.linalg
import torch

from pdeflow.errors import UserInputError
from pdeflow.inpaint.operators.biharmonic import BiharmonicResult, inpaint_biharmonic, solve_unchecked

skimage_inpaint = pytest.importorskip("skimage.restoration").inpaint_biharmonic
TIGHT = 1e-12


# ----------------------------------------------------------------------------- an independent reference

def _second_difference(n: int, h: float = 1.0):
    main = np.full(n, -2.0)
    main[0] = main[-1] = -1.0 if n > 1 else 0.0
    return scipy.sparse.diags([np.ones(n - 1), main, np.ones(n - 1)], [-1, 0, 1]) / (h * h)


def _neumann_laplacian(shape, spacing=None):
    """The Neumann Laplacian of ``shape`` (any number of axes) as a Kronecker sum of 1-D second differences."""
    spacing = spacing or (1.0,) * len(shape)
    L = None
    for a, (n, h) in enumerate(zip(shape, spacing)):
        term = scipy.sparse.identity(1)
        for b, nb in enumerate(shape):
            term = scipy.sparse.kron(term, _second_difference(n, h) if b == a else scipy.sparse.identity(nb))
        L = term if L is None else L + term
    return L.tocsr()


def reference(f: np.ndarray, known: np.ndarray, spacing=None) -> np.ndarray:
    """``min ||L u||^2`` with ``u = f`` on ``known``: ``(L^2)_UU x = -(L^2)_UK f_K`` by a sparse direct solve."""
    L = _neumann_laplacian(f.shape, spacing)
    A2 = (L @ L).tocsr()
    k = known.ravel()
    U, K = np.flatnonzero(~k), np.flatnonzero(k)
    u = f.ravel().astype(np.float64).copy()
    u[U] = scipy.sparse.linalg.spsolve(A2[U][:, U].tocsc(), -(A2[U][:, K] @ u[K]))
    return u.reshape(f.shape)


def _random(shape, density, seed):
    rng = np.random.default_rng(seed)
    f = rng.random(shape)
    known = rng.random(shape) < density
    known.flat[0] = True
    return f, known


# ----------------------------------------------------------------------------- scikit-image's test cases

def _skimage_2d_case():
    img = np.tile(np.square(np.linspace(0, 1, 5)), (5, 1))
    missing = np.zeros(img.shape, dtype=bool)
    missing[2, 2:] = missing[1, 3:] = missing[0, 4:] = True
    img[missing] = 0
    return img, missing


SKIMAGE_2D_REF = np.array([[0., 0.0625, 0.25000000, 0.5625000, 0.73925058],
                           [0., 0.0625, 0.25000000, 0.5478048, 0.76557821],
                           [0., 0.0625, 0.25842878, 0.5623079, 0.85927796],
                           [0., 0.0625, 0.25000000, 0.5625000, 1.00000000],
                           [0., 0.0625, 0.25000000, 0.5625000, 1.00000000]])


@pytest.mark.parametrize("solver", ["direct", "mg"])
def test_skimage_2d_case(solver):
    img, missing = _skimage_2d_case()
    u = inpaint_biharmonic(torch.from_numpy(img), torch.from_numpy(~missing), solver=solver, tol=TIGHT,
                           clip=True).numpy()
    np.testing.assert_allclose(u, skimage_inpaint(img, missing), rtol=0, atol=1e-6)
    np.testing.assert_allclose(u, SKIMAGE_2D_REF, rtol=1e-7, atol=1e-8)   # scikit-image's printed values


@pytest.mark.parametrize("solver", ["direct", "mg"])
def test_skimage_volume_case(solver):
    # scikit-image's "3d" case: a (5, 5, 2) volume, missing voxels through the whole last axis
    img = np.tile(np.square(np.linspace(0, 1, 5)), (5, 1))
    img = np.dstack((img, img.T))
    missing = np.zeros(img.shape, dtype=bool)
    missing[2, 2:, :] = missing[1, 3:, :] = missing[0, 4:, :] = True
    img[missing] = 0
    u = inpaint_biharmonic(torch.from_numpy(img), torch.from_numpy(~missing), ndim=3, solver=solver, tol=TIGHT,
                           clip=True).numpy()
    np.testing.assert_allclose(u, skimage_inpaint(img, missing), rtol=0, atol=1e-6)
    assert abs(u[0, 4, 0] - 0.53752796) < 1e-7 and abs(u[2, 2, 1] - 0.27241289) < 1e-7   # its printed values


def _astronaut():
    data = pytest.importorskip("skimage.data")
    try:
        return data.astronaut().astype(np.float64) / 255.0
    except Exception as exc:   # pragma: no cover - a scikit-image without its bundled images
        pytest.skip(f"skimage.data.astronaut unavailable: {exc}")


@pytest.mark.parametrize("solver", ["direct", "mg"])
def test_skimage_colour_case(solver):
    img = _astronaut()[:64, :64]
    missing = np.zeros(img.shape[:2], dtype=bool)
    missing[8:16, :16] = True
    defect = img * ~missing[..., None]
    ref = skimage_inpaint(defect, missing, channel_axis=-1)
    f = torch.from_numpy(np.ascontiguousarray(np.moveaxis(defect, -1, 0)))
    u = inpaint_biharmonic(f, torch.from_numpy(~missing), solver=solver, tol=TIGHT, clip=True)
    assert u.shape == (3, 64, 64)
    np.testing.assert_allclose(np.moveaxis(u.numpy(), 0, -1), ref, rtol=0, atol=1e-6)


def _nrmse_mask(shape):
    """The defects of scikit-image's test_inpaint_nrmse: blocks, narrow lines and random dilated points."""
    from skimage.morphology import disk

    missing = np.zeros(shape, dtype=bool)
    for sl in [np.s_[20:50, 3:20], np.s_[165:180, 90:155], np.s_[40:60, 170:195], np.s_[-60:-40, 170:195],
               np.s_[-180:-165, 90:155], np.s_[-50:-20, :20], np.s_[200:205, -200:], np.s_[150:255, 20:22],
               np.s_[365:368, 60:130]]:
        missing[sl] = True
    rng = np.random.default_rng(0)
    for radius in [0, 2, 4]:
        points = rng.standard_normal(shape) > 3.25 + 0.25 * radius
        if radius > 0:
            points = ndi.binary_dilation(points, structure=disk(radius).astype(bool))
        missing |= points
    return missing


@pytest.mark.parametrize("colour", [False, True])
def test_skimage_nrmse_case(colour):
    img = _astronaut()[:, :200]
    missing = _nrmse_mask(img.shape[:2])
    defect = img * ~missing[..., None]
    if colour:
        ref = skimage_inpaint(defect, missing, channel_axis=-1)
        f = torch.from_numpy(np.ascontiguousarray(np.moveaxis(defect, -1, 0)))
        u = np.moveaxis(inpaint_biharmonic(f, torch.from_numpy(~missing), clip=True).numpy(), 0, -1)
    else:
        grey = defect @ np.array([0.2125, 0.7154, 0.0721])
        ref = skimage_inpaint(grey, missing)
        u = inpaint_biharmonic(torch.from_numpy(grey), torch.from_numpy(~missing), clip=True).numpy()
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-6)
    # and it restores the image as that test asks (error under a fifth of the defect's)
    orig = img if colour else img @ np.array([0.2125, 0.7154, 0.0721])
    assert np.linalg.norm(u - orig) < 0.2 * np.linalg.norm((defect if colour else grey) - orig)


# ----------------------------------------------------------------------------- exact solutions

def _cubic(shape, seed):
    """A random cubic polynomial on the grid: ``L^2`` of it is zero two pixels away from the border."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.arange(n, dtype=np.float64) / n for n in shape], indexing="ij")
    u = rng.standard_normal()
    for i in range(len(shape)):
        u = u + rng.standard_normal() * axes[i] + rng.standard_normal() * axes[i] ** 3
        for j in range(i, len(shape)):
            u = u + rng.standard_normal() * axes[i] * axes[j]
            u = u + rng.standard_normal() * axes[i] ** 2 * axes[j]
    return u


@pytest.mark.parametrize("solver", ["direct", "mg"])
@pytest.mark.parametrize("shape", [(30, 41), (9, 10, 11)])
def test_cubic_polynomials_are_reproduced(shape, solver):
    # The Neumann boundary makes L u of a non-constant polynomial non-zero on the border rows, so L^2 u = 0
    # holds only two pixels away from it: keep a frame of two known pixels and a few inside.
    u_true = _cubic(shape, seed=len(shape))
    known = np.random.default_rng(1).random(shape) < 0.05
    frame = np.ones(shape, dtype=bool)
    frame[tuple(slice(2, -2) for _ in shape)] = False
    known |= frame
    f = np.where(known, u_true, np.nan)          # the missing pixels may hold anything, NaN too
    u = inpaint_biharmonic(torch.from_numpy(f), torch.from_numpy(known), ndim=len(shape), solver=solver,
                           tol=TIGHT).numpy()
    np.testing.assert_allclose(u, u_true, rtol=0, atol=1e-9)
    # a quartic is not biharmonic: the test can fail
    quartic = u_true + np.prod(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")[:2], axis=0) ** 2
    v = inpaint_biharmonic(torch.from_numpy(np.where(known, quartic, 0.0)), torch.from_numpy(known),
                           ndim=len(shape), solver=solver, tol=TIGHT).numpy()
    assert np.abs(v - quartic).max() > 1e-6


# ----------------------------------------------------------------------------- against the reference

@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
@pytest.mark.parametrize("solver", ["direct", "mg"])
def test_against_a_sparse_direct_solve(density, solver):
    f, known = _random((37, 29), density, seed=int(density * 100))
    ref = reference(f, known)
    r = inpaint_biharmonic(torch.from_numpy(f), torch.from_numpy(known), solver=solver, tol=TIGHT,
                           clip=False, full_output=True)
    assert isinstance(r, BiharmonicResult) and r.solver == solver
    np.testing.assert_allclose(r.u.numpy(), ref, rtol=0, atol=1e-8)
    assert np.array_equal(r.u.numpy()[known], f[known])      # exactly f on the mask
    assert float(r.residual.max()) <= 1e-9


@pytest.mark.parametrize("spacing", [(2.0, 1.0), (1.0, 0.5, 1.5)])
def test_spacing_against_the_reference(spacing):
    shape = (6, 12, 13) if len(spacing) == 3 else (21, 17)
    f, known = _random(shape, 0.2, seed=3)
    ref = reference(f, known, spacing)
    for solver in ("direct", "mg"):
        u = inpaint_biharmonic(torch.from_numpy(f), torch.from_numpy(known), spacing=spacing, solver=solver,
                               tol=TIGHT, clip=False).numpy()
        np.testing.assert_allclose(u, ref, rtol=0, atol=1e-8, err_msg=solver)


def test_volume_against_the_reference():
    f, known = _random((10, 11, 12), 0.1, seed=4)
    known[3:8, 3:8, 3:8] = False                          # a hole besides the sparse data
    ref = reference(f, known)
    for solver in ("direct", "mg", "auto"):
        u = inpaint_biharmonic(torch.from_numpy(f)[None], torch.from_numpy(known), ndim=3, solver=solver,
                               tol=TIGHT, clip=False)
        assert u.shape == (1, 10, 11, 12)
        np.testing.assert_allclose(u[0].numpy(), ref, rtol=0, atol=1e-8, err_msg=solver)


def test_mg_equals_direct_on_holes_and_sparse_data():
    rng = np.random.default_rng(5)
    f = torch.from_numpy(rng.random((2, 1, 96, 80)))
    known = torch.ones(2, 1, 96, 80, dtype=torch.bool)
    known[0, 0, 20:50, 10:60] = False                          # a hole
    known[1] = torch.from_numpy(rng.random((1, 96, 80)) < 0.05)  # sparse data
    a = inpaint_biharmonic(f, known, solver="mg", tol=1e-11)
    b = inpaint_biharmonic(f, known, solver="direct")
    assert float((a - b).abs().max()) < 1e-8
    # the default tolerance: within the stated accuracy of the exact solution
    assert float((inpaint_biharmonic(f, known, solver="mg") - b).abs().max()) < 1e-5


def test_auto_picks_direct_for_few_unknowns_and_mg_for_sparse_data():
    f = torch.rand(1, 1, 64, 64, dtype=torch.float64)
    holes = torch.ones(64, 64, dtype=torch.bool)
    holes[10:20, 10:20] = False
    sparse = torch.rand(64, 64) < 0.05
    sparse[0, 0] = True
    assert inpaint_biharmonic(f, holes, full_output=True).solver == "direct"
    assert inpaint_biharmonic(f, sparse, full_output=True).solver == "mg"


def test_float32_within_tolerance_of_float64():
    # the float32 accuracy: about float32's round-off times the system's conditioning (a few 1e-5 on a
    # 1 Mpx image with holes, the results page); at this size 1e-4 of the data range is a wide margin
    rng = np.random.default_rng(6)
    f = torch.from_numpy(rng.random((2, 3, 72, 64)))
    known = torch.from_numpy(rng.random((2, 1, 72, 64)) < 0.1)
    known[0, :, 30:60, 20:50] = False
    ref = inpaint_biharmonic(f, known, solver="direct")
    for solver in ("mg", "direct"):
        u = inpaint_biharmonic(f.float(), known, solver=solver)
        assert u.dtype == torch.float32
        assert float((u.double() - ref).abs().max()) < 1e-4, solver
    h = inpaint_biharmonic(f.half(), known)
    assert h.dtype == torch.float16 and float((h.double() - ref).abs().max()) < 2e-3


# ----------------------------------------------------------------------------- batches, colour, options

@pytest.mark.parametrize("solver", ["mg", "direct"])
def test_batch_equals_loop_and_channels_with_their_own_masks(solver):
    rng = np.random.default_rng(7)
    f = torch.from_numpy(rng.random((3, 2, 21, 23)))
    known = torch.from_numpy(rng.random((3, 2, 21, 23)) < 0.2)
    batch = inpaint_biharmonic(f, known, solver=solver, tol=1e-11)
    for b in range(3):
        for c in range(2):
            one = inpaint_biharmonic(f[b, c], known[b, c], solver=solver, tol=1e-11)
            assert float((batch[b, c] - one).abs().max()) < 1e-9
    shared = inpaint_biharmonic(f, known[:, :1], solver=solver, tol=1e-11)   # one mask for both channels
    for c in range(2):
        one = inpaint_biharmonic(f[:, c:c + 1], known[:, :1], solver=solver, tol=1e-11)
        assert float((shared[:, c:c + 1] - one).abs().max()) < 1e-9


def test_x0_solve_unchecked_and_max_iter_warning():
    f, known = _random((40, 44), 0.05, seed=8)
    f, known = torch.from_numpy(f), torch.from_numpy(known)
    r = inpaint_biharmonic(f, known, solver="mg", full_output=True)
    warm = inpaint_biharmonic(f, known, solver="mg", x0=r.u, full_output=True)
    assert int(warm.iterations) < int(r.iterations) and float((warm.u - r.u).abs().max()) < 1e-6
    u = solve_unchecked(f[None, None], known[None, None].double(), tol=1e-10)
    assert float((u[0, 0] - inpaint_biharmonic(f, known, tol=1e-10)).abs().max()) < 1e-8
    with pytest.warns(RuntimeWarning, match="max_iter=2 reached"):
        inpaint_biharmonic(f, known, solver="mg", max_iter=2)


def test_clip_is_the_range_of_the_known_values():
    x = torch.arange(20, dtype=torch.float64)
    f = (1 - (x - 9.5).abs() / 10).expand(20, 20).clone()    # a tent: the fill of its top overshoots
    known = torch.ones(20, 20, dtype=torch.bool)
    known[:, 7:13] = False
    u = inpaint_biharmonic(f, known, clip=False)
    lo, hi = float(f[known].min()), float(f[known].max())
    assert float(u.max()) > hi + 0.01
    c = inpaint_biharmonic(f, known)                         # clip=True, the default
    assert torch.equal(c, u.clamp(lo, hi))


# ----------------------------------------------------------------------------- gradients

def test_gradcheck_f_and_the_solvers_agree():
    rng = np.random.default_rng(9)
    f = torch.from_numpy(rng.random((2, 6, 7))).requires_grad_()
    known = torch.from_numpy(rng.random((6, 7)) < 0.4)
    known[0, 0] = True
    assert torch.autograd.gradcheck(lambda x: inpaint_biharmonic(x, known, solver="direct"), (f,),
                                    eps=1e-6, atol=1e-7)
    # the multigrid solver's adjoint solve gives the same gradient, for f and for the mask
    g = torch.from_numpy(rng.standard_normal((2, 6, 7)))
    grads = []
    for solver in ("direct", "mg"):
        fr = f.detach().clone().requires_grad_()
        c = known.double().requires_grad_()
        (inpaint_biharmonic(fr, c, solver=solver, tol=1e-13) * g).sum().backward()
        grads.append((fr.grad, c.grad))
    assert float((grads[0][0] - grads[1][0]).abs().max()) < 1e-9
    assert float((grads[0][1] - grads[1][1]).abs().max()) < 1e-9


def test_gradient_3d_against_central_differences():
    rng = np.random.default_rng(10)
    f = torch.from_numpy(rng.random((5, 6, 7)))
    known = torch.from_numpy(rng.random((5, 6, 7)) < 0.3)
    g = torch.from_numpy(rng.standard_normal((5, 6, 7)))
    fr = f.clone().requires_grad_()
    (inpaint_biharmonic(fr, known, ndim=3, solver="mg", tol=1e-12) * g).sum().backward()
    d = torch.from_numpy(rng.standard_normal((5, 6, 7)))
    eps = 1e-5
    loss = [float((inpaint_biharmonic(f + s * eps * d, known, ndim=3, solver="direct") * g).sum()) for s in (1, -1)]
    assert abs((loss[0] - loss[1]) / (2 * eps) - float((fr.grad * d).sum())) < 1e-7


def _continuous(f, c):
    """The continuous-mask problem ``c (u - f) + (1 - c) L^2 u = 0``, dense."""
    L = _neumann_laplacian(f.shape).toarray()
    M = np.diag(c.ravel()) + np.diag(1 - c.ravel()) @ (L @ L)
    return np.linalg.solve(M, c.ravel() * f.ravel()).reshape(f.shape)


def test_mask_gradient_is_that_of_the_continuous_problem():
    rng = np.random.default_rng(11)
    f = rng.random((7, 8))
    known = rng.random((7, 8)) < 0.4
    known[0, 0] = True
    g = rng.standard_normal((7, 8))
    c = torch.from_numpy(known.astype(np.float64)).requires_grad_()
    u = inpaint_biharmonic(torch.from_numpy(f), c, solver="direct")
    np.testing.assert_allclose(u.detach().numpy(), _continuous(f, known.astype(np.float64)), atol=1e-10)
    (u * torch.from_numpy(g)).sum().backward()
    eps = 1e-6
    for i, j in [(0, 0), (3, 4), (6, 7), (2, 5)]:
        d = np.zeros((7, 8))
        d[i, j] = eps
        base = known.astype(np.float64)
        # one-sided inside [0, 1]: down from a known pixel, up from a missing one
        step = -d if known[i, j] else d
        fd = ((_continuous(f, base + step) - _continuous(f, base)) * g).sum() / (step[i, j])
        assert abs(fd - float(c.grad[i, j])) < 1e-4 * max(1.0, abs(fd)), (i, j)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, match", [
    (dict(mask=None), "mask is required"),
    (dict(mask=torch.ones(5, 6)), "does not fit f"),
    (dict(mask=torch.full((6, 6), 0.5)), "mask must be binary"),
    (dict(mask=torch.zeros(6, 6)), "no known pixel"),
    (dict(solver="lu"), "solver must be one of"),
    (dict(tol=0.0), "tol must be a number in"),
    (dict(max_iter=0), "max_iter must be a positive int"),
    (dict(clip="yes"), "clip must be True or False"),
    (dict(x0=torch.zeros(3, 3)), "x0 must be a tensor of the shape of f"),
    (dict(ndim=4), "ndim"),
])
def test_bad_input_messages(kwargs, match):
    f = torch.rand(6, 6, dtype=torch.float64)
    args = dict(mask=torch.rand(6, 6) < 0.5)
    args["mask"][0, 0] = True
    args.update(kwargs)
    with pytest.raises(UserInputError, match=match):
        inpaint_biharmonic(f, **args)


def test_bad_image_values():
    known = torch.ones(6, 6, dtype=torch.bool)
    known[2:4, 2:4] = False
    with pytest.raises(Exception, match="integer|dtype|float"):
        inpaint_biharmonic(torch.ones(6, 6, dtype=torch.int64), known)
    f = torch.rand(6, 6, dtype=torch.float64)
    f[0, 0] = float("nan")
    with pytest.raises(UserInputError, match="NaN or infinite values at 1 known pixels"):
        inpaint_biharmonic(f, known)
    f[0, 0], f[2, 2] = 0.0, float("inf")                  # at a missing pixel: never read
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bool(torch.isfinite(inpaint_biharmonic(f, known)).all())


def test_gradcheck_with_clipping_follows_the_known_value_that_bounds_a_clipped_pixel():
    """A pixel clipped to the largest known value moves with it: du/df = 1 there, not 0 (the bounds are
    differentiated). A noisy step with 41 known pixels overshoots on both sides, so some pixels are clipped."""
    g = torch.Generator().manual_seed(0)
    f = torch.zeros(1, 12, 12, dtype=torch.float64)
    f[..., 6:] = 1
    f = f + 0.05 * torch.rand(1, 12, 12, generator=g, dtype=torch.float64)
    m = torch.zeros(1, 12, 12, dtype=torch.float64)
    m.view(-1)[torch.randperm(144, generator=g)[:41]] = 1
    u = inpaint_biharmonic(f, m, solver="direct", clip=False)
    known = f[m > 0]
    assert int(((u < known.min()) | (u > known.max())).sum()) > 0        # clipping happens
    torch.autograd.gradcheck(lambda x: inpaint_biharmonic(x, m, solver="direct", clip=True),
                             (f.clone().requires_grad_(),), eps=1e-6, atol=1e-5)
