"""PDG masses in GeV from the ``particle`` package, by one set of names.

The ``particle`` package gives masses in MeV, and its look-up by name is
slow, so the common particles are found by PDG id and every result is
cached. Accepted spellings of the common names: ``pi0``; ``eta``;
``eta'``, ``etap`` or ``eta'(958)``; ``mu`` or ``mu-``; ``Z`` or ``Z0``;
any other name is passed to ``particle.Particle.from_name``.
"""

from __future__ import annotations

import functools

__all__ = ["particle_mass", "PDG_IDS"]

#: PDG ids of the particles the packages use by name.
PDG_IDS: dict[str, int] = {
    "pi0": 111,
    "eta": 221,
    "eta'": 331,
    "etap": 331,
    "eta'(958)": 331,
    "mu": 13,
    "mu-": 13,
    "Z": 23,
    "Z0": 23,
}


@functools.cache
def particle_mass(name: str) -> float:
    """PDG mass of a particle in GeV.

    Parameters
    ----------
    name : str
        One of the names in ``PDG_IDS`` or a name known to ``particle``.

    Raises
    ------
    ValueError
        Unknown particle name, or a particle without a mass.
    """
    from particle import Particle

    try:
        pdgid = PDG_IDS.get(name)
        mass = Particle.from_pdgid(pdgid).mass if pdgid is not None else Particle.from_name(name).mass
    except Exception:  # noqa: BLE001 - particle raises its own exception types
        raise ValueError(f"unknown particle {name!r} (use e.g. 'pi0', 'eta', \"eta'\", 'mu', 'Z')") from None
    if mass is None:
        raise ValueError(f"particle {name!r} has no PDG mass")
    return float(mass) / 1000.0
