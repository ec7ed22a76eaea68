"""pdeflow.tvflownet.tiled: the network evaluated in overlapping tiles equals the untiled network
(float64, every architecture, random weights), through flow's wrappers too."""
import pytest
import torch

from pdeflow.errors import UserInputError
from pdeflow.tvflownet import LGD, Ensemble, SemiResNet, UNet, flow, load
from pdeflow.tvflownet.tiled import Tiled, receptive_radius, tiled_flow


def nets():
    torch.manual_seed(0)
    return {
        "semiresnet": SemiResNet().double(),
        "lgd": LGD(n_steps=4).double(),
        "unet": UNet().double(),
        "unet-refine-replicate": UNet(refine=4, pad_mode="replicate").double(),
        # the normalised-gradient input with its own eps (the shipped default's members have input_eps 0.1)
        "unet-input-eps": UNet(input_eps=0.1).double(),
        "unet-exact-initial": UNet(exact_initial=True).double(),
        "ensemble": Ensemble([UNet(scales=3).double(), LGD(n_steps=2).double()], weights=[0.4, 0.6],
                             phi_weights=[0.7, 0.3]),
    }


#: U-Net variants whose odd-size case (61 x 90, seconds each) runs in the slow tier: the plain U-Net keeps the
#: odd-size tiling in make test, and these variants their own padding and input there at 48 x 40.
SLOW_ODD = {"unet-refine-replicate", "unet-input-eps", "unet-exact-initial"}


@pytest.mark.parametrize("name,H,W", [pytest.param(n, h, w, marks=pytest.mark.slow) if n in SLOW_ODD and h == 61
                                      else (n, h, w) for h, w in [(61, 90), (48, 40)] for n in nets()])
def test_tiled_network_equals_untiled(name, H, W):
    net = nets()[name]
    u0 = torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(H), dtype=torch.float64)
    t = torch.tensor([0.05, 0.6], dtype=torch.float64)
    with torch.no_grad():
        u_ref, phi_ref = net(u0, t)
        for tile in (24,):
            u, phi = Tiled(net, tile=tile)(u0, t)
            assert float((u - u_ref).abs().max()) < 1e-10
            assert float((phi - phi_ref).abs().max()) < 1e-10


def test_tiles_do_cut_the_image_and_overlap_matters():
    """A naive tiling of the U-Net (its own forward on each tile) is not the untiled network: the padding and
    the upsampling positions depend on the image size; the tiled evaluation in global coordinates is."""
    net = UNet().double()
    u0 = torch.rand(1, 1, 70, 70, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        ref = net(u0, 0.3)[0]
        naive = torch.empty_like(u0)
        for r in (0, 35):
            for c in (0, 35):
                lo_r, lo_c = max(0, r - 30), max(0, c - 30)
                part = net(u0[..., lo_r:r + 65, lo_c:c + 65], 0.3)[0]
                naive[..., r:r + 35, c:c + 35] = part[..., r - lo_r:r - lo_r + 35, c - lo_c:c - lo_c + 35]
        assert float((naive - ref).abs().max()) > 1e-6
        assert float((Tiled(net, tile=32)(u0, 0.3)[0] - ref).abs().max()) < 1e-10


@pytest.mark.parametrize("symmetry", [None, "transpose"])
def test_tiled_flow_equals_flow(symmetry):
    net = nets()["ensemble"]
    u0 = 3 * torch.rand(1, 1, 50, 66, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    times = [0.0, 0.1, 0.4]
    a = tiled_flow(u0, times, net, tile=24, symmetry=symmetry, return_ut=True)
    b = flow(u0, times, net, symmetry=symmetry, return_ut=True)
    for x, y in zip(a, b):
        assert x.shape == y.shape and float((x - y).abs().max()) < 1e-10


@pytest.mark.slow   # the shipped ensemble on tiles; the tiled_flow_equals_flow cases keep tiling in make test
def test_tiled_flow_of_the_shipped_default_equals_flow():
    """The shipped default model (an ensemble whose members read the gradient with input_eps 0.1), as
    tiled_flow and flow load it, on tiles that cut the image."""
    u0 = torch.rand(1, 1, 70, 90, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    net = load().double()
    a = tiled_flow(u0, [0.02, 0.2], net, tile=32, return_ut=True)
    b = flow(u0, [0.02, 0.2], net, return_ut=True)
    for x, y in zip(a, b):
        assert float((x - y).abs().max()) < 1e-10


def test_bad_arguments():
    net = SemiResNet()
    assert receptive_radius(net) == 10
    with pytest.raises(UserInputError, match="overlap"):
        Tiled(net, tile=32, overlap=3)
    with pytest.raises(UserInputError, match="tile"):
        Tiled(net, tile=0)
    with pytest.raises(UserInputError, match="bare"):
        Tiled(torch.nn.Identity())
