"""``pdeflow compress``, ``decompress`` and ``evaluate codec``: pdeflow's image codec (:mod:`pdeflow.codec`)
on the command line, and its rate-distortion evaluation against JPEG, JPEG 2000, WebP, AVIF and JPEG XL
(:mod:`pdeflow.evaluate.codec`).

:func:`add_parsers` registers ``compress`` and ``decompress`` on the top-level subparsers of ``pdeflow``;
:func:`add_evaluate_parser` registers ``codec`` on the subparsers of ``pdeflow evaluate``.
"""
from __future__ import annotations

import argparse
import functools
import re
import tempfile
import time
from pathlib import Path

import torch

from .. import codec
from .. import io as pio
from ..errors import UserInputError
from ._arguments import add_command, nonneg_int, positive_float, positive_int, ssim_size
from ._batch import add_batch_args, check_batch, file_task, run_batch_command
from ._errors import CLIError
from ._inputs import load_input
from ._outputs import Outputs

__all__ = ["add_parsers", "add_evaluate_parser"]

#: What ``decompress`` writes: the suffixes of :func:`pdeflow.io.write_image`.
IMAGE_SUFFIXES = pio.WRITE_SUFFIXES
#: The help of ``--max-pixels``, on both sides.
MAX_PIXELS_HELP = f"largest image, height x width in pixels (default {codec.MAX_PIXELS}, a 4K image twice)"
#: Images of at least this many pixels show the encoder's progress (a bar on a terminal, lines in a log).
PROGRESS_PIXELS = 1 << 20
#: The encoder's arguments and the options that set them, for its errors.
ENCODE_ARGUMENTS = {"image": "IMAGE", "bpp": "--bpp", "size": "--size", "max_pixels": "--max-pixels"}
#: The default number of synthetic piecewise-smooth scenes of ``evaluate codec`` (grey only).
SMOOTH_SCENES = 8


#: ``--layers`` choices: the ``split`` of :func:`pdeflow.codec.encode` each stands for.
LAYERS = {"best": None, "inpainting": 1.0, "wavelet": 0.0}


def add_parsers(sub) -> None:
    """Register ``pdeflow compress`` and ``pdeflow decompress``."""
    p = add_command(sub, "compress", _run_compress,
                    examples=["pdeflow compress photo.png --bpp 0.1 --out photo.pdc",
                              "pdeflow compress builtin:skimage/camera --size 2000 --out camera.pdc",
                              "pdeflow compress photo.png --bpp 0.05 --operator eed --out photo-eed.pdc",
                              "pdeflow compress photos/ --bpp 0.1 --workers 2 --out compressed/"],
                    validate=_check_compress)
    g = p.add_argument_group("input")
    g.add_argument("image", metavar="IMAGE", nargs="+",
                   help="image file (PNG, JPEG, TIFF, DICOM) or builtin:NAME (a built-in image, centre 256x256 "
                        "crop); `pdeflow samples` lists the built-in names; or several files, folders or patterns: "
                        "a batch (below), FILE then a folder")
    g.add_argument("--grey", "--gray", dest="grey", action="store_true",
                   help="convert a colour image to grey (luminance) first (default: keep its channels)")
    b = p.add_argument_group("budget (exactly one)").add_mutually_exclusive_group(required=True)
    b.add_argument("--bpp", type=positive_float, metavar="B",
                   help="bits per pixel: the file has at most B H W / 8 bytes")
    b.add_argument("--size", type=positive_int, metavar="BYTES", help="the file has at most BYTES bytes")
    p.add_argument("--operator", choices=tuple(codec.CODEC_OPERATORS), default="diffusion",
                   help="the decoder's inpainting, recorded in FILE: diffusion (homogeneous, default), eed "
                        "(edge-enhancing: sharper edges at the same size; encoding takes several times as long) or "
                        "shepard (Gaussian-weighted Shepard interpolation: no equation solved)")
    p.add_argument("--layers", choices=tuple(LAYERS), default="best",
                   help="what FILE codes: best (default: the inpainting alone and the wavelet layer alone are both "
                        "tried and the smaller error kept), inpainting (the known pixels and --operator alone, a "
                        "version-1 file) or wavelet (the wavelet layer alone)")
    p.add_argument("--max-pixels", type=positive_int, default=codec.MAX_PIXELS, metavar="N",
                   help=MAX_PIXELS_HELP + "; a larger IMAGE is refused before any work (its FILE then needs "
                        "`pdeflow decompress --max-pixels` as large)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="FILE", required=True, help="the compressed file (its folder is created)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    add_batch_args(p, volumes=False)

    p = add_command(sub, "decompress", _run_decompress,
                    examples=["pdeflow decompress photo.pdc --out photo.png",
                              "pdeflow decompress compressed/ --workers 2 --out decoded/"],
                    validate=_check_decompress)
    p.add_argument("file", metavar="FILE", nargs="+",
                   help=f"a file written by `pdeflow compress`; or several files, folders (of {codec.SUFFIX} files) or "
                        "patterns: a batch (below), IMAGE then a folder")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="IMAGE", required=True,
                   help="the decoded image: .png, .tif or .tiff (its folder is created)")
    o.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bits per sample of IMAGE (default 8)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing IMAGE")
    p.add_argument("--max-pixels", type=positive_int, default=codec.MAX_PIXELS, metavar="N",
                   help=MAX_PIXELS_HELP + "; a FILE whose header claims more is refused before anything is "
                        "allocated")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    add_batch_args(p, what="the files", inputs="FILE", volumes=False, pattern=f"compressed/**/*{codec.SUFFIX}")


