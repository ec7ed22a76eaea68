"""Differential tests from ``__all__``: float32 against float64 (values and gradients) and float64 gradients
against central differences, for every public numerical function over its documented range; the entries
(argument strategies, tolerances and their reasons) are in tests/_differential.py.

Hypothesis runs derandomized (the same cases on every run); the budget per entry is its ``examples``
(``grad_examples``): make test draws at most ``FAST_BUDGET`` (``FAST_GRAD_BUDGET``) of them, the slow tier the
full budget."""
import dataclasses
import importlib
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
import torch  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from _differential import EXCLUDED, PACKAGE_NAMES, REGISTRY, cast_case, resolve, span  # noqa: E402
from pdeflow.errors import UserInputError  # noqa: E402

DIFFERENTIABLE = [k for k, e in REGISTRY.items() if e.wrt or e.params]
WITH_IMAGE = [k for k, e in REGISTRY.items() if e.image]


def _settings(n, shrink=False):
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, print_blob=False,
                    suppress_health_check=list(HealthCheck), phases=phases)


def _walk():
    """(key, object) for every public callable of the walked packages."""
    for pkg in PACKAGE_NAMES:
        module = importlib.import_module(pkg)
        prefix = "pdeflow" if pkg == "pdeflow" else pkg.removeprefix("pdeflow.")
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj):
                yield f"{prefix}.{name}", obj


def test_every_public_callable_is_registered_or_excluded():
    covered = {id(resolve(k)) for k in [*REGISTRY, *EXCLUDED]}
    missing = sorted(k for k, obj in _walk() if k not in REGISTRY and k not in EXCLUDED and id(obj) not in covered)
    assert not missing, f"give {missing} an entry in tests/_differential.py (REGISTRY, or EXCLUDED with a reason)"
    public = {k for k, _ in _walk()}
    stale = sorted((set(REGISTRY) | set(EXCLUDED)) - public)
    assert not stale, f"{stale} are in tests/_differential.py but not public"
    assert not set(REGISTRY) & set(EXCLUDED)
    assert all(e.reason for e in REGISTRY.values()) and all(EXCLUDED.values())


def _outputs(entry, case, dtype):
    out = entry.call(cast_case(case, dtype))
    return {k: v for k, v in out.items()}


def _compare(name, case, out32, out64, tol, scales, what="value", share=False):
    for k, b in out64.items():
        a = out32[k]
        assert a.shape == b.shape, f"{name}/{k}: shape {tuple(a.shape)} in float32, {tuple(b.shape)} in float64"
        a64, b64 = a.detach().double(), b.detach().double()
        assert bool((torch.isfinite(a64) == torch.isfinite(b64)).all()), f"{name}/{k}: inf/NaN differ"
        fin = torch.isfinite(b64)
        if share:       # the largest share of differing pixels in one image
            err = float((a64 != b64).flatten(1).double().mean(1).max())
        else:
            err = float((a64 - b64)[fin].abs().max()) if bool(fin.any()) else 0.0
        if bool((~fin).any()):
            assert torch.equal(a64[~fin], b64[~fin]), f"{name}/{k}: infinities differ"
        assert err <= tol * scales[k], (f"{name}/{k} ({what}): float32 off by {err:.3g} from float64, tolerance "
                                        f"{tol:g} * {scales[k]:.3g} = {tol * scales[k]:.3g}")


#: Entries whose float32-against-float64 comparison takes many CPU seconds (EED and TV operators, tonal
#: optimisation on them, the tiled network): the slow tier; their gradient checks (test_gradients) and the other
#: entries run in make test.
SLOW_FLOAT32 = {"inpaint.optimise_tonal", "inpaint.inpaint_eed", "inpaint.inpaint_tv", "tvflownet.tiled_flow"}


#: Cases per entry in make test: each entry's path runs on a few drawn cases; the rest of its budget (more sizes,
#: values and parameters through the same code) runs in the slow tier (the ``_full_budget`` tests).
FAST_BUDGET = 4
FAST_GRAD_BUDGET = 2
#: Fewer cases in make test where each takes seconds through one path (the rest: _full_budget, slow tier).
FAST_BUDGET_OF = {"tvflownet.flow": 1}
FAST_GRAD_BUDGET_OF = {"inpaint.inpaint_tv": 1}


def _fast(name):
    return min(REGISTRY[name].examples, FAST_BUDGET_OF.get(name, FAST_BUDGET))


def _fast_grad(name):
    return min(REGISTRY[name].grad_examples, FAST_GRAD_BUDGET_OF.get(name, FAST_GRAD_BUDGET))


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_FLOAT32 else n
                                  for n in sorted(REGISTRY)])
def test_float32_matches_float64(name):
    assert SLOW_FLOAT32 <= set(REGISTRY)
    entry = REGISTRY[name]
    _float32_against_float64(name, entry.examples if name in SLOW_FLOAT32 else _fast(name))


@pytest.mark.slow   # the same entries' paths run in test_float32_matches_float64 on FAST_BUDGET cases
@pytest.mark.parametrize("name", sorted(n for n, e in REGISTRY.items() if e.examples > _fast(n)
                                        and n not in SLOW_FLOAT32))
def test_float32_matches_float64_full_budget(name):
    _float32_against_float64(name, REGISTRY[name].examples)


