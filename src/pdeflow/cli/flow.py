"""``pdeflow flow`` and ``demo``: the TV flow from the command line, and the demo of the flow and the spectral TV
decomposition (``pdeflow spectral``, :mod:`pdeflow.cli.spectral`) on the camera image.

Conventions: images are read in [0, 1] and multiplied by ``--scale`` (default
1) before the flow, so flow times are in units of the scaled image
(one-homogeneity: ``flow(c u0, t) = c flow(u0, t / c)``). PNGs show results
divided back by the scale and clipped to [0, 1]; ``--save-npy`` keeps the raw
float values in the scaled units.

Volumes (IMAGE a volume file or a folder of DICOM slices, :func:`pdeflow.io.is_volume`): read with
their spacing, min-max mapped to [0, 1] for the same conventions, processed in 3-D, and written
as volumes in the file's units, with a figure of three orthogonal slices
(:func:`pdeflow.viz.slices_figure`).

``add_parsers(sub)`` registers ``flow``, ``add_demo_parser(sub)`` registers ``demo`` (a flow and a decomposition,
on the camera image), on the top-level subparsers of ``pdeflow``.
"""
from __future__ import annotations

import argparse
import inspect
import math
import sys
import time

import torch

from .. import viz
from ..errors import UserInputError
from ..tv import FLOW_ACCURACY, dyadic_band_edges, tv_flow
from ..tv.steps import check_times, default_accuracy
from ..tvflownet.symmetry import DihedralMean
from ._arguments import (
    add_command,
    add_compute_args,
    add_output_args,
    check_compute,
    nonneg_floats,
    setup_compute,
    stopping_rule,
)
from ._errors import PROG, CLIError
from ._flow_common import (
    BAND_NOTE,
    add_input_args,
    add_run_args,
    band_display,
    band_names,
    plot_spectrum,
    recon_report,
    run_spectral_api,
    scale_note,
    show_progress,
    spectral_panels,
    spectrum_rows,
    steps_line,
    to_display,
    volume_scale_note,
)
from ._inputs import check_nd_solver, check_volume_args, load_input, load_volume, print_spacing
from ._outputs import Outputs, report_written, time_labels

__all__ = ["add_parsers", "add_demo_parser", "DEMO"]


#: A flow given a --dt of at least this many implicit steps (its largest time / --dt, one ROF solve each) gets a
#: hint that names --dt before it starts.
LONG_FLOW_STEPS = 1000
#: The step count of the --dt that the hint suggests.
_HINT_STEPS = 200


def _implicit_steps(t_max: float, dt: float) -> int:
    return math.ceil(t_max / dt - 1e-9)     # tv_flow's steps: full steps of dt, and a partial one to t_max


def _solver_words(plan, args) -> str:
    """The steps and the solver of a flow, for its timing line and figure."""
    return f"{plan.n_steps} steps, dt={plan.dt:.3g}, {stopping_rule(args)}, solver={args.solver}"


def _long_flow_hint(t_max: float, dt: float, shape) -> None:
    """One line on stderr before a flow of many implicit steps: their number and a --dt that takes fewer."""
    steps = _implicit_steps(t_max, dt)
    if steps < LONG_FLOW_STEPS:
        return
    coarser = float(f"{t_max / _HINT_STEPS:.1g}")
    print(f"note: t = {t_max:g} with --dt {dt:g} is about {steps} implicit steps (one ROF solve each) on this "
          f"{'x'.join(map(str, shape))} image; a larger --dt takes fewer, coarser in time "
          f"(--dt {coarser:g}: {_implicit_steps(t_max, coarser)} steps)", file=sys.stderr)


def _run_flow_api(u0, args, times, spacing=None):
    """tv_flow on ``scale * u0`` (a 3-element ``spacing``: u0 is a volume (D, H, W)); returns (stack (T, C, H, W)
    or (T, D, H, W), seconds)."""
    x = (u0 * args.scale).to(args.device)
    if not bool(torch.isfinite(x).all()):
        raise CLIError(f"argument --scale: {args.scale:g} times the image is not finite")
    if args.dt is not None:
        _long_flow_hint(max(times), args.dt,
                        u0.shape[-3:] if spacing is not None and len(spacing) == 3 else u0.shape[-2:])
    plan = steps_line(x, times, args, spacing)
    t0 = time.perf_counter()
    u = tv_flow(x, times, dt=args.dt, tol=args.tol, accuracy=args.accuracy, solver=args.solver, compile=args.compile,
                progress=show_progress(plan.n_steps, x.numel()), spacing=spacing)
    return u.cpu(), time.perf_counter() - t0, plan


