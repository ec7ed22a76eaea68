"""The in-place grid kernels of the TV solvers (pdeflow.tv._grid.Grid.*_into) against pdeflow.ops.

The solvers' inner loop works on flat views with wrap-around terms that read the zero unused entries of a
field; these must give exactly the operators of pdeflow.ops on every grid shape, including axes of size
1 and 2 and anisotropic spacing, and batches of several channels.
"""
import pytest
import torch

from pdeflow import ops
from pdeflow.tv._grid import Grid

CASES = [((1.0, 1.0, 1.0), (2, 3, 5, 4, 6)), ((2.5, 0.7, 0.7), (1, 2, 3, 7, 5)), ((1.0, 1.0, 1.0), (1, 1, 1, 4, 5)),
         ((1.0, 2.0, 1.0), (2, 1, 4, 1, 3)), ((0.5, 2.0), (2, 2, 6, 7)), ((1.0, 1.0), (1, 1, 2, 9))]


@pytest.mark.parametrize("h, shape", CASES)
def test_grad_div_project_into_are_the_ops(h, shape):
    g = Grid(len(h), h)
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(shape, dtype=torch.float64, generator=gen)
    base = torch.randn(shape, dtype=torch.float64, generator=gen)
    p = torch.randn(*shape[:2], len(h), *shape[2:], dtype=torch.float64, generator=gen)
    g.zero_unused(p)
    ref_grad = ops.grad(u, ndim=len(h), spacing=h)
    out = torch.full_like(p, float("nan"))
    assert torch.allclose(g.grad_into(u, out), ref_grad, rtol=0, atol=1e-13)
    ref_div = ops.div(p, ndim=len(h), spacing=h)
    v = torch.full_like(u, float("nan"))
    assert torch.allclose(g.div_into(p, v), ref_div, rtol=0, atol=1e-13)
    assert torch.allclose(g.div_into(p, v, scale=0.3, base=base), base + 0.3 * ref_div, rtol=0, atol=1e-13)
    # the unused entries really are those div never reads: changing them changes nothing
    q = p.clone()
    q.normal_(generator=gen)
    assert torch.equal(ops.div(g.zero_unused(q.clone()), ndim=len(h), spacing=h),
                       ops.div(q, ndim=len(h), spacing=h))
    for channelwise in (False, True):
        z = 3 * p
        assert torch.allclose(g.project_(z.clone(), g.norm_buffer(u, channelwise), channelwise),
                              g.project(z, channelwise), rtol=1e-15, atol=1e-15)
