"""The ``pdeflow`` command: thin subcommands over the Python API.

Subcommands (``pdeflow SUBCOMMAND --help`` for the options of each):

* ``flow``      TV flow of an image at given times (PNGs, a figure, optionally ``.npy``).
* ``spectral``  spectral TV decomposition: band images, residual, spectrum plot and CSV.
* ``samples``   list the built-in images (and draw a contact sheet).
* ``demo``      TV flow and spectral TV of the camera image: the job of ``make run``.

Adding a subcommand: write ``_register_NAME(subparsers)`` that adds its parser
(usually with the shared option groups ``_add_input_args``, ``_add_solver_args``,
``_add_compute_args``, ``_add_output_args``) and calls
``parser.set_defaults(run=_run_NAME)``; write ``_run_NAME(args) -> int`` that
calls the library; append the register function to :data:`COMMANDS`.
Optional ``validate=_check_NAME`` in ``set_defaults`` checks argument
combinations after parsing (call ``args.parser.error(...)``); raise
:class:`CLIError` for user errors found later (one line, exit status 2). All
output files go through :class:`Outputs`, which gives the overwrite,
same-as-input and no-partial-output rules for free.

Conventions: images are read in [0, 1] and multiplied by ``--scale`` (default
1) before the flow, so flow times are in units of the scaled image
(one-homogeneity: ``flow(c u0, t) = c flow(u0, t / c)``). PNGs show results
divided back by the scale and clipped to [0, 1]; ``--save-npy`` keeps the raw
float values in the scaled units.
"""
from __future__ import annotations

import os

# With an OpenMP thread pool that spins while waiting, a busy machine (another
# process on the same cores) slows torch's small per-pixel kernels down by
# orders of magnitude; a passive wait costs little. This only takes effect if
# torch has not been imported yet (as when run as the `pdeflow` command, since
# `pdeflow/__init__.py` does not import torch); the user's setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from . import __version__  # noqa: E402
from . import data as pdata  # noqa: E402
from .tv import ROF_METHODS, dyadic_band_edges, spectral_tv, tv_flow  # noqa: E402

__all__ = ["main", "build_parser", "COMMANDS", "Outputs", "CLIError", "check_device", "check_data_dir", "check_trainer_args", "run_trainer"]

PROG = "pdeflow"
DEFAULT_BUILTIN = "skimage/camera"
DEFAULT_BUILTIN_SIZE = 256


class CLIError(Exception):
    """A user error found while running a subcommand: printed as one line, exit status 2."""


class _Terminated(BaseException):
    """SIGTERM turned into an exception, so that partial outputs are cleaned up."""


def _on_sigterm(signum, frame):
    raise _Terminated()


# ---------------------------------------------------------------------------
# Argument types
# ---------------------------------------------------------------------------

def _number(kind: str, *, positive: bool = False, nonneg: bool = False, hint: str = ""):
    """argparse type: a finite float (or int), optionally > 0 or >= 0."""
    conv = int if kind == "int" else float
    need = " > 0" if positive else (" >= 0" if nonneg else "")

    def parse(text: str):
        try:
            v = conv(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a{'n integer' if kind == 'int' else ' number'}{need}, "
                                             f"got {text!r}{hint}") from None
        if (kind == "float" and not math.isfinite(v)) or (positive and v <= 0) or (nonneg and v < 0):
            raise argparse.ArgumentTypeError(f"expected a finite {'integer' if kind == 'int' else 'number'}{need}, "
                                             f"got {text!r}")
        return v

    parse.__name__ = kind  # argparse names the type in its messages
    return parse


positive_float = _number("float", positive=True)
nonneg_float = _number("float", nonneg=True)
#: For lists of numbers (nargs="+"), which would swallow a following IMAGE.
nonneg_floats = _number("float", nonneg=True, hint=" (give IMAGE before the list)")
positive_int = _number("int", positive=True)
nonneg_int = _number("int", nonneg=True)


def _increasing(values, name: str, parser: argparse.ArgumentParser) -> list[float]:
    vals = [float(v) for v in values]
    bad = [(a, b) for a, b in zip(vals, vals[1:]) if b <= a]
    if bad:
        parser.error(f"argument {name}: values must be strictly increasing, got {' '.join(f'{v:g}' for v in vals)}")
    return vals


# ---------------------------------------------------------------------------
# Output files: all or nothing
# ---------------------------------------------------------------------------