#: tv_flow's own dt, tol and accuracy: `pdeflow flow` and `pdeflow spectral` use the library's defaults.
_FLOW_DEFAULTS = {k: inspect.signature(tv_flow).parameters[k].default for k in ("dt", "tol", "accuracy")}


# ---------------------------------------------------------------------------
# pdeflow flow
# ---------------------------------------------------------------------------

def _register_flow(sub) -> None:
    p = add_command(sub, "flow", _run_flow,
                    epilog=f"example: {PROG} flow photo.png --times 0.1 0.5 2 --out results/",
                    validate=_check_flow)
    inputs = add_input_args(p)
    g = p.add_argument_group("flow")
    g.add_argument("--times", type=nonneg_floats, nargs="+", default=[0.1, 0.5, 2.0], metavar="T",
                   help="flow times, >= 0, non-decreasing as in the API; a repeated time is written once "
                        "(default 0.1 0.5 2)")
    g.add_argument("--method", choices=("reference", "net", "both"), default="reference",
                   help="reference: the implicit TV flow solver; net: a trained TVflowNET; both: side by side, "
                        "with the network's PSNR and SSIM against the reference (default reference)")
    g.add_argument("--model", metavar="NAME|PATH", default=None,
                   help="TVflowNET for --method net/both: a shipped name, a .safetensors/.json path or a run "
                        "directory (default: the shipped default model; unet-colour for a colour image)")
    g.add_argument("--symmetry", choices=("none", *DihedralMean.GROUPS), default=None,
                   help="--method net/both: average the network over the image and its transpose (the default: "
                        "2 network calls, an exact symmetry of the discrete flow), over all 8 flips and quarter "
                        "turns (8 calls), or none (1 call)")
    add_run_args(p, inputs, dt=_FLOW_DEFAULTS["dt"],
                  npy="u.npy (reference) / net.npy (network): the flow, shape (len(times), C, H, W) (a volume: "
                      "(len(times), D, H, W)), float32")


def _check_flow(args) -> None:
    # Non-decreasing, as pdeflow.tv.steps.check_times takes them (the API returns a repeated time's
    # frame twice); one file per time, so a repeated time is written once, with a note.
    try:
        times = check_times(args.times)
    except UserInputError as e:
        args.parser.error(f"argument --times: {e}")
    args.times = sorted(set(times))
    args.accuracy = default_accuracy(args.accuracy, args.dt)
    args.times_repeated = sorted({t for t in times if times.count(t) > 1})
    if args.model is not None and args.method == "reference":
        args.parser.error("argument --model: only used with --method net or both")
    if args.symmetry is not None and args.method == "reference":
        args.parser.error("argument --symmetry: only used with --method net or both")
    check_volume_args(args)
    if args.method != "reference" and args.volume:
        args.parser.error(f"argument --method: TVflowNET is 2-D only and IMAGE '{args.image}' is a volume; use "
                          "--method reference (the 3-D TV flow)")
    if args.method != "reference" and args.spacing is not None:
        args.parser.error("argument --spacing: TVflowNET models are trained on unit pixel spacing; use --method "
                          "reference with --spacing")
    check_nd_solver(args, "--solver", args.solver)
    check_compute(args)


#: File prefixes of the two ways to compute the flow.
_FLOW_PREFIX = {"reference": "u", "net": "net"}


def _flow_names(times, save_npy: bool, method: str = "reference") -> list[str]:
    kinds = ("reference", "net") if method == "both" else (method,)
    names = [f"{_FLOW_PREFIX[k]}_t{lab}.png" for k in kinds for lab in time_labels(times)] + ["flow.png"]
    if method == "both":
        names.append("comparison.csv")
    return names + ([f"{_FLOW_PREFIX[k]}.npy" for k in kinds] if save_npy else [])


