"""Inpainting masks, one method per module (the public functions are in :mod:`pdeflow.inpaint`):

* :mod:`~pdeflow.inpaint.masks.sparsification`: random masks, probabilistic sparsification (PS) and
  non-local pixel exchange (NLPE), with the PS step schedule;
* :mod:`~pdeflow.inpaint.masks.densification`: masks grown from a sparse one where the inpainting errs most;
* :mod:`~pdeflow.inpaint.masks.dither`: void-and-cluster tiles and ordered dithering to exact counts;
* :mod:`~pdeflow.inpaint.masks.analytic`: Belhachmi et al.'s density, dithered;
* :mod:`~pdeflow.inpaint.masks.snapping`: snapping points to local extrema (and its expectation);
* (their Gaussian smoothing and 3 x 3 maximum are the shared :mod:`pdeflow.filters`);
* :mod:`~pdeflow.inpaint.masks.refine`: test-time refinement of a mask at fixed density.
"""
