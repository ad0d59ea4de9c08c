"""The examples in the docstrings of the public contract (../shared/DESIGN.md) run and give what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

#: modules whose docstrings carry the contract's examples
MODULES = [
    "bumphunt.kinematics",
    "bumphunt.kinfit.api",
    "bumphunt.selection.figures_of_merit",
    "signal_models.shapes",
    "signal_models.model",
    "signal_models.alp",
    "fits.api",
    "fits.channels",
    "scans.driver",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"
    assert result.attempted > 0, f"{name}: no docstring example"
