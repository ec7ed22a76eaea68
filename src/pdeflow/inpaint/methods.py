"""The pillar's methods by name: one table of mask methods (:data:`MASK_METHODS`), one of inpainting methods
(:data:`INPAINT_METHODS`), and :func:`make_mask` and :func:`inpaint`, which dispatch through them.

A table entry (:class:`Method`) holds the function, the options it takes, what it needs (a trained model, a
start mask) and whether it also works on volumes. ``pdeflow mask``, ``pdeflow inpaint`` and
:func:`pdeflow.evaluate.inpaint.evaluate` choose their methods here, so a method registered in a table is
offered by all three.
"""
from __future__ import annotations

import inspect
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Callable

import torch

from .. import ops
from ..errors import UserInputError
from .learned.gan import gan_mask, inpaint_wgan, load_mask_gan, load_wgan
from .learned.masknet import PADDINGS, learned_mask, load_masknet
from .learned.residual import inpaint_learned, load_residual
from .masks.analytic import analytic_mask, analytic_sigma
from .masks.densification import densify_mask
from .masks.sparsification import nlpe_mask, ps_cost, ps_mask, random_mask
from .operators import OPERATORS

__all__ = ["Method", "MASK_METHODS", "INPAINT_METHODS", "make_mask", "inpaint"]

#: Keyword parameters of the methods' functions that are not options of :func:`make_mask` / :func:`inpaint`
#: (these return the mask or the image only).
_NOT_OPTIONS = ("full_output",)


@dataclass(frozen=True)
class Method:
    """One entry of :data:`MASK_METHODS` or :data:`INPAINT_METHODS`.

    Attributes
    ----------
    name : str
        The method's name (``method=`` of :func:`make_mask` or :func:`inpaint`, ``--method`` of the command).
    function : callable
        ``function(f, density, **options)`` for a mask method, ``function(f, mask, **options)`` for an
        inpainting method.
    summary : str
        One line: what the method does.
    option_sources : tuple of callable
        The functions whose keyword-only parameters are the method's options (default: ``function``).
    load_model : callable or None
        For a method that runs a trained model (its option ``model``):
        ``load_model(spec, density=..., channels=..., device=...)`` loads one (``spec`` None: the shipped
        one), raising ``FileNotFoundError`` or ``ValueError`` with a message that says how to get one.
    start_mask : bool
        Whether it takes a start mask (its option ``mask``).
    volumes : bool
        Whether it also makes masks of volumes (``ndim=3`` or a ``spacing`` of length 3).
    cost : callable or None
        ``cost(f, density, **settings)``: an estimate of its run time before it runs (the dict of
        :func:`~pdeflow.inpaint.masks.sparsification.ps_cost`), for methods that may take minutes.
    choices : dict
        The allowed values of options that take one of a few strings.
    random : bool
        Whether its result is a random draw (option ``generator``) unless told otherwise.
    diffusion_tol : bool
        Whether its option ``tol`` is the relative residual of its diffusion solves (``tol`` of
        :func:`~pdeflow.inpaint.inpaint_diffusion`), rather than a tolerance of its own.
    inpaint_with : str
        Mask methods: the inpainting method (a key of :data:`INPAINT_METHODS`) that goes with its masks, with
        its model where it has one (the mask GAN's own generator).

    Examples
    --------
    >>> from pdeflow.inpaint import MASK_METHODS
    >>> entry = MASK_METHODS["densify"]
    >>> entry.options, entry.needs_model, entry.start_mask
    (('start', 'stages', 'sigma', 'tol', 'mask', 'operator'), False, True)
    >>> entry.default("sigma")
    0.7
    """

    name: str
    function: Callable
    summary: str
    option_sources: tuple = ()
    load_model: Callable | None = None
    start_mask: bool = False
    volumes: bool = False
    cost: Callable | None = None
    choices: dict = field(default_factory=dict)
    random: bool = False
    diffusion_tol: bool = False
    inpaint_with: str = "diffusion"

    @property
    def needs_model(self) -> bool:
        """Whether the method runs a trained model."""
        return self.load_model is not None

    def _parameters(self):
        """The keyword-only parameters of :attr:`option_sources` (their options), but ``full_output``."""
        for fn in self.option_sources or (self.function,):
            for p in inspect.signature(fn).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in _NOT_OPTIONS:
                    yield p

    @property
    def options(self) -> tuple[str, ...]:
        """The names of the options the method takes, in the order of its functions' signatures."""
        return tuple(dict.fromkeys(p.name for p in self._parameters()))

    def default(self, option: str):
        """The default value of ``option`` (the first of :attr:`option_sources` that declares it)."""
        for p in self._parameters():
            if p.name == option:
                return p.default
        raise UserInputError(f"method {self.name!r} takes no option {option!r}; its options: "
                             f"{', '.join(self.options)}")


