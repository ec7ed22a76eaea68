#!/usr/bin/env python
"""The reference TV flow at matched accuracy: pdeflow against scikit-image (and DeepInverse).

The task is the "model-driven approach" of TVflowNET's paper: 50 implicit Euler steps of
size ``dt = 0.02`` (PDE time) of the TV flow, on natural images in [0, 1] multiplied by 5.
Every step is an ROF problem ``u_{k+1} = argmin 1/2 ||u - u_k||^2 + dt * TV(u)``; all three
libraries solve exactly this problem with the same discretisation, so they differ only in
how fast they reach a given accuracy.

Protocol (all of it in one run, on one machine):

1. A tightly converged reference trajectory per case: pdeflow in float64 with a very small
   relative duality gap (``--ref-tol``, each step capped at ``--ref-max-iter``).  It is
   checked twice, so that it is not self-serving: against itself with a 10x tighter tol on a
   subset, and against scikit-image run far past its default stopping rule
   (``eps=1e-12``, ``--check-sk-iters`` iterations per step) on the first frames.
2. Accuracy of a run = the max abs error over all 50 frames and all images of a case, on the
   x5 scale, against that reference.  The target is ``--target`` (default 1e-3).
3. For each library, a small grid of its own settings (pdeflow: ``tol`` x dtype;
   scikit-image: ``max_num_iter`` with ``eps=0``, or ``eps`` with a cap, x dtype;
   DeepInverse: ``crit`` x ``tau``) is scanned from cheap to expensive and the first setting
   that reaches the target is kept (a chain whose error passes the target is stopped there).
4. The kept settings are timed side by side, interleaved, ``--repeats`` times (best time
   kept); the accuracy reported is that of the timed run.

Run ``python benchmarks/reference.py`` (about 10 minutes on 2 cores) or ``--quick`` (about
2 minutes).  Results are printed and written to ``--out`` (reference.md; default a fresh folder under
runs/benchmarks/); ``--results benchmarks/RESULTS.md`` also writes them there (between markers, the
rest of the file is left alone).

Historical. The comparison with scikit-image at matched accuracy behind the results page "Speed and accuracy
of the solvers"; even --quick takes minutes, far over a smoke run. Its results are kept for the record; it is
not expected to run against today's API. It still imported and parsed its options against today's API when it
was marked.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import math
import os
import platform
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from _results import add_output_args, open_out, write_block, write_file  # benchmarks/_results.py
from pdeflow import datasets
from pdeflow.tv import tv_flow

PDEFLOW_TOLS = (1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6, 1e-6, 5e-7, 2e-7, 1e-7)
SK_ITERS = (25, 35, 50, 71, 100, 141, 200, 283, 400, 566, 800, 1131, 1600, 2263, 3200, 4525, 6400)
SK_EPS = (1e-6, 3e-7, 1e-7, 3e-8, 1e-8, 3e-9, 1e-9, 3e-10, 1e-10)
DI_CRITS = (1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6, 1e-6, 5e-7, 2e-7, 1e-7)


# --------------------------------------------------------------------------- machine


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    import skimage

    info = {
        "cpu": cpu,
        "cores": cores,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scikit-image": skimage.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available",
    }
    try:
        info["load_average"] = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    images: torch.Tensor  # (B, 1, H, W) float64 on the x5 scale
    description: str
    ref: torch.Tensor | None = None  # (steps, B, 1, H, W) float64
    ref_seconds: float = 0.0
    notes: list = field(default_factory=list)


def build_cases(args) -> list[Case]:
    cases = []
    for name in args.cases:
        if name == "crops":
            pool = datasets.builtin_pool("test", kind="photo")
            x = datasets.random_crops(pool, args.n_crops, args.crop_size, generator=args.seed)
            desc = (f"{args.n_crops} random {args.crop_size}x{args.crop_size} crops (seed {args.seed}) "
                    f"of the {len(pool)} test-split photos ({', '.join(pool)})")
        elif name in ("256", "512"):
            size = int(name)
            src = args.image256 if size == 256 else args.image512
            img = datasets.builtin_image(src)
            H, W = img.shape[-2:]
            if H < size or W < size:
                raise SystemExit(f"--image{size}: {src} is {H}x{W}, smaller than {size}x{size}")
            top, left = (H - size) // 2, (W - size) // 2
            x = img[None, :, top:top + size, left:left + size]
            desc = f"{src}, central {size}x{size}" + ("" if (H, W) == (size, size) else f" crop of {H}x{W}")
        else:
            raise SystemExit(f"unknown case {name!r}; choose from crops, 256, 512")
        cases.append(Case(name, (x.double() * args.scale).contiguous(), desc))
    return cases


def times_of(args) -> list[float]:
    return [k * args.dt for k in range(1, args.steps + 1)]


def max_err(u: torch.Tensor, ref: torch.Tensor) -> float:
    return (u.double() - ref).abs().max().item()


# --------------------------------------------------------------------------- runners
# Each runner takes (case, setting, check) and returns (seconds, error); with check=True it
# compares every frame with the reference as it goes and gives up (error = inf) as soon as
# the target is missed, which keeps the search cheap.  Timed runs use check=False.


def run_pdeflow(case: Case, setting: dict, args, check: bool = False):
    x = case.images.to(dtype=setting["dtype"], device=setting.get("device", "cpu"))
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()
    u = tv_flow(x, times_of(args), dt=args.dt, tol=setting["tol"], solver="fgp", scheme="euler")
    sync()
    seconds = time.perf_counter() - t0
    return seconds, max_err(u.cpu(), case.ref)


def run_skimage(case: Case, setting: dict, args, check: bool = False):
    from skimage.restoration import denoise_tv_chambolle

    dtype = setting["dtype"]
    imgs = case.images[:, 0].numpy().astype(dtype)
    ref = case.ref[:, :, 0].numpy() if case.ref is not None else None
    err, seconds = 0.0, 0.0
    for i in range(imgs.shape[0]):
        u = imgs[i]
        frames = []
        t0 = time.perf_counter()
        for k in range(args.steps):
            u = denoise_tv_chambolle(u, weight=args.dt, eps=setting["eps"], max_num_iter=setting["max_num_iter"])
            if check:
                e = float(np.abs(u - ref[k, i]).max())
                err = max(err, e)
                if e > args.target:
                    return seconds + time.perf_counter() - t0, math.inf
            else:
                frames.append(u)
        seconds += time.perf_counter() - t0
        if not check and ref is not None:
            err = max(err, float(np.abs(np.stack(frames) - ref[:, i]).max()))
    return seconds, err


_DEEPINV = {"cls": None, "how": None, "why": None}


def load_deepinv(standalone: bool):
    """DeepInverse's TVDenoiser class, or None with the reason in _DEEPINV['why']."""
    if _DEEPINV["cls"] is not None or _DEEPINV["why"] is not None:
        return _DEEPINV["cls"]
    try:
        import deepinv

        _DEEPINV["cls"] = deepinv.models.TVDenoiser
        _DEEPINV["how"] = f"deepinv {deepinv.__version__}"
        return _DEEPINV["cls"]
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        why = f"`import deepinv` fails: {type(exc).__name__}: {exc}"
    spec = importlib.util.find_spec("deepinv")
    if spec is None:
        _DEEPINV["why"] = "deepinv is not installed"
        return None
    if not standalone:
        _DEEPINV["why"] = why
        return None
    # Opt-in: load deepinv/models/tv.py and base.py (which need only torch and numpy)
    # without running deepinv/__init__.py, which imports torchvision.
    root = Path(list(spec.submodule_search_locations)[0])
    saved = {k: sys.modules.get(k) for k in ("deepinv", "deepinv.models")}
    try:
        for name, path in (("deepinv", root), ("deepinv.models", root / "models")):
            m = types.ModuleType(name)
            m.__path__ = [str(path)]
            sys.modules[name] = m
        mod = None
        for sub in ("base", "tv"):
            s = importlib.util.spec_from_file_location(f"deepinv.models.{sub}", root / "models" / f"{sub}.py")
            mod = importlib.util.module_from_spec(s)
            sys.modules[s.name] = mod
            s.loader.exec_module(mod)
        _DEEPINV["cls"] = mod.TVDenoiser
        from importlib.metadata import version

        _DEEPINV["how"] = (f"deepinv {version('deepinv')}, models/tv.py loaded on its own "
                           f"({why.split(':', 1)[0]} without torchvision)")
    except Exception as exc:  # noqa: BLE001
        _DEEPINV["why"] = f"{why}; standalone load of models/tv.py failed too: {exc}"
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return _DEEPINV["cls"]


