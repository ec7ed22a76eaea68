"""Progress reports for long work: one switch; a tqdm bar on a terminal, plain lines elsewhere.

The time left is extrapolated from the time taken so far; for work whose units cost different amounts
(PS steps get dearer as the mask thins out), :class:`WorkModel` weighs the units by their modelled cost.
"""
from __future__ import annotations

import itertools
import os
import sys
import time

from tqdm.auto import tqdm

__all__ = ["progress_bar", "WorkModel"]


class WorkModel:
    """The time left of work whose units have different, modelled costs.

    After ``n`` units in ``elapsed`` seconds the time left is ``elapsed * W(rest) / W(done)``, ``W`` the summed
    modelled costs: the model says how the remaining units compare with those done, the clock how fast this
    machine runs them. Equal costs give the usual linear extrapolation.

    Parameters
    ----------
    costs : sequence of float
        The modelled cost of each unit, > 0, on any scale (only ratios matter).

    Examples
    --------
    >>> from pdeflow.progress import WorkModel
    >>> WorkModel([1, 1, 2, 4]).eta(2, 10.0)     # 2 units of cost 1 took 10 s; 6 units of cost are left
    30.0
    """

    def __init__(self, costs):
        costs = [float(c) for c in costs]
        if any(not c > 0 for c in costs):
            raise ValueError("WorkModel: costs must be numbers > 0")
        self._done = list(itertools.accumulate(costs))    # _done[i]: the cost of the first i + 1 units

    def __len__(self) -> int:
        return len(self._done)

    def eta(self, n: int, elapsed: float) -> float | None:
        """Seconds left after the first ``n`` units took ``elapsed`` seconds (``None`` before the first)."""
        n = min(int(n), len(self._done))
        if n <= 0:      # nothing measured yet (or nothing to do)
            return None
        done = self._done[n - 1]
        return elapsed * (self._done[-1] - done) / done


class _ModelledBar(tqdm):
    """A tqdm bar whose time left comes from a :class:`WorkModel`."""

    def __init__(self, *args, model: WorkModel, **kwargs):
        self._model = model
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self):
        d = super().format_dict
        left = self._model.eta(d["n"], d["elapsed"])
        if left and d["total"]:     # tqdm shows (total - n) / rate as the time left
            d["rate"] = (d["total"] - d["n"]) / left
        return d


class _Lines:
    """Progress for a log file or a pipe: one plain line each time another ``every`` percent is done,
    with the elapsed time and an estimate of the time left (no carriage returns, no bar)."""

    def __init__(self, total=None, desc: str = "", unit: str = "it", every: float = 10.0, file=None,
                 initial: int = 0, model: WorkModel | None = None, **_):
        self.total, self.desc, self.unit, self.every = total, desc or "progress", unit, every
        self.model = model
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
        if self.model is not None:
            left = self.model.eta(self.n, secs) or 0.0
        else:
            left = secs * (self.total - self.n) / max(self.n, 1)
        extra = f", {self._postfix}" if self._postfix else ""
        print(f"{self.desc}: {pct:3.0f}% ({self.n}/{self.total} {self.unit}), {secs:.0f} s elapsed, "
              f"ETA {left:.0f} s{extra}", file=self.file, flush=True)

    def refresh(self):
        pass

    def close(self):
        pass


def progress_bar(*, total=None, enabled=True, costs=None, **kwargs):
    """Progress of long work, written to stderr; a silent no-op when ``enabled`` is False.

    On a terminal a tqdm bar; otherwise (a log file, a pipe, a terminal of unknown width) a plain line
    each time another 10 % is done, with the elapsed time and the estimated time left. Use as a context manager;
    ``bar.update(n)`` advances it. Library functions pass ``enabled=progress`` with ``progress=False``
    by default. ``costs`` (one modelled cost per unit, ``total`` of them; see :class:`WorkModel`) makes the
    estimate of the time left weigh the units by them.

    Examples
    --------
    >>> from pdeflow.progress import progress_bar
    >>> with progress_bar(total=3, enabled=False) as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
    """
    model = None if costs is None else WorkModel(costs)
    if model is not None and len(model) != total:
        raise ValueError(f"progress_bar: {len(model)} costs for a total of {total}")
    if enabled and not (_isatty(sys.stderr) and _columns(sys.stderr) > 0):
        return _Lines(total=total, model=model, **kwargs)
    kwargs = dict(total=total, disable=not enabled, file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)
    return tqdm(**kwargs) if model is None else _ModelledBar(model=model, **kwargs)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _columns(stream) -> int:
    """The width of the terminal ``stream`` writes to; 0 where it reports none (a pseudo-terminal that was
    never sized, as some containers' and editors' are), where a tqdm bar would draw nothing."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0
