"""The IMAGE of the ``pdeflow`` subcommands: a file, a built-in image or a volume.

* :func:`load_input`: an image file or ``builtin:NAME``, in [0, 1], ``--size`` centre-cropped.
* Input volumes (:func:`check_volume_args`, :func:`load_volume`, :class:`VolumeInput`): an IMAGE that is a
  volume (decided by :func:`pdeflow.io.is_volume`) is read by :func:`pdeflow.io.read_volume`, mapped to
  [0, 1] for the solvers and written back in its own units.
* What ``denoise`` and the flow commands share: :data:`SIZE_HELP`, :func:`check_nd_solver` (a 2-D-only
  solver refused for a volume or --spacing), :func:`print_spacing`.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path

import torch

from .. import datasets, viz
from .. import io as pio
from ..errors import UserInputError
from ..tv import ND_METHODS
from ._arguments import positive_floats
from ._errors import PROG, CLIError

DEFAULT_BUILTIN = "skimage/camera"
DEFAULT_BUILTIN_SIZE = 256


def centre_crop(u: torch.Tensor, size: int | None, *, strict: bool, ndim: int = 2) -> torch.Tensor:
    """``--size``: the last ``ndim`` axes (an image's H, W; a volume's D, H, W) centre-cropped to at most
    ``size``; ``strict``: a size larger than an axis is a usage error."""
    if size is None:
        return u
    shape = tuple(u.shape[-ndim:])
    if strict and any(size > n for n in shape):
        raise CLIError(f"argument --size: {size} is larger than the image ({'x'.join(map(str, shape))})")
    starts = [(n - min(size, n)) // 2 for n in shape]
    return u[(..., *(slice(a, a + min(size, n)) for a, n in zip(starts, shape)))].contiguous()


def load_input(args) -> tuple[torch.Tensor, str, Path | None]:
    """The image named by ``args.image``: (tensor (C, H, W) in [0, 1], label, file path or None)."""
    spec = args.image
    grey = getattr(args, "grey", True)
    if spec is None or spec.startswith("builtin:"):
        name = DEFAULT_BUILTIN if spec is None else spec[len("builtin:"):]
        if name not in datasets.builtin_names():
            raise CLIError(f"argument IMAGE: unknown built-in image {name!r}; "
                           f"`{PROG} samples` lists them")
        full = datasets.builtin_image(name, grey=grey)
        size = DEFAULT_BUILTIN_SIZE if args.size is None else args.size
        u = centre_crop(full, size, strict=args.size is not None)
        H, W = u.shape[-2:]
        how = f"centre {H}x{W} crop" if u.shape != full.shape else f"{H}x{W}"
        return u, f"builtin:{name} ({how})", None
    path = Path(spec)
    if not path.exists():
        hint = f"; did you mean builtin:{spec}?" if spec in datasets.builtin_names() else ""
        raise CLIError(f"argument IMAGE: no such file: '{spec}'{hint}")
    try:
        u, info = pio.read_image(path, grey=grey, return_info=True)
    except (ValueError, OSError) as exc:
        msg = str(exc)
        msg = msg[len("read_image: "):] if msg.startswith("read_image: ") else msg
        raise CLIError(f"argument IMAGE: {msg}") from None
    if not bool(torch.isfinite(u).all()):
        raise CLIError(f"argument IMAGE: '{spec}' contains NaN or infinite values")
    if info.get("alpha"):   # transparency has no place in [0, 1] intensities: said, not silently lost
        print(f"{PROG}: note: IMAGE '{spec}' has an alpha channel (transparency); it is dropped: transparent "
              "pixels keep their stored colour", file=sys.stderr)
    u = centre_crop(u, args.size, strict=True)
    return u, f"{spec} ({u.shape[-2]}x{u.shape[-1]})", path


#: The help of IMAGE's volume forms, and of the options they add.
VOLUME_HELP = ("or a volume: a 3-D .npy, a .nii/.nii.gz, a multi-page TIFF or a multi-frame DICOM file, or a "
               "folder of DICOM slices (one series)")


SPACING_HELP = ("grid spacing, overriding the file's: dz dy dx for a volume (default: its header's, in mm for "
                "DICOM and NIfTI; 1 on axes it gives none for), dy dx for an image (default 1 1: pixels); "
                "lambda and flow times are in its unit of length")


VOLUME_FORMAT_HELP = ("volume results: the file format (default: the input's, .tif for DICOM; .npy holds no "
                      "spacing, .nii.gz needs nibabel)")


#: The output suffix of each read_volume format, unless --volume-format says otherwise.
_VOLUME_OUT = {"NPY": ".npy", "TIFF": ".tif", "DICOM": ".tif"}


def add_volume_args(input_group, output_group) -> None:
    """``--spacing`` (input) and ``--volume-format`` (output) of the commands that take volumes."""
    input_group.add_argument("--spacing", type=positive_floats, nargs="+", default=None, metavar="H",
                             help=SPACING_HELP)
    output_group.add_argument("--volume-format", choices=tuple(pio.VOLUME_FORMATS), default=None,
                              help=VOLUME_FORMAT_HELP)


def check_volume_args(args) -> None:
    """After parsing: set ``args.volume`` (IMAGE is a volume, :func:`pdeflow.io.is_volume`) and check what
    depends on it (``--spacing``'s length, ``--colour``, ``--volume-format``), as usage errors."""
    spec = args.image
    args.volume = spec is not None and not spec.startswith("builtin:") and pio.is_volume(spec)
    spacing = getattr(args, "spacing", None)
    if spacing is not None:
        want, names = (3, "dz dy dx") if args.volume else (2, "dy dx")
        if len(spacing) != want:
            what = f"IMAGE '{spec}' is a volume" if args.volume else "IMAGE is a 2-D image"
            args.parser.error(f"argument --spacing: {what}: give {want} values ({names}), got {len(spacing)}")
        args.spacing = tuple(float(h) for h in spacing)
    if args.volume and getattr(args, "grey", None) is False:
        args.parser.error("argument --colour: a volume is read as one grey-value channel")
    if not args.volume and getattr(args, "volume_format", None) is not None:
        args.parser.error("argument --volume-format: only for a volume IMAGE")


@dataclasses.dataclass
class VolumeInput:
    """A volume IMAGE as the commands use it: ``data`` ``(D, H, W)`` float32 min-max mapped to [0, 1] (so
    --lam, --times and --noise mean what they mean for an image), ``lo``/``hi`` the file's range (written
    results go back to the file's units), ``spacing`` ``(dz, dy, dx)``, ``suffix`` of the written volumes."""

    data: torch.Tensor
    lo: float
    hi: float
    spacing: tuple
    unit: str
    label: str     # for titles
    about: str     # the line the command prints first
    path: Path
    suffix: str

    @functools.cached_property
    def window(self) -> tuple[float, float]:
        """The display window of the figures, in [0, 1] units: 0.5 % and 99.5 % of the input's values, so that a
        few extreme voxels (metal in a CT, a hot spot in an MR) do not leave the tissue grey on grey."""
        return viz.robust_range(self.data, 0.005, 0.995)

    def shown(self, u: torch.Tensor) -> torch.Tensor:
        """``u`` (in [0, 1] units) in the display window, for the figures."""
        return viz.stretch(u.detach().cpu().double(), *self.window)

    def window_note(self) -> str:
        lo, hi = (float(self.in_units(torch.tensor(w))) for w in self.window)
        return (f"spacing {' x '.join(f'{h:.3g}' for h in self.spacing)} {self.unit}; shown: values {lo:.4g} "
                f"(black) to {hi:.4g} (white), 0.5-99.5 % of the input")

    def in_units(self, u: torch.Tensor) -> torch.Tensor:
        """Values in [0, 1] units back in the file's units."""
        return u.double() * (self.hi - self.lo) + self.lo

    def diff_in_units(self, b: torch.Tensor) -> torch.Tensor:
        """A difference of values (a spectral band) in the file's units."""
        return b.double() * (self.hi - self.lo)


def load_volume(args) -> VolumeInput:
    """The volume IMAGE (``args.volume``, set by :func:`check_volume_args`), ``--size`` centre-cropping each
    axis to at most SIZE."""
    spec = args.image
    path = Path(spec)
    try:
        vol, spacing, info = pio.read_volume(path, spacing=getattr(args, "spacing", None), rescale="minmax",
                                             return_info=True)
    except (UserInputError, FileNotFoundError, OSError) as exc:
        msg = str(exc)
        msg = msg[len("read_volume: "):] if msg.startswith("read_volume: ") else msg
        raise CLIError(f"argument IMAGE: {msg}") from None
    full = tuple(vol.shape)
    vol = centre_crop(vol, getattr(args, "size", None), strict=False, ndim=3)
    lo, hi = info["range"]
    fmt = getattr(args, "volume_format", None)
    if fmt is not None:
        suffix = pio.VOLUME_FORMATS[fmt]
    elif info["format"] == "NIfTI":
        suffix = ".nii.gz" if path.name.lower().endswith(".gz") else ".nii"
    else:
        suffix = _VOLUME_OUT[info["format"]]
    D, H, W = vol.shape
    crop = f", centre crop of {'x'.join(map(str, full))}" if tuple(vol.shape) != full else ""
    src = info["spacing_from"]
    if src[0] == "argument":
        unit, where = "", "from --spacing"
    elif "header" not in src:
        unit, where = "", "(the file gives none: unit voxels; --spacing sets it)"
    else:
        unit = info["unit"] if info["unit"] != "unknown" else "(unit unknown)"
        where = "from the header" + ("" if "default" not in src else f" where given (axes: {', '.join(src)})")
    label = f"{path.name or spec} ({D}x{H}x{W}{crop})"
    about = (f"volume: {spec}, {info['format']}, {D}x{H}x{W}{crop}; values {lo:.6g} to {hi:.6g}, mapped to [0, 1] "
             f"for the solvers and back for the written volumes ({suffix}); spacing (dz, dy, dx) = "
             f"({', '.join(f'{h:.4g}' for h in spacing)}){' ' + unit if unit else ''} {where}")
    return VolumeInput(vol, lo, hi, tuple(spacing), unit or "units", label, about, path, suffix)


#: --size's help, for the commands that take an image or a volume.
SIZE_HELP = (f"centre-crop to SIZE x SIZE (default: whole file; built-in images: {DEFAULT_BUILTIN_SIZE} or "
             "smaller; a volume: each axis to at most SIZE)")


def check_nd_solver(args, name: str, method: str) -> None:
    """A solver that runs on 2-D images with unit spacing only, refused for a volume or --spacing."""
    if method not in ND_METHODS and (args.volume or args.spacing is not None):
        why = f"IMAGE '{args.image}' is a volume" if args.volume else "--spacing is given"
        args.parser.error(f"argument {name}: {method} runs on 2-D images with unit spacing only and {why}; "
                          f"use one of {', '.join(ND_METHODS)}")


def print_spacing(args) -> None:
    """The line saying an image's --spacing, if given."""
    if args.spacing is not None:
        print(f"spacing (dy, dx) = ({', '.join(f'{h:g}' for h in args.spacing)}) from --spacing (lambda and times "
              "in its unit)")
