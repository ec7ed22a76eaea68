"""The tasks of a decomposed ROF solve (:mod:`pdeflow.dask.tv`, :mod:`pdeflow.dask.stream`): a block's dual
subproblem (a band around the seams in the staggered steps), ``u`` of a block, and a chunk's gap sums. Each takes a
block grown by one pixel where a neighbour is, with its ``faces``, as :func:`pdeflow.dask.arrays.sweep` gives it."""
from __future__ import annotations

import numpy as np
import torch

from ..tv.subdomain import block_gap, block_primal, block_tied_gap, solve_subdomain

# solve_dual_block, primal_block and gap_sums are the tasks pdeflow.dask.tv and pdeflow.dask.stream run (not in
# the API)
__all__ = ["band_reach", "seam_band", "BAND_PER_LAM", "BAND_MIN"]

def _view(block: np.ndarray) -> torch.Tensor:
    """``block`` as a tensor in its own dtype, without a copy unless it is read-only (a block dask shares)."""
    a = np.ascontiguousarray(block)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def solve_dual_block(fb, pb, *, faces, lam, C, tol, max_iter, overwrite: bool = False, budget=None, band=None,
                     reach=None):
    """One block's subproblem (a task of a step): ``fb`` (b, C, *S), ``pb`` (b, C n, *S), each grown by one pixel
    on the sides where a neighbour is. The block's pixel duals are free but for its last slab where a neighbour
    follows (they are the duals of the edges into it, held); the objective is over the block's own pixels; the
    slab before the block enters the divergence. So the blocks of one step are independent subproblems. Solved in
    :data:`SOLVE_DTYPE` of ``pb``'s dtype; ``overwrite``: ``pb`` may hold the iterate (a block of the caller's
    own, not one dask still holds). ``budget`` (per image, broadcasting against ``fb``): the duality gap per value
    that the whole image's accuracy allows (:meth:`pdeflow.dask.tv.Stopping.budget`); the block then stops at
    ``tol`` times its share of it, not at the relative gap ``tol``. ``band`` (a staggered block, :func:`seam_band`):
    per spatial axis None or the index in the grown block of the seam the block straddles; only the duals within
    ``reach`` (per image, pixels; the largest is taken) of those seams are then solved, the rest
    held (an empty band: none)."""
    if band is not None:
        return _solve_band(fb, pb, faces=faces, lam=lam, C=C, tol=tol, max_iter=max_iter, overwrite=overwrite,
                           budget=budget, band=band, reach=reach)
    spatial = fb.ndim - 2
    dtype = SOLVE_DTYPE.get(np.dtype(pb.dtype).name, torch.float64)
    f = _view(fb)       # read in its own dtype: the solver makes no copy of it
    p = _view(pb)
    own = overwrite or p.data_ptr() != torch.from_numpy(np.asarray(pb)).data_ptr()
    p = p.reshape(f.shape[0], C, spatial, *f.shape[2:])
    region = tuple(slice(lo, s - hi) for (lo, hi), s in zip(faces, f.shape[2:]))
    free = torch.zeros(f.shape[2:], dtype=torch.bool)
    free[tuple(slice(lo, s - 2 * hi) for (lo, hi), s in zip(faces, f.shape[2:]))] = True
    atol = None
    if budget is not None:
        values = C * int(np.prod([r.stop - r.start for r in region]))
        atol = tol * values * torch.as_tensor(np.asarray(budget, dtype=np.float64).reshape(-1))
    p = solve_subdomain(f, p, lam, free, region, tol=tol, max_iter=max_iter, overwrite=own, atol=atol, dtype=dtype)
    return p.reshape(pb.shape).numpy().astype(pb.dtype, copy=False)


def _solve_band(fb, pb, *, faces, band, reach, overwrite, **kwargs):
    """:func:`solve_dual_block` on the part of a staggered block within ``reach`` of its seams: that box, grown by
    a pixel inside the block (or by the block's own faces at its edges), is solved as a block of its own, and
    written back into the block's duals."""
    if any(b == "none" for b in band):
        return pb
    w = int(np.ceil(np.max(np.asarray(reach, dtype=np.float64))))
    box, sub_faces = [], []
    for (lo, hi), n, seam in zip(faces, fb.shape[2:], band):
        a, b = (lo, n - hi) if seam is None else (max(lo, seam - w), min(n - hi, seam + w))
        fa, fz = (lo if a == lo else 1), (hi if b == n - hi else 1)
        box.append((a, b))
        sub_faces.append((fa, fz))
    grown = (slice(None), slice(None)) + tuple(slice(a - fa, b + fz) for (a, b), (fa, fz) in zip(box, sub_faces))
    part = solve_dual_block(np.ascontiguousarray(fb[grown]), np.array(pb[grown]), faces=tuple(sub_faces),
                            overwrite=True, **kwargs)
    out = pb if overwrite else np.array(pb)
    inner = (slice(None), slice(None)) + tuple(slice(fa, fa + b - a) for (a, b), (fa, _) in zip(box, sub_faces))
    out[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in box)] = part[inner]
    return out


