"""What the figures and tables show (issue 14, item 18): zoomed, contrast-stretched crops with the
stretch stated in the inpainting figures; no "± 0.0000" for one seed or one image; colour bars on the
error, div phi and u_t rows of the TVflowNET flow figure; a difference row in `flow --method both`;
no empty panel for a one-epoch IEL sweep."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from pdeflow import viz
from pdeflow.reporting import format_mean_std

STRETCH = re.compile(r"contrast \[(-?[\d.]+), (-?[\d.]+)\] -> \[0, 1\]")


# ----------------------------------------------------------------------------------- mean ± std


@pytest.mark.parametrize("n, expected", [(1, "0.9360"), (3, "0.9360 ± 0.0036"), (None, "0.9360 ± 0.0036")])
def test_format_mean_std_shows_no_spread_for_one_value(n, expected):
    assert format_mean_std(0.936, 0.0036, n) == expected


def test_format_mean_std_signed_and_digits():
    assert format_mean_std(-0.0592, 0.011, 5, 3, signed=True) == "-0.059 ± 0.011"
    assert format_mean_std(0.1036, 0.0, 1, 4, signed=True) == "+0.1036"
    assert format_mean_std(41.309, 0.0912, 8, 2, sdigits=3) == "41.31 ± 0.091"


@pytest.fixture(scope="module")
def one_image_evaluation():
    from pdeflow.evaluate.inpaint import evaluate

    return evaluate((0.1, 0.2), n_images=1, size=32, methods=("random-diffusion", "analytic"))


def test_inpainting_table_of_one_image_has_no_spread(one_image_evaluation):
    from pdeflow.evaluate._inpaint_report import report_markdown
    from pdeflow.evaluate.inpaint import evaluate

    text = report_markdown(one_image_evaluation)
    assert "| 0.1 |" in text and "±" not in text.split("## PSNR")[1]
    two = evaluate((0.1,), n_images=2, size=32, methods=("random-diffusion",))
    assert " ± " in report_markdown(two).split("## PSNR")[1]            # two images: the spread is shown


def test_iel_table_of_one_seed_has_no_spread():
    from pdeflow import training
    from pdeflow.evaluate.iel import RunConfig, _table

    def ms(v, n):
        return {"mean": v, "std": 0.0 if n == 1 else 0.01, "n": n, "values": [v] * n}

    def summary(n):
        rows = [{"labels": "noisy", "method": "baseline", "dt": None, "layers": None, "final_dice": ms(0.8, n),
                 "best_dice": ms(0.9, n), "label_noise_fraction": ms(0.1, n), "boundary_ratio": ms(1.1, n)},
                {"labels": "noisy", "method": "iel", "dt": 0.025, "layers": 30, "final_dice": ms(0.85, n),
                 "best_dice": ms(0.9, n), "label_noise_fraction": ms(0.1, n), "boundary_ratio": ms(1.0, n),
                 "final_minus_baseline": ms(0.05, n)}]
        return {"rows": rows, "seeds": list(range(n)), "base_config": training.config_to_dict(RunConfig()),
                "mode": "compare", "dataset": "synthetic", "device": "cpu", "torch": torch.__version__}

    one = _table(summary(1)).split("|---|")[-1]
    assert "±" not in one and "| 0.8500 |" in one and "+0.0500" in one
    assert "0.8500 ± 0.0100" in _table(summary(3))


# ------------------------------------------------------------------------- inpainting figures


def _stretched_panels(fig):
    """(lo, hi, displayed array) of every panel whose title states a contrast stretch."""
    found = []
    for ax in fig.axes:
        m = STRETCH.search(ax.get_title())
        if m and ax.images:
            found.append((float(m.group(1)), float(m.group(2)), np.asarray(ax.images[0].get_array())))
    return found


def test_evaluation_figure_has_stretched_zoomed_crops_with_the_stretch_stated(one_image_evaluation):
    from pdeflow.evaluate.inpaint import figure

    res = one_image_evaluation
    fig = figure(res)
    panels = _stretched_panels(fig)
    n_examples = len(res["_examples"])
    assert len(panels) == n_examples + len(res["settings"]["densities"])   # each inpainting + the original
    f0 = res["_shown"]
    size = f0.shape[-1] // 4
    for lo, hi, shown in panels:
        assert shown.shape[-2:] == (size, size)                           # zoomed: a quarter of the side
    shown = np.stack([p[2] for p in panels])
    assert shown.min() == pytest.approx(0.0) and shown.max() == pytest.approx(1.0)   # stretched to black-white
    # the stated range is the 1-99 % range of the original and the inpaintings in the window, the same for all
    assert len({(lo, hi) for lo, hi, _ in panels}) == 1
    lo, hi, orig = panels[0]
    window = [f0] + [u for _, u in res["_examples"].values()]
    err = sum((u - f0).abs() for u in window[1:])
    top, left, s = viz.zoom_window(err, size)
    vals = torch.cat([w[..., top:top + s, left:left + s].reshape(-1) for w in window]).double().numpy()
    qlo, qhi = np.quantile(vals, [0.01, 0.99])
    assert (lo, hi) == pytest.approx((qlo, qhi), abs=0.006)             # stated with 2 decimals
    expected = np.clip((f0[0, top:top + s, left:left + s].double().numpy() - qlo) / (qhi - qlo), 0, 1)
    assert orig == pytest.approx(expected, abs=1e-5)


def test_inpaint_command_figure_has_stretched_zoomed_crops(tmp_path):
    from pdeflow.inpaint import inpaint_diffusion, random_mask
    from pdeflow.inpaint.result import result_figure

    f = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.3 + 0.2   # a low-contrast image
    m = random_mask((1, 32, 32), 0.1, generator=1)
    u = inpaint_diffusion(f[None], m[None])[0]
    fig = result_figure(f, m, u, "t")
    panels = _stretched_panels(fig)
    assert len(panels) == 2                                               # input and inpainting, zoomed
    assert panels[0][:2] == panels[1][:2]                                  # one stretch for both
    for lo, hi, shown in panels:
        assert 0.2 <= lo < hi <= 0.5 and shown.shape == (8, 8)
    shown = np.stack([p[2] for p in panels])
    assert shown.min() == pytest.approx(0.0) and shown.max() == pytest.approx(1.0)


def test_zoom_window_finds_the_largest_sum():
    w = torch.zeros(20, 30)
    w[12:15, 3:6] = 1.0
    top, left, size = viz.zoom_window(w, 5)
    assert size == 5 and top <= 12 and top + 5 >= 15 and left <= 3 and left + 5 >= 6
    assert viz.zoom_window(w, 99)[2] == 20


@pytest.mark.parametrize("size", [1, 4, 7, 16])
def test_zoom_window_is_the_argmax_of_every_window_sum(size):
    w = torch.rand(3, 23, 17, generator=torch.Generator().manual_seed(size))
    sums = torch.nn.functional.avg_pool2d(w.sum(0).double()[None, None], size, stride=1)[0, 0]
    k = int(sums.reshape(-1).argmax())
    assert viz.zoom_window(w, size) == (k // sums.shape[1], k % sums.shape[1], size)
    # a quarter-side window of a large image, as the mask command's figure of a 4K photo asks: linear time
    big = torch.zeros(2160, 3840)
    big[1500:1600, 100:200] = 1.0
    top, left, s = viz.zoom_window(big, 540)
    assert s == 540 and top <= 1500 and top + s >= 1600 and left <= 100 and left + s >= 200


def test_robust_range_and_stretch():
    x = torch.linspace(0.2, 0.4, 101)
    lo, hi = viz.robust_range(x)
    assert (lo, hi) == pytest.approx((0.202, 0.398))
    s = viz.stretch(x, lo, hi)
    assert float(s.min()) == 0.0 and float(s.max()) == 1.0
    assert viz.robust_range(torch.full((4, 4), 0.5)) == pytest.approx((0.4995, 0.5005))   # flat: stays grey


# ------------------------------------------------------------------------ TV flow figures


def test_tvflownet_flow_figure_has_colour_bars_on_error_div_and_ut_rows():
    from pdeflow.evaluate.tvflownet_report import _flow_figure

    T, H = 9, 12
    g = torch.Generator().manual_seed(0)
    ex = {"times": np.linspace(0.1, 1.0, T), "u": torch.rand(T, 1, H, H, generator=g),
          "ref_u": torch.rand(T, 1, H, H, generator=g), "div": torch.randn(T, 1, H, H, generator=g),
          "ref_ut": torch.randn(T, 1, H, H, generator=g)}
    fig = _flow_figure(ex, "title")
    bars = [ax for ax in fig.axes if not ax.images and ax.get_ylabel()]
    labels = sorted(ax.get_ylabel() for ax in bars)
    assert labels == ["per unit time (x5 image)", "per unit time (x5 image)", "|u - u_ref| x 10"]


def test_flow_both_has_a_difference_row():
    from pdeflow.cli import flow as cli_flow

    u0 = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = torch.stack([u0, 0.9 * u0])
    net = ref + 0.02
    fig = cli_flow._flow_figure(u0, {"reference": ref, "net": net}, [0.1, 0.2], 1.0, "x", "p")
    diff = [ax for ax in fig.axes if ax.get_title().startswith("|net - reference| x 10")]
    assert len(diff) == 2
    for ax in diff:
        assert np.asarray(ax.images[0].get_array()) == pytest.approx(0.2, abs=1e-5)   # |0.02| x 10


# ------------------------------------------------------------------------ IEL sweep figure


@pytest.mark.parametrize("epochs", [1, 3])
def test_iel_sweep_figure_has_no_empty_panel(epochs):
    from pdeflow.evaluate.iel import _sweep_figure

    def row(method, dt, layers, v):
        return {"labels": "noisy", "method": method, "dt": dt, "layers": layers,
                "final_dice": {"mean": v, "std": 0.0, "n": 1}, "curve_mean": [v] * epochs}

    summary = {"dts": [0.01, 0.05], "layers": [2], "seeds": [0], "base_config": {"dataset": "synthetic"},
               "rows": [row("baseline", None, None, 0.8), row("iel", 0.01, 2, 0.82), row("iel", 0.05, 2, 0.78)]}
    fig = _sweep_figure(summary)
    heat = [ax for ax in fig.axes if ax.images]
    curves = [ax for ax in fig.axes if ax.lines]
    assert len(heat) == 1 and "±" not in heat[0].get_title()
    assert len(curves) == (1 if epochs > 1 else 0)
    assert len(fig.axes) == 2 + len(curves)                    # heat map, its colour bar, curves if any
