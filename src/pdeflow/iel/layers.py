"""Inverse evolution layers (Liu et al., 2023): ``L(u) = u - dt * F(u)``, applied ``steps`` times.

An explicit Euler step of an evolution ``u_t = F(u)`` is ``u + dt * F(u)``; an
inverse evolution layer (IEL) flips the sign. Stacked after a network's logits
during training only, it amplifies exactly what the evolution would smooth
away (for heat diffusion: high frequencies, ragged boundaries, isolated
pixels), so the loss punishes the network for producing them. The layers have
no parameters.

Operators and units
-------------------
An operator is any callable ``F(u, boundary)`` on ``(B, C, H, W)`` tensors
(or ``(B, C, D, H, W)`` volumes) that returns a tensor of the same shape; each
channel (class logit map) evolves on its own. The ready ones use
:mod:`pdeflow.ops` with **unit pixel (voxel) spacing**, so ``dt`` is PDE time,
and work on images and volumes alike: a 5-D input is a batch of volumes and
takes the 3-D operators (7-point Laplacian, 3-component gradient), so
:func:`with_iels` wraps a 3-D segmentation network as it wraps a 2-D one:

* :class:`Heat` -- ``F(u) = laplacian(u)``, the 5-point stencil
  ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` of the paper's eq. (7).
* :class:`TVFlow` -- ``F(u) = div(grad u / sqrt(|grad u|^2 + eps^2))``, the
  eps-regularised total variation flow.
* :class:`PeronaMalik` -- ``F(u) = div(g(|grad u|^2) grad u)`` with
  ``g(s) = 1 / (1 + s / kappa^2)``.

**The official code's scaling.** The official implementation
(cyliu111/Inverse-Evolution-Layers-Segmentation) convolves with the kernel
``laplacian / 4`` (0.25 at the neighbours, -1 at the centre), so its
"dt = 0.1" is PDE time ``0.025`` per layer here. :func:`official_heat_iel`
builds exactly that layer stack (zero boundary, ``dt / 4``).

Boundaries
----------
``boundary="zero"`` (the official code: ``conv2d(..., padding=1)``): the
logits are taken to be 0 outside the image. ``boundary="neumann"``: the
homogeneous Neumann condition of :mod:`pdeflow.ops` (``grad`` is zero across
the border, ``div = -grad^T``), under which constants are left unchanged.
Both are implemented with the same ``ops`` calls: for ``"zero"`` the image is
zero-padded by one pixel, the operator applied on the padded grid and the
border cropped off, which gives exactly the zero-padded 5-point stencil
inside the image.

Spectrum (heat)
---------------
For the Neumann Laplacian the eigenvectors are the DCT-II modes
``cos(pi k (i + 1/2) / H) cos(pi l (j + 1/2) / W)`` with eigenvalues
``-(4 sin^2(pi k / 2H) + 4 sin^2(pi l / 2W))``; one heat IEL multiplies mode
``(k, l)`` by ``1 + dt * (4 sin^2(pi k / 2H) + 4 sin^2(pi l / 2W)) >= 1``,
with equality only for the constant mode. For the zero boundary the
eigenvectors are the DST-I modes ``sin(pi k (i+1) / (H+1)) ...`` with
``k = 1..H``, and every factor ``1 + dt * (4 sin^2(pi k / 2(H+1)) + ...)`` is
strictly above 1. ``steps`` layers raise the factor to the power ``steps``.

References
----------
.. [1] C. Liu, Z. Qiao, C. Li, C.-B. Schönlieb, "Inverse evolution layers: physics-informed regularizers
       for deep neural networks", arXiv:2307.07344, 2023.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..errors import UserInputError

__all__ = [
    "BOUNDARIES", "OPERATORS", "Heat", "TVFlow", "PeronaMalik", "make_operator",
    "InverseEvolution", "WithIELs", "with_iels", "official_heat_iel", "heat_iel_symbol",
]

BOUNDARIES = ("zero", "neumann")


def _check_u(u, who: str) -> torch.Tensor:
    u = ops.check_tensor(u, f"{who}: input")
    if u.dim() not in (4, 5):
        raise UserInputError(f"{who}: input must have shape (B, C, H, W) or (B, C, D, H, W) (a batch of logit "
                             f"maps or volumes), got shape {tuple(u.shape)}")
    if not u.is_floating_point():
        raise TypeError(f"{who}: input must be a floating tensor (logits), got dtype {u.dtype}")
    return u


def _check_boundary(boundary, who: str) -> str:
    if boundary not in BOUNDARIES:
        raise UserInputError(f"{who}: boundary must be one of {BOUNDARIES}, got {boundary!r}")
    return boundary


def _positive(value, name: str, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise UserInputError(f"{who}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _padded(u: torch.Tensor, boundary: str, f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``f`` under the boundary condition: Neumann is ops' own; zero pads, applies, crops
    (every spatial axis: two of a 4-D batch of images, three of a 5-D batch of volumes)."""
    if boundary == "neumann":
        return f(u)
    n = _spatial_dims(u)
    return f(F.pad(u, (1, 1) * n))[(..., *([slice(1, -1)] * n))]


