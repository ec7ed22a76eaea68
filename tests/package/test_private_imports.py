"""Tests use the public API, except where they test an internal on purpose: every import of a private name
(``_name``, or any name of a private module such as ``pdeflow.tv._grid``) from ``pdeflow`` in ``tests/`` is
listed here with the reason it tests that internal.

Imports are read with :mod:`ast` (``from pdeflow.x import _y``, ``from pdeflow._x import y``,
``import pdeflow._x``); attribute access such as ``monkeypatch.setattr(module, "_name", ...)`` is not seen.
"""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

#: ``(test file, module)``: why the test reaches into that internal.
INTERNALS = {
    ("test_cli_eta.py", "pdeflow.cli._flow_common"): "the threshold of a long flow, its wording, and the "
                                                     "decomposition the commands share, to see what was printed "
                                                     "before it started",
    ("test_startup.py", "pdeflow.cli._commands"): "the table of subcommands and their modules, whose modules "
                                                          "a fast start must not import",
    ("test_diffuse_3d.py", "pdeflow.multigrid._galerkin"): "the Galerkin coarse operator against a dense one",
    ("test_diffuse_3d.py", "pdeflow.multigrid._multigrid3d"): "the 3-D multigrid's dense operator, the reference",
    ("test_figures_and_tables.py", "pdeflow.evaluate.iel"): "the experiment's table and sweep figure, drawn "
                                                               "from a hand-made summary",
    ("test_figures_and_tables.py", "pdeflow.evaluate._inpaint_report"): "the evaluation's report from hand-made rows",
    ("test_figures_and_tables.py", "pdeflow.evaluate.tvflownet_report"): "the evaluation's flow figure, hand-made data",
    ("test_iel_experiment.py", "pdeflow.evaluate"): "one run's internals (_iel_run), below the experiment grid",
    ("test_inpaint_cli.py", "pdeflow.cli.inpaint"): "the command's image loader, without a subprocess",
    ("test_inpaint_eval_metrics.py", "pdeflow.evaluate._inpaint_report"): "the PS comparison rows of the report",
    ("test_inpaint_eval_metrics.py", "pdeflow.inpaint.masks._refine_search"): "the probe costs the report uses",
    ("test_inpaint_mask_tiles.py", "pdeflow.inpaint.learned.unet"): "the tile side of the tiled mask network",
    ("test_inpaint_refine.py", "pdeflow.inpaint.masks._refine_loss"): "the refinement loss against finite "
                                                                       "differences",
    ("test_inpaint_refine.py", "pdeflow.inpaint.masks._refine_search"): "the search's graph evaluation against "
                                                                         "one diffusion per candidate",
    ("test_inpaint_residual.py", "pdeflow.evaluate.inpaint"): "the evaluator's model loading",
    ("test_inpaint_residual.py", "pdeflow.inpaint.training.residual"): "the trainer's mask draw",
    ("test_multigrid.py", "pdeflow.multigrid._grid2d"): "the 2-D grid transfers (phases, coarsening) against "
                                                        "dense operators",
    ("test_phantoms.py", "pdeflow.datasets.phantoms"): "the Shepp-Logan tables against the published values",
    ("test_tv_extinction.py", "pdeflow.tv._extinction"): "the first-axis bound against the whole field it stands for",
    ("test_tv_extinction.py", "pdeflow.tv._grid"): "the extinction field on a volume's grid",
    ("test_tv_3d.py", "pdeflow.tv._grid"): "the grid kernels of the 3-D solvers against the generic operators",
    ("test_tv_accuracy.py", "pdeflow.tv._tied"): "the default's certificate recomputed from the returned (u, p): "
                                                  "the tied candidate's gap is one of its two primal candidates",
    ("test_tv_accuracy.py", "pdeflow.tv._accuracy"): "the range the accuracy is relative to, float32 against "
                                                     "float64; the gap checks' schedule on a known decay",
    ("test_tv_accuracy.py", "pdeflow.tv._grid"): "the plain grid the tied certificate takes",
    ("test_dask_batch.py", "pdeflow.cli._zarr"): "the default chunk edge of a zarr volume, read from the command "
                                                 "line's own constant",
    ("test_tv_tied.py", "pdeflow.tv._tied"): "the tied candidate's labelling against a graph search, and its gap "
                                             "against a converged reference",
    ("test_tv_tied.py", "pdeflow.tv._grid"): "the tied candidate on a volume's grid",
    ("test_tv_subdomain.py", "pdeflow.tv._tied"): "the chunks' tied candidates, joined, against the whole image's gap",
    ("test_tv_grid_kernels.py", "pdeflow.tv._grid"): "the fused grid kernels against ops.grad and ops.div",
    ("test_tvflownet_eval.py", "pdeflow.cli.tvflownet"): "the command's test-time wrapper choice",
    ("test_tvflownet_eval.py", "pdeflow.evaluate"): "the evaluation's metrics module (_tvflownet_metrics)",
    ("test_tvflownet_colour.py", "pdeflow.tvflownet.train"): "the trainer's init from a grey model file (inflated, "
                                                             "and recorded so), without a training run",
}


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def private_imports(path: Path) -> set[tuple[str, str]]:
    """``{(module, name)}`` of the private pdeflow names ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pdeflow":
            found |= {(node.module, a.name) for a in node.names if _private(node.module) or _private(a.name)}
        elif isinstance(node, ast.Import):
            found |= {(a.name, "*") for a in node.names if a.name.split(".")[0] == "pdeflow" and _private(a.name)}
    return found


def test_private_names_are_imported_only_where_a_test_tests_that_internal():
    bad = [f"{path.name}: {module}.{name}" for path in sorted(TESTS.rglob("test_*.py"))
           for module, name in sorted(private_imports(path)) if (path.name, module) not in INTERNALS]
    assert not bad, ("tests import private names without a reason (use the public API, or add the internal "
                     "to INTERNALS with why the test needs it):\n" + "\n".join(bad))


def test_the_check_sees_every_form(tmp_path):
    f = tmp_path / "test_x.py"
    f.write_text("from pdeflow.tv import _grid\nfrom pdeflow.tv._grid import Grid\nimport pdeflow._x\n"
                 "from pdeflow.tv import rof\nfrom pdeflow import __version__\n")
    assert private_imports(f) == {("pdeflow.tv", "_grid"), ("pdeflow.tv._grid", "Grid"), ("pdeflow._x", "*")}
