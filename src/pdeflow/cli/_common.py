"""Shared plumbing of the ``pdeflow`` command: errors, argument types, output files, input images.

Every ``pdeflow.cli`` module imports this one and the library, never a sibling.

* :class:`CLIError`: a user error found while running a subcommand (one line, exit status 2).
* Argument types (:func:`positive_float`, ...): one definition for every subcommand.
* :class:`Outputs`: the files one invocation writes into ``--out``, all of them or none.
* Input volumes (:func:`check_volume_args`, :func:`load_volume`, :class:`VolumeInput`): an IMAGE that is a
  volume (decided by :func:`pdeflow.io.is_volume`) is read by :func:`pdeflow.io.read_volume`, mapped to
  [0, 1] for the solvers and written back in its own units.
* What ``denoise`` and the flow commands share: :func:`time_labels`, :data:`SIZE_HELP`,
  :func:`check_nd_solver` (a 2-D-only solver refused for a volume or --spacing), :func:`print_spacing`.
* :class:`ArgumentParser`: the parser of every subcommand (a usage error in one line).
* :func:`add_command`: a subcommand, its description the docstring of the function that runs it.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import inspect
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .. import datasets, viz
from .. import io as pio
from ..errors import UserInputError
from ..training.config import config_defaults
from ..tv import ND_METHODS

PROG = "pdeflow"
DEFAULT_BUILTIN = "skimage/camera"
DEFAULT_BUILTIN_SIZE = 256


class CLIError(UserInputError):
    """A user error found while running a subcommand: printed as one line, exit status 2.

    Any :class:`~pdeflow.errors.UserInputError` raised by the library is printed the same way; every other
    exception is a bug and shows its traceback.
    """


class Terminated(BaseException):
    """SIGTERM turned into an exception, so that partial outputs are cleaned up."""


class OutputWriteError(Exception):
    """Output file ``path`` could not be written (a full disk): ``error`` is the OSError that said why."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(path, error)
        self.path, self.error = path, error


class ArgumentParser(argparse.ArgumentParser):
    """The parser of ``pdeflow`` and of every subcommand: a usage error is one line that ends in a hint
    (argparse's usage, many lines before it, would hide it)."""

    def error(self, message: str):
        """Print ``PROG: error: MESSAGE; see `PROG --help``` to stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but unrecognized arguments are reported by the subcommand that was given (its
        ``args.parser``), so that the hint names that subcommand's ``--help``."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            getattr(parsed, "parser", self).error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


# ---------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------

def _number(kind: str, *, positive: bool = False, nonneg: bool = False, hint: str = ""):
    """argparse type: a finite float (or int), optionally > 0 or >= 0."""
    conv = int if kind == "int" else float
    need = " > 0" if positive else (" >= 0" if nonneg else "")

    def parse(text: str):
        try:
            v = conv(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a{'n integer' if kind == 'int' else ' number'}{need}, "
                                             f"got {text!r}{hint}") from None
        if (kind == "float" and not math.isfinite(v)) or (positive and v <= 0) or (nonneg and v < 0):
            raise argparse.ArgumentTypeError(f"expected a finite {'integer' if kind == 'int' else 'number'}{need}, "
                                             f"got {text!r}")
        return v

    parse.__name__ = kind  # argparse names the type in its messages
    return parse


positive_float = _number("float", positive=True)
nonneg_float = _number("float", nonneg=True)
#: For lists of numbers (nargs="+"), which would swallow a following IMAGE.
nonneg_floats = _number("float", nonneg=True, hint=" (give IMAGE before the list)")
#: For --spacing (nargs="+"), which would swallow a following IMAGE.
positive_floats = _number("float", positive=True, hint=" (give IMAGE before the list)")
positive_int = _number("int", positive=True)
nonneg_int = _number("int", nonneg=True)


def density(text: str) -> float:
    """argparse type: a fraction of known pixels, in (0, 1)."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) (a fraction of known pixels), got {text!r}")
    return v


