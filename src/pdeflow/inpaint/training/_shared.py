"""What the mask-network and residual-inpainter trainers share."""
from __future__ import annotations

from pathlib import Path

import torch

from ...errors import UserInputError
from ...training import seed_everything


def start_run(cfg, check_config, run_dir, device) -> tuple[Path, torch.device]:
    """Check and seed from ``cfg``; ``run_dir`` and ``device`` as objects."""
    check_config(cfg)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    return Path(run_dir), torch.device(device)


def load_init(load, cfg):
    """The model ``cfg.init`` (``load``-ed with ``cfg.channels``), of ``cfg.widths``."""
    model = load(cfg.init, channels=cfg.channels)
    if model.config["widths"] != list(cfg.widths):
        raise UserInputError(f"init: {cfg.init} has widths {model.config['widths']}, the run {list(cfg.widths)}")
    return model


def densities(density, cfg) -> list[float]:
    """``[density]``, or all ``cfg.densities`` for a network of every density (None)."""
    return [float(density)] if density is not None else [float(d) for d in cfg.densities]


def tag(d: float) -> str:
    """A density in the metrics' names: ``05`` for 5 %."""
    return f"{round(100 * d):02d}"


def export_best(run, models: dict, export, metrics) -> None:
    """Finish ``run``, load its best state into ``models`` and ``export(metrics())`` with the final provenance."""
    run.finish()
    best = run.best_models()
    if best is not None:
        for name, model in models.items():
            model.load_state_dict(best[name])
        export(metrics())