def _check_compress(args) -> None:
    check_batch(args, volumes=False)


def _check_decompress(args) -> None:
    if check_batch(args, dest="file", volumes=False):
        return
    if Path(args.out).suffix.lower() not in IMAGE_SUFFIXES:
        args.parser.error(f"argument --out: '{args.out}' must end in {', '.join(IMAGE_SUFFIXES)}")


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _file_outputs(target: str, overwrite: bool, inputs=()) -> tuple[Outputs, str]:
    """The :class:`Outputs` of one file ``--out FILE``: its folder and its name."""
    path = Path(target)
    if not path.name or target.endswith(("/", "\\")):
        raise CLIError(f"argument --out: '{target}' names a folder; give a file name")
    return Outputs(path.parent, [path.name], overwrite=overwrite, inputs=inputs), path.name


def _run_compress(args) -> int:
    """Compress IMAGE with pdeflow's codec to at most --bpp bits per pixel (B H W / 8 bytes) or --size bytes,
    headers included: a sparse set of known pixels chosen by the encoder, their values quantised and entropy
    coded; the decoder inpaints the rest (see pdeflow.codec). Writes FILE; `pdeflow decompress FILE --out
    IMAGE` decodes it. Several files, folders or patterns are a batch: each file's FILE is written as
    --out/NAME.pdc, NAME its path in its folder."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.batch is not None:
        fn = functools.partial(codec.encode, bpp=args.bpp, size=args.size, operator=args.operator,
                               split=LAYERS[args.layers], max_pixels=args.max_pixels)
        task = file_task(fn, write="bytes", grey=True if args.grey else None)
        return run_batch_command(args, [(task, "")], suffix=codec.SUFFIX, what="images")
    u, label, path = load_input(argparse.Namespace(image=args.image, size=None, grey=True if args.grey else None))
    C, H, W = u.shape
    out, name = _file_outputs(args.out, args.overwrite, inputs=[path])
    flag, budget = (("--bpp", f"{args.bpp:g} bpp ({codec.budget_bytes(args.bpp, H, W)} bytes)")
                    if args.bpp is not None else ("--size", f"{args.size} bytes"))
    with out:
        t0 = time.perf_counter()
        try:
            data = codec.encode(u, bpp=args.bpp, size=args.size, operator=args.operator, split=LAYERS[args.layers],
                                max_pixels=args.max_pixels, progress=H * W >= PROGRESS_PIXELS)
        except UserInputError as exc:
            raise CLIError(_encode_error(exc, flag)) from None
        secs = time.perf_counter() - t0
        out.raw(name, data)
    kind = "grey" if C == 1 else "colour"
    print(f"compressed {label}, {kind}, {_layers(data, args.operator)}, to {len(data)} bytes = "
          f"{8 * len(data) / (H * W):.4f} bpp (budget {budget}) in {secs:.1f} s; wrote {out.paths[name]}")
    return 0


def _layers(data: bytes, operator: str) -> str:
    """What the file codes: the inpainting with ``operator``, the wavelet layer alone, or both (the encoder keeps
    whichever codes the image better, so a wavelet-only file records an operator it does not use)."""
    layers = codec.format.read_layers(data, None)[0].layers
    return {codec.format.LAYER_INPAINTING: f"{operator} inpainting",
            codec.format.LAYER_RESIDUAL: "wavelet layer (no inpainting: it coded the image better)",
            }.get(layers, f"{operator} inpainting and the wavelet layer on its residual")


def _encode_error(exc: UserInputError, flag: str) -> str:
    """An error of :func:`pdeflow.codec.encode` as ``argument OPTION: ...``, the option the one that the message's
    argument comes from (the budget's for "a budget of ... is too small")."""
    text = _one_line(exc).removeprefix("encode: ")
    first = text.split()[0].split("=")[0] if text else ""
    option = ENCODE_ARGUMENTS.get(first, flag if text.startswith("a budget") else "IMAGE")
    text = re.sub(r"\bmax_pixels=(\d+)", r"--max-pixels \1", text)
    text = re.sub(r"\b(bpp|size)( >= |=)", lambda m: f"--{m[1]}{' ' if m[2] == '=' else m[2]}", text)
    text = text.replace("pass a larger max_pixels, or None, to encode and to decode",
                        "pass a larger --max-pixels, to compress and to decompress")
    return f"argument {option}: {text}"


def _run_decompress(args) -> int:
    """Decode FILE, written by `pdeflow compress`, and write the image (PNG or TIFF, --bits per sample). A file
    that is not a pdeflow codec file, or is damaged, is refused with one line (exit status 2). Several files,
    folders or patterns are a batch: each file's IMAGE is written as --out/NAME.png, NAME its path in its folder."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.batch is not None:
        task = file_task(functools.partial(codec.decode, max_pixels=args.max_pixels, channel_axis=0), read="bytes",
                         bits=args.bits)
        return run_batch_command(args, [(task, "")], suffix=".png", suffixes=(codec.SUFFIX,), what="files")
    src = Path(args.file)
    if not src.is_file():
        raise CLIError(f"argument FILE: {'not a file' if src.exists() else 'no such file'}: '{args.file}'")
    data = src.read_bytes()
    out, name = _file_outputs(args.out, args.overwrite, inputs=[src])
    with out:
        t0 = time.perf_counter()
        try:
            # (C, H, W) whatever layout the file records: an image file has its own
            img = codec.decode(data, max_pixels=args.max_pixels, channel_axis=0)
        except UserInputError as exc:      # CodecError: not a codec file, or damaged
            text = _one_line(exc).replace("(decode(data, max_pixels=...) accepts larger images)",
                                          "(--max-pixels accepts larger images)")
            text = re.sub(r"\bmax_pixels=(\d+)", r"--max-pixels \1", text)
            raise CLIError(f"argument FILE: '{args.file}' cannot be decoded: {text}") from None
        secs = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:      # the image's bytes, staged by Outputs as one file
            png = pio.write_image(Path(tmp) / f"image{Path(name).suffix.lower()}", img, bits=args.bits)
            out.raw(name, png.read_bytes())
    C, H, W = img.shape
    print(f"decoded {args.file} ({len(data)} bytes = {8 * len(data) / (H * W):.4f} bpp): {H}x{W}, "
          f"{'grey' if C == 1 else 'colour'}, in {secs:.1f} s; wrote {out.paths[name]}")
    return 0


def add_evaluate_parser(evaluate_sub) -> None:
    """Register ``codec`` on the subparsers of ``pdeflow evaluate``."""
    from ..evaluate import codec as evaluation  # the evaluation and its report modules: for this command only

    rates = " ".join(f"{r:g}" for r in evaluation.RATES)
    p = add_command(evaluate_sub, "codec", _run_evaluate,
                    examples=["pdeflow evaluate codec --image-dir photos/ --out codec-eval/",
                              "pdeflow evaluate codec --codecs pdeflow jpeg jpeg2000 --rates 0.1 0.2 --out e/"],
                    validate=_check_evaluate)
    g = p.add_argument_group("images")
    g.add_argument("--image-dir", nargs="+", default=[], metavar="DIR",
                   help="folders of photographs, one image set each (sorted by name)")
    g.add_argument("--no-builtin", dest="builtin", action="store_false",
                   help="leave out the built-in TEST photographs (default: a set of them)")
    g.add_argument("--smooth", type=nonneg_int, default=None, metavar="N",
                   help=f"synthetic piecewise-smooth scenes (default {SMOOTH_SCENES}; 0: none; grey only)")
    g.add_argument("--seed", type=nonneg_int, default=0, help="seed of the synthetic scenes (default 0)")
    g.add_argument("--size", type=ssim_size, default=256, metavar="PX",
                   help="every image reduced so that its shorter side is PX, then its centre PX x PX square "
                        "(default 256); smaller images are left out")
    g.add_argument("--n-images", type=positive_int, default=None, metavar="N",
                   help="at most N images of each set (default: all)")
    g.add_argument("--colour", "--color", dest="colour", action="store_true",
                   help="colour (RGB) photographs (default: grey, their luminance)")
    g = p.add_argument_group("codecs and rates")
    g.add_argument("--codecs", nargs="+", choices=tuple(evaluation.CODECS), default=None, metavar="NAME",
                   help=f"among {' '.join(evaluation.CODECS)} (default: every one that can run here but "
                        "pdeflow-eed, whose encoder is slow; a named one whose package is missing is an error)")
    g.add_argument("--rates", type=positive_float, nargs="+", default=list(evaluation.RATES), metavar="B",
                   help=f"bits per pixel (default {rates})")
    o = p.add_argument_group("computation and output")
    o.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    o.add_argument("--out", metavar="DIR", default="codec-eval", help="output directory (default ./codec-eval)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")


def _check_evaluate(args) -> None:
    for d in args.image_dir:
        if not Path(d).is_dir():
            args.parser.error(f"argument --image-dir: '{d}' is not a directory")
    if args.colour and args.smooth:
        args.parser.error("argument --smooth: the synthetic scenes are grey; leave it out with --colour")
    if args.smooth is None:
        args.smooth = 0 if args.colour else SMOOTH_SCENES
    if len(set(args.rates)) != len(args.rates):
        args.parser.error("argument --rates: values must differ")
    if args.codecs is not None and len(set(args.codecs)) != len(args.codecs):
        args.parser.error("argument --codecs: names must differ")
    if not (args.image_dir or args.builtin or args.smooth):
        args.parser.error("argument --no-builtin: no image set left (give --image-dir or --smooth N)")


def _run_evaluate(args) -> int:
    """Rate-distortion evaluation of pdeflow's codec against JPEG, JPEG 2000 and WebP (Pillow), AVIF and JPEG XL
    (the optional package imagecodecs) on image sets: the built-in TEST photographs, --image-dir folders of
    photographs and synthetic piecewise-smooth scenes. For every rate the budget is the whole file; each
    baseline's quality setting is searched for the largest file within it, and a codec that cannot meet a
    budget loses that image at that rate (listed in the report). PSNR and SSIM against bits per pixel, the
    PSNR differences and wins of pdeflow against JPEG and JPEG 2000, BD-rates. Writes report.md, results.json
    and rd.png into --out."""
    from ..evaluate import codec as evaluation

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names, notes = args.codecs, []
    if names is None:
        default = [evaluation.CODECS[c] for c in evaluation.DEFAULT_CODECS]
        names = [entry.name for entry in default if entry.check() is None]
        notes = [f"{entry.label} left out: {entry.check()}" for entry in default if entry.check() is not None]
    try:
        codecs = [evaluation.get_codec(c) for c in names]
    except UserInputError as exc:
        raise CLIError(f"argument --codecs: {_one_line(exc)}") from None
    out = Outputs(args.out, ["report.md", "results.json", "rd.png"], overwrite=args.overwrite)
    channels = 3 if args.colour else 1
    sets = {}
    if args.builtin:
        sets["builtin"] = evaluation.builtin_set(size=args.size, channels=channels, limit=args.n_images)
    for d in args.image_dir:
        key = Path(d).resolve().name or "photos"
        try:
            sets[key if key not in sets else d] = evaluation.photo_set(d, size=args.size, channels=channels,
                                                                       limit=args.n_images)
        except UserInputError as exc:
            raise CLIError(f"argument --image-dir: {_one_line(exc)}") from None
    if args.smooth:
        sets["smooth"] = evaluation.smooth_set(min(args.smooth, args.n_images or args.smooth), size=args.size,
                                               seed=args.seed)
    for key in [k for k, v in sets.items() if not v]:
        notes.append(f"image set {key} left out: no image of at least {args.size} px a side")
        del sets[key]
    if not sets:
        raise CLIError(f"argument --size: no image of any set is at least {args.size} px a side")
    for note in notes:
        print(f"note: {note}")
    print(f"codecs: {', '.join(c.label for c in codecs)}; sets: "
          + ", ".join(f"{k} ({len(v)} images)" for k, v in sets.items()), flush=True)
    t0 = time.perf_counter()
    results = evaluation.evaluate(sets, rates=args.rates, codecs=codecs, progress=True)
    results["notes"] = notes
    with out:
        paths = out.report(evaluation.report(results))
    print(f"wrote {', '.join(str(p) for p in paths)} in {time.perf_counter() - t0:.0f} s")
    return 0