def density_or_all(text: str) -> float | None:
    """argparse type: a fraction of known pixels in (0, 1), or 'all' (None: one model for every density)."""
    return None if text == "all" else density(text)


def ssim_size(text: str) -> int:
    """argparse type: an image size in pixels of an evaluation, at least the SSIM window (11)."""
    v = positive_int(text)
    if v < 11:
        raise argparse.ArgumentTypeError(f"sizes must be at least 11 px (the SSIM window), got {text!r}")
    return v


# ---------------------------------------------------------------------------
# Output files: all or nothing
# ---------------------------------------------------------------------------

class Outputs:
    """The files one invocation writes into ``--out``: all of them, or none.

    ``Outputs(out_dir, names, overwrite=..., inputs=[...])`` checks, before any
    work, that no planned file exists (unless ``overwrite``) and that none is an
    input file. Inside ``with outputs:`` each ``image``/``figure``/``npy``/``csv``
    call writes a temporary file beside its target (via
    :func:`pdeflow.io.atomic_path`); they are renamed onto their targets
    together when the block ends without error. On any error (including Ctrl-C)
    the temporary files are removed, as is any target already renamed in this
    invocation and the output directory if this invocation created it and it is
    left empty. A file that cannot be written or committed (a full disk, no
    permission) raises :class:`OutputWriteError` naming it.
    """

    def __init__(self, out_dir, names, *, overwrite: bool = False, inputs=()):
        self.dir = Path(out_dir)
        self.names = list(names)
        self.overwrite = overwrite
        self.paths = {n: self.dir / n for n in self.names}
        self.written: list[Path] = []
        self._stack: contextlib.ExitStack | None = None
        self._created: list[Path] = []
        self._committing: Path | None = None
        check_writable_dir(self.dir, "--out")
        for inp in inputs:
            if inp is None:
                continue
            if Path(inp).is_dir() and _same_file(self.dir, Path(inp)):
                raise CLIError(f"argument --out: '{self.dir}' is the input folder; choose another --out directory")
            for p in self.paths.values():
                if _same_file(p, Path(inp)):
                    raise CLIError(f"argument --out: output file '{p}' is the input image; "
                                   "choose another --out directory")
        for p in self.paths.values():
            if p.is_dir():
                raise CLIError(f"argument --out: output path '{p}' is a directory")
            if not overwrite and (p.exists() or p.is_symlink()):
                raise CLIError(f"argument --out: '{p}' already exists (pass --overwrite to replace it)")

    def __enter__(self):
        missing = []
        d = self.dir
        while not d.exists():
            missing.append(d)
            d = d.parent
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"argument --out: cannot create directory '{self.dir}': {exc.strerror or exc}") from None
        self._created = missing  # innermost first
        self._stack = contextlib.ExitStack().__enter__()
        return self

    @contextlib.contextmanager
    def _staged(self, path: Path):
        with pio.atomic_path(path, overwrite=self.overwrite) as tmp:
            yield tmp
            self._committing = path    # atomic_path's exit flushes and renames: a failure there is this file's
        self.written.append(path)  # reached only once atomic_path has renamed tmp onto path

    @contextlib.contextmanager
    def _tmp(self, name: str):
        """The temporary file of ``name``; an OSError while writing it becomes an :class:`OutputWriteError`."""
        if self._stack is None:
            raise AssertionError("Outputs: write inside `with outputs:`")
        if name not in self.paths:
            raise AssertionError(f"Outputs: '{name}' was not planned")
        tmp = self._stack.enter_context(self._staged(self.paths[name]))
        try:
            yield tmp
        except OSError as exc:
            raise OutputWriteError(self.paths[name], exc) from None

    def image(self, name: str, img) -> None:
        with self._tmp(name) as tmp:
            pio.write_image(tmp, img, overwrite=True)

    def figure(self, name: str, fig) -> None:
        with self._tmp(name) as tmp:
            fig.savefig(tmp, format="png", dpi=fig.dpi)

    def volume(self, name: str, vol, spacing) -> None:
        """A volume ``(D, H, W)`` in the format of ``name``'s suffix (a ``.npy`` file holds no spacing)."""
        fmt = next(f for f, suffix in pio.VOLUME_FORMATS.items() if name.endswith(suffix))
        with self._tmp(name) as tmp:
            pio.write_volume(tmp, vol, spacing=None if fmt == "npy" else spacing, overwrite=True, format=fmt)

    def npy(self, name: str, array) -> None:
        arr = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        with self._tmp(name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)

    def csv(self, name: str, header, rows) -> None:
        with self._tmp(name) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)

    def raw(self, name: str, data: bytes) -> None:
        with self._tmp(name) as tmp, open(tmp, "wb") as fh:
            fh.write(data)

    def report(self, rep) -> list[Path]:
        """Stage every file of a :class:`pdeflow.reporting.Report`; returns their target paths."""
        for name, data in rep.files.items():
            self.raw(name, data)
        return [self.paths[n] for n in rep.files]

    def __exit__(self, exc_type, exc, tb):
        stack, self._stack = self._stack, None
        try:
            stack.__exit__(exc_type, exc, tb)  # commits every file, or removes every temporary file
        except FileExistsError as err:  # a file appeared at a target while we worked
            self._cleanup()
            if exc_type is None:
                raise CLIError(f"argument --out: {err}") from None
            raise
        except OSError as err:  # flushing or renaming a file failed (a full disk)
            self._cleanup()
            if exc_type is None:
                raise OutputWriteError(self._committing, err) from None
            raise
        except BaseException:
            self._cleanup()
            raise
        if exc_type is not None:
            self._cleanup()
        return False

    def _cleanup(self) -> None:
        for p in self.written:
            with contextlib.suppress(OSError):
                p.unlink()
        self.written = []
        for d in self._created:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty


