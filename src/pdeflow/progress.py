"""Progress bars for long work: one switch, tqdm underneath."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


def progress_bar(*, total=None, enabled=True, **kwargs):
    """A tqdm bar written to stderr; a silent no-op when ``enabled`` is False.

    Use as a context manager; ``bar.update(n)`` advances it.
    """
    return tqdm(total=total, disable=not enabled, file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)
