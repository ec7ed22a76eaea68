"""The inpainting operators by name: homogeneous diffusion and the operators of this package (biharmonic,
edge-enhancing diffusion, total variation).

:data:`OPERATORS` maps a name to an :class:`Operator`: its checked public function (registered in
:data:`pdeflow.inpaint.INPAINT_METHODS` under the same name, so ``pdeflow.inpaint.inpaint(f, mask, method=name)``
and ``pdeflow inpaint --method NAME`` run it) and its unchecked solve, which the mask methods call many times
(:func:`~pdeflow.inpaint.densify_mask` grows a mask for the operator that will inpaint from it). An operator is
added by writing its module here and registering it in the table; the tests run over the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..diffusion import diffuse
from ..diffusion_system import default_max_iter, diffuse_unchecked
from . import biharmonic, eed, tv

__all__ = ["Operator", "OPERATORS"]


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


def _diffusion_solve(f4: torch.Tensor, m: torch.Tensor, *, u0: torch.Tensor | None = None,
                     tol: float = 1e-3) -> torch.Tensor:
    """Homogeneous diffusion inpainting, unchecked (multigrid-preconditioned CG)."""
    H, W = f4.shape[-2:]
    return diffuse_unchecked(f4, m, True, tol, default_max_iter("mg", H, W), u0, "mg")[0]


#: The inpainting operators by name.
OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("diffusion", diffuse, _diffusion_solve, "homogeneous diffusion: the Laplace equation on the unknown "
             "pixels", "f and mask", volumes=True),
    Operator("biharmonic", biharmonic.biharmonic_inpaint, biharmonic.solve_unchecked, "biharmonic: the "
             "bi-Laplace equation on the unknown pixels (scikit-image's inpaint_biharmonic)", "f and mask",
             volumes=True),
    Operator("eed", eed.eed_inpaint, eed.solve_unchecked, "edge-enhancing diffusion: smoothing along edges, not "
             "across them (R-EED's steady state)", ""),
    Operator("tv", tv.tv_inpaint, tv.solve_unchecked, "total variation: the least total variation that keeps the "
             "known pixels", "f"),
)}
