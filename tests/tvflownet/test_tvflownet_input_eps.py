"""The normalised-gradient input's ``input_eps``: its derivative, the config round trip, the shipped
``default`` built with it and the other shipped models unchanged where it is not set."""
import json

import pytest
import torch

from pdeflow import tvflownet
from pdeflow.errors import UserInputError
from pdeflow.ops import grad
from pdeflow.tvflownet import Ensemble, build_model, normalised_gradient, with_input_eps

ARCHS = ["semiresnet", "unet", "lgd"]
TINY = {"semiresnet": dict(width=3, depth=3, n_relu=0), "unet": dict(scales=2, skip=1, channels=(3, 4)),
        "lgd": dict(n_steps=2, dim_z=1, hidden=3)}

# torch.func.jvp loads its decompositions with torch.jit.script once, which warns in torch >= 2.9
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _image(seed=0, size=(7, 6)):
    """A generic float64 image with a flat patch (|grad u| = 0 there, where eps matters most)."""
    u = 5 * torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    u[..., :3, :3] = 1.0
    return u


@pytest.mark.parametrize("eps", [0.03, 0.3])
def test_normalised_gradient_derivative_against_central_differences(eps):
    u = _image().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: normalised_gradient(v, eps), (u,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_normalised_gradient_is_grad_over_eps_at_a_flat_image():
    """At u = const the map is linear to first order: its derivative along v is grad(v) / eps exactly,
    so the derivative's size is 1 / eps (what makes eps = 1e-4 useless for gradients)."""
    u = torch.full((1, 1, 6, 5), 2.0, dtype=torch.float64)
    v = torch.randn(1, 1, 6, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for eps in (1e-4, 0.1):
        _, jv = torch.func.jvp(lambda x: normalised_gradient(x, eps), (u,), (v,))
        assert torch.allclose(jv, grad(v).unsqueeze(1) / eps, rtol=1e-12, atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_model_gradient_wrt_u0_against_central_differences(arch):
    """gradcheck (float64 central differences) of a tiny model with input_eps at a generic image with
    a flat patch, through the normalised-gradient input."""
    torch.manual_seed(0)
    model = build_model(arch, **TINY[arch], edge_width=0, input_eps=0.1).double()
    u0 = _image(2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: model(x, 0.4), (u0,), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("name", ["default", "unet", "lgd10", "semiresnet", "lgd"])
def test_input_eps_makes_the_shipped_models_nonexpansive_at_flat_pixels(name):
    """The TV flow is nonexpansive in L2 (||S(u) - S(w)|| <= ||u - w||), so its derivative along a unit
    perturbation has norm <= 1. The shipped models, perturbed at a flat pixel: with the input they
    were trained with (eps = 1e-4) the derivative is of order 1 / eps (over 50), with input_eps = 0.1
    (the shipped ``default``'s) below 1."""
    model = with_input_eps(tvflownet.load(name).double(), None)
    smooth = with_input_eps(model, 0.1)
    u0 = _image(3, (16, 16))
    for px in ((0, 0), (1, 1), (2, 1)):
        v = torch.zeros_like(u0)
        v[..., px[0], px[1]] = 1.0

        def jvp_norm(m):
            return float(torch.func.jvp(lambda x: m(x, 0.4)[0], (u0,), (v,))[1].norm())

        assert jvp_norm(model) > 50
        assert jvp_norm(smooth) < 1


@pytest.mark.parametrize("arch", ARCHS)
def test_config_round_trip(arch, tmp_path):
    from pdeflow.io import save_model
    model = build_model(arch, **TINY[arch], input_eps=0.25)
    config = json.loads(json.dumps(model.config))
    assert config["input_eps"] == 0.25 and model.gradient_eps == 0.25
    again = build_model(**config)
    assert again.config == model.config
    again.load_state_dict(model.state_dict())
    u0 = _image(4).float()
    assert torch.equal(again(u0, 0.3)[0], model(u0, 0.3)[0])
    # through a model file and the loader
    save_model(model.state_dict(), tmp_path / "m", config={"model": model.config, "scale": 5.0, "t_max": 1.0})
    loaded = tvflownet.load(tmp_path / "m.json")
    assert loaded.config == model.config
    assert torch.equal(loaded(u0, 0.3)[1], model(u0, 0.3)[1])
    # without the option the config has no key: files written before it are unchanged
    assert "input_eps" not in build_model(arch, **TINY[arch]).config


def test_with_input_eps_copies_an_ensemble_and_changes_only_the_input():
    torch.manual_seed(0)
    members = [build_model("semiresnet", **TINY["semiresnet"]), build_model("lgd", **TINY["lgd"])]
    ens = Ensemble(members, weights=[1, 2])
    smooth = with_input_eps(ens, 0.2)
    assert [m["input_eps"] for m in smooth.config["members"]] == [0.2, 0.2]
    assert all("input_eps" not in m for m in ens.config["members"])        # the original is untouched
    rebuilt = build_model(**json.loads(json.dumps(smooth.config)))
    rebuilt.load_state_dict(smooth.state_dict())
    u0 = _image(5).float()
    assert torch.equal(rebuilt(u0, 0.5)[0], smooth(u0, 0.5)[0])
    assert not torch.equal(smooth(u0, 0.5)[0], ens(u0, 0.5)[0])
    back = with_input_eps(smooth, None)
    assert back.config == ens.config and torch.equal(back(u0, 0.5)[0], ens(u0, 0.5)[0])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "x"])
def test_bad_input_eps_is_refused(bad):
    with pytest.raises(UserInputError, match="input_eps"):
        build_model("semiresnet", input_eps=bad)
    with pytest.raises(UserInputError, match="input_eps"):
        with_input_eps(build_model("semiresnet", **TINY["semiresnet"]), bad)
    with pytest.raises(UserInputError, match="model"):
        with_input_eps(torch.nn.Conv2d(1, 1, 3), 0.1)


def test_shipped_default_is_a_fine_tune_of_its_members_with_input_eps(tmp_path):
    """The shipped ``default`` has the architecture of the ensemble of the shipped ``unet`` and ``lgd10`` with every
    member's input at input_eps = 0.1, and was fine-tuned from exactly that ensemble, in three recorded stages,
    each from the one before. The members ship in float16 (their float32 files are in git history): the ensemble
    of the shipped members, stored in float16, is the float32 start's float16 copy, whose checksum the provenance
    records beside the start's own."""
    import hashlib

    from pdeflow.io import save_model
    default = tvflownet.load("default")
    assert [m.input_eps for m in default.members] == [0.1, 0.1]
    prov = default.meta["provenance"]
    assert prov["input_eps"] == 0.1
    built = tvflownet.ensemble(["unet", "lgd10"], weights=[1, 2], phi_weights=[1, 3], input_eps=0.1)
    assert built.config == default.config
    weights_file, _ = save_model(built.state_dict(), tmp_path / "start", config=built.meta["config"],
                                 stored_dtype="float16")
    start_sha = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    shipped = prov["shipped"]
    assert shipped["start_weights_float16_sha256"] == start_sha
    assert shipped["start_weights_sha256"] == shipped["stage_1"]["init"]["weights_sha256"]
    assert shipped["stage_2"]["init"]["weights_sha256"] == shipped["stage_1_weights_sha256"]   # 2 from 1
    assert prov["init"]["weights_sha256"] == shipped["stage_2_weights_sha256"]                  # 3 from 2
    assert [s["run"] for s in shipped["training_stages"]] == ["start", "stage 1", "stage 2", "stage 3"]
    assert "--input-eps 0.1" in shipped["training_stages"][0]["command"]
    stage3 = shipped["training_stages"][3]
    assert stage3["command_as_run"] == prov["command"] and "--flowed 0.5 --flowed-max 3" in stage3["command"]
    assert not all(torch.equal(v, default.state_dict()[k]) for k, v in built.state_dict().items())


@pytest.mark.parametrize("name", ["unet", "lgd10", "semiresnet", "lgd"])
def test_shipped_models_keep_their_input(name):
    """The other shipped files have no input_eps: their input is eps's, bit for bit the same computation as
    an explicit input_eps equal to eps (the code path before the option existed)."""
    model = tvflownet.load(name)
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    assert all("input_eps" not in m.config and m.input_eps is None and m.gradient_eps == m.eps == 1e-4
               for m in members)
    explicit = with_input_eps(model, 1e-4)
    u0 = _image(6, (20, 18)).float()
    u, phi = model(u0, 0.3)
    u2, phi2 = explicit(u0, 0.3)
    assert torch.equal(u, u2) and torch.equal(phi, phi2)


def test_flow_is_differentiable_in_u0_with_the_shipped_default():
    """``tvflownet.flow`` records a graph only when ``u0`` requires grad; its gradient (the wrapper and the
    transposition mean over the shipped default, whose input has input_eps 0.1) passes gradcheck in float64
    at a generic image, time and cotangent, and has the scale of the flow's (a nonexpansive map: a unit
    cotangent gives a gradient of norm about 1 or less, not 1 / eps)."""
    model = tvflownet.load("default").double()
    u0 = _image(7, (6, 6)).requires_grad_(True)
    assert not tvflownet.flow(u0.detach(), [0.3], model).requires_grad
    assert torch.autograd.gradcheck(lambda x: tvflownet.flow(x, [0.4], model), (u0,), eps=1e-6,
                                    atol=1e-6, rtol=1e-4)
    u = tvflownet.flow(u0, [0.5], model)
    w = torch.randn(u.shape, generator=torch.Generator().manual_seed(1), dtype=u.dtype)
    (g,) = torch.autograd.grad((u * w / w.norm()).sum(), u0)
    assert 0.05 < float(g.norm()) < 2