# ---------------------------------------------------------------------------
# Mask methods whose call differs from f(f, density, **options)
# ---------------------------------------------------------------------------

def _analytic(f, density, *, sigma: float | None = None, **options):
    """:func:`analytic_mask` smoothed by :func:`analytic_sigma` of ``density`` unless ``sigma`` is given
    (volumes: of ``density`` and the voxel spacing)."""
    if sigma is None:
        nd, h = ops.spatial_axes(options.get("ndim"), options.get("spacing"), "make_mask")
        sigma = analytic_sigma(density, spacing=(h or (1.0, 1.0, 1.0)) if nd == 3 else None)
    return analytic_mask(f, density, sigma=sigma, **options)


def _random(f, density, *, generator=None, ndim: int | None = None, spacing=None):
    """:func:`random_mask` of the mask shape of ``f`` (one channel), its dtype and device."""
    f = ops.check_tensor(f, "make_mask: f")
    nd, _ = ops.spatial_axes(ndim, spacing, "make_mask")
    shape = tuple(f.shape)
    if len(shape) > nd:          # (C, ...) or (B, C, ...): one mask for all channels
        shape = shape[:-nd - 1] + (1,) + shape[-nd:]
    return random_mask(shape, density, generator=generator, dtype=f.dtype, device=f.device, ndim=ndim,
                       spacing=spacing)


def _keyword_only(fn) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def _nlpe(f, density, *, sparsified: torch.Tensor | None = None, exchange_generator=None, **options):
    """Probabilistic sparsification, then non-local pixel exchange on its mask.

    ``sparsified``: a PS mask already made (PS is then skipped). ``generator`` draws PS's candidates and, unless
    ``exchange_generator`` is given, NLPE's. Each option goes to the step(s) whose function takes it.
    """
    if sparsified is None:
        ps = _keyword_only(ps_mask)
        sparsified = ps_mask(f, density, **{k: v for k, v in options.items() if k in ps})
    nlpe = _keyword_only(nlpe_mask)     # its `mask` is the sparsified one, PS's is the start
    nlpe_options = {k: v for k, v in options.items() if k in nlpe}
    if exchange_generator is not None:
        nlpe_options["generator"] = exchange_generator
    return nlpe_mask(f, sparsified, **nlpe_options)


def _gan_mask(f, density, *, model=None, generator=None, seed: int | None = None):
    """:func:`gan_mask` with the model as an option."""
    return gan_mask(f, density, model, generator=generator, seed=seed)


def _gan_inpaint(f, mask, *, model=None, generator=None, seed: int | None = None):
    """:func:`inpaint_wgan` with the model as an option."""
    return inpaint_wgan(f, mask, model, generator=generator, seed=seed)


def _load_masknet(spec, *, density, channels=None, device=None):
    return load_masknet(spec if spec is not None else float(density), density=float(density), channels=channels,
                        device=device)


def _load_mask_gan(spec, *, density, channels=None, device=None):
    return load_mask_gan(spec if spec is not None else density, device=device)


def _load_residual(spec, *, density=None, channels=None, device=None):
    return load_residual(spec, channels=channels, device=device)


def _load_inpainting_gan(spec, *, density=None, channels=None, device=None):
    return load_wgan(spec, device=device)


