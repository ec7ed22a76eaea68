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

Stable range
------------
The highest frequency (the checkerboard) grows most: by at most
``(1 + dt * k)^steps`` over the stack, with ``k`` the largest rate of the
operator as the layer applies it: ``k = 4 n * scale`` for :class:`Heat` on
``n`` spatial axes (8 for the 5-point stencil, 12 for the 7-point one),
``4 n / eps`` for :class:`TVFlow` (its linearisation around a flat region is
``laplacian / eps``) and ``4 n`` for :class:`PeronaMalik` (diffusivity <= 1).
:class:`InverseEvolution` checks this amplification for the ready operators:

* at most :data:`STABLE_AMPLIFICATION` (``10^3``): the stable range, used
  without comment. It holds the paper's settings: dt 0.1 with the official
  ``laplacian / 4`` kernel (``dt=0.025`` here, ``k = 8``) and 20, 30 or 35
  layers amplify by 38, 237 and 590; dt 0.2 with 10 layers (``dt=0.05``
  here) by 29.
* above it, an :class:`AmplificationWarning` states the factor and a dt (for
  the given ``steps``) and a number of layers (for the given ``dt``) inside
  the range: the loss then sees logits scaled by up to that factor, and
  training stalls or diverges (``dt=0.1, steps=30``, 4.6e7, gives losses of
  order 1e6).
* beyond the largest float32 (3.4e38), a
  :class:`~pdeflow.errors.UserInputError`: the logits overflow to inf and the
  loss is NaN (``dt=0.5, steps=60``).

A custom callable operator is not checked (its rate is unknown).

References
----------
.. [1] C. Liu, Z. Qiao, C. Li, C.-B. Schönlieb, "Inverse evolution layers: physics-informed regularizers
       for deep neural networks", arXiv:2307.07344, 2023.