def _spatial_dims(u: torch.Tensor) -> int:
    """2 for a batch of images ``(B, C, H, W)``, 3 for a batch of volumes ``(B, C, D, H, W)``."""
    return 3 if u.dim() == 5 else 2


class _Operator:
    """An operator ``F(u)`` with one positive parameter (named by ``param``), applied per channel under
    the boundary condition of :func:`_padded`; subclasses define ``_f``."""

    name: str
    param: str

    def __init__(self, value: float):
        setattr(self, self.param, _positive(value, self.param, type(self).__name__))

    def _f(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, u: torch.Tensor, boundary: str = "zero") -> torch.Tensor:
        return _padded(u, boundary, self._f)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param}={getattr(self, self.param):g})"


class Heat(_Operator):
    """Heat diffusion ``F(u) = laplacian(u)``: the 5-point stencil, unit pixel spacing.

    Parameters
    ----------
    scale : float, optional
        Multiplies the Laplacian (default 1, the paper's eq. (7)). ``scale=0.25``
        is the official code's kernel ``laplacian / 4``; equivalently divide
        ``dt`` by 4 and keep ``scale=1``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import Heat
    >>> u = torch.zeros(1, 1, 3, 3)
    >>> u[..., 1, 1] = 1.0
    >>> Heat()(u, "neumann")[0, 0]
    tensor([[ 0.,  1.,  0.],
            [ 1., -4.,  1.],
            [ 0.,  1.,  0.]])
    """

    name, param = "heat", "scale"

    def __init__(self, scale: float = 1.0):
        super().__init__(scale)

    def _f(self, u: torch.Tensor) -> torch.Tensor:
        lap = ops.laplacian(u, ndim=_spatial_dims(u))
        return lap if self.scale == 1.0 else self.scale * lap


class TVFlow(_Operator):
    """Total variation flow ``F(u) = div(grad u / sqrt(|grad u|^2 + eps^2))`` per channel.

    Parameters
    ----------
    eps : float, optional
        Regularisation of the gradient norm, in logit units per pixel
        (default 0.1). Small ``eps`` makes the operator stiff: its linearisation
        around a flat region is ``laplacian / eps``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import TVFlow
    >>> u = torch.zeros(1, 1, 4, 4)
    >>> u[..., :, 2:] = 1.0
    >>> TVFlow(eps=0.1)(u, "neumann").sum().abs().item() < 1e-6  # a divergence: no mass created
    True
    """

    name, param = "tv", "eps"

    def __init__(self, eps: float = 0.1):
        super().__init__(eps)

    def _f(self, u: torch.Tensor) -> torch.Tensor:
        n = _spatial_dims(u)
        g = ops.grad(u, ndim=n)                                   # (B, C, n, *spatial)
        norm = torch.sqrt((g * g).sum(-n - 1, keepdim=True) + self.eps ** 2)
        return ops.div(g / norm, ndim=n)


class PeronaMalik(_Operator):
    """Perona–Malik diffusion ``F(u) = div(g(|grad u|^2) grad u)``, ``g(s) = 1 / (1 + s / kappa^2)``.

    Parameters
    ----------
    kappa : float, optional
        Edge threshold in logit units per pixel (default 1): gradients much
        larger than ``kappa`` are barely diffused, smaller ones diffuse as heat.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import PeronaMalik
    >>> u = torch.zeros(1, 1, 4, 4)
    >>> u[..., :, 2:] = 10.0
    >>> F = PeronaMalik(kappa=1.0)(u, "neumann")
    >>> F.shape, F.abs().max().item() < 1.0  # an edge far above kappa barely diffuses
    (torch.Size([1, 1, 4, 4]), True)
    """

    name, param = "perona-malik", "kappa"

    def __init__(self, kappa: float = 1.0):
        super().__init__(kappa)

    def _f(self, u: torch.Tensor) -> torch.Tensor:
        n = _spatial_dims(u)
        g = ops.grad(u, ndim=n)
        diffusivity = 1.0 / (1.0 + (g * g).sum(-n - 1, keepdim=True) / self.kappa ** 2)
        return ops.div(diffusivity * g, ndim=n)


