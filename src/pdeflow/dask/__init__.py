"""pdeflow's functions on dask arrays: images and volumes larger than one process's memory, chunk by chunk.

Every function takes and returns dask arrays of the tensor API's shapes ((H, W), (C, H, W), (B, C, H, W);
volumes ``(D, H, W)``... with ``ndim=3``), chunked in any way, and is lazy: nothing runs until the result is
computed (``.compute()``, ``dask.compute``, ``.to_zarr`` or :func:`pdeflow.io.write_zarr`), on whatever
scheduler is active (threads, or a ``dask.distributed`` cluster).

* Global problems -- :func:`rof`, :func:`tv_flow` (:mod:`~pdeflow.dask.tv`) and :func:`inpaint` with every
  operator of :data:`pdeflow.inpaint.OPERATORS` (:mod:`~pdeflow.dask.inpaint`) -- give the single-array answer to
  a stated tolerance by overlapping domain decomposition (restricted additive Schwarz): sweeps of subdomain
  solves on chunks grown by an overlap, a global reduction after each sweep deciding whether to stop. Not
  blending: the subdomains exchange their values until the global problem is solved.
* Store to store -- :func:`rof_to_zarr` and :func:`inpaint_to_zarr` (:mod:`~pdeflow.dask.stream`) run the same
  decomposed solves eagerly from a dask array into a zarr store, one dask graph per step with the iterate in
  zarr stores between steps: a worker holds only the tasks it runs, so its memory is bounded by the chunk, not
  by the image (what ``pdeflow denoise IN.zarr OUT.zarr`` and ``pdeflow inpaint IN.zarr OUT.zarr`` run).
* Local operators -- :func:`iel` (the inverse evolution layers, :mod:`~pdeflow.dask.local`) -- are exact with a
  halo as wide as their stencil reaches.
* Stacks of images -- :func:`encode` and :func:`decode` (:mod:`~pdeflow.dask.codec`) run the codec on every
  image of a stack, one task per image.
* Many files -- :func:`run_batch` (:mod:`~pdeflow.dask.batch`) runs a :class:`FileTask` (read a file, apply a
  function, write the result atomically) on every file of folders and patterns (:func:`batch_files`), on a Dask
  cluster or in this process: resumable, one line per failed file, a :class:`BatchResult` at the end. It is what
  ``pdeflow denoise``, ``inpaint``, ``compress`` and ``decompress`` run for a batch.

Needs the ``dask`` extra (``pip install 'pdeflow[dask]'``: dask, distributed, zarr). The user guide's page
"Large images and many images" shows the accuracy against the single-array answers and the memory per worker.
"""
from .batch import BatchResult, FileTask, batch_files, run_batch
from .codec import decode, encode
from .inpaint import inpaint
from .local import iel
from .stream import StoreResult, inpaint_to_zarr, rof_to_zarr
from .tv import SchwarzResult, rof, tv_flow

__all__ = ["rof", "tv_flow", "inpaint", "iel", "encode", "decode", "SchwarzResult", "rof_to_zarr", "inpaint_to_zarr",
           "StoreResult",
           "batch_files", "FileTask", "BatchResult", "run_batch"]
