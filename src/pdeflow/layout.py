"""The one rule for array layouts, followed by every public function that takes an image.

pdeflow computes on channels first: images ``(H, W)``, ``(C, H, W)``, ``(B, C, H, W)``; volumes (with
``ndim=3``) ``(D, H, W)``, ``(C, D, H, W)``, ``(B, C, D, H, W)``. scikit-image, imageio and Pillow return colour
images channels last, ``(H, W, 3)`` or ``(H, W, 4)``. :func:`read_layout` decides where the channels of an
argument are (and says so with a :class:`ChannelsWarning` where the call did not); :func:`follows_layout_rule`
makes a public function apply it, take ``channel_axis`` and return its results in the layout it was given.
:mod:`pdeflow.ops` exports the same names beside the one image check.
"""
from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import warnings
from dataclasses import dataclass
from numbers import Real

import torch

from .errors import UserInputError

__all__ = ["read_layout", "Layout", "ChannelsWarning", "follows_layout_rule", "layout_message", "MAX_IMAGE_CHANNELS",
           "LAST_AXIS_CHANNELS"]

#: Most channels of an image: a 3-D array whose first axis is longer, read as ``(C, H, W)`` because the call
#: gave no ``ndim=3``, is probably a volume ``(D, H, W)``, and :func:`read_layout` says so.
MAX_IMAGE_CHANNELS = 4

#: Channel counts of a channels-last image ``(H, W, C)`` as scikit-image, imageio and Pillow return one: RGB
#: and RGBA.
LAST_AXIS_CHANNELS = (3, 4)

# set while a public function that follows the rule runs: the calls it makes inside get arrays already in the
# layout the rule chose (and must not be read a second time)
_LAYOUT_READ: contextvars.ContextVar[bool] = contextvars.ContextVar("pdeflow_layout_read", default=False)


class ChannelsWarning(UserWarning):
    """An array's channel axis was read by the layout rule (:func:`read_layout`), not said by the call: a 3-D
    array ``(H, W, 3)`` or ``(H, W, 4)`` read as channels last, or a 3-D array of more than
    :data:`MAX_IMAGE_CHANNELS` leading entries read as the channels of a 2-D image ``(C, H, W)``. The message
    says what was assumed and which argument says otherwise (``channel_axis``, ``ndim``).

    Examples
    --------
    >>> from pdeflow.layout import ChannelsWarning
    >>> issubclass(ChannelsWarning, UserWarning)
    True
    """


@dataclass(frozen=True)
class Layout:
    """Where the channels of an input were (:func:`read_layout`), and how to give results back in that layout.

    Attributes
    ----------
    channels_last : bool
        The input had its channels on the last axis (``(H, W, C)``, ``(B, H, W, C)``; volumes ``(D, H, W, C)``,
        ``(B, D, H, W, C)``); the function computed on it with the channels first.
    shape : tuple of int
        The input's shape with the channels first (as the function computed on it).
    spatial : int
        The number of spatial axes (2, or 3 for volumes).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.layout import read_layout
    >>> x, layout = read_layout(torch.zeros(8, 6, 3), "f", channel_axis=-1)
    >>> tuple(x.shape), tuple(layout.restore(x).shape)
    ((3, 8, 6), (8, 6, 3))
    """

    channels_last: bool = False
    shape: tuple = ()
    spatial: int = 2

    def restore(self, out):
        """``out`` with the channel axis of every image-like tensor in it moved back to the end: a tensor whose
        trailing axes are ``(C or 1, *spatial)`` becomes ``(..., *spatial, C or 1)``, a vector field
        ``(..., C, spatial, *spatial)`` becomes ``(..., spatial, *spatial, C)``; tuples, lists, dicts and
        dataclasses are restored entry by entry, anything else is returned as it is. The identity unless
        :attr:`channels_last`."""
        if not self.channels_last:
            return out
        if isinstance(out, torch.Tensor):
            return self._tensor(out)
        if isinstance(out, tuple):
            items = [self.restore(v) for v in out]
            return type(out)(*items) if hasattr(out, "_fields") else tuple(items)
        if isinstance(out, list):
            return [self.restore(v) for v in out]
        if isinstance(out, dict):
            return {k: self.restore(v) for k, v in out.items()}
        if dataclasses.is_dataclass(out) and not isinstance(out, type):
            changes = {f.name: self.restore(getattr(out, f.name)) for f in dataclasses.fields(out) if f.init}
            return dataclasses.replace(out, **changes)
        return out

    def arrange(self, x):
        """A companion array of the input (a mask, a second image) given in the input's layout, with its
        channel axis moved first as the input's was; one without that axis (``(H, W)``, or fewer axes than the
        input) is returned as it is."""
        if not self.channels_last or not hasattr(x, "shape") or len(x.shape) != len(self.shape):
            return x
        n = self.spatial
        moved = tuple(x.shape[-n - 1:-1]) == tuple(self.shape[-n:])
        return torch.as_tensor(x).movedim(-1, -n - 1) if moved else x

    def _tensor(self, t: torch.Tensor) -> torch.Tensor:
        n = self.spatial
        spatial, C = tuple(self.shape[-n:]), self.shape[-n - 1]
        if t.dim() < n + 1 or tuple(t.shape[-n:]) != spatial:
            return t
        if t.shape[-n - 1] in (C, 1):
            return t.movedim(-n - 1, -1).contiguous()
        if t.dim() >= n + 2 and t.shape[-n - 1] == n and t.shape[-n - 2] == C:
            return t.movedim(-n - 2, -1).contiguous()
        return t


