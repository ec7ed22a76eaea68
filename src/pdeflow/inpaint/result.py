"""The errors and the figure of one inpainting result: what ``pdeflow mask`` and ``pdeflow inpaint`` print and
draw beside the inpainted image.

* :func:`result_errors`: MSE, PSNR, MAE and SSIM against the image; :func:`errors_text`: them as one line.
* :func:`marked`: the image with its known pixels in red; :func:`result_figure`: input, mask, known pixels,
  inpainting, error and a zoomed crop of the largest error.
"""
from __future__ import annotations

import torch

from ..metrics import mae as mae_metric
from ..metrics import mse as mse_metric
from ..metrics import psnr, ssim

__all__ = ["result_errors", "errors_text", "marked", "result_figure"]


def result_errors(f: torch.Tensor, u: torch.Tensor) -> dict:
    """MSE, PSNR, MAE and SSIM of one inpainting ``u`` (clipped to [0, 1]) against ``f``, on [0, 1].

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.result import result_errors
    >>> e = result_errors(torch.zeros(1, 16, 16), torch.full((1, 16, 16), 0.5))
    >>> e["mse"], e["mae"]
    (0.25, 0.5)
    """
    f64, u64 = f.double().cpu(), u.double().cpu().clamp(0, 1)
    return {"mse": float(mse_metric(f64, u64)), "psnr": float(psnr(f64, u64, data_range=1.0)),
            "mae": float(mae_metric(f64, u64)), "ssim": float(ssim(f64, u64, data_range=1.0))}


def errors_text(e: dict) -> str:
    """:func:`result_errors` as one line of text.

    Examples
    --------
    >>> from pdeflow.inpaint.result import errors_text
    >>> errors_text({"mse": 0.25, "psnr": 6.02, "mae": 0.5, "ssim": 0.1})
    'MSE 0.25, PSNR 6.02 dB, MAE 0.5000, SSIM 0.1000'
    """
    return f"MSE {e['mse']:.3g}, PSNR {e['psnr']:.2f} dB, MAE {e['mae']:.4f}, SSIM {e['ssim']:.4f}"


def marked(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """RGB (3, H, W): the image at half brightness with the known pixels in red.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint.result import marked
    >>> marked(torch.ones(1, 2, 2), torch.eye(2)[None])[:, 0, 1].tolist()
    [0.5, 0.5, 0.5]
    """
    rgb = 0.5 * (f.expand(3, *f.shape[-2:]) if f.shape[0] == 1 else f).clamp(0, 1)
    red = torch.tensor([1.0, 0.1, 0.1], dtype=rgb.dtype).view(3, 1, 1).expand_as(rgb)
    return torch.where(mask.bool(), red, rgb)


def result_figure(f, mask, u, title: str):
    """Input, mask, known pixels, inpainting and error; below, a zoomed crop (a quarter of the
    side, where the error is largest, outlined above) of the input and the inpainting, with one
    contrast stretch (1-99 % of their values there, stated in the titles), and of the error
    (what ``pdeflow mask`` and ``pdeflow inpaint`` write).

    Examples
    --------
    >>> import torch
    >>> from pdeflow.inpaint import inpaint_diffusion, random_mask
    >>> from pdeflow.inpaint.result import result_figure
    >>> f = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> m = random_mask((1, 16, 16), 0.2, generator=1)
    >>> fig = result_figure(f, m, inpaint_diffusion(f, m), "example")
    >>> len(fig.subfigs)
    2
    """
    from .. import viz
    panels = [(f, "input"), (mask.expand(1, *mask.shape[-2:]).float(), "mask (white = known)"),
              (marked(f, mask), "known pixels (red)"), (u.clamp(0, 1), "inpainted")]
    err = (u - f).abs().amax(0, keepdim=True)
    scale = float(err.max())
    panels.append(((err / scale) if scale > 0 else err, f"|error| (white = {scale:.3g})"))
    win = viz.zoom_window(err[0], max(8, min(f.shape[-2:]) // 4))
    zoom = min(f.shape[-2:]) / win[2]
    lo, hi = viz.robust_range(torch.cat([viz.crop(f, win), viz.crop(u, win)]))
    zerr = viz.crop(err, win)
    zscale = float(zerr.max())
    zoomed = [(viz.stretch(viz.crop(f, win), lo, hi), f"input, zoom x{zoom:.3g}\n{viz.stretch_label(lo, hi)}"),
              (viz.stretch(viz.crop(u, win), lo, hi), f"inpainted, zoom x{zoom:.3g}\n{viz.stretch_label(lo, hi)}"),
              ((zerr / zscale) if zscale > 0 else zerr, f"|error|, zoom x{zoom:.3g}\n(white = {zscale:.3g})")]
    fig = viz.figure(2.7 * len(panels), 6.9)
    top, bottom = fig.subfigures(2, 1)
    axes = viz.image_grid(top, panels, len(panels))
    for ax in (axes[0], axes[3]):
        viz.mark_window(ax, win)
    viz.image_grid(bottom, zoomed, len(panels))
    fig.suptitle(title, fontsize=9)
    bottom.suptitle("the outlined window, zoomed; input and inpainting contrast-stretched alike "
                    "(their 1-99 % range there to black-white)", fontsize=8)
    return fig
