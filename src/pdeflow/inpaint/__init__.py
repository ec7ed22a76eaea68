"""Sparse inpainting and spatial optimisation (Peter, 2022).

One naming scheme (the method tables' keys): an inpainting is ``inpaint_<method>`` (scikit-image's
``inpaint_biharmonic`` style), a mask ``<method>_mask``, a trained model's loader ``load_<model>``. The entry points
by name are :func:`inpaint` (any method of :data:`INPAINT_METHODS`: the operators of :data:`OPERATORS`, then
``'learned'`` and ``'wgan'``) and :func:`make_mask` (any of :data:`MASK_METHODS`); the command line and the
evaluation dispatch through these tables (:mod:`~pdeflow.inpaint.methods`). Each method's own function is the same
entry with its options documented:

* operators (:mod:`~pdeflow.inpaint.operators`, one module each): :func:`inpaint_diffusion` (homogeneous
  diffusion; continuous masks, differentiable in the image and the mask), :func:`inpaint_biharmonic`,
  :func:`inpaint_eed` (edge-enhancing diffusion), :func:`inpaint_tv` (total variation), :func:`inpaint_shepard`
  (Gaussian-weighted Shepard interpolation); for sparse data and for holes (:func:`hole_mask` draws scratches,
  text or blobs); :func:`inpainting_error`;
* learned inpainting (:mod:`~pdeflow.inpaint.learned`): :func:`inpaint_learned` (diffusion plus a learned
  correction, the residual inpainter), :func:`inpaint_wgan` (the inpainting WGAN of Vasata et al.);
* masks (:mod:`~pdeflow.inpaint.masks`, one module per kind): :func:`random_mask`, :func:`analytic_mask`
  (Belhachmi, Bucur, Burgeth, Weickert 2009, with :func:`analytic_sigma`), :func:`densify_mask` (grown where the
  inpainting errs most, for any operator; :func:`default_stages`), :func:`ps_mask` (probabilistic
  sparsification), :func:`nlpe_mask` (non-local pixel exchange), :func:`learned_mask` (the mask network),
  :func:`gan_mask` (the joint mask WGAN), :func:`refine_mask` (test-time refinement at fixed density),
  :func:`dither` and :func:`blue_noise_tile` (ordered dithering, Ulichney 1993);
* tonal optimisation: :func:`optimise_tonal`, the values to store on a mask (:mod:`~pdeflow.inpaint.tonal`;
  the codec, :mod:`pdeflow.codec`, stores them);
* trained models: :func:`load_masknet`, :func:`load_mask_gan`, :func:`load_wgan`, :func:`load_residual`,
  :func:`load_joint`.

Classes and result types live in their submodules (:class:`~pdeflow.inpaint.operators.Operator`,
:class:`~pdeflow.inpaint.methods.Method`, :class:`~pdeflow.inpaint.tonal.TonalResult`,
:class:`~pdeflow.inpaint.operators.diffusion.DiffuseResult`, the networks of :mod:`~pdeflow.inpaint.learned`, ...).
The names of the previous release (``diffuse``, ``biharmonic_inpaint``, ``probabilistic_sparsification``,
``load_mask_model``, ``MaskNet``, ...) still work for one release and warn (DeprecationWarning) with the new name.

Other rooms: :mod:`~pdeflow.inpaint.checks` (the operators' shared input checks), :mod:`~pdeflow.inpaint.training`
(the networks' trainers), :mod:`~pdeflow.inpaint.holes`, :mod:`~pdeflow.inpaint.result` (the errors and figure of
one result). The paper's comparison lives beside the pillar, in :mod:`pdeflow.evaluate.inpaint`. Masks are 1 on
known pixels and 0 on missing ones. Command line: ``pdeflow mask`` and ``pdeflow inpaint``.

References
----------
.. [1] P. Peter, "A Wasserstein GAN for joint learning of inpainting and spatial optimisation",
       PSIVT 2022, LNCS, Springer, 2022 (arXiv:2202.05623).
"""
import importlib as _importlib
import warnings as _warnings

