"""The inpainting operators, one module each, and the one table of them, :data:`OPERATORS`.

Homogeneous diffusion (:mod:`~pdeflow.inpaint.operators.diffusion`, its one linear system in
:mod:`~pdeflow.inpaint.operators.diffusion_system`), biharmonic, edge-enhancing diffusion, total variation and
Gaussian-weighted Shepard interpolation. :data:`OPERATORS` maps a name to an :class:`Operator`, which carries
everything the rest of the library asks of an operator: its checked public function (registered in
:data:`pdeflow.inpaint.INPAINT_METHODS` under the same name, so ``pdeflow.inpaint.inpaint(f, mask, method=name)``
and ``pdeflow inpaint --method NAME`` run it), its unchecked solve (which the mask methods call many times), its
densification stages and warm start (:func:`~pdeflow.inpaint.densify_mask`), and what tonal optimisation
(:func:`~pdeflow.inpaint.tonal.optimise_tonal`) needs: a linear map for a linear operator, a linearisation for a
nonlinear one. Their shared input checks are :mod:`pdeflow.inpaint.checks`; their filters :mod:`pdeflow.filters`.

An :class:`Operator` is the one place for every fact about an operator: besides the above, its declared options
(:class:`Option`: names, types, defaults, ranges, and how the codec packs those a file records), its reach for given
options, which option is relative to the image's range, whether it is local (no equation solved), its subdomain
tolerance and stopping measure on dask arrays, its clipping and how the codec stores it (:class:`Storage`). The
Dask path, the codec, the mask methods and the CLI read these fields and never compare an operator's name.
An operator is added by writing its module here and one entry in the table: :func:`pdeflow.inpaint.inpaint`,
the densification, tonal optimisation, :func:`pdeflow.dask.inpaint` and (with a :class:`Storage`) the codec's
table :data:`pdeflow.codec.CODEC_OPERATORS` then take it; an entry that lacks a field its kind needs is refused
when it is made (``ValueError``), never filled in with a guess.
"""
from __future__ import annotations

import inspect
from dataclasses import KW_ONLY, dataclass
from typing import Any, Callable

import torch

from . import biharmonic, diffusion, eed, shepard, tv

__all__ = ["Operator", "Option", "Storage", "OPERATORS", "STAGES", "MEASURES"]

#: Default densification stages of an operator (chosen on selection crops: results page "Sparse inpainting",
#: "Masks at 4K").
STAGES = 8
#: The stopping measures of the sweeps on dask arrays (:attr:`Operator.measure`): the relative residual of the
#: homogeneous diffusion system, or the largest change of a sweep relative to the range of the known values.
MEASURES = ("residual", "change")
#: Keyword parameters of an operator's function that are not options (it returns the image only, through the
#: tables).
NOT_OPTIONS = ("full_output",)


@dataclass(frozen=True)
class Option:
    """One option of an operator's public function: its declared schema.

    Attributes
    ----------
    name : str
        The keyword of the operator's function.
    default : object
        Its default (the function's own: :class:`Operator` checks the two agree when it is made).
    kind : type or tuple of type
        The types it takes (``None`` too when the default is None).
    low, high : float or None
        Its range, inclusive (None: unbounded).
    choices : tuple
        The values it takes, for an option of a few strings.
    packing : tuple of (int, int) or None
        How the codec records it in a file's header: ``(scale, least)``, the value stored as the unsigned 16-bit
        ``round(value * scale)`` and at least ``least``; None: a file does not record it.

    Examples
    --------
    >>> from pdeflow.inpaint import OPERATORS
    >>> OPERATORS["eed"].option("contrast")
    Option(name='contrast', default=0.01, kind=<class 'float'>, low=0.0, high=None, choices=(), packing=(65535, 655))
    """

    name: str
    default: Any
    kind: type | tuple = float
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    packing: tuple[int, int] | None = None


