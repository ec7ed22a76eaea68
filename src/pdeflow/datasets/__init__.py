"""Images to work on, offline: the built-in pool, seeded crops and image sets, synthetic images.

* :func:`builtin_names`, :func:`builtin_image`, :func:`builtin_pool`, :func:`builtin_info`: a named
  pool of photographs and medical images shipped inside installed Python packages (scikit-image,
  PyWavelets, matplotlib, pydicom and, when installed, scikit-learn), with a fixed train/test split
  by source image.
* :func:`random_crops`: seeded random square crops, reflect-padded as needed.
* :class:`ImageSet`, :func:`training_images`, :func:`source_images`: the training and validation images
  of a trainer (the built-in pool or user folders, several at once with :func:`source_images`, never one
  source image in both), with seeded crops; :func:`held_out` the hash split they share.
* :func:`disk`, :func:`disks`, :func:`ellipses`, :func:`rectangles`, :func:`polygons`, :func:`plateau_1d`:
  synthetic piecewise-constant images (TV-flow eigenfunctions, the generalisation test images of
  TVflowNET); :func:`smooth_field`, :func:`piecewise_smooth`: smooth and piecewise-smooth images;
  :data:`SCENES`, :func:`scenes`: the random scene kinds by name, mixed in one batch.
* :func:`ball`, :func:`ellipsoids`, :func:`shepp_logan_3d`: generated volumes ``(D, H, W)`` (the 3-D TV-flow
  eigenfunction, ellipsoid phantoms, the 3-D Shepp-Logan head phantom).

Files (reading and writing images) are in :mod:`pdeflow.io`. Nothing here downloads anything.
"""
from .builtin import builtin_image, builtin_info, builtin_names, builtin_pool
from .crops import ImageSet, held_out, random_crops, source_images, training_images
from .phantoms import ball, ellipsoids, shepp_logan_3d
from .synthetic import (
    SCENES,
    disk,
    disks,
    ellipses,
    piecewise_smooth,
    plateau_1d,
    polygons,
    rectangles,
    scenes,
    smooth_field,
)

__all__ = ["builtin_names", "builtin_image", "builtin_pool", "builtin_info", "random_crops", "ImageSet",
           "training_images", "source_images", "held_out", "disk", "disks", "ellipses", "rectangles", "polygons",
           "smooth_field", "piecewise_smooth", "plateau_1d", "SCENES", "scenes", "ball", "ellipsoids", "shepp_logan_3d"]