from .holes import HOLE_KINDS, hole_mask, star_radius
from .learned.gan import gan_mask, inpaint_wgan, load_mask_gan, load_wgan
from .learned.masknet import learned_mask, load_masknet
from .learned.residual import inpaint_learned, load_joint, load_residual
from .masks.analytic import analytic_mask, analytic_sigma
from .masks.densification import default_stages, densify_mask
from .masks.dither import blue_noise_tile, dither
from .masks.refine import refine_mask
from .masks.sparsification import nlpe_mask, ps_mask, random_mask
from .methods import INPAINT_METHODS, MASK_METHODS, inpaint, make_mask
from .operators import OPERATORS
from .operators.biharmonic import inpaint_biharmonic
from .operators.diffusion import inpaint_diffusion, inpainting_error
from .operators.eed import inpaint_eed
from .operators.shepard import inpaint_shepard
from .operators.tv import inpaint_tv
from .tonal import optimise_tonal

#: The API reference's groups of :data:`__all__`, in this order (docs/_ext/pdeflow_api.py; every name in one).
__api_groups__ = {
    "Entry points and tables": ["inpaint", "make_mask", "INPAINT_METHODS", "MASK_METHODS", "OPERATORS"],
    "Operators": ["inpaint_diffusion", "inpaint_biharmonic", "inpaint_eed", "inpaint_tv", "inpaint_shepard",
                  "inpainting_error", "hole_mask", "HOLE_KINDS", "star_radius"],
    "Learned inpainting": ["inpaint_learned", "inpaint_wgan"],
    "Masks": ["random_mask", "analytic_mask", "analytic_sigma", "densify_mask", "default_stages", "ps_mask",
              "nlpe_mask", "learned_mask", "gan_mask", "refine_mask", "dither", "blue_noise_tile"],
    "Tonal optimisation": ["optimise_tonal"],
    "Trained models": ["load_masknet", "load_mask_gan", "load_wgan", "load_residual", "load_joint"],
}
__all__ = ["inpaint", "make_mask", "INPAINT_METHODS", "MASK_METHODS", "OPERATORS", "inpaint_diffusion",
           "inpaint_biharmonic", "inpaint_eed", "inpaint_tv", "inpaint_shepard", "inpainting_error", "hole_mask",
           "HOLE_KINDS", "star_radius", "inpaint_learned", "inpaint_wgan", "random_mask", "analytic_mask",
           "analytic_sigma",
           "densify_mask", "default_stages", "ps_mask", "nlpe_mask", "learned_mask", "gan_mask", "refine_mask",
           "dither", "blue_noise_tile", "optimise_tonal", "load_masknet", "load_mask_gan", "load_wgan",
           "load_residual", "load_joint"]

#: The previous release's names: ``old -> (module, new name)``; they warn for one release, then go.
_DEPRECATED = {
    "diffuse": ("operators.diffusion", "inpaint_diffusion"),
    "biharmonic_inpaint": ("operators.biharmonic", "inpaint_biharmonic"),
    "eed_inpaint": ("operators.eed", "inpaint_eed"),
    "tv_inpaint": ("operators.tv", "inpaint_tv"),
    "learned_inpaint": ("learned.residual", "inpaint_learned"),
    "gan_inpaint": ("learned.gan", "inpaint_wgan"),
    "probabilistic_sparsification": ("masks.sparsification", "ps_mask"),
    "nonlocal_pixel_exchange": ("masks.sparsification", "nlpe_mask"),
    "load_mask_model": ("learned.gan", "load_mask_gan"),
    "load_inpainting_model": ("learned.gan", "load_wgan"),
    "Method": ("methods", "Method"),
    "Operator": ("operators", "Operator"),
    "TonalResult": ("tonal", "TonalResult"),
    "DiffuseResult": ("operators.diffusion", "DiffuseResult"),
    "MaskResult": ("masks.sparsification", "MaskResult"),
    "RefineResult": ("masks.refine", "RefineResult"),
    "InpaintingGenerator": ("learned.wgan", "InpaintingGenerator"),
    "Critic": ("learned.wgan", "Critic"),
    "MaskGenerator": ("learned.maskgan", "MaskGenerator"),
    "MaskGAN": ("learned.maskgan", "MaskGAN"),
    "MaskNet": ("learned.masknet", "MaskNet"),
    "ResidualInpainter": ("learned.residual", "ResidualInpainter"),
}


def __getattr__(name: str):
    if name in _DEPRECATED:
        module, new = _DEPRECATED[name]
        where = f"pdeflow.inpaint.{new}" if new in __all__ else f"pdeflow.inpaint.{module}.{new}"
        _warnings.warn(f"pdeflow.inpaint.{name} is deprecated and goes in the next release; use {where}",
                       DeprecationWarning, stacklevel=2)
        return getattr(_importlib.import_module(f"{__name__}.{module}"), new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
