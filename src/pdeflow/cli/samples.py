"""``pdeflow samples``: the built-in images (what IMAGE = builtin:NAME takes), listed and shown.

``add_parsers(sub)`` registers the subcommand on the top-level subparsers of ``pdeflow``.
"""
from __future__ import annotations

import math

from .. import datasets, viz
from ._arguments import add_command, add_output_args
from ._outputs import Outputs, report_written

__all__ = ["add_parsers"]


def _register_samples(sub) -> None:
    p = add_command(sub, "samples", _run_samples)
    add_output_args(p, required=False)


def _run_samples(args) -> int:
    """List the built-in images (shipped inside installed Python packages, nothing is downloaded): name, size,
    kind and train/test split. With --out, also write a contact sheet (samples.png)."""
    out = Outputs(args.out, ["samples.png"], overwrite=args.overwrite) if args.out else None
    names = datasets.builtin_names()
    images, rows = {}, []
    for name in names:
        info = datasets.builtin_info(name)
        img = datasets.builtin_image(name, grey=None)
        images[name] = img
        C, H, W = img.shape
        rows.append((name, f"{H}x{W}", "grey" if C == 1 else "colour", info["kind"], info["split"], info["note"]))
    header = ("name", "size", "channels", "kind", "split", "note")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header) - 1)]
    for r in [header] + rows:
        print(("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + r[-1]).rstrip())
    print(f"{len(names)} images; use them as IMAGE = builtin:NAME")
    if out is not None:
        with out:
            ncols = 6
            nrows = math.ceil(len(names) / ncols)
            fig = viz.figure(2.2 * ncols, 2.4 * nrows + 0.4)
            panels = [(img.clamp(0, 1), f"{n}\n{img.shape[-2]}x{img.shape[-1]}, {datasets.builtin_info(n)['split']}")
                      for n, img in images.items()]
            viz.image_grid(fig, panels, ncols)
            for ax in fig.axes:
                ax.title.set_fontsize(7)
            fig.suptitle(f"pdeflow built-in images ({len(names)}): name, size, split", fontsize=10)
            out.figure("samples.png", fig)
        report_written(out)
    return 0


def add_parsers(sub) -> None:
    """Register ``pdeflow samples`` on the top-level subparsers."""
    _register_samples(sub)
