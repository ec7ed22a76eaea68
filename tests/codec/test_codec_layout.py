"""The codec returns the layout it was given: an image encoded channels last, (H, W, C), decodes to (H, W, C) without
``channel_axis`` (the file records the layout in a flag bit of its channels byte); files written before the flag
decode as they did, and channels-first files keep their bytes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pdeflow.codec import CodecError, decode, encode, load, save
from pdeflow.codec.format import CHANNELS_LAST, read_header, with_layout
from pdeflow.layout import ChannelsWarning

# Files written by the codec before the layout flag (encode of a 16 x 16 grey ramp at size=48, split=1.0: version 1;
# of a 3-channel image at size=120, split=0.5: version 2 with both layers), with the shape and the sum of their
# decoding then.
OLD_FILES = {
    "grey_v1": ("5044466301befa741210001000010800000004010c00000016004904721d957e5e518aa13980f5d978c2d72402d9",
                (1, 16, 16), 102.646149),
    "colour_v2": ("5044466302cefb0a48100010000308010000040105000000060076177c200700ccfad8051a00f8ea9b170303000000d8413"
                  "6237e512bc3656f17b504600a8ecddafdb960f17e7d98ae2cda6b2c6d6f61731bb1fa7e88701cf0f202268c41871732169c"
                  "369a1521a88cf4fe938c428a694044affd008d8a", (3, 16, 16), 371.425097),
}


def _old_images():
    """The images the old files were written from."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 16, dtype=torch.float64), torch.linspace(0, 1, 16, dtype=torch.float64),
                          indexing="ij")
    g = (0.2 + 0.6 * x * y + 0.1 * (x > 0.5)).clamp(0, 1)
    return {"grey_v1": (g, dict(size=48, split=1.0)),
            "colour_v2": (torch.stack([g, 1 - g, g * 0.5 + 0.25]), dict(size=120, split=0.5))}


def _rgb(h=24, w=40, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.slow   # colour encodings; tests/core/test_layouts.py keeps the round trip in make test
def test_channels_last_round_trip_without_channel_axis():
    rgb = _rgb()
    with pytest.warns(ChannelsWarning, match=r"encode: image of shape \(24, 40, 3\)"):
        data = encode(rgb, bpp=2.0)
    back = decode(data)
    assert back.shape == (24, 40, 3)
    first = encode(np.ascontiguousarray(np.moveaxis(rgb, -1, 0)), bpp=2.0)
    # the same file but for the flag bit (and so the checksum): the same image, the layout it was given
    assert len(first) == len(data) and data[13] == 3 | CHANNELS_LAST and first[13] == 3
    assert data[14:] == first[14:] and with_layout(data, False) == first
    torch.testing.assert_close(back, decode(first).movedim(0, -1), rtol=0, atol=0)
    # channel_axis still chooses
    assert decode(data, channel_axis=0).shape == (3, 24, 40) and decode(first, channel_axis=-1).shape == (24, 40, 3)
    # a tensor said to be channels last, a grey (H, W, 1), and full_output's images in that layout
    t = torch.from_numpy(rgb).double() / 255
    r = encode(t, bpp=2.0, channel_axis=-1, full_output=True)
    assert r.data == data and r.reconstruction.shape == r.values.shape == (24, 40, 3)
    grey = t[..., :1]
    assert decode(encode(grey, bpp=2.0, channel_axis=-1)).shape == (24, 40, 1)
    # channels first and (H, W) stay as they were: (C, H, W), a grey image as (1, H, W)
    assert decode(encode(t.movedim(-1, 0), bpp=2.0)).shape == (3, 24, 40)
    assert decode(encode(t[..., 0], bpp=2.0)).shape == (1, 24, 40)
    with pytest.raises(CodecError, match="decode: channel_axis must be None"):
        decode(data, channel_axis=1)


def test_a_small_pil_array_is_read_and_returned_channels_last():
    # (4, 5, 3): too few rows for the layout rule's notice, read channels last as a PIL image's array
    tiny = _rgb(4, 5, seed=1)
    data = encode(tiny, size=200)
    assert read_header(data)[0].channels_last and decode(data).shape == (4, 5, 3)


def test_save_and_load_keep_the_layout(tmp_path):
    t = torch.from_numpy(_rgb(20, 30, seed=2)).float() / 255
    path = save(tmp_path / "a.pdc", t, bpp=2.0, channel_axis=-1)
    assert load(path).shape == (20, 30, 3) and load(path, channel_axis=0).shape == (3, 20, 30)


@pytest.mark.parametrize("name", list(OLD_FILES))
def test_files_written_before_the_layout_flag_decode_as_before(name):
    hexdata, shape, total = OLD_FILES[name]
    data = bytes.fromhex(hexdata)
    u = decode(data)
    assert tuple(u.shape) == shape and not read_header(data)[0].channels_last
    assert abs(float(u.double().sum()) - total) < 1e-5
    # and a channels-first image still gets the very same bytes
    image, options = _old_images()[name]
    assert encode(image, **options) == data
