"""tv_flow without ``dt``: the steps it chooses from ``accuracy``, their error against a fine reference, their time.

Maintained.  A centre crop of a grey photograph (float32 in [0, 1]) flows to the README's times 0.1, 0.5
and 2 (``pdeflow flow photo.png --times 0.1 0.5 2``) at each ``--accuracies`` value, without ``dt``.  The
reference: uniform implicit Euler steps of ``--ref-dt`` landing on the times, in float64, each solved to a
relative duality gap of 1e-6 (``tv_flow(f.double(), times, dt=ref_dt, tol=1e-6)``); ``--ref-dt2`` (twice
the step, say) runs too, and since implicit Euler's error is first order the reference is off the exact
flow by about the difference of the two (the column "ref. error").  Errors: root-mean-square and largest
absolute difference to the reference at each time, divided by the crop's range.  CPU time from
``time.process_time``, one thread.  The line "steps" is :func:`pdeflow.tv.steps.flow_steps`'s.

Usage::

    python benchmarks/flow_steps.py --image skimage/camera --size 256 --ref-cache DIR
    python benchmarks/flow_steps.py --smoke        # a small crop, a coarse reference (the test suite's size)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from _results import add_output_args, open_out, timed
from pdeflow.datasets import builtin_image
from pdeflow.tv import tv_flow
from pdeflow.tv.steps import flow_steps

TIMES = [0.1, 0.5, 2.0]


def crop(name: str, n: int) -> torch.Tensor:
    f = builtin_image(name)
    if f.shape[0] == 3:
        f = f.mean(0, keepdim=True)
    c0, c1 = f.shape[-2] // 2 - n // 2, f.shape[-1] // 2 - n // 2
    return f[..., c0:c0 + n, c1:c1 + n].contiguous()


def reference(f, dt, cache: Path | None, tag: str):
    path = None if cache is None else cache / f"{tag}_dt{dt:g}.pt"
    if path is not None and path.exists():
        return torch.load(path)
    u, secs = timed(lambda: tv_flow(f.double(), TIMES, dt=dt, tol=1e-6))
    print(f"reference dt={dt:g}: {secs:.1f} CPU s", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(u, path)
    return u


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default="skimage/camera")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--accuracies", type=float, nargs="+", default=[8e-3, 4e-3, 2e-3])
    ap.add_argument("--ref-dt", type=float, default=0.01)
    ap.add_argument("--ref-dt2", type=float, default=0.02)
    ap.add_argument("--ref-cache", type=Path, default=None, help="keep and reuse the references here")
    ap.add_argument("--smoke", action="store_true", help="a 24 px crop, a coarse reference")
    add_output_args(ap, "flow_steps")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    n = 24 if args.smoke else args.size
    f = crop(args.image, n)
    rng = float(f.max() - f.min())
    tag = f"{args.image.replace('/', '_')}_{n}"
    ref = reference(f, args.ref_dt, args.ref_cache, tag)
    ref2 = reference(f, args.ref_dt2, args.ref_cache, tag)

    def errors(u):
        d = u.double() - ref
        return ([float(x.square().mean().sqrt()) / rng for x in d], [float(x.abs().max()) / rng for x in d])

    ref_rms = errors(ref2)[0]
    rows = []
    for acc in args.accuracies:
        plan = flow_steps(TIMES, accuracy=acc, data_range=rng)
        u, cpu = timed(lambda: tv_flow(f, TIMES, accuracy=acc))
        rms, mx = errors(u)
        rows.append({"accuracy": acc, "steps": plan.n_steps, "dt": plan.dt, "estimate": plan.accuracy,
                     "rms": rms, "max": mx, "ref_rms": ref_rms, "cpu_s": cpu})
        print(f"accuracy {acc:g}: steps: {plan.describe()}; {cpu:.1f} CPU s", flush=True)
    lines = ["| `accuracy` | steps (largest dt) | RMS error at t = 0.1 / 0.5 / 2 | largest error | ref. error (RMS) "
             "| CPU s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['accuracy']:g} | {r['steps']} ({r['dt']:.3g}) | "
                     + " / ".join(f"{e:.1e}" for e in r["rms"]) + " | "
                     + " / ".join(f"{e:.1e}" for e in r["max"]) + " | "
                     + " / ".join(f"{e:.0e}" for e in r["ref_rms"]) + f" | {r['cpu_s']:.1f} |")
    table = "\n".join(lines)
    print(table)
    (out / "flow_steps.md").write_text(table + "\n")
    (out / "flow_steps.json").write_text(json.dumps({"image": args.image, "size": n, "range": rng, "rows": rows},
                                                    indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