class Outputs:
    """The files one invocation writes into ``--out``: all of them, or none.

    ``Outputs(out_dir, names, overwrite=..., inputs=[...])`` checks, before any
    work, that no planned file exists (unless ``overwrite``) and that none is an
    input file. Inside ``with outputs:`` each ``image``/``figure``/``npy``/``csv``
    call writes a temporary file beside its target (via
    :func:`pdeflow.data.atomic_path`); they are renamed onto their targets
    together when the block ends without error. On any error (including Ctrl-C)
    the temporary files are removed, as is any target already renamed in this
    invocation and the output directory if this invocation created it and it is
    left empty.
    """

    def __init__(self, out_dir, names, *, overwrite: bool = False, inputs=()):
        self.dir = Path(out_dir)
        self.names = list(names)
        self.overwrite = overwrite
        self.paths = {n: self.dir / n for n in self.names}
        self.written: list[Path] = []
        self._stack: contextlib.ExitStack | None = None
        self._created: list[Path] = []
        if self.dir.exists() and not self.dir.is_dir():
            raise CLIError(f"argument --out: '{self.dir}' exists and is not a directory")
        for inp in inputs:
            if inp is None:
                continue
            for p in self.paths.values():
                if _same_file(p, Path(inp)):
                    raise CLIError(f"argument --out: output file '{p}' is the input image; "
                                   "choose another --out directory")
        for p in self.paths.values():
            if p.is_dir():
                raise CLIError(f"argument --out: output path '{p}' is a directory")
            if not overwrite and (p.exists() or p.is_symlink()):
                raise CLIError(f"argument --out: '{p}' already exists (pass --overwrite to replace it)")

    def __enter__(self):
        missing = []
        d = self.dir
        while not d.exists():
            missing.append(d)
            d = d.parent
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CLIError(f"argument --out: cannot create directory '{self.dir}': {exc.strerror or exc}") from None
        self._created = missing  # innermost first
        self._stack = contextlib.ExitStack().__enter__()
        return self

    @contextlib.contextmanager
    def _staged(self, path: Path):
        with pdata.atomic_path(path, overwrite=self.overwrite) as tmp:
            yield tmp
        self.written.append(path)  # reached only once atomic_path has renamed tmp onto path

    def _tmp(self, name: str) -> Path:
        if self._stack is None:
            raise AssertionError("Outputs: write inside `with outputs:`")
        if name not in self.paths:
            raise AssertionError(f"Outputs: '{name}' was not planned")
        return self._stack.enter_context(self._staged(self.paths[name]))

    def image(self, name: str, img) -> None:
        pdata.write_image(self._tmp(name), img, overwrite=True)

    def figure(self, name: str, fig) -> None:
        fig.savefig(self._tmp(name), format="png", dpi=fig.dpi)

    def npy(self, name: str, array) -> None:
        arr = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
        with open(self._tmp(name), "wb") as fh:
            np.save(fh, arr)

    def csv(self, name: str, header, rows) -> None:
        with open(self._tmp(name), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)

    def __exit__(self, exc_type, exc, tb):
        stack, self._stack = self._stack, None
        try:
            stack.__exit__(exc_type, exc, tb)  # commits every file, or removes every temporary file
        except FileExistsError as err:  # a file appeared at a target while we worked
            self._cleanup()
            if exc_type is None:
                raise CLIError(f"argument --out: {err}") from None
            raise
        except BaseException:
            self._cleanup()
            raise
        if exc_type is not None:
            self._cleanup()
        return False

    def _cleanup(self) -> None:
        for p in self.written:
            with contextlib.suppress(OSError):
                p.unlink()
        self.written = []
        for d in self._created:
            with contextlib.suppress(OSError):
                d.rmdir()  # only if empty


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


# ---------------------------------------------------------------------------
# Input images
# ---------------------------------------------------------------------------

def _centre_crop(u: torch.Tensor, size: int | None, *, strict: bool) -> torch.Tensor:
    if size is None:
        return u
    H, W = u.shape[-2:]
    if strict and (size > H or size > W):
        raise CLIError(f"argument --size: {size} is larger than the image ({H}x{W})")
    h, w = min(size, H), min(size, W)
    top, left = (H - h) // 2, (W - w) // 2
    return u[..., top:top + h, left:left + w].contiguous()


def _load_input(args) -> tuple[torch.Tensor, str, Path | None]:
    """The image named by ``args.image``: (tensor (C, H, W) in [0, 1], label, file path or None)."""
    spec = args.image
    grey = getattr(args, "grey", True)
    if spec is None or spec.startswith("builtin:"):
        name = DEFAULT_BUILTIN if spec is None else spec[len("builtin:"):]
        if name not in pdata.builtin_names():
            raise CLIError(f"argument IMAGE: unknown built-in image {name!r}; "
                           f"`{PROG} samples` lists them")
        full = pdata.builtin_image(name, grey=grey)
        size = DEFAULT_BUILTIN_SIZE if args.size is None else args.size
        u = _centre_crop(full, size, strict=args.size is not None)
        H, W = u.shape[-2:]
        how = f"centre {H}x{W} crop" if u.shape != full.shape else f"{H}x{W}"
        return u, f"builtin:{name} ({how})", None
    path = Path(spec)
    if not path.exists():
        hint = f"; did you mean builtin:{spec}?" if spec in pdata.builtin_names() else ""
        raise CLIError(f"argument IMAGE: no such file: '{spec}'{hint}")
    try:
        u = pdata.read_image(path, grey=grey)
    except (ValueError, OSError) as exc:
        msg = str(exc)
        msg = msg[len("read_image: "):] if msg.startswith("read_image: ") else msg
        raise CLIError(f"argument IMAGE: {msg}") from None
    if not bool(torch.isfinite(u).all()):
        raise CLIError(f"argument IMAGE: '{spec}' contains NaN or infinite values")
    u = _centre_crop(u, args.size, strict=True)
    return u, f"{spec} ({u.shape[-2]}x{u.shape[-1]})", path


