"""The package's dependency rules, checked on the source: every import of every module, function-level
imports included (the rules of docs/DESIGN.md, "Layout"; tests/package/test_design_map.py checks that layout against the
tree).

1. Nothing outside ``pdeflow.cli`` imports ``pdeflow.cli``; a ``cli`` module imports the command's shared
   plumbing (its private modules, ``cli._arguments`` ...) and the library, never another subcommand module
   (``cli/__init__`` assembles them); the plumbing imports no subcommand module.
2. A pillar (``tv``, ``tvflownet``, ``iel``, ``inpaint``, ``codec``) imports the shared layer, plus ``tv`` for
   ``tvflownet`` and ``inpaint`` for ``codec`` (its encoder optimises masks, its decoder inpaints); the shared layer
   imports no pillar. The papers' evaluations (``evaluate``) sit above the pillars and may import any of them.
3. Inference does not import the training toolkit: after ``import pdeflow.tvflownet`` (or
   ``pdeflow.inpaint``) neither ``pdeflow.training`` nor a trainer module is in ``sys.modules``; no loader of
   a shipped model imports a GAN module.
4. No module imports another module's private (``_name``) names.
5. No import cycles, function-level imports included.
6. No module over :data:`MAX_LINES` lines, except those named in :data:`LONG_MODULES` with the reason each
   holds one concept.
7. The inpainting pillar owns its methods: ``pdeflow mask``/``inpaint`` (``cli/inpaint.py``) and the evaluation
   (``evaluate/inpaint.py``) dispatch through the tables of ``pdeflow.inpaint.methods`` (they import no
   module of a method and call no method's function by name); no ``cli`` module imports a private name or a
   private module of the library; one diffusion system: only ``inpaint/diffusion_system.py`` builds the
   masked Laplacian (imports the linear solvers, the multigrid or the Laplacian's matrix); the other operators'
   systems (biharmonic, EED, TV) live in ``inpaint/operators/``, which may use the solvers for them.
8. The papers' evaluations live beside the library (``pdeflow.evaluate``): only ``cli`` imports them; a pillar or
   shared module imports neither an evaluation nor the report module (``pdeflow.reporting``), and imports the
   figure module (``pdeflow.viz``) only where :data:`FIGURE_IMPORTS` names it with its reason.
9. One concept of an operator: ``inpaint/operators/`` holds every inpainting operator and the one table
   (``OPERATORS``), and imports neither the mask methods (``inpaint/masks/``) nor tonal optimisation; the codec
   imports only ``pdeflow.inpaint`` (the package's public names), its own modules and the shared layer; no module
   outside ``inpaint/operators/`` compares an operator's name or keeps a table of its own keyed by operator names
   (a dict literal with two or more operators' names as keys): what differs between operators is a field of their
   entry.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pdeflow

ROOT = Path(pdeflow.__file__).resolve().parent
PILLARS = {"tv", "tvflownet", "iel", "inpaint", "codec"}
#: Pillars a pillar may import besides the shared layer.
ALLOWED = {"tv": set(), "tvflownet": {"tv"}, "iel": set(), "inpaint": set(), "codec": {"inpaint"}}
#: Layers above the pillars: they may import every pillar, and only ``cli`` (and they themselves) import them.
ABOVE = {"dask": PILLARS}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


#: Parsed sources by (path, modification time, size): every rule walks the same files, and a planted violation
#: is a new file.
_TREES: dict = {}


def _tree(path: Path) -> ast.AST:
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _TREES:
        _TREES[key] = ast.parse(path.read_text(), str(path))
    return _TREES[key]


#: Each file's imports by (root, path, modification time, size): the rules ask for every module's many times.
_IMPORTS: dict = {}


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    st = path.stat()
    key = (str(ROOT), str(path), st.st_mtime_ns, st.st_size)
    if key not in _IMPORTS:
        _IMPORTS[key] = _find_imports(path)
    return set(_IMPORTS[key])


def _find_imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(_tree(path)):
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
    mods = _modules()
    # the command's shared plumbing: its private modules (cli/_arguments.py, ...), one per concept
    plumbing = {m for m in mods if _top(m) == "cli" and m.count(".") == 2 and m.rsplit(".", 1)[1].startswith("_")}
    assert {"pdeflow.cli._arguments", "pdeflow.cli._outputs"} <= plumbing
    bad = []
    for mod, imports in mods.items():
        cli_imports = {m for m in imports if _top(m) == "cli"}
        if mod == "pdeflow.__main__":  # `python -m pdeflow`: the entry point
            continue
        if _top(mod) != "cli":
            bad += [f"{mod} imports {m}" for m in cli_imports]
        elif mod in plumbing:
            bad += [f"{mod} imports {m}" for m in cli_imports
                    if not any(m == p or m.startswith(p + ".") for p in plumbing)]
        elif mod != "pdeflow.cli":
            bad += [f"{mod} imports {m}" for m in cli_imports
                    if m != "pdeflow.cli" and not any(m == p or m.startswith(p + ".") for p in plumbing)]
    assert not bad, "\n".join(bad)


def test_rule_2_pillars_import_the_shared_layer_only():
    bad = []
    for mod, imports in _modules().items():
        top = _top(mod)
        if top in ("cli", "evaluate") or top is None or mod == "pdeflow.__main__":
            continue
        allowed = ALLOWED.get(top, set()) | ABOVE.get(top, set()) | ({top} if top in PILLARS else set())
        for m in imports:
            t = _top(m)
            if t in PILLARS and t not in allowed:
                bad.append(f"{mod} imports {m}")
    assert not bad, "\n".join(bad)


def test_rule_2_layers_above_the_pillars_are_imported_by_cli_only():
    mods = _modules()
    assert "pdeflow.dask" in mods
    bad = [f"{mod} imports {m}" for mod, imports in mods.items() for m in imports
           if _top(m) in ABOVE and _top(mod) not in {"cli", _top(m)}]
    assert not bad, "\n".join(bad)


def test_rule_3_inference_does_not_import_training(fresh_interpreter):
    # in a fresh interpreter (tests/_fresh.py): pdeflow.tvflownet, pdeflow.inpaint and their loaders imported, no
    # training or command-line module is
    assert fresh_interpreter["inference"] == []
    # and statically: the inference modules name no training import at all
    for mod in ("pdeflow.models", "pdeflow.tvflownet.api", "pdeflow.tvflownet.architectures",
                "pdeflow.inpaint.learned.gan",
                "pdeflow.inpaint.learned.masknet", "pdeflow.inpaint.learned.residual"):
        imports = _modules()[mod]
        assert not {m for m in imports if _top(m) == "training" or m.endswith(".train")
                    or m.startswith("pdeflow.inpaint.training")}, mod
    # the loaders of shipped models (every one goes through pdeflow.models) import no GAN module
    gans = ("pdeflow.inpaint.learned.gan", "pdeflow.inpaint.learned.wgan", "pdeflow.inpaint.learned.maskgan")
    for mod in ("pdeflow.models", "pdeflow.tvflownet.api", "pdeflow.inpaint.learned.masknet",
                "pdeflow.inpaint.learned.residual"):
        assert not {m for m in _modules()[mod] if m.startswith(gans)}, mod


def test_papers_are_cited_by_authors_not_by_internal_file_names():
    """No "seed 00x" (internal file names of the papers) in the package, its --help, the README or docs."""
    import re

    from _cli_help import all_help

    pattern = re.compile(r"\bseeds? 00\d", re.IGNORECASE)
    repo = ROOT.parent.parent
    texts = {str(p): p.read_text() for p in ROOT.rglob("*.py")}
    texts.update({str(p): p.read_text() for p in [repo / "README.md", *(repo / "docs").glob("*.md")] if p.is_file()})
    texts.update(all_help())
    assert not [name for name, text in texts.items() if pattern.search(text)]


# ---------------------------------------------------------------- rules 4 and 5: private names, cycles

#: Private-name imports this rule lets through (each named, so a new one fails): none.
PRIVATE_ALLOWED: set[tuple[str, str, str]] = set()


def _import_nodes(path: Path):
    """``(source module, imported name or None)`` of every import in ``path``, at any depth."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            for a in node.names:
                yield mod, a.name


