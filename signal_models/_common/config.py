"""YAML configuration files validated against JSON schemas (draft 2020-12).

Every configurable stage (scan, toy MC, pre-selection, selector training,
signal model) ships its schema as a Python dict with ``default`` values;
``load_config`` reads YAML (or takes a mapping, or ``None`` for all
defaults), fills the defaults and validates, raising an error that names the
file and the offending key path, e.g.
``scan.yaml: mass.step: -0.05 is less than or equal to the minimum of 0``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["load_config", "read_mapping", "validate_config", "fill_defaults", "key_path"]


def key_path(path: Any) -> str:
    """Dotted key path (``a.b[2].c``) from a jsonschema error path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "<top level>"


def fill_defaults(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``config`` with the schema's ``default`` values filled in, recursively."""
    out = copy.deepcopy(dict(config))
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), Mapping) and "properties" in sub:
            out[key] = fill_defaults(out[key], sub)
        items = sub.get("items")
        if isinstance(out.get(key), list) and isinstance(items, Mapping) and "properties" in items:
            # arrays of objects (e.g. a scan's datasets): fill each item
            out[key] = [fill_defaults(v, items) if isinstance(v, Mapping) else v for v in out[key]]
    return out


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any], *, source: str, error: type[Exception] = ConfigError) -> None:
    """Validate against a JSON schema; raise ``error`` naming the first bad key.

    Unknown keys list the allowed keys, enum violations the allowed values.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(config))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    message = err.message
    if err.validator == "additionalProperties":
        message += f"; allowed keys: {', '.join(sorted(err.schema.get('properties', {})))}"
    elif err.validator == "enum":
        message += f"; allowed values: {', '.join(map(repr, err.validator_value))}"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise error(f"{source}: {key_path(err.absolute_path)}: {message}{more}")


def read_mapping(
    config: str | Path | Mapping[str, Any] | None,
    *,
    source: str | None,
    default_source: str = "defaults",
    mapping_source: str = "config",
    error: type[Exception] = ConfigError,
) -> tuple[dict[str, Any], str]:
    """A YAML file, a mapping or None (empty) as a dict, with the name used in error messages."""
    import yaml

    if config is None:
        raw: Any = {}
        source = source or default_source
    elif isinstance(config, Mapping):
        raw = copy.deepcopy(dict(config))
        source = source or mapping_source
    elif isinstance(config, (str, os.PathLike)):
        path = Path(config)
        source = source or str(path)
        if not path.is_file():
            raise error(f"{source}: configuration file not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise error(f"{source}: not valid YAML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"{source}: cannot read the file: {exc}") from None
    else:
        raise error(f"{source or mapping_source}: expected a YAML file path, a mapping or None, got {type(config).__name__}")
    if not isinstance(raw, Mapping):
        raise error(f"{source}: expected a mapping of keys to values at the top level, got {type(raw).__name__}")
    return dict(raw), source


def load_config(
    config: str | Path | Mapping[str, Any] | None,
    schema: Mapping[str, Any],
    *,
    source: str | None = None,
    error: type[Exception] = ConfigError,
) -> dict[str, Any]:
    """Read a YAML file (or take a mapping, or None for all defaults), fill defaults and validate.

    Parameters
    ----------
    config : path, mapping or None
        YAML file, an already-parsed mapping, or None.
    schema : mapping
        JSON schema (draft 2020-12) with ``default`` values on properties.
    source : str, optional
        Name used in error messages (defaults to the file name).
    error : exception type
        Raised on any problem (a subclass of ``ConfigError`` by convention).

    Raises
    ------
    ConfigError
        The file is missing, is not YAML, is not a mapping, or fails validation.
    """
    raw, source = read_mapping(config, source=source, error=error)
    filled = fill_defaults(raw, schema)
    validate_config(filled, schema, source=source, error=error)
    return filled
