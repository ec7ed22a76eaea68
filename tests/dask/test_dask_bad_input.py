"""Bad input on the Dask path: a chunk holding NaN or an infinity, a zarr chunk whose file is missing, a chunk
that cannot be decoded, from the API and from the command line: one line that names the argument and the chunk,
exit status 2, no output store and no work folder left behind, and no solve started on a bad chunk. Also the
sweep caps that say when they are hit, the batch rule that keeps small batches in this process, and Ctrl-C on a
batch running on a local cluster (one line, no worker tracebacks)."""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import pdeflow.dask
from pdeflow.errors import UserInputError
from pdeflow.io import write_image
from pdeflow.tv import ConvergenceWarning, rof

da = pytest.importorskip("dask.array")
pytest.importorskip("zarr")

from pdeflow.io import read_zarr, write_zarr  # noqa: E402  (needs the dask extra)


def _image(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).random((n, n)).astype(np.float32)


def _store(path: Path, x: np.ndarray, chunks: int = 8) -> Path:
    return write_zarr(da.from_array(x, chunks=chunks), path)


def _missing(path: Path) -> Path:
    """A store of 2 x 2 chunks whose chunk (1, 1) file is gone (a copy cut short)."""
    _store(path, _image())
    (path / "c" / "1" / "1").unlink()
    return path


