"""The names the ``pdeflow`` subcommands used to import from here, re-exported from their modules.

The shared plumbing of the command lives in one module per concept: :mod:`._errors` (the command's
errors), :mod:`._arguments` (the parser, argument types, shared options), :mod:`._outputs` (all output
files or none), :mod:`._inputs` (IMAGE: files, built-in images, volumes) and :mod:`._training` (what every
``pdeflow train NAME`` shares). A subcommand imports from those; this module keeps the old imports
working until the last one moves.
"""
from ._arguments import (  # noqa: F401
    TYPES,
    ArgumentParser,
    add_command,
    add_compute_args,
    add_config_options,
    add_output_args,
    check_compute,
    check_data_dir,
    check_device,
    config_kwargs,
    density,
    density_or_all,
    nonneg_float,
    nonneg_floats,
    nonneg_int,
    positive_float,
    positive_floats,
    positive_int,
    setup_compute,
    ssim_size,
)
from ._errors import (  # noqa: F401
    PROG,
    CLIError,
    OutputWriteError,
    Terminated,
)
from ._inputs import (  # noqa: F401
    DEFAULT_BUILTIN,
    DEFAULT_BUILTIN_SIZE,
    SIZE_HELP,
    SPACING_HELP,
    VOLUME_FORMAT_HELP,
    VOLUME_HELP,
    VolumeInput,
    add_volume_args,
    centre_crop,
    check_nd_solver,
    check_volume_args,
    load_input,
    load_volume,
    print_spacing,
)
from ._outputs import (  # noqa: F401
    Outputs,
    check_writable_dir,
    report_written,
    time_labels,
)
from ._training import (  # noqa: F401
    check_trainer_args,
    config_error_as_argument,
    run_trainer,
    trainer_options,
)
