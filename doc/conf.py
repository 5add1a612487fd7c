"""Sphinx configuration of the skfarho documentation.

Build (what CI runs, from the repository root)::

    python -m sphinx -W --keep-going -b html doc doc/_build/html
"""

import sys
from pathlib import Path

# Document the working tree, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skfarho import __version__  # noqa: E402

project = "skfarho"
author = "the skfarho developers"
copyright = "the skfarho developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
]

# The build machine has no network access: no inventories are fetched, so
# references to NumPy, JAX or scikit-learn objects stay plain text.
intersphinx_mapping = {}

exclude_patterns = ["_build"]
templates_path = []
html_static_path = []

# autodoc: numpydoc types live in the docstrings; keep signatures short and show
# defaults as written in the source (``gradient_descent(0.1)``, not a repr).
autodoc_typehints = "none"
autodoc_preserve_defaults = True
autodoc_member_order = "bysource"
autodoc_class_signature = "mixed"

# napoleon: numpy style only. Attributes as ``:ivar:`` fields, so that the
# fields of a NamedTuple are not described twice.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True
napoleon_use_rtype = False
# Escape the trailing underscore of fitted attributes (``coef_``) in those
# fields, which reST would otherwise read as a hyperlink reference.
strip_signature_backslash = True

html_theme = "alabaster"
html_title = f"skfarho {release}"
html_theme_options = {
    "description": "Gradient-based hyperparameter optimization for scikit-learn, "
    "on a JAX core",
    "fixed_sidebar": True,
}
