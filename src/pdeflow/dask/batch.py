"""Batch runs over many files: one task per file, on a Dask cluster or in this process.

* :func:`batch_files`: the ``(source, target)`` pairs of a batch, from folders, glob patterns and files.
* :class:`FileTask`: what one task does to one file: read it (an image or bytes), apply a function, write
  the result atomically (:func:`pdeflow.io.write_image`, :func:`pdeflow.io.atomic_write`).
* :func:`run_batch`: run a task over the pairs: on the Dask cluster at ``scheduler``, on a local cluster of
  ``workers`` processes (:class:`distributed.LocalCluster`), or, with neither, one file after another in this
  process. Resumable (a target that exists is skipped), a progress bar, one line per failed file while
  the others go on, a :class:`BatchResult` with the summary at the end.

Dask is the engine (``client.submit`` and ``as_completed``; a task whose worker dies is run again on
another worker by Dask's scheduler); nothing here schedules work itself. dask.distributed is imported only
when a cluster is used (``pip install 'pdeflow[dask]'``).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import glob
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .. import io as pio
from ..allocator import retain_freed_memory
from ..errors import InputFileNotFoundError, UserInputError
from ..progress import progress_bar

__all__ = ["batch_files", "FileTask", "BatchResult", "run_batch", "dask_client", "cluster_pays", "MAX_FILES_PER_TASK",
           "GUIDED_SHARE", "CLUSTER_START_S", "WORKER_CONFIG"]

#: Wall-clock seconds a local cluster's start and stop cost a batch on a machine with a core for each worker
#: (worker processes started, each importing torch and pdeflow, then stopped): what its parallel work must win
#: back (:func:`cluster_pays`). The user guide's page "Large images and many images" says where it comes from.
CLUSTER_START_S = 8.0

#: The dask configuration of the workers of pdeflow's own local cluster (:func:`dask_client`): no statistical
#: profiler (it samples the workers' threads, CPU taken from the tasks, and its history grows a worker with every
#: task), and short logs of dask's own (a worker's recent transitions, stimuli, log records and resource samples,
#: kept by the thousand by default: memory that grows with the number of tasks, not with the chunk).
WORKER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.low-level-log-length": 50,
                 "distributed.admin.log-length": 50, "distributed.admin.system-monitor.log-length": 50}

#: Tasks in flight per worker thread: enough to keep every worker busy, few enough that a batch of a
#: million files does not hold a million futures.
IN_FLIGHT_PER_THREAD = 4
#: Files of one cluster task at most (several files a task share its round trip through the scheduler and the
#: submitting process's bookkeeping).
MAX_FILES_PER_TASK = 16
#: A task takes at most the files not yet submitted over this many times the worker threads (guided
#: self-scheduling: large tasks while much is left, single files at the end, so that the workers finish together).
GUIDED_SHARE = 8
_GLOB_CHARS = frozenset("*?[")
#: Whether this process's allocator was set for large images (:class:`FileTask`).
_ALLOCATOR_SET = False


def _is_pattern(spec: str) -> bool:
    return any(c in spec for c in _GLOB_CHARS) and not Path(spec).exists()


def _pattern_base(spec: str) -> Path:
    """The folder a glob pattern's matches are named relative to: its leading parts without a wildcard."""
    parts = []
    for part in Path(spec).parts:
        if any(c in part for c in _GLOB_CHARS):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _expand(spec: str, suffixes: tuple[str, ...], who: str) -> list[tuple[Path, Path]]:
    """``(file, name relative to its folder or pattern)`` for one input."""
    if _is_pattern(spec):
        base = _pattern_base(spec)
        found = [Path(p) for p in sorted(glob.glob(spec, recursive=True))]
        found = [p for p in found if p.is_file() and p.suffix.lower() in suffixes]
        if not found:
            raise InputFileNotFoundError(f"{who}: the pattern '{spec}' matches no {'/'.join(suffixes)} file")
        return [(p, p.relative_to(base)) for p in found]
    path = Path(spec)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
        if not found:
            raise InputFileNotFoundError(f"{who}: the folder '{spec}' holds no {'/'.join(suffixes)} file")
        return [(p, p.relative_to(path)) for p in found]
    if path.is_file():
        return [(path, Path(path.name))]
    raise InputFileNotFoundError(f"{who}: no such file, folder or pattern: '{spec}'")