#: The half-width of the band a staggered block solves around its seam (:func:`seam_band`), in pixels per unit of
#: ``lam`` over the image's range (a change of ``f`` moves the ROF solution over a distance that grows with ``lam``
#: relative to the contrast), at least :data:`BAND_MIN`, at most half a chunk (the whole staggered block).
BAND_PER_LAM = 512.0
BAND_MIN = 8


def band_reach(ranges, lam: float):
    """Per image, the half-width in pixels of the bands of the staggered steps (:func:`seam_band`,
    :data:`BAND_PER_LAM`).

    Examples
    --------
    >>> from pdeflow.dask.rof_blocks import band_reach
    >>> band_reach([1.0, 2.0, 0.0], 0.1).tolist()      # 512 lam / range; a constant image: the whole block
    [51.2, 25.6, 1000000000.0]
    """
    r = np.asarray(ranges, dtype=np.float64)
    reach = np.full(r.shape, np.inf)
    np.divide(BAND_PER_LAM * lam, r, out=reach, where=r > 0)     # a constant image: the whole block
    return np.clip(reach, BAND_MIN, 1e9)


def seam_band(shifted, ends, region, faces) -> dict:
    """The keyword ``band`` of :func:`solve_dual_block` for a block of a staggered decomposition (``shifted``: per
    spatial axis whether it is staggered; ``ends``: the chunk boundaries of the unshifted decomposition per spatial
    axis) from the block's grown ``region`` (a (lo, hi) per spatial axis, or per batch and spatial axis: as
    :func:`pdeflow.dask.arrays.sweep`'s ``per_block`` is called) and ``faces``: per staggered axis the index in
    the grown block of the seam it straddles, or ``"none"`` where it straddles none (a block at the image's edge).

    Examples
    --------
    >>> from pdeflow.dask.rof_blocks import seam_band
    >>> ends = [[0, 8, 16, 24], [0, 8, 16]]
    >>> seam_band((True, False), ends, [(3, 13), (0, 9)], [(1, 1), (0, 1)])     # rows 4:12 straddle row 8
    {'band': (5, None)}
    >>> seam_band((True, False), ends, [(0, 5), (0, 9)], [(0, 1), (0, 1)])      # rows 0:4, at the image's edge
    {'band': ('none', None)}
    """
    region = list(region)[-len(faces):]
    band = []
    for k, ((lo, hi), (fa, fz)) in enumerate(zip(region, faces)):
        if not shifted[k]:
            band.append(None)
            continue
        seams = [e for e in ends[k][1:-1] if lo + fa < e < hi - fz]
        band.append(seams[0] - lo if seams else "none")
    return {"band": tuple(band)}


#: The dtype each block's dual subproblem is certified in, by the dtype of the dual field: float64 throughout (a
#: float32 field is solved in float64 and stored back in float32; the iterations run in float32 first, where the
#: block's target is within its reach: :func:`pdeflow.tv.subdomain.solve_subdomain`).
SOLVE_DTYPE = {"float32": torch.float64, "float64": torch.float64}


def primal_block(fb, pb, *, faces, lam, C):
    """``u = f + lam div p`` on a grown block (exact wherever the slab before the pixel is in the block), in the
    dtype of ``fb``."""
    f = _view(fb)
    p = _view(pb).reshape(f.shape[0], C, fb.ndim - 2, *f.shape[2:])
    return block_primal(f, p, lam).numpy().astype(fb.dtype, copy=False)


def gap_sums(fb, pb, *, faces, lam, C, tied=False):
    """The duality gap and the primal energy of the chunk's own pixels, per image: a (b, 2, 1, ...) block. With
    ``tied`` the gap is the smaller of that of ``u`` and that of the candidate tied on the chunk's flat regions
    (:func:`pdeflow.tv.subdomain.block_tied_gap`), its first slab after another chunk untied: the chunks'
    candidates, each chosen on its own, join into one of the whole image whose gap is the sum of theirs."""
    spatial = fb.ndim - 2
    f = _view(fb)
    p = _view(pb).reshape(f.shape[0], C, spatial, *f.shape[2:])
    # the gradient of the last pixel before the next chunk needs that chunk's first pixel: in the halo
    own = tuple(slice(lo, s - hi) for (lo, hi), s in zip(faces, f.shape[2:]))
    sums = block_gap(f, p, lam, own)
    if tied:
        first = torch.zeros(f.shape[2:], dtype=torch.bool)
        for k, (lo, _) in enumerate(faces):
            if lo:
                first[(slice(None),) * k + (lo,)] = True
        sums[:, 0] = torch.minimum(sums[:, 0], block_tied_gap(f, p, lam, own, untied=first))
    return sums.reshape(f.shape[0], 2, *(1,) * spatial).numpy()
