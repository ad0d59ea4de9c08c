"""YAML configuration files validated against JSON schemas.

Every configurable stage (toy MC, pre-selection, selector training, scan)
ships its schema as a Python dict; ``load_config`` reads YAML (or takes a
dict), fills defaults and validates, raising ``ConfigError`` that names the
offending key, e.g. ``scan.yaml: mass.step: -0.05 is less than the minimum of 0``.

The generic reading and validation live in ``scans.config`` (the lowest layer
that loads configs; ``scans`` may not import ``bumphunt``); this module gives
them bumphunt's ``ConfigError``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scans.config import fill_defaults, key_path, read_mapping, validate_config

from .errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["load_config", "validate", "fill_defaults", "key_path"]


def validate(config: Mapping[str, Any], schema: Mapping[str, Any], *, source: str = "config") -> None:
    """Validate ``config`` against ``schema``; raise ``ConfigError`` naming the first bad key.

    Unknown keys are errors when the schema says ``additionalProperties: false``;
    the message then lists the allowed keys.
    """
    validate_config(config, schema, source=source, error=ConfigError)


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
    raw, source = read_mapping(config, source=source, error=ConfigError)
    filled = fill_defaults(raw, schema)
    validate(filled, schema, source=source)
    return filled