def run_deepinv(case: Case, setting: dict, args, check: bool = False):
    cls = _DEEPINV["cls"]
    den = cls(crit=setting["crit"], tau=setting["tau"], n_it_max=setting["n_it_max"])
    u = case.images.to(setting["dtype"])
    err, frames = 0.0, []
    t0 = time.perf_counter()
    with torch.no_grad():
        for k in range(args.steps):
            u = den(u, args.dt)  # warm-started from the previous call's primal and dual
            if check:
                e = max_err(u, case.ref[k])
                err = max(err, e)
                if e > args.target:
                    return time.perf_counter() - t0, math.inf
            else:
                frames.append(u)
    seconds = time.perf_counter() - t0
    if not check:
        err = max_err(torch.stack(frames), case.ref)
    return seconds, err


# --------------------------------------------------------------------------- search


def pdeflow_families(args):
    fams = []
    for dt_name in args.pdeflow_dtypes:
        dtype = getattr(torch, dt_name)
        # float32 cannot certify a relative gap much below 1e-7 (round-off in the gap).
        tols = [t for t in args.pdeflow_tols if dtype == torch.float64 or t >= 2e-7]
        fams.append((f"{dt_name}", [{"dtype": dtype, "tol": t} for t in tols]))
    return fams


def skimage_families(args):
    fams = []
    for dt_name in args.sk_dtypes:
        dtype = getattr(np, dt_name)
        fams.append((f"{dt_name}, eps=0, fixed iterations",
                     [{"dtype": dtype, "eps": 0.0, "max_num_iter": n} for n in args.sk_iters]))
        if args.sk_eps:
            fams.append((f"{dt_name}, eps rule, max_num_iter={args.sk_eps_cap}",
                         [{"dtype": dtype, "eps": e, "max_num_iter": args.sk_eps_cap} for e in args.sk_eps]))
    return fams