def _spatial_axes_of(ndim, spacing) -> int:
    if ndim == 3:
        return 3
    if ndim is None and spacing is not None and not isinstance(spacing, Real):
        try:
            return 3 if len(spacing) == 3 else 2
        except TypeError:
            return 2
    return 2


def layout_message(kind: str, who: str, name: str, shape: tuple, *, volumes: bool = True) -> str:
    """The one wording of the layout rule's notices (:class:`ChannelsWarning`): ``kind`` ``"last"`` for a 3-D
    array read as channels last, ``"channels"`` for one read as the channels of a 2-D image; ``volumes``:
    the function also takes volumes (``ndim=3``).

    Examples
    --------
    >>> from pdeflow.layout import layout_message
    >>> print(layout_message("last", "rof", "f", (32, 24, 3)))  # doctest: +NORMALIZE_WHITESPACE
    rof: f of shape (32, 24, 3) is taken as a 32x24 image with 3 channels last (H, W, C), the layout of
    scikit-image, imageio and Pillow, and the result has that layout; pass channel_axis=-1 to say so, or
    channel_axis=0 for 32 channels of 24x3 pixels (C, H, W)
    >>> print(layout_message("channels", "rof", "f", (96, 64, 64)))  # doctest: +NORMALIZE_WHITESPACE
    rof: f of shape (96, 64, 64) is taken as 96 channels of a 2-D image (C, H, W); pass ndim=3 for a volume
    (D, H, W), or channel_axis=0 to say so
    """
    shape = tuple(shape)
    if kind == "last":
        H, W, C = shape[-3:]
        return (f"{who}: {name} of shape {shape} is taken as a {H}x{W} image with {C} channels last (H, W, C), the "
                f"layout of scikit-image, imageio and Pillow, and the result has that layout; pass channel_axis=-1 "
                f"to say so, or channel_axis=0 for {H} channels of {W}x{C} pixels (C, H, W)")
    head = f"{who}: {name} of shape {shape} is taken as {shape[0]} channels of a 2-D image (C, H, W)"
    if volumes:
        return head + "; pass ndim=3 for a volume (D, H, W), or channel_axis=0 to say so"
    return head + f" ({who} takes 2-D images only); pass channel_axis=0 to say so"


