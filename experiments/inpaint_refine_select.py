"""Refinement settings against PS on selection crops, one crop at a time, interleaved, CPU time (issue 12).

For each crop (``--n`` 64 x 64 crops of the built-in TEST photos or of ``--image-dir``, crop seed ``--seed``;
never the evaluation's crops, seed 0) PS runs (``--ps-inline``, timed in this run; else its quality and time
come from the cache) and then every configuration of ``--configs``, one after the other, so that the load of
a shared machine falls on all of them alike. Each configuration is ``learned_mask(f, d, model=net,
refine=...)`` as ``pdeflow evaluate inpainting`` calls it (float32 input, tile shifts seeded ``seed * 1000 +
10 i``); ``"batched": true`` runs it with ``pdeflow.inpaint.refine.SINGLE_IMAGE_PATH = False`` (the tensor
search, for comparison). Quality: MAE (0-255) / SSIM of ``diffuse(f, mask, tol=1e-6).clamp(0, 1)``. PS: p = q =
0.02, metric MAE, as the evaluation; cached per set and density in ``--cache-dir``.

    OMP_NUM_THREADS=1 python experiments/inpaint_refine_select.py --set builtin --seed 1 --density 0.2 --ps-inline \\
        --configs '[{"refine": {"shifts": 2, "rounds": 18, "metric": "mae"}}]' --out DIR     # DIR/results.json
    ... --set nature --image-dir .data/photos/mate-nature ...

Historical. It chose the refinement settings against PS. Its results are kept for the record; it is not
expected to run against today's API. It still imported and parsed its options against today's API when it was
marked.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import pdeflow.inpaint.masks.refine as refine
from pdeflow.inpaint import diffuse, probabilistic_sparsification
from pdeflow.inpaint.evaluation import test_images
from pdeflow.inpaint.learned.masknet import learned_mask, load_masknet
from pdeflow.metrics import mae, ssim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import add_output_args, open_out, write_file  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="builtin", help="a label; 'builtin' uses the built-in TEST photos")
    ap.add_argument("--image-dir", default=None, help="photos of the set (default: the built-in TEST photos)")
    ap.add_argument("--seed", type=int, default=1, help="crop seed (not 0: the evaluation's)")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--density", type=float, default=0.2)
    ap.add_argument("--configs", required=True, help='JSON list of {"model": path|null, "refine": {...}|null, '
                                                     '"batched": bool}')
    ap.add_argument("--ps-inline", action="store_true", help="time PS on every crop in this run")
    ap.add_argument("--cache-dir", default="runs/refine_select")
    add_output_args(ap, "inpaint_refine_select", what="results.json: per-crop numbers")
    a = ap.parse_args(argv)
    if a.seed == 0:
        ap.error("--seed 0 gives the evaluation's crops: choose settings on other crops")
    out_dir = open_out(a, argv)
    torch.set_num_threads(1)
    d = a.density
    f_all, names = test_images(a.n, 64, seed=a.seed, image_dir=a.image_dir)
    T = time.process_time
    cache = Path(a.cache_dir) / f"ps_{a.set}_s{a.seed}_n{a.n}_{d:g}.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    ps = json.loads(cache.read_text()) if cache.is_file() else [None] * a.n
    configs = json.loads(a.configs)
    nets = {}
    for c in configs:
        m = c.get("model")
        if m not in nets:
            nets[m] = load_masknet(d if m is None else m, density=d)
            for _ in range(3):
                learned_mask(f_all[:1].float(), d, model=nets[m], refine={"shifts": 2, "rounds": 3, "generator": 0})
    rows = [[] for _ in configs]
    ps_t = []
    for i in range(a.n):
        f = f_all[i:i + 1].double()
        gen = a.seed * 1000 + 10 * i
        if ps[i] is None or a.ps_inline:
            c0 = T()
            m = probabilistic_sparsification(f, d, p=0.02, q=0.02, metric="mae", tol=1e-6, generator=gen,
                                             progress=False)
            t = T() - c0
            if ps[i] is None:
                u = diffuse(f, m, tol=1e-6).clamp(0, 1)
                ps[i] = {"mae255": 255 * float(mae(u, f)), "ssim": float(ssim(u, f)), "cpu_s": t}
            ps_t.append(t)
        else:
            ps_t.append(ps[i]["cpu_s"])
        for c, row in zip(configs, rows):
            refine.SINGLE_IMAGE_PATH = not c.get("batched", False)
            opts = None if c.get("refine") is None else {**c["refine"], "generator": gen}
            c0 = T()
            b = learned_mask(f.float(), d, model=nets[c.get("model")], refine=opts)
            t = T() - c0
            u = diffuse(f, b.double(), tol=1e-6).clamp(0, 1)
            row.append((255 * float(mae(u, f)), float(ssim(u, f)), t))
    refine.SINGLE_IMAGE_PATH = True
    if not cache.is_file():
        cache.write_text(json.dumps(ps))
    pm, pss, pt = (np.mean([x["mae255"] for x in ps]), np.mean([x["ssim"] for x in ps]), np.mean(ps_t))
    hdr = (f"[{a.set} seed {a.seed} n {a.n} d {d:g}] PS {pm:.4f} / {pss:.5f}  {1000 * pt:.0f} ms "
           f"({'timed in this run' if a.ps_inline else 'cached time'}); 100x budget {10 * pt:.1f} ms")
    print(hdr)
    out = {"header": hdr, "argv": argv, "ps": ps, "ps_t": ps_t, "rows": []}
    for c, row in zip(configs, rows):
        r = np.array(row)
        win = "WIN" if (r[:, 0].mean() < pm and r[:, 1].mean() > pss) else "   "
        ratio = pt / r[:, 2].mean()
        print(f"{win} {'100x' if ratio >= 100 else '    '} {json.dumps(c)}: {r[:, 0].mean():.4f} / "
              f"{r[:, 1].mean():.5f}  {1000 * r[:, 2].mean():.1f} ms  {ratio:.0f}x", flush=True)
        out["rows"].append({"config": c, "mae255": r[:, 0].tolist(), "ssim": r[:, 1].tolist(),
                            "cpu_s": r[:, 2].tolist()})
    write_file(out_dir / "results.json", json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
