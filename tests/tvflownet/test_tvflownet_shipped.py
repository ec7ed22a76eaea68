"""The shipped TVflowNETs: they load offline, say how they were trained, and learned the flow."""
import pytest

from pdeflow import datasets, metrics, models, tvflownet
from pdeflow.io import SAME_AS_ABOVE
from pdeflow.tv import tv_flow
from pdeflow.tvflownet.api import DEFAULT_COLOUR_MODEL

WEIGHTS_DIR = models.WEIGHTS_DIRS["tvflownet"]
#: The documented TVflowNETs (a documented model that stops shipping fails here and in test_models.py).
SHIPPED = [n for n, s in models.SHIPPED.items() if s.pillar == "tvflownet"]
#: Shipped models whose JSON records every training stage (the Semi-ResNet predates that record).
STAGED = [name for name in SHIPPED if name != "semiresnet"]


def _trained_sources(prov):
    """The trainer provenances behind a model: its own, or, for an average or ensemble of models, its sources'."""
    key = next((k for k in ("averaged", "members") if k in prov), None)
    if key is None:
        return [prov]
    assert prov["command"].startswith("pdeflow train tvflownet-" + {"averaged": "average", "members": "ensemble"}[key])
    assert abs(sum(src["weight"] for src in prov[key]) - 1) < 1e-12
    return [p for src in prov[key] for p in _trained_sources(src["provenance"])]


@pytest.mark.parametrize("name", STAGED)
def test_shipped_model_records_its_training(name):
    model = tvflownet.load(name)
    prov = model.meta["provenance"]
    for source in _trained_sources(prov):
        assert source["command"].startswith("pdeflow train tvflownet ")
        assert source["steps"] > 0 and source["val_psnr"] > source["val_psnr_identity"]
    stages = prov["shipped"]["training_stages"]                         # every stage's command, reproducible
    commands = [prov["command"] if s["command"] == SAME_AS_ABOVE else s["command"] for s in stages]
    assert all(c.startswith("pdeflow train tvflownet") for c in commands)
    weights = WEIGHTS_DIR / f"{name}.safetensors"
    assert weights.stat().st_size < 2_000_000                           # small enough to ship


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_beats_the_identity_on_held_out_crops(name):
    """On test-split crops the network is far closer to the reference flow than u0 itself (a colour model: on
    the colour test photos, against the coupled colour flow)."""
    model = tvflownet.load(name)
    colour = model.in_channels == 3
    pool = datasets.builtin_pool("test", grey=not colour, kind="photo")
    if colour:      # the photos that are colour (grey=False repeats a grey photo in three channels)
        pool = {k: v for k, v in pool.items() if not bool((v[0] == v[1]).all())}
        assert len(pool) >= 2
    u0 = datasets.random_crops(pool, 2, 32, generator=5)
    times = [0.05, 0.1, 0.2]                                   # [0, 1] intensities: t <= 1 on the x5 scale
    ref = tv_flow(u0, times, dt=0.005, tol=1e-5)
    net = tvflownet.flow(u0, times, model)
    for k in range(len(times)):
        gain = metrics.psnr(net[k], ref[k], data_range=1.0) - metrics.psnr(u0, ref[k], data_range=1.0)
        assert bool((gain > 6.0).all()), (times[k], gain)


def test_colour_images_get_the_shipped_colour_model_by_default():
    """flow() with no model: the shipped default for a grey image, DEFAULT_COLOUR_MODEL for a colour one, which
    computes the coupled colour flow: on a grey image in every channel it is the grey flow at t / sqrt(3)."""
    x = datasets.random_crops(datasets.builtin_pool("test", kind="photo"), 1, 32, generator=3)[0]      # (1, H, W)
    colour = tvflownet.load(DEFAULT_COLOUR_MODEL)
    assert colour.in_channels == 3
    rgb = x.expand(3, -1, -1)
    by_default = tvflownet.flow(rgb, [0.1])
    assert by_default.shape == (1, 3, 32, 32)
    assert bool((by_default == tvflownet.flow(rgb, [0.1], colour)).all())
    exact = tv_flow(x, [0.1 / 3 ** 0.5], dt=0.005, tol=1e-5)
    assert float(metrics.psnr(by_default[0], exact[0].expand(3, -1, -1))) > float(metrics.psnr(x, exact[0])) + 6
