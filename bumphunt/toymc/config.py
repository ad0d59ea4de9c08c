"""YAML configuration of the toy MC: JSON schema with defaults, loaded with ``signal_models._common.config``.

Example (every key optional; the values shown are the defaults)::

    collider: belle2        # preset of bumphunt.colliders: belle2, babar, zpole (sets the defaults marked *)
    seed: 0
    lumi_fb: 0.1            # fb^-1: normalises MC weights, sets the pseudo-data size
    chunk_size: 100000      # events written per tree.extend
    samples: null           # null = all; or a list such as [signal, ggg, data]
    beam: {e_her: 7.0, e_ler: 4.0, crossing_angle: 0.083, e_spread_her: 6.4e-4, e_spread_ler: 8.0e-4}   # *
    signal:
      masses: [0.5, 1.0, 2.0, 4.0, 7.0]    # GeV *
      n_per_mass: 4000
      coupling: photon      # * photon (g_agg) or hypercharge (g_aBB: photon and Z exchange)
      g_agg: 1.0e-3         # GeV^-1, coupling of the photon model: the signal cross-section (weights)
      g_abb: 1.0e-3         # GeV^-1, coupling of the hypercharge model (1 TeV^-1)
      lifetime: false       # true: ALPs fly beta gamma hbar c / Gamma(m_a, g_agg) before decaying
    backgrounds:            # events per background MC sample (weighted to lumi_fb); 0 where not modelled
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
    detector: {...}         # * fields of DetectorSettings + endcap_energy_factor, endcap_angle_factor (Belle II)
    generator: {...}        # * fields of GeneratorSettings

A collider preset (``resolve_toymc_config``) sets the starred defaults
(``Collider.toymc_defaults``; none for ``belle2``) below the keys of the
configuration; its calorimeter and photon resolution replace the Belle II ECL
(the endcap factors then do not apply). Backgrounds the toy MC does not model
at the beams' sqrt(s) (``background_models``) default to 0 events; asking for
one is an error naming the process and sqrt(s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from signal_models._common.config import load_config, read_mapping, validate_config

from ..colliders import COLLIDER_NAMES, DEFAULT_COLLIDER, collider
from ..errors import ConfigError
from ..kinematics import Beam
from .background_models import background_model
from .detector_sim import DetectorSettings
from .processes import BACKGROUNDS, GeneratorSettings

__all__ = ["CONFIG_SCHEMA", "DEFAULT_BACKGROUND_EVENTS", "load_toymc_config", "resolve_toymc_config"]

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
        "collider": {"enum": list(COLLIDER_NAMES), "default": DEFAULT_COLLIDER,
                     "description": "Collider preset (bumphunt.colliders): its beams, calorimeter, resolution, detector settings, "
                                    "default masses and coupling become the defaults under this configuration's keys."},
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
                "coupling": {"enum": ["photon", "hypercharge"], "default": "photon",
                             "description": "Coupling model of the signal (signal_models.alp): photon uses g_agg, hypercharge "
                                            "g_abb (photon and Z exchange); default: the collider's (hypercharge at zpole)."},
                "g_agg": {**_POS, "default": 1.0e-3},
                "g_abb": {**_POS, "default": 1.0e-3,
                          "description": "Coupling g_aBB in GeV^-1 of the hypercharge model (cross-section of the weights; "
                                         "g_agg = c_W^2 g_aBB sets the decay length)."},
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
    """Read and validate a toy-MC configuration (YAML path, mapping or None for defaults), its collider preset applied.

    Raises
    ------
    bumphunt.errors.ConfigError
        Naming the offending key, e.g. ``toymc.yaml: signal.n_per_mass: 0 is less than the minimum of 1``.
    """
    return resolve_toymc_config(config)


def _merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """``high`` over ``low``: nested mappings are merged key by key, anything else replaced."""
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_toymc_config(
    config: str | Path | Mapping[str, Any] | None,
    *,
    collider_name: str | None = None,
    beam: Beam | Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A validated toy-MC configuration with the collider preset's defaults and the background model applied.

    Parameters
    ----------
    config : path, mapping or None
        The configuration (YAML path, mapping, or None for the defaults).
    collider_name : str, optional
        Collider preset; replaces the configuration's ``collider`` key (default ``belle2``).
    beam : Beam or mapping, optional
        Beams replacing the configuration's and the preset's.

    Raises
    ------
    ConfigError
        Invalid configuration, an unknown collider, or a background or control
        sample asked for where the toy MC does not model it (the message names
        the process and sqrt(s)).
    """
    raw, source = read_mapping(config, source=None)
    name = collider_name if collider_name is not None else raw.get("collider", DEFAULT_COLLIDER)
    try:
        preset = collider(name)
    except ConfigError as exc:
        raise ConfigError(f"{source}: collider: {exc}") from None
    merged = _merge(preset.toymc_defaults(), raw)
    merged["collider"] = preset.name
    if beam is not None:
        merged["beam"] = (beam if isinstance(beam, Beam) else Beam(**dict(beam))).to_dict()
    cfg = load_config(merged, CONFIG_SCHEMA, source=source)
    try:
        sqrt_s = Beam(**cfg["beam"]).sqrt_s
    except ValueError as exc:
        raise ConfigError(f"{source}: beam: {exc}") from None
    try:
        model = background_model(sqrt_s)
    except ConfigError:
        return cfg  # signal only; generate() refuses backgrounds there, naming sqrt(s)
    user_bkg = raw.get("backgrounds") if isinstance(raw.get("backgrounds"), Mapping) else {}
    for proc in BACKGROUNDS:
        if proc in model.processes:
            continue
        if user_bkg.get(proc):
            raise ConfigError(f"{source}: backgrounds.{proc}: the toy MC does not model {proc} at sqrt(s) = {sqrt_s:.4f} GeV "
                              f"(background model {model.name}: {', '.join(model.processes)})")
        cfg["backgrounds"][proc] = 0
    if not model.control:
        user_ctl = raw.get("control") if isinstance(raw.get("control"), Mapping) else {}
        if user_ctl.get("n"):
            raise ConfigError(f"{source}: control.n: the toy MC has no mu mu gamma control sample at sqrt(s) = {sqrt_s:.4f} GeV "
                              f"(background model {model.name})")
        cfg["control"]["n"] = 0
    validate_config(cfg, CONFIG_SCHEMA, source=source)
    return cfg
