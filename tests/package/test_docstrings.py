"""Docstrings and comments state behaviour: what a function does, its parameters, limits and references.

Measurements, dated findings and the history of a decision belong to the results pages (``docs/results/``),
which a docstring may name ("see the results page "Speed""). Every docstring in ``src/pdeflow`` is read
with :mod:`ast` and searched for the marks of a result: a speed-up, a duration, decibels, a memory size, a
date, the word "measured", a past comparison, a percentage gain, a path into ``benchmarks/`` or
``experiments/``. Parameter ranges and defaults (``default 1e-6``, ``10 % known pixels``) do not match.
Comments (``#`` and ``#:``) are read the same way, a block of consecutive comment lines as one text.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pdeflow

ROOT = Path(pdeflow.__file__).resolve().parent

#: The marks of a result or of history in a docstring, by what they find.
PATTERNS = {
    "a speed-up": r"\d(?:\.\d+)?(?:\s*-\s*\d+(?:\.\d+)?)?\s*x\s+(?:faster|slower|less|more|fewer|cheaper|quicker)\b",
    "a duration": r"\d(?:\.\d+)?\s*(?:CPU[- ]|GPU[- ]|wall[- ])?(?:s|ms|seconds|minutes|hours)\b(?![-_\[(`])",
    "decibels": r"\d(?:\.\d+)?\s*dB\b",
    "a memory size": r"\d(?:\.\d+)?\s*[KMGT]i?B\b",
    "a date": r"\b20\d\d-[01]\d\b",
    "a measurement": r"\b[Mm]easured\b|\bmeasurements?\b",
    "a past comparison": r"\bwas\b[^.]{0,60}\b(?:faster|slower|better|worse)\b|\bdid (?:no )?(?:better|worse)\b",
    "a percentage gain": r"\d\s*%\s+(?:less|more|faster|slower|lower|higher|better|worse)\b|\bheld \d+\s*%",
    "a results file": r"RESULTS\.md|\bbenchmarks/|\bexperiments/",
}
_RX = re.compile("|".join(f"(?P<g{i}>{p})" for i, p in enumerate(PATTERNS.values())))

#: Docstrings that match a pattern but state behaviour, with the reason ("path::qualified name").
BEHAVIOUR = {
    "allocator.py::<module>": "glibc's allocation thresholds and page size: what the allocator does",
    "allocator.py::retain_freed_memory": "the M_TRIM_THRESHOLD it sets",
    "progress.py::WorkModel": "a worked example of the estimate (10 s of elapsed time)",
    "training/_loop_helpers.py::_cpu_seconds": "the rounding rule of a printed duration",
    "inpaint/result.py::errors_text": "one bit of precision is 6.02 dB: the scale of the table",
}

#: Docstrings that still hold a measurement, each with the change that will move it (none now).
PENDING: dict[str, str] = {}


def _docstrings(path: Path):
    """``(qualified name, docstring)`` of the module and every class and function in ``path``."""
    tree = ast.parse(path.read_text(), str(path))

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                doc = ast.get_docstring(child, clean=False)
                if doc:
                    yield name, doc
                yield from walk(child, name + ".")

    doc = ast.get_docstring(tree, clean=False)
    if doc:
        yield "<module>", doc
    yield from walk(tree, "")


def _marks(doc: str) -> list[str]:
    names = list(PATTERNS)
    return [f"{names[int(m.lastgroup[1:])]} ({m.group(0)!r})" for m in _RX.finditer(doc)]


_SCANS: dict = {}      # two tests read each scan: cached by the files' times and sizes


def _scanned(scan, root: Path):
    key = (scan.__name__, root, tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size)
                                      for p in sorted(root.rglob("*.py"))))
    if key not in _SCANS:
        _SCANS[key] = scan(root)
    return _SCANS[key]


def offending() -> dict[str, list[str]]:
    """``{"path::qualified name": [marks]}`` for every docstring in the package with a mark of a result."""
    return _scanned(_offending, ROOT)


def _offending(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for name, doc in _docstrings(path):
            marks = _marks(doc)
            if marks:
                found[f"{rel}::{name}"] = marks
    return found


def test_the_patterns_catch_results_and_history_but_not_parameters():
    for text in ("runs 2.5x faster than PDHG", "costs 0.47 s per step", "12 CPU seconds", "PSNR 32.1 dB",
                 "a 4K image (33 MB)", "found on 2026-03-02", "measured on one core", "was 3x slower",
                 "graded steps did no better", "15 % less time", "(benchmarks/flow_speed.py)", "see RESULTS.md"):
        assert _marks(text), text
    for text in ("tol : float, default 1e-6", "10 % known pixels", "the 1-99 % range of the values", "``42s``",
                 "steps of 2h", "dt 0.01 (the paper's)", "in [0, 1] times 5", "see the results page \"Speed\"",
                 "x_new = x - dt * F(x)", "3 x 3 window", "time in s"):
        assert not _marks(text), text


def test_docstrings_state_behaviour_not_results():
    found = offending()
    bad = [f"{key}: {', '.join(marks)}" for key, marks in found.items() if key not in BEHAVIOUR and key not in PENDING]
    assert not bad, ("docstrings with measurements or history (move them to docs/results/, or say why they "
                     "state behaviour in BEHAVIOUR):\n" + "\n".join(bad))


def test_the_exemptions_still_apply():
    """An exemption for behaviour names a docstring that still matches (so that the list does not rot)."""
    found = offending()
    assert not [key for key in BEHAVIOUR if key not in found and not key.startswith(("inpaint/", "cli/inpaint.py"))]


# ---------------------------------------------------------------- comments

#: Comment blocks that match a pattern but state behaviour ("path::a phrase of the block": why).
COMMENT_BEHAVIOUR = {
    "io/images.py::1.2 GB as float32 RGB": "the memory a default-limit image takes, arithmetic",
    "io/volumes.py::4 GB as float32": "the memory a default-limit volume takes, arithmetic",
    "multigrid/_galerkin.py::(512 KiB)": "a setting: the strip size of the residual check",
    "inpaint/operators/diffusion_system.py::every temporary is 33 MB": "the size of a 4K float64 temporary, arithmetic",
    "progress.py::nothing measured yet": "the estimator's state (no step timed yet)",
    "training/run.py::at which it was measured": "the field holding the step of the best validation",
    "tvflownet/train.py::was measured on the old set": "why checkpoint selection restarts on a new validation set",
    "cli/inpaint.py::the best mask measured on every set": "names the results page that holds the measurement",
}

#: Comment blocks that still hold a measurement, each with the change that will move it: files that other work
#: is editing now, moved to the results pages when it lands.
COMMENT_PENDING = {
    "inpaint/operators/diffusion_system.py::1.7-2.8x faster": "issue 71's edit of the diffusion system",
}


def _comment_blocks(path: Path):
    """``(first line, text)`` of every block of consecutive whole-line comments in ``path`` and of every comment
    after code (``#`` and ``#:`` stripped)."""
    block, last = [], None
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type != tokenize.COMMENT:
            continue
        whole_line = tok.line.lstrip().startswith("#")
        if block and not (whole_line and last is not None and tok.start[0] == last + 1):
            yield block[0][0], " ".join(s for _, s in block)
            block = []
        block.append((tok.start[0], tok.string.lstrip("#:").strip()))
        last = tok.start[0] if whole_line else None
    if block:
        yield block[0][0], " ".join(s for _, s in block)


def comment_offenders(root: Path = ROOT) -> dict[str, list[str]]:
    """``{"path:line: text": [marks]}`` for every comment block in the package with a mark of a result."""
    return _scanned(_comment_offenders, root)


def _comment_offenders(root: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for line, text in _comment_blocks(path):
            marks = _marks(text)
            if marks:
                found[f"{rel}:{line}: {text}"] = marks
    return found


def _exempt(key: str, table: dict[str, str]) -> bool:
    rel, _, text = key.partition(":")
    return any(k.split("::")[0] == rel and k.split("::", 1)[1] in text for k in table)


def test_comments_state_behaviour_not_results():
    bad = [f"{key[:200]}: {', '.join(marks)}" for key, marks in comment_offenders().items()
           if not _exempt(key, COMMENT_BEHAVIOUR) and not _exempt(key, COMMENT_PENDING)]
    assert not bad, ("comments with measurements, history or results paths (move them to docs/results/, or say "
                     "why they state behaviour in COMMENT_BEHAVIOUR):\n" + "\n".join(bad))


def test_the_comment_exemptions_still_apply():
    """Each exemption names a comment that still matches (so that the lists only shrink)."""
    keys = list(comment_offenders())
    stale = [k for k in (*COMMENT_BEHAVIOUR, *COMMENT_PENDING)
             if not any(_exempt(key, {k: ""}) for key in keys)]
    assert not stale, f"no longer matched (remove them): {stale}"
    assert all(len(reason) > 10 for reason in (*COMMENT_BEHAVIOUR.values(), *COMMENT_PENDING.values()))


def test_the_comment_check_reads_blocks_and_both_comment_kinds(tmp_path):
    """Planted: a measurement split over two comment lines, one in a ``#:`` comment, one after code; a comment
    with a parameter only passes."""
    (tmp_path / "m.py").write_text("x = 1  # tol 1e-6: the default\n"
                                   "# the loop was 1.7-2.8x\n# faster than the tensor loop\n"
                                   "\n#: Side of the tile (computed in ~0.2 s).\nT = 16\n"
                                   "y = 2  # (benchmarks/results/x/)\n")
    found = comment_offenders(tmp_path)
    assert [k.split(": ", 1)[0] for k in found] == ["m.py:2", "m.py:5", "m.py:7"], found