def check_device(parser: argparse.ArgumentParser, device) -> torch.device:
    """``--device`` as a torch.device, or a usage error (status 2) naming the argument."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        parser.error(f"argument --device: not a torch device: {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: CUDA is not available here")
    return dev


def check_data_dir(parser: argparse.ArgumentParser, name: str, value) -> None:
    """A ``--data``-like argument: ``None``, ``"builtin"`` or an existing directory, else a usage error."""
    if value not in (None, "builtin") and not Path(value).expanduser().is_dir():
        parser.error(f"argument {name}: {value!r} is neither 'builtin' nor a directory")


def check_trainer_args(args, config_from_args, check_config) -> None:
    """The checks every ``pdeflow train NAME`` shares: ``--data``/``--val-data`` folders,
    ``--device``, and the trainer's own config check, each a usage error naming the argument."""
    check_data_dir(args.parser, "--data", args.data)
    check_data_dir(args.parser, "--val-data", args.val_data)
    if args.device is not None:
        check_device(args.parser, args.device)
    try:
        check_config(config_from_args(args))
    except ValueError as e:
        args.parser.error(str(e))


def run_trainer(args, cfg, train) -> Path:
    """Run ``train(cfg, run_dir, device=, quiet=, command=)`` for a ``pdeflow train NAME`` command.

    Sets ``--threads``, records the command line in the run's provenance and turns the
    trainer's configuration errors into :class:`CLIError`. Returns what ``train`` returns
    (the exported model's JSON path).
    """
    from .training import RunConfigError, invoked_command

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return train(cfg, Path(args.run_dir), device=args.device, quiet=args.quiet, command=invoked_command())
    except RunConfigError as e:
        raise CLIError(f"argument --run-dir: {e}") from None
    except ValueError as e:
        raise CLIError(str(e)) from None
    except FloatingPointError as e:        # a diverged run: its checkpoints are intact and resumable
        raise CLIError(str(e)) from None


def _check_compute(args) -> None:
    """Shared checks of the compute options: device and threads."""
    args.device = check_device(args.parser, args.device)


def _setup_compute(args) -> None:
    if args.threads is not None:
        torch.set_num_threads(args.threads)


# ---------------------------------------------------------------------------
# Shared computations and drawing
# ---------------------------------------------------------------------------

def _time_labels(times) -> list[str]:
    """Labels that show each time exactly (at least 2 decimals), e.g. 0.50, 1.00, 0.125."""
    for d in range(2, 10):
        if all(abs(round(t, d) - t) <= 1e-9 * max(1.0, abs(t)) for t in times):
            return [f"{t:.{d}f}" for t in times]
    return [repr(float(t)) for t in times]


def _to_display(u: torch.Tensor, scale: float) -> torch.Tensor:
    """Divide by the intensity scale and clip to [0, 1] (for PNGs and figures)."""
    return (u.detach().cpu().double() / scale).clamp(0.0, 1.0)


def _band_display(b: torch.Tensor) -> torch.Tensor:
    """Signed band to [0, 1]: 0.5 + b / (2 max|b|), so grey is 0."""
    b = b.detach().cpu().double()
    m = float(b.abs().max())
    return 0.5 + b / (2.0 * m) if m > 0 else torch.full_like(b, 0.5)


