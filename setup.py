"""The compiled part of pdeflow: fused CPU loops of the TV solver's FGP iteration (``pdeflow.tv._fgp_kernel``).

Everything else is in pyproject.toml. The extension is plain C against the Python C API (no NumPy, no build
dependency beyond setuptools and a C compiler); where it cannot be built (no compiler) the install goes on
without it and the solver runs its PyTorch path. ``-O3`` without ``-march=native`` (a wheel runs on any CPU of its
platform; the loops carry an AVX2 build too, chosen at import where the CPU has it); ``-ffp-contract=off`` keeps
multiply and add separate, as in the PyTorch path, so both round alike.
"""
import sys

from setuptools import Extension, setup

if sys.platform == "win32":
    flags = ["/O2", "/fp:precise"]
else:
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]

setup(ext_modules=[Extension("pdeflow.tv._fgp_kernel", ["src/pdeflow/tv/_fgp_kernel.c"],
                             depends=["src/pdeflow/tv/_fgp_volume.c", "src/pdeflow/tv/_tied.c"],
                             extra_compile_args=flags, optional=True)])
