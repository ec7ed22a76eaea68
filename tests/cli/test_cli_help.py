"""Snapshot of ``pdeflow --help`` and of every subcommand's ``--help``.

The command line is a public interface: a refactoring must leave it unchanged.
Regenerate the snapshot after a deliberate change with
``python tests/cli/test_cli_help.py --update`` and review the diff (``python tests/cli/test_cli_help.py --show`` prints the
snapshot; it is kept gzipped, byte for byte reproducible, to keep the tracked tree small).
"""
from __future__ import annotations

import argparse
import difflib
import gzip
import json
import os
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parents[1].joinpath("data") / "cli_help.json.gz"


def snapshot() -> dict[str, str]:
    return json.loads(gzip.decompress(SNAPSHOT.read_bytes()))


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


def test_help_unchanged():
    expected = snapshot()
    got = all_help()
    assert sorted(got) == sorted(expected)
    for name in expected:
        diff = "".join(difflib.unified_diff(expected[name].splitlines(True), got[name].splitlines(True)))
        assert got[name] == expected[name], f"`{name} --help` changed:\n{diff}"


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--update"]:
        text = json.dumps(all_help(), indent=1, sort_keys=True) + "\n"
        SNAPSHOT.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
        print(f"wrote {SNAPSHOT}")
    elif sys.argv[1:] == ["--show"]:
        print(json.dumps(snapshot(), indent=1, sort_keys=True))
