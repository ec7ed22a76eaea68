"""PS (and optionally PS+NLPE) reference on the extra held-out crops of benchmarks/inpaint_refine.py.

Computed once (about 30 s per crop for the three densities: one PS run passes through all of them)
and cached crop by crop in a JSON file, so an interrupted run resumes. Masks are kept (np.packbits,
base64) so that refinement could start from them.
"""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from pdeflow.inpaint import diffuse, nonlocal_pixel_exchange, probabilistic_sparsification
from pdeflow.metrics import mae, psnr, ssim


def pack(mask: torch.Tensor) -> str:
    return base64.b64encode(np.packbits(mask.detach().cpu().numpy().astype(bool).ravel()).tobytes()).decode()


def unpack(s: str, shape) -> torch.Tensor:
    bits = np.unpackbits(np.frombuffer(base64.b64decode(s), dtype=np.uint8))[: int(np.prod(shape))]
    return torch.from_numpy(bits.astype(np.float64)).view(shape)


def quality(f, mask, tol=1e-6) -> dict:
    u = diffuse(f, mask, tol=tol).clamp(0, 1)
    return {"mae255": 255 * float(mae(u, f)), "ssim": float(ssim(u, f)), "psnr": float(psnr(u, f))}


def ps_reference(f_all, names, densities, cache: Path, *, seed=0, nlpe=False, p=0.02, q=0.02, metric="mae",
                 log=print) -> dict:
    """{"ps": {d: [row per crop]}, "ps-nlpe": ...}; rows have mae255, ssim, psnr, mask_s, mask (packed)."""
    data = {}
    if cache.is_file():
        data = json.loads(cache.read_text())
    key = {"n": len(names), "size": int(f_all.shape[-1]), "seed": seed, "names": names, "p": p, "q": q,
           "metric": metric, "densities": [float(d) for d in densities]}
    if data.get("key") != key:
        data = {"key": key, "ps": {str(d): [] for d in densities}, "ps-nlpe": {str(d): [] for d in densities}}
    n = len(names)
    for i in range(n):
        f = f_all[i:i + 1].double()
        if len(data["ps"][str(densities[0])]) <= i:
            c0, w0 = time.process_time(), time.perf_counter()
            res = probabilistic_sparsification(f, list(densities), p=p, q=q, metric=metric,
                                               generator=seed * 1000 + i, progress=False, full_output=True)
            cpu_per_wall = (time.process_time() - c0) / (time.perf_counter() - w0)
            for d, r in zip(densities, res):
                row = quality(f, r.mask)
                # CPU seconds until this density (the run's CPU/wall ratio applied to its wall time to here)
                row.update(image=i, source=names[i], mask_s=r.seconds, mask_cpu_s=r.seconds * cpu_per_wall,
                           mask=pack(r.mask))
                data["ps"][str(d)].append(row)
            log(f"PS crop {i}: " + ", ".join(f"{d:g}: {data['ps'][str(d)][i]['mae255']:.2f}/"
                                              f"{data['ps'][str(d)][i]['ssim']:.3f} {data['ps'][str(d)][i]['mask_s']:.1f}s"
                                              for d in densities))
            _save(cache, data)
    if nlpe:
        for i in range(n):
            f = f_all[i:i + 1].double()
            for d in densities:
                rows = data["ps-nlpe"][str(d)]
                if len(rows) > i:
                    continue
                ps = data["ps"][str(d)][i]
                m0 = unpack(ps["mask"], (1, 1) + tuple(f.shape[-2:]))
                c0 = time.process_time()
                r = nonlocal_pixel_exchange(f, m0, candidates=30, cycles=5, metric=metric,
                                            generator=seed * 1000 + i, progress=False, full_output=True)
                row = quality(f, r.mask)
                row.update(image=i, source=names[i], mask_s=ps["mask_s"] + r.seconds,
                           mask_cpu_s=ps["mask_cpu_s"] + time.process_time() - c0, mask=pack(r.mask))
                rows.append(row)
                log(f"PS+NLPE crop {i} {d:g}: {row['mae255']:.2f}/{row['ssim']:.3f} {row['mask_s']:.1f}s")
                _save(cache, data)
    return data


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
