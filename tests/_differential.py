"""Differential tests as data: for every public numerical function, how to draw its arguments over the
documented range, the float32 accuracy it must meet against float64, and what to differentiate.

Each :class:`Diff` entry of :data:`REGISTRY` (keyed ``"<subpackage>.<name>"``, e.g. ``"tv.rof"``) holds

* ``draw``: a Hypothesis strategy of a *case*, a dict of arguments: float64 tensors holding values that
  are exact in float32 (so the float32 and the float64 runs take the same numbers) and Python scalars;
* ``call(case)``: the outputs, a dict ``name -> tensor``, for a case whose floating tensors have been cast
  to the dtype under test;
* ``tol`` and ``scale(case, out64) -> {name: s}``: the claim ``max|out32 - out64| <= tol * s`` per output
  (``s`` is the input's range for images, a stated magnitude otherwise), with ``reason`` saying why;
* ``wrt`` (tensor arguments) and ``params`` (scalar arguments) to differentiate a random linear functional
  of the outputs with respect to, ``grad_tol`` the float32-against-float64 claim on those gradients
  (relative to each gradient's largest entry) and ``fd_tol`` that of the float64 gradient against central
  differences of float64 calls (relative to ``|grad| |direction|``, step ``fd_step`` of the argument's
  scale); an entry without ``wrt`` and ``params`` is not differentiable (masks, integer outputs);
* ``image``: the argument an integer image is passed as (the integer-image rule), None where the function
  takes no image (a density map, a label map).

Every public callable of the walked packages (:data:`PACKAGES`) is either in :data:`REGISTRY` or in
:data:`EXCLUDED` with the reason; ``tests/core/test_differential.py`` enforces that, so a newly exported
function fails until it is given an entry or a reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from hypothesis import strategies as st

#: The packages whose ``__all__`` is walked (``pdeflow`` itself re-exports functions of the others).
PACKAGE_NAMES = ("pdeflow", "pdeflow.tv", "pdeflow.ops", "pdeflow.metrics", "pdeflow.iel", "pdeflow.inpaint",
                 "pdeflow.tvflownet")

TIGHT_TV = dict(tol=1e-12, max_iter=100000)     # float64 solves well below every tolerance below


@dataclass
class Diff:
    draw: st.SearchStrategy
    call: Callable[[dict], dict]
    tol: float
    reason: str
    scale: Callable[[dict, dict], dict] = None          # default: the range of the image, for every output
    image: str | None = "x"
    wrt: tuple = ()
    params: tuple = ()
    grad_tol: float = 1e-4
    fd_tol: float = 1e-4
    fd_step: float = 1e-6
    examples: int = 12
    grad_examples: int = 4
    grad_draw: st.SearchStrategy | None = None           # cases for the gradient tests (default: draw)
    no_fd: tuple = ()                                     # arguments checked float32 against float64 only
    share: bool = False             # binary outputs: the claim is on the share of pixels that differ, per image
    float64_out: bool = False       # documented to return float64 for float32 input


# ---------------------------------------------------------------------------------------------- drawing

def f32(v: float) -> float:
    """``v`` rounded to the nearest float32 (so both runs see the same scalar)."""
    return float(np.float32(v))


def log_uniform(lo: float, hi: float) -> st.SearchStrategy:
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: f32(10.0 ** e))


FAMILIES = ("noise", "blocks", "smooth")


def make_image(seed: int, shape: tuple, family: str, scale: float = 1.0) -> torch.Tensor:
    """A float64 image of ``shape`` (B, C, H, W) with values in [0, scale] exact in float32."""
    g = torch.Generator().manual_seed(seed)
    B, C, H, W = shape
    if family == "noise":
        x = torch.rand(shape, generator=g, dtype=torch.float64)
    elif family == "blocks":
        k = int(torch.randint(2, 5, (1,), generator=g))
        x = torch.rand(B, C, -(-H // k), -(-W // k), generator=g, dtype=torch.float64)
        x = x.repeat_interleave(k, -2).repeat_interleave(k, -1)[..., :H, :W]
    else:
        yy = torch.linspace(0, 1, H, dtype=torch.float64)[:, None]
        xx = torch.linspace(0, 1, W, dtype=torch.float64)[None, :]
        a = torch.rand(B, C, 4, generator=g, dtype=torch.float64)
        x = (torch.cos(math.pi * (a[..., 0, None, None] * 3 * yy + a[..., 1, None, None] * 2 * xx))
             + a[..., 2, None, None] * torch.sin(4 * yy * xx + a[..., 3, None, None]))
        x = (x - x.amin((-2, -1), keepdim=True)) / (x.amax((-2, -1), keepdim=True) - x.amin((-2, -1), keepdim=True)
                                                    ).clamp_min(1e-12)
    return (x * scale).float().double()


@st.composite
def images(draw, *, min_size=4, max_size=16, channels=(1, 3), batch=(1, 2), scale=(1.0, 1e3), families=FAMILIES):
    H = draw(st.integers(min_size, max_size))
    W = draw(st.integers(min_size, max_size))
    shape = (draw(st.integers(*batch)), draw(st.sampled_from(channels)), H, W)
    s = draw(log_uniform(*scale)) if scale[1] > scale[0] else scale[0]
    return make_image(draw(st.integers(0, 2 ** 16)), shape, draw(st.sampled_from(families)), s)


def rng(case: dict, salt: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(int(case.get("seed", 0)) * 7919 + salt)


def span(x: torch.Tensor) -> float:
    """The range of an image, its scale for the tolerances; at least 1/100 of its largest magnitude (a constant
    image still has a scale: its float32 rounding)."""
    x = x.detach().double()
    return max(float(x.max() - x.min()), 0.01 * float(x.abs().max()), 1e-300)


def image_scale(case, out):
    s = span(case["x"])
    return {k: s for k in out}


# ------------------------------------------------------------------------------------------ the entries

def _tv():
    import pdeflow.tv as tv

    @st.composite
    def rof_case(draw):
        return dict(x=draw(images(max_size=12)), lam=draw(log_uniform(1e-4, 1e6)), seed=draw(st.integers(0, 999)))

    def rof_call(c):
        return {"u": tv.rof(c["x"], c["lam"], **TIGHT_TV)}

    @st.composite
    def flow_case(draw, off_grid=False):
        x = draw(images(max_size=12))
        s = span(x)
        n = max(x.shape[-2:])
        # times from 1e-4 (of the range) to past extinction (a flat-topped image of side n and height s is
        # extinct by about s n / 2); at most 30 steps of dt
        t_max = draw(log_uniform(1e-4 * s, 2.0 * s * n))
        k = draw(st.integers(1, 3))
        fr = sorted(draw(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k)))
        times = [f32(t_max * a) for a in fr[:-1]] + [t_max]
        steps = draw(st.integers(1, 30))
        dt = f32(t_max / steps)
        if off_grid:
            # a time enters through the step that reaches it: off the grid the map t -> u is smooth, on it
            # (the left derivative) central differences straddle a kink
            times = sorted({f32(dt * (math.floor(t / dt) + 0.5)) for t in times})
        return dict(x=x, times=times, dt=dt, seed=draw(st.integers(0, 999)))

    def flow_call(c):
        return {"u": tv.tv_flow(c["x"], c["times"], dt=c["dt"], tol=1e-12, max_iter=100000)}

    @st.composite
    def spectral_case(draw):
        x = draw(images(max_size=12))
        s = span(x)
        n_steps = draw(st.integers(1, 10))
        dt = draw(log_uniform(1e-3 * s, 2.0 * s * max(x.shape[-2:]) / (n_steps + 1)))
        return dict(x=x, dt=dt, n_steps=n_steps, seed=draw(st.integers(0, 999)))

    def spectral_call(c):
        r = tv.spectral_tv(c["x"], dt=c["dt"], n_steps=c["n_steps"], tol=1e-12, max_iter=100000)
        return {"bands": r.phi * c["dt"], "residual": r.residual, "spectrum": r.spectrum * c["dt"]}

    def spectral_scale(c, out):
        # the bands phi_k dt = t_k (u_{k-1} - 2 u_k + u_{k+1}) / dt amplify the flow's error by up to 4 k
        s = span(c["x"]) * 4 * (c["n_steps"] + 1)
        npix = c["x"][0].numel()
        return {"bands": s, "residual": s, "spectrum": s * npix}

    @st.composite
    def stack_case(draw):
        x = draw(images(max_size=12))
        n = draw(st.integers(1, 8))
        frames = torch.stack([make_image(draw(st.integers(0, 2 ** 16)), tuple(x.shape), "noise", span(x))
                              for _ in range(n + 1)])
        return dict(x=torch.cat([x[None], frames]), dt=draw(log_uniform(1e-3, 1e2)), seed=draw(st.integers(0, 999)))

    def stack_call(c):
        r = tv.spectral_from_stack(c["x"], c["dt"])
        return {"bands": r.phi * c["dt"], "residual": r.residual, "spectrum": r.spectrum * c["dt"]}

    def stack_scale(c, out):
        n = c["x"].shape[0] - 2
        s = span(c["x"]) * 4 * (n + 1)
        return {"bands": s, "residual": s, "spectrum": s * c["x"][0, 0].numel()}

    @st.composite
    def gap_case(draw):
        x = draw(images())
        lam = draw(log_uniform(1e-4, 1e6))
        r = tv.rof(x, lam, full_output=True, tol=1e-6)
        # a feasible dual field and a primal point (the iterate rounded to float32)
        return dict(x=x, u=r.u.float().double(), p=(r.p.float().double() * (1 - 1e-6)), lam=lam, seed=0)

    def gap_call(c):
        gap, primal = tv.duality_gap(c["x"], c["u"], c["p"], c["lam"])
        return {"gap": gap, "primal": primal}

    def gap_scale(c, out):
        p = float(out["primal"].abs().max())
        return {"gap": p, "primal": p}

    return {
        "tv.rof": Diff(rof_case(), rof_call, 1e-5, "float32 input is solved with float64 iterates: only the "
                       "output's rounding remains", wrt=("x",), params=("lam",), grad_tol=1e-4, examples=20,
                       grad_examples=4),
        "tv.tv_flow": Diff(flow_case(), flow_call, 1e-5, "every implicit step is an ROF solve in float64: "
                           "only the output's rounding remains", wrt=("x",), params=("times",), grad_tol=1e-4,
                           examples=8, grad_examples=3, grad_draw=flow_case(off_grid=True)),
        "tv.spectral_tv": Diff(spectral_case(), spectral_call, 1e-5, "the flow's 1e-5 (of the range) through "
                               "the second differences of the bands (scale 4 (N+1) range)",
                               scale=spectral_scale, wrt=("x",), grad_tol=1e-4, examples=12, grad_examples=3),
        "tv.spectral_from_stack": Diff(stack_case(), stack_call, 1e-6, "float32 second differences: a few "
                                       "roundings of the frames' range, times 4 (N+1)", scale=stack_scale,
                                       wrt=("x",), grad_tol=1e-5, examples=20),
        "tv.duality_gap": Diff(gap_case(), gap_call, 1e-6, "accumulated in float64 (documented): the same values "
                               "give the same gap, to a float32 rounding of the primal", scale=gap_scale,
                               float64_out=True, examples=15, image="x"),
    }


def _ops():
    import pdeflow.ops as ops

    @st.composite
    def op_case(draw, field_input=False, families=FAMILIES):
        x = draw(images(min_size=2, max_size=24, families=families))
        sp = draw(st.one_of(st.none(), st.tuples(log_uniform(0.1, 10), log_uniform(0.1, 10))))
        c = dict(x=x, spacing=sp, seed=draw(st.integers(0, 999)))
        if field_input:
            c["x"] = torch.stack([x, make_image(c["seed"], tuple(x.shape), "noise", span(x))], dim=-3)
        return c

    def hsum(c, power=1):
        h = c["spacing"] or (1.0, 1.0)
        return sum(1 / v ** power for v in h)

    def op_scale(power):
        return lambda c, out: {k: span(c["x"]) * hsum(c, power) * 2 for k in out}

    @st.composite
    def eps_case(draw):
        c = draw(op_case())
        c["eps"] = draw(log_uniform(1e-4, 1.0)) * f32(span(c["x"]))
        c["eps"] = f32(c["eps"])
        return c

    def tv_scale(c, out):
        return {k: float(v.abs().max()) for k, v in out.items()}

    @st.composite
    def norm_case(draw):
        c = draw(op_case(field_input=True))
        c["eps"] = draw(st.one_of(st.just(0.0), log_uniform(1e-4, 1.0)))
        return c

    @st.composite
    def sum_case(draw):
        return dict(x=draw(images(max_size=24)) - draw(st.floats(0, 1)), seed=0)

    return {
        "ops.grad": Diff(op_case(), lambda c: {"g": ops.grad(c["x"], spacing=c["spacing"])}, 1e-6,
                         "one rounded difference (divided by h)", scale=op_scale(1), wrt=("x",), grad_tol=1e-6,
                         examples=20, grad_examples=4),
        "ops.div": Diff(op_case(field_input=True), lambda c: {"d": ops.div(c["x"], spacing=c["spacing"])}, 1e-6,
                        "two rounded differences (divided by h)", scale=op_scale(1), wrt=("x",), grad_tol=1e-6,
                        image="x", examples=20, grad_examples=4),
        "ops.laplacian": Diff(op_case(), lambda c: {"l": ops.laplacian(c["x"], spacing=c["spacing"])}, 1e-6,
                              "a rounded 5-point sum, against range * sum 2 / h^2", scale=op_scale(2), wrt=("x",),
                              grad_tol=1e-6, examples=20, grad_examples=4),
        "ops.gradient_norm": Diff(norm_case(), lambda c: {"n": ops.gradient_norm(c["x"], eps=c["eps"])}, 1e-6,
                                  "a rounded 2-norm", scale=lambda c, o: {"n": float(o["n"].abs().max())},
                                  wrt=("x",), grad_tol=1e-5, image="x", examples=20, grad_examples=4,
                                  grad_draw=norm_case().filter(lambda c: c["eps"] > 0)),
        "ops.tv": Diff(op_case(), lambda c: {"tv": ops.tv(c["x"], spacing=c["spacing"])}, 1e-6,
                       "a sum of positive terms, each to a few roundings", scale=tv_scale, wrt=("x",),
                       grad_tol=1e-5, examples=20, grad_examples=4,
                       # differentiable where no pixel has a zero gradient (generic images)
                       grad_draw=op_case(families=("noise",))),
        "ops.tv_eps": Diff(eps_case(), lambda c: {"tv": ops.tv_eps(c["x"], c["eps"], spacing=c["spacing"])}, 1e-6,
                           "a sum of positive terms, each to a few roundings", scale=tv_scale, wrt=("x",),
                           params=("eps",), grad_tol=1e-5, examples=20, grad_examples=4),
        "ops.batch_sum": Diff(sum_case(), lambda c: {"s": ops.batch_sum(c["x"])}, 1e-6,
                              "a float32 sum of at most 2000 terms, against the sum of their magnitudes",
                              scale=lambda c, o: {"s": float(c["x"].abs().sum())}, wrt=("x",), grad_tol=1e-7,
                              examples=10, grad_examples=2),
    }


def _metrics():
    import pdeflow.metrics as metrics

    @st.composite
    def pair(draw, min_size=2, unit=True, range_given=False, min_level=1e-6):
        x = draw(images(min_size=min_size, max_size=24, scale=(1.0, 1.0)))
        level = draw(log_uniform(min_level, 1.0))
        noise = make_image(draw(st.integers(0, 2 ** 16)), tuple(x.shape), "noise") - 0.5
        y = (x + level * noise).clamp(0, 1).float().double()
        # data_range: default (1 for data in [0, 1]) or given; given for the gradients' central differences,
        # which step out of [0, 1]
        dr = draw(log_uniform(0.5, 255.0) if range_given else st.one_of(st.none(), log_uniform(0.5, 255.0)))
        return dict(x=x, y=y, data_range=dr, seed=draw(st.integers(0, 999)))

    @st.composite
    def dice_case(draw):
        B, K = draw(st.integers(1, 2)), draw(st.integers(2, 4))
        H, W = draw(st.integers(2, 16)), draw(st.integers(2, 16))
        g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
        logits = 3 * torch.randn(2, B, K, H, W, generator=g, dtype=torch.float64)
        pr = torch.softmax(logits, 2).float().double()
        return dict(x=pr[0], y=pr[1], excl=draw(st.booleans()), seed=draw(st.integers(0, 999)))

    def absolute(c, out):
        return {k: 1.0 for k in out}

    def relative(c, out):
        return {k: max(float(v.abs().max()), 1e-300) for k, v in out.items()}

    return {
        "metrics.psnr": Diff(pair(), lambda c: {"psnr": metrics.psnr(c["x"], c["y"], c["data_range"])}, 2e-5,
                             "dB: the MSE to 5e-6 relative is 2e-5 dB", scale=absolute, wrt=("x", "y"),
                             grad_tol=1e-4, examples=20, grad_examples=4,
                             # central differences of -10 log10(mse) need |x - y| well above their step
                             grad_draw=pair(range_given=True, min_level=1e-3)),
        "metrics.ssim": Diff(pair(min_size=11), lambda c: {"ssim": metrics.ssim(c["x"], c["y"], c["data_range"])},
                             1e-6, "computed in float64 (documented): the float32 rounding of a value <= 1",
                             scale=absolute, wrt=("x", "y"), grad_tol=1e-4, examples=15, grad_examples=3,
                             grad_draw=pair(min_size=11, range_given=True)),
        "metrics.mse": Diff(pair(), lambda c: {"mse": metrics.mse(c["x"], c["y"])}, 5e-6,
                            "a float32 mean of squares: a few roundings, relative", scale=relative,
                            wrt=("x", "y"), grad_tol=1e-5, examples=20, grad_examples=3),
        "metrics.mae": Diff(pair(), lambda c: {"mae": metrics.mae(c["x"], c["y"])}, 5e-6,
                            "a float32 mean of magnitudes: a few roundings, relative", scale=relative,
                            wrt=("y",), grad_tol=1e-6, examples=20, grad_examples=3,
                            grad_draw=pair().filter(lambda c: bool(((c["x"] - c["y"]).abs() > 1e-6).all()))),
        "metrics.dice": Diff(dice_case(), lambda c: {"dice": metrics.dice(c["x"], c["y"],
                                                                           exclude_background=c["excl"])},
                             1e-6, "soft Dice, a ratio of sums of probabilities, in [0, 1]", scale=absolute,
                             wrt=("x", "y"), grad_tol=1e-4, examples=20, grad_examples=3),
        "metrics.miou": Diff(dice_case(), lambda c: {"miou": metrics.miou(c["x"], c["y"],
                                                                           exclude_background=c["excl"])},
                             1e-6, "soft IoU, D / (2 - D) of the soft Dice, in [0, 1]", scale=absolute,
                             wrt=("x", "y"), grad_tol=1e-4, examples=20, grad_examples=3),
    }


def _iel():
    import pdeflow.iel as iel

    @st.composite
    def iel_case(draw):
        # logits of a segmentation network: |logit| <= 30 (softmax saturates far below; the "tv" operator's
        # eps = 0.1 is in logit units, so its float32 gradients lose digits at logits of hundreds)
        x = draw(images(min_size=4, max_size=16, channels=(1, 2, 3), scale=(1.0, 30.0)))
        op = draw(st.sampled_from(["heat", "tv", "perona-malik"]))
        boundary = draw(st.sampled_from(["zero", "neumann"]))
        dt = draw(log_uniform(1e-3, 0.2))
        layer = iel.InverseEvolution(op, dt=dt, steps=1, boundary=boundary)
        a1 = layer.amplification()
        # as many layers as keep the documented stable amplification (1e3), at least one, at most 40
        max_steps = max(1, min(40, int(math.log(iel.STABLE_AMPLIFICATION) / math.log(a1))))
        steps = draw(st.integers(1, max_steps))
        x = 2 * x - span(x)        # logits of both signs
        return dict(x=x.float().double(), op=op, dt=dt, steps=steps, boundary=boundary,
                    seed=draw(st.integers(0, 999)))

    def iel_call(c):
        net = iel.with_iels(torch.nn.Identity(), c["op"], dt=c["dt"], steps=c["steps"], boundary=c["boundary"])
        return {"u": net.train()(c["x"])}

    def iel_scale(c, out):
        a = iel.InverseEvolution(c["op"], dt=c["dt"], steps=c["steps"], boundary=c["boundary"]).amplification()
        return {"u": span(c["x"]) * a}

    return {
        "iel.with_iels": Diff(iel_case(), iel_call, 1e-5, "the output is the input amplified by up to A "
                              "(<= 1e3); each of <= 40 layers rounds and the later ones carry it: "
                              "scale range * A", scale=iel_scale, wrt=("x",), grad_tol=1e-4, examples=25,
                              grad_examples=5),
    }


def _inpaint():
    import pdeflow.inpaint as ip

    @st.composite
    def masked(draw, min_size=4, max_size=24, density=(0.02, 0.9), channels=(1, 3), scale=(1.0, 1e3)):
        x = draw(images(min_size=min_size, max_size=max_size, channels=channels, scale=scale))
        B, _, H, W = x.shape
        d = f32(draw(st.floats(max(density[0], 1.5 / (H * W)), min(density[1], 1 - 1.5 / (H * W)))))
        seed = draw(st.integers(0, 2 ** 16))
        m = ip.random_mask((B, 1, H, W), d, generator=seed, dtype=torch.float64)
        if not bool((m.sum((1, 2, 3)) > 0).all()):
            m[..., 0, 0] = 1
        return dict(x=x, mask=m, density=d, seed=seed % 1000)

    @st.composite
    def eed_case(draw):
        """EED over its documented range: contrast 0.005-0.2 of the range, presmoothing 0-3 pixels."""
        c = draw(masked(min_size=6))
        c["contrast"] = f32(draw(st.floats(0.005, 0.2)))
        c["sigma"] = f32(draw(st.floats(0.0, 3.0)))
        return c

    @st.composite
    def tonal_case(draw):
        """Tonal optimisation for each operator it serves (homogeneous diffusion, EED)."""
        c = draw(masked(min_size=6, density=(0.05, 0.5)))
        c["operator"] = draw(st.sampled_from(("diffusion", "eed")))
        return c

    @st.composite
    def tv_case(draw):
        """TV over its documented range: eps 1e-3 to 0.1 of the range."""
        c = draw(masked(min_size=6))
        c["eps"] = f32(10 ** draw(st.floats(-3.0, -1.0)))
        return c

    def diffuse_call(c):
        return {"u": ip.inpaint_diffusion(c["x"], c["mask"], tol=1e-8, max_iter=2000)}

    def unit(c, out):
        return {k: 1.0 for k in out}

    def masks_out(m):
        return {"mask": m}

    @st.composite
    def density_case(draw, min_size=4, max_size=24, lo=0.02, hi=0.5, unit=False, channels=(1, 3)):
        x = draw(images(min_size=min_size, max_size=max_size, channels=channels,
                        scale=(1.0, 1.0) if unit else (1.0, 1e3)))
        n = x.shape[-1] * x.shape[-2]
        d = draw(st.floats(max(lo, 1.5 / n), min(hi, 1 - 1.5 / n)))
        # the shipped mask networks' densities, for learned_mask
        return dict(x=x, density=f32(d), shipped=draw(st.sampled_from([0.05, 0.1, 0.2])),
                    seed=draw(st.integers(0, 999)))

    @st.composite
    def operator_case(draw):
        """A density case and the operator the mask is made for."""
        c = draw(density_case(max_size=16, unit=True))
        c["operator"] = draw(st.sampled_from(sorted(ip.OPERATORS)))
        return c

    @st.composite
    def dither_case(draw):
        c = draw(density_case())
        c["x"] = c["x"].mean(1, keepdim=True)
        c["x"] = c["x"].float().double()
        return c

    def err_call(c):
        return {"e": ip.inpainting_error(c["x"], c["mask"] * c["x"], metric=c.get("metric", "mse"))}

    @st.composite
    def err_case(draw):
        c = draw(masked())
        c["metric"] = draw(st.sampled_from(["mse", "mae"]))
        return c

    def relative(c, out):
        return {k: max(float(v.abs().max()), 1e-300) for k, v in out.items()}

    small_nets = {}

    def gan(which):
        if which not in small_nets:
            torch.manual_seed(0)
            small_nets["pair"] = ip.learned.maskgan.MaskGAN(1, width=0.1, density=0.1).eval()
            small_nets["inpainter"] = ip.learned.wgan.InpaintingGenerator(1, width=0.1).eval()
        return small_nets[which]

    def mask_tol(reason, examples=10, **kw):
        return dict(tol=0.01, reason=reason, scale=unit, share=True, examples=examples, **kw)

    return {
        "inpaint.inpaint_diffusion": Diff(
            masked(), diffuse_call, 1e-5, "float32 CG to a 1e-8 residual: the solution to 1e-5 of the range",
            wrt=("x", "mask"), no_fd=("mask",), grad_tol=1e-4, fd_tol=1e-4, examples=25, grad_examples=4),
        "inpaint.inpaint_biharmonic": Diff(
            masked(), lambda c: {"u": ip.inpaint_biharmonic(c["x"], c["mask"], tol=1e-9)}, 1e-4,
            "float32 on the squared Laplacian (its condition number squared): the solution to 1e-4 of the range",
            wrt=("x", "mask"), no_fd=("mask",), grad_tol=1e-3, fd_tol=1e-4, examples=15, grad_examples=3),
        "inpaint.inpaint_eed": Diff(
            eed_case(), lambda c: {"u": ip.inpaint_eed(c["x"], c["mask"], contrast=c["contrast"], sigma=c["sigma"],
                                                        tol=1e-7, max_iter=500)}, 1e-4,
            "a lagged-diffusivity fixed point to 1e-7, its tensor from float32 gradients: 1e-4 of the range "
            "(not differentiable)", examples=12),
        "inpaint.inpaint_tv": Diff(
            tv_case(), lambda c: {"u": ip.inpaint_tv(c["x"], c["mask"], eps=c["eps"], tol=1e-7, max_iter=500)}, 1e-4,
            "a lagged-diffusivity minimiser to 1e-7 with diffusivities up to 1/eps: 1e-4 of the range",
            wrt=("x",), grad_tol=1e-3, fd_tol=1e-3, examples=12, grad_examples=3),
        "inpaint.inpaint_shepard": Diff(
            masked(), lambda c: {"u": ip.inpaint_shepard(c["x"], c["mask"])}, 1e-5,
            "float32 Gaussian filters and their quotient, no iteration: the result to 1e-5 of the range",
            wrt=("x",), grad_tol=1e-4, fd_tol=1e-4, examples=12, grad_examples=3),
        "inpaint.optimise_tonal": Diff(
            tonal_case(),
            lambda c: {"values": ip.optimise_tonal(c["x"], c["mask"], operator=c["operator"], tol=1e-9,
                                                   solve_tol=1e-11, max_iter=500)},
            1e-4, "computed in float64 (documented) from the float32 image: least squares whose conditioning "
            "amplifies the input's rounding (for EED also its tensor's)", examples=10),
        "inpaint.inpainting_error": Diff(err_case(), err_call, 5e-6, "a float32 mean: a few roundings, relative",
                                         scale=relative, wrt=("x",), grad_tol=1e-5, examples=15,
                                         grad_examples=3),
        "inpaint.ps_mask": Diff(
            density_case(max_size=12, lo=0.1, hi=0.6),
            lambda c: masks_out(ip.ps_mask(c["x"], c["density"], p=0.3, q=0.3, generator=0,
                                                                tol=1e-8)),
            **mask_tol("same draws, and float32 solves to 1e-8: the same greedy choices but for near-ties",
                       examples=6)),
        "inpaint.nlpe_mask": Diff(
            masked(max_size=12, density=(0.1, 0.5)),
            lambda c: masks_out(ip.nlpe_mask(c["x"], c["mask"], candidates=4, cycles=1, generator=0,
                                                           tol=1e-8)),
            **mask_tol("same draws, and float32 solves to 1e-8: the same exchanges but for near-ties",
                       examples=6)),
        "inpaint.refine_mask": Diff(
            masked(min_size=11, max_size=16, density=(0.1, 0.5)),
            lambda c: masks_out(ip.refine_mask(c["x"], c["mask"], rounds=2, generator=0)),
            **mask_tol("worked on in float64 (documented): the same search", examples=6)),
        "inpaint.densify_mask": Diff(
            operator_case(),
            lambda c: masks_out(ip.densify_mask(c["x"], c["density"], stages=3, operator=c["operator"])),
            **mask_tol("error-driven choices from 1e-3 solves: the same points but for near-ties", examples=8)),
        "inpaint.dither": Diff(
            dither_case(), lambda c: masks_out(ip.dither(c["x"], c["density"])),
            **mask_tol("thresholding a density: the same points but for near-ties", examples=15, image=None)),
        "inpaint.analytic_mask": Diff(
            density_case(), lambda c: masks_out(ip.analytic_mask(c["x"], c["density"])),
            **mask_tol("a smoothed Laplacian, dithered: the same points but for near-ties", examples=15)),
        "inpaint.learned_mask": Diff(
            density_case(min_size=8, max_size=24, lo=0.05, hi=0.3, unit=True, channels=(1,)),
            lambda c: masks_out(ip.learned_mask(c["x"], c["shipped"])),
            **mask_tol("the network runs in float32 for either input: the same points but for near-ties",
                       examples=6)),
        "inpaint.gan_mask": Diff(
            density_case(min_size=8, max_size=16, lo=0.1, hi=0.1, unit=True),
            lambda c: masks_out(ip.gan_mask(c["x"][:, :1], 0.1, gan("pair"), generator=0)),
            **mask_tol("a thresholded network output: the same points but for near-ties", examples=5)),
        "inpaint.inpaint_wgan": Diff(
            masked(min_size=8, max_size=16, channels=(1,), scale=(1.0, 1.0)),
            lambda c: {"u": ip.inpaint_wgan(c["x"], c["mask"], gan("inpainter"), generator=0)},
            1e-5, "a small convolutional network: float32 convolutions to 1e-5 of the range", examples=5),
        "inpaint.inpaint_learned": Diff(
            masked(min_size=8, max_size=16, density=(0.05, 0.5), channels=(1,), scale=(1.0, 1.0)),
            lambda c: {"u": ip.inpaint_learned(c["x"], c["mask"])},
            1e-5, "diffusion (float32 CG) plus a float32 network correction: 1e-5 of the range", examples=5),
    }


def _tvflownet():
    import pdeflow.tvflownet as tf

    @st.composite
    def field_case(draw, unit_ball=False):
        x = draw(images(min_size=2, max_size=16))
        seed = draw(st.integers(0, 2 ** 16))
        y = make_image(seed, tuple(x.shape), "noise", span(x))
        ph = torch.stack([x, y], dim=-3) - span(x) / 2
        if unit_ball:
            ph = ph / span(x) * 2.5
        ph = ph.float().double()
        return dict(x=ph, eps=draw(st.one_of(st.just(0.0), log_uniform(1e-4, 1.0))), seed=seed % 1000)

    @st.composite
    def grad_case(draw):
        x = draw(images(min_size=2, max_size=16))
        return dict(x=x, eps=f32(draw(log_uniform(1e-4, 1.0)) * span(x)), seed=draw(st.integers(0, 999)))

    @st.composite
    def loss_case(draw):
        x = draw(images(min_size=2, max_size=16, scale=(1.0, 5.0)))
        g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 16)))
        ut = (torch.randn(x.shape, generator=g, dtype=torch.float64)).float().double()
        ph = (torch.rand(*x.shape[:2], 2, *x.shape[2:], generator=g, dtype=torch.float64) * 2 - 1).float().double()
        return dict(x=x, ut=ut, phi=ph, seed=draw(st.integers(0, 999)))

    def loss_call(c):
        d = tf.loss_terms(c["x"], c["ut"], c["phi"], c["x"], c["x"])
        return {k: v for k, v in d.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}

    def relative(c, out):
        return {k: max(float(v.abs().max()), 1.0) for k, v in out.items()}

    @st.composite
    def time_case(draw):
        x = draw(images(min_size=2, max_size=16))
        return dict(x=x, t=draw(log_uniform(1e-4, 1.0)), seed=draw(st.integers(0, 999)))

    def toy(u0, t):
        s = torch.as_tensor(t, dtype=u0.dtype).reshape(-1, 1, 1, 1)
        return u0 * torch.exp(-s), torch.stack([u0, 0.5 * u0], -3) * s[..., None]

    @st.composite
    def net_case(draw, max_size=24):
        x = draw(images(min_size=8, max_size=max_size, channels=(1,), scale=(1.0, 1.0)))
        t = draw(log_uniform(1e-3, 1.0))
        return dict(x=x, times=[f32(t / 2), t], seed=draw(st.integers(0, 999)))

    return {
        "tvflownet.time_image": Diff(time_case(), lambda c: {"tau": tf.time_image(c["t"], c["x"])}, 0.0,
                                     "a broadcast copy of t: exact", scale=lambda c, o: {"tau": c["t"]},
                                     examples=5),
        "tvflownet.normalised_gradient": Diff(grad_case(), lambda c: {"n": tf.normalised_gradient(c["x"], c["eps"])},
                                              1e-6, "a few roundings of a value in [-1, 1]",
                                              scale=lambda c, o: {"n": 1.0}, wrt=("x",), grad_tol=1e-5,
                                              examples=15, grad_examples=3),
        "tvflownet.project_unit_ball": Diff(field_case(unit_ball=True),
                                            lambda c: {"p": tf.project_unit_ball(c["x"], c["eps"])}, 1e-6,
                                            "a few roundings of a value in [-1, 1]", scale=lambda c, o: {"p": 1.0},
                                            wrt=("x",), grad_tol=1e-5, image="x", examples=15, grad_examples=3,
                                            grad_draw=field_case(unit_ball=True).filter(lambda c: c["eps"] > 0)),
        "tvflownet.zero_border": Diff(field_case(), lambda c: {"p": tf.zero_border(c["x"])}, 0.0,
                                      "a copy with zeros: exact", wrt=("x",), grad_tol=1e-7, image="x", examples=5,
                                      grad_examples=1, scale=lambda c, o: {"p": span(c["x"])}),
        "tvflownet.loss_terms": Diff(loss_case(), loss_call, 5e-6, "float32 means of squares and TV terms: a few "
                                     "roundings, relative to each term (at least 1)", scale=relative,
                                     wrt=("x", "ut", "phi"), grad_tol=1e-4, examples=10, grad_examples=2),
        "tvflownet.time_derivative": Diff(time_case(), lambda c: {"u_t": tf.time_derivative(toy, c["x"], c["t"])[0]},
                                          1e-6,
                                          "forward-mode derivative of a smooth toy model: a few roundings",
                                          examples=8),
        "tvflownet.flow": Diff(net_case(), lambda c: {"u": tf.flow(c["x"], c["times"])}, 1e-5,
                               "the shipped network in float32 convolutions: 1e-5 of the range", examples=4),
        "tvflownet.tiled_flow": Diff(net_case(), lambda c: {"u": tf.tiled_flow(c["x"], c["times"][1:])}, 1e-5,
                                     "the shipped network in float32 convolutions: 1e-5 of the range", examples=3),
        "tvflownet.joint_optimise": Diff(net_case(max_size=12),
                                         lambda c: {"u": tf.joint_optimise(c["x"], [0.0] + c["times"][1:],
                                                                           iterations=3)[0]},
                                         1e-5, "three Adam steps from the shipped network: 1e-5 of the range",
                                         examples=3),
    }


#: Public callables that take no image, or are not numerical functions of one, with the reason.
EXCLUDED = {
    # pdeflow (top level): the re-exports of the subpackages' functions are covered under their own names
    "pdeflow.read_image": ("reads a file into a tensor (IO; its dtype handling is tested in "
                           "tests/datasets/test_data.py)"),
    "pdeflow.write_image": "writes a tensor to a file (IO)",
    "pdeflow.builtin_image": "a loader: a built-in image by name",
    "pdeflow.random_mask": "a random mask of a given shape, no image (the same as inpaint.random_mask)",
    "pdeflow.UserInputError": "an exception class",
    "pdeflow.InputFileNotFoundError": "an exception class",
    "pdeflow.InputIsADirectoryError": "an exception class",
    "pdeflow.InputDtypeError": "an exception class",
    # tv
    "tv.RofResult": "a result record (fields of rof's output)",
    "tv.estimate_sigma": ("a noise level (a median, covariance eigenvalues), not differentiable; computed in "
                          "float64 for every dtype (tests/tv/test_noise.py)"),
    "tv.SpectralTV": "a result record (spectral_tv's output, compared through its bands, residual and spectrum)",
    "tv.ConvergenceWarning": "a warning class",
    "tv.CompileWarning": "a warning class",
    "tv.dyadic_band_edges": "band edges from (n_steps, dt), no image",
    "tv.spectral_steps": "the steps of a decomposition from (dt, n_steps), no image",
    # ops: shape and input-check helpers move or return their input, no arithmetic
    "ops.as_batch": "a shape promotion (a view of its input), no arithmetic",
    "ops.unbatch": "a shape demotion (a view of its input), no arithmetic",
    "ops.check_tensor": "an input check that returns its input, no arithmetic",
    "ops.check_float": "an input check that returns its input, no arithmetic",
    "ops.check_image": "an input check that returns its input, no arithmetic",
    "ops.image_batch": "an input check and a shape promotion, no arithmetic",
    # ops re-exports the layout rule's helpers (pdeflow.layout): they read and restore a layout, no arithmetic
    "ops.read_layout": "reads an array's layout (a permutation of axes), no arithmetic",
    "ops.follows_layout_rule": "a decorator: moves axes in and out of the function it wraps, no arithmetic",
    "ops.layout_message": "the wording of the layout notices, no image",
    "ops.Layout": "a record of a layout and its inverse permutation, no arithmetic",
    "ops.ChannelsWarning": "a warning class, no image",
    # metrics
    "metrics.gaussian_window": "a 1-D window from (sigma, truncate), no image",
    # iel
    "iel.Heat": "an operator class; its layers run under with_iels (entry iel.with_iels, operator 'heat')",
    "iel.TVFlow": "an operator class; its layers run under with_iels (entry iel.with_iels, operator 'tv')",
    "iel.PeronaMalik": "an operator class; its layers run under with_iels (operator 'perona-malik')",
    "iel.InverseEvolution": "the layer stack that with_iels builds (entry iel.with_iels)",
    "iel.WithIELs": "the wrapper that with_iels builds (entry iel.with_iels)",
    "iel.SegmentationUNet": "a model class (trainable weights, no documented accuracy claim)",
    "iel.AmplificationWarning": "a warning class",
    "iel.make_operator": "builds an evolution operator from (name, param), no image",
    "iel.official_heat_iel": "builds a layer from (dt, steps), no image (the layers are run under with_iels)",
    "iel.heat_iel_symbol": "the Fourier symbol for a size (H, W), no image",
    "iel.block_noise": "takes and returns integer label maps (no float arithmetic on images)",
    "iel.window_noise": "takes and returns integer label maps (no float arithmetic on images)",
    "iel.add_label_noise": "takes and returns integer label maps (no float arithmetic on images)",
    # inpaint
    "inpaint.random_mask": "a random mask of a given shape, no image",
    "inpaint.hole_mask": "a random hole mask of a given shape, no image",
    "inpaint.star_radius": "a region's outline over a grid of a given shape, no image",
    "inpaint.default_stages": "a number of stages from an operator's name, no image",
    "inpaint.make_mask": "dispatches by name to the mask methods, each registered here under its own name",
    "inpaint.inpaint": "dispatches by name to the inpainting methods, each registered here under its own name",
    "inpaint.analytic_sigma": "a smoothing scale from a density (and a voxel spacing), no image",
    "inpaint.load_wgan": "loads a model by name or path, no image",
    "inpaint.load_mask_gan": "loads a model by density or path, no image",
    "inpaint.blue_noise_tile": "a threshold tile of a given size, no image",
    "inpaint.load_masknet": "loads a model by name or path, no image",
    "inpaint.load_residual": "loads a model by name or path, no image",
    "inpaint.load_joint": "loads a model pair by name or path, no image",
    # tvflownet
    "tvflownet.TVflowNetModel": "a model class (run by flow, its entry)",
    "tvflownet.SemiResNet": "a model class (run by flow, its entry)",
    "tvflownet.UNet": "a model class (run by flow, its entry)",
    "tvflownet.LGD": "a model class (run by flow, its entry)",
    "tvflownet.Ensemble": "a model class (run by flow, its entry)",
    "tvflownet.Equivariant": "a model wrapper class (run by flow, its entry)",
    "tvflownet.Tiled": "a model wrapper class (run by tiled_flow, its entry)",
    "tvflownet.PerChannel": "a model wrapper class (a grey model on each channel; run by flow in its test)",
    "tvflownet.TVFlowLoss": "a loss module class (its terms are loss_terms, the entry)",
    "tvflownet.TrainConfig": "a configuration record",
    "tvflownet.build_model": "builds a network from an architecture name, no image",
    "tvflownet.count_parameters": "counts a model's parameters, no image",
    "tvflownet.with_input_eps": "sets a model's input eps, no image",
    "tvflownet.load": "loads a model by name or path, no image",
    "tvflownet.average": "averages models' weights, no image",
    "tvflownet.ensemble": "combines models, no image",
    "tvflownet.shipped_models": "lists the shipped model names, no image",
}

REGISTRY: dict[str, Diff] = {**_tv(), **_ops(), **_metrics(), **_iel(), **_inpaint(), **_tvflownet()}


def resolve(key: str):
    """The object a registry or exclusion key names (``"tv.rof"``, ``"pdeflow.read_image"``)."""
    import importlib

    mod, name = key.rsplit(".", 1)
    module = importlib.import_module(mod if mod == "pdeflow" else f"pdeflow.{mod}")
    return getattr(module, name)


def cast_case(case: dict, dtype: torch.dtype) -> dict:
    """The case with its floating tensors in ``dtype`` (their values are exact in float32)."""
    return {k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in case.items()}


__all__ = ["Diff", "EXCLUDED", "PACKAGE_NAMES", "REGISTRY", "cast_case", "make_image", "resolve", "span"]
