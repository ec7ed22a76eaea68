"""Choose densify_mask's settings on selection photos against PS (never on the held-out mate-nature photos).

Centre crops of the photos of ``--folder`` (default the ``lomiri`` selection pool), grey: PS minimising the MSE
(p = q = 0.02, one run for all densities; its masks cached in ``--ps-cache`` so that a second call reuses them:
PS is deterministic and the slow part), the analytic mask, and densify_mask for each ``--variants`` entry
``START:STAGES:SIGMA:SMOOTH``: the analytic mask at ``START`` x the density, smoothed by ``analytic_sigma`` of the
full density (``SMOOTH`` = ``full``, the function's own start) or of the start's (``start``), grown in ``STAGES``
stages with the error smoothed by ``SIGMA`` px. Prints, per crop size and density, the means (MSE and MAE on the
0-255 scale, SSIM) and the crops where each row beats PS, and writes them to ``--out``::

    OMP_NUM_THREADS=1 python experiments/inpaint_densify_select.py --crops 128 --limit 8 \\
        --variants 0.3:8:0.7:full 0.3:8:0.7:start 0.3:6:0.7:full 0.2:8:0.7:full 0.3:8:1.0:full --out DIR

Historical. It chose densify_mask's settings. Its results are kept for the record; it is not expected to run
against today's API. It still imported and parsed its options against today's API when it was marked.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent / "benchmarks"))   # after experiments/: _results is experiments/_results.py
from _results import add_output_args, open_out, write_file  # noqa: E402  (experiments/_results.py)
from inpaint_masks_4k import centre_crop, load_grey, quality, summary  # noqa: E402  (benchmarks/inpaint_masks_4k.py)
from pdeflow.inpaint import analytic_mask, densify_mask, probabilistic_sparsification  # noqa: E402
from pdeflow.inpaint.masks.analytic import analytic_sigma  # noqa: E402


def variant_mask(f, d, spec):
    start, stages, sigma, smooth = spec.split(":")
    d0 = float(start) * d
    start_mask = analytic_mask(f, d0, sigma=analytic_sigma(d if smooth == "full" else d0))
    return densify_mask(f, d, mask=start_mask, stages=int(stages), sigma=float(sigma))


def ps_masks(f, densities, cache: Path, key: str):
    """PS's masks for ``densities`` and its CPU seconds (NaN when cached by a run that did not record them)."""
    files = [cache / f"{key}-{d}.pt" for d in densities]
    timing = cache / f"{key}.seconds"
    if all(p.exists() for p in files):
        return [torch.load(p) for p in files], float(timing.read_text()) if timing.exists() else float("nan")
    t0 = time.process_time()
    masks = probabilistic_sparsification(f, list(densities), metric="mse", generator=0)
    seconds = time.process_time() - t0
    cache.mkdir(parents=True, exist_ok=True)
    for p, m in zip(files, masks):
        torch.save(m, p)
    timing.write_text(f"{seconds}\n")
    return masks, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path, default=HERE.parent / ".data" / "photos" / "lomiri")
    ap.add_argument("--crops", nargs="+", type=int, default=[128])
    ap.add_argument("--limit", type=int, default=8, help="the first N photos (sorted)")
    ap.add_argument("--densities", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    ap.add_argument("--variants", nargs="+", default=["0.3:8:0.7:full"], metavar="START:STAGES:SIGMA:SMOOTH")
    ap.add_argument("--ps-cache", type=Path, required=True, help="folder of PS's masks (written, then reused)")
    add_output_args(ap, "inpaint_densify_select", what="select-<crops>.md, .json, log.txt")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    photos = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:args.limit]
    rows = []
    for n in args.crops:
        for p in photos:
            f = centre_crop(load_grey(p), n).double()
            ps, ps_s = ps_masks(f, args.densities, args.ps_cache, f"{p.name}-{n}")
            for d, m_ps in zip(args.densities, ps):
                base = {"crop": n, "photo": p.name, "density": d}
                rows.append({**base, "method": "PS-mse", "mask_cpu_s": ps_s, **quality(f, m_ps.to(f.dtype))})
                for method in ["analytic", *args.variants]:
                    t0 = time.process_time()
                    m = analytic_mask(f, d, sigma=analytic_sigma(d)) if method == "analytic" else variant_mask(f, d, method)
                    rows.append({**base, "method": method, "mask_cpu_s": time.process_time() - t0, **quality(f, m)})
            print(f"{n} px {p.name}: done", flush=True)
    lines = [f"# densify_mask settings against PS ({args.folder.name}, centre crops)", "",
             "Means over the crops; MSE and MAE on the 0-255 scale; 'wins': crops where the row beats PS.", ""]
    for n in args.crops:
        lines += [f"## {n} x {n}", "",
                  "| density | method | mask CPU s | PSNR dB | MSE | MAE | SSIM | wins MSE | wins MAE | wins SSIM |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += summary([r for r in rows if r["crop"] == n], args.densities, ["PS-mse", "analytic", *args.variants],
                         "photo", ref="PS-mse") + [""]
    tag = "select-" + "-".join(map(str, args.crops))
    write_file(out / f"{tag}.json", json.dumps({"argv": sys.argv, "rows": rows}, indent=1) + "\n")
    write_file(out / f"{tag}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
