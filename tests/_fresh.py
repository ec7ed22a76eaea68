"""One fresh interpreter for make test's checks of what starting pdeflow imports (tests/package: test_toplevel.py,
test_architecture.py rule 3, test_startup.py; tests/dask/test_dask_batch.py). A fresh interpreter imports torch,
seconds of CPU, so these checks share one, in an order where modules only accumulate: a step that must import
nothing more is checked after the steps before it, so what it finds missing is missing after that step alone too.

Steps (the keys of :func:`run`'s answer):

- ``first_use``: ``import pdeflow; pdeflow.tv``, then whether torch and pdeflow.inpaint are imported;
- ``inference``: the inference subpackages and their loaders, then the training and command-line modules imported;
- ``cli``: ``pdeflow --version`` and a typo, each one's exit status and the pdeflow.cli and torch._dynamo modules
  imported by then;
- ``parser``: the full parser built and a batch command line parsed, then the dask and distributed modules
  imported (none until a batch runs);
- ``every_subpackage``: every subpackage imported, then the torch._dynamo modules imported.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pdeflow

SRC = os.path.dirname(os.path.dirname(os.path.abspath(pdeflow.__file__)))

_SCRIPT = """
import contextlib, importlib, io, json, sys
seen = {}
import pdeflow
pdeflow.tv
seen["first_use"] = ["torch" in sys.modules, "pdeflow.inpaint" in sys.modules]
import pdeflow.tvflownet, pdeflow.inpaint
pdeflow.tvflownet.load, pdeflow.inpaint.load_wgan
seen["inference"] = sorted(m for m in sys.modules if m.startswith(("pdeflow.training", "pdeflow.inpaint.training",
                                                                     "pdeflow.cli")) or m.endswith(".train"))
from pdeflow.cli import main
seen["cli"] = []
for argv in (["--version"], ["compres", "photo.png"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(argv)
    seen["cli"].append([rc, sorted(m for m in sys.modules if m.startswith(("pdeflow.cli.", "torch._dynamo")))])
from pdeflow.cli import build_parser
build_parser().parse_args(["denoise", "a", "b", "--lam", "0.1", "--out", "o", "--workers", "2"])
seen["parser"] = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
for n in pdeflow._SUBMODULES:
    importlib.import_module("pdeflow." + n)
seen["every_subpackage"] = sorted(m for m in sys.modules if m.startswith("torch._dynamo"))
print(json.dumps(seen))
"""


def run() -> dict:
    """The steps' findings, from one fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    r = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)
