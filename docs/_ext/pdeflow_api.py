"""The public API of pdeflow, read from the modules' ``__all__``.

Shared by the docs build (``docs/conf.py`` writes one page per module and per public name from it)
and the doctest test (``tests/package/test_doctests.py``), so that a name is documented and doctested by
being exported: no list of names to keep in step by hand.
"""
import importlib
import inspect
import pkgutil
import types

#: Modules left out of the API reference: the command line's plumbing (documented by the command
#: line pages, generated from its parser) and the ``python -m pdeflow`` entry point.
EXCLUDED_PREFIXES = ("pdeflow.cli", "pdeflow.__main__")


def public_modules(package="pdeflow"):
    """Names of the modules of ``package`` that define ``__all__`` (private ones left out), sorted."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or info.name.startswith(EXCLUDED_PREFIXES):
            continue
        names.append(info.name)
    out = []
    for name in sorted(names):
        module = importlib.import_module(name)
        if isinstance(getattr(module, "__all__", None), (list, tuple)):
            out.append(name)
    return out


def kind(obj):
    """'class', 'function', 'module' or 'data'."""
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj) or hasattr(obj, "__wrapped__")
                          or inspect.isroutine(obj)):
        return "function"
    return "data"


def exported(module_name):
    """``[(name, obj)]`` of a module's ``__all__``, modules and dunder names left out."""
    module = importlib.import_module(module_name)
    out = []
    for name in module.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(module, name)
        if kind(obj) == "module":
            continue
        out.append((name, obj))
    return out


def groups(module_name):
    """``[(title or None, [(name, obj)])]``: a module's exported names in the groups of its ``__api_groups__``
    (a dict ``title -> names``, in order), or one untitled group when it declares none."""
    module = importlib.import_module(module_name)
    names = exported(module_name)
    spec = getattr(module, "__api_groups__", None)
    if not spec:
        return [(None, names)]
    by = dict(names)
    return [(title, [(n, by[n]) for n in members if n in by]) for title, members in spec.items()]


def _rank(module_name):
    # The top-level package re-exports the most-used functions; their page stays with their pillar.
    return (module_name == "pdeflow", module_name.count("."), module_name)


def canonical_names(modules=None):
    """``{(module, name): canonical full name}`` for every exported name.

    A name exported by several modules (a package re-exporting its submodules' names) is
    documented once, where it is exported highest in the package tree below the top level.
    """
    modules = public_modules() if modules is None else modules
    homes = {}
    for mod in modules:
        for name, obj in exported(mod):
            key = (name, id(obj))
            if key not in homes or _rank(mod) < _rank(homes[key]):
                homes[key] = mod
    out = {}
    for mod in modules:
        for name, obj in exported(mod):
            out[(mod, name)] = f"{homes[(name, id(obj))]}.{name}"
    return out


def first_line(obj):
    """The first sentence of a docstring's summary, or ''."""
    if kind(obj) == "data":
        return ""
    doc = inspect.getdoc(obj) or ""
    para = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return para
