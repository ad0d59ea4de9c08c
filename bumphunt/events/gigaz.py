"""The selection of the ILC Giga-Z ALP study (Z -> a gamma -> 3 gamma at sqrt(s) = m_Z) on three-photon events.

The study (Steinberg and Wells, arXiv:2101.00520; ``shared/reference/physics.md``)
keeps events with three non-overlapping photons, Delta R > 0.035 between each
pair, each above 2 GeV, and for a mass hypothesis m_a one photon within 5 GeV
of the recoil energy E_recoil(m_a) = (s - m_a^2) / (2 sqrt(s)). Delta R is the
usual collider distance sqrt(Delta eta^2 + Delta phi^2), eta = -ln tan(theta/2)
(lab frame; at a symmetric Z-pole collider the lab is the CM frame).

``GigaZSelection`` holds the cut values (YAML: ``GigaZSelection.from_config``,
the published values are the defaults); on three-photon events
(``bumphunt.events.preselect``) and their diphoton candidates
(``bumphunt.events.candidates``):

- ``event_mask``: the photon requirements (energy, separation), per event;
- ``recoil_mask``: the recoil requirement for one hypothesis m_a, per candidate
  (the recoil candidate is the photon not in the pair), for counting
  analyses that select per hypothesis;
- ``candidate_mask``: the selection of a likelihood scan, which needs one set
  of candidates for all hypotheses: the photon requirements, and the recoil
  requirement evaluated at the candidate's own mass,
  |E_recoil - E_recoil(M_gg)| < 5 GeV. A candidate enters the fit of
  hypothesis m_a only inside that hypothesis' window, where
  |E_recoil(M_gg) - E_recoil(m_a)| = |M_gg^2 - m_a^2| / (2 sqrt(s)) is small
  (below 0.8 GeV for +-20 sigma windows of the Z-pole preset up to 50 GeV),
  so this differs from the per-hypothesis requirement only by that much of the
  5 GeV window. With photons fitted to the beams (4C fit), E_recoil equals
  E_recoil(M_gg) exactly and the per-hypothesis requirement is the mass
  window |M_gg^2 - m_a^2| < 2 sqrt(s) x 5 GeV (``recoil_mass_window``): the
  study's recoil cut is what picks the photon pairing and the mass region,
  which the likelihood's fit window does in the scan.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = ["GigaZSelection", "GIGAZ_SELECTION_SCHEMA", "delta_r", "recoil_energy", "recoil_mass_window"]

_PAIRS = ((0, 1), (0, 2), (1, 2))


def delta_r(theta1: ArrayLike, phi1: ArrayLike, theta2: ArrayLike, phi2: ArrayLike) -> NDArray[np.float64]:
    """sqrt(Delta eta^2 + Delta phi^2) between directions given by polar and azimuthal angles (rad)."""
    eta1 = -np.log(np.tan(0.5 * np.asarray(theta1, dtype=float)))
    eta2 = -np.log(np.tan(0.5 * np.asarray(theta2, dtype=float)))
    dphi = np.mod(np.asarray(phi1, dtype=float) - np.asarray(phi2, dtype=float) + np.pi, 2.0 * np.pi) - np.pi
    return np.sqrt((eta1 - eta2) ** 2 + dphi**2)


def recoil_energy(mass: ArrayLike, sqrt_s: float) -> NDArray[np.float64]:
    """E_recoil(m) = (s - m^2) / (2 sqrt(s)) in GeV: the CM energy of the photon recoiling against mass ``m``."""
    m = np.asarray(mass, dtype=float)
    return (sqrt_s**2 - m**2) / (2.0 * sqrt_s)


def recoil_mass_window(mass: float, sqrt_s: float, window: float) -> tuple[float, float]:
    """The M_gg range (GeV) whose recoil energy is within ``window`` GeV of E_recoil(``mass``).

    |E_recoil(M) - E_recoil(m)| < w  <=>  m^2 - 2 sqrt(s) w < M^2 < m^2 + 2 sqrt(s) w.
    """
    if not 0 <= mass < sqrt_s:
        raise ValueError(f"mass {mass} GeV must be in [0, sqrt(s) = {sqrt_s:g}) GeV")
    lo2 = mass**2 - 2.0 * sqrt_s * window
    hi2 = mass**2 + 2.0 * sqrt_s * window
    return float(np.sqrt(max(lo2, 0.0))), float(min(np.sqrt(hi2), sqrt_s))


@dataclass(frozen=True)
class GigaZSelection:
    """Cut values of the Giga-Z selection (GeV); defaults are the published ones.

    Parameters
    ----------
    photon_e_min : float
        Minimum energy of each of the three photons (GeV).
    delta_r_min : float
        Minimum Delta R between any two of the three photons.
    recoil_window : float
        One photon within this many GeV of E_recoil(m_a).
    """

    photon_e_min: float = 2.0
    delta_r_min: float = 0.035
    recoil_window: float = 5.0

    def __post_init__(self) -> None:
        for name in ("photon_e_min", "delta_r_min", "recoil_window"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"GigaZSelection.{name}: expected a finite value >= 0, got {value!r}")

    @classmethod
    def from_config(cls, config: str | Path | Mapping[str, Any] | None) -> GigaZSelection:
        """The selection from a YAML file or mapping (keys at the top level or under ``gigaz_selection:``).

        Raises
        ------
        ConfigError
            Missing file, invalid YAML, unknown keys or invalid values (naming them).
        """
        from signal_models._common.config import load_config, read_mapping

        raw, source = read_mapping(config, source=None, default_source="Giga-Z selection", mapping_source="Giga-Z selection")
        if isinstance(raw.get("gigaz_selection"), Mapping):
            raw = dict(raw["gigaz_selection"])
        cfg = load_config(raw, GIGAZ_SELECTION_SCHEMA, source=source)
        try:
            return cls(**cfg)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, float]:
        """The cut values by name (JSON-ready)."""
        return asdict(self)

    def event_mask(self, three: Mapping[str, NDArray]) -> NDArray[np.bool_]:
        """Events whose three photons are all above ``photon_e_min`` and pairwise separated by ``delta_r_min``.

        ``three``: three-photon events with ``E``, ``theta``, ``phi`` of shape (n, 3) (measured photons).
        """
        E, theta, phi = _photons(three)
        ok = np.all(E > self.photon_e_min, axis=1)
        for a, b in _PAIRS:
            ok &= delta_r(theta[:, a], phi[:, a], theta[:, b], phi[:, b]) > self.delta_r_min
        return ok

    def recoil_mask(self, candidates: Mapping[str, NDArray], mass: float, sqrt_s: float) -> NDArray[np.bool_]:
        """Candidates whose recoil photon (CM energy ``E_recoil_cm``) is within ``recoil_window`` of E_recoil(``mass``).

        The requirement of hypothesis ``mass`` (GeV) alone; combine with ``event_mask``
        repeated over the three candidates of each event.
        """
        if not 0 <= mass < sqrt_s:
            raise InputError(f"Giga-Z recoil requirement: mass {mass} GeV must be in [0, sqrt(s) = {sqrt_s:g}) GeV")
        e_rec = np.asarray(_column(candidates, "E_recoil_cm"), dtype=float)
        return np.abs(e_rec - recoil_energy(mass, sqrt_s)) < self.recoil_window

    def candidate_mask(self, three: Mapping[str, NDArray], candidates: Mapping[str, NDArray], sqrt_s: float) -> NDArray[np.bool_]:
        """The scan's selection of diphoton candidates (module docstring): photon requirements and the recoil
        requirement at each candidate's own mass ``mgg``.

        ``candidates`` are the three candidates per event of ``three``
        (``bumphunt.events.candidates.diphoton_candidates``), in its order.
        """
        per_event = np.repeat(self.event_mask(three), 3)
        mgg = np.asarray(_column(candidates, "mgg"), dtype=float)
        if per_event.shape != mgg.shape:
            raise InputError(f"Giga-Z selection: {mgg.size} candidates for {per_event.size // 3} events (expected three per event)")
        e_rec = np.asarray(_column(candidates, "E_recoil_cm"), dtype=float)
        return per_event & (np.abs(e_rec - recoil_energy(np.minimum(mgg, sqrt_s), sqrt_s)) < self.recoil_window)


def _column(data: Mapping[str, NDArray], key: str) -> NDArray:
    if key not in data:
        raise InputError(f"Giga-Z selection: no {key!r} in the input (keys: {sorted(data)})")
    return data[key]


def _photons(three: Mapping[str, NDArray]) -> tuple[NDArray, NDArray, NDArray]:
    E = np.asarray(_column(three, "E"), dtype=float)
    if E.ndim != 2 or E.shape[1] != 3:
        raise InputError(f"Giga-Z selection: photon energies must have shape (n, 3), got {E.shape}")
    return E, np.asarray(_column(three, "theta"), dtype=float), np.asarray(_column(three, "phi"), dtype=float)


def _schema() -> dict[str, Any]:
    descriptions = {
        "photon_e_min": "Minimum energy of each of the three photons (GeV).",
        "delta_r_min": "Minimum Delta R = sqrt(Delta eta^2 + Delta phi^2) between any two photons.",
        "recoil_window": "One photon within this many GeV of E_recoil(m_a) = (s - m_a^2) / (2 sqrt(s)).",
    }
    props = {name: {"type": "number", "minimum": 0, "default": getattr(GigaZSelection, name), "description": text}
             for name, text in descriptions.items()}
    return {"type": "object", "additionalProperties": False, "properties": props}


#: JSON schema of the Giga-Z selection config (keys = ``GigaZSelection`` fields).
GIGAZ_SELECTION_SCHEMA: dict[str, Any] = _schema()
