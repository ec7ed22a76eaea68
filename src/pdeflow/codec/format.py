"""The codec's file format, versions 1 and 2: a fixed header, then the range coder's words (version 2: the
inpainting layer, the residual layer, or both).

All integers are little-endian and unsigned unless marked signed. Offsets are in bytes.

========  ======  ==================================================================================
offset    size    field
========  ======  ==================================================================================
0         4       magic ``b"PDFc"``
4         1       format version (1)
5         4       CRC-32 (:func:`zlib.crc32`) of every byte from offset 9 to the end of the file
9         2       height ``H`` (at least 2)
11        2       width ``W`` (at least 2)
13        1       channels ``C``: 1 (grey) or 3 (colour), plus :data:`CHANNELS_LAST` (bit 7) where the image
                  was given channels last, ``(H, W, C)``: :func:`~pdeflow.codec.decode` returns that
                  layout (a file without the bit, as every file before it, decodes to ``(C, H, W)``)
14        1       bit depth of the source image: 8 or 16
15        1       colour transform: 0 none (``C = 1``), 1 the orthonormal luma-chroma transform of
                  :mod:`pdeflow.codec.colour` (``C = 3``)
16        1       inpainting operator (the ids of :data:`pdeflow.codec.CODEC_OPERATORS`, names of
                  :data:`pdeflow.inpaint.OPERATORS`): 0 homogeneous diffusion, 1 edge-enhancing diffusion,
                  2 Gaussian-weighted Shepard interpolation; a later operator gets the next id and its own
                  parameter bytes
17        1       ``P``: number of operator parameter bytes (at most :data:`MAX_OPERATOR_BYTES`)
18        P       operator parameters (none for homogeneous diffusion)
18+P      1       solver tolerance exponent ``t``: the decoder solves to relative residual ``10**-t``
                  (1 to :data:`MAX_TOL_EXPONENT`)
19+P      1       lattice step ``s`` (1 to 16): known pixels lie on the rows and columns that are
                  multiples of ``s``; the mask is coded on the lattice grid ``ceil(H/s) x ceil(W/s)``
20+P      4       ``K``: number of known pixels (1 to the lattice grid's size)
24+P      6 C     per channel: ``q`` (2 to 65535 quantisation levels), ``lo``, ``hi`` (signed,
                  units of 1/8192, ``lo < hi``): the stored value of level ``i`` is
                  ``lo + i (hi - lo) / (q - 1)``, in the channel's units (see the colour transform)
24+P+6C   4 n     payload: ``n >= 1`` 32-bit words of a range coder (constriction's ``RangeEncoder``)
========  ======  ==================================================================================

Version 2 (:data:`FORMAT_VERSION`) is version 1 with the version byte 2 and, after the per-channel fields,
the layers of the file:

========  ======  ==================================================================================
offset    size    field
========  ======  ==================================================================================
24+P+6C   1       ``layers``: bit 0 the inpainting layer (the mask and values above), bit 1 the residual
                  layer (:mod:`pdeflow.codec.residual`); 2 or 3 (a file of the inpainting layer alone is
                  written as version 1). Without the inpainting layer ``K`` is 0 and the operator (the one
                  the encoder was asked for), tolerance, lattice and per-channel fields are written but not
                  used
25+P+6C   4       with both layers: ``n``, the inpainting payload's 32-bit words, which follow (``4 n`` bytes)
...       4       the residual section to the end of the file: wavelet levels (1 byte), quantisation step
                  (unsigned 16 bit, units of 1/65536), reconstruction offset (1 byte, units of 1/256), then
                  at least one 32-bit word of the range coder; at least
                  :data:`~pdeflow.codec.residual.MIN_BYTES_PER_PIXEL` bytes per coefficient ``C H W``
========  ======  ==================================================================================

The decoded image is the inpainting (0 without that layer) plus the residual layer's inverse wavelet transform
(in the luma-chroma channels for colour), clipped to [0, 1].

The payload codes, in this order, the mask (:func:`pdeflow.codec.entropy.encode_mask`: the counts of a
k-d tree of the lattice grid, context-adaptive) and then each channel's quantised values in the mask's
Morton order (:func:`pdeflow.codec.entropy.encode_values`: the level indices themselves, with an adaptive
histogram; not residuals of a prediction, see :mod:`pdeflow.codec.entropy`).

Robustness. :func:`read_header` checks every field against the limits above and the decoder's pixel
limit (``H W <= max_pixels``, default :data:`MAX_PIXELS`) before anything is allocated; the CRC
catches accidental damage; everything the decoder allocates is bounded by ``H W`` and ``K``, and every
loop by the tree depth (``2 log2`` of the grid's side) or ``K``. Before decoding, the decoder refuses a header
whose ``K`` values of ``q`` levels cannot be coded in the payload's bytes
(:func:`pdeflow.codec.entropy.min_value_bits`); while decoding, the payload must be exactly the range coding of
the symbols it decodes to (:class:`pdeflow.codec.entropy.RangeReader`), so a payload that runs out, has data
after its end or is damaged is refused.

Decoding work. A short file cannot ask for a long decoding: a file with the inpainting layer has at least one byte
per :attr:`~pdeflow.codec.operators.CodecOperator.values_per_byte` values ``C H W`` of its operator (a file of one
known pixel, a constant image, is exempt: it decodes without a solve), the residual section
:data:`~pdeflow.codec.residual.MIN_BYTES_PER_PIXEL` bytes per coefficient; the solver tolerance is at most
:data:`MAX_TOL_EXPONENT` digits (an operator may allow fewer) and each operator's parameters have a least value
(:data:`pdeflow.codec.CODEC_OPERATORS`). The decoder refuses any other file before decoding.
"""
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field

