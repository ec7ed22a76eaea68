"""The rate-distortion evaluation of the codec (pdeflow.evaluate.codec): the budget search, the baselines'
registry, BD-rate, the losses recorded where a codec cannot meet a budget, the report."""
from __future__ import annotations

import io
import json
import math
import sys

import pytest
import torch
from PIL import Image

from pdeflow.errors import UserInputError
from pdeflow.evaluate import codec as ev


def _jpeg_size(image: torch.Tensor, quality: int) -> int:
    buf = io.BytesIO()
    Image.fromarray((image[0] * 255).round().byte().numpy()).save(buf, "JPEG", quality=quality, optimize=True)
    return len(buf.getvalue())


def test_the_jpeg_search_finds_the_largest_file_within_each_budget():
    u = ev.smooth_set(1, size=64, seed=3)["smooth-0"]
    budgets = [300, 700, 1500, 100]
    fitted = ev.CODECS["jpeg"].fit(u, budgets)
    assert fitted[3][0] is None and "over the budget" in fitted[3][2]     # JPEG's headers alone are more
    for budget, (data, quality, _) in zip(budgets[:3], fitted[:3]):
        assert data is not None and len(data) <= budget
        assert len(data) == _jpeg_size(u, quality)                         # the setting reported is the one used
        assert quality == 100 or _jpeg_size(u, quality + 1) > budget        # and the next one is over the budget


def test_fit_budget_keeps_the_largest_file_tried_when_sizes_do_not_grow_monotonically():
    # bisection for 36 bytes tries settings 0, 8, 4 (34 bytes: fits), 6 (over), 5 (12 bytes: fits) and ends on 5
    sizes = [10, 20, 33, 40, 34, 12, 60, 70, 80]
    tried = []
    got = ev.fit_budget(lambda i: tried.append(i) or bytes(sizes[i]), range(9), [36, 5])
    assert tried == [0, 8, 4, 6, 5]
    assert got == [(bytes(34), 4), (None, None)]          # the largest file tried within 36 bytes
    with pytest.raises(UserInputError, match="settings is empty"):
        ev.fit_budget(lambda i: b"", [], [1])


@pytest.mark.parametrize("name", [c for c in ev.CODECS if not c.startswith("pdeflow")])
def test_every_available_baseline_meets_its_budget_and_decodes(name):
    codec = ev.CODECS[name]
    if codec.check() is not None:
        pytest.skip(codec.check())
    grey = ev.smooth_set(3, size=64, seed=1)
    for u in (grey["smooth-0"], torch.cat(list(grey.values()))):       # grey and colour
        (data, setting, note), = codec.fit(u, [ev.budget_bytes(4.0, *u.shape[-2:])])
        assert data is not None and len(data) <= ev.budget_bytes(4.0, *u.shape[-2:]), note
        dec = codec.decode(data, u.shape[0])
        assert dec.shape == u.shape and dec.dtype == torch.float32
        assert float((dec - u).abs().mean()) < 0.05     # a flat image is about 0.2 away


def test_a_missing_optional_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)          # import imagecodecs raises ImportError
    for name in ("avif", "jpegxl"):
        with pytest.raises(UserInputError, match=r"imagecodecs.*pip install") as exc:
            ev.get_codec(name)
        assert len(str(exc.value).splitlines()) == 1 and name in str(exc.value)
    assert ev.get_codec("jpeg").name == "jpeg"                       # Pillow's are always there
    with pytest.raises(UserInputError, match="unknown codec 'png'"):
        ev.get_codec("png")


def test_bd_rate_of_shifted_curves_is_exact():
    rates = [0.05, 0.1, 0.2, 0.4]
    psnrs = [28.0, 30.5, 33.0, 36.0]
    assert ev.bd_rate(rates, psnrs, rates, psnrs) == pytest.approx(0.0, abs=1e-12)
    assert ev.bd_rate(rates, psnrs, [r * 0.7 for r in rates], psnrs) == pytest.approx(-0.3)
    # a PSNR offset of a curve whose log-rate is linear in PSNR is a constant rate factor
    lin = [10 * math.log(r) for r in rates]
    b = ev.bd_rate(rates, lin, rates, [p + 2 for p in lin])
    assert b == pytest.approx(math.exp(-0.2) - 1)
    # B against A and A against B are reciprocal
    up = [p + 1 for p in psnrs]
    ab, ba = ev.bd_rate(rates, psnrs, rates, up), ev.bd_rate(rates, up, rates, psnrs)
    assert (1 + ab) * (1 + ba) == pytest.approx(1.0, rel=1e-9)
    assert ev.bd_rate(rates, psnrs, [1.0], [40.0]) is None                       # one point
    assert ev.bd_rate(rates, psnrs, rates, [p + 20 for p in psnrs]) is None      # no common PSNR


def test_bd_rate_drops_points_whose_psnr_does_not_grow():
    base = ev.bd_rate([0.1, 0.2, 0.4], [30, 33, 36], [0.1, 0.2, 0.4], [30, 33, 36])
    assert ev.bd_rate([0.1, 0.2, 0.4], [30, 33, 36], [0.1, 0.15, 0.2, 0.4], [30, 29, 33, 36]) == pytest.approx(base)