def _private_imports() -> set[tuple[str, str, str]]:
    """``(importer, module, name)`` for every ``from module import _name`` of a pdeflow module by another."""
    found = set()
    for path in sorted(ROOT.rglob("*.py")):
        me = _module_name(path)
        for mod, name in _import_nodes(path):
            if name and mod.startswith("pdeflow") and mod != me and name.startswith("_") \
                    and not name.startswith("__"):
                found.add((me, mod, name))
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the pdeflow modules it imports (``from pkg import mod`` counts as ``pkg.mod``), any depth."""
    mods = {_module_name(p) for p in ROOT.rglob("*.py")}
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        edges = set()
        for mod, name in _import_nodes(path):
            if name and f"{mod}.{name}" in mods:
                edges.add(f"{mod}.{name}")
            elif mod in mods:
                edges.add(mod)
        graph[_module_name(path)] = edges - {_module_name(path)}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_rule_4_no_module_imports_another_modules_private_names():
    found = _private_imports()
    new = sorted(found - PRIVATE_ALLOWED)
    assert not new, "\n".join(f"{a} imports {b}.{c}" for a, b, c in new)
    gone = sorted(PRIVATE_ALLOWED - found)
    assert not gone, f"no longer imported (remove from PRIVATE_ALLOWED): {gone}"


def test_rule_5_no_import_cycles_function_level_imports_included():
    assert _cycles(_graph()) == []


def test_rules_4_and_5_see_what_they_check(tmp_path, monkeypatch):
    """The checkers find a private import and a cycle made of function-level imports."""
    pkg = tmp_path / "pdeflow" / "inpaint"
    pkg.mkdir(parents=True)
    (tmp_path / "pdeflow" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import _g\n")
    (pkg / "b.py").write_text("def _g():\n    from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "pdeflow")
    assert _private_imports() == {("pdeflow.inpaint.a", "pdeflow.inpaint.b", "_g")}
    assert _cycles(_graph()) == [["pdeflow.inpaint.a", "pdeflow.inpaint.b"]]


def test_settings_are_declared_once():
    """The luminance weights and the image suffixes live in io.images, the PS step schedule in
    masks.sparsification; no other module writes them out again."""
    # The image suffixes (what read_image reads) and the volume suffixes (what read_volume reads) are two
    # settings, each declared in its own module.
    declared = {"0.299": ("io/images.py",), '".tiff"': ("io/images.py", "io/volumes.py"),
                "math.ceil(p * count)": ("inpaint/masks/sparsification.py",)}
    bad = [f"{p.relative_to(ROOT)} repeats {text}" for p in sorted(ROOT.rglob("*.py"))
           for text, homes in declared.items() if text in p.read_text() and p.relative_to(ROOT).as_posix() not in homes]
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------- rule 6: module size

MAX_LINES = 700
#: The modules over MAX_LINES lines, each with why it stays one module (a module that drops below the limit
#: leaves the list, so it only shrinks).
LONG_MODULES = {
    "tv/rof.py": "one concept: rof, the entry point of every ROF method (its arguments, lam='auto', warnings and "
                 "result record), and the certified stopping all methods share (solve, solve_auto, coarse start)",
}


def test_rule_6_no_module_over_700_lines_unless_named_with_its_reason():
    lines = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    long = {m: n for m, n in lines.items() if n > MAX_LINES}
    unnamed = sorted(f"{m} ({n} lines)" for m, n in long.items() if m not in LONG_MODULES)
    assert not unnamed, f"modules over {MAX_LINES} lines (split them, or name them in LONG_MODULES with why): " \
                        f"{unnamed}"
    stale = sorted(m for m in LONG_MODULES if m not in long)
    assert not stale, f"no longer over {MAX_LINES} lines (remove from LONG_MODULES): {stale}"
    assert all(len(reason) > 20 for reason in LONG_MODULES.values())


# ---------------------------------------------------------------- rule 7: methods by table, one diffusion system

#: What a cli module may import from pdeflow.inpaint: the package's public names, the errors and figure of
#: one result (pdeflow.inpaint.result: what the command prints and draws, not a method), and the trainers
#: (pdeflow.inpaint.training, which `pdeflow train` runs).
CLI_INPAINT_IMPORTS = {"pdeflow.inpaint", "pdeflow.inpaint.result", "pdeflow.inpaint.training",
                       "pdeflow.inpaint.training.wgan"}
#: What evaluate/inpaint.py may import from pdeflow.inpaint: the tables, the refinement settings of its *-refine
#: rows, and the loaders of the jointly trained pairs (a mask network and an inpainter together, which no single
#: table entry is).
EVALUATION_IMPORTS = {("pdeflow.inpaint.methods", None),
                      ("pdeflow.inpaint.masks.refine", "REFINE_MSE"),
                      ("pdeflow.inpaint.masks.refine", "refine_setting"),
                      ("pdeflow.inpaint.masks.refine", "refine_options"),
                      ("pdeflow.inpaint.learned.residual", "load_joint"),
                      ("pdeflow.inpaint.learned.residual", "load_joint_refined")}


def _method_function_names() -> set[str]:
    """The public names of the functions behind the tables' entries (what a dispatcher would call by name)."""
    from pdeflow.inpaint import INPAINT_METHODS, MASK_METHODS

    names = set()
    for entry in (*MASK_METHODS.values(), *INPAINT_METHODS.values()):
        for fn in (entry.function, *entry.option_sources):
            if not fn.__name__.startswith("_"):
                names.add(fn.__name__)
    return names


