"""pdeflow: image processing with evolution PDEs, classical and learned.

Three pillars share one discrete calculus, one data layer and one training toolkit:

* classical TV: :func:`rof`, :func:`tv_flow`, :func:`spectral_tv` (:mod:`pdeflow.tv`) and the
  learned TV flow TVflowNET (:mod:`pdeflow.tvflownet`);
* inverse evolution layers (:mod:`pdeflow.iel`, e.g. :func:`with_iels`);
* sparse inpainting: :func:`inpaint_diffusion` and the other inpainting operators, masks and learned inpainting
  (:mod:`pdeflow.inpaint`), and the codec built on them (:mod:`pdeflow.codec`).

``import pdeflow`` is light: the subpackages and the functions listed here are imported (with
torch) the first time they are used, e.g. ``pdeflow.tv.rof`` or ``pdeflow.rof``.

Examples
--------
The classical TV solvers on a crop of a built-in photo (in [0, 1], float32):

>>> import pdeflow
>>> f = pdeflow.builtin_image("skimage/camera")[:, :64, :64]      # (1, 64, 64)
>>> u = pdeflow.rof(f, 0.1)                                       # ROF denoising, same shape
>>> tuple(u.shape)
(1, 64, 64)
>>> pdeflow.rof is pdeflow.tv.rof
True
>>> flow = pdeflow.tv_flow(f, [0.05, 0.1], dt=0.025)               # u at two flow times
>>> tuple(flow.shape)
(2, 1, 64, 64)
>>> s = pdeflow.spectral_tv(f, dt=0.05, n_steps=10)
>>> bool((s.filter().sum(0) + s.residual - f).abs().max() < 1e-4)  # the bands and residual sum to f
True

Metrics, masks and inpainting:

>>> bool(pdeflow.psnr(u, f) > 20), bool(pdeflow.ssim(f, f) > 0.999)
(True, True)
>>> m = pdeflow.random_mask((1, 1, 64, 64), 0.1, generator=0)      # 10 % known pixels (1 = known)
>>> int(m.sum())
410
>>> v = pdeflow.inpaint_diffusion(f[None], m)                     # homogeneous diffusion inpainting
>>> bool(((v - f[None]) * m).abs().max() < 1e-6)                  # the known pixels are kept
True

Inverse evolution layers around a network (active in training mode only):

>>> import torch
>>> net = pdeflow.with_iels(torch.nn.Conv2d(1, 2, 3, padding=1), "heat", dt=0.025, steps=3)
>>> tuple(net(torch.zeros(1, 1, 8, 8)).shape)
(1, 2, 8, 8)

Images in and out, and the one error class for bad input:

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "u.png"
>>> _ = pdeflow.write_image(path, u.clamp(0, 1))
>>> tuple(pdeflow.read_image(path).shape)
(1, 64, 64)
>>> try:
...     pdeflow.rof(f, -1.0)
... except pdeflow.UserInputError as err:
...     print("refused")
refused
"""
import importlib as _importlib

__version__ = "0.2.0"

# OpenMP's default wait policy lets torch's idle worker threads spin, which slows pdeflow's many
# small kernels down on a busy machine; the runtime reads OMP_WAIT_POLICY once, when torch loads it.
# So the passive policy is set here, before anything imports torch (the user's setting wins), and
# `pdeflow.threads` adapts torch's thread count where torch came first. This is one reason
# `import pdeflow` must not import torch itself (the names below load on first use).
from .threads import set_wait_policy as _set_wait_policy  # noqa: E402  (torch-free)

_set_wait_policy()

from .errors import InputDtypeError, InputFileNotFoundError, InputIsADirectoryError, UserInputError  # noqa: E402

#: Subpackages and modules, imported on first attribute access (``pdeflow.tv``).
_SUBMODULES = (
    "allocator", "codec", "dask", "datasets", "evaluate", "filters", "iel", "inpaint", "io", "linalg", "metrics",
    "models", "multigrid", "ops", "progress", "reporting", "rng", "threads", "training", "tv", "tvflownet", "viz",
)
#: The most-used functions, by the module that defines them (``pdeflow.rof is pdeflow.tv.rof``).
_FUNCTIONS = {
    "rof": "tv",
    "tv_flow": "tv",
    "spectral_tv": "tv",
    "inpaint_diffusion": "inpaint",
    "random_mask": "inpaint",
    "with_iels": "iel",
    "read_image": "io",
    "write_image": "io",
    "builtin_image": "datasets",
    "psnr": "metrics",
    "ssim": "metrics",
}

__all__ = ["UserInputError", "InputFileNotFoundError", "InputIsADirectoryError", "InputDtypeError", "__version__",
           *_FUNCTIONS]


def __getattr__(name: str):
    if name == "diffuse":    # the previous release's name, for one release
        import warnings

        warnings.warn("pdeflow.diffuse is deprecated and goes in the next release; use pdeflow.inpaint_diffusion",
                      DeprecationWarning, stacklevel=2)
        name = "inpaint_diffusion"
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")  # the import sets the attribute too
    if name in _FUNCTIONS:
        value = getattr(_importlib.import_module(f"{__name__}.{_FUNCTIONS[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES, *_FUNCTIONS})
