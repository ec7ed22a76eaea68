"""Spectral TV decomposition (Gilboa 2014) on the reference TV flow.

With ``u_k = u(k*dt)`` from :func:`~pdeflow.tv.tv_flow`, ``k = 0..N+1``:

* TV transform ``phi_k = t_k * u_tt(t_k) = k*dt * (u_{k-1} - 2 u_k + u_{k+1}) / dt^2``,
  ``k = 1..N``;
* spectrum ``S(t_k) = ||phi_k||_1`` (sum over pixels and channels);
* residual ``f_r = (N+1) u_N - N u_{N+1}`` (= ``u(T) - T u_t(T)``, ``T = N dt``);
* ``u0 = sum_k phi_k dt + f_r`` exactly (the sum telescopes), whatever the
  accuracy of the flow: band filtering therefore never loses signal.

Times are PDE times of pdeflow's flow.  Gilboa's MATLAB code takes implicit
steps of size ``2*dt`` where it says ``dt`` (docs/REFERENCES.md): its 50 steps of
0.02 are ``spectral_tv(u0, dt=0.04, n_steps=50)`` here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .. import ops
from ..errors import UserInputError
from ..ops import batch_sum
from ..threads import auto_threads
from ._checks import working_dtype
from ._grid import make_grid
from .flow import tv_flow
from .steps import FlowSteps, flow_steps

__all__ = ["spectral_tv", "spectral_from_stack", "SpectralTV", "dyadic_band_edges", "spectral_steps",
           "SPECTRAL_ACCURACY"]

#: Default ``accuracy`` of :func:`spectral_tv`: the certified RMS error of every frame ``u(k dt)`` against the exact
#: implicit steps, as a fraction of the range of ``u0`` (a call of :func:`~pdeflow.tv.tv_flow` with ``dt`` defaults
#: to ``FLOW_ACCURACY``, 1e-3).  The certificate adds up the bounds of all the steps, and the frames' errors move
#: together (warm-started steps of one trajectory), so the bands' errors stay far below it: set so that the
#: README's decomposition of a 512 x 512 photograph takes seconds, not minutes; the bands' errors and the times are
#: on the results page ("Speed and accuracy of the solvers", "Spectral TV's steps"; the gaps of 2e-2 under the earlier
#: certificate, ``pdeflow.tv._accuracy.OWN_PRIMAL``).
SPECTRAL_ACCURACY = 1.4e-2


def spectral_steps(dt: float = 0.04, n_steps: int = 50, *, accuracy: float | None = None, data_range: float = 1.0,
                   spacing: float = 1.0, tol: float | None = None) -> FlowSteps:
    """The implicit steps :func:`spectral_tv` takes, and the accuracy of its frames, without running it.

    Parameters
    ----------
    dt, n_steps : float, int
        As :func:`spectral_tv`'s: the frames ``u(k dt)``, ``k = 0..n_steps + 1``, one implicit step each.
    accuracy : float, optional
        As :func:`spectral_tv`'s (default :data:`SPECTRAL_ACCURACY`): the certified RMS error of every frame
        against the exact implicit steps, as a fraction of the range.
    data_range, spacing, tol : optional
        As :func:`pdeflow.tv.steps.flow_steps`'s: the image's range, the smallest grid spacing, a relative gap
        instead of ``accuracy``.

    Returns
    -------
    FlowSteps
        ``n_steps + 1`` steps of ``dt``; ``solver_accuracy`` the frames' certified accuracy, ``time_error`` the
        estimated distance of the frames from the exact (continuous) flow, which the transform does not
        need: it is defined on the implicit Euler trajectory.

    Examples
    --------
    >>> from pdeflow.tv.spectral import spectral_steps
    >>> s = spectral_steps(0.04, 50)
    >>> s.n_steps, s.dt, s.solver_accuracy
    (51, 0.04, 0.014)
    """
    if (isinstance(n_steps, bool) or not isinstance(n_steps, (int, float)) or not math.isfinite(n_steps)
            or int(n_steps) != n_steps or n_steps < 1):
        raise UserInputError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise UserInputError(f"dt must be a finite number > 0, got {dt!r}")
    acc = SPECTRAL_ACCURACY if accuracy is None else accuracy
    return flow_steps([k * dt for k in range(int(n_steps) + 2)], dt=dt, accuracy=acc, data_range=data_range,
                      spacing=spacing, tol=tol)


def dyadic_band_edges(n_steps: int, dt: float) -> list[float]:
    """Time edges of dyadic bands ``k in [1,2), [2,4), [4,8), ...`` up to ``N``.

    The edges sit half a step between grid times so that membership is
    unambiguous; TVspecNET groups Gilboa's 50 bands this way into 5 bands
    (the residual is kept apart).

    Examples
    --------
    >>> from pdeflow.tv import dyadic_band_edges
    >>> dyadic_band_edges(50, 0.04)
    [0.02, 0.06, 0.14, 0.3, 0.62, 2.02]
    """
    edges_k = [1]
    while edges_k[-1] * 2 <= n_steps:
        edges_k.append(edges_k[-1] * 2)
    if len(edges_k) > 1 and n_steps + 1 - edges_k[-1] < edges_k[-1]:
        # A last band that is not a full octave joins its predecessor: for N = 50 the
        # bands are [1,2), [2,4), [4,8), [8,16), [16,51), TVspecNET's five.
        edges_k[-1] = n_steps + 1
    else:
        edges_k.append(n_steps + 1)
    return [(k - 0.5) * dt for k in edges_k]


@dataclass
class SpectralTV:
    """Spectral TV decomposition of a batch of images.

    Attributes
    ----------
    times : Tensor, shape (N,)
        ``t_k = k*dt``, ``k = 1..N``.
    phi : Tensor, shape (N, *u0.shape)
        TV transform.
    spectrum : Tensor, shape (N,) or (N, B) for batched input
        ``||phi_k||_1`` per image.
    residual : Tensor, shape of u0
    dt : float

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import spectral_tv
    >>> u0 = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4, dtype=torch.float64)
    >>> s = spectral_tv(u0, dt=0.1, n_steps=4)
    >>> s.phi.shape, s.filter().shape, torch.allclose(s.reconstruct(), u0)
    (torch.Size([4, 4, 4]), torch.Size([2, 4, 4]), True)
    """

    times: torch.Tensor
    phi: torch.Tensor
    spectrum: torch.Tensor
    residual: torch.Tensor
    dt: float

    def reconstruct(self) -> torch.Tensor:
        """``sum_k phi_k dt + residual``: equals ``u0`` up to round-off."""
        return self.phi.sum(0) * self.dt + self.residual

    def apply(self, response: Callable[[torch.Tensor], torch.Tensor] | torch.Tensor, *,
              residual: bool = False) -> torch.Tensor:
        """Filter with a transfer function ``H(t)``: ``sum_k H(t_k) phi_k dt`` (+ residual).

        ``response`` is a callable on the times or a tensor of ``N`` values.
        """
        h = response(self.times) if callable(response) else torch.as_tensor(response)
        h = h.to(self.phi).reshape(-1, *([1] * (self.phi.dim() - 1)))
        if h.shape[0] != self.phi.shape[0]:
            raise UserInputError(f"response must give {self.phi.shape[0]} values, got {h.shape[0]}")
        out = (h * self.phi).sum(0) * self.dt
        return out + self.residual if residual else out

    def filter(self, bands: Sequence[float] | None = None) -> torch.Tensor:
        """Band-pass images for time bands.

        Parameters
        ----------
        bands : sequence of float, optional
            Increasing band edges ``e_0 < e_1 < ... < e_m`` in time; band ``i``
            holds the ``phi_k`` with ``e_i <= t_k < e_{i+1}``.  Default: dyadic
            bands (:func:`dyadic_band_edges`).

        Returns
        -------
        Tensor, shape (m, *u0.shape)
            The bands; ``bands.sum(0) + residual`` is ``u0`` when the edges cover
            all times ``t_k``.

        Raises
        ------
        pdeflow.errors.UserInputError
            Fewer than two edges, edges not strictly increasing, or a band that
            holds none of the computed times ``t_k = k dt``, ``k = 1..N`` (the
            message names their range): such a band would be zero.
        """
        edges = dyadic_band_edges(len(self.times), self.dt) if bands is None else _band_edges(bands)
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise UserInputError(f"bands must be at least two strictly increasing time edges, got {edges}")
        t = self.times
        held = [(t >= lo) & (t < hi) for lo, hi in zip(edges, edges[1:])]
        empty = [i for i, h in enumerate(held) if not bool(h.any())]
        if empty:
            i = empty[0]
            t1, tn = float(t[0]), float(t[-1])
            raise UserInputError(f"bands: band {i}, t in [{edges[i]:g}, {edges[i + 1]:g}), holds none of the computed "
                                 f"times t_k = k * dt ({len(t)} times, dt = {self.dt:g}, from {t1:g} to {tn:g}), "
                                 f"so it would be zero; give edges within [{t1:g}, {tn:g}] that each hold a t_k, "
                                 "or compute more steps (spectral_tv's n_steps or dt)")
        return torch.stack([self._band(h) for h in held])

    def _band(self, held: torch.Tensor) -> torch.Tensor:
        """:meth:`apply` of the 0/1 response ``held``: where it holds a run of consecutive times (increasing times
        always do) the sum of those ``phi_k`` alone, not of every ``phi_k`` times its 0 or 1."""
        k = held.nonzero().reshape(-1)
        lo, hi = int(k[0]), int(k[-1]) + 1
        if hi - lo != k.numel():
            return self.apply(held.to(self.phi))
        return self.phi[lo:hi].sum(0) * self.dt


def _band_edges(bands) -> list[float]:
    """``bands`` as a list of floats (the edges :meth:`SpectralTV.filter` takes)."""
    try:
        return [float(e) for e in bands]
    except (TypeError, ValueError):
        raise UserInputError(f"bands must be a sequence of time edges (floats), got {bands!r}") from None


@ops.follows_layout_rule("u0")
@auto_threads
def spectral_tv(u0: torch.Tensor, *, dt: float = 0.04, n_steps: int = 50, **flow_kwargs) -> SpectralTV:
    """Spectral TV decomposition of ``u0`` from ``n_steps + 1`` implicit TV flow steps.

    Parameters
    ----------
    u0 : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        With ``ndim=3`` (passed to :func:`~pdeflow.tv.tv_flow`, as ``spacing``): a volume (D, H, W),
        (C, D, H, W) or (B, C, D, H, W); the spectrum is then ``(n_steps,)`` or ``(B, n_steps)``.
    dt : float
        Time step (PDE time), ``> 0``.
    n_steps : int
        Number of bands ``N >= 1``; the flow runs to ``(N+1)*dt``.
    **flow_kwargs
        Passed to :func:`~pdeflow.tv.tv_flow` (``accuracy``, default :data:`SPECTRAL_ACCURACY`, 1.4e-2: the
        certified RMS error of every frame ``u(t_k)`` against the exact implicit steps, as a fraction of the
        range of ``u0``; ``tol``; ``scheme``, default ``"euler"``; ``solver``, ``progress``, ``precision``,
        ...).

    Returns
    -------
    SpectralTV

    Notes
    -----
    Differentiable with respect to ``u0`` (through :func:`~pdeflow.tv.tv_flow`'s implicit steps): a loss
    on the bands, the spectrum or the residual can be backpropagated to the image.  The frames and the
    transform are held in float64 whatever the dtype of ``u0`` (``precision``, see
    :func:`~pdeflow.tv.tv_flow`), the result returned in ``u0``'s dtype.

    **Steps.**  The transform is defined on the implicit Euler trajectory with steps ``dt``: the frames
    ``u(k dt)`` take one step each, ``n_steps + 1`` in all (an eigenfunction then gives one peak), so
    ``dt`` and ``n_steps`` set the number of steps, ``accuracy`` how long each takes.  :func:`spectral_steps`
    gives the steps and the accuracy of their frames without running them (``pdeflow spectral`` prints it as
    its ``steps:`` line); with ``progress=True`` a long decomposition says after its first step how long it
    will take.

    **Accuracy.**  The default certifies the frames to :data:`SPECTRAL_ACCURACY` (``accuracy``, see
    :func:`~pdeflow.tv.tv_flow`: each of the ``n_steps + 1`` steps solved to ``accuracy / (n_steps + 1)``).
    Whatever the accuracy, the bands and the residual add up to ``u0`` to round-off (the sum telescopes).  A
    band is a sum of ``k`` times second differences of frames, so its worst-case error is up to about
    ``k^2`` times a frame's; the frames' errors move together, and the bands' errors at the default are on the
    results page ("Speed and accuracy of the solvers", "Spectral TV's steps").  For tighter bands,
    pass a smaller ``accuracy`` (``1e-3`` was the default) or ``tol=1e-6``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import spectral_tv
    >>> u0 = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4, dtype=torch.float64, requires_grad=True)
    >>> s = spectral_tv(u0, dt=0.1, n_steps=4)
    >>> s.spectrum.shape, torch.allclose(s.reconstruct(), u0)
    (torch.Size([4]), True)
    >>> s.filter()[0].square().sum().backward()
    >>> u0.grad.shape
    torch.Size([4, 4])

    A volume with anisotropic voxels (``spacing`` goes to :func:`~pdeflow.tv.tv_flow`):

    >>> v = torch.zeros(4, 4, 4, dtype=torch.float64)
    >>> v[:2] = 1.0
    >>> s = spectral_tv(v, dt=0.25, n_steps=4, spacing=(2.0, 1.0, 1.0))
    >>> s.phi.shape, torch.allclose(s.reconstruct(), v)
    (torch.Size([4, 4, 4, 4]), True)
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise UserInputError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    n = int(n_steps)
    flow_kwargs.pop("return_ut", None)
    flow_kwargs.pop("return_dual", None)
    # The transform is defined on the implicit Euler trajectory (an eigenfunction gives one peak).
    flow_kwargs.setdefault("scheme", "euler")
    if flow_kwargs.get("accuracy") is None and flow_kwargs.get("tol") is None:
        flow_kwargs["accuracy"] = SPECTRAL_ACCURACY
    u0 = ops.check_float(u0, "u0")
    dtype = u0.dtype
    # The frames and their second differences in the working dtype (float64 by default: the
    # differences of float32 frames lose the bands to cancellation), the result in u0's dtype.
    work = working_dtype(dtype, flow_kwargs.get("precision", "auto"))
    frames = tv_flow(u0.to(work), [k * dt for k in range(n + 2)], dt=dt, **flow_kwargs)
    out = spectral_from_stack(frames, dt)     # differentiable in u0 wherever tv_flow is
    if frames.dim() == 5 and make_grid(flow_kwargs.get("ndim"), flow_kwargs.get("spacing")).ndim == 3:
        # one volume (C, D, H, W): its spectrum is (N,), not per channel
        out = SpectralTV(times=out.times, phi=out.phi, spectrum=out.spectrum.sum(1), residual=out.residual,
                         dt=out.dt)
    if work != dtype:
        out = SpectralTV(times=out.times, phi=out.phi.to(dtype), spectrum=out.spectrum.to(dtype),
                         residual=out.residual.to(dtype), dt=out.dt)
    return out


