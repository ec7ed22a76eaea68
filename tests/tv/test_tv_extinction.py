"""The extinction test of rof (pdeflow.tv._extinction): its cheap first-axis bound against the whole field."""
import pytest
import torch

from pdeflow.tv._extinction import extinct, extinction_flux, may_be_extinct
from pdeflow.tv._grid import PLAIN, Grid


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_first_axis_test_never_rules_out_an_extinct_image(dtype):
    """may_be_extinct is a necessary condition of extinct(extinction_flux): over lam from far below to far above
    each image's extinction, 2-D and 3-D, coupled and channelwise, it is False only where the whole field fails,
    and it does rule out small lam (what saves the field's cost)."""
    gen = torch.Generator().manual_seed(3)
    for grid, shape in ((PLAIN, (4, 2, 12, 9)), (Grid(3, (2.0, 1.0, 0.5)), (4, 2, 5, 6, 7))):
        f = torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)
        for lam in 10.0 ** torch.arange(-3.0, 4.0, 0.25):
            lam_t = torch.full((4,) + (1,) * (len(shape) - 1), float(lam), dtype=dtype)
            for channelwise in (False, True):
                maybe = may_be_extinct(f, lam_t, channelwise, grid)
                proved = extinct(extinction_flux(f, lam_t, grid)[1], channelwise)
                assert bool((proved <= maybe).all()), (grid.ndim, float(lam), channelwise)
                if lam <= 1e-2:
                    assert not bool(maybe.any())
