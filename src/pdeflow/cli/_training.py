"""What every ``pdeflow train NAME`` shares: its run options, its checks, running the trainer."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserInputError
from ._arguments import check_data_dir, check_device, positive_int
from ._errors import CLIError
from ._outputs import check_writable_dir


def config_error_as_argument(msg: str, args) -> str:
    """A trainer's config error (``"TrainConfig.lr: ..."``, ``"init: ..."``) as a command-line error that
    names the option (``"argument --lr: ..."``); other messages unchanged."""
    head, sep, rest = msg.partition(": ")
    field = head.rsplit(".", 1)[-1]
    if sep and field.isidentifier() and hasattr(args, field) and (head == field or head.endswith("Config." + field)):
        return f"argument --{field.replace('_', '-')}: {rest}"
    return msg


def check_trainer_args(args, config_from_args, check_config) -> None:
    """The checks every ``pdeflow train NAME`` shares: ``--data``/``--val-data`` folders,
    ``--device``, and the trainer's own config check, each a usage error naming the argument."""
    check_data_dir(args.parser, "--data", args.data)
    check_data_dir(args.parser, "--val-data", args.val_data)
    if args.device is not None:
        check_device(args.parser, args.device)
    try:
        check_config(config_from_args(args))
    except UserInputError as e:
        args.parser.error(config_error_as_argument(str(e), args))


def run_trainer(args, cfg, train) -> Path:
    """Run ``train(cfg, run_dir, device=, quiet=, command=)`` for a ``pdeflow train NAME`` command.

    Sets ``--threads``, records the command line in the run's provenance and turns the
    trainer's configuration errors into :class:`CLIError`. Returns what ``train`` returns
    (the exported model's JSON path).
    """
    from ..training import RunConfigError, invoked_command

    check_writable_dir(args.run_dir, "--run-dir")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return train(cfg, Path(args.run_dir), device=args.device, quiet=args.quiet, command=invoked_command())
    except RunConfigError as e:
        raise CLIError(f"argument --run-dir: {e}") from None
    except UserInputError as e:            # a config field found bad while setting up (data, init)
        raise CLIError(config_error_as_argument(str(e), args)) from None
    except FloatingPointError as e:        # a diverged run: its checkpoints are intact and resumable
        raise CLIError(str(e)) from None


def trainer_options(device_help: str) -> dict:
    """The options every ``pdeflow train NAME`` has besides its config (for :func:`add_config_options`)."""
    return {
        "--run-dir": lambda g: g.add_argument(
            "--run-dir", required=True, metavar="DIR",
            help="run directory (created; if it holds this run, training resumes from its last checkpoint)"),
        "--device": lambda g: g.add_argument("--device", default=None, help=device_help),
        "--threads": lambda g: g.add_argument("--threads", type=positive_int, default=None,
                                              help="torch CPU threads (default: torch's)"),
        "--quiet": lambda g: g.add_argument(
            "--quiet", action="store_true",
            help="no progress bar or progress lines; warnings raised in training are still summarised once at the end"),
    }
