"""Discrete calculus on the pixel grid: the one place it lives.

Conventions (unit pixel spacing, Chambolle 2004):

* ``grad(u)``: forward differences, zero in the last row (derivative along H) and last column (along W):
  homogeneous Neumann. ``(..., H, W)`` -> ``(..., 2, H, W)``, component 0 along H (axis -2), 1 along W (axis -1).
* ``div(p) = -grad^T p`` exactly (backward differences, matching boundary rows): ``<grad u, p> = -<u, div p>``
  to round-off.
* ``laplacian(u) = div(grad(u))``, the 5-point Neumann Laplacian.
* ``zero_edges=True`` (``grad``, ``div``, ``tv_eps``): the official TVflowNET code's convention (Grossmann et al.,
  2022; its ``zero_out=True``): the normal derivative is also zero on the *first* row (along H) and column (along
  W); ``div(p, zero_edges=True)`` is ``div`` of ``p`` with the normal component zeroed on all four edges, keeping
  ``div(., zero_edges=True) = -grad(., zero_edges=True)^T``. On a field zero on a one-pixel border both ``div``
  agree.
* ``tv(u)`` sums the pointwise Euclidean norm of the gradient; it couples channels (vectorial TV) unless
  ``channelwise=True``.

Volumes (3-D) and grid spacing
------------------------------
Every calculus function (``grad``, ``div``, ``laplacian``, ``gradient_norm``, ``tv``, ``tv_eps``) takes a
keyword-only ``ndim`` (number of *spatial* axes, 2 or 3), all but ``gradient_norm`` a keyword-only ``spacing``.
**A tensor is 3-D only when the call says so**: ``ndim=3``, or a ``spacing`` of length 3; the default ``ndim=2``
reads the last two axes as ``(H, W)`` and the rest as batch, so a 5-D tensor is a stack of images (shapes cannot
tell a batch of colour images from a volume). A ``spacing`` whose length contradicts ``ndim`` is refused.

* With ``ndim=3`` a volume ``(..., D, H, W)`` has the gradient ``(..., 3, D, H, W)``, components ``[d/dD, d/dH,
  d/dW]`` (axis -3, -2, -1), forward differences, zero in the last slice / row / column (Neumann); ``div`` takes
  ``(..., 3, D, H, W)``; ``laplacian`` is the 7-point stencil; ``tv`` and ``tv_eps`` take ``(D, H, W)``,
  ``(C, D, H, W)`` or ``(B, C, D, H, W)``, returning ``(B,)`` for 5-D input, else 0-d. ``zero_edges`` extends
  alike (first slice too).
* ``spacing``: the distance between sample centres per spatial axis, ``(dy, dx)`` or ``(dz, dy, dx)`` (a number:
  the same on every axis; ``None``, the default: unit), in the caller's units (millimetres for the volumes of
  :mod:`pdeflow.io`). The gradient is the forward difference over the spacing, ``grad(u)_k = (u[i + e_k] - u[i])
  / h_k`` (units of ``u`` per unit length); ``div`` is its exact negative adjoint, the backward difference of
  ``p_k / h_k`` summed over ``k``. The adjoint holds in the inner product weighted by the voxel volume ``w = prod
  h`` on both sides (``sum w <grad u, p> = -sum w u div p``); the weight is one constant, so it also holds
  unweighted, to round-off. ``laplacian = div(grad(.))``: the second difference over ``h_k^2`` per axis. ``tv``
  and ``tv_eps`` are Riemann sums of the continuum integrals over the voxel cells, ``prod(h) * sum_i sqrt(|grad
  u|_i^2 (+ eps^2))`` (``eps`` in units of ``u`` per unit length), comparable between grids: a ramp ``u = s * x``
  along W has ``tv = s * (W - 1) dx * (H dy) (* D dz)``, slope times the ramp's extent between the first and last
  sample centres times the cells' cross-section. With unit spacing every function is the unit-grid operator
  above, bit for bit, on the same code path.
"""
from __future__ import annotations

import math
from numbers import Real

import torch

from .errors import InputDtypeError, UserInputError

# the layout rule, exported here beside the one image check it goes with (its home: pdeflow.layout)
from .layout import ChannelsWarning, Layout, follows_layout_rule, layout_message, read_layout

