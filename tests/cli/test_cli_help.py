"""Snapshot of ``pdeflow --help`` and of every subcommand's ``--help``.

The command line is a public interface: a refactoring must leave it unchanged.
Regenerate the snapshot after a deliberate change with
``python tests/cli/test_cli_help.py --update`` and review the diff (``python tests/cli/test_cli_help.py --show``
prints the snapshot; it is kept xz-compressed, byte for byte reproducible, to keep the tracked tree small).
"""
from __future__ import annotations

import difflib
import json
import lzma
import sys
from pathlib import Path

# the helpers of tests/ (this file also runs as a script)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _cli_help import all_help  # noqa: E402

SNAPSHOT = Path(__file__).resolve().parents[1].joinpath("data") / "cli_help.json.xz"


def snapshot() -> dict[str, str]:
    return json.loads(lzma.decompress(SNAPSHOT.read_bytes()))


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
        SNAPSHOT.write_bytes(lzma.compress(text.encode(), preset=9 | lzma.PRESET_EXTREME))
        print(f"wrote {SNAPSHOT}")
    elif sys.argv[1:] == ["--show"]:
        print(json.dumps(snapshot(), indent=1, sort_keys=True))
