"""Batches of the image commands: IMAGE given as several files, folders or glob patterns, each file run as one
task on a Dask cluster (``--scheduler ADDRESS``), on a local one (``--workers N``) or one after another here.

* :func:`add_batch_args`: the ``batch`` option group (``--workers``, ``--scheduler``).
* :func:`check_batch`: after parsing, whether the command runs a batch (``args.batch``: the inputs, or
  ``None`` for one image, then ``args.image`` is that one IMAGE as before) and the options a batch refuses.
* :func:`file_task`: a :class:`pdeflow.dask.batch.FileTask`, what one file of a batch runs.
* :func:`run_batch_command`: plan the files, run them (:func:`pdeflow.dask.batch.run_batch`) with a progress
  bar, print one line per failed file and the summary; returns the exit status.

Dask is imported only when a batch runs on a cluster, never when the command line is parsed.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from .. import io as pio
from ..errors import UserInputError
from ._arguments import positive_int
from ._errors import CLIError

#: The exit status of a batch in which some files failed (each named on its own line); the others were written.
FAILED_STATUS = 1



def batch_help(inputs: str = "IMAGE", volumes: bool = True, pattern: str = "photos/**/*.png") -> str:
    """The batch options' help (wrapped), with the rules for what is a batch of ``inputs``."""
    dicom = "; a folder of DICOM files only is one volume unless --workers or --scheduler is given" if volumes else ""
    text = (f"{inputs} may be several files, folders (searched recursively{dicom}) or glob patterns "
            f"('{pattern}', quoted): one result per file in the folder --out, keeping the folders' layout. "
            "A batch resumes: results already in --out are kept and skipped (--overwrite replaces them). Each "
            "result is written atomically; a file that fails gives one line and the others go on; a summary ends "
            f"the run. Exit status {FAILED_STATUS} if a file failed.")
    return textwrap.fill(text, 100)

_NOT_DICOM = tuple(s for s in pio.IMAGE_SUFFIXES if s != ".dcm")


def add_batch_args(p, *, what: str = "the images", inputs: str = "IMAGE", volumes: bool = True,
                   pattern: str = "photos/**/*.png") -> None:
    """The ``batch`` group of options: ``--workers N`` and ``--scheduler ADDRESS`` (either); ``inputs``, ``volumes``,
    ``pattern``: the positional argument's name, whether it takes volumes, an example (:func:`batch_help`)."""
    g = p.add_argument_group("batch (several files, folders or glob patterns)", batch_help(inputs, volumes, pattern))
    x = g.add_mutually_exclusive_group()
    x.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help=f"run {what} on a local Dask cluster of N worker processes once the work left pays for "
                        "its start (a few seconds; until then, and for a batch too small to pay, one after another "
                        "in this process, as without --workers)")
    x.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run them on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786); its workers "
                        "must see the same paths (a shared file system) and have pdeflow installed")


def _is_pattern(spec: str) -> bool:
    return any(c in spec for c in "*?[") and not Path(spec).exists()


def _holds_images(folder: Path) -> bool:
    """Whether ``folder`` holds a PNG, JPEG or TIFF file (it stops at the first)."""
    return any(p.suffix.lower() in _NOT_DICOM for p in folder.rglob("*"))


def check_batch(args, *, refuse=(), dest: str = "image", volumes: bool = True) -> bool:
    """After parsing ``args.<dest>`` (a list: ``nargs="+"``): set ``args.batch`` to the inputs of a batch (several
    inputs, a pattern, a folder of images, or ``--workers``/``--scheduler`` given) or to ``None`` and
    ``args.<dest>`` to its one input; returns whether it is a batch. ``refuse``: ``(flag, given)`` pairs of
    options a batch does not take (a usage error names the first given). ``volumes``: a folder of DICOM files
    only is one volume (``denoise``, ``inpaint``), not a batch."""
    specs = getattr(args, dest)
    specs = [specs] if isinstance(specs, str) else list(specs)
    cluster = args.workers is not None or args.scheduler is not None

    def many(spec: str) -> bool:
        path = Path(spec)
        return _is_pattern(spec) or (path.is_dir() and (not volumes or _holds_images(path)))

    if len(specs) == 1 and not cluster and not many(specs[0]):
        setattr(args, dest, specs[0])
        args.batch = None
        return False
    args.batch = specs
    setattr(args, dest, None)
    builtin = next((s for s in specs if s.startswith("builtin:")), None)
    if builtin is not None:
        args.parser.error(f"argument IMAGE: a batch takes files, folders and patterns, not {builtin}")
    for flag, given in refuse:
        if given:
            args.parser.error(f"argument {flag}: not for a batch (several files, a folder or a pattern)")
    return True