__all__ = ["grad", "div", "laplacian", "gradient_norm", "tv", "tv_eps", "batch_sum", "as_batch", "unbatch",
           "check_tensor", "check_float", "check_image", "image_batch", "read_layout", "Layout", "ChannelsWarning",
           "follows_layout_rule", "layout_message"]


def spatial_axes(ndim, spacing, who: str) -> tuple[int, tuple[float, ...] | None]:
    """The number of spatial axes and the grid spacing (None: unit) of a call taking ``ndim`` and ``spacing``
    (the calculus here, ``inpaint_diffusion``); see the module docstring. ``who`` names the function in messages."""
    if ndim is not None and (isinstance(ndim, bool) or ndim not in (2, 3)):
        raise UserInputError(f"{who}: ndim (the number of spatial axes) must be 2 or 3, got {ndim!r}")
    if spacing is None:
        return (2 if ndim is None else ndim), None
    if isinstance(spacing, Real) and not isinstance(spacing, bool):
        n = 2 if ndim is None else ndim
        h = (spacing,) * n
    else:
        try:
            h = tuple(spacing)
        except TypeError:
            raise UserInputError(f"{who}: spacing must be None, a number, or (dy, dx) or (dz, dy, dx), "
                                 f"got {spacing!r}") from None
        if len(h) not in (2, 3):
            raise UserInputError(f"{who}: spacing must have 2 values (dy, dx) or 3 (dz, dy, dx), got {spacing!r}")
        if ndim is not None and len(h) != ndim:
            raise UserInputError(f"{who}: spacing {spacing!r} has {len(h)} values but ndim={ndim} "
                                 "(one value per spatial axis)")
        n = len(h)
    if not all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in h):
        raise UserInputError(f"{who}: spacing must hold finite numbers > 0, got {spacing!r}")
    h = tuple(float(v) for v in h)
    return n, (None if all(v == 1.0 for v in h) else h)   # unit spacing: the unit-grid code path, bit for bit


def check_tensor(u, name: str = "u") -> torch.Tensor:
    """``u`` as a tensor that holds values, the first check of every image-like argument: a NumPy array or
    (nested) list of numbers becomes one via ``torch.as_tensor`` (float64 arrays stay float64, Python floats
    become float32); a ``meta`` or empty tensor or anything else is refused with a
    :class:`~pdeflow.errors.UserInputError` naming ``name``. Constant time for a tensor (hot-path safe).

    Examples
    --------
    >>> import numpy as np
    >>> from pdeflow.ops import check_tensor
    >>> check_tensor(np.zeros((2, 3)), "f").dtype
    torch.float64
    >>> try:
    ...     check_tensor([], "f")
    ... except ValueError as err:
    ...     print(err)
    f is empty (an empty batch or image: every axis must have a size >= 1), got shape (0,)
    """
    if isinstance(u, torch.Tensor) and not u.is_meta and u.numel():
        return u                  # the common case first: a fraction of a microsecond
    if not isinstance(u, torch.Tensor):
        if not hasattr(u, "__array__") and not isinstance(u, (list, tuple)):
            raise UserInputError(f"{name} must be a torch.Tensor, a NumPy array or a list of numbers, "
                                 f"got {type(u).__name__}")
        try:
            u = torch.as_tensor(u)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise UserInputError(f"{name} must be a torch.Tensor, a NumPy array or a list of numbers, "
                                 f"got {type(u).__name__} ({exc})") from None
    if u.device.type == "meta":
        raise UserInputError(f"{name} is on the 'meta' device, which holds no values; pass a tensor on a "
                             "real device (cpu, cuda, ...)")
    if u.numel() == 0:
        raise UserInputError(f"{name} is empty (an empty batch or image: every axis must have a size >= 1), "
                             f"got shape {tuple(u.shape)}")
    return u


def _per_axis(h: tuple[float, ...], power: int, like: torch.Tensor) -> torch.Tensor:
    """``h_k ** -power`` as a ``(n, 1, ..., 1)`` tensor that broadcasts over a field's component axis."""
    return torch.tensor([v ** -power for v in h], dtype=like.dtype, device=like.device).view(-1, *([1] * len(h)))


