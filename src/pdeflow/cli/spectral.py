"""``pdeflow spectral``: the spectral TV decomposition (Gilboa 2014) from the command line.

The conventions of ``pdeflow flow`` (:mod:`pdeflow.cli.flow`): images read in [0, 1] and multiplied by ``--scale``,
flow times in units of the scaled image; a volume IMAGE is decomposed in 3-D with its spacing.

``add_parsers(sub)`` registers ``spectral`` on the top-level subparsers of ``pdeflow``.
"""
from __future__ import annotations

import argparse
import math

from .. import viz
from ..tv import SPECTRAL_ACCURACY, dyadic_band_edges
from ._arguments import add_command, check_compute, nonneg_floats, positive_int, setup_compute, stopping_rule
from ._errors import PROG
from ._flow_common import (
    BAND_NOTE,
    add_input_args,
    add_run_args,
    band_display,
    band_names,
    band_titles,
    plot_spectrum,
    recon_report,
    run_spectral_api,
    scale_note,
    spectral_panels,
    spectrum_rows,
    to_display,
    volume_scale_note,
)
from ._inputs import check_nd_solver, check_volume_args, load_input, load_volume, print_spacing
from ._outputs import Outputs, report_written

__all__ = ["add_parsers"]


_VOLUME_BAND_NOTE = "bands shown as 0.5 + b / (2 m), m the 99.5 % quantile of |b| of each, clipped (grey = 0)"



def _register_spectral(sub) -> None:
    p = add_command(sub, "spectral", _run_spectral,
                    epilog=f"example: {PROG} spectral builtin:skimage/coins --dt 0.04 --steps 50 "
                           "--bands 0.02 0.1 0.5 2.04 --out spec/",
                    validate=_check_spectral)
    inputs = add_input_args(p)
    g = p.add_argument_group("decomposition")
    g.add_argument("--steps", type=positive_int, default=50, metavar="N",
                   help="number of time steps t_k = k*dt of the decomposition, k = 1..N (default 50)")
    g.add_argument("--bands", type=nonneg_floats, nargs="+", default=None, metavar="E",
                   help="band edges in flow time, >= 0, strictly increasing, at least two; each band "
                        "[e_i, e_i+1) must hold a time k*dt (default: dyadic bands k in [1,2), [2,4), ...)")
    add_run_args(p, inputs, dt=0.04, acc=SPECTRAL_ACCURACY,
                  npy="bands.npy (m, C, H, W) and residual.npy (C, H, W) (a volume: (m, D, H, W), (D, H, W))")


def _increasing(values, name: str, parser: argparse.ArgumentParser) -> list[float]:
    vals = [float(v) for v in values]
    if any(b <= a for a, b in zip(vals, vals[1:])):
        parser.error(f"argument {name}: values must be strictly increasing, got {' '.join(f'{v:g}' for v in vals)}")
    return vals


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
    check_volume_args(args)
    check_nd_solver(args, "--solver", args.solver)
    check_compute(args)


def _spectral_names(m: int, save_npy: bool) -> list[str]:
    names = band_names(m) + ["residual.png", "spectral.png", "spectrum.csv"]
    return names + (["bands.npy", "residual.npy"] if save_npy else [])


def _spectral_figure(u0, s, bands, edges, scale, label, params):
    panels = [(to_display(u0, 1.0), "input")] + spectral_panels(s, bands, edges, scale)
    ncols = min(len(panels), 7)
    nrows = math.ceil(len(panels) / ncols)
    fig = viz.figure(2.8 * ncols, 2.9 * nrows + 3.0)
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.9 * nrows, 3.0])
    viz.image_grid(top, panels, ncols)
    plot_spectrum(bottom.subplots(), s, edges)
    fig.suptitle(f"Spectral TV of {label}\n{params}\n{BAND_NOTE}; "
                 f"residual: u / {scale:g} clipped to [0, 1]", fontsize=10)
    return fig


