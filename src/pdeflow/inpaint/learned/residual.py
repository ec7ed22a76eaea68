"""A learned inpainter that starts at homogeneous diffusion inpainting.

:class:`ResidualInpainter` corrects diffusion inpainting instead of replacing it::

    u_diff = inpaint_diffusion(f, b)
    u      = u_diff + (1 - b) * R(u_diff, b, b * f)

with ``R`` a small U-Net (by default 16/32/64 channels, ~0.12 M parameters;
the width and its cost are on the results page "Sparse inpainting") whose last
layer starts at zero. So:

* the untrained model **is** diffusion inpainting, exactly (bit for bit);
* the known pixels (``b = 1``) keep their values exactly, whatever ``R`` does;
* one network serves all densities: the density is visible in ``b``;
* with ``normalize=True`` (the default of new models) it is equivariant to
  affine changes of intensity, as diffusion inpainting is: ``R`` sees the
  image with the mean and standard deviation of its known pixels mapped to
  fixed values and its output is scaled back. A correction learnt on
  contrasty photos then shrinks with the contrast of a smooth one instead of
  adding its errors at full size (the comparison with an unnormalised model
  is on the results page "Sparse inpainting").

This is the CPU-sized counterpart of the joint learning of masks and
inpainting of P. Peter, "A Wasserstein GAN for joint learning of inpainting
and spatial optimisation" (2022): there the inpainting network is a large
WGAN generator learnt from scratch; here the PDE does most of the work and
the network learns what diffusion misses (edges, texture, extrema between
the known pixels). Training: :mod:`pdeflow.inpaint.training.residual`
(stages ``residual`` and ``joint``, the latter fine-tuning a mask network
through ``R``: the adjoint of ``inpaint_diffusion`` for the diffusion part, autograd
for ``R``).

**Calibration** (``inpaint_learned(..., calibrate=True)``, the default): the correction is
scaled per image by ``alpha`` in [0, 1] estimated from the known pixels alone,
by cross-validation: a random fraction of them (``holdout``, default 20 %) is
hidden, the image is inpainted from the rest, and ``alpha`` is the least-squares
weight of ``R``'s correction that best predicts the hidden pixels' values from
diffusion's (clipped to [0, 1]). A correction that does not help on an image
(e.g. a kind of photo unlike the training crops) is shrunk there; one that helps
is kept (alpha near 1). The held-out pixels are the mask's own, and an optimised
mask packs them where diffusion errs most: each counts for the unknown pixels it
stands for, ``(1 - pi) / pi`` with ``pi`` the mask's local density (the weight of
D. G. Horvitz and D. J. Thompson, "A generalization of sampling without
replacement from a finite universe", 1952). Unweighted, a 4K photograph kept the
whole correction where its unknown pixels wanted almost none
(docs/results/inpaint.md). It costs one more diffusion solve and ``R`` evaluation
(about twice the time of ``calibrate=False``). It is the default because the
uncalibrated correction, sized for the training photos, lost to diffusion on
smooth nature photos at 20 % density, while the calibrated one beat diffusion
in MAE and SSIM at 5, 10 and 20 % on both test sets (docs/results/inpaint.md).

Public function: :func:`inpaint_learned`; loader :func:`load_residual`.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ... import models as registry
from ... import ops
from ...errors import InputFileNotFoundError, UserInputError
from ...filters import box_mean
from ...rng import as_generator
from ..checks import check_mask
from ..operators.diffusion import inpaint_diffusion
from ..operators.diffusion_system import default_max_iter, solve_checked
from .unet import TILE_SIZE, UNet, check_tile_size

__all__ = ["ResidualInpainter", "inpaint_learned", "load_residual", "load_joint", "load_joint_refined",
           "RESIDUAL_MODEL", "JOINT_MODELS", "KIND"]

#: The shipped residual inpainter, one for all densities (documented in :data:`pdeflow.models.SHIPPED`).
RESIDUAL_MODEL = registry.shipped_name("residual")
#: The shipped jointly fine-tuned pairs per density: ``NAME-mask`` (a mask network) and ``NAME-inpainter``
#: (a residual inpainter), trained together by ``pdeflow train residual --stage joint``.
JOINT_MODELS = {s.density: name.removesuffix("-mask") for name, s in registry.SHIPPED.items()
                if s.group == "joint-mask"}
#: A shipped pair's ``NAME-inpainter`` fine-tuned on the pair's masks after test-time refinement (``pdeflow
#: train residual --refine``) is shipped as ``NAME-inpainter-refined``: the inpainter of the refined rows.
REFINED_SUFFIX = "-inpainter-refined"
KIND = "residual-inpainter"
_HINT = "train one with pdeflow.inpaint.training.residual and pass model=PATH (its run directory or model.json)"


class ResidualInpainter(nn.Module):
    """Diffusion inpainting plus a learned, masked correction (see the module docstring).

    ``forward(f, b, u_diff=None)``: ``f`` ``(B, C, H, W)`` (only its values on
    the mask are used), ``b`` ``(B, 1, H, W)`` binary (or, in training, binary
    values with a straight-through gradient); returns ``u`` of the shape and
    dtype of ``f``. ``u_diff`` may be passed when it was computed already.
    The network runs in its own dtype (float32 by default), the diffusion in
    the dtype of ``f`` (float64 in training).

    Parameters
    ----------
    channels : int
        Image channels (1 or 3).
    widths : tuple of int
        U-Net channels per level (max-pooling between levels).
    tol : float
        Relative residual of the diffusion solve (:func:`~pdeflow.inpaint.inpaint_diffusion`).
    normalize : bool
        Per image (and channel), map the known pixels' mean to 0 and their
        standard deviation (at least :attr:`MIN_STD`) to :attr:`REF_STD` before
        ``R`` and scale ``R``'s output back (see the module docstring). False:
        ``R`` sees the intensities centred at 0.5 (models trained before it
        existed).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_diffusion, random_mask
    >>> from pdeflow.inpaint.learned.residual import ResidualInpainter
    >>> f = torch.rand(1, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> b = random_mask((1, 1, 16, 16), 0.2, generator=1, dtype=torch.float64)
    >>> torch.equal(ResidualInpainter(1, widths=(4, 8))(f, b), inpaint_diffusion(f, b))   # untrained: diffusion
    True
    """

    #: Standard deviation the known pixels are scaled to (``normalize=True``): that of a typical 64 px photo crop,
    #: so that the inputs stay in the range an unnormalised model was trained on.
    REF_STD = 0.15
    #: Floor of the known pixels' standard deviation (one 8-bit grey level): flat crops are not amplified further.
    MIN_STD = 1 / 255
    #: The calibration's window for the mask's local density, in mean point spacings ``1 / sqrt(density)``.
    CALIBRATION_WINDOW = 3.0

    def __init__(self, channels: int = 1, *, widths=(16, 32, 64), tol: float = 1e-6, normalize: bool = False):
        super().__init__()
        if channels not in (1, 3):
            raise UserInputError(f"ResidualInpainter: channels must be 1 or 3, got {channels!r}")
        widths = tuple(int(w) for w in widths)
        if not widths or any(w < 1 for w in widths):
            raise UserInputError(f"ResidualInpainter: widths must be positive ints, got {widths!r}")
        if not (isinstance(tol, (int, float)) and 0 < tol < 1):
            raise UserInputError(f"ResidualInpainter: tol must be in (0, 1), got {tol!r}")
        if not isinstance(normalize, bool):
            raise UserInputError(f"ResidualInpainter: normalize must be True or False, got {normalize!r}")
        self.channels, self.widths, self.tol, self.normalize = int(channels), widths, float(tol), normalize
        self.config = {"channels": self.channels, "widths": list(widths), "tol": self.tol, "normalize": normalize}
        self.net = UNet(2 * channels + 1, channels, widths)   # last layer zero-initialised

    def _intensity_map(self, f: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Offset and scale ``(B, C, 1, 1)`` that ``R`` sees the image through: ``(x - offset) * scale``."""
        if not self.normalize:
            return torch.full_like(f[..., :1, :1], 0.5), torch.ones_like(f[..., :1, :1])
        n = b.sum((-2, -1), keepdim=True).clamp_min(1)
        mean = (b * f).sum((-2, -1), keepdim=True) / n
        var = (b * (f - mean) ** 2).sum((-2, -1), keepdim=True) / n
        std = var.clamp_min(self.MIN_STD ** 2).sqrt()
        return mean, self.REF_STD / std

    def residual(self, u_diff: torch.Tensor, b: torch.Tensor, f: torch.Tensor, *,
                 tile_size: int | None = None) -> torch.Tensor:
        """``R(u_diff, b, b f)`` ``(B, C, H, W)`` in the dtype of ``u_diff``, in the image's intensity units;
        ``tile_size``: the U-Net on tiles of about this side (:meth:`UNet.tiled
        <pdeflow.inpaint.learned.unet.UNet.tiled>`, the same result to round-off), None: in one piece."""
        dt = next(self.parameters()).dtype
        offset, scale = self._intensity_map(f.to(u_diff.dtype), b.to(u_diff.dtype))
        bb = b.to(dt)
        x = torch.cat([((u_diff - offset) * scale).to(dt), bb, bb * ((f - offset) * scale).to(dt)], 1)
        return self.net.tiled(x, tile_size).to(u_diff.dtype) / scale

    def forward(self, f: torch.Tensor, b: torch.Tensor, u_diff: torch.Tensor | None = None) -> torch.Tensor:
        if not isinstance(f, torch.Tensor) or f.dim() != 4 or f.shape[1] != self.channels:
            raise UserInputError(f"ResidualInpainter: f must be (B, {self.channels}, H, W), "
                             f"got {tuple(getattr(f, 'shape', ()))}")
        if not isinstance(b, torch.Tensor) or b.dim() != 4 or b.shape[1] != 1 or b.shape[0] != f.shape[0] \
                or b.shape[-2:] != f.shape[-2:]:
            raise UserInputError(f"ResidualInpainter: b must be (B, 1, H, W) matching f {tuple(f.shape)}, "
                             f"got {tuple(getattr(b, 'shape', ()))}")
        b = b.to(f.dtype)
        if u_diff is None:
            u_diff = inpaint_diffusion(f, b, tol=self.tol)
        return u_diff + (1 - b) * self.residual(u_diff, b, f)

    def calibration(self, f: torch.Tensor, b: torch.Tensor, *, holdout: float = 0.2, generator=None,
                    tile_size: int | None = None, weighted: bool = True) -> torch.Tensor:
        """Weight ``alpha`` (B,) in [0, 1] of the correction, from the known pixels only (see the module doc).

        ``f`` (B, C, H, W), ``b`` (B, 1, H, W) binary. A fraction ``holdout`` of each image's known
        pixels (at random, ``generator``: None, an int seed or a torch.Generator) is hidden; with ``v``
        diffusion's and ``r`` the correction's values there after inpainting from the others,
        ``alpha = <f - v, r>_w / <r, r>_w`` clipped to [0, 1] (1 where ``r`` vanishes there or no pixel was
        held out). ``tile_size``: of :meth:`residual`.

        ``weighted`` (default True): a held-out pixel counts for the unknown pixels it stands for,
        ``w = (1 - pi) / pi`` with ``pi`` the mask's density around it (its mean over a window of
        :attr:`CALIBRATION_WINDOW` point spacings), the Horvitz-Thompson weight of a sample drawn with
        probability ``pi``: an optimised mask packs its pixels where diffusion errs most, and unweighted
        (``weighted=False``, the estimate before) those pixels outvote the sparse, smooth regions where
        most unknown pixels lie.
        """
        return self._calibration(f, b, holdout, generator, tile_size, weighted, checked=False)

    def _calibration(self, f, b, holdout, generator, tile_size, weighted, *, checked: bool) -> torch.Tensor:
        """:meth:`calibration`; ``checked``: ``f`` (float32 or float64, finite) and ``b`` (a binary mask of
        :func:`~pdeflow.inpaint.checks.check_mask`) were checked by the caller (:func:`inpaint_learned`),
        so the diffusion solve skips :func:`~pdeflow.inpaint.inpaint_diffusion`'s checks."""
        b = b.to(f.dtype)
        g = as_generator(generator, "ResidualInpainter.calibration")
        held = b * (torch.rand(b.shape, generator=g, dtype=f.dtype).to(b.device) < holdout).to(f.dtype)
        rest = b - held
        ok = (rest.flatten(1).sum(1) > 0) & (held.flatten(1).sum(1) > 0)
        rest = torch.where(ok.view(-1, 1, 1, 1), rest, b)        # nothing to hold out: alpha = 1 below
        v = _diffuse(f, rest, self.tol) if checked else inpaint_diffusion(f, rest, tol=self.tol)
        r = (1 - rest) * self.residual(v, rest, f, tile_size=tile_size)
        w = held
        if weighted:
            pi = _local_density(b, self.CALIBRATION_WINDOW)
            w = held * (1 - pi) / pi
        num = (w * (f - v) * r).flatten(1).sum(1)
        rr = (w * r * r).flatten(1).sum(1)
        alpha = (num / torch.where(rr > 0, rr, torch.ones_like(rr))).clamp(0, 1)
        return torch.where(ok & (rr > 0), alpha, torch.ones_like(alpha))


def _diffuse(f: torch.Tensor, b: torch.Tensor, tol: float) -> torch.Tensor:
    """``inpaint_diffusion(f, b, tol=tol)`` for an image and a binary mask checked once on entry to the public call."""
    return solve_checked(f, b, True, tol, default_max_iter("mg", *f.shape[2:]), None, "mg")[0]


def _local_density(b: torch.Tensor, spacings: float) -> torch.Tensor:
    """The share of known pixels ``(B, 1, H, W)`` around each pixel of the binary mask ``b``: its mean over a
    square of ``spacings`` mean point spacings (``1 / sqrt(density)`` pixels, at least 3), kept inside (0, 1)
    so that the weights ``(1 - pi) / pi`` stay finite."""
    d = b.flatten(1).mean(1).clamp_min(1.0 / b[0].numel())
    out = torch.empty_like(b)
    for i in range(b.shape[0]):            # each image its own window (its own density)
        width = max(3, round(spacings / math.sqrt(float(d[i]))))
        out[i] = box_mean(b[i:i + 1], width)[0]
    return out.clamp(1e-3, 1 - 1e-3)


# --------------------------------------------------------------------------- loading and the public function


def load_residual(spec=None, *, channels: int | None = None, device=None) -> ResidualInpainter:
    """A trained :class:`ResidualInpainter`, in eval mode.

    Parameters
    ----------
    spec : None, str or path
        None: the shipped model (:data:`RESIDUAL_MODEL`); a shipped name; the
        path of an exported ``.json`` / ``.safetensors`` pair (either file or
        their stem) or a training run directory holding ``model.json``.
    channels : int, optional
        Refuse (ValueError naming the argument) a model trained for another
        channel count.

    Examples
    --------
    >>> from pdeflow.inpaint import load_residual
    >>> net = load_residual()                            # the shipped "residual-inpainter"
    >>> net.channels, net.training
    (1, False)
    """
    who = "load_residual"
    if spec is None:
        spec = RESIDUAL_MODEL
        if spec is None or spec not in registry.shipped_models("inpaint"):
            raise InputFileNotFoundError(f"{who}: model: no residual inpainter is shipped (see "
                                         "pdeflow.models.SHIPPED); "
                                         + _HINT)
    return registry.load(spec, "inpaint", ResidualInpainter, kinds=(KIND,), what="a residual-inpainter model",
                         who=who, channels=channels, hint=_HINT, device=device)


def load_joint_refined(density: float, *, channels: int | None = None, device=None) -> ResidualInpainter | None:
    """The shipped pair's inpainter for its refined masks at ``density`` (``NAME-inpainter-refined``,
    :data:`REFINED_SUFFIX`), or None where that pair ships none (then its ``NAME-inpainter`` is the one).

    Examples
    --------
    >>> from pdeflow.inpaint.learned.residual import load_joint_refined
    >>> net = load_joint_refined(0.1)                   # the shipped "joint-10-inpainter-refined"
    >>> net.channels, net.training, load_joint_refined(0.3) is None
    (1, False, True)
    """
    name = registry.shipped_name("joint-inpainter-refined", density)
    if name is None or name not in registry.shipped_models("inpaint"):
        return None
    return load_residual(name, channels=channels, device=device)


def load_joint(spec, *, density: float, channels: int | None = None, device=None):
    """A mask network and the residual inpainter fine-tuned with it (stage ``joint``), both in eval mode.

    Parameters
    ----------
    spec : None, str or path
        None: the pair shipped for ``density`` (:data:`JOINT_MODELS`); a run
        directory of ``pdeflow train residual --stage joint`` (its ``mask.json``
        and ``model.json``); or a stem ``S`` of the files ``S-mask.json`` and
        ``S-inpainter.json`` (with their ``.safetensors``).
    density : float
        Refuse (ValueError naming the argument) a mask network trained for another density.
    channels : int, optional
        Refuse a pair trained for another channel count.

    Returns
    -------
    (MaskNet, ResidualInpainter)

    Examples
    --------
    >>> from pdeflow.inpaint import load_joint
    >>> mask_net, inpainter = load_joint(None, density=0.1)   # the shipped pair "joint-10"
    >>> mask_net.density, inpainter.channels
    (0.1, 1)
    """
    from .masknet import load_masknet
    who = "load_joint"
    if spec is None:
        names = [registry.shipped_name(g, density) for g in ("joint-mask", "joint-inpainter")]
        if None in names or not set(names) <= set(registry.shipped_models("inpaint")):
            raise InputFileNotFoundError(
                f"{who}: density: no jointly trained pair is shipped for {float(density):g} (see "
                "pdeflow.models.SHIPPED); train one with `pdeflow train residual --stage joint` and pass its "
                "run directory")
        mask_spec, inpainter_spec = (str(registry.resolve(n, "inpaint", who=who)) for n in names)
    elif Path(spec).is_dir():
        mask_spec, inpainter_spec = str(Path(spec) / "mask"), str(Path(spec))
    else:
        mask_spec, inpainter_spec = f"{spec}-mask", f"{spec}-inpainter"
    for what in (mask_spec, inpainter_spec):
        if not Path(what + ".json").is_file() and not Path(what).is_dir():
            raise InputFileNotFoundError(f"{who}: model: no {what}.json (a joint pair is a run directory of "
                                         "stage joint, or the files STEM-mask.json and STEM-inpainter.json)")
    return (load_masknet(mask_spec, density=float(density), channels=channels, device=device),
            load_residual(inpainter_spec, channels=channels, device=device))


@ops.follows_layout_rule("f", also=("mask",))
def inpaint_learned(f: torch.Tensor, mask: torch.Tensor, *, model=None, calibrate: bool = True,
                    holdout: float = 0.2, generator=0, tile_size: int | None = TILE_SIZE) -> torch.Tensor:
    """Inpaint ``f`` from the pixels where ``mask`` is 1 with the residual inpainter.

    ``u = inpaint_diffusion(f, mask) + (1 - mask) R(...)`` (see :class:`ResidualInpainter`):
    homogeneous diffusion inpainting corrected by a small trained network.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s) in [0, 1], float32 or float64; only the values on the mask are used.
    mask : Tensor
        Binary mask, 1 = known pixel, shape (H, W), (1, H, W) or (B, 1, H, W)
        (broadcast over the batch); at least one known pixel per image.
    model : None, ResidualInpainter, str or path
        None: the shipped model; else a :class:`ResidualInpainter` or what
        :func:`load_residual` accepts (a run directory or ``model.json``).
    calibrate : bool
        Scale the correction per image by a weight in [0, 1] estimated by
        cross-validation on the known pixels (default; module doc; one more
        solve). False applies the correction as trained, in half the time.
    holdout : float in (0, 1)
        Fraction of the known pixels held out for the calibration.
    generator : None, int or torch.Generator
        Which known pixels are held out (default seed 0: reproducible).
    tile_size : int >= 16 or None
        The network runs on tiles of this size with a margin wider than its receptive field
        (:meth:`UNet.tiled <pdeflow.inpaint.learned.unet.UNet.tiled>`): the same result to round-off, with
        memory for one tile instead of the image; None: in one piece.

    Returns
    -------
    Tensor, shape and dtype of ``f``
        The inpainted image; equal to ``f`` on the mask (exactly).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_learned, random_mask
    >>> f = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> m = random_mask((1, 1, 32, 32), 0.1, generator=1, dtype=torch.float64)
    >>> u = inpaint_learned(f, m)                        # the shipped residual inpainter
    >>> u.shape, bool((u[m > 0] == f[m > 0]).all())
    (torch.Size([1, 1, 32, 32]), True)
    """
    who = "inpaint_learned"
    f = ops.check_tensor(f, f"{who}: f")      # a NumPy array or a list: the tensor, whose shape is handed back
    f4 = ops.image_batch(f, f"{who}: f", min_size=2)
    B, C, H, W = f4.shape
    m = check_mask(mask, f4, who)
    if m.shape[1] != 1:
        raise UserInputError(f"{who}: mask must have one channel (shared by all channels of f), "
                             f"got {tuple(mask.shape)}")
    m = m.expand(B, 1, H, W)
    if model is None:
        net = load_residual(None, channels=C)
    elif isinstance(model, ResidualInpainter):
        net = model
        if net.channels != C:
            raise UserInputError(f"{who}: model: trained for {net.channels} channel(s), the image has {C}")
    elif isinstance(model, (str, Path)):
        net = load_residual(model, channels=C)
    else:
        raise TypeError(f"{who}: model must be None, a ResidualInpainter or a path, got {type(model).__name__}")
    if not isinstance(calibrate, bool):
        raise UserInputError(f"{who}: calibrate must be True or False, got {calibrate!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 < holdout < 1:
        raise UserInputError(f"{who}: holdout must be a fraction in (0, 1) of the known pixels, got {holdout!r}")
    check_tile_size(tile_size, who)
    with registry.evaluating(net) as dev:
        f64 = f4.to(device=dev, dtype=torch.float64)
        m64 = m.to(device=dev, dtype=torch.float64)
        if calibrate:
            alpha = net._calibration(f64, m64, float(holdout), generator, tile_size, True, checked=True)
        else:
            alpha = torch.ones(B, dtype=f64.dtype, device=dev)
        u_diff = _diffuse(f64, m64, net.tol)
        u = u_diff + alpha.view(-1, 1, 1, 1) * (1 - m64) * net.residual(u_diff, m64, f64, tile_size=tile_size)
        u = torch.where(m.to(dev) > 0, f64, u)       # known pixels: f itself (already so; made explicit)
    u = u.to(device=f4.device, dtype=f4.dtype)
    return ops.unbatch(u, f.dim())
