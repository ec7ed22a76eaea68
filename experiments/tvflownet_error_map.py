"""Where a TVflowNET's div phi (and u) error sits: on the image border or inside, early or late in the flow.

    python experiments/tvflownet_error_map.py MODEL [MODEL ...] [--sizes 32 96] [--image-dir DIR] [--seed 1]

For natural-image crops (those of ``pdeflow evaluate tvflownet``, Tables 2-4: by default the built-in test
photos; ``--image-dir VAL_PHOTOS --seed 1`` gives the validation crops) and the paper's 50 times, each
model's squared error against the evaluation's reference (images x5, scaled back) is split

* by pixel: the outer ring of width 1 and 2 (its share of the total error and its share of the pixels), and
  the mean error on the first/last row and column against the interior's;
* by time: the share of the error at t < 0.2 (the first 10 of the 50 times);

and the stack PSNR (the tables' metric) is printed as measured and as it would be with the border ring's
error replaced by the interior's mean: what a model gets from a border it represents exactly. The
paper's boundary condition, phi = 0 on a one-pixel border (``edge_width=1``), makes ``div phi`` wrong on
the border rows and columns of the discrete flow (``tests/test_tvflownet_models.py``), which this
measures on a trained model; ``--edge-width W`` evaluates the models under another border width than
they were trained with (what switching the convention alone, without training, does). The network is
called bare (one call, no wrapper). ``--ut`` also scores the network's own time derivative u_t (forward-mode
autodiff of u in t) as an estimate of the reference's u_t, beside div phi: whether u's derivative would
serve Table 4 better than the network's phi. ``--ensemble`` also scores the mean of the models' outputs (u and
phi averaged over the models: one ensemble of all of them) and prints its squared error as a share of the
members' mean squared error, for u and div phi: the error that the models share (bias: near 1) rather than
scatter around the reference (variance: 1/N for N independent errors). ``--time-windows W ...`` scores each
model's div phi against the reference's u_t averaged over centred windows of W in time, ``(u(t + W/2) -
u(t - W/2)) / W`` (from t = 0 where the window would start before it), beside the evaluation's reference (the
backward quotient of one step of 0.01): if a network's div phi is closer to u_t blurred over some W than to u_t
itself, it computes a time-blurred velocity, as one smooth in t must wherever u_t jumps (where facets merge).
The blurred references' own PSNR against the evaluation's is printed too: the ceiling of a network that
computed exactly that blur. ``--jumps`` splits each model's div phi error by how much the reference's u_t
jumps at the pixel (its largest difference to a 4-neighbour, per frame): the share of the error on the 5, 10
and 20 % of pixels where u_t jumps most (the facets' edges, where the velocity is discontinuous in space).
``--facets`` averages each model's div phi over facets (the connected regions where 4-neighbours differ by
less than a threshold; the flow's velocity is one number per facet): over the reference's own facets (an oracle:
what knowing the flow's facets would give) and over facets found from the model's own u and div phi, at a few
thresholds. ``--by-source`` scores each crop's div phi on its own and groups the crops by the photo they were cut
from: each photo's mean PSNR, the PSNR a model that output div phi = 0 would get there (the target's own
energy: how fast that photo's content moves early in the flow), and the mean over the crops of the other photos
(what the table would read without that photo).
Printed, and written to ``--out`` (log.txt; default a fresh folder under runs/benchmarks/).

Historical. It located TVflowNET's div phi error (border or inside, early or late). Its results are kept for
the record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow.tvflownet import load, zero_border
from pdeflow.tvflownet.evaluate import (
    PAPER_SCALE,
    PSNR_CAP,
    model_flow,
    natural_images,
    paper_times,
    reference_flow,
    time_derivatives,
)


def ring(size: int, width: int) -> torch.Tensor:
    """The outer ``width`` rows and columns of a ``size`` x ``size`` image: where ``zero_border`` zeroes phi."""
    return zero_border(torch.ones(size, size), width) == 0


def crop_psnrs(err: torch.Tensor) -> torch.Tensor:
    """``(B,)``: the PSNR of each image's whole stack, capped at ``PSNR_CAP`` as in the tables;
    ``err`` ``(K, B, C, H, W)`` squared errors."""
    return (-10 * torch.log10(err.mean(dim=(0, 2, 3, 4)))).clamp(max=PSNR_CAP)


def stack_psnr(err: torch.Tensor) -> float:
    """The tables' metric: the mean over images of :func:`crop_psnrs`."""
    return float(crop_psnrs(err).mean())


