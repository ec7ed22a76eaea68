"""The shipped inpainting models (mask networks, residual inpainter, joint pairs): loadable offline, provenance.

The cases come from the documented registry (:data:`pdeflow.models.SHIPPED`), not from what is on disk:
a documented model that stops shipping fails here (and in ``test_models.py``) instead of losing its tests.
"""
import json

import pytest
import torch

from pdeflow import models
from pdeflow.inpaint import analytic_mask, inpaint_diffusion, inpaint_learned, learned_mask
from pdeflow.inpaint.learned.masknet import load_masknet
from pdeflow.inpaint.learned.residual import load_joint

WEIGHTS = models.WEIGHTS_DIRS["inpaint"]
DOCUMENTED = [n for n, s in models.SHIPPED.items() if s.pillar == "inpaint"]
MASKNETS = {s.density: n for n, s in models.SHIPPED.items() if s.group == "masknet"}
JOINTS = sorted(s.density for s in models.SHIPPED.values() if s.group == "joint-mask")


def _crop(size=32):
    from pdeflow.evaluate.inpaint import test_images
    return test_images(1, size, seed=5)[0][0]       # (1, size, size)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_shipped_model_is_small_and_records_its_training(name):
    assert (WEIGHTS / f"{name}.safetensors").stat().st_size < 2 * 1024 ** 2
    prov = json.loads((WEIGHTS / f"{name}.json").read_text())["provenance"]
    for key in ("command", "steps", "cpu_time_s", "val", "shipped"):
        assert key in prov, (name, key)


@pytest.mark.parametrize("density", sorted(MASKNETS))
def test_shipped_mask_networks_give_exact_counts_and_refuse_other_densities(density):
    f = _crop()
    m = learned_mask(f[None], density)
    assert m.shape == (1, 1, 32, 32) and set(m.unique().tolist()) <= {0.0, 1.0}
    assert int(m.sum()) == round(density * 32 * 32)
    net = load_masknet(density)
    assert net.density == density and net.channels == 1
    other = 0.15
    with pytest.raises(ValueError, match="density"):
        learned_mask(f[None], other, model=WEIGHTS / f"{MASKNETS[density]}.json")
    with pytest.raises(ValueError, match="channel"):
        learned_mask(f.expand(3, 32, 32)[None], density)


def test_shipped_feedback_network_moves_some_points_of_its_first_mask():
    import copy
    f = _crop(48)[None]
    net = load_masknet("masknet-20-feedback", density=0.2)
    assert net.feedback and float(net.gamma.detach()) > 0
    m = learned_mask(f, 0.2, model=net, strength=0.3, padding="reflect")
    assert int(m.sum()) == round(0.2 * 48 * 48)
    blind = copy.deepcopy(net)                     # the error not read: the first pass's mask
    with torch.no_grad():
        blind.gamma.zero_()
        blind.net.down[0][0].weight[:, -1].zero_()
    first = learned_mask(f, 0.2, model=blind, strength=0.3, padding="reflect")
    shared = int((m * first).sum())
    assert round(0.2 * 48 * 48) > shared > 0.5 * round(0.2 * 48 * 48)


def test_shipped_residual_inpainter_keeps_known_pixels_and_stays_near_diffusion():
    f = _crop().double()
    m = analytic_mask(f, 0.1)
    u = inpaint_learned(f, m)
    assert torch.equal(u[m.expand_as(u) > 0], f[m.expand_as(f) > 0])
    ud = inpaint_diffusion(f, m)
    # a correction of diffusion, not a different image (same masks: MAE within a few grey levels)
    assert float((u - ud).abs().mean()) < 5 / 255


def test_shipped_random_mask_inpainter_fills_random_masks_better_than_diffusion():
    from pdeflow.evaluate.inpaint import test_images
    from pdeflow.inpaint import random_mask
    f = test_images(4, 64, seed=3)[0].double()
    for d in (0.05, 0.2):
        m = random_mask(f.shape, d, generator=7, dtype=torch.float64)
        u = inpaint_learned(f, m, model="residual-inpainter-random")
        assert torch.equal(u[m > 0], f[m > 0])
        assert float((u - f).abs().mean()) < float((inpaint_diffusion(f, m) - f).abs().mean())


def test_shipped_random_mask_inpainter_float32_is_float64_within_1e5():
    # float32 input: diffusion's float32 CG and the float32 network, against the float64 call, over the densities
    # it was trained on (5-20 %) and beyond
    from pdeflow.evaluate.inpaint import test_images
    from pdeflow.inpaint import random_mask
    f = test_images(2, 48, seed=4)[0].double()
    for d in (0.02, 0.05, 0.2, 0.4):
        m = random_mask(f.shape, d, generator=11, dtype=torch.float64)
        u64 = inpaint_learned(f, m, model="residual-inpainter-random")
        u32 = inpaint_learned(f.float(), m.float(), model="residual-inpainter-random")
        assert u32.dtype == torch.float32
        assert float((u32.double() - u64).abs().max()) <= 1e-5 * float(f.max() - f.min()), d


@pytest.mark.parametrize("density", JOINTS)
def test_shipped_joint_pairs_load_and_inpaint(density):
    f = _crop().double()
    mask_net, inpainter = load_joint(None, density=density, channels=1)
    assert mask_net.density == density and inpainter.normalize
    m = learned_mask(f[None], density, model=mask_net)
    assert int(m.sum()) == round(density * 32 * 32)
    u = inpaint_learned(f[None], m, model=inpainter)
    assert torch.equal(u[m.expand_as(u) > 0], f[None][m.expand_as(u) > 0])
    assert float((u - inpaint_diffusion(f[None], m)).abs().mean()) < 5 / 255
    with pytest.raises(ValueError, match="channels"):
        load_joint(None, density=density, channels=3)
    with pytest.raises(FileNotFoundError, match="density: no jointly trained pair is shipped for 0.15"):
        load_joint(None, density=0.15)
