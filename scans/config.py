"""Scan configuration: YAML validated against a JSON schema shipped with the package.

``load_scan_config`` reads a YAML file (or takes a mapping, or ``None`` for the
defaults), fills the defaults of the schema and validates, raising
``ScanConfigError`` that names the key path and, for unknown keys or bad
choices, the allowed keys or values, e.g.::

    scan.yaml: mass.step: -0.05 is less than or equal to the minimum of 0

The documented default configuration is ``scans/default_scan.yaml`` (the same
values as the schema defaults): the Belle II-style search from 0.175 to
9.6 GeV in 0.05 GeV steps with pi0, eta and eta' vetoed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from signal_models._common.beams import COLLIDER_BEAMS
from signal_models._common.config import fill_defaults, read_mapping, validate_config
from signal_models._common.defaults import DEFAULT_BKG_ORDER, DEFAULT_CL, DEFAULT_HALF_WIDTH
from signal_models._common.pdg import particle_mass

from .blinding import BLINDING_SCHEMA
from .config_datasets import BACKGROUND_MODEL_SCHEMA, NUISANCES_SCHEMA, TRIGGER_SCHEMA, check_combined_sections, datasets_schema
from .errors import ScanConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "SCAN_SCHEMA",
    "DEFAULT_CONFIG_PATH",
    "load_scan_config",
    "config_hash",
    "sqrt_s_from_config",
    "COLLIDER_BEAMS",
    "RESULT_NEUTRAL_KEYS",
]

#: The shipped, documented default configuration file.
DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_scan.yaml")

#: Top-level keys that do not change the scan result (how and where it runs);
#: they are left out of the configuration hash guarding ``--resume``.
RESULT_NEUTRAL_KEYS = ("execution", "output", "provenance")

_POS = {"type": "number", "exclusiveMinimum": 0}
_FRAC = {"type": "number", "minimum": 0}
_RANGE = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}

SCAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "bumphunt scan configuration",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "inputs": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "Selected diphoton candidates to scan.",
            "properties": {
                "files": {"type": "array", "items": {"type": "string"}, "default": [],
                          "description": "Input files (ROOT, .npy, .npz, .csv)."},
                "kind": {"enum": ["candidates", "events"], "default": "candidates",
                         "description": "candidates: files hold one M_gg per selected candidate; events: raw ntuples run through "
                                        "pre-selection, kinematic fit, candidates and the selector (selection.model, optional)."},
                "tree": {"type": ["string", "null"], "minLength": 1, "default": None,
                         "description": "ROOT tree name; null = 'candidates' for kind candidates, the ntuple's tree ('events' or the alias map's) for kind events."},
                "branch": {"type": "string", "default": "mgg", "description": "Branch/column/array holding M_gg in GeV."},
                "aliases": {"type": "object", "additionalProperties": {"type": "string"}, "default": {},
                            "description": "Branch aliases (schema name -> name in the file)."},
                "alias_file": {"type": ["string", "null"], "default": None,
                               "description": "kind events: alias-map YAML for basf2-like ntuples (tree, energy_unit, branches, constants; relative to this file)."},
                "energy_unit": {"enum": [None, "GeV", "MeV"], "default": None,
                                "description": "kind events: unit of the energies in the ntuples (null: GeV, MeV-looking values are an error)."},
                "kinematic_fit": {"type": "boolean", "default": True,
                                  "description": "kind events: compute M_gg from photons fitted to the beam (4C fit)."},
                "selection": {
                    "type": "object",
                    "additionalProperties": False,
                    "default": {},
                    "properties": {
                        "model": {"type": ["string", "null"], "default": None, "description": "kind events: Punzi-net selector directory (relative to this file); null = no selector cut."},
                        "working_point": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.6,
                                          "description": "Cut on the selector output."},
                        "branch": {"type": ["string", "null"], "default": None,
                                   "description": "For kind=candidates: column with a stored selector output to cut on (null = no cut)."},
                    },
                },
            },
        },
        "signal_model": {"type": ["string", "null"], "default": None,
                         "description": "SignalModel JSON file; null uses analytic_signal_model."},
        "analytic_signal_model": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "Smooth analytic signal model (scans.testing.analytic_signal_model) used when signal_model is null.",
            "properties": {
                "sigma_coeffs": {"type": "array", "items": {"type": "number"}, "minItems": 1, "default": [0.004, 0.009]},
                "efficiency_coeffs": {"type": "array", "items": {"type": "number"}, "minItems": 1, "default": [0.30, -0.012]},
                "efficiency_rel_unc": {**_FRAC, "default": 0.05},
                "mass_range": {**_RANGE, "default": [0.1, 10.4]},
                "alpha_l": {**_POS, "default": 1.2},
                "n_l": {**_POS, "default": 3.0},
                "alpha_r": {**_POS, "default": 1.6},
                "n_r": {**_POS, "default": 6.0},
                "comb_fraction": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.1},
                "comb_slope": {"type": "number", "minimum": -1, "maximum": 1, "default": 0.0},
            },
        },
        "luminosity_fb": {**_POS, "default": 0.445, "description": "Integrated luminosity in fb^-1."},
        "luminosity_rel_unc": {**_FRAC, "default": 0.007, "description": "Relative luminosity uncertainty."},
        "beam": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "sqrt_s": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                           "description": "CM energy in GeV; null = from the collider preset, else from the beam energies."},
                "collider": {"enum": [None, *COLLIDER_BEAMS],
                             "description": "Collider preset (bumphunt.colliders): belle2, babar or zpole; sets sqrt(s) unless "
                                            "sqrt_s is given. Not filled when absent, so older configurations keep their hash."},
                "e_her": {**_POS, "default": 7.0},
                "e_ler": {**_POS, "default": 4.0},
                "crossing_angle": {"type": "number", "minimum": 0, "default": 0.083},
            },
        },
        "mass": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "min": {**_POS, "default": 0.175, "description": "First mass hypothesis (GeV)."},
                "max": {**_POS, "default": 9.6, "description": "Last mass hypothesis (GeV)."},
                "step": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": 0.05,
                         "description": "Fixed step in GeV (used when step_sigma_fraction is null)."},
                "step_sigma_fraction": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None,
                                        "description": "Step as a fraction of the local resolution sigma(m)."},
                "data_range": {"anyOf": [_RANGE, {"type": "null"}], "default": None,
                               "description": "M_gg range of the data [lo, hi] GeV; windows are clipped to it. null = min/max of the candidates."},
            },
        },
        "vetoes": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "mode": {"enum": ["veto", "float"], "default": "veto",
                         "description": "veto: skip hypotheses near known peaks. float: search through them, fitting each listed peak "
                                        "whose mass lies in a window as an extra background component (signal shape at the PDG mass, floating yield)."},
                "in_window": {"enum": ["template", "cut", "none"], "default": "template",
                              "description": "A listed peak inside the window of a hypothesis that is not vetoed: template (default) floats "
                                             "it as a background component (signal shape at the PDG mass, extrapolated below or above the "
                                             "signal model's range); cut ends the window cut_n_sigma peak widths from the PDG mass; none "
                                             "ignores it (biased next to peaks). See scans.peaks."},
                "cut_n_sigma": {**_POS, "default": 5.0, "description": "in_window: cut ends the window this many peak widths from the PDG mass."},
                "particles": {"type": "array", "items": {"type": "string"}, "default": ["pi0", "eta", "eta'(958)"],
                              "description": "Particle names (PDG masses from `particle`)."},
                "n_sigma": {**_FRAC, "default": 3.0, "description": "Veto half-width in units of the local resolution sigma(m)."},
                "ranges": {"type": "array", "items": _RANGE, "default": [], "description": "Extra vetoed ranges [lo, hi] GeV."},
            },
        },
        "window_n_sigma": {**_POS, "default": DEFAULT_HALF_WIDTH, "description": "Fit window half-width in units of sigma(m)."},
        "min_window_events": {"type": "integer", "minimum": 0, "default": 1,
                              "description": "Points whose window holds fewer candidates are flagged, not fitted."},
        "bkg_order": {"type": "integer", "minimum": 0, "maximum": 10, "default": DEFAULT_BKG_ORDER,
                      "description": "Order of the Chebyshev background polynomial in each window."},
        "bkg_order_fallback": {"type": "boolean", "default": True,
                               "description": "Refit points whose fit fails (sparse windows) with lower background orders, down to 0; "
                                              "the order used is reported per point (bkg_order). Applies to the LEE toys alike."},
        "systematics": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "efficiency": {"enum": ["model", "none"], "default": "model",
                               "description": "model: use the signal model's efficiency uncertainty."},
                "trigger_rel": {**_FRAC, "default": 0.0},
                "other_rel": {**_FRAC, "default": 0.0},
            },
        },
        "trigger_efficiency": {**TRIGGER_SCHEMA, "default": {}},
        "nuisances": NUISANCES_SCHEMA,
        "background_model": BACKGROUND_MODEL_SCHEMA,
        "blinding": BLINDING_SCHEMA,
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "How the CLs limits are computed (one-dataset scans).",
            "properties": {
                "method": {"enum": ["asymptotic", "toys", "auto"], "default": "asymptotic",
                           "description": "asymptotic formulae; toys (toy CLs for every point, with Monte Carlo errors); auto: toys where "
                                          "the asymptotic conditions fail (few background events under the peak, or the toys' spread "
                                          "disagrees with the Asimov error), asymptotic elsewhere. Each point says which it used."},
                "toys": {"type": "integer", "minimum": 10, "default": 1000, "description": "Toys per point for toy limits."},
                "seed": {"type": "integer", "minimum": 0, "default": 0, "description": "Seed of the limit toys."},
            },
        },
        "gof": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "Goodness of fit of every fitted window (fits.goodness_of_fit); the p-value goes into each point.",
            "properties": {
                "method": {"enum": ["binned", "anderson-darling", "none"], "default": "binned",
                           "description": "binned: Baker-Cousins chi2 in bins of equal fitted probability; anderson-darling: unbinned A^2 "
                                          "(always toy-calibrated); none: no test."},
                "toys": {"type": "integer", "minimum": 0, "default": 0,
                         "description": "Toys per window calibrating the p-value (0: the chi2 law for binned, 100 for anderson-darling). "
                                        "Sparse windows (tens of events) need toys."},
                "alpha": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.01,
                          "description": "Windows with a p-value below this are listed in the result's gof summary."},
                "seed": {"type": "integer", "minimum": 0, "default": 777, "description": "Seed of the calibration toys."},
            },
        },
        "cl": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": DEFAULT_CL,
               "description": "Confidence level of the upper limits."},
        "engine": {"enum": ["vectorised", "zfit"], "default": "vectorised"},
        "block_size": {"type": "integer", "minimum": 1, "default": 64,
                       "description": "Mass points per block (unit of checkpointing and parallel work)."},
        "lee": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "toys": {"type": "integer", "minimum": 0, "default": 50, "description": "Background-only toy scans."},
                "seed": {"type": "integer", "minimum": 0, "default": 12345},
                "c0": {"type": "number", "minimum": 0, "default": 1.0, "description": "Reference level (in q0 = Z^2) for up-crossings."},
                "background_order": {"type": "integer", "minimum": 1, "maximum": 40, "default": 12,
                                     "description": "Order of the exp(Chebyshev) fitted to the whole spectrum."},
                "bins": {"type": "integer", "minimum": 20, "default": 2000},
            },
        },
        "execution": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "workers": {"type": "integer", "minimum": 1, "default": 2},
                "dask": {"type": ["string", "null"], "default": None, "description": "Dask scheduler address, or 'local'."},
                "progress": {"type": ["boolean", "null"], "default": None, "description": "null = only on a terminal."},
            },
        },
        "output": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "properties": {
                "dir": {"type": "string", "default": "scan_output"},
                "result": {"type": "string", "default": "scan_result.json"},
                "csv": {"type": "string", "default": "scan_points.csv"},
                "checkpoint_dir": {"type": "string", "default": "checkpoint"},
            },
        },
        "provenance": {
            "type": "object",
            "default": {},
            "description": "How the candidates were made, copied into the result as given (it does not change the scan): "
                           "e.g. selector (path), working_point, toymc_seed, event_chain (counts), signal_mc (files).",
            "properties": {
                "selector": {"type": ["string", "null"], "description": "Selector (Punzi net) directory the candidates were cut with."},
                "working_point": {"type": ["number", "null"], "description": "Selector-output cut."},
                "toymc_seed": {"type": ["integer", "null"], "description": "Seed of the toy MC the inputs came from."},
            },
        },
    },
}
# the datasets reuse the top-level inputs and analytic signal model schemas
SCAN_SCHEMA["properties"]["datasets"] = datasets_schema(SCAN_SCHEMA["properties"]["inputs"], SCAN_SCHEMA["properties"]["analytic_signal_model"])


def _check_consistency(cfg: Mapping[str, Any], *, source: str) -> None:
    mass = cfg["mass"]
    if mass["max"] < mass["min"]:
        raise ScanConfigError(f"{source}: mass: max ({mass['max']} GeV) is below min ({mass['min']} GeV)")
    if mass["step"] is None and mass["step_sigma_fraction"] is None:
        raise ScanConfigError(f"{source}: mass: give either step (GeV) or step_sigma_fraction")
    if mass["data_range"] is not None and not mass["data_range"][1] > mass["data_range"][0]:
        raise ScanConfigError(f"{source}: mass.data_range: needs hi > lo, got {mass['data_range']}")
    for i, (lo, hi) in enumerate(cfg["vetoes"]["ranges"]):
        if not hi > lo:
            raise ScanConfigError(f"{source}: vetoes.ranges[{i}]: needs hi > lo, got [{lo}, {hi}]")
    if cfg["analytic_signal_model"]["mass_range"][1] <= cfg["analytic_signal_model"]["mass_range"][0]:
        raise ScanConfigError(f"{source}: analytic_signal_model.mass_range: needs hi > lo")
    for i, name in enumerate(cfg["vetoes"]["particles"]):
        try:
            particle_mass(name)
        except ValueError:
            raise ScanConfigError(
                f"{source}: vetoes.particles[{i}]: unknown particle {name!r} (use names of the `particle` package, e.g. 'pi0', 'eta', \"eta'(958)\")"
            ) from None
    for i, (lo, hi) in enumerate(cfg["blinding"]["windows"]):
        if not hi > lo:
            raise ScanConfigError(f"{source}: blinding.windows[{i}]: needs hi > lo, got [{lo}, {hi}]")
    if cfg["blinding"]["mode"] == "windows" and not cfg["blinding"]["windows"]:
        raise ScanConfigError(f"{source}: blinding.windows: mode 'windows' needs at least one blinded mass range [lo, hi] GeV")
    check_combined_sections(cfg, source=source)
    from .config_datasets import is_combined

    if cfg["limits"]["method"] != "asymptotic" and is_combined(cfg):
        raise ScanConfigError(f"{source}: limits.method: {cfg['limits']['method']!r} is available for one-dataset scans without nuisances, "
                              "background-model rules, trigger tables or blinding; those use asymptotic limits")


def load_scan_config(config: str | Path | Mapping[str, Any] | None = None, *, source: str | None = None) -> dict[str, Any]:
    """Read, complete and validate a scan configuration.

    Parameters
    ----------
    config : path, mapping or None
        YAML file, an already-parsed mapping, or ``None`` for all defaults.
    source : str, optional
        Name used in error messages (default: the file name).

    Returns
    -------
    dict
        The configuration with every default filled in.

    Raises
    ------
    ScanConfigError
        Missing file, invalid YAML, unknown key, wrong type or inconsistent values;
        the message names the key path.
    """
    raw, source = read_mapping(config, source=source, default_source="default scan config", mapping_source="scan config", error=ScanConfigError)
    filled = fill_defaults(raw, SCAN_SCHEMA)
    validate_config(filled, SCAN_SCHEMA, source=source, error=ScanConfigError)
    _check_consistency(filled, source=source)
    return filled


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the result-relevant part of a (completed) configuration."""
    relevant = {k: v for k, v in config.items() if k not in RESULT_NEUTRAL_KEYS}
    # input file *names* do not matter for the result; their content hashes are kept separately
    if "inputs" in relevant:
        relevant["inputs"] = {k: v for k, v in relevant["inputs"].items() if k != "files"}
    if relevant.get("datasets"):
        relevant["datasets"] = [{**d, "inputs": {k: v for k, v in d.get("inputs", {}).items() if k != "files"}} for d in relevant["datasets"]]
    blob = json.dumps(relevant, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def sqrt_s_from_config(config: Mapping[str, Any]) -> float:
    """CM energy in GeV: ``beam.sqrt_s``, else the ``beam.collider`` preset's, else from the beam energies
    (GeV) and crossing angle (rad), ``sqrt(s) = 2 sqrt(E_her E_ler) cos(crossing_angle / 2)`` (massless beams)."""
    beam = config["beam"]
    if beam.get("sqrt_s") is not None:
        return float(beam["sqrt_s"])
    if beam.get("collider") is not None:
        if beam["collider"] not in COLLIDER_BEAMS:
            raise ScanConfigError(f"beam.collider: unknown collider {beam['collider']!r}; known: {', '.join(COLLIDER_BEAMS)}")
        beam = COLLIDER_BEAMS[beam["collider"]]
    return 2.0 * math.sqrt(beam["e_her"] * beam["e_ler"]) * math.cos(0.5 * beam["crossing_angle"])