def report(name: str, what: str, err: torch.Tensor, times: list[float]) -> None:
    size = err.shape[-1]
    inner = ~ring(size, 2)
    parts = [f"{name:>12s} {what:7s} {size:4d} px | PSNR {stack_psnr(err):6.2f}"]
    for w in (1, 2):
        m = ring(size, w)
        fixed = err.clone()
        fixed[..., m] = err[..., ~m].mean()
        parts.append(f"ring {w}: {float(m.float().mean()):4.0%} of pixels, {float(err[..., m].sum() / err.sum()):4.0%} "
                     f"of error, PSNR {stack_psnr(fixed):6.2f} if like the inside")
    rows = [err[..., 0, :], err[..., -1, :], err[..., :, 0], err[..., :, -1]]
    parts.append("first/last row, first/last column vs inside: "
                 + " ".join(f"{float(r.mean() / err[..., inner].mean()):4.1f}x" for r in rows))
    early = sum(1 for t in times if t < 0.2)
    parts.append(f"t < 0.2: {float(err[:early].sum() / err.sum()):4.0%} of error")
    print(" | ".join(parts), flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="shipped names, model files or run folders")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 96])
    ap.add_argument("--n-images", type=int, default=16)
    ap.add_argument("--image-dir", default=None, help="photos to crop (default: the built-in test photos)")
    ap.add_argument("--seed", type=int, default=0, help="crop seed (default 0, the test tables'; validation: 1)")
    ap.add_argument("--edge-width", type=int, default=None,
                    help="evaluate every model with this border width of phi (default: each model's own)")
    ap.add_argument("--ut", action="store_true", help="also score the network's u_t (autodiff in t) against the "
                                                      "reference's u_t, as div phi is")
    ap.add_argument("--ensemble", action="store_true", help="also score the mean of the models' outputs, and the "
                                                            "share of their error that they have in common")
    ap.add_argument("--time-windows", type=float, nargs="+", default=None, metavar="W",
                    help="also score div phi against the reference's u_t averaged over centred windows of W "
                         "(PDE time, multiples of 0.02)")
    ap.add_argument("--jumps", action="store_true",
                    help="also split div phi's error by the size of the reference u_t's jump at each pixel")
    ap.add_argument("--facets", action="store_true",
                    help="also score div phi averaged over the reference's facets (an oracle) and the model's own")
    ap.add_argument("--by-source", action="store_true",
                    help="also score div phi per crop, grouped by the photo each crop was cut from")
    add_output_args(ap, "tvflownet_error_map", what="log.txt")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    models = {name: load(name).eval() for name in args.models}
    if args.edge_width is not None:
        if args.edge_width < 0:
            ap.error(f"--edge-width must be >= 0, got {args.edge_width}")
        for model in models.values():
            model.edge_width = args.edge_width
    times = paper_times()
    windows = check_windows(ap, args.time_windows)
    for size in args.sizes:
        crops, sources = natural_images(size, args.n_images, seed=args.seed, image_dir=args.image_dir,
                                        return_sources=True)
        x = crops * PAPER_SCALE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ref_u, ref_ut = reference_flow(x, times)
        flows = []
        ref_facets = facets(ref_u.shape[:2], [ref_u], [1e-4]) if args.facets else None
        if args.facets:
            print(f"the reference's u_t averaged over its own facets (u within 1e-4), {size} px: "
                  f"{stack_psnr(((facet_mean(ref_ut, ref_facets) - ref_ut) / PAPER_SCALE) ** 2):6.2f}", flush=True)
        for name, model in models.items():
            u, d = model_flow(model, x, times)
            err = ((d - ref_ut) / PAPER_SCALE) ** 2
            report(name, "div phi", err, times)
            report(name, "u", ((u - ref_u) / PAPER_SCALE) ** 2, times)
            if args.jumps:
                jump_report(name, err, ref_ut)
            if args.by_source:
                source_report(name, err, ref_ut, sources)
            if args.facets:
                facet_report(name, u, d, ref_ut, ref_facets)
            if args.ut:
                ut = torch.stack([time_derivatives(model, x, t)[1].detach().float() for t in times])
                report(name, "u_t", ((ut - ref_ut) / PAPER_SCALE) ** 2, times)
            if args.ensemble or windows:
                flows.append((u, d))
        if args.ensemble:
            ensemble_report(flows, ref_u, ref_ut, times)
        if windows:
            window_report(list(models), flows, x, times, windows, ref_ut)