def grad(u: torch.Tensor, *, zero_edges: bool = False, spacing=None, ndim: int | None = None) -> torch.Tensor:
    """Forward-difference gradient with Neumann boundary.

    Parameters
    ----------
    u : Tensor, shape (..., H, W), or (..., D, H, W) with ``ndim=3``
    zero_edges : bool, optional
        Also zero the derivative along H in the first row and along W in the
        first column (and along D in the first slice, in 3-D): the official
        TVflowNET code's convention, see the module docstring.
    spacing : float or sequence of float, optional
        Grid spacing ``(dy, dx)`` or ``(dz, dy, dx)``; the differences are
        divided by it (default unit). Length 3 implies ``ndim=3``.
    ndim : {2, 3}, optional
        Number of spatial axes (default 2, or the length of ``spacing``).

    Returns
    -------
    Tensor, shape (..., 2, H, W) or (..., 3, D, H, W)
        ``[d/dH, d/dW]`` (``[d/dD, d/dH, d/dW]`` in 3-D); zero in the last
        row / last column (/ last slice) respectively (and in the first one
        with ``zero_edges``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import grad
    >>> u = torch.tensor([[0., 1., 3.], [0., 1., 3.]])
    >>> grad(u)
    tensor([[[0., 0., 0.],
             [0., 0., 0.]],
    <BLANKLINE>
            [[1., 2., 0.],
             [1., 2., 0.]]])
    """
    n, h = spatial_axes(ndim, spacing, "grad")
    u = check_float(u, "grad: u")   # integers would wrap around (uint8) or truncate
    if n == 2:
        if u.dim() < 2:
            raise UserInputError(f"grad: u must have at least 2 dimensions (..., H, W), got shape {tuple(u.shape)}")
        g = u.new_zeros(*u.shape[:-2], 2, *u.shape[-2:])
        g[..., 0, :-1, :] = u[..., 1:, :] - u[..., :-1, :]
        g[..., 1, :, :-1] = u[..., :, 1:] - u[..., :, :-1]
        if zero_edges:
            g[..., 0, 0, :] = 0
            g[..., 1, :, 0] = 0
    else:
        if u.dim() < 3:
            raise UserInputError(f"grad: u must have at least 3 dimensions (..., D, H, W) with ndim=3, "
                                 f"got shape {tuple(u.shape)}")
        g = u.new_zeros(*u.shape[:-3], 3, *u.shape[-3:])
        g[..., 0, :-1, :, :] = u[..., 1:, :, :] - u[..., :-1, :, :]
        g[..., 1, :, :-1, :] = u[..., :, 1:, :] - u[..., :, :-1, :]
        g[..., 2, :, :, :-1] = u[..., :, :, 1:] - u[..., :, :, :-1]
        if zero_edges:
            g[..., 0, 0, :, :] = 0
            g[..., 1, :, 0, :] = 0
            g[..., 2, :, :, 0] = 0
    return g if h is None else g * _per_axis(h, 1, g)


