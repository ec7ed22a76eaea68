"""Warnings are errors in the code the documentation shows: the README tour, the guide's Python blocks
and the gallery examples.

A documented call that warns either shows a defect of pdeflow or teaches a call that should be
written otherwise, so the tests that run the documented code (``tests/package/test_readme.py``,
``tests/package/test_docs_pages.py``) and the gallery of ``make docs`` (through
:func:`gallery_warnings_as_errors`, a sphinx-gallery ``reset_modules`` hook) use the filters of
:func:`as_errors`. The only exceptions are :data:`ALLOWED`: warnings from third-party packages that
say nothing about pdeflow or the documented calls, each with its reason.
"""
import contextlib
import warnings

#: ``(category, message regex, reason)`` of the warnings let through (ignored).
ALLOWED = (
    (DeprecationWarning, r"__array__ implementation doesn't accept a copy keyword",
     "NumPy 2 about torch.Tensor.__array__, which takes no copy argument, when matplotlib converts a "
     "tensor (imshow(u), plot(t)): a matter between NumPy and PyTorch; the array matplotlib gets is "
     "the same"),
)


#: ``(category, module regex, reason)``: warnings attributed to these modules are let through (ignored).
ALLOWED_FROM = (
    (DeprecationWarning, r"sphinx_gallery\.",
     "sphinx-gallery looks each name an example uses up in the parent modules (the shortest module path "
     "for its links), and so reads pdeflow's deprecated aliases (pdeflow.inpaint.MaskNet): the example "
     "itself did not use them, and an example that does still fails"),
)


def apply_filters():
    """Turn every warning into an error except :data:`ALLOWED` and :data:`ALLOWED_FROM` (in the current
    filter context)."""
    warnings.simplefilter("error")
    for category, message, _ in ALLOWED:
        warnings.filterwarnings("ignore", message=message, category=category)
    for category, module, _ in ALLOWED_FROM:
        warnings.filterwarnings("ignore", category=category, module=module)


@contextlib.contextmanager
def as_errors():
    """A context in which warnings are errors, except :data:`ALLOWED`; the filters are restored after."""
    with warnings.catch_warnings():
        apply_filters()
        yield


_ACTIVE = []


def gallery_warnings_as_errors(gallery_conf, fname, when):
    """sphinx-gallery ``reset_modules`` hook (``reset_modules_order = "both"``): warnings are errors
    while an example runs, so a warning fails its example and with it the build; Sphinx's own
    processing between examples keeps its filters."""
    while _ACTIVE:                          # leave the previous example's context, if still open
        _ACTIVE.pop().__exit__(None, None, None)
    if when == "before" and fname is not None:
        ctx = warnings.catch_warnings()
        ctx.__enter__()
        _ACTIVE.append(ctx)
        apply_filters()
