"""Every Python snippet of the README runs as written (copy-paste test).

Snippets run in order in one namespace (a later one uses ``u0`` from the tour). The only
substitutions are the stand-ins a reader brings: ``my_unet`` and a batch ``x, y`` for the IEL
snippet, and the shipped model for the run directory a reader would have trained. Snippets that
take minutes on a CPU run as written in the slow suite (``make test-all``); the fast suite runs
the tour on a 64x64 crop instead of 256x256 and skips PS/NLPE.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parent.parent / "README.md"
#: What a reader brings: a trained run (here: the shipped model).
SUBSTITUTE = {'tvflownet.load("runs/sr32")': 'tvflownet.load("default")'}
#: The fast variant: a smaller image.
FAST = {"[:, :256, :256]": "[:, :64, :64]"}
#: Snippets (by a string they contain) that take minutes even then: PS and NLPE.
SLOW_ONLY = ("probabilistic_sparsification(g",)


def snippets() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def _run(fast: bool) -> None:
    from pdeflow.iel import SegmentationUNet

    torch.manual_seed(0)
    ns = {"my_unet": SegmentationUNet(in_channels=1, num_classes=2, width=4, depth=2), "x": torch.rand(2, 1, 16, 16),
          "y": torch.randint(0, 2, (2, 16, 16))}
    for i, code in enumerate(snippets()):
        if fast and any(s in code for s in SLOW_ONLY):
            continue
        for a, b in {**SUBSTITUTE, **(FAST if fast else {})}.items():
            code = code.replace(a, b)
        exec(compile(code, f"README snippet {i}", "exec"), ns)


def test_the_readme_has_snippets():
    assert len(snippets()) >= 4 and all(a in "".join(snippets()) for a in [*SUBSTITUTE, *FAST])


def test_readme_snippets_run_on_a_small_image():
    _run(fast=True)


@pytest.mark.slow
def test_readme_snippets_run_as_written():
    _run(fast=False)


# ---------------------------------------------------------------------------------------------
# Shell commands: every `pdeflow ...` line of the README's bash blocks is accepted by the CLI
# (parsed and validated as written; placeholders filled in the obvious way). Training and the
# evaluations take hours, so they are not run here; the mask -> inpaint pair runs in
# tests/test_inpaint_cli.py and `make run` (= `pdeflow demo`) in tests/test_cli.py.
# ---------------------------------------------------------------------------------------------

def shell_commands() -> list[str]:
    """The `pdeflow` command lines of the README (continuations joined, comments dropped)."""
    cmds = []
    for block in re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line.startswith("pdeflow ") and "..." not in line:
                cmds.append(line)
    return cmds


def _as_argv(cmd: str, tmp: Path) -> list[str]:
    import shlex

    argv = []
    for word in shlex.split(cmd)[1:]:
        word = word.strip("[]")                      # optional parts, given
        word = word.split("|")[0]                    # one of the alternatives
        word = {"IMAGE": "builtin:skimage/camera", "DIR": str(tmp / "out"), "RUN": str(tmp / "run"),
                "MASK": str(tmp / "mask.png"), "DIR/mask.png": str(tmp / "out" / "mask.png")}.get(word, word)
        argv.append(word)
    return argv


def test_the_readme_has_shell_commands():
    assert len(shell_commands()) >= 12


@pytest.mark.parametrize("cmd", shell_commands())
def test_readme_shell_command_is_accepted(cmd, tmp_path, monkeypatch, capsys):
    from pdeflow.cli import build_parser

    monkeypatch.chdir(tmp_path)
    for run in ("wgan", "masknet05", "residual"):                # what the README's previous commands train
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / "config.json").write_text("{}")
    argv = _as_argv(cmd, tmp_path)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "validate", None) is not None:
            args.validate(args)
    except SystemExit as exc:
        pytest.fail(f"`{cmd}` is refused by the CLI ({exc.code}): {capsys.readouterr().err.strip()}")