def _calls(path: Path) -> set[str]:
    """The names called as plain functions (``name(...)``) in ``path``."""
    return {n.func.id for n in ast.walk(_tree(path)) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)}


def _dispatch_violations() -> list[str]:
    cli = ROOT / "cli" / "inpaint.py"
    bad = [f"cli/{path.name} imports {m}" for path in sorted((ROOT / "cli").glob("*.py"))
           for m, _ in _import_nodes(path) if m.startswith("pdeflow.inpaint") and m not in CLI_INPAINT_IMPORTS]
    evaluation = ROOT / "evaluate" / "inpaint.py"
    for mod, name in _import_nodes(evaluation):
        if mod.startswith("pdeflow.inpaint") and (mod, None) not in EVALUATION_IMPORTS \
                and (mod, name) not in EVALUATION_IMPORTS:
            bad.append(f"evaluate/inpaint.py imports {mod}.{name}")
    functions = _method_function_names()
    for path in (cli, evaluation):
        bad += [f"{path.relative_to(ROOT)} calls {name} by name (use make_mask / inpaint)"
                for name in sorted(_calls(path) & functions)]
    return bad


def _cli_private_imports() -> list[str]:
    bad = []
    for path in sorted((ROOT / "cli").glob("*.py")):
        for mod, name in _import_nodes(path):
            if not mod.startswith("pdeflow") or mod.startswith("pdeflow.cli"):
                continue
            private_module = any(part.startswith("_") for part in mod.split("."))
            if private_module or (name and name.startswith("_") and not name.startswith("__")):
                bad.append(f"cli/{path.name} imports {mod}.{name}")
    return bad


