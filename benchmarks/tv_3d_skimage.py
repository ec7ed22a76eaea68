"""3-D ROF: pdeflow's ``rof(f, lam, ndim=3)`` against scikit-image's ``denoise_tv_chambolle(f, weight=lam)``.

Both minimise ``1/2 ||u - f||^2 + lam * TV(u)`` with the same forward differences (unit spacing), so on the
same volume and weight they must agree to the solvers' tolerances.  On a noisy ellipsoid phantom (float64,
one thread) this script measures

1. the agreement at a tight tolerance: ``rof`` to a relative duality gap ``--ref-tol`` (the reference)
   against ``denoise_tv_chambolle`` run long (``--sk-tight-iter`` iterations, ``eps=1e-12``): the largest
   difference, the energy excess of scikit-image's result, and the strong-convexity bound
   ``||u_sk - u*|| <= sqrt(2 (E(u_sk) - E(u*)))`` it must respect;
2. the CPU time at matched accuracy: scikit-image with its defaults (``eps=2e-4``, 200 iterations) and its
   error against the reference; then ``rof`` (``fgp``) at decreasing ``tol`` until its error is at most
   scikit-image's, and the ratio of the two CPU times (``time.process_time``, same run).

The reference: ``rof`` to ``--ref-tol`` (one value per size).  A tolerance of 1e-7 or tighter is affordable
at 64^3 but not at 256^3 (thousands of iterations of 16.7 M voxels), where the reference is a ``rof`` solve to
a looser tolerance that is still far tighter than the accuracies compared.  Two checks of that: the
strong-convexity bound ``||u_ref - u*||_2 <= sqrt(2 gap)`` (reported per voxel, as an RMS bound), and, at
every size whose reference is tighter than ``--calib-tol``, the max error of a ``rof`` solve to
``--calib-tol`` against that tighter reference (how far such a solve is from the converged solution).

Usage::

    python benchmarks/tv_3d_skimage.py --sizes 64 256 --ref-tol 1e-8 1e-5 --sk-tight-iter 1000 300 \
        --calib-tol 1e-5 --out benchmarks/results/tv_3d

Historical. It compared 3-D ROF with scikit-image when ndim=3 was added. Its results are kept for the record;
it is not expected to run against today's API. It still imported and parsed its options against today's API
when it was marked.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from _results import add_output_args, open_out, write_file
from pdeflow.tv import rof


def phantom(n: int, noise: float, seed: int) -> np.ndarray:
    """Three overlapping ellipsoids in [0, 1] plus Gaussian noise, (n, n, n) float64."""
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n),) * 3, indexing="ij")
    v = np.zeros((n, n, n))
    for (cz, cy, cx), (az, ay, ax), val in (((0, 0, 0), (0.8, 0.6, 0.7), 0.5),
                                            ((0.2, -0.2, 0.1), (0.3, 0.25, 0.4), 0.4),
                                            ((-0.3, 0.25, -0.2), (0.2, 0.2, 0.2), 0.3)):
        v += val * ((((z - cz) / az) ** 2 + ((y - cy) / ay) ** 2 + ((x - cx) / ax) ** 2) <= 1)
    rng = np.random.default_rng(seed)
    return v + noise * rng.standard_normal(v.shape)


def energy(u: np.ndarray, f: np.ndarray, lam: float) -> float:
    g = [np.diff(u, axis=a, append=np.take(u, [-1], axis=a)) for a in range(3)]
    return float(0.5 * ((u - f) ** 2).sum() + lam * np.sqrt(sum(c * c for c in g)).sum())


def timed(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def run_size(n: int, lam: float, noise: float, tight_iter: int, seed: int, ref_tol: float,
             calib_tol: float) -> dict:
    f = phantom(n, noise, seed)
    ft = torch.from_numpy(f)
    ref, t_ref = timed(lambda: rof(ft, lam, ndim=3, tol=ref_tol, max_iter=200000, full_output=True))
    u_ref = ref.u.numpy()
    e_ref = energy(u_ref, f, lam)
    row = {"size": n, "lam": lam, "noise": noise, "ref_tol": ref_tol, "ref_iterations": int(ref.iterations[0]),
           "ref_gap": float(ref.gap[0]), "ref_cpu_s": t_ref,
           # ||u_ref - u*||_2 <= sqrt(2 (E(u_ref) - E(u*))) <= sqrt(2 gap), per voxel
           "ref_rms_bound": float(np.sqrt(2 * float(ref.gap[0]) * e_ref / f.size))}
    print(f"{n}^3: rof reference (fgp, tol {ref_tol:g}): {int(ref.iterations[0])} iterations, {t_ref:.2f} s; "
          f"certified RMS distance to the exact minimiser <= {row['ref_rms_bound']:.1e}", flush=True)
    if ref_tol < calib_tol:
        c, t_c = timed(lambda: rof(ft, lam, ndim=3, tol=calib_tol, max_iter=200000, full_output=True))
        row["calib"] = {"tol": calib_tol, "iterations": int(c.iterations[0]), "cpu_s": t_c,
                        "max_err": float(np.abs(c.u.numpy() - u_ref).max()),
                        "rms_err": float(np.sqrt(((c.u.numpy() - u_ref) ** 2).mean()))}
        print(f"  calibration: rof to tol {calib_tol:g} ({row['calib']['iterations']} iterations) is within "
              f"{row['calib']['max_err']:.1e} (max) / {row['calib']['rms_err']:.1e} (RMS) of the reference", flush=True)

    # 1. agreement at a tight tolerance
    sk_tight, t_tight = timed(lambda: denoise_tv_chambolle(f, weight=lam, eps=1e-12, max_num_iter=tight_iter))
    excess = energy(sk_tight, f, lam) - e_ref
    row.update(sk_tight_iter=tight_iter, sk_tight_cpu_s=t_tight,
               sk_tight_max_diff=float(np.abs(sk_tight - u_ref).max()),
               sk_tight_l2_diff=float(np.linalg.norm(sk_tight - u_ref)),
               sk_tight_energy_excess_rel=excess / e_ref,
               sk_tight_l2_bound=float(np.sqrt(2 * max(excess, 0.0)) + np.sqrt(2 * row["ref_gap"] * e_ref)))
    print(f"  skimage {tight_iter} iterations: max |u_sk - u_ref| {row['sk_tight_max_diff']:.2e}, "
          f"||.||_2 {row['sk_tight_l2_diff']:.2e} <= bound {row['sk_tight_l2_bound']:.2e}, "
          f"energy excess {excess / e_ref:.1e} (relative), {t_tight:.1f} s", flush=True)

    # 2. time at matched accuracy (max abs error against the reference)
    sk, t_sk = timed(lambda: denoise_tv_chambolle(f, weight=lam))
    err_sk = float(np.abs(sk - u_ref).max())
    row.update(sk_default_cpu_s=t_sk, sk_default_max_err=err_sk)
    print(f"  skimage defaults (eps 2e-4, 200 iterations): max error {err_sk:.2e}, {t_sk:.2f} s", flush=True)
    sweep = []
    target = min(err_sk, row["sk_tight_max_diff"])
    for tol in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9):
        if tol <= ref_tol:
            break
        r, t = timed(lambda tol=tol: rof(ft, lam, ndim=3, tol=tol, max_iter=200000, full_output=True))
        err = float(np.abs(r.u.numpy() - u_ref).max())
        sweep.append({"tol": tol, "iterations": int(r.iterations[0]), "cpu_s": t, "max_err": err})
        print(f"  rof fgp tol {tol:g}: {int(r.iterations[0])} iterations, max error {err:.2e}, {t:.2f} s", flush=True)
        if err <= target:
            break
    row["rof_sweep"] = sweep
    for key, err_s, t_s in (("default", err_sk, t_sk), ("tight", row["sk_tight_max_diff"], t_tight)):
        matched = next((e for e in sweep if e["max_err"] <= err_s), None)
        row[f"rof_matched_{key}"] = matched
        row[f"time_ratio_sk_over_rof_{key}"] = t_s / matched["cpu_s"] if matched else None
        if matched:
            print(f"  matched accuracy ({key} skimage run, max error {err_s:.1e}): rof tol {matched['tol']:g} "
                  f"{matched['cpu_s']:.2f} s vs skimage {t_s:.2f} s: skimage / rof = {t_s / matched['cpu_s']:.2f}",
                  flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["# 3-D ROF: pdeflow `rof(ndim=3)` vs scikit-image `denoise_tv_chambolle` (same volume, weight = lam)",
             "",
             "Noisy ellipsoid phantom, float64, one thread, CPU time (`time.process_time`), one run side by side. "
             "Reference: `rof` (fgp) to the relative duality gap below.",
             "",
             "| size | skimage run | its max diff to the reference | L2 diff (bound) | energy excess | "
             "skimage CPU s | rof at matched max error: tol | its max error | rof CPU s | skimage / rof |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for key, label, err, l2, bound, exc, t in (
                ("default", "defaults (eps 2e-4, <= 200 it.)", r["sk_default_max_err"], None, None, None,
                 r["sk_default_cpu_s"]),
                ("tight", f"{r['sk_tight_iter']} it., eps 1e-12", r["sk_tight_max_diff"], r["sk_tight_l2_diff"],
                 r["sk_tight_l2_bound"], r["sk_tight_energy_excess_rel"], r["sk_tight_cpu_s"])):
            m = r[f"rof_matched_{key}"] or {}
            ratio = r[f"time_ratio_sk_over_rof_{key}"]
            lines.append(
                f"| {r['size']}^3 | {label} | {err:.1e} | "
                f"{'-' if l2 is None else f'{l2:.1e} ({bound:.1e})'} | {'-' if exc is None else f'{exc:.1e}'} | "
                f"{t:.2f} | {m.get('tol', '-')} | {m.get('max_err', float('nan')):.1e} | "
                f"{m.get('cpu_s', float('nan')):.2f} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    refs = "; ".join(f"{r['size']}^3: relative duality gap {r['ref_tol']:g}, {r['ref_iterations']} iterations, "
                     f"{r['ref_cpu_s']:.1f} s, certified RMS distance to the exact minimiser <= {r['ref_rms_bound']:.1e}"
                     for r in rows)
    lines += ["", f"Reference (`rof` fgp): {refs}."]
    for r in rows:
        if "calib" in r:
            c = r["calib"]
            lines.append(f"Calibration at {r['size']}^3: a `rof` solve to tol {c['tol']:g} ({c['iterations']} "
                         f"iterations) is within {c['max_err']:.1e} (max) / {c['rms_err']:.1e} (RMS) of that size's "
                         f"reference: how close a reference at tol {c['tol']:g} is to the converged solution "
                         f"(to set against the errors compared above).")
    lines += ["",
              "Command: see `command.txt`; full output in `log.txt`, numbers in `tv_3d_skimage.json`.", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64], help="edge lengths of the cubic volumes")
    ap.add_argument("--lam", type=float, default=0.1, help="weight (rof lam = skimage weight)")
    ap.add_argument("--noise", type=float, default=0.1, help="standard deviation of the Gaussian noise")
    ap.add_argument("--sk-tight-iter", type=int, nargs="+", default=[2000],
                    help="iterations of the long skimage run (one value, or one per size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ref-tol", type=float, nargs="+", default=[1e-10],
                    help="relative duality gap of the reference solve (one value, or one per size)")
    ap.add_argument("--calib-tol", type=float, default=1e-5,
                    help="where the reference is tighter: the error of a rof solve to this tol is reported")
    add_output_args(ap, "tv_3d", what="tv_3d_skimage.json, tv_3d_skimage.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    per = {}
    for name in ("sk_tight_iter", "ref_tol"):
        v = getattr(args, name)
        if len(v) not in (1, len(args.sizes)):
            ap.error(f"--{name.replace('_', '-')}: give one value or one per size ({len(args.sizes)})")
        per[name] = v * len(args.sizes) if len(v) == 1 else v
    rows = [run_size(n, args.lam, args.noise, it, args.seed, rt, args.calib_tol)
            for n, it, rt in zip(args.sizes, per["sk_tight_iter"], per["ref_tol"])]
    write_file(out / "tv_3d_skimage.json", json.dumps({"torch_threads": torch.get_num_threads(), "rows": rows},
                                                      indent=2) + "\n")
    write_file(out / "tv_3d_skimage.md", markdown(rows))


if __name__ == "__main__":
    main()