def div(p: torch.Tensor, *, zero_edges: bool = False, spacing=None, ndim: int | None = None) -> torch.Tensor:
    """Backward-difference divergence, the exact negative adjoint of :func:`grad`.

    Parameters
    ----------
    p : Tensor, shape (..., 2, H, W), or (..., 3, D, H, W) with ``ndim=3``
    zero_edges : bool, optional
        The negative adjoint of ``grad(., zero_edges=True)``: the divergence of
        ``p`` with component 0 zeroed in the first and last rows and component 1
        in the first and last columns (the official TVflowNET code's convention;
        in 3-D each component on its first and last slab).
    spacing : float or sequence of float, optional
        Grid spacing ``(dy, dx)`` or ``(dz, dy, dx)`` (default unit): the
        negative adjoint of ``grad(., spacing=spacing)``, the backward
        difference of ``p_k / h_k`` summed over ``k``. Length 3 implies ``ndim=3``.
    ndim : {2, 3}, optional
        Number of spatial axes (default 2, or the length of ``spacing``).

    Returns
    -------
    Tensor, shape (..., H, W) or (..., D, H, W)

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import div, grad
    >>> u = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> p = torch.randn(2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    >>> torch.allclose((grad(u) * p).sum(), -(u * div(p)).sum())
    True
    """
    n, h = spatial_axes(ndim, spacing, "div")
    p = check_float(p, "div: p")   # integers would wrap around (uint8) or truncate
    if n == 3:
        return _div3(p, zero_edges, h)
    if p.dim() < 3 or p.shape[-3] != 2:
        raise UserInputError(f"div: p must have shape (..., 2, H, W), got {tuple(p.shape)}")
    if h is not None:
        p = p * _per_axis(h, 1, p)
    p0, p1 = p[..., 0, :, :], p[..., 1, :, :]
    if zero_edges:
        # (the last row of p0 and last column of p1 never enter below)
        p0 = torch.cat([torch.zeros_like(p0[..., :1, :]), p0[..., 1:, :]], dim=-2)
        p1 = torch.cat([torch.zeros_like(p1[..., :, :1]), p1[..., :, 1:]], dim=-1)
    d = torch.zeros_like(p0)
    # d/dH part: p0[i] - p0[i-1] inside, p0[0] on the first row, -p0[H-2] on the last.
    d[..., :-1, :] += p0[..., :-1, :]
    d[..., 1:, :] -= p0[..., :-1, :]
    d[..., :, :-1] += p1[..., :, :-1]
    d[..., :, 1:] -= p1[..., :, :-1]
    return d


def _div3(p: torch.Tensor, zero_edges: bool, h) -> torch.Tensor:
    """:func:`div` with ``ndim=3``: the same backward differences along D, H and W."""
    if p.dim() < 4 or p.shape[-4] != 3:
        raise UserInputError(f"div: p must have shape (..., 3, D, H, W) with ndim=3, got {tuple(p.shape)}")
    if h is not None:
        p = p * _per_axis(h, 1, p)
    d = torch.zeros_like(p[..., 0, :, :, :])
    for k in range(3):
        axis = k - 3                           # -3, -2, -1: D, H, W
        n = p.shape[axis]
        pk = p[..., k, :, :, :].narrow(axis, 0, max(n - 1, 0))   # the last slab never enters
        if zero_edges and n > 1:
            pk = torch.cat([torch.zeros_like(pk.narrow(axis, 0, 1)), pk.narrow(axis, 1, n - 2)], dim=axis)
        d.narrow(axis, 0, n - 1).add_(pk)
        d.narrow(axis, 1, n - 1).sub_(pk)
    return d


_LAPLACE_KERNELS: dict = {}
#: Largest tensor (elements) whose Laplacian is one convolution; larger ones take shifted slices, which are
#: faster there on a CPU (results page "Speed", "Smaller choices in the code").
LAPLACE_CONV_MAX_ELEMENTS = 8192


def laplacian(u: torch.Tensor, *, spacing=None, ndim: int | None = None) -> torch.Tensor:
    """5-point Laplacian with Neumann boundary, ``div(grad(u))``; shape as ``u`` (at least 2-D).

    With ``ndim=3`` (or a 3-element ``spacing``) the 7-point Laplacian of ``(..., D, H, W)``; with ``spacing``
    each axis's second difference is divided by ``h_k ** 2`` (``div(grad(u, spacing=h), spacing=h)``).

    The 5-point stencil on ``u`` padded by replicating its border (a zero flux across it), equal to
    ``div(grad(u))`` up to rounding. Floating-point tensors of at most :data:`LAPLACE_CONV_MAX_ELEMENTS`
    elements (the diffusion solvers' inner loop on a small image) take one convolution, where per-operation
    overhead dominates; larger ones add the four shifted neighbours in place.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import laplacian
    >>> u = torch.zeros(3, 3)
    >>> u[1, 1] = 1.0
    >>> laplacian(u)
    tensor([[ 0.,  1.,  0.],
            [ 1., -4.,  1.],
            [ 0.,  1.,  0.]])
    """
    n, h = spatial_axes(ndim, spacing, "laplacian")
    u = check_float(u, "laplacian: u")   # integers would wrap around (uint8) or truncate
    if n == 3 or h is not None:
        return _laplacian_weighted(u, n, h)
    if u.dim() < 2:
        raise UserInputError(f"laplacian: u must have at least 2 dimensions (..., H, W), got shape {tuple(u.shape)}")
    if u.is_floating_point() and u.numel() <= LAPLACE_CONV_MAX_ELEMENTS:
        H, W = u.shape[-2:]
        x = u.reshape(-1, 1, H, W)           # pad's replicate mode wants a (N, C, H, W) batch
        p = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        key = (u.dtype, u.device)
        k = _LAPLACE_KERNELS.get(key)
        if k is None:
            k = _LAPLACE_KERNELS[key] = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
                                                     dtype=u.dtype, device=u.device).view(1, 1, 3, 3)
        return torch.nn.functional.conv2d(p, k).view(u.shape)
    # -4 u plus each neighbour in place (a border pixel's missing neighbour is itself); one new tensor
    out = u.mul(-4)
    for axis in (-2, -1):
        n = u.shape[axis]
        out.narrow(axis, 1, n - 1).add_(u.narrow(axis, 0, n - 1))
        out.narrow(axis, 0, n - 1).add_(u.narrow(axis, 1, n - 1))
        out.narrow(axis, 0, 1).add_(u.narrow(axis, 0, 1))
        out.narrow(axis, n - 1, 1).add_(u.narrow(axis, n - 1, 1))
    return out


