"""The subcommands of ``pdeflow``: the module that adds each, and each one's line in ``pdeflow --help``.

:func:`pdeflow.cli.build_parser` reads this table so that ``pdeflow --version``, ``pdeflow --help`` and a usage
error import no subcommand module, and a subcommand imports only its own module (with the parts of the library
that it needs): a subcommand module and the library behind it take seconds to import, the table nothing.
"""
from __future__ import annotations

#: The command groups: name -> (help line, description, dest, metavar).
GROUPS = {
    "train": ("train a network (tvflownet, ...)",
              "Train a network. Runs are resumable: the same command again continues a killed run from its last "
              "checkpoint. Under torchrun every process runs the same loop (DDP).", "model", "MODEL"),
    "evaluate": ("reproduce a paper's evaluation (tables and figures)",
                 "Reproduce the evaluation protocol of a paper.", "evaluate_what", "WHAT"),
}

#: ``(group, module, adding function, {subcommand: help line})`` in the order of ``pdeflow --help``: the function
#: ``pdeflow.cli.MODULE.FUNCTION(sub)`` adds the subcommands to ``sub``, the subparsers of ``pdeflow`` (group
#: ``""``) or of a command group; a group itself comes at its first row.
ADDERS: list[tuple[str, str, str, dict[str, str]]] = [
    ("", "denoise", "add_parsers", {"denoise": "TV denoising (ROF) of an image for one or more weights lambda"}),
    ("", "flow", "add_parsers", {"flow": "TV flow of an image at given times"}),
    ("", "spectral", "add_parsers", {"spectral": "spectral TV decomposition: bands, residual, spectrum"}),
    ("", "samples", "add_parsers", {"samples": "list the built-in images"}),
    ("", "flow", "add_demo_parser", {"demo": "TV flow and spectral TV of the camera image (what `make run` runs)"}),
    ("train", "tvflownet", "add_train_parser",
     {"tvflownet": "train TVflowNET, the network that learns the TV flow (Grossmann et al., 2022)"}),
    ("train", "tvflownet", "add_average_parser",
     {"tvflownet-average": "average the weights of trained TVflowNETs of one architecture (a model soup)",
      "tvflownet-ensemble": "average the outputs of trained TVflowNETs, of any architectures (an ensemble: one "
                            "network call per model)"}),
    ("evaluate", "tvflownet", "add_evaluate_parser",
     {"tvflownet": "TVflowNET models vs the reference TV flow: the paper's Tables 1-7 and 9"}),
    ("", "iel", "add_parsers",
     {"iel-experiment": "noisy-label segmentation with and without inverse evolution layers (Liu et al., 2023)"}),
    ("train", "inpaint_train", "add_train_parsers",
     {"inpainting": "train the inpainting GANs (Peter, 2022), or a stage of the learned masks",
      "masknet": "train a mask network (learned correction of the analytic mask density)",
      "residual": "train the residual inpainter (diffusion plus a learned correction), or fine-tune a mask network "
                  "with it"}),
    ("evaluate", "inpaint_evaluate", "add_evaluate_parser",
     {"inpainting": "masks and inpainting of Peter (2022): random, PS, PS+NLPE, inpainting WGAN, mask GAN (Tables "
                    "2-4); analytic and learned masks, residual inpainter"}),
    ("evaluate", "codec", "add_evaluate_parser",
     {"codec": "rate-distortion curves of pdeflow's codec against JPEG, JPEG 2000, WebP, AVIF and JPEG XL"}),
    ("", "inpaint", "add_parsers",
     {"mask": "choose the known pixels of a sparse inpainting mask (analytic, learned, densified, random, PS, "
              "PS+NLPE, mask GAN)",
      "inpaint": "inpaint an image from the known pixels of a mask, or fill holes (diffusion and the other PDE "
                 "operators, learned; WGAN from a model you trained)"}),
    ("", "codec", "add_parsers", {"compress": "compress an image to a byte budget with pdeflow's codec (sparse pixels "
                                              "+ inpainting)",
                                  "decompress": "decode a file of `pdeflow compress` to an image"}),
    ("", "models", "add_parsers", {"models": "list the shipped models (name, pillar, size, provenance)"}),
]


def help_line(group: str, name: str) -> str:
    """The line of subcommand ``name`` (of ``group``, ``""`` for ``pdeflow`` itself) in its parent's ``--help``."""
    for g, _, _, commands in ADDERS:
        if g == group and name in commands:
            return commands[name]
    raise KeyError(f"no subcommand {' '.join(filter(None, (group, name)))!r} in pdeflow.cli._commands.ADDERS")


def requested(argv) -> tuple[str, str] | None:
    """``(group, name)`` of the subcommand that the command line ``argv`` runs (``("", "compress")``,
    ``("train", "tvflownet")``), a group alone (``("", "train")``) or ``None`` (none given: ``--version``,
    ``--help``)."""
    words = [a for a in argv if not a.startswith("-")]   # pdeflow's own options take no values
    if not words:
        return None
    if words[0] in GROUPS and len(words) > 1:
        return words[0], words[1]
    return "", words[0]