def read_layout(u, name: str = "u", *, ndim: int | None = None, spacing=None, channel_axis: int | None = None,
                who: str | None = None, volumes: bool = True, stacklevel: int = 2):
    """The library's one rule for where the channels of an array are; ``(u with its channels first, Layout)``.

    Images are ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` (volumes, with ``ndim=3`` or a 3-element
    ``spacing``: ``(D, H, W)``, ``(C, D, H, W)``, ``(B, C, D, H, W)``). The rule for ``channel_axis=None``
    (what the call did not say):

    * a 3-D array ``(H, W, C)`` with ``C`` 3 or 4 and ``H`` > :data:`MAX_IMAGE_CHANNELS` (an RGB or RGBA image
      as scikit-image, imageio and Pillow return it) of a 2-D call is read **channels last**: the function
      computes on ``(C, H, W)`` and returns its results in the layout it was given
      (:meth:`Layout.restore`), with a :class:`ChannelsWarning`;
    * any other 3-D array of more than :data:`MAX_IMAGE_CHANNELS` leading entries, in a call that gave neither
      ``ndim`` nor ``spacing``, is read as ``(C, H, W)``, with a :class:`ChannelsWarning` that it may be a
      volume (``ndim=3``);
    * everything else is read as documented above, silently; in particular ``(B, C, H, W)`` always.

    An explicit ``channel_axis`` says the layout and silences the notices: the axis that holds the channels,
    either the one before the spatial axes (``0`` for ``(C, H, W)``, ``1`` for ``(B, C, H, W)``; any
    equivalent negative index) or the last one (``-1``: ``(H, W, C)``, ``(B, H, W, C)``, volumes
    ``(D, H, W, C)``, ``(B, D, H, W, C)``). NumPy arrays and lists follow the same rule as tensors.

    Parameters
    ----------
    u : Tensor, ndarray or list
        The image (returned as it is unless its channels were last; then as a tensor, channels first).
    name : str
        The argument's name, for messages.
    ndim, spacing : optional
        The call's own arguments (None: not given): which makes the call 3-D, and whether it said so.
    channel_axis : int, optional
        The call's ``channel_axis``.
    who : str, optional
        The function, for messages.
    volumes : bool
        The function takes volumes (``ndim=3``); the notice for a 3-D array read as channels then says so.
    stacklevel : int
        Passed to :func:`warnings.warn` (2: the caller of :func:`read_layout`).

    Returns
    -------
    u : Tensor, ndarray or list
        The input, its channels first.
    layout : Layout
        Where they were: :meth:`Layout.restore` gives a result back in the input's layout.

    Raises
    ------
    pdeflow.errors.UserInputError
        ``channel_axis`` is not an int naming the axis before the spatial axes or the last axis of ``u``.

    Examples
    --------
    >>> import warnings, torch
    >>> from pdeflow.layout import read_layout
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     x, layout = read_layout(torch.zeros(32, 24, 3), "f", who="example")
    >>> tuple(x.shape), layout.channels_last, caught[0].category.__name__
    ((3, 32, 24), True, 'ChannelsWarning')
    >>> x, layout = read_layout(torch.zeros(32, 24, 3), "f", channel_axis=0)    # said: 32 channels
    >>> tuple(x.shape), layout.channels_last
    ((32, 24, 3), False)
    """
    who = who or "pdeflow"
    n = _spatial_axes_of(ndim, spacing)
    shape = getattr(u, "shape", None)
    if shape is None and isinstance(u, (list, tuple)):
        try:
            shape = torch.as_tensor(u).shape
        except (TypeError, ValueError, RuntimeError):
            shape = None
    if shape is None:
        if channel_axis is not None:
            _channel_axis(channel_axis, (), n, name, who)
        return u, Layout()
    shape = tuple(int(s) for s in shape)
    if channel_axis is None:
        if len(shape) != 3 or n != 2 or shape[0] <= MAX_IMAGE_CHANNELS:
            return u, Layout()
        if shape[-1] in LAST_AXIS_CHANNELS:
            warnings.warn(layout_message("last", who, name, shape, volumes=volumes), ChannelsWarning,
                          stacklevel=stacklevel)
            return _channels_first(u, name, who, n)
        if ndim is None and spacing is None:
            warnings.warn(layout_message("channels", who, name, shape, volumes=volumes), ChannelsWarning,
                          stacklevel=stacklevel)
        return u, Layout()
    if _channel_axis(channel_axis, shape, n, name, who):
        return _channels_first(u, name, who, n)
    return u, Layout()


def _channel_axis(channel_axis, shape: tuple, n: int, name: str, who: str) -> bool:
    """Whether ``channel_axis`` says channels last for an array of ``shape`` with ``n`` spatial axes (False:
    channels first); refuses any other value."""
    d = len(shape)
    first = d - n - 1
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, int):
        raise UserInputError(f"{who}: channel_axis must be None or an int (0: channels first, -1: channels last), "
                             f"got {channel_axis!r}")
    if d not in (n + 1, n + 2):
        raise UserInputError(f"{who}: channel_axis={channel_axis} needs {name} with a channel axis: "
                             f"{n + 1} or {n + 2} axes for {n} spatial axes, got shape {shape}; pass "
                             "channel_axis=None for an array without one")
    if not -d <= channel_axis < d or channel_axis % d not in (first, d - 1):
        raise UserInputError(f"{who}: channel_axis must be {first} or {first - d} (channels first) or -1 (channels "
                             f"last) for {name} of shape {shape}, got {channel_axis}")
    return channel_axis % d == d - 1 and first != d - 1


def _channels_first(u, name: str, who: str, n: int):
    if not isinstance(u, torch.Tensor) and hasattr(u, "__array__") and hasattr(u, "transpose"):
        # an array stays one of its kind (a NumPy masked array keeps its mask); the function converts it
        d = len(u.shape)
        x = u.transpose([*range(d - n - 1), d - 1, *range(d - n - 1, d - 1)])
        return x, Layout(True, tuple(int(s) for s in x.shape), n)
    try:
        t = u if isinstance(u, torch.Tensor) else torch.as_tensor(u)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UserInputError(f"{who}: {name} must be a torch.Tensor, a NumPy array or a list of numbers, "
                             f"got {type(u).__name__} ({exc})") from None
    x = t.movedim(-1, -n - 1).contiguous()
    return x, Layout(True, tuple(x.shape), n)