def _hwc(img: torch.Tensor) -> np.ndarray:
    a = img.detach().cpu().numpy()
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def _figure(width: float, height: float):
    # Figure + Agg canvas, no pyplot: no global state, no display backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _show(ax, img: torch.Tensor, title: str) -> None:
    a = _hwc(img)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _image_row(fig_or_sub, panels, ncols: int) -> None:
    """``panels``: list of (image in [0, 1], title); a grid of ``ncols`` columns."""
    nrows = max(1, math.ceil(len(panels) / ncols))
    axes = np.atleast_1d(fig_or_sub.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (img, title) in zip(axes, panels):
        _show(ax, img, title)
    for ax in axes[len(panels):]:
        ax.set_axis_off()


def _run_flow_api(u0, args, times):
    """tv_flow on ``scale * u0``; returns (stack (T, C, H, W), seconds)."""
    x = (u0 * args.scale).to(args.device)
    if not bool(torch.isfinite(x).all()):
        raise CLIError(f"argument --scale: {args.scale:g} times the image is not finite")
    t0 = time.perf_counter()
    u = tv_flow(x, times, dt=args.dt, tol=args.tol, solver=args.solver, progress=sys.stderr.isatty())
    return u.cpu(), time.perf_counter() - t0


def _run_spectral_api(u0, args, dt, steps):
    x = (u0 * args.scale).to(args.device)
    if not bool(torch.isfinite(x).all()):
        raise CLIError(f"argument --scale: {args.scale:g} times the image is not finite")
    t0 = time.perf_counter()
    s = spectral_tv(x, dt=dt, n_steps=steps, tol=args.tol, solver=args.solver, progress=sys.stderr.isatty())
    return s, time.perf_counter() - t0


def _scale_note(scale: float) -> str:
    return (f"intensity scale: image read in [0, 1] and multiplied by {scale:g} for the flow "
            f"(times are for the scaled image); PNGs show values divided by {scale:g}, clipped to [0, 1]")


def _band_names(m: int) -> list[str]:
    return [f"band_{i}.png" for i in range(m)]


def _band_titles(edges) -> list[str]:
    return [f"band {i}: t in [{a:.4g}, {b:.4g})" for i, (a, b) in enumerate(zip(edges, edges[1:]))]


def _spectrum_rows(s, edges):
    t = s.times.cpu().tolist()
    S = s.spectrum.reshape(len(t)).cpu().tolist()
    rows = []
    for k, (tk, Sk) in enumerate(zip(t, S), start=1):
        band = next((i for i, (a, b) in enumerate(zip(edges, edges[1:])) if a <= tk < b), "")
        rows.append([k, f"{tk:.10g}", f"{Sk:.10g}", band])
    return rows


def _plot_spectrum(ax, s, edges) -> None:
    t = s.times.cpu().numpy()
    S = s.spectrum.reshape(len(t)).cpu().numpy()
    ax.plot(t, S, ".-", lw=1, ms=3, color="C0")
    for e in edges:
        ax.axvline(e, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("flow time t (dashed: band edges)")
    ax.set_ylabel(r"$S(t) = \|\phi(t)\|_1$")
    ax.set_title("spectrum", fontsize=9)
    ax.set_xlim(0, max(float(t[-1]), edges[-1]) * 1.02)
    ax.grid(alpha=0.3)


def _recon_report(s, u0s, bands, edges) -> str:
    """The reconstruction error line(s) of the spectral decomposition."""
    err = float((bands.sum(0) + s.residual.cpu() - u0s).abs().max())
    t = s.times.cpu()
    covered = int(((t >= edges[0]) & (t < edges[-1])).sum())
    n = len(t)
    if covered == n:
        return f"reconstruction error max|sum(bands) + residual - u0| = {err:.3g}"
    full = float((s.reconstruct().cpu() - u0s).abs().max())
    return (f"the bands hold {covered} of the {n} time steps, so sum(bands) + residual differs from u0 "
            f"(max {err:.3g}); the full decomposition reconstructs u0 to max error {full:.3g}")


# ---------------------------------------------------------------------------
# Shared options (each helper adds one titled group to a subcommand's parser)
# ---------------------------------------------------------------------------

def _add_input_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input")
    g.add_argument("image", metavar="IMAGE", nargs="?", default=None,
                   help=f"image file (PNG, JPEG, TIFF, DICOM) or builtin:NAME "
                        f"(default: builtin:{DEFAULT_BUILTIN}); `{PROG} samples` lists the built-in names")
    g.add_argument("--size", type=positive_int, default=None,
                   help=f"centre-crop to SIZE x SIZE (default: whole file; built-in images: "
                        f"{DEFAULT_BUILTIN_SIZE} or smaller)")
    c = g.add_mutually_exclusive_group()  # inside the "input" group
    c.add_argument("--grey", "--gray", dest="grey", action="store_true", default=True,
                   help="convert to grey (luminance) (default)")
    c.add_argument("--colour", "--color", dest="grey", action="store_false",
                   help="keep colour (3 channels, coupled vectorial TV)")
    g.add_argument("--scale", metavar="S", type=positive_float, default=1.0,
                   help="multiply the [0, 1] image by S before the flow (default 1; the TVflowNET paper uses 5)")


def _add_solver_args(p: argparse.ArgumentParser, dt: float, tol: float) -> None:
    g = p.add_argument_group("solver")
    g.add_argument("--dt", type=positive_float, default=dt, help=f"implicit time step (default {dt:g})")
    g.add_argument("--tol", type=positive_float, default=tol,
                   help=f"relative duality gap of each implicit step (default {tol:g})")
    g.add_argument("--solver", choices=ROF_METHODS, default="fgp", help="ROF solver of each step (default fgp)")


def _add_compute_args(p: argparse.ArgumentParser, threads: int | None = None, why: str = "") -> None:
    g = p.add_argument_group("computation")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--threads", type=positive_int, default=threads,
                   help=f"torch CPU threads (default: {threads or 'torch' + chr(39) + 's default'}{why})")


def _add_output_args(p: argparse.ArgumentParser, required: bool = True):
    """Adds --out and --overwrite; returns the group, for more output options."""
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", required=required, default=None,
                   help="output directory (created if missing)")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return g


# ---------------------------------------------------------------------------
# pdeflow flow
# ---------------------------------------------------------------------------

