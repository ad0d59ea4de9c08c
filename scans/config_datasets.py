"""Scan configuration of a combined likelihood: ``datasets``, ``nuisances``, ``background_model``, ``trigger_efficiency``.

A scan whose configuration leaves these sections at their defaults (no
datasets, no nuisances, background order fixed, trigger efficiency 1) runs
the one-dataset engine and gives the same numbers as before they existed.
Otherwise every mass hypothesis is one combined fit (``fits.Channel`` per
dataset, the cross-section in pb as the shared parameter of interest):

``datasets``
    each with its own candidates (``inputs``), signal model, luminosity,
    luminosity uncertainty, trigger efficiency and background order; without
    ``datasets`` the top-level ``inputs``, ``signal_model`` and
    ``luminosity_fb`` make the one dataset ``data``;
``nuisances``
    named constrained nuisances: ``resolution`` (the signal core width
    becomes ``(1 + width nu) sigma``), ``shift`` (the peak moves by ``width
    nu`` GeV, or ``width nu m`` with ``relative``), and ``yield`` (a
    relative uncertainty of the expected signal, one value or one per
    dataset), each acting on the ``datasets`` it names (default: all, one
    shared nuisance = fully correlated);
``background_model``
    ``fixed`` (the configured order), ``ftest`` (per window and dataset, the
    lowest order that a higher one does not improve significantly),
    ``spurious_signal`` (the background-model bias as a Gaussian-constrained
    signal-like yield, its size measured on a smooth background template), or
    ``envelope`` (discrete profiling over orders with a penalty per
    parameter). See ``docs/reference/scan_config.md`` for which is the
    default and why;
``trigger_efficiency``
    a constant (``value``, ``rel_unc``) or a table of ``[mass GeV,
    efficiency, absolute uncertainty]`` (``table`` in the file or ``file``, a
    CSV with columns ``mass,efficiency,uncertainty``), per dataset or at the
    top level; it multiplies the expected signal and its uncertainty is a
    yield nuisance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ScanConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "TRIGGER_SCHEMA",
    "NUISANCES_SCHEMA",
    "BACKGROUND_MODEL_SCHEMA",
    "BACKGROUND_METHODS",
    "datasets_schema",
    "is_combined",
    "check_combined_sections",
    "check_nuisances",
]

#: what ``background_model.method`` may say
BACKGROUND_METHODS = ("fixed", "ftest", "spurious_signal", "envelope")
#: names of datasets and nuisances (used in result keys and CSV columns)
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.+-]+$"}

TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Trigger efficiency multiplying the expected signal: a constant (value, rel_unc) or a table vs mass.",
    "properties": {
        "value": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1.0, "description": "Constant efficiency (no table)."},
        "rel_unc": {"type": "number", "minimum": 0, "default": 0.0, "description": "Relative uncertainty of the constant efficiency."},
        "table": {
            "anyOf": [{"type": "null"}, {"type": "array", "minItems": 2,
                                         "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 3}}],
            "default": None,
            "description": "Rows [mass GeV, efficiency, absolute uncertainty (optional)], masses increasing; linear interpolation.",
        },
        "file": {"type": ["string", "null"], "default": None,
                 "description": "CSV file (relative to the config) with columns mass,efficiency[,uncertainty]."},
    },
}

NUISANCES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "default": [],
    "description": "Constrained nuisances of the combined likelihood (each a standard-normal constraint).",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "kind"],
        "properties": {
            "name": _NAME,
            "kind": {"enum": ["resolution", "shift", "yield"]},
            "width": {"type": "number", "description": "resolution: relative width of sigma; shift: GeV (or relative with relative: true)."},
            "relative": {"type": "boolean", "default": False, "description": "shift: width relative to the peak position."},
            "rel_unc": {"anyOf": [{"type": "number"}, {"type": "object", "additionalProperties": {"type": "number"}}],
                        "description": "yield: relative uncertainty, one value or one per dataset name."},
            "constraint": {"enum": ["lognormal", "gaussian"], "default": "lognormal", "description": "yield: constraint shape."},
            "datasets": {"type": ["array", "null"], "items": {"type": "string"}, "default": None,
                         "description": "Datasets it acts on (null: all, one shared nuisance)."},
        },
    },
}

BACKGROUND_MODEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "description": "How the uncertainty of the background function is treated (default fixed: the configured bkg_order).",
    "properties": {
        "method": {"enum": list(BACKGROUND_METHODS), "default": "fixed"},
        "orders": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 8}, "minItems": 1, "default": [0, 1, 2, 3, 4],
                   "description": "Candidate Chebyshev orders (ftest: tested in increasing order; envelope: profiled)."},
        "ftest_pvalue": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.05,
                         "description": "ftest: a higher order is taken while it improves the fit with p-value below this."},
        "penalty": {"type": "number", "minimum": 0, "default": 1.0,
                    "description": "envelope: penalty per background parameter, in units of -2 ln L (1 as in CMS H->gg)."},
        "spurious_max_fraction": {"type": "number", "exclusiveMinimum": 0, "default": 0.2,
                                  "description": "spurious_signal: orders are raised until |N_spur| < this x the statistical error "
                                                 "(the lowest passing order in orders); the remaining N_spur is the constrained yield."},
    },
}


def datasets_schema(inputs: Mapping[str, Any], analytic: Mapping[str, Any]) -> dict[str, Any]:
    """Schema of the ``datasets`` list, reusing the top-level ``inputs`` and ``analytic_signal_model`` schemas."""
    return {
        "type": "array",
        "default": [],
        "description": "Datasets fitted together with one cross-section (empty: the top-level inputs are the one dataset).",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "luminosity_fb"],
            "properties": {
                "name": _NAME,
                "inputs": {**inputs, "description": "This dataset's candidates (as the top-level inputs)."},
                "signal_model": {"type": ["string", "null"], "default": None,
                                 "description": "SignalModel JSON file; null: this dataset's analytic_signal_model."},
                "analytic_signal_model": {"anyOf": [{"type": "null"}, {k: v for k, v in analytic.items() if k != "default"}],
                                          "default": None, "description": "null: the top-level analytic_signal_model."},
                "luminosity_fb": {"type": "number", "exclusiveMinimum": 0, "description": "Integrated luminosity in fb^-1."},
                "luminosity_rel_unc": {"type": ["number", "null"], "minimum": 0, "default": None,
                                       "description": "Relative luminosity uncertainty, uncorrelated between datasets "
                                                      "(null: the top-level luminosity_rel_unc)."},
                "trigger_efficiency": {"anyOf": [{"type": "null"}, TRIGGER_SCHEMA], "default": None,
                                       "description": "null: the top-level trigger_efficiency."},
                "bkg_order": {"type": ["integer", "null"], "minimum": 0, "maximum": 8, "default": None,
                              "description": "Background order of this dataset (null: the top-level bkg_order)."},
            },
        },
    }


def is_combined(config: Mapping[str, Any]) -> bool:
    """Whether a completed configuration needs the combined engine (any of the new sections away from its default,
    or blinding: blind points are fitted by the combined engine's background-only path)."""
    trig = config.get("trigger_efficiency") or {}
    return bool(
        config.get("datasets")
        or config.get("nuisances")
        or (config.get("background_model") or {}).get("method", "fixed") != "fixed"
        or trig.get("table") is not None
        or trig.get("file") is not None
        or trig.get("rel_unc", 0.0) != 0.0
        or trig.get("value", 1.0) != 1.0
        or (config.get("blinding") or {}).get("mode", "none") != "none"
    )


def _check_trigger(trig: Mapping[str, Any] | None, *, where: str, source: str) -> None:
    if trig is None:
        return
    if trig.get("table") is not None and trig.get("file") is not None:
        raise ScanConfigError(f"{source}: {where}: give either table or file, not both")
    rows = trig.get("table")
    if rows is None:
        return
    for i, row in enumerate(rows):
        if not 0 < row[1] <= 1:
            raise ScanConfigError(f"{source}: {where}.table[{i}]: efficiency {row[1]} is not in (0, 1]")
        if len(row) > 2 and row[2] < 0:
            raise ScanConfigError(f"{source}: {where}.table[{i}]: negative uncertainty {row[2]}")
        if i and not row[0] > rows[i - 1][0]:
            raise ScanConfigError(f"{source}: {where}.table[{i}]: masses must increase ({rows[i - 1][0]} then {row[0]} GeV)")


def check_combined_sections(cfg: Mapping[str, Any], *, source: str) -> None:
    """Cross-checks the schema cannot express: unique names, nuisances naming known datasets, widths > 0, tables sane.

    Raises
    ------
    ScanConfigError
        Naming the key path and the value.
    """
    datasets = cfg.get("datasets") or []
    names = [d["name"] for d in datasets] or ["data"]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScanConfigError(f"{source}: datasets: names must be unique, {dupes[0]!r} is used twice")
    _check_trigger(cfg.get("trigger_efficiency"), where="trigger_efficiency", source=source)
    for i, d in enumerate(datasets):
        _check_trigger(d.get("trigger_efficiency"), where=f"datasets[{i}].trigger_efficiency", source=source)
    # with datasets given as objects (scans.combined_driver.scan_datasets) the names are checked again by the plan
    check_nuisances(cfg.get("nuisances") or [], names if datasets else None, source=source)
    shape_n = sum(1 for nu in cfg.get("nuisances") or [] if nu["kind"] in ("resolution", "shift"))
    if shape_n > 4:
        raise ScanConfigError(f"{source}: nuisances: at most 4 resolution/shift nuisances per fit, got {shape_n}")
    bm = cfg.get("background_model") or {}
    if bm.get("method") == "envelope":
        n_comb = len(set(bm["orders"])) ** len(names)
        if n_comb > 64:
            raise ScanConfigError(f"{source}: background_model.orders: {len(set(bm['orders']))} orders over {len(names)} datasets make "
                                  f"{n_comb} combinations to profile (at most 64); give fewer orders")
    if is_combined(cfg) and cfg["vetoes"]["mode"] == "float":
        raise ScanConfigError(f"{source}: vetoes.mode: 'float' is not available with datasets, nuisances, a background_model or a "
                              f"trigger_efficiency; use 'veto'")


def check_nuisances(nuisances: Sequence[Mapping[str, Any]], names: Sequence[str] | None, *, source: str) -> None:
    """Check the ``nuisances`` section: unique names, the keys of each kind, widths > 0 and, when ``names`` is given,
    that every dataset a nuisance names exists.

    Raises
    ------
    ScanConfigError
        Naming the nuisance, key and value.
    """
    seen: set[str] = set()
    for i, nu in enumerate(nuisances):
        where = f"nuisances[{i}] ({nu['name']})"
        if nu["name"] in seen:
            raise ScanConfigError(f"{source}: {where}: name {nu['name']!r} is used twice")
        seen.add(nu["name"])
        unknown = [n for n in (nu.get("datasets") or []) if names is not None and n not in names]
        if unknown:
            raise ScanConfigError(f"{source}: {where}.datasets: unknown dataset {unknown[0]!r}; datasets are {names}")
        if nu["kind"] in ("resolution", "shift"):
            if "rel_unc" in nu:
                raise ScanConfigError(f"{source}: {where}: rel_unc is for kind yield; a {nu['kind']} nuisance takes width")
            w = nu.get("width")
            if w is None:
                raise ScanConfigError(f"{source}: {where}.width: missing (one standard deviation of the {nu['kind']})")
            if not w > 0:
                raise ScanConfigError(f"{source}: {where}.width: must be > 0, got {w}")
            if nu["kind"] == "resolution" and w >= 0.5:
                raise ScanConfigError(f"{source}: {where}.width: a relative resolution width must be below 0.5, got {w}")
        else:
            if "width" in nu:
                raise ScanConfigError(f"{source}: {where}: width is for kinds resolution and shift; a yield nuisance takes rel_unc")
            r = nu.get("rel_unc")
            if r is None:
                raise ScanConfigError(f"{source}: {where}.rel_unc: missing (relative uncertainty of the expected signal)")
            values = r if isinstance(r, Mapping) else {"": r}
            for key, v in values.items():
                if key and names is not None and key not in names:
                    raise ScanConfigError(f"{source}: {where}.rel_unc: unknown dataset {key!r}; datasets are {names}")
                if not v >= 0:
                    raise ScanConfigError(f"{source}: {where}.rel_unc{'.' + key if key else ''}: must be >= 0, got {v}")