def check_writable_dir(path, name: str) -> None:
    """Refuse, before any work, a directory argument (``--out``, ``--run-dir``) that cannot be written.

    ``path`` may not exist yet (it will be created): then its nearest existing ancestor must be a
    writable directory. The test is a real one (a temporary file created and removed), so it also
    holds for root, for read-only file systems and for a path running through a regular file.
    Raises :class:`CLIError` naming the argument.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise CLIError(f"argument {name}: '{path}' exists and is not a directory")
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise CLIError(f"argument {name}: '{probe}' is a broken symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise CLIError(f"argument {name}: cannot create '{path}': '{probe}' is a file, not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".pdeflow-write-test-", dir=probe)
    except OSError as exc:
        raise CLIError(f"argument {name}: cannot write to '{probe}': {exc.strerror or exc}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


# ---------------------------------------------------------------------------
# Input images
# ---------------------------------------------------------------------------

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
        u = pio.read_image(path, grey=grey)
    except (ValueError, OSError) as exc:
        msg = str(exc)
        msg = msg[len("read_image: "):] if msg.startswith("read_image: ") else msg
        raise CLIError(f"argument IMAGE: {msg}") from None
    if not bool(torch.isfinite(u).all()):
        raise CLIError(f"argument IMAGE: '{spec}' contains NaN or infinite values")
    u = centre_crop(u, args.size, strict=True)
    return u, f"{spec} ({u.shape[-2]}x{u.shape[-1]})", path


# ---------------------------------------------------------------------------
# Input volumes
# ---------------------------------------------------------------------------

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
    if args.volume and not getattr(args, "grey", True):
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


def time_labels(times) -> list[str]:
    """Labels that show each time exactly (at least 2 decimals), e.g. 0.50, 1.00, 0.125."""
    for d in range(2, 10):
        if all(abs(round(t, d) - t) <= 1e-9 * max(1.0, abs(t)) for t in times):
            return [f"{t:.{d}f}" for t in times]
    return [repr(float(t)) for t in times]


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


def check_device(parser: argparse.ArgumentParser, device) -> torch.device:
    """``--device`` as a torch.device, or a usage error (status 2) naming the argument."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        parser.error(f"argument --device: not a torch device: {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: CUDA is not available here")
    return dev


def check_data_dir(parser: argparse.ArgumentParser, name: str, value) -> None:
    """A ``--data``-like argument: ``None``, ``"builtin"``, an existing directory or a list of them, else a
    usage error naming the first that is none of these."""
    for v in (value if isinstance(value, (list, tuple)) else [value]):
        if v not in (None, "builtin") and not Path(v).expanduser().is_dir():
            parser.error(f"argument {name}: {v!r} is neither 'builtin' nor a directory")


def config_error_as_argument(msg: str, args) -> str:
    """A trainer's config error (``"TrainConfig.lr: ..."``, ``"init: ..."``) as a command-line error that
    names the option (``"argument --lr: ..."``); other messages unchanged."""
    head, sep, rest = msg.partition(": ")
    field = head.rsplit(".", 1)[-1]
    if sep and field.isidentifier() and hasattr(args, field) and (head == field or head.endswith("Config." + field)):
        return f"argument --{field.replace('_', '-')}: {rest}"
    return msg


def check_trainer_args(args, config_from_args, check_config) -> None:
    """The checks every ``pdeflow train NAME`` shares: ``--data``/``--val-data`` folders,
    ``--device``, and the trainer's own config check, each a usage error naming the argument."""
    check_data_dir(args.parser, "--data", args.data)
    check_data_dir(args.parser, "--val-data", args.val_data)
    if args.device is not None:
        check_device(args.parser, args.device)
    try:
        check_config(config_from_args(args))
    except UserInputError as e:
        args.parser.error(config_error_as_argument(str(e), args))


def run_trainer(args, cfg, train) -> Path:
    """Run ``train(cfg, run_dir, device=, quiet=, command=)`` for a ``pdeflow train NAME`` command.

    Sets ``--threads``, records the command line in the run's provenance and turns the
    trainer's configuration errors into :class:`CLIError`. Returns what ``train`` returns
    (the exported model's JSON path).
    """
    from ..training import RunConfigError, invoked_command

    check_writable_dir(args.run_dir, "--run-dir")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return train(cfg, Path(args.run_dir), device=args.device, quiet=args.quiet, command=invoked_command())
    except RunConfigError as e:
        raise CLIError(f"argument --run-dir: {e}") from None
    except UserInputError as e:            # a config field found bad while setting up (data, init)
        raise CLIError(config_error_as_argument(str(e), args)) from None
    except FloatingPointError as e:        # a diverged run: its checkpoints are intact and resumable
        raise CLIError(str(e)) from None


def check_compute(args) -> None:
    """Shared checks of the compute options: device and threads."""
    args.device = check_device(args.parser, args.device)


def setup_compute(args) -> None:
    if args.threads is not None:
        torch.set_num_threads(args.threads)


def add_compute_args(p: argparse.ArgumentParser, threads: int | None = None, why: str = "") -> None:
    g = p.add_argument_group("computation")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--threads", type=positive_int, default=threads,
                   help=f"torch CPU threads (default: {threads or 'torch' + chr(39) + 's default'}{why})")


