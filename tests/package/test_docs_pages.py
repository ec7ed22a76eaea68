"""The documentation says only what is true of the code.

- Every ``pdeflow ...`` command in a fenced shell block of a docs page parses with the real
  argparse parser (``pdeflow.cli.build_parser``); every ``pdeflow ...`` in an inline code span names
  a real subcommand and only options it has.
- Every ``make TARGET`` is a Makefile target, every ``.[extra]`` a pyproject extra, every
  ``python path/to/script.py`` and every repository path in a code span exists.
- The user guide's Python blocks run: each page's ```` ```python ```` blocks in order, in one
  namespace, in a folder holding ``photo.png`` and ``my_photos/``. (Blocks meant only to be read are
  written as ```` ```{code-block} python ````; none are, today.)
- The gallery examples run as ``make docs`` runs them (in ``docs/examples``).
- The guide's blocks and the examples run with warnings as errors, but for the third-party warnings
  listed in ``docs/_ext/docs_warnings.py`` (``make docs`` applies the same filters to the gallery).
"""
import argparse
import contextlib
import functools
import io
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

import pdeflow  # noqa: F401  (before torch)
from pdeflow.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import docs_warnings  # noqa: E402  (docs/_ext: the one list of warnings the documented code may raise)

GENERATED = {"guide/cli_reference.rst"}
# Subcommands other branches are adding now; documented here before they land. A command that uses
# one is checked as soon as the parser has it.
PENDING = {"denoise", "models"}


def _pages():
    out = []
    for p in sorted(DOCS.rglob("*")):
        rel = p.relative_to(DOCS).as_posix()
        skipped = ("_build/", "api/", "auto_examples/", "_", "results/data/")  # results/data: generated tables
        if p.suffix not in (".md", ".rst", ".py") or rel.startswith(skipped):
            continue
        if rel in GENERATED or rel in ("conf.py", "DESIGN.md", "REFERENCES.md"):
            continue
        out.append(p)
    out.append(ROOT / "CHANGELOG.md")  # included by the changelog page
    return out


PAGES = _pages()


def _fenced(text, langs):
    """Bodies of fenced blocks (``` or :::) whose info string is one of langs."""
    blocks = []
    for m in re.finditer(r"^(```+)([^\n`]*)\n(.*?)^\1\s*$", text, re.M | re.S):
        info = m.group(2).strip()
        if info in langs:
            blocks.append(m.group(3))
    return blocks


def _shell_blocks(path):
    text = path.read_text()
    if path.suffix == ".py":  # gallery scripts: literal blocks in the docstring (after '::')
        blocks = []
        for m in re.finditer(r"::\n\n((?:    .*\n|\n)+)", text):
            blocks.append(re.sub(r"^    ", "", m.group(1), flags=re.M))
        return blocks
    if path.suffix == ".rst":
        return [re.sub(r"^   ", "", m.group(1), flags=re.M)
                for m in re.finditer(r"\.\. code-block:: (?:bash|console|shell)\n\n((?:   .*\n|\n)+)", text)]
    return _fenced(text, {"bash", "sh", "shell", "console"})


