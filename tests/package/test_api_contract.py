"""The API contract over every public function (from ``__all__``) of pdeflow.tv, .tvflownet, .iel,
.inpaint, .metrics and .ops, for every input kind of tests/_contract.py."""
import warnings

import pytest
import torch

import pdeflow.iel as iel
import pdeflow.inpaint as inpaint
import pdeflow.metrics as metrics
import pdeflow.ops as ops
import pdeflow.tv as tv
import pdeflow.tvflownet as tvflownet
from _contract import KINDS, Entry, check_case, public_callables
from pdeflow.errors import UserInputError

TIGHT = dict(tol=1e-9, max_iter=20000)


def _like(x, fn):
    """``fn`` applied to the values of ``x``, handed back in the form of ``x`` (list, array, meta tensor)."""
    if isinstance(x, list):
        return fn(torch.tensor(x)).tolist()
    t = torch.as_tensor(x)
    if t.device.type == "meta":
        return fn(torch.zeros(t.shape, dtype=t.dtype)).to("meta")
    out = fn(t.detach())
    return out.numpy() if not isinstance(x, torch.Tensor) else out


def _y(x):
    return _like(x, lambda t: t * 0.8 + 0.1)


def _mask(x):
    """A fixed mask (every third pixel, and the corners) of the shape and dtype of ``x``."""
    def make(t):
        m = torch.zeros_like(t)
        if not t.numel():
            return m
        m[..., ::3, ::3] = 1
        m[..., -1, -1] = 1
        return m
    return _like(x, make)


def _field(x):
    """A vector field ``(..., 2, H, W)`` made from the image ``x`` (exact in every dtype)."""
    return _like(x, lambda t: torch.stack([t, 0.5 * t], dim=-3))


def _rof_full(x):
    r = tv.rof(x, 0.1, full_output=True, **TIGHT)
    return r.u, r.p


def _gap(x):
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    if t.device.type != "meta" and t.dim() == 4 and t.numel():
        r = tv.rof(t.detach().double(), 0.1, full_output=True, **TIGHT)
        return tv.duality_gap(x, r.u.to(t.dtype), r.p.to(t.dtype), 0.1)
    return tv.duality_gap(x, x, x, 0.1)


def _stack(x):
    # frames exact in every dtype (the stack is made in the input's dtype)
    return _like(x, lambda t: torch.stack([t, 0.5 * t, 0.25 * t]))


TV_TABLE = {
    "rof": Entry(lambda x: tv.rof(x, 0.1, **TIGHT), "f"),
    "estimate_sigma": Entry(lambda x: tv.estimate_sigma(x), "f"),
    "duality_gap": Entry(_gap, "f"),
    "tv_flow": Entry(lambda x: tv.tv_flow(x, [0.05], dt=0.02, **TIGHT), "u0"),
    "spectral_tv": Entry(lambda x: tv.spectral_tv(x, dt=0.02, n_steps=2, **TIGHT), "u0",
                         out=lambda s: (s.phi, s.residual, s.spectrum)),
    "spectral_from_stack": Entry(lambda x: tv.spectral_from_stack(_stack(x), 0.1), "u",
                                 out=lambda s: (s.phi, s.residual, s.spectrum)),
}
TV_EXEMPT = {"dyadic_band_edges": "band edges from (n_steps, dt), no image",
             "spectral_steps": "the steps of a decomposition from (dt, n_steps), no image"}

METRICS_TABLE = {
    "psnr": Entry(lambda x: metrics.psnr(x, _y(x)), "x"),
    "ssim": Entry(lambda x: metrics.ssim(x, _y(x)), "x", min_size=11),
    "mse": Entry(lambda x: metrics.mse(x, _y(x)), "x"),
    "mae": Entry(lambda x: metrics.mae(x, _y(x)), "x"),
    "dice": Entry(lambda x: metrics.dice(x, _y(x), exclude_background=False), "pred"),
    "miou": Entry(lambda x: metrics.miou(x, _y(x), exclude_background=False), "pred"),
}
METRICS_EXEMPT = {"gaussian_window": "a 1-D window from (sigma, truncate), no image"}

