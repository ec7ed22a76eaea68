"""Every public name's docstring has an Examples section, and it runs as a doctest.

The public names are what each public module exports in ``__all__`` (``docs/_ext/pdeflow_api.py``,
the same list the API reference is built from), each checked once, where the reference documents
it. Module-level constants are exempt: a number or a tuple has no docstring of its own.

``MISSING`` lists the names that have no Examples section yet; a name outside it without one fails,
and a name in it that has gained one fails too, so the list only shrinks.
"""
import doctest
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import pdeflow_api  # noqa: E402

import pdeflow  # noqa: E402,F401  (before torch: OpenMP's passive wait policy)

# The names without an Examples section on this branch (others are writing them; the lead empties
# this set after merging their work).
MISSING: set = set()

_MODULES = pdeflow_api.public_modules()
_CANON = pdeflow_api.canonical_names(_MODULES)


def _public_objects():
    out = {}
    for mod in _MODULES:
        for name, obj in pdeflow_api.exported(mod):
            full = _CANON[(mod, name)]
            if full == f"{mod}.{name}" and pdeflow_api.kind(obj) in ("function", "class"):
                out[full] = (mod, obj)
    return dict(sorted(out.items()))


PUBLIC = _public_objects()


def _examples(obj):
    """Whether ``obj``'s own docstring (not its methods') has a numpydoc Examples section."""
    doc = obj.__doc__ or ""
    lines = [line.strip() for line in doc.splitlines()]
    has_section = any(a == "Examples" and b.startswith("---") for a, b in zip(lines, lines[1:]))
    return has_section


def test_public_names_found():
    assert len(PUBLIC) > 100  # the walk over the package found the API


def test_missing_set_is_current():
    """MISSING names only names that exist and still lack an Examples section."""
    unknown = sorted(MISSING - set(PUBLIC))
    assert not unknown, f"MISSING names no public name: {unknown}"
    done = sorted(n for n in MISSING if _examples(PUBLIC[n][1]))
    assert not done, f"these have an Examples section now; remove them from MISSING: {done}"


#: Examples of seconds of CPU whose calls other examples or tests make in make test: the slow tier. The dask ones:
#: the other pdeflow.dask examples (rof_to_zarr's is StoreResult's) and tests/dask (test_float32_chunks_give_the_
#: float64_answer: inpaint_to_zarr); codec decode and load: the encode, EncodeResult and save examples.
SLOW_EXAMPLES = {"pdeflow.dask.tv_flow", "pdeflow.dask.SchwarzResult", "pdeflow.dask.StoreResult",
                 "pdeflow.dask.inpaint_to_zarr", "pdeflow.codec.decode", "pdeflow.codec.load"}


def test_slow_examples_are_public_names():
    assert SLOW_EXAMPLES <= set(PUBLIC)


@pytest.mark.parametrize("full", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_EXAMPLES else n
                                  for n in PUBLIC])
def test_docstring_example_runs(full):
    mod, obj = PUBLIC[full]
    if not _examples(obj):
        if full in MISSING:
            pytest.skip("no Examples section yet (listed in MISSING)")
        pytest.fail(f"{full} has no Examples section in its docstring (every public name needs one)")
    module = sys.modules[mod]
    globs = dict(vars(module))
    finder = doctest.DocTestFinder(recurse=False)
    tests = [t for t in finder.find(obj, full, globs=globs) if t.examples]
    assert tests, f"{full}: an Examples section without a single >>> line"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    for t in tests:
        runner.run(t, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{full}: {result.failed} of {result.attempted} examples failed\n{out.getvalue()}"