@dataclass(frozen=True)
class Storage:
    """How the codec stores an operator (:attr:`Operator.storage`): the facts of its entry in
    :data:`pdeflow.codec.CODEC_OPERATORS`.

    Attributes
    ----------
    id : int
        The header's operator id (0 to 255; a new operator takes a new id, never one used before).
    values_per_byte : int
        The most image values (``C H W``) a file with its inpainting layer may hold per byte of the file: the
        decoder's work grows with the image, and a short file must not make it work long (set by the operator's
        worst decoding time per pixel over its parameter range: the codec guide, "Robustness").
    max_tol_exponent : int or None
        The finest solver tolerance ``10**-t`` a file may ask for (a nonlinear operator's iterations grow with
        it); None: the format's largest.

    Examples
    --------
    >>> from pdeflow.inpaint import OPERATORS
    >>> OPERATORS["eed"].storage
    Storage(id=1, values_per_byte=192, max_tol_exponent=4)
    """

    id: int
    values_per_byte: int = 2048
    max_tol_exponent: int | None = None


@dataclass(frozen=True)
class Operator:
    """One entry of :data:`OPERATORS`: everything the library knows of an inpainting operator.

    Attributes
    ----------
    name : str
        The operator's name (``method=`` of :func:`~pdeflow.inpaint.inpaint`, ``operator=`` of
        :func:`~pdeflow.inpaint.densify_mask`).
    function : callable
        The checked public function ``function(f, mask, **options)``.
    solve : callable
        ``solve(f4, m, *, u0=None, tol=...) -> u``: the inpainting of ``f4`` (B, C, H, W) float32 or float64 from
        the binary mask ``m`` (B, 1, H, W) of its dtype, warm-started from ``u0``, unchecked.
    summary : str
        One line: what the operator does.
    differentiable : str
        What autograd gives: ``'f and mask'``, ``'f'`` or ``''`` (not differentiable).
    options : tuple of Option
        The declared options of :attr:`function` (every keyword-only parameter but ``full_output``, in its order).
    local : bool
        Whether it solves no equation (a normalised convolution): on dask arrays one pass over chunks grown by the
        overlap, no sweeps.
    stencil : int or None
        How far, in pixels, the values its equation reads at a pixel lie (with :attr:`presmoothing`:
        :meth:`reach`); required unless :attr:`local`.
    presmoothing : str or None
        The option that is the scale of a Gaussian presmoothing the equation's coefficients read (central
        differences of the smoothed image): it widens the reach by one plus the Gaussian's radius.
    relative : str or None
        The option given relative to the range of the image's known values (a subdomain of another range is
        given it scaled to the image's absolute value).
    clip : str or None
        The boolean option that clips the result to the range of the known values: on dask arrays the subdomains
        solve unclipped and the whole result is clipped once.
    subdomain_tol : float or None
        The tolerance of a subdomain solve on dask arrays (its ``tol``); required unless :attr:`local`.
    subdomain_eps : int or None
        The subdomain tolerance is at least this many units of roundoff of the data's dtype (float32 residuals
        stall near one unit); required unless :attr:`local`.
    measure : str or None
        The stopping measure of the sweeps on dask arrays, one of :data:`MEASURES`; required unless :attr:`local`.
    coarse : bool
        Whether its sweeps on dask arrays take the coarse correction of the homogeneous diffusion system between
        them (:mod:`pdeflow.dask.coarse`); needs the measure ``"residual"``, that system's.
    volumes : bool
        Whether it also inpaints volumes (B, C, D, H, W).
    diffusion_tol : bool
        Whether its option ``tol`` is the relative residual of homogeneous diffusion solves (``tol`` of
        :func:`~pdeflow.inpaint.inpaint_diffusion`, what ``pdeflow inpaint --tol`` sets), rather than a tolerance of
        its own.
    stages : int
        :func:`~pdeflow.inpaint.densify_mask`'s stages when none is given, for masks made for this operator.
    warm_start : callable or None
        ``warm_start() -> step``, ``step(f4, m, u, tol, stage) -> u``: a solve for a sequence of growing masks that
        keeps state between them (a multigrid hierarchy); None: :attr:`solve` warm-started from ``u``
        (:meth:`sequence` gives either).
    linear_map : callable or None
        For a linear operator that tonal optimisation serves: ``linear_map(m, shape, solve_tol)``, the map of
        stored values to their inpainting on the mask ``m``, with ``forward`` and ``adjoint``.
    linearise : callable or None
        For a nonlinear operator that tonal optimisation serves: ``linearise(g4, m, u, *, solve_tol, hierarchy)``,
        the operator frozen at the inpainting ``u`` of values ``g4``, a linear map as above (None for linear
        operators).
    storage : Storage or None
        How the codec stores it (its header id and limits); None: the codec does not store it.

    Raises
    ------
    ValueError
        When made with a field its kind needs missing or inconsistent (a non-local operator without its stencil,
        subdomain tolerance or measure; an option of :attr:`relative`, :attr:`presmoothing` or :attr:`clip` it
        does not declare; options that are not its function's, or defaults that are not its function's).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import OPERATORS
    >>> op = OPERATORS["eed"]
    >>> op.differentiable == "", op.volumes, op.relative, op.reach({}), op.reach({"sigma": 2.0})
    (True, False, 'contrast', 7, 10)
    >>> f = torch.linspace(0, 1, 64, dtype=torch.float64).reshape(1, 1, 8, 8)
    >>> m = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    >>> m[..., ::3, ::3] = 1
    >>> u = op.solve(f, m, tol=1e-8)
    >>> bool(torch.equal(u[m.expand_as(u) > 0], f[m > 0]))   # the known pixels are kept
    True
    """

    name: str
    function: Callable
    solve: Callable
    summary: str
    differentiable: str
    _: KW_ONLY
    options: tuple
    local: bool
    stencil: int | None = None
    presmoothing: str | None = None
    relative: str | None = None
    clip: str | None = None
    subdomain_tol: float | None = None
    subdomain_eps: int | None = None
    measure: str | None = None
    coarse: bool = False
    volumes: bool = False
    diffusion_tol: bool = False
    stages: int = STAGES
    warm_start: Callable | None = None
    linear_map: Callable | None = None
    linearise: Callable | None = None
    storage: Storage | None = None

    def __post_init__(self):
        problems = _problems(self)
        if problems:
            raise ValueError(f"inpainting operator {self.name!r}: " + "; ".join(problems))

    @property
    def tonal(self) -> bool:
        """Whether tonal optimisation serves the operator (it has a linear map or a linearisation)."""
        return self.linear_map is not None or self.linearise is not None

    @property
    def option_names(self) -> tuple[str, ...]:
        """The names of its options, in the order of its function's signature."""
        return tuple(o.name for o in self.options)

    def option(self, name: str) -> Option:
        """The declared option ``name``; ``KeyError`` naming its options if it has none of that name."""
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(f"inpainting operator {self.name!r} takes no option {name!r}; its options: "
                       f"{', '.join(self.option_names)}")

    def value(self, name: str, options: dict):
        """The value of option ``name`` in ``options``, its default where not given."""
        return options.get(name, self.option(name).default)

    def reach(self, options: dict) -> int:
        """How far, in pixels, its equation at a pixel reads for ``options``: the stencil's reach, and with a
        presmoothing one more for the central differences and the Gaussian's radius (``int(3.5 sigma + 0.5)``,
        :func:`pdeflow.filters.gaussian_blur`); 0 for a local operator."""
        if self.local:
            return 0
        reach = self.stencil
        if self.presmoothing is not None:
            reach += 1 + int(3.5 * float(self.value(self.presmoothing, options)) + 0.5)
        return reach

    def clips(self, options: dict) -> bool:
        """Whether the result for ``options`` is clipped to the range of the known values."""
        return self.clip is not None and bool(self.value(self.clip, options))

    def sequence(self) -> Callable:
        """A solve for a sequence of growing masks: ``step(f4, m, u, tol, stage) -> u`` (:attr:`warm_start`)."""
        if self.warm_start is not None:
            return self.warm_start()
        solve = self.solve

        def step(f4, m, u, tol, stage):
            return solve(f4, m, u0=u, tol=tol)

        return step


