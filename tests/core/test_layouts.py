"""The one layout rule (pdeflow.layout.read_layout) across the public functions: a channels-last image
(H, W, 3|4) is read as such with a ChannelsWarning and returned in its layout; a 3-D array of many leading
entries is read as channels with a notice to pass ndim=3; an explicit channel_axis (or ndim) silences both;
(C, H, W) and (B, C, H, W) inputs are read as before."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch

from pdeflow import codec, inpaint, ops
from pdeflow.errors import UserInputError
from pdeflow.ops import ChannelsWarning
from pdeflow.tv import rof, spectral_tv, tv_flow

TIGHT = dict(tol=1e-10, max_iter=20000)


def _rgb(H=16, W=12, seed=0):
    """A (3, H, W) float64 image and its channels-last copy (H, W, 3)."""
    x = torch.rand(3, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x, x.permute(1, 2, 0).contiguous()


def _mask(H=16, W=12, seed=1):
    m = (torch.rand(H, W, generator=torch.Generator().manual_seed(seed)) < 0.25).double()
    m[0, 0] = m[-1, -1] = 1
    return m


def _silent(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with every ChannelsWarning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChannelsWarning)
        return fn(*args, **kwargs)


def _last(t: torch.Tensor) -> torch.Tensor:
    return t.movedim(-3, -1)


# ------------------------------------------------------------------ the astronaut, channels last

def test_channels_last_astronaut_gives_the_channels_first_answer_with_a_notice():
    data = pytest.importorskip("skimage.data")
    img = data.astronaut()[::8, ::8].astype(np.float64) / 255          # (64, 64, 3), as scikit-image gives it
    first = rof(torch.from_numpy(np.ascontiguousarray(np.moveaxis(img, -1, 0))), 0.1, **TIGHT)
    with pytest.warns(ChannelsWarning, match=r"rof: f of shape \(64, 64, 3\) is taken as a 64x64 image with 3 "
                                             r"channels last \(H, W, C\).*pass channel_axis=-1 to say so"):
        u = rof(img, 0.1, **TIGHT)
    assert u.shape == (64, 64, 3)
    torch.testing.assert_close(u, _last(first), rtol=0, atol=1e-12)
    # the reading the rule replaces: 64 channels of 64 x 3 pixels, a different answer
    sliced = _silent(rof, img, 0.1, channel_axis=0, **TIGHT)
    assert sliced.shape == (64, 64, 3) and float((sliced - u).abs().max()) > 0.05


def test_explicit_channel_axis_silences_and_numpy_follows_the_tensor_rule():
    x, hwc = _rgb()
    by_tensor = _silent(rof, hwc, 0.1, channel_axis=-1, **TIGHT)
    by_array = _silent(rof, hwc.numpy(), 0.1, channel_axis=-1, **TIGHT)
    torch.testing.assert_close(by_tensor, _last(rof(x, 0.1, **TIGHT)), rtol=0, atol=1e-12)
    torch.testing.assert_close(by_array, by_tensor, rtol=0, atol=0)
    # channel_axis=0: (C, H, W) as before, silently; the same as the (B, C, H, W) call
    as_channels = _silent(rof, hwc, 0.1, channel_axis=0, **TIGHT)
    torch.testing.assert_close(as_channels, rof(hwc[None], 0.1, **TIGHT)[0], rtol=0, atol=0)
    # a batch of channels-last images, said so
    batch = torch.stack([hwc, 0.5 * hwc])
    got = _silent(rof, batch, 0.1, channel_axis=-1, **TIGHT)
    first = rof(batch.movedim(-1, 1).contiguous(), 0.1, **TIGHT)
    torch.testing.assert_close(got, first.movedim(1, -1), rtol=0, atol=1e-12)


@pytest.mark.slow   # a float64 gradcheck through the layout; the codec round trip and value checks stay in make test
def test_gradient_flows_through_the_channels_last_layout():
    x, hwc = _rgb(8, 7)
    a = hwc.clone().requires_grad_()
    b = x.clone().requires_grad_()
    (_silent(rof, a, 0.1, channel_axis=-1) ** 2).sum().backward()
    (rof(b, 0.1) ** 2).sum().backward()
    torch.testing.assert_close(a.grad, _last(b.grad), rtol=0, atol=1e-10)


# ------------------------------------------------------------------ the flows return the layout they got

def test_tv_flow_and_spectral_tv_return_the_layout_they_were_given():
    x, hwc = _rgb(12, 10)
    kw = dict(dt=0.02, **TIGHT)
    u, ut, p = _silent(tv_flow, hwc, [0.02, 0.06], return_ut=True, return_dual=True, channel_axis=-1, **kw)
    U, UT, P = tv_flow(x, [0.02, 0.06], return_ut=True, return_dual=True, **kw)
    assert u.shape == ut.shape == (2, 12, 10, 3) and p.shape == (2, 2, 12, 10, 3)    # the channels go last
    torch.testing.assert_close(u, U.movedim(1, -1), rtol=0, atol=1e-12)
    torch.testing.assert_close(ut, UT.movedim(1, -1), rtol=0, atol=1e-10)
    torch.testing.assert_close(p, P.movedim(1, -1), rtol=0, atol=1e-10)
    with pytest.warns(ChannelsWarning, match="spectral_tv: u0 of shape"):
        s = spectral_tv(hwc, n_steps=3, **kw)
    S = spectral_tv(x, n_steps=3, **kw)
    assert s.phi.shape == (3, 12, 10, 3) and s.residual.shape == (12, 10, 3)
    torch.testing.assert_close(s.phi, S.phi.movedim(1, -1), rtol=0, atol=1e-9)
    torch.testing.assert_close(s.reconstruct(), hwc, rtol=0, atol=1e-12)
    r = _silent(rof, hwc, 0.1, full_output=True, channel_axis=-1, **TIGHT)
    assert r.u.shape == (12, 10, 3) and r.p.shape == (1, 2, 12, 10, 3)


# ------------------------------------------------------------------ inpainting

_INPAINT = {
    "inpaint_diffusion": lambda f, m, **k: inpaint.inpaint_diffusion(f, m, tol=1e-10, **k),
    "inpaint_biharmonic": lambda f, m, **k: inpaint.inpaint_biharmonic(f, m, tol=1e-10, **k),
    "inpaint_eed": lambda f, m, **k: inpaint.inpaint_eed(f, m, **k),
    "inpaint_tv": lambda f, m, **k: inpaint.inpaint_tv(f, m, **k),
    "inpaint_shepard": lambda f, m, **k: inpaint.inpaint_shepard(f, m, **k),
    "inpaint": lambda f, m, **k: inpaint.inpaint(f, m, method="diffusion", tol=1e-10, **k),
    "optimise_tonal": lambda f, m, **k: inpaint.optimise_tonal(f, m, max_iter=50, **k),
}


@pytest.mark.parametrize("name", sorted(_INPAINT))
def test_inpainting_reads_channels_last_and_returns_it(name):
    call = _INPAINT[name]
    x, hwc = _rgb()
    m = _mask()
    first = call(x, m)
    with pytest.warns(ChannelsWarning, match=rf"{name}: f of shape \(16, 12, 3\) is taken as a 16x12 image"):
        got = call(hwc, m)
    assert got.shape == (16, 12, 3)
    torch.testing.assert_close(got, _last(first), rtol=0, atol=1e-12)
    # a mask in the image's layout (H, W, 1) is read in it too; channel_axis silences
    torch.testing.assert_close(_silent(call, hwc, m[..., None], channel_axis=-1), got, rtol=0, atol=1e-12)


_MASKS = {
    "analytic_mask": lambda f, **k: inpaint.analytic_mask(f, 0.2, **k),
    "densify_mask": lambda f, **k: inpaint.densify_mask(f, 0.2, **k),
    "ps_mask": lambda f, **k: inpaint.ps_mask(f, 0.3, p=0.3, q=0.3, generator=0, **k),
    "make_mask": lambda f, **k: inpaint.make_mask(f, 0.2, **k),
}


@pytest.mark.parametrize("name", sorted(_MASKS))
def test_masks_of_a_channels_last_image_are_channels_last(name):
    call = _MASKS[name]
    x, hwc = _rgb()
    first = call(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = call(hwc)
    notices = [w for w in caught if issubclass(w.category, ChannelsWarning)]
    assert len(notices) == 1 and str(notices[0].message).startswith(f"{name}: f of shape (16, 12, 3)"), \
        [str(w.message) for w in notices]       # one notice, from the function called (none from inside it)
    assert got.shape == (16, 12, 1)
    torch.testing.assert_close(got, _last(first), rtol=0, atol=0)


def test_masked_array_keeps_its_mask_channels_last():
    x, hwc = _rgb()
    m = _mask()
    arr = np.ma.masked_array(hwc.numpy(), mask=np.broadcast_to((m.numpy() == 0)[..., None], hwc.shape))
    got = _silent(inpaint.inpaint_diffusion, arr, channel_axis=-1, tol=1e-10)
    torch.testing.assert_close(got, _last(inpaint.inpaint_diffusion(x, m, tol=1e-10)), rtol=0, atol=1e-12)


# ------------------------------------------------------------------ a volume without ndim

@pytest.mark.parametrize("name", ["rof", "tv_flow", "inpaint_diffusion", "inpaint_biharmonic"])
def test_a_volume_without_ndim_is_read_as_channels_with_one_wording(name):
    vol = torch.rand(6, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    m = torch.zeros(6, 10, 10)
    m[:, ::3, ::3] = 1
    call = {"rof": lambda v, **k: rof(v, 0.1, **k),
            "tv_flow": lambda v, **k: tv_flow(v, [0.02], dt=0.02, **k),
            "inpaint_diffusion": lambda v, **k: inpaint.inpaint_diffusion(v, m, **k),
            "inpaint_biharmonic": lambda v, **k: inpaint.inpaint_biharmonic(v, m, **k)}[name]
    arg = "u0" if name == "tv_flow" else "f"
    with pytest.warns(ChannelsWarning) as caught:
        as_channels = call(vol)
    assert str(caught[0].message) == ops.layout_message("channels", name, arg, (6, 10, 10))
    assert "pass ndim=3 for a volume (D, H, W), or channel_axis=0 to say so" in str(caught[0].message)
    torch.testing.assert_close(_silent(call, vol, ndim=2), as_channels, rtol=0, atol=0)    # said: channels
    torch.testing.assert_close(_silent(call, vol, channel_axis=0), as_channels, rtol=0, atol=0)
    assert _silent(call, vol, ndim=3).shape[-3:] == (6, 10, 10)                           # said: a volume


def test_a_2d_only_function_says_it_takes_2d_images_only():
    f = torch.rand(6, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.warns(ChannelsWarning, match=re.escape("is taken as 6 channels of a 2-D image (C, H, W) "
                                                       "(inpaint_shepard takes 2-D images only); pass "
                                                       "channel_axis=0 to say so")):
        inpaint.inpaint_shepard(f, _mask(10, 10))


# ------------------------------------------------------------------ the codec

def test_codec_round_trip_keeps_channels_last():
    rgb = (np.random.default_rng(0).random((12, 20, 3)) * 255).astype(np.uint8)       # np.asarray(PIL.Image)
    with pytest.warns(ChannelsWarning, match=r"encode: image of shape \(12, 20, 3\) is taken as a 12x20 image"):
        data = codec.encode(rgb, bpp=2.0)
    back = codec.decode(data)                   # the file records the layout
    assert back.shape == (12, 20, 3)
    torch.testing.assert_close(back, _last(codec.decode(data, channel_axis=0)), rtol=0, atol=0)
    # channel_axis=-1 says the layout (no warning) and gives the same file, from floats as from uint8
    r = _silent(codec.encode, torch.from_numpy(rgb).double() / 255, bpp=2.0, channel_axis=-1, full_output=True)
    assert r.data == data and r.reconstruction.shape == (12, 20, 3)
    torch.testing.assert_close(r.reconstruction, back, rtol=0, atol=0)
    with pytest.raises(UserInputError, match=r"alpha channel \(H, W, 4\).*image\[\.\.\., :3\]"):
        codec.encode(np.zeros((24, 40, 4), np.uint8), bpp=2.0, channel_axis=-1)
    with pytest.raises(UserInputError, match="channel_axis"):
        codec.decode(data, channel_axis=1)


# ------------------------------------------------------------------ what stays as it was

@pytest.mark.parametrize("shape", [(3, 16, 12), (4, 16, 12), (1, 3, 16, 12), (2, 16, 12, 3), (16, 12),
                                   (4, 16, 3), (3, 16, 3)])
def test_channels_first_and_batched_inputs_are_read_as_before(shape):
    f = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u, layout = _silent(ops.read_layout, f, "f")
    assert u is f and not layout.channels_last
    assert _silent(rof, f, 0.1, **TIGHT).shape == shape


@pytest.mark.parametrize("bad", [1, -2, 3, 1.0, True, "last"])
def test_a_channel_axis_that_names_no_channel_axis_is_refused(bad):
    _, hwc = _rgb()
    with pytest.raises(UserInputError, match="channel_axis"):
        rof(hwc, 0.1, channel_axis=bad)
    with pytest.raises(UserInputError, match="channel_axis"):
        rof(hwc[..., 0], 0.1, channel_axis=-1)          # (H, W): no channel axis to name


def test_the_rule_is_documented_on_every_function_that_follows_it():
    for fn in (rof, tv_flow, spectral_tv, codec.encode, *(getattr(inpaint, n) for n in (*_INPAINT, *_MASKS))):
        assert "channel_axis : int, optional" in fn.__doc__, fn.__name__
