"""What coding the codec's stored values as residuals of a prediction could save over its level code (issue 72, item 1).

Maintained. The files of ``pdeflow.codec.encode`` at each of ``--rates`` bpp (grey ``--size`` px images of the
held-out photos, ``pdeflow.evaluate.codec.photo_set``, and of the built-in TEST photos) are decoded to their mask
and level indices, and the values are coded again several ways, in bits per stored value:

* ``actual``: the codec's value code (:func:`pdeflow.codec.entropy.encode_values`), the range coder's bytes (the
  payload less the mask's words);
* ``levels``: the ideal code length (``sum(-log2 p)``, no range coder's overhead) of the same model, the level
  indices in Morton order under an adaptive histogram (counts 1, plus 4 per value seen, updated after batches
  of 16, 16, 32, ... 256 values, as the codec does);
* ``resid_<predictor>`` and ``resid_<predictor>_ctx``: the ideal code length of the residuals ``level -
  predicted level`` under the same adaptive histogram (over ``2 q - 1`` residuals, renormalised to those that
  keep the level in ``[0, q)``), without and with a context: the spread (largest less smallest level) of the
  ``--neighbours`` nearest decoded points, in 5 buckets (0, 1, 2-3, 4-7, 8 and more levels), one histogram each;
* ``resid_<predictor>_lap``: the same residuals under a discrete Laplacian whose scale is, per context of
  spread, the mean absolute residual coded so far (a parametric model: little to learn);
* ``levels_x_<predictor>``: the levels (not residuals) under the product of the adaptive histogram and that
  Laplacian around the predicted level: the prediction sharpens the levels' own distribution.

The prediction is one a decoder can reproduce: the points are ordered coarse to fine by a quadtree of the
lattice grid (a point's level is the largest aligned ``2^k x 2^k`` cell of which it is the first point in
Morton order; the coarsest levels merged until they hold ``--first`` points, which are coded as plain levels),
and every point of a level is predicted from the values of all coarser levels, dequantised, by

* ``diffusion``: homogeneous diffusion inpainting (``pdeflow.inpaint.inpaint``, float64, tolerance
  ``--tol``) of the decoded points, read at the new points;
* ``shepard``: the inverse-squared-distance mean of the ``--neighbours`` nearest decoded points.

Also the zero-order empirical entropies of the levels and of the diffusion residuals (a static model's floor,
no cost of learning it), the values' share of the file, and, with ``--equal-budget``, what the saved bits are
worth: each image is encoded again at ``bpp / (1 - s)``, ``s`` the share of the file that the best residual
code saves, and the PSNR (8-bit output) of both files compared.

    OMP_NUM_THREADS=1 python experiments/codec_value_prediction.py --photos .data/photos/mate-nature \\
        --equal-budget --out runs/benchmarks/codec_value_prediction --overwrite
    OMP_NUM_THREADS=1 python experiments/codec_value_prediction.py --smoke --out /tmp/cvp
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from _results import add_output_args, codec_sets, open_out, write_file  # experiments/_results.py

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / ".data" / "photos" / "mate-nature"
#: Weight of one observation in the adaptive histograms (the codec's).
STEP = 4
#: Spread buckets of the context (levels): 0, 1, 2-3, 4-7, 8+.
SPREAD_EDGES = np.array([1, 2, 4, 8])


def chunks(n: int):
    """The codec's batches of the value coder: 16, 16, 32, 64, 128, then 256 values."""
    i, size = 0, 16
    while i < n:
        yield slice(i, min(n, i + size))
        i += size
        if i >= 32:
            size = min(256, 2 * size)