def _commands(block):
    """The command lines of a shell block: continuations joined, comments and prompts dropped."""
    block = block.replace("\\\n", " ")
    out, shell_vars, arrays = [], {}, {}
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if re.match(r"^[A-Z_][A-Z0-9_]*=\(", words[0]):     # an array, NAME=(words), used as "${NAME[@]}"
            name, _, first = words[0].partition("=(")
            arrays[name] = ([first] if first else []) + words[1:-1] + [words[-1].removesuffix(")")]
            continue
        words = [v for w in words for v in arrays.get(re.fullmatch(r"\$\{(\w+)\[@\]\}|(.*)", w)[1], [w])]
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # environment assignments
            name, _, value = words.pop(0).partition("=")
            if not words:           # a variable the block's later commands use as "$NAME"
                shell_vars[name] = value
        words = [re.sub(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", lambda m: shell_vars.get(m[1], m[0]), w) for w in words]
        if words:
            out.append(words)
    return out


def _pdeflow_args(words):
    """The arguments after `pdeflow` (also `python -m pdeflow`, `torchrun ... -m pdeflow`), or None."""
    if words[0] == "pdeflow":
        return words[1:]
    for i in range(len(words) - 1):
        if words[i] == "-m" and words[i + 1] == "pdeflow":
            return words[i + 2:]
    return None


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


@functools.cache
def _parser():
    """The full parser, built once for every command checked (parsing leaves it as it was)."""
    return build_parser()


def _parse(args):
    """(ok, message): parse with the real parser without exiting."""
    parser = _parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as e:
        return e.code == 0, err.getvalue().strip()
    return True, ""


def _known_subcommand(args):
    return not args or args[0].startswith("-") or args[0] in _subparsers(_parser())


SHELL_COMMANDS = [(p, words) for p in PAGES for b in _shell_blocks(p) for words in _commands(b)]


def test_pages_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert "docs/guide/tv.md" in names and "docs/results/tvflownet.md" in names
    assert sum(1 for _, w in SHELL_COMMANDS if _pdeflow_args(w) is not None) > 30


@pytest.mark.parametrize("path,words", [(p, w) for p, w in SHELL_COMMANDS if _pdeflow_args(w) is not None],
                         ids=lambda v: v.name if isinstance(v, Path) else " ".join(v)[:60])
def test_shell_command_parses(path, words):
    args = _pdeflow_args(words)
    if args and args[0] in PENDING and not _known_subcommand(args):
        pytest.skip(f"`pdeflow {args[0]}` is being added on another branch")
    ok, message = _parse(args)
    assert ok, f"{path.relative_to(ROOT)}: `{' '.join(words)}` does not parse:\n{message}"


def _inline_spans(path):
    text = path.read_text()
    text = re.sub(r"^(```+).*?^\1\s*$", "", text, flags=re.M | re.S)  # not the fenced blocks
    return re.findall(r"``?([^`\n]+?)``?", text)


def _inline_pdeflow(path):
    out = []
    for span in _inline_spans(path):
        if span.startswith("pdeflow ") and not span.startswith("pdeflow."):
            try:
                words = shlex.split(span)
            except ValueError:
                continue
            out.append(words[1:])
    return out


INLINE = [(p, a) for p in PAGES for a in _inline_pdeflow(p)]


@pytest.mark.parametrize("path,args", INLINE, ids=lambda v: v.name if isinstance(v, Path) else " ".join(v)[:60])
def test_inline_command_names_real_options(path, args):
    parser = _parser()
    words = list(args)
    while words and not words[0].startswith("-") and _subparsers(parser):
        choices = _subparsers(parser)
        if words[0] not in choices:
            if words[0] in PENDING:
                pytest.skip(f"`pdeflow {words[0]}` is being added on another branch")
            if re.fullmatch(r"[A-Z_|\[\].]+|[a-z-]+\|[a-z|-]+", words[0]):  # a placeholder: SUBCOMMAND, a|b
                return
            pytest.fail(f"{path.relative_to(ROOT)}: `pdeflow {' '.join(args)}`: no subcommand {words[0]!r}")
        parser = choices[words.pop(0)]
    known = {s for a in parser._actions for s in a.option_strings}
    for w in words:
        opt = w.split("=")[0]
        if opt.startswith("--") and not opt.startswith("--["):
            assert opt in known, f"{path.relative_to(ROOT)}: `pdeflow {' '.join(args)}`: no option {opt}"


def _makefile_targets():
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):", text, re.M))


def _extras():
    import tomllib

    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def test_make_targets_and_extras_exist():
    targets, extras = _makefile_targets(), _extras()
    seen = 0
    for path in PAGES:
        text = path.read_text()
        named = [s.split()[1:] for s in _inline_spans(path) if s.startswith("make ")]
        named += [w[1:] for p, w in SHELL_COMMANDS if p == path and w[0] == "make"]
        for target in (t for words in named for t in words if not t.startswith("-") and "=" not in t):
            assert target in targets, f"{path.relative_to(ROOT)}: `make {target}` is not a Makefile target"
            seen += 1
        for extra in re.findall(r"\.\[([\w,-]+)\]", text):
            for e in extra.split(","):
                assert e in extras, f"{path.relative_to(ROOT)}: extra [{e}] is not in pyproject.toml"
    assert seen >= 4 and "docs" in extras


_REPO_PATH = re.compile(r"^(?:src|tests|benchmarks|docs|\.ci)/[\w./-]+$|^[A-Z][A-Za-z_]*\.(?:md|cff|toml)$")


def test_named_files_exist():
    missing = []
    for path in PAGES:
        names = []
        for words in (w for p, w in SHELL_COMMANDS if p == path):
            if words[0] in ("python", "python3") and len(words) > 1 and words[1].endswith(".py"):
                names.append(words[1])
        names += [s.strip() for s in _inline_spans(path) if _REPO_PATH.match(s.strip())]
        for name in names:
            if "*" in name or name.startswith("src/pdeflow/tvflownet/weights/default"):
                continue
            if not (ROOT / name.rstrip("/")).exists():
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, "files named on docs pages that do not exist:\n" + "\n".join(missing)


GUIDE = sorted((DOCS / "guide").glob("*.md"))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    from pdeflow import datasets
    from pdeflow import io as pio

    cam = datasets.builtin_image("skimage/camera")[:, 150:278, 180:308]
    pio.write_image(tmp_path / "photo.png", cam)
    (tmp_path / "my_photos").mkdir()
    for k, name in enumerate(("skimage/astronaut", "skimage/chelsea")):
        pio.write_image(tmp_path / "my_photos" / f"{k}.png", datasets.builtin_image(name)[:, :96, :96])
    monkeypatch.chdir(tmp_path)
    return tmp_path


#: Guide pages whose blocks take tens of CPU seconds, left to the slow tier: the codec's (several encodings of the
#: photo, split searches; tests/codec and the codec's doctests make the same calls on smaller images in make test)
#: the large images' (local clusters and decomposed solves; tests/dask makes the same calls in make test) and
#: TVflowNET's (the shipped ensemble on photos; tests/tvflownet makes the same calls on crops) and the inpainting
#: operators' (tests/inpaint/test_inpaint_operators.py makes its calls on smaller images).
SLOW_GUIDE = {"codec.md", "large_images.md", "tvflownet.md", "inpaint_operators.md"}


def test_slow_guide_pages_exist():
    assert SLOW_GUIDE <= {p.name for p in GUIDE}


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW_GUIDE else p
                                  for p in GUIDE], ids=lambda p: p.name)