#: The mask methods by name.
MASK_METHODS: dict[str, Method] = {m.name: m for m in (
    Method("analytic", _analytic, "Belhachmi et al.'s density |laplacian(G_sigma f)|, dithered with blue noise and "
           "snapped to local extrema", option_sources=(_analytic, analytic_mask), volumes=True),
    Method("learned", learned_mask, "a trained mask network's corrections of the analytic density",
           load_model=_load_masknet, choices={"padding": PADDINGS}),
    Method("densify", densify_mask, "grown from a sparse analytic mask by adding points where the diffusion "
           "inpainting errs most", start_mask=True),
    Method("random", _random, "uniformly random pixels", volumes=True, random=True),
    Method("ps", ps_mask, "probabilistic sparsification", start_mask=True, cost=ps_cost,
           choices={"metric": ("mse", "mae")}, random=True, diffusion_tol=True),
    Method("nlpe", _nlpe, "probabilistic sparsification, then non-local pixel exchange",
           option_sources=(_nlpe, ps_mask, nlpe_mask), start_mask=True,
           cost=ps_cost, choices={"metric": ("mse", "mae")}, random=True, diffusion_tol=True),
    Method("gan", _gan_mask, "a trained mask GAN", load_model=_load_mask_gan, random=True, inpaint_with="wgan"),
)}

class _InpaintMethods(MutableMapping):
    """The table of inpainting methods: an entry for each operator of
    :data:`~pdeflow.inpaint.operators.OPERATORS` as that table holds it when asked (so an operator registered there
    is a method at once), then the learned methods; an entry set here overrides."""

    def __init__(self, others):
        self._set = {m.name: m for m in others}
        self._made: dict = {}

    def _of(self, op) -> Method:
        made = self._made.get(op.name)
        if made is None or made[0] is not op:
            made = self._made[op.name] = (op, Method(op.name, op.function, op.summary, volumes=op.volumes,
                                                     diffusion_tol=op.diffusion_tol))
        return made[1]

    def __getitem__(self, name):
        if name in self._set:
            return self._set[name]
        return self._of(OPERATORS[name])

    def __setitem__(self, name, method):
        if name in OPERATORS and method is self._of(OPERATORS[name]):
            self._set.pop(name, None)      # the operator's own entry again (a test's override undone)
        else:
            self._set[name] = method

    def __delitem__(self, name):
        del self._set[name]

    def __iter__(self):
        return iter(dict.fromkeys([*OPERATORS, *self._set]))

    def __len__(self):
        return len(dict.fromkeys([*OPERATORS, *self._set]))

    def __repr__(self):
        return repr(dict(self))


#: The inpainting methods by name: the operators of :data:`~pdeflow.inpaint.operators.OPERATORS` (homogeneous
#: diffusion first), then the learned methods.
INPAINT_METHODS: MutableMapping[str, Method] = _InpaintMethods((
    Method("learned", inpaint_learned, "diffusion inpainting plus a trained network's correction (the residual "
           "inpainter)", load_model=_load_residual),
    Method("wgan", _gan_inpaint, "a trained inpainting WGAN", load_model=_load_inpainting_gan, random=True),
))


def _lookup(table: dict, method, options: dict, who: str) -> Method:
    if not isinstance(method, str) or method not in table:
        raise UserInputError(f"{who}: method must be one of {', '.join(map(repr, table))}, got {method!r}")
    entry = table[method]
    unknown = [k for k in options if k not in entry.options]
    if unknown:
        raise UserInputError(f"{who}: method {method!r} takes no option {', '.join(map(repr, unknown))}; its "
                             f"options: {', '.join(entry.options)}")
    return entry


