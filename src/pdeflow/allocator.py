"""The C allocator of a process that works on large images.

glibc's ``malloc`` serves a large allocation (above its mmap threshold, at most 32 MiB) with a fresh
memory mapping and unmaps it again when it is freed. A 4K image in float32 (33 MB) sits at that
threshold, one in float64 or a batch of images above it. pdeflow's iterative solvers create and free
such tensors in every iteration (CG's search direction, the multigrid V-cycle's layouts, each operator's
result), and every fresh mapping costs the kernel one page fault per 4 KiB page when it is first
written. On a 4K image that is a large share of the CPU time, spent in the kernel (docs/install.md
shows how to see it).

:func:`retain_freed_memory` has glibc serve every allocation from its heap and keep freed memory for the
next one, so the pages are faulted in once. The cost: the process's resident memory stays at its peak
instead of shrinking after it (what a short-lived command does anyway). The ``pdeflow`` command calls it
when it starts; a Python program that works on large images can call it once, before its work. It is
process-wide and cannot be undone from Python; it does nothing where the C library is not glibc.

:func:`release_free_memory` is the opposite, once: it hands the free pages of the heap back to the system.
A process that runs many tasks, each allocating and freeing arrays of one size (a Dask worker solving the
blocks of a large image), otherwise finds its resident memory creeping above what any one task holds, as
the heap fragments over the tasks.

:func:`map_large_allocations` gives every allocation above a fixed size its own mapping (glibc otherwise raises
that size to the largest block freed): a process that allocates a few large arrays per task and none per
iteration then holds what its task holds.
"""
from __future__ import annotations

import ctypes
import functools
import platform
import sys

__all__ = ["retain_freed_memory", "release_free_memory", "map_large_allocations"]

# mallopt's parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4


@functools.cache
def _libc_function(name: str, *argtypes):
    """glibc's function ``name`` taking ``argtypes`` and returning an int, or None on a platform without it; one
    handle a process (the store tasks ask for it twice a task, and every handle is a new library object and a new
    class)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = list(argtypes), ctypes.c_int
    return fn


def retain_freed_memory() -> bool:
    """Have the C allocator keep freed memory for reuse instead of returning it to the system.

    Sets glibc's ``M_MMAP_MAX`` to 0 (no allocation gets its own memory mapping) and
    ``M_TRIM_THRESHOLD`` to 2 GiB (the heap is not shrunk after a peak); see the module docstring
    for why this makes large images faster.

    Returns
    -------
    bool
        True if the settings were applied; False on a platform without glibc, where nothing changes.

    Examples
    --------
    >>> import platform
    >>> from pdeflow.allocator import retain_freed_memory
    >>> retain_freed_memory() == (platform.libc_ver()[0] == "glibc")     # applied on Linux with glibc
    True
    """
    mallopt = _libc_function("mallopt", ctypes.c_int, ctypes.c_int)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def release_free_memory() -> bool:
    """Hand the free pages of the C allocator's heap back to the system (glibc's ``malloc_trim(0)``).

    The heap keeps what a program frees for the next allocation; where freed and live blocks interleave it
    cannot shrink, and a process that runs many tasks in turn grows above the largest of them. Calling this
    between tasks keeps its resident memory at what the next task holds (the pages are faulted in again when
    used).

    Returns
    -------
    bool
        True if memory was released; False if there was none to release, or on a platform without glibc.

    Examples
    --------
    >>> from pdeflow.allocator import release_free_memory
    >>> _ = release_free_memory()      # between two tasks
    """
    trim = _libc_function("malloc_trim", ctypes.c_size_t)
    if trim is None:
        return False
    return bool(trim(0))


def map_large_allocations(threshold: int = 1 << 18) -> bool:
    """Serve every allocation of at least ``threshold`` bytes with its own memory mapping, unmapped when freed.

    Sets glibc's ``M_MMAP_THRESHOLD``, which also stops glibc from raising it as large blocks are freed (see the
    module docstring). Process-wide; without effect after :func:`retain_freed_memory` (no mappings at all).

    Parameters
    ----------
    threshold : int
        Bytes, at most ``32 << 20`` (glibc's limit).

    Returns
    -------
    bool
        True if the setting was applied; False on a platform without glibc.

    Examples
    --------
    >>> import platform
    >>> from pdeflow.allocator import map_large_allocations
    >>> map_large_allocations() == (platform.libc_ver()[0] == "glibc")
    True
    """
    mallopt = _libc_function("mallopt", ctypes.c_int, ctypes.c_int)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold)))