def _register_flow(sub) -> None:
    p = sub.add_parser(
        "flow", help="TV flow of an image at given times",
        description="Evolve an image by the TV flow u_t = div(grad u / |grad u|) (implicit Euler steps, "
                    "each an ROF problem) and write u at the given times: one PNG per time (u_tT.png), "
                    "a figure (flow.png) and, with --save-npy, the raw float stack (u.npy).",
        epilog=f"example: {PROG} flow photo.png --times 0.1 0.5 2 --out results/")
    _add_input_args(p)
    g = p.add_argument_group("flow")
    g.add_argument("--times", type=nonneg_floats, nargs="+", default=[0.1, 0.5, 2.0], metavar="T",
                   help="flow times, >= 0, strictly increasing (default 0.1 0.5 2)")
    g.add_argument("--method", choices=("reference", "net", "both"), default="reference",
                   help="reference: the implicit TV flow solver; net: a trained TVflowNET; both: side by side, "
                        "with the network's PSNR and SSIM against the reference (default reference)")
    g.add_argument("--model", metavar="NAME|PATH", default=None,
                   help="TVflowNET for --method net/both: a shipped name, a .safetensors/.json path or a run "
                        "directory (default: the shipped default model)")
    _add_solver_args(p, dt=0.005, tol=1e-5)
    _add_compute_args(p)
    _add_output_args(p).add_argument(
        "--save-npy", action="store_true",
        help="also write u.npy (reference) / net.npy (network): the flow, shape (len(times), C, H, W), "
             "float32, in scaled units")
    p.set_defaults(run=_run_flow, validate=_check_flow)


def _check_flow(args) -> None:
    args.times = _increasing(args.times, "--times", args.parser)
    if args.model is not None and args.method == "reference":
        args.parser.error("argument --model: only used with --method net or both")
    if args.method != "reference" and not args.grey:
        args.parser.error("argument --colour: TVflowNET models are greyscale; use --method reference for colour")
    _check_compute(args)


#: File prefixes of the two ways to compute the flow.
_FLOW_PREFIX = {"reference": "u", "net": "net"}


def _flow_names(times, save_npy: bool, method: str = "reference") -> list[str]:
    kinds = ("reference", "net") if method == "both" else (method,)
    names = [f"{_FLOW_PREFIX[k]}_t{lab}.png" for k in kinds for lab in _time_labels(times)] + ["flow.png"]
    if method == "both":
        names.append("comparison.csv")
    return names + ([f"{_FLOW_PREFIX[k]}.npy" for k in kinds] if save_npy else [])


def _flow_figure(u0, stacks, times, scale, label, params):
    """One row per method (dict name -> stack), the input first in each row."""
    ncols = min(len(times) + 1, 6)
    rows = []
    for name, stack in stacks.items():
        panels = [(_to_display(u0, 1.0), "input")]
        panels += [(_to_display(u, scale), f"{name}, t = {lab}") for u, lab in zip(stack, _time_labels(times))]
        rows.append(panels)
    nrows = sum(math.ceil(len(r) / ncols) for r in rows)
    fig = _figure(2.6 * ncols, 2.7 * nrows + 0.2 * params.count(chr(10)) + 0.6)
    subs = fig.subfigures(len(rows), 1, squeeze=False)[:, 0] if len(rows) > 1 else [fig]
    for sf, panels in zip(subs, rows):
        _image_row(sf, panels, ncols)
    fig.suptitle(f"TV flow of {label}\n{params}", fontsize=10)
    return fig


def _run_net_api(u0, args, times):
    """A trained TVflowNET on ``scale * u0``; returns (stack (T, C, H, W), seconds, model name)."""
    from .tvflownet import api as net_api

    try:
        model = net_api.load(args.model, device=args.device)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(f"argument --model: {exc}") from None
    x = (u0 * args.scale).to(args.device)
    t0 = time.perf_counter()
    u = net_api.flow(x, times, model, progress=sys.stderr.isatty())
    if x.is_cuda:
        torch.cuda.synchronize()
    return u.cpu(), time.perf_counter() - t0, args.model or net_api.DEFAULT_MODEL


def _run_flow(args) -> int:
    from .metrics import psnr, ssim

    u0, label, path = _load_input(args)
    out = Outputs(args.out, _flow_names(args.times, args.save_npy, args.method), overwrite=args.overwrite,
                  inputs=[path])
    _setup_compute(args)
    print(f"image: {label}, {'grey' if u0.shape[0] == 1 else 'colour'}")
    print(_scale_note(args.scale))
    labels = _time_labels(args.times)
    solver = f"dt={args.dt:g}, tol={args.tol:g}, solver={args.solver}"
    stacks, params = {}, []
    with out:
        if args.method in ("reference", "both"):
            stack, secs = _run_flow_api(u0, args, args.times)
            print(f"TV flow to t = {', '.join(labels)} (reference, {solver}): {secs:.2f} s")
            stacks["reference"] = stack
            params.append(f"reference: {solver}, {secs:.2f} s")
        if args.method in ("net", "both"):
            stack, secs, name = _run_net_api(u0, args, args.times)
            print(f"TV flow to t = {', '.join(labels)} (TVflowNET {name}): {secs:.2f} s")
            stacks["net"] = stack
            params.append(f"TVflowNET {name}: {secs:.3f} s")
        for kind, stack in stacks.items():
            for lab, u in zip(labels, stack):
                out.image(f"{_FLOW_PREFIX[kind]}_t{lab}.png", _to_display(u, args.scale))
            if args.save_npy:
                out.npy(f"{_FLOW_PREFIX[kind]}.npy", stack)
        if args.method == "both":
            # Paper convention: images in [0, 1] (divided by the scale), data range 1.
            net, ref = stacks["net"].double() / args.scale, stacks["reference"].double() / args.scale
            p = psnr(net, ref, data_range=1.0).tolist()
            q = ssim(net, ref, data_range=1.0).tolist()
            for lab, a, b in zip(labels, p, q):
                print(f"  t = {lab}: network vs reference PSNR {a:.2f} dB, SSIM {b:.4f}")
            out.csv("comparison.csv", ["time", "psnr_db", "ssim"],
                    [[t, f"{a:.4f}", f"{b:.6f}"] for t, a, b in zip(args.times, p, q)])
            params.append("network vs reference PSNR " + ", ".join(f"{a:.1f}" for a in p) + " dB")
        fig = _flow_figure(u0, stacks, args.times, args.scale, label,
                           "\n".join(params + [f"scale={args.scale:g}; shown: u / {args.scale:g} clipped to [0, 1]"]))
        out.figure("flow.png", fig)
    _report_written(out)
    return 0


