"""The run loop: a resumable run directory (config, checkpoints, best model, log, progress bar)."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserInputError
from ..io import to_json, write_bytes
from ._loop_helpers import CpuClock, check_finite, clip_gradients, cosine_factor, invoked_command, provenance
from .checkpoint import load_checkpoint, save_checkpoint
from .config import atomic_write_json, config_diff, config_to_dict, field_defaults
from .distributed import broadcast_object, gather_object, get_rank, get_world_size, on_main_then_broadcast, unwrap
from .seeding import rng_state, set_rng_state

__all__ = ["clip_gradients", "check_finite", "cosine_factor", "Run", "RunConfigError", "CpuClock", "invoked_command",
           "provenance", "WARNING_WORDING"]

#: How the warnings summarised at the end of :meth:`Run.steps` are worded: ``None`` (as raised) or a function of
#: the message text. The ``pdeflow train`` commands set it, so that a warning names their options where the
#: library names its arguments (``--ref-max-iter`` for ``max_iter``).
WARNING_WORDING: ContextVar[Callable[[str], str] | None] = ContextVar("WARNING_WORDING", default=None)

# The loop's helpers (clipping, the learning-rate factor, the divergence check, the CPU clock, provenance) live in
# _loop_helpers; this module is the run directory.


PathLike = str | os.PathLike


class RunConfigError(UserInputError):
    """A run directory holds a run whose config differs from the one given.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.training import Run, RunConfigError
    >>> net = torch.nn.Linear(2, 1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = Run(d, {"lr": 0.1}, models=net, quiet=True)
    ...     try:
    ...         Run(d, {"lr": 0.2}, models=net, quiet=True)
    ...     except RunConfigError:
    ...         print("the folder holds another run")
    the folder holds another run
    """


class Run:
    """A run directory: config, resumable checkpoints, best checkpoint, CSV log, progress bar.

    Files in ``dir``: ``config.json``, ``last.pt`` (resume point, every
    ``ckpt_every`` steps and at the end), ``best.pt`` (best by the validation
    metric given to :meth:`update_best`), ``log.csv`` (one row per step that
    logged anything: ``step``, ``wall_time`` (seconds of training, summed over
    resumes), then the named scalars) and ``tb/`` if ``tensorboard=True``.

    Parameters
    ----------
    dir : path
        Created if needed. If it holds a run with a different config, a
        :class:`RunConfigError` says which fields differ.
    config : dataclass instance or dict
        The trainer's config; must be JSON serialisable.
    models, optimizers, schedulers : dict of name -> object (or one object)
        Everything whose ``state_dict`` goes into checkpoints. Models may be DDP
        or ``torch.compile`` wrappers.
    extra : dict of name -> object with ``state_dict``/``load_state_dict``
        Any other state to checkpoint (a GradScaler, an EMA of the weights...).
    ckpt_every : int
        Steps between writes of ``last.pt``.
    best_mode : "min" or "max"
        Whether a lower or a higher validation metric is better.
    allow_changed : tuple of str
        Config fields that may differ when resuming (e.g. ``("steps",)`` to
        extend a finished run); ``config.json`` is then updated.
    quiet : bool
        No progress bar, no progress lines, no validation lines. Otherwise, on rank 0: on a
        terminal a progress bar; elsewhere (a log file, a pipe, a batch job) one line on
        stderr every ``progress_every`` steps (step, the scalars logged for it, steps/s, ETA);
        in both cases one line per validation (:meth:`log_validation`, :meth:`update_best`).
        Quiet or not, every warning raised inside the loop (the reference solver's
        ``ConvergenceWarning``, ...) is counted instead of shown, and reported once at the
        end of :meth:`steps`: one line per warning site, with its count and first message
        (a warning per step would drown the quiet output it was asked for).
    progress_every : int, optional
        Steps between progress lines off a terminal (default: a twentieth of the run).
    tensorboard : bool
        Also write scalars to ``dir/tb`` if the ``tensorboard`` package is
        installed (a warning otherwise; it is never required).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.training import Run
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     run = Run(d, {"steps": 3}, models=net, optimizers=opt, quiet=True)
    ...     for step in run.steps(run.resume(), 3):
    ...         loss = net(torch.ones(1, 2)).pow(2).sum()
    ...         opt.zero_grad()
    ...         loss.backward()
    ...         opt.step()
    ...         run.log(step, loss=loss)
    ...     run.finish()
    ...     again = Run(d, {"steps": 3}, models=net, optimizers=opt, quiet=True).resume()  # a finished run
    ...     print(sorted(p.name for p in Path(d).iterdir()), again)
    ['config.json', 'last.pt', 'log.csv'] 3
    """

    def __init__(self, dir: PathLike, config: Any, *, models: Any, optimizers: Any = None,
                 schedulers: Any = None, extra: Mapping[str, Any] | None = None,
                 ckpt_every: int = 1000, best_mode: str = "min", allow_changed: tuple[str, ...] = (),
                 quiet: bool = False, progress_every: int | None = None, tensorboard: bool = False):
        if best_mode not in ("min", "max"):
            raise UserInputError(f"Run: best_mode must be 'min' or 'max', got {best_mode!r}")
        if not (isinstance(ckpt_every, int) and ckpt_every >= 1):
            raise UserInputError(f"Run: ckpt_every must be a positive int, got {ckpt_every!r}")
        if progress_every is not None and not (isinstance(progress_every, int) and progress_every >= 1):
            raise UserInputError(f"Run: progress_every must be a positive int or None, got {progress_every!r}")
        self.dir = Path(dir)
        self.config = config
        self.config_dict = config_to_dict(config)
        self._defaults = field_defaults(config)
        self.models = self._named(models, "models", "model")
        self.optimizers = self._named(optimizers, "optimizers", "optimizer")
        self.schedulers = self._named(schedulers, "schedulers", "scheduler")
        self.extra = self._named(extra, "extra", "extra")
        self.ckpt_every = ckpt_every
        self.best_mode = best_mode
        self.allow_changed = tuple(allow_changed)
        self.quiet = quiet
        self.progress_every = progress_every
        self.tensorboard = tensorboard
        self.rank, self.world_size = get_rank(), get_world_size()
        self.is_main = self.rank == 0

        self.best: float | None = None       # best metric so far
        self.best_step: int | None = None    # loop index at which it was measured
        self.done = 0                        # completed steps
        self.total: int | None = None        # steps of the run (set by :meth:`steps`)
        self._resumed = False
        self._saved_at: int | None = None    # `done` when last.pt was last written
        self._elapsed0 = 0.0                 # training seconds before this process
        self._t0 = time.monotonic()
        self._bar = None
        self._tb = None
        self._fields: list[str] = []         # log.csv columns
        self._row: dict | None = None        # the row being filled for the current step
        self._report: _Report | None = None  # progress lines and warning counts, inside steps()
        on_main_then_broadcast(self.is_main, self._prepare_dir)

    @staticmethod
    def _named(objs: Any, what: str, default_name: str) -> dict:
        if objs is None:
            return {}
        if isinstance(objs, Mapping):
            return dict(objs)
        if isinstance(objs, (list, tuple)):
            raise TypeError(f"Run: {what} must be a dict of name -> object (or a single object)")
        return {default_name: objs}

    # ---- directory and config ---------------------------------------------------------

    def _prepare_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp*"):   # temp files of a killed write
            with contextlib.suppress(OSError):
                stale.unlink()
        path = self.dir / "config.json"
        if path.exists():
            try:
                saved = json.loads(path.read_text())
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
                raise RunConfigError(f"{path} is not valid JSON ({exc}); use another run directory") from None
            if not isinstance(saved, dict):
                raise RunConfigError(f"{path} does not hold a run's config; use another run directory")
            diff = config_diff(saved, self.config_dict, self.allow_changed, self._defaults)
            if diff:
                raise RunConfigError(
                    f"run directory {self.dir} holds a run with a different config:\n" + "\n".join(diff)
                    + "\nResume it with the same config, use a new directory, or delete this one"
                    " (fields that may change on resume go in Run(..., allow_changed=...)).")
            if saved == self.config_dict:
                return
        atomic_write_json(path, self.config_dict, "config")

    # ---- resume -----------------------------------------------------------------------

    def resume(self) -> int:
        """Load ``last.pt`` if there is one; return the step to start the loop at.

        Restores models, optimisers, schedulers, extras, the RNG states, the best
        metric and the elapsed time, and cuts ``log.csv`` back to the rows of
        steps before the returned one. Without ``last.pt`` the run starts afresh
        at 0 (a ``log.csv``/``best.pt`` left by a run killed before its first
        checkpoint are removed). Collective under DDP.
        """
        ckpt = on_main_then_broadcast(self.is_main, self._read_last)
        start = 0
        if ckpt is not None:
            for kind, objs in (("models", self.models), ("optimizers", self.optimizers),
                               ("schedulers", self.schedulers), ("extra", self.extra)):
                saved = ckpt.get(kind, {})
                absent = set(objs) - set(saved)      # allowed only for extras marked optional (a CpuClock)
                if set(saved) - set(objs) or any(not getattr(objs[n], "optional", False) for n in absent):
                    raise RuntimeError(f"Run.resume: {self.dir / 'last.pt'} holds {kind} {sorted(saved)}, "
                                       f"this run has {sorted(objs)}")
                for name, obj in objs.items():
                    if name in absent:
                        obj.missing_from_checkpoint(int(ckpt["step"]))
                    else:
                        (unwrap(obj) if isinstance(obj, nn.Module) else obj).load_state_dict(saved[name])
            rng = ckpt["rng"]
            if len(rng) != self.world_size:
                warnings.warn(f"Run.resume: checkpoint written with {len(rng)} processes, now "
                              f"{self.world_size}; RNG states are restored where a rank has one", stacklevel=2)
            if self.rank < len(rng):
                set_rng_state(rng[self.rank])
            self.best, self.best_step = ckpt["best"]["metric"], ckpt["best"]["step"]
            self._elapsed0 = float(ckpt["wall_time"])
            start = int(ckpt["step"])
        self.done = start
        self._saved_at = start if ckpt is not None else None
        self._t0 = time.monotonic()
        if self.is_main:
            self._truncate_log(start)
            if start == 0:
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / "best.pt").unlink()
            if self.tensorboard:
                self._open_tensorboard(start)
        self._resumed = True
        return start

    def _read_last(self) -> dict | None:
        path = self.dir / "last.pt"
        if not path.exists():
            return None
        ckpt = load_checkpoint(path)
        diff = config_diff(ckpt.get("config", {}), self.config_dict, self.allow_changed, self._defaults)
        if diff:
            raise RunConfigError(f"{path} was written with a different config:\n" + "\n".join(diff))
        return ckpt

    def _open_tensorboard(self, start: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("Run: tensorboard=True but the tensorboard package is not installed; "
                          "logging to log.csv only", stacklevel=3)
            return
        self._tb = SummaryWriter(str(self.dir / "tb"), purge_step=start)

    # ---- the loop -----------------------------------------------------------------------

    def steps(self, start: int, total: int) -> Iterator[int]:
        """Yield ``start, ..., total - 1``; after each step update the progress bar and,
        every ``ckpt_every`` completed steps and after the last one, write ``last.pt``.

        A step counts as completed when the loop comes back for the next one. To
        stop early on purpose, ``break`` at the top of a step (before its update)
        and call :meth:`finish`: ``last.pt`` then holds exactly the steps done.
        """
        if not self._resumed:
            raise RuntimeError("Run.steps: call run.resume() first (it returns the start step)")
        self.total = total
        terminal = _isatty(sys.stderr)
        show = self.is_main and not self.quiet and terminal
        from tqdm import tqdm
        self._bar = tqdm(total=total, initial=start, desc=self.dir.name, unit="step",
                         dynamic_ncols=True, disable=not show)
        report = None
        if self.is_main:
            every = None if self.quiet or terminal else self.progress_every or max(1, total // 20)
            report = self._report = _Report(self.dir.name, start, total, every, show_validations=not self.quiet,
                                            write=_write_above_bar if show else _print_stderr)
        try:
            with report.counting() if report is not None else contextlib.nullcontext():
                for step in range(start, total):
                    if report is not None:
                        report.step = step
                    yield step
                    self.done = step + 1
                    self._bar.update(1)
                    if report is not None:
                        report.completed(self.done, self._row if self._row and self._row["step"] == step else {})
                    if self.done % self.ckpt_every == 0 or self.done == total:
                        self.save()
        finally:
            self._bar.close()
            self._bar = None
            if report is not None:
                self._report = None
                report.summarise_warnings()

    def log(self, step: int, **scalars: float | torch.Tensor) -> None:
        """Record scalars for ``step`` (rank 0 only; others ignore the call, so
        average over ranks first with :func:`reduce_mean`). Several calls for
        one step fill one CSV row; a new column extends the header."""
        if not self.is_main:
            return
        values = {}
        for k, v in scalars.items():
            if k in ("step", "wall_time"):
                raise UserInputError(f"Run.log: {k!r} is a reserved column name")
            if isinstance(v, torch.Tensor):
                if v.numel() != 1:
                    raise UserInputError(f"Run.log: {k} must be a scalar, got a tensor of shape {tuple(v.shape)}")
                v = v.item()
            if not isinstance(v, (int, float, np.integer, np.floating)):
                raise UserInputError(f"Run.log: {k} must be a number, got {type(v).__name__}")
            values[k] = float(v) if isinstance(v, (float, np.floating)) else int(v)
        if self._row is not None and self._row["step"] != step:
            self._flush_row()
        if self._row is None:
            self._row = {"step": int(step), "wall_time": round(self.elapsed, 3)}
        self._row.update(values)
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)
        if self._bar is not None and values:
            self._bar.set_postfix(values, refresh=False)

    def update_best(self, step: int, metric: float | torch.Tensor) -> bool:
        """If ``metric`` beats the best so far (per ``best_mode``), write ``best.pt``
        and return True. Call after the update of ``step``. NaN never wins.
        Collective under DDP; rank 0's metric decides."""
        return self._update_best(step, metric, None)

    def _update_best(self, step: int, metric, shown: Mapping[str, float] | None) -> bool:
        metric = float(metric.item() if isinstance(metric, torch.Tensor) else metric)
        metric = float(broadcast_object(metric))
        better = not math.isnan(metric) and (
            self.best is None or (metric > self.best if self.best_mode == "max" else metric < self.best))
        if better:
            self.best, self.best_step = metric, int(step)
            self._write("best.pt", self._state(done=step + 1))
        if self._report is not None:
            self._report.validation(step, {"metric": metric} if shown is None else shown, self.best, self.best_step)
        return better

    def validation_due(self, step: int, every: int) -> bool:
        """Whether ``step`` validates: every ``every`` steps and after the last step of :meth:`steps`."""
        return (step + 1) % every == 0 or step + 1 == self.total

    def log_validation(self, step: int, metrics: Mapping[str, float], key: str = "metric") -> bool:
        """Log the finite validation ``metrics`` of ``step`` (one named ``metric`` as ``val_metric``) and
        :meth:`update_best` with ``metrics[key]``; True on a new best. Collective under DDP."""
        shown = {("val_metric" if k == "metric" else k): v for k, v in metrics.items()}
        self.log(step, **{k: v for k, v in shown.items() if math.isfinite(v)})
        if self._report is not None:
            self._report.validation_keys.update(shown)
        return self._update_best(step, metrics[key], {k: float(v) for k, v in shown.items()})

    def best_record(self) -> dict:
        """How far the run was at its best, for the exported model's provenance: ``steps`` trained when
        the best weights were validated, ``steps_total`` trained by now (at least ``steps``: an export
        inside step k runs before it completes) and ``wall_time_s``."""
        return {"steps": int(self.best_step) + 1, "steps_total": max(int(self.done), int(self.best_step) + 1),
                "wall_time_s": round(self.elapsed, 1)}

    def cached_json(self, name: str, compute) -> Any:
        """The JSON value of file ``name`` in the run directory; computed by ``compute()`` and written
        when the run starts afresh (a resumed run, one that loaded ``last.pt``, reads it back instead of
        computing it again; a file left by a run killed before its first checkpoint is replaced)."""
        path = self.dir / name
        if self._saved_at is not None and path.is_file():
            return json.loads(path.read_text())
        value = compute()
        if self.is_main:
            write_bytes(path, to_json(value, name).encode())
        return value

    def best_models(self) -> dict | None:
        """The model states of ``best.pt`` (name -> state dict), or None where no validation has run."""
        path = self.dir / "best.pt"
        return load_checkpoint(path)["models"] if self.is_main and path.exists() else None

    def save(self) -> None:
        """Write ``last.pt`` now (the loop does this itself). Collective under DDP."""
        self._flush_row()
        self._write("last.pt", self._state(done=self.done))
        self._saved_at = self.done

    def finish(self) -> None:
        """Write ``last.pt`` if the last completed step is not in it yet, flush the
        log, close TensorBoard. Collective under DDP."""
        if self._saved_at != self.done:
            self.save()
        self._flush_row()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    @property
    def elapsed(self) -> float:
        """Seconds of training in this run directory, over all resumes."""
        return self._elapsed0 + time.monotonic() - self._t0

    # ---- checkpoint contents ----------------------------------------------------------

    def _state(self, done: int) -> dict:
        rng = gather_object(rng_state())      # every rank's RNG, so each resumes its own
        if not self.is_main:
            return {}
        sd = lambda o: (unwrap(o) if isinstance(o, nn.Module) else o).state_dict()  # noqa: E731
        return {
            "format": "pdeflow-checkpoint",
            "format_version": 1,
            "step": done,
            "config": self.config_dict,
            "models": {k: sd(m) for k, m in self.models.items()},
            "optimizers": {k: sd(o) for k, o in self.optimizers.items()},
            "schedulers": {k: sd(s) for k, s in self.schedulers.items()},
            "extra": {k: sd(e) for k, e in self.extra.items()},
            "rng": rng,
            "best": {"metric": self.best, "step": self.best_step, "mode": self.best_mode},
            "wall_time": self.elapsed,
            "world_size": self.world_size,
            "torch_version": str(torch.__version__),
        }

    def _write(self, name: str, state: dict) -> None:
        if self.is_main:
            save_checkpoint(self.dir / name, state)

    # ---- log.csv ----------------------------------------------------------------------

    @property
    def _log_path(self) -> Path:
        return self.dir / "log.csv"

    def _flush_row(self) -> None:
        row, self._row = self._row, None
        if row is None or not self.is_main:
            return
        new = [k for k in row if k not in self._fields]
        if new or not self._log_path.exists():
            self._fields += new
            rows = self._read_log()[1] if self._log_path.exists() else []
            self._rewrite_log(rows + [row])
            return
        with open(self._log_path, "a", newline="") as f:
            csv.DictWriter(f, self._fields).writerow(_format_row(row))

    def _read_log(self) -> tuple[list[str], list[dict]]:
        with open(self._log_path, newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)

    def _rewrite_log(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self._fields)
        writer.writeheader()
        writer.writerows(_format_row(r) for r in rows)
        write_bytes(self._log_path, buf.getvalue().encode())

    def _truncate_log(self, start: int) -> None:
        """Keep the rows of steps before ``start`` (those of replayed steps go)."""
        self._row = None
        if not self._log_path.exists():
            self._fields = []
            return
        if start == 0:
            self._log_path.unlink()
            self._fields = []
            return
        fields, rows = self._read_log()
        self._fields = fields
        self._rewrite_log([r for r in rows if int(r["step"]) < start])


def _print_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _write_above_bar(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class _Report:
    """What :meth:`Run.steps` shows besides the bar: a line every ``every`` steps (``None``: none, a
    bar shows progress or the run is quiet), a line per validation (unless quiet), and the warnings
    raised in the loop, counted per site and summarised once at the end."""

    def __init__(self, name: str, start: int, total: int, every: int | None, write, show_validations: bool = True):
        self.name, self.start, self.total, self.every, self.write = name, start, total, every, write
        self.show_validations = show_validations
        self.step = start                       # the step running now (for the first step of a warning)
        self.validation_keys: set[str] = set()  # logged by log_validation: shown on its line, not the step's
        self.warnings: dict[tuple, list] = {}   # (category, file, line) -> [count, first step, first message]
        self._t0 = self._t_last = time.monotonic()
        self._done_last = start

    @contextlib.contextmanager
    def counting(self):
        """Count the warnings raised inside (each occurrence, not once per site) instead of showing them."""
        with warnings.catch_warnings():
            warnings.simplefilter("always")

            wording = WARNING_WORDING.get() or str

            def count(message, category, filename, lineno, file=None, line=None):
                entry = self.warnings.setdefault((category.__name__, filename, lineno),
                                                 [0, self.step, wording(" ".join(str(message).split()))])
                entry[0] += 1

            warnings.showwarning = count
            yield

    def _n_warnings(self) -> int:
        return sum(c for c, _, _ in self.warnings.values())

    def completed(self, done: int, row: Mapping[str, Any]) -> None:
        """After a step: the progress line when one is due."""
        if self.every is None or not (done % self.every == 0 or done == self.total):
            return
        now = time.monotonic()
        rate = (done - self._done_last) / max(now - self._t_last, 1e-9)
        overall = (done - self.start) / max(now - self._t0, 1e-9)
        self._t_last, self._done_last = now, done
        terms = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
                         if k not in ("step", "wall_time") and k not in self.validation_keys)
        n = self._n_warnings()
        self.write(f"{self.name}: step {done}/{self.total} ({100 * done / self.total:.0f}%)"
                   + (f" {terms}" if terms else "")
                   + f" | {rate:.3g} steps/s, ETA {_duration((self.total - done) / max(overall, 1e-9))}"
                   + (f", {n} warning{'s' if n != 1 else ''} so far (summary at the end)" if n else ""))

    def validation(self, step: int, metrics: Mapping[str, float], best, best_step) -> None:
        if not self.show_validations:
            return
        shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        best_text = "" if best is None else (" (new best)" if best_step == step else
                                            f" (best {best:.4g} at step {best_step + 1})")
        self.write(f"{self.name}: validation after step {step + 1}/{self.total}: {shown}{best_text}")

    def summarise_warnings(self) -> None:
        """One line per warning site: the count, the step of the first and its message."""
        for (category, _, _), (count, first, message) in sorted(self.warnings.items(), key=lambda kv: -kv[1][0]):
            self.write(f"{self.name}: {category} raised {count} time{'s' if count != 1 else ''} during training "
                       f"(first in step {first + 1}): {message}")


def _format_row(row: dict) -> dict:
    return {k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()}


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
