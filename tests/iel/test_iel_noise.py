"""Label noise: the official grid blocks and the paper's random windows, seeded."""
import pytest
import torch

from pdeflow.iel import add_label_noise, block_noise, window_noise


@pytest.fixture
def labels():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(2, 60, 45, generator=g) < 0.3).long()


def test_block_noise_is_seeded_and_blockwise(labels):
    a = block_noise(labels, 2, size=3, keep=0.8, generator=5)
    b = block_noise(labels, 2, size=3, keep=0.8, generator=5)
    c = block_noise(labels, 2, size=3, keep=0.8, generator=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == labels.shape and a.dtype == labels.dtype
    # a touched block is one class; an untouched one is the original
    for bi in range(2):
        for i in range(0, 60, 3):
            for j in range(0, 45, 3):
                blk, orig = a[bi, i:i + 3, j:j + 3], labels[bi, i:i + 3, j:j + 3]
                assert torch.equal(blk, orig) or (blk == blk[0, 0]).all()


def test_block_noise_rate_matches_theory():
    lab = torch.zeros(1, 600, 600, dtype=torch.long)
    for keep, K in ((0.8, 2), (0.5, 3)):
        out = block_noise(lab, K, size=2, keep=keep, generator=1)
        changed = (out != lab).float().mean().item()
        expected = (1 - keep) * (1 - 1 / K)
        # 90,000 blocks: the standard error of the rate is below 0.002
        assert changed == pytest.approx(expected, abs=0.01)


def test_block_noise_extremes_and_ragged_border(labels):
    assert torch.equal(block_noise(labels, 2, size=4, keep=1.0, generator=0), labels)
    out = block_noise(labels[0], 3, size=7, keep=0.0, generator=0)       # 60 x 45 is not a multiple of 7
    assert out.shape == (60, 45)
    assert int(out.max()) <= 2
    assert (out[56:, 42:] == out[56, 42]).all()                      # the cut corner block is one class


def test_window_noise_area_and_seed(labels):
    lab = torch.zeros(1, 200, 200, dtype=torch.long)
    out = window_noise(lab, 2, size=3, area=0.1, generator=3)
    assert torch.equal(out, window_noise(lab, 2, size=3, area=0.1, generator=3))
    changed = (out != lab).float().mean().item()
    # 444 windows of 9 px cover at most 10% of the image; half of them draw the true class 0,
    # overlaps cost a little: the changed fraction is a bit below 5%
    assert 0.035 < changed <= 0.05
    assert torch.equal(window_noise(labels, 2, size=2, area=0.0, generator=0), labels)


def test_window_noise_paints_whole_windows():
    # one window, one class that differs from the labels: exactly an s x s square changes
    lab = torch.zeros(30, 30, dtype=torch.long)
    for seed in range(5):
        out = window_noise(lab, 50, size=4, area=16 / 900, generator=seed)
        ys, xs = torch.nonzero(out, as_tuple=True)
        if ys.numel():          # the single window drew class 0 with probability 1/50
            assert ys.numel() == 16
            assert int(ys.max() - ys.min()) == 3 and int(xs.max() - xs.min()) == 3
            assert (out[ys, xs] == out[ys[0], xs[0]]).all()


def test_add_label_noise_dispatch(labels):
    assert torch.equal(add_label_noise(labels, 2, "none"), labels)
    assert torch.equal(add_label_noise(labels, 2, "blocks", size=3, keep=0.7, generator=2),
                       block_noise(labels, 2, 3, 0.7, generator=2))
    with pytest.raises(ValueError, match="kind must be one of"):
        add_label_noise(labels, 2, "salt")


@pytest.mark.parametrize("call, match", [
    (lambda l: block_noise(l.float(), 2, generator=0), "integer label map"),
    (lambda l: block_noise(l[None], 2, generator=0), r"shape \(H, W\) or \(B, H, W\)"),
    (lambda l: block_noise(l, 1, generator=0), "num_classes must be an int >= 2"),
    (lambda l: block_noise(l + 2, 2, generator=0), "labels must lie in 0..1"),
    (lambda l: block_noise(l, 2, size=0, generator=0), "size must be an int >= 1"),
    (lambda l: block_noise(l, 2, keep=1.5, generator=0), "keep must be a probability"),
    (lambda l: block_noise(l, 2), "pass generator"),
    (lambda l: block_noise(l, 2, seed=0, generator=torch.Generator()), "not seed and generator"),
    (lambda l: window_noise(l, 2, area=-0.1, generator=0), "area must be a fraction"),
    (lambda l: window_noise(l, 2, size=100, generator=0), "do not fit"),
])
def test_bad_input(labels, call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(labels)
