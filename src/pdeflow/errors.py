"""The library's one error class for bad input.

:class:`UserInputError` is raised by the library's argument and configuration
checks (a wrong shape, an out-of-range parameter, an unknown option, a config
field outside its range). It is a :class:`ValueError`, so ``except ValueError``
still catches it. The ``pdeflow`` command prints it as one line with exit status
2; any other exception is a bug (or an environment problem) and shows its
traceback.
"""
from __future__ import annotations

__all__ = ["UserInputError"]


class UserInputError(ValueError):
    """Bad input: an argument or configuration value the function cannot accept; the message names it.

    Examples
    --------
    >>> from pdeflow.errors import UserInputError
    >>> try:
    ...     raise UserInputError("lam must be a positive number, got -1")
    ... except ValueError as err:
    ...     print(type(err).__name__, "-", err)
    UserInputError - lam must be a positive number, got -1
    """
