"""What the TV flow itself scores in Table 7's autodiff column: is that column a measure of accuracy?

    python experiments/tvflownet_table7_quadrature.py [--size 96] [--n-images 8] [--image-dir DIR] [--seed 1]

Table 7 (:func:`pdeflow.tvflownet.evaluate.evaluate_spectral`) reconstructs ``u0`` from a network's
spectral TV transform ``phi(t) = t u_tt(t)``: by autodiff, ``trapezoid(t_k u_tt(t_k)) + u(T) - T u_t(T)``
on the paper's grid ``t_k = 0.02 k`` (T = 0.98), with ``u_t, u_tt`` the network's exact time
derivatives. For a smooth ``u(t)`` the exact integral telescopes to ``u(0)``, so the score measures the
trapezoid rule's error on ``t u_tt`` at steps of 0.02 (plus ``u(0)``'s own error, the FD column).
The flow's ``u_t`` jumps whenever a level set vanishes, many times within one grid step early in the
flow, so its ``u_tt`` is not smooth on that scale.

This script puts the flow itself through the same quadrature: a float64 flow at steps of ``--fine-dt``
(0.0025, tolerance ``--tol``), its ``u_tt`` and ``u_t`` by central differences of step ``m * fine-dt``
at the paper's 50 times, for several ``m``. A step equal to the grid's (0.02) telescopes exactly to
``u0`` (round-off: a check of the arithmetic); smaller steps resolve more of the flow's own second
derivative, and score lower. PSNR of ``u0`` (data range 1, the paper's x5 scale divided out), mean and
standard deviation over images.

``--models M ...`` also scores networks (shipped names or paths) by Table 7 itself on the paper's grid and on
grids 2x and 4x finer (steps of 0.01 and 0.005, to the same T = 0.98). For a network smooth in time the
autodiff reconstruction tends to its ``u(0)`` (the finite-difference column) as the grid is refined; how far
and which way it moves on the way shows how much of a score on the paper's grid is quadrature error. Printed, and written to ``--out`` (log.txt).

Historical. It asked what Table 7's autodiff column measures, and answered. Its results are kept for the
record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import warnings

import torch

from _results import add_output_args, open_out  # experiments/_results.py
from pdeflow.tv import tv_flow
from pdeflow.tvflownet import load
from pdeflow.tvflownet.evaluate import PAPER_SCALE, evaluate_spectral, natural_images, paper_times


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=96, help="crop size in pixels (default 96, Table 7's)")
    ap.add_argument("--n-images", type=int, default=8, help="test crops (default 8)")
    ap.add_argument("--image-dir", default=None, help="photos to crop (default: the built-in TEST photos)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the crops (default 0, the evaluation's)")
    ap.add_argument("--fine-dt", type=float, default=0.0025, help="time step of the float64 flow (default 0.0025)")
    ap.add_argument("--tol", type=float, default=1e-6, help="its relative duality gap per step (default 1e-6)")
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8],
                    help="difference steps in units of --fine-dt (default 1 2 4 8)")
    ap.add_argument("--models", nargs="+", default=[], metavar="MODEL",
                    help="networks to score by Table 7 on the paper's grid and 2x and 4x finer ones")
    add_output_args(ap, "tvflownet_table7_quadrature", what="log.txt")
    args = ap.parse_args(argv)
    open_out(args, argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")   # ConvergenceWarning of tight tolerances on flat crops

    times = torch.tensor(paper_times(), dtype=torch.float64)            # 0, 0.02, ..., 0.98
    h = args.fine_dt
    grid = [round(float(t) / h) for t in times]
    if any(abs(k * h - float(t)) > 1e-9 for k, t in zip(grid, times)):
        ap.error(f"argument --fine-dt: {h:g} does not divide the paper's time step 0.02")
    top = grid[-1] + max(args.steps)                                    # room for the last central difference
    x = natural_images(args.size, args.n_images, seed=args.seed, image_dir=args.image_dir).double() * PAPER_SCALE
    u = tv_flow(x, [k * h for k in range(top + 1)], dt=h, tol=args.tol, max_iter=20000, progress=True)
    print(f"float64 flow of {args.n_images} crops of {args.size} px at steps of {h:g} (tol {args.tol:g}); "
          f"Table 7's autodiff reconstruction on the paper's grid (step 0.02), u_t and u_tt by central differences:")
    tk = times.reshape(-1, 1, 1, 1, 1)
    for m in args.steps:
        d = m * h
        u_tt = torch.stack([(u[k + m] - 2 * u[k] + u[k - m]) / d ** 2 if k else torch.zeros_like(u[0])
                            for k in grid])                              # t u_tt vanishes at t = 0
        u_t_end = (u[grid[-1] + m] - u[grid[-1] - m]) / (2 * d)
        rec = torch.trapezoid(tk * u_tt, times, dim=0) + u[grid[-1]] - times[-1] * u_t_end
        mse = ((rec - x) / PAPER_SCALE).pow(2).mean(dim=(1, 2, 3))
        psnr = -10 * torch.log10(mse)
        print(f"  difference step {d:g}: PSNR {float(psnr.mean()):.2f} +- {float(psnr.std()):.2f} dB", flush=True)

    if args.models:
        models = {m: load(m) for m in args.models}
        print("networks, Table 7 (autodiff; finite differences = the network's u(0)) on grids to T = 0.98:")
        for step in (0.02, 0.01, 0.005):
            grid_times = [k * step for k in range(round(0.98 / step) + 1)]
            res = evaluate_spectral(models, size=args.size, n_images=args.n_images, times=grid_times,
                                    seed=args.seed, image_dir=args.image_dir, ref_kwargs={"dt": 0.005})
            for name, r in res["models"].items():
                (ad, ad_sd), (fd, fd_sd) = r["autodiff"]["psnr"], r["fd"]["psnr"]
                print(f"  step {step:g}, {name}: autodiff {ad:.2f} +- {ad_sd:.2f} dB, "
                      f"finite differences {fd:.2f} +- {fd_sd:.2f}", flush=True)


if __name__ == "__main__":
    main()
