"""Signal-mass grid, held-out masses and the default diphoton mass resolution."""

from __future__ import annotations

import numpy as np
import pytest

from bumphunt.errors import InputError
from bumphunt.events.candidates import diphoton_candidates
from bumphunt.selection.masses import choose_heldout, default_mass_resolution, mass_grid
from bumphunt.toymc.three_photon import synthetic_sample


def test_default_resolution_matches_smeared_toy() -> None:
    ev, _ = synthetic_sample(masses=[0.5, 3.0, 8.0], n_per_mass=3000, n_background=10, seed=2, bb_fraction=0.0)
    cand = diphoton_candidates(ev)
    tm = cand["truth_match"] & (cand["process"] == 0)
    for m in (0.5, 3.0, 8.0):
        sel = tm & np.isclose(cand["mc_ma"], m)
        q16, q84 = np.percentile(cand["mgg"][sel], [16, 84])
        assert default_mass_resolution(m) == pytest.approx(0.5 * (q84 - q16), rel=0.2)


def test_mass_grid_and_heldout() -> None:
    g = mass_grid()
    assert g[0] == pytest.approx(0.175) and g[-1] == pytest.approx(10.375) and len(g) == 205
    h = choose_heldout(g, 22)
    assert len(h) == 22 and h.min() > g[0] and h.max() < g[-1]
    with pytest.raises(InputError):
        choose_heldout(g[:5], 3)

