"""Public names for the parts of :mod:`~pdeflow.inpaint.diffusion` that the mask methods reuse.

Test-time refinement (:mod:`~pdeflow.inpaint.masks.refine`) solves many nearby inpainting problems: it
needs the unchecked forward solve, the recorded solve that exposes its adjoint for warm starts, the
Laplacian as a CSR matrix with its fast product, the masked system for :func:`pdeflow.linalg.cg_matrix`
and the solver's warning; PS and NLPE (:mod:`~pdeflow.inpaint.masks.sparsification`) take ``diffuse``'s
deprecated ``method=`` keyword the same way. ``diffusion.py`` keeps these under private names (it is
being rebuilt on another branch, which moves its CSR/multigrid kit to ``pdeflow.multigrid``): this module
is the one place outside it that names them, so that no other module reaches into its private names.
When ``diffusion.py`` (or ``pdeflow.multigrid``) exports them, this module goes.
"""
from __future__ import annotations

from .diffusion import _csr_product as csr_product
from .diffusion import _diffuse_recorded as diffuse_recorded
from .diffusion import _forward as diffuse_unchecked
from .diffusion import _laplacian_csr as laplacian_csr
from .diffusion import _MaskedLaplacian as MaskedLaplacian
from .diffusion import _solver_alias as solver_alias
from .diffusion import _warn_max_iter as warn_max_iter

__all__ = ["csr_product", "diffuse_recorded", "diffuse_unchecked", "laplacian_csr", "MaskedLaplacian",
           "solver_alias", "warn_max_iter"]
