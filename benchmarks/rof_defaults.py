"""ROF at its default accuracy and exactly, against scikit-image's ``denoise_tv_chambolle``, side by side.

Maintained.  Noisy photographs (a grey photograph resized to the size, Gaussian noise of sigma 0.08,
float32) for each size and ``lam``:

* ``pdeflow default``: ``rof(g, lam)`` (certified RMS error <= 1e-3 of the range, mixed precision);
* ``pdeflow exact``: ``rof(g, lam, tol=1e-6)``;
* ``before: default``: the previous release's default call, ``rof(g, lam, tol=1e-6, precision="float64")``;
* ``before: input``: ``rof(g, lam, tol=1e-6, precision="input")``;
* ``skimage default``: ``denoise_tv_chambolle(g, weight=lam)``;
* ``skimage to pdeflow's accuracy``: ``denoise_tv_chambolle(g, weight=lam, eps=0, max_num_iter=n)``
  with ``n`` doubled from 200 until its max error is at most that of pdeflow's default (up to
  ``--skimage-cap`` iterations; the row says when the cap was hit).

``--volume``: the 3-D Shepp-Logan phantom with the same noise (``rof(..., ndim=3)``, scikit-image n-D);
``--batch K``: K photographs with different noise, pdeflow in one call on the batch, scikit-image one by one (the
times are for all K, the error the largest over them).

Errors are the largest absolute difference to a converged float64 reference (``rof`` at a relative
duality gap of 1e-9), divided by the range of the noisy image.  CPU time from ``time.process_time``,
single-threaded, one run each (``--repeat N``: the smallest of N).  At 2048 px and more the references take
hours at the larger ``lam``: ``--ref-cache DIR`` keeps them (and the dual field of an unfinished one, saved every
``--ref-chunk`` iterations), so that an interrupted run resumes where it stopped.

Usage::

    python benchmarks/rof_defaults.py --sizes 256 512 --lams 0.02 0.1 0.5
    python benchmarks/rof_defaults.py --sizes 2048 2160x3840 --lams 0.1 --no-before --ref-cache runs/rof_refs
    python benchmarks/rof_defaults.py --volume --sizes 64 128 --lams 0.02 0.1 0.5    # noisy 3-D phantoms
    python benchmarks/rof_defaults.py --batch 16 --sizes 256 --lams 0.1               # one call on 16 photographs
    python benchmarks/rof_defaults.py --smoke          # one small case (the test suite runs this)
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle
from skimage.transform import resize

from _results import add_output_args, open_out, timed
from pdeflow.datasets import builtin_image, shepp_logan_3d
from pdeflow.tv import rof

SIGMA = 0.08


def noisy_photo(n, seed: int = 0) -> np.ndarray:
    """A grey photograph resized to ``n x n`` (``n`` an int) or ``n = (H, W)``, with Gaussian noise of sigma 0.08,
    float32."""
    f = builtin_image("skimage/astronaut").mean(0).numpy().astype(np.float64)
    shape = (n, n) if isinstance(n, int) else tuple(n)
    f = resize(f, shape, anti_aliasing=min(shape) < f.shape[0], order=1)
    g = f + SIGMA * np.random.default_rng(seed).standard_normal(f.shape)
    return g.astype(np.float32)


def noisy_volume(n: int, seed: int = 0) -> np.ndarray:
    """The 3-D Shepp-Logan phantom of ``n^3`` voxels with Gaussian noise of sigma 0.08, float32."""
    f = shepp_logan_3d(n, dtype=torch.float64).numpy()
    return (f + SIGMA * np.random.default_rng(seed).standard_normal(f.shape)).astype(np.float32)


def shape_arg(text: str) -> tuple:
    """``"N"`` (N x N) or ``"HxW"`` as ``(H, W)``."""
    parts = text.lower().split("x")
    try:
        shape = tuple(int(x) for x in parts)
    except ValueError:
        shape = ()
    if len(shape) not in (1, 2) or min(shape) < 8:
        raise argparse.ArgumentTypeError(f"a size is N or HxW (at least 8 each), got {text!r}")
    return shape * 2 if len(shape) == 1 else shape


def label(shape: tuple) -> str:
    return str(shape[0]) if shape[0] == shape[1] else f"{shape[0]}x{shape[1]}"


def reference(g32: torch.Tensor, lam: float, tol: float, cache, chunk: int, ndim: int = 2, seed: int = 0) -> np.ndarray:
    """The float64 solution to a relative gap of ``tol``, solved ``chunk`` iterations at a time from the last
    dual field; with ``cache`` (a folder) the answer and an unfinished run's dual field are kept there."""
    g = g32.double()
    size = label(tuple(g.shape)) if ndim == 2 else f"{g.shape[0]}^3"
    name = f"ref_{size}{'' if seed == 0 else f'_seed{seed}'}_lam{lam:g}_tol{tol:g}"

    def kept(suffix):
        return cache / (name + suffix)

    def keep(suffix, value):
        """Save ``value`` as ``kept(suffix)`` through a temporary file (an interrupted save leaves the old one)."""
        np.save(kept(".tmp.npy"), value)
        kept(".tmp.npy").replace(kept(suffix))

    if cache is not None and kept(".u.npy").exists():
        return np.load(kept(".u.npy"))
    p, done = None, 0
    if cache is not None and kept(".p.npy").exists():
        p = torch.from_numpy(np.load(kept(".p.npy")))
        done = json.loads(kept(".json").read_text())["iterations"]
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # a chunk that stops at max_iter
            r = rof(g, lam, tol=tol, max_iter=chunk, p0=p, full_output=True, ndim=ndim)
        p, done = r.p, done + int(r.iterations[0])
        print(f"  reference {size}, lam {lam:g}: {done} iterations, relative gap "
              f"{float(r.gap[0]):.2e} (target {tol:g})", file=sys.stderr, flush=True)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            keep(".p.npy", p.numpy())
            if bool(r.converged[0]):
                keep(".u.npy", r.u.numpy())
            kept(".json").write_text(json.dumps({"iterations": done, "gap": float(r.gap[0])}))
        if bool(r.converged[0]):
            return r.u.numpy()


