"""The learned gradient descent (LGD) of Grossmann et al. (2022), Algorithm 1."""
from __future__ import annotations

import torch
from torch import nn

from ...errors import UserInputError
from .base import TVflowNetModel, border_mask, normalised_gradient


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
                 input_eps: float | None = None, exact_initial: bool = False):
        super().__init__(in_channels=in_channels, eps=eps, project=project, edge_width=edge_width,
                         channelwise=channelwise, input_eps=input_eps,
                         exact_initial=exact_initial)
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
                            **self._optional_config())

    def _net(self, u0, tau):
        C = self.in_channels
        B, _, H, W = u0.shape
        mask = border_mask(H, W, self.edge_width, u0)
        u = u0
        phi = normalised_gradient(u0, self.gradient_eps, channelwise=self.channelwise) * mask
        z = u0.index_select(1, self._z_index)
        for block in self.blocks:
            d = block(torch.cat([u0, tau, u, phi.flatten(1, 2), z], dim=1))
            u = u + d[:, :C]
            phi = (phi + d[:, C:3 * C].reshape(B, C, 2, H, W)) * mask
            z = z + d[:, 3 * C:]
        return u - u0, phi
