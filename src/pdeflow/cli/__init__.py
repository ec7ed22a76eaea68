"""The ``pdeflow`` command: thin subcommands over the Python API.

Subcommands (``pdeflow SUBCOMMAND --help`` for the options of each), one module per pillar or concept:

* :mod:`pdeflow.cli.denoise`: ``denoise``.
* :mod:`pdeflow.cli.flow`: ``flow``, ``demo``.
* :mod:`pdeflow.cli.spectral`: ``spectral``.
* :mod:`pdeflow.cli.samples`: ``samples``.
* :mod:`pdeflow.cli.tvflownet`: ``train tvflownet``, ``train tvflownet-average``, ``evaluate tvflownet``.
* :mod:`pdeflow.cli.iel`: ``iel-experiment``.
* :mod:`pdeflow.cli.inpaint`: ``mask``, ``inpaint``.
* :mod:`pdeflow.cli.inpaint_evaluate`: ``evaluate inpainting``.
* :mod:`pdeflow.cli.inpaint_train`: ``train inpainting``, ``train masknet``, ``train residual``.
* :mod:`pdeflow.cli.codec`: ``compress``, ``decompress``, ``evaluate codec``.

Adding a subcommand: in the pillar's module, a function adds it with
``add_command(sub, NAME, _run_NAME, examples=[...], validate=_check_NAME)``
(:func:`pdeflow.cli._arguments.add_command`) and its options (with the shared option
groups of :mod:`pdeflow.cli._arguments`); ``_run_NAME(args) -> int`` calls the library and
its docstring is the command's ``--help`` description; a row of ``_commands.ADDERS`` names the
module, the adding function and the command's help line, and :func:`build_parser` calls the
adding function only when the command line names the command (or to build every subcommand): the
other subcommands' modules, and the parts of the library behind them, are not imported.
The optional ``validate`` checks argument combinations after parsing
(call ``args.parser.error(...)``); raise :class:`CLIError` for user errors found later
(one line, exit status 2); every command's ``args.parser`` is its own parser. All output files go through
:class:`Outputs`, which gives the overwrite, same-as-input and no-partial-output
rules for free, and turns a failed write (a full disk) into one line and exit status 74.
A warning raised while a subcommand runs is shown as one line that names the subcommand's options
where the library's message names its arguments (``max_iter``, ``tol``): a subcommand declares them
with ``set_defaults(warning_flags=[(argument, dest, flag), ...])`` (:func:`cli_wording`).

Import rule: nothing outside ``pdeflow.cli`` imports it; a subcommand module imports the shared
plumbing (the private modules here, one per concept: ``_errors``, ``_arguments``, ``_outputs``,
``_inputs``, ``_training``, ``_commands``) and the library, never another subcommand module; the plumbing imports no
subcommand module.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import math
import re
import signal
import sys
import threading
import warnings

from .. import __version__
from ..allocator import retain_freed_memory
from ..errors import UserInputError
from ..training import WARNING_WORDING
from ._arguments import ArgumentParser, StagedParser
from ._commands import ADDERS, GROUPS, requested
from ._errors import PROG, CLIError, OutputWriteError
from ._errors import Terminated as _Terminated
from ._outputs import Outputs

__all__ = ["main", "build_parser", "Outputs", "CLIError"]


#: The scale and time convention, stated once for every subcommand (``pdeflow --help``).
CONVENTION = """\
Intensity scale and time: the image commands (denoise, flow, spectral, demo, mask, inpaint)
read images in [0, 1] and use them as they are (--scale 1). A flow time t, a time step --dt and
a ROF weight --lam are in units of that [0, 1] image, with unit pixel spacing: t is the time of
u_t = div(grad u / |grad u|). The TVflowNET paper (Grossmann et al., 2022) multiplies images
by 5 and reports times on that scale: its time t is t / 5 here, since
flow(5 u0, t) = 5 flow(u0, t / 5); pass --scale 5 to `flow` and `spectral` to work in its
units. `flow --method net` converts for the shipped TVflowNET models, so its times are those of
the reference solver. `train tvflownet` (--scale 5 by default) and `evaluate tvflownet` use the
paper's convention, to compare with its tables."""


#: The exit status of a command whose output could not be written (a full disk): sysexits.h's EX_IOERR, apart
#: from the 2 of bad input, since the same command may succeed once there is room.
WRITE_ERROR_STATUS = 74
#: Errors that only a write meets (a full disk, a quota, a read-only file system): outside
#: :class:`Outputs` too (a training run's checkpoint), they are the file system's, not a bug.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})

