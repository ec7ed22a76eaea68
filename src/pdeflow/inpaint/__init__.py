"""Sparse inpainting and spatial optimisation (Peter, 2022).

By name: :func:`make_mask` makes a mask by any method of :data:`MASK_METHODS` (``'densify'``,
``'analytic'``, ``'learned'``, ``'random'``, ``'ps'``, ``'nlpe'``, ``'gan'``) and :func:`inpaint` inpaints by
any of :data:`INPAINT_METHODS` (``'diffusion'``, ``'biharmonic'``, ``'eed'``, ``'tv'``, ``'learned'``,
``'wgan'``); the command line and the evaluation dispatch through these tables (:mod:`~pdeflow.inpaint.methods`).

Operators (:data:`OPERATORS`, :mod:`~pdeflow.inpaint.operators`): homogeneous diffusion (:func:`diffuse`),
:func:`biharmonic_inpaint` (scikit-image's system, multigrid or a sparse factorisation, images and volumes),
:func:`eed_inpaint` (edge-enhancing diffusion) and :func:`tv_inpaint` (total variation), for sparse data and for
holes (:func:`hole_mask` draws scratches, text or blobs); :func:`densify_mask` grows a mask for any of them.

Tonal optimisation: :func:`optimise_tonal`, the values to store on a mask that minimise the inpainting error
(least squares through the diffusion solver and its adjoint), optionally on given quantisation levels; the codec
(:mod:`pdeflow.codec`) stores them.

Model-based part:

* :func:`diffuse`: homogeneous diffusion inpainting (Laplace equation on the
  unknown pixels, Neumann boundary), multigrid-preconditioned CG, batched;
  continuous masks in [0, 1], and differentiable in the image and the mask
  (adjoint method, Hoeltgen, Setzer, Weickert 2013).
* :func:`random_mask`, :func:`probabilistic_sparsification` (PS) and
  :func:`nonlocal_pixel_exchange` (NLPE): masks of a given density, random or
  optimised for diffusion inpainting.
* :func:`densify_mask`: a mask grown from a sparse analytic one by adding points at the maxima of the
  inpainting's error, a few inpaintings in all (seconds for a 4K photograph).
* :func:`inpainting_error`: the per-image error (MSE or MAE).
* :func:`refine_mask`: test-time refinement of a mask at fixed density (best of
  several blue-noise tile shifts, exchanges with adjoint-guided reveals and probed hides), a fraction of a
  second per 64 x 64 mask.

Rooms: :mod:`~pdeflow.inpaint.methods` (the tables of methods), :mod:`~pdeflow.inpaint.operators.diffusion` (the
solver's entry point), :mod:`~pdeflow.inpaint.operators.diffusion_system` (the one linear system: build, solve, adjoint,
error maps), :mod:`~pdeflow.inpaint.operators` (biharmonic, EED, TV), :mod:`~pdeflow.inpaint.masks` (one module
per kind of mask: :mod:`~pdeflow.inpaint.masks.sparsification` random, PS and NLPE,
:mod:`~pdeflow.inpaint.masks.dither`, :mod:`~pdeflow.inpaint.masks.analytic`,
:mod:`~pdeflow.inpaint.masks.snapping`, :mod:`~pdeflow.inpaint.masks.densification`,
:mod:`~pdeflow.inpaint.masks.refine`), :mod:`~pdeflow.inpaint.learned` (one module per network: mask network,
residual inpainter, WGANs), :mod:`~pdeflow.inpaint.training` (their trainers), :mod:`~pdeflow.inpaint.tonal`,
:mod:`~pdeflow.inpaint.holes` and :mod:`~pdeflow.inpaint.result` (the errors and figure of one result). The
paper's comparison lives beside the pillar, in :mod:`pdeflow.evaluate.inpaint`.

Learned part (Peter, 2022, §2-3; :mod:`~pdeflow.inpaint.learned.wgan`, :mod:`~pdeflow.inpaint.learned.maskgan`,
training in :mod:`~pdeflow.inpaint.training.wgan`, ``pdeflow train inpainting``):

* :func:`gan_inpaint`: inpainting by the inpainting WGAN (Vasata et al.).
* :func:`gan_mask`: a mask of a given density from the joint mask WGAN.
* :func:`load_inpainting_model`, :func:`load_mask_model`: trained models, shipped or exported.
* :func:`learned_inpaint`: diffusion inpainting plus a learned correction that starts at zero
  (:mod:`~pdeflow.inpaint.learned.residual`; training in :mod:`~pdeflow.inpaint.training.residual`);
  :func:`load_joint`: a mask network and a residual inpainter fine-tuned together (stage ``joint``).

Analytic and learned masks (:mod:`~pdeflow.inpaint.masks.dither`, :mod:`~pdeflow.inpaint.masks.analytic`,
:mod:`~pdeflow.inpaint.learned.masknet`; training in :mod:`~pdeflow.inpaint.training.masknet`):

* :func:`blue_noise_tile`, :func:`dither`: void-and-cluster threshold tiles (Ulichney 1993) and
  ordered dithering of a density to exactly ``round(density H W)`` points.
* :func:`analytic_mask`: Belhachmi, Bucur, Burgeth, Weickert's (2009) density
  ``|laplacian(G_sigma * f)|``, dithered, optionally snapped to local extrema.
* :func:`learned_mask`, :func:`load_masknet`, :class:`MaskNet`: the neuroexplicit mask network
  (corrections of the analytic density, trained through the adjoint of :func:`diffuse`).

Masks are 1 on known pixels and 0 on missing ones. Command line: ``pdeflow mask`` and
``pdeflow inpaint`` (:mod:`pdeflow.cli.inpaint`).

References
----------
.. [1] P. Peter, "A Wasserstein GAN for joint learning of inpainting and spatial optimisation",
       PSIVT 2022, LNCS, Springer, 2022 (arXiv:2202.05623).
"""
from .holes import HOLE_KINDS, hole_mask
from .learned.gan import gan_inpaint, gan_mask, load_inpainting_model, load_mask_model
from .learned.maskgan import MaskGAN, MaskGenerator
from .learned.masknet import MaskNet, learned_mask, load_masknet
from .learned.residual import ResidualInpainter, learned_inpaint, load_joint, load_residual
from .learned.wgan import Critic, InpaintingGenerator
from .masks.analytic import analytic_mask, analytic_sigma
from .masks.densification import default_stages, densify_mask
from .masks.dither import blue_noise_tile, dither
from .masks.refine import RefineResult, refine_mask
from .masks.sparsification import MaskResult, nonlocal_pixel_exchange, probabilistic_sparsification, random_mask
from .methods import INPAINT_METHODS, MASK_METHODS, Method, inpaint, make_mask
from .operators import OPERATORS, Operator
from .operators.biharmonic import biharmonic_inpaint
from .operators.diffusion import DiffuseResult, diffuse, inpainting_error
from .operators.eed import eed_inpaint
from .operators.shepard import shepard_inpaint
from .operators.tv import tv_inpaint
from .tonal import TonalResult, optimise_tonal

__all__ = [
    "make_mask",
    "inpaint",
    "MASK_METHODS",
    "INPAINT_METHODS",
    "Method",
    "OPERATORS",
    "Operator",
    "biharmonic_inpaint",
    "eed_inpaint",
    "tv_inpaint",
    "shepard_inpaint",
    "optimise_tonal",
    "TonalResult",
    "diffuse",
    "DiffuseResult",
    "inpainting_error",
    "hole_mask",
    "HOLE_KINDS",
    "random_mask",
    "probabilistic_sparsification",
    "nonlocal_pixel_exchange",
    "densify_mask",
    "default_stages",
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
    "blue_noise_tile",
    "dither",
    "analytic_mask",
    "analytic_sigma",
    "learned_mask",
    "load_masknet",
    "MaskNet",
    "learned_inpaint",
    "load_residual",
    "load_joint",
    "ResidualInpainter",
]
