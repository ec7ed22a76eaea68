#!/usr/bin/env python
"""Where TVflowNET could pay: many images x many times in one batch, and gradients through the
flow, against the reference solver at matched accuracy, side by side on this machine.

The conventions, the ground truth and the matched-accuracy search are those of
``benchmarks/tvflownet_speed.py`` (imported from it, not copied): test-split photo crops in [0, 1]
times ``--scale`` (5, Grossmann et al., 2022), PSNR on the [0, 1] scale against ``tv_flow`` in
float64 with ``dt = --ref-dt`` and relative duality gap ``--ref-tol``, and the reference at matched
accuracy = the cheapest float32 ``tv_flow`` setting on its ``dt`` x ``tol`` grid whose mean PSNR
reaches the network's.

``batch`` (many images x many times)
    ``--n-images`` crops of ``--size`` px at ``K`` times ``k / K`` (k = 1..K) for each ``K`` of
    ``--ks``. The reference gets all times of an image from one trajectory (``tv_flow`` takes the
    list of times) and batches the images; the network needs one forward per (image, time) pair
    and batches the pairs (``tvflownet.flow``, batch size chosen per variant from
    ``--batch-sizes`` by a short timing probe). Matched accuracy: mean PSNR over all pairs, per K.
    Both are timed interleaved, ``--repeats`` rounds (medians), wall and CPU time; the ratio
    reference / network > 1 means the network wins. The crossover K is the smallest K from which
    the network wins at every larger K measured.

``grad`` (gradients through the flow)
    ``g = d/du0 of 0.5 ||u(t) - target||^2`` for ``--grad-n`` crops of ``--grad-size`` px at
    ``t = --grad-time`` (the target: other test crops). The network: autograd through it (bare,
    through the symmetry wrapper, and ``tvflownet.flow``'s default call: the wrapper and the
    transposition mean). The reference's gradients, each at the network's forward
    accuracy: autograd through (a) ``tv_flow`` itself (implicit steps, each differentiated
    implicitly at its solution; where that is not available, the error is recorded, and a full
    gradient by finite differences, two flows per pixel, is extrapolated from the matched setting,
    not run), (b) ``tv_flow(method="explicit", eps=...)``, the regularised flow in pdeflow
    (searched over eps), and (c) implicit Euler unrolled with a fixed number of FGP iterations per
    step (written here from ``pdeflow.ops``; not a pdeflow function), searched over dt x iterations. Gradient
    accuracy: the directional derivatives ``<g, v>`` along ``--directions`` random directions
    against central differences of the float64 reference flow (tol ``--fd-tol``, step ``--fd-step``
    RMS on the x5 scale); the relative error ``||<g, V> - D|| / ||D||`` estimates ``||g - g*|| / ||g*||``.
    The differences at 4x the step give the finite differences' own consistency. A full reference
    gradient ``g*`` (autograd through ``--full-iters`` FGP iterations per implicit step of the
    reference's own ``dt``, checked against those directional derivatives) gives the exact relative
    error ``||g - g*|| / ||g*||`` of every gradient too ("full error"), free of the noise of an
    estimate from a few directions. ``--input-eps`` adds rows of the network with the scale of its
    normalised-gradient input set (``pdeflow.tvflownet.with_input_eps``; ``none``: as shipped).

``inputeps`` (what the ``--input-eps`` variants cost in the forward, on validation photos)
    PSNR of ``u`` and of ``div phi`` against the reference's ``u`` and ``u_t`` (``tv_flow`` float64,
    dt 0.01, tol 1e-5), the paper's metric (one MSE over each image's stack of frames, data range 1
    on the [0, 1] scale), at ``--val-times`` times linspace(0, 0.98), on ``--val-crops`` crops of 32
    and of 96 px of the photos the trainer holds out for validation (its hashed 10 % of the
    built-in train split: never training images, never the evaluation's test photos); the bare
    network, no transposition mean. A quick check to choose an ``input_eps`` on, not the paper's tables.

    python benchmarks/tvflownet_workloads.py --out benchmarks/results/tvflownet_workloads  # both
    python benchmarks/tvflownet_workloads.py --workloads grad --out DIR                    # one
    python benchmarks/tvflownet_workloads.py --workloads inputeps --input-eps none 0.1 --out DIR
    python benchmarks/tvflownet_workloads.py --workloads grad --input-eps none 0.03 0.1 0.3 --out DIR
    python benchmarks/tvflownet_workloads.py --quick                                       # seconds
    python benchmarks/tvflownet_workloads.py --device cuda --out DIR                       # on a GPU

Writes ``results.md`` (one block per workload and size, replaced on a re-run into the same
folder with ``--overwrite``) and ``<workload>_<size>px.json`` to ``--out``, by default a fresh
``runs/benchmarks/tvflownet_workloads/TIMESTAMP``: the committed results are written only with an
explicit ``--out``. Ground truths and finite differences are cached under
``--cache`` (temp directory).

Historical. It chose input_eps for the shipped default; even --quick takes about half a minute, over this
suite's budget for smoke runs. Its results are kept for the record; it is not expected to run against today's
API. It still imported and parsed its options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_block, write_text  # benchmarks/_results.py
from pdeflow import datasets, tvflownet
from pdeflow.ops import div, grad, gradient_norm
from pdeflow.tv import tv_flow
from pdeflow.tvflownet import with_input_eps
from pdeflow.tvflownet.symmetry import Equivariant
from tvflownet_speed import ReferenceGrid, mean_psnr, timed  # benchmarks/tvflownet_speed.py

VARIANTS = (("network + symmetry wrapper", True), ("bare network", False))
EPS = (0.4, 0.2, 0.1, 0.05, 0.025, 0.0125)        # explicit scheme: cheap (coarse) to accurate
ITERS = (5, 10, 20, 50, 100, 200)                 # unrolled FGP iterations per implicit step
EXTRA_UNROLLED = ((0.25, 20), (0.25, 50), (0.1, 20), (0.1, 50))  # (dt / t, iterations) beyond matched accuracy
QUICK = dict(n_images=2, size=32, ks=[1, 2], batch_sizes=[1, 4], repeats=1, ref_dt=0.1, ref_tol=1e-4,
             grad_n=1, grad_size=16, directions=2, fd_tol=1e-5, full_iters=50, val_crops=1, val_times=2)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, torch {torch.__version__}"


def loadavg() -> str:
    return "%.1f %.1f %.1f" % os.getloadavg()


#: What came from the cache in this process (said in the results: the run's minutes then exclude it).
CACHE_HITS: list[str] = []


def cached(cache: Path | None, key: dict, compute):
    """``compute()``, stored under ``cache`` by a hash of ``key`` (None: no cache); ``key["what"]`` names it."""
    if cache is None:
        return compute()
    what = key.pop("what", "?")
    path = cache / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20] + ".pt")
    if path.exists():
        CACHE_HITS.append(what)
        return torch.load(path)
    out = compute()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(out, tmp)
    os.replace(tmp, path)
    return out


def interleaved(fns: dict, rounds: int, sync) -> dict:
    """Median (wall, CPU) seconds of each ``fns[name]()``, the calls interleaved over ``rounds``
    rounds (the order rotated each round)."""
    names = list(fns)
    walls = {n: [] for n in names}
    cpus = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            w, c, _ = timed(fns[n], 1, sync)
            walls[n].append(w)
            cpus[n].append(c)
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n])) for n in names}


def test_crops(n: int, size: int, seed: int, scale: float) -> torch.Tensor:
    pool = datasets.builtin_pool("test", kind="photo")
    return datasets.random_crops(pool, n, size, generator=seed).double() * scale


# --------------------------------------------------------------------------- many images x many times

def batch_workload(args, model, dev, sync, log) -> tuple[dict, str]:
    N, S = args.n_images, args.size
    ks = sorted(set(args.ks))
    x = test_crops(N, S, args.seed, args.scale).to(dev)
    key = lambda t: round(t, 12)  # noqa: E731
    all_times = sorted({key(k / K) for K in ks for k in range(1, K + 1)})
    t0 = time.perf_counter()
    truth_all = cached(args.cache, dict(what="ground truth", w="batch", n=N, s=S, seed=args.seed, scale=args.scale, times=all_times,
                                        dt=args.ref_dt, tol=args.ref_tol, dev=dev.type),
                       lambda: tv_flow(x, all_times, dt=args.ref_dt, tol=args.ref_tol).cpu()).to(dev)
    log(f"ground truth ({len(all_times)} times, float64, dt {args.ref_dt:g}, tol {args.ref_tol:g}): "
        f"{time.perf_counter() - t0:.1f} s")
    xf = x.float()

    # The network's batch size: the fastest per pair in a short probe (CPU time on a CPU).
    probe_times = [k / min(4, max(ks)) for k in range(1, min(4, max(ks)) + 1)]
    chosen, probe = {}, []
    for label, eq in VARIANTS:
        secs = {}
        for bs in args.batch_sizes:
            run = dict(scale=1.0, equivariant=eq, symmetry=None, batch_size=bs)   # one network call per pair
            tvflownet.flow(xf[:1], probe_times[:1], model, **run)  # warm-up
            w, c, _ = timed(lambda: tvflownet.flow(xf, probe_times, model, **run), 1, sync)
            secs[bs] = w if dev.type == "cuda" else c
            probe.append(dict(variant=label, batch_size=bs, wall_per_pair=w / (N * len(probe_times)),
                              cpu_per_pair=c / (N * len(probe_times))))
            log(f"  {label}, batch size {bs}: {w / (N * len(probe_times)) * 1e3:.1f} ms/pair "
                f"({c / (N * len(probe_times)) * 1e3:.1f} ms CPU)")
        chosen[label] = min(secs, key=secs.get)

    rows = []
    for K in ks:
        times = [k / K for k in range(1, K + 1)]
        truth = truth_all[[all_times.index(key(t)) for t in times]]
        grid = ReferenceGrid(x, times, truth, args.scale, max_psnr=args.max_psnr, log=log, sync=sync)
        for label, eq in VARIANTS:
            bs = chosen[label]

            def net(eq=eq, bs=bs, times=times):
                return tvflownet.flow(xf, times, model, scale=1.0, equivariant=eq, symmetry=None, batch_size=bs)

            net_psnr = mean_psnr(net(), truth, args.scale)
            best = grid.cheapest(net_psnr)
            log(f"K = {K}, {label}: {net_psnr:.2f} dB; reference at matched accuracy: "
                + (f"dt {best.dt:g}, tol {best.tol:g} ({best.psnr:.2f} dB)" if best else "none on the grid"))
            if best is None:
                rows.append(dict(K=K, variant=label, net_psnr=net_psnr, reference=None))
                continue

            def ref(best=best, times=times):
                return tv_flow(xf, times, dt=best.dt, tol=best.tol)

            tm = interleaved({"network": net, "reference": ref}, args.repeats, sync)
            (nw, nc), (rw, rc) = tm["network"], tm["reference"]
            rows.append(dict(K=K, pairs=N * K, variant=label, batch_size=bs, net_psnr=net_psnr, net_wall=nw,
                             net_cpu=nc, dt=best.dt, tol=best.tol, ref_psnr=best.psnr, ref_wall=rw, ref_cpu=rc,
                             ratio_wall=rw / nw, ratio_cpu=rc / nc))
            log(f"  network {nw:.3f} s ({nc:.3f} s CPU), reference {rw:.3f} s ({rc:.3f} s CPU) for {N * K} pairs: "
                f"reference / network {rw / nw:.2f} (CPU {rc / nc:.2f})")

    cross = {}
    for label, _ in VARIANTS:
        r = [row for row in rows if row["variant"] == label and "reference" not in row]
        key_ratio = "ratio_wall" if dev.type == "cuda" else "ratio_cpu"
        wins = [row["K"] for i, row in enumerate(r) if all(s[key_ratio] > 1 for s in r[i:])]
        cross[label] = wins[0] if wins else None

    clock = "wall" if dev.type == "cuda" else "CPU"
    md = [f"### Many images x many times: {N} test crops {S}x{S} x{args.scale:g}, K times k/K (k = 1..K)\n",
          f"Ground truth: `tv_flow` float64, dt {args.ref_dt:g}, tol {args.ref_tol:g}. The network through "
          "`tvflownet.flow` (one forward per (image, time) pair, the pairs batched; batch size per variant "
          f"from {args.batch_sizes}, fastest in a probe: "
          + ", ".join(f"{v}: {b}" for v, b in chosen.items()) + "). The reference: `tv_flow` float32, all "
          "times of an image from one trajectory, the images in one batch, at the cheapest setting of "
          "`tvflownet_speed.py`'s grid reaching the network's mean PSNR over all pairs. Times: the whole "
          f"batch, median of {args.repeats} interleaved rounds; ratio = reference / network (> 1: the network "
          "wins).\n",
          "| K | pairs | network | PSNR (dB) | network wall / CPU | reference setting | PSNR (dB) | "
          "reference wall / CPU | ratio wall | ratio CPU |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "reference" in row:
            md.append(f"| {row['K']} | | {row['variant']} | {row['net_psnr']:.2f} | | none on the grid | | | | |")
            continue
        md.append(f"| {row['K']} | {row['pairs']} | {row['variant']} | {row['net_psnr']:.2f} | "
                  f"{row['net_wall']:.3f} / {row['net_cpu']:.3f} s | dt {row['dt']:g}, tol {row['tol']:g} | "
                  f"{row['ref_psnr']:.2f} | {row['ref_wall']:.3f} / {row['ref_cpu']:.3f} s | "
                  f"{row['ratio_wall']:.2f}x | {row['ratio_cpu']:.2f}x |")
    md.append("")
    for label, k in cross.items():
        md.append(f"- {label}: " + (f"the network wins ({clock} time) from K = {k} on." if k else
                                    f"the network wins at no K measured (K up to {max(ks)}, {clock} time)."))
    return dict(rows=rows, batch_sizes=chosen, probe=probe, crossover_K=cross), "\n".join(md)


# --------------------------------------------------------------------------- gradients

def unrolled_fgp_flow(x, times, dt, iters):
    """Implicit Euler steps of ``dt`` to each time (a multiple of ``dt``), each step ``rof(u, dt)`` by
    ``iters`` fast gradient projection iterations on the dual (Beck & Teboulle, 2009; step
    1 / (8 dt^2), no restart), warm-started from the previous step's dual field; plain out-of-place
    tensor operations, so autograd differentiates through every iteration."""
    iters = int(iters)
    u, p, out, k = x, x.new_zeros(*x.shape[:-2], 2, *x.shape[-2:]), [], 0
    for t in times:
        n = round(t / dt)
        if abs(n * dt - t) > 1e-9 * max(1.0, t):
            raise ValueError(f"time {t} is not a multiple of dt = {dt}")
        for _ in range(n - k):
            f, lam = u, dt
            q, tk = p, 1.0
            for _ in range(iters):
                z = q + grad(f + lam * div(q)) / (8 * lam)
                p_new = z / z.square().sum(-3, keepdim=True).clamp_min(1.0).sqrt()
                t_new = 0.5 * (1 + math.sqrt(1 + 4 * tk * tk))
                q = p_new + ((tk - 1) / t_new) * (p_new - p)
                p, tk = p_new, t_new
            u = f + lam * div(p)
        k = n
        out.append(u)
    return torch.stack(out)


def explicit_flow(x, times, dt, eps):
    return tv_flow(x, times, method="explicit", eps=eps, dt=dt)


def implicit_flow(x, times, dt, tol):
    return tv_flow(x, times, dt=dt, tol=tol)


def grad_workload(args, model, dev, sync, log) -> tuple[dict, str]:
    N, S, t, M = args.grad_n, args.grad_size, args.grad_time, args.directions
    both = test_crops(2 * N, S, args.seed + 1, args.scale)
    u0, target = both[:N].to(dev), both[N:].to(dev)
    V = torch.randn(M, *u0.shape, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64).to(dev)

    def loss(u):
        return 0.5 * (u.double() - target).square().sum()

    def flow64(v):
        return tv_flow(v, [t], dt=args.ref_dt, tol=args.fd_tol)[0]

    t0 = time.perf_counter()
    base = dict(w="grad", n=N, s=S, seed=args.seed, scale=args.scale, t=t, dt=args.ref_dt, tol=args.fd_tol, dev=dev.type)
    truth = cached(args.cache, dict(base, what="ground truth"), lambda: flow64(u0).cpu()).to(dev)

    def directional(h):
        return cached(args.cache, dict(base, M=M, h=h, what="finite differences"), lambda: torch.tensor(
            [float((loss(flow64(u0 + h * v)) - loss(flow64(u0 - h * v))) / (2 * h)) for v in V]))

    D, D4 = directional(args.fd_step), directional(4 * args.fd_step)
    fd_self = float((D4 - D).norm() / D.norm())

    def full_reference():
        xx = u0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(unrolled_fgp_flow(xx, [t], args.ref_dt, args.full_iters)[0]), xx)
        return g.cpu()

    g_star = cached(args.cache, dict(base, iters=args.full_iters, what="full reference gradient"),
                    full_reference).to(dev)
    log(f"reference directional derivatives (float64, dt {args.ref_dt:g}, tol {args.fd_tol:g}, central "
        f"differences, step {args.fd_step:g} and 4x): {time.perf_counter() - t0:.1f} s; their relative "
        f"disagreement {fd_self:.3f}")

    def gradient(fn):
        xx = u0.float().clone().requires_grad_(True)
        u = fn(xx)
        (g,) = torch.autograd.grad(loss(u), xx)
        return u.detach(), g

    def directional_of(g):
        return torch.stack([(g.double() * v).sum() for v in V]).cpu()

    def grad_error(g):
        return float((directional_of(g) - D).norm() / D.norm())

    def gv_norm(g):
        return float(directional_of(g).norm())

    def full_error(g):
        return float((g.double() - g_star).norm() / g_star.norm())

    g_star_check = grad_error(g_star)
    log(f"full reference gradient (unrolled FGP, dt {args.ref_dt:g}, {args.full_iters} iterations per step, "
        f"float64): its error against the directional derivatives {g_star_check:.3f}")

    try:
        gradient(lambda xx: tv_flow(xx, [t])[0])
        implicit_autograd = "works"
    except RuntimeError as e:
        implicit_autograd = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    log(f"autograd through tv_flow (implicit): {implicit_autograd}")

    # Exactly flat pixels (|grad u0| = 0) and their 3x3 neighbourhoods, for the network's gradient.
    flat = gradient_norm(grad(u0)) == 0
    near_flat = torch.nn.functional.max_pool2d(flat.double(), 3, 1, 1) > 0
    nets, eps_of = {}, {}
    for e in args.input_eps:
        variant = model if e is None else with_input_eps(model, e)
        wrapped = Equivariant(variant)
        suffix = "" if e is None else f", input eps {e:g}"
        # the x5 crops are images in their own right: flow's time t is the wrapper's
        nets[f"tvflownet.flow (wrapper + transposition mean){suffix}"] = \
            lambda xx, m=variant: tvflownet.flow(xx, [t], m)[0]
        nets[f"network + symmetry wrapper{suffix}"] = lambda xx, w=wrapped: w(xx, t)[0]
        nets[f"bare network{suffix}"] = lambda xx, m=variant: m(xx, t)[0]
        for kind in ("tvflownet.flow (wrapper + transposition mean)", "network + symmetry wrapper", "bare network"):
            eps_of[f"{kind}{suffix}"] = input_eps(variant)
    implicit = ReferenceGrid(u0, [t], truth.unsqueeze(0), args.scale, max_psnr=args.max_psnr, log=log, sync=sync)
    explicit = ReferenceGrid(u0, [t], truth.unsqueeze(0), args.scale, dts=(t,), tols=EPS, max_psnr=args.max_psnr,
                             log=log, sync=sync, flow=explicit_flow, names=("dt", "eps"))
    unrolled = ReferenceGrid(u0, [t], truth.unsqueeze(0), args.scale, dts=(t, t / 2, t / 4, t / 10), tols=ITERS,
                             max_psnr=args.max_psnr, log=log, sync=sync, flow=unrolled_fgp_flow,
                             names=("dt", "iterations"))
    schemes = ((("implicit", implicit, implicit_flow),) if implicit_autograd == "works" else ()) + (
        ("explicit", explicit, explicit_flow), ("unrolled", unrolled, unrolled_fgp_flow))
    rows = []
    for label, fn in nets.items():
        u, g = gradient(fn)
        net_psnr = mean_psnr(u, truth, args.scale)
        with torch.no_grad():  # the network's own central differences, at the reference's step
            h = args.fd_step
            own = torch.tensor([float((loss(fn((u0 + h * v).float())) - loss(fn((u0 - h * v).float()))) / (2 * h))
                                for v in V])
        row = dict(variant=label, input_eps=eps_of[label], net_psnr=net_psnr, net_grad_error=grad_error(g),
                   net_full_error=full_error(g),
                   net_fd_error=float((own - D).norm() / D.norm()), net_scale=gv_norm(g) / float(D.norm()),
                   net_near_flat_share=float(g[near_flat].norm() / g.norm()))
        log(f"{label}: {net_psnr:.2f} dB, gradient error {row['net_grad_error']:.3f}, full {row['net_full_error']:.3f} "
            f"(its own central differences at step {h:g}: {row['net_fd_error']:.3f})")
        fns = {"network": lambda fn=fn: gradient(fn)}
        best_impl = implicit.cheapest(net_psnr)
        if best_impl is not None:
            row.update(implicit_dt=best_impl.dt, implicit_tol=best_impl.tol, implicit_psnr=best_impl.psnr,
                       implicit_fwd_cpu=best_impl.cpu * N, implicit_fwd_wall=best_impl.sec * N,
                       fd_full_cpu_extrapolated=2 * S * S * best_impl.cpu * N)
        for name, search, flow in schemes:
            best = search.cheapest(net_psnr)
            if best is None:
                top = max(search.rows.values(), key=lambda r: r.psnr)
                row[name] = dict(setting=None, best_psnr=top.psnr, best_setting=(top.dt, top.tol))
                log(f"  {name}: none reaches {net_psnr:.2f} dB (best {top.psnr:.2f} dB at {top.dt:g}, {top.tol:g})")
                continue
            _, g_ref = gradient(lambda xx, best=best, flow=flow: flow(xx, [t], best.dt, best.tol)[0])
            row[name] = dict(setting=(best.dt, best.tol), psnr=best.psnr, grad_error=grad_error(g_ref),
                             full_error=full_error(g_ref))
            fns[name] = lambda best=best, flow=flow: gradient(lambda xx: flow(xx, [t], best.dt, best.tol)[0])
            log(f"  {name} at matched accuracy: {search.names[0]} {best.dt:g}, {search.names[1]} {best.tol:g} "
                f"({best.psnr:.2f} dB), gradient error {row[name]['grad_error']:.3f}, full {row[name]['full_error']:.3f}")
        tm = interleaved(fns, args.repeats, sync)
        row["net_wall"], row["net_cpu"] = tm["network"]
        for name, _, _ in schemes:
            if name in tm:
                row[name]["wall"], row[name]["cpu"] = tm[name]
                row[name]["ratio_wall"] = tm[name][0] / row["net_wall"]
                row[name]["ratio_cpu"] = tm[name][1] / row["net_cpu"]
        rows.append(row)
        log(f"  times (forward + backward, {N} image(s)): " + ", ".join(f"{k} {w:.3f} s ({c:.3f} s CPU)"
                                                                       for k, (w, c) in tm.items()))

    md = [f"### Gradients through the flow: d/du0 of 0.5 ||u(t) - target||^2, {N} test crop(s) {S}x{S} "
          f"x{args.scale:g}, t = {t:g}\n",
          f"Reference gradient: directional derivatives along {M} random directions by central differences "
          f"of `tv_flow` float64 (dt {args.ref_dt:g}, tol {args.fd_tol:g}), step {args.fd_step:g} RMS; at 4x "
          f"the step they differ by {fd_self:.1%} (the finite differences' own uncertainty). Gradient error = "
          "||<g, V> - D|| / ||D||, an estimate of ||g - g*|| / ||g*|| (1.0 for g = 0); full error = "
          f"||g - g*|| / ||g*|| exactly, with g* by autograd through implicit Euler (dt {args.ref_dt:g}) + "
          f"{args.full_iters} FGP iterations per step in float64 (its gradient error above: {g_star_check:.3f}). "
          "Times: forward + "
          f"backward for the {N} image(s) together, median of {args.repeats} interleaved rounds; ratio = "
          "reference / network (> 1: the network wins).\n",
          (f"- Autograd through `tv_flow` (implicit steps, the reference): **not available** "
           f"(`{implicit_autograd}`)." if implicit_autograd != "works" else
           "- Autograd through `tv_flow` (implicit steps, the reference): each implicit step differentiated "
           "implicitly at its solution (rows `autograd, tv_flow`)."),
          ]
    for row in rows:
        if "implicit_dt" in row:
            md.append(f"- {row['variant']}: finite differences through the implicit `tv_flow` at matched accuracy "
                      f"(dt {row['implicit_dt']:g}, tol {row['implicit_tol']:g}, {row['implicit_psnr']:.2f} dB, "
                      f"{row['implicit_fwd_cpu']:.3f} s CPU per flow of the batch) need 2 x {S}x{S} flows for a "
                      f"full gradient: about {row['fd_full_cpu_extrapolated']:.0f} s CPU (extrapolated, not run).")
    md += ["", "| network | PSNR (dB) | gradient error | full error | wall / CPU | gradient by | setting | PSNR (dB) | "
           "gradient error | full error | wall / CPU | ratio wall | ratio CPU |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    labels = {"implicit": ("autograd, `tv_flow` (implicit)", "tol"),
              "explicit": ("autograd, `tv_flow(method=\"explicit\")`", "eps"),
              "unrolled": ("autograd, unrolled implicit Euler + FGP", "iterations")}
    for row in rows:
        head = (f"| {row['variant']} | {row['net_psnr']:.2f} | {row['net_grad_error']:.3f} | "
                f"{row['net_full_error']:.3f} | {row['net_wall']:.3f} / {row['net_cpu']:.3f} s |")
        for name, _, _ in schemes:
            r, (what, knob) = row[name], labels[name]
            if r.get("setting") is None:
                md.append(f"{head} {what} | none reaches it (best {r['best_psnr']:.2f} dB at dt "
                          f"{r['best_setting'][0]:g}, {knob} {r['best_setting'][1]:g}) | | | | | | |")
            else:
                md.append(f"{head} {what} | dt {r['setting'][0]:g}, {knob} {r['setting'][1]:g} | {r['psnr']:.2f} | "
                          f"{r['grad_error']:.3f} | {r['full_error']:.3f} | {r['wall']:.3f} / {r['cpu']:.3f} s | "
                          f"{r['ratio_wall']:.2f}x | "
                          f"{r['ratio_cpu']:.2f}x |")
    # What the differentiable schemes give beyond matched accuracy: gradient error against cost.
    extra = [(f * t, it) for f, it in EXTRA_UNROLLED]
    if abs(round(t / args.ref_dt) * args.ref_dt - t) <= 1e-9 * max(1.0, t):
        extra += [(args.ref_dt, 20), (args.ref_dt, 50)]   # the reference's own dt: checks both gradients
    for dt, it in extra:
        unrolled.run(dt, it)
    for e in EPS:
        explicit.run(t, e)
    curve = []
    for name, search, flow in schemes:
        for r in search.table:
            w, c, (_, g) = timed(lambda r=r, flow=flow: gradient(lambda xx: flow(xx, [t], r.dt, r.tol)[0]), 1, sync)
            curve.append(dict(scheme=name, dt=r.dt, knob=r.tol, psnr=r.psnr, grad_error=grad_error(g),
                              full_error=full_error(g), wall=w, cpu=c))
    md += ["", f"Gradient error against cost of the differentiable schemes (forward + backward, {N} image(s), "
           "one run each; the matched settings above are among them):", "",
           "| gradient by | dt | tol / eps / iterations | PSNR (dB) | gradient error | full error | wall / CPU |",
           "|---|---|---|---|---|---|---|"]
    md += [f"| {labels[c['scheme']][0]} | {c['dt']:g} | {c['knob']:g} | {c['psnr']:.2f} | {c['grad_error']:.3f} | "
           f"{c['full_error']:.3f} | {c['wall']:.3f} / {c['cpu']:.3f} s |" for c in curve]
    md += ["", f"The network's gradient: {float(flat.double().mean()):.2%} of the pixels of these crops are exactly "
           "flat (|grad u0| = 0); the network's normalised-gradient input, grad u0 / sqrt(|grad u0|^2 + eps^2), "
           "has a derivative of order 1 / eps there."]
    for r in rows:
        md.append(f"- {r['variant']} ({r['input_eps']}): {r['net_near_flat_share']:.1%} of the norm of its autograd "
                  "gradient lies within "
                  f"one pixel of a flat pixel; ||<g, V>|| / ||D|| = {r['net_scale']:.1f}; relative error of its "
                  f"autograd gradient {r['net_grad_error']:.2f}, of its own central differences at the reference's "
                  f"step {r['net_fd_error']:.2f}.")
    grids = {"implicit": implicit, "explicit": explicit, "unrolled": unrolled}
    return (dict(rows=rows, fd_self_consistency=fd_self, implicit_autograd=implicit_autograd,
                 full_reference=dict(dt=args.ref_dt, iters=args.full_iters, grad_error=g_star_check),
                 flat_fraction=float(flat.double().mean()),
                 directional_D=D.tolist(), curve=curve,
                 grids={k: [r._asdict() for r in g.table] for k, g in grids.items()}),
            "\n".join(md))


def input_eps(model) -> str:
    """``eps = ...`` of the model's normalised-gradient input; an ensemble's members' values."""
    members = getattr(model, "members", None)
    values = sorted({float(getattr(m, "gradient_eps", m.eps)) for m in members if hasattr(m, "eps")}) \
        if members is not None else [float(getattr(model, "gradient_eps", model.eps))] if hasattr(model, "eps") else []
    if not values:
        return "eps unknown"
    return ("eps = " if len(values) == 1 else "eps = one of ") + ", ".join(f"{v:g}" for v in values) + \
        (" (each member's)" if members is not None else "")


