"""Rate-distortion evaluation of pdeflow's codec against JPEG, JPEG 2000, WebP, AVIF and JPEG XL.

* :data:`CODECS`, :func:`get_codec`: the codecs by name, each a :class:`Codec` that fits an image to byte budgets
  and decodes; JPEG, JPEG 2000 and WebP through Pillow, AVIF and JPEG XL through the optional package
  ``imagecodecs`` (``pip install 'pdeflow[baselines]'``); a codec whose package is missing is refused, named.
* The budget: ``floor(bpp * H * W / 8)`` bytes, the whole file; a baseline is fitted by bisection over its quality
  setting (:func:`fit_budget`); a codec that cannot meet a budget loses that image at that rate (marked so).
* :func:`evaluate`: every codec on every image of some image sets at every rate; PSNR and SSIM
  (:mod:`pdeflow.metrics`, on [0, 1]) of the decoded image on 8-bit levels against the 8-bit image.
  :func:`bd_rate`: the Bjøntegaard delta rate, the piecewise-cubic variant. :func:`report`: the tables
  (Markdown), ``results.json`` and the figure (PSNR and SSIM against bpp).
* Image sets: :func:`photo_set` (a folder of photographs), :func:`builtin_set` (the built-in TEST photos),
  :func:`smooth_set` (synthetic piecewise-smooth scenes), each image reduced to a square of ``size`` pixels.

References
----------
G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves", ITU-T SG16 VCEG-M33, 2001.
C. Herglotz, H. Och, A. Meyer, G. Ramasubbu, L. Eichermüller, M. Kränzler, F. Brand, K. Fischer, D. T. Nguyen,
A. Regensky, A. Kaup, "The Bjøntegaard Bible: why your way of comparing video codecs may be wrong", IEEE Trans.
Image Process. 33, 2024.
F. N. Fritsch and R. E. Carlson, "Monotone piecewise cubic interpolation", SIAM J. Numer. Anal. 17(2), 1980.
"""
from __future__ import annotations

import dataclasses
import importlib
import io
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import datasets, viz
from .. import io as pio
from ..codec import budget_bytes, decode, encode
from ..errors import UserInputError
from ..metrics import psnr, ssim
from ..reporting import Report, jsonable, md_table

__all__ = ["Codec", "CODECS", "DEFAULT_CODECS", "ANCHORS", "RATES", "get_codec", "budget_bytes", "fit_budget",
           "bd_rate", "evaluate", "summary", "tables", "report", "rd_figure", "photo_set", "builtin_set", "smooth_set",
           "square"]

