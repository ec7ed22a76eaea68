"""TVflowNET evaluation: joint space-time optimisation, reference cache, time derivatives, report."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from pdeflow import datasets, metrics
from pdeflow.cli import build_parser
from pdeflow.cli.tvflownet import _test_time_wrapper
from pdeflow.evaluate import _tvflownet_metrics as _eval_metrics
from pdeflow.evaluate import tvflownet as ev
from pdeflow.reporting import Report
from pdeflow.tv import spectral_from_stack, tv_flow
from pdeflow.tvflownet import build_model, load
from pdeflow.tvflownet.joint import joint_optimise, paper_iterations, time_difference
from pdeflow.tvflownet.symmetry import DihedralMean, Equivariant, composes_in_time

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _test_image(H=12, W=12, dtype=torch.float64):
    """A disk, a square and a gentle texture, in [0, 1]."""
    yy, xx = torch.meshgrid(torch.arange(H, dtype=dtype), torch.arange(W, dtype=dtype), indexing="ij")
    disk = ((xx - 4) ** 2 + (yy - 4) ** 2 <= 6).to(dtype)
    square = ((xx >= 7) & (xx < 11) & (yy >= 6) & (yy < 10)).to(dtype)
    return (0.2 + 0.5 * disk + 0.3 * square + 0.05 * torch.sin(xx / 2) * torch.cos(yy / 3))[None, None]


# --------------------------------------------------------------------------- joint optimisation


def test_time_difference_matches_numpy_gradient_and_backward_quotient():
    t = torch.tensor([0.0, 0.1, 0.25, 0.3, 0.6], dtype=torch.float64)
    u = torch.randn(5, 2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    central = time_difference(u, t, "central")
    np.testing.assert_allclose(central.numpy(), np.gradient(u.numpy(), t.numpy(), axis=0, edge_order=1), rtol=1e-12)
    back = time_difference(u, t, "backward")
    torch.testing.assert_close(back[1:], (u[1:] - u[:-1]) / (t[1:] - t[:-1]).reshape(-1, 1, 1))
    torch.testing.assert_close(back[0], back[1])
    with pytest.raises(ValueError, match="fd"):
        time_difference(u, t, "forward")


def test_paper_iterations():
    assert paper_iterations(32) == 2000 and paper_iterations(96) == 2000
    assert paper_iterations(256) == 14000 and paper_iterations(512) == 20000
    assert paper_iterations(200) == 14000


def test_joint_optimisation_reduces_loss_and_approaches_reference():
    x = 5.0 * _test_image()
    times = ev.paper_times(11, 0.2)  # spacing 0.02
    ref_u, ref_ut = ev.reference_flow(x, times, dt=0.02, tol=1e-8, cache_dir=False)
    u, phi, hist = joint_optimise(x, times, iterations=400, return_history=True, history_every=50)
    assert u.shape == (11, 1, 1, 12, 12) and phi.shape == (11, 1, 1, 2, 12, 12)
    assert hist["iteration"][0] == 0 and hist["iteration"][-1] == 400
    assert hist["total"][-1] < 0.05 * hist["total"][0]
    init = x.expand_as(ref_u)
    p_init = metrics.psnr(init[1:, 0] / 5, ref_u[1:, 0].double() / 5).mean()
    p_joint = metrics.psnr(u[1:, 0] / 5, ref_u[1:, 0].double() / 5).mean()
    print(f"joint: PSNR of u vs reference {p_joint:.2f} dB (initialisation {p_init:.2f} dB), "
          f"loss {hist['total'][0]:.3e} -> {hist['total'][-1]:.3e}")
    assert p_joint > p_init + 3.0
    # batched over images: the same image twice gives the same result twice
    u2, _ = joint_optimise(torch.cat([x, x]), times, iterations=5)
    torch.testing.assert_close(u2[:, 0], u2[:, 1])


def test_joint_optimise_checks_arguments():
    x = _test_image()
    with pytest.raises(ValueError, match="start at 0"):
        joint_optimise(x, [0.1, 0.2], iterations=1)
    with pytest.raises(ValueError, match="strictly increasing"):
        joint_optimise(x, [0.0, 0.2, 0.1], iterations=1)
    with pytest.raises(ValueError, match="fd"):
        joint_optimise(x, [0.0, 0.1], iterations=1, fd="sideways")


# --------------------------------------------------------------------------- time derivatives, spectral


class _SmoothModel(nn.Module):
    """A smooth (tanh/softplus) model of (u0, t): u = u0 + f(u0, t)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(3, generator=g, dtype=torch.float64))
        self.conv = nn.Conv2d(2, 3, 3, padding=1).double()

    def forward(self, u0, t):
        tau = t.reshape(-1, 1, 1, 1).expand(u0.shape[0], 1, *u0.shape[-2:]).to(u0)
        h = self.conv(torch.cat([u0, tau], 1))
        u = u0 + torch.tanh(h[:, :1] * tau) * self.a[0] + nn.functional.softplus(h[:, 1:2] * tau ** 2) * self.a[1]
        phi = torch.tanh(h[:, 1:3]).unsqueeze(1)
        return u, phi


