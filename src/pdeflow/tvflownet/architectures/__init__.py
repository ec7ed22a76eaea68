"""TVflowNET architectures (Grossmann et al., 2022, section 3.2.1): Semi-ResNet, U-Net and LGD.

Every model maps an initial image and a flow time to the TV flow solution and
the diffusivity (dual) field,

    u, phi = model(u0, t)

Shapes
------
* ``u0``: ``(B, C, H, W)``; ``(C, H, W)`` and ``(H, W)`` are accepted too and
  the outputs then lose the same leading dimensions.  ``C`` must equal the
  model's ``in_channels`` (1 by default).  Any ``H, W`` works.
* ``t``: a float, a 0-d tensor or a ``(B,)`` tensor; it enters the network as a
  constant image channel ``tau`` (Grossmann et al., 2022, section 3.2.1).
* ``u``: the shape of ``u0``.
* ``phi``: ``(B, C, 2, H, W)`` -- the same ``(..., 2, H, W)`` convention as
  :func:`pdeflow.ops.grad`, so ``pdeflow.ops.div(phi)`` has the shape of ``u``
  and ``u_t ~= div(phi)`` is the TV flow.  For a greyscale model
  ``phi[:, 0]`` is the ``(B, 2, H, W)`` field of the paper.

Common to all three (Grossmann et al. (2022) and the official constructor facts):

* skip connection ``u0 -> u``: the network predicts ``u - u0`` (for the LGD the
  iterates start at ``u0``);
* optional projection of ``phi`` onto ``|phi| <= 1``,
  ``phi / clamp(sqrt(|phi|^2 + eps^2), min=1)`` (``project=True``, as the
  official wrapper's ``normalize_phi=True``);
* then ``phi`` is set to zero on a border of width ``edge_width`` (1): the hard
  Dirichlet constraint ``phi = 0`` on the boundary (paper and official code).
  Caveat: with the backward-difference divergence of :mod:`pdeflow.ops`,
  ``div(phi)`` then vanishes on the first row and first column (``u`` is
  frozen there) and the tangential flux along the last row/column is lost, so
  the exact discrete TV flow is not representable at the border (zeroing the
  border of the reference dual field leaves a temporal residual of order
  1e-2 in the loss on a 16x16 test image).  ``ops.div`` already encodes the
  discrete Dirichlet condition of the staggered dual field (it ignores
  ``phi[0]`` on the last row and ``phi[1]`` on the last column), so
  ``edge_width=0`` is the choice consistent with :mod:`pdeflow.tv`, and the
  shipped default uses it: with ``edge_width=1`` the one-pixel border carries
  a share of the ``div phi`` error far above its share of the pixels;
* for colour (``in_channels=C > 1``) the norm of ``phi`` couples the channels
  (vectorial TV, as :func:`pdeflow.ops.tv`) unless ``channelwise=True``.

Semi-ResNet and U-Net receive, besides ``u0`` and ``tau``, the regularised
normalised gradient ``grad u0 / sqrt(|grad u0|^2 + eps^2)`` (the LGD's
``phi_0``) as two extra channels per image channel (``phi_init_input=True``).
The paper only names ``(u0, tau)`` as input, but with these four input
channels the parameter counts are exactly the paper's 14,947 and 272,972, and
the official constructors take an ``eps = 1e-4`` that has no other use in them.

With that ``eps`` the input is a unit vector wherever ``u0`` is not exactly flat and jumps to zero
where it is: its derivative is of order ``1 / eps`` at flat pixels, and so is the model's derivative
with respect to ``u0``: autograd through a shipped model gives a gradient far larger than the
flow's, which is nonexpansive (see the results page "Speed and accuracy of the solvers").
``input_eps`` (every architecture; default ``None``: ``eps``, as the shipped weights were trained)
sets the input's scale on its own: at the
scale of the intensities' differences (0.03 to 0.3 on the x5 scale) the input is a smooth
saturation of ``grad u0`` and autograd gives the exact derivative of a model that varies on the
image's scale. :func:`with_input_eps` makes such a copy of a trained model; the shipped ``default`` is its
members with ``input_eps = 0.1``. ``eps`` keeps regularising the projection of ``phi``.

``exact_initial=True`` (every architecture; not in the paper) builds the initial condition into the
network: ``u = u0 + t du`` instead of ``u0 + du``, so ``u(0) = u0`` for any weights and loss (12)'s
initial term is zero; training from the loss alone then spends nothing on fitting ``u(0)``.

Every model is differentiable in ``t`` with forward-mode autodiff
(``torch.func.jvp``): only convolutions, softplus/ReLU, padding, bilinear
upsampling and elementwise arithmetic are used.

Each model keeps its constructor arguments in ``model.config`` (JSON-ready, with
an ``"arch"`` key), and ``build_model(**model.config)`` rebuilds it.

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

from .base import (
    PAPER_PARAMETER_COUNTS,
    TVflowNetModel,
    count_parameters,
    normalised_gradient,
    project_unit_ball,
    time_image,
    zero_border,
)
from .lgd import LGD
from .registry import ARCHITECTURES, Ensemble, build_model, with_input_eps
from .semiresnet import SemiResNet
from .unet import UNet

__all__ = [
    "TVflowNetModel",
    "SemiResNet",
    "UNet",
    "LGD",
    "Ensemble",
    "ARCHITECTURES",
    "PAPER_PARAMETER_COUNTS",
    "build_model",
    "count_parameters",
    "time_image",
    "normalised_gradient",
    "with_input_eps",
    "project_unit_ball",
    "zero_border",
]