"""
from __future__ import annotations

import math
import sys
import warnings
from numbers import Integral, Real
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..errors import UserInputError

__all__ = [
    "BOUNDARIES", "EVOLUTIONS", "Heat", "TVFlow", "PeronaMalik", "make_operator",
    "InverseEvolution", "WithIELs", "with_iels", "official_heat_iel", "heat_iel_symbol",
    "STABLE_AMPLIFICATION", "AmplificationWarning",
]

BOUNDARIES = ("zero", "neumann")

#: The largest amplification of the highest frequency, ``(1 + dt k)^steps``, that
#: :class:`InverseEvolution` takes without a warning (see the module docstring, "Stable range").
STABLE_AMPLIFICATION = 1e3


class AmplificationWarning(UserWarning):
    """Inverse evolution layers whose amplification of the highest frequency, ``(1 + dt k)^steps``, is beyond
    :data:`STABLE_AMPLIFICATION`; the message states the factor and a stable ``dt`` and ``steps``.

    Examples
    --------
    >>> import warnings
    >>> from pdeflow.iel import AmplificationWarning, InverseEvolution
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = InverseEvolution("heat", dt=0.1, steps=30)
    >>> caught[0].category is AmplificationWarning
    True
    """


def _check_u(u, who: str) -> torch.Tensor:
    u = ops.check_tensor(u, f"{who}: input")
    if u.dim() not in (4, 5):
        raise UserInputError(f"{who}: input must have shape (B, C, H, W) or (B, C, D, H, W) (a batch of logit "
                             f"maps or volumes), got shape {tuple(u.shape)}")
    ops.check_float(u, f"{who}: input (logits)")
    return u


def _check_boundary(boundary, who: str) -> str:
    if boundary not in BOUNDARIES:
        raise UserInputError(f"{who}: boundary must be one of {BOUNDARIES}, got {boundary!r}")
    return boundary


def _positive(value, name: str, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise UserInputError(f"{who}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _positive_int(value, name: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise UserInputError(f"{who}: {name} must be an int >= 1, got {value!r}")
    return int(value)


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
    #: Pixels one application reaches along each axis (3 x 3 stencils: 1), what a halo of
    #: :func:`pdeflow.dask.iel` needs per layer.
    reach: int = 1

    def __init__(self, value: float):
        setattr(self, self.param, _positive(value, self.param, type(self).__name__))

    def _f(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, u: torch.Tensor, boundary: str = "zero") -> torch.Tensor:
        return _padded(u, boundary, self._f)

    def max_rate(self, ndim: int = 2) -> float:
        """An upper bound ``k`` of ``|F'(u)|`` on ``ndim`` spatial axes: one layer multiplies a
        perturbation by at most ``1 + dt * k`` (the module docstring, "Stable range")."""
        raise NotImplementedError

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

    def max_rate(self, ndim: int = 2) -> float:
        return 4.0 * ndim * self.scale          # the Laplacian's eigenvalues lie in (-4 ndim, 0]

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

    def max_rate(self, ndim: int = 2) -> float:
        return 4.0 * ndim / self.eps           # laplacian / eps, its linearisation around a flat region

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
        larger than ``kappa`` are barely diffused, smaller ones inpaint_diffusion as heat.

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

    def max_rate(self, ndim: int = 2) -> float:
        return 4.0 * ndim                       # the diffusivity is at most 1: heat's rate

    def _f(self, u: torch.Tensor) -> torch.Tensor:
        n = _spatial_dims(u)
        g = ops.grad(u, ndim=n)
        diffusivity = 1.0 / (1.0 + (g * g).sum(-n - 1, keepdim=True) / self.kappa ** 2)
        return ops.div(diffusivity * g, ndim=n)


#: The ready evolution operators by name: name -> (class, name of its one parameter).
EVOLUTIONS = {c.name: (c, c.param) for c in (Heat, TVFlow, PeronaMalik)}


def make_operator(name: str, param: float | None = None):
    """A ready operator by name (``"heat"``, ``"tv"``, ``"perona-malik"``).

    ``param`` is its one parameter (heat: ``scale``, tv: ``eps``, Perona–Malik:
    ``kappa``); None takes the default.

    Examples
    --------
    >>> from pdeflow.iel import EVOLUTIONS, make_operator
    >>> sorted(EVOLUTIONS)
    ['heat', 'perona-malik', 'tv']
    >>> make_operator("tv", 0.05)
    TVFlow(eps=0.05)
    """
    if name not in EVOLUTIONS:
        raise UserInputError(f"make_operator: name must be one of {tuple(EVOLUTIONS)}, got {name!r}")
    cls, _ = EVOLUTIONS[name]
    return cls() if param is None else cls(param)


class InverseEvolution(nn.Module):
    """``steps`` inverse evolution layers ``u <- u - dt * F(u)``; no parameters.

    Parameters
    ----------
    operator : callable or str
        ``F(u, boundary) -> Tensor`` on ``(B, C, H, W)`` (or 5-D), or the name of a ready
        operator (``"heat"``, ``"tv"``, ``"perona-malik"``, see :data:`EVOLUTIONS`).
        A callable that takes only ``u`` is accepted with ``boundary`` left to it.
    dt : float
        Time step per layer, PDE time for the ready operators (unit pixel
        spacing), > 0. The official code's dt 0.1 with kernel ``laplacian / 4``
        is ``dt=0.025`` with ``"heat"``.
    steps : int
        Number of layers, >= 1 (paper: 20 to 35).
    boundary : {"zero", "neumann"}
        Zero padding (the official code) or homogeneous Neumann (pdeflow.ops).

    Raises
    ------
    pdeflow.errors.UserInputError
        A bad argument, or a ready operator whose amplification of the highest
        frequency, ``(1 + dt k)^steps`` (:meth:`amplification`), overflows float32.

    Warns
    -----
    AmplificationWarning
        That amplification is above :data:`STABLE_AMPLIFICATION` (``10^3``); the
        message gives a ``dt`` and a number of layers inside it. The paper's
        settings are inside (the module docstring, "Stable range").

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
                            f"{tuple(EVOLUTIONS)}, got {type(operator).__name__}")
        self.operator = operator
        self.dt = _positive(dt, "dt", who)
        self.steps = _positive_int(steps, "steps", who)
        self.boundary = _check_boundary(boundary, who)
        self._takes_boundary = _takes_boundary(operator)
        self._checked_ndim = {2}
        self._check_amplification(2)

    def amplification(self, ndim: int = 2) -> float | None:
        """The largest factor by which the stack can multiply a perturbation of the logits on ``ndim``
        spatial axes, ``(1 + dt k)^steps`` with ``k`` the operator's ``max_rate`` (``inf`` past the
        float range); None for an operator without a ``max_rate`` (a custom callable).

        Examples
        --------
        >>> from pdeflow.iel import InverseEvolution
        >>> round(InverseEvolution("heat", dt=0.025, steps=30).amplification())  # 1.2 ** 30
        237
        """
        rate = getattr(self.operator, "max_rate", None)
        if rate is None:
            return None
        return _power(1.0 + self.dt * rate(ndim), self.steps)

    def _check_amplification(self, ndim: int) -> None:
        """Refuse an amplification that overflows float32, warn above the stable range."""
        gain = self.amplification(ndim)
        if gain is None or gain <= STABLE_AMPLIFICATION:
            return
        k = self.operator.max_rate(ndim)
        dt_ok = _floor2((STABLE_AMPLIFICATION ** (1.0 / self.steps) - 1.0) / k)
        steps_ok = int(math.log(STABLE_AMPLIFICATION) / math.log1p(self.dt * k))
        where = f"dt <= {dt_ok:g} with steps={self.steps}" + (f", or steps <= {steps_ok} with dt={self.dt:g}"
                                                             if steps_ok >= 1 else "")
        text = (f"InverseEvolution: dt={self.dt:g} and steps={self.steps} amplify the highest frequency of the "
                f"logits ({ndim}-D, {self.operator!r}) by (1 + {self.dt:g} * {k:g})^{self.steps} = {gain:.2g}")
        stable = f"the stable range is an amplification <= {STABLE_AMPLIFICATION:g}: {where}"
        if gain > torch.finfo(torch.float32).max:
            raise UserInputError(f"{text}, more than float32 holds ({torch.finfo(torch.float32).max:.2g}): the "
                                 f"logits overflow and the loss is NaN; {stable}")
        warnings.warn(f"{text}, beyond the stable range: the loss sees logits scaled by up to that factor and "
                      f"training stalls or diverges; {stable}", AmplificationWarning, stacklevel=_caller_level())

    def _apply_f(self, u: torch.Tensor) -> torch.Tensor:
        return self.operator(u, self.boundary) if self._takes_boundary else self.operator(u)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u = _check_u(u, "InverseEvolution")
        if _spatial_dims(u) not in self._checked_ndim:   # volumes: the 7-point operators' larger rate
            self._checked_ndim.add(_spatial_dims(u))
            self._check_amplification(_spatial_dims(u))
        for _ in range(self.steps):
            u = u - self.dt * self._apply_f(u)
        return u

    def extra_repr(self) -> str:
        return f"operator={self.operator!r}, dt={self.dt:g}, steps={self.steps}, boundary={self.boundary!r}"


