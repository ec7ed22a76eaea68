"""Images to work on, offline: the built-in pool, seeded crops and image sets, synthetic images.

* :func:`builtin_names`, :func:`builtin_image`, :func:`builtin_pool`, :func:`builtin_info`: a named
  pool of photographs and medical images shipped inside installed Python packages (scikit-image,
  PyWavelets, matplotlib, pydicom and, when installed, scikit-learn), with a fixed train/test split
  by source image.
* :func:`random_crops`: seeded random square crops, reflect-padded as needed.
* :class:`ImageSet`, :func:`training_images`, :func:`source_images`: the training and validation images
  of a trainer (the built-in pool or user folders, never one source image in both), with seeded crops;
  :func:`held_out` the hash split they share.
* :func:`disk`, :func:`disks`, :func:`ellipses`, :func:`plateau_1d`: synthetic piecewise-constant
  images (TV-flow eigenfunctions and the generalisation test images of TVflowNET).

Files (reading and writing images) are in :mod:`pdeflow.io`. Nothing here downloads anything.
"""
from .builtin import builtin_image, builtin_info, builtin_names, builtin_pool
from .crops import ImageSet, held_out, random_crops, source_images, training_images
from .synthetic import disk, disks, ellipses, plateau_1d

__all__ = ["builtin_names", "builtin_image", "builtin_pool", "builtin_info", "random_crops", "ImageSet",
           "training_images", "source_images", "held_out", "disk", "disks", "ellipses", "plateau_1d"]
