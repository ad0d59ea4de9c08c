"""Beam energies and crossing angles of the collider presets (GeV, rad): one table for every package.

``bumphunt.colliders`` builds its presets' ``Beam`` objects from it and the scan
configuration (``scans.config``, which may not import ``bumphunt``) computes
sqrt(s) of ``beam.collider`` from it.

- belle2: SuperKEKB at the Upsilon(4S), 7 GeV e- on 4 GeV e+, 83 mrad crossing;
- babar: PEP-II at the Upsilon(4S), 9.0 GeV e- on 3.1 GeV e+, head-on;
- zpole: symmetric head-on beams at sqrt(s) = m_Z = 91.1876 GeV.
"""

from __future__ import annotations

__all__ = ["Z_MASS_GEV", "COLLIDER_BEAMS"]

#: Z boson mass (GeV, PDG)
Z_MASS_GEV = 91.1876

#: e_her, e_ler (GeV) and crossing_angle (rad) of each preset
COLLIDER_BEAMS: dict[str, dict[str, float]] = {
    "belle2": {"e_her": 7.0, "e_ler": 4.0, "crossing_angle": 0.083},
    "babar": {"e_her": 9.0, "e_ler": 3.1, "crossing_angle": 0.0},
    "zpole": {"e_her": Z_MASS_GEV / 2.0, "e_ler": Z_MASS_GEV / 2.0, "crossing_angle": 0.0},
}
