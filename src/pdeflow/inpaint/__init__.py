"""Sparse inpainting and spatial optimisation (seed 004).

Model-based part:

* :func:`diffuse`: homogeneous diffusion inpainting (Laplace equation on the
  unknown pixels, Neumann boundary), multigrid-preconditioned CG, batched;
  continuous masks in [0, 1], and differentiable in the image and the mask
  (adjoint method, Hoeltgen, Setzer, Weickert 2013).
* :func:`random_mask`, :func:`probabilistic_sparsification` (PS) and
  :func:`nonlocal_pixel_exchange` (NLPE): masks of a given density, random or
  optimised for diffusion inpainting.
* :func:`inpainting_error`: the per-image error (MSE or MAE).
* :func:`refine_mask`: test-time refinement of a mask at fixed density (best of
  several blue-noise tile shifts, adjoint-guided pixel exchanges), a fraction of a
  second per 64 x 64 mask.

Learned part (seed 004 §2-3; :mod:`~pdeflow.inpaint.wgan`, :mod:`~pdeflow.inpaint.masknet`,
training in :mod:`~pdeflow.inpaint.train`, ``pdeflow train inpainting``):

* :func:`gan_inpaint`: inpainting by the inpainting WGAN (Vasata et al.).
* :func:`gan_mask`: a mask of a given density from the joint mask WGAN.
* :func:`load_inpainting_model`, :func:`load_mask_model`: trained models, shipped or exported.

Masks are 1 on known pixels and 0 on missing ones. Command line: ``pdeflow mask`` and
``pdeflow inpaint`` (:mod:`pdeflow.inpaint.cli`).
"""
from .diffusion import DiffuseResult, diffuse, inpainting_error
from .masks import MaskResult, nonlocal_pixel_exchange, probabilistic_sparsification, random_mask
from .refine import RefineResult, refine_mask
from .gan import gan_inpaint, gan_mask, load_inpainting_model, load_mask_model
from .masknet import MaskGAN, MaskGenerator
from .wgan import Critic, InpaintingGenerator

__all__ = [
    "diffuse",
    "DiffuseResult",
    "inpainting_error",
    "random_mask",
    "probabilistic_sparsification",
    "nonlocal_pixel_exchange",
    "MaskResult",
    "refine_mask",
    "RefineResult",
    "gan_inpaint",
    "gan_mask",
    "load_inpainting_model",
    "load_mask_model",
    "InpaintingGenerator",
    "Critic",
    "MaskGenerator",
    "MaskGAN",
]
