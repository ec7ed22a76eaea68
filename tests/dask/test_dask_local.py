"""pdeflow.dask.iel reads the reach of the evolution operator from the operator (pdeflow.iel.EVOLUTIONS' classes
carry ``reach``; a callable may carry one), and asks for it only where the operator does not say."""
import dask.array as da
import numpy as np
import pytest
import torch

import pdeflow.dask as pdd
from pdeflow.errors import UserInputError
from pdeflow.iel import EVOLUTIONS, InverseEvolution, make_operator
from pdeflow.ops import laplacian


def _wide(u, boundary="zero"):
    """A two-pixel stencil: the Laplacian of the Laplacian's neighbours, zero boundary."""
    return laplacian(laplacian(u))


def test_the_ready_evolutions_carry_their_reach():
    assert {name: make_operator(name).reach for name in EVOLUTIONS} == {n: 1 for n in EVOLUTIONS}


def test_a_callable_without_a_reach_must_be_given_one():
    x = da.zeros((1, 1, 32, 32), chunks=16)
    with pytest.raises(UserInputError, match="reach must be given for an operator without a reach attribute"):
        pdd.iel(x, _wide, steps=2)


def test_the_operators_reach_sets_the_halo(monkeypatch):
    x = np.random.default_rng(0).standard_normal((1, 1, 40, 40))
    monkeypatch.setattr(_wide, "reach", 2, raising=False)
    y = pdd.iel(da.from_array(x, chunks=20), _wide, dt=0.01, steps=4).compute(scheduler="sync")
    ref = InverseEvolution(_wide, dt=0.01, steps=4)(torch.from_numpy(x)).numpy()
    assert np.allclose(y, ref, atol=1e-12, rtol=0)          # exact: the halo is 4 steps x 2 pixels
    short = pdd.iel(da.from_array(x, chunks=20), _wide, dt=0.01, steps=4, reach=1).compute(scheduler="sync")
    assert not np.allclose(short, ref, atol=1e-6, rtol=0)   # a halo too narrow for the stencil is not
    with pytest.raises(UserInputError, match="halo"):
        pdd.iel(da.from_array(x, chunks=20), _wide, steps=11)    # 22 pixels of halo: more than a chunk
