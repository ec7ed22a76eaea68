"""The compiled extension ``_fgp_kernel`` (``_fgp_kernel.c``, ``_fgp_volume.c``: the fused CPU loops of FGP), whether
it runs, and a loop's rows split across threads: what the 2-D loops of ``_rof_methods`` and the volume loops of
``_fgp_volume`` share.

Each loop takes a range of rows (of an image; of slabs for a volume) and releases the GIL, so one call runs as one
range per thread of a pool. Without the extension (an install without a C compiler), or with the environment
variable ``PDEFLOW_FUSED=0`` set before import, the solvers run their PyTorch paths.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import torch

try:
    from ._fgp_kernel import certify, certify3, fgp_data, gap, gap3, momentum, project, step, step3, steps, tie_box
except ImportError:  # built without a C compiler (or an older build): the PyTorch path
    kernel = None
else:
    #: The loops, by name (the solvers call ``kernel.step``; the tests wrap them here).
    kernel = SimpleNamespace(certify=certify, certify3=certify3, fgp_data=fgp_data, gap=gap, gap3=gap3,
                             momentum=momentum, project=project, step=step, step3=step3, steps=steps, tie_box=tie_box)

__all__ = ["FUSED", "FUSED_GRAIN", "kernel", "row_ranges", "run_ranges"]

#: Whether the solvers run the compiled fused loops where they apply.
FUSED = kernel is not None and os.environ.get("PDEFLOW_FUSED", "1") != "0"

#: Elements (pixels or voxels, times channels and images) per thread below which a call runs on one thread.
FUSED_GRAIN = 1 << 17
_pool, _pool_size = None, 0


def row_ranges(B, C, H, W):
    """Ranges of the ``H`` rows of one call, one per thread: torch's thread count (what
    :func:`pdeflow.threads.auto_threads` sets), at most one per :data:`FUSED_GRAIN` elements of ``(B, C, H, W)``."""
    n = max(1, min(torch.get_num_threads(), B * C * H * W // FUSED_GRAIN, H))
    return [(H * k // n, H * (k + 1) // n) for k in range(n)]


def _run_threads(loop, ranges, args, after):
    """``loop(*args(k), r0, r1, *after(k))`` for the ``k``-th row range ``(r0, r1)``, each on a thread of a pool."""
    global _pool, _pool_size
    if _pool is None or _pool_size < len(ranges):
        from concurrent.futures import ThreadPoolExecutor
        _pool_size = max(len(ranges), os.cpu_count() or 1)
        _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="pdeflow-fgp")
    for future in [_pool.submit(loop, *args(k), *r, *after(k)) for k, r in enumerate(ranges)]:
        future.result()


def run_ranges(loop, ranges, args, after=None):
    """``loop(*args(k), r0, r1, *after(k))`` for every row range, on this thread where there is one (``after``: the
    loop's optional arguments)."""
    if after is None:
        after = _no_more
    if len(ranges) == 1:
        loop(*args(0), *ranges[0], *after(0))
    else:
        _run_threads(loop, ranges, args, after)


def _no_more(k):
    return ()
