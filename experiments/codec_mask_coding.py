"""What a context-adaptive coder of the codec's masks could save over its k-d tree code (issue 72, item 2).

Maintained. The codec's masks (``pdeflow.codec.encode`` at each of ``--rates`` bpp, grey ``--size`` px images of
the held-out photos, ``pdeflow.evaluate.codec.photo_set``, and of the built-in TEST photos) are coded four ways,
in bits per known pixel:

* ``kd``: the codec's k-d tree code (``pdeflow.codec.entropy.encode_mask``: the range coder's bytes);
* ``uniform``: ``log2 binom(N, K)`` on the lattice's ``N`` points, the best code that knows only ``N`` and ``K``;
* ``context``: the ideal code length (``sum(-log2 p)``, no range coder's overhead) of a causal, adaptive binary
  coder of the lattice's occupancy, row by row as a vectorised coder would run (each row in two half-rows, even
  then odd columns): the probability is the remaining density ``(K - coded points) / (cells left)`` times an
  adaptive ratio per context (observed over expected points, both starting at ``--prior``), the context the
  relative density of points in the ``--window`` rows above within ``--window`` columns either side (7
  buckets), and, with ``--near``, the points next to the cell already coded (12 more cases);
* ``oracle``: an unreachable reference: each cell coded with the density of the other cells of its 11 x 11
  window (both sides, so not decodable, and free of any cost for the density): how far any coder that models
  the local density of points could go.

Also the mask's share of the file. Without the held-out photos (no ``make photos``), the built-in TEST photos alone.

    OMP_NUM_THREADS=1 python experiments/codec_mask_coding.py --out runs/benchmarks/codec_mask_coding --overwrite
    OMP_NUM_THREADS=1 python experiments/codec_mask_coding.py --smoke --out /tmp/cmc
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from _results import add_output_args, codec_sets, open_out, write_file  # experiments/_results.py

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / ".data" / "photos" / "mate-nature"


def _lbinom(n: int, k: int) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def context_bits(grid: np.ndarray, window: int, prior: float, near: bool) -> float:
    """Ideal code length of the causal adaptive occupancy coder (module doc) for the lattice mask ``grid``."""
    gh, gw = grid.shape
    g = grid.astype(np.int64)
    K = int(g.sum())
    left, cells, density = float(K), float(gh * gw), K / (gh * gw)
    edges = np.array([0.25, 0.5, 0.8, 1.25, 2.0, 3.0])
    nctx = 12 * (len(edges) + 1)
    observed, expected = np.full(nctx, prior), np.full(nctx, prior)
    cols_all = np.arange(gw)
    hi_col, lo_col = np.minimum(cols_all + window + 1, gw), np.maximum(cols_all - window, 0)
    bits = 0.0
    for i in range(gh):
        top = max(0, i - window)
        above = np.concatenate([[0], np.cumsum(g[top:i].sum(0))]) if i > 0 else np.zeros(gw + 1, np.int64)
        area = (hi_col - lo_col) * (i - top)
        count = above[hi_col] - above[lo_col]
        relative = np.where(area > 0, (count + 2 * density) / (area * density + 2), 1.0)
        bucket = np.searchsorted(edges, relative)
        up = g[i - 1] if i > 0 else np.zeros(gw, np.int64)
        up2 = g[i - 2] if i > 1 else np.zeros(gw, np.int64)
        above_near = np.minimum(up + np.r_[0, up[:-1]] + np.r_[up[1:], 0] + up2, 2) if near else 0 * up
        row = g[i]
        for parity in (0, 1):
            cols = cols_all[parity::2]
            side = np.full(len(cols), 3)
            if parity and near:
                side = np.minimum(row[cols - 1] + np.where(cols + 1 < gw, row[np.minimum(cols + 1, gw - 1)], 0), 2)
            ctx = (above_near[cols] * 4 + side) * (len(edges) + 1) + bucket[cols]
            p_global = left / cells
            p = np.clip(p_global * observed[ctx] / expected[ctx], 1e-5, 1 - 1e-3)
            s = row[cols]
            bits += float(-np.log2(np.where(s == 1, p, 1 - p)).sum())
            np.add.at(observed, ctx, s.astype(np.float64))
            np.add.at(expected, ctx, p_global)
            left -= int(s.sum())
            cells -= len(cols)
    return bits


def oracle_bits(grid: np.ndarray, width: int = 11) -> float:
    """The unreachable reference (module doc)."""
    from scipy.ndimage import uniform_filter
    g = grid.astype(np.float64)
    others = uniform_filter(g, width, mode="constant") * width * width - g
    n = uniform_filter(np.ones_like(g), width, mode="constant") * width * width - 1
    p = np.clip((others + 0.5) / (n + 1), 1e-4, 1 - 1e-4)
    return float(-(g * np.log2(p) + (1 - g) * np.log2(1 - p)).sum())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_args(ap, "codec_mask_coding", what="mask.json, mask.md")
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None, help="images per set, at most")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--prior", type=float, default=4.0)
    ap.add_argument("--near", action="store_true", help="add the coded neighbours to the context")
    ap.add_argument("--smoke", action="store_true", help="two small images, one rate: seconds")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.limit, args.rates = 64, 1, [0.3]
    out = open_out(args, argv)

    import torch
    torch.set_num_threads(1)
    from pdeflow.codec import encode
    from pdeflow.codec.entropy import RangeReader, RangeWriter, decode_mask, encode_mask
    from pdeflow.codec.format import read_header

    sets = codec_sets(args.photos, args.size, args.limit)
    rows = []
    for set_name, images in sets.items():
        for name, f in images.items():
            for bpp in args.rates:
                data = encode(f, bpp=bpp, split=1.0)          # the inpainting layer alone
                h, payload = read_header(data)
                y, x = decode_mask(RangeReader(payload), *h.grid, h.known)
                grid = np.zeros(h.grid, bool)
                grid[y, x] = True
                w = RangeWriter()
                encode_mask(w, grid)
                K = h.known
                rows.append({"set": set_name, "image": name, "bpp": bpp, "lattice": h.lattice, "known": K,
                             "kd": 8 * len(w.words()) / K, "uniform": _lbinom(grid.size, K) / K,
                             "context": context_bits(grid, args.window, args.prior, args.near) / K,
                             "oracle": oracle_bits(grid) / K, "mask_share": len(w.words()) / len(data)})
                print(set_name, name, bpp, {k: round(v, 3) for k, v in rows[-1].items() if isinstance(v, float)},
                      flush=True)
    summary = []
    for set_name in sets:
        for bpp in args.rates:
            sel = [r for r in rows if r["set"] == set_name and r["bpp"] == bpp]
            K = sum(r["known"] for r in sel)

            def per_point(key):
                return sum(r[key] * r["known"] for r in sel) / K
            kd = per_point("kd")
            summary.append({"set": set_name, "bpp": bpp, "images": len(sel), "mean_known": round(K / len(sel)),
                            **{f"{k}_bits_per_point": round(per_point(k), 2) for k in ("kd", "uniform", "context",
                                                                                        "oracle")},
                            "context_below_kd_%": round(100 * (1 - per_point("context") / kd), 1),
                            "oracle_below_kd_%": round(100 * (1 - per_point("oracle") / kd), 1),
                            "mask_share_of_file_%": round(100 * sum(r["mask_share"] for r in sel) / len(sel), 1)})
    write_file(out / "mask.json", json.dumps({"settings": {"window": args.window, "prior": args.prior,
                                                           "near": args.near, "size": args.size},
                                              "rows": rows, "summary": summary}, indent=1))
    cols = list(summary[0])
    table = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    table += "".join("| " + " | ".join(str(r[c]) for c in cols) + " |\n" for r in summary)
    write_file(out / "mask.md", "## Mask codes, bits per known pixel\n\n" + table)


if __name__ == "__main__":
    main()
