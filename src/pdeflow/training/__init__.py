"""The one training toolkit: seeds, resumable runs, atomic checkpoints, logs, DDP.

This module is a handful of small helpers, not a framework: a trainer keeps its
own loop, written top to bottom, and calls into :class:`Run` for the
bookkeeping. Every trainer in pdeflow (TVflowNET, the IEL segmentation
experiment, the inpainting WGANs) follows the same shape::

    @dataclass
    class Config:                      # one dataclass per trainer; saved as config.json
        seed: int = 0
        steps: int = 10_000
        batch_size: int = 16
        lr: float = 3e-4
        clip: float | None = 1.0

    def train(cfg: Config, run_dir: str) -> None:
        rank, world_size, device = setup_distributed()        # torchrun or a plain process
        seed_everything(cfg.seed, deterministic=False)         # same init on every rank
        net = Net().to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        model = wrap_ddp(net, device)                          # identity when world_size == 1
        run = Run(run_dir, cfg, models={"net": net}, optimizers={"opt": opt})
        start = run.resume()                                   # 0, or the step after last.pt
        for step in run.steps(start, cfg.steps):               # progress bar + periodic last.pt
            g = step_generator(cfg.seed, step, rank)           # this step's data, nothing else
            x = sample_batch(pool, cfg.batch_size, generator=g).to(device)
            loss = loss_fn(model, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients(net, cfg.clip)
            opt.step()
            run.log(step, loss=reduce_mean(loss.detach()))
            if (step + 1) % 1000 == 0:
                run.update_best(step, reduce_mean(validate(net)))   # best.pt, mode "min"
        run.finish()                                           # last.pt, log flushed
        cleanup_distributed()

What every trainer repeats has one home here: :class:`ConfigCheck` (range checks naming the field;
``need.trainer()`` for the fields all trainers have), :func:`provenance` (command, config, data and
device of an exported model), :meth:`Run.validation_due`, :meth:`Run.log_validation`,
:meth:`Run.best_record`, :meth:`Run.best_models` (validate, keep the best, re-export it at the end),
:meth:`Run.cached_json` (a value computed once per run directory), :class:`CpuClock` and
:func:`cosine_factor`.

A trainer with two optimisers (a WGAN's generator and critic) passes both:
``Run(..., models={"gen": G, "critic": D}, optimizers={"gen": opt_g, "critic":
opt_d})`` and writes its inner critic loop inside the step.

Resumability contract
---------------------
A run killed at any point and restarted with the same command and config
continues from ``last.pt`` and, on CPU in deterministic mode, ends with weights
bit-identical to an uninterrupted run. This holds because everything a step
depends on is either in the checkpoint (weights, optimiser and scheduler
states, the global RNG states of every rank, the best metric, the elapsed
time) or a pure function of ``(seed, step, rank)``:

**the step-generator pattern.** A step draws all its random data (which images,
which crops, which flow times, which masks) from ``step_generator(seed, step,
rank)``, a fresh ``torch.Generator`` seeded from those three numbers, and from
nothing else. There is no data-loader state to save, a resumed run draws
exactly the batches the killed run would have drawn, and each DDP rank gets its
own data. For a finite data set visited in epochs, :func:`batch_indices` gives
the indices of the step's batch (a fresh permutation per epoch, sharded
across ranks), again a pure function of ``(seed, step, rank)``. Use
``stream=1, 2, ...`` for independent draws in one step (e.g. a fixed
validation set: ``step_generator(seed, 0, stream=1)``). Randomness inside the
model (dropout) comes from the global RNG, which the checkpoint restores.

Checkpoint step convention: ``checkpoint["step"]`` is the number of completed
steps, i.e. the loop index the resumed run starts at. ``last.pt`` is written
every ``ckpt_every`` completed steps and at the end; steps after it are
replayed on resume and the rows they logged are dropped from ``log.csv``.

Distributed runs
----------------
Under ``torchrun`` every rank runs the same loop. Only rank 0 writes files
(config.json, checkpoints, log.csv, TensorBoard) and shows the progress bar;
rank 0 reads ``last.pt`` and broadcasts it, so the run directory need not be
on a shared file system. :meth:`Run.resume`, :meth:`Run.steps` (its periodic
checkpoints), :meth:`Run.update_best` and :meth:`Run.finish` are collective:
call them on every rank. Metrics passed to ``update_best`` should already be
averaged over ranks (:func:`reduce_mean`); rank 0's value decides.

Checkpoints (``last.pt``, ``best.pt``) are internal and written with
``torch.save``; a model that is shipped is exported with :func:`pdeflow.io.save_model`
as safetensors weights plus a JSON of its configuration and provenance.
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import (
    ConfigCheck,
    ckpt_every_option,
    config_to_dict,
    is_number,
    load_config,
    option,
    save_config,
    val_every_option,
)
from .distributed import (
    broadcast_object,
    cleanup_distributed,
    get_rank,
    get_world_size,
    reduce_mean,
    setup_distributed,
    unwrap,
    wrap_ddp,
)
from .run import (
    WARNING_WORDING,
    CpuClock,
    Run,
    RunConfigError,
    check_finite,
    clip_gradients,
    cosine_factor,
    invoked_command,
    provenance,
)
from .seeding import batch_indices, seed_everything, step_generator, step_seed

__all__ = [
    # config
    "save_config", "load_config", "config_to_dict", "ConfigCheck", "is_number", "option", "val_every_option",
    "ckpt_every_option",
    # seeds and data
    "seed_everything", "step_seed", "step_generator", "batch_indices",
    # files
    "save_checkpoint", "load_checkpoint",
    # distributed
    "setup_distributed", "cleanup_distributed", "wrap_ddp", "unwrap", "reduce_mean",
    "get_rank", "get_world_size", "broadcast_object",
    # loop helpers
    "clip_gradients", "check_finite", "cosine_factor", "Run", "RunConfigError", "CpuClock", "invoked_command",
    "provenance", "WARNING_WORDING",
]
