"""The codec's one table of inpainting operators: the id a file records, the name in
:data:`pdeflow.inpaint.OPERATORS`, and how its parameters are packed into the header's parameter bytes.

An operator of :data:`pdeflow.inpaint.OPERATORS` is stored by the codec once it has an entry here (a new id, never
reused): its parameters are its public function's options, each packed as an unsigned 16-bit integer in a stated
unit; the encoder writes their defaults (the function's own), the decoder passes them back to the function. Tonal
optimisation (the values stored for the operator) needs the operator's linear map or linearisation
(:attr:`pdeflow.inpaint.Operator.tonal`).
"""
from __future__ import annotations

import inspect
import struct
from dataclasses import dataclass, field

from ..inpaint import OPERATORS as INPAINT_OPERATORS
from .format import MAX_TOL_EXPONENT, CodecError

__all__ = ["CodecOperator", "OPERATORS", "BY_ID", "TONAL", "least_bytes"]

#: Settings of the tonal optimisation inside the encoder (CGLS iterations, its tolerance, the solves'; for a
#: nonlinear operator the iterations are per linearisation); chosen on selection crops (results page "Image
#: compression", "Encoder settings").
TONAL = {"tol": 1e-3, "max_iter": 10, "solve_tol": 1e-3}


@dataclass(frozen=True)
class CodecOperator:
    """One entry of :data:`OPERATORS`.

    Attributes
    ----------
    id : int
        The header's operator id (0 to 255).
    name : str
        The operator's name in :data:`pdeflow.inpaint.OPERATORS`.
    params : tuple of (str, int, int)
        Each parameter, in this order: the option of the operator's function, its unit's inverse (the value is
        stored as the unsigned 16-bit ``round(value * scale)``) and the least stored integer a file may hold.
    tonal : dict
        The encoder's tonal optimisation settings for it (:data:`TONAL` by default).
    values_per_byte : int
        The most image values (``C H W``) a file with this operator's inpainting layer may hold per byte of the
        file (:func:`least_bytes`): the decoder's work grows with the image, and a short file must not make it
        work long. Set by the operator's worst decoding time per pixel over its parameter range (the codec
        guide, "Robustness").
    max_tol_exponent : int
        The finest solver tolerance ``10**-t`` a file with this operator may ask for (at most the format's
        :data:`~pdeflow.codec.format.MAX_TOL_EXPONENT`): a nonlinear operator's iterations grow with it.

    Examples
    --------
    >>> from pdeflow.codec import OPERATORS
    >>> eed = OPERATORS["eed"]
    >>> eed.id, eed.pack(contrast=0.5, sigma=1.0).hex(), eed.unpack(bytes.fromhex("00800001"))
    (1, '00800001', {'contrast': 0.5000076295109483, 'sigma': 1.0})
    >>> eed.pack() == eed.pack(**eed.defaults())               # the operator's own defaults
    True
    """

    id: int
    name: str
    params: tuple = ()
    tonal: dict = field(default_factory=lambda: dict(TONAL))
    values_per_byte: int = 2048
    max_tol_exponent: int = MAX_TOL_EXPONENT

    def defaults(self) -> dict:
        """The parameters' defaults: those of the operator's public function."""
        sig = inspect.signature(INPAINT_OPERATORS[self.name].function).parameters
        return {option: sig[option].default for option, _, _ in self.params}

    def pack(self, **options) -> bytes:
        """The header's parameter bytes of ``options`` (the defaults for those not given)."""
        values = {**self.defaults(), **options}
        return b"".join(struct.pack("<H", int(round(values[o] * scale))) for o, scale, _ in self.params)

    def unpack(self, data: bytes) -> dict:
        """The options of the header's parameter bytes ``data``; :class:`CodecError` if they do not fit."""
        if len(data) != 2 * len(self.params):
            takes = f"{2 * len(self.params)} operator parameter bytes" if self.params else "no operator parameters"
            raise CodecError(f"decode: inpainting operator {self.name!r} takes {takes}, the header gives "
                             f"{len(data)} bytes")
        raw = struct.unpack(f"<{len(self.params)}H", data) if self.params else ()
        for (o, _, least), v in zip(self.params, raw):
            if v < least:
                raise CodecError(f"decode: inpainting operator {self.name!r} with {o} {v}, at least {least}")
        return {o: v / scale for (o, scale, _), v in zip(self.params, raw)}


#: The operators the codec stores, by name (a name of :data:`pdeflow.inpaint.OPERATORS`).
OPERATORS: dict[str, CodecOperator] = {op.name: op for op in (
    CodecOperator(0, "diffusion"),
    # contrast in units of 1/65535, the presmoothing in units of 1/256 pixel. A contrast below the default (0.01)
    # or a tolerance finer than the encoder's (1e-4) makes the lagged diffusivity run to its iteration limit:
    # refused, so that a file's decoding time stays bounded
    CodecOperator(1, "eed", (("contrast", 65535, 655), ("sigma", 256, 0)), values_per_byte=192, max_tol_exponent=4),
    # the Gaussian's scale in units of 1/256 pixel; sparse points make it blur at large scales
    CodecOperator(2, "shepard", (("sigma", 256, 1),), values_per_byte=256),
)}
#: The same entries by header id.
BY_ID: dict[int, CodecOperator] = {op.id: op for op in OPERATORS.values()}


def least_bytes(operator: CodecOperator, channels: int, height: int, width: int) -> int:
    """The smallest file with the inpainting layer of ``operator`` for an image of ``channels`` x ``height`` x
    ``width`` values: one byte per :attr:`CodecOperator.values_per_byte` values (a file of one known pixel, whose
    inpainting is a constant, is exempt: it decodes without a solve).

    Examples
    --------
    >>> from pdeflow.codec.operators import OPERATORS, least_bytes
    >>> least_bytes(OPERATORS["diffusion"], 1, 1024, 1024), least_bytes(OPERATORS["eed"], 3, 256, 256)
    (512, 1024)
    """
    return -(-channels * height * width // operator.values_per_byte)
