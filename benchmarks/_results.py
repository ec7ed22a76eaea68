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
import platform
import resource
import shlex
import subprocess
import sys
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


def solver_pair(script, pdeflow_args: list[str], pyamg_args: list[str] | None, system: Path, timeout: float) -> dict:
    """The solver-scale scripts' side-by-side run of one size: pdeflow's child, then (``pyamg_args`` given and
    pdeflow's run without error) pyamg's on the same system, which pdeflow's child saved at ``system``
    (removed after). Returns the row's ``pdeflow``, ``pyamg`` and, where both ran, ``ratio`` (pyamg / pdeflow
    CPU time)."""
    pd = run_child(script, ["pdeflow", *pdeflow_args], timeout)
    amg = run_child(script, ["pyamg", *pyamg_args], timeout) if pyamg_args is not None and "error" not in pd else None
    if system.exists():
        system.unlink()
    row = {"pdeflow": pd, "pyamg": amg}
    if amg and "cpu_s" in amg and "cpu_s" in pd:
        row["ratio"] = amg["cpu_s"] / pd["cpu_s"]
    return row


def solver_meta(**settings) -> dict:
    """The solver-scale results' ``meta``: the run's ``settings``, then the versions and the machine."""
    import torch
    try:
        import pyamg
        amg_version = pyamg.__version__
    except ImportError:   # pragma: no cover
        amg_version = None
    return {**settings, "threads": 1, "torch": torch.__version__, "pyamg": amg_version,
            "python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def solver_row(r: dict, n_key: str) -> str:
    """One Markdown row of the solver-scale tables (``inpaint_solver_scale.py``, ``inpaint_solver_3d.py``):
    size, millions of points (``r[n_key]``), load, pdeflow's CPU time, iterations, residual, time per million
    points, peak memory, then pyamg's columns and the ratio (or its error)."""
    p, a = r["pdeflow"], r["pyamg"] or {}
    mp = r[n_key] / 1e6
    if "error" in p:
        return f"| {r['size']} | {mp:.2f} | {r['load_before'][0]:.1f} | error: {p['error']} |" + " |" * 11
    amg = ("| {setup_s:.2f} | {solve_s:.2f} | {iterations} | {peak_mb:.0f} | {max_diff_vs_pdeflow:.1e} "
           "| {ratio:.1f}x |").format(ratio=r.get("ratio", float("nan")), **a) if "cpu_s" in a else \
        ("| " + a.get("error", "not run") + " | | | | | |")
    return (f"| {r['size']} | {mp:.2f} | {r['load_before'][0]:.1f} | {p['cpu_s']:.3f} | {p['iterations']} "
            f"| {p['residual']:.1e} | {p['cpu_s'] / mp:.3f} | {p['peak_mb']:.0f} | {p['above_base_mb']:.0f} " + amg)
