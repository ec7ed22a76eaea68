"""pdeflow: image processing with evolution PDEs, classical and learned."""
import os as _os
import sys as _sys

__version__ = "0.1.0"

# OpenMP's default wait policy lets torch's worker threads spin between
# parallel regions; on a busy machine (more runnable threads than cores) the
# spinning steals the cores that torch's main thread needs and pdeflow's many
# small per-pixel kernels run 5-20x slower. The OpenMP runtime reads
# OMP_WAIT_POLICY once, when torch loads it, so the passive policy is set here
# only if torch is not loaded yet (the user's own setting wins). If torch came
# first, the policy can no longer change and `pdeflow.threads` lowers torch's
# thread count during pdeflow's solvers instead, when the machine is busy.
_OPENMP_SPINS = (
    "torch" in _sys.modules
    and "OMP_WAIT_POLICY" not in _os.environ
    and "GOMP_SPINCOUNT" not in _os.environ
)
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import UserInputError  # noqa: E402

__all__ = ["UserInputError", "__version__"]