def _report_written(out: Outputs) -> None:
    done = set(out.written)
    names = [n for n, p in out.paths.items() if p in done]
    print(f"wrote {len(names)} file{'s' if len(names) != 1 else ''} to {out.dir}/: {', '.join(names)}")


# ---------------------------------------------------------------------------
# pdeflow spectral
# ---------------------------------------------------------------------------

def _register_spectral(sub) -> None:
    p = sub.add_parser(
        "spectral", help="spectral TV decomposition: bands, residual, spectrum",
        description="Spectral TV decomposition (Gilboa 2014) from N+1 implicit TV flow steps: "
                    "phi(t) = t u_tt, spectrum S(t) = ||phi(t)||_1, bands f_i = sum of phi(t_k) dt over "
                    "the t_k in [e_i, e_i+1), residual f_r = u(T) - T u_t(T). Writes band_i.png "
                    "(each band normalised for display), residual.png, spectral.png (figure) and spectrum.csv.",
        epilog=f"example: {PROG} spectral builtin:skimage/coins --dt 0.04 --steps 50 --bands 0.02 0.1 0.5 2.04 "
               "--out spec/")
    _add_input_args(p)
    g = p.add_argument_group("decomposition")
    g.add_argument("--steps", type=positive_int, default=50, metavar="N",
                   help="number of time steps t_k = k*dt of the decomposition, k = 1..N (default 50)")
    g.add_argument("--bands", type=nonneg_floats, nargs="+", default=None, metavar="E",
                   help="band edges in flow time, >= 0, strictly increasing, at least two; each band "
                        "[e_i, e_i+1) must hold a time k*dt (default: dyadic bands k in [1,2), [2,4), ...)")
    _add_solver_args(p, dt=0.04, tol=1e-4)
    _add_compute_args(p)
    _add_output_args(p).add_argument(
        "--save-npy", action="store_true",
        help="also write bands.npy (m, C, H, W) and residual.npy (C, H, W), in scaled units")
    p.set_defaults(run=_run_spectral, validate=_check_spectral)


def _check_bands(args, steps: int, dt: float) -> list[float]:
    if args.bands is None:
        return dyadic_band_edges(steps, dt)
    if len(args.bands) < 2:
        args.parser.error(f"argument --bands: need at least two edges, got {' '.join(f'{v:g}' for v in args.bands)}")
    edges = _increasing(args.bands, "--bands", args.parser)
    t = [k * dt for k in range(1, steps + 1)]
    for a, b in zip(edges, edges[1:]):
        if not any(a <= tk < b for tk in t):
            args.parser.error(f"argument --bands: band [{a:g}, {b:g}) holds none of the times "
                              f"t_k = k*{dt:g}, k = 1..{steps} (t from {t[0]:g} to {t[-1]:g})")
    return edges


def _check_spectral(args) -> None:
    args.edges = _check_bands(args, args.steps, args.dt)
    _check_compute(args)


def _spectral_names(m: int, save_npy: bool) -> list[str]:
    names = _band_names(m) + ["residual.png", "spectral.png", "spectrum.csv"]
    return names + (["bands.npy", "residual.npy"] if save_npy else [])


_BAND_NOTE = "bands shown as 0.5 + b / (2 max|b|), each scaled on its own (grey = 0)"


def _spectral_panels(s, bands, edges, scale):
    panels = [(_band_display(b), t) for b, t in zip(bands, _band_titles(edges))]
    panels.append((_to_display(s.residual, scale), "residual"))
    return panels


def _spectral_figure(u0, s, bands, edges, scale, label, params):
    panels = [(_to_display(u0, 1.0), "input")] + _spectral_panels(s, bands, edges, scale)
    ncols = min(len(panels), 7)
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(2.8 * ncols, 2.9 * nrows + 3.0)
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.9 * nrows, 3.0])
    _image_row(top, panels, ncols)
    _plot_spectrum(bottom.subplots(), s, edges)
    fig.suptitle(f"Spectral TV of {label}\n{params}\n{_BAND_NOTE}; "
                 f"residual: u / {scale:g} clipped to [0, 1]", fontsize=10)
    return fig