#: The one module that builds the masked Laplacian system of diffusion inpainting.
DIFFUSION_SYSTEM = "pdeflow.inpaint.operators.diffusion_system"
#: The package of the other inpainting operators, whose own systems use the solvers too.
OPERATORS = "pdeflow.inpaint.operators"
#: What building or solving that system takes: the linear solvers, the Laplacian's matrix and the multigrid.
SYSTEM_PARTS = {("pdeflow.linalg", n) for n in ("cg", "cg_matrix", "laplacian_csr", "csr_matvec")}


def _diffusion_systems() -> list[str]:
    bad = []
    for path in sorted((ROOT / "inpaint").rglob("*.py")):
        me = _module_name(path)
        if me == DIFFUSION_SYSTEM or me.startswith(OPERATORS + "."):
            continue
        for mod, name in _import_nodes(path):
            if (mod, name) in SYSTEM_PARTS or mod.startswith("pdeflow.multigrid") \
                    or (mod == "pdeflow" and name in ("linalg", "multigrid")):
                bad.append(f"{me} imports {mod}.{name}")
        text = path.read_text()
        bad += [f"{me} defines {cls}" for cls in ("class MaskedLaplacian", "class DiffusionSystem") if cls in text]
    return bad


def test_rule_7_cli_and_evaluation_dispatch_through_the_tables():
    assert {"inpaint_diffusion", "densify_mask", "ps_mask"} <= _method_function_names()
    bad = _dispatch_violations()
    assert not bad, "\n".join(bad)


