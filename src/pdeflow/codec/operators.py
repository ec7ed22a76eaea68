"""The codec's table of inpainting operators, :data:`CODEC_OPERATORS`: the operators of
:data:`pdeflow.inpaint.OPERATORS` that carry a :class:`~pdeflow.inpaint.operators.Storage` (the id a file records
and its limits), each with how its parameters are packed into the header's parameter bytes.

The table is built from :data:`pdeflow.inpaint.OPERATORS` whenever it is read, so an operator registered there with
a storage is stored by the codec at once: its parameters are the options whose declared schema has a ``packing``
(:class:`~pdeflow.inpaint.operators.Option`), each packed as an unsigned 16-bit integer in a stated unit; the
encoder writes their defaults (the schema's, which are the function's own), the decoder passes them back to the
function. Tonal optimisation (the values stored for the operator) needs the operator's linear map or linearisation
(:attr:`pdeflow.inpaint.Operator.tonal`). A name becomes its entry once, where it enters the codec
(:func:`codec_operator`); inside, the codec passes entries.
"""
from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UserInputError
from ..inpaint import OPERATORS as INPAINT_OPERATORS
from .format import MAX_TOL_EXPONENT, CodecError

__all__ = ["CodecOperator", "CODEC_OPERATORS", "BY_ID", "TONAL", "codec_operator", "least_bytes"]

#: Settings of the tonal optimisation inside the encoder (CGLS iterations, its tolerance, the solves'; for a
#: nonlinear operator the iterations are per linearisation); chosen on selection crops (results page "Image
#: compression", "Encoder settings").
TONAL = {"tol": 1e-3, "max_iter": 10, "solve_tol": 1e-3}


@dataclass(frozen=True)
class CodecOperator:
    """One entry of :data:`CODEC_OPERATORS`: an inpainting operator as the codec stores it.

    Attributes
    ----------
    operator : pdeflow.inpaint.operators.Operator
        Its entry of :data:`pdeflow.inpaint.OPERATORS` (with a :attr:`~pdeflow.inpaint.Operator.storage`).
    id : int
        The header's operator id (0 to 255).
    name : str
        The operator's name.
    params : tuple of (str, int, int)
        Each parameter, in this order: the option of the operator's function, its unit's inverse (the value is
        stored as the unsigned 16-bit ``round(value * scale)``) and the least stored integer a file may hold
        (the options of its schema with a ``packing``).
    tonal : dict
        The encoder's tonal optimisation settings for it (:data:`TONAL`).
    values_per_byte : int
        The most image values (``C H W``) a file with this operator's inpainting layer may hold per byte of the
        file (:func:`least_bytes`).
    max_tol_exponent : int
        The finest solver tolerance ``10**-t`` a file with this operator may ask for (at most the format's
        :data:`~pdeflow.codec.format.MAX_TOL_EXPONENT`).

    Examples
    --------
    >>> from pdeflow.codec import CODEC_OPERATORS
    >>> eed = CODEC_OPERATORS["eed"]
    >>> eed.id, eed.pack(contrast=0.5, sigma=1.0).hex(), eed.unpack(bytes.fromhex("00800001"))
    (1, '00800001', {'contrast': 0.5000076295109483, 'sigma': 1.0})
    >>> eed.pack() == eed.pack(**eed.defaults())               # the operator's own defaults
    True
    """

    operator: object      # an Operator (pdeflow.inpaint.OPERATORS' entry type)

    def __post_init__(self):
        if self.operator.storage is None:
            raise ValueError(f"inpainting operator {self.operator.name!r} has no storage: the codec does not store it")

    @property
    def id(self) -> int:
        return self.operator.storage.id

    @property
    def name(self) -> str:
        return self.operator.name

    @property
    def params(self) -> tuple:
        return tuple((o.name, *o.packing) for o in self.operator.options if o.packing is not None)

    @property
    def tonal(self) -> dict:
        return TONAL

    @property
    def values_per_byte(self) -> int:
        return self.operator.storage.values_per_byte

    @property
    def max_tol_exponent(self) -> int:
        t = self.operator.storage.max_tol_exponent
        return MAX_TOL_EXPONENT if t is None else min(t, MAX_TOL_EXPONENT)

    def defaults(self) -> dict:
        """The parameters' defaults: those of the operator's declared options."""
        return {o: self.operator.option(o).default for o, _, _ in self.params}

    def pack(self, **options) -> bytes:
        """The header's parameter bytes of ``options`` (the defaults for those not given)."""
        values = {**self.defaults(), **options}
        return b"".join(struct.pack("<H", int(round(values[o] * scale))) for o, scale, _ in self.params)

    def unpack(self, data: bytes) -> dict:
        """The options of the header's parameter bytes ``data``; :class:`CodecError` if they do not fit."""
        params = self.params
        if len(data) != 2 * len(params):
            takes = f"{2 * len(params)} operator parameter bytes" if params else "no operator parameters"
            raise CodecError(f"decode: inpainting operator {self.name!r} takes {takes}, the header gives "
                             f"{len(data)} bytes")
        raw = struct.unpack(f"<{len(params)}H", data) if params else ()
        for (o, _, least), v in zip(params, raw):
            if v < least:
                raise CodecError(f"decode: inpainting operator {self.name!r} with {o} {v}, at least {least}")
        return {o: v / scale for (o, scale, _), v in zip(params, raw)}