def jump_report(name: str, err: torch.Tensor, ref_ut: torch.Tensor) -> None:
    """Share of the squared error ``err`` on the pixels where ``ref_ut`` jumps most in space.

    A pixel's jump is the largest absolute difference of ``ref_ut`` to one of its 4 neighbours in the
    same frame; the pixels are ranked by it over all frames and images.
    """
    jump = torch.zeros_like(ref_ut)
    for dim in (-2, -1):
        step = ref_ut.diff(dim=dim).abs()                   # between each pixel and its next along dim
        n = step.shape[dim]
        for part in (jump.narrow(dim, 0, n), jump.narrow(dim, 1, n)):
            torch.maximum(part, step, out=part)
    order = jump.flatten().argsort(descending=True)
    err = err.flatten()[order]
    parts = [f"{name[-12:]:>12s} div phi error on the pixels where u_t jumps most:"]
    for share in (0.05, 0.10, 0.20):
        parts.append(f"top {share:.0%}: {float(err[:round(share * len(err))].sum() / err.sum()):4.0%}")
    print(" | ".join(parts), flush=True)


def facet_labels(frames: list[torch.Tensor], tols: list[float]) -> torch.Tensor:
    """Facets of one frame: connected components of the 4-neighbour graph whose edges join pixels that differ by
    less than ``tols[i]`` in every ``frames[i]`` (each ``(H, W)``); returns ``(H * W,)`` component labels."""
    H, W = frames[0].shape
    idx = torch.arange(H * W).reshape(H, W)
    rows, cols = [], []
    for a, b in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                 ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):
        join = torch.stack([(f[a] - f[b]).abs() < tol for f, tol in zip(frames, tols)]).all(0)
        rows.append(idx[a][join])
        cols.append(idx[b][join])
    r, c = torch.cat(rows).numpy(), torch.cat(cols).numpy()
    graph = scipy.sparse.coo_matrix((np.ones(len(r)), (r, c)), shape=(H * W, H * W))
    return torch.from_numpy(scipy.sparse.csgraph.connected_components(graph, directed=False)[1])


def facets(shape, guides: list[torch.Tensor], tols: list[float]) -> list[list[torch.Tensor]]:
    """:func:`facet_labels` of every frame ``[k][b]`` of ``guides`` (each ``(K, B, 1, H, W)``; ``shape`` = (K, B))."""
    return [[facet_labels([g[k, b, 0] for g in guides], tols) for b in range(shape[1])] for k in range(shape[0])]


def facet_mean(d: torch.Tensor, labels: list[list[torch.Tensor]]) -> torch.Tensor:
    """``d`` ``(K, B, 1, H, W)`` averaged over each frame's facets ``labels[k][b]`` (see :func:`facets`)."""
    out = torch.empty_like(d)
    for k, frame in enumerate(labels):
        for b, lab in enumerate(frame):
            x = d[k, b, 0].flatten().double()
            mean = torch.zeros(int(lab.max()) + 1, dtype=x.dtype).index_add_(0, lab, x)
            mean /= torch.bincount(lab).to(x.dtype)
            out[k, b, 0] = mean[lab].reshape(d.shape[-2:]).to(d.dtype)
    return out


def facet_report(name: str, u: torch.Tensor, d: torch.Tensor, ref_ut: torch.Tensor, ref_facets) -> None:
    """Stack PSNR of div phi averaged over the reference's facets (oracle) and over the model's own."""
    def score(x):
        return stack_psnr(((x - ref_ut) / PAPER_SCALE) ** 2)
    parts = [f"{name[-12:]:>12s} div phi averaged over facets: bare {score(d):6.2f}",
             f"the reference's (u within 1e-4) {score(facet_mean(d, ref_facets)):6.2f}"]
    for tu, td in ((0.003, 0.5), (0.01, 0.5), (0.01, 1.0)):
        own = facets(d.shape[:2], [u, d], [tu, td])
        parts.append(f"own (u within {tu:g}, div phi within {td:g}) {score(facet_mean(d, own)):6.2f}")
    print(" | ".join(parts), flush=True)