OPS_TABLE = {
    "grad": Entry(lambda x: ops.grad(x), "u"),
    "div": Entry(lambda x: ops.div(_field(x)), "p"),
    "laplacian": Entry(lambda x: ops.laplacian(x), "u"),
    "gradient_norm": Entry(lambda x: ops.gradient_norm(_field(x), eps=0.01), "g"),
    "tv": Entry(lambda x: ops.tv(x), "u"),
    "tv_eps": Entry(lambda x: ops.tv_eps(x, 0.01), "u"),
    "batch_sum": Entry(lambda x: ops.batch_sum(x), "x"),
    "as_batch": Entry(lambda x: ops.as_batch(x, "u")[0], "u"),
    "unbatch": Entry(lambda x: ops.unbatch(ops.image_batch(x, "x"), 4), "x"),
    "check_tensor": Entry(lambda x: ops.check_tensor(x, "u"), "u"),
    "check_image": Entry(lambda x: ops.check_image(x, "u"), "u"),
    "check_float": Entry(lambda x: ops.check_float(x, "u"), "u"),
    "image_batch": Entry(lambda x: ops.image_batch(x, "u"), "u"),
}
OPS_EXEMPT = {
    "read_layout": "reads only an array's shape (where its channels are); the function it serves checks the image",
    "follows_layout_rule": "a decorator, no image (the functions it wraps are in their tables)",
    "layout_message": "a message from a shape, no image",
}

_SMALL_NET = {}


def _heat_layer():
    if "heat" not in _SMALL_NET:
        _SMALL_NET["heat"] = iel.with_iels(torch.nn.Identity(), "heat", dt=0.05, steps=3)
    return _SMALL_NET["heat"]


def _labels(x):
    """A label map (classes 0, 1, 2) from the values of ``x``, in its form: the float kinds become int64
    labels (a label map has no float dtype), (B, C, H, W) becomes (B, H, W) (channel 0); the layouts,
    lists, arrays and meta stay."""
    def make(t):
        t = t[:, 0] if t.dim() == 4 else t
        return torch.empty_like(t, dtype=torch.int64).copy_((t * 3).floor().clamp(0, 2))
    return _like(x, make)


IEL_TABLE = {
    "with_iels": Entry(lambda x: _heat_layer()(x), "input"),
    "block_noise": Entry(lambda x: iel.block_noise(_labels(x), 3, seed=0), "labels"),
    "window_noise": Entry(lambda x: iel.window_noise(_labels(x), 3, seed=0), "labels"),
    "add_label_noise": Entry(lambda x: iel.add_label_noise(_labels(x), 3, "blocks", seed=0), "labels"),
}
IEL_EXEMPT = {
    "make_operator": "builds an evolution operator from (name, param), no image",
    "official_heat_iel": "builds a layer from (dt, steps), no image (the layer is run under with_iels)",
    "heat_iel_symbol": "the Fourier symbol for a size (H, W), no image",
}

def _gan(which):
    if which not in _SMALL_NET:
        torch.manual_seed(0)
        _SMALL_NET["pair"] = inpaint.learned.maskgan.MaskGAN(1, width=0.1, density=0.1).eval()
        _SMALL_NET["inpainter"] = inpaint.learned.wgan.InpaintingGenerator(1, width=0.1).eval()
    return _SMALL_NET[which]