def test_rule_7_cli_imports_no_private_name_or_module_of_the_library():
    bad = _cli_private_imports()
    assert not bad, "\n".join(bad)


def test_rule_7_one_diffusion_system():
    bad = _diffusion_systems()
    assert not bad, "\n".join(bad)


def test_rule_7_sees_what_it_checks(tmp_path, monkeypatch):
    """The checkers find a CLI that calls a method by name from its module, a private import in cli/, and a
    second module that builds the diffusion system."""
    pkg = tmp_path / "pdeflow"
    for sub in ("cli", "inpaint/masks", "evaluate"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "cli" / "inpaint.py").write_text(
        "from ..inpaint.masks.densification import densify_mask\nfrom ..inpaint._eval_report import figure\n"
        "densify_mask(1, 2)\n")
    (pkg / "evaluate" / "inpaint.py").write_text("from ..inpaint.methods import make_mask\n"
                                                 "from ..inpaint.masks.refine import refine_mask\n")
    (pkg / "inpaint" / "masks" / "grow.py").write_text("from ...linalg import cg\nfrom ...multigrid import Multigrid\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    assert _dispatch_violations() == [
        "cli/inpaint.py imports pdeflow.inpaint.masks.densification",
        "cli/inpaint.py imports pdeflow.inpaint._eval_report",
        "evaluate/inpaint.py imports pdeflow.inpaint.masks.refine.refine_mask",
        "cli/inpaint.py calls densify_mask by name (use make_mask / inpaint)"]
    assert _cli_private_imports() == ["cli/inpaint.py imports pdeflow.inpaint._eval_report.figure"]
    assert _diffusion_systems() == ["pdeflow.inpaint.masks.grow imports pdeflow.linalg.cg",
                                    "pdeflow.inpaint.masks.grow imports pdeflow.multigrid.Multigrid"]


# ---------------------------------------------------------------- rule 8: evaluations beside the library

EVALUATE = "pdeflow.evaluate"
#: Library modules that may import the figure module, each with why (a figure a user asks for, not a report).
FIGURE_IMPORTS = {
    "pdeflow.inpaint.result": "the figure of one inpainting result that pdeflow mask and pdeflow inpaint draw",
}
#: Library modules that may import the report module, each with why (none: reports are the evaluations').
REPORT_IMPORTS: dict[str, str] = {}


def _evaluation_violations() -> list[str]:
    bad = []
    for mod, imports in _modules().items():
        top = _top(mod)
        if top in ("cli", "evaluate") or mod == "pdeflow.__main__":
            continue
        for m in sorted(imports):
            if m == EVALUATE or m.startswith(EVALUATE + "."):
                bad.append(f"{mod} imports {m}")
            elif _top(m) == "reporting" and mod not in REPORT_IMPORTS and mod != "pdeflow.reporting":
                bad.append(f"{mod} imports {m}")
            elif _top(m) == "viz" and mod not in FIGURE_IMPORTS and mod != "pdeflow.viz":
                bad.append(f"{mod} imports {m}")
    for mod, imports in _modules().items():
        if _top(mod) == "evaluate":
            bad += [f"{mod} imports {m}" for m in sorted(imports) if _top(m) == "cli"]
    return bad


