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

import copy
import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..errors import UserInputError

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

#: Parameter counts reported in Grossmann et al. (2022), section 3.2.1 (greyscale models).
PAPER_PARAMETER_COUNTS = {"semiresnet": 14_947, "unet": 272_972, "lgd": 33_415}


# --------------------------------------------------------------------------- helpers


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import count_parameters
    >>> count_parameters(torch.nn.Conv2d(1, 4, 3))
    40
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def time_image(t, u0: torch.Tensor) -> torch.Tensor:
    """The constant time channel ``tau`` of shape ``(B, 1, H, W)`` for ``u0`` ``(B, C, H, W)``.

    ``t`` is a float, a 0-d tensor or a ``(B,)`` tensor (a ``(B, 1)`` tensor is
    flattened).  Built by broadcasting, so forward-mode tangents of ``t`` flow.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import time_image
    >>> tau = time_image(torch.tensor([0.1, 0.7]), torch.zeros(2, 3, 4, 5))
    >>> tau.shape, tau[:, 0, 0, 0]
    (torch.Size([2, 1, 4, 5]), tensor([0.1000, 0.7000]))
    """
    u0 = ops.check_float(u0, "u0")
    if u0.dim() != 4:
        raise UserInputError(f"u0 must have shape (B, C, H, W), got {tuple(u0.shape)}")
    B, _, H, W = u0.shape
    if not torch.is_tensor(t):
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise TypeError(f"t must be a float or a tensor of shape () or (B,), got {type(t).__name__}") from None
        t = torch.full((B,), t, dtype=u0.dtype, device=u0.device)
    else:
        if t.dim() == 0:
            t = t.reshape(1).expand(B)
        elif t.dim() == 2 and t.shape[1] == 1:
            t = t.reshape(-1)
        if t.dim() != 1 or t.shape[0] != B:
            raise UserInputError(f"t must be a float or a tensor of shape () or (B,) = ({B},), got shape "
                                 f"{tuple(t.shape)}")
        t = t.to(dtype=u0.dtype, device=u0.device)
    return t.reshape(B, 1, 1, 1).expand(B, 1, H, W)


def normalised_gradient(u: torch.Tensor, eps: float, *, channelwise: bool = False) -> torch.Tensor:
    """``grad u / sqrt(|grad u|^2 + eps^2)``, shape ``(B, C, 2, H, W)`` for ``u`` ``(B, C, H, W)``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import normalised_gradient
    >>> u = torch.tensor([[0.0, 3.0], [0.0, 3.0]]).expand(1, 1, 2, 2)
    >>> normalised_gradient(u, 1e-4)[0, 0, :, 0, 0]  # a unit vector along W where u jumps
    tensor([0., 1.])
    """
    u = ops.check_tensor(u, "u")
    if u.dim() < 3:
        raise UserInputError(f"u must have shape (B, C, H, W) or (C, H, W), got {tuple(u.shape)}")
    g = ops.grad(u)
    n = ops.gradient_norm(g, channelwise=channelwise, eps=eps).unsqueeze(-3)  # (B, C|1, 1, H, W)
    return g / n


def project_unit_ball(phi: torch.Tensor, eps: float = 0.0, *, channelwise: bool = False) -> torch.Tensor:
    """Pointwise ``phi / clamp(sqrt(|phi|^2 + eps^2), min=1)`` for ``phi`` ``(B, C, 2, H, W)``.

    ``eps > 0`` keeps the derivative finite at ``phi = 0``.  The norm couples the
    colour channels unless ``channelwise``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import project_unit_ball
    >>> phi = torch.tensor([[3.0, 0.3], [4.0, 0.4]]).reshape(1, 1, 2, 1, 2)  # vectors (3, 4), (0.3, 0.4)
    >>> project_unit_ball(phi)[0, 0, :, 0]  # (3, 4) is scaled to unit length, (0.3, 0.4) kept
    tensor([[0.6000, 0.3000],
            [0.8000, 0.4000]])
    """
    phi = ops.check_tensor(phi, "phi")
    if phi.dim() < 4 or phi.shape[-3] != 2:
        raise UserInputError(f"phi must have shape (B, C, 2, H, W) or (C, 2, H, W), got {tuple(phi.shape)}")
    n = ops.gradient_norm(phi, channelwise=channelwise, eps=eps).unsqueeze(-3)
    return phi / torch.clamp(n, min=1.0)