#: The exit statuses of every subcommand (``pdeflow --help``).
EXIT_STATUS = f"""\
Exit status: 0 done; 2 bad input (one line naming the argument); {WRITE_ERROR_STATUS} an output file could not
be written (a full disk, say: one line naming the file and the reason; no partial output is left);
130 interrupted (Ctrl-C); 143 terminated (SIGTERM)."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def subcommand_group(sub, name: str, *, help: str, description: str, dest: str,
                     metavar: str, parser_class=ArgumentParser) -> argparse._SubParsersAction:
    """Add command ``name`` with subcommands of its own to ``sub``; returns its subparsers (whose parsers are
    of ``parser_class``)."""
    p = sub.add_parser(name, help=help, description=description)
    return p.add_subparsers(dest=dest, metavar=metavar, required=True, parser_class=parser_class)


#: The library's arguments that its warnings name (``raise max_iter or tol``), and how a warning words one that
#: the subcommand has no option for.
_NO_OPTION = {"max_iter": "the iteration cap", "tol": "the tolerance"}
_ARGUMENT = re.compile(r"\b(max_iter|tol)\b(?:=([^\s,;)]+))?")


def _same_value(text: str, value) -> bool:
    try:
        return math.isclose(float(text), float(value), rel_tol=1e-4)
    except (TypeError, ValueError):
        return False


def cli_wording(text: str, args) -> str:
    """``text``, a library warning, with the arguments it names in the subcommand's options.

    A subcommand declares its options with ``set_defaults(warning_flags=[(argument, dest, flag), ...])``:
    ``tol=1e-05`` becomes ``--tol 1e-05``. Where several options set one argument (``train tvflownet``:
    ``--ref-tol``, ``--val-tol``), the one whose value the text quotes is named, and a later bare ``tol`` in
    the text means the same; an argument the subcommand has no option for is described
    (``the iteration cap``).
    """
    flags = getattr(args, "warning_flags", ())
    named: dict[str, str] = {}

    def option(match: re.Match) -> str:
        name, value = match.groups()
        choices = [(flag, getattr(args, dest, None)) for arg, dest, flag in flags if arg == name]
        quoted = [flag for flag, v in choices if value is not None and _same_value(value, v)]
        if quoted:
            named[name] = quoted[0]
        flag = named.get(name) or (choices[0][0] if choices else None)
        return (flag or _NO_OPTION[name]) + ("" if value is None else f" {value}")

    return _ARGUMENT.sub(option, text)


@contextlib.contextmanager
def _warnings_worded_for(args):
    """While a subcommand runs, a warning is shown as one line, ``PROG: warning: TEXT``, that names the
    subcommand's options (:func:`cli_wording`), as is a training run's summary of them."""
    def one_line(message, category, filename, lineno, line=None):
        return f"{args.parser.prog}: warning: {cli_wording(' '.join(str(message).split()), args)}\n"

    previous, warnings.formatwarning = warnings.formatwarning, one_line
    token = WARNING_WORDING.set(lambda text: cli_wording(text, args))
    try:
        yield
    finally:
        warnings.formatwarning = previous
        WARNING_WORDING.reset(token)


def _write_failed(prog: str, path, error: OSError, note: str = "") -> int:
    """Print ``PROG: error: cannot write 'PATH': REASON (ERRNO NAME)`` and return :data:`WRITE_ERROR_STATUS`."""
    name = errno.errorcode.get(error.errno) if error.errno is not None else None
    reason = (error.strerror or str(error)) + (f" ({name})" if name else "")
    target = f"'{path}'" if path is not None else "an output file"
    print(f"{prog}: error: cannot write {target}: {reason}{note}", file=sys.stderr)
    return WRITE_ERROR_STATUS


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The parser of ``pdeflow``.

    With ``argv`` (a command line) only the subcommand that it names is built in full, from its module; the
    others are their names and help lines (:data:`~pdeflow.cli._commands.ADDERS`), so that parsing imports no
    other subcommand module and ``pdeflow --version``, ``--help`` or a usage error none. Without, every
    subcommand is built in full (the documentation's, the help snapshot's parser).
    """
    wanted = requested(argv) if argv is not None else None
    parser = ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="pdeflow: image processing with evolution PDEs (TV flow, spectral TV, ...).\n\n" + CONVENTION,
        epilog=f"`{PROG} SUBCOMMAND --help` describes each subcommand.\n\n" + EXIT_STATUS)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subs = {"": parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)}
    for group, module, adder, commands in ADDERS:
        if group not in subs:
            help_text, description, dest, metavar = GROUPS[group]
            subs[group] = subcommand_group(subs[""], group, help=help_text, description=description, dest=dest,
                                           metavar=metavar, parser_class=StagedParser)   # train inpainting --stage
        if argv is None or wanted in ((group, c) for c in commands):
            getattr(importlib.import_module(f"{__name__}.{module}"), adder)(subs[group])
        else:
            for name, help_text in commands.items():   # only listed: this command line does not run it
                subs[group].add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None) -> int:
    """Run ``pdeflow`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    retain_freed_memory()      # large images: no page faults for every tensor freed and made again
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        validate = getattr(args, "validate", None)
        if validate is not None:
            validate(args)
    except SystemExit as exc:  # argparse: --help, --version or a usage error (status 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    # SIGTERM (kill, timeout) unwinds like Ctrl-C, removing this run's partial outputs.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with _warnings_worded_for(args):
            return int(args.run(args) or 0)
    except UserInputError as exc:  # CLIError included; any other exception is a bug: traceback
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except OutputWriteError as exc:
        return _write_failed(args.parser.prog, exc.path, exc.error, "; no partial output files were left")
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        return _write_failed(args.parser.prog, exc.filename, exc)
    except (KeyboardInterrupt, _Terminated) as exc:
        # only a training run (--run-dir) has checkpoints to keep
        keeps = " (a training run keeps its last checkpoint, to resume from)" if hasattr(args, "run_dir") else ""
        print(f"{args.parser.prog}: {'terminated' if isinstance(exc, _Terminated) else 'interrupted'}; "
              f"its partial output files were removed{keeps}", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