def _problems(op: Operator) -> list[str]:
    """What is missing or inconsistent in the entry ``op`` (empty: it may be registered)."""
    bad = []
    if not isinstance(op.name, str) or not op.name:
        bad.append("name must be a non-empty str")
    if not callable(op.function) or not callable(op.solve):
        bad.append("function and solve must be callable")
    if op.differentiable not in ("f and mask", "f", ""):
        bad.append(f"differentiable must be 'f and mask', 'f' or '', got {op.differentiable!r}")
    if not isinstance(op.local, bool):
        bad.append(f"local must be True or False, got {op.local!r}")
    if not isinstance(op.options, tuple) or not all(isinstance(o, Option) for o in op.options):
        return bad + ["options must be a tuple of Option (its function's declared options)"]
    names = [o.name for o in op.options]
    if callable(op.function):
        params = [p for p in inspect.signature(op.function).parameters.values()
                  if p.kind is p.KEYWORD_ONLY and p.name not in NOT_OPTIONS]
        if names != [p.name for p in params]:
            bad.append(f"options {tuple(names)} must be its function's keyword options "
                       f"{tuple(p.name for p in params)}, in order")
        else:
            bad += [f"option {o.name!r} declares the default {o.default!r}, its function {p.default!r}"
                    for o, p in zip(op.options, params) if o.default != p.default]
    if not op.local:
        if isinstance(op.stencil, bool) or not isinstance(op.stencil, int) or op.stencil < 1:
            bad.append(f"a non-local operator needs stencil, the pixels its equation reads (an int >= 1), got "
                       f"{op.stencil!r}")
        if not isinstance(op.subdomain_tol, float) or not op.subdomain_tol > 0:
            bad.append(f"a non-local operator needs subdomain_tol, its subdomain solves' tol (a float > 0), got "
                       f"{op.subdomain_tol!r}")
        if isinstance(op.subdomain_eps, bool) or not isinstance(op.subdomain_eps, int) or op.subdomain_eps < 1:
            bad.append(f"a non-local operator needs subdomain_eps, the least subdomain tolerance in units of "
                       f"roundoff (an int >= 1), got {op.subdomain_eps!r}")
        if op.measure not in MEASURES:
            bad.append(f"a non-local operator needs measure, one of {MEASURES}, got {op.measure!r}")
        if op.coarse and op.measure != "residual":
            bad.append(f"the coarse correction is the diffusion system's: it needs measure 'residual', got "
                       f"{op.measure!r}")
    for field_name, kind in (("relative", float), ("presmoothing", float), ("clip", bool)):
        option = getattr(op, field_name)
        if option is not None and (option not in names or not isinstance(op.options[names.index(option)].default,
                                                                           kind)):
            bad.append(f"{field_name} {option!r} must be one of its options with a {kind.__name__} default")
    if op.storage is not None:
        if not isinstance(op.storage, Storage) or not 0 <= op.storage.id <= 255:
            bad.append("storage must be a Storage with an id in [0, 255]")
    return bad


