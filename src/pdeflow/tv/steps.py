"""The steps of the TV flow: the implicit steps :func:`~pdeflow.tv.tv_flow` takes to the requested times, from an
explicit ``dt`` or from the accuracy asked for (:func:`flow_steps`), the accuracy they buy (:class:`FlowSteps`),
and the time they will take, estimated before the flow starts (:func:`estimate_seconds`).

Without ``dt`` the steps follow a rule for implicit Euler's error in time (``TIME_ERROR``), fitted to photographs
(results page "Speed and accuracy of the solvers", "The TV flow's steps"); ``TIME_SHARE`` of the accuracy goes
to the time steps, the rest to the solver of each step, which certifies it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..errors import UserInputError
from ._accuracy import check_accuracy
from .rof import FLOW_ACCURACY, solve

__all__ = ["TIME_ERROR", "TIME_SHARE", "STEP_ACCURACY", "FlowSteps", "flow_steps", "default_accuracy",
           "check_times", "step_schedule", "ITER_SCALE", "ITER_POWER", "ITER_SIZE_POWER", "ITER_LATER_POWER",
           "ITER_CHANNEL_POWER", "seconds_per_iteration",
           "estimate_seconds"]

#: The step rule of a call without ``dt`` (:func:`flow_steps`): implicit Euler's RMS error at a time ``t``,
#: as a fraction of the image's range ``R``, is about ``TIME_ERROR * h / sqrt(t * R)`` for steps of ``h`` up to
#: ``t`` (the errors of earlier steps fade as the flow goes on; one-homogeneity makes the form scale free),
#: fitted to photographs against a fine-step reference (results page "Speed and accuracy of the solvers",
#: "The TV flow's steps").
TIME_ERROR = 0.013
#: The share of ``accuracy`` a call without ``dt`` gives its time steps; the solver's certificate gets the rest.
TIME_SHARE = 0.5
#: Default ``accuracy`` of a call without ``dt``: the estimated RMS error of every frame against the exact flow
#: (time steps and solver), about two 8-bit steps; a call with ``dt`` defaults to ``FLOW_ACCURACY`` (the solver
#: alone).  Set so that the README's flow of a 512 x 512 photograph takes seconds, not minutes (results page
#: "Speed and accuracy of the solvers", "The TV flow's steps").
STEP_ACCURACY = 8e-3
#: The iteration rule of :meth:`FlowSteps.iterations`: an implicit step of size ``h`` that reaches the time ``t``,
#: solved by FGP to a certified RMS error ``a`` of the range ``R`` (``a`` = the solver's accuracy over the number
#: of steps), warm started from the previous step's flux, takes about ``ITER_SCALE * (h / (a R)) ** ITER_POWER *
#: pixels ** ITER_SIZE_POWER * (t / h) ** -ITER_LATER_POWER`` iterations (later steps start closer: the image is
#: flatter and the flux changes less); fitted to the iteration counts of 35 flows and spectral decompositions of
#: three grey photographs at 64 to 256 pixels a side, within 0.77-1.30x of each run's count (results page "Speed
#: and accuracy of the solvers", "Time estimates before the work").  An image of ``C`` coupled channels takes
#: ``C ** -ITER_CHANNEL_POWER`` times as many (two colour photographs against their grey versions: 0.45-0.76).
ITER_SCALE = 1.32
#: See ``ITER_SCALE``.
ITER_POWER = 0.675
#: See ``ITER_SCALE``.
ITER_SIZE_POWER = 0.229
#: See ``ITER_SCALE``.
ITER_LATER_POWER = 0.335
#: See ``ITER_SCALE``.
ITER_CHANNEL_POWER = 0.538


def check_times(times) -> list[float]:
    """Validate flow times: finite, non-negative, non-decreasing; returns floats.

    Examples
    --------
    >>> from pdeflow.tv.steps import check_times
    >>> check_times(0.5), check_times([0.1, 0.1, 0.3])
    ([0.5], [0.1, 0.1, 0.3])
    """
    if isinstance(times, (int, float)):
        times = [times]
    t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if t.numel() == 0:
        raise UserInputError("times must contain at least one time")
    if not bool(torch.isfinite(t).all()):
        raise UserInputError(f"times must be finite, got {t.tolist()}")
    if bool((t < 0).any()):
        raise UserInputError(f"times must be >= 0, got {t.tolist()}")
    if bool((t[1:] < t[:-1]).any()):
        raise UserInputError(f"times must be sorted in non-decreasing order, got {t.tolist()}")
    return t.tolist()


def step_schedule(times: list[float], dt: float) -> list[tuple[int, float]]:
    """The steps of an explicit ``dt`` to each time: the full steps on the grid ``k dt`` below it, and the partial
    step from there (0 on the grid).

    Parameters
    ----------
    times : list of float
        Checked times (:func:`check_times`).
    dt : float
        The step, ``> 0``.

    Returns
    -------
    list of (int, float)
        For each time, the number of full steps and the remaining partial step.

    Examples
    --------
    >>> from pdeflow.tv.steps import step_schedule
    >>> step_schedule([0.4, 0.5], 0.2)
    [(2, 0.0), (2, 0.09999999999999998)]
    """
    out = []
    for t in times:
        n = int(math.floor(t / dt + 1e-9))
        rem = t - n * dt
        out.append((n, rem if rem > 1e-12 * max(1.0, t) else 0.0))
    return out


@dataclass(frozen=True)
class FlowSteps:
    """The implicit steps of a TV flow and the accuracy they buy (:func:`flow_steps`).

    Attributes
    ----------
    times : tuple of float
        The requested times.
    steps : tuple of tuple of float
        For each requested time, the sizes of the steps the trajectory takes from the previous time (from 0 for
        the first); with an explicit ``dt`` a time off the grid ``k dt`` ends in a partial step that does not
        advance the trajectory, which is not listed here but counted in ``n_steps``.
    n_steps : int
        The number of implicit steps (ROF solves) of the flow.
    dt : float
        The largest step.
    time_error : float
        The estimated root-mean-square error of the time stepping at the requested times, against the exact
        flow, as a fraction of the image's range ``R``: the largest over the times ``t`` of ``TIME_ERROR * h /
        sqrt(t R)``, ``h`` the step that reaches ``t`` (a rule fitted to photographs, not a certificate).
    solver_accuracy : float or None
        The certified RMS error of the solver at every requested time, against the exact implicit steps, as a
        fraction of the range (``None``: the solver stops at a relative gap ``tol`` instead).
    accuracy : float or None
        ``time_error + solver_accuracy``: the estimated RMS error at the requested times against the exact
        flow, as a fraction of the range (``None`` where ``solver_accuracy`` is).

    Examples
    --------
    >>> from pdeflow.tv.steps import flow_steps
    >>> s = flow_steps([0.1, 0.5, 2.0])
    >>> s.n_steps, s.dt
    (8, 0.375)
    """

    times: tuple
    steps: tuple
    n_steps: int
    dt: float
    time_error: float
    solver_accuracy: float | None
    accuracy: float | None

    def describe(self) -> str:
        """The steps and what they buy, in one line (what ``pdeflow flow`` prints)."""
        sizes = {round(h, 12) for hs in self.steps for h in hs}
        dt = f"dt {self.dt:.3g}" if len(sizes) <= 1 else f"dt up to {self.dt:.3g}"
        solver = ("solver: a relative gap tol per step" if self.solver_accuracy is None
                  else f"solver {self.solver_accuracy:.2g} certified")
        total = "" if self.accuracy is None else f"RMS error about {self.accuracy:.2g} of the range ("
        return (f"{self.n_steps} implicit steps ({dt}); {total}time steps {self.time_error:.2g} estimated, "
                f"{solver}{')' if total else ''}")

    def sizes(self) -> list[tuple[float, float]]:
        """Every implicit step as ``(size, the time it reaches)``, in order: the listed ``steps``, and with an
        explicit ``dt`` the partial step of each time off its grid.

        Examples
        --------
        >>> from pdeflow.tv.steps import flow_steps
        >>> [(round(h, 12), round(t, 12)) for h, t in flow_steps([0.5], dt=0.2).sizes()]
        [(0.2, 0.2), (0.2, 0.4), (0.1, 0.5)]
        """
        out, t = [], 0.0
        for h in (h for hs in self.steps for h in hs):
            t += h
            out.append((h, t))
        if len(out) < self.n_steps:
            out += [(r, t) for (_, r), t in zip(step_schedule(list(self.times), self.dt), self.times) if r > 0]
        return out

    def iterations(self, pixels: int, data_range: float = 1.0, max_iter: int = 20000,
                   channels: int = 1) -> float | None:
        """The estimated number of FGP iterations of the whole flow (all its steps) on an image of ``pixels``
        pixels (per channel), ``channels`` coupled channels and range ``data_range``, each step capped at
        ``max_iter``; None where the solver stops at a relative gap (``solver_accuracy`` None).

        The rule ``ITER_SCALE``, fitted to photographs: an estimate, within a factor of about two of the
        counts it was fitted to, not a bound.

        Examples
        --------
        >>> from pdeflow.tv.steps import flow_steps
        >>> one = flow_steps([1.0], dt=0.1, accuracy=1e-3).iterations(256 * 256)
        >>> two = flow_steps([2.0], dt=0.1, accuracy=2e-3).iterations(256 * 256)  # 2x the steps, each as hard
        >>> 1.5 < two / one < 2      # the later steps take fewer
        True
        """
        if self.solver_accuracy is None or self.n_steps == 0:
            return None if self.solver_accuracy is None else 0.0
        a = self.solver_accuracy / self.n_steps * data_range
        size = max(int(pixels), 1) ** ITER_SIZE_POWER * max(int(channels), 1) ** -ITER_CHANNEL_POWER
        return sum(min(float(max_iter), ITER_SCALE * (h / a) ** ITER_POWER * size * (t / h) ** -ITER_LATER_POWER)
                   for h, t in self.sizes())


def default_accuracy(accuracy: float | None, dt: float | None) -> float:
    """``accuracy`` as :func:`tv_flow` takes it: a number in (0, 1) as given; None, the default of a call without
    ``dt`` (``STEP_ACCURACY``, time steps and solver) or with one (``FLOW_ACCURACY``, the solver's).

    Examples
    --------
    >>> from pdeflow.tv.steps import default_accuracy
    >>> default_accuracy(None, None), default_accuracy(None, 0.01), default_accuracy(2e-3, None)
    (0.008, 0.001, 0.002)
    """
    if accuracy is None:
        return STEP_ACCURACY if dt is None else FLOW_ACCURACY
    return check_accuracy(accuracy)


def flow_steps(times, *, dt: float | None = None, accuracy: float | None = None, data_range: float = 1.0,
               spacing: float = 1.0, tol: float | None = None) -> FlowSteps:
    """The implicit steps :func:`tv_flow` takes to ``times``, and the accuracy they buy.

    Parameters
    ----------
    times : sequence of float
        Non-decreasing, ``>= 0`` (as :func:`tv_flow` takes them).
    dt : float, optional
        An explicit step, as :func:`tv_flow`'s ``dt``.  Default None: the steps from ``accuracy``.
    accuracy : float, optional
        As :func:`tv_flow`'s: without ``dt``, the RMS error at the requested times to aim for, as a fraction of
        the range (default ``STEP_ACCURACY``, 8e-3); ``TIME_SHARE`` of it goes to the time steps (estimated)
        and the rest to the solver (certified).  With ``dt``: the solver's alone (default ``FLOW_ACCURACY``,
        1e-3).
    data_range : float
        ``max - min`` of the image (of the batch's image of smallest positive range), ``> 0``.
    spacing : float
        The smallest grid spacing (time is a length; the steps scale with it).
    tol : float, optional
        :func:`tv_flow`'s ``tol``: the solver then stops at a relative gap and certifies no accuracy.

    Returns
    -------
    FlowSteps

    Notes
    -----
    Without ``dt`` the steps land on the requested times: each interval between successive times ``s < t``
    (from 0) is cut into the fewest equal steps of at most ``h = TIME_SHARE * accuracy * sqrt(t R) /
    TIME_ERROR``, ``R = data_range * spacing``: longer steps later, where the flow is smoother and the errors
    of earlier steps have faded.  The rule rests on implicit Euler's error being about proportional to the
    step in the RMS norm (the flow is only Lipschitz in time: regions merge and split at events inside
    steps) and on the constant ``TIME_ERROR`` fitted to photographs against a fine-step reference (results
    page "Speed and accuracy of the solvers", "The TV flow's steps"); it is an estimate, not a certificate.
    Where the flow is linear in time (an eigenfunction such as a disk, until it meets its background), any
    step that lands on the requested times is exact.

    Examples
    --------
    >>> from pdeflow.tv.steps import flow_steps
    >>> flow_steps([0.1, 0.5, 2.0]).steps[1]
    (0.2, 0.2)
    >>> flow_steps([0.5], dt=0.2).n_steps         # two steps of 0.2, and a partial one of 0.1
    3
    """
    times = check_times(times)
    accuracy = default_accuracy(accuracy, dt)
    if not (isinstance(data_range, (int, float)) and math.isfinite(data_range) and data_range > 0):
        raise UserInputError(f"data_range must be a finite number > 0, got {data_range!r}")
    scale = float(data_range) * float(spacing)

    def rate(t):        # the estimated relative RMS error at time t per unit of the last interval's step
        return TIME_ERROR / math.sqrt(t * scale)

    steps, prev, time_error = [], 0.0, 0.0
    if dt is not None:
        schedule = step_schedule(times, dt)
        k = 0
        for (n_full, _), t in zip(schedule, times):
            steps.append((float(dt),) * (n_full - k))
            k = n_full
            time_error = max(time_error, rate(t) * dt if t > 0 else 0.0)
        n_steps = schedule[-1][0] + sum(1 for _, r in schedule if r > 0)
        solver = None if tol is not None else accuracy
    else:
        for t in times:
            m = math.ceil(rate(t) * (t - prev) / (TIME_SHARE * accuracy) - 1e-9) if t > prev else 0
            steps.append(((t - prev) / m,) * m if m else ())
            time_error = max(time_error, rate(t) * (t - prev) / m if m else 0.0)
            prev = t
        n_steps = sum(len(s) for s in steps)
        solver = None if tol is not None else (1 - TIME_SHARE) * accuracy
    h = float(dt) if dt is not None else max((x for s in steps for x in s), default=0.0)
    return FlowSteps(times=tuple(times), steps=tuple(steps), n_steps=n_steps, dt=h, time_error=time_error,
                     solver_accuracy=solver, accuracy=None if solver is None else time_error + solver)


def seconds_per_iteration(x: torch.Tensor, solver: str = "fgp", iterations: int = 30) -> float:
    """The seconds one iteration of ``solver`` takes per value of ``x`` ``(C, H, W)`` or ``(B, C, H, W)``,
    timed on a crop of at most 128 x 128 pixels of random values with its channels, in float32 (the
    iterations of :func:`tv_flow`'s default precision) on its device: the best of three runs of
    ``iterations`` iterations and one gap check (a flow's steps check rarely), cheap next to a flow.  On a CPU
    each run counts the smaller of its wall and CPU time, the time of a machine the flow
    has to itself: CPU time on one thread (a busy machine's other processes do not count), wall time on several.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.steps import seconds_per_iteration
    >>> seconds_per_iteration(torch.rand(1, 64, 64)) > 0
    True
    """
    c = x.shape[-3] if x.dim() >= 3 else 1
    h, w = min(int(x.shape[-2]), 128), min(int(x.shape[-1]), 128)
    f = torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(0)).to(x.device)
    lam = torch.full((1,), 0.1, device=x.device)
    zero = torch.zeros(1, dtype=torch.float64, device=x.device)      # a gap never reached: every iteration runs
    best = math.inf
    for _ in range(3):      # the best: a run the machine's other work interrupted says nothing of the flow
        t0, c0 = time.perf_counter(), time.process_time()
        r, _ = solve(f, lam, method=solver, tol=None, atol=zero, max_iter=iterations, p0=None, channelwise=False,
                     check_every=iterations, trusted=True)
        if f.is_cuda:
            torch.cuda.synchronize()
            secs = time.perf_counter() - t0
        else:   # the time of an unloaded machine: CPU time on one thread (other processes do not count), the
            secs = min(time.perf_counter() - t0, time.process_time() - c0)  # wall time on several
        best = min(best, secs / max(int(r.iterations.max()), 1))
    return best / f.numel()


def estimate_seconds(plan: FlowSteps, x: torch.Tensor, *, solver: str = "fgp", compile: bool = False,
                     spacing=None, max_iter: int = 20000) -> float | None:
    """The time the flow ``plan`` of the image ``x`` ``(C, H, W)`` will take, estimated before it starts: the
    iterations of :meth:`FlowSteps.iterations` times the values of ``x`` times :func:`seconds_per_iteration`.

    Parameters
    ----------
    plan : FlowSteps
        The steps (:func:`flow_steps`, :func:`~pdeflow.tv.spectral_steps`).
    x : Tensor, shape (C, H, W) or (B, C, H, W)
        The image as the flow takes it (scaled, on its device).
    solver, compile, spacing, max_iter : optional
        As :func:`~pdeflow.tv.tv_flow`'s.

    Returns
    -------
    float or None
        Seconds; None where the rule does not apply: another solver than FGP, compiled iterations, a volume or
        a spacing, or a relative gap ``tol`` instead of an accuracy.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.steps import estimate_seconds, flow_steps
    >>> estimate_seconds(flow_steps([0.1, 0.5, 2.0]), torch.rand(1, 64, 64)) > 0
    True
    """
    if solver != "fgp" or compile or spacing is not None or x.dim() not in (3, 4):
        return None
    rng = float(x.max() - x.min())
    its = plan.iterations(int(x.shape[-2]) * int(x.shape[-1]), rng if rng > 0 else 1.0, max_iter, int(x.shape[-3]))
    if its is None:
        return None
    return its * x.numel() * seconds_per_iteration(x, solver)