def _batch_module():
    """:mod:`pdeflow.dask.batch`, or a one-line error where the ``dask`` extra is not installed."""
    try:
        from ..dask import batch
    except ImportError as exc:
        raise CLIError(f"argument IMAGE: a batch needs the dask extra (pip install 'pdeflow[dask]'): {exc}") from None
    return batch


def file_task(fn, **options):
    """A :class:`pdeflow.dask.batch.FileTask` of ``fn`` with ``options`` (imported when a batch runs)."""
    return _batch_module().FileTask(fn, **options)


def _local_cluster_plan(workers: int, start: float, can_pay: bool) -> str:
    """Where a batch with ``--workers`` runs: here until a cluster of ``workers`` pays for its start, or here only
    (one worker, or one core: it never pays)."""
    cluster = f"a local Dask cluster of {workers} worker process{'es' if workers > 1 else ''}"
    if not can_pay:
        return f"in this process: {cluster} on this machine would only add its start (about {start:g} s)"
    return f"in this process until the work left pays for starting {cluster} (about {start:g} s)"


def run_batch_command(args, tasks, *, suffix: str, suffixes=pio.IMAGE_SUFFIXES, what: str = "files") -> int:
    """Run each ``(task, tag)`` of ``tasks`` (a :class:`pdeflow.dask.batch.FileTask`, a tag for the result's
    name) on every file of ``args.batch``, writing ``--out``/RELATIVE-PATH with ``tag`` + ``suffix``, all in one
    batch; print one line per failed file (stderr) and the summary (stdout). Returns 0, or
    :data:`FAILED_STATUS` when a file failed.

    With ``--workers N`` the files run here until the rest pays for the local cluster's start
    (:data:`pdeflow.dask.batch.CLUSTER_START_S`, :func:`pdeflow.dask.batch.cluster_pays`), then on the cluster (a
    line says so); ``--scheduler``'s cluster is running already and gets every file."""
    batch_files, run_batch = _batch_module().batch_files, _batch_module().run_batch
    prog = args.parser.prog
    jobs = [(source, target, task) for task, tag in tasks
            for source, target in batch_files(args.batch, args.out, suffix=suffix, tag=tag, suffixes=suffixes,
                                              who="argument IMAGE")]
    batch = _batch_module()
    start = batch.CLUSTER_START_S
    where = (f"on the Dask cluster at {args.scheduler}" if args.scheduler is not None
             else _local_cluster_plan(args.workers, start, batch.cluster_pays(1, 1.0, args.workers, 0.0))
             if args.workers is not None else "in this process")
    print(f"{prog}: {len(jobs)} {what} to {Path(args.out)}/ ({suffix}), {where}", flush=True)
    flag = "--scheduler" if args.scheduler is not None else "--workers"
    said = set()

    def log(line: str) -> None:     # a file that fails for each of its results (each lambda) is named once
        if line not in said:
            said.add(line)
            print(f"{prog}: {line}", file=sys.stderr, flush=True)

    try:
        result = run_batch(None, jobs, scheduler=args.scheduler, workers=args.workers, overwrite=args.overwrite,
                           progress=True, log=log, desc=prog.removeprefix("pdeflow "),
                           start_cost=start if args.workers is not None else None,
                           note=lambda line: print(f"{prog}: {line}", flush=True))
    except UserInputError as exc:      # the scheduler cannot be reached, or dask.distributed is missing
        if not str(exc).startswith("run_batch: "):
            raise
        raise CLIError(f"argument {flag}: {str(exc).removeprefix('run_batch: ')}") from None
    print(f"{prog}: {result.summary()}")
    return 0 if result.ok else FAILED_STATUS