def _flow_figure(u0, stacks, times, scale, label, params):
    """One row per method (dict name -> stack), the input first in each row."""
    ncols = min(len(times) + 1, 6)
    rows = []
    for name, stack in stacks.items():
        panels = [(to_display(u0, 1.0), "input")]
        panels += [(to_display(u, scale), f"{name}, t = {lab}") for u, lab in zip(stack, time_labels(times))]
        rows.append(panels)
    if "reference" in stacks and "net" in stacks:    # --method both: where the network differs, x10
        diff = [((n - r).abs() * (10.0 / scale)).detach().cpu().double().clamp(0.0, 1.0)
                for n, r in zip(stacks["net"], stacks["reference"])]
        worst = [float((n - r).abs().max()) / scale for n, r in zip(stacks["net"], stacks["reference"])]
        rows.append([(d, f"|net - reference| x 10, t = {lab}\n(white >= 0.1; max {w:.3f})")
                     for d, lab, w in zip(diff, time_labels(times), worst)])
    nrows = sum(math.ceil(len(r) / ncols) for r in rows)
    fig = viz.figure(2.6 * ncols, 2.7 * nrows + 0.2 * params.count(chr(10)) + 0.6)
    subs = fig.subfigures(len(rows), 1, squeeze=False)[:, 0] if len(rows) > 1 else [fig]
    for sf, panels in zip(subs, rows):
        viz.image_grid(sf, panels, ncols)
    fig.suptitle(f"TV flow of {label}\n{params}", fontsize=10)
    return fig


def _check_model_channels(u0, label, args) -> None:
    """The image's channels must be the model's: grey models (the shipped ones) take grey images, a colour model
    (trained with --channels 3) colour ones."""
    from ..tvflownet import api as net_api

    try:
        channels = getattr(net_api.load(args.model), "in_channels", 1)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(f"argument --model: {exc}") from None
    if u0.shape[0] != channels:
        kind = "colour" if u0.shape[0] != 1 else "grey"
        which = "--colour" if args.grey is False and channels == 1 else "IMAGE"    # name what the user asked for
        raise CLIError(f"argument {which}: {label} is {kind} and the model takes {channels} channel(s): "
                       + (f"pass --grey, a colour model (--model {net_api.DEFAULT_COLOUR_MODEL}, or one trained with "
                          "--channels 3), or --method reference"
                          if channels == 1 else "pass --colour"))


def _run_net_api(u0, args, times):
    """A trained TVflowNET on ``scale * u0``; returns (stack (T, C, H, W), seconds, model name). The network
    runs on tiles (:func:`pdeflow.tvflownet.tiled_flow`: the untiled flow to round-off, with the memory of one
    tile), so a 4K photo fits in a few GB."""
    from ..tvflownet import api as net_api
    from ..tvflownet.tiled import tiled_flow

    try:
        model = net_api.load(args.model, device=args.device)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(f"argument --model: {exc}") from None
    x = (u0 * args.scale).to(args.device)
    t0 = time.perf_counter()
    # unset: flow()'s own default
    chosen = {} if args.symmetry is None else {"symmetry": None if args.symmetry == "none" else args.symmetry}
    u = tiled_flow(x, times, model, progress=sys.stderr.isatty(), **chosen)
    if x.is_cuda:
        torch.cuda.synchronize()
    return u.cpu(), time.perf_counter() - t0, args.model or net_api.DEFAULT_MODEL


_SSIM_WINDOW = 11    # metrics.ssim's default Gaussian window (sigma 1.5, truncated at 3.5 sigma)