def _run_spectral(args) -> int:
    u0, label, path = _load_input(args)
    edges = args.edges
    out = Outputs(args.out, _spectral_names(len(edges) - 1, args.save_npy), overwrite=args.overwrite,
                  inputs=[path])
    _setup_compute(args)
    print(f"image: {label}, {'grey' if u0.shape[0] == 1 else 'colour'}")
    print(_scale_note(args.scale))
    params = f"dt={args.dt:g}, N={args.steps}, tol={args.tol:g}, solver={args.solver}, scale={args.scale:g}"
    with out:
        s, secs = _run_spectral_api(u0, args, args.dt, args.steps)
        print(f"spectral TV ({params}; flow to t = {(args.steps + 1) * args.dt:g}): {secs:.2f} s")
        bands = s.filter(edges).cpu()
        print(f"band edges: {' '.join(f'{e:.4g}' for e in edges)}")
        print(_recon_report(s, u0 * args.scale, bands, edges))
        for name, b in zip(_band_names(len(bands)), bands):
            out.image(name, _band_display(b))
        out.image("residual.png", _to_display(s.residual, args.scale))
        out.figure("spectral.png", _spectral_figure(u0, s, bands, edges, args.scale, label, params))
        out.csv("spectrum.csv", ["k", "t", "S", "band"], _spectrum_rows(s, edges))
        if args.save_npy:
            out.npy("bands.npy", bands)
            out.npy("residual.npy", s.residual)
    _report_written(out)
    return 0


# ---------------------------------------------------------------------------
# pdeflow samples
# ---------------------------------------------------------------------------

def _register_samples(sub) -> None:
    p = sub.add_parser(
        "samples", help="list the built-in images",
        description="List the built-in images (shipped inside installed Python packages, nothing is "
                    "downloaded): name, size, kind and train/test split. With --out, also write a contact "
                    "sheet (samples.png).")
    _add_output_args(p, required=False)
    p.set_defaults(run=_run_samples)


