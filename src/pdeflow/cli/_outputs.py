"""What the ``pdeflow`` subcommands write: all planned files or none, checked before any work.

* :class:`Outputs`: the files one invocation writes into ``--out``, all of them or none.
* :func:`check_writable_dir`: a directory argument that cannot be written, refused before any work.
* :func:`report_written` and :func:`time_labels`: what the commands print and how they label times.
"""
from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .. import io as pio
from ._errors import CLIError, OutputWriteError


class Outputs:
    """The files one invocation writes into ``--out``: all of them, or none.

    ``Outputs(out_dir, names, overwrite=..., inputs=[...])`` checks, before any
    work, that no planned file exists (unless ``overwrite``) and that none is an
    input file. Inside ``with outputs:`` each ``image``/``figure``/``npy``/``csv``
    call writes a temporary file beside its target (via
    :func:`pdeflow.io.atomic_path`); they are renamed onto their targets
    together when the block ends without error. On any error (including Ctrl-C)
    the temporary files are removed, as is any target already renamed in this
    invocation and the output directory if this invocation created it and it is
    left empty. A file that cannot be written or committed (a full disk, no
    permission) raises :class:`OutputWriteError` naming it.
    """

    def __init__(self, out_dir, names, *, overwrite: bool = False, inputs=()):
        self.dir = Path(out_dir)
        self.names = list(names)
        self.overwrite = overwrite
        self.paths = {n: self.dir / n for n in self.names}
        self.written: list[Path] = []
        self._stack: contextlib.ExitStack | None = None
        self._created: list[Path] = []
        self._committing: Path | None = None
        check_writable_dir(self.dir, "--out")
        for inp in inputs:
            if inp is None:
                continue
            if Path(inp).is_dir() and _same_file(self.dir, Path(inp)):
                raise CLIError(f"argument --out: '{self.dir}' is the input folder; choose another --out directory")
            for p in self.paths.values():
                if _same_file(p, Path(inp)):
                    raise CLIError(f"argument --out: output file '{p}' is the input image; "
                                   "choose another --out directory")
        for p in self.paths.values():
            if p.is_dir():
                raise CLIError(f"argument --out: output path '{p}' is a directory")
            if not overwrite and (p.exists() or p.is_symlink()):
                raise CLIError(f"argument --out: '{p}' already exists (pass --overwrite to replace it)")

    def __enter__(self):
        missing = []
        d = self.dir
        while not d.exists():
            missing.append(d)
            d = d.parent
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"argument --out: cannot create directory '{self.dir}': {exc.strerror or exc}") from None
        self._created = missing  # innermost first
        self._stack = contextlib.ExitStack().__enter__()
        return self

    @contextlib.contextmanager
    def _staged(self, path: Path):
        with pio.atomic_path(path, overwrite=self.overwrite) as tmp:
            yield tmp
            self._committing = path    # atomic_path's exit flushes and renames: a failure there is this file's
        self.written.append(path)  # reached only once atomic_path has renamed tmp onto path

    @contextlib.contextmanager
    def _tmp(self, name: str):
        """The temporary file of ``name``; an OSError while writing it becomes an :class:`OutputWriteError`."""
        if self._stack is None:
            raise AssertionError("Outputs: write inside `with outputs:`")
        if name not in self.paths:
            raise AssertionError(f"Outputs: '{name}' was not planned")
        try:   # no temporary file beside the target (a folder made read-only or full since the check)
            tmp = self._stack.enter_context(self._staged(self.paths[name]))
        except OSError as exc:
            raise OutputWriteError(self.paths[name], exc) from None
        try:
            yield tmp
        except OSError as exc:
            raise OutputWriteError(self.paths[name], exc) from None

    def image(self, name: str, img) -> None:
        with self._tmp(name) as tmp:
            pio.write_image(tmp, img, overwrite=True)

    def figure(self, name: str, fig) -> None:
        with self._tmp(name) as tmp:
            fig.savefig(tmp, format="png", dpi=fig.dpi)

    def volume(self, name: str, vol, spacing) -> None:
        """A volume ``(D, H, W)`` in the format of ``name``'s suffix (a ``.npy`` file holds no spacing)."""
        fmt = next(f for f, suffix in pio.VOLUME_FORMATS.items() if name.endswith(suffix))
        with self._tmp(name) as tmp:
            pio.write_volume(tmp, vol, spacing=None if fmt == "npy" else spacing, overwrite=True, format=fmt)

    def npy(self, name: str, array) -> None:
        arr = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        with self._tmp(name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)

    def csv(self, name: str, header, rows) -> None:
        with self._tmp(name) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)

    def raw(self, name: str, data: bytes) -> None:
        with self._tmp(name) as tmp, open(tmp, "wb") as fh:
            fh.write(data)

    def report(self, rep) -> list[Path]:
        """Stage every file of a :class:`pdeflow.reporting.Report`; returns their target paths."""
        for name, data in rep.files.items():
            self.raw(name, data)
        return [self.paths[n] for n in rep.files]

    def __exit__(self, exc_type, exc, tb):
        stack, self._stack = self._stack, None
        try:
            stack.__exit__(exc_type, exc, tb)  # commits every file, or removes every temporary file
        except FileExistsError as err:  # a file appeared at a target while we worked
            self._cleanup()
            if exc_type is None:
                raise CLIError(f"argument --out: {err}") from None
            raise
        except OSError as err:  # flushing or renaming a file failed (a full disk)
            self._cleanup()
            if exc_type is None:
                raise OutputWriteError(self._committing, err) from None
            raise
        except BaseException:
            self._cleanup()
            raise
        if exc_type is not None:
            self._cleanup()
        return False

    def _cleanup(self) -> None:
        for p in self.written:
            with contextlib.suppress(OSError):
                p.unlink()
        self.written = []
        for d in self._created:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty


def check_writable_dir(path, name: str) -> None:
    """Refuse, before any work, a directory argument (``--out``, ``--run-dir``) that cannot be written.

    ``path`` may not exist yet (it will be created): then its nearest existing ancestor must be a
    writable directory. The test is a real one (a temporary file created and removed), so it also
    holds for root, for read-only file systems and for a path running through a regular file.
    Raises :class:`CLIError` naming the argument.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise CLIError(f"argument {name}: '{path}' exists and is not a directory")
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise CLIError(f"argument {name}: '{probe}' is a broken symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise CLIError(f"argument {name}: cannot create '{path}': '{probe}' is a file, not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pdeflow-write-test-", dir=probe)
    except OSError as exc:
        what = (f"cannot write to '{probe}'" if probe == path else
                f"cannot create '{path}' ('{probe}' takes no new files)")   # not the ancestor's own fault
        raise CLIError(f"argument {name}: {what}: {exc.strerror or exc}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def report_written(out: Outputs) -> None:
    done = set(out.written)
    names = [n for n, p in out.paths.items() if p in done]
    print(f"wrote {len(names)} file{'s' if len(names) != 1 else ''} to {out.dir}/: {', '.join(names)}")


def time_labels(times) -> list[str]:
    """Labels that show each time exactly (at least 2 decimals), e.g. 0.50, 1.00, 0.125."""
    for d in range(2, 10):
        if all(abs(round(t, d) - t) <= 1e-9 * max(1.0, abs(t)) for t in times):
            return [f"{t:.{d}f}" for t in times]
    return [repr(float(t)) for t in times]
