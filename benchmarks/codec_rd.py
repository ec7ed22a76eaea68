"""Rate-distortion curves of pdeflow's codec against JPEG, JPEG 2000, WebP, AVIF and JPEG XL (issue 64).

Maintained. The evaluation is the library's (pdeflow.evaluate.codec, also `pdeflow evaluate codec`): for
every rate the budget is floor(bpp H W / 8) bytes for the whole file; each baseline's quality setting is
searched by bisection for the largest file within it (JPEG: Pillow/libjpeg-turbo, optimize=True; JPEG 2000:
Pillow/OpenJPEG, irreversible, compression ratio; WebP: Pillow, method 6; AVIF and JPEG XL: imagecodecs); a
codec that cannot meet a budget loses that image at that rate (listed in the report). PSNR and SSIM of the
decoded image on 8-bit levels against the 8-bit image; BD-rate (PCHIP on log-rate against PSNR, per image)
against JPEG and JPEG 2000.

Image sets, every image reduced (Lanczos) so that its shorter side is the size, then its centre square:

* photos: the held-out photographs (--photos, default .data/photos/mate-nature, `make photos`), grey, 256 px;
* photos-512: the first --n-512 of them at 512 px;
* builtin: pdeflow's built-in TEST photographs, grey, 256 px;
* smooth: --smooth synthetic piecewise-smooth scenes (pdeflow.datasets.piecewise_smooth, 5 shapes, seed 0);
* cartoon: real piecewise-smooth images: the ROF cartoons (pdeflow.tv.rof, lam --cartoon-lam) of the
  built-in TEST photographs;
* colour: the held-out photographs in colour, 256 px, at 0.1-0.3 bpp (a second report).

Files: codec_rd.md / .json / .png (grey sets, 0.05-0.5 bpp), codec_rd_colour.md / .json / .png and, with
pdeflow's codec, codec_rd_goals.md (the issue's goals: ahead of JPEG and JPEG 2000 where it asks). Runs
single-threaded. `--reuse DIR` takes the rows of the codecs not given in --codecs from DIR's JSON files (same
rates and the same images, checked by their digests), so the baselines need not run again when only pdeflow's
codec changed.

    python benchmarks/codec_rd.py --out runs/benchmarks/codec_rd --overwrite
    python benchmarks/codec_rd.py --codecs pdeflow --reuse runs/benchmarks/codec_rd --out runs/benchmarks/codec_rd --overwrite
    python benchmarks/codec_rd.py --codecs --reuse runs/benchmarks/codec_rd --out runs/benchmarks/codec_rd --overwrite
    python benchmarks/codec_rd.py --sets photos smooth cartoon --rates 0.05 0.1 0.15 0.2 --no-colour \
        --codecs pdeflow pdeflow-eed jpeg jpeg2000 --out runs/benchmarks/codec_rd_eed --overwrite
    python benchmarks/codec_rd.py --smoke

The third line compares the decoders (homogeneous diffusion and EED) on the held-out photos and the
piecewise-smooth sets.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

from _results import add_output_args, open_out, save_figure, write_text
from pdeflow.evaluate import codec as ev
from pdeflow.reporting import jsonable, md_table
from pdeflow.tv import rof

COLOUR_RATES = (0.1, 0.15, 0.2, 0.3)
#: pdeflow's codecs (its decoders).
PDEFLOW = ("pdeflow", "pdeflow-eed", "pdeflow-inpainting")
#: The grey image sets (module doc).
SETS = ("photos", "photos-512", "builtin", "smooth", "cartoon")
PHOTOS = Path(__file__).resolve().parent.parent / ".data" / "photos" / "mate-nature"


def _digests(sets) -> dict:
    return {s: {i: hashlib.sha1(u.contiguous().numpy().tobytes()).hexdigest()[:16] for i, u in imgs.items()}
            for s, imgs in sets.items()}


def _merge(res: dict, old_path: Path) -> None:
    """Add to ``res`` the rows of ``old_path``'s codecs that ``res`` did not compute, on the same images."""
    old = json.loads(old_path.read_text())
    if [float(r) for r in old["rates"]] != res["rates"]:
        sys.exit(f"--reuse: {old_path} has rates {old['rates']}, not {res['rates']}")
    for s, d in res["digests"].items():
        if old.get("digests", {}).get(s) != d:
            sys.exit(f"--reuse: {old_path}: the images of set {s!r} differ (or are missing)")
    extra = [c for c in old["codecs"] if c not in res["codecs"]]
    res["rows"] += [r for r in old["rows"] if r["codec"] in extra and r["set"] in res["sets"]]
    codecs = {**res["codecs"], **{c: old["codecs"][c] for c in extra}}
    res["codecs"] = {c: codecs[c] for c in sorted(codecs, key=list(ev.CODECS).index)}
    res["reused"] = {"from": str(old_path), "codecs": extra}


