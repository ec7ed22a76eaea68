"""Inverse evolution layers (Liu et al., 2023): a training-time regulariser for any segmentation network.

    from pdeflow.iel import with_iels
    net = with_iels(my_unet, "heat", dt=0.025, steps=30)   # IELs in train(), identity in eval()

* :mod:`~pdeflow.iel.layers` -- :class:`InverseEvolution` ``u <- u - dt F(u)``, the operators
  :class:`Heat`, :class:`TVFlow`, :class:`PeronaMalik`, zero or Neumann boundary, :func:`with_iels`.
* :mod:`~pdeflow.iel.noise` -- seeded label noise (grid blocks, random windows).
* :mod:`~pdeflow.iel.unet` -- the paper's U-Net (InstanceNorm, LeakyReLU).
* :mod:`~pdeflow.iel.datasets` -- offline labelled data (DSB2018 nuclei, Colin27 brain MR).
* :mod:`~pdeflow.evaluate.iel` -- the noisy-label experiment (``pdeflow iel-experiment``).

References
----------
.. [1] C. Liu, Z. Qiao, C. Li, C.-B. Schönlieb, "Inverse evolution layers: physics-informed regularizers
       for deep neural networks", arXiv:2307.07344, 2023.
"""
from .layers import (
                     BOUNDARIES,
                     EVOLUTIONS,
                     STABLE_AMPLIFICATION,
                     AmplificationWarning,
                     Heat,
                     InverseEvolution,
                     PeronaMalik,
                     TVFlow,
                     WithIELs,
                     heat_iel_symbol,
                     make_operator,
                     official_heat_iel,
                     with_iels,
)
from .noise import add_label_noise, block_noise, window_noise
from .unet import SegmentationUNet

__all__ = ["BOUNDARIES", "EVOLUTIONS", "Heat", "TVFlow", "PeronaMalik", "make_operator", "InverseEvolution",
           "WithIELs", "with_iels", "official_heat_iel", "heat_iel_symbol", "block_noise", "window_noise",
           "add_label_noise", "SegmentationUNet", "STABLE_AMPLIFICATION", "AmplificationWarning"]
