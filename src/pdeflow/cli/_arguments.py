"""Command-line arguments of the ``pdeflow`` subcommands: the parser, argument types, shared options.

* :class:`ArgumentParser`: the parser of every subcommand (a usage error in one line).
* Argument types (:func:`positive_float`, :func:`density`, ...): one definition for every subcommand.
* Shared options and their checks: ``--device``/``--threads`` (:func:`add_compute_args`, :func:`check_compute`),
  ``--out``/``--overwrite`` (:func:`add_output_args`), ``--data`` folders (:func:`check_data_dir`).
* A config dataclass's fields as options (:func:`add_config_options`, :func:`config_kwargs`).
* :func:`add_command`: a subcommand, its description the docstring of the function that runs it.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
from pathlib import Path

import torch

from ..training.config import config_defaults
from ._commands import help_line


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


class StagedParser(ArgumentParser):
    """An argument parser whose ``--stage`` may name a stage with a parser of its own (:attr:`stages`), which
    then parses the whole command line: ``pdeflow train inpainting --stage masknet ...`` takes the options of
    the mask network's trainer, ``--stage wgan`` those of the GANs. With no stages it is a plain parser (the
    class of every ``pdeflow train`` subcommand's parser)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stages: dict[str, argparse.ArgumentParser] = {}

    def parse_known_args(self, args=None, namespace=None):
        if self.stages:
            try:
                stage = _STAGE.parse_known_args(args)[0].stage
            except argparse.ArgumentError:      # left to this parser to report
                stage = None
            if stage in self.stages:
                return self.stages[stage].parse_known_args(args, namespace)
        return super().parse_known_args(args, namespace)


# Reads --stage alone (anything else is left for the stage's parser); never exits.
_STAGE = argparse.ArgumentParser(add_help=False, exit_on_error=False)
_STAGE.add_argument("--stage", nargs="?")


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


def _fraction(what: str):
    """argparse type: a number in (0, 1), ``what`` saying of what in its message."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not 0.0 < v < 1.0:
            raise argparse.ArgumentTypeError(f"expected a number in (0, 1) ({what}), got {text!r}")
        return v

    parse.__name__ = "float"
    return parse


#: argparse type: a fraction of known pixels, in (0, 1).
density = _fraction("a fraction of known pixels")
#: argparse type: an RMS error as a fraction of the image's range, in (0, 1).
accuracy = _fraction("an RMS error as a fraction of the image's range")


def density_or_all(text: str) -> float | None:
    """argparse type: a fraction of known pixels in (0, 1), or 'all' (None: one model for every density)."""
    return None if text == "all" else density(text)


def ssim_size(text: str) -> int:
    """argparse type: an image size in pixels of an evaluation, at least the SSIM window (11)."""
    v = positive_int(text)
    if v < 11:
        raise argparse.ArgumentTypeError(f"sizes must be at least 11 px (the SSIM window), got {text!r}")
    return v


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


def config_kwargs(cls, args) -> dict:
    """The values of parsed arguments for the fields of ``cls`` that are command-line options."""
    return {f.name: tuple(getattr(args, f.name)) if f.metadata["cli"]["nargs"] else getattr(args, f.name)
            for f in dataclasses.fields(cls) if "cli" in f.metadata}


def add_command(sub, name: str, run, *, description: str | None = None, examples=(),
                note: str | None = None, epilog: str | None = None, validate=None) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``sub`` (the subparsers of ``pdeflow`` or of a command group), run by
    ``run(args) -> int``; returns its parser, for the options.

    ``--help`` shows the command's line of :data:`pdeflow.cli._commands.ADDERS` in the list of subcommands (the
    table that lets ``pdeflow --help`` import no subcommand module), then as the description ``run``'s docstring (one
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
    group = sub._prog_prefix.partition(" ")[2]    # "" for pdeflow itself, "train" for `pdeflow train`
    p = sub.add_parser(name, help=help_line(group, name), description=description, epilog=epilog, **kw)
    p.set_defaults(run=run, validate=validate, parser=p)
    return p


def stopping_rule(args) -> str:
    """The TV solvers' stopping rule of a command line in words (``--tol``, else ``--accuracy``)."""
    if args.tol is not None:
        return f"tol {args.tol:g}"
    return f"accuracy {args.accuracy:g}"
