"""float32 against float64: the TV solvers' values and gradients, before and after float64 iterates.

Maintained.  For each case the image is float32 (as loaders and pipelines give it) and the reference is
the same call on ``f.double()``.  "before" is the float32 iteration (``precision="input"``, the solvers'
path before float64 iterates became the default), "after" the default (``precision="float64"``).  Values:
the largest ``|u32 - u64|`` over the image divided by the range of ``f`` (images in [0, 1], and the same
crop times 1000 with ``lam`` and times scaled alike), and the CPU time of each path.  Gradients: for
``L = <w, u>`` (``w`` fixed random), ``<dL/df, v>`` along a random direction ``v`` and ``dL/dlam`` (or
``dL/dt``) from float32 and float64 autograd at the default tolerances, against each other and (up to
128 px) against central differences (step 1e-6) of float64 solves at tolerance 1e-12 (at most 1e5 iterations each).

Single-threaded, one run; CPU time from ``time.process_time``.

Usage::

    python benchmarks/float32_accuracy.py --out runs/benchmarks/float32_accuracy --overwrite
    python benchmarks/float32_accuracy.py --smoke          # a few small cases (the test suite runs this)
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
from pdeflow.inpaint import inpaint_diffusion
from pdeflow.tv import rof, spectral_tv, tv_flow

LAMS = (1e-4, 1e-2, 0.1, 1.0, 10.0, 1e3, 1e6)
FLOW_TIMES = (1e-4, 0.01, 0.1, 1.0, 10.0, 100.0)


def crop(n: int, noisy: bool = False) -> torch.Tensor:
    f = builtin_image("skimage/camera")[:, 100:100 + n, 150:150 + n].contiguous()
    if noisy:
        f = (f + 0.1 * torch.randn(f.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    return f


def timed(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = time.process_time()
        out = fn()
        return out, time.process_time() - t, len(caught)


def value_row(name, param, f, call):
    """``call(x, precision)`` on float32 ``f`` (both precisions) and on ``f.double()``."""
    rng = float(f.max() - f.min()) or 1.0
    u64, t64, _ = timed(lambda: call(f.double(), "float64"))
    before, t_before, w_before = timed(lambda: call(f, "input"))
    after, t_after, w_after = timed(lambda: call(f, "float64"))
    err = [float((u.double() - u64).abs().max()) / rng for u in (before, after)]
    row = {"function": name, "param": param, "size": f.shape[-1], "scale": round(float(f.max()), 3),
           "err_before": err[0], "err_after": err[1], "warnings_before": w_before, "warnings_after": w_after,
           "cpu_before_s": t_before, "cpu_after_s": t_after, "cpu_float64_s": t64}
    print(f"{name:10s} {param:22s} {f.shape[-1]:4d}px x{row['scale']:<7g} err {err[0]:8.1e} -> {err[1]:8.1e}  "
          f"warn {w_before}->{w_after}  cpu {t_before:7.3f} -> {t_after:7.3f} s (float64 {t64:.3f} s)", flush=True)
    return row


def value_rows(sizes, lams, methods, flow_times, scales, spectral_steps=50):
    rows = []
    for n in sizes:
        for scale in scales:
            f = crop(n) * scale
            for method in methods:
                for lam in lams:
                    rows.append(value_row("rof", f"{method} lam={lam:g}", f,
                                          lambda x, p, lam=lam, m=method: rof(x, lam * scale, method=m,
                                                                              precision=p)))
            for t in flow_times:
                # ten implicit steps to t (the step size is what the solver's accuracy depends on)
                rows.append(value_row("tv_flow", f"t={t:g} dt={t / 10:g}", f,
                                      lambda x, p, t=t: tv_flow(x, [t * scale], dt=t * scale / 10, precision=p)))
            rows.append(value_row("spectral", f"dt=0.04 N={spectral_steps} (phi)", f,
                                  lambda x, p: spectral_tv(x, dt=0.04 * scale, n_steps=spectral_steps,
                                                           precision=p).phi))
    for n in sizes:
        f = crop(n)
        for density in (0.05, 0.2):
            m = (torch.rand(f.shape, generator=torch.Generator().manual_seed(1)) < density).float()
            # inpaint_diffusion has no precision switch: before = after (its own dtype); reported for the table
            rows.append(value_row("inpaint_diffusion", f"density={density:g}", f,
                                  lambda x, p, m=m: inpaint_diffusion(x[None], m[None].to(x.dtype))[0]))
    return rows


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.1e}"


def gradient_rows(sizes, noisy_options, tight_tol, cd_max_size=128, cd_max_iter=100000, done=None):
    """rof (lam 0.1) at each size, tv_flow and spectral_tv at the smallest: relative errors of the
    float32 and float64 gradients against central differences of float64 solves."""
    rows = []
    for n in sizes:
        for noisy in noisy_options:
            f = crop(n, noisy)
            g = torch.Generator().manual_seed(2)
            w, v = torch.randn(f.shape, generator=g, dtype=torch.float64), torch.randn(f.shape, generator=g,
                                                                                       dtype=torch.float64)
            lam0 = 0.1
            cases = [("rof", "lam=0.1", lambda x, lam: rof(x, lam, full_output=False))]
            if n == sizes[0]:
                cases += [("tv_flow", "t=0.055 dt=0.01", lambda x, t: tv_flow(x, t.reshape(1), dt=0.01)[0]),
                          ("spectral", "dt=0.02 N=5 (phi)",
                           lambda x, t: spectral_tv(x, dt=float(t), n_steps=5).phi)]
            for name, param, call in cases:
                # parameters exact in float32, so that both dtypes differentiate the same problem; the time
                # off the step grid (on it the derivative is one-sided)
                s0 = float(torch.tensor({"rof": lam0, "tv_flow": 0.055, "spectral": 0.02}[name], dtype=torch.float32))
                grads = {}
                t0 = time.process_time()
                for dtype in (torch.float32, torch.float64):
                    x = f.to(dtype).clone().requires_grad_(True)
                    s = torch.tensor(s0, dtype=dtype, requires_grad=name != "spectral")
                    u = call(x, s).double()
                    (u * w.reshape((1,) * (u.dim() - w.dim()) + w.shape)).sum().backward()
                    grads[dtype] = (float((x.grad.double() * v).sum()),
                                    None if s.grad is None else float(s.grad))
                t_grad = time.process_time() - t0

                # float64 central differences at a tight tolerance (rof: warm-started from a tight base solve)
                p_ref = rof(f.double(), s0, tol=tight_tol, max_iter=cd_max_iter, full_output=True).p \
                    if name == "rof" and n <= cd_max_size else None
                def value(xx, ss):
                    with torch.no_grad():
                        if name == "rof":
                            u = rof(xx, ss, tol=tight_tol, max_iter=cd_max_iter, p0=p_ref)
                        elif name == "tv_flow":
                            u = tv_flow(xx, [ss], dt=0.01, tol=tight_tol, max_iter=200000)[0]
                        else:
                            u = spectral_tv(xx, dt=ss, n_steps=5, tol=tight_tol, max_iter=200000).phi
                        return float((u * w.reshape((1,) * (u.dim() - w.dim()) + w.shape)).sum())
                fd = f.double()
                h = 1e-6
                cd_f = cd_s = None
                if n <= cd_max_size:
                    cd_f = (value(fd + h * v, s0) - value(fd - h * v, s0)) / (2 * h)
                    if name != "spectral":
                        hs = 1e-6 * s0
                        cd_s = (value(fd, s0 + hs) - value(fd, s0 - hs)) / (2 * hs)
                row = {"function": name, "param": param, "size": n, "noisy": noisy, "cd_f": cd_f, "cd_s": cd_s,
                       "cpu_grad_s": t_grad}
                g64f, g64s = grads[torch.float64]
                for dtype, tag in ((torch.float32, "32"), (torch.float64, "64")):
                    gf, gs = grads[dtype]
                    row[f"vs64_f_{tag}"] = abs(gf - g64f) / abs(g64f)
                    row[f"vs64_s_{tag}"] = None if gs is None else abs(gs - g64s) / abs(g64s)
                    row[f"relerr_f_{tag}"] = None if cd_f is None else abs(gf - cd_f) / abs(cd_f)
                    row[f"relerr_s_{tag}"] = None if cd_s is None else abs(gs - cd_s) / abs(cd_s)
                    row[f"sign_ok_{tag}"] = (cd_f is None or gf * cd_f > 0) and (cd_s is None or gs * cd_s > 0)
                rows.append(row)
                if done is not None:
                    done(rows)
                print(f"grad {name:8s} {param:18s} {n:4d}px {'noisy' if noisy else 'clean'}: "
                      f"f32 vs f64: df {row['vs64_f_32']:.1e} ds {_fmt(row['vs64_s_32'])}; against central "
                      f"differences: df f32 {_fmt(row['relerr_f_32'])} f64 {_fmt(row['relerr_f_64'])}, "
                      f"ds f32 {_fmt(row['relerr_s_32'])} f64 {_fmt(row['relerr_s_64'])}; "
                      f"signs ok {row['sign_ok_32']}/{row['sign_ok_64']}", flush=True)
    return rows


def markdown(values, grads) -> str:
    out = ["| function | parameter | px | scale | error before | after | warnings | CPU s before | after "
           "| float64 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in values:
        out.append(f"| {r['function']} | {r['param']} | {r['size']} | {r['scale']:g} | {r['err_before']:.1e} | "
                   f"{r['err_after']:.1e} | {r['warnings_before']} -> {r['warnings_after']} | "
                   f"{r['cpu_before_s']:.3f} | {r['cpu_after_s']:.3f} | {r['cpu_float64_s']:.3f} |")
    out += ["", "| function | parameter | px | image | f32 vs f64: d/df | d/dlam, d/dt | vs central differences: "
            "d/df f32 | f64 | d/dlam, d/dt f32 | f64 | signs |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in grads:
        out.append(f"| {r['function']} | {r['param']} | {r['size']} | {'noisy' if r['noisy'] else 'camera'} | "
                   f"{r['vs64_f_32']:.1e} | {_fmt(r['vs64_s_32'])} | {_fmt(r['relerr_f_32'])} | "
                   f"{_fmt(r['relerr_f_64'])} | {_fmt(r['relerr_s_32'])} | {_fmt(r['relerr_s_64'])} | "
                   f"{'ok' if r['sign_ok_32'] and r['sign_ok_64'] else 'WRONG'} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a few small cases (seconds)")
    ap.add_argument("--gradients-only", action="store_true",
                    help="measure the gradients only, keeping the values.json that --out already holds")
    add_output_args(ap, "float32_accuracy", what="values.json, gradients.json, float32_accuracy.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    def save(values, grads):   # after each part: a long run keeps what it measured
        (out / "values.json").write_text(json.dumps(values, indent=1))
        (out / "gradients.json").write_text(json.dumps(grads, indent=1))
        (out / "float32_accuracy.md").write_text(markdown(values, grads))

    if args.gradients_only:
        values = json.loads((out / "values.json").read_text()) if (out / "values.json").is_file() else []
        grads = gradient_rows((64, 128, 512), (False, True), 1e-12, cd_max_size=128,
                              done=lambda g: save(values, g))
    elif args.smoke:
        values = value_rows((16,), (0.1, 1e6), ("fgp",), (0.1,), (1.0,), spectral_steps=10)
        grads = gradient_rows((16,), (False,), 1e-12, done=lambda g: save(values, g))
    else:
        values = value_rows((64,), LAMS, ("fgp", "chambolle", "pdhg", "admm"), FLOW_TIMES, (1.0, 1000.0))
        values += value_rows((256,), LAMS, ("fgp",), (), (1.0,))
        save(values, [])
        grads = gradient_rows((64, 128, 512), (False, True), 1e-12, cd_max_size=128,
                              done=lambda g: save(values, g))
    save(values, grads)
    # the benchmark fails where float32 and float64 gradients disagree (they are computed alike)
    bad = [r for r in grads if r["vs64_f_32"] > 1e-3 or (r["vs64_s_32"] or 0) > 1e-3]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