# --------------------------------------------------------------------------- input eps on validation

def inputeps_workload(args, model, dev, sync, log) -> tuple[dict, str]:
    from pdeflow.metrics import psnr
    from pdeflow.tvflownet.train import TrainConfig, open_data
    _, val_images = open_data(TrainConfig())
    times = torch.linspace(0, 0.98, args.val_times, dtype=torch.float64).tolist()
    sizes = {32: 2 * args.val_crops, 96: args.val_crops}
    refs = {}
    for S, n in sizes.items():
        key = dict(w="inputeps", S=S, n=n, times=times, scale=args.scale, data=val_images.description, what="validation")

        def reference(S=S, n=n):
            u0 = val_images.crops(n, S, torch.Generator().manual_seed(1)).double() * args.scale
            u, ut = tv_flow(u0, times, dt=0.01, tol=1e-5, return_ut=True)
            return dict(u0=u0, u=u, ut=ut)

        refs[S] = {k: v.to(dev) for k, v in cached(args.cache, key, reference).items()}
    stack = lambda x: x.transpose(0, 1).flatten(1, 2).double() / args.scale   # noqa: E731  (n, K, S, S)
    rows = []
    for e in args.input_eps:
        variant = model if e is None else with_input_eps(model, e)
        row = dict(input_eps=e, eps=input_eps(variant))
        for S, r in refs.items():
            with torch.no_grad():
                out = [variant(r["u0"].float(), t) for t in times]
            u = torch.stack([o[0] for o in out])
            dphi = torch.stack([div(o[1]) for o in out])
            row[f"u_{S}"] = float(psnr(stack(u), stack(r["u"]), data_range=1.0).mean())
            row[f"div_phi_{S}"] = float(psnr(stack(dphi), stack(r["ut"]), data_range=1.0).mean())
        log(f"input eps {e}: " + ", ".join(f"{k} {v:.2f} dB" for k, v in row.items() if k.startswith(("u_", "div"))))
        rows.append(row)
    base = rows[0]
    cols = [f"{q}_{S}" for q in ("u", "div_phi") for S in sizes]
    md = [f"### Forward accuracy of the input-eps variants on validation photos: {sizes[32]} crops 32 px, "
          f"{sizes[96]} crops 96 px, {len(times)} times linspace(0, 0.98), x{args.scale:g}\n",
          "Photos the trainer holds out for validation (its hashed 10 % of the built-in train split); "
          "reference `tv_flow` float64 dt 0.01 tol 1e-5 (u and u_t); PSNR of each image's stack of frames, mean "
          "over images (dB); bare network. Difference to the first row in brackets.\n",
          "| input | u 32 px | u 96 px | div phi 32 px | div phi 96 px |", "|---|---|---|---|---|"]
    for r in rows:
        label = "as shipped" if r["input_eps"] is None else f"input eps {r['input_eps']:g}"
        md.append(f"| {label} ({r['eps']}) | " + " | ".join(
            f"{r[c]:.2f}" + ("" if r is base else f" ({r[c] - base[c]:+.2f})") for c in cols) + " |")
    return dict(rows=rows, times=times, sizes=sizes), "\n".join(md)


