"""Training TVflowNET (Grossmann et al., 2022, sections 3 and 4.2): one loop, top to bottom.

    from pdeflow.tvflownet.train import TrainConfig, train
    train(TrainConfig(arch="semiresnet", crop="32", steps=20_000), "runs/semiresnet32")

or ``pdeflow train tvflownet --arch semiresnet --crop 32 --steps 20000 --run-dir runs/semiresnet32``.
The same call (or command) again resumes the run where it stopped; under
``torchrun`` every process runs the same loop (data parallel, one GPU per
process: each rank draws its own batch and the gradients are averaged over
the ranks before every step, see :func:`average_gradients`).

What a step does
----------------
1. Draw the step's batch from ``step_generator(seed, step, rank)`` and nothing
   else (so a resumed run sees exactly the batches the killed run would have):
   a crop size (fixed, or for ``crop="mixed"`` one size per step drawn in
   ``[mixed_min, mixed_max)``, the paper's mixed regime), ``batch_size``
   greyscale crops (colour ones with ``channels=3``: the model then learns the
   coupled colour flow) (reflect-padded where an image is smaller than the crop) of
   training photos picked uniformly at random, of which a fraction ``synthetic``
   is generated instead (:func:`pdeflow.datasets.scenes` of the
   ``synthetic_kinds``: flat disks, ellipses, rectangles, polygons, piecewise-smooth
   scenes), the augmentations that are on (:func:`augment`: contrast
   ``aug_gamma``, flips and quarter turns ``aug_dihedral``, intensity factor
   ``aug_scale`` of mean 1), all multiplied by ``scale`` (the paper feeds [0, 1]
   images times 5), and one flow time per crop, ``t = t_max U^t_power`` with
   ``U ~ U[0, 1)`` (uniform for the default ``t_power = 1``; a larger power
   samples the early times more often, where ``u_t`` is largest and most of
   Table 4's ``div phi`` error lies; see the results page "TVflowNET: the
   paper's Tables 1-9" for how the shipped models were trained).
   With ``times_per_image = k > 1`` the batch holds ``batch_size / k`` crops,
   each at ``k`` times of which the first is ``t = 0`` (the official code's
   mode that replicates one image over a batch of times: ``k = batch_size``).
   With ``ref_reuse = R > 1`` (supervised steps) the steps come in blocks of ``R``:
   the block's ``batch_size`` crops, each at ``R`` times, are drawn from the
   generator of its first step, their reference flow is solved once, and the
   ``R`` steps take its crop-time pairs in a shuffled order
   (:func:`reused_reference_batch`). The reference is most of a step's cost, and
   one flow to a crop's latest time serves all its times, so a step costs less.
2. The loss of the step's phase:

   * ``unsupervised`` -- Grossmann et al. (2022) eq. (12) (:class:`~pdeflow.tvflownet.TVFlowLoss`):
     ``a1 = a2 = 1e-4``, ``(|phi| - 1)_+`` and pdeflow's Neumann operators
     (``loss="paper"``), or the official code's loss, ``(|phi|^2 - 1)_+`` and
     its boundary convention for TV and div (``loss="official"``,
     :meth:`~pdeflow.tvflownet.TVFlowLoss.official`); ``u_t`` by
     forward-mode autodiff (``ut_method="jvp"``) or central differences.
   * ``supervised`` -- regression on the reference flow computed on the fly:
     :func:`pdeflow.tv.tv_flow` of the crops (implicit Euler, step ``ref_dt``,
     relative duality gap ``ref_tol``, at most ``ref_max_iter`` iterations per
     step) at the sampled times;
     ``mean (u - u_ref)^2``, plus ``phi_weight`` times ``mean (div phi - u_t,ref)^2``
     (``phi_target="div"``) or ``mean |phi - p_ref|^2`` (``"dual"``; the dual
     field is not unique where the image is flat, its divergence is); plus
     ``grad_weight`` times the relative squared error of the model's
     vector-Jacobian product ``d/du0 <u(t), w>`` against the reference flow's
     (:func:`reference_vjp`), for ``w = u_ref(t) -`` another crop of the batch (the
     cotangent of a loss ``0.5 ||u(t) - target||^2``), on the first ``grad_crops``
     crops: a derivative that training on the forward flow alone does not
     constrain. ``arch="ensemble"`` with ``init`` a trained ensemble fine-tunes all
     its members at once.
   * ``hybrid`` -- supervised for the first ``round(hybrid_fraction * steps)``
     steps, unsupervised after (the Adam state carries over).
3. Adam (``lr`` 3e-4), gradient norm clipped to ``clip`` (1.0), as the paper; the learning rate
   is constant (the paper's) or, with ``lr_schedule="cosine"``, falls to ``lr * lr_final`` over
   ``steps`` (a cool-down: branch a long constant-rate run with ``init=".../last.pt"``).
4. Every ``val_every`` steps and after the last one: validation PSNR (below);
   a new best writes ``best.pt`` and exports the model.

Data
----
``data`` names one or more sources (:func:`pdeflow.datasets.source_images`):
``"builtin"``, every built-in photo of the TRAIN split of every installed package
(scikit-image, PyWavelets, scikit-learn, matplotlib), and folders of images. The
built-in TEST photos (the evaluation's natural test images) and the medical
images (Table 5's) are never among them, and never validate.

Validation
----------
A fixed set of ``val_crops`` crops of ``val_size`` pixels (seed ``val_seed``)
from images training never sees: a held-out ``val_fraction`` of all the
sources' photos, chosen by a hash of their names (so the split depends neither
on the order of the sources nor on the order the files are listed in), or the
images of the folder ``val_data``. A run resumed on another validation set
(its images, or the rules that choose them, changed) chooses its best model
again from its next validation.
The reference is :func:`~pdeflow.tv.tv_flow` of ``scale * crops`` at
``val_times`` times ``linspace(0, t_max)`` (``val_dt``, ``val_tol``,
``val_max_iter``), computed
once per run and cached in ``<run_dir>/val_reference.pt`` (written atomically;
recomputed if the validation settings change). The metric is the PSNR of
``u / scale`` against ``u_ref / scale`` with data range 1 (the paper's
convention), over each crop's whole stack of times, capped at a PSNR of 100 (as the
evaluation's: a flat crop stays flat, and its identity answer is exact), averaged
over the crops.
The exported JSON also records ``val_psnr_identity``, the PSNR of the trivial
answer ``u(t) = u0`` on the same set: the baseline a network has to beat.

Reference step and iteration caps: ``ref_dt`` sets the accuracy of the
``u_t`` target more than anything else. ``u_t`` is the last implicit step's
difference quotient, an average over up to ``ref_dt`` of a velocity that
jumps whenever a level set of the image vanishes, which happens most often
early in the flow. A network can hardly beat its target, so the default
``ref_dt = 0.01`` is finer than the evaluation's reference steps (0.05): its
``u_t`` is closer both to the evaluation's grid and to the continuous flow,
for at most twice the CPU time per crop (the smaller steps start closer to
their solution). On flat shapes, whose velocity changes rarely, both steps
are equally close, within the solver's tolerance; ``u`` is accurate with
either. The JSON of every shipped model records the ``ref_dt`` it was
trained with, and the results page "TVflowNET: the paper's Tables 1-9" gives
the targets' accuracy. ``ref_max_iter``/``val_max_iter`` bound the
iterations of each implicit step; an uncapped solve costs about twice as much
for the same accuracy.

Run directory
-------------
``config.json``, ``last.pt`` (resume point), ``best.pt``, ``init.json`` (where the initial weights
came from, with ``init``), ``log.csv`` (loss
terms per step, ``val_psnr`` and ``cpu_time`` at validations), ``val_reference.pt`` and the
exported best model ``model.safetensors`` + ``model.json``
(:func:`pdeflow.io.save_model`): the JSON holds ``config``
(``{"model": <build_model kwargs>, "scale": ..., "t_max": ...}``, what
:func:`pdeflow.tvflownet.load` needs) and ``provenance`` (training config,
data, steps, wall time, the command, the validation PSNR).
``steps`` may be raised when resuming, to extend a finished run (for
``hybrid`` the switch point moves with it), and ``init`` may name anything (a
resumed run takes its weights from ``last.pt``); every other field must match.

References
----------
.. [1] T. G. Grossmann, S. Dittmer, Y. Korolev, C.-B. Schönlieb, "Unsupervised learning of the total
       variation flow", arXiv:2206.04406, 2022.
"""
from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

