"""Where the time of one refined 64 x 64 mask goes: diffusion solves by kind, CG iterations, the rest.

The shipped mask networks' masks of ``--n`` crops of the built-in TEST photos (crop seed 1, the refinement
benchmark's other crops) are refined one crop per call, as the evaluation does
(``learned_mask(f, d, refine={"shifts": S, "rounds": R, "generator": 0})``; the fixed tile-shift seed
makes the masks reproducible, so two versions of the package can be compared mask for mask). Every
solve of ``pdeflow.inpaint.diffusion_system`` is timed (CPU seconds, this single-threaded process) and
classified as a probe (tol >= 1e-2), a forward or an adjoint solve (inside the autograd backward), cold
or warm-started.

    OMP_NUM_THREADS=1 nice -n 5 python experiments/inpaint_refine_profile.py --n 8 [--save-masks]

Writes log.txt (the table printed) and, with --save-masks, masks.pt to --out.

Historical. It profiled one refined mask to decide where to speed refinement up. Its results are kept for the
record; it is not expected to run against today's API. It still imported and parsed its options against
today's API when it was marked.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import add_output_args, open_out  # noqa: E402
from pdeflow.inpaint import diffusion_system as diffusion  # noqa: E402
from pdeflow.inpaint.evaluation import test_images  # noqa: E402
from pdeflow.inpaint.learned.masknet import learned_mask, load_masknet  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_output_args(ap, "inpaint_refine_profile", what="log.txt, masks.pt with --save-masks")
    ap.add_argument("--n", type=int, default=8, help="crops (default 8)")
    ap.add_argument("--shifts", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--save-masks", action="store_true", help="save the masks {density: (n, 1, 64, 64)} to masks.pt")
    args = ap.parse_args(argv)
    dest = open_out(args, argv)
    torch.set_num_threads(1)
    stats = collections.defaultdict(lambda: [0, 0, 0.0])
    in_backward = [False]
    solve0, backward0 = diffusion.DiffusionSystem.solve, diffusion._DiffuseFunction.backward

    def solve(self, b, start, tol, max_iter):
        c0 = time.process_time()
        x, it, res = solve0(self, b, start, tol, max_iter)
        kind = "adjoint" if in_backward[0] else ("probe" if tol >= 1e-2 else "forward")
        s = stats[(kind, "warm" if start is not None else "cold")]
        s[0] += 1
        s[1] += int(it.max())
        s[2] += time.process_time() - c0
        return x, it, res

    def backward(ctx, g):
        in_backward[0] = True
        try:
            return backward0(ctx, g)
        finally:
            in_backward[0] = False

    diffusion.DiffusionSystem.solve = solve
    diffusion._DiffuseFunction.backward = staticmethod(backward)
    refine = {"shifts": args.shifts, "rounds": args.rounds, "generator": 0}
    f_all, _ = test_images(args.n, 64, seed=1)
    saved = {}
    for d in args.densities:
        net = load_masknet(d, density=d, channels=1)
        learned_mask(f_all[:1].float(), d, model=net, refine=refine)          # warm-up, not counted
        stats.clear()
        total, masks = 0.0, []
        for i in range(args.n):
            c0 = time.process_time()
            masks.append(learned_mask(f_all[i:i + 1].float(), d, model=net, refine=refine))
            total += time.process_time() - c0
        saved[d] = torch.cat(masks)
        solve_ms = 1000 * sum(v[2] for v in stats.values()) / args.n
        iters = sum(v[1] for v in stats.values()) / args.n
        print(f"density {d:g}: {1000 * total / args.n:.0f} CPU-ms per mask; solves {solve_ms:.0f} ms ({iters:.0f} CG "
              f"iterations, {1000 * solve_ms / max(iters, 1):.0f} us each with the solves' set-up); the rest "
              f"{1000 * total / args.n - solve_ms:.0f} ms")
        for (kind, start), (cnt, it, t) in sorted(stats.items()):
            print(f"   {kind:8s} {start:5s} solves/mask {cnt / args.n:5.1f}  iterations/solve {it / cnt:6.1f}  "
                  f"CPU-ms/mask {1000 * t / args.n:6.1f}")
    if args.save_masks:
        torch.save(saved, dest / "masks.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
