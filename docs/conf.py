"""Sphinx configuration of crossent's documentation (``make docs``).

Sphinx + numpydoc because the docstrings are numpydoc, the convention of the libraries crossent's
users come from (NumPy, SciPy, scikit-learn); autosummary writes one page per public name from
each module's ``__all__``, so the reference cannot miss a name the package exports.

The build is offline: no intersphinx (these machines have no general internet), so references
to other projects' types are listed in ``nitpick_ignore_regex`` instead of being resolved.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import logging
import os
import sys
from pathlib import Path

from sphinx.application import Sphinx

import crossent

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")  # the figures are drawn without a display

project = "crossent"
author = "crossent contributors"
copyright = "2026, crossent contributors"
version = release = crossent.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "crossent_figures",
]

exclude_patterns = ["_build", "_generated/**/*.json", "_mathjax"]
templates_path = ["_templates"]

# API reference: one page per public name (from __all__), numpydoc sections rendered.
autosummary_generate = True
autosummary_ignore_module_all = False  # __all__ is the list of public names
autodoc_typehints = "none"  # the numpydoc Parameters section gives each type once
autodoc_inherit_docstrings = False  # a torch forward() would show torch's own docstring


def _module_data(name: str) -> list[str]:
    """The names of ``__all__`` that are neither modules, classes nor functions: constants.

    autosummary lists only the constants that carry a docstring comment; every exported name
    gets a page here.
    """
    module = importlib.import_module(name)
    return [
        item
        for item in getattr(module, "__all__", [])
        if not (inspect.ismodule(v := getattr(module, item)) or callable(v))
    ]


API_MODULES = [
    "crossent",
    "crossent.calibration",
    "crossent.grad",
    "crossent.losses",
    "crossent.torch",
    "crossent.jax",
    "crossent.transformers",
    "crossent.report",
    "crossent.errors",
    "crossent.files",
]
autosummary_context = {"module_data": {name: _module_data(name) for name in API_MODULES}}
numpydoc_show_class_members = False  # the class template lists the members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Warnings are errors (-W in the Makefile); every reference must resolve.
nitpicky = True
# Types of other projects: no intersphinx inventory can be fetched offline.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|torch|jax|jnp|matplotlib|starlette|uvicorn|transformers|typer)\..*"),
    # private modules named in docstrings (where a rule lives) have no page of their own
    (r"py:mod", r"crossent\.(apps\..*|.*\._\w+)"),
    (r"py:.*", r"(pathlib\.)?Path|os\.PathLike|socket\.socket|collections\.abc\..*"),
]

# Executed examples: the guides' ``.. doctest::`` blocks run in the doctest builder, which
# ``make docs`` runs before the HTML build. Docstring examples run in pytest (--doctest-modules).
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import numpy as np
import crossent as ce
"""
doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
)

html_theme = "pydata_sphinx_theme"
html_title = f"crossent {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
# the top-level pages have no section to navigate (and the tables want the width)
html_sidebars = {"index": [], "guides/*": [], "semantics": [], "benchmarks": []}
# MathJax from the site itself (``_static/mathjax``), not from a CDN: formulas render offline.
# ``make docs`` fetches the official npm build into the git-ignored _mathjax (the Makefile says
# why that way and that version); the HTML build refuses to start without it.
MATHJAX = HERE / "_mathjax"
html_static_path = ["_static", "_mathjax"]
mathjax_path = "mathjax/tex-chtml.js"
html_css_files = ["wide.css"]
html_show_sourcelink = False


class _CanonicalDuplicates(logging.Filter):
    """Drop the warning for a class exported twice (``crossent.X`` and ``crossent.calibration.X``).

    Both pages declare the same private canonical name (``crossent._calibration...``), which
    Sphinx reports as a duplicate; the two public names are both wanted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("duplicate object description of crossent._")


def _require_mathjax(app: Sphinx) -> None:
    """Stop an HTML build whose MathJax was not fetched, instead of a site whose formulas fail."""
    if app.builder.format == "html" and not (MATHJAX / mathjax_path).is_file():
        raise FileNotFoundError(
            f"MathJax is missing: {MATHJAX / mathjax_path} not found; `make docs` fetches it"
            " (`npm pack mathjax@3.2.2`, its es5/ folder as docs/_mathjax/mathjax)"
        )


def setup(app: Sphinx) -> None:
    logging.getLogger("sphinx.sphinx.domains.python").addFilter(_CanonicalDuplicates())
    app.connect("builder-inited", _require_mathjax)