INPAINT_TABLE = {
    "inpaint_diffusion": Entry(lambda x: inpaint.inpaint_diffusion(x, _mask(x), tol=1e-10), "f"),
    "inpainting_error": Entry(lambda x: inpaint.inpainting_error(x, _y(x)), "f"),
    "ps_mask": Entry(
        lambda x: inpaint.ps_mask(x, 0.3, p=0.3, q=0.3, generator=0, tol=1e-10), "f",
        min_size=2),
    "nlpe_mask": Entry(
        lambda x: inpaint.nlpe_mask(x, _mask(x), candidates=4, cycles=1, generator=0, tol=1e-10),
        "f", min_size=2),
    "refine_mask": Entry(lambda x: inpaint.refine_mask(x, _mask(x), rounds=1, generator=0), "f", min_size=2),
    # no GAN is shipped: small untrained ones (the contract is about the inputs, not the weights)
    "inpaint_wgan": Entry(lambda x: inpaint.inpaint_wgan(x, _mask(x), _gan("inpainter"), seed=0), "f"),
    "gan_mask": Entry(lambda x: inpaint.gan_mask(x, 0.1, _gan("pair"), seed=0), "f"),
    "dither": Entry(lambda x: inpaint.dither(x, 0.3), "p", names_too=("density",)),
    "analytic_mask": Entry(lambda x: inpaint.analytic_mask(x, 0.3), "f", min_size=2),
    "densify_mask": Entry(lambda x: inpaint.densify_mask(x, 0.3), "f", min_size=2),
    "learned_mask": Entry(lambda x: inpaint.learned_mask(x, 0.1), "f", min_size=2),
    "inpaint_learned": Entry(lambda x: inpaint.inpaint_learned(x, _mask(x)), "f", min_size=2),
    # the entry points of the tables of methods: their defaults (densify, diffusion)
    "make_mask": Entry(lambda x: inpaint.make_mask(x, 0.3), "f", min_size=2),
    "inpaint": Entry(lambda x: inpaint.inpaint(x, _mask(x), tol=1e-10), "f"),
    "inpaint_biharmonic": Entry(lambda x: inpaint.inpaint_biharmonic(x, _mask(x), tol=1e-10), "f"),
    "inpaint_eed": Entry(lambda x: inpaint.inpaint_eed(x, _mask(x), tol=1e-8), "f"),
    "inpaint_tv": Entry(lambda x: inpaint.inpaint_tv(x, _mask(x), tol=1e-8), "f"),
    "inpaint_shepard": Entry(lambda x: inpaint.inpaint_shepard(x, _mask(x)), "f"),
    "optimise_tonal": Entry(lambda x: inpaint.optimise_tonal(x, _mask(x), tol=1e-9, solve_tol=1e-11, max_iter=500),
                            "f"),
}
INPAINT_EXEMPT = {
    "analytic_sigma": "a smoothing scale from a density (and a voxel spacing), no image",
    "random_mask": "a random mask of a given shape, no image",
    "hole_mask": "a random hole mask of a given shape, no image",
    "star_radius": "a region's outline over a grid of a given shape, no image",
    "default_stages": "a number of stages from an operator's name, no image",
    "load_wgan": "loads a model by name or path, no image",
    "load_mask_gan": "loads a model by density or path, no image",
    "blue_noise_tile": "a threshold tile of a given size, no image",
    "load_masknet": "loads a model by name or path, no image",
    "load_residual": "loads a model by name or path, no image",
    "load_joint": "loads a model pair by name or path, no image",
}

def _toy_model(u0, t):
    """A smooth (u, phi) model for time_derivative: u = u0 exp(-t), phi = t (u0, u0 / 2)."""
    s = torch.as_tensor(t, dtype=u0.dtype).reshape(-1, 1, 1, 1)
    return u0 * torch.exp(-s), torch.stack([u0, 0.5 * u0], -3) * s[..., None]


