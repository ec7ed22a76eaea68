"""Trainers of the learned inpainting models (they use the shared toolkit, :mod:`pdeflow.training`; nothing
that only applies a trained model imports them):

* :mod:`~pdeflow.inpaint.training.wgan`: the inpainting WGAN and the joint mask WGAN (``pdeflow train inpainting``);
* :mod:`~pdeflow.inpaint.training.masknet`: the mask network (``pdeflow train masknet``);
* :mod:`~pdeflow.inpaint.training.residual`: the residual inpainter and the joint pairs (``pdeflow train residual``).
"""