def _run_spectral(args) -> int:
    """Spectral TV decomposition (Gilboa 2014) from N+1 implicit TV flow steps: phi(t) = t u_tt, spectrum S(t) =
    ||phi(t)||_1, bands f_i = sum of phi(t_k) dt over the t_k in [e_i, e_i+1), residual f_r = u(T) - T u_t(T).
    Writes band_i.png (each band normalised for display), residual.png, spectral.png (figure) and spectrum.csv.
    A volume IMAGE is decomposed in 3-D with its voxel spacing (--spacing): band_i.EXT and residual.EXT in the
    file's units and format, spectral.png with three orthogonal slices per band."""
    if args.volume:
        return _run_spectral_volume(args)
    u0, label, path = load_input(args)
    edges = args.edges
    out = Outputs(args.out, _spectral_names(len(edges) - 1, args.save_npy), overwrite=args.overwrite,
                  inputs=[path])
    setup_compute(args)
    print(f"image: {label}, {'grey' if u0.shape[0] == 1 else 'colour'}")
    print(scale_note(args.scale))
    print_spacing(args)
    params = f"dt={args.dt:g}, N={args.steps}, {stopping_rule(args)}, solver={args.solver}, scale={args.scale:g}"
    with out:
        s, secs = run_spectral_api(u0, args, args.dt, args.steps, args.spacing)
        print(f"spectral TV ({params}; flow to t = {(args.steps + 1) * args.dt:g}): {secs:.2f} s")
        bands = s.filter(edges).cpu()
        print(f"band edges: {' '.join(f'{e:.4g}' for e in edges)}")
        print(recon_report(s, u0 * args.scale, bands, edges))
        for name, b in zip(band_names(len(bands)), bands):
            out.image(name, band_display(b))
        out.image("residual.png", to_display(s.residual, args.scale))
        out.figure("spectral.png", _spectral_figure(u0, s, bands, edges, args.scale, label, params))
        out.csv("spectrum.csv", ["k", "t", "S", "band"], spectrum_rows(s, edges))
        if args.save_npy:
            out.npy("bands.npy", bands)
            out.npy("residual.npy", s.residual)
    report_written(out)
    return 0


def _run_spectral_volume(args) -> int:
    """``pdeflow spectral`` of a volume: the 3-D spectral TV decomposition with its spacing."""
    vin = load_volume(args)
    edges, sfx, m = args.edges, vin.suffix, len(args.edges) - 1
    names = ([f"band_{i}{sfx}" for i in range(m)] + ["residual" + sfx, "spectral.png", "spectrum.csv"]
             + (["bands.npy", "residual.npy"] if args.save_npy else []))
    out = Outputs(args.out, names, overwrite=args.overwrite, inputs=[vin.path])
    setup_compute(args)
    print(vin.about)
    print(volume_scale_note(args.scale))
    params = f"dt={args.dt:g}, N={args.steps}, {stopping_rule(args)}, solver={args.solver}, scale={args.scale:g}"
    with out:
        s, secs = run_spectral_api(vin.data, args, args.dt, args.steps, vin.spacing)
        print(f"spectral TV (3-D; {params}; flow to t = {(args.steps + 1) * args.dt:g}): {secs:.2f} s")
        bands = s.filter(edges).cpu()                                   # (m, D, H, W), scaled
        print(f"band edges: {' '.join(f'{e:.4g}' for e in edges)}")
        print(recon_report(s, vin.data * args.scale, bands, edges))
        for i, b in enumerate(bands):
            out.volume(f"band_{i}{sfx}", vin.diff_in_units(b / args.scale).float(), vin.spacing)
        out.volume("residual" + sfx, vin.in_units(s.residual.cpu() / args.scale).float(), vin.spacing)
        out.csv("spectrum.csv", ["k", "t", "S", "band"], spectrum_rows(s, edges))
        if args.save_npy:
            out.npy("bands.npy", bands)
            out.npy("residual.npy", s.residual)
        panels = ([(vin.shown(vin.data), "input")]
                  + [(band_display(b, 0.995), t) for b, t in zip(bands, band_titles(edges))]
                  + [(vin.shown(s.residual.cpu() / args.scale), "residual")])
        fig = viz.slices_figure(panels, vin.spacing, below=2.6,
                                title=f"Spectral TV (3-D) of {vin.label}\n{params}, {secs:.2f} s\n"
                                      f"{_VOLUME_BAND_NOTE}\n{vin.window_note()}")
        plot_spectrum(fig.subfigs[1].subplots(), s, edges)
        out.figure("spectral.png", fig)
    report_written(out)
    return 0


def add_parsers(sub) -> None:
    """Register ``pdeflow spectral`` on the top-level subparsers."""
    _register_spectral(sub)
