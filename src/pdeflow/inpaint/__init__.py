"""Sparse inpainting and spatial optimisation (seed 004).

Model-based part:

* :func:`diffuse`: homogeneous diffusion inpainting (Laplace equation on the
  unknown pixels, Neumann boundary), multigrid-preconditioned CG, batched.
* :func:`random_mask`, :func:`probabilistic_sparsification` (PS) and
  :func:`nonlocal_pixel_exchange` (NLPE): masks of a given density, random or
  optimised for diffusion inpainting.
* :func:`inpainting_error`: the per-image error (MSE or MAE).

Masks are 1 on known pixels and 0 on missing ones.
"""
from .diffusion import DiffuseResult, diffuse, inpainting_error
from .masks import MaskResult, nonlocal_pixel_exchange, probabilistic_sparsification, random_mask

__all__ = [
    "diffuse",
    "DiffuseResult",
    "inpainting_error",
    "random_mask",
    "probabilistic_sparsification",
    "nonlocal_pixel_exchange",
    "MaskResult",
]