def follows_layout_rule(image: str = "f", *, also: tuple[str, ...] = (), volumes: bool | None = None):
    """Decorator: the public function follows the layout rule (:func:`read_layout`) for its argument
    ``image``, takes a keyword-only ``channel_axis`` that says the layout, and returns its results in the
    layout it was given.

    The arguments named in ``also`` (a mask, a second image) are taken in the image's layout
    (:meth:`Layout.arrange`). The function's ``ndim`` and ``spacing`` keywords, where it has them, decide
    whether the call is 3-D; ``volumes`` (default: whether it has them) whether it takes volumes. Calls made
    while such a function runs (one public function calling another) take their arrays as they are. The
    parameter is documented in the function's docstring (not added to its signature, whose keyword-only
    parameters are a method's options in the tables of :mod:`pdeflow.inpaint`).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.layout import follows_layout_rule
    >>> @follows_layout_rule("f")
    ... def channel_means(f):
    ...     return f.mean((-2, -1), keepdim=True).expand_as(f)
    >>> channel_means(torch.zeros(8, 6, 3), channel_axis=-1).shape
    torch.Size([8, 6, 3])
    """
    def decorate(fn):
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        pos = names.index(image)
        takes_dims = "ndim" in names or "spacing" in names or any(
            p.kind is p.VAR_KEYWORD for p in sig.parameters.values())      # passed on (spectral_tv to tv_flow)
        declared = "channel_axis" in names

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            channel_axis = kwargs.get("channel_axis") if declared else kwargs.pop("channel_axis", None)
            if _LAYOUT_READ.get():
                return fn(*args, **kwargs)
            in_args = len(args) > pos
            u = args[pos] if in_args else kwargs.get(image)
            if u is None:
                return fn(*args, **kwargs)
            u, layout = read_layout(u, image, ndim=kwargs.get("ndim") if takes_dims else None,
                                    spacing=kwargs.get("spacing") if takes_dims else None,
                                    channel_axis=channel_axis, who=fn.__name__,
                                    volumes=takes_dims if volumes is None else volumes, stacklevel=3)
            if layout.channels_last:
                args = list(args)
                if in_args:
                    args[pos] = u
                else:
                    kwargs[image] = u
                for other in also:      # a parameter, or an option passed on in **kwargs
                    i = names.index(other) if other in names else len(args)
                    if len(args) > i:
                        args[i] = layout.arrange(args[i])
                    elif other in kwargs:
                        kwargs[other] = layout.arrange(kwargs[other])
            token = _LAYOUT_READ.set(True)
            try:
                out = fn(*args, **kwargs)
            finally:
                _LAYOUT_READ.reset(token)
            return layout.restore(out)

        if not declared:
            # documented, not added to the signature: the tables of methods and operators take a function's
            # keyword-only parameters as its options, and channel_axis is none
            wrapper.__doc__ = _document_channel_axis(fn.__doc__, image)
        return wrapper
    return decorate


def _document_channel_axis(doc: str | None, image: str) -> str | None:
    """``doc`` with the ``channel_axis`` entry at the end of its numpydoc Parameters section."""
    if not doc:
        return doc
    lines = doc.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Parameters"
                     and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"})
    except StopIteration:
        return doc
    indent = lines[start][:len(lines[start]) - len(lines[start].lstrip())]
    # the section ends at the next numpydoc header (a line over a line of dashes), or at the end
    end = next((i for i in range(start + 2, len(lines) - 1)
                if lines[i].strip() and lines[i + 1].strip() and set(lines[i + 1].strip()) == {"-"}), len(lines))
    while end > start + 2 and not lines[end - 1].strip():
        end -= 1
    entry = [f"{indent}channel_axis : int, optional",
             f"{indent}    Where the channels of ``{image}`` are: the axis before the spatial ones (``0`` for "
             "``(C, H, W)``),",
             f"{indent}    or ``-1``: channels last, ``(H, W, C)``, the layout of scikit-image, imageio and "
             "Pillow; the result",
             f"{indent}    then has that layout too. Default: the layout rule of :func:`pdeflow.layout.read_layout` "
             "(a 3-D",
             f"{indent}    ``(H, W, 3)`` or ``(H, W, 4)`` is read channels last, with a "
             ":class:`~pdeflow.layout.ChannelsWarning`)."]
    return "\n".join(lines[:end] + entry + lines[end:])