def test_autodiff_and_finite_difference_time_derivatives_agree():
    torch.manual_seed(0)
    model = _SmoothModel()
    x = 5.0 * _test_image(10, 10)
    x = torch.cat([x, 0.5 * x])
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    with torch.no_grad():
        u, u_t, u_tt = ev.time_derivatives(model, x, t, method="autodiff")
        u2, u_t2, u_tt2 = ev.time_derivatives(model, x, t, method="fd", fd_step=1e-3)
    torch.testing.assert_close(u, u2)
    assert float(u_tt.detach().abs().max()) > 1e-2  # a non-trivial second derivative
    torch.testing.assert_close(u_t, u_t2, rtol=1e-5, atol=1e-6 * float(u_t.abs().max()))
    torch.testing.assert_close(u_tt, u_tt2, rtol=1e-4, atol=1e-5 * float(u_tt.abs().max()))
    # a real architecture (softplus only) in float64
    net = build_model("semiresnet", width=6, depth=3, n_relu=0).double()
    with torch.no_grad():
        u, u_t, u_tt = ev.time_derivatives(net, x, t)
        _, u_t2, u_tt2 = ev.time_derivatives(net, x, t, method="fd", fd_step=1e-3)
    torch.testing.assert_close(u_t, u_t2, rtol=1e-5, atol=1e-6 * float(u_t.abs().max()))
    torch.testing.assert_close(u_tt, u_tt2, rtol=1e-3, atol=1e-3 * float(u_tt.abs().max()))


def test_spectral_from_stack_telescopes_to_first_frame():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(9, 2, 1, 6, 6, dtype=torch.float64, generator=g)
    s = spectral_from_stack(u, 0.05)
    assert s.phi.shape == (7, 2, 1, 6, 6) and s.spectrum.shape == (7, 2)
    torch.testing.assert_close(s.reconstruct(), u[0])


def test_table_7_takes_a_model_that_composes_in_time_by_finite_differences_only(tmp_path):
    # A composed u(t) has jumps in u_t where stages join; the autodiff formula (integration by parts)
    # cannot see them, so the evaluation must not report it for such a model.
    torch.manual_seed(0)
    lgd = build_model("lgd", n_steps=1, hidden=4, dim_z=1)
    models = {"bare": lgd, "composing": DihedralMean(Equivariant(lgd), "transpose"),
              "not composing": Equivariant(lgd, compose=False)}
    assert [composes_in_time(m) for m in models.values()] == [False, True, False]
    res = ev.evaluate(models, sizes=(16,), n_images=2, tables=(7,), times=ev.paper_times(4, 0.06),
                      spectral_size=16, tol=1e-4, cache_dir=tmp_path / "cache")
    t7 = res["table7"]["models"]
    assert t7["composing"]["autodiff"] is None and math.isfinite(t7["composing"]["fd"]["psnr"][0])
    assert all(math.isfinite(t7[n]["autodiff"]["psnr"][0]) for n in ("bare", "not composing"))
    from pdeflow.evaluate.tvflownet_report import report
    text = report(res).text("report.md")
    table_7 = text.split("## Table 7", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in table_7.splitlines() if line.startswith("| ")}
    assert "— (composes in time)" in rows["composing"]
    assert "composes" not in rows["bare"] + rows["not composing"]


