"""Batch runs over many files (pdeflow.dask.batch and the batch options of the commands) on a real
dask.distributed LocalCluster the tests start: outputs equal to the single-image results, resumable, one line per
failed file, a worker process killed mid-batch."""
from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pdeflow.dask.batch import BatchResult, FileTask, batch_files, run_batch
from pdeflow.errors import UserInputError
from pdeflow.io import read_image, write_image
from pdeflow.tv import rof

distributed = pytest.importorskip("distributed")

ROF = functools.partial(rof, lam=0.1, tol=1e-4)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded workers in this process over TCP (tasks serialised); worker processes: below and
    tests/dask/test_dask_arrays.py."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
                                  dashboard_address=":0", silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def process_cluster():
    """Two single-threaded worker processes (with nannies, which restart a killed worker)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as c:
        yield c


def _images(folder: Path, n: int = 4, size: int = 24) -> list[Path]:
    """``n`` small noisy grey PNGs (of different sizes) in ``folder``, and one in a subfolder."""
    gen = torch.Generator().manual_seed(1)
    paths = []
    for i in range(n):
        h = size + 2 * i
        y = torch.linspace(0, 1, h)[:, None]
        img = (0.5 + 0.3 * torch.sin(6 * y + i) + 0.1 * torch.randn(h, size, generator=gen)).clamp(0, 1)
        p = folder / ("sub" if i == n - 1 else "") / f"im{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        paths.append(write_image(p, img[None]))
    return paths


def _pixels(path: Path) -> np.ndarray:
    return read_image(path).numpy()


# --- batch_files --------------------------------------------------------------------------------------------

def test_batch_files_keeps_the_layout_and_takes_patterns(tmp_path):
    _images(tmp_path / "in")
    pairs = batch_files(tmp_path / "in", tmp_path / "out", suffix=".pdc")
    rel = [str(t.relative_to(tmp_path / "out")) for _, t in pairs]
    assert rel == ["im0.pdc", "im1.pdc", "im2.pdc", "sub/im3.pdc"]
    pairs = batch_files([str(tmp_path / "in" / "im[01].png"), str(tmp_path / "in" / "**" / "im3.png")],
                        tmp_path / "out", suffix=".png", tag="_lam0.10")
    assert [str(t.relative_to(tmp_path / "out")) for _, t in pairs] == ["im0_lam0.10.png", "im1_lam0.10.png",
                                                                        "sub/im3_lam0.10.png"]
    # a file named twice is one job
    one = tmp_path / "in" / "im0.png"
    assert len(batch_files([one, one, str(tmp_path / "in" / "im0.*")], tmp_path / "o", suffix=".png")) == 1


def test_batch_files_refuses_what_it_cannot_do(tmp_path):
    _images(tmp_path / "in")
    with pytest.raises(UserInputError, match="no such file, folder or pattern"):
        batch_files(tmp_path / "nothing", tmp_path / "out", suffix=".png")
    with pytest.raises(UserInputError, match="matches no"):
        batch_files(str(tmp_path / "in" / "*.jpg"), tmp_path / "out", suffix=".png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="holds no"):
        batch_files(tmp_path / "empty", tmp_path / "out", suffix=".png")
    write_image(tmp_path / "in" / "im0.tif", torch.zeros(4, 4))
    with pytest.raises(UserInputError, match="would both be written to"):
        batch_files(tmp_path / "in", tmp_path / "out", suffix=".png")
    with pytest.raises(UserInputError, match="would overwrite the input"):
        batch_files(tmp_path / "in" / "im1.png", tmp_path / "in", suffix=".png")


def test_run_batch_checks_its_arguments(tmp_path):
    task = FileTask(ROF)
    with pytest.raises(UserInputError, match="not both"):
        run_batch(task, [], scheduler="tcp://127.0.0.1:1", workers=2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(UserInputError, match="workers must be a positive integer"):
            run_batch(task, [], workers=bad)
    for bad in (0, 2.0, False):
        with pytest.raises(UserInputError, match="files_per_task must be a positive integer"):
            run_batch(task, [], workers=1, files_per_task=bad)
    with pytest.raises(UserInputError, match="read must be"):
        FileTask(ROF, read="text")


# --- run_batch on the cluster ---------------------------------------------------------------------------------

def test_cluster_batch_equals_the_loop_resumes_and_reports_failures(tmp_path, cluster):
    _images(tmp_path / "in")
    (tmp_path / "in" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    task = FileTask(ROF)
    # the plain loop in this process: the reference
    ref = run_batch(task, batch_files(tmp_path / "in", tmp_path / "ref", suffix=".png"))
    jobs = batch_files(tmp_path / "in", tmp_path / "out", suffix=".png")
    lines = []
    res = run_batch(task, jobs, scheduler=cluster.scheduler_address, log=lines.append)
    assert isinstance(res, BatchResult) and res.workers == 2
    assert len(res.written) == 4 and not res.skipped and not res.ok
    assert [str(s.name) for s, _ in res.failed] == ["corrupt.png"]
    assert len(lines) == 1 and lines[0].startswith(str(tmp_path / "in" / "corrupt.png") + ": ")
    assert "could not read" in lines[0] and "\n" not in lines[0]
    summary = res.summary()
    assert "4 written, 0 skipped" in summary and "1 failed" in summary and "2 Dask worker threads" in summary
    for (_, t), (_, r) in zip(jobs, batch_files(tmp_path / "in", tmp_path / "ref", suffix=".png")):
        if t.name != "corrupt.png":
            np.testing.assert_array_equal(_pixels(t), _pixels(r))
    assert len(ref.written) == 4 and len(ref.failed) == 1
    # the ROF result, not a copy: it is smoother than its input
    source, target = next(j for j in jobs if j[0].name == "im0.png")
    assert float(torch.from_numpy(_pixels(target)).diff(dim=-1).abs().sum()) < \
        float(read_image(source).diff(dim=-1).abs().sum())
    # resumable: the finished outputs are skipped and left alone; a missing one is made again
    stamp = {t: t.stat().st_mtime_ns for t in res.written}
    target.unlink()
    again = run_batch(task, jobs, scheduler=cluster.scheduler_address)
    assert again.written == [target] and len(again.skipped) == 3 and len(again.failed) == 1
    assert all(t.stat().st_mtime_ns == stamp[t] for t in again.skipped)
    # overwrite: every job runs again; here three files a task, the corrupt one failing alone in its task
    lines = []
    grouped = run_batch(task, jobs, scheduler=cluster.scheduler_address, overwrite=True, files_per_task=3,
                        log=lines.append)
    assert len(grouped.written) == 4 and len(grouped.failed) == 1 and len(lines) == 1
    for (_, t), (_, r) in zip(jobs, batch_files(tmp_path / "in", tmp_path / "ref", suffix=".png")):
        if t.name != "corrupt.png":
            np.testing.assert_array_equal(_pixels(t), _pixels(r))
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]


def test_bytes_in_and_out(tmp_path, cluster):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.bin").write_bytes(bytes([i]) * 5)
    jobs = batch_files(src, tmp_path / "out", suffix=".rev", suffixes=(".bin",))
    res = run_batch(FileTask(bytes.upper, read="bytes", write="bytes"), jobs, scheduler=cluster.scheduler_address)
    assert len(res.written) == 3
    assert (tmp_path / "out" / "f2.rev").read_bytes() == bytes([2]) * 5


def _kill_on_call(x, *, counter: str, at: int):
    """ROF of ``x``, but the process dies (SIGKILL, no cleanup) on the ``at``-th call of all, counted in a file."""
    with open(counter, "a") as fh:
        fh.write("x")
    if os.path.getsize(counter) == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return ROF(x)


@pytest.mark.slow   # a worker killed mid-batch
def test_a_worker_killed_mid_batch_and_the_batch_completes(tmp_path, process_cluster):
    cluster = process_cluster
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])     # the workers cannot import this test module
    _images(tmp_path / "in", n=6)
    counter = tmp_path / "calls"
    task = FileTask(functools.partial(_kill_on_call, counter=str(counter), at=3))
    jobs = batch_files(tmp_path / "in", tmp_path / "out", suffix=".png")
    lines = []
    res = run_batch(task, jobs, scheduler=cluster.scheduler_address, log=lines.append)
    assert counter.stat().st_size == 7            # six files and the one run again after its worker died
    assert res.ok and not lines and len(res.written) == 6
    ref = run_batch(FileTask(ROF), batch_files(tmp_path / "in", tmp_path / "ref", suffix=".png"))
    for (_, t), r in zip(jobs, ref.written):
        np.testing.assert_array_equal(_pixels(t), _pixels(r))
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]


# --- the commands' batches ------------------------------------------------------------------------------------

def _main(argv, capsys):
    from pdeflow.cli import main

    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_denoise_batch_equals_the_single_image_command(tmp_path, cluster, capsys):
    images = _images(tmp_path / "in")
    (tmp_path / "in" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    out = tmp_path / "out"
    argv = ["denoise", tmp_path / "in", "--lam", "0.1", "0.2", "--out", out, "--scheduler", cluster.scheduler_address]
    status, stdout, err = _main(argv, capsys)
    assert status == 1                                         # a file failed; the others were written
    failed = [line for line in err.splitlines() if "corrupt.png" in line]
    assert len(failed) == 1 and failed[0].startswith("pdeflow denoise: ") and "Traceback" not in err
    assert "8 written, 0 skipped (already there), 2 failed" in stdout
    for img in (images[0], images[-1]):           # a file at the top and one in a subfolder
        single = tmp_path / "single" / img.stem
        assert _main(["denoise", img, "--lam", "0.1", "0.2", "--out", single], capsys)[0] == 0
        rel = img.relative_to(tmp_path / "in").with_suffix("")
        for lab in ("0.10", "0.20"):
            np.testing.assert_array_equal(_pixels(out / f"{rel}_lam{lab}.png"), _pixels(single / f"u_lam{lab}.png"))
    # the same command again: every finished result skipped, the corrupt file tried (and failing) again
    status, stdout, _ = _main(argv, capsys)
    assert status == 1 and "0 written, 8 skipped (already there), 2 failed" in stdout
    # one lambda: the result keeps the input's name; the plain loop in this process
    status, stdout, _ = _main(["denoise", *images[:2], "--lam", "0.1", "--out", tmp_path / "one"], capsys)
    assert status == 0 and "2 written" in stdout and "this process" in stdout
    np.testing.assert_array_equal(_pixels(tmp_path / "one" / "im0.png"), _pixels(out / "im0_lam0.10.png"))


def test_codec_batches_equal_the_single_commands(tmp_path, cluster, capsys):
    images = _images(tmp_path / "in", n=2, size=32)
    addr = ["--scheduler", cluster.scheduler_address]
    assert _main(["compress", str(tmp_path / "in" / "*.png"), "--bpp", "1", "--out", tmp_path / "pdc", *addr],
                 capsys)[0] == 0
    assert _main(["compress", images[0], "--bpp", "1", "--out", tmp_path / "one.pdc"], capsys)[0] == 0
    assert (tmp_path / "pdc" / "im0.pdc").read_bytes() == (tmp_path / "one.pdc").read_bytes()
    assert not (tmp_path / "pdc" / "sub").exists()             # the pattern named the top folder's files only
    status, stdout, _ = _main(["decompress", tmp_path / "pdc", "--bits", "16", "--out", tmp_path / "dec", *addr],
                              capsys)
    assert status == 0 and "1 written" in stdout
    assert _main(["decompress", tmp_path / "one.pdc", "--bits", "16", "--out", tmp_path / "one.png"], capsys)[0] == 0
    assert (tmp_path / "dec" / "im0.png").read_bytes() == (tmp_path / "one.png").read_bytes()


@pytest.mark.slow   # a cluster started for a batch; tests/dask/test_dask_arrays.py keeps a LocalCluster in make test
def test_inpaint_batch_with_one_mask_on_a_local_cluster_it_starts(tmp_path, capsys, monkeypatch):
    import pdeflow.dask.batch

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("on one core a local cluster never pays for its start: the batch stays in this process")
    monkeypatch.setattr(pdeflow.dask.batch, "CLUSTER_START_S", 0.0)     # the cluster starts after the first file
    gen = torch.Generator().manual_seed(3)
    (tmp_path / "in").mkdir()
    for i in range(2):
        write_image(tmp_path / "in" / f"im{i}.png", torch.rand(1, 20, 20, generator=gen))
    write_image(tmp_path / "in" / "small.png", torch.rand(1, 10, 10, generator=gen))
    mask = (torch.rand(1, 20, 20, generator=gen) < 0.3).float()
    write_image(tmp_path / "mask.png", mask)
    status, stdout, err = _main(["inpaint", tmp_path / "in", "--mask", tmp_path / "mask.png", "--out", tmp_path / "o",
                                 "--workers", "2"], capsys)
    assert status == 1 and "2 written" in stdout and "1 failed" in stdout and "starting it" in stdout
    assert "on 2 Dask worker threads (1 first in this process)" in stdout
    assert len([line for line in err.splitlines() if "small.png" in line]) == 1
    assert _main(["inpaint", tmp_path / "in" / "im1.png", "--mask", tmp_path / "mask.png", "--out", tmp_path / "s"],
                 capsys)[0] == 0
    np.testing.assert_array_equal(_pixels(tmp_path / "o" / "im1.png"), _pixels(tmp_path / "s" / "inpainted.png"))


def test_batch_usage_errors(tmp_path, capsys):
    _images(tmp_path / "in", n=2)
    cases = [
        (["denoise", tmp_path / "in", "--lam", "0.1", "--out", tmp_path / "o", "--workers", "2", "--scheduler", "x"],
         "not allowed with argument"),
        (["denoise", tmp_path / "in", "builtin:skimage/camera", "--lam", "0.1", "--out", tmp_path / "o"],
         "argument IMAGE: a batch takes files"),
        (["denoise", tmp_path / "in", "--lam", "0.1", "--noise", "0.1", "--out", tmp_path / "o"],
         "argument --noise: not for a batch"),
        (["denoise", tmp_path / "in", "--lam", "0.1", "--out", tmp_path / "o", "--workers", "0"],
         "argument --workers"),
        (["denoise", str(tmp_path / "in" / "*.jpg"), "--lam", "0.1", "--out", tmp_path / "o"], "matches no"),
        (["denoise", tmp_path / "in", "--lam", "0.1", "--out", tmp_path / "in"], "would overwrite the input"),
    ]
    for argv, message in cases:
        status, _, err = _main(argv, capsys)
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "o").exists()


def test_the_command_line_does_not_import_dask_until_a_batch_runs(fresh_interpreter):
    # in a fresh interpreter (tests/_fresh.py): the full parser built and a batch command line parsed
    assert fresh_interpreter["parser"] == []


def test_the_zarr_denoise_default_is_the_library_default():
    """A zarr store, pdeflow.dask and the single array stop at one default: rof's accuracy, not a gap of their own."""
    import inspect

    import pdeflow.dask
    from pdeflow.cli import denoise
    from pdeflow.tv import ACCURACY
    assert denoise.DENOISE["accuracy"] == ACCURACY
    for fn in (pdeflow.dask.rof, pdeflow.dask.rof_to_zarr):
        params = inspect.signature(fn).parameters
        assert params["tol"].default is None and params["accuracy"].default is None     # None: ACCURACY


