"""Exceptions raised by bumphunt. All derive from ``BumphuntError``."""

from __future__ import annotations

__all__ = ["BumphuntError", "InputError", "SchemaError", "ConfigError", "FitError"]


class BumphuntError(Exception):
    """Base class of all bumphunt errors."""


class InputError(BumphuntError, ValueError):
    """An input file or array is missing, unreadable or has invalid content.

    The message names the file, branch or field and what was expected.
    """


class SchemaError(InputError):
    """A ROOT tree does not match the expected schema (branch missing, wrong dtype or units)."""


class ConfigError(BumphuntError, ValueError):
    """A configuration file or option is invalid; the message names the key."""


class FitError(BumphuntError, RuntimeError):
    """A fit or limit could not be computed even after retries."""
