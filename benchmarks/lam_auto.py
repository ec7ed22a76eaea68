"""``rof(f, "auto")`` against the best ``lam`` and against scikit-image's default, on held-out noisy photos.

Maintained.  For each held-out photo (the built-in TEST photos, ``builtin_names("test", kind="photo")``, and the nature
photos of ``make photos`` in ``.data/photos/mate-nature``, never used to choose anything) a grey centre crop
(``--size``, the whole image when smaller), plus white Gaussian noise of each ``--sigmas`` level (seeded,
not clipped), float32. Per noise level, means over the photos:

* ``oracle``: the ``lam`` of the highest PSNR against the clean crop (a log grid of ``--grid`` points from
  0.1 to 3.2 times sigma, extended in the same steps while the best is at an end, refined by a parabola through
  the best point and its neighbours) and that PSNR;
* ``auto``: ``rof(f, "auto")``'s ``lam`` (``full_output``) and PSNR; ``loss`` is oracle minus auto (mean and
  largest over the photos, and the number of photos where it exceeds 0.3 dB);
* ``skimage``: ``denoise_tv_chambolle(f)`` with its defaults (``weight=0.1``);
* CPU seconds (``time.process_time``, one thread) of ``rof(f, "auto")`` and of one ``rof(f, lam)`` at the
  ``lam`` it chose, side by side in the same run.

With ``--split train``: the same on the TRAIN photos (``builtin_names("train", kind="photo")`` and the ``opencv``
and ``lomiri`` photos of ``make photos``), those the choices of ``pdeflow.tv.noise`` were made on.

With ``--estimators``: the noise estimates of ``estimate_sigma`` (each ``method``) against the true ``sigma`` on
the TRAIN photos instead (``builtin_names("train", kind="photo")`` and the ``opencv`` and ``lomiri`` photos of
``make photos``), the same crops and noise; ``estimators.md``: the relative error's mean, median and largest
magnitude per level.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/lam_auto.py --out benchmarks/results/lam_auto
    python benchmarks/lam_auto.py --estimators --sigmas 0.01 0.02 0.05 0.1 0.2 --size 128 --out DIR
    python benchmarks/lam_auto.py --smoke          # one small photo and level
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import pdeflow  # noqa: E402
from _results import add_output_args, open_out, timed  # noqa: E402
from pdeflow.datasets import builtin_image, builtin_names  # noqa: E402
from pdeflow.io import read_image  # noqa: E402
from pdeflow.metrics import psnr  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NATURE = ROOT / ".data" / "photos" / "mate-nature"


def photos(size: int, smoke: bool, split: str = "test") -> dict[str, torch.Tensor]:
    out = {}
    items = [(n, lambda n=n: builtin_image(n, grey=True)) for n in builtin_names(split, kind="photo")]
    folders = [NATURE] if split == "test" else [NATURE.parent / "opencv", NATURE.parent / "lomiri"]
    # The smoke run checks the code path on the built-in photos alone; a full run needs `make photos`.
    for d in [] if smoke else folders:
        if not d.is_dir():
            sys.exit(f"lam_auto.py: the photo folder {d} is missing; run `make photos` first")
        items += [(f"{d.name}/{p.stem}", lambda p=p: read_image(p, grey=True))
                  for p in sorted(d.iterdir()) if p.suffix.lower() in (".jpg", ".png")]
    for name, load in items[:1] if smoke else items:
        x = load()
        H, W = x.shape[-2:]
        h, w = min(size, H), min(size, W)
        out[name] = x[:, (H - h) // 2:(H - h) // 2 + h, (W - w) // 2:(W - w) // 2 + w].double()
    return out


def score(u, x) -> float:
    return float(psnr(u.double(), x, data_range=1.0))


def oracle(f, x, sigma, n):
    lams = list(sigma * np.geomspace(0.1, 3.2, n))
    ps = [score(pdeflow.rof(f, float(lam)), x) for lam in lams]
    step = lams[1] / lams[0]
    # a best lam at an end of the grid (nearly flat photos want more than 3.2 sigma): walk on past it
    while len(lams) < 3 * n and int(np.argmax(ps)) in (0, len(lams) - 1):
        end = int(np.argmax(ps)) == 0
        lam = lams[0] / step if end else lams[-1] * step
        lams.insert(0 if end else len(lams), lam)
        ps.insert(0 if end else len(ps), score(pdeflow.rof(f, float(lam)), x))
    lams, ps, n = np.array(lams), np.array(ps), len(lams)
    k = int(np.argmax(ps))
    if 0 < k < n - 1:
        c = np.polyfit(np.log(lams[k - 1:k + 2]), ps[k - 1:k + 2], 2)
        if c[0] < 0:
            lam = float(np.exp(np.clip(-c[1] / (2 * c[0]), np.log(lams[k - 1]), np.log(lams[k + 1]))))
            p = score(pdeflow.rof(f, lam), x)
            if p > ps[k]:
                return lam, p
    return float(lams[k]), float(ps[k])


def estimators(args, out) -> int:
    imgs = photos(args.size, args.smoke, "train")
    err = {m: {s: [] for s in args.sigmas} for m in pdeflow.tv.noise.METHODS}
    for si, sigma in enumerate(args.sigmas):
        for k, x in enumerate(imgs.values()):
            g = torch.Generator().manual_seed(1000 * si + k)
            f = (x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)).float()
            for m in err:
                err[m][sigma].append(float(pdeflow.tv.estimate_sigma(f, method=m)) / sigma - 1)
    lines = [f"{len(imgs)} TRAIN photos; sigma_hat / sigma - 1: mean / median / largest magnitude\n",
             "| method | " + " | ".join(f"sigma {s:g}" for s in args.sigmas) + " |",
             "|---|" + "---|" * len(args.sigmas)]
    for m, e in err.items():
        lines.append(f"| {m} | " + " | ".join(f"{np.mean(e[s]):+.3f} / {np.median(e[s]):+.3f} / "
                                              f"{np.abs(e[s]).max():.2f}" for s in args.sigmas) + " |")
    table = "\n".join(lines)
    print(table)
    cmd = "python benchmarks/lam_auto.py " + " ".join(sys.argv[1:])
    (out / "estimators.md").write_text(f"<!-- generated by `{cmd}` -->\n\n{table}\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.15, 0.2])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--grid", type=int, default=11)
    add_output_args(ap, "lam_auto", what="summary.md and rows.csv")
    ap.add_argument("--split", choices=("test", "train"), default="test",
                    help="the held-out photos (default) or the TRAIN photos the choices were made on")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--estimators", action="store_true", help="noise estimates on the TRAIN photos instead")
    args = ap.parse_args(argv)
    out = open_out(args, argv)
    torch.set_num_threads(1)
    if args.estimators:
        return estimators(args, out)
    from skimage.restoration import denoise_tv_chambolle

    if args.smoke:
        args.sigmas, args.size, args.grid = [0.1], 48, 5
    imgs = photos(args.size, args.smoke, args.split)
    rows = []
    for si, sigma in enumerate(args.sigmas):
        for k, (name, x) in enumerate(imgs.items()):
            g = torch.Generator().manual_seed(1000 * si + k)
            f = (x + sigma * torch.randn(x.shape, generator=g, dtype=torch.float64)).float()
            lam_o, p_o = oracle(f, x, sigma, args.grid)
            r, t_auto = timed(lambda: pdeflow.rof(f, "auto", full_output=True))
            lam_a = float(r.lam[0])
            _, t_one = timed(lambda: pdeflow.rof(f, lam_a))
            p_a = score(r.u, x)
            p_sk = score(torch.from_numpy(denoise_tv_chambolle(f[0].numpy())), x[0])
            sig_hat = float(pdeflow.tv.estimate_sigma(f))
            rows.append((sigma, name, lam_o, p_o, lam_a, p_a, p_sk, sig_hat, t_auto, t_one))
            print(f"sigma {sigma:g} {name}: oracle lam {lam_o:.4f} {p_o:.2f} dB, auto lam {lam_a:.4f} {p_a:.2f} dB "
                  f"(sigma_hat {sig_hat:.4f}), skimage {p_sk:.2f} dB, CPU s auto {t_auto:.2f} one {t_one:.2f}",
                  flush=True)
    head = ("| sigma | photos | oracle lam | oracle PSNR | auto lam | auto PSNR | loss mean / max (dB) | over 0.3 dB | "
            "skimage default PSNR | auto CPU s | one rof CPU s | ratio |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for sigma in args.sigmas:
        rs = np.array([r[2:] for r in rows if r[0] == sigma], dtype=float)
        loss = rs[:, 1] - rs[:, 3]
        lines.append(f"| {sigma:g} | {len(rs)} | {rs[:, 0].mean():.4f} | {rs[:, 1].mean():.2f} | {rs[:, 2].mean():.4f} "
                     f"| {rs[:, 3].mean():.2f} | {loss.mean():.2f} / {loss.max():.2f} | {int((loss > 0.3).sum())} | {rs[:, 4].mean():.2f} | "
                     f"{rs[:, 6].mean():.2f} | {rs[:, 7].mean():.2f} | {rs[:, 6].sum() / rs[:, 7].sum():.1f} |")
    table = "\n".join(lines)
    print(table)
    cmd = "python benchmarks/lam_auto.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "summary.md").write_text(f"<!-- generated by `{cmd}` -->\n\n{table}\n")
    with open(out / "rows.csv", "w") as fh:
        fh.write("sigma,photo,oracle_lam,oracle_psnr,auto_lam,auto_psnr,skimage_psnr,sigma_hat,auto_cpu_s,"
                 "one_rof_cpu_s\n")
        for r in rows:
            fh.write(",".join(str(v) for v in r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