# --- zarr stores on the command line ---------------------------------------------------------------------------

def _store(path: Path, x: np.ndarray, chunks: int = 16) -> Path:
    import dask.array as da

    from pdeflow.io import write_zarr
    return write_zarr(da.from_array(x, chunks=chunks), path)


def _read_store(path: Path) -> np.ndarray:
    from pdeflow.io import read_zarr
    return read_zarr(path).compute()


def test_denoise_a_zarr_store_on_the_cluster_equals_rof(tmp_path, cluster, capsys):
    pytest.importorskip("zarr")
    f = np.random.default_rng(5).random((24, 32)).astype(np.float32)
    _store(tmp_path / "in.zarr", f, chunks=8)
    argv = ["denoise", tmp_path / "in.zarr", tmp_path / "out.zarr", "--lam", "0.05", "--chunks", "12",
            "--max-sweeps", "2", "--scheduler", cluster.scheduler_address]     # a graph of 2 sweeps: fewer tasks
    status, stdout, _ = _main(argv, capsys)
    assert status == 0 and "chunks of 12x12" in stdout and "wrote" in stdout and "Schwarz sweep" in stdout
    u = _read_store(tmp_path / "out.zarr")
    ref = rof(torch.from_numpy(f).double(), 0.05, tol=1e-10, max_iter=100000).numpy()
    assert u.shape == f.shape and u.dtype == np.float32
    # the default: rof's accuracy, an RMS error certified to 2.5e-4 of the range (its largest error below 1e-3)
    span = f.max() - f.min()
    assert np.sqrt(((u - ref) ** 2).mean()) <= 2.5e-4 * span and np.abs(u - ref).max() <= 1e-3 * span
    assert "RMS error at most 0.00025 of the range" in stdout
    status, _, err = _main(argv, capsys)          # the store exists: refused, nothing replaced
    assert status == 2 and "exists; --overwrite replaces it" in err
    # integers are read in [0, 1]
    _store(tmp_path / "u8.zarr", (f * 255).round().astype(np.uint8), chunks=8)
    status, stdout, _ = _main(["denoise", tmp_path / "u8.zarr", "--out", tmp_path / "u8_out.zarr", "--lam", "0.05",
                               "--chunks", "12", "--max-sweeps", "3"], capsys)
    assert status == 0 and "uint8 values mapped to [0, 1]" in stdout and "dask's threads" in stdout
    ref8 = rof(torch.from_numpy((f * 255).round() / 255).double(), 0.05, tol=1e-10, max_iter=100000).numpy()
    assert np.sqrt(((_read_store(tmp_path / "u8_out.zarr") - ref8) ** 2).mean()) <= 2.5e-4


