"""Sphinx configuration for the bumphunt documentation (myst-nb executes the tutorials)."""


project = "bumphunt"
author = "bumphunt developers"
extensions = ["myst_nb"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nb_execution_mode = "auto"
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_execution_in_temp = True  # tutorials write their outputs into a temporary directory, not into docs/
html_theme = "alabaster"
# figures: the tutorials select the inline backend (%matplotlib inline), so plt.show() puts them into the page
