"""Punzi figure of merit and Asimov significance: closed forms, units, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from bumphunt.errors import InputError
from bumphunt.selection.figures_of_merit import asimov_significance, punzi_sensitivity, punzi_smin


def test_punzi_smin_closed_form() -> None:
    a, b = 5.0, 1.28
    B = np.array([0.0, 1.0, 100.0, 1e4])
    basic = b * b / 2 + a * np.sqrt(B) + b / 2 * np.sqrt(b * b + 4 * a * np.sqrt(B) + 4 * B)
    ext = a * a / 8 + 9 * b * b / 13 + a * np.sqrt(B) + b / 2 * np.sqrt(b * b + 4 * a * np.sqrt(B) + 4 * B)
    np.testing.assert_allclose(punzi_smin(B, a, b), basic)
    np.testing.assert_allclose(punzi_smin(B, a, b, formula="extended"), ext)
    # B = 0: S_min = b^2 (basic); large B: S_min -> (a + b) sqrt(B)
    assert punzi_smin(0.0, a, b) == pytest.approx(b * b)
    assert punzi_smin(1e10, a, b) / np.sqrt(1e10) == pytest.approx(a + b, rel=1e-3)


def test_punzi_sensitivity_units_and_edge_cases() -> None:
    s = punzi_sensitivity(0.5, 100.0, 2.0, 5.0, 1.28)
    assert s == pytest.approx(punzi_smin(100.0) / (0.5 * 2.0 * 1000.0))
    assert np.isinf(punzi_sensitivity(0.0, 10.0, 1.0))
    with pytest.raises(InputError, match="background"):
        punzi_sensitivity(0.5, -1.0, 1.0)
    with pytest.raises(InputError, match="efficiency"):
        punzi_sensitivity(1.5, 1.0, 1.0)
    with pytest.raises(InputError, match="lumi"):
        punzi_sensitivity(0.5, 1.0, 0.0)


def test_asimov_significance_limits() -> None:
    # S << B: Z -> S / sqrt(B)
    assert asimov_significance(1.0, 1e6) == pytest.approx(1e-3, rel=1e-3)
    assert asimov_significance(0.0, 5.0) == 0.0

