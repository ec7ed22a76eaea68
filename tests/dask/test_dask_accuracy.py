"""pdeflow.dask's ROF stops where pdeflow.tv.rof does: at a root-mean-square error certified by the whole image's
duality gap to be at most ``accuracy`` times the image's range (the default rof's ``ACCURACY``), per image of a
batch, lazily and store to store, in float64 and float32; ``tol`` still asks for a relative gap. Its TV flow takes
pdeflow.tv.tv_flow's steps and accuracy."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

da = pytest.importorskip("dask.array")

import dask  # noqa: E402

import pdeflow.dask as pdd  # noqa: E402
from pdeflow.errors import UserInputError  # noqa: E402
from pdeflow.tv import ACCURACY, ConvergenceWarning, rof, tv_flow  # noqa: E402
from pdeflow.tv.steps import flow_steps  # noqa: E402


def _batch():
    """Three 24 x 24 images of different ranges (a noisy disk, it scaled by 3, a constant)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:24, :24]
    disk = ((x - 10) ** 2 + (y - 13) ** 2 < 50).astype(float) + 0.1 * rng.standard_normal((24, 24))
    return np.stack([disk, 3.0 * disk, np.full((24, 24), 0.4)])[:, None]        # (B, C, H, W)


def _reference(f):
    return np.stack([rof(torch.from_numpy(x), 0.1, tol=1e-11, max_iter=100000).numpy() for x in f])


def _rms_over_range(u, ref, f):
    axes = tuple(range(1, f.ndim))
    span = np.ptp(f, axis=axes)
    rms = np.sqrt(((u.astype(np.float64) - ref) ** 2).mean(axis=axes))
    return np.where(span > 0, rms / np.maximum(span, 1e-300), rms)


# float64: the slow tier (pdeflow.dask.rof's doctest runs the float64 default in make test)
@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=pytest.mark.slow), np.float32])
def test_the_default_certifies_rofs_accuracy_per_image(dtype):
    f = _batch()
    ref = _reference(f)
    r = pdd.rof(da.from_array(f.astype(dtype), chunks=(1, 1, 12, 12)), 0.1, full_output=True)
    u, crit, ok = dask.compute(r.u, r.criterion, r.converged, scheduler="sync")
    assert bool(ok) and float(crit) <= ACCURACY and u.dtype == dtype
    err = _rms_over_range(u, ref, f)
    # the certificate bounds the error it states: float32 storage adds its rounding (6e-8 of the range) only
    assert (err <= float(crit) + (1e-6 if dtype == np.float32 else 0.0)).all()
    assert err[2] <= 1e-6                          # a constant image is its own answer


@pytest.mark.slow   # make test keeps the default accuracy's certificate above
def test_a_looser_accuracy_takes_fewer_sweeps_and_tol_still_asks_for_a_gap():
    f = _batch()[:1]
    x = da.from_array(f, chunks=(1, 1, 12, 12))
    runs = {acc: dask.compute(*(lambda r: (r.sweeps, r.criterion))(pdd.rof(x, 0.1, accuracy=acc, full_output=True)),
                              scheduler="sync") for acc in (1e-2, 1e-4)}
    assert int(runs[1e-2][0]) <= int(runs[1e-4][0]) and float(runs[1e-4][1]) <= 1e-4
    r = pdd.rof(x, 0.1, tol=1e-6, accuracy=0.5, full_output=True)      # tol wins, as in rof
    assert float(r.criterion.compute(scheduler="sync")) <= 1e-6


# float64: the slow tier (pdeflow.dask.tv_flow's doctest runs the float64 default in make test)
@pytest.mark.parametrize("dtype", [pytest.param(np.float64, marks=pytest.mark.slow), np.float32])
def test_the_flow_takes_tv_flows_steps_and_certifies_its_share_per_image(dtype):
    f = _batch()[:2]                     # ranges 1.4 and 4.2: the steps come from the smaller
    times = [0.05, 0.2]                  # two steps (a long one needs many sweeps of 12 px chunks)
    plan = flow_steps(times, data_range=float(np.ptp(f[0])))
    exact = tv_flow(torch.from_numpy(f), times, tol=1e-9, max_iter=100000).numpy()   # the same steps, solved
    r = pdd.tv_flow(da.from_array(f.astype(dtype), chunks=(1, 1, 12, 12)), times, full_output=True)
    u, crit, ok = dask.compute(r.u, r.criterion, r.converged, scheduler="sync")
    assert bool(ok) and u.dtype == dtype and u.shape == (2,) + f.shape
    share = plan.solver_accuracy / plan.n_steps          # each step's certified share, of u0's range
    assert float(crit) <= share
    for k in range(2):                   # the errors of the steps add up at most (each is non-expansive)
        err = _rms_over_range(u[k], exact[k], f)
        assert (err <= plan.solver_accuracy + (1e-6 if dtype == np.float32 else 0.0)).all()


