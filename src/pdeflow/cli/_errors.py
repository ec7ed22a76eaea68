"""The errors of the ``pdeflow`` command: a user error, a termination signal, a failed output write."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserInputError

PROG = "pdeflow"


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
