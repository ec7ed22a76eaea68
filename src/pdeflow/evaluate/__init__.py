"""The papers' evaluations and their reports, beside the library: what reproduces a table, not what a user
imports to process an image.

* :mod:`pdeflow.evaluate.tvflownet`: the TVflowNET paper's Tables 1-9 (Grossmann et al., 2022) for one or more
  models against the exact flow; :mod:`pdeflow.evaluate.tvflownet_report` turns its results into report.md,
  figures and JSON; :mod:`pdeflow.evaluate.tvflownet_reference` caches the reference flows it compares with.
* :mod:`pdeflow.evaluate.inpaint`: Peter (2022)'s comparison of mask methods and inpaintings (Tables 2-4) on
  held-out photos, with its report.
* :mod:`pdeflow.evaluate.iel`: Liu et al. (2023)'s noisy-label experiment (baseline against IELs, several seeds
  per arm) on the offline segmentation sets, with its table and curves.
* :mod:`pdeflow.evaluate.tvflownet_paper`: the TVflowNET paper's numbers, scale and time grid, as data.
* :mod:`pdeflow.evaluate.codec`: the codec's rate-distortion curves against JPEG, JPEG 2000, WebP, AVIF and
  JPEG XL, with its report.

``pdeflow evaluate tvflownet|inpainting|codec`` and ``pdeflow iel-experiment`` run them. The rule: an
evaluation imports the pillars it evaluates and the shared layer (reporting, figures); no pillar and no shared
module imports an evaluation.
Nothing is imported here: ``import pdeflow.evaluate`` costs nothing, each evaluation loads its own pillars.
"""
