"""``pdeflow models``: the shipped models, from the one model registry (:mod:`pdeflow.models`).

``add_parsers(sub)`` registers the subcommand on the top-level subparsers of ``pdeflow``.
"""
from __future__ import annotations

from .. import models as registry
from ._arguments import add_command

__all__ = ["add_parsers"]

_COLUMNS = ("name", "pillar", "kind", "parameters", "size", "training", "purpose", "provenance")


def _size(n: int) -> str:
    return f"{n / 1024 ** 2:.1f} MiB" if n >= 1024 ** 2 else f"{n / 1024:.0f} KiB"


def _run_models(args) -> int:
    """List the models that ship with pdeflow: name (what a loader takes), pillar, kind, parameters, size of the
    weights, how it was trained (TVflowNET: supervised by the exact flow, unsupervised by the paper's loss (12),
    or hybrid), what it was trained for and its provenance (trainer, steps, date). Writes nothing."""
    rows = [{**r, "parameters": f"{r['parameters']:,}", "size": _size(r["size"])}
            for r in registry.describe(args.pillar)]
    widths = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in _COLUMNS[:-1]}
    print("  ".join(c.ljust(widths[c]) for c in _COLUMNS[:-1]) + "  provenance")
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in _COLUMNS[:-1]) + "  " + r["provenance"])
    return 0


def add_parsers(sub) -> None:
    """Add ``pdeflow models`` to the top-level subparsers ``sub``."""
    p = add_command(sub, "models", _run_models, examples=["pdeflow models", "pdeflow models --pillar inpaint"])
    p.add_argument("--pillar", choices=sorted(registry.WEIGHTS_DIRS), default=None,
                   help="only the models of this pillar (default: all)")
