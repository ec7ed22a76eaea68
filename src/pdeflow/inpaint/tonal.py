"""Tonal optimisation: the values to store at the known pixels that make the inpainting closest to the image.

Homogeneous diffusion inpainting (:func:`~pdeflow.inpaint.inpaint_diffusion`) is linear in the stored values: with the
binary mask ``m`` fixed, the inpainting of values ``g`` (used on the mask only) is ``u = M g``,

    M g = m g + x,     A x = w L (m g),

with ``A`` the masked Laplacian of :class:`~pdeflow.inpaint.operators.diffusion_system.DiffusionSystem` and
``w = 1 - m``.
Storing the image's own values (``g = f``) is not the best choice: the values that minimise the squared
error ``||M g - f||^2`` pull the inpainting towards the image between the known pixels, which gains most at
low densities (Mainberger, Hoffmann, Weickert, Tang, Johannsen, Neumann, Wenger 2011). They solve the
normal equations ``M^T M g = M^T f``, here by CGLS (conjugate gradients on the normal equations, in the
form that never builds ``M^T M``): every iteration is one forward solve (``M p``) and one adjoint solve
(``M^T r = m (r + L nu)``, ``A nu = w r``), both multigrid-preconditioned CG on the one hierarchy that the
mask's system builds once. CGLS itself is preconditioned on the right by each known pixel's inverse square
root of the area it governs (its Voronoi cell), which equilibrates the columns of ``M``.

Quantisation-aware values (``levels``): a codec stores the values on a few levels. Rounding the optimum to
the nearest level loses part of the gain; here the values are fixed to levels in rounds instead, the ones
nearest to a level first (half of the free values per round), and the values still free are re-optimised
after each round with the fixed ones as data, so they compensate the rounding errors of their neighbours.
The last round rounds the rest.

Any other operator of :data:`~pdeflow.inpaint.OPERATORS` that is linear in the stored values and gives its map
(:attr:`~pdeflow.inpaint.Operator.linear_map`: forward and adjoint) is optimised the same way; Gaussian-weighted
Shepard interpolation (:func:`~pdeflow.inpaint.inpaint_shepard`) is one.

A nonlinear operator gives a linearisation instead (:attr:`~pdeflow.inpaint.Operator.linearise`).
EED inpainting (:func:`~pdeflow.inpaint.inpaint_eed`) is not linear in the stored values: its diffusion
tensor follows the inpainting. With the tensor frozen at the inpainting ``u`` of the current values it is
(:class:`~pdeflow.inpaint.operators.tensor_diffusion.FrozenInpainting`, whose map gives back ``u`` at those
values), and a few Gauss-Newton steps solve the problem: freeze the tensor at ``u``, run CGLS on the frozen
map from the current values, inpaint the new values with EED itself, repeat (:data:`EED_LINEARISATIONS`);
a step that makes the true EED error larger is undone, per image. With ``levels`` the rounds run on the
last linearisation and the result is inpainted by EED once more. The linearisation drops how the tensor
changes with the values, which is why the steps are checked against the true error.

Everything is batched over images and channels and runs on the device of ``f``, in float64 (least squares
squares the condition number of the inpainting; on Apple's MPS, which has no float64, in float32) and
returned in the dtype of ``f``.

References
----------
.. [1] M. Mainberger, S. Hoffmann, J. Weickert, C. H. Tang, D. Johannsen, F. Neumann, B. Doerr, "Optimising
   spatial and tonal data for homogeneous diffusion inpainting", Scale Space and Variational Methods in
   Computer Vision (SSVM), 2011.
.. [2] C. C. Paige, M. A. Saunders, "LSQR: an algorithm for sparse linear equations and sparse least
   squares", ACM Transactions on Mathematical Software, 1982 (CGLS).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch

from .. import ops
from ..errors import UserInputError
from ..threads import auto_threads
from .checks import check_mask
from .operators import OPERATORS

__all__ = ["optimise_tonal", "TonalResult", "quantise_levels"]

#: Rounds of the quantisation-aware optimisation before the last values are rounded.
ROUNDS = 4
#: Gauss-Newton steps for EED: linearisations, each followed by CGLS on it (chosen on selection crops: results
#: page "Image compression", "Encoder settings").
EED_LINEARISATIONS = 3
#: Lagged-diffusivity steps of each EED inpainting inside the tonal optimisation: more than inpaint_eed's default,
#: since tight tolerances (the default solve_tol) converge slowly.
EED_MAX_ITER = 500


@dataclass
class TonalResult:
    """Output of :func:`optimise_tonal` with ``full_output=True``.

    Attributes
    ----------
    values : Tensor
        The stored values: the optimised ones on the mask, ``f`` elsewhere (shape of ``f``).
    u : Tensor
        Their inpainting (shape of ``f``).
    mse : Tensor, shape (B,)
        Mean squared error of ``u`` against ``f`` per image (over channels and pixels).
    iterations : int
        CGLS iterations in all (each one forward and one adjoint solve).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> from pdeflow.inpaint.tonal import optimise_tonal
    >>> f = torch.rand(16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> mask = torch.zeros(16, 16)
    >>> mask[::4, ::4] = 1
    >>> r = optimise_tonal(f, mask, full_output=True)
    >>> u = inpaint_diffusion(r.values, mask, tol=1e-10)
    >>> type(r).__name__, r.values.shape, bool(torch.allclose(r.u, u, atol=1e-6))
    ('TonalResult', torch.Size([16, 16]), True)
    """

    values: torch.Tensor
    u: torch.Tensor
    mse: torch.Tensor
    iterations: int


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image and channel ``<a, b>``: (B, C, 1, 1)."""
    return (a * b).sum((-2, -1), keepdim=True)


def _cgls(op, f4, g, weight, tol, max_iter, ref):
    """CGLS on ``min ||M g - f||`` (``op``: ``forward`` and ``adjoint`` of ``M``) over the values of ``g`` where
    ``weight`` is positive (the others fixed), right-preconditioned by the diagonal ``weight`` (the free values'
    :func:`_cell_weights`), until the preconditioned gradient's squared norm is below ``tol**2 ref`` (per image
    and channel; ``ref`` None: its value at the start); returns ``(g, u, iterations)``."""
    u = op.forward(g)
    r = f4 - u
    s = op.adjoint(r).mul_(weight)
    p = s.clone()
    gamma = _dot(s, s)
    stop = (gamma if ref is None else ref) * tol ** 2
    it = 0
    tiny = torch.finfo(f4.dtype).tiny
    for it in range(1, max_iter + 1):
        if bool((gamma <= stop).all()):
            it -= 1
            break
        step = p * weight                   # the step in the values: g = g0 + D y, p the direction in y
        qv = op.forward(step)
        alpha = gamma / _dot(qv, qv).clamp_min(tiny)
        alpha = torch.where(gamma <= stop, torch.zeros_like(alpha), alpha)   # converged channels stay
        g = g.addcmul(alpha, step)
        u = u.addcmul(alpha, qv)
        r = r.addcmul(alpha, qv, value=-1)
        s = op.adjoint(r).mul_(weight)
        new = _dot(s, s)
        p = s + (new / gamma.clamp_min(tiny)) * p
        gamma = new
    return g, u, it


def _cell_weights(m: torch.Tensor) -> torch.Tensor:
    """The preconditioner of CGLS, ``a^(-1/2)`` on each known pixel of ``m`` (Bm, Cm, H, W), ``a`` the number of
    pixels nearer to it than to any other known pixel (its Voronoi cell, ties broken by the distance
    transform), scaled to mean 1 over the known pixels; 0 elsewhere.

    The column of ``M`` for a known pixel is the inpainting of a unit value there, a bump over about its cell,
    so its squared norm grows with the cell's area: the weights equilibrate the columns (approximately Jacobi
    on ``M^T M``), so that CGLS needs fewer iterations. Computed on the CPU (SciPy's Euclidean distance
    transform), once per mask.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.tonal import _cell_weights
    >>> m = torch.zeros(1, 1, 1, 8, dtype=torch.float64)
    >>> m[..., 0] = m[..., 2] = 1        # cells of 2 and 6 pixels
    >>> [round(v, 3) for v in _cell_weights(m)[0, 0, 0, [0, 2]].tolist()]
    [1.268, 0.732]
    """
    from scipy import ndimage

    known = (m > 0).cpu().numpy()
    out = np.zeros(known.shape)
    for i in np.ndindex(*known.shape[:2]):
        k = known[i]
        _, (iy, ix) = ndimage.distance_transform_edt(~k, return_indices=True)
        area = np.bincount((iy * k.shape[1] + ix).ravel(), minlength=k.size).reshape(k.shape)
        w = np.where(k, 1.0 / np.sqrt(np.maximum(area, 1)), 0.0)
        out[i] = w / w[k].mean()
    return torch.from_numpy(out).to(m)


def quantise_levels(v: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Each value of ``v`` replaced by the nearest of the sorted 1-D ``levels`` (ties to the lower one).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.tonal import quantise_levels
    >>> quantise_levels(torch.tensor([-1.0, 0.2, 0.3, 0.9]), torch.tensor([0.0, 0.5, 1.0]))
    tensor([0.0000, 0.0000, 0.5000, 1.0000])
    """
    levels = levels.to(v)
    i = torch.searchsorted(levels, v.contiguous()).clamp(1, len(levels) - 1)
    lo, hi = levels[i - 1], levels[i]
    return torch.where(v - lo <= hi - v, lo, hi)


def _check_levels(levels, f4: torch.Tensor, who: str):
    """Levels as a list of 1-D tensors, one per channel of ``f4``, or None."""
    if levels is None:
        return None
    C = f4.shape[1]
    if isinstance(levels, Integral) and not isinstance(levels, bool):
        if levels < 2:
            raise UserInputError(f"{who}: levels must be at least 2, got {levels}")
        return [torch.linspace(0, 1, int(levels), dtype=f4.dtype, device=f4.device)] * C
    if isinstance(levels, (list, tuple)) and len(levels) and all(isinstance(v, torch.Tensor) for v in levels):
        rows = list(levels)
    else:
        t = ops.check_tensor(levels, f"{who}: levels")
        rows = [t] * C if t.dim() == 1 else list(t)
    msg = (f"{who}: levels must be an int >= 2, a 1-D increasing float sequence of at least 2 finite values, "
           f"or one such sequence per channel ({C})")
    if len(rows) != C:
        raise UserInputError(msg + f"; got {len(rows)} sequences")
    for t in rows:
        if t.dim() != 1 or t.numel() < 2 or not t.is_floating_point() or not bool(torch.isfinite(t).all()) \
                or not bool((t[1:] > t[:-1]).all()):
            raise UserInputError(msg + f"; got {tuple(t.shape)} {t.dtype}")
    return [t.to(device=f4.device, dtype=f4.dtype) for t in rows]


def _quantise_channels(g: torch.Tensor, levels: list) -> torch.Tensor:
    """:func:`quantise_levels` of each channel of ``g`` (B, C, H, W) with its levels."""
    return torch.stack([quantise_levels(g[:, c], levels[c]) for c in range(g.shape[1])], 1)


@ops.follows_layout_rule("f", also=("mask",))
@auto_threads
def optimise_tonal(f: torch.Tensor, mask: torch.Tensor, *, operator: str = "diffusion", levels=None,
                   tol: float = 1e-3, max_iter: int = 100,
                   solve_tol: float = 1e-6, rounds: int = ROUNDS, values0: torch.Tensor | None = None,
                   full_output: bool = False):
    """The values to store on ``mask`` whose inpainting is closest to ``f``.

    Minimises ``||inpaint_diffusion(g, mask) - f||^2`` over the values ``g`` on the mask (least squares by CGLS, see
    the module doc), optionally restricted to given quantisation ``levels``; or the same for EED inpainting
    with its default parameters, by Gauss-Newton steps on its linearisation (module doc).

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point, finite.
    mask : Tensor
        Binary mask (1 = known pixel), broadcastable to ``f`` as for :func:`~pdeflow.inpaint.inpaint_diffusion`, at
        least one known pixel per image.
    operator : str, optional
        The inpainting the values are for, an operator of :data:`~pdeflow.inpaint.OPERATORS` with a linear map or
        a linearisation: ``"diffusion"`` (:func:`~pdeflow.inpaint.inpaint_diffusion`, default), ``"eed"``
        (:func:`~pdeflow.inpaint.inpaint_eed` with its default contrast and presmoothing) or ``"shepard"``
        (:func:`~pdeflow.inpaint.inpaint_shepard` with its default scale).
    levels : int, sequence of float, or list of 1-D Tensors, optional
        The values that may be stored: an int ``q`` for ``q`` equally spaced levels on [0, 1], an
        increasing sequence, or one increasing sequence per channel of ``f`` (a list of tensors, or a
        2-D tensor with a row per channel). None (default): any value.
    tol : float in (0, 1), optional
        CGLS stops when the gradient of the squared error (``M^T`` of the residual) is this fraction of its
        value at the image's own values, per image and channel.
    max_iter : int, optional
        CGLS iterations at most (per round with ``levels``; per linearisation for EED).
    solve_tol : float in (0, 1), optional
        Relative residual of every forward and adjoint solve (for EED at most 1e-4, also the nonlinear
        residual of its inpaintings, each at most :data:`EED_MAX_ITER` lagged-diffusivity steps).
    rounds : int >= 1, optional
        With ``levels``: the rounds that fix half of the free values each (nearest to a level first) and
        re-optimise the others; 1 rounds the optimum at once.
    values0 : Tensor, optional
        Start values (shape of ``f``; those on the mask are used), e.g. the optimum for a nearby mask.
        Default: ``f``.
    full_output : bool, optional
        Return a :class:`TonalResult`.

    Returns
    -------
    Tensor, shape and dtype of ``f``
        The values: the optimised ones on the mask, ``f`` elsewhere, so that
        ``inpaint_diffusion(values, mask)`` (``inpaint_eed`` for EED) is the optimised inpainting. A
        :class:`TonalResult` with ``full_output=True``.

    References
    ----------
    .. [1] M. Mainberger, S. Hoffmann, J. Weickert, C. H. Tang, D. Johannsen, F. Neumann, B. Doerr,
       "Optimising spatial and tonal data for homogeneous diffusion inpainting", SSVM, 2011.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_diffusion
    >>> from pdeflow.inpaint.tonal import optimise_tonal
    >>> x = torch.linspace(0, 1, 32, dtype=torch.float64)
    >>> f = (x[:, None] - 0.5) ** 2 + x[None, :] ** 3
    >>> mask = torch.zeros(32, 32)
    >>> mask[2::6, 2::6] = 1
    >>> g = optimise_tonal(f, mask)
    >>> def err(v):
    ...     return float((inpaint_diffusion(v, mask, tol=1e-10) - f).square().mean())
    >>> err(g) < err(f) / 2
    True
    """
    who = "optimise_tonal"
    f = ops.check_tensor(f, f"{who}: f")
    ops.check_image(f, f"{who}: f", min_size=2)
    f4 = ops.promote_half(ops.as_batch(f, f"{who}: f")[0])
    if f4.device.type != "mps":
        # least squares squares the condition number: solved in float64 (returned in the dtype of f)
        f4 = f4.to(torch.float64)
    m = check_mask(mask, f4, who)
    for name, v in (("tol", tol), ("solve_tol", solve_tol)):
        if isinstance(v, bool) or not isinstance(v, Real) or not 0 < v < 1:
            raise UserInputError(f"{who}: {name} must be a number in (0, 1), got {v!r}")
    served = tuple(name for name, entry in OPERATORS.items() if entry.tonal)
    if operator not in served:
        raise UserInputError(f"{who}: operator must be one of {', '.join(map(repr, served))}, got {operator!r}")
    for name, v in (("max_iter", max_iter), ("rounds", rounds)):
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
            raise UserInputError(f"{who}: {name} must be an int >= 1, got {v!r}")
    lv = _check_levels(levels, f4, who)
    with torch.no_grad():
        f4 = f4.detach()
        entry = OPERATORS[operator]
        known = m.expand(f4.shape) > 0
        start = f4
        if values0 is not None:
            if not isinstance(values0, torch.Tensor) or values0.shape != f.shape:
                raise UserInputError(f"{who}: values0 must be a tensor of the shape of f {tuple(f.shape)}")
            start = values0.detach().to(f4).reshape(f4.shape)
            if not bool(torch.isfinite(start[known]).all()):
                raise UserInputError(f"{who}: values0 has NaN or infinite values on the mask")
        g = torch.where(known, start, torch.zeros_like(f4))
        weight = _cell_weights(m).expand(f4.shape)
        if entry.linearise is not None:
            g, u, iters = _gauss_newton(entry, f4, m, g, weight, lv, float(tol), int(max_iter), float(solve_tol),
                                        int(rounds))
            values = torch.where(known, g, f4)
            return _result(values, u, f4, f, iters, full_output)
        op = entry.linear_map(m, f4.shape, float(solve_tol))
        # the stopping rule is relative to the gradient at the image's own values, also for a warm start
        # (which then stops early when it is nearly optimal already)
        ref = None
        if values0 is not None:
            s0 = op.adjoint(f4 - op.forward(torch.where(known, f4, torch.zeros_like(f4)))).mul_(weight)
            ref = _dot(s0, s0)
        g, u, iters = _cgls(op, f4, g, weight, float(tol), int(max_iter), ref)
        if lv is not None:
            g, u, more = _quantised(op, f4, g, weight, lv, float(tol), int(max_iter), int(rounds), ref)
            iters += more
        values = torch.where(known, g, f4)
    return _result(values, u, f4, f, iters, full_output)


def _result(values, u, f4, f, iters, full_output):
    values = ops.unbatch(values.to(f.dtype), f.dim())
    if not full_output:
        return values
    mse = (u - f4).square().flatten(1).mean(1)
    return TonalResult(values=values, u=ops.unbatch(u.to(f.dtype), f.dim()), mse=mse, iterations=iters)


def _gauss_newton(entry, f4, m, g, weight, levels, tol, max_iter, solve_tol, rounds):
    """Tonal optimisation for a nonlinear operator ``entry`` of the table, EED (module doc), by Gauss-Newton steps
    on its linearisation; returns ``(g, u, iterations)``."""
    solve_tol = min(solve_tol, 1e-4)

    def inpaint(v, u0):
        return entry.solve(v, m, u0=u0, tol=solve_tol, max_iter=EED_MAX_ITER)

    def error(u):
        return (u - f4).square().flatten(1).sum(1)

    u = inpaint(g, None)
    best_g, best_u, best_e = g, u, error(u)
    view = (-1,) + (1,) * (f4.dim() - 1)
    lin, iters = None, 0
    for _ in range(EED_LINEARISATIONS):
        lin = entry.linearise(g, m, u, solve_tol=solve_tol, hierarchy=None if lin is None else lin.mg)
        g, _, it = _cgls(lin, f4, g, weight, tol, max_iter, None)
        iters += it
        u = inpaint(g, u)
        e = error(u)
        better = e < best_e
        # per image: a step that made the true error larger is undone (the linearisation ignores how the
        # tensor changes with the values)
        best_g = torch.where(better.view(view), g, best_g)
        best_u = torch.where(better.view(view), u, best_u)
        best_e = torch.minimum(e, best_e)
        if not bool(better.any()):
            break
        g, u = best_g, best_u
    g, u = best_g, best_u
    if levels is not None:
        lin = entry.linearise(g, m, u, solve_tol=solve_tol, hierarchy=lin.mg if lin is not None else None)
        g, _, more = _quantised(lin, f4, g, weight, levels, tol, max_iter, rounds, None)
        iters += more
        u = inpaint(g, u)
    return g, u, iters


def _quantised(op, f4, g, weight, levels, tol, max_iter, rounds, ref):
    """Fix the values to ``levels`` in ``rounds`` (module doc; ``weight`` the known values' preconditioner);
    returns ``(g, u, iterations)``."""
    free = weight > 0
    iters = 0
    for r in range(rounds):
        qg = _quantise_channels(g, levels)
        if r == rounds - 1:
            g = torch.where(free, qg, g)
            free.zero_()
            break
        # per image and channel: fix the half of the free values nearest to a level
        dist = torch.where(free, (qg - g).abs(), torch.full_like(g, float("inf"))).flatten(2)
        nfree = free.flatten(2).sum(-1)                                 # (B, C)
        kth = (nfree + 1) // 2
        order = dist.argsort(-1)
        rank = torch.empty_like(order)
        rank.scatter_(-1, order, torch.arange(order.shape[-1], device=g.device).expand_as(order))
        fix = (rank < kth[..., None]).view_as(g) & free
        g = torch.where(fix, qg, g)
        free &= ~fix
        if not bool(free.any()):
            break
        g, _, it = _cgls(op, f4, g, weight * free, tol, max_iter, ref)
        iters += it
    u = op.forward(g)
    return g, u, iters