def batch_files(inputs, out, *, suffix: str, tag: str = "", suffixes: Sequence[str] = pio.IMAGE_SUFFIXES,
                who: str = "inputs") -> list[tuple[Path, Path]]:
    """The ``(source, target)`` pairs of a batch: every file of ``inputs`` and where its result goes.

    Each input is a folder (its files with one of ``suffixes``, searched recursively), a glob pattern
    (``**`` matches folders at any depth) or a file. A file's target is ``out`` / its path relative to its
    folder (or to the pattern's folder part; a named file: its name) with the suffix replaced by ``tag`` +
    ``suffix``, so a folder's layout is kept.

    Parameters
    ----------
    inputs : str, path-like or sequence of them
        Folders, patterns and files.
    out : str or path-like
        The output folder (need not exist).
    suffix : str
        The targets' suffix, such as ``".png"``.
    tag : str, optional
        Added to each target's stem (``"_lam0.10"``), for batches of several results per file.
    suffixes : sequence of str, optional
        The suffixes (lower case) of the files taken from folders and patterns; default
        :data:`pdeflow.io.IMAGE_SUFFIXES`.
    who : str, optional
        The argument's name in error messages.

    Returns
    -------
    list of (pathlib.Path, pathlib.Path)
        Absolute paths, sorted within each input, a file named twice kept once.

    Raises
    ------
    pdeflow.errors.UserInputError
        An input that does not exist or holds no file; two files whose results would be written to one
        target (``a.png`` and ``a.tif``); a target that is one of the inputs.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.dask.batch import batch_files
    >>> from pdeflow.io import write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "in" / "b").mkdir(parents=True)
    ...     _ = write_image(Path(d) / "in" / "b" / "two.png", torch.zeros(4, 4))
    ...     pairs = batch_files(Path(d) / "in", Path(d) / "out", suffix=".pdc")
    ...     print([str(t.relative_to(d)) for _, t in pairs])
    ['out/b/two.pdc']
    """
    specs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not specs:
        raise UserInputError(f"{who}: no input given")
    suffixes = tuple(s.lower() for s in suffixes)
    out = Path(out).absolute()
    pairs, by_target, sources = [], {}, set()
    for spec in specs:
        for src, rel in _expand(os.fspath(spec), suffixes, who):
            src = src.absolute()
            if src in sources:
                continue
            sources.add(src)
            target = out / rel.parent / f"{rel.stem}{tag}{suffix}"
            if target in by_target:
                raise UserInputError(f"{who}: '{by_target[target]}' and '{src}' would both be written to "
                                     f"'{target}'; give them in separate batches")
            by_target[target] = src
            pairs.append((src, target))
    clash = sorted(t for t in by_target if t in sources)
    if clash:
        raise UserInputError(f"{who}: the result of '{by_target[clash[0]]}' would overwrite the input "
                             f"'{clash[0]}'; choose another output folder")
    return pairs


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, (UserInputError, OSError)):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclasses.dataclass(frozen=True)
class FileTask:
    """One file of a batch: read ``source``, apply ``fn``, write ``target`` atomically.

    An instance is sent to Dask's workers (pickled), so ``fn`` must be picklable: a module-level function or
    a :func:`functools.partial` of one, with its settings bound (``partial(rof, lam=0.1)``).

    The first call in a process applies :func:`pdeflow.allocator.retain_freed_memory` to it, as the ``pdeflow``
    command does to its own: Dask's worker processes start with glibc told to return freed memory at once
    (``MALLOC_TRIM_THRESHOLD_``), which makes the solvers' large temporary tensors fault their pages in again and
    again.

    Calling it, ``task(source, target, overwrite=False)`` returns ``(status, message, notes, cpu_seconds)``:
    status ``"written"``, ``"skipped"`` (the target exists and not ``overwrite``) or ``"failed"`` (the
    message says why, in one line: the error is caught, so that the batch goes on); notes are the warnings
    the work raised, one line each; cpu_seconds the task's CPU time in its process.

    Parameters
    ----------
    fn : callable
        ``fn(x)``: the result for ``x``, what was read.
    read : {"image", "bytes"}
        ``"image"``: ``x`` is the image as :func:`pdeflow.io.read_image` reads it (``(C, H, W)``, float32 in
        [0, 1], refused if not finite); ``"bytes"``: the file's bytes.
    write : {"image", "bytes"}
        ``"image"``: the result, a tensor ``(C, H, W)`` in [0, 1], written by :func:`pdeflow.io.write_image`
        with ``bits`` per sample (clipped to [0, 1]); ``"bytes"``: written as they are.
    grey : bool or None
        ``read_image``'s ``grey`` (``True``: luminance, ``None``: the stored channels).
    bits : {8, 16}
        Bits per sample of written images.

    Examples
    --------
    >>> import functools, tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.dask.batch import FileTask
    >>> from pdeflow.io import write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = write_image(Path(d) / "a.png", torch.full((4, 4), 0.25))
    ...     task = FileTask(functools.partial(torch.mul, other=2.0))
    ...     print(task(Path(d) / "a.png", Path(d) / "b.png")[:2])
    ('written', '')
    """

    fn: Callable
    read: str = "image"
    write: str = "image"
    grey: bool | None = True
    bits: int = 8

    def __post_init__(self):
        if not callable(self.fn):
            raise UserInputError(f"FileTask: fn must be callable, got {type(self.fn).__name__}")
        for name in ("read", "write"):
            if getattr(self, name) not in ("image", "bytes"):
                raise UserInputError(f"FileTask: {name} must be 'image' or 'bytes', got {getattr(self, name)!r}")
        if self.bits not in (8, 16):
            raise UserInputError(f"FileTask: bits must be 8 or 16, got {self.bits!r}")

    def _load(self, source: Path):
        if self.read == "bytes":
            return source.read_bytes()
        x = pio.read_image(source, grey=self.grey)
        if not bool(torch.isfinite(x).all()):
            raise UserInputError(f"'{source}' contains NaN or infinite values")
        return x

    def _save(self, target: Path, y, overwrite: bool) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.write == "image":
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"FileTask: fn returned {type(y).__name__}, not an image tensor")
            pio.write_image(target, y.detach().cpu(), bits=self.bits, overwrite=overwrite)
        else:
            if not isinstance(y, (bytes, bytearray)):
                raise TypeError(f"FileTask: fn returned {type(y).__name__}, not bytes")
            pio.atomic_write(target, lambda tmp: tmp.write_bytes(y), overwrite=overwrite)

    def __call__(self, source, target, overwrite: bool = False) -> tuple[str, str, tuple[str, ...], float]:
        global _ALLOCATOR_SET
        if not _ALLOCATOR_SET:
            _ALLOCATOR_SET = True
            retain_freed_memory()
        source, target = Path(source), Path(target)
        t0 = time.process_time()
        if not overwrite and target.exists():
            return "skipped", "", (), 0.0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self._save(target, self.fn(self._load(source)), overwrite)
            except Exception as exc:        # one line per failed file; the batch goes on
                status, message = "failed", _one_line(exc)
            else:
                status, message = "written", ""
        notes = tuple(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
        return status, message, notes, time.process_time() - t0


@dataclasses.dataclass
class BatchResult:
    """What :func:`run_batch` did.

    Attributes
    ----------
    written : list of pathlib.Path
        The targets written by this run (or by another process while it ran).
    skipped : list of pathlib.Path
        The targets that existed already (finished by an earlier run) and were left as they were.
    failed : list of (pathlib.Path, str)
        The sources that failed, each with its one-line reason.
    seconds : float
        Wall-clock time of the run, cluster start included.
    cpu_seconds : float
        The CPU time of the tasks, summed over the processes that ran them.
    workers : int
        Worker threads of the cluster; 0: the files ran in this process.
    here : int
        Files run in this process before a cluster started (``start_cost``: :func:`run_batch`); all of them when
        ``workers`` is 0.

    Examples
    --------
    >>> from pdeflow.dask.batch import BatchResult
    >>> BatchResult(written=[], skipped=[], failed=[], seconds=0.0, cpu_seconds=0.0, workers=0).ok
    True
    """

    written: list
    skipped: list
    failed: list
    seconds: float
    cpu_seconds: float
    workers: int
    here: int = 0

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    def summary(self) -> str:
        """One line: files written, skipped and failed, time and throughput."""
        n = len(self.written)
        where = f"on {self.workers} Dask worker thread{'s' if self.workers != 1 else ''}" if self.workers \
            else "in this process"
        if self.workers and self.here:
            where += f" ({self.here} first in this process)"
        rate = f", {n / self.seconds:.3g} files/s" if n and self.seconds > 0 else ""
        return (f"{n} written, {len(self.skipped)} skipped (already there), {len(self.failed)} failed; "
                f"{self.seconds:.1f} s{rate} {where} (task CPU time {self.cpu_seconds:.1f} s)")


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int | None, *, who: str = "run_batch"):
    """A dask.distributed Client of the cluster at ``scheduler``, or of a new local cluster of ``workers``
    single-threaded worker processes (closed on exit); while it is open it is dask's default scheduler.

    ``who`` starts the message of a :class:`~pdeflow.errors.UserInputError` (dask.distributed missing, a
    scheduler that cannot be reached).

    Examples
    --------
    >>> import dask
    >>> import dask.array as da
    >>> from pdeflow.dask.batch import WORKER_CONFIG, dask_client
    >>> key = "distributed.admin.low-level-log-length"
    >>> with dask_client(None, 1) as client:            # a local cluster of one worker process
    ...     total = int(da.ones(4, chunks=2).sum().compute())
    ...     in_workers = list(client.run(dask.config.get, key).values())
    >>> total, in_workers == [WORKER_CONFIG[key]]
    (4, True)
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserInputError(f"{who}: a Dask cluster needs dask.distributed; install it with "
                             "pip install 'pdeflow[dask]'") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserInputError(f"{who}: cannot reach the Dask scheduler at {scheduler!r}: "
                                 f"{_one_line(exc)}") from None
        with client:
            yield client
        return
    import dask

    # one thread per worker process: the processes give the parallelism; the scheduler's web page (always
    # served) on a free port, not the default one that another cluster may hold; WORKER_CONFIG in the workers
    # Ctrl-C at a terminal reaches every process of the foreground group, the workers too, each of which printed
    # a KeyboardInterrupt traceback. SIGINT is blocked while the cluster starts: its worker processes, and the
    # thread that starts them (again, when one dies), inherit the block, so this process alone is interrupted and
    # stops the cluster; a Ctrl-C during the start waits until the cluster can be closed.
    blocked = _block_ctrl_c()
    try:
        with dask.config.set(WORKER_CONFIG):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                                   silence_logs=logging.CRITICAL)
        with cluster, Client(cluster) as client:
            client.register_plugin(_ignore_ctrl_c_plugin(), name="pdeflow-ignore-ctrl-c")   # restarted ones too
            blocked = _unblock_ctrl_c(blocked)
            yield client
    finally:
        _unblock_ctrl_c(blocked)


def _ignore_ctrl_c_plugin():
    """A worker plugin: the worker process ignores SIGINT (asyncio's runner, which runs a worker, turns it into
    KeyboardInterrupt whatever the inherited signal mask); the cluster's owner stops the workers. Made here:
    dask.distributed is imported only when a cluster starts (the class travels by value)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreCtrlC(WorkerPlugin):
        idempotent = True

        def setup(self, worker) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreCtrlC()


