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

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..errors import UserInputError
from ..ops import batch_sum
from ..threads import auto_threads
from .flow import tv_flow

__all__ = ["spectral_tv", "spectral_from_stack", "SpectralTV", "dyadic_band_edges"]


def dyadic_band_edges(n_steps: int, dt: float) -> list[float]:
    """Time edges of dyadic bands ``k in [1,2), [2,4), [4,8), ...`` up to ``N``.

    The edges sit half a step between grid times so that membership is
    unambiguous; TVspecNET groups Gilboa's 50 bands this way into 5 bands
    (the residual is kept apart).
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
        """
        edges = dyadic_band_edges(len(self.times), self.dt) if bands is None else [float(e) for e in bands]
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise UserInputError(f"bands must be at least two strictly increasing time edges, got {edges}")
        t = self.times
        return torch.stack([self.apply(((t >= lo) & (t < hi)).to(self.phi)) for lo, hi in zip(edges, edges[1:])])


@auto_threads
def spectral_tv(u0: torch.Tensor, *, dt: float = 0.04, n_steps: int = 50, **flow_kwargs) -> SpectralTV:
    """Spectral TV decomposition of ``u0`` from ``n_steps + 1`` implicit TV flow steps.

    Parameters
    ----------
    u0 : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
    dt : float
        Time step (PDE time), ``> 0``.
    n_steps : int
        Number of bands ``N >= 1``; the flow runs to ``(N+1)*dt``.
    **flow_kwargs
        Passed to :func:`~pdeflow.tv.tv_flow` (``tol``, default 1e-6; ``scheme``, default
        ``"euler"``; ``solver``, ``progress``, ...).

    Returns
    -------
    SpectralTV
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise UserInputError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    n = int(n_steps)
    flow_kwargs.pop("return_ut", None)
    flow_kwargs.pop("return_dual", None)
    # The transform is defined on the implicit Euler trajectory (an eigenfunction gives one
    # peak); it keeps the solver tolerance it has always had unless told otherwise.
    flow_kwargs.setdefault("scheme", "euler")
    flow_kwargs.setdefault("tol", 1e-6)
    return spectral_from_stack(tv_flow(u0, [k * dt for k in range(n + 2)], dt=dt, **flow_kwargs), dt)


def spectral_from_stack(u: torch.Tensor, dt: float) -> SpectralTV:
    """Spectral TV transform of a flow sampled at ``t_k = k*dt``, ``k = 0..N+1`` (a reference's or a network's).

    The formulas of :func:`spectral_tv`: ``phi_k = t_k (u_{k-1} - 2u_k + u_{k+1}) / dt^2``, ``k = 1..N``;
    residual ``(N+1) u_N - N u_{N+1}``; ``reconstruct()`` telescopes to ``u_0`` exactly.

    Parameters
    ----------
    u : Tensor, shape (N+2, *image_shape), ``N >= 1``
        The frames; ``image_shape`` is (H, W), (C, H, W) or (B, C, H, W).
    dt : float
        Their time spacing.

    Returns
    -------
    SpectralTV
    """
    if u.dim() not in (3, 4, 5):
        raise UserInputError(f"u must have shape (T, H, W), (T, C, H, W) or (T, B, C, H, W), got {tuple(u.shape)}")
    if u.shape[0] < 3:
        raise UserInputError(f"need at least 3 times, got {u.shape[0]}")
    n = u.shape[0] - 2
    k = torch.arange(1, n + 1, dtype=u.dtype, device=u.device).reshape(-1, *([1] * (u.dim() - 1)))
    phi = k * (u[:-2] - 2.0 * u[1:-1] + u[2:]) / dt
    residual = (n + 1) * u[n] - n * u[n + 1]
    spectrum = batch_sum(phi.abs(), keep=2 if u.dim() == 5 else 1)
    times = torch.arange(1, n + 1, dtype=torch.float64) * dt
    return SpectralTV(times=times.to(u.device), phi=phi, spectrum=spectrum, residual=residual, dt=float(dt))