def case(shape: tuple, lam: float, skimage_cap: int, before: bool, ref_tol: float = 1e-9, cache=None,
         chunk: int = 5000, volume: bool = False, batch: int = 1, repeat: int = 1) -> dict:
    """One row: ``batch`` noisy photographs of ``shape`` (``volume``: noisy phantoms of ``shape[0]^3``), each
    solver's CPU time for all of them (pdeflow: one call on the batch) and its largest error over them."""
    ndim = 3 if volume else 2
    g = np.stack([noisy_volume(shape[0], k) if volume else noisy_photo(shape, k) for k in range(batch)])
    g32 = torch.from_numpy(g)
    flat = g.reshape(batch, -1)
    rngs = flat.max(1).astype(np.float64) - flat.min(1)
    refs = np.stack([reference(g32[k], lam, ref_tol, cache, chunk, ndim, k) for k in range(batch)])

    def err(u):
        """The largest error of a pixel over the images, each divided by its image's range."""
        d = np.abs(np.asarray(u, dtype=np.float64).reshape(refs.shape) - refs).reshape(batch, -1)
        return float((d.max(1) / rngs).max())

    size = f"{shape[0]}³" if volume else label(shape)
    row = {"size": size if batch == 1 else f"{batch} x {size}", "lam": lam}
    x = g32[:, None] if batch > 1 else g32[0]          # one call on the batch (B, 1, *spatial), or one image
    runs = {"pdeflow default": lambda: rof(x, lam, ndim=ndim),
            "pdeflow exact": lambda: rof(x, lam, tol=1e-6, ndim=ndim)}
    if before:
        runs["before: default"] = lambda: rof(x, lam, tol=1e-6, precision="float64", ndim=ndim)
        runs["before: input"] = lambda: rof(x, lam, tol=1e-6, precision="input", ndim=ndim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # "before: input" may stop at float32's floor
        for name, fn in runs.items():
            u, secs = timed(fn, repeat)
            row[name] = (secs, err(u))

    def skimage(**kw):
        return np.stack([denoise_tv_chambolle(image, weight=lam, **kw) for image in g])

    u, secs = timed(skimage, repeat)
    row["skimage default"] = (secs, err(u))
    goal, iters = row["pdeflow default"][1], 200
    while True:
        u, secs = timed(lambda: skimage(eps=0.0, max_num_iter=iters), repeat)
        e = err(u)
        if e <= goal or iters >= skimage_cap:
            break
        iters *= 2
    row["skimage to pdeflow's accuracy"] = (secs, e)
    row["skimage iterations"] = iters
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=shape_arg, nargs="+", default=[(256, 256), (512, 512), (2048, 2048)],
                    help="N (N x N) or HxW, e.g. 2160x3840 (4K UHD)")
    ap.add_argument("--lams", type=float, nargs="+", default=[0.02, 0.1, 0.5])
    ap.add_argument("--skimage-cap", type=int, default=6400, help="most iterations for skimage to reach pdeflow")
    ap.add_argument("--no-before", action="store_true", help="skip the previous release's calls (slow)")
    ap.add_argument("--volume", action="store_true", help="noisy 3-D phantoms of N^3 voxels (sizes: N)")
    ap.add_argument("--batch", type=int, default=1, help="images per call (seeds 0, 1, ...): one rof call on them all")
    ap.add_argument("--ref-tol", type=float, default=1e-9, help="relative duality gap of the float64 reference")
    ap.add_argument("--ref-cache", type=Path, default=None, metavar="DIR",
                    help="keep the references (and an unfinished one's dual field) here, to resume")
    ap.add_argument("--ref-chunk", type=int, default=5000, help="reference iterations between checkpoints")
    ap.add_argument("--repeat", type=int, default=1, help="time each call this many times, keep the smallest")
    ap.add_argument("--smoke", action="store_true", help="one small case")
    add_output_args(ap, "rof_defaults")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    if args.smoke:
        args.sizes, args.lams, args.skimage_cap = [(48, 48)], [0.1], 400
    rows = []
    cols = ["pdeflow default", "pdeflow exact", "before: default", "before: input", "skimage default",
            "skimage to pdeflow's accuracy"]
    print("| size | lam | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for n in args.sizes:
        for lam in args.lams:
            r = case(n, lam, args.skimage_cap, not args.no_before, args.ref_tol, args.ref_cache, args.ref_chunk,
                     args.volume, args.batch, args.repeat)
            rows.append(r)
            cells = [f"{r[c][0]:.3f} s, {r[c][1]:.1e}" if c in r else "" for c in cols]
            cells[-1] += f" ({r['skimage iterations']} it)"
            print(f"| {r['size']} | {lam:g} | " + " | ".join(cells) + " |", flush=True)
    (out / "rof_defaults.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
