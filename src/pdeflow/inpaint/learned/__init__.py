"""Learned models for inpainting, one model per module (the public functions are in :mod:`pdeflow.inpaint`):

* :mod:`~pdeflow.inpaint.learned.masknet`: :class:`~pdeflow.inpaint.learned.masknet.MaskNet`, the neuroexplicit
  mask network;
* :mod:`~pdeflow.inpaint.learned.residual`: :class:`~pdeflow.inpaint.learned.residual.ResidualInpainter`,
  diffusion plus a learned correction;
* :mod:`~pdeflow.inpaint.learned.unet`, :mod:`~pdeflow.inpaint.learned.losses`: the U-Net and the
  reconstruction loss those two share;
* :mod:`~pdeflow.inpaint.learned.wgan`: the inpainting WGAN (generator and critic, Vasata et al.);
* :mod:`~pdeflow.inpaint.learned.maskgan`: the joint mask WGAN of Peter (2022);
* :mod:`~pdeflow.inpaint.learned.gan`: loading and applying trained GANs (``gan_mask``, ``inpaint_wgan``).

Trained models are found and loaded through the one model registry, :mod:`pdeflow.models`.
"""
