"""The one atomic write: every file the library writes goes through :func:`atomic_path` (a temporary file
beside the target, then :func:`os.replace`), so a reader never sees a partial file.

:func:`write_bytes` writes bytes that way; :func:`to_json` is the JSON text the library writes;
:func:`check_target` and :func:`input_path` are the checks of the paths the library writes and reads.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputFileNotFoundError, InputIsADirectoryError, UserInputError

__all__ = ["atomic_path", "atomic_write", "check_target", "input_path", "write_bytes", "to_json"]


def _umask() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, only used off Linux
    os.umask(mask)
    return mask


def check_target(path: Path, overwrite: bool, who: str) -> None:
    """Refuse a target that :func:`atomic_path` would refuse, before the work of making its content: a
    directory, an existing file unless ``overwrite``, or a missing parent directory (``who`` names the caller).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.io.files import check_target
    >>> with tempfile.TemporaryDirectory() as d:
    ...     check_target(Path(d) / "new.png", False, "example")      # nothing to refuse
    """
    if path.is_dir():
        raise InputIsADirectoryError(f"{who}: path '{path}' is a directory")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{who}: '{path}' already exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise InputFileNotFoundError(f"{who}: directory '{path.parent}' does not exist")


def input_path(path, who: str, *, folder_ok: bool = False) -> Path:
    """``path``, a file to read, as a :class:`~pathlib.Path`, checked: a str or path-like that exists, and
    not a directory unless ``folder_ok``.

    Raises
    ------
    pdeflow.errors.UserInputError
        ``path`` is not a str or path-like; an :class:`~pdeflow.errors.InputFileNotFoundError` (also a
        FileNotFoundError) when it does not exist, an :class:`~pdeflow.errors.InputIsADirectoryError`
        (also an IsADirectoryError) when it is a directory and ``folder_ok`` is false. The message
        starts with ``who``.

    Examples
    --------
    >>> from pdeflow.io.files import input_path
    >>> try:
    ...     input_path(3, "read_image")
    ... except ValueError as err:
    ...     print(err)
    read_image: path must be a str or path-like (a file name), got int 3
    """
    try:
        p = Path(os.fspath(path))
    except TypeError:
        raise UserInputError(f"{who}: path must be a str or path-like (a file name), got {type(path).__name__} "
                             f"{path!r}"[:300]) from None
    if not p.exists():
        raise InputFileNotFoundError(f"{who}: no such file{' or folder' if folder_ok else ''}: '{p}'")
    if p.is_dir() and not folder_ok:
        raise InputIsADirectoryError(f"{who}: '{p}' is a directory, not a file")
    return p


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path, overwrite: bool, fsync: bool) -> None:
    if fsync:  # a failing fsync (disk full) raises: the target is left as it was
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    mode = None
    if overwrite and path.exists():
        with contextlib.suppress(OSError):
            mode = path.stat().st_mode & 0o7777
    os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
    if overwrite:
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(path.parent)
        return
    # Without overwrite, a hard link fails atomically if the target appeared
    # meanwhile; fall back to check-and-rename where links are unsupported.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"'{path}' already exists (pass overwrite=True to replace it)") from None
    except OSError:
        if path.exists():
            raise FileExistsError(f"'{path}' already exists (pass overwrite=True to replace it)") from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` (same class and errno) naming ``path``, the file the caller asked for, rather than the hidden
    temporary file beside it that the caller never named."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = False, fsync: bool = True) -> Iterator[Path]:
    """Context manager that yields a temporary path and moves it onto ``path``.

    The temporary file is created beside ``path`` (same directory, so the
    final :func:`os.replace` is atomic) and ends with the same suffix, so
    writers that infer the format from the name (matplotlib, PIL) work. When
    the block exits normally the file is flushed to disk and renamed onto
    ``path``; if the block raises, the temporary file is removed and ``path``
    is untouched.

    Parameters
    ----------
    path : str or path-like
        Final destination. Its directory must exist.
    overwrite : bool, optional
        Replace an existing file. Without it an existing ``path`` raises
        FileExistsError, before the block runs and again (atomically) at the end.
    fsync : bool, optional
        Flush the temporary file to disk before the rename.

    Yields
    ------
    pathlib.Path
        The temporary path to write to (it exists, empty).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.io import atomic_path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with atomic_path(Path(d) / "notes.txt") as tmp:
    ...         _ = tmp.write_text("done")
    ...     print((Path(d) / "notes.txt").read_text())
    done
    """
    path = Path(path)
    check_target(path, overwrite, "atomic_path")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    except OSError as exc:   # a folder that takes no new file (read-only, full)
        raise _naming(exc, path) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic_path: the writer removed the temporary file '{tmp}'")
        try:
            _commit(tmp, path, overwrite, fsync)
        except FileExistsError:
            raise
        except OSError as exc:   # flushing or renaming failed (a full disk, a folder made read-only meanwhile)
            raise _naming(exc, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path, writer_fn: Callable[[Path], object], *, overwrite: bool = False,
                 fsync: bool = True) -> Path:
    """Write a file atomically: ``writer_fn(tmp_path)`` then rename onto ``path``.

    Readers never see a partial file, and a failed write leaves no file
    behind (the temporary file is removed and the exception re-raised). See
    :func:`atomic_path` for the details.

    Parameters
    ----------
    path : str or path-like
        Final destination; its directory must exist.
    writer_fn : callable
        Called once with the temporary path (a :class:`pathlib.Path` with the
        same suffix as ``path``); it must write the whole file there.
    overwrite : bool, optional
        Replace an existing file (default: raise FileExistsError).
    fsync : bool, optional
        Flush to disk before the rename.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pdeflow.io import atomic_write
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print(atomic_write(Path(d) / "a.txt", lambda p: p.write_text("hi")).read_text())
    hi
    """
    if not callable(writer_fn):
        raise TypeError(f"atomic_write: writer_fn must be callable, got {type(writer_fn).__name__}")
    with atomic_path(path, overwrite=overwrite, fsync=fsync) as tmp:
        writer_fn(tmp)
    return Path(path)


def _json_default(obj):
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_json(obj, what: str) -> str:
    """``obj`` as indented JSON text; a :class:`~pdeflow.errors.UserInputError` naming ``what`` if it is not
    JSON serialisable (numbers, strings, lists, dicts; no NaN or infinity).

    Examples
    --------
    >>> from pdeflow.io import to_json
    >>> print(to_json({"steps": 3}, "config"), end="")
    {
      "steps": 3
    }
    """
    try:
        return json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise UserInputError(f"{what} must be JSON serialisable (numbers, strings, lists, dicts; "
                             f"no NaN/inf): {e}") from None


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, replacing an existing file; parent directories are created.

    Examples
    --------
    >>> import tempfile
    >>> from pdeflow.io import write_bytes
    >>> with tempfile.TemporaryDirectory() as d:
    ...     print(write_bytes(f"{d}/sub/a.bin", b"xyz").read_bytes())
    b'xyz'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), overwrite=True)
