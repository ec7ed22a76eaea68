"""Evaluation artefacts: tables, mean ± std, JSON, and a :class:`Report` written all or none.

Library evaluators *return* a :class:`Report` (the files of a report, in memory);
the caller (the ``pdeflow`` command, a script) decides where it goes, and
:meth:`Report.write` writes every file or none of them.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch

from .errors import UserInputError

__all__ = ["Report", "md_table", "mean_std", "format_mean_std", "jsonable"]


def md_table(header: list[str], rows: Iterable[list[str]]) -> str:
    """A Markdown table.

    Examples
    --------
    >>> from pdeflow.reporting import md_table
    >>> print(md_table(["method", "PSNR"], [["fgp", "31.20"], ["pdhg", "31.19"]]))
    | method | PSNR |
    |---|---|
    | fgp | 31.20 |
    | pdhg | 31.19 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def mean_std(values, ddof: int = 0) -> list[float]:
    """``[mean, std]`` of a sequence or tensor of numbers: the population standard deviation, or with
    ``ddof=1`` the sample one (over seeds or trainings); one value has std 0.

    Examples
    --------
    >>> from pdeflow.reporting import mean_std
    >>> [round(x, 4) for x in mean_std([1.0, 2.0, 3.0, 4.0])], round(mean_std([1.0, 2.0, 3.0, 4.0], ddof=1)[1], 4)
    ([2.5, 1.118], 1.291)
    """
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if not v.numel():
        return [math.nan, math.nan]
    return [float(v.mean()), float(v.std(correction=ddof)) if v.numel() > 1 else 0.0]


def format_mean_std(mean: float, std: float, n: int | None, digits: int = 4, *, sdigits: int | None = None,
                    signed: bool = False) -> str:
    """A table cell "mean ± std" of ``n`` values; with ``n == 1`` (one seed, one image) the mean
    alone, since one value has no spread to show (not "± 0.0000"). ``n=None``: unknown, shown
    as "mean ± std".

    Parameters
    ----------
    mean, std : float
    n : int or None
        How many values the mean is over.
    digits, sdigits : int
        Decimals of the mean and of the std (default: ``digits``).
    signed : bool
        Print the mean with its sign (differences).

    Examples
    --------
    >>> from pdeflow.reporting import format_mean_std
    >>> format_mean_std(31.2468, 0.0512, 3, digits=2)
    '31.25 ± 0.05'
    >>> format_mean_std(31.2468, 0.0, 1, digits=2)
    '31.25'
    """
    m = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    if n is not None and n <= 1:
        return m
    return f"{m} ± {std:.{sdigits if sdigits is not None else digits}f}"


def jsonable(obj, *, skip: tuple[str, ...] = ("example",)):
    """``obj`` with tensors, NumPy scalars and non-finite floats made JSON-safe (mapping keys in ``skip`` dropped).

    Examples
    --------
    >>> import json, math, torch
    >>> from pdeflow.reporting import jsonable
    >>> json.dumps(jsonable({"psnr": torch.tensor(31.5), "gap": math.inf, "example": "dropped"}))
    '{"psnr": 31.5, "gap": "inf"}'
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, skip=skip) for k, v in obj.items() if k not in skip}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, skip=skip) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


class Report:
    """The files of a report, in memory: name -> bytes, in the order they were added.

    Examples
    --------
    >>> rep = Report()
    >>> rep.add_text("report.md", "# Results\\n")
    >>> rep.names
    ['report.md']
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    @property
    def names(self) -> list[str]:
        return list(self.files)

    def _add(self, name: str, data: bytes) -> None:
        if not name or "/" in name or name.startswith("."):
            raise UserInputError(f"Report: file names are plain names, got {name!r}")
        if name in self.files:
            raise UserInputError(f"Report: '{name}' was added twice")
        self.files[name] = data

    def add_text(self, name: str, text: str) -> None:
        self._add(name, text.encode("utf-8"))

    def add_json(self, name: str, obj) -> None:
        self._add(name, (json.dumps(obj, indent=1, allow_nan=True) + "\n").encode("utf-8"))

    def add_figure(self, name: str, fig) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi)
        self._add(name, buf.getvalue())

    def add_csv(self, name: str, header, rows) -> None:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(rows)
        self._add(name, buf.getvalue().encode("utf-8"))

    def text(self, name: str) -> str:
        return self.files[name].decode("utf-8")

    def write(self, out_dir, *, overwrite: bool = False) -> list[Path]:
        """Write every file into ``out_dir`` (created if missing), or none of them.

        Each file is first written to a temporary file beside its target; the
        temporary files are renamed onto their targets only once all of them are
        written. On any error (Ctrl-C included) the temporary files are removed.
        Without ``overwrite`` an existing target raises FileExistsError before
        anything is written. Returns the paths written.
        """
        out = Path(out_dir)
        targets = [out / n for n in self.files]
        if not overwrite:
            for p in targets:
                if p.exists() or p.is_symlink():
                    raise FileExistsError(f"Report.write: '{p}' already exists (pass overwrite=True)")
        existed = {p for p in targets if p.exists()}
        out.mkdir(parents=True, exist_ok=True)
        tmps: list[Path] = []
        renamed: list[Path] = []
        try:
            for p, data in zip(targets, self.files.values()):
                fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{p.name}.", suffix=f".tmp{p.suffix}")
                tmps.append(Path(tmp))
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            for tmp, p in zip(tmps, targets):
                os.replace(tmp, p)
                renamed.append(p)
        except BaseException:
            for tmp in tmps:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            for p in renamed:  # files new in this call; replaced files cannot be restored
                if p not in existed:
                    with contextlib.suppress(OSError):
                        p.unlink()
            raise
        return targets
