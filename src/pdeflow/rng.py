"""The library's one randomness convention: ``generator: None | int | torch.Generator``.

``None`` draws from torch's global generator; an ``int`` is a seed (a fresh CPU
generator seeded with it, so the same int gives the same draw); a
:class:`torch.Generator` is used as given.
"""
from __future__ import annotations

import warnings
from numbers import Integral

import torch

__all__ = ["as_generator"]


def as_generator(generator, who: str, *, seed=None) -> torch.Generator | None:
    """``generator`` (None, an int seed or a torch.Generator) as a torch.Generator or None.

    ``seed`` is the deprecated former keyword of some functions: given, it warns and is used as
    ``generator`` (giving both is an error).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.rng import as_generator
    >>> g = as_generator(7, "example")
    >>> isinstance(g, torch.Generator), g.initial_seed()
    (True, 7)
    >>> as_generator(None, "example") is None
    True
    """
    if seed is not None:
        if generator is not None:
            from .errors import UserInputError
            raise UserInputError(f"{who}: pass generator (an int seed or a torch.Generator), not seed and generator")
        warnings.warn(f"{who}: seed= is deprecated, pass generator= (an int seed or a torch.Generator)",
                      DeprecationWarning, stacklevel=3)
        generator = seed
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, Integral) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(int(generator))
    raise TypeError(f"{who}: generator must be None, an int seed or a torch.Generator, got {type(generator).__name__}")
