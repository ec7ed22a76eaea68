"""Discrete calculus on the pixel grid: the one place it lives.

Conventions (unit pixel spacing, Chambolle 2004):

* ``grad(u)`` uses forward differences and is zero in the last row (for the
  derivative along H) and the last column (along W): homogeneous Neumann.
  For ``u`` of shape ``(..., H, W)`` it returns ``(..., 2, H, W)`` with
  component 0 the derivative along H (rows, axis -2) and component 1 along W
  (columns, axis -1).
* ``div(p) = -grad^T p`` exactly (backward differences with the matching
  boundary rows), so ``<grad u, p> = -<u, div p>`` holds to round-off.
* ``laplacian(u) = div(grad(u))`` is the 5-point Neumann Laplacian.
* ``zero_edges=True`` (``grad``, ``div``, ``tv_eps``) is the convention of the
  official TVflowNET code (Grossmann et al., 2022; its ``zero_out=True``): the
  derivative normal to the boundary is also zero on the *first* row (along H)
  and the first column (along W), so only the differences between interior
  rows/columns and their successors remain, and ``div(p, zero_edges=True)`` is
  ``div`` of ``p`` with the normal component zeroed on all four edges, which
  keeps ``div(., zero_edges=True) = -grad(., zero_edges=True)^T``.  For a field
  that is already zero on a one-pixel border the two ``div`` coincide.
* ``tv(u)`` sums the pointwise Euclidean norm of the gradient over the image;
  for several channels the norm couples them (vectorial TV) unless
  ``channelwise=True``.
"""
from __future__ import annotations

import torch

from .errors import UserInputError

__all__ = ["grad", "div", "laplacian", "gradient_norm", "tv", "tv_eps", "batch_sum"]