def test_guide_python_blocks_run(page, workdir):
    blocks = _fenced(page.read_text(), {"python"})
    if not blocks:
        pytest.skip("no Python blocks on this page")
    import matplotlib

    matplotlib.use("Agg")
    namespace = {"__name__": "__docs__"}
    for k, block in enumerate(blocks):
        code = compile(block, f"{page.relative_to(ROOT)} (block {k + 1})", "exec")
        with contextlib.redirect_stdout(io.StringIO()), docs_warnings.as_errors():
            exec(code, namespace)


EXAMPLES = sorted((DOCS / "examples").glob("plot_*.py"))


def test_examples_found():
    assert len(EXAMPLES) >= 20


# slow: `make docs` runs every example too, with the same warning filters (docs/_ext/docs_warnings.py), so in the
# fast tier this would be a second run of the gallery; the slow tier adds the colour-map check below
@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_gallery_example_runs(example, monkeypatch):
    """As sphinx-gallery runs it: as __main__, from docs/examples, warnings as errors; then its figures'
    signed maps (a diverging colormap) are centred on zero and have a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(example.parent)
    plt.close("all")
    try:
        with contextlib.redirect_stdout(io.StringIO()), docs_warnings.as_errors():
            runpy.run_path(str(example), run_name="__main__")
        for num in plt.get_fignums():
            for ax in plt.figure(num).axes:
                for im in ax.get_images():
                    if im.get_cmap().name.removesuffix("_r") in DIVERGING:
                        lo, hi = im.get_clim()
                        assert lo == -hi, f"{example.name}: {ax.get_title()!r}: limits {lo}, {hi} not centred on 0"
                        assert im.colorbar is not None, f"{example.name}: {ax.get_title()!r} has no colour bar"
    finally:
        plt.close("all")


def test_make_docs_runs_the_gallery_with_warnings_as_errors():
    import warnings

    conf = (DOCS / "conf.py").read_text()
    assert '"docs_warnings.gallery_warnings_as_errors"' in conf and '"reset_modules_order": "both"' in conf
    hook = docs_warnings.gallery_warnings_as_errors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hook({}, None, "before")                       # entering the gallery's folder: nothing changes
        warnings.warn("between examples", UserWarning)
        hook({}, "plot_x.py", "before")
        with pytest.raises(UserWarning, match="in an example"):
            warnings.warn("in an example", UserWarning)
        for category, message, reason in docs_warnings.ALLOWED:
            assert reason
            warnings.warn_explicit(message.replace("\\", ""), category, "x.py", 1)  # let through
        hook({}, "plot_x.py", "after")
        warnings.warn("after the example", UserWarning)  # Sphinx's own filters again


#: matplotlib's diverging colormaps (a signed quantity: its zero is the middle colour).
DIVERGING = {"PiYG", "PRGn", "BrBG", "PuOr", "RdGy", "RdBu", "RdYlBu", "RdYlGn", "Spectral", "coolwarm", "bwr",
             "seismic", "berlin", "managua", "vanimo"}


def test_no_team_sentences_on_pages():
    """Pages are written for readers: no notes to the team, no lab-notebook asides."""
    bad = re.compile(r"say so in your note|no GPU was lent|seed 00\d|until this release|from pdeflow import data\b",
                     re.I)
    for path in PAGES:
        for k, line in enumerate(path.read_text().splitlines(), 1):
            assert not bad.search(line), f"{path.relative_to(ROOT)}:{k}: {line.strip()}"


def test_guide_states_the_scale_convention_once_prominently():
    index = (DOCS / "guide" / "index.md").read_text()
    assert ":::{important}" in index and "multiplied by 5" in index and "--scale 5" in index
