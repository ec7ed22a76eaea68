"""The U-Net of Grossmann et al. (2022), section 3.2.1."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserInputError
from .base import TVflowNetModel


class _Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x):
        return F.softplus(self.conv2(F.softplus(self.conv1(x))))


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
            x = torch.cat([x, F.softplus(self.skip_conv(bridge))], dim=1)
        return F.softplus(self.conv2(F.softplus(self.conv1(x))))


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

    ``shared=True`` (not in the paper; colour) runs one grey network on every channel, its weights shared,
    and couples the channels after every block: each channel's features gain a 1x1 conv of their mean over
    the channels (DeepSets style, so the model is equivariant to permuting the channels as the coupled flow
    is). The coupling convs start at zero: grown from a grey U-Net's weights, a shared model first computes
    the grey model on each channel (:class:`~pdeflow.tvflownet.PerChannel`, the channelwise flow), and
    training it on the coupled colour flow learns only the coupling.

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
                 input_eps: float | None = None, exact_initial: bool = False, shared: bool = False):
        super().__init__(in_channels=in_channels, eps=eps, project=project, edge_width=edge_width,
                         channelwise=channelwise, input_eps=input_eps,
                         exact_initial=exact_initial)
        channels = [int(c) for c in channels]
        if int(refine) < 0:
            raise UserInputError(f"refine must be >= 0 (channels of the refinement block; 0: none), got {refine}")
        if int(scales) < 1 or int(scales) > len(channels):
            raise UserInputError(f"scales must be in [1, len(channels)] = [1, {len(channels)}], got {scales}")
        if int(skip) < 0:
            raise UserInputError(f"skip must be >= 0, got {skip}")
        if pad_mode not in ("reflect", "replicate", "constant", "circular"):
            raise UserInputError(f"pad_mode must be 'reflect', 'replicate', 'constant' or 'circular', got {pad_mode!r}")
        if shared and self.in_channels == 1:
            raise UserInputError("shared=True couples the channels of a colour model: it needs in_channels > 1")
        self.shared = bool(shared)
        C = 1 if self.shared else self.in_channels          # the channels one network reads and writes
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
        self.mix = None
        if self.shared:     # one coupling per block output: inc, the encoder's, the decoder's
            widths = ch + ch[-2::-1]
            self.mix = nn.ModuleList(nn.Conv2d(w, w, 1) for w in widths)
            for m in self.mix:
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)
        self._config = dict(in_channels=self.in_channels, scales=self.scales, skip=int(skip), channels=channels,
                            eps=self.eps, project=self.project, edge_width=self.edge_width,
                            phi_init_input=self.phi_init_input, channelwise=self.channelwise,
                            pad_mode=pad_mode, refine=int(refine), **self._optional_config(),
                            **({"shared": True} if self.shared else {}))

    #: parameters that may be missing from the weights a run starts from (``init``): they start as built
    grown_prefixes = ("refine.", "mix.")

    @property
    def channel_parameters(self) -> dict[str, int | None]:
        # the refinement block reads the decoder's channels[0] channels, then the network input
        width = self.inc.out_channels
        return {"inc.weight": 0, "outc.weight": None, "outc.bias": None,
                "refine.0.weight": width, "refine.4.weight": None, "refine.4.bias": None}

    def inflated_state(self, state: dict[str, torch.Tensor], source_channels: int) -> dict[str, torch.Tensor]:
        """A grey model's weights for this model: the same tensors where the network is ``shared`` (the coupling
        starts at zero), else :meth:`TVflowNetModel.inflated_state`."""
        if not self.shared:
            return super().inflated_state(state, source_channels)
        if int(source_channels) != 1:
            raise UserInputError(f"init: only a grey model (1 channel) can start a shared colour U-Net, got "
                                 f"{source_channels} channels")
        return dict(state)

    def network_input(self, u0: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """:meth:`TVflowNetModel.network_input`; with ``shared``, of every channel as a grey image
        ``(B * C, 4, H, W)``."""
        if not self.shared:
            return super().network_input(u0, tau)
        B, C, H, W = u0.shape
        return super().network_input(u0.reshape(B * C, 1, H, W), tau.repeat_interleave(C, dim=0))

    def coupled(self, h: torch.Tensor, block: int) -> torch.Tensor:
        """Block ``block``'s output ``h`` with the channels' coupling added (``shared``; else ``h``)."""
        if self.mix is None:
            return h
        C = self.in_channels
        mean = h.reshape(-1, C, *h.shape[1:]).mean(1)
        return h + self.mix[block](mean).repeat_interleave(C, dim=0)

    def output(self, out: torch.Tensor) -> torch.Tensor:
        """The network's output ``(B, 3 C, H, W)`` (``du``, then ``phi``) from the last conv's (``shared``: of
        ``B * C`` grey images)."""
        if not self.shared:
            return out
        C = self.in_channels
        out = out.reshape(-1, C, 3, *out.shape[-2:])
        return torch.cat([out[:, :, 0], out[:, :, 1:].flatten(1, 2)], dim=1)

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
        xs = [self.coupled(F.softplus(self.inc(x)), 0)]
        for d in self.down:
            xs.append(self.coupled(d(xs[-1]), len(xs)))
        y = xs[-1]
        for i, up in enumerate(self.up):
            y = self.coupled(up(y, xs[-2 - i]), self.scales + i)
        out = self.outc(y)
        if self.refine is not None:
            out = out + self.refine(torch.cat([y, x], dim=1))
        out = self.output(out)
        if crop is not None:
            out = out[..., crop[0]:crop[1], crop[2]:crop[3]]
        return self._split_output(out)


# --------------------------------------------------------------------------- LGD
