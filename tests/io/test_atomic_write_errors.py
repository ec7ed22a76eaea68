"""A write that fails names the file the caller asked for, never the hidden temporary file beside it
(``pdeflow.io.atomic_path``: a read-only or full output folder), in the library and on the command line.

Tests run as root here, where ``chmod`` does not stop a write: the failures are simulated by making the creation or
the rename of the temporary file fail; the real read-only folder runs where the tests are not root."""
from __future__ import annotations

import errno
import os
import tempfile

import pytest
import torch

from pdeflow.cli import main
from pdeflow.io import atomic_path, write_image


def _refuse_temporary_files(monkeypatch, target_name: str):
    """``tempfile.mkstemp`` fails with EACCES for ``atomic_path``'s temporary file of ``target_name`` (its prefix
    is ``.NAME.``), as in a read-only folder, and works for everything else (the command line's up-front
    write check included)."""
    real = tempfile.mkstemp

    def mkstemp(suffix=None, prefix=None, dir=None, text=False):
        if prefix == f".{target_name}.":
            hidden = os.path.join(str(dir), f"{prefix}abc123{suffix}")
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), hidden)
        return real(suffix=suffix, prefix=prefix, dir=dir, text=text)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_a_folder_that_takes_no_file_names_the_result(tmp_path, monkeypatch):
    _refuse_temporary_files(monkeypatch, "result.png")
    target = tmp_path / "result.png"
    with pytest.raises(PermissionError) as exc:
        write_image(target, torch.zeros(8, 8))
    assert exc.value.errno == errno.EACCES and exc.value.filename == str(target)
    message = str(exc.value)
    assert message == f"[Errno 13] Permission denied: '{target}'" and "\n" not in message
    assert ".tmp" not in message and "abc123" not in message
    assert os.listdir(tmp_path) == []


def test_a_failed_rename_names_the_result_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def replace(src, dst):   # as os.replace says it: both names, the hidden one first
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "notes.txt"
    with pytest.raises(PermissionError) as exc, atomic_path(target, overwrite=True) as tmp:
        tmp.write_text("x")
    assert exc.value.filename == str(target) and ".tmp" not in str(exc.value)
    assert os.listdir(tmp_path) == []


def test_other_errors_of_the_writer_pass_unchanged(tmp_path):
    with pytest.raises(OSError) as exc, atomic_path(tmp_path / "a.txt") as tmp:
        raise OSError(errno.EIO, "device error", str(tmp))
    assert exc.value.filename.endswith(".tmp.txt")     # the writer's own error is not rewritten


def test_the_command_line_names_the_result_in_one_line(tmp_path, monkeypatch, capsys):
    _refuse_temporary_files(monkeypatch, "u_lam0.05.png")
    out = tmp_path / "out"
    out.mkdir()
    status = main(["denoise", "builtin:skimage/camera", "--size", "16", "--lam", "0.05", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 74, err
    assert err == [f"pdeflow denoise: error: cannot write '{out / 'u_lam0.05.png'}': Permission denied (EACCES); "
                   "no partial output files were left"]
    assert os.listdir(out) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_names_the_result(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as exc:
            write_image(folder / "result.png", torch.zeros(8, 8))
        assert exc.value.filename == str(folder / "result.png") and ".tmp" not in str(exc.value)
    finally:
        folder.chmod(0o755)