class _Stored(Mapping):
    """The operators of :data:`pdeflow.inpaint.OPERATORS` with a storage, as that table holds them when asked,
    keyed by ``key(entry)``."""

    def __init__(self, key):
        self._key = key

    def _entries(self) -> dict:
        entries = [CodecOperator(op) for op in INPAINT_OPERATORS.values() if op.storage is not None]
        return {self._key(e): e for e in entries}

    def __getitem__(self, key):
        return self._entries()[key]

    def __iter__(self):
        return iter(self._entries())

    def __len__(self):
        return len(self._entries())

    def __repr__(self):
        return repr(self._entries())


#: The operators the codec stores, by name (the operators of :data:`pdeflow.inpaint.OPERATORS` with a storage).
CODEC_OPERATORS: Mapping[str, CodecOperator] = _Stored(lambda e: e.name)
#: The same entries by header id.
BY_ID: Mapping[int, CodecOperator] = _Stored(lambda e: e.id)


def codec_operator(operator, who: str) -> CodecOperator:
    """The entry of ``operator``, a name of :data:`CODEC_OPERATORS` or an entry already: where a name enters the
    codec; :class:`~pdeflow.errors.UserInputError` naming the stored operators for any other value.

    Examples
    --------
    >>> from pdeflow.codec.operators import codec_operator
    >>> codec_operator("eed", "encode").id
    1
    >>> codec_operator("tv", "encode")
    Traceback (most recent call last):
    ...
    pdeflow.errors.UserInputError: encode: operator must be one of 'diffusion', 'eed', 'shepard', got 'tv'
    """
    if isinstance(operator, CodecOperator):
        return operator
    table = dict(CODEC_OPERATORS)
    if not isinstance(operator, str) or operator not in table:
        raise UserInputError(f"{who}: operator must be one of {', '.join(map(repr, table))}, got {operator!r}")
    return table[operator]


def least_bytes(operator: CodecOperator, channels: int, height: int, width: int) -> int:
    """The smallest file with the inpainting layer of ``operator`` for an image of ``channels`` x ``height`` x
    ``width`` values: one byte per :attr:`CodecOperator.values_per_byte` values (a file of one known pixel, whose
    inpainting is a constant, is exempt: it decodes without a solve).

    Examples
    --------
    >>> from pdeflow.codec.operators import CODEC_OPERATORS, least_bytes
    >>> least_bytes(CODEC_OPERATORS["diffusion"], 1, 1024, 1024), least_bytes(CODEC_OPERATORS["eed"], 3, 256, 256)
    (512, 1024)
    """
    return -(-channels * height * width // operator.values_per_byte)