def _float32_against_float64(name, budget):
    # the entry with its budget set: the drawn function's source (hypothesis derandomizes from it) stays as it was
    entry = dataclasses.replace(REGISTRY[name], examples=budget)

    @_settings(entry.examples)
    @given(case=entry.draw)
    def run(case):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out64 = _outputs(entry, case, torch.float64)
            out32 = _outputs(entry, case, torch.float32)
        for k, v in out32.items():
            if v.is_floating_point() and not entry.float64_out:
                assert v.dtype == torch.float32, f"{name}/{k}: float32 input gave {v.dtype}"
        scales = (entry.scale or (lambda c, o: {k: span(c["x"]) for k in o}))(case, out64)
        _compare(name, case, out32, out64, entry.tol, scales, share=entry.share)

    run()


def _functional(entry, case, dtype, leaves):
    """``sum_k <w_k, out_k>`` of the call on ``case`` in ``dtype`` with ``leaves`` (name -> tensor) put in."""
    c = cast_case(case, dtype)
    c.update(leaves)
    out = entry.call(c)
    total, mass = 0, 0.0
    for i, (k, v) in enumerate(sorted(out.items())):
        w = torch.randn(v.shape, generator=torch.Generator().manual_seed(1000 * int(case.get("seed", 0)) + i),
                        dtype=torch.float64)
        total = total + (w.to(v.dtype) * v).sum()
        mass += float(w.abs().sum()) * float(v.detach().abs().max())
    return total, mass


def _param(case, p, dtype):
    return torch.tensor(case[p], dtype=dtype)


def _grads(entry, case, dtype):
    leaves = {k: case[k].to(dtype).clone().requires_grad_() for k in entry.wrt}
    leaves.update({p: _param(case, p, dtype).requires_grad_() for p in entry.params})
    loss, mass = _functional(entry, case, dtype, leaves)
    names = list(leaves)
    gs = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
    return {k: (torch.zeros_like(leaves[k]) if g is None else g.detach()) for k, g in zip(names, gs)}, mass


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_gradients(name):
    """float32 gradients against float64 ones, and float64 ones against central differences of float64 calls,
    of a random linear functional of the outputs, w.r.t. the image(s) and the scalar parameters."""
    _gradient_checks(name, _fast_grad(name))


@pytest.mark.slow   # the same entries' paths run in test_gradients on FAST_GRAD_BUDGET cases
@pytest.mark.parametrize("name", sorted(n for n in DIFFERENTIABLE if REGISTRY[n].grad_examples > _fast_grad(n)))
def test_gradients_full_budget(name):
    _gradient_checks(name, REGISTRY[name].grad_examples)


def _gradient_checks(name, budget):
    entry = dataclasses.replace(REGISTRY[name], grad_examples=budget)

    @_settings(entry.grad_examples)
    @given(case=entry.grad_draw if entry.grad_draw is not None else entry.draw)
    def run(case):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g64, mass = _grads(entry, case, torch.float64)
            g32, _ = _grads(entry, case, torch.float32)
            floor = {}
            for k in g64:
                # relative to the gradient's largest entry; where that vanishes (a parameter the output does not
                # depend on), to 1e-6 of the functional's magnitude per unit relative change of the argument
                arg = case[k] if k in entry.wrt else _param(case, k, torch.float64)
                size = span(arg) if k in entry.wrt else float(arg.abs().max())
                floor[k] = 1e-6 * mass / max(size, 1e-300)
                s = max(float(g64[k].abs().max()), floor[k], 1e-300)
                err = float((g32[k].double() - g64[k]).abs().max())
                assert err <= entry.grad_tol * s, (f"{name}: d/d{k} in float32 off by {err:.3g} from float64 "
                                                   f"(largest entry {s:.3g}; tolerance {entry.grad_tol:g} relative)")
            # central differences of float64 calls along a random direction (images) or the parameter itself
            for i, k in enumerate(g64):
                if k in entry.no_fd:
                    continue
                if k in entry.wrt:
                    base = case[k]
                    v = torch.randn(base.shape, generator=torch.Generator().manual_seed(77 + i), dtype=torch.float64)
                    h = entry.fd_step * span(base)
                else:
                    base = _param(case, k, torch.float64)
                    v = base.clone()
                    h = entry.fd_step
                plus, _ = _functional(entry, case, torch.float64, {k: base + h * v})
                minus, _ = _functional(entry, case, torch.float64, {k: base - h * v})
                fd = float(plus - minus) / (2 * h)
                gv = float((g64[k] * v).sum())
                # plus an absolute 1e-8 of the functional's magnitude (per unit relative change of the argument):
                # a derivative that vanishes (an extinct ROF solution's d/dlam) is computed to that
                bound = (entry.fd_tol * float(g64[k].norm()) + 1e-2 * floor[k]) * float(v.norm())
                assert abs(fd - gv) <= bound + 1e-12 * abs(gv), (
                    f"{name}: d/d{k} along a direction: float64 gradient {gv:.10g}, central difference {fd:.10g} "
                    f"(off by {abs(fd - gv):.3g}, tolerance {bound:.3g})")

    run()


@pytest.mark.parametrize("name", sorted(WITH_IMAGE))
def test_integer_image_refused(name):
    """The integer-image rule: an 8-bit image tensor is refused with UserInputError, in every function."""
    entry = REGISTRY[name]

    @_settings(1, shrink=False)
    @given(case=entry.draw)
    def run(case):
        x = case[entry.image]
        c = dict(case)
        c[entry.image] = (255 * (x - x.min()) / span(x)).round().to(torch.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(UserInputError):
                entry.call(c)

    run()
