"""zarr stores on the command line: ``pdeflow denoise IN.zarr OUT.zarr`` and ``pdeflow inpaint IN.zarr OUT.zarr
--mask MASK.zarr`` solve arrays larger than memory chunk by chunk with :mod:`pdeflow.dask`.

* :func:`add_zarr_args`: the ``zarr`` option group (``--chunks``, ``--ndim``, ``--max-sweeps``, ``--fill-missing``;
  ``--overlap`` for inpainting).
* :func:`check_zarr`: after parsing, whether IMAGE is a zarr store (``args.zarr``: the input and output stores,
  or ``None``), the output store's name and the options a store refuses, as usage errors.
* :func:`open_store`: a store as a float dask array with the chunks of ``--chunks`` (integers mapped to [0, 1]).
* :func:`check_zarr_operator`, :func:`run_inpaint_zarr`: ``pdeflow inpaint``'s operator check and run for a store.
* :func:`run_zarr`: run a store-to-store decomposed solve (:mod:`pdeflow.dask.stream`: the iterate in zarr
  stores beside the output between sweeps, a worker's memory bounded by the chunk) into the output store,
  atomically, on the cluster of ``--workers``/``--scheduler`` or on dask's threads here; print what it took.

Dask is imported only when a store is solved, never when the command line is parsed.
"""
from __future__ import annotations

import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

from .. import io as pio
from ..errors import UserInputError
from ._arguments import positive_int
from ._errors import CLIError

#: The chunk edge of ``--chunks`` by default, by the spatial axes: chunks of about the same number of pixels for
#: images and volumes (a worker holds some 20 chunks, the user guide's "Large images and many images").
DEFAULT_CHUNKS = {2: 1024, 3: 128}
#: The sweeps of the graph by default (``pdeflow.dask``'s ``max_sweeps``).
DEFAULT_MAX_SWEEPS = 30
#: The overlap of inpainting's subdomains by default (``pdeflow.dask.inpaint``'s).
DEFAULT_OVERLAP = 16
_MARKERS = (".zarray", ".zgroup", "zarr.json")

ZARR_HELP = ("IMAGE may be a zarr store (a folder IN.zarr, arrays larger than memory): solved chunk by chunk with "
             "pdeflow.dask, the single-array answer to its tolerance, written to the store OUT.zarr (given after "
             "IMAGE or as --out) atomically; on the cluster of --workers or --scheduler, or on dask's threads here")


def is_zarr(spec) -> bool:
    """Whether ``spec`` names a zarr store: a path ending in ``.zarr``, or a folder holding zarr's metadata."""
    path = Path(str(spec))
    return path.suffix.lower() == ".zarr" or (path.is_dir() and any((path / m).exists() for m in _MARKERS))


def add_zarr_args(p, *, overlap: bool = False) -> None:
    """The ``zarr`` group: ``--chunks``, ``--ndim``, ``--max-sweeps``, ``--fill-missing`` (and ``--overlap`` with
    ``overlap``)."""
    g = p.add_argument_group("zarr stores (images and volumes larger than memory)", textwrap.fill(ZARR_HELP, 100))
    g.add_argument("--chunks", type=positive_int, default=None, metavar="N",
                   help=f"chunks of N pixels a side along the spatial axes (default {DEFAULT_CHUNKS[2]}, with --ndim 3 "
                        f"{DEFAULT_CHUNKS[3]}): the blocks of the domain decomposition; a worker holds up to about "
                        "20 chunks")
    g.add_argument("--ndim", type=int, choices=(2, 3), default=None,
                   help="3: the store holds a volume (D, H, W) (or (C, D, H, W), (B, C, D, H, W)); default 2: "
                        "images (H, W), (C, H, W) or (B, C, H, W)")
    g.add_argument("--max-sweeps", type=positive_int, default=None, metavar="N",
                   help=f"Schwarz sweeps at most (default {DEFAULT_MAX_SWEEPS}; one dask graph per sweep, the iterate "
                        "in work stores beside the output between sweeps)")
    if overlap:
        g.add_argument("--overlap", type=positive_int, default=None, metavar="N",
                       help=f"pixels by which each chunk's subproblem reaches into its neighbours (default "
                            f"{DEFAULT_OVERLAP})")
    g.add_argument("--fill-missing", type=float, default=None, metavar="VALUE",
                   help="read the chunks whose files are missing from the stores as VALUE (default: a missing chunk "
                        "is an error: the store may be a copy cut short; zarr writes no chunk equal to the fill "
                        "value unless told to)")


