"""The library's one family of errors for bad input.

:class:`UserInputError` is raised by the library's argument and configuration
checks (a wrong shape, an out-of-range parameter, an unknown option, a config
field outside its range). It is a :class:`ValueError`, so ``except ValueError``
still catches it. The ``pdeflow`` command prints it as one line with exit status
2; any other exception is a bug (or an environment problem) and shows its
traceback.

Where a caller would naturally catch a built-in type, the error is a subclass of
both :class:`UserInputError` and that type, so either ``except`` clause catches it:

* :class:`InputFileNotFoundError` (also a :class:`FileNotFoundError`): a file, folder
  or model name that does not exist;
* :class:`InputIsADirectoryError` (also an :class:`IsADirectoryError`): a directory
  given where a file is expected;
* :class:`InputDtypeError` (also a :class:`TypeError`): a tensor of a dtype the function
  does not take, such as an integer image.
"""
from __future__ import annotations

__all__ = ["UserInputError", "InputFileNotFoundError", "InputIsADirectoryError", "InputDtypeError"]


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


class InputFileNotFoundError(UserInputError, FileNotFoundError):
    """A file, folder or model name given by the user that does not exist; the message names it.

    Both a :class:`UserInputError` and a :class:`FileNotFoundError`.

    Examples
    --------
    >>> from pdeflow.errors import InputFileNotFoundError, UserInputError
    >>> err = InputFileNotFoundError("read_image: no such file: 'x.png'")
    >>> isinstance(err, UserInputError), isinstance(err, FileNotFoundError)
    (True, True)
    """


class InputIsADirectoryError(UserInputError, IsADirectoryError):
    """A directory given where a file is expected; the message names it.

    Both a :class:`UserInputError` and an :class:`IsADirectoryError`.

    Examples
    --------
    >>> from pdeflow.errors import InputIsADirectoryError
    >>> isinstance(InputIsADirectoryError("read_image: 'd' is a directory"), IsADirectoryError)
    True
    """


class InputDtypeError(UserInputError, TypeError):
    """A tensor of a dtype the function does not take (an integer image, say); the message names the
    argument, its dtype and how to convert it.

    Both a :class:`UserInputError` and a :class:`TypeError`.

    Examples
    --------
    >>> from pdeflow.errors import InputDtypeError
    >>> isinstance(InputDtypeError("f must be floating-point, got torch.uint8"), TypeError)
    True
    """
