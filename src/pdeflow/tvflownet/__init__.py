"""TVflowNET: the unsupervised network that learns the TV flow (seed 000).

A model maps ``(u0, t)`` to ``(u, phi)`` with ``u`` the shape of ``u0``
``(B, C, H, W)`` and ``phi`` ``(B, C, 2, H, W)``, so that ``pdeflow.ops.div(phi)``
has the shape of ``u`` and approximates ``u_t``.  See :mod:`.models` and
:mod:`.loss`.
"""
from .loss import TVFlowLoss, loss_terms, time_derivative
from .models import (
    ARCHITECTURES,
    LGD,
    PAPER_PARAMETER_COUNTS,
    SemiResNet,
    TVflowNetModel,
    UNet,
    build_model,
    count_parameters,
    normalised_gradient,
    project_unit_ball,
    time_image,
    zero_border,
)

__all__ = [
    "TVflowNetModel",
    "SemiResNet",
    "UNet",
    "LGD",
    "ARCHITECTURES",
    "PAPER_PARAMETER_COUNTS",
    "build_model",
    "count_parameters",
    "time_image",
    "normalised_gradient",
    "project_unit_ball",
    "zero_border",
    "TVFlowLoss",
    "loss_terms",
    "time_derivative",
]
