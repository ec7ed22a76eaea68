"""The registry of TVflowNET architectures (:func:`build_model` by name) and the models built from other models:
the weighted mean of trained TVflowNETs (an ensemble, not in the paper) and copies with another
normalised-gradient input scale."""
from __future__ import annotations

import copy
import math
from typing import Any, Sequence

import torch
from torch import nn

from ...errors import UserInputError
from .base import TVflowNetModel, positive_finite
from .lgd import LGD
from .semiresnet import SemiResNet
from .unet import UNet


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
    if input_eps is not None and not positive_finite(input_eps):
        raise UserInputError(f"input_eps must be a finite number > 0 or None (use eps), got {input_eps!r}")
    out = copy.deepcopy(model)
    for m in (list(out.members) if isinstance(out, Ensemble) else [out]):
        m.input_eps = None if input_eps is None else float(input_eps)
        m._config.pop("input_eps", None)
        m._config.update(m._optional_config())
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
