"""Fixtures shared by the TV tests."""
import sys

import pytest


@pytest.fixture
def fused_loops(monkeypatch):
    """The solvers on the compiled FGP loops whatever ``PDEFLOW_FUSED`` says (skipped where they were not built):
    for tests of the loops' own behaviour."""
    rows = pytest.importorskip("pdeflow.tv._fused_rows")
    if rows.kernel is None:
        pytest.skip("the fused FGP loops were not built in this install")
    monkeypatch.setattr(sys.modules["pdeflow.tv._rof_methods"], "FUSED", True)
