"""pdeflow on Dask.

* :mod:`~pdeflow.dask.batch`: batch runs over many files, one task per file, on a Dask cluster
  (:func:`run_batch`, :func:`batch_files`, :class:`FileTask`, :class:`BatchResult`).
"""
from .batch import BatchResult, FileTask, batch_files, run_batch

__all__ = ["batch_files", "FileTask", "BatchResult", "run_batch"]