def adaptive_bits(symbols: np.ndarray, nsym: int, lo=None, hi=None, ctx=None, nctx: int = 1) -> float:
    """Ideal code length of ``symbols`` in ``[0, nsym)`` under the codec's adaptive histogram, one per context,
    each symbol's probability renormalised to the allowed symbols ``[lo, hi]`` (default: all)."""
    n = len(symbols)
    lo = np.zeros(n, np.int64) if lo is None else lo
    hi = np.full(n, nsym - 1, np.int64) if hi is None else hi
    ctx = np.zeros(n, np.int64) if ctx is None else ctx
    table = np.ones((nctx, nsym))
    bits = 0.0
    for sl in chunks(n):
        t = table[ctx[sl]]
        c = np.concatenate([np.zeros((len(t), 1)), np.cumsum(t, axis=1)], axis=1)
        rows = np.arange(len(t))
        total = c[rows, hi[sl] + 1] - c[rows, lo[sl]]
        bits += float(-np.log2(t[rows, symbols[sl]] / total).sum())
        np.add.at(table, (ctx[sl], symbols[sl]), STEP)
    return bits


def laplace_bits(r: np.ndarray, lo: np.ndarray, hi: np.ndarray, ctx: np.ndarray, nctx: int) -> float:
    """Ideal code length of residuals ``r`` (allowed ``[lo, hi]``) under a discrete Laplacian ``exp(-|r| / b)``
    renormalised to the allowed range, ``b`` per context the mean absolute residual coded so far in it (a prior
    of 2 residuals of 2 levels), updated after each of the codec's batches."""
    total, count = np.full(nctx, 4.0), np.full(nctx, 2.0)
    span = np.arange(int(lo.min()), int(hi.max()) + 1) if len(r) else np.zeros(0, np.int64)
    bits = 0.0
    for sl in chunks(len(r)):
        b = (total / count)[ctx[sl]]
        logp = -np.abs(span)[None, :] / b[:, None]
        allowed = (span[None, :] >= lo[sl, None]) & (span[None, :] <= hi[sl, None])
        norm = np.log(np.where(allowed, np.exp(logp), 0.0).sum(1))
        bits += float(((np.abs(r[sl]) / b + norm) / np.log(2)).sum())
        np.add.at(total, ctx[sl], np.abs(r[sl]).astype(np.float64))
        np.add.at(count, ctx[sl], 1.0)
    return bits


def product_bits(idx: np.ndarray, q: int, pred: np.ndarray, ctx: np.ndarray, nctx: int) -> float:
    """Ideal code length of levels ``idx`` under the product of the codec's adaptive histogram and a discrete
    Laplacian ``exp(-|level - pred| / b)`` around the predicted level (``b`` as :func:`laplace_bits`, per
    context), renormalised over the ``q`` levels; the points without a prediction (``pred`` < 0) under the
    histogram alone."""
    hist = np.ones(q)
    total, count = np.full(nctx, 4.0), np.full(nctx, 2.0)
    lv = np.arange(q)[None, :]
    bits = 0.0
    for sl in chunks(len(idx)):
        b = (total / count)[ctx[sl]]
        has = pred[sl] >= 0
        t = hist[None, :] * np.where(has[:, None], np.exp(-np.abs(lv - pred[sl, None]) / b[:, None]), 1.0)
        rows = np.arange(len(t))
        bits += float(-np.log2(t[rows, idx[sl]] / t.sum(1)).sum())
        np.add.at(hist, idx[sl], STEP)
        r = np.abs(idx[sl] - pred[sl])[has].astype(np.float64)
        np.add.at(total, ctx[sl][has], r)
        np.add.at(count, ctx[sl][has], 1.0)
    return bits


