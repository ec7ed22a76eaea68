"""Local operators on dask arrays, exact with a halo: the inverse evolution layers.

``steps`` layers ``u <- u - dt F(u)`` of an operator whose stencil reaches ``reach`` pixels (the operator's own
``reach``: 1 for the ready evolutions of :data:`pdeflow.iel.EVOLUTIONS`) change a pixel by what lies within
``steps * reach`` pixels of it. Each chunk, grown by that halo from its neighbours
(:func:`dask.array.map_overlap` without a boundary of its own), runs :class:`pdeflow.iel.InverseEvolution`; the
halo is cut off again. Where the image ends the layers apply their own boundary condition, so the result equals
the single-array one up to round-off.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from ..errors import UserInputError
from ..iel import InverseEvolution
from .arrays import as_batched, check_ndim, from_batched, import_dask, spatial_depth, sweep

__all__ = ["iel"]


def _task(xb, *, faces, layers):
    dtype = torch.float64 if xb.dtype == np.float64 else torch.float32
    with torch.no_grad():
        out = layers(torch.from_numpy(np.ascontiguousarray(xb)).to(dtype))
    return out.numpy().astype(xb.dtype, copy=False)


def iel(x, operator="heat", *, dt: float = 0.025, steps: int = 30, boundary: str = "zero", reach: int | None = None,
        ndim: int | None = None):
    """:class:`pdeflow.iel.InverseEvolution` on a dask array: ``steps`` layers ``u <- u - dt F(u)``, chunk by chunk.

    Exact: every chunk is grown by ``steps * reach`` pixels from its neighbours, so each pixel sees what it sees
    on the single array (the module docstring, :mod:`pdeflow.dask.local`). Lazy: returns a dask array.

    Parameters
    ----------
    x : dask array, shape (H, W), (C, H, W) or (B, C, H, W); volumes with ``ndim=3``
        Logits, float32 or float64; chunks at least ``steps * reach`` pixels along axes that have several.
    operator : str or callable
        As :class:`pdeflow.iel.InverseEvolution` (a name of :data:`pdeflow.iel.EVOLUTIONS`, or ``F(u, boundary)``).
    dt, steps, boundary
        As :class:`pdeflow.iel.InverseEvolution`.
    reach : int, optional
        Pixels one application of ``F`` reaches. Default: the operator's own ``reach`` attribute (1 for the ready
        evolutions: 3 x 3 stencils); a callable without one must be given it.
    ndim : {2, 3}, optional
        3 for volumes.

    Returns
    -------
    dask array of the shape and dtype of ``x``

    Examples
    --------
    >>> import dask.array as da, numpy as np, torch
    >>> import pdeflow.dask
    >>> from pdeflow.iel import InverseEvolution
    >>> x = np.random.default_rng(0).random((1, 1, 40, 40)).astype(np.float32)
    >>> y = pdeflow.dask.iel(da.from_array(x, chunks=(1, 1, 20, 20)), "heat", dt=0.025, steps=5)
    >>> ref = InverseEvolution("heat", dt=0.025, steps=5)(torch.from_numpy(x)).numpy()
    >>> bool(np.allclose(y.compute(scheduler="sync"), ref, atol=1e-5))
    True
    """
    who = "pdeflow.dask.iel"
    import_dask()
    nd = check_ndim(ndim)
    x4, lead = as_batched(x, "x", nd, who)
    layers = InverseEvolution(operator, dt=dt, steps=steps, boundary=boundary)
    if reach is None:
        reach = getattr(layers.operator, "reach", None)
        if reach is None:
            raise UserInputError(f"{who}: reach must be given for an operator without a reach attribute (the pixels "
                                 "one application of F reaches), got a callable without one")
    if not isinstance(reach, numbers.Integral) or isinstance(reach, bool) or reach < 1:
        raise UserInputError(f"{who}: reach must be an integer >= 1, got {reach!r}")
    depth = spatial_depth(x4, layers.steps * int(reach))
    out = sweep(_task, [x4], depth, False, dtype=x4.dtype, layers=layers)
    return from_batched(out, lead)
