"""YAML configuration files validated against JSON schemas.

Every configurable stage (toy MC, selector training, scan) ships its schema as
a Python dict; ``load_config`` reads YAML (or takes a dict), fills defaults and
validates, raising ``ConfigError`` that names the offending key, e.g.
``scan.yaml: mass.step: -0.05 is less than the minimum of 0``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["load_config", "validate", "fill_defaults", "key_path"]


def key_path(path: Any) -> str:
    """Dotted key path (``a.b[2].c``) from a jsonschema error path."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def fill_defaults(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``config`` with ``default`` values from the schema's object properties filled in (recursively)."""
    out = copy.deepcopy(dict(config))
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), Mapping) and sub.get("type") == "object":
            out[key] = fill_defaults(out[key], sub)
    return out


def validate(config: Mapping[str, Any], schema: Mapping[str, Any], *, source: str = "config") -> None:
    """Validate ``config`` against ``schema``; raise ``ConfigError`` naming the first bad key.

    Unknown keys are errors when the schema says ``additionalProperties: false``;
    the message then lists the allowed keys.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    where = key_path(err.absolute_path)
    message = err.message
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        message += f"; allowed keys: {', '.join(allowed)}"
    elif err.validator == "enum":
        message += f"; allowed values: {', '.join(map(repr, err.validator_value))}"
    extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise ConfigError(f"{source}: {where}: {message}{extra}")


def load_config(config: str | Path | Mapping[str, Any] | None, schema: Mapping[str, Any], *, source: str | None = None) -> dict[str, Any]:
    """Read a YAML file (or take a mapping, or None for all defaults), fill defaults and validate.

    Parameters
    ----------
    config : path, mapping or None
        YAML file, an already-parsed mapping, or None.
    schema : mapping
        JSON schema (draft 2020-12) with ``default`` values on properties.
    source : str, optional
        Name used in error messages (defaults to the file name).

    Raises
    ------
    ConfigError
        The file is missing, is not YAML, is not a mapping, or fails validation.
    """
    import yaml

    if config is None:
        raw: Any = {}
        source = source or "defaults"
    elif isinstance(config, Mapping):
        raw = dict(config)
        source = source or "config"
    else:
        path = Path(config)
        source = source or str(path)
        if not path.is_file():
            raise ConfigError(f"{source}: configuration file not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of keys to values at the top level, got {type(raw).__name__}")
    filled = fill_defaults(raw, schema)
    validate(filled, schema, source=source)
    return filled
