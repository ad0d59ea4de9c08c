"""Alias maps and energy units: reading ntuples whose branches have other names (e.g. from basf2).

Real ntuples use other branch names and often MeV. An alias map (a YAML file
or a mapping, validated by ``signal_models._common.config``) says which branch
of the file holds which schema quantity, which unit energies are in, and
constant values for event branches the file does not have::

    # basf2_aliases.yaml: an event-based basf2 tree of photon candidates
    tree: gammas                 # tree name in the file (default: events)
    energy_unit: MeV             # GeV (default) or MeV; converted on reading
    branches:                    # schema name: branch name in the file
      event: __event__
      weight: __weight__
      ngamma: __ncandidates__
      gamma_E: E
      gamma_theta: theta
      gamma_phi: phi
      gamma_time: clusterTiming
      gamma_region: clusterReg
      gamma_cov_EE: clusterErrorE2
      track_px: trk_px
      track_py: trk_py
      track_pz: trk_pz
      track_charge: trk_charge
      track_dr: trk_dr
      track_dz: trk_dz
      ntrack: nTracks
    constants:                   # event branches absent from the file
      process: data              # a name from schema.PROCESS_CODES or a code
      weight: 1.0

``energy_unit: MeV`` converts photon and track energies/momenta, the energy
parts of the covariance (``cov_EE`` by 1e-6, ``cov_Etheta``/``cov_Ephi`` by
1e-3), ``mc_E`` and ``mc_ma`` to GeV (``MEV_FACTORS``). Without a unit,
energies that look like MeV (median photon energy above ``MEV_SUSPICION_GEV``
= 20 GeV: no Belle II photon is that hard) are an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .schema import COLLECTIONS, EVENT_BRANCHES, PROCESS_CODES

__all__ = ["ALIAS_SCHEMA", "MEV_FACTORS", "MEV_SUSPICION_GEV", "SCHEMA_NAMES", "load_aliases", "resolve_energy_unit"]

#: Median photon energy (GeV) above which energies are taken to be in MeV.
MEV_SUSPICION_GEV = 20.0

#: Every schema name an alias map may map: event branches, counters, ``<collection>_<field>``.
SCHEMA_NAMES: tuple[str, ...] = (
    *(b.name for b in EVENT_BRANCHES),
    *(counter for counter, _ in COLLECTIONS.values()),
    *(f"{coll}_{b.name}" for coll, (_, fields) in COLLECTIONS.items() for b in fields),
)

#: Multiplicative factors converting MeV-based quantities to GeV (by schema name).
MEV_FACTORS: dict[str, float] = {
    "mc_ma": 1e-3,
    "gamma_E": 1e-3,
    "gamma_mc_E": 1e-3,
    "gamma_cov_EE": 1e-6,
    "gamma_cov_Etheta": 1e-3,
    "gamma_cov_Ephi": 1e-3,
    "track_px": 1e-3,
    "track_py": 1e-3,
    "track_pz": 1e-3,
}

#: JSON schema of an alias map (YAML file or mapping).
ALIAS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "tree": {"type": "string", "minLength": 1},
        "energy_unit": {"enum": ["GeV", "MeV"]},
        "branches": {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: {"type": "string", "minLength": 1} for name in SCHEMA_NAMES},
            "default": {},
        },
        "constants": {
            "type": "object",
            "additionalProperties": False,
            "properties": {b.name: {"type": ["number", "string"]} for b in EVENT_BRANCHES},
            "default": {},
        },
    },
}


def load_aliases(aliases: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read and validate an alias map (YAML file or mapping; see the module doc).

    A mapping without any of the keys ``tree``, ``energy_unit``, ``branches``,
    ``constants`` is taken as a plain ``{schema name: branch name}`` map.

    Returns
    -------
    dict
        The validated map with defaults filled in; a ``process`` constant
        given by name is replaced by its code.

    Raises
    ------
    ConfigError
        Unknown keys or schema names, a bad unit, an unknown process name.
    """
    from signal_models._common.config import load_config

    if isinstance(aliases, Mapping) and aliases and not (set(aliases) & set(ALIAS_SCHEMA["properties"])):
        aliases = {"branches": dict(aliases)}
    cfg = load_config(aliases, ALIAS_SCHEMA, source=None if not isinstance(aliases, Mapping) else "aliases")
    for name, value in cfg.get("constants", {}).items():
        if name == "process" and isinstance(value, str):
            if value not in PROCESS_CODES:
                raise ConfigError(f"aliases: constants.process: unknown process {value!r}; allowed: {', '.join(PROCESS_CODES)}")
            cfg["constants"][name] = PROCESS_CODES[value]
        elif isinstance(value, str):
            raise ConfigError(f"aliases: constants.{name}: expected a number, got {value!r}")
    return cfg


def resolve_energy_unit(energy_unit: str | None, cfg: Mapping[str, Any]) -> str | None:
    """The energy unit to read with: ``energy_unit`` if given, else the alias map's, else None (unset).

    Raises
    ------
    ConfigError
        The unit is not ``"GeV"`` or ``"MeV"``.
    """
    unit = energy_unit if energy_unit is not None else cfg.get("energy_unit")
    if unit is not None and unit not in ("GeV", "MeV"):
        raise ConfigError(f"energy_unit: {unit!r} is not one of 'GeV', 'MeV'")
    return unit
