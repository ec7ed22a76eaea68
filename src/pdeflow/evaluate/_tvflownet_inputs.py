"""The inputs of the TVflowNET evaluation (:mod:`pdeflow.evaluate.tvflownet`): the held-out natural and
typed test images, and a model's flow and time derivative at given times."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch

from .. import datasets, ops
from .. import io as pio
from ..errors import InputFileNotFoundError, UserInputError
from ..tvflownet.api import flow as network_flow
from ..tvflownet.loss import jvp

#: A TVflowNET model as the evaluation takes it: ``model(u0, t) -> (u, phi)``.
Model = Callable[[torch.Tensor, torch.Tensor], tuple]


def model_dtype(model) -> torch.dtype:
    try:
        return next(model.parameters()).dtype
    except (AttributeError, StopIteration, TypeError):
        return torch.get_default_dtype()


def model_device(model):
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return None


def model_flow(model: Model, u0: torch.Tensor, times: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``u`` and ``div phi`` of a bare model at every (image, time) pair: :func:`pdeflow.tvflownet.flow`
    without rescaling or the equivariance wrapper (the evaluation probes the network itself, extrapolation
    included), as float32 on the CPU.

    Returns
    -------
    u, div_phi : Tensor, shape (len(times), *u0.shape)

    Examples
    --------
    >>> from pdeflow.tvflownet import load
    >>> from pdeflow.evaluate.tvflownet import model_flow, natural_images
    >>> u, div_phi = model_flow(load("semiresnet"), 5 * natural_images(16, 2), [0.0, 0.1, 0.2])
    >>> u.shape, div_phi.shape, u.dtype
    (torch.Size([3, 2, 1, 16, 16]), torch.Size([3, 2, 1, 16, 16]), torch.float32)
    """
    x = ops.as_batch(u0, "u0")[0]
    B, C, H, W = x.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # beyond the trained times: Tables 6 and 7 probe exactly that
        u, d = network_flow(u0, times, model, scale=1.0, equivariant=False, symmetry=None,
                            batch_size=max(1, (1 << 21) // (H * W * C)), return_ut=True)
    return u.float().cpu(), d.float().cpu()


def time_derivatives(model: Model, u0: torch.Tensor, t, *, method: str = "autodiff", fd_step: float = 1e-3):
    """``u``, ``u_t`` and ``u_tt`` of a model's solution at time(s) ``t``.

    ``method="autodiff"``: forward mode twice (``torch.func.jvp`` of a
    ``torch.func.jvp`` with tangent ones; each image's ``u`` depends on its own
    ``t`` only, so these are the per-pixel derivatives).  ``"fd"``: central
    differences with step ``fd_step`` (three forward passes).

    Parameters
    ----------
    model : callable ``(u0, t) -> (u, phi)``
    u0 : Tensor, shape (B, C, H, W)
    t : float or Tensor of shape () or (B,)

    Returns
    -------
    u, u_t, u_tt : Tensor, shape of ``u0``

    Examples
    --------
    >>> import torch
    >>> from pdeflow.evaluate.tvflownet import time_derivatives
    >>> def decay(u0, t):                                    # u = exp(-t) u0: u_t = -u, u_tt = u
    ...     return u0 * torch.exp(-t).view(-1, 1, 1, 1), None
    >>> u0 = torch.ones(2, 1, 4, 4, dtype=torch.float64)
    >>> u, u_t, u_tt = time_derivatives(decay, u0, 0.5)
    >>> bool(torch.allclose(u_t, -u)), bool(torch.allclose(u_tt, u))
    (True, True)
    """
    x = ops.as_batch(u0, "u0")[0]
    B = x.shape[0]
    if torch.is_tensor(t):
        tt = t.to(dtype=x.dtype, device=x.device).reshape(-1)
        if tt.numel() == 1:
            tt = tt.expand(B).clone()
    else:
        tt = torch.full((B,), float(t), dtype=x.dtype, device=x.device)
    if tt.shape[0] != B:
        raise UserInputError(f"t must be a float or a tensor of shape () or (B,) = ({B},), got {tuple(t.shape)}")
    if method == "autodiff":
        ones = torch.ones_like(tt)

        def u_of(s):
            return model(x, s)[0]

        def u_and_ut(s):
            return jvp(u_of, (s,), (ones,))

        (u, u_t), (_, u_tt) = jvp(u_and_ut, (tt,), (ones,))
        return u, u_t, u_tt
    if method == "fd":
        if not fd_step > 0:
            raise UserInputError(f"fd_step must be > 0, got {fd_step}")
        h = float(fd_step)
        u = model(x, tt)[0]
        up = model(x, tt + h)[0]
        um = model(x, tt - h)[0]
        return u, (up - um) / (2 * h), (up - 2 * u + um) / (h * h)
    raise UserInputError(f"method must be 'autodiff' or 'fd', got {method!r}")


# =========================================================================== metrics


def folder_files(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileNotFoundError(f"image folder '{folder}' does not exist or is not a directory")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in pio.IMAGE_SUFFIXES)
    if not files:
        raise UserInputError(f"image folder '{folder}' holds no image file ({', '.join(pio.IMAGE_SUFFIXES)})")
    return files


def folder_images(folder, *, grey: bool = True) -> dict[str, torch.Tensor]:
    return {p.name: pio.read_image(p, grey=grey) for p in folder_files(folder)}


def colour_photo_names(pool: dict[str, torch.Tensor] | None = None) -> list[str]:
    """The names of the colour photos (channels not all equal) of ``pool`` (default: the built-in TEST photos).

    Examples
    --------
    >>> from pdeflow.evaluate.tvflownet import colour_photo_names
    >>> colour_photo_names()
    ['matplotlib/grace_hopper', 'skimage/coffee']
    """
    if pool is None:
        pool = datasets.builtin_pool("test", kind="photo", grey=False)
    return [k for k, v in pool.items() if v.shape[0] == 3 and not (torch.equal(v[0], v[1]) and torch.equal(v[1], v[2]))]


def natural_images(size: int, n: int, *, seed: int = 0, image_dir=None, return_sources: bool = False,
                   channels: int = 1):
    """``n`` held-out natural crops ``(n, channels, size, size)`` in [0, 1].

    Seeded random crops (reflect-padded where an image is smaller) of the TEST
    split of the built-in photo pool (:func:`pdeflow.datasets.builtin_pool`), or of
    the images in ``image_dir`` (a user folder), grey (``channels = 1``, the paper's) or
    colour (``channels = 3``: the colour photos of the built-in pool only, since a grey one would
    give three equal channels; a user folder's images as they are).  With ``return_sources``, also the name of the photo
    each crop was cut from.

    Examples
    --------
    >>> from pdeflow.evaluate.tvflownet import natural_images
    >>> crops, names = natural_images(16, 2, return_sources=True)
    >>> crops.shape, names
    (torch.Size([2, 1, 16, 16]), ['pywt/aero', 'skimage/camera'])
    """
    if channels not in (1, 3):
        raise UserInputError(f"channels must be 1 (grey) or 3 (colour), got {channels!r}")
    grey = channels == 1
    pool = (folder_images(image_dir, grey=grey) if image_dir is not None
            else datasets.builtin_pool("test", kind="photo", grey=grey))
    if not grey and image_dir is None:
        pool = {k: pool[k] for k in colour_photo_names(pool)}
    if not pool:
        raise UserInputError("no test photographs are available (builtin pool, split 'test', kind 'photo')")
    crops, picks = datasets.random_crops(pool, int(n), int(size), generator=int(seed) * 1009 + int(size),
                                         return_picks=True)
    names = list(pool)
    return (crops, [names[j] for j in picks]) if return_sources else crops


def type_images(kind: str, size: int, n: int, *, seed: int = 0, medical_split: str = "test",
                medical_dir=None, n_shapes: int | None = None) -> torch.Tensor:
    """Table 5's image types ``(n, 1, size, size)`` in [0, 1]: ``"disks"``, ``"ellipses"``, ``"medical"``.

    Disks: ``n_shapes`` isolated disks of random radius and height
    (:func:`pdeflow.datasets.disks`); ellipses: ``n_shapes`` overlapping ellipses
    (:func:`pdeflow.datasets.ellipses`); default ``n_shapes = clip(size // 16, 1, 5)``
    (5 from 80 px).  Medical: seeded crops of the built-in medical images of
    ``medical_split`` (or of the images in ``medical_dir``).

    Examples
    --------
    >>> from pdeflow.evaluate.tvflownet import type_images
    >>> [tuple(type_images(kind, 16, 2).shape) for kind in ("disks", "ellipses", "medical")]
    [(2, 1, 16, 16), (2, 1, 16, 16), (2, 1, 16, 16)]
    """
    s = int(seed) * 7919 + int(size)
    k = int(n_shapes) if n_shapes is not None else max(1, min(5, int(size) // 16))
    if kind == "disks":
        return datasets.disks(size, k, seed=s, batch=int(n))
    if kind == "ellipses":
        return datasets.ellipses(size, k, seed=s, batch=int(n))
    if kind == "medical":
        if medical_dir is not None:
            pool = folder_images(medical_dir)
        else:
            pool = datasets.builtin_pool(medical_split, kind="medical")
        if not pool:
            raise UserInputError(f"no built-in medical images in split {medical_split!r}")
        return datasets.random_crops(pool, int(n), int(size), generator=s)
    raise UserInputError(f"kind must be 'disks', 'ellipses' or 'medical', got {kind!r}")


def scaled(images: torch.Tensor, scale: float) -> torch.Tensor:
    """Test images in [0, 1] as the networks take them: float32, times ``scale``."""
    return images.to(torch.float32) * float(scale)