#: Ready operators by name: name -> (class, name of its one parameter).
OPERATORS = {c.name: (c, c.param) for c in (Heat, TVFlow, PeronaMalik)}


def make_operator(name: str, param: float | None = None):
    """A ready operator by name (``"heat"``, ``"tv"``, ``"perona-malik"``).

    ``param`` is its one parameter (heat: ``scale``, tv: ``eps``, Perona–Malik:
    ``kappa``); None takes the default.

    Examples
    --------
    >>> from pdeflow.iel import OPERATORS, make_operator
    >>> sorted(OPERATORS)
    ['heat', 'perona-malik', 'tv']
    >>> make_operator("tv", 0.05)
    TVFlow(eps=0.05)
    """
    if name not in OPERATORS:
        raise UserInputError(f"make_operator: name must be one of {tuple(OPERATORS)}, got {name!r}")
    cls, _ = OPERATORS[name]
    return cls() if param is None else cls(param)


class InverseEvolution(nn.Module):
    """``steps`` inverse evolution layers ``u <- u - dt * F(u)``; no parameters.

    Parameters
    ----------
    operator : callable or str
        ``F(u, boundary) -> Tensor`` on ``(B, C, H, W)`` (or 5-D), or the name of a ready
        operator (``"heat"``, ``"tv"``, ``"perona-malik"``, see :data:`OPERATORS`).
        A callable that takes only ``u`` is accepted with ``boundary`` left to it.
    dt : float
        Time step per layer, PDE time for the ready operators (unit pixel
        spacing), > 0. The official code's dt 0.1 with kernel ``laplacian / 4``
        is ``dt=0.025`` with ``"heat"``.
    steps : int
        Number of layers, >= 1 (paper: 20 to 35).
    boundary : {"zero", "neumann"}
        Zero padding (the official code) or homogeneous Neumann (pdeflow.ops).

    Notes
    -----
    The module is always active; to apply it in training only, wrap a network
    with :func:`with_iels`. Input: floating ``(B, C, H, W)`` or ``(B, C, D, H, W)`` logits; output:
    the same shape, dtype and device. Differentiable.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import BOUNDARIES, InverseEvolution
    >>> BOUNDARIES
    ('zero', 'neumann')
    >>> iel = InverseEvolution("heat", dt=0.025, steps=2)
    >>> u = torch.zeros(1, 1, 5, 5)
    >>> u[..., 2, 2] = 1.0
    >>> round(iel(u)[0, 0, 2, 2].item(), 4)  # u - dt F(u), twice: the peak is sharpened
    1.2125
    """

    def __init__(self, operator="heat", dt: float = 0.025, steps: int = 30, boundary: str = "zero"):
        super().__init__()
        who = "InverseEvolution"
        if isinstance(operator, str):
            operator = make_operator(operator)
        elif not callable(operator):
            raise TypeError(f"{who}: operator must be a callable F(u, boundary) or one of "
                            f"{tuple(OPERATORS)}, got {type(operator).__name__}")
        self.operator = operator
        self.dt = _positive(dt, "dt", who)
        if isinstance(steps, bool) or not isinstance(steps, Integral) or steps < 1:
            raise UserInputError(f"{who}: steps must be an int >= 1, got {steps!r}")
        self.steps = int(steps)
        self.boundary = _check_boundary(boundary, who)
        self._takes_boundary = _takes_boundary(operator)

    def _apply_f(self, u: torch.Tensor) -> torch.Tensor:
        return self.operator(u, self.boundary) if self._takes_boundary else self.operator(u)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u = _check_u(u, "InverseEvolution")
        for _ in range(self.steps):
            u = u - self.dt * self._apply_f(u)
        return u

    def extra_repr(self) -> str:
        return f"operator={self.operator!r}, dt={self.dt:g}, steps={self.steps}, boundary={self.boundary!r}"


def _takes_boundary(f) -> bool:
    import inspect
    try:
        params = inspect.signature(f).parameters
    except (TypeError, ValueError):
        return False
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params.values())


