"""What the ``flow``, ``spectral`` and ``demo`` commands share: the input and solver options of ``flow`` and
``spectral``, the scale notes, progress and the steps line of a flow, and the spectral decomposition's run, bands,
spectrum and report (``demo`` runs a flow and a decomposition).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from ..tv import FLOW_ACCURACY, ROF_METHODS, spectral_tv
from ..tv.steps import STEP_ACCURACY, estimate_seconds, flow_steps
from ._arguments import accuracy, add_compute_args, add_output_args, positive_float, positive_int
from ._errors import PROG, CLIError
from ._inputs import DEFAULT_BUILTIN, SIZE_HELP, VOLUME_HELP, add_volume_args


def to_display(u: torch.Tensor, scale: float) -> torch.Tensor:
    """Divide by the intensity scale and clip to [0, 1] (for PNGs and figures)."""
    return (u.detach().cpu().double() / scale).clamp(0.0, 1.0)


def band_display(b: torch.Tensor, q: float = 1.0) -> torch.Tensor:
    """Signed band to [0, 1]: 0.5 + b / (2 m), clipped, so grey is 0; m the ``q`` quantile of |b| (default its
    maximum; 0.995 for a volume, where a few extreme voxels would otherwise leave the rest grey on grey)."""
    b = b.detach().cpu().double()
    a = b.abs()
    m = float(a.max()) if q >= 1 else (float(np.quantile(a.numpy(), q)) or float(a.max()))
    return (0.5 + b / (2.0 * m)).clamp(0.0, 1.0) if m > 0 else torch.full_like(b, 0.5)


#: A flow of at least this much work (implicit steps times values of the image: the README's 8 steps of a
#: 512 x 512 grey photograph, tens of seconds) reports its progress in a log too, with its time estimate after
#: the first step (a terminal shows a bar for every flow).
LONG_FLOW_WORK = 2_000_000
def show_progress(steps: int, values: int) -> bool:
    """Whether a flow of ``steps`` implicit steps of an image of ``values`` values reports progress: on a
    terminal always (a bar, gone when done), in a log only when the flow is long (short ones would fill it
    with lines)."""
    return steps * values >= LONG_FLOW_WORK or sys.stderr.isatty()


#: A flow estimated to take at least this many seconds says so before it starts (shorter ones stay quiet).
LONG_WORK_SECONDS = 5.0


def about(seconds: float) -> str:
    """``seconds`` to one significant figure, in seconds under 90 and in minutes from there."""
    if seconds >= 90:
        return f"about {float(f'{seconds / 60:.1g}'):g} min"
    return f"about {float(f'{seconds:.1g}'):g} s"


def steps_line(x: torch.Tensor, times, args, spacing=None):
    """Print the implicit steps a flow of ``x`` (scaled) to ``times`` takes and the accuracy they buy (one line,
    before it starts) and, for a long flow, the time it will take (estimated, :func:`pdeflow.tv.steps.
    estimate_seconds`); returns the steps (:class:`pdeflow.tv.steps.FlowSteps`)."""
    rng = float(x.max() - x.min())
    plan = flow_steps(times, dt=args.dt, accuracy=args.accuracy, tol=args.tol, data_range=rng if rng > 0 else 1.0,
                      spacing=min(spacing) if spacing is not None else 1.0)
    print(f"steps: {plan.describe()}", flush=True)
    secs = estimate_seconds(plan, x, solver=args.solver, compile=args.compile, spacing=spacing)
    if secs is not None and secs >= LONG_WORK_SECONDS:
        print(f"time: {about(secs)} estimated for the {plan.n_steps} steps (a rule fitted to photographs, "
              "often off by up to 2x)", flush=True)
    return plan


def run_spectral_api(u0, args, dt, steps, spacing=None):
    x = (u0 * args.scale).to(args.device)
    if not bool(torch.isfinite(x).all()):
        raise CLIError(f"argument --scale: {args.scale:g} times the image is not finite")
    n = steps_line(x, [k * dt for k in range(steps + 2)], argparse.Namespace(**{**vars(args), "dt": dt}),
                    spacing).n_steps
    t0 = time.perf_counter()
    s = spectral_tv(x, dt=dt, n_steps=steps, tol=args.tol, accuracy=args.accuracy, solver=args.solver,
                    compile=args.compile,
                    progress=show_progress(n, x.numel()), spacing=spacing)
    return s, time.perf_counter() - t0


def scale_note(scale: float) -> str:
    return (f"intensity scale: image read in [0, 1] and multiplied by {scale:g} for the flow "
            f"(times are for the scaled image); PNGs show values divided by {scale:g}, clipped to [0, 1]")


def band_names(m: int) -> list[str]:
    return [f"band_{i}.png" for i in range(m)]


def band_titles(edges) -> list[str]:
    return [f"band {i}: t in [{a:.4g}, {b:.4g})" for i, (a, b) in enumerate(zip(edges, edges[1:]))]


def spectrum_rows(s, edges):
    t = s.times.cpu().tolist()
    S = s.spectrum.reshape(len(t)).cpu().tolist()
    rows = []
    for k, (tk, Sk) in enumerate(zip(t, S), start=1):
        band = next((i for i, (a, b) in enumerate(zip(edges, edges[1:])) if a <= tk < b), "")
        rows.append([k, f"{tk:.10g}", f"{Sk:.10g}", band])
    return rows


def plot_spectrum(ax, s, edges) -> None:
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


def recon_report(s, u0s, bands, edges) -> str:
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


def add_input_args(p: argparse.ArgumentParser):
    """The input group of ``flow`` and ``spectral`` (returned, for --spacing)."""
    g = p.add_argument_group("input")
    g.add_argument("image", metavar="IMAGE", nargs="?", default=None,
                   help=f"image file (PNG, JPEG, TIFF, DICOM) or builtin:NAME "
                        f"(default: builtin:{DEFAULT_BUILTIN}; `{PROG} samples` lists the built-in names), "
                        + VOLUME_HELP)
    g.add_argument("--size", type=positive_int, default=None, help=SIZE_HELP)
    c = g.add_mutually_exclusive_group()  # inside the "input" group
    c.add_argument("--grey", "--gray", dest="grey", action="store_true", default=None,
                   help="convert a colour image to grey (luminance) first (default: keep its colour)")
    c.add_argument("--colour", "--color", dest="grey", action="store_false",
                   help="keep colour (the default for a colour image: 3 channels, coupled vectorial TV; a grey "
                        "image gets 3 equal channels)")
    g.add_argument("--scale", metavar="S", type=positive_float, default=1.0,
                   help="multiply the [0, 1] image by S before the flow (default 1; the TVflowNET paper uses 5)")
    return g


def _add_solver_args(p: argparse.ArgumentParser, dt: float | None, acc: float = FLOW_ACCURACY) -> None:
    g = p.add_argument_group("solver")
    if dt is None:
        g.add_argument("--dt", type=positive_float, default=None,
                       help="implicit time step: every step of this size on the grid k*dt (a time off it: a "
                            "partial step), and --accuracy for the solver alone (default: the fewest equal steps "
                            "landing on each time that keep the estimated RMS error of the time stepping to half "
                            "of --accuracy; the line 'steps:' says how many, their dt and the error they buy)")
        g.add_argument("--accuracy", type=accuracy, default=None,
                       help=f"the RMS error of every result against the exact TV flow, as a fraction of the image's "
                            f"range: half for the time steps (estimated by a rule measured on photographs), half "
                            f"for the solver of each step (certified) (default {STEP_ACCURACY:g}, about two 8-bit "
                            f"step); with --dt, the solver's alone, against the exact implicit steps (default "
                            f"{acc:g})")
    else:
        g.add_argument("--dt", type=positive_float, default=dt, help=f"implicit time step (default {dt:g})")
        g.add_argument("--accuracy", type=accuracy, default=acc,
                       help=f"stop each implicit step so that the RMS error of every result against the exact "
                            f"implicit scheme is certified to be at most this fraction of the image's range "
                            f"(default {acc:g})")
    g.add_argument("--tol", type=positive_float, default=None,
                   help="relative duality gap of each implicit step instead of --accuracy (1e-6: exact)")
    g.add_argument("--solver", choices=ROF_METHODS, default="fgp", help="ROF solver of each step (default fgp)")
    g.add_argument("--compile", action="store_true",
                   help="run the fgp iterations as kernels compiled by torch.compile: faster per iteration "
                        "after a one-time compilation (docs/results/speed.md; needs a C++ compiler, else "
                        "it warns and runs them uncompiled)")


def add_run_args(p: argparse.ArgumentParser, inputs, *, dt: float, npy: str, acc: float = FLOW_ACCURACY) -> None:
    """The options ``flow`` and ``spectral`` end with: --spacing (in ``inputs``), solver (``acc``: the default
    --accuracy with a --dt), computation, output, and ``--save-npy`` writing ``npy`` (the raw arrays, in scaled
    units)."""
    _add_solver_args(p, dt=dt, acc=acc)
    p.set_defaults(warning_flags=[("tol", "tol", "--tol")])     # the solver's max_iter has no option
    add_compute_args(p)
    out = add_output_args(p)
    out.add_argument("--save-npy", action="store_true", help=f"also write {npy}, in scaled units")
    add_volume_args(inputs, out)


def volume_scale_note(scale: float) -> str:
    return (f"intensity scale: the volume mapped to [0, 1] and multiplied by {scale:g} for the flow (times are for "
            "the scaled volume, in the spacing's unit of length); the written volumes are divided back, in the file's "
            "units")


BAND_NOTE = "bands shown as 0.5 + b / (2 max|b|), each scaled on its own (grey = 0)"


def spectral_panels(s, bands, edges, scale):
    panels = [(band_display(b), t) for b, t in zip(bands, band_titles(edges))]
    panels.append((to_display(s.residual, scale), "residual"))
    return panels
