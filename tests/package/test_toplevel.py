"""``import pdeflow`` is light (no torch, no subpackage) and its lazy names are the real objects."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import pdeflow

SRC = os.path.dirname(os.path.dirname(os.path.abspath(pdeflow.__file__)))


def _python(code: str, env: dict | None = None) -> str:
    full = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    for k, v in list(full.items()):
        if v is None:
            del full[k]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_pdeflow_imports_neither_torch_nor_a_subpackage():
    out = _python("import sys, json, pdeflow; "
                  "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('pdeflow', 'torch', 'numpy')))))")
    assert json.loads(out) == ["pdeflow", "pdeflow.errors", "pdeflow.threads"]


@pytest.mark.slow   # a fresh interpreter; test_first_use_imports_the_subpackage stays in make test
def test_every_public_module_is_an_attribute_of_a_fresh_import():
    """``import pdeflow; pdeflow.models`` works for every public module and subpackage (not the command)."""
    root = os.path.dirname(os.path.abspath(pdeflow.__file__))
    names = sorted(n.removesuffix(".py") for n in os.listdir(root)
                   if not n.startswith(("_", ".")) and (n.endswith(".py") or os.path.isdir(os.path.join(root, n)))
                   and n != "cli")
    assert {"models", "multigrid", "tv"} <= set(names)
    out = _python(f"import pdeflow; print([getattr(pdeflow, n).__name__ for n in {names!r}])")
    assert out.strip() == repr([f"pdeflow.{n}" for n in names])


def test_first_use_imports_the_subpackage(fresh_interpreter):
    """``import pdeflow; pdeflow.tv`` imports torch and not pdeflow.inpaint (the first step of tests/_fresh.py)."""
    assert fresh_interpreter["first_use"] == [True, False]


def test_omp_wait_policy_is_set_before_torch_unless_the_user_set_it():
    code = "import os, pdeflow; print(os.environ.get('OMP_WAIT_POLICY'))"
    assert _python(code, {"OMP_WAIT_POLICY": None}).strip() == "PASSIVE"
    assert _python(code, {"OMP_WAIT_POLICY": "ACTIVE"}).strip() == "ACTIVE"
    # torch first: the policy can no longer change, pdeflow leaves the environment alone
    assert _python("import torch; " + code, {"OMP_WAIT_POLICY": None}).strip() == "None"


@pytest.mark.parametrize("name, module", sorted(pdeflow._FUNCTIONS.items()))
def test_each_top_level_function_is_the_subpackages_own(name, module):
    import importlib

    assert getattr(pdeflow, name) is getattr(importlib.import_module(f"pdeflow.{module}"), name)
    assert name in pdeflow.__all__ and name in dir(pdeflow)


@pytest.mark.parametrize("name", pdeflow._SUBMODULES)
def test_each_subpackage_resolves_to_its_module(name):
    assert getattr(pdeflow, name) is sys.modules[f"pdeflow.{name}"]
    assert name in dir(pdeflow)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pdeflow.nope
    assert not hasattr(pdeflow, "cli_nope")