def test_square_reduces_and_crops_to_8_bit_levels():
    u = torch.rand(3, 90, 130, generator=torch.Generator().manual_seed(34))   # a seed with a value at .5 / 255
    s = ev.square(u, 40)
    assert s.shape == (3, 40, 40) and torch.equal(s, torch.round(s * 255) / 255)
    assert ev.square(u, 100) is None
    # levels rounded in float64, as square does (in float32 a value such as 177.5 / 255 may round the other way)
    crop = u[:, :40, 5:45].double().clamp(0, 1)
    assert torch.equal(ev.square(u[:, :40, :50], 40), (torch.round(crop * 255) / 255).float())


def _standin(name="pdeflow"):
    """A stand-in under pdeflow's name for the comparisons: JPEG 2000's fit and decoder."""
    j2k = ev.CODECS["jpeg2000"]
    return ev.Codec(name, "stand-in", j2k.fit, j2k.decode, lambda: "JPEG 2000 under another name")


def test_evaluate_records_the_budgets_a_codec_does_not_meet_and_reports_them():
    sets = {"tiny": ev.smooth_set(2, size=64, seed=5)}
    res = ev.evaluate(sets, rates=[0.4, 2.0], codecs=[_standin(), "jpeg", "webp"])
    assert len(res["rows"]) == 2 * 2 * 3
    lost = [r for r in res["rows"] if not r["fits"]]
    lost = [r for r in lost if r["codec"] == "jpeg"]
    assert lost and all(r["rate"] == 0.4 and r["note"] for r in lost)  # 204 bytes: no JPEG
    for r in res["rows"]:
        if r["fits"]:
            assert r["bytes"] <= r["budget"] == ev.budget_bytes(r["rate"], 64, 64)
            assert r["bpp"] == pytest.approx(8 * r["bytes"] / 64 ** 2) and 0 < r["ssim"] <= 1
    summ = ev.summary(res)["tiny"]
    at = {(r["codec"], r["image"], r["rate"]): r for r in res["rows"]}
    for rate in (0.4, 2.0):
        for other in ("jpeg", "webp"):      # an anchor and another baseline
            pair = summ["pairs"][other][str(rate)]
            p, q = ({i: at[c, i, rate] for i in sets["tiny"]} for c in ("pdeflow", other))
            wins = sum(p[i]["fits"] and (not q[i]["fits"] or p[i]["psnr"] > q[i]["psnr"]) for i in sets["tiny"])
            assert pair["wins"] == wins and pair["images"] == 2
    # BD-rates: every codec against each anchor (JPEG), pdeflow also against the other baselines (WebP)
    assert set(summ["bd_rate"]["jpeg"]) == {"pdeflow", "webp"} and set(summ["bd_rate"]["webp"]) == {"pdeflow"}
    assert summ["curves"]["jpeg"]["0.4"]["n"] == 2 - len(lost)
    rep = ev.report(res)
    assert rep.names == ["report.md", "results.json", "rd.png"]
    text = rep.text("report.md")
    assert "JPEG at 0.4 bpp" in text and "do not fit" in text and "pdeflow against each baseline" in text
    assert "| WebP |" in text.split("pdeflow against each baseline")[1]
    assert rep.files["rd.png"].startswith(b"\x89PNG")
    assert json.loads(rep.text("results.json"))["summary"]["tiny"]["pairs"]["jpeg"]["2.0"]["images"] == 2


def test_evaluate_refuses_bad_arguments():
    sets = {"s": ev.smooth_set(1, size=32)}
    with pytest.raises(UserInputError, match="rates must be numbers > 0"):
        ev.evaluate(sets, rates=[0.1, -1], codecs=["jpeg"])
    with pytest.raises(UserInputError, match="codecs must differ"):
        ev.evaluate(sets, codecs=["jpeg", "jpeg"])
    with pytest.raises(UserInputError, match="is empty"):
        ev.evaluate({"s": {}}, codecs=["jpeg"])
    with pytest.raises(UserInputError, match="C = 1 or 3"):
        ev.evaluate({"s": {"x": torch.rand(2, 32, 32)}}, codecs=["jpeg"])


def test_the_image_sets(tmp_path):
    from pdeflow.io import write_image

    for k, (h, w) in enumerate([(80, 100), (30, 30), (64, 64)]):
        write_image(tmp_path / f"p{k}.png", torch.rand(3, h, w))
    photos = ev.photo_set(tmp_path, size=40, channels=3)
    assert list(photos) == ["p0", "p2"] and all(u.shape == (3, 40, 40) for u in photos.values())
    assert list(ev.photo_set(tmp_path, size=40, limit=1)) == ["p0"]
    built = ev.builtin_set(size=64, limit=2)
    assert len(built) == 2 and all(u.shape == (1, 64, 64) for u in built.values())
    smooth = ev.smooth_set(3, size=32, seed=1)
    assert torch.equal(smooth["smooth-2"], ev.smooth_set(3, size=32, seed=1)["smooth-2"])


def test_the_real_codec_is_evaluated_within_its_budget():
    u = ev.smooth_set(1, size=64, seed=2)
    res = ev.evaluate({"s": u}, rates=[1.0], codecs=["pdeflow"])
    row, = res["rows"]
    assert row["fits"] and row["bytes"] <= ev.budget_bytes(1.0, 64, 64) and row["psnr"] > 20
