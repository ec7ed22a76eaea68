"""The codec's core: tonal optimisation, the mask code, speed and memory, and the decoder against damaged files.

Maintained. It measures what issue 64 asks of the codec's core (pdeflow.codec, pdeflow.inpaint.tonal) and
runs at a smoke size in the test suite (``--smoke``).

Parts (``--parts``, default all):

* ``tonal``: held-out photos (``--folder``, default ``.data/photos/mate-nature``), grey centre crops of
  ``--crop`` px; for each density of ``--densities`` a mask by ``densify_mask``; PSNR of homogeneous diffusion
  inpainting from the image's own values, from the optimised values (``optimise_tonal``, unquantised), and from
  optimised values on the coded levels (``q`` of ``--levels`` equally spaced on the range the optimum spans):
  rounded, and quantisation-aware (``optimise_tonal(levels=...)``); and on the codec's own levels (one
  automatic step apart, ``pdeflow.codec.encoder.STEP_RATIO``), rounded. Gain = tonal - original; loss =
  unquantised - quantised.
* ``rate``: the same crops encoded at each of ``--rates`` bpp (``pdeflow.codec.encode``): PSNR, known pixels,
  the mask code's bits per known pixel against the uniform code ``log2 binom(N, K) / K`` (``N = H W``; and
  against the uniform code on the lattice's points, ``N / s^2``), the values' bits per known pixel.
* ``speed``: encode and decode at 0.1 bpp of the first photo resized to each of ``--sizes`` (256 px, 1 Mpx,
  4K), with the default split and the inpainting layer alone (``--speed-splits``), each in a fresh
  single-threaded process: CPU time, peak resident memory, and the layers the file holds.
* ``memory``: the decoder's peak resident memory above the process's level after a small decode, as a multiple
  of the decoded image (float32, ``C H W`` 4 bytes), for each of ``--memory-sizes`` (``HxWxC`` or
  ``HxWxC:OPERATOR``, default homogeneous diffusion), each in a fresh single-threaded process. The files are valid
  (the exact coding of a random mask of 1 % of the pixels and random levels), made without the encoder so that
  large sizes take seconds.
* ``lattice``: the automatic lattice against both forced grids: the held-out photos as the RD evaluation takes
  them (``pdeflow.evaluate.codec.photo_set``, grey, ``--crop`` px) at each of ``--lattice-rates`` bpp, encoded
  with the automatic lattice, ``lattice=1`` and ``lattice=2``: PSNR on 8-bit levels, the lattice chosen, and
  the automatic encode's CPU time.
* ``fuzz``: ``--fuzz`` damaged files made from encoded crops (truncations, bit flips, random bytes, random
  bytes after a valid magic, and crafted files: a valid header and CRC over a random payload) decoded one by
  one: refusals (CodecError), crafted files that decode to an image, crashes (any other exception), hangs
  (a decode over ``--hang`` seconds), the slowest decode, and the peak memory of the fuzzing process above
  its level after one valid decode.
* ``worst``: the slowest valid files of at most ``--worst-bytes`` bytes (default 1000): for each operator the
  largest square image such a file may claim (:func:`pdeflow.codec.operators.least_bytes`), the finest solver
  tolerance it may ask for, each parameter at its least and largest stored value, the most points that fit spread over the
  image or in one corner (a large empty region), 16 or 65535 levels, grey or colour, each decoded twice in a
  fresh process: the shorter CPU time and the peak memory above the process's level as a multiple of the decoded image (float32).

Held-out photos are only measured here; the codec's settings were chosen on the selection photos
(``.data/photos/opencv``, ``.data/photos/lomiri``).

    OMP_NUM_THREADS=1 python benchmarks/codec_core.py --out runs/benchmarks/codec_core --overwrite
    OMP_NUM_THREADS=1 python benchmarks/codec_core.py --smoke --out /tmp/cc

Writes ``<part>.json`` and ``<part>.md`` for each part, ``command.txt`` and ``log.txt``.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import struct
import sys
import time
import zlib
from pathlib import Path

from _results import add_output_args, open_out, run_child, timed, write_file  # benchmarks/_results.py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _torch():
    import torch
    torch.set_num_threads(1)
    return torch


BUILTIN = "builtin:"


def _photos(folder: Path, n: int) -> list[str]:
    """The first ``n`` photos of ``folder`` (sorted) as paths, or, when the folder is missing (no ``make photos``
    yet), the built-in TEST photos as ``builtin:NAME``."""
    if folder.is_dir():
        files = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    else:
        print(f"{folder} not found: the built-in TEST photos instead (run `make photos`)", flush=True)
        from pdeflow.datasets import builtin_pool
        files = [BUILTIN + k for k in builtin_pool("test", grey=True, kind="photo")]
    return files[:n]


def _name(photo: str) -> str:
    return photo[len(BUILTIN):] if photo.startswith(BUILTIN) else Path(photo).stem


def _load(photo: str):
    """Grey (H, W) float64 image of a photo from :func:`_photos`."""
    if photo.startswith(BUILTIN):
        from pdeflow.datasets import builtin_pool
        return builtin_pool("test", grey=True, kind="photo")[photo[len(BUILTIN):]][0].double()
    from pdeflow.io import read_image
    return read_image(Path(photo), grey=True)[0].double()


def _crop(photo: str, size: int):
    im = _load(photo)
    H, W = im.shape
    s = min(size, H, W)
    return im[(H - s) // 2:(H - s) // 2 + s, (W - s) // 2:(W - s) // 2 + s].contiguous()


def _psnr(u, f) -> float:
    mse = float((u.double().clamp(0, 1) - f).square().mean())
    return 10 * math.log10(1 / max(mse, 1e-20))


def _md(rows, cols) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |\n" for r in rows)


def part_tonal(args, out: Path):
    torch = _torch()
    from pdeflow.codec.encoder import MAX_LEVELS, STEP_RATIO
    from pdeflow.inpaint import densify_mask, inpaint_diffusion
    from pdeflow.inpaint.tonal import optimise_tonal, quantise_levels
    rows = []
    for path in _photos(args.folder, args.photos):
        f = _crop(path, args.crop)
        for d in args.densities:
            m = densify_mask(f, d)
            base = _psnr(inpaint_diffusion(f, m), f)
            g, t_tonal = timed(lambda: optimise_tonal(f, m))
            opt = _psnr(inpaint_diffusion(g, m), f)
            on = g[m > 0]
            row = {"photo": _name(path), "density": d, "original": round(base, 2), "tonal": round(opt, 2),
                   "gain": round(opt - base, 2), "tonal_cpu_s": round(t_tonal, 2)}
            # the codec's own levels: one step apart, the step from the inpainting's error (STEP_RATIO)
            step = math.sqrt(12 * STEP_RATIO * float((inpaint_diffusion(f, m) - f).square().mean()))
            q_auto = int(min(MAX_LEVELS, max(4, round(float(on.max() - on.min()) / step) + 1)))
            levels = torch.linspace(float(on.min()), float(on.max()), q_auto, dtype=f.dtype)
            auto = _psnr(inpaint_diffusion(torch.where(m > 0, quantise_levels(g, levels), g), m), f)
            row.update({"auto_q": q_auto, "auto_rounded": round(auto, 2), "auto_loss": round(opt - auto, 2)})
            for q in args.levels:
                levels = torch.linspace(float(on.min()), float(on.max()), q, dtype=f.dtype)
                rounded = torch.where(m > 0, quantise_levels(g, levels), g)
                aware = optimise_tonal(f, m, levels=levels)
                row[f"q{q}_rounded"] = round(_psnr(inpaint_diffusion(rounded, m), f), 2)
                row[f"q{q}_aware"] = round(_psnr(inpaint_diffusion(aware, m), f), 2)
                row[f"q{q}_loss"] = round(opt - max(row[f"q{q}_rounded"], row[f"q{q}_aware"]), 2)
            rows.append(row)
            print(row, flush=True)
    summary = []
    for d in args.densities:
        sel = [r for r in rows if r["density"] == d]
        s = {"density": d, "photos": len(sel), "mean_gain_dB": round(sum(r["gain"] for r in sel) / len(sel), 2),
             "min_gain_dB": round(min(r["gain"] for r in sel), 2),
             "auto_mean_q": round(sum(r["auto_q"] for r in sel) / len(sel), 1),
             "auto_mean_loss_dB": round(sum(r["auto_loss"] for r in sel) / len(sel), 2)}
        for q in args.levels:
            s[f"q{q}_mean_loss_dB"] = round(sum(r[f"q{q}_loss"] for r in sel) / len(sel), 2)
            s[f"q{q}_aware_minus_rounded_dB"] = round(
                sum(r[f"q{q}_aware"] - r[f"q{q}_rounded"] for r in sel) / len(sel), 3)
        summary.append(s)
    write_file(out / "tonal.json", json.dumps({"rows": rows, "summary": summary}, indent=1))
    write_file(out / "tonal.md", "## Tonal gain and quantisation loss per density\n\n" + _md(summary, list(summary[0]))
               + "\n### Per photo\n\n" + _md(rows, list(rows[0])))


def _lbinom(n: int, k: int) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def part_rate(args, out: Path):
    _torch()
    from pdeflow.codec import encode
    from pdeflow.codec.format import read_header
    rows = []
    for path in _photos(args.folder, args.photos):
        f = _crop(path, args.crop)
        N = f.numel()
        for bpp in args.rates:
            r, cpu = timed(lambda: encode(f, bpp=bpp, split=1.0, full_output=True))   # the inpainting layer's bits
            h = read_header(r.data)[0]
            gh, gw = h.grid
            K = r.known
            rows.append({"photo": _name(path), "bpp": bpp, "bytes": len(r.data), "psnr": round(_psnr(r.reconstruction[0], f), 2),
                         "known": K, "lattice": h.lattice,
                         "mask_bits_per_known": round(8 * r.mask_bytes / K, 3),
                         "uniform_bits_per_known": round(_lbinom(N, K) / K, 3),
                         "uniform_lattice_bits_per_known": round(_lbinom(gh * gw, K) / K, 3),
                         "value_bits_per_known": round(8 * r.value_bytes / K, 3), "encode_cpu_s": round(cpu, 1)})
            print(rows[-1], flush=True)
    summary = []
    for bpp in args.rates:
        sel = [r for r in rows if r["bpp"] == bpp]
        mb = sum(r["mask_bits_per_known"] for r in sel) / len(sel)
        ub = sum(r["uniform_bits_per_known"] for r in sel) / len(sel)
        summary.append({"bpp": bpp, "photos": len(sel), "mean_psnr": round(sum(r["psnr"] for r in sel) / len(sel), 2),
                        "mean_known": round(sum(r["known"] for r in sel) / len(sel)),
                        "mask_bits_per_known": round(mb, 2), "uniform_bits_per_known": round(ub, 2),
                        "mask_saving_vs_uniform_%": round(100 * (1 - mb / ub), 1),
                        "uniform_lattice_bits_per_known": round(
                            sum(r["uniform_lattice_bits_per_known"] for r in sel) / len(sel), 2),
                        "value_bits_per_known": round(sum(r["value_bits_per_known"] for r in sel) / len(sel), 2)})
    write_file(out / "rate.json", json.dumps({"rows": rows, "summary": summary}, indent=1))
    write_file(out / "rate.md", "## Rates: PSNR, mask code against the uniform code\n\n" + _md(summary, list(summary[0]))
               + "\n### Per photo\n\n" + _md(rows, list(rows[0])))


def child(argv):
    """``--child SIZE_H SIZE_W PHOTO BPP``: encode then decode in this process; prints one JSON line (``--child
    memory ...``: :func:`memory_child`)."""
    if argv[:1] == ["memory"]:
        return memory_child(argv[1:])
    if argv[:1] == ["worst"]:
        return worst_child(argv[1:])
    torch = _torch()
    H, W, photo, bpp = int(argv[0]), int(argv[1]), argv[2], float(argv[3])
    split = None if argv[4:5] in ([], ["default"]) else float(argv[4])
    from pdeflow.codec import decode, encode
    from pdeflow.codec.format import read_layers
    im = _load(photo)[None, None]
    f = torch.nn.functional.interpolate(im, size=(H, W), mode="bilinear", antialias=True, align_corners=False)
    f = f[0, 0].clamp(0, 1).contiguous()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data, enc = timed(lambda: encode(f, bpp=bpp, split=split))
    layers = {1: "inpainting", 2: "wavelet", 3: "both"}[read_layers(data, None)[0].layers]
    peak_enc = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    u, dec = timed(lambda: decode(data))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"H": H, "W": W, "split": argv[4] if len(argv) > 4 else "default", "layers": layers,
                      "bytes": len(data), "psnr": round(_psnr(u[0], f), 2),
                      "encode_cpu_s": round(enc, 2), "decode_cpu_s": round(dec, 2),
                      "rss_before_MB": round(base), "peak_encode_MB": round(peak_enc), "peak_MB": round(peak)}))


def _valid_file(H, W, C, K, operator="diffusion", seed=0):
    """A valid file: the exact coding of a random mask of ``K`` pixels and random levels (no encoder)."""
    import numpy as np

    from pdeflow.codec import CODEC_OPERATORS as OPERATORS
    from pdeflow.codec.entropy import RangeWriter, encode_mask, encode_values
    from pdeflow.codec.format import Header, write_header
    rng = np.random.default_rng(seed)
    grid = np.zeros(H * W, bool)
    grid[rng.choice(H * W, K, replace=False)] = True
    w = RangeWriter()
    encode_mask(w, grid.reshape(H, W))
    for _ in range(C):
        encode_values(w, rng.integers(0, 64, K), 64)
    op = OPERATORS[operator]
    return write_header(Header(H, W, C, 8, 0 if C == 1 else 1, op.id, op.pack(), 4, 1, K, [64] * C, [0] * C,
                               [8192] * C), w.words())


def _worst_file(case: dict, limit: int) -> bytes:
    """The valid file of ``case`` (operator, parameters, channels, layout, levels) with the most known pixels that
    fits ``limit`` bytes, for the largest square image the format lets a file of ``limit`` bytes claim."""
    import numpy as np

    from pdeflow.codec import CODEC_OPERATORS as OPERATORS
    from pdeflow.codec.entropy import RangeWriter, encode_mask, encode_values
    from pdeflow.codec.format import Header, write_header
    op, C, q = OPERATORS[case["operator"]], case["C"], case["q"]
    side = math.isqrt((limit - 8) * op.values_per_byte // C)     # a file is whole words: up to 7 bytes short
    params = case.get("params")
    packed = op.pack() if params is None else b"".join(struct.pack("<H", v) for v in params)

    def make(K):
        rng = np.random.default_rng(K)
        reach = side if case["layout"] == "random" else max(2, side // 8)   # "corner": a large empty region
        grid = np.zeros((side, side), bool)
        flat = rng.permutation(reach * reach)[:K]
        grid[flat // reach, flat % reach] = True
        w = RangeWriter()
        encode_mask(w, grid)
        for _ in range(C):
            encode_values(w, rng.integers(0, q, K), q)
        return write_header(Header(side, side, C, 8, 0 if C == 1 else 1, op.id, packed, op.max_tol_exponent, 1, K,
                                   [q] * C, [0] * C, [8192] * C), w.words())
    lo, hi = 2, 8 * limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(make(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return make(lo)


def worst_child(argv):
    """``--child worst CASE_JSON LIMIT``: decode the worst-case file of the case in this process; one JSON line."""
    _torch()
    from pdeflow.codec import CodecError, decode
    from pdeflow.codec.format import read_header
    case, limit = json.loads(argv[0]), int(argv[1])
    decode(_valid_file(32, 32, case["C"], 20, case["operator"]))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    data = _worst_file(case, limit)
    h = read_header(data, None)[0]
    row = {**case, "bytes": len(data), "H": h.height, "W": h.width, "known": h.known}
    times = []
    for _ in range(2):      # the shorter of two: this machine's neighbours slow a single run by up to 3x
        t = time.process_time()
        try:
            decode(data)
        except CodecError as err:
            row["refused"] = str(err)
        times.append(time.process_time() - t)
    row["decode_cpu_s"] = round(min(times), 2)
    image = 4 * h.channels * h.height * h.width
    row["peak_above_MB"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base) / 2 ** 20, 1)
    row["multiple_of_image"] = round(row["peak_above_MB"] * 2 ** 20 / image, 1)
    print(json.dumps(row))


def part_worst(args, out: Path):
    """The slowest valid files of at most ``--worst-bytes`` bytes: for each operator the largest image the format
    lets such a file claim, the finest solver tolerance, the parameters' extremes, few points spread or in a
    corner, each decoded in a fresh process."""
    from pdeflow.codec import CODEC_OPERATORS as OPERATORS
    cases = []
    for name, op in OPERATORS.items():
        extremes = [None]
        if op.params:   # each parameter at its least and at its largest stored value, the others at the default
            default = struct.unpack(f"<{len(op.params)}H", op.pack())
            for i, (_, _, least) in enumerate(op.params):
                for v in (least, 65535):
                    extremes.append([v if j == i else d for j, d in enumerate(default)])
        for params in extremes:
            for layout in ("random", "corner"):
                for q, C in ((16, 1), (65535, 1), (16, 3)):
                    if params is not None and (q, C) != (16, 1):
                        continue
                    cases.append({"operator": name, "params": params, "layout": layout, "q": q, "C": C})
    if args.smoke:
        cases = cases[:2]
    rows = []
    for case in cases:
        r = run_child(__file__, ["worst", json.dumps(case), str(args.worst_bytes)], timeout=600)
        rows.append({**case, **r})
        print(rows[-1], flush=True)
    cols = ["operator", "params", "layout", "q", "C", "bytes", "H", "W", "known", "decode_cpu_s", "peak_above_MB",
            "multiple_of_image", "refused", "error"]
    ok = [r for r in rows if "decode_cpu_s" in r and "refused" not in r]
    summary = {"files": len(rows), "decoded": len(ok), "slowest_decode_cpu_s": max(r["decode_cpu_s"] for r in ok),
               "largest_multiple_of_image": max(r["multiple_of_image"] for r in ok)}
    write_file(out / "worst.json", json.dumps({"summary": summary, "rows": rows}, indent=1))
    write_file(out / "worst.md", f"## The slowest valid files of at most {args.worst_bytes} bytes, one thread\n\n"
               + _md([summary], list(summary)) + "\n" + _md(rows, [c for c in cols if any(c in r for r in rows)]))


def memory_child(argv):
    """``--child memory H W C OPERATOR``: decode a valid file in this process; prints one JSON line."""
    _torch()
    from pdeflow.codec import decode
    H, W, C = (int(v) for v in argv[:3])
    operator = argv[3]
    decode(_valid_file(32, 32, C, 20, operator))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    data = _valid_file(H, W, C, max(2, H * W // 100), operator)
    _, dt = timed(lambda: decode(data))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    image = 4 * C * H * W
    print(json.dumps({"H": H, "W": W, "C": C, "operator": operator, "bytes": len(data), "decode_cpu_s": round(dt, 2),
                      "image_MB": round(image / 2 ** 20, 1), "peak_above_MB": round((peak - base) / 2 ** 20, 1),
                      "multiple_of_image": round((peak - base) / image, 1)}))


def part_memory(args, out: Path):
    rows = []
    for size in args.memory_sizes:
        shape, _, operator = size.partition(":")
        H, W, C = (int(v) for v in shape.split("x"))
        r = run_child(__file__, ["memory", str(H), str(W), str(C), operator or "diffusion"], timeout=3600)
        rows.append(r)
        print(r, flush=True)
    cols = ["H", "W", "C", "operator", "bytes", "decode_cpu_s", "image_MB", "peak_above_MB", "multiple_of_image",
            "error"]
    write_file(out / "memory.json", json.dumps({"rows": rows}, indent=1))
    write_file(out / "memory.md", "## The decoder's peak memory above the process's, as a multiple of the decoded "
               "image (float32), one thread\n\n" + _md(rows, [c for c in cols if any(c in r for r in rows)]))


def part_lattice(args, out: Path):
    torch = _torch()
    from pdeflow.codec import decode, encode
    from pdeflow.codec.format import read_header
    from pdeflow.evaluate import codec as ev
    if args.folder.is_dir():
        photos = ev.photo_set(args.folder, size=args.crop, limit=args.photos)
    else:
        photos = ev.builtin_set(size=args.crop, limit=args.photos)

    def psnr(data, f):
        return _psnr(torch.round(decode(data)[0].double() * 255) / 255, torch.round(f.double() * 255) / 255)

    rows = []
    for name, f in photos.items():
        f = f[0].double()
        for bpp in args.lattice_rates:
            auto, cpu = timed(lambda: encode(f, bpp=bpp))
            one, two = encode(f, bpp=bpp, lattice=1), encode(f, bpp=bpp, lattice=2)
            r = {"photo": name, "bpp": bpp, "lattice": read_header(auto)[0].lattice, "psnr": round(psnr(auto, f), 2),
                 "psnr_lattice_1": round(psnr(one, f), 2), "psnr_lattice_2": round(psnr(two, f), 2),
                 "encode_cpu_s": round(cpu, 2)}
            r["below_best_dB"] = round(max(r["psnr_lattice_1"], r["psnr_lattice_2"]) - r["psnr"], 2)
            rows.append(r)
            print(r, flush=True)
    summary = []
    for bpp in args.lattice_rates:
        sel = [r for r in rows if r["bpp"] == bpp]
        summary.append({"bpp": bpp, "photos": len(sel), **{k: round(sum(r[k] for r in sel) / len(sel), 2) for k in (
            "psnr", "psnr_lattice_1", "psnr_lattice_2", "encode_cpu_s")},
            "worst_below_best_dB": max(r["below_best_dB"] for r in sel)})
    write_file(out / "lattice.json", json.dumps({"rows": rows, "summary": summary}, indent=1))
    write_file(out / "lattice.md", "## The automatic lattice against both grids\n\n" + _md(summary, list(summary[0]))
               + "\n### Per photo\n\n" + _md(rows, list(rows[0])))


def part_speed(args, out: Path):
    photo = _photos(args.folder, 1)[0]
    rows = []
    for size in args.sizes:
        H, W = (int(v) for v in size.split("x"))
        for split in args.speed_splits:
            r = run_child(__file__, [str(H), str(W), str(photo), "0.1", split], timeout=3600)
            r.setdefault("H", H), r.setdefault("W", W), r.setdefault("split", split)
            rows.append(r)
            print(r, flush=True)
    cols = ["H", "W", "split", "layers", "bytes", "psnr", "encode_cpu_s", "decode_cpu_s", "rss_before_MB", "peak_encode_MB", "peak_MB",
            "error"]
    write_file(out / "speed.json", json.dumps({"photo": _name(photo), "bpp": 0.1, "rows": rows}, indent=1))
    write_file(out / "speed.md", f"## Encode and decode at 0.1 bpp, one thread ({_name(photo)} resized)\n\n"
               + _md(rows, [c for c in cols if any(c in r for r in rows)]))


def part_fuzz(args, out: Path):
    torch = _torch()
    import numpy as np

    from pdeflow.codec import CodecError, decode, encode
    from pdeflow.codec.format import MAGIC
    rng = np.random.default_rng(0)
    sources = [encode(_crop(p, args.fuzz_crop), bpp=0.3) for p in _photos(args.folder, 3)]
    colour = torch.rand(3, args.fuzz_crop, args.fuzz_crop, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(0))
    sources.append(encode(colour, bpp=2.0))
    decode(sources[0])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = {"files": 0, "refused": 0, "crafted_decoded": 0, "crashes": 0, "hangs": 0}
    slowest = 0.0
    crashes = []

    def attempt(bad, kind):
        nonlocal slowest
        counts["files"] += 1
        t = time.perf_counter()
        try:
            decode(bad)
            ok = kind == "crafted"
            counts["crafted_decoded" if ok else "crashes"] += 1
            if not ok:
                crashes.append(f"{kind}: decoded without error")
        except CodecError as err:
            counts["refused"] += 1
            if "\n" in str(err):
                crashes.append(f"{kind}: multi-line message")
        except Exception as err:   # a crash: anything but CodecError
            counts["crashes"] += 1
            crashes.append(f"{kind}: {type(err).__name__}: {err}")
        dt = time.perf_counter() - t
        slowest = max(slowest, dt)
        if dt > args.hang:
            counts["hangs"] += 1

    per = max(1, args.fuzz // (5 * len(sources)))
    for data in sources:
        for n in np.linspace(0, len(data) - 1, per).astype(int):
            attempt(data[:n], "truncated")
        for _ in range(per):
            b = bytearray(data)
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(len(b)))
                b[i] ^= 1 << int(rng.integers(8))
            attempt(bytes(b), "bit flip")
        for _ in range(per):
            attempt(rng.bytes(int(rng.integers(0, 400))), "random")
            attempt(MAGIC + b"\x01" + rng.bytes(int(rng.integers(0, 400))), "random after magic")
            attempt(MAGIC + b"\x02" + rng.bytes(int(rng.integers(0, 400))), "random after magic")
        for _ in range(per):
            b = bytearray(data)
            b[30:] = rng.bytes(len(b) - 30)
            struct.pack_into("<I", b, 5, zlib.crc32(bytes(b[9:])))
            attempt(bytes(b), "crafted")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = {**counts, "slowest_decode_s": round(slowest, 3), "hang_limit_s": args.hang,
           "peak_MB_above_one_valid_decode": round(peak - base, 1), "crash_examples": crashes[:10]}
    print(res, flush=True)
    write_file(out / "fuzz.json", json.dumps(res, indent=1))
    write_file(out / "fuzz.md", "## Fuzzing the decoder\n\n" + _md([res], [k for k in res if k != "crash_examples"]))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_args(ap, "codec_core", what="tonal, rate, speed, fuzz (json, md)")
    parts = ["tonal", "rate", "speed", "memory", "lattice", "fuzz", "worst"]
    ap.add_argument("--parts", nargs="+", default=parts, choices=parts)
    ap.add_argument("--folder", type=Path, default=ROOT / ".data" / "photos" / "mate-nature")
    ap.add_argument("--photos", type=int, default=12, help="photos of --folder (sorted), at most")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.02, 0.03, 0.05])
    ap.add_argument("--levels", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--sizes", nargs="+", default=["256x256", "1024x1024", "2160x3840"])
    ap.add_argument("--memory-sizes", nargs="+", default=["512x512x1", "1024x1024x1", "2048x2048x1", "1024x1024x3",
                                                          "1024x1024x1:eed", "1024x1024x1:shepard"],
                    help="HxWxC[:OPERATOR] of the memory part")
    ap.add_argument("--lattice-rates", type=float, nargs="+", default=[0.15, 0.2, 0.3])
    ap.add_argument("--fuzz", type=int, default=600, help="damaged files, about")
    ap.add_argument("--fuzz-crop", type=int, default=96)
    ap.add_argument("--hang", type=float, default=10.0, help="seconds after which a decode counts as a hang")
    ap.add_argument("--speed-splits", nargs="+", default=["default", "1.0"],
                    help="the speed part's encode(split=...): 'default' or a share of the inpainting layer")
    ap.add_argument("--worst-bytes", type=int, default=1000, help="the worst part's file size limit")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: seconds")
    args = ap.parse_args(argv)
    if args.smoke:
        args.photos, args.crop, args.densities, args.levels, args.rates = 1, 48, [0.05], [32], [0.3]
        args.lattice_rates = [0.3]
        args.sizes, args.fuzz, args.fuzz_crop, args.memory_sizes = ["48x64"], 40, 32, ["64x64x1"]
        args.worst_bytes = 60
    out = open_out(args, argv)
    for part in args.parts:
        t = time.time()
        {"tonal": part_tonal, "rate": part_rate, "speed": part_speed, "memory": part_memory,
         "lattice": part_lattice, "fuzz": part_fuzz, "worst": part_worst}[part](args, out)
        print(f"{part}: {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