def entropy_bits(symbols: np.ndarray) -> float:
    """Zero-order empirical entropy of ``symbols``, times their number."""
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def morton_codes(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    def spread(v):
        v = v.astype(np.uint64) & np.uint64(0xFFFF)
        for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v
    return (spread(y) << np.uint64(1)) | spread(x)


def hierarchy(cy: np.ndarray, cx: np.ndarray, first: int) -> np.ndarray:
    """The batch of each point (0 coarsest; points in Morton order): the quadtree levels of the module doc, the
    coarsest merged until batch 0 holds at least ``first`` points."""
    code = morton_codes(cy, cx).astype(np.int64)
    if len(code) > 1 and bool((np.diff(code) <= 0).any()):
        raise ValueError("points must be in Morton order")
    depth = int(max(int(cy.max()), int(cx.max()), 1)).bit_length()
    level = np.zeros(len(code), np.int64)      # the largest k with the point first in its 2^k cell
    for k in range(1, depth + 1):
        cell = code >> (2 * k)
        is_first = np.ones(len(code), bool)
        is_first[1:] = cell[1:] != cell[:-1]
        level = np.where(is_first, k, level)
    order = np.arange(depth, -1, -1)            # coarse to fine
    counts = np.array([(level == k).sum() for k in order])
    merged = int(np.searchsorted(np.cumsum(counts), min(first, len(code))))   # levels order[:merged+1] in batch 0
    batch = np.zeros(len(code), np.int64)
    for b, k in enumerate(order):
        batch[level == k] = max(0, b - merged)
    # renumber the batches that are not empty 0, 1, 2, ...
    _, batch = np.unique(batch, return_inverse=True)
    return batch


def predictions(values: np.ndarray, y: np.ndarray, x: np.ndarray, batch: np.ndarray, H: int, W: int,
                neighbours: int, tol: float) -> dict:
    """Per point: the diffusion and Shepard predictions from the coarser batches, and the spread of the
    ``neighbours`` nearest decoded values (NaN for batch 0)."""
    import torch
    from scipy.spatial import cKDTree

    from pdeflow.inpaint import inpaint
    K = len(values)
    out = {"diffusion": np.full(K, np.nan), "shepard": np.full(K, np.nan), "spread": np.full(K, np.nan)}
    for b in range(1, int(batch.max()) + 1):
        known, new = batch < b, np.nonzero(batch == b)[0]
        g = torch.zeros(1, H, W, dtype=torch.float64)
        m = torch.zeros(H, W, dtype=torch.float64)
        ky, kx = torch.from_numpy(y[known]), torch.from_numpy(x[known])
        m[ky, kx] = 1.0
        g[0, ky, kx] = torch.from_numpy(values[known])
        u = inpaint(g, m, method="diffusion", tol=tol)[0].numpy()
        out["diffusion"][new] = u[y[new], x[new]]
        k = min(neighbours, int(known.sum()))
        dist, near = cKDTree(np.stack([y[known], x[known]], 1)).query(np.stack([y[new], x[new]], 1), k=k)
        dist, near = dist.reshape(len(new), k), near.reshape(len(new), k)
        kv = values[known][near]
        w = 1.0 / np.maximum(dist, 1e-12) ** 2
        out["shepard"][new] = (w * kv).sum(1) / w.sum(1)
        out["spread"][new] = kv.max(1) - kv.min(1)
    return out


def value_codes(idx: np.ndarray, q: int, lo_f: float, step: float, pred: dict, batch: np.ndarray) -> dict:
    """Bits of the level indices ``idx`` (Morton order) coded as levels and as residuals of each prediction
    (module doc); the residual codes in the decoder's order, batch by batch (Morton order within a batch)."""
    res = {"levels": adaptive_bits(idx, q), "levels_entropy": entropy_bits(idx)}
    order = np.argsort(batch, kind="stable")
    idx, batch = idx[order], batch[order]
    pred = {k: v[order] for k, v in pred.items()}
    plain = batch == 0
    spread_levels = np.rint(np.nan_to_num(pred["spread"]) / step).astype(np.int64)
    ctx = np.searchsorted(SPREAD_EDGES, spread_levels, side="right")
    nctx = len(SPREAD_EDGES) + 1
    first = adaptive_bits(idx[plain], q)
    for name in ("diffusion", "shepard"):
        p = np.clip(np.rint((np.nan_to_num(pred[name]) - lo_f) / step), 0, q - 1).astype(np.int64)
        r = idx - p
        sym = r[~plain] + q - 1
        lo, hi = q - 1 - p[~plain], 2 * (q - 1) - p[~plain]
        res[f"resid_{name}"] = first + adaptive_bits(sym, 2 * q - 1, lo, hi)
        res[f"resid_{name}_ctx"] = first + adaptive_bits(sym, 2 * q - 1, lo, hi, ctx[~plain], nctx)
        res[f"resid_{name}_lap"] = first + laplace_bits(r[~plain], -p[~plain], q - 1 - p[~plain], ctx[~plain], nctx)
        res[f"levels_x_{name}"] = product_bits(idx, q, np.where(plain, -1, p), ctx, nctx)
        if name == "diffusion":
            res["resid_entropy"] = entropy_bits(idx[plain]) + entropy_bits(r[~plain])
            res["mean_abs_resid"] = float(np.abs(r[~plain]).mean()) if (~plain).any() else 0.0
    return res


def psnr8(data: bytes, f) -> float:
    import torch

    from pdeflow.codec import decode
    from pdeflow.metrics import psnr
    dec = torch.round(decode(data).double().clamp(0, 1) * 255) / 255
    return float(psnr(dec, f.double(), data_range=1.0))


CODES = ("levels", "resid_diffusion", "resid_diffusion_ctx", "resid_diffusion_lap", "levels_x_diffusion",
         "resid_shepard", "resid_shepard_ctx", "resid_shepard_lap", "levels_x_shepard")


def summarise(rows: list, set_names: list, rates: list) -> list:
    """Per set and rate: bits per value of each code (weighted by the values), the values' share of the file, the
    share the best code of each file saves, and, where the rows have PSNRs, what that is worth: measured by the
    second encode (``gain_dB``) and by the set's own local slope of PSNR against log2 rate (``slope_dB``)."""
    summary = []
    mean_psnr = {}
    for set_name in set_names:
        for bpp in rates:
            sel = [r for r in rows if r["set"] == set_name and r["bpp"] == bpp]
            if sel and all("psnr" in r for r in sel):
                mean_psnr[set_name, bpp] = sum(r["psnr"] for r in sel) / len(sel)
    for set_name in set_names:
        for i, bpp in enumerate(rates):
            sel = [r for r in rows if r["set"] == set_name and r["bpp"] == bpp]
            if not sel:
                continue
            K = sum(r["known"] for r in sel)

            def per_value(key):
                return sum(r[key] * r["known"] for r in sel) / K
            levels = per_value("levels")
            best = min(CODES[1:], key=per_value)
            saved = sum(r["saved_share"] for r in sel) / len(sel)
            s = {"set": set_name, "bpp": bpp, "images": len(sel), "mean_known": round(K / len(sel)),
                 "mean_q": round(sum(r["q"] for r in sel) / len(sel)),
                 "actual": round(per_value("actual"), 2), "levels": round(levels, 2),
                 **{c.replace("resid_", ""): round(per_value(c), 2) for c in CODES[1:]},
                 "levels_H0": round(per_value("levels_entropy"), 2),
                 "diffusion_H0": round(per_value("resid_entropy"), 2),
                 "best_below_levels_%": round(100 * (1 - per_value(best) / levels), 1),
                 "value_share_%": round(100 * sum(r["value_share"] for r in sel) / len(sel), 1),
                 "file_saved_%": round(100 * saved, 1)}
            if all("psnr_gain_db" in r for r in sel):
                s["gain_dB"] = round(sum(r["psnr_gain_db"] for r in sel) / len(sel), 2)
            near = [r for r in (rates[max(i - 1, 0)], rates[min(i + 1, len(rates) - 1)]) if (set_name, r) in mean_psnr]
            if len(near) == 2 and near[0] != near[1]:
                slope = ((mean_psnr[set_name, near[1]] - mean_psnr[set_name, near[0]])
                         / np.log2(near[1] / near[0]))
                s["slope_dB_per_doubling"] = round(float(slope), 2)
                s["slope_dB"] = round(float(slope * -np.log2(1 - saved)), 3) + 0.0
            summary.append(s)
    return summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_args(ap, "codec_value_prediction", what="values.json, values.md")
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None, help="images per set, at most")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    ap.add_argument("--first", type=int, default=16, help="points of the first batch, coded as plain levels")
    ap.add_argument("--neighbours", type=int, default=4)
    ap.add_argument("--tol", type=float, default=1e-4, help="the diffusion prediction's solver tolerance")
    ap.add_argument("--no-builtin", action="store_true", help="the held-out photos only")
    ap.add_argument("--equal-budget", action="store_true",
                    help="encode again at the rate the saved bits would buy and compare the PSNR")
    ap.add_argument("--reuse", type=Path, default=None, help="the values.json of an earlier run: its tables again")
    ap.add_argument("--smoke", action="store_true", help="one small image per set, one rate: seconds")
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.limit, args.rates = 64, 1, [0.3]
    out = open_out(args, argv)
    if args.reuse is not None:
        old = json.loads(args.reuse.read_text())
        rows = old["rows"]
        names = list(dict.fromkeys(r["set"] for r in rows))
        rates = sorted({r["bpp"] for r in rows})
        _write(out, old["settings"], rows, summarise(rows, names, rates))
        return

    import torch
    torch.set_num_threads(1)
    from pdeflow.codec import encode
    from pdeflow.codec.decoder import level_values
    from pdeflow.codec.entropy import RangeReader, RangeWriter, decode_mask, decode_values, encode_mask
    from pdeflow.codec.format import VALUE_UNIT, read_header

    sets = codec_sets(args.photos, args.size, args.limit, builtin=not args.no_builtin)
    rows = []
    for set_name, images in sets.items():
        for name, f in images.items():
            H, W = f.shape[-2:]
            for bpp in args.rates:
                data = encode(f, bpp=bpp, split=1.0)          # the inpainting layer alone
                h, payload = read_header(data)
                reader = RangeReader(payload)
                cy, cx = decode_mask(reader, *h.grid, h.known)
                idx = decode_values(reader, h.q[0], h.known)
                grid = np.zeros(h.grid, bool)
                grid[cy, cx] = True
                w = RangeWriter()
                encode_mask(w, grid)
                K, q = h.known, h.q[0]
                lo_f, hi_f = h.lo[0] / VALUE_UNIT, h.hi[0] / VALUE_UNIT
                step = (hi_f - lo_f) / (q - 1)
                t0 = time.process_time()
                batch = hierarchy(cy, cx, args.first)
                values = level_values(idx, q, h.lo[0], h.hi[0])
                pred = predictions(values, cy * h.lattice, cx * h.lattice, batch, H, W, args.neighbours, args.tol)
                codes = value_codes(idx, q, lo_f, step, pred, batch)
                cpu = time.process_time() - t0
                value_bytes = len(payload) - len(w.words())
                row = {"set": set_name, "image": name, "bpp": bpp, "bytes": len(data), "known": K, "q": q,
                       "lattice": h.lattice, "batches": int(batch.max()) + 1, "actual": 8 * value_bytes / K,
                       **{k: v / K for k, v in codes.items() if k != "mean_abs_resid"},
                       "mean_abs_resid": codes["mean_abs_resid"], "value_share": value_bytes / len(data),
                       "predict_cpu_s": cpu}
                best = min(row[c] for c in CODES[1:])
                row["saved_share"] = max(0.0, (row["levels"] - best) * K / (8 * len(data)))
                if args.equal_budget:
                    row["psnr"] = psnr8(data, f)
                    if row["saved_share"] > 0:
                        more = encode(f, bpp=bpp / (1 - row["saved_share"]), split=1.0)
                        row["psnr_gain_db"] = psnr8(more, f) - row["psnr"]
                    else:
                        row["psnr_gain_db"] = 0.0
                rows.append(row)
                print(set_name, name, bpp, K, q, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)},
                      flush=True)
    summary = summarise(rows, list(sets), args.rates)
    _write(out, {k: v for k, v in vars(args).items() if k in ("size", "first", "neighbours", "tol")}, rows, summary)


def _write(out: Path, settings: dict, rows: list, summary: list) -> None:
    write_file(out / "values.json", json.dumps({"settings": settings, "rows": rows, "summary": summary}, indent=1))
    cols = list(dict.fromkeys(c for r in summary for c in r))
    table = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    table += "".join("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |\n" for r in summary)
    write_file(out / "values.md", "## Value codes, bits per stored value\n\n" + table)


if __name__ == "__main__":
    main()
