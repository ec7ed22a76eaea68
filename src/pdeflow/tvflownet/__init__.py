"""TVflowNET: the network that learns the TV flow (Grossmann et al., 2022), unsupervised (loss (12)) or supervised.

A model maps ``(u0, t)`` to ``(u, phi)`` with ``u`` the shape of ``u0``
``(B, C, H, W)`` and ``phi`` ``(B, C, 2, H, W)``, so that ``pdeflow.ops.div(phi)``
has the shape of ``u`` and approximates ``u_t``.  See :mod:`.architectures` and
:mod:`.loss`; :mod:`.train` trains one (``pdeflow train tvflownet``),
:func:`load` and :func:`flow` (:mod:`.api`) use a trained one, :func:`average` and
:func:`ensemble` combine trained ones (their weights, or their outputs: the shipped
default is an :class:`Ensemble` of a U-Net and a 10-step LGD), and
:class:`Equivariant` (:mod:`.symmetry`) makes any model exactly shift
equivariant and one-homogeneous; :class:`PerChannel` runs a grey model on each colour channel.

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from . import architectures
from .api import average, ensemble, flow, load, shipped_models
from .architectures import *  # noqa: F403  (the package re-exports architectures.__all__)
from .joint import joint_optimise
from .loss import TVFlowLoss, loss_terms, time_derivative
from .per_channel import PerChannel
from .symmetry import Equivariant
from .tiled import Tiled, tiled_flow

# train() lives in the module of the same name (pdeflow.tvflownet.train.train); exporting it here would shadow
# the module. The paper's evaluation and its report live beside the pillar (pdeflow.evaluate.tvflownet). Inference
# (load, flow) does not import the training toolkit: TrainConfig is imported on first use.


def __getattr__(name):
    if name == "TrainConfig":
        from .train import TrainConfig
        return TrainConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    *architectures.__all__,
    "TVFlowLoss",
    "loss_terms",
    "time_derivative",
    "load",
    "average",
    "ensemble",
    "flow",
    "shipped_models",
    "Equivariant",
    "PerChannel",
    "Tiled", "tiled_flow",
    "TrainConfig",  # noqa: F405  (provided by __getattr__ above)
    "joint_optimise",
]