def test_rule_8_evaluations_live_beside_the_library():
    assert {"pdeflow.evaluate.codec", "pdeflow.evaluate.inpaint", "pdeflow.evaluate.tvflownet"} <= set(_modules())
    assert set(FIGURE_IMPORTS) | set(REPORT_IMPORTS) <= set(_modules())
    bad = _evaluation_violations()
    assert not bad, "\n".join(bad)


def test_rule_8_sees_what_it_checks(tmp_path, monkeypatch):
    """Planted: a pillar that imports an evaluation, one that imports the report module, a shared module that
    draws a figure, and an evaluation that imports the CLI; the CLI importing an evaluation is allowed."""
    pkg = tmp_path / "pdeflow"
    for sub in ("codec", "inpaint", "evaluate", "cli"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "codec" / "encoder.py").write_text("from ..evaluate.codec import budget_bytes\n")
    (pkg / "inpaint" / "holes.py").write_text("def f():\n    from ..reporting import Report\n")
    (pkg / "metrics.py").write_text("from . import viz\n")
    (pkg / "evaluate" / "codec.py").write_text("from ..cli import main\nfrom ..codec import encode\n")
    (pkg / "cli" / "codec.py").write_text("from ..evaluate import codec\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    assert sorted(_evaluation_violations()) == sorted([
        "pdeflow.codec.encoder imports pdeflow.evaluate.codec",
        "pdeflow.codec.encoder imports pdeflow.evaluate.codec.budget_bytes",
        "pdeflow.inpaint.holes imports pdeflow.reporting",
        "pdeflow.inpaint.holes imports pdeflow.reporting.Report",
        "pdeflow.metrics imports pdeflow.viz",
        "pdeflow.evaluate.codec imports pdeflow.cli",
        "pdeflow.evaluate.codec imports pdeflow.cli.main"])


# ---------------------------------------------------------------- rule 9: one concept of an operator

#: The package of the operators and their table: the only modules that may name an operator in a comparison or
#: key a table by operator names.
OPERATOR_PACKAGE = "pdeflow.inpaint.operators"


def _operator_imports() -> list[str]:
    """Imports that break rule 9's layering: operators/ importing masks/ or tonal, codec/ importing anything of
    pdeflow but the package pdeflow.inpaint, its own modules and the shared layer."""
    bad = []
    ops_pkg, codec_pkg = "pdeflow.inpaint.operators", "pdeflow.codec"
    for path in sorted(ROOT.rglob("*.py")):
        me = _module_name(path)
        for mod, name in _import_nodes(path):
            if not mod or not (mod == "pdeflow" or mod.startswith("pdeflow.")):
                continue
            full = f"{mod}.{name}" if name else mod
            if me == ops_pkg or me.startswith(ops_pkg + "."):
                target = full if mod in ("pdeflow", "pdeflow.inpaint") else mod
                if target.startswith("pdeflow.inpaint.masks") or target.startswith("pdeflow.inpaint.tonal"):
                    bad.append(f"{me} imports {full}")
            elif me == codec_pkg or me.startswith(codec_pkg + "."):
                target = full if mod == "pdeflow" else mod
                top = _top(target)
                if target == "pdeflow.inpaint" or target.startswith(codec_pkg) or top is None \
                        or top not in PILLARS | set(ABOVE) | {"cli", "evaluate"}:
                    continue
                bad.append(f"{me} imports {full}")
    return bad


