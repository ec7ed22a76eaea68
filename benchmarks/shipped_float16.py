#!/usr/bin/env python
"""The shipped models as stored (float16 weights, computed in float32) against their float32 originals.

The originals are read from git history (``--float32-commit``: the last commit that shipped them in
float32) into the output folder. For each shipped model, on crops of the built-in TEST photos (never used in
training):

* its output with both weights, the largest absolute difference: a TVflowNET's ``u`` at times 0.05, 0.1
  and 0.2 (``tvflownet.flow``, intensities in [0, 1]); a mask network's maps ``(log p, s)`` and the number of pixels
  where its binary mask differs (``learned_mask``); a residual inpainter's inpainting from an analytic mask
  at its density (``inpaint_learned``);
* the headline metric of its evaluation with both weights: the TVflowNET paper's u and div phi PSNR
  against the exact flow (``pdeflow.evaluate.tvflownet.evaluate_sizes``), and Peter (2022)'s protocol for
  the inpainting models (``pdeflow.evaluate.inpaint.evaluate``, PSNR and MSE of the methods that use them;
  the feedback mask network, which that protocol does not run, by the PSNR of diffusion inpainting from
  its masks).

    python benchmarks/shipped_float16.py                  # every shipped model, 96 px / 64 px crops
    python benchmarks/shipped_float16.py --smoke          # two small models, 24 px: seconds

Maintained. It compares today's shipped files with the float32 ones in git history; the test suite runs it
with ``--smoke``. Writes ``shipped_float16.md`` (the tables) and ``shipped_float16.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import torch

from _results import add_output_args, open_out, write_text  # benchmarks/_results.py
from pdeflow import datasets, models, tvflownet
from pdeflow.evaluate import inpaint as inpaint_eval
from pdeflow.evaluate import tvflownet as tvflownet_eval
from pdeflow.inpaint import analytic_mask, inpaint_diffusion, inpaint_learned, learned_mask
from pdeflow.inpaint.learned.masknet import load_masknet
from pdeflow.inpaint.learned.residual import load_residual
from pdeflow.io import load_model
from pdeflow.metrics import mse, psnr

#: The last commit whose shipped weights were float32 (the parent of the conversion).
FLOAT32_COMMIT = "9b9b5a3"
ROOT = Path(__file__).resolve().parent.parent
#: The inpainting evaluation's methods that run shipped models, and the model groups each needs.
INPAINT_METHODS = {"learned": {"masknet"}, "learned-residual": {"masknet", "residual"},
                   "joint": {"joint-mask", "joint-inpainter"},
                   "joint-refine": {"joint-mask", "joint-inpainter", "joint-inpainter-refined"}}


def _originals(commit: str, names: list[str], folder: Path) -> dict[str, Path]:
    """The float32 weights of ``names`` at ``commit``, written under ``folder/PILLAR/``; their pillars' folders."""
    folders = {}
    for name in names:
        pillar = models.SHIPPED[name].pillar
        rel = models.WEIGHTS_DIRS[pillar].relative_to(ROOT)
        folders[pillar] = folder / pillar
        folders[pillar].mkdir(parents=True, exist_ok=True)
        for suffix in (".safetensors", ".json"):
            blob = subprocess.run(["git", "show", f"{commit}:{(rel / name).as_posix()}{suffix}"], cwd=ROOT,
                                  capture_output=True, check=True).stdout
            (folders[pillar] / f"{name}{suffix}").write_bytes(blob)
        meta = json.loads((folders[pillar] / f"{name}.json").read_text())
        if meta["weights"].get("stored_dtype") is not None:
            raise SystemExit(f"{name} at {commit} is stored in {meta['weights']['stored_dtype']}, not float32")
    return folders


def _shipped_at(commit: str) -> list[str]:
    """The documented models whose weights ``commit`` holds (a model shipped later was float16 from the start)."""
    def held(name):
        rel = models.WEIGHTS_DIRS[models.SHIPPED[name].pillar].relative_to(ROOT) / f"{name}.safetensors"
        return subprocess.run(["git", "cat-file", "-e", f"{commit}:{rel.as_posix()}"], cwd=ROOT,
                              capture_output=True).returncode == 0
    return [name for name in models.SHIPPED if held(name)]


@contextlib.contextmanager
def _shipped_from(folders: dict[str, Path]):
    """Every loader reads the shipped models of these pillars from ``folders`` (the registry's folders are
    looked up at each load, so the evaluations run unchanged on the originals)."""
    saved = dict(models.WEIGHTS_DIRS)
    models.WEIGHTS_DIRS.update(folders)
    try:
        yield
    finally:
        models.WEIGHTS_DIRS.update(saved)


