"""Sphinx configuration for the bumphunt documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Warnings are errors (``-W``). myst-nb executes the tutorials at small sizes
(``BUMPHUNT_DOCS_SMALL=1``, set below for the kernels); add
``-D nb_execution_mode=off`` for a quick build without running them. The API
reference (``docs/_ext/public_api.py``), the CLI reference (sphinx-click) and
the configuration tables (``docs/_ext/config_schema.py``) are generated from
the code at build time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # the packages of this checkout, also without an installed copy

# the tutorials read this to run at small sizes; the notebook kernels inherit the environment
os.environ.setdefault("BUMPHUNT_DOCS_SMALL", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ZFIT_DISABLE_TF_WARNINGS", "1")

from signal_models._common.version import __version__  # noqa: E402

project = "bumphunt"
author = "bumphunt developers"
release = version = __version__
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_click",
    "public_api",
    "config_schema",
    "plain_text",
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]

# --- tutorials (myst-nb): executed on every build, each in a temporary directory
nb_execution_mode = "auto"
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_execution_in_temp = True  # tutorials write their outputs into a temporary directory, not into docs/
# figures: the tutorials select the inline backend (%matplotlib inline), so plt.show() puts them into the page
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# --- API reference: numpy-style docstrings, public names only (the public-api directive reads __all__)
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
# the annotations are strings (postponed evaluation): keep the numpy aliases short instead of expanding their unions
autodoc_type_aliases = {"ArrayLike": "numpy.typing.ArrayLike", "NDArray": "numpy.typing.NDArray"}
autosummary_generate = False
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes" as fields: no second description of a property documented as a member
napoleon_use_rtype = False

# command-line options are written with two hyphens (--out), not as dashes
smartquotes = False

html_theme = "alabaster"
html_title = f"bumphunt {release}"