def add_output_args(p: argparse.ArgumentParser, required: bool = True):
    """Adds --out and --overwrite; returns the group, for more output options."""
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", required=required, default=None,
                   help="output directory (created if missing)")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return g


def report_written(out: Outputs) -> None:
    done = set(out.written)
    names = [n for n, p in out.paths.items() if p in done]
    print(f"wrote {len(names)} file{'s' if len(names) != 1 else ''} to {out.dir}/: {', '.join(names)}")


#: Argument types a config field may name in its ``option(type=...)`` metadata.
TYPES = {"positive_int": positive_int, "nonneg_int": nonneg_int, "positive_float": positive_float,
         "nonneg_float": nonneg_float, "float": float, "int": int, "density": density,
         "density_or_all": density_or_all}


def add_config_options(parser: argparse.ArgumentParser, cls, layout, *, types=None, extra=None,
                       defaults=None) -> None:
    """Add the options of config dataclass ``cls`` (its fields declared with :func:`pdeflow.training.option`).

    ``cls`` may be a tuple of config dataclasses whose options share one command line (a field without
    option metadata never shadows one with it). ``layout``: ``[(group title, [names])]``; a name is a
    field (option ``--name-with-dashes`` unless its metadata names it, ``dest`` the field name, default
    the field's default, help/type/choices from its metadata) or a command-line-only option ``"--flag"``
    added by ``extra["--flag"](group)``. ``types`` adds argument types to :data:`TYPES` for this parser;
    ``defaults`` replaces the command line's default of some fields (``None``: "not given", for a value
    that a later layer such as a preset fills in).
    """
    types = {**TYPES, **(types or {})}
    fields, field_defaults = {}, {}
    for c in (cls if isinstance(cls, tuple) else (cls,)):
        d = config_defaults(c)
        for f in dataclasses.fields(c):
            if "cli" in f.metadata:
                fields[f.name], field_defaults[f.name] = f, d
    for title, names in layout:
        g = parser.add_argument_group(title)
        for name in names:
            if name.startswith("--"):
                extra[name](g)
                continue
            md = fields[name].metadata["cli"]
            d = field_defaults[name]
            default = (defaults or {}).get(name, d[name])
            kw = {"help": md["help"].format(**{**d, "default": default})}
            flag = md.get("name") or "--" + name.replace("_", "-")
            if md["flag"]:
                kw["action"] = "store_true"
            elif md["negate"]:
                flag, kw["action"] = md["negate"], "store_false"
            else:
                kw["default"] = list(default) if md["nargs"] and default is not None else default
                if md["type"] is not None:
                    kw["type"] = types[md["type"]]
                for k in ("metavar", "choices", "nargs"):
                    if md[k] is not None:
                        kw[k] = md[k]
            g.add_argument(flag, dest=name, **kw)