def _laplacian_weighted(u: torch.Tensor, n: int, h) -> torch.Tensor:
    """:func:`laplacian` in 3-D or with a spacing: the second difference along each axis of the
    border-replicated ``u`` (a zero flux across the boundary), divided by ``h_k ** 2``; shifted slices."""
    if u.dim() < n:
        raise UserInputError(f"laplacian: u must have at least {n} dimensions "
                             f"({'(..., D, H, W) with ndim=3' if n == 3 else '(..., H, W)'}), "
                             f"got shape {tuple(u.shape)}")
    x = u.reshape(-1, 1, *u.shape[-n:])  # pad's replicate mode wants a (N, C, *spatial) batch
    p = torch.nn.functional.pad(x, (1, 1) * n, mode="replicate")
    inner = [slice(1, -1)] * n
    out = None
    for k in range(n):
        lo, hi = list(inner), list(inner)
        lo[k], hi[k] = slice(None, -2), slice(2, None)
        term = p[(..., *lo)] + p[(..., *hi)] - 2 * x
        if h is not None and h[k] != 1.0:
            term = term / (h[k] * h[k])
        out = term if out is None else out + term
    return out.reshape(u.shape)


def batch_sum(x: torch.Tensor, keep: int = 1) -> torch.Tensor:
    """Sum over all but the first ``keep`` dimensions (per-image reductions).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import batch_sum
    >>> batch_sum(torch.ones(2, 3, 4, 5))
    tensor([60., 60.])
    """
    x = check_float(x, "batch_sum: x")
    return x.reshape(*x.shape[:keep], -1).sum(-1) if x.dim() > keep else x


def gradient_norm(g: torch.Tensor, *, channelwise: bool = False, eps: float = 0.0,
                  ndim: int | None = None) -> torch.Tensor:
    """Pointwise norm ``sqrt(|g|^2 + eps^2)`` of a gradient field ``(B, C, 2, H, W)``.

    ``channelwise=False`` couples the channels: ``(B, 1, H, W)``; else ``(B, C, H, W)``. With ``ndim=3`` the
    field is ``(B, C, 3, D, H, W)``, the result ``(B, 1 or C, D, H, W)``. The field is taken as is (a
    :func:`grad` with ``spacing`` has divided by it). Differentiable; with ``eps = 0`` the derivative at a zero
    gradient is 0 (the least-norm subgradient), so :func:`tv` has a finite gradient on flat regions.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import grad, gradient_norm
    >>> u = torch.tensor([[0., 3.], [4., 7.]]).expand(1, 1, 2, 2)
    >>> gradient_norm(grad(u))
    tensor([[[[5., 4.],
              [3., 0.]]]])
    """
    n, _ = spatial_axes(ndim, None, "gradient_norm")
    g = check_float(g, "gradient_norm: g")   # integers would wrap around (uint8) or truncate
    if g.dim() < n + 2 or g.shape[-n - 1] != n:
        raise UserInputError(f"gradient_norm: g must have shape (..., C, {n}, {', '.join('DHW'[3 - n:])}) "
                             f"(a gradient field of a (C, ...) image), got {tuple(g.shape)}")
    sq = (g * g).sum(-n - 1)
    if not channelwise:
        sq = sq.sum(-n - 1, keepdim=True)
    if eps:
        return torch.sqrt(sq + eps * eps)
    if sq.requires_grad:
        # at g = 0 take the least-norm subgradient, 0 (sqrt's inf derivative times 0 would be NaN)
        pos = sq > 0
        return torch.where(pos, torch.sqrt(torch.where(pos, sq, torch.ones_like(sq))), torch.zeros_like(sq))
    return torch.sqrt(sq)


