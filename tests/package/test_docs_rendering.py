"""The API reference and the Markdown pages render as written: markup that numpydoc, docutils or the
Markdown table syntax would misread.

- A line at the indentation of a numpydoc section's entries is an entry: prose left after a
  "Parameters" list becomes "parameters" named by its lines, shown in bold with their double
  backticks raw. Parameter and attribute names must be names.
- reStructuredText does not nest inline markup: ``**bold with ``code``**`` shows the backticks.
- A ``|`` inside a code span of a Markdown table row ends the cell (the row is cut).
"""
import inspect
import re
import sys
import warnings
from pathlib import Path

import pytest

import pdeflow  # noqa: F401  (before torch)

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import pdeflow_api  # noqa: E402  (docs/_ext: the public names, as the API reference lists them)

NAMED_SECTIONS = ("Parameters", "Other Parameters", "Attributes")
ENTRY_SECTIONS = NAMED_SECTIONS + ("Returns", "Yields", "Receives", "Raises", "Warns")
#: what numpydoc takes for a name: identifiers, comma separated (``x, y``), ``*args``, ``**kwargs``
NAME = re.compile(r"\*{0,2}[A-Za-z_]\w*(, \*{0,2}[A-Za-z_]\w*)*")


def _documented():
    """``[(qualified name, docstring)]`` of every page of the API reference: the public functions and
    classes, the public methods and properties that autodoc lists with a class, and the modules."""
    out, seen = [], set()
    for mod in pdeflow_api.public_modules():
        module = sys.modules[mod]
        out.append((mod, inspect.getdoc(module) or ""))
        for name, obj in pdeflow_api.exported(mod):
            kind = pdeflow_api.kind(obj)
            if kind not in ("class", "function") or id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append((f"{mod}.{name}", inspect.getdoc(obj) or ""))
            if kind == "class":
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if (inspect.isfunction(fn) or isinstance(member, property)) and fn.__doc__:
                        out.append((f"{mod}.{name}.{attr}", inspect.getdoc(fn) or ""))
    return out


DOCUMENTED = _documented()


def _entries(doc):
    """``[(section, name, type, description lines)]`` of a numpydoc docstring, as numpydoc parses them
    (its docscrape when installed: the docs extra; else the same rule by hand)."""
    try:
        from numpydoc.docscrape import NumpyDocString
    except ImportError:
        return _entries_by_hand(doc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # numpydoc's own warnings (unknown sections) are not ours
        parsed = NumpyDocString(doc)
    return [(sec, p.name, p.type, p.desc) for sec in ENTRY_SECTIONS for p in parsed[sec]]


def _entries_by_hand(doc):
    lines = doc.splitlines()
    out, section = [], None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"-{3,}", nxt.strip()) and not line.startswith(" "):
            section = line.strip()
            continue
        if re.fullmatch(r"-{3,}", line.strip()):
            continue
        if section in ENTRY_SECTIONS and line.strip() and not line.startswith(" "):
            name, _, typ = line.partition(" : ")
            if section not in NAMED_SECTIONS and not typ:
                name, typ = "", name
            out.append([section, name.strip(), typ.strip(), []])
        elif section in ENTRY_SECTIONS and line.startswith(" ") and out:
            out[-1][3].append(line.strip())
    return [tuple(e) for e in out]


def test_the_scan_covers_the_reference():
    names = {n for n, _ in DOCUMENTED}
    assert {"pdeflow.ssim", "pdeflow.inpaint.learned.masknet.MaskNet", "pdeflow.inpaint.masks.refine"} <= names
    assert len(DOCUMENTED) > 300


def test_parameter_names_are_names():
    """Prose after a Parameters list is read as parameters (shown bold, with raw double backticks)."""
    bad = []
    for qual, doc in DOCUMENTED:
        entries = _entries(doc)
        for section, name, typ, desc in entries:
            if section in NAMED_SECTIONS and not NAME.fullmatch(name):
                bad.append(f"{qual} [{section}]: {name!r}")
        # unnamed Returns entries without a description, one after another: lines of a paragraph
        for (s1, n1, _, d1), (s2, n2, t2, d2) in zip(entries, entries[1:]):
            if s1 == s2 and s1 in ("Returns", "Yields") and not (n1 or n2 or d1 or d2):
                bad.append(f"{qual} [{s1}]: prose read as return values: {t2!r}")
    assert not bad, "numpydoc misreads these docstrings (move the prose before the section or into " \
                    "an entry's description):\n" + "\n".join(bad)


_LITERAL = re.compile(r"``.+?``", re.S)
_STRONG = re.compile(r"(?<![\w*\\])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w*])", re.S)


def test_no_bold_text_holds_a_literal():
    """reStructuredText has no nested inline markup: the backticks would show inside the bold text."""
    bad = []
    for qual, doc in DOCUMENTED:
        for para in re.split(r"\n\s*\n", doc):
            text = _LITERAL.sub("\0", para)      # literals first: a ``**`` inside one is not markup
            for m in _STRONG.finditer(text):
                if "\0" in m.group(1):
                    bad.append(f"{qual}: **{m.group(1)}**".replace("\0", "``...``"))
    assert not bad, "bold text holding a literal:\n" + "\n".join(bad)


def _markdown_pages():
    pages = [p for p in DOCS.rglob("*.md") if not p.relative_to(DOCS).as_posix().startswith(("_build/", "_"))]
    return sorted(pages) + [ROOT / "README.md"]


def _cells(row):
    """The cells of a Markdown table row, split as markdown-it and GitHub split them: at every ``|``
    not escaped by a backslash, code spans included."""
    return [c for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


@pytest.mark.parametrize("page", _markdown_pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_markdown_tables_keep_their_columns(page):
    """Every row of a table has the header's cells; a ``|`` in a code span must be escaped (``\\|``) or
    written otherwise."""
    text = re.sub(r"^(```+|:::+).*?^\1\s*$", "", page.read_text(), flags=re.M | re.S)  # not in fenced blocks
    lines = text.splitlines()
    bad = []
    for i in range(1, len(lines)):
        if not re.fullmatch(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?", lines[i].strip()):
            continue
        n = len(_cells(lines[i - 1]))
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith("|"):
            if len(_cells(lines[j])) != n:
                bad.append(f"line {j + 1}: {len(_cells(lines[j]))} cells, header {n}: {lines[j].strip()[:100]}")
            j += 1
    assert not bad, f"{page.relative_to(ROOT)}: table rows cut at a '|':\n" + "\n".join(bad)
