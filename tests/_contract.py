"""The API contract, as data: input kinds, and how to call each public function of a package on an image.

Every public callable in a package's ``__all__`` either has an entry in that package's table (a
:class:`Entry`: how to call it on an image ``x`` of shape (B, C, H, W), (C, H, W) or (H, W), and how to
read the tensors of its result) or is named in its ``exempt`` set with the reason (it takes no image).
Another package joins by adding a ``(module, table, exempt)`` triple to ``PACKAGES``
(tests/package/test_api_contract.py).

For each (function, input kind) the function must give the right answer (the same call on the same
values in float64, to a tolerance of the input's dtype) or raise ``UserInputError`` naming the argument;
anything else is a failure (a traceback from inside the library, or a silent loss of accuracy).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

#: Absolute tolerance of a result (images of values in [0, 1]) by the dtype of the input.
TOLERANCE = {torch.float64: 1e-7, torch.float32: 2e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


@dataclass
class Entry:
    """How to call one function: ``call(x)`` on an image-like ``x``; ``arg`` names the argument ``x`` is
    passed as (the name a refusal must mention); ``out(result)`` the tensors to compare."""

    call: Callable
    arg: str
    out: Callable = lambda r: (r,) if isinstance(r, torch.Tensor) else tuple(r)
    min_size: int = 1          # smallest H, W it takes (a refusal below it is right)
    names_too: tuple = ()      # other arguments a refusal may name (a density too small for a 1x1 image)


def _base(seed: int = 0, shape=(2, 1, 12, 12)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _noncontiguous(x):
    big = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
    big[..., ::2] = x
    return big[..., ::2]


#: kind -> (build the input from a float64 4-D image, the float64 values it holds for the reference,
#: the dtype for the tolerance).  ``None`` as the values: no reference (the input must be refused).
KINDS: dict[str, Callable] = {
    "float16": lambda x: (x.half(), x.half().double(), torch.float16),
    "bfloat16": lambda x: (x.bfloat16(), x.bfloat16().double(), torch.bfloat16),
    "float32": lambda x: (x.float(), x.float().double(), torch.float32),
    "float64": lambda x: (x.clone(), x, torch.float64),
    "requires_grad": lambda x: (x.clone().requires_grad_(), x, torch.float64),
    "empty_batch": lambda x: (x[:0].clone(), None, torch.float64),
    "0x0": lambda x: (x[:, :, :0, :0].clone(), None, torch.float64),
    "1x1": lambda x: (x[:, :, :1, :1].clone(), x[:, :, :1, :1], torch.float64),
    "non_contiguous": lambda x: (_noncontiguous(x), x, torch.float64),
    "channels_last": lambda x: (x.contiguous(memory_format=torch.channels_last), x, torch.float64),
    "2d": lambda x: (x[0, 0].clone(), x[0, 0], torch.float64),
    "3d": lambda x: (x[0].clone(), x[0], torch.float64),
    # (B, C, H, W) in float64 is the "float64" kind above
    "meta": lambda x: (x.to("meta"), None, torch.float64),
    "numpy": lambda x: (x.numpy().copy(), x, torch.float64),
    "list": lambda x: (x.tolist(), x.float().double(), torch.float32),   # a list of floats: float32 as torch
}


#: (entry, reference values) -> the float64 reference result: several kinds hold the same values (float64,
#: requires_grad, non_contiguous, channels_last, numpy; float32 and list), so each reference is computed once.
_REFERENCES: dict = {}


def _reference(entry: Entry, values: torch.Tensor):
    key = (id(entry), tuple(values.shape), values.numpy().tobytes())
    if key not in _REFERENCES:
        _REFERENCES[key] = (entry, entry.call(values.clone()))    # the entry held: its id stays its own
    return _REFERENCES[key][1]


def check_case(entry: Entry, kind: str, user_input_error: type) -> str:
    """Run one case: ``"ok"`` (right answer) or ``"refused"`` (UserInputError naming the argument); raises
    AssertionError on a wrong answer, a refusal without the argument's name, or any other exception."""
    inp, ref_vals, dtype = KINDS[kind](_base())
    try:
        got = entry.call(inp)
    except user_input_error as exc:
        # as a word: a one-letter name ("u", "x") is in almost any sentence
        assert any(re.search(rf"(?<![\w.]){re.escape(a)}(?![\w(])", str(exc)) for a in (entry.arg, *entry.names_too)), \
            f"{kind}: refusal does not name {entry.arg!r}: {exc}"
        return "refused"
    assert ref_vals is not None, f"{kind}: accepted an input without values (returned {type(got).__name__})"
    if ref_vals.shape[-1] < entry.min_size:
        raise AssertionError(f"{kind}: took an image below its minimum size {entry.min_size}")
    ref = _reference(entry, ref_vals)
    for a, b in zip(entry.out(got), entry.out(ref)):
        a = torch.as_tensor(a)
        assert a.shape == b.shape, f"{kind}: shape {tuple(a.shape)}, float64 gives {tuple(b.shape)}"
        if a.is_floating_point():
            assert a.dtype in (dtype, torch.float32, torch.float64), f"{kind}: result dtype {a.dtype}"
            a64, b64 = a.detach().double(), b.double()
            assert bool((torch.isfinite(a64) == torch.isfinite(b64)).all()), f"{kind}: inf/NaN where float64 has none"
            err = (a64 - b64).abs().nan_to_num(0.0, posinf=0.0, neginf=0.0).max().item() if a.numel() else 0.0
            scale = max(1.0, b64.abs().nan_to_num(0.0, posinf=0.0, neginf=0.0).max().item()) if b.numel() else 1.0
            assert err <= TOLERANCE[dtype] * scale, \
                f"{kind}: off by {err:.3g} from float64 (tolerance {TOLERANCE[dtype]:g})"
    return "ok"


def public_callables(module) -> list[str]:
    return [n for n in module.__all__ if callable(getattr(module, n)) and not isinstance(getattr(module, n), type)]


__all__ = ["Entry", "KINDS", "TOLERANCE", "check_case", "public_callables"]