def as_batch(u: torch.Tensor, name: str = "u", ndim: int = 2) -> tuple[torch.Tensor, int]:
    """The one shape promotion: ``u`` as a ``(B, C, H, W)`` view (``ndim=3``: ``(B, C, D, H, W)``), and its
    original number of dimensions.

    ``(H, W)`` becomes ``(1, 1, H, W)`` and ``(C, H, W)`` becomes ``(1, C, H, W)`` (volumes alike, with a
    depth axis); undo it with :func:`unbatch` to return the shape a caller gave. A NumPy array or a list
    of numbers is taken as ``torch.as_tensor`` makes it.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import as_batch
    >>> x, ndim = as_batch(torch.zeros(2, 3, 5))
    >>> tuple(x.shape), ndim
    ((1, 2, 3, 5), 3)
    >>> tuple(as_batch(torch.zeros(2, 3, 5), ndim=3)[0].shape)
    (1, 1, 2, 3, 5)

    Raises
    ------
    pdeflow.errors.UserInputError
        ``u`` does not have ``ndim`` to ``ndim + 2`` dimensions, is empty, is on the ``meta`` device or
        is not array-like (the message names ``name``).
    """
    u = check_tensor(u, name)
    if ndim == 3:
        if u.dim() in (3, 4, 5):
            return u[(None,) * (5 - u.dim())], u.dim()
        raise UserInputError(f"{name} must have shape (D, H, W), (C, D, H, W) or (B, C, D, H, W) with ndim=3, "
                             f"got {tuple(u.shape)}")
    if u.dim() in (2, 3, 4):
        return u[(None,) * (4 - u.dim())], u.dim()
    volume = "; a batch of volumes (B, C, D, H, W) needs ndim=3 (or a 3-element spacing)" if u.dim() == 5 else ""
    raise UserInputError(f"{name} must have shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(u.shape)}{volume}")


