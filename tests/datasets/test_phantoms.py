"""Generated test volumes: ball, ellipsoids, 3-D Shepp-Logan (geometry, levels, orientation, errors)."""
import math

import pytest
import torch

from pdeflow.datasets import ball, ellipsoids, shepp_logan_3d
from pdeflow.datasets.phantoms import _SL3D_GEOMETRY, _SL3D_MODIFIED, _SL3D_ORIGINAL
from pdeflow.errors import UserInputError


def test_ball_volume_centre_and_symmetry():
    b = ball(41, 12.0, dtype=torch.float64)
    assert b.shape == (41, 41, 41) and set(b.unique().tolist()) == {0.0, 1.0}
    assert b.sum().item() == pytest.approx(4 / 3 * math.pi * 12**3, rel=0.02)
    for dims in ((0,), (1,), (2,)):
        assert torch.equal(b, b.flip(dims))
    assert torch.equal(b, b.permute(1, 2, 0))
    # off-centre, other values
    c = ball((10, 12, 14), 2.0, center=(2, 3, 4), height=0.3, background=-1.0)
    assert c[2, 3, 4] == pytest.approx(0.3) and c[2, 3, 7] == -1.0 and c[2, 3, 6] == pytest.approx(0.3)


def test_ball_in_physical_units_on_anisotropic_voxels():
    h = (2.5, 0.7, 0.7)
    b = ball((24, 80, 80), 20.0, spacing=h, dtype=torch.float64)
    # the voxel count times the voxel volume is the ball's volume in mm^3 (to the voxelisation error)
    assert b.sum().item() * math.prod(h) == pytest.approx(4 / 3 * math.pi * 20.0**3, rel=0.02)
    # its extent along each axis is the diameter in mm, whatever the voxel size
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        extent = (b.amax(dim=others) > 0).sum().item() * h[axis]
        assert abs(extent - 40.0) <= h[axis] + 1e-9


def test_ellipsoids_volume_rotation_and_orientation():
    n = 48
    v = ellipsoids(n, [(1.0, 0, 0, 0, 0.8, 0.4, 0.6, 0)], dtype=torch.float64)
    # volume fraction of [-1, 1]^3
    assert v.mean().item() == pytest.approx(4 / 3 * math.pi * 0.8 * 0.4 * 0.6 / 8, rel=0.02)
    # c lies along z (slices, 2 * 0.6 * 24 voxels), b along y (rows), a along x (columns)
    assert [(v.amax(dim=tuple(a for a in range(3) if a != k)) > 0).sum().item() for k in range(3)] == [28, 20, 38]
    # phi = 90 degrees turns a onto y: the same as swapping a and b
    r = ellipsoids(n, [(1.0, 0, 0, 0, 0.8, 0.4, 0.6, 90)], dtype=torch.float64)
    s = ellipsoids(n, [(1.0, 0, 0, 0, 0.4, 0.8, 0.6, 0)], dtype=torch.float64)
    assert (r != s).float().mean().item() < 1e-3 and r.sum().item() == pytest.approx(s.sum().item(), rel=1e-2)
    # y is up (row 0 at the top), x to the right, z along the slice index
    up = ellipsoids(n, [(1.0, 0.5, 0.5, -0.5, 0.2, 0.2, 0.2, 0)])
    idx = up.nonzero().float().mean(0)
    assert idx[0] < n / 2 and idx[1] < n / 2 and idx[2] > n / 2
    # overlapping values add
    two = ellipsoids(8, [(1.0, 0, 0, 0, 0.9, 0.5, 0.5, 0), (0.5, 0, 0, 0, 0.3, 0.3, 0.3, 0)])
    assert sorted(two.unique().tolist()) == [0.0, 1.0, 1.5]


@pytest.mark.parametrize("modified", [True, False])
def test_shepp_logan_3d_levels_and_mean_against_the_table(modified):
    v = shepp_logan_3d(96, modified=modified, dtype=torch.float64)
    levels = _SL3D_MODIFIED if modified else _SL3D_ORIGINAL
    # the mean is sum value * (ellipsoid volume) / 8 (every ellipsoid lies inside the cube)
    analytic = sum(val * 4 / 3 * math.pi * a * b * c for val, (_, _, _, a, b, c, _) in zip(levels, _SL3D_GEOMETRY)) / 8
    assert v.mean().item() == pytest.approx(analytic, rel=0.01)
    values = set(round(x, 9) for x in v.unique().tolist())
    if modified:
        assert values == {0.0, 0.2, 0.3, 0.4, 0.6, 1.0}     # background, brain, ..., skull
        assert v.min().item() == 0.0
    else:
        assert {0.0, 1.0, 1.02, 2.0} <= values and v.max().item() == 2.0
    # the centre is brain (skull minus the brain ellipsoid), the outer shell skull
    c = v[48, 48, 48].item()
    assert c == pytest.approx(0.2 if modified else 1.02)
    assert v[48, 4, 48].item() == pytest.approx(1.0 if modified else 2.0)   # y = 0.906: skull at x = 0, z = 0


def test_shepp_logan_3d_shapes_and_dtype():
    v = shepp_logan_3d((8, 16, 12), dtype=torch.float64)
    assert v.shape == (8, 16, 12) and v.dtype == torch.float64
    assert shepp_logan_3d(16).dtype == torch.float32


@pytest.mark.parametrize("call, match", [
    (lambda: ball((4, 4), 1.0), r"ball: shape must be a positive int or a triple"),
    (lambda: ball(8, 0.0), r"ball: radius must be a positive number"),
    (lambda: ball(8, 2.0, spacing=(1.0, 0.0, 1.0)), r"ball: spacing must be three finite positive numbers"),
    (lambda: ball(8, 2.0, center=(1.0, 2.0)), r"ball: center must be three finite numbers"),
    (lambda: ellipsoids(8, [(1.0, 0, 0, 0, 0.5, 0.5, 0.5)]), r"ellipsoids: table must be a sequence of rows"),
    (lambda: ellipsoids(8, [(1.0, 0, 0, 0, 0.5, -0.5, 0.5, 0)]), r"semi-axes"),
    (lambda: shepp_logan_3d(0), r"shepp_logan_3d: shape must be"),
    (lambda: shepp_logan_3d(8, modified="yes"), r"modified must be True or False"),
])
def test_bad_arguments_are_refused_with_a_message(call, match):
    with pytest.raises(UserInputError, match=match):
        call()
