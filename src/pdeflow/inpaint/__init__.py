"""Sparse inpainting and spatial optimisation (Peter, 2022).

Model-based part:

* :func:`diffuse`: homogeneous diffusion inpainting (Laplace equation on the
  unknown pixels, Neumann boundary), multigrid-preconditioned CG, batched;
  continuous masks in [0, 1], and differentiable in the image and the mask
  (adjoint method, Hoeltgen, Setzer, Weickert 2013).
* :func:`random_mask`, :func:`probabilistic_sparsification` (PS) and
  :func:`nonlocal_pixel_exchange` (NLPE): masks of a given density, random or
  optimised for diffusion inpainting.
* :func:`inpainting_error`: the per-image error (MSE or MAE).

Learned part (Peter, 2022, §2-3; :mod:`~pdeflow.inpaint.wgan`, :mod:`~pdeflow.inpaint.masknet`,
training in :mod:`~pdeflow.inpaint.train`, ``pdeflow train inpainting``):

* :func:`gan_inpaint`: inpainting by the inpainting WGAN (Vasata et al.).
* :func:`gan_mask`: a mask of a given density from the joint mask WGAN.
* :func:`load_inpainting_model`, :func:`load_mask_model`: trained models, shipped or exported.

Masks are 1 on known pixels and 0 on missing ones. Command line: ``pdeflow mask`` and
``pdeflow inpaint`` (:mod:`pdeflow.cli.inpaint`).

References
----------
.. [1] P. Peter, "A Wasserstein GAN for joint learning of inpainting and spatial optimisation",
       PSIVT 2022, LNCS, Springer, 2022 (arXiv:2202.05623).
"""
from .diffusion import DiffuseResult, diffuse, inpainting_error
from .gan import gan_inpaint, gan_mask, load_inpainting_model, load_mask_model
from .masknet import MaskGAN, MaskGenerator
from .masks import MaskResult, nonlocal_pixel_exchange, probabilistic_sparsification, random_mask
from .wgan import Critic, InpaintingGenerator

__all__ = [
    "diffuse",
    "DiffuseResult",
    "inpainting_error",
    "random_mask",
    "probabilistic_sparsification",
    "nonlocal_pixel_exchange",
    "MaskResult",
    "gan_inpaint",
    "gan_mask",
    "load_inpainting_model",
    "load_mask_model",
    "InpaintingGenerator",
    "Critic",
    "MaskGenerator",
    "MaskGAN",
]