def _power(base: float, n: int) -> float:
    try:
        return base ** n
    except OverflowError:
        return math.inf


def _floor2(x: float) -> float:
    """``x`` > 0 rounded down to two significant digits (a bound that stays a bound when printed)."""
    e = math.floor(math.log10(x)) - 1
    return math.floor(x / 10.0 ** e) * 10.0 ** e


def _caller_level() -> int:
    """The ``stacklevel`` of a warning issued here that names the first frame outside this module."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


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

    Raises
    ------
    pdeflow.errors.UserInputError
        ``H``, ``W``, ``steps`` or ``depth`` not an int >= 1, ``dt`` not a finite
        number > 0, an unknown ``boundary`` or a non-floating ``dtype`` (the
        message names the argument).

    Examples
    --------
    >>> from pdeflow.iel import heat_iel_symbol
    >>> g = heat_iel_symbol(4, 4, dt=0.025, steps=30, boundary="neumann")
    >>> g.shape, g[0, 0].item(), round(g[-1, -1].item(), 3)  # the mean passes, high frequencies grow
    (torch.Size([4, 4]), 1.0, 113.106)
    """
    who = "heat_iel_symbol"
    _check_boundary(boundary, who)
    for name, value in (("H", H), ("W", W), ("steps", steps)) + ((("depth", depth),) if depth is not None else ()):
        _positive_int(value, name, who)
    dt = _positive(dt, "dt", who)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise UserInputError(f"{who}: dtype must be a floating-point torch.dtype, got {dtype!r}")
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
        The stack multiplies the highest frequency of the logits by up to
        ``(1 + dt k)^steps``, with ``k = 8`` for ``"heat"`` on images (12 on
        volumes; ``8 / eps`` for ``"tv"``, 8 for ``"perona-malik"``). The
        stable range is an amplification of at most :data:`STABLE_AMPLIFICATION`
        (``10^3``), e.g. ``dt=0.025`` with up to 37 layers or ``dt=0.05`` with
        up to 20; it holds the paper's settings (official dt 0.1, i.e.
        ``dt=0.025`` here, with 20-35 layers: 38-590; official dt 0.2 with 10
        layers: 29). Above it an :class:`AmplificationWarning` gives a stable
        ``dt`` and ``steps``; where it overflows float32 (e.g. ``dt=0.5,
        steps=60``) a :class:`~pdeflow.errors.UserInputError` is raised.

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