def unbatch(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Undo :func:`as_batch`: drop the leading axes of the batched ``x`` (images or volumes) until it has
    ``ndim`` dimensions, the number :func:`as_batch` returned.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import as_batch, unbatch
    >>> x, ndim = as_batch(torch.zeros(3, 5))
    >>> tuple(x.shape), tuple(unbatch(x, ndim).shape)
    ((1, 1, 3, 5), (3, 5))
    """
    return x[(0,) * (x.dim() - ndim)]


def correlate1d(x: torch.Tensor, weights, dim: int) -> torch.Tensor:
    """The valid 1-D correlation of ``x`` with ``weights`` along ``dim``: ``out[i] = sum_k weights[k] x[i + k]``,
    ``x.shape[dim] - len(weights) + 1`` samples (no checks: a helper of the filters of :mod:`pdeflow.metrics`
    and the mask methods).

    A weighted sum of shifted slices, not a convolution: CPU convolutions are slow with one channel and a
    9-17 tap 1-D kernel; the shifted sum streams through memory once per tap.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import correlate1d
    >>> correlate1d(torch.tensor([[1.0, 2.0, 4.0, 8.0]]), [1.0, 0.5], dim=1)
    tensor([[2., 4., 8.]])
    """
    w = weights.tolist() if isinstance(weights, torch.Tensor) else [float(v) for v in weights]
    n = x.shape[dim] - len(w) + 1
    out = x.narrow(dim, 0, n) * w[0]
    for k in range(1, len(w)):
        out.add_(x.narrow(dim, k, n), alpha=w[k])
    return out


# the dtypes 16-bit PNG and TIFF intensities arrive in (torch.uint16 exists from torch 2.3)
_SIXTEEN_BIT = tuple(d for d in (torch.int16, getattr(torch, "uint16", None), torch.int32) if d is not None)


def check_float(u: torch.Tensor, name: str = "u") -> torch.Tensor:
    """The library's one rule for the dtype of images (and volumes, logits): floating point only.

    Integer and bool images are refused, never rescaled silently (is 255 white, or a value of 255?), with an
    :class:`~pdeflow.errors.InputDtypeError` (a :class:`~pdeflow.errors.UserInputError` and a TypeError) naming
    ``name`` and the dtype and how to convert: ``x.float() / 255`` for 8-bit intensities, or
    :func:`pdeflow.io.read_image` (floats in [0, 1]). Masks and label maps have their own checks. Returns ``u``
    as :func:`check_tensor` makes it; constant time for a tensor.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import check_float
    >>> check_float(torch.zeros(2, 2), "f").dtype
    torch.float32
    >>> try:
    ...     check_float(torch.zeros(2, 2, dtype=torch.uint8), "f")
    ... except ValueError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    f must be a floating-point tensor (float32 or float64), got dtype torch.uint8: ...
    """
    u = check_tensor(u, name)
    if u.is_floating_point():
        return u
    if u.dtype == torch.uint8:
        how = "x.float() / 255 for 8-bit intensities"
    elif u.dtype in _SIXTEEN_BIT:
        how = "x.float() / 65535 for 16-bit intensities, or x.float() / m for a white level m"
    elif u.dtype == torch.bool:
        how = "x.float() for a 0/1 image"
    elif u.is_complex():
        how = "x.real or x.abs()"
    else:
        how = "x.float() / m for a white level m"
    raise InputDtypeError(f"{name} must be a floating-point tensor (float32 or float64), got dtype {u.dtype}: "
                          f"integer and bool images are not rescaled silently; convert it first ({how}), or "
                          "read files with pdeflow.io.read_image, which returns floats in [0, 1]")


def check_image(u: torch.Tensor, name: str = "u", *, ndim: int = 2, finite: bool = True,
                min_size: int = 1) -> torch.Tensor:
    """The one check of an image (``ndim=2``) or a volume (``ndim=3``), used by every public function.

    Accepts a non-empty floating-point tensor (H, W), (C, H, W) or (B, C, H, W) (volumes: (D, H, W),
    (C, D, H, W) or (B, C, D, H, W)) not on ``meta``, at least ``min_size`` samples per spatial axis, finite
    unless ``finite=False`` (for callers that check the values they read); array-likes as
    ``torch.as_tensor`` makes them. Returns ``u`` as that tensor, in its given shape. Refuses anything else
    with a :class:`~pdeflow.errors.UserInputError` naming ``name`` (integer or bool dtypes: the
    :class:`~pdeflow.errors.InputDtypeError` of :func:`check_float`).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import check_image
    >>> check_image(torch.zeros(4, 4), "f").shape
    torch.Size([4, 4])
    >>> check_image(torch.full((4, 4), float("nan")), "f")
    Traceback (most recent call last):
    ...
    pdeflow.errors.UserInputError: f contains NaN or infinite values
    >>> check_image(torch.zeros(3, 1, 4), "f", ndim=3, min_size=2)
    Traceback (most recent call last):
    ...
    pdeflow.errors.UserInputError: f must be at least 2x2x2 voxels, got (3, 1, 4)
    """
    u = check_float(u, name)
    ub = as_batch(u, name, ndim)[0]
    if min_size > 1 and min(ub.shape[2:]) < min_size:
        what = f"{min_size}x{min_size} pixels" if ndim == 2 else f"{min_size}x{min_size}x{min_size} voxels"
        raise UserInputError(f"{name} must be at least {what}, got {tuple(u.shape)}")
    if finite and not bool(torch.isfinite(torch.stack(torch.aminmax(u))).all()):
        # NaN propagates to both ends and an infinity is one of them: one read-only pass (isfinite writes a mask)
        raise UserInputError(f"{name} contains NaN or infinite values")
    return u


def image_batch(u: torch.Tensor, name: str = "u", *, min_size: int = 1) -> torch.Tensor:
    """:func:`check_image` and :func:`as_batch` in one: ``u`` as a checked ``(B, C, H, W)`` view, refusing
    images smaller than ``min_size`` x ``min_size`` pixels (the message names ``name``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import image_batch
    >>> image_batch(torch.zeros(4, 5), "f", min_size=2).shape
    torch.Size([1, 1, 4, 5])
    """
    return as_batch(check_image(u, name, min_size=min_size), name)[0]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the library computes in for data of ``dtype``: float32 for floating-point dtypes narrower
    than float32 (float16, bfloat16, float8), whose sums lose digits the methods need; else ``dtype``. The one
    place half precision is promoted; functions that promote return results in the input's dtype.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import compute_dtype
    >>> compute_dtype(torch.bfloat16), compute_dtype(torch.float64)
    (torch.float32, torch.float64)
    """
    if dtype.is_floating_point and torch.finfo(dtype).bits < 32:
        return torch.float32
    return dtype


def promote_half(u: torch.Tensor) -> torch.Tensor:
    """``u`` in :func:`compute_dtype` of its dtype: a float32 copy of a half-precision tensor (autograd
    kept), ``u`` itself otherwise.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import promote_half
    >>> promote_half(torch.zeros(2, dtype=torch.float16)).dtype
    torch.float32
    >>> x = torch.zeros(2)
    >>> promote_half(x) is x
    True
    """
    dtype = compute_dtype(u.dtype)
    return u if dtype == u.dtype else u.to(dtype)


def tv(u: torch.Tensor, *, channelwise: bool = False, spacing=None, ndim: int | None = None) -> torch.Tensor:
    """Isotropic total variation ``sum sqrt(ux^2 + uy^2)`` per image.

    Parameters
    ----------
    u : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Or, with ``ndim=3``, a volume ``(D, H, W)``, ``(C, D, H, W)`` or
        ``(B, C, D, H, W)`` (``sum sqrt(uz^2 + uy^2 + ux^2)``).
    channelwise : bool
        If False (default) colour channels are coupled (vectorial TV,
        ``sum sqrt(sum_c |grad u_c|^2)``); if True the TVs of the channels add.
    spacing : float or sequence of float, optional
        Grid spacing ``(dy, dx)`` or ``(dz, dy, dx)`` (default unit; length 3
        implies ``ndim=3``): the TV is then ``prod(spacing) * sum |grad u|``
        with ``grad`` divided by the spacing, the Riemann sum of the
        continuum TV (see the module docstring).
    ndim : {2, 3}, optional
        Number of spatial axes (default 2, or the length of ``spacing``).

    Returns
    -------
    Tensor
        Shape ``(B,)`` for a 4-D input (5-D with ``ndim=3``), a 0-d tensor otherwise.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import tv
    >>> u = torch.zeros(1, 1, 4, 4)
    >>> u[..., 1:3, 1:3] = 1.0  # a 2 x 2 square of height 1
    >>> tv(u)
    tensor([7.4142])
    """
    return tv_eps(u, 0.0, channelwise=channelwise, spacing=spacing, ndim=ndim)


def tv_eps(u: torch.Tensor, eps: float, *, channelwise: bool = False, zero_edges: bool = False,
           spacing=None, ndim: int | None = None) -> torch.Tensor:
    """Smoothed total variation ``sum sqrt(ux^2 + uy^2 + eps^2)`` per image; see :func:`tv`.

    ``eps`` enters at every pixel (``H * W * eps`` for a constant image); the
    gradient is ``grad(u, zero_edges=zero_edges)`` (see the module docstring).
    With ``spacing`` the sum is ``prod(spacing) * sum sqrt(|grad u|^2 + eps^2)``
    (``eps`` in units of ``u`` per unit length); ``ndim=3`` as :func:`tv`.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import tv_eps
    >>> tv_eps(torch.zeros(1, 1, 4, 4), 0.5)  # H * W * eps for a constant image
    tensor([8.])
    """
    n, h = spatial_axes(ndim, spacing, "tv")
    x, nd = as_batch(check_float(u), ndim=n)
    out = batch_sum(gradient_norm(grad(x, zero_edges=zero_edges, spacing=h, ndim=n), channelwise=channelwise,
                                  eps=eps, ndim=n))
    if h is not None:
        out = out * math.prod(h)
    return out if nd == n + 2 else out[0]