from .. import datasets
from ..errors import UserInputError
from ..io import save_model
from ..metrics import PSNR_CAP, psnr
from ..training import (
    CpuClock,
    Run,
    broadcast_object,
    check_finite,
    cleanup_distributed,
    clip_gradients,
    cosine_factor,
    get_rank,
    get_world_size,
    load_checkpoint,
    provenance,
    reduce_mean,
    save_checkpoint,
    seed_everything,
    setup_distributed,
    step_generator,
)
from ..tv import tv_flow
from ._train_config import MODES, RUN_FIELDS, TrainConfig, check_config, data_sources, recipe
from ._train_data import (
    augment,
    check_data,
    flowed_inputs,
    open_data,
    reused_reference_batch,
    sample_batch,
    synthetic_images,
)
from ._train_loss import (
    reference_vjp,
    supervised_loss,
    supervised_reference,
    supervised_steps,
    unsupervised_loss_fn,
)
from .architectures import build_model

__all__ = ["TrainConfig", "train", "check_config", "data_sources", "open_data", "check_data", "sample_batch",
           "flowed_inputs", "synthetic_images", "augment", "supervised_reference", "supervised_loss",
           "reference_vjp", "average_gradients",
           "validation_set", "validate", "identity_psnr", "MODES", "RUN_FIELDS", "recipe"]

