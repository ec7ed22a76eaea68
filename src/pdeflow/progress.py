"""Progress reports for long work: one switch; a tqdm bar on a terminal, plain lines elsewhere."""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


class _Lines:
    """Progress for a log file or a pipe: one plain line each time another ``every`` percent is done,
    with the elapsed time and an estimate of the time left (no carriage returns, no bar)."""

    def __init__(self, total=None, desc: str = "", unit: str = "it", every: float = 10.0, file=None,
                 initial: int = 0, **_):
        self.total, self.desc, self.unit, self.every = total, desc or "progress", unit, every
        self.n = initial
        self.file = file or sys.stderr
        self._t0 = time.perf_counter()
        self._next = every
        self._postfix = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def set_postfix(self, values=None, refresh=True, **kw):
        items = {**(values or {}), **kw}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc=None, refresh=True):
        self.desc = desc or self.desc

    def update(self, n=1):
        self.n += n
        if not self.total:
            return
        pct = 100.0 * self.n / self.total
        if pct + 1e-9 < self._next and self.n < self.total:
            return
        while self._next <= pct + 1e-9:
            self._next += self.every
        secs = time.perf_counter() - self._t0
        left = secs * (self.total - self.n) / max(self.n, 1)
        extra = f", {self._postfix}" if self._postfix else ""
        print(f"{self.desc}: {pct:3.0f}% ({self.n}/{self.total} {self.unit}), {secs:.0f} s elapsed, "
              f"ETA {left:.0f} s{extra}", file=self.file, flush=True)

    def refresh(self):
        pass

    def close(self):
        pass


def progress_bar(*, total=None, enabled=True, **kwargs):
    """Progress of long work, written to stderr; a silent no-op when ``enabled`` is False.

    On a terminal a tqdm bar; otherwise (a log file, a pipe) a plain line each time another 10 % is
    done, with the elapsed time and the estimated time left. Use as a context manager;
    ``bar.update(n)`` advances it. Library functions pass ``enabled=progress`` with ``progress=False``
    by default.

    Examples
    --------
    >>> from pdeflow.progress import progress_bar
    >>> with progress_bar(total=3, enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
    """
    if enabled and not _isatty(sys.stderr):
        return _Lines(total=total, **kwargs)
    return tqdm(total=total, disable=not enabled, file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