def _block_ctrl_c() -> bool:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        return False
    return signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _unblock_ctrl_c(blocked: bool) -> bool:
    """Unblock SIGINT if :func:`_block_ctrl_c` blocked it (one that came meanwhile is delivered now); False."""
    if blocked:
        import signal
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return False


def _remove_leftovers(targets) -> None:
    """Remove the temporary files that an atomic write of one of ``targets`` left behind when its worker
    was killed mid-write (:func:`pdeflow.io.atomic_path` names them ``.NAME.XXXXXXXX.tmpSUFFIX``)."""
    by_dir = collections.defaultdict(set)
    for t in targets:
        by_dir[t.parent].add(t.name)
    for folder, names in by_dir.items():
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for e in entries:
                if e.name.startswith(".") and ".tmp" in e.name:
                    name = e.name[1:].rsplit(".tmp", 1)[0].rsplit(".", 1)[0]
                    if name in names and e.name.endswith(".tmp" + Path(name).suffix):
                        with contextlib.suppress(OSError):
                            os.unlink(e.path)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        return os.cpu_count() or 1


def cluster_pays(files_left: int, seconds_per_file: float, workers: int, start_cost: float = CLUSTER_START_S,
                 cores: int | None = None) -> bool:
    """Whether starting a local cluster of ``workers`` processes finishes ``files_left`` files sooner than this
    process would, one after another, at ``seconds_per_file`` each: the wall time the cluster saves, ``files_left *
    seconds_per_file * (1 - 1 / n)`` with ``n = min(workers, cores)`` processes running at once, must exceed its
    ``start_cost``. ``cores``: the CPUs this process may use (default: all it is allowed). One worker, or one
    core, never pays.

    Examples
    --------
    >>> from pdeflow.dask.batch import cluster_pays
    >>> cluster_pays(50, 0.17, 2, start_cost=8.0, cores=2)       # half of 50 x 0.17 saved: less than the start
    False
    >>> cluster_pays(1000, 0.17, 2, start_cost=8.0, cores=2)
    True
    """
    n = min(int(workers), int(cores) if cores is not None else _cores())
    return n > 1 and files_left * seconds_per_file * (1.0 - 1.0 / n) > start_cost


