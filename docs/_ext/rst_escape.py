"""Make docstrings' plain-text mathematics safe for reStructuredText.

pdeflow's docstrings write formulas as plain text (``|grad u|``, ``(N+2, *shape)``), which read
well in ``help()`` but are reStructuredText markup: ``|x|`` is a substitution and a lone ``*``
starts emphasis. Outside literals, code and directives this escapes them so that the rendered page
shows what ``help()`` shows.
"""
import re

_LITERAL = re.compile(r"(``.*?``|:\w+:`[^`]*`|`[^`]*`_?)")
_DIRECTIVE = re.compile(r"^\s*\.\. [\w:-]+::")


def _escape_plain(text):
    text = text.replace("|", "\\|")
    lone = re.findall(r"(?<![*\\])\*(?!\*)", text)
    if len(lone) % 2:
        text = re.sub(r"(?<![*\\])\*(?!\*)", r"\\*", text)
    return text


def _escape_line(line):
    bullet = re.match(r"^\s*[*-] ", line)  # a list item's marker is markup, not text
    if bullet:
        return bullet.group(0) + _escape_line(line[bullet.end():])
    parts = _LITERAL.split(line)
    return "".join(p if i % 2 else _escape_plain(p) for i, p in enumerate(parts))


def escape(lines):
    lines = list(lines)
    for i in range(1, len(lines)):  # a section underline as long as its title
        u = lines[i].strip()
        if len(u) >= 3 and set(u) <= {"-"} and lines[i - 1].strip() and len(lines[i - 1].strip()) > len(u):
            lines[i] = lines[i].replace(u, "-" * len(lines[i - 1].strip()))
    out = []
    block_indent = None  # indentation of the line that opened a literal block or directive
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if line.strip() == "" or indent > block_indent:
                out.append(line)
                continue
            block_indent = None
        stripped = line.strip()
        if _DIRECTIVE.match(line) or stripped.endswith("::"):
            block_indent = indent
            out.append(line if _DIRECTIVE.match(line) else _escape_line(line))
            continue
        if stripped.startswith((">>>", "...")) or stripped.startswith(":") and not stripped.startswith("::"):
            out.append(line)
            continue
        out.append(_escape_line(line))
    return out


def _parses_cleanly(lines):
    """Whether docutils reads these lines without a warning (Sphinx roles taken as literals)."""
    import docutils.core
    import docutils.utils

    text = re.sub(r":[\w:]+:`([^`]*)`", r"``\1``", "\n".join(lines))
    text = re.sub(r"^\.\. (?!\[)[\w:-]+::.*$", "", text, flags=re.M)  # Sphinx directives: not docutils'
    messages = []
    settings = {"report_level": docutils.utils.Reporter.WARNING_LEVEL, "halt_level": 5,
                "warning_stream": False, "file_insertion_enabled": False}
    try:
        doctree = docutils.core.publish_doctree(text, settings_overrides=settings)
    except Exception:
        return False
    for node in doctree.traverse():
        if node.tagname == "system_message" and node.get("level", 0) >= 2:
            messages.append(node)
    return not messages


def module_lines(obj):
    """A module docstring as help() shows it: the summary as text, the rest preformatted.

    Module docstrings are written as plain-text maps (indented lists of files and formulas), which
    reStructuredText would misread as definition lists and block quotes.
    """
    import inspect

    doc = inspect.getdoc(obj) or ""
    head, _, rest = doc.partition("\n\n")
    out = escape(head.split("\n")) + [""]
    if rest.strip():
        out += ["::", ""] + ["    " + line for line in rest.split("\n")] + [""]
    return out


def process_docstring(app, what, name, obj, options, lines):
    if what == "module":
        escaped = escape(lines)
        # most module docstrings are good reStructuredText; the plain-text maps among them are shown as
        # help() shows them
        lines[:] = escaped if _parses_cleanly(escaped) else module_lines(obj)
    else:
        lines[:] = escape(lines)


def setup(app):
    # after numpydoc (priority 500): its output is plain reStructuredText by then
    app.connect("autodoc-process-docstring", process_docstring, priority=900)
    return {"parallel_read_safe": True}