TVFLOWNET_TABLE = {
    "time_image": Entry(lambda x: tvflownet.time_image(0.1, x), "u0"),
    "normalised_gradient": Entry(lambda x: tvflownet.normalised_gradient(x, 0.1), "u"),
    "project_unit_ball": Entry(lambda x: tvflownet.project_unit_ball(_field(x)), "phi"),
    "zero_border": Entry(lambda x: tvflownet.zero_border(x), "phi"),
    "loss_terms": Entry(lambda x: tvflownet.loss_terms(x, _y(x), _field(x), x, x), "u",
                        out=lambda d: tuple(d[k] for k in sorted(d))),
    "time_derivative": Entry(
        lambda x: tvflownet.time_derivative(_toy_model, x, 0.1), "u0"),
    "flow": Entry(lambda x: tvflownet.flow(x, [0.01, 0.05]), "u0"),
    "tiled_flow": Entry(lambda x: tvflownet.tiled_flow(x, [0.05]), "u0"),
    # u only: the dual field phi is not unique where u is flat, and Adam's first, sign-like steps move its
    # zero-gradient entries by lr either way on round-off (float32 and float64 differ there by 2 lr)
    "joint_optimise": Entry(lambda x: tvflownet.joint_optimise(x, [0.0, 0.05], iterations=3), "u0",
                            out=lambda r: r[:1]),
}
TVFLOWNET_EXEMPT = {
    "build_model": "builds a network from an architecture name, no image",
    "count_parameters": "counts a model's parameters, no image",
    "with_input_eps": "sets a model's input eps, no image",
    "load": "loads a model by name or path, no image",
    "average": "averages models' weights, no image",
    "ensemble": "combines models, no image",
    "shipped_models": "lists the shipped model names, no image",
}

#: (package, table, exempt): add a package here to hold it to the same contract.
PACKAGES = [(tv, TV_TABLE, TV_EXEMPT), (metrics, METRICS_TABLE, METRICS_EXEMPT), (ops, OPS_TABLE, OPS_EXEMPT),
            (iel, IEL_TABLE, IEL_EXEMPT), (inpaint, INPAINT_TABLE, INPAINT_EXEMPT),
            (tvflownet, TVFLOWNET_TABLE, TVFLOWNET_EXEMPT)]

#: Entries whose call is an iterative solve or search (about half a CPU second each at 12x12) and the kinds that
#: hand them the values of another kind in another form (bfloat16: half precision as float16, promoted in one place,
#: tests/package/test_input_checks.py): these pairs run in the slow tier. The forms are read by the shared layout
#: rule and image checks (ops.follows_layout_rule, ops.image_batch), which every other entry takes each kind through
#: in make test; these entries keep float32, float64 and every shape kind there.
HEAVY = {"inpaint_tv", "inpaint_eed", "nlpe_mask", "refine_mask", "ps_mask"}
SAME_VALUES = {"bfloat16", "requires_grad", "non_contiguous", "channels_last", "numpy", "list"}
#: and float16: computed in float32 (tests/package/test_input_checks.py), their float32 form runs in make test
HEAVY_SLOW_KINDS = SAME_VALUES | {"float16"}

CASES = [pytest.param(mod.__name__, name, kind, marks=pytest.mark.slow) if name in HEAVY and kind in HEAVY_SLOW_KINDS
         else (mod.__name__, name, kind) for mod, table, _ in PACKAGES for name in table for kind in KINDS]


def test_heavy_entries_and_kinds_are_named():
    assert HEAVY <= set(INPAINT_TABLE) and HEAVY_SLOW_KINDS <= set(KINDS)


@pytest.mark.parametrize("module,exempt,table", [(m, e, t) for m, t, e in PACKAGES],
                         ids=lambda v: getattr(v, "__name__", ""))
def test_every_public_function_is_in_the_table(module, exempt, table):
    missing = set(public_callables(module)) - set(table) - set(exempt)
    assert not missing, (f"{module.__name__}: add {sorted(missing)} to the contract table "
                         "(tests/package/test_api_contract.py)")
    stale = (set(table) | set(exempt)) - set(public_callables(module))
    assert not stale, f"{module.__name__}: {sorted(stale)} are in the contract table but not public"


@pytest.mark.parametrize("package,name,kind", CASES)
def test_contract(package, name, kind):
    table = next(t for m, t, _ in PACKAGES if m.__name__ == package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # ConvergenceWarning at round-off floors is said, not a failure here
        outcome = check_case(table[name], kind, UserInputError)
    assert outcome in ("ok", "refused")