def deepinv_families(args):
    fams = []
    for dt_name in args.di_dtypes:
        for tau in args.di_taus:
            fams.append((f"{dt_name}, tau={tau:g}",
                         [{"dtype": getattr(torch, dt_name), "tau": tau, "crit": c, "n_it_max": args.di_cap}
                          for c in args.di_crits]))
    return fams


def describe(lib: str, s: dict) -> str:
    if lib == "pdeflow":
        return f"tv_flow(solver='fgp', tol={s['tol']:g}), {str(s['dtype']).replace('torch.', '')}"
    if lib == "scikit-image":
        rule = f"eps={s['eps']:g}" if s["eps"] else "eps=0"
        return f"denoise_tv_chambolle({rule}, max_num_iter={s['max_num_iter']}), {np.dtype(s['dtype']).name}"
    return (f"TVDenoiser(crit={s['crit']:g}, tau={s['tau']:g}, n_it_max={s['n_it_max']}), "
            f"{str(s['dtype']).replace('torch.', '')}")


def subset(case: Case, n: int | None) -> Case:
    if n is None or n >= case.images.shape[0]:
        return case
    return Case(case.name, case.images[:n], case.description, case.ref[:, :n])


def search(lib, runner, families, case, args, log):
    """Cheapest passing setting of each family; returns (best, trials)."""
    n_sub = args.search_subset if (lib != "pdeflow" and case.name == "crops") else None
    probe = subset(case, n_sub)
    trials, winners = [], []
    for fam, settings in families:
        for i, s in enumerate(settings):
            sec, err = runner(probe, s, args, check=True)
            ok = err <= args.target
            trials.append((fam, describe(lib, s), sec, err, probe.images.shape[0]))
            log(f"    {lib:13s} {describe(lib, s):62s} {sec:8.2f}s  err {err:.2e} {'ok' if ok else 'x'}"
                + (f"  [{probe.images.shape[0]} of {case.images.shape[0]} images]" if probe is not case else ""))
            if ok:
                winners.append((sec / probe.images.shape[0], fam, i, s))
                break
            if sec > args.trial_limit:
                log(f"    {lib:13s} family {fam!r}: trial over --trial-limit, stopped")
                break
        else:
            log(f"    {lib:13s} family {fam!r}: no setting reached {args.target:g}")
    if not winners:
        return None, trials
    winners.sort(key=lambda w: w[0])
    _, fam, i, s = winners[0]
    # A setting found on a subset must hold on the whole case: confirm, going up the grid.
    settings = dict(families)[fam]
    if probe is not case:
        while True:
            sec, err = runner(case, settings[i], args, check=True)
            trials.append((fam, describe(lib, settings[i]), sec, err, case.images.shape[0]))
            log(f"    {lib:13s} {describe(lib, settings[i]):62s} {sec:8.2f}s  err {err:.2e} "
                f"{'ok' if err <= args.target else 'x'}  [all {case.images.shape[0]} images]")
            if err <= args.target or i + 1 == len(settings):
                break
            i += 1
        if err > args.target:
            return None, trials
    return settings[i], trials