# --------------------------------------------------------------------------- reference flow and cache


def test_reference_flow_matches_tv_flow_and_is_cached(tmp_path):
    x = 5.0 * _test_image(12, 12, torch.float32)
    x = torch.cat([x, x.flip(-1)])
    times = ev.paper_times(6, 0.1)
    u, u_t, info = ev.reference_flow(x, times, dt=0.01, tol=1e-7, cache_dir=tmp_path, return_info=True)
    assert info["misses"] == 2 and info["hits"] == 0
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    want_u, want_ut = tv_flow(x.double(), times, dt=0.01, tol=1e-7, return_ut=True)
    torch.testing.assert_close(u, want_u.float(), rtol=0, atol=1e-5)
    torch.testing.assert_close(u_t, want_ut.float(), rtol=0, atol=1e-4)
    # the second call reads the cache: same values, no solve
    u2, u_t2, info2 = ev.reference_flow(x, times, dt=0.01, tol=1e-7, cache_dir=tmp_path, return_info=True)
    assert info2["hits"] == 2 and info2["misses"] == 0
    torch.testing.assert_close(u2, u, rtol=0, atol=0)
    torch.testing.assert_close(u_t2, u_t, rtol=0, atol=0)
    # per image: a batch with one known image and one new one
    _, _, info3 = ev.reference_flow(torch.cat([x[:1], 2 * x[:1]]), times, dt=0.01, tol=1e-7, cache_dir=tmp_path,
                                    return_info=True)
    assert info3["hits"] == 1 and info3["misses"] == 1
    # other solver settings are other entries
    _, _, info4 = ev.reference_flow(x[:1], times, dt=0.01, tol=1e-6, cache_dir=tmp_path, return_info=True)
    assert info4["misses"] == 1
    # a damaged entry is recomputed
    for f in tmp_path.glob("*.npz"):
        f.write_bytes(b"junk")
    u5, _, info5 = ev.reference_flow(x, times, dt=0.01, tol=1e-7, cache_dir=tmp_path, return_info=True)
    assert info5["misses"] == 2
    torch.testing.assert_close(u5, u, rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiples of dt"):
        ev.reference_flow(x, [0.0, 0.015], dt=0.01, cache_dir=False)


def test_reference_flow_through_extinction():
    """A disk falls linearly to the background and then stays: the extinct image costs no solver time."""
    x = datasets.disk(16, 2.5, height=1.0)[None].double()
    times = [0.1 * k for k in range(21)]
    u, u_t = ev.reference_flow(x, times, dt=0.05, tol=1e-8, cache_dir=False)
    mean = float(x.mean())
    assert float((u[-1] - mean).abs().max()) < 1e-6
    assert float(u_t[-1].abs().max()) == 0.0
    centre = u[:, 0, 0, 8, 8].double()
    assert bool((centre[1:] <= centre[:-1] + 1e-6).all())  # the disk's value never rises
    assert float(centre[1]) < 1.0 - 0.05  # and it does fall
    torch.testing.assert_close(u.mean(dim=(-2, -1)), x.float().mean().expand(21, 1, 1), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- end to end


class _Scaled(nn.Module):
    """A wrapper for Table 6: evaluates the model on u0 / c at time t / c and rescales."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, u0, t):
        c = u0.abs().amax(dim=(1, 2, 3)).clamp_min(1e-6) / 5.0
        tt = torch.as_tensor(t, dtype=u0.dtype).reshape(-1).expand(u0.shape[0])
        u, phi = self.model(u0 / c.reshape(-1, 1, 1, 1), tt / c)
        return u * c.reshape(-1, 1, 1, 1), phi


def _tiny_models():
    torch.manual_seed(0)
    return {"semiresnet-32": build_model("semiresnet", width=4, depth=2),
            "tiny-lgd": build_model("lgd", n_steps=1, hidden=4, dim_z=1)}


@pytest.mark.slow   # every table of the evaluation; test_cli_evaluate_tvflownet stays in make test
def test_evaluate_end_to_end_writes_report_with_all_tables(tmp_path):
    models = _tiny_models()
    res = ev.evaluate(models, sizes=(16,), n_images=2, times=ev.paper_times(4, 0.06), timing_sizes=(16,),
                      timing_repeats=1, joint_iterations=10, tol=1e-4, cache_dir=tmp_path / "cache",
                      wrapper=_Scaled)
    for key in ("table1", "table2_4", "table5", "table6", "table7", "table9"):
        assert key in res, key
    r = res["table2_4"]["models"]["semiresnet-32"][16]
    assert r["n_images"] == 2 and r["n_times"] == 4
    assert all(math.isfinite(v) for k in ev.METRICS for p in ("u_", "div_") for v in r[p + k])
    wrapped = {"semiresnet-32", "tiny-lgd", "semiresnet-32 + _Scaled", "tiny-lgd + _Scaled"}
    for key in ("table2_4", "table5", "table6", "table7"):   # the wrapped models in every table
        assert set(res[key]["models"]) == wrapped, key
    assert res["table7"]["reference"]["fd"]["psnr"][0] > 90  # telescoping: exact up to round-off
    assert res["models"]["semiresnet-32"]["paper_row"] == ["semiresnet", "32"]
    assert res["models"]["tiny-lgd"]["paper_row"] is None

    from pdeflow.evaluate.tvflownet_report import report
    rep = report(res)
    assert set(rep.names) == {"report.md", "results.json", "flow_example.png", "joint_flow.png", "spectra.png"}
    rep.write(tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    for n in (1, 2, 3, 4, 5, 6, 7, 9):
        assert f"## Table {n} " in text, n
    assert "41.07 ± 0.09" not in text  # 16 px is not a paper size: no paper number there
    assert "52.12 (0.983)" in text  # Table 5 paper numbers beside the Semi-ResNet 32 px row
    assert "16×16 ours, Gaussian" in text and "## Metric variants" in text  # both SSIMs, labelled
    assert ev.METRICS["ssim"] in text and ev.METRICS["psnr"] in text
    for f in ("flow_example.png", "joint_flow.png", "spectra.png", "results.json"):
        assert (tmp_path / "out" / f).is_file(), f
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["config"]["n_images"] == 2
    # the second run reads every reference from the cache
    res2 = ev.evaluate(models, sizes=(16,), n_images=2, times=ev.paper_times(4, 0.06), tables=(2,), tol=1e-4,
                       cache_dir=tmp_path / "cache")
    assert res2["table2_4"]["models"]["tiny-lgd"][16] == res["table2_4"]["models"]["tiny-lgd"][16]


def test_paper_key():
    m = build_model("unet", channels=(4, 4, 4, 4, 4))
    assert ev.paper_key("mine", m) is None
    assert ev.paper_key("unet_96", m) == ("unet", "96")
    assert ev.paper_key("lgd-mixed") == ("lgd", "mixed")
    m.meta = {"config": {"model": m.config, "scale": 5.0}, "provenance": {"train_config": {"crop": "256"}}}
    assert ev.paper_key("mine", m) == ("unet", "256")
    assert ev.paper_key("wrapped", _Scaled(m)) == ("unet", "256")
    m.meta = {"provenance": {"validation": {"crop": 96}, "crop_size": "mixed"}}
    assert ev.paper_key("mine", m) == ("unet", "mixed")


def test_cli_evaluate_tvflownet(tmp_path, capsys):
    from pdeflow.io import save_model
    torch.manual_seed(0)
    m = build_model("semiresnet", width=4, depth=2)
    save_model(m, tmp_path / "tiny", {"model": m.config, "scale": 5.0, "t_max": 1.0},
                 {"train_config": {"crop": "96"}})
    parser = build_parser()
    out = tmp_path / "report"
    argv = ["evaluate", "tvflownet", str(tmp_path / "tiny.safetensors"), "--sizes", "16", "--n-images", "1",
            "--n-times", "3", "--t-max", "0.04", "--tables", "2", "7", "--tol", "1e-4",
            "--cache", str(tmp_path / "cache"), "--out", str(out)]
    args = parser.parse_args(argv)
    args.validate(args)
    assert args.run(args) == 0
    text = (out / "report.md").read_text()
    assert "## Table 2 " in text and "## Table 7 " in text and "## Table 5 " not in text
    assert "Semi-ResNet, 96 px" in text
    # no overwrite without --overwrite
    with pytest.raises(Exception, match="already exists"):
        args.run(parser.parse_args(argv))
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "tvflownet", "--tables", "8"])
    capsys.readouterr()


def test_cli_evaluate_dihedral_reports_the_wrapped_model_beside_the_bare_one(tmp_path, capsys):
    from pdeflow.io import save_model
    torch.manual_seed(0)
    m = build_model("semiresnet", width=4, depth=2)
    save_model(m, tmp_path / "tiny", {"model": m.config, "scale": 5.0, "t_max": 1.0}, {})
    parser = build_parser()
    argv = ["evaluate", "tvflownet", str(tmp_path / "tiny.safetensors"), "--sizes", "16", "--n-images", "1",
            "--n-times", "3", "--t-max", "0.04", "--tables", "2", "--tol", "1e-4", "--dihedral", "transpose",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "report")]
    args = parser.parse_args(argv)
    args.validate(args)
    assert args.run(args) == 0
    rows = json.loads((tmp_path / "report" / "results.json").read_text())
    assert set(rows["models"]) == {"tiny", "tiny + DihedralMean(transpose)"}
    # both wrappers compose as tvflownet.flow composes them: the symmetry mean over the equivariant model
    both = parser.parse_args(argv + ["--equivariant"])
    wrap = _test_time_wrapper(both)
    wrapped = wrap(m)
    assert wrap.__name__ == "Equivariant(range) + DihedralMean(transpose)"
    assert isinstance(wrapped, DihedralMean) and isinstance(wrapped.model, Equivariant)
    assert wrapped.model.contrast == "range" and wrapped.model.model is m
    assert _test_time_wrapper(parser.parse_args(argv[:2] + ["--equivariant", "--contrast", "std"]))(m).contrast == "std"
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "tvflownet", "--dihedral", "rotations"])
    capsys.readouterr()


def test_cli_evaluate_interrupted_leaves_nothing_in_out(tmp_path, monkeypatch, capsys):
    """A killed `pdeflow evaluate tvflownet` (here: Ctrl-C while the report is written) leaves no file."""
    from pdeflow.cli import main
    from pdeflow.cli import tvflownet as cli_tvflownet

    def interrupted(results, **kw):
        rep = Report()
        rep.add_text("report.md", "partial")
        rep.add_figure = None  # the figure never arrives: interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_tvflownet, "report", interrupted)
    out = tmp_path / "report"
    rc = main(["evaluate", "tvflownet", "--sizes", "16", "--n-images", "1", "--n-times", "2", "--t-max", "0.02",
               "--tables", "2", "--tol", "1e-3", "--no-cache", "--out", str(out)])
    assert rc == 130 and not out.exists()
    capsys.readouterr()


# --------------------------------------------------------------------------- the paper's metrics


def test_paper_metrics_are_the_official_test_codes():
    """The columns compared with the paper: PSNR of each image's stack (scikit-image's
    peak_signal_noise_ratio on the (T, H, W) stack) and scikit-image's default SSIM per frame,
    as the official eval_all.py; the variants beside them are what they say."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    g = torch.Generator().manual_seed(3)
    T, B, H, W = 5, 3, 20, 23
    ref = torch.rand(T, B, 1, H, W, generator=g, dtype=torch.float64)
    x = (ref + 0.05 * torch.randn(ref.shape, generator=g, dtype=torch.float64) * torch.arange(1, T + 1).reshape(
        T, 1, 1, 1, 1)).clamp(0, 1)
    assert ev.PAPER_METRICS == ("psnr", "ssim")
    vals = _eval_metrics.metric_values(x, ref)
    sk_psnr = [peak_signal_noise_ratio(ref[:, b, 0].numpy(), x[:, b, 0].numpy(), data_range=1) for b in range(B)]
    np.testing.assert_allclose(vals["psnr"].numpy(), sk_psnr, rtol=1e-13)
    sk_ssim = [structural_similarity(x[t, b, 0].numpy(), ref[t, b, 0].numpy(), data_range=1)
               for t in range(T) for b in range(B)]
    np.testing.assert_allclose(vals["ssim"].numpy(), sk_ssim, rtol=0, atol=1e-13)
    sk_gauss = [structural_similarity(x[t, b, 0].numpy(), ref[t, b, 0].numpy(), data_range=1, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False) for t in range(T) for b in range(B)]
    np.testing.assert_allclose(vals["ssim_gaussian"].numpy(), sk_gauss, rtol=0, atol=1e-13)
    sk_frames = [peak_signal_noise_ratio(ref[t, b, 0].numpy(), x[t, b, 0].numpy(), data_range=1)
                 for t in range(T) for b in range(B)]
    np.testing.assert_allclose(vals["psnr_frames"].numpy(), sk_frames, rtol=1e-13)
    # the stack PSNR is not the mean of the frames' PSNR (the errors grow with t here)
    assert float(vals["psnr_frames"].mean()) > float(vals["psnr"].mean()) + 0.5
    stats = _eval_metrics.compare(x * 5, x * 5, ref * 5, ref * 5, 5.0)
    assert set(stats) >= {p + k for p in ("u_", "div_") for k in ev.METRICS}
    assert stats["u_ssim"][0] == pytest.approx(float(np.mean(sk_ssim)), abs=1e-13)
    assert stats["u_psnr"][0] == pytest.approx(float(np.mean(sk_psnr)), rel=1e-13)
    # one frame per image (Table 7): the stack is the frame
    np.testing.assert_allclose(ev.stack_psnr(x[0], ref[0]).numpy(), vals["psnr_frames"][:B].numpy(), rtol=1e-13)
    with pytest.raises(ValueError, match="ssim must be one of"):
        ev.frame_metrics(x, ref, ssim="box")


# --------------------------------------------------------------------------- the second held-out set


def test_natural_images_name_the_photo_each_crop_was_cut_from(tmp_path):
    from pdeflow import io as pio
    g = torch.Generator().manual_seed(1)
    photos = {}
    for i, (h, w) in enumerate([(20, 26), (24, 18)]):
        pio.write_image(tmp_path / f"q{i}.png", torch.rand(1, h, w, generator=g))
        photos[f"q{i}.png"] = pio.read_image(tmp_path / f"q{i}.png", grey=True)
    crops, sources = ev.natural_images(8, 6, seed=3, image_dir=tmp_path, return_sources=True)
    torch.testing.assert_close(crops, ev.natural_images(8, 6, seed=3, image_dir=tmp_path), rtol=0, atol=0)
    assert len(sources) == 6 and set(sources) == set(photos)    # 6 draws from 2 photos: both, here
    for crop, name in zip(crops, sources):                      # each crop is a window of its named photo
        windows = photos[name].unfold(1, 8, 1).unfold(2, 8, 1).reshape(-1, 8, 8)
        assert (windows == crop[0]).flatten(1).all(1).any()


@pytest.mark.slow   # a second evaluation run
def test_cli_evaluate_reports_a_second_held_out_folder_beside_the_test_photos(tmp_path, capsys):
    from pdeflow import io as pio
    from pdeflow.io import save_model
    folder = tmp_path / "nature"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):                                       # two tiny "photos": smooth plus noise
        pio.write_image(folder / f"p{i}.png", (torch.linspace(0, 1, 20).view(1, 1, 20) * torch.ones(1, 24, 20)
                                                + 0.1 * torch.rand(1, 24, 20, generator=g)).clamp(0, 1))
    torch.manual_seed(0)
    m = build_model("semiresnet", width=4, depth=2)
    save_model(m, tmp_path / "clean", {"model": m.config, "scale": 5.0, "t_max": 1.0},
               {"train_config": {"crop": "32"}, "data": {"train": {"sources": ["builtin"]}}})
    save_model(m, tmp_path / "leaky", {"model": m.config, "scale": 5.0, "t_max": 1.0},
               {"train_config": {"crop": "32"}, "data": {"train": {"sources": ["builtin", str(folder)]}}})
    argv = ["evaluate", "tvflownet", str(tmp_path / "clean.json"), "--sizes", "16", "--n-images", "2",
            "--n-times", "3", "--t-max", "0.04", "--tables", "2", "--tol", "1e-4", "--heldout-dir", str(folder),
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.validate(args)
    assert args.run(args) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    held, test = res["heldout"]["models"]["clean"]["16"], res["table2_4"]["models"]["clean"]["16"]
    assert held["n_images"] == 2 and res["heldout"]["photos"] == ["p0.png", "p1.png"]
    assert res["heldout"]["used_by"] == [] and res["config"]["heldout_source"] == str(folder)
    assert held["u_psnr"] != test["u_psnr"]                  # other images than the built-in test photos
    section = text.split("## Tables 2–4 on a second held-out set: nature")[1].split("\n## ")[0]
    rows = [r for r in section.splitlines() if r.startswith("| clean")]
    assert [r.split(" | ")[1] for r in rows] == ["built-in test photos", "held out: nature"]
    assert f"{held['u_psnr'][0]:.2f}" in rows[1] and f"{held['div_psnr'][0]:.2f}" in rows[1]
    assert f"{test['u_psnr'][0]:.2f}" in rows[0]
    assert "## Table 2 " in text and "## Table 4 " in text      # the other sections stay
    # a model trained on that folder: warned about and flagged in the report
    with pytest.warns(UserWarning, match="not a held-out set for leaky"):
        res2 = ev.evaluate({"leaky": load(tmp_path / "leaky.json")}, sizes=(16,), n_images=1,
                           times=ev.paper_times(3, 0.04), tables=(2,), tol=1e-4, cache_dir=tmp_path / "cache",
                           heldout_dir=folder)
    assert res2["heldout"]["used_by"] == ["leaky"]
    from pdeflow.evaluate.tvflownet_report import report
    assert "**Not held out for leaky**" in report(res2).text("report.md")
    with pytest.raises(Exception, match="--heldout-dir"):
        missing = [str(tmp_path / "missing") if a == str(folder) else a for a in argv]
        args.run(parser.parse_args(missing[:-1] + [str(tmp_path / "out2")]))
    capsys.readouterr()


def test_report_gives_the_mean_and_spread_over_trainings_of_one_recipe(tmp_path):
    """Two seeds of one recipe are averaged over trainings (the paper's mean ± std); a third recipe is not."""
    from dataclasses import asdict

    from pdeflow.evaluate.tvflownet_report import report
    from pdeflow.io import save_model
    from pdeflow.tvflownet.train import TrainConfig
    models = {}
    for name, seed, steps in (("s0", 0, 10), ("s1", 1, 10), ("other", 0, 20)):
        torch.manual_seed(seed)
        m = build_model("semiresnet", width=4, depth=2)
        cfg = asdict(TrainConfig(arch="semiresnet", seed=seed, steps=steps))
        save_model(m, tmp_path / name, {"model": m.config, "scale": 5.0, "t_max": 1.0}, {"train_config": cfg})
        models[name] = load(tmp_path / f"{name}.json")
    res = ev.evaluate(models, sizes=(16,), n_images=2, times=ev.paper_times(3, 0.04), tables=(2,), tol=1e-4,
                      cache_dir=tmp_path / "cache")
    recipes = {n: res["models"][n]["recipe"] for n in models}
    assert recipes["s0"] == recipes["s1"] != recipes["other"]
    text = report(res).text("report.md")
    section = text.split("## Tables 2–4 over trainings")[1].split("\n## ")[0]
    row = next(r for r in section.splitlines() if r.startswith("| s0, s1 (2 trainings) | built-in test photos"))
    vals = [res["table2_4"]["models"][n][16]["u_psnr"][0] for n in ("s0", "s1")]
    mean, std = float(np.mean(vals)), float(np.std(vals, ddof=1))
    assert row.split(" | ")[2] == f"{mean:.2f} ± {std:.2f}"
    assert "other" not in section
