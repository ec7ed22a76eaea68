"""TVflowNET on large images: tiled against untiled, and the memory of a tiled 4K flow.

Each run in a fresh subprocess on one thread (peak memory = the process's ``ru_maxrss``, with the
part above the process before the call: Python, torch, the model and the image):

* ``--sizes`` (default 1024): a grey photo (scikit-image's ``astronaut``, bilinearly resized to
  N x N), float32, the shipped default model, ``tvflownet.flow`` and ``tvflownet.tiled_flow``
  (``--tile``) at ``--times``; the largest difference of ``u`` and of ``u_t`` between the two
  (intensities in [0, 1]), CPU seconds and peak memory of each;
* ``--big`` (default 3840x2160): ``tiled_flow`` alone on the photo resized to that size, its CPU
  seconds and peak memory (the untiled network would need its activations for the whole image);
  ``--big-kinds tiled reference``: also the reference ``pdeflow.tv.tv_flow`` (default accuracy) on it.

    OMP_NUM_THREADS=1 python benchmarks/tvflownet_tiled.py --out benchmarks/results/tvflownet_tiled --overwrite
    python benchmarks/tvflownet_tiled.py --sizes 256 --big none --out /tmp/tiled          # quick
    OMP_NUM_THREADS=1 python benchmarks/tvflownet_tiled.py --sizes --big-kinds reference --out DIR  # tv_flow at 4K

Writes ``tiled.json`` and ``tiled.md`` to ``--out``.

Historical. It chose tiling for TVflowNET on large images (a 4K flow). Its results are kept for the record; it
is not expected to run against today's API. It still imported and parsed its options against today's API when
it was marked.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from _results import add_output_args, maxrss_mb, open_out, run_child, write_file  # benchmarks/_results.py


def _photo(H, W):
    import numpy as np
    import skimage.data
    import torch
    import torch.nn.functional as F

    img = skimage.data.astronaut().astype(np.float32).mean(-1) / 255.0
    f = F.interpolate(torch.from_numpy(img)[None, None], size=(H, W), mode="bilinear", align_corners=False)
    return f[0, 0].clamp(0, 1).contiguous()



def child(kind, H, W, times, tile, symmetry, save):
    import torch
    torch.set_num_threads(1)
    from pdeflow.tvflownet import flow, load, tiled_flow

    model = load()
    u0 = _photo(H, W)
    base = maxrss_mb()
    t0 = time.process_time()
    if kind == "tiled":
        u, ut = tiled_flow(u0, times, model, tile=tile, symmetry=symmetry, return_ut=True)
    elif kind == "reference":
        from pdeflow.tv import tv_flow
        u, ut = tv_flow(u0, times, return_ut=True)
    else:
        u, ut = flow(u0, times, model, symmetry=symmetry, return_ut=True, batch_size=1)
    dt = time.process_time() - t0
    if save:
        torch.save({"u": u, "ut": ut}, save)
    return {"cpu_s": dt, "peak_mb": maxrss_mb(), "above_base_mb": maxrss_mb() - base}



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="*", type=int, default=[1024])
    ap.add_argument("--big", default="3840x2160", help="WxH of the tiled-only run, or 'none'")
    ap.add_argument("--big-kinds", nargs="+", choices=("tiled", "reference"), default=["tiled"],
                    help="what runs at --big: the tiled network and/or the reference tv_flow (default tiled)")
    ap.add_argument("--times", nargs="+", type=float, default=[0.02])
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--symmetry", default="transpose", help="flow's symmetry ('none' for None)")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    add_output_args(ap, "tvflownet_tiled", what="tiled.json, tiled.md")
    args = ap.parse_args(argv)
    sym = None if args.symmetry == "none" else args.symmetry
    if args.child:
        c = json.loads(args.child)
        print(json.dumps(child(c["kind"], c["H"], c["W"], c["times"], c["tile"], sym, c.get("save"))))
        return
    out = open_out(args, argv)
    rows = []
    import torch
    for n in args.sizes:
        files = {k: str(Path(args.out) / f"_{k}.pt") for k in ("tiled", "untiled")}
        res = {k: run_child(__file__, [json.dumps({"kind": k, "H": n, "W": n, "times": args.times, "tile": args.tile, "save": files[k]})],
                            args.timeout) for k in ("untiled", "tiled")}
        row = {"size": f"{n}x{n}", "load_before": os.getloadavg(), **res}
        if all("error" not in r for r in res.values()):
            a, b = torch.load(files["tiled"]), torch.load(files["untiled"])
            row["max_diff_u"] = float((a["u"] - b["u"]).abs().max())
            row["max_diff_ut"] = float((a["ut"] - b["ut"]).abs().max())
            row["max_abs_ut"] = float(b["ut"].abs().max())
        for f in files.values():
            if Path(f).exists():
                Path(f).unlink()
        rows.append(row)
        print(json.dumps(row), flush=True)
    big = None
    if args.big != "none":
        W, H = (int(v) for v in args.big.lower().split("x"))
        big = {"size": args.big, "load_before": os.getloadavg()}
        for kind in args.big_kinds:
            big[kind] = run_child(__file__, [json.dumps({"kind": kind, "H": H, "W": W, "times": args.times,
                                                         "tile": args.tile})], args.timeout)
        print(json.dumps(big), flush=True)
    meta = {"times": args.times, "tile": args.tile, "symmetry": args.symmetry, "threads": 1, "dtype": "float32",
            "model": "shipped default", "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    write_file(out / "tiled.json", json.dumps({"meta": meta, "rows": rows, "big": big}, indent=1) + "\n")
    lines = ["# TVflowNET tiled vs untiled (shipped default model, float32, one thread)", "",
             f"Times {args.times}, tile {args.tile} (overlap: the model's receptive radius), symmetry "
             f"{args.symmetry}; CPU seconds; peak = process `ru_maxrss`, 'above' = above the process before the "
             "call (Python, torch, model, image).", "",
             "| size | untiled CPU s | untiled peak MB (above) | tiled CPU s | tiled peak MB (above) "
             "| max abs diff u | max abs diff u_t (max abs u_t) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        u, t = r["untiled"], r["tiled"]
        if "error" in u or "error" in t:
            lines.append(f"| {r['size']} | {u.get('error', '')} | | {t.get('error', '')} | | | |")
            continue
        lines.append(f"| {r['size']} | {u['cpu_s']:.1f} | {u['peak_mb']:.0f} ({u['above_base_mb']:.0f}) | "
                     f"{t['cpu_s']:.1f} | {t['peak_mb']:.0f} ({t['above_base_mb']:.0f}) | {r['max_diff_u']:.1e} | "
                     f"{r['max_diff_ut']:.1e} ({r['max_abs_ut']:.2g}) |")
    for kind, what in (("tiled", "Tiled only"), ("reference", "The reference tv_flow (default accuracy)")):
        t = (big or {}).get(kind)
        if t is not None:
            lines += ["", f"{what}, {big['size']}: " + (f"{t['cpu_s']:.1f} CPU s, peak {t['peak_mb']:.0f} MB "
                                                        f"({t['above_base_mb']:.0f} above the process before the call)"
                                                        if "error" not in t else t["error"])]
    lines += ["", f"`uptime` at the end: {meta['uptime']}", ""]
    write_file(out / "tiled.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
