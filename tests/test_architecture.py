"""The package's dependency rules, checked on the source: every import of every module, function-level
imports included (see README, "Layout").

1. Nothing outside ``pdeflow.cli`` imports ``pdeflow.cli``; a ``cli`` module imports ``cli._common`` and
   the library, never a sibling (``cli/__init__`` assembles them).
2. A pillar (``tv``, ``tvflownet``, ``iel``, ``inpaint``) imports the shared layer, plus ``tv`` for
   ``tvflownet``; the shared layer imports no pillar.
3. Inference does not import the training toolkit: after ``import pdeflow.tvflownet`` (or
   ``pdeflow.inpaint``) neither ``pdeflow.training`` nor a trainer module is in ``sys.modules``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pdeflow

ROOT = Path(pdeflow.__file__).resolve().parent
PILLARS = {"tv", "tvflownet", "iel", "inpaint"}
#: Pillars a pillar may import besides the shared layer.
ALLOWED = {"tv": set(), "tvflownet": {"tv"}, "iel": set(), "inpaint": set()}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return {m for m in found if m == "pdeflow" or m.startswith("pdeflow.")}


def _modules():
    return {_module_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def _top(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else None


def test_imports_are_found_at_any_depth(tmp_path, monkeypatch):
    pkg = tmp_path / "pdeflow" / "inpaint"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("import os\nfrom .. import ops\n\ndef f():\n    from ..cli import _common\n"
                              "    from ..tvflownet.api import load\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "pdeflow")
    assert _imports(pkg / "x.py") == {"pdeflow", "pdeflow.ops", "pdeflow.cli", "pdeflow.cli._common",
                                      "pdeflow.tvflownet.api", "pdeflow.tvflownet.api.load"}


def test_every_module_is_seen():
    mods = _modules()
    assert "pdeflow.cli" in mods and "pdeflow.tvflownet.api" in mods and len(mods) > 40


def test_rule_1_nothing_outside_cli_imports_cli_and_cli_modules_import_no_sibling():
    bad = []
    for mod, imports in _modules().items():
        cli_imports = {m for m in imports if _top(m) == "cli"}
        if mod == "pdeflow.__main__":  # `python -m pdeflow`: the entry point
            continue
        if _top(mod) != "cli":
            bad += [f"{mod} imports {m}" for m in cli_imports]
        elif mod not in ("pdeflow.cli", "pdeflow.cli._common"):
            bad += [f"{mod} imports {m}" for m in cli_imports
                    if m not in ("pdeflow.cli", "pdeflow.cli._common") and not m.startswith("pdeflow.cli._common.")]
        elif mod == "pdeflow.cli._common":
            bad += [f"{mod} imports {m}" for m in cli_imports]
    assert not bad, "\n".join(bad)


def test_rule_2_pillars_import_the_shared_layer_only():
    bad = []
    for mod, imports in _modules().items():
        top = _top(mod)
        if top == "cli" or top is None or mod == "pdeflow.__main__":
            continue
        allowed = ALLOWED.get(top, set()) | ({top} if top in PILLARS else set())
        for m in imports:
            t = _top(m)
            if t in PILLARS and t not in allowed:
                bad.append(f"{mod} imports {m}")
    assert not bad, "\n".join(bad)


def test_rule_3_inference_does_not_import_training():
    code = ("import sys, pdeflow.tvflownet, pdeflow.inpaint; "
            "pdeflow.tvflownet.load; pdeflow.inpaint.load_inpainting_model; "
            "print(sorted(m for m in sys.modules if m.startswith('pdeflow.training') or m.endswith('.train')"
            " or m.startswith('pdeflow.cli')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
    # and statically: the inference modules name no training import at all
    for mod in ("pdeflow.tvflownet.api", "pdeflow.tvflownet.models", "pdeflow.inpaint.gan"):
        imports = _modules()[mod]
        assert not {m for m in imports if _top(m) == "training" or m.endswith(".train")}, mod


def test_papers_are_cited_by_authors_not_by_internal_file_names():
    """No "seed 00x" (internal file names of the papers) in the package, its --help, the README or docs."""
    import re

    from test_cli_help import all_help

    pattern = re.compile(r"\bseeds? 00\d", re.IGNORECASE)
    repo = ROOT.parent.parent
    texts = {str(p): p.read_text() for p in ROOT.rglob("*.py")}
    texts.update({str(p): p.read_text() for p in [repo / "README.md", *(repo / "docs").glob("*.md")] if p.is_file()})
    texts.update(all_help())
    assert not [name for name, text in texts.items() if pattern.search(text)]
