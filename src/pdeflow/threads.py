"""Torch's thread count on a busy machine when torch was imported before pdeflow.

torch runs its parallel kernels on an OpenMP thread pool (libgomp on Linux).
Under OpenMP's default wait policy the pool's threads *spin* for a while after
each parallel region instead of sleeping; pdeflow's solvers run many small
per-pixel kernels, so the pool spins nearly all the time. When other processes
also want the cores, the spinning threads take the cores that torch's main
thread needs, and a solve runs many times slower than with the passive
policy (see the results page "Speed and accuracy of the solvers", section
"Busy machines: OpenMP's wait policy").

The runtime reads ``OMP_WAIT_POLICY`` once, when torch loads it. So:

* ``import pdeflow`` (any pdeflow import) before ``import torch`` sets
  ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is already set: nothing
  spins. The ``pdeflow`` command works this way.
* If torch was imported first (and neither ``OMP_WAIT_POLICY`` nor
  ``GOMP_SPINCOUNT`` was set), the policy can no longer change. pdeflow's
  long-running solvers (:func:`~pdeflow.tv.tv_flow`, :func:`~pdeflow.tv.rof`,
  :func:`~pdeflow.tv.spectral_tv`, :func:`~pdeflow.inpaint.inpaint_diffusion` and the
  mask optimisers) then count, when called, the threads of *other* processes
  that are running or waiting for a core (Linux ``/proc/loadavg``), and if
  fewer cores than ``torch.get_num_threads()`` are free they lower torch's
  thread count to the free cores (at least 1) for the duration of the call and
  restore it afterwards. With fewer threads than free cores nothing is left to
  spin on a core another process wants. The check is one snapshot at the start
  of the outermost call: a machine that becomes busy during a long call is not
  noticed until the next call.

Set the environment variable ``PDEFLOW_AUTO_THREADS=0`` to turn the
adjustment off (your own ``torch.set_num_threads`` is then left alone
entirely). It never raises a thread count, and does nothing when the wait
policy or spin count was set explicitly, when torch was imported after
pdeflow, or on systems without ``/proc``.

The remaining cost for a user who imports torch first on a busy machine is the
lost intra-op parallelism during pdeflow's solvers (the passive policy would
keep it); set ``OMP_WAIT_POLICY=PASSIVE`` in the shell, or import pdeflow
before torch, to avoid even that.
"""
from __future__ import annotations

import functools
import glob
import os
import sys
import threading

# torch is imported inside the functions: `import pdeflow` runs `set_wait_policy` from here, and the
# policy only takes effect if torch is not loaded yet.

__all__ = ["set_wait_policy", "SPINS_AT_IMPORT", "openmp_spins", "other_running_threads", "free_cores",
           "auto_threads"]

_local = threading.local()

#: Whether torch's OpenMP threads spin while waiting: torch was imported before pdeflow, with neither
#: ``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT`` set. Recorded once, by :func:`set_wait_policy`.
SPINS_AT_IMPORT = False


def set_wait_policy() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` if torch is not loaded yet, and record whether its threads spin.

    ``import pdeflow`` calls it once. The user's own ``OMP_WAIT_POLICY`` wins. If torch is already
    loaded the OpenMP runtime has read the policy, so nothing is set and :data:`SPINS_AT_IMPORT`
    records that the pool spins (unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` was set).

    Returns
    -------
    bool
        :data:`SPINS_AT_IMPORT`.

    Examples
    --------
    >>> from pdeflow import threads
    >>> isinstance(threads.SPINS_AT_IMPORT, bool)    # recorded by ``import pdeflow``
    True
    """
    global SPINS_AT_IMPORT
    torch_loaded = "torch" in sys.modules
    SPINS_AT_IMPORT = (torch_loaded and "OMP_WAIT_POLICY" not in os.environ
                       and "GOMP_SPINCOUNT" not in os.environ)
    if not torch_loaded:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return SPINS_AT_IMPORT


def openmp_spins() -> bool:
    """Whether torch's OpenMP threads spin while waiting and pdeflow adjusts for it.

    True when torch was imported before pdeflow with neither
    ``OMP_WAIT_POLICY`` nor ``GOMP_SPINCOUNT`` set, and
    ``PDEFLOW_AUTO_THREADS`` is not ``0``.

    Examples
    --------
    >>> from pdeflow.threads import openmp_spins
    >>> isinstance(openmp_spins(), bool)
    True
    """
    return SPINS_AT_IMPORT and os.environ.get("PDEFLOW_AUTO_THREADS", "1") != "0"


def other_running_threads() -> int | None:
    """Threads of other processes running or runnable right now (Linux), else None.

    The system-wide count of runnable scheduling entities (the fourth field
    of ``/proc/loadavg``) minus this process's threads in state ``R``.

    Examples
    --------
    >>> from pdeflow.threads import other_running_threads
    >>> n = other_running_threads()
    >>> n is None or n >= 0
    True
    """
    try:
        with open("/proc/loadavg") as fh:
            total = int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    own = 0
    for stat in glob.glob("/proc/self/task/*/stat"):
        try:
            with open(stat) as fh:
                s = fh.read()
        except OSError:  # the thread ended
            continue
        own += s[s.rindex(")") + 2:s.rindex(")") + 3] == "R"
    return max(0, total - max(own, 1))


def free_cores() -> int | None:
    """Cores this process may use (its CPU affinity) not taken by other
    processes' running threads, at least 1; None where it cannot be told.

    Examples
    --------
    >>> from pdeflow.threads import free_cores
    >>> n = free_cores()
    >>> n is None or n >= 1
    True
    """
    others = other_running_threads()
    if others is None:
        return None
    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count() or 1
    return max(1, ncpu - others)


def auto_threads(fn):
    """Decorator: run ``fn`` with torch's thread count lowered to the free
    cores when :func:`openmp_spins` (see the module docstring); nested calls
    check only once.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.threads import auto_threads
    >>> @auto_threads
    ... def total(x):
    ...     return x.sum()
    >>> total(torch.ones(3)).item()
    3.0
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if getattr(_local, "active", False) or not openmp_spins():
            return fn(*args, **kwargs)
        import torch

        before = torch.get_num_threads()
        n = before
        if before > 1:
            free = free_cores()
            if free is not None:
                n = min(before, free)
        _local.active = True
        try:
            if n < before:
                torch.set_num_threads(n)
            return fn(*args, **kwargs)
        finally:
            _local.active = False
            if n < before:
                torch.set_num_threads(before)

    return wrapper