def grad(u: torch.Tensor, *, zero_edges: bool = False) -> torch.Tensor:
    """Forward-difference gradient with Neumann boundary.

    Parameters
    ----------
    u : Tensor, shape (..., H, W)
    zero_edges : bool, optional
        Also zero the derivative along H in the first row and along W in the
        first column (the official TVflowNET code's convention, see the module
        docstring).

    Returns
    -------
    Tensor, shape (..., 2, H, W)
        ``[d/dH, d/dW]``; zero in the last row / last column respectively (and
        in the first row / first column with ``zero_edges``).

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
    if u.dim() < 2:
        raise UserInputError(f"grad: u must have at least 2 dimensions (..., H, W), got shape {tuple(u.shape)}")
    g = u.new_zeros(*u.shape[:-2], 2, *u.shape[-2:])
    g[..., 0, :-1, :] = u[..., 1:, :] - u[..., :-1, :]
    g[..., 1, :, :-1] = u[..., :, 1:] - u[..., :, :-1]
    if zero_edges:
        g[..., 0, 0, :] = 0
        g[..., 1, :, 0] = 0
    return g


def div(p: torch.Tensor, *, zero_edges: bool = False) -> torch.Tensor:
    """Backward-difference divergence, the exact negative adjoint of :func:`grad`.

    Parameters
    ----------
    p : Tensor, shape (..., 2, H, W)
    zero_edges : bool, optional
        The negative adjoint of ``grad(., zero_edges=True)``: the divergence of
        ``p`` with component 0 zeroed in the first and last rows and component 1
        in the first and last columns (the official TVflowNET code's convention).

    Returns
    -------
    Tensor, shape (..., H, W)

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import div, grad
    >>> u = torch.randn(5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> p = torch.randn(2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    >>> torch.allclose((grad(u) * p).sum(), -(u * div(p)).sum())
    True
    """
    if p.dim() < 3 or p.shape[-3] != 2:
        raise UserInputError(f"div: p must have shape (..., 2, H, W), got {tuple(p.shape)}")
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


_LAPLACE_KERNELS: dict = {}
#: Largest tensor (elements) whose Laplacian is one convolution; larger ones take shifted slices. On one
#: CPU thread the convolution was about as fast up to 64 x 64 and 1.6-7x slower from 256 x 256 or a
#: batch of 16 at 64 x 64 (benchmarks/results/ops_laplacian/).
LAPLACE_CONV_MAX_ELEMENTS = 8192


def laplacian(u: torch.Tensor) -> torch.Tensor:
    """5-point Laplacian with Neumann boundary, ``div(grad(u))``; shape as ``u`` (at least 2-D).

    Computed as the 5-point stencil on ``u`` padded by replicating its border
    (a ghost value equal to the boundary value is a zero flux across the
    boundary), which equals ``div(grad(u))`` up to rounding. Small
    floating-point tensors (at most :data:`LAPLACE_CONV_MAX_ELEMENTS`
    elements: the inner loop of the diffusion solvers on one small image) take
    one convolution of the padded image, where the per-operation overhead
    dominates; larger ones four shifted slices, where the convolution is
    slower.

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
    if u.dim() < 2:
        raise UserInputError(f"laplacian: u must have at least 2 dimensions (..., H, W), got shape {tuple(u.shape)}")
    H, W = u.shape[-2:]
    x = u.reshape(-1, 1, H, W)           # pad's replicate mode wants a (N, C, H, W) batch
    p = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    if u.is_floating_point() and u.numel() <= LAPLACE_CONV_MAX_ELEMENTS:
        key = (u.dtype, u.device)
        k = _LAPLACE_KERNELS.get(key)
        if k is None:
            k = _LAPLACE_KERNELS[key] = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
                                                     dtype=u.dtype, device=u.device).view(1, 1, 3, 3)
        return torch.nn.functional.conv2d(p, k).view(u.shape)
    out = p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4 * x
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
    return x.reshape(*x.shape[:keep], -1).sum(-1) if x.dim() > keep else x


def gradient_norm(g: torch.Tensor, *, channelwise: bool = False, eps: float = 0.0) -> torch.Tensor:
    """Pointwise norm ``sqrt(|g|^2 + eps^2)`` of a gradient field ``(B, C, 2, H, W)``.

    With ``channelwise=False`` the norm couples the channels and returns
    ``(B, 1, H, W)``; otherwise ``(B, C, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import grad, gradient_norm
    >>> u = torch.tensor([[0., 3.], [4., 7.]]).expand(1, 1, 2, 2)
    >>> gradient_norm(grad(u))
    tensor([[[[5., 4.],
              [3., 0.]]]])
    """
    sq = (g * g).sum(-3)
    if not channelwise:
        sq = sq.sum(-3, keepdim=True)
    return torch.sqrt(sq + eps * eps) if eps else torch.sqrt(sq)


def as_batch(u: torch.Tensor, name: str = "u") -> tuple[torch.Tensor, int]:
    """The one shape promotion: ``u`` as a ``(B, C, H, W)`` view, and its original number of dimensions.

    ``(H, W)`` becomes ``(1, 1, H, W)`` and ``(C, H, W)`` becomes ``(1, C, H, W)``; undo it with
    ``out[0, 0]`` / ``out[0]`` (or :func:`unbatch`) to return the shape a caller gave.

    Raises
    ------
    TypeError
        ``u`` is not a tensor.
    pdeflow.errors.UserInputError
        ``u`` does not have 2, 3 or 4 dimensions (the message names ``name``).
    """
    if not isinstance(u, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(u).__name__}")
    if u.dim() == 2:
        return u[None, None], 2
    if u.dim() == 3:
        return u[None], 3
    if u.dim() == 4:
        return u, 4
    raise UserInputError(f"{name} must have shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(u.shape)}")


def unbatch(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Undo :func:`as_batch`: ``x`` ``(B, C, H, W)`` back to ``ndim`` (2, 3 or 4) dimensions."""
    return x if ndim == 4 else (x[0] if ndim == 3 else x[0, 0])


def check_image(u: torch.Tensor, name: str = "u") -> None:
    """The one image check: a non-empty floating-point tensor of shape (H, W), (C, H, W) or (B, C, H, W)
    with finite values; a TypeError or :class:`~pdeflow.errors.UserInputError` naming ``name`` otherwise."""
    as_batch(u, name)
    if u.numel() == 0:
        raise UserInputError(f"{name} is empty, got shape {tuple(u.shape)}")
    if not u.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {u.dtype}")
    if not bool(torch.isfinite(u).all()):
        raise UserInputError(f"{name} contains NaN or infinite values")


def tv(u: torch.Tensor, *, channelwise: bool = False) -> torch.Tensor:
    """Isotropic total variation ``sum sqrt(ux^2 + uy^2)`` per image.

    Parameters
    ----------
    u : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
    channelwise : bool
        If False (default) colour channels are coupled (vectorial TV,
        ``sum sqrt(sum_c |grad u_c|^2)``); if True the TVs of the channels add.

    Returns
    -------
    Tensor
        Shape ``(B,)`` for a 4-D input, a 0-d tensor otherwise.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import tv
    >>> u = torch.zeros(1, 1, 4, 4)
    >>> u[..., 1:3, 1:3] = 1.0  # a 2 x 2 square of height 1
    >>> tv(u)
    tensor([7.4142])
    """
    return tv_eps(u, 0.0, channelwise=channelwise)


def tv_eps(u: torch.Tensor, eps: float, *, channelwise: bool = False, zero_edges: bool = False) -> torch.Tensor:
    """Smoothed total variation ``sum sqrt(ux^2 + uy^2 + eps^2)`` per image; see :func:`tv`.

    ``eps`` enters at every pixel (``H * W * eps`` for a constant image); the
    gradient is ``grad(u, zero_edges=zero_edges)`` (see the module docstring).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.ops import tv_eps
    >>> tv_eps(torch.zeros(1, 1, 4, 4), 0.5)  # H * W * eps for a constant image
    tensor([8.])
    """
    x, ndim = as_batch(u)
    out = batch_sum(gradient_norm(grad(x, zero_edges=zero_edges), channelwise=channelwise, eps=eps))
    return out if ndim == 4 else out[0]