# --------------------------------------------------------------------------- reference


def compute_reference(case: Case, args, log):
    t0 = time.perf_counter()
    case.ref = tv_flow(case.images, times_of(args), dt=args.dt, tol=args.ref_tol, max_iter=args.ref_max_iter,
                       scheme="euler")
    case.ref_seconds = time.perf_counter() - t0
    log(f"  reference {case.name}: float64, tol {args.ref_tol:g}, max_iter {args.ref_max_iter}: "
        f"{case.ref_seconds:.1f}s")


def check_reference(case: Case, args, log) -> dict:
    """Two checks of the reference on the first images / frames of a case."""
    out = {}
    n_img = min(args.check_images, case.images.shape[0])
    n_steps = min(args.check_steps, args.steps)
    x = case.images[:n_img]
    tight = tv_flow(x, times_of(args)[:n_steps], dt=args.dt, tol=args.ref_tol / 10, max_iter=4 * args.ref_max_iter,
                    scheme="euler")
    out["self"] = (max_err(tight, case.ref[:n_steps, :n_img]), n_img, n_steps)
    log(f"  check {case.name}: reference vs tol {args.ref_tol / 10:g}, max_iter {4 * args.ref_max_iter} "
        f"({n_img} images, {n_steps} steps): max diff {out['self'][0]:.2e}")
    if args.check_sk_frames > 0:
        from skimage.restoration import denoise_tv_chambolle

        n_sk = min(args.check_sk_images, case.images.shape[0])
        n_fr = min(args.check_sk_frames, args.steps)
        diff = 0.0
        t0 = time.perf_counter()
        for i in range(n_sk):
            u = case.images[i, 0].numpy()
            for k in range(n_fr):
                u = denoise_tv_chambolle(u, weight=args.dt, eps=1e-12, max_num_iter=args.check_sk_iters)
                diff = max(diff, float(np.abs(u - case.ref[k, i, 0].numpy()).max()))
        out["skimage"] = (diff, n_sk, n_fr)
        log(f"  check {case.name}: reference vs scikit-image eps=1e-12, {args.check_sk_iters} iterations per step "
            f"({n_sk} images, {n_fr} frames, {time.perf_counter() - t0:.0f}s): max diff {diff:.2e}")
    return out


# --------------------------------------------------------------------------- report


