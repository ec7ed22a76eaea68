"""The inpainting evaluation on every metric: PS per minimised metric (ps-mse), MSE beside PSNR/MAE/SSIM, the
comparison with the PS row minimising the metric compared; refinement's probe tolerance (probe_tol)."""
import json
import math

import pytest
import torch

from pdeflow.cli import main
from pdeflow.evaluate._inpaint_report import against_ps, ps_reference, report_markdown
from pdeflow.evaluate.inpaint import evaluate, gradient_distance
from pdeflow.inpaint import inpaint_diffusion, ps_mask, refine_mask
from pdeflow.inpaint.masks.analytic import analytic_mask, laplacian_density
from pdeflow.inpaint.masks.refine import refine_options


def _image(H=24, W=20, seed=0, amplitude=1.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(H, dtype=torch.float64)[:, None]
    x = torch.arange(W, dtype=torch.float64)[None, :]
    noise = torch.nn.functional.avg_pool2d(torch.rand(1, 1, H, W, generator=g, dtype=torch.float64), 3, 1, 1,
                                           count_include_pad=False)
    pattern = 0.25 * torch.sin(x / 3.0) * torch.cos(y / 5.0) + 0.3 * (noise - 0.5) + 0.2 * (x > W // 2)
    return 0.5 + amplitude * pattern


def test_ps_mask_on_grey_images_does_not_depend_on_the_metric():
    """PS removes the candidates of smallest local error; |d| and d^2 order them alike on one channel, so the
    mask minimising the MSE is the one minimising the MAE (what lets one run serve ps and ps-mse); on colour
    images the per-pixel sums over channels differ and so may the masks."""
    f = _image(seed=3)
    a = ps_mask(f, 0.1, p=0.1, q=0.1, metric="mae", generator=5)
    b = ps_mask(f, 0.1, p=0.1, q=0.1, metric="mse", generator=5)
    assert torch.equal(a, b)


def test_evaluate_ps_mse_row_mse_column_and_comparison():
    res = evaluate((0.2,), n_images=2, size=16, methods=("ps", "ps-mse", "analytic", "analytic-refine"))
    s, per = res["summary"], res["per_image"]
    assert res["settings"]["ps_mse_shares_mask"] is True
    assert per["ps-mse"]["0.2"] == per["ps"]["0.2"]              # grey: PS's mask whatever the metric
    for m in ("ps", "analytic", "analytic-refine"):
        for row in per[m]["0.2"]:                                # PSNR (data range 1) and MSE (0-255) agree
            assert row["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / row["mse255"]), rel=1e-9)
        assert set(s[m]["0.2"]) >= {"psnr", "mse255", "mae255", "ssim"}
    assert ps_reference(res, "mse") == "ps-mse" and ps_reference(res, "mae") == "ps"
    text = report_markdown(res)
    assert "## MSE on the 0-255 scale" in text and "PS (MSE) minimises the MSE" in text
    lines = against_ps(res)
    assert "PSNR against PS (MSE) + diffusion" in lines[3] and "MAE (0-255) against PS + diffusion" in lines[3]
    row = next(x for x in lines if x.startswith("| 0.2 | analytic+refine"))
    psnr_diff = s["analytic-refine"]["0.2"]["psnr"]["mean"] - s["ps-mse"]["0.2"]["psnr"]["mean"]
    cell = row.split(" | ")[2]
    assert cell.strip("*") == f"{psnr_diff:+.2f} dB" and cell.startswith("**") == (psnr_diff > 0)


def test_ps_reference_follows_the_metric_ps_minimised():
    res = {"methods": ["ps", "learned"], "settings": {"ps": {"metric": "mse"}}}
    assert ps_reference(res, "mse") == "ps" and ps_reference(res, "mae") is None
    res = {"methods": ["ps-mse", "learned"], "settings": {"ps": {"metric": "mae"}}}
    assert ps_reference(res, "mse") == "ps-mse" and ps_reference(res, "mae") is None
    assert ps_reference(res, None) == "ps-mse"


def test_probe_tol_measures_the_small_errors_of_flat_images():
    """On a nearly flat image the inpainting errors are tiny against the grey values: a probe solve stopped at
    the default relative residual (1e-2), warm-started from the current inpainting, barely moves, and its
    costs are far from the exact ones; probe_tol=1e-8 measures them."""
    from pdeflow.inpaint.masks._refine_search import probe_costs
    from pdeflow.inpaint.masks.dither import blue_noise_tile
    f = _image(H=32, W=32, seed=9, amplitude=2e-3)
    keep = analytic_mask(f, 0.15).flatten(1).bool()
    u = inpaint_diffusion(f, keep.view(f.shape).to(f.dtype), tol=1e-12)
    tile = blue_noise_tile(64)
    exact = probe_costs(f, u, keep, 1e-12, "cg", tile, 0, probe_tol=1e-12)
    probed = torch.isfinite(exact)
    assert int(probed.sum()) > 10
    def err(c):
        return float((c - exact)[probed].abs().max() / exact[probed].max())
    assert err(probe_costs(f, u, keep, 1e-12, "cg", tile, 0, probe_tol=1e-8)) < 1e-3
    assert err(probe_costs(f, u, keep, 1e-12, "cg", tile, 0)) > 0.1


def test_refine_probe_tol_option(monkeypatch):
    import pdeflow.inpaint.masks.refine as refine
    f = _image(H=24, W=24, seed=2, amplitude=5e-3)
    m = analytic_mask(f, 0.1)
    p = laplacian_density(f)
    assert refine_options({"rounds": 2, "probe_tol": 1e-6}, "x") == {"rounds": 2, "probe_tol": 1e-6}
    out = {}
    for flag in (True, False):              # the NumPy search of one image and the tensor search agree
        monkeypatch.setattr(refine, "SINGLE_IMAGE_PATH", flag)
        out[flag] = refine_mask(f, m, rounds=6, shifts=2, density_map=p, metric="mse", tol=1e-6, probe_tol=1e-6,
                                generator=0, full_output=True)
    assert torch.equal(out[True].mask, out[False].mask)
    assert torch.allclose(out[True].trace, out[False].trace, rtol=1e-6, atol=1e-15)
    assert float(out[True].error[0]) <= float(out[True].trace[0, 0])
    for bad in (0, 1, -1e-3, "1e-3"):
        with pytest.raises(ValueError, match="probe_tol"):
            refine_mask(f, m, rounds=1, probe_tol=bad)


def test_cli_refine_option(tmp_path, capsys):
    base = ["evaluate", "inpainting", "--densities", "0.2", "--n-images", "1", "--size", "16",
            "--methods", "analytic-refine"]
    out = tmp_path / "e"
    assert main(base + ["--refine", '{"rounds": 2, "metric": "mse", "probe_tol": 1e-4}', "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["refine"]["0.2"] == {"rounds": 2, "metric": "mse", "probe_tol": 1e-4}
    out2 = tmp_path / "e2"
    assert main(base + ["--refine", '{"0.2": {"rounds": 1}, "0.1": {"rounds": 3}}', "--out", str(out2)]) == 0
    assert json.loads((out2 / "results.json").read_text())["settings"]["refine"]["0.2"] == {"rounds": 1}
    for bad in ('{"rounds": 2, "bogus": 1}', "[1, 2]", "{", '{"0.2": 3}', "{}"):
        for flag in ("--refine", "--refine-mse"):
            assert main(base + [flag, bad, "--out", str(tmp_path / "bad")]) == 2
            assert f"argument {flag}:" in capsys.readouterr().err
            assert not (tmp_path / "bad").exists()


def test_refine_mse_rows_minimise_the_mse():
    """The *-refine-mse rows refine with their own setting (refine_mse), which the report states; their masks
    never have a larger MSE than the unrefined ones (refinement keeps the input unless it lowers its error)."""
    res = evaluate((0.2,), n_images=2, size=16, methods=("learned", "learned-refine-mse"),
                   refine_mse={"rounds": 4, "metric": "mse", "tol": 1e-6})
    assert res["settings"]["refine_mse"]["0.2"] == {"rounds": 4, "metric": "mse", "tol": 1e-6}
    for a, b in zip(res["per_image"]["learned"]["0.2"], res["per_image"]["learned-refine-mse"]["0.2"]):
        assert b["mse255"] <= a["mse255"] * (1 + 1e-6)
        assert b["density"] == a["density"]
    text = report_markdown(res)
    assert "Refinement of the *-refine-mse rows" in text and "0.2: 1 x 4 (mse, tol 1e-06)" in text


def test_random_residual_row_fills_the_random_masks_and_the_texture_distance_is_reported():
    res = evaluate((0.1,), n_images=2, size=64, methods=("random-diffusion", "random-residual"))
    diff, resid = (res["summary"][m]["0.1"] for m in ("random-diffusion", "random-residual"))
    assert diff["density"]["mean"] == resid["density"]["mean"]          # the same masks
    assert diff["mae255"]["mean"] != resid["mae255"]["mean"]            # a different fill
    assert diff["grad_w1"]["mean"] > 0 and "Texture of the fill" in report_markdown(res)


def test_gradient_distance_compares_distributions_not_pixels():
    f = _image(32, 32)                                                 # (1, 1, 32, 32)
    mask = torch.zeros_like(f)
    assert gradient_distance(f.transpose(-1, -2), f, mask) < 1e-9       # the same gradient magnitudes, moved
    smooth = torch.nn.functional.avg_pool2d(f, 5, 1, 2, count_include_pad=False)
    assert gradient_distance(smooth, f, mask) > gradient_distance(f + 0.01, f, mask)
    # float32 images: the float64 distance to float32 rounding (0-255 scale)
    assert abs(gradient_distance(smooth.float(), f.float(), mask) - gradient_distance(smooth, f, mask)) < 1e-4
    mask[..., :16, :] = 1                                              # known pixels do not count
    g = f.clone()
    g[..., :16, :] = 0
    assert gradient_distance(g, f, mask) < gradient_distance(g, f, torch.zeros_like(mask))
