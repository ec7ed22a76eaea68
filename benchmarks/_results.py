"""Where the benchmark scripts write: one convention, in one place.

Every script in ``benchmarks/`` and ``experiments/`` writes its files into one folder, ``--out DIR``:

* by default a fresh folder ``runs/benchmarks/NAME/YYYYmmdd-HHMMSS`` under the working directory
  (``runs/`` is ignored by git), so running a benchmark never touches a committed file;
* a folder that exists and is not empty is refused (exit status 2, before any work) unless
  ``--overwrite`` is given;
* raw output stays out of git; what a results page shows is a small summary (a Markdown table, a
  figure, the JSON of the plotted numbers) copied by hand into ``docs/results/data/``.

Besides its own files, a script's folder gets ``command.txt`` (the command line) and ``log.txt``
(everything it printed). Usage in a script::

    from _results import add_output_args, open_out   # benchmarks/_results.py
    add_output_args(ap, "flow_accuracy")              # --out, --overwrite
    args = ap.parse_args(argv)
    out = open_out(args, argv)                        # checked and created before any work

The experiment scripts (``experiments/``) use the same convention through
``experiments/_results.py``.
"""
from __future__ import annotations

import argparse
import atexit
import datetime
import io
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from pdeflow.io import write_bytes

HERE = Path(__file__).resolve().parent
#: Default parent of the output folders, relative to the working directory (git ignores ``runs/``).
DEFAULT_ROOT = Path("runs") / "benchmarks"


def add_output_args(ap, name: str, *, what: str = "") -> None:
    """Add ``--out DIR`` and ``--overwrite`` to ``ap``.

    Parameters
    ----------
    ap : argparse.ArgumentParser
    name : str
        The script's name: the default folder is ``runs/benchmarks/NAME/TIMESTAMP``.
    what : str
        The files the script writes, for the help text.
    """
    ap.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help=f"folder for the results{' (' + what + ')' if what else ''}; default: a fresh "
                         f"{DEFAULT_ROOT / name}/TIMESTAMP (ignored by git; a results page's summary is copied "
                         f"into docs/results/data/ by hand)")
    ap.add_argument("--overwrite", action="store_true", help="write into --out even if it is not empty")
    ap.set_defaults(_bench_name=name)


def add_run_dirs_arg(ap: argparse.ArgumentParser) -> None:
    """The positional ``runs``: training run directories (each with a ``log.csv``; see :func:`check_run_dirs`)."""
    ap.add_argument("runs", nargs="+", type=Path, help="training run directories")


def check_run_dirs(ap: argparse.ArgumentParser, runs) -> None:
    """Refuse (``ap.error``) a run directory without ``log.csv``."""
    missing = [r for r in runs if not (Path(r) / "log.csv").is_file()]
    if missing:
        ap.error(f"argument runs: {missing[0]}: no log.csv (not a pdeflow training run directory)")


def default_out(name: str) -> Path:
    """A fresh folder ``runs/benchmarks/NAME/TIMESTAMP`` (a suffix is added if it exists)."""
    base = DEFAULT_ROOT / name / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out, k = base, 1
    while out.exists():
        out, k = base.with_name(f"{base.name}-{k}"), k + 1
    return out


def _refuse(message: str):
    print(message, file=sys.stderr)
    sys.exit(2)


def check_out(out: Path, overwrite: bool) -> None:
    """Exit with status 2 and one line if ``out`` is a file, or a non-empty folder without ``overwrite``."""
    if out.exists() and not out.is_dir():
        _refuse(f"--out: {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        _refuse(f"--out: {out} is not empty; pass --overwrite to write into it, or choose another folder")


def open_out(args, argv=None, *, log: bool = True) -> Path:
    """Check and create the output folder of ``args`` (see :func:`add_output_args`) before any work.

    Sets ``args.out`` to the folder (the default one when none was given) and, with ``log``,
    writes ``command.txt`` there and copies everything printed on stdout to ``log.txt``.
    """
    if args.out is None:
        args.out = default_out(args._bench_name)
    out = Path(args.out)
    check_out(out, args.overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        _refuse(f"--out: cannot write to {out} ({exc.strerror or exc})")
    if log:
        words = list(sys.argv[1:] if argv is None else argv)
        script = Path(sys.argv[0]).name if argv is None else f"{args._bench_name.split('/')[0]}.py"
        folder = getattr(args, "_bench_dir", "benchmarks")  # experiments/_results.py sets "experiments"
        write_file(out / "command.txt", f"python {folder}/{script} {shlex.join(words)}".rstrip() + "\n")
        tee_stdout(out / "log.txt")
    print(f"writing to {out}", flush=True)
    return out


def write_file(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`pdeflow.io.write_bytes`)."""
    write_bytes(Path(path), data if isinstance(data, bytes) else data.encode())


def write_text(path: Path, text: str) -> None:
    """Write a results file atomically (its folder created) and say where."""
    write_file(path, text)
    print(f"written to {path}")


def save_figure(fig, path: Path, **kwargs) -> None:
    """``fig.savefig`` to ``path`` atomically; a PNG with an adaptive palette of 64 colours (a third of the
    bytes: the committed summaries share the repository's size budget)."""
    buf = io.BytesIO()
    fmt = Path(path).suffix.lstrip(".") or "png"
    fig.savefig(buf, format=fmt, **kwargs)
    if fmt == "png":
        from PIL import Image

        im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").quantize(64, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        im.save(buf, format="png", optimize=True)
    write_file(path, buf.getvalue())


class _Tee(io.TextIOBase):
    """A text stream that writes to the terminal's stream and to a log file."""

    def __init__(self, stream, log):
        self._stream, self._log = stream, log

    def write(self, s: str) -> int:
        self._stream.write(s)
        if not self._log.closed:
            self._log.write(s)
        return len(s)

    def flush(self) -> None:
        self._stream.flush()
        if not self._log.closed:
            self._log.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


def tee_stdout(path: Path) -> None:
    """From now on, copy everything printed on stdout to ``path`` (appended)."""
    log = open(path, "a", buffering=1)
    sys.stdout = _Tee(sys.stdout, log)
    atexit.register(log.close)
    atexit.register(sys.stdout.flush)


def maxrss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, repeat: int = 1):
    """``(fn(), CPU s)``: the smallest ``time.process_time`` of ``repeat`` calls (a shared host's speed varies
    between runs), with the last call's result."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return out, best


def run_child(script, child_args: list[str], timeout: float) -> dict:
    """Run ``script --child ARGS...`` in a fresh single-threaded process (so its peak memory is its own) and
    return the JSON object on its last stdout line, or ``{"error": last stderr line}`` when it fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMP_WAIT_POLICY="PASSIVE")
    p = subprocess.run([sys.executable, str(Path(script).resolve()), "--child", *child_args],
                       capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])