def _run_flow(args) -> int:
    """Evolve an image by the TV flow u_t = div(grad u / |grad u|) (implicit Euler steps, each an ROF problem)
    and write u at the given times: one PNG per time (u_tT.png), a figure (flow.png) and, with --save-npy, the
    raw float stack (u.npy). A volume IMAGE flows in 3-D with its voxel spacing (--spacing; the reference solver
    only): one volume per time (u_tT.EXT, in the file's units and format) and three orthogonal slices per time
    (flow.png)."""
    if args.volume:
        return _run_flow_volume(args)
    from ..metrics import psnr, ssim

    u0, label, path = load_input(args)
    if args.method != "reference":
        if args.model is None and u0.shape[0] == 3:
            from ..tvflownet.api import DEFAULT_COLOUR_MODEL
            args.model = DEFAULT_COLOUR_MODEL
        _check_model_channels(u0, label, args)
    out = Outputs(args.out, _flow_names(args.times, args.save_npy, args.method), overwrite=args.overwrite,
                  inputs=[path])
    setup_compute(args)
    print(f"image: {label}, {'grey' if u0.shape[0] == 1 else 'colour'}")
    print(scale_note(args.scale))
    print_spacing(args)
    if getattr(args, "times_repeated", None):
        print(f"--times: {' '.join(f'{t:g}' for t in args.times_repeated)} repeated; each time is written once")
    labels = time_labels(args.times)
    stacks, params = {}, []
    with out:
        if args.method in ("reference", "both"):
            stack, secs, plan = _run_flow_api(u0, args, args.times, args.spacing)
            solver = _solver_words(plan, args)
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
                out.image(f"{_FLOW_PREFIX[kind]}_t{lab}.png", to_display(u, args.scale))
            if args.save_npy:
                out.npy(f"{_FLOW_PREFIX[kind]}.npy", stack)
        if args.method == "both":
            # Paper convention: images in [0, 1] (divided by the scale), data range 1.
            net, ref = stacks["net"].double() / args.scale, stacks["reference"].double() / args.scale
            p = psnr(net, ref, data_range=1.0).tolist()
            # SSIM's Gaussian window is 11x11: on a smaller image PSNR only, checked before it is asked
            small = min(net.shape[-2:]) < _SSIM_WINDOW
            q = [None] * len(p) if small else ssim(net, ref, data_range=1.0).tolist()
            if small:
                print(f"  SSIM skipped: the image is {net.shape[-2]}x{net.shape[-1]}, under SSIM's "
                      f"{_SSIM_WINDOW}x{_SSIM_WINDOW} window (comparison.csv leaves its cells empty)")
            for lab, a, b in zip(labels, p, q):
                print(f"  t = {lab}: network vs reference PSNR {a:.2f} dB" + ("" if b is None else f", SSIM {b:.4f}"))
            out.csv("comparison.csv", ["time", "psnr_db", "ssim"],
                    [[t, f"{a:.4f}", "" if b is None else f"{b:.6f}"] for t, a, b in zip(args.times, p, q)])
            params.append("network vs reference PSNR " + ", ".join(f"{a:.1f}" for a in p) + " dB")
        fig = _flow_figure(u0, stacks, args.times, args.scale, label,
                           "\n".join(params + [f"scale={args.scale:g}; shown: u / {args.scale:g} clipped to [0, 1]"]))
        out.figure("flow.png", fig)
    report_written(out)
    return 0


def _run_flow_volume(args) -> int:
    """``pdeflow flow`` of a volume: the 3-D TV flow with its spacing (the reference solver only)."""
    vin = load_volume(args)
    labels, sfx = time_labels(args.times), vin.suffix
    names = [f"u_t{lab}{sfx}" for lab in labels] + ["flow.png"] + (["u.npy"] if args.save_npy else [])
    out = Outputs(args.out, names, overwrite=args.overwrite, inputs=[vin.path])
    setup_compute(args)
    print(vin.about)
    print(volume_scale_note(args.scale))
    if getattr(args, "times_repeated", None):
        print(f"--times: {' '.join(f'{t:g}' for t in args.times_repeated)} repeated; each time is written once")
    with out:
        stack, secs, plan = _run_flow_api(vin.data, args, args.times, vin.spacing)     # (T, D, H, W), scaled
        solver = _solver_words(plan, args)
        print(f"TV flow (3-D) to t = {', '.join(labels)} ({solver}): {secs:.2f} s")
        for lab, u in zip(labels, stack):
            out.volume(f"u_t{lab}{sfx}", vin.in_units(u / args.scale).float(), vin.spacing)
        if args.save_npy:
            out.npy("u.npy", stack)
        panels = [(vin.shown(vin.data), "input")] + [(vin.shown(u / args.scale), f"t = {lab}")
                                                     for u, lab in zip(stack, labels)]
        out.figure("flow.png", viz.slices_figure(
            panels, vin.spacing, title=f"TV flow (3-D) of {vin.label}\n{solver}, scale {args.scale:g}, "
                                       f"{secs:.2f} s\n{vin.window_note()}"))
    report_written(out)
    return 0


# ---------------------------------------------------------------------------
# pdeflow demo
# ---------------------------------------------------------------------------

DEMO = dict(image="skimage/camera", size=256, times=[0.05, 0.2, 1.0], flow_dt=0.05,
            spec_dt=0.05, steps=40, tol=1e-4, accuracy=FLOW_ACCURACY, solver="fgp", scale=1.0)


