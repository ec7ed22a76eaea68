"""The inpainting operators, one module each, and the one table of them, :data:`OPERATORS`.

Homogeneous diffusion (:mod:`~pdeflow.inpaint.operators.diffusion`, its one linear system in
:mod:`~pdeflow.inpaint.operators.diffusion_system`), biharmonic, edge-enhancing diffusion, total variation and
Gaussian-weighted Shepard interpolation. :data:`OPERATORS` maps a name to an :class:`Operator`, which carries
everything the rest of the library asks of an operator: its checked public function (registered in
:data:`pdeflow.inpaint.INPAINT_METHODS` under the same name, so ``pdeflow.inpaint.inpaint(f, mask, method=name)``
and ``pdeflow inpaint --method NAME`` run it), its unchecked solve (which the mask methods call many times), its
densification stages and warm start (:func:`~pdeflow.inpaint.densify_mask`), and what tonal optimisation
(:func:`~pdeflow.inpaint.tonal.optimise_tonal`) needs: a linear map for a linear operator, a linearisation for a
nonlinear one. Their shared input checks are :mod:`pdeflow.inpaint.checks`; their filters :mod:`pdeflow.filters`.

An operator is added by writing its module here and one entry in the table; the tests run over the table (and the
codec's own table, :data:`pdeflow.codec.OPERATORS`, takes one more entry to store it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import biharmonic, diffusion, eed, shepard, tv

__all__ = ["Operator", "OPERATORS", "STAGES"]

#: Default densification stages of an operator (chosen on selection crops: results page "Sparse inpainting",
#: "Masks at 4K").
STAGES = 8


@dataclass(frozen=True)
class Operator:
    """One entry of :data:`OPERATORS`.

    Attributes
    ----------
    name : str
        The operator's name (``method=`` of :func:`~pdeflow.inpaint.inpaint`, ``operator=`` of
        :func:`~pdeflow.inpaint.densify_mask`).
    function : callable
        The checked public function ``function(f, mask, **options)``.
    solve : callable
        ``solve(f4, m, *, u0=None, tol=...) -> u``: the inpainting of ``f4`` (B, C, H, W) float32 or float64 from
        the binary mask ``m`` (B, 1, H, W) of its dtype, warm-started from ``u0``, unchecked.
    summary : str
        One line: what the operator does.
    differentiable : str
        What autograd gives: ``'f and mask'``, ``'f'`` or ``''`` (not differentiable).
    volumes : bool
        Whether it also inpaints volumes (B, C, D, H, W).
    diffusion_tol : bool
        Whether its option ``tol`` is the relative residual of homogeneous diffusion solves (``tol`` of
        :func:`~pdeflow.inpaint.inpaint_diffusion`, what ``pdeflow inpaint --tol`` sets), rather than a tolerance of
        its own.
    stages : int
        :func:`~pdeflow.inpaint.densify_mask`'s stages when none is given, for masks made for this operator.
    warm_start : callable or None
        ``warm_start() -> step``, ``step(f4, m, u, tol, stage) -> u``: a solve for a sequence of growing masks that
        keeps state between them (a multigrid hierarchy); None: :attr:`solve` warm-started from ``u``
        (:meth:`sequence` gives either).
    linear_map : callable or None
        For a linear operator that tonal optimisation serves: ``linear_map(m, shape, solve_tol)``, the map of
        stored values to their inpainting on the mask ``m``, with ``forward`` and ``adjoint``.
    linearise : callable or None
        For a nonlinear operator that tonal optimisation serves: ``linearise(g4, m, u, *, solve_tol, hierarchy)``,
        the operator frozen at the inpainting ``u`` of values ``g4``, a linear map as above (None for linear
        operators).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import OPERATORS
    >>> op = OPERATORS["eed"]
    >>> op.differentiable == "", op.volumes
    (True, False)
    >>> f = torch.linspace(0, 1, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    >>> m = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> m[..., ::3, ::3] = 1
    >>> u = op.solve(f, m, tol=1e-8)
    >>> bool(torch.equal(u[m.expand_as(u) > 0], f[m > 0]))   # the known pixels are kept
    True
    """

    name: str
    function: Callable
    solve: Callable
    summary: str
    differentiable: str
    volumes: bool = False
    diffusion_tol: bool = False
    stages: int = STAGES
    warm_start: Callable | None = None
    linear_map: Callable | None = None
    linearise: Callable | None = None

    @property
    def tonal(self) -> bool:
        """Whether tonal optimisation serves the operator (it has a linear map or a linearisation)."""
        return self.linear_map is not None or self.linearise is not None

    def sequence(self) -> Callable:
        """A solve for a sequence of growing masks: ``step(f4, m, u, tol, stage) -> u`` (:attr:`warm_start`)."""
        if self.warm_start is not None:
            return self.warm_start()
        solve = self.solve

        def step(f4, m, u, tol, stage):
            return solve(f4, m, u0=u, tol=tol)

        return step


#: The inpainting operators by name.
OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("diffusion", diffusion.inpaint_diffusion, diffusion.solve_unchecked, "homogeneous diffusion: the Laplace "
             "equation on the unknown pixels", "f and mask", volumes=True, diffusion_tol=True,
             warm_start=diffusion.warm_start, linear_map=diffusion.DiffusionMap),
    Operator("biharmonic", biharmonic.inpaint_biharmonic, biharmonic.solve_unchecked, "biharmonic: the "
             "bi-Laplace equation on the unknown pixels (scikit-image's inpaint_biharmonic)", "f and mask",
             volumes=True),
    # EED's masks gain from twice the stages on selection crops, homogeneous diffusion's do not (results page
    # "Inpainting operators")
    Operator("eed", eed.inpaint_eed, eed.solve_unchecked, "edge-enhancing diffusion: smoothing along edges, not "
             "across them (R-EED's steady state)", "", stages=16, linearise=eed.linearised),
    Operator("tv", tv.inpaint_tv, tv.solve_unchecked, "total variation: the least total variation that keeps the "
             "known pixels", "f"),
    Operator("shepard", shepard.inpaint_shepard, shepard.solve_unchecked, "Gaussian-weighted Shepard "
             "interpolation: the normalised convolution of the known pixels, no equation solved", "f and mask",
             linear_map=shepard.linear_map),
)}
