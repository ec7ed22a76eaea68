"""
ROF solvers compared, and scikit-image
======================================

:func:`pdeflow.tv.rof` has four solvers of the same problem (``method``): FGP (Beck and Teboulle, 2009;
the default), PDHG (Chambolle and Pock, 2011), Chambolle's projection (2004) and ADMM. All stop per
image on the relative duality gap ``tol``, which bounds the error of the solution. scikit-image's
``denoise_tv_chambolle(f, weight=lam)`` solves the same problem.
"""
import pdeflow  # before torch: see Installation
import time

import matplotlib.pyplot as plt
from skimage.restoration import denoise_tv_chambolle

from pdeflow import datasets
from pdeflow.tv import ROF_METHODS, rof

f = datasets.builtin_image("skimage/camera")[:, 100:164, 180:244].double()
lam = 0.1
ref = rof(f, lam, tol=1e-7, max_iter=100000)  # FGP to a tight gap: the reference
rows = []
for method in ROF_METHODS:
    t0 = time.process_time()
    res = rof(f, lam, method=method, tol=1e-4, full_output=True)
    t = time.process_time() - t0
    err = float((res.u - ref).abs().max())
    rows.append((method, t, err))
    print(f"{method:10s} {int(res.iterations.max()):6d} iterations, {t:.2f} CPU-s, max error {err:.1e}")
t0 = time.process_time()
sk = denoise_tv_chambolle(f[0].numpy(), weight=lam, eps=1e-5, max_num_iter=2000)
t = time.process_time() - t0
print(f"scikit-image: {t:.2f} CPU-s, max difference {abs(sk - ref[0].numpy()).max():.1e}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.bar([r[0] for r in rows], [r[1] for r in rows])
ax.set_ylabel("CPU seconds to tol 1e-4")
ax.set_title("ROF, 64 x 64, lam = 0.1, float64")
fig.tight_layout()