from ..errors import UserInputError

__all__ = ["CodecError", "Header", "MAGIC", "FORMAT_VERSION", "READ_VERSIONS", "MAX_PIXELS", "MAX_OPERATOR_BYTES",
           "MAX_TOL_EXPONENT", "LAYER_INPAINTING", "LAYER_RESIDUAL", "CHANNELS_LAST", "budget_bytes", "write_header",
           "read_header", "read_layers", "with_layout"]

MAGIC = b"PDFc"
#: The newest format version (2: the residual layer); the decoder reads :data:`READ_VERSIONS`.
FORMAT_VERSION = 2
#: The versions the decoder reads (1: the inpainting layer alone).
READ_VERSIONS = (1, 2)
#: The ``layers`` field of version 2: bit 0 the inpainting layer, bit 1 the residual layer.
LAYER_INPAINTING, LAYER_RESIDUAL = 1, 2
#: The layout flag, bit 7 of the channels byte: the image was given channels last ``(H, W, C)``. A flag bit, not
#: a new field, so that a file of a channels-first image keeps its bytes, and the formats their versions.
CHANNELS_LAST = 0x80
#: Default pixel limit of the decoder (``H W``, 2^24: a 4K image fits twice): a header that claims more is
#: refused before any allocation (as the image reader's decompression-bomb guard,
#: :data:`pdeflow.io.DEFAULT_MAX_PIXELS`). The decoder's memory grows with ``H W`` and with the known pixels
#: ``K <= H W`` (the image in float64 per channel, the multigrid hierarchy, and the k-d tree's arrays of
#: the known pixels), so a header within the limit bounds it.
MAX_PIXELS = 1 << 24
#: Largest number of operator parameter bytes a header may declare.
MAX_OPERATOR_BYTES = 32
#: Units of the value range ``lo``/``hi`` (signed 16-bit): ``1 / VALUE_UNIT``.
VALUE_UNIT = 8192
#: The finest solver tolerance a file may ask for (``10**-6``; the encoder writes ``10**-4``): finer ones only make
#: the decoder work longer for changes far below a quantisation level.
MAX_TOL_EXPONENT = 6
_FIXED = struct.Struct("<HHBBBBB")          # H, W, C, depth, transform, operator, P
_TAIL = struct.Struct("<BBI")               # t, s, K
_CHANNEL = struct.Struct("<Hhh")            # q, lo, hi