# The run's configuration (_train_config), its batches (_train_data) and its losses (_train_loss) live in
# modules of their own; this one is the loop, its validation and its export.

def step_batch(cfg: TrainConfig, images: datasets.ImageSet, step: int, rank: int, block: dict | None, *,
               supervised: bool):
    """Step ``step``'s ``(u0, t, reference, block)``: :func:`reused_reference_batch` for a supervised
    step with ``ref_reuse > 1``, else :func:`sample_batch` of the step's generator, with no reference
    (``None``: :func:`supervised_loss` solves it) and ``block`` passed through."""
    if supervised and cfg.ref_reuse > 1:
        return reused_reference_batch(cfg, images, step, rank, block, dual=cfg.phi_weight > 0)
    return (*sample_batch(cfg, images, step_generator(cfg.seed, step, rank)), None, block)


def average_gradients(net: torch.nn.Module) -> None:
    """Average the gradients over the ranks (one all-reduce of a flat buffer); no-op on one process.

    Used instead of :func:`pdeflow.training.wrap_ddp`: the unsupervised loss
    evaluates the model inside ``torch.func.jvp``, and DDP's forward cannot run
    there (it rebuilds its gradient buckets in the second iteration's forward,
    which fails on functorch's tensors without storage). The result is DDP's:
    every rank steps with the mean gradient.

    Examples
    --------
    >>> import torch
    >>> from pdeflow.tvflownet.train import average_gradients
    >>> net = torch.nn.Linear(2, 1)
    >>> net(torch.ones(1, 2)).sum().backward()
    >>> before = net.weight.grad.clone()
    >>> average_gradients(net)  # one process: nothing to average
    >>> torch.equal(net.weight.grad, before)
    True
    """
    world = get_world_size()
    if world == 1:
        return
    params = [p for p in net.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


# --------------------------------------------------------------------------- validation


def validation_set(cfg: TrainConfig, images: datasets.ImageSet, run_dir: Path, *, progress: bool = False) -> dict:
    """The fixed validation crops and their reference flow, cached in ``run_dir/val_reference.pt``.

    Returns ``{"key", "u0" (N, C, S, S) in [0, 1], "times" (list), "ref" (K, N, C, S, S) in scaled units,
    "replaced"}``; ``replaced`` is True where the cache held another set (other images: the run's earlier
    validations scored another set). Rank 0 computes or reads it; other ranks receive it.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet.train import TrainConfig, validation_set
    >>> images = ImageSet(images=[torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0))], description={})
    >>> cfg = TrainConfig(val_crops=2, val_size=16, val_times=3)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     val = validation_set(cfg, images, d)
    >>> val["u0"].shape, len(val["times"]), val["ref"].shape
    (torch.Size([2, 1, 16, 16]), 3, torch.Size([3, 2, 1, 16, 16]))
    """
    key = {"data": images.description, "crops": cfg.val_crops, "size": cfg.val_size, "times": cfg.val_times,
           "t_max": cfg.t_max, "scale": cfg.scale, "dt": cfg.val_dt, "tol": cfg.val_tol, "max_iter": cfg.val_max_iter,
           "seed": cfg.val_seed}
    if cfg.channels != 1:                   # a grey run keeps the key it had before colour runs existed
        key["channels"] = cfg.channels
    path = Path(run_dir) / "val_reference.pt"
    val, replaced = None, False
    if get_rank() == 0:
        if path.exists():
            cached = load_checkpoint(path)
            if cached.get("key") == key:
                val = cached
            replaced = val is None
        if val is None:
            g = torch.Generator().manual_seed(cfg.val_seed)
            u0 = images.crops(cfg.val_crops, cfg.val_size, g)
            times = torch.linspace(0, cfg.t_max, cfg.val_times, dtype=torch.float64).tolist()
            ref = tv_flow(u0 * cfg.scale, times, dt=cfg.val_dt, tol=cfg.val_tol, max_iter=cfg.val_max_iter,
                          progress=progress, scheme="euler")
            val = {"key": key, "u0": u0, "times": times, "ref": ref}
            save_checkpoint(path, val)
        val = {**val, "replaced": replaced}
    return broadcast_object(val)


@torch.no_grad()
def validate(net, val: dict, cfg: TrainConfig, device: torch.device | str = "cpu") -> float:
    """Mean over the validation crops of the PSNR (data range 1, on ``u / scale``) over
    each crop's stack of times. Under DDP the crops are shared out and the result
    is the mean over all of them on every rank.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet import SemiResNet
    >>> from pdeflow.tvflownet.train import TrainConfig, validate, validation_set
    >>> images = ImageSet(images=[torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0))], description={})
    >>> cfg = TrainConfig(val_crops=2, val_size=16, val_times=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     val = validation_set(cfg, images, d)
    >>> psnr = validate(SemiResNet(width=4, depth=3), val, cfg)
    >>> isinstance(psnr, float)
    True
    """
    rank, world = get_rank(), get_world_size()
    u0 = val["u0"][rank::world].to(device) * cfg.scale
    ref = val["ref"][:, rank::world].to(device)
    was_training = net.training
    net.eval()
    try:
        pred = torch.stack([net(u0, float(t))[0] for t in val["times"]])       # (K, n, C, S, S)
    finally:
        net.train(was_training)
    stack = lambda x: x.transpose(0, 1).flatten(1, 2) / cfg.scale             # noqa: E731  (n, K, S, S)
    per_crop = (psnr(stack(pred), stack(ref), data_range=1.0).clamp(max=PSNR_CAP) if u0.shape[0]
                else u0.new_zeros(0))
    total = torch.stack([per_crop.sum().double(), torch.tensor(float(per_crop.numel()), dtype=torch.float64,
                                                               device=per_crop.device)])
    if world > 1:
        dist.all_reduce(total)
    return float(total[0] / total[1])


def identity_psnr(val: dict, cfg: TrainConfig) -> float:
    """The validation PSNR of the trivial answer ``u(t) = u0``: the baseline a network must beat.

    Examples
    --------
    >>> import tempfile, torch
    >>> from pdeflow.datasets import ImageSet
    >>> from pdeflow.tvflownet.train import TrainConfig, identity_psnr, validation_set
    >>> images = ImageSet(images=[torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0))], description={})
    >>> cfg = TrainConfig(val_crops=2, val_size=16, val_times=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     val = validation_set(cfg, images, d)
    >>> identity_psnr(val, cfg) > 10.0  # u(t) = u0 is close to the flow at small t
    True
    """
    ref = val["ref"] / cfg.scale
    u0 = val["u0"].unsqueeze(0).expand_as(ref)
    stack = lambda x: x.transpose(0, 1).flatten(1, 2)                           # noqa: E731
    return float(psnr(stack(u0), stack(ref), data_range=1.0).clamp(max=PSNR_CAP).mean())


# --------------------------------------------------------------------------- export


def _model_config(net, cfg: TrainConfig) -> dict:
    return {"model": net.config, "scale": float(cfg.scale), "t_max": float(cfg.t_max)}


def _export(state: dict, net, run_dir: Path, cfg: TrainConfig, run: Run, info: dict, clock: CpuClock) -> None:
    prov = {"trainer": "pdeflow.tvflownet.train", **run.best_record(), **clock.provenance(),
            "val_psnr": float(run.best), **info}
    save_model(state, run_dir / "model", config=_model_config(net, cfg), provenance=prov)


# --------------------------------------------------------------------------- the loop


def _init_from(net: torch.nn.Module, spec: str) -> dict:
    """Copy the weights of ``spec`` into ``net``; returns their description.

    ``spec``: a shipped name, a model path or run directory (its exported model), or a checkpoint
    file of a TVflowNET run (``last.pt``, ``best.pt``: the weights at that step, e.g. to branch a
    cool-down off a long run between its validations).
    """
    if str(spec).endswith(".pt"):
        return _init_from_checkpoint(net, Path(spec))
    from .api import load
    try:
        model = load(spec)
    except (FileNotFoundError, ValueError) as e:
        raise UserInputError(f"init: {e}") from None
    state, source = model.state_dict(), getattr(model, "in_channels", None)
    inflated = source is not None and source != net.in_channels
    if inflated:        # a grey model starts a colour run (TVflowNetModel.inflated_state)
        state = net.inflated_state(state, source)
    _load_weights(net, state, spec, model.meta["config"]["model"])
    prov = model.meta.get("provenance", {})
    return {"model": spec, "steps": prov.get("steps"), "val_psnr": prov.get("val_psnr"),
            "weights_sha256": model.meta.get("weights", {}).get("sha256"),
            **({"inflated_from_channels": source} if inflated else {})}


def _init_from_checkpoint(net: torch.nn.Module, path: Path) -> dict:
    try:
        ckpt = load_checkpoint(path)
        state = ckpt["models"]["net"]
        arch = ckpt["config"]["arch"], ckpt["config"].get("arch_kwargs", {})
    except FileNotFoundError:
        raise UserInputError(f"init: no checkpoint at {path}") from None
    except Exception as e:   # not a pdeflow checkpoint, truncated, or another trainer's
        raise UserInputError(f"init: {path} is not a readable TVflowNET run checkpoint ({type(e).__name__}: "
                             f"{e})") from None
    _load_weights(net, state, str(path), {"arch": arch[0], "arch_kwargs": arch[1]})
    # a checkpoint is no model file: its fingerprint is the SHA-256 of its tensors' bytes, in state order
    return {"checkpoint": str(path), "steps": int(ckpt["step"]),
            "state_sha256": hashlib.sha256(b"".join(v.detach().cpu().numpy().tobytes()
                                                    for v in state.values())).hexdigest()}


def _load_weights(net: torch.nn.Module, state: dict, spec: str, expected) -> None:
    """Strict load, except that parameters the architecture may grow (``grown_prefixes``, e.g. the
    U-Net's ``refine`` block) may be missing: they keep their initial values."""
    grown = tuple(getattr(net, "grown_prefixes", ()))
    state = {**{k: v for k, v in net.state_dict().items() if k.startswith(grown)}, **state}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise UserInputError(f"init: the weights of {spec!r} do not fit this run's architecture "
                             f"(arch and arch_kwargs must match {expected}): {e}") from None


def train(cfg: TrainConfig, run_dir, *, device: str | torch.device | None = None, quiet: bool = False,
          command: str | None = None) -> Path:
    """Train (or resume) a TVflowNET run in ``run_dir``; returns the path of the exported
    ``model.json`` (the best model by validation PSNR). See the module docstring.

    ``device``: default ``cuda:LOCAL_RANK`` if CUDA is available, else the CPU.
    ``command``: recorded in the exported JSON (default: this process's command line).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from pdeflow.io import write_image
    >>> from pdeflow.tvflownet.train import TrainConfig, train
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for k in range(3):
    ...         _ = write_image(Path(d) / f"p{k}.png", torch.full((1, 24, 24), k / 3))
    ...     cfg = TrainConfig(data=d, crop="16", steps=2, batch_size=2, arch_kwargs={"width": 4, "depth": 3},
    ...                       val_crops=1, val_size=16, val_times=2, val_every=2, ckpt_every=2, val_fraction=0.34)
    ...     path = train(cfg, Path(d) / "run", quiet=True)
    ...     print(path.name, sorted(p.name for p in path.parent.glob("model.*")))
    model.json ['model.json', 'model.safetensors']
    """
    check_config(cfg)
    run_dir = Path(run_dir)
    rank, world_size, default_device = setup_distributed()
    device = torch.device(device) if device is not None else default_device
    seed_everything(cfg.seed, deterministic=cfg.deterministic)       # same initial weights on every rank
    train_images, val_images = open_data(cfg)
    for note in check_data(cfg, train_images, val_images):     # before the run directory gets anything
        if rank == 0:
            warnings.warn(note, stacklevel=2)

    net = build_model(cfg.arch, **cfg.arch_kwargs, **({} if cfg.arch == "ensemble" else
                                                       {"in_channels": cfg.channels})).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    unsupervised = unsupervised_loss_fn(cfg)
    clock = CpuClock()
    # init only seeds a fresh run: a resumed one takes its weights from last.pt, so its --init may name
    # another copy of the same weights (or one that is gone, on another machine). Loaded before the
    # Run makes the directory, so that a bad --init leaves nothing behind; the record of where the
    # weights came from (the provenance's init) is kept in init.json for the resumed run.
    resuming = (run_dir / "last.pt").exists()
    loaded = _init_from(net, cfg.init) if cfg.init is not None and not resuming else None
    run = Run(run_dir, cfg, models={"net": net}, optimizers={"opt": opt}, extra={"cpu": clock},
              ckpt_every=cfg.ckpt_every, best_mode="max", allow_changed=("steps", "init", "ref_reuse"), quiet=quiet)
    start = run.resume()
    init_info = None if cfg.init is None else run.cached_json(   # a run started before init.json: its name
        "init.json", lambda: loaded or {"model": cfg.init})
    show = rank == 0 and not quiet and sys.stderr.isatty()
    val = validation_set(cfg, val_images, run_dir, progress=show)
    if val["replaced"] and start > 0 and run.best is not None:
        # a run resumed on another validation set (its images changed, or the rules that pick them):
        # its best so far was measured on the old set, so checkpoint selection starts again
        if rank == 0:
            warnings.warn(f"train: the validation set of {run_dir} changed since its best model (step "
                          f"{run.best_step + 1}, {run.best:.2f} dB on the old set); the best model is chosen "
                          "again from the next validation on", stacklevel=2)
        run.best, run.best_step = None, None
    n_supervised = supervised_steps(cfg)
    info = provenance(cfg, command=command, device=device,
                      data={"train": train_images.description, "validation": val_images.description},
                      validation={k: v for k, v in val["key"].items() if k != "data"},
                      val_psnr_identity=identity_psnr(val, cfg), world_size=world_size,
                      **({"init": init_info} if init_info is not None else {}))

    block = None                                                 # the crops and reference of ref_reuse's block
    for step in run.steps(start, cfg.steps):
        if cfg.lr_schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = cfg.lr * cosine_factor(step, cfg.steps, cfg.lr_final)
        u0, t, ref, block = step_batch(cfg, train_images, step, rank, block, supervised=step < n_supervised)
        u0, t = u0.to(device), t.to(device)
        if ref is not None:
            ref = ref.to(device) if torch.is_tensor(ref) else tuple(x.to(device) for x in ref)
        if step < n_supervised:
            loss, terms = supervised_loss(net, u0, t, cfg, reference=ref)
        else:
            loss, terms = unsupervised(net, u0, t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(net)                                   # DDP: the mean over ranks
        grad_norm = clip_gradients(net, cfg.clip)
        opt.step()

        logged = reduce_mean(torch.tensor([float(loss.detach()), *terms.values()], dtype=torch.float64,
                                          device=device))          # on the device: NCCL reduces CUDA tensors
        check_finite(step, "resume with a smaller --lr or with --clip", loss=float(logged[0]))   # same on every rank
        run.log(step, loss=logged[0], **{name: logged[1 + i] for i, name in enumerate(terms) if name != "total"},
                **({"grad_norm": reduce_mean(grad_norm)} if grad_norm is not None else {}),
                crop=u0.shape[-1])
        if run.validation_due(step, cfg.val_every):
            run.log(step, cpu_time=clock.seconds)    # CPU seconds of training so far: PSNR against CPU time
            val_psnr = validate(net, val, cfg, device)
            if run.log_validation(step, {"val_psnr": val_psnr}, key="val_psnr") and rank == 0:
                _export(net.state_dict(), net, run_dir, cfg, run, info, clock)
    run.finish()

    # the exported model is the best one; (re)write it from best.pt with the final provenance
    best = run.best_models()                # rank 0 only
    if best is not None:
        _export(best["net"], net, run_dir, cfg, run, info, clock)
    cleanup_distributed()
    return run_dir / "model.json"