def _run_samples(args) -> int:
    out = Outputs(args.out, ["samples.png"], overwrite=args.overwrite) if args.out else None
    names = pdata.builtin_names()
    images, rows = {}, []
    for name in names:
        info = pdata.builtin_info(name)
        img = pdata.builtin_image(name, grey=None)
        images[name] = img
        C, H, W = img.shape
        rows.append((name, f"{H}x{W}", "grey" if C == 1 else "colour", info["kind"], info["split"], info["note"]))
    header = ("name", "size", "channels", "kind", "split", "note")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header) - 1)]
    for r in [header] + rows:
        print(("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + r[-1]).rstrip())
    print(f"{len(names)} images; use them as IMAGE = builtin:NAME")
    if out is not None:
        with out:
            ncols = 6
            nrows = math.ceil(len(names) / ncols)
            fig = _figure(2.2 * ncols, 2.4 * nrows + 0.4)
            panels = [(img.clamp(0, 1), f"{n}\n{img.shape[-2]}x{img.shape[-1]}, {pdata.builtin_info(n)['split']}")
                      for n, img in images.items()]
            _image_row(fig, panels, ncols)
            for ax in fig.axes:
                ax.title.set_fontsize(7)
            fig.suptitle(f"pdeflow built-in images ({len(names)}): name, size, split", fontsize=10)
            out.figure("samples.png", fig)
        _report_written(out)
    return 0


# ---------------------------------------------------------------------------
# pdeflow demo
# ---------------------------------------------------------------------------

DEMO = dict(image="skimage/camera", size=256, times=[0.05, 0.2, 1.0], flow_dt=0.05,
            spec_dt=0.05, steps=40, tol=1e-4, solver="fgp", scale=1.0)


def _register_demo(sub) -> None:
    d = DEMO
    p = sub.add_parser(
        "demo", help="TV flow and spectral TV of the camera image (what `make run` runs)",
        description=f"On builtin:{d['image']} ({d['size']}x{d['size']} centre crop, grey, in [0, 1]): the TV "
                    f"flow at t = {', '.join(f'{t:g}' for t in d['times'])} (dt={d['flow_dt']:g}) and the "
                    f"spectral TV decomposition (dt={d['spec_dt']:g}, N={d['steps']}, dyadic bands), both "
                    f"with tol={d['tol']:g}, solver={d['solver']}. Writes input.png, u_t*.png, band_*.png, "
                    "residual.png, spectrum.csv and the combined figure demo.png.")
    # A 256x256 image gains little from more threads (each torch kernel is ~65k pixels),
    # and on a busy machine extra threads cost more than they give.
    _add_compute_args(p, threads=1, why="; a 256x256 image gains little from more")
    _add_output_args(p)
    p.set_defaults(run=_run_demo, validate=_check_compute)


def _run_demo(args) -> int:
    d = DEMO
    t_start = time.perf_counter()
    ns = argparse.Namespace(image=f"builtin:{d['image']}", size=d["size"], grey=True, scale=d["scale"],
                            dt=d["flow_dt"], tol=d["tol"], solver=d["solver"], device=args.device)
    u0, label, _ = _load_input(ns)
    edges = dyadic_band_edges(d["steps"], d["spec_dt"])
    m = len(edges) - 1
    flow_names = [n for n in _flow_names(d["times"], False) if n != "flow.png"]
    names = ["input.png"] + flow_names + _band_names(m) + ["residual.png", "spectrum.csv", "demo.png"]
    out = Outputs(args.out, names, overwrite=args.overwrite)
    _setup_compute(args)
    print(f"pdeflow demo on {label}, grey, device {args.device}, {torch.get_num_threads()} torch thread(s)")
    print(_scale_note(d["scale"]))
    flow_params = f"dt={d['flow_dt']:g}, tol={d['tol']:g}, solver={d['solver']}"
    spec_params = f"dt={d['spec_dt']:g}, N={d['steps']}, tol={d['tol']:g}, solver={d['solver']}"
    with out:
        out.image("input.png", u0)
        stack, secs_f = _run_flow_api(u0, ns, d["times"])
        print(f"TV flow to t = {', '.join(_time_labels(d['times']))} ({flow_params}): {secs_f:.2f} s")
        for name, u in zip(flow_names, stack):
            out.image(name, _to_display(u, d["scale"]))
        s, secs_s = _run_spectral_api(u0, ns, d["spec_dt"], d["steps"])
        print(f"spectral TV ({spec_params}; flow to t = {(d['steps'] + 1) * d['spec_dt']:g}): {secs_s:.2f} s")
        bands = s.filter(edges).cpu()
        print(f"band edges (dyadic): {' '.join(f'{e:.4g}' for e in edges)}")
        print(_recon_report(s, u0 * d["scale"], bands, edges))
        for name, b in zip(_band_names(m), bands):
            out.image(name, _band_display(b))
        out.image("residual.png", _to_display(s.residual, d["scale"]))
        out.csv("spectrum.csv", ["k", "t", "S", "band"], _spectrum_rows(s, edges))

        flow_panels = [(u0, "input")] + [(_to_display(u, d["scale"]), f"TV flow, t = {lab}")
                                         for u, lab in zip(stack, _time_labels(d["times"]))]
        spec_panels = _spectral_panels(s, bands, edges, d["scale"])
        ncols = max(len(flow_panels), len(spec_panels))
        fig = _figure(2.5 * ncols, 2.6 * 2 + 3.0 + 0.9)
        f1, f2, f3 = fig.subfigures(3, 1, height_ratios=[2.6, 2.6, 3.0])
        _image_row(f1, flow_panels, len(flow_panels))
        f1.suptitle(f"TV flow ({flow_params})", fontsize=10)
        _image_row(f2, spec_panels, len(spec_panels))
        f2.suptitle(f"Spectral TV bands ({spec_params}); {_BAND_NOTE}", fontsize=10)
        _plot_spectrum(f3.subplots(), s, edges)
        fig.suptitle(f"pdeflow demo: {label}, intensities in [0, 1] (scale {d['scale']:g})", fontsize=11)
        out.figure("demo.png", fig)
    _report_written(out)
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 0


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------

#: Register functions of the subcommands, in the order of ``pdeflow --help``.
def _register_tvflownet(sub) -> None:
    # `pdeflow train tvflownet` and `pdeflow evaluate tvflownet` live with the model code.
    from .tvflownet import cli as tvflownet_cli
    from .tvflownet import eval_cli as tvflownet_eval_cli

    tvflownet_cli.add_parsers(sub)
    tvflownet_eval_cli.add_parsers(sub)


def _register_iel(sub) -> None:
    # `pdeflow iel-experiment` lives with the IEL code.
    from .iel import cli as iel_cli

    iel_cli.add_parsers(sub)


def _register_inpainting_learned(sub) -> None:
    # `pdeflow train inpainting` and `pdeflow evaluate inpainting` live with the inpainting GANs.
    from .inpaint import eval_cli as inpaint_eval_cli
    from .inpaint import train_cli as inpaint_train_cli

    inpaint_train_cli.add_parsers(sub)
    inpaint_eval_cli.add_parsers(sub)


def _register_inpaint(sub) -> None:
    # `pdeflow mask` and `pdeflow inpaint` live with the inpainting code.
    from .inpaint import cli as inpaint_cli

    inpaint_cli.add_parsers(sub)


COMMANDS = [_register_flow, _register_spectral, _register_samples, _register_demo, _register_tvflownet, _register_iel, _register_inpainting_learned, _register_inpaint]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="pdeflow: image processing with evolution PDEs (TV flow, spectral TV, ...).",
        epilog=f"`{PROG} SUBCOMMAND --help` describes each subcommand.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for register in COMMANDS:
        register(sub)
    # Every subparser knows itself, for errors found after parsing.
    for name, p in sub.choices.items():
        p.set_defaults(parser=p)
    return parser


def main(argv=None) -> int:
    """Run ``pdeflow`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        validate = getattr(args, "validate", None)
        if validate is not None:
            validate(args)
    except SystemExit as exc:  # argparse: --help, --version or a usage error (status 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    # SIGTERM (kill, timeout) unwinds like Ctrl-C, removing this run's partial outputs.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.run(args) or 0)
    except CLIError as exc:
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated) as exc:
        print(f"{args.parser.prog}: {'terminated' if isinstance(exc, _Terminated) else 'interrupted'}; "
              "no output file of this run was left", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
