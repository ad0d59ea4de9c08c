"""YAML configuration of the toy MC: JSON schema with defaults, loaded with ``signal_models._common.config``.

Example (every key optional; the values shown are the defaults)::

    seed: 0
    lumi_fb: 0.1            # fb^-1: normalises MC weights, sets the pseudo-data size
    chunk_size: 100000      # events written per tree.extend
    samples: null           # null = all; or a list such as [signal, ggg, data]
    beam: {e_her: 7.0, e_ler: 4.0, crossing_angle: 0.083, e_spread_her: 6.4e-4, e_spread_ler: 8.0e-4}
    signal:
      masses: [0.5, 1.0, 2.0, 4.0, 7.0]    # GeV
      n_per_mass: 4000
      g_agg: 1.0e-3         # GeV^-1, sets the signal cross-section (weights)
      lifetime: false       # true: ALPs fly beta gamma hbar c / Gamma(m_a, g_agg) before decaying
    backgrounds:            # events per background MC sample (weighted to lumi_fb)
      ggg: 20000
      eeg: 5000
      pi0g: 2000
      etag: 2000
      etapg: 2000
      pi0gg: 5000
      etagg: 5000
      etapgg: 5000
    control: {n: 5000}     # e+e- -> mu+ mu- gamma
    xsec_pb: {}             # replace built-in cross-sections, e.g. {eeg: 50.0}
    data:
      enabled: true
      inject: null          # or {mass: 2.0, n_events: 300} / {mass: 2.0, xsec_pb: 1.5}
    detector: {...}         # fields of DetectorSettings + endcap_energy_factor, endcap_angle_factor
    generator: {...}        # fields of GeneratorSettings
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from signal_models._common.config import load_config

from .detector_sim import DetectorSettings
from .processes import BACKGROUNDS, GeneratorSettings

__all__ = ["CONFIG_SCHEMA", "DEFAULT_BACKGROUND_EVENTS", "load_toymc_config"]

DEFAULT_MASSES = [0.5, 1.0, 2.0, 4.0, 7.0]
DEFAULT_BACKGROUND_EVENTS = {
    "ggg": 20_000,
    "eeg": 5_000,
    "pi0g": 2_000,
    "etag": 2_000,
    "etapg": 2_000,
    "pi0gg": 5_000,
    "etagg": 5_000,
    "etapgg": 5_000,
}

_NUM = {"type": "number"}
_POS = {"type": "number", "exclusiveMinimum": 0}


def _dataclass_props(cls: type, *, minimum: float | None = 0) -> dict[str, Any]:
    props = {}
    for f in fields(cls):
        if isinstance(f.default, bool):
            props[f.name] = {"type": "boolean", "default": f.default}
            continue
        spec: dict[str, Any] = {"type": "number", "default": f.default}
        if minimum is not None and not f.name.startswith("ecl_z"):
            spec["minimum"] = minimum
        props[f.name] = spec
    return props


_DETECTOR_PROPS = _dataclass_props(DetectorSettings)
_DETECTOR_PROPS["tracking_inefficiency"]["maximum"] = 1
_DETECTOR_PROPS["energy_tail"]["maximum"] = 1
_DETECTOR_PROPS["endcap_energy_factor"] = {"type": "number", "exclusiveMinimum": 0, "default": 1.5}
_DETECTOR_PROPS["endcap_angle_factor"] = {"type": "number", "exclusiveMinimum": 0, "default": 1.3}
_GENERATOR_PROPS = _dataclass_props(GeneratorSettings)
_GENERATOR_PROPS["e_min_cm"]["exclusiveMinimum"] = 0
_GENERATOR_PROPS["cos_max_cm"].update({"exclusiveMinimum": 0, "exclusiveMaximum": 1})

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": {"type": "integer", "minimum": 0, "default": 0},
        "lumi_fb": {**_POS, "default": 0.1},
        "chunk_size": {"type": "integer", "minimum": 1, "default": 100_000},
        "samples": {"type": ["array", "null"], "items": {"type": "string"}, "default": None},
        "beam": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "e_her": {**_POS, "default": 7.0},
                "e_ler": {**_POS, "default": 4.0},
                "crossing_angle": {"type": "number", "minimum": 0, "maximum": 1.5, "default": 0.083},
                "e_spread_her": {"type": "number", "minimum": 0, "maximum": 0.1, "default": 6.4e-4},
                "e_spread_ler": {"type": "number", "minimum": 0, "maximum": 0.1, "default": 8.0e-4},
            },
        },
        "signal": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "masses": {"type": "array", "items": _POS, "default": list(DEFAULT_MASSES)},
                "n_per_mass": {"type": "integer", "minimum": 1, "default": 4000},
                "g_agg": {**_POS, "default": 1.0e-3},
                "lifetime": {"type": "boolean", "default": False},
            },
        },
        "backgrounds": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {p: {"type": "integer", "minimum": 0, "default": DEFAULT_BACKGROUND_EVENTS[p]} for p in BACKGROUNDS},
        },
        "control": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {"n": {"type": "integer", "minimum": 0, "default": 5_000}},
        },
        "xsec_pb": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {p: {"type": "number", "minimum": 0} for p in (*BACKGROUNDS, "mumug")},
        },
        "data": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "enabled": {"type": "boolean", "default": True},
                "inject": {
                    "type": ["object", "null"],
                    "default": None,
                    "additionalProperties": False,
                    "required": ["mass"],
                    "properties": {
                        "mass": _POS,
                        "n_events": {"type": "number", "minimum": 0},
                        "xsec_pb": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
        "detector": {"type": "object", "additionalProperties": False, "default": {}, "properties": _DETECTOR_PROPS},
        "generator": {"type": "object", "additionalProperties": False, "default": {}, "properties": _GENERATOR_PROPS},
    },
}


def load_toymc_config(config: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read and validate a toy-MC configuration (YAML path, mapping or None for defaults).

    Raises
    ------
    bumphunt.errors.ConfigError
        Naming the offending key, e.g. ``toymc.yaml: signal.n_per_mass: 0 is less than the minimum of 1``.
    """
    return load_config(config, CONFIG_SCHEMA)
