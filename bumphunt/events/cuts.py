"""Pre-selection cut values (``PreselectionCuts``) and the schema of their YAML configuration.

The defaults are the Belle II cuts of the e+e- -> gamma a, a -> gamma gamma
search (see ``bumphunt.events.preselection`` for what each cut does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .detector import CDC_THETA_MAX, CDC_THETA_MIN

__all__ = ["PreselectionCuts", "PRESELECTION_SCHEMA"]


@dataclass(frozen=True)
class PreselectionCuts:
    """Pre-selection cut values (GeV, rad, ns, cm).

    Parameters
    ----------
    photon_e_min : float
        Minimum cluster energy (GeV).
    photon_theta_min, photon_theta_max : float
        Polar-angle acceptance of photon candidates (rad), CDC acceptance.
    photon_time_max : float
        Maximum |cluster time| (ns).
    multiplicity : {"exactly", "at_least"}
        Keep events with exactly three passing photon candidates (Belle II),
        or with at least three (then the three most energetic are kept).
    mggg_min, mggg_max : float
        Window on the three-photon mass as fractions of sqrt(s).
    time_spread_max : float
        Maximum spread (max - min) of the three cluster times (ns).
    veto_good_tracks : bool
        Reject events with a good track.
    track_dr_max, track_dz_max : float
        Good track: |dr| < track_dr_max and |dz| < track_dz_max (cm).
    track_theta_min, track_theta_max : float
        Good track: polar angle of its momentum inside this range (rad).
    """

    photon_e_min: float = 0.1
    photon_theta_min: float = float(CDC_THETA_MIN)
    photon_theta_max: float = float(CDC_THETA_MAX)
    photon_time_max: float = 200.0
    multiplicity: str = "exactly"
    mggg_min: float = 0.8
    mggg_max: float = 1.05
    time_spread_max: float = 20.0
    veto_good_tracks: bool = True
    track_dr_max: float = 1.0
    track_dz_max: float = 3.0
    track_theta_min: float = float(CDC_THETA_MIN)
    track_theta_max: float = float(CDC_THETA_MAX)

    def __post_init__(self) -> None:
        if self.multiplicity not in ("exactly", "at_least"):
            raise ValueError(f"multiplicity must be 'exactly' or 'at_least', got {self.multiplicity!r}")
        if not self.mggg_min < self.mggg_max:
            raise ValueError(f"mggg_min ({self.mggg_min}) must be below mggg_max ({self.mggg_max})")
        if not self.photon_theta_min < self.photon_theta_max:
            raise ValueError("photon_theta_min must be below photon_theta_max")

    @classmethod
    def from_config(cls, config: str | Path | Mapping[str, Any] | None) -> PreselectionCuts:
        """Cuts from a YAML file or mapping (keys = field names; missing keys take the defaults).

        Accepts the keys at the top level or under a ``preselection:`` section.

        Raises
        ------
        ConfigError
            Missing file, invalid YAML, unknown keys or invalid values.
        """
        from signal_models._common.config import load_config, read_mapping

        raw, source = read_mapping(config, source=None, default_source="preselection config", mapping_source="preselection config")
        if "preselection" in raw and isinstance(raw["preselection"], Mapping):
            raw = raw["preselection"]
        cfg = load_config(raw, PRESELECTION_SCHEMA, source=source)
        try:
            return cls(**cfg)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The cut values by field name (JSON-ready)."""
        return asdict(self)


def _schema() -> dict[str, Any]:
    props: dict[str, Any] = {}
    for f in fields(PreselectionCuts):
        default = f.default
        if isinstance(default, bool):
            props[f.name] = {"type": "boolean", "default": default}
        elif isinstance(default, str):
            props[f.name] = {"enum": ["exactly", "at_least"], "default": default}
        else:
            props[f.name] = {"type": "number", "minimum": 0, "default": default}
    return {"type": "object", "additionalProperties": False, "properties": props}


#: JSON schema of the pre-selection config (YAML keys = ``PreselectionCuts`` fields).
PRESELECTION_SCHEMA: dict[str, Any] = _schema()
