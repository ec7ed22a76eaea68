"""What the three TVflowNET architectures share: the base model (input handling, skip connection, projection
and boundary condition), the time channel, the normalised-gradient input and the paper's parameter counts.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ... import ops
from ...errors import UserInputError

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


def border_mask(H: int, W: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """A ``(H, W)`` mask of ones with zeros on a border of ``width`` pixels (dtype and device of ``like``)."""
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
    return phi * border_mask(phi.shape[-2], phi.shape[-1], width, phi)


def positive_finite(x) -> bool:
    """Whether ``x`` is a finite number > 0."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return False
    return math.isfinite(x) and x > 0



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
                 edge_width: int = 1, channelwise: bool = False, input_eps: float | None = None,
                 exact_initial: bool = False):
        super().__init__()
        if int(in_channels) < 1:
            raise UserInputError(f"in_channels must be >= 1, got {in_channels}")
        if int(edge_width) < 0:
            raise UserInputError(f"edge_width must be >= 0, got {edge_width}")
        if not float(eps) > 0:
            raise UserInputError(f"eps must be > 0 (it regularises |grad u0| and |phi|), got {eps}")
        if input_eps is not None and not positive_finite(input_eps):
            raise UserInputError(f"input_eps must be a finite number > 0 (the scale of |grad u0| below which "
                                 f"the normalised-gradient input is linear) or None (use eps), got {input_eps}")
        self.in_channels = int(in_channels)
        self.eps = float(eps)
        self.project = bool(project)
        self.edge_width = int(edge_width)
        self.channelwise = bool(channelwise)
        self.input_eps = None if input_eps is None else float(input_eps)
        self.exact_initial = bool(exact_initial)
        self._config: dict[str, Any] = {}

    @property
    def gradient_eps(self) -> float:
        """The ``eps`` of the normalised-gradient input: ``input_eps``, or ``eps`` where that is None."""
        return self.eps if self.input_eps is None else self.input_eps

    def _optional_config(self) -> dict[str, Any]:
        # Only when set, so the configs (and JSON files) of models built before the options are unchanged.
        return {**({} if self.input_eps is None else {"input_eps": self.input_eps}),
                **({"exact_initial": True} if self.exact_initial else {})}

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
        u, phi = self.assemble(x, tau, *self._net(x, tau))
        if ndim == 4:
            return u, phi
        if ndim == 3:
            return u[0], phi[0]
        return u[0, 0], phi[0, 0]

    def assemble(self, u0: torch.Tensor, tau: torch.Tensor, du: torch.Tensor, phi: torch.Tensor):
        """``(u, phi)`` from the network's raw outputs ``du`` and ``phi`` (:meth:`_net`): the skip connection
        ``u = u0 + du`` (``u0 + t du`` with ``exact_initial``, so that ``u(0) = u0`` whatever the weights), the
        projection of ``phi`` onto the unit ball and its zero border."""
        u = u0 + (tau * du if self.exact_initial else du)       # tau (B, 1, H, W): t in every channel
        if self.project:
            phi = project_unit_ball(phi, self.eps, channelwise=self.channelwise)
        return u, zero_border(phi, self.edge_width)

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

    #: The parameters that read the network input (name: index of its first channel along dim 1) or write the
    #: output (name: None; rows along dim 0), where :meth:`inflated_state` finds the channels; empty: not supported.
    channel_parameters: dict[str, int | None] = {}

    def inflated_state(self, state: dict[str, torch.Tensor], source_channels: int) -> dict[str, torch.Tensor]:
        """The weights ``state`` of a grey model of this architecture, made to take this model's ``in_channels``.

        On a grey image repeated in every channel the inflated model computes what the grey model does, at the
        coupled flow's time: the coupled norm of a repeated gradient is ``s = sqrt(C)`` times the grey one, so
        the coupled flow is the grey flow at ``t / s`` and its ``phi`` the grey ``phi / s`` (``s = 1``
        with ``channelwise``).  So the weights reading ``u0`` are divided by ``C``, the time channel's by ``s``, the
        normalised gradient's multiplied by ``s / C``; ``du`` is repeated and ``phi`` repeated and divided by ``s``.
        A start for training a colour model (``pdeflow train tvflownet --channels 3 --init unet``).

        Examples
        --------
        >>> import torch
        >>> from pdeflow.tvflownet import UNet
        >>> grey, colour = UNet(scales=2, channels=(4, 4)), UNet(in_channels=3, scales=2, channels=(4, 4))
        >>> _ = colour.load_state_dict(colour.inflated_state(grey.state_dict(), 1))
        >>> x = 5 * torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> u3, _ = colour(x.expand(1, 3, 8, 8), 0.6)
        >>> u1, _ = grey(x, 0.6 / 3 ** 0.5)
        >>> bool(torch.allclose(u3, u1.expand(1, 3, 8, 8), atol=1e-5))
        True
        """
        C = self.in_channels
        if not self.channel_parameters:
            raise UserInputError(f"init: a grey {self.arch} model cannot be inflated to {C} channels (supported: "
                                 f"the U-Net); train this architecture's colour model from its initial weights")
        if int(source_channels) != 1:
            raise UserInputError(f"init: only a grey model (1 channel) can be inflated, got {source_channels} channels")
        s = 1.0 if self.channelwise else math.sqrt(C)
        width = 4 if self.phi_init_input else 2      # the grey input: u0, the time, and the gradient's 2 components

        def repeat(w: torch.Tensor, dim: int) -> torch.Tensor:
            reps = [1] * w.dim()
            reps[dim] = C
            return w.repeat(*reps)

        out = dict(state)
        for name, start in self.channel_parameters.items():
            if name not in state:
                continue
            w = state[name]
            if start is None:       # rows: du (1), phi (2) -> du (C), phi (C x 2)
                out[name] = torch.cat([repeat(w[:1], 0), repeat(w[1:3], 0) / s])
                continue
            grey = w[:, start:start + width]
            parts = [w[:, :start], repeat(grey[:, :1], 1) / C, grey[:, 1:2] / s]
            if self.phi_init_input:
                parts.append(repeat(grey[:, 2:4], 1) * (s / C))
            out[name] = torch.cat(parts + [w[:, start + width:]], dim=1)
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._config.items())