def _corrupt(path: Path) -> Path:
    """A store whose chunk (0, 1) file is truncated."""
    _store(path, _image())
    chunk = path / "c" / "0" / "1"
    chunk.write_bytes(chunk.read_bytes()[: len(chunk.read_bytes()) // 2])
    return path


def _with(value, at=(11, 3)) -> np.ndarray:
    x = _image()
    x[at] = value
    return x


def _one_line(text: str) -> bool:
    return "\n" not in text.strip() and "Traceback" not in text


def _left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- the API ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_rof_refuses_a_chunk_that_is_not_finite_before_any_solve(value, monkeypatch):
    import pdeflow.dask.tv as dtv

    calls = []
    real = dtv.solve_subdomain
    monkeypatch.setattr(dtv, "solve_subdomain", lambda *a, **k: calls.append(1) or real(*a, **k))
    u = pdeflow.dask.rof(da.from_array(_with(value), chunks=8), 0.1, max_sweeps=2)
    with pytest.raises(UserInputError) as err:
        u.compute(scheduler="sync")
    text = str(err.value)
    assert text.startswith("pdeflow.dask.rof: f must be finite") and "at (11, 3)" in text
    assert "(its chunk [8:16, 0:8])" in text and _one_line(text)
    assert calls == []          # every block reaches into the bad chunk: no solve ran


def test_tv_flow_and_the_store_solves_refuse_it_too(tmp_path):
    x = da.from_array(_with(np.nan, at=(2, 14)), chunks=8)
    with pytest.raises(UserInputError, match=r"tv_flow: u0 must be finite; it holds nan at \(2, 14\)"):
        pdeflow.dask.tv_flow(x, [0.01], dt=0.005, max_sweeps=2).compute(scheduler="sync")
    with pytest.raises(UserInputError, match=r"rof_to_zarr: f must be finite; it holds nan at \(2, 14\)"):
        pdeflow.dask.rof_to_zarr(x, 0.1, tmp_path / "u.zarr")
    mask = np.ones((16, 16))
    with pytest.raises(UserInputError, match=r"inpaint_to_zarr: x \(where mask is known\) must be finite"):
        pdeflow.dask.inpaint_to_zarr(x, mask, tmp_path / "v.zarr", overlap=2)
    assert not (tmp_path / "u.zarr").exists() and not (tmp_path / "v.zarr").exists()
    assert _left_behind(tmp_path) == []                 # no work folder, no temporary result store
    mask[2, 14] = 0                                     # the NaN is not known data: it is filled in
    r = pdeflow.dask.inpaint_to_zarr(x, mask, tmp_path / "v.zarr", overlap=2, tol=1e-3)
    assert np.isfinite(r.u.compute()).all()


def test_read_zarr_names_a_missing_chunk_and_fills_it_only_when_told(tmp_path):
    path = _missing(tmp_path / "m.zarr")
    x = read_zarr(path)                                  # lazy: the check runs where the chunk is read
    with pytest.raises(UserInputError) as err:
        x.compute()
    text = str(err.value)
    assert "chunk 'c/1/1' (index (1, 1), elements [8:16, 8:16])" in text and "is missing" in text
    assert "fill_missing=VALUE" in text and _one_line(text)
    y = read_zarr(path, fill_missing=0.5).compute()
    np.testing.assert_array_equal(y[8:, 8:], 0.5)
    np.testing.assert_array_equal(y[:8], _image()[:8])
    z = read_zarr(path, fill_missing=-1, chunks=5).compute()    # chunks across the store's: the same values
    np.testing.assert_array_equal(z[8:, 8:], -1)
    with pytest.raises(UserInputError, match="fill_missing must be a number"):
        read_zarr(path, fill_missing="zero")


def test_read_zarr_names_a_chunk_that_cannot_be_decoded(tmp_path):
    path = _corrupt(tmp_path / "c.zarr")
    for chunks in (None, 16):                           # one task a chunk, or one task for all four
        with pytest.raises(UserInputError) as err:
            read_zarr(path, chunks=chunks).compute()
        text = str(err.value)
        assert "chunk 'c/0/1' (index (0, 1), elements [0:8, 8:16])" in text and "truncated or corrupt" in text
        assert _one_line(text)


def test_write_zarr_writes_every_chunk_so_its_stores_read_back(tmp_path):
    x = np.zeros((16, 16), np.float32)                  # every chunk equal to the fill value
    path = _store(tmp_path / "z.zarr", x)
    assert len(list((path / "c").rglob("*"))) == 2 + 4     # two folders, four chunk files
    np.testing.assert_array_equal(read_zarr(path).compute(), x)


def test_the_sweep_caps_say_when_they_are_hit(tmp_path):
    x = da.from_array(_image(), chunks=8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdeflow.dask.rof(x, 0.5, max_sweeps=1).compute(scheduler="sync")
        r = pdeflow.dask.rof_to_zarr(x, 0.5, tmp_path / "u.zarr", max_sweeps=1, scheduler="sync")
    texts = {str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)}
    assert not r.converged and r.sweeps == 1
    assert any(t.startswith("pdeflow.dask.rof: stopped at max_sweeps=1") for t in texts), texts
    assert any(t.startswith("pdeflow.dask.rof_to_zarr: stopped at max_sweeps=1") for t in texts), texts
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # converged: no warning
        pdeflow.dask.rof(x, 0.5, tol=1e-3, max_sweeps=3).compute(scheduler="sync")


# --- the command line ---------------------------------------------------------------------------------------------

def _main(argv, capsys):
    from pdeflow.cli import main

    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


CASES = {
    "nan": (lambda p: _store(p, _with(np.nan)), "f must be finite; it holds nan at (11, 3) (its chunk [8:16, 0:8])"),
    "inf": (lambda p: _store(p, _with(np.inf)), "f must be finite; it holds inf at (11, 3) (its chunk [8:16, 0:8])"),
    "missing": (_missing, "chunk 'c/1/1' (index (1, 1), elements [8:16, 8:16])"),
    "corrupt": (_corrupt, "chunk 'c/0/1' (index (0, 1), elements [0:8, 8:16])"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_zarr_command_refuses_bad_stores_in_one_line(case, tmp_path, capsys):
    make, message = CASES[case]
    store = make(tmp_path / f"{case}.zarr")
    out = tmp_path / "out.zarr"
    t0 = time.process_time()
    status, stdout, err = _main(["denoise", store, out, "--lam", "0.1", "--chunks", "8", "--max-sweeps", "3"], capsys)
    assert status == 2 and _one_line(err), err
    assert err.startswith("pdeflow denoise: error: argument IMAGE: ") and message in err, err
    assert ("--fill-missing VALUE" in err) == (case == "missing")
    assert not out.exists() and _left_behind(tmp_path) == []
    assert time.process_time() - t0 < 60          # refused as the input is read, not after the sweeps


def test_fill_missing_on_the_command_line(tmp_path, capsys):
    store = _missing(tmp_path / "m.zarr")
    out = tmp_path / "out.zarr"
    status, stdout, err = _main(["denoise", store, out, "--lam", "0.1", "--chunks", "8", "--fill-missing", "0",
                                 "--tol", "1e-3", "--max-sweeps", "3"], capsys)
    assert status == 0 and "wrote" in stdout and out.exists(), (stdout, err)
    status, _, err = _main(["denoise", tmp_path / "a.png", "--lam", "0.1", "--out", tmp_path / "d",
                            "--fill-missing", "0"], capsys)
    assert status == 2 and "argument --fill-missing: only for a zarr store" in err


def test_the_sweep_cap_of_the_command_is_one_line_and_status_1(tmp_path, capsys):
    store = _store(tmp_path / "in.zarr", _image())
    status, stdout, err = _main(["denoise", store, tmp_path / "o.zarr", "--lam", "0.5", "--chunks", "8",
                                 "--max-sweeps", "1"], capsys)
    assert status == 1 and "stopped at the sweep cap, short of --tol" in stdout
    assert "warning" not in err                    # the command's line, not the library's warning as well


# --- batches: a local cluster only where it pays, Ctrl-C ----------------------------------------------------------

def _pngs(folder: Path, n: int, size: int = 24) -> None:
    gen = torch.Generator().manual_seed(2)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_image(folder / f"im{i:03d}.png", torch.rand(1, size, size, generator=gen))


def test_cluster_pays_is_the_wall_time_the_workers_save_against_the_start():
    from pdeflow.dask.batch import cluster_pays

    assert not cluster_pays(50, 0.17, 2, start_cost=8.0, cores=2)       # 4.25 s saved < 8 s
    assert cluster_pays(100, 0.17, 2, start_cost=8.0, cores=2)          # 8.5 s saved > 8 s
    assert not cluster_pays(10**6, 1.0, 1, start_cost=0.0, cores=16)    # one worker never pays
    assert not cluster_pays(10**6, 1.0, 8, start_cost=0.0, cores=1)     # nor one core
    assert cluster_pays(30, 0.17, 8, start_cost=4.0, cores=16)          # 4.5 s saved by 8 at once ...
    assert not cluster_pays(30, 0.17, 8, start_cost=4.0, cores=2)       # ... 2.6 s by 2


def test_a_small_batch_with_workers_runs_in_this_process(tmp_path, capsys):
    from pdeflow.dask.batch import FileTask, batch_files, run_batch

    _pngs(tmp_path / "in", 3)
    jobs = batch_files(tmp_path / "in", tmp_path / "out", suffix=".png")
    task = FileTask(functools.partial(rof, lam=0.1))
    res = run_batch(task, jobs, workers=2, start_cost=1e9)
    assert res.ok and len(res.written) == 3 and res.workers == 0 and res.here == 3
    assert "in this process" in res.summary()
    with pytest.raises(UserInputError, match="start_cost must be a number"):
        run_batch(task, jobs, workers=2, start_cost=-1.0)
    status, stdout, err = _main(["denoise", tmp_path / "in", "--lam", "0.1", "--out", tmp_path / "cli",
                                 "--workers", "2"], capsys)
    assert status == 0, err
    assert "in this process until the work left pays for starting a local Dask cluster of 2" in stdout \
        or "would only add its start" in stdout                         # a machine of one core
    assert "3 written" in stdout and "s in this process" in stdout and "starting it" not in stdout


@pytest.mark.slow   # starts a local cluster of two worker processes in a subprocess
def test_ctrl_c_stops_a_batch_on_a_local_cluster_with_one_line(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("a cluster of 2 workers pays for nothing on one core: the batch would not start one")
    _pngs(tmp_path / "in", 150, size=96)
    out = tmp_path / "out"
    code = ("import sys, pdeflow.dask.batch as b; b.CLUSTER_START_S = 0.0; from pdeflow.cli import main; "
            "sys.exit(main(sys.argv[1:]))")           # a start that costs nothing: the cluster starts after a file
    proc = subprocess.Popen([sys.executable, "-c", code, "denoise", str(tmp_path / "in"), "--lam", "0.1", "--out",
                             str(out), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        t0 = time.monotonic()       # Ctrl-C once the workers have written a few results (the cluster is running)
        while len(list(out.glob("*.png"))) < 4 and proc.poll() is None and time.monotonic() - t0 < 300:
            time.sleep(0.1)
        assert proc.poll() is None, "the batch ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)          # as a terminal does: to every process of the group
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines = [line for line in stderr.splitlines() if "% (" not in line]        # the progress bar's lines
    assert proc.returncode == 130 and "starting it" in stdout, (stdout, stderr)
    assert lines == ["pdeflow denoise: interrupted; its partial output files were removed"], stderr
    assert len(list(out.glob("*.png"))) < 150 and not [p for p in out.iterdir() if ".tmp" in p.name]