#: The inpainting operators by name.
OPERATORS: dict[str, Operator] = {op.name: op for op in (
    Operator("diffusion", diffusion.inpaint_diffusion, diffusion.solve_unchecked, "homogeneous diffusion: the Laplace "
             "equation on the unknown pixels", "f and mask", options=(
                 Option("tol", 1e-6, float, low=0.0), Option("max_iter", None, int, low=1),
                 Option("x0", None, torch.Tensor), Option("solver", "mg", str, choices=diffusion.SOLVERS),
                 Option("continuous", False, bool), Option("ndim", None, int, choices=(2, 3)),
                 Option("spacing", None, (float, tuple))),
             local=False, stencil=1, subdomain_tol=1e-9, subdomain_eps=16, measure="residual", coarse=True,
             volumes=True,
             diffusion_tol=True, warm_start=diffusion.warm_start, linear_map=diffusion.DiffusionMap,
             storage=Storage(0)),
    # biharmonic's thirteen-point stencil reads two pixels out
    Operator("biharmonic", biharmonic.inpaint_biharmonic, biharmonic.solve_unchecked, "biharmonic: the "
             "bi-Laplace equation on the unknown pixels (scikit-image's inpaint_biharmonic)", "f and mask", options=(
                 Option("tol", 1e-8, float, low=0.0), Option("max_iter", None, int, low=1),
                 Option("solver", "auto", str, choices=biharmonic.SOLVERS), Option("x0", None, torch.Tensor),
                 Option("clip", True, bool), Option("ndim", None, int, choices=(2, 3)),
                 Option("spacing", None, (float, tuple))),
             local=False, stencil=2, clip="clip", subdomain_tol=1e-9, subdomain_eps=16, measure="change",
             volumes=True),
    # EED's masks gain from twice the stages on selection crops, homogeneous diffusion's do not (results page
    # "Inpainting operators"). Its stencil reads the tensor on the neighbours (2), the tensor central differences
    # of the presmoothed image. Its float32 subdomain residuals, scaled by the diagonal, reach four units of
    # roundoff without stalling, which its blocks need to be within 1e-4 of the converged answer. The codec
    # stores the contrast in units of 1/65535 and the presmoothing in 1/256 pixel; a contrast below the default
    # (0.01) or a tolerance finer than the encoder's (1e-4) makes the lagged diffusivity run to its iteration
    # limit: refused, so that a file's decoding time stays bounded
    Operator("eed", eed.inpaint_eed, eed.solve_unchecked, "edge-enhancing diffusion: smoothing along edges, not "
             "across them (R-EED's steady state)", "", options=(
                 Option("contrast", eed.CONTRAST, float, low=0.0, packing=(65535, 655)),
                 Option("sigma", eed.SIGMA, float, low=0.0, packing=(256, 0)),
                 Option("tol", 1e-3, float, low=0.0), Option("max_iter", 100, int, low=1),
                 Option("x0", None, torch.Tensor), Option("overwrite_f", False, bool)),
             local=False, stencil=2, presmoothing="sigma", relative="contrast", subdomain_tol=1e-8,
             subdomain_eps=4, measure="change", stages=16, linearise=eed.linearised,
             storage=Storage(1, values_per_byte=192, max_tol_exponent=4)),
    # the diffusivity on the stencil's neighbours reads their own neighbours
    Operator("tv", tv.inpaint_tv, tv.solve_unchecked, "total variation: the least total variation that keeps the "
             "known pixels", "f", options=(
                 Option("eps", tv.EPS, float, low=0.0), Option("tol", 1e-3, float, low=0.0),
                 Option("max_iter", 300, int, low=1)),
             local=False, stencil=2, relative="eps", subdomain_tol=1e-8, subdomain_eps=16, measure="change"),
    # the codec stores the Gaussian's scale in units of 1/256 pixel; sparse points make it blur at large scales
    Operator("shepard", shepard.inpaint_shepard, shepard.solve_unchecked, "Gaussian-weighted Shepard "
             "interpolation: the normalised convolution of the known pixels, no equation solved", "f and mask",
             options=(Option("sigma", shepard.SIGMA, float, low=0.0, packing=(256, 1)),
                      Option("tol", 1e-3, float, low=0.0)),
             local=True, linear_map=shepard.linear_map, storage=Storage(2, values_per_byte=256)),
)}
