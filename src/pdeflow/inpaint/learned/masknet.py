"""Learned masks for homogeneous diffusion inpainting: a neuroexplicit mask network.

:class:`MaskNet` refines the analytic mask of Belhachmi, Bucur, Burgeth, Weickert (2009;
:mod:`pdeflow.inpaint.masks.analytic`) rather than making one from scratch. A small U-Net (16/32/64 channels) reads
the image and the two analytic maps and outputs two bounded corrections (``bound * tanh``, last layer zero at
initialisation: an untrained network *is* the analytic method):

* a log-density correction on ``log p0``, ``p0 = |laplacian(G_2 * f)| + floor``: ``log p = log p0 + a``;
* a pixel-score correction on ``log |f - G_1 * f|``: ``s = log e0 + b``.

The binary mask: ``p`` is dithered with a blue-noise threshold tile to exactly ``k = round(density H W)`` points
per image (top-``k`` of ``log p - log T``; in training the tile is shifted/flipped at random per sample), then each
point moves to the free pixel of largest ``s`` in its 3x3 neighbourhood
(:func:`~pdeflow.inpaint.masks.snapping.snap_to_extrema`).

Gradients (training): the binary mask's gradient passes straight through to the expected mask ``q``, the density
normalised to ``k`` points, ``k p / sum(p)``, spread over each 3x3 neighbourhood by ``softmax(s)``
(:func:`~pdeflow.inpaint.masks.snapping.neighbour_mass`): ``b = b_hard + q - q.detach()``. Through a
differentiable diffusion inpainting (mask gradient: one adjoint solve, Hoeltgen, Setzer, Weickert 2013) the
inpainting loss trains both corrections. The bound matters: unbounded densities diverged after a few hundred steps.

``density_input``: the network also reads ``log(density)`` as a constant channel, so one network serves several
densities (``k`` is all else that changes); a model trained for one density refuses others.

``feedback``: the network runs twice. Its first mask is inpainted (homogeneous diffusion, loose tolerance); the
second pass also reads the log of that inpainting's squared error ``E`` (smoothed over ``FEEDBACK_SIGMA`` pixels,
relative to its local mean), with log-density ``log p0 + a2 + gamma log E``, ``a2`` the second correction and
``gamma`` a learned scalar. Dithered with the *same* thresholds, most points stay and the density moves to where
the first inpainting erred, which a density alone does not carry: the error depends on where the dithered points
fell, not only on the image (docs/results/inpaint.md). The extra channel's weights and ``gamma`` start at zero
(:meth:`MaskNet.with_feedback`: ``gamma`` as given), so a feedback network initialised from a trained one gives
its mask.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ... import models as registry
from ... import ops
from ...errors import UserInputError
from ...filters import box_mean, gaussian_blur
from ..masks.analytic import laplacian_density
from ..masks.dither import as_generator, blue_noise_tile, n_known, threshold_map, top_k_mask
from ..masks.snapping import extremality, neighbour_mass, snap_to_extrema
from ..operators.diffusion import inpaint_diffusion
from .unet import TILE_SIZE, UNet, check_tile_size

__all__ = ["MaskNet", "learned_mask", "load_masknet", "network_mask", "MASKNET_MODELS", "KIND"]

#: Shipped mask networks by density (documented in :data:`pdeflow.models.SHIPPED`).
MASKNET_MODELS = {s.density: name for name, s in registry.SHIPPED.items() if s.group == "masknet"}
KIND = "masknet"
#: What the network may see beyond the image's border (:meth:`MaskNet.corrections`).
PADDINGS = ("zeros", "reflect")
#: ``feedback``: the first mask's squared inpainting error is smoothed by a Gaussian of this many pixels,
#: divided by its local mean (the inputs' window) plus ``FEEDBACK_FLOOR``, and its log read by the second pass.
FEEDBACK_SIGMA = 1.0
FEEDBACK_FLOOR = 0.05
#: ``feedback``: relative residual of the first mask's inpainting (only the error's shape is needed).
FEEDBACK_TOL = 1e-3
_HINT = "train one with pdeflow.inpaint.training.masknet and pass model=PATH"


class MaskNet(nn.Module):
    """The neuroexplicit mask network (see the module docstring).

    ``net(f, density=None, *, random=False, generator=None, thresholds=None, snap=True, maps=None)``
    returns the mask ``(B, 1, H, W)`` (binary; in training with the straight-through gradient to the expected
    mask); ``maps``: :meth:`maps`'s ``(log p, s)`` for this ``f`` if computed already (the network is not rerun).

    Parameters
    ----------
    channels : int
        Image channels (1 or 3).
    density : float in (0, 1) or None
        The density trained for; None: any (needs ``density_input``).
    widths : tuple of int
        U-Net channels per level (default 16, 32, 64).
    bound : float
        The corrections are ``bound * tanh(.)``.
    sigma, floor : float
        Of the analytic density ``|laplacian(G_sigma f)| + floor * mean``.
    snap_sigma : float
        Local mean of the extremality score ``|f - G f|``.
    density_input : bool
        Feed ``log(density)`` as an input channel.
    tile : int
        Size of the blue-noise threshold tile.
    norm_window : int or None
        The network reads its log-maps minus their mean over a window of this side
        (:func:`~pdeflow.filters.box_mean`; an image no larger: its own mean), its training crops' side (64
        for the shipped networks), so a large image's inputs have the trained statistics. None: minus the
        whole image's mean.
    feedback : bool
        Run twice, the second pass reading the first mask's inpainting error (see the module docstring).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.learned.masknet import MaskNet
    >>> net = MaskNet(1, 0.1, widths=(4, 8))          # untrained: the analytic method
    >>> m = net(torch.rand(1, 1, 16, 16), 0.1)
    >>> m.shape, int(m.sum())
    (torch.Size([1, 1, 16, 16]), 26)
    """

    def __init__(self, channels: int = 1, density: float | None = 0.05, *, widths=(16, 32, 64), bound: float = 3.0,
                 sigma: float = 2.0, floor: float = 0.05, snap_sigma: float = 1.0, density_input: bool = True,
                 tile: int = 64, norm_window: int | None = 64, feedback: bool = False):
        super().__init__()
        if channels not in (1, 3):
            raise UserInputError(f"MaskNet: channels must be 1 or 3, got {channels!r}")
        if density is not None:
            n_known(density, 10 ** 9, "MaskNet")
            density = float(density)
        elif not density_input:
            raise UserInputError("MaskNet: density=None (any density) needs density_input=True")
        widths = tuple(int(w) for w in widths)
        if norm_window is not None and (isinstance(norm_window, bool) or not isinstance(norm_window, int)
                                        or norm_window < 1):
            raise UserInputError(f"MaskNet: norm_window must be a positive int or None, got {norm_window!r}")
        self.config = {"channels": int(channels), "density": density, "widths": list(widths),
                       "bound": float(bound), "sigma": float(sigma), "floor": float(floor),
                       "snap_sigma": float(snap_sigma), "density_input": bool(density_input), "tile": int(tile),
                       "norm_window": norm_window, "feedback": bool(feedback)}
        self.norm_window = norm_window
        self.channels, self.density, self.bound = int(channels), density, float(bound)
        self.sigma, self.floor, self.snap_sigma = float(sigma), float(floor), float(snap_sigma)
        self.density_input, self.tile = bool(density_input), int(tile)
        self.feedback = bool(feedback)
        self.net = UNet(channels + 2 + int(density_input) + int(self.feedback), 2, widths)
        if self.feedback:
            self.gamma = nn.Parameter(torch.zeros(()))     # the weight of log E in the second pass

    def with_feedback(self, gamma: float = 0.0) -> MaskNet:
        """A ``feedback`` copy of this network (``self`` if it is one): the extra input channel's weights are
        zero and ``gamma`` is ``gamma``; with ``gamma=0`` its mask is this network's until it is trained.

        Examples
        --------
        >>> import torch
        >>> from pdeflow.inpaint.learned.masknet import MaskNet
        >>> net = MaskNet(1, 0.1, widths=(4, 8)).eval()
        >>> f = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(net.with_feedback().eval()(f), net(f))
        True
        """
        if self.feedback:
            return self
        net = MaskNet(**{**self.config, "feedback": True}).to(next(self.parameters()).device)
        state = dict(self.state_dict())
        first = "net.down.0.0.weight"
        state[first] = torch.cat([state[first], torch.zeros_like(state[first][:, :1])], 1)
        state["gamma"] = torch.full((), float(gamma), dtype=state[first].dtype, device=state[first].device)
        net.load_state_dict(state)
        net.meta = getattr(self, "meta", {})
        return net

    # ------------------------------------------------------------------ pieces
    def _density(self, density) -> float:
        if density is None:
            if self.density is None:
                raise UserInputError("MaskNet: density is required (this network serves any density)")
            return self.density
        d = float(density) if isinstance(density, (int, float)) and not isinstance(density, bool) else density
        if self.density is not None and not (isinstance(d, float) and math.isclose(d, self.density, abs_tol=1e-9)):
            raise UserInputError(f"MaskNet: density {density!r} differs from the density this network was trained "
                             f"for ({self.density:g})")
        return d

    def _inputs(self, f: torch.Tensor, density: float):
        """The raw maps ``(log p0, s0)`` and the network's input ``x`` for ``f``."""
        with torch.no_grad():
            logp0 = torch.log(laplacian_density(f, self.sigma, self.floor))
            s0 = torch.log(extremality(f, self.snap_sigma) + 1e-3)
            # inputs standardised (the corrections are added to the raw maps) by their mean over the window
            # of the training crops: an image larger than those sees its neighbourhood's statistics, as in
            # training, rather than the whole image's (results page "Sparse inpainting", "Implementation choices")
            lp_in = logp0 - self._local_mean(logp0)
            s_in = s0 - self._local_mean(s0)
            parts = [f - 0.5, lp_in, s_in]
            if self.density_input:
                parts.append(torch.full_like(lp_in, math.log(density)))
            if self.feedback:
                parts.append(torch.zeros_like(lp_in))      # the error channel: none in the first pass
            return logp0, s0, torch.cat(parts, 1)

    def _local_mean(self, m: torch.Tensor) -> torch.Tensor:
        if self.norm_window is None:
            return m.flatten(1).mean(1).view(-1, 1, 1, 1)
        return box_mean(m, self.norm_window)

    def corrections(self, x: torch.Tensor, *, tile_size: int | None = None,
                    compute_dtype: torch.dtype | None = None, padding: str = "zeros") -> torch.Tensor:
        """The bounded corrections ``bound tanh(net(x))`` ``(B, 2, H, W)`` of the network input ``x``.

        ``tile_size``: run the U-Net on tiles of about this many pixels a side (:meth:`UNet.tiled
        <pdeflow.inpaint.learned.unet.UNet.tiled>`: margins of 28 pixels for the shipped networks, whose
        receptive field reaches 26 pixels from a pixel; the result equals the untiled one to round-off, with
        memory for one tile instead of the image). None: in one piece.

        ``compute_dtype``: None, the network's own dtype; ``torch.bfloat16``, its convolutions in bfloat16
        under :func:`torch.autocast` (the corrections then differ by about 1e-2, see :func:`learned_mask`).

        ``padding``: what the network's convolutions see beyond the image's border. ``"zeros"``, as in
        training; ``"reflect"``, the image mirrored across its border (edge pixel not repeated, as the
        diffusion's reflecting boundary and the analytic density read it), as far as the receptive field
        reaches (:attr:`UNet.margin <pdeflow.inpaint.learned.unet.UNet.margin>`), so a border pixel is read
        as an interior one.
        """
        _check_padding(padding, "MaskNet.corrections")
        H, W = x.shape[-2:]
        ph = pw = 0
        if padding == "reflect":
            mg = self.net.margin
            ph, pw = min(mg, H - 1), min(mg, W - 1)     # reflect needs less than the side; tiny images get less
            x = F.pad(x, (pw, pw, ph, ph), mode="reflect")
        if compute_dtype is None:
            out = self.net.tiled(x, tile_size)
        else:
            with torch.autocast(x.device.type, dtype=compute_dtype):
                out = self.net.tiled(x, tile_size)
        out = out[..., ph:ph + H, pw:pw + W]
        return self.bound * torch.tanh(out.to(x.dtype))

    def maps(self, f: torch.Tensor, density: float, *, tile_size: int | None = None, scale: int = 1,
             strength: float | tuple[float, float] = 1.0, compute_dtype: torch.dtype | None = None,
             padding: str = "zeros", thresholds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p, s)`` ``(B, 1, H, W)`` each: the corrected log-density and pixel score.

        ``tile_size``, ``compute_dtype``, ``padding``: see :meth:`corrections`. ``scale`` (int >= 1): the
        network reads the image reduced by this factor (mean of ``scale x scale`` blocks, the last partial
        ones included) and its corrections are resized bilinearly to the image and added to the
        full-resolution maps: ``scale**2`` times less network work (the quality it costs:
        docs/results/inpaint.md). ``strength``: both corrections are multiplied by it (1: as trained; 0: the
        analytic maps); a pair ``(a, b)``: the log-density's by ``a``, the snap score's by ``b`` (a ``feedback``
        network's ``gamma log E`` is not weighted). ``thresholds``: a ``feedback`` network's dithering
        thresholds of its first mask, those its final mask is dithered with (default: the fixed tile); a
        ``feedback`` network needs ``scale`` 1.
        """
        log_t = None if thresholds is None else self._log_thresholds(f.shape, thresholds, False, None, f.device)
        return self._maps(f, density, log_t, tile_size=tile_size, scale=scale, strength=strength,
                          compute_dtype=compute_dtype, padding=padding)

    def _log_thresholds(self, shape, thresholds, random: bool, generator, device) -> torch.Tensor:
        if thresholds is not None:
            return torch.log(thresholds.double())
        # the log of the tile, repeated: one log per tile pixel, not per image pixel
        return threshold_map(shape, tile=torch.log(blue_noise_tile(self.tile)), random=random,
                             generator=as_generator(generator, "MaskNet"), device=device)

    def _hard(self, logp: torch.Tensor, s: torch.Tensor, log_t: torch.Tensor, k: int, snap: bool) -> torch.Tensor:
        """The binary mask of the maps: the top ``k`` of ``log p - log T``, snapped to ``s``'s extrema."""
        with torch.no_grad():
            hard = top_k_mask(logp.detach().double() - log_t, k)
            return snap_to_extrema(hard, s.detach()) if snap else hard

    def _maps(self, f, density, log_t, *, tile_size=None, scale=1, strength=1.0, compute_dtype=None,
              padding="zeros"):
        a, b = strength if isinstance(strength, (tuple, list)) else (strength, strength)
        logp0, s0, x = self._inputs(f, density)
        if a == 0 and b == 0 and not self.feedback:     # corrections weighted by 0: no network to run
            return logp0, s0
        run = dict(tile_size=tile_size, compute_dtype=compute_dtype, padding=padding)
        if self.feedback:
            if scale != 1:
                raise UserInputError(f"MaskNet: a feedback network runs at scale 1, got scale {scale!r}")
            out = self.corrections(x, **run)
            logp, s = logp0 + a * out[:, :1], s0 + b * out[:, 1:]
            if log_t is None:
                log_t = self._log_thresholds(f.shape, None, False, None, f.device)
            le = self._feedback_error(f, self._hard(logp, s, log_t, n_known(density, f.shape[-2] * f.shape[-1],
                                                                            "MaskNet"), True))
            x = torch.cat([x[:, :-1], le - self._local_mean(le)], 1)
            out = self.corrections(x, **run)
            return logp0 + a * out[:, :1] + self.gamma * le, s0 + b * out[:, 1:]
        if scale == 1:
            out = self.corrections(x, **run)
        else:
            H, W = f.shape[-2:]
            with torch.no_grad():
                fc = F.avg_pool2d(f, scale, ceil_mode=True)
                xc = self._inputs(fc, density)[2]
            oc = self.corrections(xc, tile_size=tile_size, compute_dtype=compute_dtype, padding=padding)
            out = F.interpolate(oc, size=(H, W), mode="bilinear", align_corners=False)
        return logp0 + a * out[:, :1], s0 + b * out[:, 1:]         # x * 1.0 is x: strength 1 adds as trained

    def _feedback_error(self, f: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``log E``: the log of the squared error of ``f``'s inpainting from ``m``, summed over channels,
        smoothed, relative to its local mean (plus a floor, so that exact regions stay finite)."""
        with torch.no_grad():
            e = (inpaint_diffusion(f, m.to(f.dtype), tol=FEEDBACK_TOL) - f).square().sum(1, keepdim=True)
            e = gaussian_blur(e, FEEDBACK_SIGMA)
            return torch.log(e / self._local_mean(e).clamp_min(torch.finfo(e.dtype).tiny) + FEEDBACK_FLOOR)

    def forward(self, f: torch.Tensor, density: float | None = None, *, random: bool = False, generator=None,
                thresholds: torch.Tensor | None = None, snap: bool = True, maps=None) -> torch.Tensor:
        if not isinstance(f, torch.Tensor) or f.dim() != 4 or f.shape[1] != self.channels:
            raise UserInputError(f"MaskNet: f must be (B, {self.channels}, H, W), got {getattr(f, 'shape', type(f))}")
        density = self._density(density)
        B, _, H, W = f.shape
        k = n_known(density, H * W, "MaskNet")
        log_t = self._log_thresholds(f.shape, thresholds, random, generator, f.device)
        # maps: this f's (log p, s), computed once (a feedback network's with these thresholds)
        logp, s = self._maps(f, density, log_t) if maps is None else maps
        hard = self._hard(logp, s, log_t, k, snap).to(f.dtype)
        if not torch.is_grad_enabled() or not (logp.requires_grad or s.requires_grad):
            return hard
        pk = k * torch.softmax(logp.flatten(1), 1).view_as(logp)           # density normalised to k points
        q = neighbour_mass(pk, s) if snap else pk
        return hard + (q - q.detach())


def _check_padding(padding, who: str) -> None:
    if padding not in PADDINGS:
        raise UserInputError(f"{who}: padding must be one of {', '.join(map(repr, PADDINGS))}, got {padding!r}")


# --------------------------------------------------------------------------- loading and the public function


def load_masknet(spec, *, density: float | None = None, channels: int | None = None, device=None) -> MaskNet:
    """A trained :class:`MaskNet`, in eval mode.

    Parameters
    ----------
    spec : float, str or path
        A density with a shipped model (:data:`MASKNET_MODELS`), a shipped
        name (``"masknet-05"``), the path of an exported ``.json`` /
        ``.safetensors`` pair (either file or their stem) or a training run
        directory holding ``model.json``.
    density, channels : optional
        Refuse (ValueError naming the argument) a model trained for another
        density or channel count.

    Examples
    --------
    >>> from pdeflow.inpaint import load_masknet
    >>> net = load_masknet(0.1)                          # the shipped "masknet-10"
    >>> net.density, net.channels, net.training
    (0.1, 1, False)
    """
    who = "load_masknet"
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        d = float(spec)
        n_known(d, 10 ** 9, who)
        name = registry.shipped_name("masknet", d)
        if name is None:
            raise UserInputError(f"{who}: density: no shipped mask network for {d:g}; shipped densities are "
                                 f"{', '.join(f'{x:g}' for x in MASKNET_MODELS)} (or pass model=PATH)")
        density = d if density is None else density
        spec = name
    state, meta, stem = registry.read(spec, "inpaint", kinds=(KIND,), what="a mask-network model", who=who,
                                      channels=channels, hint=_HINT)
    mc = meta["config"]["model"]
    if density is not None and mc.get("density") is not None \
            and not math.isclose(float(mc["density"]), float(density), abs_tol=1e-9):
        raise UserInputError(f"{who}: density: {stem}.json was trained for density {mc['density']:g}, "
                             f"asked for {float(density):g}")
    return registry.build_model(MaskNet, state, meta, stem, who=who, device=device)


def network_mask(net: MaskNet, f: torch.Tensor, density: float, *, refine: dict | None = None,
                 thresholds: torch.Tensor | None = None, tile_size: int | None = TILE_SIZE,
                 scale: int = 1, strength: float | tuple[float, float] = 1.0,
                 compute_dtype: torch.dtype | None = None, padding: str = "zeros") -> torch.Tensor:
    """The mask of ``net`` for ``f`` (B, C, H, W) on its device, refined by
    :func:`pdeflow.inpaint.masks.refine.refine_mask` with options ``refine`` (None: not) from the network's
    density and snap score; ``thresholds``: dithering thresholds (default: the fixed tile); ``tile_size``,
    ``scale``, ``strength``, ``compute_dtype``, ``padding``: of :meth:`MaskNet.maps`. Unchecked
    (:func:`learned_mask` checks); no gradient when refined.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import load_masknet
    >>> from pdeflow.inpaint.learned.masknet import network_mask
    >>> f = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> m = network_mask(load_masknet(0.1), f, 0.1)
    >>> m.shape, int(m.sum())
    (torch.Size([1, 1, 32, 32]), 102)
    """
    from ..masks.refine import refine_mask
    x = f.to(dtype=next(net.parameters()).dtype)
    logp, s = net.maps(x, density, tile_size=tile_size, scale=scale, strength=strength, compute_dtype=compute_dtype,
                       padding=padding, thresholds=thresholds)
    m = net(x, density, maps=(logp, s), thresholds=thresholds)
    if refine is None:
        return m
    p = torch.exp(logp.double() - logp.double().flatten(1).amax(1).view(-1, 1, 1, 1))
    return refine_mask(f, m.detach(), density_map=p, snap_score=s.double(), tile=blue_noise_tile(net.tile), **refine)


@ops.follows_layout_rule("f")
def learned_mask(f: torch.Tensor, density: float, *, model=None, refine: int = 0, scale: int = 1,
                 strength: float | tuple[float, float] = 1.0, tile_size: int | None = TILE_SIZE,
                 compute_dtype: torch.dtype | None = None, padding: str = "zeros") -> torch.Tensor:
    """A mask with exactly ``round(density H W)`` known pixels per image from a trained mask network.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s) in [0, 1].
    density : float in (0, 1)
    model : None, MaskNet, str or path
        None: the shipped network for ``density``; else a :class:`MaskNet` or what :func:`load_masknet`
        accepts.
    refine : int, dict or None
        Test-time refinement (:func:`pdeflow.inpaint.masks.refine.refine_mask` with the network's density and
        snap score): 0 (default) none, exchange rounds, or a dict of options (``{"shifts": 4, "rounds": 8}``).
    scale : int >= 1
        The network reads the image reduced by this factor (block means); its corrections are resized
        bilinearly onto the full-resolution analytic maps (:meth:`MaskNet.maps`): ``scale**2`` times less
        network work (1, default: full resolution).
    strength : float >= 0 or (float, float)
        Factor on the network's corrections of the analytic maps (1, default: as trained; 0: the analytic
        mask of the network's smoothing, ``analytic_mask(f, density, sigma=net.sigma)``, in the network's
        dtype; in between: a log-domain blend of learned and analytic density). A pair ``(a, b)`` weights
        the log-density's correction by ``a``, the snap score's by ``b``. For photographs at native
        resolution, far from the training crops, docs/results/inpaint.md measures ``(0.3, 0)``.
    tile_size : int >= 16 or None
        The network runs on tiles of this size with a margin wider than its receptive field
        (:meth:`MaskNet.corrections`): the same mask to round-off, memory for one tile; None (or an image
        no larger): in one piece.
    compute_dtype : None or torch.bfloat16
        None (default): the network's own dtype (float32). ``torch.bfloat16``: convolutions in bfloat16
        (:func:`torch.autocast`), about twice as fast on CPUs with bfloat16 instructions (AVX-512 BF16, AMX)
        and on GPUs; corrections differ by about 1e-2 and a few percent of the points move (quality cost:
        docs/results/inpaint.md).
    padding : {"zeros", "reflect"}
        What the network sees beyond the border: ``"zeros"`` (default), as in training on 64 px crops;
        ``"reflect"``, the image mirrored, as the diffusion's reflecting boundary reads it
        (:meth:`MaskNet.corrections`). For photographs at native resolution docs/results/inpaint.md
        measures ``"reflect"`` with ``strength=(0.3, 0)``.

    Returns
    -------
    Tensor
        Mask in ``f``'s dtype, 1 = known, ``(B, 1, H, W)`` for 4-D input (``(1, H, W)`` for 3-D, ``(H, W)``
        for 2-D).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import learned_mask
    >>> f = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> int(learned_mask(f, 0.1).sum())                 # the shipped network for 10 %
    102
    """
    who = "learned_mask"
    f = ops.check_tensor(f, f"{who}: f")      # a NumPy array or a list: the tensor, whose shape is handed back
    f4 = ops.image_batch(f, f"{who}: f", min_size=2)
    B, C, H, W = f4.shape
    n_known(density, H * W, who)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise UserInputError(f"{who}: scale must be an int >= 1 (the network's reduction factor), got {scale!r}")
    if scale > 1 and min(H, W) < 2 * scale:
        raise UserInputError(f"{who}: scale {scale} leaves less than 2 pixels a side of a {H} x {W} image")
    several = isinstance(strength, (tuple, list))
    pair = tuple(strength) if several else (strength,)
    if len(pair) != (2 if several else 1) or any(isinstance(w, bool) or not isinstance(w, (int, float))
                                                 or not math.isfinite(w) or w < 0 for w in pair):
        raise UserInputError(f"{who}: strength must be a finite number >= 0 (the weight of the network's "
                             f"corrections) or a pair of them (of the log-density, of the snap score), "
                             f"got {strength!r}")
    strength = (float(pair[0]), float(pair[1])) if several else float(pair[0])
    check_tile_size(tile_size, who)
    if compute_dtype not in (None, torch.bfloat16):
        raise UserInputError(f"{who}: compute_dtype must be None (the network's dtype) or torch.bfloat16, "
                             f"got {compute_dtype!r}")
    _check_padding(padding, who)
    from ..masks.refine import refine_options
    opts = refine_options(refine, who)
    if model is None:
        net = load_masknet(float(density), channels=C)
    elif isinstance(model, MaskNet):
        net = model
        if net.channels != C:
            raise UserInputError(f"{who}: model: trained for {net.channels} channel(s), the image has {C}")
    else:
        net = load_masknet(model, density=float(density), channels=C)
    if net.density is not None and not math.isclose(net.density, float(density), abs_tol=1e-9):
        raise UserInputError(f"{who}: density: the model was trained for density {net.density:g}, got {density!r}")
    with registry.evaluating(net) as dev:
        m = network_mask(net, f4.to(dev), float(density), refine=opts, tile_size=tile_size, scale=scale,
                         strength=strength, compute_dtype=compute_dtype, padding=padding)
    m = m.to(device=f4.device, dtype=f4.dtype)
    return ops.unbatch(m, f.dim())