def _load(name: str, stem):
    shipped = models.SHIPPED[name]
    if shipped.kind == "tvflownet":
        return tvflownet.load(stem)
    if shipped.kind == "masknet":
        return load_masknet(stem, density=shipped.density)
    return load_residual(stem)


def _outputs(name: str, net, crops: dict) -> dict[str, torch.Tensor]:
    """What the model makes of the TEST crops: tensors to compare, by what they are."""
    shipped = models.SHIPPED[name]
    with torch.no_grad():
        if shipped.kind == "tvflownet":
            f = crops["tvflownet"]         # a colour model: the grey crops in each of its channels
            return {"u": tvflownet.flow(f.expand(-1, net.in_channels, -1, -1), [0.05, 0.1, 0.2], net)}
        f = crops["inpaint"]
        d = shipped.density or 0.1
        if shipped.kind == "masknet":
            logp, s = net.maps(f, d)
            return {"log p": logp, "s": s, "mask": learned_mask(f, d, model=net)}
        return {"u": inpaint_learned(f, analytic_mask(f, d), model=net)}


def _rounding(original: Path, stored: Path) -> dict:
    """How storing rounded the weights: the largest relative error of the values in float16's normal range, and
    the count and largest absolute error of the nonzero values below it (where float16 is subnormal)."""
    a, _ = load_model(original)
    b, meta = load_model(stored)
    tiny = torch.finfo(torch.float16).tiny
    rel, small, small_err = 0.0, 0, 0.0
    for k, x in a.items():
        if not x.is_floating_point():
            continue
        x, y = x.double(), b[k].double()
        normal, sub = x.abs() >= tiny, (x != 0) & (x.abs() < tiny)
        if normal.any():
            rel = max(rel, float(((y - x).abs() / x.abs())[normal].max()))
        small += int(sub.sum())
        if sub.any():
            small_err = max(small_err, float((y - x).abs()[sub].max()))
    return {"max_relative_error_normal": rel, "below_normal": small, "below_normal_max_abs_error": small_err,
            "kept_float32": meta["weights"].get("kept", [])}


def _difference(name: str, a: dict, b: dict) -> str:
    parts = []
    for key in a:
        if key == "mask":
            changed = int((a[key] != b[key]).sum())
            parts.append(f"mask: {changed} of {int(a[key].sum())} points moved")
        else:
            parts.append(f"{key}: {float((a[key] - b[key]).abs().max()):.2e}")
    return "; ".join(parts)


def _change(a: float, b: float) -> str:
    return f"{a:.3f} -> {b:.3f} ({b - a:+.4f})"


def _tvflownet_metrics(nets: dict, size: int, n_images: int, smoke: bool) -> dict:
    ref = {"dt": 0.1, "tol": 1e-4, "cache_dir": False} if smoke else {"cache_dir": False}
    times = [0.0, 0.1, 0.2] if smoke else None
    res = tvflownet_eval.evaluate_sizes(nets, sizes=(size,), n_images=n_images, times=times, ref_kwargs=ref,
                                        keep_example=False)
    return {name: {k: res["models"][name][size][k][0] for k in ("u_psnr", "div_psnr")} for name in nets}