@pytest.mark.slow   # make test keeps the flow's certificate above and the refusal below
def test_the_flow_with_dt_certifies_flow_accuracy_or_asks_for_tol():
    x = da.from_array(_batch()[:1], chunks=(1, 1, 12, 12))
    r = pdd.tv_flow(x, [0.02], dt=0.01, full_output=True)
    assert float(r.criterion.compute(scheduler="sync")) <= 1e-3 / 2      # FLOW_ACCURACY over the 2 steps
    r = pdd.tv_flow(x, [0.02], dt=0.01, tol=1e-6, accuracy=0.5, full_output=True)      # tol wins
    assert float(r.criterion.compute(scheduler="sync")) <= 1e-6
    with pytest.raises(UserInputError, match=r"tv_flow: accuracy must be a number in \(0, 1\)"):
        pdd.tv_flow(x, [0.02], accuracy=2.0)


@pytest.mark.slow   # make test keeps it through test_dask_batch's zarr denoise at the command line's default
def test_store_to_store_certifies_the_same_accuracy(tmp_path):
    pytest.importorskip("zarr")
    f = _batch()
    ref = _reference(f)
    r = pdd.rof_to_zarr(da.from_array(f.astype(np.float32), chunks=(1, 1, 12, 12)), 0.1, tmp_path / "u.zarr",
                        scheduler="sync")
    assert r.converged and r.criterion <= ACCURACY
    assert (_rms_over_range(r.u.compute(), ref, f) <= r.criterion + 1e-6).all()


def test_running_out_of_sweeps_names_the_accuracy():
    x = da.from_array(_batch()[:1], chunks=(1, 1, 12, 12))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdd.rof(x, 0.1, accuracy=1e-7, max_sweeps=1, max_iter=3).compute(scheduler="sync")
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert messages and "short of accuracy=1e-07; raise max_sweeps or accuracy" in messages[0]


@pytest.mark.parametrize("bad, match", [(0.0, r"accuracy must be a number in \(0, 1\)"),
                                        (1.5, r"accuracy must be a number in \(0, 1\)"), ("x", "accuracy")])
def test_a_bad_accuracy_is_refused_by_name(bad, match, tmp_path):
    x = da.from_array(np.zeros((8, 8)), chunks=4)
    with pytest.raises(UserInputError, match=match):
        pdd.rof(x, 0.1, accuracy=bad)
    with pytest.raises(UserInputError, match=match):
        pdd.rof_to_zarr(x, 0.1, tmp_path / "u.zarr", accuracy=bad)
    with pytest.raises(UserInputError, match=match.replace("accuracy", "tv_flow: accuracy", 1)):
        pdd.tv_flow(x, [0.02], accuracy=bad)


def test_the_coarse_start_is_the_coarse_dual_repeated_feasible_and_zero_on_the_far_faces():
    from pdeflow.dask.tv import coarse_factor, prolonged

    f4 = da.zeros((1, 2, 40, 36), chunks=(1, 2, 16, 12))     # 1440 pixels, the largest chunk 192: 4 times coarser
    assert coarse_factor(f4) == 4 and coarse_factor(da.zeros((1, 1, 16, 12), chunks=(1, 1, 16, 12))) == 1
    rng = np.random.default_rng(0)
    pc = rng.uniform(-0.7, 0.7, (1, 4, 10, 9))                  # C = 2 channels x 2 components, 10 x 9 coarse
    shape = (40, 36)
    blocks = [((0, 16), (0, 12)), ((16, 32), (12, 24)), ((32, 40), (24, 36))]
    for region in blocks:
        q = prolonged(pc, region, 4, shape, 2, 2)
        assert q.shape == (1, 4, region[0][1] - region[0][0], region[1][1] - region[1][0])
        for (i, j) in [(0, 0), (q.shape[2] - 1, q.shape[3] - 2)]:
            y, x = region[0][0] + i, region[1][0] + j
            expect = pc[0, :, y // 4, x // 4].copy()
            if y == shape[0] - 1:
                expect[0::2] = 0.0               # the y-duals of the last row: no edge out of the image
            assert np.array_equal(q[0, :, i, j], expect), (region, i, j)
    last = prolonged(pc, blocks[2], 4, shape, 2, 2)
    assert not last[0, 0::2, -1].any() and not last[0, 1::2, :, -1].any()
    assert last[0, 1::2, -1, :-1].any()                      # the x-duals of the last row stay


@pytest.mark.slow   # 33 decomposed sweeps (make test runs the coarse start through every multi-chunk rof above)
def test_the_coarse_start_takes_fewer_sweeps_where_lam_spans_chunks(monkeypatch):
    import pdeflow.dask.tv as dask_tv

    n = 96
    y, x = np.mgrid[:n, :n]
    f = ((x - n / 2) ** 2 + (y - n / 2) ** 2 < (n / 3) ** 2).astype(float)
    f += 0.1 * np.random.default_rng(0).standard_normal((n, n))
    ref = rof(torch.from_numpy(f), 1.0, tol=1e-11, max_iter=200000).numpy()
    runs = {}
    for start in ("coarse", "zero"):
        if start == "zero":
            monkeypatch.setattr(dask_tv, "coarse_factor", lambda f4: 1)
        r = pdd.rof(da.from_array(f, chunks=48), 1.0, full_output=True)
        u, sweeps, crit, ok = dask.compute(r.u, r.sweeps, r.criterion, r.converged, scheduler="sync")
        assert bool(ok) and _rms_over_range(u[None], ref[None], f[None]).max() <= float(crit)
        runs[start] = int(sweeps)
    assert runs["coarse"] < runs["zero"]
