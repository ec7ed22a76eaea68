"""Solvers for the ROF problem ``argmin_u 1/2 ||u - f||^2 + lam * TV(u)``.

All solvers share one dual formulation.  With ``|p| <= 1`` pointwise,

    u = f + lam * div(p),                       (primal from dual)
    D(p) = 1/2 ||f||^2 - 1/2 ||f + lam div p||^2 (dual objective)

and the duality gap of any pair ``(u, p)`` is the sum of two non-negative terms,

    P(u) - D(p) = 1/2 ||u - (f + lam div p)||^2 + lam * sum(|grad u| - <grad u, p>),

which we evaluate without cancellation.  Since ``P`` is 1-strongly convex,
``||u - u*||^2 <= 2 (P(u) - D(p))``: the relative gap ``tol`` bounds the error of
the returned image by ``sqrt(2 * tol * P(u))`` in the Euclidean norm.

Each image of a batch stops on its own once its relative gap
``(P - D) / P`` falls below ``tol``; converged images leave the working batch.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .. import ops
from ..errors import UserInputError
from ..threads import auto_threads
from ._accuracy import (
    check_accuracy,
    check_cost,
    check_interval,
    data_range,
    extrema,
    gap_per_value,
    gap_targets,  # noqa: F401 (its doctest's import)
    host_ranges,
    iterations_to,
    largest_magnitude,
)
from ._checks import ConvergenceWarning, check_tol, per_image, short_message, working_dtype
from ._extinction import extinct, extinction_flux, may_be_extinct
from ._grid import PLAIN, Grid, make_grid
from ._implicit import differentiable
from ._rof_compiled import COMPILED_METHODS, CompileWarning, compiled_result, row_major
from ._rof_methods import (
    METHODS,
    SHARED_STATE,
    STEP_ESTIMATES,
    fused_applies,
    gap_and_primal,
    project,
    solution_gap,
)
from ._rof_nd import ND_STEPS, nd_gap
from ._tied import tied_certificate
from .noise import check_auto, choose_lam

__all__ = ["rof", "RofResult", "ROF_METHODS", "ND_METHODS", "ACCURACY", "FLOW_ACCURACY", "duality_gap",
           "ConvergenceWarning", "CompileWarning"]

#: The solvers of :func:`rof` (``method=``), and those that also run on volumes and with a spacing.
ROF_METHODS = tuple(METHODS)
ND_METHODS = tuple(ND_STEPS)

#: Default ``accuracy`` of :func:`rof`: the certified root-mean-square error of the answer, as a fraction
#: of the data's range (a sixteenth of an 8-bit quantisation step), which keeps the largest error of a
#: pixel below 1e-3 of the range on the benchmark photographs (results page "Accuracy and speed of the
#: defaults").
ACCURACY = 2.5e-4

#: Default ``accuracy`` of :func:`~pdeflow.tv.tv_flow` and :func:`~pdeflow.tv.spectral_tv`: the certified
#: RMS error of every frame (a quarter of an 8-bit step); their certificate adds up the steps' errors,
#: so it is looser than rof's and the same largest error takes a larger value here.
FLOW_ACCURACY = 1e-3

#: The relative duality gap a default call solves to where a derivative is asked for: the implicit
#: derivative reads which pixels are flat, and a looser solve misreads them.
GRAD_TOL = 1e-6


@dataclass
class RofResult:
    """Solution of a batched ROF problem.

    Attributes
    ----------
    u : Tensor, shape of ``f``
        The minimiser, ``f + lam * div(p)``.
    p : Tensor, shape ``(B, C, 2, H, W)``
        Dual field with ``|p| <= 1``.
    iterations : Tensor of int64, shape (B,)
        Iterations each image took.
    gap : Tensor, shape (B,)
        Final relative duality gap of each image (at the default accuracy, of ``u`` or of the candidate tied
        on the dual's flat regions, whichever is smaller: either bounds the error of ``u``, see :func:`rof`'s
        Notes).
    converged : Tensor of bool, shape (B,), or None
        Whether each image met ``tol`` (False: it stopped at ``max_iter`` or at the round-off floor of
        its dtype with the gap in ``gap``; an image constant to round-off counts as converged).
    lam : Tensor of float64, shape (B,), or None
        The weight of each image that ``lam="auto"`` chose (None for a given ``lam``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import rof
    >>> r = rof(torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4, dtype=torch.float64), 0.25, tol=1e-12, full_output=True)
    >>> r.u.shape, r.p.shape, bool(r.converged.all())
    (torch.Size([4, 4]), torch.Size([1, 1, 2, 4, 4]), True)
    """

    u: torch.Tensor
    p: torch.Tensor
    iterations: torch.Tensor
    gap: torch.Tensor
    converged: torch.Tensor | None = None
    lam: torch.Tensor | None = None


def duality_gap(f, u, p, lam, *, channelwise=False):
    """Duality gap and primal objective of ``(u, p)`` per image.

    Parameters
    ----------
    f, u : Tensor, shape (B, C, H, W)
    p : Tensor, shape (B, C, 2, H, W), feasible (``|p| <= 1``)
    lam : Tensor, shape (B, 1, 1, 1)

    Returns
    -------
    gap, primal : Tensor, shape (B,)
        Both accumulated in float64.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import duality_gap, rof
    >>> f = torch.tensor([[[[0.0, 0.0, 1.0, 1.0]] * 4]], dtype=torch.float64)
    >>> r = rof(f, 0.25, tol=1e-12, full_output=True)
    >>> gap, primal = duality_gap(f, r.u, r.p, 0.25)
    >>> bool(gap <= 1e-12 * primal), primal
    (True, tensor([0.8750], dtype=torch.float64))
    """
    f, u, p = ops.check_float(f, "f"), ops.check_float(u, "u"), ops.check_float(p, "p")
    for name, t in (("f", f), ("u", u)):
        if t.dim() != 4:
            raise UserInputError(f"{name} must have shape (B, C, H, W), got {tuple(t.shape)}")
        ops.check_image(t, name)
    if u.shape != f.shape:
        raise UserInputError(f"u must have the shape of f {tuple(f.shape)}, got {tuple(u.shape)}")
    if p.shape != (*f.shape[:2], 2, *f.shape[2:]):
        raise UserInputError(f"p must have shape {(*f.shape[:2], 2, *f.shape[2:])}, got {tuple(p.shape)}")
    lam = per_image(lam.reshape(-1) if isinstance(lam, torch.Tensor) and lam.numel() == f.shape[0] else lam,
                     f.shape[0], f, "lam")
    return gap_and_primal(f, u, p, lam, channelwise)


@ops.follows_layout_rule("f")
@auto_threads
def rof(
    f: torch.Tensor,
    lam,
    *,
    method: str = "fgp",
    tol: float | None = None,
    accuracy: float = ACCURACY,
    max_iter: int = 20000,
    p0: torch.Tensor | None = None,
    channelwise: bool = False,
    check_every: int | None = None,
    full_output: bool = False,
    compile: bool = False,
    ndim: int | None = None,
    spacing=None,
    precision: str = "auto",
):
    """Solve ``argmin_u 1/2 ||u - f||^2 + lam * TV(u)`` for each image (or volume) of a batch.

    One implicit Euler step of size ``dt`` of the TV flow is ``rof(u, dt)``.
    scikit-image's ``denoise_tv_chambolle(f, weight=lam)`` solves the same problem
    with the same discretisation.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W); with ``ndim=3`` (D, H, W), (C, D, H, W) or (B, C, D, H, W)
        Data, any floating dtype and device; intensities are taken as given.
    lam : float, Tensor of shape (B,) or "auto"
        Regularisation weight(s), ``>= 0``, in units of length (pixels at unit spacing; see Notes). ``"auto"``: per
        image, for white Gaussian noise, the weight of smallest SURE at the noise level of
        :func:`~pdeflow.tv.estimate_sigma` (:mod:`pdeflow.tv.noise`); ``full_output`` returns it in ``lam``; several
        solves; a constant for derivatives.
    method : {"fgp", "pdhg", "chambolle", "admm"}
        ``"fgp"``: fast gradient projection on the dual with adaptive restart (default, fastest here); ``"pdhg"``:
        Chambolle-Pock with the strong-convexity acceleration; ``"chambolle"``: Chambolle's 2004 projection (the
        paper's reference algorithm, slow to converge tightly); ``"admm"``: split Bregman with an exact DCT solve
        (independent cross-check; 2-D with unit spacing only: on volumes or with ``spacing`` it is refused, the other
        three run, see ``ND_METHODS``).
    tol : float, optional
        Stop each image when its relative duality gap ``(P - D) / P <= tol``. This bounds ``||u - u*||_2 <= sqrt(2 *
        tol * P(u))``.  For the exact answer, ``tol=1e-6`` or tighter.  Default None: stop at ``accuracy``.
    accuracy : float
        Used when ``tol`` is None (the default): stop each image once its root-mean-square error against the exact
        minimiser is certified to be at most ``accuracy`` times the image's range (``max(f) - min(f)``; the duality gap
        bounds it, see Notes).  The default 2.5e-4 is a sixteenth of an 8-bit quantisation step.  Where ``f`` or
        ``lam`` requires grad, a call without ``tol`` solves to ``tol=1e-6`` instead (the derivative reads which pixels
        are flat).
    max_iter : int
        Iteration cap per image; images that hit it are returned as they are (their final gap is reported in
        ``full_output``).
    p0 : Tensor, shape (B, C, 2, H, W) (volumes: (B, C, 3, D, H, W)), optional
        Warm start for the dual field (projected onto ``|p| <= 1``).
    channelwise : bool
        For ``C > 1``: False (default) couples channels (vectorial TV), True treats them independently.
    check_every : int, optional
        Iterations between duality-gap checks near the target (default: 5, and more where a check costs several
        iterations, as on small images: ``pdeflow.tv._accuracy.check_cost``); far from it each image's gap decay spaces
        them further (by at most a tenth of its iterations so far). On the CPU, where FGP's step runs compiled (one
        channel, or ``channelwise``), a check far from the target reads an estimate of the gap the step forms on every
        fourth row instead of evaluating it.
    full_output : bool
        If True return a :class:`RofResult` (with dual field, iteration counts and gaps) instead of the image alone.
    compile : bool
        Run the ``"fgp"`` iterations and gap checks as kernels compiled by ``torch.compile`` (one fused loop each
        instead of ~20 array passes): the same iterates up to round-off, several times faster per iteration, after a
        one-time compilation per process (tens of seconds; PyTorch caches it on disk).  Pays off for long solves and
        :func:`~pdeflow.tv.tv_flow`, not for one small image.  Where torch.compile does not work (no C++ compiler) the
        kernels run uncompiled, with a :class:`CompileWarning`.  Ignored by the other methods, and on volumes or with
        ``spacing`` (the compiled kernels are 2-D on the unit grid).
    ndim : {2, 3}, optional
        Number of spatial axes.  ``3``: ``f`` is a volume ``(D, H, W)``, ``(C, D, H, W)`` or ``(B, C, D, H, W)`` and TV
        is the 3-D isotropic TV (forward differences along D, H and W, as :mod:`pdeflow.ops` with ``ndim=3``).
        Default: 2, or 3 when ``spacing`` has three entries.  A tensor is a volume only when the call says so.
    spacing : float or sequence, optional
        Grid spacing ``(dy, dx)`` or ``(dz, dy, dx)`` (a number: the same on every axis), ``> 0``; default unit.
        Enters the gradient as in :mod:`pdeflow.ops` (difference / ``h_k``); see Notes for the energy.
    precision : {"auto", "float64", "input"}
        The dtype of the iterations, the duality gap and the implicit derivative.  ``"auto"`` (default): mixed
        precision; the iterations run in float32, their gap is re-evaluated in float64 where float32 cannot resolve it,
        and the result is formed and certified in float64 (``u = f + lam div p`` from the float32 dual field, its gap
        against the float64 data); an image whose float32 iterations stall at their round-off floor short of the target
        (a tight ``tol``, a large ``lam``) continues in float64.  The result (and its gradient) is returned in ``f``'s
        dtype: a float32 image gets the float64 answer rounded to float32.  ``"float64"``: every iteration in float64
        whatever the dtype of ``f``.  ``"input"``: ``f``'s dtype (float32 for float16 and bfloat16), faster per
        iteration but unable to certify small gaps: in float32 the round-off of the dual field enters ``u = f + lam div
        p`` multiplied by ``lam``, and the gap and the derivative read ``grad u`` (the results page "Accuracy in
        float32" says what float32 reaches).

    Returns
    -------
    Tensor of the shape of ``f``, or :class:`RofResult`.

    Warns
    -----
    ConvergenceWarning
        Once per call, when any image stops at ``max_iter`` with its relative gap
        still above ``tol`` (how many, and the largest gap reached).
        With ``precision="input"`` it also warns when images stop at the round-off
        floor of their dtype above ``tol`` (``full_output``'s ``converged`` and
        ``gap`` say which and where), and up front when ``tol`` is below a few
        units of the working dtype's round-off.

    Notes
    -----
    **Accuracy.**  The energy ``P`` is 1-strongly convex, so any feasible dual field ``p`` certifies ``||u - u*||_2^2
    <= 2 (P(u) - D(p))``.  The default stopping rule asks for ``P(u) - D(p) <= 1/2 (accuracy * range)^2 * n`` (``n``
    values per image), which bounds the RMS error by ``accuracy * range``: a certificate, not an estimate.  The dual
    objective is 1-strongly concave in ``u = f + lam div p``, so ``||u - u*||^2 <= 2 (D* - D(p)) <= 2 (P(v) - D(p))``
    for *any* image ``v``: near the end of a solve most of the gap of ``u`` itself is the total variation of its noise
    on the solution's flat regions, so the default call also evaluates the gap of ``u`` made constant (its mean) on
    every region where ``|p| < 1`` and stops on whichever certifies first (``gap`` is then the smaller of the two
    relative gaps).  A call with ``tol`` stops on the gap of ``u`` alone, a stricter test than its bound needs: with
    the candidate, ``tol=1e-6`` at small ``lam`` would stop with an error close to the default's, where it is meant to
    be exact.  The returned ``u`` is always ``f + lam div p``.  The largest error of a pixel is not certified; at the
    default it stays below 1e-3 of the range on the benchmark photographs (the results page "Accuracy and speed of the
    defaults").

    **Volumes and spacing.**  With grid spacing ``h = (h_1, ..., h_n)`` the energy is the Riemann sum of the continuum
    one over the voxel cells, ``E(u) = prod(h) * [1/2 sum (u - f)^2 + lam * sum |grad_h u|]`` with ``grad_h`` the
    forward differences divided by ``h_k`` (so ``prod(h) sum |grad_h u|`` is ``pdeflow.ops.tv(u, spacing=h)``): the
    same voxel weight on both terms, so it does not change the minimiser, and ``lam`` has units of length (it is a time
    of the TV flow, as at unit spacing).  Halving the spacing of a fixed continuum image keeps the solution.
    scikit-image's ``denoise_tv_chambolle(f, weight=w)`` (n-D, unit spacing) minimises ``1/2 sum (u - f)^2 + w sum
    |grad u|`` with the same differences: it is ``rof(f, w, ndim=f.ndim)`` at unit spacing, and ``rof(f, lam,
    spacing=(h,) * n)`` for an isotropic spacing ``h`` equals it with ``w = lam / h``.  The step sizes use ``||div||^2
    <= 4 sum 1 / h_k^2``; the relative duality gap (the stopping rule) is that of ``E``, the voxel weight cancelling.

    **Extinction.**  Where ``lam`` is large enough that an explicit dual field proves the solution to be the constant
    mean of ``f`` (per channel), that exact solution is returned without iterating (``iterations`` 0, gap 0); see
    :mod:`pdeflow.tv._extinction`.

    **Derivatives.**  ``rof`` is differentiable with respect to ``f`` and ``lam`` (a float, or a 0-d or ``(B,)`` tensor
    with ``requires_grad``) by implicit differentiation at the computed solution, for every method: nothing of the
    iterations is kept (memory of ``u`` and ``p``, three images), and the backward pass solves a linear system by
    projected conjugate gradients, each image stopping on its own at a relative residual of ``1e-3 sqrt(gap)`` with
    ``gap`` the relative gap its forward reached, at least ``50 eps`` (``max_iter`` iterations at most;
    :class:`ConvergenceWarning` otherwise).  With ``D = grad``, the solution satisfies ``u = f + lam div p`` with ``p =
    grad u / |grad u|`` where ``grad u != 0`` (set ``I``) and ``|p| <= 1`` on the flat pixels (set ``J``). The prox of
    the TV is not differentiable where this structure changes; the element of the generalised Jacobian returned
    everywhere is the derivative with the structure held fixed: **flat regions stay tied** (the derivative is constant
    on every connected component of pixels of zero gradient, each flat pixel tied to its right and lower neighbours; a
    pixel counts as on an edge where ``|grad u|`` is above ``max(min(0.1 sqrt(tol), 1e-6), 100 eps)`` times the range
    of ``u`` and the computed dual field points along it, ``<grad u, p> >= 0.97 |grad u|``, as the optimality condition
    requires, and as flat elsewhere), and on ``I`` the derivative of ``grad u / |grad u|`` enters.  Its accuracy rests
    on that classification: at the default ``tol`` a pixel of a small edge or a flat pixel's noise can be misread, and
    the gradient then differs from finite differences (see the results page "Accuracy in float32"); a smaller ``tol``
    narrows the difference.  This is the Jacobian of the map wherever the structure is stable under small perturbations
    (almost every input), and there it matches finite differences (``tests/tv/test_tv_autograd.py``).  It is symmetric
    in ``f``; ``d u / d lam`` is that Jacobian applied to ``div p``.  The dual field ``p``, the iteration counts and
    the gaps of ``full_output`` carry no gradient.  ``p0`` does not change the solution and gets none.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import rof
    >>> f = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4, dtype=torch.float64)
    >>> rof(f, 0.25, tol=1e-12)[0]
    tensor([0.1250, 0.1250, 0.8750, 0.8750], dtype=torch.float64)
    >>> x = f.clone().requires_grad_()
    >>> rof(x, 0.25, tol=1e-12)[0, 0].backward()   # the left half is one flat region
    >>> x.grad[0]
    tensor([0.1250, 0.1250, 0.0000, 0.0000], dtype=torch.float64)

    A volume (``ndim=3``), here a 2-voxel-thick slab, with anisotropic voxels:

    >>> v = torch.zeros(4, 4, 4, dtype=torch.float64)
    >>> v[:2] = 1.0
    >>> rof(v, 0.25, ndim=3, tol=1e-12)[:, 0, 0]
    tensor([0.8750, 0.8750, 0.1250, 0.1250], dtype=torch.float64)
    >>> rof(v, 0.25, spacing=(2.0, 1.0, 1.0), tol=1e-12)[:, 0, 0]
    tensor([0.9375, 0.9375, 0.0625, 0.0625], dtype=torch.float64)
    """
    grid = make_grid(ndim, spacing)
    f = ops.check_image(f, "f", ndim=grid.ndim, finite=False)
    bounds = extrema(f, grid.ndim)     # one pass: the finite check, every range and magnitude the solves read
    if not all(map(math.isfinite, bounds[0].tolist() + bounds[1].tolist())):
        raise UserInputError("f contains NaN or infinite values")
    check_method(method, grid)
    accuracy = check_accuracy(accuracy)
    chosen = None
    if isinstance(lam, str):      # "auto": the search's solves are this call with a number (pdeflow.tv.noise)
        check_auto(lam)
        opts = dict(method=method, tol=tol, accuracy=accuracy, max_iter=max_iter, channelwise=channelwise,
                    check_every=check_every, compile=compile, ndim=ndim, spacing=spacing, precision=precision)
        chosen, p_auto = choose_lam(f, grid.ndim, lambda fb, lb, pb: rof(fb, lb, p0=pb, full_output=True, **opts))
        lam, p0 = chosen, p_auto if p0 is None else p0
    work = working_dtype(f.dtype, precision)
    lam_grad = isinstance(lam, torch.Tensor) and lam.requires_grad
    need_grad = torch.is_grad_enabled() and (f.requires_grad or lam_grad)
    # differentiable: the gradient comes back in f's dtype; solve_auto takes float32 data as it is (one copy less)
    x = f if precision == "auto" and not need_grad and f.dtype == torch.float32 and f.is_contiguous() else f.to(work)
    if isinstance(p0, torch.Tensor):
        p0 = p0.to(work)
    if tol is None and need_grad:
        tol = GRAD_TOL
    atol = None
    if tol is None:     # gap_targets of x
        atol = _device(gap_per_value(accuracy, host_ranges(*bounds, work)) * (x.numel() // len(bounds[0])), x.device)
    else:
        check_tol(tol, torch.float64 if precision == "auto" else x.dtype, "rof")
    run = solve_auto if precision == "auto" else solve
    extra = {} if run is solve else {"accuracy": None if tol is not None else accuracy}
    lean = None
    if (run is solve_auto and atol is not None and not need_grad and method == "fgp" and grid.plain and p0 is None
            and check_every is None and not compile and max_iter >= LEAN_ITERATIONS and type(lam) in (int, float)
            and x.numel() == x.shape[-1] * x.shape[-2] and 0 < lam <= LEAN_LAM * (bounds[1][0] - bounds[0][0])):
        lean = single_image(x, float(lam), float(atol[0]))
    if lean is not None and lean.converged is not None:
        res, short = lean, torch.zeros(1, dtype=torch.bool)
    else:
        res, short = run(x.detach() if need_grad else x, lam, method=method, tol=tol, max_iter=max_iter,
                         p0=p0 if lean is None else lean.p, channelwise=channelwise, check_every=check_every,
                         compile=compile, grid=grid, checked=True, atol=atol, tied=atol is not None, bounds=bounds,
                         **extra)
        if lean is not None:
            res.iterations += lean.iterations
    if bool(short.any()):
        at_max = int((res.iterations[short] >= max_iter).sum())
        if tol is None:
            message = (f"rof: {int(short.sum())} of {short.numel()} image(s) stopped at max_iter={max_iter} short "
                       f"of accuracy={accuracy:g} (largest relative duality gap reached: "
                       f"{res.gap[short].max().item():.2g}); raise max_iter or accuracy")
        else:
            message = short_message("rof", int(short.sum()), short.numel(), "image(s)", res.gap[short].max().item(),
                                    tol, max_iter, x.dtype if precision != "auto" else torch.float64,
                                    at_max_iter=at_max)
        warnings.warn(message, ConvergenceWarning, stacklevel=4)  # past the auto_threads and layout wrappers
    u = res.u
    if need_grad:
        u = differentiable(x, lam, u, res.p, tol=tol, max_iter=max_iter, channelwise=channelwise, grid=grid,
                           gap=res.gap)
    if work != f.dtype:
        u = u.to(f.dtype)
        if full_output:
            res = RofResult(u=u, p=res.p.to(f.dtype), iterations=res.iterations, gap=res.gap, converged=res.converged)
    elif need_grad:
        res = RofResult(u=u, p=res.p, iterations=res.iterations, gap=res.gap, converged=res.converged)
    if chosen is not None and full_output:
        res.lam = chosen
    return res if full_output else u


def _host(t: torch.Tensor) -> np.ndarray:
    """A tensor of per-image numbers as a float64 NumPy array on the host (moved first: not every device has
    float64)."""
    if t.dtype == torch.float64 and t.device.type == "cpu":
        return t.detach().numpy()
    return t.detach().cpu().to(torch.float64).numpy()


def _device(a: np.ndarray, device) -> torch.Tensor:
    """Host numbers (:func:`_host`) back as a tensor on ``device``."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t if device.type == "cpu" else t.to(device)


def _results(B: int, device):
    """Zero iterations, gaps and short, ``(B,)`` each."""
    return (torch.zeros(B, dtype=torch.long, device=device), torch.zeros(B, dtype=torch.float64, device=device),
            torch.zeros(B, dtype=torch.bool, device=device))


def check_method(method, grid: Grid) -> None:
    """Refuse a ``method`` that is not one of rof's, or that does not run on ``grid`` (volumes and spacings
    run the methods of ``ND_METHODS``)."""
    if method not in METHODS:
        raise UserInputError(f"method must be one of {ROF_METHODS}, got {method!r}")
    if not grid.plain and method not in ND_STEPS:
        raise UserInputError(f"method={method!r} runs on 2-D images with unit spacing only; for ndim=3 or a "
                             f"spacing use one of {ND_METHODS}")


#: The tied candidate (:mod:`pdeflow.tv._tied`) is first tried within this factor of the target, then where its last
#: ratio to the solver's gap predicts success; not before ``TIED_FIRST`` iterations nor ``TIED_SPACING`` after a try.
TIED_REACH = 4.0
TIED_FIRST = 40
TIED_SPACING = 12

#: A check evaluates the gap where the step's estimate is within this factor of the target, and after
#: ``ESTIMATE_RUN`` checks in a row on the estimate (which certifies nothing; it lies within 0.9-1.4x of the gap).
ESTIMATE_REACH = 1.5
ESTIMATE_RUN = 5


def solve(f, lam, *, method, tol, max_iter, p0, channelwise, check_every, first_check=None, trusted=False,
           checked=False, compile=False, grid: Grid = PLAIN, atol=None, tied=False, reference=None, certified=None,
           bounds=None):
    """:func:`rof` without the warning: ``(RofResult, short)``, ``short`` a (B,) bool tensor
    marking the images that stopped at ``max_iter`` short of ``tol``.

    ``first_check``: iterations before the first gap evaluation (default ``check_every``), for callers
    that know about how many a solve takes (the steps of :func:`~pdeflow.tv.tv_flow`).  ``trusted``: the
    caller has checked ``f`` (finite, 4-D) and ``p0`` (feasible, of the right shape and dtype), as
    :func:`~pdeflow.tv.tv_flow` does once per call instead of once per step.  ``checked``: the caller
    has checked ``f`` and ``method`` (:func:`rof` does, once per call).  ``grid``: the spatial
    grid (:mod:`pdeflow.tv._grid`); other than the 2-D unit grid, ``f`` has ``grid.ndim`` spatial axes
    and the methods of ``ND_METHODS`` run (uncompiled).  ``atol``: per-image absolute duality gaps
    ``(B,)`` (float64) to stop at instead of the relative ``tol`` (which is then None; see
    :func:`gap_targets`).  ``tied``: also stop on the gap of the candidate tied on the dual's flat regions
    (:mod:`pdeflow.tv._tied`), which bounds the error of ``u = f + lam div p`` too (``u`` is returned, and
    the reported gap is the smaller of the two); ``reference``: the float64 ``(f, lam (B,))`` it certifies (default:
    the solve's own); ``certified``: a float64 ``(B, 2)`` tensor receiving the gap and primal of each it certified.
    ``bounds``: :func:`extrema` of the data ``f`` is (or rounds to float32).
    """
    if not (trusted or checked):
        ops.check_image(f, "f", ndim=grid.ndim)
    if not checked:
        check_method(method, grid)
    if atol is None and not (tol > 0):
        raise UserInputError(f"tol must be > 0, got {tol}")
    if int(max_iter) < 1:
        raise UserInputError(f"max_iter must be >= 1, got {max_iter}")
    if check_every is not None and not (isinstance(check_every, int) and check_every >= 1):
        raise UserInputError(f"check_every must be an int >= 1 (or None: chosen by the solve), got {check_every!r}")
    K = grid.ndim
    x = f if f.dim() == K + 2 else f.reshape((1,) * (K + 2 - f.dim()) + tuple(f.shape))
    B, C = x.shape[:2]
    spatial = tuple(x.shape[2:])
    lam_t = per_image(lam, B, x, "lam")
    if K != 2:
        lam_t = lam_t.reshape((B,) + (1,) * (K + 1))
    if p0 is None:
        p = x.new_zeros(B, C, K, *spatial)
    elif trusted:
        p = p0
    else:
        if p0.shape != (B, C, K, *spatial):
            raise UserInputError(f"p0 must have shape {(B, C, K, *spatial)}, got {tuple(p0.shape)}")
        p = project(p0.to(x), channelwise) if grid.plain else grid.project(p0.to(x), channelwise)

    # Converged images leave the working batch (the compiled kernels then recompile once for a symbolic
    # batch size, and once for a single image).
    compiled = compile and method in COMPILED_METHODS and grid.plain
    if grid.plain:
        init, step, evaluate = (COMPILED_METHODS if compiled else METHODS)[method]
    else:
        init, step = ND_STEPS[method]
        init, evaluate = init(grid), nd_gap
    # the step that also estimates the gap (the fused loops): checks far from the target are made on it
    estimate = STEP_ESTIMATES.get(method) if grid.plain and not compiled else None
    if compiled:
        x = row_major(x)
    iterations = gaps = short = out_u = out_p = None  # allocated once images finish at different times (or lam = 0)

    # Per image of the working batch, the schedule and the stopping rule's numbers live on the host (NumPy, float64):
    # a check's bookkeeping is a few dozen operations on B numbers, a microsecond each there against several as
    # tensors (a small image's solve is a few dozen iterations).
    lam_all = _host(lam_t.reshape(-1))
    # lam = 0 is the identity (u = f), and an image whose solution an explicit dual field proves to be its
    # mean (extinction) takes that exact solution: neither enters the iteration.
    iterate = lam_all > 0
    lam_1 = lam_t if iterate.all() else torch.where(lam_t > 0, lam_t, torch.ones_like(lam_t))
    # the whole field only where its first axis leaves extinction possible (most calls: none)
    proof = bool(iterate.any()) and bool((iterate & may_be_extinct(x, lam_1, channelwise, grid).cpu().numpy()).any())
    if proof:
        mean, q = extinction_flux(x, lam_1, grid)
        flat = extinct(q, channelwise) & _device(iterate, x.device)
        iterate &= ~flat.cpu().numpy()
    whole = bool(iterate.all())
    active = torch.arange(B, device=x.device) if whole else _device(np.flatnonzero(iterate), x.device)
    fa, lam_a = (x, lam_t) if whole else (x[active], lam_t[active])
    if not whole:
        out_u, out_p = x.clone(), p.clone()
        iterations, gaps, short = _results(B, x.device)
        if proof and bool(flat.any()):
            out_u[flat] = mean[flat]
            out_p[flat] = project(q[flat], channelwise) if grid.plain else grid.project(q[flat], channelwise)
    if proof:
        del mean, q
    atol_a = None if atol is None else _host(atol.reshape(-1).expand(B))[iterate]
    lam_h = lam_all[iterate]
    # Round-off floor of the gap in the working precision: once u is constant to round-off (an image flowed to its
    # mean), P and the gap are both round-off (~ eps |f| per pixel) and their ratio never falls.
    finfo, exact = torch.finfo(x.dtype), x.dtype == torch.float64
    N = x[0].numel()
    if bounds is None or x.dtype not in (torch.float32, torch.float64):
        magnitude = _host(largest_magnitude(fa)) if active.numel() else 1.0
    else:       # largest_magnitude(fa)
        lo, hi = (b if exact else b.astype(np.float32).astype(np.float64) for b in bounds)
        magnitude = np.maximum(hi, -lo)[iterate]
    floor_a = lam_h * N * 8 * finfo.eps * magnitude
    # Below that floor a float64 input counts as converged. Lower precisions re-evaluate the gap of the iterate in
    # float64, down to the iterate's own round-off (|p| <= 1 to eps, u to 4 lam eps): tol keeps its meaning for
    # float32 down to ~1e-7. Methods whose gap comes with a bound of its round-off (fgp: _dual_gap) decide in the
    # working precision where that bound allows, and verify in float64 only where it does not.
    floor64_a = lam_h ** 2 * N * 16 * finfo.eps
    state = init(fa, lam_a, p if whole else p[active], channelwise) if active.numel() else {}
    it = 0
    # without check_every, checks in the fused loops are spaced by their cost (check_interval)
    cost = 0.0
    if check_every is None:
        check_every = CHECK_EVERY
        if estimate is not None and active.numel() and fused_applies(fa, lam_a, p):
            cost = check_cost(fa[0].numel())
    # near the target the gaps' power law places the checks well: spaced by cost only where one costs an iteration
    near_cost = cost if cost > 1 else 0.0
    first = check_every if first_check is None else max(1, int(first_check))
    n_a = active.numel()
    # per image: the tied candidate's gap over the solver's own at its last try, and the iteration of that try
    tied_ratio_a = np.full(n_a, 1.0 / TIED_REACH)
    tied_it_a = np.full(n_a, TIED_FIRST - TIED_SPACING, dtype=np.int64)
    # per image, its own schedule (so that a batch stops each image where it would stop alone): the iteration of
    # its next gap evaluation, the iteration and gap of its last, and how many it had
    next_a = np.full(n_a, first, dtype=np.int64)
    last_it_a, checks_a = np.zeros(n_a, dtype=np.int64), np.zeros(n_a, dtype=np.int64)
    last_gap_a = np.zeros(n_a)
    # per image: checks in a row made on the step's estimate alone, and the round-off bound of its last gap
    estimated_a = np.zeros(n_a, dtype=np.int64)
    bound_a = np.zeros(n_a)
    tiny = np.finfo(np.float64).tiny

    def goals(gap_now, target_now):
        """The gap each image aims at, and where the tied candidate may be tried: ``TIED_SPACING`` after its
        last try, unless the solver's own gap is predicted to meet its target sooner (a try costs about that)."""
        spaced = it - tied_it_a >= TIED_SPACING
        if not (tied and spaced.any()):
            return target_now, np.zeros(len(target_now), dtype=bool)
        soon = iterations_to(it, gap_now, last_it_a, last_gap_a, target_now) <= TIED_SPACING
        may = spaced & ~soon
        return np.where(may, target_now / tied_ratio_a, target_now), may

    while active.numel():
        n = min(int(next_a.min()), max_iter) - it
        estimated = estimate is not None and n > 0      # (n = 0: at max_iter, from a warm start that reached it)
        est = estimate(state, fa, lam_a, channelwise, n) if estimated else None
        for _ in range(0 if estimated else n):
            step(state, fa, lam_a, channelwise)
        it += n
        if est is not None:
            # An image due is checked on the step's estimate alone unless it is within ESTIMATE_REACH of its goal
            # (the tied candidate's where it may be tried) plus its last gap's round-off bound (float32's stall:
            # the float64 verification needs evaluations), at its floor, or ESTIMATE_RUN checks on.
            gap_e, primal_e = est
            target_e = tol * primal_e if atol_a is None else atol_a
            due = next_a <= it
            # goals() only where the largest goal it can give is within reach (most checks are far from it)
            reach = ESTIMATE_REACH * (target_e / np.minimum(tied_ratio_a, 1.0) + bound_a)
            goal_e = goals(gap_e, target_e)[0] if tied and (gap_e <= reach).any() else target_e
            near = (gap_e <= ESTIMATE_REACH * (goal_e + bound_a)) | (gap_e <= floor_a) | (estimated_a >= ESTIMATE_RUN)
            # each image as alone: those checked on the estimate are not evaluated, even where others are
            skip = due & ~near & (it < max_iter)
            if skip.any():
                following = it + check_interval(it, gap_e, last_it_a, last_gap_a, target_e, check_every, cost)
                next_a = np.where(skip, following, next_a)
                last_it_a, last_gap_a = np.where(skip, it, last_it_a), np.where(skip, gap_e, last_gap_a)
            estimated_a = np.where(skip, estimated_a + 1, np.where(due, 0, estimated_a))
            if it < max_iter and not (next_a <= it).any():
                continue
        # (u, p) of the iterate; the compiled gap leaves them in the state, formed below only where needed
        u, pa, gap, primal, bound = evaluate(state, fa, lam_a, channelwise)
        gap, primal = _host(gap), _host(primal)
        target = tol * primal if atol_a is None else atol_a
        rel = gap / np.maximum(primal, tiny)
        met = gap <= target
        due = next_a <= it
        if exact:
            converged = (met | (gap <= floor_a)) & due
            verify = None
        elif bound is not None:
            # The gap is known to within +-bound.  Where that is at most the tolerance the working
            # precision decides (the exact relative gap is then <= 2 tol); elsewhere gaps that may meet
            # tol are re-evaluated in float64 (every fourth check where the gap is all round-off, and where it is
            # below float32's stall, floor64_a, which a float64 gap there ends).
            bound = _host(bound)
            bound_a = np.where(due, bound, bound_a)
            resolved = bound <= target
            converged = met & resolved & due
            verify = due & ~resolved & (gap - bound <= target) & ((gap > bound) | met | (checks_a % 4 == 0)
                                                                  | (gap <= floor64_a))
        else:
            converged = met & due
            # Verify in float64 only where it can decide something: where float32 claims
            # convergence, or, every fourth check, where float32 cannot resolve the gap.
            verify = due & (gap <= floor_a) & (met | (checks_a % 4 == 0))
        checks_a += due
        if verify is not None and verify.any():
            if pa is None:
                u, pa = compiled_result(state, fa, lam_a)
            j = np.flatnonzero(verify)
            jt = _device(j, x.device)
            _, gap64, primal64 = solution_gap(fa[jt].double(), pa[jt].double(), lam_a[jt].double(), channelwise, grid)
            gap64, primal64 = _host(gap64), _host(primal64)
            rel[j] = gap64 / np.maximum(primal64, tiny)
            met[j] = gap64 <= (tol * primal64 if atol_a is None else atol_a[j])
            converged[j] = met[j] | (gap64 <= floor64_a[j]) | (primal64 <= floor_a[j])
        # Near the target the candidate tied on the dual's flat regions (:mod:`pdeflow.tv._tied`) may certify it
        # already (most of a late gap is the noise's total variation), where :func:`goals` allows a try.
        goal, may = goals(gap, target)
        try_tied = due & ~converged & may & (gap <= goal)
        if try_tied.any():
            if pa is None:
                u, pa = compiled_result(state, fa, lam_a)
            j = np.flatnonzero(try_tied)
            jt = _device(j, x.device)
            ref_f, ref_lam = (fa[jt], lam_a[jt]) if reference is None else (r[active[jt]] for r in reference)
            ref_lam = ref_lam.reshape(lam_a[jt].shape)
            gap_v, primal_v = (_host(v) for v in tied_certificate(ref_f, u[jt], pa[jt], ref_lam, channelwise, grid))
            tied_ratio_a[j] = gap_v / np.maximum(gap[j], tiny)
            tied_it_a[j] = it
            ok = gap_v <= (tol * primal_v if atol_a is None else atol_a[j])
            jj = j[ok]
            if certified is not None:
                certified[active[_device(jj, x.device)].cpu()] = torch.from_numpy(np.stack([gap_v, primal_v], 1)[ok])
            rel[jj] = gap_v[ok] / np.maximum(primal_v[ok], tiny)
            met[jj] = True
            converged[jj] = True
        done = converged | (it >= max_iter)
        # the next check: near the targets every check_every, far from them as the gaps' decay predicts (on the
        # tied candidate's gap where it is tried: the solver's gap over its last ratio)
        goal = np.where(may, target / tied_ratio_a, target)
        next_a = np.where(due, it + check_interval(it, gap, last_it_a, last_gap_a, goal, check_every, near_cost),
                          next_a)
        last_it_a, last_gap_a = np.where(due, it, last_it_a), np.where(due, gap, last_gap_a)
        if not done.any():
            continue
        if pa is None:
            u, pa = compiled_result(state, fa, lam_a)
        # Short: above tol, at max_iter or at the round-off floor (an image constant to round-off, whose objective is
        # round-off itself, has met any tol).
        short_d = ~met & (primal > floor_a)
        if done.all() and out_u is None:
            # Every image (all in the batch still) finishes at this check: the state's tensors are the results.
            short, gaps = _device(short_d, x.device), _device(rel, x.device)
            its = torch.full((B,), it, dtype=torch.long, device=x.device)
            return RofResult(u=u.reshape(f.shape), p=pa, iterations=its, gap=gaps, converged=~short), short
        if out_u is None:
            out_u, out_p = x.clone(), p.clone()
            iterations, gaps, short = _results(B, x.device)
        done_t = _device(done, x.device)
        idx = active[done_t]
        out_u[idx], out_p[idx] = u[done_t], pa[done_t]
        iterations[idx], gaps[idx], short[idx] = it, _device(rel[done], x.device), _device(short_d[done], x.device)
        keep, keep_t = ~done, ~done_t
        active, fa, lam_a = active[keep_t], fa[keep_t], lam_a[keep_t]
        atol_a = None if atol_a is None else atol_a[keep]
        floor_a, floor64_a = floor_a[keep], floor64_a[keep]
        tied_ratio_a, tied_it_a = tied_ratio_a[keep], tied_it_a[keep]
        estimated_a, bound_a = estimated_a[keep], bound_a[keep]
        next_a, last_it_a, last_gap_a, checks_a = next_a[keep], last_it_a[keep], last_gap_a[keep], checks_a[keep]
        state = {k: (v if k in SHARED_STATE else v[keep_t]) for k, v in state.items()}

    if out_u is None:  # no image entered the iteration (all lam = 0)
        out_u, out_p = x.clone(), p.clone()
        iterations, gaps, short = _results(B, x.device)
    return RofResult(u=out_u.reshape(f.shape), p=out_p, iterations=iterations, gap=gaps, converged=~short), short



#: Iterations between gap checks near the target where a call does not say (``check_every=None``).
CHECK_EVERY = 5

#: :func:`single_image`: ``lam`` at most this fraction of the range (about 30 iterations); first check; hand-over.
LEAN_LAM, LEAN_FIRST, LEAN_ITERATIONS = 0.02, 25, 60


def single_image(x: torch.Tensor, lam: float, target: float):
    """:func:`rof`'s default for one grey 2-D image without a batch's bookkeeping: float32 FGP on the fused loops,
    certified as :func:`solve_auto` does near ``target`` (an absolute gap). A :class:`RofResult` (``converged`` None:
    handed over after :data:`LEAN_ITERATIONS`), or None (no fused loops)."""
    x4 = x.reshape(1, 1, *x.shape[-2:])
    lam32 = torch.full((1, 1, 1, 1), lam, dtype=torch.float32)
    x32 = x4.float()
    p = torch.zeros(1, 1, 2, *x4.shape[2:], dtype=torch.float32)
    # no extinction proof: the mean is the solution only where lam >= max|f - mean| / 4 >= range / 8 (|div p| <= 4)
    if not fused_applies(x32, lam32, p):
        return None
    state, it, n = METHODS["fgp"][0](x32, lam32, p, False), 0, LEAN_FIRST
    x64 = None
    while it < LEAN_ITERATIONS:
        est = STEP_ESTIMATES["fgp"](state, x32, lam32, False, n)
        it, n = it + n, CHECK_EVERY
        if est is None:
            return None
        if est[0][0] > ESTIMATE_REACH * target:
            continue
        # near the target the certificate is the check (the float32 gap would cost half of it)
        x64 = x4.double() if x64 is None else x64
        p64 = state["p"].double()
        p64 = project(p64, False, out=p64)
        u, gap, primal = solution_gap(x64, p64, torch.full((1, 1, 1, 1), lam, dtype=torch.float64), False)
        if float(gap[0]) <= target:
            rel = gap / primal.clamp_min(torch.finfo(torch.float64).tiny)
            return RofResult(u=u.reshape(x.shape), p=p64, iterations=torch.full((1,), it), gap=rel,
                             converged=torch.ones(1, dtype=torch.bool))
    return RofResult(u=None, p=state["p"].double(), iterations=torch.full((1,), it), gap=None, converged=None)


#: Relative duality gaps below this go to float64 iterations at once: float32 iterations stall above them
#: (their round-off floor), and a warm start near the solution would lose its digits in float32.
FLOAT32_TOL = 1e-7

#: The methods :func:`solve_auto` iterates in float32: those whose gap evaluation bounds its own round-off
#: and so detects where float32 stalls (the others run in float64).
MIXED_METHODS = ("fgp",)


def solve_auto(f, lam, *, tol, max_iter, p0, channelwise, check_every, method="fgp", first_check=None,
               trusted=False, checked=False, compile=False, grid: Grid = PLAIN, atol=None, tied=False, accuracy=None,
               bounds=None):
    """:func:`solve` in mixed precision: ``(RofResult, short)`` for float64 data ``f`` (or float32, converted).

    The iterations run in float32 (half the memory traffic of float64, and the precision GPUs are
    fast in), their duality gap re-evaluated in float64 where float32 cannot resolve it; the result
    is formed in float64 from the float32 dual field, ``u = f + lam div p``, and its gap is
    evaluated in float64 against the float64 data, which certifies it.  Images whose float32
    iterations stall at their round-off floor short of the target (a tight ``tol``, a large ``lam``)
    continue in float64 from there.  Methods other than :data:`MIXED_METHODS` run in float64.  ``accuracy``: the
    call's accuracy, where it stops on one (:func:`rof` without ``tol``): the half-size start (:func:`coarse_start`)
    runs only where ``lam`` is at least ``accuracy / COARSE_ACCURACY`` times the range (and, always, ``COARSE_LAM``).
    ``bounds``: :func:`solve`'s.
    """
    K = grid.ndim
    x = f if f.dim() == K + 2 else f.reshape((1,) * (K + 2 - f.dim()) + tuple(f.shape))
    x32 = None
    if x.dtype == torch.float32:      # the float32 iterations on it, the float64 copy certifies
        x32, x = x, x.double()
    B = x.shape[0]
    lam_t = per_image(lam, B, x, "lam")
    if K != 2:
        lam_t = lam_t.reshape((B,) + (1,) * (K + 1))
    opts = dict(method=method, max_iter=max_iter, channelwise=channelwise, check_every=check_every,
                compile=compile, grid=grid, checked=checked, tied=tied)
    if atol is not None:
        atol = atol.to(device=x.device, dtype=torch.float64).reshape(-1).expand(B)
    if method not in MIXED_METHODS or (tol is not None and tol < FLOAT32_TOL):
        return solve(f if x32 is None else x.reshape(f.shape), lam, tol=tol, p0=p0, first_check=first_check,
                     trusted=trusted, atol=atol, bounds=bounds, **opts)
    x32, lam32 = x.float() if x32 is None else x32, lam_t.reshape(-1).float()
    if p0 is None and min(x.shape[2:]) >= 2 * COARSEST:
        reach = COARSE_LAM if accuracy is None else max(COARSE_LAM, accuracy / COARSE_ACCURACY)
        h = max(grid.spacing)
        if h == 1.0 and bounds is not None:     # as below, in float32 on the host (reach rounded first, as torch does)
            wide = lam32.cpu().numpy() >= np.float32(reach) * host_ranges(*bounds, torch.float32).astype(np.float32)
        else:
            wide = lam32 / h >= reach * data_range(x32)     # lam in pixels of the coarsest axis
        if wide.any():
            wide = _device(wide, x.device) if isinstance(wide, np.ndarray) else wide
            p0, trusted = coarse_start(x32, lam32, channelwise, grid), True
            p0[~wide] = 0.0
    # the tied candidate certifies the float64 problem (its gap is float64 either way): no second labelling here
    certified = torch.full((B, 2), math.nan, dtype=torch.float64) if tied else None
    r32, short32 = solve(x32, lam32, tol=tol, p0=None if p0 is None else p0.float(), first_check=first_check,
                         trusted=trusted, atol=atol, reference=(x, lam_t.reshape(-1)) if tied else None,
                         certified=certified, bounds=bounds, **opts)
    # feasible in float64 (float32 rounding can leave |p| above 1 by an ulp), so the gap certifies
    p = r32.p.double()
    p = project(p, channelwise, out=p) if grid.plain else grid.project(p, channelwise)
    positive, iterations = _host(lam_t.reshape(-1)) > 0, r32.iterations       # per image on the host, as in solve
    it32 = iterations.cpu().numpy()
    gone = np.flatnonzero(positive & (it32 == 0))     # extinct: the mean, from the float64 data
    if gone.size:
        gone = _device(gone, x.device)
        mean, q = extinction_flux(x[gone], lam_t[gone], grid)
        p[gone] = project(q, channelwise) if grid.plain else grid.project(q, channelwise)
    u, gap, primal = solution_gap(x, p, lam_t, channelwise, grid)
    if gone.size:
        u[gone] = mean.expand_as(u[gone])
        gap[gone], primal[gone] = gap_and_primal(x[gone], u[gone], p[gone], lam_t[gone], channelwise, grid)
    gap, primal, atol_h = _host(gap), _host(primal), None if atol is None else _host(atol)
    target = tol * primal if atol is None else atol_h
    # the float32 solve may have stopped on the gap of the tied candidate (pdeflow.tv._tied), which certifies u
    if tied:
        done = positive & (gap > target) & ~np.isnan(certified[:, 0].numpy())
        if done.any():
            gap, primal = (np.where(done, certified[:, k].numpy(), v) for k, v in enumerate((gap, primal)))
            target = tol * primal if atol is None else atol_h
    # float32 data is f rounded: where that alone leaves the float64 gap above the target, or where the
    # float32 iterations stopped at their round-off floor, continue in float64 (max_iter: stopped there)
    redo = positive & (gap > target) & (it32 < max_iter)
    rel = np.where(positive, gap / np.maximum(primal, np.finfo(np.float64).tiny), 0.0)
    short = short32.cpu().numpy() & ~(gap <= target)
    if redo.any():
        jh = np.flatnonzero(redo)
        j = _device(jh, x.device)
        r64, short64 = solve(x[j], lam_t[j].reshape(-1), tol=tol, p0=p[j], trusted=True,
                             atol=None if atol is None else atol[j], bounds=bounds and tuple(b[jh] for b in bounds),
                             **{**opts, "max_iter": max(1, max_iter - int(it32[jh].max()))})
        u[j], p[j] = r64.u.reshape(u[j].shape), r64.p
        iterations = iterations.clone()
        iterations[j] += r64.iterations
        rel[jh], short[jh] = _host(r64.gap), short64.cpu().numpy()
    short = _device(short, x.device)
    return RofResult(u=u.reshape(f.shape), p=p, iterations=iterations, gap=_device(rel, x.device),
                     converged=~short), short


#: Images and volumes at least twice this size on each side start from the dual field of the half-size problem.
COARSEST = 32

#: The coarse start pays where ``lam`` (in pixels of the coarsest axis) is at least this fraction of the data's
#: range: below it the solution's flat regions span a few pixels, the fine iterations connect them as fast from
#: zero, and the coarse solves are extra work (the results page "Speed and accuracy of the solvers" has the counts).
COARSE_LAM = 0.05

#: The half-size start pays where the call's ``accuracy`` is below this times ``lam / range``: at looser targets the
#: fine iterations from zero meet them in fewer than the coarse solves cost (results page "Speed and accuracy of
#: the solvers", section "Against scikit-image's accuracy-time curve").
COARSE_ACCURACY = 0.06

#: Relative duality gap of the coarse problems of :func:`coarse_start`: a warm start, not an answer.
COARSE_TOL = 1e-3


def coarse_start(f: torch.Tensor, lam: torch.Tensor, channelwise: bool, grid: Grid = PLAIN) -> torch.Tensor:
    """A dual field for the ROF problem of ``(f, lam)`` (``(B, C, *spatial)`` on ``grid``, ``lam`` ``(B,)``) from
    the problem on the grid twice as coarse, solved the same way (recursively) to :data:`COARSE_TOL`.

    The dual field is the unit normal of the level lines, which does not change with the grid, and
    ``lam`` is a length: the coarse problem (``2^K``-cell means of ``f``) is the same ``lam`` on the grid of twice
    the spacing, which on the 2-D unit grid is ``lam / 2`` at unit spacing (its fused kernels).  The coarse field
    is repeated onto the fine grid and made feasible there.  FGP needs most of its iterations to carry
    information across large flat regions, which the coarse grid does at a ``2^K``-th of the cost.
    """
    K = grid.ndim
    spatial = tuple(f.shape[2:])
    pool = torch.nn.functional.avg_pool2d if K == 2 else torch.nn.functional.avg_pool3d
    pad = [w for n in reversed(spatial) for w in (0, n % 2)]
    fc = pool(torch.nn.functional.pad(f, pad, mode="replicate"), 2)
    coarse, lc = (PLAIN, lam / 2) if grid.plain else (Grid(K, tuple(2 * h for h in grid.spacing)), lam)
    p0 = coarse_start(fc, lc, channelwise, coarse) if min(fc.shape[2:]) >= 2 * COARSEST else None
    rc, _ = solve(fc, lc, method="fgp", tol=COARSE_TOL, max_iter=20000, p0=p0, channelwise=channelwise,
                  check_every=None, trusted=p0 is not None, checked=True, grid=coarse)
    q = rc.p
    for axis in range(3, 3 + K):
        q = q.repeat_interleave(2, axis)
    q = grid.zero_unused(q[(Ellipsis,) + tuple(slice(0, n) for n in spatial)].contiguous())
    return project(q, channelwise) if grid.plain else grid.project(q, channelwise)