def _inpaint_metrics(names: list[str], size: int, n_images: int, densities) -> dict:
    """PSNR and MSE means of the evaluation's methods, and the feedback network's diffusion inpainting."""
    out = {}
    groups = {models.SHIPPED[n].group for n in names}
    methods = [m for m, needs in INPAINT_METHODS.items() if needs <= groups]
    if methods:
        res = inpaint_eval.evaluate(densities, n_images=n_images, size=size, methods=methods)
        for m in res["methods"]:
            for d, row in res["summary"].get(m, {}).items():
                out[f"{m} at {float(d):g}"] = {"psnr": row["psnr"]["mean"], "mse255": row["mse255"]["mean"]}
    if "masknet-20-feedback" in names:
        f, _ = inpaint_eval.test_images(n_images, size, seed=0)
        net = load_masknet("masknet-20-feedback", density=0.2)
        u = inpaint_diffusion(f, learned_mask(f, 0.2, model=net))
        out["masknet-20-feedback: diffusion at 0.2"] = {"psnr": float(psnr(u, f).mean()),
                                                        "mse255": float(mse(u, f).mean()) * 255 ** 2}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("models", nargs="*", help="shipped names (default: every shipped model)")
    ap.add_argument("--float32-commit", default=FLOAT32_COMMIT, help="the git commit holding the float32 weights")
    ap.add_argument("--size", type=int, default=96, help="TVflowNET crops and evaluation size (px)")
    ap.add_argument("--inpaint-size", type=int, default=64, help="inpainting crops and evaluation size (px)")
    ap.add_argument("--n-images", type=int, default=4, help="TEST crops per comparison and evaluation")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.05, 0.1, 0.2],
                    help="densities of the inpainting evaluation")
    ap.add_argument("--smoke", action="store_true", help="semiresnet and masknet-10 at 24 px, one crop: seconds")
    add_output_args(ap, "shipped_float16", what="shipped_float16.md, shipped_float16.json, float32/")
    args = ap.parse_args(argv)
    if args.smoke:
        args.models = args.models or ["semiresnet", "masknet-10"]
        args.size = args.inpaint_size = 24
        args.n_images, args.densities = 1, [0.1]
    names = args.models or _shipped_at(args.float32_commit)
    unknown = [n for n in names if n not in models.SHIPPED]
    if unknown:
        ap.error(f"not shipped: {', '.join(unknown)}")
    torch.set_num_threads(1)
    out = open_out(args, argv)
    folders = _originals(args.float32_commit, names, out / "float32")
    pool = datasets.builtin_pool("test", kind="photo")
    crops = {"tvflownet": datasets.random_crops(pool, args.n_images, args.size, generator=5),
             "inpaint": inpaint_eval.test_images(args.n_images, args.inpaint_size, seed=5)[0]}

    lines = [f"Against the float32 originals (git commit {args.float32_commit}), the output on {args.n_images} TEST "
             f"crops ({args.size} px TVflowNET, {args.inpaint_size} px inpainting), "
             "largest absolute difference; the weights' rounding: the largest relative error of the values in "
             "float16's normal range, and the number of nonzero values below it (their largest absolute error):", "",
             "| model | bytes float32 -> stored | output difference | rounding |", "|---|---|---|---|"]
    record = {"commit": args.float32_commit, "outputs": {}, "metrics": {}}
    for name in names:
        pillar = models.SHIPPED[name].pillar
        stored, original = models.resolve(name, pillar), folders[pillar] / name
        a = _outputs(name, _load(name, original), crops)
        b = _outputs(name, _load(name, stored), crops)
        diff = _difference(name, a, b)
        sizes = [p.with_suffix(".safetensors").stat().st_size for p in (original, stored)]
        rounding = _rounding(original, stored)
        kept = f", kept in float32: {', '.join(rounding['kept_float32'])}" if rounding["kept_float32"] else ""
        lines.append(f"| `{name}` | {sizes[0]:,} -> {sizes[1]:,} | {diff} | {rounding['max_relative_error_normal']:.2e}"
                     f"; {rounding['below_normal']} ({rounding['below_normal_max_abs_error']:.1e}){kept} |")
        record["outputs"][name] = {"bytes": sizes, "difference": diff, "rounding": rounding}
        print(lines[-1], flush=True)

    tv = [n for n in names if models.SHIPPED[n].pillar == "tvflownet"]
    inp = [n for n in names if models.SHIPPED[n].pillar == "inpaint"]
    metrics = {}
    for which, ctx in (("float32", _shipped_from(folders)), ("stored", contextlib.nullcontext())):
        with ctx:
            nets = {n: tvflownet.load(n) for n in tv}
            row = _tvflownet_metrics(nets, args.size, args.n_images, args.smoke) if nets else {}
            if inp:
                row.update(_inpaint_metrics(inp, args.inpaint_size, args.n_images, args.densities))
        metrics[which] = row
    record["metrics"] = metrics
    lines += ["", f"Evaluation ({args.n_images} TEST crops; TVflowNET: `evaluate_sizes` at {args.size} px, PSNR dB "
              f"against the exact flow; inpainting: `pdeflow.evaluate.inpaint.evaluate` at {args.inpaint_size} px, "
              "densities " + ", ".join(f"{d:g}" for d in args.densities) + "), float32 -> stored:", "",
              "| model / method | PSNR (dB) | MSE (0-255) |", "|---|---|---|"]
    for key, a in metrics["float32"].items():
        b = metrics["stored"][key]
        if "u_psnr" in a:
            lines.append(f"| `{key}` | u {_change(a['u_psnr'], b['u_psnr'])}, div phi "
                         f"{_change(a['div_psnr'], b['div_psnr'])} | |")
        else:
            lines.append(f"| {key} | {_change(a['psnr'], b['psnr'])} | {_change(a['mse255'], b['mse255'])} |")
        print(lines[-1], flush=True)
    write_text(out / "shipped_float16.md", "\n".join(lines) + "\n")
    write_text(out / "shipped_float16.json", json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