def check_zarr(args, *, refuse=(), masks=()) -> bool:
    """After parsing: set ``args.zarr`` to ``(input, output)`` stores when IMAGE is a zarr store (and return True),
    else to ``None`` (and refuse the zarr options, require ``--out``). ``refuse``: ``(flag, given)`` pairs a store
    does not take; ``masks``: ``(flag, value)`` pairs of mask options that must then be zarr stores too."""
    specs = [args.image] if isinstance(args.image, str) else list(args.image)
    if not any(is_zarr(s) for s in specs):
        args.zarr = None
        for flag in ("chunks", "ndim", "overlap", "max_sweeps", "fill_missing"):
            if getattr(args, flag, None) is not None:
                args.parser.error(f"argument --{flag.replace('_', '-')}: only for a zarr store IMAGE (IN.zarr)")
        if args.out is None:
            args.parser.error("the following arguments are required: --out")
        return False
    if len(specs) == 2 and args.out is None:
        source, target = specs
    elif len(specs) == 1 and args.out is not None:
        source, target = specs[0], args.out
    else:
        args.parser.error("argument IMAGE: a zarr store is solved as IN.zarr OUT.zarr (or IN.zarr --out OUT.zarr), "
                          f"got {' '.join(specs)}" + (f" --out {args.out}" if args.out is not None else ""))
    if not is_zarr(source):
        args.parser.error(f"argument IMAGE: '{source}' is not a zarr store; with a zarr store the input comes first")
    if Path(target).suffix.lower() != ".zarr":
        args.parser.error(f"argument --out: the result of a zarr store is a zarr store, a name ending in .zarr, "
                          f"got '{target}'")
    if not Path(source).exists():
        args.parser.error(f"argument IMAGE: no zarr store at '{source}'")
    if Path(target).resolve() == Path(source).resolve():
        args.parser.error(f"argument --out: '{target}' is the input store")
    if Path(target).exists() and not args.overwrite:
        args.parser.error(f"argument --out: '{target}' exists; --overwrite replaces it")
    if not Path(target).resolve().parent.is_dir():
        args.parser.error(f"argument --out: the folder of '{target}' does not exist")
    for flag, given in refuse:
        if given:
            args.parser.error(f"argument {flag}: not for a zarr store IMAGE")
    for flag, value in masks:
        if value is not None and not is_zarr(value):
            args.parser.error(f"argument {flag}: with a zarr store IMAGE, a zarr store of its spatial shape, "
                              f"got '{value}'")
    if args.workers is not None and args.scheduler is not None:
        args.parser.error("argument --scheduler: not allowed with argument --workers")
    args.zarr = (Path(source), Path(target))
    args.max_sweeps = DEFAULT_MAX_SWEEPS if args.max_sweeps is None else args.max_sweeps
    args.batch, args.volume = None, False
    return True


def open_store(path, what: str, *, chunks=None, ndim: int = 2, mask: bool = False, fill_missing=None):
    """The store at ``path`` as a dask array: floats as stored (float16 as float32), integers mapped to [0, 1] by
    their dtype's largest value (said on stdout) or, with ``mask``, as they are; the spatial axes (the last
    ``ndim``) rechunked to ``chunks`` pixels a side. ``what``: the argument's name in errors; ``fill_missing``:
    :func:`pdeflow.io.read_zarr`'s (a missing or undecodable chunk fails when the solve reads it)."""
    try:
        x = pio.read_zarr(path, fill_missing=fill_missing)
    except UserInputError as exc:
        raise CLIError(f"argument {what}: {exc}") from None
    if x.ndim < ndim or x.ndim > ndim + 2:
        raise CLIError(f"argument {what}: the store holds an array of shape {x.shape}; "
                       + ("a volume (D, H, W), (C, D, H, W) or (B, C, D, H, W) with --ndim 3" if ndim == 3 else
                          "images (H, W), (C, H, W) or (B, C, H, W); a volume with --ndim 3"))
    if mask:
        if not (x.dtype == bool or np.issubdtype(x.dtype, np.number)):
            raise CLIError(f"argument {what}: a mask store holds numbers or booleans, got dtype {x.dtype}")
    elif np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_):
        top = np.iinfo(x.dtype).max
        print(f"{what} '{path}': {x.dtype} values mapped to [0, 1] (divided by {top})")
        x = x.astype(np.float32) / np.float32(top)
    elif not np.issubdtype(x.dtype, np.floating):
        raise CLIError(f"argument {what}: the store holds dtype {x.dtype}; expected floats or integers")
    elif x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    edge = chunks or DEFAULT_CHUNKS[ndim]
    spatial = {k: edge for k in range(x.ndim - ndim, x.ndim)}
    return x.rechunk(spatial) if any(max(x.chunks[k]) != min(edge, x.shape[k]) for k in spatial) else x


def _batch_module():
    try:
        from ..dask import batch
    except ImportError as exc:
        raise CLIError(f"argument IMAGE: a zarr store needs the dask extra (pip install 'pdeflow[dask]'): "
                       f"{exc}") from None
    return batch


