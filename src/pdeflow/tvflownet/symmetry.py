"""Exact symmetries for any TVflowNET: mean shift, one-homogeneity, and all times by composition.

The TV flow commutes with adding a constant and is one-homogeneous: for
``c > 0`` and any ``k``,

    flow(c * u0 + k, t) = c * flow(u0, t / c) + k.

A trained network only approximates this (Grossmann et al., 2022, §4.2.2: well inside the
trained time interval, poorly outside). :class:`Equivariant` makes any model
satisfy it exactly (up to round-off) by construction. For each image it
computes a shift ``k`` and a contrast ``c`` (by default the midrange
``(max + min) / 2`` and the range ``max - min``; or the mean and ``4 * std``),
maps the image to the training intensities,

    w = S * (u0 - k) / c + S / 2          (S: the model's training scale),

so that ``w`` spans exactly ``[0, S]`` (as a full-range training image, [0, 1]
times S; about that with the std), and since ``u0 = lam * (w - S/2) + k`` with ``lam = c / S``,

    u(t) = lam * (net_u(w, t / lam) - S / 2) + k,     phi(t) = net_phi(w, t / lam).

``phi`` (the flux, ``|phi| <= 1``) is invariant under contrast changes and
shifts, and ``u_t = div phi`` holds in the caller's units. Because ``k`` and
``c`` transform as ``k -> c' k + k'`` and ``c -> c' c`` under
``u0 -> c' u0 + k'`` (``c' > 0``), the wrapped model satisfies the identity
above for every ``c' > 0`` and ``k'``. A (numerically) constant image
(``c <= 8 eps |k|``, in particular ``c = 0``) is a fixed point of the flow: it
is returned unchanged with ``phi = 0``.

Times beyond the trained interval
---------------------------------
The network was trained for ``t`` in ``[0, T]`` on its own scale. A query at
network time ``tau = t / lam > T`` is answered by composition, the semigroup
property of the flow, ``u(t) = flow(flow(u0, t1), t - t1)``: the wrapper runs
the network to ``T``, re-normalises the result (its contrast has shrunk, so
the next stage covers less of the caller's time), and continues with the
remaining time, until it is used up (``compose=True``, the default; at most
``max_stages`` stages, after which the image is returned as reached, with a
warning). The TV flow reaches the image's mean in finite time; an image whose
contrast has fallen below ``flat * `` its initial contrast has (to that
accuracy) got there, and is returned as its mean with the last stage's
``phi``: without this, composition would chase a vanishing contrast with ever
shorter stages and never use up a time past the extinction time. Re-normalising
each stage keeps every network call inside the trained range of intensities and
times. ``compose=False`` queries the network at ``tau`` directly (extrapolation).

A composed ``u(t)`` is continuous in ``t`` but its ``u_t`` jumps where two
stages join (a network is not an exact semigroup). Forward-mode autodiff in
``t`` misses those jumps, so spectral quantities (``phi(t) = t u_tt``) through
a composing wrapper must be taken by finite differences, which see them
(:func:`composes_in_time` tells; Table 7 of ``pdeflow evaluate tvflownet
--equivariant`` reports finite differences only): the reconstruction of ``u0``
from the spectral transform by autodiff through a composing wrapper is far off,
by finite differences through it as close as autodiff with ``compose=False``.

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import UserInputError
from .wrapper import ModelWrapper

__all__ = ["Equivariant", "DihedralMean", "dihedral", "composes_in_time", "flow_model"]


class Equivariant(ModelWrapper):
    """Wrap ``model(u0, t) -> (u, phi)`` to be exactly shift equivariant and one-homogeneous.

    The forward pass takes the shapes and time forms of the TVflowNET models:
    ``u0`` ``(B, C, H, W)`` (or ``(C, H, W)``, ``(H, W)``), ``t`` a float, 0-d or
    ``(B,)`` tensor, ``t >= 0``. Statistics are over each image's channels and pixels.

    Parameters
    ----------
    model : nn.Module
        A TVflowNET model (e.g. from :func:`pdeflow.tvflownet.load`).
    contrast : {"range", "std"}
        The per-image shift ``k`` and contrast ``c``. ``"range"`` (default): the
        midrange ``(max + min) / 2`` and ``max - min``, so that the network sees
        exactly the intensities it was trained on, ``[0, S]``. ``"std"``: the
        mean and ``4 * std``, which leave the extreme values of a skewed image
        (a few bright pixels on a dark ground) outside ``[0, S]``; the LGD
        models fail there. ``"range"`` is the more accurate for every shipped
        model but the Semi-ResNet (see the results page "TVflowNET: the paper's
        Tables 1-9").
    scale : float, optional
        The training intensity scale ``S``; default from the model's JSON
        (``model.meta``), else 5 (the paper's).
    t_max : float, optional
        The end ``T`` of the trained time interval; default from the JSON, else 1.
    compose : bool
        Reach network times beyond ``T`` by composition (see the module doc).
    max_stages : int
        Cap on the number of composition stages.
    flat : float
        Relative contrast below which a composed image counts as flat (its mean).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import Equivariant, SemiResNet
    >>> _ = torch.manual_seed(0)
    >>> model = Equivariant(SemiResNet(width=4, depth=3), scale=5.0, t_max=1.0)
    >>> u0 = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> u, phi = model(u0, 0.05)
    >>> torch.allclose(model(3 * u0 + 2, 3 * 0.05)[0], 3 * u + 2, atol=1e-5)  # c u0 + k -> c u + k
    True
    """

    def __init__(self, model: nn.Module, *, contrast: str = "range", scale: float | None = None,
                 t_max: float | None = None, compose: bool = True, max_stages: int = 64,
                 flat: float = 1e-3):
        super().__init__()
        if contrast not in ("range", "std"):
            raise UserInputError(f"contrast must be 'range' or 'std', got {contrast!r}")
        meta_cfg = (getattr(model, "meta", None) or {}).get("config", {})
        self.model = model
        self.contrast = contrast
        self.scale = float(scale if scale is not None else meta_cfg.get("scale", 5.0))
        self.t_max = float(t_max if t_max is not None else meta_cfg.get("t_max", 1.0))
        if not (self.scale > 0 and self.t_max > 0):
            raise UserInputError(f"scale and t_max must be > 0, got {self.scale}, {self.t_max}")
        if not (isinstance(max_stages, int) and max_stages >= 1):
            raise UserInputError(f"max_stages must be an int >= 1, got {max_stages!r}")
        if not (0 <= flat < 1):
            raise UserInputError(f"flat must be in [0, 1), got {flat!r}")
        self.compose = bool(compose)
        self.max_stages = max_stages
        self.flat = float(flat)

    def extra_repr(self) -> str:
        return f"contrast={self.contrast!r}, scale={self.scale:g}, t_max={self.t_max:g}, compose={self.compose}"

    def _stats(self, u: torch.Tensor):
        """Per image: shift k and contrast c, shapes (B, 1, 1, 1)."""
        flat = u.flatten(1)
        if self.contrast == "range":     # the midrange: w spans exactly [0, S], the training intensities
            lo, hi = flat.amin(1), flat.amax(1)
            k, c = (lo + hi) / 2, hi - lo
        else:
            k, c = flat.mean(1), 4.0 * flat.std(1, unbiased=False)
        const = c <= 8 * torch.finfo(u.dtype).eps * k.abs()
        view = (-1, 1, 1, 1)
        return k.view(view), c.view(view), const

    def _stage(self, u: torch.Tensor, tau: torch.Tensor, k, lam):
        """Network at normalised time ``tau`` on the normalised ``u``; back to the caller's units."""
        S = self.scale
        w = (u - k) / lam + S / 2
        v, phi = self.model(w, tau)
        return lam * (v - S / 2) + k, phi

    def forward(self, u0: torch.Tensor, t):
        ndim = u0.dim()
        if ndim not in (2, 3, 4):
            raise UserInputError(f"u0 must have shape (B, C, H, W), (C, H, W) or (H, W), got {tuple(u0.shape)}")
        x = u0.reshape((1,) * (4 - ndim) + tuple(u0.shape))
        B = x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = t.reshape(1).expand(B) if t.dim() == 0 else t.reshape(-1)
        if t.shape[0] != B:
            raise UserInputError(f"t must be a float or a tensor of shape () or (B,) = ({B},), got {tuple(t.shape)}")
        if bool((t < 0).any()):
            raise UserInputError("t must be >= 0")

        B, C, H, W = x.shape
        u, phi = x, x.new_zeros(B, C, 2, H, W)      # constant images keep these
        remaining = t.clone()                       # caller's time still to go, per image
        active = torch.ones(B, dtype=torch.bool, device=x.device)
        c0 = None
        for _ in range(self.max_stages):
            k, c, const = self._stats(u)
            if c0 is None:
                c0 = c
            else:  # a composed image that has flowed to its mean (to `flat`) stays there
                flat = active & (c.view(-1) <= self.flat * c0.view(-1))
                if bool(flat.any()):
                    u = torch.where(flat.view(-1, 1, 1, 1), u.mean((1, 2, 3), keepdim=True).expand_as(u), u)
                    active = active & ~flat
            active = active & ~const
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            lam = c[idx] / self.scale
            tau = remaining[idx] / lam.view(-1)     # network time still to go
            last = (tau <= self.t_max) if self.compose else torch.ones_like(tau, dtype=torch.bool)
            step = torch.where(last, tau, torch.full_like(tau, self.t_max))
            v, p = self._stage(u[idx], step, k[idx], lam)
            u = u.index_copy(0, idx, v)
            phi = phi.index_copy(0, idx, p)
            remaining = remaining.index_copy(0, idx, torch.where(last, torch.zeros_like(tau),
                                                                 remaining[idx] - step * lam.view(-1)))
            active = active.index_copy(0, idx, ~last)
        else:
            if bool(active.any()):
                warnings.warn(f"Equivariant: composition stopped after max_stages={self.max_stages} stages "
                              f"with {int(active.sum())} image(s) short of their time", stacklevel=2)

        if ndim == 4:
            return u, phi
        if ndim == 3:
            return u[0], phi[0]
        return u[0, 0], phi[0, 0]


def composes_in_time(model) -> bool:
    """Whether ``model`` answers queries beyond its trained times by composition: an :class:`Equivariant`
    with ``compose=True``, alone or inside a :class:`DihedralMean`. Its ``u_t`` then jumps where two stages
    join (see the module doc), which autodiff in ``t`` does not see.

    Examples
    --------
    >>> from pdeflow.tvflownet import Equivariant, SemiResNet
    >>> from pdeflow.tvflownet.symmetry import composes_in_time
    >>> net = SemiResNet(width=4, depth=3)
    >>> composes_in_time(net), composes_in_time(Equivariant(net, scale=5.0, t_max=1.0))
    (False, True)
    """
    inner = model.model if isinstance(model, DihedralMean) else model
    return isinstance(inner, Equivariant) and inner.compose


def flow_model(model: nn.Module, *, equivariant: bool = True, contrast: str = "range",
               symmetry: str | None = "transpose") -> nn.Module:
    """``model`` wrapped as :func:`pdeflow.tvflownet.flow` calls it: :class:`Equivariant` first (unless
    ``equivariant`` is false or ``model`` is already an :class:`Equivariant` or :class:`DihedralMean`), then
    the :class:`DihedralMean` over ``symmetry`` (none for ``None``), so that the mean is over exact
    symmetries of the equivariant model.

    Examples
    --------
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.symmetry import flow_model
    >>> wrapped = flow_model(SemiResNet(width=4, depth=3), symmetry="transpose")
    >>> type(wrapped).__name__, type(wrapped.model).__name__
    ('DihedralMean', 'Equivariant')
    """
    if equivariant and not isinstance(model, (Equivariant, DihedralMean)):
        model = Equivariant(model, contrast=contrast)
    return DihedralMean(model, symmetry) if symmetry is not None else model


# ------------------------------------------------------------------ the symmetries of the square
#
# The TV flow commutes with flips and transposition of the grid. On pixels these act as usual; the flux phi
# lives on the cell edges of the forward-difference grid (component 0 between rows i and i+1, component 1
# between columns j and j+1; the last row / column is unused, see pdeflow.ops.grad), so a flip of rows
# reverses component 0's sign *and* moves its edge i to H-2-i, one place off the pixel flip, and a
# transposition swaps the two components. With these, div(g phi) = g div(phi) for every element g.

def _flip_axis(u: torch.Tensor, phi: torch.Tensor | None, axis: int):
    """Reflect rows (``axis=0``) or columns (``axis=1``) of ``u`` ``(..., H, W)`` and ``phi`` ``(..., 2, H, W)``."""
    dim = -2 + axis
    u = u.flip(dim)
    if phi is None:
        return u, None
    along = -phi.select(-3, axis).flip(dim)
    # edge k (between k and k+1) goes to edge n-2-k: the flipped field shifted back by one, unused last slot zero
    along = torch.cat([along.narrow(dim, 1, along.shape[dim] - 1), torch.zeros_like(along.narrow(dim, 0, 1))], dim)
    across = phi.select(-3, 1 - axis).flip(dim)
    comps = (along, across) if axis == 0 else (across, along)
    return u, torch.stack(comps, -3)


def _transpose(u: torch.Tensor, phi: torch.Tensor | None):
    u = u.transpose(-1, -2)
    if phi is None:
        return u, None
    return u, phi.flip(-3).transpose(-1, -2)


def dihedral(u: torch.Tensor, phi: torch.Tensor | None, k: int, *, inverse: bool = False):
    """Element ``k`` (0-7) of the symmetries of the square applied to ``u`` and its flux ``phi``.

    ``k`` encodes a row flip (bit 0), a column flip (bit 1) and a transposition
    (bit 2), applied in that order (``inverse``: undone in reverse order).
    ``phi`` (``(..., 2, H, W)`` on the edges of :func:`pdeflow.ops.grad`, or
    ``None``) is mapped so that ``div(phi)`` maps as ``u`` does.

    Returns
    -------
    u, phi : Tensor
        ``phi`` is ``None`` when given ``None``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import div, grad
    >>> from pdeflow.tvflownet.symmetry import dihedral
    >>> u = torch.arange(12.0).reshape(1, 1, 3, 4)
    >>> v, p = dihedral(u, grad(u), 5)  # a row flip, then the transposition
    >>> v.shape, torch.equal(div(p), dihedral(div(grad(u)), None, 5)[0])
    (torch.Size([1, 1, 4, 3]), True)
    >>> torch.equal(dihedral(v, p, 5, inverse=True)[0], u)
    True
    """
    if not (isinstance(k, int) and 0 <= k < 8):
        raise UserInputError(f"k must be an int in 0..7, got {k!r}")
    steps = [s for bit, s in ((1, "rows"), (2, "cols"), (4, "transpose")) if k & bit]
    for s in (reversed(steps) if inverse else steps):
        if s == "transpose":
            u, phi = _transpose(u, phi)
        else:
            u, phi = _flip_axis(u, phi, 0 if s == "rows" else 1)
    return u, phi


class DihedralMean(ModelWrapper):
    """Average a model over symmetries of the grid: ``mean_g g^-1 model(g u0, t)``.

    The continuous TV flow commutes with flips and quarter turns; the discrete
    one (isotropic TV with forward differences, :mod:`pdeflow.ops`) only with
    the transposition: a flip turns forward differences into backward ones, and
    the flow of a flipped image differs from the flipped flow (by 0.2-0.25 on
    intensities of 0-5 for noise at t = 0.2). ``group="transpose"`` averages
    over the identity and the transposition, an exact symmetry of the reference
    flow (2 network calls); ``group="square"`` over all 8 symmetries of the
    square, exact for the continuous flow (8 calls). Either average is exactly
    equivariant under its group, for ``u`` and for ``div phi`` (``phi`` mapped
    as a flux on the grid's edges, :func:`dihedral`). Shapes and time forms as
    the TVflowNET models; a non-square image is fine (its transposes are
    ``(W, H)``).

    Parameters
    ----------
    model : nn.Module
        ``model(u0, t) -> (u, phi)`` (a TVflowNET, or an :class:`Equivariant` one).
    group : {"transpose", "square"}

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.symmetry import DihedralMean
    >>> _ = torch.manual_seed(0)
    >>> model = DihedralMean(SemiResNet(width=4, depth=3), group="transpose")
    >>> u0 = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(model(u0.transpose(-1, -2), 0.5)[0], model(u0, 0.5)[0].transpose(-1, -2), atol=1e-6)
    True
    """

    GROUPS = {"transpose": (0, 4), "square": tuple(range(8))}

    def __init__(self, model: nn.Module, group: str = "transpose"):
        super().__init__()
        if group not in self.GROUPS:
            raise UserInputError(f"group must be one of {', '.join(map(repr, self.GROUPS))}, got {group!r}")
        self.model = model
        self.group = group

    def extra_repr(self) -> str:
        return f"group={self.group!r}"

    def forward(self, u0: torch.Tensor, t):
        elements = self.GROUPS[self.group]
        u_sum = phi_sum = None
        for k in elements:
            v, p = self.model(dihedral(u0, None, k)[0], t)
            v, p = dihedral(v, p, k, inverse=True)
            u_sum = v if u_sum is None else u_sum + v
            phi_sum = p if phi_sum is None else phi_sum + p
        return u_sum / len(elements), phi_sum / len(elements)