#: The rates of the evaluation (bits per pixel).
RATES = (0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
#: The codecs the others are compared with (BD-rate, pairwise PSNR).
ANCHORS = ("jpeg", "jpeg2000")
EXTRA = "pip install 'pdeflow[baselines]' (or pip install imagecodecs)"    # what the optional codecs need


@dataclasses.dataclass(frozen=True)
class Codec:
    """A codec of the evaluation.

    ``fit(image, budgets)``: an image ``(C, H, W)`` in [0, 1] on 8-bit levels and byte budgets -> per budget ``(data,
    setting, note)``: the bytes (``None`` where over the budget, ``note`` saying why) and the setting; ``decode(data,
    channels)`` -> ``(C, H, W)`` in [0, 1]; ``check()`` -> ``None`` if the codec can run here, else why.

    Examples
    --------
    >>> import torch; from pdeflow.evaluate.codec import CODECS
    >>> jpeg = CODECS["jpeg"]; [(data, quality, note)] = jpeg.fit(torch.full((1, 16, 16), 0.5), [1000])
    >>> jpeg.check() is None, note, jpeg.decode(data, 1).shape
    (True, None, torch.Size([1, 16, 16]))
    """

    name: str
    label: str
    fit: Callable
    decode: Callable
    about: Callable = lambda: ""
    check: Callable = lambda: None


def _u8(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] as uint8 ``(H, W)`` or ``(H, W, 3)``."""
    a = np.rint(image.detach().cpu().double().clamp(0, 1).numpy() * 255).astype(np.uint8)
    return a[0] if a.shape[0] == 1 else np.ascontiguousarray(a.transpose(1, 2, 0))


def _from_u8(a: np.ndarray, channels: int) -> torch.Tensor:
    a = np.asarray(a)[..., 0] if np.ndim(a) == 3 and channels == 1 else np.asarray(a)
    t = torch.from_numpy(np.ascontiguousarray(a).astype(np.float32) / 255)
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def fit_budget(encode_at: Callable, settings, budgets) -> list:
    """For each budget, the largest encoding within it among the settings that bisection tries.

    ``encode_at(setting) -> bytes``; ``settings`` in the order in which the file grows; ``budgets`` in bytes. Returns
    per budget ``(bytes, setting)``, or ``(None, None)`` where even the first setting's file is over it. Encodings are
    shared between the budgets; the answer is the largest file within the budget of all settings tried, so a file size
    that does not grow monotonically cannot make it worse than bisection's last step.

    Examples
    --------
    >>> from pdeflow.evaluate.codec import fit_budget
    >>> [r[1] for r in fit_budget(lambda q: bytes(10 * q), range(1, 11), [5, 35, 1000])]
    [None, 3, 10]
    """
    settings = list(settings)
    if not settings:
        raise UserInputError("fit_budget: settings is empty")
    tried: dict[int, bytes] = {}

    def size(i: int) -> int:
        if i not in tried:
            tried[i] = encode_at(settings[i])
        return len(tried[i])

    out = []
    for budget in budgets:
        if size(0) > budget:
            out.append((None, None))
            continue
        lo, hi = 0, len(settings) - 1
        if size(hi) <= budget:
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if size(mid) <= budget else (lo, mid)
        best = max((i for i, d in tried.items() if len(d) <= budget), key=lambda i: (len(tried[i]), i))
        out.append((tried[best], settings[best]))
    return out


# ---------------------------------------------------------------------------
# The baselines
# ---------------------------------------------------------------------------

def _pillow_fit(fmt: str, param: str, settings, **options) -> Callable:
    from PIL import Image

    def fit(image, budgets):
        img = Image.fromarray(_u8(image))

        def encode_at(s):
            buf = io.BytesIO()
            img.save(buf, fmt, **{param: [s] if param == "quality_layers" else s}, **options)
            return buf.getvalue()
        return _fitted(encode_at, settings, budgets)
    return fit


def _fitted(encode_at, settings, budgets) -> list:
    return [(d, s, None if d is not None else "its smallest file is over the budget")
            for d, s in fit_budget(encode_at, settings, budgets)]


def _pillow_decode(data: bytes, channels: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return _from_u8(np.asarray(im.convert("L" if channels == 1 else "RGB")), channels)


def _geometric(start: float, stop: float, step: float) -> list[float]:
    """``start``, ``start * step``, ... up to ``stop``, rounded to 4 significant digits."""
    n = int(math.floor(math.log(stop / start) / math.log(step))) + 1
    return [float(f"{start * step ** k:.4g}") for k in range(n)]


def _imagecodecs_check(codec: str) -> Callable:
    def check():
        try:
            ic = importlib.import_module("imagecodecs")
        except ImportError:
            return f"needs the optional package imagecodecs: {EXTRA}"
        if not getattr(ic, codec).available:
            return f"the installed imagecodecs has no {codec} codec: {EXTRA}"
        return None
    return check


def _avif_fit(image, budgets):
    import imagecodecs as ic

    a = _u8(image)
    grey = a.ndim == 2
    rgb = np.repeat(a[..., None], 3, axis=2) if grey else a     # monochrome AVIF (YUV 4:0:0) for grey

    def encode_at(q):
        return ic.avif_encode(rgb, level=q, speed=AVIF_SPEED, numthreads=1, pixelformat=4 if grey else None)
    return _fitted(encode_at, range(0, 100), budgets)


def _jxl_fit(image, budgets):
    import imagecodecs as ic

    a = _u8(image)
    return _fitted(lambda d: ic.jpegxl_encode(a, distance=d, effort=JXL_EFFORT, numthreads=1),
                   _geometric(25.0, 0.05, 1 / 1.02), budgets)


def _imagecodecs_decode(name: str) -> Callable:
    def decode(data, channels):
        import imagecodecs as ic

        return _from_u8(getattr(ic, name)(data), channels)
    return decode


def _pillow_about(library: str, feature: str, settings: str) -> Callable:
    def about():
        import PIL
        from PIL import features

        return f"Pillow {PIL.__version__} ({library} {features.version(feature)}); {settings}"
    return about


def _imagecodecs_about(library: str, settings: str) -> Callable:
    def about():
        import imagecodecs as ic

        lib = next((v for v in ic.version().split(", ") if v.startswith(library)), library)
        return f"imagecodecs {ic.__version__} ({lib}); {settings}"
    return about


#: AVIF's encoder speed (0 slowest and best, 10 fastest) and JPEG XL's effort (1 fastest, 9 slowest).
AVIF_SPEED, JXL_EFFORT = 4, 7
_J2K_RATIOS = _geometric(4000.0, 2.0, 1 / 1.02)


def _layers_of(data: bytes) -> str:
    """The layers of a pdeflow file: "inpainting", "wavelet" or "inpainting+wavelet"."""
    from ..codec.format import LAYER_INPAINTING, LAYER_RESIDUAL, read_layers
    layers = read_layers(data, None)[0].layers
    return "+".join(n for bit, n in ((LAYER_INPAINTING, "inpainting"), (LAYER_RESIDUAL, "wavelet")) if layers & bit)


def _pdeflow(name: str, label: str, operator: str, split=None) -> Codec:
    """pdeflow's codec with the decoder's ``operator`` (and the budget's ``split``, :func:`pdeflow.codec.encode`)
    as an entry of :data:`CODECS`."""
    def fit_one(image, b):
        try:
            data = encode(image, size=b, operator=operator, split=split)
            return data, _layers_of(data), None
        except UserInputError as exc:     # this budget is too small for this image
            return None, None, " ".join(str(exc).split())

    def about():
        from .. import __version__
        return f"pdeflow {__version__}; encode(image, size=budget, operator={operator!r}, split={split!r})"
    return Codec(name, label, lambda image, budgets: [fit_one(image, b) for b in budgets],
                 lambda data, channels: decode(data), about)


#: The codecs by name: pdeflow's and the baselines.
CODECS: dict[str, Codec] = {
    "pdeflow": _pdeflow("pdeflow", "pdeflow", "diffusion"),
    "pdeflow-eed": _pdeflow("pdeflow-eed", "pdeflow (EED)", "eed"),
    "pdeflow-inpainting": _pdeflow("pdeflow-inpainting", "pdeflow (inpainting alone)", "diffusion", 1.0),
    "jpeg": Codec("jpeg", "JPEG", _pillow_fit("JPEG", "quality", range(1, 101), optimize=True),
                  _pillow_decode, _pillow_about("libjpeg-turbo", "libjpeg_turbo", "baseline, optimize=True, quality "
                                                "searched in 1-100, 4:2:0 chroma for colour")),
    "jpeg2000": Codec("jpeg2000", "JPEG 2000",
                      _pillow_fit("JPEG2000", "quality_layers", _J2K_RATIOS, quality_mode="rates",
                                  irreversible=True, no_jp2=True),
                      _pillow_decode, _pillow_about("OpenJPEG", "jpg_2000", "codestream (no JP2 box), irreversible "
                                                    "9/7 wavelet, one layer, its compression ratio searched")),
    "webp": Codec("webp", "WebP", _pillow_fit("WEBP", "quality", range(0, 101), method=6), _pillow_decode,
                  _pillow_about("libwebp", "webp", "lossy, method=6, quality searched in 0-100")),
    "avif": Codec("avif", "AVIF", _avif_fit, _imagecodecs_decode("avif_decode"),
                  _imagecodecs_about("libavif", f"speed {AVIF_SPEED}, quality searched in 0-99, monochrome (4:0:0) "
                                                "for grey, the library's default chroma for colour"),
                  _imagecodecs_check("AVIF")),
    "jpegxl": Codec("jpegxl", "JPEG XL", _jxl_fit, _imagecodecs_decode("jpegxl_decode"),
                    _imagecodecs_about("libjxl", f"effort {JXL_EFFORT}, distance searched in 0.05-25"),
                    _imagecodecs_check("JPEGXL")),
}


#: The codecs an evaluation runs when none are named: all but pdeflow's slow EED variant and its inpainting layer
#: alone (the codec before the residual layer; name them to run them).
DEFAULT_CODECS = tuple(c for c in CODECS if c not in ("pdeflow-eed", "pdeflow-inpainting"))


def get_codec(name) -> Codec:
    """The codec ``name`` (a key of :data:`CODECS`, or a :class:`Codec`), checked that it can run here: a
    :class:`~pdeflow.errors.UserInputError` names an unknown codec, or a missing package and how to install it.

    Examples
    --------
    >>> from pdeflow.evaluate.codec import get_codec
    >>> get_codec("jpeg").label
    'JPEG'
    """
    if isinstance(name, Codec):
        codec = name
    elif name not in CODECS:
        raise UserInputError(f"get_codec: unknown codec {name!r}; expected one of {', '.join(CODECS)}")
    else:
        codec = CODECS[name]
    why = codec.check()
    if why is not None:
        raise UserInputError(f"codec {codec.name!r} ({codec.label}) {why}")
    return codec


# ---------------------------------------------------------------------------
# Image sets
# ---------------------------------------------------------------------------

def square(image: torch.Tensor, size: int) -> torch.Tensor | None:
    """``image`` ``(C, H, W)`` reduced (Lanczos, by Pillow) so that its shorter side is ``size``, its centre
    ``size`` x ``size`` square, on 8-bit levels; ``None`` for an image whose shorter side is under ``size``.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.evaluate.codec import square
    >>> square(torch.rand(1, 40, 60), 20).shape
    torch.Size([1, 20, 20])
    """
    from PIL import Image

    C, H, W = image.shape
    if min(H, W) < size:
        return None
    if min(H, W) > size:
        s = size / min(H, W)
        w, h = max(size, round(W * s)), max(size, round(H * s))
        a = image.detach().cpu().float().numpy()
        a = np.stack([np.asarray(Image.fromarray(c, mode="F").resize((w, h), Image.LANCZOS)) for c in a])
        image, H, W = torch.from_numpy(a), h, w
    top, left = (H - size) // 2, (W - size) // 2
    u = image[:, top:top + size, left:left + size].double().clamp(0, 1)
    return (torch.round(u * 255) / 255).float().contiguous()


def _squares(named, size: int, limit: int | None) -> dict[str, torch.Tensor]:
    out = {}
    for name, u in named:
        s = square(u, size)
        if s is not None:
            out[name] = s
        if limit is not None and len(out) >= limit:
            break
    return out


def photo_set(folder, *, size: int = 256, channels: int = 1, limit: int | None = None) -> dict[str, torch.Tensor]:
    """The image files of ``folder`` (sorted by name, :func:`pdeflow.io.image_files`) as :func:`square` images
    (those smaller than ``size`` left out); at most ``limit``. ``channels``: 1 grey (luminance), 3 colour.

    Examples
    --------
    >>> import tempfile, torch; from pdeflow.io import write_image; from pdeflow.evaluate.codec import photo_set
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = write_image(f"{d}/a.png", torch.rand(1, 40, 48))
    ...     {k: u.shape for k, u in photo_set(d, size=32).items()}
    {'a': torch.Size([1, 32, 32])}
    """
    folder = Path(folder)
    files = pio.image_files(folder, "photo_set")
    return _squares(((p.stem, pio.read_image(p, grey=channels == 1)) for p in files), size, limit)


def builtin_set(*, size: int = 256, channels: int = 1, limit: int | None = None) -> dict[str, torch.Tensor]:
    """The built-in TEST photographs (:func:`pdeflow.datasets.builtin_pool`) as :func:`square` images.

    Examples
    --------
    >>> from pdeflow.evaluate.codec import builtin_set
    >>> [u.shape for u in builtin_set(size=32, limit=1).values()]
    [torch.Size([1, 32, 32])]
    """
    pool = datasets.builtin_pool("test", grey=channels == 1, kind="photo")
    return _squares(pool.items(), size, limit)


def smooth_set(n: int, *, size: int = 256, seed: int = 0, shapes: int = 5) -> dict[str, torch.Tensor]:
    """``n`` synthetic piecewise-smooth scenes (:func:`pdeflow.datasets.piecewise_smooth`, ``shapes`` shapes
    each, drawn from ``seed``), grey, on 8-bit levels.

    Examples
    --------
    >>> from pdeflow.evaluate.codec import smooth_set
    >>> sorted(smooth_set(2, size=32))
    ['smooth-0', 'smooth-1']
    """
    u = datasets.piecewise_smooth(size, shapes, seed=seed, batch=n).double()
    return {f"smooth-{i}": (torch.round(u[i] * 255) / 255).float() for i in range(n)}


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------

def evaluate(sets, *, rates=RATES, codecs=DEFAULT_CODECS, progress: bool = False) -> dict:
    """Every codec on every image of ``sets`` at every rate.

    ``sets``: set name -> mapping image name -> image ``(C, H, W)`` in [0, 1] (``C`` 1 or 3) on 8-bit levels
    (:func:`square`, :func:`smooth_set`; other values are rounded to them first); ``rates``: bits per pixel, each
    giving the byte budget :func:`budget_bytes`; ``codecs``: names or :class:`Codec` (:data:`CODECS`; default
    :data:`DEFAULT_CODECS`), each checked first (:func:`get_codec`); ``progress``: print a line per image and codec.

    Returns a dict: ``rates``; ``codecs`` (name -> label and ``about``: library, version, settings); ``sets``
    (name -> image names, size, channels); ``rows``: one per set, image, codec and rate, with ``budget`` (bytes),
    ``fits``, where it fits ``bytes``, ``bpp``, ``setting``, ``psnr``, ``ssim`` and the CPU seconds ``encode_s`` (for
    a baseline, the whole search) and ``decode_s``; where it does not, ``note``.

    Examples
    --------
    >>> from pdeflow.evaluate.codec import evaluate, smooth_set
    >>> res = evaluate({"s": smooth_set(1, size=32)}, rates=[0.05, 2.0], codecs=["jpeg"])
    >>> [(r["budget"], r["fits"]) for r in res["rows"]]
    [(6, False), (256, True)]
    """
    rates = [float(r) for r in rates]
    if not rates or any(not (math.isfinite(r) and r > 0) for r in rates):
        raise UserInputError(f"evaluate: rates must be numbers > 0, got {rates!r}")
    chosen = [get_codec(c) for c in codecs]
    if len({c.name for c in chosen}) != len(chosen):
        raise UserInputError("evaluate: codecs must differ")
    res = {"rates": rates, "codecs": {c.name: {"label": c.label, "about": c.about()} for c in chosen},
           "sets": {}, "rows": []}
    for set_name, images in sets.items():
        if not images:
            raise UserInputError(f"evaluate: image set {set_name!r} is empty")
        shapes = {tuple(u.shape) for u in images.values()}
        C, H, W = next(iter(shapes))
        res["sets"][set_name] = {"images": list(images), "size": [H, W] if len(shapes) == 1 else None,
                                 "channels": C}
        for name, u in images.items():
            if u.dim() != 3 or u.shape[0] not in (1, 3):
                raise UserInputError(f"evaluate: image {set_name}/{name} must be (C, H, W) with C = 1 or 3, "
                                     f"got shape {tuple(u.shape)}")
            ref = (torch.round(u.detach().cpu().double().clamp(0, 1) * 255) / 255)
            h, w = ref.shape[-2:]
            budgets = [budget_bytes(r, h, w) for r in rates]
            for codec in chosen:
                t0 = time.process_time()
                fitted = codec.fit(ref.float(), budgets)
                enc_s = (time.process_time() - t0) / len(budgets)
                for rate, budget, (data, setting, note) in zip(rates, budgets, fitted):
                    row = {"set": set_name, "image": name, "codec": codec.name, "rate": rate, "budget": budget,
                           "fits": data is not None and len(data) <= budget}
                    if data is not None and len(data) > budget:
                        note = f"{len(data)} bytes, over the budget"
                    if not row["fits"]:
                        res["rows"].append({**row, "note": note or "does not fit"})
                        continue
                    t1 = time.process_time()
                    dec = codec.decode(data, ref.shape[0])
                    dec_s = time.process_time() - t1
                    dec = torch.round(dec.detach().cpu().double().clamp(0, 1) * 255) / 255   # as written: 8 bits
                    row.update(bytes=len(data), bpp=8 * len(data) / (h * w), setting=setting,
                               psnr=float(psnr(dec, ref, data_range=1.0)), ssim=float(ssim(dec, ref, data_range=1.0)),
                               encode_s=enc_s, decode_s=dec_s)
                    res["rows"].append(row)
                if progress:
                    got = [r for r in res["rows"][-len(rates):] if r["fits"]]
                    print(f"{set_name}/{name} {codec.name}: {len(got)}/{len(rates)} rates fit"
                          + (f", PSNR {got[0]['psnr']:.2f}-{got[-1]['psnr']:.2f}" if got else ""), flush=True)
    return res


def bd_rate(rate_a, psnr_a, rate_b, psnr_b) -> float | None:
    """The Bjøntegaard delta rate of curve B against curve A: the mean relative rate difference at equal PSNR.

    Each curve's logarithm of the rate is interpolated as a function of PSNR by the piecewise cubic Hermite
    interpolant of Fritsch and Carlson (PCHIP; the piecewise-cubic variant of Herglotz et al. rather than Bjøntegaard's
    cubic polynomial fit) and integrated over the PSNR interval both curves cover; the mean difference ``d`` of the
    log-rates gives ``exp(d) - 1``. Points are taken in order of rate; a point whose PSNR is not above that of the
    point before it is dropped (the interpolant needs PSNR increasing). ``rate_a``, ``psnr_a``, ``rate_b``,
    ``psnr_b``: the rates (any unit, the same for both) and PSNRs of the anchor A and the tested curve B. Returns the
    BD-rate as a fraction (``-0.2``: B needs a fifth less rate than A for the same PSNR); ``None`` when a curve has
    fewer than two points or the PSNR intervals do not overlap.

    Examples
    --------
    >>> from pdeflow.evaluate.codec import bd_rate
    >>> round(bd_rate([1, 2, 4], [30, 33, 36], [0.5, 1, 2], [30, 33, 36]), 6)
    -0.5
    """
    from scipy.interpolate import PchipInterpolator

    curves = []
    for r, p in ((rate_a, psnr_a), (rate_b, psnr_b)):
        pts = sorted((float(x), float(y)) for x, y in zip(r, p) if x > 0 and math.isfinite(y))
        kept = []
        for x, y in pts:
            if not kept or y > kept[-1][1]:
                kept.append((x, y))
        if len(kept) < 2:
            return None
        curves.append(kept)
    lo = max(c[0][1] for c in curves)
    hi = min(c[-1][1] for c in curves)
    if not hi > lo:
        return None
    ints = [PchipInterpolator([y for _, y in c], [math.log(x) for x, _ in c]).integrate(lo, hi) for c in curves]
    return float(math.exp((ints[1] - ints[0]) / (hi - lo)) - 1)


def _mean(v):
    return float(np.mean(v)) if len(v) else None


def summary(res: dict) -> dict:
    """Per set: per codec and rate the mean PSNR, SSIM and bpp over the images it fits (``n`` of them); for pdeflow
    against each baseline per rate the mean PSNR difference over the images both fit and the wins (an image where
    pdeflow fits and the baseline does not, or both fit and pdeflow's PSNR is higher); the BD-rate (:func:`bd_rate`, on
    each image's achieved bpp and PSNR) averaged over the images where it is defined, of every codec against each
    anchor (:data:`ANCHORS`) and of pdeflow's codecs against every baseline.

    Examples
    --------
    >>> from pdeflow.evaluate.codec import evaluate, smooth_set, summary
    >>> res = evaluate({"s": smooth_set(1, size=32)}, rates=[0.05, 2.0], codecs=["jpeg"])
    >>> s = summary(res)["s"]; sorted(s), [c["n"] for c in s["curves"]["jpeg"].values()]
    (['bd_rate', 'curves', 'pairs'], [0, 1])
    """
    out = {}
    for s, info in res["sets"].items():
        rows = [r for r in res["rows"] if r["set"] == s]
        at = {(r["codec"], r["image"], r["rate"]): r for r in rows}
        curves = {}
        for c in res["codecs"]:
            for rate in res["rates"]:
                fit = [at[c, i, rate] for i in info["images"] if at[c, i, rate]["fits"]]
                curves.setdefault(c, {})[str(rate)] = {
                    "n": len(fit), "psnr": _mean([r["psnr"] for r in fit]), "ssim": _mean([r["ssim"] for r in fit]),
                    "bpp": _mean([r["bpp"] for r in fit])}
        pairs, bd = {}, {}
        # every baseline is compared with pdeflow; the anchors (JPEG, JPEG 2000) with every codec
        baselines = [a for a in res["codecs"] if not a.startswith("pdeflow")]
        for a in sorted(baselines, key=lambda a: (a not in ANCHORS, baselines.index(a))):
            if "pdeflow" in res["codecs"]:
                for rate in res["rates"]:
                    both, wins = [], 0
                    for i in info["images"]:
                        p, q = at["pdeflow", i, rate], at[a, i, rate]
                        if p["fits"] and q["fits"]:
                            both.append(p["psnr"] - q["psnr"])
                        wins += p["fits"] and (not q["fits"] or p["psnr"] > q["psnr"])
                    pairs.setdefault(a, {})[str(rate)] = {"n": len(both), "dpsnr": _mean(both), "wins": wins,
                                                         "images": len(info["images"])}
            for c in res["codecs"]:
                if c == a or (a not in ANCHORS and not c.startswith("pdeflow")):
                    continue
                vals = []
                for i in info["images"]:
                    pa = [at[a, i, r] for r in res["rates"] if at[a, i, r]["fits"]]
                    pc = [at[c, i, r] for r in res["rates"] if at[c, i, r]["fits"]]
                    v = bd_rate([r["bpp"] for r in pa], [r["psnr"] for r in pa],
                                [r["bpp"] for r in pc], [r["psnr"] for r in pc])
                    if v is not None:
                        vals.append(v)
                bd.setdefault(a, {})[c] = {"mean": _mean(vals), "median": float(np.median(vals)) if vals else None,
                                           "n": len(vals), "images": len(info["images"])}
        out[s] = {"curves": curves, "pairs": pairs, "bd_rate": bd}
    return out


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def _cell(v, n, total, digits):
    if v is None:
        return "—"
    return f"{v:.{digits}f}" + ("" if n == total else f" ({n}/{total})")


def _pair_cell(p: dict, n: int) -> str:
    d = "—" if p["dpsnr"] is None else f"{p['dpsnr']:+.2f}" + ("" if p["n"] == n else f" (both fit {p['n']}/{n})")
    return f"{d}; {p['wins']}/{p['images']}"


def _bd_cell(b: dict | None) -> str:
    if b is None or b["mean"] is None:
        return "—"
    return f"{100 * b['mean']:+.1f} % (median {100 * b['median']:+.1f} %, {b['n']}/{b['images']})"


def _set_title(s: str, info: dict) -> str:
    size = "x".join(map(str, info["size"])) if info["size"] else "mixed sizes"
    return f"{s}: {len(info['images'])} images, {size}, {'grey' if info['channels'] == 1 else 'colour'}"


def tables(res: dict, summ: dict | None = None) -> str:
    """The Markdown tables of :func:`evaluate`'s results, per set (see :func:`report`).

    Examples
    --------
    >>> from pdeflow.evaluate.codec import evaluate, smooth_set, tables
    >>> res = evaluate({"s": smooth_set(1, size=32)}, rates=[0.05, 2.0], codecs=["jpeg"])
    >>> tables(res).splitlines()[0]
    '## s: 1 images, 32x32, grey'
    """
    summ = summary(res) if summ is None else summ
    labels = {c: v["label"] for c, v in res["codecs"].items()}
    rate_cols = [f"{r:g} bpp" for r in res["rates"]]
    parts = []
    for s, info in res["sets"].items():
        n, sm = len(info["images"]), summ[s]
        parts.append(f"## {_set_title(s, info)}\n")
        for key, what, digits in (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4)):
            rows = [[labels[c]] + [_cell(sm["curves"][c][str(r)][key], sm["curves"][c][str(r)]["n"], n, digits)
                                   for r in res["rates"]] for c in res["codecs"]]
            parts.append(f"{what}, mean over the images each codec fits (fitted/all where some do not fit):\n\n"
                         + md_table(["codec"] + rate_cols, rows) + "\n")
        if sm["pairs"]:
            rows = [[labels[a]] + [_pair_cell(per[str(r)], n) for r in res["rates"]]
                    + [_bd_cell(sm["bd_rate"].get(a, {}).get("pdeflow"))] for a, per in sm["pairs"].items()]
            parts.append("pdeflow against each baseline: mean PSNR difference (dB) over the images both fit; wins: "
                         "pdeflow fits and is ahead in PSNR, or fits where the baseline does not; pdeflow's BD-rate "
                         "against it:\n\n"
                         + md_table(["against"] + rate_cols + ["BD-rate"], rows) + "\n")
        if sm["bd_rate"]:
            anchors = [a for a in sm["bd_rate"] if a in ANCHORS]
            rows = [[labels[c]] + [_bd_cell(sm["bd_rate"][a].get(c)) for a in anchors] for c in res["codecs"]]
            parts.append("BD-rate (PCHIP on log-rate against PSNR, per image, mean over the images where both "
                         "curves overlap; negative: fewer bits for the same PSNR):\n\n"
                         + md_table(["codec"] + [f"vs {labels[a]}" for a in anchors], rows) + "\n")
    return "\n".join(parts)


def _failures(res: dict) -> list[str]:
    lost = {}
    for r in res["rows"]:
        if not r["fits"]:
            lost.setdefault((r["set"], r["codec"], r["rate"]), []).append(r["image"])
    return [f"{s}, {res['codecs'][c]['label']} at {rate:g} bpp: {len(v)} image(s) do not fit ({', '.join(v)})"
            for (s, c, rate), v in sorted(lost.items())]


def rd_figure(res: dict, summ: dict | None = None):
    """PSNR and SSIM against the mean achieved bpp, one row of two panels per set: lines join the means over
    every image of the set; a hollow marker, not joined, is a mean over fewer images (some did not fit).

    Examples
    --------
    >>> from pdeflow.evaluate.codec import evaluate, rd_figure, smooth_set
    >>> res = evaluate({"s": smooth_set(1, size=32)}, rates=[0.05, 2.0], codecs=["jpeg"])
    >>> len(rd_figure(res).axes)
    2
    """
    summ = summary(res) if summ is None else summ
    sets = list(res["sets"])
    fig = viz.figure(10, 3.4 * len(sets))
    axes = fig.subplots(len(sets), 2, squeeze=False)
    for k, s in enumerate(sets):
        n = len(res["sets"][s]["images"])
        for j, (key, what) in enumerate((("psnr", "PSNR (dB)"), ("ssim", "SSIM"))):
            ax = axes[k, j]
            for c, info in res["codecs"].items():
                pts = [summ[s]["curves"][c][str(r)] for r in res["rates"]]
                pts = [p for p in pts if p[key] is not None]
                if not pts:
                    continue
                full = [p for p in pts if p["n"] == n]       # the line joins the means over every image
                line, = ax.plot([p["bpp"] for p in full], [p[key] for p in full], "o-", label=info["label"], ms=4,
                                lw=2.2 if c == "pdeflow" else 1.2)
                part = [p for p in pts if p["n"] < n]
                ax.plot([p["bpp"] for p in part], [p[key] for p in part], "o", color=line.get_color(), ms=4,
                        mfc="white")
            ax.set_xlabel("bits per pixel")
            ax.set_ylabel(what)
            ax.set_title(_set_title(s, res["sets"][s]), fontsize=9)
            ax.grid(alpha=0.3)
        axes[k, 0].legend(fontsize=7)
    return fig


def report(res: dict) -> Report:
    """``report.md`` (the settings, :func:`tables`, the budgets not met), ``results.json`` (the results and
    :func:`summary`) and ``rd.png`` (:func:`rd_figure`).

    Examples
    --------
    >>> import tempfile; from pdeflow.evaluate.codec import evaluate, report, smooth_set
    >>> res = evaluate({"s": smooth_set(1, size=32)}, rates=[0.05, 2.0], codecs=["jpeg"])
    >>> with tempfile.TemporaryDirectory() as d: sorted(path.name for path in report(res).write(d))
    ['rd.png', 'report.md', 'results.json']
    """
    summ = summary(res)
    codecs = "\n".join(f"- {v['label']}: {v['about']}" for v in res["codecs"].values())
    fails = _failures(res)
    text = ("# Rate-distortion evaluation\n\n"
            f"Rates: {', '.join(f'{r:g}' for r in res['rates'])} bits per pixel; the budget is floor(bpp H W / 8) "
            "bytes for the whole file. A baseline's quality setting is searched (bisection) for the largest file "
            "within the budget. A codec that cannot meet a budget loses that image at that rate. PSNR and SSIM "
            "(Gaussian window) on [0, 1], decoded images on 8-bit levels against the 8-bit originals.\n\n"
            f"Codecs:\n\n{codecs}\n\n" + tables(res, summ)
            + "\n## Budgets not met\n\n" + ("\n".join(f"- {f}" for f in fails) if fails else "none") + "\n"
            + ("\n## Notes\n\n" + "\n".join(f"- {n}" for n in res["notes"]) + "\n" if res.get("notes") else ""))
    rep = Report()
    rep.add_text("report.md", text)
    rep.add_json("results.json", jsonable({**res, "summary": summ}))
    rep.add_figure("rd.png", rd_figure(res, summ))
    return rep