def spectral_from_stack(u: torch.Tensor, dt: float) -> SpectralTV:
    """Spectral TV transform of a flow sampled at ``t_k = k*dt``, ``k = 0..N+1`` (a reference's or a network's).

    The formulas of :func:`spectral_tv`: ``phi_k = t_k (u_{k-1} - 2u_k + u_{k+1}) / dt^2``, ``k = 1..N``;
    residual ``(N+1) u_N - N u_{N+1}``; ``reconstruct()`` telescopes to ``u_0`` exactly.

    Parameters
    ----------
    u : Tensor, shape (N+2, *image_shape), ``N >= 1``
        The frames; ``image_shape`` is (H, W), (C, H, W) or (B, C, H, W), or a batch of volumes
        (B, C, D, H, W) (the spectrum per volume; a volume (D, H, W) or (C, D, H, W) reads as images,
        which changes only the spectrum's shape).
    dt : float
        Their time spacing.

    Returns
    -------
    SpectralTV

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import spectral_from_stack
    >>> f = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> s = spectral_from_stack(torch.stack([f, 0.5 * f, 0.25 * f, 0.125 * f]), 0.1)
    >>> s.phi.shape, torch.allclose(s.reconstruct(), f)
    (torch.Size([2, 2, 2]), True)
    """
    if not isinstance(u, torch.Tensor):
        try:
            u = torch.as_tensor(u)
        except (TypeError, ValueError, RuntimeError):
            raise UserInputError(f"u must be a tensor of frames (T, ...), got {type(u).__name__}") from None
    u = ops.check_float(u, "u")      # the library's one rule for integer images
    if u.device.type == "meta":
        raise UserInputError("u is on the 'meta' device, which holds no values")
    if u.numel() == 0:
        raise UserInputError(f"u must be a non-empty stack of frames, got shape {tuple(u.shape)}")
    if u.dim() not in (3, 4, 5, 6):
        raise UserInputError(f"u must have shape (T, H, W), (T, C, H, W), (T, B, C, H, W) or, for volumes, "
                             f"(T, B, C, D, H, W), got {tuple(u.shape)}")
    if u.shape[0] < 3:
        raise UserInputError(f"need at least 3 times, got {u.shape[0]}")
    if ops.compute_dtype(u.dtype) != u.dtype:
        # second differences lose the bands in half precision: float32 inside, the result as given
        s = spectral_from_stack(ops.promote_half(u), dt)
        return SpectralTV(times=s.times, phi=s.phi.to(u.dtype), spectrum=s.spectrum.to(u.dtype),
                          residual=s.residual.to(u.dtype), dt=s.dt)
    n = u.shape[0] - 2
    k = torch.arange(1, n + 1, dtype=u.dtype, device=u.device).reshape(-1, *([1] * (u.dim() - 1)))
    # k (u[:-2] - 2 u[1:-1] + u[2:]) / dt, rounded alike, in place on one array (fresh temporaries of the stack's
    # size cost more than the arithmetic)
    phi = torch.add(u[:-2], u[1:-1], alpha=-2.0).add_(u[2:]).mul_(k).div_(dt)
    residual = (n + 1) * u[n] - n * u[n + 1]
    spectrum = batch_sum(phi.abs(), keep=2 if u.dim() >= 5 else 1)
    times = torch.arange(1, n + 1, dtype=torch.float64) * dt
    return SpectralTV(times=times.to(u.device), phi=phi, spectrum=spectrum, residual=residual, dt=float(dt))
