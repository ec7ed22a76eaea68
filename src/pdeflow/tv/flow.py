"""The total variation flow ``u_t = div(grad u / |grad u|)`` (Neumann boundary).

The reference scheme ("model-driven approach", Grossmann et al. (2022) §2.2) takes implicit
steps, each an ROF problem solved to a relative duality gap ``tol`` and
warm-started from the previous step's dual field: implicit Euler (the default),
``u_{k+1} = rof(u_k, h)``, or BDF2,
``u_{k+1} = rof((4 u_k - u_{k-1}) / 3, 2h/3)``.  The dual field ``p`` of a step
gives the time derivative for free, ``(u_{k+1} - u_k) / h = div(p)`` (Euler) or
``(3 u_{k+1} - 4 u_k + u_{k-1}) / (2h) = div(p)`` (BDF2), with ``|p| <= 1``: it is
the flux ``phi`` of the TV flow's characterisation used by TVflowNET.  An image flat
enough to reach its mean within a step takes that step exactly, without iterating
(the extinction of :func:`~pdeflow.tv.rof`).

Two regularised schemes are offered for comparison only: ``"explicit"``
(forward Euler on ``div(grad u / sqrt(|grad u|^2 + eps^2))``, with as many
sub-steps as stability needs) and ``"lagged"`` (lagged diffusivity, one linear
solve per step).

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from typing import Sequence

import torch

from .. import ops
from ..errors import UserInputError
from ..linalg import cg
from ..ops import div, grad, gradient_norm
from ..progress import progress_bar
from ..threads import auto_threads
from ._accuracy import OWN_PRIMAL, data_range, gap_targets
from ._checks import ConvergenceWarning, check_tol, short_message, working_dtype
from ._grid import PLAIN, Grid, make_grid
from ._implicit import differentiable
from ._rof_methods import DUAL_METHODS
from .rof import CHECK_EVERY, ND_METHODS, ROF_METHODS, solve, solve_auto
from .steps import check_times, default_accuracy, flow_steps, step_schedule

__all__ = ["tv_flow", "FLOW_METHODS", "FLOW_SCHEMES", "FLOW_TOL", "flow_result"]

FLOW_METHODS = ("implicit", "explicit", "lagged")
FLOW_SCHEMES = ("euler", "bdf2")
#: tv_flow evolves images of at least this many values (C H W: 256 x 256 grey) one at a time, smaller ones as
#: one batch (the results page "Speed and accuracy of the solvers", "Smaller choices in the code", says why).
ALONE_ELEMENTS = 65536
#: The relative duality gap of each implicit step where ``tol`` is not given and a derivative is asked for
#: (the implicit derivative reads which pixels are flat), and the relative CG residual of ``"lagged"``.
FLOW_TOL = 3e-6


@ops.follows_layout_rule("u0")
@auto_threads
def tv_flow(
    u0: torch.Tensor,
    times: Sequence[float] | torch.Tensor,
    *,
    dt: float | None = None,
    tol: float | None = None,
    accuracy: float | None = None,
    method: str = "implicit",
    scheme: str = "euler",
    solver: str = "fgp",
    max_iter: int = 20000,
    check_every: int | None = None,
    eps: float = 0.05,
    channelwise: bool = False,
    return_ut: bool = False,
    return_dual: bool = False,
    progress: bool = False,
    compile: bool = False,
    ndim: int | None = None,
    spacing=None,
    precision: str = "auto",
):
    """Evolve ``u0`` by the TV flow and return it at the requested times.

    Parameters
    ----------
    u0 : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Initial images; intensities taken as given (the flow is one-homogeneous:
        ``tv_flow(c*u0, t) = c*tv_flow(u0, t/c)``).  A batch is evolved as one,
        except that images of ``ALONE_ELEMENTS`` (65,536) values or more, such
        as 256 x 256 grey, are evolved one at a time (faster: their steps stop
        on their own, and their arrays stay in cache).
    times : sequence of float
        Non-decreasing, ``>= 0``, in PDE time (unit pixel spacing).  A time off
        the grid ``k*dt`` is reached by a final partial step of exactly the
        remainder from the last grid point (no interpolation); the trajectory
        itself stays on the grid.
    dt : float, optional
        Default None: the steps are chosen from ``accuracy`` and land on the requested times (each interval
        between successive times cut into equal steps, longer ones later; :func:`~pdeflow.tv.steps.flow_steps`
        gives them and the accuracy they buy without running the flow, ``progress=True`` reports the time after
        the first).
        A float ``> 0`` (PDE time, unit pixel spacing): every step of this size on the grid ``k*dt``, as
        before (the default was 0.0016).  The error is first
        order in ``dt`` in the max norm for either scheme (the flow is only
        Lipschitz in time: pixel-sized regions merge and split at events inside
        steps, all the time and all over an image): about ``0.5 * dt``
        (intensity units) at ``t = 1`` on natural images in [0, 5], so about
        9e-4 at ``dt=0.0016`` (README, "Accuracy and speed of the reference").
        In the RMS norm it is smaller and fades with time: about
        ``TIME_ERROR * dt / sqrt(t R)`` of the range ``R`` (results page "Speed
        and accuracy of the solvers", "The TV flow's steps").
    tol : float, optional
        Relative duality gap of each implicit step (see :func:`~pdeflow.tv.rof`);
        for ``"lagged"`` the relative CG residual (default there 3e-6).  Default
        None: each implicit step stops at a gap set by ``accuracy``; with
        ``u0`` requiring grad, at 3e-6.  An inexact step lags behind
        its warm start (the previous step's flux), and that error adds to the
        time step's and grows as ``dt`` shrinks (more steps, each solved to a
        gap relative to a smaller objective): 3e-6 costs no accuracy at
        ``dt=0.0016`` (5e-6 costs up to 2e-4, 1e-5 up to 7e-4); 1e-5 suffices
        for ``dt >= 0.005``.  About ``2e-3 * dt`` for images in [0, 5].
    accuracy : float, optional
        The root-mean-square error of ``u`` at every requested time, as a
        fraction of the range of ``u0``.  Without ``dt``: against the exact TV
        flow (default ``STEP_ACCURACY``, 8e-3, about two 8-bit steps; it was
        1e-3 of the solver alone when ``dt`` had a default); ``TIME_SHARE``
        (half) of it goes to the time steps (estimated by the rule
        ``TIME_ERROR``, fitted to photographs, not certified) and the rest
        to the solver (certified, as below).  With ``dt``, used when ``tol`` is
        None, for ``method="implicit"``: the certified error against the exact
        implicit scheme with these steps alone (default ``FLOW_ACCURACY``,
        1e-3).  Each of the ``n`` steps is solved
        to a duality gap that certifies an RMS error of ``accuracy / n`` times
        the range (:func:`~pdeflow.tv.rof`'s rule; without ``dt``, the solver's
        share over ``n``): an implicit step is a
        proximal map, which is non-expansive, so the errors of the steps add up
        at most.
    method : {"implicit", "explicit", "lagged"}
        ``"implicit"`` is the reference; the others regularise with ``eps``.
    scheme : {"euler", "bdf2"}
        Time stepping of ``"implicit"``.  ``"euler"`` (default): implicit Euler,
        ``u_{k+1} = rof(u_k, h)``.  ``"bdf2"``: the second-order backward
        differentiation formula, also one ROF problem per step,
        ``u_{k+1} = rof((4 u_k - u_{k-1}) / 3, 2h/3)`` (variable-step form for a
        final partial step; the first step is implicit Euler).  Both keep the
        mean, are one-homogeneous and give ``u_t = div(p)`` with ``|p| <= 1``;
        BDF2 is exact wherever the trajectory is linear in time (eigenfunctions)
        and its steps converge in fewer iterations, but on natural images its max
        error is not reliably below Euler's at the same ``dt`` (see the results page
        "Speed and accuracy of the solvers"): it is not the default.
    solver : str
        ROF method of the implicit steps (one of ``ROF_METHODS``).
    max_iter : int
        Iteration cap of each inner solve; steps that reach it short of ``tol``
        raise one :class:`~pdeflow.tv.ConvergenceWarning` per call.
    check_every : int, optional
        Iterations between duality-gap evaluations of each inner solve near its target (as in
        :func:`~pdeflow.tv.rof`, whose default it shares).
    eps : float
        Regularisation of ``|grad u|`` for ``"explicit"`` and ``"lagged"``.
    channelwise : bool
        Colour: False couples channels (vectorial TV), True treats them apart.
    return_ut : bool
        Also return ``u_t`` at each time: ``div(p)`` of the step that reached
        it (that step's difference quotient: ``(u_{k+1} - u_k) / h`` for Euler,
        ``(3 u_{k+1} - 4 u_k + u_{k-1}) / (2h)`` for BDF2; at ``t = 0`` the
        Euler quotient of a first step of size ``dt``).
    return_dual : bool
        Also return the flux ``p`` with ``u_t = div(p)`` and ``|p| <= 1``
        (implicit) at each time.
    progress : bool
        Show a progress bar over the time steps and, in a flow of more than 10,
        one line after the first step with the time it took and the estimate of
        the whole flow from it.
    compile : bool
        Run the FGP iterations of the implicit steps (``solver="fgp"``) as
        kernels compiled by ``torch.compile`` (see :func:`~pdeflow.tv.rof`): the
        same flow up to round-off, about twice as fast per iteration on a CPU
        core, after a one-time compilation per process and image shape (tens of
        seconds; PyTorch caches it on disk).  For long flows and repeated calls.
        2-D with unit spacing only (ignored otherwise).
    ndim : {2, 3}, optional
        ``3``: ``u0`` is a volume ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D,
        H, W)`` and the flow is the 3-D one (``method="implicit"``, ``solver``
        one of ``ND_METHODS``).  Default 2, or 3 with a 3-element ``spacing``.
    spacing : float or sequence, optional
        Grid spacing ``(dy, dx)`` or ``(dz, dy, dx)``, ``> 0`` (default unit):
        the flow of the discrete TV ``prod(h) sum |grad_h u|`` (see
        :func:`~pdeflow.tv.rof`), with ``t`` in units of length (intensity
        falls as ``t`` times surface / volume).  ``method="implicit"`` only.
    precision : {"auto", "float64", "input"}
        The dtype the flow is computed in (see :func:`~pdeflow.tv.rof`):
        ``"auto"`` (default), the trajectory held in float64 and each step
        iterated in float32 and certified in float64; ``"float64"``: every
        iteration in float64; the result (and its gradient) returned in
        ``u0``'s dtype; ``"input"``: ``u0``'s dtype (float32 for half
        precisions).

    Returns
    -------
    u : Tensor, shape (len(times), *u0.shape)
    u_t : Tensor, shape (len(times), *u0.shape), if ``return_ut``
    p : Tensor, shape (len(times), *u0.shape[:-2], 2, H, W), if ``return_dual``
        (volumes: ``(len(times), *u0.shape[:-3], 3, D, H, W)``)

    Notes
    -----
    Differentiable with respect to ``u0`` and ``times`` (a tensor with
    ``requires_grad``) for ``method="implicit"``: each step is a differentiable
    :func:`~pdeflow.tv.rof` (implicit differentiation; see its Notes for the
    element of the generalised Jacobian), so memory grows with the number of
    steps, not with the solver's iterations.  A time ``t`` enters through the
    size of the step that reaches it: off the grid, the final partial step; on
    the grid ``n dt``, the last step (the left derivative); at ``t = 0``, the
    ``u_t`` of a first step.  ``u_t`` has the value ``div(p)`` and the derivative
    of the step's quotient; the flux ``p`` carries no gradient.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import tv_flow
    >>> u0 = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4, dtype=torch.float64)
    >>> u = tv_flow(u0, [0.0, 0.5], dt=0.1)
    >>> u.shape, u[1, 0]
    (torch.Size([2, 4, 4]), tensor([0.2500, 0.2500, 0.7500, 0.7500], dtype=torch.float64))

    A volume: a slab two voxels thick falls at the rate (surface) / (volume), 1/2 at unit
    spacing and 1/4 with voxels of depth 2 (time and ``lam`` are lengths), mass kept:

    >>> v = torch.zeros(4, 4, 4, dtype=torch.float64)
    >>> v[:2] = 1.0
    >>> tv_flow(v, [0.5], dt=0.25, ndim=3, tol=1e-12)[0, :, 0, 0]
    tensor([0.7500, 0.7500, 0.2500, 0.2500], dtype=torch.float64)
    >>> tv_flow(v, [0.5], dt=0.25, spacing=(2.0, 1.0, 1.0), tol=1e-12)[0, :, 0, 0]
    tensor([0.8750, 0.8750, 0.1250, 0.1250], dtype=torch.float64)
    """
    grid = make_grid(ndim, spacing)
    u0 = ops.check_image(u0, "u0", ndim=grid.ndim)
    in_dtype = u0.dtype
    u0 = u0.to(working_dtype(in_dtype, precision))   # computed in the working dtype (differentiably)
    if dt is not None and not (isinstance(dt, (int, float)) and not isinstance(dt, bool) and math.isfinite(dt)
                               and dt > 0):
        raise UserInputError(f"dt must be None (steps from accuracy) or a finite number > 0, got {dt!r}")
    if method not in FLOW_METHODS:
        raise UserInputError(f"method must be one of {FLOW_METHODS}, got {method!r}")
    if scheme not in FLOW_SCHEMES:
        raise UserInputError(f"scheme must be one of {FLOW_SCHEMES}, got {scheme!r}")
    if solver not in ROF_METHODS:
        raise UserInputError(f"solver must be one of {ROF_METHODS}, got {solver!r}")
    if not grid.plain and method != "implicit":
        raise UserInputError(f"method={method!r} runs on 2-D images with unit spacing only; for ndim=3 or a "
                             "spacing use method='implicit'")
    if not grid.plain and solver not in ND_METHODS:
        raise UserInputError(f"solver={solver!r} runs on 2-D images with unit spacing only; for ndim=3 or a "
                             f"spacing use one of {ND_METHODS}")
    if method != "implicit" and not (eps > 0):
        raise UserInputError(f"eps must be > 0 for method {method!r}, got {eps}")
    times_f = check_times(times)
    times_t = times if isinstance(times, torch.Tensor) and times.requires_grad else None
    if times_t is not None and times_t.device.type == "meta":
        raise UserInputError("times is on the 'meta' device, which holds no values")
    need_grad = torch.is_grad_enabled() and (u0.requires_grad or times_t is not None)
    if times_t is not None and method != "implicit":
        # the times enter through the sizes of the implicit steps; the regularised schemes would drop their
        # gradient silently
        raise UserInputError(f"times requires grad, but method={method!r} is not differentiable with respect to "
                             "the times; use method='implicit', or pass the times as floats")
    if need_grad and method == "lagged":
        raise UserInputError("method='lagged' is not differentiable (its CG solve is not); use 'implicit' "
                             "(implicit differentiation) or 'explicit'")
    accuracy = default_accuracy(accuracy, dt)
    if tol is None and (need_grad or method != "implicit"):
        tol = FLOW_TOL
    if method == "implicit" and tol is not None:
        check_tol(tol, torch.float64 if precision == "auto" else u0.dtype, "tv_flow")
    x = u0.reshape((1,) * (grid.ndim + 2 - u0.dim()) + tuple(u0.shape))
    B = x.shape[0]
    plan = flow_steps(times_f, dt=dt, accuracy=accuracy, data_range=_smallest_range(x), spacing=min(grid.spacing),
                      tol=tol)
    if dt is None:
        schedule = [(sizes, 0.0, t) for sizes, t in zip(plan.steps, times_f)]
        if method == "implicit" and tol is None:
            accuracy = plan.solver_accuracy        # the solver's share; the time steps take the rest
        dt = next((h for hs in plan.steps for h in hs), plan.dt) or 1.0    # u_t at t = 0: a first step
    else:
        schedule = [(sizes, r, n * dt) for sizes, (n, r) in zip(plan.steps, step_schedule(times_f, dt))]
    step = _STEPPERS[method]
    stats = {"steps": 0, "short": 0, "gap": 0.0, "at_max_iter": 0}
    opts = dict(tol=tol, solver=solver, max_iter=max_iter, check_every=check_every, eps=eps,
                channelwise=channelwise, stats=stats, compile=compile, grad=need_grad, grid=grid,
                auto=precision == "auto")
    bdf2 = method == "implicit" and scheme == "bdf2"

    # Large images one at a time: each step's arrays then stay in cache, and no image waits for (or is
    # copied out of the working batch around) the others' stopping tests at every step.
    per_chunk = 1 if x[0].numel() >= ALONE_ELEMENTS else B
    starts = range(0, B, per_chunk)
    # a step's u is the dual method's own primal f + lam div p: its gap certifies it at OWN_PRIMAL times the target
    # any candidate needs (rof's default keeps that general target, on which its ACCURACY is set)
    own = OWN_PRIMAL if solver in DUAL_METHODS else 1.0
    n_steps = plan.n_steps
    with progress_bar(total=n_steps * len(starts), enabled=progress, desc="TV flow", unit="step") as bar:
        bar = _FirstStepEta(bar, n_steps * len(starts)) if progress else bar
        parts = []
        for i in starts:
            if tol is None:     # each step's share of the accuracy, from the chunk's range (the flow keeps it)
                opts["atol"] = own * gap_targets(x[i:i + per_chunk], accuracy / max(n_steps, 1))
            parts.append(_evolve(x[i:i + per_chunk], schedule, step, dt, bdf2, return_ut, return_dual, opts, bar,
                                 times_t=None if times_t is None else times_t.to(x.dtype).reshape(-1)))
    us, uts, ps = (None if parts[0][j] is None else torch.cat([q[j] for q in parts], 1) for j in range(3))

    if stats["short"]:
        if tol is None:
            message = (f"tv_flow: {stats['short']} of {stats['steps']} implicit steps stopped at max_iter={max_iter} "
                       f"short of accuracy={accuracy:g} (largest relative duality gap reached: {stats['gap']:.2g}); "
                       "raise max_iter or accuracy")
        else:
            message = short_message("tv_flow", stats["short"], stats["steps"], "implicit steps", stats["gap"], tol,
                                    max_iter, torch.float64 if precision == "auto" else u0.dtype,
                                    at_max_iter=stats["at_max_iter"])
        warnings.warn(message, ConvergenceWarning, stacklevel=4)  # past the auto_threads and layout wrappers
    out = flow_result(us, tuple(u0.shape), uts, ps, ndim=grid.ndim)
    if u0.dtype == in_dtype:
        return out
    return out.to(in_dtype) if isinstance(out, torch.Tensor) else tuple(o.to(in_dtype) for o in out)   # as given


def _smallest_range(x: torch.Tensor) -> float:
    """The smallest positive ``max - min`` over the images of ``x`` ``(B, ...)`` (1.0 where all are flat)."""
    r = data_range(x)
    r = r[torch.isfinite(r) & (r > 0)] if r.device.type != "meta" else r.new_ones(1)
    return float(r.min()) if r.numel() else 1.0


class _FirstStepEta:
    """A progress bar that also writes, once the first step is done, the time it took and the estimate of the
    whole flow from it (the time left before the bar has a rate to show; in a log, before the first 10 %)."""

    def __init__(self, bar, total: int):
        self.bar, self.total, self.t0, self.done = bar, total, time.perf_counter(), 0

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.done += n
        if self.done == n and self.total > 10:     # up to 10 steps the bar's first report comes as soon
            secs = time.perf_counter() - self.t0
            line = (f"TV flow: the first of {self.total} implicit steps took {secs:.2g} s: about "
                    f"{_seconds(secs * self.total)} in all")
            write = getattr(self.bar, "write", None)     # tqdm's, which keeps its bar whole
            write(line, file=sys.stderr) if write is not None else print(line, file=sys.stderr, flush=True)


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def _evolve(x, schedule, step, dt, bdf2, return_ut, return_dual, opts, bar, times_t=None):
    """The flow of the batch ``x`` (B, C, H, W) at the schedule's times: ``(u, u_t or None, p or None)``,
    each stacked over the times (time-major).

    ``schedule`` has one entry per requested time, ``(sizes, rem, t_grid)``: the steps that advance the
    trajectory from the previous time, a final partial step ``rem`` (0: none) that does not advance it, and
    the time ``t_grid`` the trajectory has reached.  ``dt`` is the step of ``u_t`` at ``t = 0`` (the first).
    With ``opts["grad"]`` every implicit step is a differentiable ROF solve (implicit differentiation, see
    :func:`~pdeflow.tv.rof`); ``times_t`` (K,), when given, are the times as a tensor to differentiate
    with respect to: the step reaching each time takes its size from it (a time the trajectory lands on:
    its last step, of size ``t - (t_grid - h)``, the left derivative; ``t = 0``: the right one, ``u_t`` of a
    first step).
    """
    grid = opts.get("grid", PLAIN)
    B, C = x.shape[:2]
    grad = opts.get("grad", False)
    div_ = div if grid.plain else grid.div
    stats = opts["stats"]
    stats.pop("last", None)   # the previous chunk's iteration count says nothing about this one
    us, uts, ps = [], [], []
    u, p = x, x.new_zeros(B, C, grid.ndim, *x.shape[2:])
    prev = None  # (u at the previous grid point, step from it), for BDF2
    before = None  # (u, p, prev, h) before the last full step, for a time on the grid with times_t
    k = 0  # full steps taken
    for i, (sizes, rem, t_grid) in enumerate(schedule):
        for h in sizes:
            before = (u, p, prev, h)
            u_new, p = step(u, p, h, prev=prev, **opts)
            prev, u = ((u, h) if bdf2 else None), u_new
            k += 1
            bar.update(1)
        ht = None if times_t is None else times_t[i] - t_grid
        if rem > 0:
            v, q = step(u, p, rem, prev=prev, h_t=ht, **opts)
            bar.update(1)
        elif k == 0 and (return_ut or return_dual or times_t is not None):
            v, q = x, step(x, p, dt, prev=None, **opts)[1]
            if times_t is not None:     # u(t) = u0 + t u_t(0) to first order
                v = x + (ht - ht.detach()) * div_(q).detach()
        else:
            v, q = u, p
            if times_t is not None and k > 0:
                ub, pb, prevb, hb = before
                v = step(ub, pb, hb, prev=prevb, h_t=ht + hb, solution=(u, p), **opts)[0].clone()
        us.append(v)
        if return_ut:
            ut = div_(q)
            if grad and stats.get("ut") is not None:
                # the value div(q); the derivative of (v - f) / lam, equal to it at the solution
                d = stats["ut"]
                ut = ut.detach() + (d - d.detach())
            uts.append(ut)
        if return_dual:
            ps.append(q.detach() if grad else q)
    return torch.stack(us), torch.stack(uts) if return_ut else None, torch.stack(ps) if return_dual else None


def flow_result(u: torch.Tensor, shape: tuple[int, ...], ut: torch.Tensor | None = None,
                p: torch.Tensor | None = None, *, ndim: int = 2):
    """What a TV flow returns (:func:`tv_flow`, :func:`pdeflow.tvflownet.flow`): ``u`` at the ``K`` times as
    ``(K, *shape)`` for images of ``shape``, followed by ``u_t`` ``(K, *shape)`` and the flux ``p``
    ``(K, *shape[:-2], 2, H, W)`` where they are given; ``u`` alone when neither is. The tensors may come
    in any shape of that size (time-major).  ``ndim=3``: volumes, the flux ``(K, *shape[:-3], 3, D, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.flow import flow_result
    >>> u, ut = flow_result(torch.zeros(2 * 20), (1, 4, 5), torch.zeros(2, 1, 1, 4, 5))
    >>> tuple(u.shape), tuple(ut.shape)
    ((2, 1, 4, 5), (2, 1, 4, 5))
    """
    out = [u.reshape(-1, *shape)]
    if ut is not None:
        out.append(ut.reshape(-1, *shape))
    if p is not None:
        out.append(p.reshape(-1, *shape[:-ndim], ndim, *shape[-ndim:]))
    return out[0] if len(out) == 1 else tuple(out)


# --------------------------------------------------------------------------- steppers
# Each takes (u, p, h) and returns (u after a step of size h, flux p with
# (u_new - u)/h = div(p)); p is the warm start on the way in.


def _step_problem(u, h, prev):
    """``(f, lam)`` of the implicit step of size ``h`` (a float or a 0-d tensor) from ``u``: ``v = rof(f, lam)``.

    Implicit Euler, ``(v - u) / h = div(p)``: ``(u, h)``.  Variable-step BDF2 with ``w = h / h_prev``:
    ``(v - a u + b u_prev) / mu = div(p)``, ``a = (1+w)^2/(1+2w)``, ``b = w^2/(1+2w)``,
    ``mu = h (1+w)/(1+2w)``, i.e. ``v = rof(a u - b u_prev, mu)``; ``a - b = 1`` keeps the mean.
    ``w = 1``: ``(3v - 4u + u_prev) / (2h)``.
    """
    if prev is None:
        return u, h
    u_prev, h_prev = prev
    w = h / h_prev
    a, b, lam = (1 + w) ** 2 / (1 + 2 * w), w * w / (1 + 2 * w), h * (1 + w) / (1 + 2 * w)
    if isinstance(h, torch.Tensor):
        return a * u - b * u_prev, lam
    return torch.add(u, u_prev, alpha=-b / a).mul_(a), lam


def _implicit_step(u, p, h, *, prev, tol, solver, max_iter, check_every, channelwise, stats, compile, grad=False,
                   h_t=None, solution=None, grid: Grid = PLAIN, atol=None, auto=False, **_):
    f, lam = _step_problem(u, h, prev)
    if solution is None:
        stats["steps"] += 1
        # No tied candidate (pdeflow.tv._tied): a warm-started step meets its target in a few dozen iterations,
        # about what the candidate's labelling costs, and it saved none of them (results page "Speed and
        # accuracy of the solvers")
        v, q = _solve_step(f.detach() if grad else f, lam, p, stats, tol=tol, solver=solver, max_iter=max_iter,
                          check_every=check_every, channelwise=channelwise, compile=compile, grid=grid,
                          atol=None if tol is not None else atol, auto=auto)
    else:
        v, q = solution
    if grad:
        # The solution as a differentiable function of (f, lam): implicit differentiation at it.
        if h_t is not None:
            f, lam = _step_problem(u, h_t, prev)
        v = differentiable(f, lam, v, q, tol=tol, max_iter=max_iter, channelwise=channelwise, grid=grid)
        stats["ut"] = (v - f) / (lam if isinstance(lam, torch.Tensor) else float(lam))
    return v, q


def _solve_step(f, lam, p, stats, **kw):
    # f is finite (u0 was checked, and steps keep it finite) and p feasible (the previous step's flux, or
    # zeros): no per-step checks.  The first gap check comes at 3/4 of the previous step's count (successive
    # steps take about as many, or fewer), instead of every check_every from the start.  Not just before
    # that count: a step that once took long (float32 iterations run to their round-off floor, then a few
    # in float64) would hold every later step at as many iterations before its first check.
    last = stats.get("last")
    first = None if last is None else max(kw["check_every"] or CHECK_EVERY, 3 * last // 4)
    run = solve_auto if kw.pop("auto") else solve
    r, short = run(f, lam, p0=p, method=kw.pop("solver"), first_check=first, trusted=True, **kw)
    iterated = r.iterations[r.iterations > 0]      # extinct images take no iteration
    if iterated.numel():
        stats["last"] = int(iterated.min())
    if bool(short.any()):
        stats["short"] += 1
        stats["at_max_iter"] += int(bool((r.iterations[short] >= kw["max_iter"]).any()))
        stats["gap"] = max(stats["gap"], r.gap[short].max().item())
    return r.u, r.p


def _regularised_flux(u, eps, channelwise):
    g = grad(u)
    return g / gradient_norm(g, channelwise=channelwise, eps=eps).unsqueeze(-3)


def _explicit_step(u, p, h, *, eps, channelwise, **_):
    # Stable for sub-steps s with s * 8 / eps <= 2 (diffusivity <= 1/eps); keep a margin.
    n_sub = max(1, math.ceil(h / (0.9 * eps / 4.0)))
    s = h / n_sub
    v, mean_flux = u, torch.zeros_like(p)
    for _ in range(n_sub):
        flux = _regularised_flux(v, eps, channelwise)
        v = v + s * div(flux)
        mean_flux += flux / n_sub  # so that (v - u) / h = div(mean_flux) exactly
    return v, mean_flux


def _lagged_step(u, p, h, *, eps, channelwise, tol, max_iter, **_):
    g = grad(u)
    diffusivity = 1.0 / gradient_norm(g, channelwise=channelwise, eps=eps).unsqueeze(-3)

    def apply_a(v):
        return v - h * div(diffusivity * grad(v))

    v, _ = cg(apply_a, u, u, tol=tol, max_iter=max_iter)
    return v, diffusivity * grad(v)


_STEPPERS = {"implicit": _implicit_step, "explicit": _explicit_step, "lagged": _lagged_step}