def fmt_t(sec: float) -> str:
    return f"{sec * 1e3:.1f} ms" if sec < 1 else f"{sec:.2f} s"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--target", type=float, default=1e-3,
                    help="accuracy to reach: max abs error over all frames and images, x5 scale")
    ap.add_argument("--cases", default="crops,256,512", help="comma list of crops, 256, 512")
    ap.add_argument("--n-crops", type=int, default=32)
    ap.add_argument("--crop-size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image256", default="skimage/coffee", help="built-in image for the 256x256 case (central crop)")
    ap.add_argument("--image512", default="skimage/camera", help="built-in image for the 512x512 case")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--dt", type=float, default=0.02, help="implicit step, PDE time")
    ap.add_argument("--scale", type=float, default=5.0, help="images in [0, 1] are multiplied by this")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 compares one core with scikit-image's one core (0: torch's default)")
    ap.add_argument("--ref-tol", type=float, default=1e-9, help="relative duality gap of the reference steps")
    ap.add_argument("--ref-max-iter", type=int, default=2000, help="iteration cap of a reference step")
    ap.add_argument("--check-images", type=int, default=4, help="images for the reference's self-check")
    ap.add_argument("--check-steps", type=int, default=10, help="steps for the reference's self-check")
    ap.add_argument("--check-sk-images", type=int, default=2)
    ap.add_argument("--check-sk-frames", type=int, default=2, help="0 skips the scikit-image check")
    ap.add_argument("--check-sk-iters", type=int, default=20000)
    ap.add_argument("--check-sk-cases", default="crops", help="cases on which to run the scikit-image check")
    ap.add_argument("--pdeflow-tols", default=",".join(f"{t:g}" for t in PDEFLOW_TOLS))
    ap.add_argument("--pdeflow-dtypes", default="float32,float64")
    ap.add_argument("--sk-iters", default=",".join(str(n) for n in SK_ITERS))
    ap.add_argument("--sk-eps", default=",".join(f"{e:g}" for e in SK_EPS), help="'' skips the eps family")
    ap.add_argument("--sk-eps-cap", type=int, default=20000)
    ap.add_argument("--sk-dtypes", default="float32,float64")
    ap.add_argument("--deepinv", choices=("auto", "off", "standalone"), default="auto",
                    help="auto: use `import deepinv` if it works; standalone: else load its models/tv.py alone")
    ap.add_argument("--di-cases", default="crops", help="cases on which to run DeepInverse (slow)")
    ap.add_argument("--di-crits", default=",".join(f"{c:g}" for c in DI_CRITS))
    ap.add_argument("--di-taus", default="0.01,0.1")
    ap.add_argument("--di-dtypes", default="float32")
    ap.add_argument("--di-cap", type=int, default=20000)
    ap.add_argument("--search-subset", type=int, default=8,
                    help="baselines search their setting on this many crops first, then confirm on all")
    ap.add_argument("--trial-limit", type=float, default=300.0, help="seconds; a slower failing trial ends its family")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats of the kept settings (best kept)")
    ap.add_argument("--gpu-batch", type=int, default=256, help="batch of crops for the GPU throughput run")
    ap.add_argument("--quick", action="store_true",
                    help="8 crops and the 256 case, float32 only, 1 repeat, no reference cross-check with scikit-image")
    add_output_args(ap, "reference", results_block=True, what="reference.md")
    args = ap.parse_args(argv)
    out = open_out(args, argv)

    if args.quick:
        args.n_crops, args.cases = 8, "crops,256"
        args.pdeflow_dtypes = args.sk_dtypes = "float32"
        args.sk_eps = ""
        args.repeats, args.check_sk_frames, args.check_images, args.check_steps = 1, 0, 2, 5
        args.search_subset = 4
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    args.cases = split(args.cases)
    args.pdeflow_tols = [float(x) for x in split(args.pdeflow_tols)]
    args.pdeflow_dtypes = split(args.pdeflow_dtypes)
    args.sk_iters = [int(x) for x in split(args.sk_iters)]
    args.sk_eps = [float(x) for x in split(args.sk_eps)]
    args.sk_dtypes = split(args.sk_dtypes)
    args.di_crits = [float(x) for x in split(args.di_crits)]
    args.di_taus = [float(x) for x in split(args.di_taus)]
    args.di_dtypes = split(args.di_dtypes)
    args.di_cases = split(args.di_cases)
    args.check_sk_cases = split(args.check_sk_cases)
    if args.threads:
        torch.set_num_threads(args.threads)

    t_start = time.perf_counter()

    def log(msg=""):
        print(msg, flush=True)

    info = machine_info()
    log("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    deepinv_cls = None if args.deepinv == "off" else load_deepinv(args.deepinv == "standalone")
    if args.deepinv == "off":
        di_status = "not run (--deepinv off)"
    elif deepinv_cls is None:
        di_status = f"skipped: {_DEEPINV['why']}"
    else:
        di_status = f"run: {_DEEPINV['how']}"
    log(f"DeepInverse: {di_status}")

    cases = build_cases(args)
    log(f"\n== reference trajectories ({args.steps} steps of dt {args.dt:g}, images x{args.scale:g})")
    checks = {}
    for case in cases:
        compute_reference(case, args, log)
    for case in cases:
        a = argparse.Namespace(**vars(args))
        if case.name not in args.check_sk_cases:
            a.check_sk_frames = 0
        checks[case.name] = check_reference(case, a, log)

    libs = [("pdeflow", run_pdeflow, pdeflow_families(args)),
            ("scikit-image", run_skimage, skimage_families(args))]
    if deepinv_cls is not None:
        libs.append(("DeepInverse", run_deepinv, deepinv_families(args)))

    results = {}
    for case in cases:
        log(f"\n== case {case.name}: {case.description}; search for the cheapest setting reaching {args.target:g}")
        chosen = {}
        for lib, runner, fams in libs:
            if lib == "DeepInverse" and case.name not in args.di_cases:
                continue
            best, _ = search(lib, runner, fams, case, args, log)
            if best is None:
                log(f"    {lib}: no setting on the grid reached {args.target:g}")
            chosen[lib] = best
        # Timed, interleaved runs of the kept settings.
        timing = {lib: [] for lib in chosen if chosen[lib] is not None}
        runners = dict((lib, r) for lib, r, _ in libs)
        for r in range(args.repeats):
            for lib in timing:
                sec, err = runners[lib](case, chosen[lib], args, check=False)
                timing[lib].append((sec, err))
                log(f"    timed {lib:13s} run {r + 1}: {sec:8.2f}s  err {err:.2e}")
        results[case.name] = {lib: (chosen[lib], min(timing[lib]) if lib in timing else None) for lib in chosen}

    # GPU throughput (only where CUDA is available).
    gpu = None
    if torch.cuda.is_available() and results.get("crops", {}).get("pdeflow", (None, None))[0] is not None:
        s = dict(results["crops"]["pdeflow"][0], device="cuda", dtype=torch.float32)
        pool = datasets.builtin_pool("test", kind="photo")
        big = Case("gpu", (datasets.random_crops(pool, args.gpu_batch, args.crop_size, generator=args.seed + 1).double()
                           * args.scale), "")
        big.ref = torch.zeros(args.steps, *big.images.shape, dtype=torch.float64)
        run_pdeflow(subset(big, 2), s, args)  # warm-up
        sec, _ = run_pdeflow(big, s, args)
        gpu = (torch.cuda.get_device_name(0), args.gpu_batch, sec, args.gpu_batch / sec, s["tol"])
        log(f"\nGPU {gpu[0]}: {args.gpu_batch} crops {args.crop_size}^2, tol {s['tol']:g}, float32: "
            f"{sec:.2f}s, {gpu[3]:.1f} images/s")
    else:
        log("\nGPU: CUDA not available, GPU timing skipped")

    # ----------------------------------------------------------------- table
    total = time.perf_counter() - t_start
    rows = []
    for case in cases:
        res = results[case.name]
        B = case.images.shape[0]
        pd = res.get("pdeflow")
        for lib, (setting, tm) in res.items():
            if setting is None:
                rows.append((case.name, lib, "no grid setting reached the target", "-", "-", "-"))
                continue
            per_img = tm[0] / B
            ratio = "-"
            if lib != "pdeflow" and pd and pd[0] is not None:
                ratio = f"{per_img / (pd[1][0] / B):.1f}x"
            rows.append((case.name, lib, describe(lib, setting), f"{tm[1]:.2e}", fmt_t(per_img), ratio))
    head = ("case", "library", "cheapest setting reaching the target", "max error", "time / image",
            "pdeflow speed-up")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    log("\n" + "  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for r in rows:
        log("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    log(f"\ntotal {total:.0f}s")

    # ----------------------------------------------------------------- reference.md (and RESULTS.md)
    md = []
    md.append("## TV flow at matched accuracy (`benchmarks/reference.py`)\n")
    md.append(f"Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by "
              f"`python benchmarks/reference.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
              f" in {total / 60:.1f} minutes.\n")
    md.append(f"- Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
              f"({info['torch_threads']} threads), numpy {info['numpy']}, scikit-image {info['scikit-image']}, "
              f"Python {info['python']}; CUDA: {info['cuda']}"
              + (f"; load average at start {info['load_average']}" if "load_average" in info else "") + ".")
    md.append(f"- Task: {args.steps} implicit Euler steps of dt = {args.dt:g} (PDE time) of the TV flow on "
              f"images in [0, 1] times {args.scale:g}: each step an ROF problem "
              f"`min 1/2||u - u_k||^2 + {args.dt:g} TV(u)`, the same problem and discretisation in all libraries.")
    md.append(f"- Accuracy: max abs error over all {args.steps} frames and all images of a case against the "
              f"reference, on the x{args.scale:g} scale. **Target {args.target:g}.**")
    md.append(f"- Reference: pdeflow `tv_flow`, float64, tol {args.ref_tol:g} (relative duality gap per step), "
              f"at most {args.ref_max_iter} iterations per step. Checks:")
    for case in cases:
        c = checks[case.name]
        s = f"  - {case.name} (reference {case.ref_seconds:.0f}s): vs tol {args.ref_tol / 10:g} / " \
            f"max_iter {4 * args.ref_max_iter} on {c['self'][1]} images x {c['self'][2]} steps: " \
            f"max diff {c['self'][0]:.1e}"
        if "skimage" in c:
            s += (f"; vs scikit-image (eps=1e-12, {args.check_sk_iters} iterations per call) on "
                  f"{c['skimage'][1]} images x {c['skimage'][2]} frames: max diff {c['skimage'][0]:.1e}")
        md.append(s + ".")
    md.append("- Search: each library's grid is scanned from cheap to expensive, per family, and the first "
              "setting that reaches the target is kept; the cheapest family wins. Baselines search on the "
              f"first {args.search_subset} crops, then confirm on all (moving up the grid if needed). Grids: "
              f"pdeflow tol in {{{', '.join(f'{t:g}' for t in args.pdeflow_tols)}}} x "
              f"{{{', '.join(args.pdeflow_dtypes)}}}; scikit-image max_num_iter (eps=0) in "
              f"{{{', '.join(str(n) for n in args.sk_iters)}}}"
              + (f" or eps in {{{', '.join(f'{e:g}' for e in args.sk_eps)}}} (max_num_iter {args.sk_eps_cap})"
                 if args.sk_eps else "")
              + f" x {{{', '.join(args.sk_dtypes)}}}"
              + (f"; DeepInverse crit in {{{', '.join(f'{c:g}' for c in args.di_crits)}}} x tau in "
                 f"{{{', '.join(f'{t:g}' for t in args.di_taus)}}} x {{{', '.join(args.di_dtypes)}}} "
                 f"(n_it_max {args.di_cap}, cases {', '.join(args.di_cases)})" if deepinv_cls is not None else "")
              + ".")
    md.append(f"- Timing: kept settings run interleaved, {args.repeats} time(s), best time kept; pdeflow "
              f"runs each case as one batch, scikit-image one image at a time (a chain of {args.steps} calls, "
              f"each from the previous output), DeepInverse as one batch with its warm restart between calls.")
    md.append(f"- DeepInverse: {di_status}.")
    md.append("")
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        md.append("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |")
    md.append("")
    if gpu:
        md.append(f"GPU ({gpu[0]}): {gpu[1]} crops of {args.crop_size}x{args.crop_size}, tol {gpu[4]:g}, "
                  f"float32: {gpu[2]:.2f} s, **{gpu[3]:.1f} images/s**.")
    else:
        md.append("GPU: CUDA not available on this machine; the script times pdeflow on the GPU "
                  "(images/s) where it is.")
    write_file(out / "reference.md", "\n".join(md) + "\n")
    log(f"wrote {out / 'reference.md'}")
    if args.results:
        write_block(Path(args.results), "reference.py", "\n".join(md))
        log(f"wrote {args.results}")


if __name__ == "__main__":
    main()