def _times(res: dict) -> str:
    """Mean CPU seconds per image and rate: encoding (for a baseline, its whole budget search) and decoding."""
    rows = []
    for s in res["sets"]:
        for c, info in res["codecs"].items():
            fit = [r for r in res["rows"] if r["set"] == s and r["codec"] == c and r["fits"]]
            if fit and "encode_s" in fit[0]:
                rows.append([s, info["label"], f"{sum(r['encode_s'] for r in fit) / len(fit):.3f}",
                             f"{sum(r['decode_s'] for r in fit) / len(fit):.3f}"])
    return ("CPU seconds per image and rate, one thread (a baseline's encoding is its whole budget search):\n\n"
            + md_table(["set", "codec", "encode s", "decode s"], rows) + "\n")


#: The issues' goals for pdeflow (64, and 72 up to 0.3 bpp): (anchor, sets, rates, also on 90 % of the images).
GOALS = [("jpeg", ("photos", "photos-512", "builtin"), (0.05, 0.075, 0.1, 0.15, 0.2, 0.3), True),
         ("jpeg2000", ("photos", "photos-512", "builtin"), (0.05, 0.1), False),
         ("jpeg2000", ("smooth", "cartoon"), (0.05, 0.075, 0.1, 0.15, 0.2, 0.3), False),
         ("jpeg", ("photos-colour",), COLOUR_RATES, False)]


def _pairs(res: dict, codec: str, anchor: str, s: str, rate: float) -> tuple:
    """``(mean PSNR difference over the images both fit or None, how many both fit, wins, images, codec fits
    all)`` of ``codec`` against ``anchor`` on set ``s`` at ``rate``; a win: the codec fits and is ahead, or fits
    where the anchor does not."""
    at = {(r["codec"], r["image"]): r for r in res["rows"] if r["set"] == s and float(r["rate"]) == rate}
    images = res["sets"][s]["images"]
    both = [at[codec, i]["psnr"] - at[anchor, i]["psnr"] for i in images
            if at[codec, i]["fits"] and at[anchor, i]["fits"]]
    wins = sum(at[codec, i]["fits"] and (not at[anchor, i]["fits"] or at[codec, i]["psnr"] > at[anchor, i]["psnr"])
               for i in images)
    fits_all = all(at[codec, i]["fits"] for i in images)
    return (sum(both) / len(both) if both else None), len(both), wins, len(images), fits_all


def _goals(results: list[dict]) -> str:
    """Whether pdeflow (each of its decoders that ran) is ahead of the anchor in PSNR where the issue asks: it fits
    every image and is ahead on the mean over the images both fit (an anchor that fits no image loses), and where
    asked on at least 90 % of the images (an anchor that does not fit an image loses it)."""
    rows = []
    for anchor, sets, rates, most in GOALS:
        for res in results:
            for codec in (c for c in PDEFLOW if c in res["codecs"] and anchor in res["codecs"]):
                for s in (s for s in sets if s in res["sets"]):
                    for r in (r for r in rates if r in res["rates"]):
                        d, n, wins, images, fits_all = _pairs(res, codec, anchor, s, r)
                        ok = fits_all and (d is None or d > 0) and (wins / images >= 0.9 or not most)
                        rows.append([res["codecs"][codec]["label"], res["codecs"][anchor]["label"], s, f"{r:g}",
                                     "—" if d is None else f"{d:+.2f} ({n}/{images})",
                                     f"{wins}/{images}" + (" (90 % asked)" if most else ""),
                                     "yes" if ok else "**no**"])
    return ("The issue's goals for pdeflow (PSNR): met where pdeflow fits every image and the mean difference "
            "over the images both codecs fit is positive (dB; an anchor that fits no image loses), and, where "
            "asked, pdeflow is ahead on 90 % of the images (an anchor that does not fit an image loses it):\n\n"
            + md_table(["codec", "against", "set", "bpp", "mean ΔPSNR (both fit)", "ahead", "met"], rows) + "\n")


def _layers_row(r: dict, before: dict) -> str:
    """The layers of a pdeflow row: its setting, or (rows of older runs) "inpainting" where the file is the one of the
    inpainting layer alone."""
    if r.get("setting"):
        return r["setting"]
    return "inpainting" if before["fits"] and r["bytes"] == before["bytes"] and r["psnr"] == before["psnr"] else "wavelet"


