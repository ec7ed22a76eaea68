"""One fresh interpreter for make test's checks of what starting pdeflow imports (a torch import each, seconds):
steps in an order where modules only accumulate, so what a step finds not imported is not imported by it alone.
Keys of :func:`run`'s answer: ``first_use`` (``pdeflow.tv``: torch and pdeflow.inpaint imported?), ``inference``
(training or cli modules after the inference subpackages), ``cli`` (``--version`` and a typo: status, cli modules),
``parser`` (dask modules after a batch command line is parsed), ``every_subpackage`` (torch._dynamo modules),
``forward_mode`` (the warnings of the process's first forward-mode time derivative, loss (12)'s ``u_t``)."""
import json
import os
import subprocess
import sys

import pdeflow

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
from pdeflow.cli import build_parser, main
seen["cli"] = []
for argv in (["--version"], ["compres", "photo.png"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(argv)
    seen["cli"].append([rc, sorted(m for m in sys.modules if m.startswith(("pdeflow.cli.", "torch._dynamo")))])
build_parser().parse_args(["denoise", "a", "b", "--lam", "0.1", "--out", "o", "--workers", "2"])
seen["parser"] = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
for n in pdeflow._SUBMODULES:
    importlib.import_module("pdeflow." + n)
seen["every_subpackage"] = sorted(m for m in sys.modules if m.startswith("torch._dynamo"))
import warnings, torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdeflow.tvflownet.time_derivative(pdeflow.tvflownet.build_model("semiresnet", width=4, depth=2),
                                      torch.rand(1, 1, 8, 8), torch.tensor([0.1]))
seen["forward_mode"] = [f"{w.category.__name__}: {w.message}" for w in caught]
print(json.dumps(seen))
"""


def run() -> dict:
    src = os.path.dirname(os.path.dirname(os.path.abspath(pdeflow.__file__)))
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    r = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)
