"""The noise level of an image and the ROF weight it calls for: ``rof(f, "auto")``.

:func:`estimate_sigma` takes the smaller of two estimates, both raised by texture. The wavelet estimate of
Donoho and Johnstone ("Ideal spatial adaptation by wavelet shrinkage", Biometrika 81(3), 1994), as
scikit-image's ``restoration.estimate_sigma``: the median absolute value of the finest diagonal Daubechies-2
detail coefficients over 0.6745. The patch estimate: the weak-texture patches of Liu, Tanaka and Okutomi
("Single-image noise level estimation for blind denoising", IEEE Trans. Image Process. 22(12), 2013), whose
gradient energy noise alone would reach, then, in place of their smallest covariance eigenvalue (low on few
patches), the rule of Chen, Zhu and Heng ("An efficient statistical method for image noise level
estimation", ICCV 2015): the mean of the smallest eigenvalues where it equals their median (their rule on all
patches was further off than the wavelet estimate on the TRAIN photos: edges raise every eigenvalue). Errors
of each: results page "Speed and accuracy of the solvers", section "Choosing lambda".

:func:`sure_lam` chooses ``lam`` by Stein's unbiased risk estimate (Stein, "Estimation of the mean of a
multivariate normal distribution", Ann. Statist. 9(6), 1981) of the mean squared error of ``u = rof(f, lam)``
against the clean image, for white Gaussian noise of standard deviation ``sigma``:

    SURE(lam) = ||u - f||^2 / n - sigma^2 + 2 sigma^2 div(u) / n,

its divergence ``div(u)`` (the trace of ``du/df``) by one Monte-Carlo finite difference (Ramani, Blu and
Unser, "Monte-Carlo SURE: a black-box optimization of regularization parameters for general denoising
algorithms", IEEE Trans. Image Process. 17(9), 2008): ``<b, u(f + eps b) - u(f)> / eps`` for one
random ``b`` of signs +-1, the perturbed solve warm started from the unperturbed one's dual field. Not the discrepancy
principle (``||u - f||^2 = n sigma^2``): the residual of the best ``lam`` depends on the image's texture, and
near ``sigma`` the residual barely grows with ``lam``, so no fixed residual target finds the best ``lam``
(results page "Speed and accuracy of the solvers", section "Choosing lambda").
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .. import ops
from ..errors import UserInputError
from ._grid import make_grid

__all__ = ["estimate_sigma", "sure_lam", "choose_lam"]

#: 0.75 quantile of the standard normal: the median of ``|N(0, sigma^2)|`` is ``0.6745 sigma``.
_MAD_TO_SIGMA = 0.6744897501960817


def _db2_highpass(dtype, device) -> torch.Tensor:
    import pywt  # a core dependency; imported here so ``import pdeflow.tv`` stays light
    return torch.tensor(pywt.Wavelet("db2").dec_hi, dtype=dtype, device=device)


def _detail(x: torch.Tensor, axis: int, h: torch.Tensor) -> torch.Tensor:
    """PyWavelets' ``dwt`` detail along ``axis`` (mode 'symmetric'): the half-sample symmetric extension by
    ``len(h) - 1`` samples, the full convolution with ``h``, every second sample from the second."""
    n, k = x.shape[axis], h.numel()
    i = torch.arange(-(k - 1), n + k - 1, device=x.device)
    j = torch.remainder(i, 2 * n)
    j = torch.where(j >= n, 2 * n - 1 - j, j)        # any length, as PyWavelets extends short signals
    xe = x.index_select(axis, j).movedim(axis, -1)
    full = xe.unfold(-1, k, 1) @ h.flip(0)           # convolution of the extended signal, 'valid' part
    return full[..., 1::2].movedim(-1, axis)


#: The estimates :func:`estimate_sigma` offers.
METHODS = ("lower", "patch", "wavelet")
#: Patch side of the patch estimate: 7 pixels (Liu, Tanaka and Okutomi's default) in 2-D, 5 voxels in 3-D.
PATCH = {2: 7, 3: 5}
#: The weak-texture threshold is this quantile of a noise patch's gradient energy (Liu, Tanaka and Okutomi's
#: code, ``1 - 1e-6``), and it is refined over :data:`PATCH_ROUNDS` selections.
CONFIDENCE = 1 - 1e-6
PATCH_ROUNDS = 2
#: Larger images take every ``s``-th patch position along each axis, the fewest ``s`` that leaves at most this
#: many (a 128 x 128 image has 122 x 122 of 7 x 7 patches): the covariance's cost, not its accuracy, grows
#: with the count.
PATCH_POSITIONS = 1 << 15


def estimate_sigma(f, *, ndim: int | None = None, method: str = "lower") -> torch.Tensor:
    """Standard deviation of white Gaussian noise in each image (or volume), estimated from the image.

    Per channel, then the mean over the channels. Texture adds to both estimates (in expectation neither
    falls below the noise), so the default takes the smaller:

    * ``"wavelet"``: scikit-image's ``estimate_sigma`` (``channel_axis=0, average_sigmas=True``): the median
      of the absolute values of the finest diagonal detail coefficients of the Daubechies-2 wavelet transform
      (PyWavelets' ``dwtn``, mode ``'symmetric'``; coefficients exactly zero left out) divided by 0.6745.
      Fine texture counts as noise.
    * ``"patch"``: the patches of weak texture (all overlapping 7 x 7 patches, 5 x 5 x 5 in volumes, whose
      gradient energy is below what noise of the current estimate reaches with probability ``1 - 1e-6``;
      two selections from all patches), then the mean of the smallest eigenvalues of their covariance, as
      many as keep that mean at their median. 0 where the image has fewer patches than pixels in a patch.
    * ``"lower"`` (default): the smaller of the two per channel (the wavelet alone where ``"patch"`` is 0
      for want of patches).

    Parameters
    ----------
    f : Tensor, shape (H, W), (C, H, W) or (B, C, H, W); with ``ndim=3`` (D, H, W), (C, D, H, W) or (B, C, D, H, W)
        Images (volumes), any floating dtype and device; intensities as given.
    ndim : {2, 3}, optional
        Number of spatial axes (default 2); volumes use 3-D wavelets (the ``'ddd'`` coefficients) and patches.
    method : {"lower", "patch", "wavelet"}
        The estimate (see above).

    Returns
    -------
    Tensor, shape (B,) for batched input, 0-d otherwise
        The estimate in the units of ``f``, in ``f``'s dtype (computed in float64); 0 for a constant image.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv.noise import estimate_sigma
    >>> g = torch.Generator().manual_seed(0)
    >>> f = 0.5 + 0.1 * torch.randn(256, 256, generator=g, dtype=torch.float64)
    >>> round(float(estimate_sigma(f)), 2), round(float(estimate_sigma(f, method="wavelet")), 2)
    (0.1, 0.1)
    """
    if method not in METHODS:
        raise UserInputError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    grid = make_grid(ndim, None)
    f = ops.check_image(f, "f", ndim=grid.ndim)
    x, in_dim = ops.as_batch(f, "f", grid.ndim)
    x = x.detach()
    if method == "wavelet":
        per = _wavelet(x, grid.ndim)
    elif method == "patch":
        per = _patch(x, grid.ndim)
    else:
        wav, pat = _wavelet(x, grid.ndim), _patch(x, grid.ndim)
        per = torch.where(pat > 0, torch.minimum(wav, pat), wav)
    sigma = per.mean(1).to(f.dtype if f.is_floating_point() else torch.float64)
    return sigma if in_dim == grid.ndim + 2 else sigma[0]


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.device.type != "mps" else torch.float32


def _wavelet(x: torch.Tensor, nd: int) -> torch.Tensor:
    """The wavelet estimate of each channel of a batch ``(B, C, ...)``, float64 ``(B, C)``."""
    work = _work_dtype(x)
    h = _db2_highpass(work, x.device)
    d = x.to(work)
    for axis in range(-nd, 0):
        d = _detail(d, axis, h)
    d = d.flatten(2).abs()                                   # (B, C, m)
    s, _ = torch.sort(d, dim=-1)
    zeros = (s == 0).sum(-1)                                 # zeros sort first; they are left out
    m = s.shape[-1] - zeros
    lo = (zeros + (m - 1).clamp_min(0) // 2).clamp_max(s.shape[-1] - 1)
    hi = (zeros + m // 2).clamp_max(s.shape[-1] - 1)
    med = 0.5 * (s.gather(-1, lo.unsqueeze(-1)) + s.gather(-1, hi.unsqueeze(-1))).squeeze(-1)
    med = torch.where(m > 0, med, torch.zeros_like(med))
    return (med / _MAD_TO_SIGMA).double()


def _box_sum(x: torch.Tensor, widths: list[int]) -> torch.Tensor:
    """Sums over all windows of ``widths`` along the last ``len(widths)`` axes (the 'valid' part)."""
    for a, k in zip(range(x.dim() - len(widths), x.dim()), widths):
        c = torch.cat([torch.zeros_like(x.narrow(a, 0, 1)), x.cumsum(a)], a)
        x = c.narrow(a, k, c.shape[a] - k) - c.narrow(a, 0, c.shape[a] - k)
    return x


def _gradient_energy_law(d: int, nd: int) -> tuple[int, float]:
    """Rank and trace of ``sum_k D_k^T D_k``, ``D_k`` the centred differences along axis ``k`` inside a patch:
    the gradient energy of a patch of white noise of variance ``s^2`` is about ``s^2`` times a Gamma variable of
    shape ``rank / 2`` and scale ``2 trace / rank`` (Liu, Tanaka and Okutomi)."""
    r = d ** nd
    eye = torch.eye(r, dtype=torch.float64).reshape((r,) + (d,) * nd)
    m = torch.zeros(r, r, dtype=torch.float64)
    for a in range(1, nd + 1):
        dk = ((eye.narrow(a, 2, d - 2) - eye.narrow(a, 0, d - 2)) / 2).reshape(r, -1)
        m += dk @ dk.T
    return int(torch.linalg.matrix_rank(m)), float(m.trace())


def _median_mean(lam: torch.Tensor) -> torch.Tensor:
    """Chen, Zhu and Heng's rule on ascending eigenvalues ``(..., r)``: the mean of the most smallest ones
    that have as many of them above their mean as below it."""
    k = torch.arange(1, lam.shape[-1] + 1, device=lam.device)
    mean = (lam.cumsum(-1) / k).contiguous()
    below = torch.searchsorted(lam, mean, right=False).clamp_max(k)
    above = k - torch.searchsorted(lam, mean, right=True).clamp_max(k)
    n = torch.where(below == above, k, torch.zeros_like(k)).amax(-1)      # k = 1 always qualifies
    return mean.gather(-1, (n - 1).unsqueeze(-1)).squeeze(-1).clamp_min(0)


def _patch(x: torch.Tensor, nd: int) -> torch.Tensor:
    """The patch estimate of each channel of a batch ``(B, C, ...)``, float64 ``(B, C)``."""
    from scipy.special import gammaincinv  # a core dependency (scipy.stats is slow to import)

    work = _work_dtype(x)
    B, C = x.shape[:2]
    d = PATCH[nd]
    r = d ** nd
    out = torch.zeros(B * C, dtype=torch.float64)
    imgs = x.reshape((B * C,) + x.shape[2:]).to(work)
    if any(n < d for n in imgs.shape[1:]) or math.prod(n - d + 1 for n in imgs.shape[1:]) < r:
        return out.reshape(B, C).to(x.device)
    rank, trace = _gradient_energy_law(d, nd)
    tau0 = float(gammaincinv(rank / 2, CONFIDENCE)) * 2 * trace / rank      # the Gamma law's quantile
    for i, img in enumerate(imgs):
        img = img - img.mean()                       # centred: the covariance below cancels less
        energy = 0
        for a in range(nd):
            g = ((img.narrow(a, 2, img.shape[a] - 2) - img.narrow(a, 0, img.shape[a] - 2)) / 2).square()
            energy = energy + _box_sum(g, [d - 2 if b == a else d for b in range(nd)])
        patches = img
        for a in range(nd):
            patches = patches.unfold(a, d, 1)            # a view: (positions..., d, ...)
        step = math.ceil((energy.numel() / PATCH_POSITIONS) ** (1 / nd) - 1e-9)
        if step > 1:
            energy = energy[(slice(None, None, step),) * nd]
            patches = patches[(slice(None, None, step),) * nd]
        energy = energy.flatten()
        keep = torch.ones_like(energy, dtype=torch.bool)
        sig2 = float(_covariance_sigma2(patches, keep, r))
        for _ in range(PATCH_ROUNDS):
            nxt = keep & (energy < sig2 * tau0)
            if int(nxt.sum()) < r:                          # too few patches for a covariance: keep the last
                break
            keep = nxt
            sig2 = float(_covariance_sigma2(patches, keep, r))
        out[i] = sig2 ** 0.5
    return out.reshape(B, C).to(x.device)


def _covariance_sigma2(patches: torch.Tensor, keep: torch.Tensor, r: int) -> torch.Tensor:
    """:func:`_median_mean` of the covariance of the kept patches (``keep`` flat over the patch positions),
    summed in slabs along the first position axis so that no copy of all patches is made."""
    rows = patches.shape[0]
    per_row = keep.numel() // rows
    step = max(1, (1 << 22) // (per_row * r))
    keep = keep.reshape(rows, per_row)
    total = patches.new_zeros(r)
    gram = patches.new_zeros(r, r)
    for i in range(0, rows, step):
        p = patches[i:i + step].reshape(-1, r)[keep[i:i + step].flatten()]
        total += p.sum(0)
        gram += p.T @ p
    n = int(keep.sum())
    mean = total / n
    cov = gram / n - mean[:, None] * mean[None, :]
    lam = torch.linalg.eigvalsh(cov.cpu().double())
    return _median_mean(lam)


#: The first three candidates are ``lam = sigma * m`` for these ``m``, one step of :data:`STEP` apart; the search
#: walks on in steps of :data:`STEP` until a candidate is below both neighbours (at most :data:`MAX_CANDIDATES`).
#: They span the best ``lam / sigma`` of the TRAIN photos (results page "Speed and accuracy of the solvers").
START = (0.35, 0.56, 0.9)
STEP = 1.6
MAX_CANDIDATES = 9
#: The finite difference's step, ``eps = EPS * sigma``: the perturbed solve is warm started, so a step well
#: above the solver's error keeps the difference accurate.
EPS = 0.1


def sure_lam(f: torch.Tensor, sigma: torch.Tensor, solve: Callable, *, seed: int = 0):
    """The ``lam`` of smallest SURE per image of a batch, by a search over ``lam / sigma`` in log steps.

    Parameters
    ----------
    f : Tensor, shape (B, C, ...)
        The noisy images (volumes), a batch.
    sigma : Tensor, shape (B,)
        Their noise levels (> 0), in the units of ``f``.
    solve : callable
        ``solve(f, lam, p0) -> (u, p)``: the ROF solution and its dual field for a ``(B,)`` tensor ``lam``,
        warm started from ``p0`` (or None).
    seed : int
        Seed of the finite difference's direction ``b``, random signs (the choice is deterministic).

    Returns
    -------
    lam : Tensor, shape (B,), float64
        The minimiser of a parabola through the smallest SURE and its two neighbours (in ``log lam``).
    p : Tensor
        The dual field of the candidate nearest to ``lam``, a warm start for the final solve.
    solves : int
        Number of ROF solves made (the perturbed ones included).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import rof
    >>> from pdeflow.tv.noise import sure_lam
    >>> g = torch.Generator().manual_seed(0)
    >>> f = (torch.arange(64.0) >= 32).double().expand(64, 64) + 0.1 * torch.randn(64, 64, generator=g)
    >>> def solve(f, lam, p0):
    ...     r = rof(f, lam, p0=p0, full_output=True)
    ...     return r.u, r.p
    >>> lam, p, n = sure_lam(f[None, None], torch.tensor([0.1]), solve)
    >>> bool(0.02 < lam.item() < 0.5)
    True
    """
    B = f.shape[0]
    sig = sigma.double().reshape(B)
    n = f[0].numel()
    # Rademacher signs (Hutchinson's trace estimate: lower variance than a normal b), from integer draws: never
    # the same numbers as noise drawn with torch.randn from the same seed, which would make b the noise itself
    gen = torch.Generator(device="cpu").manual_seed(seed)
    b = (2 * torch.randint(0, 2, f.shape, generator=gen) - 1).to(device=f.device, dtype=f.dtype)
    eps = (EPS * sig).to(f.dtype).reshape((B,) + (1,) * (f.dim() - 1))
    f64 = f.double()
    tried: list[list[tuple[float, float]]] = [[] for _ in range(B)]   # (log m, SURE / sigma^2) per image
    fields: list[dict[float, torch.Tensor]] = [{} for _ in range(B)]
    solves = 0

    def evaluate(idx: list[int], ms: list[float]) -> None:
        nonlocal solves
        i = torch.tensor(idx, device=f.device)
        lam = torch.tensor(ms, dtype=torch.float64, device=f.device) * sig[i]
        nearest = [fields[j][min(fields[j], key=lambda lm: abs(lm - math.log(m)))] if fields[j] else None
                   for j, m in zip(idx, ms)]
        p0 = torch.stack(nearest) if all(p is not None for p in nearest) else None
        u, p = solve(f[i], lam, p0)
        u1, _ = solve(f[i] + eps[i] * b[i], lam, p)
        solves += 2
        diff = u1.double() - u.double()
        div = (diff * b[i].double()).flatten(1).sum(1) / eps[i].double().flatten()
        res = (u.double() - f64[i]).square().flatten(1).sum(1)
        s2 = sig[i] ** 2
        risk = (res / n - s2 + 2 * s2 * div / n) / s2
        for k, j in enumerate(idx):
            tried[j].append((math.log(ms[k]), float(risk[k])))
            fields[j][math.log(ms[k])] = p[k]

    for m in START:
        evaluate(list(range(B)), [m] * B)
    while True:
        nxt = {}
        for j in range(B):
            pts = sorted(tried[j])
            k = min(range(len(pts)), key=lambda q: pts[q][1])
            if 0 < k < len(pts) - 1 or len(pts) >= MAX_CANDIDATES:
                continue
            nxt[j] = math.exp(pts[0][0]) / STEP if k == 0 else math.exp(pts[-1][0]) * STEP
        if not nxt:
            break
        evaluate(list(nxt), list(nxt.values()))

    lams, ps = [], []
    for j in range(B):
        pts = sorted(tried[j])
        k = min(range(len(pts)), key=lambda q: pts[q][1])
        x0 = pts[k][0]
        if 0 < k < len(pts) - 1:
            (xa, ya), (xb, yb), (xc, yc) = pts[k - 1], pts[k], pts[k + 1]
            den = (xb - xa) * (yb - yc) - (xb - xc) * (yb - ya)
            if den != 0:
                x0 = xb - 0.5 * ((xb - xa) ** 2 * (yb - yc) - (xb - xc) ** 2 * (yb - ya)) / den
                x0 = min(max(x0, xa), xc)
        lams.append(math.exp(x0) * float(sig[j]))
        ps.append(fields[j][min(fields[j], key=lambda lm: abs(lm - x0))])
    return torch.tensor(lams, dtype=torch.float64, device=f.device), torch.stack(ps), solves


def choose_lam(f: torch.Tensor, nd: int, solve: Callable) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``rof(f, "auto")``'s choice: per image of ``f`` (any shape :func:`~pdeflow.tv.rof` takes, ``nd`` spatial
    axes), the ``lam`` of :func:`sure_lam` at the noise level of :func:`estimate_sigma`, 0 for an image
    without noise, as float64 ``(B,)``; and the dual field of the search's solve nearest to it (None unless
    every image was searched), a warm start for the final solve. ``solve(f, lam, p0)`` returns a result with
    ``u`` and ``p``; the search runs without autograd (the choice is a constant for derivatives).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tv import rof
    >>> from pdeflow.tv.noise import choose_lam
    >>> g = torch.Generator().manual_seed(1)
    >>> f = torch.stack([0.1 * torch.randn(1, 32, 32, generator=g), torch.zeros(1, 32, 32)])
    >>> lam, p = choose_lam(f, 2, lambda fb, lb, pb: rof(fb, lb, p0=pb, full_output=True))
    >>> bool(lam[0] > 0), float(lam[1]), p is None          # no noise in the second image: lam 0
    (True, 0.0, True)
    """
    with torch.no_grad():
        x = ops.as_batch(f.detach(), "f", nd)[0]
        sigma = estimate_sigma(x, ndim=nd).double()
        lam = torch.zeros_like(sigma)
        noisy = torch.nonzero(sigma > 0).flatten()
        if noisy.numel() == 0:
            return lam, None

        def pair(fb, lam_b, p_b):
            r = solve(fb, lam_b.to(fb.dtype), p_b)
            return r.u, r.p

        lam_n, p_n, _ = sure_lam(x[noisy], sigma[noisy], pair)
        lam[noisy] = lam_n
    return lam, p_n if noisy.numel() == x.shape[0] else None


def check_auto(lam) -> None:
    """Refuse a string ``lam`` other than ``"auto"``."""
    if lam != "auto":
        raise UserInputError(f"lam must be a number >= 0, a tensor of shape (B,) or 'auto', got {lam!r}")