def _residual(res: dict) -> str:
    """The residual layer's worth: pdeflow (its default split) against its inpainting layer alone (the codec before
    the layer), JPEG and JPEG 2000, per set and rate (mean PSNR over the images each fits; wins: ahead on an image,
    a codec that does not fit losing it), which layers the encoder chose, the BD-rates against JPEG 2000 (mean and
    median over the images), and the CPU seconds."""
    after, before = "pdeflow", "pdeflow-inpainting"
    anchors = [a for a in ("jpeg", "jpeg2000") if a in res["codecs"]]
    rows, bd_rows, time_rows = [], [], []
    for s, info in res["sets"].items():
        at = {(r["codec"], r["image"], float(r["rate"])): r for r in res["rows"] if r["set"] == s}
        images = info["images"]

        def mean(c, rate):
            v = [at[c, i, rate]["psnr"] for i in images if at[c, i, rate]["fits"]]
            return "—" if not v else f"{sum(v) / len(v):.2f}" + ("" if len(v) == len(images) else f" ({len(v)})")

        def wins(c, a, rate):
            return sum(at[c, i, rate]["fits"] and (not at[a, i, rate]["fits"]
                                                   or at[c, i, rate]["psnr"] > at[a, i, rate]["psnr"]) for i in images)
        for rate in res["rates"]:
            chosen = [_layers_row(at[after, i, rate], at[before, i, rate]) for i in images if at[after, i, rate]["fits"]]
            kinds = ", ".join(f"{k} {chosen.count(k)}" for k in sorted(set(chosen)))
            rows.append([s, f"{rate:g}", mean(before, rate), mean(after, rate)] + [mean(a, rate) for a in anchors]
                        + [f"{wins(after, a, rate)}/{len(images)}" for a in anchors]
                        + ([f"{wins(before, 'jpeg2000', rate)}/{len(images)}"] if "jpeg2000" in anchors else [])
                        + [kinds])
        for c in (before, after):
            for a in anchors:
                vals = []
                for i in images:
                    pa = [at[a, i, r] for r in res["rates"] if at[a, i, r]["fits"]]
                    pc = [at[c, i, r] for r in res["rates"] if at[c, i, r]["fits"]]
                    v = ev.bd_rate([r["bpp"] for r in pa], [r["psnr"] for r in pa], [r["bpp"] for r in pc],
                                   [r["psnr"] for r in pc])
                    if v is not None:
                        vals.append(v)
                vals.sort()
                med = (vals[len(vals) // 2] + vals[(len(vals) - 1) // 2]) / 2 if vals else None
                bd_rows.append([s, res["codecs"][c]["label"], res["codecs"][a]["label"],
                                "—" if not vals else f"{100 * sum(vals) / len(vals):+.1f} %",
                                "—" if med is None else f"{100 * med:+.1f} %", f"{len(vals)}/{len(images)}"])
            fit = [r for r in res["rows"] if r["set"] == s and r["codec"] == c and r["fits"]]
            if fit:
                time_rows.append([s, res["codecs"][c]["label"], f"{sum(r['encode_s'] for r in fit) / len(fit):.2f}",
                                  f"{sum(r['decode_s'] for r in fit) / len(fit):.3f}"])
    labels = [res["codecs"][a]["label"] for a in anchors]
    head = (["set", "bpp", "before (inpainting alone)", "after (default split)"] + labels
            + [f"after ahead of {x}" for x in labels] + (["before ahead of JPEG 2000"] if "jpeg2000" in anchors else [])
            + ["layers chosen"])
    return ("Mean PSNR (dB, 8-bit output) over the images each codec fits (the count where not all); 'ahead': "
            "images where the codec fits and has the higher PSNR or the other does not fit. Before: "
            "`encode(image, size=budget, split=1.0)`, the codec without the residual layer; after: "
            "`encode(image, size=budget)`.\n\n" + md_table(head, rows)
            + "\n\nBD-rate (PCHIP, per image, on the rates above), mean and median over the images where the curves "
            "overlap:\n\n" + md_table(["set", "codec", "against", "mean", "median", "images"], bd_rows)
            + "\n\nCPU seconds per image and rate, one thread:\n\n"
            + md_table(["set", "codec", "encode s", "decode s"], time_rows) + "\n")


def _part(name: str, sets: dict, rates, codecs, args, out: Path, meta: dict) -> dict:
    t0 = time.perf_counter()
    print(f"{name}: " + ", ".join(f"{k} ({len(v)} images)" for k, v in sets.items()), flush=True)
    res = ev.evaluate(sets, rates=rates, codecs=codecs, progress=True)
    res["digests"] = _digests(sets)
    if args.reuse is not None:
        _merge(res, Path(args.reuse) / f"{name}.json")
    res["meta"] = {**meta, "seconds": time.perf_counter() - t0}
    rep = ev.report(res)
    text = rep.text("report.md").replace("# Rate-distortion evaluation", f"# Rate-distortion evaluation ({name})", 1)
    write_text(out / f"{name}.md", text + "\n" + _times(res))
    write_text(out / f"{name}.json", json.dumps(jsonable({**res, "summary": ev.summary(res)}), indent=1) + "\n")
    save_figure(ev.rd_figure(res), out / f"{name}.png", dpi=100)
    if {"pdeflow", "pdeflow-inpainting"} <= set(res["codecs"]):
        write_text(out / f"{name}_residual.md", _residual(res))
    print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=PHOTOS,
                    help="the held-out photographs (default: the repository's .data/photos/mate-nature)")
    ap.add_argument("--size", type=int, default=256, help="side of the images (default 256)")
    ap.add_argument("--n-512", type=int, default=3, help="photographs also at 512 px (default 3)")
    ap.add_argument("--smooth", type=int, default=8, help="synthetic piecewise-smooth scenes (default 8)")
    ap.add_argument("--cartoon-lam", type=float, default=0.05, help="ROF weight of the cartoons (default 0.05)")
    ap.add_argument("--codecs", nargs="*", choices=tuple(ev.CODECS), default=list(ev.DEFAULT_CODECS),
                    help="codecs to run (default all but pdeflow-eed; none, with --reuse: only rewrite the tables "
                         "and figures)")
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS),
                    help="image sets of the grey part (default all)")
    ap.add_argument("--rates", type=float, nargs="+", default=list(ev.RATES), help="bits per pixel (grey part)")
    ap.add_argument("--reuse", default=None, metavar="DIR",
                    help="take the other codecs' rows from DIR/codec_rd.json and DIR/codec_rd_colour.json")
    ap.add_argument("--no-colour", dest="colour", action="store_false", help="skip the colour part")
    ap.add_argument("--smoke", action="store_true", help="tiny images, one per set, two rates (seconds)")
    add_output_args(ap, "codec_rd", what="codec_rd.md/.json/.png, codec_rd_colour.md/.json/.png")
    args = ap.parse_args(argv)
    if not args.codecs and args.reuse is None:
        ap.error("--codecs: give at least one, or --reuse DIR to rewrite its tables and figures")
    photos = args.photos.is_dir()
    if not photos and not args.smoke:
        ap.error(f"--photos: {args.photos} is not a folder (run `make photos`)")
    codecs = [c for c in args.codecs if ev.CODECS[c].check() is None]
    for c in set(args.codecs) - set(codecs):
        print(f"note: {c} left out: {ev.CODECS[c].check()}")
    out = open_out(args, argv)
    torch.set_num_threads(1)
    size, n512, limit = args.size, args.n_512, None
    rates, colour_rates = tuple(args.rates), COLOUR_RATES
    if args.smoke:
        size, n512, limit, rates, colour_rates = 48, 0, 1, (1.0, 4.0), (2.0,)
        args.smooth = 1
    builtin = ev.builtin_set(size=size, limit=limit)
    sets = {"photos": ev.photo_set(args.photos, size=size, limit=limit)} if photos else {}
    if n512 and photos:
        sets["photos-512"] = ev.photo_set(args.photos, size=2 * size, limit=n512)
    sets["builtin"] = builtin
    sets["smooth"] = ev.smooth_set(args.smooth, size=size, seed=0)
    cartoons = {k: rof(u.double(), args.cartoon_lam).float() for k, u in builtin.items()}
    sets["cartoon"] = {k: torch.round(u.clamp(0, 1) * 255) / 255 for k, u in cartoons.items()}
    sets = {k: v for k, v in sets.items() if k in args.sets}
    import pdeflow
    meta = {"torch": torch.__version__, "pdeflow": pdeflow.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "threads": torch.get_num_threads(), "photos": str(args.photos),
            "cartoon_lam": args.cartoon_lam, "smoke": args.smoke}
    results = [_part("codec_rd", sets, rates, codecs, args, out, meta)]
    if args.colour and photos:
        colour = {"photos-colour": ev.photo_set(args.photos, size=size, channels=3, limit=limit)}
        results.append(_part("codec_rd_colour", colour, colour_rates, codecs, args, out, meta))
    if any(c in r["codecs"] for r in results for c in PDEFLOW):
        write_text(out / "codec_rd_goals.md", _goals(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
