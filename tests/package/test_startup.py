"""Start-up work, measured by what is imported (not by the clock): ``import pdeflow`` and its subpackages do not
load ``torch._dynamo`` (seconds of CPU), and ``pdeflow --version``, ``--help`` and a usage error import no
subcommand module; a subcommand imports its own module only. ``benchmarks/startup.py`` states the times."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

import pdeflow
from pdeflow.cli import build_parser
from pdeflow.cli._commands import ADDERS

SRC = os.path.dirname(os.path.dirname(os.path.abspath(pdeflow.__file__)))
#: The subcommand modules of the command (cli/codec.py, ...): the plumbing's names start with "_".
SUBCOMMAND_MODULES = sorted({f"pdeflow.cli.{module}" for _, module, _, _ in ADDERS})


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_importing_every_subpackage_does_not_load_torch_dynamo(fresh_interpreter):
    """``torch.compiler.disable`` as a decorator imports ``torch._dynamo`` when its module is imported; the
    solvers that must run eagerly under torch.compile use :func:`pdeflow.linalg.eager` instead. (A fresh
    interpreter's last step, tests/_fresh.py.)"""
    assert fresh_interpreter["every_subpackage"] == []


def _run_cli(*argvs: list[str]) -> list[tuple[int, list[str]]]:
    """``pdeflow ARGV`` for each ARGV in turn in one fresh interpreter: each one's exit status and the pdeflow.cli
    modules imported by then."""
    out = _python("import sys, json, contextlib, io\nfrom pdeflow.cli import main\nseen = []\n"
                  f"for argv in {list(argvs)!r}:\n"
                  "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
                  "        rc = main(argv)\n"
                  "    seen.append([rc, sorted(m for m in sys.modules if m.startswith(('pdeflow.cli.', "
                  "'torch._dynamo')))])\n"
                  "print(json.dumps(seen))")
    return [tuple(r) for r in json.loads(out)]


def test_the_top_level_and_a_typo_import_no_subcommand_in_one_interpreter(fresh_interpreter):
    """make test's cases of the table below that import no subcommand module, in one fresh interpreter (after the
    inference subpackages, tests/_fresh.py): modules only accumulate, so none after both lines means none after
    either (the table runs each alone, slow tier)."""
    (rc1, after1), (rc2, after2) = fresh_interpreter["cli"]     # --version, then a typo: a usage error
    assert (rc1, rc2) == (0, 2)
    assert [m for m in after2 if m in SUBCOMMAND_MODULES or m.startswith("torch._dynamo")] == []


#: a fresh interpreter each, in the slow tier (make test runs the top level and a typo in one interpreter, above)
_SLOW = pytest.mark.slow


@pytest.mark.parametrize("argv, status, imported", [
    pytest.param(["--version"], 0, [], marks=_SLOW),
    pytest.param(["--help"], 0, [], marks=_SLOW),
    pytest.param(["train", "--help"], 0, [], marks=_SLOW),
    pytest.param(["compres", "photo.png"], 2, [], marks=_SLOW),             # a typo: a usage error
    pytest.param(["decompress", "--help"], 0, ["pdeflow.cli.codec"], marks=_SLOW),
    pytest.param(["compress", "photo.png", "--bpp", "-1", "--out", "x.pdc"], 2, ["pdeflow.cli.codec"], marks=_SLOW),
    pytest.param(["train", "tvflownet", "--steps", "0"], 2, ["pdeflow.cli.tvflownet"], marks=_SLOW),
])
def test_the_command_imports_only_the_subcommand_it_runs(argv, status, imported):
    [(rc, modules)] = _run_cli(argv)
    assert rc == status
    assert [m for m in modules if m in SUBCOMMAND_MODULES or m.startswith("torch._dynamo")] == imported


def _help_texts(parser: argparse.ArgumentParser, name: str = "pdeflow") -> dict[str, str]:
    out = {name: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                out.update(_help_texts(sub, f"{name} {sub_name}"))
    return out


def test_the_parser_built_for_a_command_line_is_the_full_parser_for_that_command(monkeypatch):
    """Built for one command line, the parser's help of ``pdeflow``, of the command groups and of the command
    that the line names is that of the full parser (``tests/cli/test_cli_help.py`` keeps the full one's)."""
    monkeypatch.setenv("COLUMNS", "100")
    full = _help_texts(build_parser())
    for group, _, _, commands in ADDERS:
        for name in commands:
            argv = [w for w in (group, name) if w] + ["--help"]
            lazy = _help_texts(build_parser(argv))
            path = " ".join(["pdeflow", *argv[:-1]])
            for key in ("pdeflow", "pdeflow train", "pdeflow evaluate", path):
                assert lazy[key] == full[key], key