# --------------------------------------------------------------------------- main

def eps_value(text: str) -> float | None:
    """``--input-eps``: ``none`` or a number > 0."""
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected 'none' or a number > 0, got {text!r}")
    return value


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--workloads", nargs="+", choices=("batch", "grad", "inputeps"), default=["batch", "grad"])
    ap.add_argument("--model", default=None, help="shipped name, model path or run directory (default: shipped "
                                                  "default)")
    ap.add_argument("--device", default="cpu", help="torch device for both sides (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both sides (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=5.0)
    ap.add_argument("--ref-dt", type=float, default=0.02)
    ap.add_argument("--ref-tol", type=float, default=1e-6, help="ground truth's relative duality gap")
    ap.add_argument("--max-psnr", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (medians)")
    ap.add_argument("--n-images", type=int, default=16, help="batch: test crops")
    ap.add_argument("--size", type=int, default=96, help="batch: crop size (px)")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="batch: numbers of times")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64],
                    help="batch: the network's (image, time) pairs per call, the fastest is used")
    ap.add_argument("--grad-n", type=int, default=2, help="grad: test crops")
    ap.add_argument("--grad-size", type=int, default=64, help="grad: crop size (px)")
    ap.add_argument("--grad-time", type=float, default=1.0, help="grad: PDE time on the x5 scale")
    ap.add_argument("--directions", type=int, default=4, help="grad: random directions for the gradient check")
    ap.add_argument("--fd-step", type=float, default=1e-3, help="grad: finite-difference step (RMS, x5 scale)")
    ap.add_argument("--fd-tol", type=float, default=1e-6, help="grad: tol of the finite-difference flows")
    ap.add_argument("--full-iters", type=int, default=100,
                    help="grad: FGP iterations per implicit step of the full reference gradient")
    ap.add_argument("--input-eps", nargs="+", type=eps_value, default=[None], metavar="EPS|none",
                    help="grad, inputeps: the network with its normalised-gradient input's eps set to each (none: as "
                         "shipped)")
    ap.add_argument("--val-crops", type=int, default=4, help="inputeps: validation crops of 96 px (twice as many of 32)")
    ap.add_argument("--val-times", type=int, default=8, help="inputeps: times linspace(0, 0.98, N)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds (numbers meaningless)")
    add_output_args(ap, "tvflownet_workloads", what="results.md, <workload>_<size>px.json")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "pdeflow-tvflownet-workloads-cache"),
                    help="folder for ground truths and finite differences ('' for none)")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            if ap.get_default(k) == getattr(args, k):
                setattr(args, k, v)
    args.cache = Path(args.cache) if args.cache else None
    open_out(args, argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here")
    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none used (CPU run)"

    def log(line):
        print(line, flush=True)

    model = tvflownet.load(args.model, device=dev)
    name = args.model or tvflownet.api.DEFAULT_MODEL
    n_par = sum(p.numel() for p in model.parameters())
    log(f"model {name} ({model.config.get('arch')}, {n_par:,} parameters) on {dev}; {torch.get_num_threads()} "
        f"thread(s); load average {loadavg()}")
    args.out.mkdir(parents=True, exist_ok=True)
    run = {"batch": batch_workload, "grad": grad_workload, "inputeps": inputeps_workload}
    for w in args.workloads:
        t0, c0, load0 = time.perf_counter(), time.process_time(), loadavg()
        CACHE_HITS.clear()
        result, md = run[w](args, model, dev, sync, log)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        cmd = "python benchmarks/tvflownet_workloads.py " + shlex.join(argv)
        meta = dict(command=cmd, date=f"{datetime.datetime.now():%Y-%m-%d %H:%M}", machine=machine(), device=str(dev),
                    gpu=gpu, threads=torch.get_num_threads(), load_start=load0, load_end=loadavg(), wall_s=wall,
                    cpu_s=cpu, model=name, arch=model.config.get("arch"), parameters=n_par,
                    model_steps=model.meta.get("provenance", {}).get("steps"),
                    from_cache=sorted(set(CACHE_HITS)))
        head = (f"## TVflowNET vs the reference: {w} (`benchmarks/tvflownet_workloads.py`)\n\n"
                f"Generated {meta['date']} by `{cmd}` in {wall / 60:.1f} minutes ({cpu / 60:.1f} CPU minutes"
                + (f", {' and '.join(sorted(set(CACHE_HITS)))} from the cache of an earlier run" if CACHE_HITS else "")
                + "); "
                f"{meta['machine']}; device {dev}, GPU: {gpu}; {meta['threads']} torch thread(s); load average "
                f"{load0} at the start, {meta['load_end']} at the end. Model `{name}` ({meta['arch']}, {n_par:,} "
                f"parameters).\n")
        block = {"batch": f"batch_{args.size}px", "grad": f"grad_{args.grad_size}px", "inputeps": "inputeps"}[w]
        write_block(args.out / "results.md", block, head + "\n" + md)
        log(f"wrote block {block} of {args.out / 'results.md'}")
        write_text(args.out / f"{block}.json", json.dumps(dict(meta, **result), indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