def official_heat_iel(dt: float = 0.1, steps: int = 30) -> InverseEvolution:
    """The official code's heat IELs: kernel ``laplacian / 4``, zero padding, its ``dt``.

    Equal to ``InverseEvolution("heat", dt / 4, steps, boundary="zero")``;
    the defaults are its DSB2018 setting (WBC: ``steps=20``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import InverseEvolution, official_heat_iel
    >>> u = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    >>> same = InverseEvolution("heat", dt=0.1 / 4, steps=20, boundary="zero")
    >>> torch.allclose(official_heat_iel(dt=0.1, steps=20)(u), same(u))
    True
    """
    dt = _positive(dt, "dt", "official_heat_iel")
    return InverseEvolution(Heat(), dt / 4.0, steps, boundary="zero")


def heat_iel_symbol(H: int, W: int, dt: float, steps: int = 1, boundary: str = "zero",
                    dtype=torch.float64, *, depth: int | None = None) -> torch.Tensor:
    """Gain of ``steps`` heat IELs on each eigenmode, shape ``(H, W)`` (``(depth, H, W)`` for volumes).

    Entry ``(k, l)`` is ``(1 + dt * (4 sin^2(pi k / 2n) + 4 sin^2(pi l / 2m)))^steps``
    with ``n, m = H, W`` and ``k = 0..H-1`` (Neumann, DCT-II modes) or
    ``n, m = H + 1, W + 1`` and ``k = 1..H`` (zero boundary, DST-I modes).
    With ``depth=D`` the same for the 7-point Laplacian of a ``(D, H, W)``
    volume: entry ``(j, k, l)`` adds ``4 sin^2(pi j / 2d)`` with ``d = D`` or ``D + 1``.

    Examples
    --------
    >>> from pdeflow.iel import heat_iel_symbol
    >>> g = heat_iel_symbol(4, 4, dt=0.025, steps=30, boundary="neumann")
    >>> g.shape, g[0, 0].item(), round(g[-1, -1].item(), 3)  # the mean passes, high frequencies grow
    (torch.Size([4, 4]), 1.0, 113.106)
    """
    _check_boundary(boundary, "heat_iel_symbol")
    sizes = (H, W) if depth is None else (depth, H, W)
    lam = 0
    for axis, size in enumerate(sizes):
        if boundary == "neumann":
            k, n = torch.arange(size, dtype=dtype), size
        else:
            k, n = torch.arange(1, size + 1, dtype=dtype), size + 1
        shape = [1] * len(sizes)
        shape[axis] = size
        lam = lam + 4 * torch.sin(math.pi * k / (2 * n)).view(shape) ** 2
    return (1 + dt * lam) ** steps


class WithIELs(nn.Module):
    """A network followed by inverse evolution layers in ``train()`` mode only.

    In ``eval()`` mode the output is the network's own, bit for bit; the IELs
    hold no parameters, so ``state_dict()`` keys are the network's under
    ``model.``. Build it with :func:`with_iels`.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import InverseEvolution, WithIELs
    >>> net = WithIELs(torch.nn.Conv2d(1, 2, 3, padding=1), InverseEvolution("heat", dt=0.025, steps=3))
    >>> x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> torch.equal(net.eval()(x), net.model(x)), torch.equal(net.train()(x), net.model(x))
    (True, False)
    """

    def __init__(self, model: nn.Module, iel: InverseEvolution):
        super().__init__()
        self.model = model
        self.iel = iel

    def forward(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        if not self.training:
            return out
        return self.iel(out)         # which checks the logits (a non-tensor is refused, naming them)


def with_iels(model: nn.Module, operator="heat", dt: float = 0.025, steps: int = 30,
              boundary: str = "zero") -> WithIELs:
    """Add inverse evolution layers after ``model``'s logits, active in ``train()`` only.

    Parameters
    ----------
    model : nn.Module
        Any segmentation network returning logits ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
    operator, dt, steps, boundary
        As :class:`InverseEvolution` (or pass an ``InverseEvolution`` as ``operator``).

    Returns
    -------
    WithIELs
        ``net = with_iels(unet, "heat", dt=0.025, steps=30)``; train with
        ``net.train()`` and the usual loss on ``net(x)``; ``net.eval()(x)``
        equals ``unet.eval()(x)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.iel import with_iels
    >>> unet = torch.nn.Conv2d(1, 2, 3, padding=1)
    >>> net = with_iels(unet, "heat", dt=0.025, steps=30)
    >>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> net.train()(x).shape, torch.equal(net.eval()(x), unet(x)), list(net.state_dict())
    (torch.Size([2, 2, 8, 8]), True, ['model.weight', 'model.bias'])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"with_iels: model must be a torch.nn.Module, got {type(model).__name__}")
    iel = operator if isinstance(operator, InverseEvolution) else InverseEvolution(operator, dt, steps, boundary)
    return WithIELs(model, iel)