STEP = 0.01  # the evaluation reference's time step: the grid the blurred references are read from


def check_windows(ap: argparse.ArgumentParser, windows: list[float] | None) -> list[int]:
    """Half-widths in steps of ``STEP`` of the windows ``--time-windows`` asks for (each a multiple of 2 steps)."""
    halves = []
    for w in windows or []:
        half = round(w / (2 * STEP))
        if half < 1 or abs(half * 2 * STEP - w) > 1e-9:
            ap.error(f"--time-windows: each width must be a positive multiple of {2 * STEP:g}, got {w:g}")
        halves.append(half)
    return halves


def window_report(names: list[str], flows: list, x: torch.Tensor, times: list[float], halves: list[int],
                  ref_ut: torch.Tensor) -> None:
    """Stack PSNR of each model's div phi against u_t averaged over centred windows of ``2 * half`` steps."""
    index = [round(t / STEP) for t in times]
    grid = [k * STEP for k in range(max(index) + max(halves) + 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fine_u, _ = reference_flow(x, grid)
    print(f"div phi against the reference's u_t averaged over a centred window W ({x.shape[-1]} px; "
          f"W = 0.01 is the evaluation's reference, the backward quotient of one step)")
    print(f"{'W':>6s} | {'blurred ref':>11s} | " + " | ".join(f"{n[-12:]:>12s}" for n in names))
    for half in [None, *halves]:
        if half is None:
            blurred, width = ref_ut, STEP
        else:
            lo = [max(i - half, 0) for i in index]
            hi = [i + half for i in index]
            blurred = torch.stack([(fine_u[b] - fine_u[a]) / ((b - a) * STEP) for a, b in zip(lo, hi)])
            width = 2 * half * STEP
        ceiling = f"{stack_psnr(((blurred - ref_ut) / PAPER_SCALE) ** 2):11.2f}" if half else f"{'-':>11s}"
        scores = [stack_psnr(((d - blurred) / PAPER_SCALE) ** 2) for _, d in flows]
        print(f"{width:6.2f} | {ceiling} | " + " | ".join(f"{s:12.2f}" for s in scores), flush=True)


def source_report(name: str, err: torch.Tensor, ref_ut: torch.Tensor, sources: list[str]) -> None:
    """Per-photo div phi PSNR (``err`` ``(K, B, 1, H, W)`` squared errors, crop ``b`` cut from ``sources[b]``)."""
    model, zero = crop_psnrs(err), crop_psnrs((ref_ut / PAPER_SCALE) ** 2)
    print(f"{name[-12:]:>12s} div phi by source photo ({err.shape[-1]} px, all crops: {float(model.mean()):.2f} dB):",
          flush=True)
    for src in sorted(set(sources)):
        mine = torch.tensor([s == src for s in sources])
        rest = f"{float(model[~mine].mean()):6.2f}" if (~mine).any() else "   -  "
        print(f"{'':>14s}{src:28s} {int(mine.sum()):3d} crops | PSNR {float(model[mine].mean()):6.2f} "
              f"| div phi = 0 would score {float(zero[mine].mean()):6.2f} | the other photos' crops {rest}",
              flush=True)


def ensemble_report(flows: list, ref_u: torch.Tensor, ref_ut: torch.Tensor, times: list[float]) -> None:
    """Score the mean of the models' (u, div phi) and the share of the members' error that it keeps.

    div is linear, so the mean of the models' div phi is the div of their mean phi: the ensemble's output.
    """
    for what, k, ref in (("div phi", 1, ref_ut), ("u", 0, ref_u)):
        members = sum(float((((f[k] - ref) / PAPER_SCALE) ** 2).mean()) for f in flows) / len(flows)
        err = ((torch.stack([f[k] for f in flows]).mean(0) - ref) / PAPER_SCALE) ** 2
        report("ensemble", what, err, times)
        shared = float(err.mean()) / members
        print(f"{'':>12s} {what:7s} the ensemble's squared error / the members' mean: {shared:.3f} "
              f"({len(flows)} models; independent errors would give {1 / len(flows):.3f})")


if __name__ == "__main__":
    main()
