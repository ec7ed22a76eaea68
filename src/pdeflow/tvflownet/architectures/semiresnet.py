"""The Semi-ResNet of Grossmann et al. (2022), section 3.2.1."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ...errors import UserInputError
from .base import TVflowNetModel


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
                 input_eps: float | None = None, exact_initial: bool = False):
        super().__init__(in_channels=in_channels, eps=eps, project=project, edge_width=edge_width,
                         channelwise=channelwise, input_eps=input_eps,
                         exact_initial=exact_initial)
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
                            padding_mode=padding_mode, **self._optional_config())

    def _net(self, u0, tau):
        x = self.network_input(u0, tau)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < last:
                x = F.relu(x) if i < self.n_relu else F.softplus(x)
        return self._split_output(x)