def test_a_zarr_volume_is_chunked_by_the_volume_default(tmp_path, capsys):
    """Without --chunks a volume gets chunks of 128 a side (a chunk of an image's default edge, 1024, would be 4 GB
    for a volume)."""
    pytest.importorskip("zarr")
    from pdeflow.cli._zarr import DEFAULT_CHUNKS
    v = np.random.default_rng(7).random((DEFAULT_CHUNKS[3] + 4, 4, 5)).astype(np.float32)
    _store(tmp_path / "v.zarr", v, chunks=8)
    status, stdout, _ = _main(["denoise", tmp_path / "v.zarr", tmp_path / "v_out.zarr", "--lam", "0.05", "--ndim", "3",
                               "--max-sweeps", "1"], capsys)
    assert status == 0 and f"chunks of {DEFAULT_CHUNKS[3]}x4x5" in stdout


@pytest.mark.slow   # two decomposed inpaintings of stores
def test_inpaint_a_zarr_store_with_a_mask_store_or_holes(tmp_path, capsys):
    pytest.importorskip("zarr")
    from pdeflow.inpaint import inpaint_diffusion
    rng = np.random.default_rng(6)
    f = rng.random((32, 32))
    m = rng.random(f.shape) < 0.15
    _store(tmp_path / "in.zarr", f)
    _store(tmp_path / "m.zarr", m)
    _store(tmp_path / "holes.zarr", (~m).astype(np.uint8))
    ref = inpaint_diffusion(torch.from_numpy(f), torch.from_numpy(m.astype(float)), tol=1e-12).numpy()
    for flag, store in (("--mask", "m.zarr"), ("--holes", "holes.zarr")):
        out = tmp_path / f"u_{flag[2:]}.zarr"
        status, stdout, _ = _main(["inpaint", tmp_path / "in.zarr", out, flag, tmp_path / store, "--chunks", "16",
                                   "--overlap", "4", "--tol", "1e-9", "--max-sweeps", "10"], capsys)
        assert status == 0 and "diffusion inpainting" in stdout, stdout
        assert np.abs(_read_store(out) - ref).max() <= 1e-6
    # a mask of another shape fails at run time: a one-line error, no store left behind
    _store(tmp_path / "small.zarr", m[:16])
    status, _, err = _main(["inpaint", tmp_path / "in.zarr", tmp_path / "bad.zarr", "--mask", tmp_path / "small.zarr"],
                           capsys)
    assert status == 2 and "argument --mask" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.zarr").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_zarr_usage_errors(tmp_path, capsys):
    pytest.importorskip("zarr")
    _store(tmp_path / "in.zarr", np.zeros((16, 16), np.float32))
    _store(tmp_path / "m.zarr", np.ones((16, 16), bool))
    write_image(tmp_path / "m.png", torch.ones(1, 16, 16))
    zin, zout = tmp_path / "in.zarr", tmp_path / "o.zarr"
    cases = [
        (["denoise", zin, "--lam", "0.1"], "IN.zarr OUT.zarr"),
        (["denoise", zin, tmp_path / "o.png", "--lam", "0.1"], "a name ending in .zarr"),
        (["denoise", zin, zout, "--lam", "0.1", "0.2"], "one lambda"),
        (["denoise", zin, zout, "--lam", "0.1", "--noise", "0.1"], "argument --noise: not for a zarr store"),
        (["denoise", zin, zin, "--lam", "0.1", "--overwrite"], "is the input store"),
        (["denoise", tmp_path / "missing.zarr", zout, "--lam", "0.1"], "no zarr store"),
        (["denoise", tmp_path / "m.png", "--lam", "0.1"], "required: --out"),
        (["denoise", tmp_path / "m.png", "--lam", "0.1", "--out", tmp_path / "d", "--chunks", "8"],
         "argument --chunks: only for a zarr store"),
        (["inpaint", zin, zout, "--mask", tmp_path / "m.png"], "argument --mask: with a zarr store"),
        (["inpaint", zin, zout, "--mask", tmp_path / "m.zarr", "--method", "learned"], "a PDE operator"),
        (["inpaint", zin, zout, "--mask", tmp_path / "m.zarr", "--method", "eed", "--ndim", "3"], "inpaints images"),
    ]
    for argv, message in cases:
        status, _, err = _main(argv, capsys)
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not zout.exists()
