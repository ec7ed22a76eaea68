"""Classical total variation: ROF solvers, the TV flow and the spectral TV decomposition."""
from .flow import FLOW_METHODS, FLOW_SCHEMES, tv_flow
from .noise import estimate_sigma
from .rof import (
    ACCURACY,
    FLOW_ACCURACY,
    ND_METHODS,
    ROF_METHODS,
    CompileWarning,
    ConvergenceWarning,
    RofResult,
    duality_gap,
    rof,
)
from .spectral import SPECTRAL_ACCURACY, SpectralTV, dyadic_band_edges, spectral_from_stack, spectral_steps, spectral_tv

__all__ = ["rof", "RofResult", "ROF_METHODS", "ND_METHODS", "ACCURACY", "FLOW_ACCURACY", "duality_gap",
           "ConvergenceWarning", "CompileWarning", "estimate_sigma",
           "tv_flow", "FLOW_METHODS", "FLOW_SCHEMES",
           "spectral_tv", "spectral_from_stack", "SpectralTV", "dyadic_band_edges", "spectral_steps",
           "SPECTRAL_ACCURACY"]
