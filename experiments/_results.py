"""The output convention of ``benchmarks/_results.py``, for the experiment scripts.

One implementation: this module loads ``benchmarks/_results.py`` and re-exports what the scripts
use. The only difference is the script's folder in ``command.txt`` (``experiments/``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_benchmarks_results", Path(__file__).resolve().parent.parent / "benchmarks" / "_results.py")
_impl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_impl)

add_run_dirs_arg = _impl.add_run_dirs_arg
check_out = _impl.check_out
check_run_dirs = _impl.check_run_dirs
maxrss_mb = _impl.maxrss_mb
open_out = _impl.open_out
run_child = _impl.run_child
save_figure = _impl.save_figure
write_file = _impl.write_file
write_text = _impl.write_text


def add_output_args(ap, name: str, **kwargs) -> None:
    """:func:`benchmarks/_results.add_output_args`, recording that the script lives in ``experiments/``."""
    _impl.add_output_args(ap, name, **kwargs)
    ap.set_defaults(_bench_dir="experiments")


def codec_sets(photos: Path, size: int, limit, builtin: bool = True) -> dict:
    """The codec experiments' image sets: the held-out photos of the folder ``photos`` (if it exists) and the
    built-in TEST photos (``builtin``, or when there are no photos), grey, ``size`` px, at most ``limit`` each."""
    from pdeflow.evaluate import codec as ev
    sets = {}
    if photos.is_dir():
        sets["photos"] = ev.photo_set(photos, size=size, limit=limit)
    else:
        print(f"{photos} not found: the built-in TEST photos alone (run `make photos`)", flush=True)
    if builtin or not sets:
        sets["builtin"] = ev.builtin_set(size=size, limit=limit)
    return sets