def _register_demo(sub) -> None:
    d = DEMO
    p = add_command(sub, "demo", _run_demo,
                    description=f"On builtin:{d['image']} ({d['size']}x{d['size']} centre crop, grey, in [0, 1]): "
                                f"the TV flow at t = {', '.join(f'{t:g}' for t in d['times'])} "
                                f"(dt={d['flow_dt']:g}) and the spectral TV decomposition (dt={d['spec_dt']:g}, "
                                f"N={d['steps']}, dyadic bands), both with tol={d['tol']:g} (a relative duality gap "
                                f"per step: a quick look), solver={d['solver']}. "
                                "Writes input.png, u_t*.png, band_*.png, residual.png, spectrum.csv and the combined "
                                "figure demo.png.",
                    validate=check_compute)
    # A 256x256 image gains little from more threads (each torch kernel is ~65k pixels),
    # and on a busy machine extra threads cost more than they give.
    add_compute_args(p, threads=1, why="; a 256x256 image gains little from more")
    add_output_args(p)


def _run_demo(args) -> int:
    d = DEMO
    t_start = time.perf_counter()
    ns = argparse.Namespace(image=f"builtin:{d['image']}", size=d["size"], grey=True, scale=d["scale"],
                            dt=d["flow_dt"], tol=d["tol"], accuracy=d["accuracy"], solver=d["solver"], compile=False,
                            device=args.device)
    u0, label, _ = load_input(ns)
    edges = dyadic_band_edges(d["steps"], d["spec_dt"])
    m = len(edges) - 1
    flow_names = [n for n in _flow_names(d["times"], False) if n != "flow.png"]
    names = ["input.png"] + flow_names + band_names(m) + ["residual.png", "spectrum.csv", "demo.png"]
    out = Outputs(args.out, names, overwrite=args.overwrite)
    setup_compute(args)
    print(f"pdeflow demo on {label}, grey, device {args.device}, {torch.get_num_threads()} torch thread(s)")
    print(scale_note(d["scale"]))
    flow_params = f"dt={d['flow_dt']:g}, {stopping_rule(ns)}, solver={d['solver']}"
    spec_params = f"dt={d['spec_dt']:g}, N={d['steps']}, {stopping_rule(ns)}, solver={d['solver']}"
    with out:
        out.image("input.png", u0)
        stack, secs_f, _ = _run_flow_api(u0, ns, d["times"])
        print(f"TV flow to t = {', '.join(time_labels(d['times']))} ({flow_params}): {secs_f:.2f} s")
        for name, u in zip(flow_names, stack):
            out.image(name, to_display(u, d["scale"]))
        s, secs_s = run_spectral_api(u0, ns, d["spec_dt"], d["steps"])
        print(f"spectral TV ({spec_params}; flow to t = {(d['steps'] + 1) * d['spec_dt']:g}): {secs_s:.2f} s")
        bands = s.filter(edges).cpu()
        print(f"band edges (dyadic): {' '.join(f'{e:.4g}' for e in edges)}")
        print(recon_report(s, u0 * d["scale"], bands, edges))
        for name, b in zip(band_names(m), bands):
            out.image(name, band_display(b))
        out.image("residual.png", to_display(s.residual, d["scale"]))
        out.csv("spectrum.csv", ["k", "t", "S", "band"], spectrum_rows(s, edges))

        flow_panels = [(u0, "input")] + [(to_display(u, d["scale"]), f"TV flow, t = {lab}")
                                         for u, lab in zip(stack, time_labels(d["times"]))]
        spec_panels = spectral_panels(s, bands, edges, d["scale"])
        ncols = max(len(flow_panels), len(spec_panels))
        fig = viz.figure(2.5 * ncols, 2.6 * 2 + 3.0 + 0.9)
        f1, f2, f3 = fig.subfigures(3, 1, height_ratios=[2.6, 2.6, 3.0])
        viz.image_grid(f1, flow_panels, len(flow_panels))
        f1.suptitle(f"TV flow ({flow_params})", fontsize=10)
        viz.image_grid(f2, spec_panels, len(spec_panels))
        f2.suptitle(f"Spectral TV bands ({spec_params}); {BAND_NOTE}", fontsize=10)
        plot_spectrum(f3.subplots(), s, edges)
        fig.suptitle(f"pdeflow demo: {label}, intensities in [0, 1] (scale {d['scale']:g})", fontsize=11)
        out.figure("demo.png", fig)
    report_written(out)
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 0


def add_parsers(sub) -> None:
    """Register ``pdeflow flow`` on the top-level subparsers."""
    _register_flow(sub)


def add_demo_parser(sub) -> None:
    """Register ``pdeflow demo`` on the top-level subparsers."""
    _register_demo(sub)
