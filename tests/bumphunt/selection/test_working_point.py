"""Working point and generalisation table."""

from __future__ import annotations

import numpy as np
import pytest

from bumphunt.selection.working_point import generalisation_table, scan_working_point


def test_generalisation_table_interpolates() -> None:
    masses = np.array([1.0, 2.0, 3.0, 4.0])
    s = np.array([1.0, 1.6, 2.0, 3.0])
    rows = generalisation_table(masses, s, np.array([True, False, True, True]), np.array([False, True, False, False]))
    assert rows[0]["interpolated_pb"] == pytest.approx(1.5) and rows[0]["ratio"] == pytest.approx(1.6 / 1.5)
    # statistical uncertainty: equal efficiencies 0.5 from 100 events -> 10% each; interpolation halfway -> 10%/sqrt(2)
    rows = generalisation_table(masses, s, np.array([True, False, True, True]), np.array([False, True, False, False]),
                                efficiency=np.full(4, 0.5), n_gen=np.full(4, 100))
    w_l, w_r = 0.5 * 1.0 / 1.5, 0.5 * 2.0 / 1.5
    expected = (1.6 / 1.5) * np.hypot(0.1, 0.1 * np.hypot(w_l, w_r))
    assert rows[0]["ratio_stat_unc"] == pytest.approx(expected)


def test_scan_working_point_with_perfect_discriminant(small_data) -> None:  # noqa: ANN001
    d = small_data
    y = d.label.astype(float) * 0.9 + 0.05
    wp = scan_working_point(d, y, thresholds=np.array([0.0, 0.5, 0.96]))
    # cutting at 0.5 keeps all signal and no background; 0.96 keeps nothing (infinite, never chosen)
    assert wp.threshold == 0.5
    assert np.all(wp.per_mass["background"] == 0)
    assert np.isinf(wp.mean_curve[2])

