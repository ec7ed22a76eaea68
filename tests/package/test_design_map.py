"""The maps agree with the tree: ``docs/DESIGN.md``'s layout and the packages' docstrings.

- The layout block of docs/DESIGN.md ("Layout") names every module and package of ``src/pdeflow`` as an entry
  (one per line, lowest layer first); every file or folder an entry's text names exists in that entry's package;
  and the order is the layering: no module imports a module of an entry listed below its own.
- Every cross-reference in a package's docstring (``:mod:``, ``:func:``, ``:class:``, ``:data:``, ``:meth:``,
  ``:attr:``) names something that exists.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

import pdeflow

ROOT = Path(pdeflow.__file__).resolve().parent
DESIGN = ROOT.parent.parent / "docs" / "DESIGN.md"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_architecture import _modules, _top  # noqa: E402  (the one import scanner of the rule tests)

_ENTRY = re.compile(r"^  ([A-Za-z_]\w*(?:\.py|/))(?=\s|$)")
_NAMED = re.compile(r"(?<![\w./`-])(_?[A-Za-z]\w*(?:\.py|/))(?=[\s,;:)]|$)")


def layout(text: str) -> list[tuple[str, str]]:
    """``[(entry, its text)]`` of the ``src/pdeflow/`` block of the "Layout" section, in order."""
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    lines = block.splitlines()
    start = next(k for k, line in enumerate(lines) if line.strip() == "src/pdeflow/") + 1
    entries: list[tuple[str, str]] = []
    for line in lines[start:]:
        if line and not line.startswith(" "):          # the next top-level folder (docs/, tests/)
            break
        m = _ENTRY.match(line)
        if m:
            entries.append((m.group(1), line[m.end():]))
        elif entries and line.startswith("    "):      # a continuation line
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + line.strip())
    return entries


def _unit(entry: str) -> str:
    return entry[:-3] if entry.endswith(".py") else entry[:-1]


def layout_problems(text: str, root: Path) -> list[str]:
    """What the layout says that the tree does not (and what the tree has that the layout does not name)."""
    entries = layout(text)
    problems = []
    names = [_unit(e) for e, _ in entries]
    problems += [f"{n}: listed twice" for n in sorted({n for n in names if names.count(n) > 1})]
    tree = {p.stem if p.is_file() else p.name for p in root.iterdir()
            if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
            or (p.is_dir() and (p / "__init__.py").exists())}
    problems += [f"{n}: in src/pdeflow but not in the layout" for n in sorted(tree - set(names))]
    for entry, desc in entries:
        path = root / entry.rstrip("/")
        if not path.exists():
            problems.append(f"{entry}: no such module or package")
            continue
        if entry.endswith("/"):
            for named in _NAMED.findall(desc):
                hits = [p for p in path.rglob(named.rstrip("/")) if "__pycache__" not in p.parts]
                if not hits:
                    problems.append(f"{entry}: names {named}, which it does not hold")
    return problems


def layering_problems(entries: list[str], modules: dict[str, set[str]]) -> list[str]:
    """Imports that point up the layout: a module of an entry importing a module of an entry listed below."""
    position = {_unit(e): k for k, e in enumerate(entries)}
    bad = []
    for mod, imports in sorted(modules.items()):
        a = _top(mod)
        if a not in position:
            continue
        for imp in sorted(imports):
            b = _top(imp)
            if b in position and position[b] > position[a]:
                bad.append(f"{mod} imports {imp} ({b} is listed below {a})")
    return bad


def test_the_layout_names_the_tree_and_only_the_tree():
    entries = layout(DESIGN.read_text())
    assert len(entries) > 20 and entries[-1][0] == "cli/" and "evaluate/" in dict(entries)
    problems = layout_problems(DESIGN.read_text(), ROOT)
    assert not problems, "docs/DESIGN.md's layout and the tree disagree:\n" + "\n".join(problems)


def test_the_layout_order_is_the_layering():
    entries = [e for e, _ in layout(DESIGN.read_text())]
    bad = layering_problems(entries, _modules())
    assert not bad, "\n".join(bad)


def test_the_map_checks_see_what_they_check(tmp_path):
    """Planted: a package the layout omits, an entry that does not exist, a named file that is gone, and an
    import that points up the list."""
    pkg = tmp_path / "pdeflow"
    for sub in ("tv", "cli"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "tv" / "rof.py").write_text("")
    (pkg / "ops.py").write_text("")
    (pkg / "dask").mkdir()
    (pkg / "dask" / "__init__.py").write_text("")
    text = ("## Layout\n\n```\nsrc/pdeflow/\n  ops.py   calculus\n  tv/      rof.py, flow.py\n"
            "  codec/   compression\n  cli/     the command\ndocs/\n```\n")
    assert sorted(layout_problems(text, pkg)) == ["codec/: no such module or package",
                                                  "dask: in src/pdeflow but not in the layout",
                                                  "tv/: names flow.py, which it does not hold"]
    modules = {"pdeflow.ops": {"pdeflow.tv.rof"}, "pdeflow.tv.rof": {"pdeflow.ops"}}
    assert layering_problems(["ops.py", "tv/"], modules) == ["pdeflow.ops imports pdeflow.tv.rof (tv is listed "
                                                             "below ops)"]


# ---------------------------------------------------------------- package docstrings

_ROLE = re.compile(r":(mod|func|class|data|meth|attr|exc):`~?([\w.]+)`")
PACKAGES = sorted(p.parent for p in ROOT.rglob("__init__.py") if "__pycache__" not in p.parts)


def _package_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).parts)


def resolves(target: str, package: str) -> bool:
    """Whether ``target`` (dotted, absolute or relative to ``package``) names a module or an attribute."""
    target = target.lstrip(".")                 # Sphinx's ".name": searched from the current module
    candidates = [target] if target.startswith("pdeflow") else [f"{package}.{target}", target]
    for name in candidates:
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:k]))
            except ImportError:
                continue
            try:
                for attr in parts[k:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                break
            return True
    return False


@pytest.mark.parametrize("package", PACKAGES, ids=_package_name)
def test_a_package_docstring_names_what_exists(package):
    name = _package_name(package)
    doc = importlib.import_module(name).__doc__ or ""
    missing = [f"{role}:`{target}`" for role, target in _ROLE.findall(doc) if not resolves(target, name)]
    assert not missing, f"{name}'s docstring names what does not exist: {missing}"


def test_the_docstring_check_sees_a_stale_name():
    assert resolves("inpaint_diffusion", "pdeflow.inpaint") and resolves("pdeflow.inpaint.methods", "pdeflow")
    assert not resolves("pdeflow.inpaint.evaluation", "pdeflow")
    assert not resolves("evaluation.evaluate", "pdeflow.inpaint")