def trainer_options(device_help: str) -> dict:
    """The options every ``pdeflow train NAME`` has besides its config (for :func:`add_config_options`)."""
    return {
        "--run-dir": lambda g: g.add_argument(
            "--run-dir", required=True, metavar="DIR",
            help="run directory (created; if it holds this run, training resumes from its last checkpoint)"),
        "--device": lambda g: g.add_argument("--device", default=None, help=device_help),
        "--threads": lambda g: g.add_argument("--threads", type=positive_int, default=None,
                                              help="torch CPU threads (default: torch's)"),
        "--quiet": lambda g: g.add_argument("--quiet", action="store_true", help="no progress bar"),
    }


def config_kwargs(cls, args) -> dict:
    """The values of parsed arguments for the fields of ``cls`` that are command-line options."""
    return {f.name: tuple(getattr(args, f.name)) if f.metadata["cli"]["nargs"] else getattr(args, f.name)
            for f in dataclasses.fields(cls) if "cli" in f.metadata}


def add_command(sub, name: str, run, *, help: str, description: str | None = None, examples=(),
                note: str | None = None, epilog: str | None = None, validate=None) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``sub`` (the subparsers of ``pdeflow`` or of a command group), run by
    ``run(args) -> int``; returns its parser, for the options.

    ``--help`` shows ``help`` in the list of subcommands, then as the description ``run``'s docstring (one
    paragraph: what the command does and writes) unless ``description`` is given, and after the options
    the ``examples`` (command lines, shown as written) followed by ``note``; or a free-form ``epilog``.
    ``validate(args)`` checks argument combinations after parsing (``args.parser.error(...)``).
    """
    if description is None:
        description = " ".join(inspect.getdoc(run).split()) if run.__doc__ else None
    kw = {}
    if examples:
        epilog = (f"example{'s' if len(examples) > 1 else ''}:\n" + "\n".join("  " + e for e in examples)
                  + (f"\n{note}" if note else ""))
        kw["formatter_class"] = argparse.RawDescriptionHelpFormatter   # the examples as written
    p = sub.add_parser(name, help=help, description=description, epilog=epilog, **kw)
    p.set_defaults(run=run, validate=validate, parser=p)
    return p

