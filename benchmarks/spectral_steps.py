"""spectral_tv's default accuracy: what looser certified frames cost in the bands, and what they save in time.

Maintained.  A centre crop of a grey photograph (float32 in [0, 1]) is decomposed on Gilboa's grid (``--dt`` 0.04,
``--steps`` 50, the README's ``pdeflow spectral`` at its defaults) at each ``--accuracies`` value (the certified RMS
error of every frame against the exact implicit steps, as a fraction of the range), and once at ``--ref-accuracy``
(the reference, in float64).  Errors against the reference, divided by the crop's range: the RMS and the largest
error of each dyadic band (``SpectralTV.filter()``) and of the residual, the largest error of the frames'
spectrum relative to its peak; ``recon`` is ``max |sum(bands) + residual - u0|`` (round-off whatever the
accuracy).  CPU time from ``time.process_time``, one thread.  The line "steps" is
:func:`pdeflow.tv.spectral.spectral_steps`'s.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/spectral_steps.py --image skimage/camera --size 256
    python benchmarks/spectral_steps.py --smoke        # a small crop, few steps
"""
from __future__ import annotations

import argparse
import json

import torch

from _results import add_output_args, open_out, timed
from flow_steps import crop  # benchmarks/flow_steps.py: the same grey centre crop (float32)
from pdeflow.tv import spectral_tv
from pdeflow.tv.spectral import spectral_steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default="skimage/camera")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--dt", type=float, default=0.04)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--accuracies", type=float, nargs="+", default=[1e-3, 4e-3, 1e-2, 2e-2, 3.2e-2])
    ap.add_argument("--ref-accuracy", type=float, default=2.5e-4)
    ap.add_argument("--smoke", action="store_true", help="a 48 px crop, 10 steps")
    add_output_args(ap, "spectral_steps", what="results.json, spectral_steps.md")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.steps, args.accuracies = 48, 10, [1e-2]
    out = open_out(args, argv)
    torch.set_num_threads(1)
    f = crop(args.image, args.size)
    rng = float(f.max() - f.min())
    ref, secs = timed(lambda: spectral_tv(f.double(), dt=args.dt, n_steps=args.steps, accuracy=args.ref_accuracy))
    print(f"reference (accuracy {args.ref_accuracy:g}, float64): {secs:.1f} CPU s", flush=True)
    ref_bands = torch.cat([ref.filter(), ref.residual[None]])
    rows = []
    for acc in args.accuracies:
        plan = spectral_steps(args.dt, args.steps, accuracy=acc, data_range=rng)
        s, cpu = timed(lambda: spectral_tv(f, dt=args.dt, n_steps=args.steps, accuracy=acc))
        bands = torch.cat([s.filter(), s.residual[None]]).double()
        err = (bands - ref_bands).flatten(1)
        row = dict(accuracy=acc, cpu_s=cpu, steps=plan.describe(),
                   band_rms=(err.square().mean(1).sqrt() / rng).tolist(),
                   band_max=(err.abs().amax(1) / rng).tolist(),
                   spectrum=float((s.spectrum.double() - ref.spectrum).abs().max() / ref.spectrum.max()),
                   recon=float((s.filter().sum(0) + s.residual - f).abs().max()))
        rows.append(row)
        print(f"accuracy {acc:g}: {cpu:.1f} CPU s; band RMS {' '.join(f'{v:.1e}' for v in row['band_rms'])}; "
              f"max {' '.join(f'{v:.1e}' for v in row['band_max'])}; spectrum {row['spectrum']:.1e}; "
              f"recon {row['recon']:.1e}", flush=True)
    m = len(ref_bands) - 1
    head = ("| `accuracy` | CPU s | RMS error of bands 0-" f"{m - 1}, residual | largest error of bands 0-{m - 1}, "
            "residual | spectrum | recon |")
    lines = [f"{args.image}, {args.size} x {args.size} centre crop, grey, float32; dt {args.dt:g}, N {args.steps}; "
             f"errors against accuracy {args.ref_accuracy:g} in float64, as fractions of the range", "",
             head, "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['accuracy']:g} | {r['cpu_s']:.1f} | {' / '.join(f'{v:.1e}' for v in r['band_rms'])} | "
                     f"{' / '.join(f'{v:.1e}' for v in r['band_max'])} | {r['spectrum']:.1e} | {r['recon']:.0e} |")
    (out / "spectral_steps.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(dict(args=vars(args) | {"out": str(args.out)}, rows=rows), indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
