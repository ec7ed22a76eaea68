"""Every ``--help`` text of the ``pdeflow`` command (the snapshot test in tests/cli and the wording checks of
tests/package)."""
from __future__ import annotations

import argparse
import os


def all_help() -> dict[str, str]:
    """``{"pdeflow ...": help text}`` for the command and every (nested) subcommand, at 100 columns."""
    from pdeflow.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        out: dict[str, str] = {}

        def walk(parser: argparse.ArgumentParser, name: str) -> None:
            out[name] = parser.format_help()
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for sub_name, sub in action.choices.items():
                        walk(sub, f"{name} {sub_name}")

        walk(build_parser(), "pdeflow")
        return out
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
