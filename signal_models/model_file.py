"""The JSON file format of a ``SignalModel``: format name, schema version, validation, JSON-safe numbers.

``validate_model_dict`` checks a parsed file key by key and raises
``SignalModelFormatError`` naming the first bad key; ``json_safe`` writes
NaN (allowed only in entries of masses that were not fitted) as null and
``fit_dict_from_json`` reads it back. The format is documented in
``docs/reference/signal_model_format.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NoReturn

import numpy as np

from .errors import ShapeError, SignalModelFormatError
from .mass_fit import MassFit
from .model_quantities import CURVES, PARTIAL_CURVES
from .shapes import SignalShape

__all__ = ["FORMAT_NAME", "SCHEMA_VERSION", "validate_model_dict", "json_safe", "fit_dict_from_json"]

FORMAT_NAME = "bumphunt-signal-model"
SCHEMA_VERSION = 2


def json_safe(obj: Any) -> Any:
    """NaN -> None for JSON (only allowed in entries of masses that were not fitted)."""
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


_FIT_NUMBERS = ("chi2", "pvalue", "edm")


def fit_dict_from_json(d: Mapping[str, Any]) -> dict[str, Any]:
    """A ``MassFit.to_dict`` dictionary from its JSON form (the nulls of ``json_safe`` back to NaN)."""
    out = dict(d)
    for k in _FIT_NUMBERS:
        if out.get(k) is None:
            out[k] = math.nan
    out["window"] = [math.nan if v is None else v for v in out.get("window", [None, None])]
    return out


_TOP_KEYS = {
    "format": str,
    "schema_version": int,
    "bumphunt_version": str,
    "created": str,
    "selection": dict,
    "settings": dict,
    "comb_domain": (int, float),
    "mass_range": list,
    "holdout": list,
    "interpolation": dict,
    "fits": list,
}
_FIT_KEYS = ("mass", "n_generated", "status", "params", "errors", "fixed", "window", "eff_tm", "eff_tm_err", "eff_total", "eff_total_err")
_PARAM_KEYS = ("mu", "sigma", "alpha_l", "n_l", "alpha_r", "n_r", "comb_fraction", "comb_slope")
_EDGE_KEYS = ("comb_edge", "comb_edge_width")


#: types of the entries of ``fits[i]`` (the ``MassFit`` fields); numbers may be null (NaN) where nothing was fitted
_FIT_TYPES: dict[str, type | tuple[type, ...]] = {
    "reason": str,
    "params": Mapping,
    "errors": Mapping,
    "fixed": list,
    "window": list,
    "histogram": Mapping,
    "edge_status": str,
}
_FIT_NUMBER_KEYS = ("n_generated", "comb_domain", "n_tm", "n_comb", "n_eff", "eff_tm", "eff_tm_err", "eff_total", "eff_total_err",
                    "chi2", "ndf", "pvalue", "edm", "n_attempts", "n_iterations")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_fit_entry(f: Mapping[str, Any], where: str, fail: Any) -> None:
    """Keys and value types of one ``fits[i]`` entry (known ``MassFit`` fields only)."""
    allowed = {fl.name for fl in dataclasses.fields(MassFit)}
    unknown = sorted(str(k) for k in f if k not in allowed)
    if unknown:
        fail(f"unknown key '{where}.{unknown[0]}'; allowed keys: {', '.join(sorted(allowed))}")
    for key, typ in _FIT_TYPES.items():
        if key in f and not isinstance(f[key], typ):
            fail(f"key '{where}.{key}' has type {type(f[key]).__name__}, expected {getattr(typ, '__name__', typ)}")
    for key in _FIT_NUMBER_KEYS:
        if key in f and not _is_number(f[key]) and not (f[key] is None and key in _FIT_NUMBERS):
            fail(f"key '{where}.{key}' must be a number, got {f[key]!r}")
    window = f["window"]
    if len(window) != 2 or not all(v is None or _is_number(v) for v in window):
        fail(f"key '{where}.window' must be [lo, hi] in GeV, got {window!r}")


def validate_model_dict(data: Mapping[str, Any], source: str) -> None:
    """Raise ``SignalModelFormatError`` naming the first bad key of a signal-model dictionary (``source``: the file)."""
    def fail(msg: str) -> NoReturn:
        raise SignalModelFormatError(f"{source}: {msg}")

    if not isinstance(data, Mapping):
        fail(f"top level must be a JSON object, got {type(data).__name__}")
    for key, typ in _TOP_KEYS.items():
        if key not in data:
            fail(f"missing key {key!r}")
        if not isinstance(data[key], typ) or isinstance(data[key], bool):
            fail(f"key {key!r} has type {type(data[key]).__name__}, expected {typ}")
    if data["format"] != FORMAT_NAME:
        fail(f"key 'format' is {data['format']!r}, expected {FORMAT_NAME!r}")
    if data["schema_version"] > SCHEMA_VERSION or data["schema_version"] < 1:
        fail(f"key 'schema_version' is {data['schema_version']}, this version reads 1..{SCHEMA_VERSION}")
    if not (isinstance(data["comb_domain"], (int, float)) and math.isfinite(data["comb_domain"]) and data["comb_domain"] > 0):
        fail(f"key 'comb_domain' must be a positive number, got {data['comb_domain']!r}")
    for name in CURVES:
        if data["interpolation"].get(name) is None and name not in PARTIAL_CURVES:
            fail(f"missing key 'interpolation.{name}'")
    for name, spec in data["interpolation"].items():
        if spec is None and name in PARTIAL_CURVES:
            continue  # absent when no mass measures it (and in files of schema version 1)
        if not isinstance(spec, Mapping):
            fail(f"key 'interpolation.{name}' must be an object")
        if spec.get("method") not in ("pchip", "smoothing", "linear", "constant"):
            fail(f"key 'interpolation.{name}.method' is {spec.get('method')!r}")
        if spec.get("method") == "smoothing" and not (isinstance(spec.get("lam"), (int, float)) and math.isfinite(spec["lam"]) and spec["lam"] > 0):
            fail(f"key 'interpolation.{name}.lam' must be a positive number for a smoothing spline, got {spec.get('lam')!r}")
    masses = []
    for i, f in enumerate(data["fits"]):
        where = f"fits[{i}]"
        if not isinstance(f, Mapping):
            fail(f"{where} must be an object")
        for key in _FIT_KEYS:
            if key not in f:
                fail(f"missing key '{where}.{key}'")
        _check_fit_entry(f, where, fail)
        if not isinstance(f["mass"], (int, float)) or not math.isfinite(f["mass"]):
            fail(f"key '{where}.mass' must be a finite number, got {f['mass']!r}")
        masses.append(float(f["mass"]))
        if f["status"] not in ("ok", "failed", "skipped"):
            fail(f"key '{where}.status' is {f['status']!r}, expected 'ok', 'failed' or 'skipped'")
        if f["status"] != "ok":
            continue
        for group in ("params", "errors"):
            for p in _PARAM_KEYS:
                v = f[group].get(p)
                if v is None:
                    fail(f"missing or null key '{where}.{group}.{p}' (mass {f['mass']} GeV)")
                if not isinstance(v, (int, float)) or not math.isfinite(v):
                    fail(f"key '{where}.{group}.{p}' must be a finite number, got {v!r} (mass {f['mass']} GeV)")
        for key in ("eff_tm", "eff_tm_err", "eff_total", "eff_total_err", "n_generated"):
            v = f[key]
            if v is None or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                fail(f"key '{where}.{key}' must be a finite non-negative number, got {v!r} (mass {f['mass']} GeV)")
        if f.get("edge_status", "none") not in ("measured", "above", "below", "none"):
            fail(f"key '{where}.edge_status' is {f.get('edge_status')!r}, expected 'measured', 'above', 'below' or 'none'")
        unknown = sorted(str(p) for p in f["params"] if p not in (*_PARAM_KEYS, *_EDGE_KEYS))
        if unknown:
            fail(f"unknown key '{where}.params.{unknown[0]}'; allowed keys: {', '.join((*_PARAM_KEYS, *_EDGE_KEYS))}")
        edge_keys = [p for p in _EDGE_KEYS if p in f["params"]]
        if f.get("edge_status") == "measured" and len(edge_keys) != len(_EDGE_KEYS):
            fail(f"'{where}.params' must hold {list(_EDGE_KEYS)} when edge_status is 'measured' (mass {f['mass']} GeV)")
        for group in ("params", "errors"):
            for p in edge_keys:
                v = f[group].get(p)
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                    fail(f"key '{where}.{group}.{p}' must be a finite number, got {v!r} (mass {f['mass']} GeV)")
        try:
            SignalShape(comb_domain=float(data["comb_domain"]), **{p: float(f["params"][p]) for p in (*_PARAM_KEYS, *edge_keys)})
        except ShapeError as exc:
            fail(f"'{where}.params' is not a valid shape: {exc}")
    if np.any(np.diff(masses) <= 0):
        fail(f"key 'fits' must be sorted by strictly increasing mass, got masses {masses}")
    for h in data["holdout"]:
        if not isinstance(h, (int, float)) or not math.isfinite(h):
            fail(f"key 'holdout' must hold finite masses, got {h!r}")