def run_zarr(args, build, what: str) -> int:
    """Run ``build()`` -- ``(x, solve)``: the input (a lazy dask array) and ``solve(target, overwrite)``, a
    store-to-store solve of :mod:`pdeflow.dask.stream` returning its :class:`pdeflow.dask.StoreResult` -- into the
    output store of ``args.zarr``, on the cluster of ``--workers``/``--scheduler`` or on dask's threads here; print
    one line of what it took. Returns 0, or 1 when the solve stopped at its sweep cap short of its tolerance (the
    store is written either way)."""
    import dask

    source, target = args.zarr
    prog = args.parser.prog
    where = (f"on the Dask cluster at {args.scheduler}" if args.scheduler is not None
             else f"on a local Dask cluster of {args.workers} worker process{'es' if args.workers > 1 else ''}"
             if args.workers is not None else "on dask's threads in this process")
    t0 = time.perf_counter()
    flag = "--scheduler" if args.scheduler is not None else "--workers"
    try:
        # the line below says when the sweeps ran out: not the library's warning as well
        warnings.filterwarnings("ignore", message=r"pdeflow\.dask\.\w+: stopped at max_sweeps")
        if args.scheduler is None and args.workers is None:
            if getattr(args, "threads", None) is None:     # dask's threads are the parallelism: torch on one each
                import torch
                torch.set_num_threads(1)
            with dask.config.set(scheduler="threads"):
                x, solve = build()
                _report_start(prog, what, source, target, x, where)
                result = solve(target, args.overwrite)
        else:
            with _batch_module().dask_client(args.scheduler, args.workers, who=flag) as client:
                client.run(_one_thread)
                x, solve = build()
                _report_start(prog, what, source, target, x, where)
                result = solve(target, args.overwrite)
    except UserInputError as exc:
        text = str(exc).replace("fill_missing=VALUE", "--fill-missing VALUE")
        raise CLIError(text if text.startswith("argument ") else f"argument IMAGE: {text}") from None
    secs = time.perf_counter() - t0
    print(f"{prog}: wrote {target} in {secs:.1f} s: {int(result.sweeps)} Schwarz sweep(s), stopping measure "
          f"{float(result.criterion):.2g}"
          + ("" if result.converged else " (stopped at the sweep cap, short of --tol)"))
    return 0 if result.converged else 1


def _one_thread():
    """In each worker process: torch on one thread (the processes are the parallelism)."""
    import torch
    torch.set_num_threads(1)


def _report_start(prog, what, source, target, u, where) -> None:
    chunk = "x".join(str(max(c)) for c in u.chunks)
    print(f"{prog}: {what} of {source} {tuple(u.shape)} {u.dtype} in chunks of {chunk} to {target}, {where}",
          flush=True)


#: The stopping measure of inpainting a store without --tol (``pdeflow.dask.inpaint``'s default).
INPAINT_TOL = 1e-6


def check_zarr_operator(args) -> None:
    """``pdeflow inpaint`` of a store: ``--method`` must be a PDE operator (one for volumes with ``--ndim 3``)."""
    from ..inpaint import OPERATORS

    if args.method not in OPERATORS:
        args.parser.error(f"argument --method: a zarr store is inpainted by a PDE operator "
                          f"({', '.join(OPERATORS)}), not {args.method}")
    if (args.ndim or 2) == 3 and not OPERATORS[args.method].volumes:
        args.parser.error(f"argument --method: {args.method} inpaints images; a volume (--ndim 3) takes "
                          f"{' or '.join(n for n, o in OPERATORS.items() if o.volumes)}")


def run_inpaint_zarr(args) -> int:
    """``pdeflow inpaint IN.zarr OUT.zarr --mask MASK.zarr`` (or ``--holes``): :func:`pdeflow.dask.inpaint`."""
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    tol = args.tol if args.tol is not None else INPAINT_TOL
    flag = "--mask" if args.mask is not None else "--holes"
    nd = args.ndim or 2

    def build():
        from ..dask import inpaint_to_zarr

        x = open_store(args.zarr[0], "IMAGE", chunks=args.chunks, ndim=nd, fill_missing=args.fill_missing)
        m = open_store(args.mask if args.mask is not None else args.holes, flag, ndim=nd, mask=True,
                       fill_missing=args.fill_missing)
        if tuple(m.shape[-nd:]) != tuple(x.shape[-nd:]):
            raise CLIError(f"argument {flag}: the store's spatial shape {tuple(m.shape[-nd:])} is not IMAGE's "
                           f"{tuple(x.shape[-nd:])}")
        known = m > 0 if args.mask is not None else m == 0

        def solve(target, overwrite):
            return inpaint_to_zarr(x, known, target, args.method, tol=tol, ndim=args.ndim, overwrite=overwrite,
                                   max_sweeps=args.max_sweeps,
                                   overlap=args.overlap if args.overlap is not None else DEFAULT_OVERLAP)

        return x, solve

    return run_zarr(args, build, f"{args.method} inpainting (tolerance {tol:g}, {flag} {args.mask or args.holes})")
