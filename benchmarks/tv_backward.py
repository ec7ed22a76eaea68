"""Backward pass of rof (implicit differentiation) against its forward and against autograd unrolled through FGP.

For a loss ``L = <w, rof(f, lam)>`` on a camera crop (float32, lam 0.1, the default tol 1e-6), one run,
single-threaded, CPU time (``time.process_time``):

* forward (no grad) and forward + backward of :func:`pdeflow.tv.rof` (FGP), and the bytes autograd
  keeps for the backward (``saved_tensors_hooks``: what grows with the iteration count when unrolling);
* the gradient's relative error against a float64 reference (implicit at tol 1e-12), for the implicit
  gradient and for autograd through ``k`` plain FGP iterations (Beck & Teboulle 2009, no restart), ``k``
  doubling until the unrolled gradient is as accurate as the implicit one or the time cap is reached.

Usage::

    python benchmarks/tv_backward.py --out runs/benchmarks/tv_backward --overwrite --cap 300

512 x 512 is measured for the implicit gradient (forward, backward, memory) and for unrolling up to the
time cap; its float64 reference is one tight solve (counted in the cap).

Maintained. It sizes today's implicit backward pass of ``rof``; the test suite runs it with ``--smoke``
(16 px, a 10 s cap).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import torch

from _results import add_output_args, open_out
from pdeflow.datasets import builtin_image
from pdeflow.ops import div, grad
from pdeflow.tv import ConvergenceWarning, rof


def _saved_bytes(fn):
    sizes = []

    def pack(t):
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(sizes)


def unrolled_fgp(f, lam, k):
    """``k`` FGP iterations (dual, step 1/(8 lam^2), Nesterov momentum) in plain differentiable torch ops."""
    p = f.new_zeros(*f.shape[:-2], 2, *f.shape[-2:])
    q, t = p, 1.0
    for _ in range(k):
        z = q + grad(f + lam * div(q)) / (8 * lam)
        z = z * z.square().sum(-3, keepdim=True).clamp_min(1.0).rsqrt()   # clamp first: no NaN at 0
        t_new = 0.5 * (1 + (1 + 4 * t * t) ** 0.5)
        q = z + ((t - 1) / t_new) * (z - p)
        p, t = z, t_new
    return f + lam * div(p)


def _grad_of(fn, f, w):
    x = f.clone().requires_grad_()
    t0 = time.process_time()
    u, saved = _saved_bytes(lambda: fn(x))
    t1 = time.process_time()
    (u * w).sum().backward()
    t2 = time.process_time()
    return x.grad, t1 - t0, t2 - t1, saved


def _rel(a, b):
    return float((a.double() - b).norm() / b.norm())


def measure(size: int, lam: float, cap: float, start: float, mem_cap: float) -> dict:
    img = builtin_image("skimage/camera", grey=True)[0]
    y0 = (img.shape[-2] - size) // 2
    f = img[y0:y0 + size, y0:y0 + size].float()[None, None].contiguous()
    w = torch.rand(f.shape, generator=torch.Generator().manual_seed(0))
    row: dict = {"size": size, "lam": lam}
    t0 = time.process_time()
    r = rof(f, lam, full_output=True)
    row["forward_s"] = time.process_time() - t0
    row["forward_iterations"] = int(r.iterations.item())
    g_imp, tf, tb, saved = _grad_of(lambda x: rof(x, lam), f, w)
    row.update(forward_with_grad_s=tf, backward_s=tb, implicit_saved_bytes=saved, image_bytes=f.numel() * 4)
    t0 = time.process_time()
    # One tight float64 solve (64 px: tol 1e-12); at 512 px that would take hours on one core here, so the
    # reference is float64 at tol 1e-8 (its error about that of the float32 gradient: a weaker check).
    ref_tol, ref_iter = (1e-12, 100000) if size <= 128 else (1e-8, 20000)
    ref_g = _grad_of(lambda x: rof(x, lam, tol=ref_tol, max_iter=ref_iter), f.double(), w.double())[0]
    row["reference_tol"] = ref_tol
    row["reference_s"] = time.process_time() - t0
    row["implicit_grad_rel_error"] = _rel(g_imp, ref_g)
    print(json.dumps(row), flush=True)
    unrolled = []
    k = 25
    while True:
        if time.process_time() - start > cap:
            row["unrolled_stopped"] = f"time cap {cap:g} s reached before k={k}"
            break
        if unrolled and 2 * unrolled[-1]["saved_bytes"] > mem_cap:
            row["unrolled_stopped"] = f"memory cap: k={k} would keep {2 * unrolled[-1]['saved_bytes'] / 2**30:.1f} GiB"
            break
        g_u, tf, tb, saved = _grad_of(lambda x: unrolled_fgp(x, lam, k), f, w)
        err = _rel(g_u, ref_g)
        unrolled.append({"k": k, "forward_s": tf, "backward_s": tb, "saved_bytes": saved, "grad_rel_error": err})
        print(f"  {size}px unrolled k={k}: fwd {tf:.2f}s bwd {tb:.2f}s saved {saved / 2**20:.1f} MiB err {err:.2e}",
              flush=True)
        if err <= row["implicit_grad_rel_error"]:
            break
        if k >= 3200:
            row["unrolled_stopped"] = "k=3200 reached without the implicit gradient's accuracy"
            break
        k *= 2
    row["unrolled"] = unrolled
    return row


def _markdown(rows) -> str:
    out = ["# rof backward (implicit) vs forward vs unrolled FGP", "",
           "camera crop, float32, lam 0.1, tol 1e-6 (rof's default), one CPU thread, CPU seconds; "
           "error: relative L2 error of dL/df against a float64 implicit gradient (tol 1e-12; 1e-8 at 512 px).", "",
           "| size | rof forward (no grad) | forward + graph | backward | saved by autograd | grad error |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['size']} | {r['forward_s']:.3f} s ({r['forward_iterations']} it) | "
                   f"{r['forward_with_grad_s']:.3f} s | {r['backward_s']:.3f} s | "
                   f"{r['implicit_saved_bytes'] / 2**20:.2f} MiB | {r['implicit_grad_rel_error']:.2e} |")
    out += ["", "Unrolled FGP (autograd through k iterations):", "",
            "| size | k | forward | backward | saved by autograd | grad error |", "|---|---|---|---|---|---|"]
    for r in rows:
        for u in r["unrolled"]:
            out.append(f"| {r['size']} | {u['k']} | {u['forward_s']:.3f} s | {u['backward_s']:.3f} s | "
                       f"{u['saved_bytes'] / 2**20:.1f} MiB | {u['grad_rel_error']:.2e} |")
        if "unrolled_stopped" in r:
            out.append(f"| {r['size']} | — | {r['unrolled_stopped']} | | | |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--cap", type=float, default=300.0, help="CPU seconds for the whole run (checked between runs)")
    ap.add_argument("--mem-cap", type=float, default=2.0, help="GiB autograd may keep for one unrolled run")
    ap.add_argument("--smoke", action="store_true", help="16 px, a 10 s cap: a check that it runs")
    add_output_args(ap, "tv_backward")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.cap = [16], 10.0
    out = open_out(args, argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    start = time.process_time()
    rows = []
    for size in args.sizes:
        if time.process_time() - start > args.cap:
            print(f"{size}px: not run (time cap)")
            rows.append({"size": size, "not_run": f"time cap {args.cap:g} s"})
            continue
        rows.append(measure(size, args.lam, args.cap, start, args.mem_cap * 2**30))
    done = [r for r in rows if "not_run" not in r]
    (out / "tv_backward.json").write_text(json.dumps(rows, indent=1))
    (out / "tv_backward.md").write_text(_markdown(done))
    print(_markdown(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