def _border_mask(H: int, W: int, width: int, like: torch.Tensor) -> torch.Tensor:
    m = torch.ones(H, W, dtype=like.dtype, device=like.device)
    if width > 0:
        m[:width, :] = 0
        m[-width:, :] = 0
        m[:, :width] = 0
        m[:, -width:] = 0
    return m


def zero_border(phi: torch.Tensor, width: int = 1) -> torch.Tensor:
    """``phi`` with its outer ``width`` rows and columns set to zero (not in place).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import zero_border
    >>> zero_border(torch.ones(1, 1, 2, 4, 4))[0, 0, 0]
    tensor([[0., 0., 0., 0.],
            [0., 1., 1., 0.],
            [0., 1., 1., 0.],
            [0., 0., 0., 0.]])
    """
    phi = ops.check_float(phi, "phi")
    if width <= 0:
        return phi
    return phi * _border_mask(phi.shape[-2], phi.shape[-1], width, phi)


def _positive_finite(x) -> bool:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return False
    return math.isfinite(x) and x > 0


def _softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x)


# --------------------------------------------------------------------------- base


class TVflowNetModel(nn.Module):
    """Shared input handling, skip connection, projection and boundary condition.

    Subclasses implement ``_net(u0, tau) -> (du, phi)`` on ``(B, C, H, W)`` input with
    ``du`` ``(B, C, H, W)`` (the residual ``u - u0``) and ``phi`` ``(B, C, 2, H, W)``
    before projection and border zeroing.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import SemiResNet, TVflowNetModel
    >>> model = SemiResNet(width=4, depth=3)  # every architecture is a TVflowNetModel
    >>> u, phi = model(torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)), 0.5)
    >>> isinstance(model, TVflowNetModel), u.shape, phi.shape
    (True, torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 2, 8, 8]))
    >>> phi[..., 0, :].abs().max().item(), phi.norm(dim=2).max().item() <= 1.0  # zero border, |phi| <= 1
    (0.0, True)
    """

    #: Whether the network reads the normalised gradient of ``u0`` (:meth:`network_input`); architectures with
    #: the option set it per instance.
    phi_init_input = False

    arch: str = ""

    def __init__(self, *, in_channels: int = 1, eps: float = 1e-4, project: bool = True,
                 edge_width: int = 1, channelwise: bool = False, input_eps: float | None = None):
        super().__init__()
        if int(in_channels) < 1:
            raise UserInputError(f"in_channels must be >= 1, got {in_channels}")
        if int(edge_width) < 0:
            raise UserInputError(f"edge_width must be >= 0, got {edge_width}")
        if not float(eps) > 0:
            raise UserInputError(f"eps must be > 0 (it regularises |grad u0| and |phi|), got {eps}")
        if input_eps is not None and not _positive_finite(input_eps):
            raise UserInputError(f"input_eps must be a finite number > 0 (the scale of |grad u0| below which "
                                 f"the normalised-gradient input is linear) or None (use eps), got {input_eps}")
        self.in_channels = int(in_channels)
        self.eps = float(eps)
        self.project = bool(project)
        self.edge_width = int(edge_width)
        self.channelwise = bool(channelwise)
        self.input_eps = None if input_eps is None else float(input_eps)
        self._config: dict[str, Any] = {}

    @property
    def gradient_eps(self) -> float:
        """The ``eps`` of the normalised-gradient input: ``input_eps``, or ``eps`` where that is None."""
        return self.eps if self.input_eps is None else self.input_eps

    def _input_eps_config(self) -> dict[str, Any]:
        # Only when set, so the configs (and JSON files) of models built before the option are unchanged.
        return {} if self.input_eps is None else {"input_eps": self.input_eps}

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready) with the architecture name under ``"arch"``."""
        return {"arch": self.arch, **self._config}

    def _net(self, u0: torch.Tensor, tau: torch.Tensor):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, u0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluate the learned flow: ``(u, phi)`` at time ``t`` from ``u0``; see the module doc."""
        if not torch.is_tensor(u0):
            raise TypeError(f"u0 must be a tensor, got {type(u0).__name__}")
        ndim = u0.dim()
        if ndim == 2:
            x = u0[None, None]
        elif ndim == 3:
            x = u0[None]
        elif ndim == 4:
            x = u0
        else:
            raise UserInputError(f"u0 must have shape (B, C, H, W), (C, H, W) or (H, W), got {tuple(u0.shape)}")
        if x.shape[1] != self.in_channels:
            raise UserInputError(f"u0 has {x.shape[1]} channel(s) but the model was built with "
                                 f"in_channels={self.in_channels}")
        ops.check_float(x, "u0")
        if ndim < 4 and torch.is_tensor(t) and t.dim() == 1 and t.shape[0] == 1:
            t = t[0]
        tau = time_image(t, x)
        du, phi = self._net(x, tau)
        u = x + du
        if self.project:
            phi = project_unit_ball(phi, self.eps, channelwise=self.channelwise)
        phi = zero_border(phi, self.edge_width)
        if ndim == 4:
            return u, phi
        if ndim == 3:
            return u[0], phi[0]
        return u[0, 0], phi[0, 0]

    def _split_output(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split a ``(B, 3C, H, W)`` network output into ``du`` and ``phi`` ``(B, C, 2, H, W)``."""
        C = self.in_channels
        B, _, H, W = out.shape
        return out[:, :C], out[:, C:].reshape(B, C, 2, H, W)

    def network_input(self, u0: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """The network's input ``(B, C + 1 (+ 2C), H, W)``: ``u0``, the time image ``tau`` and, with
        ``phi_init_input``, the normalised gradient of ``u0`` (with :attr:`gradient_eps`). The one assembly of
        it: :class:`~pdeflow.tvflownet.tiled.Tiled` evaluates the U-Net from it too."""
        parts = [u0, tau]
        if self.phi_init_input:
            g = normalised_gradient(u0, self.gradient_eps, channelwise=self.channelwise)
            parts.append(g.flatten(1, 2))
        return torch.cat(parts, dim=1)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._config.items())


# --------------------------------------------------------------------------- Semi-ResNet


class SemiResNet(TVflowNetModel):
    """Semi-ResNet: ``depth`` 3x3 convolutions of ``width`` channels, ReLU then softplus.

    Grossmann et al. (2022): eight convolutional layers with 16 channels, ReLU after the first
    layer and softplus after the following ones (official ``relu=1, softplus=6``),
    no activation after the last layer, one skip connection ``u0 -> u`` and none
    for ``phi``.  14,947 parameters for ``in_channels=1`` with ``phi_init_input``.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    width, depth : int
        Channels of the hidden layers and number of convolutional layers (>= 2).
    n_relu : int
        Number of leading hidden activations that are ReLU; the other
        ``depth - 1 - n_relu`` are softplus.
    eps : float
        Regularisation of the normalised-gradient input and of the projection.
    project, edge_width, channelwise : see the module doc.
    phi_init_input : bool
        Feed ``grad u0 / sqrt(|grad u0|^2 + eps^2)`` as two extra input channels.
    padding_mode : str
        Padding of the convolutions (``"zeros"``, ``"reflect"``, ``"replicate"``).
    input_eps : float, optional
        The ``eps`` of that input (all architectures; the LGD's ``phi_0``); ``None``: ``eps``.
        See the module doc.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import SemiResNet, count_parameters
    >>> count_parameters(SemiResNet())  # the paper's size
    14947
    >>> u, phi = SemiResNet(width=4, depth=3)(torch.zeros(1, 1, 8, 8), torch.tensor([0.3]))
    >>> u.shape, phi.shape
    (torch.Size([1, 1, 8, 8]), torch.Size([1, 1, 2, 8, 8]))
    """

    arch = "semiresnet"

    def __init__(self, in_channels: int = 1, width: int = 16, depth: int = 8, n_relu: int = 1,
                 eps: float = 1e-4, project: bool = True, edge_width: int = 1,
                 phi_init_input: bool = True, channelwise: bool = False, padding_mode: str = "zeros",
                 input_eps: float | None = None):
        super().__init__(in_channels=in_channels, eps=eps, project=project, edge_width=edge_width,
                         channelwise=channelwise, input_eps=input_eps)
        if int(depth) < 2:
            raise UserInputError(f"depth must be >= 2, got {depth}")
        if not 0 <= int(n_relu) <= int(depth) - 1:
            raise UserInputError(f"n_relu must be in [0, depth - 1] = [0, {int(depth) - 1}], got {n_relu}")
        if int(width) < 1:
            raise UserInputError(f"width must be >= 1, got {width}")
        C = self.in_channels
        self.phi_init_input = bool(phi_init_input)
        n_in = C + 1 + (2 * C if self.phi_init_input else 0)
        chans = [n_in] + [int(width)] * (int(depth) - 1) + [3 * C]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, padding_mode=padding_mode)
            for i in range(int(depth))
        )
        self.n_relu = int(n_relu)
        self._config = dict(in_channels=C, width=int(width), depth=int(depth), n_relu=self.n_relu,
                            eps=self.eps, project=self.project, edge_width=self.edge_width,
                            phi_init_input=self.phi_init_input, channelwise=self.channelwise,
                            padding_mode=padding_mode, **self._input_eps_config())

    def _net(self, u0, tau):
        x = self.network_input(u0, tau)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < last:
                x = F.relu(x) if i < self.n_relu else _softplus(x)
        return self._split_output(x)


# --------------------------------------------------------------------------- U-Net


class _Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x):
        return _softplus(self.conv2(_softplus(self.conv1(x))))


class _Up(nn.Module):
    def __init__(self, cin, cout, skip):
        super().__init__()
        self.skip = int(skip)
        if self.skip > 0:
            self.skip_conv = nn.Conv2d(cout, self.skip, 1)
        self.conv1 = nn.Conv2d(cin + self.skip, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x, bridge):
        x = F.interpolate(x, size=bridge.shape[-2:], mode="bilinear", align_corners=True)
        if self.skip > 0:
            x = torch.cat([x, _softplus(self.skip_conv(bridge))], dim=1)
        return _softplus(self.conv2(_softplus(self.conv1(x))))


class UNet(TVflowNetModel):
    """U-Net with ``scales - 1`` encoder and decoder blocks and narrow skip connections.

    Grossmann et al. (2022): three encoder and three decoder blocks with softplus activations, a
    skip connection ``u0 -> u`` and none for ``phi``; the official constructor is
    ``NN(scales=4, skip=3, channels=(32, 32, 64, 64, 128))``.  Layout (a deep
    image prior style U-Net, of which the official arguments are the signature):

    * input block: 3x3 conv to ``channels[0]``, softplus;
    * encoder block ``i = 1..scales-1``: 3x3 conv with stride 2 to ``channels[i]``,
      softplus, 3x3 conv, softplus;
    * decoder block: bilinear upsampling (align_corners) to the size of the
      matching encoder level, concatenation with ``skip`` channels computed from
      that level by a 1x1 conv + softplus, then two 3x3 conv + softplus down to
      the next lower level's width;
    * output: 1x1 conv to ``3 C`` channels (``du`` and ``phi``).

    Only ``channels[:scales]`` is used (as the official constructor, which passes
    five widths with ``scales=4``).  272,972 parameters for ``in_channels=1``
    with ``phi_init_input``.

    ``refine > 0`` (not in the paper) adds a full-resolution refinement block: two 3x3 convs of
    ``refine`` channels + softplus on the decoder's output concatenated with the network input
    (``u0``, ``t`` and the normalised gradient of ``u0``), then a 1x1 conv whose output is added to
    the output layer's.  The top decoder level otherwise sees the input only through ``skip``
    channels, which is where ``phi``'s fine structure has to be made.  The last conv starts at
    zero, so a refined U-Net grown from the weights of a plain one (:attr:`grown_prefixes`)
    computes the same function until it is trained.  Inputs of any size are padded to a multiple of
    ``2**(scales-1)`` (``pad_mode``, reflect by default; replicate where the
    image is too small to reflect) and the outputs cropped back, before the
    projection and border zeroing of ``phi``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import UNet, count_parameters
    >>> count_parameters(UNet())  # the paper's layout
    272972
    >>> u, phi = UNet(scales=2, skip=2, channels=(4, 4))(torch.zeros(1, 1, 8, 8), 0.3)
    >>> u.shape, phi.shape
    (torch.Size([1, 1, 8, 8]), torch.Size([1, 1, 2, 8, 8]))
    """

    arch = "unet"

    def __init__(self, in_channels: int = 1, scales: int = 4, skip: int = 3,
                 channels: Sequence[int] = (32, 32, 64, 64, 128), eps: float = 1e-4,
                 project: bool = True, edge_width: int = 1, phi_init_input: bool = True,
                 channelwise: bool = False, pad_mode: str = "reflect", refine: int = 0,
                 input_eps: float | None = None):
        super().__init__(in_channels=in_channels, eps=eps, project=project, edge_width=edge_width,
                         channelwise=channelwise, input_eps=input_eps)
        channels = [int(c) for c in channels]
        if int(refine) < 0:
            raise UserInputError(f"refine must be >= 0 (channels of the refinement block; 0: none), got {refine}")
        if int(scales) < 1 or int(scales) > len(channels):
            raise UserInputError(f"scales must be in [1, len(channels)] = [1, {len(channels)}], got {scales}")
        if int(skip) < 0:
            raise UserInputError(f"skip must be >= 0, got {skip}")
        if pad_mode not in ("reflect", "replicate", "constant", "circular"):
            raise UserInputError(f"pad_mode must be 'reflect', 'replicate', 'constant' or 'circular', got {pad_mode!r}")
        C = self.in_channels
        self.scales = int(scales)
        self.phi_init_input = bool(phi_init_input)
        self.pad_mode = pad_mode
        ch = channels[: self.scales]
        n_in = C + 1 + (2 * C if self.phi_init_input else 0)
        self.inc = nn.Conv2d(n_in, ch[0], 3, padding=1)
        self.down = nn.ModuleList(_Down(ch[i - 1], ch[i]) for i in range(1, self.scales))
        self.up = nn.ModuleList(_Up(ch[i], ch[i - 1], skip) for i in range(self.scales - 1, 0, -1))
        self.outc = nn.Conv2d(ch[0], 3 * C, 1)
        self.refine = None
        if int(refine) > 0:
            r = int(refine)
            self.refine = nn.Sequential(nn.Conv2d(ch[0] + n_in, r, 3, padding=1), nn.Softplus(),
                                        nn.Conv2d(r, r, 3, padding=1), nn.Softplus(), nn.Conv2d(r, 3 * C, 1))
            nn.init.zeros_(self.refine[-1].weight)
            nn.init.zeros_(self.refine[-1].bias)
        self._config = dict(in_channels=C, scales=self.scales, skip=int(skip), channels=channels,
                            eps=self.eps, project=self.project, edge_width=self.edge_width,
                            phi_init_input=self.phi_init_input, channelwise=self.channelwise,
                            pad_mode=pad_mode, refine=int(refine), **self._input_eps_config())

    #: parameters that may be missing from the weights a run starts from (``init``): they start as built
    grown_prefixes = ("refine.",)

    def _pad(self, x: torch.Tensor):
        m = 2 ** (self.scales - 1)
        H, W = x.shape[-2:]
        ph, pw = (-H) % m, (-W) % m
        if ph == 0 and pw == 0:
            return x, None
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        mode = self.pad_mode
        if mode == "reflect" and (max(pad[:2]) >= W or max(pad[2:]) >= H):
            mode = "replicate"
        x = F.pad(x, pad, mode=mode)
        return x, (pad[2], pad[2] + H, pad[0], pad[0] + W)

    def _net(self, u0, tau):
        x = self.network_input(u0, tau)
        x, crop = self._pad(x)
        xs = [_softplus(self.inc(x))]
        for d in self.down:
            xs.append(d(xs[-1]))
        y = xs[-1]
        for i, up in enumerate(self.up):
            y = up(y, xs[-2 - i])
        out = self.outc(y)
        if self.refine is not None:
            out = out + self.refine(torch.cat([y, x], dim=1))
        if crop is not None:
            out = out[..., crop[0]:crop[1], crop[2]:crop[3]]
        return self._split_output(out)


# --------------------------------------------------------------------------- LGD


class LGD(TVflowNetModel):
    """Learned gradient descent (Grossmann et al., 2022, Algorithm 1).

    ``z_0 = u0``, ``u_0 = u0``, ``phi_0 = grad u0 / sqrt(|grad u0|^2 + eps^2)``; for
    ``i = 1..n_steps`` a block ``g_i`` (3x3 conv -> softplus -> 3x3 conv) maps the
    concatenation ``(u0, tau, u_i, phi_i, z_i)`` to updates ``(du, dphi, dz)`` that
    are added.  ``z`` has ``dim_z`` channels and starts as copies of ``u0`` (channel
    ``k`` of ``z_0`` is image channel ``k mod C``).  ``phi_i`` is zeroed on the
    border after every step; the returned ``phi_N`` is projected and zeroed.

    The paper fixes neither the hidden width of the blocks nor how the
    ``dim_z``-channel state is made from ``u0``.  With ``n_steps=5, dim_z=8,
    hidden=32`` (greyscale) this has 34,775 parameters, 4.1 % above the paper's
    33,415 (``hidden=31``: 33,690, +0.8 %).  The paper's count is matched
    exactly by blocks with 12 input channels and hidden width 32 plus an
    80-parameter 3x3 convolution lifting ``u0`` to ``z_0``, which would mean
    one of the listed block inputs is not fed; we keep the paper's list.

    ``grown_steps > 0`` (not in the paper) starts the last ``grown_steps`` blocks with a zero
    output layer, so an LGD of ``n_steps`` grown from the weights of one of
    ``n_steps - grown_steps`` (:attr:`grown_prefixes`: those blocks may be missing from
    ``--init``) computes that network's flow until it is trained: a deeper LGD sees farther
    (each block adds 2 pixels to the receptive field's radius, 10 for the paper's 5).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import LGD, count_parameters
    >>> count_parameters(LGD())
    34775
    >>> u, phi = LGD(n_steps=2, dim_z=2, hidden=4)(torch.zeros(1, 1, 8, 8), 0.3)
    >>> u.shape, phi.shape
    (torch.Size([1, 1, 8, 8]), torch.Size([1, 1, 2, 8, 8]))
    """

    arch = "lgd"

    def __init__(self, in_channels: int = 1, n_steps: int = 5, dim_z: int = 8, hidden: int = 32,
                 eps: float = 1e-4, project: bool = True, edge_width: int = 1,
                 channelwise: bool = False, padding_mode: str = "zeros", grown_steps: int = 0,
                 input_eps: float | None = None):
        super().__init__(in_channels=in_channels, eps=eps, project=project, edge_width=edge_width,
                         channelwise=channelwise, input_eps=input_eps)
        if int(n_steps) < 1:
            raise UserInputError(f"n_steps must be >= 1, got {n_steps}")
        if int(dim_z) < 0:
            raise UserInputError(f"dim_z must be >= 0, got {dim_z}")
        if int(hidden) < 1:
            raise UserInputError(f"hidden must be >= 1, got {hidden}")
        if not 0 <= int(grown_steps) < int(n_steps):
            raise UserInputError(f"grown_steps must be in [0, n_steps) = [0, {int(n_steps)}), got {grown_steps}")
        C = self.in_channels
        self.n_steps, self.dim_z, self.hidden = int(n_steps), int(dim_z), int(hidden)
        n_in = C + 1 + C + 2 * C + self.dim_z
        n_out = C + 2 * C + self.dim_z
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(n_in, self.hidden, 3, padding=1, padding_mode=padding_mode),
                nn.Softplus(),
                nn.Conv2d(self.hidden, n_out, 3, padding=1, padding_mode=padding_mode),
            )
            for _ in range(self.n_steps)
        )
        first_grown = self.n_steps - int(grown_steps)
        for block in self.blocks[first_grown:]:
            nn.init.zeros_(block[-1].weight)
            nn.init.zeros_(block[-1].bias)
        self.grown_prefixes = tuple(f"blocks.{i}." for i in range(first_grown, self.n_steps))
        self.register_buffer("_z_index", torch.arange(self.dim_z) % C, persistent=False)
        self._config = dict(in_channels=C, n_steps=self.n_steps, dim_z=self.dim_z, hidden=self.hidden,
                            eps=self.eps, project=self.project, edge_width=self.edge_width,
                            channelwise=self.channelwise, padding_mode=padding_mode,
                            **({"grown_steps": int(grown_steps)} if grown_steps else {}),
                            **self._input_eps_config())

    def _net(self, u0, tau):
        C = self.in_channels
        B, _, H, W = u0.shape
        mask = _border_mask(H, W, self.edge_width, u0)
        u = u0
        phi = normalised_gradient(u0, self.gradient_eps, channelwise=self.channelwise) * mask
        z = u0.index_select(1, self._z_index)
        for block in self.blocks:
            d = block(torch.cat([u0, tau, u, phi.flatten(1, 2), z], dim=1))
            u = u + d[:, :C]
            phi = (phi + d[:, C:3 * C].reshape(B, C, 2, H, W)) * mask
            z = z + d[:, 3 * C:]
        return u - u0, phi


# --------------------------------------------------------------------------- ensemble


def normalised_weights(weights: Sequence[float] | None, n: int, per: str = "model",
                       name: str = "weights") -> list[float]:
    """``n`` weights ``>= 0``, not all zero, normalised to sum 1 (``None``: equal weights).

    Raises a :class:`~pdeflow.errors.UserInputError` naming the argument ``name`` (one per ``per``) otherwise.
    """
    weights = [1.0] * n if weights is None else [float(w) for w in weights]
    if len(weights) != n:
        raise UserInputError(f"{name}: one per {per} ({n}), got {len(weights)}")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise UserInputError(f"{name}: finite numbers >= 0, not all zero, got {weights}")
    return [w / sum(weights) for w in weights]


class Ensemble(nn.Module):
    """The weighted mean of several TVflowNETs' outputs (not in the paper).

    ``u = sum_i w_i u_i`` and ``phi = sum_i v_i phi_i`` with ``(u_i, phi_i) = members[i](u0, t)``
    and weights ``w_i >= 0``, ``v_i >= 0`` each summing to 1 (``v = w`` unless given); ``div phi``
    is then the same mean of the members' ``div phi_i`` (the divergence is linear), and a mean of
    fields in the unit ball stays in it. The two means are independent: ``u`` (and so Tables 2,
    5, 6 and 7, which are computed from ``u``) depends on ``w`` only, ``div phi`` (Table 4) on
    ``v`` only, so each can be chosen on its own columns.
    Members of different architectures make different errors: on validation the U-Net
    default and a 10-step LGD, averaged, are closer to the reference flow in ``u`` and
    ``div phi`` than either alone, where averaging the outputs of U-Nets of one lineage
    gains almost nothing (their error is a bias they share). Shapes and time forms as the
    TVflowNET models; the members must agree on ``in_channels`` (and, to be averaged
    meaningfully, on the intensity scale and time interval they were trained for, which
    :func:`pdeflow.tvflownet.ensemble` checks).

    Parameters
    ----------
    members : sequence of dict or nn.Module
        Two or more models, or their ``config`` dicts (``build_model(**config)``).
    weights : sequence of float, optional
        One weight ``>= 0`` per member, not all zero; normalised to sum 1 (default: equal).
    phi_weights : sequence of float, optional
        The same for ``phi`` (default: ``weights``).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import LGD, Ensemble, SemiResNet
    >>> _ = torch.manual_seed(0)
    >>> a, b = SemiResNet(width=4, depth=3), LGD(n_steps=2, dim_z=2, hidden=4)
    >>> both = Ensemble([a, b], weights=[0.25, 0.75])
    >>> u0 = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(both(u0, 0.5)[0], 0.25 * a(u0, 0.5)[0] + 0.75 * b(u0, 0.5)[0])
    True
    """

    arch = "ensemble"

    def __init__(self, members: Sequence[Any], weights: Sequence[float] | None = None,
                 phi_weights: Sequence[float] | None = None):
        super().__init__()
        members = [build_model(**m) if isinstance(m, dict) else m for m in members]
        if len(members) < 2 or not all(isinstance(m, nn.Module) for m in members):
            raise UserInputError(f"members: two or more models or model configs, got {len(members)}")
        weights = normalised_weights(weights, len(members), "member")
        phi_weights = weights if phi_weights is None else normalised_weights(phi_weights, len(members), "member",
                                                                               name="phi_weights")
        channels = {getattr(m, "in_channels", None) for m in members}
        if len(channels) != 1:
            raise UserInputError(f"members: all must take the same number of channels, got in_channels {channels}")
        self.in_channels = channels.pop()
        self.members = nn.ModuleList(members)
        self.weights = weights
        self.phi_weights = phi_weights

    @property
    def config(self) -> dict[str, Any]:
        """The members' configs and the normalised weights of u and phi, under ``"arch": "ensemble"``."""
        return {"arch": self.arch, "members": [m.config for m in self.members], "weights": list(self.weights),
                "phi_weights": list(self.phi_weights)}

    def extra_repr(self) -> str:
        return ", ".join(f"{name}=[" + ", ".join(f"{w:.3g}" for w in ws) + "]"
                         for name, ws in (("weights", self.weights), ("phi_weights", self.phi_weights)))

    def forward(self, u0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted mean ``(u, phi)`` of the members at time ``t`` from ``u0``."""
        u = phi = None
        for w, v, member in zip(self.weights, self.phi_weights, self.members):
            u_i, phi_i = member(u0, t)
            u = w * u_i if u is None else u + w * u_i
            phi = v * phi_i if phi is None else phi + v * phi_i
        return u, phi


def with_input_eps(model: nn.Module, input_eps: float | None) -> nn.Module:
    """A copy of ``model`` whose normalised-gradient input uses ``input_eps`` (an ensemble: every member's).

    The input ``grad u0 / sqrt(|grad u0|^2 + eps^2)`` of the Semi-ResNet and U-Net (and the LGD's
    ``phi_0``) is a smooth saturation of ``grad u0`` at the scale ``eps``: linear where ``|grad u0|``
    is below it, a unit vector above. Its derivative is of order ``1 / eps``, so with the default
    ``eps = 1e-4`` the model's derivative with respect to ``u0`` is dominated by exactly flat pixels
    and is of no use, although the flow it learns is 1-Lipschitz in ``u0``. An ``input_eps`` at the
    scale of the intensities' quantisation (about 0.03 to 0.3 on the x5 scale of the shipped models)
    keeps the exact derivative of a function that varies on the scale of the image instead; the
    forward output changes with it (see the results page "Speed and accuracy of the solvers"). ``None``: back
    to ``eps``,
    the behaviour the model was built with when the option did not exist. The weights, ``meta`` and
    device are copied; ``model`` is not changed.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet import SemiResNet, with_input_eps
    >>> model = SemiResNet(width=4, depth=3)
    >>> smooth = with_input_eps(model, 0.1)
    >>> smooth.config["input_eps"], "input_eps" in model.config
    (0.1, False)
    >>> u0 = torch.zeros(1, 1, 8, 8)
    >>> torch.equal(smooth(u0, 0.5)[0], model(u0, 0.5)[0])  # the same wherever |grad u0| = 0
    True
    """
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    if not all(isinstance(m, TVflowNetModel) for m in members):
        raise UserInputError(f"model: a TVflowNET model or an Ensemble of them, got {type(model).__name__}")
    if input_eps is not None and not _positive_finite(input_eps):
        raise UserInputError(f"input_eps must be a finite number > 0 or None (use eps), got {input_eps!r}")
    out = copy.deepcopy(model)
    for m in (list(out.members) if isinstance(out, Ensemble) else [out]):
        m.input_eps = None if input_eps is None else float(input_eps)
        m._config.pop("input_eps", None)
        m._config.update(m._input_eps_config())
    meta = getattr(out, "meta", None)   # a loaded model's file record: its config says what it now computes
    if isinstance(meta, dict) and isinstance(meta.get("config"), dict) and "model" in meta["config"]:
        meta["config"]["model"] = out.config
    return out


# --------------------------------------------------------------------------- registry

ARCHITECTURES: dict[str, type[TVflowNetModel]] = {
    "semiresnet": SemiResNet,
    "unet": UNet,
    "lgd": LGD,
}


def build_model(arch: str, **kwargs) -> nn.Module:
    """Build a TVflowNET model by name: ``"semiresnet"``, ``"unet"``, ``"lgd"`` or ``"ensemble"``.

    ``kwargs`` are the constructor arguments of that class; ``build_model(**m.config)``
    rebuilds (an untrained copy of) ``m``. :data:`ARCHITECTURES` lists the trainable
    architectures; an :class:`Ensemble` is built from trained members.

    Examples
    --------
    >>> from pdeflow.tvflownet import ARCHITECTURES, PAPER_PARAMETER_COUNTS, build_model
    >>> sorted(ARCHITECTURES), PAPER_PARAMETER_COUNTS["semiresnet"]
    (['lgd', 'semiresnet', 'unet'], 14947)
    >>> model = build_model("semiresnet", width=4, depth=3)
    >>> type(build_model(**model.config)).__name__
    'SemiResNet'
    """
    key = str(arch).lower().replace("-", "").replace("_", "")
    if key not in ARCHITECTURES and key != Ensemble.arch:
        raise UserInputError(f"arch must be one of {sorted(ARCHITECTURES) + [Ensemble.arch]}, got {arch!r}")
    cls = Ensemble if key == Ensemble.arch else ARCHITECTURES[key]
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise TypeError(f"build_model({arch!r}): {e}") from None