def _name_branches(names) -> list[str]:
    """Comparisons with an operator's name (``x == "eed"``, ``x in ("eed", ...)``) and tables keyed by operator
    names (``{"diffusion": 1, "eed": 2}``: two or more, as a word that names an operator, ``"tv"``, may key one
    entry of a dict about something else) outside ``inpaint/operators/``."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        me = _module_name(path)
        if me == OPERATOR_PACKAGE or me.startswith(OPERATOR_PACKAGE + "."):
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                if len(keys & names) > 1:
                    bad += [f"{me}:{node.lineno} keys a table by an operator's name ({n!r})"
                            for n in sorted(keys & names)]
            if not isinstance(node, ast.Compare):
                continue
            consts = []
            for side in (node.left, *node.comparators):
                elts = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                consts += [e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            bad += [f"{me}:{node.lineno} compares an operator's name ({n!r})" for n in sorted(set(consts) & names)]
    return bad


def _operator_names() -> set[str]:
    from pdeflow.inpaint import OPERATORS as INPAINT_OPERATORS

    return set(INPAINT_OPERATORS)


def test_rule_9_operators_and_codec_layering():
    bad = _operator_imports()
    assert not bad, "\n".join(bad)


def test_rule_9_no_operator_name_compared_outside_the_operators():
    assert OPERATOR_PACKAGE in set(_modules()) and {"diffusion", "eed", "shepard"} <= _operator_names()
    bad = _name_branches(_operator_names())
    assert not bad, "\n".join(bad)


def test_rule_9_sees_what_it_checks(tmp_path, monkeypatch):
    """Planted: an operator that imports a mask module and tonal optimisation, a codec module that imports a
    submodule of the inpainting pillar and another pillar (its public package, its own modules and the shared layer
    are allowed), and branches on operator names and a table keyed by them outside the operators' package (in
    it, both are allowed; the codec's table and pdeflow.dask are held to the rule like any other module)."""
    pkg = tmp_path / "pdeflow"
    for sub in ("inpaint/operators", "codec"):
        (pkg / sub).mkdir(parents=True)
    (pkg / "inpaint" / "operators" / "eed.py").write_text(
        "from ..masks.blur import gaussian_blur\nfrom .. import tonal\nfrom ...filters import max3x3\n")
    (pkg / "codec" / "spatial.py").write_text(
        "from ..inpaint import OPERATORS\nfrom ..inpaint.tonal import optimise_tonal\nfrom ..tv import rof\n"
        "from ..ops import laplacian\nfrom .format import Header\nfrom .. import inpaint\n")
    (pkg / "inpaint" / "methods.py").write_text(
        "def f(op, name):\n    if op.name != 'diffusion':\n        pass\n    return name in ('eed', 'other')\n")
    (pkg / "inpaint" / "operators" / "__init__.py").write_text("def f(name):\n    return name == 'eed'\n")
    (pkg / "inpaint" / "operators" / "eed.py").write_text(
        "from ..masks.blur import gaussian_blur\nfrom .. import tonal\nfrom ...filters import max3x3\n"
        "STENCIL = {'eed': 2}\n")
    (pkg / "codec" / "operators.py").write_text("def f(op):\n    return op.name in {'diffusion'}\n")
    (pkg / "dask").mkdir()
    (pkg / "dask" / "inpaint.py").write_text("REACH = {'diffusion': 1, 'eed': 2}\n\ndef g(m):\n"
                                            "    return REACH.get(m, 2) if m != 'tv' else 0\n")
    (pkg / "dask" / "loss.py").write_text("TERMS = {'tv': 1.0, 'norm': 0.5}\n")     # one word of a dict: allowed
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    assert _operator_imports() == [
        "pdeflow.codec.spatial imports pdeflow.inpaint.tonal.optimise_tonal",
        "pdeflow.codec.spatial imports pdeflow.tv.rof",
        "pdeflow.inpaint.operators.eed imports pdeflow.inpaint.masks.blur.gaussian_blur",
        "pdeflow.inpaint.operators.eed imports pdeflow.inpaint.tonal"]
    assert _name_branches({"diffusion", "eed", "tv"}) == [
        "pdeflow.codec.operators:2 compares an operator's name ('diffusion')",
        "pdeflow.dask.inpaint:1 keys a table by an operator's name ('diffusion')",
        "pdeflow.dask.inpaint:1 keys a table by an operator's name ('eed')",
        "pdeflow.dask.inpaint:4 compares an operator's name ('tv')",
        "pdeflow.inpaint.methods:2 compares an operator's name ('diffusion')",
        "pdeflow.inpaint.methods:4 compares an operator's name ('eed')"]