def budget_bytes(bpp: float, height: int, width: int) -> int:
    """The byte budget of ``bpp`` bits per pixel on an image of ``height`` x ``width`` pixels: the whole file,
    headers included (the one formula of the encoder, the command line and the evaluation).

    A budget that is a whole number of bytes in exact arithmetic stays whole when the float product falls just
    below it: 0.58 bpp on 100 x 100 pixels is 725 bytes, though ``0.58 * 100 * 100 / 8`` is 724.9999999999999.

    Examples
    --------
    >>> from pdeflow.codec import budget_bytes
    >>> budget_bytes(0.1, 256, 256), budget_bytes(0.58, 100, 100)
    (819, 725)
    """
    return int(math.floor(bpp * height * width / 8 + 1e-9))


class CodecError(UserInputError):
    """Data that is not a valid pdeflow codec file (truncated, damaged, or from another program); the
    message says what is wrong, in one line.

    Examples
    --------
    >>> from pdeflow.codec import CodecError, decode
    >>> try:
    ...     decode(b"not an image")
    ... except CodecError as err:
    ...     print(err)
    decode: not a pdeflow codec file (bad magic bytes)
    """


@dataclass
class Header:
    """The header's fields (see the module doc); ``q``, ``lo`` and ``hi`` have one entry per channel.

    Examples
    --------
    >>> from pdeflow.codec.format import Header
    >>> h = Header(height=5, width=7, channels=1, bit_depth=8, transform=0, operator=0, operator_params=b"",
    ...            tol_exponent=3, lattice=2, known=4, q=[16], lo=[0], hi=[8192])
    >>> h.grid
    (3, 4)
    """

    height: int
    width: int
    channels: int
    bit_depth: int
    transform: int
    operator: int
    operator_params: bytes
    tol_exponent: int
    lattice: int
    known: int
    q: list = field(default_factory=list)
    lo: list = field(default_factory=list)
    hi: list = field(default_factory=list)
    layers: int = LAYER_INPAINTING
    channels_last: bool = False

    @property
    def grid(self) -> tuple[int, int]:
        """The lattice grid ``(ceil(H / s), ceil(W / s))``."""
        s = self.lattice
        return -(-self.height // s), -(-self.width // s)


def _err(msg: str) -> CodecError:
    return CodecError(f"decode: {msg}")


def check_header(h: Header, max_pixels: int | None = MAX_PIXELS) -> Header:
    """Every field of ``h`` within its limits (module doc), else :class:`CodecError`."""
    if not (2 <= h.height <= 65535 and 2 <= h.width <= 65535):
        raise _err(f"image size {h.height} x {h.width} out of range (2 to 65535 per side)")
    if max_pixels is not None and h.height * h.width > max_pixels:
        raise _err(f"header claims {h.height} x {h.width} = {h.height * h.width} pixels, more than "
                   f"max_pixels={max_pixels} (decode(data, max_pixels=...) accepts larger images)")
    if h.channels not in (1, 3):
        raise _err(f"channels must be 1 or 3, got {h.channels}")
    if h.bit_depth not in (8, 16):
        raise _err(f"bit depth must be 8 or 16, got {h.bit_depth}")
    if h.transform != (0 if h.channels == 1 else 1):
        raise _err(f"colour transform {h.transform} does not fit {h.channels} channel(s)")
    if len(h.operator_params) > MAX_OPERATOR_BYTES:
        raise _err(f"{len(h.operator_params)} operator parameter bytes, at most {MAX_OPERATOR_BYTES}")
    if not 1 <= h.tol_exponent <= MAX_TOL_EXPONENT:
        raise _err(f"solver tolerance exponent {h.tol_exponent} out of range (1 to {MAX_TOL_EXPONENT})")
    if not 1 <= h.lattice <= 16:
        raise _err(f"lattice step {h.lattice} out of range (1 to 16)")
    if h.layers not in (LAYER_INPAINTING, LAYER_RESIDUAL, LAYER_INPAINTING | LAYER_RESIDUAL):
        raise _err(f"layers field {h.layers}, expected 1, 2 or 3")
    gh, gw = h.grid
    if not h.layers & LAYER_INPAINTING:
        if h.known != 0:
            raise _err(f"{h.known} known pixels in a file without the inpainting layer, expected 0")
    elif not 1 <= h.known <= gh * gw:
        raise _err(f"{h.known} known pixels, expected 1 to {gh * gw}")
    if not (len(h.q) == len(h.lo) == len(h.hi) == h.channels):
        raise _err("one quantisation per channel expected")
    for c in range(h.channels):
        if not 2 <= h.q[c] <= 65535:
            raise _err(f"channel {c}: {h.q[c]} quantisation levels, expected 2 to 65535")
        if not h.lo[c] < h.hi[c]:
            raise _err(f"channel {c}: empty value range [{h.lo[c]}, {h.hi[c]}]")
    return h


def write_header(h: Header, payload: bytes, residual: bytes | None = None) -> bytes:
    """The file: the header of ``h`` (checked), ``payload`` and the CRC; version 1 for the inpainting layer
    alone, else version 2 with the residual section ``residual`` (``h.layers`` says which layers there are).

    Examples
    --------
    >>> from pdeflow.codec.format import Header, write_header
    >>> h = Header(height=5, width=7, channels=1, bit_depth=8, transform=0, operator=0, operator_params=b"",
    ...            tol_exponent=3, lattice=2, known=4, q=[16], lo=[0], hi=[8192])
    >>> data = write_header(h, bytes(4))
    >>> data[:4], data[4], len(data)
    (b'PDFc', 1, 34)
    """
    check_header(h, None)
    body = bytearray(_FIXED.pack(h.height, h.width, h.channels | (CHANNELS_LAST if h.channels_last else 0),
                                 h.bit_depth, h.transform, h.operator, len(h.operator_params)))
    body += h.operator_params
    body += _TAIL.pack(h.tol_exponent, h.lattice, h.known)
    for c in range(h.channels):
        body += _CHANNEL.pack(h.q[c], h.lo[c], h.hi[c])
    if (h.layers == LAYER_INPAINTING) != (residual is None):
        raise ValueError(f"write_header: layers {h.layers} and a residual section {'not ' * (residual is None)}"
                         "given do not agree")
    if h.layers == LAYER_INPAINTING:
        body += payload
        return MAGIC + bytes([1]) + struct.pack("<I", zlib.crc32(body)) + bytes(body)
    body.append(h.layers)
    if h.layers & LAYER_INPAINTING:
        body += struct.pack("<I", len(payload) // 4) + payload
    body += residual
    return MAGIC + bytes([FORMAT_VERSION]) + struct.pack("<I", zlib.crc32(body)) + bytes(body)


def read_header(data, max_pixels: int | None = MAX_PIXELS) -> tuple[Header, bytes]:
    """``(header, payload)`` of a file's bytes, every field checked; :class:`CodecError` otherwise (the
    inpainting layer's payload; :func:`read_layers` also gives the residual section).

    Examples
    --------
    >>> from pdeflow.codec.format import Header, read_header, write_header
    >>> h = Header(height=5, width=7, channels=1, bit_depth=8, transform=0, operator=0, operator_params=b"",
    ...            tol_exponent=3, lattice=2, known=4, q=[16], lo=[0], hi=[8192])
    >>> back, payload = read_header(write_header(h, bytes(4)))
    >>> back == h, payload == bytes(4)
    (True, True)
    """
    return read_layers(data, max_pixels)[:2]


def read_layers(data, max_pixels: int | None = MAX_PIXELS) -> tuple[Header, bytes, bytes]:
    """``(header, inpainting payload, residual section)`` of a file's bytes (either may be empty, as
    ``header.layers`` says), every header field checked; :class:`CodecError` otherwise.

    Examples
    --------
    >>> from pdeflow.codec.format import Header, read_layers, write_header
    >>> h = Header(height=5, width=7, channels=1, bit_depth=8, transform=0, operator=0, operator_params=b"",
    ...            tol_exponent=3, lattice=2, known=4, q=[16], lo=[0], hi=[8192], layers=3)
    >>> data = write_header(h, bytes(4), bytes(8))
    >>> back, payload, residual = read_layers(data)
    >>> data[4], back == h, len(payload), len(residual)
    (2, True, 4, 8)
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"decode: data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise _err("not a pdeflow codec file (bad magic bytes)")
    if len(data) < 9:
        raise _err(f"truncated file ({len(data)} bytes)")
    version = data[4]
    if version not in READ_VERSIONS:
        raise _err(f"format version {version} is not supported (this version reads "
                   f"{', '.join(map(str, READ_VERSIONS))})")
    (crc,) = struct.unpack_from("<I", data, 5)
    body = data[9:]
    if zlib.crc32(body) != crc:
        raise _err("checksum mismatch: the file is damaged or truncated")
    try:
        H, W, C, depth, transform, op, P = _FIXED.unpack_from(body, 0)
        last, C = bool(C & CHANNELS_LAST), C & ~CHANNELS_LAST
        pos = _FIXED.size
        params = body[pos:pos + P]
        if len(params) != P:
            raise struct.error("short")
        pos += P
        t, s, K = _TAIL.unpack_from(body, pos)
        pos += _TAIL.size
        q, lo, hi = [], [], []
        for _ in range(C if C in (1, 3) else 0):
            a, b, c = _CHANNEL.unpack_from(body, pos)
            pos += _CHANNEL.size
            q.append(a), lo.append(b), hi.append(c)
        layers, n = LAYER_INPAINTING, None
        if version == 2:
            layers = body[pos] if pos < len(body) else -1
            pos += 1
            if layers == LAYER_INPAINTING | LAYER_RESIDUAL:
                (n,) = struct.unpack_from("<I", body, pos)
                pos += 4
    except struct.error:
        raise _err("truncated header") from None
    if layers < 0:
        raise _err("truncated header")
    if version == 2 and layers == LAYER_INPAINTING:
        raise _err("layers field 1 in a version-2 file (the inpainting layer alone is version 1)")
    h = check_header(Header(H, W, C, depth, transform, op, params, t, s, K, q, lo, hi, layers, last), max_pixels)
    rest = body[pos:]
    if layers == LAYER_RESIDUAL:
        return h, b"", rest
    payload, residual = (rest, b"") if n is None else (rest[:4 * n], rest[4 * n:])
    if len(payload) < 4 or len(payload) % 4 or (n is not None and len(payload) != 4 * n):
        raise _err(f"payload of {len(payload)} bytes, expected a positive multiple of 4"
                   + ("" if n is None else f" ({n} words declared)"))
    return h, payload, residual


def with_layout(data: bytes, channels_last: bool) -> bytes:
    """A file's bytes with its layout flag (:data:`CHANNELS_LAST`) set as ``channels_last`` says and its checksum
    updated: the same length, the same image.

    Examples
    --------
    >>> from pdeflow.codec.format import Header, read_header, with_layout, write_header
    >>> h = Header(height=5, width=7, channels=1, bit_depth=8, transform=0, operator=0, operator_params=b"",
    ...            tol_exponent=3, lattice=2, known=4, q=[16], lo=[0], hi=[8192])
    >>> data = write_header(h, bytes(4))
    >>> last = with_layout(data, True)
    >>> len(last) == len(data), read_header(last)[0].channels_last, with_layout(last, False) == data
    (True, True, True)
    """
    h = read_layers(data, None)[0]          # a valid file (the encoder's own)
    if h.channels_last == bool(channels_last):
        return bytes(data)
    body = bytearray(data[9:])
    body[4] ^= CHANNELS_LAST                # the channels byte: offset 13 of the file
    return bytes(data[:5]) + struct.pack("<I", zlib.crc32(body)) + bytes(body)
