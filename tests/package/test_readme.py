"""The README as a reader uses it: its Python blocks run as written, in order, in one namespace;
its `pdeflow` command lines parse; `make run` and `make test` exist; it stays short and its
figure and links are there."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import docs_warnings  # noqa: E402  (docs/_ext: the one list of warnings the documented code may raise)

#: What a reader brings to a snippet (nothing: the tour is self-contained). Kept for
#: the timing script of commit e9512d6 (``experiments/readme_tour.py``, since removed), which timed the snippets.
STANDINS = ""


def snippets() -> list[str]:
    """The README's Python blocks, in order, as written."""
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def prepared_snippets(fast: bool = False) -> list[str]:
    """The snippets as they run (as written: the tour is fast already)."""
    return snippets()


def shell_lines() -> list[str]:
    """Every command line of the README's bash blocks, comments dropped."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                lines.append(line)
    return lines


def test_the_readme_is_one_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert len(snippets()) >= 1 and 20 <= len(snippets()[0].splitlines()) <= 30   # the tour


def test_the_tour_runs_as_written(capsys):
    """... and without a warning: a documented call that warns is a defect (docs/_ext/docs_warnings.py)."""
    ns: dict = {}
    exec(STANDINS, ns)
    with docs_warnings.as_errors():
        for i, code in enumerate(prepared_snippets()):
            exec(compile(code, f"README snippet {i}", "exec"), ns)
    printed = capsys.readouterr().out
    assert printed.count("tensor(") == 4            # the tour's prints: PSNR of noisy, denoised, network, inpainting
    # what the tour's comments claim: denoising helps; the network is close to the exact flow
    assert float(ns["pdeflow"].psnr(ns["u"], ns["f"], 1.0)) > float(ns["pdeflow"].psnr(ns["g"], ns["f"], 1.0)) + 3


def test_every_pdeflow_line_parses():
    from pdeflow.cli import build_parser

    parser = build_parser()
    commands = [line for line in shell_lines() if line.startswith("pdeflow ")]
    assert {shlex.split(c)[1] for c in commands} >= {"denoise", "flow", "spectral", "mask", "inpaint", "train"}
    for line in commands:
        args = parser.parse_args(shlex.split(line)[1:])
        assert callable(args.run), line


def test_the_denoise_lines_run(tmp_path, monkeypatch):
    """The first command a reader tries, as written, on a photo of their own (here: a built-in crop)."""
    from pdeflow.cli import main
    from pdeflow.datasets import builtin_image
    from pdeflow.io import write_image

    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "photo.png", builtin_image("skimage/camera")[:, :48, :48])
    lines = [line for line in shell_lines() if line.startswith("pdeflow denoise ")]
    assert len(lines) == 2
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
    assert (tmp_path / "den2" / "denoise.csv").read_text().startswith("lambda,")


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
@pytest.mark.parametrize("target", ["run", "test"])
def test_make_targets_exist(target):
    assert f"make {target}" in shell_lines()
    r = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_the_figure_and_the_links_are_there():
    text = README.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) == 1 and (ROOT / images[0]).stat().st_size < 300_000
    links = [t for t in re.findall(r"\]\(([^)#]+)\)", text) if not re.match(r"[a-z]+://", t)]
    assert "CITATION.cff" in links
    guide = ROOT / "docs" / "guide"
    for target in links:
        if target.startswith("docs/guide/") and not guide.is_dir():
            continue                     # the documentation site lands with its own branch
        if target == "CITATION.cff" and not (ROOT / target).exists():
            continue                     # written with the documentation
        assert (ROOT / target).exists(), target