def run_batch(task: Callable, jobs, *, scheduler: str | None = None, workers: int | None = None,
              overwrite: bool = False, progress: bool = False, log: Callable[[str], object] | None = None,
              desc: str = "batch", files_per_task: int | None = None, start_cost: float | None = None,
              note: Callable[[str], object] | None = None) -> BatchResult:
    """Run ``task`` on every ``(source, target)`` pair of ``jobs``, on a Dask cluster or in this process.

    A pair whose target exists is skipped (finished by an earlier run: a killed batch resumes where it
    stopped) unless ``overwrite``. Each task writes its target atomically, so a target is complete or
    absent. A file that fails gives one line (``log``) and the batch goes on; a task whose worker process
    dies is run again on another worker by Dask's scheduler (up to its ``allowed-failures`` setting, then
    that file fails).

    Parameters
    ----------
    task : callable
        ``task(source, target, overwrite)`` returning ``(status, message, notes, cpu_seconds)`` as a
        :class:`FileTask` does; picklable when a cluster runs it.
    jobs : sequence of (path, path) or (path, path, task)
        Sources and targets, as :func:`batch_files` gives them; a third item is that pair's own task (one
        batch of several tasks, such as one per parameter value). With a cluster elsewhere, the paths must
        name the same files on its workers (a shared file system).
    scheduler : str, optional
        The address of a running Dask scheduler (``tcp://host:8786``).
    workers : int, optional
        Start a local Dask cluster of this many single-threaded worker processes for the batch.
        With neither ``scheduler`` nor ``workers`` the files run one after another in this process.
    overwrite : bool, optional
        Run every pair and replace existing targets.
    progress : bool, optional
        Show a progress bar (stderr).
    log : callable, optional
        Called with one line per failed file (``SOURCE: REASON``) and per warning a task raised
        (``SOURCE: warning: TEXT``), as they happen.
    desc : str, optional
        The progress bar's label.
    files_per_task : int, optional
        Files a cluster task runs one after another (each still written, skipped or failed on its own). Default:
        guided, at most :data:`MAX_FILES_PER_TASK` and at most the files not yet submitted over
        :data:`GUIDED_SHARE` times the worker threads, so single files at the end of the batch.
    start_cost : float, optional
        With ``workers``: the seconds a local cluster's start and stop cost (:data:`CLUSTER_START_S` is the
        command line's). The files then run in this process, one after another, until the rest of the batch,
        estimated from the files done, would finish sooner on the cluster with its start (:func:`cluster_pays`);
        then the cluster starts for the rest. A batch whose work does not pay for the start never starts it
        (nor does ``workers=1``). Default: the cluster starts at once.
    note : callable, optional
        Called with one line when ``start_cost`` starts the cluster after files ran here.

    Returns
    -------
    BatchResult

    Raises
    ------
    pdeflow.errors.UserInputError
        ``scheduler`` and ``workers`` both given, ``workers`` not a positive integer, a scheduler that
        cannot be reached, or a cluster asked for without dask.distributed installed.

    Examples
    --------
    >>> import functools, tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.dask.batch import FileTask, batch_files, run_batch
    >>> from pdeflow.io import write_image
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "in").mkdir()
    ...     for name in ("a", "b"):
    ...         _ = write_image(Path(d) / "in" / f"{name}.png", torch.zeros(4, 4))
    ...     jobs = batch_files(Path(d) / "in", Path(d) / "out", suffix=".png")
    ...     task = FileTask(functools.partial(torch.add, other=0.5))
    ...     print(len(run_batch(task, jobs).written), len(run_batch(task, jobs).skipped))
    2 2
    """
    if scheduler is not None and workers is not None:
        raise UserInputError("run_batch: give scheduler or workers, not both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserInputError(f"run_batch: workers must be a positive integer, got {workers!r}")
    if files_per_task is not None and (isinstance(files_per_task, bool) or not isinstance(files_per_task, int)
                                       or files_per_task < 1):
        raise UserInputError(f"run_batch: files_per_task must be a positive integer, got {files_per_task!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        raise UserInputError(f"run_batch: scheduler must be an address (a str), got {type(scheduler).__name__}")
    if start_cost is not None and (isinstance(start_cost, bool) or not isinstance(start_cost, (int, float))
                                   or not start_cost >= 0):
        raise UserInputError(f"run_batch: start_cost must be a number of seconds >= 0, got {start_cost!r}")
    t0 = time.perf_counter()
    jobs = [(Path(j[0]), Path(j[1]), j[2] if len(j) > 2 else task) for j in jobs]
    if any(not callable(j[2]) for j in jobs):
        raise UserInputError("run_batch: task must be callable (or every job must give its own task)")
    todo = [j for j in jobs if overwrite or not j[1].exists()]
    result = BatchResult(written=[], skipped=[t for _, t, _ in jobs if not overwrite and t.exists()], failed=[],
                         seconds=0.0, cpu_seconds=0.0, workers=0)
    say = log if log is not None else (lambda line: None)
    with progress_bar(total=len(todo), enabled=progress and bool(todo), desc=desc, unit="files") as bar:

        def record(source: Path, target: Path, outcome) -> None:
            status, message, notes, cpu = outcome
            result.cpu_seconds += cpu
            lines = [f"{source}: warning: {n}" for n in notes]
            if status in ("written", "skipped"):
                # "skipped" here: the target appeared after the batch was planned, as when a worker wrote it
                # and died before its result arrived and Dask ran the task again
                result.written.append(target)
            else:
                result.failed.append((source, message))
                lines.append(f"{source}: {message}")
            if lines:
                with _outside(bar):
                    for line in lines:
                        say(line)
            bar.update(1)

        try:
            if not todo:
                pass
            elif scheduler is None and workers is None:
                for source, target, job_task in todo:
                    record(source, target, job_task(source, target, overwrite))
                result.here = len(todo)
            else:
                rest = todo
                if workers is not None and start_cost is not None:
                    rest = _here_while_cheaper(todo, overwrite, record, workers, float(start_cost), note)
                    result.here = len(todo) - len(rest)
                if rest:
                    with dask_client(scheduler, workers) as client:
                        result.workers = sum(client.nthreads().values())
                        _run_on(client, rest, overwrite, record, files_per_task)
        finally:
            _remove_leftovers([t for _, t, _ in todo])
    result.seconds = time.perf_counter() - t0
    return result


def _here_while_cheaper(todo, overwrite: bool, record, workers: int, start_cost: float, note) -> list:
    """Run the files of ``todo`` here while the rest would not finish sooner on a cluster that has yet to start
    (:func:`cluster_pays`, the seconds a file takes estimated from those done: the first alone, then the mean of
    the others, the first holding this process's one-time costs); return the files left for the cluster.

    A file's seconds are the lesser of its wall and CPU time: on a loaded machine the wall time grows and the
    cluster's start with it, which the CPU time does not count (``start_cost`` is a start's on a machine with a
    core for each worker); a task on several threads takes more CPU than wall time, and the cluster's workers
    have one each."""
    seconds = []
    for i, (source, target, job_task) in enumerate(todo):
        left = len(todo) - i
        if seconds:
            per = seconds[0] if len(seconds) == 1 else sum(seconds[1:]) / (len(seconds) - 1)
            if cluster_pays(left, per, workers, start_cost):
                if note is not None:
                    note(f"{i} file(s) done in this process, {per:.2g} s each: a local Dask cluster of {workers} "
                         f"worker processes pays for its start (about {start_cost:g} s) on the {left} left; "
                         "starting it")
                return todo[i:]
        t0, c0 = time.perf_counter(), time.process_time()
        record(source, target, job_task(source, target, overwrite))
        seconds.append(min(time.perf_counter() - t0, time.process_time() - c0))
    return []


def _outside(bar):
    """A context in which lines printed to stderr do not garble a tqdm bar."""
    write_mode = getattr(type(bar), "external_write_mode", None)
    return write_mode(file=sys.stderr) if write_mode is not None else contextlib.nullcontext()


def _run_files(jobs, overwrite: bool) -> list:
    """A cluster task: each ``(source, target, task)`` of ``jobs`` in turn, their outcomes in order."""
    return [task(source, target, overwrite) for source, target, task in jobs]


def _run_on(client, todo, overwrite: bool, record, files_per_task: int | None = None) -> None:
    """Submit the tasks to ``client`` a window at a time (as one finishes, the next is submitted), each of
    ``files_per_task`` files or of a guided number (:func:`run_batch`), and record each file's outcome as its task
    returns."""
    from distributed import as_completed

    threads = max(1, sum(client.nthreads().values()))
    width = IN_FLIGHT_PER_THREAD * threads
    pending = iter(todo)
    left = [len(todo)]
    owner = {}

    def submit() -> object | None:
        size = files_per_task or max(1, min(MAX_FILES_PER_TASK, left[0] // (GUIDED_SHARE * threads)))
        group = _take(pending, size)
        if not group:
            return None
        left[0] -= len(group)
        future = client.submit(_run_files, [(str(a), str(b), t) for a, b, t in group], overwrite, pure=False)
        owner[future.key] = group
        return future

    stream = as_completed([f for f in (submit() for _ in range(width)) if f is not None])
    try:
        for future in stream:
            group = owner.pop(future.key)
            try:
                outcomes = future.result()
            except Exception as exc:     # the worker died too often (KilledWorker), or the task could not run
                outcomes = [("failed", f"the task could not run: {_one_line(exc)}", (), 0.0)] * len(group)
            for (source, target, _), outcome in zip(group, outcomes):
                record(source, target, outcome)
            future.release()
            nxt = submit()
            if nxt is not None:
                stream.add(nxt)
    except BaseException:
        for f in list(stream.futures):
            f.cancel()
        raise


def _take(iterator, n: int) -> list:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) == n:
            break
    return out
