"""Sphinx configuration for pdeflow's documentation (built offline by ``make docs``).

The API reference is written here at build time from each public module's ``__all__``
(``_ext/pdeflow_api.py``): one page per module, one per public name, so a name is documented by
being exported. The command line reference is written from the real argparse parser.
"""
import os
import shutil
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pdeflow  # noqa: E402  (before torch: OpenMP's passive wait policy)
import pdeflow_api  # noqa: E402
import rst_escape  # noqa: E402

project = "pdeflow"
author = "the pdeflow developers"
copyright = "the pdeflow developers, BSD-3-Clause"
release = pdeflow.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",  # results figures drawn at build time from the JSON results
    "sphinx-mathjax-offline",  # MathJax served from _static, not a CDN
    "rst_escape",  # docstrings' plain-text formulas (|grad u|, *shape) shown as written
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "DESIGN.md", "REFERENCES.md", "**/README.md", "_ext", "_scripts", "results/data",
                    "examples/README.rst", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip"]
templates_path = []
nitpicky = False
# numpydoc's References sections list papers that the text names by author, not by [1] markers.
suppress_warnings = ["ref.citation"]

# --- numpydoc / autodoc --------------------------------------------------------------------------
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": False}

# --- MyST ----------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# --- sphinx-gallery ------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "show_memory": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    # warnings raised by an example are errors that fail it (and the build), as in the tests of the
    # documented code; the exceptions are docs_warnings.ALLOWED
    "reset_modules": ("matplotlib", "docs_warnings.gallery_warnings_as_errors"),
    "reset_modules_order": "both",
    "thumbnail_size": (320, 240),
    # its summary page loads jQuery and DataTables from a CDN; each example page gives its own time
    "write_computation_times": False,
}

# --- figures of the results pages (the plot directive) ------------------------------------------
plot_working_directory = str(HERE.parent)  # paths in the figures' code are from the repository root
plot_basedir = str(HERE)  # `.. plot:: results/figures/x.py` is docs/results/figures/x.py
plot_formats = [("png", 110)]
plot_html_show_source_link = False
plot_html_show_formats = False
plot_include_source = False
plot_rcparams = {"figure.figsize": (9, 3.4), "font.size": 9}

# --- HTML ----------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pdeflow {release}"
html_static_path = ["_static"]
html_css_files = ["pdeflow.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "secondary_sidebar_items": ["page-toc"],  # the results pages drop it for their wide tables
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": [],
    "icon_links": [],
}
html_context = {"default_mode": "light"}
mathjax3_config = {}

warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")


# --- generated pages -----------------------------------------------------------------------------
def _title(text, char="="):
    return f"{text}\n{char * len(text)}\n"


def write_api(outdir):
    """docs/api/: index, one page per public module, one per public name (its canonical home)."""
    if outdir.exists():
        shutil.rmtree(outdir)
    (outdir / "names").mkdir(parents=True)
    modules = pdeflow_api.public_modules()
    canon = pdeflow_api.canonical_names(modules)
    n_names = 0
    index = [".. This file is generated by docs/conf.py at build time; do not edit.\n",
             _title("API reference"),
             "Every public name of pdeflow: what each module exports in its ``__all__``. A name that a "
             "package re-exports from one of its modules has one page, at the package "
             "(``pdeflow.tv.rof``, not ``pdeflow.tv.rof.rof``); the module pages list it too.\n",
             ".. toctree::\n   :maxdepth: 1\n"]
    for mod in modules:
        index.append(f"   modules/{mod}")
        names = pdeflow_api.exported(mod)
        # pdeflow.tv.rof is a module and a function: the function's page holds the name
        clash = any(full == mod for full in canon.values())
        lines = [".. This file is generated by docs/conf.py at build time; do not edit.\n",
                 _title(f"``{mod}``"),
                 f".. automodule:: {mod}\n" + ("   :no-index:\n" if clash else "")]
        own = []
        for title, group in pdeflow_api.groups(mod) if names else []:
            if title:
                lines.append(f".. rubric:: {title}\n")
            lines.append(".. list-table::\n   :widths: 35 65\n   :class: api-table\n")
            for name, obj in group:
                full = canon[(mod, name)]
                role = {"class": "class", "function": "func"}.get(pdeflow_api.kind(obj), "data")
                summary = rst_escape.escape([pdeflow_api.first_line(obj)])[0]
                if pdeflow_api.kind(obj) == "data":
                    value = repr(obj)
                    summary = f"``{value}``" if len(value) <= 70 and "`" not in value else f"a ``{type(obj).__name__}``"
                lines.append(f"   * - :py:{role}:`{name} <{full}>`\n     - {summary}")
                if full == f"{mod}.{name}":
                    own.append((name, obj))
            lines.append("")
        if own:
            lines.append(".. toctree::\n   :hidden:\n")
            for name, _ in own:
                lines.append(f"   ../names/{mod}.{name}")
            lines.append("")
        (outdir / "modules").mkdir(exist_ok=True)
        (outdir / "modules" / f"{mod}.rst").write_text("\n".join(lines) + "\n")
        for name, obj in own:
            k = pdeflow_api.kind(obj)
            full = f"{mod}.{name}"
            body = [".. This file is generated by docs/conf.py at build time; do not edit.\n",
                    _title(f"``{full}``"), f".. currentmodule:: {mod}\n"]
            if k == "class":
                body.append(f".. autoclass:: {name}\n   :members:\n   :show-inheritance:\n")
            elif k == "function":
                body.append(f".. autofunction:: {name}\n")
            else:
                value = repr(obj)
                opt = "" if len(value) <= 300 else "   :no-value:\n"
                body.append(f".. autodata:: {name}\n{opt}")
                if opt:
                    body.append(f"A ``{type(obj).__name__}`` with {len(obj) if hasattr(obj, '__len__') else '?'} "
                                "entries (too long to show).\n")
            (outdir / "names" / f"{full}.rst").write_text("\n".join(body) + "\n")
            n_names += 1
    (outdir / "index.rst").write_text("\n".join(index) + "\n")
    return len(modules), n_names


def write_cli(path):
    """The command line reference: every subcommand's ``--help``, from the real parser."""
    import argparse

    os.environ["COLUMNS"] = "100"
    from pdeflow.cli import build_parser

    def walk(parser, prog):
        yield prog, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{prog} {name}")

    lines = [".. This file is generated by docs/conf.py at build time; do not edit.\n",
             _title("Command line reference"),
             "The ``--help`` of every ``pdeflow`` subcommand, written from the parser at build time. "
             "The :doc:`/guide/cli` page says how to use them.\n"]
    for prog, parser in walk(build_parser(), "pdeflow"):
        if prog == "pdeflow":
            continue
        lines += [_title(prog, "-"), ".. code-block:: text\n"]
        parser.prog = prog
        lines += ["   " + line if line else "" for line in parser.format_help().rstrip().split("\n")]
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def drop_stale_gallery_pages(gallery=HERE / "auto_examples", examples=HERE / "examples"):
    """Remove the generated pages of examples that no longer exist (renamed or deleted)."""
    for page in gallery.glob("plot_*.rst"):
        if not (examples / (page.stem + ".py")).exists():
            for stale in gallery.glob(page.stem + ".*"):
                stale.unlink()


drop_stale_gallery_pages()
N_MODULES, N_NAMES = write_api(HERE / "api")
write_cli(HERE / "guide" / "cli_reference.rst")


def setup(app):
    app.add_config_value("pdeflow_api_counts", (N_MODULES, N_NAMES), "env")