@ops.follows_layout_rule("f", also=("mask",))
def make_mask(f: torch.Tensor, density: float, method: str = "densify", **options) -> torch.Tensor:
    """A mask of ``density`` known pixels for homogeneous diffusion inpainting of ``f``, by the named method.

    Dispatches to the function of ``method`` in :data:`MASK_METHODS`; the options are that function's keyword
    arguments, so ``make_mask(f, d, method, **options)`` returns what the function returns for them.

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Image(s), floating point (volumes ``(D, H, W)`` ... with ``ndim=3`` or a ``spacing`` of length 3, for
        the methods marked ``volumes`` in the table: ``'analytic'`` and ``'random'``).
    density : float in (0, 1)
        Fraction of known pixels.
    method : str, optional
        A key of :data:`MASK_METHODS`:

        * ``'densify'`` (default): :func:`~pdeflow.inpaint.densify_mask`;
        * ``'analytic'``: :func:`~pdeflow.inpaint.analytic_mask`, smoothed by
          :func:`~pdeflow.inpaint.masks.analytic.analytic_sigma` of ``density`` unless ``sigma`` is given;
        * ``'learned'``: :func:`~pdeflow.inpaint.learned_mask` (option ``model``: a trained mask network,
          default the shipped one for ``density``);
        * ``'random'``: :func:`~pdeflow.inpaint.random_mask` of the mask shape of ``f``, its dtype and device;
        * ``'ps'``: :func:`~pdeflow.inpaint.ps_mask`;
        * ``'nlpe'``: PS, then :func:`~pdeflow.inpaint.nlpe_mask` on its mask (options of both;
          ``sparsified``: a PS mask to start from, PS then skipped; ``exchange_generator``: NLPE's generator,
          default ``generator``);
        * ``'gan'``: :func:`~pdeflow.inpaint.gan_mask` (option ``model``).
    **options
        Keyword arguments of the method's function; :attr:`Method.options` lists them.

    Returns
    -------
    Tensor
        The method's mask, 1 = known pixel (one channel: ``(B, 1, H, W)`` for 4-D input, ``(1, H, W)`` for
        3-D, ``(H, W)`` for 2-D).

    Raises
    ------
    UserInputError
        For a method not in the table or an option the method does not take (the message names its options),
        and whatever the method's function refuses.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import make_mask
    >>> f = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> m = make_mask(f, 0.1)                              # densify, the default
    >>> m.shape, int(m.sum())                              # round(0.1 * 32 * 32) known pixels
    (torch.Size([1, 1, 32, 32]), 102)
    >>> int(make_mask(f, 0.1, "random", generator=0).sum())
    102
    >>> make_mask(f, 0.1, "densify", rounds=3)             # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pdeflow.errors.UserInputError: make_mask: method 'densify' takes no option 'rounds'; its options: start, ...
    """
    return _lookup(MASK_METHODS, method, options, "make_mask").function(f, density, **options)


@ops.follows_layout_rule("f", also=("mask",))
def inpaint(f: torch.Tensor, mask: torch.Tensor, method: str = "diffusion", **options) -> torch.Tensor:
    """Inpaint ``f`` from the pixels where ``mask`` is 1, by the named method.

    Dispatches to the function of ``method`` in :data:`INPAINT_METHODS`:

    * ``'diffusion'`` (default): :func:`~pdeflow.inpaint.inpaint_diffusion` (its options but ``full_output``);
    * ``'biharmonic'``, ``'eed'``, ``'tv'``, ``'shepard'``: the other operators of
      :data:`~pdeflow.inpaint.operators.OPERATORS` (:func:`~pdeflow.inpaint.inpaint_biharmonic`,
      :func:`~pdeflow.inpaint.inpaint_eed`, :func:`~pdeflow.inpaint.inpaint_tv`,
      :func:`~pdeflow.inpaint.inpaint_shepard`);
    * ``'learned'``: :func:`~pdeflow.inpaint.inpaint_learned` (option ``model``: default the shipped residual
      inpainter);
    * ``'wgan'``: :func:`~pdeflow.inpaint.inpaint_wgan` (option ``model``).

    Parameters
    ----------
    f : Tensor
        Image(s), as the method's function takes them.
    mask : Tensor
        1 = known pixel, 0 = missing.
    method : str, optional
        A key of :data:`INPAINT_METHODS`.
    **options
        Keyword arguments of the method's function.

    Returns
    -------
    Tensor
        The inpainted image, shape of ``f``.

    Raises
    ------
    UserInputError
        For a method not in the table or an option the method does not take (the message names its options).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint
    >>> f = torch.tensor([[0.0, 0.0, 0.0, 3.0]] * 2, dtype=torch.float64)
    >>> mask = torch.tensor([[1.0, 0.0, 0.0, 1.0]] * 2)
    >>> inpaint(f, mask, tol=1e-12).round(decimals=8)      # diffusion: linear between the known columns
    tensor([[0., 1., 2., 3.],
            [0., 1., 2., 3.]], dtype=torch.float64)
    """
    return _lookup(INPAINT_METHODS, method, options, "inpaint").function(f, mask, **options)

